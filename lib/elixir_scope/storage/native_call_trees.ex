defmodule ElixirScope.Storage.NativeCallTrees do
  @moduledoc """
  Call trees answered by a native store (the live one, a loaded recording): `query_call_trees/3`
  and `recording_query_call_trees/3` (c_src/nif_query.c) make the node maps themselves, by the
  rules of `ElixirScope.Storage.EventCorrelator` (c_src/call_tree.c), copying two literal shapes
  (`%Event{}` and a node) so that every map shares its key tuple as maps built in Elixir do.

  What a NIF makes beyond the free space of the caller's heap goes to heap fragments, which the
  collection that follows the call copies into a new heap: for a large answer (10,000 calls:
  0.57 M words, 4.5 MB) that copy and the first touch of the fragments' fresh pages cost more
  than making the answer. So `run/2` first asks the query the size of its answer (`:words`: an
  upper bound and the event count; nothing decoded) and, for a large one, grows the heap to hold
  it by a minor collection under a raised `min_heap_size` (put back after): that collection
  copies the young live data only, which the one after the call would have copied too.
  """

  import Bitwise, only: [<<<: 2]
  alias ElixirScope.Event
  alias ElixirScope.Storage.EventCorrelator

  # the shape of a node (EventCorrelator.call_node/0)
  @node_shape %{event: nil, return: nil, exception: nil, tail_call: nil, status: :open, duration_ns: nil, events: [],
                children: []}

  @doc """
  Runs a native tree query: `query` takes the query's last argument (`&NIF.query_call_trees(s,
  filters, &1)`), `clock` gives wall times. Answers as `EventCorrelator.call_trees_by_pid/1`.
  """
  @spec run((term() -> term()), {integer(), integer()} | nil) :: %{pid() => [EventCorrelator.call_node()]}
  def run(query, clock) do
    {words, events} = query.(:words)
    with_free_heap(words, fn -> query.(shapes(clock, events)) end) |> from_native()
  end

  @doc """
  The last argument of a native tree query that builds the trees: the clock, the shapes of an
  event and a node (literals, whose key tuples the maps made from them share), and how many
  events to expect (its arrays are made that large at once; more are taken all the same).
  """
  @spec shapes({integer(), integer()} | nil, non_neg_integer()) ::
          {{integer(), integer()} | nil, %Event{}, map(), non_neg_integer()}
  def shapes(clock, expected_events \\ 0), do: {clock, %Event{}, @node_shape, expected_events}

  # below this the answer fits the heaps processes have anyway; above the cap, the rest goes to
  # fragments (a heap is one block: the estimate, which counts a binary's bytes as words, must not
  # reserve hundreds of MB)
  @grow_from_words 50_000
  @grow_cap_words 1 <<< 22

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
end
