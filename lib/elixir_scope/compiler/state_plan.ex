defmodule ElixirScope.Compiler.StatePlan do
  @moduledoc """
  Which functions of a module are OTP callbacks with state, and where their state is: the
  `:state` events (before and after each callback) come from this. Detected from the module's
  `@behaviour` (`use GenServer` sets it) or, for GenStage-shaped modules, from their callbacks;
  a plan's `genserver_state:` overrides it (`false`, `true` = GenServer, or a kind).

  A spec is `{kind, before}`: `kind` tells `ElixirScope.AST.InjectorHelpers.callback_state/3`
  how to read the callback's result; `before` says which arguments hold the state:
  `{:arg, i}`, `{:args, i, j}` (gen_statem's state and data), `{:name, j}` (a gen_statem state
  function: its name is the state) or `:none` (init).
  """

  @type kind :: :gen_server | :gen_stage | :gen_statem | :gen_event | :gen_event_call
  @type spec :: {kind(), :none | {:arg, pos_integer()} | {:args, pos_integer(), pos_integer()} | {:name, pos_integer()}}

  @gen_server %{
    {:init, 1} => :none,
    {:handle_call, 3} => {:arg, 3},
    {:handle_cast, 2} => {:arg, 2},
    {:handle_info, 2} => {:arg, 2},
    {:handle_continue, 2} => {:arg, 2},
    {:terminate, 2} => {:arg, 2},
    {:code_change, 3} => {:arg, 2}
  }

  @gen_stage %{
    {:init, 1} => :none,
    {:handle_demand, 2} => {:arg, 2},
    {:handle_events, 3} => {:arg, 3},
    {:handle_call, 3} => {:arg, 3},
    {:handle_cast, 2} => {:arg, 2},
    {:handle_info, 2} => {:arg, 2},
    {:handle_subscribe, 4} => {:arg, 4},
    {:handle_cancel, 3} => {:arg, 3},
    {:terminate, 2} => {:arg, 2}
  }

  @gen_event %{
    {:init, 1} => :none,
    {:handle_event, 2} => {:arg, 2},
    {:handle_info, 2} => {:arg, 2},
    {:terminate, 2} => {:arg, 2},
    {:code_change, 3} => {:arg, 2}
  }

  @gen_statem_other [init: 1, callback_mode: 0, terminate: 3, code_change: 4, format_status: 1, format_status: 2]

  @doc """
  `%{{name, arity} => spec}` for the callbacks of the module whose forms are given (for
  `:gen_statem`, every exported function of arity 3 is taken as a state function).
  """
  @spec for_module([tuple()], :auto | boolean() | kind()) :: %{{atom(), arity()} => spec()}
  def for_module(_forms, false), do: %{}

  def for_module(forms, override) do
    functions = for {:function, _, name, arity, _} <- forms, do: {name, arity}

    kind =
      case override do
        :auto -> detect(forms, functions)
        true -> :gen_server
        kind -> kind
      end

    exported = for {:attribute, _, :export, fs} <- forms, f <- fs, do: f
    specs(kind, if(kind == :gen_statem, do: exported, else: functions))
  end

  defp detect(forms, functions) do
    behaviours = for {:attribute, _, b, m} <- forms, b in [:behaviour, :behavior], do: m

    cond do
      GenStage in behaviours or {:handle_demand, 2} in functions or {:handle_events, 3} in functions ->
        :gen_stage

      :gen_statem in behaviours ->
        :gen_statem

      :gen_event in behaviours ->
        :gen_event

      GenServer in behaviours or :gen_server in behaviours ->
        :gen_server

      true ->
        nil
    end
  end

  defp specs(nil, _functions), do: %{}
  defp specs(:gen_server, functions), do: pick(@gen_server, functions, :gen_server)
  defp specs(:gen_stage, functions), do: pick(@gen_stage, functions, :gen_stage)

  defp specs(:gen_event, functions) do
    functions
    |> pick_map(@gen_event, :gen_event)
    |> then(fn m ->
      if {:handle_call, 2} in functions, do: Map.put(m, {:handle_call, 2}, {:gen_event_call, {:arg, 2}}), else: m
    end)
  end

  defp specs(:gen_statem, functions) do
    for {name, arity} = f <- functions, into: %{} do
      cond do
        f == {:init, 1} -> {f, {:gen_statem, :none}}
        f == {:handle_event, 4} -> {f, {:gen_statem, {:args, 3, 4}}}
        f == {:terminate, 3} -> {f, {:gen_statem, {:args, 2, 3}}}
        arity == 3 and f not in @gen_statem_other -> {f, {:gen_statem, {:name, 3}}}
        true -> {{name, arity}, nil}
      end
    end
    |> Map.reject(fn {_, v} -> v == nil end)
  end

  defp pick(table, functions, kind), do: pick_map(functions, table, kind)

  defp pick_map(functions, table, kind) do
    for f <- functions, Map.has_key?(table, f), into: %{}, do: {f, {kind, Map.fetch!(table, f)}}
  end
end
