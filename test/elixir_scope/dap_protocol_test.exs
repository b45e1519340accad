defmodule ElixirScope.DAPProtocolTest do
  @moduledoc """
  The debug adapter's wire protocol without an editor: Content-Length framing
  (split and coalesced messages, extra headers, missing lengths, oversized
  input), bad requests and malformed JSON over a real TCP connection, and
  `attach` to the live session of this VM.
  """
  use ExUnit.Case, async: false

  alias ElixirScope.Capture.InstrumentationRuntime, as: R
  alias ElixirScope.DAP.{Server, Wire}
  alias ElixirScope.JSON

  defp frame(map), do: map |> Wire.frame() |> IO.iodata_to_binary()
  defp req(seq, command, args \\ %{}), do: %{"seq" => seq, "type" => "request", "command" => command, "arguments" => args}

  describe "Wire.parse/1" do
    test "splits coalesced messages and keeps an incomplete one for later" do
      a = frame(req(1, "initialize"))
      b = frame(req(2, "threads"))
      {partial, rest_of_b} = String.split_at(b, 10)

      assert {[{:ok, %{"seq" => 1}}], ^partial} = Wire.parse(a <> partial)
      assert {[{:ok, %{"seq" => 2, "command" => "threads"}}], ""} = Wire.parse(partial <> rest_of_b)
      assert {[], ^partial} = Wire.parse(partial)
    end

    test "reads the length whatever the case and order of headers" do
      body = JSON.encode!(req(3, "threads"))
      msg = "Content-Type: application/vscode-jsonrpc; charset=utf-8\r\ncontent-length: #{byte_size(body)}\r\n\r\n" <> body
      assert {[{:ok, %{"seq" => 3}}], ""} = Wire.parse(msg)
    end

    test "a header block without Content-Length, malformed JSON and a non-object are errors; the next message is read" do
      good = frame(req(4, "threads"))
      assert {[{:error, "a header block without a valid Content-Length" <> _}, {:ok, %{"seq" => 4}}], ""} =
               Wire.parse("X-Nothing: 1\r\n\r\n" <> good)

      bad_json = "{\"seq\": 5, \"type\": "
      assert {[{:error, "malformed JSON" <> _}, {:ok, _}], ""} =
               Wire.parse("Content-Length: #{byte_size(bad_json)}\r\n\r\n" <> bad_json <> good)

      assert {[{:error, "a message must be a JSON object" <> _}], ""} = Wire.parse("Content-Length: 3\r\n\r\n[1]")
    end

    test "bounds the header block and the declared body" do
      assert {:fatal, _} = Wire.parse(String.duplicate("x", 9_000))
      assert {:fatal, "Content-Length" <> _} = Wire.parse("Content-Length: 999999999999\r\n\r\n")
    end

    test "multi-byte bodies are counted in bytes" do
      msg = frame(%{"seq" => 6, "type" => "request", "command" => "evaluate", "arguments" => %{"expression" => "\"héllo ✓\""}})
      assert {[{:ok, %{"arguments" => %{"expression" => "\"héllo ✓\""}}}], ""} = Wire.parse(msg)
    end
  end

  describe "over TCP" do
    setup do
      {:ok, server} = Server.start(port: 0)
      on_exit(fn -> Server.stop(server) end)
      {:ok, sock} = :gen_tcp.connect({127, 0, 0, 1}, server.port, [:binary, active: false])
      on_exit(fn -> :gen_tcp.close(sock) end)
      {:ok, sock: sock}
    end

    test "a request split across packets is answered; bad requests get error responses; the session goes on", %{sock: sock} do
      bytes = frame(req(1, "initialize", %{"adapterID" => "elixir-scope"}))
      for chunk <- chunks(bytes, 7), do: :ok = :gen_tcp.send(sock, chunk)
      assert %{"type" => "response", "request_seq" => 1, "success" => true, "body" => caps} = read(sock)
      assert caps["supportsStepBack"] and caps["supportsDataBreakpoints"]

      # malformed JSON: reported as an output event, the connection stays usable
      :ok = :gen_tcp.send(sock, "Content-Length: 9\r\n\r\n{\"seq\": 1")
      assert %{"type" => "event", "event" => "output", "body" => %{"category" => "stderr", "output" => out}} = read(sock)
      assert out =~ "malformed JSON"

      # a request without a command, an unknown command, a request before launch
      :ok = :gen_tcp.send(sock, frame(%{"seq" => 2, "type" => "request"}))
      assert %{"request_seq" => 2, "success" => false, "message" => "a request needs a command" <> _} = read(sock)
      :ok = :gen_tcp.send(sock, frame(req(3, "threads")))
      assert %{"request_seq" => 3, "success" => false, "message" => "launch or attach first" <> _} = read(sock)

      # a launch that cannot open its recording fails with the reason
      :ok = :gen_tcp.send(sock, frame(req(4, "launch", %{"recording" => "/nonexistent/run.esrec"})))
      assert %{"request_seq" => 4, "success" => false, "message" => msg} = read(sock)
      assert msg =~ "/nonexistent/run.esrec"
      :ok = :gen_tcp.send(sock, frame(req(5, "launch", %{})))
      assert %{"request_seq" => 5, "success" => false, "message" => "launch needs a recording" <> _} = read(sock)

      # two requests in one packet: two answers, in order; then disconnect closes the connection
      :ok = :gen_tcp.send(sock, frame(req(6, "initialize")) <> frame(req(7, "disconnect")))
      assert %{"request_seq" => 6, "success" => true} = read(sock)
      assert %{"request_seq" => 7, "command" => "disconnect", "success" => true} = read(sock)
      assert {:error, :closed} = :gen_tcp.recv(sock, 0, 2_000)
    end

    test "attach debugs the live session of this VM", %{sock: sock} do
      ElixirScope.stop()
      :ok = ElixirScope.start()
      on_exit(fn -> ElixirScope.stop() end)
      outer = R.report_function_entry(Live.Shop, :checkout, [%{items: 2}], 10)
      inner = R.report_function_entry(Live.Shop, :total, [[3, 4]], 20)
      R.report_local_variable_snapshot(inner, %{sum: 7}, 21)
      ElixirScope.flush()

      :ok = :gen_tcp.send(sock, frame(req(1, "initialize")) <> frame(req(2, "attach")) <> frame(req(3, "configurationDone")))
      assert %{"request_seq" => 1, "success" => true} = read(sock)
      assert %{"request_seq" => 2, "success" => true} = read(sock)
      assert %{"event" => "initialized"} = read(sock)
      assert %{"event" => "output"} = read(sock)
      assert %{"request_seq" => 3, "success" => true} = read(sock)
      assert %{"event" => "stopped", "body" => %{"reason" => "entry", "threadId" => tid}} = read(sock)

      # from the first event forwards to the local snapshot: the stack holds both calls
      :ok = :gen_tcp.send(sock, frame(req(4, "stepIn", %{"threadId" => tid})) <> frame(req(5, "stepIn", %{"threadId" => tid})))
      assert %{"request_seq" => 4} = read(sock)
      assert %{"event" => "stopped"} = read(sock)
      assert %{"request_seq" => 5} = read(sock)
      assert %{"event" => "stopped", "body" => %{"description" => desc}} = read(sock)
      assert desc =~ "local"
      :ok = :gen_tcp.send(sock, frame(req(6, "stackTrace", %{"threadId" => tid})))
      assert %{"body" => %{"stackFrames" => [top, bottom]}} = read(sock)
      assert top["name"] == "Live.Shop.total/1" and top["line"] == 21
      assert bottom["name"] == "Live.Shop.checkout/1"
      :ok = :gen_tcp.send(sock, frame(req(7, "evaluate", %{"expression" => "sum * 2", "frameId" => top["id"]})))
      assert %{"body" => %{"result" => "14"}} = read(sock)
      assert outer < inner
    end
  end

  @tag timeout: 120_000
  test "mix scope.dap --port serves TCP and says on which port" do
    b = ElixirScope.Test.EventBuilder.new()
    {b, call} = ElixirScope.Test.EventBuilder.add(b, self(), :call, module: Tcp.Mod, function: :f, payload: [1], line: 2)
    {b, _} = ElixirScope.Test.EventBuilder.add(b, self(), :return, call_id: call, payload: 2)
    rec = ElixirScope.Recording.from_events(ElixirScope.Test.EventBuilder.events(b))
    file = Path.join(System.tmp_dir!(), "dap_tcp_#{System.unique_integer([:positive])}.esrec")
    {:ok, _} = ElixirScope.Recording.save(file, :all, source: rec)
    ElixirScope.Recording.close(rec)

    port =
      Port.open({:spawn_executable, System.find_executable("mix")},
        [:binary, :exit_status, {:line, 10_000}, args: ["scope.dap", file, "--port", "0"], cd: File.cwd!(),
         env: [{~c"MIX_QUIET", ~c"1"}, {~c"MIX_ENV", ~c"test"}, {~c"ERL_COMPILER_OPTIONS", false}]])

    {:os_pid, os_pid} = Port.info(port, :os_pid)

    on_exit(fn ->
      System.cmd("kill", [to_string(os_pid)])
      File.rm(file)
    end)

    tcp_port =
      receive do
        {^port, {:data, {:eol, "ElixirScope DAP server listening on 127.0.0.1:" <> n}}} -> String.to_integer(n)
      after
        60_000 -> flunk("mix scope.dap --port said nothing")
      end

    {:ok, sock} = :gen_tcp.connect({127, 0, 0, 1}, tcp_port, [:binary, active: false])
    :ok = :gen_tcp.send(sock, frame(req(1, "initialize")) <> frame(req(2, "launch")) <> frame(req(3, "threads")))
    assert %{"request_seq" => 1, "success" => true} = read(sock)
    assert %{"request_seq" => 2, "success" => true} = read(sock)
    assert %{"event" => "initialized"} = read(sock)
    assert %{"event" => "output"} = read(sock)
    assert %{"request_seq" => 3, "body" => %{"threads" => [%{"id" => 1, "name" => "Tcp.Mod.f/1 " <> _}]}} = read(sock)
    :gen_tcp.close(sock)
  end

  describe "a recording whose source files are not at hand" do
    setup do
      me = self()
      b = ElixirScope.Test.EventBuilder.new()
      {b, call} = ElixirScope.Test.EventBuilder.add(b, me, :call, module: Gone.Mod, function: :calc, payload: [2], line: 3)
      {b, _} = ElixirScope.Test.EventBuilder.add(b, me, :expr, call_id: call, payload: {"y = x * 21", 42}, line: 4)
      {b, _} = ElixirScope.Test.EventBuilder.add(b, me, :local, call_id: call, payload: %{y: 42}, line: 4)
      {b, _} = ElixirScope.Test.EventBuilder.add(b, me, :return, call_id: call, payload: 42)
      rec = ElixirScope.Recording.from_events(ElixirScope.Test.EventBuilder.events(b))
      file = Path.join(System.tmp_dir!(), "dap_source_#{System.unique_integer([:positive])}.esrec")
      {:ok, _} = ElixirScope.Recording.save(file, :all, source: rec)
      ElixirScope.Recording.close(rec)
      empty = Path.join(System.tmp_dir!(), "dap_empty_#{System.unique_integer([:positive])}")
      File.mkdir_p!(empty)
      {:ok, server} = Server.start(port: 0, recording: file)
      {:ok, sock} = :gen_tcp.connect({127, 0, 0, 1}, server.port, [:binary, active: false])

      on_exit(fn ->
        :gen_tcp.close(sock)
        Server.stop(server)
        File.rm(file)
        File.rm_rf(empty)
      end)

      {:ok, sock: sock, root: empty}
    end

    test "source serves the recorded expressions at their lines; arguments are numbered", %{sock: sock, root: root} do
      :ok = :gen_tcp.send(sock, frame(req(1, "launch", %{"sourceRoot" => root, "stopOnEntry" => true})) <> frame(req(2, "configurationDone")))
      assert %{"request_seq" => 1, "success" => true} = read(sock)
      assert %{"event" => "initialized"} = read(sock)
      assert %{"event" => "output"} = read(sock)
      assert %{"request_seq" => 2} = read(sock)
      assert %{"event" => "stopped", "body" => %{"threadId" => tid}} = read(sock)

      :ok = :gen_tcp.send(sock, frame(req(3, "next", %{"threadId" => tid})) <> frame(req(4, "stackTrace", %{"threadId" => tid})))
      assert %{"request_seq" => 3} = read(sock)
      assert %{"event" => "stopped"} = read(sock)
      assert %{"body" => %{"stackFrames" => [frame]}} = read(sock)
      assert %{"line" => 4, "source" => %{"sourceReference" => ref}} = frame
      assert ref > 0

      :ok = :gen_tcp.send(sock, frame(req(5, "source", %{"sourceReference" => ref})))
      assert %{"success" => true, "body" => %{"content" => text}} = read(sock)
      assert text |> String.split("\n") |> Enum.at(3) == "y = x * 21"

      :ok = :gen_tcp.send(sock, frame(req(6, "scopes", %{"frameId" => frame["id"]})))
      assert %{"body" => %{"scopes" => [%{"name" => "Arguments", "variablesReference" => args_ref} | _]}} = read(sock)
      :ok = :gen_tcp.send(sock, frame(req(7, "variables", %{"variablesReference" => args_ref})))
      assert %{"body" => %{"variables" => [%{"name" => "arg1", "value" => "2"}]}} = read(sock)
    end
  end

  defp chunks(bin, n) when byte_size(bin) <= n, do: [bin]
  defp chunks(bin, n), do: [binary_part(bin, 0, n) | chunks(binary_part(bin, n, byte_size(bin) - n), n)]

  # one framed message from the socket (what follows it stays buffered)
  defp read(sock) do
    buffer = Process.get(:dap_buffer, "")

    with {pos, 4} <- :binary.match(buffer, "\r\n\r\n"),
         {:ok, n} <- Wire.content_length(binary_part(buffer, 0, pos)),
         true <- byte_size(buffer) >= pos + 4 + n do
      <<_::binary-size(pos + 4), body::binary-size(n), rest::binary>> = buffer
      Process.put(:dap_buffer, rest)
      JSON.decode!(body)
    else
      _ ->
        {:ok, data} = :gen_tcp.recv(sock, 0, 5_000)
        Process.put(:dap_buffer, buffer <> data)
        read(sock)
    end
  end
end
