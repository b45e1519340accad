defmodule ElixirScope.MCPProtocolTest do
  @moduledoc """
  The MCP server's JSON-RPC 2.0 over newline-delimited stdio without an agent:
  malformed JSON, invalid requests, batches, notifications, unknown methods
  and tools, schema violations and tool failures as tool errors, version
  negotiation; and the real `mix scope.mcp` process fed partial and coalesced lines.
  """
  use ExUnit.Case, async: false

  alias ElixirScope.JSON
  alias ElixirScope.MCP.Server
  alias ElixirScope.Recording
  alias ElixirScope.Test.EventBuilder, as: B

  setup do
    me = self()
    b = B.new()
    {b, call} = B.add(b, me, :call, module: Shop, function: :total, payload: [[3, 4]], line: 5)
    {b, _} = B.add(b, me, :local, call_id: call, payload: %{sum: 7}, line: 6)
    {b, _} = B.add(b, me, :return, call_id: call, payload: 7)
    rec = Recording.from_events(B.events(b))
    on_exit(fn -> Recording.close(rec) end)
    {:ok, state} = Server.new()
    {:ok, state: %{state | src: rec}, empty: %{state | src: nil}}
  end

  defp send_line(state, line) do
    {state, out} = Server.handle_line(state, line)
    {state, Enum.map(out, &JSON.decode!/1)}
  end

  defp rpc(state, id, method, params \\ %{}) do
    {_, [reply]} = send_line(state, JSON.encode!(%{"jsonrpc" => "2.0", "id" => id, "method" => method, "params" => params}))
    reply
  end

  test "malformed JSON, invalid requests and batches are JSON-RPC errors; blank lines and notifications get no answer", %{state: s} do
    assert {_, [%{"id" => nil, "error" => %{"code" => -32700}}]} = send_line(s, "{\"jsonrpc\": \"2.0\", \"id\": 1,")
    assert {_, [%{"id" => 3, "error" => %{"code" => -32600}}]} = send_line(s, ~s({"jsonrpc": "1.0", "id": 3, "method": "ping"}))
    assert {_, [%{"id" => nil, "error" => %{"code" => -32600}}]} = send_line(s, ~s({"jsonrpc": "2.0", "id": {"a": 1}, "method": "ping"}))
    assert {_, [%{"error" => %{"code" => -32600, "message" => "Invalid Request: batches" <> _}}]} = send_line(s, ~s([{"jsonrpc": "2.0", "id": 1, "method": "ping"}]))
    assert {_, [%{"id" => 4, "error" => %{"code" => -32600}}]} = send_line(s, ~s({"jsonrpc": "2.0", "id": 4}))
    assert {_, []} = send_line(s, "   \n")
    assert {_, []} = send_line(s, ~s({"jsonrpc": "2.0", "method": "notifications/initialized"}))
    assert {_, []} = send_line(s, ~s({"jsonrpc": "2.0", "id": 9, "result": {}}))
    assert %{"id" => "s-1", "error" => %{"code" => -32601}} = rpc(s, "s-1", "no/such/method")
    assert {_, [%{"id" => 5, "error" => %{"code" => -32602}}]} = send_line(s, ~s({"jsonrpc": "2.0", "id": 5, "method": "ping", "params": [1]}))
    assert %{"id" => 6, "result" => %{}} = rpc(s, 6, "ping")
  end

  test "initialize answers the revision asked for when supported, else the current one", %{state: s} do
    assert %{"result" => %{"protocolVersion" => "2025-11-25", "capabilities" => caps, "serverInfo" => %{"name" => "elixir-scope"}}} =
             rpc(s, 1, "initialize", %{"protocolVersion" => "2025-11-25", "capabilities" => %{}})

    assert caps["tools"] && caps["resources"]
    assert %{"result" => %{"protocolVersion" => "2024-11-05"}} = rpc(s, 2, "initialize", %{"protocolVersion" => "2024-11-05"})
    assert %{"result" => %{"protocolVersion" => "2025-11-25"}} = rpc(s, 3, "initialize", %{"protocolVersion" => "1999-01-01"})
  end

  test "tools: unknown tools are protocol errors, bad arguments and failures are tool errors", %{state: s, empty: empty} do
    assert %{"result" => %{"tools" => tools}} = rpc(s, 1, "tools/list")
    assert length(tools) == 10
    assert %{"error" => %{"code" => -32602}} = rpc(s, 2, "tools/list", %{"cursor" => "nope"})
    assert %{"error" => %{"code" => -32602, "message" => "Unknown tool: nope"}} = rpc(s, 3, "tools/call", %{"name" => "nope"})
    assert %{"error" => %{"code" => -32602}} = rpc(s, 4, "tools/call", %{"name" => "search", "arguments" => [1]})

    tool_error = fn name, args ->
      assert %{"result" => %{"isError" => true, "content" => [%{"type" => "text", "text" => text}]}} =
               rpc(s, 5, "tools/call", %{"name" => name, "arguments" => args})

      text
    end

    assert tool_error.("search", %{}) =~ "arguments.query is required"
    assert tool_error.("search", %{"query" => "x", "extra" => 1}) =~ "arguments.extra is not a known argument"
    assert tool_error.("find_events", %{"limit" => 1_000}) =~ "at most 100"
    assert tool_error.("find_events", %{"kind" => "nonsense"}) =~ "unknown kind"
    assert tool_error.("find_events", %{"cursor" => "!!"}) =~ "invalid cursor"
    assert tool_error.("find_events", %{"module" => "No.Such.Module.Ever.Recorded"}) =~ "unknown module"
    assert tool_error.("origin", %{"value" => "System.halt()"}) =~ "must be an Elixir literal"
    assert tool_error.("explain_crash", %{}) =~ "no exception was recorded"

    # an expression that calls outside pure modules is refused per hit, the tool still answers
    assert %{"result" => %{"isError" => false, "structuredContent" => %{"hits" => [hit]}}} =
             rpc(s, 6, "tools/call", %{"name" => "logpoint", "arguments" => %{"function" => "Shop.total/1", "expression" => "File.rm!(\"x\")"}})

    assert hit["status"] == "error" and hit["value"] =~ "not allowed"

    assert %{"result" => %{"isError" => false, "structuredContent" => %{"hits" => [%{"value" => "{[[3, 4]], 7, 7}"}]}}} =
             rpc(s, 7, "tools/call", %{"name" => "logpoint", "arguments" => %{"function" => "Shop.total/1", "expression" => "{args, sum, result}"}})

    # without a recording: a tool error that says what to do
    assert %{"result" => %{"isError" => true, "content" => [%{"text" => text}]}} =
             rpc(empty, 8, "tools/call", %{"name" => "list_processes", "arguments" => %{}})

    assert text =~ "no recording is open"
  end

  test "resources: the summary, and an unknown uri", %{state: s} do
    assert %{"result" => %{"resources" => [%{"uri" => uri}]}} = rpc(s, 1, "resources/list")
    assert %{"result" => %{"contents" => [%{"text" => text}]}} = rpc(s, 2, "resources/read", %{"uri" => uri})
    assert %{"events" => 3, "processes" => 1, "events_by_kind" => %{"call" => 1}} = JSON.decode!(text)
    assert %{"error" => %{"code" => -32002}} = rpc(s, 3, "resources/read", %{"uri" => "elixir-scope://nope"})
  end

  @tag timeout: 120_000
  test "mix scope.mcp reads lines split across writes and several lines in one write" do
    file = Path.join(System.tmp_dir!(), "mcp_protocol_#{System.unique_integer([:positive])}.esrec")
    on_exit(fn -> File.rm(file) end)
    b = B.new()
    {b, call} = B.add(b, self(), :call, module: Shop, function: :total, payload: [[1]], line: 5)
    {b, _} = B.add(b, self(), :return, call_id: call, payload: 1)
    rec = Recording.from_events(B.events(b))
    {:ok, _} = Recording.save(file, :all, source: rec)
    Recording.close(rec)

    port =
      Port.open({:spawn_executable, System.find_executable("mix")},
        [:binary, :exit_status, {:line, 1_000_000}, args: ["scope.mcp", file], cd: File.cwd!(),
         env: [{~c"MIX_QUIET", ~c"1"}, {~c"MIX_ENV", ~c"test"}, {~c"ERL_COMPILER_OPTIONS", false}]])

    init = JSON.encode!(%{"jsonrpc" => "2.0", "id" => 1, "method" => "initialize", "params" => %{"protocolVersion" => "2025-11-25"}})
    {a, b2} = String.split_at(init, 20)
    Port.command(port, a)
    Process.sleep(50)
    Port.command(port, b2 <> "\n" <> ~s({"jsonrpc":"2.0","method":"notifications/initialized"}\n{oops\n))
    Port.command(port, ~s({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"list_processes","arguments":{}}}\n))

    assert %{"id" => 1, "result" => %{"protocolVersion" => "2025-11-25"}} = next_line(port)
    assert %{"id" => nil, "error" => %{"code" => -32700}} = next_line(port)
    assert %{"id" => 2, "result" => %{"isError" => false, "structuredContent" => %{"total" => 1}}} = next_line(port)
    Port.close(port)
  end

  defp next_line(port) do
    receive do
      {^port, {:data, {:eol, line}}} -> JSON.decode!(line)
      {^port, {:exit_status, status}} -> flunk("mix scope.mcp exited with #{status}")
    after
      60_000 -> flunk("no answer from mix scope.mcp")
    end
  end
end
