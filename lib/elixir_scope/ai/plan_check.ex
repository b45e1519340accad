defmodule ElixirScope.AI.PlanCheck do
  @moduledoc """
  Validation of project plans produced by the AI layer: the shared
  `ElixirScope.AST.Plan.validate_project/1`, plus a check of every module and
  function name against the analyses (so a plan that names code that does not
  exist is refused even before compilation).
  """

  alias ElixirScope.AST.Plan

  @doc "Validates a project plan; with `analyses`, also that every named module/function exists."
  @spec validate(map, [map] | nil) :: {:ok, map} | {:error, String.t()}
  def validate(plan, analyses \\ nil) do
    with :ok <- check_shape(plan),
         :ok <- check_names(plan, analyses) do
      Plan.validate_project(plan)
    end
  end

  @doc "The shape check of a project plan (the validator every plan source shares)."
  @spec check_shape(term) :: :ok | {:error, String.t()}
  def check_shape(plan) do
    case Plan.validate_project(plan) do
      {:ok, _} -> :ok
      {:error, message} -> {:error, message}
    end
  end

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
