defmodule Mix.Tasks.Compile.ElixirScope do
  @moduledoc """
  Compiles the project with ElixirScope instrumentation.

  Add it before Elixir's compiler in your `mix.exs`:

      def project do
        [compilers: [:elixir_scope] ++ Mix.compilers(), deps: [{:elixir_scope, path: "..."}], ...]
      end

  What gets instrumented, and how much, comes from `config :elixir_scope, ast: [...]` and the plan file
  `.elixir_scope/plan.exs` (see `ElixirScope.Compiler.Settings`). How it works is described in
  `ElixirScope.Compiler`. Options: `--force` re-instruments and recompiles everything.
  `mix scope.status` shows the modules and their levels.
  """
  use Mix.Task.Compiler

  @recursive true

  @impl true
  def run(args) do
    {opts, _, _} = OptionParser.parse(args, switches: [force: :boolean])
    ElixirScope.Compiler.run(Mix.Project.config(), opts)
  end

  @impl true
  def manifests, do: [ElixirScope.Compiler.manifest_path(Mix.Project.config())]

  @impl true
  def clean, do: ElixirScope.Compiler.clean(Mix.Project.config())
end
