defmodule ElixirScope.AI.LLM.PlanAnswer do
  @moduledoc """
  Turns a model's plan answer (JSON text) into a validated project plan.
  The text is parsed and checked by the C parser (`ElixirScope.NIF.llm_parse_plan/1`);
  names are matched against the analyses (no atoms are created from the
  answer); modules the answer leaves out are planned by the heuristic
  planner, and an entry naming a module or function the sources do not define
  is dropped: each with a warning, the rest of the answer is kept.
  """

  alias ElixirScope.AI.{InstrumentationPlanner, PlanCheck}

  @doc """
  `{:ok, plan, warnings}` or `{:error, {:malformed_json | :invalid_plan | ..., message}}`.
  Options: `:strategy`, `:provider`.
  """
  @spec to_plan(String.t(), [map], keyword) ::
          {:ok, map, [String.t()]} | {:error, {atom, String.t()}}
  def to_plan(text, analyses, opts) do
    strategy = Keyword.get(opts, :strategy, :balanced)
    provider = Keyword.get(opts, :provider, :unknown)

    with {:ok, parsed} <- parse(text),
         {:ok, modules, dropped} <- convert_modules(parsed, analyses, provider) do
      {:ok, heuristic} = InstrumentationPlanner.plan(analyses, strategy, provider: provider)
      missing = Map.keys(heuristic.modules) -- Map.keys(modules)

      warnings =
        case missing do
          [] ->
            dropped

          _ ->
            dropped ++
              [
                "the #{provider} answer did not cover #{Enum.map_join(missing, ", ", &inspect/1)}; used the heuristic plan for them"
              ]
        end

      merged = Map.merge(Map.take(heuristic.modules, missing), modules)
      default = parsed.default_level || :none
      plan = %{heuristic | modules: merged, default_level: default}

      case PlanCheck.validate(plan, analyses) do
        {:ok, plan} ->
          {:ok, plan, warnings}

        {:error, msg} ->
          {:error, {:invalid_plan, "the #{provider} answer is not a valid plan: #{msg}"}}
      end
    end
  end

  defp parse(text) do
    case ElixirScope.NIF.llm_parse_plan(text) do
      {:ok, parsed} ->
        {:ok, parsed}

      {:error, :malformed_json, msg} ->
        {:error, {:malformed_json, "the answer is not valid JSON: #{msg}"}}

      {:error, :invalid_utf8, msg} ->
        {:error, {:malformed_json, "the answer is not valid UTF-8: #{msg}"}}

      {:error, kind, msg} ->
        {:error, {kind, "the answer is not a valid plan: #{msg}"}}
    end
  end

  # -> {:ok, modules, warnings}: entries naming code the sources do not define are dropped
  defp convert_modules(parsed, analyses, provider) do
    by_name = Map.new(analyses, &{inspect(&1.module), &1})

    {modules, warnings} =
      Enum.reduce(parsed.modules, {%{}, []}, fn m, {acc, ws} ->
        case Map.fetch(by_name, m.module) do
          :error ->
            {acc, ws ++ ["the #{provider} answer names module #{m.module}, which is not in the analysed sources; dropped that entry"]}

          {:ok, analysis} ->
            {mp, dropped} = convert_module(m, analysis, parsed.default_level, provider)
            {Map.put(acc, analysis.module, mp), ws ++ dropped}
        end
      end)

    {:ok, modules, warnings}
  end

  defp convert_module(m, analysis, default_level, provider) do
    level = m.level || default_level || :none
    defined = Enum.reject(analysis.functions, &(&1.kind in [:defmacro, :defmacrop]))
    funs = Map.new(defined, &{{Atom.to_string(&1.name), &1.arity}, &1})

    alt =
      Map.new(
        Enum.flat_map(defined, fn f -> Enum.map(f.arities, &{{Atom.to_string(f.name), &1}, f}) end)
      )

    {fmap, reasons, dropped} =
      Enum.reduce(m.functions, {%{}, %{}, []}, fn f, {fmap, reasons, dropped} ->
        case Map.get(funs, {f.name, f.arity}) || Map.get(alt, {f.name, f.arity}) do
          nil ->
            {fmap, reasons,
             dropped ++ ["the #{provider} answer names #{m.module}.#{f.name}/#{f.arity}, which is not defined there; dropped that entry"]}

          info ->
            key = {info.name, info.arity}
            entry = function_entry(f, level)
            reason = f.reason || "no reason given by #{provider}"
            {Map.put(fmap, key, entry), Map.put(reasons, key, reason), dropped}
        end
      end)

    {%{
       level: level,
       functions: fmap,
       genserver_state: if(m.genserver_state == nil, do: :auto, else: m.genserver_state),
       macros: false,
       reasons: Map.put(reasons, :module, m.reason || "no reason given by #{provider}")
     }, dropped}
  end

  defp function_entry(f, module_level) do
    %{level: f.level || module_level}
    |> put_if(f.capture_locals == true, :capture_locals, :all)
    |> put_if(f.trace_expressions == true, :trace_expressions, :all)
  end

  defp put_if(map, true, k, v), do: Map.put(map, k, v)
  defp put_if(map, _, _k, _v), do: map
end
