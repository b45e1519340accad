defmodule ElixirScope.DAPEvalTest do
  @moduledoc "Evaluation over captured bindings: pure calls only, bounded in time and heap, one bad hit never stops the others."
  use ExUnit.Case, async: true

  alias ElixirScope.DAP.Eval

  test "evaluates over the bindings" do
    assert {:ok, 1, ""} = Eval.eval("total + 1", total: 0)
    assert {:ok, [2, 4], ""} = Eval.eval("history |> Stream.map(&(&1 * 2)) |> Enum.to_list()", %{history: [1, 2]})
    assert {:ok, 8050, ""} = Eval.eval(~s(state.balances["alice"]), state: %{balances: %{"alice" => 8050}})
  end

  test "refuses what could act outside the debugger's own evaluation" do
    for expr <- ["send(self(), :x)", "Process.exit(p, :kill)", "System.halt()", "IO.puts(:user, 1)", "&spawn/1",
                 "f.(1)", "apply(Enum, :sum, [[1]])", "String.duplicate(\"x\", 1_000_000_000)", "Kernel.send(p, 1)"] do
      assert {:error, msg} = Eval.eval(expr, p: self(), f: fn x -> x end), expr
      assert msg =~ "not allowed", "#{expr}: #{msg}"
    end
  end

  test "names: unbound ones are reported with what is bound; input never creates atoms" do
    assert {:error, "count is not bound here (bound: total)"} = Eval.eval("count + 1", total: 0)
    assert {:error, "zz_never_an_atom_zz is not defined here"} = Eval.eval("zz_never_an_atom_zz", [])
    assert {:ok, 3, ""} = Eval.eval("for x <- [1, 2], reduce: 0, do: (acc -> acc + x)", [])
  end

  test "time and heap are bounded; the next evaluations go on" do
    results = Eval.eval_many("Enum.reduce(1..n, [], &[&1 | &2]) |> length()", [[n: 3], [n: 100_000_000], [n: 2]], timeout: 30_000)
    assert [{:ok, 3, ""}, {:error, heap}, {:ok, 2, ""}] = results
    assert heap =~ "MiB"

    results = Eval.eval_many("Stream.repeatedly(fn -> x end) |> Enum.count()", [[x: 1], [x: 2]], timeout: 200)
    assert [{:error, t1}, {:error, t2}] = results
    assert t1 =~ "within 200 ms" and t2 =~ "within 200 ms"
  end

  test "log messages interpolate expressions" do
    assert Eval.interpolate("total {total}, {{braces}}, {zq_nope_zq}, {count}", total: 0) ==
             "total 0, {braces}, {zq_nope_zq: zq_nope_zq is not defined here}, {count: count is not bound here (bound: total)}"
  end
end
