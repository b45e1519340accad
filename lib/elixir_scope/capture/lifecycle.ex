defmodule ElixirScope.Capture.Lifecycle do
  @max_listed 16
  @max_supervisor_children 64
  @max_announced 1024

  @moduledoc """
  Process lifecycle without changing user processes: after each drain interval this observer
  asks the store which processes recorded events since it last looked (one native pass over the
  new events), monitors each process it has not seen, and records:

    * at first sight, a `:spawn` event (function `:observed`) on behalf of the process's parent
      (`Process.info(pid, :parent)`), as if the parent had recorded it, whose time is the
      child's first recorded event and whose payload is `{child, info}`: its parent, its child id
      when the parent is a supervisor of at most #{@max_supervisor_children} children
      (`which_children`, asked with a 100 ms timeout), `$ancestors` and `$callers`, its initial
      call (`$initial_call` of proc_lib processes and Tasks, else the VM's), its registered name,
      and its links and monitors at that moment (at most #{@max_listed} of each; links made later
      are not recorded). The event is the parent's, not the child's, so that each process's own
      events keep their recorded order; its id comes after the child's first events. A parent on
      another node (`Node.spawn`, the process `:erpc` starts for a call) cannot own an event in
      this node's store: the `:spawn` is then recorded on the child's behalf, its info naming the
      remote parent (`ElixirScope.Query.Rpc` pairs an `:erpc` call's work by it);
    * when its monitor fires, an `:exit` event (function `:down`) on the process's behalf, whose
      payload is the reason: the last event of the process.

  A process whose spawn compiled code recorded at its call site (function `:call_site`, see
  `ElixirScope.Capture.InstrumentationRuntime.report_spawned/5`) gets no second `:spawn`: each
  scan also reads the call-site spawns stored since the last one and remembers their children
  until it sees them (it still monitors them for their `:exit`). Children that never record are
  forgotten once dead, when more than #{@max_announced} are remembered. A call-site spawn not yet
  stored when its child is first seen (the child ran before the parent reported it) leaves both
  events; readers prefer the call site's (`ElixirScope.Event.announcing_spawns/1`).

  A process that had already ended when first seen gets no `:spawn` (its parent is not knowable
  any more) and an `:exit` with function `:gone`, reason `nil`, placed right after its last event. The observer scans every
  `flush_interval` ms (and on `ElixirScope.flush/0`), so a process that lives a few ms or less is
  usually seen only after it ended.

  A restarted observer starts from the store's newest event and knows none of the processes the
  one before it watched: a process it meets again gets a second `:spawn` (and its `:exit`).

  The events go through the ring like any other (`emitted = stored + dropped + lost` holds).
  """
  use GenServer

  alias ElixirScope.Capture.Session
  alias ElixirScope.Event
  alias ElixirScope.NIF


  @doc false
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts), do: GenServer.start_link(__MODULE__, opts, name: __MODULE__)

  @doc """
  Looks at the store now and handles the exits already signalled, so that the lifecycle of
  processes seen so far is recorded when this returns (`ElixirScope.flush/0` calls it).
  """
  @spec sync(timeout()) :: :ok
  def sync(timeout \\ 5_000) do
    if self() != Process.whereis(__MODULE__), do: GenServer.call(__MODULE__, :scan, timeout)
    :ok
  catch
    :exit, _ -> :ok
  end

  @impl true
  def init(opts) do
    %{session: s} = Session.info()
    interval = Keyword.get(opts, :flush_interval, 5)
    send(self(), :scan)
    # processes recorded before this observer started are not its to watch
    {:ok, %{session: s, interval: interval, after: NIF.stats(s).last_id, live: %{}, dead: %{}, announced: %{}}}
  end

  @impl true
  def handle_info(:scan, state) do
    Process.send_after(self(), :scan, state.interval)
    {:noreply, scan(state)}
  end

  def handle_info({:DOWN, ref, :process, pid, reason}, state) do
    case Map.pop(state.live, pid) do
      {^ref, live} -> {:noreply, %{state | live: live, dead: dead(state, pid, emit(pid, :exit, :down, nil, reason))}}
      _ -> {:noreply, state}
    end
  end

  def handle_info(_msg, state), do: {:noreply, state}

  @impl true
  def handle_call(:scan, _from, state) do
    state = drain_downs(state)
    {:reply, :ok, scan(state)}
  end

  # the exits that already arrived, before the scan: a sync then records them too
  defp drain_downs(state) do
    receive do
      {:DOWN, _, :process, _, _} = down ->
        {:noreply, state} = handle_info(down, state)
        drain_downs(state)
    after
      0 -> state
    end
  end

  defp scan(state) do
    {last, seen} = NIF.pids_since(state.session, state.after)
    state = %{state | announced: announced(state)}
    state = Enum.reduce(seen, %{state | after: last}, &observe/2)
    # a dead process's own events are all in the store once the scan passed its exit event
    %{state | dead: for({pid, until} <- state.dead, until > last, into: %{}, do: {pid, until})}
  end

  # the local children of the call-site spawns stored since the last scan, added to those
  # remembered (the events of a child may come in a later scan than its spawn)
  defp announced(state) do
    children =
      for tuple <- NIF.query(state.session, %{kinds: [:spawn], after_id: state.after}),
          %Event{function: :call_site, payload: {child, %{}}} <- [Event.from_tuple(tuple, nil)],
          is_pid(child) and node(child) == node(),
          do: {child, true}

    announced = Map.merge(state.announced, Map.new(children))

    if map_size(announced) > @max_announced,
      do: for({pid, _} = kv <- announced, Process.alive?(pid), into: %{}, do: kv),
      else: announced
  rescue
    ArgumentError -> state.announced
  end

  defp observe({pid, first_ts, last_ts}, state) do
    if Map.has_key?(state.live, pid) or Map.has_key?(state.dead, pid), do: state, else: watch(pid, state, first_ts, last_ts)
  end

  # Monitors first: a process alive after its monitor is set gives its real exit reason.
  defp watch(pid, state, first_ts, last_ts) do
    {announced?, announced} = Map.pop(state.announced, pid, false)
    state = %{state | announced: announced}

    ref = Process.monitor(pid)

    case info(pid) do
      nil ->
        Process.demonitor(ref, [:flush])
        # when it ended is not known: after its last event
        %{state | dead: dead(state, pid, emit(pid, :exit, :gone, last_ts + 1, nil))}

      info ->
        if info.parent && !announced?, do: emit(spawn_owner(info.parent, pid), :spawn, :observed, first_ts, {pid, info})
        %{state | live: Map.put(state.live, pid, ref)}
    end
  end

  # the store holds this node's processes only: a parent on another node (Node.spawn, :erpc)
  # has its child's :spawn recorded on the child's own behalf, its info naming the parent
  defp spawn_owner(parent, _child) when node(parent) == node(), do: parent
  defp spawn_owner(_parent, child), do: child

  defp info(pid) do
    case Process.info(pid, [:parent, :registered_name, :links, :monitors, :initial_call, :dictionary]) do
      nil ->
        nil

      kw ->
        dict = kw[:dictionary]
        parent = parent(kw[:parent])

        %{
          parent: parent,
          child_id: child_id(parent, pid),
          ancestors: Enum.take(List.wrap(dict[:"$ancestors"]), @max_listed),
          callers: Enum.take(List.wrap(dict[:"$callers"]), @max_listed),
          initial_call: dict[:"$initial_call"] || kw[:initial_call],
          name: if(kw[:registered_name] == [], do: nil, else: kw[:registered_name]),
          links: Enum.take(kw[:links], @max_listed),
          monitors: Enum.take(kw[:monitors], @max_listed)
        }
    end
  end

  defp parent(pid) when is_pid(pid), do: pid
  defp parent(_undefined), do: nil

  # The id of the child in its supervisor (a restart keeps it), asked only of small supervisors
  # and with a short timeout: a supervisor never waits on ElixirScope, but it may be busy.
  defp child_id(nil, _pid), do: nil
  # spawned from another node (Node.spawn, :erpc): no local supervisor to ask
  defp child_id(parent, _pid) when node(parent) != node(), do: nil

  defp child_id(parent, pid) do
    with {:dictionary, dict} <- Process.info(parent, :dictionary),
         {:supervisor, _, 1} <- dict[:"$initial_call"],
         counts when is_list(counts) <- :gen_server.call(parent, :count_children, 100),
         true <- Keyword.get(counts, :specs, 0) <= @max_supervisor_children,
         children when is_list(children) <- :gen_server.call(parent, :which_children, 100),
         {id, ^pid, _, _} when id != :undefined <- List.keyfind(children, pid, 1) do
      id
    else
      _ -> nil
    end
  catch
    :exit, _ -> nil
  end

  # until which id the pid may still show up in a scan (its own events precede its exit event)
  defp dead(state, pid, nil), do: Map.put(state.dead, pid, NIF.stats(state.session).pushed)
  defp dead(state, pid, exit_id), do: Map.put(state.dead, pid, exit_id)

  defp emit(pid, kind, function, ts, payload) do
    NIF.emit_as(pid, kind, function, ts, payload)
  rescue
    _ -> nil
  end
end
