defmodule ElixirScope.DAP.Breakpoints do
  @moduledoc """
  Breakpoints over a recording: every breakpoint is resolved once into the
  ordered list of the events where it is hit, over the whole recording, so
  that `continue` and `reverseContinue` are a search in that list either way.

    * line (`{:line, path, line}`): the events of calls of the modules the
      file defines at that line — the first event of each visit of the line,
      an exception at the line its stacktrace gives;
    * function (`{:function, "Mod.fun/arity"}`): the `:call` events;
    * data (`{:data, pid, path}`): the `:state` events of a GenServer where the
      value at `path` differs from its previous recorded state;
    * exception (`{:exception, "raised" | "crashed"}`): where an exception was
      raised (its innermost report), or raised and then crashed its process
      (it left the process's outermost recorded call), plus abnormal `:exit`s.

  A condition (an Elixir expression over the frame's bindings, see
  `ElixirScope.DAP.Eval`) keeps the hits where it is truthy; a hit condition
  (`N` or `== N`, `>= N`, `> N`, `<= N`, `< N`, `% N`) counts the hits from
  the start of the recording. A log message makes a logpoint: its hits are
  printed, not stopped at.
  """

  alias ElixirScope.{Event, Query}
  alias ElixirScope.DAP.{Eval, Frames, Sources, Timeline, Variables}

  @max_hits 100_000

  @type spec ::
          {:line, String.t(), pos_integer()}
          | {:function, String.t()}
          | {:data, pid(), [Variables.key()]}
          | {:exception, String.t()}
  @type bp :: %{
          id: pos_integer(),
          spec: spec(),
          condition: String.t() | nil,
          hit_condition: String.t() | nil,
          log_message: String.t() | nil,
          hits: [pos_integer()],
          verified: boolean(),
          message: String.t() | nil,
          logs: [map()]
        }
  @type ctx :: %{src: Query.Source.t(), sources: Sources.t(), timeout: pos_integer()}

  @doc "A breakpoint from its spec and options (`condition:`, `hit_condition:`, `log_message:`), resolved."
  @spec resolve(pos_integer(), spec(), keyword(), ctx()) :: bp()
  def resolve(id, spec, opts, ctx) do
    bp = %{
      id: id,
      spec: spec,
      condition: blank(opts[:condition]),
      hit_condition: blank(opts[:hit_condition]),
      log_message: opts[:log_message],
      hits: [],
      verified: false,
      message: nil,
      logs: []
    }

    with {:ok, counter} <- hit_counter(bp.hit_condition),
         {:ok, candidates} <- candidates(spec, ctx) do
      {hits, errors} = filter(candidates, bp, counter, ctx)
      hits = Enum.take(hits, @max_hits)
      events = Enum.map(hits, fn {e, _, _} -> e.id end)

      %{
        bp
        | hits: events,
          verified: candidates != [],
          message: message(candidates, errors, spec),
          logs: if(bp.log_message, do: logs(hits, bp.log_message, ctx), else: [])
      }
    else
      {:error, msg} -> %{bp | message: msg}
    end
  end

  defp blank(nil), do: nil
  defp blank(s) when is_binary(s), do: if(String.trim(s) == "", do: nil, else: s)

  defp message([], _, {:line, _, line}), do: "no recorded event at line #{line} of this file"
  defp message([], _, {:function, name}), do: "#{name} has no recorded call"
  defp message([], _, {:data, _, _}), do: "this value never changes in the recording"
  defp message([], _, {:exception, _}), do: "no such exception in the recording"
  defp message(_, [first | _], _), do: "the condition failed: #{first}"
  defp message(_, [], _), do: nil

  # [{event, call}] in time order
  defp candidates({:line, path, line}, ctx), do: {:ok, Map.get(line_candidates(ctx, path, [line]), line, [])}

  defp candidates({:function, name}, ctx) do
    with {:ok, filter} <- Query.target_filter(name) do
      case Query.events([source: ctx.src, kind: :call, limit: @max_hits] ++ filter) do
        evs when is_list(evs) -> {:ok, Enum.map(evs, &{&1, &1, %{}})}
        error -> error
      end
    end
  end

  defp candidates({:data, pid, path}, ctx) do
    case Query.state_history(pid, source: ctx.src) do
      history when is_list(history) ->
        {changes, _} =
          Enum.flat_map_reduce(history, {:none}, fn %{event: e, state: s}, prev ->
            v = Variables.value_at(s, path)
            hit = if prev == {:none} or prev != {:value, v}, do: [e], else: []
            {hit, {:value, v}}
          end)

        {:ok, Enum.map(changes, &{&1, call_of(ctx.src, &1), nil})}

      error ->
        error
    end
  end

  defp candidates({:exception, filter}, ctx) when filter in ["raised", "crashed"] do
    case Query.events(source: ctx.src, kinds: [:exception, :exit]) do
      evs when is_list(evs) ->
        hits =
          case filter do
            "raised" -> evs |> Enum.filter(&(&1.kind == :exception and origin?(ctx.src, &1)))
            "crashed" -> evs |> Enum.flat_map(&crash_origin(ctx.src, &1)) |> Enum.uniq_by(& &1.id) |> Enum.sort_by(& &1.id)
          end

        {:ok, Enum.map(hits, &{&1, call_of(ctx.src, &1), nil})}

      error ->
        error
    end
  end

  defp candidates({:exception, other}, _ctx), do: {:error, "unknown exception filter #{inspect(other)} (raised, crashed)"}

  defp call_of(_src, %Event{kind: :call} = e), do: e
  defp call_of(src, %Event{call_id: c}) when is_integer(c) and c > 0, do: Query.event(c, source: src)
  defp call_of(_, _), do: nil

  # an exception is raised where it is first reported: the process's previous event is not the same exception
  defp origin?(src, e) do
    case Query.events(source: src, pid: e.pid, before_id: e.id, order: :desc, limit: 1) do
      [%Event{kind: :exception} = prev] -> not same_exception?(prev, e)
      _ -> true
    end
  end

  defp same_exception?(%Event{payload: {k, r, _}}, %Event{payload: {k, r, _}}), do: true
  defp same_exception?(_, _), do: false

  # an exception that left its process's outermost recorded call, reported where it was raised
  defp crash_origin(src, %Event{kind: :exception} = e) do
    if Timeline.depth(src, e.pid, e.id) <= 1 do
      src
      |> then(&Query.events(source: &1, pid: e.pid, before_id: e.id, order: :desc, limit: 256))
      |> List.wrap()
      |> Enum.take_while(&(&1.kind == :exception and same_exception?(&1, e)))
      |> List.last()
      |> Kernel.||(e)
      |> List.wrap()
    else
      []
    end
  end

  defp crash_origin(_src, %Event{kind: :exit} = e), do: if(Event.crash_exit?(e), do: [e], else: [])

  @doc """
  The line candidates of a file for several lines at once: `%{line => [{event, call, locals}]}`
  (`locals`: the call's locals captured up to the event), read in one pass over the recording.
  """
  @spec line_candidates(ctx(), String.t(), [pos_integer()]) :: %{pos_integer() => [{Event.t(), Event.t(), map()}]}
  def line_candidates(ctx, path, lines) do
    modules = MapSet.new(Sources.modules_in(ctx.sources, path))
    wanted = MapSet.new(lines)

    if MapSet.size(modules) == 0 do
      %{}
    else
      {_, _, _, found} =
        [source: ctx.src]
        |> Query.stream()
        |> Enum.reduce({%{}, %{}, %{}, %{}}, fn e, {calls, locs, last, found} ->
          calls = if e.kind == :call and MapSet.member?(modules, e.module), do: Map.put(calls, e.id, e), else: calls
          call = Map.get(calls, e.call_id)

          # the locals of each call so far: what a condition at the hit sees
          locs =
            if call != nil and e.kind == :local and is_map(e.payload),
              do: Map.update(locs, call.id, e.payload, &Map.merge(&1, e.payload)),
              else: locs

          with %Event{} <- call,
               line when is_integer(line) <- Frames.line_of(e, call),
               false <- Map.get(last, call.id) == line do
            last = Map.put(last, call.id, line)
            hit = {e, call, Map.get(locs, call.id, %{})}
            found = if MapSet.member?(wanted, line), do: Map.update(found, line, [hit], &[hit | &1]), else: found
            {calls, locs, last, found}
          else
            _ -> {calls, locs, last, found}
          end
        end)

      Map.new(found, fn {line, hits} -> {line, Enum.reverse(hits)} end)
    end
  catch
    {:query_error, _} -> %{}
  end

  # keeps the candidates passing the condition, then the hit condition; collects condition errors
  defp filter(candidates, bp, counter, ctx) do
    {kept, errors, _n} =
      candidates
      |> Enum.zip(conditions(bp.condition, candidates, ctx))
      |> Enum.reduce({[], [], 0}, fn {{e, _call, _locals} = c, outcome}, {kept, errors, n} ->
        case outcome do
          {:ok, v, _} when v not in [nil, false] ->
            n = n + 1
            if counter.(n), do: {[c | kept], errors, n}, else: {kept, errors, n}

          {:ok, _, _} ->
            {kept, errors, n}

          {:error, msg} ->
            {kept, Enum.take(["event ##{e.id}: #{msg}" | errors], 5), n}
        end
      end)

    {Enum.reverse(kept), Enum.reverse(errors)}
  end

  # the condition at every candidate, evaluated in one go
  defp conditions(nil, candidates, _ctx), do: Enum.map(candidates, fn _ -> {:ok, true, ""} end)

  defp conditions(source, candidates, ctx),
    do: Eval.eval_many(source, Enum.map(candidates, fn {e, call, locals} -> vars(e, call, ctx, locals) end), timeout: ctx.timeout)

  @doc """
  What an expression sees at event `e` of the call `call`: its arguments and its
  locals (`locals` when the caller has them, else read from the recording).
  """
  @spec vars(Event.t(), Event.t() | nil, ctx(), map() | nil) :: [{atom(), term()}]
  def vars(e, call, ctx, locals \\ nil)
  def vars(_e, nil, _ctx, _locals), do: []
  def vars(_e, call, ctx, %{} = locals), do: Frames.bindings_of(ctx.sources, call, locals).vars

  def vars(e, call, ctx, nil) do
    frame = %{pid: e.pid, call: call, line: 0, path: nil, module: call.module, bound: e.id, at: e.id}
    Frames.bindings(ctx.src, ctx.sources, frame).vars
  end

  defp logs(hits, message, ctx) do
    for {e, call, locals} <- Enum.take(hits, 1_000) do
      text = Eval.interpolate(message, vars(e, call, ctx, locals), timeout: ctx.timeout)
      %{event: e, call: call, text: text}
    end
  end

  @doc "Parses a hit condition into a predicate on the hit count."
  @spec hit_counter(String.t() | nil) :: {:ok, (pos_integer() -> boolean())} | {:error, String.t()}
  def hit_counter(nil), do: {:ok, fn _ -> true end}

  def hit_counter(text) do
    case Regex.run(~r/^\s*(==|=|>=|>|<=|<|%)?\s*(\d+)\s*$/, text) do
      [_, op, n] ->
        n = String.to_integer(n)

        case op do
          o when o in ["", "==", "="] -> {:ok, &(&1 == n)}
          ">=" -> {:ok, &(&1 >= n)}
          ">" -> {:ok, &(&1 > n)}
          "<=" -> {:ok, &(&1 <= n)}
          "<" -> {:ok, &(&1 < n)}
          "%" when n > 0 -> {:ok, &(rem(&1, n) == 0)}
          "%" -> {:error, "% 0 is not a hit condition"}
        end

      _ ->
        {:error, "hit condition #{inspect(text)}: use N, == N, >= N, > N, <= N, < N or % N"}
    end
  end
end
