defmodule ElixirScope.Report do
  @moduledoc """
  Renders a recording (a list of `%ElixirScope.Event{}`) as text a person wants to read: the
  processes, each process's timeline, the call trees with arguments and return values, the
  GenServer state changes over time, the crashes with the arguments and locals that led to them,
  and the totals.

      ElixirScope.get_events() |> ElixirScope.Report.render(stats: ElixirScope.stats()) |> IO.puts()

  Options: `:names` (`%{pid => label}`), `:stats` (a map from `ElixirScope.stats/0`), `:overhead`
  (a line of text), `:max_timeline` (lines per process, default 30), `:max_tree` (nodes per process,
  default 40), `:sections` (a subset of `[:processes, :timelines, :trees, :states, :crashes, :totals]`).
  """

  alias ElixirScope.Storage.EventCorrelator

  @sections [:processes, :timelines, :trees, :states, :crashes, :totals]

  @doc "The report as a string."
  @spec render([ElixirScope.Event.t()], keyword()) :: String.t()
  def render(events, opts \\ []) do
    events = Enum.sort_by(events, & &1.id)

    ctx = %{
      events: events,
      base: base_ts(events),
      names: names(events, opts[:names] || %{}),
      opts: opts
    }

    opts
    |> Keyword.get(:sections, @sections)
    |> Enum.map(&section(&1, ctx))
    |> Enum.reject(&(&1 == []))
    |> Enum.intersperse("\n")
    |> IO.iodata_to_binary()
  end

  defp section(:processes, %{events: events} = ctx) do
    rows =
      for {pid, evs} <- by_pid(events) do
        calls = Enum.count(evs, &(&1.kind == :call))

        "  #{label(ctx, pid)}  #{length(evs)} events, #{calls} calls#{if Enum.any?(evs, &(&1.kind == :exception)), do: ", raised", else: ""}\n"
      end

    [title("Processes (#{length(rows)})") | rows]
  end

  defp section(:timelines, %{events: events} = ctx) do
    max = Keyword.get(ctx.opts, :max_timeline, 30)

    body =
      for {pid, evs} <- by_pid(events) do
        lines =
          evs |> Enum.take(max) |> Enum.map(&["    ", time(ctx, &1), "  ", describe(&1), "\n"])

        more = if length(evs) > max, do: ["    … #{length(evs) - max} more events\n"], else: []
        ["  ", label(ctx, pid), "\n", lines, more]
      end

    [title("Timeline of each process") | body]
  end

  defp section(:trees, %{events: events} = ctx) do
    max = Keyword.get(ctx.opts, :max_tree, 40)

    body =
      for {pid, roots} <-
            events |> EventCorrelator.call_trees_by_pid() |> Enum.sort_by(&first_id/1),
          roots != [] do
        flat = EventCorrelator.flatten(roots)
        lines = flat |> Enum.take(max) |> Enum.map(fn {depth, node} -> tree_line(depth, node) end)
        more = if length(flat) > max, do: ["    … #{length(flat) - max} more calls\n"], else: []
        ["  ", label(ctx, pid), "\n", lines, more]
      end

    [title("Call trees (arguments → result, duration)") | body]
  end

  defp section(:states, %{events: events} = ctx) do
    states = Enum.filter(events, &(&1.kind == :state))
    calls = Map.new(Enum.filter(events, &(&1.kind == :call)), &{&1.id, &1})

    body =
      for {{pid, mod}, evs} <-
            Enum.group_by(states, &{&1.pid, callback_module(calls, &1)})
            |> Enum.sort_by(fn {_, [e | _]} -> e.id end) do
        changes =
          evs
          |> Enum.chunk_by(& &1.call_id)
          |> Enum.map(fn group -> state_line(ctx, group, Map.get(calls, hd(group).call_id)) end)

        ["  ", inspect(mod), " ", label(ctx, pid), "\n", changes]
      end

    if body == [], do: [], else: [title("GenServer state over time") | body]
  end

  defp section(:crashes, %{events: events} = ctx) do
    calls = Map.new(Enum.filter(events, &(&1.kind == :call)), &{&1.id, &1})
    by_call = Enum.group_by(events, & &1.call_id)

    body =
      for %{kind: :exception} = e <- events, outermost_raise?(e, events) do
        call = Map.get(calls, e.call_id)

        locals =
          for %{kind: :local, payload: vars} <- Map.get(by_call, e.call_id, []),
              {k, v} <- Enum.to_list(vars),
              do: {k, v}

        {kind, reason, stack} = normalize_exception(e.payload)

        [
          "  ",
          time(ctx, e),
          "  ",
          label(ctx, e.pid),
          "\n    ",
          Exception.format_banner(kind, reason, stack) |> String.replace("\n", "\n    "),
          "\n    in ",
          (call && call_text(call)) || mfa(e),
          "\n",
          if(locals == [],
            do: [],
            else: [
              "    locals: ",
              Enum.map_join(locals, ", ", fn {k, v} -> "#{k} = #{fmt(v)}" end),
              "\n"
            ]
          ),
          frame_line(stack)
        ]
      end

    if body == [], do: [], else: [title("Crashes") | body]
  end

  defp section(:totals, %{events: events} = ctx) do
    kinds = events |> Enum.frequencies_by(& &1.kind) |> Enum.sort_by(fn {_, n} -> -n end)
    stats = ctx.opts[:stats] || %{}
    span = if events == [], do: 0, else: List.last(events).ts - hd(events).ts

    [
      title("Totals"),
      "  events recorded: #{length(events)} in #{by_pid(events) |> length()} processes over #{ms(span)} ms\n",
      "  by kind: ",
      Enum.map_join(kinds, ", ", fn {k, n} -> "#{k} #{n}" end),
      "\n",
      if(Map.has_key?(stats, :emitted),
        do:
          "  capture: emitted #{stats.emitted}, stored #{stats.stored}, dropped #{stats.dropped}, pending #{Map.get(stats, :pending, 0)}\n",
        else: []
      ),
      if(ctx.opts[:overhead], do: ["  overhead: ", ctx.opts[:overhead], "\n"], else: [])
    ]
  end

  defp tree_line(depth, node) do
    indent = String.duplicate("  ", depth + 2)
    dur = if node.duration_ns, do: " [#{us(node.duration_ns)} µs]", else: ""

    result =
      case node.status do
        :ok -> " → " <> fmt(node.return.payload)
        :exception -> " ✗ raised " <> exception_text(node.exception.payload)
        :tail_call -> " ⤷ tail call"
        :open -> " … (no return recorded)"
      end

    locals =
      for %{kind: :local, payload: vars} <- Map.get(node, :events, []),
          {k, v} <- Enum.to_list(vars),
          do: "#{k}=#{fmt(v)}"

    local_line =
      if locals == [], do: [], else: [indent, "    locals: ", Enum.join(locals, ", "), "\n"]

    [indent, call_text(node.event), result, dur, "\n", local_line]
  end

  defp callback_module(calls, e) do
    case Map.get(calls, e.call_id) do
      %{module: mod} -> mod
      nil -> e.module
    end
  end

  defp state_line(ctx, group, call) do
    before =
      Enum.find_value(group, fn
        %{payload: {:before, s}} -> s
        _ -> nil
      end)

    after_ =
      Enum.find_value(group, fn
        %{payload: {:after, s}} -> s
        _ -> nil
      end)

    what = if call, do: call_text(call), else: "callback"
    change = state_change(before, after_)
    ["    ", time(ctx, hd(group)), "  ", what, "\n", "        ", change, "\n"]
  end

  defp state_change(nil, s), do: "state: " <> fmt(s)
  defp state_change(s, nil), do: "state before: " <> fmt(s)
  defp state_change(same, same), do: "state unchanged"

  defp state_change(%{} = a, %{} = b) when not is_struct(a) and not is_struct(b) do
    keys =
      (Map.keys(a) ++ Map.keys(b))
      |> Enum.uniq()
      |> Enum.filter(&(Map.get(a, &1) != Map.get(b, &1)))

    Enum.map_join(keys, "; ", fn k ->
      "#{fmt(k)}: #{fmt(Map.get(a, k))} ⇒ #{fmt(Map.get(b, k))}"
    end)
  end

  defp state_change(a, b), do: fmt(a) <> " ⇒ " <> fmt(b)

  defp describe(%{kind: :call} = e), do: "call      " <> call_text(e)
  defp describe(%{kind: :return} = e), do: "return    #{mfa(e)} → #{fmt(e.payload)}"
  defp describe(%{kind: :exception} = e), do: "exception #{mfa(e)} ✗ #{exception_text(e.payload)}"

  defp describe(%{kind: :tail_call, payload: {m, f, a}} = e),
    do: "tail_call #{mfa(e)} ⤷ #{inspect(m)}.#{f}(#{args(a)})"

  defp describe(%{kind: :local} = e), do: "locals    #{mfa(e)} line #{e.line}: #{vars(e.payload)}"

  defp describe(%{kind: :expr, payload: {src, v}} = e),
    do: "expr      line #{e.line}: #{src} = #{fmt(v)}"

  defp describe(%{kind: :state, payload: {phase, s}} = e),
    do: "state     #{mfa(e)} #{phase}: #{fmt(s)}"

  defp describe(%{kind: :send, payload: {dest, msg}}), do: "send      → #{fmt(dest)}: #{fmt(msg)}"
  defp describe(%{kind: :receive, payload: msg}), do: "receive   ← #{fmt(msg)}"
  defp describe(%{kind: :spawn, payload: pid}), do: "spawn     #{fmt(pid)}"
  defp describe(%{kind: :exit, payload: reason}), do: "exit      #{fmt(reason)}"
  defp describe(%{kind: kind, payload: p} = e), do: "#{kind}  #{mfa(e)} #{fmt(p)}"

  defp call_text(%{payload: a} = e), do: "#{inspect(e.module)}.#{e.function}(#{args(a)})"

  defp args(list) when is_list(list), do: Enum.map_join(list, ", ", &fmt/1)
  defp args(other), do: fmt(other)

  defp vars(v) when is_map(v) or is_list(v),
    do: Enum.map_join(v, ", ", fn {k, x} -> "#{k}=#{fmt(x)}" end)

  defp vars(v), do: fmt(v)

  defp mfa(%{module: nil}), do: "?"
  defp mfa(e), do: "#{inspect(e.module)}.#{e.function}/#{e.arity}"

  defp exception_text(payload) do
    {kind, reason, _} = normalize_exception(payload)

    case {kind, reason} do
      {:error, %{__exception__: true} = ex} ->
        "#{inspect(ex.__struct__)}: #{Exception.message(ex)}"

      {k, r} ->
        "#{k} #{fmt(r)}"
    end
  end

  defp normalize_exception({kind, reason, stack}) when is_list(stack), do: {kind, reason, stack}
  defp normalize_exception({kind, reason, _}), do: {kind, reason, []}
  defp normalize_exception(other), do: {:error, other, []}

  # The exception event of the call that raised first; its callers re-raising are the same crash.
  defp outermost_raise?(e, events) do
    not Enum.any?(
      events,
      &(&1.kind == :exception and &1.pid == e.pid and &1.id < e.id and &1.id > e.id - 50 and
          &1.payload == e.payload)
    )
  end

  defp frame_line([{m, f, a, info} | _]) when is_list(info) do
    arity = if is_list(a), do: length(a), else: a
    where = if info[:file], do: " (#{info[:file]}:#{info[:line]})", else: ""
    ["    at ", inspect(m), ".", to_string(f), "/", to_string(arity), where, "\n"]
  end

  defp frame_line(_), do: []

  defp fmt(v), do: inspect(v, limit: 8, printable_limit: 80, width: :infinity)

  defp by_pid(events) do
    events |> Enum.group_by(& &1.pid) |> Enum.sort_by(fn {_, [e | _]} -> e.id end)
  end

  defp first_id({_pid, [root | _]}), do: root.event.id
  defp first_id(_), do: 0

  defp names(events, given) do
    for pid <- events |> Enum.map(& &1.pid) |> Enum.uniq(), into: %{} do
      {pid, Map.get(given, pid) || registered(pid) || first_module(events, pid)}
    end
  end

  defp registered(pid) when is_pid(pid) do
    case Process.info(pid, :registered_name) do
      {:registered_name, name} when is_atom(name) and name != [] -> inspect(name)
      nil -> nil
      _ -> nil
    end
  end

  defp registered(_), do: nil

  defp first_module(events, pid) do
    case Enum.find(events, &(&1.pid == pid and &1.kind == :call)) do
      nil -> "process"
      e -> "(runs #{inspect(e.module)})"
    end
  end

  defp label(ctx, pid), do: "#{inspect(pid)} #{Map.get(ctx.names, pid, "")}"

  defp base_ts([]), do: 0
  defp base_ts([e | _]), do: e.ts

  defp time(ctx, e), do: String.pad_leading("+#{ms(e.ts - ctx.base)}ms", 11)

  defp ms(ns), do: :erlang.float_to_binary(ns / 1_000_000, decimals: 3)
  defp us(ns), do: :erlang.float_to_binary(ns / 1_000, decimals: 1)

  defp title(text),
    do: ["── ", text, " ", String.duplicate("─", max(0, 70 - String.length(text))), "\n"]
end
