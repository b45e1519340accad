defmodule ElixirScope.Bench.Query do
  @moduledoc false
  # Query and recording costs over 1 M stored events (make bench).
  import ElixirScope.Bench
  import Bitwise
  alias ElixirScope.Capture.Ingestor
  alias ElixirScope.Capture.InstrumentationRuntime, as: R
  alias ElixirScope.{Query, Recording}

  @total 1_000_000

  def run do
    ElixirScope.stop()
    :ok = ElixirScope.start(capture: [buffer_size: 1 <<< 21, fuse: [enabled: false]], storage: [max_bytes: 0])
    {server, tree_pid, {ping, pong}, times} = fill()
    stats = ElixirScope.stats()
    IO.puts("query bench: #{stats.stored} events stored, #{stats.dropped} dropped")

    # state_at at instants spread over the run
    state_ns = median(for t <- times, do: once_ns(fn -> {:ok, _, _} = Query.state_at(server, t) end, 3))
    tree_ns = once_ns(fn -> [_ | _] = Query.call_tree(tree_pid) end, 7)
    # the OS process's CPU over 20 trees (the tree is built on a dirty scheduler), per tree
    cpu0 = os_cpu_ms()
    for _ <- 1..20, do: [_ | _] = Query.call_tree(tree_pid)
    tree_cpu_ms = Float.round((os_cpu_ms() - cpu0) / 20, 1)
    {t0, t1} = {Enum.at(times, 2), Enum.at(times, 4)}
    timeline_ns = once_ns(fn -> %{events: [_ | _]} = Query.timeline([ping, pong], {t0, t1}) end, 7)
    tl = Query.timeline([ping, pong], {t0, t1})

    path = Path.join(System.tmp_dir!(), "elixir_scope_bench_#{System.unique_integer([:positive])}.esrec")
    cpu0 = os_cpu_ms()
    {save_us, {:ok, saved}} = :timer.tc(fn -> Recording.save(path) end)
    save_cpu_ms = os_cpu_ms() - cpu0
    if System.get_env("ES_KEEP_RECORDING"), do: File.cp!(path, System.get_env("ES_KEEP_RECORDING"))
    ElixirScope.stop()
    :erlang.garbage_collect()
    rss_before = reset_peak_rss()
    cpu0 = os_cpu_ms()
    {load_us, {:ok, rec}} = :timer.tc(fn -> Recording.load(path, default: false) end)
    load_cpu_ms = os_cpu_ms() - cpu0
    peak_added = proc_status_kb("VmHWM") * 1024 - rss_before
    store_bytes = Recording.Index.memory(rec)
    rec_tree_ns = once_ns(fn -> [_ | _] = Query.call_tree(tree_pid, source: rec) end, 5)
    rec_state_ns = median(for t <- times, do: once_ns(fn -> {:ok, _, _} = Query.state_at(server, t, source: rec) end, 3))
    Recording.close(rec)
    {floor_us, floor_cpu_ms} = load_floor(path)
    File.rm(path)
    bytes_per_event = saved.bytes / max(saved.events, 1)

    results = %{
      "query_state_at_ns" => state_ns,
      "query_call_tree_10k_ns" => tree_ns,
      "query_timeline_ns" => timeline_ns,
      "recording_save_1m_ns" => save_us * 1000,
      "recording_load_1m_ns" => load_us * 1000,
      "recording_load_floor_1m_ns" => floor_us * 1000,
      "recording_bytes_per_event" => bytes_per_event,
      "recording_load_peak_rss_ratio" => peak_added / store_bytes,
      "recording_query_call_tree_10k_ns" => rec_tree_ns,
      "recording_query_state_at_ns" => rec_state_ns
    }

    rows = [
      {"query_state_at_ns (GenServer state at T, 1M stored)", state_ns, "", "live store"},
      {"query_call_tree_10k_ns (10,000-call trace of one process, 1M stored)", tree_ns, "≤ 10,000,000", "live store; #{tree_cpu_ms} ms CPU (OS process, mean of 20)"},
      {"query_timeline_ns (2 processes, #{length(tl.events)} events + #{length(tl.messages)} links, 1M stored)", timeline_ns, "", "live store"},
      {"recording_save_1m_ns (#{saved.events} events to disk)", save_us * 1000, "≤ 500,000,000",
       "format v3 (the store's segments, from C); #{save_cpu_ms} ms CPU (OS process, dirty schedulers too); load average #{load_average()}"},
      {"recording_load_1m_ns (read, verify every byte, build the store)", load_us * 1000, "≤ 500,000,000", "#{load_cpu_ms} ms CPU (OS process)"},
      {"recording_load_floor_1m_ns (read the file's bytes: no check, no store)", floor_us * 1000, "",
       "#{floor_cpu_ms} ms CPU; the least any load of this file costs"},
      {"recording_bytes_per_event (on disk)", bytes_per_event, "", ""},
      {"recording_load_peak_rss_ratio (peak RSS the load added / decoded store)", peak_added / store_bytes, "≤ 2",
       "#{div(peak_added, 1 <<< 20)} MB / #{div(store_bytes, 1 <<< 20)} MB (the loaded native store)"},
      {"recording_query_call_tree_10k_ns (same tree, from the loaded recording)", rec_tree_ns, "", ""},
      {"recording_query_state_at_ns (from the loaded recording)", rec_state_ns, "", ""}
    ]

    {results, rows}
  end

  # 1 M events: a GenServer-like process with :state events, a process with a
  # 10,000-call trace, a ping/pong pair exchanging messages, and 40 filler
  # processes with calls, locals and returns; drained between rounds.
  defp fill do
    parent = self()
    rounds = 10
    per_round = div(@total, rounds)
    server = spawn_worker()
    tree_pid = spawn_worker()
    ping = spawn_worker()
    pong = spawn_worker()
    fillers = for _ <- 1..40, do: spawn_worker()

    times =
      for r <- 1..rounds do
        # server: 1,000 callbacks (4 events each)
        run_on(server, fn ->
          for i <- 1..1000 do
            c = R.report_function_entry(Srv, :handle_call, [{:put, i}, {parent, nil}, r * 1000 + i - 1])
            R.report_state_change(c, :before, r * 1000 + i - 1)
            R.report_state_change(c, :after, r * 1000 + i)
            R.report_function_exit(c, {:reply, :ok, r * 1000 + i})
          end
        end)

        # tree: 1,000 calls per round (10,000 in all), nested 10 deep
        run_on(tree_pid, fn -> nest(10, 100) end)

        # ping/pong: 2,000 messages
        for i <- 1..1000 do
          run_on(ping, fn -> R.report_message_send(pong, {:ping, r, i}) end, false)
          run_on(pong, fn -> R.report_message_receive({:ping, r, i}); R.report_message_send(ping, {:pong, r, i}) end, false)
          run_on(ping, fn -> R.report_message_receive({:pong, r, i}) end, false)
        end

        # fillers: the rest
        rest = per_round - 4000 - 2000 - 4000
        per = div(rest, length(fillers) * 3)

        fillers
        |> Enum.map(fn f -> run_async(f, fn -> for j <- 1..per, do: fill_call(j) end) end)
        |> Enum.each(&await/1)

        ElixirScope.flush()
        Ingestor.now()
      end

    {server, tree_pid, {ping, pong}, times}
  end

  # what loading this file costs before any check or store: reading its bytes (version 3 keeps
  # them as the store does: nothing to inflate or decode)
  defp load_floor(path) do
    :erlang.garbage_collect()
    {_, _} = :erlang.statistics(:runtime)
    {us, _} = :timer.tc(fn -> byte_size(File.read!(path)) end)
    {_, cpu_ms} = :erlang.statistics(:runtime)
    {us, cpu_ms}
  end

  # CPU time of the OS process (every thread: dirty schedulers too), in ms (clock ticks of 10 ms)
  defp os_cpu_ms do
    [_, rest] = :binary.split(File.read!("/proc/self/stat"), ") ")
    [utime, stime] = rest |> String.split(" ") |> Enum.slice(11, 2) |> Enum.map(&String.to_integer/1)
    (utime + stime) * 10
  end

  defp load_average, do: File.read!("/proc/loadavg") |> String.split() |> Enum.take(3) |> Enum.join(" ")

  # the OS process's resident set now, after resetting its high-water mark (VmHWM)
  defp reset_peak_rss do
    File.write("/proc/self/clear_refs", "5")
    proc_status_kb("VmRSS") * 1024
  end

  defp proc_status_kb(key) do
    [_, kb] = Regex.run(~r/#{key}:\s+(\d+) kB/, File.read!("/proc/self/status"))
    String.to_integer(kb)
  end

  # CPU time of the whole VM while `fun` runs (the machine may be shared)
  defp fill_call(j) do
    c = R.report_function_entry(Filler, :step, [j, :a])
    R.report_local_variable_snapshot(c, %{j: j}, 3)
    R.report_function_exit(c, j)
  end

  defp nest(0, _n), do: :ok

  defp nest(depth, n) do
    for i <- 1..n do
      c = R.report_function_entry(Tree, :level, [depth, i])
      if depth > 1 and i == 1, do: nest(depth - 1, 100)
      R.report_function_exit(c, i)
    end
  end

  defp spawn_worker do
    spawn(fn -> worker_loop() end)
  end

  defp worker_loop do
    receive do
      {:run, fun, from, ref} ->
        fun.()
        send(from, {ref, :done})
        worker_loop()
    end
  end

  defp run_async(pid, fun), do: (ref = make_ref(); send(pid, {:run, fun, self(), ref}); ref)
  defp await(ref), do: receive(do: ({^ref, :done} -> :ok))
  defp run_on(pid, fun, _flush \\ true), do: pid |> run_async(fun) |> await()
end
