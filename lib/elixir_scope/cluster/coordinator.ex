defmodule ElixirScope.Cluster.Coordinator do
  @moduledoc """
  The process behind `ElixirScope.Cluster` on the coordinating node: which nodes record, their
  clock estimates and event counts, what was collected from them, the shared snapshot of
  `nodes:` queries and the causal corrections the latest snapshot found (which pushed-down
  queries apply). It sets nodes up as they join (`:nodeup`, with `:connected`), marks them down
  (`:nodedown`, counting what is lost), and hands the slow work — measuring clocks, collecting
  events, taking snapshots — to other processes, so that it always answers (`status/0`, node
  events) within a request, whatever a slow node does.
  """
  use GenServer
  require Logger

  alias ElixirScope.Cluster.{Clock, Member, Snapshot}
  alias ElixirScope.Recording

  @defaults [clock_interval: 5_000, collect_interval: 0, timeout: 5_000, snapshot_ttl: 1_000, start_options: []]
  @close_after 60_000

  @doc "The default options."
  @spec defaults() :: keyword()
  def defaults, do: @defaults

  @doc false
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts), do: GenServer.start_link(__MODULE__, opts, name: __MODULE__)

  @impl true
  def init(opts) do
    opts = Keyword.merge(@defaults, opts)
    :ok = :net_kernel.monitor_nodes(true)
    state = %{opts: opts, members: %{}, collected: %{}, skew: %{}, snapshots: %{}, shifts: %{}, measuring: nil, waiting: [], queued: [], collecting: false}
    {:ok, state, {:continue, :setup}}
  end

  @impl true
  def handle_continue(:setup, state) do
    wanted = if state.opts[:nodes] == :connected, do: [node() | Node.list()], else: state.opts[:nodes]
    state = Enum.reduce(wanted, state, &setup/2)
    schedule(:tick, state.opts[:clock_interval])
    schedule(:collect, state.opts[:collect_interval])
    {:noreply, state}
  end

  @impl true
  def handle_call(:status, _from, state), do: {:reply, state.members, state}
  # answered by a measurement that starts after the request (not one already under way)
  def handle_call(:tick, from, %{measuring: nil} = state), do: {:noreply, measure(%{state | waiting: [from | state.waiting]})}
  def handle_call(:tick, from, state), do: {:noreply, %{state | queued: [from | state.queued]}}
  def handle_call({:skew, n, ns}, _from, state), do: {:reply, :ok, put_in(state.skew[n], ns)}

  def handle_call({:plan, nodes}, _from, state) do
    case plan(state, nodes) do
      {:ok, plan} -> {:reply, {:ok, plan, state.opts[:timeout]}, state}
      error -> {:reply, error, state}
    end
  end

  def handle_call({:cached, nodes}, _from, state) do
    {now, ttl} = {System.monotonic_time(:millisecond), state.opts[:snapshot_ttl]}

    case Map.get(state.snapshots, nodes) do
      {rec, at} when now - at < ttl ->
        {:reply, {:ok, rec}, state}

      _ ->
        case plan(state, nodes) do
          {:ok, plan} -> {:reply, {:take, plan, state.opts[:timeout]}, state}
          error -> {:reply, error, state}
        end
    end
  end

  @impl true
  def handle_cast({:shifts, nodes, shifts}, state), do: {:noreply, put_in(state.shifts[Enum.sort(nodes)], shifts)}

  def handle_cast({:snapshot, nodes, rec}, state) do
    with {old, _} <- Map.get(state.snapshots, nodes), do: Process.send_after(self(), {:close, old}, @close_after)
    {:noreply, put_in(state.snapshots[nodes], {rec, System.monotonic_time(:millisecond)})}
  end

  @impl true
  def handle_info(:tick, state) do
    schedule(:tick, state.opts[:clock_interval])
    {:noreply, measure(state)}
  end

  def handle_info({:measured, results}, state) do
    members =
      Enum.reduce(results, state.members, fn {n, clock, last}, members ->
        case members[n] do
          %{state: :recording} = m -> Map.put(members, n, %{m | clock: clock || m.clock, last_id: last || m.last_id})
          _ -> members
        end
      end)

    Enum.each(state.waiting, &GenServer.reply(&1, :ok))
    state = %{state | members: members, measuring: nil, waiting: state.queued, queued: []}
    {:noreply, if(state.waiting == [], do: state, else: measure(state))}
  end

  def handle_info({:collected, n, {last, events}}, state) do
    if match?(%{state: :recording}, state.members[n]) do
      {:noreply, update_in(state.collected, &Map.update(&1, n, {last, events}, fn {_, kept} -> {last, kept ++ events} end))}
    else
      {:noreply, state}
    end
  end

  def handle_info(:collect, state), do: {:noreply, collect(state)}
  def handle_info(:collected_all, state), do: {:noreply, %{state | collecting: false}}

  # with :connected every node that connects is set up; a listed node that comes back is set up again
  def handle_info({:nodeup, n}, state) do
    wanted? = state.opts[:nodes] == :connected or n in state.opts[:nodes]
    if wanted? and not match?(%{state: :recording}, state.members[n]), do: {:noreply, setup(n, state)}, else: {:noreply, state}
  end

  def handle_info({:nodedown, n}, state) do
    case state.members[n] do
      %{state: :recording} = m ->
        {last, _} = Map.get(state.collected, n, {0, []})
        lost = max(m.last_id - last, 0)
        Logger.warning("ElixirScope.Cluster: lost the connection to #{n}; by its last count #{lost} of its recorded events " <>
                         "had not been collected: lost unless it comes back")
        {:noreply, put_in(state.members[n], %{m | state: :down, reason: "disconnected (down or cut off)", lost: lost})}

      _ ->
        {:noreply, state}
    end
  end

  def handle_info({:close, rec}, state) do
    Recording.close(rec)
    {:noreply, state}
  end

  def handle_info(_msg, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, state) do
    for {_nodes, {rec, _}} <- state.snapshots, do: Recording.close(rec)
    :ok
  end

  defp schedule(_msg, 0), do: :ok
  defp schedule(msg, ms), do: Process.send_after(self(), msg, ms)

  defp deadline(state), do: System.monotonic_time(:millisecond) + state.opts[:timeout]

  # a node joins: ElixirScope must be loaded there; capture starts; its clock is measured
  defp setup(n, state) do
    start_options = state.opts[:start_options]

    result =
      with {:ok, {:module, _}} <- Snapshot.call(n, :code, :ensure_loaded, [Member], deadline(state)) |> loaded(),
           {:ok, vm} <- Snapshot.call(n, Member, :incarnation, [], deadline(state)),
           {:ok, :ok} <- if(n == node(), do: {:ok, Member.start_capture(start_options)}, else: Snapshot.call(n, Member, :start_capture, [start_options], deadline(state))),
           {:ok, clock} <- Clock.estimate(n, 8, state.opts[:timeout]) do
        {:recording, vm, clock}
      end

    case result do
      {:recording, vm, clock} ->
        case state.members[n] do
          # the same VM back after a netsplit: nothing was lost, what was collected stays
          %{vm: ^vm} = old -> put_in(state.members[n], %{old | state: :recording, reason: nil, clock: clock, lost: 0})
          # a new VM (its ids start again): what was collected from the old one goes, and the
          # corrections found on the old one's ids
          _ -> %{put_in(state.members[n], %{state: :recording, reason: nil, clock: clock, last_id: 0, lost: 0, vm: vm}) |
                   collected: Map.delete(state.collected, n), shifts: Map.reject(state.shifts, fn {ns, _} -> n in ns end)}
        end

      {:ok, error} ->
        put_in(state.members[n], unavailable(n, "capture did not start: #{inspect(error, limit: 5)}"))

      {:error, why} ->
        put_in(state.members[n], unavailable(n, if(is_binary(why), do: why, else: "clock: #{inspect(why, limit: 5)}")))
    end
  end

  defp loaded({:ok, {:error, _}}), do: {:error, "ElixirScope is not loaded there"}
  defp loaded(other), do: other

  defp unavailable(n, why) do
    Logger.warning("ElixirScope.Cluster: not recording #{n}: #{why}")
    %{state: :unavailable, reason: why, clock: nil, last_id: 0, lost: 0, vm: nil}
  end

  defp recording(state), do: for({n, %{state: :recording}} <- state.members, do: n)

  # clocks measured again, and how many events each node holds (what a node going down would
  # lose), in another process; one measurement at a time
  defp measure(%{measuring: nil} = state) do
    {me, timeout, deadline} = {self(), state.opts[:timeout], deadline(state)}
    nodes = recording(state)

    pid =
      spawn(fn ->
        results =
          for n <- nodes do
            clock = case Clock.estimate(n, 4, timeout) do
              {:ok, c} -> c
              _ -> nil
            end

            last = case Snapshot.call(n, Member, :info, [], deadline) do
              {:ok, %{last_id: l}} -> l
              _ -> nil
            end

            {n, clock, last}
          end

        send(me, {:measured, results})
      end)

    %{state | measuring: pid}
  end

  defp measure(state), do: state

  # each node's new events copied here, in another process, so that a node that dies keeps them;
  # one collection at a time (two would copy the same events twice)
  defp collect(%{collecting: true} = state), do: (schedule(:collect, state.opts[:collect_interval]); state)

  defp collect(state) do
    {me, deadline} = {self(), deadline(state)}
    from = for n <- recording(state), do: {n, elem(Map.get(state.collected, n, {0, []}), 0)}

    spawn(fn ->
      for {n, last} <- from, {:ok, [_ | _] = new} <- [Snapshot.fetch(n, last, deadline, [])],
          do: send(me, {:collected, n, {List.last(new).id, new}})

      send(me, :collected_all)
    end)

    schedule(:collect, state.opts[:collect_interval])
    %{state | collecting: true}
  end

  defp plan(state, nodes) do
    known = for {n, %{state: s}} <- state.members, s != :unavailable, do: n
    wanted = if nodes == :all, do: known, else: List.wrap(nodes)

    case wanted -- Map.keys(state.members) do
      [] ->
        missing = for n <- wanted, %{state: s, reason: r} = state.members[n], s != :recording, into: %{}, do: {n, r || to_string(s)}
        clocks = for n <- wanted, %{clock: %{} = c} <- [state.members[n]], into: %{}, do: {n, c}
        lost = for n <- wanted, %{lost: l} when l > 0 <- [state.members[n]], into: %{}, do: {n, l}
        {:ok, %{nodes: Enum.sort(wanted), clocks: clocks, collected: Map.take(state.collected, wanted), lost: lost,
                missing: missing, skew: state.skew, shifts: Map.get(state.shifts, Enum.sort(wanted), %{})}}

      unknown ->
        {:error, "not recorded by this cluster: #{Enum.map_join(unknown, ", ", &inspect/1)} (recorded: #{Enum.map_join(known, ", ", &inspect/1)})"}
    end
  end
end
