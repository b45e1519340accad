defmodule ElixirScope.Export do
  @moduledoc """
  Exports of recorded executions: `ElixirScope.Export.Perfetto` (Chrome
  trace-event JSON) and `ElixirScope.Export.OTLP` (OpenTelemetry spans).
  This module gathers the events to export from a cinema source
  (`ElixirScope.Web.Source`: the live store or a recording).
  """

  alias ElixirScope.Web.Source

  @doc """
  Every event of `source` matching `filters` (`module:`, `pid:`, `since:`, `until:` …),
  oldest first, at most `limit` (default 2,000,000), read in pages.
  """
  @spec events(Source.t(), keyword(), pos_integer()) :: [ElixirScope.Event.t()] | {:error, String.t()}
  def events(source, filters \\ [], limit \\ 2_000_000), do: page(source, filters, limit, 0, [])

  defp page(_source, _filters, left, _after, acc) when left <= 0, do: acc |> Enum.reverse() |> Enum.concat()

  defp page(source, filters, left, after_id, acc) do
    case Source.fetch(source, filters ++ [after_id: after_id, limit: min(left, 50_000)]) do
      {:error, _} = error ->
        error

      [] ->
        acc |> Enum.reverse() |> Enum.concat()

      events ->
        page(source, filters, left - length(events), List.last(events).id, [events | acc])
    end
  end

  @doc "Registered names of a source's processes, for labels (`%{pid => name}`)."
  @spec names(Source.t()) :: %{pid() => term()}
  def names(source), do: Source.meta(source)[:names] || %{}
end
