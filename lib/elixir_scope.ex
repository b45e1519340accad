defmodule ElixirScope do
  @moduledoc """
  ElixirScope records what your instrumented code does — calls, returns,
  exceptions, locals, expressions, GenServer state, messages — into a native
  event store, and lets you travel through it afterwards.

  Start it in your supervision tree:

      children = [{ElixirScope, capture: [buffer_size: 1 <<< 18]}, MyApp.Worker]

  or by hand with `ElixirScope.start/1`. See `ElixirScope.Config` for options.
  """

  alias ElixirScope.Capture.{RingBuffer, Session}
  alias ElixirScope.Storage.DataAccess

  @doc "Child spec: `{ElixirScope, opts}` in a supervision tree."
  @spec child_spec(keyword()) :: Supervisor.child_spec()
  def child_spec(opts) do
    %{id: __MODULE__, start: {__MODULE__, :start_link, [opts]}, type: :supervisor}
  end

  @doc "Starts ElixirScope linked to the caller (what the child spec runs). Validates `opts` first."
  @spec start_link(keyword()) :: Supervisor.on_start() | {:error, String.t()}
  def start_link(opts \\ []) do
    case ElixirScope.Config.validate(opts) do
      {:ok, config} -> ElixirScope.Supervisor.start_link(config)
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
      spec = %{id: __MODULE__, start: {ElixirScope.Supervisor, :start_link, [config]}, type: :supervisor}

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

  @doc "Stops ElixirScope (whichever way it was started). Recorded events are discarded."
  @spec stop() :: :ok
  def stop do
    case Process.whereis(ElixirScope.Supervisor) do
      nil ->
        :ok

      pid ->
        if Supervisor.terminate_child(ElixirScope.AppSupervisor, __MODULE__) == :ok do
          Supervisor.delete_child(ElixirScope.AppSupervisor, __MODULE__)
        else
          ref = Process.monitor(pid)
          Process.exit(pid, :shutdown)
          receive do: ({:DOWN, ^ref, _, _, _} -> :ok), after: (5_000 -> :ok)
        end

        :ok
    end
  end

  @doc "Whether ElixirScope is running."
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
  Counters since start (after draining the ring): `emitted == stored + dropped + pending`,
  `dropped` broken down by reason in `dropped_by_reason`, plus evictions and bytes.
  """
  @spec stats() :: map()
  def stats do
    case Session.info() do
      nil ->
        %{running: false}

      %{session: session, config: config} ->
        RingBuffer.drain_all(session, config[:capture][:batch_size])
        s = RingBuffer.stats(session)
        reasons = %{ring_full: s.dropped_ring_full, overwritten: s.dropped_overwritten, store: s.dropped_store, encode: s.dropped_encode}

        %{
          emitted: s.emitted,
          stored: s.stored,
          dropped: reasons |> Map.values() |> Enum.sum(),
          dropped_by_reason: reasons,
          pending: s.pending,
          evicted: s.evicted_events,
          live_events: s.live_events,
          bytes_used: s.bytes_used,
          record_bytes: s.record_bytes,
          index_bytes: s.index_bytes,
          payload_bytes: s.payload_bytes,
          ring_capacity: s.ring_capacity,
          enabled: s.enabled,
          fuse: (running?() && Session.switch_state().fuse) || nil
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
  @moduledoc "The capture tree: the session owner, then the writer pool (rest_for_one)."
  use Supervisor

  @doc false
  @spec start_link(keyword()) :: Supervisor.on_start()
  def start_link(config), do: Supervisor.start_link(__MODULE__, config, name: __MODULE__)

  @impl true
  def init(config) do
    capture = config[:capture]

    children = [
      {ElixirScope.Capture.Session, config},
      %{
        id: ElixirScope.Capture.AsyncWriterPool,
        type: :supervisor,
        start:
          {__MODULE__, :start_pool,
           [[writers: capture[:writers], batch_size: capture[:batch_size], flush_interval: capture[:flush_interval]]]}
      }
    ]

    Supervisor.init(children, strategy: :rest_for_one)
  end

  @doc false
  @spec start_pool(keyword()) :: Supervisor.on_start()
  def start_pool(opts) do
    %{session: session} = ElixirScope.Capture.Session.info()
    ElixirScope.Capture.AsyncWriterPool.start_link([session: session] ++ opts)
  end
end
