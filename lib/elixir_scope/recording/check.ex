defmodule ElixirScope.Recording.Check do
  @moduledoc """
  Type and range checks of what a recording file decodes to, so that a loaded
  recording holds only what a capture session can produce: every event field
  has its `ElixirScope.Event` type and range (ids above the previous one and
  below 2^64, timestamps in 0..2^64-1, arity in 0..255, a known kind, a
  payload of the shape its kind documents, or nil), and the header holds
  plain data (counters, names, a clock). A failure names the event and field.
  """

  alias ElixirScope.Event
  alias ElixirScope.Recording.{Sources, Structs}

  @u64 0xFFFF_FFFF_FFFF_FFFF
  @u32 0xFFFF_FFFF
  @i64 0x7FFF_FFFF_FFFF_FFFF
  @kinds Event.kinds()

  defguardp u64(x) when is_integer(x) and x >= 0 and x <= @u64
  defguardp index(x, t) when is_integer(x) and x >= 0 and x < tuple_size(t)
  defguardp opt_i64(x) when x == nil or (is_integer(x) and x >= -@i64 - 1 and x <= @i64)
  defguardp opt_arity(x) when x == nil or (is_integer(x) and x >= 0 and x <= 255)

  @doc """
  The events of a decoded chunk `{:es_chunk, atoms, pids, rows}` holding `n`
  rows with ids above `after_id`, or `{:error, what}`.
  """
  @spec chunk(term(), pos_integer()) :: {:ok, [Event.t()]} | {:error, String.t()}
  def chunk({:es_chunk, atoms, pids, rows}, n) when is_tuple(atoms) and is_tuple(pids) and is_list(rows) do
    cond do
      not Enum.all?(Tuple.to_list(atoms), &is_atom/1) -> {:error, "its atom column holds something that is not an atom"}
      not Enum.all?(Tuple.to_list(pids), &(is_pid(&1) or &1 == nil)) -> {:error, "its pid column holds something that is not a pid"}
      true -> rows(rows, atoms, pids, 0, n, 0, [])
    end
  end

  def chunk(_term, _n), do: {:error, "it is not an {:es_chunk, atoms, pids, rows} tuple"}

  defp rows([], _atoms, _pids, j, n, _prev, acc) when j == n, do: {:ok, :lists.reverse(acc)}
  defp rows([], _atoms, _pids, j, n, _prev, _acc), do: {:error, "it holds #{j} events, not the #{n} its header announces"}
  defp rows(_rows, _atoms, _pids, j, n, _prev, _acc) when j >= n, do: {:error, "it holds more than the #{n} events its header announces"}

  defp rows([row | rest], atoms, pids, j, n, prev, acc) do
    case event(row, atoms, pids, prev) do
      %Event{id: id} = e -> rows(rest, atoms, pids, j + 1, n, id, [e | acc])
      {:error, what} -> {:error, "event #{j + 1} of the chunk: #{what}"}
    end
  end

  defp rows(_improper, _atoms, _pids, _j, _n, _prev, _acc), do: {:error, "its rows are not a proper list"}

  defp event({id, ts, wall, p, k, m, f, a, line, cid, link, corr, ret, payload, flags} = row, atoms, pids, prev)
       when u64(id) and id > prev and u64(ts) and opt_i64(wall) and index(p, pids) and index(k, atoms) and
              index(m, atoms) and index(f, atoms) and opt_arity(a) and is_integer(line) and line >= 0 and
              line <= @u32 and u64(cid) and u64(link) and u64(corr) and u64(ret) and flags in 0..3 do
    kind = elem(atoms, k)

    if kind in @kinds and payload?(kind, payload) do
      %Event{id: id, ts: ts, wall_time: wall, pid: elem(pids, p), kind: kind, module: elem(atoms, m),
             function: elem(atoms, f), arity: a, line: line, call_id: cid, link: link, correlation_id: nonzero(corr),
             return_id: nonzero(ret), payload: payload, truncated?: Bitwise.band(flags, 1) != 0,
             redacted?: Bitwise.band(flags, 2) != 0}
    else
      explain(row, atoms, pids, prev)
    end
  end

  defp event(row, atoms, pids, prev), do: explain(row, atoms, pids, prev)

  # the slow path: which field is wrong
  defp explain(row, atoms, pids, prev) when is_tuple(row) and tuple_size(row) == 15 do
    [id, ts, wall, p, k, m, f, a, line, cid, link, corr, ret, payload, flags] = Tuple.to_list(row)

    checks = [
      {:id, id, u64?(id) and id > prev, "a positive integer below 2^64, above the previous id (#{prev})"},
      {:ts, ts, u64?(ts), "an integer in 0..2^64-1 (monotonic ns)"},
      {:wall_time, wall, wall == nil or (is_integer(wall) and wall >= -@i64 - 1 and wall <= @i64), "nil or a 64-bit integer"},
      {:pid, p, is_integer(p) and p >= 0 and p < tuple_size(pids), "an index into the chunk's pids"},
      {:kind, k, is_integer(k) and k >= 0 and k < tuple_size(atoms) and elem(atoms, k) in @kinds, "an index of one of #{inspect(@kinds)}"},
      {:module, m, is_integer(m) and m >= 0 and m < tuple_size(atoms), "an index into the chunk's atoms"},
      {:function, f, is_integer(f) and f >= 0 and f < tuple_size(atoms), "an index into the chunk's atoms"},
      {:arity, a, a == nil or (is_integer(a) and a >= 0 and a <= 255), "nil or an integer in 0..255"},
      {:line, line, is_integer(line) and line >= 0 and line <= @u32, "an integer in 0..2^32-1"},
      {:call_id, cid, u64?(cid), "an integer in 0..2^64-1"},
      {:link, link, u64?(link), "an integer in 0..2^64-1"},
      {:correlation_id, corr, u64?(corr), "an integer in 0..2^64-1"},
      {:return_id, ret, u64?(ret), "an integer in 0..2^64-1"},
      {:flags, flags, flags in 0..3, "an integer in 0..3"}
    ]

    case Enum.find(checks, fn {_, _, ok?, _} -> not ok? end) do
      {field, value, _, expected} -> {:error, "#{field} is #{describe(value)}, expected #{expected}"}
      nil -> {:error, "its payload is #{describe(payload)}, not what a #{inspect(elem(atoms, k))} event holds"}
    end
  end

  defp explain(row, _atoms, _pids, _prev), do: {:error, "it is #{describe(row)}, not a 15-field row"}

  defp u64?(x), do: is_integer(x) and x >= 0 and x <= @u64

  # the shapes `ElixirScope.Event` documents (what the capture runtime emits); nil is "no payload"
  defp payload?(_kind, nil), do: true
  defp payload?(:call, args) when is_list(args) and length(args) >= 0, do: true
  defp payload?(:call, _), do: false
  defp payload?(kind, {_, _, _}) when kind in [:exception, :tail_call], do: true
  defp payload?(kind, _) when kind in [:exception, :tail_call], do: false
  defp payload?(:local, vars), do: is_map(vars)
  defp payload?(:state, {phase, _}), do: is_atom(phase)
  defp payload?(kind, {_, _}) when kind in [:expr, :state, :send, :custom], do: true
  defp payload?(kind, _) when kind in [:expr, :state, :send, :custom], do: false
  defp payload?(_kind, _any), do: true

  defp nonzero(0), do: nil
  defp nonzero(n), do: n

  @doc """
  What a value is, without printing it (an untrusted value may be huge: a
  million-bit integer takes seconds to print).
  """
  @spec describe(term()) :: String.t()
  def describe(v) when is_integer(v) and abs(v) < 1_000_000_000_000, do: Integer.to_string(v)
  def describe(v) when is_integer(v), do: "an integer of #{byte_size(:binary.encode_unsigned(abs(v))) * 8} bits"
  def describe(v) when is_float(v), do: "a float"
  def describe(v) when is_atom(v) and v in [nil, true, false], do: inspect(v)
  def describe(v) when is_atom(v), do: "an atom"
  def describe(v) when is_binary(v), do: "a binary of #{byte_size(v)} bytes"
  def describe(v) when is_bitstring(v), do: "a bitstring"
  def describe(v) when is_list(v), do: "a list"
  def describe(v) when is_tuple(v), do: "a tuple of #{tuple_size(v)} elements"
  def describe(v) when is_map(v), do: "a map"
  def describe(v) when is_pid(v), do: "a pid"
  def describe(v) when is_function(v), do: "a function"
  def describe(_), do: "a reference or port"

  @doc """
  The header map with only known keys, each checked: `created_at` (µs since
  1970), `node`, `clock` `{monotonic_ns, system_us}`, `names` (atom => pid),
  `filter`, `title`, `otp_release`, `elixir` (strings), `source_stats` (plain data),
  `sources` and `sources_omitted` (`ElixirScope.Recording.Sources.check/1`), `structs`
  (`ElixirScope.Recording.Structs.check/1`), `cluster` (a cluster recording's nodes, clock
  offsets, corrections, missing nodes and losses). Unknown keys are dropped.
  """
  @spec meta(term()) :: {:ok, map()} | {:error, String.t()}
  def meta(m) when is_map(m) and not is_map_key(m, :__struct__) do
    checks = [
      {:created_at, &created_at/1},
      {:node, &(is_atom(&1) && {:ok, &1})},
      {:clock, &clock/1},
      {:names, &names/1},
      {:source_stats, &(plain?(&1, 4) && {:ok, &1})},
      {:filter, &string/1},
      {:title, &string/1},
      {:otp_release, &string/1},
      {:elixir, &string/1},
      {:sources, &Sources.check/1},
      {:sources_omitted, &(is_integer(&1) and &1 >= 0 and &1 <= @u32 and {:ok, &1})},
      {:structs, &Structs.check/1},
      {:cluster, &cluster/1}
    ]

    Enum.reduce_while(checks, {:ok, %{}}, fn {key, check}, {:ok, acc} ->
      case Map.fetch(m, key) do
        :error -> {:cont, {:ok, acc}}
        {:ok, nil} -> {:cont, {:ok, Map.put(acc, key, nil)}}
        {:ok, v} ->
          case check.(v) do
            {:ok, v} -> {:cont, {:ok, Map.put(acc, key, v)}}
            _ -> {:halt, {:error, "its #{key} is #{describe(v)}, not what a recording header holds there"}}
          end
      end
    end)
  end

  def meta(other), do: {:error, "it is #{describe(other)}, not a map"}

  defp created_at(us) when is_integer(us) do
    case DateTime.from_unix(us, :microsecond) do
      {:ok, dt} -> {:ok, dt}
      _ -> false
    end
  end

  defp created_at(_), do: false

  defp clock({mono, sys}) when opt_i64(mono) and opt_i64(sys) and mono != nil and sys != nil, do: {:ok, {mono, sys}}
  defp clock(_), do: false

  # a cluster recording's nodes, clock offsets, corrections, missing nodes and losses
  defp cluster(%{coordinator: c, nodes: nodes, offsets: offsets, missing: missing, lost: lost, corrections: corr} = m)
       when is_atom(c) and is_list(nodes) and is_map(offsets) and is_map(missing) and is_map(lost) and is_list(corr) and
              length(nodes) <= 1024 and length(corr) <= 1_000_000 do
    ok? =
      Enum.all?(nodes, &is_atom/1) and
        Enum.all?(offsets, &match?({n, %{offset_ns: o, error_ns: e}} when is_atom(n) and opt_i64(o) and u64(e), &1)) and
        Enum.all?(missing, fn {n, why} -> is_atom(n) and string(why) != false end) and
        Enum.all?(lost, &match?({n, l} when is_atom(n) and u64(l), &1)) and
        Enum.all?(corr, &match?(%{node: n, from_id: i, shift_ns: s} when is_atom(n) and u64(i) and u64(s), &1))

    ok? && {:ok, Map.take(m, [:coordinator, :nodes, :offsets, :missing, :lost, :corrections])}
  end

  defp cluster(_), do: false

  defp names(map) when is_map(map) and not is_map_key(map, :__struct__) do
    if Enum.all?(map, fn {k, v} -> is_atom(k) and is_pid(v) end), do: {:ok, map}, else: false
  end

  defp names(_), do: false

  defp string(s) when is_binary(s) and byte_size(s) <= 65_536, do: String.valid?(s) && {:ok, s}
  defp string(_), do: false

  @doc """
  Plain data of bounded depth: integers below 2^64 in size, floats, atoms,
  binaries, and maps (not structs) with atom keys of such values.
  """
  @spec plain?(term(), non_neg_integer()) :: boolean()
  def plain?(v, _depth) when is_integer(v), do: abs(v) <= @u64
  def plain?(v, _depth) when is_float(v) or is_atom(v) or is_binary(v), do: true

  def plain?(m, depth) when is_map(m) and depth > 0 and not is_map_key(m, :__struct__),
    do: Enum.all?(m, fn {k, v} -> is_atom(k) and plain?(v, depth - 1) end)

  def plain?(_v, _depth), do: false

  @doc "Makes counters (which may hold a `DateTime`) plain data for a header (see `plain?/2`)."
  @spec to_plain(term(), non_neg_integer()) :: term()
  def to_plain(%DateTime{} = dt, _depth), do: DateTime.to_iso8601(dt)

  def to_plain(m, depth) when is_map(m) and depth > 0 and not is_map_key(m, :__struct__),
    do: for({k, v} <- m, is_atom(k), into: %{}, do: {k, to_plain(v, depth - 1)})

  def to_plain(v, depth), do: if(plain?(v, depth), do: v, else: nil)
end
