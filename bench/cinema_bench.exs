# Cinema benchmark: 100,000 events recorded through the runtime API, served live, loaded in
# Debian's chromium; reports load time and redraw times while zooming and panning.
#   MIX_ENV=test mix run bench/cinema_bench.exs      (needs chromium + test/browser/setup.sh)
alias ElixirScope.Capture.InstrumentationRuntime, as: R
Logger.configure(level: :error)
ElixirScope.stop()
:ok = ElixirScope.start(capture: [buffer_size: 262_144])
target = String.to_integer(System.get_env("EVENTS", "100000"))
procs = 8
parent = self()

defmodule CinemaBench do
  def work(_r, depth) when depth <= 0, do: :ok

  def work(r, depth) do
    cid = r.report_function_entry(Bench.Worker, :step, [depth], 10)
    r.report_local_variable_snapshot(cid, %{depth: depth}, 11)
    if rem(depth, 2) == 0, do: work(r, depth - 1)
    work(r, depth - 2)
    r.report_function_exit(cid, depth)
  end
end

pids =
  for i <- 1..procs do
    spawn(fn ->
      receive do
        :go -> :ok
      end

      loops = div(target, procs * 9)

      for n <- 1..loops do
        CinemaBench.work(R, 5)
        if rem(n, 10) == 0, do: R.report_message_send(self(), {:tick, i, n})
      end

      send(parent, {:done, self()})
    end)
  end

Enum.each(pids, &send(&1, :go))
for p <- pids, do: receive(do: ({:done, ^p} -> :ok))
ElixirScope.flush()
stats = ElixirScope.stats()
IO.puts("recorded: #{stats.stored} events (dropped #{stats.dropped})")
{:ok, web} = ElixirScope.Web.start(port: 0, source: :live)
node_dir = Path.expand("test/browser")
{out, _} = System.cmd("node", [Path.join(node_dir, "cinema.mjs"), web.url, "--bench"], cd: node_dir)
IO.puts(out)
ElixirScope.Web.stop(web)
ElixirScope.stop()
