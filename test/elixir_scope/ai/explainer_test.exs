defmodule ElixirScope.AI.ExplainerTest do
  use ExUnit.Case, async: true

  alias ElixirScope.AI.Explainer

  import ElixirScope.Test.SampleEvents

  test "rebuilds the chain of open frames, args, locals and GenServer state" do
    ctx = sample_context()
    # the re-reported exception (id 9) leads back to where it was raised (id 8)
    assert ctx.exception.where == "Sample.Math.check/1"
    assert ctx.exception.type == "FunctionClauseError"
    assert ctx.exception.banner =~ "FunctionClauseError"

    assert Enum.map(ctx.chain, & &1.function) == [
             "Sample.Counter.handle_call/3",
             "Sample.Math.classify/1",
             "Sample.Math.check/1"
           ]

    assert List.last(ctx.chain).args == [":oops"]
    assert ctx.locals == %{"x" => ":oops", "y" => "2"}
    assert ctx.state.value == "%{count: 41}"
    assert ctx.state.phase == :before
    refute Enum.any?(ctx.recent, &(&1.function == "Other.f/0"))
  end

  test "explain/1 gives a structured summary and a fix" do
    result = Explainer.explain(sample_context())
    assert result.provider == :heuristic
    assert result.explanation =~ "Sample.Math.check/1"
    assert result.explanation =~ "classify"
    assert result.explanation =~ "x = :oops"
    assert result.explanation =~ "count: 41"
    assert result.suggested_fix =~ "No clause"

    assert result.chain == [
             "Sample.Counter.handle_call/3",
             "Sample.Math.classify/1",
             "Sample.Math.check/1"
           ]
  end

  test "big values are capped; no exception is an error" do
    pid = self()
    big = Enum.to_list(1..100_000)

    events = [
      ev(
        id: 1,
        pid: pid,
        kind: :call,
        module: M,
        function: :f,
        arity: 1,
        line: 1,
        call_id: 1,
        payload: [big]
      ),
      ev(
        id: 2,
        pid: pid,
        kind: :exception,
        module: M,
        function: :f,
        arity: 1,
        line: 1,
        call_id: 1,
        payload: {:error, :badarith, []}
      )
    ]

    {:ok, ctx} = Explainer.context(events)
    assert String.length(hd(hd(ctx.chain).args)) <= 401
    assert ctx.exception.type == "ArithmeticError"
    assert Explainer.explain(ctx).suggested_fix =~ "arithmetic"
    assert byte_size(ElixirScope.NIF.json_encode(Explainer.jsonable(ctx))) < 5000
    assert {:error, _} = Explainer.context(Enum.take(events, 1))
  end
end
