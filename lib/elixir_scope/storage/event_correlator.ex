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
  is the process-level view built from it. The trees are built in C (c_src/call_tree.c, through
  the `call_trees/2` NIF) over the events' structs: a 10,000-call trace costs milliseconds.
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
  def call_trees_by_pid(events), do: NIF.call_trees(events, :by_pid)

  @doc "Call trees of all processes in the events, as one list of roots in time order."
  @spec call_trees([Event.t()]) :: [call_node()]
  def call_trees(events), do: NIF.call_trees(events, :roots)

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
  def open_calls(events), do: NIF.call_trees(events, :open_calls)

  @doc "Flattens trees into `{depth, node}` pairs in display order (iteratively)."
  @spec flatten([call_node()]) :: [{non_neg_integer(), call_node()}]
  def flatten(roots), do: do_flatten(Enum.map(roots, &{0, &1}), [])

  defp do_flatten([], acc), do: Enum.reverse(acc)

  defp do_flatten([{depth, node} | rest], acc) do
    kids = Enum.map(node.children, &{depth + 1, &1})
    do_flatten(kids ++ rest, [{depth, node} | acc])
  end
end
