defmodule Mix.Tasks.Scope.Cinema do
  @shortdoc "Opens the execution cinema on a saved recording (or the live store)"
  @moduledoc """
  Serves the execution cinema and prints its URL.

      mix scope.cinema run.esrec            # a saved recording
      mix scope.cinema                      # the ElixirScope running in this project's app
      mix scope.cinema run.esrec --port 4050 --ip 0.0.0.0   # prints a URL with ?token=

  Options: `--port` (default 4040), `--ip` (default 127.0.0.1; another address
  gets a token), `--token`, `--no-wait` (start and return, for scripts/tests).
  """
  use Mix.Task

  @switches [port: :integer, ip: :string, token: :string, wait: :boolean]

  @impl true
  def run(argv) do
    {opts, args, invalid} = OptionParser.parse(argv, strict: @switches)
    if invalid != [], do: Mix.raise("scope.cinema: unknown option(s) #{inspect(invalid)}")

    source =
      case args do
        [file] ->
          Mix.Task.run("app.config")
          {:ok, _} = Application.ensure_all_started(:elixir_scope)
          {source, _release} = Mix.Tasks.Scope.Export.source!(file)
          source

        [] ->
          Mix.Task.run("app.start")
          unless ElixirScope.running?(), do: Mix.shell().info("scope.cinema: ElixirScope is not running yet; the page fills in when it records")
          :live

        _ ->
          Mix.raise("usage: mix scope.cinema [RECORDING] [--port N] [--ip ADDR] [--token T]")
      end

    web_opts = [port: Keyword.get(opts, :port, 4040), source: source] ++ Keyword.take(opts, [:ip, :token])

    case ElixirScope.Web.start(web_opts) do
      {:ok, info} ->
        Mix.shell().info("ElixirScope cinema: #{info.url}")
        if Keyword.get(opts, :wait, true), do: Process.sleep(:infinity)
        info

      {:error, message} ->
        hint = if message =~ "already in use", do: "; choose another with --port N (--port 0 picks a free one)", else: ""
        Mix.raise("scope.cinema: #{message}#{hint}")
    end
  end
end
