defmodule ElixirScope.AI.LLM.OpenAICompatible do
  @moduledoc """
  Any OpenAI-compatible chat-completions endpoint (OpenAI itself, or the
  local servers people run models with: llama.cpp, Ollama, vLLM, LM Studio).

  Settings (`ai: [...]` with `llm_provider: :openai_compatible`, or call options): `:base_url`
  (default `OPENAI_BASE_URL` or `"https://api.openai.com/v1"`; the request
  goes to `base_url <> "/chat/completions"`), `:api_key` (default
  `OPENAI_API_KEY`; optional for local servers), `:model` (default
  `"gpt-4o-mini"`), `:json_mode` (default true: `response_format` json_object).
  """

  use ElixirScope.AI.LLM.Remote

  alias ElixirScope.AI.LLM.{Config, HTTP, Remote, Secret, Settings}

  @impl true
  def provider_name, do: :openai_compatible

  @doc false
  @spec settings(keyword) :: Settings.t()
  def settings(opts) do
    Config.settings(
      :openai_compatible,
      [base_url: "https://api.openai.com/v1", model: "gpt-4o-mini", json_mode: true],
      [api_key: System.get_env("OPENAI_API_KEY"), base_url: System.get_env("OPENAI_BASE_URL")],
      opts
    )
  end

  @doc false
  @spec check_configured(Settings.t()) :: :ok | {:error, {atom, String.t()}}
  def check_configured(%Settings{base_url: url}) when is_binary(url) and url != "", do: :ok

  def check_configured(_),
    do: {:error, {:not_configured, "set ai: [base_url: ...] or OPENAI_BASE_URL"}}

  @impl true
  def configured?, do: configured?([])

  @doc "Configured when a base URL is set (OpenAI itself also needs a key)."
  @spec configured?(keyword) :: boolean
  def configured?(opts) do
    s = settings(opts)

    check_configured(s) == :ok and
      (s.api_key != nil or not String.contains?(s.base_url, "api.openai.com"))
  end

  @doc false
  @spec complete(String.t(), String.t(), :plan | :json | :text, Settings.t()) ::
          {:ok, String.t()} | {:error, {atom, String.t()}}
  def complete(system, user, mode, %Settings{} = s) do
    o = s.options
    json? = mode in [:plan, :json] and Keyword.get(o, :json_mode, true)

    body =
      ElixirScope.NIF.llm_build_openai_request(
        s.model,
        system,
        user,
        json?,
        o[:temperature],
        o[:max_tokens]
      )

    headers =
      [{"content-type", "application/json"}] ++
        if(s.api_key, do: [{"authorization", "Bearer " <> Secret.reveal(s.api_key)}], else: [])

    http =
      Config.http_opts(s,
        provider: "the OpenAI-compatible endpoint",
        auth_hint: "check OPENAI_API_KEY (or ai: [api_key: ...])"
      )

    with {:ok, resp} <-
           HTTP.request("POST", s.base_url <> "/chat/completions", headers, body, http) do
      Remote.extract(:openai, resp.body, "the OpenAI-compatible endpoint")
    end
  end
end
