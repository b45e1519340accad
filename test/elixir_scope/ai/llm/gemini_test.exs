defmodule ElixirScope.AI.LLM.GeminiTest do
  use ExUnit.Case, async: true

  alias ElixirScope.AI.LLM.Gemini
  alias ElixirScope.Test.{AIFixtures, LLMServer}

  @key "AIzaTEST-gemini-key-0123456789"

  setup do
    test_pid = self()

    srv =
      LLMServer.start(fn req ->
        send(test_pid, {:request, req})

        cond do
          req.headers["x-goog-api-key"] != @key ->
            {400, [{"content-type", "application/json"}],
             LLMServer.error_body(400, "API key not valid. Please pass a valid API key.")}

          req.path == "/v1beta/models/gemini-test:generateContent" ->
            {:ok, body} = ElixirScope.NIF.json_decode(req.body)

            text =
              if get_in(body, ["generationConfig", "responseSchema"]),
                do: AIFixtures.plan_answer(),
                else: explain_answer()

            {200, [{"content-type", "application/json"}], LLMServer.gemini_body(text)}

          true ->
            {404, [], LLMServer.error_body(404, "model not found")}
        end
      end)

    on_exit(fn -> LLMServer.stop(srv) end)
    %{srv: srv, opts: [base_url: srv.url, api_key: @key, model: "gemini-test", backoff_ms: 5]}
  end

  defp explain_answer,
    do: ElixirScope.NIF.json_encode(%{"explanation" => "x was nil", "suggested_fix" => "check x"})

  test "plans through generateContent with the plan schema; the key travels in a header", %{
    opts: opts
  } do
    analyses = AIFixtures.analyses()

    assert {:ok, plan, [warning]} = Gemini.plan_instrumentation(analyses, opts)
    assert plan.provider == :gemini
    AIFixtures.assert_answer_plan(plan)
    assert warning =~ ~r"did not cover .*Sample.Math.Inner"
    assert_received {:request, req}
    assert req.method == "POST"
    assert req.query == nil
    refute req.path =~ @key
    {:ok, body} = ElixirScope.NIF.json_decode(req.body)
    assert body["generationConfig"]["responseMimeType"] == "application/json"
    assert body["generationConfig"]["responseSchema"]["type"] == "OBJECT"
    [%{"parts" => [%{"text" => prompt}]}] = body["contents"]
    # the analysis, not the source, is sent
    assert prompt =~ "Sample.Counter"
    assert prompt =~ "handle_call"
    refute prompt =~ "GenServer.call(__MODULE__"
  end

  test "explain_error and suggest_fix parse the JSON answer", %{opts: opts} do
    ctx = ElixirScope.Test.SampleEvents.sample_context()

    assert {:ok, %{explanation: "x was nil", suggested_fix: "check x", provider: :gemini}} =
             Gemini.explain_error(ctx, opts)

    assert {:ok, "check x"} = Gemini.suggest_fix(ctx, opts)
  end

  test "analyze_code and test_connection", %{opts: opts} do
    assert {:ok, %{analysis: %{module: Sample.Math}, commentary: text}} =
             Gemini.analyze_code(
               File.read!(Path.join(AIFixtures.root(), "lib/sample/math.ex")),
               opts
             )

    assert is_binary(text)
    assert :ok = Gemini.test_connection(opts)
    assert Gemini.configured?(opts)
  end

  test "a wrong key gives an actionable error without the key", %{opts: opts} do
    assert {:error, {:unauthorized, msg}} =
             Gemini.test_connection(Keyword.put(opts, :api_key, "wrong-key-value"))

    assert msg =~ "API key not valid"
    assert msg =~ "GOOGLE_API_KEY"
    refute msg =~ "wrong-key-value"
  end

  test "no key: not configured", %{opts: opts} do
    opts = Keyword.put(opts, :api_key, "")
    refute Gemini.configured?(opts)

    assert {:error, {:not_configured, msg}} =
             Gemini.plan_instrumentation(AIFixtures.analyses(), opts)

    assert msg =~ "GOOGLE_API_KEY"
  end

  test "an unknown model gives a 404 hint", %{opts: opts} do
    assert {:error, {:http_error, msg}} =
             Gemini.test_connection(Keyword.put(opts, :model, "nope"))

    assert msg =~ "404"
    assert msg =~ "model"
  end
end
