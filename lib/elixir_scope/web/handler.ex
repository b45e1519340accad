defmodule ElixirScope.Web.Handler do
  @moduledoc """
  Answers one request of the cinema (called by `ElixirScope.Web.HTTP` for each request):
  the page and its static assets (the files of `priv/static`, read when the server
  started; no path from a request is ever joined to the file system), and the JSON API
  (see `docs/web_api.md`). Requests are GET/HEAD only, with a `Host` the server answers
  to, and API requests with no foreign `Origin` (`ElixirScope.Web.Hosts`, against DNS
  rebinding). When the server has a token, every request must carry it: `x-scope-token`
  header, `token` query parameter, or the `scope_token` cookie set when the page was opened
  with it. Errors are JSON `{"error": message}`; an internal error is logged, and the client
  is told only that it happened.
  """

  require Logger
  alias ElixirScope.Web.{Api, Cache, Hosts, JSON, Server}

  @security_headers [
    {"x-content-type-options", "nosniff"},
    {"x-frame-options", "DENY"},
    {"referrer-policy", "no-referrer"},
    {"cache-control", "no-store"},
    {"content-security-policy",
     "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"}
  ]

  @typedoc "A request header, name in lower case."
  @type header :: {String.t(), String.t()}

  @doc "The response to `method uri` with `headers`, for the server published under `ref`."
  @spec handle(reference(), String.t(), String.t(), [header()]) :: {pos_integer(), [{String.t(), iodata()}], iodata()}
  def handle(ref, method, uri, headers) do
    {status, extra, content_type, body} =
      try do
        respond(Server.state(ref), method, uri, headers)
      rescue
        e ->
          # the details go to the log, never to the client
          Logger.error("ElixirScope cinema: internal error on #{method} #{String.slice(uri, 0, 200)}: " <> Exception.format(:error, e, __STACKTRACE__))
          json(500, %{error: "internal error (details are in the server log)"})
      end

    {status, [{"content-type", content_type} | @security_headers] ++ extra, body}
  end

  defp respond(nil, _method, _uri, _headers), do: json(503, %{error: "the cinema server is stopping"})

  defp respond(state, method, uri, headers) do
    {path, query} = split_uri(uri)

    cond do
      (error = host_error(state, headers)) != nil -> error
      method not in ["GET", "HEAD"] -> json(405, %{error: "only GET is supported"})
      query == :malformed -> json(400, %{error: "malformed query string (bad percent-encoding)"})
      not authorized?(state, headers, query) -> json(401, %{error: "a valid token is required (x-scope-token header or ?token=)"})
      api?(path) and not Hosts.origin?(state.hosts, header(headers, "origin")) -> json(403, %{error: "cross-origin requests are refused"})
      true -> route(state, path, query) |> with_cookie(state, query)
    end
  end

  defp api?(path), do: String.starts_with?(path, "/api/")

  # DNS rebinding: only the Host names this server is reached by (see ElixirScope.Web.Hosts)
  defp host_error(state, headers) do
    case for({"host", v} <- headers, do: v) do
      [host] ->
        if Hosts.host?(state.hosts, host),
          do: nil,
          else: json(403, %{error: "Host #{inspect(String.slice(host, 0, 80))} is not accepted: open the cinema by its address, or list the name in the hosts: option"})

      [] ->
        json(400, %{error: "a Host header is required"})

      _ ->
        json(400, %{error: "one Host header is required"})
    end
  end

  defp split_uri(uri) do
    case String.split(uri, "?", parts: 2) do
      [path, q] -> {path, parse_query(q)}
      [path] -> {path, %{}}
    end
  end

  defp parse_query(q) do
    URI.decode_query(q)
  rescue
    ArgumentError -> :malformed
  end

  # ------------------------------------------------------------------ auth

  defp authorized?(%{token: nil}, _headers, _query), do: true

  defp authorized?(%{token: token}, headers, query) do
    candidates = [
      header(headers, "x-scope-token"),
      query["token"],
      cookie(header(headers, "cookie"), "scope_token")
    ]

    Enum.any?(candidates, &(is_binary(&1) and secure_equal?(&1, token)))
  end

  defp header(headers, name) do
    case List.keyfind(headers, name, 0) do
      {_, value} -> value
      nil -> nil
    end
  end

  defp cookie(nil, _), do: nil

  defp cookie(text, name) do
    text
    |> String.split(";")
    |> Enum.find_value(fn part ->
      case String.split(String.trim(part), "=", parts: 2) do
        [^name, v] -> v
        _ -> nil
      end
    end)
  end

  defp secure_equal?(a, b), do: :crypto.hash(:sha256, a) == :crypto.hash(:sha256, b) and a == b

  defp with_cookie({status, headers, type, body}, %{token: token}, %{"token" => token}) when is_binary(token),
    do: {status, [{"set-cookie", "scope_token=#{token}; HttpOnly; SameSite=Strict; Path=/"} | headers], type, body}

  defp with_cookie(response, _state, _query), do: response

  # ---------------------------------------------------------------- routes

  defp route(state, "/", _query), do: page(state)
  defp route(state, "/index.html", _query), do: page(state)
  defp route(state, "/api/" <> endpoint, query), do: api(state, endpoint, query)
  defp route(state, "/static/" <> _ = path, _query), do: static(state, path)
  defp route(_state, _path, _query), do: json(404, %{error: "not found"})

  defp static(%{static: files}, path) do
    key = if path == "/index.html", do: "/static/index.html", else: path

    case Map.fetch(files, key) do
      {:ok, {type, body}} -> {200, [], type, body}
      :error -> json(404, %{error: "not found"})
    end
  end

  # The page carries the first answers of the API (summary, first events, links) inside it, so
  # that its first paint needs no request after the page (a headless screenshot taken at the
  # load event shows the recording). A JSON data block is not run (the CSP allows no inline
  # script), and ElixirScope.JSON writes "<" as \u003C: no string in it can close the element.
  @boot_page_events "5000"

  defp page(state) do
    {200, [], type, html} = static(state, "/index.html")

    parts =
      for {key, endpoint, query} <- [{"summary", "summary", %{}}, {"events", "events", %{"limit" => @boot_page_events}}, {"links", "links", %{}}] do
        body = with {200, _, _, body} <- api(state, endpoint, query), do: body, else: (_ -> "null")
        [?", key, ?", ?:, body]
      end

    boot = [~s(<script id="boot" type="application/json">{), Enum.intersperse(parts, ?,), "}</script>\n"]
    [before, rest] = String.split(html, ~s(<script src="/static/app.js">), parts: 2)
    {200, [], type, [before, boot, ~s(<script src="/static/app.js">), rest]}
  end

  # a recording never changes: each distinct API request is computed once (see ElixirScope.Web.Cache)
  defp api(%{source: :live} = state, endpoint, query), do: compute(state, endpoint, query)

  defp api(state, endpoint, query) do
    Cache.fetch(state.cache, {:api, state.generation, endpoint, Map.delete(query, "token")}, fn ->
      {status, _, _, body} = response = compute(state, endpoint, query)
      if status == 200, do: {response, IO.iodata_length(body) + 256}, else: {response, :skip}
    end)
  end

  defp compute(state, endpoint, query) do
    case Api.handle(state.source, endpoint, query, cache: state.cache) do
      {:ok, data} -> json(200, IO.iodata_to_binary(JSON.encode_iodata(data)))
      {:error, status, message} -> json(status, %{error: message})
    end
  end

  defp json(status, body) when is_binary(body), do: {status, [], "application/json; charset=utf-8", body}
  defp json(status, data), do: {status, [], "application/json; charset=utf-8", JSON.encode_iodata(data)}
end
