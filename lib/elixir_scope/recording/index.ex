defmodule ElixirScope.Recording.Index do
  @moduledoc """
  The in-memory store behind a loaded recording: an ordered ETS table of
  events by id and an ordered ETS index whose keys are
  `{:p, pid, id}`, `{:pk, pid, kind, id}`, `{:c, call_id, id}`,
  `{:f, module, function, id}` and `{:r, correlation_id, id}`. A query walks
  the most selective index range (as the native store does) and checks the
  remaining filters on each event; queries by kind or time alone walk the
  events in id order. Loading inserts chunks from several processes at once
  (the tables have write concurrency). It answers the same filters as
  `ElixirScope.Storage.DataAccess.get_events/1`.

  The tables belong to a small owner process so that they outlive the process
  that loaded them (an IEx evaluator, a test); `ElixirScope.Recording.close/1`
  stops it.
  """

  alias ElixirScope.{Event, Recording}

  @type tables :: %{events: :ets.tid(), index: :ets.tid(), owner: pid()}

  @doc "Creates empty tables owned by a new owner process."
  @spec new() :: tables()
  def new do
    parent = self()
    ref = make_ref()

    owner =
      spawn(fn ->
        events = :ets.new(:elixir_scope_recording, [:ordered_set, :public, read_concurrency: true, write_concurrency: true])
        index = :ets.new(:elixir_scope_recording_index, [:ordered_set, :public, read_concurrency: true, write_concurrency: true])
        send(parent, {ref, events, index})

        receive do
          :close -> :ok
        end
      end)

    receive do
      {^ref, events, index} -> %{events: events, index: index, owner: owner}
    end
  end

  @doc "Stops the owner (the tables go with it)."
  @spec close(tables()) :: :ok
  def close(%{owner: owner}), do: (send(owner, :close); :ok)

  @doc "Inserts a batch of events (any order)."
  @spec insert(tables(), [Event.t()]) :: :ok
  def insert(%{events: et, index: it}, events) do
    :ets.insert(et, Enum.map(events, &{&1.id, &1}))
    :ets.insert(it, Enum.flat_map(events, &keys/1))
    :ok
  end

  defp keys(%Event{id: id} = e) do
    base = [{{:p, e.pid, id}}, {{:pk, e.pid, e.kind, id}}]
    base = if e.module, do: [{{:f, e.module, e.function, id}} | base], else: base
    base = if is_integer(e.call_id) and e.call_id > 0, do: [{{:c, e.call_id, id}} | base], else: base
    base = if e.kind == :call and e.call_id != id, do: [{{:c, id, id}} | base], else: base
    if e.correlation_id, do: [{{:r, e.correlation_id, id}} | base], else: base
  end

  @doc "Number of events."
  @spec size(tables() | Recording.t()) :: non_neg_integer()
  def size(%Recording{tables: t}), do: size(t)
  def size(%{events: et}), do: :ets.info(et, :size)

  @doc "The event with this id, or nil."
  @spec get(Recording.t(), pos_integer()) :: Event.t() | nil
  def get(%Recording{tables: %{events: et}}, id) do
    case :ets.lookup(et, id) do
      [{_, e}] -> e
      [] -> nil
    end
  end

  @doc "The distinct pids in the recording (walks the pid index, one step per pid)."
  @spec pids(Recording.t()) :: [pid()]
  def pids(%Recording{tables: %{index: it}}), do: next_pid(it, :ets.next(it, {:p, 0, 0}), [])

  defp next_pid(it, {:p, pid, _id}, acc), do: next_pid(it, :ets.next(it, {:p, pid, :infinity}), [pid | acc])
  defp next_pid(_it, _key, acc), do: Enum.reverse(acc)

  @doc "Lowest and highest id (nil when empty)."
  @spec id_range(Recording.t()) :: {pos_integer(), pos_integer()} | nil
  def id_range(%Recording{tables: %{events: et}}) do
    case :ets.first(et) do
      :"$end_of_table" -> nil
      first -> {first, :ets.last(et)}
    end
  end

  @doc "Events matching normalised store filters (a map), in `order` (default `:asc`)."
  @spec query(Recording.t(), map()) :: [Event.t()]
  def query(%Recording{tables: tables}, filters) do
    desc? = Map.get(filters, :order, :asc) == :desc
    lo = Map.get(filters, :after_id, 0)
    hi = Map.get(filters, :before_id, :infinity)

    stream =
      tables
      |> candidate_ids(filters, lo, hi, desc?)
      |> Stream.map(&:ets.lookup_element(tables.events, &1, 2))
      |> Stream.filter(&matches?(&1, filters))

    case Map.get(filters, :limit) do
      nil -> Enum.to_list(stream)
      n -> Enum.take(stream, n)
    end
  end

  # -- index choice --

  defp candidate_ids(t, %{call_id: c}, lo, hi, d), do: prefix_walk(t.index, [:c, c], lo, hi, d)
  defp candidate_ids(t, %{correlation_id: r}, lo, hi, d), do: prefix_walk(t.index, [:r, r], lo, hi, d)
  defp candidate_ids(t, %{pid: p, kinds: [k]}, lo, hi, d), do: prefix_walk(t.index, [:pk, p, k], lo, hi, d)
  defp candidate_ids(t, %{pid: p}, lo, hi, d), do: prefix_walk(t.index, [:p, p], lo, hi, d)
  defp candidate_ids(t, %{module: m, function: f}, lo, hi, d), do: prefix_walk(t.index, [:f, m, f], lo, hi, d)
  defp candidate_ids(t, _filters, lo, hi, d), do: table_walk(t.events, lo, hi, d)

  # Walks keys `{prefix..., id}` with lo < id < hi.
  defp prefix_walk(tab, prefix, lo, hi, desc?) do
    n = length(prefix)

    {start, step} =
      if desc? do
        top = if hi == :infinity, do: List.to_tuple(prefix ++ [:infinity]), else: List.to_tuple(prefix ++ [hi])
        {:ets.prev(tab, top), &:ets.prev(tab, &1)}
      else
        {:ets.next(tab, List.to_tuple(prefix ++ [lo])), &:ets.next(tab, &1)}
      end

    Stream.unfold(start, fn key ->
      with true <- is_tuple(key) and tuple_size(key) == n + 1 and prefix?(key, prefix, 0),
           id = elem(key, n),
           true <- id > lo and (hi == :infinity or id < hi) do
        {id, step.(key)}
      else
        _ -> nil
      end
    end)
  end

  defp prefix?(_key, [], _i), do: true
  defp prefix?(key, [p | rest], i), do: :erlang.element(i + 1, key) === p and prefix?(key, rest, i + 1)

  defp table_walk(tab, lo, hi, desc?) do
    {start, step} =
      if desc? do
        {if(hi == :infinity, do: :ets.last(tab), else: :ets.prev(tab, hi)), &:ets.prev(tab, &1)}
      else
        {:ets.next(tab, lo), &:ets.next(tab, &1)}
      end

    Stream.unfold(start, fn
      :"$end_of_table" -> nil
      id when id > lo and (hi == :infinity or id < hi) -> {id, step.(id)}
      _ -> nil
    end)
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
