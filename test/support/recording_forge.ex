defmodule ElixirScope.Test.RecordingForge do
  @moduledoc """
  Takes recording files apart and puts them together again with correct
  checksums, so that tests and the fuzzer can hand `ElixirScope.Recording.load/2`
  files that pass the checksums but lie inside: wrong field types, crafted atom
  tables, inflation bombs. Follows the layout documented in
  `ElixirScope.Recording.Format` (version 2).
  """

  alias ElixirScope.Recording.Atoms

  @magic "ESCOPE-REC\n"

  @typedoc "A file taken apart: the header and chunks as `{events, atom table, etf}`."
  @type t :: %{version: non_neg_integer(), header: {binary(), binary()}, chunks: [{non_neg_integer(), binary(), binary()}]}

  @doc "Takes a well-formed version-2 file apart (trusted input: raises otherwise)."
  @spec parse(binary()) :: t()
  def parse(<<@magic, version::16, tlen::32, elen::32, _crc::32, table::binary-size(tlen), etf::binary-size(elen), rest::binary>>) do
    %{version: version, header: {table, etf}, chunks: chunks(rest, [])}
  end

  defp chunks(<<"C", n::32, tlen::32, elen::32, _crc::32, table::binary-size(tlen), etf::binary-size(elen), rest::binary>>, acc),
    do: chunks(rest, [{n, table, etf} | acc])

  defp chunks(<<"E", _total::64, _crc::32>>, acc), do: Enum.reverse(acc)

  @doc "Puts a file together, with every checksum right and the trailer's count the chunks' (unless `total:` says otherwise)."
  @spec build(t(), keyword()) :: binary()
  def build(%{version: version, header: {ht, he}, chunks: chunks}, opts \\ []) do
    {parts, crcs} =
      Enum.map_reduce(chunks, [], fn {n, t, e}, crcs ->
        crc = crc(t, e)
        {[<<"C", n::32, byte_size(t)::32, byte_size(e)::32, crc::32>>, t, e], [crc | crcs]}
      end)

    total = Keyword.get_lazy(opts, :total, fn -> chunks |> Enum.map(&elem(&1, 0)) |> Enum.sum() end)
    trailer_crc = :erlang.crc32(for c <- Enum.reverse(crcs), into: <<>>, do: <<c::32>>)

    IO.iodata_to_binary([
      @magic,
      <<version::16, byte_size(ht)::32, byte_size(he)::32, crc(ht, he)::32>>,
      ht,
      he,
      parts,
      <<"E", total::64, trailer_crc::32>>
    ])
  end

  defp crc(t, e), do: :erlang.crc32(:erlang.crc32(t), e)

  @doc "A chunk `{events, table, etf}` holding `term`, its atom table listing the atoms `term` uses."
  @spec chunk(term(), non_neg_integer(), keyword()) :: {non_neg_integer(), binary(), binary()}
  def chunk(term, n, opts \\ []) do
    {n, Atoms.encode(Atoms.collect(term, %{})), :erlang.term_to_binary(term, opts)}
  end

  @doc "Decodes a chunk's ETF (trusted: a chunk this node wrote or built)."
  @spec term({non_neg_integer(), binary(), binary()}) :: term()
  def term({_n, _t, etf}), do: :erlang.binary_to_term(etf)

  @doc "An atom table of raw names (each `{length, bytes}` as given) and export triples."
  @spec table([binary()], [{non_neg_integer(), non_neg_integer(), 0..255}]) :: binary()
  def table(names, exports \\ []) do
    n = for name <- names, into: <<>>, do: <<byte_size(name)::16, name::binary>>
    e = for {m, f, a} <- exports, into: <<>>, do: <<m::32, f::32, a::8>>
    <<length(names)::32, n::binary, length(exports)::32, e::binary>>
  end

  @doc "Takes an atom table apart: `{names, exports}` (trusted input: raises otherwise)."
  @spec parse_table(binary()) :: {[binary()], [{non_neg_integer(), non_neg_integer(), 0..255}]}
  def parse_table(<<n::32, rest::binary>>) do
    {names, <<m::32, funs::binary>>} =
      Enum.reduce(1..n//1, {[], rest}, fn _, {acc, <<len::16, name::binary-size(len), rest::binary>>} -> {[name | acc], rest} end)

    {Enum.reverse(names), for(<<a::32, b::32, c::8 <- funs>>, do: {a, b, c}) |> Enum.take(m)}
  end

  @doc """
  A zlib stream that inflates to `mib` MiB of zeros (with a valid checksum),
  built in milliseconds: after a sync flush a deflate block of zeros only
  refers to the zeros before it, so one block is repeated.
  """
  @spec zero_bomb(pos_integer()) :: binary()
  def zero_bomb(mib) do
    zero = :binary.copy(<<0>>, 1024 * 1024)
    z = :zlib.open()
    :ok = :zlib.deflateInit(z, 9, :deflated, -15, 8, :default)
    first = IO.iodata_to_binary(:zlib.deflate(z, zero, :sync))
    block = IO.iodata_to_binary(:zlib.deflate(z, zero, :sync))
    last = IO.iodata_to_binary(:zlib.deflate(z, [], :finish))
    :zlib.close(z)
    a1 = :erlang.adler32(zero)
    adler = Enum.reduce(2..mib//1, a1, fn _, a -> :erlang.adler32_combine(a, a1, byte_size(zero)) end)
    IO.iodata_to_binary([<<0x78, 0xDA>>, first, List.duplicate(block, mib - 1), last, <<adler::32>>])
  end
end
