defmodule ElixirScope.Capture.InstrumentationRuntime do
  @moduledoc """
  The functions that instrumented code calls (and that user code may call by
  hand). Each first asks `ElixirScope.Capture.Switch.on?/1`, so when ElixirScope
  is not running, or capture is off globally or for the module, a call costs a
  few nanoseconds and records nothing. None of them ever raises into user code:
  bad arguments are ignored (the NIF's `ArgumentError` is rescued).

  Events that belong to a function call carry the `call_id` returned by
  `report_function_entry/4`; `nil` (capture was off at entry) makes the others no-ops.
  """

  alias ElixirScope.Capture.{Rpc, Switch}
  alias ElixirScope.NIF

  @type call_id :: pos_integer() | nil

  @doc "Records a function entry and returns its call id (or `nil` when nothing was recorded)."
  @spec report_function_entry(module(), atom(), list(), non_neg_integer()) :: call_id()
  def report_function_entry(module, function, args, line \\ 0)

  def report_function_entry(module, function, args, line)
      when is_atom(module) and is_atom(function) and is_list(args) and is_integer(line) do
    if Switch.on?(module) do
      try do
        NIF.emit_entry(module, function, args, line)
      rescue
        _ -> nil
      end
    end
  end

  def report_function_entry(_module, _function, _args, _line), do: nil

  @doc "Records the return value of the call `call_id`."
  @spec report_function_exit(call_id(), term()) :: :ok
  def report_function_exit(nil, _value), do: :ok

  def report_function_exit(call_id, value) when is_integer(call_id) and call_id > 0 do
    NIF.emit_exit(call_id, value)
    :ok
  rescue
    _ -> :ok
  end

  def report_function_exit(_call_id, _value), do: :ok

  @doc "Records that the call `call_id` ends by a tail call to `module.function(args)`."
  @spec report_tail_call(call_id(), module(), atom(), list(), non_neg_integer()) :: :ok
  def report_tail_call(nil, _module, _function, _args, _line), do: :ok

  def report_tail_call(call_id, module, function, args, line) when is_list(args),
    do: emit(:tail_call, call_id, nil, nil, nil, line, nil, {module, function, args})

  def report_tail_call(_call_id, _module, _function, _args, _line), do: :ok

  @doc "Records an exception (`:error`, `:throw` or `:exit`) leaving the call `call_id`."
  @spec report_error(call_id(), :error | :throw | :exit, term(), list()) :: :ok
  def report_error(nil, _kind, _reason, _stacktrace), do: :ok

  def report_error(call_id, kind, reason, stacktrace),
    do: emit(:exception, call_id, nil, nil, nil, 0, nil, {kind, reason, stacktrace})

  @doc "Records the values of local variables (a map or keyword list of name => value)."
  @spec report_local_variable_snapshot(call_id(), map() | keyword(), non_neg_integer()) :: :ok
  def report_local_variable_snapshot(call_id, vars, line \\ 0)
  def report_local_variable_snapshot(nil, _vars, _line), do: :ok

  def report_local_variable_snapshot(call_id, vars, line) when is_list(vars) do
    if pairs?(vars), do: report_local_variable_snapshot(call_id, Map.new(vars), line), else: :ok
  end

  def report_local_variable_snapshot(call_id, vars, line) when is_map(vars),
    do: emit(:local, call_id, nil, nil, nil, line, nil, vars)

  def report_local_variable_snapshot(_call_id, _vars, _line), do: :ok

  @doc "Records the value of a traced expression (`source` is its code as text)."
  @spec report_expression_value(call_id(), String.t(), term(), non_neg_integer()) :: :ok
  def report_expression_value(call_id, source, value, line \\ 0)
  def report_expression_value(nil, _source, _value, _line), do: :ok

  def report_expression_value(call_id, source, value, line),
    do: emit(:expr, call_id, nil, nil, nil, line, nil, {source, value})

  @doc "Records a GenServer's state before or after a callback."
  @spec report_state_change(call_id(), :before | :after, term(), non_neg_integer()) :: :ok
  def report_state_change(call_id, phase, state, line \\ 0)
  def report_state_change(nil, _phase, _state, _line), do: :ok

  def report_state_change(call_id, phase, state, line) when phase in [:before, :after],
    do: emit(:state, call_id, nil, nil, nil, line, nil, {phase, state})

  def report_state_change(_call_id, _phase, _state, _line), do: :ok

  @doc """
  Records, for the call `call_id`, a message about to be sent to `dest` by instrumented code.
  `kind`: `:send`, `:send_after`, `:call`, `:cast` or `:reply` (what the sending function does).
  The payload is `{dest, message}`; the kind is the event's `function`.
  """
  @spec report_send(call_id(), atom(), term(), term(), non_neg_integer()) :: :ok
  def report_send(nil, _kind, _dest, _message, _line), do: :ok

  def report_send(call_id, kind, dest, message, line) when is_atom(kind) and is_integer(line),
    do: emit(:send, call_id, nil, kind, nil, line, nil, {dest, message})

  def report_send(_call_id, _kind, _dest, _message, _line), do: :ok

  @doc """
  Records, for the call `call_id`, the message a `receive` took: `clause` is the index of the
  clause that matched (`:after` when its timeout ran, the message then being `:"$es_after"`), or,
  for a message an OTP callback takes, the callback's kind (`:call`, `:cast`, `:info`); `since` is
  when the receive started waiting (`:erlang.monotonic_time/0`, or nil). The payload is
  `{message, %{clause: clause, waited_us: microseconds | nil}}`.
  """
  @spec report_receive(call_id(), term(), pos_integer() | atom(), integer() | nil, non_neg_integer()) :: :ok
  def report_receive(nil, _message, _clause, _since, _line), do: :ok

  def report_receive(call_id, message, clause, since, line) when is_integer(line) do
    waited =
      if is_integer(since) and since != 0,
        do: System.convert_time_unit(:erlang.monotonic_time() - since, :native, :microsecond),
        else: nil

    emit(:receive, call_id, nil, :receive, nil, line, nil, {message, %{clause: clause, waited_us: waited}})
  end

  def report_receive(_call_id, _message, _clause, _since, _line), do: :ok

  @doc """
  Records, for the call `call_id`, that a spawning call (`spawn*`, `Process.spawn`, `Node.spawn*`:
  `via` `:spawn` or `:node`; `Task` and `Task.Supervisor`: `:task`) made with `args` returned
  `result`. The child is the pid in the result (a pid, `{pid, ref}`, `%Task{}`, `{:ok, pid}`); a
  result without one records nothing. The event's function is `:call_site`, its payload `{child,
  %{parent: self(), initial_call: mfa | nil, via: via}}` (see `spawn_initial_call/1`).
  """
  @spec report_spawned(call_id(), :spawn | :node | :task, list(), term(), non_neg_integer()) :: :ok
  def report_spawned(nil, _via, _args, _result, _line), do: :ok

  def report_spawned(call_id, via, args, result, line) when is_atom(via) and is_list(args) and is_integer(line) do
    case spawned_pid(result) do
      nil ->
        :ok

      child ->
        info = %{parent: self(), initial_call: spawn_initial_call(args), via: via}
        emit(:spawn, call_id, nil, :call_site, nil, line, nil, {child, info})
    end
  end

  def report_spawned(_call_id, _via, _args, _result, _line), do: :ok

  defp spawned_pid(pid) when is_pid(pid), do: pid
  defp spawned_pid({pid, ref}) when is_pid(pid) and is_reference(ref), do: pid
  defp spawned_pid(%Task{pid: pid}) when is_pid(pid), do: pid
  defp spawned_pid({:ok, pid}) when is_pid(pid), do: pid
  defp spawned_pid(_), do: nil

  @doc """
  The initial call a spawning call's arguments give its child: the fun's `{module, name, arity}`
  (`:erlang.fun_info/2`), else `{module, function, length(args)}` of the first module, function and
  argument list among them, else nil.
  """
  @spec spawn_initial_call(list()) :: mfa() | nil
  def spawn_initial_call(args), do: fun_argument(args) || mfa_arguments(args)

  defp fun_argument([fun | _]) when is_function(fun),
    do: {fun_info(fun, :module), fun_info(fun, :name), fun_info(fun, :arity)}

  defp fun_argument([_ | rest]), do: fun_argument(rest)
  defp fun_argument(_), do: nil

  defp fun_info(fun, key), do: fun |> :erlang.fun_info(key) |> elem(1)

  defp mfa_arguments([m, f, a | _]) when is_atom(m) and is_atom(f) and length(a) >= 0, do: {m, f, length(a)}
  defp mfa_arguments([_ | rest]), do: mfa_arguments(rest)
  defp mfa_arguments(_), do: nil

  @doc """
  Records, for the call `call_id`, an `:erpc`/`:rpc` call about to be made (`api` is
  `{module, function}` of the call, `args` its arguments): a `:send` with function `:rpc` whose
  payload is `{dest, request}`, `dest` the node (or, for a multicall, the nodes) and `request`
  `{module, function, args}` or the fun (see `ElixirScope.Capture.Rpc.request/2`). Returns its id
  (what `report_rpc_result/4` is given), or nil.
  """
  @spec report_rpc(call_id(), {module(), atom()}, list(), non_neg_integer()) :: pos_integer() | nil
  def report_rpc(nil, _api, _args, _line), do: nil

  def report_rpc(call_id, api, args, line) when is_integer(line) do
    case Rpc.request(api, args) do
      {dest, request} -> NIF.emit(:send, call_id, nil, :rpc, nil, line, nil, {dest, request})
      nil -> nil
    end
  rescue
    _ -> nil
  end

  def report_rpc(_call_id, _api, _args, _line), do: nil

  @doc """
  Records how the `:erpc`/`:rpc` call whose request is the event `request_id` ended: a `:receive`
  with function `:rpc` whose payload is `{:return, value}` or `{:raise, class, reason}` and whose
  `correlation_id` is the request.
  """
  @spec report_rpc_result(call_id(), pos_integer() | nil, {:return, term()} | {:raise, atom(), term()}, non_neg_integer()) :: :ok
  def report_rpc_result(nil, _request_id, _outcome, _line), do: :ok

  def report_rpc_result(call_id, request_id, outcome, line) when is_integer(line),
    do: emit(:receive, call_id, nil, :rpc, nil, line, request_id, outcome)

  def report_rpc_result(_call_id, _request_id, _outcome, _line), do: :ok

  @doc "Records a message about to be sent to `dest`. Returns the event id (a correlation id) or nil."
  @spec report_message_send(term(), term(), non_neg_integer() | nil) :: pos_integer() | nil
  def report_message_send(dest, message, correlation_id \\ nil),
    do: emit_id(:send, :send, correlation_id, {dest, message})

  @doc "Records a message received by the calling process."
  @spec report_message_receive(term(), non_neg_integer() | nil) :: pos_integer() | nil
  def report_message_receive(message, correlation_id \\ nil),
    do: emit_id(:receive, :receive, correlation_id, message)

  @doc "Records that the calling process spawned `child`."
  @spec report_spawn(pid(), non_neg_integer() | nil) :: pos_integer() | nil
  def report_spawn(child, correlation_id \\ nil), do: emit_id(:spawn, :spawn, correlation_id, child)

  @doc "Records that the calling process is exiting with `reason`."
  @spec report_process_exit(term()) :: pos_integer() | nil
  def report_process_exit(reason), do: emit_id(:exit, :exit, nil, reason)

  @doc "Records a custom event `name` with `data`."
  @spec report_custom(atom(), term(), non_neg_integer() | nil) :: pos_integer() | nil
  def report_custom(name, data, correlation_id \\ nil)
  def report_custom(name, data, correlation_id) when is_atom(name), do: emit_id(:custom, name, correlation_id, {name, data})
  def report_custom(_name, _data, _correlation_id), do: nil

  @doc "Whether capture is on for `module` right now."
  @spec enabled?(module()) :: boolean()
  def enabled?(module), do: Switch.on?(module)

  # Process-level events are switched by the global switch (any module name that is not disabled).
  defp emit_id(kind, _name, correlation_id, payload) do
    if Switch.on?(nil) do
      try do
        NIF.emit(kind, nil, nil, nil, nil, 0, correlation_id, payload)
      rescue
        _ -> nil
      end
    end
  end

  # a proper list of {name, value} pairs (what Map.new/1 takes without raising)
  defp pairs?([{_, _} | rest]), do: pairs?(rest)
  defp pairs?([]), do: true
  defp pairs?(_), do: false

  defp emit(kind, call_id, module, function, arity, line, link, payload) do
    NIF.emit(kind, call_id, module, function, arity, line, link, payload)
    :ok
  rescue
    _ -> :ok
  end
end
