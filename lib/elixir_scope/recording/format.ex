defmodule ElixirScope.Recording.Format do
  @moduledoc """
  The recording file format, version 2. All integers big-endian. `save` writes it for
  recordings held in tables (`ElixirScope.Recording.Index`) and filters the store cannot
  answer; stores are saved as version 3 (`ElixirScope.Recording.Native`), whose meta section
  is this format's header (`encode_meta/1`, `meta_part/2`).

      magic    "ESCOPE-REC\\n"            11 bytes
      version  u16                        (2)
      header   u32 table length, u32 ETF length, u32 crc32, atom table, ETF of a map
               (created_at µs, node, clock, names, filter, source_stats …)
      chunks   "C", u32 event count, u32 table length, u32 ETF length, u32 crc32, atom table,
               ETF (zlib-compressed or not) of {:es_chunk, atoms, pids, rows}
               (the chunk's distinct atoms and pids, and one row per event referring to them)
      trailer  "E", u64 total events, u32 crc32 of all chunk crc32s

  Each crc32 covers its part's atom table and ETF. An atom table
  (`ElixirScope.Recording.Atoms`) lists every atom and external function the
  part's ETF names. A file is untrusted until checked: `split/2` checks the
  structure, checksums and sizes (each part's inflated size against
  `max_chunk_bytes` and `max_ratio` times its stored size, the sum against
  `max_total_bytes`) before anything is inflated or decoded; `decode_header/1`
  and `decode_chunk/1` inflate within the announced size, decode without
  creating atoms and check every field (`ElixirScope.Recording.Check`). Each
  error says what is wrong and at which byte.

  Version 1 files (no atom tables) are refused: they cannot be read without
  trusting them.
  """

  alias ElixirScope.Event
  alias ElixirScope.Recording.{Atoms, Check, SafeTerm}

  @magic "ESCOPE-REC\n"
  @version 2
  @head 12
  @chunk_head 17
  @trailer 13
  # the saver splits chunks above this (inflated) size, far below the default max_chunk_bytes
  @target_chunk_bytes 4 * 1024 * 1024

  @typedoc "One part of a file: the header (index 0) or chunk `index`, with its byte offset."
  @type part :: %{index: non_neg_integer(), offset: non_neg_integer(), events: non_neg_integer(),
                  table: binary(), etf: binary()}

  @typedoc "Limits from `ElixirScope.Config` `recording:`."
  @type limits :: %{max_chunk_bytes: pos_integer(), max_total_bytes: pos_integer(), max_ratio: pos_integer(),
                    max_new_atoms: non_neg_integer()}

  @doc "The current format version."
  @spec version() :: pos_integer()
  def version, do: @version

  @doc "Magic + version + header (`created_at` a `DateTime`, `source_stats` made plain data)."
  @spec encode_header(map()) :: iodata()
  def encode_header(meta), do: [@magic, <<@version::16>> | encode_meta(meta)]

  @doc """
  The header without magic and version: `u32 table length, u32 ETF length, u32 crc32`, the
  atom table, the ETF of the map. Version 3 files carry it as their meta section.
  """
  @spec encode_meta(map()) :: iodata()
  def encode_meta(meta) do
    meta =
      meta
      |> Map.update(:created_at, nil, &(&1 && DateTime.to_unix(&1, :microsecond)))
      |> Map.update(:source_stats, nil, &Check.to_plain(&1, 4))

    {table, etf} = {Atoms.encode(Atoms.collect(meta, %{})), :erlang.term_to_binary(meta)}
    [<<byte_size(table)::32, byte_size(etf)::32, crc(table, etf)::32>>, table, etf]
  end

  @doc "Checks `encode_meta/1`'s bytes (checksum, sizes): the part to give to `tables/1` and `decode_header/1`."
  @spec meta_part(binary(), limits()) :: {:ok, part()} | {:error, String.t()}
  def meta_part(bin, limits) do
    case header(bin, limits) do
      {:ok, part, ""} -> {:ok, part}
      {:ok, _part, rest} -> {:error, "corrupted recording: #{byte_size(rest)} bytes follow its meta section"}
      error -> error
    end
  end

  @doc """
  Events as chunks: `[{iodata, crc32, count}]`, split so that each inflates
  to at most a few MiB; a chunk that would compress better than `max_ratio`
  (so that a loader would take it for a bomb) is stored uncompressed.
  """
  @spec encode_chunks([Event.t()], 0..9, pos_integer()) :: [{iodata(), non_neg_integer(), pos_integer()}]
  def encode_chunks(events, compression, max_ratio) do
    term = to_columns(events)
    etf = :erlang.term_to_binary(term, compressed: compression)
    {:ok, raw} = SafeTerm.size(etf)

    cond do
      raw > @target_chunk_bytes and length(events) > 1 ->
        {a, b} = Enum.split(events, div(length(events), 2))
        encode_chunks(a, compression, max_ratio) ++ encode_chunks(b, compression, max_ratio)

      raw > byte_size(etf) * max_ratio ->
        [chunk(events, term, :erlang.term_to_binary(term))]

      true ->
        [chunk(events, term, etf)]
    end
  end

  defp chunk(events, {:es_chunk, atoms, pids, rows}, etf) do
    # a row's other fields are integers or nil: only its payload can name another atom
    found = List.foldl(rows, Atoms.collect({:es_chunk, atoms, pids, nil}, %{}), &Atoms.collect(elem(&1, 13), &2))
    table = Atoms.encode(found)
    crc = crc(table, etf)
    {[<<"C", length(events)::32, byte_size(table)::32, byte_size(etf)::32, crc::32>>, table, etf], crc, length(events)}
  end

  @doc "The trailer."
  @spec encode_trailer(non_neg_integer(), [non_neg_integer()]) :: binary()
  def encode_trailer(count, crcs), do: <<"E", count::64, crc_of(crcs)::32>>

  defp crc(table, etf), do: :erlang.crc32(:erlang.crc32(table), etf)
  defp crc_of(crcs), do: :erlang.crc32(for c <- crcs, into: <<>>, do: <<c::32>>)

  @doc """
  Checks a whole file's structure, checksums and sizes without inflating or
  decoding anything: `{:ok, header, chunks}` (parts to give to
  `decode_header/1` and `decode_chunk/1`, after `tables/1`), or `{:error, message}`.
  """
  @spec split(binary(), limits()) :: {:ok, part(), [part()]} | {:error, String.t()}
  def split(<<@magic, version::16, rest::binary>>, limits) do
    if version == @version do
      with {:ok, header, rest} <- header(rest, limits),
           {:ok, chunks} <- chunks(rest, byte_size(@magic) + 2 + part_size(header, @head), 1, {0, [], []}, limits),
           :ok <- total([header | chunks], limits) do
        {:ok, header, chunks}
      end
    else
      {:error,
       "unsupported recording version #{version} at byte 11 (this ElixirScope reads version #{@version}" <>
         if(version == 1, do: "; version 1 files carry no atom table and cannot be loaded safely: save them again", else: "") <>
         ")"}
    end
  end

  def split(bin, _limits) when byte_size(bin) < byte_size(@magic) + 2 do
    head = binary_part(bin, 0, min(byte_size(bin), byte_size(@magic)))

    if bin != "" and String.starts_with?(@magic, head),
      do: {:error, "truncated recording: the file ends inside its header at byte #{byte_size(bin)}"},
      else: {:error, "not an ElixirScope recording (the file is #{byte_size(bin)} bytes and has no ElixirScope magic)"}
  end

  def split(_bin, _limits), do: {:error, "not an ElixirScope recording (it does not start with the ElixirScope magic)"}

  defp part_size(%{table: t, etf: e}, head), do: head + byte_size(t) + byte_size(e)

  defp header(<<tlen::32, elen::32, crc::32, rest::binary>>, limits) do
    offset = byte_size(@magic) + 2

    case rest do
      <<table::binary-size(tlen), etf::binary-size(elen), rest::binary>> ->
        part = %{index: 0, offset: offset, events: 0, table: table, etf: etf}

        with :ok <- check_crc(part, crc), :ok <- check_size(part, limits), do: {:ok, part, rest}

      _ ->
        {:error, "truncated recording: the header at byte #{offset} needs #{tlen + elen} bytes, the file has #{byte_size(rest)} left"}
    end
  end

  defp header(_, _limits), do: {:error, "truncated recording: the file ends inside its header at byte 13"}

  defp chunks(<<"C", n::32, tlen::32, elen::32, crc::32, rest::binary>>, offset, i, {count, crcs, acc}, limits) do
    case rest do
      <<table::binary-size(tlen), etf::binary-size(elen), rest::binary>> ->
        part = %{index: i, offset: offset, events: n, table: table, etf: etf}

        with :ok <- check_crc(part, crc),
             :ok <- check_size(part, limits),
             :ok <- if(n > 0, do: :ok, else: {:error, "corrupted recording: #{where(part)} announces no events"}) do
          chunks(rest, offset + part_size(part, @chunk_head), i + 1, {count + n, [crc | crcs], [part | acc]}, limits)
        end

      _ ->
        {:error,
         "truncated recording: chunk #{i} at byte #{offset} needs #{tlen + elen} bytes, the file has #{byte_size(rest)} left " <>
           "(#{count} events come before it)"}
    end
  end

  defp chunks(<<"E", total::64, crc::32>>, offset, _i, {count, crcs, acc}, _limits) do
    cond do
      total != count ->
        {:error, "corrupted recording: the trailer at byte #{offset} says #{total} events, the chunks hold #{count}"}

      crc != crc_of(Enum.reverse(crcs)) ->
        {:error, "corrupted recording: the trailer checksum at byte #{offset} does not match the chunks"}

      true ->
        {:ok, Enum.reverse(acc)}
    end
  end

  defp chunks(<<"E", _::binary>> = rest, offset, _i, {count, _, _}, _limits) when byte_size(rest) < @trailer,
    do: {:error, "truncated recording: the file ends inside its trailer at byte #{offset} (after #{count} events)"}

  defp chunks(<<>>, offset, _i, {count, _, _}, _limits),
    do: {:error, "truncated recording: the file ends at byte #{offset} without its trailer after #{count} events (an interrupted write?)"}

  defp chunks(<<"C", _::binary>> = rest, offset, i, {count, _, _}, _limits) when byte_size(rest) < @chunk_head,
    do: {:error, "truncated recording: the file ends inside the header of chunk #{i} at byte #{offset} (after #{count} events)"}

  defp chunks(<<"E", _::binary>> = rest, offset, _i, _acc, _limits),
    do: {:error, "corrupted recording: #{byte_size(rest) - @trailer} unexpected bytes after the trailer at byte #{offset + @trailer}"}

  defp chunks(_rest, offset, i, {count, _, _}, _limits),
    do: {:error, "corrupted recording: unexpected bytes at byte #{offset} where chunk #{i} should start (after #{count} events)"}

  defp check_crc(%{table: t, etf: e} = part, crc) do
    if crc(t, e) == crc, do: :ok, else: {:error, "corrupted recording: the #{where(part)} checksum does not match"}
  end

  # sizes are checked from the part's own header, before anything is inflated
  defp check_size(%{table: t, etf: e} = part, limits) do
    case SafeTerm.size(e) do
      {:ok, raw} ->
        cond do
          byte_size(t) + raw > limits.max_chunk_bytes ->
            {:error, "recording refused: #{where(part)} inflates to #{byte_size(t) + raw} bytes, over max_chunk_bytes " <>
                       "(#{limits.max_chunk_bytes}; load option or config recording: [max_chunk_bytes: n])"}

          raw > max(byte_size(e), 64) * limits.max_ratio ->
            {:error, "recording refused: #{where(part)} announces #{raw} bytes from #{byte_size(e)} " <>
                       "(a ratio over max_ratio, #{limits.max_ratio}: an inflation bomb?)"}

          true ->
            :ok
        end

      {:error, what} ->
        {:error, "corrupted recording: #{where(part)}: #{what}"}
    end
  end

  defp total(parts, limits) do
    sum = Enum.reduce(parts, 0, fn %{table: t, etf: e}, acc -> (({:ok, raw} = SafeTerm.size(e)); acc + byte_size(t) + raw) end)

    if sum <= limits.max_total_bytes,
      do: :ok,
      else: {:error, "recording refused: it inflates to #{sum} bytes, over max_total_bytes (#{limits.max_total_bytes}; " <>
                       "load option or config recording: [max_total_bytes: n])"}
  end

  @doc "Where a part is, for messages: `the header at byte 13`, `chunk 2 at byte 5120`."
  @spec where(part()) :: String.t()
  def where(%{index: 0, offset: o}), do: "the header at byte #{o}"
  def where(%{index: i, offset: o}), do: "chunk #{i} at byte #{o}"

  @doc "Parses every part's atom table."
  @spec tables([part()]) :: {:ok, [Atoms.table()]} | {:error, String.t()}
  def tables(parts) do
    Enum.reduce_while(parts, {:ok, []}, fn part, {:ok, acc} ->
      case Atoms.parse(part.table) do
        {:ok, table} -> {:cont, {:ok, [table | acc]}}
        {:error, what} -> {:halt, {:error, "corrupted recording: the atom table of #{where(part)}: #{what}"}}
      end
    end)
  end

  @doc "Decodes and checks the header (after `ElixirScope.Recording.Atoms.admit/2`)."
  @spec decode_header(part()) :: {:ok, map()} | {:error, String.t()}
  def decode_header(part), do: decode(part, &Check.meta/1)

  @doc "Decodes and checks one chunk into events (after `ElixirScope.Recording.Atoms.admit/2`)."
  @spec decode_chunk(part()) :: {:ok, [Event.t()]} | {:error, String.t()}
  def decode_chunk(%{events: n} = part), do: decode(part, &Check.chunk(&1, n))

  defp decode(part, check) do
    with {:ok, term} <- SafeTerm.decode(part.etf) |> in_part(part),
         {:ok, value} <- check.(term) |> in_part(part) do
      {:ok, value}
    end
  end

  defp in_part({:error, what}, part), do: {:error, "corrupted recording: #{where(part)}: #{what}"}
  defp in_part(ok, _part), do: ok

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
end
