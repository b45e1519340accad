# Serves the demo's own recording (_build/demo.esrec, written by `make demo`) and has Debian's
# chromium take a screenshot. Run through examples/cinema_screenshot.sh.
Logger.configure(level: :error)
out = System.get_env("CINEMA_PNG", "_build/cinema.png") |> Path.expand()
file = System.get_env("ELIXIR_SCOPE_DEMO_RECORDING", "_build/demo.esrec") |> Path.expand()
IO.puts("demo recording: #{file}")
# what `mix scope.cinema FILE` does, on a free port and without blocking
web = Mix.Tasks.Scope.Cinema.run([file, "--port", "0", "--no-wait"])
node_dir = Path.expand("test/browser")
tab = System.get_env("CINEMA_TAB", "inspector")
{output, status} = System.cmd("node", [Path.join(node_dir, "cinema.mjs"), web.url, "--screenshot", out, "--tab", tab], cd: node_dir)
result = output |> String.split("\n", trim: true) |> List.last() |> ElixirScope.Web.JSON.decode!()
ElixirScope.Web.stop(web)
if status != 0 or result["ok"] != true, do: (IO.puts(output); System.halt(1))
lanes = for l <- result["lanes"], do: "#{l["name"] || l["module"] || "?"} #{l["pid"]}"
IO.puts("lanes: #{Enum.join(lanes, ", ")}")
IO.puts("message arrows drawn: #{length(result["arrows"])} (#{result["arrows"] |> Enum.frequencies_by(& &1["type"]) |> inspect()})")
IO.puts("screenshot: #{out}")
