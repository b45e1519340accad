defmodule Mix.Tasks.Scope.Plan do
  @shortdoc "Plans ElixirScope instrumentation for the project and writes .elixir_scope/plan.exs"
  @moduledoc """
  Analyses the project's sources, plans the instrumentation and writes the
  plan file that the `:elixir_scope` compiler reads.

      mix scope.plan [--strategy minimal|balanced|full] [--provider gemini|vertex|openai_compatible|mock|heuristic]
                     [--path lib]... [--root DIR] [--output FILE] [--dry-run]
                     [--base-url URL] [--model NAME] [--timeout MS]

  Provider settings come from `config :elixir_scope, :ai` and the environment
  (GOOGLE_API_KEY, VERTEX_JSON_FILE, OPENAI_API_KEY, OPENAI_BASE_URL);
  `--base-url`, `--model` and `--timeout` (the analysis_timeout) override them.
  Keys are never taken from the command line.

  The strategy defaults to `config :elixir_scope, :ai, strategy: ...`, else `:balanced`.
  The plan is printed as a table (module, function, level, reason). When the
  LLM provider fails or answers with an invalid plan, the heuristic plan is
  used and a warning says why. Works before the project is compiled.
  """
  use Mix.Task

  alias ElixirScope.AI.{InstrumentationPlanner, Orchestrator}
  alias ElixirScope.AI.LLM.Provider

  @switches [
    strategy: :string,
    provider: :string,
    path: :keep,
    root: :string,
    output: :string,
    dry_run: :boolean,
    base_url: :string,
    model: :string,
    timeout: :integer
  ]

  @impl true
  def run(argv) do
    {opts, rest, invalid} = OptionParser.parse(argv, strict: @switches)

    if invalid != [] or rest != [] do
      unexpected = Enum.map(invalid, &elem(&1, 0)) ++ rest

      Mix.raise(
        "mix scope.plan: unexpected argument(s) #{Enum.join(unexpected, " ")}; it takes options only, " <>
          "e.g. mix scope.plan --strategy balanced --provider heuristic --dry-run (see mix help scope.plan)"
      )
    end

    Mix.Task.run("loadpaths")
    Mix.Task.run("app.config")

    run_opts =
      [
        strategy:
          parse_choice(
            opts[:strategy] || "balanced",
            InstrumentationPlanner.strategies(),
            "--strategy"
          ),
        root: opts[:root] || File.cwd!(),
        paths: Keyword.get_values(opts, :path) |> default(["lib"]),
        dry_run: opts[:dry_run] || false
      ]
      |> put_opt(
        :provider,
        opts[:provider] && parse_choice(opts[:provider], Provider.names(), "--provider")
      )
      |> put_opt(:output, opts[:output])
      |> put_opt(:base_url, opts[:base_url])
      |> put_opt(:model, opts[:model])
      |> put_opt(:analysis_timeout, opts[:timeout])

    case Orchestrator.run(run_opts) do
      {:ok, %{plan: plan, warnings: warnings, path: path}} ->
        Enum.each(warnings, &Mix.shell().error("warning: " <> &1))
        Mix.shell().info(Orchestrator.table(plan))

        Mix.shell().info(
          "\n#{map_size(plan.modules)} modules planned (strategy #{plan.strategy}, provider #{plan.provider})" <>
            if(run_opts[:dry_run],
              do: "; dry run, nothing written",
              else: "; written to #{Path.relative_to_cwd(path)}"
            )
        )

      {:error, msg} ->
        Mix.raise("mix scope.plan: " <> msg)
    end
  end

  defp default([], d), do: d
  defp default(v, _), do: v

  defp put_opt(kw, _k, nil), do: kw
  defp put_opt(kw, k, v), do: Keyword.put(kw, k, v)

  defp parse_choice(text, allowed, flag) do
    case Enum.find(allowed, &(Atom.to_string(&1) == text)) do
      nil ->
        Mix.raise(
          "mix scope.plan: #{flag} must be one of #{Enum.map_join(allowed, ", ", &Atom.to_string/1)}, " <>
            "e.g. #{flag} #{hd(allowed)}; got: #{text}"
        )

      atom ->
        atom
    end
  end
end
