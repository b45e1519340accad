defmodule ElixirScope.MCP.Queries do
  @moduledoc """
  The MCP tools that read events (`list_processes`, `find_events`, `search`,
  `timeline`, `state_at`, `variable_history`), each answering a bounded page
  and a `next_cursor` when there is more. Built on `ElixirScope.Query`.
  """

  import ElixirScope.MCP.Args
  alias ElixirScope.{Event, Query}
  alias ElixirScope.Query.Correlation
  alias ElixirScope.Web.{Data, Render}

  @doc "Every recorded process with its name, first function and counts."
  @spec list_processes(map(), map()) :: map()
  def list_processes(%{src: src}, args) do
    names = Query.Source.names(src)

    stats =
      [source: src]
      |> Query.stream()
      |> Enum.reduce(%{}, fn e, acc ->
        Map.update(acc, e.pid, new_stats(e), fn s ->
          %{s | last: e.id, events: s.events + 1, calls: s.calls + if(e.kind == :call, do: 1, else: 0),
                exceptions: s.exceptions + if(e.kind == :exception, do: 1, else: 0), first_call: s.first_call || call(e)}
        end)
      end)

    stats
    |> Enum.sort_by(fn {_pid, s} -> s.first end)
    |> Enum.map(fn {pid, s} ->
      %{"pid" => Render.pid(pid), "name" => names[pid] && Render.mod(names[pid]), "first_function" => s.first_call,
        "first_event" => s.first, "last_event" => s.last, "events" => s.events, "calls" => s.calls,
        "exceptions" => s.exceptions}
    end)
    |> page(args, "processes")
  catch
    {:query_error, msg} -> fail(msg)
  end

  defp new_stats(e),
    do: %{first: e.id, last: e.id, events: 1, calls: if(e.kind == :call, do: 1, else: 0),
          exceptions: if(e.kind == :exception, do: 1, else: 0), first_call: call(e)}

  defp call(%Event{kind: :call} = e), do: Render.mfa(e)
  defp call(_), do: nil

  @doc "Events matching the Query filters, a page at a time (in id order, or reversed)."
  @spec find_events(map(), map()) :: map()
  def find_events(%{src: src}, args) do
    order = if args["order"] == "desc", do: :desc, else: :asc
    limit = limit(args)

    position =
      case position(args) do
        {:offset, 0} -> []
        {:id, n} when order == :asc -> [after_id: n]
        {:id, n} -> [before_id: n]
        _ -> fail("this cursor belongs to another tool")
      end

    filters = Keyword.merge(filters(src, args), position) ++ [source: src, order: order]

    case Query.page(filters, limit) do
      {:ok, events, next} ->
        t0 = t0(src)
        cursor = next && cursor(:id, List.last(events).id)
        %{"events" => Enum.map(events, &brief(&1, t0)), "next_cursor" => cursor}

      {:error, msg} ->
        fail(msg)
    end
  end

  defp filters(src, args) do
    Enum.flat_map(args, fn
      {"pid", p} -> [pid: pid!(src, p)]
      {"module", m} -> [module: module!(m)]
      {"function", f} -> [function: atom!(f, "function")]
      {"arity", a} -> [arity: a]
      {"kind", k} -> [kinds: kinds!(k)]
      {"call_id", c} -> [call_id: c]
      {"after_id", a} -> [after_id: a]
      {"before_id", b} -> [before_id: b]
      _ -> []
    end)
  end

  @doc "Events whose function or rendered value contains the words (as the cinema's search)."
  @spec search(map(), map()) :: map()
  def search(%{src: src}, args) do
    {offset, limit} = {offset(args), limit(args)}

    case Data.search(src, args["query"], limit: min(offset + limit + 1, 1_000)) do
      %{error: msg} ->
        fail(msg)

      %{ids: ids, truncated: truncated?} ->
        t0 = t0(src)
        page = ids |> Enum.drop(offset) |> Enum.take(limit)
        more? = length(ids) > offset + limit or (truncated? and offset + limit < 1_000)
        %{"events" => Enum.map(page, &brief(event!(src, &1), t0)), "next_cursor" => if(more?, do: cursor(:offset, offset + limit))}
    end
  end

  @doc "The events of several processes merged in time, with the messages between them."
  @spec timeline(map(), map()) :: map()
  def timeline(%{src: src}, args) do
    pids = Enum.map(args["pids"], &pid!(src, &1))
    limit = limit(args, 50)

    after_id =
      case position(args) do
        {:id, n} -> n
        {:offset, 0} -> args["after_id"] || 0
        _ -> fail("this cursor belongs to another tool")
      end

    bound = if args["before_id"], do: [before_id: args["before_id"]], else: []

    events =
      pids
      |> Enum.flat_map(fn pid -> List.wrap(Query.events([source: src, pid: pid, after_id: after_id, limit: limit + 1] ++ bound)) end)
      |> Enum.sort_by(& &1.id)

    page = Enum.take(events, limit)
    t0 = t0(src)

    links =
      for l <- Correlation.links(page), l.from.pid != l.to.pid do
        %{"type" => Atom.to_string(l.type), "from_event" => l.from.id, "to_event" => l.to.id,
          "from" => Render.pid(l.from.pid), "to" => Render.pid(l.to.pid)}
      end

    %{"events" => Enum.map(page, &brief(&1, t0)), "messages" => links,
      "next_cursor" => if(length(events) > limit, do: cursor(:id, List.last(page).id))}
  end

  @doc "A GenServer's state just after an event (default: its latest state)."
  @spec state_at(map(), map()) :: map()
  def state_at(%{src: src}, args) do
    pid = pid!(src, args["pid"])
    at = if args["event_id"], do: {:event, args["event_id"]}, else: :now

    case Query.state_at(pid, at, source: src) do
      {:ok, state, e} ->
        call = e.call_id > 0 && Query.event(e.call_id, source: src)
        phase = case e.payload do
          {p, _} when p in [:before, :after] -> Atom.to_string(p)
          _ -> nil
        end

        %{"pid" => Render.pid(pid), "state" => Render.term(state, max: 8_000), "state_event" => e.id,
          "phase" => phase, "callback" => call && Render.mfa(call)}

      {:error, msg} ->
        fail(msg)
    end
  end

  @doc "The values a local variable took, in time order."
  @spec variable_history(map(), map()) :: map()
  def variable_history(%{src: src}, args) do
    scope =
      case args do
        %{"call_id" => c} -> c
        %{"pid" => p} -> pid!(src, p)
        _ -> fail("variable_history needs pid or call_id")
      end

    case Query.variable_history(scope, args["name"], source: src) do
      list when is_list(list) ->
        t0 = t0(src)

        list
        |> Enum.map(fn %{event: e, value: v} ->
          %{"event" => e.id, "t_us" => div(e.ts - t0, 1000), "pid" => Render.pid(e.pid), "line" => e.line,
            "call_id" => e.call_id, "value" => Render.short(v, 240)}
        end)
        |> page(args, "values")

      {:error, msg} ->
        fail(msg)
    end
  end
end
