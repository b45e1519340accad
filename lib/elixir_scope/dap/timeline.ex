defmodule ElixirScope.DAP.Timeline do
  @moduledoc """
  Positions in a recording for the debug adapter: the recorded processes
  (threads), the call stack of a process at an event, and the steps over
  recorded events (`next`, `stepIn`, `stepOut`, `stepBack`).

  The depth of an event is the number of recorded calls of its process open
  when it happens, its own call included: a `:call` is at the depth of the
  frame it opens, its `:return`/`:exception`/`:tail_call` at that same depth,
  any other event at the depth of the call it belongs to. `next` goes to the
  process's next event at the same or a shallower depth, `stepBack` to the
  previous such event.
  """

  alias ElixirScope.{Event, Query}
  alias ElixirScope.Query.Source

  @end_kinds [:return, :exception, :tail_call]
  @call_kinds [:call | @end_kinds]
  # frames kept in a stack; events between two stack checkpoints
  @max_depth 256
  @checkpoint 1_024
  @page 1_000

  @type src :: Source.t()
  @type thread :: %{pid: pid(), name: String.t(), first_id: pos_integer()}

  @doc "The first and last event ids (nil when there are no events)."
  @spec bounds(src()) :: {pos_integer(), pos_integer()} | nil
  def bounds(src) do
    case {Query.events(source: src, limit: 1), Query.events(source: src, limit: 1, order: :desc)} do
      {[first], [last]} -> {first.id, last.id}
      _ -> nil
    end
  end

  @doc """
  Every recorded process, in order of its first event: its registered name
  (or the first function it ran) and its pid.
  """
  @spec threads(src()) :: [thread()]
  def threads(src) do
    names = Source.names(src)

    {firsts, calls} =
      [source: src]
      |> Query.stream()
      |> Enum.reduce({%{}, %{}}, fn e, {firsts, calls} ->
        firsts = Map.put_new(firsts, e.pid, e.id)
        calls = if e.kind == :call, do: Map.put_new(calls, e.pid, e), else: calls
        {firsts, calls}
      end)

    firsts
    |> Enum.sort_by(fn {_pid, id} -> id end)
    |> Enum.map(fn {pid, id} ->
      label =
        case {names[pid], calls[pid]} do
          {name, _} when name != nil -> inspect(name)
          {nil, %Event{} = call} -> ElixirScope.Web.Render.mfa(call)
          _ -> "process"
        end

      %{pid: pid, name: "#{label} #{ElixirScope.Web.Render.pid(pid)}", first_id: id}
    end)
  catch
    {:query_error, _} -> []
  end

  @doc "The latest event of `pid` at or before event id `at` (nil if none)."
  @spec position(src(), pid(), non_neg_integer()) :: Event.t() | nil
  def position(src, pid, at) do
    case Query.events(source: src, pid: pid, before_id: at + 1, order: :desc, limit: 1) do
      [e] -> e
      _ -> nil
    end
  end

  @doc """
  The call stack of `pid` at event `at`, innermost first: the `:call` events
  still open. A call whose end is `at` itself is still on the stack (the
  cursor is on its return); when `at` belongs to a call that already ended
  (a GenServer's state after its callback), that call is on top.
  Returns `{frames, complete?}` (`false` when the scan stopped at its bounds).
  """
  @spec stack(src(), pid(), non_neg_integer()) :: {[Event.t()], boolean()}
  def stack(src, pid, at) do
    {frames, complete?} = open_calls(src, pid, at, at)

    case Query.event(at, source: src) do
      %Event{pid: ^pid, kind: k, call_id: cid} when k not in @call_kinds and cid > 0 ->
        if Enum.any?(frames, &(&1.id == cid)) do
          {frames, complete?}
        else
          case Query.event(cid, source: src) do
            %Event{kind: :call} = call -> {[call | frames], complete?}
            _ -> {frames, complete?}
          end
        end

      _ ->
        {frames, complete?}
    end
  end

  # the calls of pid open after event `at` (innermost first); an end event whose id is `keep` does not close its call
  defp open_calls(src, pid, at, keep) do
    {from, stack} = checkpoint(src, pid, at)

    ids =
      [source: src, pid: pid, after_id: from, before_id: at + 1]
      |> scan()
      |> Enum.reduce(stack, fn e, s ->
        if e.id == keep and e.kind in @end_kinds, do: s, else: step(s, e)
      end)

    calls = ids |> Enum.take(@max_depth) |> Enum.map(&Query.event(&1, source: src)) |> Enum.filter(&match?(%Event{}, &1))
    {calls, length(ids) <= @max_depth}
  end

  # the open call ids after event e, given those before it
  defp step(s, %Event{kind: :call, id: id}), do: [id | s]

  defp step(s, %Event{kind: k, call_id: c}) when k in @end_kinds do
    if c in s, do: s |> Enum.drop_while(&(&1 != c)) |> Enum.drop(1), else: s
  end

  defp step(s, _e), do: s

  # The latest checkpoint at or before `at`: {event id, open call ids after it}. A recording
  # never changes, so each process's checkpoints (every 1,024 of its events) are computed
  # once, in one pass, and kept in the calling process (a debug session); the live store
  # is read from its start.
  defp checkpoint(%ElixirScope.Recording{} = src, pid, at) do
    key = {__MODULE__, :checkpoints, src, pid}

    points =
      case Process.get(key) do
        nil ->
          points = build_checkpoints(src, pid)
          Process.put(key, points)
          points

        points ->
          points
      end

    points |> Enum.take_while(fn {id, _} -> id <= at end) |> List.last() || {0, []}
  end

  defp checkpoint(_live, _pid, _at), do: {0, []}

  defp build_checkpoints(src, pid) do
    {_, _, points} =
      [source: src, pid: pid]
      |> scan()
      |> Enum.reduce({[], 0, []}, fn e, {s, n, points} ->
        s = step(s, e)
        n = n + 1
        if rem(n, @checkpoint) == 0, do: {s, n, [{e.id, s} | points]}, else: {s, n, points}
      end)

    Enum.reverse(points)
  end

  # events in pages (newest first with order: :desc), as a lazy stream
  defp scan(filters) do
    cursor = if filters[:order] == :desc, do: :before_id, else: :after_id

    Stream.resource(
      fn -> filters end,
      fn
        nil ->
          {:halt, nil}

        fs ->
          case Query.events(fs ++ [limit: @page]) do
            evs when is_list(evs) and length(evs) == @page -> {evs, Keyword.put(fs, cursor, List.last(evs).id)}
            evs when is_list(evs) -> {evs, nil}
            {:error, _} -> {:halt, nil}
          end
      end,
      fn _ -> :ok end
    )
  end

  @doc "The depth of event `at` of `pid` (see the moduledoc)."
  @spec depth(src(), pid(), non_neg_integer()) :: non_neg_integer()
  def depth(src, pid, at), do: src |> stack(pid, at) |> elem(0) |> length()

  @doc "`stepIn`: the next event of `pid` after `at`."
  @spec step_in(src(), pid(), non_neg_integer()) :: {:ok, Event.t()} | :end
  def step_in(src, pid, at) do
    case Query.events(source: src, pid: pid, after_id: at, limit: 1) do
      [e] -> {:ok, e}
      _ -> :end
    end
  end

  @doc "`next`: the next event of `pid` after `at` at the same or a shallower depth."
  @spec next(src(), pid(), non_neg_integer()) :: {:ok, Event.t()} | :end
  def next(src, pid, 0), do: step_in(src, pid, 0)

  def next(src, pid, at) do
    d0 = depth(src, pid, at)
    forward(src, pid, at, &(&1 <= d0))
  end

  @doc """
  `stepOut`: the end (return, exception or tail call) of the frame `at` is in;
  from that end, the next event at a shallower depth.
  """
  @spec step_out(src(), pid(), non_neg_integer()) :: {:ok, Event.t()} | :end
  def step_out(src, pid, 0), do: step_in(src, pid, 0)

  def step_out(src, pid, at) do
    {frames, _} = stack(src, pid, at)

    case frames do
      [%Event{return_id: rid} | _] when is_integer(rid) and rid > at ->
        case Query.event(rid, source: src) do
          %Event{} = e -> {:ok, e}
          nil -> forward(src, pid, at, &(&1 < length(frames)))
        end

      _ ->
        forward(src, pid, at, &(&1 < length(frames)))
    end
  end

  @doc "`stepBack`: the previous event of `pid` before `at` at the same or a shallower depth."
  @spec step_back(src(), pid(), non_neg_integer()) :: {:ok, Event.t()} | :end
  def step_back(src, pid, at) do
    d0 = depth(src, pid, at)
    back(src, pid, at, d0)
  end

  # windows of events before `hi`, oldest window last: simulate each window forwards from the stack before it
  defp back(src, pid, hi, d0) do
    case Query.events(source: src, pid: pid, before_id: hi, order: :desc, limit: @page) do
      [] ->
        :end

      window when is_list(window) ->
        oldest = List.last(window)
        {start, _} = open_calls(src, pid, oldest.id - 1, nil)

        hit =
          window
          |> Enum.reverse()
          |> simulate(Enum.map(start, & &1.id))
          |> Enum.filter(fn {_e, d} -> d <= d0 end)
          |> List.last()

        case hit do
          {e, _} -> {:ok, e}
          nil -> back(src, pid, oldest.id, d0)
        end

      {:error, _} ->
        :end
    end
  end

  defp forward(src, pid, at, pred) do
    {start, _} = open_calls(src, pid, at, nil)

    [source: src, pid: pid, after_id: at]
    |> scan()
    |> simulate(Enum.map(start, & &1.id))
    |> Enum.find(fn {_e, d} -> pred.(d) end)
    |> case do
      {e, _} -> {:ok, e}
      nil -> :end
    end
  end

  # [{event, depth}] for events in id order, from the stack (call ids, innermost first) before the first
  defp simulate(events, stack) do
    Stream.transform(events, stack, fn e, s ->
      case e.kind do
        :call ->
          s = [e.id | s]
          {[{e, length(s)}], s}

        k when k in @end_kinds ->
          if e.call_id in s,
            do: {[{e, length(s)}], s |> Enum.drop_while(&(&1 != e.call_id)) |> Enum.drop(1)},
            else: {[{e, length(s) + 1}], s}

        _ ->
          if e.call_id == 0 or e.call_id in s, do: {[{e, length(s)}], s}, else: {[{e, length(s) + 1}], s}
      end
    end)
  end
end
