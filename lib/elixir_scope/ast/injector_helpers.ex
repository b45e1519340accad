defmodule ElixirScope.AST.InjectorHelpers do
  @moduledoc """
  The shapes of the code that the transformer injects, in one place, and the helpers that
  injected code calls.

  `templates/1` returns Erlang abstract expressions (the forms the Elixir compiler hands to the
  Erlang compiler) with holes: variables named `ES@HOLE_<name>` that the C transformer
  (`c_src/forms_*.c`) fills, and annotations `:"$es_anno"` that it replaces by the line of the
  instrumented code. C builds only the structure around them: the `try` that records exceptions
  and re-raises them with the original stacktrace, and the `case` that makes tail calls after it.

  Every instrumented clause asks `ElixirScope.Capture.Switch` first (the `switch` template):
  with capture off it runs a copy of its original body, and nothing else is built or called. A
  body that is not copied (docs/ast_transformer.md, "Capture off") asks it in its entry, which
  then returns `nil`. Every report after the entry is guarded by the call id (`nil` when the
  event is not recorded). Injected variables are named `ES@…`, which no Elixir
  variable can be (Elixir's are `_name@N`).
  """

  alias ElixirScope.Capture.InstrumentationRuntime

  @type templates :: %{atom() => tuple()}
  @type state_kind :: :gen_server | :gen_stage | :gen_statem | :gen_event | :gen_event_call

  @doc """
  The templates of the injected calls, as Erlang abstract expressions. `runtime` is the module
  that receives them (`ElixirScope.Capture.InstrumentationRuntime` unless told otherwise).
  """
  @spec templates(module()) :: templates()
  def templates(runtime \\ InstrumentationRuntime) when is_atom(runtime) do
    rt = erl_atom(runtime)
    me = erl_atom(__MODULE__)
    switch = erl_atom(ElixirScope.Capture.Switch)
    r = reports(runtime)

    %{
      # Each instrumented clause asks the switch first, once: with capture off it runs `off` (a
      # copy of its body as written), so a call costs one remote call to a constant function.
      # `on` is the instrumented body (or, where the body is not copied, the entry alone).
      switch: """
      case #{switch}:'on?'(ES@HOLE_mod) of
        false -> ES@HOLE_off;
        _ -> ES@HOLE_on
      end
      """,
      # the entry report, once the switch said on: returns the call id, or nil when not recorded
      entry: r.entry,
      exit: guarded(r.exit),
      tail: guarded(r.tail),
      error: "#{me}:reraise(#{rt}, ES@HOLE_call, ES@HOLE_kind, ES@HOLE_reason, ES@HOLE_stack)",
      locals: guarded(r.locals),
      expr: guarded(r.expr),
      # An OTP callback's reports: its state and the message it takes right after its entry, its
      # state after and its return at its end, each pair in one call (the payloads built here)
      state_before: "{before, ES@HOLE_state}",
      callback_message: "{ES@HOLE_msg, \#{clause => ES@HOLE_clause, waited_us => nil}}",
      callback_pre: guarded(r.callback_pre),
      callback_exit: guarded(r.callback_exit),
      inject:
        guarded("#{me}:run_injection(#{rt}, ES@HOLE_call, ES@HOLE_code, ES@HOLE_vars, ES@HOLE_line)"),
      send: guarded(r.send),
      spawn:
        guarded("#{rt}:report_spawned(ES@HOLE_call, ES@HOLE_via, ES@HOLE_args, ES@HOLE_result, ES@HOLE_line)"),
      # an :erpc/:rpc call at its call site: the request (its id, or nil) before the call …
      rpc:
        "case ES@HOLE_call of nil -> nil; _ -> #{rt}:report_rpc(ES@HOLE_call, ES@HOLE_api, ES@HOLE_args, ES@HOLE_line) end",
      # … and around it, its outcome; an exception is raised again as it came (class, reason, stacktrace)
      rpc_call: """
      try ES@HOLE_rpc of
        ES@HOLE_value ->
          #{guarded("#{rt}:report_rpc_result(ES@HOLE_call, ES@HOLE_request, {return, ES@HOLE_value}, ES@HOLE_line)")},
          ES@HOLE_value
      catch
        ES@HOLE_class:ES@HOLE_reason:ES@HOLE_stack ->
          #{guarded("#{rt}:report_rpc_result(ES@HOLE_call, ES@HOLE_request, {raise, ES@HOLE_class, ES@HOLE_reason}, ES@HOLE_line)")},
          erlang:raise(ES@HOLE_class, ES@HOLE_reason, ES@HOLE_stack)
      end
      """,
      # when a receive starts waiting (only read while recording)
      receive_start: "case ES@HOLE_call of nil -> 0; _ -> erlang:monotonic_time() end",
      receive:
        guarded("#{rt}:report_receive(ES@HOLE_call, ES@HOLE_msg, ES@HOLE_clause, ES@HOLE_since, ES@HOLE_line)"),
      no_clause: "#{me}:no_clause(#{rt}, ES@HOLE_mod, ES@HOLE_fun, ES@HOLE_args, ES@HOLE_location)"
    }
    |> Map.new(fn {name, source} -> {name, parse(source)} end)
  end

  # The calls that record the frequent events. With the default runtime they go straight to the
  # NIF, no Elixir in between (the injected arguments are always valid, so it never raises); an OTP
  # callback's reports take two calls, not five (state before and message; state after and return).
  defp reports(InstrumentationRuntime) do
    {nif, me} = {erl_atom(ElixirScope.NIF), erl_atom(__MODULE__)}

    %{
      entry: "#{nif}:emit_entry(ES@HOLE_mod, ES@HOLE_fun, ES@HOLE_args, ES@HOLE_line)",
      exit: "#{nif}:emit_exit(ES@HOLE_call, ES@HOLE_value)",
      tail: "#{nif}:emit_value(tail_call, ES@HOLE_call, ES@HOLE_line, {ES@HOLE_mod, ES@HOLE_fun, ES@HOLE_args})",
      send: "#{nif}:emit(send, ES@HOLE_call, nil, ES@HOLE_kind, nil, ES@HOLE_line, nil, {ES@HOLE_dest, ES@HOLE_msg})",
      # the transformer always hands a map of the variables
      locals: "#{nif}:emit_value(local, ES@HOLE_call, ES@HOLE_line, ES@HOLE_vars)",
      expr: "#{nif}:emit_value(expr, ES@HOLE_call, ES@HOLE_line, {ES@HOLE_source, ES@HOLE_value})",
      callback_pre: "#{nif}:emit_pre(ES@HOLE_call, ES@HOLE_line, ES@HOLE_state, ES@HOLE_msg)",
      callback_exit:
        "#{nif}:emit_callback_exit(ES@HOLE_call, ES@HOLE_result, #{me}:state_after(ES@HOLE_kind, ES@HOLE_result, ES@HOLE_before), ES@HOLE_line)"
    }
  end

  defp reports(runtime) do
    {rt, me} = {erl_atom(runtime), erl_atom(__MODULE__)}

    %{
      entry: "#{rt}:report_function_entry(ES@HOLE_mod, ES@HOLE_fun, ES@HOLE_args, ES@HOLE_line)",
      exit: "#{rt}:report_function_exit(ES@HOLE_call, ES@HOLE_value)",
      tail: "#{rt}:report_tail_call(ES@HOLE_call, ES@HOLE_mod, ES@HOLE_fun, ES@HOLE_args, ES@HOLE_line)",
      send: "#{rt}:report_send(ES@HOLE_call, ES@HOLE_kind, ES@HOLE_dest, ES@HOLE_msg, ES@HOLE_line)",
      locals: "#{rt}:report_local_variable_snapshot(ES@HOLE_call, ES@HOLE_vars, ES@HOLE_line)",
      expr: "#{rt}:report_expression_value(ES@HOLE_call, ES@HOLE_source, ES@HOLE_value, ES@HOLE_line)",
      callback_pre: "#{me}:callback_pre(#{rt}, ES@HOLE_call, ES@HOLE_line, ES@HOLE_state, ES@HOLE_msg)",
      callback_exit:
        "#{me}:report_callback_state(#{rt}, ES@HOLE_call, ES@HOLE_kind, ES@HOLE_result, ES@HOLE_before, ES@HOLE_line), " <>
          "#{rt}:report_function_exit(ES@HOLE_call, ES@HOLE_result)"
    }
  end

  defp guarded(report), do: "case ES@HOLE_call of nil -> ok; _ -> #{report} end"

  defp erl_atom(atom), do: "'" <> Atom.to_string(atom) <> "'"

  defp parse(source) do
    {:ok, tokens, _} = :erl_scan.string(String.to_charlist(source <> "."))
    {:ok, [expr]} = :erl_parse.parse_exprs(tokens)
    :erl_parse.map_anno(fn _ -> :"$es_anno" end, expr)
  end

  @doc """
  Reports an exception leaving the call `call_id` and raises it again with its
  original class, reason and stacktrace (`:erlang.raise/3` keeps the stacktrace
  as given, so this helper's frame does not appear in it).
  """
  @spec reraise(module(), pos_integer() | nil, :error | :throw | :exit, term(), list()) ::
          no_return()
  def reraise(runtime, call_id, kind, reason, stacktrace) do
    runtime.report_error(call_id, kind, reason, stacktrace)
    :erlang.raise(kind, reason, stacktrace)
  end

  @doc """
  Records the state an OTP callback returned as an `:after` state event. `kind` says how to read
  the callback's result (`:gen_server`, `:gen_stage`, `:gen_statem`, `:gen_event`,
  `:gen_event_call`); `before` is the state the callback was given (for `:gen_statem`,
  `{state, data}`), needed where the result keeps it. Never raises.
  """
  @spec report_callback_state(module(), pos_integer() | nil, state_kind(), term(), term(), non_neg_integer()) ::
          :ok
  def report_callback_state(_runtime, nil, _kind, _result, _before, _line), do: :ok

  def report_callback_state(runtime, call_id, kind, result, before, line) do
    case callback_state(kind, result, before) do
      {:ok, state} -> runtime.report_state_change(call_id, :after, state, line)
      :none -> :ok
    end

    :ok
  end

  @doc """
  The payload of the `:after` state event of an OTP callback that returned `result`
  (`{:after, state}`), or `nil` when the result holds no state; see `report_callback_state/6`.
  """
  @spec state_after(state_kind(), term(), term()) :: {:after, term()} | nil
  def state_after(kind, result, before) do
    case callback_state(kind, result, before) do
      {:ok, state} -> {:after, state}
      :none -> nil
    end
  end

  @doc """
  With a runtime other than the NIF's: the reports an OTP callback makes right after its entry,
  given as the payloads the NIF's `emit_pre/4` takes (`{:before, state}` or `nil`,
  `{message, %{clause: kind}}` or `nil`).
  """
  @spec callback_pre(module(), pos_integer() | nil, non_neg_integer(), {:before, term()} | nil,
                     {term(), map()} | nil) :: :ok
  def callback_pre(runtime, call_id, line, state, message) do
    with {:before, s} <- state, do: runtime.report_state_change(call_id, :before, s, line)
    with {msg, %{clause: clause}} <- message, do: runtime.report_receive(call_id, msg, clause, nil, line)
    :ok
  end

  @doc "The new state in an OTP callback's return value, if it has one."
  @spec callback_state(state_kind(), term(), term()) :: {:ok, term()} | :none
  def callback_state(:gen_server, result, _before), do: gen_server_state(result)
  def callback_state(:gen_stage, result, _before), do: gen_stage_state(result)
  def callback_state(:gen_statem, result, before), do: gen_statem_state(result, before)
  def callback_state(:gen_event, result, _before), do: gen_event_state(result)
  def callback_state(:gen_event_call, result, _before), do: gen_event_call_state(result)
  def callback_state(_kind, _result, _before), do: :none

  defp gen_server_state({:ok, s}), do: {:ok, s}
  defp gen_server_state({:ok, s, _}), do: {:ok, s}
  defp gen_server_state({:reply, _, s}), do: {:ok, s}
  defp gen_server_state({:reply, _, s, _}), do: {:ok, s}
  defp gen_server_state({:noreply, s}), do: {:ok, s}
  defp gen_server_state({:noreply, s, _}), do: {:ok, s}
  defp gen_server_state({:stop, _, s}), do: {:ok, s}
  defp gen_server_state({:stop, _, _, s}), do: {:ok, s}
  defp gen_server_state(_), do: :none

  defp gen_stage_state({:noreply, _events, s}), do: {:ok, s}
  defp gen_stage_state({:noreply, _events, s, _}), do: {:ok, s}
  defp gen_stage_state({:reply, _, _events, s}), do: {:ok, s}
  defp gen_stage_state({:reply, _, _events, s, _}), do: {:ok, s}
  defp gen_stage_state({:stop, _, s}), do: {:ok, s}
  defp gen_stage_state({:stop, _, _, s}), do: {:ok, s}
  defp gen_stage_state({type, s}) when type in [:producer, :consumer, :producer_consumer], do: {:ok, s}

  defp gen_stage_state({type, s, _})
       when type in [:producer, :consumer, :producer_consumer],
       do: {:ok, s}

  defp gen_stage_state(_), do: :none

  # gen_statem's state is {state, data}: results that keep one take it from `before`
  defp gen_statem_state({:ok, state, data}, _), do: {:ok, {state, data}}
  defp gen_statem_state({:ok, state, data, _}, _), do: {:ok, {state, data}}
  defp gen_statem_state({:next_state, state, data}, _), do: {:ok, {state, data}}
  defp gen_statem_state({:next_state, state, data, _}, _), do: {:ok, {state, data}}
  defp gen_statem_state({kind, data}, {state, _}) when kind in [:keep_state, :repeat_state], do: {:ok, {state, data}}

  defp gen_statem_state({kind, data, _}, {state, _}) when kind in [:keep_state, :repeat_state],
    do: {:ok, {state, data}}

  defp gen_statem_state({:stop, _, data}, {state, _}), do: {:ok, {state, data}}
  defp gen_statem_state({:stop_and_reply, _, _, data}, {state, _}), do: {:ok, {state, data}}
  defp gen_statem_state(_, _), do: :none

  defp gen_event_state({:ok, s}), do: {:ok, s}
  defp gen_event_state({:ok, s, :hibernate}), do: {:ok, s}
  defp gen_event_state(_), do: :none

  defp gen_event_call_state({:ok, _reply, s}), do: {:ok, s}
  defp gen_event_call_state({:ok, _reply, s, :hibernate}), do: {:ok, s}
  defp gen_event_call_state(_), do: :none

  @doc """
  Called when no clause of an instrumented function matches its arguments: records the attempted
  call with its arguments and the `function_clause` error, then raises that error with the
  stacktrace the plain function would have had (its own frame, with the arguments and the
  location of the function's first clause, on top of the caller's frames: this helper is reached
  by a tail call, so the stack below it is the caller's).
  """
  @spec no_clause(module(), module(), atom(), list(), keyword()) :: no_return()
  def no_clause(runtime, module, fun, args, location) do
    [_self | callers] =
      try do
        :erlang.error(:elixir_scope_no_clause)
      catch
        :error, :elixir_scope_no_clause -> __STACKTRACE__
      end

    stacktrace = [{module, fun, args, location} | callers]
    call = runtime.report_function_entry(module, fun, args, Keyword.get(location, :line, 0))
    runtime.report_error(call, :error, :function_clause, stacktrace)
    :erlang.raise(:error, :function_clause, stacktrace)
  end

  @doc """
  Runs a custom injection (quoted code from a plan) with the variables it names bound to their
  values at that point. It runs apart from the instrumented code (it cannot rebind its
  variables or change its result); an exception it raises is recorded, never raised into the
  program.
  """
  @spec run_injection(module(), pos_integer() | nil, Macro.t(), map(), non_neg_integer()) :: :ok
  def run_injection(runtime, call_id, code, vars, line) do
    Code.eval_quoted(code, Map.to_list(vars))
    :ok
  catch
    kind, reason ->
      runtime.report_expression_value(
        call_id,
        "custom injection failed",
        Exception.format_banner(kind, reason),
        line
      )

      :ok
  end
end
