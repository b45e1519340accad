defmodule ElixirScope.Application do
  @moduledoc "Placeholder application (ai branch only; the lead's version replaces it)."
  use Application

  @impl true
  def start(_type, _args), do: Supervisor.start_link([], strategy: :one_for_one, name: ElixirScope.Supervisor)
end
