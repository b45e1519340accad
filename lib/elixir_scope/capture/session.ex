defmodule ElixirScope.Capture.Session do
  @poll_ms 10

  @moduledoc """
  The capture session as readers and users see it, and the fuse.

  The session itself (ring buffer + event store, a native resource) is created
  by `ElixirScope.Capture.Owner` and kept in `:persistent_term` (`info/0`), not
  in any process: a crash of this process, of the writers or of
  `ElixirScope.Supervisor` loses no event, ids continue, and the switch
  (`ElixirScope.Capture.Control`) stays as it was.

  This process is the fuse. As in redbug and recon_trace, it switches capture
  off by itself when the ring stays full longer than `fuse: [max_full_ms:]` or
  when more than `max_drop_ratio` of the events of one `check_interval` were
  dropped, logs a warning saying why, and reports it in `ElixirScope.status/0`
  until capture is enabled again. It runs at high priority and looks every
  #{@poll_ms} ms (or `check_interval`, if shorter), so that with every scheduler busy
  it still acts within a few tens of milliseconds of the condition.
  """
  use GenServer
  require Logger

  alias ElixirScope.Capture.{Control, Ingestor, RingBuffer}

  @key {ElixirScope, :session}

  @typedoc "What readers need: the native session, the clock origin and the configuration (without `:ai`)."
  @type info :: %{
          session: reference(),
          clock: {integer(), integer()},
          config: keyword(),
          started_at: DateTime.t(),
          options: map()
        }

  @doc "The running session's info, or `nil` when ElixirScope is not running."
  @spec info() :: info() | nil
  def info, do: :persistent_term.get(@key, nil)

  @doc "Switches capture on (`:all`) or on for some modules."
  @spec enable(:all | [module()]) :: :ok
  def enable(what), do: Control.enable(what)

  @doc "Switches capture off (`:all`) or off for some modules."
  @spec disable(:all | [module()]) :: :ok
  def disable(what), do: Control.disable(what)

  @doc "Switch state: `%{enabled: boolean, disabled_modules: [...], fuse: nil | %{reason: ..., at: ...}}`."
  @spec switch_state() :: Control.state()
  def switch_state, do: Control.state()

  @doc false
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(fuse), do: GenServer.start_link(__MODULE__, fuse, name: __MODULE__)

  @impl true
  def init(fuse) do
    Process.flag(:priority, :high)
    if fuse[:enabled], do: send(self(), :fuse_check)
    {:ok, %{fuse: fuse, window_start: Ingestor.now(), last: counters()}}
  end

  @impl true
  def handle_info(:fuse_check, %{fuse: fuse} = state) do
    Process.send_after(self(), :fuse_check, min(fuse[:check_interval], @poll_ms))
    {reason, state} = check(state)

    if reason && Control.blow_fuse(reason) do
      Logger.warning(
        "ElixirScope fuse blew: #{reason}; capture is now off. " <>
          "Call ElixirScope.enable() to switch it on again, or raise capture: [buffer_size:] / narrow the instrumentation."
      )
    end

    {:noreply, state}
  end

  def handle_info(_msg, state), do: {:noreply, state}

  defp check(%{fuse: fuse} = state) do
    now = Ingestor.now()
    stats = counters()

    full? =
      stats.full_since > 0 and now - stats.full_since > fuse[:max_full_ms] * 1_000_000

    # the drop ratio is judged over whole check intervals
    {ratio_reason, state} =
      if now - state.window_start >= fuse[:check_interval] * 1_000_000 do
        d_emitted = stats.emitted - state.last.emitted
        d_dropped = stats.dropped - state.last.dropped

        reason =
          if d_emitted >= fuse[:min_events] and d_dropped / d_emitted > fuse[:max_drop_ratio] do
            "#{d_dropped} of #{d_emitted} events were dropped in #{fuse[:check_interval]} ms " <>
              "(more than #{round(fuse[:max_drop_ratio] * 100)}%)"
          end

        {reason, %{state | window_start: now, last: stats}}
      else
        {nil, state}
      end

    reason =
      cond do
        not Control.enabled?() -> nil
        full? -> "the ring buffer stayed full for more than #{fuse[:max_full_ms]} ms (the writers cannot keep up)"
        true -> ratio_reason
      end

    {reason, state}
  end

  defp counters do
    case info() do
      nil ->
        %{emitted: 0, dropped: 0, full_since: 0}

      %{session: s} ->
        st = RingBuffer.stats(s)
        %{emitted: st.emitted, dropped: st.dropped_ring_full + st.dropped_overwritten, full_since: st.ring_full_since_ns}
    end
  end
end
