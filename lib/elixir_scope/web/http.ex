defmodule ElixirScope.Web.HTTP do
  @moduledoc """
  The cinema's HTTP/1.1 transport, on `:gen_tcp` (it replaced `:httpd`, which on OTP 25
  cannot be given listen options: `socket_type: {:ip_comm, opts}` fails to listen on any
  fixed port, so its backlog stays at 128 — a burst of 200 connects loses SYNs and waits
  1 s for their retransmission — and TCP_NODELAY could only be set per request).

  - One listener process owning the listen socket (`backlog` 1024, `nodelay`), a few
    acceptors, one process per connection; at most `max_clients` connections at once (more
    get `503` and are closed).
  - Requests are parsed by the VM's HTTP packet parser (`packet: :http_bin`), bounded: a
    target of at most 8 KB (`414`), at most 100 headers of 16 KB in all (`431`), the whole
    head within 10 s (`408`), any line within 64 KB (past that the connection is closed
    unanswered); no request body is read (a request announcing one gets its answer and is
    closed).
  - Keep-alive (HTTP/1.1 unless `Connection: close`; HTTP/1.0 closes), an idle connection
    is closed after 30 s; pipelined requests are answered in order.
  - Each response is written with one `send` (head and body together).

  The handler, `handle.(method, uri, headers)`, gets the method (`"GET"`), the request
  target (`"/api/x?y=1"`) and the headers as `{lowercase_name, value}` binaries, and returns
  `{status, [{name, value}], body_iodata}`; the transport adds `content-length` and
  `connection`, and sends no body for `HEAD`.
  """

  require Logger

  @type handler :: (String.t(), String.t(), [{String.t(), String.t()}] -> {pos_integer(), [{String.t(), iodata()}], iodata()})

  @acceptors 4
  # a line longer than this closes the connection unanswered (the VM's parser drops it)
  @max_line 65_536
  @max_uri 8_192
  @max_head 16_384
  @max_headers 100
  @idle_ms 30_000
  @head_ms 10_000

  @doc """
  Starts a listener on `ip`/`port` (0 picks one), linked to the caller: a process that owns
  the listen socket, its acceptors and every connection (all linked to it). It traps exits,
  so that a connection that fails takes nothing else down; when the caller exits (or sends
  it an exit signal), it exits with `:shutdown`, and its acceptors and connections with it.
  Returns `{:ok, listener, port}` or `{:error, posix}`.
  """
  @spec start_link(:inet.ip_address(), :inet.port_number(), handler(), pos_integer()) ::
          {:ok, pid(), :inet.port_number()} | {:error, atom()}
  def start_link(ip, port, handle, max_clients) do
    parent = self()
    ref = make_ref()
    _listener = spawn_link(fn -> listener(parent, ref, ip, port, handle, max_clients) end)

    receive do
      {^ref, result} -> result
    end
  end

  defp listener(parent, ref, ip, port, handle, max) do
    Process.flag(:trap_exit, true)
    family = if tuple_size(ip) == 8, do: [:inet6], else: []
    opts = family ++ [:binary, ip: ip, packet: :http_bin, packet_size: @max_line, active: false, reuseaddr: true, nodelay: true, backlog: 1024]

    case :gen_tcp.listen(port, opts) do
      {:ok, lsock} ->
        {:ok, port} = :inet.port(lsock)
        count = :counters.new(1, [:atomics])
        me = self()
        acceptors = for _ <- 1..@acceptors, do: spawn_link(fn -> accept_loop(lsock, me, handle, count, max) end)
        send(parent, {ref, {:ok, me, port}})
        watch(parent, acceptors)

      {:error, reason} ->
        send(parent, {ref, {:error, reason}})
    end
  end

  # connections end all the time; the caller or an acceptor ending ends the listener
  defp watch(parent, acceptors) do
    receive do
      {:EXIT, ^parent, _} -> exit(:shutdown)
      {:EXIT, pid, reason} -> if pid in acceptors, do: exit({:acceptor_down, reason}), else: watch(parent, acceptors)
      _ -> watch(parent, acceptors)
    end
  end

  defp accept_loop(lsock, owner, handle, count, max) do
    case :gen_tcp.accept(lsock) do
      {:ok, sock} ->
        if :counters.get(count, 1) >= max do
          # over the limit: say so at once rather than leave the client hanging
          _ = :gen_tcp.send(sock, response(503, [{"retry-after", "1"}, {"content-type", "application/json"}], ~s({"error":"too many connections"}), true, false))
          :gen_tcp.close(sock)
        else
          :counters.add(count, 1, 1)
          pid = spawn(fn -> connection(owner, handle, count) end)

          case :gen_tcp.controlling_process(sock, pid) do
            :ok -> send(pid, {:socket, sock})
            {:error, _} ->
              Process.exit(pid, :kill)
              :gen_tcp.close(sock)
              :counters.sub(count, 1, 1)
          end
        end

        accept_loop(lsock, owner, handle, count, max)

      {:error, :closed} ->
        :ok

      {:error, reason} when reason in [:emfile, :enfile] ->
        # out of file descriptors: back off instead of spinning
        Process.sleep(100)
        accept_loop(lsock, owner, handle, count, max)

      {:error, _} ->
        # a connection that failed before it was accepted (econnaborted, …): never spin
        Process.sleep(10)
        accept_loop(lsock, owner, handle, count, max)
    end
  end

  defp connection(listener, handle, count) do
    # linked, so that stopping the listener ends its connections too
    Process.link(listener)

    receive do
      {:socket, sock} ->
        try do
          serve(sock, handle)
        after
          :gen_tcp.close(sock)
          :counters.sub(count, 1, 1)
        end
    after
      5_000 -> :counters.sub(count, 1, 1)
    end
  end

  defp serve(sock, handle) do
    case read_request(sock) do
      {:ok, method, uri, version, headers, body?} ->
        close? = body? or close?(version, headers)
        {status, resp_headers, body} = call(handle, method, uri, headers)

        case :gen_tcp.send(sock, response(status, resp_headers, body, close?, method == "HEAD")) do
          :ok when not close? -> serve(sock, handle)
          :ok -> linger(sock)
          _ -> :ok
        end

      {:error, status, message} ->
        _ = :gen_tcp.send(sock, response(status, [{"content-type", "application/json; charset=utf-8"}], ~s({"error":"#{message}"}), true, false))
        linger(sock)

      :closed ->
        :ok
    end
  end

  # Closing a socket with unread input (a body, the rest of an oversized line) makes the
  # kernel send a reset, which can destroy the answer before the client reads it: end our
  # side, then read and drop what the client still sends, for a moment, before closing.
  defp linger(sock) do
    :gen_tcp.shutdown(sock, :write)
    :inet.setopts(sock, packet: :raw)
    drain(sock, System.monotonic_time(:millisecond) + 1_000, 1_048_576)
  end

  defp drain(sock, deadline, left) do
    wait = deadline - System.monotonic_time(:millisecond)

    with true <- wait > 0 and left > 0,
         {:ok, data} <- :gen_tcp.recv(sock, 0, wait) do
      drain(sock, deadline, left - byte_size(data))
    else
      _ -> :ok
    end
  end

  defp call(handle, method, uri, headers) do
    handle.(method, uri, headers)
  rescue
    e ->
      # the handler answers its own errors; this is the last line of defence
      Logger.error("ElixirScope cinema: #{Exception.format(:error, e, __STACKTRACE__)}")
      {500, [{"content-type", "application/json"}], ~s({"error":"internal error"})}
  end

  # {:ok, method, uri, version, headers, has_body?} | {:error, status, message} | :closed
  defp read_request(sock) do
    case :gen_tcp.recv(sock, 0, @idle_ms) do
      {:ok, {:http_request, method, target, version}} ->
        deadline = System.monotonic_time(:millisecond) + @head_ms

        with {:ok, uri} <- target(target),
             {:ok, headers} <- read_headers(sock, deadline, [], 0) do
          body? = Enum.any?(headers, fn {k, v} -> (k == "content-length" and v != "0") or k == "transfer-encoding" end)
          {:ok, method_name(method), uri, version, headers, body?}
        end

      {:ok, {:http_error, _}} ->
        {:error, 400, "malformed request line"}

      {:ok, _other} ->
        {:error, 400, "malformed request"}

      {:error, _} ->
        :closed
    end
  end

  defp read_headers(_sock, _deadline, acc, _bytes) when length(acc) > @max_headers, do: {:error, 431, "too many headers"}
  defp read_headers(_sock, _deadline, _acc, bytes) when bytes > @max_head, do: {:error, 431, "request headers too large"}

  defp read_headers(sock, deadline, acc, bytes) do
    left = deadline - System.monotonic_time(:millisecond)

    case left > 0 and :gen_tcp.recv(sock, 0, left) do
      {:ok, {:http_header, _, _, raw_name, value}} ->
        read_headers(sock, deadline, [{String.downcase(raw_name), value} | acc], bytes + byte_size(raw_name) + byte_size(value) + 4)

      {:ok, :http_eoh} -> {:ok, Enum.reverse(acc)}
      {:ok, {:http_error, _}} -> {:error, 400, "malformed header"}
      {:error, :timeout} -> {:error, 408, "request head not received in time"}
      false -> {:error, 408, "request head not received in time"}
      _ -> :closed
    end
  end

  defp target({:abs_path, path}) when byte_size(path) > @max_uri, do: {:error, 414, "request target too long"}
  defp target({:abs_path, path}), do: {:ok, path}
  defp target(_), do: {:error, 400, "only origin-form request targets (/path?query) are served"}

  defp method_name(m) when is_atom(m), do: Atom.to_string(m)
  defp method_name(m) when is_binary(m), do: m

  defp close?({1, 1}, headers), do: Enum.any?(headers, fn {k, v} -> k == "connection" and String.downcase(v) =~ "close" end)
  defp close?(_version, _headers), do: true

  defp response(status, headers, body, close?, head?) do
    [
      ["HTTP/1.1 ", Integer.to_string(status), " ", reason(status), "\r\n"],
      Enum.map(headers, fn {k, v} -> [k, ": ", v, "\r\n"] end),
      ["content-length: ", Integer.to_string(IO.iodata_length(body)), "\r\n"],
      if(close?, do: "connection: close\r\n", else: []),
      "\r\n",
      if(head?, do: [], else: body)
    ]
  end

  @reasons %{
    200 => "OK", 400 => "Bad Request", 401 => "Unauthorized", 403 => "Forbidden", 404 => "Not Found",
    405 => "Method Not Allowed", 408 => "Request Timeout", 414 => "URI Too Long", 431 => "Request Header Fields Too Large",
    500 => "Internal Server Error", 503 => "Service Unavailable"
  }

  defp reason(status), do: Map.get(@reasons, status, "Status")
end
