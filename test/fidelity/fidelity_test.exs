defmodule ElixirScope.FidelityTest do
  @moduledoc false
  # The fidelity corpus (test/fidelity/corpus: library-shaped code) compiled plain and at every
  # level in this VM, each variant under its own root module (Fidelity.X becomes FidelityPlain.X,
  # FidelityFull.X, ...), instrumented by the parse transform as the :elixir_scope compiler runs
  # it (settings naming each module's level, as a plan file does). Compared with the plain build:
  # values and exceptions over generated inputs, stack depth at the bottom of tail-recursive
  # loops after 100,000 iterations, quote output. A Mix project of the corpus built plain and
  # through the compiler at :none gives identical beams. With capture running, every event
  # decodes and OTP callbacks record their state.
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO

  alias ElixirScope.Compiler.{ParseTransform, Settings}
  alias ElixirScope.Test.{FidelityProject, Gen}
  alias ElixirScope.Test.FidelityCases, as: Cases

  @moduletag :fidelity
  @moduletag :capture_log
  @moduletag timeout: 300_000

  @levels [:none, :function_boundaries, :expressions, :locals, :full]
  # compiled with ast: [off_copy: 200] (capture off runs each small clause's copy of its body;
  # these tests run with ElixirScope stopped): variant => level
  @copies [function_boundaries_copy: :function_boundaries, full_copy: :full]
  @variants @levels ++ Keyword.keys(@copies)
  @seeds 1..30
  # words the instrumented frames around a measuring call may add (the probe is itself an
  # instrumented function); 100,000 iterations that kept a frame each would add ≥ 100,000
  @frame_slack 64

  setup_all do
    # the Mix builds of the beam-equality test run meanwhile, in subprocesses
    mix_builds = start_mix_builds()
    previous = System.get_env("ERL_COMPILER_OPTIONS")

    try do
      System.delete_env("ERL_COMPILER_OPTIONS")
      ParseTransform.put_settings(nil)
      plain_stderr = capture_io(:stderr, fn -> compile_corpus(:plain) end)
      plain_mods = Cases.loaded_modules(Cases.root(:plain))

      plans =
        for {v, level} <- Enum.zip(@levels, @levels) ++ @copies,
            m <- plain_mods,
            into: %{},
            do: {Cases.in_other_variant(m, :plain, v), %{level: level}}

      # with the options the Mix compiler uses when every module is instrumented, so the
      # variants are compiled as a project at that level is
      ParseTransform.install(ParseTransform.fast_compile_options())
      ParseTransform.put_settings(%Settings{default_level: :none, plan_modules: plans})

      stderr =
        capture_io(:stderr, fn ->
          @levels
          |> Task.async_stream(&compile_corpus/1, max_concurrency: 2, timeout: :infinity)
          |> Stream.run()

          # the application setting is global: these after the others
          ast = Application.get_env(:elixir_scope, :ast)
          Application.put_env(:elixir_scope, :ast, off_copy: 200)

          try do
            Enum.each(Keyword.keys(@copies), &compile_corpus/1)
          after
            if ast, do: Application.put_env(:elixir_scope, :ast, ast), else: Application.delete_env(:elixir_scope, :ast)
          end
        end)

      %{
        plain_stderr: plain_stderr,
        stderr: stderr,
        plain_mods: plain_mods,
        mix_builds: mix_builds
      }
    after
      ParseTransform.put_settings(nil)

      if previous,
        do: System.put_env("ERL_COMPILER_OPTIONS", previous),
        else: System.delete_env("ERL_COMPILER_OPTIONS")
    end
  end

  defp compile_corpus(v) do
    root = Cases.root(v)

    for file <- FidelityProject.corpus_files() do
      ast = file |> File.read!() |> Code.string_to_quoted!(file: file) |> Cases.rename(root)
      Code.compile_quoted(ast, file)
    end
  end

  defp start_mix_builds do
    {:ok, agent} = Agent.start_link(fn -> nil end)
    dir = Path.join(System.tmp_dir!(), "es_fidelity_#{System.unique_integer([:positive])}")
    on_exit(fn -> File.rm_rf!(dir) end)
    libs = Path.join(Mix.Project.build_path(), "lib")

    Agent.cast(agent, fn _ ->
      FidelityProject.create!(dir)

      [:plain, :none]
      |> Enum.map(fn v ->
        Task.async(fn ->
          build = Path.join(dir, "_build/#{v}")

          {out, status} =
            FidelityProject.mix(dir, ["compile"], FidelityProject.env_for(v, build, libs))

          {v, %{out: out, status: status, md5s: FidelityProject.md5s(build), build: build}}
        end)
      end)
      |> Task.await_many(:infinity)
      |> Map.new()
    end)

    agent
  end

  describe "every variant" do
    test "compiles without warnings; every module with functions is instrumented at its level",
         %{plain_stderr: plain_stderr, stderr: stderr, plain_mods: plain_mods} do
      assert plain_stderr == ""
      assert stderr == ""
      assert length(plain_mods) >= 50

      for v <- @levels, plain_mod <- plain_mods do
        mod = Cases.in_other_variant(plain_mod, :plain, v)
        assert Code.ensure_loaded?(mod), inspect(mod)
        tag = mod.module_info(:attributes)[:elixir_scope]

        cond do
          v == :none -> assert tag == nil, "#{inspect(mod)} is tagged at :none"
          not Cases.instrumentable?(mod) -> :ok
          true -> assert [%{level: ^v}] = tag, "#{inspect(mod)} at #{v}: #{inspect(tag)}"
        end
      end
    end

    test "modules defined while compiling (a library's defmodule, Module.create, @derive) are instrumented" do
      root = Cases.root(:full)

      for suffix <- [
            [:Grammar, :Lexer],
            [:Dynamic, :Record],
            [:Size, root, :Bag],
            [:Size, root, :Tagged]
          ] do
        mod = Module.concat([root | suffix])
        assert [%{level: :full}] = mod.module_info(:attributes)[:elixir_scope], inspect(mod)
      end
    end
  end

  test "same values and exceptions (class, reason, user frames and lines) on generated inputs" do
    # the copy variants run copies (a copied clause's entry helper is '-es-entry-'; the others ask
    # the switch in '-es-switch-entry-')
    entry_helpers = fn v ->
      for m <- Cases.loaded_modules(Cases.root(v)), {:"-es-entry-", _} <- m.module_info(:functions), do: m
    end

    assert entry_helpers.(:full_copy) != [] and entry_helpers.(:function_boundaries_copy) != []
    assert entry_helpers.(:full) == [] and entry_helpers.(:function_boundaries) == []

    # one task per case; each compares every level with plain, seed after seed
    mismatches =
      Cases.cases()
      |> Task.async_stream(&case_mismatches(&1, @variants, @seeds),
        timeout: :infinity,
        ordered: false
      )
      |> Enum.reduce(%{}, fn {:ok, m}, acc -> Map.merge(acc, m) end)

    assert mismatches == %{}, mismatch_report(mismatches)
  end

  # %{{case name, level} => first mismatch}
  defp case_mismatches({name, _, _, _} = c, levels, seeds) do
    for seed <- seeds, reduce: %{} do
      acc ->
        args = Cases.args(c, Gen.new(seed))
        expected = Cases.outcome(c, :plain, args)

        for v <- levels, (got = Cases.outcome(c, v, args)) != expected, reduce: acc do
          acc -> Map.put_new(acc, {name, v}, {seed, args, got, expected})
        end
    end
  end

  # one line pair per {case, level}, with its first failing seed
  defp mismatch_report(mismatches) do
    for {{name, v}, {seed, args, got, expected}} <- Enum.sort(mismatches), into: "" do
      "\n#{name} at #{v}, seed #{seed}, args #{inspect(args, limit: 20)}:\n" <>
        "  got    #{inspect(got, limit: 30)}\n  plain: #{inspect(expected, limit: 30)}\n"
    end
  end

  test "same quote output" do
    for {name, fun} <- Cases.quoting() do
      expected = Cases.normalize(fun.(:plain), :plain)

      for v <- @levels do
        assert Cases.normalize(fun.(v), v) == expected, "#{name} at #{v}"
      end
    end
  end

  @tag :slow
  test "same stack depth at the bottom of every tail-recursive loop after 100,000 iterations" do
    short = Map.new(Cases.loops(10))

    # every loop at every variant, after 10 and after 100,000 iterations (both cores)
    runs =
      for {name, run} <- Cases.loops(100_000),
          v <- [:plain | @variants],
          {iters, f} <- [{10, short[name]}, {100_000, run}] do
        {name, v, iters, f}
      end
      |> Task.async_stream(fn {name, v, iters, f} -> {{name, v, iters}, bottom(f, v)} end,
        timeout: :infinity
      )
      |> Map.new(fn {:ok, r} -> r end)

    for {name, _} <- short do
      plain = runs[{name, :plain, 100_000}]
      # a real tail loop: the plain build's stack does not grow with the iterations
      assert plain.depth == runs[{name, :plain, 10}].depth,
             "#{name}: plain #{inspect(plain)} vs #{inspect(runs[{name, :plain, 10}])}"

      for v <- @variants do
        got = runs[{name, v, 100_000}]
        got_short = runs[{name, v, 10}]

        assert got.value == plain.value,
               "#{name} at #{v}: #{inspect(got)} vs plain #{inspect(plain)}"

        assert got.depth == got_short.depth,
               "#{name} at #{v}: the stack grows: #{got_short.depth} words after 10 iterations, #{got.depth} after 100,000"

        assert (got.depth - plain.depth) in 0..@frame_slack,
               "#{name} at #{v}: #{got.depth} words, plain #{plain.depth}"

        # measured outside the instrumented code, or in a plain build: the very same depth
        if v == :none or String.ends_with?(name, "(probe outside)"),
          do:
            assert(
              got.depth == plain.depth,
              "#{name} at #{v}: #{got.depth} words, plain #{plain.depth}"
            )
      end
    end
  end

  defp bottom(fun, v) do
    {:ok, {value, depth}} = Cases.in_process(fn -> fun.(v) end)
    %{value: value, depth: depth}
  end

  @tag :slow
  test ":none builds the same beams as the plain compiler (Mix project of the corpus)", %{
    mix_builds: agent
  } do
    builds = Agent.get(agent, & &1, :infinity)

    for {v, b} <- builds, do: assert(b.status == 0, "#{v} build:\n#{b.out}")
    # the :none build went through the ElixirScope compiler (its manifest lists the modules)
    assert File.regular?(
             Path.join(builds.none.build, "lib/fidelity_corpus/.mix/compile.elixir_scope")
           )

    assert map_size(builds.plain.md5s) >= 50
    assert Map.keys(builds.none.md5s) == Map.keys(builds.plain.md5s)

    for {key, md5} <- builds.plain.md5s do
      assert builds.none.md5s[key] == md5, "#{inspect(key)} differs at :none"
    end
  end

  describe "with capture running" do
    setup do
      ElixirScope.stop()
      :ok = ElixirScope.start(capture: [buffer_size: 262_144])
      on_exit(fn -> ElixirScope.stop() end)
    end

    test "values are the same, every recorded event decodes, OTP callbacks record their state" do
      mismatches =
        Cases.cases()
        |> Task.async_stream(&case_mismatches(&1, @levels -- [:none], 1..3),
          timeout: :infinity,
          ordered: false
        )
        |> Enum.reduce(%{}, fn {:ok, m}, acc -> Map.merge(acc, m) end)

      assert mismatches == %{}, "with capture on:" <> mismatch_report(mismatches)

      ElixirScope.flush()
      events = ElixirScope.get_events()
      assert is_list(events), "get_events: #{inspect(events, limit: 5)}"
      assert length(events) > 1_000

      # :state events name their call, whose :call event names the module
      module_of_call =
        for %{kind: :call, call_id: id, module: m} <- events, into: %{}, do: {id, m}

      for v <- @levels -- [:none] do
        root = Cases.root(v)
        mine = Enum.filter(events, &(&1.module && Cases.in_variant?(&1.module, root)))
        assert mine != [], "no events at #{v}"

        # read back by module too: each query decodes its events again
        for mod <- mine |> Enum.map(& &1.module) |> Enum.uniq() do
          assert is_list(ElixirScope.get_events(module: mod)), inspect(mod)
        end

        for {suffix, expect} <- Cases.state_expectations() do
          mod = Module.concat([root | suffix])

          states =
            for %{kind: :state, call_id: id, payload: {phase, st}} <- events,
                module_of_call[id] == mod,
                do: {phase, st}

          assert states != [], "no :state events for #{inspect(mod)} at #{v}"

          assert Enum.any?(states, expect),
                 "#{inspect(mod)} at #{v}: #{inspect(Enum.take(states, 4))}"
        end
      end

      for e <- events do
        assert e.kind in ElixirScope.Event.kinds()
        assert :erlang.binary_to_term(:erlang.term_to_binary(e.payload)) == e.payload
      end
    end
  end
end
