defmodule Fidelity.Parsers do
  @moduledoc "Parsers built with Fidelity.Combinator, the way an application uses NimbleParsec."
  import Fidelity.Combinator

  digits2 = integer(2)

  date =
    integer(4)
    |> ignore(string("-"))
    |> concat(digits2)
    |> ignore(string("-"))
    |> concat(digits2)

  time =
    digits2
    |> ignore(string(":"))
    |> concat(digits2)
    |> optional(ignore(string(":")) |> concat(digits2))

  defparser(:date, date |> eos())

  defparser(
    :datetime,
    tag(date, :date)
    |> ignore(choice([string("T"), string(" ")]))
    |> tag(time, :time)
    |> optional(string("Z"))
    |> eos()
  )

  letter = ascii_char([?a..?z, ?A..?Z, ?_])

  word =
    letter
    |> repeat(ascii_char([?a..?z, ?A..?Z, ?0..?9, ?_]))
    |> post_traverse({__MODULE__, :to_word})

  defcombinator(:ws, ignore(repeat(ascii_char([?\s, ?\t, ?\n]))))

  value =
    choice([
      integer(1),
      word,
      ignore(string("\"")) |> repeat(ascii_char([?a..?z, ?\s])) |> ignore(string("\""))
    ])

  pair = tag(word |> parsec(:ws) |> ignore(string("=")) |> parsec(:ws) |> concat(value), :pair)

  defparser(
    :pairs,
    parsec(:ws)
    |> concat(pair)
    |> repeat(parsec(:ws) |> ignore(string(",")) |> parsec(:ws) |> concat(pair))
    |> parsec(:ws)
    |> eos()
  )

  # a long run of letters: the repeat loop must not grow the stack; the traversal at the end
  # sees the stack as it is at the bottom of the loop
  defparser(
    :letters,
    post_traverse(repeat(ascii_char([?a..?z])), {__MODULE__, :stack_probe}) |> eos()
  )

  def to_word(rest, chars, ctx) do
    case chars |> Enum.reverse() |> List.to_string() do
      "bad" -> {:error, "reserved word"}
      word -> {rest, [word], ctx}
    end
  end

  def stack_probe(rest, chars, ctx) do
    {:stack_size, words} = Process.info(self(), :stack_size)
    {rest, [length(chars)], Map.put(ctx, :stack, words)}
  end

  @doc "A parser result reduced to what callers look at."
  def summarize({:ok, results, rest, ctx}), do: {:ok, results, rest, Map.delete(ctx, :opts)}
  def summarize({:error, reason, rest, ctx}), do: {:error, reason, byte_size(rest), ctx.offset}
end
