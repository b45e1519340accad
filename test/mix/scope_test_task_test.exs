defmodule Mix.Tasks.Scope.TestTaskTest do
  # End to end: a library (its application starts nothing, like many hex packages) compiled with
  # the :elixir_scope compiler runs its own tests through `mix scope.test`; the failing test gets
  # a recording that holds the failing call, and the compile prints no xref warning about
  # ElixirScope. Runs `mix` in a subprocess.
  use ExUnit.Case, async: false

  alias ElixirScope.Test.CompilerProject, as: P

  @moduletag :integration
  @moduletag timeout: 300_000

  @files %{
    "mix.exs" => ~S"""
    defmodule Lib.MixProject do
      use Mix.Project

      def project do
        [
          app: :st_lib,
          version: "0.1.0",
          elixir: "~> 1.14",
          compilers: [:elixir_scope] ++ Mix.compilers(),
          deps: [{:elixir_scope, path: System.fetch_env!("ES_REPO")}]
        ]
      end

      def application, do: [applications: []]
    end
    """,
    "config/config.exs" => ~S"""
    import Config
    config :elixir_scope, ast: [default_instrumentation_level: :full]
    config :logger, level: :warning
    """,
    "lib/st_lib.ex" => ~S"""
    defmodule StLib do
      def mean(list), do: Enum.sum(list) / length(list)
      def double(x), do: x * 2
    end
    """,
    "test/test_helper.exs" => "ExUnit.start()\n",
    "test/st_lib_test.exs" => ~S"""
    defmodule StLibTest do
      use ExUnit.Case
      test "double", do: assert(StLib.double(2) == 4)
      test "mean of nothing", do: assert(StLib.mean([]) == 0)
    end
    """
  }

  setup_all do
    dir = Path.join(Mix.Project.build_path() |> Path.dirname(), "scope_test_project")
    File.rm_rf!(Path.join(dir, "lib"))
    File.rm_rf!(Path.join(dir, "_build/scope"))
    for {path, content} <- @files, do: write(dir, path, content)
    %{dir: dir}
  end

  defp write(dir, path, content) do
    full = Path.join(dir, path)
    File.mkdir_p!(Path.dirname(full))
    File.write!(full, content)
  end

  test "a failing test gets a recording with its failing call, and says how to open it", %{dir: dir} do
    {out, status} = P.mix(dir, ["scope.test", "--seed", "0"], [{"ES_REPO", File.cwd!()}, {"MIX_ENV", "test"}])
    assert status != 0, out
    assert out =~ "2 tests, 1 failure"
    refute out =~ "does not depend on :elixir_scope", out

    rec = Path.join(dir, "_build/scope/tests/StLibTest.test_mean_of_nothing.esrec")
    assert out =~ "iex -S mix scope.open _build/scope/tests/StLibTest.test_mean_of_nothing.esrec"
    assert out =~ "mix scope.cinema _build/scope/tests/StLibTest.test_mean_of_nothing.esrec"
    refute File.exists?(Path.join(dir, "_build/scope/tests/StLibTest.test_double.esrec"))

    {:ok, r} = ElixirScope.Recording.load(rec)

    try do
      events = ElixirScope.Query.events(source: r)
      assert [call] = Enum.filter(events, &(&1.kind == :call and &1.function == :mean))
      assert call.payload == [[]]

      assert Enum.any?(events, &(&1.kind == :exception and &1.call_id == call.call_id))
      assert Enum.any?(events, &match?(%{kind: :custom, payload: {:test_started, %{name: "test mean of nothing"}}}, &1))
      refute Enum.any?(events, &(&1.kind == :call and &1.function == :double))
    after
      ElixirScope.Recording.close(r)
    end
  end
end
