defmodule ElixirScope.RecordingCodeTest do
  @moduledoc """
  A recording is self-contained: it carries the source lines around what it recorded and
  the definitions of the structs in its values, so that the cinema, the report and IEx show
  them after the recorded code (module and file) is gone.
  """
  # not async: it starts ElixirScope and loads and purges a module
  use ExUnit.Case, async: false
  import ElixirScope.WebHelpers

  alias ElixirScope.{Query, Recording}
  alias ElixirScope.Capture.InstrumentationRuntime, as: R
  alias ElixirScope.Recording.Sources
  alias ElixirScope.Report.Format

  @moduletag :tmp_dir

  @code """
  defmodule ScopeScratch.Posting do
    defstruct [:seq, :account, :amount]
    def secret, do: [api_key: "sk-live-1234"]
  end
  defmodule ScopeScratch.Ledger do
    def post(account, amount) do
      posting = %ScopeScratch.Posting{seq: 1, account: account, amount: amount}
      {:ok, posting}
    end
  end
  """

  # records ScopeScratch.Ledger.post/2 (its lines as the compiler reports them), saves the
  # recording, then removes the module and its file: nothing of the recorded code is left
  setup %{tmp_dir: dir} do
    src = Path.join(dir, "ledger.ex")
    File.write!(src, @code)
    Code.compile_file(src)
    ElixirScope.stop()
    :ok = ElixirScope.start()

    {:ok, posting} = apply(ScopeScratch.Ledger, :post, ["alice", 5])
    cid = R.report_function_entry(ScopeScratch.Ledger, :post, ["alice", 5], 6)
    R.report_expression_value(cid, "posting", posting, 7)
    R.report_function_exit(cid, {:ok, posting})

    file = Path.join(dir, "scratch.esrec")
    {:ok, _} = Recording.save(file)
    small = Path.join(dir, "small.esrec")
    {:ok, _} = Recording.save(small, :all, max_source_bytes: 0)
    ElixirScope.stop()

    for m <- [ScopeScratch.Ledger, ScopeScratch.Posting] do
      :code.purge(m)
      :code.delete(m)
      :code.purge(m)
      Process.delete({Format, :struct_module, m})
    end

    File.rm!(src)
    refute Code.ensure_loaded?(ScopeScratch.Posting)
    %{rec_file: file, small: small}
  end

  test "the source lines and struct definitions are saved with the recording and shown without the code", %{rec_file: file} do
    {:ok, rec} = Recording.load(file, default: false)
    on_exit(fn -> Recording.close(rec) end)

    assert %{file: shown, lines: %{8 => "    {:ok, posting}"}} = rec.meta.sources[ScopeScratch.Ledger]
    assert shown =~ "ledger.ex"
    assert rec.meta.structs == %{ScopeScratch.Posting => [:seq, :account, :amount]}
    assert rec.meta.sources_omitted == 0

    # the window around line 6: three lines before it (as far as the file goes), two after
    assert %{line: 6, from: 3, lines: lines} = Sources.snippet(rec, ScopeScratch.Ledger, 6)
    assert lines == [~s(  def secret, do: [api_key: "[REDACTED]"]), "end", "defmodule ScopeScratch.Ledger do", "  def post(account, amount) do",
                     "    posting = %ScopeScratch.Posting{seq: 1, account: account, amount: amount}", "    {:ok, posting}"]
    # a key written in the code does not travel with the recording
    refute File.read!(file) =~ "sk-live-1234"

    # the struct in the recorded return value prints as the struct it is, fields in definition order
    [ret] = Query.events(source: rec, kinds: [:return])
    assert Format.text(ret.payload) == ~s({:ok, %ScopeScratch.Posting{seq: 1, account: "alice", amount: 5}})
    assert ElixirScope.Web.Render.term(ret.payload) =~ ~s(%ScopeScratch.Posting{seq: 1, account: "alice", amount: 5})

    # a map whose keys are not the struct's is not that struct: printed as a map, as Inspect does
    assert Format.text(%{__struct__: ScopeScratch.Posting, seq: 2}) == "%{__struct__: ScopeScratch.Posting, seq: 2}"
  end

  test "IEx: stepping shows the line of code of each event, and the struct, from the recording", %{rec_file: file} do
    {:ok, rec} = Recording.load(file)
    on_exit(fn -> Recording.close(rec) end)
    Process.put(:elixir_scope_colors, false)
    Process.delete({ElixirScope.IEx, :cursor})
    [call, expr | _] = for _ <- 1..3, do: ExUnit.CaptureIO.capture_io(fn -> ElixirScope.IEx.step() end)
    assert call =~ "→ ScopeScratch.Ledger.post/2"
    assert call =~ ~r"ledger.ex:6  def post\(account, amount\) do"
    assert expr =~ ~s(expr `posting` = %ScopeScratch.Posting{seq: 1, account: "alice", amount: 5})
    assert expr =~ ~r"ledger.ex:7  posting = %ScopeScratch.Posting\{seq: 1, account: account, amount: amount\}"
  end

  test "mix scope.cinema FILE answers /api/event with the saved source snippet", %{rec_file: file} do
    {web, out} = scope_cinema(file)
    assert out =~ "ElixirScope cinema: http://127.0.0.1:"

    {200, %{"ids" => ids}} = api(web, "api/search?q=kind:expr")
    {200, detail} = api(web, "api/event/#{hd(ids)}")
    assert detail["source"]["line"] == 7
    assert detail["source"]["file"] =~ "ledger.ex"
    assert "    posting = %ScopeScratch.Posting{seq: 1, account: account, amount: amount}" in detail["source"]["lines"]
    assert detail["value"]["value"] =~ "%ScopeScratch.Posting{seq: 1, account: \"alice\", amount: 5}"
  end

  test "mix scope.open counts what the recording carries of the code", %{rec_file: file, small: small} do
    open = fn path ->
      out = ExUnit.CaptureIO.capture_io(fn -> Mix.Tasks.Scope.Open.run([path]) end)
      # the .iex.exs-style file the task writes
      [_, dot] = Regex.run(~r/iex --dot-iex (\S+) -S mix/, out)
      File.rm!(dot)
      out
    end

    assert open.(file) =~ "code:       8 source line(s) of 1 module(s), 1 struct definition(s)"
    assert open.(small) =~ "code:       0 source line(s) of 0 module(s) (8 more left out by max_source_bytes), 1 struct definition(s)"
  end

  test "the saved source is bounded, and what the bound leaves out is counted", %{small: small} do
    {:ok, rec} = Recording.load(small, default: false)
    on_exit(fn -> Recording.close(rec) end)
    assert rec.meta.sources == %{}
    # lines 6 and 7 were recorded: lines 3..10, three either side, were wanted
    assert rec.meta.sources_omitted == 8
    assert Sources.snippet(rec, ScopeScratch.Ledger, 7) == nil
    assert rec.meta.structs == %{ScopeScratch.Posting => [:seq, :account, :amount]}
  end

  test "a recording saved again from a loaded one keeps its source lines and structs", %{tmp_dir: dir, rec_file: file} do
    {:ok, rec} = Recording.load(file, default: false)
    again = Path.join(dir, "again.esrec")
    {:ok, _} = Recording.save(again, :all, source: rec)
    Recording.close(rec)

    {:ok, rec} = Recording.load(again, default: false)
    on_exit(fn -> Recording.close(rec) end)
    assert %{lines: %{8 => "    {:ok, posting}"}} = rec.meta.sources[ScopeScratch.Ledger]
    assert rec.meta.structs == %{ScopeScratch.Posting => [:seq, :account, :amount]}
  end

  test "the lines noted page by page (as the parallel save scans them) are those of one pass" do
    ev = fn id, kind, m, cid, line -> %ElixirScope.Event{id: id, kind: kind, module: m, call_id: cid, line: line, payload: nil} end

    # a call whose inner events and return (without a module) fall in later pages, a nested
    # call closed in the same page, and an exception whose line comes from its stacktrace
    events = [
      ev.(1, :call, A, 0, 10),
      ev.(2, :local, nil, 1, 11),
      ev.(3, :call, B, 1, 20),
      ev.(4, :expr, nil, 3, 21),
      ev.(5, :return, nil, 3, 0),
      ev.(6, :expr, nil, 1, 12),
      %{ev.(7, :exception, nil, 1, 0) | payload: {:error, :boom, [{A, :f, 1, [line: 13]}]}},
      ev.(8, :local, nil, 99, 5)
    ]

    whole = Sources.add(Sources.new(), events)

    for size <- 1..length(events) do
      paged = events |> Enum.chunk_every(size) |> Enum.map(&Sources.scan/1) |> Enum.reduce(Sources.new(), &Sources.merge(&2, &1))
      assert paged == whole, "pages of #{size}"
    end

    assert Map.keys(whole.lines) |> Enum.sort() == [{A, 10}, {A, 11}, {A, 12}, {A, 13}, {B, 20}, {B, 21}]
  end
end
