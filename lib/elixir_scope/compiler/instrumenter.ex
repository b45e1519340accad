defmodule ElixirScope.Compiler.Instrumenter do
  @moduledoc """
  Parses one source file and instruments each `defmodule` in it with the transformer, according to
  the module's plan (`ElixirScope.Compiler.Settings.module_plan/2`).

  Nested modules are instrumented with their own plans: before a module is given to the
  transformer, each nested `defmodule` in its body (already instrumented) is replaced by a
  placeholder, and put back afterwards, so no code is ever instrumented twice.
  A module whose transform fails is compiled as it is, with a warning naming the reason.
  """

  alias ElixirScope.Compiler.Settings

  @placeholder :__elixir_scope_nested_module__

  @type result :: %{
          forms: Macro.t(),
          modules: [{module(), Settings.level(), :instrumented | :plain | {:failed, String.t()}}],
          warnings: [{pos_integer(), String.t()}]
        }

  @doc """
  Parses `source` (the content of `file`) and instruments it. Returns the forms to compile, the
  modules found with their levels, and warnings `{line, message}`; or the parse error exception.
  """
  @spec instrument(String.t(), String.t(), Settings.t()) ::
          {:ok, result()} | {:error, Exception.t()}
  def instrument(file, source, %Settings{} = settings) do
    case parse(file, source) do
      {:ok, ast} ->
        {forms, acc} = walk(ast, nil, settings, %{modules: [], warnings: []})

        {:ok,
         %{forms: forms, modules: Enum.reverse(acc.modules), warnings: Enum.reverse(acc.warnings)}}

      {:error, _} = error ->
        error
    end
  end

  defp parse(file, source) do
    {:ok, Code.string_to_quoted!(source, file: file, columns: true, token_metadata: true)}
  rescue
    e -> {:error, e}
  end

  # Walks the file AST; each defmodule is instrumented innermost first.
  defp walk({:defmodule, meta, [alias_ast, [{:do, body}] = _block]}, parent, settings, acc) do
    name = module_name(alias_ast, parent)
    {body, acc} = walk(body, name || parent, settings, acc)
    {body, nested} = extract_nested(body)
    node = {:defmodule, meta, [alias_ast, [do: body]]}
    plan = if name, do: Settings.module_plan(settings, name), else: %{level: :none}
    {node, acc} = transform(node, name, plan, settings, acc)
    {restore_nested(node, nested), acc}
  end

  # defimpl: its body is instrumented as the body of the implementation module `Proto.For`
  # (given to the transformer inside a stand-in defmodule, then put back into the defimpl).
  defp walk({:defimpl, meta, [proto | rest]} = node, parent, settings, acc) do
    case split_impl(rest) do
      {:ok, for_ast, body, rebuild} ->
        name = impl_name(proto, for_ast, parent)
        {body, acc} = walk(body, name || parent, settings, acc)
        {body, nested} = extract_nested(body)

        stand_in =
          {:defmodule, meta, [{:__aliases__, meta, [name || :ElixirScopeImpl]}, [do: body]]}

        plan = if name, do: Settings.module_plan(settings, name), else: %{level: :none}

        case transform(stand_in, name, plan, settings, acc) do
          {{:defmodule, _, [_, [do: new_body]]}, acc} ->
            {{:defimpl, meta, [proto | rebuild.(restore_nested(new_body, nested))]}, acc}

          {_other, acc} ->
            {restore_nested({:defimpl, meta, [proto | rebuild.(body)]}, nested), acc}
        end

      :error ->
        {node, acc}
    end
  end

  defp walk({form, meta, args}, parent, settings, acc) when is_list(args) do
    {form, acc} = walk(form, parent, settings, acc)
    {args, acc} = walk(args, parent, settings, acc)
    {{form, meta, args}, acc}
  end

  defp walk({left, right}, parent, settings, acc) do
    {left, acc} = walk(left, parent, settings, acc)
    {right, acc} = walk(right, parent, settings, acc)
    {{left, right}, acc}
  end

  defp walk(list, parent, settings, acc) when is_list(list) do
    Enum.map_reduce(list, acc, &walk(&1, parent, settings, &2))
  end

  defp walk(other, _parent, _settings, acc), do: {other, acc}

  defp split_impl([[do: body]]), do: {:ok, nil, body, &[[do: &1]]}

  defp split_impl([opts, [do: body]]) when is_list(opts),
    do: {:ok, Keyword.get(opts, :for), body, &[opts, [do: &1]]}

  defp split_impl([opts]) when is_list(opts) do
    if Keyword.keyword?(opts) and Keyword.has_key?(opts, :do),
      do: {:ok, Keyword.get(opts, :for), opts[:do], &[Keyword.put(opts, :do, &1)]},
      else: :error
  end

  defp split_impl(_), do: :error

  defp impl_name(proto, for_ast, parent) do
    target = if for_ast == nil, do: parent, else: module_name(for_ast, nil)
    proto = module_name(proto, nil)
    if proto && target, do: Module.concat(proto, target), else: nil
  end

  defp transform(node, name, %{level: :none}, _settings, acc) do
    {node, record(acc, name, :none)}
  end

  defp transform(node, name, plan, settings, acc) do
    line = node |> elem(1) |> Keyword.get(:line, 1)

    case call_transformer(settings.transformer, node, plan) do
      {:ok, new_node} ->
        {new_node, record(acc, name, plan.level)}

      {:error, reason} ->
        msg = "ElixirScope: #{inspect(name)} is compiled without instrumentation: #{reason}"
        {node, %{record(acc, name, plan.level, reason) | warnings: [{line, msg} | acc.warnings]}}
    end
  end

  defp call_transformer(mod, node, plan) do
    if Code.ensure_loaded?(mod) and function_exported?(mod, :transform_module, 2) do
      case apply(mod, :transform_module, [node, plan]) do
        {:ok, _} = ok -> ok
        {:error, reason} -> {:error, to_message(reason)}
        other -> {:error, "the transformer returned #{inspect(other, limit: 5)}"}
      end
    else
      {:error, "the transformer #{inspect(mod)} is not available"}
    end
  rescue
    e -> {:error, "the transformer raised " <> Exception.format_banner(:error, e)}
  end

  defp to_message(reason) when is_binary(reason), do: reason
  defp to_message(reason), do: inspect(reason)

  # {module, planned level, :instrumented | :plain | {:failed, reason}}
  defp record(acc, name, level, failure \\ nil)
  defp record(acc, nil, _level, _failure), do: acc
  defp record(acc, name, :none, _), do: %{acc | modules: [{name, :none, :plain} | acc.modules]}

  defp record(acc, name, level, nil),
    do: %{acc | modules: [{name, level, :instrumented} | acc.modules]}

  defp record(acc, name, level, why),
    do: %{acc | modules: [{name, level, {:failed, why}} | acc.modules]}

  # Replaces nested defmodule nodes in a module body by numbered placeholders.
  defp extract_nested(body) do
    {body, {_, nested}} =
      Macro.prewalk(body, {0, %{}}, fn
        {kind, _, [_ | _]} = mod, {n, map} when kind in [:defmodule, :defimpl] ->
          {{@placeholder, [], [n]}, {n + 1, Map.put(map, n, mod)}}

        other, acc ->
          {other, acc}
      end)

    {body, nested}
  end

  defp restore_nested(node, nested) when map_size(nested) == 0, do: node

  defp restore_nested(node, nested) do
    Macro.prewalk(node, fn
      {@placeholder, [], [n]} when is_map_key(nested, n) -> Map.fetch!(nested, n)
      other -> other
    end)
  end

  @doc false
  @spec module_name(Macro.t(), module() | nil) :: module() | nil
  def module_name({:__aliases__, _, [:"Elixir" | rest]}, _parent) when rest != [],
    do: safe_concat(rest)

  def module_name({:__aliases__, _, [{:__MODULE__, _, ctx} | rest]}, parent)
      when is_atom(ctx) and parent != nil,
      do: safe_concat([parent | rest])

  def module_name({:__aliases__, _, parts}, nil), do: safe_concat(parts)
  def module_name({:__aliases__, _, parts}, parent), do: safe_concat([parent | parts])
  def module_name({:__MODULE__, _, ctx}, parent) when is_atom(ctx), do: parent

  def module_name(atom, _parent) when is_atom(atom) and atom not in [nil, true, false], do: atom
  def module_name(_other, _parent), do: nil

  defp safe_concat(parts) do
    if Enum.all?(parts, &is_atom/1), do: Module.concat(parts), else: nil
  end
end
