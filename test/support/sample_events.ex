defmodule ElixirScope.Test.SampleEvents do
  @moduledoc "Constructed %ElixirScope.Event{} values for the AI tests."
  alias ElixirScope.AI.Explainer

  @doc "An event with the given fields (the rest as `%ElixirScope.Event{}` defaults them)."
  def ev(fields), do: struct!(ElixirScope.Event, fields)

  @doc "Events of a GenServer call that raised a FunctionClauseError three frames deep."
  def sample_events do
    pid = :c.pid(0, 250, 0)
    stack = [{Sample.Math, :check, [:oops], [file: ~c"lib/sample/math.ex", line: 43]}]

    [
      ev(
        id: 1,
        pid: pid,
        kind: :state,
        module: Sample.Counter,
        function: :handle_call,
        arity: 3,
        line: 16,
        call_id: 2,
        payload: {:before, %{count: 41}}
      ),
      ev(
        id: 2,
        pid: pid,
        kind: :call,
        module: Sample.Counter,
        function: :handle_call,
        arity: 3,
        line: 16,
        call_id: 2,
        payload: [{:inc, :oops}, :from, %{count: 41}]
      ),
      ev(
        id: 3,
        pid: pid,
        kind: :call,
        module: Sample.Math,
        function: :add,
        arity: 2,
        line: 4,
        call_id: 3,
        payload: [41, 1]
      ),
      ev(
        id: 4,
        pid: pid,
        kind: :return,
        module: Sample.Math,
        function: :add,
        arity: 2,
        line: 4,
        call_id: 3,
        payload: 42
      ),
      ev(
        id: 5,
        pid: pid,
        kind: :call,
        module: Sample.Math,
        function: :classify,
        arity: 1,
        line: 9,
        call_id: 5,
        payload: [:oops]
      ),
      ev(
        id: 6,
        pid: pid,
        kind: :local,
        module: Sample.Math,
        function: :classify,
        arity: 1,
        line: 20,
        call_id: 5,
        payload: %{x: :oops, y: 2}
      ),
      ev(
        id: 7,
        pid: pid,
        kind: :call,
        module: Sample.Math,
        function: :check,
        arity: 1,
        line: 43,
        call_id: 7,
        payload: [:oops]
      ),
      ev(
        id: 8,
        pid: pid,
        kind: :exception,
        module: Sample.Math,
        function: :check,
        arity: 1,
        line: 43,
        call_id: 7,
        payload:
          {:error, %FunctionClauseError{module: Sample.Math, function: :check, arity: 1}, stack}
      ),
      ev(
        id: 9,
        pid: pid,
        kind: :exception,
        module: Sample.Math,
        function: :classify,
        arity: 1,
        line: 9,
        call_id: 5,
        payload:
          {:error, %FunctionClauseError{module: Sample.Math, function: :check, arity: 1}, stack}
      ),
      # another process, unrelated
      ev(
        id: 10,
        pid: :c.pid(0, 251, 0),
        kind: :call,
        module: Other,
        function: :f,
        arity: 0,
        line: 1,
        call_id: 10,
        payload: []
      )
    ]
  end

  @doc false
  def sample_context do
    {:ok, ctx} = Explainer.context(sample_events())
    ctx
  end
end
