defmodule ElixirScope.Web.Hosts do
  @moduledoc """
  Which `Host` (and `Origin`) a cinema server answers, against DNS rebinding: a page on
  `evil.example.com` whose name is made to resolve to 127.0.0.1 reaches the server with
  `Host: evil.example.com`, so only the names the server is really reached by are accepted:

  - `localhost`, `127.0.0.1` and `[::1]` with the server's port;
  - the bound address with the port (for a wildcard bind, `0.0.0.0` or `::`, every address
    of the machine's interfaces and its host name);
  - the configured `hosts:` (`web: [hosts: ["cinema.internal", "box:8080"]]`): a name without
    a port is accepted with the server's port or with none (behind a proxy), a name with a
    port only with that port.

  A name without a port is also accepted for the loopback names when the port is 80. Names
  compare case-insensitively. An `Origin` (sent by browsers on cross-origin requests) must
  name an accepted host: `http://host:port`, or `https://host` for a configured name.
  """

  @typedoc "The accepted `host[:port]` strings, lowercase."
  @type t :: MapSet.t(String.t())

  # a host name, an IPv4 address or a bracketed IPv6 address, then an optional port
  @host_re ~r/\A(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?\z/i

  @doc "Whether `hosts` is a valid `hosts:` setting: a list of at most 64 `host[:port]` strings."
  @spec valid_list?(term()) :: boolean()
  def valid_list?(hosts), do: is_list(hosts) and length(hosts) <= 64 and Enum.all?(hosts, &valid?/1)

  @doc "Whether `host` is a `name`, `name:port`, IPv4 or `[IPv6]` (with an optional port)."
  @spec valid?(term()) :: boolean()
  def valid?(host), do: is_binary(host) and byte_size(host) <= 260 and Regex.match?(@host_re, host)

  @doc "The accepted hosts of a server bound to `ip` on `port`, with the configured `extra` names."
  @spec accepted(:inet.ip_address(), :inet.port_number(), [String.t()]) :: t()
  def accepted(ip, port, extra) do
    names = ["localhost", "127.0.0.1", "[::1]" | bound_names(ip)]
    loopback = for n <- names, h <- [n <> ":#{port}"] ++ if(port == 80, do: [n], else: []), do: h

    configured =
      Enum.flat_map(extra, fn h ->
        h = String.downcase(h)
        if String.match?(h, ~r/:\d+\z/), do: [h], else: [h, h <> ":#{port}"]
      end)

    MapSet.new(loopback ++ configured)
  end

  @doc "Whether a `Host` header value names this server."
  @spec host?(t(), String.t()) :: boolean()
  def host?(accepted, host), do: MapSet.member?(accepted, host |> String.trim() |> String.downcase())

  @doc """
  Whether an `Origin` header value names this server (`nil`, no header: non-browser clients,
  and same-origin GETs, send none).
  """
  @spec origin?(t(), String.t() | nil) :: boolean()
  def origin?(_accepted, nil), do: true

  def origin?(accepted, origin) do
    case URI.new(String.trim(origin)) do
      {:ok, %URI{scheme: scheme, host: host, port: port, path: path}}
      when scheme in ["http", "https"] and is_binary(host) and host != "" and path in [nil, ""] ->
        host = if String.contains?(host, ":"), do: "[#{host}]", else: host
        default = (scheme == "http" and port == 80) or (scheme == "https" and port == 443)
        host?(accepted, "#{host}:#{port}") or (default and host?(accepted, host))

      _ ->
        false
    end
  end

  # the bound address as written in a Host header; for a wildcard, every local address and the host name
  defp bound_names(ip) when ip in [{0, 0, 0, 0}, {0, 0, 0, 0, 0, 0, 0, 0}] do
    addrs =
      case :inet.getifaddrs() do
        {:ok, ifs} -> for {_name, opts} <- ifs, {:addr, a} <- opts, do: a
        _ -> []
      end

    {:ok, name} = :inet.gethostname()
    Enum.map(addrs, &address/1) ++ [String.downcase(List.to_string(name))]
  end

  defp bound_names(ip), do: [address(ip)]

  defp address(ip) do
    text = ip |> :inet.ntoa() |> List.to_string() |> String.downcase()
    if tuple_size(ip) == 8, do: "[#{text}]", else: text
  end
end
