defmodule ElixirScope.Capture.MemoryTest do
  # buffer_size has a ceiling, max_memory bounds ring + store, and the ring's pages are touched lazily.
  use ElixirScope.ScopeCase, async: false
  import Bitwise

  alias ElixirScope.{Config, NIF}
  alias ElixirScope.Capture.{InstrumentationRuntime, Memory, Session}

  test "a ring larger than 2^22 slots is refused, naming the memory it would take" do
    assert {:error, msg} = Config.validate(capture: [buffer_size: 1 <<< 26])
    assert msg =~ "capture.buffer_size 67108864 would take 16 GiB"
    assert msg =~ "the largest is 4194304 (1 GiB)"
    assert {:error, msg} = ElixirScope.start(capture: [buffer_size: 1 <<< 30])
    assert msg =~ "256 GiB"
    refute ElixirScope.running?()
    assert_raise ArgumentError, ~r/4194304.*1 GiB/, fn -> NIF.session_new(%{ring_capacity: 1 <<< 23}) end
  end

  test "max_memory bounds the ring and the store together" do
    assert {:error, msg} = Config.validate(capture: [buffer_size: 1 <<< 22], max_memory: 512 <<< 20)
    assert msg =~ "would take 1 GiB"
    assert msg =~ "more than max_memory (512 MiB)"

    assert {:error, msg} = Config.validate(capture: [buffer_size: 1 <<< 20], storage: [max_bytes: 900 <<< 20])
    assert msg =~ "the ring (256 MiB, capture.buffer_size 1048576) and storage.max_bytes (900 MiB) together exceed max_memory (1 GiB)"

    {:ok, config} = Config.validate(capture: [buffer_size: 1 <<< 16], storage: [max_bytes: 0], max_memory: 256 <<< 20)
    opts = Config.session_options(config)
    # slots 16 MiB; a quarter of the remaining 240 MiB for out-of-slot payloads; the rest for the store
    assert opts.ring_payload_budget == 60 <<< 20
    assert opts.store_max_bytes == (256 - 16 - 60) <<< 20
    assert opts.ring_payload_budget + opts.store_max_bytes + (1 <<< 16) * Memory.slot_bytes() == 256 <<< 20

    {:ok, unbounded} = Config.validate(max_memory: 0, storage: [max_bytes: 0])
    assert %{ring_payload_budget: 0, store_max_bytes: 0} = Config.session_options(unbounded)
  end

  test "payloads over the ring's budget are dropped and counted" do
    # 16 slots of 256 B; max_memory leaves 4 KiB minus the store's cap for out-of-slot payloads
    start_scope!(
      capture: [buffer_size: 16, max_payload_bytes: 2048, max_binary: 1000, flush_interval: 60_000, fuse: [enabled: false]],
      storage: [max_bytes: 4096],
      max_memory: 16 * 256 + 4096 + 1000
    )

    Process.sleep(20)
    big = :binary.copy("x", 600)
    for _ <- 1..5, do: InstrumentationRuntime.report_custom(:big, big)
    stats = ElixirScope.stats()
    assert stats.emitted == 5
    # 1000 B of budget: one 600 B payload fits at a time
    assert stats.dropped_by_reason.ring_full == 4
    assert stats.emitted == stats.stored + stats.dropped + stats.lost + stats.pending
  end

  test "payloads too large for a slot take reused pool blocks (malloc only past 8 KiB), and arrive whole" do
    start_scope!(capture: [max_payload_bytes: 20_000, max_binary: 20_000, fuse: [enabled: false]])
    sizes = [300, 1_000, 5_000, 300, 1_000, 5_000, 12_000]
    {first, again} = Enum.split(sizes, 3)
    for n <- first, do: InstrumentationRuntime.report_custom(:big, :binary.copy(<<n::16>>, div(n, 2)))
    # drained: their blocks are given back
    _ = ElixirScope.stats()
    for n <- again, do: InstrumentationRuntime.report_custom(:big, :binary.copy(<<n::16>>, div(n, 2)))
    stats = ElixirScope.stats()
    assert stats.emitted == length(sizes) and stats.stored == length(sizes)
    # the second 300 B, 1,000 B and 5,000 B payloads reuse the blocks the first ones gave back
    assert stats.payload_pool.bytes > 0 and stats.payload_pool.bytes <= 512 + 1_024 + 8_192
    assert stats.payload_pool.heap_fallbacks == 1

    stored = for %{payload: {:big, data}} <- ElixirScope.get_events(event_type: :custom), do: data
    assert stored == for(n <- sizes, do: :binary.copy(<<n::16>>, div(n, 2)))
  end

  test "a large ring adds almost nothing to the resident memory until events arrive" do
    before = vm_rss_kib()
    start_scope!(capture: [buffer_size: 1 <<< 22], max_memory: 2 <<< 30)
    grown = vm_rss_kib() - before
    # the ring reserves 1 GiB; what becomes resident is the store's first pages and the like
    assert grown < 64 * 1024, "RSS grew by #{grown} KiB"
    assert Session.info().options.ring_capacity == 1 <<< 22
  end

  defp vm_rss_kib do
    [_, kib] = Regex.run(~r/VmRSS:\s+(\d+) kB/, File.read!("/proc/self/status"))
    String.to_integer(kib)
  end
end
