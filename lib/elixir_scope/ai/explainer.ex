defmodule ElixirScope.AI.Explainer do
  @moduledoc """
  The offline explanation of a recorded exception: a pure function of a
  list of events (`%ElixirScope.Event{}`, or maps with the same fields).

  `context/2` rebuilds the call chain open at the exception from the
  process's events (calls, returns, tail calls), with the arguments of each
  frame, the last captured locals, the GenServer state and the recent
  events, every value inspected with size caps. `explain/1` turns a context
  into a structured summary and a suggested fix.
  """

  @value_limit 400
  @recent 12

  @doc """
  The context of the exception event `opts[:exception_id]` (default: the
  last `:exception` among `events`). `{:error, msg}` when there is none.
  """
  @spec context([map], keyword) :: {:ok, map} | {:error, String.t()}
  def context(events, opts \\ []) do
    events = Enum.sort_by(events, & &1.id)

    exc =
      case Keyword.get(opts, :exception_id) do
        nil -> events |> Enum.filter(&(&1.kind == :exception)) |> List.last()
        id -> Enum.find(events, &(&1.id == id and &1.kind == :exception))
      end

    if exc do
      pid_events = Enum.filter(events, &(&1.pid == exc.pid))
      exc = origin(pid_events, exc)
      before = Enum.filter(pid_events, &(&1.id < exc.id))
      stack = open_frames(before, exc)
      stack_ids = MapSet.new(stack, &call_id/1)
      # events inside a call (states, expressions) name their function through their call
      calls = for %{kind: :call} = c <- pid_events, into: %{}, do: {c.id, c}

      {:ok,
       %{
         exception: exception_info(exc, before),
         chain: Enum.map(stack, &frame_info/1),
         locals: locals(before, stack_ids),
         state: state_info(before, calls),
         recent: before |> Enum.take(-@recent) |> Enum.map(&brief(&1, calls)),
         truncated?: Enum.any?([exc | before], &Map.get(&1, :truncated?, false))
       }}
    else
      {:error, "no :exception event among the #{length(events)} events"}
    end
  end

  # The innermost report of an exception that was re-reported while unwinding.
  defp origin(pid_events, exc) do
    pid_events
    |> Enum.filter(&(&1.id < exc.id))
    |> Enum.reverse()
    |> Enum.reduce_while(exc, fn e, cur ->
      cond do
        e.kind == :exception and same_reason?(e, cur) -> {:cont, e}
        e.kind in [:return, :tail_call] -> {:cont, cur}
        true -> {:halt, cur}
      end
    end)
  end

  defp same_reason?(a, b) do
    case {a.payload, b.payload} do
      {{k, r, _}, {k, r, _}} -> true
      _ -> false
    end
  end

  defp call_id(e), do: e.call_id || e.id

  # Frames open at the exception, outermost first.
  defp open_frames(before, exc) do
    stack =
      Enum.reduce(before, [], fn e, stack ->
        case e.kind do
          :call -> [e | stack]
          k when k in [:return, :tail_call, :exception] -> pop(stack, e.call_id)
          _ -> stack
        end
      end)

    # the raising frame is the one named by the exception's call_id
    stack =
      case exc.call_id && Enum.split_while(stack, &(call_id(&1) != exc.call_id)) do
        {_inner, [_ | _] = rest} -> rest
        _ -> stack
      end

    Enum.reverse(stack)
  end

  defp pop(stack, nil), do: stack

  defp pop(stack, id) do
    case Enum.split_while(stack, &(call_id(&1) != id)) do
      {_inner, [_frame | rest]} -> rest
      {_, []} -> stack
    end
  end

  defp mfa(%{module: m, function: f, arity: a}) when is_atom(m) and m != nil and is_atom(f), do: "#{inspect(m)}.#{f}/#{a}"
  defp mfa(_), do: nil

  # the function of an event: its own, else that of the call it belongs to
  defp function_of(e, calls), do: mfa(e) || mfa(Map.get(calls, Map.get(e, :call_id)))

  defp line(%{line: l}) when is_integer(l) and l > 0, do: l
  defp line(_), do: nil

  # the line that raised: the stacktrace's frame of the raising function, else the last line
  # recorded inside the raising call, else the call's own line
  defp raise_line(exc, stack, before) do
    from_stack =
      Enum.find_value(stack, fn
        {m, f, a, info} when m == exc.module and f == exc.function and is_list(info) ->
          if (is_integer(a) and a == exc.arity) or (is_list(a) and length(a) == exc.arity), do: line(%{line: info[:line]})

        _ ->
          nil
      end)

    inside = before |> Enum.filter(&(&1.call_id == exc.call_id)) |> Enum.map(&line/1) |> Enum.reject(&is_nil/1)
    line(exc) || from_stack || List.last(inside)
  end

  defp exception_info(exc, before) do
    {kind, reason, stack} =
      case exc.payload do
        {k, r, s} -> {k, r, s}
        other -> {:error, other, []}
      end

    stack = if is_list(stack), do: stack, else: []

    banner =
      try do
        Exception.format_banner(kind, reason, stack)
      rescue
        _ -> "** (#{kind}) " <> show(reason)
      end

    %{
      kind: kind,
      banner: String.slice(banner, 0, 1000),
      type: type_of(kind, reason),
      reason: reason,
      where: mfa(exc),
      line: raise_line(exc, stack, before),
      pid: inspect(exc.pid),
      stacktrace: stack |> Enum.take(10) |> Enum.map(&format_entry/1)
    }
  end

  defp format_entry(entry) do
    Exception.format_stacktrace_entry(entry)
  rescue
    _ -> show(entry)
  end

  defp type_of(:error, %{__struct__: s, __exception__: true}), do: inspect(s)

  defp type_of(:error, reason) do
    inspect(Exception.normalize(:error, reason, []).__struct__)
  rescue
    _ -> "ErlangError"
  end

  defp type_of(kind, _), do: Atom.to_string(kind)

  defp frame_info(e) do
    args = if is_list(e.payload), do: Enum.map(e.payload, &show/1), else: [show(e.payload)]
    %{function: mfa(e), line: line(e), call_id: call_id(e), args: args}
  end

  defp locals(before, stack_ids) do
    before
    |> Enum.filter(&(&1.kind == :local and MapSet.member?(stack_ids, &1.call_id)))
    |> Enum.reduce(%{}, fn e, acc ->
      vars = if is_map(e.payload) or is_list(e.payload), do: Enum.to_list(e.payload), else: []

      Enum.reduce(vars, acc, fn
        {name, value}, a -> Map.put(a, to_string(name), show(value))
        _, a -> a
      end)
    end)
  end

  defp state_info(before, calls) do
    case before |> Enum.filter(&(&1.kind == :state)) |> List.last() do
      nil -> nil
      %{payload: {phase, state}} = e -> %{phase: phase, value: show(state), function: function_of(e, calls)}
      e -> %{phase: :unknown, value: show(e.payload), function: function_of(e, calls)}
    end
  end

  defp brief(e, calls) do
    %{
      id: e.id,
      kind: e.kind,
      function: function_of(e, calls),
      line: line(e),
      value: show(e.payload) |> String.slice(0, 120)
    }
  end

  defp show(value) do
    s = inspect(value, limit: 25, printable_limit: 200, width: :infinity)
    if String.length(s) > @value_limit, do: String.slice(s, 0, @value_limit) <> "…", else: s
  end

  @doc "A JSON-encodable copy of a context (for the LLM prompt)."
  @spec jsonable(map) :: map
  def jsonable(ctx) do
    %{
      exception: %{
        ctx.exception
        | reason: show(ctx.exception.reason),
          kind: to_string(ctx.exception.kind)
      },
      chain: ctx.chain,
      locals: ctx.locals,
      state: ctx.state && %{ctx.state | phase: to_string(ctx.state.phase)},
      recent: Enum.map(ctx.recent, &%{&1 | kind: to_string(&1.kind)}),
      truncated: ctx.truncated?
    }
  end

  @doc "A short text summary of the chain that led to the exception."
  @spec summary_text(map) :: String.t()
  def summary_text(ctx) do
    e = ctx.exception
    chain = Enum.map_join(ctx.chain, " -> ", & &1.function)
    chain = if chain == "", do: e.where, else: chain
    at = if e.line, do: " (line #{e.line})", else: ""
    "#{e.banner} in #{e.where}#{at}; call chain: #{chain}"
  end

  @doc "The structured offline explanation of a context."
  @spec explain(map) :: map
  def explain(ctx) do
    e = ctx.exception
    innermost = List.last(ctx.chain)

    args_text =
      if innermost,
        do: "#{innermost.function} was called with (#{Enum.join(innermost.args, ", ")})",
        else: nil

    locals_text =
      if map_size(ctx.locals) > 0,
        do:
          "locals at the time: " <>
            Enum.map_join(ctx.locals, ", ", fn {k, v} -> "#{k} = #{v}" end)

    state_text =
      if ctx.state,
        do: "GenServer state (#{state_when(ctx.state)}): #{ctx.state.value}"

    explanation =
      [
        summary_text(ctx),
        args_text,
        locals_text,
        state_text,
        if(ctx.truncated?, do: "(some values were truncated)")
      ]
      |> Enum.reject(&is_nil/1)
      |> Enum.join(". ")

    %{
      explanation: explanation,
      suggested_fix: fix(e, innermost),
      provider: :heuristic,
      exception: e.banner,
      chain: Enum.map(ctx.chain, & &1.function)
    }
  end

  defp state_when(%{phase: :before, function: f}) when is_binary(f), do: "before #{f}"
  defp state_when(%{phase: :after, function: f}) when is_binary(f), do: "after #{f}"
  defp state_when(%{phase: phase}) when phase in [:before, :after], do: "#{phase} the callback"
  defp state_when(_), do: "last recorded"

  defp fix(%{type: "FunctionClauseError"}, f),
    do:
      "No clause of #{f && f.function} matched the arguments above: add a clause for them or validate the input earlier."

  defp fix(%{type: "CaseClauseError"}, _),
    do: "A case had no clause for the value: add a clause (or a catch-all) for it."

  defp fix(%{type: "WithClauseError"}, _),
    do: "A with had no else clause for the value: add an else clause."

  defp fix(%{type: "MatchError"}, _),
    do: "A pattern match (=) failed: handle the other shapes of the value with case."

  defp fix(%{type: "KeyError"}, _),
    do: "A key was missing: use Map.get/3 or Map.fetch/2, or make sure the key is always set."

  defp fix(%{type: "ArithmeticError"}, _),
    do: "An arithmetic operand was not a number (or a division by zero): check the operands."

  defp fix(%{type: "UndefinedFunctionError"}, _),
    do:
      "The function does not exist or its module is not loaded: check the name, arity and dependencies."

  defp fix(%{type: "ArgumentError"}, f),
    do:
      "A function got an invalid argument in #{f && f.function}: check the argument types shown above."

  defp fix(%{type: "Protocol.UndefinedError"}, _),
    do:
      "A protocol is not implemented for the value: convert the value or implement the protocol."

  defp fix(%{kind: :exit, banner: b}, _) do
    if String.contains?(b, "timeout"),
      do:
        "A call timed out: the callee was busy or blocked; raise the timeout or make the callee answer sooner.",
      else: "A process exited: check the exit reason and the linked processes."
  end

  defp fix(%{kind: :throw}, _),
    do: "A value was thrown and not caught: catch it where it is expected."

  defp fix(_, _), do: "Inspect the arguments and locals above at the failing line."
end
