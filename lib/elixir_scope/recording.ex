defmodule ElixirScope.Recording do
  @moduledoc """
  Recordings: what the store holds (or a filtered part of it) saved to a file,
  and opened again — in this node or a fresh one, without the recorded code
  loaded and without a capture session — with the same `ElixirScope.Query`
  API, IEx helpers and web cinema.

      {:ok, info} = ElixirScope.Recording.save("run.esrec")                 # everything
      {:ok, _} = ElixirScope.Recording.save("orders.esrec", module: Orders) # a filtered part
      {:ok, rec} = ElixirScope.Recording.load("run.esrec")                  # becomes the default source
      ElixirScope.Query.call_tree(pid)                                      # now reads the recording

  Files are versioned and checksummed (see `ElixirScope.Recording.Format`) and
  written atomically: to a temporary file in the same directory, synced, then
  renamed over `path`, so a crash never leaves half a recording behind.
  """

  alias ElixirScope.{Event, Query}
  alias ElixirScope.Query.Source
  alias ElixirScope.Recording.{Format, Index}

  defstruct [:path, :meta, :tables]

  @type t :: %__MODULE__{path: String.t() | nil, meta: map(), tables: Index.tables()}

  @chunk 8192

  @doc """
  Saves events to `path`. `filter` is `:all` or `ElixirScope.Query` filters
  (`module:`, `pid:`, `since:` …). Options: `source:` (default: the default
  source), `compressed:` (0–9, default 1).
  Returns `{:ok, %{path:, events:, bytes:}}` or `{:error, message}`.
  """
  @spec save(Path.t(), :all | keyword(), keyword()) :: {:ok, map()} | {:error, String.t()}
  def save(path, filter \\ :all, opts \\ []) do
    source = Source.resolve(opts[:source])
    filters = if filter == :all, do: [], else: filter
    compression = Keyword.get(opts, :compressed, 1)
    path = Path.expand(path)
    tmp = "#{path}.tmp-#{System.unique_integer([:positive])}"

    with :ok <- check_source(source),
         {:ok, meta} <- meta(source, filter),
         :ok <- File.mkdir_p(Path.dirname(path)) |> file_error(Path.dirname(path)),
         {:ok, io} <- File.open(tmp, [:write, :binary, :raw, :delayed_write]) |> file_error(tmp) do
      result =
        try do
          :ok = IO.binwrite(io, Format.encode_header(meta)) |> raw_ok()

          {count, crcs} =
            Query.stream(filters, source: source, chunk: @chunk)
            |> Stream.chunk_every(@chunk)
            |> Enum.reduce({0, []}, fn events, {n, crcs} ->
              {data, crc} = Format.encode_chunk(events, compression)
              :ok = :file.write(io, data)
              {n + length(events), [crc | crcs]}
            end)

          :ok = :file.write(io, Format.encode_trailer(count, Enum.reverse(crcs)))
          :ok = :file.sync(io)
          {:ok, count}
        rescue
          e -> {:error, "could not write #{tmp}: #{Exception.message(e)}"}
        catch
          :throw, {:query_error, msg} -> {:error, msg}
        after
          File.close(io)
        end

      with {:ok, count} <- result,
           :ok <- File.rename(tmp, path) |> file_error(path) do
        {:ok, %{path: path, events: count, bytes: File.stat!(path).size}}
      else
        error ->
          _ = File.rm(tmp)
          error
      end
    end
  end

  defp check_source(:live) do
    if ElixirScope.running?(),
      do: :ok,
      else:
        {:error,
         "ElixirScope is not running: there is nothing to save (start it, or pass source: a loaded recording)"}
  end

  defp check_source(_recording), do: :ok

  defp raw_ok(:ok), do: :ok

  defp raw_ok({:error, reason}),
    do: raise(File.Error, reason: reason, action: "write to", path: "recording")

  defp file_error(:ok, _path), do: :ok
  defp file_error({:ok, _} = ok, _path), do: ok
  defp file_error({:error, reason}, path), do: {:error, "#{path}: #{:file.format_error(reason)}"}

  defp meta(source, filter) do
    clock = Source.clock(source)
    names = Source.names(source) |> Map.new(fn {pid, name} -> {name, pid} end)
    stats = Source.stats(source)

    {:ok,
     %{
       format: Format.version(),
       created_at: DateTime.utc_now(),
       node: node(),
       clock: clock,
       names: names,
       filter: inspect(filter),
       source_stats: stats,
       otp_release: System.otp_release(),
       elixir: System.version()
     }}
  end

  @doc """
  Loads a recording. Options: `default: true` (the default) makes it the
  default source for `ElixirScope.Query` and the IEx helpers.
  Returns `{:ok, recording}` or `{:error, message}` (missing, foreign, truncated
  or corrupted file).
  """
  @spec load(Path.t(), keyword()) :: {:ok, t()} | {:error, String.t()}
  def load(path, opts \\ []) do
    path = Path.expand(path)

    case File.read(path) do
      {:ok, bin} ->
        with {:ok, meta, chunks} <- Format.split(bin),
             tables = Index.new(),
             {:ok, count} <- insert_chunks(tables, chunks) do
          Index.finish(tables, length(chunks))
          rec = %__MODULE__{path: path, meta: Map.put(meta, :count, count), tables: tables}
          if Keyword.get(opts, :default, true), do: Source.put_default(rec)
          {:ok, rec}
        else
          {:error, message, tables} ->
            Index.close(tables)
            {:error, "#{path}: #{message}"}

          {:error, message} ->
            {:error, "#{path}: #{message}"}
        end

      {:error, reason} ->
        {:error, "cannot read #{path}: #{:file.format_error(reason)}"}
    end
  end

  # chunks are decoded and indexed by several processes at once
  defp insert_chunks(tables, chunks) do
    chunks
    |> Task.async_stream(
      fn {i, n, _} = chunk ->
        with {:ok, events} <- Format.decode_chunk(chunk),
             do:
               (
                 Index.insert(tables, i, events)
                 {:ok, n}
               )
      end,
      max_concurrency: System.schedulers_online(),
      ordered: false,
      timeout: :infinity
    )
    |> Enum.reduce_while({:ok, 0}, fn
      {:ok, {:ok, n}}, {:ok, count} -> {:cont, {:ok, count + n}}
      {:ok, {:error, message}}, _ -> {:halt, {:error, message, tables}}
    end)
  end

  @doc "Like `load/2` but raises on error."
  @spec load!(Path.t(), keyword()) :: t()
  def load!(path, opts \\ []) do
    case load(path, opts) do
      {:ok, rec} -> rec
      {:error, message} -> raise ArgumentError, message
    end
  end

  @doc """
  A recording built in memory from events (no file): used by tests and by
  tools that hold events already. `meta` may carry `clock:` and `names:`.
  """
  @spec from_events([Event.t()], map()) :: t()
  def from_events(events, meta \\ %{}) do
    tables = Index.new()
    chunks = events |> Enum.sort_by(& &1.id) |> Enum.chunk_every(@chunk)
    chunks |> Enum.with_index(1) |> Enum.each(fn {evs, c} -> Index.insert(tables, c, evs) end)
    Index.finish(tables, length(chunks))

    %__MODULE__{
      path: nil,
      meta: Map.merge(%{format: Format.version(), names: %{}, count: length(events)}, meta),
      tables: tables
    }
  end

  @doc "Frees a recording's tables; if it was the default source, `:live` is again."
  @spec close(t()) :: :ok
  def close(%__MODULE__{tables: tables} = rec) do
    if Source.default() == rec, do: Source.put_default(:live)
    Index.close(tables)
  end

  @doc "A recording's counters: events, id and time range, and the counters of the session it came from."
  @spec stats(t()) :: map()
  def stats(%__MODULE__{meta: meta} = rec) do
    range = Index.id_range(rec)

    %{
      recording: rec.path,
      events: Index.size(rec),
      first_id: range && elem(range, 0),
      last_id: range && elem(range, 1),
      created_at: meta[:created_at],
      node: meta[:node],
      source_stats: meta[:source_stats]
    }
  end
end
