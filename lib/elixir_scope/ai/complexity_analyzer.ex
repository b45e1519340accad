defmodule ElixirScope.AI.ComplexityAnalyzer do
  @moduledoc """
  Complexity metrics of quoted Elixir code: cyclomatic complexity (McCabe:
  1 + decision points), maximum nesting depth of branching constructs, and
  size (number of AST nodes).

  Decision points: each extra clause of `case`/`cond`/`receive`/`fn`/a
  multi-clause function, `if`/`unless`, each `<-` of `with`/`for` and each
  `else` clause, each `rescue`/`catch` clause, `&&`/`||`/`and`/`or`, guards.
  """

  @type metrics :: %{
          cyclomatic: pos_integer,
          nesting_depth: non_neg_integer,
          size: non_neg_integer
        }
  @type result :: %{
          cyclomatic: pos_integer,
          nesting_depth: non_neg_integer,
          size: non_neg_integer,
          functions: %{{atom, non_neg_integer} => metrics},
          total: metrics
        }

  @branching [:case, :cond, :if, :unless, :with, :receive, :try, :fn, :for]
  @defs [:def, :defp, :defmacro, :defmacrop]

  @doc """
  Metrics of `ast`. For a `defmodule` (or a block of definitions) the
  per-function metrics are under `:functions` (clauses of one function are
  combined) and `:total` sums cyclomatic and size and takes the maximum depth;
  the top-level keys describe the whole AST as one unit.
  """
  @spec calculate_complexity(Macro.t()) :: result
  def calculate_complexity(ast) do
    functions =
      ast
      |> collect_defs()
      |> Enum.group_by(fn {key, _clause} -> key end, fn {_key, clause} -> clause end)
      |> Map.new(fn {key, clauses} -> {key, function_metrics(clauses)} end)

    whole = metrics(ast)

    total =
      if map_size(functions) == 0 do
        whole
      else
        vals = Map.values(functions)

        %{
          cyclomatic: Enum.sum(Enum.map(vals, & &1.cyclomatic)),
          nesting_depth: Enum.max(Enum.map(vals, & &1.nesting_depth)),
          size: Enum.sum(Enum.map(vals, & &1.size))
        }
      end

    Map.merge(whole, %{functions: functions, total: total})
  end

  @doc "Metrics of the clauses of one function (each a `{head, body}` pair of quoted code)."
  @spec function_metrics([{Macro.t(), Macro.t()}]) :: metrics
  def function_metrics(clauses) do
    per =
      Enum.map(clauses, fn {head, body} -> {metrics(head), metrics(body), guard_count(head)} end)

    %{
      cyclomatic:
        1 + (length(clauses) - 1) +
          Enum.sum(Enum.map(per, fn {_h, b, g} -> b.cyclomatic - 1 + g end)),
      nesting_depth:
        per |> Enum.map(fn {_h, b, _g} -> b.nesting_depth end) |> Enum.max(fn -> 0 end),
      size: Enum.sum(Enum.map(per, fn {h, b, _g} -> h.size + b.size end))
    }
  end

  @arith [:+, :-, :*, :/]
  @int_arith [:div, :rem]

  @doc """
  The arithmetic a piece of code does: the operators and functions used (`+ - * / div rem`),
  sorted, each once. An operation on two number literals is left out (it is a constant).
  """
  @spec arithmetic(Macro.t()) :: [atom]
  def arithmetic(ast) do
    {_, ops} =
      Macro.prewalk(ast, [], fn
        # a capture `&abs/1` names a function: its `/` is no division
        {:&, _, [{:/, _, [_, arity]}]}, acc when is_integer(arity) ->
          {:capture, acc}

        {op, _, [a, b]} = node, acc when op in @arith ->
          {node, if(is_number(a) and is_number(b), do: acc, else: [op | acc])}

        # div/rem, also piped (one argument) and as Kernel.div
        {op, _, args} = node, acc when op in @int_arith and is_list(args) and length(args) in [1, 2] ->
          {node, [op | acc]}

        {{:., _, [{:__aliases__, _, [:Kernel]}, op]}, _, args} = node, acc when op in @int_arith and is_list(args) ->
          {node, [op | acc]}

        node, acc ->
          {node, acc}
      end)

    ops |> Enum.uniq() |> Enum.sort()
  end

  @doc "Metrics of one expression."
  @spec metrics(Macro.t()) :: metrics
  def metrics(ast) do
    {decisions, depth, size} = walk(ast, 0)
    %{cyclomatic: 1 + decisions, nesting_depth: depth, size: size}
  end

  defp guard_count({:when, _, [_call, guard]}), do: 1 + bool_ops(guard)
  defp guard_count(_), do: 0

  defp bool_ops(ast) do
    {_, n} =
      Macro.prewalk(ast, 0, fn
        {op, _, [_, _]} = node, acc when op in [:and, :or, :&&, :||] -> {node, acc + 1}
        node, acc -> {node, acc}
      end)

    n
  end

  # Returns {decision_points, max_nesting, size}.
  defp walk({form, _meta, args} = node, level) when form in @branching and is_list(args) do
    {d, depth, size} = walk_children(args, level + 1)
    {d + decisions(node), max(depth, level + 1), size + 1}
  end

  defp walk({op, _meta, [a, b]}, level) when op in [:and, :or, :&&, :||] do
    {d, depth, size} = walk_children([a, b], level)
    {d + 1, depth, size + 1}
  end

  defp walk({callee, _meta, args}, level) when is_list(args) do
    {d1, dep1, s1} = walk(callee, level)
    {d2, dep2, s2} = walk_children(args, level)
    {d1 + d2, max(dep1, dep2), s1 + s2 + 1}
  end

  defp walk({callee, _meta, _ctx}, _level) when is_atom(callee), do: {0, 0, 1}
  defp walk({a, b}, level), do: walk_children([a, b], level)
  defp walk(list, level) when is_list(list), do: walk_children(list, level)
  defp walk(_literal, _level), do: {0, 0, 1}

  defp walk_children(list, level) do
    Enum.reduce(list, {0, 0, 0}, fn child, {d, dep, s} ->
      {cd, cdep, cs} = walk(child, level)
      {d + cd, max(dep, cdep), s + cs}
    end)
  end

  defp decisions({:case, _, [_subject, kw]}), do: clause_count(kw, :do) - 1
  defp decisions({:cond, _, [kw]}), do: clause_count(kw, :do) - 1

  defp decisions({:receive, _, [kw]}),
    do: max(clause_count(kw, :do) - 1, 0) + if(has?(kw, :after), do: 1, else: 0)

  defp decisions({:fn, _, clauses}), do: length(clauses) - 1 + Enum.count(clauses, &fn_guard?/1)
  defp decisions({form, _, _}) when form in [:if, :unless], do: 1

  defp decisions({:with, _, args}) do
    {kw, gens} = List.pop_at(args, -1)
    Enum.count(gens, &match?({:<-, _, _}, &1)) + clause_count(kw, :else)
  end

  defp decisions({:for, _, args}), do: Enum.count(args, &match?({:<-, _, _}, &1))

  defp decisions({:try, _, [kw]}),
    do: clause_count(kw, :rescue) + clause_count(kw, :catch) + clause_count(kw, :else)

  defp decisions(_), do: 0

  defp fn_guard?({:->, _, [[{:when, _, _}], _]}), do: true
  defp fn_guard?(_), do: false

  defp has?(kw, key) when is_list(kw), do: Keyword.has_key?(kw, key)
  defp has?(_, _), do: false

  defp clause_count(kw, key) when is_list(kw) do
    case Keyword.get(kw, key) do
      clauses when is_list(clauses) -> Enum.count(clauses, &match?({:->, _, _}, &1))
      _ -> 0
    end
  end

  defp clause_count(_, _), do: 0

  # Function clauses of a defmodule / block: [{{name, arity}, {head, body}}]
  defp collect_defs({:defmodule, _, [_alias, [do: body]]}), do: collect_defs(body)
  defp collect_defs({:__block__, _, stmts}), do: Enum.flat_map(stmts, &collect_defs/1)

  defp collect_defs({kind, _, [head | rest]}) when kind in @defs do
    case name_arity(head) do
      {name, arity} -> [{{name, arity}, {head, body_of(rest)}}]
      nil -> []
    end
  end

  defp collect_defs(_), do: []

  defp body_of([kw]) when is_list(kw), do: kw
  defp body_of(_), do: nil

  @doc false
  @spec name_arity(Macro.t()) :: {atom, non_neg_integer} | nil
  def name_arity({:when, _, [call, _guard]}), do: name_arity(call)
  def name_arity({name, _, args}) when is_atom(name) and is_list(args), do: {name, length(args)}
  def name_arity({name, _, ctx}) when is_atom(name) and is_atom(ctx), do: {name, 0}
  def name_arity(_), do: nil
end
