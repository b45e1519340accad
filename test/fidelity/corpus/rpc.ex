defmodule Fidelity.Rpc do
  @moduledoc "Remote procedure calls to this node, in each form the transformer records: what the caller sees."

  def double(x), do: x * 2

  def refuse(x) when x < 0, do: raise(ArgumentError, "negative: #{x}")
  def refuse(x) when x > 40, do: throw({:too_big, x})
  def refuse(x), do: x

  def erpc(x) do
    v = :erpc.call(node(), __MODULE__, :double, [x])
    {:erpc, v}
  end

  # in tail position: the call's value is the function's
  def erpc_tail(x), do: :erpc.call(node(), __MODULE__, :double, [x], 5_000)

  def rpc(x) do
    v = :rpc.call(node(), __MODULE__, :refuse, [x])
    {:rpc, v}
  end

  def refused(x) do
    v = :erpc.call(node(), __MODULE__, :refuse, [x])
    {:ok, v}
  end

  def multi(x) do
    r = :erpc.multicall([node()], __MODULE__, :refuse, [x])
    {:multi, r}
  end

  def rpc_multi(x) do
    r = :rpc.multicall([node()], __MODULE__, :refuse, [x])
    {:rpc_multi, r}
  end

  def fun(x) do
    v = :erpc.call(node(), fn -> refuse(x) end)
    {:fun, v}
  end

  def cast(x), do: :erpc.cast(node(), __MODULE__, :double, [x])

  # a node that is not an atom: :erpc raises badarg itself
  def bad_node(x) do
    v = :erpc.call(x, __MODULE__, :double, [x])
    {:never, v}
  end
end
