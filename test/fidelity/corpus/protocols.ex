defprotocol Fidelity.Size do
  @moduledoc "The size of a data structure, with a fallback for structs that derive it."
  @fallback_to_any true

  @spec size(t) :: non_neg_integer()
  def size(data)

  @doc "A description using the size."
  def describe(data)
end

defimpl Fidelity.Size, for: BitString do
  def size(bin), do: byte_size(bin)
  def describe(bin), do: "binary of #{size(bin)} bytes"
end

defimpl Fidelity.Size, for: List do
  def size(list), do: count(list, 0)
  def describe(list), do: "list of #{size(list)} elements"

  defp count([], n), do: n
  defp count([_ | t], n), do: count(t, n + 1)
end

defimpl Fidelity.Size, for: [Map, Tuple] do
  def size(%{} = map), do: map_size(map)
  def size(tuple) when is_tuple(tuple), do: tuple_size(tuple)

  def describe(data),
    do: "#{@for |> Module.split() |> List.last() |> String.downcase()} of #{size(data)}"
end

defimpl Fidelity.Size, for: Any do
  defmacro __deriving__(module, struct, opts) do
    field = Keyword.get(opts, :field, :items)

    quote do
      defimpl Fidelity.Size, for: unquote(module) do
        def size(%{unquote(field) => items}), do: Fidelity.Size.size(items)

        def describe(data),
          do:
            "#{inspect(unquote(module))} with #{size(data)} (#{map_size(unquote(Macro.escape(struct)))} fields)"
      end
    end
  end

  def size(_), do: 0
  def describe(other), do: "opaque #{inspect(other)}"
end

defprotocol Fidelity.Reducible do
  @moduledoc "Enumerable's reduce with its continuations (:cont, :halt, :suspend), for the corpus's own data."
  def reduce(data, acc, fun)
end

defimpl Fidelity.Reducible, for: List do
  def reduce(_list, {:halt, acc}, _fun), do: {:halted, acc}
  def reduce(list, {:suspend, acc}, fun), do: {:suspended, acc, &reduce(list, &1, fun)}
  def reduce([], {:cont, acc}, _fun), do: {:done, acc}
  def reduce([h | t], {:cont, acc}, fun), do: reduce(t, fun.(h, acc), fun)
end

defmodule Fidelity.Bag do
  @moduledoc "A struct deriving Fidelity.Size through __deriving__ with options."
  @derive {Fidelity.Size, field: :things}
  defstruct things: [], owner: nil
end

defmodule Fidelity.Tagged do
  @moduledoc "A struct deriving Fidelity.Size with the Any implementation as it is."
  @derive [Fidelity.Size]
  defstruct [:tag]
end

defmodule Fidelity.Point do
  @moduledoc "A struct with its own implementations, defined inside its module."
  @enforce_keys [:x, :y]
  defstruct [:x, :y, z: 0]

  defimpl Fidelity.Size do
    def size(%{x: x, y: y, z: z}), do: abs(x) + abs(y) + abs(z)
    def describe(p), do: "point at distance #{size(p)}"
  end

  defimpl Fidelity.Reducible do
    def reduce(%{x: x, y: y, z: z}, acc, fun),
      do: Fidelity.Reducible.List.reduce([x, y, z], acc, fun)
  end
end

defmodule Fidelity.Shapes do
  @moduledoc "Uses the protocol over mixed data."
  alias Fidelity.{Bag, Point, Size, Tagged}

  def sizes(things), do: Enum.map(things, &{Size.size(&1), Size.describe(&1)})

  def sample(n) do
    [
      String.duplicate("x", n),
      Enum.to_list(1..n//1),
      Map.new(1..n//1, &{&1, &1}),
      List.to_tuple(Enum.to_list(1..n//1)),
      %Bag{things: Enum.to_list(1..n//1)},
      %Tagged{tag: n},
      %Point{x: n, y: -n},
      n
    ]
  end

  def point(attrs), do: struct!(Point, attrs)

  def sum(data), do: data |> Fidelity.Reducible.reduce({:cont, 0}, &{:cont, &1 + &2}) |> elem(1)

  def take(data, n) when n > 0 do
    {_, {_, acc}} =
      Fidelity.Reducible.reduce(data, {:cont, {n, []}}, fn x, {k, acc} ->
        if k == 1, do: {:halt, {0, [x | acc]}}, else: {:cont, {k - 1, [x | acc]}}
      end)

    Enum.reverse(acc)
  end

  @doc "Steps through data one element at a time with :suspend, as Stream.zip does."
  def step_through(data) do
    {:suspended, nil, next} =
      Fidelity.Reducible.reduce(data, {:suspend, nil}, fn x, _ -> {:suspend, x} end)

    collect(next, [])
  end

  defp collect(next, acc) do
    case next.({:cont, nil}) do
      {:suspended, x, next} -> collect(next, [x | acc])
      {:done, _} -> Enum.reverse(acc)
    end
  end
end
