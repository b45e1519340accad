defmodule ElixirScope.AI.CodeAnalyzerTest do
  use ExUnit.Case, async: true

  alias ElixirScope.AI.CodeAnalyzer
  alias ElixirScope.Test.AIFixtures

  defp fun(a, name, arity), do: Enum.find(a.functions, &(&1.name == name and &1.arity == arity))

  setup_all do
    {:ok, [math, inner]} =
      CodeAnalyzer.analyze_file(Path.join(AIFixtures.root(), "lib/sample/math.ex"))

    {:ok, [counter]} =
      CodeAnalyzer.analyze_file(Path.join(AIFixtures.root(), "lib/sample/counter.ex"))

    %{math: math, inner: inner, counter: counter}
  end

  test "functions with arity, kind, line span and clauses", %{math: math} do
    assert math.module == Sample.Math

    assert Enum.map(math.functions, &{&1.name, &1.arity}) ==
             [add: 2, fact: 1, classify: 1, sum_list: 1, do_sum: 2, check: 1, save: 2]

    fact = fun(math, :fact, 1)
    assert fact.kind == :def and fact.public? and fact.clauses == 2
    assert {fact.line, fact.end_line} == {6, 7}
    classify = fun(math, :classify, 1)
    assert classify.line == 9 and classify.end_line == 36
    assert fun(math, :do_sum, 2).kind == :defp
    refute fun(math, :do_sum, 2).public?
  end

  test "complexity, recursion and the call graph", %{math: math} do
    classify = fun(math, :classify, 1)
    assert classify.complexity.cyclomatic >= 10
    assert classify.complexity.nesting_depth == 3
    assert fun(math, :add, 2).complexity.cyclomatic == 1
    assert fun(math, :fact, 1).recursive?
    assert fun(math, :do_sum, 2).recursive?
    refute fun(math, :sum_list, 1).recursive?
    assert math.call_graph[{:sum_list, 1}] == [do_sum: 2]
    assert math.call_graph[{:classify, 1}] == [check: 1]
  end

  test "side effects and calls out", %{math: math, inner: inner, counter: counter} do
    assert fun(math, :save, 2).side_effects == [:ets, :file_io, :logging]
    assert {:ets, :insert, 2} in math.external_calls
    assert fun(math, :add, 2).side_effects == []
    assert inner.module == Sample.Math.Inner
    assert fun(inner, :ping, 1).side_effects == [:message]
    assert fun(counter, :increment, 1).side_effects == [:genserver_call]
    # alias resolution: M.add -> Sample.Math.add
    assert {Sample.Math, :add, 2} in counter.external_calls
  end

  test "OTP role and callbacks", %{math: math, counter: counter} do
    assert counter.otp_role == :genserver
    assert math.otp_role == :plain
    assert fun(counter, :handle_call, 3).callback?
    assert fun(counter, :init, 1).callback?
    refute fun(counter, :increment, 1).callback?
    assert fun(counter, :start_link, 1).arities == [0, 1]
  end

  test "source strings, AST, supervisors, pipes, captures, defdelegate" do
    src = """
    defmodule My.Sup do
      use Supervisor
      def start_link(arg), do: Supervisor.start_link(__MODULE__, arg)
      def init(_), do: Supervisor.init([], strategy: :one_for_one)
      def run(list), do: list |> Enum.map(&helper/1) |> finish()
      defp helper(x), do: x
      defp finish(l), do: l |> Enum.sum()
      defdelegate size(l), to: Enum, as: :count
    end
    """

    assert {:ok, a} = CodeAnalyzer.analyze_module(src)
    assert a.otp_role == :supervisor
    assert a.call_graph[{:run, 1}] == [finish: 1, helper: 1]
    assert fun(a, :size, 1).kind == :defdelegate
    assert {Enum, :sum, 1} in a.external_calls
    assert {:ok, a2} = CodeAnalyzer.analyze_module(Code.string_to_quoted!(src))
    assert a2.module == My.Sup
    assert {:error, msg} = CodeAnalyzer.analyze_module("defmodule X do def f( end")
    assert msg =~ "syntax error"
  end

  test "loaded modules: through their source file or debug info" do
    assert {:ok, a} = CodeAnalyzer.analyze_module(ElixirScope.AI.ComplexityAnalyzer)
    assert a.file =~ "complexity_analyzer.ex"
    assert fun(a, :calculate_complexity, 1)

    # debug info only (no source file)
    assert {:ok, d} =
             (
               {:ok, {mod, [debug_info: {:debug_info_v1, backend, data}]}} =
                 :beam_lib.chunks(:code.which(ElixirScope.AI.LLM.Secret), [:debug_info])

               {:ok, %{definitions: defs}} = backend.debug_info(:elixir_v1, mod, data, [])
               {:ok, CodeAnalyzer.from_definitions(mod, defs)}
             )

    assert fun(d, :redact, 2).public?
    assert {:error, _} = CodeAnalyzer.analyze_module(NoSuch.Module)
  end
end
