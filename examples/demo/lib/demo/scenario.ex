defmodule Demo.Scenario do
  @moduledoc """
  Runs the demo scenario against the instrumented application and prints the recording:
  `mix run -e Demo.Scenario.run`. This module itself is excluded from instrumentation
  (config/config.exs), so the recording shows the application, not the script driving it.
  """

  alias Demo.{Audit, Courier, Interest, Ledger, PingPong, RiskScorer}

  @doc "Runs the scenario, prints the report, returns the recorded events."
  @spec run() :: [ElixirScope.Event.t()]
  def run do
    Logger.configure(level: :none)
    started = System.monotonic_time()
    scorer_before = Process.whereis(RiskScorer)
    steps = scenario()
    ElixirScope.flush()
    events = ElixirScope.get_events()
    stats = ElixirScope.stats()
    recording = save_recording()

    wall_ms =
      System.convert_time_unit(System.monotonic_time() - started, :native, :microsecond) / 1000

    names = %{
      self() => "scenario (the caller)",
      Process.whereis(Ledger) => "Demo.Ledger",
      Process.whereis(Courier) => "Demo.Courier",
      scorer_before => "Demo.RiskScorer (crashed)",
      Process.whereis(RiskScorer) => "Demo.RiskScorer (restarted)"
    }

    IO.puts(banner(steps))

    IO.puts(
      ElixirScope.Report.render(events, names: names, stats: stats, overhead: overhead(wall_ms))
    )

    IO.puts(next_steps(recording))
    events
  end

  # The recording, saved before the overhead measurement adds its own events.
  defp save_recording do
    path = System.get_env("ELIXIR_SCOPE_DEMO_RECORDING", Path.expand("../../_build/demo.esrec"))
    File.mkdir_p!(Path.dirname(path))
    {:ok, %{path: path}} = ElixirScope.Recording.save(path)
    path
  end

  defp next_steps(path) do
    rel = Path.relative_to(path, Path.expand("../.."))

    """

    ── Travel through this recording ─────────────────────────────────────────
      saved to #{rel}; from the ElixirScope checkout:
        iex -S mix scope.open #{rel}     then: import ElixirScope.IEx; history(Demo.Ledger)
        mix scope.cinema #{rel}          the web timeline at http://127.0.0.1:4040
        mix scope.export --format perfetto --input #{rel} _build/demo.trace.json   (ui.perfetto.dev)
    """
  end

  defp scenario do
    :ok = Ledger.open("alice", 10_000)
    :ok = Ledger.open("bob", 2_500)
    :ok = Ledger.open("carol", 0)
    {:ok, _} = Ledger.deposit("alice", 1_250)
    {:error, :insufficient_funds} = Ledger.withdraw("bob", 9_000)
    :ok = Ledger.transfer("alice", "carol", 3_000)
    {:ok, _} = Ledger.withdraw("carol", 500)

    grown = Interest.compound(Ledger.balances()["alice"], 450, 3)
    shares = Interest.split(1_000, 3)
    mismatches = Audit.audit(Ledger.balances(), Ledger.journal())
    receipt = Courier.deliver("carol", Ledger.balances())

    checked = Ledger.checked_transfer("alice", "bob", 200)
    pongs = PingPong.play(3)
    low_risk = RiskScorer.score(1_000, [400, -250, 800])
    old = Process.whereis(RiskScorer)
    crash = catch_exit(fn -> RiskScorer.score(700, []) end)
    restarted = wait_restart(old)

    [
      "alice after 3 years at 4.5%: #{Interest.format(grown)}",
      "1000 split in 3: #{inspect(shares)}",
      "audit mismatches: #{inspect(mismatches)}",
      "courier receipt: #{inspect(receipt)}",
      "transfer checked by the risk scorer (caller → ledger → scorer): #{inspect(checked)}",
      "ping-pong between two processes: #{pongs} pongs in 3 rounds",
      "risk of 1000 with history: #{low_risk}",
      "risk of 700 without history: the scorer crashed (#{crash}); restarted as #{inspect(restarted)}",
      "balances: #{inspect(Ledger.balances())}"
    ]
  end

  defp catch_exit(fun) do
    fun.()
    "no crash"
  catch
    :exit, {{reason, stack}, {GenServer, :call, _}} when is_list(stack) ->
      inspect(Exception.normalize(:error, reason, stack).__struct__)

    :exit, reason ->
      inspect(reason, limit: 3)
  end

  defp wait_restart(old, tries \\ 100) do
    case Process.whereis(RiskScorer) do
      pid when is_pid(pid) and pid != old -> pid
      _ when tries > 0 -> Process.sleep(10) && wait_restart(old, tries - 1)
      _ -> nil
    end
  end

  # Cost of the instrumentation, measured on the recursive Demo.Interest.compound/3 (1,000 calls a run).
  defp overhead(wall_ms) do
    n = 200
    emitted = ElixirScope.stats().emitted
    on = per_call(fn -> Interest.compound(100_000, 1, 1_000) end, n)
    per = (ElixirScope.stats().emitted - emitted) / ((n + 1) * 1_000)
    ElixirScope.disable()
    off = per_call(fn -> Interest.compound(100_000, 1, 1_000) end, n)
    ElixirScope.enable()
    plain = per_call(fn -> plain_compound(100_000, 1, 1_000) end, n)

    "scenario #{Float.round(wall_ms, 1)} ms; an instrumented call (at :full, #{Float.round(per, 1)} events a call) " <>
      "costs #{on} ns recording, " <>
      "#{off} ns with capture switched off, #{plain} ns uninstrumented " <>
      "(Demo.Interest.compound/3, #{n * 1_000} calls each; measured after the recording above)"
  end

  defp per_call(fun, n) do
    fun.()
    {us, _} = :timer.tc(fn -> Enum.each(1..n, fn _ -> fun.() end) end)
    Float.round(us * 1000 / (n * 1_000), 1)
  end

  defp plain_compound(balance, _rate_bp, 0), do: balance

  defp plain_compound(balance, rate_bp, years) do
    interest = div(balance * rate_bp, 10_000)
    plain_compound(balance + interest, rate_bp, years - 1)
  end

  defp banner(steps) do
    [
      "ElixirScope demo: a bank ledger (GenServer), a risk scorer that crashes and is restarted,\n",
      "a courier process (messages), a ping-pong between two processes, a GenServer.call chain\n",
      "across three processes, an audit fan-out (Task.async_stream), recursive interest.\n\n",
      "What the scenario did:\n",
      Enum.map(steps, &["  • ", &1, "\n"])
    ]
  end
end
