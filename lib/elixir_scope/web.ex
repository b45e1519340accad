defmodule ElixirScope.Web do
  @moduledoc """
  The execution cinema: a web timeline of the recorded execution, served by a small
  HTTP/1.1 server on `:gen_tcp` (`ElixirScope.Web.HTTP`; no Phoenix, no `:httpd`).

      {:ok, info} = ElixirScope.Web.start(port: 4040)
      info.url #=> "http://127.0.0.1:4040/"

  Options:
  - `port:` (default 4040; 0 picks a free port)
  - `ip:` address to bind, a tuple or string (default `{127, 0, 0, 1}`). Binding any
    address other than a loopback one requires a token: pass `token:` or one is
    generated; open the printed URL (it carries `?token=`).
  - `token:` a string every request must carry (header `x-scope-token`, query `token`,
    or the cookie the page sets). Optional on loopback.
  - `hosts:` extra names the server is reached by (`["cinema.internal", "box:8080"]`): only
    requests whose `Host` is a loopback name, the bound address or one of these are
    answered, and API requests carrying an `Origin` must name one of them (against DNS
    rebinding; see `ElixirScope.Web.Hosts`).
  - `source:` `:live` (default: the running ElixirScope's store),
    `{:events, [%ElixirScope.Event{}], meta}` (a fixed set of events, kept in memory),
    or a recording (`%ElixirScope.Recording{}`, e.g. from `ElixirScope.Recording.load/2`).

  The JSON API is documented in `docs/web_api.md`.
  """

  alias ElixirScope.Web.{Hosts, Server}

  @type info :: %{port: non_neg_integer(), ip: tuple(), token: String.t() | nil, url: String.t(), pid: pid()}

  @doc """
  Child spec for a supervision tree: `{ElixirScope.Web, port: 4040}`. Takes the options of
  `start/1` (and ignores `enabled:`, so the `web:` section of the ElixirScope config can be
  passed as it is).
  """
  @spec child_spec(keyword()) :: Supervisor.child_spec()
  def child_spec(opts), do: %{id: __MODULE__, start: {__MODULE__, :start_link, [opts]}, type: :worker}

  @doc "Starts a cinema server linked to the caller (what the child spec runs)."
  @spec start_link(keyword()) :: {:ok, pid()} | {:error, term()}
  def start_link(opts \\ []) do
    with {:ok, info} <- start(Keyword.delete(opts, :enabled), :link) do
      require Logger
      Logger.info("ElixirScope cinema: #{info.url}")
      {:ok, info.pid}
    end
  end

  @doc """
  Starts a cinema server. Returns `{:ok, info}` with the URL to open, or `{:error, message}`
  (a bad option, or the port cannot be listened on: `"port 4040 on 127.0.0.1 is already in use"`).
  """
  @spec start(keyword()) :: {:ok, info()} | {:error, term()}
  def start(opts \\ []), do: start(opts, :nolink)

  defp start(opts, link) do
    with :ok <- check_keys(opts),
         {:ok, ip} <- parse_ip(Keyword.get(opts, :ip, {127, 0, 0, 1})),
         {:ok, token} <- token(ip, Keyword.get(opts, :token)),
         {:ok, port} <- port(Keyword.get(opts, :port, 4040)),
         {:ok, hosts} <- hosts(Keyword.get(opts, :hosts, [])),
         {:ok, pid} <-
           Server.start([ip: ip, port: port, token: token, hosts: hosts, source: Keyword.get(opts, :source, :live), static_dir: static_dir()], link)
           |> start_error(ip, port) do
      info = Server.info(pid)
      url = if token, do: info.url <> "?token=" <> URI.encode_www_form(token), else: info.url
      {:ok, Map.merge(info, %{pid: pid, url: url})}
    end
  end

  # one line that says what is wrong
  defp start_error({:ok, _} = ok, _ip, _port), do: ok

  defp start_error({:error, reason}, ip, port) do
    where = "#{:inet.ntoa(ip)}"

    case reason do
      {:listen, :eaddrinuse} -> {:error, "port #{port} on #{where} is already in use"}
      {:listen, cause} -> {:error, "cannot listen on #{where} port #{port}: #{:inet.format_error(cause)}"}
      other -> {:error, "cannot start the cinema server: " <> String.slice(inspect(other, limit: 6), 0, 200)}
    end
  end

  @doc "Stops one server (by the pid in its info) or all of them (`:all`)."
  @spec stop(pid() | info() | :all) :: :ok
  def stop(which \\ :all)
  def stop(%{pid: pid}), do: stop(pid)

  def stop(pid) when is_pid(pid) do
    if Process.alive?(pid), do: GenServer.stop(pid, :normal, 5_000)
    :ok
  catch
    :exit, _ -> :ok
  end

  def stop(:all) do
    Enum.each(servers(), &stop/1)
  end

  @doc "The pids of running cinema servers."
  @spec servers() :: [pid()]
  def servers do
    Process.list()
    |> Enum.filter(fn pid ->
      case Process.info(pid, :dictionary) do
        {:dictionary, d} -> Keyword.get(d, :"$initial_call") == {Server, :init, 1}
        _ -> false
      end
    end)
  end

  @doc "The directory of the front end's built assets."
  @spec static_dir() :: String.t()
  def static_dir, do: :elixir_scope |> :code.priv_dir() |> List.to_string() |> Path.join("static")

  @known [:port, :ip, :token, :hosts, :source]

  defp check_keys(opts) when is_list(opts) do
    case Enum.uniq(Keyword.keys(opts)) -- @known do
      [] -> :ok
      bad -> {:error, "unknown option(s) #{inspect(bad)}; known: #{inspect(@known)}"}
    end
  end

  defp parse_ip(ip) when is_tuple(ip) do
    if :inet.is_ip_address(ip), do: {:ok, ip}, else: {:error, "ip: not an address: #{inspect(ip)}"}
  end

  defp parse_ip(ip) when is_binary(ip) do
    case :inet.parse_address(String.to_charlist(ip)) do
      {:ok, addr} -> {:ok, addr}
      _ -> {:error, "ip: cannot parse #{inspect(ip)}"}
    end
  end

  defp parse_ip(other), do: {:error, "ip: expected an address tuple or string, got #{inspect(other)}"}

  defp token(_ip, token) when is_binary(token) and byte_size(token) >= 8, do: {:ok, token}
  defp token(_ip, token) when is_binary(token), do: {:error, "token: use at least 8 characters"}

  defp token(ip, nil) do
    if loopback?(ip), do: {:ok, nil}, else: {:ok, Base.url_encode64(:crypto.strong_rand_bytes(18), padding: false)}
  end

  defp token(_ip, other), do: {:error, "token: expected a string, got #{inspect(other)}"}

  defp hosts(hosts) do
    if Hosts.valid_list?(hosts),
      do: {:ok, hosts},
      else: {:error, "hosts: expected a list of at most 64 \"name\" or \"name:port\" strings, got #{inspect(hosts, limit: 5)}"}
  end

  defp port(p) when is_integer(p) and p >= 0 and p < 65_536, do: {:ok, p}
  defp port(p), do: {:error, "port: expected an integer in 0..65535, got #{inspect(p)}"}

  @doc "Whether `ip` is a loopback address."
  @spec loopback?(tuple()) :: boolean()
  def loopback?({127, _, _, _}), do: true
  def loopback?({0, 0, 0, 0, 0, 0, 0, 1}), do: true
  def loopback?(_), do: false
end
