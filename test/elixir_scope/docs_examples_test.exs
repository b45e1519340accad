defmodule ElixirScope.DocsExamplesTest do
  @moduledoc false
  # Every `iex>` example of README.md and docs/*.md, run in order (one binding per file) against
  # the demo recording made in this test VM (ElixirScope.Test.DemoRecording). An example fails the
  # test when it raises, or when it prints an `error:`/`hint:` line the docs do not show under it.
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO

  alias ElixirScope.Query.Source
  alias ElixirScope.Recording
  alias ElixirScope.Test.DemoRecording

  @root Path.expand("../..", __DIR__)
  @moduletag timeout: 180_000

  setup_all do
    {:ok, rec} = Recording.load(DemoRecording.path())
    tmp = Path.join(System.tmp_dir!(), "es_docs_#{System.unique_integer([:positive])}")
    File.mkdir_p!(tmp)

    on_exit(fn ->
      Recording.close(rec)
      Source.put_default(:live)
      File.rm_rf(tmp)
    end)

    %{tmp: tmp}
  end

  @doc false
  # [{line_no, code, expected_output_lines}] of the fenced blocks of a Markdown file
  def examples(text) do
    {examples, _in_block} =
      text
      |> String.split("\n")
      |> Enum.with_index(1)
      |> Enum.reduce({[], false}, fn {line, no}, {acc, in_block} ->
        trimmed = String.trim_leading(line)

        cond do
          String.starts_with?(trimmed, "```") -> {acc, not in_block}
          not in_block -> {acc, in_block}
          String.starts_with?(trimmed, "iex> ") -> {[{no, String.replace_prefix(trimmed, "iex> ", ""), []} | acc], in_block}
          String.starts_with?(trimmed, "...> ") and acc != [] -> {continue(acc, trimmed), in_block}
          acc != [] and in_block -> {output(acc, trimmed), in_block}
          true -> {acc, in_block}
        end
      end)

    examples |> Enum.reverse() |> Enum.map(fn {no, code, out} -> {no, code, Enum.reverse(out)} end)
  end

  defp continue([{no, code, out} | rest], line), do: [{no, code <> "\n" <> String.replace_prefix(line, "...> ", ""), out} | rest]
  defp output([{no, code, out} | rest], line), do: [{no, code, [line | out]} | rest]

  defp doc_files, do: [Path.join(@root, "README.md") | Path.wildcard(Path.join(@root, "docs/*.md"))]

  test "the extractor finds the examples, their continuation lines and what the docs show under them" do
    md = "text\n```elixir\niex> a = 1\n...>   + 1\n2\niex> b\n```\niex> not_in_a_block\n"
    assert [{3, "a = 1\n  + 1", ["2"]}, {6, "b", []}] = examples(md)
  end

  test "every IEx example in README.md and docs/*.md runs against the demo recording", %{tmp: tmp} do
    per_file = for f <- doc_files(), exs = examples(File.read!(f)), exs != [], do: {f, exs}
    assert length(per_file) >= 2, "README.md and docs/time_travel.md have IEx examples"
    assert Enum.sum(Enum.map(per_file, fn {_, exs} -> length(exs) end)) >= 25

    Process.put(:elixir_scope_colors, false)

    failures =
      File.cd!(tmp, fn ->
        Enum.flat_map(per_file, fn {file, exs} ->
          env = __ENV__
          {_binding, _env, failures} = Enum.reduce(exs, {[], env, []}, &run(&1, &2, Path.relative_to(file, @root)))
          failures
        end)
      end)

    assert failures == [], Enum.join(Enum.reverse(failures), "\n\n")
  end

  defp run({no, code, shown}, {binding, env, failures}, file) do
    where = "#{file}:#{no}: iex> #{code}"

    try do
      quoted = Code.string_to_quoted!(code, file: file, line: no)
      parent = self()

      out =
        capture_io(fn ->
          {_value, binding, env} = Code.eval_quoted_with_env(quoted, binding, env)
          send(parent, {:evaluated, binding, env})
        end)

      receive do
        {:evaluated, binding, env} -> {binding, env, check(out, shown, where) ++ failures}
      end
    rescue
      e -> {binding, env, ["#{where}\n  raised #{Exception.format(:error, e, __STACKTRACE__) |> String.slice(0, 800)}" | failures]}
    end
  end

  # an example whose docs show an error or a hint must print that; any other must print none
  defp check(out, [first | _], where) when binary_part(first, 0, 5) in ["error", "hint:"] do
    if String.contains?(out, first), do: [], else: ["#{where}\n  the docs show #{inspect(first)}, it printed:\n#{out}"]
  end

  defp check(out, _shown, where) do
    case Regex.run(~r/^(error|hint): .*$/m, out) do
      nil -> []
      [line | _] -> ["#{where}\n  printed #{inspect(line)}"]
    end
  end
end
