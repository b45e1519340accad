defmodule ElixirScope.IExTest do
  # the helpers read the default source (global): not async
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO
  import ElixirScope.IEx
  alias ElixirScope.{Recording, Truncated}
  alias ElixirScope.Query.Source
  alias ElixirScope.Test.EventBuilder, as: B

  setup do
    [a, s] = B.pids(2)
    b = B.new()
    {b, c} = B.call(b, a, Shop, :checkout, [%{id: 7}, String.duplicate("x", 300)])
    {b, _} = B.local(b, a, c, %{total: 42, items: %Truncated{kind: :list, omitted: 500}})
    {b, _} = B.send_msg(b, a, s, {:charge, 42})
    {b, h} = B.call(b, s, Shop.Bank, :handle_info, [{:charge, 42}, %{balance: 100}])
    {b, _} = B.state(b, s, h, :before, %{balance: 100})
    {b, _} = B.state(b, s, h, :after, %{balance: 58})
    {b, _} = B.ret(b, s, h, {:noreply, %{balance: 58}})
    {b, _} = B.ret(b, a, c, {:ok, 42})
    {b, c2} = B.call(b, a, Shop, :checkout, [%{id: 8}, "y"])
    {b, _} = B.add(b, a, :exception, call_id: c2, payload: {:error, %ArgumentError{message: "bad"}, []})
    rec = Recording.from_events(B.events(b), %{clock: {1_000_000, 1_700_000_000_000_000}, names: %{bank: s}})
    Source.put_default(rec)
    Process.put(:elixir_scope_colors, false)

    on_exit(fn ->
      Recording.close(rec)
      Source.put_default(:live)
    end)

    %{a: a, s: s, call: c}
  end

  test "history prints relative and wall-clock times, kinds, values and truncation markers", %{a: a} do
    out = capture_io(fn -> history(a) end)
    lines = String.split(out, "\n", trim: true)
    assert length(lines) == 6
    assert hd(lines) =~ ~r/^#1 \+1\.0µs 22:13:20\.000 #PID<[\d.]+> → Shop.checkout\/2 \[%\{id: 7\}, "x+" <> \.\.\.\]/
    assert out =~ "vars items=#Truncated<list, 500 more>, total=42"
    assert out =~ "✉ send → #PID<"
    assert out =~ "← Shop.checkout/2 = {:ok, 42}"
    assert out =~ "✗ Shop.checkout/2 ArgumentError: bad"
    refute out =~ "\e["
  end

  test "history via a string pid and a registered name; hints when nothing matches", %{s: s} do
    "#PID<" <> rest = inspect(s)
    assert capture_io(fn -> history(String.trim_trailing(rest, ">")) end) =~ "state (after) %{balance: 58}"
    assert capture_io(fn -> history(:bank) end) =~ "Shop.Bank.handle_info/2"
    assert capture_io(fn -> history(self()) end) =~ "hint: no events recorded for"
    assert capture_io(fn -> history(:nobody) end) =~ "error: no process is registered as :nobody"
  end

  test "calls lists every call with its outcome" do
    out = capture_io(fn -> calls(Shop.checkout/2) end)
    assert out =~ ~r/#1 .* Shop.checkout\/2 \(7\.0µs\) = \{:ok, 42\}  args: \[%\{id: 7\}, "x+.*…\(\+\d+ chars\)/
    assert out =~ "raised ArgumentError: bad"
    assert out =~ "2 call(s)"
    assert capture_io(fn -> calls(Shop.refund/1) end) =~ "hint: no recorded calls of Shop.refund/1"
    assert capture_io(fn -> calls({Shop, :checkout}) end) =~ "2 call(s)"
    out = capture_io(fn -> logpoint(Shop.checkout/2, fn hit -> {hd(hit.args).id, hit.locals[:total]} end) end)
    assert out =~ ~r/^#1 .* \{7, 42\}$/m and out =~ ~r/^#9 .* \{8, nil\}$/m
  end

  test "tree, state_at and vars", %{a: a, s: s, call: c} do
    out = capture_io(fn -> tree(a) end)
    assert out =~ ~r/^Shop.checkout\/2 .*\[#1 \+1\.0µs 7\.0µs\] = \{:ok, 42\}/m
    assert out =~ "✗ ArgumentError: bad"
    assert capture_io(fn -> tree(c) end) =~ "Shop.checkout/2"
    assert capture_io(fn -> tree(999) end) =~ "hint: no call with id 999"
    assert capture_io(fn -> state_at(s, {:event, 5}) end) =~ "%{balance: 100}"
    assert capture_io(fn -> state_at(:bank) end) =~ "%{balance: 58}"
    assert capture_io(fn -> state_at(a) end) =~ "hint: no state was recorded"
    out = capture_io(fn -> vars(c) end)
    assert out =~ "total = 42" and out =~ "items = #Truncated<list, 500 more>"
  end

  test "step and back walk the events; timeline shows messages; origin; stats", %{a: a, s: s} do
    Process.delete(:elixir_scope_iex_cursor)
    assert capture_io(fn -> step() end) =~ "#1 "
    assert capture_io(fn -> step() end) =~ "#2 "
    assert capture_io(fn -> back() end) =~ "#1 "
    assert capture_io(fn -> back() end) =~ "hint: at the start"
    assert capture_io(fn -> step(s) end) =~ "#4 "
    out = capture_io(fn -> timeline([a, :bank]) end)
    assert out =~ "↳ info from #{inspect(a)} (#3)"
    assert out =~ "10 event(s), 1 link(s) between processes"
    out = capture_io(fn -> origin({:charge, 42}) end)
    assert out =~ "first seen:  #3 "
    assert out =~ "inside:      Shop.checkout/2"
    assert out =~ ~r/info\s+#{Regex.escape(inspect(a))} → #{Regex.escape(inspect(s))}/
    assert capture_io(fn -> origin(:never_seen) end) =~ "hint: no recorded event holds :never_seen"
    assert capture_io(fn -> stats() end) =~ ~r/events\s+10/
  end

  test "colours when enabled, and a clear message for explain without the AI part", %{a: a} do
    Process.put(:elixir_scope_colors, true)
    assert capture_io(fn -> history(a) end) =~ "\e[36m"
    Process.put(:elixir_scope_colors, false)

    if Code.ensure_loaded?(ElixirScope.AI) do
      # the offline heuristic provider explains the recorded exception (read from the recording)
      Application.put_env(:elixir_scope, :ai, llm_provider: :heuristic)
      on_exit(fn -> Application.delete_env(:elixir_scope, :ai) end)
      out = capture_io(fn -> explain(a) end)
      assert out =~ "ArgumentError" and out =~ "Shop.checkout/2"
      assert capture_io(fn -> explain(self()) end) =~ "hint: no exception recorded"
    else
      assert capture_io(fn -> explain(a) end) =~ "hint: explain/1 needs ElixirScope.AI"
    end
  end
end
