defmodule ElixirScope.IEx do
  @moduledoc """
  IEx helpers: `import ElixirScope.IEx` (`mix scope.open FILE` prints the command that does it).

      processes()             # the recorded processes: names, pids, event counts, crashes
      history(pid)            # a process's latest events (or history(pid, 100))
      calls(MyMod.fun/2)      # every recorded call: args, result, duration
      logpoint(MyMod.fun/2, fn hit -> hit.locals[:x] end)   # a print, after the fact
      tree(pid)               # the call tree of a process (or tree(call_id))
      state_at(pid, t)        # a GenServer's state at t (ns, DateTime, event id)
      vars(call_id)           # the locals of a call (or of a process: vars(pid))
      origin(value)           # where a value first appeared and how it travelled
      timeline([p1, p2])      # processes side by side, with the messages between
      step() / back()         # walk through events (step(pid) follows one process)
      explain(pid_or_call)    # an AI explanation (ElixirScope.AI)
      stats()                 # counters of the live session or recording
      cluster(nodes)          # read a cluster's nodes merged (ElixirScope.Cluster); cluster(:live) to go back

  They read the default source: the live session, or the recording opened
  with `ElixirScope.Recording.load/1` / `mix scope.open FILE`. Pids can be
  given as pids, registered names, or strings like `"0.123.0"`. A wrong
  argument prints what was expected, with an example.
  """

  alias ElixirScope.{Event, Query}
  alias ElixirScope.IEx.Format
  alias ElixirScope.Query.{Cursor, Filter, Processes, Source}
  alias ElixirScope.Recording.Sources
  alias ElixirScope.Storage.EventCorrelator

  @cursor_key :elixir_scope_iex_cursor
  # the width a value may take in a line that shows several (calls, tree)
  @value_width 70

  @doc """
  Prints the recorded processes: pid, label (registered name, else initial call, e.g. `Task from
  Demo.Audit.check/3`), first call, event count, time span, whether it crashed or how it exited,
  and the restarts that link it to the process before or after it.
  """
  @spec processes() :: :ok
  def processes do
    src = Source.default()

    case Processes.list(source: src) do
      {:error, msg} ->
        error(msg)

      [] ->
        hint("no events recorded in the #{Source.describe(src)}")

      procs ->
        rows =
          for p <- procs do
            [Format.pid(p.pid), p.label, first_call(p), "#{p.events}", "#{Format.rel(p.first, src)} … #{Format.rel(p.last, src)}", status(p) <> restart(p)]
          end

        widths = for i <- 0..4, do: [["pid", "name", "first call", "events", "span"] | rows] |> Enum.map(&String.length(Enum.at(&1, i))) |> Enum.max()

        print_row = fn cells, colour ->
          text = cells |> Enum.take(5) |> Enum.zip(widths) |> Enum.map_join("  ", fn {c, w} -> String.pad_trailing(c, w) end)
          IO.puts(IO.iodata_to_binary([text, "  ", Format.color(List.last(cells), colour)]))
        end

        print_row.(["pid", "name", "first call", "events", "span", "status"], :faint)
        Enum.each(rows, &print_row.(&1, if(String.starts_with?(List.last(&1), "crashed"), do: :red, else: :default_color)))
        IO.puts(Format.color("#{length(procs)} process(es); history(pid), tree(pid), explain(pid) take a pid, a name or \"0.123.0\"", :faint))
    end
  end


  defp first_call(%{first_call: nil}), do: "-"
  defp first_call(%{first_call: call}), do: Format.mfa(call)

  defp status(%{crash: nil, exit: %Event{function: :down, payload: reason}}), do: "exited #{Format.value(reason)}"
  defp status(%{crash: nil}), do: "ok"

  defp status(%{crash: %Event{kind: :exit} = e}), do: "crashed: exit #{Format.value(e.payload)} (##{e.id})"

  defp status(%{crash: e}),
    do: Format.cut("crashed at ##{e.id}: #{Format.exception(e.payload)} (in #{Format.mfa(e)})")

  defp restart(%{restart_of: old, restarted_as: new}) do
    [old && "restart of #{inspect(old)}", new && "restarted as #{inspect(new)}"]
    |> Enum.reject(&is_nil/1)
    |> Enum.map_join(&("; " <> &1))
  end

  @doc "Prints the latest `n` events of a process (default 30)."
  @spec history(term(), pos_integer()) :: :ok
  def history(who, n \\ 30)

  def history(_who, n) when not (is_integer(n) and n > 0),
    do: error("history/2 takes a number of events, e.g. history(pid, 100); got: #{inspect(n)}")

  def history(who, n) do
    src = Source.default()

    with {:ok, pid} <- to_pid(who),
         evs when is_list(evs) <- Query.events(pid: pid, order: :desc, limit: n) do
      case Enum.reverse(evs) do
        [] -> hint("no events recorded for #{inspect(who)}")
        evs -> print_events(evs, src)
      end
    else
      {:error, msg} -> error(msg)
    end
  end

  @doc """
  Prints every recorded call of a function: `calls(MyMod.fun/2)`, `calls(MyMod.fun)`,
  `calls({MyMod, :fun, 2})` or `calls(&MyMod.fun/2)`.
  """
  defmacro calls(target) do
    quote do: ElixirScope.IEx.print_calls(unquote(Query.target_ast(target)))
  end

  @doc """
  Prints `fun`'s result for every recorded hit of a function, as if a print had
  been there: `logpoint(MyMod.fun/2, fn hit -> hit.locals[:total] end)`
  (see `ElixirScope.Query.run_logpoint/3` for the hit map).
  """
  defmacro logpoint(target, fun) do
    quote do: ElixirScope.IEx.print_logpoint(unquote(Query.target_ast(target)), unquote(fun))
  end

  @doc "What `logpoint/2` runs."
  @spec print_logpoint(term(), (map() -> term())) :: :ok
  def print_logpoint(target, fun) do
    src = Source.default()

    case Query.run_logpoint(target, fun) do
      {:error, msg} ->
        error(msg)

      [] ->
        hint("no recorded calls of #{describe_target(target)}")

      hits ->
        for h <- hits do
          head = "##{h.event.id} #{Format.rel(h.event, src)} #{Format.wall(h.event)} #{inspect(h.pid)} "
          IO.puts(IO.iodata_to_binary([Format.color(head, :faint), Format.cut(Format.value(h.result))]))
        end

        :ok
    end
  end

  @doc "What `calls/1` runs."
  @spec print_calls(term(), pos_integer()) :: :ok
  def print_calls(target, limit \\ 50) do
    src = Source.default()

    case Query.run_logpoint(target, & &1, limit: limit) do
      {:error, msg} ->
        error(msg)

      [] ->
        hint("no recorded calls of #{describe_target(target)}")

      hits ->
        for %{result: h} <- hits do
          dur = duration(h)

          outcome =
            case h.status do
              :ok -> Format.color("= " <> short(h.return), :cyan)
              :exception -> Format.color("raised " <> Format.cut(Format.exception(h.exception), @value_width), :red)
              :tail_call -> "tail call"
              :open -> Format.color("(still running or its end was not recorded)", :faint)
            end

          head = "##{h.event.id} #{Format.rel(h.event, src)} #{Format.wall(h.event)} #{inspect(h.pid)} #{Format.mfa(h.event)} #{dur} "
          IO.puts(IO.iodata_to_binary([head, outcome, "  args: ", short(h.args)]))
        end

        IO.puts(Format.color("#{length(hits)} call(s)", :faint))
    end
  end

  # a value sharing its line with others: cut to its part of the width, with the cut marked
  defp short(value), do: Format.cut(Format.value(value), @value_width)

  defp duration(%{event: %{return_id: nil}}), do: ""

  defp duration(%{event: call} = h) do
    case h.status do
      s when s in [:ok, :exception] ->
        case Query.event(call.return_id) do
          %Event{ts: ts} -> "(#{Format.duration(ts - call.ts)})"
          nil -> ""
        end

      _ ->
        ""
    end
  end

  defp describe_target({m, f, a}), do: "#{inspect(m)}.#{f}/#{a}"
  defp describe_target({m, f}), do: "#{inspect(m)}.#{f}"
  defp describe_target(other), do: inspect(other)

  @doc """
  Explains an exception with `ElixirScope.AI.explain/2` (when the AI part is
  present): an exception event, its id, the id of the call that raised, or a
  process (its latest exception). A registered name means every process that
  had the name (a crashed GenServer and the one restarted in its place): the
  latest exception among them. Reads the default source, so it works on
  recordings too.
  """
  @spec explain(term()) :: :ok
  def explain(what) do
    ai = Module.concat([ElixirScope, AI])

    if Code.ensure_loaded?(ai) and function_exported?(ai, :explain, 2) do
      with {:ok, target} <- explain_target(what),
           {:ok, result} <- apply(ai, :explain, [target, [data_access: ElixirScope.Query.DefaultSource]]) do
        print_explanation(result)
      else
        {:error, msg} -> hint(to_string(msg))
      end
    else
      hint("explain/1 needs ElixirScope.AI (the AI part of ElixirScope), which is not available in this build")
    end
  end

  defp explain_target(id) when is_integer(id) and id > 0, do: {:ok, id}
  defp explain_target(%Event{} = e), do: {:ok, e}

  defp explain_target(name) when is_atom(name) and name not in [nil, true, false] do
    case Processes.named(name) do
      [] -> with({:ok, pid} <- to_pid(name), do: latest_exception([pid], name))
      pids -> latest_exception(pids, name)
    end
  end

  defp explain_target(who) when is_pid(who) or is_binary(who) do
    with {:ok, pid} <- to_pid(who), do: latest_exception([pid], who)
  end

  defp explain_target(other),
    do: {:error, "explain/1 takes a process (a pid, a name or \"0.123.0\"), an exception event or its id, e.g. explain(MyApp.Worker); got: #{inspect(other)}"}

  defp latest_exception(pids, who) do
    pids
    |> Enum.flat_map(fn pid ->
      case Query.events(pid: pid, kind: :exception, order: :desc, limit: 1) do
        evs when is_list(evs) -> evs
        {:error, _} -> []
      end
    end)
    |> Enum.max_by(& &1.id, fn -> nil end)
    |> case do
      nil -> {:error, "no exception recorded for #{inspect(who)} (#{Enum.map_join(pids, ", ", &inspect/1)}): explain/1 explains exceptions"}
      e -> {:ok, e}
    end
  end

  defp print_explanation(result) when is_map(result) do
    for {k, v} <- Enum.sort(result) do
      text = if is_binary(v), do: v, else: Format.pretty(v, 20)
      IO.puts(Format.color("#{k}: ", :bright) |> IO.iodata_to_binary() |> Kernel.<>(text))
    end

    :ok
  end

  defp print_explanation(other), do: IO.puts(Format.pretty(other))

  @doc "Prints the call tree of a process (pid/name) or of one call (a call id)."
  @spec tree(term()) :: :ok
  def tree(who) when is_integer(who) do
    case Query.call_tree(who) do
      nil -> hint("no call with id #{who} (a call id is the id of a :call event)")
      {:error, msg} -> error(msg)
      node -> print_tree([node])
    end
  end

  def tree(who) do
    with {:ok, pid} <- to_pid(who),
         roots when is_list(roots) <- Query.call_tree(pid) do
      if roots == [], do: hint("no calls recorded for #{inspect(who)}"), else: print_tree(roots)
    else
      {:error, msg} -> error(msg)
    end
  end

  defp print_tree(roots) do
    src = Source.default()

    for {depth, node} <- EventCorrelator.flatten(roots) do
      e = node.event
      indent = String.duplicate("  ", depth)

      status =
        case node.status do
          :ok -> Format.color("= " <> short(node.return.payload), :cyan)
          :exception -> Format.color("✗ " <> Format.cut(Format.exception(node.exception.payload), @value_width), :red)
          :tail_call -> "↪ tail call"
          :open -> Format.color("(open)", :faint)
        end

      # the id and the duration are never cut: only the values have a width
      text = "#{indent}#{Format.mfa(e)} #{short(e.payload)} [##{e.id} #{Format.rel(e, src)} #{Format.duration(node.duration_ns)}]"
      IO.puts(text <> " " <> IO.iodata_to_binary(status))
    end

    :ok
  end

  @doc """
  Prints a GenServer's state at `at`: `{:event, id}` (just after that event), monotonic ns,
  a `DateTime`, or `:now` (the default), e.g. `state_at(MyApp.Ledger, {:event, 120})`.
  """
  @spec state_at(term(), Query.at()) :: :ok
  def state_at(who, at \\ :now) do
    src = Source.default()

    with {:ok, _} <- Query.at_filter(at),
         {:ok, pid} <- to_pid(who) do
      print_state(pid, at, src)
    else
      {:error, msg} -> error(msg)
    end
  end

  defp print_state(pid, at, src) do
    case Query.state_at(pid, at) do
      {:ok, state, e} ->
        IO.puts(Format.color("state of #{inspect(pid)} at #{describe_at(at)} (from event ##{e.id}, #{elem(e.payload, 0)} a callback, #{Format.rel(e, src)} #{Format.wall(e)}):", :faint))
        IO.puts(Format.pretty(state))

      {:error, msg} ->
        hint(msg)
    end
  end

  defp describe_at(:now), do: "the end"
  defp describe_at({:event, id}), do: "event ##{id}"
  defp describe_at(%DateTime{} = dt), do: DateTime.to_iso8601(dt)
  defp describe_at(t), do: "t=#{inspect(t)}"

  @doc "Prints the local variables of a call (a call id) or of a process, in time order."
  @spec vars(term()) :: :ok
  def vars(who) do
    src = Source.default()
    scope = if is_integer(who) and who > 0, do: {:ok, [call_id: who]}, else: with({:ok, pid} <- to_pid(who), do: {:ok, [pid: pid]})

    with {:ok, scope} <- scope,
         evs when is_list(evs) <- Query.events(scope ++ [kind: :local]) do
      if evs == [], do: hint("no local variables recorded for #{inspect(who)} (needs the :locals level)")

      for e <- evs, is_map(e.payload) do
        IO.puts(Format.cut("##{e.id} #{Format.rel(e, src)} line #{e.line} call ##{e.call_id}"))

        for {k, v} <- Enum.sort(e.payload) do
          IO.puts(Format.cut("    #{Format.color(to_string(k), :green)} = #{Format.value(v)}"))
        end
      end

      :ok
    else
      {:error, msg} -> error(msg)
    end
  end

  @doc "Prints where `value` first appeared, the calls open there, and how it travelled between processes."
  @spec origin(term()) :: :ok
  def origin(value) do
    src = Source.default()

    case Query.origin(value) do
      {:error, msg} ->
        hint(msg)

      {:ok, o} ->
        IO.puts("first seen:  " <> Format.line(o.first, src))

        if o.calls != [] do
          IO.puts("inside:      " <> Enum.map_join(o.calls, " → ", &Format.mfa/1))
        end

        for hop <- o.chain do
          IO.puts("#{Format.color(String.pad_trailing(to_string(hop.type), 11), :magenta)}  #{inspect(hop.from.pid)} → #{inspect(hop.to.pid)}  " <>
                    "(##{hop.from.id} → ##{hop.to.id}, #{Format.rel(hop.to, src)})")
        end

        IO.puts(Format.color("#{length(o.holders)} event(s) hold this value", :faint))
    end
  end

  @doc "Moves the IEx cursor one event forward (all processes in time order, or the one given to `step/1`)."
  @spec step() :: :ok
  def step, do: move(&Cursor.step_forward/1, "end of the recorded events")

  @doc "Starts stepping through one process (or all with nil) from its first event."
  @spec step(term()) :: :ok
  def step(nil), do: (Process.put(@cursor_key, Cursor.new()); step())

  def step(who) do
    case to_pid(who) do
      {:ok, pid} -> (Process.put(@cursor_key, Cursor.new(pid: pid)); step())
      {:error, msg} -> error(msg)
    end
  end

  @doc "Moves the IEx cursor one event back."
  @spec back() :: :ok
  def back, do: move(&Cursor.step_back/1, "start of the recorded events")

  defp move(fun, edge) do
    c = Process.get(@cursor_key) || Cursor.new()

    case fun.(c) do
      {:ok, c} ->
        Process.put(@cursor_key, c)
        src = Source.default()
        IO.puts(Format.line(c.event, src, Source.names(src)))
        with {:ok, text} <- code_line(c.event, src), do: IO.puts(Format.color(text, :faint))

      {:end, c} ->
        Process.put(@cursor_key, c)
        hint("at the #{edge}#{if c.pid, do: " of #{inspect(c.pid)}", else: ""}")

      {:error, msg} ->
        error(msg)
    end
  end

  # the line of code the cursor is at: `    risk_scorer.ex:29  average = div(…)`, from
  # the lines a recording saved (or the loaded module's file); events inside a call name its module
  defp code_line(%Event{} = e, src) do
    module = e.module || with(%Event{module: m} <- e.call_id && Query.event(e.call_id, source: src), do: m, else: (_ -> nil))
    line = Event.source_line(e, module)

    case Sources.snippet(src, module, line) do
      %{file: file, from: from, lines: lines} -> {:ok, Format.cut("    #{Path.basename(file)}:#{line}  #{String.trim(Enum.at(lines, line - from))}")}
      nil -> :none
    end
  end

  @doc "Prints events of several processes merged in time order, with the messages between them."
  @spec timeline(term(), :all | {term(), term()}) :: :ok
  def timeline(who, window \\ :all) do
    src = Source.default()

    with {:ok, pids} <- to_pids(List.wrap(who)),
         %{events: evs, messages: msgs} <- Query.timeline(pids, window) do
      if evs == [] do
        hint("no events for #{inspect(who)} in that window")
      else
        incoming = Map.new(msgs, &{&1.to.id, &1})
        names = Source.names(src)
        col = pids |> Enum.with_index() |> Map.new()

        for e <- evs do
          pad = String.duplicate("    ", Map.get(col, e.pid, 0))
          IO.puts(pad <> Format.line(e, src, names))

          case incoming[e.id] do
            nil -> :ok
            l -> IO.puts(IO.iodata_to_binary([pad, Format.color("    ↳ #{l.type} from #{inspect(l.from.pid)} (##{l.from.id})", :magenta)]))
          end
        end

        IO.puts(Format.color("#{length(evs)} event(s), #{length(msgs)} link(s) between processes", :faint))
      end
    else
      {:error, msg} -> error(msg)
    end
  end

  @doc """
  Reads a cluster (`ElixirScope.Cluster`) from now on: the merged recording of `nodes` (`:all`,
  every recorded node, or a list) becomes the default source of these helpers and of
  `ElixirScope.Query`; prints its nodes, clock offsets, corrections and what is missing.
  `cluster(:live)` goes back to the live session.
  """
  @spec cluster(:all | [node()] | :live) :: :ok
  def cluster(nodes \\ :all)

  def cluster(:live) do
    close_snapshot()
    Source.put_default(:live)
  end

  def cluster(nodes) do
    case ElixirScope.Cluster.snapshot(nodes: nodes) do
      {:ok, rec} ->
        close_snapshot()
        Source.put_default(rec)
        Enum.each(ElixirScope.Cluster.summary(rec), &IO.puts/1)
        IO.puts(Format.color("#{ElixirScope.Recording.stats(rec).events} event(s); processes(), timeline(…) and the rest read them", :faint))

      {:error, msg} ->
        error(msg)
    end
  end

  @doc "Prints the counters of the live session or of the loaded recording."
  @spec stats() :: :ok
  def stats do
    src = Source.default()
    IO.puts(Format.color("ElixirScope — #{Source.describe(src)}", :bright))

    case Source.stats(src) do
      %{running: false} ->
        hint("ElixirScope is not running: start it with ElixirScope.start() or open a recording with ElixirScope.Recording.load/1")

      stats ->
        for {k, v} <- Enum.sort(stats), k != :source_stats do
          IO.puts("  #{String.pad_trailing(to_string(k), 18)} #{Format.value(v)}")
        end

        case stats[:source_stats] do
          %{emitted: e, stored: st, dropped: d} ->
            IO.puts("  when saved, the session had emitted #{e}, stored #{st}, dropped #{d} event(s)")

          _ ->
            :ok
        end
    end
  end

  # -- helpers --

  # only a snapshot that cluster/1 made (in memory, with a cluster header) is closed: a loaded file is the user's
  defp close_snapshot do
    with %ElixirScope.Recording{path: nil, meta: %{cluster: _}} = old <- Source.default(), do: ElixirScope.Recording.close(old)
  end

  defp to_pids(list) do
    Enum.reduce_while(list, {:ok, []}, fn w, {:ok, acc} ->
      case to_pid(w) do
        {:ok, p} -> {:cont, {:ok, acc ++ [p]}}
        e -> {:halt, e}
      end
    end)
  end

  @doc false
  @spec to_pid(term()) :: {:ok, pid()} | {:error, String.t()}
  def to_pid(who), do: Filter.resolve_pid(who, Source.default())

  defp print_events(evs, src) do
    names = Source.names(src)
    Enum.each(evs, &IO.puts(Format.line(&1, src, names)))
  end

  defp hint(msg), do: IO.puts(Format.color("hint: " <> msg, :yellow))
  defp error(msg), do: IO.puts(Format.color("error: " <> msg, :red))
end
