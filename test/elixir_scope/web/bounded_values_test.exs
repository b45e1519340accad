defmodule ElixirScope.Web.BoundedValuesTest do
  # Issue 12.3: a captured 1 <<< 1_000_000 made GET /api/event/ID take 11 s (inspect of a
  # 1-Mbit integer on OTP 25). Every view renders captured values through
  # ElixirScope.Report.Format.text/2, bounded in time and size.
  use ExUnit.Case, async: false
  import Bitwise
  import ExUnit.CaptureIO
  import ElixirScope.WebHelpers

  alias ElixirScope.Export.{OTLP, Perfetto}
  alias ElixirScope.Query.Source, as: QSource
  alias ElixirScope.Report.Format
  alias ElixirScope.Test.EventBuilder, as: B
  alias ElixirScope.Web
  alias ElixirScope.Web.{JSON, Render}

  @huge 1 <<< 1_000_000
  @shown "9900…9376 (301030 digits)"

  # generous against the 11 s it took; a full inspect of @huge takes seconds
  @bound_us 1_000_000

  setup_all do
    [pid] = B.pids(1)
    b = B.new()
    {b, cid} = B.call(b, pid, Big, :handle_call, [{:put, @huge}, :from, %{n: 1}])
    b = B.add!(b, pid, :state, call_id: cid, payload: {:before, %{n: 1}})
    b = B.add!(b, pid, :local, call_id: cid, payload: %{x: @huge, y: [@huge, -@huge]})
    b = B.add!(b, pid, :expr, call_id: cid, payload: {"x * x", @huge})
    b = B.add!(b, pid, :state, call_id: cid, payload: {:after, %{n: @huge}})
    {b, _} = B.ret(b, pid, cid, {:reply, :ok, %{n: @huge}})
    {b, cid2} = B.call(b, pid, Big, :crash, [@huge])
    stack = [{Big, :crash, [@huge], [file: ~c"lib/big.ex", line: 3]}]
    {b, _} = B.add(b, pid, :exception, call_id: cid2, payload: {:error, {:badarg, @huge}, stack})
    {b, cid3} = B.call(b, pid, Big, :lookup, [%{}])
    {b, _} = B.add(b, pid, :exception, call_id: cid3, payload: {:error, %KeyError{key: @huge, term: %{@huge => @huge}}, []})
    events = B.events(b)
    %{events: events, pid: pid}
  end

  defp timed(fun) do
    {us, result} = :timer.tc(fun)
    assert us < @bound_us, "took #{div(us, 1000)} ms"
    result
  end

  test "the formatter abbreviates huge integers without converting them to decimal" do
    assert timed(fn -> Format.text(@huge) end) == @shown
    assert Format.text(-@huge) == "-" <> @shown
    assert Format.big_integer(123_456_789 * Integer.pow(10, 400) + 4321) == "1234…4321 (409 digits)"
    # next to a power of ten the leading digits are not guessed
    assert Format.big_integer(Integer.pow(10, 400) - 1) =~ ~r/^…9999 \(≈40[01] digits\)$/
    # integers below 2^1024 are shown whole
    assert Format.text(1 <<< 1000) == Integer.to_string(1 <<< 1000)
    assert Format.value({:ok, @huge}) == "{:ok, #{@shown}}"
  end

  test "the formatter bounds the number of terms it visits and the text it makes" do
    deep = Enum.reduce(1..200_000, [], &[&1, &2])
    text = timed(fn -> Format.text(deep, limit: :infinity, max: 1_000_000) end)
    assert byte_size(text) < 200_000 and text =~ "..."
    strings = List.duplicate(String.duplicate("a", 10_000), 1_000)
    text = timed(fn -> Format.text(strings, limit: :infinity, printable_limit: :infinity, max: 50_000) end)
    assert byte_size(text) <= 50_000 + 3
    # an exception's own message inspects its fields: it gets a bounded copy
    assert {:error, %KeyError{key: %Format.Shown{text: @shown}}, []} = Format.exception({:error, %KeyError{key: @huge, term: %{}}, []})
    assert Format.exception_line({:error, %KeyError{key: @huge, term: %{}}, []}) =~ "key #{@shown} not found"
  end

  test "the cinema's API answers at once and shows the integer abbreviated", %{events: events, pid: pid} do
    {:ok, web} = Web.start(port: 0, source: {:events, events, %{}})
    on_exit(fn -> Web.stop(web) end)

    for e <- events do
      {200, d} = timed(fn -> api(web, "api/event/#{e.id}") end)
      body = JSON.encode!(d)
      assert body =~ "(301030 digits)", "event #{e.id} (#{e.kind})"
      assert byte_size(body) < 100_000
    end

    {200, r} = timed(fn -> api(web, "api/search?q=9376") end)
    assert length(r["ids"]) == length(events) - 2
    {200, r} = timed(fn -> api(web, "api/search?q=" <> URI.encode_www_form("not there")) end)
    assert r["ids"] == []
    p = URI.encode_www_form(Render.pid(pid))
    last = List.last(events).ts - hd(events).ts
    {200, at} = timed(fn -> api(web, "api/at?t=#{last}&pids=#{p}") end)
    assert hd(at["processes"])["state"]["value"] =~ @shown
    first_state = Enum.find(events, &(&1.kind == :state)).ts - hd(events).ts
    {200, diff} = timed(fn -> api(web, "api/state_diff?pid=#{p}&t1=#{first_state}&t2=#{last}") end)
    assert [%{"path" => ".n", "old" => "1", "new" => @shown}] = diff["changes"]
    {200, page} = timed(fn -> api(web, "api/events") end)
    assert Enum.any?(page["rows"], fn row -> is_binary(List.last(row)) and List.last(row) =~ "(301030 digits)" end)
  end

  test "IEx helpers, the report and the exports show it abbreviated, at once", %{events: events, pid: pid} do
    rec = ElixirScope.Recording.from_events(events, %{})
    QSource.put_default(rec)

    on_exit(fn ->
      QSource.put_default(:live)
      ElixirScope.Recording.close(rec)
    end)

    Process.put(:elixir_scope_colors, false)
    out = timed(fn -> capture_io(fn -> ElixirScope.IEx.history(pid) end) end)
    assert out =~ @shown
    out = timed(fn -> capture_io(fn -> ElixirScope.IEx.print_calls({Big, :handle_call, 3}) end) end)
    assert out =~ @shown
    out = timed(fn -> capture_io(fn -> ElixirScope.IEx.state_at(pid) end) end)
    assert out =~ @shown
    out = timed(fn -> capture_io(fn -> ElixirScope.IEx.vars(pid) end) end)
    assert out =~ @shown

    report = timed(fn -> ElixirScope.Report.render(events) end)
    assert report =~ @shown
    assert byte_size(report) < 100_000

    trace = timed(fn -> events |> Perfetto.build() |> JSON.encode!() end)
    assert trace =~ "(301030 digits)"
    spans = timed(fn -> events |> OTLP.build() |> JSON.encode!() end)
    assert spans =~ "(301030 digits)"
  end
end
