defmodule ElixirScope.Cluster.Clock do
  @moduledoc """
  Estimates how far another node's event clock (`ElixirScope.Capture.Ingestor.now/0`, monotonic
  ns) is from this node's, NTP-style: this node reads its clock (t0), asks the other node for its
  own (t1), reads its clock again (t2). If the request and the answer took equally long, the
  other clock read t1 at this node's `(t0 + t2) / 2`, so `offset = t1 - (t0 + t2) / 2`; whatever
  the asymmetry, the truth lies within `(t2 - t0) / 2` of it — the error bound. Of several
  exchanges the one with the shortest round trip (the tightest bound) is kept.

  An event recorded at `ts` on that node happened at `ts - offset` on this node's clock
  (`ElixirScope.Cluster.Merge` reads it so).
  """

  alias ElixirScope.Capture.Ingestor

  @typedoc "An estimate: the offset (theirs minus ours), its error bound, and when it was measured (our clock)."
  @type estimate :: %{offset_ns: integer(), error_ns: non_neg_integer(), at: integer(), samples: pos_integer()}

  @doc "Estimates `node`'s offset with `samples` exchanges, each within `timeout` ms. `{:ok, estimate}` or `{:error, reason}`."
  @spec estimate(node(), pos_integer(), timeout()) :: {:ok, estimate()} | {:error, term()}
  def estimate(node, samples \\ 8, timeout \\ 1_000)

  def estimate(node, samples, _timeout) when node == node() do
    {:ok, %{offset_ns: 0, error_ns: 0, at: Ingestor.now(), samples: samples}}
  end

  def estimate(node, samples, timeout) do
    Enum.reduce_while(1..samples, [], fn _, acc ->
      case exchange(node, timeout) do
        {:ok, s} -> {:cont, [s | acc]}
        error -> {:halt, error}
      end
    end)
    |> case do
      {:error, _} = error ->
        error

      exchanges ->
        {offset, rtt, t2} = Enum.min_by(exchanges, &elem(&1, 1))
        {:ok, %{offset_ns: offset, error_ns: div(rtt + 1, 2), at: t2, samples: samples}}
    end
  end

  defp exchange(node, timeout) do
    t0 = Ingestor.now()
    t1 = :erpc.call(node, Ingestor, :now, [], timeout)
    t2 = Ingestor.now()
    {:ok, {t1 - div(t0 + t2, 2), t2 - t0, t2}}
  catch
    kind, reason -> {:error, {kind, reason}}
  end
end
