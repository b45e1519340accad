defmodule ElixirScope.Test.AIFixtures do
  @moduledoc "Fixture project and model answers for the AI tests."

  @root Path.expand("../fixtures/ai/sample_app", __DIR__)

  @doc "Root of the fixture project (test/fixtures/ai/sample_app)."
  @spec root() :: String.t()
  def root, do: @root

  @doc "Analyses of the fixture project."
  @spec analyses() :: [map]
  def analyses do
    {:ok, analyses, []} = ElixirScope.AI.Orchestrator.analyze_project(root: @root)
    analyses
  end

  @doc "A valid plan answer as a model would send it (Sample.Math.Inner left out)."
  @spec plan_answer() :: String.t()
  def plan_answer do
    ElixirScope.NIF.json_encode(%{
      "default_level" => "none",
      "summary" => "boundaries on the API, locals in the complex parts",
      "modules" => [
        %{
          "module" => "Sample.Counter",
          "level" => "function_boundaries",
          "genserver_state" => "true",
          "reason" => "stateful GenServer",
          "functions" => [
            %{
              "name" => "handle_call",
              "arity" => 3,
              "level" => "locals",
              "capture_locals" => true,
              "reason" => "state updates"
            },
            %{"name" => "get", "arity" => 0, "level" => "none", "reason" => "trivial read"}
          ]
        },
        %{
          "module" => "Sample.Math",
          "level" => "none",
          "reason" => "pure helpers",
          "functions" => [
            %{
              "name" => "classify",
              "arity" => 1,
              "level" => "full",
              "trace_expressions" => true,
              "reason" => "many branches"
            },
            %{
              "name" => "save",
              "arity" => 2,
              "level" => "function_boundaries",
              "reason" => "file and ETS side effects"
            }
          ]
        }
      ]
    })
  end

  @doc "A well-formed answer naming a function the module does not define."
  @spec bad_function_answer() :: String.t()
  def bad_function_answer do
    ~s({"modules":[{"module":"Sample.Math","level":"none","reason":"x","functions":[{"name":"does_not_exist","arity":2,"level":"full","reason":"y"}]}]})
  end

  @doc "Checks the plan that `plan_answer/0` must produce."
  @spec assert_answer_plan(map) :: :ok
  def assert_answer_plan(plan) do
    import ExUnit.Assertions
    counter = plan.modules[Sample.Counter]
    assert counter.level == :function_boundaries
    assert counter.genserver_state == true
    assert counter.functions[{:handle_call, 3}] == %{level: :locals, capture_locals: :all}
    assert counter.functions[{:get, 0}] == %{level: :none}
    assert counter.reasons[{:handle_call, 3}] == "state updates"
    assert counter.reasons[:module] == "stateful GenServer"
    math = plan.modules[Sample.Math]
    assert math.functions[{:classify, 1}] == %{level: :full, trace_expressions: :all}
    # left out by the answer: planned by the heuristic
    assert %{functions: %{{:ping, 1} => %{level: :function_boundaries}}} =
             plan.modules[Sample.Math.Inner]

    assert plan.version == 1
    :ok
  end
end
