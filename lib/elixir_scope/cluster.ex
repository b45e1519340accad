defmodule ElixirScope.Cluster do
  @moduledoc """
  A cluster as one recording. This node (the coordinator) starts capture on a set of connected
  nodes; each records locally into its own ring and store, so no event crosses the network
  while the program runs. Queries, saves and the cinema then read the nodes' events merged
  into one causal timeline (`ElixirScope.Cluster.Snapshot`, `ElixirScope.Cluster.Merge`).

      ElixirScope.Cluster.start([:"a@127.0.0.1", :"b@127.0.0.1"])   # or :connected
      ElixirScope.Query.events(nodes: :all, kind: :send)              # every recorded node
      ElixirScope.Recording.save("cluster.esrec", :all, nodes: :all)  # one file, opens alone

  or `config :elixir_scope, cluster: [nodes: :connected]` (started with ElixirScope). With
  `:connected`, nodes that connect later are set up too.

  * A node without ElixirScope loaded (or whose capture cannot start) is reported in
    `status/0` as `:unavailable` with the reason; nothing is forced onto it.
  * Clocks: each node's offset is estimated at start and every `clock_interval` ms
    (`ElixirScope.Cluster.Clock`, the error bound kept).
  * A node that goes down: its events already collected (`collect_interval:`, off by default)
    are kept; the rest is counted as lost (`lost:`, the events it had recorded when last
    asked); the others go on recording.
  * A node that is down or slow at query time: the result holds what answered and its header's
    `cluster.missing` names the node and why (`coverage/1`).
  """
  use GenServer
  require Logger

  alias ElixirScope.Cluster.{Clock, Member, Snapshot}
  alias ElixirScope.Recording

  @defaults [clock_interval: 5_000, collect_interval: 0, timeout: 5_000, snapshot_ttl: 1_000, start_options: []]
  @close_after 60_000

  @typedoc "A node's state: `:recording`, `:down` (it was recording) or `:unavailable` (it never could)."
  @type node_info :: %{state: :recording | :down | :unavailable, reason: String.t() | nil, clock: Clock.estimate() | nil,
                       last_id: non_neg_integer(), lost: non_neg_integer()}

  @doc """
  Starts recording on `nodes` (a list, or `:connected`: this node, the connected nodes and those
  connecting later). Options: `start_options:` (`ElixirScope.start/1` options for every node,
  e.g. `[capture: [buffer_size: 262_144]]`),
  `clock_interval:` (ms, #{@defaults[:clock_interval]}), `collect_interval:` (ms; 0, the default,
  collects nothing until asked), `timeout:` (ms per node and request, #{@defaults[:timeout]}),
  `snapshot_ttl:` (ms a merged snapshot serves `nodes:` queries, #{@defaults[:snapshot_ttl]}).
  Returns `{:ok, status}` (see `status/0`) or `{:error, message}`.
  """
  @spec start(:connected | [node()], keyword()) :: {:ok, %{node() => node_info()}} | {:error, term()}
  def start(nodes \\ :connected, opts \\ []) do
    with :ok <- check_nodes(nodes),
         {:ok, _} <- Application.ensure_all_started(:elixir_scope) do
      spec = %{id: __MODULE__, start: {__MODULE__, :start_link, [[nodes: nodes] ++ opts]}, restart: :transient}

      case Supervisor.start_child(ElixirScope.AppSupervisor, spec) do
        {:ok, _} -> {:ok, status()}
        {:error, {:already_started, _}} -> {:error, :already_running}
        {:error, :already_present} -> (Supervisor.delete_child(ElixirScope.AppSupervisor, __MODULE__); start(nodes, opts))
        {:error, reason} -> {:error, reason}
      end
    end
  end

  defp check_nodes(:connected), do: :ok

  defp check_nodes(nodes) when is_list(nodes) do
    if nodes != [] and Enum.all?(nodes, &is_atom/1),
      do: :ok,
      else: {:error, "cluster nodes must be :connected or a non-empty list of node names, got: #{inspect(nodes)}"}
  end

  defp check_nodes(other), do: check_nodes([other])

  @doc false
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts), do: GenServer.start_link(__MODULE__, opts, name: __MODULE__)

  @doc "Stops the coordinator (capture on the nodes goes on; `ElixirScope.stop/0` there ends it)."
  @spec stop() :: :ok
  def stop do
    case Supervisor.terminate_child(ElixirScope.AppSupervisor, __MODULE__) do
      :ok -> Supervisor.delete_child(ElixirScope.AppSupervisor, __MODULE__)
      _ -> :ok
    end

    :ok
  catch
    :exit, _ -> :ok
  end

  @doc "Whether a coordinator runs on this node."
  @spec running?() :: boolean()
  def running?, do: Process.whereis(__MODULE__) != nil

  @doc "Each known node: its state, clock estimate, the last event id seen there, events lost."
  @spec status() :: %{node() => node_info()}
  def status, do: GenServer.call(__MODULE__, :status)

  @doc "The nodes that record or recorded (not the unavailable ones)."
  @spec nodes() :: [node()]
  def nodes do
    for {n, %{state: s}} <- status(), s != :unavailable, do: n
  end

  @doc "Measures every recording node's clock offset now (it is also done every `clock_interval`)."
  @spec sync_clocks() :: :ok
  def sync_clocks, do: GenServer.call(__MODULE__, :tick, :infinity)

  @doc """
  Test hook: adds `ns` to `node`'s estimated offset, as if the estimate were that wrong, so that
  tests can show the merged order stays causal when the clocks disagree.
  """
  @spec put_skew(node(), integer()) :: :ok
  def put_skew(node, ns) when is_atom(node) and is_integer(ns), do: GenServer.call(__MODULE__, {:skew, node, ns})

  @doc """
  The merged recording of `nodes:` (`:all`, the default: every recorded node; or a list),
  fetched now. Options: `timeout:` (ms, the coordinator's by default). The recording is the
  caller's to close. A node that does not answer in time is named in `meta.cluster.missing`.
  """
  @spec snapshot(keyword()) :: {:ok, Recording.t()} | {:error, String.t()}
  def snapshot(opts \\ []) do
    with {:ok, plan, timeout} <- plan(opts), do: {:ok, Snapshot.take(plan, Keyword.get(opts, :timeout, timeout))}
  end

  @doc """
  The source a `nodes:` query reads: a merged snapshot of those nodes, shared by the queries of
  the next `snapshot_ttl` ms (then taken again; an old one is closed a minute later).
  """
  @spec source(:all | [node()]) :: {:ok, Recording.t()} | {:error, String.t()}
  def source(nodes) do
    if running?(),
      do: GenServer.call(__MODULE__, {:source, nodes}, :infinity),
      else: {:error, "no cluster is recording (start one with ElixirScope.Cluster.start/2, or load a saved cluster recording)"}
  end

  @doc "What a recording covers: `%{nodes:, missing: %{node => why}, lost: %{node => n}}` (`nil` for a one-node recording)."
  @spec coverage(Recording.t() | :live) :: map() | nil
  def coverage(%Recording{meta: %{cluster: c}}) when is_map(c), do: Map.take(c, [:nodes, :missing, :lost])
  def coverage(_source), do: nil

  @doc "Lines describing a cluster recording: its nodes with their clock offsets, corrections, missing nodes, losses."
  @spec summary(Recording.t()) :: [String.t()]
  def summary(%Recording{meta: %{cluster: c}}) when is_map(c) do
    offsets =
      Enum.map_join(c.nodes, ", ", fn n ->
        case c.offsets[n] do
          %{offset_ns: o, error_ns: e} -> "#{n} (clock #{ms(o)} ± #{ms(e)} ms)"
          nil -> "#{n}"
        end
      end)

    ["#{length(c.nodes)} node(s), merged on #{c.coordinator}'s clock: #{offsets}"] ++
      Enum.map(c.corrections, &"causal correction: #{&1.node} from event ##{&1.from_id} on is #{ms(&1.shift_ns)} ms later than its clock says") ++
      Enum.map(c.missing, fn {n, why} -> "missing: #{n}: #{why}" end) ++
      Enum.map(c.lost, fn {n, count} -> "lost: #{count} event(s) recorded on #{n} were never collected" end)
  end

  def summary(_source), do: []

  defp ms(ns), do: :erlang.float_to_binary(ns / 1_000_000, decimals: 3)

  defp plan(opts) do
    if running?(),
      do: GenServer.call(__MODULE__, {:plan, Keyword.get(opts, :nodes, :all)}, :infinity),
      else: {:error, "no cluster is recording (start one with ElixirScope.Cluster.start/2)"}
  end

  # ---------------------------------------------------------------- server

  @impl true
  def init(opts) do
    opts = Keyword.merge(@defaults, opts)
    :ok = :net_kernel.monitor_nodes(true)
    state = %{opts: opts, members: %{}, collected: %{}, skew: %{}, snapshots: %{}}
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
  def handle_call(:tick, _from, state), do: {:reply, :ok, tick(state)}
  def handle_call({:skew, n, ns}, _from, state), do: {:reply, :ok, put_in(state.skew[n], ns)}

  def handle_call({:plan, nodes}, _from, state) do
    case plan_of(state, nodes) do
      {:ok, plan} -> {:reply, {:ok, plan, state.opts[:timeout]}, state}
      error -> {:reply, error, state}
    end
  end

  def handle_call({:source, nodes}, _from, state) do
    now = System.monotonic_time(:millisecond)

    ttl = state.opts[:snapshot_ttl]

    case Map.get(state.snapshots, nodes) do
      {rec, at} when now - at < ttl ->
        {:reply, {:ok, rec}, state}

      old ->
        with {:ok, plan} <- plan_of(state, nodes) do
          rec = Snapshot.take(plan, state.opts[:timeout])
          if old, do: Process.send_after(self(), {:close, elem(old, 0)}, @close_after)
          {:reply, {:ok, rec}, put_in(state.snapshots[nodes], {rec, now})}
        else
          error -> {:reply, error, state}
        end
    end
  end

  @impl true
  def handle_info(:tick, state) do
    schedule(:tick, state.opts[:clock_interval])
    {:noreply, tick(state)}
  end

  def handle_info(:collect, state) do
    schedule(:collect, state.opts[:collect_interval])
    {:noreply, collect(state)}
  end

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
        Logger.warning("ElixirScope.Cluster: #{n} went down; #{lost} of its recorded events were not collected and are lost")
        {:noreply, put_in(state.members[n], %{m | state: :down, reason: "went down", lost: lost})}

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
           {:ok, :ok} <- if(n == node(), do: {:ok, Member.start_capture(start_options)}, else: Snapshot.call(n, Member, :start_capture, [start_options], deadline(state))),
           {:ok, clock} <- Clock.estimate(n, 8, state.opts[:timeout]) do
        {:recording, clock}
      end

    info =
      case result do
        {:recording, clock} -> %{state: :recording, reason: nil, clock: clock, last_id: 0, lost: 0}
        {:ok, error} -> unavailable(n, "capture did not start: #{inspect(error, limit: 5)}")
        {:error, why} -> unavailable(n, if(is_binary(why), do: why, else: "clock: #{inspect(why, limit: 5)}"))
      end

    # a node that comes back is a new VM whose ids start again: what was collected before goes
    %{put_in(state.members[n], info) | collected: Map.delete(state.collected, n)}
  end

  defp loaded({:ok, {:error, _}}), do: {:error, "ElixirScope is not loaded there"}
  defp loaded(other), do: other

  defp unavailable(n, why) do
    Logger.warning("ElixirScope.Cluster: not recording #{n}: #{why}")
    %{state: :unavailable, reason: why, clock: nil, last_id: 0, lost: 0}
  end

  # clocks measured again, and how many events each node holds (what a node going down would lose)
  defp tick(state) do
    members =
      Map.new(state.members, fn
        {n, %{state: :recording} = m} ->
          clock = case Clock.estimate(n, 4, state.opts[:timeout]) do
            {:ok, c} -> c
            _ -> m.clock
          end

          last = case Snapshot.call(n, Member, :info, [], deadline(state)) do
            {:ok, %{last_id: l}} -> l
            _ -> m.last_id
          end

          {n, %{m | clock: clock, last_id: last}}

        other ->
          other
      end)

    %{state | members: members}
  end

  defp collect(state) do
    collected =
      Enum.reduce(state.members, state.collected, fn
        {n, %{state: :recording}}, acc ->
          {last, kept} = Map.get(acc, n, {0, []})

          case Snapshot.fetch(n, last, deadline(state), []) do
            {:ok, []} -> acc
            {:ok, new} -> Map.put(acc, n, {List.last(new).id, kept ++ new})
            {:error, _} -> acc
          end

        _, acc ->
          acc
      end)

    tick(%{state | collected: collected})
  end

  defp plan_of(state, nodes) do
    known = for {n, %{state: s}} <- state.members, s != :unavailable, do: n
    wanted = if nodes == :all, do: known, else: List.wrap(nodes)

    case wanted -- Map.keys(state.members) do
      [] ->
        missing = for n <- wanted, %{state: s, reason: r} = state.members[n], s != :recording, into: %{}, do: {n, r || to_string(s)}
        clocks = for n <- wanted, %{clock: %{} = c} <- [state.members[n]], into: %{}, do: {n, c}
        lost = for n <- wanted, %{lost: l} when l > 0 <- [state.members[n]], into: %{}, do: {n, l}
        {:ok, %{nodes: Enum.sort(wanted), clocks: clocks, collected: Map.take(state.collected, wanted), lost: lost,
                missing: missing, skew: state.skew}}

      unknown ->
        {:error, "not recorded by this cluster: #{Enum.map_join(unknown, ", ", &inspect/1)} (recorded: #{Enum.map_join(known, ", ", &inspect/1)})"}
    end
  end
end
