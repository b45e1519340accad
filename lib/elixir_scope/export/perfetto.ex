defmodule ElixirScope.Export.Perfetto do
  @moduledoc """
  Chrome trace-event JSON (opened by ui.perfetto.dev and chrome://tracing).

  One trace "process" (`pid` 1, named after the node) with one thread per
  Erlang process (`tid`, named `name <0.x.y>`); each call is a complete event
  (`ph: "X"`, `ts`/`dur` in microseconds from the trace start, `args` with the
  rendered arguments, return value or exception); exceptions, state changes,
  messages, spawns and exits are instant events (`ph: "i"`); every link between
  processes found by `ElixirScope.Query.Correlation` (a message and the receive
  that took it, a GenServer call, cast or reply, a spawn, a task's reply) is a
  flow arrow (`ph: "s"` → `ph: "f"`). A call with no recorded end lasts to the
  trace's end with `status: "open"`.
  """

  alias ElixirScope.Event
  alias ElixirScope.Export.Trace
  alias ElixirScope.Query.Correlation
  alias ElixirScope.Web.{JSON, Render}

  @doc "Builds the trace as a map ready for JSON. `opts`: `names: %{pid => name}`."
  @spec build([Event.t()], keyword()) :: map()
  def build(events, opts \\ []) do
    events = Enum.sort_by(events, & &1.id)
    t0 = events |> Enum.map(& &1.ts) |> Enum.min(fn -> 0 end)
    names = Keyword.get(opts, :names, %{})
    pids = events |> Enum.map(& &1.pid) |> Enum.uniq()
    tids = pids |> Enum.with_index(1) |> Map.new()
    us = fn ts -> (ts - t0) / 1000 end

    meta =
      [%{name: "process_name", ph: "M", pid: 1, tid: 0, args: %{name: "BEAM #{node()}"}}] ++
        Enum.map(pids, fn pid ->
          label = if n = names[pid], do: "#{name(n)} #{Render.pid(pid)}", else: Render.pid(pid)
          %{name: "thread_name", ph: "M", pid: 1, tid: tids[pid], args: %{name: label}}
        end)

    calls =
      for {pid, spans} <- Trace.spans(events), span <- spans do
        %{
          name: Render.mfa(span.call),
          cat: "call",
          ph: "X",
          pid: 1,
          tid: tids[pid],
          ts: us.(span.start),
          dur: (span.stop - span.start) / 1000,
          args: call_args(span)
        }
      end

    points =
      events
      |> Enum.filter(&(&1.kind in [:exception, :state, :send, :receive, :spawn, :exit, :custom]))
      |> Enum.flat_map(&instant(&1, tids[&1.pid], us))

    flows =
      events
      |> Correlation.links()
      |> Enum.filter(&(&1.from.pid != &1.to.pid))
      |> Enum.with_index(1)
      |> Enum.flat_map(fn {l, id} ->
        name = Atom.to_string(l.type)
        [
          %{ph: "s", id: id, name: name, cat: "message", pid: 1, tid: tids[l.from.pid], ts: us.(l.from.ts)},
          %{ph: "f", bp: "e", id: id, name: name, cat: "message", pid: 1, tid: tids[l.to.pid], ts: us.(l.to.ts)}
        ]
      end)

    %{
      traceEvents: meta ++ calls ++ points ++ flows,
      displayTimeUnit: "ns",
      otherData: %{generator: "ElixirScope", node: Atom.to_string(node()), events: length(events)}
    }
  end

  @doc "Writes the trace JSON to `path`; returns the number of trace events."
  @spec write([Event.t()], Path.t(), keyword()) :: {:ok, non_neg_integer()} | {:error, String.t()}
  def write(events, path, opts \\ []) do
    trace = build(events, opts)

    case File.write(path, JSON.encode_iodata(trace)) do
      :ok -> {:ok, length(trace.traceEvents)}
      {:error, reason} -> {:error, "#{path}: #{:file.format_error(reason)}"}
    end
  end

  defp name(n) when is_atom(n), do: Render.mod(n)
  defp name(n) when is_binary(n), do: Render.cut(n, 80)
  defp name(n), do: Render.short(n, 60)

  defp call_args(span) do
    c = span.call
    base = %{status: Atom.to_string(span.status), call_id: c.id, line: c.line}
    base = if is_list(c.payload), do: Map.put(base, :args, Enum.map(c.payload, &Render.term(&1, max: 2048, pretty: false))), else: base

    case span.ending do
      _ when span.reply != nil -> Map.put(base, :return, Render.term(elem(Correlation.reply_value(span.reply), 1), max: 2048, pretty: false))
      %Event{kind: :return, payload: v} -> Map.put(base, :return, Render.term(v, max: 2048, pretty: false))
      %Event{kind: :exception, payload: p} -> Map.put(base, :exception, Render.exception(p).message)
      %Event{kind: :tail_call, payload: {m, f, a}} when is_list(a) -> Map.put(base, :tail_call, Render.mfa({m, f, length(a)}))
      _ -> base
    end
  end

  defp pair({a, b}, _default), do: {a, b}
  defp pair(other, default), do: {default, other}

  defp instant(%Event{} = e, tid, us) do
    base = %{ph: "i", s: "t", pid: 1, tid: tid, ts: us.(e.ts), cat: Atom.to_string(e.kind)}

    case e.kind do
      :exception ->
        ex = Render.exception(e.payload)
        [Map.merge(base, %{name: "exception", args: %{message: ex.message, stacktrace: ex.stacktrace}})]

      :state ->
        {phase, st} = pair(e.payload, :state)
        [Map.merge(base, %{name: "state #{phase}", args: %{state: Render.term(st, max: 2048, pretty: false)}})]

      :send ->
        {dest, msg} = pair(e.payload, :unknown)
        [Map.merge(base, %{name: "send", args: %{to: Render.short(dest), message: Render.term(msg, max: 2048, pretty: false)}})]

      :receive ->
        [Map.merge(base, %{name: "receive", args: %{message: Render.term(Event.message(e), max: 2048, pretty: false)}})]

      :spawn ->
        [Map.merge(base, %{name: "spawn", args: %{child: Render.short(e.payload)}})]

      :exit ->
        [Map.merge(base, %{name: "exit", args: %{reason: Render.term(e.payload, max: 2048, pretty: false)}})]

      :custom ->
        [Map.merge(base, %{name: "custom", args: %{data: Render.term(e.payload, max: 2048, pretty: false)}})]
    end
  end
end
