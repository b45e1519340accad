defmodule ElixirScope.AI.LLM.Prompt do
  @moduledoc """
  Prompts sent to the LLMs. The model gets the analysis (names, metrics,
  side effects, call graph), never the source code, within a byte cap;
  modules that do not fit are left out (and then planned by the heuristic).
  """

  @levels "none, function_boundaries, expressions, locals, full"

  @doc "System prompt of a plan request."
  @spec plan_system() :: String.t()
  def plan_system do
    """
    You plan compile-time instrumentation for ElixirScope, an execution recorder for Elixir.
    Levels, cheapest first: #{@levels}. function_boundaries records calls and returns;
    locals also records local variables; expressions traces expression values; full does all.
    Keep the runtime overhead low: do not instrument tiny hot helpers or tight recursion,
    prefer boundaries on public APIs and GenServer callbacks, capture locals where logic is complex.
    Answer with JSON only, matching this shape:
    {"default_level": level, "summary": string,
     "modules": [{"module": "App.Mod", "level": level, "genserver_state": "auto"|"true"|"false", "reason": string,
                  "functions": [{"name": "fun", "arity": 2, "level": level,
                                 "capture_locals": bool, "trace_expressions": bool, "reason": string}]}]}
    Use only module and function names from the analysis. Give a short reason for every choice.
    """
  end

  @doc "User prompt of a plan request: the strategy and the analyses as JSON, capped at `max_bytes`."
  @spec plan_user([map], atom, pos_integer) :: {String.t(), [atom]}
  def plan_user(analyses, strategy, max_bytes) do
    {included, omitted, _size} =
      Enum.reduce(analyses, {[], [], 0}, fn a, {inc, om, size} ->
        json = ElixirScope.NIF.json_encode(summary(a))

        if size + byte_size(json) + 1 <= max_bytes do
          {[json | inc], om, size + byte_size(json) + 1}
        else
          {inc, [a.module | om], size}
        end
      end)

    text = """
    Strategy: #{strategy} (minimal = least overhead, balanced = default trade-off, full = record everything).
    Analysis of #{length(included)} modules (JSON, one per line):
    #{included |> Enum.reverse() |> Enum.join("\n")}
    """

    {text, Enum.reverse(omitted)}
  end

  @doc "The analysis of one module reduced to what the model needs."
  @spec summary(map) :: map
  def summary(a) do
    %{
      module: inspect(a.module),
      otp_role: a.otp_role,
      behaviours: Enum.map(a.behaviours, &inspect/1),
      functions:
        a.functions
        |> Enum.reject(&(&1.kind in [:defmacro, :defmacrop]))
        |> Enum.map(fn f ->
          %{
            name: Atom.to_string(f.name),
            arity: f.arity,
            kind: f.kind,
            public: f.public?,
            callback: f.callback?,
            recursive: f.recursive?,
            lines: f.end_line - f.line + 1,
            cyclomatic: f.complexity.cyclomatic,
            nesting: f.complexity.nesting_depth,
            size: f.complexity.size,
            side_effects: f.side_effects,
            calls: Enum.map(f.local_calls, fn {n, ar} -> "#{n}/#{ar}" end),
            remote_calls:
              f.remote_calls
              |> Enum.take(20)
              |> Enum.map(fn {m, n, ar} -> "#{inspect(m)}.#{n}/#{ar}" end)
          }
        end)
    }
  end

  @doc "System prompt of an error explanation."
  @spec explain_system() :: String.t()
  def explain_system do
    """
    You are an Elixir debugging assistant. You get a recorded exception with the chain of calls,
    arguments, local variables and GenServer state that led to it (values may be truncated).
    Explain the root cause briefly and suggest a concrete fix.
    Answer with JSON only: {"explanation": string, "suggested_fix": string}
    """
  end

  @doc "User prompt of an error explanation: the context as JSON, capped at `max_bytes`."
  @spec explain_user(map, pos_integer) :: String.t()
  def explain_user(context, max_bytes) do
    json = ElixirScope.NIF.json_encode(ElixirScope.AI.Explainer.jsonable(context))

    if byte_size(json) <= max_bytes do
      json
    else
      binary_part(json, 0, max_bytes) |> String.trim_trailing() |> Kernel.<>("\n(truncated)")
    end
    |> valid_utf8()
  end

  defp valid_utf8(s) do
    if String.valid?(s),
      do: s,
      else: String.chunk(s, :valid) |> Enum.filter(&String.valid?/1) |> Enum.join()
  end

  @doc "System prompt of a code commentary request."
  @spec analyze_system() :: String.t()
  def analyze_system do
    """
    You review the static analysis of an Elixir module (no source code). Point out the functions
    most worth recording when debugging, risky side effects and concurrency hazards. Be brief.
    """
  end
end
