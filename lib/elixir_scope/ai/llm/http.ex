defmodule ElixirScope.AI.LLM.HTTP do
  @moduledoc """
  HTTP for the LLM providers: one request through the C client
  (`ElixirScope.NIF.llm_http_request/5`, dirty IO scheduler), with retries
  and exponential backoff on 429 and 5xx (honouring `Retry-After`), a total
  time budget, and errors a person can act on: `{:error, {kind, message}}`.

  Kinds: `:timeout`, `:connect_refused`, `:tls`, `:too_large`, `:resolve`,
  `:bad_url`, `:io`, `:unauthorized` (401/403), `:rate_limited` (429),
  `:server_error` (5xx), `:http_error` (other statuses).
  Every message is scrubbed of the secrets passed in `:secrets`.
  """

  alias ElixirScope.AI.LLM.Secret

  @type error :: {atom, String.t()}
  @type response :: %{status: non_neg_integer, headers: [{String.t(), String.t()}], body: binary}

  @doc """
  Sends a request. Options: `:timeout_ms` (total budget, default 30_000),
  `:max_response_bytes` (default 8 MiB), `:retries` (default 2),
  `:backoff_ms` (default 500), `:max_retry_after_ms` (default 20_000),
  `:ca_file`, `:secrets`, `:provider` (a label for messages),
  `:auth_hint` (what to check on 401/403). Returns the response only for 2xx.
  """
  @spec request(String.t(), String.t(), [{String.t(), String.t()}], iodata, keyword) ::
          {:ok, response} | {:error, error}
  def request(method, url, headers, body, opts \\ []) do
    timeout = Keyword.get(opts, :timeout_ms, 30_000)
    deadline = now() + timeout
    do_request(method, url, headers, body, opts, deadline, 1)
  end

  defp do_request(method, url, headers, body, opts, deadline, attempt) do
    remaining = deadline - now()
    retries = Keyword.get(opts, :retries, 2)

    if remaining <= 0 do
      timeout_error(url, opts)
    else
      nif_opts = %{
        timeout_ms: remaining,
        max_response_bytes: Keyword.get(opts, :max_response_bytes, 8 * 1024 * 1024),
        ca_file: Keyword.get(opts, :ca_file)
      }

      case perform(method, url, headers, body, nif_opts, opts) do
        {:ok, status, resp_headers, resp_body} when status in 200..299 ->
          {:ok, %{status: status, headers: resp_headers, body: resp_body}}

        {:ok, status, resp_headers, resp_body} when status == 429 or status in 500..599 ->
          wait = retry_wait(resp_headers, attempt, opts)

          cond do
            attempt > retries ->
              status_error(status, resp_body, url, opts, attempt)

            wait == :too_long ->
              status_error(
                status,
                resp_body,
                url,
                opts,
                attempt,
                " (the server asked to wait longer than :max_retry_after_ms)"
              )

            now() + wait >= deadline ->
              status_error(
                status,
                resp_body,
                url,
                opts,
                attempt,
                " (no time left in the budget for another attempt)"
              )

            true ->
              Process.sleep(wait)
              do_request(method, url, headers, body, opts, deadline, attempt + 1)
          end

        {:ok, status, _h, resp_body} ->
          status_error(status, resp_body, url, opts, attempt)

        {:error, :io, _msg} when attempt <= retries ->
          Process.sleep(min(backoff(attempt, opts), max(deadline - now(), 0)))
          do_request(method, url, headers, body, opts, deadline, attempt + 1)

        {:error, :timeout, _msg} ->
          timeout_error(url, opts)

        {:error, kind, msg} ->
          {:error, {kind, transport_message(kind, msg, url, opts)}}
      end
    end
  end

  defp now, do: System.monotonic_time(:millisecond)

  # An ArgumentError from the NIF would carry the arguments (headers with the
  # credentials) in its stacktrace: turn it into an error tuple right here.
  defp perform(method, url, headers, body, nif_opts, opts) do
    ElixirScope.NIF.llm_http_request(method, url, headers, body, nif_opts)
  rescue
    e in ArgumentError ->
      {:error, :bad_request, scrub(Exception.message(e), opts)}
  end

  defp backoff(attempt, opts) do
    base = Keyword.get(opts, :backoff_ms, 500)
    jitter = if base > 0, do: :rand.uniform(max(div(base, 4), 1)), else: 0
    min(base * Integer.pow(2, attempt - 1) + jitter, 30_000)
  end

  @doc false
  @spec retry_wait([{String.t(), String.t()}], pos_integer, keyword) ::
          non_neg_integer | :too_long
  def retry_wait(headers, attempt, opts) do
    max_after = Keyword.get(opts, :max_retry_after_ms, 20_000)

    case parse_retry_after(List.keyfind(headers, "retry-after", 0)) do
      nil -> backoff(attempt, opts)
      ms when ms > max_after -> :too_long
      ms -> ms
    end
  end

  defp parse_retry_after(nil), do: nil

  defp parse_retry_after({_, value}) do
    value = String.trim(value)

    case Integer.parse(value) do
      {secs, ""} when secs >= 0 ->
        secs * 1000

      _ ->
        case :httpd_util.convert_request_date(String.to_charlist(value)) do
          :bad_date ->
            nil

          datetime ->
            target = :calendar.datetime_to_gregorian_seconds(datetime)
            now = :calendar.datetime_to_gregorian_seconds(:calendar.universal_time())
            max(target - now, 0) * 1000
        end
    end
  end

  defp provider(opts), do: Keyword.get(opts, :provider, "the LLM service")

  defp scrub(text, opts), do: Secret.redact(text, Keyword.get(opts, :secrets, []))

  @doc "scheme://host:port of a URL (no path or query, which may hold identifiers)."
  @spec origin(String.t()) :: String.t()
  def origin(url) do
    case URI.parse(url) do
      %URI{scheme: s, host: h, port: p} when is_binary(s) and is_binary(h) -> "#{s}://#{h}:#{p}"
      _ -> "the configured URL"
    end
  end

  defp timeout_error(url, opts) do
    ms = Keyword.get(opts, :timeout_ms, 30_000)

    {:error,
     {:timeout,
      scrub(
        "#{provider(opts)} did not answer within #{ms} ms (#{origin(url)}); raise ai: [analysis_timeout: ms] or check that the endpoint is reachable",
        opts
      )}}
  end

  defp transport_message(kind, msg, url, opts) do
    o = origin(url)

    text =
      case kind do
        :connect_refused ->
          "could not connect to #{provider(opts)} at #{o} (#{msg}); check the base_url setting and that the server is running"

        :tls ->
          "TLS failure talking to #{provider(opts)} at #{o} (#{msg}); check the URL scheme, the server certificate or the :ca_file setting"

        :too_large ->
          "the answer of #{provider(opts)} at #{o} was too large (#{msg}); raise ai: [max_response_bytes: n] if this is expected"

        :resolve ->
          "could not resolve the host of #{o} (#{msg}); check the base_url setting and DNS"

        :bad_request ->
          "the request to #{provider(opts)} could not be built (#{msg}); check the settings (a key or URL with a line break?)"

        :bad_url ->
          "the URL for #{provider(opts)} is invalid (#{msg}); check the base_url setting"

        _ ->
          "request to #{provider(opts)} at #{o} failed (#{kind}: #{msg})"
      end

    scrub(text, opts)
  end

  defp status_error(status, body, url, opts, attempt, extra \\ "") do
    detail = body_detail(body)
    o = origin(url)
    tries = if attempt > 1, do: " after #{attempt} attempts", else: ""

    {kind, text} =
      cond do
        status in [401, 403] or (status == 400 and detail =~ ~r/api.key/i) ->
          hint = Keyword.get(opts, :auth_hint, "check the configured credentials")

          {:unauthorized,
           "#{provider(opts)} rejected the credentials (HTTP #{status}#{detail}); #{hint}"}

        status == 429 ->
          {:rate_limited,
           "#{provider(opts)} is rate limiting requests (HTTP 429#{detail})#{tries}#{extra}; wait and retry, or lower the request rate / raise the quota"}

        status in 500..599 ->
          {:server_error,
           "#{provider(opts)} had a server error (HTTP #{status}#{detail})#{tries}#{extra}; retry later"}

        status == 404 ->
          {:http_error,
           "#{provider(opts)} at #{o} answered HTTP 404#{detail}; check the base_url and the model name"}

        true ->
          {:http_error, "#{provider(opts)} at #{o} answered HTTP #{status}#{detail}"}
      end

    {:error, {kind, scrub(text, opts)}}
  end

  # The service's own error message, when the body is a JSON error object.
  defp body_detail(body) do
    with true <- byte_size(body) < 65_536,
         {:ok, %{"error" => err}} <- ElixirScope.NIF.json_decode(body) do
      msg =
        case err do
          %{"message" => m} when is_binary(m) -> m
          m when is_binary(m) -> m
          _ -> nil
        end

      if msg, do: ": " <> String.slice(msg, 0, 300), else: ""
    else
      _ -> ""
    end
  end
end
