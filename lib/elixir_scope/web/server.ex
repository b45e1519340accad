defmodule ElixirScope.Web.Server do
  @moduledoc """
  One running cinema: owns the event source (its ETS tables for a recording)
  and the listen socket (`ElixirScope.Web.HTTP`), and publishes what the request handler needs
  (source, token, accepted hosts, static files, its `ElixirScope.Web.Cache`) in
  `:persistent_term` under its ref.
  """
  use GenServer

  alias ElixirScope.Web.{Cache, Handler, Hosts, HTTP, Source}

  @doc false
  @spec start(keyword(), :link | :nolink) :: GenServer.on_start()
  def start(opts, :nolink), do: GenServer.start(__MODULE__, opts)
  def start(opts, :link), do: GenServer.start_link(__MODULE__, opts)

  @doc "What the handler needs for the server `ref` (nil when it is gone)."
  @spec state(reference() | term()) :: map() | nil
  def state(ref), do: :persistent_term.get({__MODULE__, ref}, nil)

  @doc "The server's `%{port, ip, url, token}`."
  @spec info(pid()) :: map()
  def info(pid), do: GenServer.call(pid, :info)

  @doc "Replaces the event source (the old one is released)."
  @spec set_source(pid(), Source.t() | {:events, list(), map()}) :: :ok
  def set_source(pid, source), do: GenServer.call(pid, {:set_source, source})

  # Connections are cheap processes: room for a few hundred keep-alive clients (each holds a
  # slot until it closes or idles out).
  @max_clients 512

  @impl true
  def init(opts) do
    Process.flag(:trap_exit, true)
    ref = make_ref()
    ip = Keyword.fetch!(opts, :ip)
    {source, owned?} = build_source(Keyword.fetch!(opts, :source))
    load_modules(source)
    static_dir = Keyword.fetch!(opts, :static_dir)
    handle = fn method, uri, headers -> Handler.handle(ref, method, uri, headers) end

    case HTTP.start_link(ip, Keyword.fetch!(opts, :port), handle, @max_clients) do
      {:ok, listener, port} ->
        # published once the port is known (the accepted Host names carry it); until then requests get 503
        s = %{ref: ref, listener: listener, port: port, ip: ip, token: opts[:token], source: source, owned?: owned?,
              static_dir: static_dir, hosts: Hosts.accepted(ip, port, Keyword.get(opts, :hosts, [])),
              cache: Cache.new(), generation: make_ref()}
        publish(s)
        {:ok, s}

      {:error, reason} ->
        if owned?, do: Source.release(source)
        {:stop, {:listen, reason}}
    end
  end

  # The inspector shows the source lines a recording saved, else those of loaded modules only
  # (Data.source_snippet/4): load a recording's modules here, once, rather than let concurrent
  # requests each ask the code server.
  defp load_modules(source), do: source |> Source.modules() |> Enum.each(&Code.ensure_loaded/1)

  # {source, whether this server built it (and so frees it)}
  defp build_source({:events, events, meta}), do: {Source.from_events(events, meta), true}
  defp build_source(source), do: {source, false}

  defp publish(s) do
    files =
      s.static_dir
      |> Path.join("**")
      |> Path.wildcard()
      |> Enum.filter(&File.regular?/1)
      |> Map.new(fn f -> {"/static/" <> Path.relative_to(f, s.static_dir), {content_type(f), File.read!(f)}} end)

    :persistent_term.put({__MODULE__, s.ref}, %{source: s.source, token: s.token, static: files, hosts: s.hosts, cache: s.cache, generation: s.generation})
  end

  defp content_type(file) do
    case Path.extname(file) do
      ".html" -> "text/html; charset=utf-8"
      ".js" -> "text/javascript; charset=utf-8"
      ".css" -> "text/css; charset=utf-8"
      ".svg" -> "image/svg+xml"
      ".png" -> "image/png"
      ".json" -> "application/json"
      _ -> "application/octet-stream"
    end
  end

  @impl true
  def handle_call(:info, _from, s) do
    host = s.ip |> :inet.ntoa() |> List.to_string()
    host = if String.contains?(host, ":"), do: "[#{host}]", else: host
    {:reply, %{port: s.port, ip: s.ip, token: s.token, url: "http://#{host}:#{s.port}/"}, s}
  end

  def handle_call({:set_source, source}, _from, s) do
    {new, owned?} = build_source(source)
    load_modules(new)
    # requests still running on the old source store under the old generation, never read again
    publish(%{s | source: new, generation: make_ref()})
    Cache.clear(s.cache)
    if s.owned? and new != s.source, do: Source.release(s.source)
    {:reply, :ok, %{s | source: new, owned?: owned?}}
  end

  @impl true
  def handle_info({:EXIT, pid, reason}, %{listener: pid} = s), do: {:stop, {:listener_down, reason}, s}
  def handle_info(_msg, s), do: {:noreply, s}

  @impl true
  def terminate(_reason, s) do
    :persistent_term.erase({__MODULE__, s.ref})
    # the listener takes its socket, acceptors and connections with it; wait, so that the port is free on return
    ref = Process.monitor(s.listener)
    Process.exit(s.listener, :shutdown)

    receive do
      {:DOWN, ^ref, _, _, _} -> :ok
    after
      5_000 -> Process.exit(s.listener, :kill)
    end

    if s.owned?, do: Source.release(s.source)
    :ok
  end
end
