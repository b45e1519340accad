defmodule ElixirScope.Web.JSONTest do
  use ExUnit.Case, async: true

  alias ElixirScope.Web.JSON

  test "round-trips values" do
    value = %{"a" => [1, -2, 3.5, true, false, nil, "x"], "nested" => %{"k" => [%{}, []]}, "u" => "héllo ✓ 😀"}
    assert value |> JSON.encode!() |> JSON.decode!() == value
  end

  test "encodes atoms, atom keys and escapes" do
    assert JSON.encode!(%{a: :b}) == ~s({"a":"b"})
    assert JSON.encode!("\"\\\n\t\u0001") == ~s("\\"\\\\\\n\\t\\u0001")
  end

  test "<, > and & are escaped so output is safe to embed" do
    out = JSON.encode!("<script>alert('x')</script> & \u2028")
    refute out =~ "<"
    refute out =~ ">"
    assert out =~ "\\u003Cscript\\u003E"
    assert JSON.decode!(out) == "<script>alert('x')</script> & \u2028"
  end

  test "invalid UTF-8 becomes U+FFFD instead of invalid JSON" do
    assert JSON.decode!(JSON.encode!(<<"ok", 0xFF, "!">>)) == "ok\uFFFD!"
  end

  test "refuses terms JSON cannot hold" do
    assert_raise ArgumentError, fn -> JSON.encode!({1, 2}) end
    assert_raise ArgumentError, fn -> JSON.encode!(self()) end
  end

  test "decodes numbers, escapes and surrogate pairs" do
    assert JSON.decode!(~s([0, -1, 1.5e3, 2E-2, "\\u00e9\\ud83d\\ude00\\/"])) == [0, -1, 1500.0, 0.02, "é😀/"]
  end

  test "rejects invalid input with a message" do
    for bad <- ["", "[1,", "{\"a\" 1}", "[01x]", "\"abc", "tru", "[1] x", "{1:2}"] do
      assert {:error, msg} = JSON.decode(bad), "accepted #{inspect(bad)}"
      assert is_binary(msg)
    end
  end

  test "deep nesting is an error, not a crash" do
    deep = String.duplicate("[", 100_000) <> String.duplicate("]", 100_000)
    assert {:error, "nesting too deep"} = JSON.decode(deep)
  end
end
