defmodule ElixirScope.Query do
  @moduledoc """
  Time-travel queries over recorded events — one API for the IEx helpers, the
  web cinema and exports. Every function reads from a source
  (`ElixirScope.Query.Source`): the live session by default, or a loaded
  `ElixirScope.Recording` (pass `source: rec`, or load it as the default).

    * `events/1`, `page/2`, `stream/1` — filtered, ordered, limited, paged events
      (filters in `ElixirScope.Query.Filter`);
    * `call_tree/2` — the call tree of a process, or of one call;
    * `state_at/3`, `state_history/2` — a GenServer's state at any instant;
    * `variable_history/3` — the values a local variable took;
    * `origin/2` — the earliest event holding a value, and how it travelled;
    * `timeline/3`, `message_flow/3`, `links/1` — processes side by side with
      the messages between them (`ElixirScope.Query.Correlation`);
    * `processes/1` — the recorded processes: names, event counts, crashes
      (`ElixirScope.Query.Processes`);
    * `cursor/1` and `ElixirScope.Query.Cursor` — stepping through events;
    * `logpoint/3` (a macro: `logpoint(MyMod.fun/2, fn hit -> … end)`) and
      `run_logpoint/3` — "prints after the fact" over every recorded hit of a function.
  """

  alias ElixirScope.Event
  alias ElixirScope.Cluster.Pushdown
  alias ElixirScope.Query.{Correlation, Cursor, Filter, Source}
  alias ElixirScope.Storage.EventCorrelator

  @type filters :: keyword()
  @type at :: integer() | DateTime.t() | Event.t() | {:event, pos_integer()} | :now
  @type error :: {:error, String.t()}

  # ---------------------------------------------------------------- events

  @doc """
  Events matching `filters` (see `ElixirScope.Query.Filter`), or `{:error, message}`. With
  `nodes:` and filters that narrow the query, each node answers them itself
  (`ElixirScope.Cluster.Pushdown`: each node's own ids); otherwise a merged snapshot is read.
  """
  @spec events(filters()) :: [Event.t()] | error()
  def events(filters \\ []) do
    pushed = if Pushdown.pushable?(filters), do: Pushdown.events(filters), else: :snapshot

    with :snapshot <- pushed,
         {:ok, f} <- Filter.normalize(filters),
         do: fetch(f)
  end

  @doc "The event with this id (or nil). Options: `source:`."
  @spec event(pos_integer(), keyword()) :: Event.t() | nil
  def event(id, opts \\ []) do
    Source.event(Source.from_opts(opts), id)
  catch
    {:query_error, _} -> nil
  end

  @doc """
  One page of events: `{:ok, events, next}` where `next` is the filters for the
  following page (nil after the last page). `size` is the page size.
  """
  @spec page(filters(), pos_integer()) :: {:ok, [Event.t()], filters() | nil} | error()
  def page(filters, size) when is_integer(size) and size > 0 do
    filters = Keyword.put(filters, :limit, size)

    with {:ok, f} <- Filter.normalize(filters),
         events when is_list(events) <- fetch(f) do
      # the next pages read the same cluster snapshot (a later one numbers events anew)
      filters = if filters[:nodes], do: filters |> Keyword.delete(:nodes) |> Keyword.put(:source, f.source), else: filters

      next =
        case {length(events), f.order} do
          {n, _} when n < size -> nil
          {_, :asc} -> Keyword.put(filters, :after_id, List.last(events).id)
          {_, :desc} -> Keyword.put(filters, :before_id, List.last(events).id)
        end

      {:ok, events, next}
    end
  end

  @doc """
  A lazy stream of every matching event in id order, read in pages (`chunk:`,
  default 4096). A bad filter or source error is thrown as `{:query_error, message}`.
  """
  @spec stream(filters(), keyword()) :: Enumerable.t()
  def stream(filters \\ [], opts \\ []) do
    chunk = Keyword.get(opts, :chunk, 4096)
    filters = if opts[:source], do: Keyword.put(filters, :source, opts[:source]), else: filters

    Stream.resource(
      fn -> Keyword.merge(filters, order: :asc) end,
      fn
        nil ->
          {:halt, nil}

        fs ->
          case page(fs, chunk) do
            {:ok, events, next} -> {events, next}
            {:error, message} -> throw({:query_error, message})
          end
      end,
      fn _ -> :ok end
    )
  end

  defp fetch(%{preds: [], limit: limit} = f) do
    Source.events(f.source, store_filters(f, limit))
  end

  defp fetch(f) do
    batch = max((f.limit || 0) * 2, 2048)
    do_fetch(f, batch, [], 0)
  end

  defp do_fetch(f, batch, acc, n) do
    case Source.events(f.source, store_filters(f, batch)) do
      {:error, _} = e ->
        e

      events ->
        kept = Enum.filter(events, &Filter.keep?(f, &1))
        acc = [kept | acc]
        n = n + length(kept)

        cond do
          f.limit && n >= f.limit -> acc |> Enum.reverse() |> Enum.concat() |> Enum.take(f.limit)
          length(events) < batch -> acc |> Enum.reverse() |> Enum.concat()
          true -> do_fetch(advance(f, List.last(events).id), batch, acc, n)
        end
    end
  end

  defp advance(%{order: :asc} = f, id), do: put_in(f.store[:after_id], id)
  defp advance(%{order: :desc} = f, id), do: put_in(f.store[:before_id], id)

  defp store_filters(f, limit) do
    f.store |> Map.put(:order, f.order) |> then(&if(limit, do: Map.put(&1, :limit, limit), else: &1))
  end

  # ---------------------------------------------------------------- call trees

  @doc """
  The call tree of a process (a pid or registered name: the list of its root
  calls) or of one call (a call id: its node, or nil). Nodes are
  `ElixirScope.Storage.EventCorrelator.call_node/0` maps. Options: `source:`,
  `since:`/`until:`.
  """
  @spec call_tree(pid() | atom() | pos_integer(), keyword()) ::
          [EventCorrelator.call_node()] | EventCorrelator.call_node() | nil | error()
  def call_tree(pid_or_call_id, opts \\ [])

  def call_tree(call_id, opts) when is_integer(call_id) do
    source = Source.from_opts(opts)

    case Source.event(source, call_id) do
      %Event{kind: :call} = call ->
        upper =
          case call.return_id && Source.event(source, call.return_id) do
            %Event{kind: k} = ending when k in [:return, :exception] -> [before_id: ending.id + 1]
            _ -> []
          end

        events = events([pid: call.pid, after_id: call.id - 1, source: source] ++ upper)

        with evs when is_list(evs) <- events do
          evs |> EventCorrelator.call_trees() |> Enum.find(&(&1.event.id == call_id))
        end

      _ ->
        nil
    end
  catch
    {:query_error, message} -> {:error, message}
  end

  def call_tree(pid, opts) do
    filters = [pid: pid] ++ Keyword.take(opts, [:source, :nodes, :since, :until, :window])

    # a native store builds the trees from its own rows (Source.call_trees_by_pid/2); a cluster's
    # nodes, and whatever that path refuses (it says why as the events path does), read events
    trees = opts[:nodes] == nil and with({:ok, %{preds: []} = f} <- Filter.normalize(filters),
                                          do: Source.call_trees_by_pid(f.source, store_filters(f, nil)))

    if is_map(trees),
      do: trees |> Map.values() |> Enum.concat() |> Enum.sort_by(& &1.event.id),
      else: with(evs when is_list(evs) <- events(filters), do: EventCorrelator.call_trees(evs))
  end

  # ---------------------------------------------------------------- state

  @doc """
  The state of the GenServer `pid` at `at` (monotonic ns, `DateTime`, an event
  or `{:event, id}` meaning "just after that event", or `:now`): the state
  carried by its latest `:state` event at or before that instant.
  Returns `{:ok, state, event}` or `{:error, message}`.
  """
  @spec state_at(pid() | atom(), at(), keyword()) :: {:ok, term(), Event.t()} | error()
  def state_at(pid, at, opts \\ []) do
    with {:ok, at_filter} <- at_filter(at) do
      case events([pid: pid, kind: :state, order: :desc, limit: 1] ++ at_filter ++ Keyword.take(opts, [:source, :nodes])) do
        [%Event{payload: {phase, state}} = e] when phase in [:before, :after] -> {:ok, state, e}
        [%Event{payload: other} = e] -> {:ok, other, e}
        [] -> {:error, "no state was recorded for #{inspect(pid)} at or before #{describe_at(at)}"}
        {:error, _} = e -> e
      end
    end
  end

  @doc "The filters meaning \"at or before `at`\" (see `state_at/3`), or `{:error, message}` saying what an instant is."
  @spec at_filter(term()) :: {:ok, filters()} | error()
  def at_filter(:now), do: {:ok, []}
  def at_filter(%Event{id: id}), do: {:ok, [before_id: id + 1]}
  def at_filter({:event, id}) when is_integer(id) and id > 0, do: {:ok, [before_id: id + 1]}
  def at_filter(t) when is_integer(t) and t >= 0, do: {:ok, [until: t]}
  def at_filter(%DateTime{} = t), do: {:ok, [until: t]}

  def at_filter(other) do
    {:error,
     "cannot read #{inspect(other)} as an instant: give {:event, id} (just after that event, e.g. {:event, 120}), " <>
       "monotonic ns (an integer), a DateTime (e.g. ~U[2024-01-01 12:00:00.000Z]) or :now"}
  end

  defp describe_at(%Event{id: id}), do: "event #{id}"
  defp describe_at({:event, id}), do: "event #{id}"
  defp describe_at(:now), do: "now"
  defp describe_at(%DateTime{} = dt), do: DateTime.to_iso8601(dt)
  defp describe_at(t), do: "t=#{inspect(t)} ns"

  @doc "Every recorded state of `pid`: `[%{event:, phase:, state:}]` in time order."
  @spec state_history(pid() | atom(), keyword()) :: [map()] | error()
  def state_history(pid, opts \\ []) do
    with evs when is_list(evs) <- events([pid: pid, kind: :state] ++ Keyword.take(opts, [:source, :nodes, :since, :until])) do
      for e <- evs do
        case e.payload do
          {phase, state} when phase in [:before, :after] -> %{event: e, phase: phase, state: state}
          other -> %{event: e, phase: nil, state: other}
        end
      end
    end
  end

  # ---------------------------------------------------------------- variables

  @doc """
  The values the local variable `name` (atom or string) took in a process
  (pid or name) or in one call (a call id): `[%{event:, value:}]` in time order.
  """
  @spec variable_history(pid() | atom() | pos_integer(), atom() | String.t(), keyword()) :: [map()] | error()
  def variable_history(pid_or_call_id, name, opts \\ []) do
    scope = if is_integer(pid_or_call_id), do: [call_id: pid_or_call_id], else: [pid: pid_or_call_id]

    with evs when is_list(evs) <- events(scope ++ [kind: :local] ++ Keyword.take(opts, [:source, :nodes])) do
      for %Event{payload: vars} = e <- evs, is_map(vars), {:ok, v} <- [fetch_var(vars, name)], do: %{event: e, value: v}
    end
  end

  defp fetch_var(vars, name) when is_atom(name) do
    case Map.fetch(vars, name) do
      :error -> Map.fetch(vars, Atom.to_string(name))
      ok -> ok
    end
  end

  defp fetch_var(vars, name) when is_binary(name) do
    case Map.fetch(vars, name) do
      :error -> Enum.find_value(vars, :error, fn {k, v} -> if is_atom(k) and Atom.to_string(k) == name, do: {:ok, v} end)
      ok -> ok
    end
  end

  # ---------------------------------------------------------------- origin

  @doc "Where did `value` come from: see `ElixirScope.Query.Origin.origin/2`."
  @spec origin(term(), keyword()) :: {:ok, map()} | error()
  defdelegate origin(value, opts \\ []), to: ElixirScope.Query.Origin

  @doc "Whether `term` holds `value` (equal to it, or anywhere inside it)."
  @spec holds?(term(), term()) :: boolean()
  defdelegate holds?(term, value), to: ElixirScope.Query.Origin

  # ---------------------------------------------------------------- timelines

  @doc """
  Events of several processes merged in time order, with the links between
  them: `%{events: [...], messages: [link]}`. `window` is `:all`, `{since, until}`
  (monotonic ns or `DateTime`, either may be nil) or a keyword list.
  """
  @spec timeline([pid() | atom()] | pid() | atom(), :all | {term(), term()} | keyword(), keyword()) :: map() | error()
  def timeline(pids, window \\ :all, opts \\ []) do
    win =
      case window do
        :all -> []
        {s, u} -> [window: {s, u}]
        kw when is_list(kw) -> Keyword.take(kw, [:since, :until, :window])
        _ -> :bad
      end

    if win == :bad,
      do: {:error, "timeline: the window must be :all, {since, until} (monotonic ns or DateTime, either may be nil) " <>
                   "or a keyword list, e.g. {nil, ~U[2024-01-01 12:00:00Z]}; got: #{inspect(window)}"},
      else: with({:ok, opts} <- Source.pin(opts), do: merged_timeline(pids, win, opts))
  end

  defp merged_timeline(pids, win, opts) do
    pids
    |> List.wrap()
    |> Enum.reduce_while([], fn pid, acc ->
      case events([pid: pid] ++ win ++ Keyword.take(opts, [:source, :nodes, :kinds, :kind])) do
        {:error, _} = e -> {:halt, e}
        evs -> {:cont, [evs | acc]}
      end
    end)
    |> case do
      {:error, _} = e ->
        e

      lists ->
        evs = lists |> Enum.concat() |> Enum.sort_by(&{&1.ts, &1.id})
        %{events: evs, messages: Enum.filter(Correlation.links(evs), &(&1.from.pid != &1.to.pid))}
    end
  end

  @doc "The links (messages, calls, casts, replies, spawns) from process `from` to process `to`."
  @spec message_flow(pid() | atom(), pid() | atom(), keyword()) :: [Correlation.link()] | error()
  def message_flow(from, to, opts \\ []) do
    with %{events: evs} <- timeline([from, to], Keyword.get(opts, :window, :all), opts),
         [a, b] <- [resolve_pid(from, opts), resolve_pid(to, opts)] do
      evs |> Correlation.links() |> Correlation.between(a, b)
    end
  end

  @doc "Every cross-process link among the events matching `filters` (all events by default)."
  @spec links(filters()) :: [Correlation.link()] | error()
  def links(filters \\ []) do
    with evs when is_list(evs) <- events(filters), do: Correlation.links(evs)
  end

  defp resolve_pid(who, opts) do
    case Filter.resolve_pid(who, Source.from_opts(opts)) do
      {:ok, pid} -> pid
      {:error, _} -> nil
    end
  end

  # ---------------------------------------------------------------- processes

  @doc "The recorded processes: see `ElixirScope.Query.Processes.list/1`."
  @spec processes(keyword()) :: [ElixirScope.Query.Processes.info()] | error()
  defdelegate processes(opts \\ []), to: ElixirScope.Query.Processes, as: :list

  # ---------------------------------------------------------------- cursor

  @doc "A cursor for stepping (see `ElixirScope.Query.Cursor.new/1`)."
  @spec cursor(keyword()) :: Cursor.t()
  def cursor(opts \\ []), do: Cursor.new(opts)

  @doc "See `ElixirScope.Query.Cursor.step_forward/1`."
  @spec step_forward(Cursor.t()) :: Cursor.move()
  defdelegate step_forward(cursor), to: Cursor

  @doc "See `ElixirScope.Query.Cursor.step_back/1`."
  @spec step_back(Cursor.t()) :: Cursor.move()
  defdelegate step_back(cursor), to: Cursor

  @doc "See `ElixirScope.Query.Cursor.jump_to/2`."
  @spec jump_to(Cursor.t(), term()) :: Cursor.move()
  defdelegate jump_to(cursor, target), to: Cursor

  @doc "See `ElixirScope.Query.Cursor.next_call/2`."
  @spec next_call(Cursor.t(), term()) :: Cursor.move()
  defdelegate next_call(cursor, target), to: Cursor

  @doc "See `ElixirScope.Query.Cursor.prev_call/2`."
  @spec prev_call(Cursor.t(), term()) :: Cursor.move()
  defdelegate prev_call(cursor, target), to: Cursor

  # ---------------------------------------------------------------- logpoints

  @doc """
  Evaluates `fun` over every recorded hit of a function, in time order, as if a
  print had been there while it ran — no recompiling, no re-running:

      require ElixirScope.Query
      ElixirScope.Query.logpoint(MyMod.fun/2, fn hit -> {hit.args, hit.locals[:total], hit.return} end)

  A macro so that `MyMod.fun/2` can be written as is (the module need not be
  loaded: recordings open without the recorded code); it expands to
  `run_logpoint/3`, which takes `{m, f, a}`, `{m, f}`, `&M.f/a` or `"M.f/a"`.
  """
  defmacro logpoint(target, fun, opts \\ []) do
    quote do
      ElixirScope.Query.run_logpoint(unquote(target_ast(target)), unquote(fun), unquote(opts))
    end
  end

  @doc false
  @spec target_ast(Macro.t()) :: Macro.t()
  def target_ast({:/, _, [{{:., _, [mod, fun]}, _, []}, arity]}) when is_atom(fun) and is_integer(arity),
    do: quote(do: {unquote(mod), unquote(fun), unquote(arity)})

  def target_ast({{:., _, [mod, fun]}, meta, []}) when is_atom(fun) do
    if meta[:no_parens], do: quote(do: {unquote(mod), unquote(fun)}), else: {{:., [], [mod, fun]}, meta, []}
  end

  def target_ast(other), do: other

  @doc "What `logpoint/3` runs: see `ElixirScope.Query.Logpoint.run/3`."
  @spec run_logpoint(term(), (map() -> term()), keyword()) :: [map()] | error()
  defdelegate run_logpoint(target, fun, opts \\ []), to: ElixirScope.Query.Logpoint, as: :run

  @doc "The hit map of one call: see `ElixirScope.Query.Logpoint.hit/2`."
  @spec hit(Event.t(), keyword()) :: map()
  defdelegate hit(call, opts \\ []), to: ElixirScope.Query.Logpoint

  @doc "Turns a function reference into filters: see `ElixirScope.Query.Logpoint.target_filter/1`."
  @spec target_filter(term()) :: {:ok, keyword()} | error()
  defdelegate target_filter(target), to: ElixirScope.Query.Logpoint
end
