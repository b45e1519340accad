defmodule ElixirScope.Capture.Memory do
  @moduledoc """
  The memory a capture session may take, and how `max_memory` is shared out.

  A session holds three things: the ring's slots (`capture: [buffer_size:]` ×
  256 B, reserved up front but made resident page by page as events arrive),
  the ring's out-of-slot payloads (events whose encoded payload is over 168 B
  wait until drained in blocks of the ring's payload pool, carved up to the
  budget below and reused, or in the heap when the pool has no block for them),
  and the event store (`storage: [max_bytes:]`).
  `max_memory` (default 1 GiB; `0` = unbounded) bounds their sum:

    * the slots must fit: a ring larger than `max_memory` is refused, naming
      what it would take; `buffer_size` is at most 2^22 (1 GiB of slots) anyway;
    * the ring's payload budget is what is left after the slots and the store,
      but never more than `buffer_size × max_payload_bytes` (with an unbounded
      store, a quarter of what the slots leave); a payload over the budget is
      dropped and counted as `ring_full`;
    * `storage: [max_bytes: 0]` means "what `max_memory` leaves".

  The store may go over its cap by up to one segment (see `c_src/event_store.h`).
  """

  import Bitwise

  @slot_bytes 256
  @max_slots 1 <<< 22

  @doc "Bytes of one ring slot."
  @spec slot_bytes() :: pos_integer()
  def slot_bytes, do: @slot_bytes

  @doc "The largest `buffer_size`."
  @spec max_slots() :: pos_integer()
  def max_slots, do: @max_slots

  @doc "Checks a validated configuration's memory settings; the error names the sizes."
  @spec check(keyword()) :: :ok | {:error, String.t()}
  def check(config) do
    slots = config[:capture][:buffer_size]
    ring = slots * @slot_bytes
    max = config[:max_memory]
    store = config[:storage][:max_bytes]

    cond do
      slots > @max_slots ->
        {:error,
         "ElixirScope option capture.buffer_size #{slots} would take #{human(ring)} for the ring " <>
           "(#{@slot_bytes} B a slot); the largest is #{@max_slots} (#{human(@max_slots * @slot_bytes)})"}

      max > 0 and ring > max ->
        {:error,
         "ElixirScope option capture.buffer_size #{slots} would take #{human(ring)} for the ring " <>
           "(#{@slot_bytes} B a slot), more than max_memory (#{human(max)})"}

      max > 0 and store > 0 and ring + store > max ->
        {:error,
         "the ring (#{human(ring)}, capture.buffer_size #{slots}) and storage.max_bytes (#{human(store)}) " <>
           "together exceed max_memory (#{human(max)})"}

      true ->
        :ok
    end
  end

  @doc "The ring's budget for out-of-slot payloads in bytes (`0` = unbounded)."
  @spec ring_payload_budget(keyword()) :: non_neg_integer()
  def ring_payload_budget(config) do
    max = config[:max_memory]
    slots = config[:capture][:buffer_size]
    worst = slots * config[:capture][:max_payload_bytes]
    left = max - slots * @slot_bytes
    store = config[:storage][:max_bytes]

    cond do
      max == 0 -> 0
      store == 0 -> max(min(worst, div(left, 4)), 1)
      true -> max(min(worst, left - store), 1)
    end
  end

  @doc "The store's byte cap (`0` = unbounded)."
  @spec store_max_bytes(keyword()) :: non_neg_integer()
  def store_max_bytes(config) do
    max = config[:max_memory]

    case config[:storage][:max_bytes] do
      0 when max > 0 -> max(max - config[:capture][:buffer_size] * @slot_bytes - ring_payload_budget(config), 1)
      n -> n
    end
  end

  @doc "A byte count for people: `\"16 GiB\"`, `\"512 MiB\"`, `\"300 B\"`."
  @spec human(non_neg_integer()) :: String.t()
  def human(bytes) when bytes >= 1 <<< 30, do: unit(bytes, 1 <<< 30, "GiB")
  def human(bytes) when bytes >= 1 <<< 20, do: unit(bytes, 1 <<< 20, "MiB")
  def human(bytes) when bytes >= 1 <<< 10, do: unit(bytes, 1 <<< 10, "KiB")
  def human(bytes), do: "#{bytes} B"

  defp unit(bytes, size, name) do
    if rem(bytes, size) == 0, do: "#{div(bytes, size)} #{name}", else: "#{Float.round(bytes / size, 1)} #{name}"
  end
end
