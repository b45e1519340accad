defmodule ElixirScope.Compiler.ParseTransform do
  @moduledoc """
  Instruments modules where the Elixir compiler hands them to the Erlang compiler: as Erlang
  abstract forms, after every macro is expanded (the way OTP's `cover` instruments the
  abstract code of a module). Everything the plain compiler produces is already final here, so
  the instrumented module computes what the plain one does: `quote` results, macros in tail
  position and modules defined by code at compile time (`Module.create/3`, a `defmodule` run
  by a library function) are all seen as they are.

  It is an Erlang parse transform, installed through `ERL_COMPILER_OPTIONS` (which the Elixir
  compiler honours, without the deprecation warning that `@compile {:parse_transform, _}` gets).
  The `:elixir_scope` Mix compiler installs it for the project's own compilation (see
  `ElixirScope.Compiler`) and puts the project's settings in `:persistent_term`. Once it is
  installed (`install/0`), a module can also name its own plan:

      @compile {:elixir_scope_plan, :full}   # a level or a module plan (ElixirScope.AST.Plan)

  Modules without a plan from either place are returned untouched.

  Modules at `:none`, modules not written in Elixir, and protocols are returned untouched, so
  they compile to exactly the plain code. A module whose plan cannot be applied compiles plain,
  with a warning naming the reason. The C transformer (`ElixirScope.NIF.forms_transform/2`)
  does the rewriting; this module builds its plan.
  """

  alias ElixirScope.AST.{InjectorHelpers, Plan}
  alias ElixirScope.Compiler.{Settings, StatePlan}
  alias ElixirScope.NIF

  @settings_key {__MODULE__, :settings}
  @report_table :elixir_scope_compiled
  @levels [:none, :function_boundaries, :expressions, :locals, :full]
  @source_max 120

  @typedoc "What happened to one module: `{module, level, status, source_file}`."
  @type report :: {module(), Plan.level(), :instrumented | :plain | {:failed, String.t()}, String.t() | nil}

  @doc "The settings the transform uses for modules that do not name a plan themselves."
  @spec put_settings(Settings.t() | nil) :: :ok
  def put_settings(nil) do
    :persistent_term.erase(@settings_key)
    :ok
  end

  def put_settings(%Settings{} = s), do: :persistent_term.put(@settings_key, s)

  @doc "The ETS table (public, named) where the transform reports each module it saw, if it exists."
  @spec report_table() :: atom()
  def report_table, do: @report_table

  @doc """
  Adds the transform to this VM's Erlang compiler options (`ERL_COMPILER_OPTIONS`) for good, so
  modules compiled from now on that name a plan (`@compile {:elixir_scope_plan, plan}`) are
  instrumented. `extra` options are added with it (see `fast_compile_options/0`). Returns the
  previous value of the variable.
  """
  @spec install([atom()]) :: String.t() | nil
  def install(extra \\ []) do
    previous = System.get_env("ERL_COMPILER_OPTIONS")
    System.put_env("ERL_COMPILER_OPTIONS", erl_compiler_options(previous, extra))
    previous
  end

  @doc """
  The Erlang compiler options that keep an instrumented compile fast, for a compilation where
  every module is instrumented. OTP 25 runs its `ssa_opt_try` pass in `beam_ssa_opt`'s fixpoint
  loop, and that pass relabels a `try` whose tag is alone in its block on every run: such a
  function never reaches the fixpoint and is optimized 17 times instead of 2 or 3. The
  transform keeps each clause's `try` out of that case by a join before it (c_src/forms_transform.c,
  `call_id_join`), which works with any options; without the pass (these options) the join is
  left out, and the compile is a little faster still. The pass only shortens `try` blocks and
  removes those that cannot raise: without it the code computes the same values and raises the
  same exceptions. A parse transform cannot set options for its module (the Elixir compiler
  compiles the transformed forms, as Core Erlang, with the options it was given), so a
  compilation with modules at `:none`, which must stay the plain compiler's code, runs without them.
  """
  @spec fast_compile_options() :: [atom()]
  def fast_compile_options, do: [:no_ssa_opt_try]

  @doc "The value of `ERL_COMPILER_OPTIONS`: the transform and `extra` first, the `previous` options kept."
  @spec erl_compiler_options(String.t() | nil, [atom()]) :: String.t()
  def erl_compiler_options(previous, extra \\ []) do
    ours = [{:parse_transform, __MODULE__} | extra]

    theirs =
      with value when is_binary(value) <- previous,
           {:ok, tokens, _} <- :erl_scan.string(String.to_charlist(value <> ".")),
           {:ok, term} <- :erl_parse.parse_term(tokens) do
        List.wrap(term) -- ours
      else
        _ -> []
      end

    :io_lib.format(~c"~0p", [ours ++ theirs]) |> List.to_string()
  end

  @doc "The Erlang parse transform entry point."
  @spec parse_transform([tuple()], list()) :: [tuple()]
  def parse_transform(forms, options) do
    with {:ok, module} <- elixir_module(forms),
         false <- Enum.any?(forms, &match?({:attribute, _, :elixir_scope, _}, &1)),
         {:ok, plan, runtime} <- plan_for(module, options) do
      instrument(module, forms, plan, runtime: runtime, try_join: try_join?(options), off_copy: off_copy(options))
    else
      _ -> forms
    end
  end

  @doc """
  Instruments `forms` (a module's abstract forms) with a module `plan`. Returns the new forms, or
  `{:error, reason}`. Used by `parse_transform/2` and by tests. Options: `:runtime`, and
  `try_join: false` for forms compiled with `no_ssa_opt_try` (see `fast_compile_options/0`), and
  `off_copy: n` (see `off_copy/1`).
  """
  @spec transform_forms([tuple()], Plan.module_plan() | Plan.level(), keyword()) ::
          {:ok, [tuple()], [String.t()]} | {:error, term()}
  def transform_forms(forms, plan, opts \\ []) do
    with {:ok, module, plan, opts} <- prepare(forms, plan, opts), do: build(module, forms, plan, opts)
  end

  @doc """
  The plan `transform_forms/3` hands the C transformer with `forms` (as a term: the NIF takes
  `:erlang.term_to_binary/1` of both): `{:ok, c_plan, warnings}`, `c_plan` nil when no function
  is to be instrumented (the forms are then kept as they are). The same arguments and errors as
  `transform_forms/3`. The NIF fuzzer (test/fuzz/nif_fuzz.ex) mutates what this returns.
  """
  @spec c_plan([tuple()], Plan.module_plan() | Plan.level(), keyword()) ::
          {:ok, map() | nil, [String.t()]} | {:error, term()}
  def c_plan(forms, plan, opts \\ []) do
    with {:ok, module, plan, opts} <- prepare(forms, plan, opts) do
      {c_plan, warnings} = build_c_plan(module, forms, plan, opts)
      {:ok, c_plan, warnings}
    end
  end

  defp prepare(forms, plan, opts) do
    opts = [
      runtime: Keyword.get(opts, :runtime, ElixirScope.Capture.InstrumentationRuntime),
      try_join: Keyword.get(opts, :try_join, true),
      off_copy: Keyword.get(opts, :off_copy, 0)
    ]

    with {:ok, module} <- elixir_module(forms),
         {:ok, plan} <- Plan.normalize(plan) do
      {:ok, module, plan, opts}
    else
      :error -> {:error, :not_an_elixir_module}
      {:error, msg} -> {:error, {:invalid_plan, msg}}
    end
  end

  # ---- where the plan comes from

  defp plan_for(module, options) do
    runtime =
      case List.keyfind(options, :elixir_scope_runtime, 0) do
        {_, mod} when is_atom(mod) -> mod
        _ -> ElixirScope.Capture.InstrumentationRuntime
      end

    case List.keyfind(options, :elixir_scope_plan, 0) do
      {_, plan} ->
        {:ok, plan, runtime}

      nil ->
        case :persistent_term.get(@settings_key, nil) do
          %Settings{} = s -> {:ok, Settings.module_plan(s, module), runtime}
          _ -> :error
        end
    end
  end

  defp elixir_module(forms) do
    module = Enum.find_value(forms, fn f -> match?({:attribute, _, :module, _}, f) && elem(f, 3) end)
    elixir? = Enum.any?(forms, &match?({:function, _, :__info__, 1, _}, &1))
    protocol? = Enum.any?(forms, &match?({:function, _, :__protocol__, 1, _}, &1))
    if is_atom(module) and module != nil and elixir? and not protocol?, do: {:ok, module}, else: :error
  end

  # The join that keeps OTP 25's ssa_opt_try from relabelling each clause's try on every round
  # of the optimizer (see fast_compile_options/0) is only needed where that pass runs.
  defp try_join?(options), do: :no_ssa_opt_try not in options

  # The largest clause body (in nodes of abstract format) that gets an uninstrumented copy, run
  # while capture is off (docs/ast_transformer.md, "Capture off"): the module's
  # @compile {:elixir_scope_off_copy, n} (ElixirScope.AST.Transformer's off_copy: option), else
  # config :elixir_scope, ast: [off_copy: n]; 0, the default, copies nothing.
  defp off_copy(options) do
    case List.keyfind(options, :elixir_scope_off_copy, 0) do
      {_, n} when is_integer(n) and n >= 0 -> n
      _ -> Keyword.get(Application.get_env(:elixir_scope, :ast, []), :off_copy, 0)
    end
  end

  defp instrument(module, forms, plan, opts) do
    file = source_file(forms)

    case Plan.normalize(plan) do
      {:ok, %{level: :none, functions: fs}} when map_size(fs) == 0 ->
        report({module, :none, :plain, file})
        forms

      {:ok, plan} ->
        case build(module, forms, plan, opts) do
          {:ok, new_forms, warnings} ->
            Enum.each(warnings, &warn(file, &1))
            report({module, plan.level, :instrumented, file})
            new_forms

          {:error, reason} ->
            fail(module, plan.level, file, inspect(reason))
            forms
        end

      {:error, msg} ->
        fail(module, :none, file, "invalid plan: " <> msg)
        forms
    end
  rescue
    e ->
      fail(module, :none, source_file(forms), Exception.format_banner(:error, e, __STACKTRACE__))
      forms
  end

  defp fail(module, level, file, reason) do
    warn(file, "#{inspect(module)} is compiled without instrumentation: #{reason}")
    report({module, level, {:failed, reason}, file})
  end

  defp report(entry) do
    if :ets.whereis(@report_table) != :undefined, do: :ets.insert(@report_table, entry)
    :ok
  end

  defp warn(file, message) do
    IO.puts(:stderr, "warning: ElixirScope: #{message}\n  #{file || "nofile"}\n")
  end

  # ---- the C transformer's plan

  defp build(module, forms, plan, opts) do
    case build_c_plan(module, forms, plan, opts) do
      {nil, warnings} ->
        {:ok, forms, warnings}

      {c_plan, warnings} ->
        case NIF.forms_transform(:erlang.term_to_binary(forms), :erlang.term_to_binary(c_plan)) do
          {:ok, new_forms} -> {:ok, tag(new_forms, plan, c_plan.functions), warnings}
          {:error, reason} -> {:error, reason}
        end
    end
  end

  defp build_c_plan(module, forms, plan, opts) do
    runtime = Keyword.fetch!(opts, :runtime)
    defined = for {:function, _, name, arity, clauses} <- forms, do: {name, arity, clauses}
    names = MapSet.new(defined, fn {n, a, _} -> {n, a} end)
    unknown = for key <- Map.keys(plan.functions), not MapSet.member?(names, key), do: key
    states = StatePlan.for_module(forms, plan.genserver_state)
    inlined = inlined(forms)

    functions =
      for {name, arity, clauses} <- defined,
          instrumentable?(name, arity, clauses, plan),
          spec = function_spec(plan, name, arity, Map.get(states, {name, arity}, :none), inlined),
          spec.level > 0,
          do: {name, arity, spec}

    warnings =
      if unknown == [],
        do: [],
        else: ["the plan of #{inspect(module)} names functions it does not define: #{Plan.format_functions(unknown)}"]

    if functions == [] do
      {nil, warnings}
    else
      source = if needs_source?(functions), do: read_source(source_file(forms)), else: nil
      clauses = for {n, a, _} <- functions, {:function, _, ^n, ^a, cs} <- forms, do: cs
      # variable names, and atoms (keys, fields) the code names: the secret ones are never recorded
      vars = var_bases(clauses) ++ atoms_named(clauses)
      rules = ElixirScope.Redaction.rules(Application.get_env(:elixir_scope, :capture, []))
      secret? = &ElixirScope.Redaction.secret_name?(&1, rules)

      c_plan = %{
        module: module,
        templates: templates(runtime),
        source: source,
        source_max: @source_max,
        secrets: Enum.filter(vars, secret?),
        secret_lines: secret_lines(source, secret?),
        file: String.to_charlist(source_file(forms) || "nofile"),
        try_join: Keyword.fetch!(opts, :try_join),
        off_copy: Keyword.fetch!(opts, :off_copy),
        functions: functions
      }

      {c_plan, warnings}
    end
  end

  # Functions the compiler generates stay as they are: __info__/1 and the other __name__
  # functions, macros (unless the plan asks), and the clauses that fill in default arguments
  # (their call to the full arity is the call that gets recorded).
  defp instrumentable?(name, arity, clauses, plan) do
    s = Atom.to_string(name)

    cond do
      String.starts_with?(s, "__") and String.ends_with?(s, "__") -> false
      String.starts_with?(s, "MACRO-") -> plan.macros
      default_filler?(name, arity, clauses) -> false
      true -> true
    end
  end

  defp default_filler?(name, arity, [{:clause, _, pats, [], [{:call, _, {:atom, _, name}, args}]}]) do
    length(args) > arity and Enum.all?(pats, &match?({:var, _, _}, &1))
  end

  defp default_filler?(_name, _arity, _clauses), do: false

  # Functions the Erlang compiler may inline (@compile {:inline, …} or :inline): a call that no
  # clause matches raises inside the caller's inlined copy, so no catch-all clause is added.
  defp inlined(forms) do
    opts = for {:attribute, _, :compile, o} <- forms, opt <- List.wrap(o), do: opt

    Enum.reduce(opts, MapSet.new(), fn
      :inline, _acc -> :all
      _opt, :all -> :all
      {:inline, fs}, acc -> Enum.reduce(List.wrap(fs), acc, &MapSet.put(&2, &1))
      _, acc -> acc
    end)
  end

  defp function_spec(plan, name, arity, state, inlined) do
    fp = Map.get(plan.functions, {name, arity}, %{})
    level = Enum.find_index(@levels, &(&1 == Map.get(fp, :level, plan.level)))
    locals = Map.get(fp, :capture_locals, plan.capture_locals)
    exprs = Map.get(fp, :trace_expressions, plan.trace_expressions)
    injections = Map.get(fp, :custom_injections, []) ++ plan.custom_injections

    %{
      level: level,
      locals: selection(locals, level >= 3, level),
      exprs: selection(exprs, level >= 2, level),
      tail: state == :none,
      state: state,
      receive: callback_receive(state, name),
      inject: if(level > 0, do: Enum.map(injections, &injection/1), else: []),
      no_clause: not (inlined == :all or MapSet.member?(inlined, {name, arity}))
    }
  end

  # OTP callbacks that take a message record it as a :receive: {kind, argument index}
  defp callback_receive({kind, _}, :handle_call) when kind in [:gen_server, :gen_stage], do: {:call, 1}
  defp callback_receive({kind, _}, :handle_cast) when kind in [:gen_server, :gen_stage], do: {:cast, 1}
  defp callback_receive({kind, _}, :handle_info) when kind in [:gen_server, :gen_stage, :gen_event], do: {:info, 1}
  defp callback_receive({:gen_event, _}, :handle_event), do: {:cast, 1}
  defp callback_receive({:gen_event_call, _}, :handle_call), do: {:call, 1}
  defp callback_receive({:gen_statem, {:args, 3, 4}}, :handle_event), do: {:event, 2}
  defp callback_receive({:gen_statem, {:name, 3}}, _name), do: {:event, 2}
  defp callback_receive(_state, _name), do: :none

  defp selection(_sel, _on, 0), do: :none
  defp selection(nil, true, _), do: :all
  defp selection(nil, false, _), do: :none
  defp selection(sel, _on, _), do: sel

  defp injection({line, side, quoted}) do
    vars =
      quoted
      |> Macro.prewalk([], fn
        {name, _, ctx} = v, acc when is_atom(name) and is_atom(ctx) -> {v, [name | acc]}
        other, acc -> {other, acc}
      end)
      |> elem(1)
      |> Enum.uniq()

    {line, side, :erl_parse.abstract(quoted), vars}
  end

  defp needs_source?(functions) do
    Enum.any?(functions, fn {_, _, s} -> s.exprs != :none end)
  end

  defp templates(runtime) do
    key = {__MODULE__, :templates, runtime}

    case :persistent_term.get(key, nil) do
      nil ->
        t = InjectorHelpers.templates(runtime)
        :persistent_term.put(key, t)
        t

      t ->
        t
    end
  end

  # The module remembers how it was instrumented (mix scope.status reads it).
  defp tag(forms, plan, functions) do
    info = %{level: plan.level, functions: for({n, a, s} <- functions, do: {{n, a}, Enum.at(@levels, s.level)})}

    Enum.flat_map(forms, fn
      {:attribute, line, :module, _} = f -> [f, {:attribute, line, :elixir_scope, info}]
      f -> [f]
    end)
  end

  # ---- source and secrets

  defp source_file(forms) do
    Enum.find_value(forms, fn
      {:attribute, _, :file, {file, _}} -> List.to_string(file)
      _ -> nil
    end)
  end

  defp read_source(nil), do: nil

  defp read_source(file) do
    case File.read(file) do
      {:ok, text} -> text
      _ -> nil
    end
  end

  # The names the user gave variables: Elixir names them _name@N in the forms.
  defp var_bases(term) do
    term
    |> collect_vars(MapSet.new())
    |> Enum.flat_map(fn name ->
      case Regex.run(~r/^_([^_].*)@\d+$/, Atom.to_string(name)) do
        [_, base] -> [String.to_atom(base)]
        _ -> []
      end
    end)
    |> Enum.uniq()
  end

  defp atoms_named(term), do: term |> collect_atoms(MapSet.new()) |> MapSet.to_list()

  defp collect_atoms({:atom, _, name}, acc) when is_atom(name), do: MapSet.put(acc, name)
  defp collect_atoms(t, acc) when is_tuple(t), do: collect_atoms(Tuple.to_list(t), acc)
  defp collect_atoms([h | t], acc), do: collect_atoms(t, collect_atoms(h, acc))
  defp collect_atoms(_, acc), do: acc

  defp collect_vars({:var, _, name}, acc) when is_atom(name), do: MapSet.put(acc, name)
  defp collect_vars(t, acc) when is_tuple(t), do: collect_vars(Tuple.to_list(t), acc)
  defp collect_vars([h | t], acc), do: collect_vars(t, collect_vars(h, acc))
  defp collect_vars(_, acc), do: acc

  defp secret_lines(nil, _secret?), do: []

  defp secret_lines(source, secret?) do
    source
    |> String.split("\n")
    |> Enum.with_index(1)
    |> Enum.flat_map(fn {text, line} ->
      words = Regex.scan(~r/[A-Za-z_][A-Za-z0-9_]*/, text) |> List.flatten()
      if Enum.any?(words, secret?), do: [line], else: []
    end)
  end
end
