defmodule ElixirScope.Test.DemoRecording do
  @moduledoc """
  The demo recording (`make demo`'s `_build/demo.esrec`) made inside the test VM: the modules of
  `examples/demo/lib` are compiled here, instrumented at `:full` as the demo's config says
  (`Demo.Scenario` and `Demo.Application` plain), the demo's processes are started under a
  supervisor like `Demo.Application` starts them (without its `{ElixirScope, []}` child: the
  test's session records), and `Demo.Scenario.run/0` runs and saves the recording.

  Built once per test run (a few seconds) and shared: `path/0` returns the file.
  """

  alias ElixirScope.AST.Transformer

  @demo Path.expand("../../examples/demo/lib/demo", __DIR__)
  @plain ["scenario.ex", "application.ex"]
  @key {__MODULE__, :path}

  @doc "The demo application's directory."
  @spec demo_dir() :: String.t()
  def demo_dir, do: Path.expand("../../examples/demo", __DIR__)

  @doc "The path of the demo recording, made on first use."
  @spec path() :: String.t()
  def path do
    case :persistent_term.get(@key, nil) do
      nil ->
        path = build!()
        :persistent_term.put(@key, path)
        path

      path ->
        path
    end
  end

  defp build! do
    path = Path.join(System.tmp_dir!(), "elixir_scope_demo_#{System.unique_integer([:positive])}.esrec")
    level = Logger.level()
    compile!()
    ElixirScope.stop()
    :ok = ElixirScope.start()
    {:ok, sup} = Supervisor.start_link(children(), strategy: :one_for_one, max_restarts: 10)
    previous = System.get_env("ELIXIR_SCOPE_DEMO_RECORDING")
    System.put_env("ELIXIR_SCOPE_DEMO_RECORDING", path)

    try do
      ExUnit.CaptureIO.capture_io(fn -> apply(Demo.Scenario, :run, []) end)
      path
    after
      if previous, do: System.put_env("ELIXIR_SCOPE_DEMO_RECORDING", previous), else: System.delete_env("ELIXIR_SCOPE_DEMO_RECORDING")
      # the scenario silences the logger for its report
      Logger.configure(level: level)
      Supervisor.stop(sup)
      ElixirScope.stop()
    end
  end

  defp children do
    [
      {Demo.Ledger, name: Demo.Ledger},
      {Demo.RiskScorer, name: Demo.RiskScorer},
      {Demo.Courier, name: Demo.Courier},
      {Task.Supervisor, name: Demo.TaskSupervisor}
    ]
  end

  # Demo.Posting first: the others use its struct and macro at compile time
  defp compile! do
    unless Code.ensure_loaded?(Demo.Ledger) do
      files = @demo |> File.ls!() |> Enum.filter(&String.ends_with?(&1, ".ex")) |> Enum.sort_by(&{&1 != "posting.ex", &1})

      # transform_module/2 installs the parse transform through ERL_COMPILER_OPTIONS, which
      # child processes inherit (the compiler tests' `mix` runs): put it back once compiled
      options = System.get_env("ERL_COMPILER_OPTIONS")

      ExUnit.CaptureIO.capture_io(:stderr, fn ->
        for f <- files do
          # named as `mix compile` in examples/demo names them (stacktraces, the recording)
          file = "lib/demo/" <> f
          ast = @demo |> Path.join(f) |> File.read!() |> Code.string_to_quoted!(file: file)
          ast = if f in @plain, do: ast, else: elem(Transformer.transform_module(ast, :full), 1)
          Code.compile_quoted(ast, file)
        end
      end)

      if options, do: System.put_env("ERL_COMPILER_OPTIONS", options), else: System.delete_env("ERL_COMPILER_OPTIONS")
    end

    :ok
  end
end
