defmodule ElixirScope.TestRecorder do
  @moduledoc """
  An ExUnit formatter (used by `mix scope.test`) that marks each test's start and end in the
  recording and saves the events of each failing test to a recording file.

  A test's events are those recorded from the end of the test before it (or the start of the
  suite) to its end, in every process (a test's GenServers and Tasks run in other processes): the
  formatter hears of a test's start by a message that may arrive after the test began, so that
  moment cannot bound it. The bounds are event ids (the ring's order of pushes), not timestamps:
  two processes on two cores may read the clock in one order and push in the other. With
  `async: true` tests that overlap in time, their events are in each other's recordings too.
  """
  use GenServer

  alias ElixirScope.Capture.InstrumentationRuntime
  alias ElixirScope.Recording

  @impl true
  def init(_opts) do
    # ExUnit casts test_finished(A), then test_started(B), then runs B: at high priority this
    # process handles both before B's normal-priority process gets a scheduler, so that the
    # boundary it takes on test_finished(A) precedes B's first event (at normal priority it
    # could come after them, and a failing test's recording then missed its own calls)
    Process.flag(:priority, :high)
    dir = Application.get_env(:elixir_scope, :test_recordings_dir, Path.expand("_build/scope/tests"))
    {:ok, %{dir: dir, started: %{}, saved: [], boundary: last_id()}}
  end

  @impl true
  def handle_cast({:test_started, %ExUnit.Test{} = test}, state) do
    InstrumentationRuntime.report_custom(:test_started, describe(test))
    {:noreply, put_in(state.started[{test.module, test.name}], state.boundary)}
  end

  def handle_cast({:test_finished, %ExUnit.Test{} = test}, state) do
    InstrumentationRuntime.report_custom(:test_finished, Map.put(describe(test), :result, result(test)))
    {since, started} = Map.pop(state.started, {test.module, test.name})

    state =
      case test.state do
        {:failed, _} when is_integer(since) -> %{state | saved: [save(state.dir, test, since) | state.saved]}
        _ -> state
      end

    {:noreply, %{state | started: started, boundary: last_id()}}
  end

  def handle_cast({:suite_finished, _times}, state) do
    print(Enum.reverse(state.saved))
    {:noreply, state}
  end

  def handle_cast(_event, state), do: {:noreply, state}

  defp describe(test) do
    %{module: test.module, name: to_string(test.name), file: test.tags[:file], line: test.tags[:line]}
  end

  defp result(%{state: nil}), do: :passed
  defp result(%{state: {:failed, _}}), do: :failed
  defp result(%{state: {:skipped, _}}), do: :skipped
  defp result(%{state: {:excluded, _}}), do: :excluded
  defp result(%{state: {:invalid, _}}), do: :invalid

  defp save(dir, test, since) do
    ElixirScope.flush()
    path = Path.join(dir, file_name(test))

    outcome =
      case Recording.save(path, after_id: since, before_id: last_id() + 1) do
        {:ok, %{events: n}} -> {:ok, n}
        {:error, reason} -> {:error, reason}
      end

    {test, path, outcome}
  end

  # the id of the last event pushed into the ring (the next gets a greater one); 0 when not running
  defp last_id do
    case ElixirScope.Capture.Session.info() do
      %{session: s} -> ElixirScope.NIF.stats(s).pushed
      nil -> 0
    end
  end

  defp file_name(test) do
    slug = test.name |> to_string() |> String.replace(~r/[^A-Za-z0-9_.-]+/, "_") |> String.slice(0, 120)
    "#{inspect(test.module)}.#{slug}.esrec"
  end

  defp print([]), do: :ok

  defp print(saved) do
    IO.puts("\nElixirScope recordings of the failing tests:")

    for {test, path, outcome} <- saved do
      rel = Path.relative_to_cwd(path)
      where = "#{Path.relative_to_cwd(to_string(test.tags[:file]))}:#{test.tags[:line]}"

      case outcome do
        {:ok, n} ->
          IO.puts("""
            #{test.name} (#{where}): #{n} events
              iex -S mix scope.open #{rel}     # then: import ElixirScope.IEx; history(…), tree(…)
              mix scope.cinema #{rel}          # the timeline in a browser
          """)

        {:error, reason} ->
          IO.puts("  #{test.name} (#{where}): the recording could not be saved: #{reason}")
      end
    end
  end
end
