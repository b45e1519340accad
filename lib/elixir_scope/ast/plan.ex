defmodule ElixirScope.AST.Plan do
  @moduledoc """
  Instrumentation plans: validation and normalization, shared by every plan
  source (configuration, the static analyser, an LLM, a hand-written file).

  A module plan (all keys optional):

      %{level: :none | :function_boundaries | :expressions | :locals | :full,
        functions: %{{name, arity} => %{level: ..., capture_locals: ..., trace_expressions: ...,
                                          custom_injections: ..., reason: "free text"}},
        capture_locals: :all | [atom], trace_expressions: :all | [atom],
        custom_injections: [{line, :before | :after, quoted}],
        genserver_state: :auto | true | false | :gen_server | :gen_stage | :gen_statem | :gen_event,
        macros: false, reasons: %{...}}

  Levels are ordered: each includes the previous ones (`:expressions` adds traced
  top-level expressions to the function boundaries, `:locals` adds the variables
  bound by each top-level match, `:full` is everything). `capture_locals` and
  `trace_expressions` given explicitly select what is captured at any level above
  `:none` (a list names variables, or for expressions the called function or the
  bound variable of a statement). A function's plan inherits the module's keys it
  does not set. The default level is `:function_boundaries`. `macros: true` also
  instruments `defmacro`/`defmacrop` bodies (recorded when callers are compiled);
  `defguard` is never instrumented (guards cannot call functions).

  A project plan (`.elixir_scope/plan.exs`):

      %{version: 1, default_level: level, include: [module | prefix_string], exclude: [...],
        modules: %{Module => module_plan}, strategy: atom, provider: atom, generated_at: string}
  """

  @type level :: :none | :function_boundaries | :expressions | :locals | :full
  @type module_plan :: map()
  @type project_plan :: map()

  @levels [:none, :function_boundaries, :expressions, :locals, :full]
  @module_keys [
    :level,
    :functions,
    :capture_locals,
    :trace_expressions,
    :custom_injections,
    :genserver_state,
    :macros,
    :reasons
  ]
  @function_keys [:level, :capture_locals, :trace_expressions, :custom_injections, :reason]
  @project_keys [
    :version,
    :default_level,
    :include,
    :exclude,
    :modules,
    :strategy,
    :provider,
    :generated_at
  ]

  @doc "The levels, in order."
  @spec levels() :: [level()]
  def levels, do: @levels

  @doc """
  Validates a module plan and fills in the defaults. A bare level atom is accepted
  as `%{level: level}`.
  """
  @spec normalize(module_plan() | level()) :: {:ok, module_plan()} | {:error, String.t()}
  def normalize(level) when level in @levels, do: normalize(%{level: level})

  def normalize(plan) when is_map(plan) do
    with :ok <- check_keys(plan, @module_keys, "module plan"),
         {:ok, level} <- check_level(Map.get(plan, :level, :function_boundaries), "level"),
         {:ok, locals} <- check_selection(Map.get(plan, :capture_locals), "capture_locals"),
         {:ok, exprs} <- check_selection(Map.get(plan, :trace_expressions), "trace_expressions"),
         {:ok, injections} <-
           check_injections(Map.get(plan, :custom_injections, []), "custom_injections"),
         {:ok, gs} <- check_genserver(Map.get(plan, :genserver_state, :auto)),
         {:ok, macros} <- check_boolean(Map.get(plan, :macros, false), "macros"),
         {:ok, reasons} <- check_reasons(Map.get(plan, :reasons, %{})),
         {:ok, functions} <- check_functions(Map.get(plan, :functions, %{})) do
      {:ok,
       %{
         level: level,
         capture_locals: locals,
         trace_expressions: exprs,
         custom_injections: injections,
         genserver_state: gs,
         macros: macros,
         reasons: reasons,
         functions: functions
       }}
    end
  end

  def normalize(other),
    do: {:error, "a module plan must be a map or a level atom, got: #{inspect(other)}"}

  @doc "Validates a module plan (see `normalize/1`)."
  @spec validate(module_plan()) :: {:ok, module_plan()} | {:error, String.t()}
  def validate(plan), do: normalize(plan)

  @doc """
  Validates a module plan against the functions a module defines (as returned by
  `defined_functions/1`): a plan naming a function that does not exist is an error.
  """
  @spec validate_for(module_plan(), [{atom(), non_neg_integer()}]) ::
          {:ok, module_plan()} | {:error, String.t()}
  def validate_for(plan, defined) do
    with {:ok, plan} <- normalize(plan) do
      missing =
        for {name, arity} = key <- Map.keys(plan.functions), {name, arity} not in defined, do: key

      case missing do
        [] ->
          {:ok, plan}

        _ ->
          {:error,
           "plan names functions the module does not define: #{format_functions(missing)}"}
      end
    end
  end

  @doc "Formats `[{name, arity}]` as `name/arity, ...`."
  @spec format_functions([{atom(), non_neg_integer()}]) :: String.t()
  def format_functions(list),
    do: Enum.map_join(Enum.sort(list), ", ", fn {n, a} -> "#{n}/#{a}" end)

  @doc """
  The `{name, arity}` of every `def`/`defp`/`defdelegate` at the top level of the
  modules in a quoted file or module (default arguments give every arity).
  """
  @spec defined_functions(Macro.t()) :: [{atom(), non_neg_integer()}]
  def defined_functions(ast), do: ast |> forms([]) |> Enum.uniq()

  defp forms({:__block__, _, items}, acc) when is_list(items),
    do: Enum.reduce(items, acc, &forms/2)

  defp forms({:defmodule, _, [_, kw]}, acc) when is_list(kw) do
    case Keyword.fetch(kw, :do) do
      {:ok, body} -> forms(body, acc)
      :error -> acc
    end
  end

  defp forms({kind, _, [head | _]}, acc) when kind in [:def, :defp, :defdelegate] do
    case def_head(head) do
      {name, args} ->
        defaults = Enum.count(args, &match?({:\\, _, _}, &1))
        n = length(args)
        Enum.reduce((n - defaults)..n, acc, fn a, acc -> [{name, a} | acc] end)

      nil ->
        acc
    end
  end

  defp forms(_, acc), do: acc

  defp def_head({:when, _, [head, _]}), do: def_head(head)
  defp def_head({name, _, args}) when is_atom(name) and is_list(args), do: {name, args}
  defp def_head({name, _, ctx}) when is_atom(name) and is_atom(ctx), do: {name, []}
  defp def_head(_), do: nil

  @doc "Validates a project plan; module plans inside are normalized."
  @spec validate_project(project_plan()) :: {:ok, project_plan()} | {:error, String.t()}
  def validate_project(plan) when is_map(plan) do
    with :ok <- check_keys(plan, @project_keys, "project plan"),
         :ok <- check_version(Map.get(plan, :version, 1)),
         {:ok, default} <-
           check_level(Map.get(plan, :default_level, :function_boundaries), "default_level"),
         {:ok, include} <- check_module_list(Map.get(plan, :include, []), "include"),
         {:ok, exclude} <- check_module_list(Map.get(plan, :exclude, []), "exclude"),
         {:ok, modules} <- check_modules(Map.get(plan, :modules, %{})),
         :ok <- check_atom(Map.get(plan, :strategy), "strategy"),
         :ok <- check_atom(Map.get(plan, :provider), "provider"),
         :ok <- check_string(Map.get(plan, :generated_at), "generated_at") do
      {:ok,
       plan
       |> Map.put(:version, 1)
       |> Map.put(:default_level, default)
       |> Map.put(:include, include)
       |> Map.put(:exclude, exclude)
       |> Map.put(:modules, modules)}
    end
  end

  def validate_project(other),
    do: {:error, "a project plan must be a map, got: #{inspect(other)}"}

  @doc """
  The module plan that a (validated) project plan gives `module`: its own entry,
  else `%{level: default_level}` when the module is included (an empty `include`
  includes everything) and not excluded, else `%{level: :none}`.
  """
  @spec for_module(project_plan(), module()) :: module_plan()
  def for_module(project, module) do
    cond do
      matches?(module, Map.get(project, :exclude, [])) ->
        %{level: :none}

      Map.has_key?(project.modules, module) ->
        Map.put_new(project.modules[module], :level, project.default_level)

      project.include == [] or matches?(module, project.include) ->
        %{level: project.default_level}

      true ->
        %{level: :none}
    end
  end

  defp matches?(module, list) do
    name = inspect(module)

    Enum.any?(list, fn
      m when is_atom(m) -> m == module or String.starts_with?(name, inspect(m) <> ".")
      prefix when is_binary(prefix) -> String.starts_with?(name, prefix)
    end)
  end

  # ---- checks

  defp check_keys(map, allowed, what) do
    case Enum.reject(Map.keys(map), &(&1 in allowed)) do
      [] ->
        :ok

      bad ->
        {:error,
         "unknown keys in #{what}: #{Enum.map_join(bad, ", ", &inspect/1)} (allowed: #{Enum.map_join(allowed, ", ", &inspect/1)})"}
    end
  end

  defp check_level(level, _what) when level in @levels, do: {:ok, level}

  defp check_level(other, what),
    do:
      {:error,
       "#{what} must be one of #{Enum.map_join(@levels, ", ", &inspect/1)}, got: #{inspect(other)}"}

  defp check_selection(nil, _), do: {:ok, nil}
  defp check_selection(:all, _), do: {:ok, :all}

  defp check_selection(list, what) when is_list(list) do
    if Enum.all?(list, &is_atom/1),
      do: {:ok, list},
      else: {:error, "#{what} must be :all or a list of atoms, got: #{inspect(list)}"}
  end

  defp check_selection(other, what),
    do: {:error, "#{what} must be :all or a list of atoms, got: #{inspect(other)}"}

  defp check_injections(list, what) when is_list(list) do
    Enum.reduce_while(list, {:ok, []}, fn
      {line, pos, quoted} = inj, {:ok, acc}
      when is_integer(line) and line > 0 and pos in [:before, :after] ->
        case Macro.validate(quoted) do
          :ok ->
            {:cont, {:ok, [inj | acc]}}

          {:error, bad} ->
            {:halt,
             {:error, "#{what}: invalid quoted expression at line #{line}: #{inspect(bad)}"}}
        end

      other, _ ->
        {:halt,
         {:error,
          "#{what} entries must be {line, :before | :after, quoted}, got: #{inspect(other)}"}}
    end)
    |> case do
      {:ok, acc} -> {:ok, Enum.reverse(acc)}
      err -> err
    end
  end

  defp check_injections(other, what),
    do: {:error, "#{what} must be a list, got: #{inspect(other)}"}

  @state_kinds [:gen_server, :gen_stage, :gen_statem, :gen_event]

  defp check_genserver(v) when v in [:auto, true, false], do: {:ok, v}
  defp check_genserver(v) when v in @state_kinds, do: {:ok, v}

  defp check_genserver(v),
    do:
      {:error,
       "genserver_state must be :auto, true, false or one of #{inspect(@state_kinds)}, got: #{inspect(v)}"}

  defp check_boolean(v, _) when is_boolean(v), do: {:ok, v}
  defp check_boolean(v, what), do: {:error, "#{what} must be a boolean, got: #{inspect(v)}"}

  defp check_reasons(m) when is_map(m), do: {:ok, m}
  defp check_reasons(v), do: {:error, "reasons must be a map, got: #{inspect(v)}"}

  defp check_functions(fs) when is_map(fs) do
    Enum.reduce_while(fs, {:ok, %{}}, fn
      {{name, arity} = key, fp}, {:ok, acc}
      when is_atom(name) and is_integer(arity) and arity >= 0 and is_map(fp) ->
        case check_function(key, fp) do
          {:ok, fp} -> {:cont, {:ok, Map.put(acc, key, fp)}}
          err -> {:halt, err}
        end

      {key, fp}, _ ->
        {:halt,
         {:error,
          "functions entries must be {name, arity} => map, got: #{inspect(key)} => #{inspect(fp)}"}}
    end)
  end

  defp check_functions(other),
    do: {:error, "functions must be a map of {name, arity} => plan, got: #{inspect(other)}"}

  defp check_function({name, arity}, fp) do
    what = "functions[#{name}/#{arity}]"

    with :ok <- check_keys(fp, @function_keys, what),
         {:ok, fp} <- opt(fp, :level, &check_level(&1, what <> ".level")),
         {:ok, fp} <- opt(fp, :capture_locals, &check_selection(&1, what <> ".capture_locals")),
         {:ok, fp} <-
           opt(fp, :trace_expressions, &check_selection(&1, what <> ".trace_expressions")),
         {:ok, fp} <-
           opt(fp, :custom_injections, &check_injections(&1, what <> ".custom_injections")),
         :ok <- check_string(Map.get(fp, :reason), what <> ".reason") do
      {:ok, Map.delete(fp, :reason)}
    end
  end

  defp opt(map, key, check) do
    case Map.fetch(map, key) do
      {:ok, v} ->
        case check.(v) do
          {:ok, v} -> {:ok, Map.put(map, key, v)}
          err -> err
        end

      :error ->
        {:ok, map}
    end
  end

  defp check_version(1), do: :ok
  defp check_version(v), do: {:error, "version must be 1, got: #{inspect(v)}"}

  defp check_module_list(list, what) when is_list(list) do
    if Enum.all?(list, &(is_atom(&1) or is_binary(&1))),
      do: {:ok, list},
      else: {:error, "#{what} must be a list of modules or name prefixes, got: #{inspect(list)}"}
  end

  defp check_module_list(other, what),
    do: {:error, "#{what} must be a list, got: #{inspect(other)}"}

  defp check_modules(mods) when is_map(mods) do
    Enum.reduce_while(mods, {:ok, %{}}, fn {mod, mp}, {:ok, acc} ->
      with true <-
             is_atom(mod) || {:error, "modules keys must be module atoms, got: #{inspect(mod)}"},
           {:ok, norm} <- normalize_keep_level(mp) do
        {:cont, {:ok, Map.put(acc, mod, norm)}}
      else
        {:error, msg} -> {:halt, {:error, "modules[#{inspect(mod)}]: #{msg}"}}
      end
    end)
  end

  defp check_modules(other),
    do: {:error, "modules must be a map of Module => module plan, got: #{inspect(other)}"}

  # validate but keep the plan as written (so a missing level inherits default_level)
  defp normalize_keep_level(mp) do
    case normalize(mp) do
      {:ok, _} -> {:ok, if(is_atom(mp), do: %{level: mp}, else: mp)}
      err -> err
    end
  end

  defp check_atom(nil, _), do: :ok
  defp check_atom(a, _) when is_atom(a), do: :ok
  defp check_atom(v, what), do: {:error, "#{what} must be an atom, got: #{inspect(v)}"}

  defp check_string(nil, _), do: :ok
  defp check_string(s, _) when is_binary(s), do: :ok
  defp check_string(v, what), do: {:error, "#{what} must be a string, got: #{inspect(v)}"}
end
