defmodule Mix.Tasks.Scope.Mcp do
  @shortdoc "Model Context Protocol server: coding agents query a recording"
  @moduledoc """
  A Model Context Protocol server over stdio (see docs/editors_and_agents.md):

      mix scope.mcp run.esrec     # tools over a saved recording
      mix scope.mcp               # the live ElixirScope session of this project's app

  Tools: `list_processes`, `find_events`, `call_tree`, `state_at`,
  `variable_history`, `origin`, `logpoint`, `explain_crash`, `search`,
  `timeline`; resource: `elixir-scope://recording/summary`. Option:
  `--source-root DIR` (where the recorded modules' files are, for argument
  names in `logpoint`; default the current directory).

  Standard output carries only the protocol: Mix's messages are silenced and
  the logger writes to standard error. Set `MIX_QUIET=1` too, so that
  compiling before the task runs prints nothing.
  """
  use Mix.Task

  alias ElixirScope.MCP.Server

  @impl true
  def run(argv) do
    {opts, args, invalid} = OptionParser.parse(argv, strict: [source_root: :string])
    if invalid != [], do: Mix.raise("scope.mcp: unknown option(s) #{inspect(invalid)}")

    # stdout belongs to the protocol from here on
    Mix.shell(Mix.Shell.Quiet)
    Logger.configure_backend(:console, device: :standard_error)

    recording =
      case args do
        [file] ->
          Mix.Task.run("app.config")
          {:ok, _} = Application.ensure_all_started(:elixir_scope)
          Path.expand(file)

        [] ->
          Mix.Task.run("app.start")
          nil

        _ ->
          Mix.raise("usage: mix scope.mcp [RECORDING] [--source-root DIR]")
      end

    case Server.new(recording: recording, source_root: opts[:source_root]) do
      {:ok, state} -> Server.serve_stdio(state)
      {:error, msg} -> Mix.raise("scope.mcp: #{msg}")
    end
  end
end
