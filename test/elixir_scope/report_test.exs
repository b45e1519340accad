defmodule ElixirScope.ReportTest do
  use ExUnit.Case, async: true

  alias ElixirScope.{Event, Report}

  # A hand-made recording: a GenServer call that changes state, a recursion, a crash with locals.
  defp recording do
    srv = :c.pid(0, 901, 0)
    me = :c.pid(0, 902, 0)

    [
      %Event{
        id: 1,
        ts: 1_000,
        pid: srv,
        kind: :call,
        module: Bank,
        function: :handle_call,
        arity: 3,
        call_id: 1,
        payload: [{:deposit, "a", 5}, {me, make_ref()}, %{balances: %{"a" => 1}, log: []}]
      },
      %Event{
        id: 2,
        ts: 1_100,
        pid: srv,
        kind: :state,
        call_id: 1,
        payload: {:before, %{balances: %{"a" => 1}, log: []}}
      },
      %Event{
        id: 3,
        ts: 1_200,
        pid: srv,
        kind: :return,
        module: Bank,
        function: :handle_call,
        arity: 3,
        call_id: 1,
        payload: {:reply, :ok, %{balances: %{"a" => 6}, log: [:deposit]}}
      },
      %Event{
        id: 4,
        ts: 1_300,
        pid: srv,
        kind: :state,
        call_id: 1,
        payload: {:after, %{balances: %{"a" => 6}, log: [:deposit]}}
      },
      %Event{
        id: 5,
        ts: 2_000,
        pid: me,
        kind: :call,
        module: M,
        function: :fact,
        arity: 1,
        call_id: 5,
        payload: [1]
      },
      %Event{
        id: 6,
        ts: 2_100,
        pid: me,
        kind: :call,
        module: M,
        function: :fact,
        arity: 1,
        call_id: 6,
        payload: [0]
      },
      %Event{
        id: 7,
        ts: 2_200,
        pid: me,
        kind: :return,
        module: M,
        function: :fact,
        arity: 1,
        call_id: 6,
        payload: 1
      },
      %Event{
        id: 8,
        ts: 2_300,
        pid: me,
        kind: :return,
        module: M,
        function: :fact,
        arity: 1,
        call_id: 5,
        payload: 1
      },
      %Event{
        id: 9,
        ts: 3_000,
        pid: me,
        kind: :call,
        module: M,
        function: :ratio,
        arity: 2,
        call_id: 9,
        payload: [7, []]
      },
      %Event{id: 10, ts: 3_100, pid: me, kind: :local, call_id: 9, line: 3, payload: %{total: 0}},
      %Event{
        id: 11,
        ts: 3_200,
        pid: me,
        kind: :exception,
        module: M,
        function: :ratio,
        arity: 2,
        call_id: 9,
        payload:
          {:error, :badarith,
           [{:erlang, :div, [7, 0], []}, {M, :ratio, 2, [file: 'lib/m.ex', line: 4]}]}
      }
    ]
  end

  test "renders timelines, call trees, state changes, the crash and the totals" do
    text =
      Report.render(recording(),
        stats: %{emitted: 11, stored: 11, dropped: 0, pending: 0},
        overhead: "n/a"
      )

    assert text =~ "Processes (2)"
    assert text =~ ~s|call      Bank.handle_call({:deposit, "a", 5}, from, state)|
    assert text =~ ~r/M\.fact\(1\) → 1 \[0\.3 µs\]\n\s+M\.fact\(0\) → 1/
    assert text =~ ~s|balances["a"]: 1 ⇒ 6; log +1: :deposit|
    assert text =~ "** (ArithmeticError) bad argument in arithmetic expression"
    assert text =~ "raised by M.ratio(7, [])"
    assert text =~ "locals: total=0"
    assert text =~ "at :erlang.div/2, called from M.ratio/2 (lib/m.ex:4)"
    assert text =~ "events: 11 from 2 processes"
    assert text =~ "capture: emitted 11, stored 11, dropped 0"
  end

  test "a frame that tail-calls code without instrumentation does not swallow the calls after it" do
    p = :c.pid(0, 903, 0)

    events = [
      %Event{
        id: 1,
        ts: 1,
        pid: p,
        kind: :call,
        module: L,
        function: :open,
        arity: 1,
        call_id: 1,
        payload: [:x]
      },
      %Event{
        id: 2,
        ts: 2,
        pid: p,
        kind: :tail_call,
        module: L,
        function: :open,
        arity: 1,
        call_id: 1,
        payload: {GenServer, :call, [L, :x]}
      },
      %Event{
        id: 3,
        ts: 3,
        pid: p,
        kind: :call,
        module: L,
        function: :close,
        arity: 1,
        call_id: 3,
        payload: [:x]
      },
      %Event{
        id: 4,
        ts: 4,
        pid: p,
        kind: :return,
        module: L,
        function: :close,
        arity: 1,
        call_id: 3,
        payload: :ok
      }
    ]

    text = Report.render(events, sections: [:trees])
    assert text =~ ~r/\n    L\.open\(:x\) ⤷ GenServer\.call\(L, :x\)\n    L\.close\(:x\) → :ok/
  end
end
