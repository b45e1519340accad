defmodule ElixirScope.DAP.Variables do
  @moduledoc """
  The debug adapter's `variablesReference` table: each scope or expandable
  value gets a reference, and its children are computed only when asked
  (maps by key, structs by field, lists and tuples by index, lists paged by
  `start`/`count`). Values are rendered by `ElixirScope.Web.Render`.

  A value under a GenServer state scope remembers its path from the state
  (`[{:key, k} | {:at, i} | {:elem, i}]`): the address of a data breakpoint.
  References are valid while the debuggee stays stopped (`new/0` at each stop).
  """

  alias ElixirScope.Truncated
  alias ElixirScope.Web.Render

  defstruct next: 1, refs: %{}

  @type key :: {:key, term()} | {:at, non_neg_integer()} | {:elem, non_neg_integer()}
  @type root :: nil | {:state, pid(), [key()]}
  @type t :: %__MODULE__{next: pos_integer(), refs: %{pos_integer() => term()}}

  @max_children 1_000

  @doc "An empty table."
  @spec new() :: t()
  def new, do: %__MODULE__{}

  @doc "A reference for a list of named bindings (a scope)."
  @spec bindings(t(), [{String.t(), term()}]) :: {pos_integer(), t()}
  def bindings(t, list), do: put(t, {:bindings, list})

  @doc "A reference for a value (0 when it has nothing to expand); `root` as in the moduledoc."
  @spec value(t(), term(), root(), String.t() | nil) :: {non_neg_integer(), t()}
  def value(t, v, root \\ nil, eval_name \\ nil) do
    if expandable?(v), do: put(t, {:value, v, root, eval_name}), else: {0, t}
  end

  defp put(t, entry), do: {t.next, %{t | next: t.next + 1, refs: Map.put(t.refs, t.next, entry)}}

  defp expandable?(%Truncated{}), do: false
  defp expandable?(v) when is_map(v), do: map_size(v) > 0
  defp expandable?([_ | _]), do: true
  defp expandable?(v) when is_tuple(v), do: tuple_size(v) > 0
  defp expandable?(_), do: false

  @doc """
  The DAP variables under `ref` (`start`/`count` page a list). Returns
  `{:ok, variables, t}` or `{:error, message}`.
  """
  @spec children(t(), pos_integer(), non_neg_integer(), non_neg_integer() | nil) :: {:ok, [map()], t()} | {:error, String.t()}
  def children(t, ref, start \\ 0, count \\ nil) do
    case Map.fetch(t.refs, ref) do
      {:ok, {:bindings, list}} ->
        {vars, t} = Enum.map_reduce(list, t, fn {name, v}, t -> variable(t, name, v, nil, name) end)
        {:ok, vars, t}

      {:ok, {:value, v, root, eval_name}} ->
        {vars, t} =
          v
          |> entries(start, count)
          |> Enum.map_reduce(t, fn {name, key, child}, t ->
            variable(t, name, child, child_root(root, key), access(eval_name, key))
          end)

        {:ok, vars, t}

      :error ->
        {:error, "unknown variablesReference #{ref} (references last until the next step)"}
    end
  end

  @doc "The path of the child `name` of the value under `ref`, when that value is under a GenServer state."
  @spec data_path(t(), pos_integer(), String.t()) :: {:ok, pid(), [key()]} | :error
  def data_path(t, ref, name) do
    with {:ok, {:value, v, {:state, pid, path}, _}} <- Map.fetch(t.refs, ref),
         {_, key, _} <- Enum.find(entries(v, 0, nil), fn {n, _, _} -> n == name end) do
      {:ok, pid, path ++ [key]}
    else
      _ -> :error
    end
  end

  defp child_root({:state, pid, path}, key), do: {:state, pid, path ++ [key]}
  defp child_root(nil, _), do: nil

  defp variable(t, name, v, root, eval_name) do
    {ref, t} = value(t, v, root, eval_name)
    var = %{name: name, value: Render.short(v, 300), type: type(v), variablesReference: ref}
    var = if eval_name, do: Map.put(var, :evaluateName, eval_name), else: var
    var = if is_list(v) and ref > 0, do: Map.put(var, :indexedVariables, safe_length(v)), else: var
    {var, t}
  end

  @doc "`[{name, key, value}]`: the children of a value, a page of them for lists."
  @spec entries(term(), non_neg_integer(), non_neg_integer() | nil) :: [{String.t(), key(), term()}]
  def entries(%Truncated{}, _, _), do: []

  def entries(%{__struct__: _} = s, _, _) do
    s |> Map.from_struct() |> Map.to_list() |> Enum.sort() |> Enum.take(@max_children) |> Enum.map(fn {k, v} -> {key_name(k), {:key, k}, v} end)
  end

  def entries(m, _, _) when is_map(m) do
    m |> Map.to_list() |> Enum.sort() |> Enum.take(@max_children) |> Enum.map(fn {k, v} -> {key_name(k), {:key, k}, v} end)
  end

  def entries(l, start, count) when is_list(l) do
    count = min(count || @max_children, @max_children)
    {items, tail} = split_improper(l)

    page =
      items
      |> Enum.with_index()
      |> Enum.drop(start)
      |> Enum.take(count)
      |> Enum.map(fn {v, i} -> {"[#{i}]", {:at, i}, v} end)

    if tail == [], do: page, else: page ++ [{"tail", {:at, length(items)}, tail}]
  end

  def entries(tu, _, _) when is_tuple(tu) do
    tu |> Tuple.to_list() |> Enum.take(@max_children) |> Enum.with_index() |> Enum.map(fn {v, i} -> {"{#{i}}", {:elem, i}, v} end)
  end

  def entries(_, _, _), do: []

  defp key_name(k) when is_atom(k), do: Atom.to_string(k)
  defp key_name(k), do: Render.short(k, 80)

  defp split_improper(l), do: split_improper(l, [])
  defp split_improper([h | t], acc), do: split_improper(t, [h | acc])
  defp split_improper(tail, acc), do: {Enum.reverse(acc), tail}

  defp safe_length(l), do: l |> split_improper() |> elem(0) |> length()

  # the Elixir expression for a child, given its parent's (nil when there is none)
  defp access(nil, _), do: nil
  defp access(parent, {:key, k}) when is_atom(k), do: if(Macro.classify_atom(k) == :identifier, do: "#{parent}.#{k}", else: "#{parent}[#{inspect(k)}]")
  defp access(parent, {:key, k}), do: "#{parent}[#{inspect(k)}]"
  defp access(parent, {:at, i}), do: "Enum.at(#{parent}, #{i})"
  defp access(parent, {:elem, i}), do: "elem(#{parent}, #{i})"

  @doc "The value at `path` inside `term` (`:missing` when it is not there)."
  @spec value_at(term(), [key()]) :: term()
  def value_at(term, []), do: term
  def value_at(%{} = m, [{:key, k} | rest]), do: if(Map.has_key?(m, k), do: value_at(Map.get(m, k), rest), else: :missing)
  def value_at(l, [{:at, i} | rest]) when is_list(l), do: l |> split_improper() |> elem(0) |> Enum.at(i, :missing) |> continue(rest)
  def value_at(t, [{:elem, i} | rest]) when is_tuple(t) and i < tuple_size(t), do: value_at(elem(t, i), rest)
  def value_at(_, _), do: :missing

  defp continue(:missing, _), do: :missing
  defp continue(v, rest), do: value_at(v, rest)

  @doc "A path as Elixir-like text: `balances[\"alice\"]`."
  @spec path_text([key()]) :: String.t()
  def path_text(path), do: path |> Enum.reduce("state", fn key, acc -> access(acc, key) end)

  @doc "A short type name for a value."
  @spec type(term()) :: String.t()
  def type(%Truncated{}), do: "truncated"
  def type(%{__struct__: s}), do: "%#{Render.mod(s)}{}"
  def type(v) when is_map(v), do: "map"
  def type(v) when is_list(v), do: "list"
  def type(v) when is_tuple(v), do: "tuple"
  def type(v) when is_binary(v), do: "binary"
  def type(v) when is_integer(v), do: "integer"
  def type(v) when is_float(v), do: "float"
  def type(v) when is_boolean(v) or is_nil(v), do: "atom"
  def type(v) when is_atom(v), do: "atom"
  def type(v) when is_pid(v), do: "pid"
  def type(v) when is_function(v), do: "function"
  def type(_), do: "term"
end
