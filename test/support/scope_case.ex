defmodule ElixirScope.ScopeCase do
  @moduledoc "Test helpers: run each test with a fresh ElixirScope and stop it afterwards."
  use ExUnit.CaseTemplate

  using do
    quote do
      import ElixirScope.ScopeCase
    end
  end

  @doc "Starts ElixirScope with `opts` for the current test; stops it on exit."
  @spec start_scope!(keyword()) :: :ok
  def start_scope!(opts \\ []) do
    ElixirScope.stop()
    :ok = ElixirScope.start(opts)
    ExUnit.Callbacks.on_exit(fn -> ElixirScope.stop() end)
    :ok
  end
end
