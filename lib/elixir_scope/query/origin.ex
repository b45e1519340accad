defmodule ElixirScope.Query.Origin do
  @moduledoc """
  "Where did this value come from": the earliest recorded event whose payload
  holds a value, the calls open in its process at that moment, and the hops
  (messages, calls, spawns — see `ElixirScope.Query.Correlation`) that carried
  it to other processes. Reads any source through `ElixirScope.Query`.
  """

  alias ElixirScope.{Event, Query}
  alias ElixirScope.Query.Correlation
  alias ElixirScope.Storage.EventCorrelator

  @doc """
  Where did `value` come from: the earliest event whose payload holds it
  (`first`), the calls that were open in its process at that moment (`calls`,
  outermost first), and the hops that carried it to other processes
  (`chain`: links, see `ElixirScope.Query.Correlation`), plus every holder.
  Options: `source:`, and any filters to narrow the search.
  Returns `{:ok, map}` or `{:error, message}`.
  """
  @spec origin(term(), keyword()) :: {:ok, map()} | {:error, String.t()}
  def origin(value, opts \\ []) do
    holders =
      opts
      |> Query.stream()
      |> Stream.filter(&holds?(&1.payload, value))
      |> Enum.to_list()

    case holders do
      [] ->
        {:error, "no recorded event holds #{inspect(value, limit: 10)}"}

      [first | _] ->
        source = Keyword.take(opts, [:source, :nodes])
        spawns = Query.events([kind: :spawn] ++ source)
        spawns = if is_list(spawns), do: spawns, else: []
        links = Correlation.links(Enum.uniq_by(holders ++ spawns, & &1.id))
        {:ok, %{value: value, first: first, calls: open_calls(first, source), chain: chain(first, links), holders: holders}}
    end
  catch
    {:query_error, message} -> {:error, message}
  end

  @doc "Whether `term` holds `value` (equal to it, or anywhere inside it)."
  @spec holds?(term(), term()) :: boolean()
  def holds?(term, value) when term === value, do: true
  def holds?(term, value) when is_list(term), do: holds_list?(term, value)
  def holds?(term, value) when is_tuple(term), do: holds_list?(Tuple.to_list(term), value)
  def holds?(%_{} = term, value), do: holds?(Map.from_struct(term), value)
  def holds?(term, value) when is_map(term), do: Enum.any?(term, fn {k, v} -> holds?(k, value) or holds?(v, value) end)
  def holds?(term, value), do: term == value

  defp holds_list?([h | t], value), do: holds?(h, value) or holds_list?(t, value)
  defp holds_list?([], _value), do: false
  defp holds_list?(tail, value), do: holds?(tail, value)

  defp chain(first, links) do
    {hops, _} =
      Enum.reduce(links, {[], %{first.pid => first.id}}, fn l, {hops, reached} ->
        from_ok = Map.has_key?(reached, l.from.pid) and reached[l.from.pid] <= l.from.id

        if from_ok and not Map.has_key?(reached, l.to.pid) do
          {[l | hops], Map.put(reached, l.to.pid, l.to.id)}
        else
          {hops, reached}
        end
      end)

    Enum.reverse(hops)
  end

  defp open_calls(%Event{} = e, source) do
    case Query.events([pid: e.pid, before_id: e.id + 1] ++ source) do
      evs when is_list(evs) -> EventCorrelator.open_calls(evs)
      _ -> []
    end
  end
end
