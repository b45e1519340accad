defmodule ElixirScope.AI.PlannerChoicesTest do
  @moduledoc false
  # The offline planner's :balanced choices on the demo application (examples/demo) and on code
  # like it: locals where arithmetic meets branching or division, the GenServer's state logic
  # recorded, reasons that match the module's role; LLM warnings shown once.
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO
  import ExUnit.CaptureLog

  alias ElixirScope.AI.{CodeAnalyzer, InstrumentationPlanner}
  alias ElixirScope.Test.{AIFixtures, LLMServer}

  @demo Path.expand("../../../examples/demo", __DIR__)

  setup_all do
    analyses =
      Path.wildcard(Path.join(@demo, "lib/**/*.ex"))
      |> Enum.flat_map(fn f -> f |> CodeAnalyzer.analyze_file() |> elem(1) end)

    {:ok, plan} = InstrumentationPlanner.plan(analyses, :balanced)
    %{plan: plan}
  end

  defp choice(plan, mod, fa), do: {plan.modules[mod].functions[fa], plan.modules[mod].reasons[fa]}

  test "arithmetic with division or branching gets locals and expressions", %{plan: plan} do
    assert {%{level: :locals, capture_locals: :all}, why} = choice(plan, Demo.RiskScorer, {:risk, 2})
    assert why =~ "arithmetic (* div) with division"
    assert {%{level: :locals}, why} = choice(plan, Demo.Interest, {:compound, 3})
    assert why =~ "branching"
    assert {%{level: :locals}, _} = choice(plan, Demo.Interest, {:split, 2})

    src = """
    defmodule Shop.Cart do
      def apply_coupon(total, %{percent: p}) when p > 0, do: total - div(total * p, 100)
      def apply_coupon(total, _coupon), do: total
      def count(items), do: length(items)
      defp sum([], acc), do: acc
      defp sum([x | rest], acc), do: sum(rest, acc + x)
      def total(items), do: sum(items, 0)
    end
    """

    {:ok, [cart]} = CodeAnalyzer.analyze_source(src)
    {:ok, p} = InstrumentationPlanner.plan(cart, :balanced)
    assert {%{level: :locals}, why} = choice(p, Shop.Cart, {:apply_coupon, 2})
    assert why =~ "arithmetic"
    # no arithmetic: boundaries; a private recursive helper stays off (one event per iteration)
    assert {%{level: :function_boundaries}, _} = choice(p, Shop.Cart, {:count, 1})
    assert {%{level: :none}, why} = choice(p, Shop.Cart, {:sum, 2})
    assert why =~ "recursive"
  end

  test "a capture like &abs/1 is no division" do
    {:ok, [m]} = CodeAnalyzer.analyze_source("defmodule A do\n def f(xs), do: Enum.map(xs, &abs/1)\nend")
    assert hd(m.functions).arithmetic == []
  end

  test "the GenServer's state logic is recorded: updates with locals, reads with boundaries", %{plan: plan} do
    assert {%{level: :locals}, why} = choice(plan, Demo.Ledger, {:post, 4})
    assert why =~ "state logic"
    assert {%{level: :function_boundaries}, why} = choice(plan, Demo.Ledger, {:fetch, 2})
    assert why =~ "reads the GenServer state"
  end

  test "GenServer state is named only for GenServer callbacks", %{plan: plan} do
    assert {_, why} = choice(plan, Demo.Application, {:start, 2})
    refute why =~ "GenServer"
    assert {_, why} = choice(plan, Demo.RiskScorer, {:init, 1})
    assert why =~ "(and GenServer state)"
  end

  test "a failing provider's warning is printed once by mix scope.plan, not logged as well" do
    out = Path.join(System.tmp_dir!(), "es_plan_#{System.unique_integer([:positive])}.exs")
    on_exit(fn -> File.rm(out) end)
    port = LLMServer.closed_port()
    args = ["--root", AIFixtures.root(), "--output", out, "--provider", "openai_compatible", "--base-url", "http://127.0.0.1:#{port}/v1"]

    log =
      capture_log(fn ->
        err = capture_io(:stderr, fn -> capture_io(fn -> Mix.Tasks.Scope.Plan.run(args) end) end)
        send(self(), {:err, err})
      end)

    assert_received {:err, err}
    assert [_, _] = String.split(err, "using the heuristic plan instead")
    refute log =~ "heuristic plan instead"
  end
end
