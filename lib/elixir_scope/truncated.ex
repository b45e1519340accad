defmodule ElixirScope.Truncated do
  @moduledoc """
  Stands where the capture limits cut a value: `kind` says which limit
  (`:depth`, `:list`, `:tuple`, `:map`, `:binary`, `:bytes`), `omitted` how many
  elements or bytes were left out, and `preview` the kept prefix of a binary.
  """
  defstruct [:kind, :omitted, :preview]

  @type t :: %__MODULE__{kind: atom(), omitted: non_neg_integer(), preview: binary() | nil}

  @doc "Replaces the codec's `{:\"$es_truncated\", kind, omitted}` markers inside `term`."
  @spec expand(term()) :: term()
  def expand({:"$es_truncated", {:binary, preview}, omitted}) when is_binary(preview),
    do: %__MODULE__{kind: :binary, omitted: omitted, preview: preview}

  def expand({:"$es_truncated", kind, omitted}) when is_atom(kind) and is_integer(omitted),
    do: %__MODULE__{kind: kind, omitted: omitted}

  def expand(list) when is_list(list), do: expand_list(list, [])
  def expand(tuple) when is_tuple(tuple), do: tuple |> Tuple.to_list() |> Enum.map(&expand/1) |> List.to_tuple()

  def expand(map) when is_map(map) do
    map |> Map.to_list() |> Map.new(fn
      {:"$es_truncated", v} -> {:"$es_truncated", expand(v)}
      {k, v} -> {expand(k), expand(v)}
    end)
  end

  def expand(other), do: other

  # keeps improper tails
  defp expand_list([h | t], acc), do: expand_list(t, [expand(h) | acc])
  defp expand_list([], acc), do: Enum.reverse(acc)
  defp expand_list(tail, acc), do: :lists.reverse(acc, expand(tail))

  defimpl Inspect do
    def inspect(%{kind: :binary, omitted: n, preview: p}, _opts), do: "#Truncated<#{inspect(p)}… +#{n} bytes>"
    def inspect(%{kind: kind, omitted: n}, _opts), do: "#Truncated<#{kind}, #{n} more>"
  end
end
