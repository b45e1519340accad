defmodule ElixirScope.Capture.ConcurrencyTest do
  # Many producers on every scheduler at once: each process's events keep their exact order,
  # and every event is accounted for (emitted = stored + dropped + pending), with back-pressure
  # on (producers wait for the drain) and off (a full ring drops, counted).
  use ElixirScope.ScopeCase, async: false

  alias ElixirScope.Capture.{InstrumentationRuntime, Session}
  alias ElixirScope.NIF

  @procs 1_000
  @per_proc 100

  # Every process emits entries carrying its own sequence number, as fast as it can, all released
  # at once; returns the pids.
  defp run_producers(procs, per_proc) do
    parent = self()

    pids =
      for p <- 1..procs do
        spawn_link(fn ->
          receive do
            :go ->
              for i <- 1..per_proc, do: InstrumentationRuntime.report_function_entry(Load, :step, [p, i])
              send(parent, {:done, self()})
          end
        end)
      end

    Enum.each(pids, &send(&1, :go))
    for pid <- pids, do: assert_receive({:done, ^pid}, 60_000)
    pids
  end

  # The sequence numbers each process's stored events carry, in store order.
  defp sequences(pids) do
    session = Session.info().session

    for pid <- pids, into: %{} do
      seqs = for ev <- NIF.query(session, %{pid: pid}), do: elem(ev, 11) |> :erlang.binary_to_term() |> List.last()
      {pid, seqs}
    end
  end

  defp strictly_increasing?(seqs), do: seqs |> Enum.chunk_every(2, 1, :discard) |> Enum.all?(fn [a, b] -> a < b end)

  # lifecycle: false in these tests: the observer's :spawn and :exit events would add to the exact counts
  test "1,000 processes on every scheduler, a small ring and back-pressure: nothing lost, each order exact" do
    assert System.schedulers_online() >= 2
    start_scope!(capture: [lifecycle: false, buffer_size: 1024, max_wait_us: 1_000_000, flush_interval: 1, fuse: [enabled: false]])
    pids = run_producers(@procs, @per_proc)
    stats = ElixirScope.stats()

    assert stats.emitted == @procs * @per_proc
    assert stats.emitted == stats.stored + stats.dropped + stats.pending
    assert stats.dropped == 0
    # a 1,024-slot ring cannot hold 100,000 events: producers had to wait for the writers
    assert stats.backpressure.waits > 0

    for {pid, seqs} <- sequences(pids) do
      assert seqs == Enum.to_list(1..@per_proc), "process #{inspect(pid)}: #{inspect(Enum.take(seqs, 10))}..."
    end
  end

  test "without back-pressure a full ring drops: every drop counted, the order of what is kept exact" do
    start_scope!(capture: [lifecycle: false, buffer_size: 256, max_wait_us: 0, flush_interval: 5, fuse: [enabled: false]])
    pids = run_producers(@procs, @per_proc)
    stats = ElixirScope.stats()

    assert stats.emitted == @procs * @per_proc
    assert stats.dropped > 0
    assert stats.dropped == stats.dropped_by_reason.ring_full
    assert stats.emitted == stats.stored + stats.dropped + stats.pending
    assert stats.backpressure.waits == 0

    all = sequences(pids)
    assert all |> Map.values() |> Enum.map(&length/1) |> Enum.sum() == stats.stored

    for {pid, seqs} <- all do
      assert strictly_increasing?(seqs), "process #{inspect(pid)}: #{inspect(seqs)}"
    end
  end

  test "a producer that finds the full ring drains it itself when no writer does, and the wait is counted" do
    # the writers sleep for a minute after their first drain
    start_scope!(capture: [lifecycle: false, buffer_size: 64, flush_interval: 60_000, fuse: [enabled: false]])
    Process.sleep(20)
    for i <- 1..2_000, do: InstrumentationRuntime.report_custom(:tick, i)
    stats = ElixirScope.stats()
    assert stats.dropped == 0
    assert stats.stored == 2_000
    assert stats.backpressure.waits > 0
    ticks = for %{payload: {:tick, i}} <- ElixirScope.get_events(event_type: :custom, limit: 5_000), do: i
    assert ticks == Enum.to_list(1..2_000)
  end
end
