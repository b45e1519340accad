defmodule ElixirScope.WebLoad do
  @moduledoc """
  A load generator for the cinema on 127.0.0.1: `clients` processes, each on its own
  keep-alive HTTP/1.1 connection (raw `:gen_tcp`, no client-side pooling or queueing), send
  GET requests one after the other for `duration_ms`, and time each from the first byte sent
  (the connect included for a connection's first request) to the last byte of its response.

  An error is a response other than 200, a connection that fails, closes or resets, or no
  complete response within `timeout_ms`; after an error the client reconnects and goes on.
  Used by the load test (`test/elixir_scope/web/load_test.exs`) and `make bench`.
  """

  @type result :: %{
          requests: non_neg_integer(),
          errors: non_neg_integer(),
          error_rate: float(),
          statuses: %{optional(term()) => non_neg_integer()},
          p50_ms: float(),
          p99_ms: float(),
          max_ms: float(),
          per_second: float()
        }

  @doc """
  Runs the load against `port`; `paths` is a tuple of request paths (client `c`'s `i`-th
  request is `elem(paths, rem(c * 7919 + i, tuple_size(paths)))`, so every client mixes all).
  """
  @spec run(:inet.port_number(), tuple(), keyword()) :: result()
  def run(port, paths, opts \\ []) when is_tuple(paths) and tuple_size(paths) > 0 do
    clients = Keyword.get(opts, :clients, 200)
    duration = Keyword.get(opts, :duration_ms, 5_000)
    timeout = Keyword.get(opts, :timeout_ms, 5_000)
    host = "127.0.0.1:#{port}"
    parent = self()
    go = make_ref()

    pids =
      for c <- 1..clients do
        spawn_link(fn ->
          receive do: (^go -> :ok)
          deadline = System.monotonic_time(:millisecond) + duration
          stats = client(%{port: port, host: host, paths: paths, c: c, timeout: timeout, deadline: deadline})
          send(parent, {:load_done, self(), stats})
        end)
      end

    t0 = System.monotonic_time(:millisecond)
    Enum.each(pids, &send(&1, go))

    all = for pid <- pids, do: receive(do: ({:load_done, ^pid, stats} -> stats))
    elapsed = System.monotonic_time(:millisecond) - t0
    summarize(all, elapsed)
  end

  @doc """
  A demo-sized recording (the cinema scenario run `runs` times, ~71 events each: the demo
  application records ~290), saved to `path` and loaded back the way `mix scope.cinema FILE`
  loads it. ElixirScope is stopped afterwards.
  """
  @spec demo_recording(Path.t(), pos_integer()) :: ElixirScope.Recording.t()
  def demo_recording(path, runs \\ 4) do
    ElixirScope.stop()
    :ok = ElixirScope.start()
    ExUnit.CaptureLog.capture_log(fn -> for _ <- 1..runs, do: ElixirScope.CinemaScenario.run() end)
    {:ok, _} = ElixirScope.Recording.save(path)
    ElixirScope.stop()
    {:ok, rec} = ElixirScope.Recording.load(path, default: false)
    rec
  end

  @doc """
  The request mix of a browser using the cinema on `source` (a recording): the summary, event
  pages, event details, the instant at a time, call trees, state diffs and searches.
  """
  @spec paths(ElixirScope.Web.Source.t()) :: tuple()
  def paths(source) do
    alias ElixirScope.Web.{Data, Render, Source}
    summary = Data.summary(source)
    events = Source.fetch(source, limit: 100_000)
    ids = Enum.map(events, & &1.id)
    pids = source |> Source.pids() |> Enum.map(&URI.encode_www_form(Render.pid(&1)))
    span = max(summary.t_end - summary.t_start, 1)
    times = for k <- 0..9, do: summary.t_start + div(span * k, 9)
    genservers = for e <- events, e.kind == :state, uniq: true, do: URI.encode_www_form(Render.pid(e.pid))

    [
      for(id <- Enum.take_every(ids, max(div(length(ids), 40), 1)), do: "/api/event/#{id}"),
      for(t <- times, do: "/api/at?t=#{t}&pids=#{Enum.join(pids, ",")}"),
      for(a <- Enum.take_every(ids, max(div(length(ids), 5), 1)), do: "/api/events?after_id=#{a}&limit=500"),
      ["/api/summary", "/api/events", "/api/search?q=kind%3Aexception", "/api/search?q=deposit"],
      for(p <- pids, do: "/api/call_tree?pid=#{p}"),
      for(p <- genservers, t <- Enum.take(times, 3), do: "/api/state_diff?pid=#{p}&t1=#{t}&t2=#{summary.t_end}")
    ]
    |> List.flatten()
    |> List.to_tuple()
  end

  defp client(cfg), do: loop(cfg, nil, 0, %{lat: [], statuses: %{}})

  defp loop(cfg, sock, i, acc) do
    if System.monotonic_time(:millisecond) >= cfg.deadline do
      if sock, do: :gen_tcp.close(sock)
      acc
    else
      path = elem(cfg.paths, rem(cfg.c * 7919 + i, tuple_size(cfg.paths)))
      t = System.monotonic_time(:microsecond)

      {sock, status} =
        case sock || connect(cfg) do
          {:error, reason} -> {nil, {:connect, reason}}
          sock -> request(cfg, sock, path)
        end

      acc = %{lat: [System.monotonic_time(:microsecond) - t | acc.lat], statuses: Map.update(acc.statuses, status, 1, &(&1 + 1))}
      loop(cfg, sock, i + 1, acc)
    end
  end

  defp connect(cfg) do
    case :gen_tcp.connect({127, 0, 0, 1}, cfg.port, [:binary, active: false, nodelay: true], cfg.timeout) do
      {:ok, sock} -> sock
      {:error, _} = error -> error
    end
  end

  # {socket to go on with (nil after an error), status}
  defp request(cfg, sock, path) do
    :ok = :inet.setopts(sock, packet: :http_bin)

    with :ok <- :gen_tcp.send(sock, "GET #{path} HTTP/1.1\r\nHost: #{cfg.host}\r\n\r\n"),
         {:ok, {:http_response, _, status, _}} <- :gen_tcp.recv(sock, 0, cfg.timeout),
         {:ok, length} <- headers(sock, cfg.timeout, nil),
         :ok <- :inet.setopts(sock, packet: :raw),
         {:ok, _body} <- body(sock, length, cfg.timeout) do
      if status == 200, do: {sock, 200}, else: {close(sock), status}
    else
      {:error, reason} -> {close(sock), {:socket, reason}}
      other -> {close(sock), {:unexpected, other}}
    end
  end

  defp headers(sock, timeout, length) do
    case :gen_tcp.recv(sock, 0, timeout) do
      {:ok, {:http_header, _, :"Content-Length", _, v}} -> headers(sock, timeout, String.to_integer(v))
      {:ok, {:http_header, _, _, _, _}} -> headers(sock, timeout, length)
      {:ok, :http_eoh} when is_integer(length) -> {:ok, length}
      {:ok, :http_eoh} -> {:error, :no_content_length}
      {:error, _} = error -> error
      {:ok, other} -> {:error, {:bad_header, other}}
    end
  end

  defp body(_sock, 0, _timeout), do: {:ok, ""}
  defp body(sock, length, timeout), do: :gen_tcp.recv(sock, length, timeout)

  defp close(sock) do
    :gen_tcp.close(sock)
    nil
  end

  defp summarize(all, elapsed_ms) do
    lat = all |> Enum.flat_map(& &1.lat) |> Enum.sort()
    statuses = Enum.reduce(all, %{}, fn s, acc -> Map.merge(acc, s.statuses, fn _, a, b -> a + b end) end)
    n = length(lat)
    errors = n - Map.get(statuses, 200, 0)

    %{
      requests: n,
      errors: errors,
      error_rate: if(n == 0, do: 1.0, else: errors / n),
      statuses: statuses,
      p50_ms: percentile(lat, 0.50),
      p99_ms: percentile(lat, 0.99),
      max_ms: percentile(lat, 1.0),
      per_second: n * 1000 / max(elapsed_ms, 1)
    }
  end

  defp percentile([], _), do: 0.0
  defp percentile(sorted, q), do: Enum.at(sorted, min(length(sorted) - 1, trunc(q * length(sorted)))) / 1000
end
