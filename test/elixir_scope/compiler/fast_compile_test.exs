defmodule ElixirScope.Compiler.FastCompileTest do
  # The compile cost of an instrumented module: every instrumented clause has a try, and the
  # Erlang optimizer must still reach its fixpoint (c_src/forms_transform.c, call_id_join).
  use ExUnit.Case, async: false

  alias ElixirScope.Compiler.ParseTransform

  test "ERL_COMPILER_OPTIONS: the transform and the extra options first, the previous ones kept once" do
    assert ParseTransform.erl_compiler_options(nil) ==
             "[{parse_transform,'Elixir.ElixirScope.Compiler.ParseTransform'}]"

    assert ParseTransform.erl_compiler_options("[no_ssa_opt_try, debug_info]", [:no_ssa_opt_try]) ==
             "[{parse_transform,'Elixir.ElixirScope.Compiler.ParseTransform'},no_ssa_opt_try,debug_info]"
  end

  test "an instrumented module reaches the optimizer's fixpoint, with the Erlang compiler's default options" do
    assert_fixpoint([])
  end

  test "and with the fast compile options (a compilation where every module is instrumented)" do
    assert_fixpoint(ParseTransform.fast_compile_options())
  end

  defp assert_fixpoint(extra) do
    previous = System.get_env("ERL_COMPILER_OPTIONS")

    on_exit(fn ->
      if previous,
        do: System.put_env("ERL_COMPILER_OPTIONS", previous),
        else: System.delete_env("ERL_COMPILER_OPTIONS")
    end)

    ParseTransform.install(extra)

    # a clause with a value, one ending by a tail call, a loop, and an OTP callback (whose state
    # and message are reported between the entry and the try)
    source = """
    defmodule ElixirScope.FastCompileProbe do
      @compile {:elixir_scope_plan, :full}
      use GenServer
      def parse(text), do: String.to_integer(text) + 1
      def sum([], acc), do: acc
      def sum([h | t], acc), do: sum(t, acc + h)
      def twice(x), do: parse(x) * 2
      def depth(0), do: Process.info(self(), :stack_size)
      def depth(n), do: depth(n - 1)
      def init(n), do: {:ok, n}
      def handle_call({:add, k}, _from, n), do: {:reply, n + k, n + k}
    end
    """

    rounds = fixpoint_rounds(fn -> Code.compile_string(source) end)
    # plain modules need 1 to 3 rounds; OTP 25's ssa_opt_try made a function with a try take all 16
    slow = for {fun, n} <- rounds, n > 3, do: {fun, n}
    assert slow == [], "beam_ssa_opt's fixpoint loop ran too often for #{inspect(slow)}"
    probe = ElixirScope.FastCompileProbe
    assert probe.parse("41") == 42
    assert probe.sum([1, 2, 3], 0) == 6
    assert_raise ArgumentError, fn -> probe.twice("x") end
    # a tail-recursive loop runs in constant stack
    assert probe.depth(100_000) == probe.depth(1)
    {:ok, pid} = GenServer.start_link(probe, 1)
    assert GenServer.call(pid, {:add, 2}) == 3
    GenServer.stop(pid)
  after
    :code.purge(ElixirScope.FastCompileProbe)
    :code.delete(ElixirScope.FastCompileProbe)
  end

  # how many rounds of beam_ssa_opt's fixpoint loop each function took while `fun` compiled
  # (fixpoint/6 is traced: each call is one round, over the functions it is given)
  defp fixpoint_rounds(fun) do
    Code.ensure_loaded(:beam_ssa_opt)
    me = self()
    tracer = spawn_link(fn -> count_rounds(me, %{}) end)
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
    assert_receive {:rounds, rounds}, 5_000
    rounds
  end

  defp count_rounds(parent, rounds) do
    receive do
      {:trace, _, :call, {:beam_ssa_opt, :fixpoint, [ids | _]}} ->
        rounds =
          Enum.reduce(ids, rounds, fn {:b_local, {:b_literal, name}, arity}, acc ->
            Map.update(acc, {name, arity}, 1, &(&1 + 1))
          end)

        count_rounds(parent, rounds)

      :done ->
        send(parent, {:rounds, rounds})
    end
  end
end
