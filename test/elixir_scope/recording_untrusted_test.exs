defmodule ElixirScope.RecordingUntrustedTest do
  # not async: it counts atoms and measures the VM's memory
  use ExUnit.Case, async: false
  import Bitwise

  alias ElixirScope.{Query, Recording}
  alias ElixirScope.Test.EventBuilder, as: B
  alias ElixirScope.Test.RecordingForge, as: F

  @moduletag :tmp_dir

  defp events do
    [a, s] = B.pids(2)
    b = B.new()
    {b, c} = B.call(b, a, Shop, :checkout, [%{id: 7}, "x"])
    {b, _} = B.local(b, a, c, %{cart: [1, 2]})
    {b, _} = B.send_msg(b, a, s, {:order, 1})
    {b, _} = B.recv(b, s, {:order, 1})
    {b, h} = B.call(b, s, Shop.Server, :handle_info, [{:order, 1}, %{n: 0}])
    {b, _} = B.state(b, s, h, :after, %{n: 1})
    {b, _} = B.ret(b, s, h, {:noreply, %{n: 1}})
    {b, _} = B.ret(b, a, c, {:ok, 1})
    B.events(b)
  end

  setup %{tmp_dir: dir} do
    path = Path.join(dir, "good.esrec")
    events = events()
    {:ok, _} = Recording.save(path, :all, source: Recording.from_events(events), compressed: 0)
    %{good: File.read!(path), dir: dir, events: events}
  end

  defp load(dir, bytes, opts \\ []) do
    path = Path.join(dir, "x-#{System.unique_integer([:positive])}.esrec")
    File.write!(path, bytes)
    result = Recording.load(path, [default: false] ++ opts)
    with {:ok, rec} <- result, do: on_exit(fn -> Recording.close(rec) end)
    result
  end

  # the good file with chunk 1's term changed by `fun` (atom table and checksums made right)
  defp with_chunk(good, fun) do
    forged = F.parse(good)
    [{n, _, _} = c1 | rest] = forged.chunks
    {n, term} = fun.({n, F.term(c1)})
    F.build(%{forged | chunks: [F.chunk(term, n) | rest]})
  end

  defp with_row(good, fun) do
    with_chunk(good, fn {n, {:es_chunk, atoms, pids, [row | rows]}} -> {n, {:es_chunk, atoms, pids, [fun.(row) | rows]}} end)
  end

  defp existing?(name) do
    _ = String.to_existing_atom(name)
    true
  rescue
    ArgumentError -> false
  end

  test "the forge round-trips a good file byte for byte", %{good: good, dir: dir, events: events} do
    assert F.build(F.parse(good)) == good
    assert {:ok, rec} = load(dir, good)
    assert Query.events(source: rec) == events
  end

  describe "atoms" do
    test "a file naming more new atoms than max_new_atoms is refused and creates none", %{good: good, dir: dir} do
      tag = "es_untrusted_#{System.unique_integer([:positive])}"
      names = for i <- 1..500, do: "#{tag}_#{i}"
      forged = F.parse(good)
      [{n, table, etf} | rest] = forged.chunks
      # the real table's names plus 500 new ones, which the ETF does not even use
      <<count::32, body::binary>> = table
      {names_part, funs} = split_names(body, count)
      extra = for name <- names, into: <<>>, do: <<byte_size(name)::16, name::binary>>
      crafted = <<count + 500::32, names_part::binary, extra::binary, funs::binary>>
      bytes = F.build(%{forged | chunks: [{n, crafted, etf} | rest]})

      assert {:error, msg} = load(dir, bytes, max_new_atoms: 100)
      assert msg =~ "recording refused: it names 500 atoms and functions this node does not know, over the limit of 100"
      refute Enum.any?(names, &existing?/1)

      assert {:ok, _} = load(dir, bytes, max_new_atoms: 500)
      assert Enum.all?(names, &existing?/1)
    end

    test "an atom the ETF uses but the table does not list is never created", %{good: good, dir: dir} do
      placeholder = "es_placeholder_atom_zzzzzzzz"
      fresh = "es_never_created_#{:rand.uniform(99_999_999)}" |> String.pad_trailing(byte_size(placeholder), "q")
      refute existing?(fresh)

      bytes =
        with_row(good, fn row -> put_elem(row, 13, [String.to_atom(placeholder)]) end)
        |> F.parse()
        |> then(fn forged ->
          [{n, table, etf} | rest] = forged.chunks
          etf = :binary.replace(etf, placeholder, fresh)
          F.build(%{forged | chunks: [{n, table, etf} | rest]})
        end)

      assert {:error, msg} = load(dir, bytes)
      assert msg =~ ~r/chunk 1 at byte \d+: its ETF is malformed or names an atom or function missing from its atom table/
      refute existing?(fresh)
    end

    test "crafted tables: counts past the bytes, bad UTF-8, over-long names, bad function indexes", %{good: good, dir: dir} do
      forged = F.parse(good)
      [{n, _, etf} | rest] = forged.chunks

      for {table, why} <- [
            {<<1_000_000::32, 0::16>>, "announces 1000000 atoms"},
            {F.table([<<0xFF, 0xFE>>]), "not valid UTF-8"},
            {F.table([String.duplicate("é", 256)]), "longer than 255 characters"},
            {F.table(["a"], [{0, 7, 1}]), "names an atom the table does not hold"},
            {<<2::32, 3::16, "ab">>, "runs past the end"},
            {<<0::32>>, "function table"}
          ] do
        bytes = F.build(%{forged | chunks: [{n, table, etf} | rest]})
        assert {:error, msg} = load(dir, bytes)
        assert msg =~ "the atom table of chunk 1 at byte", msg
        assert msg =~ why, msg
      end
    end

    test "external functions of modules this node never loaded come back", %{dir: dir} do
      [a] = B.pids(1)
      fun = :erlang.make_fun(:es_untrusted_gone_mod, :handler, 2)
      {b, _} = B.call(B.new(), a, Shop, :run, [fun, &Enum.map/2])
      path = Path.join(dir, "funs.esrec")
      {:ok, _} = Recording.save(path, :all, source: Recording.from_events(B.events(b)))
      assert {:ok, rec} = load(dir, File.read!(path))
      assert [%{payload: [^fun, f2]}] = Query.events(source: rec)
      assert f2 == (&Enum.map/2)
    end
  end

  defp split_names(body, count) do
    size = Enum.reduce(1..count//1, 0, fn _, off -> (<<_::binary-size(off), len::16, _::binary>> = body; off + 2 + len) end)
    <<names::binary-size(size), funs::binary>> = body
    {names, funs}
  end

  describe "sizes" do
    test "a 1 MB chunk announcing 1 GiB is refused before anything is inflated", %{good: good, dir: dir} do
      bomb = F.zero_bomb(1024)
      forged = F.parse(good)
      [{n, table, _} | rest] = forged.chunks
      bytes = F.build(%{forged | chunks: [{n, table, <<131, 80, 1024 * 1024 * 1024::32, bomb::binary>>} | rest]})
      {result, peak} = peak_memory(fn -> load(dir, bytes) end)
      assert {:error, msg} = result
      assert msg =~ ~r/chunk 1 at byte \d+ inflates to 10737\d+ bytes, over max_chunk_bytes/
      assert peak < 32 * 1024 * 1024
    end

    test "a chunk that lies about its size stops inflating where its claim ends", %{good: good, dir: dir} do
      bomb = F.zero_bomb(1024)
      forged = F.parse(good)
      [{n, table, _} | rest] = forged.chunks
      bytes = F.build(%{forged | chunks: [{n, table, <<131, 80, 4_000_000::32, bomb::binary>>} | rest]})
      {result, peak} = peak_memory(fn -> load(dir, bytes) end)
      assert {:error, msg} = result
      assert msg =~ "it inflates past the 4000000 bytes it announces"
      assert peak < 48 * 1024 * 1024
    end

    test "a ratio over max_ratio is taken for a bomb; the limits are options", %{good: good, dir: dir} do
      forged = F.parse(good)
      [{n, table, _} | rest] = forged.chunks
      bomb = F.zero_bomb(8)
      bytes = F.build(%{forged | chunks: [{n, table, <<131, 80, 8 * 1024 * 1024::32, bomb::binary>>} | rest]})
      assert {:error, msg} = load(dir, bytes)
      assert msg =~ "a ratio over max_ratio, 200: an inflation bomb?"
      assert {:error, msg} = load(dir, bytes, max_ratio: 10_000)
      assert msg =~ "chunk 1 at byte"
      assert {:error, msg} = load(dir, good, max_chunk_bytes: 100)
      assert msg =~ "over max_chunk_bytes (100"
      assert {:error, msg} = load(dir, good, max_total_bytes: 200)
      assert msg =~ "max_total_bytes (200)"
      assert {:error, msg} = load(dir, good, max_ratio: 0)
      assert msg =~ "recording.max_ratio must be a positive integer"
    end

    test "every file a save writes loads under the default limits: big chunks are split, bomb-like ones stored plain",
         %{dir: dir} do
      [a] = B.pids(1)
      payloads = [:binary.copy(<<0>>, 4 * 1024 * 1024) | for(_ <- 1..12, do: :crypto.strong_rand_bytes(512 * 1024))]
      b = Enum.reduce(payloads, B.new(), fn p, b -> elem(B.call(b, a, Big, :f, [p]), 0) end)
      path = Path.join(dir, "big.esrec")
      {:ok, %{events: 13}} = Recording.save(path, :all, source: Recording.from_events(B.events(b)), compressed: 6)
      chunks = F.parse(File.read!(path)).chunks
      assert length(chunks) >= 3

      for {_n, _t, etf} <- chunks do
        case etf do
          <<131, 80, raw::32, _::binary>> -> assert raw <= byte_size(etf) * 200
          _ -> :ok
        end

        assert byte_size(etf) <= 16 * 1024 * 1024
      end

      assert {:ok, rec} = load(dir, File.read!(path))
      assert Enum.map(Query.events(source: rec), &hd(&1.payload)) == payloads
    end

    test "a chunk compressed twice is refused", %{good: good, dir: dir} do
      forged = F.parse(good)
      [{n, table, etf} | rest] = forged.chunks
      <<131, inner::binary>> = :erlang.term_to_binary(:erlang.binary_to_term(etf), compressed: 9)
      twice = :zlib.compress(inner)
      bytes = F.build(%{forged | chunks: [{n, table, <<131, 80, byte_size(inner)::32, twice::binary>>} | rest]})
      assert {:error, msg} = load(dir, bytes)
      assert msg =~ "compressed twice"
    end
  end

  # the VM's peak memory above where it started, sampled every millisecond while `fun` runs
  defp peak_memory(fun) do
    :erlang.garbage_collect()
    base = :erlang.memory(:total)
    parent = self()
    sampler = spawn_link(fn -> sample(parent, base, 0) end)
    result = fun.()
    send(sampler, :stop)
    assert_receive {:peak, peak}, 1000
    {result, peak}
  end

  defp sample(parent, base, peak) do
    peak = max(peak, :erlang.memory(:total) - base)

    receive do
      :stop -> send(parent, {:peak, peak})
    after
      1 -> sample(parent, base, peak)
    end
  end

  describe "fields" do
    test "every row field's type and range is checked; the error names the chunk, its byte and the event",
         %{good: good, dir: dir} do
      cases = [
        {0, "7", "id is a binary of 1 bytes"},
        {0, 0, "id is 0"},
        {0, 1 <<< 64, "id is an integer of 72 bits"},
        {1, :soon, "ts is an atom"},
        {1, -1, "ts is -1"},
        {1, 1.5, "ts is a float"},
        {2, "now", "wall_time is a binary"},
        {3, 99, "pid is 99"},
        {4, 1_000, "kind is 1000"},
        {7, 300, "arity is 300"},
        {8, -3, "line is -3"},
        {9, [1], "call_id is a list"},
        {14, 4, "flags is 4"},
        {13, {:not, :a, :list}, "its payload is a tuple of 3 elements, not what a :call event holds"}
      ]

      for {field, value, why} <- cases do
        assert {:error, msg} = load(dir, with_row(good, &put_elem(&1, field, value)))
        assert msg =~ ~r/corrupted recording: chunk 1 at byte \d+: event 1 of the chunk: /, msg
        assert msg =~ why, msg
      end
    end

    test "a kind index that names an atom which is not a kind is refused", %{good: good, dir: dir} do
      bytes = with_chunk(good, fn {n, {:es_chunk, atoms, pids, rows}} -> {n, {:es_chunk, put_elem(atoms, 0, :bogus), pids, rows}} end)
      assert {:error, msg} = load(dir, bytes)
      assert msg =~ "kind is 0, expected an index of one of"
    end

    test "chunks whose shape or count is wrong", %{good: good, dir: dir} do
      for {fun, why} <- [
            {fn {n, _} -> {n, [:not, :a, :chunk]} end, "not an {:es_chunk, atoms, pids, rows} tuple"},
            {fn {n, {t, a, p, rows}} -> {n, {t, a, p, tl(rows)}} end, "holds #{length(events()) - 1} events, not the #{length(events())}"},
            {fn {n, {t, a, p, rows}} -> {n - 1, {t, a, p, rows}} end, "more than the #{length(events()) - 1} events"},
            {fn {n, {t, a, p, rows}} -> {n, {t, a, p, rows ++ [:x | :improper]}} end, "more than"},
            {fn {n, {t, _a, p, rows}} -> {n, {t, {"kind"}, p, rows}} end, "atom column"},
            {fn {n, {t, a, _p, rows}} -> {n, {t, a, {:pid}, rows}} end, "pid column"},
            {fn {n, {t, a, p, [r1, r2 | rows]}} -> {n, {t, a, p, [r2, r1 | rows]}} end, "event 2 of the chunk: id is 1, expected"},
            {fn {n, {t, a, p, [r | rows]}} -> {n, {t, a, p, [Tuple.delete_at(r, 0) | rows]}} end, "not a 15-field row"}
          ] do
        assert {:error, msg} = load(dir, with_chunk(good, fun))
        assert msg =~ "chunk 1 at byte", msg
        assert msg =~ why, msg
      end
    end

    test "chunks must follow each other in id order", %{good: good, dir: dir, events: events} do
      forged = F.parse(good)
      [c1] = forged.chunks
      {:es_chunk, atoms, pids, rows} = F.term(c1)
      {r1, r2} = Enum.split(rows, 3)
      [a, b] = [F.chunk({:es_chunk, atoms, pids, r1}, 3), F.chunk({:es_chunk, atoms, pids, r2}, length(r2))]
      assert {:ok, rec} = load(dir, F.build(%{forged | chunks: [a, b]}))
      assert Query.events(source: rec) == events
      assert {:error, msg} = load(dir, F.build(%{forged | chunks: [b, a]}))
      assert msg =~ ~r/chunk 2 at byte \d+: its first id \(1\) is not above the previous chunk's last \(8\)/
      assert {:error, msg} = load(dir, F.build(%{forged | chunks: [a, a]}))
      assert msg =~ "is not above"
    end

    test "the header is checked; unknown keys are dropped", %{good: good, dir: dir} do
      forged = F.parse(good)
      meta = :erlang.binary_to_term(elem(forged.header, 1))

      header = fn m -> (term = m; {_, t, e} = F.chunk(term, 0); F.build(%{forged | header: {t, e}})) end

      assert {:ok, rec} = load(dir, header.(Map.put(meta, :extra, {:anything, self()})))
      refute Map.has_key?(rec.meta, :extra)
      assert %DateTime{} = rec.meta.created_at

      for {m, why} <- [
            {[:not, :a, :map], "the header at byte 13: it is a list, not a map"},
            {%{meta | clock: {:a, 1}}, "its clock is a tuple of 2 elements"},
            {%{meta | names: %{"srv" => self()}}, "its names is a map"},
            {%{meta | names: %{srv: :not_a_pid}}, "its names is a map"},
            {%{meta | created_at: 1 <<< 80}, "its created_at is an integer of 88 bits"},
            {%{meta | node: "n@h"}, "its node is a binary"},
            {%{meta | source_stats: %{emitted: self()}}, "its source_stats is a map"},
            {%{meta | filter: <<0xFF>>}, "its filter is a binary of 1 bytes"},
            # the recorded code's source lines and struct definitions: bounded, valid UTF-8, atoms
            {Map.put(meta, :sources, %{Shop => %{file: "lib/shop.ex", lines: %{3 => <<0xFF>>}}}), "its sources is a map"},
            {Map.put(meta, :sources, %{Shop => %{file: "lib/shop.ex", lines: %{0 => "x"}}}), "its sources is a map"},
            {Map.put(meta, :sources, %{Shop => %{file: "lib/shop.ex", lines: %{3 => String.duplicate("x", 400)}}}), "its sources is a map"},
            {Map.put(meta, :sources, %{Shop => %{file: "lib/shop.ex", lines: %{3 => "x"}, more: 1}}), "its sources is a map"},
            {Map.put(meta, :sources, %{"Shop" => %{file: "lib/shop.ex", lines: %{}}}), "its sources is a map"},
            {Map.put(meta, :sources, [{Shop, "x"}]), "its sources is a list"},
            {Map.put(meta, :sources_omitted, -1), "its sources_omitted is -1"},
            {Map.put(meta, :structs, %{Shop.Cart => [:id, :id]}), "its structs is a map"},
            {Map.put(meta, :structs, %{Shop.Cart => ["id"]}), "its structs is a map"},
            {Map.put(meta, :structs, %{Shop.Cart => Enum.map(1..1025, &:"f#{&1}")}), "its structs is a map"}
          ] do
        assert {:error, msg} = load(dir, header.(m))
        assert msg =~ "corrupted recording: the header at byte 13", msg
        assert msg =~ why, msg
      end
    end

    test "a wrong-typed timestamp no longer reaches the caller (it raised ArithmeticError in Query)",
         %{good: good, dir: dir} do
      assert {:error, msg} = load(dir, with_row(good, &put_elem(&1, 1, :later)))
      assert msg =~ "ts is an atom"
    end
  end

  test "version 1 files are refused with a message saying why", %{good: good, dir: dir} do
    <<magic::binary-size(11), _::16, rest::binary>> = good
    assert {:error, msg} = load(dir, <<magic::binary, 1::16, rest::binary>>)
    assert msg =~ "unsupported recording version 1 at byte 11"
    assert msg =~ "save them again"
  end

  test "a file larger than max_total_bytes allows is not read, nor anything but a regular file", %{good: good, dir: dir} do
    assert {:error, msg} = load(dir, good <> :binary.copy(<<0>>, 10_000), max_total_bytes: 1000)
    assert msg =~ "the file is larger than max_total_bytes (1000) allows"
    assert {:error, msg} = Recording.load("/dev/zero", default: false)
    assert msg =~ "cannot read /dev/zero: it is not a regular file (device)"
    assert {:error, msg} = Recording.load(dir, default: false)
    assert msg =~ "it is not a regular file (directory)"
  end
end
