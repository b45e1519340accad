defmodule ElixirScope.Web.Source do
  @moduledoc """
  Where the cinema's events come from, read through `ElixirScope.Query`: the
  live store (`:live`) or a recording (`%ElixirScope.Recording{}`: loaded from
  a file, or built from events in memory with `from_events/2`).

  `fetch/2` takes the filters of `ElixirScope.Query.events/1` (`pid`, `module`,
  `function`, `arity`, `kinds`, `call_id`, `correlation_id`, `since`, `until`,
  `after_id`, `before_id`, `limit`, `order`) for both kinds of source.
  """

  alias ElixirScope.{Event, Query, Recording}
  alias ElixirScope.Query.Source, as: QSource
  alias ElixirScope.Recording.Index

  @typedoc "A source: the live store or a recording."
  @type t :: :live | Recording.t()

  @doc """
  A recording built from `events` held in memory. `meta` may carry `:title`,
  `:names` (`%{pid => name}`) and `:clock` (`{monotonic_ns, system_us}`).
  """
  @spec from_events([Event.t()], map()) :: t()
  def from_events(events, meta \\ %{}) when is_list(events) do
    names = Map.new(Map.get(meta, :names, %{}), fn {pid, name} -> {name, pid} end)
    Recording.from_events(events, Map.merge(meta, %{names: names}))
  end

  @doc "Loads a saved recording (not made the default query source)."
  @spec load_recording(Path.t()) :: {:ok, t()} | {:error, String.t()}
  def load_recording(path), do: Recording.load(path, default: false)

  @doc "Frees a recording's tables (no-op for `:live`)."
  @spec release(t()) :: :ok
  def release(:live), do: :ok
  def release(%Recording{} = rec), do: Recording.close(rec)

  @doc "Metadata: `%{kind: \"live\" | \"recording\", title:, names: %{pid => name}, clock:}` (and `cluster:` for a cluster recording)."
  @spec meta(t()) :: map()
  def meta(:live), do: %{kind: "live", title: "live session", names: %{}, clock: QSource.clock(:live)}

  def meta(%Recording{path: path, meta: m} = rec) do
    title = m[:title] || (path && Path.basename(path)) || "recording"
    %{kind: "recording", title: to_string(title), names: QSource.names(rec), clock: m[:clock], file: path, cluster: m[:cluster]}
  end

  @doc "Whether new events can still appear."
  @spec live?(t()) :: boolean()
  def live?(:live), do: true
  def live?(_), do: false

  @doc "One event by id, or nil."
  @spec get(t(), pos_integer()) :: Event.t() | nil
  def get(source, id), do: Query.event(id, source: source)

  @doc "The first and last events (by id), or nil when there are none."
  @spec bounds(t()) :: {Event.t(), Event.t()} | nil
  def bounds(source) do
    case {fetch(source, limit: 1), fetch(source, limit: 1, order: :desc)} do
      {[first], [last]} -> {first, last}
      _ -> nil
    end
  end

  @doc "How many events the source holds (`nil` for the live store, where it is not cheap)."
  @spec size(t()) :: non_neg_integer() | nil
  def size(:live), do: nil
  def size(%Recording{} = rec), do: Index.size(rec)

  @doc "The distinct modules of a recording's first `max_events` events (`[]` for live)."
  @spec modules(t(), pos_integer()) :: [module()]
  def modules(source, max_events \\ 100_000)
  def modules(:live, _max), do: []
  def modules(%Recording{} = rec, max), do: modules(rec, 0, max, MapSet.new())

  defp modules(rec, after_id, left, acc) do
    case fetch(rec, after_id: after_id, limit: min(left, 10_000)) do
      [_ | _] = page ->
        acc = Enum.reduce(page, acc, fn e, acc -> if is_atom(e.module) and e.module != nil, do: MapSet.put(acc, e.module), else: acc end)
        left = left - length(page)
        if left > 0, do: modules(rec, List.last(page).id, left, acc), else: MapSet.to_list(acc)

      _ ->
        MapSet.to_list(acc)
    end
  end

  @doc "Every process of a recording (`nil` for live)."
  @spec pids(t()) :: [pid()] | nil
  def pids(:live), do: nil
  def pids(%Recording{} = rec), do: Index.pids(rec)

  @doc "Events matching `filters`, in id order (reversed for `order: :desc`), or `{:error, message}`."
  @spec fetch(t(), keyword()) :: [Event.t()] | {:error, String.t()}
  def fetch(:live, filters) do
    if ElixirScope.running?(), do: Query.events(filters ++ [source: :live]), else: []
  end

  def fetch(%Recording{} = rec, filters), do: Query.events(filters ++ [source: rec])
end
