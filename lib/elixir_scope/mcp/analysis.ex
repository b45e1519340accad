defmodule ElixirScope.MCP.Analysis do
  @moduledoc """
  The MCP tools that follow calls and values (`call_tree`, `origin`,
  `logpoint`, `explain_crash`), bounded like the others: trees are cut at a
  depth and a number of children, lists come in pages.
  """

  import ElixirScope.MCP.Args
  alias ElixirScope.{Event, Query}
  alias ElixirScope.AI.Explainer
  alias ElixirScope.DAP.{Eval, Frames}
  alias ElixirScope.Web.Render

  @max_children 20

  @doc "The call tree of a process (its root calls, a page at a time) or of one call."
  @spec call_tree(map(), map()) :: map()
  def call_tree(ctx, args) do
    depth = Map.get(args, "depth", 3)

    roots =
      case args do
        %{"call_id" => c} ->
          case Query.call_tree(c, source: ctx.src) do
            nil -> fail("no recorded call ##{c} (a call id is the id of a call event)")
            node -> [node]
          end

        %{"pid" => p} ->
          case Query.call_tree(pid!(ctx.src, p), source: ctx.src) do
            list when is_list(list) -> list
            {:error, msg} -> fail(msg)
          end

        _ ->
          fail("call_tree needs pid or call_id")
      end

    page = page(roots, args, "calls", 10)
    %{page | "calls" => Enum.map(page["calls"], &node(&1, depth))}
  end

  defp node(n, depth) do
    base = %{
      "call_id" => n.event.id,
      "function" => Render.mfa(n.event),
      "args" => Render.short(n.event.payload, 200),
      "status" => Atom.to_string(n.status),
      "result" => result(n),
      "duration_us" => n.duration_ns && div(n.duration_ns, 1000)
    }

    cond do
      n.children == [] -> base
      depth <= 1 -> Map.put(base, "children_not_shown", length(n.children))
      true ->
        shown = n.children |> Enum.take(@max_children) |> Enum.map(&node(&1, depth - 1))
        base = Map.put(base, "children", shown)
        if length(n.children) > @max_children, do: Map.put(base, "more_children", length(n.children) - @max_children), else: base
    end
  end

  defp result(%{return: %Event{payload: v}}), do: Render.short(v, 200)
  defp result(%{exception: %Event{payload: p}}), do: Render.exception(p).message
  defp result(%{tail_call: %Event{payload: p}}), do: "tail call: " <> Render.short(p, 200)
  defp result(_), do: nil

  @doc "Where a value came from: the first event holding it, the calls open then, the hops that carried it."
  @spec origin(map(), map()) :: map()
  def origin(ctx, args) do
    value = literal!(args["value"])

    case Query.origin(value, source: ctx.src) do
      {:ok, o} ->
        t0 = t0(ctx.src)
        holders = page(o.holders, args, "holders")

        %{
          "value" => Render.short(value, 200),
          "first" => brief(o.first, t0),
          "calls_open_at_first" => Enum.map(o.calls, &Render.mfa/1),
          "chain" => Enum.map(o.chain, &%{"type" => Atom.to_string(&1.type), "from_event" => &1.from.id, "to_event" => &1.to.id,
                                           "from" => Render.pid(&1.from.pid), "to" => Render.pid(&1.to.pid)}),
          "holders" => Enum.map(holders["holders"], &brief(&1, t0)),
          "total_holders" => holders["total"],
          "next_cursor" => holders["next_cursor"]
        }

      {:error, msg} ->
        fail(msg)
    end
  end

  defp literal!(text) do
    with {:ok, ast} <- Code.string_to_quoted(text, existing_atoms_only: true),
         true <- Macro.quoted_literal?(ast) do
      {value, _} = Code.eval_quoted(ast)
      value
    else
      _ -> fail("value must be an Elixir literal such as \"alice\", 8050, :ok or {:ok, 1}, got: #{text}")
    end
  end

  @doc """
  Evaluates an expression over every recorded call of a function, as a print
  would have: the call's arguments by name, its locals, `args`, `result` and
  `exception` are bound.
  """
  @spec logpoint(map(), map()) :: map()
  def logpoint(ctx, args) do
    filter = target!(args["function"])
    pid = if args["pid"], do: [pid: pid!(ctx.src, args["pid"])], else: []
    {offset, limit} = {offset(args), limit(args)}
    calls = Query.events([source: ctx.src, kind: :call, limit: offset + limit + 1] ++ filter ++ pid)
    calls = if is_list(calls), do: calls, else: fail(elem(calls, 1))
    t0 = t0(ctx.src)

    hits =
      for call <- calls |> Enum.drop(offset) |> Enum.take(limit) do
        hit = Query.hit(call, source: ctx.src)
        frame = %{pid: call.pid, call: call, line: 0, path: nil, module: call.module, bound: call.return_id || call.id, at: call.id}
        vars = [args: hit.args, result: hit.return, exception: hit.exception] ++ Frames.bindings(ctx.src, ctx.sources, frame).vars

        {status, value} =
          case Eval.eval(args["expression"], vars, timeout: ctx.timeout) do
            {:ok, v, _output} -> {"ok", Render.short(v, 300)}
            {:error, msg} -> {"error", msg}
          end

        %{"call_id" => call.id, "pid" => Render.pid(call.pid), "t_us" => div(call.ts - t0, 1000), "status" => status, "value" => value}
      end

    %{"hits" => hits, "next_cursor" => if(length(calls) > offset + limit, do: cursor(:offset, offset + limit))}
  end

  defp target!(text) do
    case Regex.run(~r/^\s*(.+)\.([^.\/\s]+)(?:\/(\d+))?\s*$/, text || "") do
      [_, m, f, a] -> [module: module!(m), function: atom!(f, "function"), arity: String.to_integer(a)]
      [_, m, f] -> [module: module!(m), function: atom!(f, "function")]
      _ -> fail("function must be written Module.function/arity, got: #{inspect(text)}")
    end
  end

  @doc "The offline explanation of a recorded exception (default: the last one)."
  @spec explain_crash(map(), map()) :: map()
  def explain_crash(ctx, args) do
    exc =
      case args do
        %{"event_id" => id} -> event!(ctx.src, id)
        %{"pid" => p} -> last_exception([pid: pid!(ctx.src, p)], ctx)
        _ -> last_exception([], ctx)
      end

    if exc.kind != :exception, do: fail("event ##{exc.id} is a #{exc.kind}, not an exception")
    events = Query.events(source: ctx.src, pid: exc.pid, before_id: exc.id + 1, order: :desc, limit: 5_000)
    events = if is_list(events), do: Enum.reverse(events), else: fail(elem(events, 1))

    case Explainer.context(events, exception_id: exc.id) do
      {:ok, c} ->
        e = Explainer.explain(c)
        json = Explainer.jsonable(c)

        %{"exception_event" => exc.id, "pid" => Render.pid(exc.pid), "explanation" => e.explanation,
          "suggested_fix" => e.suggested_fix, "exception" => e.exception, "call_chain" => e.chain,
          "locals" => json.locals, "state" => json.state, "recent_events" => json.recent}

      {:error, msg} ->
        fail(msg)
    end
  end

  defp last_exception(filter, ctx) do
    case Query.events([source: ctx.src, kind: :exception, order: :desc, limit: 1] ++ filter) do
      [e] -> e
      _ -> fail("no exception was recorded")
    end
  end
end
