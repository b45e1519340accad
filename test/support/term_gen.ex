defmodule ElixirScope.Test.TermGen do
  @moduledoc """
  Seeded generator of arbitrary Erlang terms for the capture codec's property
  tests (built on `ElixirScope.Test.Gen`): every term kind — atoms (Unicode,
  255 characters, the marker atom), small and big integers, floats, binaries
  (long, or starting at a bit offset), bitstrings, proper, improper and long
  lists, small and large tuples, small and large maps whose keys are complex
  and alike (so that cutting them makes them collide), pids, references,
  ports, external funs and closures (over large or secret data), and tuples
  shaped like the codec's own markers.
  """

  alias ElixirScope.Test.Gen

  @atoms [:ok, :a, nil, true, :"$es_truncated", :password, :ünïcødé, :日本語, String.to_atom(String.duplicate("é", 255))]
  @ints [0, 1, 255, 256, -1, 2_147_483_647, 2_147_483_648, -2_147_483_649, 9_223_372_036_854_775_807,
         -9_223_372_036_854_775_808, 9_223_372_036_854_775_808, 18_446_744_073_709_551_616]

  @doc "A term of nesting depth at most `depth`."
  @spec term(Gen.t(), non_neg_integer()) :: {term(), Gen.t()}
  def term(g, depth) do
    {k, g} = Gen.int(g, 0, if(depth > 0, do: 16, else: 11))

    case k do
      0 -> Gen.one_of(g, @ints)
      1 -> Gen.int(g, -1_000_000, 1_000_000)
      2 -> big_integer(g)
      3 -> with {x, g} <- Gen.int(g, -10_000, 10_000), do: {x / 7, g}
      4 -> Gen.one_of(g, @atoms)
      5 -> binary(g)
      6 -> bitstring(g)
      7 -> {[], g}
      8 -> opaque(g)
      9 -> fun(g)
      10 -> with {n, g} <- Gen.int(g, 0, 3), do: {{:"$es_truncated", :list, n}, g}
      11 -> Gen.one_of(g, [~c"charlist", "", <<>>, {}, %{}])
      12 -> list(g, depth)
      13 -> tuple(g, depth)
      14 -> map(g, depth)
      15 -> map(g, depth)
      16 -> with {l, g} <- list(g, depth), {t, g} <- term(g, 0), do: {improper(l, t), g}
    end
  end

  defp improper([], t), do: [t]
  defp improper(l, t), do: l ++ t

  defp big_integer(g) do
    {bits, g} = Gen.one_of(g, [65, 100, 300, 2_100, 5_000, 100_000])
    {sign, g} = Gen.one_of(g, [1, -1])
    {low, g} = Gen.int(g, 0, 1_000_000)
    {sign * (Bitwise.bsl(1, bits) + low), g}
  end

  defp binary(g) do
    {n, g} = Gen.one_of(g, [0, 3, 8, 40, 300, 10_000])
    {c, g} = Gen.int(g, ?a, ?e)
    bin = :binary.copy(<<c>>, n)
    {offset?, g} = Gen.int(g, 0, 3)
    # a byte-sized binary that starts at a bit offset inside a larger one
    if offset? == 0 and n > 0, do: {sub_at_bit_offset(bin), g}, else: {bin, g}
  end

  defp sub_at_bit_offset(bin) do
    <<_::3, rest::bitstring>> = <<0::3, bin::binary>>
    rest
  end

  defp bitstring(g) do
    {bin, g} = binary(g)
    {bits, g} = Gen.int(g, 1, 7)
    {<<bin::bitstring, 1::size(bits)>>, g}
  end

  defp opaque(g), do: Gen.one_of(g, [self(), make_ref(), hd(Port.list()), :c.pid(0, 1, 0)])

  @big :binary.copy("z", 100_000)
  defp fun(g) do
    secret = %{password: "pw-in-closure"}
    big = @big
    Gen.one_of(g, [&Enum.map/2, &:lists.reverse/1, fn x -> {x, secret} end, fn -> byte_size(big) end, &byte_size/1])
  end

  # wide containers hold scalars, narrow ones nest: deep and wide without growing exponentially
  defp list(g, depth) do
    {long?, g} = Gen.int(g, 0, 5)
    if long? == 0, do: Gen.list_of(g, 120, &term(&1, 0)), else: Gen.list_of(g, 5, &term(&1, depth - 1))
  end

  defp tuple(g, depth) do
    {long?, g} = Gen.int(g, 0, 5)
    {l, g} = if long? == 0, do: Gen.list_of(g, 60, &term(&1, 0)), else: Gen.list_of(g, 4, &term(&1, depth - 1))
    {List.to_tuple(l), g}
  end

  # keys are drawn from families of look-alikes: long binaries with one prefix,
  # deep or long lists that differ only past the limits, secret-tagged tuples
  defp map(g, depth) do
    {large?, g} = Gen.int(g, 0, 4)
    {max, vdepth} = if large? == 0, do: {70, 0}, else: {6, depth - 1}
    {pairs, g} = Gen.list_of(g, max, fn g -> with {k, g} <- key(g, depth), {v, g} <- term(g, vdepth), do: {{k, v}, g} end)
    {Map.new(pairs), g}
  end

  defp key(g, depth) do
    {k, g} = Gen.int(g, 0, 8)
    {n, g} = Gen.int(g, 0, 100)

    case k do
      0 -> {String.duplicate("k", 300) <> Integer.to_string(n), g}
      1 -> {Enum.to_list(1..40) ++ [n], g}
      2 -> {[[[[[n]]]]], g}
      3 -> {{:password, n}, g}
      4 -> {{:"$es_truncated", :list, n}, g}
      5 -> Gen.one_of(g, [:"$es_truncated", :password, :token, :user, "Password", "x-api-key"])
      _ -> term(g, max(depth - 1, 0))
    end
  end
end
