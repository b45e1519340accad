defmodule ElixirScope.AI.LLM.Secret do
  @moduledoc """
  Wraps a credential (API key, access token, private key PEM) so it never
  shows up in logs, errors, inspected structs, crash reports, process states
  or messages.

  The value is never held in clear: the wrapper keeps it XOR-ed with a random
  pad of the same length, and the pad next to it, so that neither `inspect/1`
  (which prints `#Secret<redacted>`), nor Erlang's `~p`, nor
  `:erlang.term_to_binary/1` of anything that contains it shows the bytes.
  `reveal/1` gives the value back where it is put on the wire. `redact/2`
  scrubs known secret values out of any text before it leaves the LLM layer.
  """

  @enforce_keys [:masked, :pad]
  defstruct [:masked, :pad]

  @type t :: %__MODULE__{masked: binary(), pad: binary()}

  @doc "Wraps a value (surrounding whitespace removed); `nil` and blank strings give `nil`."
  @spec wrap(String.t() | t() | nil) :: t() | nil
  def wrap(nil), do: nil
  def wrap(""), do: nil
  def wrap(%__MODULE__{} = s), do: s

  def wrap(value) when is_binary(value) do
    # keys read from files often end with a newline
    case String.trim(value) do
      "" ->
        nil

      v ->
        pad = :crypto.strong_rand_bytes(byte_size(v))
        %__MODULE__{masked: xor(v, pad), pad: pad}
    end
  end

  @doc "The wrapped value (only to put it on the wire)."
  @spec reveal(t() | nil) :: String.t() | nil
  def reveal(nil), do: nil
  def reveal(%__MODULE__{masked: m, pad: p}), do: xor(m, p)

  defp xor(a, b), do: :crypto.exor(a, b)

  @doc "Replaces every occurrence of the given secrets in `text` with `[REDACTED]`."
  @spec redact(String.t(), [t() | String.t() | nil]) :: String.t()
  def redact(text, secrets) when is_binary(text) do
    secrets
    |> Enum.map(fn
      %__MODULE__{} = s -> reveal(s)
      v -> v
    end)
    |> Enum.filter(&(is_binary(&1) and byte_size(&1) >= 4))
    |> Enum.reduce(text, fn v, acc -> String.replace(acc, v, "[REDACTED]") end)
  end

  defimpl Inspect do
    def inspect(_secret, _opts), do: "#Secret<redacted>"
  end
end
