defmodule ElixirScope.Web.Data do
  @moduledoc """
  What the cinema's JSON API returns, computed from a `ElixirScope.Web.Source`.
  Every function returns plain maps/lists (ready for `ElixirScope.Web.JSON`),
  with bounded sizes: pages are capped, values rendered as bounded text.

  Times in and out are nanoseconds since the source's origin `t0` (the session
  start for the live store, the first event of a recording), so they stay exact
  in JavaScript numbers.
  """

  alias ElixirScope.Event
  alias ElixirScope.Query.{Correlation, Processes}
  alias ElixirScope.Recording.Sources
  alias ElixirScope.Storage.EventCorrelator
  alias ElixirScope.Web.{Cache, Render, Source}

  @max_page 20_000
  # A detail stays bounded whatever the call recorded: each section (arguments, locals,
  # expressions, states) shares a byte budget among its values, each value getting at least
  # @min_value bytes and at most the usual 16 KB.
  @args_budget 65_536
  @section_budget 131_072
  @min_value 256

  @call_kinds [:call, :return, :exception, :tail_call]
  @kinds Event.kinds()
  @kind_index @kinds |> Enum.with_index() |> Map.new()

  @doc "The event kinds in the order the compact rows index them."
  @spec kinds() :: [Event.kind()]
  def kinds, do: @kinds

  @doc "The origin (monotonic ns) that API times are relative to."
  @spec t0(Source.t()) :: integer()
  def t0(:live) do
    case ElixirScope.Capture.Session.info() do
      %{clock: {mono0, _}} -> mono0
      _ -> 0
    end
  end

  def t0(source) do
    case Source.meta(source) do
      %{clock: {mono0, _}} when is_integer(mono0) ->
        mono0

      _ ->
        case Source.fetch(source, limit: 1) do
          [e] -> e.ts
          _ -> 0
        end
    end
  end

  @doc "Overview: origin, time span, first/last ids, counts, live flag, title, stats."
  @spec summary(Source.t()) :: map()
  def summary(source) do
    t0 = t0(source)
    meta = Source.meta(source)

    {first, last} =
      case Source.bounds(source) do
        {f, l} -> {f, l}
        nil -> {nil, nil}
      end

    %{
      title: to_string(meta[:title] || ""),
      source: meta.kind,
      live: Source.live?(source),
      running: source != :live or ElixirScope.running?(),
      first_id: first && first.id,
      last_id: last && last.id,
      t_start: first && first.ts - t0,
      t_end: last && last.ts - t0,
      events: Source.size(source),
      wall_t0: wall_t0(source, first, t0),
      kinds: Enum.map(@kinds, &Atom.to_string/1),
      stats: stats(source),
      max_page: @max_page
    }
  end

  defp wall_t0(_source, %Event{wall_time: w, ts: ts}, t0) when is_integer(w), do: w - div(ts - t0, 1000)
  defp wall_t0(_, _, _), do: nil

  defp stats(:live) do
    case ElixirScope.stats() do
      %{emitted: _} = s -> Map.take(s, [:emitted, :stored, :dropped, :evicted, :pending])
      _ -> nil
    end
  end

  defp stats(_), do: nil

  @doc """
  A page of events as compact rows, oldest first, after `after_id` (default 0),
  at most `limit` (capped at #{@max_page}). Each row is
  `[id, t, pid_index, kind_index, mfa_index, call_id, link, line, extra]`, indexes into the page's
  `pids`, `kinds` and `mfas` tables (`-1` when absent); `extra` is, for `:send`, the index of
  the destination pid (or -1), for `:spawn` the child's, for `:exception` a one-line reason, for `:custom` the name,
  for `:exit` the reason. `names` labels the page's processes (registered name, else the initial call
  the session observed, else `parent of …` for a process whose only events are the spawns the
  session recorded for it); `crashed` lists the ids of the `:exit` events that are crashes.
  """
  @spec events_page(Source.t(), keyword()) :: map()
  def events_page(source, opts) do
    limit = opts |> Keyword.get(:limit, 5_000) |> min(@max_page) |> max(1)
    after_id = Keyword.get(opts, :after_id, 0)
    t0 = Keyword.get_lazy(opts, :t0, fn -> t0(source) end)
    events = Source.fetch(source, after_id: after_id, limit: limit) |> ok_list()
    # a full page says there may be more; the client asks again after last_id
    more? = length(events) == limit
    meta = Source.meta(source)
    names = meta.names

    {rows, pids, mfas} =
      Enum.reduce(events, {[], {%{}, []}, {%{}, []}}, fn e, {rows, pids, mfas} ->
        {pi, pids} = intern(pids, e.pid)
        {mi, mfas} = if e.module, do: intern(mfas, {e.module, e.function, e.arity}), else: {-1, mfas}
        {extra, pids} = extra(e, pids)
        row = [e.id, e.ts - t0, pi, Map.get(@kind_index, e.kind, -1), mi, e.call_id || 0, e.link || 0, e.line || 0, extra]
        {[row | rows], pids, mfas}
      end)

    pid_list = pids |> elem(1) |> Enum.reverse()
    last = List.last(events)
    observed = Event.announcing_spawns(events)
    label = fn pid -> process_name(pid, names) || observed_label(observed[pid]) end
    # a parent that recorded nothing itself in this page, only the spawns the session recorded for it
    parents =
      for {pid, [first | _] = evs} <- Enum.group_by(events, & &1.pid), Processes.spawner_only?(evs), into: %{} do
        child = Event.spawn_info(first).child
        {pid, "parent of " <> (label.(child) || Render.pid(child))}
      end

    %{
      rows: Enum.reverse(rows),
      pids: Enum.map(pid_list, &Render.pid/1),
      names:
        Map.new(pid_list, &{Render.pid(&1), label.(&1) || parents[&1]})
        |> Map.reject(fn {_, v} -> is_nil(v) end),
      crashed: for(%Event{kind: :exit} = e <- events, Event.crash_exit?(e), do: e.id),
      # the node of each process of another node (every process of a cluster recording): lanes are grouped by node
      nodes: for(p <- pid_list, is_pid(p), meta[:cluster] || node(p) != node(), into: %{}, do: {Render.pid(p), Atom.to_string(node(p))}),
      mfas: mfas |> elem(1) |> Enum.reverse() |> Enum.map(&Render.mfa/1),
      last_id: (last && last.id) || after_id,
      more: more?
    }
  end

  @max_link_events 500_000
  @reply_window 2_000

  @doc """
  Every link between processes (`ElixirScope.Query.Correlation`): a message and the receive that
  took it, a GenServer call, cast or reply, a spawn, a task's reply, an exit —
  `%{links: [[from_id, to_id, type]], unpaired: [send_id]}` (sends that nothing took). Computed over
  the first #{@max_link_events} events (`truncated: true` beyond).
  """
  @spec links(Source.t()) :: map()
  def links(source) do
    events = Source.fetch(source, limit: @max_link_events) |> ok_list()
    links = Enum.filter(Correlation.links(events), &(&1.from.pid != &1.to.pid))

    %{
      links: Enum.map(links, &[&1.from.id, &1.to.id, Atom.to_string(&1.type)]),
      unpaired: events |> Correlation.unpaired_sends(links) |> Enum.map(& &1.id),
      truncated: length(events) == @max_link_events
    }
  end

  defp ok_list({:error, _}), do: []
  defp ok_list(list), do: list

  defp intern({map, list} = acc, value) do
    case map do
      %{^value => i} -> {i, acc}
      _ -> {map_size(map), {Map.put(map, value, map_size(map)), [value | list]}}
    end
  end

  defp extra(%Event{kind: :send, payload: {dest, _}}, pids) do
    case resolve_dest(dest) do
      pid when is_pid(pid) -> intern(pids, pid)
      _ -> {-1, pids}
    end
  end

  defp extra(%Event{kind: :spawn, payload: {child, %{}}}, pids) when is_pid(child), do: intern(pids, child)
  defp extra(%Event{kind: :spawn, payload: child}, pids) when is_pid(child), do: intern(pids, child)
  defp extra(%Event{kind: :exception, payload: payload}, pids), do: {Render.exception(payload).message |> first_line(), pids}
  defp extra(%Event{kind: :custom, payload: {name, _}}, pids), do: {Render.short(name, 60), pids}
  defp extra(%Event{kind: :exit, payload: reason}, pids), do: {Render.short(reason, 80), pids}
  defp extra(_e, pids), do: {nil, pids}

  defp first_line(text), do: text |> String.split("\n", parts: 2) |> hd() |> Render.cut(160)

  defp resolve_dest(pid) when is_pid(pid), do: pid
  defp resolve_dest(name) when is_atom(name) and name != nil, do: Process.whereis(name)
  defp resolve_dest({name, node}) when is_atom(name) and node == node(), do: Process.whereis(name)
  defp resolve_dest(_), do: nil


  # the label of a process the session observed, when its spawn says more than its pid
  defp observed_label(nil), do: nil

  defp observed_label(%Event{} = spawn) do
    case Processes.label(%{pid: Event.spawn_info(spawn).child, names: [], spawn: spawn, first_call: nil}) do
      "#PID" <> _ -> nil
      label -> label
    end
  end

  defp process_name(pid, names) do
    case Map.get(names, pid) do
      nil -> registered_name(pid)
      name when is_atom(name) -> Render.mod(name)
      name -> to_string(name)
    end
  end

  defp registered_name(pid) when is_pid(pid) and node(pid) == node() do
    case Process.info(pid, :registered_name) do
      {:registered_name, name} when is_atom(name) -> Render.mod(name)
      _ -> nil
    end
  end

  defp registered_name(_), do: nil

  @doc "Resolves a pid as the API shows it (`<0.1.0>`) against the source; nil when unknown."
  @spec parse_pid(Source.t(), String.t()) :: pid() | nil
  def parse_pid(source, text) when is_binary(text) do
    text = String.trim(text) |> String.replace_prefix("#PID", "")

    cond do
      not Regex.match?(~r/^<\d{1,10}\.\d{1,10}\.\d{1,10}>$/, text) -> nil
      pids = Source.pids(source) -> Enum.find(pids, &(Render.pid(&1) == text))
      true -> to_pid(text)
    end
  end

  def parse_pid(_, _), do: nil

  # numbers past the pid ranges (`<9999999999.0.0>`) are not pids
  defp to_pid(text) do
    :erlang.list_to_pid(String.to_charlist(text))
  rescue
    ArgumentError -> nil
  end

  # ------------------------------------------------------------------- detail

  @doc """
  Everything about one event, for the detail panel; nil when there is no such event.
  `cache:` the server's `ElixirScope.Web.Cache`, for source snippets (see `source_snippet/3`).
  """
  @spec event_detail(Source.t(), pos_integer(), keyword()) :: map() | nil
  def event_detail(source, id, opts \\ []) do
    case Source.get(source, id) do
      nil -> nil
      e -> detail(source, e, t0(source), opts[:cache])
    end
  end

  defp detail(source, e, t0, files) do
    call = call_of(source, e)

    %{
      id: e.id,
      t: e.ts - t0,
      pid: Render.pid(e.pid),
      kind: Atom.to_string(e.kind),
      mfa: Render.mfa((call && call.event) || e),
      line: e.line,
      call_id: e.call_id,
      correlation_id: e.correlation_id,
      truncated: e.truncated?,
      redacted: e.redacted?,
      value: payload_view(e),
      call: call && call_view(source, call, t0),
      source: snippet(source, e, call && call.event, files),
      peer: peer(source, e, t0)
    }
  end

  defp payload_view(%Event{kind: :call, payload: args}) when is_list(args), do: %{args: terms(args, @args_budget)}
  defp payload_view(%Event{kind: :return, payload: v}), do: %{return: Render.term(v)}
  defp payload_view(%Event{kind: :exception, payload: p}), do: %{exception: Render.exception(p)}

  defp payload_view(%Event{kind: :tail_call, payload: {m, f, args}}) when is_list(args),
    do: %{target: Render.mfa({m, f, length(args)}), args: terms(args, @args_budget)}

  defp payload_view(%Event{kind: :local, payload: vars}), do: %{locals: vars_view(vars, @section_budget)}
  defp payload_view(%Event{kind: :expr, payload: {src, v}}), do: %{expr: source_text(src), value: Render.term(v)}
  defp payload_view(%Event{kind: :state, payload: {phase, st}}), do: %{phase: phase(phase), state: Render.term(st)}
  defp payload_view(%Event{kind: :send, payload: {dest, msg}}), do: %{dest: Render.short(dest), message: Render.term(msg)}
  defp payload_view(%Event{kind: :receive} = e) do
    info = Event.receive_info(e)
    base = %{message: Render.term(Event.message(e))}
    if info, do: Map.merge(base, %{clause: to_string(info.clause), waited_us: info.waited_us}), else: base
  end
  defp payload_view(%Event{kind: :spawn, payload: child}), do: %{child: Render.short(child)}
  defp payload_view(%Event{kind: :exit, payload: reason}), do: %{reason: Render.term(reason)}
  defp payload_view(%Event{kind: :custom, payload: {name, data}}), do: %{name: Render.short(name), data: Render.term(data)}
  defp payload_view(%Event{payload: other}), do: %{value: Render.term(other)}

  defp vars_view(vars, budget) when is_map(vars) or is_list(vars) do
    vars = Enum.take(vars, 100)
    max = per_value(length(vars), budget)

    vars
    |> Enum.map(fn
      {k, v} -> %{name: var_name(k), value: Render.term(v, max: max)}
      other -> %{name: "?", value: Render.term(other, max: max)}
    end)
    |> Enum.sort_by(& &1.name)
  end

  defp vars_view(other, budget), do: [%{name: "?", value: Render.term(other, max: per_value(1, budget))}]

  defp per_value(n, budget), do: budget |> div(max(n, 1)) |> max(@min_value) |> min(16_384)

  defp terms(values, budget) do
    max = per_value(length(values), budget)
    Enum.map(values, &Render.term(&1, max: max))
  end

  defp phase(p) when is_atom(p), do: Atom.to_string(p)
  defp phase(p), do: Render.short(p, 40)

  defp source_text(src) when is_binary(src), do: Render.cut(src, 2_000)
  defp source_text(src), do: Render.short(src, 2_000)

  defp var_name(k) when is_atom(k), do: Atom.to_string(k)
  defp var_name(k) when is_binary(k), do: k
  defp var_name(k), do: Render.short(k, 60)

  # the call an event belongs to (the event itself for :call), with its events and end
  defp call_of(source, %Event{kind: :call} = e), do: build_call(source, e)

  defp call_of(source, %Event{call_id: cid}) when is_integer(cid) and cid > 0 do
    case Source.get(source, cid) do
      %Event{kind: :call} = c -> build_call(source, c)
      _ -> nil
    end
  end

  defp call_of(_, _), do: nil

  defp build_call(source, call) do
    related = Source.fetch(source, call_id: call.id, limit: 2_000) |> ok_list() |> Enum.reject(&(&1.id == call.id))
    ending = Enum.find(related, &(&1.kind in [:return, :exception, :tail_call]))
    %{event: call, related: related, ending: ending}
  end

  # A GenServer.call in tail position: the reply it got, from the events that follow the jump
  # (the server's handle_call and its return come within the next #{@reply_window} events).
  defp reply_of(source, %Event{kind: :tail_call, id: id} = tail) do
    window = [tail | Source.fetch(source, after_id: id, limit: @reply_window) |> ok_list()]

    case Correlation.call_replies(window) do
      %{^id => reply} ->
        {:ok, v} = Correlation.reply_value(reply)
        %{id: reply.id, value: Render.term(v), pid: Render.pid(reply.pid)}

      _ ->
        nil
    end
  end

  defp reply_of(_source, _ending), do: nil

  defp call_view(source, %{event: c, related: related, ending: ending}, t0) do
    %{
      id: c.id,
      mfa: Render.mfa(c),
      t: c.ts - t0,
      args: if(is_list(c.payload), do: terms(c.payload, @args_budget), else: []),
      status: status(ending),
      end_id: ending && ending.id,
      duration_ns: ending && ending.ts - c.ts,
      return: (match?(%Event{kind: :return}, ending) && Render.term(ending.payload)) || nil,
      exception: (match?(%Event{kind: :exception}, ending) && Render.exception(ending.payload)) || nil,
      tail_call: (match?(%Event{kind: :tail_call}, ending) && payload_view(ending)) || nil,
      reply: reply_of(source, ending),
      # at most 50 of each kind, so that a detail stays small whatever the call recorded
      locals: locals_view(first(related, :local)),
      exprs: exprs_view(first(related, :expr)),
      states: states_view(first(related, :state)),
      omitted: Enum.sum(for k <- [:local, :expr, :state], do: max(Enum.count(related, &(&1.kind == k)) - 50, 0)),
      parent: parent_view(source, c)
    }
  end

  defp first(events, kind), do: events |> Enum.filter(&(&1.kind == kind)) |> Enum.take(50)

  defp locals_view(events) do
    budget = div(@section_budget, max(length(events), 1))
    for l <- events, do: %{id: l.id, line: l.line, vars: vars_view(l.payload, budget)}
  end

  defp exprs_view(events) do
    max = per_value(length(events), @section_budget)
    for %Event{payload: {s, v}} = x <- events, do: %{id: x.id, line: x.line, source: source_text(s), value: Render.term(v, max: max)}
  end

  defp states_view(events) do
    max = per_value(length(events), @section_budget)
    for %Event{payload: {p, st}} = s <- events, do: %{id: s.id, phase: phase(p), state: Render.term(st, max: max)}
  end

  defp status(nil), do: "open"
  defp status(%Event{kind: :return}), do: "ok"
  defp status(%Event{kind: :exception}), do: "exception"
  defp status(%Event{kind: :tail_call}), do: "tail_call"

  defp parent_view(source, call) do
    case open_stack(source, call.pid, before_id: call.id) do
      [parent | _] -> %{id: parent.id, mfa: Render.mfa(parent)}
      [] -> nil
    end
  end

  # for :send/:receive: the event at the other end of the message
  defp peer(source, %Event{kind: :receive, correlation_id: c}, t0) when is_integer(c) do
    case Source.get(source, c) do
      %Event{kind: :send} = s -> %{id: s.id, pid: Render.pid(s.pid), t: s.ts - t0}
      _ -> nil
    end
  end

  defp peer(source, %Event{kind: :send, id: id}, t0) do
    case Source.fetch(source, correlation_id: id, kinds: [:receive], limit: 1) |> ok_list() do
      [r | _] -> %{id: r.id, pid: Render.pid(r.pid), t: r.ts - t0}
      [] -> nil
    end
  end

  defp peer(_, _, _), do: nil

  @doc """
  The source lines around `line` for the module of `event` (`ElixirScope.Recording.Sources.snippet/4`):
  those saved with the recording, else a window of the compiled source file of the loaded
  module when it lies under the current working directory. Loading a module and reading a
  file go through single VM-wide processes (the code server: for a module that does not
  exist, a search of the whole code path; the file server): under load they queue every
  request behind them. So modules are never loaded here (a server loads a recording's
  modules when it starts, `ElixirScope.Web.Server`), and a server passes its
  `ElixirScope.Web.Cache`, where each file is read once.
  """
  @spec source_snippet(Source.t(), Event.t(), non_neg_integer(), Cache.t() | nil) :: Sources.snippet() | nil
  def source_snippet(source, %Event{module: m}, line, cache \\ nil) do
    Sources.snippet(source, m, line, &source_lines(&1, cache))
  end

  # an event without a line (an exception) shows where it raised, else its call's first line
  defp snippet(source, e, call, files) do
    owner = call || e
    line = with 0 <- Event.source_line(e, owner.module), do: (call && call.line) || 0
    source_snippet(source, owner, line, files)
  end

  defp source_lines(path, cache) do
    Cache.fetch(cache, {:file, path}, fn ->
      case Sources.read_lines(path, File.cwd!()) do
        {:ok, _, lines} = ok -> {ok, 64 + Enum.sum(for l <- Tuple.to_list(lines), do: byte_size(l) + 16)}
        error -> {error, 64}
      end
    end)
  end

  # ---------------------------------------------------------- state & stacks

  # the calls of `pid` open at the point given by `before_id:` or `until:` (innermost first)
  defp open_stack(source, pid, bound) do
    filters = [pid: pid, kinds: @call_kinds, order: :desc, limit: 5_000] ++ bound

    source
    |> Source.fetch(filters)
    |> ok_list()
    |> Enum.reduce_while({MapSet.new(), []}, fn e, {ended, stack} ->
      cond do
        length(stack) >= 64 -> {:halt, {ended, stack}}
        e.kind in [:return, :exception, :tail_call] -> {:cont, {MapSet.put(ended, e.call_id), stack}}
        MapSet.member?(ended, e.id) -> {:cont, {ended, stack}}
        true -> {:cont, {ended, [e | stack]}}
      end
    end)
    |> elem(1)
    |> Enum.reverse()
  end

  @doc """
  The instant `t`: for each pid, its open calls (outermost first), its latest event, and
  its latest GenServer state with the call that set it.
  """
  @spec at(Source.t(), integer(), [pid()]) :: map()
  def at(source, t, pids) do
    t0 = t0(source)
    abs_t = t + t0

    procs =
      for pid <- Enum.take(pids, 64) do
        stack = open_stack(source, pid, until: abs_t) |> Enum.reverse()
        last = Source.fetch(source, pid: pid, until: abs_t, order: :desc, limit: 1) |> ok_list() |> List.first()

        %{
          pid: Render.pid(pid),
          stack: Enum.map(stack, &%{id: &1.id, mfa: Render.mfa(&1), t: &1.ts - t0, args: args_short(&1)}),
          last: last && %{id: last.id, kind: Atom.to_string(last.kind), t: last.ts - t0},
          state: state_view(source, pid, abs_t, t0)
        }
      end

    %{t: t, processes: procs}
  end

  defp args_short(%Event{payload: args}) when is_list(args), do: args |> Enum.map(&Render.short(&1, 60)) |> Enum.join(", ") |> Render.cut(160)
  defp args_short(_), do: ""

  @doc "The GenServer state of `pid` at absolute time `abs_t` (monotonic ns), or nil."
  @spec state_at(Source.t(), pid(), integer()) :: {term(), Event.t(), Event.t() | nil} | nil
  def state_at(source, pid, abs_t) do
    states = Source.fetch(source, pid: pid, until: abs_t, kinds: [:state], order: :desc, limit: 200) |> ok_list()

    case states do
      [] ->
        nil

      [%Event{payload: {_, st}} = latest | _] ->
        # the call that put this value there: the earliest callback, in the run of
        # state events holding this same value, that finished with it
        setter =
          states
          |> Enum.take_while(&match?(%Event{payload: {_, ^st}}, &1))
          |> Enum.filter(&match?(%Event{payload: {:after, _}}, &1))
          |> List.last()

        setter_call = setter && setter.call_id && Source.get(source, setter.call_id)
        {st, latest, setter_call}

      _ ->
        nil
    end
  end

  defp state_view(source, pid, abs_t, t0) do
    case state_at(source, pid, abs_t) do
      nil ->
        nil

      {st, ev, setter} ->
        %{
          value: Render.term(st),
          event_id: ev.id,
          t: ev.ts - t0,
          phase: ev.payload |> elem(0) |> to_string(),
          set_by: setter && %{id: setter.id, mfa: Render.mfa(setter), args: args_short(setter), t: setter.ts - t0}
        }
    end
  end

  @doc "The state of `pid` at two instants and what changed between them (paths into the term)."
  @spec state_diff(Source.t(), pid(), integer(), integer()) :: map()
  def state_diff(source, pid, t1, t2) do
    t0 = t0(source)
    a = state_at(source, pid, t1 + t0)
    b = state_at(source, pid, t2 + t0)

    changes =
      case {a, b} do
        {{sa, _, _}, {sb, _, _}} -> diff(sa, sb, "", 0, []) |> Enum.reverse() |> Enum.take(200)
        _ -> []
      end

    %{
      pid: Render.pid(pid),
      t1: t1,
      t2: t2,
      before: state_view(source, pid, t1 + t0, t0),
      after: state_view(source, pid, t2 + t0, t0),
      changes: changes
    }
  end

  @doc false
  @spec diff(term(), term(), String.t(), non_neg_integer(), list()) :: list()
  def diff(a, a, _path, _depth, acc), do: acc

  def diff(%s{} = a, %s{} = b, path, depth, acc) when depth < 6,
    do: diff(Map.from_struct(a), Map.from_struct(b), path, depth, acc)

  def diff(a, b, path, depth, acc) when is_map(a) and is_map(b) and not is_struct(a) and not is_struct(b) and depth < 6 do
    keys = Map.keys(a) ++ Map.keys(b)

    keys
    |> Enum.uniq()
    |> Enum.sort()
    |> Enum.take(500)
    |> Enum.reduce(acc, fn k, acc ->
      p = path <> key_path(k)

      case {Map.fetch(a, k), Map.fetch(b, k)} do
        {:error, {:ok, v}} -> [%{path: p, op: "added", new: Render.term(v, max: 2048)} | acc]
        {{:ok, v}, :error} -> [%{path: p, op: "removed", old: Render.term(v, max: 2048)} | acc]
        {{:ok, v1}, {:ok, v2}} -> diff(v1, v2, p, depth + 1, acc)
      end
    end)
  end

  def diff(a, b, path, depth, acc) when is_tuple(a) and is_tuple(b) and tuple_size(a) == tuple_size(b) and depth < 6 do
    Enum.reduce(0..(tuple_size(a) - 1)//1, acc, fn i, acc -> diff(elem(a, i), elem(b, i), "#{path}{#{i}}", depth + 1, acc) end)
  end

  def diff(a, b, path, depth, acc) when is_list(a) and is_list(b) and length(a) == length(b) and length(a) <= 100 and depth < 6 do
    a |> Enum.zip(b) |> Enum.with_index() |> Enum.reduce(acc, fn {{x, y}, i}, acc -> diff(x, y, "#{path}[#{i}]", depth + 1, acc) end)
  end

  def diff(a, b, path, _depth, acc),
    do: [%{path: if(path == "", do: "(whole state)", else: path), op: "changed", old: Render.term(a, max: 2048), new: Render.term(b, max: 2048)} | acc]

  defp key_path(k) when is_atom(k) do
    s = Atom.to_string(k)
    if Regex.match?(~r/^[a-z_][a-zA-Z0-9_]*[?!]?$/, s), do: "." <> s, else: "[#{inspect(k)}]"
  end

  defp key_path(k), do: "[#{Render.short(k, 60)}]"

  # --------------------------------------------------------------- call tree

  @doc """
  The call tree of `pid` flattened in display order: rows with `depth`, `id`, `mfa`, `status`,
  `t`, `duration_ns`, `args`; a page of `limit` rows (max 5,000) from `offset`, built from the
  process's first 50,000 events (`truncated` when it had more). `next_offset` is where the next
  page starts, nil after the last.
  """
  @spec call_tree(Source.t(), pid(), keyword()) :: map()
  def call_tree(source, pid, opts \\ []) do
    t0 = t0(source)
    limit = opts |> Keyword.get(:limit, 2_000) |> min(5_000) |> max(1)
    offset = opts |> Keyword.get(:offset, 0) |> max(0)
    window = Enum.flat_map([:since, :until], fn k -> if v = opts[k], do: [{k, v + t0}], else: [] end)
    events = Source.fetch(source, [pid: pid, limit: 50_000] ++ window) |> ok_list()
    roots = events |> EventCorrelator.call_trees_by_pid() |> Map.get(pid, [])
    flat = EventCorrelator.flatten(roots)

    rows =
      flat
      |> Enum.drop(offset)
      |> Enum.take(limit)
      |> Enum.map(fn {depth, node} ->
        c = node.event

        %{
          id: c.id,
          depth: depth,
          mfa: Render.mfa(c),
          args: args_short(c),
          status: Atom.to_string(node.status),
          t: c.ts - t0,
          duration_ns: node.duration_ns,
          children: length(node.children)
        }
      end)

    more? = length(flat) > offset + limit
    %{pid: Render.pid(pid), rows: rows, offset: offset, next_offset: if(more?, do: offset + limit), truncated: length(events) >= 50_000}
  end

  # ------------------------------------------------------------------ search

  @doc """
  Event ids matching a search, after event `after_id` (default 0). `query` words: `kind:call`,
  `pid:<0.1.0>`, `mod:Name`, `fun:name`, anything else is text looked for (case-insensitively)
  in `Mod.fun/arity` and the rendered payload. At most `limit` (≤ 1,000) ids; at most 200,000
  events are examined. When it stopped early (`truncated`), `next_after_id` is where to go on.
  """
  @spec search(Source.t(), String.t(), keyword()) :: map()
  def search(source, query, opts \\ []) do
    limit = opts |> Keyword.get(:limit, 500) |> min(1_000) |> max(1)
    {filters, words} = parse_query(source, query)

    case filters do
      {:error, msg} ->
        %{error: msg, ids: [], truncated: false}

      filters ->
        {ids, next} = scan(source, filters, words, limit, Keyword.get(opts, :after_id, 0), 0, [])
        %{ids: ids, truncated: next != nil, next_after_id: next, query: query}
    end
  end

  @max_scan 200_000
  @scan_page 2_000

  # {ids, the id to continue after (nil when the source is exhausted)}; `left` ids still wanted
  defp scan(source, filters, words, left, after_id, scanned, acc) do
    page = Source.fetch(source, filters ++ [after_id: after_id, limit: @scan_page]) |> ok_list()
    {acc, left, last} = match_page(page, words, left, acc, after_id)
    scanned = scanned + length(page)

    cond do
      left == 0 -> {Enum.reverse(acc), last}
      length(page) < @scan_page -> {Enum.reverse(acc), nil}
      scanned >= @max_scan -> {Enum.reverse(acc), last}
      true -> scan(source, filters, words, left, last, scanned, acc)
    end
  end

  # stops at the limit, so that the cursor is the last id examined
  defp match_page([], _words, left, acc, last), do: {acc, left, last}
  defp match_page(_page, _words, 0, acc, last), do: {acc, 0, last}

  defp match_page([e | rest], words, left, acc, _last) do
    if matches?(e, words),
      do: match_page(rest, words, left - 1, [e.id | acc], e.id),
      else: match_page(rest, words, left, acc, e.id)
  end

  defp matches?(_e, []), do: true

  defp matches?(e, words) do
    text = String.downcase(Render.mfa(e) <> " " <> Render.short(e.payload, 4_000))
    Enum.all?(words, &String.contains?(text, &1))
  end

  defp parse_query(source, query) do
    query
    |> String.split(~r/\s+/, trim: true)
    |> Enum.take(20)
    |> Enum.reduce({[], []}, fn
      _, {{:error, _}, _} = err ->
        err

      word, {filters, words} ->
        case String.split(word, ":", parts: 2) do
          ["kind", k] ->
            case Enum.find(@kinds, &(Atom.to_string(&1) == k)) do
              nil -> {{:error, "unknown kind #{k}"}, words}
              kind -> {Keyword.update(filters, :kinds, [kind], &[kind | &1]), words}
            end

          ["pid", p] ->
            case parse_pid(source, p) do
              nil -> {{:error, "unknown pid #{p}"}, words}
              pid -> {Keyword.put(filters, :pid, pid), words}
            end

          ["mod", m] ->
            {filters, [String.downcase(String.replace_prefix(m, "Elixir.", "")) <> "." | words]}

          ["fun", f] ->
            {filters, ["." <> String.downcase(f) <> "/" | words]}

          _ ->
            {filters, [String.downcase(word) | words]}
        end
    end)
  end
end
