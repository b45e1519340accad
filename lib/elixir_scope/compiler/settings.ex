defmodule ElixirScope.Compiler.Settings do
  @moduledoc """
  What the `:elixir_scope` Mix compiler instruments, resolved from the application config and the
  project's plan file.

  Sources, in order of precedence for one module:

    1. `exclude:` (config or plan file, a module or a module prefix) gives `:none`
    2. the plan file's `modules: %{Mod => module_plan}` (`.elixir_scope/plan.exs`, or
       `ast: [plan_file: path]`): the per-module settings
    3. `include:` (config and plan file together): when any is given, modules matching none get `:none`
    4. the default level: config `default_instrumentation_level`, else the plan's `default_level`,
       else `:function_boundaries`

  A module plan without `:level` gets the default level. `:none` means the module is compiled as it
  is. `ast: [instrument_macros: true]` makes module plans default to `macros: true`. The keys are
  the `:ast` section of `ElixirScope.Config`.
  """

  @levels [:none, :function_boundaries, :expressions, :locals, :full]
  @ast_keys [:default_instrumentation_level, :include, :exclude, :plan_file, :instrument_macros]
  @default_plan_file ".elixir_scope/plan.exs"

  defstruct default_level: :function_boundaries,
            include: [],
            exclude: [],
            macros: false,
            plan_modules: %{},
            plan_file: nil

  @type level :: :none | :function_boundaries | :expressions | :locals | :full
  @type t :: %__MODULE__{
          default_level: level(),
          include: [module()],
          exclude: [module()],
          macros: boolean(),
          plan_modules: %{module() => map()},
          plan_file: String.t() | nil
        }

  @doc "The instrumentation levels, from none to everything."
  @spec levels() :: [level()]
  def levels, do: @levels

  @doc """
  Loads the settings for the current project (the Mix project config is accepted for callers that
  have it; the settings come from the application config and the plan file).
  """
  @spec load(keyword()) :: {:ok, t()} | {:error, String.t()}
  def load(_project_config \\ []) do
    ast = Application.get_env(:elixir_scope, :ast, [])

    with :ok <- check_keyword(ast, "config :elixir_scope, ast:"),
         :ok <- check_keys(ast, @ast_keys, "config :elixir_scope, ast:"),
         {:ok, config_default} <-
           optional_level(ast[:default_instrumentation_level], "default_instrumentation_level"),
         {:ok, include} <- module_list(Keyword.get(ast, :include, []), "include"),
         {:ok, exclude} <- module_list(Keyword.get(ast, :exclude, []), "exclude"),
         {:ok, macros} <-
           boolean(Keyword.get(ast, :instrument_macros, false), "instrument_macros"),
         plan_path = Keyword.get(ast, :plan_file, @default_plan_file),
         {:ok, plan} <- read_plan(plan_path) do
      {:ok,
       %__MODULE__{
         default_level: config_default || Map.get(plan, :default_level) || :function_boundaries,
         include: include ++ Map.get(plan, :include, []),
         exclude: exclude ++ Map.get(plan, :exclude, []),
         macros: macros,
         plan_modules: Map.get(plan, :modules, %{}),
         plan_file: if(plan == %{}, do: nil, else: plan_path)
       }}
    end
  end

  @doc """
  What the instrumented code depends on, for the compiler's fingerprint: the settings and the
  redaction rules (secret parameter and variable names are decided at compile time).
  """
  @spec fingerprint_data(t()) :: term()
  def fingerprint_data(%__MODULE__{} = s) do
    capture = Application.get_env(:elixir_scope, :capture, [])

    redaction =
      if Keyword.keyword?(capture),
        do: Enum.filter(capture, fn {k, _} -> k |> Atom.to_string() |> String.contains?("redact") end),
        else: capture

    {s, redaction}
  end

  @doc "The module plan for `module` (always a map with a `:level`)."
  @spec module_plan(t(), module()) :: map()
  def module_plan(%__MODULE__{} = s, module) do
    plan =
      cond do
        matches?(module, s.exclude) -> %{level: :none}
        plan = Map.get(s.plan_modules, module) -> Map.put_new(plan, :level, s.default_level)
        s.include != [] and not matches?(module, s.include) -> %{level: :none}
        true -> %{level: s.default_level}
      end

    if s.macros and plan.level != :none, do: Map.put_new(plan, :macros, true), else: plan
  end

  @doc """
  True when no module can get the level `:none` from these settings: a default level above
  `:none`, no include or exclude list, and no module plan at `:none`. (A module may still name
  its own plan with `@compile {:elixir_scope_plan, plan}`.)
  """
  @spec instruments_every_module?(t()) :: boolean()
  def instruments_every_module?(%__MODULE__{} = s) do
    s.default_level != :none and s.include == [] and s.exclude == [] and
      Enum.all?(s.plan_modules, fn {_mod, plan} -> Map.get(plan, :level, s.default_level) != :none end)
  end

  @doc "True when `module` is one of `prefixes` or nested under one of them."
  @spec matches?(module(), [module() | String.t()]) :: boolean()
  def matches?(module, prefixes) do
    name = inspect(module)

    Enum.any?(prefixes, fn
      p when is_atom(p) -> p == module or String.starts_with?(name, inspect(p) <> ".")
      p when is_binary(p) -> String.starts_with?(name, p)
    end)
  end

  defp check_keyword(value, where) do
    if Keyword.keyword?(value),
      do: :ok,
      else: {:error, "#{where} must be a keyword list, got: #{inspect(value)}"}
  end

  defp check_keys(kw, allowed, where) do
    case Keyword.keys(kw) -- allowed do
      [] -> :ok
      bad -> {:error, "#{where} unknown keys #{inspect(bad)} (allowed: #{inspect(allowed)})"}
    end
  end

  defp optional_level(nil, _what), do: {:ok, nil}
  defp optional_level(level, _what) when level in @levels, do: {:ok, level}

  defp optional_level(other, what),
    do: {:error, "#{what}: invalid level #{inspect(other)} (expected one of #{inspect(@levels)})"}

  defp boolean(value, _what) when is_boolean(value), do: {:ok, value}

  defp boolean(value, what),
    do: {:error, "#{what}: expected true or false, got: #{inspect(value)}"}

  defp module_list(list, what) when is_list(list) do
    if Enum.all?(list, &(is_atom(&1) or is_binary(&1))),
      do: {:ok, list},
      else: {:error, "#{what}: expected a list of modules, got: #{inspect(list)}"}
  end

  defp module_list(other, what),
    do: {:error, "#{what}: expected a list of modules, got: #{inspect(other)}"}

  defp overrides(list) when is_list(list) or is_map(list) do
    Enum.reduce_while(list, {:ok, %{}}, fn
      {mod, level}, {:ok, acc} when is_atom(mod) and level in @levels ->
        {:cont, {:ok, Map.put(acc, mod, %{level: level})}}

      {mod, %{} = plan}, {:ok, acc} when is_atom(mod) ->
        case validate_module_plan(plan) do
          :ok -> {:cont, {:ok, Map.put(acc, mod, plan)}}
          {:error, msg} -> {:halt, {:error, "modules: #{inspect(mod)}: #{msg}"}}
        end

      other, _ ->
        {:halt,
         {:error, "modules: expected {Module, level | module_plan}, got: #{inspect(other)}"}}
    end)
  end

  defp overrides(other),
    do: {:error, "modules: expected a list of {Module, level}, got: #{inspect(other)}"}

  defp validate_module_plan(plan) do
    case Map.get(plan, :level) do
      nil -> :ok
      l when l in @levels -> :ok
      l -> {:error, "invalid level #{inspect(l)} (expected one of #{inspect(@levels)})"}
    end
  end

  defp read_plan(path) do
    if File.regular?(path) do
      try do
        {term, _} = Code.eval_file(path)
        validate_plan(term, path)
      rescue
        e -> {:error, "#{path}: cannot read the plan: " <> Exception.message(e)}
      end
    else
      {:ok, %{}}
    end
  end

  defp validate_plan(term, path) when is_map(term) do
    plan_mod = ElixirScope.AST.Plan

    result =
      if Code.ensure_loaded?(plan_mod) and function_exported?(plan_mod, :validate_project, 1),
        do: apply(plan_mod, :validate_project, [term]),
        else: basic_plan_check(term)

    case result do
      {:ok, plan} -> {:ok, plan}
      {:error, msg} -> {:error, "#{path}: #{msg}"}
    end
  end

  defp validate_plan(term, path),
    do: {:error, "#{path}: the plan must be a map, got: #{inspect(term)}"}

  # Used only while ElixirScope.AST.Plan is not available (it validates plans fully).
  defp basic_plan_check(plan) do
    with {:ok, _} <- optional_level(Map.get(plan, :default_level), "default_level"),
         {:ok, _} <- module_list(Map.get(plan, :include, []), "include"),
         {:ok, _} <- module_list(Map.get(plan, :exclude, []), "exclude"),
         {:ok, _} <- overrides(Map.get(plan, :modules, %{})) do
      {:ok, plan}
    end
  end
end
