defmodule ElixirScope.ExportTest do
  use ExUnit.Case, async: false
  import ElixirScope.WebHelpers

  alias ElixirScope.Export.{OTLP, Perfetto}
  alias ElixirScope.Web.JSON

  @moduletag :tmp_dir

  setup_all do
    {events, pids, clock} = record_scenario()
    %{events: events, pids: pids, clock: clock}
  end

  # -- the trace-event format: required fields, phases, nesting of complete events per thread --
  defp validate_trace!(%{"traceEvents" => evs} = trace) do
    assert is_list(evs) and evs != []
    assert trace["displayTimeUnit"] in ["ns", "ms"]

    for e <- evs do
      assert is_binary(e["name"]) and e["name"] != "", "no name: #{inspect(e)}"
      assert e["ph"] in ["X", "B", "E", "i", "I", "M", "s", "t", "f"], "bad ph: #{inspect(e)}"
      assert is_integer(e["pid"]) and is_integer(e["tid"]), "pid/tid: #{inspect(e)}"
      if e["ph"] != "M", do: assert(is_number(e["ts"]) and e["ts"] >= 0, "ts: #{inspect(e)}")
      if e["ph"] == "X", do: assert(is_number(e["dur"]) and e["dur"] >= 0, "dur: #{inspect(e)}")
      if e["ph"] in ["i", "I"], do: assert(e["s"] in ["g", "p", "t"])
      if e["ph"] in ["s", "f"], do: assert(is_integer(e["id"]))
      if Map.has_key?(e, "args"), do: assert(is_map(e["args"]))
    end

    # every thread used has a name
    named = for %{"ph" => "M", "name" => "thread_name", "tid" => tid} <- evs, into: MapSet.new(), do: tid
    used = for %{"ph" => ph, "tid" => tid} <- evs, ph != "M", into: MapSet.new(), do: tid
    assert MapSet.subset?(used, named)

    # flows finish where they started
    starts = for %{"ph" => "s", "id" => id} <- evs, into: MapSet.new(), do: id
    for %{"ph" => "f", "id" => id} <- evs, do: assert(id in starts)

    # complete events of one thread nest properly: no partial overlap
    eps = 1.0e-6

    evs
    |> Enum.filter(&(&1["ph"] == "X"))
    |> Enum.group_by(&{&1["pid"], &1["tid"]})
    |> Enum.each(fn {_tid, xs} ->
      xs
      |> Enum.sort_by(&{&1["ts"], -&1["dur"]})
      |> Enum.reduce([], fn x, stack ->
        stop = x["ts"] + x["dur"]
        stack = Enum.drop_while(stack, fn parent_stop -> parent_stop <= x["ts"] + eps end)

        case stack do
          [parent_stop | _] -> assert stop <= parent_stop + eps, "#{x["name"]} overlaps its parent"
          [] -> :ok
        end

        [stop | stack]
      end)
    end)

    trace
  end

  test "perfetto: a valid, nested Chrome trace with args, returns and the exception", %{events: events, pids: pids} do
    trace = events |> Perfetto.build(names: %{pids.account => "Bank.Account"}) |> JSON.encode!() |> JSON.decode!() |> validate_trace!()
    xs = Enum.filter(trace["traceEvents"], &(&1["ph"] == "X"))
    assert length(xs) == Enum.count(events, &(&1.kind == :call))
    deposit = Enum.find(xs, &(&1["name"] =~ "handle_call/3" and &1["args"]["args"] |> hd() == "{:deposit, 50}"))
    assert deposit["args"]["return"] =~ "{:reply, {:ok, 150}"
    crash = Enum.find(xs, &(&1["args"]["status"] == "exception"))
    assert crash["args"]["exception"] =~ "insufficient funds"
    assert Enum.any?(trace["traceEvents"], &(&1["ph"] == "i" and &1["name"] == "exception"))
    names = for %{"name" => "thread_name", "args" => %{"name" => n}} <- trace["traceEvents"], do: n
    assert Enum.any?(names, &(&1 =~ "Bank.Account <0."))
    # the recursion nests five deep under the teller's run/1
    compounds = xs |> Enum.filter(&(&1["name"] =~ "compound")) |> Enum.sort_by(& &1["ts"])
    assert length(compounds) == 5
    assert compounds |> Enum.map(& &1["dur"]) |> Enum.chunk_every(2, 1, :discard) |> Enum.all?(fn [a, b] -> a >= b end)
  end

  test "perfetto: calls whose end was not recorded still nest (they end with their parent)" do
    ev = fn id, ts, kind, extra -> struct!(ElixirScope.Event, [id: id, ts: ts, pid: self(), kind: kind, line: 0, link: 0] ++ extra) end

    events = [
      ev.(1, 1_000, :call, module: M, function: :outer, arity: 0, call_id: 1, payload: []),
      ev.(2, 2_000, :call, module: M, function: :lost, arity: 0, call_id: 2, payload: []),
      ev.(3, 3_000, :call, module: M, function: :open, arity: 0, call_id: 3, payload: []),
      ev.(4, 9_000, :return, call_id: 1, payload: :ok)
    ]

    trace = events |> Perfetto.build() |> JSON.encode!() |> JSON.decode!() |> validate_trace!()
    assert [_, _, _] = Enum.filter(trace["traceEvents"], &(&1["ph"] == "X"))
  end

  test "mix scope.export --format perfetto FILE writes the trace", %{tmp_dir: dir} do
    record_scenario(keep: true)
    on_exit(fn -> ElixirScope.stop() end)
    path = Path.join(dir, "trace.json")
    ExUnit.CaptureIO.capture_io(fn -> Mix.Tasks.Scope.Export.run(["--format", "perfetto", path]) end)
    path |> File.read!() |> JSON.decode!() |> validate_trace!()
    assert_raise Mix.Error, ~r/--format/, fn -> Mix.Tasks.Scope.Export.run([path]) end
    assert_raise Mix.Error, ~r/unknown format/, fn -> Mix.Tasks.Scope.Export.run(["--format", "svg", path]) end
  end

  defp validate_otlp!(body, events) do
    assert [%{"resource" => res, "scopeSpans" => [%{"scope" => %{"name" => "elixir_scope"}, "spans" => spans}]}] = body["resourceSpans"]
    assert %{"key" => "service.name", "value" => %{"stringValue" => _}} = hd(res["attributes"])
    assert length(spans) == Enum.count(events, &(&1.kind == :call))
    by_id = Map.new(spans, &{&1["spanId"], &1})
    now = System.os_time(:nanosecond)

    for s <- spans do
      assert s["traceId"] =~ ~r/^[0-9a-f]{32}$/
      assert s["spanId"] =~ ~r/^[0-9a-f]{16}$/
      assert s["kind"] == 1
      start = String.to_integer(s["startTimeUnixNano"])
      stop = String.to_integer(s["endTimeUnixNano"])
      assert start <= stop
      assert abs(now - start) < 3_600 * 1_000_000_000
      if p = s["parentSpanId"] do
        parent = Map.fetch!(by_id, p)
        assert parent["traceId"] == s["traceId"]
        assert String.to_integer(parent["startTimeUnixNano"]) <= start
        assert stop <= String.to_integer(parent["endTimeUnixNano"])
      end
    end

    failed = Enum.find(spans, &(&1["status"]["code"] == 2))
    assert failed["status"]["message"] =~ "insufficient funds"
    assert [%{"name" => "exception", "attributes" => attrs}] = failed["events"]
    assert %{"key" => "exception.type", "value" => %{"stringValue" => "ArgumentError"}} in attrs
    spans
  end

  test "otlp: spans with parents, times and the exception", %{events: events, clock: clock} do
    body = events |> OTLP.build(clock: clock, service_name: "bank") |> JSON.encode!() |> JSON.decode!()
    spans = validate_otlp!(body, events)
    compound = spans |> Enum.filter(&(&1["name"] =~ "compound")) |> Enum.sort_by(& &1["startTimeUnixNano"])
    assert compound |> tl() |> Enum.zip(compound) |> Enum.all?(fn {child, parent} -> child["parentSpanId"] == parent["spanId"] end)
    assert length(compound |> Enum.map(& &1["traceId"]) |> Enum.uniq()) == 1
  end

  test "mix scope.export --format otlp FILE and --url to a collector on 127.0.0.1", %{tmp_dir: dir} do
    {events, _, _} = record_scenario(keep: true)
    on_exit(fn -> ElixirScope.stop() end)
    path = Path.join(dir, "spans.json")
    ExUnit.CaptureIO.capture_io(fn -> Mix.Tasks.Scope.Export.run(["--format", "otlp", path]) end)
    validate_otlp!(path |> File.read!() |> JSON.decode!(), events)

    {port, collector} = collector(200)
    out = ExUnit.CaptureIO.capture_io(fn ->
      Mix.Tasks.Scope.Export.run(["--format", "otlp", "--service", "bank", "--url", "http://127.0.0.1:#{port}/v1/traces"])
    end)
    assert out =~ "spans"
    assert_receive {:collector, ^collector, request, body}, 5_000
    assert request =~ "POST /v1/traces HTTP/1.1"
    assert request =~ ~r/content-type: application\/json/i
    validate_otlp!(JSON.decode!(body), events)

    {port, _} = collector(503)
    assert_raise Mix.Error, ~r/503/, fn ->
      Mix.Tasks.Scope.Export.run(["--format", "otlp", "--url", "http://127.0.0.1:#{port}/v1/traces"])
    end
  end

  # a one-request OTLP/HTTP collector stand-in: answers `status`, reports what it got
  defp collector(status) do
    {:ok, listen} = :gen_tcp.listen(0, [:binary, active: false, ip: {127, 0, 0, 1}, reuseaddr: true])
    {:ok, port} = :inet.port(listen)
    test = self()

    pid =
      spawn_link(fn ->
        {:ok, sock} = :gen_tcp.accept(listen, 10_000)
        {head, body} = read_request(sock, "")
        :gen_tcp.send(sock, "HTTP/1.1 #{status} X\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
        :gen_tcp.close(sock)
        :gen_tcp.close(listen)
        send(test, {:collector, self(), head, body})
      end)

    {port, pid}
  end

  defp read_request(sock, acc) do
    case String.split(acc, "\r\n\r\n", parts: 2) do
      [head, body] ->
        [_, len] = Regex.run(~r/content-length:\s*(\d+)/i, head)
        read_body(sock, head, body, String.to_integer(len))

      _ ->
        {:ok, data} = :gen_tcp.recv(sock, 0, 5_000)
        read_request(sock, acc <> data)
    end
  end

  defp read_body(_sock, head, body, len) when byte_size(body) >= len, do: {head, body}

  defp read_body(sock, head, body, len) do
    {:ok, data} = :gen_tcp.recv(sock, 0, 5_000)
    read_body(sock, head, body <> data, len)
  end
end
