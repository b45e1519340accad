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

  @doc "Waits until `check` returns truthy, checking every 5 ms, at most `tries` times (then fails)."
  @spec wait_for((() -> term()), non_neg_integer()) :: :ok
  def wait_for(check, tries \\ 200) do
    cond do
      check.() -> :ok
      tries == 0 -> ExUnit.Assertions.flunk("condition not met")
      true -> Process.sleep(5) && wait_for(check, tries - 1)
    end
  end
end
