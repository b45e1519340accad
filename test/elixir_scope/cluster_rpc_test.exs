defmodule ElixirScope.ClusterRpcTest do
  @moduledoc false
  # Three local nodes started with :peer (loopback only): a caller node runs instrumented code
  # that calls workers on two other nodes over :erpc, :rpc and Node.spawn; the merged cluster
  # recording pairs each call with the work it started there, in causal order. The same source
  # compiled plain (modules renamed RpcPlain.*) gives the same values and exceptions.
  use ExUnit.Case, async: false

  alias ElixirScope.{Cluster, Event, Query, Recording}
  alias ElixirScope.Cluster.Local
  alias ElixirScope.Query.Correlation

  @moduletag timeout: 120_000
  @scenario Path.expand("../fixtures/cluster/rpc_scenario.ex", __DIR__)

  setup_all do
    if node() == :nonode@nohost, do: on_exit(fn -> :net_kernel.stop() end)
    :ok = Local.ensure_distributed(:es_cluster_rpc_test)

    modules =
      ExUnit.CaptureIO.capture_io(:stderr, fn -> send(self(), Local.compile_instrumented(@scenario, :full)) end) &&
        receive(do: (m -> m))

    plain = @scenario |> File.read!() |> Code.string_to_quoted!(file: @scenario) |> rename() |> Code.compile_quoted(@scenario)
    %{modules: modules ++ plain}
  end

  defp rename(ast) do
    Macro.prewalk(ast, fn
      {:__aliases__, m, [:RpcScenario | rest]} -> {:__aliases__, m, [:RpcPlain | rest]}
      other -> other
    end)
  end

  setup %{modules: modules} do
    Cluster.stop()
    suffix = System.unique_integer([:positive])

    peers =
      for role <- [:caller, :w1, :w2], into: %{} do
        {:ok, peer, node} = Local.start_peer(:"rpc_#{role}_#{suffix}")
        {role, {peer, node}}
      end

    nodes = Map.new(peers, fn {role, {_peer, node}} -> {role, node} end)
    :ok = Local.load(Map.values(nodes), modules)
    {:ok, status} = Cluster.start(Map.values(nodes), clock_interval: 60_000)
    for n <- Map.values(nodes), do: assert(%{state: :recording} = status[n])
    on_exit(fn -> Cluster.stop() end)
    %{nodes: nodes}
  end

  # runs Caller.fun(args) on the caller node, instrumented and plain: {instrumented, plain}
  defp both(%{caller: c}, fun, args) do
    run = fn mod ->
      try do
        {:ok, :erpc.call(c, mod, fun, args)}
      catch
        class, reason -> {class, reason}
      end
    end

    {run.(RpcScenario.Caller), run.(RpcPlain.Caller)}
  end

  # the plain build's terms read as the instrumented one's (module names)
  defp as_instrumented(term) do
    case term do
      RpcPlain.Caller -> RpcScenario.Caller
      RpcPlain.Worker -> RpcScenario.Worker
      t when is_list(t) -> Enum.map(t, &as_instrumented/1)
      t when is_tuple(t) -> t |> Tuple.to_list() |> Enum.map(&as_instrumented/1) |> List.to_tuple()
      %{} = m when not is_struct(m) -> Map.new(m, fn {k, v} -> {as_instrumented(k), as_instrumented(v)} end)
      t -> t
    end
  end

  defp snapshot_events do
    {:ok, rec} = Cluster.snapshot()
    on_exit(fn -> Recording.close(rec) end)
    assert rec.meta.cluster.missing == %{}
    {rec, Query.events(source: rec)}
  end

  defp requests(events), do: Enum.filter(events, &match?(%Event{kind: :send, function: :rpc}, &1))

  defp link(links, type, from), do: Enum.filter(links, &(&1.type == type and &1.from.id == from.id))

  test "erpc and rpc calls: values and exceptions as plain, each paired with its work on the other node, in causal order",
       %{nodes: nodes} do
    %{w1: w1, w2: w2} = nodes

    calls = [
      {:erpc, [w1, 5]},
      {:rpc, [w2, 6]},
      {:tail, [w1, 7]},
      {:refused, [w2, 8]},
      {:rpc_refused, [w1, 9]},
      {:multi, [[w1, w2], 10]}
    ]

    for {fun, args} <- calls do
      {instrumented, plain} = both(nodes, fun, args)
      assert instrumented == as_instrumented(plain), "#{fun}: #{inspect(instrumented)} vs plain #{inspect(plain)}"
    end

    # what the plain build gives, spelled out
    assert {{:ok, {:erpc, 15}}, _} = both(nodes, :erpc, [w1, 5])
    assert {{:error, {:exception, {:exception, %ArgumentError{message: "refused 8"}, _}, _}}, _} = both(nodes, :refused, [w2, 8])
    assert {{:ok, {:rpc, {:badrpc, {:EXIT, {%ArgumentError{}, _}}}}}, _} = both(nodes, :rpc_refused, [w1, 9])

    {_rec, events} = snapshot_events()
    links = Correlation.links(events)
    by_id = Map.new(events, &{&1.id, &1})
    reqs = requests(events)
    # the instrumented build's calls, twice for the three spelled out: each call's request is recorded
    assert length(reqs) == length(calls) + 3
    for r <- reqs, do: assert(node(r.pid) == nodes.caller)

    for r <- reqs do
      {dest, {RpcScenario.Worker, f, args}} = r.payload
      targets = List.wrap(dest)
      outcome = Enum.find(events, &(&1.kind == :receive and &1.function == :rpc and &1.correlation_id == r.id))
      assert %Event{pid: pid} = outcome
      assert pid == r.pid and outcome.id > r.id

      rpc_links = link(links, :rpc, r)
      assert Enum.map(rpc_links, &node(&1.to.pid)) |> Enum.sort() == Enum.sort(targets), "#{inspect(r.payload)} not paired"

      for l <- rpc_links do
        work = l.to
        assert %Event{kind: :call, module: RpcScenario.Worker, function: ^f, payload: ^args} = work
        assert work.id > r.id and work.ts > r.ts
        # the end of the remote call goes back to the caller's outcome, before it
        assert [reply] = Enum.filter(links, &(&1.type == :rpc_reply and &1.from.pid == work.pid))
        assert reply.to.id == outcome.id
        assert reply.from.id == work.return_id and reply.from.id < outcome.id and reply.from.ts < outcome.ts
      end

      case {f, outcome.payload} do
        {:score, {:return, value}} ->
          assert value in [List.first(args) * 3, Enum.map(targets, fn _ -> {:ok, List.first(args) * 3} end)]

        {:refuse, {:raise, :error, {:exception, %ArgumentError{}, _}}} ->
          [l] = rpc_links
          assert %Event{kind: :exception} = by_id[l.to.return_id]

        {:refuse, {:return, {:badrpc, {:EXIT, {%ArgumentError{}, _}}}}} ->
          :ok
      end
    end

    # OTLP: the worker's span is a child of the caller's span that made the call, across nodes
    spans = ElixirScope.Export.OTLP.build(events).resourceSpans |> hd() |> Map.fetch!(:scopeSpans) |> hd() |> Map.fetch!(:spans)
    span_by_id = Map.new(spans, &{&1.spanId, &1})
    scores = Enum.filter(spans, &(&1.name == "RpcScenario.Worker.score/1"))
    assert length(scores) == 6

    for s <- scores do
      parent = Map.fetch!(span_by_id, s.parentSpanId)
      assert parent.name =~ "RpcScenario.Caller."
      assert parent.traceId == s.traceId
    end
  end

  test "an erpc cast and a fun are paired; the order stays causal with a node's clock off by ±50 ms", %{nodes: nodes} do
    %{w1: w1, w2: w2} = nodes
    assert {{:ok, {:fun, 33}}, {:ok, {:fun, 33}}} = both(nodes, :slow_fun, [w1, 11])
    assert {{:ok, :ok}, {:ok, :ok}} = both(nodes, :cast, [w2, 12])
    assert {{:ok, {:erpc, 39}}, _} = both(nodes, :erpc, [w2, 13])
    # the cast's work has ended when it is in the recording
    Process.sleep(100)

    for skews <- [%{}, %{w1: 50_000_000, w2: -50_000_000}, %{w1: -50_000_000, w2: 50_000_000}] do
      for {role, ns} <- skews, do: Cluster.put_skew(nodes[role], ns)
      {rec, events} = snapshot_events()
      links = Correlation.links(events)
      reqs = requests(events)
      assert length(reqs) == 3

      for r <- reqs do
        paired = link(links, :rpc, r)
        assert length(paired) == 1, "#{inspect(skews)}: #{inspect(r.payload)} not paired #{inspect(Enum.map(events, &{&1.id, node(&1.pid), &1.kind, &1.function}))}"
        [l] = paired
        assert node(l.to.pid) == elem(r.payload, 0)
        assert l.to.id > r.id and l.to.ts > r.ts, "#{inspect(skews)}: work before its request"
      end

      # the fun as recorded (not a {module, function, args} request)
      [fun_req] = Enum.reject(reqs, &match?({_, {_, _, _}}, &1.payload))
      [fun_link] = link(links, :rpc, fun_req)
      assert %Event{module: RpcScenario.Worker, function: :slow_score} = fun_link.to

      for l <- links, l.type in [:rpc, :rpc_reply] do
        assert l.from.id < l.to.id and l.from.ts < l.to.ts, "#{inspect(skews)}: #{l.type} after its effect"
      end

      Recording.close(rec)
    end
  end

  test "Node.spawn: the caller's :spawn is linked to the child's events on the other node, in causal order", %{nodes: nodes} do
    assert {{:ok, {:spawned, w, 42}}, {:ok, {:spawned, w, 42}}} = both(nodes, :spawn_on, [nodes.w1, 14])
    assert w == nodes.w1

    # the worker's clock estimate 50 ms fast, then 50 ms slow
    for skew <- [0, 50_000_000, -50_000_000] do
      Cluster.put_skew(nodes.w1, skew)
      {rec, events} = snapshot_events()
      spawn_linked(nodes, events)
      Recording.close(rec)
    end
  end

  defp spawn_linked(nodes, events) do
    links = Correlation.links(events)

    assert [spawn] = Enum.filter(events, &match?(%Event{kind: :spawn, function: :call_site}, &1))
    assert node(spawn.pid) == nodes.caller
    # Node.spawn/4 is inlined by Elixir into :erlang.spawn/4
    %{child: child, via: via, initial_call: {RpcScenario.Worker, :report, 2}} = Event.spawn_info(spawn)
    assert via in [:spawn, :node]
    assert node(child) == nodes.w1

    assert [%{to: first}] = Enum.filter(links, &(&1.type == :spawn and &1.from.id == spawn.id))
    assert first.pid == child
    assert %Event{kind: :call, function: :report} = first
    # the child begins after the caller's call that spawned it began
    assert %Event{kind: :call, function: :spawn_on} = caller_call = Enum.find(events, &(&1.pid == spawn.pid and &1.kind == :call))
    assert first.id > caller_call.id and first.ts > caller_call.ts
    # the child's answer is paired with the caller's receive, after the send
    assert [msg] = Enum.filter(links, &(&1.type == :message and &1.from.pid == child))
    assert msg.to.pid == spawn.pid and msg.from.id < msg.to.id
  end
end
