defmodule ElixirScope.Bench.DAP do
  @moduledoc false
  # What a debug session costs on a larger recording (make bench): 200,000 events,
  # one process making 50,000 calls of Bench.Dap.f/1 (call, expr, local, return),
  # a GenServer-like process with 10,000 state changes. Measured through the
  # DAP session itself (ElixirScope.DAP.Session.handle/2), as an editor drives it.
  import ElixirScope.Bench
  alias ElixirScope.{Event, Recording}
  alias ElixirScope.DAP.Session

  @calls 50_000
  @states 10_000

  def run do
    dir = Path.join(System.tmp_dir!(), "elixir_scope_dap_bench_#{System.unique_integer([:positive])}")
    File.mkdir_p!(Path.join(dir, "lib"))
    src = Path.join(dir, "lib/bench_dap.ex")
    File.write!(src, "defmodule Bench.Dap do\n  def f(x) do\n    y = x + 1\n    y\n  end\nend\n")
    file = Path.join(dir, "bench.esrec")
    rec = Recording.from_events(events())
    {:ok, _} = Recording.save(file, :all, source: rec)
    Recording.close(rec)

    s = req(Session.new(), "initialize")
    {launch_ns, s} = timed(fn -> req(s, "launch", %{"recording" => file, "sourceRoot" => dir}) end)
    s = req(s, "configurationDone")

    {bp_ns, s} = timed(fn -> req(s, "setBreakpoints", %{"source" => %{"path" => src}, "breakpoints" => [%{"line" => 3}]}) end)
    {cond_ns, s} =
      timed(fn -> req(s, "setBreakpoints", %{"source" => %{"path" => src}, "breakpoints" => [%{"line" => 3, "condition" => "x == #{@calls - 10}"}]}) end)

    {continue_ns, s} = timed(fn -> req(s, "continue", %{"threadId" => 1}) end)
    {stack_ns, _} = timed(fn -> req(s, "stackTrace", %{"threadId" => 1}) end)
    {back_ns, s} = timed(fn -> req(s, "stepBack", %{"threadId" => 1}) end)
    {next_ns, s} = timed(fn -> req(s, "next", %{"threadId" => 1}) end)
    {rev_ns, s} = timed(fn -> req(s, "reverseContinue", %{"threadId" => 1}) end)
    {stack2_ns, s} = timed(fn -> req(s, "stackTrace", %{"threadId" => 1}) end)
    Session.close(s)
    File.rm_rf!(dir)

    results = %{
      "dap_launch_200k_ns" => launch_ns,
      "dap_set_line_breakpoint_200k_ns" => bp_ns,
      "dap_set_conditional_breakpoint_50k_hits_ns" => cond_ns,
      "dap_continue_ns" => continue_ns,
      "dap_stack_trace_first_ns" => stack_ns,
      "dap_stack_trace_ns" => stack2_ns,
      "dap_step_back_ns" => back_ns,
      "dap_next_ns" => next_ns,
      "dap_reverse_continue_ns" => rev_ns
    }

    rows = [
      {"dap_launch_200k_ns (load 200,000 events, list processes)", launch_ns, "", "stdio-free: Session.handle/2"},
      {"dap_set_line_breakpoint_200k_ns (resolve every hit of a line)", bp_ns, "", "one pass over the recording"},
      {"dap_set_conditional_breakpoint_50k_hits_ns (condition at each of 50,000 hits)", cond_ns, "", "bounded evaluation per hit"},
      {"dap_continue_ns", continue_ns, "", ""},
      {"dap_stack_trace_first_ns (a 150,000-event process: its stack checkpoints built once)", stack_ns, "", "then #{fmt(stack2_ns)} ns"},
      {"dap_step_back_ns / next", back_ns, "", "next #{fmt(next_ns)} ns"},
      {"dap_reverse_continue_ns", rev_ns, "", ""}
    ]

    {results, rows}
  end

  defp timed(fun) do
    t0 = System.monotonic_time(:nanosecond)
    v = fun.()
    {System.monotonic_time(:nanosecond) - t0, v}
  end

  defp req(s, cmd, args \\ %{}) do
    {s, out, _} = Session.handle(s, %{"type" => "request", "seq" => 1, "command" => cmd, "arguments" => args})
    Enum.each(out, fn m -> if m[:success] == false, do: raise("#{cmd} failed: #{m.message}") end)
    s
  end

  defp events do
    caller = :erlang.list_to_pid(~c"<0.9001.0>")
    server = :erlang.list_to_pid(~c"<0.9002.0>")

    calls =
      for i <- 0..(@calls - 1), base = 1 + i * 4 do
        [
          ev(base, caller, :call, module: Bench.Dap, function: :f, arity: 1, line: 2, call_id: base, link: base + 3, payload: [i]),
          ev(base + 1, caller, :expr, line: 3, call_id: base, payload: {"y = x + 1", i + 1}),
          ev(base + 2, caller, :local, line: 3, call_id: base, payload: %{y: i + 1}),
          ev(base + 3, caller, :return, module: Bench.Dap, function: :f, arity: 1, call_id: base, payload: i + 1)
        ]
      end

    first = @calls * 4 + 1
    states = for j <- 0..(@states - 1), do: ev(first + j, server, :state, call_id: 0, line: 1, payload: {:after, %{count: div(j, 2)}})
    List.flatten(calls) ++ states
  end

  defp ev(id, pid, kind, fields) do
    e = struct(%Event{id: id, ts: 1_000_000 + id * 1_000, pid: pid, kind: kind, line: 0, call_id: 0, link: 0}, fields)
    if kind == :call, do: %{e | return_id: e.link}, else: e
  end
end
