defmodule ElixirScope.AST.SmokeTest do
  @moduledoc false
  # Every source file of this project, renamed and instrumented at :full (macros
  # included), must compile, with the same warnings as the plain copy, and every module
  # that defines a function or macro must come out instrumented.
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
    ExUnit.CaptureIO.capture_io(:stderr, fn ->
      send(self(), {:modules, Code.compile_quoted(ast, file)})
    end)
  end

  # (read from the .beam: some copies, like the NIF module's, cannot be loaded)
  defp instrumented?(beam) do
    {:ok, {_, [attributes: attrs]}} = :beam_lib.chunks(beam, [:attributes])
    Keyword.has_key?(attrs, :elixir_scope)
  end

  # a protocol, or a module with no function or macro of its own, is left plain
  defp instrumentable?(beam) do
    {:ok, {_, [exports: exports]}} = :beam_lib.chunks(beam, [:exports])
    names = for {name, _} <- exports, do: Atom.to_string(name)

    own =
      Enum.reject(
        names,
        &(&1 == "module_info" or (String.starts_with?(&1, "__") and String.ends_with?(&1, "__")))
      )

    "__protocol__" not in names and own != []
  end

  @tag timeout: 300_000
  test "the project's own modules compile instrumented, with the plain copy's warnings" do
    assert length(@files) > 20

    checked =
      for file <- @files, reduce: 0 do
        checked ->
          plain = compile(renamed(file, :ESSmokePlain), file)
          assert_received {:modules, _}

          {:ok, inst} =
            Transformer.transform_module(renamed(file, :ESSmokeFull), %{
              level: :full,
              macros: true
            })

          full = compile(inst, file)
          assert String.replace(full, "ESSmokeFull", "ESSmokePlain") == plain, file
          assert_received {:modules, modules}

          instrumentable = for {mod, beam} <- modules, instrumentable?(beam), do: {mod, beam}

          for {mod, beam} <- instrumentable do
            assert instrumented?(beam), "#{inspect(mod)} (#{file}) was not instrumented"
          end

          checked + length(instrumentable)
      end

    assert checked > 50
  end
end
