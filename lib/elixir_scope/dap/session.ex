defmodule ElixirScope.DAP.Session do
  @moduledoc """
  One debug session over a recording (or the live store of this VM): the
  state machine behind `mix scope.dap`. `handle/2` takes one decoded DAP
  message and returns the new session, the messages to send (responses and
  events, in order) and whether to go on; the transports
  (`ElixirScope.DAP.Server`) only move bytes.

  The debuggee is always "stopped" at one event (the cursor); each thread's
  view (its stack, its variables) is the process as it was at that event.
  Stepping and continuing move the cursor forwards or backwards in time.
  Requests about what is shown (stack, scopes, variables, evaluate, source)
  are in `ElixirScope.DAP.Inspect`.
  """

  alias ElixirScope.{Event, Query, Recording}
  alias ElixirScope.DAP.{Breakpoints, Inspect, Sources, Timeline, Variables}
  alias ElixirScope.Web.Render

  defstruct seq: 1,
            src: nil,
            owned: nil,
            recording: nil,
            launched: false,
            configured: false,
            started: false,
            stop_on_entry: true,
            sources: nil,
            timeout: 1_000,
            bounds: nil,
            at: 0,
            pid: nil,
            threads: [],
            line_bps: %{},
            function_bps: [],
            data_bps: [],
            exception_bps: [],
            next_bp: 1,
            vars: %Variables{},
            frames: %{},
            next_frame: 1,
            data_ids: %{},
            source_refs: %{},
            out: []

  @type t :: %__MODULE__{}
  @type status :: :cont | :halt

  @doc "A new session. Options: `recording:` (the default for `launch`)."
  @spec new(keyword()) :: t()
  def new(opts \\ []), do: %__MODULE__{recording: opts[:recording]}

  @doc "Handles one message: `{session, outgoing_messages, :cont | :halt}`."
  @spec handle(t(), map()) :: {t(), [map()], status()}
  def handle(s, %{"type" => "request", "command" => cmd, "seq" => seq} = req) when is_binary(cmd) and is_integer(seq) do
    args = if is_map(req["arguments"]), do: req["arguments"], else: %{}

    {s, status} =
      try do
        request(s, cmd, args, req)
      rescue
        e -> {error(s, req, "internal error in #{cmd}: #{Exception.message(e)}"), :cont}
      end

    flush(s, status)
  end

  def handle(s, %{"type" => "request", "seq" => seq} = req) when is_integer(seq) do
    s |> error(Map.put(req, "command", to_string(req["command"])), "a request needs a command (a string)") |> flush(:cont)
  end

  def handle(s, %{"type" => t}) when t in ["response", "event"], do: flush(s, :cont)

  def handle(s, msg) do
    s |> output("ignored a message that is not a DAP request: #{Render.short(msg, 200)}", "stderr") |> flush(:cont)
  end

  @doc "Reports a message the transport could not read (malformed JSON, bad header)."
  @spec bad_message(t(), String.t()) :: {t(), [map()], status()}
  def bad_message(s, reason), do: s |> output("ignored a malformed message: #{reason}", "stderr") |> flush(:cont)

  @doc "Frees what the session loaded."
  @spec close(t()) :: :ok
  def close(%__MODULE__{owned: %Recording{} = rec}), do: Recording.close(rec)
  def close(_), do: :ok

  defp flush(s, status), do: {%{s | out: []}, Enum.reverse(s.out), status}

  # ---------------------------------------------------------------- messages

  @doc false
  @spec send_msg(t(), map()) :: t()
  def send_msg(s, msg), do: %{s | seq: s.seq + 1, out: [Map.put(msg, :seq, s.seq) | s.out]}

  @doc false
  @spec reply(t(), map(), map() | nil) :: t()
  def reply(s, req, body \\ nil) do
    msg = %{type: "response", request_seq: req["seq"], success: true, command: req["command"]}
    send_msg(s, if(body, do: Map.put(msg, :body, body), else: msg))
  end

  @doc false
  @spec error(t(), map(), String.t()) :: t()
  def error(s, req, message) do
    send_msg(s, %{type: "response", request_seq: req["seq"], success: false, command: req["command"], message: message,
      body: %{error: %{id: 1, format: message, showUser: false}}})
  end

  @doc false
  @spec event(t(), String.t(), map()) :: t()
  def event(s, name, body), do: send_msg(s, %{type: "event", event: name, body: body})

  @doc false
  @spec output(t(), String.t(), String.t(), map()) :: t()
  def output(s, text, category \\ "console", extra \\ %{}),
    do: event(s, "output", Map.merge(%{category: category, output: text <> "\n"}, extra))

  # ---------------------------------------------------------------- requests

  @capabilities %{
    supportsConfigurationDoneRequest: true,
    supportsFunctionBreakpoints: true,
    supportsConditionalBreakpoints: true,
    supportsHitConditionalBreakpoints: true,
    supportsEvaluateForHovers: true,
    supportsStepBack: true,
    supportsRestartFrame: true,
    supportsGotoTargetsRequest: true,
    supportsLogPoints: true,
    supportsDataBreakpoints: true,
    supportsExceptionInfoRequest: true,
    supportsTerminateRequest: true,
    exceptionBreakpointFilters: [
      %{filter: "raised", label: "Raised exceptions", default: false,
        description: "Stop where an exception is raised (its innermost recorded report)"},
      %{filter: "crashed", label: "Exceptions that crashed their process", default: true,
        description: "Stop where an exception was raised that went on to crash its process"}
    ]
  }

  defp request(s, "initialize", _args, req), do: {reply(s, req, @capabilities), :cont}

  defp request(s, cmd, args, req) when cmd in ["launch", "attach"] do
    cond do
      s.launched ->
        {error(s, req, "already #{cmd}ed"), :cont}

      true ->
        case open_source(s, cmd, args) do
          {:ok, src, owned} ->
            s = %{s | src: src, owned: owned, launched: true, bounds: Timeline.bounds(src),
                      stop_on_entry: Map.get(args, "stopOnEntry", true) != false,
                      timeout: timeout(args["evaluateTimeout"]),
                      sources: Sources.new(args["sourceRoot"] || args["cwd"])}
            s = %{s | threads: Timeline.threads(src)}
            s = s |> reply(req) |> event("initialized", %{}) |> describe_source()
            {maybe_start(s), :cont}

          {:error, msg} ->
            {error(s, req, msg), :cont}
        end
    end
  end

  defp request(s, "configurationDone", _args, req), do: {s |> reply(req) |> Map.put(:configured, true) |> maybe_start(), :cont}

  defp request(s, cmd, _args, req) when cmd in ["disconnect", "terminate"] do
    s = reply(s, req)
    s = if cmd == "terminate", do: event(s, "terminated", %{}), else: s
    close(s)
    {%{s | owned: nil}, :halt}
  end

  defp request(%{launched: false} = s, _cmd, _args, req),
    do: {error(s, req, "launch or attach first (launch arguments: {\"recording\": path})"), :cont}

  defp request(s, "threads", _args, req) do
    threads = for {t, i} <- Enum.with_index(s.threads, 1), do: %{id: i, name: t.name}
    {reply(s, req, %{threads: threads}), :cont}
  end

  defp request(s, "setBreakpoints", args, req) do
    path = get_in(args, ["source", "path"])

    if is_binary(path) do
      path = Path.expand(path)
      specs = List.wrap(args["breakpoints"]) |> Enum.filter(&is_map/1)
      {bps, s} = Enum.map_reduce(specs, s, &new_bp(&2, {:line, path, &1["line"]}, &1))
      s = %{s | line_bps: Map.put(s.line_bps, path, bps)}
      s = Enum.reduce(bps, s, &print_logs/2)
      {reply(s, req, %{breakpoints: Enum.map(bps, &dap_bp(&1, path))}), :cont}
    else
      {error(s, req, "setBreakpoints needs source.path"), :cont}
    end
  end

  defp request(s, "setFunctionBreakpoints", args, req) do
    specs = List.wrap(args["breakpoints"]) |> Enum.filter(&(is_map(&1) and is_binary(&1["name"])))
    {bps, s} = Enum.map_reduce(specs, s, &new_bp(&2, {:function, &1["name"]}, &1))
    s = Enum.reduce(bps, %{s | function_bps: bps}, &print_logs/2)
    {reply(s, req, %{breakpoints: Enum.map(bps, &dap_bp(&1, nil))}), :cont}
  end

  defp request(s, "setExceptionBreakpoints", args, req) do
    filters = List.wrap(args["filters"]) ++ Enum.map(List.wrap(args["filterOptions"]), &(&1["filterId"]))
    filters = filters |> Enum.filter(&is_binary/1) |> Enum.uniq()
    {bps, s} = Enum.map_reduce(filters, s, &new_bp(&2, {:exception, &1}, %{}))
    s = %{s | exception_bps: bps}
    {reply(s, req, %{breakpoints: Enum.map(bps, &dap_bp(&1, nil))}), :cont}
  end

  defp request(s, "setDataBreakpoints", args, req) do
    {bps, s} =
      args["breakpoints"]
      |> List.wrap()
      |> Enum.map_reduce(s, fn spec, s ->
        case Map.fetch(s.data_ids, spec["dataId"]) do
          {:ok, {pid, path}} -> new_bp(s, {:data, pid, path}, spec)
          :error -> {%{id: 0, verified: false, message: "unknown dataId #{inspect(spec["dataId"])}", hits: []}, s}
        end
      end)

    s = %{s | data_bps: Enum.filter(bps, &(&1.id > 0))}
    {reply(s, req, %{breakpoints: Enum.map(bps, &dap_bp(&1, nil))}), :cont}
  end

  defp request(s, cmd, _args, req) when cmd in ["continue", "reverseContinue"] do
    s = refresh(s)
    dir = if cmd == "continue", do: :forward, else: :backward
    s = reply(s, req, if(cmd == "continue", do: %{allThreadsContinued: true}, else: nil))

    case next_hit(s, dir) do
      {id, bps} -> {stop_at(s, Query.event(id, source: s.src), reason(bps), hit_ids: Enum.map(bps, & &1.id)), :cont}
      nil -> {stop_at_edge(s, dir), :cont}
    end
  end

  defp request(s, cmd, args, req) when cmd in ["next", "stepIn", "stepOut", "stepBack"] do
    with {:ok, pid} <- thread_pid(s, args["threadId"]) do
      s = reply(s, req)
      at = position_of(s, pid)

      moved =
        case cmd do
          "next" -> Timeline.next(s.src, pid, at)
          "stepIn" -> Timeline.step_in(s.src, pid, at)
          "stepOut" -> Timeline.step_out(s.src, pid, at)
          "stepBack" -> if at == 0, do: :end, else: Timeline.step_back(s.src, pid, at)
        end

      case moved do
        {:ok, e} -> {stop_at(s, e, "step"), :cont}
        :end -> {stop_at_edge_of(s, pid, if(cmd == "stepBack", do: :backward, else: :forward)), :cont}
      end
    else
      {:error, msg} -> {error(s, req, msg), :cont}
    end
  end

  defp request(s, "pause", _args, req), do: {s |> reply(req) |> stop_at(Query.event(s.at, source: s.src), "pause"), :cont}

  defp request(s, "goto", args, req) do
    case is_integer(args["targetId"]) && Query.event(args["targetId"], source: s.src) do
      %Event{} = e -> {s |> reply(req) |> stop_at(e, "goto"), :cont}
      _ -> {error(s, req, "unknown goto target #{inspect(args["targetId"])}"), :cont}
    end
  end

  defp request(s, "restartFrame", args, req) do
    case Map.fetch(s.frames, args["frameId"]) do
      {:ok, %{call: %Event{} = call}} -> {s |> reply(req) |> stop_at(call, "restart"), :cont}
      {:ok, _} -> {error(s, req, "this frame has no recorded call to go back to"), :cont}
      :error -> {error(s, req, "unknown frameId #{inspect(args["frameId"])}"), :cont}
    end
  end

  defp request(s, cmd, args, req) do
    case Inspect.request(s, cmd, args) do
      {:ok, body, s} -> {reply(s, req, body), :cont}
      {:error, msg, s} -> {error(s, req, msg), :cont}
      :unknown -> {error(s, req, "unknown or unsupported command #{inspect(cmd)}"), :cont}
    end
  end

  defp timeout(ms) when is_integer(ms) and ms > 0, do: min(ms, 60_000)
  defp timeout(_), do: 1_000

  defp open_source(s, cmd, args) do
    case args["recording"] || (cmd == "launch" && s.recording) do
      path when is_binary(path) ->
        case Recording.load(path, default: false) do
          {:ok, rec} -> {:ok, rec, rec}
          {:error, msg} -> {:error, msg}
        end

      _ when cmd == "attach" ->
        if ElixirScope.running?(),
          do: {:ok, :live, nil},
          else: {:error, "ElixirScope is not running in this VM: attach needs a live session (or pass \"recording\")"}

      _ ->
        {:error, "launch needs a recording: {\"recording\": \"path/to/run.esrec\"} (or start mix scope.dap with one)"}
    end
  end

  defp describe_source(s) do
    what = Query.Source.describe(s.src)

    case s.bounds do
      {first, last} -> output(s, "ElixirScope: #{what}, events ##{first}..##{last}, #{length(s.threads)} processes")
      nil -> output(s, "ElixirScope: #{what} holds no event yet")
    end
  end

  defp maybe_start(%{launched: true, configured: true, started: false} = s) do
    s = %{s | started: true}

    cond do
      s.bounds == nil -> s
      s.stop_on_entry -> stop_at(s, Query.event(elem(s.bounds, 0), source: s.src), "entry")
      true -> continue_from(s, 0)
    end
  end

  defp maybe_start(s), do: s

  defp continue_from(s, at) do
    case next_hit(%{s | at: at}, :forward) do
      {id, bps} -> stop_at(s, Query.event(id, source: s.src), reason(bps), hit_ids: Enum.map(bps, & &1.id))
      nil -> stop_at_edge(s, :forward)
    end
  end

  # ---------------------------------------------------------------- breakpoints

  defp ctx(s), do: %{src: s.src, sources: s.sources, timeout: s.timeout}

  defp new_bp(s, spec, opts) do
    spec =
      case spec do
        {:line, path, line} when is_integer(line) -> {:line, path, line}
        {:line, path, _} -> {:line, path, 0}
        other -> other
      end

    bp =
      Breakpoints.resolve(s.next_bp, spec,
        [condition: opts["condition"], hit_condition: opts["hitCondition"], log_message: opts["logMessage"]], ctx(s))

    {bp, %{s | next_bp: s.next_bp + 1}}
  end

  defp dap_bp(%{id: 0} = bp, _path), do: %{verified: false, message: bp.message}

  defp dap_bp(bp, path) do
    base = %{id: bp.id, verified: bp.verified}
    base = if bp.message, do: Map.put(base, :message, bp.message), else: base

    case bp.spec do
      {:line, _, line} -> Map.merge(base, %{line: line, source: %{path: path, name: Path.basename(path)}})
      _ -> base
    end
  end

  # logpoints print over every recorded hit when they are set
  defp print_logs(%{logs: []}, s), do: s

  defp print_logs(bp, s) do
    s =
      Enum.reduce(bp.logs, s, fn %{event: e, call: call, text: text}, s ->
        extra = location(s, e, call)
        output(s, "[#{Render.pid(e.pid)} ##{e.id}] #{text}", "console", extra)
      end)

    more = length(bp.hits) - length(bp.logs)
    if more > 0, do: output(s, "… and #{more} more hits of this logpoint"), else: s
  end

  defp location(s, e, call) do
    path = call && Sources.path_of(s.sources, call.module)
    line = call && ElixirScope.DAP.Frames.line_of(e, call)
    if path && line, do: %{source: %{path: path, name: Path.basename(path)}, line: line}, else: %{}
  end

  defp all_bps(s), do: Enum.concat([Enum.concat(Map.values(s.line_bps)), s.function_bps, s.data_bps, s.exception_bps])

  # the next (or previous) event where a breakpoint that stops (not a logpoint) is hit
  defp next_hit(s, dir) do
    stopping = Enum.reject(all_bps(s), & &1.log_message)

    candidates =
      for bp <- stopping, id <- [first_hit(bp.hits, s.at, dir)], id != nil, do: {id, bp}

    case candidates do
      [] ->
        nil

      _ ->
        best = if dir == :forward, do: candidates |> Enum.map(&elem(&1, 0)) |> Enum.min(), else: candidates |> Enum.map(&elem(&1, 0)) |> Enum.max()
        {best, for({^best, bp} <- candidates, do: bp)}
    end
  end

  defp first_hit(hits, at, :forward), do: Enum.find(hits, &(&1 > at))
  defp first_hit(hits, at, :backward), do: hits |> Enum.filter(&(&1 < at)) |> List.last()

  defp reason([bp | _]) do
    case bp.spec do
      {:line, _, _} -> "breakpoint"
      {:function, _} -> "function breakpoint"
      {:data, _, _} -> "data breakpoint"
      {:exception, _} -> "exception"
    end
  end

  # the live store grows: breakpoints are resolved again before each continue
  defp refresh(%{src: :live} = s) do
    bounds = Timeline.bounds(:live)

    if bounds == s.bounds do
      s
    else
      again = fn bp -> Breakpoints.resolve(bp.id, bp.spec, [condition: bp.condition, hit_condition: bp.hit_condition, log_message: bp.log_message], ctx(s)) end

      %{s | bounds: bounds, threads: Timeline.threads(:live),
            line_bps: Map.new(s.line_bps, fn {p, bps} -> {p, Enum.map(bps, again)} end),
            function_bps: Enum.map(s.function_bps, again), data_bps: Enum.map(s.data_bps, again),
            exception_bps: Enum.map(s.exception_bps, again)}
    end
  end

  defp refresh(s), do: s

  # ---------------------------------------------------------------- stopping

  @doc false
  @spec thread_id(t(), pid()) :: {pos_integer(), t()}
  def thread_id(s, pid) do
    case Enum.find_index(s.threads, &(&1.pid == pid)) do
      nil ->
        s = %{s | threads: Timeline.threads(s.src)}
        {(Enum.find_index(s.threads, &(&1.pid == pid)) || 0) + 1, s}

      i ->
        {i + 1, s}
    end
  end

  @doc false
  @spec thread_pid(t(), term()) :: {:ok, pid()} | {:error, String.t()}
  def thread_pid(s, tid) when is_integer(tid) and tid > 0 do
    case Enum.at(s.threads, tid - 1) do
      %{pid: pid} -> {:ok, pid}
      nil -> {:error, "unknown threadId #{tid}"}
    end
  end

  def thread_pid(_s, tid), do: {:error, "unknown threadId #{inspect(tid)}"}

  # where a thread is: its latest event at or before the cursor
  defp position_of(s, pid) do
    case Timeline.position(s.src, pid, s.at) do
      %Event{id: id} -> id
      nil -> 0
    end
  end

  @doc false
  @spec stop_at(t(), Event.t() | nil, String.t(), keyword()) :: t()
  def stop_at(s, event, reason, opts \\ [])
  def stop_at(s, nil, _reason, _opts), do: stop_at_edge(s, :forward)

  def stop_at(s, %Event{} = e, reason, opts) do
    {tid, s} = thread_id(s, e.pid)
    s = %{s | at: e.id, pid: e.pid, vars: Variables.new(), frames: %{}}
    what = "event ##{e.id} (#{e.kind}#{mfa_text(s, e)}) of #{Render.pid(e.pid)}"
    description = Keyword.get(opts, :description, what)

    body = %{reason: reason, threadId: tid, allThreadsStopped: true, description: description, text: what}
    body = if ids = opts[:hit_ids], do: Map.put(body, :hitBreakpointIds, ids), else: body
    event(s, "stopped", body)
  end

  defp mfa_text(s, %Event{kind: :call} = e), do: " #{Render.mfa(e)}#{at_line(s, e)}"

  defp mfa_text(s, %Event{call_id: c} = e) when is_integer(c) and c > 0 do
    case Query.event(c, source: s.src) do
      %Event{} = call -> " in " <> Render.mfa(call)
      _ -> at_line(s, e)
    end
  end

  defp mfa_text(_s, _e), do: ""

  defp at_line(_s, %Event{line: l}) when is_integer(l) and l > 0, do: " line #{l}"
  defp at_line(_, _), do: ""

  defp stop_at_edge(s, dir) do
    case {s.bounds, dir} do
      {nil, _} -> output(s, "the recording holds no event")
      {{_, last}, :forward} -> stop_at(s, Query.event(last, source: s.src), "step", description: "reached the end of the recording (event ##{last})")
      {{first, _}, :backward} -> stop_at(s, Query.event(first, source: s.src), "entry", description: "reached the start of the recording (event ##{first})")
    end
  end

  defp stop_at_edge_of(s, pid, dir) do
    e =
      case dir do
        :forward -> Query.events(source: s.src, pid: pid, order: :desc, limit: 1)
        :backward -> Query.events(source: s.src, pid: pid, limit: 1)
      end

    case e do
      [e] ->
        edge = if dir == :forward, do: "last", else: "first"
        stop_at(s, e, "step", description: "#{Render.pid(pid)} has no event further that way: its #{edge} event (##{e.id})")

      _ ->
        stop_at_edge(s, dir)
    end
  end
end
