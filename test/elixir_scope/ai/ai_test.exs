defmodule ElixirScope.AITest do
  use ExUnit.Case, async: true
  import ExUnit.CaptureLog

  alias ElixirScope.Test.LLMServer

  # A stand-in store with the DataAccess interface, over a fixed event list.
  defmodule FakeStore do
    @moduledoc false
    def events, do: ElixirScope.Test.SampleEvents.sample_events()
    def get_event(id), do: Enum.find(events(), &(&1.id == id))

    def get_events(filters) do
      events()
      |> Enum.filter(fn e ->
        Enum.all?(filters, fn
          {:pid, p} -> e.pid == p
          {:call_id, c} -> e.call_id == c
          {:kinds, ks} -> e.kind in ks
          {:before_id, b} -> e.id < b
          _ -> true
        end)
      end)
      |> then(fn l -> if filters[:order] == :desc, do: Enum.reverse(l), else: l end)
      |> Enum.take(filters[:limit] || 1_000_000)
    end
  end

  test "explain by event id, by call id, or with the event, offline" do
    opts = [data_access: FakeStore, provider: :heuristic]
    assert {:ok, r} = ElixirScope.AI.explain(9, opts)

    assert r.chain == [
             "Sample.Counter.handle_call/3",
             "Sample.Math.classify/1",
             "Sample.Math.check/1"
           ]

    assert r.suggested_fix =~ "clause"
    assert {:ok, ^r} = ElixirScope.AI.explain(7, opts)

    assert {:ok, ^r} =
             ElixirScope.AI.explain(
               Enum.at(ElixirScope.Test.SampleEvents.sample_events(), 7),
               opts
             )

    assert {:error, msg} = ElixirScope.AI.explain(3, opts)
    assert msg =~ "did not raise"
    assert {:error, msg} = ElixirScope.AI.explain(4, opts)
    assert msg =~ ":return"
    assert {:error, _} = ElixirScope.AI.explain(999, opts)
  end

  test "an LLM explanation, and the heuristic one with a warning when the LLM fails" do
    test_pid = self()

    srv =
      LLMServer.start(fn req ->
        send(test_pid, {:prompt, req.body})

        {200, [],
         LLMServer.openai_body(
           ~s({"explanation":"check/1 got :oops","suggested_fix":"handle atoms"})
         )}
      end)

    on_exit(fn -> LLMServer.stop(srv) end)
    opts = [data_access: FakeStore, provider: :openai_compatible, base_url: srv.url]

    assert {:ok,
            %{
              explanation: "check/1 got :oops",
              suggested_fix: "handle atoms",
              provider: :openai_compatible
            }} = ElixirScope.AI.explain(9, opts)

    assert_received {:prompt, body}
    assert body =~ "FunctionClauseError"
    assert body =~ "count: 41"

    port = LLMServer.closed_port()

    capture_log(fn ->
      assert {:ok, %{provider: :heuristic, warning: w}} =
               ElixirScope.AI.explain(9, Keyword.put(opts, :base_url, "http://127.0.0.1:#{port}"))

      assert w =~ "connect"
    end)
  end
end
