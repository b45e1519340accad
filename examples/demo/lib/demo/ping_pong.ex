defmodule Demo.PingPong do
  @moduledoc "Two processes exchanging messages: `play/1` pings a ponger process for a number of rounds."

  @doc "Plays `rounds` rounds of ping-pong with a new process; returns the pongs received."
  @spec play(non_neg_integer()) :: non_neg_integer()
  def play(rounds) do
    ponger = spawn_link(fn -> pong() end)
    pongs = ping(ponger, rounds, 0)
    send(ponger, :stop)
    pongs
  end

  defp ping(_ponger, 0, pongs), do: pongs

  defp ping(ponger, n, pongs) do
    send(ponger, {:ping, self(), n})

    receive do
      {:pong, ^n} -> ping(ponger, n - 1, pongs + 1)
    after
      1_000 -> pongs
    end
  end

  defp pong do
    receive do
      {:ping, from, n} ->
        send(from, {:pong, n})
        pong()

      :stop ->
        :ok
    end
  end
end
