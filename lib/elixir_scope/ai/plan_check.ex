defmodule ElixirScope.AI.PlanCheck do
  @moduledoc """
  Validation of project plans produced by the AI layer: the shared
  `ElixirScope.AST.Plan.validate_project/1` when it is available, plus a
  check of every module and function name against the analyses (so a plan
  that names code that does not exist is refused even before compilation).

  TODO: once `ElixirScope.AST.Plan` is on main, the local shape check
  (`check_shape/1`) only duplicates it and can be removed.
  """

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
  @function_keys [:level, :capture_locals, :trace_expressions, :custom_injections]
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

  @doc "Validates a project plan; with `analyses`, also that every named module/function exists."
  @spec validate(map, [map] | nil) :: {:ok, map} | {:error, String.t()}
  def validate(plan, analyses \\ nil) do
    with :ok <- check_shape(plan),
         :ok <- check_names(plan, analyses),
         {:ok, plan} <- shared_validate(plan) do
      {:ok, plan}
    end
  end

  defp shared_validate(plan) do
    mod = ElixirScope.AST.Plan

    if Code.ensure_loaded?(mod) and function_exported?(mod, :validate_project, 1) do
      apply(mod, :validate_project, [plan])
    else
      {:ok, plan}
    end
  end

  @doc "The local shape check of a project plan."
  @spec check_shape(term) :: :ok | {:error, String.t()}
  def check_shape(%{modules: modules} = plan) when is_map(modules) do
    with :ok <- unknown_keys(plan, @project_keys, "the project plan"),
         :ok <- level(Map.get(plan, :default_level, :none), "default_level") do
      Enum.reduce_while(modules, :ok, fn {mod, mp}, :ok ->
        case check_module(mod, mp) do
          :ok -> {:cont, :ok}
          err -> {:halt, err}
        end
      end)
    end
  end

  def check_shape(_), do: {:error, "a project plan must be a map with a :modules map"}

  defp check_module(mod, mp) when is_atom(mod) and is_map(mp) do
    where = inspect(mod)

    with :ok <- unknown_keys(mp, @module_keys, where),
         :ok <- level(Map.get(mp, :level, :none), "#{where} level"),
         :ok <- gs(Map.get(mp, :genserver_state, :auto), where) do
      Enum.reduce_while(Map.get(mp, :functions, %{}), :ok, fn
        {{name, arity}, fp}, :ok when is_atom(name) and is_integer(arity) and is_map(fp) ->
          fwhere = "#{where}.#{name}/#{arity}"

          case unknown_keys(fp, @function_keys, fwhere) do
            :ok ->
              case level(Map.get(fp, :level, :none), "#{fwhere} level") do
                :ok -> {:cont, :ok}
                err -> {:halt, err}
              end

            err ->
              {:halt, err}
          end

        {key, _}, :ok ->
          {:halt, {:error, "#{where}: function keys must be {name, arity}, got #{inspect(key)}"}}
      end)
    end
  end

  defp check_module(mod, _),
    do: {:error, "module plan for #{inspect(mod)} must be a map keyed by a module atom"}

  defp unknown_keys(map, allowed, where) do
    case Map.keys(map) -- allowed do
      [] -> :ok
      keys -> {:error, "#{where}: unknown keys #{inspect(keys)}"}
    end
  end

  defp level(l, _where) when l in @levels, do: :ok
  defp level(l, where), do: {:error, "#{where}: #{inspect(l)} is not one of #{inspect(@levels)}"}

  defp gs(v, _where) when v in [:auto, true, false], do: :ok

  defp gs(v, where),
    do: {:error, "#{where}: genserver_state #{inspect(v)} must be :auto, true or false"}

  defp check_names(_plan, nil), do: :ok

  defp check_names(%{modules: modules}, analyses) do
    known =
      Map.new(analyses, fn a ->
        funs =
          for f <- a.functions,
              f.kind not in [:defmacro, :defmacrop],
              arity <- f.arities,
              do: {f.name, arity}

        {a.module, MapSet.new(funs)}
      end)

    Enum.reduce_while(modules, :ok, fn {mod, mp}, :ok ->
      case Map.fetch(known, mod) do
        :error ->
          {:halt,
           {:error,
            "the plan names module #{inspect(mod)}, which is not defined in the analysed sources"}}

        {:ok, funs} ->
          missing =
            mp |> Map.get(:functions, %{}) |> Map.keys() |> Enum.reject(&MapSet.member?(funs, &1))

          case missing do
            [] ->
              {:cont, :ok}

            _ ->
              names = Enum.map_join(missing, ", ", fn {n, a} -> "#{n}/#{a}" end)

              {:halt,
               {:error,
                "the plan names functions that #{inspect(mod)} does not define (macros excluded): #{names}"}}
          end
      end
    end)
  end
end
