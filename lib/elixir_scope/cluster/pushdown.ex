defmodule ElixirScope.Cluster.Pushdown do
  @moduledoc """
  A `nodes:` event query answered without a merged snapshot: the filters run on each node over
  `:erpc` (all at once, each within the cluster's timeout), each node returns at most `limit`
  matching events in its own time order, already read on the coordinator's clock (its offset,
  and the causal corrections the latest snapshot of the same nodes found —
  `ElixirScope.Cluster.Snapshot`); the coordinator merges them by that time
  (`ElixirScope.Cluster.Merge.order/3`, without pairing messages: among a part of the events,
  equal messages would pair with the wrong ones) and keeps the first (or last, `order: :desc`)
  `limit`.

  The events are those the snapshot path returns for the same filters, in the same order, with
  the same timestamps, as long as that snapshot's corrections are known; their ids — and
  `call_id`, `return_id`, `link`, `correlation_id` — are each node's own, not the merged
  numbering (which only a merge of every event can give). Causality: a receive or reply comes
  after its cause where the known corrections cover it; for events recorded since the latest
  snapshot the order is the clocks' (right while the offsets are within their error bounds).

  Pushed down: `Query.events/1` with `nodes:` and only `pid:` (a pid or `"0.1.0"`), `module:`,
  `function:`, `arity:`, `mfa:`, `kind:`/`kinds:`/`event_type:`, `since:`/`until:`/`window:`,
  `limit:`, `order:`, at least one of them narrowing. Anything else (ids, predicates, a registered
  name, a query made of several queries) reads the snapshot.
  """

  alias ElixirScope.{Cluster, Event}
  alias ElixirScope.Capture.Ingestor
  alias ElixirScope.Cluster.{Member, Merge, Snapshot}
  alias ElixirScope.Query.Filter

  @pushable [:nodes, :pid, :module, :function, :arity, :mfa, :kind, :kinds, :event_type, :since, :until, :window, :limit, :order]
  @narrowing @pushable -- [:nodes, :order]
  @coverage {__MODULE__, :coverage}

  @doc "Whether `filters` (a `Query.events/1` keyword list) can be answered by the nodes themselves."
  @spec pushable?(term()) :: boolean()
  def pushable?(filters) do
    Keyword.keyword?(filters) and filters[:nodes] != nil and Enum.all?(Keyword.keys(filters), &(&1 in @pushable)) and
      Enum.any?(Keyword.keys(filters), &(&1 in @narrowing)) and
      (not Keyword.has_key?(filters, :pid) or is_pid(filters[:pid]) or is_binary(filters[:pid]))
  end

  @doc """
  The events matching `filters` (see `pushable?/1`) across `filters[:nodes]`, or `{:error, message}`;
  `:snapshot` when only the snapshot can answer (a node that no longer answers but whose events
  were collected). What the query covered is then `coverage/0`.
  """
  @spec events(keyword()) :: [Event.t()] | {:error, String.t()} | :snapshot
  def events(filters) do
    local = filters |> Keyword.delete(:nodes) |> on_this_clock()

    with {:ok, f} <- Filter.normalize(local ++ [source: :live]),
         {:ok, plan, timeout} <- Cluster.plan(filters[:nodes]),
         false <- Enum.any?(plan.missing, fn {n, _} -> match?({_, [_ | _]}, plan.collected[n]) end) do
      bounds = {f.store[:since], f.store[:until]}
      asked = if is_pid(f.store[:pid]), do: Enum.filter(plan.nodes, &(&1 == node(f.store[:pid]))), else: plan.nodes
      # a pid written as "0.1.0" is this node's: resolved here, not there
      rest = local |> Keyword.drop([:since, :until, :window]) |> put_resolved(:pid, f.store[:pid])
      deadline = System.monotonic_time(:millisecond) + timeout
      answering = asked -- Map.keys(plan.missing)

      answers =
        Snapshot.each_node(answering, deadline, fn n ->
          with {:ok, {:ok, bin}} <- Snapshot.call(n, Member, :select, [rest, Snapshot.offset(plan, n), Map.get(plan.shifts, n, []), bounds], deadline),
               do: {:ok, :erlang.binary_to_term(bin)}
        end)

      {by_node, missing} =
        Enum.reduce(answers, {%{}, plan.missing}, fn
          {n, {:ok, evs}}, {acc, missing} -> {Map.put(acc, n, evs), missing}
          {n, {:error, why}}, {acc, missing} -> {acc, Map.put(missing, n, why)}
          {n, {:ok, {:error, why}}}, {acc, missing} -> {acc, Map.put(missing, n, why)}
        end)

      Process.put(@coverage, %{nodes: plan.nodes, missing: missing, lost: plan.lost})
      merged(by_node, f)
    else
      true -> :snapshot
      error -> error
    end
  end

  @doc "What this process's latest pushed-down query covered: `%{nodes:, missing: %{node => why}, lost:}` (nil before any)."
  @spec coverage() :: map() | nil
  def coverage, do: Process.get(@coverage)

  defp put_resolved(filters, _key, nil), do: filters
  defp put_resolved(filters, key, value), do: Keyword.put(filters, key, value)

  # a DateTime is read on this node's clock, the one the merged events are on
  defp on_this_clock(filters) do
    Enum.map(filters, fn
      {k, %DateTime{} = dt} when k in [:since, :until] -> {k, monotonic(dt)}
      {:window, {s, u}} -> {:window, {monotonic(s), monotonic(u)}}
      other -> other
    end)
  end

  defp monotonic(%DateTime{} = dt), do: max(Ingestor.now() + (DateTime.to_unix(dt, :microsecond) - System.os_time(:microsecond)) * 1000, 0)
  defp monotonic(other), do: other

  defp merged(by_node, f) do
    # no pairing here: in a part of the events, equal messages would pair with the wrong ones
    {tagged, []} = Merge.order(by_node, %{}, false)
    events = for {_n, e} <- tagged, do: e

    case {f.order, f.limit} do
      {:asc, nil} -> events
      {:asc, limit} -> Enum.take(events, limit)
      {:desc, nil} -> Enum.reverse(events)
      {:desc, limit} -> events |> Enum.take(-limit) |> Enum.reverse()
    end
  end
end
