# The module whose abstract forms the NIF fuzzer hands to NIF.forms_transform/2 as a valid
# request to mutate (ElixirScope.Fuzz.NIFs): a GenServer's callbacks, a receive, a send, a
# spawn, a try, a case, tail calls, a comprehension, a parameter named like a secret. It is
# compiled from this file (so the plan carries its source text), never run.
defmodule ElixirScope.Fuzz.FormsSeed do
  @moduledoc false
  @compile {:debug_info, true}
  use GenServer

  def start_link(n), do: GenServer.start_link(__MODULE__, n)

  @impl true
  def init(n), do: {:ok, %{n: n, last: nil}}

  @impl true
  def handle_call({:add, k}, from, %{n: n} = state) do
    total = n + k
    send(self(), {:added, from, total})
    {:reply, total, %{state | n: total}}
  end

  def handle_call(:get, _from, state), do: {:reply, state.n, state}

  @impl true
  def handle_cast({:login, password}, state), do: {:noreply, %{state | last: byte_size(password)}}

  @impl true
  def handle_info(msg, state), do: {:noreply, %{state | last: msg}}

  def wait(timeout) do
    receive do
      {:ping, from} ->
        send(from, :pong)
        wait(timeout)

      :stop ->
        :ok
    after
      timeout -> :timeout
    end
  end

  def safe(fun) do
    try do
      fun.()
    rescue
      e in ArgumentError -> {:error, e}
    catch
      :throw, value -> {:thrown, value}
    after
      :ok
    end
  end

  def classify(x) when is_integer(x) do
    case rem(x, 3) do
      0 -> :fizz
      1 -> classify(x + 1)
      _ -> spawn(fn -> x end)
    end
  end

  def doubled(list), do: for(x <- list, x > 0, do: x * 2)

  def count(acc, 0), do: acc
  def count(acc, n) when n > 0, do: count([n | acc], n - 1)
end
