defmodule ElixirScope.Fuzz.NIFs do
  @moduledoc """
  Fuzzes every function of `ElixirScope.NIF` (the list is read from the
  module, so NIFs added later are fuzzed too) in a child VM. Each call's
  arguments are generated from the seed: either arbitrary terms, or a valid
  call with some arguments (or some of an options map's values) replaced by
  arbitrary terms, boundary integers, odd binaries, or large values made in
  the child (`{:"$fz", name}`, see `ElixirScope.Fuzz.Child`). An argument
  that is a term in external format (`{:"$fz_etf", term}`, encoded in the
  child) has parts deep inside replaced: `NIF.forms_transform/2` gets the
  forms of test/fuzz/forms_seed.ex and the plans `ElixirScope.Compiler.ParseTransform`
  makes for them, with a clause, a pattern, a template or a plan field
  replaced, dropped or swapped for another part, or with one value (a name,
  an arity, a line) replaced wherever it stands in both. The report counts
  the calls that returned `{:error, _}` apart from other values. A call is
  passed when it returns or raises within the bound; it fails when it does
  not return in time (a hang) or its VM dies (a crash: the batch is then
  replayed one call at a time to find the calls that crash it).
  """

  alias ElixirScope.Fuzz.{Child, Peer}
  alias ElixirScope.Test.Gen

  @batch 200
  @nasty [0, -1, 1, 255, 256, 65_535, 2_147_483_647, 2_147_483_648, 4_294_967_295, 4_294_967_296, 9_223_372_036_854_775_807,
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
    seeds = seeds()

    {calls, _g} =
      Enum.flat_map_reduce(nifs, g, fn {f, arity}, g ->
        valid = seeds |> Map.get(f, []) |> Enum.filter(&(length(&1) == arity))
        {calls, g} = Gen.many(g, per_nif, &call(&1, f, arity, valid))
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
    case Peer.call(acc.child, Child, :nif_batch, [:erlang.term_to_binary(calls, compressed: 6), bound_ms], 60_000 + bound_ms) do
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
  defp outcome(:error_tuple), do: "returned {:error, _}"
  defp outcome({:died, _}), do: "died"
  defp outcome(mod) when is_atom(mod), do: mod |> Module.split() |> List.last() |> then(&"raised #{&1}")

  # ---- generation ----

  # a call: arbitrary arguments, or a valid call with some parts replaced
  defp call(g, f, arity, seeds) do
    {r, g} = Gen.int(g, 1, 10)

    if r <= 3 or seeds == [] do
      {args, g} = Gen.many(g, arity, &value/1)
      {{f, args}, g}
    else
      {seed, g} = Gen.one_of(g, seeds)
      {seed, g} = substitute(seed, g)
      {n, g} = Gen.int(g, 0, max(arity, 1))
      {args, g} = Enum.reduce(1..n//1, {seed, g}, fn _, {args, g} -> mutate_arg(args, g) end)
      {{f, args}, g}
    end
  end

  # In one call in four whose arguments are terms in external format, a value found in one of
  # them (a function's name or arity, a line, an atom of the forms) is replaced wherever it stands
  # in all of them, so the forms and the plan still agree: an arity of 65535 in both reaches code
  # that a mismatch stops early.
  defp substitute(args, g) do
    terms = for {:"$fz_etf", t} <- args, do: t
    {r, g} = Gen.int(g, 1, 4)

    if terms == [] or r > 1 do
      {args, g}
    else
      {root, g} = Gen.one_of(g, terms)
      {old, g} = pick_leaf(root, g)
      # no placeholder: a large value in every place would only make the request large
      {r, g} = Gen.int(g, 1, 3)
      {new, g} = if r == 1, do: Gen.term(g, 2), else: Gen.one_of(g, @nasty)
      {Enum.map(args, fn {:"$fz_etf", t} -> {:"$fz_etf", replace_all(t, old, new)}; arg -> arg end), g}
    end
  end

  defp pick_leaf(term, g) do
    case parts(term) do
      0 -> {term, g}
      n -> with {i, g} <- Gen.int(g, 0, n - 1), do: pick_leaf(part(term, i), g)
    end
  end

  defp replace_all(old, old, new), do: new
  defp replace_all({:"$fz", _} = placeholder, _old, _new), do: placeholder
  defp replace_all(t, old, new) when is_list(t), do: if(List.improper?(t), do: t, else: Enum.map(t, &replace_all(&1, old, new)))
  defp replace_all(t, old, new) when is_tuple(t), do: t |> Tuple.to_list() |> replace_all(old, new) |> List.to_tuple()
  defp replace_all(t, old, new) when is_map(t), do: Map.new(t, fn {k, v} -> {k, replace_all(v, old, new)} end)
  defp replace_all(t, _old, _new), do: t

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

  # a term the child encodes: mutated as a term (1 to 3 parts), or encoded here and mutated as bytes
  defp mutate({:"$fz_etf", term}, g) do
    {r, g} = Gen.int(g, 1, 10)
    {n, g} = Gen.int(g, 1, 3)

    case r do
      1 -> value(g)
      2 -> mutate(:erlang.term_to_binary(term), g)
      _ -> Enum.reduce(1..n, {term, g}, fn _, {t, g} -> mutate_part(t, g) end) |> then(fn {t, g} -> {{:"$fz_etf", t}, g} end)
    end
  end

  defp mutate(_other, g), do: value(g)

  # One part of a valid term, found by a random walk from its root, replaced by an arbitrary value
  # or by another part of the same term (well formed, in the wrong place), or dropped from its list,
  # tuple or map: input the C code takes a few steps into before it meets the change.
  defp mutate_part(root, g) do
    {graft, g} = pick_part(root, g)
    walk(root, graft, g)
  end

  defp walk(term, graft, g) do
    {r, g} = Gen.int(g, 1, 12)
    n = parts(term)

    cond do
      n == 0 or r == 1 -> replacement(term, graft, g)
      r == 2 -> with {i, g} <- Gen.int(g, 0, n - 1), do: {drop_part(term, i), g}
      true -> with {i, g} <- Gen.int(g, 0, n - 1), {v, g} <- walk(part(term, i), graft, g), do: {put_part(term, i, v), g}
    end
  end

  defp replacement(term, graft, g) do
    {r, g} = Gen.int(g, 1, 4)

    case r do
      1 -> {graft, g}
      2 -> mutate(term, g)
      _ -> value(g)
    end
  end

  defp pick_part(term, g) do
    {r, g} = Gen.int(g, 1, 4)
    n = parts(term)
    if n == 0 or r == 1, do: {term, g}, else: with({i, g} <- Gen.int(g, 0, n - 1), do: pick_part(part(term, i), g))
  end

  # the parts of a proper list, a tuple or a map (its values), by index; a placeholder is whole
  defp parts({:"$fz", _}), do: 0
  defp parts(t) when is_list(t), do: if(List.improper?(t), do: 0, else: length(t))
  defp parts(t) when is_tuple(t), do: tuple_size(t)
  defp parts(t) when is_map(t), do: map_size(t)
  defp parts(_), do: 0

  defp part(t, i) when is_list(t), do: Enum.at(t, i)
  defp part(t, i) when is_tuple(t), do: elem(t, i)
  defp part(t, i) when is_map(t), do: Map.fetch!(t, key_at(t, i))

  defp put_part(t, i, v) when is_list(t), do: List.replace_at(t, i, v)
  defp put_part(t, i, v) when is_tuple(t), do: put_elem(t, i, v)
  defp put_part(t, i, v) when is_map(t), do: Map.put(t, key_at(t, i), v)

  defp drop_part(t, i) when is_list(t), do: List.delete_at(t, i)
  defp drop_part(t, i) when is_tuple(t), do: Tuple.delete_at(t, i)
  defp drop_part(t, i) when is_map(t), do: Map.delete(t, key_at(t, i))

  defp key_at(map, i), do: map |> Map.keys() |> Enum.sort() |> Enum.at(i)

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

  # valid calls to start from (the NIFs this map does not know get arbitrary arguments only)
  defp seeds do
    s = {:"$fz", :session}

    %{
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
      forms_transform: forms_transform_seeds(),
      recording_save: [[s, Path.join(System.tmp_dir!(), "es-fuzz-save.esrec"), %{limit: 100}]],
      recording_open: [[Path.join(System.tmp_dir!(), "es-fuzz-save.esrec"), 1_000_000], ["/nonexistent/x.esrec", 10]]
    }
  end

  # The forms of test/fuzz/forms_seed.ex and the plans ParseTransform makes for them: at two
  # levels, with and without the capture-off copies, without the try join, and a plan that names
  # functions, variables, expressions and an injection.
  defp forms_transform_seeds do
    [{_module, beam}] = Code.compile_file("forms_seed.ex", __DIR__)
    forms = ElixirScope.Test.ASTCorpus.forms(beam)

    named = %{
      level: :expressions,
      capture_locals: [:total],
      trace_expressions: [:send],
      functions: %{{:wait, 1} => %{level: :full}, {:count, 2} => %{level: :none}},
      custom_injections: [{45, :before, quote(do: IO.inspect(fun))}]
    }

    plans =
      [{:function_boundaries, []}, {:function_boundaries, off_copy: 200}, {:full, []}, {:full, off_copy: 200},
       {:full, try_join: false}, {named, off_copy: 200}]

    for {plan, opts} <- plans do
      {:ok, c_plan, []} = ElixirScope.Compiler.ParseTransform.c_plan(forms, plan, opts)
      [{:"$fz_etf", forms}, {:"$fz_etf", c_plan}]
    end
  end
end
