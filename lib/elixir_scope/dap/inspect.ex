defmodule ElixirScope.DAP.Inspect do
  @moduledoc """
  The debug adapter's read-only requests, answered at the session's cursor:
  `stackTrace`, `scopes`, `variables`, `evaluate`, `source`, `exceptionInfo`,
  `dataBreakpointInfo` and `gotoTargets` (see `ElixirScope.DAP.Session`).
  """

  alias ElixirScope.{Event, Query}
  alias ElixirScope.DAP.{Breakpoints, Eval, Frames, Session, Sources, Variables}
  alias ElixirScope.Web.Render

  @doc "Answers `cmd`: `{:ok, body, session}`, `{:error, message, session}` or `:unknown`."
  @spec request(Session.t(), String.t(), map()) :: {:ok, map(), Session.t()} | {:error, String.t(), Session.t()} | :unknown
  def request(s, "stackTrace", args) do
    case Session.thread_pid(s, args["threadId"]) do
      {:ok, pid} ->
        frames = Frames.frames(s.src, s.sources, pid, s.at)
        start = nonneg(args["startFrame"])
        levels = nonneg(args["levels"])
        shown = frames |> Enum.drop(start) |> then(&if(levels > 0, do: Enum.take(&1, levels), else: &1))
        {dap_frames, s} = Enum.map_reduce(shown, s, &dap_frame/2)
        {:ok, %{stackFrames: dap_frames, totalFrames: length(frames)}, s}

      {:error, msg} ->
        {:error, msg, s}
    end
  end

  def request(s, "scopes", args) do
    with {:ok, frame} <- frame(s, args["frameId"]) do
      {scopes, vars} =
        s.src
        |> Frames.scopes(s.sources, frame)
        |> Enum.map_reduce(s.vars, fn {name, kind, value}, vars ->
          {ref, vars} =
            case kind do
              :bindings -> Variables.bindings(vars, value)
              {:state, pid} -> Variables.value(vars, value, {:state, pid, []}, "state")
              :value -> Variables.value(vars, value)
            end

          {scope(name, ref, kind, value), vars}
        end)

      {:ok, %{scopes: scopes}, %{s | vars: vars}}
    else
      {:error, msg} -> {:error, msg, s}
    end
  end

  def request(s, "variables", args) do
    case Variables.children(s.vars, args["variablesReference"], nonneg(args["start"]), positive(args["count"])) do
      {:ok, vars, table} -> {:ok, %{variables: vars}, %{s | vars: table}}
      {:error, msg} -> {:error, msg, s}
    end
  end

  def request(s, "evaluate", args) do
    expr = args["expression"]

    with true <- is_binary(expr) || {:error, "evaluate needs an expression"},
         {:ok, frame} <- eval_frame(s, args["frameId"]),
         {:ok, value, out} <- Eval.eval(expr, eval_vars(s, frame), timeout: s.timeout) do
      s = if out != "", do: Session.output(s, String.trim_trailing(out), "stdout"), else: s
      {ref, vars} = Variables.value(s.vars, value, nil, expr)
      {:ok, %{result: Render.short(value, 8_000), type: Variables.type(value), variablesReference: ref}, %{s | vars: vars}}
    else
      {:error, msg} -> {:error, msg, s}
    end
  end

  def request(s, "source", args) do
    ref = args["sourceReference"] || get_in(args, ["source", "sourceReference"])

    case Map.fetch(s.source_refs, ref) do
      {:ok, module} ->
        case Sources.text(s.sources, module, source: s.src) do
          {:file, path} -> read(path, s)
          {:recorded, text} -> {:ok, %{content: text, mimeType: "text/x-elixir"}, s}
        end

      :error ->
        path = get_in(args, ["source", "path"])

        if is_binary(path) and known_path?(s, Path.expand(path)),
          do: read(Path.expand(path), s),
          else: {:error, "unknown source (sourceReference #{inspect(ref)})", s}
    end
  end

  def request(s, "exceptionInfo", args) do
    with {:ok, pid} <- Session.thread_pid(s, args["threadId"]),
         %Event{kind: :exception, payload: payload} <- Query.events(source: s.src, pid: pid, before_id: s.at + 1, order: :desc, limit: 1) |> List.wrap() |> List.first() do
      info = Render.exception(payload)
      type = exception_type(payload)

      {:ok,
       %{exceptionId: type, description: info.message, breakMode: "always",
         details: %{message: info.message, typeName: type, stackTrace: Enum.join(info.stacktrace, "\n")}}, s}
    else
      {:error, msg} -> {:error, msg, s}
      _ -> {:error, "the thread is not at an exception", s}
    end
  end

  def request(s, "dataBreakpointInfo", args) do
    with ref when is_integer(ref) <- args["variablesReference"],
         name when is_binary(name) <- args["name"],
         {:ok, pid, path} <- Variables.data_path(s.vars, ref, name) do
      text = Variables.path_text(path)
      id = "state #{Render.pid(pid)} #{text}"
      description = "#{text} of #{thread_name(s, pid)} (where it changes, forwards or backwards)"
      {:ok, %{dataId: id, description: description, accessTypes: ["write"], canPersist: false},
       %{s | data_ids: Map.put(s.data_ids, id, {pid, path})}}
    else
      _ -> {:ok, %{dataId: nil, description: "only values inside a GenServer state scope can be watched"}, s}
    end
  end

  def request(s, "gotoTargets", args) do
    path = get_in(args, ["source", "path"])
    line = args["line"]

    if is_binary(path) and is_integer(line) do
      ctx = %{src: s.src, sources: s.sources, timeout: s.timeout}
      hits = ctx |> Breakpoints.line_candidates(Path.expand(path), [line]) |> Map.get(line, []) |> Enum.take(500)

      targets =
        for {e, call, _locals} <- hits do
          %{id: e.id, line: line, label: "##{e.id} #{Render.pid(e.pid)} #{e.kind} in #{Render.mfa(call)}"}
        end

      {:ok, %{targets: targets}, s}
    else
      {:error, "gotoTargets needs source.path and line", s}
    end
  end

  def request(_s, _cmd, _args), do: :unknown

  # ---------------------------------------------------------------- helpers

  defp nonneg(n) when is_integer(n) and n > 0, do: n
  defp nonneg(_), do: 0

  defp positive(n) when is_integer(n) and n > 0, do: n
  defp positive(_), do: nil

  defp frame(s, id) do
    case Map.fetch(s.frames, id) do
      {:ok, frame} -> {:ok, frame}
      :error -> {:error, "unknown frameId #{inspect(id)} (frames last until the next step)"}
    end
  end

  # no frameId: the innermost frame of the thread the session stopped in
  defp eval_frame(s, nil) do
    case s.pid && Frames.frames(s.src, s.sources, s.pid, s.at) do
      [top | _] -> {:ok, top}
      _ -> {:ok, nil}
    end
  end

  defp eval_frame(s, id), do: frame(s, id)

  defp eval_vars(_s, nil), do: []
  defp eval_vars(s, %{call: nil, pid: pid, at: at}) do
    case Query.state_at(pid, {:event, at}, source: s.src) do
      {:ok, state, _} -> [state: state]
      _ -> []
    end
  end

  defp eval_vars(s, frame), do: Frames.bindings(s.src, s.sources, frame).vars

  defp dap_frame(frame, s) do
    id = s.next_frame
    s = %{s | next_frame: id + 1, frames: Map.put(s.frames, id, frame)}
    base = %{id: id, name: Frames.name(frame), line: frame.line, column: if(frame.line > 0, do: 1, else: 0)}

    cond do
      frame.call == nil ->
        {Map.put(base, :presentationHint, "label"), s}

      frame.path ->
        {Map.put(base, :source, %{name: Path.basename(frame.path), path: frame.path}), s}

      true ->
        {ref, s} = source_ref(s, frame.module)
        {Map.put(base, :source, %{name: "#{Render.mod(frame.module)} (recorded)", sourceReference: ref, origin: "recorded expressions"}), s}
    end
  end

  defp source_ref(s, module) do
    case Enum.find(s.source_refs, fn {_, m} -> m == module end) do
      {ref, _} -> {ref, s}
      nil ->
        ref = map_size(s.source_refs) + 1
        {ref, %{s | source_refs: Map.put(s.source_refs, ref, module)}}
    end
  end

  defp scope(name, ref, kind, value) do
    hint =
      case kind do
        :bindings -> if name == "Arguments", do: "arguments", else: "locals"
        _ -> nil
      end

    base = %{name: name, variablesReference: ref, expensive: false}
    base = if hint, do: Map.put(base, :presentationHint, hint), else: base
    if kind == :bindings, do: Map.put(base, :namedVariables, length(value)), else: base
  end

  # only Elixir files under the source root or defining recorded modules are served
  defp known_path?(s, path) do
    Path.extname(path) in [".ex", ".exs"] and
      (String.starts_with?(path, s.sources.root <> "/") or Enum.any?(s.source_refs, fn {_, m} -> Sources.path_of(s.sources, m) == path end))
  end

  defp read(path, s) do
    case File.read(path) do
      {:ok, text} -> {:ok, %{content: text, mimeType: "text/x-elixir"}, s}
      {:error, reason} -> {:error, "cannot read #{path}: #{:file.format_error(reason)}", s}
    end
  end

  defp exception_type({:error, %{__struct__: m}, _}), do: Render.mod(m)
  defp exception_type({:error, reason, _}), do: Render.mod(Exception.normalize(:error, reason, []).__struct__)
  defp exception_type({kind, _, _}), do: to_string(kind)
  defp exception_type(_), do: "exception"

  defp thread_name(s, pid) do
    case Enum.find(s.threads, &(&1.pid == pid)) do
      %{name: name} -> name
      nil -> Render.pid(pid)
    end
  end
end
