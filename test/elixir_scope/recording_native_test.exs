defmodule ElixirScope.RecordingNativeTest do
  @moduledoc """
  Recording files of version 3 (`ElixirScope.Recording.Native`): a live store saved and
  loaded gives back every event as it was, and an untrusted file is checked before anything
  of it is believed.
  """
  # not async: it starts ElixirScope (one capture session per VM)
  use ElixirScope.ScopeCase, async: false
  import Bitwise

  alias ElixirScope.{NIF, Query, Recording}
  alias ElixirScope.Capture.Session
  alias ElixirScope.Test.EventBuilder, as: B
  alias ElixirScope.Test.RecordingForgeV3, as: F

  @moduletag :tmp_dir

  defp load!(path, opts \\ []) do
    {:ok, rec} = Recording.load(path, [default: false] ++ opts)
    on_exit(fn -> Recording.close(rec) end)
    rec
  end

  defp session, do: Session.info().session

  # `n` rounds of call, local, send, return (4 events each) on `procs` processes at once
  defp record(n, procs) do
    me = self()

    for p <- 1..procs do
      spawn_link(fn ->
        for i <- 1..n do
          c = NIF.emit_entry(Shop, :checkout, [i, "item-#{rem(i, 97)}", %{n: i, p: p}], 10)
          NIF.emit(:local, c, Shop, :checkout, 3, 11, nil, %{total: i * 1.5, tag: :ok})
          NIF.emit(:send, c, Shop, :send, nil, 12, c, {me, {:order, i}})
          NIF.emit_exit(c, {:ok, i, <<i::32>>})
        end

        send(me, {:done, p})
      end)
    end

    for p <- 1..procs, do: assert_receive({:done, ^p}, 60_000)
    ElixirScope.flush()
  end

  # every event of the two stores, compared as the native tuples (payload bytes included), a page at a time
  defp assert_same_events(rec, total) do
    pages =
      Stream.unfold(0, fn after_id ->
        live = NIF.query(session(), %{after_id: after_id, limit: 200_000})
        loaded = NIF.recording_query(rec.store, %{after_id: after_id, limit: 200_000})
        assert live == loaded
        if live == [], do: nil, else: {length(live), elem(List.last(live), 0)}
      end)

    assert Enum.sum(pages) == total
  end

  test "a 1 M-event store saved and loaded gives back every event", %{tmp_dir: dir} do
    start_scope!(capture: [buffer_size: 1 <<< 21, fuse: [enabled: false]], storage: [max_bytes: 0])
    record(125_000, 2)
    # with the processes' lifecycle, as the session's observer records it
    total = ElixirScope.stats().stored
    assert total >= 1_000_000
    path = Path.join(dir, "big.esrec")
    assert {:ok, %{events: ^total, bytes: bytes}} = Recording.save(path)
    assert <<"ESCOPE-REC\n", 3::16, _::binary>> = File.read!(path) |> binary_part(0, 13)
    assert bytes == File.stat!(path).size
    rec = load!(path)
    assert rec.meta.format == 3 and Recording.stats(rec).events == total
    assert_same_events(rec, total)
  end

  test "queries of a loaded recording answer as the live store does", %{tmp_dir: dir} do
    start_scope!()
    record(50, 3)
    path = Path.join(dir, "q.esrec")
    total = ElixirScope.stats().stored
    {:ok, %{events: ^total}} = Recording.save(path)
    rec = load!(path)
    live = Query.events([])
    [e | _] = Query.events(kind: :call)
    assert Query.events(source: rec) == live
    assert Query.events(pid: e.pid, source: rec) == Query.events(pid: e.pid)
    assert Query.events(module: Shop, function: :checkout, arity: 3, source: rec) == Query.events(module: Shop, function: :checkout, arity: 3)
    assert Query.events(call_id: e.id, source: rec) == Query.events(call_id: e.id)
    assert Query.events(kind: :send, order: :desc, limit: 7, source: rec) == Query.events(kind: :send, order: :desc, limit: 7)
    assert Query.call_tree(e.pid, source: rec) == Query.call_tree(e.pid)
    assert Query.event(e.id, source: rec) == e and Query.event(10_000_000, source: rec) == nil
    assert Query.events(pid: spawn(fn -> :ok end), source: rec) == []
    assert Query.events(module: NotRecorded, source: rec) == []
    assert Enum.sort(Recording.Index.pids(rec)) == live |> Enum.map(& &1.pid) |> Enum.uniq() |> Enum.sort()
  end

  test "a filtered save keeps the matching events; a loaded recording saves again as it is", %{tmp_dir: dir} do
    start_scope!()
    record(20, 2)
    [e | _] = Query.events(kind: :call)
    n = length(Query.events(pid: e.pid))
    path = Path.join(dir, "one.esrec")
    {:ok, %{events: ^n}} = Recording.save(path, pid: e.pid)
    rec = load!(path)
    assert Query.events(source: rec) == Query.events(pid: e.pid)

    again = Path.join(dir, "again.esrec")
    {:ok, %{events: ^n}} = Recording.save(again, :all, source: rec)
    assert Query.events(source: load!(again)) == Query.events(source: rec)
    # where: predicates are not the store's: such a save is written as version 2
    {:ok, %{events: 20}} = Recording.save(Path.join(dir, "v2.esrec"), [where: &(&1.kind == :call)], source: rec)
    assert load!(Path.join(dir, "v2.esrec")).meta.format == 2
  end

  test "the demo's recording: every event the same through version 3, version 2 and version 3 again", %{tmp_dir: dir} do
    demo = load!(ElixirScope.Test.DemoRecording.path())
    assert demo.meta.format == 3
    events = Query.events(source: demo)
    assert length(events) == Recording.stats(demo).events and length(events) > 100
    v2 = Path.join(dir, "demo2.esrec")
    {:ok, _} = Recording.save(v2, :all, source: demo, format: 2)
    v2 = load!(v2)
    assert v2.meta.format == 2 and Query.events(source: v2) == events
    v3 = Path.join(dir, "demo3.esrec")
    {:ok, _} = Recording.save(v3, :all, source: demo)
    v3 = load!(v3)
    assert v3.meta.format == 3 and Query.events(source: v3) == events
    assert v3.meta.sources == demo.meta.sources and v3.meta.structs == demo.meta.structs and map_size(demo.meta.structs) > 0
  end

  describe "untrusted files" do
    setup %{tmp_dir: dir} do
      start_scope!()
      record(30, 2)
      path = Path.join(dir, "good.esrec")
      {:ok, _} = Recording.save(path)
      ElixirScope.stop()
      %{good: File.read!(path), dir: dir}
    end

    defp try_load(dir, bytes, opts \\ []) do
      path = Path.join(dir, "bad-#{System.unique_integer([:positive])}.esrec")
      File.write!(path, bytes)
      Recording.load(path, [default: false] ++ opts)
    end

    test "cut anywhere: refused as truncated", %{good: good, dir: dir} do
      for cut <- [12, 13, 20, 30, div(byte_size(good), 2), byte_size(good) - 13, byte_size(good) - 1] do
        assert {:error, msg} = try_load(dir, binary_part(good, 0, cut))
        assert msg =~ ~r/truncated recording|not an ElixirScope recording/, "cut at #{cut}: #{msg}"
      end
    end

    test "a flipped byte anywhere: refused as corrupted or truncated", %{good: good, dir: dir} do
      for pos <- [14, 30, 100, div(byte_size(good), 2), byte_size(good) - 40, byte_size(good) - 5] do
        <<pre::binary-size(pos), b, post::binary>> = good
        assert {:error, msg} = try_load(dir, <<pre::binary, bxor(b, 0x5A), post::binary>>)
        assert msg =~ ~r/corrupted recording|truncated recording/, "pos #{pos}: #{msg}"
      end
    end

    test "absurd counts and sizes are refused before anything is allocated for them", %{good: good, dir: dir} do
      <<head::binary-size(13), "S", _n::little-32, rest::binary>> = good
      assert {:error, msg} = try_load(dir, <<head::binary, "S", 0xFFFFFFFF::little-32, rest::binary>>)
      assert msg =~ "too many"
      <<head::binary-size(18), _wl::little-32, rest::binary>> = good
      assert {:error, msg} = try_load(dir, <<head::binary, 0xFFFFFFFF::little-32, rest::binary>>)
      assert msg =~ "needs more bytes than the file has left"
      assert {:error, msg} = try_load(dir, good <> "junk")
      assert msg =~ "corrupted recording"
    end

    test "a well-checksummed file that lies inside is refused, and names the byte", %{dir: dir} do
      pid = :erlang.term_to_binary(self())
      atom = :erlang.term_to_binary(Shop)

      good = [{row(1, 0), :erlang.term_to_binary({:ok, 1})}, {row(2, 0), ""}]
      assert {:ok, rec} = try_load(dir, file([pid, atom], good))
      assert Query.events(source: rec) |> Enum.map(& &1.payload) == [{:ok, 1}, nil]
      Recording.close(rec)

      # ids that do not ascend, an unknown kind, a word out of the table, a pid where a module goes
      for {records, what} <- [
            {[{row(2, 0), ""}, {row(2, 0), ""}], "id is not above"},
            {[{row(1, 0, kind: 12), ""}], "unknown kind"},
            {[{row(1, 0, pid: 3), ""}], "does not hold"},
            {[{row(1, 0, module: 1), ""}], "not an atom"},
            {[{row(1, 0), <<131, 104, 2, 97, 1>>}], "not well-formed ETF"},
            {[{row(1, 0), <<131, 97, 1, 97>>}], "not well-formed ETF"},
            {[{row(1, 0), <<131, 108, 0xFFFFFFFF::32, 106>>}], "not well-formed ETF"}
          ] do
        assert {:error, msg} = try_load(dir, file([pid, atom], records))
        assert msg =~ what and msg =~ ~r/at byte \d+/, msg
      end
    end

    test "every kind of value the VM writes as ETF loads and reads back equal", %{dir: dir} do
      [a, s] = B.pids(2)
      remote = :erlang.binary_to_term(<<131, 88, 119, 14, "remote@v3.test", 7::32, 0::32, 1::32>>)
      b = B.new()
      {b, c} = B.call(b, a, Shop, :checkout, [%{id: 7, tags: ["x", <<0xFF>>]}, {1.5, -3, 1 <<< 70, -(1 <<< 300)}, [1 | 2]])
      {b, _} = B.local(b, a, c, %{ref: make_ref(), f: &Enum.map/2, g: fn x -> {x, s} end, bits: <<1::3>>, port: hd(Port.list())})
      {b, _} = B.send_msg(b, a, s, {:order, "ünïcode", remote, :"ünï_atom"})
      {b, _} = B.ret(b, a, c, {:ok, DateTime.from_unix!(0), [], {}, %{}, ~c"chars", 255, 256, -1})
      b = B.add!(b, remote, :custom, payload: {:note, String.duplicate("x", 70_000)}, redacted?: true)
      events = B.events(b)
      clock = {1_000_000, 1_700_000_000_000_000}
      path = Path.join(dir, "kinds.esrec")
      File.write!(path, F.build([F.segment_of(events)], %{clock: clock, node: node()}))
      rec = load!(path)
      assert Query.events(source: rec) == events
    end

    test "a payload the walk accepts and the VM refuses reads as nil, flagged truncated", %{dir: dir} do
      twice = <<131, 116, 0, 0, 0, 2, 97, 1, 97, 1, 97, 1, 97, 2>>
      assert {:ok, rec} = try_load(dir, file([:erlang.term_to_binary(self())], [{row(1, 0), twice}]))
      assert [%{payload: nil, truncated?: true}] = Query.events(source: rec)
      Recording.close(rec)
      nan = <<131, 70, 0x7F, 0xF8, 0, 0, 0, 0, 0, 0>>
      assert {:error, msg} = try_load(dir, file([:erlang.term_to_binary(self())], [{row(1, 0), nan}]))
      assert msg =~ "not well-formed ETF"
    end

    test "atoms a file names beyond max_new_atoms are refused, none created", %{dir: dir} do
      names = for i <- 1..20, do: "scope_v3_never_seen_#{System.unique_integer([:positive])}_#{i}"
      payload = <<131, 108, length(names)::32>> <> Enum.map_join(names, &<<119, byte_size(&1), &1::binary>>) <> <<106>>
      bytes = file([:erlang.term_to_binary(self())], [{row(1, 0), payload}])
      assert {:error, msg} = try_load(dir, bytes, max_new_atoms: 5)
      assert msg =~ "recording refused" and msg =~ "max_new_atoms"
      for n <- names, do: assert_raise(ArgumentError, fn -> String.to_existing_atom(n) end)
      assert {:ok, rec} = try_load(dir, bytes, max_new_atoms: 50)
      assert [%{payload: atoms}] = Query.events(source: rec)
      assert Enum.map(atoms, &Atom.to_string/1) == names
      Recording.close(rec)
    end
  end

  # a row of one segment: pid word 1 unless said, kind :custom unless said
  defp row(id, ts, o \\ []) do
    {id, ts, 0, 0, o[:pid] || 1, o[:module] || 0, 0, 0, 0, o[:kind] || 11, 255}
  end

  defp file(words, rows), do: F.build([{words, for({r, payload} <- rows, do: Tuple.append(r, payload))}])
end
