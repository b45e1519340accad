defmodule ElixirScope.AI.NifLLMTest do
  use ExUnit.Case, async: true

  alias ElixirScope.NIF
  alias ElixirScope.Test.LLMServer

  describe "json_decode/1" do
    test "decodes objects, arrays, strings, numbers, booleans and null" do
      assert {:ok, %{"a" => [1, 2.5, "x", nil, true, false], "b" => %{"c" => -3}}} =
               NIF.json_decode(~s({"a":[1,2.5,"x",null,true,false],"b":{"c":-3}}))

      assert {:ok, "é€"} = NIF.json_decode(~s("\\u00e9\\u20ac"))
    end

    test "rejects malformed, truncated, hostile input with a message" do
      for bad <- [~s({"a":), ~s([1,2), "nope", ~s({"a":1} x), "", ~s("a\xff")] do
        assert {:error, msg} = NIF.json_decode(bad)
        assert is_binary(msg)
      end

      deep = String.duplicate("[", 100_000) <> String.duplicate("]", 100_000)
      assert {:error, _} = NIF.json_decode(deep)
      # small enough for a normal scheduler, still refused before parsing
      assert {:error, msg} =
               NIF.json_decode(String.duplicate("[", 1000) <> String.duplicate("]", 1000))

      assert msg =~ "deeply"
      assert {:ok, ["[[[["]} = NIF.json_decode(~s(["[[[["]))
      assert {:error, msg} = NIF.json_decode(~s({"n": 1e999}))
      assert msg =~ "range"
    end

    test "large inputs are decoded (on a dirty scheduler)" do
      big = NIF.json_encode(%{"list" => Enum.to_list(1..50_000)})
      assert byte_size(big) > 16 * 1024
      assert {:ok, %{"list" => list}} = NIF.json_decode(big)
      assert length(list) == 50_000
    end

    test "raises ArgumentError on a non-binary" do
      assert_raise ArgumentError, ~r/json_decode/, fn -> NIF.json_decode(:x) end
    end
  end

  describe "json_encode/1" do
    test "round-trips" do
      term = %{"a" => [1, 2.5, "x", nil, true], "b" => %{"c" => "ü"}}
      assert {:ok, ^term} = NIF.json_decode(NIF.json_encode(term))
      assert NIF.json_encode(%{k: :atom_value}) == ~s({"k":"atom_value"})
    end

    test "refuses tuples, pids, invalid UTF-8, huge integers and deep nesting with ArgumentError" do
      assert_raise ArgumentError, ~r/tuples/, fn -> NIF.json_encode({1, 2}) end
      assert_raise ArgumentError, ~r/UTF-8/, fn -> NIF.json_encode(<<0xFF>>) end
      assert_raise ArgumentError, ~r/2\^53/, fn -> NIF.json_encode(Integer.pow(2, 70)) end
      assert_raise ArgumentError, ~r/improper/, fn -> NIF.json_encode([1 | 2]) end
      deep = Enum.reduce(1..200, 1, fn _, acc -> [acc] end)
      assert_raise ArgumentError, ~r/deeply/, fn -> NIF.json_encode(deep) end
      ok_deep = Enum.reduce(1..120, 1, fn _, acc -> [acc] end)
      assert {:ok, ^ok_deep} = NIF.json_decode(NIF.json_encode(ok_deep))
    end
  end

  describe "llm_http_request/5" do
    test "validates every argument" do
      assert_raise ArgumentError, ~r/method/, fn ->
        NIF.llm_http_request(1, "http://x", [], "", %{})
      end

      assert_raise ArgumentError, ~r/url/, fn -> NIF.llm_http_request("GET", :x, [], "", %{}) end

      assert_raise ArgumentError, ~r/headers/, fn ->
        NIF.llm_http_request("GET", "http://x", :h, "", %{})
      end

      assert_raise ArgumentError, ~r/header/, fn ->
        NIF.llm_http_request("GET", "http://x", [{"a", 1}], "", %{})
      end

      assert_raise ArgumentError, ~r/CR, LF/, fn ->
        NIF.llm_http_request("GET", "http://x", [{"a", "b\r\nc: d"}], "", %{})
      end

      assert_raise ArgumentError, ~r/body/, fn ->
        NIF.llm_http_request("GET", "http://x", [], :b, %{})
      end

      assert_raise ArgumentError, ~r/opts/, fn ->
        NIF.llm_http_request("GET", "http://x", [], "", [])
      end

      assert_raise ArgumentError, ~r/timeout_ms/, fn ->
        NIF.llm_http_request("GET", "http://x", [], "", %{timeout_ms: 0})
      end

      assert_raise ArgumentError, ~r/max_response_bytes/, fn ->
        NIF.llm_http_request("GET", "http://x", [], "", %{max_response_bytes: -1})
      end

      assert_raise ArgumentError, ~r/method/, fn ->
        NIF.llm_http_request("BREW", "http://x", [], "", %{})
      end
    end

    test "performs a request against a local server: method, headers, body, status, response headers" do
      srv =
        LLMServer.start(fn req ->
          {201, [{"x-echo-method", req.method}, {"Retry-After", "3"}],
           "#{req.headers["x-test"]}|#{req.headers["content-type"]}|#{req.body}"}
        end)

      try do
        assert {:ok, 201, headers, body} =
                 NIF.llm_http_request(
                   "POST",
                   srv.url <> "/p?q=1",
                   [{"x-test", "hi"}, {"content-type", "text/plain"}],
                   ["a", "b"],
                   %{timeout_ms: 5000}
                 )

        assert body == "hi|text/plain|ab"
        assert {"x-echo-method", "POST"} in headers
        assert {"retry-after", "3"} in headers
        assert [%{path: "/p", query: "q=1"}] = LLMServer.requests(srv)
      after
        LLMServer.stop(srv)
      end
    end

    test "reports refused connections, timeouts, oversize bodies, TLS failures" do
      port = LLMServer.closed_port()

      assert {:error, :connect_refused, _} =
               NIF.llm_http_request("GET", "http://127.0.0.1:#{port}/", [], "", %{
                 timeout_ms: 2000
               })

      srv =
        LLMServer.start(fn
          %{path: "/slow"} -> {:sleep, 1500, {200, [], "late"}}
          %{path: "/big"} -> {200, [], String.duplicate("x", 10_000)}
          _ -> {200, [], "ok"}
        end)

      try do
        assert {:error, :timeout, _} =
                 NIF.llm_http_request("GET", srv.url <> "/slow", [], "", %{timeout_ms: 200})

        assert {:error, :too_large, msg} =
                 NIF.llm_http_request("GET", srv.url <> "/big", [], "", %{
                   timeout_ms: 2000,
                   max_response_bytes: 1000
                 })

        assert msg =~ "1000"
        https = String.replace(srv.url, "http://", "https://")

        assert {:error, :tls, _} =
                 NIF.llm_http_request("GET", https <> "/", [], "", %{timeout_ms: 2000})
      after
        LLMServer.stop(srv)
      end
    end
  end

  describe "LLM helpers" do
    test "build and extract round trip, plan parsing" do
      body = NIF.llm_build_gemini_request("sys", "user", true, 0.2, 100)

      assert {:ok,
              %{
                "generationConfig" => %{
                  "responseMimeType" => "application/json",
                  "responseSchema" => %{}
                }
              }} = NIF.json_decode(body)

      body = NIF.llm_build_openai_request("m", nil, "user", true, 0.2, 0)
      assert {:ok, %{"model" => "m", "messages" => [%{"role" => "user"}]}} = NIF.json_decode(body)

      assert {:ok, "hi"} = NIF.llm_extract_text(:gemini, LLMServer.gemini_body("hi"))
      assert {:ok, "hi"} = NIF.llm_extract_text(:openai, LLMServer.openai_body("hi"))
      assert {:error, :malformed_json, _} = NIF.llm_extract_text(:openai, "{")
      assert_raise ArgumentError, fn -> NIF.llm_extract_text(:other, "{}") end

      assert {:ok,
              %{modules: [%{module: "A", level: :full, functions: [%{name: "f", arity: 1}]}]}} =
               NIF.llm_parse_plan(
                 ~s({"modules":[{"module":"A","level":"full","functions":[{"name":"f","arity":1}]}]})
               )

      assert {:error, :invalid_plan, msg} =
               NIF.llm_parse_plan(~s({"modules":[{"module":"A","level":"max"}]}))

      assert msg =~ "level"

      assert_raise ArgumentError, fn ->
        NIF.llm_build_gemini_request(nil, <<0xFF>>, true, 0.2, 0)
      end

      assert_raise ArgumentError, fn -> NIF.llm_build_gemini_request(nil, "x", true, 5.0, 0) end
    end
  end
end
