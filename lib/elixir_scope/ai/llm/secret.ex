defmodule ElixirScope.AI.LLM.Secret do
  @moduledoc """
  Wraps a credential (API key, access token, private key PEM) so it never
  shows up in logs, errors, inspected structs or crash reports.

  The value is kept inside a closure: `inspect/1` prints `#Secret<redacted>`
  and Erlang's crash-report formatting (`~p`) prints only `#Fun<...>`.
  `redact/2` scrubs known secret values out of any text before it leaves
  the LLM layer.
  """

  @enforce_keys [:fun]
  defstruct [:fun]

  @type t :: %__MODULE__{fun: (() -> String.t())}

  @doc "Wraps a value (surrounding whitespace removed); `nil` and blank strings give `nil`."
  @spec wrap(String.t() | t() | nil) :: t() | nil
  def wrap(nil), do: nil
  def wrap(""), do: nil
  def wrap(%__MODULE__{} = s), do: s

  def wrap(value) when is_binary(value) do
    # keys read from files often end with a newline
    case String.trim(value) do
      "" -> nil
      v -> %__MODULE__{fun: fn -> v end}
    end
  end

  @doc "The wrapped value (only to put it on the wire)."
  @spec reveal(t() | nil) :: String.t() | nil
  def reveal(nil), do: nil
  def reveal(%__MODULE__{fun: f}), do: f.()

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
