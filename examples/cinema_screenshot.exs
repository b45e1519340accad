# Records the cinema demo scenario, serves it, and has Debian's chromium take a screenshot.
# Run through examples/cinema_screenshot.sh (MIX_ENV=test, so the scenario in test/support is compiled).
Logger.configure(level: :error)
out = System.get_env("CINEMA_PNG", "_build/cinema.png") |> Path.expand()
{source, mode, _pids} = ElixirScope.CinemaScenario.Recording.record()
{:ok, web} = ElixirScope.Web.start(port: 0, source: source)
IO.puts("cinema: #{web.url} (events recorded via #{mode})")
node_dir = Path.expand("test/browser")
tab = System.get_env("CINEMA_TAB", "inspector")
{output, status} = System.cmd("node", [Path.join(node_dir, "cinema.mjs"), web.url, "--screenshot", out, "--tab", tab], cd: node_dir)
IO.puts(output)
ElixirScope.Web.stop(web)
if status != 0 or not String.contains?(output, "\"ok\":true"), do: System.halt(1)
IO.puts("screenshot: #{out}")
