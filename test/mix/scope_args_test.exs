defmodule ElixirScope.Mix.ScopeArgsTest do
  @moduledoc false
  # The tasks' wrong-argument paths say what was expected, with an example.
  use ExUnit.Case, async: false

  test "mix scope.open, scope.analyze and scope.plan: usage with an example" do
    assert_raise Mix.Error, ~r/usage: mix scope.open FILE, e\.g\. mix scope.open _build\/demo.esrec/, fn ->
      Mix.Tasks.Scope.Open.run([])
    end

    assert_raise Mix.Error, ~r/e\.g\. mix scope.analyze MyApp.Worker.*unknown option\(s\) --colour/, fn ->
      Mix.Tasks.Scope.Analyze.run(["MyApp.Worker", "--colour"])
    end

    assert_raise Mix.Error, ~r/e\.g\. mix scope.analyze MyApp.Worker/, fn -> Mix.Tasks.Scope.Analyze.run([]) end

    assert_raise Mix.Error, ~r/unexpected argument\(s\) lib;.*e\.g\. mix scope.plan --strategy balanced/, fn ->
      Mix.Tasks.Scope.Plan.run(["lib"])
    end

    assert_raise Mix.Error, ~r/--strategy must be one of minimal, balanced, full, e\.g\. --strategy minimal; got: huge/, fn ->
      Mix.Tasks.Scope.Plan.run(["--strategy", "huge"])
    end
  end
end
