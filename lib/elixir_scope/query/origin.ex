defmodule ElixirScope.Query.Origin do
  @moduledoc """
  "Where did this value come from": the earliest recorded event whose payload
  holds a value, the calls open in its process at that moment, and the hops
  (messages, calls, spawns — see `ElixirScope.Query.Correlation`) that carried
  it to other processes. Reads any source through `ElixirScope.Query`.

  Seen from one event (`at:`), the origin is found by walking back: in that event's process, the
  earliest event up to it that holds the value, or that took it from another process (a message,
  a GenServer call or its reply, a Task's result, whose sending side holds the value) — whichever
  came first; a value that came from another process is followed into the sender, from the event
  that sent it. A value kept in a GenServer's state is followed the same way: the state holds it
  since the callback whose message brought it. The origin names the event that produced the value
  in the process where it first appeared, and `trail` the hops that brought it to `at`.
  """

  alias ElixirScope.{Event, Query}
  alias ElixirScope.Query.Correlation
  alias ElixirScope.Storage.EventCorrelator

  @doc """
  Where did `value` come from: the earliest event whose payload holds it
  (`first`), the calls that were open in its process at that moment (`calls`,
  outermost first), and the hops that carried it to other processes
  (`chain`: links, see `ElixirScope.Query.Correlation`), plus every holder.
  With `at: event_id`, `first` is the origin of the value as that event saw it, found by walking
  back through messages, calls, replies and GenServer state (see the module doc), and `trail` the
  links followed, in the order the value travelled.
  Options: `source:`, `at:`, and any filters to narrow the search.
  Returns `{:ok, map}` or `{:error, message}`.
  """
  @spec origin(term(), keyword()) :: {:ok, map()} | {:error, String.t()}
  def origin(value, opts \\ []) do
    {at, opts} = Keyword.pop(opts, :at)

    # one pass: the holders, and what the links between processes are made of
    {holders, carriers} =
      opts
      |> Query.stream()
      |> Enum.reduce({[], []}, fn e, {hs, cs} ->
        cond do
          holds?(e.payload, value) -> {[e | hs], cs}
          carrier?(e) -> {hs, [e | cs]}
          true -> {hs, cs}
        end
      end)

    holders = Enum.reverse(holders)

    case holders do
      [] ->
        {:error, "no recorded event holds #{inspect(value, limit: 10)}"}

      [earliest | _] ->
        source = Keyword.take(opts, [:source, :nodes])
        links = Correlation.links(holders ++ carriers)
        {first, trail} = if at, do: walk_back(at, holders, links, value, source), else: {earliest, []}

        {:ok,
         %{value: value, first: first, calls: open_calls(first, source), chain: chain(first, links), trail: trail, holders: holders}}
    end
  catch
    {:query_error, message} -> {:error, message}
  end

  # sends, receives, spawns, the OTP callbacks that take messages, and the tail calls that wait
  # for a GenServer.call's reply
  defp carrier?(%Event{kind: k}) when k in [:send, :receive, :spawn, :tail_call], do: true
  defp carrier?(%Event{kind: :call, function: f}), do: f in [:handle_call, :handle_cast, :handle_info]
  defp carrier?(_e), do: false

  @carriers [:message, :call, :call_from, :reply, :cast, :info, :task_reply, :explicit, :correlated, :rpc, :rpc_reply]

  # From the event `at`: in its process, the earliest holder up to it, or the earliest event that
  # took the value from another process; a value taken from another process is followed into it.
  defp walk_back(at, holders, links, value, source) do
    incoming =
      for l <- links, l.type in @carriers, l.from.pid != l.to.pid, holds?(l.from.payload, value), do: l

    case Query.event(at, source) do
      %Event{} = start -> walk(start, holders, incoming, [], MapSet.new())
      nil -> throw({:query_error, "no event ##{at}"})
    end
  end

  # a message an OTP callback took arrives with the callback's call (its arguments hold it)
  defp arrival(%{to: %Event{kind: :receive, call_id: cid} = r}) when is_integer(cid) and cid > 0 do
    case Event.receive_info(r) do
      %{clause: c} when is_atom(c) -> min(cid, r.id)
      _ -> r.id
    end
  end

  defp arrival(%{to: to}), do: to.id

  defp walk(%Event{pid: pid, id: id} = e, holders, incoming, trail, seen) do
    own = for h <- holders, h.pid == pid, h.id <= id, do: {h.id, {:holder, h}}
    taken = for l <- incoming, l.to.pid == pid, arrival(l) <= id, do: {arrival(l), {:link, l}}

    # a link wins a tie: the value arrived with the event that holds it
    case Enum.min_by(taken ++ own, &elem(&1, 0), fn -> nil end) do
      {_, {:link, l}} ->
        if MapSet.member?(seen, l.from.id),
          do: {l.to, trail},
          else: walk(l.from, holders, incoming, [l | trail], MapSet.put(seen, l.from.id))

      {_, {:holder, h}} ->
        {h, trail}

      nil ->
        {e, trail}
    end
  end


  @doc "Whether `term` holds `value` (equal to it, or anywhere inside it)."
  @spec holds?(term(), term()) :: boolean()
  def holds?(term, value) when term === value, do: true
  def holds?(term, value) when is_list(term), do: holds_list?(term, value)
  def holds?(term, value) when is_tuple(term), do: holds_list?(Tuple.to_list(term), value)
  def holds?(%_{} = term, value), do: holds?(Map.from_struct(term), value)
  def holds?(term, value) when is_map(term), do: Enum.any?(term, fn {k, v} -> holds?(k, value) or holds?(v, value) end)
  def holds?(term, value), do: term == value

  defp holds_list?([h | t], value), do: holds?(h, value) or holds_list?(t, value)
  defp holds_list?([], _value), do: false
  defp holds_list?(tail, value), do: holds?(tail, value)

  defp chain(first, links) do
    {hops, _} =
      Enum.reduce(links, {[], %{first.pid => first.id}}, fn l, {hops, reached} ->
        from_ok = Map.has_key?(reached, l.from.pid) and reached[l.from.pid] <= l.from.id

        if from_ok and not Map.has_key?(reached, l.to.pid) do
          {[l | hops], Map.put(reached, l.to.pid, l.to.id)}
        else
          {hops, reached}
        end
      end)

    Enum.reverse(hops)
  end

  defp open_calls(%Event{} = e, source) do
    case Query.events([pid: e.pid, before_id: e.id + 1] ++ source) do
      evs when is_list(evs) -> EventCorrelator.open_calls(evs)
      _ -> []
    end
  end
end
