defmodule ElixirScope.Capture.OffCopyTest do
  # With capture off, an instrumented clause asks the switch once and runs its body as written:
  # no report helper and no NIF is called, and values, exceptions, stack traces, fun names and
  # the stack of tail loops are those of the plain build (docs/ast_transformer.md).
  use ExUnit.Case, async: false

  alias ElixirScope.AST.Transformer
  alias ElixirScope.Capture.{Switch, SwitchLoader}

  @source """
  defmodule NAME do
    def sum(a, b, c, d) do
      s = a + b
      {s, c, d}
    end

    def pick({:ok, v}), do: v
    def pick([v]), do: v

    def boom(x) do
      y = x * 2
      y + :not_a_number
    end

    def count(0, acc), do: acc
    def count(n, acc), do: count(n - 1, acc + 1)

    def depth(0), do: Process.info(self(), :stack_size)
    def depth(n), do: depth(n - 1)

    # funs: the body is not copied (the compiler numbers them), the switch still decides first
    def doubled(xs) when is_list(xs), do: Enum.map(xs, fn x -> x * 2 end)
    def doubled(n), do: fn -> n * 2 end
  end
  """

  setup_all do
    ElixirScope.stop()
    plain = compile(ESTest.OffCopyPlain, nil)
    inst = compile(ESTest.OffCopy, :function_boundaries)
    :ok = SwitchLoader.load_now(:off, 5_000)

    on_exit(fn ->
      SwitchLoader.load_now(:dynamic, 5_000)

      for m <- [plain, inst] do
        :code.purge(m)
        :code.delete(m)
      end
    end)

    %{plain: plain, inst: inst}
  end

  defp compile(name, level) do
    ast = @source |> String.replace("NAME", inspect(name)) |> Code.string_to_quoted!(file: "off_copy.ex")
    ast = if level, do: elem(Transformer.transform_module(ast, level, off_copy: 200), 1), else: ast
    [{^name, _}] = Code.compile_quoted(ast, "off_copy.ex")
    name
  end

  # counts the calls of each {m, f, a} pattern while `fun` runs (breakpoints, as :cprof does)
  defp call_counts(patterns, fun) do
    for p <- patterns, do: :erlang.trace_pattern(p, true, [:call_count])

    try do
      fun.()

      for p <- patterns do
        {m, f, a} = p

        mfas =
          for {^f, arity} <- m.module_info(:functions) ++ m.module_info(:exports),
              a == :_ or arity == a,
              uniq: true,
              do: {m, f, arity}

        {p, Enum.sum(for mfa <- mfas, do: elem(:erlang.trace_info(mfa, :call_count), 1) || 0)}
      end
      |> Map.new()
    after
      for p <- patterns, do: :erlang.trace_pattern(p, false, [:call_count])
    end
  end

  defp outcome(fun) do
    {:ok, fun.()}
  catch
    kind, reason -> {:raised, kind, reason, __STACKTRACE__}
  end

  # the instrumented module's name read as the plain one's
  defp as_plain(a, %{inst: inst, plain: plain}) when is_atom(a), do: if(a == inst, do: plain, else: a)
  defp as_plain([h | t], ctx), do: [as_plain(h, ctx) | as_plain(t, ctx)]
  defp as_plain(t, ctx) when is_tuple(t), do: t |> Tuple.to_list() |> as_plain(ctx) |> List.to_tuple()
  defp as_plain(%{} = m, ctx), do: Map.new(m, fn {k, v} -> {as_plain(k, ctx), as_plain(v, ctx)} end)
  defp as_plain(other, _), do: other

  test "the :off shape is loaded", _ do
    assert SwitchLoader.shape() == :off
    refute Switch.on?(ESTest.OffCopy)
  end

  defp reports(inst) do
    # the NIF's own functions cannot be counted so: the generated code reaches them through these helpers
    [{inst, :"-es-entry-", :_}, {inst, :"-es-switch-entry-", :_}, {inst, :"-es-exit-", :_}, {inst, :"-es-tail-", :_}, {Switch, :on?, 1}]
  end

  defp same_outcomes(calls, %{inst: inst, plain: plain} = ctx) do
    for c <- calls, do: assert(as_plain(outcome(fn -> c.(inst) end), ctx) == outcome(fn -> c.(plain) end))
  end

  test "a copied clause calls no report helper, and asks the switch once", %{inst: inst} = ctx do
    calls = [
      fn m -> m.sum(1, 2, :c, "d") end,
      fn m -> m.pick({:ok, 1}) end,
      fn m -> m.pick([2]) end,
      fn m -> m.count(10, 0) end
    ]

    counts = call_counts(reports(inst), fn -> same_outcomes(calls, ctx) end)
    # sum, pick ×2, count 11 times
    assert %{{Switch, :on?, 1} => 14} = counts
    assert Enum.all?(Map.delete(counts, {Switch, :on?, 1}), fn {_, n} -> n == 0 end), inspect(counts)
  end

  test "a clause not copied (it makes funs) asks the switch once, in its entry helper, and records nothing",
       %{inst: inst} = ctx do
    counts = call_counts(reports(inst), fn -> same_outcomes([fn m -> m.doubled([1, 2]) end, fn m -> m.doubled(3).() end], ctx) end)
    assert %{{Switch, :on?, 1} => 2, {^inst, :"-es-switch-entry-", :_} => 2, {^inst, :"-es-entry-", :_} => 0} = counts
    # their other reports see the nil call id: the tail call's and the return's
    assert %{{^inst, :"-es-tail-", :_} => 1, {^inst, :"-es-exit-", :_} => 1} = counts
  end

  test "with capture on, the same calls are recorded", %{inst: inst} = ctx do
    :ok = ElixirScope.start()

    try do
      counts = call_counts(reports(inst), fn -> same_outcomes([fn m -> m.sum(1, 2, :c, "d") end, fn m -> m.doubled(3).() end], ctx) end)
      assert %{{Switch, :on?, 1} => 2, {^inst, :"-es-entry-", :_} => 1, {^inst, :"-es-switch-entry-", :_} => 1} = counts
      assert %{{^inst, :"-es-exit-", :_} => 2} = counts
      ElixirScope.flush()
      assert [:call, :return, :call, :return] = for(e <- ElixirScope.get_events(module: inst), do: e.kind)
    after
      ElixirScope.stop()
      :ok = SwitchLoader.load_now(:off, 5_000)
    end
  end

  defmodule Runtime do
    @moduledoc false
    # a custom runtime: tells the test process what it is given
    def report_function_entry(mod, fun, args, _line), do: send(:off_copy_test, {:entry, mod, fun, args}) && 7
    def report_function_exit(call, value), do: send(:off_copy_test, {:exit, call, value})
  end

  test "a custom runtime is entered only when the switch says on" do
    mod = ESTest.OffCopyCustom
    ast = @source |> String.replace("NAME", inspect(mod)) |> Code.string_to_quoted!()
    {:ok, ast} = Transformer.transform_module(ast, :function_boundaries, runtime: Runtime, off_copy: 200)
    Code.compile_quoted(ast)
    Process.register(self(), :off_copy_test)

    try do
      assert mod.sum(1, 2, :c, "d") == {3, :c, "d"}
      refute_received _
      :ok = ElixirScope.start()
      assert mod.sum(1, 2, :c, "d") == {3, :c, "d"}
      assert_received {:entry, ^mod, :sum, [1, 2, :c, "d"]}
      assert_received {:exit, 7, {3, :c, "d"}}
    after
      Process.unregister(:off_copy_test)
      ElixirScope.stop()
      :ok = SwitchLoader.load_now(:off, 5_000)
      :code.purge(mod)
      :code.delete(mod)
    end
  end

  test "exceptions: the same class, reason and stack trace as the plain build", %{inst: inst, plain: plain} = ctx do
    for call <- [fn m -> m.boom(1) end, fn m -> m.pick(:nope) end, fn m -> m.sum(:a, 1, 2, 3) end] do
      got = outcome(fn -> call.(inst) end)
      expected = outcome(fn -> call.(plain) end)
      assert {:raised, _, _, stack} = got
      assert Enum.any?(stack, &match?({^inst, _, _, _}, &1))
      # this test's own frames differ by the calling closure's name: the plain module's frames
      assert user_frames(as_plain(got, ctx), plain) == user_frames(expected, plain)
    end
  end

  test "funs have the names of the plain build", %{inst: inst, plain: plain} do
    assert Function.info(inst.doubled(1))[:name] == Function.info(plain.doubled(1))[:name]
  end

  test "a tail-recursive loop runs in constant stack", %{inst: inst} do
    assert inst.depth(100_000) == inst.depth(1)
    assert inst.count(100_000, 0) == 100_000
  end

  defp user_frames({:raised, kind, reason, stack}, plain),
    do: {kind, reason, for({^plain, _, _, _} = frame <- stack, do: frame)}
end
