defmodule ElixirScope.Capture.Session do
  @moduledoc """
  Owns the native capture session (ring buffer + event store): creates and
  installs it at start, removes it at stop, flips the run-time switch, and runs
  the fuse. The fuse, as in redbug and recon_trace, switches capture off by
  itself when the ring stays full longer than `fuse: [max_full_ms:]` or when
  more than `max_drop_ratio` of the events in one check were dropped, logs a
  warning saying why, and reports it in `ElixirScope.stats/0` until capture is
  enabled again.
  """
  use GenServer
  require Logger

  alias ElixirScope.Capture.{Ingestor, RingBuffer, SwitchLoader}

  @key {ElixirScope, :session}

  @typedoc "What readers need: the native session, the clock origin and the configuration."
  @type info :: %{session: reference(), clock: {integer(), integer()}, config: keyword(), started_at: DateTime.t()}

  @doc false
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(config), do: GenServer.start_link(__MODULE__, config, name: __MODULE__)

  @doc "The running session's info, or `nil` when ElixirScope is not running."
  @spec info() :: info() | nil
  def info, do: :persistent_term.get(@key, nil)

  @doc "Switches capture on (`:all`) or on for some modules."
  @spec enable(:all | [module()]) :: :ok
  def enable(what), do: GenServer.call(__MODULE__, {:enable, what})

  @doc "Switches capture off (`:all`) or off for some modules."
  @spec disable(:all | [module()]) :: :ok
  def disable(what), do: GenServer.call(__MODULE__, {:disable, what})

  @doc "Switch state: `%{enabled: boolean, disabled_modules: [...], fuse: nil | %{reason: ..., at: ...}}`."
  @spec switch_state() :: map()
  def switch_state, do: GenServer.call(__MODULE__, :switch_state)

  @impl true
  def init(config) do
    Process.flag(:trap_exit, true)
    session = Ingestor.new_session(ElixirScope.Config.session_options(config))
    clock = {Ingestor.now(), System.system_time(:microsecond)}
    :persistent_term.put(@key, %{session: session, clock: clock, config: config, started_at: DateTime.utc_now()})
    :ok = Ingestor.install(session)
    enabled = Keyword.fetch!(config, :enabled)
    fuse = config[:capture][:fuse]

    state = %{
      session: session,
      enabled: enabled,
      disabled_modules: [],
      fuse_config: fuse,
      fuse: nil,
      last: %{emitted: 0, dropped: 0}
    }

    apply_switch(state)
    if fuse[:enabled], do: Process.send_after(self(), :fuse_check, fuse[:check_interval])
    {:ok, state}
  end

  @impl true
  def handle_call({:enable, :all}, _from, state) do
    state = %{state | enabled: true, disabled_modules: [], fuse: nil}
    {:reply, apply_switch(state), state}
  end

  def handle_call({:enable, modules}, _from, state) do
    state = %{state | disabled_modules: state.disabled_modules -- modules}
    {:reply, apply_switch(state), state}
  end

  def handle_call({:disable, :all}, _from, state) do
    state = %{state | enabled: false}
    {:reply, apply_switch(state), state}
  end

  def handle_call({:disable, modules}, _from, state) do
    state = %{state | disabled_modules: Enum.uniq(state.disabled_modules ++ modules)}
    {:reply, apply_switch(state), state}
  end

  def handle_call(:switch_state, _from, state) do
    {:reply, %{enabled: state.enabled, disabled_modules: state.disabled_modules, fuse: state.fuse}, state}
  end

  @impl true
  def handle_info(:fuse_check, state) do
    fuse = state.fuse_config
    Process.send_after(self(), :fuse_check, fuse[:check_interval])
    stats = RingBuffer.stats(state.session)
    dropped = stats.dropped_ring_full + stats.dropped_overwritten
    d_emitted = stats.emitted - state.last.emitted
    d_dropped = dropped - state.last.dropped
    state = %{state | last: %{emitted: stats.emitted, dropped: dropped}}

    reason =
      cond do
        not state.enabled ->
          nil

        stats.ring_full_since_ns > 0 and Ingestor.now() - stats.ring_full_since_ns > fuse[:max_full_ms] * 1_000_000 ->
          "the ring buffer stayed full for more than #{fuse[:max_full_ms]} ms (the writers cannot keep up)"

        d_emitted >= fuse[:min_events] and d_dropped / d_emitted > fuse[:max_drop_ratio] ->
          "#{d_dropped} of #{d_emitted} events were dropped in #{fuse[:check_interval]} ms " <>
            "(more than #{round(fuse[:max_drop_ratio] * 100)}%)"

        true ->
          nil
      end

    if reason do
      Logger.warning("ElixirScope fuse blew: #{reason}; capture is now off. " <>
        "Call ElixirScope.enable() to switch it on again, or raise capture: [buffer_size:] / narrow the instrumentation.")
      state = %{state | enabled: false, fuse: %{reason: reason, at: DateTime.utc_now()}}
      apply_switch(state)
      {:noreply, state}
    else
      {:noreply, state}
    end
  end

  def handle_info(_msg, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, state) do
    SwitchLoader.set(false, [])
    Ingestor.uninstall()
    :persistent_term.erase(@key)
    _ = state
    :ok
  end

  defp apply_switch(state) do
    :ok = Ingestor.set_enabled(state.session, state.enabled)
    SwitchLoader.set(state.enabled, state.disabled_modules)
  end
end
