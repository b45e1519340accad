defmodule ElixirScope.DAP.Sources do
  @moduledoc """
  Where the recorded code lives, for the debug adapter: the file of a module
  (its compiled source when the module is loadable here, else the `.ex`/`.exs`
  file under the source root that defines it), the modules a file defines,
  the argument patterns of a function clause (so that arguments get their
  names from the source: `def risk(amount, history)` shows `amount` and
  `history`), and the text of a module's source: the file when it is found,
  else the recorded expressions of the module put back at their lines.

  Parsed files are cached in an ETS table owned by the process that called
  `new/1` (one debug session).
  """

  alias ElixirScope.{Event, Query}

  defstruct [:root, :table]

  @type t :: %__MODULE__{root: String.t(), table: :ets.tid()}
  @max_files 5_000
  @max_file_bytes 2_000_000
  @skip_dirs ~w(_build deps node_modules .git .elixir_ls priv cover tmp)

  @doc "A source index rooted at `root` (a directory; default the current one)."
  @spec new(String.t() | nil) :: t()
  def new(root \\ nil) do
    %__MODULE__{root: Path.expand(root || File.cwd!()), table: :ets.new(:elixir_scope_dap_sources, [:set, :private])}
  end

  @doc "The absolute path of the file defining `module`, or nil."
  @spec path_of(t(), module()) :: String.t() | nil
  def path_of(%__MODULE__{} = s, module) when is_atom(module) and module != nil do
    cached(s, {:path, module}, fn -> compiled_source(module) || Map.get(index(s), module) end)
  end

  def path_of(_, _), do: nil

  defp compiled_source(module) do
    with true <- Code.ensure_loaded?(module),
         src when is_list(src) <- module.module_info(:compile)[:source],
         path = List.to_string(src),
         true <- File.regular?(path) do
      path
    else
      _ -> nil
    end
  rescue
    _ -> nil
  end

  # module => path for every file under the root (parsed once)
  defp index(s) do
    cached(s, :index, fn ->
      s.root
      |> files(@max_files)
      |> Enum.reduce(%{}, fn path, acc ->
        Enum.reduce(modules_in(s, path), acc, &Map.put_new(&2, &1, path))
      end)
    end)
  end

  defp files(root, max) do
    root
    |> walk([], max)
    |> Enum.take(max)
  end

  defp walk(dir, acc, max) do
    case File.ls(dir) do
      {:ok, names} ->
        Enum.reduce(Enum.sort(names), acc, fn name, acc ->
          path = Path.join(dir, name)

          cond do
            length(acc) >= max -> acc
            name in @skip_dirs -> acc
            File.dir?(path) and not symlink?(path) -> walk(path, acc, max)
            Path.extname(name) in [".ex", ".exs"] -> [path | acc]
            true -> acc
          end
        end)

      _ ->
        acc
    end
  end

  defp symlink?(path), do: match?({:ok, %File.Stat{type: :symlink}}, File.lstat(path))

  @doc "The modules defined in the file at `path` (nested modules by their full names)."
  @spec modules_in(t(), String.t()) :: [module()]
  def modules_in(s, path), do: s |> parsed(Path.expand(path)) |> Map.get(:modules, [])

  @doc """
  The argument patterns (quoted) of the clause of `{m, f, a}` whose head is on
  `line` of its file, or nil when the source is not at hand.
  """
  @spec params(t(), {module(), atom(), non_neg_integer()}, non_neg_integer()) :: [Macro.t()] | nil
  def params(s, {m, f, a}, line) do
    # cached per clause: a breakpoint condition asks once per hit
    cached(s, {:params, m, f, a, line}, fn ->
      with path when is_binary(path) <- path_of(s, m),
           %{defs: defs} <- parsed(s, path) do
        Enum.find_value(defs, fn
          {^m, ^f, args, ^line} when length(args) == a -> args
          {^m, ^f, args, ^line} -> fill_defaults(args, a)
          _ -> nil
        end)
      else
        _ -> nil
      end
    end)
  end

  # a clause with default arguments called with fewer: the defaults given are the first ones dropped
  defp fill_defaults(args, a) do
    defaults = Enum.count(args, &match?({:\\, _, _}, &1))
    missing = length(args) - a

    if missing > 0 and missing <= defaults do
      {kept, _} =
        Enum.map_reduce(args, missing, fn
          {:\\, _, _}, n when n > 0 -> {nil, n - 1}
          arg, n -> {arg, n}
        end)

      Enum.reject(kept, &is_nil/1)
    end
  end

  defp parsed(s, path) do
    cached(s, {:file, path}, fn ->
      with {:ok, %File.Stat{type: :regular, size: size}} when size <= @max_file_bytes <- File.stat(path),
           {:ok, text} <- File.read(path),
           {:ok, ast} <- Code.string_to_quoted(text, file: path) do
        {modules, defs} = collect(ast, nil, {[], []})
        %{modules: Enum.reverse(modules), defs: defs}
      else
        _ -> %{modules: [], defs: []}
      end
    end)
  rescue
    _ -> %{modules: [], defs: []}
  end

  # walks defmodule / def nodes, keeping the enclosing module
  defp collect({:defmodule, _, [{:__aliases__, _, parts}, [{:do, body} | _]]}, parent, {mods, defs})
       when is_list(parts) do
    if Enum.all?(parts, &is_atom/1) do
      mod = if parent, do: Module.concat([parent | parts]), else: Module.concat(parts)
      collect(body, mod, {[mod | mods], defs})
    else
      {mods, defs}
    end
  end

  defp collect({kind, meta, [head | _]}, mod, {mods, defs}) when kind in [:def, :defp] and mod != nil do
    case head(head) do
      {name, args} when is_atom(name) and is_list(args) -> {mods, [{mod, name, args, meta[:line]} | defs]}
      _ -> {mods, defs}
    end
  end

  defp collect({_, _, args}, mod, acc) when is_list(args), do: Enum.reduce(args, acc, &collect(&1, mod, &2))
  defp collect(list, mod, acc) when is_list(list), do: Enum.reduce(list, acc, &collect(&1, mod, &2))
  defp collect({a, b}, mod, acc), do: collect(b, mod, collect(a, mod, acc))
  defp collect(_, _mod, acc), do: acc

  defp head({:when, _, [call | _]}), do: head(call)
  defp head({name, _, args}) when is_atom(name) and is_list(args), do: {name, args}
  defp head({name, _, ctx}) when is_atom(name) and is_atom(ctx), do: {name, []}
  defp head(_), do: nil

  @doc """
  The names an argument pattern binds, given the value it matched:
  `[{name, value}]` (underscored names included, `_` alone not). Works on the
  quoted pattern without evaluating it: tuples, lists, maps, structs, `=`,
  `<>` with a literal prefix, defaults.
  """
  @spec bind(Macro.t(), term()) :: [{atom(), term()}]
  def bind({:\\, _, [p, _default]}, v), do: bind(p, v)
  def bind({:=, _, [l, r]}, v), do: bind(l, v) ++ bind(r, v)
  def bind({:^, _, _}, _v), do: []
  def bind({:_, _, ctx}, _v) when is_atom(ctx), do: []
  def bind({name, _, ctx}, v) when is_atom(name) and is_atom(ctx), do: [{name, v}]
  def bind({a, b}, {x, y}), do: bind(a, x) ++ bind(b, y)
  def bind({:{}, _, ps}, v) when is_tuple(v) and tuple_size(v) == length(ps), do: zip(ps, Tuple.to_list(v))
  def bind({:%, _, [_struct, {:%{}, _, pairs}]}, %{} = v), do: bind_pairs(pairs, v)
  def bind({:%{}, _, pairs}, %{} = v), do: bind_pairs(pairs, v)

  def bind({:<>, _, [prefix, rest]}, v) when is_binary(prefix) and is_binary(v) do
    if String.starts_with?(v, prefix), do: bind(rest, binary_part(v, byte_size(prefix), byte_size(v) - byte_size(prefix))), else: []
  end

  def bind(ps, v) when is_list(ps) and is_list(v), do: bind_list(ps, v)
  def bind(_p, _v), do: []

  defp zip(ps, vs), do: ps |> Enum.zip(vs) |> Enum.flat_map(fn {p, v} -> bind(p, v) end)

  defp bind_list([{:|, _, [h, t]}], [vh | vt]), do: bind(h, vh) ++ bind(t, vt)
  defp bind_list([p | ps], [v | vs]), do: bind(p, v) ++ bind_list(ps, vs)
  defp bind_list(_, _), do: []

  defp bind_pairs(pairs, v) when is_list(pairs) do
    Enum.flat_map(pairs, fn
      {k, p} when is_atom(k) or is_binary(k) or is_number(k) ->
        case Map.fetch(v, k) do
          {:ok, x} -> bind(p, x)
          :error -> []
        end

      _ ->
        []
    end)
  end

  defp bind_pairs(_, _), do: []

  @doc """
  The source text of `module`: `{:file, path}` when its file is found, else
  `{:recorded, text}`: its recorded expressions (`:expr` events) at their
  lines, blank lines elsewhere. Options: `source:` (the recording).
  """
  @spec text(t(), module(), keyword()) :: {:file, String.t()} | {:recorded, String.t()}
  def text(s, module, opts \\ []) do
    case path_of(s, module) do
      nil -> {:recorded, cached(s, {:recorded, module}, fn -> recorded_text(module, opts[:source]) end)}
      path -> {:file, path}
    end
  end

  defp recorded_text(module, src) do
    {_, lines} =
      [source: src]
      |> Query.stream()
      |> Stream.take(1_000_000)
      |> Enum.reduce({MapSet.new(), %{}}, fn
        %Event{kind: :call, module: ^module, id: id}, {calls, lines} -> {MapSet.put(calls, id), lines}
        %Event{kind: :expr, call_id: c, line: l, payload: {text, _}}, {calls, lines} when is_binary(text) and l > 0 ->
          if MapSet.member?(calls, c), do: {calls, Map.put_new(lines, l, first_line(text))}, else: {calls, lines}

        _, acc ->
          acc
      end)

    case Map.keys(lines) do
      [] -> "# no source was found for #{inspect(module)} and no expression of it was recorded\n"
      keys -> Enum.map_join(1..Enum.max(keys), "\n", &Map.get(lines, &1, "")) <> "\n"
    end
  catch
    {:query_error, msg} -> "# #{msg}\n"
  end

  defp first_line(text), do: text |> String.split("\n", parts: 2) |> hd()

  defp cached(%__MODULE__{table: t}, key, fun) do
    case :ets.lookup(t, key) do
      [{_, v}] ->
        v

      [] ->
        v = fun.()
        :ets.insert(t, {key, v})
        v
    end
  end
end
