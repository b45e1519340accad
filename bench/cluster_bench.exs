defmodule ElixirScope.Bench.Cluster do
  @moduledoc false
  # A cluster recording (make bench): the bank of examples/cluster/bank.ex over three :peer nodes
  # on this machine, about 200,000 events on each; a cross-node query that fetches 1,000 events
  # (cold: the merged snapshot is made; warm: it is reused), the snapshot itself, and the
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

    {cold_us, [_ | _] = page} = :timer.tc(fn -> Query.events(nodes: :all, kind: :send, limit: 1_000) end)
    warm_ns = once_ns(fn -> [_ | _] = Query.events(nodes: :all, kind: :send, limit: 1_000) end, 9)
    {snap_us, {:ok, rec}} = :timer.tc(fn -> Cluster.snapshot() end)
    merged = Recording.stats(rec).events
    Recording.close(rec)

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
      "cluster_query_1000_warm_ns" => warm_ns,
      "cluster_snapshot_ns" => snap_us * 1000,
      "cluster_clock_offset_error_ns" => err_ns,
      "cluster_clock_error_bound_ns" => bound_ns
    }

    rows = [
      {"cluster_query_1000_cold_ns (3 nodes × ~#{fmt(div(merged, 3))} events, #{length(page)} sends fetched)", cold_us * 1000, "",
       "fetch every node over :erpc, merge causally, index, then query"},
      {"cluster_query_1000_warm_ns (same query, merged snapshot reused)", warm_ns, "", "snapshot_ttl"},
      {"cluster_snapshot_ns (#{fmt(merged)} events merged)", snap_us * 1000, "", "Cluster.snapshot/1"},
      {"cluster_clock_offset_error_ns (median |offset|, true offset 0)", err_ns, "", "max #{fmt(max_err_ns)} ns over 60 estimates"},
      {"cluster_clock_error_bound_ns (median NTP bound, half the best round trip)", bound_ns, "", "8 exchanges an estimate"}
    ]

    {results, rows}
  end

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
