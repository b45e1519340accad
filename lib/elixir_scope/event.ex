defmodule ElixirScope.Event do
  @moduledoc """
  One recorded event, as read back from the store.

  `payload` depends on `kind`: `:call` the argument list, `:return` the value,
  `:exception` `{kind, reason, stacktrace}`, `:tail_call` `{module, function, args}`,
  `:local` a map of variable names to values, `:expr` `{source, value}`,
  `:state` `{phase, state}`, `:send` `{dest, message}` (its `function` says how it was sent:
  `:send`, `:send_after`, `:call`, `:cast`, `:reply`, or `:rpc` for an `:erpc`/`:rpc` call's request,
  `{node or nodes, {m, f, args} or fun}`, whose outcome is a `:receive` with function `:rpc` and
  payload `{:return, value}` or `{:raise, class, reason}`; see `ElixirScope.Query.Rpc`), `:receive` the message (recorded by compiled
  code as `{message, %{clause: clause, waited_us: us}}` with `function: :receive` (`us` is nil for
  a compiled receive: see docs/ast_transformer.md), where `clause` is
  the index of the receive clause that took it, `:after`, or the OTP callback that took it:
  `:call`, `:cast`, `:info`, `:event`; `message/1` gives the message of either form),
  `:spawn` the child pid (recorded by the parent by hand), or `{child, info}`: recorded by compiled
  code in the parent just after a spawning call returned (function `:call_site`; `info` has
  `parent`, `initial_call`, `via`: `:spawn`, `:node` or `:task`), or on the parent's behalf by the
  session's lifecycle observer (`ElixirScope.Capture.Lifecycle`, function `:observed`), where `info`
  has `parent`, `child_id` (its id in its supervisor), `ancestors`, `callers`, `initial_call`,
  `name`, `links`, `monitors`; `announcing_spawns/1` picks the one that announces each child;
  `:exit` the reason (recorded on the process's behalf by the observer: function `:down`, or
  `:gone` with reason nil when the process had ended before it was seen), `:custom` `{name, data}`. `spawn_info/1` and `exit_reason/1` read these forms.
  Parts cut by the capture limits are `%ElixirScope.Truncated{}`.
  """

  alias ElixirScope.Truncated

  @no_spawn_info %{parent: nil, child_id: nil, initial_call: nil, name: nil, ancestors: [], callers: [], links: [], monitors: [],
                   via: nil}

  @kinds [:call, :return, :exception, :tail_call, :local, :expr, :state, :send, :receive, :spawn, :exit, :custom]

  defstruct [
    :id,
    :ts,
    :wall_time,
    :pid,
    :kind,
    :module,
    :function,
    :arity,
    :line,
    :call_id,
    :link,
    :correlation_id,
    :return_id,
    :payload,
    truncated?: false,
    redacted?: false
  ]

  @type kind ::
          :call | :return | :exception | :tail_call | :local | :expr | :state | :send | :receive | :spawn | :exit | :custom

  @type t :: %__MODULE__{
          id: pos_integer(),
          ts: non_neg_integer(),
          wall_time: integer() | nil,
          pid: pid() | nil,
          kind: kind(),
          module: module() | nil,
          function: atom() | nil,
          arity: non_neg_integer() | nil,
          line: non_neg_integer(),
          call_id: non_neg_integer(),
          link: non_neg_integer(),
          correlation_id: non_neg_integer() | nil,
          return_id: non_neg_integer() | nil,
          payload: term(),
          truncated?: boolean(),
          redacted?: boolean()
        }

  @doc "The message of a `:send` or `:receive` event (nil for other kinds)."
  @spec message(t()) :: term()
  def message(%__MODULE__{kind: :receive, function: :receive, payload: {msg, %{clause: _}}}), do: msg
  def message(%__MODULE__{kind: :receive, payload: msg}), do: msg
  def message(%__MODULE__{kind: :send, payload: {_dest, msg}}), do: msg
  def message(%__MODULE__{}), do: nil

  @doc "How a compiled `receive` took its message: `%{clause: clause, waited_us: us}`, or nil."
  @spec receive_info(t()) :: %{clause: term(), waited_us: non_neg_integer() | nil} | nil
  def receive_info(%__MODULE__{kind: :receive, function: :receive, payload: {_msg, %{clause: _} = info}}), do: info
  def receive_info(%__MODULE__{}), do: nil

  @doc """
  What a `:spawn` event says: `%{child: pid, parent: pid | nil, child_id: term, initial_call: mfa |
  nil, name: atom | nil, ancestors: list, callers: list, links: list, monitors: list, via: atom |
  nil}`; nil for other kinds.
  A spawn recorded by hand (payload the child) has the emitting process as parent.
  """
  @spec spawn_info(t()) :: map() | nil
  def spawn_info(%__MODULE__{kind: :spawn, payload: {child, info}}) when is_pid(child) and is_map(info),
    do: @no_spawn_info |> Map.merge(info) |> Map.put(:child, child)

  def spawn_info(%__MODULE__{kind: :spawn, payload: child} = e) when is_pid(child),
    do: %{@no_spawn_info | parent: e.pid} |> Map.put(:child, child)

  def spawn_info(%__MODULE__{}), do: nil

  @doc """
  The `:spawn` that announces each child among `events`, `%{child => event}`: the one compiled code
  recorded at the call site (`:call_site`) when there is one, else the lifecycle observer's
  (`:observed`).
  """
  @spec announcing_spawns([t()]) :: %{optional(pid()) => t()}
  def announcing_spawns(events) do
    for %__MODULE__{kind: :spawn, function: f} = e <- events, f in [:observed, :call_site], reduce: %{} do
      acc -> Map.update(acc, spawn_info(e).child, e, &if(&1.function == :call_site, do: &1, else: e))
    end
  end

  @doc "The reason of an `:exit` event: `{:ok, reason}`, or `:unknown` (the process ended unseen); nil for other kinds."
  @spec exit_reason(t()) :: {:ok, term()} | :unknown | nil
  def exit_reason(%__MODULE__{kind: :exit, function: :gone}), do: :unknown
  def exit_reason(%__MODULE__{kind: :exit, payload: reason}), do: {:ok, reason}
  def exit_reason(%__MODULE__{}), do: nil

  @doc "Whether an event is an `:exit` with a known reason other than `:normal`, `:shutdown` or `{:shutdown, _}`."
  @spec crash_exit?(t()) :: boolean()
  def crash_exit?(%__MODULE__{} = e) do
    case exit_reason(e) do
      {:ok, reason} -> reason not in [:normal, :shutdown] and not match?({:shutdown, _}, reason)
      _ -> false
    end
  end

  @doc """
  The line of `module`'s code an event points at: its own line, else, for an exception
  (recorded where the call ended, without a line), the line of the innermost stacktrace
  frame in `module` — where it raised. 0 when neither is known.
  """
  @spec source_line(t(), module() | nil) :: non_neg_integer()
  def source_line(%__MODULE__{line: line}, _module) when is_integer(line) and line > 0, do: line

  def source_line(%__MODULE__{kind: :exception, payload: {_kind, _reason, stack}}, module) when is_list(stack) do
    Enum.find_value(stack, 0, fn
      {^module, _f, _a, info} when is_list(info) -> with l when is_integer(l) and l > 0 <- info[:line], do: l, else: (_ -> nil)
      _ -> nil
    end)
  end

  def source_line(%__MODULE__{}, _module), do: 0

  @doc "Every event kind."
  @spec kinds() :: [kind()]
  def kinds, do: @kinds

  @doc """
  Builds an event from the NIF's tuple. `clock` is `{monotonic_ns_at_start, system_us_at_start}`
  and gives `wall_time` (system time in microseconds).
  """
  @spec from_tuple(tuple(), {integer(), integer()} | nil) :: t()
  def from_tuple(tuple, clock), do: from_tuple(tuple, clock, __MODULE__)

  # the struct as from_row/2 builds it (one shared key tuple)
  defp from_tuple({id, ts, pid, kind, module, function, arity, line, call_id, link, flags, payload}, clock, struct) do
    truncated? = Bitwise.band(flags, 1) != 0

    %{
      __struct__: struct,
      id: id,
      ts: ts,
      wall_time: wall_time(ts, clock),
      pid: pid,
      kind: kind,
      module: module,
      function: function,
      arity: arity,
      line: line,
      call_id: call_id,
      link: link,
      correlation_id: if(kind in [:call, :return, :exception, :tail_call, :local, :expr, :state], do: nil, else: nonzero(link)),
      return_id: if(kind == :call, do: nonzero(link), else: nil),
      payload: decode_payload(payload, truncated?),
      truncated?: truncated?,
      redacted?: Bitwise.band(flags, 2) != 0
    }
  end

  @doc """
  The events of the native `query_events/3`: `{rows, truncated_count}`, where each row holds the
  fields of the struct in order, computed as `from_tuple/2` does (the payload decoded); the
  truncation markers of truncated payloads are expanded here.
  """
  @spec from_store({[tuple()], non_neg_integer()}) :: [t()]
  def from_store({rows, 0}), do: for(row <- rows, do: from_row(row, __MODULE__))

  def from_store({rows, _truncated}), do: for(row <- rows, do: row |> from_row(__MODULE__) |> expand_truncated())

  @doc """
  The event with the truncation markers of its payload expanded when it is truncated (the native
  reads leave them to this: `from_store/1`, the native call trees).
  """
  @spec expand_truncated(t()) :: t()
  def expand_truncated(%__MODULE__{truncated?: true, payload: payload} = e), do: %{e | payload: Truncated.expand(payload)}
  def expand_truncated(%__MODULE__{} = e), do: e

  # A new map with every key shares one literal key tuple: 20 words an event. The module comes in
  # as an argument so that the compiler does not fold it into a literal %{__struct__: …} to insert
  # into (as it does `%__MODULE__{id: id, …}`): that copies the 17 keys into each event, 38 words,
  # twice the allocation and GC of a large read.
  defp from_row({id, ts, wall_time, pid, kind, module, function, arity, line, call_id, link, correlation_id, return_id, payload,
                 truncated?, redacted?}, struct) do
    %{__struct__: struct, id: id, ts: ts, wall_time: wall_time, pid: pid, kind: kind, module: module, function: function,
      arity: arity, line: line, call_id: call_id, link: link, correlation_id: correlation_id, return_id: return_id,
      payload: payload, truncated?: truncated?, redacted?: redacted?}
  end

  defp nonzero(0), do: nil
  defp nonzero(n), do: n

  defp wall_time(_ts, nil), do: nil
  defp wall_time(ts, {mono0, sys0}), do: sys0 + div(ts - mono0, 1000)

  @doc "Decodes an encoded payload; truncation markers become `%ElixirScope.Truncated{}`."
  @spec decode_payload(binary(), boolean()) :: term()
  def decode_payload("", _), do: nil
  def decode_payload(bin, false), do: :erlang.binary_to_term(bin)
  def decode_payload(bin, true), do: bin |> :erlang.binary_to_term() |> Truncated.expand()
end
