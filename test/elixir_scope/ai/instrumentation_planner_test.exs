defmodule ElixirScope.AI.InstrumentationPlannerTest do
  use ExUnit.Case, async: true

  alias ElixirScope.AI.{InstrumentationPlanner, PlanCheck}
  alias ElixirScope.Test.AIFixtures

  setup_all do
    %{analyses: AIFixtures.analyses()}
  end

  defp fplan(plan, mod, f), do: plan.modules[mod].functions[f]

  test "balanced: boundaries on the API and callbacks, locals where complex, nothing on hot leaves",
       %{analyses: as} do
    {:ok, plan} = InstrumentationPlanner.plan(as, :balanced)
    assert plan.strategy == :balanced and plan.provider == :heuristic and plan.version == 1
    assert {:ok, _} = PlanCheck.validate(plan, as)
    assert fplan(plan, Sample.Counter, {:handle_call, 3}).level == :function_boundaries
    assert plan.modules[Sample.Counter].genserver_state == true
    assert fplan(plan, Sample.Math, {:classify, 1}) == %{level: :locals, capture_locals: :all}
    assert fplan(plan, Sample.Math, {:add, 2}).level == :function_boundaries
    assert fplan(plan, Sample.Math, {:check, 1}).level == :none
    assert fplan(plan, Sample.Math, {:do_sum, 2}).level == :none
    assert plan.modules[Sample.Math].reasons[{:check, 1}] =~ "tiny"
    assert plan.modules[Sample.Math].reasons[{:do_sum, 2}] =~ "recursive"
  end

  test "every choice has a reason", %{analyses: as} do
    for strategy <- [:minimal, :balanced, :full] do
      {:ok, plan} = InstrumentationPlanner.plan(as, strategy)

      for {_mod, mp} <- plan.modules do
        assert is_binary(mp.reasons[:module])

        for {key, _} <- mp.functions,
            do: assert(is_binary(mp.reasons[key]) and mp.reasons[key] != "")
      end
    end
  end

  test "minimal and full", %{analyses: as} do
    {:ok, min} = InstrumentationPlanner.plan(as, :minimal)
    assert fplan(min, Sample.Math, {:add, 2}).level == :none
    assert fplan(min, Sample.Math, {:save, 2}).level == :function_boundaries
    assert fplan(min, Sample.Counter, {:handle_call, 3}).level == :function_boundaries
    assert min.modules[Sample.Counter].genserver_state == false

    {:ok, full} = InstrumentationPlanner.plan(as, :full)
    assert full.modules[Sample.Math].level == :full

    assert fplan(full, Sample.Math, {:do_sum, 2}) == %{
             level: :full,
             capture_locals: :all,
             trace_expressions: :all
           }

    count = fn plan ->
      plan.modules
      |> Enum.flat_map(fn {_, m} -> Map.values(m.functions) end)
      |> Enum.count(&(&1.level != :none))
    end

    assert count.(min) < count.(InstrumentationPlanner.plan(as, :balanced) |> elem(1))
    assert count.(InstrumentationPlanner.plan(as, :balanced) |> elem(1)) < count.(full)
  end

  test "macros are left out of the functions (with a reason)", %{analyses: as} do
    for strategy <- [:minimal, :balanced, :full] do
      {:ok, plan} = InstrumentationPlanner.plan(as, strategy)
      refute Map.has_key?(plan.modules[Sample.Macros].functions, {:twice, 1})
      assert plan.modules[Sample.Macros].reasons[{:twice, 1}] =~ "macro"
      assert Map.has_key?(plan.modules[Sample.Macros].functions, {:four, 0})
    end

    assert {:ok, plan, []} = ElixirScope.AI.LLM.Mock.plan_instrumentation(as, [])
    refute Map.has_key?(plan.modules[Sample.Macros].functions, {:twice, 1})

    answer =
      ~s({"modules":[{"module":"Sample.Macros","functions":[{"name":"twice","arity":1,"level":"full"}]}]})

    # a macro named as a function is dropped from the answer, with a warning
    assert {:ok, plan, warnings} = ElixirScope.AI.LLM.Mock.plan_instrumentation(as, response: answer)
    refute Map.has_key?(plan.modules[Sample.Macros].functions, {:twice, 1})
    assert Enum.any?(warnings, &(&1 =~ "twice/1"))
  end

  test "unknown strategy" do
    assert {:error, msg} = InstrumentationPlanner.plan([], :everything)
    assert msg =~ "strategy"
  end

  test "the plan check refuses unknown keys, bad levels and names the module does not define", %{
    analyses: as
  } do
    {:ok, plan} = InstrumentationPlanner.plan(as, :balanced)

    assert {:error, msg} =
             PlanCheck.validate(
               put_in(plan.modules[Sample.Math].functions[{:nope, 9}], %{level: :full}),
               as
             )

    assert msg =~ "nope/9"
    assert {:error, msg} = PlanCheck.validate(put_in(plan.modules[Sample.Math][:level], :max), as)
    assert msg =~ ":max"

    assert {:error, msg} =
             PlanCheck.validate(put_in(plan.modules[Sample.Math][:colour], :red), as)

    assert msg =~ "colour"
    assert {:error, msg} = PlanCheck.validate(put_in(plan.modules[Not.Here], %{level: :full}), as)
    assert msg =~ "Not.Here"
  end
end
