defmodule ElixirScope.MCP.Tools do
  @moduledoc """
  The MCP server's tools: their definitions (name, title, description, JSON
  Schema of the input) and `call/3`, which checks the arguments against the
  schema and runs the tool. Every failure is a tool result with
  `isError: true` and a message, never an exception out of the server.
  """

  alias ElixirScope.JSON
  alias ElixirScope.MCP.{Analysis, Queries, Schema}

  @pid %{"type" => "string", "description" => "a process: a pid as <0.123.0> or a registered name such as Demo.Ledger", "maxLength" => 200}
  @limit %{"type" => "integer", "minimum" => 1, "maximum" => 100, "description" => "page size (default 25, at most 100)"}
  @cursor %{"type" => "string", "description" => "the next_cursor of the previous page, as given", "maxLength" => 200}
  @event_id %{"type" => "integer", "minimum" => 1}

  @tools [
    {"list_processes", "Recorded processes",
     "Every recorded process: pid, registered name, first function, first/last event ids and counts of events, calls, exceptions.",
     %{"limit" => @limit, "cursor" => @cursor}, [], {Queries, :list_processes}},
    {"find_events", "Find events",
     "Recorded events matching filters (all optional, combined): process, module, function, arity, kind, call id, id range; in id order (or reversed). Each event: id, time, pid, kind, function, line, call id and its value as short text.",
     %{"pid" => @pid, "module" => %{"type" => "string", "description" => "e.g. Demo.Ledger", "maxLength" => 200},
       "function" => %{"type" => "string", "maxLength" => 200}, "arity" => %{"type" => "integer", "minimum" => 0, "maximum" => 255},
       "kind" => %{"oneOf" => [%{"type" => "string"}, %{"type" => "array", "items" => %{"type" => "string"}}],
                   "description" => "call, return, exception, tail_call, local, expr, state, send, receive, spawn, exit, custom (or a list)"},
       "call_id" => %{"type" => "integer", "minimum" => 1, "description" => "the events of one call (the id of its call event)"},
       "after_id" => %{"type" => "integer", "minimum" => 0}, "before_id" => @event_id,
       "order" => %{"type" => "string", "enum" => ["asc", "desc"]}, "limit" => @limit, "cursor" => @cursor}, [],
     {Queries, :find_events}},
    {"call_tree", "Call tree",
     "The call tree of a process (its root calls, a page at a time) or of one call: function, arguments, result or exception, duration, children down to `depth`.",
     %{"pid" => @pid, "call_id" => @event_id, "depth" => %{"type" => "integer", "minimum" => 1, "maximum" => 10, "description" => "levels shown (default 3)"},
       "limit" => @limit, "cursor" => @cursor}, [], {Analysis, :call_tree}},
    {"state_at", "GenServer state at an event",
     "The state of a GenServer just after an event (default: its latest recorded state), with the callback that set it.",
     %{"pid" => @pid, "event_id" => @event_id}, ["pid"], {Queries, :state_at}},
    {"variable_history", "Values of a variable",
     "The values a local variable took, in time order, in a process or in one call.",
     %{"name" => %{"type" => "string", "maxLength" => 200}, "pid" => @pid, "call_id" => @event_id, "limit" => @limit, "cursor" => @cursor},
     ["name"], {Queries, :variable_history}},
    {"origin", "Where a value came from",
     "The first recorded event holding a value (an Elixir literal: \"alice\", 8050, :ok, {:ok, 1}), the calls open at that moment, the messages and calls that carried it to other processes, and every event holding it.",
     %{"value" => %{"type" => "string", "maxLength" => 2_000}, "limit" => @limit, "cursor" => @cursor}, ["value"], {Analysis, :origin}},
    {"logpoint", "Logpoint over recorded calls",
     "Evaluates an Elixir expression over every recorded call of a function, as a print would have after the fact. The call's arguments (by name), its locals, `args`, `result` and `exception` are bound; only pure functions (Enum, Map, String…) may be called; each evaluation is bounded in time.",
     %{"function" => %{"type" => "string", "description" => "Module.function/arity, e.g. Demo.RiskScorer.risk/2", "maxLength" => 300},
       "expression" => %{"type" => "string", "description" => "e.g. {amount, length(history), result}", "maxLength" => 10_000},
       "pid" => @pid, "limit" => @limit, "cursor" => @cursor}, ["function", "expression"], {Analysis, :logpoint}},
    {"explain_crash", "Explain a crash",
     "Explains a recorded exception (an exception event, the last one of a process, or the last one recorded): the call chain with arguments, the locals and GenServer state at the time, the events before it, and a suggested fix.",
     %{"event_id" => @event_id, "pid" => @pid}, [], {Analysis, :explain_crash}},
    {"search", "Search events",
     "Events whose function or value contains every word of the query (case-insensitive); words kind:call, pid:<0.1.0>, mod:Name, fun:name narrow the search.",
     %{"query" => %{"type" => "string", "maxLength" => 1_000}, "limit" => @limit, "cursor" => @cursor}, ["query"], {Queries, :search}},
    {"timeline", "Timeline of processes",
     "The events of up to 8 processes merged in time order, with the messages, calls and replies between them.",
     %{"pids" => %{"type" => "array", "items" => @pid, "minItems" => 1, "maxItems" => 8},
       "after_id" => %{"type" => "integer", "minimum" => 0}, "before_id" => @event_id, "limit" => @limit, "cursor" => @cursor},
     ["pids"], {Queries, :timeline}}
  ]

  @doc "The tool definitions for `tools/list`."
  @spec list() :: [map()]
  def list do
    for {name, title, description, props, required, _fun} <- @tools do
      schema = %{"type" => "object", "properties" => props, "additionalProperties" => false}
      schema = if required == [], do: schema, else: Map.put(schema, "required", required)
      %{"name" => name, "title" => title, "description" => description, "inputSchema" => schema,
        "annotations" => %{"readOnlyHint" => true, "openWorldHint" => false}}
    end
  end

  @doc """
  Runs a tool. `ctx` holds `src` (the recording, or nil), `sources`, `timeout`.
  Returns `{:ok, result}` (an MCP CallToolResult) or `:unknown`.
  """
  @spec call(map(), String.t(), map()) :: {:ok, map()} | :unknown
  def call(ctx, name, args) do
    case List.keyfind(@tools, name, 0) do
      nil ->
        :unknown

      {^name, _, _, props, required, fun} ->
        schema = %{"type" => "object", "properties" => props, "required" => required, "additionalProperties" => false}

        result =
          with :ok <- Schema.validate(args, schema),
               :ok <- have_source(ctx) do
            run(fun, ctx, args)
          end

        {:ok, result(result)}
    end
  end

  defp have_source(%{src: nil}),
    do: {:error, "no recording is open: start the server with one (mix scope.mcp run.esrec), or start ElixirScope in this VM"}

  defp have_source(_), do: :ok

  defp run(fun, ctx, args) do
    {mod, f} = fun
    {:ok, apply(mod, f, [ctx, args])}
  rescue
    e -> {:error, "the tool failed: " <> Exception.message(e)}
  catch
    {:tool_error, msg} -> {:error, msg}
    {:query_error, msg} -> {:error, msg}
  end

  defp result({:ok, value}),
    do: %{"content" => [%{"type" => "text", "text" => JSON.encode!(value)}], "structuredContent" => value, "isError" => false}

  defp result({:error, msg}), do: %{"content" => [%{"type" => "text", "text" => msg}], "isError" => true}
end
