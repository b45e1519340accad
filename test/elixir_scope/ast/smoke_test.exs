defmodule ElixirScope.AST.SmokeTest do
  @moduledoc false
  # Every source file of this project, renamed and instrumented at :full (macros
  # included), must compile, with the same warnings as the plain copy.
  use ExUnit.Case, async: false

  alias ElixirScope.AST.Transformer

  @files Path.wildcard(Path.expand("../../../lib/**/*.ex", __DIR__))

  defp renamed(file, prefix) do
    file
    |> File.read!()
    |> Code.string_to_quoted!(file: file)
    |> Macro.prewalk(fn
      {:defmodule, m, [{:__aliases__, am, segs}, kw]} ->
        {:defmodule, m, [{:__aliases__, am, [prefix | segs]}, kw]}

      other ->
        other
    end)
  end

  defp compile(ast, file) do
    ExUnit.CaptureIO.capture_io(:stderr, fn -> Code.compile_quoted(ast, file) end)
  end

  @tag timeout: 300_000
  test "the project's own modules compile instrumented, with the plain copy's warnings" do
    assert length(@files) > 20

    for file <- @files do
      plain = compile(renamed(file, :ESSmokePlain), file)

      {:ok, inst} =
        Transformer.transform_module(renamed(file, :ESSmokeFull), %{level: :full, macros: true})

      full = compile(inst, file)
      assert String.replace(full, "ESSmokeFull", "ESSmokePlain") == plain, file
    end
  end
end
