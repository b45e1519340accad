defmodule Mix.Tasks.Scope.Dap do
  @shortdoc "Debug Adapter Protocol server: step backwards through a recording in your editor"
  @moduledoc """
  A Debug Adapter Protocol server over a recording (see docs/editors_and_agents.md):

      mix scope.dap                       # over stdio, what an editor starts
      mix scope.dap run.esrec             # the recording `launch` opens by default
      mix scope.dap run.esrec --port 4711 # over TCP on 127.0.0.1 (0: any free port)
      iex -S mix scope.dap --port 4711    # inside the running app: `attach` debugs its live session

  `launch` arguments: `recording` (a path; the task's argument when omitted),
  `sourceRoot` (where the recorded modules' files are looked for; default the
  current directory), `stopOnEntry` (default true), `evaluateTimeout` (ms,
  default 1000). `attach` without a recording debugs the live ElixirScope
  session of the VM the server runs in.

  Over stdio nothing but the protocol is written to standard output: Mix's
  messages are silenced and the logger writes to standard error. Set
  `MIX_QUIET=1` too, so that compiling before the task runs prints nothing.
  """
  use Mix.Task

  alias ElixirScope.DAP.Server

  @switches [port: :integer]

  @impl true
  def run(argv) do
    {opts, args, invalid} = OptionParser.parse(argv, strict: @switches)
    if invalid != [], do: Mix.raise("scope.dap: unknown option(s) #{inspect(invalid)}")

    recording =
      case args do
        [file] -> Path.expand(file)
        [] -> nil
        _ -> Mix.raise("usage: mix scope.dap [RECORDING] [--port N]")
      end

    case opts[:port] do
      nil ->
        # stdout belongs to the protocol from here on
        Mix.shell(Mix.Shell.Quiet)
        Logger.configure_backend(:console, device: :standard_error)
        boot(recording)
        Server.serve_stdio(recording: recording)

      port ->
        boot(recording)

        case Server.start(port: port, recording: recording) do
          {:ok, info} ->
            # printed even under MIX_QUIET: it says which port to attach to
            IO.puts("ElixirScope DAP server listening on 127.0.0.1:#{info.port}")
            # under `iex -S mix` the shell goes on; otherwise the server is the program
            unless Code.ensure_loaded?(IEx) and apply(IEx, :started?, []), do: Process.sleep(:infinity)

          {:error, reason} ->
            Mix.raise("scope.dap: cannot listen on port #{port}: #{inspect(reason)}")
        end
    end
  end

  # a recording needs no application running; attaching needs the app (and its capture session) up
  defp boot(nil), do: Mix.Task.run("app.start")

  defp boot(_recording) do
    Mix.Task.run("app.config")
    {:ok, _} = Application.ensure_all_started(:elixir_scope)
  end
end
