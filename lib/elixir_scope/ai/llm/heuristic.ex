defmodule ElixirScope.AI.LLM.Heuristic do
  @moduledoc """
  The offline provider: plans with `ElixirScope.AI.InstrumentationPlanner`
  and explains errors with `ElixirScope.AI.Explainer`. Always configured; the
  default when no LLM key is set, and the fallback when an LLM fails.
  """

  @behaviour ElixirScope.AI.LLM.Provider

  alias ElixirScope.AI.{Explainer, InstrumentationPlanner, PlanCheck}
  alias ElixirScope.AI.LLM.Remote

  @impl true
  def provider_name, do: :heuristic
  @impl true
  def configured?, do: true
  @impl true
  def test_connection, do: :ok

  @impl true
  def plan_instrumentation(analyses, opts) do
    strategy = Keyword.get(opts, :strategy, :balanced)

    with {:ok, plan} <- InstrumentationPlanner.plan(analyses, strategy, provider: :heuristic),
         {:ok, plan} <- PlanCheck.validate(plan, analyses) do
      {:ok, plan, []}
    else
      {:error, msg} when is_binary(msg) -> {:error, {:invalid_plan, msg}}
    end
  end

  @impl true
  def analyze_code(input, _opts) do
    with {:ok, a} <- Remote.to_analysis(input) do
      {:ok, %{analysis: a, commentary: commentary(a), provider: :heuristic}}
    end
  end

  @impl true
  def explain_error(context, _opts), do: {:ok, Explainer.explain(context)}

  @impl true
  def suggest_fix(context, _opts), do: {:ok, Explainer.explain(context).suggested_fix}

  defp commentary(a) do
    complex =
      a.functions
      |> Enum.sort_by(&(-&1.complexity.cyclomatic))
      |> Enum.take(3)
      |> Enum.map_join(", ", &"#{&1.name}/#{&1.arity} (cyclomatic #{&1.complexity.cyclomatic})")

    effects = if a.side_effects == [], do: "none", else: Enum.join(a.side_effects, ", ")

    "#{inspect(a.module)} (#{a.otp_role}): #{length(a.functions)} functions; most complex: #{complex}; side effects: #{effects}."
  end
end
