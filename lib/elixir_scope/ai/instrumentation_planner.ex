defmodule ElixirScope.AI.InstrumentationPlanner do
  @moduledoc """
  Turns analyses (`ElixirScope.AI.CodeAnalyzer`) into an instrumentation plan
  in the transformer's format (`ElixirScope.AST.Plan`), with a reason for
  every choice. Deterministic and offline; it is also the `:heuristic` LLM
  provider and the fallback when an LLM answer is unusable.

  Strategies:
  - `:minimal` — function boundaries only on GenServer callbacks and on
    public functions with side effects; nothing else.
  - `:balanced` (default) — boundaries on the public API and on callbacks;
    locals and expressions where complexity is high, where arithmetic meets
    branching or division (where a wrong value is computed), and in the state
    logic of a GenServer (functions that build a new state from the old one);
    boundaries on functions that read the state; nothing on tiny private leaf
    functions or private recursive helpers (hot paths).
  - `:full` — everything at `:full` (macros excepted).
  """

  alias ElixirScope.AI.CodeAnalyzer

  @strategies [:minimal, :balanced, :full]
  @high_cyclomatic 8
  @high_nesting 4
  @tiny_size 25

  @type strategy :: :minimal | :balanced | :full

  @doc "The strategies understood by `plan/3`."
  @spec strategies() :: [strategy]
  def strategies, do: @strategies

  @doc """
  A project plan for one analysis or a list of them.
  Options: `:provider` (recorded in the plan, default `:heuristic`).
  """
  @spec plan(map | [map], strategy, keyword) :: {:ok, map} | {:error, String.t()}
  def plan(analyses, strategy \\ :balanced, opts \\ [])

  def plan(analysis, strategy, opts) when is_map(analysis), do: plan([analysis], strategy, opts)

  def plan(analyses, strategy, opts) when is_list(analyses) and strategy in @strategies do
    modules = Map.new(analyses, &{&1.module, module_plan(&1, strategy)})

    {:ok,
     %{
       version: 1,
       default_level: :none,
       include: analyses |> Enum.map(& &1.module) |> Enum.sort(),
       exclude: [],
       modules: modules,
       strategy: strategy,
       provider: Keyword.get(opts, :provider, :heuristic),
       generated_at: DateTime.utc_now() |> DateTime.truncate(:second) |> DateTime.to_iso8601()
     }}
  end

  def plan(_analyses, strategy, _opts),
    do: {:error, "unknown strategy #{inspect(strategy)}; expected one of #{inspect(@strategies)}"}

  @doc "The module plan of one analysis under a strategy."
  @spec module_plan(map, strategy) :: map
  def module_plan(analysis, strategy) do
    genserver? = analysis.otp_role == :genserver

    choices =
      analysis.functions
      |> Enum.map(fn f -> {{f.name, f.arity}, choose(f, strategy, genserver?)} end)

    # macros are never instrumented and are not functions of the plan (only their reason is kept)
    macros = for f <- analysis.functions, macro?(f), into: MapSet.new(), do: {f.name, f.arity}

    functions =
      for {key, {entry, _reason}} <- choices, key not in macros, into: %{}, do: {key, entry}

    reasons = Map.new(choices, fn {key, {_entry, reason}} -> {key, reason} end)

    {level, gs, mod_reason} = module_level(analysis, strategy, genserver?)

    %{
      level: level,
      functions: functions,
      genserver_state: gs,
      macros: false,
      reasons: Map.put(reasons, :module, mod_reason)
    }
  end

  defp module_level(analysis, :full, genserver?) do
    {:full, genserver?, "strategy :full: every function at :full (#{role_text(analysis)})"}
  end

  defp module_level(analysis, :minimal, _genserver?) do
    {:none, false,
     "strategy :minimal: only GenServer callbacks and public functions with side effects (#{role_text(analysis)})"}
  end

  defp module_level(analysis, :balanced, genserver?) do
    gs_text = if genserver?, do: "; GenServer state captured around callbacks", else: ""

    {:none, genserver?,
     "strategy :balanced: per-function choices below (#{role_text(analysis)})#{gs_text}"}
  end

  defp role_text(a), do: "OTP role #{a.otp_role}, #{length(a.functions)} functions"

  defp high?(f),
    do: f.complexity.cyclomatic >= @high_cyclomatic or f.complexity.nesting_depth >= @high_nesting

  defp complexity_text(f),
    do:
      "cyclomatic #{f.complexity.cyclomatic}, nesting #{f.complexity.nesting_depth}, size #{f.complexity.size}"

  defp state_text(true), do: " (and GenServer state)"
  defp state_text(false), do: ""

  # division can raise or round; with branching a wrong path gives a wrong value
  defp arithmetic?(f) do
    ops = Map.get(f, :arithmetic, [])
    ops != [] and (Enum.any?(ops, &(&1 in [:/, :div, :rem])) or f.complexity.cyclomatic >= 2)
  end

  defp arith_why(f) do
    division = Enum.filter(f.arithmetic, &(&1 in [:/, :div, :rem]))

    cond do
      division != [] and f.complexity.cyclomatic >= 2 -> "division and branching (cyclomatic #{f.complexity.cyclomatic})"
      division != [] -> "division"
      true -> "branching (cyclomatic #{f.complexity.cyclomatic})"
    end
  end

  defp macro?(f), do: f.kind in [:defmacro, :defmacrop]

  defp callback?(f, genserver?),
    do: f.callback? or (genserver? and {f.name, f.arity} in CodeAnalyzer.genserver_callbacks())

  # -> {function_entry, reason}
  defp choose(f, _strategy, _gs)
       when f.kind in [:defmacro, :defmacrop] or f.kind == :defdelegate do
    reason =
      if macro?(f),
        do: "macro: expanded at compile time, not traced",
        else: "defdelegate: the target function is traced instead"

    {%{level: :none}, reason}
  end

  defp choose(f, :full, _gs) do
    {%{level: :full, capture_locals: :all, trace_expressions: :all},
     "strategy :full (#{complexity_text(f)})"}
  end

  defp choose(f, :minimal, genserver?) do
    cond do
      callback?(f, genserver?) ->
        {%{level: :function_boundaries}, "callback #{f.name}/#{f.arity}: entry and exit recorded#{state_text(genserver?)}"}

      f.public? and f.side_effects != [] ->
        {%{level: :function_boundaries},
         "public with side effects (#{Enum.join(f.side_effects, ", ")})"}

      true ->
        {%{level: :none}, "strategy :minimal: no side effects or not public"}
    end
  end

  defp choose(f, :balanced, genserver?) do
    cond do
      high?(f) ->
        {%{level: :locals, capture_locals: :all},
         "high complexity (#{complexity_text(f)}): boundaries plus local variables"}

      arithmetic?(f) and not (f.recursive? and not f.public?) ->
        {%{level: :locals, capture_locals: :all},
         "arithmetic (#{Enum.join(f.arithmetic, " ")}) with #{arith_why(f)}: locals and expressions, where a wrong value is computed"}

      Map.get(f, :state) == :updates and not callback?(f, genserver?) ->
        {%{level: :locals, capture_locals: :all},
         "GenServer state logic (builds the new state from the old): locals and expressions"}

      callback?(f, genserver?) ->
        {%{level: :function_boundaries}, "callback #{f.name}/#{f.arity}: boundaries#{state_text(genserver?)}"}

      Map.get(f, :state) == :reads ->
        {%{level: :function_boundaries}, "reads the GenServer state: boundaries"}

      f.public? ->
        {%{level: :function_boundaries}, "public API: boundaries"}

      f.side_effects != [] ->
        {%{level: :function_boundaries},
         "private with side effects (#{Enum.join(f.side_effects, ", ")})"}

      f.recursive? ->
        {%{level: :none}, "private recursive helper: one event per iteration would be too costly"}

      f.complexity.size <= @tiny_size and f.local_calls == [] ->
        {%{level: :none},
         "tiny private leaf (size #{f.complexity.size}): likely hot, not worth the overhead"}

      true ->
        {%{level: :none}, "private helper without side effects (#{complexity_text(f)})"}
    end
  end
end
