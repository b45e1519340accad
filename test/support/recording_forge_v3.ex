defmodule ElixirScope.Test.RecordingForgeV3 do
  @moduledoc """
  Builds and takes apart recording files of version 3 (`ElixirScope.Recording.Native`) byte by
  byte, checksums right, so that tests and the fuzzer can make files that lie inside.

  A segment is `{words, rows}`: `words` the ETF of each pid and atom, `rows` tuples
  `{id, ts, call_id, link, pid, module, function, line, flags, kind, arity, payload}` (words as
  1 + their position, 0 for none; kind a number; payload ETF bytes or "").
  """

  alias ElixirScope.{Event, Recording}

  @kinds Event.kinds() |> Enum.with_index() |> Map.new()

  @doc "A file of these segments and this metadata (a map, or the bytes `parse/1` gave)."
  @spec build([{[binary()], [tuple()]}], map() | binary()) :: binary()
  def build(segments, meta \\ %{node: node(), clock: {0, 0}}) do
    meta = if is_map(meta), do: IO.iodata_to_binary(Recording.Format.encode_meta(meta)), else: meta
    {segs, crcs} = segments |> Enum.map(&segment/1) |> Enum.unzip()
    total = segments |> Enum.map(&length(elem(&1, 1))) |> Enum.sum()
    mcrc = :erlang.crc32(meta)
    trailer_crc = :erlang.crc32(for c <- crcs ++ [mcrc], into: <<>>, do: <<c::little-32>>)

    IO.iodata_to_binary([
      "ESCOPE-REC\n",
      <<3::16>>,
      segs,
      <<"M", byte_size(meta)::little-32, mcrc::little-32>>,
      meta,
      <<"E", total::little-64, trailer_crc::little-32>>
    ])
  end

  defp segment({words, rows}) do
    recs =
      for {id, ts, cid, link, p, m, f, line, flags, kind, arity, payload} <- rows, into: <<>> do
        <<id::little-64, ts::little-64, cid::little-64, link::little-64, p::little-32, m::little-32, f::little-32,
          line::little-32, byte_size(payload)::little-32, flags::little-16, kind, arity>>
      end

    table = <<length(words)::little-32>> <> Enum.map_join(words, &<<byte_size(&1)::little-16, &1::binary>>)
    payloads = Enum.map_join(rows, &elem(&1, 11))
    body = recs <> table <> payloads
    crc = :erlang.crc32(body)
    {[<<"S", length(rows)::little-32, byte_size(table)::little-32, byte_size(payloads)::little-32, crc::little-32>>, body], crc}
  end

  @doc "A segment of `events` (payloads as `term_to_binary/1` writes them)."
  @spec segment_of([Event.t()]) :: {[binary()], [tuple()]}
  def segment_of(events) do
    terms = events |> Enum.flat_map(&[&1.pid, &1.module, &1.function]) |> Enum.reject(&is_nil/1) |> Enum.uniq()
    index = terms |> Enum.with_index(1) |> Map.new()
    word = &Map.get(index, &1, 0)

    rows =
      for e <- events do
        flags = if(e.truncated?, do: 1, else: 0) + if(e.redacted?, do: 2, else: 0)
        payload = if e.payload == nil, do: "", else: :erlang.term_to_binary(e.payload)

        {e.id, e.ts, e.call_id, e.link, word.(e.pid), word.(e.module), word.(e.function), e.line, flags,
         Map.fetch!(@kinds, e.kind), e.arity || 255, payload}
      end

    {Enum.map(terms, &:erlang.term_to_binary/1), rows}
  end

  @doc "The segments of a file `build/2` (or a save) made, and its metadata bytes; :error if it is not one."
  @spec parse(binary()) :: {:ok, [{[binary()], [tuple()]}], binary()} | :error
  def parse(<<"ESCOPE-REC\n", 3::16, rest::binary>>), do: sections(rest, [])
  def parse(_), do: :error

  defp sections(<<"S", n::little-32, wl::little-32, pl::little-32, _crc::little-32, rest::binary>>, acc) do
    rl = n * 56
    <<recs::binary-size(rl), table::binary-size(wl), payloads::binary-size(pl), rest::binary>> = rest
    <<nw::little-32, entries::binary>> = table
    {words, <<>>} = Enum.map_reduce(1..nw//1, entries, fn _, <<l::little-16, w::binary-size(l), r::binary>> -> {w, r} end)

    {rows, <<>>} =
      for(<<r::binary-size(56) <- recs>>, do: r)
      |> Enum.map_reduce(payloads, fn <<id::little-64, ts::little-64, cid::little-64, link::little-64, p::little-32,
                                         m::little-32, f::little-32, line::little-32, len::little-32, flags::little-16,
                                         kind, arity>>, ps ->
        <<payload::binary-size(len), ps::binary>> = ps
        {{id, ts, cid, link, p, m, f, line, flags, kind, arity, payload}, ps}
      end)

    sections(rest, [{words, rows} | acc])
  end

  defp sections(<<"M", len::little-32, _crc::little-32, meta::binary-size(len), "E", _::binary>>, acc),
    do: {:ok, Enum.reverse(acc), meta}

  defp sections(_, _acc), do: :error
end
