defmodule ElixirScope.DAP.Frames do
  @moduledoc """
  What the debug adapter shows of a process at an event: its frames (one per
  open recorded call, innermost first, with file and line), and for a frame
  its bindings (arguments named from the source's clause head, locals
  captured so far), its GenServer state before/after the callback and its
  return value or exception once the cursor reached them.

  A process with no open recorded call shows one idle frame holding its
  latest GenServer state, so that a waiting GenServer can be inspected too.
  """

  alias ElixirScope.{Event, Query}
  alias ElixirScope.DAP.{Sources, Timeline}
  alias ElixirScope.Web.Render

  @type frame :: %{
          pid: pid(),
          call: Event.t() | nil,
          line: non_neg_integer(),
          path: String.t() | nil,
          module: module() | nil,
          bound: non_neg_integer(),
          at: non_neg_integer()
        }

  @doc """
  The frames of `pid` at event `at` (innermost first). `bound` of a frame is
  the last event id that belongs to its present: `at` for the innermost, the
  start of the frame it called for the others.
  """
  @spec frames(Query.Source.t(), Sources.t(), pid(), non_neg_integer()) :: [frame()]
  def frames(src, sources, pid, at) do
    {calls, _complete?} = Timeline.stack(src, pid, at)
    here = Query.event(at, source: src)
    stack = stacktrace(here, pid)

    case calls do
      [] ->
        [%{pid: pid, call: nil, line: 0, path: nil, module: nil, bound: at, at: at}]

      _ ->
        bounds = [at | Enum.map(calls, & &1.id)]

        calls
        |> Enum.zip(bounds)
        |> Enum.map(fn {call, bound} ->
          line = stack_line(stack, call) || current_line(src, call, bound)
          %{pid: pid, call: call, line: line, path: path(sources, call.module, stack), module: call.module, bound: bound, at: at}
        end)
    end
  end

  defp stacktrace(%Event{kind: :exception, pid: pid, payload: {_, _, st}}, pid) when is_list(st), do: st
  defp stacktrace(_, _), do: []

  defp path(sources, module, stack) do
    Sources.path_of(sources, module) ||
      Enum.find_value(stack, fn
        {^module, _, _, loc} when is_list(loc) ->
          file = loc[:file] && Path.expand(to_string(loc[:file]), sources.root)
          if file && File.regular?(file), do: file

        _ ->
          nil
      end)
  end

  @doc "The line of `event` inside the call `call` (an exception's line comes from its stacktrace), or nil."
  @spec line_of(Event.t(), Event.t()) :: pos_integer() | nil
  def line_of(%Event{kind: :exception, payload: {_, _, st}} = e, call) when is_list(st),
    do: stack_line(st, call) || plain_line(e)

  def line_of(e, _call), do: plain_line(e)

  defp plain_line(%Event{line: l}) when is_integer(l) and l > 0, do: l
  defp plain_line(_), do: nil

  defp stack_line(stack, %Event{module: m, function: f, arity: a}) do
    Enum.find_value(stack, fn
      {^m, ^f, arity, loc} when is_list(loc) and (arity == a or (is_list(arity) and length(arity) == a)) -> loc[:line]
      _ -> nil
    end)
  end

  # the line of the latest own event of `call` at or before `bound`
  defp current_line(src, call, bound) do
    case Query.events(source: src, call_id: call.id, before_id: bound + 1, order: :desc, limit: 200) do
      evs when is_list(evs) -> Enum.find_value(evs, fn e -> line_of(e, call) end) || call.line
      _ -> call.line
    end
  end

  @doc """
  The bindings of a frame: `%{args: [{label, value}], locals: [{name, value}],
  vars: [{atom, value}]}`. `args` labels are the parameter names (or the
  pattern's text, followed by the names it binds); `vars` is what an
  expression evaluated in the frame sees (arguments, then locals over them).
  """
  @spec bindings(Query.Source.t(), Sources.t(), frame()) :: map()
  def bindings(_src, _sources, %{call: nil}), do: %{args: [], locals: [], vars: []}

  def bindings(src, sources, %{call: call, bound: bound}), do: bindings_of(sources, call, locals(src, call, bound))

  @doc "The bindings of the call `call` given its locals so far (`[{name, value}]` or a map)."
  @spec bindings_of(Sources.t(), Event.t(), [{term(), term()}] | map()) :: map()
  def bindings_of(sources, call, locals) do
    args = if is_list(call.payload), do: call.payload, else: []
    patterns = Sources.params(sources, {call.module, call.function, call.arity}, call.line)

    {labelled, arg_vars} =
      case patterns do
        ps when is_list(ps) and length(ps) == length(args) ->
          ps
          |> Enum.zip(args)
          |> Enum.map(fn {p, v} -> label(p, v) end)
          |> Enum.unzip()
          |> then(fn {ls, vs} -> {Enum.concat(ls), Enum.concat(vs)} end)

        _ ->
          {args |> Enum.with_index(1) |> Enum.map(fn {v, i} -> {"arg#{i}", v} end), []}
      end

    locals = Enum.sort_by(locals, fn {k, _} -> to_string(k) end)
    vars = Map.to_list(Map.new(arg_vars ++ for({k, v} <- locals, is_atom(k), do: {k, v})))
    %{args: labelled, locals: locals, vars: vars}
  end

  defp label({:\\, _, [p, _]}, v), do: label(p, v)

  defp label({name, _, ctx} = p, v) when is_atom(name) and is_atom(ctx), do: {[{Atom.to_string(name), v}], Sources.bind(p, v)}

  defp label(p, v) do
    bound = Sources.bind(p, v)
    text = p |> Macro.to_string() |> Render.cut(60)
    {[{text, v} | Enum.map(bound, fn {n, x} -> {Atom.to_string(n), x} end)], bound}
  end

  # every local snapshot of the call up to `bound`, merged (latest value of each name)
  defp locals(src, call, bound) do
    case Query.events(source: src, call_id: call.id, kind: :local, before_id: bound + 1) do
      evs when is_list(evs) ->
        evs
        |> Enum.filter(&is_map(&1.payload))
        |> Enum.reduce(%{}, &Map.merge(&2, &1.payload))
        |> Map.to_list()

      _ ->
        []
    end
  end

  @doc """
  The scopes of a frame: `[{name, kind, value}]` where kind is `:bindings`
  (value: `[{label, value}]`), `{:state, pid}` (a GenServer state, the root of
  data breakpoint paths) or `:value`.
  """
  @spec scopes(Query.Source.t(), Sources.t(), frame()) :: [{String.t(), term(), term()}]
  def scopes(src, _sources, %{call: nil, pid: pid, at: at}) do
    case Query.state_at(pid, {:event, at}, source: src) do
      {:ok, state, _e} -> [{"GenServer state", {:state, pid}, state}]
      _ -> []
    end
  end

  def scopes(src, sources, %{call: call, bound: bound, at: at, pid: pid} = frame) do
    b = bindings(src, sources, frame)

    states =
      # not by call_id: a callback's state after is recorded after its return
      case Query.events(source: src, pid: pid, kind: :state, after_id: call.id - 1, before_id: bound + 1) do
        evs when is_list(evs) ->
          for %Event{payload: {phase, state}, call_id: c} <- evs, c == call.id, phase in [:before, :after],
              do: {"GenServer state (#{phase})", {:state, pid}, state}

        _ ->
          []
      end

    ending =
      case call.return_id && call.return_id <= at && Query.event(call.return_id, source: src) do
        %Event{kind: :return, payload: v} -> [{"Return value", :value, v}]
        %Event{kind: :exception, payload: v} -> [{"Exception", :value, v}]
        %Event{kind: :tail_call, payload: v} -> [{"Tail call", :value, v}]
        _ -> []
      end

    [{"Arguments", :bindings, b.args}, {"Locals", :bindings, b.locals}] ++ Enum.uniq_by(states, &elem(&1, 0)) ++ ending
  end

  @doc "A frame's display name."
  @spec name(frame()) :: String.t()
  def name(%{call: nil, pid: pid}), do: "(no recorded call open) #{Render.pid(pid)}"
  def name(%{call: call}), do: Render.mfa(call)
end
