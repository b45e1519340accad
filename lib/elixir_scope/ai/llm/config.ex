defmodule ElixirScope.AI.LLM.Config do
  @moduledoc """
  Settings of the LLM providers, merged from (lowest first): defaults, the
  environment variables, `config :elixir_scope, :ai, [...]` (the keys of
  `ElixirScope.Config`'s `:ai` schema), and the options passed to the call.

  From `config :elixir_scope, :ai`: `:llm_provider`, `:analysis_timeout`
  (ms, the total budget of one LLM call, retries included), `:planning_timeout`
  (the budget of a plan request, default `:analysis_timeout`),
  `:max_retries`, `:max_request_bytes` (cap of the analysis sent in a prompt),
  `:max_response_bytes`, `:strategy`; and, for the configured `:llm_provider`
  only (or for every provider when it is `:auto`), `:api_key`, `:model`,
  `:base_url`, `:project_id`, `:location`, `:credentials_file`.

  Call options (not in the application config): `:retries`, `:backoff_ms`,
  `:max_retry_after_ms`, `:ca_file`, `:max_prompt_bytes`, `:temperature`,
  `:max_tokens`, `:json_mode`, `:token_url`, `:project`, plus all the above.
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

  # config key -> settings key
  @common_app [
    analysis_timeout: :analysis_timeout,
    max_retries: :retries,
    max_request_bytes: :max_prompt_bytes,
    max_response_bytes: :max_response_bytes
  ]
  @provider_app [
    api_key: :api_key,
    model: :model,
    base_url: :base_url,
    project_id: :project,
    location: :location,
    credentials_file: :credentials_file
  ]

  @doc "The `:ai` application environment."
  @spec ai_env() :: keyword
  def ai_env do
    case Application.get_env(:elixir_scope, :ai, []) do
      kw when is_list(kw) -> kw
      _ -> []
    end
  end

  @doc """
  Settings for `provider`: `defaults` are the provider's defaults, `env` the
  values read from environment variables (nil ones are ignored).
  With `purpose: :plan` the budget is `:planning_timeout` when configured.
  """
  @spec settings(atom, keyword, keyword, keyword) :: Settings.t()
  def settings(provider, defaults, env, opts) do
    app = ai_env()
    configured = Keyword.get(app, :llm_provider, :auto)
    common = rename(app, @common_app)
    own = if configured in [provider, :auto, nil], do: rename(app, @provider_app), else: []

    planning =
      if Keyword.get(opts, :purpose) == :plan and Keyword.has_key?(app, :planning_timeout),
        do: [analysis_timeout: app[:planning_timeout]],
        else: []

    env = Enum.reject(env, fn {_k, v} -> is_nil(v) or v == "" end)

    merged =
      @common_defaults
      |> Keyword.merge(defaults)
      |> Keyword.merge(env)
      |> Keyword.merge(common)
      |> Keyword.merge(planning)
      |> Keyword.merge(own)
      |> Keyword.merge(Keyword.delete(opts, :purpose))

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

  defp rename(app, mapping) do
    for {from, to} <- mapping,
        Keyword.has_key?(app, from),
        not is_nil(app[from]),
        do: {to, app[from]}
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
