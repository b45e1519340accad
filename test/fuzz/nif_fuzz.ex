defmodule ElixirScope.Fuzz.NIFs do
  @moduledoc """
  Fuzzes every function of `ElixirScope.NIF` (the list is read from the
  module, so NIFs added later are fuzzed too) in a child VM. Each call's
  arguments are generated from the seed: either arbitrary terms, or a valid
  call with some arguments (or some of an options map's values) replaced by
  arbitrary terms, boundary integers, odd binaries, or large values made in
  the child (`{:"$fz", name}`, see `ElixirScope.Fuzz.Child`). A call is
  passed when it returns or raises within the bound; it fails when it does
  not return in time (a hang) or its VM dies (a crash: the batch is then
  replayed one call at a time to find the calls that crash it).
  """

  alias ElixirScope.Fuzz.{Child, Peer}
  alias ElixirScope.Test.Gen

  @batch 200
  @nasty [0, -1, 1, 255, 256, 65_535, 2_147_483_647, 2_147_483_648, 4_294_967_296, 9_223_372_036_854_775_807,
          9_223_372_036_854_775_808, 18_446_744_073_709_551_615, 18_446_744_073_709_551_616, -9_223_372_036_854_775_808,
          -9_223_372_036_854_775_809, 1_606_938_044_258_990_275_541_962_092_341_162_602_522_202_993_782_792_835_301_376,
          1.0e308, -0.0, 0.5, "", <<0>>, <<0xFF, 0xFE, 0xFD>>, "http:", "{", "[[[[", "\"\\u", :"", nil, true, false,
          [], {}, %{}, [nil | :tail], {:error, :x}, {:ok, "x"}, [{"a", "b"}], [{:a, 1}]]
  @placeholders [:session, :session2, :big_binary, :sub_binary, :bitstring, :deep_list, :long_list, :wide_tuple,
                 :big_map, :bignum, :improper, :fun, :self, :dead_pid, :ref, :port, :long_atom, :unicode_atom]

  @doc "Session options for the child's sessions: small and with a bounded store."
  @spec session_opts() :: map()
  def session_opts do
    ElixirScope.Config.validate!(capture: [buffer_size: 1024], storage: [max_bytes: 16 * 1024 * 1024])
    |> ElixirScope.Config.session_options()
  end

  @doc """
  Runs `per_nif` calls of every NIF in a child VM made of `modules`.
  Returns `{passed, failures, report}` (`failures` descriptions, `report` lines to print).
  """
  @spec run(integer(), pos_integer(), pos_integer(), [{module(), binary()}]) :: {non_neg_integer(), [String.t()], [String.t()]}
  def run(seed, per_nif, bound_ms, modules) do
    child = Peer.start(modules, [{Child, :nif_setup, [session_opts()]}])
    nifs = ElixirScope.NIF.__info__(:functions) -- [load_nif: 0]
    g = Gen.new(seed)

    {calls, _g} =
      Enum.flat_map_reduce(nifs, g, fn {f, arity}, g ->
        {calls, g} = Gen.many(g, per_nif, &call(&1, f, arity))
        {calls, g}
      end)

    # interleaved (seeded), so that calls meet the state other NIFs leave
    _ = :rand.seed(:exsss, {seed, 17, 23})
    calls = Enum.shuffle(calls)
    acc = %{passed: 0, failures: [], outcomes: %{}, slowest: %{}, child: child}

    acc =
      calls
      |> Enum.chunk_every(@batch)
      |> Enum.reduce(acc, &run_batch(&1, bound_ms, &2))

    Peer.stop(acc.child)
    {acc.passed, Enum.reverse(acc.failures), report(nifs, acc, length(calls))}
  end

  defp run_batch(calls, bound_ms, acc) do
    # the child bounds each call; this bound only catches a VM wedged as a whole
    case Peer.call(acc.child, Child, :nif_batch, [calls, bound_ms], 60_000 + bound_ms) do
      {:ok, {:done, stats}, child} ->
        %{merge(acc, stats) | passed: acc.passed + length(calls), child: child}

      {:ok, {:hang, i, stats}, child} ->
        {f, args} = Enum.at(calls, i)
        # the VM still runs the stuck call: it is replaced
        acc = %{merge(acc, stats) | passed: acc.passed + i, child: Peer.restart(child)}
        acc = %{acc | failures: ["hang: NIF.#{f} did not return within #{bound_ms} ms, args #{show(args)}" | acc.failures]}
        run_batch(Enum.drop(calls, i + 1), bound_ms, acc)

      {:hang, child} ->
        %{acc | child: child, failures: ["hang: a batch of #{length(calls)} calls wedged its VM: #{show(calls)}" | acc.failures]}

      {:crash, why, child} ->
        acc = %{acc | child: child}

        if length(calls) == 1 do
          [{f, args}] = calls
          %{acc | failures: ["crash: NIF.#{f} killed its VM (#{show(why)}), args #{show(args)}" | acc.failures]}
        else
          # replay one call at a time to find which calls crash the VM
          Enum.reduce(calls, acc, &run_batch([&1], bound_ms, &2))
        end

      {:ok, other, child} ->
        %{acc | child: child, failures: ["fuzz child answered #{show(other)}" | acc.failures]}
    end
  end

  defp merge(acc, stats) do
    %{acc | outcomes: Map.merge(acc.outcomes, stats.outcomes, fn _, a, b -> a + b end),
            slowest: Map.merge(acc.slowest, stats.slowest, fn _, a, b -> max(a, b) end)}
  end

  defp show(term), do: inspect(term, limit: 8, printable_limit: 80)

  defp report(nifs, acc, total) do
    per_nif =
      for {f, arity} <- nifs do
        outs = for {{^f, o}, n} <- acc.outcomes, do: "#{outcome(o)} #{n}"
        "  NIF.#{f}/#{arity}: #{Enum.join(Enum.sort(outs), ", ")}; slowest #{Float.round(Map.get(acc.slowest, f, 0) / 1000, 2)} ms"
      end

    ["NIF fuzz: #{total} calls over #{length(nifs)} NIFs" | per_nif]
  end

  defp outcome(:ok), do: "returned"
  defp outcome({:died, _}), do: "died"
  defp outcome(mod) when is_atom(mod), do: mod |> Module.split() |> List.last() |> then(&"raised #{&1}")

  # ---- generation ----

  # a call: arbitrary arguments, or a valid call with some parts replaced
  defp call(g, f, arity) do
    {r, g} = Gen.int(g, 1, 10)
    seeds = seeds(f, arity)

    if r <= 3 or seeds == [] do
      {args, g} = Gen.many(g, arity, &value/1)
      {{f, args}, g}
    else
      {seed, g} = Gen.one_of(g, seeds)
      {n, g} = Gen.int(g, 0, max(arity, 1))
      {args, g} = Enum.reduce(1..n//1, {seed, g}, fn _, {args, g} -> mutate_arg(args, g) end)
      {{f, args}, g}
    end
  end

  defp mutate_arg([], g), do: {[], g}

  defp mutate_arg(args, g) do
    {i, g} = Gen.int(g, 0, length(args) - 1)
    {v, g} = mutate(Enum.at(args, i), g)
    {List.replace_at(args, i, v), g}
  end

  defp mutate(map, g) when is_map(map) and map_size(map) > 0 do
    {r, g} = Gen.int(g, 1, 4)
    {k, g} = Gen.one_of(g, Map.keys(map))
    {v, g} = value(g)

    case r do
      1 -> {v, g}
      2 -> {Map.delete(map, k), g}
      _ -> {Map.put(map, k, v), g}
    end
  end

  defp mutate(bin, g) when is_binary(bin) and byte_size(bin) > 0 do
    {r, g} = Gen.int(g, 1, 3)
    {i, g} = Gen.int(g, 0, byte_size(bin) - 1)

    case r do
      1 -> {binary_part(bin, 0, i), g}
      2 -> (<<pre::binary-size(i), b, post::binary>> = bin; {<<pre::binary, Bitwise.bxor(b, 1 + rem(i, 255)), post::binary>>, g})
      3 -> value(g)
    end
  end

  defp mutate(_other, g), do: value(g)

  defp value(g) do
    {r, g} = Gen.int(g, 1, 20)

    cond do
      r <= 9 -> Gen.term(g, 3)
      r <= 14 -> Gen.one_of(g, @nasty)
      r <= 17 -> with {p, g} <- Gen.one_of(g, @placeholders), do: {{:"$fz", p}, g}
      true -> etf(g)
    end
  end

  # external term format, whole, cut, or with a byte changed
  defp etf(g) do
    {t, g} = Gen.term(g, 3)
    bin = :erlang.term_to_binary(t)
    {i, g} = Gen.int(g, 0, byte_size(bin) - 1)
    {r, g} = Gen.int(g, 1, 3)

    case r do
      1 -> {bin, g}
      2 -> {binary_part(bin, 0, i), g}
      3 -> (<<pre::binary-size(i), _, post::binary>> = bin; {x, g} = Gen.int(g, 0, 255); {<<pre::binary, x, post::binary>>, g})
    end
  end

  # valid calls to start from (the NIFs this list does not know get arbitrary arguments only)
  defp seeds(f, arity) do
    s = {:"$fz", :session}

    all = %{
      session_new: [[session_opts()]],
      session_install: [[s]],
      session_uninstall: [[]],
      set_enabled: [[s, true], [s, false]],
      emit_entry: [[Shop, :checkout, [1, %{a: "b"}], 12]],
      emit_exit: [[1, {:ok, [1, 2]}]],
      emit_pre: [[1, 4, {:before, %{n: 0}}, {{:add, 1}, %{clause: :call, waited_us: nil}}], [2, 0, nil, nil]],
      emit_callback_exit: [[1, {:reply, :ok, %{n: 1}}, {:after, %{n: 1}}, 4], [2, :ok, nil, 0]],
      emit: [[:call, 1, Shop, :f, 1, 2, 0, [:x]], [:send, nil, nil, nil, nil, 0, 7, {self(), :msg}],
             [:state, 3, nil, nil, nil, 9, nil, {:after, %{n: 1}}]],
      emit_as: [[self(), :spawn, :observed, 5, {self(), %{parent: nil}}], [self(), :exit, :down, nil, :normal]],
      pids_since: [[s, 0], [s, 18_446_744_073_709_551_615]],
      drain: [[s, 100]],
      query: [[s, %{limit: 10}], [s, %{module: Shop, function: :f, arity: 1, kinds: [:call], order: :desc}],
              [s, %{since: 0, until: 18_446_744_073_709_551_615, after_id: 1, before_id: 100, limit: 5}]],
      get_event: [[s, 1]],
      clear: [[s]],
      stats: [[s]],
      encode: [[s, %{password: "x", list: [1, 2, 3], bin: "abc"}]],
      now: [[]],
      noop: [[]],
      llm_http_request: [["GET", "http://127.0.0.1:1/x", [{"a", "b"}], "", %{timeout_ms: 500}],
                         ["POST", "https://127.0.0.1:1/", [], "{}", %{timeout_ms: 500, max_response_bytes: 10}]],
      json_decode: [["{\"a\":[1,2.5,\"x\",null,true]}"], ["[[[[[[[[[[]]]]]]]]]]"]],
      json_encode: [[%{"a" => [1, 2.5, "x", nil, true]}]],
      llm_build_gemini_request: [["system", "user", true, 0.5, 100], [nil, "user", false, 0, 1]],
      llm_build_openai_request: [["model", "system", "user", true, 0.5, 100]],
      llm_extract_text: [[:gemini, ~s({"candidates":[{"content":{"parts":[{"text":"hi"}]}}]})],
                         [:openai, ~s({"choices":[{"message":{"content":"hi"}}]})]],
      llm_parse_plan: [[~s({"modules":[]})]],
      llm_plan_schema: [[]],
      ast_transform: [ast_seed()],
      recording_save: [[s, Path.join(System.tmp_dir!(), "es-fuzz-save.esrec"), %{limit: 100}]],
      recording_open: [[Path.join(System.tmp_dir!(), "es-fuzz-save.esrec"), 1_000_000], ["/nonexistent/x.esrec", 10]]
    }

    all |> Map.get(f, []) |> Enum.filter(&(length(&1) == arity))
  end

  defp ast_seed do
    ast = quote do: (def f(x) do
                       y = x + 1
                       g(y)
                     end)
    plan =
      try do
        {:ok, p} = ElixirScope.AST.Plan.normalize(:full)
        ElixirScope.AST.Plan.to_nif(p)
      rescue
        _ -> %{}
      end

    [:erlang.term_to_binary(ast), :erlang.term_to_binary(plan)]
  end
end
