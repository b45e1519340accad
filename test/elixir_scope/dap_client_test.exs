defmodule ElixirScope.DAPClientTest do
  @moduledoc """
  `mix scope.dap` driven by VS Code's own debug adapter test client
  (`@vscode/debugadapter-testsupport`'s DebugClient, test/dap/dap_session.mjs)
  on the demo recording. The expected event ids are computed here from the
  recording with `ElixirScope.Query`. Skipped, with the reason printed, only
  where node or npm cannot be found.
  """
  use ExUnit.Case, async: false

  alias ElixirScope.{Event, Query}
  alias ElixirScope.Test.{DemoRecording, NodeClient}

  @moduletag :dap
  @node_dir Path.expand("../dap", __DIR__)

  setup_all do
    NodeClient.setup(@node_dir, "dap client tests")
  end

  @tag timeout: 300_000
  test "a VS Code DebugClient session over the demo recording", ctx do
    if ctx.skip do
      :ok
    else
      {result, status, out} = NodeClient.demo_session(@node_dir, "dap_session.mjs", &expectations/1)
      assert status == 0 and result["ok"], "DebugClient session failed:\n#{out}"
      assert length(result["checks"]) >= 20, inspect(result)
      IO.puts("\n[dap] #{length(result["checks"])} checks passed: #{Enum.join(result["checks"], "; ")}")
    end
  end

  test "the VS Code extension registers the elixir-scope debug type and starts mix scope.dap" do
    if System.find_executable("node") do
      {out, status} = System.cmd("node", [Path.join(@node_dir, "extension_check.cjs")], stderr_to_stdout: true)
      assert status == 0, out
      assert out =~ ~s({"ok":true})
    else
      IO.puts("\n[vscode extension check skipped] node not found")
    end
  end

  # what the adapter must report, read from the recording itself
  defp expectations(rec) do
    risk_calls = Query.events(source: rec, kind: :call, mfa: {Demo.RiskScorer, :risk, 2})
    [%Event{} = crash | _] = Query.events(source: rec, kind: :exception, mfa: {Demo.RiskScorer, :risk, 2})
    [previous] = Query.events(source: rec, pid: crash.pid, before_id: crash.id, order: :desc, limit: 1)
    # the first event of a risk/2 call at line 29 (its `average = div(…)` expression)
    [first_hit | _] = for c <- risk_calls, e <- Query.events(source: rec, call_id: c.id), e.line == 29, do: e.id

    ledger = Query.Source.whereis(rec, Demo.Ledger)
    changes =
      ledger
      |> Query.state_history(source: rec)
      |> Enum.chunk_every(2, 1, :discard)
      |> Enum.filter(fn [a, b] -> a.state.balances != b.state.balances end)
      |> Enum.map(fn [_, b] -> b.event.id end)

    last_change = changes |> Enum.filter(&(&1 < previous.id)) |> List.last()

    demo = DemoRecording.demo_dir()

    %{
      sourceRoot: demo,
      riskFile: Path.join(demo, "lib/demo/risk_scorer.ex"),
      ledgerFile: Path.join(demo, "lib/demo/ledger.ex"),
      crash: crash.id,
      crashCall: crash.call_id,
      previous: previous.id,
      firstHit: first_hit,
      riskCalls: length(risk_calls),
      ledgerChange: last_change,
      ledgerNext: Enum.find(changes, &(&1 > last_change)),
      processes: rec |> then(&Query.events(source: &1)) |> Enum.map(& &1.pid) |> Enum.uniq() |> length(),
      posts: length(Query.events(source: rec, kind: :call, mfa: {Demo.Ledger, :post, 4}))
    }
  end
end
