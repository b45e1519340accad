defmodule ElixirScope.NIF do
  @moduledoc """
  The NIF library (priv/elixir_scope_nif.so). Minimal version on the `ai`
  branch: only the LLM client and JSON bridge functions (the lead's version
  replaces this file and keeps the stubs below).
  """
  @on_load :load_nif

  @doc false
  def load_nif do
    path = :filename.join(:code.priv_dir(:elixir_scope), ~c"elixir_scope_nif")
    :erlang.load_nif(path, 0)
  end

  defp nif_error, do: :erlang.nif_error(:nif_not_loaded)

  # ---- llm (issue 5) ----
  @doc "Performs one HTTP(S) request with libcurl on a dirty IO scheduler."
  @spec llm_http_request(String.t() | atom, String.t(), [{String.t(), String.t()}], iodata, map) ::
          {:ok, non_neg_integer, [{String.t(), String.t()}], binary} | {:error, atom, String.t()}
  def llm_http_request(_method, _url, _headers, _body, _opts), do: nif_error()
  @doc "Decodes JSON into maps with binary keys, lists, binaries, numbers, booleans and nil."
  @spec json_decode(binary) :: {:ok, term} | {:error, String.t()}
  def json_decode(_json), do: nif_error()
  @doc "Encodes maps, lists, binaries, numbers, booleans, nil and atoms as JSON."
  @spec json_encode(term) :: binary
  def json_encode(_term), do: nif_error()
  @doc "Builds a Gemini generateContent request body."
  @spec llm_build_gemini_request(String.t() | nil, String.t(), boolean, number, non_neg_integer) :: binary
  def llm_build_gemini_request(_system, _user, _plan_schema, _temperature, _max_tokens), do: nif_error()
  @doc "Builds an OpenAI-compatible chat-completions request body."
  @spec llm_build_openai_request(String.t(), String.t() | nil, String.t(), boolean, number, non_neg_integer) ::
          binary
  def llm_build_openai_request(_model, _system, _user, _json_mode, _temperature, _max_tokens), do: nif_error()
  @doc "Extracts the model's text from a Gemini/Vertex or OpenAI response body."
  @spec llm_extract_text(:gemini | :openai, binary) :: {:ok, String.t()} | {:error, atom, String.t()}
  def llm_extract_text(_format, _body), do: nif_error()
  @doc "Parses and checks a plan answer (JSON text) into an intermediate map."
  @spec llm_parse_plan(binary) :: {:ok, map} | {:error, atom, String.t()}
  def llm_parse_plan(_text), do: nif_error()
  @doc "The JSON responseSchema of a plan answer."
  @spec llm_plan_schema() :: binary
  def llm_plan_schema, do: nif_error()
end
