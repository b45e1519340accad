defmodule ElixirScope.AST.CorpusTest do
  @moduledoc false
  # The fixture corpus compiled plain and instrumented at every level, called on
  # generated inputs: values and exceptions (class, reason, user frames and lines)
  # must be identical, with capture off (the injected reports are skipped) and on
  # (every report runs and the recorded events decode).
  use ElixirScope.ScopeCase, async: false

  alias ElixirScope.Test.{ASTCorpus, Gen}

  @levels [:function_boundaries, :expressions, :locals, :full]
  @runs 40

  setup_all do
    variants =
      for v <- [:plain | @levels], into: %{} do
        to = [:ESTest, Module.concat([Macro.camelize(Atom.to_string(v))]), :Tricky]
        {mod, stderr} = ASTCorpus.compile("tricky.ex", [:Fixture, :Tricky], to, v)
        {v, {mod, stderr}}
      end

    %{variants: variants}
  end

  defp small_int(g), do: Gen.int(g, -20, 20)

  defp any(g), do: Gen.term(g, 2)

  defp args(g, gens) do
    Enum.reduce(gens, {[], g}, fn gen, {acc, g} ->
      {x, g} = gen.(g)
      {acc ++ [x], g}
    end)
  end

  defp classify_input(g) do
    {k, g} = Gen.int(g, 0, 6)

    case k do
      0 -> small_int(g)
      1 -> Gen.binary(g)
      2 -> Gen.list_of(g, 5, &small_int/1)
      3 -> with {v, g} <- any(g), do: {%{a: v, b: 1}, g}
      4 -> {%{}, g}
      5 -> Gen.one_of(g, [:atom, 1.5, {1, 2}])
      6 -> Gen.int(g, 0, 30)
    end
  end

  defp counter(g), do: Gen.int(g, -3, 300)

  defp int_list(g) do
    {k, g} = Gen.int(g, 0, 9)
    if k == 0, do: Gen.one_of(g, [:not_a_list, [1, :x]]), else: Gen.list_of(g, 50, &small_int/1)
  end

  # {function, submodule or nil, list of arg generators}
  defp cases do
    num_or_atom = fn g ->
      {k, g} = Gen.int(g, 0, 5)
      if k == 0, do: {:x, g}, else: small_int(g)
    end

    [
      {:classify, nil, [&classify_input/1]},
      {:greet, nil, [&Gen.binary/1]},
      {:greet, nil, [&Gen.binary/1, &Gen.binary/1]},
      {:greet, nil, [&Gen.binary/1, &Gen.binary/1, &Gen.binary/1]},
      {:pattern_args, nil,
       [
         fn g -> with {a, g} <- small_int(g), {b, g} <- num_or_atom.(g), do: {{a, b}, g} end,
         fn g -> Gen.list_of(g, 2, &small_int/1) end,
         &any/1,
         fn g -> Gen.binary(g, 3) end
       ]},
      {:pinned, nil, [fn g -> Gen.int(g, 0, 2) end, fn g -> Gen.int(g, 0, 2) end]},
      {:sum, nil, [&int_list/1, &small_int/1]},
      {:count, nil, [&counter/1, &small_int/1]},
      {:count_piped, nil, [fn g -> Gen.int(g, 0, 300) end, &small_int/1]},
      {:count_if, nil, [fn g -> Gen.int(g, 0, 300) end, &small_int/1]},
      {:count_cond, nil, [&counter/1, &small_int/1]},
      {:count_case, nil, [fn g -> Gen.int(g, 0, 300) end, &small_int/1]},
      {:count_with, nil, [&counter/1, &small_int/1]},
      {:count_with_noelse, nil, [fn g -> Gen.int(g, 0, 300) end, &small_int/1]},
      {:even?, nil, [&counter/1]},
      {:odd?, nil, [&counter/1]},
      {:erl_tail, nil, [&int_list/1]},
      {:fact, nil, [fn g -> Gen.int(g, -2, 25) end]},
      {:fail, nil,
       [
         fn g ->
           Gen.one_of(g, [
             :raise,
             :throw,
             :exit,
             :badarith,
             :badmatch,
             :case,
             :erlang,
             1,
             2,
             :other
           ])
         end
       ]},
      {:safe_div, nil, [num_or_atom, fn g -> Gen.int(g, -1, 1) end]},
      {:with_catch, nil, [fn g -> Gen.one_of(g, [:raise, :throw, :exit, 1, 2]) end]},
      {:with_else, nil, [&classify_input/1]},
      {:with_after, nil, [num_or_atom]},
      {:explicit_try, nil, [num_or_atom]},
      {:uses_private, nil, [num_or_atom]},
      {:locals, nil, [num_or_atom]},
      {:anon, nil, [fn g -> Gen.list_of(g, 4, num_or_atom) end]},
      {:make_ast, nil, [&any/1]},
      {:receive_once, nil, [fn g -> Gen.one_of(g, [0, 1]) end]},
      {:binding_shadow, nil, [num_or_atom]},
      {:string_ops, nil,
       [
         fn g ->
           with {k, g} <- Gen.int(g, 0, 3), do: if(k == 0, do: {42, g}, else: Gen.binary(g))
         end
       ]},
      {:delegated_reverse, nil, [&int_list/1]},
      {:gen_a, nil, []},
      {:gen_b, nil, []},
      {:nested, nil, [&classify_input/1]},
      {:inner_count, Inner, [fn g -> Gen.int(g, 0, 100) end]},
      {:call_outer, Inner, [&classify_input/1]},
      {:with_eq, nil, [fn g -> Gen.int(g, -2, 50) end]},
      {:over, nil, [&any/1]},
      {:wait, nil, [fn g -> Gen.one_of(g, [0, -1, :x]) end]},
      {:rev, nil, [&int_list/1]},
      {:bin_size, nil,
       [
         fn g ->
           with {n, g} <- Gen.int(g, 0, 4), {b, g} <- Gen.binary(g, 6), do: {<<n, b::binary>>, g}
         end
       ]},
      {:un, nil, [fn g -> Gen.one_of(g, [true, false, nil, 1]) end]},
      {:fun_tail, nil,
       [fn g -> Gen.one_of(g, [&abs/1, &Atom.to_string/1, :not_fun]) end, num_or_atom]},
      {:interp, nil, [&any/1]},
      {:compr, nil, [fn g -> Gen.list_of(g, 6, num_or_atom) end]},
      {:rescue_tail, nil, [fn g -> Gen.one_of(g, ["12", "x", "-3", :atom]) end]}
    ]
  end

  defp call(mod, sub, fun, args) do
    mod = if sub, do: Module.concat(mod, sub), else: mod

    ASTCorpus.outcome(fn ->
      if fun == :receive_once and args == [1], do: send(self(), {:msg, :hello})
      result = apply(mod, fun, args)
      {result, Process.get(:after_ran)}
    end)
  end

  test "the plain corpus compiles without warnings", %{variants: variants} do
    {_, stderr} = variants[:plain]
    assert stderr == ""
  end

  for level <- @levels do
    @level level

    test "#{level}: compiles without warnings", %{variants: variants} do
      {_, stderr} = variants[@level]
      assert stderr == ""
    end

    test "#{level}: same values and exceptions as the plain module on generated inputs", %{
      variants: variants
    } do
      assert compare(variants, @level) == length(cases()) * @runs
    end

    test "#{level}: the same with capture on, and the recorded events decode", %{
      variants: variants
    } do
      start_scope!()
      assert compare(variants, @level) == length(cases()) * @runs
      {inst, _} = variants[@level]
      evs = ElixirScope.get_events(pid: self())
      assert is_list(evs)
      assert Enum.any?(evs, &(&1.kind == :call and &1.module == inst))
      if @level != :function_boundaries, do: assert(Enum.any?(evs, &(&1.kind == :expr)))
    end
  end

  # calls every case on generated inputs, plain and at level; returns the number of calls
  defp compare(variants, level) do
    {plain, _} = variants[:plain]
    {inst, _} = variants[level]
    from = "Elixir.ESTest.#{Macro.camelize(Atom.to_string(level))}."
    to = "Elixir.ESTest.Plain."
    g = Gen.new(:erlang.phash2(level))

    {checked, _} =
      Enum.reduce(cases(), {0, g}, fn {fun, sub, gens}, {n, g} ->
        Enum.reduce(1..@runs, {n, g}, fn _, {n, g} ->
          {args, g} = args(g, gens)
          Process.delete(:after_ran)
          expected = call(plain, sub, fun, args)
          Process.delete(:after_ran)
          actual = inst |> call(sub, fun, args) |> ASTCorpus.normalize(from, to)

          assert actual == expected,
                 "#{fun}#{inspect(args)} at #{level}:\n plain: #{inspect(expected)}\n instrumented: #{inspect(actual)}"

          {n + 1, g}
        end)
      end)

    checked
  end

  test "module attributes, @moduledoc/@doc and nested modules are kept", %{variants: variants} do
    {plain, _} = variants[:plain]
    {full, _} = variants[:full]
    assert function_exported?(Module.concat(full, Inner), :inner_count, 1)
    assert macro_exported?(full, :twice, 1)
    assert macro_exported?(full, :is_small, 1)
    assert function_exported?(full, :delegated_reverse, 1)
    assert plain.__info__(:functions) == full.__info__(:functions)
    assert plain.__info__(:macros) == full.__info__(:macros)
  end
end
