defmodule ElixirScope.Bench do
  @moduledoc false
  # Timing helpers shared by the bench scripts: medians of batched runs.

  @doc "Median ns per call of `fun` (arity 0), measured in `batches` batches of `n` calls."
  def per_call_ns(fun, n \\ 10_000, batches \\ 31) do
    loop(fun, 1000)

    for _ <- 1..batches do
      t0 = System.monotonic_time(:nanosecond)
      loop(fun, n)
      (System.monotonic_time(:nanosecond) - t0) / n
    end
    |> median()
  end

  @doc "Median ns of one run of `fun`, over `runs` runs."
  def once_ns(fun, runs \\ 9) do
    fun.()
    for(_ <- 1..runs, do: elem(:timer.tc(fun), 0) * 1000) |> median()
  end

  def median(xs) do
    s = Enum.sort(xs)
    Enum.at(s, div(length(s), 2))
  end

  defp loop(_fun, 0), do: :ok
  defp loop(fun, n), do: (fun.(); loop(fun, n - 1))

  @doc "Writes results as flat JSON {name: number}."
  def write_json(results, path) do
    File.mkdir_p!(Path.dirname(path))
    body = results |> Enum.sort() |> Enum.map_join(",\n", fn {k, v} -> "  \"#{k}\": #{num(v)}" end)
    File.write!(path, "{\n" <> body <> "\n}\n")
  end

  defp num(v) when is_integer(v), do: Integer.to_string(v)
  defp num(v) when is_float(v), do: :erlang.float_to_binary(v, decimals: 2)

  @doc "Prints rows {name, value, target, baseline_note}."
  def print_table(rows) do
    IO.puts("\n| metric | measured | target | note |")
    IO.puts("|---|---:|---:|---|")

    for {name, value, target, note} <- rows do
      IO.puts("| #{name} | #{fmt(value)} | #{target} | #{note} |")
    end
  end

  def fmt(v) when is_float(v) and v >= 1000, do: v |> round() |> fmt()
  def fmt(v) when is_float(v), do: :erlang.float_to_binary(v, decimals: 1)

  def fmt(v) when is_integer(v) do
    v |> Integer.to_string() |> String.reverse() |> String.replace(~r/(\d{3})(?=\d)/, "\\1,") |> String.reverse()
  end
end
