# make bench: the cinema's HTTP server under 200 concurrent keep-alive clients for 20 s on a
# demo-sized recording (issue 12.10: ≤ 1 % errors, p99 ≤ 200 ms), one client's keep-alive
# latency, and each endpoint's uncached cost. Uses the test support's scenario and load client.
for f <- ["cinema_scenario.ex", "web_load.ex"], do: Code.require_file(Path.join([__DIR__, "..", "test", "support", f]))

defmodule ElixirScope.Bench.CinemaLoad do
  @moduledoc false
  alias ElixirScope.{Web, WebLoad}
  alias ElixirScope.Web.Api

  def run do
    {:ok, _} = Application.ensure_all_started(:ex_unit)
    path = Path.join(System.tmp_dir!(), "elixir_scope_cinema_load_#{System.unique_integer([:positive])}.esrec")
    rec = WebLoad.demo_recording(path)
    {:ok, web} = Web.start(port: 0, source: rec)
    paths = WebLoad.paths(rec)

    # what each endpoint costs when computed (the server computes a recording's answer once)
    cold =
      paths
      |> Tuple.to_list()
      |> Enum.group_by(&(&1 |> String.split("?") |> hd() |> String.replace(~r/\/\d+$/, "/ID")))
      |> Map.new(fn {endpoint, ps} ->
        us = for p <- ps, do: elem(:timer.tc(fn -> api_call(rec, p) end), 0)
        {endpoint, Enum.sum(us) / length(us) / 1000}
      end)

    one = WebLoad.run(web.port, {"/api/summary"}, clients: 1, duration_ms: 2_000)
    r = WebLoad.run(web.port, paths, clients: 200, duration_ms: 20_000, timeout_ms: 5_000)
    Web.stop(web)
    ElixirScope.Recording.close(rec)
    File.rm(path)
    IO.puts("cinema load: #{inspect(Map.take(r, [:requests, :errors, :statuses, :p50_ms, :p99_ms, :max_ms, :per_second]))}")

    results = %{
      "cinema_load_200_error_pct" => r.error_rate * 100,
      "cinema_load_200_p50_ms" => r.p50_ms,
      "cinema_load_200_p99_ms" => r.p99_ms,
      "cinema_load_200_max_ms" => r.max_ms,
      "cinema_load_200_requests_per_s" => r.per_second,
      "cinema_keepalive_p50_ms" => one.p50_ms
    }

    rows =
      [
        {"cinema_load_200_error_pct (200 keep-alive clients, 20 s, #{tuple_size(paths)} API paths)", r.error_rate * 100, "≤ 1", "#{r.requests} requests"},
        {"cinema_load_200_p99_ms", r.p99_ms, "≤ 200", "p50 #{r.p50_ms} ms, max #{r.max_ms} ms"},
        {"cinema_load_200_requests_per_s", r.per_second, "", "client and server share the VM"},
        {"cinema_keepalive_p50_ms (one client, sequential requests)", one.p50_ms, "< 40", "was ≥ 43 ms (Nagle / delayed ACK)"}
      ] ++
        for {endpoint, ms} <- Enum.sort(cold), do: {"cinema_uncached_ms #{endpoint}", ms, "", "computing one answer (mean over the paths)"}

    {results, rows}
  end

  defp api_call(rec, path) do
    ["/api/" <> endpoint | rest] = String.split(path, "?", parts: 2)
    {:ok, _} = Api.handle(rec, endpoint, URI.decode_query(Enum.join(rest)))
  end
end
