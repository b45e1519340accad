defmodule ElixirScope.Bench.CCore do
  @moduledoc false
  # Runs the pure C benchmark (build/c_core_bench, built by `make bench`) and reads its JSON line.

  def run do
    bin = Path.expand("../build/c_core_bench", __DIR__)

    if File.exists?(bin) do
      {out, 0} = System.cmd(bin, [])
      json = out |> String.split("\n", trim: true) |> List.last()
      {:ok, r} = ElixirScope.NIF.json_decode(json)

      results = %{
        "c_ring_push_1thread_ns" => r["ring_push_ns_1thread"],
        "c_ring_push_first_lap_ns" => r["ring_push_ns_first_lap"],
        "c_codec_encode_4_args_ns" => r["codec_encode_4_args_ns"],
        "c_codec_encode_4_args_layout_ns" => r["codec_encode_4_args_layout_ns"],
        "c_codec_encode_call_args_ns" => r["codec_encode_call_args_ns"],
        "c_drain_warm_events_per_s" => r["drain_to_store_events_per_s"],
        "c_drain_cold_events_per_s" => r["drain_to_store_cold_events_per_s"],
        "c_store_pid_query_1000_of_1m_ns" => r["store_pid_query_1000_of_1M_us"] * 1000
      }

      rows = [
        {"C core: ring push, 1 thread (ns)", r["ring_push_ns_1thread"] * 1.0, "", "pure C, no VM"},
        {"C core: ring push over a fresh ring's first lap (ns)", r["ring_push_ns_first_lap"] * 1.0, "", "pages first touched"},
        {"C core: codec, 4 small args (ns)", r["codec_encode_4_args_ns"] * 1.0, "", "pure C, fake terms read through the ops"},
        {"C core: codec, 4 small args as the VM lays them out (ns)", r["codec_encode_4_args_layout_ns"] * 1.0, "",
         "pure C, term words read directly (what the NIF does)"},
        {"C core: codec, a GenServer call's arguments as the VM lays them out (ns)", r["codec_encode_call_args_ns"] * 1.0, "",
         "[{:add, 1}, {pid, [:alias | ref]}, 0], redaction rules on"},
        {"C core: drain ring → store, warm store (events/s)", r["drain_to_store_events_per_s"], "≥ 5,000,000", "store at its cap, segments recycled"},
        {"C core: drain ring → store, fresh memory (events/s)", r["drain_to_store_cold_events_per_s"], "", "first touch of new pages"},
        {"C core: pid query 1,000 of 1 M (ns)", r["store_pid_query_1000_of_1M_us"] * 1000.0, "≤ 1,000,000", ""}
      ]

      {results, rows}
    else
      IO.puts("skipping the C core bench: #{bin} is missing (run `make bench`)")
      {%{}, []}
    end
  end
end
