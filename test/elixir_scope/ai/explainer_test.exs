defmodule ElixirScope.AI.ExplainerTest do
  use ExUnit.Case, async: true

  alias ElixirScope.AI.Explainer

  @fields [:id, :ts, :wall_time, :pid, :kind, :module, :function, :arity, :line, :call_id, :link,
           :correlation_id, :return_id, :payload, :truncated?]

  @doc false
  def ev(fields) do
    base = Map.new(@fields, &{&1, nil}) |> Map.put(:truncated?, false)
    fields = Map.new(fields)

    if Code.ensure_loaded?(ElixirScope.Event),
      do: struct!(ElixirScope.Event, Map.merge(Map.take(base, Map.keys(struct(ElixirScope.Event))), fields)),
      else: Map.merge(base, fields)
  end

  @doc "Events of a GenServer call that raised a FunctionClauseError three frames deep."
  def sample_events do
    pid = :c.pid(0, 250, 0)
    stack = [{Sample.Math, :check, [:oops], [file: ~c"lib/sample/math.ex", line: 43]}]

    [
      ev(id: 1, pid: pid, kind: :state, module: Sample.Counter, function: :handle_call, arity: 3, line: 16, call_id: 2, payload: {:before, %{count: 41}}),
      ev(id: 2, pid: pid, kind: :call, module: Sample.Counter, function: :handle_call, arity: 3, line: 16, call_id: 2, payload: [{:inc, :oops}, :from, %{count: 41}]),
      ev(id: 3, pid: pid, kind: :call, module: Sample.Math, function: :add, arity: 2, line: 4, call_id: 3, payload: [41, 1]),
      ev(id: 4, pid: pid, kind: :return, module: Sample.Math, function: :add, arity: 2, line: 4, call_id: 3, payload: 42),
      ev(id: 5, pid: pid, kind: :call, module: Sample.Math, function: :classify, arity: 1, line: 9, call_id: 5, payload: [:oops]),
      ev(id: 6, pid: pid, kind: :local, module: Sample.Math, function: :classify, arity: 1, line: 20, call_id: 5, payload: %{x: :oops, y: 2}),
      ev(id: 7, pid: pid, kind: :call, module: Sample.Math, function: :check, arity: 1, line: 43, call_id: 7, payload: [:oops]),
      ev(id: 8, pid: pid, kind: :exception, module: Sample.Math, function: :check, arity: 1, line: 43, call_id: 7,
         payload: {:error, %FunctionClauseError{module: Sample.Math, function: :check, arity: 1}, stack}),
      ev(id: 9, pid: pid, kind: :exception, module: Sample.Math, function: :classify, arity: 1, line: 9, call_id: 5,
         payload: {:error, %FunctionClauseError{module: Sample.Math, function: :check, arity: 1}, stack}),
      # another process, unrelated
      ev(id: 10, pid: :c.pid(0, 251, 0), kind: :call, module: Other, function: :f, arity: 0, line: 1, call_id: 10, payload: [])
    ]
  end

  @doc false
  def sample_context do
    {:ok, ctx} = Explainer.context(sample_events())
    ctx
  end

  test "rebuilds the chain of open frames, args, locals and GenServer state" do
    ctx = sample_context()
    # the re-reported exception (id 9) leads back to where it was raised (id 8)
    assert ctx.exception.where == "Sample.Math.check/1"
    assert ctx.exception.type == "FunctionClauseError"
    assert ctx.exception.banner =~ "FunctionClauseError"
    assert Enum.map(ctx.chain, & &1.function) == ["Sample.Counter.handle_call/3", "Sample.Math.classify/1", "Sample.Math.check/1"]
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
    assert result.chain == ["Sample.Counter.handle_call/3", "Sample.Math.classify/1", "Sample.Math.check/1"]
  end

  test "big values are capped; no exception is an error" do
    pid = self()
    big = Enum.to_list(1..100_000)

    events = [
      ev(id: 1, pid: pid, kind: :call, module: M, function: :f, arity: 1, line: 1, call_id: 1, payload: [big]),
      ev(id: 2, pid: pid, kind: :exception, module: M, function: :f, arity: 1, line: 1, call_id: 1, payload: {:error, :badarith, []})
    ]

    {:ok, ctx} = Explainer.context(events)
    assert String.length(hd(hd(ctx.chain).args)) <= 401
    assert ctx.exception.type == "ArithmeticError"
    assert Explainer.explain(ctx).suggested_fix =~ "arithmetic"
    assert byte_size(ElixirScope.NIF.json_encode(Explainer.jsonable(ctx))) < 5000
    assert {:error, _} = Explainer.context(Enum.take(events, 1))
  end
end
