defmodule ElixirScope.RecordingTest do
  use ExUnit.Case, async: true

  alias ElixirScope.{Query, Recording, Truncated}
  alias ElixirScope.Test.EventBuilder, as: B

  defmodule Secret do
    @moduledoc false
    defstruct [:token, :n]
  end

  @moduletag :tmp_dir

  defp sample do
    [a, s] = B.pids(2)
    b = B.new()
    {b, c} = B.call(b, a, Shop, :checkout, [%Secret{token: "t-1", n: 3}, <<1, 2, 3>>])
    gone = :erlang.make_fun(Shop.Gone, :handler, 2)
    {b, _} = B.local(b, a, c, %{cart: [1, 2, 3], big: %Truncated{kind: :list, omitted: 997}, h: gone})
    {b, _} = B.send_msg(b, a, s, {:order, 1, self()})
    {b, _} = B.recv(b, s, {:order, 1, self()})
    {b, h} = B.call(b, s, Shop.Server, :handle_info, [{:order, 1, self()}, %{n: 0}])
    {b, _} = B.state(b, s, h, :after, %{n: 1, f: &Enum.map/2})
    {b, _} = B.ret(b, s, h, {:noreply, %{n: 1}})
    {b, _} = B.ret(b, a, c, {:ok, 1.5, make_ref()})
    b = B.add!(b, a, :custom, payload: {:note, "ünïcode"}, truncated?: true)
    {B.events(b), a, s}
  end

  defp from_events(events) do
    rec = Recording.from_events(events, %{clock: {1_000_000, 1_700_000_000_000_000}})
    on_exit(fn -> Recording.close(rec) end)
    rec
  end

  defp load!(path) do
    {:ok, rec} = Recording.load(path, default: false)
    on_exit(fn -> Recording.close(rec) end)
    rec
  end

  test "save then load gives back the same events and the same query answers", %{tmp_dir: dir} do
    {events, a, s} = sample()
    src = from_events(events)
    path = Path.join(dir, "run.esrec")
    assert {:ok, %{events: n, bytes: bytes, path: ^path}} = Recording.save(path, :all, source: src)
    assert n == length(events) and bytes == File.stat!(path).size
    rec = load!(path)
    assert Query.events(source: rec) == events
    assert Query.call_tree(a, source: rec) == Query.call_tree(a, source: src)
    assert {:ok, %{n: 1}, _} = Query.state_at(s, :now, source: rec)
    assert Recording.stats(rec).events == length(events)
    assert rec.meta.format == 2 and rec.meta.clock == {1_000_000, 1_700_000_000_000_000}
    assert File.ls!(dir) == ["run.esrec"]
  end

  test "a save of many pages (ids with gaps) loads every event, found by id; close frees its chunks", %{tmp_dir: dir} do
    [a, b] = B.pids(2)

    # 20,000 events with every third id missing: pages of ids split them unevenly
    events =
      for id <- 1..30_000, rem(id, 3) != 0 do
        %ElixirScope.Event{id: id, ts: id * 10, pid: if(rem(id, 2) == 0, do: a, else: b), kind: :custom, line: 0,
                           call_id: 0, link: 0, correlation_id: nil, payload: {:n, id}}
      end

    path = Path.join(dir, "many.esrec")
    assert {:ok, %{events: 20_000}} = Recording.save(path, :all, source: from_events(events))
    {:ok, rec} = Recording.load(path, default: false)
    assert Query.events(source: rec) == events
    assert Query.events(pid: a, source: rec) == Enum.filter(events, &(&1.pid == a))
    assert Recording.Index.get(rec, 29_999) == List.last(events) and Recording.Index.get(rec, 3) == nil
    assert Recording.Index.get(rec, 1) == hd(events) and Recording.Index.get(rec, 30_001) == nil
    assert Recording.stats(rec).events == 20_000

    ref = Process.monitor(rec.tables.owner)
    Recording.close(rec)
    assert_receive {:DOWN, ^ref, _, _, _}
    assert :persistent_term.get({rec.tables.events, 1}, :gone) == :gone
  end

  test "a filtered save keeps only the matching events", %{tmp_dir: dir} do
    {events, _a, s} = sample()
    src = from_events(events)
    path = Path.join(dir, "server.esrec")
    assert {:ok, %{events: 4}} = Recording.save(path, [pid: s], source: src)
    assert Enum.all?(Query.events(source: load!(path)), &(&1.pid == s))
  end

  test "load makes the recording the default source, close restores live", %{tmp_dir: dir} do
    {events, _, _} = sample()
    path = Path.join(dir, "d.esrec")
    {:ok, _} = Recording.save(path, :all, source: from_events(events))
    # (sync-sensitive: only this test touches the default source)
    {:ok, rec} = Recording.load(path)
    try do
      assert ElixirScope.Query.Source.default() == rec
      assert length(Query.events()) == length(events)
    after
      Recording.close(rec)
    end

    assert ElixirScope.Query.Source.default() == :live
  end

  describe "bad files" do
    setup %{tmp_dir: dir} do
      {events, _, _} = sample()
      path = Path.join(dir, "good.esrec")
      {:ok, _} = Recording.save(path, :all, source: from_events(events), compressed: 0)
      %{good: File.read!(path), dir: dir}
    end

    defp try_load(dir, bytes) do
      path = Path.join(dir, "bad-#{System.unique_integer([:positive])}.esrec")
      File.write!(path, bytes)
      Recording.load(path, default: false)
    end

    test "truncated anywhere gives a truncation error", %{good: good, dir: dir} do
      for cut <- [5, 12, 20, div(byte_size(good), 2), byte_size(good) - 13, byte_size(good) - 5, byte_size(good) - 1] do
        assert {:error, msg} = try_load(dir, binary_part(good, 0, cut))
        assert msg =~ "truncated recording", "cut at #{cut}: #{msg}"
      end
    end

    test "a flipped byte is reported as corruption", %{good: good, dir: dir} do
      for pos <- [40, div(byte_size(good), 2), byte_size(good) - 20] do
        <<pre::binary-size(pos), b, post::binary>> = good
        assert {:error, msg} = try_load(dir, <<pre::binary, Bitwise.bxor(b, 0xFF), post::binary>>)
        assert msg =~ ~r/corrupted recording|truncated recording/, "pos #{pos}: #{msg}"
      end
    end

    test "foreign, empty, future-version, trailing-garbage and missing files", %{good: good, dir: dir} do
      assert {:error, msg} = try_load(dir, "PK\x03\x04 a zip file, not ours at all")
      assert msg =~ "not an ElixirScope recording"
      assert {:error, msg} = try_load(dir, "")
      assert msg =~ "not an ElixirScope recording"
      <<magic::binary-size(11), _v::16, rest::binary>> = good
      assert {:error, msg} = try_load(dir, <<magic::binary, 9::16, rest::binary>>)
      assert msg =~ "unsupported recording version 9"
      assert {:error, msg} = try_load(dir, good <> "junk")
      assert msg =~ "corrupted recording"
      assert {:error, "cannot read " <> msg} = Recording.load(Path.join(dir, "nope.esrec"))
      assert msg =~ "no such file"
    end
  end

  test "a failed save leaves the previous file and no temporary file", %{tmp_dir: dir} do
    {events, _, _} = sample()
    src = from_events(events)
    path = Path.join(dir, "keep.esrec")
    {:ok, _} = Recording.save(path, :all, source: src)
    before = File.read!(path)
    assert {:error, "unknown filter :bogus" <> _} = Recording.save(path, [bogus: 1], source: src)
    assert File.read!(path) == before
    assert File.ls!(dir) == ["keep.esrec"]
    assert {:error, _} = Recording.save(Path.join([dir, "keep.esrec", "sub.esrec"]), :all, source: src)
    unless ElixirScope.running?() do
      assert {:error, "ElixirScope is not running" <> _} = Recording.save(Path.join(dir, "live.esrec"), :all, source: :live)
    end
  end

  test "a save deletes the orphaned temporary files of its path and keeps those still being written", %{tmp_dir: dir} do
    {events, _, _} = sample()
    path = Path.join(dir, "run.esrec")
    # names as a save would make them: <path>.tmp-<host+node hash>-<OS pid>-<N.S of the saving process>-<n>
    [hash, os_pid, _proc, _n] = path |> Recording.temp_path() |> String.replace_prefix(path <> ".tmp-", "") |> String.split("-")
    dead = Task.async(fn -> Recording.temp_path(path) end) |> Task.await()
    {dead_os_pid, 0} = System.cmd("sh", ["-c", "echo $$"])
    hour_ago = System.os_time(:second) - 3600

    files = %{
      dead_process: {dead, :now},
      live_process: {Recording.temp_path(path), :now},
      dead_os_process: {"#{path}.tmp-#{hash}-#{String.trim(dead_os_pid)}-1.0-1", :now},
      other_node_fresh: {"#{path}.tmp-0badc0de-#{os_pid}-1.0-1", :now},
      other_node_stale: {"#{path}.tmp-0badc0de-#{os_pid}-1.0-2", hour_ago},
      old_style_fresh: {"#{path}.tmp-12", :now},
      old_style_stale: {"#{path}.tmp-13", hour_ago},
      other_path: {"#{path}x.tmp-#{hash}-#{os_pid}-999999.0-1", hour_ago}
    }

    for {_, {file, mtime}} <- files do
      File.write!(file, "partial")
      if mtime != :now, do: File.touch!(file, mtime)
    end

    assert {:ok, _} = Recording.save(path, :all, source: from_events(events))
    left = File.ls!(dir) |> Enum.map(&Path.join(dir, &1)) |> MapSet.new()
    kept = for {what, {file, _}} <- files, MapSet.member?(left, file), do: what
    assert Enum.sort(kept) == [:live_process, :old_style_fresh, :other_node_fresh, :other_path]
    assert MapSet.member?(left, path)
  end

  @tag timeout: 120_000
  test "two nodes saving one path at once never share a temporary file", %{tmp_dir: dir} do
    path = Path.join(dir, "shared.esrec")
    paths = Enum.flat_map(:code.get_path(), &[~c"-pa", &1])

    script = fn n ->
      """
      [a] = ElixirScope.Test.EventBuilder.pids(1)
      b = Enum.reduce(1..#{n}, ElixirScope.Test.EventBuilder.new(), fn i, b ->
        ElixirScope.Test.EventBuilder.add!(b, a, :custom, payload: {:tick, i})
      end)
      rec = ElixirScope.Recording.from_events(ElixirScope.Test.EventBuilder.events(b))
      for _ <- 1..25, do: ElixirScope.Recording.save(#{inspect(path)}, :all, source: rec)
      """
    end

    peers =
      for n <- [300, 700] do
        {:ok, peer, _} = :peer.start(%{connection: :standard_io, args: paths, wait_boot: 30_000})
        {:ok, _} = :peer.call(peer, :application, :ensure_all_started, [:elixir])
        {peer, n}
      end

    try do
      results =
        peers
        |> Enum.map(fn {peer, n} -> Task.async(fn -> :peer.call(peer, Code, :eval_string, [script.(n)], 60_000) end) end)
        |> Enum.map(&Task.await(&1, 90_000))

      for {saves, _binding} <- results, do: assert(Enum.all?(saves, &match?({:ok, _}, &1)), inspect(saves))
      assert {:ok, rec} = Recording.load(path, default: false)
      assert Recording.stats(rec).events in [300, 700]
      Recording.close(rec)
      assert File.ls!(dir) == ["shared.esrec"]
    after
      for {peer, _} <- peers, do: :peer.stop(peer)
    end
  end

  test "mix scope.open summarises a recording and says how to open it; bad files raise", %{tmp_dir: dir} do
    {events, _, _} = sample()
    path = Path.join(dir, "open.esrec")
    {:ok, _} = Recording.save(path, :all, source: from_events(events))
    out = ExUnit.CaptureIO.capture_io(fn -> Mix.Tasks.Scope.Open.run([path]) end)
    assert out =~ "events:     #{length(events)} (ids 1..#{length(events)}) from 2 process(es)"
    assert out =~ "iex -S mix scope.open #{path}"
    [_, dot] = Regex.run(~r/iex --dot-iex (\S+) -S mix/, out)
    assert File.read!(dot) =~ "ElixirScope.Recording.load!(#{inspect(path)})"
    File.rm(dot)
    assert ElixirScope.Query.Source.default() == :live
    File.write!(Path.join(dir, "x.esrec"), "nope")
    assert_raise Mix.Error, ~r/not an ElixirScope recording/, fn -> Mix.Tasks.Scope.Open.run([Path.join(dir, "x.esrec")]) end
  end

  @tag timeout: 60_000
  test "a fresh node without the recorded code loaded opens it with the same Query API", %{tmp_dir: dir} do
    {events, a, _s} = sample()
    path = Path.join(dir, "fresh.esrec")
    {:ok, _} = Recording.save(path, :all, source: from_events(events))
    ebin = Path.join(Mix.Project.build_path(), "lib/elixir_scope/ebin")

    script = """
    {:ok, rec} = ElixirScope.Recording.load(#{inspect(path)})
    false = Code.ensure_loaded?(ElixirScope.RecordingTest.Secret)
    [root] = ElixirScope.Query.call_tree(hd(ElixirScope.Query.events()).pid)
    [%{token: tok} | _] = root.event.payload
    IO.puts("calls=\#{root.event.function} n=\#{length(ElixirScope.Query.events())} token=\#{tok}")
    IO.puts(inspect(hd(ElixirScope.Query.events(kind: :local)).payload.big))
    IO.puts(inspect(hd(ElixirScope.Query.events(kind: :local)).payload.h))
    """

    {out, 0} = System.cmd("elixir", ["-pa", ebin, "-e", script], stderr_to_stdout: true)
    assert out =~ "calls=checkout n=#{length(events)} token=t-1"
    assert out =~ "#Truncated<list, 997 more>"
    # a function of a module the fresh node never loaded (its export entry comes from the atom table)
    assert out =~ "&Shop.Gone.handler/2"
    _ = a
  end
end
