defmodule ElixirScope.AI.LLM.ConfigTest do
  use ExUnit.Case, async: false

  alias ElixirScope.AI.LLM.{Gemini, OpenAICompatible, Provider, Secret, Vertex}

  setup do
    old = Application.get_env(:elixir_scope, :ai)

    on_exit(fn ->
      if old,
        do: Application.put_env(:elixir_scope, :ai, old),
        else: Application.delete_env(:elixir_scope, :ai)
    end)
  end

  test "the flat :ai keys of ElixirScope.Config reach the configured provider only" do
    ai = [
      llm_provider: :gemini,
      api_key: "cfg-key-123",
      model: "gemini-x",
      base_url: "http://127.0.0.1:1/",
      analysis_timeout: 1234,
      planning_timeout: 5678,
      max_retries: 0,
      max_request_bytes: 999,
      max_response_bytes: 4321
    ]

    Application.put_env(:elixir_scope, :ai, ai)
    # the same config passes the lead's validation
    assert {:ok, _} = ElixirScope.Config.validate([])

    s = Gemini.settings([])
    assert Secret.reveal(s.api_key) == "cfg-key-123"
    assert {s.model, s.base_url, s.timeout_ms} == {"gemini-x", "http://127.0.0.1:1", 1234}

    assert s.options[:retries] == 0 and s.options[:max_prompt_bytes] == 999 and
             s.options[:max_response_bytes] == 4321

    assert Gemini.settings(purpose: :plan).timeout_ms == 5678
    # call options win
    assert Gemini.settings(model: "other").model == "other"

    o = OpenAICompatible.settings([])
    assert o.model == "gpt-4o-mini"
    assert o.timeout_ms == 1234
    assert Provider.current([]) == :gemini
    assert Provider.current(provider: :mock) == :mock
  end

  test ":auto picks by the credentials present, else the offline heuristic" do
    Application.put_env(:elixir_scope, :ai,
      llm_provider: :auto,
      project_id: "p1",
      location: "europe-west4"
    )

    s = Vertex.settings([])
    assert s.options[:project] == "p1"
    assert s.base_url == "https://europe-west4-aiplatform.googleapis.com"

    expected =
      cond do
        System.get_env("GOOGLE_API_KEY") not in [nil, ""] -> :gemini
        System.get_env("VERTEX_JSON_FILE") not in [nil, ""] -> :vertex
        true -> :heuristic
      end

    assert Provider.current([]) == expected
    assert {:error, msg} = Provider.module(:nope)
    assert msg =~ "unknown LLM provider"
  end
end
