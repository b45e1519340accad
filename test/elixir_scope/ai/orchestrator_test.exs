defmodule ElixirScope.AI.OrchestratorTest do
  use ExUnit.Case, async: true
  import ExUnit.CaptureIO
  import ExUnit.CaptureLog

  alias ElixirScope.AI.Orchestrator
  alias ElixirScope.AI.LLM.{Heuristic, Mock}
  alias ElixirScope.Test.{AIFixtures, LLMServer}

  setup do
    dir = Path.join(System.tmp_dir!(), "es_orch_#{System.unique_integer([:positive])}")
    on_exit(fn -> File.rm_rf!(dir) end)
    %{out: Path.join(dir, "plan.exs")}
  end

  test "analyse -> plan -> validate -> save -> load", %{out: out} do
    assert {:ok, %{plan: plan, path: ^out, warnings: []}} =
             Orchestrator.run(
               root: AIFixtures.root(),
               output: out,
               provider: :heuristic,
               strategy: :balanced
             )

    assert {:ok, ^plan} = Orchestrator.load_plan(out)

    assert Map.keys(plan.modules) |> Enum.sort() == [
             Sample.Counter,
             Sample.Macros,
             Sample.Math,
             Sample.Math.Inner
           ]

    assert File.read!(out) =~ "strategy balanced"
  end

  test "each provider produces a plan for the fixture project", %{out: out} do
    gemini =
      LLMServer.start(fn _ -> {200, [], LLMServer.gemini_body(AIFixtures.plan_answer())} end)

    openai =
      LLMServer.start(fn _ -> {200, [], LLMServer.openai_body(AIFixtures.plan_answer())} end)

    on_exit(fn -> Enum.each([gemini, openai], &LLMServer.stop/1) end)

    capture_log(fn ->
      for {provider, extra} <- [
            gemini: [base_url: gemini.url, api_key: "k-test-1234"],
            openai_compatible: [base_url: openai.url],
            mock: [],
            heuristic: []
          ] do
        assert {:ok, %{plan: plan, warnings: warnings}} =
                 Orchestrator.run(
                   [root: AIFixtures.root(), output: out, provider: provider] ++ extra
                 )

        assert plan.provider == provider, "#{provider}: #{inspect(warnings)}"
        assert {:ok, _} = Orchestrator.load_plan(out)
      end
    end)
  end

  test "mock with a configured answer goes through the same parsing" do
    as = AIFixtures.analyses()
    assert {:ok, plan, [partial]} = Mock.plan_instrumentation(as, response: AIFixtures.plan_answer())
    assert partial =~ "did not cover"
    AIFixtures.assert_answer_plan(plan)

    # an entry naming a function that does not exist is dropped, with a warning; the rest is kept
    assert {:ok, plan, warnings} = Mock.plan_instrumentation(as, response: AIFixtures.bad_function_answer())
    assert plan.provider == :mock
    assert Enum.any?(warnings, &(&1 =~ "does_not_exist/2" and &1 =~ "dropped"))

    assert {:ok, p1, []} = Mock.plan_instrumentation(as, [])
    assert {:ok, ^p1, []} = Mock.plan_instrumentation(as, [])
  end

  test "heuristic analyze_code and explain offline" do
    assert {:ok, %{commentary: text}} =
             Heuristic.analyze_code(
               Sample.Math
               |> then(fn _ -> File.read!(Path.join(AIFixtures.root(), "lib/sample/math.ex")) end),
               []
             )

    assert text =~ "classify/1"
    ctx = ElixirScope.Test.SampleEvents.sample_context()
    assert {:ok, %{provider: :heuristic, suggested_fix: fix}} = Heuristic.explain_error(ctx, [])
    assert fix =~ "clause"
    assert Heuristic.configured?() and Heuristic.test_connection() == :ok
  end

  test "the table lists every function with level and reason" do
    {:ok, plan, []} = Orchestrator.plan(AIFixtures.analyses(), provider: :heuristic)
    table = Orchestrator.table(plan)
    assert table =~ ~r/classify\/1\s+locals capture_locals=:all\s+high complexity/
    assert table =~ "Sample.Counter"
  end

  test "mix scope.plan writes the plan and prints the table; mix scope.analyze prints the analysis",
       %{out: out} do
    output =
      capture_io(fn ->
        Mix.Tasks.Scope.Plan.run([
          "--root",
          AIFixtures.root(),
          "--output",
          out,
          "--strategy",
          "minimal",
          "--provider",
          "heuristic"
        ])
      end)

    assert output =~ "4 modules planned (strategy minimal, provider heuristic)"
    assert output =~ "save/2"
    assert {:ok, %{strategy: :minimal}} = Orchestrator.load_plan(out)

    output =
      capture_io(fn ->
        Mix.Tasks.Scope.Analyze.run(["Sample.Counter", "--root", AIFixtures.root()])
      end)

    assert output =~ "OTP role: genserver"
    assert output =~ "def handle_call/3"

    srv = LLMServer.start(fn _ -> {200, [], LLMServer.openai_body(AIFixtures.plan_answer())} end)
    on_exit(fn -> LLMServer.stop(srv) end)

    plan_args = ["--root", AIFixtures.root(), "--output", out, "--provider", "openai_compatible", "--base-url", srv.url, "--model", "local"]

    log =
      capture_log(fn ->
        err = capture_io(:stderr, fn -> send(self(), {:io, capture_io(fn -> Mix.Tasks.Scope.Plan.run(plan_args) end)}) end)
        send(self(), {:err, err})
      end)

    assert_received {:io, io}
    assert_received {:err, err}
    assert io =~ "provider openai_compatible"
    assert io =~ "state updates"
    # the warning is printed once, by the task (not logged as well)
    assert length(String.split(err, "did not cover")) == 2
    refute log =~ "did not cover"
    assert {:ok, plan} = Orchestrator.load_plan(out)
    AIFixtures.assert_answer_plan(plan)

    assert_raise Mix.Error, ~r/--strategy/, fn ->
      Mix.Tasks.Scope.Plan.run(["--strategy", "huge", "--root", AIFixtures.root()])
    end
  end
end
