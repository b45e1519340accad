defmodule ElixirScope.Compiler do
  @moduledoc """
  The work of the `:elixir_scope` Mix compiler (`Mix.Tasks.Compile.ElixirScope`).

  It does not rewrite sources. Mix's own Elixir compiler compiles the user's files as they are;
  ElixirScope instruments each module where the Elixir compiler hands it to the Erlang compiler,
  as Erlang abstract forms after every macro is expanded (`ElixirScope.Compiler.ParseTransform`,
  in the way OTP's `cover` instruments abstract code). For that it, before Elixir's compiler runs:

    * puts the project's settings (levels, include/exclude, plan file) where the transform reads
      them (`:persistent_term`);
    * adds the transform to the Erlang compiler options of this compilation
      (`ERL_COMPILER_OPTIONS`, which the Elixir compiler honours), and takes it away again when
      Elixir's compiler is done, so test files, IEx and later compilations are untouched;
    * puts a fingerprint of the settings and of the transformer into `elixirc_options`, which is
      part of Mix's own cache key: when the plan, a level or ElixirScope itself changes, or when
      `:elixir_scope` is added to or removed from `compilers:`, Mix recompiles the project; when
      nothing changed, Mix compiles nothing (a no-op `mix compile` costs only this step).

  Every module compiled in the project is seen, including modules that code defines while the
  project compiles (`Module.create/3`, a library function running `defmodule`). Compile errors,
  warnings and stack traces are the plain compiler's: they name the user's files and lines.

  Its manifest (`compile.elixir_scope`) records, per module, the level, the functions'
  levels, the source file and whether instrumenting it failed; `mix scope.status` prints it.
  """

  alias ElixirScope.Compiler.{ParseTransform, Settings}

  @manifest "compile.elixir_scope"
  @manifest_vsn 3

  @type status :: :ok | :noop | :error
  @type module_entry :: %{
          level: Settings.level(),
          status: :instrumented | :plain | {:failed, String.t()},
          source: String.t() | nil
        }

  @doc "The manifest file of the compiler for a project config."
  @spec manifest_path(keyword()) :: String.t()
  def manifest_path(config), do: Path.join(Mix.Project.manifest_path(config), @manifest)

  @doc "Removes what the compiler generated (called by `mix clean`)."
  @spec clean(keyword()) :: :ok
  def clean(config) do
    File.rm(manifest_path(config))
    :ok
  end

  @doc "Reads the manifest: `%{module => module_entry}` (empty when absent or of another version)."
  @spec read_manifest(keyword()) :: %{module() => module_entry()}
  def read_manifest(config) do
    with {:ok, bin} <- File.read(manifest_path(config)),
         {@manifest_vsn, modules} when is_map(modules) <- safe_binary_to_term(bin) do
      modules
    else
      _ -> %{}
    end
  end

  @doc """
  Prepares the project's compilation for instrumentation (see the moduledoc). Returns `:noop`:
  the modules are compiled, and reported, by Mix's Elixir compiler that runs next.
  """
  @spec run(keyword(), keyword()) :: {status(), [Mix.Task.Compiler.Diagnostic.t()]}
  def run(config, _opts) do
    case Settings.load(config) do
      {:ok, settings} ->
        prepare(config, settings)
        {:noop, []}

      {:error, message} ->
        Mix.shell().error("** (ElixirScope) " <> message)
        {:error, [diagnostic(Path.absname("mix.exs"), 0, message, :error)]}
    end
  end

  defp prepare(config, settings) do
    ParseTransform.put_settings(settings)
    options = Keyword.put(config[:elixirc_options] || [], :elixir_scope, fingerprint(settings))
    Mix.ProjectStack.merge_config(elixirc_options: options)

    table = ParseTransform.report_table()
    if :ets.whereis(table) != :undefined, do: :ets.delete(table)
    :ets.new(table, [:named_table, :public, :bag])

    extra = if Settings.instruments_every_module?(settings), do: ParseTransform.fast_compile_options(), else: []
    previous = ParseTransform.install(extra)

    Mix.Task.Compiler.after_compiler(:elixir, fn result ->
      restore_env(previous)
      ParseTransform.put_settings(nil)
      finish(config, table, result)
    end)

    :ok
  end

  defp restore_env(nil), do: System.delete_env("ERL_COMPILER_OPTIONS")
  defp restore_env(value), do: System.put_env("ERL_COMPILER_OPTIONS", value)

  defp finish(config, table, {status, diagnostics}) do
    seen = :ets.tab2list(table)
    :ets.delete(table)

    if seen != [] do
      old = read_manifest(config)
      ebin = Mix.Project.compile_path(config)

      kept =
        for {mod, entry} <- old,
            File.regular?(Path.join(ebin, Atom.to_string(mod) <> ".beam")),
            into: %{},
            do: {mod, entry}

      fresh =
        for {mod, level, st, source} <- seen,
            into: %{},
            do: {mod, %{level: level, status: st, source: source && Path.relative_to_cwd(source)}}

      write_manifest(config, Map.merge(kept, fresh))
      report(fresh)
    end

    {status, diagnostics}
  end

  # What makes every instrumented module stale when it changes: the settings, the transform and
  # the NIF that does the work.
  defp fingerprint(settings) do
    nif = Path.join(to_string(:code.priv_dir(:elixir_scope)), "elixir_scope_nif.so")

    nif_stat =
      case File.stat(nif) do
        {:ok, st} -> {st.size, st.mtime}
        _ -> nil
      end

    mods = [ParseTransform, ElixirScope.AST.InjectorHelpers, ElixirScope.Compiler.StatePlan]
    md5s = for m <- mods, Code.ensure_loaded?(m), do: m.module_info(:md5)
    plans = Settings.fingerprint_data(settings)
    :erlang.md5(:erlang.term_to_binary({plans, md5s, nif_stat})) |> Base.encode16(case: :lower)
  end

  defp write_manifest(config, modules) do
    path = manifest_path(config)
    File.mkdir_p!(Path.dirname(path))
    File.write!(path, :erlang.term_to_binary({@manifest_vsn, modules}))
  end

  defp report(fresh) do
    instrumented = for {m, %{status: :instrumented}} <- fresh, do: m
    failed = for {m, %{status: {:failed, _}}} <- fresh, do: m

    if instrumented != [] do
      {shown, rest} = instrumented |> Enum.sort() |> Enum.split(12)
      more = if rest == [], do: "", else: ", and #{length(rest)} more (mix scope.status lists them)"
      names = " (" <> Enum.map_join(shown, ", ", &inspect/1) <> more <> ")"

      Mix.shell().info(
        "ElixirScope: instrumented #{length(instrumented)} module#{if length(instrumented) == 1, do: "", else: "s"}#{names}"
      )
    end

    if failed != [] do
      Mix.shell().error("ElixirScope: compiled without instrumentation: #{Enum.map_join(failed, ", ", &inspect/1)}")
    end
  end

  defp diagnostic(file, line, message, severity) do
    %Mix.Task.Compiler.Diagnostic{
      compiler_name: "ElixirScope",
      file: file,
      position: line,
      message: message,
      severity: severity
    }
  end

  defp safe_binary_to_term(bin) do
    :erlang.binary_to_term(bin)
  rescue
    _ -> :error
  end
end
