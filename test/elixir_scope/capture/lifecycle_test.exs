defmodule ElixirScope.Capture.LifecycleTest do
  @moduledoc false
  # The session's lifecycle observer: :spawn and :exit events for every process that recorded
  # events, without anything running in those processes.
  use ElixirScope.ScopeCase, async: false

  alias ElixirScope.Capture.{InstrumentationRuntime, Lifecycle}
  alias ElixirScope.{Event, NIF}

  setup do
    start_scope!()
  end

  # a process that records one event, then waits for `:go` and does what it is told
  defp recorder do
    me = self()

    pid =
      spawn(fn ->
        InstrumentationRuntime.report_custom(:hello, 1)
        send(me, {:recorded, self()})

        receive do
          {:go, fun} -> fun.()
        end
      end)

    assert_receive {:recorded, ^pid}
    pid
  end

  defp finish(pid, fun) do
    ref = Process.monitor(pid)
    send(pid, {:go, fun})
    assert_receive {:DOWN, ^ref, :process, ^pid, _}
  end

  # the process's :spawn (recorded on its parent's behalf) and its :exit
  defp lifecycle(pid) do
    ElixirScope.flush()

    for e <- ElixirScope.get_events(kinds: [:spawn, :exit]),
        (e.kind == :spawn and Event.spawn_info(e).child == pid) or (e.kind == :exit and e.pid == pid),
        do: e
  end

  test "a process seen alive: a :spawn with its parent and initial call, an :exit with the reason" do
    pid = recorder()
    ElixirScope.flush()
    finish(pid, fn -> :ok end)
    me = self()

    assert [%Event{kind: :spawn, function: :observed} = s, %Event{kind: :exit, function: :down} = x] = lifecycle(pid)
    # recorded as the parent's, at the time of the child's first event; the child's own events
    # keep their order and end with its exit
    assert s.pid == me
    assert %{child: ^pid, parent: ^me, initial_call: {:erlang, :apply, 2}} = Event.spawn_info(s)
    assert [first | _] = own = ElixirScope.get_events(pid: pid)
    assert s.ts == first.ts
    assert List.last(own) == x
    assert Event.exit_reason(x) == {:ok, :normal}
    refute Event.crash_exit?(x)
  end

  test "a crash: the exit carries the reason and counts as a crash" do
    pid = recorder()
    ElixirScope.flush()
    finish(pid, fn -> exit({:bad_thing, 42}) end)
    assert [_spawn, x] = lifecycle(pid)
    assert Event.exit_reason(x) == {:ok, {:bad_thing, 42}}
    assert Event.crash_exit?(x)
    assert [%{crash: ^x}] = for(p <- ElixirScope.Query.processes(), p.pid == pid, do: p)
  end

  test "a process that ended before it was seen: an exit with an unknown reason, no spawn" do
    pid = spawn(fn -> InstrumentationRuntime.report_custom(:hello, 1) end)
    ref = Process.monitor(pid)
    assert_receive {:DOWN, ^ref, _, _, _}
    assert [x] = lifecycle(pid)
    assert x.function == :gone and Event.exit_reason(x) == :unknown
    # placed right after its last event (when it ended is not known)
    [hello] = for e <- ElixirScope.get_events(pid: pid), e.kind == :custom, do: e
    assert x.ts == hello.ts + 1
    refute Event.crash_exit?(x)
  end

  test "one :spawn and one :exit per process, however many drains see it" do
    pids = for _ <- 1..20, do: recorder()
    ElixirScope.flush()
    for p <- pids, do: InstrumentationRuntime.report_custom(:x, 1) && send(p, {:go, fn -> InstrumentationRuntime.report_custom(:bye, 1) end})
    Process.sleep(20)
    for _ <- 1..5, do: ElixirScope.flush()

    for p <- pids do
      assert [:spawn, :exit] = Enum.map(lifecycle(p), & &1.kind)
    end

    st = ElixirScope.stats()
    assert st.emitted == st.stored + st.dropped + st.lost
  end

  test "a restarted observer goes on from the newest event and records what it then sees" do
    pid = recorder()
    ElixirScope.flush()
    old = Process.whereis(Lifecycle)
    ref = Process.monitor(old)
    Process.exit(old, :kill)
    assert_receive {:DOWN, ^ref, _, _, _}
    wait_for(fn -> Process.whereis(Lifecycle) not in [nil, old] end)
    ElixirScope.flush()
    # no event since the restart: nothing new about the process
    assert [:spawn] = Enum.map(lifecycle(pid), & &1.kind)
    InstrumentationRuntime.report_custom(:x, 1)
    send(pid, {:go, fn -> InstrumentationRuntime.report_custom(:bye, 1) end})
    Process.sleep(10)
    # it recorded again after its end: the new observer knows only that it ended
    assert [:spawn, :exit] = Enum.map(lifecycle(pid), & &1.kind)
  end

  @doc false
  # run on this node by a process of another node (Node.spawn/4 there): its parent is remote
  def remote_child(test) do
    InstrumentationRuntime.report_custom(:hello, 1)
    send(test, {:recorded, self()})

    receive do
      {:go, fun} -> fun.()
    end
  end

  test "a process whose parent is on another node is watched, its :spawn recorded on its behalf, and the observer goes on" do
    :ok = ElixirScope.Cluster.Local.ensure_distributed(:lifecycle_test)
    {:ok, peer, other} = ElixirScope.Cluster.Local.start_peer(:"lifecycle_peer_#{System.unique_integer([:positive])}")
    observer = Process.whereis(Lifecycle)

    try do
      child = :erpc.call(other, Node, :spawn, [node(), __MODULE__, :remote_child, [self()]])
      assert_receive {:recorded, ^child}, 5_000
      assert node(Process.info(child, :parent) |> elem(1)) == other
      ElixirScope.flush()
      finish(child, fn -> :ok end)
      # the parent cannot own an event in this node's store: the :spawn is the child's, naming it
      assert [%Event{kind: :spawn, function: :observed, pid: ^child} = spawn, %Event{kind: :exit, payload: :normal}] = lifecycle(child)
      assert %{child: ^child, parent: parent} = Event.spawn_info(spawn)
      assert node(parent) == other
      assert Process.whereis(Lifecycle) == observer
    after
      :peer.stop(peer)
    end
  end

  test "a spawn reported at its call site: the child from each result shape; the observer adds no second" do
    call = InstrumentationRuntime.report_function_entry(__MODULE__, :caller, [], 1)
    pid = recorder()
    task = %Task{pid: spawn(fn -> :ok end), ref: make_ref(), owner: self(), mfa: {:erlang, :apply, 2}}
    other = spawn(fn -> :ok end)
    mfa = spawn(fn -> :ok end)

    for {result, via, args} <- [
          {pid, :spawn, [fn -> :ok end]},
          {task, :task, [fn -> :ok end]},
          {{other, make_ref()}, :spawn, [fn -> :ok end, [:monitor]]},
          {{:ok, mfa}, :task, [:sup, Kernel, :min, [1, 2]]},
          {{:error, :max_children}, :task, [:sup, fn -> :ok end]},
          {:ignore, :spawn, [:not, :a, :call]}
        ],
        do: assert(InstrumentationRuntime.report_spawned(call, via, args, result, 3) == :ok)

    finish(pid, fn -> :ok end)
    assert [%Event{kind: :spawn, function: :call_site} = s, %Event{kind: :exit}] = lifecycle(pid)
    assert %{parent: me, via: :spawn, initial_call: {__MODULE__, name, 0}} = Event.spawn_info(s)
    assert me == self() and Atom.to_string(name) =~ ~r/^-test /
    assert %{child: c, via: :task} = Event.spawn_info(hd(lifecycle(task.pid)))
    assert c == task.pid
    assert [_] = Enum.filter(lifecycle(other), &(&1.kind == :spawn))
    assert %{initial_call: {Kernel, :min, 2}} = Event.spawn_info(hd(lifecycle(mfa)))
    assert length(ElixirScope.get_events(kinds: [:spawn], pid: self())) == 4
  end

  test "emit_as/5 validates its arguments" do
    for args <- [
          [:not_a_pid, :exit, :down, nil, :normal],
          [self(), :call, :down, nil, :normal],
          [self(), :exit, "down", nil, :normal],
          [self(), :exit, :down, 0, :normal],
          [self(), :exit, :down, -1, :normal]
        ] do
      assert_raise ArgumentError, fn -> apply(NIF, :emit_as, args) end
    end

    assert_raise ArgumentError, fn -> NIF.pids_since(make_ref(), 0) end
    assert_raise ArgumentError, fn -> NIF.pids_since(ElixirScope.Capture.Session.info().session, -1) end
  end
end
