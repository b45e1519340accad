defmodule ElixirScope.AI.LLM.SecretsTest do
  @moduledoc "API keys, tokens and private keys never appear in logs, errors, inspected structs or crash reports."
  use ExUnit.Case, async: false
  import ExUnit.CaptureLog

  alias ElixirScope.AI.LLM.{Gemini, OpenAICompatible, Secret}
  alias ElixirScope.AI.Orchestrator
  alias ElixirScope.Test.{AIFixtures, LLMServer}

  @key "AIzaSECRET-do-not-leak-424242"

  test "inspect redacts secrets and settings" do
    s = Secret.wrap(@key)
    refute inspect(s) =~ @key
    assert inspect(s) == "#Secret<redacted>"
    settings = Gemini.settings(api_key: @key)
    refute inspect(settings) =~ @key
    assert inspect(settings) =~ "redacted"
    refute inspect(settings, structs: false) =~ @key
    refute :io_lib.format(~c"~p", [settings]) |> IO.iodata_to_binary() =~ @key
    assert Secret.reveal(settings.api_key) == @key
  end

  test "a server that echoes the key: the error and the logs do not contain it" do
    srv =
      LLMServer.start(fn req ->
        {401, [], LLMServer.error_body(401, "bad key #{req.headers["x-goog-api-key"]}")}
      end)

    on_exit(fn -> LLMServer.stop(srv) end)
    opts = [base_url: srv.url, api_key: @key, provider: :gemini]

    log =
      capture_log(fn ->
        assert {:error, {:unauthorized, msg} = reason} = Gemini.test_connection(opts)
        assert msg =~ "[REDACTED]"
        refute inspect(reason) =~ @key
        assert {:ok, _plan, [warning]} = Orchestrator.plan(AIFixtures.analyses(), opts)
        assert warning =~ "unauthorized"
        refute warning =~ @key
      end)

    refute log =~ @key
  end

  test "refused, timeout and TLS errors do not contain the key" do
    port = LLMServer.closed_port()

    {:error, reason} =
      OpenAICompatible.test_connection(base_url: "http://127.0.0.1:#{port}/v1", api_key: @key)

    refute inspect(reason) =~ @key
  end

  test "a key with a line break inside never reaches a stacktrace" do
    srv = LLMServer.start(fn _ -> {200, [], LLMServer.gemini_body("OK")} end)
    on_exit(fn -> LLMServer.stop(srv) end)
    bad = "AIzaLINE\nBREAK-secret-777"
    assert {:error, {:bad_request, msg}} = Gemini.test_connection(base_url: srv.url, api_key: bad)
    refute msg =~ "BREAK-secret"
    assert msg =~ "line break"
    # surrounding whitespace is trimmed
    assert :ok = Gemini.test_connection(base_url: srv.url, api_key: "  AIzaTRIM-123\n")
  end

  defmodule Holder do
    use GenServer
    def init(settings), do: {:ok, %{settings: settings}}
    def handle_call(:crash, _from, state), do: raise("boom with #{inspect(state.settings)}")
  end

  test "crash reports of a process holding the settings do not contain the key" do
    Process.flag(:trap_exit, true)
    settings = Gemini.settings(api_key: @key)

    log =
      capture_log(fn ->
        {:ok, pid} = GenServer.start_link(Holder, settings)
        catch_exit(GenServer.call(pid, :crash))
        Process.sleep(100)
      end)

    assert log =~ "boom"
    # the report shows the state (with the settings), redacted
    assert log =~ "State:"
    assert log =~ "redacted"
    refute log =~ @key
  end
end
