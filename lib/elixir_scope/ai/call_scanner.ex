defmodule ElixirScope.AI.CallScanner do
  @moduledoc """
  Finds the calls in function bodies (local, remote, piped, captured) and
  classifies their side effects (messages, GenServer calls, spawning, ETS,
  file and network IO, logging, global state, OS processes, databases).
  """

  @doc "The module an alias (or atom) names, given the module's alias table."
  @spec resolve(Macro.t(), map) :: module | nil
  def resolve({:__aliases__, _, [:__MODULE__ | rest]}, aliases),
    do: Module.concat([aliases.__MODULE__ | rest])

  def resolve({:__aliases__, _, [first | rest] = parts}, aliases) when is_atom(first) do
    case Map.get(aliases, first) do
      nil -> Module.concat(parts)
      full -> Module.concat([full | rest])
    end
  end

  def resolve({:__MODULE__, _, _}, aliases), do: aliases.__MODULE__
  def resolve(atom, _aliases) when is_atom(atom), do: atom
  def resolve(_, _), do: nil

  @special [
    :__block__,
    :__aliases__,
    :fn,
    :->,
    :<-,
    :=,
    :|>,
    :.,
    :when,
    :case,
    :cond,
    :if,
    :unless,
    :with,
    :try,
    :receive,
    :for,
    :quote,
    :unquote,
    :&,
    :^,
    :@,
    :{},
    :%{},
    :%,
    :<<>>,
    :"::",
    :__MODULE__,
    :__ENV__,
    :__CALLER__,
    :__DIR__,
    :__STACKTRACE__,
    :super,
    :import,
    :require,
    :alias,
    :raise,
    :reraise,
    :throw
  ]

  # {local_calls [{name, arity}] restricted to `defined`, remote_calls [{mod, fun, arity}]}
  @doc "Local calls (to `defined` functions) and remote calls `{mod, fun, arity}` in `bodies`."
  @spec calls(Macro.t(), map, MapSet.t()) :: {[{atom, arity}], [{module, atom, arity}]}
  def calls(bodies, aliases, defined) do
    {_, acc} =
      Macro.prewalk(bodies, {[], []}, fn
        {:|>, _, [lhs, {{:., _, [mod, fun]}, _, args}]}, {l, r}
        when is_atom(fun) and is_list(args) ->
          {[lhs, args], {l, add_remote(r, mod, fun, length(args) + 1, aliases)}}

        {:|>, _, [lhs, {name, _, args}]}, {l, r}
        when is_atom(name) and is_list(args) and name not in @special ->
          {[lhs, args], {add_local(l, name, length(args) + 1, defined), r}}

        {:&, _, [{:/, _, [{{:., _, [mod, fun]}, _, []}, arity]}]} = node, {l, r}
        when is_atom(fun) and is_integer(arity) ->
          {node, {l, add_remote(r, mod, fun, arity, aliases)}}

        {:&, _, [{:/, _, [{name, _, ctx}, arity]}]} = node, {l, r}
        when is_atom(name) and is_atom(ctx) and is_integer(arity) ->
          {node, {add_local(l, name, arity, defined), r}}

        {{:., _, [mod, fun]}, _, args} = node, {l, r} when is_atom(fun) and is_list(args) ->
          {node, {l, add_remote(r, mod, fun, length(args), aliases)}}

        {name, _, args} = node, {l, r}
        when is_atom(name) and is_list(args) and name not in @special ->
          {node, {add_local(l, name, length(args), defined), r}}

        node, acc ->
          {node, acc}
      end)

    {locals, remotes} = acc
    {Enum.reverse(locals), Enum.reverse(remotes)}
  end

  defp add_local(l, name, arity, defined) do
    if MapSet.member?(defined, {name, arity}), do: [{name, arity} | l], else: l
  end

  defp add_remote(r, mod_ast, fun, arity, aliases) do
    case resolve(mod_ast, aliases) do
      nil -> r
      mod -> [{mod, fun, arity} | r]
    end
  end

  @kernel_effects %{
    send: :message,
    spawn: :spawn,
    spawn_link: :spawn,
    spawn_monitor: :spawn,
    exit: :exit,
    apply: :dynamic_call
  }

  @doc "The side-effect categories of `bodies` and their remote calls."
  @spec side_effects(Macro.t(), [{module, atom, arity}]) :: [atom]
  def side_effects(bodies, remotes) do
    {_, kernel} =
      Macro.prewalk(bodies, [], fn
        {name, _, args} = node, acc when is_atom(name) and is_list(args) ->
          case Map.get(@kernel_effects, name) do
            nil -> {node, acc}
            eff -> {node, [eff | acc]}
          end

        node, acc ->
          {node, acc}
      end)

    remote_effects = Enum.flat_map(remotes, fn {m, f, _a} -> remote_effect(m, f) end)
    (kernel ++ remote_effects) |> Enum.uniq() |> Enum.sort()
  end

  @doc "The side-effect categories of a call to `module.fun`."
  @spec remote_effect(module, atom) :: [atom]
  def remote_effect(m, f) do
    cond do
      m in [GenServer, :gen_server, :gen_statem, :gen] and
          f in [:call, :cast, :reply, :multi_call, :abcast] ->
        [:genserver_call]

      m in [GenServer, :gen_server, Supervisor, DynamicSupervisor, Task.Supervisor] and
          f in [:start, :start_link, :start_child] ->
        [:spawn]

      m in [Kernel, Process, :erlang] and f in [:send, :send_after, :send_nosuspend] ->
        [:message]

      m in [Process, :erlang] and f in [:spawn, :spawn_link, :spawn_monitor, :spawn_opt] ->
        [:spawn]

      m == Task ->
        [:spawn]

      m in [:ets, :dets, :mnesia] ->
        [:ets]

      m in [File, :file, :filelib, Path] and m != Path ->
        [:file_io]

      m in [IO, :io] ->
        [:io]

      m in [
        :gen_tcp,
        :gen_udp,
        :ssl,
        :httpc,
        :inets,
        :socket,
        HTTPoison,
        Req,
        Tesla,
        Finch,
        Mint.HTTP
      ] ->
        [:network]

      m in [Logger, :logger] ->
        [:logging]

      m in [Agent, :persistent_term] or (m == Application and f in [:put_env, :delete_env]) ->
        [:global_state]

      m in [System, Port, :os] and f in [:cmd, :open, :shell, :halt, :stop] ->
        [:os_process]

      is_atom(m) and String.ends_with?(Atom.to_string(m), ".Repo") ->
        [:database]

      true ->
        []
    end
  end
end
