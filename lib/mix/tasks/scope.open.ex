defmodule Mix.Tasks.Scope.Open do
  @shortdoc "Opens an ElixirScope recording (in IEx: iex -S mix scope.open FILE)"
  @moduledoc """
  Opens a recording saved with `ElixirScope.Recording.save/2`.

      iex -S mix scope.open run.esrec    # IEx with the recording as the default source
      mix scope.open run.esrec           # checks the file, prints a summary and how to open it

  Under IEx the recording becomes the default source of `ElixirScope.Query`
  and of the helpers (`import ElixirScope.IEx`, then `history/1`, `tree/1`,
  `state_at/2`, `timeline/1` …). The recorded application's code is not needed: the
  recording carries the source lines around what it recorded and its structs' definitions
  (the summary counts them).
  Without IEx, the task also writes a `.iex.exs`-style file that loads the
  recording and imports the helpers, and prints the `iex --dot-iex …` command
  that uses it.
  """
  use Mix.Task

  alias ElixirScope.Recording

  @impl true
  def run(args) do
    case args do
      [path] -> open(path)
      _ -> Mix.raise("usage: mix scope.open FILE, e.g. mix scope.open _build/demo.esrec (or, to explore it: iex -S mix scope.open FILE)")
    end
  end

  defp open(path) do
    Mix.Task.run("app.config")

    case Recording.load(path) do
      {:ok, rec} ->
        summary(rec)

        if iex_running?() do
          Mix.shell().info("Recording loaded as the default source. Type: import ElixirScope.IEx; then processes(), history(pid), tree(pid), timeline([...]), stats()")
        else
          dot = Path.join(System.tmp_dir!(), "elixir_scope_open_#{System.unique_integer([:positive])}.exs")

          File.write!(dot, """
          ElixirScope.Recording.load!(#{inspect(rec.path)})
          import ElixirScope.IEx
          IO.puts("ElixirScope: #{rec.path} loaded; try processes(), history(pid), tree(pid), timeline([pid1, pid2])")
          """)

          Mix.shell().info("To explore it in IEx, run:\n\n    iex -S mix scope.open #{path}\n\nor, with the helpers imported:\n\n    iex --dot-iex #{dot} -S mix\n")
          Recording.close(rec)
        end

      {:error, message} ->
        Mix.raise("mix scope.open: #{message}")
    end
  end

  defp iex_running?, do: Code.ensure_loaded?(IEx) and apply(IEx, :started?, [])

  defp summary(rec) do
    stats = Recording.stats(rec)
    pids = rec |> ElixirScope.Recording.Index.pids() |> length()

    Mix.shell().info("""
    ElixirScope recording #{rec.path}
      events:     #{stats.events} (ids #{stats.first_id}..#{stats.last_id}) from #{pids} process(es)
      recorded:   #{stats.created_at} on #{stats.node}
      code:       #{code(rec.meta)}
    """)

    # a cluster recording: its nodes, clock offsets, corrections and what is missing
    Enum.each(ElixirScope.Cluster.summary(rec), &Mix.shell().info("  " <> &1))
  end

  # what the recording carries of the recorded code (shown without that code loaded)
  defp code(meta) do
    sources = meta[:sources] || %{}
    lines = sources |> Map.values() |> Enum.map(&map_size(&1.lines)) |> Enum.sum()
    omitted = if (meta[:sources_omitted] || 0) > 0, do: " (#{meta[:sources_omitted]} more left out by max_source_bytes)", else: ""
    "#{lines} source line(s) of #{map_size(sources)} module(s)#{omitted}, #{map_size(meta[:structs] || %{})} struct definition(s)"
  end
end
