defmodule ElixirScope.Redaction do
  @moduledoc """
  Which names are secret. One rule, implemented once (in C, `c_src/term_codec.c`):
  capture applies it to map keys, keyword keys, struct fields and tuple tags,
  and the compiler calls `secret_name?/2` for parameter and variable names.

  A name (atom or string) is normalised — ASCII lower case, without `_`, `-`,
  `.` and spaces, so `Password`, `x-api-key`, `apiKey` and `API_KEY` read
  `password`, `xapikey`, `apikey`, `apikey` — and is secret when it matches a
  `deny` pattern and no `allow` pattern. A pattern is `name` (equal), `name*`
  (prefix), `*name` (suffix) or `*name*` (contains), normalised the same way.
  Names longer than 255 bytes are never secret.

  Configured with `capture: [redact: deny, redact_allow: allow]`; in either
  list the atom `:defaults` stands for the built-in list.
  """

  alias ElixirScope.NIF

  defstruct deny: [], allow: []

  @type pattern :: atom() | String.t()
  @type t :: %__MODULE__{deny: [pattern()], allow: [pattern()]}

  @default_deny ~w(*password* *passwd* *passphrase* *secret* *token* *api_key* *private_key* *access_key*
                   *signing_key* *encryption_key* *authorization* *cookie* *credential* session *session_id*
                   *csrf*)

  # names that contain a deny word but name no secret
  @default_allow ~w(tokens tokenizer tokenize token_type token_count max_tokens secretary)

  @doc "The built-in deny patterns."
  @spec default_deny() :: [String.t()]
  def default_deny, do: @default_deny

  @doc "The built-in allow patterns."
  @spec default_allow() :: [String.t()]
  def default_allow, do: @default_allow

  @doc """
  The rules of a configuration: a validated config (`ElixirScope.Config.validate/1`),
  its `capture:` options, or the session options map (`redact:`, `redact_allow:`).
  Missing lists are the defaults. Raises `ArgumentError` on an invalid pattern.
  """
  @spec rules(keyword() | map()) :: t()
  def rules(%{} = opts), do: opts |> Map.to_list() |> rules()

  def rules(opts) when is_list(opts) do
    capture = if Keyword.keyword?(opts[:capture]), do: opts[:capture], else: opts
    deny = expand(Keyword.get(capture, :redact, [:defaults]), @default_deny)
    allow = expand(Keyword.get(capture, :redact_allow, [:defaults]), @default_allow)

    case check(deny, allow) do
      :ok -> %__MODULE__{deny: deny, allow: allow}
      {:error, message} -> raise ArgumentError, "invalid redaction pattern: " <> message
    end
  end

  @doc "Whether `name` is a secret name under `rules`."
  @spec secret_name?(atom() | String.t(), t()) :: boolean()
  def secret_name?(name, %__MODULE__{deny: deny, allow: allow}) when is_atom(name) or is_binary(name),
    do: NIF.redact_secret_name(name, deny, allow)

  @doc "Checks deny and allow patterns (after `:defaults` is expanded): `:ok` or `{:error, message}`."
  @spec check(term(), term()) :: :ok | {:error, String.t()}
  def check(deny, allow) when is_list(deny) and is_list(allow) do
    if not List.improper?(deny) and not List.improper?(allow) and Enum.all?(deny ++ allow, &(is_atom(&1) or is_binary(&1))),
      do: NIF.redact_check(deny, allow),
      else: {:error, "patterns must be a proper list of atoms or strings"}
  end

  def check(_deny, _allow), do: {:error, "patterns must be a proper list of atoms or strings"}

  @doc "Replaces `:defaults` in a pattern list by `defaults`."
  @spec expand(term(), [String.t()]) :: term()
  def expand(list, defaults) when is_list(list) do
    if List.improper?(list), do: list, else: Enum.flat_map(list, &if(&1 == :defaults, do: defaults, else: [&1]))
  end

  def expand(other, _defaults), do: other
end
