defmodule ElixirScope.Export.OTLP do
  @moduledoc """
  OpenTelemetry spans as OTLP/JSON (`ExportTraceServiceRequest`): one span per
  call (`parentSpanId` from the call tree), one trace per root call of each
  process — except that a request handled in another process (a GenServer call
  or cast, a message, a spawned task, an `:erpc`/`:rpc` call's work on another node, as linked by
  `ElixirScope.Query.Correlation`)
  is a child span of the caller's span that sent it, in the caller's trace, so a
  request across processes is one trace. Times in Unix nanoseconds (from the recording's clock), attributes
  `code.namespace`, `code.function`, `code.lineno`, `elixir.pid`, `elixir.node` (so a cluster
  recording's spans say where they ran; its cross-node calls are parent and child like any other), `elixir.args`,
  `elixir.return`; a call that raised has status ERROR and an `exception` span
  event (`exception.type`, `exception.message`, `exception.stacktrace`).
  Written to a file or POSTed to a collector (`/v1/traces`).
  """

  alias ElixirScope.Event
  alias ElixirScope.Export.Trace
  alias ElixirScope.Query.Correlation
  alias ElixirScope.Web.{JSON, Render}

  @doc """
  Builds the request body map. `opts`: `service_name:` (default "elixir_scope"),
  `clock: {monotonic_ns, system_us}` mapping event times to wall-clock time
  (default: taken from the events' `wall_time`).
  """
  @spec build([Event.t()], keyword()) :: map()
  def build(events, opts \\ []) do
    events = Enum.sort_by(events, & &1.id)
    to_unix = unix_fun(events, opts[:clock])
    by_pid = Trace.spans(events)
    all = for {pid, spans} <- by_pid, span <- spans, do: {pid, span}
    adopted = adopted_parents(events, all)
    root_of = Map.new(all, fn {pid, span} -> {span.call.id, {pid, span.root}} end)

    spans =
      for {pid, span} <- all do
        trace = trace_root(span.call.id, root_of, adopted, 0)
        span = if is_nil(span.parent) and adopted[span.call.id], do: %{span | parent: adopted[span.call.id]}, else: span
        otlp_span(span, pid, trace, to_unix)
      end

    %{
      resourceSpans: [
        %{
          resource: %{
            attributes: [
              attr("service.name", Keyword.get(opts, :service_name, "elixir_scope")),
              attr("service.instance.id", Atom.to_string(node())),
              attr("process.runtime.name", "BEAM"),
              attr("process.runtime.version", System.otp_release())
            ]
          },
          scopeSpans: [%{scope: %{name: "elixir_scope", version: "0.1.0"}, spans: spans}]
        }
      ]
    }
  end

  @doc "Writes the OTLP/JSON body to `path`; returns the number of spans."
  @spec write([Event.t()], Path.t(), keyword()) :: {:ok, non_neg_integer()} | {:error, String.t()}
  def write(events, path, opts \\ []) do
    body = build(events, opts)

    case File.write(path, JSON.encode_iodata(body)) do
      :ok -> {:ok, span_count(body)}
      {:error, reason} -> {:error, "#{path}: #{:file.format_error(reason)}"}
    end
  end

  @doc """
  POSTs the spans to a collector `url` (e.g. `http://127.0.0.1:4318/v1/traces`) as
  `application/json`. Returns `{:ok, span_count}` on a 2xx answer.
  """
  @spec post([Event.t()], String.t(), keyword()) ::
          {:ok, non_neg_integer()} | {:error, String.t()}
  def post(events, url, opts \\ []) do
    body = build(events, opts)
    {:ok, _} = Application.ensure_all_started(:inets)
    headers = [{~c"user-agent", ~c"elixir_scope"}]
    request = {String.to_charlist(url), headers, ~c"application/json", JSON.encode!(body)}

    case :httpc.request(:post, request, [timeout: Keyword.get(opts, :timeout, 15_000)],
           body_format: :binary
         ) do
      {:ok, {{_, status, _}, _, _}} when status in 200..299 ->
        {:ok, span_count(body)}

      {:ok, {{_, status, _}, _, resp}} ->
        {:error, "collector answered #{status}: #{Render.cut(to_string(resp), 300)}"}

      {:error, reason} ->
        {:error, "cannot reach the collector at #{url}: #{connect_error(reason)}"}
    end
  end

  defp span_count(%{resourceSpans: [%{scopeSpans: [%{spans: s}]}]}), do: length(s)

  # A process's root span that handles something another process's span sent it gets that span
  # as parent: %{root call id => the sending span's call event}.
  defp adopted_parents(events, all) do
    roots = for {_pid, %{parent: nil, call: c}} <- all, into: MapSet.new(), do: c.id
    calls = for {_pid, %{call: c}} <- all, into: %{}, do: {c.id, c}

    events
    |> Correlation.links()
    |> Enum.filter(&(&1.type in [:call, :cast, :info, :message, :spawn, :rpc] and &1.from.pid != &1.to.pid))
    |> Enum.reduce(%{}, fn l, acc ->
      receiver = if l.to.kind == :call, do: l.to.id, else: l.to.call_id
      sender = calls[l.from.call_id] || calls[l.from.id]

      if receiver in roots and sender && not Map.has_key?(acc, receiver),
        do: Map.put(acc, receiver, sender),
        else: acc
    end)
  end

  # the trace a span belongs to: its process root, or the trace of the span that sent its request
  defp trace_root(call_id, root_of, adopted, hops) do
    {pid, root} = Map.fetch!(root_of, call_id)

    case adopted[root] do
      %Event{id: sender} when hops < 64 and is_map_key(root_of, sender) -> trace_root(sender, root_of, adopted, hops + 1)
      _ -> {pid, root}
    end
  end

  defp otlp_span(span, pid, {trace_pid, root}, to_unix) do
    c = span.call

    base = %{
      traceId: hex_id(16, {:trace, trace_pid, root}),
      spanId: span_id(c),
      name: Render.mfa(c),
      kind: 1,
      startTimeUnixNano: Integer.to_string(to_unix.(span.start)),
      endTimeUnixNano: Integer.to_string(to_unix.(span.stop)),
      attributes:
        [
          attr("code.namespace", Render.mod(c.module)),
          attr("code.function", to_string(c.function)),
          attr("code.lineno", c.line),
          attr("elixir.pid", Render.pid(pid)),
          attr("elixir.node", Atom.to_string(node(pid))),
          attr("elixir.call_id", c.id)
        ] ++
          if(is_list(c.payload),
            do: [attr("elixir.args", Render.term(c.payload, max: 4096, pretty: false))],
            else: []
          ) ++
          return_attr(span.ending) ++ reply_attr(span.reply),
      status: status(span),
      events: exception_events(span.ending, to_unix)
    }

    if span.parent, do: Map.put(base, :parentSpanId, span_id(span.parent)), else: base
  end

  defp span_id(%Event{id: id}), do: hex_id(8, {:span, node(), id})

  defp hex_id(bytes, key) do
    :crypto.hash(:sha256, :erlang.term_to_binary(key))
    |> binary_part(0, bytes)
    |> Base.encode16(case: :lower)
  end

  defp return_attr(%Event{kind: :return, payload: v}),
    do: [attr("elixir.return", Render.term(v, max: 4096, pretty: false))]

  defp return_attr(_), do: []

  # a GenServer.call in tail position: its result is the reply
  defp reply_attr(%Event{} = reply) do
    {:ok, v} = Correlation.reply_value(reply)
    [attr("elixir.return", Render.term(v, max: 4096, pretty: false))]
  end

  defp reply_attr(nil), do: []

  defp status(%{status: :exception, ending: %Event{payload: p}}),
    do: %{code: 2, message: Render.exception(p).message}

  defp status(%{status: :open}), do: %{code: 0, message: "no end recorded"}
  defp status(_), do: %{code: 1}

  defp exception_events(%Event{kind: :exception, ts: ts, payload: p}, to_unix) do
    ex = Render.exception(p)

    type =
      case p do
        {:error, %{__struct__: m}, _} when is_atom(m) -> Render.mod(m)
        # a bounded copy: normalizing may format the reason
        {:error, reason, _} -> Render.mod(Exception.normalize(:error, ElixirScope.Report.Format.bounded(reason), []).__struct__)
        {kind, _, _} when kind in [:throw, :exit] -> to_string(kind)
        _ -> "error"
      end

    [
      %{
        name: "exception",
        timeUnixNano: Integer.to_string(to_unix.(ts)),
        attributes: [
          attr("exception.type", type),
          attr("exception.message", ex.message),
          attr("exception.stacktrace", Enum.join(ex.stacktrace, "\n"))
        ]
      }
    ]
  end

  defp exception_events(_, _), do: []

  defp connect_error({:failed_connect, details}) do
    case List.keyfind(details, :inet, 0) do
      {:inet, _, :econnrefused} -> "connection refused (is a collector listening there?)"
      {:inet, _, :nxdomain} -> "unknown host"
      {:inet, _, :timeout} -> "timed out"
      {:inet, _, reason} -> :inet.format_error(reason) |> to_string()
      _ -> "could not connect"
    end
  end

  defp connect_error(:timeout), do: "timed out"
  defp connect_error(reason), do: Render.short(reason, 200)

  defp attr(key, v) when is_binary(v), do: %{key: key, value: %{stringValue: v}}
  defp attr(key, v) when is_integer(v), do: %{key: key, value: %{intValue: Integer.to_string(v)}}

  defp unix_fun(_events, {mono0, sys0_us}), do: fn ts -> sys0_us * 1000 + (ts - mono0) end

  defp unix_fun(events, nil) do
    case Enum.find(events, &is_integer(&1.wall_time)) do
      %Event{ts: ts, wall_time: w} -> fn t -> w * 1000 + (t - ts) end
      nil -> fn t -> System.os_time(:nanosecond) - System.monotonic_time(:nanosecond) + t end
    end
  end
end
