defmodule ElixirScope.Capture.NeverRaisesTest do
  # Property tests (seeded :rand generators, no StreamData): the functions documented never
  # to raise are called with generated arguments of every shape, with ElixirScope stopped,
  # running, and switched off; each returns a value of its documented type.
  use ElixirScope.ScopeCase, async: false
  import Bitwise

  alias ElixirScope.AST.InjectorHelpers
  alias ElixirScope.Capture.{InstrumentationRuntime, Switch}
  alias ElixirScope.NIF
  alias ElixirScope.Test.Gen

  @runs 300

  # Any term, including the shapes bad arguments take: improper lists, huge and negative
  # integers, bitstrings, pids, references, funs, keyword-ish lists of non-pairs.
  defp wild(g, depth \\ 2) do
    {k, g} = Gen.int(g, 0, if(depth == 0, do: 9, else: 13))

    case k do
      0 -> Gen.term(g, 0)
      1 -> Gen.one_of(g, [nil, true, :ok, Foo, :"with space", -1, 0, 1 <<< 70, -(1 <<< 70), 1.5])
      2 -> Gen.int(g, -(1 <<< 40), 1 <<< 40)
      3 -> Gen.one_of(g, [self(), make_ref(), fn -> :ok end, &String.length/1, <<1::3>>, <<>>])
      4 -> Gen.binary(g, 20)
      5 -> Gen.one_of(g, [[1 | 2], [:a | :b], [{:x, 1} | :tail], [1, 2], [{1, 2, 3}], [x: 1, y: [1, 2]]])
      6 -> Gen.one_of(g, [%{}, %{a: 1}, %{{1, 2} => [3]}, %{"password" => "pw"}, %{__struct__: :not_a_module}])
      7 -> Gen.one_of(g, [:error, :throw, :exit, :before, :after, :sideways])
      8 -> Gen.one_of(g, [[], [{:a, 1}], [{"s", 1}], [{1, 2}], List.duplicate({:k, 1}, 40)])
      9 -> Gen.int(g, 0, 3)
      10 -> with {l, g} <- Gen.list_of(g, 4, &wild(&1, depth - 1)), do: {l, g}
      11 -> with {l, g} <- Gen.list_of(g, 3, &wild(&1, depth - 1)), do: {List.to_tuple(l), g}
      12 -> with {h, g} <- wild(g, depth - 1), {t, g} <- wild(g, depth - 1), do: {[h | t], g}
      13 -> with {l, g} <- Gen.list_of(g, 3, &wild(&1, depth - 1)), do: {Map.new(Enum.with_index(l)), g}
    end
  end

  defp args(g, n) do
    {xs, g} = Gen.many(g, n, &wild/1)
    {xs, g}
  end

  defp id_or_nil?(v), do: is_nil(v) or (is_integer(v) and v > 0)

  # {function name, arity, check of the result}
  @functions [
    {:report_function_entry, 3, &__MODULE__.id_or_nil/1},
    {:report_function_entry, 4, &__MODULE__.id_or_nil/1},
    {:report_function_exit, 2, &__MODULE__.ok/1},
    {:report_tail_call, 5, &__MODULE__.ok/1},
    {:report_error, 4, &__MODULE__.ok/1},
    {:report_local_variable_snapshot, 2, &__MODULE__.ok/1},
    {:report_local_variable_snapshot, 3, &__MODULE__.ok/1},
    {:report_expression_value, 3, &__MODULE__.ok/1},
    {:report_expression_value, 4, &__MODULE__.ok/1},
    {:report_state_change, 3, &__MODULE__.ok/1},
    {:report_state_change, 4, &__MODULE__.ok/1},
    {:report_send, 5, &__MODULE__.ok/1},
    {:report_receive, 5, &__MODULE__.ok/1},
    {:report_spawned, 5, &__MODULE__.ok/1},
    {:report_rpc, 4, &__MODULE__.id_or_nil/1},
    {:report_rpc_result, 4, &__MODULE__.ok/1},
    {:report_message_send, 2, &__MODULE__.id_or_nil/1},
    {:report_message_send, 3, &__MODULE__.id_or_nil/1},
    {:report_message_receive, 1, &__MODULE__.id_or_nil/1},
    {:report_message_receive, 2, &__MODULE__.id_or_nil/1},
    {:report_spawn, 1, &__MODULE__.id_or_nil/1},
    {:report_spawn, 2, &__MODULE__.id_or_nil/1},
    {:report_process_exit, 1, &__MODULE__.id_or_nil/1},
    {:report_custom, 2, &__MODULE__.id_or_nil/1},
    {:report_custom, 3, &__MODULE__.id_or_nil/1},
    {:enabled?, 1, &is_boolean/1}
  ]

  @doc false
  def id_or_nil(v), do: id_or_nil?(v)
  @doc false
  def ok(v), do: v == :ok

  # Half the calls get a plausible call id (from a real entry) as first argument, so that
  # the bad arguments reach the native side instead of stopping at the nil clause.
  defp run_all(seed) do
    Enum.reduce(1..@runs, Gen.new(seed), fn _, g ->
      Enum.reduce(@functions, g, fn {fun, arity, ok?}, g ->
        {as, g} = args(g, arity)
        {coin, g} = Gen.int(g, 0, 1)
        cid = InstrumentationRuntime.report_function_entry(NeverRaises, :f, [], 1) || 1
        as = if coin == 1 and fun not in [:report_message_receive, :report_spawn], do: [cid | tl(as)], else: as
        result = apply(InstrumentationRuntime, fun, as)
        assert ok?.(result), "#{fun}/#{arity} with #{inspect(as, limit: 8)} returned #{inspect(result, limit: 8)}"
        assert is_boolean(Switch.on?(hd(as)))
        {r, g} = wild(g)
        {before, g} = wild(g)
        {k, g} = Gen.int(g, 0, 5)
        kind = Enum.at([:gen_server, :gen_stage, :gen_statem, :gen_event, :gen_event_call, :other], k)
        assert InjectorHelpers.report_callback_state(InstrumentationRuntime, cid, kind, r, before, 1) == :ok
        g
      end)
    end)
  end

  test "the runtime's functions never raise, ElixirScope stopped" do
    ElixirScope.stop()
    run_all(11)
  end

  test "the runtime's functions never raise, capture on" do
    start_scope!(capture: [fuse: [enabled: false]], storage: [max_bytes: 64 <<< 20])
    run_all(12)
    stats = ElixirScope.stats()
    assert stats.stored > 0
    assert stats.emitted == stats.stored + stats.dropped + stats.lost + stats.pending
  end

  test "the runtime's functions never raise, capture switched off" do
    start_scope!(capture: [fuse: [enabled: false]])
    :ok = ElixirScope.disable()
    run_all(13)
    assert ElixirScope.stats().emitted == 0
  end

  test "the two cases that used to raise" do
    start_scope!()
    assert InstrumentationRuntime.report_custom("x", 1) == nil
    cid = InstrumentationRuntime.report_function_entry(M, :f, [])
    assert InstrumentationRuntime.report_local_variable_snapshot(cid, [1, 2]) == :ok
    assert InstrumentationRuntime.report_local_variable_snapshot(cid, [{:a, 1} | :improper]) == :ok
    assert InstrumentationRuntime.report_local_variable_snapshot(cid, [{"a", 1}]) == :ok
  end

  # The control-plane NIFs run on normal schedulers: each call must return within 1 ms
  # whatever its arguments (the best of five runs, so that a descheduled OS thread does
  # not count). Drains, queries, clear and get_event run on dirty schedulers.
  test "control-plane NIFs on normal schedulers return within 1 ms, whatever their arguments" do
    start_scope!(capture: [buffer_size: 1 <<< 22], max_memory: 2 <<< 30)
    s = ElixirScope.Capture.Session.info().session

    g =
      Enum.reduce(1..100, Gen.new(21), fn _, g ->
        {a, g} = wild(g)
        {cap, g} = Gen.one_of(g, [2, 1024, 1 <<< 22, 1 <<< 23, 3, a])
        {opts, g} = Gen.one_of(g, [%{ring_capacity: cap}, %{redact: a}, %{overflow: a}, a])

        for call <- [
              fn -> NIF.session_new(opts) end,
              fn -> NIF.stats(a) end,
              fn -> NIF.set_enabled(a, true) end,
              fn -> NIF.set_enabled(s, a) end,
              fn -> NIF.emit_exit(a, a) end,
              fn -> NIF.now() end
            ] do
          us = Enum.min(for _ <- 1..5, do: elem(:timer.tc(fn -> safely(call) end), 0))
          assert us < 1_000, "a normal-scheduler NIF call took #{us} µs"
        end

        g
      end)

    _ = g
    us = Enum.min(for _ <- 1..5, do: elem(:timer.tc(fn -> NIF.stats(s) end), 0))
    assert us < 1_000
  end

  defp safely(fun) do
    fun.()
  rescue
    ArgumentError -> :error
  end
end
