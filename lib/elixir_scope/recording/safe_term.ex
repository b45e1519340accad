defmodule ElixirScope.Recording.SafeTerm do
  @moduledoc """
  Decodes ETF from an untrusted file within a size bound.

  A compressed ETF (`131, 80, u32 size, zlib data`) announces its inflated
  size: `size/1` reads it so that the caller can refuse a part before
  inflating anything. `decode/1` then inflates with `:zlib.safeInflate/2`,
  a slice at a time, stopping as soon as the output passes the announced
  size, so a lying part costs at most one slice more than it claims; then
  `binary_to_term(data, [:safe, :used])` creates no atom and no function
  reference (see `ElixirScope.Recording.Atoms`) and must use every byte.
  `binary_to_term/1` is never given the compressed form: it would allocate
  whatever size the part announces.
  """

  @compressed 80

  @doc "The bytes the ETF takes once inflated (its own size when it is not compressed)."
  @spec size(binary()) :: {:ok, non_neg_integer()} | {:error, String.t()}
  def size(<<131, @compressed, raw::32, _::binary>>), do: {:ok, raw + 1}
  def size(<<131, @compressed, _::binary>>), do: {:error, "its compressed ETF header is cut short"}
  def size(<<131, _::binary>> = bin), do: {:ok, byte_size(bin)}
  def size(_), do: {:error, "it is not ETF (no version byte 131)"}

  @doc "Inflates (within the announced size) and decodes without creating atoms."
  @spec decode(binary()) :: {:ok, term()} | {:error, String.t()}
  def decode(<<131, @compressed, raw::32, zdata::binary>>) do
    case inflate(zdata, raw, <<131>>) do
      {:ok, <<131, @compressed, _::binary>>} -> {:error, "its ETF is compressed twice"}
      {:ok, etf} -> to_term(etf)
      error -> error
    end
  end

  def decode(<<131, _::binary>> = bin), do: to_term(bin)
  def decode(_), do: {:error, "it is not ETF (no version byte 131)"}

  defp to_term(bin) do
    case :erlang.binary_to_term(bin, [:safe, :used]) do
      {term, used} when used == byte_size(bin) -> {:ok, term}
      {_, used} -> {:error, "#{byte_size(bin) - used} bytes follow its ETF term"}
    end
  rescue
    ArgumentError -> {:error, "its ETF is malformed or names an atom or function missing from its atom table"}
  end

  @doc """
  Inflates zlib `data` that must give exactly `size` bytes, returned after
  `prefix`; memory stays within twice `size` plus one slice.
  """
  @spec inflate(binary(), non_neg_integer(), binary()) :: {:ok, binary()} | {:error, String.t()}
  def inflate(data, size, prefix \\ "") do
    z = :zlib.open()

    try do
      :ok = :zlib.inflateInit(z)
      inflate_loop(z, :zlib.safeInflate(z, data), prefix, 0, size)
    rescue
      e in ErlangError -> {:error, "its compressed data is damaged (zlib: #{inspect(e.original)})"}
    after
      :zlib.close(z)
    end
  end

  defp inflate_loop(_z, {:need_dictionary, _, _}, _acc, _n, _size), do: {:error, "its compressed data asks for a zlib dictionary"}

  defp inflate_loop(z, {status, out}, acc, n, size) do
    n = n + IO.iodata_length(out)

    cond do
      n > size -> {:error, "it inflates past the #{size} bytes it announces"}
      status == :continue -> inflate_loop(z, :zlib.safeInflate(z, []), [acc | out], n, size)
      n < size -> {:error, "it inflates to #{n} bytes, not the #{size} it announces"}
      true -> {:ok, IO.iodata_to_binary([acc | out])}
    end
  end
end
