defmodule ElixirScope.AI.LLM.Mock do
  @moduledoc """
  A deterministic provider for tests. Without a configured answer it returns
  a canned plan (boundaries on every public function). With `:response`
  (a call option) the text goes through the same
  parsing and validation as a real model's answer, so invalid answers can be
  exercised offline.
  """

  @behaviour ElixirScope.AI.LLM.Provider

  alias ElixirScope.AI.{Explainer, PlanCheck}
  alias ElixirScope.AI.LLM.{PlanAnswer, Remote}

  @impl true
  def provider_name, do: :mock
  @impl true
  def configured?, do: true
  @impl true
  def test_connection, do: :ok

  defp response(opts), do: Keyword.get(opts, :response)

  @impl true
  def plan_instrumentation(analyses, opts) do
    strategy = Keyword.get(opts, :strategy, :balanced)

    case response(opts) do
      text when is_binary(text) ->
        PlanAnswer.to_plan(text, analyses, strategy: strategy, provider: :mock)

      nil ->
        canned(analyses, strategy)
    end
  end

  defp canned(analyses, strategy) do
    modules =
      Map.new(analyses, fn a ->
        funs = Enum.reject(a.functions, &(&1.kind in [:defmacro, :defmacrop]))

        fs =
          Map.new(
            funs,
            &{{&1.name, &1.arity},
             %{level: if(&1.public?, do: :function_boundaries, else: :none)}}
          )

        reasons =
          Map.new(
            funs,
            &{{&1.name, &1.arity},
             "mock: canned plan (#{if &1.public?, do: "public", else: "private"})"}
          )

        {a.module,
         %{
           level: :none,
           functions: fs,
           genserver_state: :auto,
           macros: false,
           reasons: Map.put(reasons, :module, "mock: canned plan")
         }}
      end)

    plan = %{
      version: 1,
      default_level: :none,
      include: analyses |> Enum.map(& &1.module) |> Enum.sort(),
      exclude: [],
      modules: modules,
      strategy: strategy,
      provider: :mock,
      generated_at: "1970-01-01T00:00:00Z"
    }

    case PlanCheck.validate(plan, analyses) do
      {:ok, plan} -> {:ok, plan, []}
      {:error, msg} -> {:error, {:invalid_plan, msg}}
    end
  end

  @impl true
  def analyze_code(input, _opts) do
    with {:ok, a} <- Remote.to_analysis(input) do
      {:ok,
       %{analysis: a, commentary: "mock commentary for #{inspect(a.module)}", provider: :mock}}
    end
  end

  @impl true
  def explain_error(context, _opts) do
    {:ok,
     %{
       explanation: "mock explanation: " <> Explainer.summary_text(context),
       suggested_fix: "mock fix",
       provider: :mock
     }}
  end

  @impl true
  def suggest_fix(_context, _opts), do: {:ok, "mock fix"}
end
