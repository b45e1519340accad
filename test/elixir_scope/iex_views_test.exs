defmodule ElixirScope.IExViewsTest do
  @moduledoc false
  # What a new user met on the demo recording (issue 14, items 1, 3, 4, 12): the IEx helpers,
  # the explainer and the Query API against the demo recording made in this VM
  # (ElixirScope.Test.DemoRecording), with colours on and off.
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO
  import ElixirScope.IEx

  alias ElixirScope.{Event, Query, Recording}
  alias ElixirScope.Query.Source
  alias ElixirScope.Test.DemoRecording
  alias ElixirScope.Test.EventBuilder, as: B

  setup_all do
    {:ok, rec} = Recording.load(DemoRecording.path())

    on_exit(fn ->
      Recording.close(rec)
      Source.put_default(:live)
    end)

    [crash | _] = Query.events(kind: :exception, source: rec)
    %{rec: rec, crash: crash, scorer: crash.pid, ledger: rec.meta.names[Demo.Ledger]}
  end

  setup %{rec: rec} do
    Source.put_default(rec)
    Process.put(:elixir_scope_colors, false)
    on_exit(fn -> Process.delete(:elixir_scope_colors) end)
    :ok
  end

  defp pid_text(pid), do: pid |> inspect() |> String.trim_leading("#PID<") |> String.trim_trailing(">")

  test "1. timeline with colours on (IEx's default) prints the links between the processes", %{scorer: scorer, ledger: ledger} do
    Process.put(:elixir_scope_colors, true)
    out = capture_io(fn -> timeline([pid_text(scorer), pid_text(ledger)]) end)
    assert out =~ "\e["
    assert out =~ "↳ call from"
    assert out =~ ~r/\d+ event\(s\), [1-9]\d* link\(s\) between processes/
  end

  test "1. every helper prints with colours on as with colours off", %{scorer: scorer, crash: crash} do
    Application.put_env(:elixir_scope, :ai, llm_provider: :heuristic)
    on_exit(fn -> Application.delete_env(:elixir_scope, :ai) end)

    helpers = [
      fn -> apply(ElixirScope.IEx, :processes, []) end,
      fn -> history(scorer) end,
      fn -> calls(Demo.RiskScorer.risk/2) end,
      fn -> tree(scorer) end,
      fn -> state_at(Demo.Ledger, {:event, 120}) end,
      fn -> vars(crash.call_id) end,
      fn -> origin({:score, 700, []}) end,
      fn -> timeline([Demo.Ledger, scorer]) end,
      fn -> explain(Demo.RiskScorer) end,
      fn -> logpoint(Demo.RiskScorer.risk/2, fn hit -> hit.args end) end,
      fn -> step(scorer) end,
      fn -> stats() end,
      fn -> state_at(Demo.Ledger, :bogus) end
    ]

    for h <- helpers do
      Process.put(:elixir_scope_colors, true)
      on = capture_io(h)
      Process.put(:elixir_scope_colors, false)
      off = capture_io(h)
      assert on =~ "\e["
      refute off =~ "\e["
      assert String.replace(on, ~r/\e\[[0-9;]*m/, "") == off
    end
  end

  test "3. origin lists the one call open when the value first appeared" do
    out = capture_io(fn -> origin({:score, 700, []}) end)
    assert out =~ ~r/first seen:  #\d+ .*send → Demo.RiskScorer: \{:score, 700, \[\]\}/
    assert [_, inside] = Regex.run(~r/^inside:\s+(.*)$/m, out)
    assert inside == "Demo.RiskScorer.score/3"
  end

  test "3. the calls open at an event: ended calls, and calls that tail-called uninstrumented code, are closed" do
    [p] = B.pids(1)
    b = B.new()
    {b, c1} = B.call(b, p, M, :open, [1])
    {b, _} = B.add(b, p, :tail_call, call_id: c1, payload: {GenServer, :call, [:x, :y]})
    {b, c2} = B.call(b, p, M, :done, [2])
    {b, _} = B.ret(b, p, c2, :ok)
    {b, c3} = B.call(b, p, M, :outer, [3])
    {b, c4} = B.call(b, p, M, :inner, [4])
    {b, _} = B.send_msg(b, p, self(), {:value, 42})
    {b, _} = B.ret(b, p, c4, :ok)
    {b, _} = B.ret(b, p, c3, :ok)
    rec = Recording.from_events(B.events(b))
    on_exit(fn -> Recording.close(rec) end)

    assert {:ok, o} = Query.origin({:value, 42}, source: rec)
    assert Enum.map(o.calls, & &1.id) == [c3, c4]
  end

  test "4. explain: the line that raised, the callback whose state it shows, and a name that was restarted",
       %{crash: crash} do
    Application.put_env(:elixir_scope, :ai, llm_provider: :heuristic)
    on_exit(fn -> Application.delete_env(:elixir_scope, :ai) end)

    # the name now belongs to the restarted process: explain finds the one that crashed
    out = capture_io(fn -> explain(Demo.RiskScorer) end)
    refute out =~ "no exception recorded"
    assert out =~ "ArithmeticError"
    assert out =~ "Demo.RiskScorer.risk/2 (line 29)"
    assert out =~ "GenServer state (before Demo.RiskScorer.handle_call/3): %{scored: 2}"
    refute out =~ "line 0"
    refute out =~ "nil./"

    {:ok, ctx} = ElixirScope.AI.Explainer.context(Query.events(pid: crash.pid))
    json = ElixirScope.AI.Explainer.jsonable(ctx)
    assert json.exception.line == 29
    assert json.state.function == "Demo.RiskScorer.handle_call/3"
    refute ElixirScope.NIF.json_encode(json) =~ "nil./"
    assert Enum.all?(json.recent, &(&1.line == nil or &1.line > 0))
  end

  test "12. processes lists pids, names (also a name held before a restart), event counts and crashes",
       %{scorer: scorer, ledger: ledger, rec: rec} do
    # apply: the helper is new (the test also runs against code without it)
    out = capture_io(fn -> apply(ElixirScope.IEx, :processes, []) end)
    line = fn pid -> out |> String.split("\n") |> Enum.find(&String.starts_with?(&1, inspect(pid) <> " ")) end
    restarted = rec.meta.names[Demo.RiskScorer]
    assert restarted != scorer

    assert line.(scorer) =~ ~r/Demo.RiskScorer\s+Demo.RiskScorer.init\/1\s+\d+\s+.*crashed at #\d+: ArithmeticError: bad argument in arithmetic expression/
    # the restart link is there once the lifecycle observer saw both processes before the save
    assert line.(restarted) =~ ~r/Demo.RiskScorer .*\s+ok(; restart of #{Regex.escape(inspect(scorer))})?$/
    count = length(Query.events(pid: ledger))
    assert line.(ledger) =~ ~r/^#{Regex.escape(inspect(ledger))}\s+Demo.Ledger\s+Demo.Ledger.init\/1\s+#{count}\s/
    assert out =~ ~r/\d+ process\(es\)/
  end

  test "12. a recording prints its structs as structs without their module loaded" do
    [p] = B.pids(1)
    posting = %{__struct__: Not.Loaded.Posting, seq: 1, account: "alice", amount: 10_000}
    {b, c} = B.call(B.new(), p, Not.Loaded.Ledger, :post, [posting])
    {b, _} = B.ret(b, p, c, {:ok, [posting]})
    rec = Recording.from_events(B.events(b))
    Source.put_default(rec)
    on_exit(fn -> Recording.close(rec) end)

    refute Code.ensure_loaded?(Not.Loaded.Posting)
    shown = ~s(%Not.Loaded.Posting{account: "alice", amount: 10000, seq: 1})

    for out <- [capture_io(fn -> history(p) end), capture_io(fn -> calls(Not.Loaded.Ledger.post/1) end), capture_io(fn -> tree(p) end)] do
      assert out =~ shown
      refute out =~ "__struct__"
    end

    assert ElixirScope.Report.Format.value(posting) =~ "%Not.Loaded.Posting{"
  end

  test "12. a struct whose module is loaded keeps its own Inspect (which may hide what it holds)" do
    secret = ElixirScope.AI.LLM.Secret.wrap("hunter2-key")
    refute ElixirScope.Report.Format.value(secret) =~ "hunter2"
    refute ElixirScope.IEx.Format.value({:settings, secret}) =~ "hunter2"
    assert ElixirScope.Report.Format.value(%ElixirScope.Truncated{kind: :list, omitted: 3}) == "#Truncated<list, 3 more>"
  end

  test "12. calls and tree cut arguments and results alike, and never the event id or duration" do
    [p] = B.pids(1)
    big = String.duplicate("x", 5_000)
    {b, c} = B.call(B.new(), p, Big, :f, [big])
    {b, _} = B.ret(b, p, c, %{payload: big})
    rec = Recording.from_events(B.events(b))
    Source.put_default(rec)
    on_exit(fn -> Recording.close(rec) end)

    out = capture_io(fn -> calls(Big.f/1) end)
    [line | _] = String.split(out, "\n")
    assert [_, ret_cut] = Regex.run(~r/= %\{payload: "x+.*?…\(\+(\d+) chars\)/, line)
    assert [_, args_cut] = Regex.run(~r/args: \["x+.*?…\(\+(\d+) chars\)/, line)
    assert String.length(line) < 300
    assert String.to_integer(ret_cut) > 0 and String.to_integer(args_cut) > 0

    out = capture_io(fn -> tree(p) end)
    assert out =~ ~r/\[#1 t=\d+ 1\.0µs\] = %\{payload: "x+/
    assert String.length(out) < 300
  end

  test "12. one rendering of an exception in calls, tree, history and the report", %{scorer: scorer} do
    one = "ArithmeticError: bad argument in arithmetic expression"
    assert capture_io(fn -> calls(Demo.RiskScorer.risk/2) end) =~ "raised " <> one
    assert capture_io(fn -> tree(scorer) end) =~ "✗ " <> one
    assert capture_io(fn -> history(scorer) end) =~ "✗ Demo.RiskScorer.risk/2 " <> one
    refute capture_io(fn -> calls(Demo.RiskScorer.risk/2) end) =~ ":badarith"
    assert ElixirScope.Report.render(Query.events(pid: scorer)) =~ one
  end

  test "a stacktrace whose file name was cut at capture is still shown" do
    cut = ~c"lib/demo/risk" ++ [%ElixirScope.Truncated{kind: :list, omitted: 10}]
    stack = [{:erlang, :div, 2, []}, {Demo.RiskScorer, :risk, 2, [file: cut, line: 29]}]
    assert ElixirScope.Report.Format.frame(Enum.at(stack, 1)) == "Demo.RiskScorer.risk/2 (lib/demo/risk…:29)"
    [p] = B.pids(1)
    {b, c} = B.call(B.new(), p, Demo.RiskScorer, :risk, [700, []])
    {b, _} = B.add(b, p, :exception, call_id: c, payload: {:error, :badarith, stack})
    assert ElixirScope.Report.render(B.events(b)) =~ "called from Demo.RiskScorer.risk/2 (lib/demo/risk…:29)"
  end

  test "12. an exception of a module that is not loaded is written like the others" do
    e = %{__struct__: Not.Loaded.Error, __exception__: true, message: "card declined"}
    assert ElixirScope.Report.Format.exception_line({:error, e, []}) == "Not.Loaded.Error: card declined"
    assert ElixirScope.IEx.Format.exception({:error, :badarith, []}) == "ArithmeticError: bad argument in arithmetic expression"
  end

  test "12. wrong arguments say what was expected, with an example" do
    out = capture_io(fn -> state_at(Demo.Ledger, :bogus) end)
    assert out =~ "error: cannot read :bogus as an instant"
    assert out =~ "{:event, 120}"
    refute out =~ "invalid value for filter until"

    assert capture_io(fn -> history(Demo.Ledger, -1) end) =~ "history(pid, 100)"
    assert capture_io(fn -> timeline([Demo.Ledger], :soon) end) =~ "{nil, ~U["
    assert capture_io(fn -> tree(3.5) end) =~ ~s("0.123.0")
    assert capture_io(fn -> calls("not a function") end) =~ "MyMod.fun/2"
    assert capture_io(fn -> explain(3.5) end) =~ "explain(MyApp.Worker)"
    assert capture_io(fn -> logpoint(Demo.RiskScorer.risk/2, :no_fun) end) =~ "fn hit ->"
    assert capture_io(fn -> vars("zero") end) =~ ~s(write "0.123.0")
    assert {:error, msg} = Query.events(limit: -3)
    assert msg =~ "e.g. limit: 50"
    assert {:error, msg} = Query.cursor() |> Query.jump_to(:later)
    assert msg =~ "{:event, 120}"
  end

  test "12. Query accepts the pid strings the helpers accept", %{ledger: ledger} do
    text = pid_text(ledger)
    assert [%Event{pid: ^ledger} | _] = Query.events(pid: text, limit: 3)
    assert [%Event{pid: ^ledger} | _] = Query.events(pid: "#PID<#{text}>", limit: 3)
    assert {:ok, %{balances: _}, _} = Query.state_at(text, :now)
    assert is_list(Query.call_tree(text))
    assert {:error, msg} = Query.events(pid: "0.1")
    assert msg =~ ~s(write "0.123.0")
  end
end
