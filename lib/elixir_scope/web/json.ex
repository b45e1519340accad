defmodule ElixirScope.Web.JSON do
  @moduledoc """
  A small JSON encoder and decoder (no Jason here).

  Encoding: maps (atom or string keys), lists, binaries (must be valid UTF-8;
  invalid bytes become U+FFFD), integers, floats, `true`/`false`/`nil`, other
  atoms as strings. `<`, `>`, `&` and U+2028/2029 are written as `\\uXXXX` so
  the output is safe to embed anywhere. Other terms raise `ArgumentError`.

  Decoding returns maps with string keys, lists, binaries, numbers, booleans
  and `nil`; `{:error, message}` on invalid input. Nesting is limited (512)
  so hostile input cannot blow the stack.
  """

  @max_depth 512

  @doc "Encodes `term` to a JSON binary (iodata flattened)."
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

  defp string(s), do: [?", escape(s, []), ?"]

  defp escape(<<>>, acc), do: Enum.reverse(acc)
  defp escape(<<?", rest::binary>>, acc), do: escape(rest, ["\\\"" | acc])
  defp escape(<<?\\, rest::binary>>, acc), do: escape(rest, ["\\\\" | acc])
  defp escape(<<?\n, rest::binary>>, acc), do: escape(rest, ["\\n" | acc])
  defp escape(<<?\r, rest::binary>>, acc), do: escape(rest, ["\\r" | acc])
  defp escape(<<?\t, rest::binary>>, acc), do: escape(rest, ["\\t" | acc])
  defp escape(<<c, rest::binary>>, acc) when c < 0x20 or c in [?<, ?>, ?&], do: escape(rest, [u(c) | acc])
  defp escape(<<c::utf8, rest::binary>>, acc) when c in [0x2028, 0x2029], do: escape(rest, [u(c) | acc])

  defp escape(<<c::utf8, rest::binary>>, acc) do
    # copy the longest run of plain characters at once
    {run, rest} = plain_run(rest, <<c::utf8>>)
    escape(rest, [run | acc])
  end

  defp escape(<<_invalid, rest::binary>>, acc), do: escape(rest, ["\\ufffd" | acc])

  defp plain_run(<<c::utf8, rest::binary>> = all, run) do
    if c < 0x20 or c in [?", ?\\, ?<, ?>, ?&, 0x2028, 0x2029], do: {run, all}, else: plain_run(rest, <<run::binary, c::utf8>>)
  end

  defp plain_run(rest, run), do: {run, rest}

  defp u(c), do: "\\u" <> String.pad_leading(Integer.to_string(c, 16), 4, "0")

  # ---------------------------------------------------------------- decoding

  @doc "Decodes a JSON binary."
  @spec decode(binary()) :: {:ok, term()} | {:error, String.t()}
  def decode(bin) when is_binary(bin) do
    {value, rest} = value(ws(bin), 0)

    case ws(rest) do
      "" -> {:ok, value}
      other -> {:error, "unexpected trailing data at: #{String.slice(other, 0, 20)}"}
    end
  catch
    {:json_error, msg} -> {:error, msg}
  end

  @doc "Like `decode/1` but raises `ArgumentError`."
  @spec decode!(binary()) :: term()
  def decode!(bin) do
    case decode(bin) do
      {:ok, v} -> v
      {:error, msg} -> raise ArgumentError, "invalid JSON: " <> msg
    end
  end

  defp fail(msg), do: throw({:json_error, msg})

  defp ws(<<c, rest::binary>>) when c in [?\s, ?\n, ?\r, ?\t], do: ws(rest)
  defp ws(rest), do: rest

  defp value(_, depth) when depth > @max_depth, do: fail("nesting too deep")
  defp value(<<?{, rest::binary>>, d), do: object(ws(rest), %{}, d + 1)
  defp value(<<?[, rest::binary>>, d), do: array(ws(rest), [], d + 1)
  defp value(<<?", rest::binary>>, _), do: str(rest, [])
  defp value(<<"true", rest::binary>>, _), do: {true, rest}
  defp value(<<"false", rest::binary>>, _), do: {false, rest}
  defp value(<<"null", rest::binary>>, _), do: {nil, rest}
  defp value(<<c, _::binary>> = bin, _) when c == ?- or c in ?0..?9, do: number(bin)
  defp value(other, _), do: fail("unexpected input at: #{inspect(String.slice(other, 0, 20))}")

  defp object(<<?}, rest::binary>>, acc, _), do: {acc, rest}

  defp object(<<?", rest::binary>>, acc, d) do
    {k, rest} = str(rest, [])

    case ws(rest) do
      <<?:, rest::binary>> ->
        {v, rest} = value(ws(rest), d)
        acc = Map.put(acc, k, v)

        case ws(rest) do
          <<?,, rest::binary>> -> object(ws(rest), acc, d)
          <<?}, rest::binary>> -> {acc, rest}
          _ -> fail("expected , or } in object")
        end

      _ ->
        fail("expected : in object")
    end
  end

  defp object(_, _, _), do: fail("expected a string key in object")

  defp array(<<?], rest::binary>>, [], _), do: {[], rest}

  defp array(bin, acc, d) do
    {v, rest} = value(bin, d)

    case ws(rest) do
      <<?,, rest::binary>> -> array(ws(rest), [v | acc], d)
      <<?], rest::binary>> -> {Enum.reverse([v | acc]), rest}
      _ -> fail("expected , or ] in array")
    end
  end

  defp str(<<?", rest::binary>>, acc), do: {acc |> Enum.reverse() |> IO.iodata_to_binary(), rest}
  defp str(<<?\\, ?", rest::binary>>, acc), do: str(rest, [?" | acc])
  defp str(<<?\\, ?\\, rest::binary>>, acc), do: str(rest, [?\\ | acc])
  defp str(<<?\\, ?/, rest::binary>>, acc), do: str(rest, [?/ | acc])
  defp str(<<?\\, ?b, rest::binary>>, acc), do: str(rest, [?\b | acc])
  defp str(<<?\\, ?f, rest::binary>>, acc), do: str(rest, [?\f | acc])
  defp str(<<?\\, ?n, rest::binary>>, acc), do: str(rest, [?\n | acc])
  defp str(<<?\\, ?r, rest::binary>>, acc), do: str(rest, [?\r | acc])
  defp str(<<?\\, ?t, rest::binary>>, acc), do: str(rest, [?\t | acc])

  defp str(<<?\\, ?u, a::binary-size(4), ?\\, ?u, b::binary-size(4), rest::binary>>, acc) do
    with {hi, ""} when hi in 0xD800..0xDBFF <- Integer.parse(a, 16),
         {lo, ""} when lo in 0xDC00..0xDFFF <- Integer.parse(b, 16) do
      cp = 0x10000 + Bitwise.bsl(hi - 0xD800, 10) + (lo - 0xDC00)
      str(rest, [<<cp::utf8>> | acc])
    else
      _ -> str(<<?\\, ?u, b::binary, rest::binary>>, [unicode(a) | acc])
    end
  end

  defp str(<<?\\, ?u, a::binary-size(4), rest::binary>>, acc), do: str(rest, [unicode(a) | acc])
  defp str(<<?\\, _::binary>>, _), do: fail("invalid escape in string")
  defp str(<<c, _::binary>>, _) when c < 0x20, do: fail("control character in string")

  defp str(<<c, rest::binary>>, acc), do: str(rest, [c | acc])
  defp str(<<>>, _), do: fail("unterminated string")

  defp unicode(hex) do
    case Integer.parse(hex, 16) do
      {cp, ""} when cp in 0xD800..0xDFFF -> "\uFFFD"
      {cp, ""} -> <<cp::utf8>>
      _ -> fail("invalid \\u escape")
    end
  end

  defp number(bin) do
    {int_part, rest} = take_while(bin, &(&1 in ?0..?9 or &1 == ?-))
    {frac, rest} = if match?(<<?., _::binary>>, rest), do: take_digits_after(rest), else: {"", rest}
    {exp, rest} = exponent(rest)
    text = int_part <> frac <> exp

    result =
      if frac == "" and exp == "" do
        Integer.parse(text)
      else
        text = if frac == "", do: int_part <> ".0" <> exp, else: text
        Float.parse(text)
      end

    case result do
      {n, ""} -> {n, rest}
      _ -> fail("invalid number #{inspect(text)}")
    end
  end

  defp take_digits_after(<<?., rest::binary>>) do
    {digits, rest} = take_while(rest, &(&1 in ?0..?9))
    if digits == "", do: fail("invalid number"), else: {"." <> digits, rest}
  end

  defp exponent(<<e, rest::binary>>) when e in [?e, ?E] do
    {sign, rest} =
      case rest do
        <<s, r::binary>> when s in [?+, ?-] -> {<<s>>, r}
        r -> {"", r}
      end

    {digits, rest} = take_while(rest, &(&1 in ?0..?9))
    if digits == "", do: fail("invalid exponent"), else: {"e" <> sign <> digits, rest}
  end

  defp exponent(rest), do: {"", rest}

  defp take_while(bin, pred), do: take_while(bin, pred, 0)

  defp take_while(bin, pred, n) do
    case bin do
      <<_::binary-size(n), c, _::binary>> -> if pred.(c), do: take_while(bin, pred, n + 1), else: split(bin, n)
      _ -> split(bin, n)
    end
  end

  defp split(bin, n), do: {binary_part(bin, 0, n), binary_part(bin, n, byte_size(bin) - n)}
end
