defmodule ElixirScope.Cluster do
  @moduledoc """
  A cluster as one recording. This node (the coordinator) starts capture on a set of connected
  nodes; each records locally into its own ring and store, so no event crosses the network
  while the program runs. Event queries that filters narrow run on the nodes themselves and
  only their matches are merged (`ElixirScope.Cluster.Pushdown`); other queries, saves and the
  cinema read the nodes' events merged into one causal timeline (`ElixirScope.Cluster.Snapshot`,
  `ElixirScope.Cluster.Merge`).

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
  alias ElixirScope.Cluster.{Clock, Coordinator, Snapshot}
  alias ElixirScope.Recording

  @defaults Coordinator.defaults()
  @not_running "no cluster is recording (start one with ElixirScope.Cluster.start/2, or load a saved cluster recording)"

  @typedoc "A node's state: `:recording`, `:down` (it was recording) or `:unavailable` (it never could)."
  @type node_info :: %{state: :recording | :down | :unavailable, reason: String.t() | nil, clock: Clock.estimate() | nil,
                       last_id: non_neg_integer(), lost: non_neg_integer(), vm: term()}

  @doc """
  Starts recording on `nodes` (a list, or `:connected`: this node, the connected nodes and those
  connecting later). Options: `start_options:` (`ElixirScope.start/1` options for every node,
  e.g. `[capture: [buffer_size: 262_144]]`),
  and the keys of `ElixirScope.Config`'s `cluster:` section (checked the same way):
  `clock_interval:` (ms, #{@defaults[:clock_interval]}), `collect_interval:` (ms; 0, the default,
  collects nothing: the events of a node that goes down are then lost), `timeout:` (ms per node
  and request, #{@defaults[:timeout]}), `snapshot_ttl:` (ms a merged snapshot serves `nodes:`
  queries, #{@defaults[:snapshot_ttl]}).
  Returns `{:ok, status}` (see `status/0`) or `{:error, message}`.
  """
  @spec start(:connected | [node()], keyword()) :: {:ok, %{node() => node_info()}} | {:error, term()}
  def start(nodes \\ :connected, opts \\ []) do
    {start_options, opts} = Keyword.pop(opts, :start_options, [])

    with :ok <- check_nodes(nodes),
         {:ok, config} <- ElixirScope.Config.validate(cluster: Keyword.delete(opts, :nodes)),
         opts = Keyword.merge(Keyword.delete(config[:cluster], :nodes), start_options: start_options),
         {:ok, _} <- Application.ensure_all_started(:elixir_scope) do
      spec = %{id: Coordinator, start: {Coordinator, :start_link, [[nodes: nodes] ++ opts]}, restart: :transient}

      case Supervisor.start_child(ElixirScope.AppSupervisor, spec) do
        {:ok, _} -> {:ok, status()}
        {:error, {:already_started, _}} -> {:error, :already_running}
        {:error, :already_present} -> (Supervisor.delete_child(ElixirScope.AppSupervisor, Coordinator); start(nodes, opts))
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

  @doc "Stops the coordinator (capture on the nodes goes on; `ElixirScope.stop/0` there ends it)."
  @spec stop() :: :ok
  def stop do
    case Supervisor.terminate_child(ElixirScope.AppSupervisor, Coordinator) do
      :ok -> Supervisor.delete_child(ElixirScope.AppSupervisor, Coordinator)
      _ -> :ok
    end

    :ok
  catch
    :exit, _ -> :ok
  end

  @doc "Whether a coordinator runs on this node."
  @spec running?() :: boolean()
  def running?, do: Process.whereis(Coordinator) != nil

  @doc "Each known node: its state, clock estimate, the last event id seen there, events lost."
  @spec status() :: %{node() => node_info()}
  def status, do: GenServer.call(Coordinator, :status)

  @doc "The nodes that record or recorded (not the unavailable ones)."
  @spec nodes() :: [node()]
  def nodes do
    for {n, %{state: s}} <- status(), s != :unavailable, do: n
  end

  @doc "Measures every recording node's clock offset now (it is also done every `clock_interval`)."
  @spec sync_clocks() :: :ok
  def sync_clocks, do: GenServer.call(Coordinator, :tick, :infinity)

  @doc """
  Test hook: adds `ns` to `node`'s estimated offset, as if the estimate were that wrong, so that
  tests can show the merged order stays causal when the clocks disagree.
  """
  @spec put_skew(node(), integer()) :: :ok
  def put_skew(node, ns) when is_atom(node) and is_integer(ns), do: GenServer.call(Coordinator, {:skew, node, ns})

  @doc """
  The merged recording of `nodes:` (`:all`, the default: every recorded node; or a list),
  fetched now. Options: `timeout:` (ms, the coordinator's by default). The recording is the
  caller's to close. A node that does not answer in time is named in `meta.cluster.missing`.
  """
  @spec snapshot(keyword()) :: {:ok, Recording.t()} | {:error, String.t()}
  def snapshot(opts \\ []) do
    with {:ok, plan, timeout} <- plan(Keyword.get(opts, :nodes, :all)), do: {:ok, Snapshot.take(plan, Keyword.get(opts, :timeout, timeout))}
  end

  @doc """
  The source a `nodes:` query reads: a merged snapshot of those nodes, shared by the queries of
  the next `snapshot_ttl` ms (then taken again; an old one is closed a minute later).
  """
  @spec source(:all | [node()]) :: {:ok, Recording.t()} | {:error, String.t()}
  def source(nodes) do
    if running?() do
      # taken here, not in the coordinator, which keeps answering (status, node events) meanwhile
      case GenServer.call(Coordinator, {:cached, nodes}, :infinity) do
        {:take, plan, timeout} ->
          rec = Snapshot.take(plan, timeout)
          GenServer.cast(Coordinator, {:snapshot, nodes, rec})
          {:ok, rec}

        other ->
          other
      end
    else
      {:error, @not_running}
    end
  end

  @doc """
  What a recording covers: `%{nodes:, missing: %{node => why}, lost: %{node => n}}` (`nil` for a
  one-node recording). `coverage(:query)`: what this process's latest `nodes:` query answered by
  the nodes themselves covered (`ElixirScope.Cluster.Pushdown`; nil before any).
  """
  @spec coverage(Recording.t() | :live | :query) :: map() | nil
  def coverage(:query), do: ElixirScope.Cluster.Pushdown.coverage()
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

  @doc """
  What a read of `nodes` (`:all` or a list) works from: `{:ok, plan, timeout}` — the nodes, their
  clock estimates, what was collected, lost or is missing, the known causal corrections
  (`ElixirScope.Cluster.Snapshot.plan/0`) and the per-node timeout — or `{:error, message}`.
  """
  @spec plan(:all | [node()] | node()) :: {:ok, Snapshot.plan(), timeout()} | {:error, String.t()}
  def plan(nodes) do
    if running?(), do: GenServer.call(Coordinator, {:plan, nodes}, :infinity), else: {:error, @not_running}
  end
end
