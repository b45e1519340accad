defmodule ElixirScope.Bench.Compile do
  @moduledoc false
  # The compile cost of the :elixir_scope compiler (issue 10) on a Mix project made of the
  # fidelity corpus (test/fidelity/corpus), with ElixirScope as a path dependency: a no-op
  # `mix compile` with and without the compiler, and a full compile (`mix compile --force`)
  # plain, through the compiler at :none, and instrumented at :function_boundaries, at :full and
  # at :full with an exclude list (modules left at :none). Each figure is the median
  # wall time of whole `mix` commands (VM start included); plain and instrumented runs alternate.
  import ElixirScope.Bench
  alias ElixirScope.Test.FidelityProject

  Code.require_file("../test/support/fidelity_project.ex", __DIR__)

  @full_runs 3
  @noop_runs 9

  def run do
    dir = FidelityProject.create!(Path.expand("_build/bench/fidelity_project"), dep: true)
    # plain and instrumented builds in their own build paths, so their runs can alternate and
    # the machine's load changes weigh on both alike
    plain_env = FidelityProject.env_for(:plain, Path.join(dir, "_build/plain"))
    none_env = FidelityProject.env_for(:none, Path.join(dir, "_build/scope"))
    full_env = FidelityProject.env_for(:full, Path.join(dir, "_build/scope"))
    fb_env = FidelityProject.env_for(:function_boundaries, Path.join(dir, "_build/scope_fb"))
    # :full but for the modules an exclude list keeps at :none (they must stay the plain code, so
    # the compilation keeps the Erlang compiler's default options)
    partial_env =
      FidelityProject.env_for({:full, exclude: ["Fidelity.Types"]}, Path.join(dir, "_build/scope_partial"))

    # first builds: the dependency once per build path, then the project
    mix!(dir, ["compile"], plain_env)
    mix!(dir, ["compile"], none_env)

    [plain_full, none_full] =
      alternate(@full_runs, dir, ["compile", "--force"], [plain_env, none_env])

    mix!(dir, ["compile"], full_env)

    [plain_full2, full_full] =
      alternate(@full_runs, dir, ["compile", "--force"], [plain_env, full_env])

    mix!(dir, ["compile"], fb_env)

    [plain_full3, fb_full] =
      alternate(@full_runs, dir, ["compile", "--force"], [plain_env, fb_env])

    mix!(dir, ["compile"], partial_env)

    [plain_full4, partial_full] =
      alternate(@full_runs, dir, ["compile", "--force"], [plain_env, partial_env])

    [plain_noop, full_noop] = alternate(@noop_runs, dir, ["compile"], [plain_env, full_env])
    plain_full = median(plain_full ++ plain_full2 ++ plain_full3 ++ plain_full4)
    fb_full = median(fb_full)
    partial_full = median(partial_full)
    [none_full, full_full] = [median(none_full), median(full_full)]
    [plain_noop, full_noop] = [median(plain_noop), median(full_noop)]

    noop_added = full_noop - plain_noop
    fb_ratio = fb_full / plain_full
    fb_net_ratio = (fb_full - full_noop) / max(plain_full - plain_noop, 1)
    ratio = full_full / plain_full
    net_ratio = (full_full - full_noop) / max(plain_full - plain_noop, 1)
    none_ratio = none_full / plain_full
    partial_ratio = partial_full / plain_full
    files = length(FidelityProject.corpus_files())
    load = load_average()

    results = %{
      compile_noop_plain_ms: plain_noop,
      compile_noop_scope_ms: full_noop,
      compile_noop_added_ms: noop_added,
      compile_full_plain_ms: plain_full,
      compile_full_none_ms: none_full,
      compile_full_instrumented_ms: full_full,
      compile_full_instrumented_ratio: ratio,
      compile_full_fb_ms: fb_full,
      compile_full_fb_ratio: fb_ratio,
      compile_full_partial_ms: partial_full,
      compile_full_partial_ratio: partial_ratio
    }

    rows = [
      {"compile_noop_added_ms (no-op mix compile, with - without the compiler)", noop_added,
       "≤ 200",
       "#{fmt(plain_noop)} ms plain, #{fmt(full_noop)} ms with :elixir_scope (#{files}-file corpus project, path dependency; load average #{load})"},
      {"compile_full_fb_ratio (mix compile --force, :function_boundaries / plain)", fb_ratio, "≤ 1.5",
       "#{fmt(fb_full)} ms vs #{fmt(plain_full)} ms; minus the no-op: #{fmt(fb_net_ratio)}×"},
      {"compile_full_instrumented_ratio (mix compile --force, :full / plain)", ratio, "≤ 1.5",
       "#{fmt(full_full)} ms vs #{fmt(plain_full)} ms; minus the no-op (VM start, dependency check): #{fmt(net_ratio)}×; at :none #{fmt(none_ratio)}× (#{fmt(none_full)} ms)"},
      {"compile_full_partial_ratio (mix compile --force, :full with an exclude list / plain)", partial_ratio,
       "≤ 1.5",
       "#{fmt(partial_full)} ms vs #{fmt(plain_full)} ms (Fidelity.Types excluded: the Erlang compiler's default options)"}
    ]

    {results, rows}
  end

  # `runs` rounds of the same command in each environment in turn: a list of times per environment
  defp alternate(runs, dir, args, envs) do
    rounds = for _ <- 1..runs, do: Enum.map(envs, &timed(dir, args, &1))
    rounds |> Enum.zip() |> Enum.map(&Tuple.to_list/1)
  end

  defp timed(dir, args, env) do
    {us, out} = :timer.tc(fn -> mix!(dir, args, env) end)
    full? = {"FID_LEVEL", "full"} in env

    if args == ["compile", "--force"] and full? and not (out =~ "ElixirScope: instrumented"),
      do: raise("the :full build instrumented nothing:\n#{out}")

    us / 1000
  end

  defp load_average do
    case File.read("/proc/loadavg") do
      {:ok, text} -> text |> String.split() |> hd()
      _ -> "unknown"
    end
  end

  defp mix!(dir, args, env) do
    case FidelityProject.mix(dir, args, env) do
      {out, 0} -> out
      {out, status} -> raise "mix #{Enum.join(args, " ")} failed (#{status}):\n#{out}"
    end
  end
end
