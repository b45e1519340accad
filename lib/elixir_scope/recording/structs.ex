defmodule ElixirScope.Recording.Structs do
  @moduledoc """
  The struct definitions a recording carries, so that its values print as the recorded code
  would print them even where that code is not loaded: `%Demo.Posting{seq: 1, account: …}`,
  fields in their definition order.

  At save time `add/2` finds the struct modules named in the events' values and `build/1`
  writes down each one's fields (`__info__(:struct)`, in definition order) as
  `%{module => [field]}` in the header (key `structs`). `check/1` validates that map from an
  untrusted file (bounded; its atoms went through the file's atom table like every other
  atom). `register/1` makes a loaded recording's definitions known to the formatter
  (`ElixirScope.Report.Format`), which asks `fields/1` for a struct whose module is not loaded.
  """

  alias ElixirScope.Event

  @typedoc "Struct modules found so far."
  @type found :: %{optional(module()) => true}

  @typedoc "Field names of each struct module, in definition order."
  @type t :: %{optional(module()) => [atom()]}

  @key {__MODULE__, :known}
  # terms visited per event value: a bound on what the walk costs, far above what capture keeps
  @max_nodes 20_000
  @max_structs 5_000
  @max_fields 1_024

  @doc "Adds the struct modules named in the values of `events`."
  @spec add(found(), [Event.t()]) :: found()
  def add(found, events), do: Enum.reduce(events, found, fn %Event{payload: p}, acc -> walk([p], acc, @max_nodes) end)

  defp walk([], acc, _n), do: acc
  defp walk(_rest, acc, 0), do: acc

  defp walk([%{__struct__: m} = map | rest], acc, n) when is_atom(m) and m != nil,
    do: walk(Map.values(map) ++ rest, Map.put(acc, m, true), n - 1)

  defp walk([map | rest], acc, n) when is_map(map), do: walk(Map.keys(map) ++ Map.values(map) ++ rest, acc, n - 1)
  defp walk([tuple | rest], acc, n) when is_tuple(tuple), do: walk(Tuple.to_list(tuple) ++ rest, acc, n - 1)
  defp walk([[h | t] | rest], acc, n), do: walk([h, t | rest], acc, n - 1)
  defp walk([_leaf | rest], acc, n), do: walk(rest, acc, n - 1)

  @doc """
  The definitions of the found modules that are structs in this node, else in `saved` (the
  structs of the recording being saved again); at most #{@max_structs}.
  """
  @spec build(found(), t()) :: t()
  def build(found, saved \\ %{}) do
    found
    |> Map.keys()
    |> Enum.sort()
    |> Enum.flat_map(fn m -> if (fields = definition(m) || saved[m]) != nil, do: [{m, fields}], else: [] end)
    |> Enum.take(@max_structs)
    |> Map.new()
  end

  defp definition(m) do
    if Code.ensure_loaded?(m) and function_exported?(m, :__struct__, 0) do
      fields = fields_of(m)
      if fields != nil and length(fields) <= @max_fields, do: fields
    end
  end

  defp fields_of(m) do
    for %{field: f} <- m.__info__(:struct), do: f
  rescue
    # a module with __struct__/0 written by hand has no __info__(:struct): its keys, sorted
    _ -> struct_keys(m)
  end

  defp struct_keys(m) do
    m.__struct__() |> Map.keys() |> List.delete(:__struct__)
  rescue
    _ -> nil
  end

  @doc "`{:ok, definitions}` when `v` is what `build/1` writes, else false (for the header check)."
  @spec check(term()) :: {:ok, t()} | false
  def check(v) when is_map(v) and not is_map_key(v, :__struct__) and map_size(v) <= @max_structs do
    ok? =
      Enum.all?(v, fn {m, fields} ->
        is_atom(m) and is_list(fields) and length(fields) <= @max_fields and Enum.all?(fields, &is_atom/1) and
          length(Enum.uniq(fields)) == length(fields)
      end)

    ok? && {:ok, v}
  end

  def check(_), do: false

  @doc """
  Makes `definitions` known to the formatter in this node (those of a loaded recording; a
  later recording's definition of a module replaces an earlier one).
  """
  @spec register(t() | nil) :: :ok
  def register(nil), do: :ok
  def register(defs) when map_size(defs) == 0, do: :ok

  def register(defs) do
    known = :persistent_term.get(@key, %{})
    unless Map.merge(known, defs) == known, do: :persistent_term.put(@key, Map.merge(known, defs))
    :ok
  end

  @doc "The fields of `module`'s struct as a loaded recording defines it, or nil."
  @spec fields(module()) :: [atom()] | nil
  def fields(module), do: :persistent_term.get(@key, %{}) |> Map.get(module)
end
