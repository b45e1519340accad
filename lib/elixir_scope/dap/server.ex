defmodule ElixirScope.DAP.Server do
  @moduledoc """
  The transports of the debug adapter: standard I/O (what an editor starts,
  `mix scope.dap`) and TCP on 127.0.0.1 (`mix scope.dap --port N`, or
  `start/1` inside a running application to debug its live session). Each
  connection is one `ElixirScope.DAP.Session`; bytes are framed by
  `ElixirScope.DAP.Wire`.
  """

  alias ElixirScope.DAP.{Session, Wire}

  @doc """
  Serves one session over standard I/O until the client disconnects or
  closes stdin. Options: `recording:` (the default for `launch`).
  Nothing else may write to standard output meanwhile.
  """
  @spec serve_stdio(keyword()) :: :ok
  def serve_stdio(opts \\ []) do
    device = Process.group_leader()
    :ok = :io.setopts(device, binary: true, encoding: :latin1)
    stdio_loop(device, Session.new(opts))
  end

  defp stdio_loop(device, session) do
    case read_message(device, []) do
      :eof ->
        Session.close(session)

      {:ok, bytes} ->
        case Wire.parse(bytes) do
          {:fatal, reason} ->
            {session, out, _} = Session.bad_message(session, reason)
            Enum.each(out, &IO.binwrite(device, Wire.frame(&1)))
            stdio_loop(device, session)

          {parsed, _rest} ->
            case dispatch(parsed, session, &IO.binwrite(device, &1)) do
              {:cont, session} -> stdio_loop(device, session)
              {:halt, _} -> :ok
            end
        end
    end
  end

  # reads one header block and its body (headers end with an empty line)
  defp read_message(device, headers) do
    case IO.binread(device, :line) do
      :eof ->
        :eof

      {:error, _} ->
        :eof

      line when line in ["\r\n", "\n"] and headers == [] ->
        read_message(device, [])

      line when line in ["\r\n", "\n"] ->
        block = headers |> Enum.reverse() |> Enum.map_join("\r\n", &String.trim_trailing/1)

        case Wire.content_length(block) do
          {:ok, n} ->
            case IO.binread(device, n) do
              body when is_binary(body) -> {:ok, block <> "\r\n\r\n" <> body}
              _ -> :eof
            end

          :error ->
            {:ok, block <> "\r\n\r\n"}
        end

      line when length(headers) < 64 ->
        read_message(device, [line | headers])

      _line ->
        {:ok, Enum.join(Enum.reverse(headers)) <> "\r\n\r\n"}
    end
  end

  # handles parsed messages in order; writes what each produced
  defp dispatch(parsed, session, write) do
    Enum.reduce_while(parsed, {:cont, session}, fn item, {:cont, session} ->
      {session, out, status} =
        case item do
          {:ok, msg} -> Session.handle(session, msg)
          {:error, reason} -> Session.bad_message(session, reason)
        end

      Enum.each(out, &write.(Wire.frame(&1)))
      {if(status == :halt, do: :halt, else: :cont), {status, session}}
    end)
  end

  @doc """
  Listens on 127.0.0.1 (`port:`, 0 picks a free port); every connection is
  a session. Options: `recording:`. Returns `{:ok, %{port:, pid:}}`.
  """
  @spec start(keyword()) :: {:ok, %{port: :inet.port_number(), pid: pid()}} | {:error, term()}
  def start(opts \\ []) do
    parent = self()
    ref = make_ref()

    pid =
      spawn(fn ->
        case :gen_tcp.listen(Keyword.get(opts, :port, 0), [:binary, active: false, reuseaddr: true, ip: {127, 0, 0, 1}]) do
          {:ok, listen} ->
            {:ok, port} = :inet.port(listen)
            send(parent, {ref, {:ok, port}})
            accept_loop(listen, opts)

          {:error, reason} ->
            send(parent, {ref, {:error, reason}})
        end
      end)

    receive do
      {^ref, {:ok, port}} -> {:ok, %{port: port, pid: pid}}
      {^ref, error} -> error
    after
      5_000 -> {:error, :timeout}
    end
  end

  @doc "Stops a server started by `start/1` (open sessions end with it)."
  @spec stop(%{pid: pid()}) :: :ok
  def stop(%{pid: pid}), do: (Process.exit(pid, :kill); :ok)

  defp accept_loop(listen, opts) do
    case :gen_tcp.accept(listen) do
      {:ok, socket} ->
        handler = spawn_link(fn -> receive(do: (:go -> tcp_loop(socket, "", Session.new(opts)))) end)
        :ok = :gen_tcp.controlling_process(socket, handler)
        send(handler, :go)
        accept_loop(listen, opts)

      {:error, _} ->
        :ok
    end
  end

  defp tcp_loop(socket, buffer, session) do
    case :gen_tcp.recv(socket, 0) do
      {:ok, data} ->
        case Wire.parse(buffer <> data) do
          {:fatal, reason} ->
            {session, out, _} = Session.bad_message(session, reason <> "; closing the connection")
            Enum.each(out, &:gen_tcp.send(socket, Wire.frame(&1)))
            Session.close(session)
            :gen_tcp.close(socket)

          {parsed, rest} ->
            case dispatch(parsed, session, &:gen_tcp.send(socket, &1)) do
              {:cont, session} -> tcp_loop(socket, rest, session)
              {:halt, _} -> :gen_tcp.close(socket)
            end
        end

      {:error, _} ->
        Session.close(session)
    end
  end
end
