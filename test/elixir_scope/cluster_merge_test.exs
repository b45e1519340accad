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
end
