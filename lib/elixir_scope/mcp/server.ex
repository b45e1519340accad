defmodule ElixirScope.MCP.Server do
  @moduledoc """
  A Model Context Protocol server over stdio (`mix scope.mcp`): JSON-RPC 2.0,
  one message per line, protocol revision #{"2025-11-25"} (older revisions a
  client asks for are accepted). It offers the tools of
  `ElixirScope.MCP.Tools` over one recording (or the live session of this
  VM) and the recording's summary as a resource.

  `handle_line/2` is the whole protocol: a line in, the lines to answer out;
  a malformed line or a failing tool never stops the server.
  """

  alias ElixirScope.{JSON, Query, Recording}
  alias ElixirScope.DAP.Sources
  alias ElixirScope.MCP.Tools
  alias ElixirScope.Web.{Data, Render}

  @latest "2025-11-25"
  @supported [@latest, "2025-06-18", "2025-03-26", "2024-11-05"]
  @summary_uri "elixir-scope://recording/summary"

  defstruct src: nil, owned: nil, sources: nil, timeout: 2_000, protocol: nil

  @type t :: %__MODULE__{}

  @doc """
  A server state. Options: `recording:` (a path; without one, the live
  session of this VM when ElixirScope runs), `source_root:` (where recorded
  modules' files are, for argument names; default the current directory).
  """
  @spec new(keyword()) :: {:ok, t()} | {:error, String.t()}
  def new(opts \\ []) do
    sources = Sources.new(opts[:source_root])

    case opts[:recording] do
      nil ->
        {:ok, %__MODULE__{src: if(ElixirScope.running?(), do: :live), sources: sources}}

      path ->
        with {:ok, rec} <- Recording.load(path, default: false) do
          {:ok, %__MODULE__{src: rec, owned: rec, sources: sources}}
        end
    end
  end

  @doc "Frees what the server loaded."
  @spec close(t()) :: :ok
  def close(%__MODULE__{owned: %Recording{} = rec}), do: Recording.close(rec)
  def close(_), do: :ok

  @doc "Serves over standard I/O until stdin closes."
  @spec serve_stdio(t()) :: :ok
  def serve_stdio(state) do
    device = Process.group_leader()
    :ok = :io.setopts(device, binary: true, encoding: :latin1)
    loop(device, state)
  end

  defp loop(device, state) do
    case IO.binread(device, :line) do
      line when is_binary(line) ->
        {state, out} = handle_line(state, line)
        Enum.each(out, &IO.binwrite(device, [&1, ?\n]))
        loop(device, state)

      _eof_or_error ->
        close(state)
    end
  end

  @doc "Handles one line: returns the new state and the JSON lines to send back."
  @spec handle_line(t(), binary()) :: {t(), [binary()]}
  def handle_line(state, line) do
    case String.trim(line) do
      "" ->
        {state, []}

      text ->
        {state, replies} =
          case JSON.decode(text) do
            {:ok, msg} -> message(state, msg)
            {:error, reason} -> {state, [error(nil, -32700, "Parse error: #{reason}")]}
          end

        {state, Enum.map(replies, &JSON.encode!/1)}
    end
  end

  defp message(state, %{"method" => method} = msg) when is_binary(method) do
    id = msg["id"]
    params = Map.get(msg, "params", %{})

    cond do
      msg["jsonrpc"] != "2.0" -> {state, if(Map.has_key?(msg, "id"), do: [error(valid_id(id), -32600, "Invalid Request: jsonrpc must be \"2.0\"")], else: [])}
      not Map.has_key?(msg, "id") -> {notification(state, method), []}
      not (is_binary(id) or is_integer(id)) -> {state, [error(nil, -32600, "Invalid Request: id must be a string or an integer")]}
      not is_map(params) -> {state, [error(id, -32602, "Invalid params: params must be an object")]}
      true -> request(state, id, method, params)
    end
  end

  defp message(state, %{"id" => _} = msg) when is_map_key(msg, "result") or is_map_key(msg, "error"), do: {state, []}
  defp message(state, list) when is_list(list), do: {state, [error(nil, -32600, "Invalid Request: batches are not supported")]}
  defp message(state, msg), do: {state, [error(valid_id(msg["id"]), -32600, "Invalid Request: a message needs a method")]}

  defp valid_id(id) when is_binary(id) or is_integer(id), do: id
  defp valid_id(_), do: nil

  defp notification(state, _method), do: state

  defp request(state, id, method, params) do
    {state, result} =
      try do
        call(state, method, params)
      rescue
        e -> {state, {:error, -32603, "Internal error: " <> Exception.message(e)}}
      end

    case result do
      {:ok, value} -> {state, [%{"jsonrpc" => "2.0", "id" => id, "result" => value}]}
      {:error, code, msg} -> {state, [error(id, code, msg)]}
    end
  end

  defp error(id, code, message), do: %{"jsonrpc" => "2.0", "id" => id, "error" => %{"code" => code, "message" => message}}

  defp call(state, "initialize", params) do
    asked = params["protocolVersion"]
    version = if asked in @supported, do: asked, else: @latest

    {%{state | protocol: version},
     {:ok,
      %{
        "protocolVersion" => version,
        "capabilities" => %{"tools" => %{"listChanged" => false}, "resources" => %{"subscribe" => false, "listChanged" => false}},
        "serverInfo" => %{"name" => "elixir-scope", "title" => "ElixirScope recordings", "version" => version()},
        "instructions" => instructions(state)
      }}}
  end

  defp call(state, "ping", _), do: {state, {:ok, %{}}}

  defp call(state, "tools/list", %{"cursor" => c}) when c != nil,
    do: {state, {:error, -32602, "Invalid params: unknown cursor #{inspect(c)} (every tool is on the first page)"}}

  defp call(state, "tools/list", _), do: {state, {:ok, %{"tools" => Tools.list()}}}

  defp call(state, "tools/call", %{"name" => name} = params) when is_binary(name) do
    args = Map.get(params, "arguments") || %{}

    cond do
      not is_map(args) ->
        {state, {:error, -32602, "Invalid params: arguments must be an object"}}

      true ->
        case Tools.call(%{src: state.src, sources: state.sources, timeout: state.timeout}, name, args) do
          {:ok, result} -> {state, {:ok, result}}
          :unknown -> {state, {:error, -32602, "Unknown tool: #{name}"}}
        end
    end
  end

  defp call(state, "tools/call", _), do: {state, {:error, -32602, "Invalid params: tools/call needs a tool name"}}

  defp call(state, "resources/list", _) do
    {state,
     {:ok,
      %{"resources" => [%{"uri" => @summary_uri, "name" => "recording-summary", "title" => "Recording summary",
                          "description" => "What the recording holds: its span, processes, event counts by kind and exceptions",
                          "mimeType" => "application/json"}]}}}
  end

  defp call(state, "resources/templates/list", _), do: {state, {:ok, %{"resourceTemplates" => []}}}

  defp call(state, "resources/read", %{"uri" => @summary_uri}) do
    if state.src == nil,
      do: {state, {:error, -32002, "Resource not found: no recording is open"}},
      else: {state, {:ok, %{"contents" => [%{"uri" => @summary_uri, "mimeType" => "application/json", "text" => JSON.encode!(summary(state.src))}]}}}
  end

  defp call(state, "resources/read", params), do: {state, {:error, -32002, "Resource not found: #{inspect(params["uri"])}"}}
  defp call(state, method, _), do: {state, {:error, -32601, "Method not found: #{method}"}}

  defp version, do: to_string(Application.spec(:elixir_scope, :vsn) || "0")

  defp instructions(state) do
    what = if state.src, do: Query.Source.describe(state.src), else: "no recording (start the server with one)"

    "ElixirScope: a recorded execution of an Elixir system (#{what}). Start with the resource " <>
      "#{@summary_uri} or list_processes; explain_crash explains exceptions; find_events, search and timeline " <>
      "read events; state_at, variable_history, call_tree and origin follow state, variables, calls and values; " <>
      "logpoint evaluates an expression over every recorded call of a function. Outputs are paged: pass next_cursor back."
  end

  @doc "The summary resource: span, processes, counts by kind, exceptions."
  @spec summary(Query.Source.t()) :: map()
  def summary(src) do
    events = Query.stream(source: src)
    {kinds, pids, exceptions} =
      Enum.reduce(events, {%{}, MapSet.new(), []}, fn e, {kinds, pids, exc} ->
        exc = if e.kind == :exception and length(exc) < 20, do: [e | exc], else: exc
        {Map.update(kinds, Atom.to_string(e.kind), 1, &(&1 + 1)), MapSet.put(pids, e.pid), exc}
      end)

    Data.summary(src)
    |> Map.take([:title, :source, :first_id, :last_id, :t_start, :t_end, :events, :wall_t0])
    |> Map.merge(%{
      processes: MapSet.size(pids),
      events_by_kind: kinds,
      exceptions:
        for e <- Enum.reverse(exceptions) do
          %{event: e.id, pid: Render.pid(e.pid), function: Render.mfa(e), message: Render.exception(e.payload).message}
        end
    })
  catch
    {:query_error, msg} -> %{error: msg}
  end
end
