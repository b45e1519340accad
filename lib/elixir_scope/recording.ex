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

  Files are versioned and checksummed (version 3, the store's own layout written and read in
  C: `ElixirScope.Recording.Native`; version 2: `ElixirScope.Recording.Format`) and
  written atomically: to a temporary file in the same directory, synced, then
  renamed over `path`, so a crash never leaves half a recording behind.
  Loading treats every file as untrusted (bounded atoms, sizes and types; see `load/2`).
  """

  alias ElixirScope.{Config, Event, Query}
  alias ElixirScope.Capture.Session
  alias ElixirScope.Query.{Filter, Source}
  alias ElixirScope.Recording.{Atoms, Format, Index, Native, SafeTerm, Sources, Structs}
  alias ElixirScope.Storage.DataAccess

  defstruct [:path, :meta, :tables, :store]

  @typedoc """
  A recording: its events in a native store (`store`, a file of version 3: see
  `ElixirScope.Recording.Native`) or in `ElixirScope.Recording.Index` tables (a version 2 file,
  or events given to `from_events/2`).
  """
  @type t :: %__MODULE__{path: String.t() | nil, meta: map(), tables: Index.tables() | nil, store: reference() | nil}

  @chunk 8192
  @stale_seconds 15 * 60
  # the most heap a save or load task takes up front (8 MiB)
  @task_heap_words 1024 * 1024

  @doc """
  Saves events to `path`. `filter` is `:all` or `ElixirScope.Query` filters
  (`module:`, `pid:`, `since:` …). Options: `source:` (default: the default
  source), `nodes:` (a cluster's nodes, `:all` or a list: every node's events merged,
  with the clock offsets and the nodes missing in the header's `cluster` map; see
  `ElixirScope.Cluster`), `timeout:` (ms, with `nodes:`), `format:` (3, the default, or 2; a
  source held in tables, or `payload:`/`where:` filters, are saved as 2), `compressed:` (0–9,
  default 1; version 2 only),
  and `source_context:` and `max_source_bytes:` (default: `ElixirScope.Config` `recording:`).
  Returns `{:ok, %{path:, events:, bytes:}}` or `{:error, message}`.

  A recording is self-contained: with the events it keeps the source lines
  around each recorded line (`ElixirScope.Recording.Sources`) and the field
  names of the structs in the recorded values (`ElixirScope.Recording.Structs`),
  so that the cinema and IEx show the code and print the structs where the
  recorded code is not loaded. They go in the header, which comes first in
  the file and is known only when every event has been read: the chunks are
  written to a second temporary file and copied after the header.

  The temporary files are named after the host and node, the OS process, the
  saving process and a unique integer, so that saves from several nodes to
  one path never share them; temporary files of `path` left by saves that died
  (their process is gone, or untouched for #{div(@stale_seconds, 60)} minutes) are deleted first.
  """
  @spec save(Path.t(), :all | keyword(), keyword()) :: {:ok, map()} | {:error, String.t()}
  def save(path, filter \\ :all, opts \\ []) do
    case Keyword.pop(opts, :nodes) do
      {nil, opts} -> save_source(path, filter, opts)
      {nodes, opts} -> save_cluster(path, filter, nodes, opts)
    end
  end

  defp save_cluster(path, filter, nodes, opts) do
    with {:ok, rec} <- ElixirScope.Cluster.snapshot([nodes: nodes] ++ Keyword.take(opts, [:timeout])) do
      try do
        save_source(path, filter, Keyword.put(opts, :source, rec))
      after
        close(rec)
      end
    end
  end

  defp save_source(path, filter, opts) do
    source = Source.resolve(opts[:source])

    case native_store(source, filter, opts) do
      {:ok, store, store_filters} -> save_native(path, source, store, store_filters, filter, opts)
      :v2 -> save_v2(path, source, filter, opts)
    end
  end

  # Version 3 (written in C) from a store: the live session's or a version 3 recording's, with
  # the filters the store answers itself; else (`format: 2`, a recording held in tables, payload
  # or `where:` predicates) version 2.
  defp native_store(source, filter, opts) do
    with true <- Keyword.get(opts, :format, Native.version()) == Native.version() || :v2,
         {:ok, store} <- store_of(source),
         {:ok, %{preds: [], store: store_filters}} <- native_filters(filter, source) do
      {:ok, store, store_filters}
    else
      _ -> :v2
    end
  end

  defp store_of(:live) do
    case ElixirScope.running?() && Session.info() do
      %{session: s} -> {:ok, s}
      _ -> :v2
    end
  end

  defp store_of(%__MODULE__{store: s}) when s != nil, do: {:ok, s}
  defp store_of(_source), do: :v2

  defp native_filters(:all, _source), do: {:ok, %{preds: [], store: %{}}}
  defp native_filters(filters, source), do: Filter.normalize(Keyword.put(filters, :source, source))

  defp save_native(path, source, store, store_filters, filter, opts) do
    path = Path.expand(path)
    tmp = temp_path(path)

    with {:ok, limits} <- limits(opts),
         {:ok, meta} <- meta(source, filter),
         :ok <- File.mkdir_p(Path.dirname(path)) |> file_error(Path.dirname(path)),
         _ = clean_orphans(path),
         _ = if(source == :live, do: DataAccess.flush()),
         {:ok, writer, {count, lines, structs}} <- Native.write(store, tmp, store_filters),
         code = code_meta({%{lines: lines, open: %{}}, structs}, limits, source),
         :ok <- Native.finish(writer, meta |> Map.merge(code) |> Map.put(:format, Native.version())),
         :ok <- File.rename(tmp, path) |> file_error(path) do
      {:ok, %{path: path, events: count, bytes: File.stat!(path).size}}
    else
      error ->
        _ = File.rm(tmp)
        error
    end
  end

  defp save_v2(path, source, filter, opts) do
    filters = if filter == :all, do: [], else: filter
    path = Path.expand(path)
    tmp = temp_path(path)
    body = tmp <> ".body"

    with :ok <- check_source(source),
         {:ok, limits} <- limits(opts),
         {:ok, meta} <- meta(source, filter),
         :ok <- File.mkdir_p(Path.dirname(path)) |> file_error(Path.dirname(path)),
         _ = clean_orphans(path),
         {:ok, count, code} <- write_body(body, source, filters, Keyword.get(opts, :compressed, 1), limits),
         :ok <- write_file(tmp, Map.merge(meta, code_meta(code, limits, source)), body),
         :ok <- File.rename(tmp, path) |> file_error(path) do
      _ = File.rm(body)
      {:ok, %{path: path, events: count, bytes: File.stat!(path).size}}
    else
      error ->
        _ = File.rm(body)
        _ = File.rm(tmp)
        error
    end
  end

  # the chunks and the trailer; what the events say of the recorded code is noted on the way.
  # Pages are read and encoded by one task each, on every scheduler; their chunks are
  # written in order, and the source lines are merged in order (calls span pages).
  defp write_body(body, source, filters, compression, limits) do
    writing(body, fn io ->
      {count, crcs, code} =
        pages(source, filters)
        |> Task.async_stream(&encode_page(&1, source, compression, limits),
          max_concurrency: System.schedulers_online(),
          ordered: true,
          timeout: :infinity
        )
        |> Enum.reduce({0, [], {Sources.new(), %{}}}, fn
          {:ok, {:error, message}}, _acc ->
            throw({:query_error, message})

          {:ok, {chunks, scanned, found}}, {count, crcs, {lines, structs}} ->
          code = {Sources.merge(lines, scanned), Map.merge(structs, found)}

          Enum.reduce(chunks, {count, crcs, code}, fn {data, crc, n}, {count, crcs, code} ->
            :ok = :file.write(io, data)
            {count + n, [crc | crcs], code}
          end)
        end)

      :ok = :file.write(io, Format.encode_trailer(count, Enum.reverse(crcs)))
      {:ok, count, code}
    end)
  end

  # What the tasks read: with no filter, id ranges of at most @chunk ids each (a task
  # queries its own range); with filters, pages of the query stream.
  defp pages(source, []) do
    case {first_id(source, :asc), first_id(source, :desc)} do
      {nil, _} -> []
      {lo, hi} -> Stream.map(lo..hi//@chunk, &{:ids, &1 - 1, min(&1 + @chunk, hi + 1)})
    end
  end

  defp pages(source, filters) do
    Query.stream(filters, source: source, chunk: @chunk) |> Stream.chunk_every(@chunk) |> Stream.map(&{:events, &1})
  end

  defp first_id(source, order) do
    case Query.events(order: order, limit: 1, source: source) do
      [%Event{id: id}] -> id
      [] -> nil
      {:error, message} -> throw({:query_error, message})
    end
  end

  defp encode_page({:ids, after_id, before_id}, source, compression, limits) do
    # a page's events and their encoding take a few megabytes: grown once, not collection by collection
    Process.flag(:min_heap_size, @task_heap_words)
    filters = %{after_id: after_id, before_id: before_id, order: :asc}

    case Source.events(source, if(source == :live, do: Map.put(filters, :flush, false), else: filters)) do
      {:error, _} = error -> error
      events -> encode_page({:events, events}, source, compression, limits)
    end
  end

  defp encode_page({:events, []}, _source, _compression, _limits), do: {[], Sources.scan([]), %{}}

  defp encode_page({:events, events}, _source, compression, limits),
    do: {Format.encode_chunks(events, compression, limits.max_ratio), Sources.scan(events), Structs.add(%{}, events)}

  defp write_file(tmp, meta, body) do
    writing(tmp, fn io ->
      :ok = IO.binwrite(io, Format.encode_header(meta)) |> raw_ok()
      {:ok, _} = File.open(body, [:read, :binary, :raw], &:file.copy(&1, io))
      :ok
    end)
  end

  # runs `fun` on `file` opened for writing, then syncs and closes it
  defp writing(file, fun) do
    with {:ok, io} <- File.open(file, [:write, :binary, :raw, :delayed_write]) |> file_error(file) do
      try do
        result = fun.(io)
        :ok = :file.sync(io)
        result
      rescue
        e -> {:error, "could not write #{file}: #{Exception.message(e)}"}
      catch
        :throw, {:query_error, msg} -> {:error, msg}
      after
        File.close(io)
      end
    end
  end

  # a recording saved again keeps what it carries of code that is not loaded here
  defp code_meta({lines, structs}, limits, source) do
    saved = if is_struct(source, __MODULE__), do: source.meta, else: %{}
    {sources, omitted} = Sources.build(lines, limits.source_context, limits.max_source_bytes, saved[:sources] || %{})
    %{sources: sources, sources_omitted: omitted, structs: Structs.build(structs, saved[:structs] || %{})}
  end

  @doc false
  # the temporary file a save of `path` by the calling process writes
  @spec temp_path(Path.t()) :: Path.t()
  def temp_path(path), do: "#{path}.tmp-#{owner_tag()}-#{System.unique_integer([:positive])}"

  # who owns a temporary file: host and node (hashed), OS process, saving process ("N.S" of <0.N.S>)
  defp owner_tag do
    {:ok, host} = :inet.gethostname()
    hash = :erlang.phash2({node(), host}) |> Integer.to_string(16) |> String.pad_leading(8, "0") |> String.downcase()
    [_node, n, s] = Regex.run(~r/<(\d+)\.(\d+)\.(\d+)>/, List.to_string(:erlang.pid_to_list(self())), capture: :all_but_first)
    "#{hash}-#{System.pid()}-#{n}.#{s}"
  end

  defp clean_orphans(path) do
    {dir, prefix} = {Path.dirname(path), Path.basename(path) <> ".tmp-"}
    [mine, os_pid, _] = String.split(owner_tag(), "-")

    for name <- File.ls!(dir), String.starts_with?(name, prefix), file = Path.join(dir, name),
        orphan?(String.split(String.replace_prefix(name, prefix, ""), "-"), file, mine, os_pid),
        do: File.rm(file)
  rescue
    _ in File.Error -> []
  end

  # a temporary file is an orphan when its saving process (in this VM) or OS process
  # (on this host) is gone, or when nothing has written to it for a while
  defp orphan?(tag, file, mine, os_pid) do
    stale? =
      case File.stat(file, time: :posix) do
        {:ok, %{mtime: t}} -> System.os_time(:second) - t > @stale_seconds
        _ -> false
      end

    case tag do
      [^mine, ^os_pid, proc, _n] -> stale? or not alive?(proc)
      [^mine, other, _proc, _n] -> stale? or (File.dir?("/proc/self") and not File.dir?("/proc/#{other}"))
      _ -> stale?
    end
  end

  defp alive?(proc) do
    Process.alive?(:erlang.list_to_pid(~c"<0.#{proc}>"))
  rescue
    ArgumentError -> true
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
       filter: inspect(filter, limit: 100, printable_limit: 1000),
       source_stats: stats,
       otp_release: System.otp_release(),
       elixir: System.version()
     }
     |> Map.merge(cluster_meta(source))}
  end

  defp cluster_meta(%__MODULE__{meta: %{cluster: c}}) when is_map(c), do: %{cluster: c}
  defp cluster_meta(_source), do: %{}

  @doc """
  Loads a recording. Options: `default: true` (the default) makes it the
  default source for `ElixirScope.Query` and the IEx helpers; the limits of
  `ElixirScope.Config` `recording:` (`max_new_atoms:`, `max_chunk_bytes:`,
  `max_total_bytes:`, `max_ratio:`) may be given here too.
  Returns `{:ok, recording}` or `{:error, message}` (missing, foreign,
  truncated, corrupted or refused file; the message says where).

  Every file is untrusted: at most `max_new_atoms` atoms are created (those its
  atom tables or, in version 3, its payloads and words name); nothing is inflated past
  `max_chunk_bytes` per chunk, `max_total_bytes` in all, or `max_ratio` times its stored
  size; a file is at most `max_total_bytes`; every field is checked. See
  `ElixirScope.Recording.Native` (version 3) and `ElixirScope.Recording.Format` (version 2).
  """
  @spec load(Path.t(), keyword()) :: {:ok, t()} | {:error, String.t()}
  def load(path, opts \\ []) do
    path = Path.expand(path)

    with {:ok, limits} <- limits(opts) do
      if version(path) == Native.version(), do: load_native(path, limits, opts), else: load_v2(path, limits, opts)
    end
  end

  # the version a file says it is (nil when it cannot say): the rest of the file is read by its loader
  defp version(path) do
    with {:ok, io} <- :file.open(path, [:read, :binary, :raw]) do
      try do
        case :file.read(io, 13) do
          {:ok, <<"ESCOPE-REC\n", v::16>>} -> v
          _ -> nil
        end
      after
        :file.close(io)
      end
    else
      _ -> nil
    end
  end

  defp load_native(path, limits, opts) do
    case Native.load(path, limits) do
      {:ok, store, meta} ->
        Structs.register(meta[:structs])
        rec = %__MODULE__{path: path, meta: Map.merge(%{names: %{}}, meta), store: store}
        rec = put_in(rec.meta[:count], Native.info(rec).events) |> put_in([Access.key(:meta), :format], Native.version())
        if Keyword.get(opts, :default, true), do: Source.put_default(rec)
        {:ok, rec}

      {:error, message} ->
        {:error, "#{path}: #{message}"}
    end
  end

  defp load_v2(path, limits, opts) do
    with {:ok, bin} <- read(path, limits),
         {:ok, header, chunks} <- Format.split(bin, limits),
         {:ok, atom_tables} <- Format.tables([header | chunks]),
         :ok <- Atoms.admit(atom_tables, limits.max_new_atoms) |> refused(),
         {:ok, meta} <- Format.decode_header(header),
         {:ok, tables, count} <- index(chunks) do
      Structs.register(meta[:structs])
      meta = Map.merge(%{names: %{}}, meta) |> Map.merge(%{format: Format.version(), count: count})
      rec = %__MODULE__{path: path, meta: meta, tables: tables}
      if Keyword.get(opts, :default, true), do: Source.put_default(rec)
      {:ok, rec}
    else
      {:error, "cannot read " <> _ = message} -> {:error, message}
      {:error, message} -> {:error, "#{path}: #{message}"}
    end
  end

  @limit_keys [:max_new_atoms, :max_chunk_bytes, :max_total_bytes, :max_ratio, :source_context, :max_source_bytes]

  defp limits(opts) do
    with {:ok, config} <- Config.validate(recording: Keyword.take(opts, @limit_keys)),
         do: {:ok, Map.new(config[:recording])}
  end

  # the whole file is read, so only a regular file, and no more than the limits allow (a file
  # is at most about 1.5 times what it inflates to: each chunk holds at least one event)
  defp read(path, limits) do
    max = div(limits.max_total_bytes * 3, 2) + 64

    with {:ok, %{type: :regular, size: size}} <- File.stat(path),
         :ok <- if(size <= max, do: :ok, else: {:error, :too_big}),
         {:ok, bin} <- read_at_most(path, size + 1, max) do
      {:ok, bin}
    else
      {:ok, %{type: type}} ->
        {:error, "cannot read #{path}: it is not a regular file (#{type})"}

      {:error, :too_big} ->
        {:error, "#{path}: recording refused: the file is larger than max_total_bytes (#{limits.max_total_bytes}) allows"}

      {:error, reason} ->
        {:error, "cannot read #{path}: #{:file.format_error(reason)}"}
    end
  end

  # reads `n` bytes at most (a read allocates what it asks for up front, so `n` is
  # the size the file had, plus one to see it grow), refusing more than `max`
  defp read_at_most(path, n, max) do
    with {:ok, io} <- :file.open(path, [:read, :binary, :raw]) do
      try do
        case :file.read(io, n) do
          {:ok, bin} when byte_size(bin) > max -> {:error, :too_big}
          {:ok, bin} -> {:ok, bin}
          :eof -> {:ok, ""}
          error -> error
        end
      after
        :file.close(io)
      end
    end
  end

  defp refused({:error, what}), do: {:error, "recording refused: #{what}"}
  defp refused(:ok), do: :ok

  # chunks are decoded, checked and indexed by several processes at once; then
  # each chunk's ids must lie above the previous chunk's
  defp index(chunks) do
    tables = Index.new()

    result =
      chunks
      |> Task.async_stream(
        &decode_chunk(tables, &1),
        max_concurrency: System.schedulers_online(),
        ordered: true,
        timeout: :infinity
      )
      |> Enum.reduce_while({:ok, 0, 0}, fn
        {:ok, {:ok, {part, first, last}}}, {:ok, count, prev} ->
          if first > prev,
            do: {:cont, {:ok, count + part.events, last}},
            else: {:halt, {:error, "corrupted recording: #{Format.where(part)}: its first id (#{first}) is not above the previous chunk's last (#{prev})"}}

        {:ok, {:error, message}}, _ ->
          {:halt, {:error, message}}
      end)

    case result do
      {:ok, count, _} ->
        Index.finish(tables, length(chunks))
        {:ok, tables, count}

      error ->
        Index.close(tables)
        error
    end
  end

  defp decode_chunk(tables, part) do
    # a chunk's terms take about a word per byte of its ETF: the heap is grown once rather than
    # collection by collection, within a bound (the size is the file's claim, checked only later)
    {:ok, raw} = SafeTerm.size(part.etf)
    Process.flag(:min_heap_size, min(raw, @task_heap_words))

    with {:ok, events} <- Format.decode_chunk(part) do
      Index.insert(tables, part.index, events)
      {:ok, {part, hd(events).id, List.last(events).id}}
    end
  rescue
    # a task's crash would take the caller down; this would be a bug, and is said to be one
    e -> {:error, "internal error on #{Format.where(part)}: #{Exception.message(e)}"}
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
    # a native store is freed with the last reference to it
    if tables, do: Index.close(tables), else: :ok
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
    |> Map.merge(if(meta[:cluster], do: %{cluster: ElixirScope.Cluster.coverage(rec)}, else: %{}))
  end
end
