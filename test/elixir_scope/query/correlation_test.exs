defmodule ElixirScope.Query.CorrelationTest do
  # Real processes, instrumented by hand through the runtime API, recorded by the real store.
  use ElixirScope.ScopeCase, async: false
  @moduletag :capture_log

  alias ElixirScope.Capture.Ingestor
  alias ElixirScope.Capture.InstrumentationRuntime, as: R
  alias ElixirScope.{Query, Recording}
  alias ElixirScope.Query.Correlation

  defmodule Counter do
    @moduledoc false
    use GenServer
    alias ElixirScope.Capture.InstrumentationRuntime, as: R

    def start_link(opts), do: GenServer.start_link(__MODULE__, opts[:init] || 0, Keyword.take(opts, [:name]))

    @impl true
    def init(n) do
      cid = R.report_function_entry(__MODULE__, :init, [n])
      R.report_state_change(cid, :after, n)
      R.report_function_exit(cid, {:ok, n})
      {:ok, n}
    end

    @impl true
    def handle_call(req, from, state) do
      cid = R.report_function_entry(__MODULE__, :handle_call, [req, from, state])
      R.report_state_change(cid, :before, state)

      try do
        new =
          case req do
            {:add, n} -> state + n
            :crash -> raise "crash requested"
          end

        R.report_state_change(cid, :after, new)
        reply = {:reply, new, new}
        R.report_function_exit(cid, reply)
        reply
      rescue
        e ->
          R.report_error(cid, :error, e, __STACKTRACE__)
          reraise e, __STACKTRACE__
      end
    end

    @impl true
    def handle_cast({:add, n} = req, state) do
      cid = R.report_function_entry(__MODULE__, :handle_cast, [req, state])
      R.report_state_change(cid, :after, state + n)
      R.report_function_exit(cid, {:noreply, state + n})
      {:noreply, state + n}
    end
  end

  defmodule Client do
    @moduledoc false
    alias ElixirScope.Capture.InstrumentationRuntime, as: R

    # `record_send?` false: the caller's send is not instrumented (the link must come from `from`)
    def run(server, req, record_send?) do
      cid = R.report_function_entry(__MODULE__, :run, [req])
      if record_send?, do: R.report_message_send(server, req)
      result = GenServer.call(server, req)
      R.report_function_exit(cid, result)
      result
    end
  end

  setup do
    # links among events reported by hand; the lifecycle observer's are tested in messages_test.exs
    start_scope!(capture: [lifecycle: false])
  end

  test "a GenServer called by 50 concurrent callers: every handle_call links to its caller" do
    {:ok, server} = Counter.start_link([])
    parent = self()

    callers =
      for i <- 1..50 do
        spawn_link(fn ->
          receive do: (:go -> :ok)
          # equal requests from different callers: pairing must use the caller in `from`
          result = Client.run(server, {:add, rem(i, 5) + 1}, rem(i, 2) == 0)
          send(parent, {:done, self(), result})
        end)
      end

    Enum.each(callers, &send(&1, :go))
    results = for pid <- callers, into: %{}, do: (receive do: ({:done, ^pid, r} -> {pid, r}))
    ElixirScope.flush()

    links = Query.links()
    calls = Query.events(pid: server, kind: :call, function: :handle_call)
    assert length(calls) == 50

    for hc <- calls do
      [_req, {caller, _tag}, _] = hc.payload
      [req_link] = Enum.filter(links, &(&1.to.id == hc.id))
      assert req_link.from.pid == caller
      even? = Enum.find_index(callers, &(&1 == caller)) |> rem(2) == 1
      if even?, do: assert(req_link.type == :call and req_link.from.kind == :send), else: assert(req_link.type == :call_from)
      if req_link.type == :call_from, do: assert(req_link.from.function == :run)

      [reply] = Enum.filter(links, &(&1.type == :reply and &1.from.call_id == hc.id))
      assert reply.to.pid == caller
      {:reply, value, _} = reply.from.payload
      assert results[caller] == value
      # the caller's own recorded result is what the server replied
      assert reply.to.kind == :return and reply.to.payload == value
    end

    # message_flow from one caller to the server and back
    c1 = hd(callers)
    assert [%{type: :call_from}] = Query.message_flow(c1, server)
    assert [%{type: :reply}] = Query.message_flow(server, c1)
  end

  test "state_at matches the true states recorded while the server ran, across a supervisor restart" do
    {:ok, sup} = Supervisor.start_link([{Counter, name: :tt_counter, init: 100}], strategy: :one_for_one)
    old = Process.whereis(:tt_counter)
    truth =
      for n <- 1..20 do
        v = Client.run(:tt_counter, {:add, n}, true)
        {Ingestor.now(), v}
      end

    # a crash and a restart under the same name
    Process.flag(:trap_exit, true)
    catch_exit(Client.run(:tt_counter, :crash, true))
    new = wait_restart(old)
    t_restart = Ingestor.now()
    after_restart = for n <- [1, 2], do: (v = Client.run(:tt_counter, {:add, n}, true); {Ingestor.now(), v})
    R.report_message_send(:tt_counter, {:add, 1000})
    GenServer.cast(:tt_counter, {:add, 1000})
    assert :sys.get_state(:tt_counter) == 1103
    ElixirScope.flush()

    for {t, v} <- truth, do: assert({:ok, ^v, _} = Query.state_at(old, t))
    assert {:ok, 310, _} = Query.state_at(old, :now)
    assert {:ok, 100, _} = Query.state_at(new, t_restart)
    for {t, v} <- after_restart, do: assert({:ok, ^v, _} = Query.state_at(:tt_counter, t))
    assert {:ok, 1103, _} = Query.state_at(new, :now)
    assert {:ok, 1103, _} = ElixirScope.get_state_at(:tt_counter, :now)
    assert length(ElixirScope.get_state_history(new)) == 1 + 2 * 2 + 1

    # sends to the name pair with the incarnation that ran them
    links = Query.links()
    crash_call = hd(Query.events(pid: old, kind: :call, function: :handle_call, payload: &match?([:crash | _], &1)))
    assert [%{type: :call, from: %{pid: me, payload: {:tt_counter, :crash}}}] = Enum.filter(links, &(&1.to.id == crash_call.id))
    assert me == self()
    [a1, a2] = Query.events(pid: new, kind: :call, function: :handle_call)
    assert Enum.find(links, &(&1.to.id == a1.id)).from.payload == {:tt_counter, {:add, 1}}
    assert Enum.find(links, &(&1.to.id == a2.id)).from.payload == {:tt_counter, {:add, 2}}
    [cast] = Query.events(pid: new, function: :handle_cast, kind: :call)
    assert [%{type: :cast, from: %{payload: {:tt_counter, {:add, 1000}}}}] = Enum.filter(links, &(&1.to.id == cast.id))
    Supervisor.stop(sup)
  end

  defp wait_restart(old, tries \\ 100) do
    case Process.whereis(:tt_counter) do
      pid when is_pid(pid) and pid != old -> pid
      _ when tries > 0 -> Process.sleep(5); wait_restart(old, tries - 1)
    end
  end

  test "a Task fan-out: spawns link to the tasks, results link back to the awaiting parent" do
    root = R.report_function_entry(Fan, :run, [10])

    tasks =
      for i <- 1..10 do
        t = Task.async(fn ->
          c = R.report_function_entry(Fan, :work, [i])
          R.report_function_exit(c, i * i)
          i * i
        end)

        R.report_spawn(t.pid)
        t
      end

    results = Task.await_many(tasks)
    for r <- results, do: R.report_message_receive(r)
    R.report_function_exit(root, Enum.sum(results))
    ElixirScope.flush()

    links = Query.links()
    spawns = Enum.filter(links, &(&1.type == :spawn))
    assert length(spawns) == 10

    for {t, i} <- Enum.with_index(tasks, 1) do
      [s] = Enum.filter(spawns, &(&1.to.pid == t.pid))
      assert s.from.pid == self() and s.to.kind == :call and s.to.payload == [i]
      [r] = Enum.filter(links, &(&1.type == :task_reply and &1.from.pid == t.pid))
      assert r.to.pid == self() and r.to.kind == :receive and r.to.payload == i * i
    end

    tl = Query.timeline([self() | Enum.map(tasks, & &1.pid)])
    assert length(tl.messages) == 20
    assert tl.events == Enum.sort_by(tl.events, &{&1.ts, &1.id})
  end

  test "origin of a value passed through three processes" do
    parent = self()
    secret = {:ticket, make_ref()}

    c =
      spawn(fn ->
        receive do
          {:fwd, v} = m ->
            R.report_message_receive(m)
            cid = R.report_function_entry(Third, :use, [v])
            R.report_function_exit(cid, :ok)
            send(parent, :done)
        end
      end)

    b =
      spawn(fn ->
        receive do
          {:hand_over, v} = m ->
            R.report_message_receive(m)
            cid = R.report_function_entry(Second, :relay, [v])
            R.report_message_send(c, {:fwd, v})
            send(c, {:fwd, v})
            R.report_function_exit(cid, :ok)
        end
      end)

    # noise: the same message shapes with other values
    R.report_message_send(b, {:hand_over, :other})
    outer = R.report_function_entry(First, :make, [])
    inner = R.report_function_entry(First, :mint, [])
    R.report_local_variable_snapshot(inner, %{ticket: secret}, 12)
    R.report_function_exit(inner, secret)
    R.report_message_send(b, {:hand_over, secret})
    send(b, {:hand_over, secret})
    R.report_function_exit(outer, :ok)
    assert_receive :done, 2000
    ElixirScope.flush()

    {:ok, o} = Query.origin(secret)
    assert o.first.kind == :local and o.first.pid == self() and o.first.payload == %{ticket: secret}
    assert Enum.map(o.calls, & &1.function) == [:make, :mint]
    assert [{:message, me1, ^b}, {:message, ^b, ^c}] = Enum.map(o.chain, &{&1.type, &1.from.pid, &1.to.pid})
    assert me1 == self()
    assert [%{kind: :send}, %{kind: :send}] = Enum.map(o.chain, & &1.from)
    assert length(o.holders) == 8
  end

  test "live store → recording → same answers; correlation ids carried by the runtime" do
    id = R.report_message_send(self(), {:ping, 1})
    R.report_message_receive({:ping, 1}, id)
    R.report_message_send(self(), {:ping, 1})
    R.report_message_receive({:ping, 1})
    ElixirScope.flush()
    links = Query.links()
    assert [%{type: :message, from: %{id: ^id}}, %{type: :message}] = links
    [_, second] = links
    assert second.from.id > id

    path = Path.join(System.tmp_dir!(), "es-corr-#{System.unique_integer([:positive])}.esrec")
    on_exit(fn -> File.rm(path) end)
    {:ok, %{events: 4}} = Recording.save(path)
    live_events = Query.events()
    {:ok, rec} = Recording.load(path)
    assert Query.events(source: rec) == live_events
    assert Correlation.links(Query.events(source: rec)) == links
    # the default source is now the recording
    assert Query.events() == live_events
    out = ExUnit.CaptureIO.capture_io(fn -> ElixirScope.IEx.stats() end)
    assert out =~ "recording #{path}" and out =~ "when saved, the session had emitted 4, stored 4, dropped 0"
    Recording.close(rec)
    assert ElixirScope.Query.Source.default() == :live
  end
end
