defmodule ElixirScope.Storage.NativeReadTest do
  # The fast read path (issue 13): query_events/3 rows must give the very structs the tuple path
  # (Event.from_tuple/2) gives, and the native call trees the very trees of the Elixir rules
  # (ElixirScope.Test.CallTreeModel), on generated event sequences.
  use ExUnit.Case, async: false

  import Bitwise
  alias ElixirScope.{Event, NIF}
  alias ElixirScope.Storage.{EventCorrelator, NativeCallTrees}
  alias ElixirScope.Test.{CallTreeModel, Gen, TermGen}

  describe "query_events/3" do
    setup do
      s = NIF.session_new(%{ring_capacity: 4096, max_depth: 3, max_width: 3, max_binary: 4})
      :ok = NIF.session_install(s)
      on_exit(fn -> NIF.session_uninstall() end)
      {:ok, s: s}
    end

    test "rows build the structs the tuple path builds, every kind, truncated and empty payloads", %{s: s} do
      c = NIF.emit_entry(M, :f, [1, :a, "a long binary", %{deep: %{deeper: %{deepest: 1}}}], 7)
      NIF.emit(:local, c, M, :f, 4, 8, 0, %{x: 1})
      NIF.emit(:expr, c, M, :f, 4, 9, 0, {"x + 1", 2})
      NIF.emit(:state, c, M, :f, 4, 9, 0, {:before, [1, 2, 3, 4, 5]})
      NIF.emit(:send, 0, nil, :send, nil, 0, 77, {self(), :hello})
      NIF.emit(:receive, 0, nil, :receive, nil, 0, 77, :hello)
      NIF.emit(:custom, 0, nil, nil, nil, 0, 0, {:mark, 1.5})
      NIF.emit(:tail_call, c, M, :f, 4, 10, 0, {M, :g, [self(), make_ref()]})
      NIF.emit_exit(c, {:ok, 1 <<< 200})
      ElixirScope.Capture.RingBuffer.drain_all(s, 100)
      clock = {NIF.now(), System.system_time(:microsecond)}

      # a small query of one pid is answered on the calling scheduler, the others on a dirty one
      for c <- [clock, nil], filters <- [%{}, %{kinds: [:call, :return]}, %{order: :desc, limit: 3}, %{pid: self(), limit: 5}] do
        {rows, truncated} = NIF.query_events(s, filters, c)
        expected = s |> NIF.query(filters) |> Enum.map(&Event.from_tuple(&1, c))
        assert Event.from_store({rows, truncated}) == expected
        assert truncated == Enum.count(expected, & &1.truncated?)
      end

      all = Event.from_store(NIF.query_events(s, %{}, clock))
      assert length(all) == 9
      assert Enum.any?(all, & &1.truncated?)
      assert Enum.any?(all, &match?(%Event{kind: :send, correlation_id: 77}, &1))
    end

    test "query_call_trees/3 builds the trees of its rows as the Elixir rules do", %{s: s} do
      me = self()
      # nested calls, an exception, a tail call into instrumented code and one out of it, an
      # unrecorded end, an observed spawn, a truncated argument, in this process and another
      work = fn ->
        a = NIF.emit_entry(M, :a, [1], 1)
        b = NIF.emit_entry(M, :b, [String.duplicate("x", 100)], 2)
        NIF.emit(:local, b, M, :b, 1, 3, 0, %{y: 2})
        NIF.emit(:tail_call, b, M, :b, 1, 4, 0, {M, :c, [3]})
        c = NIF.emit_entry(M, :c, [3], 5)
        NIF.emit_exit(c, :done)
        d = NIF.emit_entry(M, :d, [], 6)
        NIF.emit(:tail_call, d, M, :d, 0, 7, 0, {Enum, :map, [[], nil]})
        NIF.emit(:expr, a, M, :a, 1, 8, 0, {"x", 1})
        NIF.emit_as(self(), :spawn, :observed, nil, {me, %{}})
        _open = NIF.emit_entry(M, :e, [], 9)
        f = NIF.emit_entry(M, :f, [], 10)
        NIF.emit(:exception, f, M, :f, 0, 11, 0, {:error, :badarg, []})
        NIF.emit_exit(a, :ok)
      end

      work.()
      task = Task.async(work)
      Task.await(task)
      ElixirScope.Capture.RingBuffer.drain_all(s, 1000)
      clock = {NIF.now(), System.system_time(:microsecond)}

      for filters <- [%{}, %{pid: me}, %{order: :desc}, %{kinds: [:call, :return]}], c <- [clock, nil] do
        events = Event.from_store(NIF.query_events(s, filters, c))
        {groups, truncated} = NIF.query_call_trees(s, filters, NativeCallTrees.shapes(c))
        assert truncated > 0
        assert Enum.map(groups, &elem(&1, 0)) == Enum.sort(Enum.uniq(Enum.map(events, & &1.pid)))
        trees = NativeCallTrees.run(&NIF.query_call_trees(s, filters, &1), c)
        assert trees == CallTreeModel.call_trees_by_pid(events)
        assert map_size(trees) == if(filters == %{pid: me}, do: 1, else: 2)
      end

      [root | _] = EventCorrelator.call_trees(Event.from_store(NIF.query_events(s, %{pid: me}, clock)))
      assert root.status == :ok and Enum.any?(root.children, &(&1.status == :tail_call))
      shapes = NativeCallTrees.shapes(nil)
      assert NIF.query_call_trees(s, %{pid: spawn(fn -> :ok end)}, shapes) == {[], 0}
      assert_raise ArgumentError, ~r/query_call_trees.*session/, fn -> NIF.query_call_trees(:nope, %{}, shapes) end
      assert_raise ArgumentError, ~r/kinds/, fn -> NIF.query_call_trees(s, %{kinds: [:nope]}, shapes) end
      assert_raise ArgumentError, ~r/query_call_trees.*clock/, fn -> NIF.query_call_trees(s, %{}, :now) end
      # the shapes: an event's and a node's keys, exactly; the clock alone is query_events/3's
      assert_raise ArgumentError, ~r/query_call_trees.*clock/, fn -> NIF.query_call_trees(s, %{}, put_elem(shapes, 1, %{id: 1})) end
      assert_raise ArgumentError, ~r/query_call_trees.*clock/, fn -> NIF.query_call_trees(s, %{}, put_elem(shapes, 2, %{event: nil})) end
      assert_raise ArgumentError, ~r/query_call_trees.*clock/, fn -> NIF.query_call_trees(s, %{}, put_elem(shapes, 3, -1)) end
      assert_raise ArgumentError, ~r/query_call_trees.*clock/, fn -> NIF.query_call_trees(s, %{}, Tuple.delete_at(shapes, 3)) end
      assert_raise ArgumentError, ~r/query_call_trees.*clock/, fn -> NIF.query_call_trees(s, %{}, nil) end
      assert_raise ArgumentError, ~r/query_events.*clock/, fn -> NIF.query_events(s, %{}, shapes) end
    end

    test "the native trees' maps share the keys of their shapes, as maps built in Elixir do", %{s: s} do
      for i <- 1..20, do: NIF.emit_exit(NIF.emit_entry(M, :f, [i], 1), i)
      ElixirScope.Capture.RingBuffer.drain_all(s, 100)
      {[{_pid, roots}], 0} = NIF.query_call_trees(s, %{}, NativeCallTrees.shapes(nil))
      # the same nodes, assembled in Elixir over the structs of query_events/3
      elixir = EventCorrelator.call_trees(Event.from_store(NIF.query_events(s, %{}, nil)))
      assert roots == elixir
      # key tuples are literals, which neither counts: 3 words a map and one a value
      assert :erts_debug.size(roots) == :erts_debug.size(elixir)
      assert :erts_debug.size(roots) < 60 * length(roots)
    end

    test ":words bounds the heap words of the answer, whatever the payloads" do
      s = NIF.session_new(%{ring_capacity: 8192, max_depth: 10_000, max_width: 1_000_000, max_binary: 67_108_864,
                            max_bytes: 67_108_864})
      {values, _} = Gen.many(Gen.new(20_261_207), 300, &TermGen.term(&1, 4))
      values = values ++ [~c"a charlist: one byte, one cons each", 1.5, 1 <<< 70, String.duplicate("b", 200), %{a: 1}]
      :ok = NIF.session_install(s)
      on_exit(fn -> NIF.session_uninstall() end)

      for v <- values do
        c = NIF.emit_entry(M, :f, [v], 1)
        NIF.emit(:local, c, M, :f, 1, 2, 0, %{v: v})
        NIF.emit_exit(c, v)
      end

      ElixirScope.Capture.RingBuffer.drain_all(s, 10_000)
      {answer, _truncated} = NIF.query_call_trees(s, %{}, NativeCallTrees.shapes(nil))
      {words, events} = NIF.query_call_trees(s, %{}, :words)
      assert :erts_debug.size(answer) <= words
      assert events == 3 * length(values)
      assert NIF.query_call_trees(s, %{pid: spawn(fn -> :ok end)}, :words) == {0, 0}

      # with the payloads of most calls (no large binary: its bytes are counted as words), close
      for i <- 1..200, do: NIF.emit_exit(NIF.emit_entry(M, :g, [i, :a, {i, "id"}], 1), {:ok, i})
      ElixirScope.Capture.RingBuffer.drain_all(s, 10_000)
      filters = %{module: M, function: :g}
      {answer, 0} = NIF.query_call_trees(s, filters, NativeCallTrees.shapes(nil))
      assert {words, 400} = NIF.query_call_trees(s, filters, :words)
      assert words in :erts_debug.size(answer)..(3 * :erts_debug.size(answer))
      # as many events as expected, or fewer, or more
      for expected <- [0, 1, 400, 100_000] do
        assert NIF.query_call_trees(s, filters, NativeCallTrees.shapes(nil, expected)) == {answer, 0}
      end
    end

    test "payloads of every term kind decode as binary_to_term/1 decodes them" do
      s = NIF.session_new(%{ring_capacity: 4096, max_depth: 10_000, max_width: 1_000_000, max_binary: 67_108_864,
                            max_bytes: 67_108_864})
      {values, _} = Gen.many(Gen.new(20_261_206), 400, &TermGen.term(&1, 5))
      deep = Enum.reduce(1..100, :bottom, &{&1, [&2]})
      values = values ++ [deep, %{}, [], "", :"", {}, 1.0e300, -0.0, 1 <<< 64, -(1 <<< 63), [1 | 2], ~c"chars", <<1::3>>]
      :ok = NIF.session_install(s)
      for v <- values, do: NIF.emit(:custom, 0, nil, nil, nil, 0, 0, v)
      ElixirScope.Capture.RingBuffer.drain_all(s, 10_000)
      expected = s |> NIF.query(%{}) |> Enum.map(&Event.from_tuple(&1, nil))
      assert Event.from_store(NIF.query_events(s, %{}, nil)) == expected
      assert length(expected) == length(values)
    end

    test "an empty answer, and bad arguments raise ArgumentError", %{s: s} do
      assert NIF.query_events(s, %{}, nil) == {[], 0}
      assert_raise ArgumentError, ~r/session/, fn -> NIF.query_events(:nope, %{}, nil) end
      assert_raise ArgumentError, ~r/map of filters/, fn -> NIF.query_events(s, [], nil) end
      assert_raise ArgumentError, ~r/limit/, fn -> NIF.query_events(s, %{limit: 0}, nil) end
      assert_raise ArgumentError, ~r/clock/, fn -> NIF.query_events(s, %{}, {1}) end
      assert_raise ArgumentError, ~r/clock/, fn -> NIF.query_events(s, %{}, {1, :a}) end
      assert_raise ArgumentError, ~r/clock/, fn -> NIF.query_events(s, %{}, {1 <<< 70, 1}) end
      assert_raise ArgumentError, ~r/clock/, fn -> NIF.query_events(s, %{}, {0, (1 <<< 62) + 1}) end
      assert_raise ArgumentError, ~r/clock/, fn -> NIF.query_events(s, %{pid: self(), limit: 1}, {-(1 <<< 62) - 1, 0}) end
    end
  end

  describe "call_trees/2" do
    test "native trees equal the Elixir rules on generated sequences" do
      for seed <- 1..300 do
        :rand.seed(:exsss, {seed, seed * 7, 13})
        events = gen_events(Enum.random(0..60))

        assert EventCorrelator.call_trees_by_pid(events) == CallTreeModel.call_trees_by_pid(events), "seed #{seed}"
        assert EventCorrelator.call_trees(events) == CallTreeModel.call_trees(events), "seed #{seed}"
        first_pid = if events == [], do: self(), else: hd(events).pid
        one = Enum.filter(events, &(&1.pid == first_pid))
        assert EventCorrelator.open_calls(one) == CallTreeModel.open_calls(one), "seed #{seed}"

        shuffled = Enum.shuffle(events)
        assert EventCorrelator.call_trees_by_pid(shuffled) == CallTreeModel.call_trees_by_pid(shuffled), "seed #{seed} shuffled"
        assert EventCorrelator.call_trees(shuffled) == CallTreeModel.call_trees(shuffled), "seed #{seed} shuffled"
      end
    end

    test "events with fields no store writes (a damaged recording's) read as the Elixir rules read them" do
      for seed <- 1..200 do
        :rand.seed(:exsss, {seed, 3, seed * 5})

        events =
          for e <- gen_events(Enum.random(1..40)) do
            case Enum.random(1..8) do
              1 -> %{e | kind: Enum.random([nil, :bogus, "call"])}
              2 -> %{e | call_id: Enum.random([nil, 0, :x, -1])}
              3 -> %{e | module: Enum.random(["M", 1, nil])}
              4 -> %{e | function: Enum.random([nil, {:f}, :observed])}
              5 -> %{e | ts: Enum.random([0, -5, 1 <<< 70])}
              6 -> %{e | id: Enum.random([0, e.id])}
              _ -> e
            end
          end

        assert EventCorrelator.call_trees_by_pid(events) == CallTreeModel.call_trees_by_pid(events), "seed #{seed}"
        assert EventCorrelator.call_trees(events) == CallTreeModel.call_trees(events), "seed #{seed}"

        assert EventCorrelator.open_calls(events) == CallTreeModel.open_calls(events), "seed #{seed}"
      end
    end

    test "empty input" do
      assert EventCorrelator.call_trees([]) == []
      assert EventCorrelator.call_trees_by_pid([]) == %{}
      assert EventCorrelator.open_calls([]) == []
    end

    test "bad arguments raise ArgumentError" do
      ev = %Event{id: 1, ts: 1, pid: self(), kind: :call, module: M, function: :f, call_id: 1, payload: []}
      assert_raise ArgumentError, ~r/proper list/, fn -> NIF.call_trees(:nope, :roots) end
      assert_raise ArgumentError, ~r/proper list/, fn -> NIF.call_trees([ev | ev], :roots) end
      assert_raise ArgumentError, ~r/mode/, fn -> NIF.call_trees([ev], :other) end
      assert_raise ArgumentError, ~r/Event/, fn -> NIF.call_trees([%{ev | id: -1}], :roots) end
      assert_raise ArgumentError, ~r/Event/, fn -> NIF.call_trees([%{ev | id: 1 <<< 64}], :roots) end
      assert_raise ArgumentError, ~r/Event/, fn -> NIF.call_trees([Map.from_struct(ev)], :open_calls) end
      assert_raise ArgumentError, ~r/Event/, fn -> NIF.call_trees([Map.delete(ev, :call_id)], :by_pid) end
      assert_raise ArgumentError, ~r/Event/, fn -> NIF.call_trees([ev, 3], :roots) end
    end
  end

  # Random events of up to three processes: calls nested by a per-process stack, ends that
  # match the stack or not, tail calls whose next event is or is not their target, events of
  # calls, observed spawns, and messages.
  defp gen_events(n) do
    pids = [self(), spawn(fn -> :ok end), :c.pid(0, 1, 0)]

    {events, _} =
      Enum.map_reduce(1..n//1, %{}, fn id, stacks ->
        pid = Enum.random(pids)
        stack = Map.get(stacks, pid, [])
        top = List.first(stack)
        any_open = if stack == [], do: Enum.random([0, 7, 999]), else: Enum.random(stack)
        fun = Enum.random([:f, :g])
        base = %Event{id: id, ts: id * 10 + Enum.random(0..5), pid: pid, module: Enum.random([M, N]), function: fun, line: 1, link: 0}

        case Enum.random(1..10) do
          k when k <= 3 -> {%{base | kind: :call, call_id: id, payload: []}, Map.put(stacks, pid, [id | stack])}
          4 -> {%{base | kind: :return, call_id: top || any_open, payload: :ok}, Map.put(stacks, pid, Enum.drop(stack, 1))}
          5 -> {%{base | kind: :exception, call_id: any_open, payload: {:error, :x, []}}, stacks}
          6 -> {%{base | kind: :tail_call, call_id: top || any_open, payload: Enum.random([{M, :f, []}, {N, :g, [1]}, :bad])}, stacks}
          7 -> {%{base | kind: Enum.random([:local, :expr, :state]), call_id: any_open, payload: %{x: id}}, stacks}
          8 -> {%{base | kind: :spawn, function: Enum.random([:observed, :call_site]), call_id: any_open, payload: self()}, stacks}
          9 -> {%{base | kind: :send, call_id: Enum.random([0, any_open]), payload: {self(), :m}}, stacks}
          10 -> {%{base | kind: :call, module: nil, function: nil, call_id: id, payload: []}, Map.put(stacks, pid, [id | stack])}
        end
      end)

    events
  end
end

defmodule ElixirScope.Storage.NativeReadRecordingTest do
  # Query.call_tree/2 over a live session and over the recording saved from it (a native store):
  # both build the trees from their rows, and answer what the Elixir rules answer over their events.
  use ElixirScope.ScopeCase, async: false

  import Bitwise
  alias ElixirScope.{NIF, Query, Recording}
  alias ElixirScope.Query.Source
  alias ElixirScope.Test.CallTreeModel
  alias ElixirScope.Test.EventBuilder, as: B
  alias ElixirScope.Test.RecordingForgeV3, as: F

  @moduletag :tmp_dir

  test "call trees of the live store and of its recording", %{tmp_dir: dir} do
    start_scope!(capture: [lifecycle: false])
    me = self()

    other =
      spawn_link(fn ->
        a = NIF.emit_entry(Shop, :a, [1], 1)
        b = NIF.emit_entry(Shop, :b, [:x], 2)
        NIF.emit(:tail_call, b, Shop, :b, 1, 3, 0, {Shop, :c, [2]})
        c = NIF.emit_entry(Shop, :c, [2], 4)
        NIF.emit(:local, c, Shop, :c, 1, 5, 0, %{v: 1})
        NIF.emit_exit(c, :ok)
        _open = NIF.emit_entry(Shop, :d, [], 6)
        NIF.emit_exit(a, {:ok, "done"})
        send(me, :done)
      end)

    receive do: (:done -> :ok)
    for i <- 1..50, do: NIF.emit_exit(NIF.emit_entry(Shop, :mine, [i], 9), i)
    ElixirScope.flush()

    for pid <- [me, other] do
      expected = CallTreeModel.call_trees(Query.events(pid: pid))
      assert [_ | _] = expected
      assert Query.call_tree(pid) == expected
      assert Source.call_trees_by_pid(:live, %{pid: pid}) == %{pid => expected}
    end

    path = Path.join(dir, "trees.esrec")
    {:ok, _} = Recording.save(path)
    {:ok, rec} = Recording.load(path, default: false)
    on_exit(fn -> Recording.close(rec) end)
    assert rec.store != nil

    for pid <- [me, other] do
      expected = CallTreeModel.call_trees(Query.events(pid: pid, source: rec))
      assert [_ | _] = expected
      assert Query.call_tree(pid, source: rec) == expected
      assert Source.call_trees_by_pid(rec, %{pid: pid}) == %{pid => expected}
    end

    assert_raise ArgumentError, ~r/recording_query_call_trees/, fn -> NIF.recording_query_call_trees(:nope, %{}, nil) end
    assert_raise ArgumentError, ~r/clock/, fn -> NIF.recording_query_call_trees(rec.store, %{}, {1}) end
    assert_raise ArgumentError, ~r/clock/, fn -> NIF.recording_query_call_trees(rec.store, %{}, nil) end
  end

  test "a large answer: the same trees with the heap grown first or not, min_heap_size left as it was", %{tmp_dir: dir} do
    start_scope!(capture: [lifecycle: false])
    # 4,000 calls nested 4 deep, with locals: about 600,000 words of answer
    for i <- 1..1000 do
      a = NIF.emit_entry(Deep, :a, [i, "an argument"], 1)
      b = NIF.emit_entry(Deep, :b, [i], 2)
      NIF.emit(:local, b, Deep, :b, 1, 3, 0, %{i: i, s: "x"})
      for j <- 1..2, do: NIF.emit_exit(NIF.emit_entry(Deep, :c, [j], 4), {:ok, j})
      NIF.emit_exit(b, :ok)
      NIF.emit_exit(a, i)
    end

    ElixirScope.flush()
    me = self()
    expected = CallTreeModel.call_trees(Query.events(pid: me))
    assert length(expected) == 1000
    min_heap = Process.info(self(), :min_heap_size)
    assert Query.call_tree(me) == expected
    assert Process.info(self(), :min_heap_size) == min_heap

    # a process with a max_heap_size is not grown past it by an estimate
    capped = fn ->
      Process.flag(:max_heap_size, %{size: 50_000_000, kill: true, error_logger: false})
      Query.call_tree(me)
    end

    task = Task.async(capped)
    assert Task.await(task, 30_000) == expected

    path = Path.join(dir, "large.esrec")
    {:ok, _} = Recording.save(path)
    {:ok, rec} = Recording.load(path, default: false)
    on_exit(fn -> Recording.close(rec) end)
    assert Query.call_tree(me, source: rec) == CallTreeModel.call_trees(Query.events(pid: me, source: rec))
  end

  test "a duration is the difference of the integers, however a recording orders them", %{tmp_dir: dir} do
    pid = self()
    top = (1 <<< 64) - 1

    {b, a} = B.call(B.new(), pid, M, :a, [])
    {b, c} = B.call(b, pid, M, :b, [])
    {b, _} = B.ret(b, pid, c, :ok)
    {b, d} = B.call(b, pid, M, :c, [])
    {b, _} = B.ret(b, pid, d, :ok)
    {b, _} = B.ret(b, pid, a, :ok)
    # a: from the top ts to 1 (below -2^63); b: ends 5 ns before it starts; c: from 2^63 + 5 to 3
    ts = %{1 => top, 2 => 100, 3 => 95, 4 => (1 <<< 63) + 5, 5 => 3, 6 => 1}
    events = for e <- B.events(b), do: %{e | ts: ts[e.id]}
    path = Path.join(dir, "durations.esrec")
    File.write!(path, F.build([F.segment_of(events)], %{node: node(), clock: {0, 0}}))
    {:ok, rec} = Recording.load(path, default: false)
    on_exit(fn -> Recording.close(rec) end)

    assert [%{duration_ns: da, children: [%{duration_ns: db}, %{duration_ns: dc}]}] = trees = Query.call_tree(pid, source: rec)
    assert {da, db, dc} == {1 - top, -5, 3 - ((1 <<< 63) + 5)}
    assert trees == CallTreeModel.call_trees(Query.events(pid: pid, source: rec))
  end
end
