defmodule ElixirScope.Compiler do
  @moduledoc """
  The work of the `:elixir_scope` Mix compiler (`Mix.Tasks.Compile.ElixirScope`).

  How it compiles: for every source file of the project's `elixirc_paths` it parses the file,
  instruments each module according to its plan (`ElixirScope.Compiler.Instrumenter`), and writes
  into `_build/ENV/lib/APP/elixir_scope/src/` the instrumented forms (`<file>.etf`) and a one-line
  wrapper `<file>` that compiles them (`ElixirScope.Compiler.Loader.eval!/2`). It then points the
  project's `elixirc_paths` at that directory for the rest of the build, so Mix's own `:elixir`
  compiler, which runs next, compiles the wrappers instead of the user's files: Kernel.ParallelCompiler
  resolves the compile-time dependencies between modules (structs, macros, protocols) and Mix's
  manifest recompiles dependents, exactly as without ElixirScope. A wrapper is rewritten only when
  its instrumented forms change, so an unchanged project compiles nothing.

  Its own manifest (`compile.elixir_scope`) records, per source file, the digest of the source, the
  modules with their levels and a fingerprint of the plans used, so an edited file, a changed plan
  or a changed level re-instruments only the files it affects.

  Removing `:elixir_scope` from `compilers:` leaves `elixirc_paths` as the user wrote it; Mix's
  compiler then sees the wrappers as removed sources and compiles the user's files plainly.
  """

  alias ElixirScope.Compiler.{Instrumenter, Loader, Settings}

  @manifest "compile.elixir_scope"
  @manifest_vsn 2

  @type status :: :ok | :noop | :error

  @doc "The manifest file of the compiler for a project config."
  @spec manifest_path(keyword()) :: String.t()
  def manifest_path(config), do: Path.join(Mix.Project.manifest_path(config), @manifest)

  @doc "The directory of generated wrappers and instrumented forms."
  @spec output_root(keyword()) :: String.t()
  def output_root(config), do: Path.join(Mix.Project.app_path(config), "elixir_scope")

  @doc "Removes what the compiler generated (called by `mix clean`)."
  @spec clean(keyword()) :: :ok
  def clean(config) do
    File.rm_rf!(output_root(config))
    File.rm(manifest_path(config))
    :ok
  end

  @doc "Reads the manifest: `%{source => entry}` (empty when absent or of another version)."
  @spec read_manifest(keyword()) :: %{header: term(), files: map()}
  def read_manifest(config) do
    with {:ok, bin} <- File.read(manifest_path(config)),
         {@manifest_vsn, header, files} <- safe_binary_to_term(bin) do
      %{header: header, files: files}
    else
      _ -> %{header: nil, files: %{}}
    end
  end

  @doc """
  Instruments the stale sources of the project and redirects Mix's Elixir compiler to the wrappers.
  `opts`: `force: true` re-instruments everything.
  """
  @spec run(keyword(), keyword()) :: {status(), [Mix.Task.Compiler.Diagnostic.t()]}
  def run(config, opts) do
    case Settings.load(config) do
      {:ok, settings} ->
        do_run(config, settings, opts)

      {:error, message} ->
        Mix.shell().error("** (ElixirScope) " <> message)
        {:error, [diagnostic(Path.absname("mix.exs"), 0, message, :error)]}
    end
  end

  defp do_run(config, settings, opts) do
    paths = config[:elixir_scope_elixirc_paths] || config[:elixirc_paths] || ["lib"]

    sources =
      paths |> Mix.Utils.extract_files([:ex]) |> Enum.map(&Path.relative_to_cwd/1) |> Enum.sort()

    root = output_root(config)
    header = header(settings)
    old = read_manifest(config)
    old_files = if old.header == header and !opts[:force], do: old.files, else: %{}
    preload(settings.transformer)

    results =
      sources
      |> Task.async_stream(&process(&1, old_files[&1], settings, header, root),
        timeout: :infinity,
        ordered: true
      )
      |> Enum.map(fn {:ok, r} -> r end)

    removed = Map.keys(old.files) -- sources
    Enum.each(removed, fn src -> remove_outputs(root, src) end)

    errors = for {:error, src, diag} <- results, do: {src, diag}

    done =
      for {status, src, entry, _warns} <- results,
          status in [:fresh, :kept],
          into: %{},
          do: {src, entry}

    warnings =
      Enum.flat_map(results, fn
        {_, _, _, w} -> w
        _ -> []
      end)

    instrumented = for {:fresh, src, _, _} <- results, do: src

    redirect_elixir_compiler(paths, root, sources)
    write_manifest(config, header, done)
    report(instrumented)

    cond do
      errors != [] -> {:error, warnings ++ Enum.flat_map(errors, &elem(&1, 1))}
      instrumented != [] or removed != [] -> {:ok, warnings}
      true -> {:noop, warnings}
    end
  end

  defp process(src, old_entry, settings, header, root) do
    content = File.read!(src)
    digest = :erlang.md5(content)

    fresh? =
      is_map(old_entry) and old_entry.source_digest == digest and
        old_entry.fingerprint == fingerprint(digest, old_entry.modules, settings, header) and
        File.regular?(wrapper_path(root, src)) and File.regular?(etf_path(root, src))

    if fresh? do
      {:kept, src, old_entry, []}
    else
      instrument(src, content, digest, settings, header, root)
    end
  end

  defp instrument(src, content, digest, settings, header, root) do
    abs = Path.absname(src)

    case Instrumenter.instrument(abs, content, settings) do
      {:ok, %{forms: forms, modules: modules, warnings: warnings}} ->
        etf = Loader.encode(abs, forms)
        write_if_changed(etf_path(root, src), etf)
        write_if_changed(wrapper_path(root, src), wrapper_source(src, etf))

        entry = %{
          source_digest: digest,
          modules: modules,
          fingerprint: fingerprint(digest, modules, settings, header)
        }

        diags = Enum.map(warnings, fn {line, msg} -> print_problem(abs, line, msg, :warning) end)
        {:fresh, src, entry, diags}

      {:error, exception} ->
        IO.puts(
          :stderr,
          "\n== Compilation error in file #{src} ==\n" <> Exception.format(:error, exception, [])
        )

        line = Map.get(exception, :line) || 0
        {:error, src, [diagnostic(abs, line, Exception.message(exception), :error)]}
    end
  end

  # Loads the transformer (and the NIF it calls) once before the files are instrumented in
  # parallel: concurrent first calls into a module whose on_load fails can block forever.
  defp preload(transformer) do
    for mod <- [ElixirScope.NIF, transformer], do: Code.ensure_loaded(mod)
    :ok
  end

  defp fingerprint(digest, modules, settings, header) do
    plans = for {mod, _level, _status} <- modules, do: {mod, Settings.module_plan(settings, mod)}
    :erlang.md5(:erlang.term_to_binary({digest, plans, header}))
  end

  # What makes every instrumented file stale when it changes: the transformer and this compiler.
  defp header(settings) do
    mod = settings.transformer
    md5 = if Code.ensure_loaded?(mod), do: mod.module_info(:md5), else: nil
    nif = Path.join(:code.priv_dir(:elixir_scope) |> to_string(), "elixir_scope_nif.so")

    nif_stat =
      case File.stat(nif) do
        {:ok, st} -> {st.size, st.mtime}
        _ -> nil
      end

    {mod, md5, Instrumenter.module_info(:md5), Loader.module_info(:md5), nif_stat}
  end

  defp wrapper_source(src, etf) do
    """
    # Generated by ElixirScope from #{src} (instrumented forms: #{Path.basename(src)}.etf). Do not edit.
    # forms digest: #{Base.encode16(:erlang.md5(etf), case: :lower)}
    ElixirScope.Compiler.Loader.eval!(__ENV__, #{inspect(Path.basename(src) <> ".etf")})
    """
  end

  defp redirect_elixir_compiler(paths, root, sources) do
    src_root = Path.join(root, "src")
    File.mkdir_p!(src_root)

    rel_root =
      if Path.type(Path.relative_to_cwd(src_root)) == :relative,
        do: Path.relative_to_cwd(src_root),
        else: src_root

    Mix.ProjectStack.merge_config(elixirc_paths: [rel_root], elixir_scope_elixirc_paths: paths)

    to_user =
      Map.new(sources, fn src -> {Path.absname(wrapper_path(root, src)), Path.absname(src)} end)

    Mix.Task.Compiler.after_compiler(:elixir, fn {status, diagnostics} ->
      {status, Enum.map(diagnostics, fn d -> %{d | file: Map.get(to_user, d.file, d.file)} end)}
    end)

    :ok
  end

  @doc false
  @spec wrapper_path(String.t(), String.t()) :: String.t()
  def wrapper_path(root, src), do: Path.join([root, "src", relative_key(src)])

  defp etf_path(root, src), do: wrapper_path(root, src) <> ".etf"

  defp relative_key(src) do
    case Path.type(src) do
      :relative -> src
      _ -> Path.join("__absolute__", Path.relative(src))
    end
  end

  defp remove_outputs(root, src) do
    File.rm(wrapper_path(root, src))
    File.rm(etf_path(root, src))
  end

  defp write_if_changed(path, content) do
    case File.read(path) do
      {:ok, ^content} ->
        :ok

      _ ->
        File.mkdir_p!(Path.dirname(path))
        File.write!(path, content)
    end
  end

  defp write_manifest(config, header, files) do
    path = manifest_path(config)
    File.mkdir_p!(Path.dirname(path))
    File.write!(path, :erlang.term_to_binary({@manifest_vsn, header, files}))
  end

  defp report([]), do: :ok

  defp report(files) do
    names = if length(files) <= 8, do: " (" <> Enum.join(files, ", ") <> ")", else: ""

    Mix.shell().info(
      "ElixirScope: instrumented #{length(files)} file#{if length(files) == 1, do: "", else: "s"}#{names}"
    )
  end

  defp print_problem(file, line, message, severity) do
    IO.puts(:stderr, "#{severity}: #{message}\n  #{Path.relative_to_cwd(file)}:#{line}\n")
    diagnostic(file, line, message, severity)
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
