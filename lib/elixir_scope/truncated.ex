defmodule ElixirScope.Truncated do
  @moduledoc """
  Stands where the capture limits cut a value. `kind` says which limit:

    * `:depth`, `:list`, `:tuple`, `:map`, `:bytes` — `omitted` elements (or
      pairs) were left out; `:unknown` when counting them would have cost more
      than the limits allow (a long list): shown as `…more`.
    * `:binary` — `preview` is the kept prefix, `omitted` the bytes left out.
    * `:integer` — a big integer: `preview` is its most significant bytes
      (with its sign), so the value is about `preview * 256 ** omitted`.
    * `:fun` — a fun, never captured with its environment: `preview` is
      `{module, name, arity}` for `&module.name/arity` (`omitted` 0), or
      `{module, index, uniq}` for a closure (`omitted` `:unknown`).
    * `:key` — a map key that was cut: `preview` is the cut key, `omitted` the
      pair's position (which keeps cut keys distinct).
  """
  defstruct [:kind, :omitted, :preview]

  @type t :: %__MODULE__{kind: atom(), omitted: non_neg_integer() | :unknown, preview: term()}

  @doc "Replaces the codec's `{:\"$es_truncated\", kind, omitted}` markers inside `term`."
  @spec expand(term()) :: term()
  def expand({:"$es_truncated", {:binary, preview}, omitted}) when is_binary(preview),
    do: %__MODULE__{kind: :binary, omitted: omitted, preview: preview}

  def expand({:"$es_truncated", {:integer, top}, omitted}) when is_integer(top),
    do: %__MODULE__{kind: :integer, omitted: omitted, preview: top}

  def expand({:"$es_truncated", {:fun, {m, _, _} = info}, omitted}) when is_atom(m),
    do: %__MODULE__{kind: :fun, omitted: omitted, preview: info}

  def expand({:"$es_truncated", {:key, index}, key}) when is_integer(index),
    do: %__MODULE__{kind: :key, omitted: index, preview: expand(key)}

  def expand({:"$es_truncated", kind, omitted}) when is_atom(kind) and (is_integer(omitted) or omitted == :unknown),
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

  @doc "A big integer's order of magnitude from its kept top bytes: `≈ 1.2346e+301029`."
  @spec approx_integer(integer(), non_neg_integer()) :: String.t()
  def approx_integer(0, _omitted_bytes), do: "≈ 0"

  def approx_integer(top, omitted_bytes) do
    # keep ~60 significant bits of top so that the float arithmetic cannot overflow
    shift = max(bit_length(abs(top)) - 60, 0)
    log10 = :math.log10(abs(Bitwise.bsr(top, shift)) + 0.0) + (shift + 8 * omitted_bytes) * :math.log10(2)
    exp = floor(log10)
    mantissa = :math.pow(10, log10 - exp)
    sign = if top < 0, do: "-", else: ""
    "≈ #{sign}#{:erlang.float_to_binary(mantissa, decimals: 4)}e+#{exp}"
  end

  defp bit_length(0), do: 0
  defp bit_length(n), do: n |> :binary.encode_unsigned() |> bit_size()

  defimpl Inspect do
    alias ElixirScope.Truncated

    def inspect(%{kind: :binary, omitted: n, preview: p}, _opts), do: "#Truncated<#{inspect(p)}… +#{n} bytes>"

    def inspect(%{kind: :integer, omitted: n, preview: top}, _opts),
      do: "#Truncated<integer #{Truncated.approx_integer(top, n)}>"

    def inspect(%{kind: :fun, preview: {m, f, a}}, _opts) when is_atom(f), do: "&" <> Exception.format_mfa(m, f, a)
    def inspect(%{kind: :fun, preview: {m, i, u}}, _opts), do: "#Function<#{i}.#{u} in #{Kernel.inspect(m)}>"
    def inspect(%{kind: :key, preview: key}, opts), do: Inspect.Algebra.to_doc(key, opts)
    def inspect(%{kind: kind, omitted: :unknown}, _opts), do: "#Truncated<#{kind}, …more>"
    def inspect(%{kind: kind, omitted: n}, _opts), do: "#Truncated<#{kind}, #{n} more>"
  end
end
