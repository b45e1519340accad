defmodule ElixirScope.JSONTest do
  @moduledoc "The one JSON codec: Elixir encoding, cJSON decoding (more cases in web/json_test.exs)."
  use ExUnit.Case, async: true

  alias ElixirScope.JSON

  test "escapes what must be escaped, once each, and copies the rest" do
    s = "a\"b\\c\nd\re\tf" <> <<1, 31>> <> "<>&\u2028\u2029 é😀"
    out = JSON.encode!(s)
    assert out == ~S("a\"b\\c\nd\re\tf\u0001\u001F\u003C\u003E\u0026\u2028\u2029 é😀")
    assert JSON.decode!(out) == s
  end

  test "invalid UTF-8 in a string or a key becomes U+FFFD" do
    assert JSON.encode!(%{<<"k", 0xC3>> => <<0xE2, 0x80, "x">>}) == ~s({"k\uFFFD":"\uFFFD\uFFFDx"})
  end

  test "decoding: integral numbers are integers, errors are messages" do
    assert JSON.decode!(~s({"a": [1.0, 2.5, -3, 1e2]})) == %{"a" => [1, 2.5, -3, 100]}
    assert {:error, "nesting too deep"} = JSON.decode(String.duplicate("[", 200) <> String.duplicate("]", 200))
    assert {:error, "a string holds \\u0000" <> _} = JSON.decode(~S(["a\u0000b"]))
    assert {:error, "invalid UTF-8" <> _} = JSON.decode(<<"[\"", 0xFF, "\"]">>)
    assert_raise ArgumentError, ~r/invalid JSON/, fn -> JSON.decode!("{") end
  end

  test "round-trips what the servers send" do
    msg = %{seq: 1, type: "event", body: %{output: "[<0.229.0> #410] total is 0\n", line: 29, ok: true, none: nil}}
    assert JSON.decode!(JSON.encode!(msg)) == %{"seq" => 1, "type" => "event", "body" => %{"output" => "[<0.229.0> #410] total is 0\n", "line" => 29, "ok" => true, "none" => nil}}
  end
end
