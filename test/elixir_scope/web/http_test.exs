defmodule ElixirScope.Web.HTTPTest do
  # The cinema's HTTP/1.1 transport (ElixirScope.Web.HTTP) and its answers to bad requests
  # (issues 12.10 and 12.11).
  use ExUnit.Case, async: false
  import ExUnit.CaptureLog
  import ElixirScope.WebHelpers

  alias ElixirScope.Web
  alias ElixirScope.Web.{Render, Server}

  setup_all do
    {events, pids, {mono0, _} = clock} = record_scenario()
    {:ok, web} = Web.start(port: 0, source: {:events, events, %{t0: mono0, clock: clock}})
    on_exit(fn -> Web.stop(web) end)
    %{web: web, events: events, pids: pids, host: "127.0.0.1:#{web.port}"}
  end

  defp connect(web) do
    {:ok, sock} = :gen_tcp.connect({127, 0, 0, 1}, web.port, [:binary, active: false, packet: :http_bin])
    sock
  end

  # one response on a keep-alive socket: {status, headers, body}
  defp read_response(sock, head? \\ false) do
    :ok = :inet.setopts(sock, packet: :http_bin)
    {:ok, {:http_response, _, status, _}} = :gen_tcp.recv(sock, 0, 5_000)
    headers = read_headers(sock, %{})
    :ok = :inet.setopts(sock, packet: :raw)
    length = String.to_integer(headers["content-length"])
    body = if head? or length == 0, do: "", else: elem(:gen_tcp.recv(sock, length, 5_000), 1)
    {status, headers, body}
  end

  defp read_headers(sock, acc) do
    case :gen_tcp.recv(sock, 0, 5_000) do
      {:ok, {:http_header, _, _, name, value}} -> read_headers(sock, Map.put(acc, String.downcase(name), value))
      {:ok, :http_eoh} -> acc
    end
  end

  defp status_of(resp), do: resp |> String.split(" ", parts: 3) |> Enum.at(1) |> String.to_integer()

  test "keep-alive: many requests on one connection, pipelined ones answered in order", %{web: web, host: host} do
    sock = connect(web)
    for _ <- 1..5, do: :ok = :gen_tcp.send(sock, "GET /api/summary HTTP/1.1\r\nHost: #{host}\r\n\r\n")
    :ok = :gen_tcp.send(sock, "GET /api/nope HTTP/1.1\r\nHost: #{host}\r\n\r\n")
    for _ <- 1..5, do: assert({200, %{"content-type" => "application/json" <> _}, "{" <> _} = read_response(sock))
    assert {404, _, _} = read_response(sock)
    :gen_tcp.close(sock)
  end

  test "every accepted connection has TCP_NODELAY (no 40 ms Nagle/delayed-ACK wait per response)", %{web: web, host: host} do
    sock = connect(web)
    :ok = :gen_tcp.send(sock, "GET /api/summary HTTP/1.1\r\nHost: #{host}\r\n\r\n")
    assert {200, _, _} = read_response(sock)
    {:ok, mine} = :inet.sockname(sock)
    # the server's end of this connection is the socket whose peer is our end
    [server_end] = for p <- Port.list(), Port.info(p, :name) == {:name, ~c"tcp_inet"}, :inet.peername(p) == {:ok, mine}, do: p
    assert {:ok, [nodelay: true]} = :inet.getopts(server_end, [:nodelay])
    :gen_tcp.close(sock)
  end

  test "HEAD has the GET's length and no body; other methods get 405 and the connection closes", %{web: web, host: host} do
    sock = connect(web)
    :ok = :gen_tcp.send(sock, "HEAD /api/summary HTTP/1.1\r\nHost: #{host}\r\n\r\n")
    {200, h, ""} = read_response(sock, true)
    :ok = :gen_tcp.send(sock, "GET /api/summary HTTP/1.1\r\nHost: #{host}\r\n\r\n")
    {200, _, body} = read_response(sock)
    assert String.to_integer(h["content-length"]) == byte_size(body)
    :gen_tcp.close(sock)

    resp = raw(web.port, "POST /api/summary HTTP/1.1\r\nHost: #{host}\r\nContent-Length: 2\r\n\r\n{}")
    assert status_of(resp) == 405
    assert resp =~ "connection: close"
  end

  test "malformed or oversized requests get a 4xx and are closed", %{web: web, host: host} do
    assert status_of(raw(web.port, "NONSENSE\r\n\r\n")) == 400
    assert status_of(raw(web.port, "GET http://evil/api/summary HTTP/1.1\r\nHost: #{host}\r\n\r\n")) == 400
    assert status_of(raw(web.port, "GET /#{String.duplicate("a", 20_000)} HTTP/1.1\r\nHost: #{host}\r\n\r\n")) == 414
    assert status_of(raw(web.port, "GET / HTTP/1.1\r\nHost: #{host}\r\nX-Big: #{String.duplicate("b", 20_000)}\r\n\r\n")) == 431
    many = Enum.map_join(1..150, "", &"X-H#{&1}: v\r\n")
    assert status_of(raw(web.port, "GET / HTTP/1.1\r\nHost: #{host}\r\n#{many}\r\n")) == 431
    # past 64 KB in one line the connection is closed unanswered
    assert raw(web.port, "GET / HTTP/1.1\r\nHost: #{host}\r\nX-Huge: #{String.duplicate("c", 70_000)}\r\n\r\n") == ""
    # HTTP/1.0 closes after the answer
    assert raw(web.port, "GET /api/summary HTTP/1.0\r\nHost: #{host}\r\n\r\n") =~ "connection: close"
  end

  test "every bad parameter gets 400 with a message and no internal text", %{web: web, pids: pids} do
    pid = URI.encode_www_form(Render.pid(pids.account))

    bad = [
      "api/state_diff?pid=%3C9999999999.0.0%3E&t1=1&t2=2",
      "api/state_diff?pid=#{pid}&t1=x&t2=2",
      "api/state_diff?pid=#{pid}&t1=1",
      "api/state_diff?t1=1&t2=2",
      "api/state_diff?pid=%FF%FE&t1=1&t2=2",
      "api/at?t=99999999999999999999999999&pids=#{pid}",
      "api/at?pids=#{pid}",
      "api/at?t=1&pids=%3C0.1.2%3E",
      "api/at?t=1&pids=#{String.duplicate("x", 5000)}",
      "api/events?limit=0",
      "api/events?limit=-5",
      "api/events?after_id=abc",
      "api/events?after_id=1e9",
      "api/event/0",
      "api/event/-1",
      "api/event/1.5",
      "api/event/99999999999999999999999999999",
      "api/call_tree?pid=#{pid}&limit=0",
      "api/call_tree?pid=#{pid}&offset=-1",
      "api/call_tree?pid=#{pid}&since=yesterday",
      "api/call_tree?pid=nope",
      "api/search?q=kind:bogus",
      "api/search?q=pid:%3C9999999999.0.0%3E",
      "api/search?q=#{String.duplicate("a", 600)}",
      "api/search?q=x&limit=100000",
      "api/search?q=x&after_id=-1"
    ]

    for path <- bad do
      {status, %{"error" => msg}} = api(web, path)
      assert status == 400, "#{path} answered #{status}: #{msg}"
      assert is_binary(msg) and msg != ""

      for leak <- ["**", "Elixir.", "Error)", "erlang", ".ex:", "stacktrace", "#PID", "%{"] do
        refute msg =~ leak, "#{path}: #{inspect(msg)} shows internal text"
      end
    end
  end

  test "the live store: a pid beyond the VM's ranges is a 400, not a 500" do
    ElixirScope.stop()
    :ok = ElixirScope.start()
    on_exit(fn -> ElixirScope.stop() end)
    {:ok, web} = Web.start(port: 0, source: :live)
    on_exit(fn -> Web.stop(web) end)
    assert {400, %{"error" => "unknown pid" <> _}} = api(web, "api/state_diff?pid=%3C9999999999.0.0%3E&t1=1&t2=2")
    assert {400, _} = api(web, "api/call_tree?pid=%3C0.99999999999.0%3E")
    assert {400, _} = api(web, "api/at?t=1&pids=%3C0.0.99999999999%3E")
  end

  test "an internal failure is logged; the client only learns that it happened" do
    rec = ElixirScope.Recording.from_events([], %{})
    {:ok, web} = Web.start(port: 0, source: rec)
    on_exit(fn -> Web.stop(web) end)
    # the recording's tables are gone under the server: every query now fails inside
    ElixirScope.Recording.close(rec)
    Process.sleep(50)

    log =
      capture_log(fn ->
        assert {500, %{"error" => msg}} = api(web, "api/events")
        assert msg == "internal error (details are in the server log)"
      end)

    assert log =~ "ElixirScope cinema: internal error on GET /api/events"
  end

  test "list endpoints are paged: call_tree by offset, search by after_id", %{web: web, events: events, pids: pids} do
    teller = URI.encode_www_form(Render.pid(pids.teller))
    {200, all} = api(web, "api/call_tree?pid=#{teller}")
    assert all["next_offset"] == nil and length(all["rows"]) > 3
    {200, p1} = api(web, "api/call_tree?pid=#{teller}&limit=2")
    {200, p2} = api(web, "api/call_tree?pid=#{teller}&limit=2&offset=#{p1["next_offset"]}")
    assert p1["next_offset"] == 2
    assert p1["rows"] ++ p2["rows"] == Enum.take(all["rows"], 4)
    assert {400, _} = api(web, "api/call_tree?pid=#{teller}&limit=5001")

    {200, s1} = api(web, "api/search?q=kind:call&limit=3")
    assert s1["truncated"] and length(s1["ids"]) == 3
    {200, s2} = api(web, "api/search?q=kind:call&limit=1000&after_id=#{s1["next_after_id"]}")
    assert s2["truncated"] == false and s2["next_after_id"] == nil
    assert s1["ids"] ++ s2["ids"] == for(e <- events, e.kind == :call, do: e.id)
  end

  test "a recording's answers are computed once; replacing the source forgets them", %{events: events} do
    {:ok, web} = Web.start(port: 0, source: {:events, events, %{}})
    on_exit(fn -> Web.stop(web) end)
    {200, s1} = api(web, "api/summary")
    assert s1["events"] == length(events)
    :ok = Server.set_source(web.pid, {:events, Enum.take(events, 3), %{}})
    {200, s2} = api(web, "api/summary")
    assert s2["events"] == 3
  end
end
