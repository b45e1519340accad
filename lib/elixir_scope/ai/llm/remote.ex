defmodule ElixirScope.AI.LLM.Remote do
  @moduledoc """
  The provider flow shared by the HTTP providers (Gemini, Vertex,
  OpenAI-compatible): build prompts, call the provider's `complete/4`, parse
  and validate the answer. A provider module implements

      complete(system, user, mode :: :plan | :json | :text, settings) :: {:ok, text} | {:error, {kind, msg}}
      settings(opts) :: ElixirScope.AI.LLM.Settings.t()
      check_configured(settings) :: :ok | {:error, {:not_configured, msg}}
  """

  @doc """
  `use ElixirScope.AI.LLM.Remote` makes a module an `ElixirScope.AI.LLM.Provider`
  whose planning, analysis, explanation and connection test run this shared flow.
  """
  defmacro __using__(_opts) do
    quote do
      @behaviour ElixirScope.AI.LLM.Provider
      alias ElixirScope.AI.LLM.Remote

      @impl true
      def plan_instrumentation(analyses, opts),
        do: Remote.plan_instrumentation(__MODULE__, analyses, opts)

      @impl true
      def analyze_code(input, opts), do: Remote.analyze_code(__MODULE__, input, opts)
      @impl true
      def explain_error(context, opts), do: Remote.explain_error(__MODULE__, context, opts)
      @impl true
      def suggest_fix(context, opts), do: Remote.suggest_fix(__MODULE__, context, opts)
      @impl true
      def test_connection, do: test_connection([])
      @doc "`test_connection/0` with explicit options."
      @spec test_connection(keyword) :: :ok | {:error, {atom, String.t()}}
      def test_connection(opts), do: Remote.test_connection(__MODULE__, opts)
    end
  end

  @doc "A Gemini/Vertex request body asking for JSON output without the plan schema."
  @spec gemini_json_mode(binary) :: binary
  def gemini_json_mode(body) do
    {:ok, map} = ElixirScope.NIF.json_decode(body)

    map
    |> put_in(["generationConfig", "responseMimeType"], "application/json")
    |> ElixirScope.NIF.json_encode()
  end

  alias ElixirScope.AI.{CodeAnalyzer, Explainer}
  alias ElixirScope.AI.LLM.{PlanAnswer, Prompt}

  @doc """
  Plan through `mod`: `{:ok, plan, warnings}`, the warnings saying which parts of the answer
  were dropped or planned by the heuristic instead (the caller shows them, once).
  """
  @spec plan_instrumentation(module, [map], keyword) :: {:ok, map, [String.t()]} | {:error, {atom, String.t()}}
  def plan_instrumentation(mod, analyses, opts) do
    settings = mod.settings(Keyword.put(opts, :purpose, :plan))
    strategy = Keyword.get(opts, :strategy, :balanced)

    {user, omitted} =
      Prompt.plan_user(analyses, strategy, Keyword.fetch!(settings.options, :max_prompt_bytes))

    fit =
      if omitted != [],
        do: ["#{length(omitted)} modules did not fit in the prompt (max_prompt_bytes); the heuristic plans them"],
        else: []

    with :ok <- mod.check_configured(settings),
         {:ok, text} <- mod.complete(Prompt.plan_system(), user, :plan, settings),
         {:ok, plan, warnings} <-
           PlanAnswer.to_plan(text, analyses, strategy: strategy, provider: mod.provider_name()) do
      {:ok, plan, fit ++ warnings}
    end
  end

  @doc "Explanation of an error context through `mod`."
  @spec explain_error(module, map, keyword) :: {:ok, map} | {:error, {atom, String.t()}}
  def explain_error(mod, context, opts) do
    settings = mod.settings(opts)
    user = Prompt.explain_user(context, Keyword.fetch!(settings.options, :max_prompt_bytes))

    with :ok <- mod.check_configured(settings),
         {:ok, text} <- mod.complete(Prompt.explain_system(), user, :json, settings) do
      {explanation, fix} =
        case ElixirScope.NIF.json_decode(strip_fence(text)) do
          {:ok, %{"explanation" => e} = m} when is_binary(e) ->
            {e, if(is_binary(m["suggested_fix"]), do: m["suggested_fix"])}

          _ ->
            {text, nil}
        end

      {:ok,
       %{
         explanation: explanation,
         suggested_fix: fix,
         provider: mod.provider_name(),
         summary: Explainer.summary_text(context)
       }}
    end
  end

  defp strip_fence(text) do
    text
    |> String.trim()
    |> String.replace(~r/\A```(?:json)?\s*/, "")
    |> String.replace(~r/\s*```\z/, "")
  end

  @doc "Suggested fix through `mod`."
  @spec suggest_fix(module, map, keyword) :: {:ok, String.t()} | {:error, {atom, String.t()}}
  def suggest_fix(mod, context, opts) do
    with {:ok, %{suggested_fix: fix, explanation: e}} <- explain_error(mod, context, opts) do
      {:ok, fix || e}
    end
  end

  @doc "Commentary on an analysis through `mod`."
  @spec analyze_code(module, map | String.t(), keyword) ::
          {:ok, map} | {:error, {atom, String.t()}}
  def analyze_code(mod, input, opts) do
    settings = mod.settings(opts)

    with {:ok, analysis} <- to_analysis(input),
         :ok <- mod.check_configured(settings),
         json = ElixirScope.NIF.json_encode(Prompt.summary(analysis)),
         user =
           binary_part(
             json,
             0,
             min(byte_size(json), Keyword.fetch!(settings.options, :max_prompt_bytes))
           ),
         {:ok, text} <- mod.complete(Prompt.analyze_system(), user, :text, settings) do
      {:ok, %{analysis: analysis, commentary: text, provider: mod.provider_name()}}
    end
  end

  @doc false
  @spec to_analysis(map | String.t() | module) :: {:ok, map} | {:error, {atom, String.t()}}
  def to_analysis(%{module: _, functions: _} = a), do: {:ok, a}

  def to_analysis(input) do
    case CodeAnalyzer.analyze_module(input) do
      {:ok, a} -> {:ok, a}
      {:error, msg} -> {:error, {:analysis_failed, msg}}
    end
  end

  @doc "A tiny request proving the endpoint and the credentials work."
  @spec test_connection(module, keyword) :: :ok | {:error, {atom, String.t()}}
  def test_connection(mod, opts) do
    settings = mod.settings(Keyword.put_new(opts, :retries, 0))

    with :ok <- mod.check_configured(settings),
         {:ok, _text} <- mod.complete("Reply with the single word OK.", "ping", :text, settings) do
      :ok
    end
  end

  @doc "Maps the C extractor's errors to provider errors."
  @spec extract(:gemini | :openai, binary, String.t()) ::
          {:ok, String.t()} | {:error, {atom, String.t()}}
  def extract(format, body, label) do
    case ElixirScope.NIF.llm_extract_text(format, body) do
      {:ok, text} ->
        {:ok, text}

      {:error, :malformed_json, msg} ->
        {:error, {:malformed_json, "#{label} sent a response that is not valid JSON: #{msg}"}}

      {:error, :invalid_utf8, msg} ->
        {:error, {:malformed_json, "#{label} sent a response that is not valid UTF-8: #{msg}"}}

      {:error, :api_error, msg} ->
        {:error, {:api_error, "#{label}: #{msg}"}}

      {:error, :blocked, msg} ->
        {:error, {:blocked, "#{label}: #{msg}"}}

      {:error, kind, msg} ->
        {:error, {kind, "#{label}: #{msg}"}}
    end
  end
end
