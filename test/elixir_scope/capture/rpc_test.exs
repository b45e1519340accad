defmodule ElixirScope.Capture.RpcTest do
  @moduledoc false
  # What each :erpc/:rpc form the transformer wraps asks of which nodes, read from its arguments.
  use ExUnit.Case, async: true

  alias ElixirScope.Capture.Rpc

  test "each form gives its nodes and its request" do
    fun = fn -> :ok end
    mfa = {M, :f, [1, 2]}

    for {api, args, expected} <- [
          {{:erpc, :call}, [:a@h, fun], {:a@h, fun}},
          {{:erpc, :call}, [:a@h, fun, 100], {:a@h, fun}},
          {{:erpc, :call}, [:a@h, M, :f, [1, 2]], {:a@h, mfa}},
          {{:erpc, :call}, [:a@h, M, :f, [1, 2], :infinity], {:a@h, mfa}},
          {{:erpc, :cast}, [:a@h, fun], {:a@h, fun}},
          {{:erpc, :cast}, [:a@h, M, :f, [1, 2]], {:a@h, mfa}},
          {{:erpc, :multicall}, [[:a@h, :b@h], M, :f, [1, 2]], {[:a@h, :b@h], mfa}},
          {{:erpc, :multicall}, [[:a@h], fun, 100], {[:a@h], fun}},
          {{:erpc, :multicast}, [[:a@h], M, :f, [1, 2]], {[:a@h], mfa}},
          {{:rpc, :call}, [:a@h, M, :f, [1, 2]], {:a@h, mfa}},
          {{:rpc, :call}, [:a@h, M, :f, [1, 2], 5_000], {:a@h, mfa}},
          {{:rpc, :cast}, [:a@h, M, :f, [1, 2]], {:a@h, mfa}},
          {{:rpc, :multicall}, [[:a@h, :b@h], M, :f, [1, 2]], {[:a@h, :b@h], mfa}},
          {{:rpc, :multicall}, [[:a@h], M, :f, [1, 2], 5_000], {[:a@h], mfa}},
          # without nodes: this node and the connected ones
          {{:rpc, :multicall}, [M, :f, [1, 2]], {[node() | Node.list()], mfa}},
          {{:rpc, :multicall}, [M, :f, [1, 2], 5_000], {[node() | Node.list()], mfa}}
        ] do
      assert Rpc.request(api, args) == expected, "#{inspect(api)} #{inspect(args)}"
    end
  end

  test "arguments the call itself refuses (badarg) give no request" do
    for {api, args} <- [
          {{:erpc, :call}, [1, M, :f, []]},
          {{:erpc, :call}, [:a@h, fn x -> x end]},
          {{:erpc, :call}, [:a@h, M, :f, :not_a_list]},
          {{:erpc, :multicall}, [[:a@h | :b@h], M, :f, []]},
          {{:erpc, :multicall}, [[:a@h, 1], M, :f, []]},
          {{:rpc, :call}, [[:a@h], M, :f, []]},
          {{:erpc, :send_request}, [:a@h, M, :f, []]}
        ] do
      assert Rpc.request(api, args) == nil, "#{inspect(api)} #{inspect(args)}"
    end
  end

  test "the nodes of a request" do
    assert Rpc.nodes(:a@h) == [:a@h]
    assert Rpc.nodes([:a@h, :b@h]) == [:a@h, :b@h]
  end
end
