defmodule ElixirScope.AST.EventsTest do
  @moduledoc false
  # Instrumented fixtures run with ElixirScope capturing: the recorded events
  # (count, order, args, values, call/return and tail-call pairing) are checked.
  use ElixirScope.ScopeCase, async: false

  alias ElixirScope.AST.Transformer
  alias ElixirScope.Test.ASTCorpus

  setup_all do
    {fb, ""} =
      ASTCorpus.compile(
        "tricky.ex",
        [:Fixture, :Tricky],
        [:ESTest, :EvFB, :Tricky],
        :function_boundaries
      )

    {full, ""} =
      ASTCorpus.compile("tricky.ex", [:Fixture, :Tricky], [:ESTest, :EvFull, :Tricky], :full)

    {gs, ""} =
      ASTCorpus.compile(
        "counter_server.ex",
        [:Fixture, :CounterServer],
        [:ESTest, :EvGS, :Counter],
        :full
      )

    %{fb: fb, full: full, gs: gs}
  end

  setup do
    start_scope!()
  end

  defp events(pid \\ self()), do: ElixirScope.get_events(pid: pid)

  test "a tail-recursive function: one call per frame, tail calls between, one return", %{fb: m} do
    assert m.sum([1, 2, 3], 0) == 6
    evs = events()

    assert Enum.map(evs, & &1.kind) == [
             :call,
             :tail_call,
             :call,
             :tail_call,
             :call,
             :tail_call,
             :call,
             :return
           ]

    calls = Enum.filter(evs, &(&1.kind == :call))
    assert Enum.map(calls, & &1.payload) == [[[1, 2, 3], 0], [[2, 3], 1], [[3], 3], [[], 6]]
    assert Enum.all?(calls, &(&1.module == m and &1.function == :sum and &1.arity == 2))
    tails = Enum.filter(evs, &(&1.kind == :tail_call))

    assert Enum.map(tails, & &1.payload) == [
             {m, :sum, [[2, 3], 1]},
             {m, :sum, [[3], 3]},
             {m, :sum, [[], 6]}
           ]

    # each tail call belongs to the call before it; the return to the last call
    for [call, tail] <- evs |> Enum.chunk_every(2) |> Enum.take(3) do
      assert tail.call_id == call.id
      assert call.return_id == tail.id
    end

    [last_call, ret] = Enum.take(evs, -2)
    assert ret.payload == 6 and ret.call_id == last_call.id and last_call.return_id == ret.id
    assert last_call.line == 30
  end

  test "mutual recursion and a piped self call are recorded as tail calls", %{fb: m} do
    assert m.even?(3) == false
    kinds = Enum.map(events(), & &1.kind)
    assert kinds == [:call, :tail_call, :call, :tail_call, :call, :tail_call, :call, :return]
    :ok = ElixirScope.stop()
    start_scope!()
    assert m.count_piped(2, 0) == 2
    assert Enum.map(events(), & &1.kind) == [:call, :tail_call, :call, :tail_call, :call, :return]
  end

  test "a non-tail recursion returns from every frame in order", %{fb: m} do
    assert m.fact(3) == 6
    evs = events()

    assert Enum.map(evs, & &1.kind) == [
             :call,
             :call,
             :call,
             :call,
             :return,
             :return,
             :return,
             :return
           ]

    assert evs |> Enum.filter(&(&1.kind == :return)) |> Enum.map(& &1.payload) == [1, 1, 2, 6]
    [c1, c2, c3, c4, r4, r3, r2, r1] = evs

    assert {c1.return_id, c2.return_id, c3.return_id, c4.return_id} ==
             {r1.id, r2.id, r3.id, r4.id}
  end

  test "throws and exits are recorded with class, reason and stacktrace, then re-raised", %{fb: m} do
    assert catch_throw(m.fail(:throw)) == :thrown
    assert catch_exit(m.fail(:exit)) == :gone
    evs = events()
    assert Enum.map(evs, & &1.kind) == [:call, :exception, :call, :exception]
    [c1, e1, c2, e2] = evs
    assert {:throw, :thrown, [{^m, :fail, 1, loc} | _]} = e1.payload
    assert loc[:line] == 99
    assert {:exit, :gone, _} = e2.payload
    assert c1.return_id == e1.id and c2.return_id == e2.id
  end

  test "raised exceptions are recorded with the exception and the user's frame", %{fb: m} do
    assert_raise ArgumentError, "bad", fn -> m.fail(:raise) end
    [_, e1] = events()
    assert {:error, %ArgumentError{message: "bad"}, [{^m, :fail, 1, loc} | _]} = e1.payload
    assert loc[:line] == 98
  end

  test "a rescued exception inside an implicit try is not a frame exception", %{fb: m} do
    assert m.safe_div(1, 0) == :infinity
    assert Enum.map(events(), & &1.kind) == [:call, :return]
  end

  test ":full records expressions and locals in order, with values and lines", %{full: m} do
    assert m.locals(1) == 31
    evs = events()

    # `_ignored = d` binds a bare variable: its value is d's, recorded as a local just before,
    # and the user marked the name as unused, so it records neither an expression nor a local
    assert Enum.map(evs, & &1.kind) ==
             [
               :call,
               :expr,
               :local,
               :expr,
               :local,
               :expr,
               :local,
               :expr,
               :local,
               :expr,
               :return
             ]

    locals = for e <- evs, e.kind == :local, do: e.payload
    assert locals == [%{a: 2}, %{b: 4, c: 6}, %{d: 10}, %{e: 9}]
    exprs = for e <- evs, e.kind == :expr, do: e.payload

    assert exprs == [
             {"a = x + 1", 2},
             {"{b, c} = {a * 2, a * 3}", {4, 6}},
             {"[d | _] = [b + c, 0]", [10, 0]},
             {"%{key: e} = %{key: d - 1}", %{key: 9}},
             {"a + b + c + d + e", 31}
           ]

    call = hd(evs)
    assert Enum.all?(tl(evs), &(&1.call_id == call.id))
    assert Enum.map(for(e <- evs, e.kind == :local, do: e.line), & &1) == [152, 153, 154, 156]
    assert Enum.map(for(e <- evs, e.kind == :expr, do: e.line), & &1) == [152, 153, 154, 156, 157]
  end

  test "GenServer callbacks record the state before and after", %{gs: m} do
    {:ok, pid} = m.start_link(5)
    m.add(pid, 3)
    assert m.get(pid) == 8
    evs = events(pid)
    fun_of = Map.new(for e <- evs, e.kind == :call, do: {e.id, e.function})
    states = for e <- evs, e.kind == :state, do: {fun_of[e.call_id], e.payload}

    assert states == [
             {:init, {:after, %{count: 5}}},
             {:handle_cast, {:before, %{count: 5}}},
             {:handle_cast, {:after, %{count: 8}}},
             {:handle_call, {:before, %{count: 8}}},
             {:handle_call, {:after, %{count: 8}}}
           ]
  end

  # compiles src (written to a file, so statements get their source text) instrumented with plan
  defp compile_instrumented(src, plan) do
    file = Path.join(System.tmp_dir!(), "es_events_#{System.unique_integer([:positive])}.ex")
    File.write!(file, src)
    on_exit(fn -> File.rm(file) end)
    {:ok, ast} = src |> Code.string_to_quoted!(file: file) |> Transformer.transform_module(plan)
    [{mod, _} | _] = Code.compile_quoted(ast, file)
    assert ElixirScope.Test.ASTCorpus.instrumented?(mod)
    mod
  end

  test "an enhanced plan records only the named locals and expressions" do
    mod =
      compile_instrumented(
        """
        defmodule ESTest.EvEnhanced do
          def run(x) do
            important_var = x * 10
            other = important_var + 1
            result = complex_calculation(other)
            {important_var, result}
          end

          defp complex_calculation(v), do: v * 2
        end
        """,
        %{
          capture_locals: [:important_var, :result],
          trace_expressions: [:complex_calculation],
          functions: %{{:complex_calculation, 1} => %{level: :none}}
        }
      )

    assert mod.run(1) == {10, 22}
    evs = events()
    assert Enum.map(evs, & &1.kind) == [:call, :local, :expr, :local, :return]
    [_, l1, e, l2, ret] = evs
    assert l1.payload == %{important_var: 10}
    assert e.payload == {"result = complex_calculation(other)", 22}
    assert l2.payload == %{result: 22}
    assert ret.payload == {10, 22}
  end

  test "custom injections run before/after the statement on their line, with the variables they name" do
    mod =
      compile_instrumented(
        """
        defmodule ESTest.EvInject do
          def run(x) do
            important_var = x * 10
            result = important_var + 1
            {important_var, result}
          end
        end
        """,
        %{
          custom_injections: [
            {3, :before, quote(do: send(self(), {:before_line_3, binding()}))},
            {4, :after,
             quote(do: send(self(), {:after_line_4, var!(result), var!(important_var)}))},
            {5, :after, quote(do: send(self(), :after_last))},
            {4, :before, quote(do: raise("probe failed"))}
          ]
        }
      )

    assert mod.run(2) == {20, 21}
    assert_received {:before_line_3, []}
    assert_received {:after_line_4, 21, 20}
    assert_received :after_last
    # a failing injection is recorded, never raised into the program
    assert [{"custom injection failed", msg}] = for(e <- events(), e.kind == :expr, do: e.payload)
    assert msg =~ "probe failed"
  end

  test "a plan's levels and selections apply per function" do
    mod =
      compile_instrumented(
        """
        defmodule ESTest.EvPlanLevels do
        #{for name <- ~w(f g h k), do: "  def #{name}(x) do\n    a = x + 1\n    b = a * 2\n    a + b\n  end\n"}
        end
        """,
        %{
          level: :expressions,
          functions: %{
            {:f, 1} => %{level: :full, capture_locals: [:a]},
            {:g, 1} => %{level: :none},
            {:k, 1} => %{level: :locals}
          }
        }
      )

    kinds = fn fun ->
      :ok = ElixirScope.stop()
      start_scope!()
      assert apply(mod, fun, [1]) == 6
      for e <- events(), do: if(e.kind == :local, do: {:local, e.payload}, else: e.kind)
    end

    assert kinds.(:f) == [:call, :expr, {:local, %{a: 2}}, :expr, :expr, :return]
    assert kinds.(:g) == []
    assert kinds.(:h) == [:call, :expr, :expr, :expr, :return]

    assert kinds.(:k) == [
             :call,
             :expr,
             {:local, %{a: 2}},
             :expr,
             {:local, %{b: 4}},
             :expr,
             :return
           ]
  end

  test ":expressions records the statements of nested bodies; literal-only values are not recorded" do
    mod =
      compile_instrumented(
        """
        defmodule ESTest.EvNested do
          def run(x) do
            y = x * 2

            case y do
              4 ->
                z = y + 1
                {:four, z}

              _ ->
                :other
            end
          end
        end
        """,
        :expressions
      )

    assert mod.run(2) == {:four, 5}
    exprs = for e <- events(), e.kind == :expr, do: {e.line, e.payload}

    assert exprs == [
             {3, {"y = x * 2", 4}},
             {7, {"z = y + 1", 5}},
             {8, {"{:four, z}", {:four, 5}}}
           ]

    :ok = ElixirScope.stop()
    start_scope!()
    assert mod.run(1) == :other
    assert Enum.map(events(), & &1.kind) == [:call, :expr, :return]
  end

  test "values named like secrets, or computed on a line naming one, are never recorded" do
    mod =
      compile_instrumented(
        """
        defmodule ESTest.EvSecret do
          def login(user, password) do
            pin = String.trim(password)
            check = byte_size(pin) > 3
            {user, check}
          end
        end
        """,
        :full
      )

    assert mod.login("bob", " hunter2 ") == {"bob", true}
    evs = events()
    assert hd(evs).payload == ["bob", :"[REDACTED]"]
    leaked = for e <- evs, inspect(e.payload) =~ "hunter2", do: {e.kind, e.line, e.payload}
    assert leaked == []
  end
end
