defmodule ElixirScope.AST.TransformerTest do
  @moduledoc false
  # The transformer instruments a module's Erlang abstract forms (after every macro is
  # expanded). These tests check what instrumented code does (constant-stack loops, exceptions,
  # warnings, lines), which functions get instrumented, the shape of the instrumented forms, and
  # that bad or huge input gives an error or a result, never a crash or a blocked scheduler.
  use ExUnit.Case, async: true

  alias ElixirScope.AST.{InjectorHelpers, Transformer}
  alias ElixirScope.Compiler.ParseTransform
  alias ElixirScope.Test.ASTCorpus
  alias ElixirScope.Capture.InstrumentationRuntime

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

  defp forms_of(src), do: ASTCorpus.forms_of_source(src)

  defp function_form(forms, name, arity),
    do: Enum.find(forms, &match?({:function, _, ^name, ^arity, _}, &1))

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

    test "tail calls inside macro expansions stay tail calls (imported, remote, do blocks, nested macros)",
         ctx do
      funs = [
        :imported_case,
        :remote_case,
        :macro_cond,
        :macro_if,
        :macro_with,
        :macro_in_macro,
        :macro_call
      ]

      for mod <- [ctx.plain, ctx.fb, ctx.full], fun <- funs do
        {:stack_size, small} = apply(mod, fun, [10])
        {:stack_size, big} = apply(mod, fun, [100_000])
        assert big == small, "#{inspect(mod)}.#{fun}: stack #{small} -> #{big}"
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

    test "a tail call nested in more control structures than the tail limit still computes the same value" do
      # FX_MAX_TAIL_DEPTH (200): deeper structures stay values inside the frame's try
      # (correct; only not a tail call). Below it the loop is in constant stack.
      src = fn name, depth ->
        body =
          Enum.reduce(1..depth, quote(do: loop(n - 1)), fn _, acc ->
            quote(do: if(n >= 0, do: unquote(acc), else: :never))
          end)

        quote do
          defmodule unquote(name) do
            def loop(0), do: Process.info(self(), :stack_size)
            def loop(n), do: unquote(body)
          end
        end
      end

      for {depth, constant?} <- [{150, true}, {300, false}] do
        plain = Module.concat(ESTest.DeepIfPlain, "D#{depth}")
        inst = Module.concat(ESTest.DeepIfFull, "D#{depth}")
        Code.compile_quoted(src.(plain, depth))
        {:ok, ast} = Transformer.transform_module(src.(inst, depth), :full)
        Code.compile_quoted(ast)
        assert ASTCorpus.instrumented?(inst)
        {:stack_size, p} = plain.loop(1000)
        {:stack_size, small} = inst.loop(10)
        {:stack_size, big} = inst.loop(1000)
        assert p == plain.loop(10) |> elem(1)
        assert big == small == constant?, "depth #{depth}: stack #{small} -> #{big}"
      end
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

  describe "what is instrumented" do
    test "transform_module only names the plan in each module; the code is unchanged" do
      ast =
        quote do
          defmodule Outer do
            def f(x), do: x

            defmodule Inner do
              def g, do: :g
            end

            defimpl String.Chars, for: Outer do
              def to_string(_), do: "outer"
            end
          end
        end

      {:ok, new} = Transformer.transform_module(ast, :full, runtime: SomeRuntime)
      plan_attrs = fn body -> Enum.filter(body, &match?({:@, _, [{:compile, _, _}]}, &1)) end

      {_, seen} =
        Macro.prewalk(new, [], fn
          {kind, _, [_ | _] = args} = node, acc when kind in [:defmodule, :defimpl] ->
            {:__block__, _, body} = List.last(args)[:do]
            {node, [plan_attrs.(body) | acc]}

          node, acc ->
            {node, acc}
        end)

      expected = [
        quote(do: @compile({:elixir_scope_plan, :full})),
        quote(do: @compile({:elixir_scope_runtime, unquote(SomeRuntime)}))
      ]

      assert length(seen) == 3
      assert Enum.all?(seen, &(strip_meta(&1) == strip_meta(expected)))

      # without the attributes, the code is what was given
      unmarked =
        Macro.prewalk(new, fn
          {:__block__, [], items} -> {:__block__, [], items -- plan_attrs.(items)}
          other -> other
        end)

      assert strip_meta(unmarked) |> unwrap_blocks() == strip_meta(ast) |> unwrap_blocks()
    end

    test "what the compiler generates is left alone; every function the user wrote is instrumented" do
      forms =
        forms_of("""
        defmodule ESTest.TF.Generated do
          defmacro m(x), do: x
          defmacrop mp(x), do: x
          defguard is_ok(x) when x == :ok
          defdelegate rev(l), to: Enum, as: :reverse
          defstruct [:field]
          def with_default(a, b \\\\ 1)
          def with_default(a, b), do: {a, mp(b)}

          for n <- [:a, :b] do
            def unquote(n)(), do: unquote(n)
          end

          def unquote(:dyn)(x), do: x
        end
        """)

      {:ok, new} = Transformer.transform_forms(forms, :full)
      instrumented = ASTCorpus.instrumented_functions(new)
      assert Enum.sort(instrumented) == [a: 0, b: 0, dyn: 1, rev: 1, with_default: 2]

      # macros (defguard's too), __info__/1, __struct__ and the default-argument filler
      for {:function, _, name, arity, _} = f <- forms, {name, arity} not in instrumented do
        assert f in new, "#{name}/#{arity} was changed"
      end

      assert {:"MACRO-is_ok", 2} in for({:function, _, n, a, _} <- forms, do: {n, a})

      assert {:attribute, _, :elixir_scope, %{level: :full}} =
               Enum.find(new, &match?({:attribute, _, :elixir_scope, _}, &1))
    end

    test "macros are instrumented only when the plan says macros: true" do
      forms = forms_of("defmodule ESTest.TF.Mac do\n  defmacro m(x), do: x\nend\n")
      assert {:ok, ^forms} = Transformer.transform_forms(forms, :full)
      {:ok, new} = Transformer.transform_forms(forms, %{level: :full, macros: true})
      assert ASTCorpus.instrumented_functions(new) == [{:"MACRO-m", 2}]
    end

    test "functions set to :none in the plan are left alone" do
      forms =
        forms_of("defmodule ESTest.TF.NoneFun do\n  def a(x), do: x\n  def b(x), do: x\nend\n")

      {:ok, new} =
        Transformer.transform_forms(forms, %{
          level: :full,
          functions: %{{:a, 1} => %{level: :none}}
        })

      assert ASTCorpus.instrumented_functions(new) == [b: 1]
      assert function_form(new, :a, 1) == function_form(forms, :a, 1)
    end

    test "a module at level :none compiles to exactly the plain module (:beam_lib.md5)" do
      ast =
        ASTCorpus.load("tricky.ex") |> ASTCorpus.rename([:Fixture, :Tricky], [:ESTest, :NoneMd5])

      {:ok, none} = Transformer.transform_module(ast, :none)

      [plain, marked] =
        for code <- [ast, none] do
          ExUnit.CaptureIO.capture_io(:stderr, fn ->
            send(self(), {:compiled, Code.compile_quoted(code, "none.ex")})
          end)

          assert_received {:compiled, modules}
          Enum.map(modules, fn {mod, bin} -> {mod, :beam_lib.md5(bin)} end)
        end

      assert length(plain) == 2
      assert marked == plain
      refute ASTCorpus.instrumented?(ESTest.NoneMd5)
    end
  end

  describe "the instrumented forms" do
    test "each clause reports its entry, runs in a try that re-raises unchanged, and makes its tail call after it" do
      forms =
        forms_of("""
        defmodule ESTest.TF.Shape do
          def f({a, b}, c) do
            x = a + b
            g(x, c)
          end

          def f(_, c), do: c

          defp g(x, c), do: x * c
        end
        """)

      # compiled with ast: [off_copy: 200]; without it, no clause gets a copy
      {:ok, new} = Transformer.transform_forms(forms, :function_boundaries, off_copy: 200)
      {:ok, uncopied} = Transformer.transform_forms(forms, :function_boundaries)
      {:function, _, :f, 2, [c1, c2]} = function_form(new, :f, 2)
      {:function, _, :f, 2, [{:clause, _, _, _, [{:match, _, {:var, _, :ES@call}, _} | _]} | _]} = function_form(uncopied, :f, 2)

      # f({a, b}, c): the pattern argument is aliased; the body asks the switch first, once:
      # with capture off it runs the body as written, with capture on the instrumented one
      assert {:clause, 2, [{:match, 2, {:tuple, 2, _}, {:var, _, :ES@arg1}}, {:var, 2, :_c@1}],
              [], [switch]} = c1

      {:function, _, :f, 2, [{:clause, _, _, _, plain_body} | _]} = function_form(forms, :f, 2)

      assert {:case, [generated: true, location: 2],
              {:call, _, {:remote, _, {:atom, _, ElixirScope.Capture.Switch}, {:atom, _, :on?}},
               [{:atom, _, ESTest.TF.Shape}]},
              [
                {:clause, _, [{:atom, _, false}], [], [{:block, _, ^plain_body}]},
                {:clause, _, [{:var, _, :_}], [], [{:block, _, [entry, dispatch]}]}
              ]} = switch

      # the entry is a call to the module's entry helper with the function, line and arguments;
      # before a try, its value passes through a case that returns it (its join keeps the try's
      # tag company: see "reaches the optimizer's fixpoint" in fast_compile_test.exs)
      assert {:match, anno, {:var, _, :ES@call},
              {:case, _,
               {:call, _, {:atom, _, :"-es-entry-"},
                [{:atom, _, :f}, {:integer, _, 2}, {:var, _, :ES@arg1}, {:var, 2, :_c@1}]},
               [
                 {:clause, _, [{:atom, _, nil}], [], [{:atom, _, nil}]},
                 {:clause, _, [{:var, _, :ES@id}], [], [{:var, _, :ES@id}]}
               ]}} = entry

      assert anno == [generated: true, location: 2]

      # compiled with no_ssa_opt_try (the fast compile options), the entry is bound as it is
      {:ok, fast, []} = ParseTransform.transform_forms(forms, :function_boundaries, try_join: false, off_copy: 200)
      {:function, _, :f, 2, [{:clause, _, _, [], fast_body} | _]} = function_form(fast, :f, 2)
      assert {:match, _, {:var, _, :ES@call}, {:call, _, {:atom, _, :"-es-entry-"}, _}} =
               hd(ASTCorpus.recorded_body(fast_body))

      # the switch said on: the entry helper reports, without asking again
      {:function, _, :"-es-entry-", 4, [{:clause, _, _, [], [helper_body]}]} =
        function_form(new, :"-es-entry-", 4)

      assert {:call, _, {:remote, _, {:atom, _, ElixirScope.NIF}, {:atom, _, :emit_entry}}, _} = helper_body

      # the body ends by a tail call only: no clause for a value
      assert {:case, _, {:try, _, try_body, [], [catch_clause], []}, [tail_clause]} = dispatch

      assert {:match, 3, {:var, 3, :_x@1}, {:op, 3, :+, _, _}} = hd(try_body)

      assert {:tuple, _,
              [{:atom, _, :"$es_tail"}, {:integer, _, 0}, {:var, 4, :_x@1}, {:var, 4, :_c@1}]} =
               List.last(try_body)

      assert {:clause, _,
              [{:tuple, _, [{:var, _, :ES@kind}, {:var, _, :ES@reason}, {:var, _, :ES@stack}]}],
              [],
              [
                {:call, _, {:remote, _, {:atom, _, InjectorHelpers}, {:atom, _, :reraise}},
                 reraise_args}
              ]} = catch_clause

      assert [
               _runtime,
               {:var, _, :ES@call},
               {:var, _, :ES@kind},
               {:var, _, :ES@reason},
               {:var, _, :ES@stack}
             ] = reraise_args

      assert {:clause, _,
              [
                {:tuple, _,
                 [
                   {:atom, _, :"$es_tail"},
                   {:integer, _, 0},
                   {:var, _, :ES@tail1},
                   {:var, _, :ES@tail2}
                 ]}
              ], [],
              [_report, {:call, 4, {:atom, 4, :g}, [{:var, _, :ES@tail1}, {:var, _, :ES@tail2}]}]} =
               tail_clause

      # f(_, c): no tail call, the simple shape; off, the one expression of its body
      assert {:clause, 7, [{:match, 7, {:var, 7, :_}, {:var, _, :ES@arg1}}, {:var, 7, :_c@1}], [],
              [{:case, _, _, [{:clause, _, [{:atom, _, false}], [], [{:var, 7, :_c@1}]}, _]} = c2_switch]} = c2

      assert [
               # returning a variable cannot raise: no try, and the entry as it is
               {:match, _, {:var, _, :ES@call}, {:call, _, {:atom, _, :"-es-entry-"}, _}},
               {:match, _, {:var, _, :ES@result}, {:block, _, [{:var, 7, :_c@1}]}},
               _exit,
               {:var, _, :ES@result}
             ] = ASTCorpus.recorded_body([c2_switch])

      # and the result compiles
      assert {:ok, ESTest.TF.Shape, _} = :compile.forms(new, [:binary, :return_errors])
    end
  end

  describe "spawns" do
    test "a spawn's result is bound, reported with the call's arguments, and returned; async_stream is left alone" do
      forms =
        forms_of("""
        defmodule ESTest.TF.Spawns do
          def t(x), do: Task.async(fn -> x end)
          def s(m, a), do: spawn(m, :f, a)
          def st(xs), do: Task.async_stream(xs, & &1)
        end
        """)

      {:ok, new} = Transformer.transform_forms(forms, :function_boundaries)
      {:function, _, :t, 1, [{:clause, _, _, _, body}]} = function_form(new, :t, 1)
      # a value now, not a tail call: the try's last expression is the block
      assert [_entry, {:match, _, {:var, _, :ES@result}, {:try, _, try_body, _, _, _}} | _] = body

      assert {:block, _,
              [
                {:match, _, {:var, _, sent}, {:fun, _, _}},
                {:match, _, {:var, _, spawned},
                 {:call, 2, {:remote, _, {:atom, _, Task}, {:atom, _, :async}}, [{:var, _, sent}]}},
                {:case, _, {:var, _, :ES@call}, [_nil, {:clause, _, _, _, [report]}]},
                {:var, _, spawned}
              ]} = List.last(try_body)

      assert {:call, _, {:remote, _, {:atom, _, InstrumentationRuntime}, {:atom, _, :report_spawned}},
              [{:var, _, :ES@call}, {:atom, _, :task}, {:cons, _, {:var, _, ^sent}, {nil, _}}, {:var, _, ^spawned},
               {:integer, _, 2}]} = report

      {:function, _, :s, 2, [{:clause, _, _, _, s_body}]} = function_form(new, :s, 2)
      assert inspect(s_body, limit: :infinity) =~ ":spawn}"
      assert inspect(s_body, limit: :infinity) =~ "report_spawned"
      {:function, _, :st, 1, [{:clause, _, _, _, st_body}]} = function_form(new, :st, 1)
      refute inspect(st_body, limit: :infinity) =~ "report_spawned"
      assert {:ok, ESTest.TF.Spawns, _} = :compile.forms(new, [:binary, :return_errors])
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
      assert ASTCorpus.instrumented?(ESTest.Warn.Full)
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
      assert ASTCorpus.instrumented?(ESTest.Lines.Full)

      assert {:raised, :error, :badarith, [{ESTest.Lines.Full, :f, 1, 5}]} =
               ASTCorpus.outcome(fn -> apply(ESTest.Lines.Full, :f, [1]) end)
    end
  end

  describe "robustness" do
    test "an invalid plan, and forms that are not an Elixir module's, are errors" do
      ast = quote(do: defmodule(M, do: def(f(x), do: x)))

      assert {:error, {:invalid_plan, msg} = reason} =
               Transformer.transform_module(ast, %{levle: :full})

      assert msg =~ ":levle"
      assert Transformer.format_error(reason) =~ "invalid plan"

      forms = forms_of("defmodule ESTest.TF.Err do\n  def f(x), do: x\nend\n")
      assert {:error, {:invalid_plan, _}} = Transformer.transform_forms(forms, :everything)

      erlang = [
        {:attribute, 1, :module, :m},
        {:function, 2, :f, 0, [{:clause, 2, [], [], [{:atom, 2, :ok}]}]}
      ]

      assert {:error, :not_an_elixir_module} = Transformer.transform_forms(erlang, :full)

      assert Transformer.format_error(:not_an_elixir_module) =~
               "not the forms of an Elixir module"

      # protocols are left plain
      {_, beam, _} = :code.get_object_code(String.Chars)

      assert {:error, :not_an_elixir_module} =
               Transformer.transform_forms(ASTCorpus.forms(beam), :full)
    end

    test "a plan naming a function the module does not define is a warning; the module is instrumented" do
      ast = Code.string_to_quoted!("defmodule ESTest.TF.Unknown do\n  def f(x), do: x\nend\n")
      {:ok, ast} = Transformer.transform_module(ast, %{functions: %{{:g, 2} => %{}}})

      stderr =
        ExUnit.CaptureIO.capture_io(:stderr, fn -> Code.compile_quoted(ast, "unknown.ex") end)

      assert stderr =~ "the plan of ESTest.TF.Unknown names functions it does not define: g/2"
      mod = ESTest.TF.Unknown
      assert ASTCorpus.instrumented?(mod)
      assert mod.f(1) == 1
    end

    test "a module whose plan cannot be applied compiles plain, with a warning naming the reason" do
      ParseTransform.install()

      src = """
      defmodule ESTest.TF.BadPlan do
        @compile {:elixir_scope_plan, %{level: :loud}}
        def f(x), do: x
      end
      """

      stderr =
        ExUnit.CaptureIO.capture_io(:stderr, fn -> Code.compile_string(src, "bad_plan.ex") end)

      assert stderr =~ "ESTest.TF.BadPlan is compiled without instrumentation: invalid plan"
      assert stderr =~ ":loud"
      assert stderr =~ "bad_plan.ex"
      mod = ESTest.TF.BadPlan
      refute ASTCorpus.instrumented?(mod)
      assert mod.f(1) == 1
    end

    # Runs fun in a new process under a long_schedule system monitor: the transformer must run
    # on a dirty scheduler, never holding a normal one for long (a NIF on a normal scheduler
    # transforming 20,000 clauses holds it for seconds). Returns fun's result.
    defp without_long_schedule(fun) do
      me = self()
      previous = :erlang.system_monitor(me, [{:long_schedule, 400}])

      try do
        pid = spawn(fn -> send(me, {:result, self(), fun.()}) end)
        assert_receive {:result, ^pid, result}, 300_000
        # the monitor reports when the process is scheduled out, possibly after its message
        refute_receive {:monitor, ^pid, :long_schedule, _}, 200
        result
      after
        case previous do
          {pid, opts} -> :erlang.system_monitor(pid, opts)
          :undefined -> :erlang.system_monitor(:undefined)
        end
      end
    end

    defp with_clauses(forms, name, arity, clauses) do
      Enum.map(forms, fn
        {:function, a, ^name, ^arity, _} -> {:function, a, name, arity, clauses}
        other -> other
      end)
    end

    @tag timeout: 300_000
    test "an expression nested 100,000 deep is instrumented on a dirty scheduler" do
      forms = forms_of("defmodule ESTest.TF.Deep do\n  def f(x), do: x\nend\n")

      deep =
        Enum.reduce(1..100_000, {:var, 2, :_x@1}, fn _, acc ->
          {:op, 2, :+, acc, {:integer, 2, 1}}
        end)

      forms = with_clauses(forms, :f, 1, [{:clause, 2, [{:var, 2, :_x@1}], [], [deep]}])

      assert [f: 1] ==
               without_long_schedule(fn ->
                 {:ok, new} = Transformer.transform_forms(forms, :full)
                 ASTCorpus.instrumented_functions(new)
               end)
    end

    test "a function of 100,000 sends is instrumented, each argument of each send in a variable of its own" do
      # The NIF glue makes each new variable name an atom once, through a hash table whose hash
      # once read only the first and last 8 bytes of a name: these 200,000 names (ES@sent1 …)
      # shared about 900 slots, and building the result took minutes (the default timeout bounds it).
      forms = forms_of("defmodule ESTest.TF.Sends do\n  def f(x), do: x\nend\n")
      send = fn i -> {:call, 2, {:remote, 2, {:atom, 2, :erlang}, {:atom, 2, :send}}, [{:var, 2, :_x@1}, {:integer, 2, i}]} end
      forms = with_clauses(forms, :f, 1, [{:clause, 2, [{:var, 2, :_x@1}], [], Enum.map(1..100_000, send)}])

      {:ok, new} = Transformer.transform_forms(forms, :function_boundaries)
      assert new |> function_form(:f, 1) |> sent_vars(MapSet.new()) |> MapSet.size() == 200_000
    end

    defp sent_vars({:var, _, name}, acc) do
      if String.starts_with?(Atom.to_string(name), "ES@sent"), do: MapSet.put(acc, name), else: acc
    end

    defp sent_vars(t, acc) when is_tuple(t), do: sent_vars(Tuple.to_list(t), acc)
    defp sent_vars([h | t], acc), do: sent_vars(t, sent_vars(h, acc))
    defp sent_vars(_, acc), do: acc

    test "a moderately deep expression compiles instrumented and computes the same value" do
      # (the Erlang compiler itself is quadratic in expression depth: 5,000 deep takes ~45 s plain)
      deep = Enum.reduce(1..300, quote(do: x), fn _, acc -> quote(do: unquote(acc) + 1) end)

      {:ok, ast} =
        Transformer.transform_module(
          quote(do: defmodule(ESTest.TF.Deep300, do: def(f(x), do: unquote(deep)))),
          :full
        )

      Code.compile_quoted(ast)
      mod = ESTest.TF.Deep300
      assert ASTCorpus.instrumented?(mod)
      assert mod.f(1) == 301
    end

    @tag timeout: 300_000
    test "a 20,000-clause function is instrumented on a dirty scheduler" do
      forms = forms_of("defmodule ESTest.TF.Big do\n  def f(x), do: x\nend\n")

      clauses =
        for i <- 1..20_000,
            do:
              {:clause, 2, [{:integer, 2, i}], [],
               [{:op, 2, :*, {:integer, 2, i}, {:integer, 2, 2}}]}

      forms = with_clauses(forms, :f, 1, clauses)

      {n, aliased} =
        without_long_schedule(fn ->
          {:ok, new} = Transformer.transform_forms(forms, :full)
          {:function, _, :f, 1, out} = function_form(new, :f, 1)

          {length(out),
           Enum.count(
             out,
             &match?({:clause, _, [{:match, _, {:integer, _, _}, {:var, _, :ES@arg1}}], _, _}, &1)
           )}
        end)

      # and the clause that records a call no clause matches
      assert {n, aliased} == {20_001, 20_000}
    end

    test "a function of 200 clauses compiles instrumented and behaves as plain" do
      clauses = for i <- 1..200, do: quote(do: def(f(unquote(i)), do: unquote(i) * 2))
      clauses = clauses ++ [quote(do: def(f(x) when is_integer(x), do: f(x - 200)))]

      for {name, plan} <- [{ESTest.TF.Clauses.Plain, nil}, {ESTest.TF.Clauses.Full, :full}] do
        ast = quote(do: defmodule(unquote(name), do: unquote({:__block__, [], clauses})))
        ast = if plan, do: elem(Transformer.transform_module(ast, plan), 1), else: ast
        Code.compile_quoted(ast)
      end

      {full, plain} = {ESTest.TF.Clauses.Full, ESTest.TF.Clauses.Plain}
      assert ASTCorpus.instrumented?(full)

      for x <- [1, 77, 200, 201, 1_000, :x] do
        assert ASTCorpus.outcome(fn -> full.f(x) end)
               |> ASTCorpus.normalize(
                 "Elixir.ESTest.TF.Clauses.Full",
                 "Elixir.ESTest.TF.Clauses.Plain"
               ) ==
                 ASTCorpus.outcome(fn -> plain.f(x) end)
      end
    end

    test "ParseTransform.c_plan/3 is the plan transform_forms/3 hands the NIF" do
      forms = forms_of("defmodule ESTest.TF.CPlan do\n  def f(x), do: send(x, :hi)\n  def g, do: :ok\nend\n")
      etf = &:erlang.term_to_binary/1

      {:ok, c_plan, []} = ParseTransform.c_plan(forms, :full, off_copy: 200)
      assert %{module: ESTest.TF.CPlan, off_copy: 200, try_join: true} = c_plan
      assert [:f, :g] == for({name, _arity, _spec} <- c_plan.functions, do: name)
      {:ok, new} = ElixirScope.NIF.forms_transform(etf.(forms), etf.(c_plan))
      {:ok, tagged, []} = ParseTransform.transform_forms(forms, :full, off_copy: 200)
      assert Enum.reject(tagged, &match?({:attribute, _, :elixir_scope, _}, &1)) == new

      # nothing to instrument, and the errors transform_forms/3 gives
      assert {:ok, nil, []} = ParseTransform.c_plan(forms, %{level: :full, functions: %{{:f, 1} => %{level: :none}, {:g, 0} => %{level: :none}}})
      assert {:error, {:invalid_plan, _}} = ParseTransform.c_plan(forms, :everything)
      assert {:error, :not_an_elixir_module} = ParseTransform.c_plan([{:attribute, 1, :module, :m}], :full)
    end

    test "the NIF validates its arguments" do
      assert_raise ArgumentError, ~r/forms must be a binary/, fn ->
        ElixirScope.NIF.forms_transform(:x, "")
      end

      assert_raise ArgumentError, ~r/plan must be a binary/, fn ->
        ElixirScope.NIF.forms_transform("", 1)
      end

      forms =
        :erlang.term_to_binary(forms_of("defmodule ESTest.TF.Nif do\n  def f(x), do: x\nend\n"))

      assert {:error, :invalid_forms} = ElixirScope.NIF.forms_transform("", "junk")
      assert {:error, :invalid_forms} = ElixirScope.NIF.forms_transform(<<131, 104>>, "junk")

      assert {:error, :invalid_forms} =
               ElixirScope.NIF.forms_transform(:erlang.term_to_binary(:x), "")

      assert {:error, :invalid_plan} = ElixirScope.NIF.forms_transform(forms, "junk")

      assert {:error, :invalid_plan} =
               ElixirScope.NIF.forms_transform(forms, :erlang.term_to_binary(%{}))

      plan = %{
        module: ESTest.TF.Nif,
        templates: InjectorHelpers.templates(),
        functions: [{:f, 1, %{level: 9}}]
      }

      assert {:error, {:invalid_plan, {:f, 1, %{level: 9}}}} =
               ElixirScope.NIF.forms_transform(forms, :erlang.term_to_binary(plan))

      # an Erlang function takes at most 255 arguments
      plan = %{plan | functions: [{:f, 65_535, %{level: 1}}]}

      assert {:error, {:invalid_plan, {:f, 65_535, %{level: 1}}}} =
               ElixirScope.NIF.forms_transform(forms, :erlang.term_to_binary(plan))
    end
  end

  describe "plans through the transformer" do
    test "custom injections compile without warnings; with capture off they do not run" do
      # (they run, and see the variables they name, while capturing: see EventsTest)
      src = """
      defmodule ESTest.Enhanced.Off do
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
          {4, :after, quote(do: send(self(), {:after_line_4, var!(result)}))}
        ]
      }

      {:ok, ast} = src |> Code.string_to_quoted!() |> Transformer.transform_module(plan)

      refute ExUnit.CaptureIO.capture_io(:stderr, fn -> Code.compile_quoted(ast, "inject.ex") end) =~
               "inject.ex"

      mod = ESTest.Enhanced.Off
      assert ASTCorpus.instrumented?(mod)
      assert mod.run(2) == {20, 21}
      refute_received :before_line_3
      refute_received {:after_line_4, _}
    end

    test "a custom injection of any size is applied" do
      src =
        "defmodule ESTest.Enhanced.Big do\n  def run(x) do\n    y = x + 1\n    y\n  end\nend\n"

      pairs = for i <- 1..100, do: {:k, i}

      plan = %{
        custom_injections: [{3, :after, quote(do: send(self(), {:pairs, unquote(pairs)}))}]
      }

      {:ok, ast} = src |> Code.string_to_quoted!() |> Transformer.transform_module(plan)

      stderr =
        ExUnit.CaptureIO.capture_io(:stderr, fn ->
          Code.compile_quoted(ast, "big_injection.ex")
        end)

      assert stderr == ""
      assert ASTCorpus.instrumented?(ESTest.Enhanced.Big)
    end
  end

  defp strip_meta(ast), do: Macro.prewalk(ast, &Macro.update_meta(&1, fn _ -> [] end))

  # a block of one item is that item
  defp unwrap_blocks(ast) do
    Macro.prewalk(ast, fn
      {:__block__, [], [one]} -> one
      other -> other
    end)
  end
end
