defmodule ElixirScope.AI.LLM.LiveTest do
  @moduledoc """
  Against the real services; excluded by default. Run with credentials:
  `GOOGLE_API_KEY=... mix test.gemini`, `VERTEX_JSON_FILE=... mix test.vertex`, `mix test.live`.
  """
  use ExUnit.Case, async: false
  import ExUnit.CaptureLog

  alias ElixirScope.AI.LLM.{Gemini, Vertex}
  alias ElixirScope.Test.AIFixtures

  @moduletag :live

  @tag :gemini
  test "Gemini: connection and a validated plan for the fixture project" do
    assert Gemini.configured?(), "set GOOGLE_API_KEY"
    assert :ok = Gemini.test_connection()

    capture_log(fn ->
      assert {:ok, %{provider: :gemini}, _warnings} = Gemini.plan_instrumentation(AIFixtures.analyses(), [])
    end)
  end

  @tag :vertex
  test "Vertex AI: token, connection and a validated plan for the fixture project" do
    assert Vertex.configured?(), "set VERTEX_JSON_FILE"
    assert :ok = Vertex.test_connection()

    capture_log(fn ->
      assert {:ok, %{provider: :vertex}, _warnings} = Vertex.plan_instrumentation(AIFixtures.analyses(), [])
    end)
  end
end
