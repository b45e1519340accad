defmodule ElixirScope.Cluster.Member do
  @moduledoc """
  What the coordinator (`ElixirScope.Cluster`) asks of each recorded node over `:erpc`: start
  capture there, its counters, its registered names, pages of its events and the events matching a
  pushed-down query (`ElixirScope.Cluster.Pushdown`). Every function runs
  on the member node and reads only its own store; nothing here sends an event anywhere while the
  program runs — events travel only when a query or a save asks for them.
  """

  alias ElixirScope.Query
  alias ElixirScope.Query.Source
  alias ElixirScope.Storage.DataAccess

  @doc """
  Starts capture on this node with `opts` (`ElixirScope.start/1` options) unless it runs already.
  The member never starts a cluster of its own: the coordinator is the only one.
  """
  @spec start_capture(keyword()) :: :ok | {:error, term()}
  def start_capture(opts) do
    case ElixirScope.start(Keyword.put(opts, :cluster, nodes: nil)) do
      :ok -> :ok
      {:error, :already_running} -> :ok
      error -> error
    end
  end

  @doc "Which VM this is: a node of the same name started again is another incarnation."
  @spec incarnation() :: {integer(), String.t()}
  def incarnation, do: {:erlang.system_info(:creation), System.pid()}

  @doc "This node's capture counters and the id of its latest stored event (0 when none)."
  @spec info() :: %{running: boolean(), stats: map(), last_id: non_neg_integer()}
  def info do
    last =
      case ElixirScope.running?() && DataAccess.get_events(order: :desc, limit: 1) do
        [e] -> e.id
        _ -> 0
      end

    %{running: ElixirScope.running?(), stats: ElixirScope.stats(), last_id: last}
  end

  @doc "This node's registered names (`%{name => pid}`)."
  @spec names() :: %{atom() => pid()}
  def names, do: Map.new(Source.names(:live), fn {pid, name} -> {name, pid} end)

  @doc """
  Up to `limit` events with ids above `after_id`, in id order, as one compressed binary (about
  20 times smaller than the list the distribution would otherwise copy term by term).
  """
  @spec page(non_neg_integer(), pos_integer()) :: binary()
  def page(after_id, limit) do
    events =
      case DataAccess.get_events(after_id: after_id, limit: limit, order: :asc) do
        list when is_list(list) -> list
        {:error, _} -> []
      end

    :erlang.term_to_binary(events, compressed: 1)
  end

  @doc """
  The events of this node matching `filters` (`ElixirScope.Query` filters without time bounds),
  in time order (`order:` ascending or descending; ids break ties), the first `limit:` of them,
  read on the coordinator's clock: an event at `ts` here is at `ts - offset + shift` there, where
  `shift` is the causal correction of `shifts` (`[{{ts, id}, shift_ns}]` in time order) in force
  at its time. `{since, until}` (coordinator's clock, either nil) bound that time.
  `{:ok, binary}` (the events, compressed) or `{:error, message}`.
  """
  @spec select(keyword(), integer(), [{{integer(), pos_integer()}, non_neg_integer()}], {integer() | nil, integer() | nil}) ::
          {:ok, binary()} | {:error, String.t()}
  def select(filters, offset, shifts, {since, until}) do
    latest_first = Enum.reverse(shifts)
    at = fn e -> max(e.ts - offset + Enum.find_value(latest_first, 0, fn {from, s} -> if {e.ts, e.id} >= from, do: s end), 0) end
    # the store's bounds are on this clock, wide enough for every shift; the exact test follows
    widest = latest_first |> Enum.map(&elem(&1, 1)) |> Enum.max(fn -> 0 end)
    bounds = Enum.reject([since: since && since + offset - widest, until: until && until + offset], &is_nil(elem(&1, 1)))
    exact = if shifts != [] and bounds != [], do: [where: &((since == nil or at.(&1) >= since) and (until == nil or at.(&1) <= until))], else: []

    case in_time(filters ++ bounds ++ exact ++ [source: :live]) do
      events when is_list(events) -> {:ok, :erlang.term_to_binary(Enum.map(events, &%{&1 | ts: at.(&1)}), compressed: 1)}
      {:error, _} = error -> error
    end
  end

  # The store answers in id order, and an event recorded after the fact (a process exit found by
  # the lifecycle scan) has a later id than its time: the first `limit` in time are among the
  # first `limit` by id and the later ids no later in time than the last of those.
  defp in_time(filters) do
    {order, limit} = {Keyword.get(filters, :order, :asc), filters[:limit]}

    with by_id when is_list(by_id) <- Query.events(filters),
         late when is_list(late) <- recorded_late(filters, by_id, order, limit) do
      in_time = Enum.sort_by(by_id ++ late, &{&1.ts, &1.id}, order)
      if limit, do: Enum.take(in_time, limit), else: in_time
    end
  end

  defp recorded_late(filters, [_ | _] = by_id, :asc, limit) when length(by_id) == limit,
    do: Query.events(Keyword.delete(filters, :limit) ++ [after_id: List.last(by_id).id, until: Enum.max_by(by_id, & &1.ts).ts])

  defp recorded_late(filters, [_ | _] = by_id, :desc, limit) when length(by_id) == limit,
    do: Query.events(Keyword.delete(filters, :limit) ++ [before_id: List.last(by_id).id, since: Enum.min_by(by_id, & &1.ts).ts])

  defp recorded_late(_filters, _by_id, _order, _limit), do: []
end
