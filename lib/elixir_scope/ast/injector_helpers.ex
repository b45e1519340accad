defmodule ElixirScope.AST.InjectorHelpers do
  @moduledoc """
  The shapes of the code that the transformer injects, in one place.

  `templates/1` returns quoted calls to `ElixirScope.Capture.InstrumentationRuntime`
  with holes `{:"$es_hole", [], name}`; the C transformer (c_src/ast_transform.c)
  fills the holes and builds the structure around them (the `try` that records
  exceptions and re-raises them with the original stacktrace, and the `case` that
  performs tail calls after the frame's `try`).

  Holes: `:fun` (atom), `:args` (list AST), `:line` (integer), `:call` (the call id
  variable), `:value`, `:kind`, `:reason`, `:mod`, `:vars` (keyword list AST),
  `:source` (string), `:state`, `:result`, `:index` (integer), `:call` (a remote call AST).

  Injected variables are hygienic: their context is `var_context/0`, so user code
  cannot see them and they cannot clash with user variables.
  """

  alias ElixirScope.Capture.InstrumentationRuntime

  @var_context :elixir_scope

  @type templates :: %{atom() => Macro.t()}

  @doc "The context atom of every variable the transformer injects."
  @spec var_context() :: atom()
  def var_context, do: @var_context

  @doc "A template hole."
  @spec hole(atom()) :: {:"$es_hole", [], atom()}
  def hole(name) when is_atom(name), do: {:"$es_hole", [], name}

  @doc """
  The templates of the injected calls. `runtime` is the module that receives them
  (`ElixirScope.Capture.InstrumentationRuntime` unless told otherwise).
  """
  @spec templates(module()) :: templates()
  def templates(runtime \\ InstrumentationRuntime) when is_atom(runtime) do
    %{
      # The switch is asked inline, so with capture off a call costs one remote call to a
      # constant function: no argument list is built and the runtime is not entered.
      entry:
        quote do
          case ElixirScope.Capture.Switch.on?(__MODULE__) do
            true ->
              unquote(runtime).report_function_entry(
                __MODULE__,
                unquote(hole(:fun)),
                unquote(hole(:args)),
                unquote(hole(:line))
              )

            _ ->
              nil
          end
        end,
      exit:
        guarded(
          quote(
            do: unquote(runtime).report_function_exit(unquote(hole(:call)), unquote(hole(:value)))
          )
        ),
      tail:
        guarded(
          quote do
            unquote(runtime).report_tail_call(
              unquote(hole(:call)),
              unquote(hole(:mod)),
              unquote(hole(:fun)),
              unquote(hole(:args)),
              unquote(hole(:line))
            )
          end
        ),
      error:
        quote do
          unquote(__MODULE__).reraise(
            unquote(runtime),
            unquote(hole(:call)),
            unquote(hole(:kind)),
            unquote(hole(:reason)),
            __STACKTRACE__
          )
        end,
      locals:
        guarded(
          quote do
            unquote(runtime).report_local_variable_snapshot(
              unquote(hole(:call)),
              unquote(hole(:vars)),
              unquote(hole(:line))
            )
          end
        ),
      expr:
        guarded(
          quote do
            unquote(runtime).report_expression_value(
              unquote(hole(:call)),
              unquote(hole(:source)),
              unquote(hole(:value)),
              unquote(hole(:line))
            )
          end
        ),
      state_before:
        guarded(
          quote do
            unquote(runtime).report_state_change(
              unquote(hole(:call)),
              :before,
              unquote(hole(:state)),
              unquote(hole(:line))
            )
          end
        ),
      state_after:
        guarded(
          quote do
            unquote(__MODULE__).report_callback_state(
              unquote(runtime),
              unquote(hole(:call)),
              unquote(hole(:result)),
              unquote(hole(:line))
            )
          end
        ),
      module: quote(do: __MODULE__),
      tail_marker:
        quote(do: ElixirScope.AST.Tail.marker(unquote(hole(:index)), unquote(hole(:call)))),
      import_marker:
        quote(do: ElixirScope.AST.Tail.import_marker(unquote(hole(:index)), unquote(hole(:call)))),
      tail_require: quote(do: require(ElixirScope.AST.Tail))
    }
  end

  # Reports after the entry run only when the entry returned a call id: with capture off
  # nothing is built (no keyword list of locals, no argument list) and no call is made.
  defp guarded(report) do
    quote do
      case unquote(hole(:call)) do
        nil -> :ok
        _ -> unquote(report)
      end
    end
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
  Records the state a GenServer callback returned (`{:ok, s}`, `{:reply, r, s}`,
  `{:noreply, s}`, `{:stop, reason, s}`, ... with or without a timeout/continue) as
  an `:after` state event. Called by instrumented callbacks; never raises.
  """
  @spec report_callback_state(module(), pos_integer() | nil, term(), non_neg_integer()) :: :ok
  def report_callback_state(_runtime, nil, _result, _line), do: :ok

  def report_callback_state(runtime, call_id, result, line) do
    case callback_state(result) do
      {:ok, state} -> runtime.report_state_change(call_id, :after, state, line)
      :none -> :ok
    end

    :ok
  end

  @doc "The new state in a GenServer callback's return value, if it has one."
  @spec callback_state(term()) :: {:ok, term()} | :none
  def callback_state({:ok, s}), do: {:ok, s}
  def callback_state({:ok, s, _}), do: {:ok, s}
  def callback_state({:reply, _, s}), do: {:ok, s}
  def callback_state({:reply, _, s, _}), do: {:ok, s}
  def callback_state({:noreply, s}), do: {:ok, s}
  def callback_state({:noreply, s, _}), do: {:ok, s}
  def callback_state({:stop, _, s}), do: {:ok, s}
  def callback_state({:stop, _, _, s}), do: {:ok, s}
  def callback_state(_), do: :none
end
