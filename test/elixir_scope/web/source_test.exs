defmodule ElixirScope.Web.SourceTest do
  use ExUnit.Case, async: true

  alias ElixirScope.Event
  alias ElixirScope.Web.Source

  # a random interleaving of three processes; ids increase, ts increase per process
  defp events(n) do
    pids = for _ <- 1..3, do: spawn(fn -> :ok end)
    kinds = [:call, :return, :state, :send, :receive, :local]

    # calls carry their own id as call id; other events belong to an earlier call of their process
    {evs, _} =
      Enum.map_reduce(1..n, {1_000, %{}}, fn id, {ts, calls} ->
        ts = ts + :rand.uniform(50)
        kind = Enum.random(kinds)
        pid = Enum.random(pids)
        mine = Map.get(calls, pid, [])
        call_id = if kind == :call, do: id, else: Enum.random([0 | mine])
        calls = if kind == :call, do: Map.put(calls, pid, [id | mine]), else: calls

        e = %Event{id: id, ts: ts, pid: pid, kind: kind, module: Enum.random([A, B]),
                   function: Enum.random([:f, :g]), arity: 1, line: 1, call_id: call_id,
                   link: 0, correlation_id: Enum.random([nil, 3, 5]), payload: id}

        {e, {ts, calls}}
      end)

    call_ids = for %Event{kind: :call, id: id} <- evs, do: id
    Process.put(:call_ids, call_ids)
    {evs, pids}
  end

  # what the filters mean, written plainly
  defp naive(evs, f) do
    evs
    |> Enum.filter(fn e ->
      (f[:pid] == nil or e.pid == f[:pid]) and (f[:kinds] == nil or e.kind in f[:kinds]) and
        (f[:module] == nil or e.module == f[:module]) and (f[:call_id] == nil or e.call_id == f[:call_id]) and
        (f[:since] == nil or e.ts >= f[:since]) and (f[:until] == nil or e.ts <= f[:until]) and
        (f[:after_id] == nil or e.id > f[:after_id]) and (f[:before_id] == nil or e.id < f[:before_id])
    end)
    |> then(&if(f[:order] == :desc, do: Enum.reverse(&1), else: &1))
    |> then(&if(f[:limit], do: Enum.take(&1, f[:limit]), else: &1))
  end

  test "in-memory fetch answers every filter combination like the plain definition" do
    {evs, pids} = events(600)
    source = Source.from_events(Enum.shuffle(evs))
    max_ts = List.last(evs).ts

    for _ <- 1..400 do
      f =
        [
          pid: Enum.random([nil | pids]),
          kinds: Enum.random([nil, [:call], [:state, :send]]),
          module: Enum.random([nil, A]),
          call_id: Enum.random([nil, nil, Enum.random(Process.get(:call_ids))]),
          since: Enum.random([nil, :rand.uniform(max_ts)]),
          until: Enum.random([nil, :rand.uniform(max_ts)]),
          after_id: Enum.random([nil, :rand.uniform(600)]),
          before_id: Enum.random([nil, :rand.uniform(600)]),
          limit: Enum.random([nil, 1, 7, 100]),
          order: Enum.random([:asc, :desc])
        ]
        |> Enum.reject(fn {_, v} -> is_nil(v) end)

      assert Enum.map(Source.fetch(source, f), & &1.id) == Enum.map(naive(evs, f), & &1.id), "filters #{inspect(f)}"
    end

    assert Source.size(source) == 600
    assert Enum.sort(Source.pids(source)) == Enum.sort(Enum.uniq(Enum.map(evs, & &1.pid)))
    assert Source.get(source, 17).id == 17
    assert Source.get(source, 10_000) == nil
    assert {:error, _} = Source.fetch(source, bogus: 1)
    Source.release(source)
  end
end
