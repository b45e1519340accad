defmodule ElixirScope.CompilerTest do
  # End to end: a generated Mix project with `compilers: [:elixir_scope] ++ Mix.compilers()` is
  # compiled and run in subprocesses. The tests share the project and run one after another; each
  # leaves the project as it found it.
  use ExUnit.Case, async: false

  alias ElixirScope.Test.CompilerProject, as: P

  @moduletag :integration
  @moduletag timeout: 300_000

  setup_all do
    dir = P.create!()
    {out, status} = P.mix(dir, ["compile"])
    assert status == 0, out
    %{dir: dir, first_compile: out}
  end

  defp compile!(dir, args \\ []) do
    {out, status} = P.mix(dir, ["compile" | args])
    assert status == 0, out
    out
  end

  defp instrumented(out) do
    case Regex.run(~r/ElixirScope: instrumented \d+ modules? \(([^)]*)\)/, out) do
      [_, files] -> files |> String.split(", ") |> Enum.sort()
      nil -> []
    end
  end

  # the count of the project's own files ("==> ct_app" separates it from the dependency's output)
  defp compiled_count(out) do
    own = out |> String.split("==> ct_app") |> List.last()

    case Regex.run(~r/Compiling (\d+) files? \(\.ex\)/, own) do
      [_, n] -> String.to_integer(n)
      nil -> 0
    end
  end

  @all_instrumented ~w(CtApp.Builder CtApp.Counter CtApp.Describe.CtApp.Shape CtApp.Generated CtApp.Generated.Answer CtApp.Generated.Parser CtApp.Math CtApp.Shape CtApp.User)

  test "the first compile instruments every module of the project but the excluded one and the protocol",
       %{first_compile: out} do
    assert instrumented(out) == @all_instrumented
    assert compiled_count(out) == 7
  end

  test "the instrumented project records calls, returns, state changes and the exception", %{
      dir: dir
    } do
      %{events: events, frame: frame} = P.run_script!(dir)

      by = fn kind, mod, fun ->
        Enum.filter(events, &(&1.kind == kind and &1.module == mod and &1.function == fun))
      end

      fact_calls = by.(:call, CtApp.Math, :fact)
      assert Enum.map(fact_calls, & &1.payload) == [[5], [4], [3], [2], [1], [0]]

      returns =
        Enum.filter(
          events,
          &(&1.kind == :return and &1.call_id in Enum.map(fact_calls, fn c -> c.call_id end))
        )

      assert 120 in Enum.map(returns, & &1.payload)

      assert [%{payload: [5]}] = by.(:call, CtApp.User, :area_of)

      # a protocol implementation (defimpl) defined in the project is instrumented too
      assert [%{payload: [%{__struct__: CtApp.Shape}]}] = by.(:call, CtApp.Describe.CtApp.Shape, :describe)

      assert Enum.any?(
               events,
               &(&1.kind == :return and &1.payload == %{__struct__: CtApp.Shape, w: 5, h: 5})
             )

      counter_calls =
        for %{kind: :call, module: CtApp.Counter} = c <- events, into: MapSet.new(), do: c.call_id

      states =
        for %{kind: :state, payload: {phase, st}} = e <- events,
            e.call_id in counter_calls,
            do: {phase, st}

      assert {:before, %{total: 10}} in states
      assert {:after, %{total: 15}} in states

      assert [boom] = by.(:call, CtApp.Math, :boom)
      assert [exc] = Enum.filter(events, &(&1.kind == :exception and &1.call_id == boom.call_id))
      assert {:error, %ArgumentError{message: "boom 42"}, _stack} = exc.payload

      # modules that code defined while the project compiled are instrumented too
      assert [_] = by.(:call, CtApp.Generated.Answer, :twice)
      assert [%{payload: ["a,b"]}] = by.(:call, CtApp.Generated.Parser, :parse)

      # excluded in config: compiled as it is, so nothing recorded
      refute Enum.any?(events, &(&1.module == CtApp.Plain))

      # stack traces of instrumented code point at the user's file and line
      assert {CtApp.Math, :boom, 1, info} = frame
      assert to_string(info[:file]) == "lib/ct_app/math.ex"
      assert info[:line] == 8
    end

  test "a second compile compiles nothing; touching a file without changing it neither", %{
    dir: dir
  } do
    compile!(dir)
    out = compile!(dir)
    assert instrumented(out) == []
    assert compiled_count(out) == 0

    File.touch!(Path.join(dir, "lib/ct_app/math.ex"))
    out = compile!(dir)
    assert instrumented(out) == [] and compiled_count(out) == 0, out
  end

  test "an edited file is the only one re-instrumented; dependents are recompiled as Elixir would",
       %{dir: dir} do
    try do
      edited =
        String.replace(
          P.original("lib/ct_app/math.ex"),
          "  def boom",
          "  def extra, do: :extra\n\n  def boom"
        )

      P.write!(dir, "lib/ct_app/math.ex", edited)
      out = compile!(dir)
      assert instrumented(out) == ["CtApp.Math"]
      assert compiled_count(out) == 1

      # the struct and macro provider: its compile-time dependent (user.ex) is recompiled too
      P.write!(
        dir,
        "lib/ct_app/shape.ex",
        String.replace(P.original("lib/ct_app/shape.ex"), "s.w * s.h", "s.h * s.w")
      )

      out = compile!(dir)
      assert "CtApp.Shape" in instrumented(out) and "CtApp.User" in instrumented(out)
      assert compiled_count(out) >= 2
    after
      P.write!(dir, "lib/ct_app/math.ex", P.original("lib/ct_app/math.ex"))
      P.write!(dir, "lib/ct_app/shape.ex", P.original("lib/ct_app/shape.ex"))
      compile!(dir)
    end
  end

  # Mix's own cache key carries the settings' fingerprint: a changed plan recompiles the project
  # (as a changed config does), and the next compile compiles nothing again.
  test "a plan file changes the level of one module; mix scope.status shows it", %{dir: dir} do
    plan =
      "%{version: 1, modules: %{CtApp.Math => %{level: :function_boundaries, functions: %{{:fact, 1} => %{level: :full}}}}}\n"

    try do
      P.write!(dir, ".elixir_scope/plan.exs", plan)
      out = compile!(dir)
      assert instrumented(out) == @all_instrumented
      assert compile!(dir) |> compiled_count() == 0

      {status_out, 0} = P.mix(dir, ["scope.status"])
      assert status_out =~ ~r/CtApp\.Math\s+:function_boundaries\s+lib\/ct_app\/math\.ex/
      assert status_out =~ ~r/fact\/1\s+:full/
      assert status_out =~ ~r/CtApp\.Plain\s+:none/
      assert status_out =~ ~r/CtApp\.Counter\s+:full/
    after
      File.rm_rf!(Path.join(dir, ".elixir_scope"))
      out = compile!(dir)
      assert instrumented(out) == @all_instrumented
    end
  end

  test "an invalid plan is a compile error that names the problem", %{dir: dir} do
    try do
      P.write!(dir, ".elixir_scope/plan.exs", "%{version: 1, default_level: :everything}\n")
      {out, status} = P.mix(dir, ["compile"])
      assert status != 0
      assert out =~ ".elixir_scope/plan.exs"
      assert out =~ ":everything"
    after
      File.rm_rf!(Path.join(dir, ".elixir_scope"))
    end
  end

  test "compile errors name the user's file and line", %{dir: dir} do
    broken = Path.join(dir, "lib/ct_app/broken.ex")

    try do
      P.write!(
        dir,
        "lib/ct_app/broken.ex",
        "defmodule CtApp.Broken do\n  def ok, do: 1\n  def bad, do: nope()\nend\n"
      )

      {out, status} = P.mix(dir, ["compile"])
      assert status != 0
      assert out =~ "lib/ct_app/broken.ex:3: undefined function nope/0"

      P.write!(
        dir,
        "lib/ct_app/broken.ex",
        "defmodule CtApp.Broken do\n  def ok, do: (1 +\nend\n"
      )

      {out, status} = P.mix(dir, ["compile"])
      assert status != 0
      assert out =~ "== Compilation error in file lib/ct_app/broken.ex =="
      assert out =~ ~r/\(SyntaxError\) lib\/ct_app\/broken\.ex:3/

      P.write!(
        dir,
        "lib/ct_app/broken.ex",
        "defmodule CtApp.Broken do\n  def ok(unused), do: 1\nend\n"
      )

      out = compile!(dir)
      assert out =~ ~r/variable "unused" is unused.*\n\s+lib\/ct_app\/broken\.ex:2/
    after
      File.rm(broken)
      compile!(dir)
    end
  end

  test "without the compiler in compilers: the modules are plain again; with it, instrumented again",
       %{dir: dir} do
    beam = Path.join(dir, "_build/dev/lib/ct_app/ebin/Elixir.CtApp.Math.beam")
    runtime? = fn -> ElixirScope.NIF in imported_modules(beam) end

    try do
      {out, 0} = P.mix(dir, ["compile"], [{"CT_PLAIN", "1"}])
      assert compiled_count(out) == 7
      refute runtime?.()

      {out, 0} =
        P.mix(dir, ["run", "-e", "IO.inspect(CtApp.Math.__info__(:compile)[:source])"], [
          {"CT_PLAIN", "1"}
        ])

      assert out =~ "lib/ct_app/math.ex"
    after
      out = compile!(dir)
      assert compiled_count(out) == 7
    end

    assert runtime?.()
  end

  test "mix clean removes what the compiler generated; --force rebuilds everything", %{dir: dir} do
    manifest = Path.join(dir, "_build/dev/lib/ct_app/.mix/compile.elixir_scope")
    assert File.regular?(manifest)
    {_, 0} = P.mix(dir, ["clean"])
    refute File.exists?(manifest)
    out = compile!(dir)
    assert instrumented(out) == @all_instrumented

    out = compile!(dir, ["--force"])
    assert instrumented(out) == @all_instrumented
    assert compiled_count(out) == 7
  end

  defp imported_modules(beam) do
    {:ok, {_, [imports: imports]}} = :beam_lib.chunks(String.to_charlist(beam), [:imports])
    imports |> Enum.map(&elem(&1, 0)) |> Enum.uniq()
  end
end
