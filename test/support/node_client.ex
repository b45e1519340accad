defmodule ElixirScope.Test.NodeClient do
  @moduledoc """
  For the tests that drive a server with a client from npm (test/dap, test/mcp):
  installs the client with the directory's setup.sh, or says why the test is skipped.
  """

  @doc "`{:ok, skip: false}` when node and the client are ready, else prints the reason and `{:ok, skip: true}`."
  @spec setup(String.t(), String.t()) :: {:ok, keyword()}
  def setup(dir, label) do
    cond do
      System.find_executable("node") == nil ->
        IO.puts("\n[#{label} skipped] node not found (apt-get install nodejs npm)")
        {:ok, skip: true}

      true ->
        case System.cmd(Path.join(dir, "setup.sh"), [], stderr_to_stdout: true) do
          {_, 0} ->
            {:ok, skip: false}

          {out, _} ->
            IO.puts("\n[#{label} skipped] cannot install the npm client: #{out}")
            {:ok, skip: true}
        end
    end
  end

  @doc """
  Runs a client script on the demo recording: `expect.(recording)` gives what the
  script must find (with `recording:` and `cwd:` added). Returns `{result, status, output}`.
  """
  @spec demo_session(String.t(), String.t(), (ElixirScope.Recording.t() -> map())) :: {map(), integer(), String.t()}
  def demo_session(dir, script, expect) do
    file = ElixirScope.Test.DemoRecording.path()
    {:ok, rec} = ElixirScope.Recording.load(file, default: false)

    try do
      run(dir, script, Map.merge(expect.(rec), %{recording: file, cwd: Path.expand("../..", __DIR__)}))
    after
      ElixirScope.Recording.close(rec)
    end
  end

  @doc """
  The environment of a child `mix`: the test environment, and no `ERL_COMPILER_OPTIONS`
  (the compiler tests leave ElixirScope's parse transform there, which a fresh VM cannot load).
  """
  @spec child_env() :: [{String.t(), String.t() | nil}]
  def child_env, do: [{"MIX_ENV", "test"}, {"ERL_COMPILER_OPTIONS", nil}]

  @doc "Runs `node script json_arg` in `dir`; returns the decoded last line of its output and the whole output."
  @spec run(String.t(), String.t(), map()) :: {map(), integer(), String.t()}
  def run(dir, script, arg) do
    {out, status} =
      System.cmd("node", [Path.join(dir, script), ElixirScope.JSON.encode!(arg)],
        cd: dir, stderr_to_stdout: true, env: child_env())

    last = out |> String.split("\n", trim: true) |> List.last() || ""

    result =
      case ElixirScope.JSON.decode(last) do
        {:ok, %{} = map} -> map
        _ -> %{"ok" => false, "error" => "no JSON result line"}
      end

    {result, status, out}
  end
end
