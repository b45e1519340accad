defmodule ElixirScope.JSON do
  @moduledoc """
  The one JSON codec of ElixirScope (the web API, exports, the DAP and MCP
  servers). Each direction uses the faster of the two implementations measured
  in `bench/json_bench.exs`:

    * decoding goes through cJSON in the NIF (`ElixirScope.NIF.json_decode/1`):
      about 2x faster than the Elixir decoder it replaced, at every size measured;
    * encoding is Elixir: 2-3x faster than cJSON on a small DAP message (a NIF
      call for encoding runs on a dirty scheduler, whose round trip costs more
      than the work) and on a large, number-heavy web page (cJSON prints numbers
      slowly); cJSON is about 1.4x faster on a medium, string-heavy MCP result
      (0.11 against 0.15 ms). Elixir also gives the guarantees below.

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

  # The characters to escape are found by :binary.matches (in C); the runs between
  # them are copied with binary_part. UTF-8 is checked only when a byte >= 0x80 is
  # there; invalid bytes are replaced first (rare).
  defp string(s) do
    s = if ascii?(s) or String.valid?(s), do: s, else: replace_invalid(s, [])

    case :binary.matches(s, pattern(:escape)) do
      [] -> [?", s, ?"]
      found -> [?", splice(s, found, 0), ?"]
    end
  end

  defp ascii?(s), do: :binary.match(s, pattern(:high)) == :nomatch

  defp splice(s, [], from), do: [binary_part(s, from, byte_size(s) - from)]

  defp splice(s, [{pos, len} | rest], from),
    do: [binary_part(s, from, pos - from), escape(binary_part(s, pos, len)) | splice(s, rest, pos + len)]

  @escapes [{"\"", "\\\""}, {"\\", "\\\\"}, {"\n", "\\n"}, {"\r", "\\r"}, {"\t", "\\t"}] ++
             for(c <- Enum.to_list(0..31) ++ [?<, ?>, ?&, 0x2028, 0x2029], c not in [?\n, ?\r, ?\t],
               do: {<<c::utf8>>, "\\u" <> String.pad_leading(Integer.to_string(c, 16), 4, "0")})

  for {char, escaped} <- @escapes do
    defp escape(unquote(char)), do: unquote(escaped)
  end

  defp replace_invalid(<<c::utf8, rest::binary>>, acc), do: replace_invalid(rest, [acc, <<c::utf8>>])
  defp replace_invalid(<<_invalid, rest::binary>>, acc), do: replace_invalid(rest, [acc, "\uFFFD"])
  defp replace_invalid(<<>>, acc), do: IO.iodata_to_binary(acc)

  # compiled once: the characters to escape, and the bytes that are not ASCII
  defp pattern(which) do
    case :persistent_term.get({__MODULE__, which}, nil) do
      nil ->
        bytes = if which == :escape, do: Enum.map(@escapes, &elem(&1, 0)), else: for(b <- 0x80..0xFF, do: <<b>>)
        p = :binary.compile_pattern(bytes)
        :persistent_term.put({__MODULE__, which}, p)
        p

      p ->
        p
    end
  end

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
