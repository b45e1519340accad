defmodule Mix.Tasks.Scope.Status do
  @moduledoc """
  Prints which modules of the project the `:elixir_scope` compiler instrumented, and at which level.

      mix scope.status

  It reads the compiler's manifest (run `mix compile` first) and says where the levels come from
  (config defaults, the plan file).
  """
  use Mix.Task

  alias ElixirScope.Compiler.Settings

  @shortdoc "Shows the modules instrumented by ElixirScope and their levels"

  @impl true
  def run(_args) do
    Mix.Task.run("loadconfig")
    config = Mix.Project.config()
    %{files: files} = ElixirScope.Compiler.read_manifest(config)

    if :elixir_scope not in Mix.Tasks.Compile.compilers(config) do
      Mix.shell().info(
        "ElixirScope: :elixir_scope is not in this project's compilers: modules are compiled plainly."
      )
    end

    case Settings.load(config) do
      {:ok, s} ->
        Mix.shell().info(
          "Default level: #{inspect(s.default_level)}; plan file: #{s.plan_file || "none"}"
        )

      {:error, msg} ->
        Mix.shell().error("Configuration error: " <> msg)
    end

    if files == %{} do
      Mix.shell().info("No instrumented modules recorded yet (run mix compile).")
    else
      rows =
        for {src, %{modules: mods}} <- files,
            {mod, level, st} <- mods,
            do: {inspect(mod), level, src <> note(st)}

      width = rows |> Enum.map(fn {m, _, _} -> String.length(m) end) |> Enum.max(fn -> 6 end)

      Mix.shell().info(
        String.pad_trailing("Module", width) <>
          "  " <> String.pad_trailing("Level", 20) <> "  Source"
      )

      for {mod, level, src} <- Enum.sort(rows) do
        Mix.shell().info(
          String.pad_trailing(mod, width) <>
            "  " <> String.pad_trailing(inspect(level), 20) <> "  " <> src
        )
      end

      counts =
        rows
        |> Enum.frequencies_by(&elem(&1, 1))
        |> Enum.map_join(", ", fn {l, n} -> "#{n} #{l}" end)

      Mix.shell().info("#{length(rows)} modules: #{counts}")
    end
  end

  defp note({:failed, reason}), do: "  (compiled without instrumentation: #{reason})"
  defp note(_), do: ""
end
