defmodule ElixirScope.JSON do
  @moduledoc """
  The one JSON codec of ElixirScope (the web API, exports, the DAP and MCP
  servers). Each direction uses the faster of the two implementations measured
  in `bench/json_bench.exs`:

    * decoding goes through cJSON in the NIF (`ElixirScope.NIF.json_decode/1`):
      2-3x faster than decoding in Elixir at every size measured;
    * encoding is Elixir: a NIF call for encoding runs on a dirty scheduler,
      whose round trip costs more than encoding a small message, and cJSON
      prints numbers slowly; Elixir also gives the guarantees below.

  Encoding: maps (atom, string or integer keys), lists, binaries, integers,
  floats, `true`/`false`/`nil`, other atoms as strings. Invalid UTF-8 bytes
  become U+FFFD; `<`, `>`, `&` and U+2028/2029 are written as `\\uXXXX` so the
  output is safe to embed anywhere. Other terms raise `ArgumentError`.

  Decoding returns maps with string keys, lists, binaries, numbers (integral
  values as integers), booleans and `nil`, or `{:error, message}`: invalid
  JSON, invalid UTF-8, nesting deeper than 128, or a `\\u0000` in a string
  (which the C strings underneath cannot carry).
  """

  @doc "Encodes `term` to a JSON binary."
  @spec encode!(term()) :: binary()
  def encode!(term), do: term |> encode_iodata() |> IO.iodata_to_binary()

  @doc "Encodes `term` to JSON iodata."
  @spec encode_iodata(term()) :: iodata()
  def encode_iodata(nil), do: "null"
  def encode_iodata(true), do: "true"
  def encode_iodata(false), do: "false"
  def encode_iodata(n) when is_integer(n), do: Integer.to_string(n)
  def encode_iodata(f) when is_float(f), do: :erlang.float_to_binary(f, [:short])
  def encode_iodata(a) when is_atom(a), do: string(Atom.to_string(a))
  def encode_iodata(s) when is_binary(s), do: string(s)
  def encode_iodata([]), do: "[]"
  def encode_iodata([first | rest]), do: [?[, encode_iodata(first) | items(rest)]

  def encode_iodata(map) when is_map(map) and not is_struct(map) do
    case Map.to_list(map) do
      [] -> "{}"
      [{k, v} | rest] -> [?{, key(k), ?:, encode_iodata(v) | pairs(rest)]
    end
  end

  def encode_iodata(other), do: raise(ArgumentError, "cannot encode #{inspect(other, limit: 5)} as JSON")

  defp items([]), do: [?]]
  defp items([h | t]), do: [?,, encode_iodata(h) | items(t)]
  defp items(improper), do: raise(ArgumentError, "cannot encode an improper list tail #{inspect(improper, limit: 5)}")

  defp pairs([]), do: [?}]
  defp pairs([{k, v} | t]), do: [?,, key(k), ?:, encode_iodata(v) | pairs(t)]

  defp key(k) when is_binary(k), do: string(k)
  defp key(k) when is_atom(k), do: string(Atom.to_string(k))
  defp key(k) when is_integer(k), do: string(Integer.to_string(k))
  defp key(k), do: raise(ArgumentError, "cannot encode #{inspect(k, limit: 5)} as a JSON key")

  defp string(s), do: [?", escape(s, s, 0, 0, []), ?"]

  # Runs of characters that need no escaping are copied with one binary_part.
  defp escape(<<c, rest::binary>>, s, from, len, acc)
       when c >= 0x20 and c < 0x80 and c != ?" and c != ?\\ and c != ?< and c != ?> and c != ?&,
       do: escape(rest, s, from, len + 1, acc)

  defp escape(<<c, rest::binary>>, s, from, len, acc) when c < 0x80,
    do: escape(rest, s, from + len + 1, 0, [acc, binary_part(s, from, len), ascii(c)])

  defp escape(<<0xE2, 0x80, b, rest::binary>>, s, from, len, acc) when b in [0xA8, 0xA9],
    do: escape(rest, s, from + len + 3, 0, [acc, binary_part(s, from, len), u(0x2000 + b - 0x80)])

  defp escape(<<c::utf8, rest::binary>>, s, from, len, acc) when c < 0x800, do: escape(rest, s, from, len + 2, acc)
  defp escape(<<c::utf8, rest::binary>>, s, from, len, acc) when c < 0x10000, do: escape(rest, s, from, len + 3, acc)
  defp escape(<<_::utf8, rest::binary>>, s, from, len, acc), do: escape(rest, s, from, len + 4, acc)

  defp escape(<<_invalid, rest::binary>>, s, from, len, acc),
    do: escape(rest, s, from + len + 1, 0, [acc, binary_part(s, from, len), "\\ufffd"])

  defp escape(<<>>, s, from, len, acc), do: [acc, binary_part(s, from, len)]

  defp ascii(?"), do: "\\\""
  defp ascii(?\\), do: "\\\\"
  defp ascii(?\n), do: "\\n"
  defp ascii(?\r), do: "\\r"
  defp ascii(?\t), do: "\\t"
  defp ascii(c), do: u(c)

  defp u(c), do: "\\u" <> String.pad_leading(Integer.to_string(c, 16), 4, "0")

  # ---------------------------------------------------------------- decoding

  @doc "Decodes a JSON binary."
  @spec decode(binary()) :: {:ok, term()} | {:error, String.t()}
  def decode(bin) when is_binary(bin) do
    if :binary.match(bin, "\\u0000") != :nomatch do
      {:error, "a string holds \\u0000, which is not supported"}
    else
      case ElixirScope.NIF.json_decode(bin) do
        {:ok, _} = ok -> ok
        {:error, "JSON nested too deeply" <> _} -> {:error, "nesting too deep"}
        {:error, _} = error -> error
      end
    end
  end

  @doc "Like `decode/1` but raises `ArgumentError`."
  @spec decode!(binary()) :: term()
  def decode!(bin) do
    case decode(bin) do
      {:ok, v} -> v
      {:error, msg} -> raise ArgumentError, "invalid JSON: " <> msg
    end
  end
end
