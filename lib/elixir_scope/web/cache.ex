defmodule ElixirScope.Web.Cache do
  @moduledoc """
  A bounded memo table of one cinema server (ETS, owned by the server process, read by
  every connection): what is computed once per key and then served from memory — source
  files and module lookups for the inspector (reading a file or loading a module is a call
  to a single VM-wide process, which under load queues every request behind it), and, for
  a recording (which never changes), each API response.

  Bounded by `max_bytes` (what the producer reports an entry weighs) and `max_entries`;
  when full, new results are computed and returned but not kept. No eviction: a server
  serves one recording, whose distinct requests repeat.
  """

  defstruct [:table, :bytes, max_bytes: 64 * 1024 * 1024, max_entries: 50_000]

  @type t :: %__MODULE__{table: :ets.tid(), bytes: :counters.counters_ref(), max_bytes: pos_integer(), max_entries: pos_integer()}

  @doc "A new, empty cache owned by the calling process (`max_bytes:`, `max_entries:`)."
  @spec new(keyword()) :: t()
  def new(opts \\ []) do
    struct!(%__MODULE__{table: :ets.new(__MODULE__, [:set, :public, read_concurrency: true, write_concurrency: true]), bytes: :counters.new(1, [])}, opts)
  end

  @doc """
  The value kept under `key`, or `fun.()`'s: `fun` returns `{value, bytes}` to keep the value
  (weighing `bytes`) or `{value, :skip}` not to. With no cache (`nil`) it just calls `fun`.
  """
  @spec fetch(t() | nil, term(), (-> {value, non_neg_integer() | :skip})) :: value when value: term()
  def fetch(nil, _key, fun), do: fun.() |> elem(0)

  def fetch(%__MODULE__{table: table} = cache, key, fun) do
    case :ets.lookup(table, key) do
      [{_, value}] ->
        value

      [] ->
        {value, bytes} = fun.()
        if bytes != :skip and room?(cache, bytes), do: put(cache, key, value, bytes)
        value
    end
  end

  @doc "Forgets everything (the source changed)."
  @spec clear(t()) :: :ok
  def clear(%__MODULE__{table: table, bytes: bytes}) do
    :ets.delete_all_objects(table)
    :counters.put(bytes, 1, 0)
  end

  defp room?(cache, bytes),
    do: :counters.get(cache.bytes, 1) + bytes <= cache.max_bytes and :ets.info(cache.table, :size) < cache.max_entries

  defp put(cache, key, value, bytes) do
    # two connections computing the same key at once: only the first counts its bytes
    if :ets.insert_new(cache.table, {key, value}), do: :counters.add(cache.bytes, 1, bytes)
  end
end
