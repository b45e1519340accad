defmodule Mix.Tasks.Compile.ElixirScopeNif do
  @moduledoc "Builds priv/elixir_scope_nif.so with the project's Makefile (no elixir_make needed)."
  use Mix.Task.Compiler

  @impl true
  def run(_args) do
    case System.cmd("make", ["--no-print-directory", "nif"], stderr_to_stdout: true) do
      {out, 0} ->
        if String.contains?(out, "-o priv/"), do: Mix.shell().info(String.trim(out))
        {:ok, []}

      {out, status} ->
        Mix.shell().error(out)
        Mix.raise("ElixirScope: building the NIF failed (make exited with #{status}); see the compiler output above")
    end
  end
end

defmodule ElixirScope.MixProject do
  use Mix.Project

  def project do
    [
      app: :elixir_scope,
      version: "0.1.0",
      elixir: "~> 1.14",
      compilers: [:elixir_scope_nif] ++ Mix.compilers(),
      elixirc_paths: elixirc_paths(Mix.env()),
      start_permanent: Mix.env() == :prod,
      deps: [],
      aliases: aliases(),
      preferred_cli_env: ["test.gemini": :test, "test.vertex": :test, "test.live": :test],
      test_coverage: [summary: [threshold: 0]]
    ]
  end

  def application do
    [
      extra_applications: [:logger, :inets, :crypto, :public_key, :ssl, :runtime_tools],
      mod: {ElixirScope.Application, []}
    ]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]

  defp aliases do
    [
      "test.gemini": ["test --only gemini"],
      "test.vertex": ["test --only vertex"],
      "test.live": ["test --only live"]
    ]
  end
end
