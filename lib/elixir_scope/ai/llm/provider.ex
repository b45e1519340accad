defmodule ElixirScope.AI.LLM.Provider do
  @moduledoc """
  The behaviour every LLM provider implements (`:gemini`, `:vertex`,
  `:openai_compatible`, `:mock`, `:heuristic`).

  Errors are `{:error, {kind :: atom, message :: String.t()}}` with a message
  a person can act on and no secrets in it.
  """

  @type error :: {:error, {atom, String.t()}}
  @type explanation :: %{
          required(:explanation) => String.t(),
          required(:suggested_fix) => String.t() | nil,
          required(:provider) => atom,
          optional(atom) => term
        }

  @doc "A project plan (`ElixirScope.AST.Plan` format) for the analyses. Options: `:strategy` and provider settings."
  # the warnings say which parts of an answer were dropped or planned by the heuristic instead;
  # they are returned, not logged, so that the caller shows them once
  @callback plan_instrumentation(analyses :: [map], opts :: keyword) :: {:ok, map, [String.t()]} | error
  @doc "Commentary on an analysis (or source), with the analysis itself."
  @callback analyze_code(analysis_or_source :: map | String.t(), opts :: keyword) ::
              {:ok, map} | error
  @doc "Explains a recorded error from its context (see `ElixirScope.AI.Explainer.context/2`)."
  @callback explain_error(context :: map, opts :: keyword) :: {:ok, explanation} | error
  @doc "Suggests a fix for a recorded error."
  @callback suggest_fix(context :: map, opts :: keyword) :: {:ok, String.t()} | error
  @callback provider_name() :: atom
  @callback configured?() :: boolean
  @callback test_connection() :: :ok | error

  @providers %{
    gemini: ElixirScope.AI.LLM.Gemini,
    vertex: ElixirScope.AI.LLM.Vertex,
    openai_compatible: ElixirScope.AI.LLM.OpenAICompatible,
    mock: ElixirScope.AI.LLM.Mock,
    heuristic: ElixirScope.AI.LLM.Heuristic
  }

  @doc "The provider names."
  @spec names() :: [atom]
  def names, do: Map.keys(@providers)

  @doc "The module of a provider name."
  @spec module(atom) :: {:ok, module} | {:error, String.t()}
  def module(name) do
    case Map.fetch(@providers, name) do
      {:ok, mod} ->
        {:ok, mod}

      :error ->
        {:error,
         "unknown LLM provider #{inspect(name)}; expected one of #{inspect(Enum.sort(names()))}"}
    end
  end

  @doc """
  The provider to use: `opts[:provider]`, else `ai: [llm_provider: ...]`
  (unless `:auto`), else `:gemini` when GOOGLE_API_KEY is set, `:vertex` when VERTEX_JSON_FILE
  is set, else `:heuristic` (offline).
  """
  @spec current(keyword) :: atom
  def current(opts \\ []) do
    cond do
      p = Keyword.get(opts, :provider) ->
        p

      (p = Keyword.get(ElixirScope.AI.LLM.Config.ai_env(), :llm_provider)) not in [nil, :auto] ->
        p

      present?(System.get_env("GOOGLE_API_KEY")) ->
        :gemini

      present?(System.get_env("VERTEX_JSON_FILE")) ->
        :vertex

      true ->
        :heuristic
    end
  end

  defp present?(v), do: is_binary(v) and v != ""
end
