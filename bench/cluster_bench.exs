defmodule ElixirScope.Bench.Cluster do
  @moduledoc false
  # A cluster recording (make bench): the bank of examples/cluster/bank.ex over three :peer nodes
  # on this machine, about 200,000 events on each; a cross-node query that fetches 1,000 events
  # with its filters pushed down to the nodes (first and repeated), the same query read from a
  # merged snapshot (cold: the snapshot is made; warm: it is reused), the snapshot itself, and the
  # clock-offset error (the nodes share this machine's monotonic clock, so the true offset is 0
  # and what is estimated is the error).
  import ElixirScope.Bench
  import Bitwise
  alias ElixirScope.{Cluster, Query, Recording}
  alias ElixirScope.Cluster.{Clock, Local}

  @per_node 200_000
  @bank Path.expand("../examples/cluster/bank.ex", __DIR__)

  def run do
    :ok = Local.ensure_distributed(:es_bench)
    level = Logger.level()
    Logger.configure(level: :error)
    modules = Local.compile_instrumented(@bank, :full)
    nodes = for role <- [:ledger, :risk, :caller], into: %{}, do: {role, elem(Local.start_peer(:"bench_#{role}"), 2)}
    :ok = Local.load(Map.values(nodes), modules)
    {:ok, _} = Cluster.start(Map.values(nodes), start_options: [capture: [buffer_size: 1 <<< 18, fuse: [enabled: false]]], timeout: 60_000,
                             clock_interval: 600_000, snapshot_ttl: 600_000)
    fill(nodes)
    counts = for n <- Map.values(nodes), do: :erpc.call(n, ElixirScope, :stats, []).stored
    IO.puts("cluster bench: #{Enum.map_join(counts, " + ", &fmt/1)} events stored on 3 nodes")

    query = [nodes: :all, kind: :send, limit: 1_000]
    # the main row: the filters run on each node, no snapshot (none was taken yet)
    {cold_us, [_ | _] = page} = :timer.tc(fn -> Query.events(query) end)
    repeat_ns = once_ns(fn -> [_ | _] = Query.events(query) end, 9)

    # the snapshot path, for comparison: every event fetched, merged and indexed, then queried
    # (a where: predicate cannot run on the nodes, so that query reads the snapshot)
    {snap_us, {:ok, rec}} = :timer.tc(fn -> Cluster.source(:all) end)
    snapshot_query = query ++ [where: fn _ -> true end]
    {first_us, from_snapshot} = :timer.tc(fn -> Query.events(snapshot_query) end)
    warm_ns = once_ns(fn -> [_ | _] = Query.events(snapshot_query) end, 9)
    merged = Recording.stats(rec).events
    # the two paths give the same events (ids aside: the pushed-down ones are each node's own)
    same? = content(page) == content(from_snapshot)
    {page_nodes, shown} = {page |> Enum.map(&node(&1.pid)) |> Enum.uniq() |> length(), length(page)}

    # 20 estimates per node, 8 exchanges each: |offset| is the error (the true offset is 0)
    estimates = for n <- Map.values(nodes), _ <- 1..20, do: elem(Clock.estimate(n, 8, 1_000), 1)
    err_ns = median(for e <- estimates, do: abs(e.offset_ns))
    max_err_ns = Enum.max(for e <- estimates, do: abs(e.offset_ns))
    bound_ns = median(for e <- estimates, do: e.error_ns)

    Cluster.stop()
    for n <- Map.values(nodes), do: :erpc.call(n, ElixirScope, :stop, [])
    Logger.configure(level: level)

    results = %{
      "cluster_query_1000_cold_ns" => cold_us * 1000,
      "cluster_query_1000_repeat_ns" => repeat_ns,
      "cluster_query_1000_snapshot_cold_ns" => (snap_us + first_us) * 1000,
      "cluster_query_1000_snapshot_warm_ns" => warm_ns,
      "cluster_snapshot_ns" => snap_us * 1000,
      "cluster_clock_offset_error_ns" => err_ns,
      "cluster_clock_error_bound_ns" => bound_ns
    }

    rows = [
      {"cluster_query_1000_cold_ns (3 nodes × ~#{fmt(div(merged, 3))} events, #{shown} sends from #{page_nodes} nodes, first query)", cold_us * 1000, "",
       "filters pushed down: each node answers, the coordinator merges"},
      {"cluster_query_1000_repeat_ns (the same query again, pushed down)", repeat_ns, "", "nothing cached"},
      {"cluster_query_1000_snapshot_cold_ns (same query read from a snapshot taken for it)", (snap_us + first_us) * 1000, "",
       "same events: #{same?}"},
      {"cluster_query_1000_snapshot_warm_ns (same query, merged snapshot reused)", warm_ns, "", "snapshot_ttl"},
      {"cluster_snapshot_ns (#{fmt(merged)} events fetched, merged, indexed)", snap_us * 1000, "", "Cluster.snapshot/1, Recording.save(nodes:)"},
      {"cluster_clock_offset_error_ns (median |offset|, true offset 0)", err_ns, "", "max #{fmt(max_err_ns)} ns over 60 estimates"},
      {"cluster_clock_error_bound_ns (median NTP bound, half the best round trip)", bound_ns, "", "8 exchanges an estimate"}
    ]

    {results, rows}
  end

  defp content(events), do: Enum.map(events, &Map.drop(&1, [:id, :call_id, :link, :correlation_id, :return_id]))

  # the caller scores and posts amounts: each round trip records events on the three nodes
  defp fill(%{ledger: l, risk: r, caller: c}) do
    {:ok, _} = :erpc.call(l, ClusterDemo.Ledger, :start, [])
    risk = :erpc.call(r, ClusterDemo.Risk, :start, [])
    # about 8 events on the caller node per round (9 on the ledger's, 8 on the risk scorer's)
    rounds = div(@per_node, 8)
    _ = :erpc.call(c, ClusterDemo.Caller, :run, [l, risk, List.duplicate(10, rounds)], :infinity)
    :ok
  end
end
