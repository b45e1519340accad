defmodule ElixirScope.AI.LLM.FailuresTest do
  @moduledoc "Every failure of the issue's list, against a real local server."
  use ExUnit.Case, async: true
  import ExUnit.CaptureLog

  alias ElixirScope.AI.LLM.{Gemini, OpenAICompatible}
  alias ElixirScope.AI.Orchestrator
  alias ElixirScope.Test.{AIFixtures, LLMServer}

  @key "AIzaFAILURES-secret-key-987"

  defp serve(fun) do
    srv = LLMServer.start(fun)
    on_exit(fn -> LLMServer.stop(srv) end)
    srv
  end

  defp opts(srv, extra \\ []),
    do:
      Keyword.merge(
        [
          base_url: srv.url,
          api_key: @key,
          model: "m",
          backoff_ms: 5,
          retries: 2,
          analysis_timeout: 5000
        ],
        extra
      )

  defp ok_answer, do: {200, [], LLMServer.gemini_body("OK")}

  test "429 is retried honouring Retry-After, then succeeds" do
    srv =
      serve(fn %{n: n} ->
        if n <= 2,
          do: {429, [{"Retry-After", "0"}], LLMServer.error_body(429, "slow down")},
          else: ok_answer()
      end)

    assert :ok = Gemini.test_connection(opts(srv, retries: 2))
    assert length(LLMServer.requests(srv)) == 3
  end

  test "Retry-After in seconds is waited for" do
    srv =
      serve(fn %{n: n} -> if n == 1, do: {429, [{"retry-after", "1"}], ""}, else: ok_answer() end)

    t0 = System.monotonic_time(:millisecond)
    assert :ok = Gemini.test_connection(opts(srv, retries: 1))
    assert System.monotonic_time(:millisecond) - t0 >= 1000
  end

  test "429 that never ends: rate_limited after the retries" do
    srv =
      serve(fn _ ->
        {429, [{"Retry-After", "0"}], LLMServer.error_body(429, "Resource has been exhausted")}
      end)

    assert {:error, {:rate_limited, msg}} = Gemini.test_connection(opts(srv, retries: 2))
    assert msg =~ "429"
    assert msg =~ "3 attempts"
    assert msg =~ "Resource has been exhausted"
    assert length(LLMServer.requests(srv)) == 3
  end

  test "a Retry-After longer than allowed stops at once" do
    srv = serve(fn _ -> {429, [{"Retry-After", "3600"}], ""} end)
    assert {:error, {:rate_limited, msg}} = Gemini.test_connection(opts(srv, retries: 3))
    assert msg =~ "max_retry_after_ms"
    assert length(LLMServer.requests(srv)) == 1
  end

  test "5xx is retried with backoff; persistent 5xx is a server_error" do
    srv = serve(fn %{n: n} -> if n == 1, do: {500, [], ""}, else: ok_answer() end)
    assert :ok = Gemini.test_connection(opts(srv, retries: 2))

    srv2 = serve(fn _ -> {503, [], LLMServer.error_body(503, "overloaded")} end)
    assert {:error, {:server_error, msg}} = Gemini.test_connection(opts(srv2, retries: 2))
    assert msg =~ "503"
    assert msg =~ "overloaded"
    assert length(LLMServer.requests(srv2)) == 3
  end

  test "401 and 403 are not retried and name the credentials" do
    for status <- [401, 403] do
      srv = serve(fn _ -> {status, [], LLMServer.error_body(status, "denied")} end)
      assert {:error, {:unauthorized, msg}} = Gemini.test_connection(opts(srv))
      assert msg =~ "#{status}"
      assert msg =~ "GOOGLE_API_KEY"
      assert length(LLMServer.requests(srv)) == 1

      assert {:error, {:unauthorized, msg}} =
               OpenAICompatible.test_connection(opts(srv, api_key: "k1234"))

      assert msg =~ "OPENAI_API_KEY"
    end
  end

  test "malformed JSON in a 200 answer" do
    srv = serve(fn _ -> {200, [], ~s({"candidates":[{"content":{"parts":[{"text":"trunc)} end)
    assert {:error, {:malformed_json, msg}} = Gemini.test_connection(opts(srv))
    assert msg =~ "not valid JSON"
  end

  test "an answer over the size cap" do
    srv = serve(fn _ -> {200, [], LLMServer.gemini_body(String.duplicate("a", 50_000))} end)

    assert {:error, {:too_large, msg}} =
             Gemini.test_connection(opts(srv, max_response_bytes: 10_000))

    assert msg =~ "max_response_bytes"
  end

  test "connection refused" do
    port = LLMServer.closed_port()

    assert {:error, {:connect_refused, msg}} =
             Gemini.test_connection(base_url: "http://127.0.0.1:#{port}", api_key: @key)

    assert msg =~ "127.0.0.1:#{port}"
    assert msg =~ "base_url"
  end

  test "timeout (analysis_timeout)" do
    srv = serve(fn _ -> {:sleep, 2000, ok_answer()} end)
    t0 = System.monotonic_time(:millisecond)
    assert {:error, {:timeout, msg}} = Gemini.test_connection(opts(srv, analysis_timeout: 300))
    assert System.monotonic_time(:millisecond) - t0 < 1500
    assert msg =~ "300 ms"
    assert msg =~ "analysis_timeout"
  end

  test "TLS failure" do
    srv = serve(fn _ -> ok_answer() end)
    https = String.replace(srv.url, "http://", "https://")
    assert {:error, {:tls, msg}} = Gemini.test_connection(base_url: https, api_key: @key)
    assert msg =~ "TLS"
  end

  test "a connection closed without an answer is retried, then reported" do
    srv = serve(fn _ -> :close end)
    assert {:error, {:io, _msg}} = Gemini.test_connection(opts(srv, retries: 1))
    assert length(LLMServer.requests(srv)) == 2
  end

  test "a blocked answer" do
    srv = serve(fn _ -> {200, [], ~s({"promptFeedback":{"blockReason":"SAFETY"}})} end)
    assert {:error, {:blocked, msg}} = Gemini.test_connection(opts(srv))
    assert msg =~ "SAFETY"
  end

  describe "invalid or partial plan answers fall back to the heuristic plan with a warning" do
    test "an answer naming a function that does not exist: that entry is dropped, the rest kept" do
      srv = serve(fn _ -> {200, [], LLMServer.gemini_body(AIFixtures.bad_function_answer())} end)
      analyses = AIFixtures.analyses()
      assert {:ok, plan, warnings} = Gemini.plan_instrumentation(analyses, opts(srv))
      assert plan.provider == :gemini
      assert Enum.any?(warnings, &(&1 =~ "does_not_exist/2" and &1 =~ "dropped"))

      log =
        capture_log(fn ->
          assert {:ok, plan, warnings} = Orchestrator.plan(analyses, Keyword.put(opts(srv), :provider, :gemini))
          assert plan.provider == :gemini
          assert Enum.any?(warnings, &(&1 =~ "does_not_exist/2"))
        end)

      # returned to be shown once by the caller, not logged as well
      refute log =~ "does_not_exist/2"
    end

    test "prose instead of JSON" do
      srv =
        serve(fn _ -> {200, [], LLMServer.gemini_body("I think you should trace everything.")} end)

      capture_log(fn ->
        assert {:ok, plan, [warning]} =
                 Orchestrator.plan(
                   AIFixtures.analyses(),
                   Keyword.put(opts(srv), :provider, :gemini)
                 )

        assert plan.provider == :heuristic
        assert warning =~ "malformed_json"
      end)
    end

    test "a wrong level value" do
      srv =
        serve(fn _ ->
          {200, [],
           LLMServer.gemini_body(~s({"modules":[{"module":"Sample.Math","level":"everything"}]}))}
        end)

      assert {:error, {:invalid_plan, msg}} =
               Gemini.plan_instrumentation(AIFixtures.analyses(), opts(srv))

      assert msg =~ "level"
    end

    test "an unknown module: only that entry is dropped, with a warning; the rest of the answer is kept" do
      srv =
        serve(fn _ ->
          {200, [],
           LLMServer.gemini_body(
             ~s({"modules":[{"module":"Not.There","level":"full"},{"module":"Sample.Math","level":"full","reason":"from the model"}]})
           )}
        end)

      assert {:ok, plan, warnings} = Gemini.plan_instrumentation(AIFixtures.analyses(), opts(srv))
      assert plan.provider == :gemini
      assert plan.modules[Sample.Math].level == :full
      assert plan.modules[Sample.Math].reasons.module == "from the model"
      refute Enum.any?(Map.keys(plan.modules), &(inspect(&1) == "Not.There"))
      assert [dropped | _] = warnings
      assert dropped =~ "Not.There" and dropped =~ "dropped that entry"
    end
  end
end
