defmodule ElixirScope.Test.CallTreeModel do
  @moduledoc """
  The call-tree rules of `ElixirScope.Storage.EventCorrelator` as they were written in Elixir
  before the trees moved to C (c_src/call_tree.c): kept as the oracle the native trees are
  compared against, on generated event sequences (test/elixir_scope/storage/call_trees_test.exs).
  """

  alias ElixirScope.Event

  def call_trees_by_pid(events) do
    events
    |> Enum.reject(&observed_spawn?/1)
    |> by_id()
    |> Enum.group_by(& &1.pid)
    |> Map.new(fn {pid, evs} -> {pid, build(evs)} end)
  end

  # queries answer in id order: sorting is needed only when they were not
  defp by_id(events), do: if(ascending?(events, 0), do: events, else: Enum.sort_by(events, & &1.id))

  defp ascending?([%Event{id: id} | rest], prev) when id > prev, do: ascending?(rest, id)
  defp ascending?([], _prev), do: true
  defp ascending?(_events, _prev), do: false

  def call_trees(events) do
    events |> call_trees_by_pid() |> Map.values() |> Enum.concat() |> Enum.sort_by(& &1.event.id)
  end

  def open_calls(events) do
    {stack, _roots} =
      events |> Enum.reject(&observed_spawn?/1) |> Enum.reduce({[], []}, fn e, acc -> e |> settle_tail(acc) |> then(&step(e, &1)) end)

    stack |> Enum.reverse() |> Enum.map(& &1.event)
  end

  # A :spawn the session recorded on the parent's behalf: its id comes after the child's first
  # events, not where the parent was, so it is no part of the parent's calls.
  defp observed_spawn?(%Event{kind: :spawn, function: :observed}), do: true
  defp observed_spawn?(_e), do: false

  # -- building: a stack of open frames; each keeps its children reversed --

  defp build(events) do
    {stack, roots} = Enum.reduce(events, {[], []}, fn e, acc -> e |> settle_tail(acc) |> then(&step(e, &1)) end)
    # frames still open at the end of the recording
    close_all(stack, roots, :open, nil) |> Enum.reverse()
  end

  defp new_frame(call),
    do: %{event: call, return: nil, exception: nil, tail_call: nil, status: :open, duration_ns: nil, events: [], children: [], tail_pending: false}

  # The event right after a :tail_call tells whether the jump landed in instrumented
  # code: a :call of the target nests under the waiting frame; anything else means
  # the target is not instrumented, so the waiting frame (and those waiting on it) end there.
  defp settle_tail(e, {[%{tail_pending: true, tail_call: tail} = top | rest], roots}) do
    {target_mod, target_fun, _args} = tail_target(tail)

    if e.kind == :call and e.module == target_mod and e.function == target_fun do
      {[%{top | tail_pending: false} | rest], roots}
    else
      {rest, roots} = attach(finish(top, nil), rest, roots)
      close_tail_waiters(rest, roots, nil)
    end
  end

  defp settle_tail(_e, acc), do: acc

  defp tail_target(%Event{payload: {m, f, args}}) when is_atom(m) and is_atom(f), do: {m, f, args}
  defp tail_target(_), do: {nil, nil, nil}

  defp step(%Event{kind: :call} = e, {stack, roots}), do: {[new_frame(e) | stack], roots}

  defp step(%Event{kind: :tail_call, call_id: cid} = e, {stack, roots}) do
    {:ok, stack} = update_frame(stack, cid, &%{&1 | tail_call: e, status: :tail_call, tail_pending: true})
    {stack, roots}
  catch
    :not_found -> {stack, roots}
  end

  defp step(%Event{kind: kind, call_id: cid} = e, {stack, roots}) when kind in [:return, :exception] do
    if Enum.any?(stack, &(&1.event.id == cid)) do
      close_until(stack, roots, cid, e)
    else
      {stack, roots}
    end
  end

  defp step(%Event{call_id: cid} = e, {stack, roots}) when is_integer(cid) and cid > 0 do
    case update_frame(stack, cid, &%{&1 | events: [e | &1.events]}) do
      {:ok, stack} -> {stack, roots}
    end
  catch
    :not_found -> {stack, roots}
  end

  defp step(_other, acc), do: acc

  defp update_frame(stack, cid, fun) do
    {before, rest} = Enum.split_while(stack, &(&1.event.id != cid))

    case rest do
      [frame | tail] -> {:ok, before ++ [fun.(frame) | tail]}
      [] -> throw(:not_found)
    end
  end

  # Pops frames above the one ending (they ended without an event: their end was
  # not recorded), closes the target with `ending`, then closes the frames below
  # it that were waiting on a tail call, with the same ending.
  defp close_until([%{event: %{id: cid}} = frame | rest], roots, cid, ending) do
    {rest, roots} = attach(finish(frame, ending), rest, roots)
    close_tail_waiters(rest, roots, ending)
  end

  defp close_until([frame | rest], roots, cid, ending) do
    {rest, roots} = attach(finish(frame, nil), rest, roots)
    close_until(rest, roots, cid, ending)
  end

  defp close_tail_waiters([%{status: :tail_call} = frame | rest], roots, ending) do
    {rest, roots} = attach(finish(frame, ending), rest, roots)
    close_tail_waiters(rest, roots, ending)
  end

  defp close_tail_waiters(stack, roots, _ending), do: {stack, roots}

  defp close_all([], roots, _status, _ending), do: roots

  defp close_all([frame | rest], roots, status, ending) do
    {rest, roots} = attach(finish(frame, ending, status), rest, roots)
    close_all(rest, roots, status, ending)
  end

  defp finish(frame, ending, default_status \\ :open)

  defp finish(frame, ending, default_status) when is_map_key(frame, :tail_pending),
    do: finish(Map.delete(frame, :tail_pending), ending, default_status)

  defp finish(frame, nil, default_status) do
    status = if frame.status == :tail_call, do: :tail_call, else: default_status
    duration = if frame.tail_call, do: frame.tail_call.ts - frame.event.ts, else: nil
    %{frame | status: status, duration_ns: duration, events: Enum.reverse(frame.events), children: Enum.reverse(frame.children)}
  end

  defp finish(frame, %Event{kind: kind} = ending, _default) do
    {field, status} =
      case kind do
        :return -> {:return, :ok}
        :exception -> {:exception, :exception}
      end

    status = if frame.status == :tail_call, do: :tail_call, else: status

    frame
    |> Map.put(field, ending)
    |> Map.merge(%{
      status: status,
      duration_ns: ending.ts - frame.event.ts,
      events: Enum.reverse(frame.events),
      children: Enum.reverse(frame.children)
    })
  end

  defp attach(node, [parent | rest], roots), do: {[%{parent | children: [node | parent.children]} | rest], roots}
  defp attach(node, [], roots), do: {[], [node | roots]}
end
