defmodule ElixirScope.Fuzz.Child do
  @moduledoc """
  What the fuzzer runs inside a child VM (`ElixirScope.Fuzz.Peer`): NIF calls,
  each in its own process and bounded in time, and recording loads, measured
  (time, the VM's peak memory, atoms created) and checked (a loaded recording
  holds well-typed events and answers queries without raising).
  """

  alias ElixirScope.{Event, NIF, Query, Recording}

  @values {__MODULE__, :values}

  # ---- NIFs ----

  @doc """
  Creates the sessions and the large values that `{:"$fz", name}` placeholders stand for
  (`{:"$fz_etf", term}` stands for the term, its placeholders expanded, in external format).
  """
  @spec nif_setup(map()) :: :ok
  def nif_setup(session_opts) do
    s1 = NIF.session_new(session_opts)
    s2 = NIF.session_new(session_opts)
    :ok = NIF.session_install(s1)
    big = :binary.copy(<<7>>, 1024 * 1024)
    {:ok, port} = :gen_udp.open(0)

    :persistent_term.put(@values, %{
      session: s1,
      session2: s2,
      big_binary: big,
      sub_binary: binary_part(big, 3, 1000),
      bitstring: <<1::3>>,
      deep_list: Enum.reduce(1..100_000, [], &[&2, &1]),
      long_list: Enum.to_list(1..1_000_000),
      wide_tuple: List.to_tuple(Enum.to_list(1..100_000)),
      big_map: Map.new(1..100_000, &{&1, &1}),
      bignum: Bitwise.bsl(1, 100_000),
      improper: [1, 2 | 3],
      fun: fn x -> x end,
      self: self(),
      dead_pid: spawn(fn -> :ok end),
      ref: make_ref(),
      port: port,
      long_atom: String.to_atom(String.duplicate("a", 255)),
      unicode_atom: String.to_atom(String.duplicate("é", 255))
    })

    :ok
  end

  @doc """
  Runs `[{function, args}]` (compressed external format: the peer's standard I/O carries
  a few MB/s, and valid transform requests repeat most of their bytes) against
  `ElixirScope.NIF`, each in a new process given `bound_ms`. Returns `{:done, stats}` or,
  at the first call that does not return in time, `{:hang, index, stats}`.
  """
  @spec nif_batch(binary(), pos_integer()) :: {:done, map()} | {:hang, non_neg_integer(), map()}
  def nif_batch(calls_etf, bound_ms) do
    values = :persistent_term.get(@values)

    calls_etf
    |> :erlang.binary_to_term()
    |> Enum.with_index()
    |> Enum.reduce_while({:done, %{outcomes: %{}, slowest: %{}}}, fn {{f, args}, i}, {:done, stats} ->
      case run_one(f, expand(args, values), bound_ms) do
        {:returned, outcome, us} ->
          stats = %{
            outcomes: Map.update(stats.outcomes, {f, outcome}, 1, &(&1 + 1)),
            slowest: Map.update(stats.slowest, f, us, &max(&1, us))
          }

          {:cont, {:done, stats}}

        :hang ->
          {:halt, {:hang, i, stats}}
      end
    end)
  end

  defp run_one(f, args, bound_ms) do
    parent = self()
    ref = make_ref()

    {pid, mref} =
      spawn_monitor(fn ->
        t0 = System.monotonic_time(:microsecond)

        outcome =
          try do
            # an error the NIF returns is told apart from a value, so the report shows how far valid input got
            case apply(NIF, f, args) do
              {:error, _} -> :error_tuple
              _ -> :ok
            end
          rescue
            e -> e.__struct__
          catch
            kind, _ -> kind
          end

        send(parent, {ref, outcome, System.monotonic_time(:microsecond) - t0})
      end)

    receive do
      {^ref, outcome, us} ->
        Process.demonitor(mref, [:flush])
        {:returned, outcome, us}

      {:DOWN, ^mref, _, _, reason} ->
        {:returned, {:died, reason}, 0}
    after
      bound_ms ->
        Process.exit(pid, :kill)
        :hang
    end
  end

  defp expand({:"$fz", name}, values), do: Map.fetch!(values, name)
  defp expand({:"$fz_etf", term}, values), do: :erlang.term_to_binary(expand(term, values))
  defp expand(list, values) when is_list(list), do: expand_list(list, values, [])
  defp expand(tuple, values) when is_tuple(tuple), do: tuple |> Tuple.to_list() |> Enum.map(&expand(&1, values)) |> List.to_tuple()
  defp expand(map, values) when is_map(map), do: Map.new(map, fn {k, v} -> {expand(k, values), expand(v, values)} end)
  defp expand(other, _values), do: other

  defp expand_list([h | t], values, acc), do: expand_list(t, values, [expand(h, values) | acc])
  defp expand_list([], _values, acc), do: Enum.reverse(acc)
  defp expand_list(tail, values, acc), do: :lists.reverse(acc, expand(tail, values))

  # ---- recordings ----

  @doc """
  Loads every module of the VM's applications and loads and checks good
  files once, so that code loading (which makes atoms) is done before atoms are counted.
  """
  @spec warm_up([binary()]) :: :ok
  def warm_up(files) do
    _ = Application.load(:elixir_scope)

    for app <- [:kernel, :stdlib, :elixir, :logger, :elixir_scope], mod <- Application.spec(app, :modules) || [],
        do: Code.ensure_loaded(mod)

    for bytes <- files do
      %{result: :ok} = load(bytes, [])
      %{result: :error} = load(binary_part(bytes, 0, 20), [])
    end

    :ok
  end

  @doc """
  Loads `bytes` as a recording file with `opts`; returns what happened:
  `%{result:, message:, us:, peak:, atoms:}` where `result` is `:ok`, `:error`,
  or a failure (`:raised`, `:bad_result`, `:bad_event`, `:query_raised`).
  """
  @spec load(binary(), keyword()) :: map()
  def load(bytes, opts) do
    path = Path.join(System.tmp_dir!(), "es-fuzz-#{System.pid()}-#{System.unique_integer([:positive])}.esrec")
    File.write!(path, bytes)
    atoms = :erlang.system_info(:atom_count)
    :erlang.garbage_collect()
    base = :erlang.memory(:total)
    sampler = spawn_link(fn -> sample(base, 0) end)

    {us, outcome} =
      :timer.tc(fn ->
        try do
          Recording.load(path, [default: false] ++ opts)
        rescue
          e -> {:raised, Exception.format(:error, e, __STACKTRACE__)}
        catch
          kind, reason -> {:raised, "#{kind}: #{inspect(reason, limit: 20)}"}
        end
      end)

    send(sampler, {:stop, self()})
    peak = receive do: ({:peak, p} -> p)
    File.rm(path)
    atoms = :erlang.system_info(:atom_count) - atoms

    {result, message} =
      case outcome do
        {:ok, %Recording{} = rec} -> (r = verify(rec); Recording.close(rec); r)
        {:error, msg} when is_binary(msg) -> {:error, msg}
        {:raised, text} -> {:raised, text}
        other -> {:bad_result, inspect(other, limit: 20)}
      end

    %{result: result, message: String.slice(message, 0, 600), us: us, peak: peak, atoms: atoms}
  end

  defp sample(base, peak) do
    peak = max(peak, :erlang.memory(:total) - base)

    receive do
      {:stop, to} -> send(to, {:peak, peak})
    after
      1 -> sample(base, peak)
    end
  end

  # a loaded recording holds well-typed events, and the queries over it do not raise
  defp verify(rec) do
    events = Query.events(source: rec)

    case Enum.find(events, &(not well_typed?(&1))) do
      nil ->
        for pid <- rec |> Recording.Index.pids() |> Enum.take(5), is_pid(pid) do
          _ = Query.call_tree(pid, source: rec)
          _ = Query.state_at(pid, :now, source: rec)
        end

        _ = Recording.stats(rec)
        {:ok, "#{length(events)} events"}

      bad ->
        {:bad_event, inspect(bad, limit: 10, printable_limit: 100)}
    end
  rescue
    e -> {:query_raised, Exception.format(:error, e, __STACKTRACE__)}
  end

  defp well_typed?(%Event{} = e) do
    u64? = &(is_integer(&1) and &1 >= 0 and &1 < 18_446_744_073_709_551_616)

    u64?.(e.id) and e.id > 0 and u64?.(e.ts) and (is_nil(e.wall_time) or is_integer(e.wall_time)) and
      (is_nil(e.pid) or is_pid(e.pid)) and e.kind in Event.kinds() and is_atom(e.module) and is_atom(e.function) and
      (is_nil(e.arity) or e.arity in 0..255) and is_integer(e.line) and e.line >= 0 and u64?.(e.call_id) and
      u64?.(e.link) and (is_nil(e.correlation_id) or u64?.(e.correlation_id)) and
      (is_nil(e.return_id) or u64?.(e.return_id)) and is_boolean(e.truncated?) and is_boolean(e.redacted?)
  end

  defp well_typed?(_), do: false
end
