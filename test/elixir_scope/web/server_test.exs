defmodule ElixirScope.Web.ServerTest do
  use ExUnit.Case, async: false
  import ElixirScope.WebHelpers

  alias ElixirScope.CinemaScenario
  alias ElixirScope.Web
  alias ElixirScope.Web.Render

  setup_all do
    {events, pids, clock} = record_scenario()
    {mono0, _} = clock
    meta = %{title: "bank", names: %{pids.account => "Bank.Account"}, t0: mono0, clock: clock}
    {:ok, web} = Web.start(port: 0, source: {:events, events, meta})
    on_exit(fn -> Web.stop(web) end)
    %{web: web, events: events, pids: pids, account: Render.pid(pids.account), teller: Render.pid(pids.teller),
      acc_q: URI.encode_www_form(Render.pid(pids.account)), tel_q: URI.encode_www_form(Render.pid(pids.teller))}
  end

  test "serves the page and its assets with security headers", %{web: web} do
    {200, h, body} = get(base(web))
    assert body =~ "<canvas id=\"timeline\""
    assert h["content-type"] =~ "text/html"
    assert h["content-security-policy"] =~ "script-src 'self'"
    assert h["x-content-type-options"] == "nosniff"
    {200, h, js} = get(base(web) <> "static/app.js")
    assert h["content-type"] =~ "javascript"
    assert js =~ "textContent"
    {200, _, _} = get(base(web) <> "static/style.css")
  end

  test "summary describes the recording", %{web: web, events: events} do
    {200, s} = api(web, "api/summary")
    assert s["events"] == length(events)
    assert s["first_id"] == hd(events).id
    assert s["last_id"] == List.last(events).id
    assert s["t_end"] >= s["t_start"] and s["t_start"] >= 0
    assert s["live"] == false
    assert s["kinds"] == Enum.map(ElixirScope.Event.kinds(), &Atom.to_string/1)
  end

  test "events are paged with after_id/limit and compact rows", %{web: web, events: events, account: account} do
    {200, p1} = api(web, "api/events?limit=10")
    assert length(p1["rows"]) == 10 and p1["more"] == true
    {200, p2} = api(web, "api/events?after_id=#{p1["last_id"]}&limit=20000")
    assert p2["more"] == false
    rows = p1["rows"] ++ p2["rows"]
    assert Enum.map(rows, &hd/1) == Enum.map(events, & &1.id)
    # a row names its process and function through the page's tables
    [id, _t, pi, ki, mi | _] = Enum.find(p2["rows"] ++ p1["rows"], fn [_, _, _, ki, mi | _] -> ki == 0 and mi >= 0 end)
    assert is_integer(id)
    page = if Enum.any?(p1["rows"], &(hd(&1) == id)), do: p1, else: p2
    assert Enum.at(page["kinds"] || ElixirScope.Web.Data.kinds(), ki) in ["call", :call]
    assert Enum.at(page["mfas"], mi) =~ "."
    assert Enum.at(page["pids"], pi) =~ ~r/^<\d+\.\d+\.\d+>$/
    assert account in (p1["pids"] ++ p2["pids"])
    assert p1["names"][account] == "Bank.Account" or p2["names"][account] == "Bank.Account"
  end

  test "page size is bounded", %{web: web} do
    {400, %{"error" => msg}} = api(web, "api/events?limit=1000000")
    assert msg =~ "limit"
  end

  test "event detail: args, return, locals, expressions, state, source", %{web: web, events: events} do
    call = Enum.find(events, &(&1.kind == :call and &1.function == :handle_call and match?([{:deposit, 50} | _], &1.payload)))
    {200, d} = api(web, "api/event/#{call.id}")
    assert d["kind"] == "call"
    assert d["mfa"] == "ElixirScope.CinemaScenario.Account.handle_call/3"
    assert hd(d["call"]["args"]) == "{:deposit, 50}"
    assert d["call"]["status"] == "ok"
    assert d["call"]["return"] =~ "{:reply, {:ok, 150}"
    assert [%{"source" => "state.balance + n", "value" => "150"}] = d["call"]["exprs"]
    assert Enum.map(d["call"]["states"], & &1["phase"]) == ["before", "after"]
    assert d["call"]["duration_ns"] >= 0

    rec = Enum.find(events, &(&1.kind == :call and &1.function == :compound and match?([_, _, 2], &1.payload)))
    {200, d} = api(web, "api/event/#{rec.id}")
    assert [%{"vars" => vars}] = d["call"]["locals"]
    assert Enum.map(vars, & &1["name"]) == ["amount", "grown", "rate", "years"]
    assert d["call"]["parent"]["mfa"] =~ "compound/3"
  end

  test "exception detail carries the message and stacktrace", %{web: web, events: events} do
    exc = Enum.find(events, &(&1.kind == :exception))
    {200, d} = api(web, "api/event/#{exc.id}")
    assert d["kind"] == "exception"
    assert d["call"]["status"] == "exception"
    assert d["call"]["exception"]["message"] =~ "(ArgumentError) insufficient funds: balance 145, asked 500"
    assert Enum.any?(d["call"]["exception"]["stacktrace"], &(&1 =~ "apply_op/4"))
    assert hd(d["call"]["args"]) == "{:withdraw, 500}"
  end

  test "the captured <script> string travels as an escaped JSON string", %{web: web, events: events} do
    init = Enum.find(events, &(&1.function == :init))
    {200, _, body} = get(base(web) <> "api/event/#{init.id}")
    refute body =~ "<script>"
    assert body =~ "\\u003Cscript\\u003E"
    {200, d} = api(web, "api/event/#{init.id}")
    assert hd(d["call"]["args"]) == inspect(CinemaScenario.xss())
  end

  test "the instant: current calls and the GenServer state with the call that set it", %{web: web, events: events, account: account, teller: teller, acc_q: acc_q, tel_q: tel_q} do
    {200, s} = api(web, "api/summary")
    t0 = s["t_start"] - (hd(events).ts - hd(events).ts)
    states = Enum.filter(events, &(&1.kind == :state))
    base_ts = hd(events).ts - s["t_start"]
    after_first = hd(states).ts - base_ts
    {200, at1} = api(web, "api/at?t=#{after_first}&pids=#{acc_q},#{tel_q}")
    acc1 = Enum.find(at1["processes"], &(&1["pid"] == account))
    assert acc1["state"]["value"] =~ "balance: 100"

    exc = Enum.find(events, &(&1.kind == :exception))
    {200, at2} = api(web, "api/at?t=#{exc.ts - base_ts - 1}&pids=#{acc_q},#{tel_q}")
    acc2 = Enum.find(at2["processes"], &(&1["pid"] == account))
    # at the crash: the state is the one the last successful callback left, put there by
    # withdraw 30 (the :balance call after it did not change it)
    assert acc2["state"]["value"] =~ "balance: 145"
    assert acc2["state"]["set_by"]["mfa"] =~ "handle_call/3"
    assert acc2["state"]["set_by"]["args"] =~ "{:withdraw, 30}"
    # the account is inside handle_call({:withdraw, 500}); the teller waits in request/1 under run/1
    assert [%{"mfa" => "ElixirScope.CinemaScenario.Account.handle_call/3"}] = acc2["stack"]
    tel = Enum.find(at2["processes"], &(&1["pid"] == teller))
    assert Enum.map(tel["stack"], & &1["mfa"]) == ["ElixirScope.CinemaScenario.Teller.run/1", "ElixirScope.CinemaScenario.Teller.request/1"]
    assert is_integer(t0)
  end

  test "state diff between two instants names the changed paths", %{web: web, events: events, account: account} do
    base_ts = hd(events).ts - elem(api(web, "api/summary"), 1)["t_start"]
    states = Enum.filter(events, &(&1.kind == :state))
    t1 = hd(states).ts - base_ts
    t2 = List.last(states).ts - base_ts
    {200, d} = api(web, "api/state_diff?pid=#{URI.encode_www_form(account)}&t1=#{t1}&t2=#{t2}")
    paths = Map.new(d["changes"], &{&1["path"], &1})
    assert paths[".balance"]["old"] == "100"
    assert paths[".balance"]["new"] == "145"
    assert paths[".history"]["op"] == "changed"
    refute Map.has_key?(paths, ".owner")
  end

  test "call tree of a process", %{web: web, teller: teller} do
    {200, t} = api(web, "api/call_tree?pid=#{URI.encode_www_form(teller)}")
    [root | rest] = t["rows"]
    assert root["mfa"] == "ElixirScope.CinemaScenario.Teller.run/1" and root["depth"] == 0
    assert Enum.count(rest, &(&1["mfa"] =~ "request/1" and &1["depth"] == 1)) == 5
    depths = rest |> Enum.filter(&(&1["mfa"] =~ "compound")) |> Enum.map(& &1["depth"])
    assert depths == [1, 2, 3, 4, 5]
  end

  test "search by kind, module, pid and text", %{web: web, events: events, account: account} do
    {200, r} = api(web, "api/search?q=kind:exception")
    assert r["ids"] == for(e <- events, e.kind == :exception, do: e.id)
    {200, r} = api(web, "api/search?q=" <> URI.encode_www_form("insufficient"))
    kinds = Enum.map(r["ids"], fn id -> Enum.find(events, &(&1.id == id)).kind end)
    # the exception, the account's exit reason and the teller's {:crashed, ...} return hold the text
    assert Enum.sort(kinds) == [:exception, :exit, :return]
    {200, r} = api(web, "api/search?q=" <> URI.encode_www_form("kind:call fun:compound"))
    assert length(r["ids"]) == 5
    {200, r} = api(web, "api/search?q=" <> URI.encode_www_form("pid:#{account} kind:state"))
    assert length(r["ids"]) == Enum.count(events, &(&1.kind == :state))
    {400, %{"error" => msg}} = api(web, "api/search?q=kind:nope")
    assert msg =~ "unknown kind"
  end

  test "bad requests get 4xx with a message", %{web: web} do
    assert {404, %{"error" => _}} = api(web, "api/event/999999")
    assert {400, _} = api(web, "api/event/abc")
    assert {400, %{"error" => m}} = api(web, "api/at?t=5&pids=%3C9.9.9%3E")
    assert m =~ "unknown pid"
    assert {400, _} = api(web, "api/state_diff?pid=x&t1=1&t2=2")
    assert {400, _} = api(web, "api/at?t=notanumber")
    assert {404, _} = api(web, "api/eval?code=" <> URI.encode_www_form(~s[File.read!("/etc/passwd")]))
    assert {404, _} = api(web, "nothing/here")
  end

  test "only GET: other methods are refused", %{web: web} do
    resp = raw(web.port, "POST /api/summary HTTP/1.1\r\nHost: 127.0.0.1:#{web.port}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
    assert resp =~ "HTTP/1.1 405"
  end

  test "no request reads files outside the static directory (path traversal)", %{web: web} do
    secret = File.read!("mix.exs")

    for path <- [
          "/static/../../../../mix.exs",
          "/static/..%2f..%2f..%2fmix.exs",
          "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/mix.exs",
          "/static/....//....//mix.exs",
          "/../../../../../etc/passwd",
          "/static//etc/passwd",
          "/static/%2Fetc%2Fpasswd",
          "/static/app.js%00.html",
          "/api/event/1/../../../../mix.exs",
          "/static/" <> Path.expand("mix.exs")
        ] do
      resp = raw(web.port, "GET #{path} HTTP/1.1\r\nHost: 127.0.0.1:#{web.port}\r\nConnection: close\r\n\r\n")
      [status_line | _] = String.split(resp, "\r\n")
      refute status_line =~ " 200 ", "#{path} answered #{status_line}"
      refute resp =~ String.slice(secret, 0, 60)
      refute resp =~ "root:x:0:0"
    end
  end
end
