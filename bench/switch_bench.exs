defmodule ElixirScope.Bench.Switch do
  @moduledoc false
  # Switching capture and the fuse with 1,000 busy instrumented processes (issue 12.9):
  # how long disable/enable take to return, how soon they take effect, and how late the fuse is.
  alias ElixirScope.Capture.{InstrumentationRuntime, Session, Switch, SwitchLoader}
  alias ElixirScope.NIF

  @busy 1_000
  @rounds 10

  def run do
    ElixirScope.stop()
    # the bench process watches counters in tight loops: at high priority it is not
    # queued behind the producers (the switches themselves never wait for anyone)
    Process.flag(:priority, :high)
    control = control_us()
    switch = switching()
    fuse_ms = fuse_late_ms()
    Process.flag(:priority, :normal)

    results = switch |> Map.put("fuse_late_ms", fuse_ms) |> Map.put("baseline_atomics_observed_us", control)

    rows = [
      {"switch_disable_return_us (max of #{@rounds}, #{@busy} busy processes)", switch["switch_disable_return_us"], "", ""},
      {"switch_disable_late_events (max accepted after disable returned)", switch["switch_disable_late_events"], "≤ schedulers", ""},
      {"switch_enable_return_us (max of #{@rounds})", switch["switch_enable_return_us"], "", ""},
      {"baseline: #{@busy} busy processes see an :atomics write (µs, median)", control, "", "the floor for the two rows below"},
      {"switch_enable_effect_us (median, first event after enable returned)", switch["switch_enable_effect_us"], "≤ 10,000", ""},
      {"switch_enable_effect_max_us (max of #{@rounds})", switch["switch_enable_effect_max_us"], "", "OS scheduling of a busy core"},
      {"switch_enable_busy_settled_us (enable after 2.6 s off, #{@busy} busy processes)", switch["switch_enable_busy_settled_us"], "≤ 10,000",
       "shape kept: #{if switch["switch_busy_kept_dynamic"] == 1, do: "dynamic", else: "off"} (a busy node keeps the dynamic switch)"},
      {"switch_enable_settled_us (settled while quiet, then #{@busy} busy processes, enable)", switch["switch_enable_settled_us"], "≤ 10,000", "loads the dynamic switch"},
      {"switch_settle_purge_us (purge after settling, quiet node)", switch["switch_settle_purge_us"], "", "an enable/0 waits only if the node turns busy within it"},
      {"fuse_late_ms (ring full: fuse after max_full_ms, #{@busy} busy processes)", fuse_ms, "≤ 50", ""}
    ]

    {results, rows}
  end

  defp busy(i) do
    case Switch.on?(Busy) do
      true ->
        cid = InstrumentationRuntime.report_function_entry(Busy, :work, [i], 1)
        InstrumentationRuntime.report_function_exit(cid, i)

      _ ->
        nil
    end

    busy(i + 1)
  end

  defp with_busy(fun) do
    pids = for _ <- 1..@busy, do: spawn(fn -> busy(0) end)

    try do
      Process.sleep(300)
      fun.()
    after
      Enum.each(pids, &Process.exit(&1, :kill))
    end
  end

  defp emitted, do: NIF.stats(Session.info().session).emitted

  # how long enable/0 takes to return (µs), once the busy processes record again
  defp enable_until_recorded do
    before = emitted()
    {us, :ok} = :timer.tc(&ElixirScope.enable/0)
    spin_until(fn -> emitted() > before end)
    us
  end

  defp switching do
    :ok = ElixirScope.start(capture: [fuse: [enabled: false]])

    {samples, busy_settled_us, busy_shape} =
      with_busy(fn ->
        samples =
          for _ <- 1..@rounds do
            {off_us, :ok} = :timer.tc(&ElixirScope.disable/0)
            at_off = emitted()
            Process.sleep(100)
            late = emitted() - at_off
            before = emitted()
            {on_us, :ok} = :timer.tc(&ElixirScope.enable/0)
            t0 = System.monotonic_time(:microsecond)
            spin_until(fn -> emitted() > before end)
            effect = System.monotonic_time(:microsecond) - t0
            Process.sleep(100)
            {off_us, late, on_us, effect}
          end

        # off past the settling time while busy: the dynamic shape stays (see SwitchLoader)
        :ok = ElixirScope.disable()
        Process.sleep(2_600)
        {samples, enable_until_recorded(), SwitchLoader.shape()}
      end)

    # settled on a quiet node (the switch it replaced is purged at once, while the node is quiet:
    # a purge on a busy node waits for every runnable process), then 1,000 processes start and
    # enable/0 comes: it only loads. It would wait if the node turned busy within the purge.
    :ok = ElixirScope.disable()
    spin_until(fn -> SwitchLoader.shape() == :off end, 30_000_000)
    t_purge = System.monotonic_time(:microsecond)
    # sleeping between looks: a purge asks every process to check itself, this one included
    spin_until(fn -> Process.sleep(1) == :ok and not :erlang.check_old_code(Switch) end, 60_000_000)
    purge_us = System.monotonic_time(:microsecond) - t_purge

    settled_us = with_busy(&enable_until_recorded/0)
    ElixirScope.stop()
    max = fn i -> samples |> Enum.map(&elem(&1, i)) |> Enum.max() end

    %{
      "switch_disable_return_us" => max.(0),
      "switch_disable_late_events" => max.(1),
      "switch_enable_return_us" => max.(2),
      "switch_enable_effect_us" => samples |> Enum.map(&elem(&1, 3)) |> ElixirScope.Bench.median(),
      "switch_enable_effect_max_us" => max.(3),
      "switch_enable_settled_us" => settled_us,
      "switch_settle_purge_us" => purge_us,
      "switch_enable_busy_settled_us" => busy_settled_us,
      # 1 when the busy node kept the dynamic shape (numbers only in results.json)
      "switch_busy_kept_dynamic" => if(busy_shape == :dynamic, do: 1, else: 0)
    }
  end

  # The same measurement without ElixirScope: processes polling a flag in a loop.
  defp control_us do
    flag = :atomics.new(2, [])
    pids = for _ <- 1..@busy, do: spawn(fn -> poll(flag) end)
    Process.sleep(300)

    lat =
      for _ <- 1..@rounds do
        :atomics.put(flag, 1, 0)
        Process.sleep(100)
        seen = :atomics.get(flag, 2)
        :atomics.put(flag, 1, 1)
        t0 = System.monotonic_time(:microsecond)
        spin_until(fn -> :atomics.get(flag, 2) > seen end)
        System.monotonic_time(:microsecond) - t0
      end

    Enum.each(pids, &Process.exit(&1, :kill))
    ElixirScope.Bench.median(lat)
  end

  defp poll(flag) do
    if :atomics.get(flag, 1) == 1, do: :atomics.add(flag, 2, 1)
    poll(flag)
  end

  defp fuse_late_ms do
    :ok = ElixirScope.start(capture: [buffer_size: 1024, max_wait_us: 0, flush_interval: 60_000, fuse: [max_full_ms: 100, max_drop_ratio: 1.0]])
    session = Session.info().session
    # the writers' first drain happens at once; then they sleep for a minute
    Process.sleep(50)

    late =
      with_busy(fn ->
        spin_until(fn -> Session.switch_state().fuse != nil end, 10_000_000)
        (Session.switch_state().fuse.at_ns - NIF.stats(session).ring_full_since_ns) / 1_000_000 - 100
      end)

    ElixirScope.stop()
    late
  end

  defp spin_until(fun, max_us \\ 5_000_000) do
    deadline = System.monotonic_time(:microsecond) + max_us
    Enum.find(Stream.repeatedly(fn -> fun.() or System.monotonic_time(:microsecond) > deadline end), & &1)
  end
end
