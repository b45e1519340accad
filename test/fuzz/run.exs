# The fuzzer (make test-fuzz SEED=N): every NIF with generated arguments, and
# mutated recording files, each in child VMs. Seeded and bounded in time; the
# last line says "N passed, N failed", and the exit status is non-zero on any failure.
#
#   MIX_ENV=test mix run --no-start test/fuzz/run.exs [--seed N] [--nif-calls N] [--mutations N] [--bound-ms N] [--nif-bound-ms N]
{opts, _, _} =
  OptionParser.parse(System.argv(), strict: [seed: :integer, nif_calls: :integer, mutations: :integer, bound_ms: :integer, nif_bound_ms: :integer])

seed = Keyword.get(opts, :seed, 1)
nif_calls = Keyword.get(opts, :nif_calls, 1500)
mutations = Keyword.get(opts, :mutations, 10_000)
bound_ms = Keyword.get(opts, :bound_ms, 1000)
# a NIF call is a hang past this: dirty NIFs given a million-element value legitimately take a second or two
nif_bound_ms = Keyword.get(opts, :nif_bound_ms, 10_000)
# the whole run's budget: what is not done by then counts as failed
budget_ms = 290_000

Code.require_file("peer.ex", __DIR__)
Code.require_file("nif_fuzz.ex", __DIR__)
# what runs in the child VMs too
child_modules = Code.compile_file("child.ex", __DIR__) ++ Code.compile_file("recording_fuzz.ex", __DIR__)

IO.puts("fuzz: seed #{seed}, #{nif_calls} calls per NIF (#{nif_bound_ms} ms each), #{mutations} recording mutants (#{bound_ms} ms each)")
t0 = System.monotonic_time(:millisecond)

run = fn what, fun ->
  t1 = System.monotonic_time(:millisecond)
  task = Task.async(fun)

  case Task.yield(task, max(budget_ms - (t1 - t0), 1)) || Task.shutdown(task, :brutal_kill) do
    {:ok, {p, f, report}} ->
      Enum.each(report, &IO.puts/1)
      IO.puts("  (#{what}: #{div(System.monotonic_time(:millisecond) - t1, 1000)} s)")
      {p, f}

    _ ->
      {0, ["#{what}: the time budget (#{div(budget_ms, 1000)} s) ran out"]}
  end
end

{np, nf} = run.("NIFs", fn -> ElixirScope.Fuzz.NIFs.run(seed, nif_calls, nif_bound_ms, child_modules) end)
{rp, rf} = run.("recordings", fn -> ElixirScope.Fuzz.Recordings.run(seed, mutations, bound_ms, child_modules) end)

failures = nf ++ rf
for f <- Enum.take(failures, 50), do: IO.puts("FAIL " <> f)
if length(failures) > 50, do: IO.puts("… and #{length(failures) - 50} more")
IO.puts("fuzz took #{div(System.monotonic_time(:millisecond) - t0, 1000)} s")
IO.puts("#{np + rp} passed, #{length(failures)} failed")
System.halt(if failures == [], do: 0, else: 1)
