defmodule ElixirScope.Test.LLMServer do
  @moduledoc """
  A real HTTP/1.1 server on 127.0.0.1 (`:gen_tcp`) for the LLM provider
  tests. Each request is passed to a handler function

      handler.(%{method, path, query, headers :: %{lowercase => value}, body, n})

  where `n` counts the requests seen so far (1-based), and the handler
  returns `{status, headers, body}`, `{:sleep, ms, response}`, or `:close`
  (close the connection without answering). Requests are recorded.
  """

  @doc "Starts a server; returns `%{url, port, pid, log}`."
  @spec start((map -> term)) :: map
  def start(handler) do
    {:ok, log} = Agent.start(fn -> [] end)

    {:ok, listen} =
      :gen_tcp.listen(0, [
        :binary,
        packet: :raw,
        active: false,
        reuseaddr: true,
        ip: {127, 0, 0, 1}
      ])

    {:ok, port} = :inet.port(listen)
    parent = self()

    pid =
      spawn_link(fn ->
        Process.flag(:trap_exit, false)
        accept_loop(listen, handler, log, parent)
      end)

    :ok = :gen_tcp.controlling_process(listen, pid)
    %{url: "http://127.0.0.1:#{port}", port: port, pid: pid, log: log, listen: listen}
  end

  @doc "Stops the server."
  @spec stop(map) :: :ok
  def stop(%{pid: pid, log: log}) do
    Process.unlink(pid)
    Process.exit(pid, :kill)
    Process.exit(log, :kill)
    :ok
  end

  @doc "The requests received so far, oldest first."
  @spec requests(map) :: [map]
  def requests(%{log: log}), do: Agent.get(log, &Enum.reverse/1)

  defp accept_loop(listen, handler, log, parent) do
    case :gen_tcp.accept(listen) do
      {:ok, sock} ->
        child = spawn(fn -> receive(do: (:go -> serve(sock, handler, log))) end)
        :ok = :gen_tcp.controlling_process(sock, child)
        send(child, :go)
        accept_loop(listen, handler, log, parent)

      {:error, _} ->
        :ok
    end
  end

  defp serve(sock, handler, log) do
    with {:ok, req} <- read_request(sock) do
      n = Agent.get_and_update(log, fn l -> {length(l) + 1, [req | l]} end)
      respond(sock, handler.(Map.put(req, :n, n)))
    end

    :gen_tcp.close(sock)
  end

  defp respond(sock, :close), do: :gen_tcp.close(sock)

  defp respond(sock, {:sleep, ms, resp}) do
    Process.sleep(ms)
    respond(sock, resp)
  end

  defp respond(sock, {status, headers, body}) do
    head =
      [
        "HTTP/1.1 #{status} #{reason(status)}\r\n",
        "content-length: #{IO.iodata_length(body)}\r\n",
        "connection: close\r\n"
      ] ++
        Enum.map(headers, fn {k, v} -> "#{k}: #{v}\r\n" end) ++ ["\r\n"]

    :gen_tcp.send(sock, [head, body])
  end

  defp reason(200), do: "OK"
  defp reason(401), do: "Unauthorized"
  defp reason(403), do: "Forbidden"
  defp reason(429), do: "Too Many Requests"
  defp reason(s) when s >= 500, do: "Server Error"
  defp reason(_), do: "Status"

  defp read_request(sock) do
    :ok = :inet.setopts(sock, packet: :http_bin)

    with {:ok, {:http_request, method, {:abs_path, full}, _v}} <- :gen_tcp.recv(sock, 0, 5000),
         {:ok, headers} <- read_headers(sock, %{}) do
      :ok = :inet.setopts(sock, packet: :raw)
      len = String.to_integer(Map.get(headers, "content-length", "0"))
      {:ok, body} = if len > 0, do: :gen_tcp.recv(sock, len, 5000), else: {:ok, ""}
      [path | q] = String.split(full, "?", parts: 2)

      {:ok,
       %{
         method: to_string(method),
         path: path,
         query: List.first(q),
         headers: headers,
         body: body
       }}
    else
      _ -> :error
    end
  end

  defp read_headers(sock, acc) do
    case :gen_tcp.recv(sock, 0, 5000) do
      {:ok, {:http_header, _, name, _, value}} ->
        read_headers(sock, Map.put(acc, String.downcase(to_string(name)), value))

      {:ok, :http_eoh} ->
        {:ok, acc}

      other ->
        {:error, other}
    end
  end

  # ---------------------------------------------------------------- formats

  @doc "A Gemini generateContent answer carrying `text`."
  @spec gemini_body(String.t()) :: String.t()
  def gemini_body(text) do
    ElixirScope.NIF.json_encode(%{
      "candidates" => [
        %{
          "content" => %{"parts" => [%{"text" => text}], "role" => "model"},
          "finishReason" => "STOP"
        }
      ],
      "modelVersion" => "test"
    })
  end

  @doc "An OpenAI chat-completions answer carrying `text`."
  @spec openai_body(String.t()) :: String.t()
  def openai_body(text) do
    ElixirScope.NIF.json_encode(%{
      "id" => "chatcmpl-test",
      "object" => "chat.completion",
      "choices" => [
        %{
          "index" => 0,
          "message" => %{"role" => "assistant", "content" => text},
          "finish_reason" => "stop"
        }
      ]
    })
  end

  @doc "A Google-style JSON error body."
  @spec error_body(integer, String.t()) :: String.t()
  def error_body(code, message),
    do:
      ElixirScope.NIF.json_encode(%{
        "error" => %{"code" => code, "message" => message, "status" => "ERROR"}
      })

  @doc "A port on 127.0.0.1 where nothing listens."
  @spec closed_port() :: pos_integer
  def closed_port do
    {:ok, l} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
    {:ok, port} = :inet.port(l)
    :gen_tcp.close(l)
    port
  end

  @doc "Verifies an RS256 JWT with `public_key`; returns the claims."
  @spec verify_jwt(String.t(), term) :: {:ok, map} | {:error, String.t()}
  def verify_jwt(jwt, public_key) do
    with [h, c, s] <- String.split(jwt, "."),
         {:ok, sig} <- Base.url_decode64(s, padding: false),
         true <-
           :public_key.verify(h <> "." <> c, :sha256, sig, public_key) ||
             {:error, "bad signature"},
         {:ok, hj} <- Base.url_decode64(h, padding: false),
         {:ok, %{"alg" => "RS256"}} <- ElixirScope.NIF.json_decode(hj),
         {:ok, cj} <- Base.url_decode64(c, padding: false),
         {:ok, claims} <- ElixirScope.NIF.json_decode(cj) do
      {:ok, claims}
    else
      {:error, msg} when is_binary(msg) -> {:error, msg}
      other -> {:error, "invalid JWT: #{inspect(other)}"}
    end
  end
end
