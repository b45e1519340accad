defmodule ElixirScope.MCP.Args do
  @moduledoc """
  What the MCP tools share: reading arguments (pids, modules, kinds,
  limits, cursors) without creating atoms, and rendering events as short
  bounded maps. A tool that cannot read an argument throws
  `{:tool_error, message}`, which the server answers as an MCP tool error.
  """

  alias ElixirScope.{Event, Query}
  alias ElixirScope.Web.{Data, Render}

  @max_limit 100

  @doc "Raises a tool error (thrown, caught by `ElixirScope.MCP.Tools.call/3`)."
  @spec fail(String.t()) :: no_return()
  def fail(message), do: throw({:tool_error, message})

  @doc "The page size: `limit` (default `default`), at most #{@max_limit}."
  @spec limit(map(), pos_integer()) :: pos_integer()
  def limit(args, default \\ 25), do: args |> Map.get("limit", default) |> min(@max_limit) |> max(1)

  @doc "What a `cursor` argument stands for: `{:offset, n}` or `{:id, n}` (`{:offset, 0}` without one)."
  @spec position(map()) :: {:offset | :id, non_neg_integer()}
  def position(%{"cursor" => cursor}) when is_binary(cursor) do
    with {:ok, text} <- Base.url_decode64(cursor, padding: false),
         [kind, n] when kind in ["offset", "id"] <- String.split(text, ":", parts: 2),
         {n, ""} when n >= 0 <- Integer.parse(n) do
      {String.to_existing_atom(kind), n}
    else
      _ -> fail("invalid cursor #{inspect(cursor)}: pass back a next_cursor exactly as it was given")
    end
  end

  def position(_), do: {:offset, 0}

  @doc "The offset of an offset cursor."
  @spec offset(map()) :: non_neg_integer()
  def offset(args) do
    case position(args) do
      {:offset, n} -> n
      _ -> fail("this cursor belongs to another tool")
    end
  end

  @doc "One page of `items` (from the `cursor`): `%{key => page, next_cursor, total}`."
  @spec page([term()], map(), String.t(), pos_integer()) :: map()
  def page(items, args, key, default \\ 25) do
    {offset, limit} = {offset(args), limit(args, default)}
    page = items |> Enum.drop(offset) |> Enum.take(limit)
    more? = length(items) > offset + limit
    %{key => page, "total" => length(items), "next_cursor" => if(more?, do: cursor(:offset, offset + limit))}
  end

  @doc "The cursor for an offset or an event id."
  @spec cursor(:offset | :id, non_neg_integer()) :: String.t()
  def cursor(kind, n), do: Base.url_encode64("#{kind}:#{n}", padding: false)

  @doc "A process: `<0.123.0>` or a registered name such as `Demo.Ledger`."
  @spec pid!(Query.Source.t(), String.t()) :: pid()
  def pid!(src, text) when is_binary(text) do
    pid =
      Data.parse_pid(src, text) ||
        Enum.find_value(Query.Source.names(src), fn {pid, name} -> if Render.mod(name) == String.trim(text), do: pid end)

    pid || fail("no recorded process #{inspect(text)}: use list_processes for pids (<0.123.0>) and registered names")
  end

  @doc "A module named in the recording (never a new atom)."
  @spec module!(String.t()) :: module()
  def module!(text) do
    name = text |> String.trim() |> String.replace_prefix("Elixir.", "")

    existing("Elixir." <> name) || existing(name) ||
      fail("unknown module #{inspect(text)}: no recorded event names it")
  end

  @doc "An existing atom (a function name), or a tool error."
  @spec atom!(String.t(), String.t()) :: atom()
  def atom!(text, what), do: existing(text) || fail("unknown #{what} #{inspect(text)}")

  defp existing(text) do
    String.to_existing_atom(text)
  rescue
    ArgumentError -> nil
  end

  @doc "Event kinds from a string or a list of strings."
  @spec kinds!(String.t() | [String.t()]) :: [Event.kind()]
  def kinds!(kinds) do
    for k <- List.wrap(kinds) do
      Enum.find(Event.kinds(), &(Atom.to_string(&1) == k)) ||
        fail("unknown kind #{inspect(k)}; kinds are #{Enum.map_join(Event.kinds(), ", ", &Atom.to_string/1)}")
    end
  end

  @doc "An event as a short map: id, time (µs from the start), pid, kind, function, line, call id, value (bounded text)."
  @spec brief(Event.t(), integer()) :: map()
  def brief(%Event{} = e, t0) do
    %{
      "id" => e.id,
      "t_us" => div(e.ts - t0, 1000),
      "pid" => Render.pid(e.pid),
      "kind" => Atom.to_string(e.kind),
      "function" => Render.mfa(e),
      "line" => e.line,
      "call_id" => e.call_id,
      "value" => value(e)
    }
  end

  defp value(%Event{kind: :exception, payload: p}), do: Render.exception(p).message
  defp value(%Event{kind: k} = e) when k in [:send, :receive], do: Render.short(Event.message(e), 240)
  defp value(%Event{payload: p}), do: Render.short(p, 240)

  @doc "The time origin of the source (ns)."
  @spec t0(Query.Source.t()) :: integer()
  def t0(src), do: Data.t0(src)

  @doc "The recorded event with this id, or a tool error."
  @spec event!(Query.Source.t(), integer()) :: Event.t()
  def event!(src, id), do: Query.event(id, source: src) || fail("no event ##{id} in the recording")
end
