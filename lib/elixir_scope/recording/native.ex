defmodule ElixirScope.Recording.Native do
  @moduledoc """
  Recording files of version 3, written and read in C (`c_src/recording_file.c`; the layout is
  described in `docs/time_travel.md`, "Recording files"): the store's segments as they are — fixed-width
  records, a table of the pids and atoms each segment names, the payloads still ETF — with a
  checksum per section, then the metadata (the version 2 header: `ElixirScope.Recording.Format`)
  and a trailer.

  Saving is one native query over the store (the live session's, or a loaded recording's) whose
  callback writes segments; the metadata is built from what the writer collected (the lines the
  events point at, the atoms their values name) and appended by `finish/2`.

  Loading checks every byte in C (sizes, checksums, record fields, every payload walked as ETF,
  collecting its atoms) while it fills a store of its own; only then are the file's atoms
  admitted within `max_new_atoms` (`ElixirScope.Recording.Atoms.admit/2`) and its pids and atoms
  made terms, without creating any other. Queries on the loaded recording run the same native
  query as the live store; a payload is decoded when its event is asked for.
  """

  import Bitwise, only: [bor: 2]
  alias ElixirScope.{Event, NIF, Recording}
  alias ElixirScope.Storage.{EventCorrelator, NativeCallTrees}
  alias ElixirScope.Recording.{Atoms, Format}

  @doc "The format version these files carry."
  @spec version() :: 3
  def version, do: 3

  @typedoc "What `write/3` collected for the metadata: `{count, lines, struct modules}`."
  @type collected :: {non_neg_integer(), %{optional({module(), pos_integer()}) => true}, %{optional(module()) => true}}

  @doc """
  Writes the events of `store` (a session reference or a loaded recording's) that match
  `filters` (store filters, as `ElixirScope.Query.Filter` makes them) to `path`, all but the
  metadata: `{:ok, writer, collected}` or `{:error, message}`.
  """
  @spec write(reference(), Path.t(), map()) :: {:ok, reference(), collected()} | {:error, String.t()}
  def write(store, path, filters) do
    case NIF.recording_save(store, path, filters) do
      {:error, message} ->
        {:error, "could not write #{path}: #{message}"}

      {writer, count, lines, atoms} ->
        {:ok, writer, {count, Map.new(lines, &{&1, true}), struct_candidates(atoms)}}
    end
  rescue
    e in ArgumentError -> {:error, Exception.message(e)}
  end

  # structs are Elixir modules: the atoms of that shape that exist here (the rest cannot be one)
  defp struct_candidates(atoms) do
    for "Elixir." <> _ = name <- atoms, m = existing(name), into: %{}, do: {m, true}
  end

  defp existing(name) do
    :erlang.binary_to_existing_atom(name, :utf8)
  rescue
    ArgumentError -> nil
  end

  @doc "Appends the metadata and the trailer; the file is synced and closed."
  @spec finish(reference(), map()) :: :ok | {:error, String.t()}
  def finish(writer, meta), do: NIF.recording_save_end(writer, IO.iodata_to_binary(Format.encode_meta(meta)))

  @doc """
  Loads a version 3 file: `{:ok, store, meta}` (meta checked by `ElixirScope.Recording.Check`),
  or `{:error, message}`.
  """
  @spec load(Path.t(), Format.limits()) :: {:ok, reference(), map()} | {:error, String.t()}
  def load(path, limits) do
    with {:ok, store, meta_bin, names, exports} <- NIF.recording_open(path, limits.max_total_bytes),
         {:ok, header} <- Format.meta_part(meta_bin, limits),
         {:ok, [table]} <- Format.tables([header]),
         :ok <- Atoms.admit([table, {names, exports}], limits.max_new_atoms) |> refused(),
         :ok <- NIF.recording_ready(store),
         {:ok, meta} <- Format.decode_header(header) do
      {:ok, store, meta}
    end
  end

  defp refused({:error, what}), do: {:error, "recording refused: #{what}"}
  defp refused(:ok), do: :ok

  @doc "Events of a loaded recording matching normalised store filters."
  @spec query(Recording.t(), map()) :: [Event.t()] | {:error, String.t()}
  def query(%Recording{store: store, meta: meta}, filters) do
    store |> NIF.recording_query(filters) |> Enum.map(&event(&1, meta[:clock]))
  rescue
    e in ArgumentError -> {:error, Exception.message(e)}
  end

  @doc """
  The call trees of the events matching normalised store filters, one list of roots per process,
  built in C from the recording's events, nodes and all (see `ElixirScope.Storage.DataAccess.call_trees_by_pid/1`).
  """
  @spec call_trees_by_pid(Recording.t(), map()) :: %{pid() => [EventCorrelator.call_node()]} | {:error, String.t()}
  def call_trees_by_pid(%Recording{store: store, meta: meta}, filters) do
    NativeCallTrees.run(&NIF.recording_query_call_trees(store, filters, &1), meta[:clock])
  rescue
    e in ArgumentError -> {:error, Exception.message(e)}
  end

  @doc "The event with this id, or nil."
  @spec get(Recording.t(), pos_integer()) :: Event.t() | nil
  def get(%Recording{store: store, meta: meta}, id) when is_integer(id) and id > 0 do
    case NIF.recording_get(store, id) do
      nil -> nil
      tuple -> event(tuple, meta[:clock])
    end
  end

  def get(_rec, _id), do: nil

  # A payload is decoded when its event is read. The loader walked it as ETF (its atoms all
  # admitted), but the VM is stricter (a map with a key twice…): a crafted file's payload the VM
  # refuses reads as nil, flagged truncated, rather than failing the query.
  defp event(tuple, clock) do
    Event.from_tuple(tuple, clock)
  rescue
    _error -> Event.from_tuple(tuple |> put_elem(10, bor(elem(tuple, 10), 1)) |> put_elem(11, ""), clock)
  end

  @doc "`%{events:, first_id:, last_id:, bytes:, pids:}` of a loaded recording."
  @spec info(Recording.t()) :: %{events: non_neg_integer(), first_id: non_neg_integer(), last_id: non_neg_integer(),
                                   bytes: non_neg_integer(), pids: [pid()]}
  def info(%Recording{store: store}) do
    {events, first, last, bytes, pids} = NIF.recording_info(store)
    %{events: events, first_id: first, last_id: last, bytes: bytes, pids: pids}
  end
end
