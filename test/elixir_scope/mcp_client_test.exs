defmodule ElixirScope.MCPClientTest do
  @moduledoc """
  `mix scope.mcp` driven by the official MCP TypeScript SDK client
  (`@modelcontextprotocol/sdk`, test/mcp/mcp_session.mjs) on the demo
  recording: every tool is called and its answer checked against what
  `ElixirScope.Query` reads from the same recording. Skipped, with the reason
  printed, only where node or npm cannot be found.
  """
  use ExUnit.Case, async: false

  alias ElixirScope.Query
  alias ElixirScope.Test.NodeClient
  alias ElixirScope.Web.Render

  @moduletag :mcp
  @node_dir Path.expand("../mcp", __DIR__)

  setup_all do
    NodeClient.setup(@node_dir, "mcp client tests")
  end

  @tag timeout: 300_000
  test "an MCP SDK client session over the demo recording", ctx do
    if ctx.skip do
      :ok
    else
      {result, status, out} = NodeClient.demo_session(@node_dir, "mcp_session.mjs", &expectations/1)
      assert status == 0 and result["ok"], "MCP SDK session failed:\n#{out}"
      assert length(result["checks"]) >= 17, inspect(result)
      IO.puts("\n[mcp] #{length(result["checks"])} checks passed: #{Enum.join(result["checks"], "; ")}")
    end
  end

  defp expectations(rec) do
    events = Query.events(source: rec)
    exceptions = Query.events(source: rec, kind: :exception)
    [crash | _] = exceptions
    ledger = Query.Source.whereis(rec, Demo.Ledger)
    caller = Query.events(source: rec, kind: :call, mfa: {Demo.Ledger, :open, 3}) |> hd() |> Map.fetch!(:pid)
    {:ok, balances, _} = Query.state_at(ledger, :now, source: rec)
    {:ok, carol} = Query.origin("carol", source: rec)
    handle_call = Enum.find(exceptions, &(&1.function == :handle_call))

    %{
      processes: events |> Enum.map(& &1.pid) |> Enum.uniq() |> length(),
      events: length(events),
      exceptions: Enum.map(exceptions, & &1.id),
      ledgerStates: Enum.map(Query.events(source: rec, pid: ledger, kind: :state), & &1.id),
      scorer: Render.pid(crash.pid),
      caller: Render.pid(caller),
      crashHandleCall: handle_call.call_id,
      balances: balances.balances,
      totals: for(%{value: v} <- Query.variable_history(crash.pid, :total, source: rec), do: Render.short(v, 240)),
      carolFirst: carol.first.id,
      riskCalls: length(Query.events(source: rec, kind: :call, mfa: {Demo.RiskScorer, :risk, 2})),
      protocol: "2025-11-25"
    }
  end
end
