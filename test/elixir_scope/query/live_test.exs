defmodule ElixirScope.Query.LiveTest do
  # The query layer over the live native store (the default source).
  use ElixirScope.ScopeCase, async: false

  import ExUnit.CaptureIO
  alias ElixirScope.Capture.InstrumentationRuntime, as: R
  alias ElixirScope.Query
  require ElixirScope.Query
  alias ElixirScope.Query.Cursor

  setup do
    # counts events exactly: no lifecycle events
    start_scope!(capture: [lifecycle: false])

    for i <- 1..300 do
      c = R.report_function_entry(Live, :step, [i])
      R.report_local_variable_snapshot(c, %{i: i, sq: i * i}, 4)
      R.report_function_exit(c, rem(i, 7))
    end

    ElixirScope.flush()
    :ok
  end

  test "payload predicates with limits and pages over the native store" do
    sevens = Query.events(kind: :return, payload: &(&1 == 0), limit: 10)
    assert length(sevens) == 10 and Enum.all?(sevens, &(&1.payload == 0))
    assert length(Query.events(kind: :return, payload: &(&1 == 0))) == 42
    last = Query.events(kind: :return, payload: &(&1 == 0), order: :desc, limit: 1)
    assert last == [List.last(Query.events(kind: :return, payload: &(&1 == 0)))]

    {:ok, p1, next} = Query.page([pid: self(), kind: :call], 128)
    {:ok, p2, next} = Query.page(next, 128)
    {:ok, p3, nil} = Query.page(next, 128)
    assert Enum.map(p1 ++ p2 ++ p3, & &1.payload) == for(i <- 1..300, do: [i])
    assert Enum.count(Query.stream([pid: self()], chunk: 100)) == 900
    assert Query.events(function: :step, kind: :call, limit: 1) |> hd() |> Map.get(:payload) == [1]
  end

  test "cursor, variable history, logpoint and IEx output on the live session" do
    c = Cursor.new(pid: self())
    {:ok, c} = Cursor.next_call(c, {Live, :step, 1})
    {:ok, c} = Cursor.next_call(c, {Live, :step, 1})
    assert c.event.payload == [2]
    {:ok, c} = Cursor.step_back(c)
    assert c.event.kind == :return and c.event.payload == 1
    assert Enum.map(Query.variable_history(self(), :sq), & &1.value) |> Enum.take(3) == [1, 4, 9]
    hits = Query.logpoint({Live, :step, 1}, fn h -> h.locals.sq - hd(h.args) end)
    assert length(hits) == 300 and List.last(hits).result == 300 * 300 - 300
    out = capture_io(fn -> ElixirScope.IEx.history(self(), 3) end)
    assert out =~ "← Live.step/1 = #{rem(300, 7)}"
    assert length(String.split(out, "\n", trim: true)) == 3
    assert capture_io(fn -> ElixirScope.IEx.stats() end) =~ ~r/stored\s+900/
  end
end

defmodule ElixirScope.Query.SourceEquivalenceTest do
  # The recording index must answer every filter exactly as the native store does.
  use ElixirScope.ScopeCase, async: false

  alias ElixirScope.Capture.InstrumentationRuntime, as: R
  alias ElixirScope.{Query, Recording}

  test "live store and loaded recording give the same answers to the same filters" do
    start_scope!()
    parent = self()

    workers =
      for w <- 1..3 do
        spawn_link(fn ->
          for i <- 1..40 do
            c = R.report_function_entry(Eq, if(rem(i, 2) == 0, do: :even, else: :odd), [w, i])
            R.report_local_variable_snapshot(c, %{i: i}, 2)
            if rem(i, 5) == 0, do: R.report_state_change(c, :after, {w, i})
            id = R.report_message_send(parent, {w, i})
            if rem(i, 3) == 0, do: R.report_custom(:mark, i, id)
            R.report_function_exit(c, i)
          end

          send(parent, {:done, self()})
        end)
      end

    for w <- workers, do: assert_receive({:done, ^w}, 5000)
    ElixirScope.flush()
    all = Query.events()
    path = Path.join(System.tmp_dir!(), "es-eq-#{System.unique_integer([:positive])}.esrec")
    on_exit(fn -> File.rm(path) end)
    {:ok, _} = Recording.save(path)
    {:ok, rec} = Recording.load(path, default: false)
    [w1, w2 | _] = workers
    mid = Enum.at(all, div(length(all), 2))
    a_call = Enum.find(all, &(&1.kind == :call and &1.pid == w2))
    a_corr = Enum.find(all, & &1.correlation_id).correlation_id

    filters = [
      [],
      [pid: w1],
      [pid: w1, kind: :state],
      [pid: w2, kind: [:call, :return], order: :desc, limit: 7],
      [module: Eq, function: :even],
      [module: Eq, function: :odd, arity: 2, kind: :return],
      [module: Eq],
      [kind: :custom],
      [kind: [:send, :state]],
      [call_id: a_call.id],
      [correlation_id: a_corr],
      [since: mid.ts],
      [until: mid.ts, order: :desc, limit: 5],
      [after_id: mid.id, limit: 10],
      [before_id: mid.id, order: :desc, limit: 3],
      [pid: w1, after_id: 10, before_id: mid.id],
      [pid: w2, since: mid.ts, kind: :local]
    ]

    for f <- filters do
      live = Query.events(f)
      assert is_list(live)
      assert Query.events(f ++ [source: rec]) == live, "filters #{inspect(f)}"
    end

    Recording.close(rec)
  end
end
