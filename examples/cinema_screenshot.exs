# Records the cinema demo scenario, serves it, and has Debian's chromium take a screenshot.
# Run through examples/cinema_screenshot.sh (MIX_ENV=test, so the scenario in test/support is compiled).
Logger.configure(level: :error)
out = System.get_env("CINEMA_PNG", "_build/cinema.png") |> Path.expand()
file = Path.expand("_build/cinema_demo.esrec")
{_rec, _pids} = ElixirScope.CinemaScenario.Recording.record(file)
IO.puts("demo recording: #{file}")
# what `mix scope.cinema FILE` does, on a free port and without blocking
web = Mix.Tasks.Scope.Cinema.run([file, "--port", "0", "--no-wait"])
node_dir = Path.expand("test/browser")
tab = System.get_env("CINEMA_TAB", "inspector")
{output, status} = System.cmd("node", [Path.join(node_dir, "cinema.mjs"), web.url, "--screenshot", out, "--tab", tab], cd: node_dir)
IO.puts(output)
ElixirScope.Web.stop(web)
if status != 0 or not String.contains?(output, "\"ok\":true"), do: System.halt(1)
IO.puts("screenshot: #{out}")
