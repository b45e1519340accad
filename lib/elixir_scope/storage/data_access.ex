defmodule ElixirScope.Storage.DataAccess do
  @moduledoc """
  Reads the native event store. Every function returns `%ElixirScope.Event{}`
  structs in id order (which is each process's exact order), drains the ring
  first so that what was just recorded is visible, and runs the native query on
  a dirty scheduler. With no running session they return `[]` (or `nil`).

  Filters (`get_events/1`): `pid:` (a pid or registered name), `module:`,
  `function:`, `arity:`, `kind:`/`event_type:` (a kind or a list), `call_id:`,
  `correlation_id:`, `since:`/`until:` (monotonic ns or `DateTime`), `after_id:`,
  `before_id:`, `limit:`, `order:` (`:asc` | `:desc`), `flush:` (default true).
  """

  alias ElixirScope.Capture.{Lifecycle, RingBuffer, Session}
  alias ElixirScope.{Event, NIF}
  alias ElixirScope.Storage.{EventCorrelator, NativeCallTrees}

  @type filters :: keyword()

  @doc """
  Drains the ring into the store now, with the lifecycle (`:spawn`/`:exit`) of the processes
  seen so far; returns how many events moved.
  """
  @spec flush() :: non_neg_integer()
  def flush do
    case Session.info() do
      nil ->
        0

      %{session: s, config: c} ->
        n = RingBuffer.drain_all(s, c[:capture][:batch_size])
        Lifecycle.sync()
        n + RingBuffer.drain_all(s, c[:capture][:batch_size])
    end
  end

  @doc "The event with this id, or nil."
  @spec get_event(pos_integer()) :: Event.t() | nil
  def get_event(id) when is_integer(id) and id > 0 do
    with %{session: s, clock: clock} <- Session.info(),
         _ <- flush(),
         tuple when is_tuple(tuple) <- NIF.get_event(s, id) do
      Event.from_tuple(tuple, clock)
    else
      _ -> nil
    end
  end

  @doc "Events matching `filters` (see the module doc). `{:error, message}` for a bad filter."
  @spec get_events(filters()) :: [Event.t()] | {:error, String.t()}
  def get_events(filters \\ []) when is_list(filters),
    do: read(filters, [], fn s, query, clock -> s |> NIF.query_events(query, clock) |> Event.from_store() end)

  @doc """
  The call trees of the events matching `filters`, one list of roots per process (as
  `ElixirScope.Storage.EventCorrelator.call_trees_by_pid/1` over `get_events(filters)`), built
  in C from the store's events, nodes and all. `{:error, message}` for a bad filter.
  """
  @spec call_trees_by_pid(filters()) :: %{pid() => [EventCorrelator.call_node()]} | {:error, String.t()}
  def call_trees_by_pid(filters) when is_list(filters) do
    read(filters, %{}, fn s, query, clock ->
      NativeCallTrees.run(&NIF.query_call_trees(s, query, &1), clock)
    end)
  end

  # `none` without a session; else the filters checked, the ring flushed (unless `flush: false`)
  # and `fun.(session, query, clock)`, whose ArgumentError (a bad filter) becomes {:error, message}
  defp read(filters, none, fun) do
    case Session.info() do
      nil ->
        none

      %{session: s, clock: clock} ->
        with {:ok, query} <- to_query(filters, clock) do
          if Keyword.get(filters, :flush, true), do: flush()

          try do
            fun.(s, query, clock)
          rescue
            e in ArgumentError -> {:error, Exception.message(e)}
          end
        end
    end
  end

  @doc "Every event of `module`."
  @spec get_events_for_module(module(), filters()) :: [Event.t()] | {:error, String.t()}
  def get_events_for_module(module, opts \\ []), do: get_events([module: module] ++ opts)

  @doc "Every event of `module.function/arity`."
  @spec get_events_for_function(module(), atom(), non_neg_integer() | nil, filters()) ::
          [Event.t()] | {:error, String.t()}
  def get_events_for_function(module, function, arity \\ nil, opts \\ []) do
    arity_filter = if arity, do: [arity: arity], else: []
    get_events([module: module, function: function] ++ arity_filter ++ opts)
  end

  @doc "Every event of one process (`opts`: `limit:`, `since:`, `until:`, `order:` …)."
  @spec get_events_for_pid(pid() | atom(), filters()) :: [Event.t()] | {:error, String.t()}
  def get_events_for_pid(pid, opts \\ []), do: get_events([pid: pid] ++ opts)

  @doc "Every event carrying this correlation id (messages, spawns, custom links)."
  @spec get_correlated_events(pos_integer(), filters()) :: [Event.t()] | {:error, String.t()}
  def get_correlated_events(correlation_id, opts \\ []), do: get_events([correlation_id: correlation_id] ++ opts)

  @doc "Every event between `since` and `until` (monotonic ns or `DateTime`)."
  @spec get_events_in_window(integer() | DateTime.t(), integer() | DateTime.t(), filters()) ::
          [Event.t()] | {:error, String.t()}
  def get_events_in_window(since, until, opts \\ []), do: get_events([since: since, until: until] ++ opts)

  @doc "The events of one call: the call, its locals/expressions/state, and its end."
  @spec get_call(pos_integer()) :: [Event.t()] | {:error, String.t()}
  def get_call(call_id), do: get_events(call_id: call_id)

  @doc "Converts a `DateTime` to the store's monotonic nanoseconds (for `since:`/`until:`)."
  @spec to_monotonic(DateTime.t() | integer()) :: integer()
  def to_monotonic(ts) when is_integer(ts), do: ts

  def to_monotonic(%DateTime{} = dt) do
    {mono0, sys0} = Session.info().clock
    mono0 + (DateTime.to_unix(dt, :microsecond) - sys0) * 1000
  end

  @known [:pid, :module, :function, :arity, :kind, :kinds, :event_type, :call_id, :correlation_id, :since, :until,
          :after_id, :before_id, :limit, :order, :flush]

  defp to_query(filters, clock) do
    Enum.reduce_while(filters, {:ok, %{}}, fn {key, value}, {:ok, q} ->
      case put_filter(key, value, q, clock) do
        {:ok, q} -> {:cont, {:ok, q}}
        {:error, _} = e -> {:halt, e}
      end
    end)
  end

  defp put_filter(:pid, name, q, _) when is_atom(name) do
    case Process.whereis(name) do
      nil -> {:error, "pid: no process is registered as #{inspect(name)}"}
      pid -> {:ok, Map.put(q, :pid, pid)}
    end
  end

  defp put_filter(:pid, pid, q, _) when is_pid(pid) and node(pid) == node(), do: {:ok, Map.put(q, :pid, pid)}
  defp put_filter(k, kind, q, c) when k in [:kind, :kinds, :event_type] and is_atom(kind), do: put_filter(:kinds, [kind], q, c)

  defp put_filter(k, kinds, q, _) when k in [:kind, :kinds, :event_type] and is_list(kinds) do
    case Enum.reject(kinds, &(&1 in Event.kinds())) do
      [] -> {:ok, Map.put(q, :kinds, kinds)}
      bad -> {:error, "unknown event kind(s) #{inspect(bad)}; kinds are #{inspect(Event.kinds())}"}
    end
  end

  defp put_filter(k, %DateTime{} = dt, q, {mono0, sys0}) when k in [:since, :until],
    do: {:ok, Map.put(q, k, max(mono0 + (DateTime.to_unix(dt, :microsecond) - sys0) * 1000, 0))}

  defp put_filter(k, v, q, _) when k in [:since, :until] and is_integer(v), do: {:ok, Map.put(q, k, max(v, 0))}
  defp put_filter(:flush, v, q, _) when is_boolean(v), do: {:ok, q}
  defp put_filter(:order, v, q, _) when v in [:asc, :desc], do: {:ok, Map.put(q, :order, v)}
  defp put_filter(:module, v, q, _) when is_atom(v), do: {:ok, Map.put(q, :module, v)}
  defp put_filter(:function, v, q, _) when is_atom(v), do: {:ok, Map.put(q, :function, v)}
  defp put_filter(:arity, v, q, _) when is_integer(v) and v >= 0, do: {:ok, Map.put(q, :arity, v)}
  defp put_filter(:limit, v, q, _) when is_integer(v) and v > 0, do: {:ok, Map.put(q, :limit, v)}

  defp put_filter(k, v, q, _) when k in [:call_id, :correlation_id, :after_id, :before_id] and is_integer(v) and v >= 0,
    do: {:ok, Map.put(q, k, v)}

  defp put_filter(k, v, _q, _) when k in @known, do: {:error, "invalid value for filter #{k}: #{inspect(v)}"}

  defp put_filter(k, _v, _q, _),
    do: {:error, "unknown filter #{inspect(k)}; known filters: #{Enum.map_join(@known, ", ", &inspect/1)}"}
end
