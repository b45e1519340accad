defmodule ElixirScope.CaptureTest do
  # Tests that count events exactly run without the lifecycle observer (capture: [lifecycle: false]),
  # which adds :spawn/:exit events of its own (test/elixir_scope/capture/lifecycle_test.exs).
  use ElixirScope.ScopeCase, async: false
  import Bitwise

  alias ElixirScope.Capture.{InstrumentationRuntime, Switch}
  alias ElixirScope.Storage.{DataAccess, EventCorrelator}
  alias ElixirScope.{Event, NIF, Truncated}

  describe "lifecycle" do
    test "start, status, stop" do
      refute ElixirScope.running?()
      refute Switch.on?(Foo)
      start_scope!()
      assert ElixirScope.running?()
      assert Switch.on?(Foo)
      assert %{running: true, enabled: true, fuse: nil} = ElixirScope.status()
      assert {:error, :already_running} = ElixirScope.start()
      :ok = ElixirScope.stop()
      refute ElixirScope.running?()
      refute Switch.on?(Foo)
      assert InstrumentationRuntime.report_function_entry(Foo, :bar, [1]) == nil
      assert ElixirScope.get_events() == []
    end

    test "starts as a child spec in a user's supervision tree" do
      ElixirScope.stop()
      {:ok, sup} = Supervisor.start_link([{ElixirScope, capture: [buffer_size: 1024]}], strategy: :one_for_one)
      assert ElixirScope.running?()
      cid = InstrumentationRuntime.report_function_entry(Foo, :bar, [1])
      assert is_integer(cid)
      Supervisor.stop(sup)
      refute ElixirScope.running?()
    end

    test "invalid options are refused by the child spec" do
      ElixirScope.stop()
      Process.flag(:trap_exit, true)
      assert {:error, {msg, _}} =
               Supervisor.start_link([{ElixirScope, capture: [buffer_size: 3]}], strategy: :one_for_one)
               |> then(fn {:error, {:shutdown, {:failed_to_start_child, ElixirScope, m}}} -> {:error, {m, nil}} end)

      assert msg =~ "capture.buffer_size"
    end
  end

  describe "recording through the runtime API" do
    setup do
      start_scope!()
    end

    test "call, locals, expression, state, return; read back in order with payloads" do
      cid = InstrumentationRuntime.report_function_entry(MyMod, :work, [1, "two", :three, %{four: 4}], 12)
      assert is_integer(cid) and cid > 0
      :ok = InstrumentationRuntime.report_local_variable_snapshot(cid, [x: 10, y: [1, 2]], 13)
      :ok = InstrumentationRuntime.report_expression_value(cid, "x * 2", 20, 14)
      :ok = InstrumentationRuntime.report_state_change(cid, :before, %{count: 1}, 15)
      :ok = InstrumentationRuntime.report_state_change(cid, :after, %{count: 2}, 15)
      :ok = InstrumentationRuntime.report_function_exit(cid, {:ok, 42})

      events = ElixirScope.get_events(pid: self())
      assert [:call, :local, :expr, :state, :state, :return] = Enum.map(events, & &1.kind)
      [call, local, expr, s1, s2, ret] = events
      assert %Event{module: MyMod, function: :work, arity: 4, line: 12, payload: [1, "two", :three, %{four: 4}]} = call
      assert call.call_id == call.id
      assert call.return_id == ret.id
      assert local.payload == %{x: 10, y: [1, 2]} and local.call_id == cid and local.line == 13
      assert expr.payload == {"x * 2", 20}
      assert s1.payload == {:before, %{count: 1}} and s2.payload == {:after, %{count: 2}}
      assert %Event{kind: :return, payload: {:ok, 42}, module: MyMod, function: :work, arity: 4} = ret
      assert Enum.all?(events, &(&1.pid == self()))
      assert events |> Enum.map(& &1.ts) |> Enum.chunk_every(2, 1, :discard) |> Enum.all?(fn [a, b] -> a <= b end)
      assert is_integer(call.wall_time)
      assert abs(call.wall_time - System.system_time(:microsecond)) < 10_000_000
    end

    test "an OTP callback's reports in one NIF call each record what the separate reports record" do
      alias ElixirScope.AST.InjectorHelpers
      message = {:add, 1}
      args = [message, {self(), make_ref()}, %{n: 0}]
      result = {:reply, :ok, %{n: 1}}

      # as a custom runtime reports them, one call per event
      cid = InstrumentationRuntime.report_function_entry(Srv, :handle_call, args, 9)
      :ok = InjectorHelpers.callback_pre(InstrumentationRuntime, cid, 9, {:before, %{n: 0}}, {message, %{clause: :call, waited_us: nil}})
      :ok = InjectorHelpers.report_callback_state(InstrumentationRuntime, cid, :gen_server, result, %{n: 0}, 9)
      :ok = InstrumentationRuntime.report_function_exit(cid, result)
      # as the default runtime's generated code reports them
      cid2 = NIF.emit_entry(Srv, :handle_call, args, 9)
      :ok = NIF.emit_pre(cid2, 9, {:before, %{n: 0}}, {message, %{clause: :call, waited_us: nil}})
      :ok = NIF.emit_callback_exit(cid2, result, InjectorHelpers.state_after(:gen_server, result, %{n: 0}), 9)
      # nothing to report: nothing recorded
      cid3 = NIF.emit_entry(Srv, :handle_info, [:tick, %{}], 3)
      :ok = NIF.emit_pre(cid3, 3, nil, nil)
      :ok = NIF.emit_callback_exit(cid3, :weird, InjectorHelpers.state_after(:gen_server, :weird, %{}), 3)

      events = ElixirScope.get_events(pid: self())
      assert length(events) == 12
      {separate, rest} = Enum.split(events, 5)
      {combined, bare} = Enum.split(rest, 5)
      shape = fn [call | _] = evs ->
        Enum.map(evs, &{&1.kind, &1.module, &1.function, &1.arity, &1.line, &1.call_id == call.id, &1.payload})
      end

      assert [:call, :state, :receive, :state, :return] = Enum.map(separate, & &1.kind)
      assert shape.(combined) == shape.(separate)
      assert [%{payload: {:before, %{n: 0}}}, %{function: :receive, payload: {^message, %{clause: :call, waited_us: nil}}},
              %{payload: {:after, %{n: 1}}}, %{kind: :return, payload: ^result}] = tl(combined)
      assert hd(combined).return_id == List.last(combined).id
      # nothing to report: only the call and its return
      assert [%{kind: :call}, %{kind: :return, payload: :weird}] = bare

      assert_raise ArgumentError, ~r/emit_pre\/4 expects/, fn -> NIF.emit_pre(0, 1, nil, nil) end
      assert_raise ArgumentError, ~r/emit_pre\/4 expects/, fn -> NIF.emit_pre(cid, -1, nil, nil) end
      assert_raise ArgumentError, ~r/emit_callback_exit\/4 expects/, fn -> NIF.emit_callback_exit(cid, 1, nil, :line) end
    end

    test "exceptions and tail calls" do
      cid = InstrumentationRuntime.report_function_entry(M, :f, [])
      st = [{M, :f, 0, [file: ~c"lib/m.ex", line: 3]}]
      InstrumentationRuntime.report_error(cid, :error, %RuntimeError{message: "boom"}, st)
      cid2 = InstrumentationRuntime.report_function_entry(M, :loop, [3])
      InstrumentationRuntime.report_tail_call(cid2, M, :loop, [2], 7)
      [call, exc, call2, tail] = ElixirScope.get_events(pid: self())
      assert exc.kind == :exception and exc.payload == {:error, %RuntimeError{message: "boom"}, st}
      assert call.return_id == exc.id
      assert tail.kind == :tail_call and tail.payload == {M, :loop, [2]}
      assert call2.return_id == tail.id
    end

    test "message, spawn, exit and custom events with correlation ids" do
      id = InstrumentationRuntime.report_message_send(self(), {:hello, 1})
      assert is_integer(id)
      rid = InstrumentationRuntime.report_message_receive({:hello, 1}, id)
      InstrumentationRuntime.report_spawn(self(), id)
      InstrumentationRuntime.report_custom(:checkpoint, %{step: 3}, id)
      InstrumentationRuntime.report_process_exit(:normal)
      kinds = ElixirScope.get_events(pid: self()) |> Enum.map(& &1.kind)
      assert kinds == [:send, :receive, :spawn, :custom, :exit]
      correlated = DataAccess.get_correlated_events(id)
      assert Enum.map(correlated, & &1.kind) == [:receive, :spawn, :custom]
      assert Enum.any?(correlated, &(&1.id == rid))
      [custom] = ElixirScope.get_events(event_type: :custom)
      assert custom.payload == {:checkpoint, %{step: 3}}
    end

    test "bad arguments never raise into user code" do
      assert InstrumentationRuntime.report_function_entry("not a module", :f, []) == nil
      assert InstrumentationRuntime.report_function_entry(M, :f, [1 | 2]) == nil
      assert InstrumentationRuntime.report_function_exit(-5, :x) == :ok
      assert InstrumentationRuntime.report_function_exit(:bad, :x) == :ok
      assert InstrumentationRuntime.report_local_variable_snapshot(1, :not_vars, 1) == :ok
      assert InstrumentationRuntime.report_state_change(1, :sideways, %{}, 1) == :ok
    end

    test "per-module and global switching" do
      :ok = ElixirScope.disable(Quiet)
      assert InstrumentationRuntime.report_function_entry(Quiet, :f, []) == nil
      assert is_integer(InstrumentationRuntime.report_function_entry(Loud, :f, []))
      :ok = ElixirScope.disable()
      assert InstrumentationRuntime.report_function_entry(Loud, :f, []) == nil
      :ok = ElixirScope.enable()
      assert is_integer(InstrumentationRuntime.report_function_entry(Quiet, :f, []))
      assert length(ElixirScope.get_events(module: Loud)) == 1
    end
  end

  test "emit_value/4 records the event emit/8 records for a local, an expression and a tail call" do
    start_scope!()
    call = NIF.emit_entry(M, :f, [1], 3)

    for {kind, payload} <- [local: %{x: 1}, expr: {"x + 1", 2}, tail_call: {M, :g, [self()]}] do
      :ok = NIF.emit_value(kind, call, 9, payload)
      NIF.emit(kind, call, nil, nil, nil, 9, nil, payload)
    end

    _ = ElixirScope.flush()
    events = ElixirScope.get_events(pid: self()) |> Enum.reject(&(&1.kind == :call))
    assert length(events) == 6
    # the same fields but id and time, pairwise (the tail call closes the call: its mfa is the call's)
    for [a, b] <- Enum.chunk_every(events, 2) do
      assert Map.drop(a, [:id, :ts, :wall_time]) == Map.drop(b, [:id, :ts, :wall_time])
    end
  end

  describe "the native functions validate their arguments" do
    setup do
      start_scope!()
      %{session: ElixirScope.Capture.Session.info().session}
    end

    test "wrong types raise ArgumentError with a message", %{session: s} do
      assert_raise ArgumentError, ~r/emit_entry\/4 expects/, fn -> NIF.emit_entry("m", :f, [], 0) end
      assert_raise ArgumentError, ~r/emit_entry\/4 expects/, fn -> NIF.emit_entry(M, :f, :notalist, 0) end
      assert_raise ArgumentError, ~r/emit_entry\/4 expects/, fn -> NIF.emit_entry(M, :f, [], -1) end
      assert_raise ArgumentError, ~r/call id/, fn -> NIF.emit_exit(0, 1) end
      assert_raise ArgumentError, ~r/unknown event kind/, fn -> NIF.emit(:nope, nil, nil, nil, nil, 0, nil, 1) end
      assert_raise ArgumentError, ~r/arity/, fn -> NIF.emit(:local, 1, M, :f, 300, 0, nil, 1) end
      assert_raise ArgumentError, ~r/emit_value\/4 expects/, fn -> NIF.emit_value(:call, 1, 0, 1) end
      assert_raise ArgumentError, ~r/emit_value\/4 expects/, fn -> NIF.emit_value(:expr, 0, 0, 1) end
      assert_raise ArgumentError, ~r/emit_value\/4 expects/, fn -> NIF.emit_value(:expr, 1, -1, 1) end
      assert_raise ArgumentError, ~r/expects a session/, fn -> NIF.drain(make_ref(), 10) end
      assert_raise ArgumentError, ~r/max must be a positive/, fn -> NIF.drain(s, 0) end
      assert_raise ArgumentError, ~r/expects a map/, fn -> NIF.query(s, [pid: self()]) end
      assert_raise ArgumentError, ~r/pid filter/, fn -> NIF.query(s, %{pid: :nope}) end
      assert_raise ArgumentError, ~r/needs a module/, fn -> NIF.query(s, %{function: :f}) end
      assert_raise ArgumentError, ~r/order/, fn -> NIF.query(s, %{order: :sideways}) end
      assert_raise ArgumentError, ~r/power of two/, fn -> NIF.session_new(%{ring_capacity: 1000}) end
      assert_raise ArgumentError, ~r/overflow/, fn -> NIF.session_new(%{overflow: :maybe}) end
      assert_raise ArgumentError, ~r/redact/, fn -> NIF.session_new(%{redact: [1, 2]}) end
      assert_raise ArgumentError, ~r/expects a map/, fn -> NIF.session_new([]) end
    end

    test "bad filters come back as errors naming them" do
      assert {:error, msg} = ElixirScope.get_events(colour: :blue)
      assert msg =~ "unknown filter :colour"
      assert {:error, msg} = ElixirScope.get_events(event_type: :bogus)
      assert msg =~ "unknown event kind"
      assert {:error, msg} = ElixirScope.get_events(pid: :no_such_registered_name)
      assert msg =~ "no process is registered"
    end
  end

  describe "capture limits and redaction" do
    test "deep, wide and huge terms are truncated, visibly, without crashing" do
      start_scope!(capture: [max_depth: 4, max_width: 5, max_binary: 8, max_payload_bytes: 2048])
      deep = Enum.reduce(1..100_000, :bottom, fn _, acc -> [acc] end)
      wide = Enum.to_list(1..1000)
      big = :binary.copy("x", 1_000_000)
      cid = InstrumentationRuntime.report_function_entry(M, :f, [deep, wide, big, Map.new(1..100, &{&1, &1})])
      assert is_integer(cid)
      [call] = ElixirScope.get_events(call_id: cid)
      assert call.truncated?
      [d, w, b, m] = call.payload
      assert [[[%Truncated{kind: :depth}]]] = d
      # 5 kept, 5 more looked at, the rest not counted (capture cost does not grow with the list)
      assert [1, 2, 3, 4, 5, %Truncated{kind: :list, omitted: :unknown}] = w
      assert %Truncated{kind: :binary, omitted: 999_992, preview: "xxxxxxxx"} = b
      assert map_size(m) == 6
      assert %Truncated{kind: :map, omitted: 95} = m[:"$es_truncated"]
    end

    test "a total byte budget caps every payload" do
      start_scope!(capture: [max_width: 100_000, max_depth: 100, max_payload_bytes: 256])
      InstrumentationRuntime.report_function_entry(M, :f, [Enum.to_list(1..10_000)])
      [call] = ElixirScope.get_events(module: M)
      [list] = call.payload
      assert call.truncated?
      assert Enum.any?(list, &match?(%Truncated{kind: :bytes}, &1))
    end

    test "secrets under redacted keys never reach the store" do
      start_scope!()
      args = [%{user: "ann", password: "hunter2"}, [token: "abc", keep: 1], %{"api_key" => "k-123", "x" => 1}]
      cid = InstrumentationRuntime.report_function_entry(Login, :run, args)
      [call] = ElixirScope.get_events(call_id: cid)
      assert call.redacted?
      assert [%{user: "ann", password: :"[REDACTED]"}, [token: :"[REDACTED]", keep: 1], %{"api_key" => :"[REDACTED]", "x" => 1}] =
               call.payload

      {bin, _flags} = NIF.encode(ElixirScope.Capture.Session.info().session, args)
      refute bin =~ "hunter2"
      refute bin =~ "k-123"
    end

    test "every term type round-trips" do
      start_scope!(capture: [max_depth: 50, max_width: 1000, max_binary: 10_000, max_payload_bytes: 100_000])
      ref = make_ref()
      port = hd(Port.list() ++ [nil])

      values = [
        0, -1, 255, 256, -2_147_483_648, 2_147_483_647, 2_147_483_648, 9_223_372_036_854_775_807,
        -9_223_372_036_854_775_808, 123_456_789_012_345_678_901_234_567_890, -(2 ** 200), 1.5, -0.0, 1.0e300,
        :atom, :"with space", :ünïcødé, :"日本", true, nil, "binary", <<1, 2, 3>>, <<1::3>>, <<255, 7::5>>, "",
        [], [1, 2], [1 | 2], [[1, [2]] | :tail], {}, {1, {2, {3}}}, %{}, %{a: 1, b: %{c: [1]}}, %{{1, 2} => [3]},
        self(), ref, port, String.duplicate("é", 10), List.duplicate(:x, 300), Tuple.duplicate(0, 300)
      ]

      for v <- values do
        cid = InstrumentationRuntime.report_function_entry(RoundTrip, :f, [v])
        [call] = ElixirScope.get_events(call_id: cid)
        assert call.payload == [v], "round trip of #{inspect(v)} gave #{inspect(call.payload)}"
        refute call.truncated?
      end
    end
  end

  describe "volume, order, drops" do
    test "1,000 processes writing at once: every event stored, each process's order exact" do
      start_scope!(capture: [buffer_size: 1 <<< 18, lifecycle: false])
      parent = self()

      pids =
        for p <- 1..1000 do
          spawn_link(fn ->
            receive do
              :go ->
                for i <- 1..50 do
                  cid = InstrumentationRuntime.report_function_entry(Load, :step, [p, i])
                  InstrumentationRuntime.report_function_exit(cid, i)
                end

                send(parent, {:done, self()})
            end
          end)
        end

      Enum.each(pids, &send(&1, :go))
      for pid <- pids, do: assert_receive({:done, ^pid}, 10_000)
      stats = ElixirScope.stats()
      assert stats.emitted == 100_000
      assert stats.stored == 100_000
      assert stats.dropped == 0
      assert stats.emitted == stats.stored + stats.dropped + stats.pending

      for pid <- Enum.take_random(pids, 20) do
        events = DataAccess.get_events_for_pid(pid)
        assert length(events) == 100
        steps = for %{kind: :call, payload: [_, i]} <- events, do: i
        assert steps == Enum.to_list(1..50)
        assert events |> Enum.map(& &1.kind) |> Enum.chunk_every(2) |> Enum.all?(&(&1 == [:call, :return]))
      end
    end

    test "a full ring drops the newest, counts every drop, and keeps the accounting exact" do
      # a long flush interval and no back-pressure (producers would drain the ring themselves)
      start_scope!(capture: [buffer_size: 1024, max_wait_us: 0, flush_interval: 60_000, fuse: [enabled: false], lifecycle: false])
      Process.sleep(20)
      for i <- 1..5000, do: InstrumentationRuntime.report_custom(:tick, i)
      stats = ElixirScope.stats()
      assert stats.emitted == 5000
      assert stats.stored == 1024
      assert stats.dropped_by_reason.ring_full == 5000 - 1024
      assert stats.emitted == stats.stored + stats.dropped
      ticks = for %{payload: {:tick, i}} <- ElixirScope.get_events(event_type: :custom), do: i
      assert ticks == Enum.to_list(1..1024)
    end

    test "overwrite_oldest keeps the newest events and counts the overwritten" do
      start_scope!(capture: [buffer_size: 1024, overflow: :overwrite_oldest, flush_interval: 60_000, fuse: [enabled: false], lifecycle: false])
      Process.sleep(20)
      for i <- 1..5000, do: InstrumentationRuntime.report_custom(:tick, i)
      stats = ElixirScope.stats()
      assert stats.dropped_by_reason.overwritten == 5000 - 1024
      assert stats.emitted == stats.stored + stats.dropped
      ticks = for %{payload: {:tick, i}} <- ElixirScope.get_events(event_type: :custom), do: i
      assert ticks == Enum.to_list((5000 - 1023)..5000)
    end

    test "the store's byte cap evicts the oldest segments and counts them" do
      start_scope!(storage: [max_bytes: 200_000, segment_events: 256], capture: [lifecycle: false])
      for i <- 1..20_000, do: InstrumentationRuntime.report_custom(:tick, i)
      stats = ElixirScope.stats()
      assert stats.stored == 20_000
      assert stats.evicted > 0
      assert stats.live_events == stats.stored - stats.evicted
      assert stats.bytes_used <= 200_000
      ticks = for %{payload: {:tick, i}} <- ElixirScope.get_events(event_type: :custom), do: i
      assert length(ticks) == stats.live_events
      assert List.last(ticks) == 20_000
      assert ticks == Enum.sort(ticks)
    end

    @tag :capture_log
    test "the fuse switches capture off when the ring stays full, and says why" do
      start_scope!(capture: [buffer_size: 64, max_wait_us: 0, flush_interval: 60_000, fuse: [max_full_ms: 50, check_interval: 10]])
      # let the writers' first (immediate) drain pass; they then sleep for a minute
      Process.sleep(20)
      for i <- 1..200, do: InstrumentationRuntime.report_custom(:tick, i)
      Process.sleep(200)
      status = ElixirScope.status()
      assert %{reason: reason} = status.fuse
      assert reason =~ "ring buffer stayed full"
      refute status.enabled
      assert InstrumentationRuntime.report_function_entry(M, :f, []) == nil
      :ok = ElixirScope.enable()
      assert ElixirScope.status().fuse == nil
    end

    test "a crashed writer is restarted and nothing in the ring is lost" do
      start_scope!(capture: [writers: 1, flush_interval: 50, lifecycle: false])
      [writer] = ElixirScope.Capture.AsyncWriterPool.writers()
      for i <- 1..500, do: InstrumentationRuntime.report_custom(:tick, i)
      Process.exit(writer, :kill)
      Process.sleep(20)
      [new_writer] = ElixirScope.Capture.AsyncWriterPool.writers()
      assert new_writer != writer
      Process.sleep(150)
      assert ElixirScope.stats().stored == 500
    end
  end

  describe "queries and correlation" do
    setup do
      start_scope!(capture: [lifecycle: false])
    end

    test "filters by function, kind, window, limit and order" do
      t0 = ElixirScope.Capture.Ingestor.now()
      for i <- 1..10, do: InstrumentationRuntime.report_function_exit(InstrumentationRuntime.report_function_entry(Q, :a, [i]), i)
      t1 = ElixirScope.Capture.Ingestor.now()
      for i <- 1..5, do: InstrumentationRuntime.report_function_entry(Q, :b, [i, i])
      assert length(DataAccess.get_events_for_function(Q, :a, 1)) == 20
      assert length(DataAccess.get_events_for_function(Q, :b)) == 5
      assert length(DataAccess.get_events_for_module(Q)) == 25
      assert length(ElixirScope.get_events(module: Q, event_type: :return)) == 10
      assert length(DataAccess.get_events_in_window(t0, t1)) == 20
      assert [%{payload: [5, 5]}] = ElixirScope.get_events(module: Q, function: :b, order: :desc, limit: 1)
      assert [%{payload: [1]}, %{payload: 1}] = ElixirScope.get_events(module: Q, limit: 2)
      since = DateTime.utc_now()
      InstrumentationRuntime.report_custom(:late, 1)
      assert [%{kind: :custom}] = ElixirScope.get_events(since: since)
    end

    test "call trees nest calls, attach locals, and follow tail calls" do
      a = InstrumentationRuntime.report_function_entry(T, :a, [])
      b = InstrumentationRuntime.report_function_entry(T, :b, [1])
      InstrumentationRuntime.report_local_variable_snapshot(b, %{x: 1}, 3)
      InstrumentationRuntime.report_function_exit(b, :b_done)
      c = InstrumentationRuntime.report_function_entry(T, :c, [])
      InstrumentationRuntime.report_tail_call(c, T, :d, [], 9)
      d = InstrumentationRuntime.report_function_entry(T, :d, [])
      InstrumentationRuntime.report_error(d, :throw, :oops, [])
      InstrumentationRuntime.report_function_exit(a, :a_done)
      _open = InstrumentationRuntime.report_function_entry(T, :never_returns, [])

      [root, open] = EventCorrelator.call_trees(ElixirScope.get_events(pid: self()))
      assert root.event.function == :a and root.status == :ok and root.return.payload == :a_done
      assert is_integer(root.duration_ns)
      [nb, nc] = root.children
      assert nb.event.function == :b and nb.status == :ok
      assert [%{payload: %{x: 1}}] = nb.events
      assert nc.event.function == :c and nc.status == :tail_call
      [nd] = nc.children
      assert nd.event.function == :d and nd.status == :exception
      assert nc.exception == nd.exception
      assert open.status == :open
      assert Enum.map(EventCorrelator.flatten([root]), fn {depth, n} -> {depth, n.event.function} end) ==
               [{0, :a}, {1, :b}, {1, :c}, {2, :d}]
      assert [{_, _, _}, {_, _, _}, {_, _, _}, {_, _, _}, {_, nil, nil}] = EventCorrelator.pair_calls(ElixirScope.get_events(pid: self()))
      _ = {a, c}
    end

    test "a tail call into code that is not instrumented closes the frame at the jump" do
      a = InstrumentationRuntime.report_function_entry(T, :a, [])
      b = InstrumentationRuntime.report_function_entry(T, :b, [])
      # b jumps to GenServer.call (not instrumented): nothing of it is recorded
      InstrumentationRuntime.report_tail_call(b, GenServer, :call, [:srv, :ping], 4)
      c = InstrumentationRuntime.report_function_entry(T, :c, [])
      InstrumentationRuntime.report_function_exit(c, :ok)
      InstrumentationRuntime.report_function_exit(a, :done)
      [root] = EventCorrelator.call_trees(ElixirScope.get_events(pid: self()))
      assert [{0, :a}, {1, :b}, {1, :c}] ==
               Enum.map(EventCorrelator.flatten([root]), fn {d, n} -> {d, n.event.function} end)
      [nb, _nc] = root.children
      assert nb.status == :tail_call and is_integer(nb.duration_ns)
    end
  end
end
