defmodule ElixirScope.MessagesTest do
  @moduledoc false
  # Processes and messages recorded from compiled code (test/fixtures/messages/scenario.ex, compiled
  # plain and instrumented): the program behaves as plain, every send is paired with exactly the
  # receive that took it, receives say which clause took the message and when an after ran, and a
  # call that no clause matches is recorded with its arguments.
  use ElixirScope.ScopeCase, async: false

  alias ElixirScope.AST.Transformer
  alias ElixirScope.Event
  alias ElixirScope.Query.Correlation

  @file_path Path.expand("../fixtures/messages/scenario.ex", __DIR__)

  defp compile(to, plan) do
    ast =
      @file_path
      |> File.read!()
      |> Code.string_to_quoted!(file: @file_path)
      |> Macro.prewalk(fn
        {:__aliases__, m, [:Fixture, :Messages]} -> {:__aliases__, m, to}
        other -> other
      end)

    ast = if plan == :plain, do: ast, else: elem(Transformer.transform_module(ast, plan), 1)
    ExUnit.CaptureIO.capture_io(:stderr, fn -> Code.compile_quoted(ast, @file_path) end)
    Module.concat(to)
  end

  setup_all do
    %{plain: compile([:MsgTest, :Plain], :plain), inst: compile([:MsgTest, :Inst], :function_boundaries)}
  end

  setup do
    start_scope!()
  end

  defp run_all(m) do
    [
      m.ping_pong(3),
      m.chain(:q),
      m.timeout(1),
      m.stream([1, 2, 3]),
      m.quick(5),
      catch_error(m.clause(:c)),
      catch_error(m.guarded(0)),
      quiet(fn -> m.restart() end)
    ]
  end

  # the crash report of the restart scenario goes to the log
  defp quiet(fun) do
    parent = self()
    ExUnit.CaptureLog.capture_log(fn -> send(parent, {:quiet, fun.()}) end)
    assert_received {:quiet, result}
    result
  end

  test "the instrumented scenario behaves as the plain one, messages identical", %{plain: p, inst: i} do
    ElixirScope.disable()
    plain = run_all(p)
    ElixirScope.enable()
    inst = run_all(i)
    rename = fn t -> :erlang.term_to_binary(t) |> :binary.replace("Plain", "Inst", [:global]) end
    assert rename.(plain) == :erlang.term_to_binary(inst)
  end

  test "ping-pong: every send is paired with exactly the receive that took it", %{inst: m} do
    assert [[3, 3, 3], [2, 2, 2], [1, 1, 1]] = Enum.map(m.ping_pong(3), & &1.payload)
    evs = recorded()
    links = Correlation.links(evs)
    sends = Enum.filter(evs, &(&1.kind == :send and match?({:ping, _, _}, Event.message(&1)) or match?({:pong, _, _}, Event.message(&1)) and &1.kind == :send))
    assert length(sends) == 6

    for s <- sends do
      assert [l] = Enum.filter(links, &(&1.from.id == s.id)), "send #{s.id} paired #{inspect(links)}"
      assert l.type == :message
      assert l.to.kind == :receive and l.to.pid != s.pid
      assert Event.message(l.to) == Event.message(s)
      assert %{clause: 1} = Event.receive_info(l.to)
    end

    # each receive takes one send
    receivers = for l <- links, l.type == :message, do: l.to.id
    assert receivers == Enum.uniq(receivers)
  end

  test "a GenServer.call chain across three processes, casts, infos, send_after and reply", %{inst: m} do
    assert {{:via, {:via, {:answer, :q}}}, [1, {:tick, 2}, {:tick, 3}]} = m.chain(:q)
    evs = recorded()
    links = Correlation.links(evs)
    server = Module.concat(m, Server)

    calls = for l <- links, l.type == :call, do: l
    asks = Enum.filter(calls, &match?({:ask, :q}, Event.message(&1.to)))
    assert length(asks) == 3
    # caller → a → b → c: three different receiving processes, each asked by the previous one
    assert asks |> Enum.map(& &1.to.pid) |> Enum.uniq() |> length() == 3
    assert Enum.all?(asks, &(&1.from.kind == :send and &1.from.function == :call and &1.to.kind == :receive))
    assert Enum.all?(asks, &(Event.receive_info(&1.to).clause == :call))

    assert [cast] = for(l <- links, l.type == :cast, do: l)
    assert Event.message(cast.from) == {:note, 1}
    infos = for l <- links, l.type == :info, do: Event.message(l.from)
    assert {:tick, 2} in infos and {:tick, 3} in infos
    assert Enum.any?(links, &(&1.type == :info and &1.from.function == :send_after))

    assert Enum.any?(links, &(&1.type == :reply and &1.from.kind == :send and &1.from.function == :reply))
    server_calls = for e <- evs, e.kind == :call, e.module == server, into: MapSet.new(), do: e.call_id
    assert Enum.any?(evs, &(&1.kind == :state and &1.call_id in server_calls))
  end

  test "GenServer.call in tail position: the client's call lasts until the reply, which is its result", %{inst: m} do
    {{:via, {:via, {:answer, :q}}}, _} = m.chain(:q)
    evs = recorded()
    server = Module.concat(m, Server)
    asks = for e <- evs, e.kind == :call, e.module == server, e.function == :ask, do: e
    assert length(asks) == 3
    replies = Correlation.call_replies(evs)
    links = Correlation.links(evs)

    for ask <- asks do
      # the client's frame ends by the jump into GenServer.call
      assert %Event{kind: :tail_call, payload: {GenServer, :call, _}} = tail = Enum.find(evs, &(&1.id == ask.return_id))
      assert %Event{kind: :return, payload: {:reply, value, _}} = reply = replies[tail.id]
      assert reply.pid != ask.pid and reply.ts > tail.ts
      # the reply link attaches to this call, not to whatever the client did next
      assert [%{from: ^reply}] = for(l <- links, l.type == :reply, l.to.id == tail.id, do: l)
      assert value in [{:answer, :q}, {:via, {:answer, :q}}, {:via, {:via, {:answer, :q}}}]
    end

    # exports: the client's span lasts until the reply and carries it
    spans = ElixirScope.Export.Trace.spans(evs) |> Enum.flat_map(&elem(&1, 1))

    for ask <- asks do
      span = Enum.find(spans, &(&1.call.id == ask.id))
      assert span.reply && span.stop >= span.reply.ts
    end

    report = ElixirScope.Report.render(evs, sections: [:trees])
    assert report =~ "ask(" and report =~ "→ {:answer, :q} (reply)"
  end

  test "origin/2 follows a value back through replies, messages and GenServer state to the event that produced it",
       %{inst: m} do
    {answer, notes} = m.chain(:q)
    evs = recorded()
    me = self()
    chain_ret = Enum.find(evs, &(&1.kind == :return and &1.pid == me and &1.payload == {answer, notes}))

    # {:answer, :q} was made by the last server's handle_call, two replies away from the caller
    {:ok, o} = ElixirScope.Query.origin({:answer, :q}, at: chain_ret.id)
    assert %Event{kind: :return, function: :handle_call, payload: {:reply, {:answer, :q}, _}} = o.first
    assert o.first.pid != me
    assert Enum.map(o.trail, & &1.type) == [:reply, :reply, :reply]
    assert List.last(o.trail).to.pid == me

    # {:tick, 2} went from the caller to the first server as a message and lived in its state
    # until the server sent its notes with GenServer.reply: seen from that reply, its origin is
    # the caller's send
    reply = Enum.find(evs, &(&1.kind == :send and &1.function == :reply))
    assert reply.pid != me
    {:ok, o} = ElixirScope.Query.origin({:tick, 2}, at: reply.id)
    assert %Event{kind: :send, pid: ^me, function: :send, payload: {_, {:tick, 2}}} = o.first
    assert [%{type: :info, to: %{pid: server}}] = o.trail
    assert server == reply.pid
    # seen from the caller's result, it never left the caller before: its own send
    {:ok, o} = ElixirScope.Query.origin({:tick, 2}, at: chain_ret.id)
    assert o.first.kind == :send and o.first.pid == me and o.trail == []
  end

  test "a callback's state after is inside its call: the cinema's inspector shows before and after", %{inst: m} do
    m.chain(:q)
    evs = recorded()
    server = Module.concat(m, Server)
    [call | _] = for e <- evs, e.kind == :call, e.module == server, e.function == :handle_call, do: e
    detail = ElixirScope.Web.Data.event_detail(:live, call.id)
    assert Enum.map(detail.call.states, & &1.phase) |> Enum.sort() == ["after", "before"]
  end

  test "a receive whose after runs is recorded as such", %{inst: m} do
    :timed_out = m.timeout(1)
    assert [r] = Enum.filter(recorded(), &(&1.kind == :receive))
    assert %{clause: :after} = Event.receive_info(r)
  end

  test "a receive records how long it waited, unless its timeout is computed (a call before it would change its error's line)",
       %{inst: m} do
    30 = m.late(30)
    :timed_out = m.timeout_literal()
    :timed_out = m.timeout(1)
    receives = Enum.filter(recorded(), &(&1.kind == :receive))
    assert [late] = Enum.filter(receives, &match?({:late, _}, Event.message(&1)))
    assert %{clause: 1, waited_us: w} = Event.receive_info(late)
    assert is_integer(w) and w >= 25_000
    assert [literal, computed] = Enum.filter(receives, &(Event.receive_info(&1).clause == :after))
    assert %{waited_us: lw} = Event.receive_info(literal)
    assert is_integer(lw) and lw >= 15_000
    assert Event.receive_info(computed).waited_us == nil
  end

  test "a call no clause matches is recorded with its arguments; the error is the plain one", %{inst: m, plain: p} do
    run = fn mod ->
      try do
        mod.clause(:c)
      rescue
        e -> {e, __STACKTRACE__}
      end
    end

    {e_plain, [plain_top | _]} = run.(p)
    {e_inst, [inst_top | _] = st} = run.(m)
    assert %FunctionClauseError{arity: 1, function: :clause} = e_inst
    assert %{e_inst | module: p} == e_plain
    assert [{^m, :clause, [:c], loc} | _] = st
    assert put_elem(plain_top, 0, m) == inst_top
    assert loc[:line] == 76
    evs = recorded()
    assert [call] = Enum.filter(evs, &(&1.kind == :call and &1.function == :clause))
    assert call.payload == [:c]
    assert [exc] = Enum.filter(evs, &(&1.kind == :exception and &1.call_id == call.call_id))
    assert {:error, :function_clause, [{^m, :clause, [:c], _} | _]} = exc.payload
  end

  test "a head guard that fails is recorded as the call's exception, with its arguments", %{inst: m, plain: p} do
    assert catch_error(p.guarded(0)) == :function_clause and catch_error(m.guarded(0)) == :function_clause
    evs = recorded()
    assert [call] = Enum.filter(evs, &(&1.kind == :call and &1.function == :guarded))
    assert call.payload == [0]
    assert [exc] = Enum.filter(evs, &(&1.kind == :exception and &1.call_id == call.call_id))
    assert {:error, :function_clause, [{^m, :guarded, [0], _} | _]} = exc.payload
  end

  test "lifecycle: each process that recorded events gets a :spawn with its parent, initial call and links",
       %{inst: m} do
    m.chain(:q)
    evs = recorded()
    me = self()
    server = Module.concat(m, Server)
    servers = for e <- evs, e.kind == :call, e.module == server, e.function == :init, do: e.pid
    assert length(servers) == 3

    for pid <- servers do
      # recorded as the parent's (the caller's)
      assert [spawn] = Enum.filter(evs, &(&1.kind == :spawn and Event.spawn_info(&1).child == pid))
      assert spawn.pid == me
      assert %{child: ^pid, parent: ^me, initial_call: {^server, :init, 1}, links: links} = Event.spawn_info(spawn)
      assert me in links
      # placed at the time of the process's first recorded event
      assert spawn.ts == Enum.find(evs, &(&1.pid == pid)).ts
      refute Enum.any?(evs, &(&1.kind == :exit and &1.pid == pid))
    end

    labels = for p <- ElixirScope.Query.processes(), p.pid in servers, do: p.label
    assert labels == List.duplicate(inspect(server), 3)
    st = ElixirScope.stats()
    assert st.emitted == st.stored + st.dropped + st.lost
  end

  test "a process that lives under a drain interval gets its :spawn from its call site: parent and label",
       %{inst: m} do
    assert m.quick(5) == {10, true}
    evs = recorded()
    me = self()
    workers = for e <- evs, e.kind == :call, e.module == m, e.function == :work, do: {hd(e.payload), e.pid}
    assert [{5, task}, {6, fun}] = Enum.sort(workers)

    for {pid, via} <- [{task, :task}, {fun, :spawn}] do
      # once, recorded by the parent when the spawn returned; the observer saw the child only dead
      assert [spawn] = Enum.filter(evs, &(&1.kind == :spawn and Event.spawn_info(&1).child == pid))
      assert spawn.pid == me and spawn.function == :call_site
      assert %{parent: ^me, via: ^via, initial_call: {^m, name, 0}} = Event.spawn_info(spawn)
      assert Atom.to_string(name) =~ ~r/^-quick\/1-fun-\d-$/
      assert spawn.id > Enum.find(evs, &(&1.kind == :call and &1.function == :quick)).id
    end

    labels = Map.new(ElixirScope.Query.processes(), &{&1.pid, &1.label})
    assert labels[task] == "Task from #{inspect(m)}.quick/1"
    assert labels[fun] == "fn from #{inspect(m)}.quick/1"

  end

  test "a child the observer sees alive is monitored, but not announced a second time", %{inst: m} do
    child = m.linger()
    # until the observer has seen it recording
    wait_for(fn -> Enum.any?(recorded(), &(&1.pid == child)) end)
    Process.sleep(20)
    ElixirScope.flush()
    assert [%{function: :call_site}] = Enum.filter(recorded(), &(&1.kind == :spawn and Event.spawn_info(&1).child == child))
    ref = Process.monitor(child)
    send(child, :stop)
    assert_receive {:DOWN, ^ref, :process, ^child, :normal}
    wait_for(fn -> Enum.any?(recorded(), &(&1.kind == :exit and &1.pid == child and &1.function == :down)) end)
    assert [_] = Enum.filter(recorded(), &(&1.kind == :spawn and Event.spawn_info(&1).child == child))
  end


  test "a supervisor restart: the crashed worker is marked and linked to its successor", %{inst: m} do
    # the session sees a process at the first drain after its first event: one that ended within
    # a few ms of its start would be known only by its events (Lifecycle's moduledoc), so the test
    # lets the session see each worker before it ends
    {sup, first} = m.start_worker()
    ElixirScope.flush()
    assert {{:pong, 0}, "worker crashed", {:pong, 0}} = quiet(fn -> m.crash_worker(sup, first) end)
    ElixirScope.flush()
    Supervisor.stop(sup)
    evs = recorded()
    worker = Module.concat(m, Worker)
    [old, new] = for e <- evs, e.kind == :call, e.module == worker, e.function == :init, do: e.pid
    procs = Map.new(ElixirScope.Query.processes(), &{&1.pid, &1})

    # the crash is the exception that escaped; the exit the session observed says the same
    assert %{crash: %Event{kind: :exception} = crash, exit: %Event{kind: :exit, payload: {%RuntimeError{message: "worker crashed"}, _}},
             restarted_as: ^new} = procs[old]
    assert crash.pid == old and match?({:error, %RuntimeError{message: "worker crashed"}, _}, crash.payload)
    assert %{crash: nil, restart_of: ^old, label: label} = procs[new]
    assert label == inspect(worker)
    assert %{exit: %Event{payload: :shutdown}} = procs[new]

    assert [restart] = for(l <- Correlation.links(evs), l.type == :restart, do: l)
    assert {restart.from.kind, restart.from.pid, restart.to.kind, restart.to.pid} == {:exit, old, :spawn, sup}
    assert %{child: ^new, parent: ^sup, child_id: ^worker} = Event.spawn_info(restart.to)

    # the report and IEx say it too
    report = ElixirScope.Report.render(evs, sections: [:processes])
    assert report =~ ~r/#{Regex.escape(inspect(old))} .*crashed: \{%RuntimeError\{message: "worker crashed"\}/
    assert report =~ "(restart of #{inspect(old)})"
    out = ExUnit.CaptureIO.capture_io(fn -> ElixirScope.IEx.processes() end)
    assert out =~ "restarted as #{inspect(new)}" and out =~ "restart of #{inspect(old)}"
  end

  test "a send nobody takes stays unpaired", %{inst: m} do
    dead = spawn(fn -> :ok end)
    ref = Process.monitor(dead)
    assert_receive {:DOWN, ^ref, _, _, _}
    m.unsent(dead)
    evs = recorded()
    assert [s] = Correlation.unpaired_sends(evs, Correlation.links(evs))
    assert Event.message(s) == {:nobody_listens, 1}
  end

  test "OTLP: a request across three processes is one trace, each server span a child of its caller's", %{inst: m} do
    m.chain(:q)
    evs = recorded()
    spans = ElixirScope.Export.OTLP.build(evs).resourceSpans |> hd() |> Map.fetch!(:scopeSpans) |> hd() |> Map.fetch!(:spans)
    by_id = Map.new(spans, &{&1.spanId, &1})
    server = inspect(Module.concat(m, Server))
    asks = Enum.filter(spans, &(&1.name == server <> ".handle_call/3" and attr(&1, "elixir.args") =~ "{:ask, :q}"))
    assert length(asks) == 3
    assert asks |> Enum.map(& &1.traceId) |> Enum.uniq() |> length() == 1

    for ask <- asks do
      parent = Map.fetch!(by_id, ask.parentSpanId)
      assert attr(parent, "elixir.pid") != attr(ask, "elixir.pid")
    end

    # the first server's request comes from the caller's chain/1 span
    chain = Enum.find(spans, &(&1.name == inspect(m) <> ".chain/1"))
    assert Enum.any?(asks, &(&1.parentSpanId != nil and trace_ancestor?(&1, chain, by_id)))
  end

  test "Perfetto: every message between processes is a flow arrow from the send to the receive", %{inst: m} do
    m.ping_pong(2)
    evs = recorded()
    trace = ElixirScope.Export.Perfetto.build(evs)
    starts = for %{ph: "s"} = e <- trace.traceEvents, do: e
    finishes = for %{ph: "f"} = e <- trace.traceEvents, into: %{}, do: {e.id, e}
    assert length(starts) >= 4
    for s <- starts, do: assert(Map.has_key?(finishes, s.id) and finishes[s.id].tid != s.tid)
  end

  defp attr(span, key) do
    Enum.find_value(span.attributes, fn
      %{key: ^key, value: %{stringValue: v}} -> v
      %{key: ^key, value: %{intValue: v}} -> v
      _ -> nil
    end)
  end

  defp trace_ancestor?(span, target, by_id) do
    cond do
      span.spanId == target.spanId -> true
      parent = span[:parentSpanId] && by_id[span.parentSpanId] -> trace_ancestor?(parent, target, by_id)
      true -> false
    end
  end

  defp recorded do
    ElixirScope.flush()
    ElixirScope.get_events()
  end
end
