# make bench: every benchmark, one table, and _build/bench/results.json
Code.require_file("support.exs", __DIR__)

benches =
  for file <- ["c_core_bench.exs", "capture_bench.exs", "messages_bench.exs", "ast_bench.exs", "query_bench.exs", "recording_bench.exs", "cinema_load_bench.exs", "switch_bench.exs", "workload_bench.exs", "compile_bench.exs", "json_bench.exs", "dap_bench.exs", "cluster_bench.exs"],
      path = Path.join(__DIR__, file),
      File.exists?(path) do
    Code.require_file(path)
  end

IO.puts("ElixirScope benchmarks on #{System.schedulers_online()} schedulers, OTP #{System.otp_release()}, Elixir #{System.version()}")

{results, rows} =
  benches
  |> Enum.flat_map(fn mods -> for {mod, _} <- mods, function_exported?(mod, :run, 0), do: mod end)
  |> Enum.reduce({%{}, []}, fn mod, {res, rows} ->
    {r, rw} = mod.run()
    {Map.merge(res, r), rows ++ rw}
  end)

ElixirScope.Bench.print_table(rows)
ElixirScope.Bench.write_json(results, "_build/bench/results.json")
IO.puts("\nwrote _build/bench/results.json")
