defmodule Mix.Tasks.Scope.Analyze do
  @shortdoc "Prints ElixirScope's static analysis of a module"
  @moduledoc """
  Prints the analysis of a module: functions (arity, kind, lines,
  complexity, recursion, side effects), OTP role, call graph and calls out.

      mix scope.analyze MyApp.Worker      # found in the project's sources (lib/), or loaded
      mix scope.analyze lib/my_app/worker.ex
  """
  use Mix.Task

  alias ElixirScope.AI.{CodeAnalyzer, Orchestrator}

  @impl true
  def run(argv) do
    {opts, args, invalid} = OptionParser.parse(argv, strict: [root: :string, path: :keep])

    target =
      case {args, invalid} do
        {[t], []} ->
          t

        _ ->
          Mix.raise(
            "usage: mix scope.analyze MODULE | FILE [--root DIR] [--path lib]..., " <>
              "e.g. mix scope.analyze MyApp.Worker or mix scope.analyze lib/my_app/worker.ex" <>
              if(invalid == [], do: "", else: "; unknown option(s) #{Enum.map_join(invalid, " ", &elem(&1, 0))}")
          )
      end

    Mix.Task.run("loadpaths")

    analyses =
      if String.ends_with?(target, ".ex") or String.ends_with?(target, ".exs") do
        case CodeAnalyzer.analyze_file(target) do
          {:ok, list} -> list
          {:error, msg} -> Mix.raise(msg)
        end
      else
        [find_module(target, opts)]
      end

    Enum.each(analyses, &Mix.shell().info(format(&1)))
  end

  defp find_module(name, opts) do
    module = Module.concat([name])
    paths = Keyword.get_values(opts, :path)
    paths = if paths == [], do: ["lib"], else: paths

    {:ok, analyses, _} =
      Orchestrator.analyze_project(root: opts[:root] || File.cwd!(), paths: paths)

    case Enum.find(analyses, &(&1.module == module)) do
      nil ->
        case CodeAnalyzer.analyze_module(module) do
          {:ok, a} ->
            a

          {:error, msg} ->
            Mix.raise("mix scope.analyze: #{name} not found in the sources (#{msg})")
        end

      a ->
        a
    end
  end

  @doc false
  @spec format(map) :: String.t()
  def format(a) do
    header = [
      "#{inspect(a.module)}#{if a.file, do: "  (#{a.file}:#{a.line})", else: ""}",
      "  OTP role: #{a.otp_role}   behaviours: #{inspect(a.behaviours)}",
      "  complexity: cyclomatic #{a.complexity.cyclomatic}, max nesting #{a.complexity.nesting_depth}, size #{a.complexity.size}",
      "  side effects: #{if a.side_effects == [], do: "none", else: Enum.join(a.side_effects, ", ")}",
      "  functions:"
    ]

    funs =
      Enum.map(a.functions, fn f ->
        flags =
          [f.callback? && "callback", f.recursive? && "recursive"]
          |> Enum.filter(& &1)
          |> Enum.join(", ")

        calls = Enum.map_join(f.local_calls, " ", fn {n, ar} -> "#{n}/#{ar}" end)

        "    #{f.kind} #{f.name}/#{f.arity}  lines #{f.line}-#{f.end_line}  clauses #{f.clauses}  " <>
          "cyclomatic #{f.complexity.cyclomatic} nesting #{f.complexity.nesting_depth} size #{f.complexity.size}" <>
          if(flags != "", do: "  [#{flags}]", else: "") <>
          if(f.side_effects != [], do: "  effects: #{Enum.join(f.side_effects, ",")}", else: "") <>
          if(calls != "", do: "  calls: #{calls}", else: "")
      end)

    out =
      case a.external_calls do
        [] ->
          []

        calls ->
          [
            "  calls out: " <>
              Enum.map_join(calls, ", ", fn {m, f, ar} -> "#{inspect(m)}.#{f}/#{ar}" end)
          ]
      end

    Enum.join(header ++ funs ++ out, "\n")
  end
end
