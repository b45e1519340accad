defmodule Mix.Tasks.Scope.Status do
  @moduledoc """
  Prints which modules of the project the `:elixir_scope` compiler instrumented, and at which level.

      mix scope.status

  It reads the compiler's manifest (run `mix compile` first): every module compiled in the project,
  those that code defined at compile time included, with its level, the functions a plan sets to
  another level than the module's, and the modules compiled without instrumentation (and why).
  """
  use Mix.Task

  alias ElixirScope.Compiler.Settings

  @shortdoc "Shows the modules instrumented by ElixirScope and their levels"

  @impl true
  def run(_args) do
    Mix.Task.run("loadconfig")
    config = Mix.Project.config()
    modules = ElixirScope.Compiler.read_manifest(config)

    if :elixir_scope not in Mix.Tasks.Compile.compilers(config) do
      Mix.shell().info(
        "ElixirScope: :elixir_scope is not in this project's compilers: modules are compiled plainly."
      )
    end

    case Settings.load(config) do
      {:ok, s} ->
        Mix.shell().info("Default level: #{inspect(s.default_level)}; plan file: #{s.plan_file || "none"}")

      {:error, msg} ->
        Mix.shell().error("Configuration error: " <> msg)
    end

    if modules == %{} do
      Mix.shell().info("No modules recorded yet (run mix compile).")
    else
      print(config, modules)
    end
  end

  defp print(config, modules) do
    ebin = Mix.Project.compile_path(config)
    rows = Enum.sort_by(modules, fn {m, _} -> inspect(m) end)
    width = rows |> Enum.map(fn {m, _} -> String.length(inspect(m)) end) |> Enum.max(fn -> 6 end)
    line = fn a, b, c -> String.pad_trailing(a, width) <> "  " <> String.pad_trailing(b, 20) <> "  " <> c end
    Mix.shell().info(line.("Module", "Level", "Source"))

    for {mod, entry} <- rows do
      Mix.shell().info(line.(inspect(mod), inspect(entry.level), (entry.source || "?") <> note(entry.status)))

      for {{name, arity}, level} <- function_levels(ebin, mod, entry.level) do
        Mix.shell().info(line.("  #{name}/#{arity}", inspect(level), ""))
      end
    end

    counts =
      rows
      |> Enum.frequencies_by(fn {_, e} -> e.level end)
      |> Enum.map_join(", ", fn {l, n} -> "#{n} #{l}" end)

    Mix.shell().info("#{length(rows)} modules: #{counts}")
  end

  # The functions whose level differs from their module's, from the module's own record of how
  # it was instrumented (the :elixir_scope attribute of its .beam).
  defp function_levels(ebin, mod, module_level) do
    beam = Path.join(ebin, Atom.to_string(mod) <> ".beam") |> String.to_charlist()

    with {:ok, {_, [attributes: attrs]}} <- :beam_lib.chunks(beam, [:attributes]),
         [%{functions: fs}] <- Keyword.get(attrs, :elixir_scope) do
      for {f, level} <- Enum.sort(fs), level != module_level, do: {f, level}
    else
      _ -> []
    end
  end

  defp note({:failed, reason}), do: "  (compiled without instrumentation: #{reason})"
  defp note(_), do: ""
end
