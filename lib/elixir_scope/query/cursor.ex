defmodule ElixirScope.Query.Cursor do
  @moduledoc """
  A position in the recorded events, for stepping — the "scrub" of the
  execution cinema. A cursor follows one process (`pid:`) or all processes in
  time (id) order (`pid: nil`), over the live session or a recording
  (`source:`), optionally narrowed by more filters (`filters:`, e.g. `module:`).

      c = Cursor.new(pid: pid)            # before the first event
      {:ok, c} = Cursor.step_forward(c)   # c.event is the first event
      {:ok, c} = Cursor.next_call(c, {MyMod, :fun, 2})
      {:ok, c} = Cursor.jump_to(c, {:time, ns})

  Each move returns `{:ok, cursor}`, or `{:end, cursor}` (unchanged) when there
  is nothing further that way.
  """

  alias ElixirScope.{Event, Query}
  alias ElixirScope.Query.Source

  defstruct source: nil, pid: nil, filters: [], event: nil, position: 0

  @type t :: %__MODULE__{
          source: Source.t() | nil,
          pid: pid() | atom() | nil,
          filters: keyword(),
          event: Event.t() | nil,
          position: non_neg_integer()
        }

  @type move :: {:ok, t()} | {:end, t()} | {:error, String.t()}

  @doc "A new cursor, before the first event. Options: `pid:`, `source:`, `filters:`, `at:` (as `jump_to/2`)."
  @spec new(keyword()) :: t()
  def new(opts \\ []) do
    c = %__MODULE__{source: opts[:source], pid: opts[:pid], filters: Keyword.get(opts, :filters, [])}

    case opts[:at] do
      nil -> c
      at -> with({:ok, c} <- jump_to(c, at), do: c, else: (_ -> c))
    end
  end

  @doc "The next event (of the process, or of all processes)."
  @spec step_forward(t()) :: move()
  def step_forward(%__MODULE__{} = c), do: move(c, after_id: c.position)

  @doc "The previous event."
  @spec step_back(t()) :: move()
  def step_back(%__MODULE__{position: 0} = c), do: {:end, c}
  def step_back(%__MODULE__{} = c), do: move(c, before_id: c.position, order: :desc)

  @doc """
  Jumps to an event id (an integer or `{:event, id}` or an `%Event{}`): the
  cursor lands on the latest event at or before it; or to a time (`{:time, ns}`
  or a `DateTime`): the latest event at or before that instant.
  """
  @spec jump_to(t(), pos_integer() | {:event, pos_integer()} | {:time, integer()} | DateTime.t() | Event.t()) :: move()
  def jump_to(c, %Event{id: id}), do: jump_to(c, id)
  def jump_to(c, {:event, id}), do: jump_to(c, id)
  def jump_to(c, id) when is_integer(id), do: land(c, before_id: id + 1, order: :desc)
  def jump_to(c, {:time, t}), do: land(c, until: t, order: :desc)
  def jump_to(c, %DateTime{} = dt), do: land(c, until: dt, order: :desc)

  def jump_to(_c, other),
    do: {:error, "cannot jump to #{inspect(other)}: give an event id (120 or {:event, 120}), {:time, monotonic_ns} or a DateTime"}

  @doc "The next call of a function after the cursor (`{m, f, a}`, `{m, f}`, `&M.f/a` or `\"M.f/a\"`)."
  @spec next_call(t(), term()) :: move()
  def next_call(c, target) do
    with {:ok, tf} <- Query.target_filter(target), do: move(c, [after_id: c.position, kind: :call] ++ tf)
  end

  @doc "The previous call of a function before the cursor."
  @spec prev_call(t(), term()) :: move()
  def prev_call(c, target) do
    with {:ok, tf} <- Query.target_filter(target),
         do: move(c, [before_id: max(c.position, 1), order: :desc, kind: :call] ++ tf)
  end

  defp land(c, extra) do
    case fetch(c, extra) do
      [e] -> {:ok, %{c | event: e, position: e.id}}
      [] -> {:ok, %{c | event: nil, position: 0}}
      {:error, _} = err -> err
    end
  end

  defp move(c, extra) do
    case fetch(c, extra) do
      [e] -> {:ok, %{c | event: e, position: e.id}}
      [] -> {:end, c}
      {:error, _} = err -> err
    end
  end

  defp fetch(c, extra) do
    base = if c.pid, do: [pid: c.pid], else: []
    src = if c.source, do: [source: c.source], else: []
    filters = Keyword.merge(c.filters, extra)
    # a position filter in extra replaces one in c.filters; keep both bounds when both exist
    Query.events(base ++ src ++ filters ++ [limit: 1])
  end
end
