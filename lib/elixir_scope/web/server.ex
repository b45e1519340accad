defmodule ElixirScope.Web.Server do
  @moduledoc """
  One running cinema: owns the event source (its ETS tables for a recording)
  and the `:httpd` instance, and publishes what the request handler needs
  (source, token, static file list) in `:persistent_term` under its ref.
  """
  use GenServer

  alias ElixirScope.Web.Source

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

  @impl true
  def init(opts) do
    Process.flag(:trap_exit, true)
    ref = make_ref()
    ip = Keyword.fetch!(opts, :ip)
    {source, owned?} = build_source(Keyword.fetch!(opts, :source))
    static_dir = Keyword.fetch!(opts, :static_dir)

    publish(ref, source, opts[:token], static_dir)

    config = [
      port: Keyword.fetch!(opts, :port),
      server_name: ~c"elixir_scope",
      server_root: String.to_charlist(System.tmp_dir!()),
      document_root: String.to_charlist(static_dir),
      bind_address: ip,
      modules: [ElixirScope.Web.Handler],
      max_body_size: 4096,
      max_uri_size: 8192,
      max_header_size: 16_384,
      keep_alive: true,
      max_clients: 64,
      elixir_scope_web: ref
    ]

    case :inets.start(:httpd, config) do
      {:ok, httpd} ->
        Process.monitor(httpd)
        port = :httpd.info(httpd)[:port]
        {:ok, %{ref: ref, httpd: httpd, port: port, ip: ip, token: opts[:token], source: source, owned?: owned?, static_dir: static_dir}}

      {:error, reason} ->
        :persistent_term.erase({__MODULE__, ref})
        if owned?, do: Source.release(source)
        {:stop, reason}
    end
  end

  # {source, whether this server built it (and so frees it)}
  defp build_source({:events, events, meta}), do: {Source.from_events(events, meta), true}
  defp build_source(source), do: {source, false}

  defp publish(ref, source, token, static_dir) do
    files =
      static_dir
      |> Path.join("**")
      |> Path.wildcard()
      |> Enum.filter(&File.regular?/1)
      |> Map.new(fn f -> {"/static/" <> Path.relative_to(f, static_dir), f} end)

    :persistent_term.put({__MODULE__, ref}, %{source: source, token: token, static: files})
  end

  @impl true
  def handle_call(:info, _from, s) do
    host = s.ip |> :inet.ntoa() |> List.to_string()
    host = if String.contains?(host, ":"), do: "[#{host}]", else: host
    {:reply, %{port: s.port, ip: s.ip, token: s.token, url: "http://#{host}:#{s.port}/"}, s}
  end

  def handle_call({:set_source, source}, _from, s) do
    {new, owned?} = build_source(source)
    publish(s.ref, new, s.token, s.static_dir)
    if s.owned? and new != s.source, do: Source.release(s.source)
    {:reply, :ok, %{s | source: new, owned?: owned?}}
  end

  @impl true
  def handle_info({:DOWN, _, :process, pid, reason}, %{httpd: pid} = s), do: {:stop, {:httpd_down, reason}, s}
  def handle_info(_msg, s), do: {:noreply, s}

  @impl true
  def terminate(_reason, s) do
    :persistent_term.erase({__MODULE__, s.ref})
    _ = :inets.stop(:httpd, s.httpd)
    if s.owned?, do: Source.release(s.source)
    :ok
  end
end
