defmodule Mix.Tasks.Scope.Export do
  @shortdoc "Exports a recording as a Perfetto/Chrome trace or as OTLP spans"
  @moduledoc """
  Exports recorded events.

      mix scope.export --format perfetto trace.json            # open in ui.perfetto.dev
      mix scope.export --format otlp spans.json                # OTLP/JSON to a file
      mix scope.export --format otlp --url http://127.0.0.1:4318/v1/traces

  Options:
  - `--format perfetto|otlp` (required)
  - `--input FILE` a saved recording (`ElixirScope.Recording`); without it the
    running ElixirScope of this VM is read (the task is then run from code or IEx
    via `Mix.Tasks.Scope.Export.run/1`)
  - `--url URL` (otlp) POST to a collector instead of writing a file
  - `--service NAME` (otlp) the `service.name` resource attribute
  - `--module Mod`, `--pid "<0.1.0>"` export only these events
  """
  use Mix.Task

  alias ElixirScope.Export
  alias ElixirScope.Export.{OTLP, Perfetto}
  alias ElixirScope.Web.Source

  @switches [format: :string, input: :string, url: :string, service: :string, module: :string, pid: :string]

  @impl true
  def run(argv) do
    {opts, args, invalid} = OptionParser.parse(argv, strict: @switches)
    if invalid != [], do: Mix.raise("scope.export: unknown option(s) #{inspect(invalid)}")
    Mix.Task.run("app.config")
    {:ok, _} = Application.ensure_all_started(:elixir_scope)

    format = opts[:format] || Mix.raise("scope.export: --format perfetto|otlp is required")
    {source, release} = source!(opts[:input])

    try do
      events =
        case Export.events(source, filters(source, opts)) do
          {:error, msg} -> Mix.raise("scope.export: #{msg}")
          events -> events
        end

      if events == [], do: Mix.shell().info("scope.export: no events to export")
      result = export(format, events, args, opts, source)

      case result do
        {:ok, n, where} -> Mix.shell().info("scope.export: #{n} #{unit(format)} from #{length(events)} events -> #{where}")
        {:error, msg} -> Mix.raise("scope.export: #{msg}")
      end
    after
      release.()
    end
  end

  defp unit("perfetto"), do: "trace events"
  defp unit(_), do: "spans"

  defp export("perfetto", events, [file], _opts, source) do
    with {:ok, n} <- Perfetto.write(events, file, names: Export.names(source)), do: {:ok, n, file}
  end

  defp export("otlp", events, args, opts, source) do
    otlp_opts = [service_name: opts[:service] || "elixir_scope", clock: clock(source)]

    case {opts[:url], args} do
      {url, []} when is_binary(url) -> with {:ok, n} <- OTLP.post(events, url, otlp_opts), do: {:ok, n, url}
      {nil, [file]} -> with {:ok, n} <- OTLP.write(events, file, otlp_opts), do: {:ok, n, file}
      _ -> {:error, "otlp: give either an output FILE or --url URL"}
    end
  end

  defp export("perfetto", _events, _args, _opts, _source), do: {:error, "perfetto: give one output FILE"}
  defp export(other, _, _, _, _), do: {:error, "unknown format #{inspect(other)} (perfetto or otlp)"}

  defp clock(:live) do
    case ElixirScope.Capture.Session.info() do
      %{clock: clock} -> clock
      _ -> nil
    end
  end

  defp clock(source), do: Source.meta(source)[:clock]

  defp filters(source, opts) do
    Enum.flat_map(opts, fn
      {:module, m} -> [module: Module.concat([m])]
      {:pid, p} -> [pid: ElixirScope.Web.Data.parse_pid(source, p) || Mix.raise("scope.export: unknown pid #{p}")]
      _ -> []
    end)
  end

  @doc false
  # {source, release_fun}: a recording when --input is given, else the running store
  @spec source!(String.t() | nil) :: {Source.t(), (-> :ok)}
  def source!(nil) do
    if ElixirScope.running?(),
      do: {:live, fn -> :ok end},
      else: Mix.raise("no recording given (--input FILE / FILE) and no ElixirScope running in this VM")
  end

  def source!(path) do
    case Source.load_recording(path) do
      {:ok, source} -> {source, fn -> Source.release(source) end}
      {:error, msg} -> Mix.raise(msg)
    end
  end
end
