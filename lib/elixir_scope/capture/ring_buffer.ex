defmodule ElixirScope.Capture.RingBuffer do
  @moduledoc """
  The Elixir face of the native lock-free ring buffer: draining it into the
  event store and reading its counters. Draining runs on a dirty CPU scheduler
  and is serialised natively, so store ids keep the ring's order (and so every
  process's events keep their exact order).
  """

  alias ElixirScope.NIF

  @doc "Moves up to `max` events from the ring into the store; returns how many."
  @spec drain(reference(), pos_integer()) :: non_neg_integer()
  def drain(session, max) when is_integer(max) and max > 0, do: NIF.drain(session, max)

  @doc "Drains until the ring is empty (bounded by `max_rounds` batches). Returns the total drained."
  @spec drain_all(reference(), pos_integer(), pos_integer()) :: non_neg_integer()
  def drain_all(session, batch_size, max_rounds \\ 1_000) do
    Enum.reduce_while(1..max_rounds, 0, fn _, total ->
      case drain(session, batch_size) do
        0 -> {:halt, total}
        n -> {:cont, total + n}
      end
    end)
  end

  @doc "Ring and store counters: emitted, stored, drops by reason, pending, evictions, bytes."
  @spec stats(reference()) :: map()
  def stats(session), do: NIF.stats(session)
end
