defmodule ElixirScope.Capture.Rpc do
  @moduledoc """
  What an `:erpc`/`:rpc` call asks of other nodes, read from its arguments as compiled code
  recorded them at the call site (`c_src/forms_messages.c`): the node or nodes it goes to and the
  request — `{module, function, args}` or the fun to run there. The remote side is not changed:
  its work is paired with the request at query time (`ElixirScope.Query.Correlation`).
  """

  @type request :: {module(), atom(), list()} | fun()
  @type dest :: node() | [node()]

  @doc """
  `{dest, request}` of a call to `api` (`{:erpc | :rpc, function}`) with `args`, or nil when the
  arguments are not those of such a call (the call will raise `badarg` by itself).
  `:rpc.multicall/3,4` without nodes goes to this node and the connected ones.
  """
  @spec request({module(), atom()}, list()) :: {dest(), request()} | nil
  def request({:erpc, f}, [to, fun | _]) when f in [:call, :cast, :multicall, :multicast] and is_function(fun, 0),
    do: dest(to, fun)

  def request({:erpc, f}, [to, m, fun, a | _]) when f in [:call, :cast, :multicall, :multicast], do: dest(to, mfa(m, fun, a))
  def request({:rpc, f}, [to, m, fun, a | _]) when f in [:call, :cast] and is_atom(to), do: dest(to, mfa(m, fun, a))
  def request({:rpc, :multicall}, [to, m, fun, a | _]) when is_list(to), do: dest(to, mfa(m, fun, a))
  def request({:rpc, :multicall}, [m, fun, a | _]) when is_atom(m), do: dest([node() | Node.list()], mfa(m, fun, a))
  def request(_api, _args), do: nil

  defp mfa(m, f, a) when is_atom(m) and is_atom(f) and is_list(a), do: {m, f, a}
  defp mfa(_m, _f, _a), do: nil

  defp dest(_to, nil), do: nil
  defp dest(to, request) when is_atom(to), do: {to, request}

  defp dest(to, request) when is_list(to), do: if(atoms?(to), do: {to, request})
  defp dest(_to, _request), do: nil

  # a proper list of atoms (an improper one makes the call raise badarg by itself)
  defp atoms?([a | rest]) when is_atom(a), do: atoms?(rest)
  defp atoms?(rest), do: rest == []

  @doc "The nodes a request goes to (`dest` of `request/2`)."
  @spec nodes(dest()) :: [node()]
  def nodes(dest) when is_atom(dest), do: [dest]
  def nodes(dest) when is_list(dest), do: dest
end
