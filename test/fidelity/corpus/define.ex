defmodule Fidelity.Define do
  @moduledoc """
  A library function that defines a module when it is called (as grammar and schema libraries
  do): `define(name, rules)` runs `defmodule` inside its body. Called from another module's
  body, the new module is created while that module compiles.
  """

  def define(name, rules) when is_atom(name) and is_list(rules) do
    defmodule name do
      @moduledoc false
      @rules Map.new(rules)

      def rules, do: @rules

      def token?(token, input) do
        case @rules do
          %{^token => pattern} -> Regex.match?(pattern, input)
          _ -> raise ArgumentError, "unknown token #{inspect(token)}"
        end
      end

      def tokenize(input), do: tokenize(String.split(input, " ", trim: true), [])

      defp tokenize([], acc), do: Enum.reverse(acc)

      defp tokenize([word | rest], acc) do
        case Enum.find(Map.keys(@rules) |> Enum.sort(), &token?(&1, word)) do
          nil -> {:error, {:unknown, word}}
          token -> tokenize(rest, [{token, word} | acc])
        end
      end
    end
  end
end

defmodule Fidelity.Grammar do
  @moduledoc "Defines its lexer module at compile time through the library."
  Fidelity.Define.define(Fidelity.Grammar.Lexer,
    number: ~r/^\d+$/,
    word: ~r/^[a-z]+$/,
    op: ~r/^[+*-]$/
  )

  def lex(input), do: Fidelity.Grammar.Lexer.tokenize(input)

  def evaluate(input) do
    case lex(input) do
      {:error, _} = error -> error
      tokens -> tokens |> Enum.map(fn {_, w} -> w end) |> reduce(0, :+)
    end
  end

  defp reduce([], acc, _op), do: {:ok, acc}

  defp reduce([op | rest], acc, _op) when op in ["+", "-", "*"],
    do: reduce(rest, acc, String.to_atom(op))

  defp reduce([n | rest], acc, op),
    do: reduce(rest, apply(Kernel, op, [acc, String.to_integer(n)]), op)
end

defmodule Fidelity.Dynamic do
  @moduledoc "Builds a helper module with Module.create/3 while it compiles (as Protocol and Ecto do)."

  fields = [:id, :name, :email]

  Module.create(
    Fidelity.Dynamic.Record,
    quote do
      @moduledoc false
      defstruct unquote(fields)

      def new(attrs) when is_map(attrs) do
        struct!(__MODULE__, Map.take(attrs, unquote(fields)))
      end

      def fetch!(%__MODULE__{} = record, field) when field in unquote(fields),
        do: Map.fetch!(record, field)

      def count_down(0, acc), do: {acc, elem(Process.info(self(), :stack_size), 1)}
      def count_down(n, acc), do: count_down(n - 1, acc + 1)
    end,
    Macro.Env.location(__ENV__)
  )

  alias Fidelity.Dynamic.Record

  def build(attrs), do: Record.new(attrs)
  def name(attrs), do: attrs |> build() |> Record.fetch!(:name)
end
