defmodule ElixirScope.Test.FidelityProject do
  @moduledoc """
  A throwaway Mix project made of the fidelity corpus (test/fidelity/corpus/*.ex, the corpus
  modules under their own names), built in subprocesses. The environment of each build picks
  it: `FID_SCOPE=1` adds the `:elixir_scope` compiler, `FID_LEVEL` sets
  `default_instrumentation_level` (default `:none`), `FID_EXCLUDE` the `exclude:` list (module
  name prefixes, comma-separated), `MIX_BUILD_PATH` where it is built. Used by
  the fidelity test (beam equality at `:none`) and by `make bench` (compile cost).
  """

  @corpus Path.expand("../fidelity/corpus", __DIR__)

  # in an order where every file comes after the files it needs at compile time
  @order ~w(combinator parsers json csv loops types options control define stage statem event_log protocols kitchen router spawns rpc)

  @doc "The corpus source files, in compile order (every file of the directory, checked)."
  @spec corpus_files() :: [String.t()]
  def corpus_files do
    files = for name <- @order, do: Path.join(@corpus, name <> ".ex")
    present = @corpus |> Path.join("*.ex") |> Path.wildcard()

    if Enum.sort(files) != Enum.sort(present),
      do:
        raise(
          "test/fidelity/corpus has files the compile order does not list (or the reverse): #{inspect(present -- files)}"
        )

    files
  end

  @doc """
  Writes the project into `dir` (its sources replaced, its builds kept). `dep: true` makes
  ElixirScope a path dependency (the repository); without it the builds must find ElixirScope
  on the code path (`env_for/2`'s `ERL_LIBS`).
  """
  @spec create!(String.t(), keyword()) :: String.t()
  def create!(dir, opts \\ []) do
    File.rm_rf!(Path.join(dir, "lib"))
    File.mkdir_p!(Path.join(dir, "lib"))
    File.mkdir_p!(Path.join(dir, "config"))
    Enum.each(corpus_files(), &File.cp!(&1, Path.join([dir, "lib", Path.basename(&1)])))
    File.write!(Path.join(dir, "mix.exs"), mix_exs(Keyword.get(opts, :dep, false)))

    File.write!(Path.join(dir, "config/config.exs"), ~S"""
    import Config
    level = String.to_atom(System.get_env("FID_LEVEL", "none"))
    exclude = System.get_env("FID_EXCLUDE", "") |> String.split(",", trim: true)
    config :elixir_scope, ast: [default_instrumentation_level: level, exclude: exclude]
    config :logger, level: :warning
    """)

    dir
  end

  @doc """
  The environment of a build: `:plain`, a level, or `{level, exclude: prefixes}` (those modules
  stay at `:none`), into `build_path`; `erl_libs` if no dependency.
  """
  @spec env_for(:plain | atom() | {atom(), [exclude: [String.t()]]}, String.t(), String.t() | nil) ::
          [{String.t(), String.t() | nil}]
  def env_for(variant, build_path, erl_libs \\ nil) do
    scope =
      case variant do
        :plain -> [{"FID_SCOPE", nil}]
        {level, exclude: prefixes} -> [{"FID_SCOPE", "1"}, {"FID_LEVEL", Atom.to_string(level)}, {"FID_EXCLUDE", Enum.join(prefixes, ",")}]
        level -> [{"FID_SCOPE", "1"}, {"FID_LEVEL", Atom.to_string(level)}, {"FID_EXCLUDE", nil}]
      end

    libs = if erl_libs, do: [{"ERL_LIBS", erl_libs}], else: []

    [
      {"MIX_ENV", "dev"},
      {"MIX_EXS", nil},
      {"MIX_TARGET", nil},
      {"MIX_BUILD_PATH", build_path},
      {"ERL_COMPILER_OPTIONS", nil}
    ] ++
      scope ++ libs
  end

  @doc "Runs `mix args` in the project; returns `{output, exit_status}`."
  @spec mix(String.t(), [String.t()], [{String.t(), String.t() | nil}]) ::
          {String.t(), non_neg_integer()}
  def mix(dir, args, env), do: System.cmd("mix", args, cd: dir, env: env, stderr_to_stdout: true)

  @doc "`%{module => md5}` (`:beam_lib.md5/1`) of every .beam under `build_path`."
  @spec md5s(String.t()) :: %{module() => binary()}
  def md5s(build_path) do
    for beam <- Path.wildcard(Path.join(build_path, "lib/fidelity_corpus/**/*.beam")),
        into: %{} do
      {:ok, {mod, md5}} = :beam_lib.md5(String.to_charlist(beam))
      {{Path.basename(Path.dirname(beam)), mod}, md5}
    end
  end

  defp mix_exs(dep?) do
    deps = if dep?, do: "[{:elixir_scope, path: #{inspect(File.cwd!())}}]", else: "[]"

    ~s"""
    defmodule FidelityCorpus.MixProject do
      use Mix.Project

      def project do
        [
          app: :fidelity_corpus,
          version: "0.1.0",
          elixir: "~> 1.14",
          compilers: if(System.get_env("FID_SCOPE"), do: [:elixir_scope] ++ Mix.compilers(), else: Mix.compilers()),
          deps: #{deps}
        ]
      end

      def application, do: [extra_applications: [:logger, :crypto]]
    end
    """
  end
end
