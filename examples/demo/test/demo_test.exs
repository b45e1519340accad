defmodule DemoTest do
  # Runs against the application compiled with ElixirScope at :full: behaviour must be the same as
  # uninstrumented code, and the recording must show what ran.
  use ExUnit.Case, async: false

  alias Demo.{Audit, Courier, Interest, Ledger, RiskScorer}

  setup do
    {:ok, ledger} = Ledger.start_link([])
    %{ledger: ledger}
  end

  test "the ledger keeps balances and a journal", %{ledger: l} do
    assert :ok = Ledger.open(l, "a", 1_000)
    assert {:error, :exists} = Ledger.open(l, "a", 5)
    assert {:ok, 1_500} = Ledger.deposit(l, "a", 500)
    assert {:error, :no_such_account} = Ledger.deposit(l, "zz", 1)
    assert {:error, :insufficient_funds} = Ledger.withdraw(l, "a", 2_000)
    assert :ok = Ledger.open(l, "b", 0)
    assert :ok = Ledger.transfer(l, "a", "b", 700)
    assert %{"a" => 800, "b" => 700} = Ledger.balances(l)
    assert [%Demo.Posting{seq: 1, kind: :open} | _] = journal = Ledger.journal(l)
    assert length(journal) == 5
    assert Audit.audit(Ledger.balances(l), journal) == []
    assert [{"a", 1, 800}] = Audit.audit(%{"a" => 1}, journal)
  end

  test "recursive algorithms give the same results as plain code" do
    assert Interest.compound(10_000, 500, 2) == 11_025
    assert Interest.compound(10_000, 500, 0) == 10_000
    assert Interest.split(1_000, 3) == [333, 333, 334]
    assert Interest.format(-1_234) == "-$12.34"
    assert Interest.format(5) == "$0.05"
  end

  test "a checked transfer crosses three processes; ping-pong counts its pongs", %{ledger: l} do
    :ok = Ledger.open(l, "a", 1_000)
    :ok = Ledger.open(l, "b", 0)
    assert :ok = Ledger.checked_transfer(l, "a", "b", 100)
    assert {:error, {:too_risky, risk}} = Ledger.checked_transfer(l, "a", "b", 5_000)
    assert risk >= 90
    assert Demo.PingPong.play(5) == 5
  end

  test "the courier answers messages" do
    assert {:delivered, _, "x: $1.00"} = Courier.deliver(Courier, "x", %{"x" => 100})
  end

  test "the risk scorer crashes on an empty history, with the original exception, and is restarted" do
    assert RiskScorer.risk(100, [50, 150]) == 10
    assert_raise ArithmeticError, fn -> RiskScorer.risk(100, []) end

    old = Process.whereis(RiskScorer)
    assert {{:badarith, stack}, _} = catch_exit(RiskScorer.score(5, []))
    assert {RiskScorer, :risk, 2, info} = List.keyfind(stack, RiskScorer, 0)
    assert to_string(info[:file]) == "lib/demo/risk_scorer.ex"
    wait_until(fn -> Process.whereis(RiskScorer) not in [nil, old] end)
    assert RiskScorer.score(10, [10]) == 10
  end

  test "the instrumented calls are recorded, with GenServer state", %{ledger: l} do
    :ok = Ledger.open(l, "rec", 42)
    ElixirScope.flush()
    events = ElixirScope.get_events(pid: l)

    assert Enum.any?(
             events,
             &(&1.kind == :call and &1.function == :handle_call and
                 match?([{:open, "rec", 42} | _], &1.payload))
           )

    assert Enum.any?(
             events,
             &(&1.kind == :state and match?({:after, %{balances: %{"rec" => 42}}}, &1.payload))
           )
  end

  defp wait_until(fun, tries \\ 200) do
    cond do
      fun.() -> :ok
      tries == 0 -> flunk("condition not reached")
      true -> Process.sleep(5) && wait_until(fun, tries - 1)
    end
  end
end
