defmodule ElixirScope.AI.ExplainStoreTest do
  @moduledoc "ElixirScope.AI.explain/2 on events recorded in the real store."
  use ElixirScope.ScopeCase, async: false

  alias ElixirScope.Capture.InstrumentationRuntime, as: RT
  alias ElixirScope.Storage.DataAccess

  setup do
    start_scope!()
  end

  test "explains a recorded exception from its call id and its event id" do
    outer = RT.report_function_entry(Shop.Cart, :checkout, [%{items: [], user: 7}], 10)
    :ok = RT.report_state_change(outer, :before, %{orders: 3}, 10)
    inner = RT.report_function_entry(Shop.Pricing, :total, [[]], 30)
    :ok = RT.report_local_variable_snapshot(inner, [discount: nil, items: []], 31)

    stack = [{Shop.Pricing, :total, 1, [file: ~c"lib/shop/pricing.ex", line: 32]}]

    :ok =
      RT.report_error(
        inner,
        :error,
        %ArithmeticError{message: "bad argument in arithmetic expression"},
        stack
      )

    DataAccess.flush()

    assert {:ok, r} = ElixirScope.AI.explain(inner, provider: :heuristic)
    assert r.chain == ["Shop.Cart.checkout/1", "Shop.Pricing.total/1"]
    assert r.explanation =~ "ArithmeticError"
    assert r.explanation =~ "discount = nil"
    assert r.explanation =~ "orders: 3"
    assert r.suggested_fix =~ "arithmetic"

    [exc] = DataAccess.get_events(kinds: [:exception])
    assert {:ok, ^r} = ElixirScope.AI.explain(exc.id, provider: :heuristic)
    assert {:ok, %{provider: :mock}} = ElixirScope.AI.explain(exc, provider: :mock)
  end
end
