defmodule ElixirScope.Bench.AST do
  @moduledoc false
  # transform_5k_lines_ns: the C transformer on a generated 5,000-line module at :full
  # (beside an identity Macro.prewalk/2 over the same AST), and
  # instrumented_call_overhead_ns: a trivial function instrumented at
  # :function_boundaries minus the plain call (capture on; also shown with capture off).
  import ElixirScope.Bench
  alias ElixirScope.AST.Transformer

  @doc "A generated module source of about `lines` lines."
  def source(lines) do
    funs =
      Stream.iterate(0, &(&1 + 1))
      |> Stream.map(&fun_source/1)
      |> Enum.reduce_while({[], 4}, fn {src, n}, {acc, total} ->
        if total + n > lines - 1,
          do: {:halt, {acc, total}},
          else: {:cont, {[src | acc], total + n}}
      end)
      |> elem(0)
      |> Enum.reverse()

    "defmodule ElixirScope.Bench.AST.Generated do\n  @moduledoc false\n  def helper(a, b), do: a + b\n" <>
      Enum.join(funs) <> "end\n"
  end

  defp fun_source(i) do
    src =
      case rem(i, 4) do
        0 ->
          """
            def f#{i}(x, y) when is_integer(x) do
              a = x + y
              b = a * 2
              c = helper(a, b)
              {a, b, c}
            end

          """

        1 ->
          """
            def f#{i}(list, acc \\\\ 0)
            def f#{i}([], acc), do: acc
            def f#{i}([h | t], acc), do: f#{i}(t, acc + h)

          """

        2 ->
          """
            def f#{i}(m) do
              case Map.fetch(m, :k) do
                {:ok, v} when v > 10 -> {:big, v}
                {:ok, v} -> if v < 0, do: :neg, else: {:small, v}
                :error -> :none
              end
            end

          """

        3 ->
          """
            defp helper#{i}(x) do
              y = x |> Integer.to_string() |> String.length()
              z = Enum.reduce(1..y, 0, fn k, acc -> acc + k end)
              z + helper(x, y)
            end

          """
      end

    {src, src |> String.split("\n") |> length() |> Kernel.-(1)}
  end

  def run do
    ElixirScope.stop()
    src = source(5000)
    ast = Code.string_to_quoted!(src)
    lines = src |> String.split("\n") |> length()

    {:ok, _} = Transformer.transform_module(ast, :full)
    transform = once_ns(fn -> {:ok, _} = Transformer.transform_module(ast, :full) end, 15)
    prewalk = once_ns(fn -> Macro.prewalk(ast, & &1) end, 15)

    overhead = call_overhead()

    results =
      %{
        transform_5k_lines_ns: transform,
        transform_5k_lines_prewalk_baseline_ns: prewalk,
        instrumented_call_overhead_off_ns: overhead.off
      }
      |> then(fn r ->
        if overhead.on, do: Map.put(r, :instrumented_call_overhead_ns, overhead.on), else: r
      end)

    rows =
      [
        {"transform_5k_lines_ns (#{lines} lines, :full)", transform, "≤ 50,000,000",
         "identity Macro.prewalk/2 over the same AST: #{fmt(prewalk)} ns"},
        {"instrumented_call_overhead_off_ns", overhead.off, "≤ 5 (capture off)",
         "plain call #{fmt(overhead.plain)} ns"}
      ] ++
        if overhead.on,
          do: [
            {"instrumented_call_overhead_ns", overhead.on, "≤ 250",
             "capture on, :function_boundaries"}
          ],
          else: [
            {"instrumented_call_overhead_ns (capture could not start: #{overhead.why})", 0,
             "≤ 250", "not measured"}
          ]

    {results, rows}
  end

  defp call_overhead do
    ast =
      quote do
        defmodule ElixirScope.Bench.AST.Trivial do
          @moduledoc false
          def plain(x), do: x
        end
      end

    inst =
      quote do
        defmodule ElixirScope.Bench.AST.TrivialInst do
          @moduledoc false
          def plain(x), do: x
        end
      end

    Code.compile_quoted(ast)
    {:ok, inst} = Transformer.transform_module(inst, :function_boundaries)
    Code.compile_quoted(inst)
    plain_mod = ElixirScope.Bench.AST.Trivial
    inst_mod = ElixirScope.Bench.AST.TrivialInst

    plain = per_call_ns(fn -> plain_mod.plain(1) end, 100_000, 21)
    off = per_call_ns(fn -> inst_mod.plain(1) end, 100_000, 21) - plain

    {on, why} =
      try do
        case ElixirScope.start(
               capture: [buffer_size: 65_536, flush_interval: 2],
               storage: [max_bytes: 256_000_000]
             ) do
          :ok ->
            on = per_call_ns(fn -> inst_mod.plain(1) end, 10_000, 21) - plain
            ElixirScope.stop()
            {on, nil}

          other ->
            {nil, inspect(other)}
        end
      rescue
        e -> {nil, Exception.message(e)}
      end

    %{plain: plain, off: off, on: on, why: why}
  end
end
