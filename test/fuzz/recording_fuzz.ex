defmodule ElixirScope.Fuzz.Recordings do
  @moduledoc """
  Mutates valid recording files and loads each mutant in a child VM
  (`ElixirScope.Fuzz.Child.load/2`, with `max_new_atoms: 100`). Mutations:
  truncations, bit flips, byte splices, damaged or re-declared compressed
  data, inflation bombs, crafted atom tables, wrong field types, broken chunk
  shapes and orders, header and trailer lies, and deep replacement of any
  subterm; for version 3 files (`ElixirScope.Test.RecordingForgeV3`), raw
  bytes, segment counts and sizes, record fields, payloads, words (pids and
  atoms) and payloads naming fresh atoms; all but the raw-byte ones keep the
  checksums right so that the checks behind them are reached. A mutant passes when loading gives
  `{:error, message}` (the message naming a byte offset, or a whole-file
  refusal) or a recording whose events are well typed and whose queries do
  not raise, within `bound_ms`, 64 MiB of memory and `max_new_atoms` atoms.
  Failing mutants are written to `_build/fuzz/` to be replayed.
  """

  import Bitwise
  alias ElixirScope.Fuzz.{Child, Peer}
  alias ElixirScope.Recording
  alias ElixirScope.Test.EventBuilder, as: B
  alias ElixirScope.Test.Gen
  alias ElixirScope.Test.RecordingForge, as: F
  alias ElixirScope.Test.RecordingForgeV3, as: F3

  @max_new_atoms 100
  @max_memory 64 * 1024 * 1024
  @ops [:truncate, :bit_flip, :splice, :etf_bytes, :compressed, :declared_size, :bomb, :atom_table, :new_atoms,
        :field, :row, :chunk_shape, :chunk_order, :header, :subterm, :version, :trailer, :graft, :harmless]
  # mutations of version 3 files (ElixirScope.Recording.Native); all but :v3_raw keep the checksums right
  @v3_ops [:v3_raw, :v3_field, :v3_payload, :v3_word, :v3_new_atoms, :v3_count]

  @batch 100
  @state {__MODULE__, :state}

  @doc """
  Runs `n` mutants in a child VM made of `modules` (which must include this
  module: mutants are made and judged in the child, a batch at a time, so
  that only results cross). Returns `{passed, failures, report}`.
  """
  @spec run(integer(), pos_integer(), pos_integer(), [{module(), binary()}]) :: {non_neg_integer(), [String.t()], [String.t()]}
  def run(seed, n, bound_ms, modules) do
    bases = bases(seed)
    child = Peer.start(modules, [{__MODULE__, :child_init, [bases]}])
    dir = Path.join(["_build", "fuzz", "seed-#{seed}"])
    acc = %{passed: 0, failures: [], child: child, results: %{}, max_us: 0, max_peak: 0, max_atoms: 0, dir: dir}
    acc = 1..n//1 |> Enum.chunk_every(@batch) |> Enum.reduce(acc, &run_batch(seed, &1, bound_ms, &2))
    results = acc.results |> Enum.sort() |> Enum.map_join(", ", fn {{op, r}, k} -> "#{op} #{r} #{k}" end)

    report = [
      "recording fuzz: #{n} mutants of #{length(bases)} files; slowest load #{Float.round(acc.max_us / 1000, 1)} ms, " <>
        "peak memory +#{Float.round(acc.max_peak / 1_048_576, 1)} MiB, most atoms created by one load #{acc.max_atoms}",
      "  outcomes: " <> results
    ]

    Peer.stop(acc.child)
    {acc.passed, Enum.reverse(acc.failures), report}
  end

  defp run_batch(seed, ids, bound_ms, acc) do
    case Peer.call(acc.child, __MODULE__, :child_batch, [seed, ids, bound_ms], 5 * bound_ms * length(ids) + 30_000) do
      {:ok, results, child} ->
        Enum.reduce(results, %{acc | child: child}, &count/2)

      failed when length(ids) > 1 ->
        # the VM died or wedged: each mutant again, alone, to find which
        acc = %{acc | child: elem(failed, tuple_size(failed) - 1)}
        Enum.reduce(ids, acc, &run_batch(seed, [&1], bound_ms, &2))

      failed ->
        [i] = ids
        {op, bytes, _opts} = mutant(Gen.new(seed * 1_000_003 + i), state(bases(seed)))

        why =
          case failed do
            {:hang, _} -> "its VM wedged"
            {:crash, why, _} -> "its VM died: #{inspect(why, limit: 5)}"
          end

        count({i, op, %{result: :crash, us: 0, peak: 0, atoms: 0}, why, bytes}, %{acc | child: elem(failed, tuple_size(failed) - 1)})
    end
  end

  defp count({i, op, r, why, bytes}, acc) do
    acc = %{acc | max_us: max(acc.max_us, r.us), max_peak: max(acc.max_peak, r.peak), max_atoms: max(acc.max_atoms, r.atoms),
                  results: Map.update(acc.results, {op, r.result}, 1, &(&1 + 1))}

    if why do
      File.mkdir_p!(acc.dir)
      file = Path.join(acc.dir, "mutant-#{i}-#{op}.esrec")
      File.write!(file, bytes)
      %{acc | failures: ["mutant #{i} (#{op}, #{file}): #{why}" | acc.failures]}
    else
      %{acc | passed: acc.passed + 1}
    end
  end

  @doc false
  # in the child: keeps the good files (and bombs) and warms the VM up
  @spec child_init([binary()]) :: :ok
  def child_init(bases) do
    :persistent_term.put(@state, state(bases))
    Child.warm_up(bases)
  end

  defp state(bases) do
    meta = %{clock: {1_000_000, 1_700_000_000_000_000}, node: node()}
    v3 = for evs <- [sample_events(), random_events(Gen.new(length(bases)), 800)], do: F3.build([F3.segment_of(evs)], meta)
    %{bases: Enum.map(bases, &{&1, F.parse(&1)}), bombs: Map.new([1, 4, 16, 64, 1024], &{&1, F.zero_bomb(&1)}), v3: v3}
  end

  @doc false
  # in the child: makes, loads (each in its own process, bounded) and judges the mutants `ids`
  @spec child_batch(integer(), [pos_integer()], pos_integer()) :: [tuple()]
  def child_batch(seed, ids, bound_ms) do
    state = :persistent_term.get(@state)

    for i <- ids do
      {op, bytes, opts} = mutant(Gen.new(seed * 1_000_003 + i), state)
      task = Task.async(fn -> Child.load(bytes, [max_new_atoms: @max_new_atoms] ++ opts) end)

      r =
        case Task.yield(task, 5 * bound_ms) || Task.shutdown(task, :brutal_kill) do
          {:ok, r} -> r
          _ -> %{result: :hang, message: "no answer within #{5 * bound_ms} ms", us: 5_000 * bound_ms, peak: 0, atoms: 0}
        end

      why = judge(r, bound_ms)
      {i, op, r, why, if(why, do: bytes, else: "")}
    end
  end

  defp judge(r, bound_ms) do
    cond do
      r.result not in [:ok, :error] -> "#{r.result}: #{r.message}"
      r.result == :error and not (r.message =~ ~r/at byte \d+|recording refused|not an ElixirScope recording/) -> "an error naming no offset: #{r.message}"
      r.result == :error and r.message =~ "internal error" -> r.message
      r.us > bound_ms * 1000 -> "took #{div(r.us, 1000)} ms (#{r.result}: #{r.message})"
      r.peak > @max_memory -> "the VM's memory grew by #{div(r.peak, 1_048_576)} MiB (#{r.result}: #{r.message})"
      r.atoms > @max_new_atoms -> "#{r.atoms} atoms were created (#{r.result}: #{r.message})"
      true -> nil
    end
  end

  # ---- the files mutated ----

  defp bases(seed) do
    events = sample_events()
    many = random_events(Gen.new(seed), 800)
    split = events |> save(1) |> F.parse() |> split_chunk(3) |> F.build()
    [save(events, 0), save(events, 6), split, save(many, 1), save(many, 0)]
  end

  defp save(events, level) do
    rec = Recording.from_events(events, %{clock: {1_000_000, 1_700_000_000_000_000}, names: %{shop: hd(events).pid}})
    path = Path.join(System.tmp_dir!(), "es-fuzz-base-#{System.pid()}-#{System.unique_integer([:positive])}.esrec")
    {:ok, _} = Recording.save(path, :all, source: rec, compressed: level)
    Recording.close(rec)
    bytes = File.read!(path)
    File.rm!(path)
    bytes
  end

  defp split_chunk(%{chunks: [c]} = forged, k) do
    {:es_chunk, atoms, pids, rows} = F.term(c)
    parts = Enum.chunk_every(rows, div(length(rows) + k - 1, k))
    %{forged | chunks: for(p <- parts, do: F.chunk({:es_chunk, atoms, pids, p}, length(p)))}
  end

  # a pid of another node (its node name is an atom only the file's table brings to the child)
  defp remote_pid do
    node = "fuzz_remote@elsewhere"
    :erlang.binary_to_term(<<131, 88, 119, byte_size(node), node::binary, 7::32, 0::32, 1::32>>)
  end

  defp sample_events do
    [a, s] = B.pids(2)
    r = remote_pid()
    b = B.new()
    {b, c} = B.call(b, a, Shop, :checkout, [%{id: 7, tags: ["x", <<0xFF>>]}, {1.5, -3, 1 <<< 70}, [1 | 2]])
    {b, _} = B.local(b, a, c, %{cart: [1, 2], ref: make_ref(), f: &Enum.map/2, g: fn x -> x end})
    {b, _} = B.send_msg(b, a, s, {:order, 1, r})
    {b, _} = B.recv(b, s, {:order, 1, r}, 3)
    {b, h} = B.call(b, s, Shop.Server, :handle_call, [{:order, 1}, {a, make_ref()}, %{n: 0}])
    {b, _} = B.state(b, s, h, :before, %{n: 0})
    {b, _} = B.state(b, s, h, :after, %{n: 1, at: DateTime.from_unix!(0)})
    {b, _} = B.ret(b, s, h, {:reply, :ok, %{n: 1}})
    {b, _} = B.ret(b, a, c, {:ok, 1})
    {b, _} = B.spawn_ev(b, a, r)
    b = B.add!(b, a, :exception, call_id: c, payload: {:error, %RuntimeError{message: "boom"}, [{Shop, :f, 1, [line: 3]}]})
    b = B.add!(b, r, :custom, payload: {:note, "ünïcode"}, truncated?: true, redacted?: true)
    b = B.add!(b, a, :expr, payload: {"x + 1", 2}, line: 40)
    b = B.add!(b, a, :tail_call, payload: {Shop, :g, [1]})
    b = B.add!(b, a, :exit, payload: :normal)
    B.events(b)
  end

  defp random_events(g, n) do
    pids = B.pids(4)

    {evs, _} =
      Enum.map_reduce(1..n, g, fn i, g ->
        {kind, g} = Gen.one_of(g, [:call, :return, :local, :send, :receive, :custom, :state])
        {v, g} = Gen.term(g, 3)
        {pid, g} = Gen.one_of(g, pids)

        payload =
          case kind do
            :call -> [v]
            :local -> %{v: v}
            :state -> {:after, v}
            k when k in [:send, :custom] -> {:x, v}
            _ -> v
          end

        e = %ElixirScope.Event{id: i, ts: 1_000_000 + i * 10, wall_time: nil, pid: pid, kind: kind, module: Mod, function: :f,
                               arity: if(kind == :call, do: 1), line: rem(i, 300), call_id: 0, link: 0, payload: payload}
        {e, g}
      end)

    evs
  end

  # ---- mutations ----

  defp mutant(g, %{bases: bases, bombs: bombs, v3: v3}) do
    {op, g} = Gen.one_of(g, @ops ++ @v3_ops)

    if op in @v3_ops do
      {base, g} = Gen.one_of(g, v3)
      {op, mutate_v3(op, g, base), []}
    else
      {{base, parsed}, g} = Gen.one_of(g, bases)
      {bytes, opts} = mutate(op, g, base, parsed, bases, bombs)
      {op, bytes, opts}
    end
  end

  defp mutate_v3(:v3_raw, g, base) do
    {op, g} = Gen.one_of(g, [:truncate, :bit_flip, :splice, :version])
    {bytes, []} = mutate(op, g, base, nil, nil, nil)
    bytes
  end

  # a segment header's count or sizes (its checksum covers only what follows it)
  defp mutate_v3(:v3_count, g, <<head::binary-size(14), n::little-32, wl::little-32, pl::little-32, rest::binary>>) do
    {field, g} = Gen.int(g, 0, 2)
    {v, _} = Gen.one_of(g, [0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 1 <<< 20, (1 <<< 20) + 1, n + 1, wl - 1, pl + 1])
    fields = List.replace_at([n, wl, pl], field, band(max(v, 0), 0xFFFFFFFF))
    head <> Enum.map_join(fields, &<<&1::little-32>>) <> rest
  end

  # one field of one record: any value its width holds
  defp mutate_v3(:v3_field, g, base) do
    on_row(base, g, fn row, g ->
      {field, g} = Gen.int(g, 0, 10)
      bits = Enum.at([64, 64, 64, 64, 32, 32, 32, 32, 16, 8, 8], field)
      {v, _} = Gen.one_of(g, [0, 1, 2, 12, 255, 256, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF, elem(row, field) + 1, elem(row, field) - 1])
      put_elem(row, field, band(max(v, 0), (1 <<< bits) - 1))
    end)
  end

  defp mutate_v3(:v3_payload, g, base) do
    on_row(base, g, fn row, g ->
      {r, g} = Gen.int(g, 1, 5)
      p = elem(row, 11)

      payload =
        case r do
          1 when p != "" -> flip_bits(p, g)
          2 -> elem(Gen.binary(g, 40), 0)
          3 -> <<131>> <> elem(Gen.binary(g, 40), 0)
          4 -> ""
          _ -> :erlang.term_to_binary(elem(value(g), 0))
        end

      put_elem(row, 11, payload)
    end)
  end

  defp mutate_v3(:v3_word, g, base) do
    {:ok, [{words, rows}], meta} = F3.parse(base)
    {i, g} = Gen.int(g, 0, length(words) - 1)
    {r, g} = Gen.int(g, 1, 3)

    word =
      case r do
        1 -> flip_bits(Enum.at(words, i), g)
        2 -> :erlang.term_to_binary(elem(value(g), 0))
        3 -> :erlang.term_to_binary(Enum.at([:an_atom, self(), remote_pid()], rem(i, 3)))
      end

    F3.build([{List.replace_at(words, i, word), rows}], meta)
  end

  # a payload naming fresh atoms, within or over the child's budget
  defp mutate_v3(:v3_new_atoms, g, base) do
    {count, g} = Gen.one_of(g, [1, 10, @max_new_atoms, @max_new_atoms + 1, 3000])
    {tag, g} = Gen.int(g, 1, 1_000_000_000)
    fresh = for i <- 1..count, do: "fuzz_v3_atom_#{tag}_#{i}"
    payload = <<131, 108, count::32>> <> Enum.map_join(fresh, &<<119, byte_size(&1), &1::binary>>) <> <<106>>
    on_row(base, g, fn row, _g -> put_elem(row, 11, payload) end)
  end

  defp on_row(base, g, fun) do
    {:ok, [{words, rows}], meta} = F3.parse(base)
    {j, g} = Gen.int(g, 0, length(rows) - 1)
    F3.build([{words, List.update_at(rows, j, &fun.(&1, g))}], meta)
  end

  defp mutate(:truncate, g, base, _f, _bases, _bombs) do
    {i, _} = Gen.int(g, 0, byte_size(base) - 1)
    {binary_part(base, 0, i), []}
  end

  defp mutate(:bit_flip, g, base, _f, _bases, _bombs), do: {flip_bits(base, g), []}

  defp mutate(:splice, g, base, _f, _bases, _bombs) do
    {i, g} = Gen.int(g, 0, byte_size(base))
    {len, g} = Gen.int(g, 0, 64)
    {junk, g} = Gen.binary(g, 32)
    {r, _} = Gen.int(g, 1, 3)
    <<pre::binary-size(i), post::binary>> = base
    cut = min(len, byte_size(post))

    case r do
      1 -> {pre <> junk <> post, []}
      2 -> {pre <> binary_part(post, cut, byte_size(post) - cut), []}
      3 -> {pre <> junk <> binary_part(post, min(byte_size(junk), byte_size(post)), byte_size(post) - min(byte_size(junk), byte_size(post))), []}
    end
  end

  # bits flipped inside a chunk's ETF, checksums made right
  defp mutate(:etf_bytes, g, _base, f, _bases, _bombs) do
    on_chunk(f, g, fn {n, t, e}, g -> {{n, t, flip_bits(e, g)}, g} end)
  end

  defp mutate(:compressed, g, _base, f, _bases, _bombs) do
    on_chunk(f, g, fn {n, t, e}, g ->
      <<131, packed::binary>> = :erlang.term_to_binary(:erlang.binary_to_term(e), compressed: 9)

      case packed do
        <<80, raw::32, z::binary>> -> {{n, t, <<131, 80, raw::32, flip_bits(z, g)::binary>>}, g}
        _ -> {{n, t, flip_bits(e, g)}, g}
      end
    end)
  end

  defp mutate(:declared_size, g, _base, f, _bases, _bombs) do
    on_chunk(f, g, fn {n, t, e}, g ->
      <<131, rest::binary>> = :erlang.term_to_binary(:erlang.binary_to_term(e), compressed: 9)
      z = case rest do
            <<80, _raw::32, z::binary>> -> z
            _ -> :zlib.compress(rest)
          end
      {size, g} = Gen.one_of(g, [0, 1, byte_size(rest) - 2, byte_size(rest) + 1, byte_size(rest) * 3, 0xFFFFFFFF, 16 * 1024 * 1024])
      {{n, t, <<131, 80, size::32, z::binary>>}, g}
    end)
  end

  defp mutate(:bomb, g, _base, f, _bases, bombs) do
    {mib, g} = Gen.one_of(g, Map.keys(bombs))
    {declared, g} = Gen.one_of(g, [mib * 1_048_576, 1000, div(mib * 1_048_576, 2), 0xFFFFFFFF, 16 * 1_048_576, 100_000])
    {opts, g} = Gen.one_of(g, [[], [], [max_ratio: 100_000]])
    {bytes, _} = on_chunk(f, g, fn {n, t, _e}, g -> {{n, t, <<131, 80, declared::32, Map.fetch!(bombs, mib)::binary>>}, g} end)
    {bytes, opts}
  end

  defp mutate(:atom_table, g, _base, f, _bases, _bombs) do
    on_part(f, g, fn {n, t, e}, g ->
      {names, exports} = F.parse_table(t)
      {r, g} = Gen.int(g, 1, 9)
      {name, g} = Gen.one_of(g, if(names == [], do: ["x"], else: names))

      table =
        case r do
          1 -> elem(Gen.binary(g, 40), 0)
          2 -> <<length(names) + elem(Gen.int(g, 1, 1000), 0)::32, binary_part(t, 4, byte_size(t) - 4)::binary>>
          3 -> F.table(List.delete(names, name), [])
          4 -> F.table(names ++ [<<0xC3, 0x28>>], exports)
          5 -> F.table(names ++ [String.duplicate("ü", 256)], exports)
          6 -> F.table(names ++ [name, name, ""], exports ++ [{0, 0, 255}])
          7 -> F.table(names, exports ++ [{length(names), 0, 1}])
          8 -> F.table(names ++ ["fuzz_gone_mod_#{elem(Gen.int(g, 1, 10), 0)}", "f"], exports ++ [{length(names), length(names) + 1, 3}])
          9 -> binary_part(t, 0, elem(Gen.int(g, 0, byte_size(t) - 1), 0))
        end

      {{n, table, e}, g}
    end)
  end

  # new atoms, used or not by the ETF, within or over the child's budget
  defp mutate(:new_atoms, g, _base, f, _bases, _bombs) do
    {count, g} = Gen.one_of(g, [1, 10, @max_new_atoms, @max_new_atoms + 1, 3000])
    {tag, g} = Gen.int(g, 1, 1_000_000_000)
    {used?, g} = Gen.one_of(g, [true, false])
    fresh = for i <- 1..count, do: "fuzz_atom_#{tag}_#{i}"

    on_chunk(f, g, fn {n, t, e}, g ->
      {names, exports} = F.parse_table(t)
      e = if used?, do: uses_new_atom(e, hd(fresh)), else: e
      {{n, F.table(names ++ fresh, exports), e}, g}
    end)
  end

  defp mutate(:field, g, _base, f, _bases, _bombs) do
    on_term(f, g, fn {:es_chunk, atoms, pids, rows}, g ->
      {j, g} = Gen.int(g, 0, length(rows) - 1)
      {field, g} = Gen.int(g, 0, 14)
      {v, g} = value(g)
      {{:es_chunk, atoms, pids, List.update_at(rows, j, &put_elem(&1, field, v))}, g}
    end)
  end

  defp mutate(:row, g, _base, f, _bases, _bombs) do
    on_term(f, g, fn {:es_chunk, atoms, pids, rows}, g ->
      {j, g} = Gen.int(g, 0, length(rows) - 1)
      {v, g} = value(g)
      {r, g} = Gen.int(g, 1, 4)

      rows =
        case r do
          1 -> List.replace_at(rows, j, v)
          2 -> List.delete_at(rows, j)
          3 -> List.insert_at(rows, j, Enum.at(rows, j))
          4 -> Enum.reverse(rows)
        end

      {{:es_chunk, atoms, pids, rows}, g}
    end)
  end

  defp mutate(:chunk_shape, g, _base, f, _bases, _bombs) do
    on_term(f, g, fn {:es_chunk, atoms, pids, rows} = t, g ->
      {v, g} = value(g)
      {r, g} = Gen.int(g, 1, 6)

      t =
        case r do
          1 -> v
          2 -> {:es_chunk, v, pids, rows}
          3 -> {:es_chunk, atoms, v, rows}
          4 -> {:es_chunk, atoms, pids, v}
          5 -> Tuple.append(t, v)
          6 -> {:es_chunk, Tuple.append(atoms, v), Tuple.append(pids, v), rows ++ [v | v]}
        end

      {t, g}
    end)
  end

  defp mutate(:chunk_order, g, _base, f, _bases, _bombs) do
    {r, g} = Gen.int(g, 1, 4)
    {k, _} = Gen.int(g, -2, 2)
    [c | _] = cs = f.chunks

    chunks =
      case r do
        1 -> Enum.reverse(cs)
        2 -> cs ++ [c]
        3 -> tl(cs)
        4 -> Enum.map(cs, fn {n, t, e} -> {max(n + k, 0), t, e} end)
      end

    {F.build(%{f | chunks: chunks}), []}
  end

  defp mutate(:header, g, _base, f, _bases, _bombs) do
    meta = :erlang.binary_to_term(elem(f.header, 1))
    {key, g} = Gen.one_of(g, [:created_at, :node, :clock, :names, :source_stats, :filter, :title, :otp_release, :elixir, :other])
    {v, g} = value(g)
    {r, _g} = Gen.int(g, 1, 4)

    meta =
      case r do
        1 -> Map.put(meta, key, v)
        2 -> Map.delete(meta, key)
        3 -> v
        4 -> Map.put(meta, :names, %{v => remote_pid(), shop: v})
      end

    {_, t, e} = F.chunk(meta, 0)
    {F.build(%{f | header: {t, e}}), []}
  end

  defp mutate(:subterm, g, _base, f, _bases, _bombs) do
    on_term(f, g, fn t, g -> replace_random(t, g, 0) end)
  end

  defp mutate(:version, g, base, _f, _bases, _bombs) do
    {v, _} = Gen.one_of(g, [0, 1, 3, 255, 65_535])
    <<magic::binary-size(11), _::16, rest::binary>> = base
    {<<magic::binary, v::16, rest::binary>>, []}
  end

  defp mutate(:trailer, g, _base, f, _bases, _bombs) do
    {total, _} = Gen.one_of(g, [0, 1, 0xFFFFFFFFFFFFFFFF, Enum.sum(Enum.map(f.chunks, &elem(&1, 0))) + 1])
    {F.build(f, total: total), []}
  end

  # a chunk from another file
  defp mutate(:graft, g, _base, f, bases, _bombs) do
    {{_, other}, g} = Gen.one_of(g, bases)
    {c, _} = Gen.one_of(g, other.chunks)
    {F.build(%{f | chunks: f.chunks ++ [c]}), []}
  end

  # re-encoded at another compression level: must load
  defp mutate(:harmless, g, _base, f, _bases, _bombs) do
    {level, g} = Gen.int(g, 0, 9)
    on_chunk(f, g, fn {n, _t, e}, g -> {F.chunk(:erlang.binary_to_term(e), n, compressed: level), g} end)
  end

  # ---- helpers ----

  defp on_chunk(f, g, fun) do
    {i, g} = Gen.int(g, 0, length(f.chunks) - 1)
    {c, _g} = fun.(Enum.at(f.chunks, i), g)
    {F.build(%{f | chunks: List.replace_at(f.chunks, i, c)}), []}
  end

  # the header or a chunk
  defp on_part(f, g, fun) do
    {i, g} = Gen.int(g, -1, length(f.chunks) - 1)

    if i < 0 do
      {ht, he} = f.header
      {{_, t, e}, _} = fun.({0, ht, he}, g)
      {F.build(%{f | header: {t, e}}), []}
    else
      {c, _g} = fun.(Enum.at(f.chunks, i), g)
      {F.build(%{f | chunks: List.replace_at(f.chunks, i, c)}), []}
    end
  end

  # the chunk's term changed, its atom table made to match
  defp on_term(f, g, fun) do
    on_chunk(f, g, fn {n, _t, _e} = c, g ->
      {t, g} = fun.(F.term(c), g)
      {level, g} = Gen.one_of(g, [0, 1])
      {F.chunk(t, n, compressed: level), g}
    end)
  end

  defp flip_bits(bin, g) do
    {k, g} = Gen.int(g, 1, 8)

    {bin, _} =
      Enum.reduce(1..k, {bin, g}, fn _, {bin, g} ->
        {i, g} = Gen.int(g, 0, byte_size(bin) * 8 - 1)
        <<pre::bitstring-size(i), b::1, post::bitstring>> = bin
        {<<pre::bitstring-size(i), 1 - b::1, post::bitstring>>, g}
      end)

    bin
  end

  # the ETF's first atom renamed to a new one (of any length): ETF is rewritten by hand,
  # since building a term would create the atom here
  defp uses_new_atom(etf, name) do
    <<131, rest::binary>> = :erlang.term_to_binary(:erlang.binary_to_term(etf), minor_version: 2)

    case :binary.match(rest, <<119>>) do
      {pos, 1} ->
        <<pre::binary-size(pos), 119, len, _old::binary-size(len), post::binary>> = rest
        <<131, pre::binary, 119, byte_size(name), name::binary, post::binary>>

      :nomatch ->
        etf
    end
  rescue
    MatchError -> etf
  end

  defp replace_random(t, g, depth) do
    {r, g} = Gen.int(g, 1, 4)

    cond do
      depth > 12 or r == 1 -> value(g)
      proper_list?(t) and t != [] ->
        {i, g} = Gen.int(g, 0, length(t) - 1)
        {v, g} = replace_random(Enum.at(t, i), g, depth + 1)
        {List.replace_at(t, i, v), g}

      is_tuple(t) and tuple_size(t) > 0 ->
        {i, g} = Gen.int(g, 0, tuple_size(t) - 1)
        {v, g} = replace_random(elem(t, i), g, depth + 1)
        {put_elem(t, i, v), g}

      is_map(t) and map_size(t) > 0 ->
        {k, g} = Gen.one_of(g, Map.keys(t))
        {v, g} = replace_random(Map.fetch!(t, k), g, depth + 1)
        {Map.put(t, k, v), g}

      true ->
        value(g)
    end
  end

  defp proper_list?([_ | t]), do: proper_list?(t)
  defp proper_list?(t), do: t == []

  @nasty [-1, 0, 1, 255, 256, 4_294_967_296, 18_446_744_073_709_551_615, 18_446_744_073_709_551_616, -(1 <<< 63) - 1,
          1 <<< 4000, 1.5, -0.0, "", "7", <<0xFF>>, :later, nil, true, [], {}, %{}, [1 | 2], {:a, :b, :c},
          %{__struct__: DateTime}, %{__struct__: ElixirScope.Truncated, kind: 1}, {:"$es_truncated", :list, -5}]

  defp value(g) do
    {r, g} = Gen.int(g, 1, 10)

    cond do
      r <= 5 -> Gen.term(g, 2)
      r <= 9 -> Gen.one_of(g, @nasty)
      true -> Gen.one_of(g, [self(), make_ref(), remote_pid(), &Enum.map/2, :erlang.make_fun(:fuzz_gone, :f, 1)])
    end
  end
end
