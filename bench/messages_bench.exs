defmodule ElixirScope.Bench.Messages do
  @moduledoc false
  # The cost of an instrumented send + receive pair (compiled by the real transformer at
  # :function_boundaries: a :send and a :receive event) against the same pair compiled plain.
  # Each side's function without the pair is subtracted, so the function's own entry and return
  # events are not counted as the pair's cost.
  import ElixirScope.Bench
  import Bitwise

  defp compile(name, plan) do
    ast =
      quote do
        defmodule unquote(name) do
          @moduledoc false
          def pair(msg) do
            send(self(), msg)

            receive do
              {:m, n} -> n
            end
          end

          def empty(msg), do: elem(msg, 1)
        end
      end

    ast = if plan, do: elem(ElixirScope.AST.Transformer.transform_module(ast, plan), 1), else: ast
    Code.compile_quoted(ast)
    name
  end

  def run do
    ElixirScope.stop()
    plain = compile(ElixirScope.Bench.Messages.Plain, nil)
    inst = compile(ElixirScope.Bench.Messages.Instrumented, :function_boundaries)
    msg = {:m, 7}

    :ok = ElixirScope.start(capture: [buffer_size: 1 <<< 16, flush_interval: 2], storage: [max_bytes: 256_000_000])
    # plain and instrumented measured in alternation, best of 5 medians: a loaded machine shifts both alike
    {p, i} =
      Enum.reduce(1..5, {[], []}, fn _, {p, i} ->
        pp = per_call_ns(fn -> plain.pair(msg) end, 10_000, 11) - per_call_ns(fn -> plain.empty(msg) end, 10_000, 11)
        ii = per_call_ns(fn -> inst.pair(msg) end, 10_000, 11) - per_call_ns(fn -> inst.empty(msg) end, 10_000, 11)
        {[pp | p], [ii | i]}
      end)

    stats = ElixirScope.stats()
    ElixirScope.stop()
    {plain_ns, inst_ns} = {max(Enum.min(p), 1.0), Enum.min(i)}

    results = %{
      "message_pair_plain_ns" => plain_ns,
      "message_pair_instrumented_ns" => inst_ns,
      "message_pair_ratio" => inst_ns / plain_ns
    }

    rows = [
      {"message pair: plain send + receive to self (ns)", plain_ns, "", "BEAM baseline"},
      {"message pair: instrumented send + receive (ns, :send + :receive events)", inst_ns, "",
       "#{fmt(inst_ns / plain_ns)}× the plain pair; #{stats.dropped} of #{stats.emitted} events dropped"}
    ]

    {results, rows}
  end
end
