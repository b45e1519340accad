defmodule ElixirScope.Compiler.FastCompileTest do
  # The Erlang compiler options of an instrumented compilation (ParseTransform.fast_compile_options/0):
  # an instrumented clause has a try, and the optimizer must still reach its fixpoint.
  use ExUnit.Case, async: false

  alias ElixirScope.Compiler.ParseTransform

  test "ERL_COMPILER_OPTIONS: the transform and the extra options first, the previous ones kept once" do
    assert ParseTransform.erl_compiler_options(nil) ==
             "[{parse_transform,'Elixir.ElixirScope.Compiler.ParseTransform'}]"

    assert ParseTransform.erl_compiler_options("[no_ssa_opt_try, debug_info]", [:no_ssa_opt_try]) ==
             "[{parse_transform,'Elixir.ElixirScope.Compiler.ParseTransform'},no_ssa_opt_try,debug_info]"
  end

  test "an instrumented module compiled with the fast options reaches the optimizer's fixpoint" do
    previous = System.get_env("ERL_COMPILER_OPTIONS")

    on_exit(fn ->
      if previous,
        do: System.put_env("ERL_COMPILER_OPTIONS", previous),
        else: System.delete_env("ERL_COMPILER_OPTIONS")
    end)

    ParseTransform.install(ParseTransform.fast_compile_options())

    source = """
    defmodule ElixirScope.FastCompileProbe do
      @compile {:elixir_scope_plan, :function_boundaries}
      def parse(text), do: String.to_integer(text) + 1
    end
    """

    rounds = fixpoint_rounds(fn -> Code.compile_string(source) end)
    # a plain module needs 2 or 3 rounds; OTP 25's ssa_opt_try made a try take all 17
    assert rounds in 1..4, "beam_ssa_opt ran its repeated passes #{rounds} times"
    assert ElixirScope.FastCompileProbe.parse("41") == 42
    assert_raise ArgumentError, fn -> ElixirScope.FastCompileProbe.parse("x") end
  after
    :code.purge(ElixirScope.FastCompileProbe)
    :code.delete(ElixirScope.FastCompileProbe)
  end

  # how many times beam_ssa_opt's fixpoint loop ran while `fun` compiled (the loop is traced)
  defp fixpoint_rounds(fun) do
    Code.ensure_loaded(:beam_ssa_opt)
    me = self()
    tracer = spawn_link(fn -> count_rounds(me, 0) end)
    :erlang.trace_pattern({:beam_ssa_opt, :fixpoint, 6}, true, [:local])
    # the Elixir compiler compiles in processes it spawns
    :erlang.trace(self(), true, [:call, :set_on_spawn, {:tracer, tracer}])

    try do
      fun.()
    after
      :erlang.trace(self(), false, [:call, :set_on_spawn])
      :erlang.trace_pattern({:beam_ssa_opt, :fixpoint, 6}, false, [:local])
    end

    send(tracer, :done)
    assert_receive {:rounds, n}, 5_000
    n
  end

  defp count_rounds(parent, n) do
    receive do
      {:trace, _, :call, {:beam_ssa_opt, :fixpoint, _}} -> count_rounds(parent, n + 1)
      :done -> send(parent, {:rounds, n})
    end
  end
end
