defmodule ElixirScope.Bench.Workload do
  @moduledoc false
  # Four realistic workloads compiled plain and instrumented (:function_boundaries, :full) in the
  # same run, with capture on: the time of each against plain (issue 13: ≤ 1.5× and ≤ 3×).
  import ElixirScope.Bench

  defp source(name) do
    quote do
      defmodule unquote(name) do
        @moduledoc false
        use GenServer

        # a binary decoder hot loop: length-prefixed records
        def decode(<<len, payload::binary-size(len), rest::binary>>, acc), do: decode(rest, [payload | acc])
        def decode(<<>>, acc), do: Enum.reverse(acc)

        # a recursive list walk with an accumulator
        def walk([h | t], acc) when is_integer(h), do: walk(t, acc + h * 2)
        def walk([_ | t], acc), do: walk(t, acc)
        def walk([], acc), do: acc

        # a GenServer request/reply loop between two processes
        def start, do: GenServer.start(__MODULE__, 0)
        def ask(pid, 0), do: GenServer.call(pid, :get)
        def ask(pid, n), do: (GenServer.call(pid, {:add, n}); ask(pid, n - 1))
        @impl true
        def init(n), do: {:ok, n}
        @impl true
        def handle_call({:add, k}, _from, n), do: {:reply, :ok, n + k}
        def handle_call(:get, _from, n), do: {:reply, n, n}

        # a Task.async_stream fan-out
        def fan(items), do: items |> Task.async_stream(&score/1, max_concurrency: 4) |> Enum.reduce(0, fn {:ok, v}, a -> a + v end)
        def score(i), do: Enum.reduce(1..50, i, fn k, a -> rem(a * 31 + k, 1_000_003) end)
      end
    end
  end

  defp compile(name, :plain), do: Code.compile_quoted(source(name))

  defp compile(name, level) do
    {:ok, ast} = ElixirScope.AST.Transformer.transform_module(source(name), level)
    Code.compile_quoted(ast)
  end

  def run do
    mods = %{plain: WorkPlain, fb: WorkFB, full: WorkFull}
    compile(WorkPlain, :plain)
    compile(WorkFB, :function_boundaries)
    compile(WorkFull, :full)
    :ok = ElixirScope.start(storage: [max_bytes: 256_000_000])

    records = for i <- 1..2_000, into: <<>>, do: <<rem(i, 20) + 1, :binary.copy(<<i>>, rem(i, 20) + 1)::binary>>
    list = Enum.to_list(1..5_000)

    workloads = [
      {"binary decoder hot loop (2,000 records)", fn m -> m.decode(records, []) end},
      {"GenServer request/reply (1,000 calls)", fn m -> {:ok, pid} = m.start(); r = m.ask(pid, 1_000); GenServer.stop(pid); r end},
      {"recursive list walk (5,000 elements)", fn m -> m.walk(list, 0) end},
      {"Task.async_stream fan-out (200 items)", fn m -> m.fan(1..200) end}
    ]

    # plain and instrumented measured in alternation, best of 5 medians each
    measured =
      for {name, work} <- workloads do
        ns =
          Enum.reduce(1..5, %{plain: [], fb: [], full: []}, fn _, acc ->
            Map.new(acc, fn {k, xs} -> {k, [once_ns(fn -> work.(mods[k]) end, 5) | xs]} end)
          end)
          |> Map.new(fn {k, xs} -> {k, Enum.min(xs)} end)

        # events one :function_boundaries run records: each costs at least an empty NIF call
        before = ElixirScope.stats().emitted
        work.(mods.fb)
        {name, Map.put(ns, :events, ElixirScope.stats().emitted - before)}
      end

    stats = ElixirScope.stats()
    empty_nif_ns = per_call_ns(fn -> ElixirScope.NIF.noop() end)
    ElixirScope.stop()

    rows =
      Enum.flat_map(measured, fn {name, ns} ->
        floor = floor_ratio(ns, empty_nif_ns)

        [
          {"workload #{name}: :function_boundaries / plain", ns.fb / ns.plain, "≤ 1.5",
           "#{fmt(ns.fb / 1000)} vs #{fmt(ns.plain / 1000)} µs; floor #{fmt(floor)}× (#{ns.events} events × #{fmt(empty_nif_ns)} ns empty NIF call)"},
          {"workload #{name}: :full / plain", ns.full / ns.plain, "≤ 3", "#{fmt(ns.full / 1000)} µs; #{stats.dropped} dropped of #{stats.emitted} in all"}
        ]
      end)

    results =
      for {name, ns} <- measured,
          {k, v} <- [fb: ns.fb / ns.plain, full: ns.full / ns.plain, fb_floor: floor_ratio(ns, empty_nif_ns)],
          into: %{} do
        key = name |> String.split(" (") |> hd() |> String.replace(~r/[^a-z]+/i, "_") |> String.downcase()
        {"workload_#{key}_#{k}_ratio", v}
      end

    {results, rows}
  end

  # The least a run recording every call can cost against plain: each event needs one NIF call.
  defp floor_ratio(ns, empty_nif_ns), do: (ns.plain + ns.events * empty_nif_ns) / ns.plain
end
