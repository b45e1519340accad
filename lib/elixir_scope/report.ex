defmodule ElixirScope.Report do
  @moduledoc """
  Renders a recording (a list of `%ElixirScope.Event{}`) as text a person wants to read: the
  processes, each process's timeline, the call trees with arguments and return values, the
  GenServer state changes over time, the crashes with the arguments and locals that led to them,
  and the totals.

      ElixirScope.get_events() |> ElixirScope.Report.render(stats: ElixirScope.stats()) |> IO.puts()

  Options: `:names` (`%{pid => label}`), `:stats` (a map from `ElixirScope.stats/0`), `:overhead`
  (a line of text), `:max_timeline` (lines per process, default 25), `:max_tree` (calls per
  process, default 30), `:timeline_kinds` (default: all but `:expr` and `:local`, which the call
  trees and crashes show), `:sections` (a subset of
  `[:processes, :timelines, :trees, :states, :crashes, :totals]`).
  """

  alias ElixirScope.Query.Correlation
  alias ElixirScope.Report.Format, as: F
  alias ElixirScope.Storage.EventCorrelator

  @sections [:processes, :timelines, :trees, :states, :crashes, :totals]
  @timeline_kinds ElixirScope.Event.kinds() -- [:expr, :local]

  @doc "The report as a string."
  @spec render([ElixirScope.Event.t()], keyword()) :: String.t()
  def render(events, opts \\ []) do
    events = Enum.sort_by(events, & &1.id)
    calls = for %{kind: :call} = e <- events, into: %{}, do: {e.call_id, e}

    ctx = %{
      events: events,
      calls: calls,
      base: base_ts(events),
      names: names(events, opts),
      replies: Correlation.call_replies(events),
      opts: opts
    }

    opts
    |> Keyword.get(:sections, @sections)
    |> Enum.map(&section(&1, ctx))
    |> Enum.reject(&(&1 == []))
    |> Enum.intersperse("\n")
    |> IO.iodata_to_binary()
  end

  defp section(:processes, ctx) do
    rows =
      for {pid, evs} <- by_pid(ctx.events) do
        calls = Enum.count(evs, &(&1.kind == :call))
        raised = if Enum.any?(evs, &(&1.kind == :exception)), do: ", raised", else: ""
        "  #{label(ctx, pid)}: #{length(evs)} events, #{calls} calls#{raised}#{fate(ctx, pid, evs)}\n"
      end

    [title("Processes (#{length(rows)})") | rows]
  end

  defp section(:timelines, ctx) do
    max = Keyword.get(ctx.opts, :max_timeline, 25)
    kinds = Keyword.get(ctx.opts, :timeline_kinds, @timeline_kinds)

    body =
      for {pid, evs} <- by_pid(ctx.events),
          evs = Enum.filter(evs, &(&1.kind in kinds)),
          evs != [] do
        lines =
          evs
          |> Enum.take(max)
          |> Enum.map(&line(["    ", time(ctx, &1), "  ", describe(ctx, &1)]))

        ["  ", label(ctx, pid), "\n", lines, more(length(evs) - max, "events")]
      end

    [title("Timeline of each process (+ms since the first event)") | body]
  end

  defp section(:trees, ctx) do
    max = Keyword.get(ctx.opts, :max_tree, 30)

    body =
      for {pid, roots} <-
            ctx.events |> EventCorrelator.call_trees_by_pid() |> Enum.sort_by(&first_id/1),
          roots != [] do
        flat = roots |> lift_unfollowed_tail_calls() |> EventCorrelator.flatten()
        lines = flat |> Enum.take(max) |> Enum.map(fn {depth, node} -> tree_line(depth, node, ctx.replies) end)
        ["  ", label(ctx, pid), "\n", lines, more(length(flat) - max, "calls")]
      end

    [title("Call trees (arguments → result [duration])") | body]
  end

  defp section(:states, ctx) do
    groups =
      ctx.events
      |> Enum.filter(&(&1.kind == :state))
      |> Enum.group_by(&{&1.pid, callback_module(ctx, &1)})
      |> Enum.sort_by(fn {_, [e | _]} -> e.id end)

    body =
      for {{pid, mod}, evs} <- groups do
        changes = evs |> Enum.chunk_by(& &1.call_id) |> Enum.map(&state_line(ctx, &1))
        ["  ", inspect(mod), " in ", label(ctx, pid), "\n", changes]
      end

    if body == [], do: [], else: [title("GenServer state over time") | body]
  end

  defp section(:crashes, ctx) do
    body = for e <- first_raises(ctx.events), do: crash(ctx, e)
    if body == [], do: [], else: [title("Crashes") | body]
  end

  defp section(:totals, ctx) do
    events = ctx.events
    kinds = events |> Enum.frequencies_by(& &1.kind) |> Enum.sort_by(fn {_, n} -> -n end)
    stats = ctx.opts[:stats] || %{}
    span = if events == [], do: 0, else: List.last(events).ts - hd(events).ts

    [
      title("Totals"),
      "  events: #{length(events)} from #{length(by_pid(events))} processes over #{ms(span)} ms\n",
      "  by kind: #{Enum.map_join(kinds, ", ", fn {k, n} -> "#{k} #{n}" end)}\n",
      capture_line(stats),
      if(ctx.opts[:overhead], do: ["  overhead: ", ctx.opts[:overhead], "\n"], else: [])
    ]
  end

  defp capture_line(%{emitted: emitted} = s) do
    reasons =
      case Map.get(s, :dropped_by_reason) do
        %{} = r -> " (" <> Enum.map_join(r, ", ", fn {k, v} -> "#{k} #{v}" end) <> ")"
        _ -> ""
      end

    "  capture: emitted #{emitted}, stored #{s.stored}, dropped #{s.dropped}#{reasons}, pending #{Map.get(s, :pending, 0)}\n"
  end

  defp capture_line(_), do: []

  defp crash(ctx, e) do
    call = Map.get(ctx.calls, e.call_id)

    locals =
      for %{kind: :local, call_id: cid, payload: v} <- ctx.events,
          cid == e.call_id,
          pair <- Enum.to_list(v),
          do: pair

    {kind, reason, stack} = F.exception(e.payload)
    banner = kind |> Exception.format_banner(reason, stack) |> String.replace("\n", "\n    ")

    [
      line(["  ", time(ctx, e), "  in ", label(ctx, e.pid)]),
      line(["    ", banner]),
      line(["    raised by ", if(call, do: F.call(call), else: mfa(ctx, e))]),
      if(locals == [], do: [], else: line(["    locals: ", F.vars(locals)])),
      frame_line(stack)
    ]
  end

  # The first exception event of each raise: the callers it propagated through report it again.
  defp first_raises(events) do
    {firsts, _} =
      Enum.reduce(events, {[], %{}}, fn
        %{kind: :exception} = e, {acc, last} ->
          if Map.get(last, e.pid) == e.payload,
            do: {acc, last},
            else: {[e | acc], Map.put(last, e.pid, e.payload)}

        %{kind: :call, pid: pid}, {acc, last} ->
          {acc, Map.delete(last, pid)}

        _, state ->
          state
      end)

    Enum.reverse(firsts)
  end

  # The top frame, and the first frame with a source file when the top one is the runtime's.
  defp frame_line([top | rest]) do
    user = Enum.find([top | rest], &match?({_, _, _, [{:file, _} | _]}, &1))
    from = if user && user != top, do: ", called from " <> F.frame(user), else: ""
    line(["    at ", F.frame(top), from])
  end

  defp frame_line(_), do: []

  # A frame that ended in a tail call to code that is not instrumented (GenServer.call, Enum...)
  # never sees its target's call event; the correlator keeps it open, so the calls that follow
  # would appear beneath it. Here such a frame is closed and its "children" become its siblings.
  defp lift_unfollowed_tail_calls(nodes) do
    Enum.flat_map(nodes, fn node ->
      children = lift_unfollowed_tail_calls(node.children)

      if node.status == :tail_call and not followed?(node, children),
        do: [%{node | children: []} | children],
        else: [%{node | children: children}]
    end)
  end

  defp followed?(%{tail_call: %{payload: {m, f, args}}}, [first | _]) when is_list(args) do
    first.event.module == m and first.event.function == f and first.event.arity == length(args)
  end

  defp followed?(_node, _children), do: false

  defp tree_line(depth, node, replies) do
    indent = String.duplicate("  ", depth + 2)
    reply = node.tail_call && replies[node.tail_call.id]

    dur =
      cond do
        reply -> " [#{us(reply.ts - node.event.ts)} µs]"
        node.duration_ns && node.status != :tail_call -> " [#{us(node.duration_ns)} µs]"
        true -> ""
      end

    result =
      case node.status do
        # a GenServer.call in tail position: the reply is the call's result
        :tail_call when reply != nil -> " → " <> F.value(elem(Correlation.reply_value(reply), 1)) <> " (reply)"
        :ok -> " → " <> F.value(node.return.payload)
        :exception -> " ✗ " <> F.exception_line(node.exception.payload)
        :tail_call -> " ⤷ " <> tail_target(node.tail_call)
        :open -> " … (still running)"
      end

    locals =
      for %{kind: :local, payload: v} <- Map.get(node, :events, []),
          pair <- Enum.to_list(v),
          do: pair

    [
      line([indent, F.call(node.event), result, dur]),
      if(locals == [], do: [], else: line([indent, "    locals: ", F.vars(locals)]))
    ]
  end

  defp tail_target(%{payload: {m, f, a}}), do: "#{inspect(m)}.#{f}(#{F.args(a)})"
  defp tail_target(_), do: "tail call"

  defp state_line(ctx, [first | _] = group) do
    before =
      Enum.find_value(group, fn e -> match?({:before, _}, e.payload) && elem(e.payload, 1) end)

    after_ =
      Enum.find_value(group, fn e -> match?({:after, _}, e.payload) && elem(e.payload, 1) end)

    what =
      case Map.get(ctx.calls, first.call_id),
        do:
          (
            nil -> "callback"
            call -> F.call(call, only_first: true)
          )

    [
      line(["    ", time(ctx, first), "  ", what]),
      line(["        ", F.state_diff(before, after_)], 400)
    ]
  end

  defp callback_module(ctx, e) do
    case Map.get(ctx.calls, e.call_id) do
      %{module: mod} -> mod
      nil -> e.module
    end
  end

  defp describe(_ctx, %{kind: :call} = e), do: "call      " <> F.call(e)
  defp describe(ctx, %{kind: :return} = e), do: "return    #{mfa(ctx, e)} → #{F.value(e.payload)}"

  defp describe(ctx, %{kind: :exception} = e),
    do: "raise     #{mfa(ctx, e)} ✗ #{F.exception_line(e.payload)}"

  defp describe(ctx, %{kind: :tail_call} = e), do: "tail call #{mfa(ctx, e)} ⤷ #{tail_target(e)}"

  defp describe(ctx, %{kind: :local} = e),
    do: "locals    #{mfa(ctx, e)} line #{e.line}: #{F.vars(e.payload)}"

  defp describe(_ctx, %{kind: :expr, payload: {src, v}} = e),
    do: "expr      line #{e.line}: #{src} = #{F.value(v)}"

  defp describe(ctx, %{kind: :state, payload: {phase, s}} = e),
    do: "state     #{mfa(ctx, e)} #{phase}: #{F.value(s)}"

  # an :erpc/:rpc call's request and outcome, as IEx shows them
  defp describe(_ctx, %{kind: k, function: :rpc} = e) when k in [:send, :receive], do: "rpc       #{ElixirScope.IEx.Format.describe(e)}"

  defp describe(_ctx, %{kind: :send, payload: {dest, msg}}),
    do: "send      → #{F.value(dest)}: #{F.value(msg)}"

  defp describe(_ctx, %{kind: :receive} = e),
    do: "receive   ← #{F.value(ElixirScope.Event.message(e))}#{ElixirScope.IEx.Format.receive_note(e)}"
  # a parent on another node: the session recorded the :spawn on the child's own timeline
  defp describe(_ctx, %{kind: :spawn, function: :observed, pid: pid, payload: {pid, %{parent: parent} = info}}) when is_pid(parent),
    do: "started   by #{F.value(parent)} of #{node(parent)} (initial call #{F.value(info[:initial_call])})"

  # recorded on the parent's timeline: by compiled code when the spawn returned, or by the session
  # at the child's first event
  defp describe(ctx, %{kind: :spawn, function: f} = e) when f in [:observed, :call_site] do
    %{child: child, initial_call: mfa} = ElixirScope.Event.spawn_info(e)
    "spawned   #{label(ctx, child)} (initial call #{F.value(mfa)})"
  end

  defp describe(_ctx, %{kind: :spawn, payload: pid}), do: "spawn     #{F.value(pid)}"
  defp describe(_ctx, %{kind: :exit, function: :gone}), do: "exit      (reason unknown: ended before the session saw it)"
  defp describe(_ctx, %{kind: :exit, payload: reason} = e), do: "exit      #{F.value(reason)}#{if ElixirScope.Event.crash_exit?(e), do: " ✗ crashed"}"
  defp describe(ctx, %{kind: kind, payload: p} = e), do: "#{kind} #{mfa(ctx, e)} #{F.value(p)}"

  defp mfa(ctx, %{module: nil} = e) do
    case Map.get(ctx.calls, e.call_id) do
      nil -> "?"
      call -> mfa(ctx, call)
    end
  end

  defp mfa(_ctx, e), do: "#{inspect(e.module)}.#{e.function}/#{e.arity}"

  # a parent that recorded nothing itself (only the spawns the session recorded for it) is not listed
  defp by_pid(events),
    do:
      events
      |> Enum.group_by(& &1.pid)
      |> Enum.reject(fn {_, evs} -> ElixirScope.Query.Processes.spawner_only?(evs) end)
      |> Enum.sort_by(fn {_, [e | _]} -> e.id end)

  defp first_id({_pid, [root | _]}), do: root.event.id
  defp first_id(_), do: 0

  defp names(events, opts) do
    given = opts[:names] || %{}
    labels = ElixirScope.Query.Processes.labels(events, Map.new(events, &{&1.pid, Map.get(given, &1.pid) || registered(&1.pid)}))
    restarts = for %{type: :restart, from: old, to: new} <- lifecycle_links(events), into: %{}, do: {ElixirScope.Event.spawn_info(new).child, old.pid}

    for pid <- events |> Enum.map(& &1.pid) |> Enum.uniq(), into: %{} do
      restart = if old = restarts[pid], do: " (restart of #{inspect(old)})", else: ""
      {pid, Map.fetch!(labels, pid) <> restart}
    end
  end

  defp lifecycle_links(events),
    do: events |> Enum.filter(&(&1.kind in [:spawn, :exit, :receive])) |> Correlation.links()

  # how the process ended, as the session observed it
  defp fate(_ctx, _pid, evs) do
    case Enum.find(evs, &(&1.kind == :exit)) do
      nil -> ""
      %{function: :gone} -> ", ended"
      e -> if ElixirScope.Event.crash_exit?(e), do: ", crashed: #{F.value(e.payload) |> F.cut(80)}", else: ", exited #{F.value(e.payload)}"
    end
  end

  defp registered(pid) when is_pid(pid) do
    case Process.info(pid, :registered_name) do
      {:registered_name, name} when is_atom(name) -> inspect(name)
      _ -> nil
    end
  end

  defp registered(_), do: nil

  defp label(ctx, pid), do: "#{inspect(pid)} #{Map.get(ctx.names, pid, "")}"

  defp base_ts([]), do: 0
  defp base_ts([e | _]), do: e.ts

  defp time(ctx, e), do: String.pad_leading("+#{ms(e.ts - ctx.base)}", 9)

  defp ms(ns), do: :erlang.float_to_binary(ns / 1_000_000, decimals: 3)
  defp us(ns), do: :erlang.float_to_binary(ns / 1_000, decimals: 1)

  defp more(n, what) when n > 0, do: ["    … #{n} more #{what}\n"]
  defp more(_n, _what), do: []

  defp line(iodata, limit \\ 150), do: [iodata |> IO.iodata_to_binary() |> F.cut(limit), "\n"]

  defp title(text),
    do: ["── ", text, " ", String.duplicate("─", max(0, 70 - String.length(text))), "\n"]
end
