defmodule ElixirScope.WebHelpers do
  @moduledoc "HTTP helpers for the cinema tests: real requests to a server on 127.0.0.1."

  alias ElixirScope.Web.JSON

  @doc "GET `url` (with optional headers); returns `{status, headers, body}`."
  def get(url, headers \\ []) do
    {:ok, _} = Application.ensure_all_started(:inets)
    hs = Enum.map(headers, fn {k, v} -> {String.to_charlist(k), String.to_charlist(v)} end)
    {:ok, {{_, status, _}, rh, body}} = :httpc.request(:get, {String.to_charlist(url), hs}, [], body_format: :binary)
    {status, Map.new(rh, fn {k, v} -> {List.to_string(k), List.to_string(v)} end), body}
  end

  @doc "GET an API path on `web` and decode the JSON; returns `{status, data}`."
  def api(web, path, headers \\ []) do
    {status, _h, body} = get(base(web) <> path, headers)
    {status, JSON.decode!(body)}
  end

  @doc "Runs `mix scope.cinema FILE` on a free port, stopped when the test ends; returns `{server info, printed text}`."
  def scope_cinema(file) do
    out = ExUnit.CaptureIO.capture_io(fn -> send(self(), {:web, Mix.Tasks.Scope.Cinema.run([file, "--port", "0", "--no-wait"])}) end)
    web = receive do: ({:web, web} -> web)
    ExUnit.Callbacks.on_exit(fn -> ElixirScope.Web.stop(web) end)
    {web, out}
  end

  @doc "The server's URL without a query string."
  def base(web), do: web.url |> String.split("?") |> hd()

  @doc "Sends a raw HTTP request line (no client-side normalisation) and returns the raw response."
  def raw(port, request) do
    {:ok, sock} = :gen_tcp.connect({127, 0, 0, 1}, port, [:binary, active: false], 2_000)
    :ok = :gen_tcp.send(sock, request)
    resp = recv_all(sock, "")
    :gen_tcp.close(sock)
    resp
  end

  defp recv_all(sock, acc) do
    case :gen_tcp.recv(sock, 0, 2_000) do
      {:ok, data} -> recv_all(sock, acc <> data)
      {:error, _} -> acc
    end
  end

  @doc "Records the cinema scenario on the native store and returns `{events, pids}` (ElixirScope stopped after)."
  def record_scenario(opts \\ []) do
    ElixirScope.stop()
    :ok = ElixirScope.start()

    ExUnit.CaptureLog.capture_log(fn ->
      pids = ElixirScope.CinemaScenario.run()
      send(self(), {:pids, pids})
    end)

    pids = receive do: ({:pids, p} -> p)
    events = ElixirScope.get_events()
    clock = ElixirScope.Capture.Session.info().clock
    unless opts[:keep], do: ElixirScope.stop()
    {events, pids, clock}
  end
end
