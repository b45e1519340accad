defmodule Fidelity.CSV do
  @moduledoc """
  A CSV reader whose loops are tail calls inside macros called remotely (`Macros.byte_case`
  with a `do` block, `Fidelity.JSON.Macros.on_byte/4` without one, `Macros.expect/3` that
  expands to another macro). Option `finish:` receives the rows in tail position.
  """
  require Fidelity.JSON.Macros
  alias Fidelity.JSON.Macros

  defmodule ParseError do
    @moduledoc "Raised by `Fidelity.CSV.parse!/2`."
    defexception [:line, :reason]

    @impl true
    def message(%{line: line, reason: reason}), do: "line #{line}: #{reason}"
  end

  def parse(bin, opts \\ []) when is_binary(bin) do
    separator = Keyword.get(opts, :separator, ?,)
    field(bin, {separator, Keyword.get(opts, :finish)}, [], [], [], 1)
  end

  def parse!(bin, opts \\ []) do
    case parse(bin, opts) do
      {:ok, rows} -> rows
      {:error, line, reason} -> raise ParseError, line: line, reason: reason
      finished -> finished
    end
  end

  # field start: a quoted field, an empty field or plain bytes
  defp field(bin, conf, chars, row, rows, line) do
    Macros.expect(bin, ?",
      do: quoted(rest, conf, chars, row, rows, line),
      else: plain(bin, conf, chars, row, rows, line)
    )
  end

  defp plain(bin, {sep, _} = conf, chars, row, rows, line) do
    Macros.byte_case bin do
      ^sep -> field(rest, conf, [], [text(chars) | row], rows, line)
      ?\n -> field(rest, conf, [], [], [Enum.reverse([text(chars) | row]) | rows], line + 1)
      ?" -> {:error, line, "unexpected quote"}
      c -> plain(rest, conf, [c | chars], row, rows, line)
      :eof -> done(conf, Enum.reverse(finish_row(chars, row, rows)))
    end
  end

  defp quoted(bin, conf, chars, row, rows, line) do
    Macros.byte_case bin do
      ?" ->
        Fidelity.JSON.Macros.on_byte(
          rest,
          ?",
          quoted(rest, conf, [?" | chars], row, rows, line),
          after_quote(rest, conf, chars, row, rows, line)
        )

      ?\n ->
        quoted(rest, conf, [?\n | chars], row, rows, line + 1)

      c ->
        quoted(rest, conf, [c | chars], row, rows, line)

      :eof ->
        {:error, line, "unterminated quoted field"}
    end
  end

  defp after_quote(bin, {sep, _} = conf, chars, row, rows, line) do
    Macros.byte_case bin do
      ^sep -> field(rest, conf, [], [text(chars) | row], rows, line)
      ?\n -> field(rest, conf, [], [], [Enum.reverse([text(chars) | row]) | rows], line + 1)
      :eof -> done(conf, Enum.reverse([Enum.reverse([text(chars) | row]) | rows]))
      _ -> {:error, line, "text after a quoted field"}
    end
  end

  defp finish_row([], [], rows), do: rows
  defp finish_row(chars, row, rows), do: [Enum.reverse([text(chars) | row]) | rows]

  defp text(chars), do: chars |> Enum.reverse() |> List.to_string()

  defp done({_, nil}, rows), do: {:ok, rows}
  defp done({_, finish}, rows), do: finish.(rows)
end
