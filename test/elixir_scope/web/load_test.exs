defmodule ElixirScope.Web.LoadTest do
  # Issue 12.10: 200 concurrent clients used to get 94.7 % errors (503 past 64 clients,
  # resets) and p99 1.37 s. 200 keep-alive clients on 127.0.0.1 for a bounded time on a
  # demo-sized recording, each sending its next request as soon as the last is answered.
  # The latency target (p99 ≤ 200 ms over 20 s) is measured by `make bench`; this test
  # asserts that every client is served and prints what it measured.
  use ExUnit.Case, async: false

  alias ElixirScope.{Web, WebLoad}

  @moduletag :tmp_dir
  @moduletag timeout: 60_000
  @clients 200
  @duration_ms 8_000

  test "200 concurrent keep-alive clients are all served, ≤ 1 % errors", %{tmp_dir: dir} do
    rec = WebLoad.demo_recording(Path.join(dir, "demo.esrec"))
    {:ok, web} = Web.start(port: 0, source: rec)

    on_exit(fn ->
      Web.stop(web)
      ElixirScope.Recording.close(rec)
    end)

    paths = WebLoad.paths(rec)
    assert tuple_size(paths) > 50
    r = WebLoad.run(web.port, paths, clients: @clients, duration_ms: @duration_ms, timeout_ms: 5_000)

    IO.puts(
      "\ncinema load: #{@clients} clients, #{div(@duration_ms, 1000)} s, #{r.requests} requests (#{round(r.per_second)}/s), " <>
        "errors #{r.errors} (#{Float.round(r.error_rate * 100, 2)} %), p50 #{r.p50_ms} ms, p99 #{r.p99_ms} ms, max #{r.max_ms} ms"
    )

    assert r.error_rate <= 0.01, "statuses: #{inspect(r.statuses)}"
    # more than one round each: no client was left waiting for its connection
    assert r.requests >= 10 * @clients
  end
end
