defmodule ElixirScope.AI.LLM.Config do
  @moduledoc """
  Settings of the LLM providers, merged from (lowest first): defaults, the
  environment variables, `config :elixir_scope, :ai, [...]` (common keys and
  the provider's own keyword list, e.g. `gemini: [model: ...]`), and the
  options passed to the call.

  Common keys: `:analysis_timeout` (ms, the total budget of one LLM call),
  `:max_response_bytes`, `:retries`, `:backoff_ms`, `:max_retry_after_ms`,
  `:ca_file`, `:max_prompt_bytes`, `:temperature`, `:max_tokens`.
  """

  alias ElixirScope.AI.LLM.Settings

  @common_defaults [
    analysis_timeout: 30_000,
    max_response_bytes: 4 * 1024 * 1024,
    retries: 2,
    backoff_ms: 500,
    max_retry_after_ms: 20_000,
    ca_file: nil,
    max_prompt_bytes: 60_000,
    temperature: 0.2,
    max_tokens: 8192
  ]

  @common_keys Keyword.keys(@common_defaults)

  @doc "The `:ai` application environment."
  @spec ai_env() :: keyword
  def ai_env, do: Application.get_env(:elixir_scope, :ai, [])

  @doc """
  Settings for `provider`: `defaults` are the provider's defaults, `env` the
  values read from environment variables (nil ones are ignored).
  """
  @spec settings(atom, keyword, keyword, keyword) :: Settings.t()
  def settings(provider, defaults, env, opts) do
    app = ai_env()
    common_app = Keyword.take(app, @common_keys)
    own_app = Keyword.get(app, provider, [])
    env = Enum.reject(env, fn {_k, v} -> is_nil(v) or v == "" end)

    merged =
      @common_defaults
      |> Keyword.merge(defaults)
      |> Keyword.merge(env)
      |> Keyword.merge(common_app)
      |> Keyword.merge(own_app)
      |> Keyword.merge(opts)

    secret_keys = [:api_key, :access_token]

    %Settings{
      provider: provider,
      base_url: merged |> Keyword.get(:base_url) |> trim_slash(),
      model: Keyword.get(merged, :model),
      api_key: ElixirScope.AI.LLM.Secret.wrap(Keyword.get(merged, :api_key)),
      timeout_ms: Keyword.fetch!(merged, :analysis_timeout),
      options: Keyword.drop(merged, [:base_url, :model, :analysis_timeout | secret_keys])
    }
  end

  defp trim_slash(nil), do: nil
  defp trim_slash(url), do: String.trim_trailing(url, "/")

  @doc "The options for `ElixirScope.AI.LLM.HTTP.request/5` from settings."
  @spec http_opts(Settings.t(), keyword) :: keyword
  def http_opts(%Settings{} = s, extra \\ []) do
    o = s.options

    [
      timeout_ms: s.timeout_ms,
      max_response_bytes: Keyword.fetch!(o, :max_response_bytes),
      retries: Keyword.fetch!(o, :retries),
      backoff_ms: Keyword.fetch!(o, :backoff_ms),
      max_retry_after_ms: Keyword.fetch!(o, :max_retry_after_ms),
      ca_file: Keyword.get(o, :ca_file),
      secrets: [s.api_key]
    ]
    |> Keyword.merge(extra)
  end
end
