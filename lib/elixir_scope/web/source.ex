defmodule ElixirScope.Web.Source do
  @moduledoc """
  Where the cinema's events come from: the live store (`:live`, read through
  `ElixirScope.Storage.DataAccess`) or a fixed set of events held in memory
  (a loaded recording, or events handed over directly), indexed in ETS by id,
  by process and by time so that paging, stepping and "state at T" stay cheap
  with hundreds of thousands of events.

  `fetch/2` takes the same filters as `DataAccess.get_events/1` (`pid`,
  `module`, `function`, `arity`, `kinds`, `call_id`, `correlation_id`, `since`,
  `until`, `after_id`, `before_id`, `limit`, `order`) for both kinds of source.
  """

  import Bitwise, only: [<<<: 2]

  alias ElixirScope.Event
  alias ElixirScope.Storage.DataAccess

  @typedoc "A source: the live store, or an in-memory event set."
  @type t :: :live | {:memory, %{events: :ets.tid(), by_pid: :ets.tid(), by_ts: :ets.tid(), meta: map()}}

  @doc """
  Builds an in-memory source from `events` (any order). The ETS tables belong to
  the calling process. `meta` may carry `:title`, `:names` (`%{pid => name}`), `:file`.
  """
  @spec from_events([Event.t()], map()) :: t()
  def from_events(events, meta \\ %{}) when is_list(events) do
    events_t = :ets.new(:es_web_events, [:ordered_set, :public, read_concurrency: true])
    by_pid = :ets.new(:es_web_by_pid, [:ordered_set, :public, read_concurrency: true])
    by_ts = :ets.new(:es_web_by_ts, [:ordered_set, :public, read_concurrency: true])

    for %Event{id: id, pid: pid, ts: ts} = e <- events do
      :ets.insert(events_t, {id, e})
      :ets.insert(by_pid, {{pid, id}})
      :ets.insert(by_ts, {{ts, id}})
    end

    {:memory, %{events: events_t, by_pid: by_pid, by_ts: by_ts, meta: meta}}
  end

  @recording ElixirScope.Recording
  @query_source ElixirScope.Query.Source

  @doc """
  Loads a saved recording (`ElixirScope.Recording`) into an in-memory source:
  `meta` gets the recording's `clock`, `names` and its path as `title`.
  """
  @spec load_recording(Path.t()) :: {:ok, t()} | {:error, String.t()}
  def load_recording(path) do
    if Code.ensure_loaded?(@recording) do
      case apply(@recording, :load, [path, [default: false]]) do
        {:ok, rec} ->
          events = apply(@query_source, :events, [rec, %{}])
          meta = Map.get(rec, :meta, %{})
          names = Map.new(meta[:names] || %{}, fn {name, pid} -> {pid, name} end)
          t0 = case meta[:clock] do
            {mono0, _} -> mono0
            _ -> nil
          end

          {:ok, from_events(events, %{title: Path.basename(path), file: path, names: names, clock: meta[:clock], t0: t0})}

        {:error, _} = error ->
          error
      end
    else
      {:error, "loading recordings needs ElixirScope.Recording, which is not in this build yet"}
    end
  end

  @doc "Frees an in-memory source's tables (no-op for `:live`)."
  @spec release(t()) :: :ok
  def release(:live), do: :ok

  def release({:memory, %{events: e, by_pid: p, by_ts: t}}) do
    for tab <- [e, p, t], do: :ets.delete(tab)
    :ok
  rescue
    ArgumentError -> :ok
  end

  @doc "Metadata of the source: `%{kind: \"live\" | \"recording\", title: ..., names: %{pid => name}}`."
  @spec meta(t()) :: map()
  def meta(:live), do: %{kind: "live", title: "live session", names: %{}}
  def meta({:memory, %{meta: meta}}), do: Map.merge(%{kind: "recording", title: "recording", names: %{}}, meta)

  @doc "Whether new events can still appear."
  @spec live?(t()) :: boolean()
  def live?(:live), do: true
  def live?(_), do: false

  @doc "One event by id, or nil."
  @spec get(t(), pos_integer()) :: Event.t() | nil
  def get(:live, id), do: DataAccess.get_event(id)

  def get({:memory, %{events: t}}, id) do
    case :ets.lookup(t, id) do
      [{_, e}] -> e
      [] -> nil
    end
  end

  @doc "The first and last events (by id), or nil when there are none."
  @spec bounds(t()) :: {Event.t(), Event.t()} | nil
  def bounds(source) do
    case {fetch(source, limit: 1), fetch(source, limit: 1, order: :desc)} do
      {[first], [last]} -> {first, last}
      _ -> nil
    end
  end

  @doc "How many events the source holds (`nil` when unknown cheaply: the live store)."
  @spec size(t()) :: non_neg_integer() | nil
  def size(:live), do: nil
  def size({:memory, %{events: t}}), do: :ets.info(t, :size)

  @doc "Every process in the source (memory sources only; `nil` for live)."
  @spec pids(t()) :: [pid()] | nil
  def pids(:live), do: nil

  def pids({:memory, %{by_pid: t}}) do
    Stream.unfold(:ets.first(t), fn
      :"$end_of_table" -> nil
      {pid, _} -> {pid, :ets.next(t, {pid, :infinity})}
    end)
    |> Enum.to_list()
  end

  @doc "Events matching `filters` (see the module doc), in id order (or reversed for `order: :desc`)."
  @spec fetch(t(), keyword()) :: [Event.t()] | {:error, String.t()}
  def fetch(:live, filters) do
    if ElixirScope.running?(), do: DataAccess.get_events(filters), else: []
  end

  def fetch({:memory, tabs}, filters) do
    case check(filters) do
      :ok -> memory_fetch(tabs, Map.new(filters))
      error -> error
    end
  end

  @allowed [:pid, :module, :function, :arity, :kind, :kinds, :event_type, :call_id, :correlation_id, :since, :until,
            :after_id, :before_id, :limit, :order, :flush]

  defp check(filters) do
    case Enum.reject(Keyword.keys(filters), &(&1 in @allowed)) do
      [] -> :ok
      bad -> {:error, "unknown filter(s) #{inspect(bad)}"}
    end
  end

  # -- in-memory querying: walk one index in the wanted direction, filter, stop at the limit --

  defp memory_fetch(tabs, f) do
    desc? = Map.get(f, :order, :asc) == :desc
    limit = Map.get(f, :limit, :infinity)
    kinds = kinds(f)
    pred = predicate(f, kinds)
    {walker, start} = walker(tabs, f, desc?)
    stop = stop_fun(f, desc?)
    collect(walker, start, pred, stop, limit, [])
  end

  defp kinds(f) do
    case Map.get(f, :kinds) || Map.get(f, :kind) || Map.get(f, :event_type) do
      nil -> nil
      k when is_atom(k) -> [k]
      l when is_list(l) -> l
    end
  end

  defp predicate(f, kinds) do
    checks =
      [
        kinds && fn e -> e.kind in kinds end,
        f[:module] && fn e -> e.module == f.module end,
        f[:function] && fn e -> e.function == f.function end,
        f[:arity] && fn e -> e.arity == f.arity end,
        f[:call_id] && fn e -> e.call_id == f.call_id end,
        f[:correlation_id] && fn e -> e.correlation_id == f.correlation_id or (e.kind == :send and e.id == f.correlation_id) end,
        f[:since] && fn e -> e.ts >= f.since end,
        f[:until] && fn e -> e.ts <= f.until end
      ]
      |> Enum.filter(& &1)

    fn e -> Enum.all?(checks, & &1.(e)) end
  end

  # Events are appended in id order, and per process in ts order; globally ts follows id
  # closely, so a time bound is used to pick a start point and to stop early.
  defp stop_fun(f, false), do: if(f[:until], do: &(&1.ts > f.until), else: fn _ -> false end)
  defp stop_fun(f, true), do: if(f[:since], do: &(&1.ts < f.since), else: fn _ -> false end)

  defp walker(%{events: et, by_pid: pt}, %{pid: pid} = f, desc?) do
    lookup = fn {_, id} -> lookup(et, id) end
    lo = max(Map.get(f, :after_id, 0), start_id(f, :since) - 1)
    hi = min(Map.get(f, :before_id, :infinity) |> inf(), start_id(f, :until) |> inf())

    if desc? do
      {fn k -> step(pt, :prev, k, lookup, &(elem(&1, 0) == pid and elem(&1, 1) > lo)) end, {pid, hi}}
    else
      {fn k -> step(pt, :next, k, lookup, &(elem(&1, 0) == pid and elem(&1, 1) < hi)) end, {pid, lo}}
    end
  end

  defp walker(%{events: et} = tabs, f, desc?) do
    lookup = fn id -> lookup(et, id) end

    if desc? do
      hi = min(Map.get(f, :before_id, :infinity) |> inf(), until_start(tabs, f) |> inf())
      lo = Map.get(f, :after_id, 0)
      {fn k -> step(et, :prev, k, lookup, &(&1 > lo)) end, hi}
    else
      lo = max(Map.get(f, :after_id, 0), since_start(tabs, f))
      hi = Map.get(f, :before_id, :infinity) |> inf()
      {fn k -> step(et, :next, k, lookup, &(&1 < hi)) end, lo}
    end
  end

  defp inf(:infinity), do: 1 <<< 62
  defp inf(n), do: n

  # for per-pid walks a time bound is applied by the predicate; ids only narrow by after/before
  defp start_id(_f, :since), do: 0
  defp start_id(_f, :until), do: :infinity

  defp since_start(%{by_ts: tt}, %{since: since}) do
    case :ets.next(tt, {since, -1}) do
      {_, id} -> id - 1
      :"$end_of_table" -> 1 <<< 62
    end
  end

  defp since_start(_, _), do: 0

  defp until_start(%{by_ts: tt}, %{until: until}) do
    case :ets.prev(tt, {until, 1 <<< 62}) do
      {_, id} -> id + 1
      :"$end_of_table" -> 0
    end
  end

  defp until_start(_, _), do: :infinity

  defp step(tab, dir, key, lookup, in_range?) do
    case apply(:ets, dir, [tab, key]) do
      :"$end_of_table" -> :done
      k -> if in_range?.(k), do: {k, lookup.(k)}, else: :done
    end
  end

  defp lookup(et, id) do
    case :ets.lookup(et, id) do
      [{_, e}] -> e
      [] -> nil
    end
  end

  defp collect(_walker, _key, _pred, _stop, 0, acc), do: Enum.reverse(acc)

  defp collect(walker, key, pred, stop, limit, acc) do
    case walker.(key) do
      :done ->
        Enum.reverse(acc)

      {k, nil} ->
        collect(walker, k, pred, stop, limit, acc)

      {k, e} ->
        cond do
          stop.(e) -> Enum.reverse(acc)
          pred.(e) -> collect(walker, k, pred, stop, dec(limit), [e | acc])
          true -> collect(walker, k, pred, stop, limit, acc)
        end
    end
  end

  defp dec(:infinity), do: :infinity
  defp dec(n), do: n - 1
end
