defmodule ElixirScope.Query.Rpc do
  @moduledoc """
  Pairs `:erpc`/`:rpc` calls with the work they started on other nodes, from what each side
  recorded (`ElixirScope.Query.Correlation` calls it; `ElixirScope.Cluster.Merge` orders by it).

  The caller's side is recorded at the call site by compiled code: a request (a `:send` with
  function `:rpc`, payload `{node or nodes, request}`) just before the call and, for a call, its
  outcome (a `:receive` with function `:rpc` whose `correlation_id` is the request) just after.
  On the other node the work runs in a process of its own (`erpc:execute_call/4`, spawned for
  the request); nothing is added to it. A request is paired with one process on each node it
  went to (this node excepted: there the work runs in the caller itself, or in a local process
  the lifecycle observer pairs as a spawn):

    * **by its parent**: the lifecycle observer saw the process alive and recorded its parent
      (`Process.info(pid, :parent)`, the caller's pid on the other node) and its initial call
      (`{:erpc, :execute_call, 4}`; see `origins/1`): the caller's earliest
      request to that node not yet paired, whose outcome (if recorded) comes after the process's
      first event, takes it;
    * **by its request**: for `{module, function, args}`, the earliest process on that node whose
      first event is the `:call` of `module.function(args)` (equal arguments) recorded after the
      request and before its outcome, not already paired, not known to be started otherwise (a
      `Node.spawn` child, say), and whose parent, if known, is the caller. Equal requests are taken first in, first out — as equal messages are.

  A fun (`:erpc.call(node, fun)`) is paired only by its parent. Links: `:rpc` from the request
  to the process's first event and, for a call, `:rpc_reply` from the end of that first call
  (its return or exception) to the caller's outcome.
  """

  alias ElixirScope.Event

  @doc "The key of a request that its work's first event shows: `{module, function, hash of args}`, nil for a fun."
  @spec key(term()) :: {module(), atom(), non_neg_integer()} | nil
  def key({m, f, a}) when is_atom(m) and is_atom(f) and is_list(a), do: {m, f, :erlang.phash2(a)}
  def key(_request), do: nil

  @doc "The key of a process's first event (`key/1` of the request it would answer), nil when it is not a call."
  @spec first_key(Event.t()) :: {module(), atom(), non_neg_integer()} | nil
  def first_key(%Event{kind: :call, module: m, function: f, payload: a}) when is_list(a), do: key({m, f, a})
  def first_key(%Event{}), do: nil

  @doc "Whether `e` is a request recorded at an `:erpc`/`:rpc` call site."
  @spec request?(Event.t()) :: boolean()
  def request?(%Event{kind: :send, function: :rpc, payload: {_dest, _req}}), do: true
  def request?(%Event{}), do: false

  @doc "Whether `e` is the outcome of an `:erpc`/`:rpc` call recorded at its call site."
  @spec outcome?(Event.t()) :: boolean()
  def outcome?(%Event{kind: :receive, function: :rpc}), do: true
  def outcome?(%Event{}), do: false

  @doc "The nodes a request went to."
  @spec nodes(Event.t()) :: [node()]
  def nodes(%Event{payload: {dest, _}}), do: ElixirScope.Capture.Rpc.nodes(dest)

  @doc """
  The links among `events` (in id order); `by_pid` gives each process's events in id order (the
  lifecycle observer's `:spawn` events left out), `by_id` every event by id.
  """
  @spec links([Event.t()], %{optional(pid()) => tuple()}, %{optional(pos_integer()) => Event.t()}) :: [map()]
  def links(events, by_pid, by_id) do
    case Enum.filter(events, &request?/1) do
      [] -> []
      requests -> pair(requests, events, by_pid, by_id)
    end
  end

  defp pair(requests, events, by_pid, by_id) do
    outcomes = for %Event{correlation_id: cid} = r <- events, outcome?(r), is_integer(cid), into: %{}, do: {cid, r}
    origins = origins(events)
    parents = for {pid, {:erpc, parent}} <- origins, into: %{}, do: {pid, parent}

    firsts =
      for {pid, t} <- by_pid, tuple_size(t) > 0, is_pid(pid), Map.get(origins, pid) != :other, do: {pid, elem(t, 0)}

    by_key =
      firsts
      |> Enum.filter(fn {_pid, f} -> first_key(f) end)
      |> Enum.group_by(fn {pid, f} -> {node(pid), first_key(f)} end)
      |> Map.new(fn {k, l} -> {k, Enum.sort_by(l, &elem(&1, 1).id)} end)

    by_parent =
      firsts
      |> Enum.filter(fn {pid, _} -> Map.has_key?(parents, pid) end)
      |> Enum.group_by(fn {pid, _} -> {parents[pid], node(pid)} end)
      |> Map.new(fn {k, l} -> {k, Enum.sort_by(l, &elem(&1, 1).id)} end)

    ctx = %{by_key: by_key, by_parent: by_parent, parents: parents, by_pid: by_pid, by_id: by_id}

    {links, _taken} =
      Enum.reduce(requests, {[], MapSet.new()}, fn req, {links, taken} ->
        outcome = outcomes[req.id]

        Enum.reduce(nodes(req) -- [node(req.pid)], {links, taken}, fn n, {links, taken} ->
          case find(req, n, outcome, taken, ctx) do
            nil -> {links, taken}
            {pid, first} -> {rpc_links(req, pid, first, outcome, ctx) ++ links, MapSet.put(taken, pid)}
          end
        end)
      end)

    links
  end

  @doc """
  How the processes among `events` were started, when known: `{:erpc, parent}` for a process
  `:erpc` started for a caller on another node (the lifecycle observer saw its parent and its
  initial call `{:erpc, _, _}`), `:other` for one spawned otherwise (a call-site `:spawn`, such as
  `Node.spawn`'s, or another parent or initial call). Only the others may be an rpc's work.
  """
  @spec origins([Event.t()]) :: %{optional(pid()) => {:erpc, pid()} | :other}
  def origins(events) do
    for %Event{kind: :spawn, function: f} = s <- events, f in [:observed, :call_site], reduce: %{} do
      acc ->
        case Event.spawn_info(s) do
          %{child: c, parent: p, initial_call: {:erpc, _, _}} when f == :observed and is_pid(p) and node(c) != node(p) ->
            Map.put_new(acc, c, {:erpc, p})

          %{child: c} ->
            Map.put(acc, c, :other)
        end
    end
  end

  @doc "Whether a request went to its caller's node alone (the work then runs in the caller: nothing to pair)."
  @spec local?(Event.t()) :: boolean()
  def local?(%Event{pid: pid} = e), do: request?(e) and Enum.all?(nodes(e), &(&1 == node(pid)))

  defp find(req, n, outcome, taken, ctx) do
    in_window? = fn {pid, f} ->
      not MapSet.member?(taken, pid) and f.id > req.id and (outcome == nil or f.id < outcome.id)
    end

    by_parent = Enum.find(Map.get(ctx.by_parent, {req.pid, n}, []), in_window?)

    by_request =
      case key(elem(req.payload, 1)) do
        nil ->
          nil

        k ->
          {_m, _f, args} = elem(req.payload, 1)

          Enum.find(Map.get(ctx.by_key, {n, k}, []), fn {pid, f} = c ->
            in_window?.(c) and f.payload == args and Map.get(ctx.parents, pid, req.pid) == req.pid
          end)
      end

    [by_parent, by_request] |> Enum.reject(&is_nil/1) |> Enum.min_by(&elem(&1, 1).id, fn -> nil end)
  end

  defp rpc_links(req, pid, first, outcome, ctx) do
    finish = outcome && work_end(pid, first, outcome, ctx)
    [%{type: :rpc, from: req, to: first}] ++ if(finish, do: [%{type: :rpc_reply, from: finish, to: outcome}], else: [])
  end

  # the end of the work: the return (or exception) of its first call, else its last event before the outcome
  defp work_end(pid, first, outcome, ctx) do
    case first.kind == :call && first.return_id && Map.get(ctx.by_id, first.return_id) do
      %Event{} = e ->
        e

      _ ->
        ctx.by_pid
        |> Map.get(pid, {})
        |> Tuple.to_list()
        |> Enum.take_while(&(&1.id < outcome.id))
        |> List.last()
    end
  end
end
