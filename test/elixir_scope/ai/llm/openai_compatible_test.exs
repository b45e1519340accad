defmodule ElixirScope.AI.LLM.OpenAICompatibleTest do
  use ExUnit.Case, async: true
  import ExUnit.CaptureLog

  alias ElixirScope.AI.LLM.OpenAICompatible
  alias ElixirScope.Test.{AIFixtures, LLMServer}

  setup do
    test_pid = self()

    srv =
      LLMServer.start(fn req ->
        send(test_pid, {:request, req})

        case req.path do
          "/v1/chat/completions" ->
            {200, [{"content-type", "application/json"}],
             LLMServer.openai_body(AIFixtures.plan_answer())}

          _ ->
            {404, [], "not found"}
        end
      end)

    on_exit(fn -> LLMServer.stop(srv) end)
    %{opts: [base_url: srv.url <> "/v1", model: "local-model", api_key: nil]}
  end

  test "plans through chat completions (local server, no key)", %{opts: opts} do
    capture_log(fn ->
      assert {:ok, plan, _warnings} = OpenAICompatible.plan_instrumentation(AIFixtures.analyses(), opts)
      assert plan.provider == :openai_compatible
      AIFixtures.assert_answer_plan(plan)
    end)

    assert_received {:request, req}
    assert req.headers["authorization"] == nil
    {:ok, body} = ElixirScope.NIF.json_decode(req.body)
    assert body["model"] == "local-model"
    assert body["response_format"] == %{"type" => "json_object"}
    assert [%{"role" => "system"}, %{"role" => "user"}] = body["messages"]
    assert OpenAICompatible.configured?(opts)
  end

  test "sends the key as a bearer token", %{opts: opts} do
    capture_log(fn ->
      OpenAICompatible.plan_instrumentation(
        AIFixtures.analyses(),
        Keyword.put(opts, :api_key, "sk-local-123")
      )
    end)

    assert_received {:request, %{headers: %{"authorization" => "Bearer sk-local-123"}}}
  end

  test "json_mode false leaves out response_format", %{opts: opts} do
    capture_log(fn ->
      OpenAICompatible.plan_instrumentation(
        AIFixtures.analyses(),
        Keyword.put(opts, :json_mode, false)
      )
    end)

    assert_received {:request, req}
    {:ok, body} = ElixirScope.NIF.json_decode(req.body)
    refute Map.has_key?(body, "response_format")
  end
end
