defmodule ElixirScope.Test.EventBuilder do
  @moduledoc """
  Builds `%ElixirScope.Event{}` lists by hand, the way the native store would
  fill them (ids increasing, call ids = the call's id, a call's `return_id` set
  by its end, the ending copying the call's module/function/arity), for tests
  of the query layer that do not need a capture session.
  """
  alias ElixirScope.Event

  defstruct next: 1, events: %{}, t0: 1_000_000

  @type t :: %__MODULE__{}

  @doc "An empty builder."
  @spec new() :: t()
  def new, do: %__MODULE__{}

  @doc "The events built so far, in id order."
  @spec events(t()) :: [Event.t()]
  def events(b), do: b.events |> Map.values() |> Enum.sort_by(& &1.id)

  @doc "Adds an event; returns `{builder, id}`."
  @spec add(t(), pid(), atom(), keyword()) :: {t(), pos_integer()}
  def add(b, pid, kind, fields) do
    id = b.next
    ts = b.t0 + id * 1000
    e = struct(%Event{id: id, ts: ts, wall_time: 1_700_000_000_000_000 + div(ts - b.t0, 1000), pid: pid, kind: kind, line: 0,
                      call_id: 0, link: 0}, fields)
    e = if kind == :call, do: %{e | call_id: id, arity: e.arity || length(e.payload)}, else: e
    e = if kind in [:send, :receive, :spawn, :exit, :custom], do: %{e | correlation_id: nonzero(e.link)}, else: e
    b = %{b | next: id + 1, events: Map.put(b.events, id, e)}

    b =
      if kind in [:return, :exception, :tail_call] and Map.has_key?(b.events, e.call_id) do
        call = b.events[e.call_id]
        e = %{e | module: call.module, function: call.function, arity: call.arity}
        %{b | events: b.events |> Map.put(id, e) |> Map.put(call.id, %{call | link: id, return_id: id})}
      else
        b
      end

    {b, id}
  end

  defp nonzero(0), do: nil
  defp nonzero(n), do: n

  @doc "A call event."
  def call(b, pid, m, f, args), do: add(b, pid, :call, module: m, function: f, payload: args)
  @doc "A return event."
  def ret(b, pid, cid, value), do: add(b, pid, :return, call_id: cid, payload: value)
  @doc "A local snapshot."
  def local(b, pid, cid, vars), do: add(b, pid, :local, call_id: cid, payload: vars)
  @doc "A state event."
  def state(b, pid, cid, phase, st), do: add(b, pid, :state, call_id: cid, payload: {phase, st})
  @doc "A send event."
  def send_msg(b, pid, dest, msg, corr \\ 0), do: add(b, pid, :send, payload: {dest, msg}, link: corr)
  @doc "A receive event."
  def recv(b, pid, msg, corr \\ 0), do: add(b, pid, :receive, payload: msg, link: corr)
  @doc "A spawn event."
  def spawn_ev(b, pid, child, corr \\ 0), do: add(b, pid, :spawn, payload: child, link: corr)

  @doc "Adds and drops the id (for pipelines)."
  def add!(b, pid, kind, fields), do: b |> add(pid, kind, fields) |> elem(0)

  @doc "Some distinct pids (of short-lived processes)."
  def pids(n), do: for(_ <- 1..n, do: spawn(fn -> :ok end))
end
