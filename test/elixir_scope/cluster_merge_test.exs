defmodule ElixirScope.ClusterMergeTest do
  @moduledoc false
  # ElixirScope.Cluster.Merge on events made by hand: pids of two nodes that do not run.
  use ExUnit.Case, async: true

  alias ElixirScope.Cluster.Merge
  alias ElixirScope.Event
  alias ElixirScope.Query.Correlation

  # an external pid of `node` (NEW_PID_EXT), without that node running
  defp pid(node, n) do
    name = Atom.to_string(node)
    :erlang.binary_to_term(<<131, 88, 119, byte_size(name), name::binary, n::32, 0::32, 1::32>>)
  end

  defp ev(id, ts, pid, kind, payload, extra \\ []) do
    struct!(%Event{id: id, ts: ts, pid: pid, kind: kind, payload: payload, line: 0, call_id: 0, link: 0}, extra)
  end

  setup do
    {a, b} = {pid(:"a@127.0.0.1", 10), pid(:"b@127.0.0.1", 20)}

    # b's clock reads 5 ms behind a's: its receive (ts 1_000) seems to come before a's send (ts 3_000_000)
    by_node = %{
      :"a@127.0.0.1" => [
        ev(1, 2_000_000, a, :call, [], function: :run, module: M, arity: 0, link: 3, return_id: 3),
        ev(2, 3_000_000, a, :send, {b, {:ping, 1}}, function: :send),
        ev(3, 4_000_000, a, :return, :ok, call_id: 1, function: :run, module: M, arity: 0)
      ],
      :"b@127.0.0.1" => [
        ev(1, 1_000, b, :receive, {{:ping, 1}, %{clause: 1, waited_us: nil}}, function: :receive),
        ev(2, 2_000, b, :custom, {:after, 1})
      ]
    }

    %{a: a, b: b, by_node: by_node}
  end

  test "a receive is never before its send: the correction moves it and its node's later events, and is listed",
       %{by_node: by_node, a: a, b: b} do
    {events, corrections} = Merge.merge(by_node, %{})
    assert Enum.map(events, & &1.id) == [1, 2, 3, 4, 5]
    send = Enum.find(events, &(&1.kind == :send))
    recv = Enum.find(events, &(&1.kind == :receive))
    custom = Enum.find(events, &(&1.kind == :custom))
    assert recv.id > send.id and recv.ts == send.ts + 1
    assert custom.id > recv.id and custom.ts == 2_000 + (recv.ts - 1_000)
    assert [%{node: :"b@127.0.0.1", from_id: from, shift_ns: shift}] = corrections
    assert from == recv.id and shift == recv.ts - 1_000
    assert [%{type: :message, from: ^send, to: ^recv}] = Correlation.links(events) |> Enum.filter(&(&1.from.pid == a and &1.to.pid == b))
  end

  test "an offset that agrees needs no correction; references within a node follow the new ids", %{by_node: by_node} do
    # b's offset estimated right: -5 ms (it reads 5 ms behind), so its events land after a's send
    {events, corrections} = Merge.merge(by_node, %{:"b@127.0.0.1" => -5_000_000})
    assert corrections == []
    assert Enum.map(events, &{node(&1.pid), &1.kind}) ==
             [{:"a@127.0.0.1", :call}, {:"a@127.0.0.1", :send}, {:"a@127.0.0.1", :return}, {:"b@127.0.0.1", :receive}, {:"b@127.0.0.1", :custom}]

    call = Enum.find(events, &(&1.kind == :call))
    ret = Enum.find(events, &(&1.kind == :return))
    assert call.return_id == ret.id and ret.call_id == call.id
  end

  test "an event recorded after the fact (a later id, an earlier time) takes its place by its time", %{a: a, b: b} do
    by_node = %{
      :"a@127.0.0.1" => [ev(1, 1_000, a, :custom, 1), ev(2, 3_000, a, :custom, 2), ev(3, 2_000, a, :exit, :normal)],
      :"b@127.0.0.1" => [ev(1, 2_500, b, :custom, 3)]
    }

    {events, []} = Merge.merge(by_node, %{})
    assert Enum.map(events, &{&1.kind, &1.ts}) == [{:custom, 1_000}, {:exit, 2_000}, {:custom, 2_500}, {:custom, 3_000}]
    # without renumbering (what a pushed-down query merges), each event keeps its node's id
    {tagged, []} = Merge.order(by_node, %{}, false)
    assert Enum.map(tagged, fn {n, e} -> {n, e.id} end) ==
             [{:"a@127.0.0.1", 1}, {:"a@127.0.0.1", 3}, {:"b@127.0.0.1", 1}, {:"a@127.0.0.1", 2}]
  end

  # a caller on a: an :erpc call of W.score(5), then one of a fun; on b: a Node.spawn child whose
  # first event is the same call (after the request: it must not be taken for the rpc's work),
  # the rpc's work, and the fun's process (its parent and initial call seen by the observer), which
  # b's clock puts before its request
  defp rpc_scenario(ca, sb1, sb2, sb3) do
    ms = 1_000_000
    fun = fn -> :ok end
    erpc_info = %{parent: ca, initial_call: {:erpc, :execute_call, 4}}

    %{
      :"a@127.0.0.1" => [
        ev(1, 1 * ms, ca, :call, [], module: C, function: :run, arity: 0, link: 7, return_id: 7),
        ev(2, 2 * ms, ca, :spawn, {sb1, %{parent: ca, initial_call: {W, :score, 1}, via: :spawn}}, function: :call_site, call_id: 1),
        ev(3, 3 * ms, ca, :send, {:"b@127.0.0.1", {W, :score, [5]}}, function: :rpc, call_id: 1),
        ev(4, 4 * ms, ca, :receive, {:return, 15}, function: :rpc, call_id: 1, link: 3, correlation_id: 3),
        ev(5, 5 * ms, ca, :send, {:"b@127.0.0.1", fun}, function: :rpc, call_id: 1),
        ev(6, 6 * ms, ca, :receive, {:return, :ok}, function: :rpc, call_id: 1, link: 5, correlation_id: 5),
        ev(7, 7 * ms, ca, :return, :done, module: C, function: :run, arity: 0, call_id: 1)
      ],
      :"b@127.0.0.1" => [
        ev(1, 3_100_000, sb1, :call, [5], module: W, function: :score, arity: 1, link: 2, return_id: 2),
        ev(2, 3_150_000, sb1, :return, 15, module: W, function: :score, arity: 1, call_id: 1),
        ev(3, 3_200_000, sb2, :call, [5], module: W, function: :score, arity: 1, link: 4, return_id: 4),
        ev(4, 3_300_000, sb2, :return, 15, module: W, function: :score, arity: 1, call_id: 3),
        ev(5, 4_500_000, sb3, :spawn, {sb3, erpc_info}, function: :observed),
        ev(6, 4_500_000, sb3, :call, [], module: W, function: :other, arity: 0, link: 7, return_id: 7),
        ev(7, 4_600_000, sb3, :return, :ok, module: W, function: :other, arity: 0, call_id: 6)
      ]
    }
  end

  test ":erpc calls: paired with their work on the other node (by the call asked, or by the parent the observer saw), never with a Node.spawn child; the work ordered between request and outcome",
       %{a: ca} do
    [sb1, sb2, sb3] = for n <- [21, 22, 23], do: pid(:"b@127.0.0.1", n)
    {events, corrections} = Merge.merge(rpc_scenario(ca, sb1, sb2, sb3), %{})
    links = Correlation.links(events)
    [req1, req2] = Enum.filter(events, &(&1.kind == :send))
    [out1, out2] = Enum.filter(events, &(&1.kind == :receive))
    at = fn pid, kind -> Enum.find(events, &(&1.pid == pid and &1.kind == kind and &1.function != :observed)) end

    assert [%{to: w1}] = Enum.filter(links, &(&1.type == :rpc and &1.from.id == req1.id))
    assert w1 == at.(sb2, :call)
    assert [%{to: w2}] = Enum.filter(links, &(&1.type == :rpc and &1.from.id == req2.id))
    assert w2 == at.(sb3, :call)
    assert Enum.filter(links, &(&1.type == :rpc_reply)) |> Enum.map(&{&1.from.id, &1.to.id}) |> Enum.sort() ==
             [{at.(sb2, :return).id, out1.id}, {at.(sb3, :return).id, out2.id}]

    # the Node.spawn child is its spawn's, not the rpc's
    assert [%{from: %Event{function: :call_site}}] = Enum.filter(links, &(&1.to.pid == sb1))

    # b's clock put the fun's work before its request: the merge moves it, and says so
    assert w2.id > req2.id and w2.ts > req2.ts and at.(sb3, :return).id < out2.id
    assert [%{node: :"b@127.0.0.1"} | _] = corrections
    assert Correlation.unpaired_sends(events, links) == []
  end

  test "an :erpc.multicall to two nodes: its work on each is paired and ordered after the request, also where a node's clock puts it before",
       %{a: ca} do
    ms = 1_000_000
    {b, c} = {:"b@127.0.0.1", :"c@127.0.0.1"}
    {sb, sc} = {pid(b, 31), pid(c, 32)}
    erpc_info = %{parent: ca, initial_call: {:erpc, :execute_call, 4}}

    # c's clock reads 5 ms behind: its work (ts 0.1 ms) seems to come before the request (2 ms)
    work = fn w, t ->
      [
        ev(1, t, w, :spawn, {w, erpc_info}, function: :observed),
        ev(2, t, w, :call, [5], module: W, function: :score, arity: 1, link: 3, return_id: 3),
        ev(3, t + 100_000, w, :return, 15, module: W, function: :score, arity: 1, call_id: 2)
      ]
    end

    by_node = %{
      :"a@127.0.0.1" => [
        ev(1, 1 * ms, ca, :call, [], module: C, function: :run, arity: 0, link: 4, return_id: 4),
        ev(2, 2 * ms, ca, :send, {[b, c], {W, :score, [5]}}, function: :rpc, call_id: 1),
        ev(3, 3 * ms, ca, :receive, {:return, [{:ok, 15}, {:ok, 15}]}, function: :rpc, call_id: 1, link: 2, correlation_id: 2),
        ev(4, 4 * ms, ca, :return, :done, module: C, function: :run, arity: 0, call_id: 1)
      ],
      b => work.(sb, 2_100_000),
      c => work.(sc, 100_000)
    }

    {events, _corrections} = Merge.merge(by_node, %{})
    links = Correlation.links(events)
    [req] = Enum.filter(events, &(&1.kind == :send))
    [out] = Enum.filter(events, &(&1.kind == :receive))
    calls = for w <- [sb, sc], do: Enum.find(events, &(&1.pid == w and &1.kind == :call))

    assert Enum.filter(links, &(&1.type == :rpc and &1.from.id == req.id)) |> Enum.map(& &1.to) |> Enum.sort_by(& &1.id) ==
             Enum.sort_by(calls, & &1.id)

    for call <- calls, do: assert(call.id > req.id and call.ts > req.ts and call.id < out.id)
  end
end
