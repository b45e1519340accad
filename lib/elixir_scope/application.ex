defmodule ElixirScope.Application do
  @moduledoc """
  The `:elixir_scope` application. Its supervisor is where `ElixirScope.start/1`
  puts the capture tree; with `config :elixir_scope, autostart: true` the tree
  starts with the application (using the rest of the `:elixir_scope` config).
  """
  use Application

  @impl true
  def start(_type, _args) do
    children =
      if Application.get_env(:elixir_scope, :autostart, false) do
        [ElixirScope]
      else
        []
      end

    Supervisor.start_link(children, strategy: :one_for_one, name: ElixirScope.AppSupervisor)
  end
end
