defmodule ElixirScope.Web.BrowserTest do
  @moduledoc """
  The cinema in a real browser: Debian's chromium driven by playwright-core
  (test/browser/cinema.mjs). Skipped, with the reason printed, only where
  chromium or node cannot be found.
  """
  use ExUnit.Case, async: false

  @moduletag :browser
  alias ElixirScope.Capture.InstrumentationRuntime, as: R
  @node_dir Path.expand("../../browser", __DIR__)

  setup_all do
    chromium = System.get_env("CHROMIUM", "/usr/bin/chromium")

    cond do
      not File.exists?(chromium) ->
        IO.puts("\n[browser tests skipped] chromium not found at #{chromium} (apt-get install chromium)")
        {:ok, skip: true}

      System.find_executable("node") == nil ->
        IO.puts("\n[browser tests skipped] node not found (apt-get install nodejs npm)")
        {:ok, skip: true}

      true ->
        case System.cmd(Path.join(@node_dir, "setup.sh"), [], stderr_to_stdout: true) do
          {_, 0} ->
            {:ok, skip: false}

          {out, _} ->
            IO.puts("\n[browser tests skipped] cannot install playwright-core: #{out}")
            {:ok, skip: true}
        end
    end
  end

  @tag timeout: 120_000
  test "the page loads a recording, draws lanes, shows args on click, scrubs state, escapes values", ctx do
    if ctx.skip do
      :ok
    else
      # the demo recording: recorded through the runtime API, saved to a file, loaded back
      file = Path.join(System.tmp_dir!(), "cinema_browser_#{System.unique_integer([:positive])}.esrec")
      on_exit(fn -> File.rm(file) end)

      ExUnit.CaptureLog.capture_log(fn ->
        {rec, pids} = ElixirScope.CinemaScenario.Recording.record(file)
        send(self(), {:recorded, rec, pids})
      end)

      assert_received {:recorded, source, pids}
      mode = "recording"
      on_exit(fn -> ElixirScope.Recording.close(source) end)
      {:ok, web} = ElixirScope.Web.start(port: 0, source: source)
      on_exit(fn -> ElixirScope.Web.stop(web) end)
      png = Path.expand("../../../_build/cinema_test.png", __DIR__)

      # and a live server, fed by a process that keeps recording while the page is open
      :ok = ElixirScope.start()
      on_exit(fn -> ElixirScope.stop() end)
      {:ok, live} = ElixirScope.Web.start(port: 0, source: :live)
      on_exit(fn -> ElixirScope.Web.stop(live) end)
      R.report_function_exit(R.report_function_entry(Live.Ticker, :boot, []), :ok)
      ticker = spawn(fn -> tick(200) end)
      on_exit(fn -> Process.exit(ticker, :kill) end)

      {out, status} =
        System.cmd("node", [Path.join(@node_dir, "cinema.mjs"), web.url, "--checks", "--screenshot", png, "--live", live.url],
          cd: @node_dir,
          stderr_to_stdout: true
        )

      result = out |> String.split("\n", trim: true) |> List.last() |> ElixirScope.Web.JSON.decode!()
      assert status == 0, out
      assert result["ok"], "browser run failed (#{mode}): #{inspect(Map.drop(result, ["lanes"]))}"
      assert result["errors"] == []

      # lanes: one per process of the scenario, each with something drawn in it
      lane_pids = Enum.map(result["lanes"], & &1["pid"])
      render = &ElixirScope.Web.Render.pid/1
      assert render.(pids.account) in lane_pids
      assert render.(pids.teller) in lane_pids
      assert Enum.all?(result["lanePixels"], &(&1 > 20)), "empty lane: #{inspect(result["lanePixels"])}"

      # clicking a handle_call span shows its arguments
      assert result["clicked"]["head"] =~ "handle_call"
      assert result["clicked"]["args"] =~ "{:deposit, 50}"

      if result["scrubRetries"] > 0, do: IO.puts("\n[browser test] scrub drag retried #{result["scrubRetries"]}x: #{inspect(result["scrubFail"])}")

      # scrubbing: state after the first change vs after the last
      assert result["stateEvents"] >= 4
      assert result["stateA"] =~ "balance: 100"
      assert result["stateB"] =~ "balance: 145"
      refute result["stateA"] == result["stateB"]

      # the captured "<script>…" string is shown as text and never runs
      xss = result["xss"]
      assert xss["shown"] =~ "<script>window.__xss = 1</script>"
      assert xss["shown"] =~ "onerror="
      assert xss["executed"] == nil
      assert xss["imgs"] == 0
      # app.js, and the page's first API answers in a JSON data block (never run)
      assert xss["scripts"] == 2 and xss["dataBlocks"] == ["boot"]

      # keyboard stepping from the selected init call: → → ← visits the next events in order
      [s0, s1, s2, s3] = result["steps"]
      assert {s1, s2, s3} == {s0 + 1, s0 + 2, s0 + 1}

      # the call tree of the selected process (the account: init, then the callbacks)
      assert [init | callbacks] = result["treeRows"]
      assert init =~ "init/1"
      assert length(callbacks) == 5 and Enum.all?(callbacks, &(&1 =~ "handle_call/3"))

      # live mode: new events showed up without a reload
      assert result["live"]["later"] > result["live"]["first"]
      assert result["live"]["badge"] =~ "live"
    end
  end

  @tag timeout: 300_000
  test "the demo's own recording: opening on the crash, readable ruler and inspector, source without the demo's code, arrows", ctx do
    if ctx.skip do
      :ok
    else
      file = Path.join(System.tmp_dir!(), "demo_browser_#{System.unique_integer([:positive])}.esrec")
      on_exit(fn -> File.rm(file) end)
      demo = Path.expand("../../../examples/run_demo.sh", __DIR__)
      {out, 0} = System.cmd(demo, [], env: [{"ELIXIR_SCOPE_DEMO_RECORDING", file}, {"MIX_ENV", "dev"}, {"ERL_COMPILER_OPTIONS", nil}], stderr_to_stdout: true)
      assert out =~ "ping-pong between two processes: 3 pongs"
      {:ok, source} = ElixirScope.Recording.load(file)
      on_exit(fn -> ElixirScope.Recording.close(source) end)
      {:ok, web} = ElixirScope.Web.start(port: 0, source: source)
      on_exit(fn -> ElixirScope.Web.stop(web) end)

      plain = Path.expand("../../../_build/cinema_plain_test.png", __DIR__)
      args = [Path.join(@node_dir, "cinema.mjs"), web.url, "--views", "--plain-shot", plain]
      {out, status} = System.cmd("node", args, cd: @node_dir, stderr_to_stdout: true)
      result = out |> String.split("\n", trim: true) |> List.last() |> ElixirScope.Web.JSON.decode!()
      assert status == 0 and result["ok"], out
      assert result["errors"] == []

      # a plain headless screenshot (no virtual-time budget) shows the lanes: the page paints
      # from the data it carries, before any request, timer or animation frame
      assert result["plainShot"]["lanePixels"] > 2_000, inspect(result["plainShot"])

      # the opening view frames the crash, zoomed in far enough that the call that raised is readable
      summary = ElixirScope.Web.Data.summary(source)
      %{"view" => view, "exception" => exc, "spanPx" => span_px} = result["opening"]
      assert exc["mfa"] == "Demo.RiskScorer.risk/2"
      assert exc["t"] > view["start"] and exc["t"] < view["end"], inspect(result["opening"])
      assert span_px >= 30, inspect(result["opening"])
      assert view["end"] - view["start"] < (summary.t_end - summary.t_start) / 10, inspect({view, summary})

      # zoomed in (to ~50 µs, ~2 µs and ~150 ns across), every ruler label is a different time
      assert length(result["rulers"]) == 3
      for %{"labels" => labels} = r <- result["rulers"] do
        assert length(labels) >= 3 and Enum.uniq(labels) == labels, inspect(r)
      end

      # the crash in the inspector: expression values in a wide column, the source lines around line 29
      insp = result["inspector"]
      assert insp["exprs"] =~ "Enum.sum(Enum.map(history, &abs/1))"
      assert insp["exprValueWidths"] != [] and Enum.all?(insp["exprValueWidths"], &(&1 > 200)), inspect(insp)
      assert insp["sourceTitle"] =~ "risk_scorer.ex:29"
      assert insp["sourceHighlighted"] =~ "average = div(total, length(history))"
      arrows = result["arrows"]
      types = Enum.frequencies_by(arrows, & &1["type"])
      # GenServer calls (caller → ledger → scorer), their replies, and plain messages (courier, ping-pong)
      assert types["call"] >= 10 and types["reply"] >= 10 and types["message"] >= 6, inspect(types)
      assert Enum.all?(arrows, &(&1["fromLane"] != &1["toLane"]))
      lanes = Map.new(result["lanes"], &{&1["pid"], &1})
      # the ping-pong's messages go both ways between two lanes
      pairs = for a <- arrows, a["type"] == "message", do: {a["fromLane"], a["toLane"]}
      assert Enum.any?(pairs, fn {f, t} -> {t, f} in pairs end), inspect(pairs)
      assert map_size(lanes) >= 9
    end
  end

  @tag timeout: 60_000
  test "a recording without a crash opens on its busiest moment, where its calls can be read", ctx do
    if ctx.skip do
      :ok
    else
      # one short call a millisecond for 40 ms, and a burst of 200 one-µs calls at 30 ms
      alias ElixirScope.Test.EventBuilder, as: B
      [pid] = B.pids(1)
      sparse = for i <- 0..39, do: {i * 1_000_000, 2_000}
      burst = for i <- 0..199, do: {30_000_000 + 500_000 + i * 2_000, 1_000}

      {b, times} =
        Enum.reduce(Enum.sort(sparse ++ burst), {B.new(), %{}}, fn {t, d}, {b, times} ->
          {b, c} = B.call(b, pid, Quiet, :work, [t])
          {b, r} = B.ret(b, pid, c, :ok)
          {b, times |> Map.put(c, t) |> Map.put(r, t + d)}
        end)

      events = for e <- B.events(b), do: %{e | ts: 1_000_000 + times[e.id]}
      {:ok, web} = ElixirScope.Web.start(port: 0, source: {:events, events, %{}})
      on_exit(fn -> ElixirScope.Web.stop(web) end)

      {out, status} = System.cmd("node", [Path.join(@node_dir, "cinema.mjs"), web.url, "--opening"], cd: @node_dir, stderr_to_stdout: true)
      result = out |> String.split("\n", trim: true) |> List.last() |> ElixirScope.Web.JSON.decode!()
      assert status == 0 and result["ok"] and result["errors"] == [], out

      # the view lies inside the burst (times are from the first event, 0 ns), a small part of the 40 ms
      %{"view" => view, "callPx" => px} = result["opening"]
      assert view["start"] >= 30_400_000 and view["end"] <= 31_000_000, inspect(view)
      assert length(px) >= 5 and Enum.all?(px, &(&1 >= 8)), inspect(px)
    end
  end

  defp tick(0), do: :ok

  defp tick(n) do
    R.report_function_exit(R.report_function_entry(Live.Ticker, :tick, [n]), n)
    Process.sleep(100)
    tick(n - 1)
  end
end
