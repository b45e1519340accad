defmodule ElixirScope.AI.LLM.Gemini do
  @moduledoc """
  Google Gemini through the REST `generateContent` call.

  Settings (`config :elixir_scope, :ai, [...]` with `llm_provider: :gemini`, or call options):
  `:api_key` (default from `GOOGLE_API_KEY` or `GEMINI_API_KEY`, sent in the `x-goog-api-key`
  header, never in the URL), `:model` (default `"gemini-2.0-flash"`),
  `:base_url` (default `"https://generativelanguage.googleapis.com"`).
  Plans are requested as JSON with the plan `responseSchema`.
  """

  @behaviour ElixirScope.AI.LLM.Provider

  alias ElixirScope.AI.LLM.{Config, HTTP, Remote, Settings}

  @impl true
  def provider_name, do: :gemini

  @doc false
  @spec settings(keyword) :: Settings.t()
  def settings(opts) do
    Config.settings(
      :gemini,
      [base_url: "https://generativelanguage.googleapis.com", model: "gemini-2.0-flash"],
      [api_key: System.get_env("GOOGLE_API_KEY") || System.get_env("GEMINI_API_KEY")],
      opts
    )
  end

  @doc false
  @spec check_configured(Settings.t()) :: :ok | {:error, {atom, String.t()}}
  def check_configured(%Settings{api_key: nil}),
    do:
      {:error,
       {:not_configured, "Gemini needs an API key: set GOOGLE_API_KEY or ai: [api_key: ...]"}}

  def check_configured(_), do: :ok

  @impl true
  def configured?, do: configured?([])

  @doc "Whether an API key is available with these options."
  @spec configured?(keyword) :: boolean
  def configured?(opts), do: check_configured(settings(opts)) == :ok

  @doc false
  @spec complete(String.t(), String.t(), :plan | :json | :text, Settings.t()) ::
          {:ok, String.t()} | {:error, {atom, String.t()}}
  def complete(system, user, mode, %Settings{} = s) do
    o = s.options

    body =
      ElixirScope.NIF.llm_build_gemini_request(
        system,
        user,
        mode == :plan,
        o[:temperature],
        o[:max_tokens]
      )

    body = if mode == :json, do: json_mode(body), else: body
    url = "#{s.base_url}/v1beta/models/#{URI.encode(s.model)}:generateContent"

    headers = [
      {"content-type", "application/json"},
      {"x-goog-api-key", ElixirScope.AI.LLM.Secret.reveal(s.api_key)}
    ]

    http =
      Config.http_opts(s,
        provider: "Gemini",
        auth_hint:
          "check GOOGLE_API_KEY (or ai: [api_key: ...]) and that the key may use the Generative Language API"
      )

    with {:ok, resp} <- HTTP.request("POST", url, headers, body, http) do
      Remote.extract(:gemini, resp.body, "Gemini")
    end
  end

  # responseMimeType application/json without the plan schema
  defp json_mode(body) do
    {:ok, map} = ElixirScope.NIF.json_decode(body)

    map
    |> put_in(["generationConfig", "responseMimeType"], "application/json")
    |> ElixirScope.NIF.json_encode()
  end

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
