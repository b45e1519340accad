defmodule ElixirScope.Recording.Format do
  @moduledoc """
  The recording file format, version 1. All integers big-endian.

      magic    "ESCOPE-REC\\n"            11 bytes
      version  u16                        (1)
      header   u32 length, u32 crc32, ETF of a map (clock, node, names, stats, count, created_at …)
      chunks   "C", u32 event count, u32 length, u32 crc32, ETF of {:es_chunk, atoms, pids, rows}
               (the chunk's distinct atoms and pids, and one row per event referring to them)
      trailer  "E", u64 total events, u32 crc32 of all chunk crc32s

  Every part is checked when reading: a file that does not start with the
  magic is foreign, a bad crc32 is corruption, a missing trailer or a part that
  runs past the end is truncation, and each gives an error message saying so.
  """

  alias ElixirScope.Event

  @magic "ESCOPE-REC\n"
  @version 1

  @doc "The current format version."
  @spec version() :: pos_integer()
  def version, do: @version

  @doc "Magic + version + header."
  @spec encode_header(map()) :: iodata()
  def encode_header(meta) do
    bin = :erlang.term_to_binary(meta)
    [@magic, <<@version::16, byte_size(bin)::32, :erlang.crc32(bin)::32>>, bin]
  end

  @doc "One chunk of events; returns `{iodata, crc32}`."
  @spec encode_chunk([Event.t()], 0..9) :: {iodata(), non_neg_integer()}
  def encode_chunk(events, compression) do
    bin = :erlang.term_to_binary(to_columns(events), compressed: compression)
    crc = :erlang.crc32(bin)
    {[<<"C", length(events)::32, byte_size(bin)::32, crc::32>>, bin], crc}
  end

  @doc "The trailer."
  @spec encode_trailer(non_neg_integer(), [non_neg_integer()]) :: binary()
  def encode_trailer(count, crcs), do: <<"E", count::64, crc_of(crcs)::32>>

  defp crc_of(crcs), do: :erlang.crc32(for c <- crcs, into: <<>>, do: <<c::32>>)

  @doc """
  Checks a whole file's structure and checksums without decoding the events:
  `{:ok, meta, chunks}` where each chunk is `{index, count, etf}` (decode it
  with `decode_chunk/1`), or `{:error, message}`.
  """
  @spec split(binary()) :: {:ok, map(), [{pos_integer(), non_neg_integer(), binary()}]} | {:error, String.t()}
  def split(<<@magic, version::16, rest::binary>>) do
    if version == @version do
      with {:ok, meta, rest} <- header(rest),
           {:ok, chunks} <- chunks(rest, 0, 1, [], []) do
        {:ok, meta, chunks}
      end
    else
      {:error, "unsupported recording version #{version} (this ElixirScope reads version #{@version})"}
    end
  end

  def split(bin) when byte_size(bin) < byte_size(@magic) + 2 do
    head = binary_part(bin, 0, min(byte_size(bin), byte_size(@magic)))

    if bin != "" and String.starts_with?(@magic, head),
      do: {:error, "truncated recording: the file ends inside its header (#{byte_size(bin)} bytes)"},
      else: {:error, "not an ElixirScope recording (the file is #{byte_size(bin)} bytes and has no ElixirScope magic)"}
  end

  def split(_bin), do: {:error, "not an ElixirScope recording (it does not start with the ElixirScope magic)"}

  @doc "Decodes one chunk from `split/1` into events."
  @spec decode_chunk({pos_integer(), non_neg_integer(), binary()}) :: {:ok, [Event.t()]} | {:error, String.t()}
  def decode_chunk({i, n, bin}) do
    case safe_decode(bin, "chunk #{i}") do
      {:ok, {:es_chunk, atoms, pids, rows}} when is_tuple(atoms) and is_tuple(pids) and is_list(rows) and length(rows) == n ->
        to_events(atoms, pids, rows, i)
      {:ok, _} -> {:error, "corrupted recording: chunk #{i} does not hold the #{n} events its header announces"}
      error -> error
    end
  end

  @doc """
  Decodes a whole file's bytes, calling `on_chunk.(events)` for each chunk in
  order; returns `{:ok, meta, count}` or `{:error, message}`.
  """
  @spec decode(binary(), ([Event.t()] -> any())) :: {:ok, map(), non_neg_integer()} | {:error, String.t()}
  def decode(bin, on_chunk) do
    with {:ok, meta, chunks} <- split(bin) do
      Enum.reduce_while(chunks, {:ok, meta, 0}, fn {_, n, _} = chunk, {:ok, meta, count} ->
        case decode_chunk(chunk) do
          {:ok, events} -> on_chunk.(events) && {:cont, {:ok, meta, count + n}}
          error -> {:halt, error}
        end
      end)
    end
  end

  defp header(<<len::32, crc::32, rest::binary>>) do
    case rest do
      <<bin::binary-size(len), rest::binary>> ->
        with :ok <- check_crc(bin, crc, "header"),
             {:ok, meta} when is_map(meta) <- safe_decode(bin, "header") do
          {:ok, meta, rest}
        else
          {:ok, _} -> {:error, "corrupted recording: the header is not a map"}
          error -> error
        end

      _ ->
        {:error, "truncated recording: the header needs #{len} bytes, the file has #{byte_size(rest)} left"}
    end
  end

  defp header(_), do: {:error, "truncated recording: the file ends inside its header"}

  defp chunks(<<"C", n::32, len::32, crc::32, rest::binary>>, count, i, crcs, acc) do
    case rest do
      <<bin::binary-size(len), rest::binary>> ->
        with :ok <- check_crc(bin, crc, "chunk #{i}") do
          chunks(rest, count + n, i + 1, [crc | crcs], [{i, n, bin} | acc])
        end

      _ ->
        {:error,
         "truncated recording: chunk #{i} needs #{len} bytes, the file has #{byte_size(rest)} left " <>
           "(#{count} events come before it)"}
    end
  end

  defp chunks(<<"E", total::64, crc::32>>, count, _i, crcs, acc) do
    cond do
      total != count -> {:error, "corrupted recording: the trailer says #{total} events, the chunks hold #{count}"}
      crc != crc_of(Enum.reverse(crcs)) -> {:error, "corrupted recording: the trailer checksum does not match the chunks"}
      true -> {:ok, Enum.reverse(acc)}
    end
  end

  defp chunks(<<"E", _::binary>> = rest, count, _i, _crcs, _acc) when byte_size(rest) < 13,
    do: {:error, "truncated recording: the file ends inside its trailer (after #{count} events)"}

  defp chunks(<<>>, count, _i, _crcs, _acc),
    do: {:error, "truncated recording: the file ends without its trailer after #{count} events (an interrupted write?)"}

  defp chunks(<<tag, _::binary>> = rest, count, i, _crcs, _acc) when tag in [?C, ?E] do
    if tag == ?C and byte_size(rest) < 13,
      do: {:error, "truncated recording: the file ends inside the header of chunk #{i} (after #{count} events)"},
      else: {:error, "corrupted recording: #{byte_size(rest) - 13} unexpected bytes after the trailer"}
  end

  defp chunks(_rest, count, i, _crcs, _acc),
    do: {:error, "corrupted recording: unexpected bytes where chunk #{i} should start (after #{count} events)"}

  defp check_crc(bin, crc, what) do
    if :erlang.crc32(bin) == crc, do: :ok, else: {:error, "corrupted recording: the #{what} checksum does not match"}
  end

  defp safe_decode(bin, what) do
    {:ok, :erlang.binary_to_term(bin)}
  rescue
    ArgumentError -> {:error, "corrupted recording: the #{what} cannot be decoded"}
  end

  # A chunk is `{:es_chunk, atoms, pids, rows}`: the distinct atoms (kind, module,
  # function) and pids of its events in two tuples, and one row per event that
  # refers to them by position, so decoding looks each atom up once per chunk.
  defp to_columns(events) do
    {atoms, pids} =
      Enum.reduce(events, {%{}, %{}}, fn e, {as, ps} ->
        as = as |> intern(e.kind) |> intern(e.module) |> intern(e.function)
        {as, intern(ps, e.pid)}
      end)

    rows =
      for e <- events do
        flags = if(e.truncated?, do: 1, else: 0) + if(e.redacted?, do: 2, else: 0)

        {e.id, e.ts, e.wall_time, Map.fetch!(pids, e.pid), Map.fetch!(atoms, e.kind), Map.fetch!(atoms, e.module),
         Map.fetch!(atoms, e.function), e.arity, e.line, e.call_id, e.link, e.correlation_id || 0, e.return_id || 0,
         e.payload, flags}
      end

    {:es_chunk, by_position(atoms), by_position(pids), rows}
  end

  defp intern(map, key) do
    if Map.has_key?(map, key), do: map, else: Map.put(map, key, map_size(map))
  end

  defp by_position(map), do: map |> Enum.sort_by(&elem(&1, 1)) |> Enum.map(&elem(&1, 0)) |> List.to_tuple()

  defp to_events(atoms, pids, rows, i) do
    {:ok,
     Enum.map(rows, fn {id, ts, wall, p, k, m, f, a, line, cid, link, corr, ret, payload, flags} ->
       %Event{id: id, ts: ts, wall_time: wall, pid: elem(pids, p), kind: elem(atoms, k), module: elem(atoms, m),
              function: elem(atoms, f), arity: a, line: line, call_id: cid, link: link, correlation_id: nonzero(corr),
              return_id: nonzero(ret), payload: payload, truncated?: Bitwise.band(flags, 1) != 0,
              redacted?: Bitwise.band(flags, 2) != 0}
     end)}
  rescue
    _ in [FunctionClauseError, ArgumentError, MatchError] ->
      {:error, "corrupted recording: chunk #{i} holds something that is not an event"}
  end

  defp nonzero(0), do: nil
  defp nonzero(n), do: n
end
