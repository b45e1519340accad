defmodule Demo.Courier do
  @moduledoc "A plain process that delivers statements: a request/reply message exchange."

  @spec start_link(keyword()) :: {:ok, pid()}
  def start_link(opts) do
    pid = spawn_link(fn -> loop(0) end)
    if name = opts[:name], do: Process.register(pid, name)
    {:ok, pid}
  end

  @spec child_spec(keyword()) :: Supervisor.child_spec()
  def child_spec(opts), do: %{id: __MODULE__, start: {__MODULE__, :start_link, [opts]}}

  @doc "Asks the courier to deliver a statement; waits for its receipt."
  @spec deliver(pid() | atom(), String.t(), map()) :: {:delivered, pos_integer(), String.t()}
  def deliver(courier \\ __MODULE__, account, balances) do
    ref = make_ref()
    send(courier, {:deliver, self(), ref, account, balances})

    receive do
      {:receipt, ^ref, receipt} -> receipt
    after
      5_000 -> exit(:courier_timeout)
    end
  end

  defp loop(delivered) do
    receive do
      {:deliver, from, ref, account, balances} ->
        n = delivered + 1
        send(from, {:receipt, ref, {:delivered, n, statement(account, balances)}})
        loop(n)
    end
  end

  defp statement(account, balances) do
    "#{account}: #{Demo.Interest.format(Map.get(balances, account, 0))}"
  end
end
