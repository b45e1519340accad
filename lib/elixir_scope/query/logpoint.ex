defmodule ElixirScope.Query.Logpoint do
  @moduledoc """
  Prints after the fact: evaluates a function over every recorded hit of a
  function (its args, locals, expressions, return or exception), in time
  order, as if a print had been there while it ran. Used by
  `ElixirScope.Query.logpoint/3` and the IEx helpers `calls/1` and `logpoint/2`.
  """

  alias ElixirScope.{Event, Query}
  alias ElixirScope.Query.Source

  @target_examples ~s(expected a function such as MyMod.fun/2, {MyMod, :fun, 2}, {MyMod, :fun}, &MyMod.fun/2 or "MyMod.fun/2")

  @doc """
  Evaluates `fun` over every recorded hit of a function (what
  `ElixirScope.Query.logpoint/3` runs). `target` is `{m, f, a}`, `{m, f}`, a capture `&M.f/a`,
  or `"M.f/a"`. `fun` gets a hit map:
  `%{event:, pid:, ts:, call_id:, args:, locals:, exprs:, return:, exception:, status:}`
  (`locals` merges every local snapshot of the call). Returns
  `[%{event:, pid:, ts:, result:}]` (a raising `fun` gives `result: {:error, message}`).
  Options: `source:`, `limit:` (default 10_000 hits), `pid:`, `since:`/`until:`.
  """
  @spec run(term(), (map() -> term()), keyword()) :: [map()] | {:error, String.t()}
  def run(target, fun, opts \\ [])

  def run(target, fun, opts) when is_function(fun, 1) do
    with {:ok, mfa} <- target_filter(target),
         # the hits' calls and their events must come from one numbering
         {:ok, opts} <- Source.pin(opts),
         calls when is_list(calls) <- Query.events(mfa ++ [kind: :call, limit: Keyword.get(opts, :limit, 10_000)] ++
                                                Keyword.take(opts, [:source, :nodes, :pid, :since, :until, :window])) do
      source = Keyword.take(opts, [:source, :nodes])

      for call <- calls do
        hit = hit(call, source)
        %{event: call, pid: call.pid, ts: call.ts, result: safely(fun, hit)}
      end
    end
  end

  def run(_target, fun, _opts),
    do: {:error, "expected a 1-arity function of the hit, e.g. fn hit -> hit.locals[:total] end, got: #{inspect(fun)}"}

  @doc "The hit map of one call (what `logpoint/3` passes to its function)."
  @spec hit(Event.t(), keyword()) :: map()
  def hit(%Event{kind: :call} = call, opts \\ []) do
    evs = Query.events([call_id: call.id] ++ Keyword.take(opts, [:source, :nodes]))
    evs = if is_list(evs), do: evs, else: []
    own = Enum.filter(evs, &(&1.call_id == call.id and &1.id != call.id))
    ret = Enum.find(own, &(&1.kind == :return))
    exc = Enum.find(own, &(&1.kind == :exception))
    tail = Enum.find(own, &(&1.kind == :tail_call))

    %{
      event: call,
      pid: call.pid,
      ts: call.ts,
      call_id: call.id,
      args: call.payload,
      locals: own |> Enum.filter(&(&1.kind == :local and is_map(&1.payload))) |> Enum.reduce(%{}, &Map.merge(&2, &1.payload)),
      exprs: for(%Event{kind: :expr, payload: p} <- own, do: p),
      return: ret && ret.payload,
      exception: exc && exc.payload,
      status: status(ret, exc, tail)
    }
  end

  defp status(ret, _exc, _tail) when ret != nil, do: :ok
  defp status(_ret, exc, _tail) when exc != nil, do: :exception
  defp status(_ret, _exc, tail) when tail != nil, do: :tail_call
  defp status(_ret, _exc, _tail), do: :open

  defp safely(fun, hit) do
    fun.(hit)
  rescue
    e -> {:error, Exception.message(e)}
  end

  @doc "Turns a function reference into filters: `{m, f, a}`, `{m, f}`, `&M.f/a` or `\"M.f/a\"`."
  @spec target_filter(term()) :: {:ok, keyword()} | {:error, String.t()}
  def target_filter({m, f, a}) when is_atom(m) and is_atom(f) and is_integer(a), do: {:ok, [module: m, function: f, arity: a]}
  def target_filter({m, f}) when is_atom(m) and is_atom(f), do: {:ok, [module: m, function: f]}

  def target_filter(fun) when is_function(fun) do
    case Function.info(fun, :type) do
      {:type, :external} ->
        {:module, m} = Function.info(fun, :module)
        {:name, f} = Function.info(fun, :name)
        {:arity, a} = Function.info(fun, :arity)
        {:ok, [module: m, function: f, arity: a]}

      _ ->
        {:error, "an anonymous function is not a function reference (#{@target_examples})"}
    end
  end

  def target_filter(string) when is_binary(string) do
    case Regex.run(~r/^(.+)\.([^.\/]+)(?:\/(\d+))?$/, String.trim(string)) do
      [_, m, f, a] -> {:ok, [module: Module.concat([m]), function: String.to_atom(f), arity: String.to_integer(a)]}
      [_, m, f] -> {:ok, [module: Module.concat([m]), function: String.to_atom(f)]}
      _ -> {:error, "cannot read #{inspect(string)} as Module.function/arity (#{@target_examples})"}
    end
  end

  def target_filter(other), do: {:error, "cannot read #{inspect(other)} as a function reference (#{@target_examples})"}
end
