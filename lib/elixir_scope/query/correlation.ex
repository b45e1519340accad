defmodule ElixirScope.Query.Correlation do
  @moduledoc """
  Links events across processes without the instrumentation ever changing a
  message: the pairing is rebuilt at query time from what each side recorded.

  Rules, applied to a list of events (any processes, any order):

    * **explicit** — an event whose `correlation_id` is the id of another event
      (e.g. `report_message_receive(msg, send_id)`, `report_spawn(child, id)`)
      is linked to it; events sharing a correlation id that names no event in
      the list are chained in id order (`:correlated`).
    * **message** — a `:receive` of `msg` in process R takes the earliest
      not-yet-taken `:send` whose message equals `msg`, which was recorded
      before it, and whose destination is R (a pid) or a name (registered
      name, `{name, node}`, `{:global, _}`, `{:via, …}`). Erlang keeps
      per-sender/receiver order, so FIFO over equal messages pairs them
      exactly; messages are compared by equality (hash first), never tagged.
    * **GenServer** — the `:call` event of `handle_call/3` in server S with args
      `[request, {caller, _tag}, state]` takes the earliest not-taken send from
      `caller` to S of `request` (or of the raw `{:"$gen_call", from, request}`);
      with no send recorded, the caller's innermost open call at that moment
      is linked (`:call_from`). Its `{:reply, reply, _}` return is linked to
      the caller's receive of the reply, or else to the caller's first event
      after it (`:reply`). `handle_cast/2` takes sends of `request` or
      `{:"$gen_cast", request}` to S (`:cast`); `handle_info/2` sends of the
      message (`:info`).
    * **spawn** — a `:spawn` of child C is linked to C's first event; when C's
      last `:return` value (a `Task`'s result) is later received by the parent
      as `value` or `{ref, value}`, that is linked too (`:task_reply`); a
      parent's receive of `{:DOWN, _, :process, C, _}` or `{:EXIT, C, _}` is
      linked from C's last event (`:exit`).
    * **rpc** — an `:erpc`/`:rpc` call recorded at its call site (a `:send` with function `:rpc`)
      is linked to the process that did its work on the other node (`:rpc`), and the end of that
      work to the call's outcome (`:rpc_reply`): see `ElixirScope.Query.Rpc`.
    * **restart** — processes observed by the session (`ElixirScope.Capture.Lifecycle`) that are
      the same child — the same registered name, or the same supervisor and child id — follow one
      another: each one's `:exit` is linked to the `:spawn` of the next one (recorded on the
      supervisor's behalf) (`:restart`), when the next one's first event comes after the last event
      of the one before.

  Compiled code records a receive as `{message, %{clause: c, waited_us: w}}` with `function:
  :receive`; an OTP callback's message as such a receive whose clause is `:call`, `:cast`,
  `:info` or `:event` (then the callback's `:call` event is not a consumer itself). A
  `GenServer.reply/2` send (destination `{pid, tag}`) is linked to the caller's next event
  (`:reply`). A send that nothing took is in `unpaired_sends/2`, never paired with another receive.

  A link is `%{type: type, from: Event.t(), to: Event.t()}`; links are returned
  in the order of their `to` event.
  """

  alias ElixirScope.Event
  alias ElixirScope.Query.Rpc

  @type link_type :: :explicit | :correlated | :message | :call | :call_from | :reply | :cast | :info | :spawn |
                     :task_reply | :exit | :restart | :rpc | :rpc_reply
  @type link :: %{type: link_type(), from: Event.t(), to: Event.t()}

  @doc "Every link between the given events."
  @spec links([Event.t()]) :: [link()]
  def links(events) do
    events = Enum.sort_by(events, & &1.id)
    ctx = context(events)
    {explicit, taken} = explicit_links(events, ctx)
    sends = send_index(events, taken)
    {msg_links, _sends} = consume(events, sends, taken, ctx)
    spawn_links = spawn_links(events, ctx)
    rpc_links = Rpc.links(events, ctx.by_pid, ctx.by_id)

    (explicit ++ msg_links ++ spawn_links ++ rpc_links ++ explicit_replies(events, ctx) ++ restart_links(events))
    |> Enum.uniq_by(fn l -> {l.from.id, l.to.id} end)
    |> Enum.sort_by(fn l -> {l.to.id, l.from.id} end)
  end

  @doc "The sends among `events` that no link takes (a dead or uninstrumented receiver)."
  @spec unpaired_sends([Event.t()], [link()]) :: [Event.t()]
  def unpaired_sends(events, links) do
    taken = MapSet.new(links, & &1.from.id)
    # an :erpc call to its own node runs in the caller: nothing there to take it
    Enum.filter(events, &(&1.kind == :send and not MapSet.member?(taken, &1.id) and not Rpc.local?(&1)))
  end

  # by_id: id => event; by_pid: pid => tuple of the process's events in id order (without the
  # :spawn events the session recorded on a parent's behalf: their ids come after the child's
  # first events, not where the parent was); callback_calls: call ids of OTP callbacks whose
  # message was recorded as a receive
  defp context(events) do
    %{
      by_id: Map.new(events, &{&1.id, &1}),
      by_pid: by_pid(events),
      callback_calls:
        for(%Event{kind: :receive, payload: {_, %{clause: c}}, call_id: id} <- events, is_atom(c), into: MapSet.new(), do: id)
    }
  end

  defp by_pid(events) do
    events
    |> Enum.reject(&match?(%Event{kind: :spawn, function: :observed}, &1))
    |> Enum.group_by(& &1.pid)
    |> Map.new(fn {p, evs} -> {p, List.to_tuple(evs)} end)
  end

  # index of the first event of `tuple` with id > `id` (binary search)
  defp first_after(tuple, id), do: bsearch(tuple, id, 0, tuple_size(tuple))

  defp bsearch(_t, _id, lo, hi) when lo >= hi, do: lo

  defp bsearch(t, id, lo, hi) do
    mid = div(lo + hi, 2)
    if elem(t, mid).id <= id, do: bsearch(t, id, mid + 1, hi), else: bsearch(t, id, lo, mid)
  end

  defp pid_events(ctx, pid), do: Map.get(ctx.by_pid, pid, {})

  # up to `max` events of `pid` after event id `id`
  defp events_after(ctx, pid, id, max) do
    t = pid_events(ctx, pid)
    i = first_after(t, id)
    for j <- i..min(i + max - 1, tuple_size(t) - 1)//1, do: elem(t, j)
  end

  @doc "Links whose ends are in different processes, `from` in `a` and `to` in `b` (each a pid or a list)."
  @spec between([link()], pid() | [pid()], pid() | [pid()]) :: [link()]
  def between(links, a, b) do
    a = List.wrap(a)
    b = List.wrap(b)
    Enum.filter(links, &(&1.from.pid in a and &1.to.pid in b and &1.from.pid != &1.to.pid))
  end

  # -- explicit correlation ids --

  defp explicit_links(events, %{by_id: by_id}) do

    {links, taken} =
      events
      # an rpc call's outcome names its request: the rpc rule pairs them with the remote work
      |> Enum.filter(&(&1.correlation_id && not Rpc.outcome?(&1)))
      |> Enum.group_by(& &1.correlation_id)
      |> Enum.flat_map(fn {cid, evs} ->
        case Map.fetch(by_id, cid) do
          {:ok, origin} -> for e <- evs, e.id != origin.id, do: %{type: explicit_type(origin, e), from: origin, to: e}
          :error -> evs |> Enum.chunk_every(2, 1, :discard) |> Enum.map(fn [a, b] -> %{type: :correlated, from: a, to: b} end)
        end
      end)
      |> Enum.reduce({[], MapSet.new()}, fn l, {ls, taken} ->
        taken = if l.type == :message, do: taken |> MapSet.put(l.from.id) |> MapSet.put(l.to.id), else: taken
        {[l | ls], taken}
      end)

    {links, taken}
  end

  defp explicit_type(%Event{kind: :send}, %Event{kind: :receive}), do: :message
  defp explicit_type(%Event{kind: :spawn}, _), do: :spawn
  defp explicit_type(_, _), do: :explicit

  # -- sends, indexed by {hash of the (unwrapped) message, destination pid or :named} --

  defp send_index(events, taken) do
    events
    |> Enum.filter(&(&1.kind == :send and not MapSet.member?(taken, &1.id) and match?({_, _}, &1.payload) and not Rpc.request?(&1)))
    |> Enum.reverse()
    |> Enum.reduce(%{}, fn %Event{payload: {dest, msg}} = s, acc ->
      Map.update(acc, {key(unwrap(msg)), dest_key(dest)}, [s], &[s | &1])
    end)
  end

  defp key(term), do: :erlang.phash2(term)

  defp dest_key(pid) when is_pid(pid), do: pid
  defp dest_key({pid, _tag}) when is_pid(pid), do: pid
  defp dest_key(_name), do: :named

  defp unwrap({:"$gen_call", _from, req}), do: req
  defp unwrap({:"$gen_cast", req}), do: req
  defp unwrap(msg), do: msg

  defp sent_message(%Event{payload: {_dest, msg}}), do: unwrap(msg)

  # -- consumers: receives and GenServer callbacks, in id order --

  defp consume(events, sends, taken, ctx) do
    Enum.reduce(events, {[], sends}, fn e, {links, sends} ->
      case consumer(e, taken, ctx) do
        nil ->
          {links, sends}

        {type, msg, sender} ->
          case take_send(sends, e, msg, sender) do
            {nil, sends} -> {fallback(type, e, sender, ctx) ++ reply(type, e, ctx) ++ links, sends}
            {s, sends} -> {[%{type: type, from: s, to: e} | reply(type, e, ctx)] ++ links, sends}
          end
      end
    end)
  end

  defp consumer(%Event{kind: :receive, id: id} = e, taken, ctx) do
    if MapSet.member?(taken, id) or Rpc.outcome?(e), do: nil, else: receive_consumer(e, ctx)
  end

  defp consumer(%Event{kind: :call, call_id: id} = e, _taken, ctx) do
    if MapSet.member?(ctx.callback_calls, id), do: nil, else: callback_consumer(e)
  end

  defp consumer(_e, _taken, _ctx), do: nil

  # an OTP callback's message recorded as a receive: the callback's own call event says who sent it
  defp receive_consumer(%Event{payload: {msg, %{clause: :call}}} = e, ctx) do
    case Map.get(ctx.by_id, e.call_id) do
      %Event{payload: [_req, {caller, _} | _]} when is_pid(caller) -> {:call, msg, caller}
      _ -> {:call, msg, nil}
    end
  end

  defp receive_consumer(%Event{payload: {msg, %{clause: :cast}}}, _ctx), do: {:cast, msg, nil}
  defp receive_consumer(%Event{payload: {msg, %{clause: :info}}}, _ctx), do: {:info, msg, nil}
  defp receive_consumer(e, _ctx), do: {:message, unwrap(Event.message(e)), nil}

  defp callback_consumer(%Event{function: :handle_call, arity: 3, payload: [req, {caller, _} | _]})
       when is_pid(caller),
       do: {:call, req, caller}

  defp callback_consumer(%Event{function: :handle_cast, arity: 2, payload: [req | _]}), do: {:cast, req, nil}
  defp callback_consumer(%Event{function: :handle_info, arity: 2, payload: [msg | _]}), do: {:info, msg, nil}
  defp callback_consumer(_e), do: nil

  # the earliest acceptable send to this process (by pid) or to a name
  defp take_send(sends, e, msg, sender) do
    h = key(msg)

    [{h, e.pid}, {h, :named}]
    |> Enum.map(fn k -> {k, find_send(Map.get(sends, k, []), e, msg, sender, [])} end)
    |> Enum.filter(fn {_k, found} -> found end)
    |> Enum.min_by(fn {_k, {s, _rest}} -> s.id end, fn -> nil end)
    |> case do
      nil -> {nil, sends}
      {k, {s, rest}} -> {s, Map.put(sends, k, rest)}
    end
  end

  # candidates are in id order: stop at the first one recorded after the consumer
  defp find_send([s | _], e, _msg, _sender, _before) when s.id >= e.id, do: nil

  defp find_send([s | rest], e, msg, sender, before) do
    if (sender == nil or s.pid == sender) and sent_message(s) == msg,
      do: {s, :lists.reverse(before, rest)},
      else: find_send(rest, e, msg, sender, [s | before])
  end

  defp find_send([], _e, _msg, _sender, _before), do: nil

  # handle_call without a recorded send: the caller's innermost open call at that moment
  defp fallback(:call, e, caller, ctx) do
    t = pid_events(ctx, caller)

    case innermost_open(t, first_after(t, e.id) - 1, 0) do
      nil -> []
      frame -> [%{type: :call_from, from: frame, to: e}]
    end
  end

  defp fallback(_type, _e, _sender, _ctx), do: []

  # walks back from index i: ends seen close calls seen further back
  defp innermost_open(_t, i, _closed) when i < 0, do: nil

  defp innermost_open(t, i, closed) do
    case elem(t, i) do
      %Event{kind: :call} = c when closed == 0 -> c
      %Event{kind: :call} -> innermost_open(t, i - 1, closed - 1)
      %Event{kind: k} when k in [:return, :exception] -> innermost_open(t, i - 1, closed + 1)
      _ -> innermost_open(t, i - 1, closed)
    end
  end

  # handle_call's {:reply, reply, _} → the caller's receive of it, or the caller's next event
  defp reply(:call, %Event{kind: :receive, call_id: id}, ctx) do
    case Map.get(ctx.by_id, id) do
      %Event{kind: :call} = call -> reply(:call, call, ctx)
      _ -> []
    end
  end

  defp reply(:call, %Event{payload: [_req, {caller, _} | _]} = call, ctx) do
    with %Event{} = ret <- call.return_id && Map.get(ctx.by_id, call.return_id),
         {:ok, reply} <- reply_value(ret) do
      case waiting_call(ctx, caller, ret.id) || reply_receiver(ctx, caller, ret.id, reply) do
        nil -> []
        to -> [%{type: :reply, from: ret, to: to}]
      end
    else
      _ -> []
    end
  end

  defp reply(_type, _e, _ctx), do: []

  # the caller's receive of the reply, or its first event after it
  defp reply_receiver(ctx, caller, id, reply) do
    case events_after(ctx, caller, id, 32) do
      [] ->
        nil

      after_events ->
        Enum.find(after_events, fn
          %Event{kind: :receive} = r -> Event.message(r) == reply or match?({_, ^reply}, Event.message(r))
          _ -> false
        end) || hd(after_events)
    end
  end

  # GenServer.reply(from, reply): the caller's waiting call, or its first event after it
  defp explicit_replies(events, ctx) do
    for %Event{kind: :send, function: :reply, payload: {{caller, _tag}, _reply}} = s <- events,
        is_pid(caller),
        to = waiting_call(ctx, caller, s.id) || List.first(events_after(ctx, caller, s.id, 1)),
        do: %{type: :reply, from: s, to: to}
  end

  @gen_calls [{GenServer, :call}, {:gen_server, :call}, {:gen_statem, :call}, {:gen_event, :call}, {:gen, :call}]

  # The caller's last event before `id`, when it is a tail call to GenServer.call (or its OTP
  # forms): the call waits there for its reply, in code that is not instrumented.
  defp waiting_call(ctx, caller, id) do
    t = pid_events(ctx, caller)

    case first_after(t, id) - 1 do
      i when i >= 0 ->
        case elem(t, i) do
          %Event{kind: :tail_call, payload: {m, f, _}} = tail -> if {m, f} in @gen_calls, do: tail
          _ -> nil
        end

      _ ->
        nil
    end
  end

  @doc """
  The reply a `GenServer.call` got, for each call whose client recorded it as a tail call
  (the call's frame ends where the VM jumps into `GenServer.call`): `%{tail_call_id => reply_event}`,
  where the reply event is the server's `handle_call/3` return `{:reply, value, _}` or its
  `GenServer.reply/2` send. The client's call lasts until that event and its result is
  `reply_value/1` of it. Derived from the events alone, without building every link.
  """
  @spec call_replies([Event.t()]) :: %{optional(pos_integer()) => Event.t()}
  def call_replies(events) do
    if Enum.any?(events, &gen_call_tail?/1) do
      events = Enum.sort_by(events, & &1.id)
      ctx = %{by_id: Map.new(events, &{&1.id, &1}), by_pid: by_pid(events)}

      for e <- events, {caller, reply} <- [reply_event(e, ctx)], tail = waiting_call(ctx, caller, reply.id), into: %{},
          do: {tail.id, reply}
    else
      %{}
    end
  end

  defp gen_call_tail?(%Event{kind: :tail_call, payload: {m, f, _}}), do: {m, f} in @gen_calls
  defp gen_call_tail?(_), do: false

  defp reply_event(%Event{kind: :send, function: :reply, payload: {{caller, _}, _}} = s, _ctx) when is_pid(caller), do: {caller, s}

  defp reply_event(%Event{kind: :call, function: :handle_call, arity: 3, payload: [_, {caller, _} | _]} = call, ctx)
       when is_pid(caller) do
    with %Event{} = ret <- call.return_id && Map.get(ctx.by_id, call.return_id),
         {:ok, _} <- reply_value(ret),
         do: {caller, ret},
         else: (_ -> nil)
  end

  defp reply_event(_e, _ctx), do: nil

  @doc "The value a reply event carries: `{:ok, value}` for a `{:reply, value, _}` return or a reply send, else `:error`."
  @spec reply_value(Event.t()) :: {:ok, term()} | :error
  def reply_value(%Event{kind: :return, payload: payload}) when is_tuple(payload) and tuple_size(payload) >= 2 and elem(payload, 0) == :reply,
    do: {:ok, elem(payload, 1)}

  def reply_value(%Event{kind: :send, function: :reply, payload: {_from, value}}), do: {:ok, value}
  def reply_value(%Event{}), do: :error

  # -- spawns, task replies, exits --

  defp spawn_links(events, ctx) do
    Enum.flat_map(events, fn
      %Event{kind: :spawn} = s ->
        child = (Event.spawn_info(s) || %{child: nil}).child
        child_events = ctx |> pid_events(child) |> Tuple.to_list()
        # the child may record its first event before the parent records the spawn (an observed
        # spawn always comes after it)
        first = List.first(child_events)
        parent_after = first && events_after(ctx, s.pid, min(s.id, first.id), 10_000)

        if first do
          [%{type: :spawn, from: s, to: first}] ++ task_reply(child_events, parent_after) ++ exit_link(child, child_events, parent_after)
        else
          []
        end

      _ ->
        []
    end)
  end

  defp task_reply(child_events, parent_after) do
    case child_events |> Enum.reverse() |> Enum.find(&(&1.kind == :return)) do
      nil ->
        []

      %Event{payload: value} = ret ->
        parent_after
        |> Enum.find(fn
          %Event{kind: :receive, id: id} = r -> id > ret.id and (Event.message(r) == value or match?({_ref, ^value}, Event.message(r)))
          _ -> false
        end)
        |> case do
          nil -> []
          rcv -> [%{type: :task_reply, from: ret, to: rcv}]
        end
    end
  end

  defp exit_link(child, child_events, parent_after) do
    last = List.last(child_events)

    parent_after
    |> Enum.find(fn
      %Event{kind: :receive} = r -> match?({:DOWN, _, :process, ^child, _}, Event.message(r)) or match?({:EXIT, ^child, _}, Event.message(r))
      _ -> false
    end)
    |> case do
      nil -> []
      rcv -> [%{type: :exit, from: last, to: rcv}]
    end
  end

  # -- restarts: successive processes of one child --

  defp restart_links(events) do
    exits = for %Event{kind: :exit} = e <- events, into: %{}, do: {e.pid, e}
    last_ts = for %Event{kind: k} = e <- events, k not in [:spawn, :exit], into: %{}, do: {e.pid, e.ts}

    events
    |> Enum.flat_map(fn
      %Event{kind: :spawn, function: :observed} = e -> [{child_key(Event.spawn_info(e)), e}]
      _ -> []
    end)
    |> Enum.reject(fn {key, _} -> key == nil end)
    |> Enum.group_by(&elem(&1, 0), &elem(&1, 1))
    |> Enum.flat_map(fn {_key, spawns} ->
      spawns
      |> Enum.sort_by(& &1.ts)
      |> Enum.chunk_every(2, 1, :discard)
      |> Enum.flat_map(fn [old, new] ->
        old_pid = Event.spawn_info(old).child

        case Map.get(exits, old_pid) do
          %Event{} = exit -> if Map.get(last_ts, old_pid, 0) < new.ts, do: [%{type: :restart, from: exit, to: new}], else: []
          _ -> []
        end
      end)
    end)
  end

  defp child_key(%{name: name}) when is_atom(name) and name != nil, do: {:name, name}
  defp child_key(%{parent: parent, child_id: id}) when is_pid(parent) and id != nil, do: {:child, parent, id}
  defp child_key(_info), do: nil
end
