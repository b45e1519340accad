defmodule ElixirScope.Bench.JSON do
  @moduledoc false
  # The JSON codecs side by side (make bench), on the messages DAP, MCP and the web
  # exchange: a small DAP response, an MCP tool result, a web events page.
  #   encode: ElixirScope.JSON (Elixir) against cJSON through the NIF (NIF.json_encode);
  #   decode: ElixirScope.JSON (cJSON through the NIF) against the hand-written Elixir
  #           decoder the web used before issue 16 (kept below as the baseline).
  # Rounds alternate the implementations so that all see the same machine load.
  import ElixirScope.Bench
  alias ElixirScope.Bench.JSON.ElixirDecoder
  alias ElixirScope.NIF

  def payloads do
    small = %{"seq" => 12, "type" => "response", "request_seq" => 11, "success" => true, "command" => "stackTrace",
      "body" => %{"totalFrames" => 2, "stackFrames" => for(i <- 1..2, do: %{"id" => i, "name" => "Demo.RiskScorer.risk/2",
        "line" => 29, "column" => 1, "source" => %{"name" => "risk_scorer.ex", "path" => "/work/demo/lib/demo/risk_scorer.ex"}})}}

    medium = %{"content" => [%{"type" => "text", "text" => String.duplicate("event #410 <0.229.0> Demo.RiskScorer.risk/2 ", 40)}],
      "structuredContent" => %{"events" => for(i <- 1..40, do: %{"id" => i, "pid" => "<0.229.0>", "kind" => "local",
        "mfa" => "Demo.Ledger.handle_call/3", "line" => 53, "value" => "%{balances: %{\"alice\" => #{i}}, seq: #{i}}"})}}

    large = %{"title" => "demo.esrec", "pids" => ["<0.96.0>", "<0.228.0>"],
      "rows" => for(i <- 1..5_000, do: [i, i * 1_000, 1, 3, 7, i - 1, 0, 29, "{:score, 700, []}"])}

    [dap_small: small, mcp_medium: medium, web_large: large]
  end

  def run do
    Enum.reduce(payloads(), {%{}, []}, fn {name, term}, {res, rows} ->
      bin = ElixirScope.JSON.encode!(term)
      {:ok, same} = ElixirDecoder.decode(bin)
      true = ElixirScope.JSON.decode(bin) == {:ok, same}
      # calls per timed batch: about 2 MB of JSON each
      n = max(div(2_000_000, byte_size(bin)), 2)

      measured = [
        {"json_encode_#{name}_elixir_ns", fn -> ElixirScope.JSON.encode!(term) end},
        {"json_encode_#{name}_cjson_ns", fn -> NIF.json_encode(term) end},
        {"json_decode_#{name}_cjson_ns", fn -> ElixirScope.JSON.decode(bin) end},
        {"json_decode_#{name}_elixir_ns", fn -> ElixirDecoder.decode(bin) end}
      ]

      times =
        for _round <- 1..15, {key, fun} <- measured, reduce: %{} do
          acc -> Map.update(acc, key, [batch_ns(fun, n)], &[batch_ns(fun, n) | &1])
        end
        |> Map.new(fn {k, xs} -> {k, median(xs)} end)

      new_rows =
        for {key, _} <- measured do
          used? = key =~ ~r/encode.*elixir|decode.*cjson/
          {"#{key} (#{fmt(byte_size(bin))} B)", times[key], "", if(used?, do: "ElixirScope.JSON", else: "alternative")}
        end

      {Map.merge(res, times), rows ++ new_rows}
    end)
  end

  # ns per call over one batch of n calls
  defp batch_ns(fun, n) do
    t0 = System.monotonic_time(:nanosecond)
    Enum.each(1..n, fn _ -> fun.() end)
    (System.monotonic_time(:nanosecond) - t0) / n
  end
end

defmodule ElixirScope.Bench.JSON.ElixirDecoder do
  @moduledoc false
  # The hand-written Elixir JSON decoder of ElixirScope.Web.JSON before issue 16,
  # replaced by cJSON (ElixirScope.JSON.decode/1); kept here only as the baseline.
  @max_depth 512

  def decode(bin) when is_binary(bin) do
    {value, rest} = value(ws(bin), 0)

    case ws(rest) do
      "" -> {:ok, value}
      other -> {:error, "unexpected trailing data at: #{String.slice(other, 0, 20)}"}
    end
  catch
    {:json_error, msg} -> {:error, msg}
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

