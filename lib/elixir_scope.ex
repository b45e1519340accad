defmodule ElixirScope do
  @moduledoc """
  ElixirScope records what your instrumented code does — calls, returns,
  exceptions, locals, expressions, GenServer state, messages — into a native
  event store, and lets you travel through it afterwards.

  Start it in your supervision tree:

      children = [{ElixirScope, capture: [buffer_size: 1 <<< 18]}, MyApp.Worker]

  or by hand with `ElixirScope.start/1`. See `ElixirScope.Config` for options.
  """

  alias ElixirScope.AI.LLM.Secret
  alias ElixirScope.Capture.{Owner, RingBuffer, Session}
  alias ElixirScope.Storage.DataAccess

  @doc "Child spec: `{ElixirScope, opts}` in a supervision tree (an `ai: [api_key:]` is wrapped first)."
  @spec child_spec(keyword()) :: Supervisor.child_spec()
  def child_spec(opts) do
    %{id: __MODULE__, start: {__MODULE__, :start_link, [wrap_key(opts)]}, type: :supervisor}
  end

  @doc "Starts ElixirScope linked to the caller (what the child spec runs). Validates `opts` first."
  @spec start_link(keyword()) :: GenServer.on_start() | {:error, String.t()}
  def start_link(opts \\ []) do
    case ElixirScope.Config.validate(opts) do
      {:ok, config} -> Owner.start_link(config)
      {:error, message} -> {:error, message}
    end
  end

  @doc """
  Starts ElixirScope under its own application's supervisor.
  Returns `{:error, message}` for invalid options and `{:error, :already_running}` if it runs.
  """
  @spec start(keyword()) :: :ok | {:error, term()}
  def start(opts \\ []) do
    with {:ok, config} <- ElixirScope.Config.validate(opts),
         {:ok, _} <- Application.ensure_all_started(:elixir_scope) do
      spec = %{id: __MODULE__, start: {Owner, :start_link, [config]}, type: :supervisor}

      case Supervisor.start_child(ElixirScope.AppSupervisor, spec) do
        {:ok, _} -> :ok
        {:error, {:already_started, _}} -> {:error, :already_running}
        {:error, :already_present} ->
          Supervisor.delete_child(ElixirScope.AppSupervisor, __MODULE__)
          start(opts)

        {:error, reason} ->
          {:error, reason}
      end
    end
  end

  @doc """
  Stops ElixirScope (whichever way it was started) and ends the session: recorded
  events are discarded; the final accounting stays in `stats/0` as `last_session:`.
  """
  @spec stop() :: :ok
  def stop do
    with pid when is_pid(pid) <- Process.whereis(Owner),
         {:error, _} <- terminate_app_child() do
      # started in another supervision tree
      try do
        GenServer.stop(pid, :shutdown, 30_000)
      catch
        :exit, _ -> :ok
      end
    else
      :ok -> Supervisor.delete_child(ElixirScope.AppSupervisor, __MODULE__)
      nil -> :ok
    end

    # a session whose processes are all gone is ended too
    Owner.end_session()
  end

  @doc "Whether a capture session exists (it outlives crashes of ElixirScope's processes)."
  @spec running?() :: boolean()
  def running?, do: Session.info() != nil

  @doc "A summary: running, capture switch, fuse, counters."
  @spec status() :: map()
  def status do
    case Session.info() do
      nil ->
        %{running: false}

      info ->
        switch = Session.switch_state()

        %{
          running: true,
          enabled: switch.enabled,
          disabled_modules: switch.disabled_modules,
          fuse: switch.fuse,
          started_at: info.started_at,
          stats: stats()
        }
    end
  end

  @doc """
  Counters of the session (after draining the ring): `emitted == stored + dropped + lost + pending`,
  `dropped` broken down by reason in `dropped_by_reason`, plus evictions and bytes, and
  `backpressure`: how many events found the ring full and waited for room (at most
  `capture: [max_wait_us:]` each) instead of being dropped, and how long in total, and
  `payload_pool`: the bytes of the blocks that hold payloads too large for a ring slot (kept for
  reuse until the session ends, within the ring's payload budget) and how many such payloads
  went to `malloc` instead (larger than 8 KiB, or no block left). The
  session outlives crashes of ElixirScope's processes, so these count from `start/1`.
  `lost` counts events that entered the ring and were destroyed undrained; that happens
  only when a session ends (`stop/0`), so it is 0 here and is reported, with the rest
  of the final accounting, as `last_session:` once stopped.
  """
  @spec stats() :: map()
  def stats do
    case Session.info() do
      nil ->
        case Owner.last_session() do
          nil -> %{running: false}
          last -> %{running: false, last_session: last}
        end

      %{session: session, config: config} ->
        RingBuffer.drain_all(session, config[:capture][:batch_size])
        s = RingBuffer.stats(session)
        reasons = %{ring_full: s.dropped_ring_full, overwritten: s.dropped_overwritten, store: s.dropped_store, encode: s.dropped_encode}

        %{
          emitted: s.emitted,
          stored: s.stored,
          dropped: reasons |> Map.values() |> Enum.sum(),
          dropped_by_reason: reasons,
          lost: 0,
          pending: s.pending,
          evicted: s.evicted_events,
          live_events: s.live_events,
          bytes_used: s.bytes_used,
          record_bytes: s.record_bytes,
          index_bytes: s.index_bytes,
          payload_bytes: s.payload_bytes,
          ring_capacity: s.ring_capacity,
          backpressure: %{waits: s.backpressure_waits, wait_ms: div(s.backpressure_wait_ns, 1_000_000)},
          # payloads too large for a ring slot: the pool's blocks (kept for reuse), and those that went to malloc
          payload_pool: %{bytes: s.payload_pool_bytes, heap_fallbacks: s.payload_heap_fallbacks},
          enabled: s.enabled,
          fuse: Session.switch_state().fuse
        }
    end
  end

  @doc "Switches capture on: everywhere (`:all`, the default) or for the given modules."
  @spec enable(:all | module() | [module()]) :: :ok | {:error, :not_running}
  def enable(what \\ :all), do: with_session(fn -> Session.enable(modules(what)) end)

  @doc "Switches capture off: everywhere (`:all`, the default) or for the given modules."
  @spec disable(:all | module() | [module()]) :: :ok | {:error, :not_running}
  def disable(what \\ :all), do: with_session(fn -> Session.disable(modules(what)) end)

  @doc """
  Recorded events, oldest first. Filters: `pid:` (pid or registered name), `event_type:`
  (a kind or list of kinds), `module:`, `function:`, `arity:`, `call_id:`, `since:`/`until:`
  (monotonic ns or `DateTime`), `limit:`, `order:`.
  """
  @spec get_events(keyword()) :: [ElixirScope.Event.t()] | {:error, term()}
  def get_events(filters \\ []), do: DataAccess.get_events(filters)

  @doc "Moves everything in the ring buffer into the store now."
  @spec flush() :: non_neg_integer()
  def flush, do: DataAccess.flush()

  defp modules(:all), do: :all
  defp modules(m) when is_atom(m), do: [m]
  defp modules(list) when is_list(list), do: list

  defp with_session(fun), do: if(running?(), do: fun.(), else: {:error, :not_running})

  defp terminate_app_child do
    Supervisor.terminate_child(ElixirScope.AppSupervisor, __MODULE__)
  catch
    :exit, _ -> {:error, :no_app_supervisor}
  end

  defp wrap_key(opts) do
    with true <- Keyword.keyword?(opts),
         ai when is_list(ai) <- opts[:ai],
         true <- Keyword.keyword?(ai),
         key when is_binary(key) <- ai[:api_key] do
      Keyword.put(opts, :ai, Keyword.put(ai, :api_key, Secret.wrap(key)))
    else
      _ -> opts
    end
  end

  # -- time travel (names kept from the original ElixirScope; see ElixirScope.Query) --

  @doc "Every recorded state of a GenServer (`ElixirScope.Query.state_history/2`)."
  @spec get_state_history(pid() | atom()) :: [map()] | {:error, String.t()}
  def get_state_history(pid), do: ElixirScope.Query.state_history(pid)

  @doc "A GenServer's state at `at` (`ElixirScope.Query.state_at/3`): `{:ok, state, event}` or `{:error, message}`."
  @spec get_state_at(pid() | atom(), ElixirScope.Query.at()) :: {:ok, term(), ElixirScope.Event.t()} | {:error, String.t()}
  def get_state_at(pid, at), do: ElixirScope.Query.state_at(pid, at)

  @doc "Messages, calls and replies from `from` to `to` (`ElixirScope.Query.message_flow/3`; `opts`: `window:`, `source:`)."
  @spec get_message_flow(pid() | atom(), pid() | atom(), keyword()) :: [map()] | {:error, String.t()}
  def get_message_flow(from, to, opts \\ []), do: ElixirScope.Query.message_flow(from, to, opts)
end

defmodule ElixirScope.Supervisor do
  @moduledoc """
  The capture processes, under `ElixirScope.Capture.Owner`: the fuse
  (`ElixirScope.Capture.Session`), the switch loader, the lifecycle observer
  (`ElixirScope.Capture.Lifecycle`) and the writer pool. None
  of them holds state that matters: the session and the switch live in
  `:persistent_term`, so any of them (or this supervisor) may crash and restart.
  """
  use Supervisor

  @doc false
  @spec start_link(keyword()) :: Supervisor.on_start()
  def start_link(tree), do: Supervisor.start_link(__MODULE__, tree, name: __MODULE__)

  @impl true
  def init(tree) do
    children = [
      {ElixirScope.Capture.Session, tree[:fuse]},
      ElixirScope.Capture.SwitchLoader,
      %{id: ElixirScope.Capture.Lifecycle, start: {__MODULE__, :start_lifecycle, [tree]}},
      %{
        id: ElixirScope.Capture.AsyncWriterPool,
        type: :supervisor,
        start: {__MODULE__, :start_pool, [Keyword.take(tree, [:writers, :batch_size, :flush_interval])]}
      }
    ] ++ cluster(tree[:cluster])

    Supervisor.init(children, strategy: :one_for_one)
  end

  # config :elixir_scope, cluster: [nodes: ...] starts the coordinator with the capture tree
  defp cluster(config) when is_list(config) do
    case config[:nodes] do
      nil -> []
      _nodes -> [{ElixirScope.Cluster.Coordinator, config}]
    end
  end

  defp cluster(_none), do: []

  @doc false
  @spec start_lifecycle(keyword()) :: GenServer.on_start() | :ignore
  def start_lifecycle(tree) do
    if Keyword.get(tree, :lifecycle, true),
      do: ElixirScope.Capture.Lifecycle.start_link(Keyword.take(tree, [:flush_interval])),
      else: :ignore
  end

  @doc false
  @spec start_pool(keyword()) :: Supervisor.on_start()
  def start_pool(opts) do
    %{session: session} = ElixirScope.Capture.Session.info()
    ElixirScope.Capture.AsyncWriterPool.start_link([session: session] ++ opts)
  end
end
