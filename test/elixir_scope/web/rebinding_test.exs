defmodule ElixirScope.Web.RebindingTest do
  # Issue 12.5: `curl -H 'Host: evil.example.com' http://127.0.0.1:4040/api/event/1`
  # returned captured arguments. A DNS-rebinding page reaches the server under its own
  # name; only the names the server is really reached by are answered.
  use ExUnit.Case, async: false
  import ElixirScope.WebHelpers

  alias ElixirScope.Config
  alias ElixirScope.Test.EventBuilder, as: B
  alias ElixirScope.Web
  alias ElixirScope.Web.Hosts

  @secret "captured-argument-6d1f"

  setup_all do
    [pid] = B.pids(1)
    {b, cid} = B.call(B.new(), pid, Shop, :pay, [@secret])
    {b, _} = B.ret(b, pid, cid, :ok)
    events = B.events(b)
    {:ok, web} = Web.start(port: 0, source: {:events, events, %{}})
    on_exit(fn -> Web.stop(web) end)
    %{web: web, id: hd(events).id}
  end

  # a raw request: no client puts its own Host in
  defp request(port, path, headers, version \\ "1.1") do
    head = Enum.map_join(headers, "", fn {k, v} -> "#{k}: #{v}\r\n" end)
    resp = raw(port, "GET #{path} HTTP/#{version}\r\n#{head}Connection: close\r\n\r\n")
    [status_line | _] = String.split(resp, "\r\n")
    [_, status | _] = String.split(status_line, " ")
    {String.to_integer(status), resp}
  end

  test "a foreign Host gets 403 and no captured data", %{web: web, id: id} do
    for host <- ["evil.example.com", "evil.example.com:#{web.port}", "127.0.0.1.evil.example.com:#{web.port}", "localhost.:#{web.port}", "127.0.0.2:#{web.port}"] do
      {status, resp} = request(web.port, "/api/event/#{id}", [{"Host", host}])
      assert status == 403, "Host #{host} answered #{status}"
      refute resp =~ @secret
      assert resp =~ "not accepted"
    end

    # the page and the static files too, not only the API
    assert {403, _} = request(web.port, "/", [{"Host", "evil.example.com"}])
    assert {403, _} = request(web.port, "/static/app.js", [{"Host", "evil.example.com"}])
  end

  test "the wrong port, no port, no Host or two Hosts are refused", %{web: web, id: id} do
    assert {403, _} = request(web.port, "/api/event/#{id}", [{"Host", "127.0.0.1:#{web.port + 1}"}])
    assert {403, _} = request(web.port, "/api/event/#{id}", [{"Host", "127.0.0.1"}])
    assert {400, resp} = request(web.port, "/api/event/#{id}", [], "1.0")
    refute resp =~ @secret
    assert {400, _} = request(web.port, "/api/event/#{id}", [{"Host", "127.0.0.1:#{web.port}"}, {"Host", "evil.example.com"}])
  end

  test "the loopback names and the bound address with the port are answered", %{web: web, id: id} do
    for host <- ["127.0.0.1:#{web.port}", "localhost:#{web.port}", "LocalHost:#{web.port}", "[::1]:#{web.port}"] do
      {status, resp} = request(web.port, "/api/event/#{id}", [{"Host", host}])
      assert status == 200, "Host #{host} answered #{status}"
      assert resp =~ @secret
    end

    # what an ordinary client sends
    assert {200, %{"call" => %{"args" => [_]}}} = api(web, "api/event/#{id}")
  end

  test "an API request with a foreign Origin is refused; a same-origin one is answered", %{web: web, id: id} do
    host = {"Host", "127.0.0.1:#{web.port}"}

    for origin <- ["http://evil.example.com", "http://evil.example.com:#{web.port}", "null", "https://127.0.0.1:#{web.port}.evil.com", "file://", "not a url"] do
      {status, resp} = request(web.port, "/api/event/#{id}", [host, {"Origin", origin}])
      assert status == 403, "Origin #{origin} answered #{status}"
      refute resp =~ @secret
    end

    assert {200, _} = request(web.port, "/api/event/#{id}", [host, {"Origin", "http://127.0.0.1:#{web.port}"}])
    assert {200, _} = request(web.port, "/api/event/#{id}", [host, {"Origin", "http://localhost:#{web.port}"}])
  end

  test "configured hosts are answered, with their port or without (behind a proxy)" do
    {:ok, web} = Web.start(port: 0, source: {:events, [], %{}}, hosts: ["cinema.test", "box.test:8443"])
    on_exit(fn -> Web.stop(web) end)
    p = web.port

    assert {200, _} = request(p, "/api/summary", [{"Host", "cinema.test:#{p}"}])
    assert {200, _} = request(p, "/api/summary", [{"Host", "cinema.test"}])
    assert {200, _} = request(p, "/api/summary", [{"Host", "box.test:8443"}, {"Origin", "http://box.test:8443"}])
    assert {200, _} = request(p, "/api/summary", [{"Host", "cinema.test"}, {"Origin", "https://cinema.test"}])
    assert {403, _} = request(p, "/api/summary", [{"Host", "box.test"}])
    assert {403, _} = request(p, "/api/summary", [{"Host", "other.test:#{p}"}])
    assert {403, _} = request(p, "/api/summary", [{"Host", "cinema.test"}, {"Origin", "https://evil.test"}])
  end

  test "with a token and a wildcard bind, a foreign Host is refused even with the token" do
    {:ok, web} = Web.start(port: 0, ip: "0.0.0.0", source: {:events, [], %{}})
    on_exit(fn -> Web.stop(web) end)
    token = {"x-scope-token", web.token}
    assert {403, _} = request(web.port, "/api/summary", [{"Host", "evil.example.com:#{web.port}"}, token])
    assert {200, _} = request(web.port, "/api/summary", [{"Host", "127.0.0.1:#{web.port}"}, token])
    {:ok, name} = :inet.gethostname()
    assert {200, _} = request(web.port, "/api/summary", [{"Host", "#{name}:#{web.port}"}, token])
  end

  test "hosts: is validated by Web.start and by Config" do
    assert {:error, msg} = Web.start(port: 0, hosts: ["ok.test", "bad host"])
    assert msg =~ "hosts"
    assert {:error, _} = Web.start(port: 0, hosts: "cinema.test")
    assert {:error, _} = Web.start(port: 0, hosts: [:atom])
    assert {:ok, config} = Config.validate(web: [hosts: ["cinema.test", "box.test:8443", "[::1]:4040", "10.0.0.2"]])
    assert config[:web][:hosts] == ["cinema.test", "box.test:8443", "[::1]:4040", "10.0.0.2"]
    assert Config.validate!([])[:web][:hosts] == []
    assert {:error, msg} = Config.validate(web: [hosts: ["http://cinema.test/"]])
    assert msg =~ "web.hosts"
    refute Hosts.valid?("a b") or Hosts.valid?("host:port") or Hosts.valid?("x/y") or Hosts.valid?("")
  end
end
