defmodule ElixirScope.AI.ComplexityAnalyzerTest do
  use ExUnit.Case, async: true

  alias ElixirScope.AI.ComplexityAnalyzer, as: C

  defp cc(src), do: C.calculate_complexity(Code.string_to_quoted!(src))

  test "straight-line code has cyclomatic 1 and depth 0" do
    assert %{cyclomatic: 1, nesting_depth: 0, size: size} = cc("a = 1\nb = a + 2")
    assert size > 3
  end

  test "decision points" do
    assert cc("if x, do: 1, else: 2").cyclomatic == 2
    assert cc("case x do\n 1 -> :a\n 2 -> :b\n _ -> :c\nend").cyclomatic == 3
    assert cc("cond do\n a -> 1\n b -> 2\n true -> 3\nend").cyclomatic == 3
    assert cc("a && b || c").cyclomatic == 3
    assert cc("with {:ok, a} <- f(), {:ok, b} <- g(a) do b else _ -> :e end").cyclomatic == 4
    assert cc("try do f() rescue _ -> 1 catch _ -> 2 end").cyclomatic == 3
    assert cc("fn 1 -> :a; x when x > 1 -> :b end").cyclomatic == 3
  end

  test "nesting depth" do
    assert cc("if a do\n case b do\n _ -> if c, do: 1\n end\nend").nesting_depth == 3
  end

  test "per function and total for a module" do
    r =
      cc("""
      defmodule M do
        def f(0), do: 0
        def f(n) when n > 0, do: if(n > 10, do: :big, else: f(n - 1))
        defp g(x), do: x
      end
      """)

    assert r.functions[{:f, 1}].cyclomatic == 4
    assert r.functions[{:g, 1}].cyclomatic == 1
    assert r.functions[{:f, 1}].nesting_depth == 1
    assert r.total.cyclomatic == 5
  end
end
