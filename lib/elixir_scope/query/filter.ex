defmodule ElixirScope.Query.Filter do
  @moduledoc """
  Turns user filters into what a source answers (`ElixirScope.Query.Source`)
  plus the predicates checked in Elixir afterwards.

  Filters: `pid:` (a pid, a registered name or a string like `"0.123.0"`), `module:`, `function:`,
  `arity:`, `mfa:` (`{m, f, a}` or `{m, f}`), `kind:`/`kinds:`/`event_type:` (a
  kind or a list), `call_id:`, `correlation_id:`, `since:`/`until:` (monotonic
  ns or `DateTime`), `window:` (`{since, until}`), `after_id:`, `before_id:`,
  `limit:`, `order:` (`:asc`/`:desc`), `payload:` (a 1-arity predicate on the
  payload), `where:` (a 1-arity predicate on the event), `source:`, `nodes:` (a cluster's
  nodes, `:all` or a list: see `ElixirScope.Cluster`).
  """

  alias ElixirScope.Event
  alias ElixirScope.Query.Source

  @type t :: %{
          source: Source.t(),
          store: map(),
          preds: [(Event.t() -> boolean())],
          limit: pos_integer() | nil,
          order: :asc | :desc
        }

  @known [:pid, :module, :function, :arity, :mfa, :kind, :kinds, :event_type, :call_id, :correlation_id, :since,
          :until, :window, :after_id, :before_id, :limit, :order, :payload, :where, :source, :nodes]

  @expected %{
    pid: ~s(a pid, a registered name or a string like "0.123.0", e.g. pid: "0.123.0"),
    module: "a module, e.g. module: MyApp.Ledger",
    function: "a function name, e.g. function: :handle_call",
    arity: "an arity >= 0, e.g. arity: 3",
    mfa: "{module, function, arity} or {module, function}, e.g. mfa: {MyApp.Ledger, :post, 4}",
    kind: "an event kind or a list of kinds, e.g. kind: :exception",
    kinds: "a list of event kinds, e.g. kinds: [:call, :return]",
    event_type: "an event kind, e.g. event_type: :call",
    call_id: "a call's event id, e.g. call_id: 120",
    correlation_id: "an event id, e.g. correlation_id: 120",
    since: "monotonic ns (an integer), a DateTime or nil, e.g. since: ~U[2024-01-01 12:00:00Z]",
    until: "monotonic ns (an integer), a DateTime or nil, e.g. until: ~U[2024-01-01 12:00:00Z]",
    window: "{since, until}, e.g. window: {nil, ~U[2024-01-01 12:00:00Z]}",
    after_id: "an event id, e.g. after_id: 120",
    before_id: "an event id, e.g. before_id: 120",
    limit: "a positive integer or nil, e.g. limit: 50",
    order: ":asc or :desc",
    payload: "a 1-arity function, e.g. payload: &match?({:ok, _}, &1)",
    where: "a 1-arity function on the event, e.g. where: &(&1.line == 12)",
    source: ":live or a loaded recording",
    nodes: ":all or a list of recorded nodes, e.g. nodes: [:\"a@127.0.0.1\"]"
  }

  @doc "Normalises `filters` (a keyword list). `{:ok, t}` or `{:error, message}`."
  @spec normalize(keyword()) :: {:ok, t()} | {:error, String.t()}
  def normalize(filters) when is_list(filters) do
    source = Source.from_opts(filters)
    init = %{source: source, store: %{}, preds: [], limit: nil, order: :asc}

    filters
    |> Enum.reduce_while({:ok, init}, fn {k, v}, {:ok, acc} ->
      case put(k, v, acc) do
        {:ok, acc} -> {:cont, {:ok, acc}}
        {:error, _} = e -> {:halt, e}
      end
    end)
    |> then(fn
      {:ok, acc} -> {:ok, function_without_module(acc)}
      error -> error
    end)
  rescue
    _ in [FunctionClauseError, ArgumentError] -> {:error, "filters must be a keyword list, got: #{inspect(filters)}"}
  catch
    {:query_error, message} -> {:error, message}
  end

  def normalize(other), do: {:error, "filters must be a keyword list, got: #{inspect(other)}"}

  defp put(key, _v, acc) when key in [:source, :nodes], do: {:ok, acc}

  defp put(:pid, who, acc) do
    case resolve_pid(who, acc.source) do
      {:ok, pid} -> store(acc, :pid, pid)
      {:error, msg} -> {:error, "pid: " <> msg}
    end
  end

  defp put(:mfa, {m, f, a}, acc) when is_atom(m) and is_atom(f) and is_integer(a),
    do: acc |> Map.update!(:store, &Map.merge(&1, %{module: m, function: f, arity: a})) |> ok()

  defp put(:mfa, {m, f}, acc) when is_atom(m) and is_atom(f),
    do: acc |> Map.update!(:store, &Map.merge(&1, %{module: m, function: f})) |> ok()

  defp put(k, kind, acc) when k in [:kind, :kinds, :event_type] and is_atom(kind), do: put(:kinds, [kind], acc)

  defp put(k, kinds, acc) when k in [:kind, :kinds, :event_type] and is_list(kinds) do
    case Enum.reject(kinds, &(&1 in Event.kinds())) do
      [] -> store(acc, :kinds, kinds)
      bad -> {:error, "unknown event kind(s) #{inspect(bad)}; kinds are #{inspect(Event.kinds())}"}
    end
  end

  defp put(:window, {since, until}, acc) do
    with {:ok, acc} <- put(:since, since, acc), do: put(:until, until, acc)
  end

  defp put(k, nil, acc) when k in [:since, :until], do: {:ok, acc}
  defp put(k, %DateTime{} = dt, acc) when k in [:since, :until], do: store(acc, k, to_monotonic(acc.source, dt))
  defp put(k, v, acc) when k in [:since, :until] and is_integer(v), do: store(acc, k, max(v, 0))
  defp put(:order, v, acc) when v in [:asc, :desc], do: {:ok, %{acc | order: v}}
  defp put(:limit, v, acc) when is_integer(v) and v > 0, do: {:ok, %{acc | limit: v}}
  defp put(:limit, nil, acc), do: {:ok, acc}
  defp put(k, v, acc) when k in [:module, :function] and is_atom(v), do: store(acc, k, v)
  defp put(:arity, v, acc) when is_integer(v) and v >= 0, do: store(acc, :arity, v)

  defp put(k, v, acc) when k in [:call_id, :correlation_id, :after_id, :before_id] and is_integer(v) and v >= 0,
    do: store(acc, k, v)

  defp put(:payload, f, acc) when is_function(f, 1), do: {:ok, %{acc | preds: [&f.(&1.payload) | acc.preds]}}
  defp put(:where, f, acc) when is_function(f, 1), do: {:ok, %{acc | preds: [f | acc.preds]}}
  defp put(k, v, _acc) when k in @known,
    do: {:error, "invalid value for filter #{k}: #{inspect(v)} (expected #{Map.fetch!(@expected, k)})"}

  defp put(k, _v, _acc),
    do: {:error, "unknown filter #{inspect(k)}; known filters: #{Enum.map_join(@known, ", ", &inspect/1)}"}

  @doc """
  A pid from a pid, a registered name (known to `source`) or a string like `"0.123.0"` or
  `"#PID<0.123.0>"`. `{:ok, pid}` or `{:error, message}` saying what was expected.
  """
  @spec resolve_pid(term(), Source.t()) :: {:ok, pid()} | {:error, String.t()}
  def resolve_pid(pid, _source) when is_pid(pid), do: {:ok, pid}

  def resolve_pid(name, source) when is_atom(name) and name not in [nil, true, false] do
    # a name no process holds now (its holder crashed): the last process that took its messages
    case Source.whereis(source, name) || List.last(ElixirScope.Query.Processes.named(name, source: source)) do
      nil -> {:error, "no process is registered as #{inspect(name)} in the #{Source.describe(source)} (ElixirScope.IEx.processes/0 lists the recorded processes and their names)"}
      pid -> {:ok, pid}
    end
  end

  def resolve_pid(str, _source) when is_binary(str) do
    text = str |> String.trim() |> String.trim_leading("#PID") |> String.trim_leading("<") |> String.trim_trailing(">")

    if Regex.match?(~r/\A\d{1,10}\.\d{1,10}\.\d{1,10}\z/, text),
      do: {:ok, :erlang.list_to_pid(~c"<" ++ String.to_charlist(text) ++ ~c">")},
      else: pid_error(str)
  rescue
    ArgumentError -> pid_error(str)
  end

  def resolve_pid(other, _source),
    do: {:error, ~s(expected a pid, a registered name or a string like "0.123.0", got: #{inspect(other)})}

  defp pid_error(str), do: {:error, "cannot read #{inspect(str)} as a pid (write \"0.123.0\" or \"#PID<0.123.0>\")"}

  # the native store indexes functions under their module: without a module, check them in Elixir
  defp function_without_module(%{store: %{module: _}} = acc), do: acc

  defp function_without_module(%{store: store} = acc) do
    {fa, rest} = Map.split(store, [:function, :arity])
    preds = for {k, v} <- fa, do: fn e -> Map.get(e, k) == v end
    %{acc | store: rest, preds: preds ++ acc.preds}
  end

  defp store(acc, k, v), do: {:ok, %{acc | store: Map.put(acc.store, k, v)}}
  defp ok(acc), do: {:ok, acc}

  @doc "A `DateTime` as the source's monotonic nanoseconds (its clock origin); 0 without a clock."
  @spec to_monotonic(Source.t(), DateTime.t()) :: non_neg_integer()
  def to_monotonic(source, %DateTime{} = dt) do
    case Source.clock(source) do
      {mono0, sys0} -> max(mono0 + (DateTime.to_unix(dt, :microsecond) - sys0) * 1000, 0)
      nil -> 0
    end
  end

  @doc "Whether `event` passes the Elixir-side predicates (a predicate that raises counts as false)."
  @spec keep?(t(), Event.t()) :: boolean()
  def keep?(%{preds: preds}, event) do
    Enum.all?(preds, fn p ->
      try do
        p.(event) not in [nil, false]
      rescue
        _ -> false
      end
    end)
  end
end
