defmodule ElixirScope.Test.MemoryRecorder do
  @moduledoc """
  A stand-in for the native store used only when the NIF cannot be loaded
  (the C event store not built yet): the same reporting functions as
  `ElixirScope.Capture.InstrumentationRuntime`, producing the same
  `%ElixirScope.Event{}` values the store gives back (ids increasing, call id =
  the call's id, `return_id` filled in, send/receive linked by correlation id).
  """

  alias ElixirScope.Event

  @table __MODULE__

  @doc "Starts (or clears) the recorder."
  @spec start() :: :ok
  def start do
    if :ets.whereis(@table) != :undefined, do: :ets.delete(@table)
    :ets.new(@table, [:named_table, :public, :ordered_set])
    :persistent_term.put({__MODULE__, :counter}, :atomics.new(1, signed: false))
    :ok
  end

  @doc "Every recorded event in id order."
  @spec events() :: [Event.t()]
  def events, do: @table |> :ets.tab2list() |> Enum.map(&elem(&1, 1))

  defp put(kind, fields) do
    id = :atomics.add_get(:persistent_term.get({__MODULE__, :counter}), 1, 1)
    ts = System.monotonic_time(:nanosecond)

    e =
      struct!(
        %Event{id: id, ts: ts, wall_time: System.os_time(:microsecond), pid: self(), kind: kind, line: 0, call_id: 0, link: 0},
        fields
      )

    e = if kind == :call, do: %{e | call_id: id}, else: e
    :ets.insert(@table, {id, e})
    id
  end

  defp close(cid, end_id) do
    case :ets.lookup(@table, cid) do
      [{_, call}] -> :ets.insert(@table, {cid, %{call | link: end_id, return_id: end_id}})
      _ -> :ok
    end
  end

  def report_function_entry(m, f, args, line \\ 0), do: put(:call, module: m, function: f, arity: length(args), line: line, payload: args)
  def report_function_exit(nil, _), do: :ok
  def report_function_exit(cid, v), do: close(cid, put(:return, call_id: cid, payload: v)) && :ok
  def report_error(cid, kind, reason, st), do: close(cid, put(:exception, call_id: cid, payload: {kind, reason, st})) && :ok
  def report_tail_call(cid, m, f, args, line), do: put(:tail_call, call_id: cid, line: line, payload: {m, f, args}) && :ok
  def report_local_variable_snapshot(cid, vars, line \\ 0), do: put(:local, call_id: cid, line: line, payload: Map.new(vars)) && :ok
  def report_expression_value(cid, src, v, line \\ 0), do: put(:expr, call_id: cid, line: line, payload: {src, v}) && :ok
  def report_state_change(cid, phase, st, line \\ 0), do: put(:state, call_id: cid, line: line, payload: {phase, st}) && :ok
  def report_message_send(dest, msg, corr \\ nil), do: put(:send, link: corr || 0, correlation_id: corr, payload: {dest, msg})
  def report_message_receive(msg, corr \\ nil), do: put(:receive, link: corr || 0, correlation_id: corr, payload: msg)
  def report_spawn(child, corr \\ nil), do: put(:spawn, link: corr || 0, correlation_id: corr, payload: child)
  def report_process_exit(reason), do: put(:exit, payload: reason)
  def report_custom(name, data, corr \\ nil), do: put(:custom, link: corr || 0, correlation_id: corr, payload: {name, data})
end
