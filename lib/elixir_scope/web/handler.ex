defmodule ElixirScope.Web.Handler do
  @moduledoc """
  The `:httpd` module callback (`do/1`) serving the cinema: the page and its
  static assets (only files listed in `priv/static` when the server started;
  no path from a request is ever joined to the file system), and the JSON API
  (see `docs/web_api.md`). Requests are GET/HEAD only. When the server has a
  token, every request must carry it: `x-scope-token` header, `token` query
  parameter, or the `scope_token` cookie set when the page was opened with it.
  """

  require Record
  Record.defrecordp(:mod, Record.extract(:mod, from_lib: "inets/include/httpd.hrl"))

  alias ElixirScope.Web.{Api, JSON}

  @security_headers [
    {:"x-content-type-options", ~c"nosniff"},
    {:"x-frame-options", ~c"DENY"},
    {:"referrer-policy", ~c"no-referrer"},
    {:"content-security-policy",
     ~c"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"}
  ]

  @doc false
  # the httpd callback; `do` is a reserved word in Elixir, hence unquote
  @spec unquote(:do)(tuple()) :: {:proceed, list()}
  def unquote(:do)(mod_data) do
    ref = :httpd_util.lookup(mod(mod_data, :config_db), :elixir_scope_web)
    state = ElixirScope.Web.Server.state(ref)
    method = mod(mod_data, :method)
    {path, query} = split_uri(List.to_string(mod(mod_data, :request_uri)))
    headers = mod(mod_data, :parsed_header)

    {status, extra_headers, content_type, body} =
      try do
        cond do
          state == nil -> json(503, %{error: "the cinema server is stopping"})
          method not in [~c"GET", ~c"HEAD"] -> json(405, %{error: "only GET is supported"})
          not authorized?(state, headers, query) -> json(401, %{error: "a valid token is required (x-scope-token header or ?token=)"})
          true -> route(state, path, query) |> with_cookie(state, query)
        end
      rescue
        e -> json(500, %{error: "internal error: " <> Exception.message(e)})
      end

    body = if method == ~c"HEAD", do: "", else: body
    size = if method == ~c"HEAD", do: 0, else: IO.iodata_length(body)

    head =
      [code: status, content_type: content_type, content_length: Integer.to_charlist(size), cache_control: ~c"no-store"] ++
        @security_headers ++ extra_headers

    {:proceed, [{:response, {:response, head, body}}]}
  end

  defp split_uri(uri) do
    case String.split(uri, "?", parts: 2) do
      [path, q] -> {path, safe_query(q)}
      [path] -> {path, %{}}
    end
  end

  defp safe_query(q) do
    URI.decode_query(q)
  rescue
    _ -> %{}
  end

  # ------------------------------------------------------------------ auth

  defp authorized?(%{token: nil}, _headers, _query), do: true

  defp authorized?(%{token: token}, headers, query) do
    candidates = [
      header(headers, ~c"x-scope-token"),
      query["token"],
      cookie(header(headers, ~c"cookie"), "scope_token")
    ]

    Enum.any?(candidates, &(is_binary(&1) and secure_equal?(&1, token)))
  end

  defp header(headers, name) do
    case List.keyfind(headers, name, 0) do
      {_, value} -> List.to_string(value)
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
    do: {status, [{:"set-cookie", String.to_charlist("scope_token=#{token}; HttpOnly; SameSite=Strict; Path=/")} | headers], type, body}

  defp with_cookie(response, _state, _query), do: response

  # ---------------------------------------------------------------- routes

  defp route(state, "/", _query), do: static(state, "/index.html")
  defp route(state, "/index.html", _query), do: static(state, "/index.html")
  defp route(state, "/api/" <> endpoint, query), do: api(state, endpoint, query)
  defp route(state, "/static/" <> _ = path, _query), do: static(state, path)
  defp route(_state, _path, _query), do: json(404, %{error: "not found"})

  defp static(%{static: files}, path) do
    key = if path == "/index.html", do: "/static/index.html", else: path

    case Map.fetch(files, key) do
      {:ok, file} ->
        case File.read(file) do
          {:ok, body} -> {200, [], content_type(file), body}
          {:error, _} -> json(404, %{error: "not found"})
        end

      :error ->
        json(404, %{error: "not found"})
    end
  end

  defp api(state, endpoint, query) do
    case Api.handle(state.source, endpoint, query) do
      {:ok, data} -> json(200, data)
      {:error, status, message} -> json(status, %{error: message})
    end
  end

  defp json(status, data), do: {status, [], ~c"application/json; charset=utf-8", JSON.encode_iodata(data)}

  defp content_type(file) do
    case Path.extname(file) do
      ".html" -> ~c"text/html; charset=utf-8"
      ".js" -> ~c"text/javascript; charset=utf-8"
      ".css" -> ~c"text/css; charset=utf-8"
      ".svg" -> ~c"image/svg+xml"
      ".png" -> ~c"image/png"
      ".json" -> ~c"application/json"
      _ -> ~c"application/octet-stream"
    end
  end
end
