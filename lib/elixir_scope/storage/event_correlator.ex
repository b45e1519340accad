defmodule ElixirScope.Storage.EventCorrelator do
  @moduledoc """
  Rebuilds calls from the ordered event stream: pairs each `:call` with its
  `:return`, `:exception` or `:tail_call` (by call id), computes durations, and
  nests calls into per-process trees. A frame that ended in a tail call stays
  open until the call it jumped to returns, so the tree shows the jump beneath
  it and both end together; when the jump went to code that is not
  instrumented (the next event is not that call), the frame closes at the jump. Events of a call (`:local`, `:expr`, `:state`) are
  attached to it. The `:spawn` events the session's lifecycle observer records on
  a parent's behalf are left out (they are placed by time, not in the parent's order).
  Works on any list of events; it never recurses on the depth of the trace.

  The store already links a call to its end (`Event.return_id`); this module
  is the process-level view built from it. The pairing and nesting run in C (c_src/call_tree.c:
  the `call_trees/2` NIF over a list of events, whose node ops this module assembles, or
  `query_call_trees/3` over a store's events, which answers the nodes themselves: see
  `ElixirScope.Storage.NativeCallTrees`).
  """

  alias ElixirScope.{Event, NIF}

  @type status :: :ok | :exception | :tail_call | :open
  @type call_node :: %{
          event: Event.t(),
          return: Event.t() | nil,
          exception: Event.t() | nil,
          tail_call: Event.t() | nil,
          status: status(),
          duration_ns: non_neg_integer() | nil,
          events: [Event.t()],
          children: [call_node()]
        }

  @doc "Call trees, one list of root nodes per process: `%{pid => [node]}`."
  @spec call_trees_by_pid([Event.t()]) :: %{pid() => [call_node()]}
  def call_trees_by_pid(events), do: events |> NIF.call_trees(:by_pid) |> assemble_by_pid(List.to_tuple(events))

  @doc "Call trees of all processes in the events, as one list of roots in time order."
  @spec call_trees([Event.t()]) :: [call_node()]
  def call_trees(events), do: events |> NIF.call_trees(:roots) |> assemble_roots(List.to_tuple(events))

  @doc """
  The trees of `{pid, ops}` groups, as `call_trees_by_pid/1` answers: the native builder
  (c_src/call_tree.c) gives, for each process, one op per call in the order the calls ended
  (children before parents): `{call, return, exception, tail_call, status, duration_end, [event],
  children_count}`, events named by their position in `events` (a tuple); the duration runs from
  the call to `duration_end` (its ending, else its tail call).
  """
  @spec assemble_by_pid([{pid(), [tuple()]}], tuple()) :: %{pid() => [call_node()]}
  def assemble_by_pid(groups, events), do: Map.new(groups, fn {pid, ops} -> {pid, assemble(ops, events, [])} end)

  @doc "The roots of every group, in time order, as `call_trees/1` answers (see `assemble_by_pid/2`)."
  @spec assemble_roots([{pid(), [tuple()]}], tuple()) :: [call_node()]
  def assemble_roots([{_pid, ops}], events), do: assemble(ops, events, [])

  def assemble_roots(groups, events),
    do: groups |> assemble_by_pid(events) |> Map.values() |> Enum.concat() |> Enum.sort_by(& &1.event.id)

  # a stack of the nodes built so far whose parent has not ended: a node takes its children off it
  defp assemble([{call, ret, exc, tail, status, duration_end, evs, n} | ops], events, stack) do
    {children, stack} = take(n, stack, [])
    event = elem(events, call)

    node = %{
      event: event,
      return: at(events, ret),
      exception: at(events, exc),
      tail_call: at(events, tail),
      status: status,
      duration_ns: duration_end && elem(events, duration_end).ts - event.ts,
      events: Enum.map(evs, &elem(events, &1)),
      children: children
    }

    assemble(ops, events, [node | stack])
  end

  defp assemble([], _events, roots), do: Enum.reverse(roots)

  defp take(0, stack, acc), do: {acc, stack}
  defp take(n, [node | stack], acc), do: take(n - 1, stack, [node | acc])

  defp at(_events, nil), do: nil
  defp at(events, i), do: elem(events, i)

  @doc "Each `:call` with its ending event (or nil) and duration, in call order."
  @spec pair_calls([Event.t()]) :: [{Event.t(), Event.t() | nil, non_neg_integer() | nil}]
  def pair_calls(events) do
    ends =
      for %Event{kind: k, call_id: cid} = e <- events, k in [:return, :exception, :tail_call], into: %{}, do: {cid, e}

    for %Event{kind: :call} = call <- Enum.sort_by(events, & &1.id) do
      ending = Map.get(ends, call.id)
      {call, ending, ending && ending.ts - call.ts}
    end
  end

  @doc """
  The calls still open after the last of `events` (one process's, in id order), outermost
  first: what the process's stack held at that moment, by the same rules as the trees (a frame
  that tail-called code that is not instrumented is closed at the jump).
  """
  @spec open_calls([Event.t()]) :: [Event.t()]
  def open_calls(events) do
    tuple = List.to_tuple(events)
    events |> NIF.call_trees(:open_calls) |> Enum.map(&elem(tuple, &1))
  end

  @doc "Flattens trees into `{depth, node}` pairs in display order (iteratively)."
  @spec flatten([call_node()]) :: [{non_neg_integer(), call_node()}]
  def flatten(roots), do: do_flatten(Enum.map(roots, &{0, &1}), [])

  defp do_flatten([], acc), do: Enum.reverse(acc)

  defp do_flatten([{depth, node} | rest], acc) do
    kids = Enum.map(node.children, &{depth + 1, &1})
    do_flatten(kids ++ rest, [{depth, node} | acc])
  end
end
