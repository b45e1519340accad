defmodule ElixirScope.QueryTest do
  use ExUnit.Case, async: true

  alias ElixirScope.{Query, Recording}
  require ElixirScope.Query
  alias ElixirScope.Query.Cursor
  alias ElixirScope.Test.EventBuilder, as: B

  # Two processes: `a` runs M.outer -> M.inner (locals, a tail call),
  # `s` is a GenServer-like process with state events.
  setup do
    [a, s] = B.pids(2)
    b = B.new()
    {b, outer} = B.call(b, a, M, :outer, [1])
    {b, _} = B.local(b, a, outer, %{x: 1})
    {b, inner} = B.call(b, a, M, :inner, [2])
    {b, _} = B.local(b, a, inner, %{y: 2, x: 10})
    {b, _} = B.ret(b, a, inner, :inner_done)
    {b, _} = B.local(b, a, outer, %{x: 3})
    {b, h1} = B.call(b, s, S, :handle_cast, [:inc, 0])
    {b, st1} = B.state(b, s, h1, :before, 0)
    {b, st2} = B.state(b, s, h1, :after, 1)
    {b, _} = B.ret(b, s, h1, {:noreply, 1})
    {b, _} = B.ret(b, a, outer, :outer_done)
    {b, h2} = B.call(b, s, S, :handle_cast, [:inc, 1])
    {b, _} = B.state(b, s, h2, :before, 1)
    {b, st4} = B.state(b, s, h2, :after, 2)
    {b, _} = B.ret(b, s, h2, {:noreply, 2})
    {b, again} = B.call(b, a, M, :inner, [5])
    {b, _} = B.add(b, a, :exception, call_id: again, payload: {:error, :badarg, []})
    events = B.events(b)
    rec = Recording.from_events(events, %{names: %{server: s}, clock: {1_000_000, 1_700_000_000_000_000}})
    on_exit(fn -> Recording.close(rec) end)

    %{rec: rec, a: a, s: s, events: events, ids: %{outer: outer, inner: inner, again: again, st1: st1, st2: st2, st4: st4, h1: h1}}
  end

  describe "events/1" do
    test "filters by pid, name, kind, function, call id, window, id range; order and limit", %{rec: rec, a: a, s: s} = ctx do
      src = [source: rec]
      assert length(Query.events(src)) == length(ctx.events)
      assert Enum.all?(Query.events([pid: a] ++ src), &(&1.pid == a))
      assert Query.events([pid: :server] ++ src) == Query.events([pid: s] ++ src)
      assert [%{payload: [2]}, %{payload: [5]}] = Query.events([module: M, function: :inner, kind: :call] ++ src)
      assert length(Query.events([mfa: {M, :inner, 1}] ++ src)) == 4
      assert Enum.map(Query.events([call_id: ctx.ids.inner] ++ src), & &1.kind) == [:call, :local, :return]
      [first, second | _] = Query.events(src)
      assert Query.events([since: first.ts, until: second.ts] ++ src) == [first, second]
      assert Query.events([after_id: 1, before_id: 3] ++ src) == [second]
      assert [%{kind: :exception}] = Query.events([order: :desc, limit: 1] ++ src)
      assert [_, _] = Query.events([kind: [:state], pid: s, limit: 2] ++ src)
      assert [%{payload: {:after, 2}}] = Query.events([kind: :state, payload: &match?({:after, 2}, &1)] ++ src)
      assert [%{kind: :local, payload: %{x: 3}}] = Query.events([where: &(&1.payload == %{x: 3})] ++ src)
    end

    test "bad filters give messages", %{rec: rec} do
      assert {:error, "unknown filter :colour" <> _} = Query.events(colour: :red, source: rec)
      assert {:error, "unknown event kind(s) [:nope]" <> _} = Query.events(kind: :nope, source: rec)
      assert {:error, "pid: no process is registered as :ghost" <> _} = Query.events(pid: :ghost, source: rec)
      assert {:error, "invalid value for filter limit: -1 (expected a positive integer or nil, e.g. limit: 50)"} =
             Query.events(limit: -1, source: rec)
    end

    test "pages cover everything once, in order, with predicates", %{rec: rec, events: events} do
      pages =
        Stream.unfold([source: rec, where: &(&1.kind != :local)], fn
          nil -> nil
          fs -> {:ok, evs, next} = Query.page(fs, 3); {evs, next}
        end)
        |> Enum.to_list()

      assert Enum.all?(pages, &(length(&1) <= 3))
      assert Enum.concat(pages) == Enum.reject(events, &(&1.kind == :local))
      assert Enum.to_list(Query.stream([], source: rec, chunk: 4)) == events
    end
  end

  test "call_tree of a process and of one call", %{rec: rec, a: a, ids: ids} do
    [outer, again] = Query.call_tree(a, source: rec)
    assert outer.event.function == :outer and outer.status == :ok and outer.return.payload == :outer_done
    assert [%{event: %{function: :inner}, status: :ok}] = outer.children
    assert again.status == :exception
    node = Query.call_tree(ids.inner, source: rec)
    assert node.event.id == ids.inner and node.children == [] and Enum.map(node.events, & &1.payload) == [%{y: 2, x: 10}]
    assert Query.call_tree(ids.outer, source: rec).children |> length() == 1
    assert Query.call_tree(999_999, source: rec) == nil
  end

  test "state_at and state_history", %{rec: rec, s: s, ids: ids, events: events} do
    st1 = Enum.find(events, &(&1.id == ids.st1))
    assert {:error, "no state was recorded" <> _} = Query.state_at(s, st1.ts - 1, source: rec)
    assert {:ok, 0, %{id: id}} = Query.state_at(s, st1.ts, source: rec)
    assert id == ids.st1
    assert {:ok, 1, _} = Query.state_at(s, {:event, ids.st2}, source: rec)
    assert {:ok, 1, _} = Query.state_at(:server, {:event, ids.st4 - 1}, source: rec)
    assert {:ok, 2, _} = Query.state_at(s, :now, source: rec)
    dt = DateTime.from_unix!(1_700_000_000_000_000 + div(st1.ts - 1_000_000, 1000), :microsecond)
    assert {:ok, 0, _} = Query.state_at(s, dt, source: rec)
    assert Enum.map(Query.state_history(s, source: rec), &{&1.phase, &1.state}) ==
             [before: 0, after: 1, before: 1, after: 2]
  end

  test "variable_history per process and per call", %{rec: rec, a: a, ids: ids} do
    assert Enum.map(Query.variable_history(a, :x, source: rec), & &1.value) == [1, 10, 3]
    assert Enum.map(Query.variable_history(ids.outer, "x", source: rec), & &1.value) == [1, 3]
    assert Query.variable_history(a, :zzz, source: rec) == []
  end

  test "cursor steps per process and globally, jumps, and finds calls", %{rec: rec, a: a, ids: ids} do
    c = Cursor.new(pid: a, source: rec)
    assert {:end, ^c} = Cursor.step_back(c)
    {:ok, c} = Cursor.step_forward(c)
    assert c.event.id == ids.outer
    {:ok, c} = Cursor.next_call(c, {M, :inner, 1})
    assert c.event.id == ids.inner
    {:ok, c} = Cursor.next_call(c, Function.capture(M, :inner, 1))
    assert c.event.id == ids.again
    assert {:end, _} = Cursor.next_call(c, "M.inner/1")
    {:ok, c} = Cursor.prev_call(c, {M, :inner})
    assert c.event.id == ids.inner
    {:ok, c} = Cursor.step_back(c)
    assert c.event.kind == :local and c.event.pid == a
    # global cursor sees the other process
    g = Cursor.new(source: rec, at: ids.h1)
    assert g.event.id == ids.h1
    {:ok, g} = Cursor.step_forward(g)
    assert g.event.id == ids.st1
    {:ok, g} = Cursor.jump_to(g, {:time, g.event.ts + 2500})
    assert g.event.id == ids.st2 + 1
    {:ok, last} = Cursor.jump_to(g, 10_000)
    assert {:end, _} = Cursor.step_forward(last)
  end

  test "logpoint evaluates over every hit, in time order", %{rec: rec} do
    results = Query.logpoint({M, :inner, 1}, fn hit -> {hd(hit.args), hit.locals[:y], hit.return, hit.status} end, source: rec)
    assert Enum.map(results, & &1.result) == [{2, 2, :inner_done, :ok}, {5, nil, nil, :exception}]
    assert [%{result: {:error, "boom"}}, _] = Query.logpoint(Function.capture(M, :inner, 1), fn _ -> raise "boom" end, source: rec)
    assert {:error, "an anonymous function" <> _} = Query.logpoint(fn -> 1 end, & &1, source: rec)
    # written as in the source, without the module being loaded
    assert [%{result: [2]}, %{result: [5]}] = Query.logpoint(M.inner/1, & &1.args, source: rec)
    assert [_, _] = Query.logpoint(M.inner, & &1.args, source: rec)
    assert [_, _] = Query.run_logpoint("M.inner/1", & &1.args, source: rec)
  end

  test "holds? looks inside lists, tuples, maps and structs" do
    assert Query.holds?({:a, [1, %{k: {:v, "x"}}]}, "x")
    assert Query.holds?(%URI{host: "h"}, "h")
    assert Query.holds?([1 | 2], 2)
    refute Query.holds?({:a, [1]}, 2)
  end
end
