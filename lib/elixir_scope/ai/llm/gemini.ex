defmodule ElixirScope.AI.LLM.Gemini do
  @moduledoc """
  Google Gemini through the REST `generateContent` call.

  Settings (`config :elixir_scope, :ai, [...]` with `llm_provider: :gemini`, or call options):
  `:api_key` (default from `GOOGLE_API_KEY` or `GEMINI_API_KEY`, sent in the `x-goog-api-key`
  header, never in the URL), `:model` (default `"gemini-2.0-flash"`),
  `:base_url` (default `"https://generativelanguage.googleapis.com"`).
  Plans are requested as JSON with the plan `responseSchema`.
  """

  use ElixirScope.AI.LLM.Remote

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

    body = if mode == :json, do: Remote.gemini_json_mode(body), else: body
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
end
