defmodule Mix.Tasks.Scope.CinemaTest do
  use ExUnit.Case, async: false
  import ElixirScope.WebHelpers

  alias ElixirScope.Web.JSON

  @moduletag :tmp_dir

  setup %{tmp_dir: dir} do
    file = Path.join(dir, "bank.esrec")
    ExUnit.CaptureLog.capture_log(fn -> send(self(), {:rec, ElixirScope.CinemaScenario.Recording.record(file)}) end)
    assert_received {:rec, {rec, pids}}
    ElixirScope.Recording.close(rec)
    %{rec_file: file, pids: pids}
  end

  test "mix scope.cinema FILE serves the saved recording", %{rec_file: file} do
    {info, out} = scope_cinema(file)
    assert out =~ "ElixirScope cinema: http://127.0.0.1:"
    {200, s} = api(info, "api/summary")
    assert s["title"] == "bank.esrec"
    assert s["source"] == "recording"
    assert s["events"] == 71
    {200, r} = api(info, "api/search?q=kind:exception")
    assert length(r["ids"]) == 1
  end

  test "mix scope.cinema with a missing or foreign file fails with a message", %{tmp_dir: dir} do
    assert_raise Mix.Error, ~r/nope.esrec/, fn -> Mix.Tasks.Scope.Cinema.run([Path.join(dir, "nope.esrec"), "--no-wait"]) end
    bad = Path.join(dir, "bad.esrec")
    File.write!(bad, "not a recording")
    assert_raise Mix.Error, fn -> Mix.Tasks.Scope.Cinema.run([bad, "--no-wait"]) end
  end

  test "mix scope.cinema on a port in use says so in one line and suggests --port", %{rec_file: file} do
    {:ok, taken} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
    {:ok, port} = :inet.port(taken)
    on_exit(fn -> :gen_tcp.close(taken) end)

    error = assert_raise Mix.Error, fn -> Mix.Tasks.Scope.Cinema.run([file, "--port", "#{port}", "--no-wait"]) end
    assert error.message == "scope.cinema: port #{port} on 127.0.0.1 is already in use; choose another with --port N (--port 0 picks a free one)"
    assert ElixirScope.Web.start(port: port, source: {:events, [], %{}}) == {:error, "port #{port} on 127.0.0.1 is already in use"}
  end

  test "mix scope.export --input FILE exports a saved recording", %{rec_file: file, tmp_dir: dir} do
    out = Path.join(dir, "trace.json")
    ExUnit.CaptureIO.capture_io(fn -> Mix.Tasks.Scope.Export.run(["--format", "perfetto", "--input", file, out]) end)
    trace = out |> File.read!() |> JSON.decode!()
    assert Enum.count(trace["traceEvents"], &(&1["ph"] == "X")) == 18
    out = Path.join(dir, "spans.json")
    ExUnit.CaptureIO.capture_io(fn -> Mix.Tasks.Scope.Export.run(["--format", "otlp", "--input", file, "--module", "ElixirScope.CinemaScenario.Account", out]) end)
    spans = out |> File.read!() |> JSON.decode!() |> get_in(["resourceSpans", Access.at(0), "scopeSpans", Access.at(0), "spans"])
    # init and the five handle_calls
    assert length(spans) == 6
    assert Enum.all?(spans, &(&1["name"] =~ "Account."))
  end
end
