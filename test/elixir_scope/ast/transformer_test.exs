defmodule ElixirScope.AST.TransformerTest do
  @moduledoc false
  use ExUnit.Case, async: true

  alias ElixirScope.AST.{EnhancedTransformer, Transformer}
  alias ElixirScope.Test.ASTCorpus

  setup_all do
    {full, ""} =
      ASTCorpus.compile("loops.ex", [:Fixture, :Loops], [:ESTest, :TailFull, :Loops], :full)

    {fb, ""} =
      ASTCorpus.compile(
        "loops.ex",
        [:Fixture, :Loops],
        [:ESTest, :TailFB, :Loops],
        :function_boundaries
      )

    {plain, ""} =
      ASTCorpus.compile("loops.ex", [:Fixture, :Loops], [:ESTest, :TailPlain, :Loops], :plain)

    %{full: full, fb: fb, plain: plain}
  end

  describe "tail calls stay tail calls" do
    test "a self-recursive loop runs in constant stack at every instrumented level", ctx do
      for mod <- [ctx.plain, ctx.fb, ctx.full] do
        {10, {:stack_size, small}} = mod.spin(10, 0)
        {100_000, {:stack_size, big}} = mod.spin(100_000, 0)

        assert big == small,
               "#{inspect(mod)}: stack #{small} after 10 iterations, #{big} after 100,000"
      end
    end

    test "a 10-million-deep tail-recursive loop completes in a process with a small heap limit",
         ctx do
      {pid, ref} =
        :erlang.spawn_opt(
          fn -> exit({:done, ctx.full.spin(10_000_000, 0)}) end,
          [:monitor, max_heap_size: %{size: 200_000, kill: true, error_logger: false}]
        )

      assert_receive {:DOWN, ^ref, :process, ^pid, {:done, {10_000_000, {:stack_size, s}}}},
                     60_000

      assert s < 100
    end

    test "remote calls to the module itself in tail position stay tail calls", ctx do
      {:stack_size, small} = ctx.full.self_remote(10)
      {:stack_size, big} = ctx.full.self_remote(100_000)
      assert big == small
    end

    test "loops through apply/3 and through anonymous functions stay in constant stack", ctx do
      for mod <- [ctx.plain, ctx.full] do
        {:stack_size, a_small} = mod.via_apply(10)
        {:stack_size, a_big} = mod.via_apply(100_000)
        assert a_big == a_small
        f = fn n, f -> mod.via_fun(n, f) end
        {:stack_size, f_small} = mod.via_fun(10, f)
        {:stack_size, f_big} = mod.via_fun(100_000, f)
        assert f_big <= f_small + 8, "#{inspect(mod)}: #{f_small} -> #{f_big}"
      end
    end

    test "a receive-loop process does not grow its stack or heap", ctx do
      pid = spawn(fn -> ctx.full.server(0) end)
      send(pid, {:get, self()})
      assert_receive {:state, 0, {:stack_size, s0}}

      for _ <- 1..50_000, do: send(pid, {:add, 1})
      send(pid, {:get, self()})
      assert_receive {:state, 50_000, {:stack_size, s1}}, 10_000
      assert s1 == s0
      {:total_heap_size, heap} = Process.info(pid, :total_heap_size)
      assert heap < 50_000
      send(pid, :stop)
    end
  end

  describe "GenServer callbacks" do
    @tag :capture_log
    test "an instrumented GenServer behaves as the plain one" do
      {plain, ""} =
        ASTCorpus.compile(
          "counter_server.ex",
          [:Fixture, :CounterServer],
          [:ESTest, :GSPlain, :Counter],
          :plain
        )

      {full, ""} =
        ASTCorpus.compile(
          "counter_server.ex",
          [:Fixture, :CounterServer],
          [:ESTest, :GSFull, :Counter],
          :full
        )

      for mod <- [plain, full] do
        {:ok, pid} = mod.start_link(5)
        mod.add(pid, 3)
        send(pid, :reset)
        mod.add(pid, 2)
        assert mod.get(pid) == 2
        Process.flag(:trap_exit, true)
        assert {{:badarith, [{^mod, :handle_call, 3, loc} | _]}, _} = catch_exit(mod.crash(pid))
        assert loc[:line] == 16
        assert_receive {:EXIT, ^pid, {:badarith, _}}
        assert {:error, :bad_initial} = mod.start_link(:x)
        assert_receive {:EXIT, _, :bad_initial}
      end
    end
  end

  describe "forms left alone" do
    test "macros, guards, delegates, bodiless heads and unquote fragments are not changed" do
      ast =
        quote unquote: false do
          defmodule Untouched do
            defmacro m(x), do: quote(do: unquote(x))
            defmacrop mp(x), do: x
            defguard is_ok(x) when x == :ok
            defdelegate rev(l), to: Enum, as: :reverse
            def with_default(a, b \\ 1)

            for n <- [:a, :b] do
              def unquote(n)(), do: unquote(n)
            end

            def unquote(:dyn)(x), do: x
            @doc "kept"
            @attr 1
          end
        end

      assert {:ok, ^ast} = Transformer.transform_module(ast, :full)
    end

    test "macros are instrumented only when the plan says macros: true" do
      ast = quote(do: defmodule(Mac, do: defmacro(m(x), do: x)))
      assert {:ok, ^ast} = Transformer.transform_module(ast, :full)
      {:ok, new} = Transformer.transform_module(ast, %{level: :full, macros: true})
      refute new == ast

      assert {:defmacro, _, [{:m, _, [{:=, _, [{:x, _, _}, {:es_arg1, _, _}]}]}, [do: body]]} =
               elem(new, 2) |> List.last() |> Keyword.fetch!(:do)

      assert Macro.to_string(body) =~ "report_function_entry"
    end

    test "level :none leaves a module unchanged" do
      ast = ASTCorpus.load("tricky.ex")
      assert {:ok, ^ast} = Transformer.transform_module(ast, :none)
    end

    test "functions set to :none in the plan are left alone" do
      ast =
        quote(
          do:
            defmodule(P,
              do:
                (
                  def a(x), do: x
                  def b(x), do: x
                )
            )
        )

      {:ok, new} =
        Transformer.transform_module(ast, %{
          level: :full,
          functions: %{{:a, 1} => %{level: :none}}
        })

      {:defmodule, _, [_, [do: {:__block__, _, [a, b]}]]} = new
      assert a == quote(do: def(a(x), do: x))
      refute b == quote(do: def(b(x), do: x))
    end
  end

  describe "line metadata" do
    test "user warnings point at the same lines when instrumented" do
      src = """
      defmodule ESTest.Warn.PLACE do
        def f(x) do
          unused = x + 1
          x
        end

        def g(y), do: y
      end
      """

      warnings =
        for {name, plan} <- [{"Plain", nil}, {"Full", :full}] do
          ast = Code.string_to_quoted!(String.replace(src, "PLACE", name), file: "warn.ex")
          ast = if plan, do: elem(Transformer.transform_module(ast, plan), 1), else: ast
          ExUnit.CaptureIO.capture_io(:stderr, fn -> Code.compile_quoted(ast, "warn.ex") end)
        end

      [plain, full] = warnings
      assert plain =~ ~s(variable "unused" is unused)
      assert plain =~ "warn.ex:3"
      assert String.replace(full, "Warn.Full", "Warn.Plain") == plain
    end

    test "stack traces keep the user's lines" do
      src = """
      defmodule ESTest.Lines.Full do
        def f(x) do
          y = x * 2
          z = y + 1
          z / (x - x)
        end
      end
      """

      {:ok, ast} =
        src |> Code.string_to_quoted!(file: "lines.ex") |> Transformer.transform_module(:full)

      Code.compile_quoted(ast, "lines.ex")

      assert {:raised, :error, :badarith, [{ESTest.Lines.Full, :f, 1, 5}]} =
               ASTCorpus.outcome(fn -> apply(ESTest.Lines.Full, :f, [1]) end)
    end
  end

  describe "robustness" do
    test "an invalid quoted form gives {:invalid_ast, path}" do
      bad = {:foo, [], [1, {:bar, [], [%{a: 1}]}]}
      assert {:error, {:invalid_ast, [2, 1, 2, 0]}} = Transformer.transform_module(bad, :full)

      assert {:error, {:invalid_ast, [1]}} =
               Transformer.transform_module({:x, :not_meta, nil}, :full)

      assert {:error, {:invalid_ast, []}} = Transformer.transform_module({1, 2, 3, 4}, :full)

      assert {:error, {:invalid_ast, [2, 1, 0, 1, 2, 0, 1]}} =
               Transformer.transform_module(
                 quote(do: defmodule(M, do: unquote({:f, [], [[1 | 2]]}))),
                 :full
               )
    end

    test "an expression nested 100,000 deep is transformed without overflowing the C stack" do
      deep = Enum.reduce(1..100_000, quote(do: x), fn _, acc -> {:+, [], [acc, 1]} end)
      ast = quote(do: defmodule(Deep, do: def(f(x), do: unquote(deep))))
      assert {:ok, {:defmodule, _, _}} = Transformer.transform_module(ast, :full)

      nested_list = Enum.reduce(1..100_000, 1, fn _, acc -> [acc] end)
      assert {:ok, ^nested_list} = Transformer.transform_module(nested_list, :full)
    end

    test "module structure nested 100,000 deep is rejected with :too_deep" do
      blocks =
        Enum.reduce(1..100_000, quote(do: def(f, do: 1)), fn _, acc -> {:__block__, [], [acc]} end)

      assert {:error, {:too_deep, _}} = Transformer.transform_module(blocks, :full)

      modules =
        Enum.reduce(1..100_000, quote(do: def(f, do: 1)), fn _, acc ->
          quote(do: defmodule(M, do: unquote(acc)))
        end)

      assert {:error, {:too_deep, _}} = Transformer.transform_module(modules, :full)
    end

    test "control structures nested deeper than the tail limit are still transformed" do
      body =
        Enum.reduce(1..5_000, quote(do: x), fn _, acc ->
          quote(do: if(x, do: unquote(acc), else: 0))
        end)

      ast = quote(do: defmodule(DeepIf, do: def(f(x), do: unquote(body))))
      assert {:ok, _} = Transformer.transform_module(ast, :full)
    end

    test "a 50,000-clause module is transformed" do
      clauses = for i <- 1..50_000, do: quote(do: def(f(unquote(i)), do: unquote(i) * 2))
      ast = quote(do: defmodule(Big, do: unquote({:__block__, [], clauses})))

      assert {:ok, {:defmodule, _, [_, [do: {:__block__, _, new}]]}} =
               Transformer.transform_module(ast, :full)

      assert length(new) == 50_000
    end

    test "the NIF validates its arguments" do
      assert_raise ArgumentError, ~r/AST must be a binary/, fn ->
        ElixirScope.NIF.ast_transform(:x, "")
      end

      assert_raise ArgumentError, ~r/plan must be a binary/, fn ->
        ElixirScope.NIF.ast_transform("", 1)
      end

      assert {:error, {:invalid_plan, _}} = ElixirScope.NIF.ast_transform("", "junk")

      plan =
        :erlang.term_to_binary(
          ElixirScope.AST.Plan.to_nif(elem(ElixirScope.AST.Plan.normalize(:full), 1))
        )

      assert {:error, {:bad_etf, _}} = ElixirScope.NIF.ast_transform(<<131, 104>>, plan)
    end
  end

  describe "plans through the transformer" do
    test "a plan naming a function the module does not define is an error" do
      ast = quote(do: defmodule(M, do: def(f(x), do: x)))

      assert {:error, {:undefined_functions, [g: 2]}} =
               Transformer.transform_module(ast, %{functions: %{{:g, 2} => %{}}})

      assert {:ok, _} =
               Transformer.transform_module(ast, %{functions: %{{:f, 1} => %{level: :full}}})

      assert {:error, {:invalid_plan, msg}} = Transformer.transform_module(ast, %{levle: :full})
      assert msg =~ ":levle"
    end

    test "transform_function instruments one definition" do
      ast = quote(do: def(double(x), do: x * 2))

      assert {:ok, {:def, _, [{:double, _, [{:=, _, [{:x, _, _}, _]}]}, [do: _]]}} =
               Transformer.transform_function(ast, :full)
    end

    test "enhanced instrumentation: custom injections run before/after the expression on a line" do
      src = """
      defmodule ESTest.Enhanced.Inject do
        def run(x) do
          important_var = x * 10
          result = complex_calculation(important_var)
          {important_var, result}
        end

        defp complex_calculation(v), do: v + 1
      end
      """

      plan = %{
        capture_locals: [:important_var, :result],
        trace_expressions: [:complex_calculation],
        custom_injections: [
          {3, :before, quote(do: send(self(), :before_line_3))},
          {4, :after, quote(do: send(self(), {:after_line_4, var!(result)}))},
          {5, :after, quote(do: send(self(), :after_last))}
        ]
      }

      {:ok, ast} =
        src
        |> Code.string_to_quoted!()
        |> EnhancedTransformer.transform_with_enhanced_instrumentation(plan)

      refute ExUnit.CaptureIO.capture_io(:stderr, fn -> Code.compile_quoted(ast, "inject.ex") end) =~
               "inject.ex"

      assert apply(ESTest.Enhanced.Inject, :run, [2]) == {20, 21}
      assert_received :before_line_3
      assert_received {:after_line_4, 21}
      assert_received :after_last
    end
  end
end
