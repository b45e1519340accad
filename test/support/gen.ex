defmodule ElixirScope.Test.Gen do
  @moduledoc """
  A small seeded random generator for property-style tests (StreamData cannot be
  fetched here). Every function takes and returns the generator state, so a run
  is reproducible from its seed.
  """

  @type t :: :rand.state()

  @doc "A new generator from an integer seed."
  @spec new(integer()) :: t()
  def new(seed), do: :rand.seed_s(:exsss, {seed, seed * 7 + 1, seed * 13 + 2})

  @doc "An integer in lo..hi."
  @spec int(t(), integer(), integer()) :: {integer(), t()}
  def int(g, lo, hi) do
    {x, g} = :rand.uniform_s(hi - lo + 1, g)
    {lo + x - 1, g}
  end

  @doc "One element of a non-empty list."
  @spec one_of(t(), [term()]) :: {term(), t()}
  def one_of(g, list) do
    {i, g} = int(g, 0, length(list) - 1)
    {Enum.at(list, i), g}
  end

  @doc "A list of length 0..max of values made by `fun`."
  @spec list_of(t(), non_neg_integer(), (t() -> {term(), t()})) :: {list(), t()}
  def list_of(g, max, fun) do
    {n, g} = int(g, 0, max)

    Enum.reduce(1..n//1, {[], g}, fn _, {acc, g} ->
      {x, g} = fun.(g)
      {[x | acc], g}
    end)
  end

  @doc "A short binary."
  @spec binary(t(), non_neg_integer()) :: {binary(), t()}
  def binary(g, max \\ 8) do
    {bytes, g} = list_of(g, max, &int(&1, ?a, ?z))
    {IO.iodata_to_binary(bytes), g}
  end

  @doc "An arbitrary term of bounded depth: integers, floats, atoms, binaries, lists, tuples, maps."
  @spec term(t(), non_neg_integer()) :: {term(), t()}
  def term(g, depth \\ 2) do
    {k, g} = int(g, 0, if(depth == 0, do: 4, else: 7))

    case k do
      0 ->
        int(g, -1000, 1000)

      1 ->
        one_of(g, [:a, :b, :ok, :error, nil, true, false])

      2 ->
        binary(g)

      3 ->
        with {x, g} <- int(g, -100, 100), do: {x / 4, g}

      4 ->
        int(g, 0, 3)

      5 ->
        list_of(g, 4, &term(&1, depth - 1))

      6 ->
        with {l, g} <- list_of(g, 3, &term(&1, depth - 1)), do: {List.to_tuple(l), g}

      7 ->
        with {l, g} <- list_of(g, 3, &term(&1, depth - 1)),
             do: {Map.new(Enum.with_index(l), fn {v, i} -> {i, v} end), g}
    end
  end

  @doc "`n` values made by `fun`, threading the state."
  @spec many(t(), non_neg_integer(), (t() -> {term(), t()})) :: {list(), t()}
  def many(g, n, fun) do
    {xs, g} =
      Enum.reduce(1..n//1, {[], g}, fn _, {acc, g} ->
        with {x, g} <- fun.(g), do: {[x | acc], g}
      end)

    {Enum.reverse(xs), g}
  end
end
