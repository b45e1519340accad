defmodule ElixirScope.Cluster.Merge do
  @moduledoc """
  Merges the events of several nodes into one causal sequence with one id space.

  1. Each node's timestamps are read on the coordinator's clock (`ts - offset`, see
     `ElixirScope.Cluster.Clock`).
  2. Cross-node causality is found without any tag in the messages: a send whose destination
     lies on another node (a remote pid, `{name, node}`, a `{pid, tag}` reply address) is paired
     FIFO with the first receive of an equal message on that node (Erlang keeps each
     sender/receiver pair in order); for a `GenServer.call`, the server's return also precedes
     the caller's next event; an `:erpc`/`:rpc` call's work on another node comes after its
     request and before its outcome (paired as `ElixirScope.Query.Rpc` says); a process spawned
     from another node (`Node.spawn` at a call site) begins after what its parent did before
     the spawning call.
  3. The nodes' events are merged in time order, each node's own time order kept (its ids break
     ties: an event recorded after the fact, such as a process exit found by the lifecycle scan,
     has a later id than its time and takes its place by its time). When a receive
     would come before its send (the offsets disagree by more than their error), it is moved to
     just after the send and every later event of its node keeps that shift: a Lamport-style
     correction, listed in `corrections` (node, the first merged id it applies to, the shift).
  4. Ids are renumbered 1..N in that order; `call_id`, `link`, `correlation_id` and `return_id`
     follow (they name events of the same node), so `ElixirScope.Query.Correlation` pairs
     messages across nodes exactly as on one node.
  """

  alias ElixirScope.Event
  alias ElixirScope.Query.Rpc

  @typedoc """
  A Lamport-style shift: from merged id `from_id` on (on the node itself: from its event at
  `{ts, id}` = `local` on, in time order), `node`'s events are `shift_ns` later than its clock says.
  """
  @type correction :: %{node: node(), from_id: pos_integer(), local: {integer(), pos_integer()}, shift_ns: pos_integer()}

  @doc """
  Merges `%{node => events}` with `%{node => offset_ns}`: `{events, corrections}` (events in
  merged id order, timestamps on the coordinator's clock, corrections applied).
  """
  @spec merge(%{node() => [Event.t()]}, %{node() => integer()}) :: {[Event.t()], [correction()]}
  def merge(by_node, offsets) do
    {tagged, corrections} = order(by_node, offsets)
    {renumber(tagged), corrections}
  end

  @doc """
  Steps 1–3 without the renumbering: `{[{node, event}], corrections}` in merged order, each event
  keeping its node's own id (the references then name events of that node, as there). With
  `causal?` false, step 2 is left out: the order is the clocks' alone (for a part of the events,
  where pairing equal messages first-in first-out would pair the wrong ones).
  """
  @spec order(%{node() => [Event.t()]}, %{node() => integer()}, boolean()) :: {[{node(), Event.t()}], [correction()]}
  def order(by_node, offsets, causal? \\ true) do
    queues = Map.new(by_node, fn {n, evs} -> {n, evs |> in_time_order() |> List.to_tuple()} end)
    nodes = queues |> Map.keys() |> Enum.sort()
    # a node's events are read at `ts + shift`: the shift starts as minus its offset (onto this
    # node's clock) and grows with each causal correction
    base = Map.new(nodes, &{&1, -Map.get(offsets, &1, 0)})
    preds = if causal?, do: causal_preds(queues, base), else: %{}
    needed = preds |> Map.values() |> List.flatten() |> MapSet.new()
    state = %{pos: Map.new(nodes, &{&1, 0}), shift: base, base: base, done: %{}, out: [], corrections: [], next: 1}
    final = run(nodes, queues, preds, needed, state)
    {Enum.reverse(final.out), Enum.reverse(final.corrections)}
  end

  # a node's events mostly come in time order already (by id): sorting is for those recorded after the fact
  defp in_time_order(evs) do
    sorted? = evs |> Enum.chunk_every(2, 1, :discard) |> Enum.all?(fn [a, b] -> {a.ts, a.id} < {b.ts, b.id} end)
    if sorted?, do: evs, else: Enum.sort_by(evs, &{&1.ts, &1.id})
  end

  # -- causal predecessors: %{{node, local_id} => [{node, local_id}]} (the first must come after the others)

  defp causal_preds(queues, base) do
    sends = remote_sends(queues, base)
    nexts = Map.new(queues, fn {n, q} -> {n, next_of_pid(Tuple.to_list(q))} end)
    {preds, _} = Enum.reduce(Enum.sort(Map.keys(queues)), {%{}, sends}, &consume(&1, queues, nexts, &2))
    preds = spawn_preds(queues, preds)
    rpc_preds(queues, base, preds)
  end

  # A process spawned from another node (Node.spawn at a call site): its first event comes after
  # what its parent did before the spawning call (the call site's :spawn itself is recorded when
  # the call returned, which may be after the child began).
  defp spawn_preds(queues, preds) do
    causes =
      for {n, q} <- queues, reduce: %{} do
        acc ->
          {acc, _last} =
            Enum.reduce(Tuple.to_list(q), {acc, %{}}, fn
              %Event{kind: :spawn, function: :call_site, payload: {c, _}} = e, {acc, last} when is_pid(c) ->
                acc = if node(c) != n and is_map_key(last, e.pid), do: Map.put(acc, c, {n, last[e.pid]}), else: acc
                {acc, Map.put(last, e.pid, e.id)}

              e, {acc, last} ->
                {acc, Map.put(last, e.pid, e.id)}
            end)

          acc
      end

    if causes == %{},
      do: preds,
      else:
        for({d, q} <- queues, first <- first_events(Tuple.to_list(q)), cause = causes[first.pid], reduce: preds, do: (acc -> add_pred(acc, {d, first.id}, cause)))
  end

  defp add_pred(preds, event, pred), do: Map.update(preds, event, [pred], &[pred | &1])

  # An :erpc/:rpc call (ElixirScope.Query.Rpc): the work on the other node starts after the
  # request, and the caller's outcome comes after that work's first call ended. A process whose
  # parent the observer saw takes its parent's first request to its node not yet taken; another
  # one, the first request to its node of the call it starts with (equal arguments) — first in,
  # first out, as for messages.
  defp rpc_preds(queues, base, preds) do
    requests =
      for {n, q} <- queues, %Event{} = s <- Tuple.to_list(q), Rpc.request?(s), d <- Rpc.nodes(s), d != n, Map.has_key?(queues, d) do
        {d, {n, s}}
      end
      |> Enum.sort_by(fn {_d, {n, s}} -> s.ts + base[n] end)

    if requests == [], do: preds, else: pair_rpc(queues, requests, preds)
  end

  defp pair_rpc(queues, requests, preds) do
    by_parent = Enum.group_by(requests, fn {d, {_n, s}} -> {d, s.pid} end, &elem(&1, 1))
    by_key = requests |> Enum.filter(fn {_d, {_n, s}} -> Rpc.key(elem(s.payload, 1)) end) |> Enum.group_by(fn {d, {_n, s}} -> {d, Rpc.key(elem(s.payload, 1))} end, &elem(&1, 1))
    outcomes = for {n, q} <- queues, %Event{link: l} = r <- Tuple.to_list(q), Rpc.outcome?(r), l > 0, into: %{}, do: {{n, l}, r}

    origins = queues |> Map.values() |> Enum.flat_map(&Tuple.to_list/1) |> Rpc.origins()

    {preds, _used} =
      for {d, q} <- Enum.sort(queues), first <- first_events(Tuple.to_list(q)), reduce: {preds, MapSet.new()} do
        {preds, used} ->
          found =
            case origins[first.pid] do
              {:erpc, p} -> Enum.find(Map.get(by_parent, {d, p}, []), fn {n, s} -> not MapSet.member?(used, {d, n, s.id}) end)
              nil -> Enum.find(Map.get(by_key, {d, Rpc.first_key(first)}, []), &asked?(&1, d, first, used))
              :other -> nil
            end

          case found do
            nil ->
              {preds, used}

            {n, s} ->
              preds = add_pred(preds, {d, first.id}, {n, s.id})
              outcome = outcomes[{n, s.id}]
              preds = if outcome && first.kind == :call && first.link > 0, do: add_pred(preds, {n, outcome.id}, {d, first.link}), else: preds
              # a request is taken once per node it went to (a multicall's work on each)
              {preds, MapSet.put(used, {d, n, s.id})}
          end
      end

    preds
  end

  defp asked?({n, s}, d, first, used), do: not MapSet.member?(used, {d, n, s.id}) and elem(elem(s.payload, 1), 2) == first.payload

  # each process's first event (its own, not a :spawn recorded on its behalf), in the node's order
  defp first_events(list) do
    {firsts, _} =
      Enum.reduce(list, {[], MapSet.new()}, fn
        %Event{kind: :spawn, function: :observed}, acc -> acc
        e, {firsts, seen} -> if MapSet.member?(seen, e.pid), do: {firsts, seen}, else: {[e | firsts], MapSet.put(seen, e.pid)}
      end)

    Enum.reverse(firsts)
  end

  # sends to another node, indexed by {destination node, message hash}, in time order
  defp remote_sends(queues, base) do
    for {n, q} <- queues, %Event{kind: :send, payload: {dest, msg}} = s <- Tuple.to_list(q), not Rpc.request?(s),
        d = dest_node(dest, n), d != n do
      {{d, :erlang.phash2(unwrap(msg))}, {n, s}}
    end
    |> Enum.sort_by(fn {_k, {n, s}} -> s.ts + base[n] end)
    |> Enum.group_by(&elem(&1, 0), &elem(&1, 1))
  end

  defp consume(node, queues, nexts, {preds, sends}) do
    list = Tuple.to_list(Map.fetch!(queues, node))
    receive_calls = for %Event{kind: :receive, call_id: c} <- list, into: MapSet.new(), do: c
    by_id = Map.new(list, &{&1.id, &1})

    Enum.reduce(list, {preds, sends}, fn e, {preds, sends} ->
      with {:ok, msg} <- consumed(e, receive_calls),
           key = {node, :erlang.phash2(msg)},
           {:ok, {sn, s}, rest} <- take(Map.get(sends, key, []), msg) do
        preds = add_pred(preds, {node, e.id}, {sn, s.id})
        {reply_pred(preds, {sn, s}, node, e, by_id, nexts), Map.put(sends, key, rest)}
      else
        _ -> {preds, sends}
      end
    end)
  end

  # what a consumer took: a receive's message, or an OTP callback's request when no receive was recorded for it
  defp consumed(%Event{kind: :receive, function: :rpc}, _receive_calls), do: :error
  defp consumed(%Event{kind: :receive} = e, _receive_calls), do: {:ok, unwrap(Event.message(e))}

  defp consumed(%Event{kind: :call, function: f, payload: [msg | _], id: id}, receive_calls)
       when f in [:handle_call, :handle_cast, :handle_info] do
    if MapSet.member?(receive_calls, id), do: :error, else: {:ok, msg}
  end

  defp consumed(_e, _receive_calls), do: :error

  defp take(candidates, msg) do
    case Enum.split_while(candidates, fn {_n, s} -> unwrap(elem(s.payload, 1)) != msg end) do
      {_, []} -> :error
      {before, [found | rest]} -> {:ok, found, before ++ rest}
    end
  end

  # a GenServer.call: the caller's next event comes after the server's return of handle_call
  defp reply_pred(preds, {sn, %Event{function: :call} = s}, node, consumer, by_id, nexts) do
    call = if consumer.kind == :receive, do: Map.get(by_id, consumer.call_id), else: consumer

    with %Event{kind: :call, link: ret_id} when ret_id > 0 <- call,
         %Event{} <- Map.get(by_id, ret_id),
         %Event{} = after_send <- Map.get(nexts[sn], s.id) do
      add_pred(preds, {sn, after_send.id}, {node, ret_id})
    else
      _ -> preds
    end
  end

  defp reply_pred(preds, _send, _node, _consumer, _by_id, _nexts), do: preds

  # %{id of a GenServer.call send => the next event of the same process}
  defp next_of_pid(list) do
    {map, _pending} =
      Enum.reduce(list, {%{}, %{}}, fn e, {map, pending} ->
        {map, pending} =
          case Map.pop(pending, e.pid) do
            {nil, pending} -> {map, pending}
            {send_id, pending} -> {Map.put(map, send_id, e), pending}
          end

        if e.kind == :send and e.function == :call, do: {map, Map.put(pending, e.pid, e.id)}, else: {map, pending}
      end)

    map
  end

  defp dest_node(pid, _own) when is_pid(pid), do: node(pid)
  defp dest_node({pid, _tag}, _own) when is_pid(pid), do: node(pid)
  defp dest_node({name, n}, _own) when is_atom(name) and is_atom(n), do: n
  defp dest_node(_name, own), do: own

  defp unwrap({:"$gen_call", _from, req}), do: req
  defp unwrap({:"$gen_cast", req}), do: req
  defp unwrap(msg), do: msg

  # -- the merge: the earliest head whose predecessor is already out goes next

  defp run(nodes, queues, preds, needed, state) do
    heads =
      for n <- nodes, q = Map.fetch!(queues, n), i = Map.fetch!(state.pos, n), i < tuple_size(q) do
        e = elem(q, i)
        {n, e.ts + Map.fetch!(state.shift, n), pred_at(preds, {n, e.id}, state.done)}
      end

    case heads do
      [] ->
        state

      _ ->
        ready = Enum.reject(heads, fn {_, _, p} -> p == :waiting end)
        # a cycle can only come from pairing equal messages wrongly: then time alone decides
        {n, _at, _pred_at} = Enum.min_by(if(ready == [], do: heads, else: ready), &elem(&1, 1))
        # the others' heads (blocked or not) bound how far this node may run on alone
        limit = heads |> Enum.reject(&(elem(&1, 0) == n)) |> Enum.map(&elem(&1, 1)) |> Enum.min(fn -> :infinity end)
        state = emit(n, Map.fetch!(queues, n), preds, needed, limit, true, state)
        run(nodes, queues, preds, needed, state)
    end
  end

  # emits node n's events from its position while they come no later than `limit` and are not
  # waiting for a send (the first one is emitted whatever: the caller chose it)
  defp emit(n, q, preds, needed, limit, first?, state) do
    i = Map.fetch!(state.pos, n)

    with true <- i < tuple_size(q),
         e = elem(q, i),
         at = e.ts + Map.fetch!(state.shift, n),
         true <- first? or at <= limit,
         pred_at = pred_at(preds, {n, e.id}, state.done),
         true <- first? or pred_at != :waiting do
      at_ok = if is_integer(pred_at) and at <= pred_at, do: pred_at + 1, else: at
      state = if at_ok > at, do: correct(state, n, {e.ts, e.id}, at_ok - at), else: state
      done = if MapSet.member?(needed, {n, e.id}), do: Map.put(state.done, {n, e.id}, at_ok), else: state.done
      state = %{state | pos: Map.put(state.pos, n, i + 1), done: done, out: [{n, %{e | ts: max(at_ok, 0)}} | state.out], next: state.next + 1}
      emit(n, q, preds, needed, limit, false, state)
    else
      _ -> state
    end
  end

  # when the last of an event's causes came out (nil: it has none; :waiting: one is not out yet)
  defp pred_at(preds, event, done) do
    case Map.get(preds, event) do
      nil -> nil
      causes -> Enum.reduce_while(causes, nil, fn c, at -> if t = Map.get(done, c), do: {:cont, max(t, at || t)}, else: {:halt, :waiting} end)
    end
  end

  defp correct(state, n, local, by) do
    shift = state.shift[n] + by
    correction = %{node: n, from_id: state.next, local: local, shift_ns: shift - state.base[n]}
    %{state | shift: Map.put(state.shift, n, shift), corrections: [correction | state.corrections]}
  end

  # -- one id space: ids 1..N in merged order, references within a node follow

  defp renumber(tagged) do
    numbered = Enum.with_index(tagged, 1)

    ids =
      numbered
      |> Enum.group_by(fn {{n, _e}, _i} -> n end, fn {{_n, e}, i} -> {e.id, i} end)
      |> Map.new(fn {n, pairs} -> {n, Map.new(pairs)} end)

    Enum.map(numbered, fn {{n, e}, i} ->
      m = Map.fetch!(ids, n)
      %{e | id: i, call_id: ref(m, e.call_id), link: ref(m, e.link), correlation_id: nonzero(ref(m, e.correlation_id)),
            return_id: nonzero(ref(m, e.return_id))}
    end)
  end

  # an id of the same node, renumbered (0 when it names no event of the merge)
  defp ref(_m, nil), do: nil
  defp ref(_m, 0), do: 0
  defp ref(m, id), do: Map.get(m, id, 0)

  defp nonzero(0), do: nil
  defp nonzero(n), do: n
end
