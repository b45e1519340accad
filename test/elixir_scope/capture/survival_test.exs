defmodule ElixirScope.Capture.SurvivalTest do
  # The session (ring + store), the ids and the switch outlive any crash of ElixirScope's processes.
  use ElixirScope.ScopeCase, async: false
  import Bitwise

  alias ElixirScope.Capture.{AsyncWriterPool, InstrumentationRuntime, Owner, Session}

  @moduletag :capture_log

  # Producers calling the runtime in a loop until told to stop; each reports how many
  # events it attempted (a call id or nil per entry, :ok per exit).
  defp start_load(n) do
    parent = self()

    for p <- 1..n do
      spawn_link(fn -> produce(parent, p, 0) end)
    end
  end

  defp produce(parent, p, i) do
    receive do
      :stop -> send(parent, {:produced, self(), i})
    after
      0 ->
        cid = InstrumentationRuntime.report_function_entry(Load, :step, [p, i], 1)
        InstrumentationRuntime.report_function_exit(cid, i)
        if rem(i, 50) == 0, do: Process.sleep(1)
        produce(parent, p, i + 1)
    end
  end

  defp stop_load(pids) do
    for pid <- pids, do: send(pid, :stop)
    for pid <- pids, do: assert_receive({:produced, ^pid, _}, 10_000)
  end

  defp assert_identity(stats) do
    assert stats.emitted == stats.stored + stats.dropped + stats.lost + stats.pending,
           "emitted #{stats.emitted} != stored #{stats.stored} + dropped #{stats.dropped} + lost #{stats.lost} + pending #{stats.pending}"
  end

  defp await(fun, tries \\ 200) do
    cond do
      fun.() -> :ok
      tries == 0 -> flunk("condition not met in time")
      true -> Process.sleep(10) && await(fun, tries - 1)
    end
  end

  defp kill(name) do
    case Process.whereis(name) do
      nil ->
        :ok

      pid ->
        ref = Process.monitor(pid)
        Process.exit(pid, :kill)
        assert_receive {:DOWN, ^ref, _, _, _}, 5_000
    end
  end

  test "killing the session and the writers repeatedly under load loses nothing; ids continue; disabled stays disabled" do
    start_scope!(capture: [buffer_size: 1 <<< 16, writers: 2, flush_interval: 2, fuse: [enabled: false]])
    session = Session.info().session
    first = InstrumentationRuntime.report_custom(:before_crashes, 1)
    assert is_integer(first)
    load = start_load(20)

    for round <- 1..12 do
      Process.sleep(15)
      if rem(round, 2) == 0, do: kill(Session), else: Enum.each(AsyncWriterPool.writers(), &Process.exit(&1, :kill))
    end

    stop_load(load)
    # same native session, and the event recorded before the crashes is still there
    assert Session.info().session == session
    assert [%{payload: {:before_crashes, 1}, id: ^first}] = ElixirScope.get_events(event_type: :custom)
    stats = ElixirScope.stats()
    assert stats.stored > 1_000
    assert stats.lost == 0
    assert_identity(stats)

    # ids continue after the restarts
    later = InstrumentationRuntime.report_custom(:after_crashes, 2)
    assert later > stats.emitted - 1

    # the switch survives a crash of every capture process
    :ok = ElixirScope.disable()
    kill(Session)
    kill(ElixirScope.Supervisor)
    await(fn -> Process.whereis(Session) != nil end)
    refute ElixirScope.status().enabled
    assert InstrumentationRuntime.report_custom(:while_disabled, 3) == nil
    :ok = ElixirScope.enable()
    assert InstrumentationRuntime.report_custom(:enabled_again, 4) > later
  end

  test "ElixirScope.Supervisor killed more often than any restart intensity allows: nothing is lost" do
    # ids are counted exactly: no lifecycle events
    start_scope!(capture: [fuse: [enabled: false], lifecycle: false])
    ids = for i <- 1..100, do: InstrumentationRuntime.report_custom(:tick, i)

    for _ <- 1..8 do
      await(fn -> Process.whereis(ElixirScope.Supervisor) != nil end)
      kill(ElixirScope.Supervisor)
    end

    await(fn -> Process.whereis(AsyncWriterPool) != nil end)
    assert ElixirScope.running?()
    assert Enum.map(ElixirScope.get_events(event_type: :custom), & &1.id) == ids
    next = InstrumentationRuntime.report_custom(:tick, 101)
    assert next == List.last(ids) + 1
    stats = ElixirScope.stats()
    assert stats.stored == 101 and stats.lost == 0
    assert_identity(stats)
  end

  test "the owner killed: its supervisor starts a new one, which adopts the session" do
    # ids are counted exactly: no lifecycle events
    start_scope!(capture: [fuse: [enabled: false], lifecycle: false])
    id = InstrumentationRuntime.report_custom(:kept, 1)
    :ok = ElixirScope.disable(Quiet)
    kill(Owner)
    await(fn -> Process.whereis(Owner) != nil and Process.whereis(AsyncWriterPool) != nil end)
    assert [%{id: ^id}] = ElixirScope.get_events(event_type: :custom)
    assert ElixirScope.status().disabled_modules == [Quiet]
    assert InstrumentationRuntime.report_custom(:next, 2) == id + 1
  end

  test "a blown fuse stays blown across restarts" do
    start_scope!(capture: [buffer_size: 64, max_wait_us: 0, flush_interval: 60_000, fuse: [max_full_ms: 20, check_interval: 10]])
    Process.sleep(20)
    for i <- 1..200, do: InstrumentationRuntime.report_custom(:tick, i)
    await(fn -> Session.switch_state().fuse != nil end)
    kill(Session)
    kill(ElixirScope.Supervisor)
    await(fn -> Process.whereis(Session) != nil end)
    status = ElixirScope.status()
    assert status.fuse.reason =~ "stayed full"
    refute status.enabled
  end

  test "stop/0 ends the session and keeps its final accounting, events left in the ring counted as lost" do
    start_scope!(capture: [flush_interval: 60_000, fuse: [enabled: false]])
    Process.sleep(20)
    for i <- 1..500, do: InstrumentationRuntime.report_custom(:tick, i)
    :ok = ElixirScope.stop()
    refute ElixirScope.running?()
    assert %{running: false, last_session: last} = ElixirScope.stats()
    assert last.emitted == 500
    assert last.lost == 500 - last.stored
    assert last.emitted == last.stored + last.dropped + last.lost
    # a new session starts from scratch
    start_scope!()
    assert InstrumentationRuntime.report_custom(:fresh, 1) == 1
  end

  test "a user's supervisor stopping ElixirScope ends the session" do
    ElixirScope.stop()
    {:ok, sup} = Supervisor.start_link([{ElixirScope, capture: [buffer_size: 1024]}], strategy: :one_for_one)
    assert is_integer(InstrumentationRuntime.report_custom(:x, 1))
    Supervisor.stop(sup)
    refute ElixirScope.running?()
    assert %{last_session: %{emitted: 1}} = ElixirScope.stats()
  end
end
