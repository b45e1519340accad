defmodule ElixirScope.Capture.Owner do
  @moduledoc """
  The top of ElixirScope's tree (what `{ElixirScope, opts}` and
  `ElixirScope.start/1` start), and the one place where a capture session
  begins and ends.

  The session (ring + store, a native resource) lives in `:persistent_term`,
  owned by no process. This owner creates it, or adopts the one a crashed
  predecessor left (same capture and storage options: same session, ids
  continue, switch and fuse as they were), then runs `ElixirScope.Supervisor`
  (the fuse, the switch loader, the writers) under it. When that tree dies,
  whatever the reason, the owner restarts it after a short backoff (10 ms,
  doubling up to 1 s) and never gives up, so no restart intensity can take the
  events with it. When the owner itself is killed, its own supervisor starts a
  new one, which adopts the session.

  The session ends only on an orderly stop: `ElixirScope.stop/0`, or the
  owner's supervisor shutting it down. Ending it switches capture off, detaches
  the session (waiting for producers inside a push), counts the events still
  in the ring as `lost`, keeps the final accounting for `ElixirScope.stats/0`
  (`last_session:`) and frees everything.
  """
  use GenServer
  require Logger

  alias ElixirScope.Capture.{Control, Ingestor, RingBuffer, Session, SwitchLoader}

  @info_key {ElixirScope, :session}
  @last_key {ElixirScope, :last_session}
  @max_backoff 1_000

  @doc false
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(config), do: GenServer.start_link(__MODULE__, config, name: __MODULE__)

  @doc "The final accounting of the last session that ended, or nil."
  @spec last_session() :: map() | nil
  def last_session, do: :persistent_term.get(@last_key, nil)

  # Loaded at start, not on first use: a module loaded lazily goes through the code
  # server, which a node whose schedulers are all busy does not run for seconds, and the
  # fuse or the switch would wait behind it.
  @preload [
    ElixirScope.NIF,
    Control,
    Ingestor,
    RingBuffer,
    Session,
    SwitchLoader,
    ElixirScope.Capture.InstrumentationRuntime,
    ElixirScope.Capture.AsyncWriter,
    ElixirScope.Capture.Lifecycle,
    Access,
    Keyword,
    Map,
    Enum,
    Process,
    System,
    DateTime,
    Calendar.ISO,
    String.Chars,
    String.Chars.Integer,
    String.Chars.Float,
    String.Chars.BitString,
    String.Chars.Atom,
    Logger
  ]

  @impl true
  def init(config) do
    Process.flag(:trap_exit, true)
    Enum.each(@preload, &Code.ensure_loaded/1)
    await_old_tree()
    Control.ensure_created()
    {info, how} = adopt_or_create(config)
    :ok = Control.start(info.session, Keyword.fetch!(config, :enabled), how)
    _ = SwitchLoader.load_now(:dynamic, 5_000)
    # only what the tree needs: no secret ever sits in a child spec or a state
    capture = config[:capture]
    tree = Keyword.take(capture, [:fuse, :writers, :batch_size, :flush_interval, :lifecycle]) ++ [cluster: config[:cluster]]

    case ElixirScope.Supervisor.start_link(tree) do
      {:ok, sup} -> {:ok, %{tree: tree, sup: sup, backoff: 10, up_since: now_ms()}}
      {:error, reason} -> {:stop, reason}
    end
  end

  @impl true
  def handle_info({:EXIT, sup, reason}, %{sup: sup} = state) do
    backoff = if now_ms() - state.up_since > 5_000, do: 10, else: state.backoff

    Logger.warning(
      "ElixirScope's capture tree stopped (#{inspect(reason, limit: 10)}); restarting it in #{backoff} ms. " <>
        "Recorded events are kept."
    )

    Process.send_after(self(), :restart_tree, backoff)
    {:noreply, %{state | sup: nil, backoff: min(backoff * 2, @max_backoff)}}
  end

  def handle_info(:restart_tree, state) do
    await_old_tree()

    case ElixirScope.Supervisor.start_link(state.tree) do
      {:ok, sup} ->
        {:noreply, %{state | sup: sup, up_since: now_ms()}}

      {:error, reason} ->
        Logger.warning("ElixirScope could not restart its capture tree (#{inspect(reason, limit: 10)}); retrying")
        Process.send_after(self(), :restart_tree, state.backoff)
        {:noreply, %{state | backoff: min(state.backoff * 2, @max_backoff)}}
    end
  end

  def handle_info(_msg, state), do: {:noreply, state}

  @impl true
  def terminate(reason, state) do
    if orderly?(reason) do
      if state.sup, do: stop_tree(state.sup)
      end_session()
    end

    :ok
  end

  @doc """
  Ends the current session (if any): capture off, session detached, the events
  still in the ring counted as lost, the final accounting kept, memory freed.
  """
  @spec end_session() :: :ok
  def end_session do
    case Session.info() do
      nil ->
        :ok

      %{session: s} ->
        Control.stop(s)
        Ingestor.uninstall()
        st = RingBuffer.stats(s)
        dropped = st.dropped_ring_full + st.dropped_overwritten + st.dropped_store + st.dropped_encode

        :persistent_term.put(@last_key, %{
          emitted: st.emitted,
          stored: st.stored,
          dropped: dropped,
          lost: st.pending,
          ended_at: DateTime.utc_now()
        })

        :persistent_term.erase(@info_key)
        # best effort: the constant `false` switch if it can be loaded without waiting
        _ = SwitchLoader.load_now(:off, 0)
        :ok
    end
  end

  defp orderly?(reason), do: reason in [:normal, :shutdown] or match?({:shutdown, _}, reason)

  defp adopt_or_create(config) do
    options = ElixirScope.Config.session_options(config)

    case Session.info() do
      %{options: ^options} = info ->
        :ok = Ingestor.install(info.session)
        {info, :adopted}

      other ->
        if other, do: end_session()
        session = Ingestor.new_session(options)
        clock = {Ingestor.now(), System.system_time(:microsecond)}

        info = %{
          session: session,
          clock: clock,
          config: Keyword.delete(config, :ai),
          started_at: DateTime.utc_now(),
          options: options
        }

        :persistent_term.put(@info_key, info)
        :ok = Ingestor.install(session)
        {info, :new}
    end
  end

  # A tree of a killed owner (or a killed tree) may still be shutting down, its names taken.
  defp await_old_tree do
    for name <- [ElixirScope.Supervisor, Session, SwitchLoader, ElixirScope.Capture.AsyncWriterPool],
        pid = Process.whereis(name),
        do: stop_tree(pid)

    :ok
  end

  defp stop_tree(sup) do
    ref = Process.monitor(sup)
    Process.exit(sup, :shutdown)

    receive do
      {:DOWN, ^ref, _, _, _} -> :ok
    after
      10_000 -> Process.exit(sup, :kill)
    end
  end

  defp now_ms, do: System.monotonic_time(:millisecond)
end
