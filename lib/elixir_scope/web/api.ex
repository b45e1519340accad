defmodule ElixirScope.Web.Api do
  @moduledoc """
  The JSON API's endpoints: validates query parameters (integers in range, pids
  known to the source) and calls `ElixirScope.Web.Data`. Returns `{:ok, data}`
  or `{:error, http_status, message}`. Documented in `docs/web_api.md`.
  """

  alias ElixirScope.Web.{Data, Source}

  import Bitwise, only: [<<<: 2]
  @max_int 1 <<< 62

  @doc "Handles `GET /api/<endpoint>?<query>`; `opts` go to `Data` (`cache:`, see `Data.event_detail/3`)."
  @spec handle(Source.t(), String.t(), %{optional(String.t()) => String.t()}, keyword()) ::
          {:ok, map()} | {:error, pos_integer(), String.t()}
  def handle(source, endpoint, q, opts \\ []) do
    do_handle(source, endpoint, q, opts)
  catch
    {:bad_request, msg} -> {:error, 400, msg}
  end

  defp do_handle(source, "event/" <> id, _q, opts) do
    case Integer.parse(id) do
      {n, ""} when n > 0 and n < @max_int ->
        case Data.event_detail(source, n, opts) do
          nil -> {:error, 404, "no event #{n}"}
          detail -> {:ok, detail}
        end

      _ ->
        {:error, 400, "event id must be a positive integer"}
    end
  end

  defp do_handle(source, endpoint, q, _opts), do: do_handle(source, endpoint, q)

  defp do_handle(source, "summary", _q), do: {:ok, Data.summary(source)}

  defp do_handle(source, "events", q) do
    {:ok, Data.events_page(source, after_id: int(q, "after_id", 0), limit: int(q, "limit", 5_000, 1, 20_000))}
  end

  defp do_handle(source, "links", _q), do: {:ok, Data.links(source)}

  defp do_handle(source, "at", q) do
    pids =
      q
      |> Map.get("pids", "")
      |> String.split(",", trim: true)
      |> Enum.take(64)
      |> Enum.map(&pid!(source, &1))

    {:ok, Data.at(source, int(q, "t", nil, -@max_int), pids)}
  end

  defp do_handle(source, "state_diff", q) do
    {:ok, Data.state_diff(source, pid!(source, q["pid"]), int(q, "t1", nil, -@max_int), int(q, "t2", nil, -@max_int))}
  end

  defp do_handle(source, "call_tree", q) do
    opts =
      [limit: int(q, "limit", 2_000, 1, 5_000), offset: int(q, "offset", 0)] ++
        Enum.flat_map(["since", "until"], fn k ->
          if q[k], do: [{String.to_existing_atom(k), int(q, k, nil, -@max_int)}], else: []
        end)

    {:ok, Data.call_tree(source, pid!(source, q["pid"]), opts)}
  end

  defp do_handle(source, "search", q) do
    query = Map.get(q, "q", "")
    if byte_size(query) > 500, do: bad("q is limited to 500 bytes")

    case Data.search(source, query, limit: int(q, "limit", 500, 1, 1_000), after_id: int(q, "after_id", 0)) do
      %{error: msg} -> {:error, 400, msg}
      result -> {:ok, result}
    end
  end

  defp do_handle(_source, endpoint, _q), do: {:error, 404, "unknown endpoint /api/#{String.slice(endpoint, 0, 40)}"}

  defp bad(msg), do: throw({:bad_request, msg})

  defp pid!(_source, nil), do: bad("pid is required")

  defp pid!(source, text) do
    case Data.parse_pid(source, text) do
      nil -> bad("unknown pid #{String.slice(text, 0, 40)}")
      pid -> pid
    end
  end

  defp int(q, key, default, min \\ 0, max \\ @max_int) do
    case q[key] do
      nil when default != nil ->
        default

      nil ->
        bad("#{key} is required")

      text ->
        case Integer.parse(text) do
          {n, ""} when n >= min and n <= max -> n
          _ -> bad("#{key} must be an integer in #{min}..#{max}")
        end
    end
  end
end
