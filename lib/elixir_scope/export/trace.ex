defmodule ElixirScope.Export.Trace do
  @moduledoc """
  The shape both exporters share: events turned into per-process call spans
  (built by `ElixirScope.Storage.EventCorrelator`) with start and end times that
  always nest — a call that ended by a tail call lasts until its tail-called
  continuation ends (the callee runs in its place), a call whose end was not
  recorded ends with its parent or at the last event of the trace (`status:
  :open`), a `GenServer.call` in tail position lasts until its reply (`reply`, see
  `ElixirScope.Query.Correlation.call_replies/1`) — plus the process-level events (messages, spawns, exits) and each
  span's exception.
  """

  alias ElixirScope.Event
  alias ElixirScope.Query.Correlation
  alias ElixirScope.Storage.EventCorrelator

  @type span :: %{
          call: Event.t(),
          parent: Event.t() | nil,
          depth: non_neg_integer(),
          root: pos_integer(),
          start: integer(),
          stop: integer(),
          status: atom(),
          ending: Event.t() | nil,
          reply: Event.t() | nil,
          events: [Event.t()]
        }

  @doc "Spans grouped by pid, in pid order of first appearance: `[{pid, [span]}]`."
  @spec spans([Event.t()]) :: [{pid() | term(), [span()]}]
  def spans(events) do
    last_ts = events |> Enum.map(& &1.ts) |> Enum.max(fn -> 0 end)
    order = events |> Enum.sort_by(& &1.id) |> Enum.map(& &1.pid) |> Enum.uniq()
    trees = EventCorrelator.call_trees_by_pid(events)
    replies = Correlation.call_replies(events)

    for pid <- order, Map.has_key?(trees, pid) do
      {pid, flatten(trees[pid], last_ts, replies)}
    end
  end

  # iterative walk keeping each node's parent and its parent's end
  defp flatten(roots, last_ts, replies) do
    walk(Enum.map(roots, &{&1, nil, last_ts, 0, &1.event.id}), [], replies)
  end

  defp walk([], acc, _replies), do: Enum.reverse(acc)

  defp walk([{node, parent, parent_stop, depth, root} | rest], acc, replies) do
    start = node.event.ts
    own = if node.duration_ns, do: start + node.duration_ns, else: parent_stop
    own = if node.status == :tail_call, do: max(own, continuation_end(node, parent_stop)), else: own
    # a GenServer.call in tail position lasts until its reply
    reply = node.tail_call && replies[node.tail_call.id]
    own = if reply, do: max(own, reply.ts), else: own
    stop = own |> min(parent_stop) |> max(start)

    span = %{
      call: node.event,
      parent: parent,
      depth: depth,
      root: root,
      start: start,
      stop: stop,
      status: node.status,
      ending: node.return || node.exception || node.tail_call,
      reply: reply,
      events: node.events
    }

    kids = Enum.map(node.children, &{&1, node.event, stop, depth + 1, root})
    walk(kids ++ rest, [span | acc], replies)
  end

  # where the calls a tail call handed over to end (their own ends, or the parent's when open)
  defp continuation_end(node, parent_stop) do
    Enum.reduce(node.children, 0, fn child, acc ->
      own = if child.duration_ns, do: child.event.ts + child.duration_ns, else: parent_stop
      own = if child.status == :tail_call, do: max(own, continuation_end(child, parent_stop)), else: own
      max(acc, own)
    end)
  end

  @doc "The process-level events (not part of a call): sends, receives, spawns, exits, custom."
  @spec process_events([Event.t()]) :: [Event.t()]
  def process_events(events), do: Enum.filter(events, &(&1.kind in [:send, :receive, :spawn, :exit, :custom]))
end
