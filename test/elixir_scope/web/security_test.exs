defmodule ElixirScope.Web.SecurityTest do
  use ExUnit.Case, async: false
  import ElixirScope.WebHelpers

  alias ElixirScope.Capture.InstrumentationRuntime, as: R
  alias ElixirScope.Web

  defp start!(opts) do
    {:ok, web} = Web.start(Keyword.merge([port: 0, source: {:events, [], %{}}], opts))
    on_exit(fn -> Web.stop(web) end)
    web
  end

  defp url(web, path), do: "http://127.0.0.1:#{web.port}/#{path}"

  test "binds 127.0.0.1 by default and needs no token there" do
    web = start!([])
    assert web.ip == {127, 0, 0, 1}
    assert web.token == nil
    assert {200, _, _} = get(url(web, "api/summary"))
  end

  test "a configured token is required on every request: header, query or cookie" do
    web = start!(token: "s3cret-token-1")
    assert {401, _, body} = get(url(web, "api/summary"))
    assert body =~ "token"
    assert {401, _, _} = get(url(web, ""))
    assert {401, _, _} = get(url(web, "static/app.js"))
    assert {401, _, _} = get(url(web, "api/summary"), [{"x-scope-token", "wrong-token-xx"}])
    assert {200, _, _} = get(url(web, "api/summary"), [{"x-scope-token", "s3cret-token-1"}])
    assert {200, h, _} = get(url(web, "?token=s3cret-token-1"))
    assert h["set-cookie"] =~ "scope_token=s3cret-token-1"
    assert h["set-cookie"] =~ "HttpOnly"
    assert {200, _, _} = get(url(web, "static/app.js"), [{"cookie", "a=b; scope_token=s3cret-token-1"}])
    assert web.url =~ "?token=s3cret-token-1"
  end

  test "the page carries its first API answers in a JSON data block that no recorded string can close" do
    alias ElixirScope.Test.EventBuilder, as: B
    [pid] = B.pids(1)
    {b, c} = B.call(B.new(), pid, Shop, :checkout, ["</script><script>window.__xss = 1</script>"])
    {b, _} = B.ret(b, pid, c, :ok)
    web = start!(source: {:events, B.events(b), %{}})

    {200, h, page} = get(url(web, ""))
    assert h["content-security-policy"] =~ "script-src 'self'"
    # the data block and app.js: the captured "</script>" closed nothing
    assert [boot, _app, _rest] = String.split(page, "</script>")
    [_, json] = String.split(boot, ~s(<script id="boot" type="application/json">))
    data = Web.JSON.decode!(json)
    assert {200, data["summary"]} == api(web, "api/summary")
    assert length(data["events"]["rows"]) == 2
    assert data["events"]["rows"] |> hd() |> Enum.at(4) |> then(&Enum.at(data["events"]["mfas"], &1)) == "Shop.checkout/1"
    assert data["links"]["links"] == []
  end

  test "binding another address generates a token when none is given" do
    web = start!(ip: "0.0.0.0")
    assert web.ip == {0, 0, 0, 0}
    assert is_binary(web.token) and byte_size(web.token) >= 16
    assert web.url =~ "?token="
    assert {401, _, _} = get(url(web, "api/summary"))
    assert {200, _, _} = get(url(web, "api/summary"), [{"x-scope-token", web.token}])
  end

  test "invalid options are reported" do
    assert {:error, msg} = Web.start(ip: "not an ip")
    assert msg =~ "ip"
    assert {:error, msg} = Web.start(token: "short")
    assert msg =~ "8 characters"
    assert {:error, msg} = Web.start(bogus: 1)
    assert msg =~ "bogus"
    assert {:error, _} = Web.start(port: -1)
  end

  test "runs under a supervisor from the config's web: section" do
    {:ok, sup} = Supervisor.start_link([{Web, enabled: true, port: 0, source: {:events, [], %{}}}], strategy: :one_for_one)
    [{Web, pid, :worker, _}] = Supervisor.which_children(sup)
    %{port: port} = Web.Server.info(pid)
    assert {200, _, _} = get("http://127.0.0.1:#{port}/api/summary")
    Supervisor.stop(sup)
    refute Process.alive?(pid)
  end

  test "live mode: new events are served after the last id without a restart" do
    ElixirScope.stop()
    :ok = ElixirScope.start()
    on_exit(fn -> ElixirScope.stop() end)
    web = start!(source: :live)

    cid = R.report_function_entry(LiveMod, :first, [1])
    R.report_function_exit(cid, :ok)
    {200, s} = api(web, "api/summary")
    assert s["live"] == true
    {200, p1} = api(web, "api/events")
    assert length(p1["rows"]) == 2

    cid = R.report_function_entry(LiveMod, :second, [2])
    R.report_function_exit(cid, :ok)
    {200, p2} = api(web, "api/events?after_id=#{p1["last_id"]}")
    assert [[_, _, _, 0, mi | _], _] = p2["rows"]
    assert Enum.at(p2["mfas"], mi) == "LiveMod.second/1"
    {200, p3} = api(web, "api/events?after_id=#{p2["last_id"]}")
    assert p3["rows"] == []
  end
end
