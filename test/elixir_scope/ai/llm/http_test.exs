defmodule ElixirScope.AI.LLM.HTTPTest do
  use ExUnit.Case, async: true

  alias ElixirScope.AI.LLM.HTTP

  test "Retry-After in seconds, as an HTTP date, absent, or too long" do
    assert HTTP.retry_wait([{"retry-after", "2"}], 1, []) == 2000
    future = :calendar.universal_time() |> :calendar.datetime_to_gregorian_seconds() |> Kernel.+(5)
    date = future |> :calendar.gregorian_seconds_to_datetime() |> :httpd_util.rfc1123_date() |> to_string()
    wait = HTTP.retry_wait([{"retry-after", date}], 1, [])
    assert wait in 3000..5000
    past = :httpd_util.rfc1123_date({{2000, 1, 1}, {0, 0, 0}}) |> to_string()
    assert HTTP.retry_wait([{"retry-after", past}], 1, []) == 0
    # no header: exponential backoff from :backoff_ms
    assert HTTP.retry_wait([], 1, backoff_ms: 100) in 100..125
    assert HTTP.retry_wait([], 3, backoff_ms: 100) in 400..425
    assert HTTP.retry_wait([{"retry-after", "999"}], 1, max_retry_after_ms: 1000) == :too_long
    assert HTTP.retry_wait([{"retry-after", "soon"}], 1, backoff_ms: 0) == 0
  end

  test "origin never shows the path or the query" do
    assert HTTP.origin("https://example.com/v1/x?key=secret") == "https://example.com:443"
    assert HTTP.origin("nonsense") == "the configured URL"
  end
end
