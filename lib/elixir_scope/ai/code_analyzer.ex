defmodule ElixirScope.AI.CodeAnalyzer do
  @moduledoc """
  Static analysis of Elixir modules, deterministic and offline: functions
  (name, arity, kind, line span, clauses), complexity, recursion, side
  effects, OTP role, the call graph inside the module and calls out of it.

  Works on source text (a project that is not compiled yet), on quoted AST,
  and on loaded modules (through their source file, or their debug info).

  An analysis is a map:

      %{module: atom, file: String.t() | nil, line: pos_integer | nil,
        otp_role: :genserver | :supervisor | :application | :task | :agent | :gen_statem | :plain,
        behaviours: [atom], functions: [function_info],
        call_graph: %{{atom, arity} => [{atom, arity}]},
        external_calls: [{module, atom, arity}], side_effects: [atom],
        complexity: %{cyclomatic: n, nesting_depth: n, size: n}}

  and each `function_info` is

      %{name: atom, arity: n, arities: [n], kind: :def | :defp | :defmacro | :defmacrop | :defdelegate,
        public?: boolean, line: n, end_line: n, clauses: n,
        complexity: %{cyclomatic: n, nesting_depth: n, size: n},
        recursive?: boolean, side_effects: [atom], local_calls: [{atom, n}],
        remote_calls: [{module, atom, n}], callback?: boolean,
        arithmetic: [atom], state: :updates | :reads | nil}

  `arithmetic` lists the arithmetic it does (`ElixirScope.AI.ComplexityAnalyzer.arithmetic/1`);
  `state` says whether a function of a GenServer module takes the state (a parameter named
  `state` or `*_state`) and whether it builds a new one from it (`%{state | …}`).
  """

  alias ElixirScope.AI.{CallScanner, ComplexityAnalyzer}

  @type analysis :: map
  @defs [:def, :defp, :defmacro, :defmacrop]

  @genserver_callbacks [
    init: 1,
    handle_call: 3,
    handle_cast: 2,
    handle_info: 2,
    handle_continue: 2,
    terminate: 2,
    code_change: 3,
    format_status: 1,
    format_status: 2
  ]

  @doc "Callbacks of the OTP behaviours recognised as such ({name, arity})."
  @spec genserver_callbacks() :: [{atom, non_neg_integer}]
  def genserver_callbacks, do: @genserver_callbacks

  @doc """
  Analyses one module given as a loaded module name, a source string, or
  quoted AST (a `defmodule`). For a source with several modules the first
  top-level one is analysed (see `analyze_source/2` for all of them).
  """
  @spec analyze_module(module | String.t() | Macro.t(), keyword) ::
          {:ok, analysis} | {:error, String.t()}
  def analyze_module(input, opts \\ [])

  def analyze_module(source, opts) when is_binary(source) do
    with {:ok, [first | _]} <- analyze_source(source, opts) do
      {:ok, first}
    else
      {:ok, []} -> {:error, "no defmodule found in the source"}
      err -> err
    end
  end

  def analyze_module(module, opts) when is_atom(module) do
    cond do
      not Code.ensure_loaded?(module) ->
        {:error, "module #{inspect(module)} is not loaded and no source was given"}

      (src = source_file(module)) && File.regular?(src) ->
        with {:ok, analyses} <- analyze_file(src, opts) do
          case Enum.find(analyses, &(&1.module == module)) do
            nil -> analyze_debug_info(module)
            a -> {:ok, a}
          end
        end

      true ->
        analyze_debug_info(module)
    end
  end

  def analyze_module(ast, opts) do
    case modules_in(ast, [], Keyword.get(opts, :file)) do
      [first | _] -> {:ok, first}
      [] -> {:error, "no defmodule found in the AST"}
    end
  end

  @doc "Analyses every module (nested ones included, by full name) in a source string."
  @spec analyze_source(String.t(), keyword) :: {:ok, [analysis]} | {:error, String.t()}
  def analyze_source(source, opts \\ []) do
    file = Keyword.get(opts, :file, "nofile")

    case Code.string_to_quoted(source, file: file, columns: false, token_metadata: true) do
      {:ok, ast} ->
        {:ok, modules_in(ast, [], Keyword.get(opts, :file))}

      {:error, {meta, msg, token}} ->
        line = Keyword.get(meta, :line, 0)
        {:error, "#{file}:#{line}: syntax error: #{format_msg(msg)}#{token}"}
    end
  end

  defp format_msg({a, b}), do: "#{a}#{b}"
  defp format_msg(m), do: to_string(m)

  @doc "Analyses every module defined in a source file."
  @spec analyze_file(Path.t(), keyword) :: {:ok, [analysis]} | {:error, String.t()}
  def analyze_file(path, opts \\ []) do
    case File.read(path) do
      {:ok, src} -> analyze_source(src, Keyword.put(opts, :file, path))
      {:error, reason} -> {:error, "cannot read #{path}: #{:file.format_error(reason)}"}
    end
  end

  defp source_file(module) do
    case module.module_info(:compile)[:source] do
      nil -> nil
      src -> List.to_string(src)
    end
  rescue
    _ -> nil
  end

  # ------------------------------------------------------------ modules

  defp modules_in({:defmodule, meta, [alias_ast, [do: body]]}, parent, file) do
    name_parts = parent ++ alias_parts(alias_ast)
    module = Module.concat(name_parts)
    stmts = statements(body)
    nested = Enum.flat_map(stmts, &modules_in(&1, name_parts, file))
    [analyze_body(module, stmts, meta, file) | nested]
  end

  defp modules_in({:__block__, _, stmts}, parent, file),
    do: Enum.flat_map(stmts, &modules_in(&1, parent, file))

  defp modules_in(_, _, _), do: []

  defp alias_parts({:__aliases__, _, parts}), do: Enum.map(parts, &alias_part/1)
  defp alias_parts(atom) when is_atom(atom), do: [atom]
  defp alias_parts(_), do: [:Unknown]

  defp alias_part(p) when is_atom(p), do: p
  defp alias_part(_), do: :Unknown

  defp statements({:__block__, _, stmts}), do: stmts
  defp statements(nil), do: []
  defp statements(stmt), do: [stmt]

  defp analyze_body(module, stmts, meta, file) do
    aliases = collect_aliases(stmts, module)
    behaviours = behaviours(stmts, aliases)
    role = otp_role(behaviours)
    defs = collect_definitions(stmts)

    funs = build_functions(defs, aliases, role)

    external = funs |> Enum.flat_map(& &1.remote_calls) |> Enum.uniq() |> Enum.sort()

    %{
      module: module,
      file: file,
      line: Keyword.get(meta, :line),
      otp_role: role,
      behaviours: behaviours,
      functions: funs,
      call_graph: Map.new(funs, &{{&1.name, &1.arity}, &1.local_calls}),
      external_calls: external,
      side_effects: funs |> Enum.flat_map(& &1.side_effects) |> Enum.uniq() |> Enum.sort(),
      complexity: total_complexity(funs)
    }
  end

  @doc false
  @spec from_definitions(module, [tuple], keyword) :: analysis
  def from_definitions(module, definitions, opts \\ []) do
    # definitions from debug info: {{name, arity}, kind, meta, [{meta, args, guards, body}]}
    defs =
      Enum.map(definitions, fn {{name, arity}, kind, meta, clauses} ->
        %{
          name: name,
          arity: arity,
          arities: [arity],
          kind: kind,
          line: Keyword.get(meta, :line, 0),
          impl: false,
          clauses:
            Enum.map(clauses, fn {cmeta, args, guards, body} ->
              head = {name, cmeta, args}
              head = Enum.reduce(guards, head, fn g, acc -> {:when, cmeta, [acc, g]} end)
              {head, [do: body]}
            end)
        }
      end)

    behaviours = Keyword.get(opts, :behaviours, [])
    role = otp_role(behaviours)
    funs = build_functions(defs, %{}, role)

    %{
      module: module,
      file: Keyword.get(opts, :file),
      line: nil,
      otp_role: role,
      behaviours: behaviours,
      functions: funs,
      call_graph: Map.new(funs, &{{&1.name, &1.arity}, &1.local_calls}),
      external_calls: funs |> Enum.flat_map(& &1.remote_calls) |> Enum.uniq() |> Enum.sort(),
      side_effects: funs |> Enum.flat_map(& &1.side_effects) |> Enum.uniq() |> Enum.sort(),
      complexity: total_complexity(funs)
    }
  end

  defp analyze_debug_info(module) do
    with {:ok, {^module, [debug_info: {:debug_info_v1, backend, data}]}} <-
           :beam_lib.chunks(:code.which(module), [:debug_info]),
         {:ok, %{definitions: defs} = info} <- backend.debug_info(:elixir_v1, module, data, []) do
      behaviours = for {:behaviour, b} <- Map.get(info, :attributes, []), do: b

      behaviours = behaviours ++ module_behaviours(module)
      file = Map.get(info, :file)
      {:ok, from_definitions(module, defs, behaviours: Enum.uniq(behaviours), file: file)}
    else
      _ -> {:error, "no source file and no Elixir debug info for #{inspect(module)}"}
    end
  rescue
    e -> {:error, "cannot read the debug info of #{inspect(module)}: #{Exception.message(e)}"}
  end

  defp module_behaviours(module) do
    module.module_info(:attributes) |> Keyword.get_values(:behaviour) |> List.flatten()
  rescue
    _ -> []
  end

  defp total_complexity([]), do: %{cyclomatic: 1, nesting_depth: 0, size: 0}

  defp total_complexity(funs) do
    %{
      cyclomatic: Enum.sum(Enum.map(funs, & &1.complexity.cyclomatic)),
      nesting_depth: funs |> Enum.map(& &1.complexity.nesting_depth) |> Enum.max(),
      size: Enum.sum(Enum.map(funs, & &1.complexity.size))
    }
  end

  # ------------------------------------------------------------ aliases, behaviours

  defp collect_aliases(stmts, module) do
    base = %{__MODULE__: module}

    Enum.reduce(stmts, base, fn
      {:alias, _, [{:__aliases__, _, parts} | rest]}, acc ->
        full = Module.concat(parts)

        as =
          case rest do
            [[as: {:__aliases__, _, [a]}]] -> a
            _ -> List.last(parts)
          end

        Map.put(acc, as, full)

      {:alias, _, [{{:., _, [{:__aliases__, _, base_parts}, :{}]}, _, subs}]}, acc ->
        Enum.reduce(subs, acc, fn
          {:__aliases__, _, parts}, a ->
            Map.put(a, List.last(parts), Module.concat(base_parts ++ parts))

          _, a ->
            a
        end)

      _, acc ->
        acc
    end)
  end

  defp behaviours(stmts, aliases) do
    Enum.flat_map(stmts, fn
      {:use, _, [mod | _]} -> [use_behaviour(CallScanner.resolve(mod, aliases))]
      {:@, _, [{:behaviour, _, [mod]}]} -> [CallScanner.resolve(mod, aliases)]
      _ -> []
    end)
    |> Enum.reject(&is_nil/1)
    |> Enum.uniq()
  end

  defp use_behaviour(GenServer), do: GenServer
  defp use_behaviour(Supervisor), do: Supervisor
  defp use_behaviour(Application), do: Application
  defp use_behaviour(Task), do: Task
  defp use_behaviour(Agent), do: Agent
  defp use_behaviour(DynamicSupervisor), do: DynamicSupervisor
  defp use_behaviour(other), do: other

  defp otp_role(behaviours) do
    cond do
      Enum.any?(behaviours, &(&1 in [GenServer, :gen_server])) -> :genserver
      Enum.any?(behaviours, &(&1 in [Supervisor, DynamicSupervisor, :supervisor])) -> :supervisor
      Enum.any?(behaviours, &(&1 in [Application, :application])) -> :application
      Enum.any?(behaviours, &(&1 in [:gen_statem, GenStateMachine])) -> :gen_statem
      Task in behaviours -> :task
      Agent in behaviours -> :agent
      true -> :plain
    end
  end

  # ------------------------------------------------------------ definitions

  # Returns [%{name, arity, arities, kind, line, impl, clauses: [{head, body_kw}]}]
  defp collect_definitions(stmts) do
    {defs, _impl} =
      Enum.reduce(stmts, {[], false}, fn
        {:@, _, [{:impl, _, [v]}]}, {acc, _} ->
          {acc, v != false}

        {kind, meta, [head | rest]}, {acc, impl} when kind in @defs ->
          case def_head(head) do
            {name, arity, defaults} ->
              clause = {head, body_of(rest)}
              {[{name, arity, defaults, kind, meta, impl, clause} | acc], false}

            nil ->
              {acc, impl}
          end

        {:defdelegate, meta, [head | _]}, {acc, impl} ->
          case def_head(head) do
            {name, arity, defaults} ->
              {[{name, arity, defaults, :defdelegate, meta, impl, {head, nil}} | acc], false}

            nil ->
              {acc, impl}
          end

        _, acc ->
          acc
      end)

    defs
    |> Enum.reverse()
    |> Enum.group_by(fn {name, arity, _, _, _, _, _} -> {name, arity} end)
    |> Enum.map(fn {{name, arity}, [{_, _, _, kind, meta, _, _} | _] = entries} ->
      defaults = entries |> Enum.map(&elem(&1, 2)) |> Enum.max()

      %{
        name: name,
        arity: arity,
        arities: Enum.to_list((arity - defaults)..arity),
        kind: kind,
        line: Keyword.get(meta, :line, 0),
        end_line: end_line(entries),
        impl: Enum.any?(entries, &elem(&1, 5)),
        clauses:
          entries
          |> Enum.map(&elem(&1, 6))
          |> Enum.reject(fn {_h, b} -> is_nil(b) and kind != :defdelegate end)
      }
    end)
    |> Enum.sort_by(& &1.line)
  end

  defp end_line(entries) do
    entries
    |> Enum.map(fn {_, _, _, _, meta, _, {head, body}} ->
      from_meta = get_in(meta, [:end, :line])
      from_meta || max_line({head, body}, Keyword.get(meta, :line, 0))
    end)
    |> Enum.max()
  end

  defp max_line(ast, start) do
    {_, m} =
      Macro.prewalk(ast, start, fn
        {_, meta, _} = node, acc when is_list(meta) ->
          {node, max(acc, Keyword.get(meta, :line, acc))}

        node, acc ->
          {node, acc}
      end)

    m
  end

  defp def_head({:when, _, [call, _]}), do: def_head(call)

  defp def_head({name, _, args}) when is_atom(name) and is_list(args) do
    defaults = Enum.count(args, &match?({:\\, _, _}, &1))
    {name, length(args), defaults}
  end

  defp def_head({name, _, ctx}) when is_atom(name) and is_atom(ctx), do: {name, 0, 0}
  defp def_head(_), do: nil

  defp body_of([kw]) when is_list(kw), do: kw
  defp body_of(_), do: nil

  # ------------------------------------------------------------ per function

  defp build_functions(defs, aliases, role) do
    defined = MapSet.new(Enum.flat_map(defs, fn d -> Enum.map(d.arities, &{d.name, &1}) end))

    canonical =
      Map.new(
        Enum.flat_map(defs, fn d -> Enum.map(d.arities, &{{d.name, &1}, {d.name, d.arity}}) end)
      )

    infos =
      Enum.map(defs, fn d ->
        bodies = Enum.map(d.clauses, fn {_h, b} -> b end)
        {locals, remotes} = CallScanner.calls(bodies, aliases, defined)
        locals = locals |> Enum.map(&Map.fetch!(canonical, &1)) |> Enum.uniq() |> Enum.sort()
        remotes = remotes |> Enum.uniq() |> Enum.sort()

        complexity =
          case d.clauses do
            [] -> %{cyclomatic: 1, nesting_depth: 0, size: 1}
            clauses -> ComplexityAnalyzer.function_metrics(clauses)
          end

        %{
          name: d.name,
          arity: d.arity,
          arities: d.arities,
          kind: d.kind,
          public?: d.kind in [:def, :defmacro, :defdelegate],
          line: d.line,
          end_line: Map.get(d, :end_line, d.line),
          clauses: max(length(d.clauses), 1),
          complexity: complexity,
          local_calls: locals,
          remote_calls: remotes,
          side_effects: CallScanner.side_effects(bodies, remotes),
          callback?: d.impl or (role == :genserver and {d.name, d.arity} in @genserver_callbacks),
          recursive?: false,
          arithmetic: ComplexityAnalyzer.arithmetic(bodies),
          state: if(role == :genserver, do: state_use(d.clauses))
        }
      end)

    recursive = recursive_set(infos)
    Enum.map(infos, &%{&1 | recursive?: MapSet.member?(recursive, {&1.name, &1.arity})})
  end

  # Whether clauses take a GenServer state (a parameter named state or *_state) and update it.
  defp state_use(clauses) do
    names =
      for {head, _body} <- clauses, {_, _, args} <- [call_head(head)], is_list(args), arg <- args,
          name <- state_names(arg), into: MapSet.new(), do: name

    cond do
      MapSet.size(names) == 0 -> nil
      Enum.any?(clauses, fn {_h, body} -> updates?(body, names) end) -> :updates
      true -> :reads
    end
  end

  defp call_head({:when, _, [call, _]}), do: call
  defp call_head(call), do: call

  # the state-named variables a parameter binds (`state`, `%{} = state`, `new_state \\ x`)
  defp state_names({name, _, ctx}) when is_atom(name) and is_atom(ctx) do
    text = Atom.to_string(name)
    if text == "state" or String.ends_with?(text, "_state"), do: [name], else: []
  end

  defp state_names({op, _, [a, b]}) when op in [:=, :\\], do: state_names(a) ++ state_names(b)
  defp state_names(_), do: []

  defp updates?(body, names) do
    {_, found} =
      Macro.prewalk(body, false, fn
        {:%{}, _, [{:|, _, [{var, _, ctx}, _]}]} = node, acc when is_atom(var) and is_atom(ctx) ->
          {node, acc or MapSet.member?(names, var)}

        node, acc ->
          {node, acc}
      end)

    found
  end

  # Functions on a cycle of the local call graph (self-recursion included).
  defp recursive_set(infos) do
    graph = Map.new(infos, &{{&1.name, &1.arity}, &1.local_calls})

    graph
    |> Map.keys()
    |> Enum.filter(fn key -> reaches?(graph, Map.get(graph, key, []), key, MapSet.new()) end)
    |> MapSet.new()
  end

  defp reaches?(_graph, [], _target, _seen), do: false

  defp reaches?(graph, [node | rest], target, seen) do
    cond do
      node == target -> true
      MapSet.member?(seen, node) -> reaches?(graph, rest, target, seen)
      true -> reaches?(graph, Map.get(graph, node, []) ++ rest, target, MapSet.put(seen, node))
    end
  end
end
