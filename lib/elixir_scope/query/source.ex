defmodule ElixirScope.Query.Source do
  @moduledoc """
  Where queries read events from: `:live` (the running capture session, through
  `ElixirScope.Storage.DataAccess`) or a loaded `%ElixirScope.Recording{}`.
  Both answer the same filters (those of `DataAccess.get_events/1`, already
  normalised by `ElixirScope.Query.Filter`) with `%ElixirScope.Event{}` lists.

  The default source is `:live` unless one was set with `put_default/1`
  (`ElixirScope.Recording.load/2` and `mix scope.open` do that).
  """

  alias ElixirScope.{Event, Recording}
  alias ElixirScope.Capture.Session
  alias ElixirScope.Storage.{DataAccess, EventCorrelator}

  @type t :: :live | Recording.t()

  @key {__MODULE__, :default}

  @doc "The default source (`:live` unless a recording was made the default)."
  @spec default() :: t()
  def default, do: :persistent_term.get(@key, :live)

  @doc "Makes `source` the default for queries and IEx helpers."
  @spec put_default(t()) :: :ok
  def put_default(:live), do: (:persistent_term.erase(@key); :ok)
  def put_default(%Recording{} = rec), do: :persistent_term.put(@key, rec)

  @doc "Resolves the `source:` option (nil means the default)."
  @spec resolve(t() | nil) :: t()
  def resolve(nil), do: default()
  def resolve(:live), do: :live
  def resolve(%Recording{} = rec), do: rec

  @doc """
  The source that query options name: `nodes:` (a cluster's nodes, `:all` or a list: their
  merged snapshot, see `ElixirScope.Cluster.source/1`), else `source:` (nil means the default).
  A `nodes:` that cannot be served is thrown as `{:query_error, message}`.
  """
  @spec from_opts(keyword()) :: t()
  def from_opts(opts) do
    case opts[:nodes] do
      nil ->
        resolve(opts[:source])

      nodes ->
        case ElixirScope.Cluster.source(nodes) do
          {:ok, rec} -> rec
          {:error, message} -> throw({:query_error, message})
        end
    end
  end

  @doc """
  `opts` with `nodes:` replaced by the merged snapshot it names (`source:`): for work made of
  several queries whose ids must name the same events (a pushed-down query answers with each
  node's own ids). `{:ok, opts}` or `{:error, message}`.
  """
  @spec pin(keyword()) :: {:ok, keyword()} | {:error, String.t()}
  def pin(opts) do
    if opts[:nodes], do: {:ok, opts |> Keyword.delete(:nodes) |> Keyword.put(:source, from_opts(opts))}, else: {:ok, opts}
  catch
    {:query_error, message} -> {:error, message}
  end

  @doc "Events matching normalised store filters, in the requested order."
  @spec events(t(), map()) :: [Event.t()] | {:error, String.t()}
  def events(:live, filters), do: DataAccess.get_events(Map.to_list(filters))
  def events(%Recording{} = rec, filters), do: Recording.Index.query(rec, filters)

  @doc """
  The call trees of the events matching normalised store filters, one list of roots per process
  (`EventCorrelator.call_trees_by_pid/1` of `events/2`). The live store and a recording loaded
  as a native store build them from their own rows.
  """
  @spec call_trees_by_pid(t(), map()) :: %{pid() => [EventCorrelator.call_node()]} | {:error, String.t()}
  def call_trees_by_pid(:live, filters), do: DataAccess.call_trees_by_pid(Map.to_list(filters))
  def call_trees_by_pid(%Recording{store: s} = rec, filters) when s != nil, do: Recording.Native.call_trees_by_pid(rec, filters)

  def call_trees_by_pid(source, filters) do
    with evs when is_list(evs) <- events(source, filters), do: EventCorrelator.call_trees_by_pid(evs)
  end

  @doc "One event by id, or nil."
  @spec event(t(), pos_integer()) :: Event.t() | nil
  def event(:live, id), do: DataAccess.get_event(id)
  def event(%Recording{} = rec, id), do: Recording.Index.get(rec, id)

  @doc "The clock origin `{monotonic_ns, system_us}` (nil when nothing is running)."
  @spec clock(t()) :: {integer(), integer()} | nil
  def clock(:live), do: (info = Session.info()) && info.clock
  def clock(%Recording{meta: meta}), do: meta[:clock]

  @doc "Resolves a registered name to a pid (live: the registry; recording: names saved with it)."
  @spec whereis(t(), atom()) :: pid() | nil
  def whereis(:live, name), do: Process.whereis(name)
  def whereis(%Recording{meta: meta}, name), do: Map.get(meta[:names] || %{}, name)

  @doc "The registered names known for pids (`%{pid => name}`)."
  @spec names(t()) :: %{pid() => atom()}
  def names(:live) do
    for name <- Process.registered(), pid = Process.whereis(name), is_pid(pid), into: %{}, do: {pid, name}
  end

  def names(%Recording{meta: meta}), do: Map.new(meta[:names] || %{}, fn {n, p} -> {p, n} end)

  @doc "Counters: the live session's `ElixirScope.stats/0`, or a recording's."
  @spec stats(t()) :: map()
  def stats(:live), do: ElixirScope.stats()
  def stats(%Recording{} = rec), do: Recording.stats(rec)

  @doc "A short human description of the source."
  @spec describe(t()) :: String.t()
  def describe(:live), do: "live session"
  def describe(%Recording{path: path}), do: "recording #{path || "(in memory)"}"
end

defmodule ElixirScope.Query.DefaultSource do
  @moduledoc """
  `get_event/1` and `get_events/1` with `ElixirScope.Storage.DataAccess`'s
  shapes, read from the default source (`ElixirScope.Query.Source.default/0`):
  hands a loaded recording to code written against `DataAccess` (the AI
  explainer's `data_access:` option).
  """

  alias ElixirScope.{Event, Query}

  @doc "The event with this id in the default source, or nil."
  @spec get_event(pos_integer()) :: Event.t() | nil
  def get_event(id), do: Query.event(id)

  @doc "Events of the default source matching `DataAccess`-style filters."
  @spec get_events(keyword()) :: [Event.t()] | {:error, String.t()}
  def get_events(filters \\ []), do: Query.events(filters)
end
