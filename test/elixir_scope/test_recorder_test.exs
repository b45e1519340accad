defmodule ElixirScope.TestRecorderTest do
  @moduledoc false
  # The formatter hears of a test's start by a message that may arrive after the test began: a
  # failing test's recording must still hold what the test recorded before that message.
  use ElixirScope.ScopeCase, async: false

  alias ElixirScope.{Query, Recording, TestRecorder}
  alias ElixirScope.Capture.InstrumentationRuntime

  @moduletag :tmp_dir

  test "a failing test's recording holds the events it recorded before the formatter heard it start", %{tmp_dir: dir} do
    start_scope!()
    {:ok, state} = TestRecorder.init([])
    state = %{state | dir: dir}
    test = %ExUnit.Test{name: :"test early work", module: EarlyTest, state: nil, tags: %{}}

    # the test runs first...
    InstrumentationRuntime.report_custom(:early_work, 1)
    # ...and the formatter's casts come after
    {:noreply, state} = TestRecorder.handle_cast({:test_started, test}, state)
    {:noreply, state} = TestRecorder.handle_cast({:test_finished, %{test | state: {:failed, []}}}, state)

    assert [{_, path, {:ok, _}}] = state.saved
    {:ok, rec} = Recording.load(path)

    try do
      events = Query.events(source: rec)
      assert Enum.any?(events, &match?(%{kind: :custom, payload: {:early_work, 1}}, &1))
      assert Enum.any?(events, &match?(%{kind: :custom, payload: {:test_started, %{name: "test early work"}}}, &1))
    after
      Recording.close(rec)
    end
  end
end
