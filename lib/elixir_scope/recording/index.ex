defmodule ElixirScope.Recording.Index do
  @moduledoc """
  The in-memory store behind a loaded recording, built for fast loading.

  Events arrive in chunks of ascending ids (the file's chunks). Each chunk's
  events are one `:persistent_term` (`{ids, events}`, two tuples in id order):
  one copy at load instead of one ETS insert per event, and reading an event
  copies nothing; an id is found by bisecting the chunks' first ids, then the
  chunk's ids. The `index` table holds, per chunk
  number `c`, one tuple of ascending ids per key:
  `{:all, c}`, `{:p, pid, c}`, `{:pk, pid, kind, c}`,
  `{:f, module, function, c}`, `{:r, correlation_id, c}`, plus
  `{:chunk, c} => {first_id, last_id, min_ts, max_ts}`, `:chunks => n` and
  `:firsts => {first id of each chunk}`.
  A call id query walks the call's process between the call and its end (a
  call's events lie there). A query picks the most selective key (as the native store does), visits
  only the chunks whose id and time ranges overlap the filters, and checks the
  remaining filters on each event. Loading builds each chunk's index
  independently, so chunks are indexed by several processes at once.

  The table and the chunks belong to a small owner process so that they outlive the process
  that loaded them (an IEx evaluator, a test); `ElixirScope.Recording.close/1`
  stops it, and it erases the chunks (a loaded recording is never changed, and
  closed once: what `:persistent_term` is made for).
  """

  alias ElixirScope.{Event, Recording}
  alias ElixirScope.Recording.Native

  @type tables :: %{events: {module(), reference()}, index: :ets.tid(), owner: pid()}

  @doc "Creates an empty store owned by a new owner process."
  @spec new() :: tables()
  def new do
    parent = self()
    ref = make_ref()
    events = {__MODULE__, make_ref()}

    owner =
      spawn(fn ->
        index = :ets.new(:elixir_scope_recording_index, [:set, :public, read_concurrency: true, write_concurrency: true])
        send(parent, {ref, index})

        receive do
          :close -> for [c] <- :ets.match(index, {{:chunk, :"$1"}, :_}), do: :persistent_term.erase({events, c})
        end
      end)

    receive do
      {^ref, index} -> %{events: events, index: index, owner: owner}
    end
  end

  @doc "Stops the owner (the chunks and the table go with it)."
  @spec close(tables()) :: :ok
  def close(%{owner: owner}), do: (send(owner, :close); :ok)

  @doc """
  Inserts chunk number `c` (1, 2, …; chunk c's ids all below chunk c+1's), its
  events in ascending id order. Call `finish/2` with the number of chunks once all are in.
  """
  @spec insert(tables(), pos_integer(), [Event.t()]) :: :ok
  def insert(_tables, _c, []), do: :ok

  def insert(%{events: key, index: it}, c, [first | _] = events) do
    # one pass from the last event, so that each key's ids come out ascending
    {ids, groups, min_ts, max_ts} = group(:lists.reverse(events), [], %{}, first.ts, first.ts)
    ids = List.to_tuple(ids)
    :persistent_term.put({key, c}, {ids, List.to_tuple(events)})
    rows = :maps.fold(fn key, ids, acc -> [{Tuple.append(key, c), List.to_tuple(ids)} | acc] end, [], groups)
    :ets.insert(it, [{{:chunk, c}, {first.id, List.last(events).id, min_ts, max_ts}}, {{:all, c}, ids} | rows])
    :ok
  end

  defp group([], ids, groups, lo, hi), do: {ids, groups, lo, hi}

  defp group([%Event{id: id, pid: p, kind: k, module: m, function: f, correlation_id: r, ts: ts} | rest], ids, groups, lo, hi) do
    groups = groups |> prepend({:p, p}, id) |> prepend({:pk, p, k}, id)
    groups = if m, do: prepend(groups, {:f, m, f}, id), else: groups
    groups = if r, do: prepend(groups, {:r, r}, id), else: groups
    group(rest, [id | ids], groups, min(lo, ts), max(hi, ts))
  end

  defp prepend(groups, key, id) do
    case groups do
      %{^key => ids} -> %{groups | key => [id | ids]}
      _ -> Map.put(groups, key, [id])
    end
  end

  @doc "Records how many chunks were inserted."
  @spec finish(tables(), non_neg_integer()) :: :ok
  def finish(%{index: it}, n) do
    firsts = for c <- 1..n//1, do: elem(chunk_info(it, c), 0)
    :ets.insert(it, [{:chunks, n}, {:firsts, List.to_tuple(firsts)}])
    :ok
  end

  @doc "Number of events."
  @spec size(tables() | Recording.t()) :: non_neg_integer()
  def size(%Recording{store: s} = rec) when s != nil, do: Native.info(rec).events
  def size(%Recording{tables: t}), do: size(t)
  def size(%{events: key, index: it}), do: Enum.sum(for c <- 1..chunk_count(it)//1, do: tuple_size(elem(chunk(key, c), 0)))

  @doc "Bytes the store takes: its index table and its chunks of events."
  @spec memory(Recording.t()) :: non_neg_integer()
  def memory(%Recording{store: s} = rec) when s != nil, do: Native.info(rec).bytes

  def memory(%Recording{tables: %{events: key, index: it}}) do
    words = :ets.info(it, :memory) + Enum.sum(for c <- 1..chunk_count(it)//1, do: :erts_debug.flat_size(chunk(key, c)))
    words * :erlang.system_info(:wordsize)
  end

  @doc "The event with this id, or nil."
  @spec get(Recording.t(), pos_integer()) :: Event.t() | nil
  def get(%Recording{store: s} = rec, id) when s != nil, do: Native.get(rec, id)
  def get(%Recording{tables: tables}, id), do: lookup(tables, id)

  defp lookup(%{events: key, index: it}, id) when is_integer(id) do
    case :ets.lookup(it, :firsts) do
      [{_, firsts}] when tuple_size(firsts) > 0 -> with c when c > 0 <- bisect(firsts, id, 0, tuple_size(firsts)), do: in_chunk(key, c, id)
      _ -> nil
    end
  end

  defp lookup(_tables, _id), do: nil

  # the event with this id in chunk `c`, or nil
  defp in_chunk(key, c, id) do
    {ids, events} = chunk(key, c)
    pos = bisect(ids, id, 0, tuple_size(ids))
    if pos > 0 and elem(ids, pos - 1) == id, do: elem(events, pos - 1)
  end

  defp chunk(key, c), do: :persistent_term.get({key, c})

  # how many elements of the ascending tuple `t` (within lo..hi) are <= x
  defp bisect(_t, _x, lo, hi) when lo >= hi, do: lo

  defp bisect(t, x, lo, hi) do
    mid = div(lo + hi, 2)
    if elem(t, mid) <= x, do: bisect(t, x, mid + 1, hi), else: bisect(t, x, lo, mid)
  end

  @doc "Lowest and highest id (nil when empty)."
  @spec id_range(Recording.t()) :: {pos_integer(), pos_integer()} | nil
  def id_range(%Recording{store: s} = rec) when s != nil do
    case Native.info(rec) do
      %{events: 0} -> nil
      %{first_id: first, last_id: last} -> {first, last}
    end
  end

  def id_range(%Recording{tables: %{index: it}}) do
    case chunk_count(it) do
      0 -> nil
      n -> {elem(chunk_info(it, 1), 0), elem(chunk_info(it, n), 1)}
    end
  end

  @doc "The distinct pids in the recording."
  @spec pids(Recording.t()) :: [pid()]
  def pids(%Recording{store: s} = rec) when s != nil, do: Enum.sort(Native.info(rec).pids)

  def pids(%Recording{tables: %{index: it}}) do
    it |> :ets.select([{{{:p, :"$1", :_}, :_}, [], [:"$1"]}]) |> Enum.uniq() |> Enum.sort()
  end

  defp chunk_count(it) do
    case :ets.lookup(it, :chunks) do
      [{_, n}] -> n
      [] -> 0
    end
  end

  defp chunk_info(it, c), do: :ets.lookup_element(it, {:chunk, c}, 2)

  @doc "Events matching normalised store filters (a map), in `order` (default `:asc`)."
  @spec query(Recording.t(), map()) :: [Event.t()] | {:error, String.t()}
  def query(%Recording{store: s} = rec, filters) when s != nil, do: Native.query(rec, filters)

  def query(%Recording{tables: tables}, filters) do
    desc? = Map.get(filters, :order, :asc) == :desc
    lo = Map.get(filters, :after_id, 0)
    hi = Map.get(filters, :before_id, :infinity)
    since = Map.get(filters, :since, 0)
    until = Map.get(filters, :until, :infinity)
    {key, lo, hi} = key_for(tables, filters, lo, hi)
    n = chunk_count(tables.index)
    chunks = if desc?, do: n..1//-1, else: 1..n//1

    wanted = fn c ->
      {first, last, min_ts, max_ts} = chunk_info(tables.index, c)
      last > lo and (hi == :infinity or first < hi) and max_ts >= since and (until == :infinity or min_ts <= until)
    end

    residual = residual(filters, key)
    keep = if residual == %{}, do: fn _ -> true end, else: &matches?(&1, residual)
    ids_of = &ids_in(tables.index, Tuple.append(key, &1), lo, hi, desc?)

    case Map.get(filters, :limit) do
      nil ->
        for c <- chunks, wanted.(c), id <- ids_of.(c), e = in_chunk(tables.events, c, id), keep.(e), do: e

      limit ->
        chunks
        |> Stream.filter(wanted)
        |> Stream.flat_map(fn c -> c |> ids_of.() |> Stream.map(&in_chunk(tables.events, c, &1)) end)
        |> Stream.filter(keep)
        |> Enum.take(limit)
    end
  end

  # the filters the chosen index does not already guarantee
  defp residual(filters, key) do
    covered =
      case (if Map.has_key?(filters, :call_id), do: :walk, else: key) do
        {:p, _} -> [:pid]
        {:pk, _, _} -> [:pid, :kinds]
        {:f, _, _} -> [:module, :function]
        {:r, _} -> [:correlation_id]
        _ -> []
      end

    Map.drop(filters, covered ++ [:after_id, :before_id, :order, :limit])
  end

  defp key_for(t, %{call_id: c} = filters, lo, hi) do
    case lookup(t, c) do
      %Event{kind: :call, pid: pid} = call ->
        end_id = if call.return_id, do: call.return_id + 1, else: :infinity
        {{:p, pid}, max(lo, c - 1), min_id(hi, end_id)}

      _ ->
        key_for(t, Map.delete(filters, :call_id), lo, hi)
    end
  end

  defp key_for(_t, %{correlation_id: r}, lo, hi), do: {{:r, r}, lo, hi}
  defp key_for(_t, %{pid: p, kinds: [k]}, lo, hi), do: {{:pk, p, k}, lo, hi}
  defp key_for(_t, %{pid: p}, lo, hi), do: {{:p, p}, lo, hi}
  defp key_for(_t, %{module: m, function: f}, lo, hi), do: {{:f, m, f}, lo, hi}
  defp key_for(_t, _filters, lo, hi), do: {{:all}, lo, hi}

  defp min_id(:infinity, b), do: b
  defp min_id(a, :infinity), do: a
  defp min_id(a, b), do: min(a, b)

  defp ids_in(it, key, lo, hi, desc?) do
    case :ets.lookup(it, key) do
      [] ->
        []

      [{_, ids}] ->
        list = Tuple.to_list(ids)
        list = if lo == 0 and hi == :infinity, do: list, else: Enum.filter(list, &(&1 > lo and (hi == :infinity or &1 < hi)))
        if desc?, do: Enum.reverse(list), else: list
    end
  end

  # -- the remaining filters, checked on each event --

  @doc false
  @spec matches?(Event.t(), map()) :: boolean()
  def matches?(e, filters) do
    Enum.all?(filters, fn
      {:pid, p} -> e.pid == p
      {:module, m} -> e.module == m
      {:function, f} -> e.function == f
      {:arity, a} -> e.arity == a
      {:kinds, ks} -> e.kind in ks
      {:call_id, c} -> e.call_id == c or (e.kind == :call and e.id == c)
      {:correlation_id, r} -> e.correlation_id == r
      {:since, s} -> e.ts >= s
      {:until, u} -> e.ts <= u
      {:after_id, a} -> e.id > a
      {:before_id, b} -> e.id < b
      _ -> true
    end)
  end
end
