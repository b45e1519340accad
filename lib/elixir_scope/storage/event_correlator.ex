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
  `query_call_trees/3` over a store's events, which answers the nodes themselves, made from the
  shapes `native_shapes/1` gives: see `native_call_trees/2`).
  """

  import Bitwise, only: [<<<: 2]
  alias ElixirScope.{Event, NIF}

  # the shape of a node: the native tree queries copy this literal, so that their nodes share its
  # keys as the nodes built here do
  @node_shape %{event: nil, return: nil, exception: nil, tail_call: nil, status: :open, duration_ns: nil, events: [],
                children: []}

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

  @doc """
  Runs a native tree query (`NIF.query_call_trees/3`, `NIF.recording_query_call_trees/3`):
  `query` takes the query's last argument, `clock` gives wall times. Answers as
  `call_trees_by_pid/1`.

  The NIF makes the nodes themselves, copying two literal shapes (`%Event{}` and a node) so that
  every map shares its key tuple as the maps built in Elixir do. What it makes beyond the free
  space of this process's heap goes to heap fragments, which the collection that follows the
  call copies into a new heap: for a large answer (10,000 calls: 4.5 MB) that copy and the first
  touch of the fragments' fresh pages cost more than making the answer. So the query is first
  asked the size of its answer (`:words`, an upper bound; no event decoded) and, when that is
  larger than the heap, the heap is grown to hold it by a minor collection under a raised
  `min_heap_size` (restored after), which copies only the young live data, less than the answer.
  """
  @spec native_call_trees((term() -> term()), {integer(), integer()} | nil) :: %{pid() => [call_node()]}
  def native_call_trees(query, clock) do
    {words, events} = query.(:words)
    with_free_heap(words, fn -> query.(native_shapes(clock, events)) end) |> from_native()
  end

  @doc """
  The last argument of a native tree query that builds the trees: the clock, the shapes of an
  event and a node (literals, whose key tuples the maps made from them share), and how many
  events to expect (its arrays are made that large at once; more are taken all the same).
  """
  @spec native_shapes({integer(), integer()} | nil, non_neg_integer()) ::
          {{integer(), integer()} | nil, %Event{}, map(), non_neg_integer()}
  def native_shapes(clock, expected_events \\ 0), do: {clock, %Event{}, @node_shape, expected_events}

  # below this the answer fits the heaps processes have anyway; above the cap, the rest goes to
  # fragments (a heap is one block: the estimate, up to twice the answer, must not ask for GBs)
  @grow_from_words 50_000
  @grow_cap_words 1 <<< 24

  # Without it the collection after the call copies the young live data and the answer; with it
  # the minor collection before copies the young live data only (about what survived the last
  # collection: recent_size). Not in a process with a max_heap_size, which the estimate must not
  # trip.
  defp with_free_heap(words, fun) do
    [garbage_collection_info: gc, max_heap_size: %{size: max}] = Process.info(self(), [:garbage_collection_info, :max_heap_size])

    if words < @grow_from_words or max != 0 do
      fun.()
    else
      old = Process.flag(:min_heap_size, gc[:recent_size] + gc[:stack_size] + min(words, @grow_cap_words))

      try do
        :erlang.garbage_collect(self(), type: :minor)
        fun.()
      after
        Process.flag(:min_heap_size, old)
      end
    end
  end

  # {[{pid, roots}], truncated_count}: the truncation markers of truncated payloads expanded
  defp from_native({groups, 0}), do: Map.new(groups)
  defp from_native({groups, _truncated}), do: Map.new(groups, fn {pid, roots} -> {pid, map_events(roots, &Event.expand_truncated/1)} end)

  # the nodes with `fun` applied to each of their events, children first, without recursing on
  # the depth: a stack of {node, its later siblings, its earlier siblings done}
  defp map_events(roots, fun), do: map_level(roots, [], fun, [])

  defp map_level([node | todo], done, fun, stack), do: map_level(node.children, [], fun, [{node, todo, done} | stack])
  defp map_level([], done, _fun, []), do: Enum.reverse(done)

  defp map_level([], children, fun, [{node, todo, done} | stack]) do
    node = %{node | event: fun.(node.event), return: map_nil(node.return, fun), exception: map_nil(node.exception, fun),
                    tail_call: map_nil(node.tail_call, fun), events: Enum.map(node.events, fun),
                    children: Enum.reverse(children)}

    map_level(todo, [node | done], fun, stack)
  end

  defp map_nil(nil, _fun), do: nil
  defp map_nil(event, fun), do: fun.(event)

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
