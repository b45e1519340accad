defmodule ElixirScope.Cluster.Snapshot do
  @moduledoc """
  A cluster's events as one in-memory `ElixirScope.Recording`: every node's events are fetched
  in pages over `:erpc` (all nodes at once, each page within the timeout), merged by
  `ElixirScope.Cluster.Merge`, and given a header whose `cluster:` map says which nodes it
  holds, their clock offsets and error bounds, the causal corrections, and which nodes are
  missing and why (down, slow, ElixirScope absent) — a partial result is never silent, and a
  node that does not answer costs at most the timeout, never a hang.
  """

  alias ElixirScope.{Event, Recording}
  alias ElixirScope.Capture.Ingestor
  alias ElixirScope.Cluster.{Clock, Coordinator, Member, Merge}

  @page 50_000

  @typedoc """
  What the snapshot is made from: the nodes to read, their clock estimates, events already
  collected from each (`{last_id, events}`, used when the node no longer answers), known losses.
  """
  @type plan :: %{
          nodes: [node()],
          clocks: %{node() => Clock.estimate()},
          collected: %{node() => {non_neg_integer(), [Event.t()]}},
          lost: %{node() => non_neg_integer()},
          missing: %{node() => String.t()},
          skew: %{node() => integer()},
          shifts: shifts()
        }

  @typedoc """
  The causal corrections a merge of these nodes found, on each node's own events: `[{{ts, id},
  shift_ns}]` in time order — from that event on (in time order), the node's events are
  `shift_ns` later than its clock (and offset) say. What `ElixirScope.Cluster.Pushdown` applies
  without merging again.
  """
  @type shifts :: %{node() => [{{integer(), pos_integer()}, pos_integer()}]}

  @doc "Fetches, merges and indexes: a recording (in memory) whose `meta.cluster` describes it. `timeout` in ms."
  @spec take(plan(), timeout()) :: Recording.t()
  def take(plan, timeout) do
    deadline = System.monotonic_time(:millisecond) + timeout
    answering = plan.nodes -- Map.keys(plan.missing)
    fetched = each_node(answering, deadline, &fetch(&1, elem(Map.get(plan.collected, &1, {0, []}), 0), deadline, []))

    # what was collected before a node stopped answering stays; the rest is missing
    kept = Map.new(plan.nodes, fn n -> {n, elem(Map.get(plan.collected, n, {0, []}), 1)} end)

    {events, missing} =
      Enum.reduce(answering, {kept, plan.missing}, fn n, {evs, missing} ->
        case Map.fetch!(fetched, n) do
          {:ok, new} -> {Map.update!(evs, n, &(&1 ++ new)), missing}
          {:error, why} -> {evs, Map.put(missing, n, why)}
        end
      end)

    missing = Map.new(missing, fn {n, why} -> {n, why <> after_collected(Map.get(plan.collected, n, {0, []}))} end)
    offsets = Map.new(plan.nodes, &{&1, offset(plan, &1)})
    {merged, corrections} = Merge.merge(events, offsets)
    remember_shifts(plan.nodes, corrections)

    cluster = %{
      coordinator: node(),
      nodes: plan.nodes,
      offsets: Map.new(plan.clocks, fn {n, c} -> {n, %{offset_ns: offset(plan, n), error_ns: c.error_ns}} end),
      missing: missing,
      lost: plan.lost,
      corrections: Enum.map(corrections, &Map.delete(&1, :local))
    }

    Recording.from_events(merged, %{node: node(), clock: clock(merged), names: names(answering, deadline), cluster: cluster})
  end

  # the coordinator keeps them for the pushed-down queries over the same nodes
  defp remember_shifts(nodes, corrections) do
    shifts = Enum.group_by(corrections, & &1.node, &{&1.local, &1.shift_ns})
    if Process.whereis(Coordinator), do: GenServer.cast(Coordinator, {:shifts, nodes, shifts})
  end

  @doc "`node`'s clock offset in `plan`: the estimate plus the test hook's injected skew (a wrong estimate, on purpose)."
  @spec offset(plan(), node()) :: integer()
  def offset(plan, n), do: Map.get(Map.get(plan.clocks, n, %{}), :offset_ns, 0) + Map.get(plan.skew, n, 0)

  defp after_collected({0, _}), do: ""
  defp after_collected({last, _}), do: "; its events up to its id #{last} were collected before and are kept"

  # the origin of relative times: the first merged event, with the wall time it had on this node's clock
  defp clock([]), do: {Ingestor.now(), System.os_time(:microsecond)}

  defp clock([first | _]) do
    {now, wall} = {Ingestor.now(), System.os_time(:microsecond)}
    {first.ts, wall - div(now - first.ts, 1000)}
  end

  defp names(nodes, deadline) do
    nodes
    |> Enum.reverse()
    |> Enum.reduce(%{}, fn n, acc ->
      case call(n, Member, :names, [], deadline) do
        {:ok, names} when is_map(names) -> Map.merge(acc, names)
        _ -> acc
      end
    end)
  end

  @doc """
  Runs `fun.(node)` for every node at once, each within `deadline` (monotonic ms):
  `%{node => {:ok, value} | {:error, why}}` (`fun` answers so too); a node still running at the
  deadline is given up.
  """
  @spec each_node([node()], integer(), (node() -> {:ok, term()} | {:error, String.t()})) :: %{node() => {:ok, term()} | {:error, String.t()}}
  def each_node(nodes, deadline, fun) do
    tasks = for n <- nodes, do: {n, Task.async(fn -> fun.(n) end)}
    wait = max(deadline - System.monotonic_time(:millisecond), 0) + 100

    Map.new(tasks, fn {n, task} ->
      case Task.yield(task, wait) || Task.shutdown(task, :brutal_kill) do
        {:ok, result} -> {n, result}
        _ -> {n, {:error, "no answer within the timeout"}}
      end
    end)
  end

  @doc """
  Events of `node` with ids above `after_id`, page by page until none is newer, each page within
  what is left of `deadline` (monotonic ms). `{:ok, events}` or `{:error, why}`.
  """
  @spec fetch(node(), non_neg_integer(), integer(), [[Event.t()]]) :: {:ok, [Event.t()]} | {:error, String.t()}
  def fetch(node, after_id, deadline, acc) do
    case call(node, Member, :page, [after_id, @page], deadline) do
      {:ok, bin} when is_binary(bin) ->
        case :erlang.binary_to_term(bin) do
          [] -> {:ok, acc |> Enum.reverse() |> Enum.concat()}
          page -> fetch(node, List.last(page).id, deadline, [page | acc])
        end

      {:error, why} ->
        {:error, why}
    end
  end

  @doc "`:erpc.call` within what is left of `deadline` (monotonic ms): `{:ok, value}` or `{:error, why}` (never raises)."
  @spec call(node(), module(), atom(), list(), integer()) :: {:ok, term()} | {:error, String.t()}
  def call(node, m, f, a, deadline) do
    left = deadline - System.monotonic_time(:millisecond)

    if left <= 0,
      do: {:error, "no answer within the timeout"},
      else: {:ok, :erpc.call(node, m, f, a, left)}
  catch
    :error, {:erpc, :timeout} -> {:error, "no answer within the timeout"}
    :error, {:erpc, :noconnection} -> {:error, "not connected (down or cut off)"}
    :error, {:exception, :undef, _} -> {:error, "ElixirScope is not loaded there"}
    kind, reason -> {:error, "#{kind}: #{inspect(reason, limit: 5)}"}
  end
end
