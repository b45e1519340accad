defmodule Mix.Tasks.Scope.Test do
  @shortdoc "Runs the project's tests with ElixirScope recording; one recording per failing test"
  @moduledoc """
  Runs `mix test` with capture on, and saves a recording for each failing test.

      mix scope.test                       # all tests
      mix scope.test test/ledger_test.exs:42 --seed 0   # any mix test arguments
      mix scope.test --scope-dir tmp/recs  # where recordings go (default: _build/scope/tests)

  Before the tests run it starts ElixirScope (even in a library whose `application` starts
  nothing, `applications: []`), so a `test_helper.exs` needs no change. Each test's start and end
  are recorded as `:custom` events (`:test_started`, `:test_finished`, with the test's module,
  name, file and line). When a test fails, the events recorded while it ran are saved to
  `<dir>/<Module>.<test name>.esrec`, and the summary after the run says, for each failure, how
  to open its recording (IEx, cinema).

  Only the project's own modules (`elixirc_paths`) are instrumented, as in `mix compile`; test
  files are compiled plainly. The level comes from the project's ElixirScope configuration.
  """
  use Mix.Task

  @preferred_cli_env :test

  @impl true
  def run(args) do
    {dir, args} = take_dir(args, "_build/scope/tests")
    Mix.Task.run("app.start", args)
    {:ok, _} = Application.ensure_all_started(:elixir_scope)

    unless ElixirScope.running?() do
      case ElixirScope.start() do
        :ok -> :ok
        {:error, reason} -> Mix.raise("ElixirScope could not start: #{inspect(reason)}")
      end
    end

    Application.put_env(:elixir_scope, :test_recordings_dir, Path.expand(dir))
    Mix.Task.run("test", with_formatters(args))
  end

  defp take_dir(args, default) do
    case Enum.split_while(args, &(&1 != "--scope-dir")) do
      {before, ["--scope-dir", dir | rest]} -> {dir, before ++ rest}
      {_, ["--scope-dir"]} -> Mix.raise("--scope-dir needs a directory, e.g. mix scope.test --scope-dir tmp/recs")
      _ -> {default, args}
    end
  end

  # ours beside the user's formatters, or beside the default one
  defp with_formatters(args) do
    ours = ["--formatter", inspect(ElixirScope.TestRecorder)]
    if "--formatter" in args, do: args ++ ours, else: args ++ ours ++ ["--formatter", "ExUnit.CLIFormatter"]
  end
end
