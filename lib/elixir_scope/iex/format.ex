defmodule ElixirScope.IEx.Format do
  @moduledoc """
  Text rendering for the IEx helpers: one line per event with its time
  relative to the start of the recording and in wall-clock form, values
  inspected with limits (cut parts show as `...`, parts cut at capture time as
  `#Truncated<…>`), lines cut with a visible `…(+N chars)` marker, and
  IO.ANSI colours when enabled (`IO.ANSI.enabled?/0`, or `colors: true|false`
  in the process dictionary key `:elixir_scope_colors`).
  """

  alias ElixirScope.Event
  alias ElixirScope.Query.Source

  @width 160

  @doc "Whether to colour output."
  @spec colors?() :: boolean()
  def colors?, do: Process.get(:elixir_scope_colors, IO.ANSI.enabled?())

  @doc "Wraps text in an ANSI colour when colours are on."
  @spec color(iodata(), atom()) :: iodata()
  def color(text, name), do: if(colors?(), do: [apply(IO.ANSI, name, []), text, IO.ANSI.reset()], else: text)

  @doc "A value, inspected with limits (structs of modules not loaded still print as structs)."
  @spec value(term(), pos_integer()) :: String.t()
  def value(term, limit \\ 12), do: ElixirScope.Report.Format.text(term, limit: limit, printable_limit: 80, width: :infinity)

  @doc "A value on several lines (states, explanations), bounded like every rendering of a captured value."
  @spec pretty(term(), pos_integer()) :: String.t()
  def pretty(term, limit \\ 50),
    do: ElixirScope.Report.Format.text(term, pretty: true, limit: limit, printable_limit: 200)

  @doc "Cuts a line to the display width, with a visible marker."
  @spec cut(String.t(), pos_integer()) :: String.t()
  def cut(line, width \\ @width) do
    len = String.length(line)
    if len > width, do: String.slice(line, 0, width) <> "…(+#{len - width} chars)", else: line
  end

  @doc "Time since the start of the source, e.g. `+12.345ms`."
  @spec rel(Event.t(), Source.t()) :: String.t()
  def rel(%Event{ts: ts}, source) do
    case Source.clock(source) do
      {mono0, _} -> "+" <> duration(ts - mono0)
      nil -> "t=#{ts}"
    end
  end

  @doc "A duration in ns, human-sized."
  @spec duration(integer() | nil) :: String.t()
  def duration(nil), do: "?"
  def duration(ns) when ns < 0, do: "-" <> duration(-ns)
  def duration(ns) when ns < 1_000, do: "#{ns}ns"
  def duration(ns) when ns < 1_000_000, do: :erlang.float_to_binary(ns / 1_000, decimals: 1) <> "µs"
  def duration(ns) when ns < 1_000_000_000, do: :erlang.float_to_binary(ns / 1_000_000, decimals: 3) <> "ms"
  def duration(ns), do: :erlang.float_to_binary(ns / 1_000_000_000, decimals: 3) <> "s"

  @doc "Wall-clock time of an event (UTC, ms)."
  @spec wall(Event.t()) :: String.t()
  def wall(%Event{wall_time: nil}), do: "--:--:--.---"

  def wall(%Event{wall_time: us}) do
    us |> DateTime.from_unix!(:microsecond) |> DateTime.truncate(:millisecond) |> DateTime.to_time() |> Time.to_string()
  end

  @doc "A pid, with its registered name when known."
  @spec pid(pid() | term(), map()) :: String.t()
  def pid(p, names \\ %{}) do
    case Map.get(names, p) do
      nil -> on_node(p) <> inspect(p)
      name -> "#{on_node(p)}#{inspect(p)}(#{inspect(name)})"
    end
  end

  # a process of another node (a cluster recording) says which, by the node's short name
  defp on_node(p) when is_pid(p) and node(p) != node(), do: (p |> node() |> Atom.to_string() |> String.replace(~r/@.*/, "")) <> ":"
  defp on_node(_p), do: ""

  @doc "`M.f/a`."
  @spec mfa(Event.t()) :: String.t()
  def mfa(%Event{module: nil}), do: "?"
  def mfa(%Event{module: m, function: f, arity: a}), do: "#{inspect(m)}.#{f}/#{a || "?"}"

  @doc "One line describing an event."
  @spec line(Event.t(), Source.t(), map()) :: String.t()
  def line(%Event{} = e, source, names \\ %{}) do
    head = "##{e.id} #{rel(e, source)} #{wall(e)} #{pid(e.pid, names)} "
    body = describe(e) <> if(e.truncated?, do: " [truncated]", else: "")
    line = cut(head <> body)
    # colour after cutting so escape codes never count toward the width (head is ASCII and never cut)
    <<h::binary-size(byte_size(head)), b::binary>> = line
    IO.iodata_to_binary([color(h, :faint), color(b, kind_color(e.kind))])
  end

  defp kind_color(k) when k in [:call, :return], do: :cyan
  defp kind_color(:exception), do: :red
  defp kind_color(k) when k in [:send, :receive], do: :magenta
  defp kind_color(:state), do: :yellow
  defp kind_color(k) when k in [:local, :expr], do: :green
  defp kind_color(_), do: :default_color

  @doc "The kind-specific text of an event."
  @spec describe(Event.t()) :: String.t()
  def describe(%Event{kind: :call, payload: args} = e) when is_list(args),
    do: "→ #{mfa(e)} #{value(args)}#{line_no(e)}"

  def describe(%Event{kind: :call, payload: args} = e), do: "→ #{mfa(e)} #{value(args)}#{line_no(e)}"
  def describe(%Event{kind: :return, payload: v} = e), do: "← #{mfa(e)} = #{value(v)}"

  def describe(%Event{kind: :exception, payload: payload} = e),
    do: "✗ #{mfa(e)} #{exception(payload)}"

  def describe(%Event{kind: :tail_call, payload: {m, f, args}} = e),
    do: "↪ #{mfa(e)} tail-calls #{inspect(m)}.#{f}/#{length(List.wrap(args))}"

  def describe(%Event{kind: :local, payload: vars} = e) when is_map(vars),
    do: "  vars #{Enum.map_join(Enum.sort(vars), ", ", fn {k, v} -> "#{k}=#{value(v, 8)}" end)}#{line_no(e)}"

  def describe(%Event{kind: :expr, payload: {src, v}} = e), do: "  expr `#{src}` = #{value(v)}#{line_no(e)}"
  def describe(%Event{kind: :state, payload: {phase, st}}), do: "  state (#{phase}) #{value(st)}"
  def describe(%Event{kind: :send, function: :rpc, payload: {dest, req}} = e), do: "⇉ rpc → #{value(dest)}: #{rpc_request(req)}#{line_no(e)}"
  def describe(%Event{kind: :receive, function: :rpc, payload: {:return, v}}), do: "⇇ rpc returned #{value(v)}"
  def describe(%Event{kind: :receive, function: :rpc, payload: {:raise, k, r}}), do: "⇇ rpc raised #{exception({k, r, []})}"
  def describe(%Event{kind: :send, payload: {dest, msg}}), do: "✉ send → #{value(dest)}: #{value(msg)}"
  def describe(%Event{kind: :receive} = e), do: "✉ recv #{value(Event.message(e))}#{receive_note(e)}"
  # a process whose parent is on another node: the observer records its :spawn on its own behalf
  def describe(%Event{kind: :spawn, pid: pid, payload: {pid, %{parent: parent}}}) when is_pid(parent),
    do: "started by #{value(parent)} of #{node(parent)}"

  def describe(%Event{kind: :spawn, payload: child}), do: "spawn #{value(child)}"
  def describe(%Event{kind: :exit, payload: reason}), do: "exit #{value(reason)}"
  def describe(%Event{kind: :custom, payload: {name, data}}), do: "custom #{name} #{value(data)}"
  def describe(%Event{kind: k, payload: p}), do: "#{k} #{value(p)}"

  @doc "An exception payload in one line, as everywhere else (`ArithmeticError: bad argument…`)."
  @spec exception(term()) :: String.t()
  def exception(payload), do: ElixirScope.Report.Format.exception_line(payload)

  defp rpc_request({m, f, args}) when is_atom(m) and is_atom(f) and is_list(args),
    do: "#{inspect(m)}.#{f}(#{Enum.map_join(args, ", ", &value(&1, 8))})"
  defp rpc_request(fun), do: value(fun)

  defp line_no(%Event{line: l}) when is_integer(l) and l > 0, do: " (line #{l})"
  defp line_no(_), do: ""

  @doc "How a receive took its message, as a short note (the clause, the wait), or \"\"."
  @spec receive_note(Event.t()) :: String.t()
  def receive_note(e) do
    case Event.receive_info(e) do
      %{clause: :after, waited_us: w} when is_integer(w) -> " (after: timed out, waited #{w} µs)"
      %{clause: :after} -> " (after: timed out)"
      %{clause: c, waited_us: w} when is_integer(c) and is_integer(w) -> " (clause #{c}, waited #{w} µs)"
      %{clause: c} when is_integer(c) -> " (clause #{c})"
      %{clause: c} when c in [:call, :cast, :info, :event] -> " (#{c})"
      _ -> ""
    end
  end
end
