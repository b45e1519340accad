defmodule ElixirScope.ClusterTest do
  @moduledoc false
  # Three local nodes started with :peer (loopback only), the instrumented scenario of
  # examples/cluster/bank.ex (the cluster demo's bank) loaded on each, recorded as one cluster.
  use ExUnit.Case, async: false

  alias ElixirScope.{Cluster, Event, Query, Recording}
  alias ElixirScope.Cluster.Local
  alias ElixirScope.Query.Correlation

  @moduletag timeout: 120_000
  @scenario Path.expand("../../examples/cluster/bank.ex", __DIR__)

  setup_all do
    # the test VM becomes a distributed node for these tests only
    if node() == :nonode@nohost, do: on_exit(fn -> :net_kernel.stop() end)
    :ok = Local.ensure_distributed(:es_cluster_test)
    modules = ExUnit.CaptureIO.capture_io(:stderr, fn -> send(self(), Local.compile_instrumented(@scenario, :full)) end) && receive(do: (m -> m))
    %{modules: modules}
  end

  setup %{modules: modules} do
    Cluster.stop()
    suffix = System.unique_integer([:positive])
    peers = for role <- [:ledger, :risk, :caller], into: %{}, do: {role, start_peer(:"#{role}_#{suffix}")}
    nodes = Map.new(peers, fn {role, {_peer, node}} -> {role, node} end)
    :ok = Local.load(Map.values(nodes), modules)
    on_exit(fn -> Cluster.stop() end)
    %{nodes: nodes, peers: peers}
  end

  defp start_peer(name) do
    {:ok, peer, node} = Local.start_peer(name)
    {peer, node}
  end

  # the scenario: the caller scores amounts on the risk node and posts them to the ledger node
  defp run(%{ledger: l, risk: r, caller: c}, amounts) do
    {:ok, _} = :erpc.call(l, ClusterDemo.Ledger, :start, [])
    risk = :erpc.call(r, ClusterDemo.Risk, :start, [])
    balances = :erpc.call(c, ClusterDemo.Caller, :run, [l, risk, amounts])
    audited = :erpc.call(c, ClusterDemo.Caller, :audit, [l])
    {balances, audited}
  end

  defp start_cluster(nodes) do
    {:ok, status} = Cluster.start(Map.values(nodes), clock_interval: 60_000)
    for n <- Map.values(nodes), do: assert(%{state: :recording} = status[n])
    status
  end

  defp wait_until(fun, tries \\ 100) do
    cond do
      fun.() -> true
      tries == 0 -> false
      true -> (Process.sleep(20); wait_until(fun, tries - 1))
    end
  end

  defp cross_node_sends(events), do: Enum.filter(events, &(&1.kind == :send and remote?(&1)))

  defp remote?(%Event{pid: pid, payload: {dest, _}}), do: dest_node(dest) not in [nil, node(pid)]
  defp dest_node(p) when is_pid(p), do: node(p)
  defp dest_node({name, n}) when is_atom(name) and is_atom(n), do: n
  defp dest_node(_), do: nil

  test "every cross-node send is paired with its receive, and the reply with the caller", %{nodes: nodes} do
    start_cluster(nodes)
    assert {[3, 6, 9], 1} = run(nodes, [20, 20, 20])
    {:ok, rec} = Cluster.snapshot()
    on_exit(fn -> Recording.close(rec) end)
    events = Query.events(source: rec)
    assert rec.meta.cluster.missing == %{}
    assert Enum.sort(rec.meta.cluster.nodes) == Enum.sort(Map.values(nodes))
    assert events |> Enum.map(&node(&1.pid)) |> Enum.uniq() |> Enum.sort() == Enum.sort(Map.values(nodes))

    links = Correlation.links(events)
    sends = cross_node_sends(events)
    # 3 scores, 3 calls to {:cluster_ledger, node}, 1 cast, 3 scored answers, 1 audited answer
    assert length(sends) == 11

    for s <- sends do
      assert [l] = Enum.filter(links, &(&1.from.id == s.id)), "send #{inspect(s.payload)} is not paired"
      assert node(l.to.pid) == dest_node(elem(s.payload, 0))
      assert l.to.id > s.id and l.to.ts > s.ts
    end

    # each GenServer.call's reply goes back to the caller's node, after the server's return
    replies = Enum.filter(links, &(&1.type == :reply))
    assert length(replies) == 3
    for r <- replies, do: assert(node(r.from.pid) == nodes.ledger and node(r.to.pid) == nodes.caller and r.to.id > r.from.id)

    # OTLP: each handle_call on the ledger node is a child of the caller node's span that called it
    spans = ElixirScope.Export.OTLP.build(events).resourceSpans |> hd() |> Map.fetch!(:scopeSpans) |> hd() |> Map.fetch!(:spans)
    by_id = Map.new(spans, &{&1.spanId, &1})
    posts = Enum.filter(spans, &(&1.name == "ClusterDemo.Ledger.handle_call/3"))
    assert length(posts) == 3

    for post <- posts do
      assert attr(post, "elixir.node") == Atom.to_string(nodes.ledger)
      assert attr(Map.fetch!(by_id, post.parentSpanId), "elixir.node") == Atom.to_string(nodes.caller)
    end

    # the cinema's pages say each lane's node
    page = ElixirScope.Web.Data.events_page(rec, limit: 1_000)
    assert page.nodes |> Map.values() |> Enum.uniq() |> Enum.sort() == nodes |> Map.values() |> Enum.map(&Atom.to_string/1) |> Enum.sort()
  end

  defp attr(span, key) do
    Enum.find_value(span.attributes, fn
      %{key: ^key, value: %{stringValue: v}} -> v
      _ -> nil
    end)
  end

  test "the merged order is causal when a node's clock estimate is off by ±50 ms, and the correction shows",
       %{nodes: nodes} do
    start_cluster(nodes)
    assert {[2, 4, 6, 8], 1} = run(nodes, [10, 10, 10, 10])

    for {skews, label} <- [{%{ledger: 50_000_000, risk: -50_000_000}, "+50/-50"}, {%{ledger: -50_000_000, risk: 50_000_000}, "-50/+50"}] do
      for {role, ns} <- skews, do: Cluster.put_skew(nodes[role], ns)
      {:ok, rec} = Cluster.snapshot()
      events = Query.events(source: rec)
      links = Correlation.links(events) |> Enum.filter(&(node(&1.from.pid) != node(&1.to.pid)))
      assert length(links) >= 4 * 3 + 1, label

      for l <- links do
        assert l.from.id < l.to.id and l.from.ts < l.to.ts, "#{label}: #{l.type} #{inspect(l.from.payload)} ordered after its effect"
      end

      assert [_ | _] = rec.meta.cluster.corrections, label
      assert Enum.any?(Cluster.summary(rec), &(&1 =~ "causal correction: ")), label
      # ids are the merged order, timestamps never go back within a node after a correction
      assert Enum.map(events, & &1.id) == Enum.to_list(1..length(events))
      Recording.close(rec)
    end
  end

  # what a pushed-down query must give as the snapshot does: every field but the ids (and the
  # references to ids), which are each node's own there
  defp content(events), do: Enum.map(events, &Map.drop(Map.from_struct(&1), [:id, :call_id, :link, :correlation_id, :return_id]))

  test "filters pushed down to the nodes give the snapshot's events, order and clock-corrected times", %{nodes: nodes} do
    start_cluster(nodes)
    assert {[3, 6, 9], 1} = run(nodes, [20, 20, 20])

    # the second round with the estimates off by ±50 ms: the snapshot's causal corrections apply
    for skews <- [%{}, %{ledger: 50_000_000, risk: -50_000_000}] do
      for {role, ns} <- skews, do: Cluster.put_skew(nodes[role], ns)
      {:ok, rec} = Cluster.snapshot()
      on_exit(fn -> Recording.close(rec) end)
      assert skews == %{} or rec.meta.cluster.corrections != []
      all = Query.events(source: rec)
      {mid, late} = {Enum.at(all, div(length(all), 3)).ts, Enum.at(all, div(2 * length(all), 3)).ts}
      ledger = Enum.find(all, &(node(&1.pid) == nodes.ledger and &1.module == ClusterDemo.Ledger)).pid

      queries = [
        [kind: :send],
        [kind: :send, limit: 5],
        [kind: [:send, :receive], order: :desc, limit: 7],
        [module: ClusterDemo.Ledger, kind: :call],
        [mfa: {ClusterDemo.Ledger, :handle_call, 3}],
        [function: :handle_call, limit: 4],
        [pid: ledger, limit: 6],
        [since: mid, until: late],
        [window: {mid, nil}, kind: :receive, limit: 3],
        [until: mid, order: :desc, limit: 9]
      ]

      for q <- queries do
        Process.delete({ElixirScope.Cluster.Pushdown, :coverage})
        pushed = Query.events(q ++ [nodes: :all])
        assert %{missing: missing} = Cluster.coverage(:query), "#{inspect(q)} was not pushed down"
        assert missing == %{}
        assert [_ | _] = expected = Query.events(q ++ [source: rec])
        assert content(pushed) == content(expected), "#{inspect(skews)} #{inspect(q)}\n#{inspect(Enum.map(pushed, &{node(&1.pid), &1.id, &1.kind, &1.ts}))}\n#{inspect(Enum.map(expected, &{node(&1.pid), &1.id, &1.kind, &1.ts}))}"
      end

      # the ids are the nodes' own
      [e | _] = Query.events(nodes: :all, pid: ledger, kind: :call, limit: 1)
      assert %Event{payload: payload, kind: :call} = :erpc.call(nodes.ledger, ElixirScope.Storage.DataAccess, :get_event, [e.id])
      assert payload == e.payload
    end
  end

  test "a node killed mid-run: the others' recording is whole, its loss counted", %{nodes: nodes} do
    start_cluster(nodes)
    assert {[3, 6], 1} = run(nodes, [20, 20])
    :ok = Cluster.sync_clocks()
    {:ok, before} = Cluster.snapshot()
    per_node = fn rec -> Query.events(source: rec) |> Enum.frequencies_by(&node(&1.pid)) end
    counts = per_node.(before)
    Recording.close(before)

    ref = Node.monitor(nodes.risk, true)
    :erpc.cast(nodes.risk, :erlang, :halt, [137])
    assert_receive {:nodedown, _}, 10_000
    Node.monitor(nodes.risk, false)
    _ = ref
    assert wait_until(fn -> match?(%{state: :down}, Cluster.status()[nodes.risk]) end)
    # the others go on recording
    assert 1 == :erpc.call(nodes.caller, ClusterDemo.Caller, :audit, [nodes.ledger])

    {:ok, rec} = Cluster.snapshot(timeout: 2_000)
    after_counts = per_node.(rec)
    assert after_counts[nodes.ledger] > counts[nodes.ledger]
    assert after_counts[nodes.caller] > counts[nodes.caller]
    refute Map.has_key?(after_counts, nodes.risk)
    assert rec.meta.cluster.missing[nodes.risk] =~ "disconnected (down or cut off)"
    assert rec.meta.cluster.lost[nodes.risk] == counts[nodes.risk]
    assert %{state: :down, lost: lost} = Cluster.status()[nodes.risk]
    assert lost == counts[nodes.risk]
    # a query the nodes answer themselves: the others' events, the dead node named
    sends = Query.events(nodes: :all, kind: :send)
    assert sends |> Enum.map(&node(&1.pid)) |> Enum.uniq() |> Enum.sort() == Enum.sort([nodes.ledger, nodes.caller])
    assert Cluster.coverage(:query).missing[nodes.risk] =~ "disconnected (down or cut off)"
    Recording.close(rec)
  end

  test "a netsplit during a query: the reachable part, marked; healed, the node records on", %{nodes: nodes} do
    {:ok, peer, split} = Local.start_peer(:"split_#{System.unique_integer([:positive])}", control: :tcp)
    {:ok, _} = Cluster.start(Map.values(nodes) ++ [split], clock_interval: 60_000)
    run(nodes, [20])
    :ok = Cluster.sync_clocks()
    :ok = Local.cut_off(peer, split)

    {:ok, rec} = Cluster.snapshot(timeout: 2_000)
    assert rec.meta.cluster.missing[split] =~ ~r/not connected|disconnected/
    assert rec |> then(&Query.events(source: &1)) |> Enum.map(&node(&1.pid)) |> Enum.uniq() |> length() == 3
    assert [_ | _] = Cluster.summary(rec) |> Enum.filter(&(&1 =~ "missing: #{split}"))
    Recording.close(rec)

    :ok = Local.heal(peer, split)
    assert wait_until(fn -> match?(%{state: :recording, lost: 0}, Cluster.status()[split]) end, 250)
    {:ok, rec} = Cluster.snapshot()
    assert rec.meta.cluster.missing == %{}
    Recording.close(rec)
  end

  test "a slow node: the query answers within its timeout, without it, and says so", %{nodes: nodes} do
    {:ok, _} = Cluster.start(Map.values(nodes), clock_interval: 60_000, timeout: 800)
    run(nodes, [20])
    # the risk node frozen for 3 s: a busy loop at max priority on each of its schedulers (code
    # evaluated there: this test module is not loaded on the peer)
    freeze = """
    until = System.monotonic_time(:millisecond) + 3_000
    spin = fn spin -> if System.monotonic_time(:millisecond) < until, do: spin.(spin) end
    for _ <- 1..System.schedulers_online(), do: spawn(fn -> Process.flag(:priority, :max); spin.(spin) end)
    """

    :erpc.call(nodes.risk, Code, :eval_string, [freeze])
    Process.sleep(100)
    {ms, {:ok, rec}} = :timer.tc(fn -> Cluster.snapshot(timeout: 500) end)
    assert div(ms, 1000) < 1_500
    assert rec.meta.cluster.missing[nodes.risk] == "no answer within the timeout"
    assert rec |> then(&Query.events(source: &1)) |> Enum.map(&node(&1.pid)) |> Enum.uniq() |> Enum.sort() == Enum.sort([nodes.ledger, nodes.caller])
    Recording.close(rec)
    # pushed down: the same, within the cluster's timeout (800 ms)
    {ms, sends} = :timer.tc(fn -> Query.events(nodes: :all, kind: :send) end)
    assert div(ms, 1000) < 2_000
    assert sends |> Enum.map(&node(&1.pid)) |> Enum.uniq() |> Enum.sort() == Enum.sort([nodes.ledger, nodes.caller])
    assert Cluster.coverage(:query).missing[nodes.risk] == "no answer within the timeout"
  end

  test "collected events of a node that went down are kept", %{nodes: nodes} do
    {:ok, _} = Cluster.start(Map.values(nodes), clock_interval: 60_000, collect_interval: 50)
    assert {[3], 1} = run(nodes, [20])
    Process.sleep(300)
    :erpc.cast(nodes.risk, :erlang, :halt, [137])
    assert wait_until(fn -> match?(%{state: :down}, Cluster.status()[nodes.risk]) end)
    {:ok, rec} = Cluster.snapshot(timeout: 2_000)
    risk_events = Query.events(source: rec) |> Enum.filter(&(node(&1.pid) == nodes.risk))
    assert [_ | _] = risk_events
    assert rec.meta.cluster.missing[nodes.risk] =~ "collected before and are kept"
    assert Map.get(rec.meta.cluster.lost, nodes.risk, 0) == 0
    Recording.close(rec)
  end

  test "a node without ElixirScope is reported, not crashed into; nodes: queries fan out", %{nodes: nodes} do
    {:ok, _peer, bare} = Local.start_peer(:"bare_#{System.unique_integer([:positive])}", scope: false)
    {:ok, status} = Cluster.start(Map.values(nodes) ++ [bare], clock_interval: 60_000, snapshot_ttl: 0)
    assert %{state: :unavailable, reason: "ElixirScope is not loaded there"} = status[bare]
    refute bare in Cluster.nodes()
    assert {:error, "unknown ElixirScope option cluster.clock_intervl" <> _} = Cluster.start([bare], clock_intervl: 5)
    run(nodes, [20])

    sends = Query.events(nodes: :all, kind: :send)
    assert sends |> Enum.map(&node(&1.pid)) |> Enum.uniq() |> length() == 3
    assert [%Event{}] = Query.events(nodes: [nodes.risk], kind: :send, limit: 1)
    # paging stays on the snapshot its first page read (a later one numbers events anew)
    {:ok, [_, _, _, _, _] = first, next} = Query.page([nodes: :all], 5)
    assert %Recording{meta: %{cluster: _}} = next[:source]
    assert next[:nodes] == nil
    {:ok, second, _} = Query.page(next, 5)
    assert hd(second).id == List.last(first).id + 1
    # asked for alone, it gives an empty result that says why
    assert [] = Query.events(nodes: [bare])
    {:ok, rec} = Cluster.source([bare])
    assert %{missing: %{^bare => "ElixirScope is not loaded there"}} = Cluster.coverage(rec)
    assert {:error, "not recorded by this cluster: " <> _} = Query.events(nodes: [:"nowhere@127.0.0.1"])

    # the IEx helpers read the merged cluster after cluster/1
    out = ExUnit.CaptureIO.capture_io(fn -> ElixirScope.IEx.cluster() end)
    assert out =~ "3 node(s), merged on"
    refute out =~ "missing"
    procs = ExUnit.CaptureIO.capture_io(fn -> ElixirScope.IEx.processes() end)
    assert procs =~ "ClusterDemo.Ledger" and procs =~ "ClusterDemo.Caller.run"
    ElixirScope.IEx.cluster(:live)
    assert Query.Source.default() == :live
  end

  test "with :connected, this node, the connected ones and one connecting later are recorded", %{nodes: nodes} do
    on_exit(fn -> ElixirScope.stop() end)
    {:ok, status} = Cluster.start(:connected, clock_interval: 60_000)
    for n <- [node() | Map.values(nodes)], do: assert(%{state: :recording} = status[n])
    {:ok, _peer, late} = Local.start_peer(:"late_#{System.unique_integer([:positive])}")
    assert wait_until(fn -> match?(%{state: :recording}, Cluster.status()[late]) end, 250)
    assert late in Cluster.nodes()
  end

  test "config cluster: [nodes: …] starts the coordinator with ElixirScope, and stops with it", %{nodes: nodes} do
    on_exit(fn -> ElixirScope.stop() end)
    ElixirScope.stop()
    :ok = ElixirScope.start(cluster: [nodes: [node() | Map.values(nodes)], clock_interval: 60_000])
    assert wait_until(fn -> Cluster.running?() and map_size(Cluster.status()) == 4 end)
    for n <- [node() | Map.values(nodes)], do: assert(%{state: :recording} = Cluster.status()[n])
    run(nodes, [20])
    assert [_ | _] = Query.events(nodes: [nodes.caller], kind: :send)
    ElixirScope.stop()
    refute Cluster.running?()
  end

  test "the saved cluster recording reopens in a fresh VM without the nodes", %{nodes: nodes} do
    start_cluster(nodes)
    run(nodes, [20, 20])
    path = Path.join(System.tmp_dir!(), "cluster_#{System.unique_integer([:positive])}.esrec")
    on_exit(fn -> File.rm(path) end)
    assert {:ok, %{events: n}} = Recording.save(path, :all, nodes: :all)
    assert n > 0

    script = """
    {:ok, rec} = ElixirScope.Recording.load(#{inspect(path)})
    evs = ElixirScope.Query.events()
    links = ElixirScope.Query.Correlation.links(evs) |> Enum.filter(&(node(&1.from.pid) != node(&1.to.pid)))
    IO.puts("events=\#{length(evs)} nodes=\#{length(rec.meta.cluster.nodes)} cross=\#{length(links)} me=\#{node()}")
    ElixirScope.IEx.processes()
    """

    ebin = :code.lib_dir(:elixir_scope, :ebin) |> List.to_string()
    {out, 0} = System.cmd("elixir", ["-pa", ebin, "-e", script], stderr_to_stdout: true, env: [{"ERL_COMPILER_OPTIONS", nil}])
    assert out =~ "events=#{n} nodes=3 cross=10 me=nonode@nohost"
    # the helpers name each process's node
    for {role, node} <- nodes, do: assert(out =~ "#{node |> Atom.to_string() |> String.split("@") |> hd()}:#PID<", "#{role}")

    # mix scope.open says what the file covers
    summary = ExUnit.CaptureIO.capture_io(fn -> Mix.Tasks.Scope.Open.run([path]) end)
    assert summary =~ "3 node(s), merged on #{node()}'s clock"
    [_, dot] = Regex.run(~r/iex --dot-iex (\S+) -S mix/, summary)
    File.rm(dot)
  end
end
