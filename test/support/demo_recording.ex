defmodule ElixirScope.Test.DemoRecording do
  @moduledoc """
  The demo's recording (`make demo`) for the editor and agent tests: the
  `_build/demo.esrec` of this checkout when it is newer than the demo and the
  code that records it, else a new one made by `./examples/run_demo.sh` into a
  temporary directory (once per test run).
  """

  @root Path.expand("../..", __DIR__)

  @doc "The path of a fresh demo recording (made at most once per VM)."
  @spec path() :: String.t()
  def path do
    case :persistent_term.get({__MODULE__, :path}, nil) do
      nil ->
        p = if fresh?(existing()), do: existing(), else: record!()
        :persistent_term.put({__MODULE__, :path}, p)
        p

      p ->
        p
    end
  end

  @doc "The demo application's directory."
  @spec demo_dir() :: String.t()
  def demo_dir, do: Path.join(@root, "examples/demo")

  defp existing, do: Path.join(@root, "_build/demo.esrec")

  # newer than every file that shapes what the demo records, and readable
  defp fresh?(file) do
    with {:ok, %File.Stat{mtime: made}} <- File.stat(file, time: :posix),
         true <- newest_input() < made,
         {:ok, rec} <- ElixirScope.Recording.load(file, default: false) do
      ElixirScope.Recording.close(rec)
      true
    else
      _ -> false
    end
  end

  defp newest_input do
    ["examples/demo/lib/**/*.ex", "examples/demo/config/*.exs", "lib/elixir_scope/compiler*/**/*.ex",
     "lib/elixir_scope/capture/**/*.ex", "lib/elixir_scope/recording*/**/*.ex", "c_src/*.c"]
    |> Enum.flat_map(&Path.wildcard(Path.join(@root, &1)))
    |> Enum.map(&File.stat!(&1, time: :posix).mtime)
    |> Enum.max(fn -> 0 end)
  end

  defp record! do
    dir = Path.join(System.tmp_dir!(), "elixir_scope_demo_#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    System.at_exit(fn _ -> File.rm_rf(dir) end)
    file = Path.join(dir, "demo.esrec")
    # no ERL_COMPILER_OPTIONS: the compiler tests may have left ElixirScope's parse transform there
    env = [{"ELIXIR_SCOPE_DEMO_RECORDING", file}, {"MIX_ENV", "dev"}, {"ERL_COMPILER_OPTIONS", nil}]

    case System.cmd(Path.join(@root, "examples/run_demo.sh"), [], env: env, stderr_to_stdout: true) do
      {_, 0} -> file
      {out, status} -> raise "examples/run_demo.sh exited with #{status}:\n#{String.slice(out, -3000, 3000)}"
    end
  end
end
