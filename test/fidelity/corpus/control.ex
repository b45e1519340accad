defmodule Fidelity.Control do
  @moduledoc """
  Recursion through `case`, `cond`, `with`, `receive` and `try` (`rescue`, `catch`, `else`,
  `after`), as interpreters, retry helpers and tree walkers write it.
  """

  defp depth, do: elem(Process.info(self(), :stack_size), 1)

  @doc "Evaluates an arithmetic tree (body recursion through case and cond)."
  def eval({:num, n}, _env) when is_number(n), do: n
  def eval({:var, name}, env), do: Map.fetch!(env, name)

  def eval({op, a, b}, env) when op in [:add, :sub, :mul, :div] do
    x = eval(a, env)
    y = eval(b, env)

    cond do
      op == :add -> x + y
      op == :sub -> x - y
      op == :mul -> x * y
      y == 0 -> throw({:division_by_zero, a})
      true -> div(x, y)
    end
  end

  def eval({:let, name, value, body}, env) do
    case eval(value, env) do
      v when is_integer(v) -> eval(body, Map.put(env, name, v))
      other -> raise ArgumentError, "let #{name}: not an integer: #{inspect(other)}"
    end
  end

  def eval(other, _env), do: exit({:bad_expression, other})

  @doc "Evaluates with every failure turned into an error tuple (try with rescue and catch)."
  def safe_eval(expr, env \\ %{}) do
    try do
      eval(expr, env)
    rescue
      e in [ArgumentError, KeyError] -> {:error, e.__struct__, Exception.message(e)}
      e in ArithmeticError -> {:error, :arith, e}
    catch
      :throw, {:division_by_zero, at} -> {:error, :div0, at}
      :exit, reason -> {:error, :exit, reason}
    else
      n when n < 0 -> {:ok, :negative, n}
      n -> {:ok, n}
    after
      send(self(), :evaluated)
    end
  end

  @doc "A chain of `with` steps with `else` clauses."
  def checkout(cart) do
    with {:ok, items} when items != [] <- Map.fetch(cart, :items),
         {:ok, total} <- total(items),
         :ok <- check_limit(total, Map.get(cart, :limit, 100)),
         discount = Map.get(cart, :discount, 0),
         true <- discount in 0..50 || {:error, :bad_discount} do
      {:ok, total - div(total * discount, 100)}
    else
      :error -> {:error, :no_items}
      {:ok, []} -> {:error, :empty}
      {:error, _} = error -> error
      {:over, by} -> {:error, {:over_limit, by}}
    end
  end

  defp total(items) do
    Enum.reduce_while(items, {:ok, 0}, fn
      {_name, price, qty}, {:ok, sum} when is_integer(price) and is_integer(qty) and qty > 0 ->
        {:cont, {:ok, sum + price * qty}}

      item, _ ->
        {:halt, {:error, {:bad_item, item}}}
    end)
  end

  defp check_limit(total, limit) when total <= limit, do: :ok
  defp check_limit(total, limit), do: {:over, total - limit}

  @doc "Retries from the rescue clause (a tail call there): returns the attempts and the depth."
  def retry(n, attempts \\ 0) do
    try do
      if n > 0, do: raise(RuntimeError, "not yet"), else: :done
    rescue
      RuntimeError -> retry(n - 1, attempts + 1)
    else
      :done -> {attempts, depth()}
    end
  end

  @doc "Retries from a catch clause."
  def retry_throw(n) do
    try do
      if n > 0, do: throw(:again), else: :done
    catch
      :again -> retry_throw(n - 1)
    else
      :done -> depth()
    end
  end

  @doc "Body recursion through try/after: every level runs its after block (observable)."
  def nested_after(0), do: depth()

  def nested_after(n) do
    try do
      nested_after(n - 1)
    after
      Process.put(:fidelity_after, n)
    end
  end

  @doc "A worker loop over its mailbox: receive in tail position."
  def drain(acc \\ []) do
    receive do
      {:item, x} when is_integer(x) -> drain([x * 2 | acc])
      {:item, x} -> drain([{:odd, x} | acc])
      :stop -> {Enum.reverse(acc), depth()}
    after
      0 -> {:timeout, Enum.reverse(acc)}
    end
  end

  def fill_and_drain(n) do
    for i <- 1..n//1, do: send(self(), {:item, i})
    send(self(), :stop)
    drain()
  end

  @doc "Tree depth (non-tail recursion through case) and a reraise keeping the stacktrace."
  def tree_depth(nil), do: 0

  def tree_depth({left, _value, right}) do
    case {tree_depth(left), tree_depth(right)} do
      {l, r} when l >= r -> l + 1
      {_, r} -> r + 1
    end
  end

  def tree_depth(other), do: raise(ArgumentError, "not a tree: #{inspect(other)}")

  def build_tree(0), do: nil

  def build_tree(n),
    do: {build_tree(n - 1), n, if(rem(n, 3) == 0, do: build_tree(div(n, 2)), else: nil)}

  def reraise_wrapped(fun) do
    try do
      fun.()
    rescue
      e -> reraise RuntimeError, [message: "wrapped: " <> Exception.message(e)], __STACKTRACE__
    end
  end

  def wrap_call(arg), do: reraise_wrapped(fn -> exit_or_error(arg) end)

  def exit_or_error(:exit), do: exit(:shutdown)
  def exit_or_error(:error), do: :erlang.error(:badarg, [:error])
  def exit_or_error(:raise), do: raise("plain")
  def exit_or_error(:throw), do: throw(:thrown)
  def exit_or_error({:fun_clause, v}), do: (fn {:ok, x} -> x end).(v)

  def exit_or_error({:case_clause, v}),
    do:
      (case v do
         :never -> 1
       end)

  def exit_or_error({:badmatch, v}), do: ({:ok, x} = v) && x
end
