defmodule ElixirScope.ExportSpansTest do
  @moduledoc false
  # Span shapes both exports share (issue 14 item 7): tail-called continuations nest in the call
  # that handed over to them, open calls last to the trace's end and say so, exceptions name their
  # type, and an unreachable collector is one readable line.
  use ExUnit.Case, async: true

  alias ElixirScope.Export.{OTLP, Perfetto}
  alias ElixirScope.Test.EventBuilder, as: B

  defp loop_events do
    [p] = B.pids(1)
    b = B.new()
    {b, c3} = B.call(b, p, Loop, :loop, [3])
    {b, _} = B.add(b, p, :tail_call, call_id: c3, payload: {Loop, :loop, [2]})
    {b, c2} = B.call(b, p, Loop, :loop, [2])
    {b, _} = B.add(b, p, :tail_call, call_id: c2, payload: {Loop, :loop, [1]})
    {b, c1} = B.call(b, p, Loop, :loop, [1])
    {b, _} = B.ret(b, p, c1, :done)
    {b, open} = B.call(b, p, Server, :wait, [])
    {b, boom} = B.call(b, p, Math, :div, [1, 0])
    {b, _} = B.add(b, p, :exception, call_id: boom, payload: {:error, :badarith, [{Math, :div, 2, [line: 3]}]})
    {B.events(b), %{c3: c3, c2: c2, c1: c1, open: open}}
  end

  test "Perfetto: a tail-called continuation lies inside the call that handed over; an open call lasts to the end" do
    {events, ids} = loop_events()
    xs = for %{ph: "X"} = x <- Perfetto.build(events).traceEvents, into: %{}, do: {x.args.call_id, x}
    outer = xs[ids.c3]
    inner = xs[ids.c1]
    assert inner.ts >= outer.ts and inner.ts + inner.dur <= outer.ts + outer.dur + 1.0e-6
    assert outer.dur > 0
    open = xs[ids.open]
    assert open.args.status == "open" and open.dur > 0
  end

  test "OTLP: exception.type is the exception's module; the tail-called child starts inside its parent" do
    {events, ids} = loop_events()
    spans = OTLP.build(events).resourceSpans |> hd() |> Map.fetch!(:scopeSpans) |> hd() |> Map.fetch!(:spans)
    [%{events: [ex]}] = Enum.filter(spans, &(&1.name =~ "Math.div"))
    assert %{value: %{stringValue: "ArithmeticError"}} = Enum.find(ex.attributes, &(&1.key == "exception.type"))

    by_call = Map.new(spans, fn s -> {Enum.find_value(s.attributes, &(&1.key == "elixir.call_id" && &1.value.intValue)), s} end)
    outer = by_call[Integer.to_string(ids.c3)]
    inner = by_call[Integer.to_string(ids.c1)]
    assert String.to_integer(inner.startTimeUnixNano) <= String.to_integer(outer.endTimeUnixNano)
    assert String.to_integer(inner.endTimeUnixNano) <= String.to_integer(outer.endTimeUnixNano)
  end

  test "OTLP: an unreachable collector is one readable line" do
    {:ok, l} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
    {:ok, port} = :inet.port(l)
    :gen_tcp.close(l)
    {events, _} = loop_events()
    assert {:error, msg} = OTLP.post(events, "http://127.0.0.1:#{port}/v1/traces", timeout: 2_000)
    assert msg =~ "cannot reach the collector at http://127.0.0.1:#{port}/v1/traces: connection refused"
    refute msg =~ "failed_connect"
  end
end
