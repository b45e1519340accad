defmodule Fidelity.MiniStage do
  @moduledoc """
  Just enough of GenStage to run stage-shaped modules: a GenServer that holds a callback
  module's state, asks it for events on demand (`handle_demand/2`), pushes events through it
  (`handle_events/3`) and forwards calls and messages (`handle_call/3`, `handle_info/2`).
  Callbacks return `{:noreply, events, state}` or `{:reply, reply, events, state}`.
  """
  use GenServer

  def start_link(mod, arg), do: GenServer.start_link(__MODULE__, {mod, arg})
  def demand(stage, n), do: GenServer.call(stage, {:"$demand", n})
  def push(stage, events), do: GenServer.call(stage, {:"$events", events})
  def call(stage, msg), do: GenServer.call(stage, msg)
  def take_output(stage), do: GenServer.call(stage, :"$output")

  @impl true
  def init({mod, arg}) do
    case mod.init(arg) do
      {type, state} when type in [:producer, :consumer, :producer_consumer] ->
        {:ok, %{mod: mod, type: type, state: state, out: []}}

      {:stop, reason} ->
        {:stop, reason}
    end
  end

  @impl true
  def handle_call({:"$demand", n}, _from, %{mod: mod, state: st} = s) do
    {:noreply, events, st} = mod.handle_demand(n, st)
    {:reply, length(events), emit(%{s | state: st}, events)}
  end

  def handle_call({:"$events", events}, from, %{mod: mod, state: st} = s) do
    {:noreply, out, st} = mod.handle_events(events, from, st)
    {:reply, length(out), emit(%{s | state: st}, out)}
  end

  def handle_call(:"$output", _from, s), do: {:reply, Enum.reverse(s.out), %{s | out: []}}

  def handle_call(msg, from, %{mod: mod, state: st} = s) do
    case mod.handle_call(msg, from, st) do
      {:reply, reply, events, st} -> {:reply, reply, emit(%{s | state: st}, events)}
      {:noreply, events, st} -> {:reply, :noreply, emit(%{s | state: st}, events)}
      {:stop, reason, reply, st} -> {:stop, reason, reply, %{s | state: st}}
    end
  end

  @impl true
  def handle_info(msg, %{mod: mod, state: st} = s) do
    {:noreply, events, st} = mod.handle_info(msg, st)
    {:noreply, emit(%{s | state: st}, events)}
  end

  defp emit(s, events), do: %{s | out: Enum.reverse(events, s.out)}
end

defmodule Fidelity.Counter do
  @moduledoc "A GenStage-shaped producer of consecutive integers."

  def init(start) when is_integer(start), do: {:producer, %{next: start, paused: false}}
  def init(other), do: {:stop, {:bad_start, other}}

  def handle_demand(_demand, %{paused: true} = state), do: {:noreply, [], state}

  def handle_demand(demand, %{next: next} = state) when demand > 0 do
    events = Enum.to_list(next..(next + demand - 1))
    {:noreply, events, %{state | next: next + demand}}
  end

  def handle_call(:pause, _from, state), do: {:reply, :ok, [], %{state | paused: true}}
  def handle_call(:resume, _from, state), do: {:reply, :ok, [], %{state | paused: false}}
  def handle_call(:peek, _from, state), do: {:reply, state.next, [], state}

  def handle_call({:skip, n}, _from, state) when n >= 0,
    do: {:reply, :ok, [], %{state | next: state.next + n}}

  def handle_call(:crash, _from, state), do: {:stop, :crashed, :bye, state}

  def handle_info({:inject, events}, state) when is_list(events), do: {:noreply, events, state}
  def handle_info(_other, state), do: {:noreply, [], state}
end

defmodule Fidelity.Batcher do
  @moduledoc "A GenStage-shaped producer_consumer that batches and transforms events."

  def init(opts),
    do: {:producer_consumer, %{size: Keyword.get(opts, :size, 3), pending: [], seen: 0}}

  def handle_events(events, _from, %{size: size, pending: pending, seen: seen} = state) do
    all = pending ++ Enum.map(events, &transform/1)
    {batches, rest} = split(all, size, [])
    {:noreply, batches, %{state | pending: rest, seen: seen + length(events)}}
  end

  def handle_call(:flush, _from, %{pending: []} = state), do: {:reply, 0, [], state}

  def handle_call(:flush, _from, %{pending: p} = state),
    do: {:reply, length(p), [p], %{state | pending: []}}

  def handle_call(:stats, _from, state), do: {:reply, Map.take(state, [:seen, :size]), [], state}

  def handle_info(:tick, state), do: {:noreply, [], state}

  defp transform(n) when is_integer(n) and rem(n, 15) == 0, do: :fizzbuzz
  defp transform(n) when is_integer(n) and rem(n, 5) == 0, do: :buzz
  defp transform(n) when is_integer(n) and rem(n, 3) == 0, do: :fizz
  defp transform(other), do: other

  defp split(events, size, acc) when length(events) >= size do
    {batch, rest} = Enum.split(events, size)
    split(rest, size, [batch | acc])
  end

  defp split(events, _size, acc), do: {Enum.reverse(acc), events}
end

defmodule Fidelity.Pipeline do
  @moduledoc "Runs a producer into a batcher for a script of steps; returns what came out."
  alias Fidelity.MiniStage

  def run(start, script) do
    Process.flag(:trap_exit, true)
    {:ok, producer} = MiniStage.start_link(Fidelity.Counter, start)
    {:ok, batcher} = MiniStage.start_link(Fidelity.Batcher, size: 3)

    try do
      result = Enum.map(script, &step(&1, producer, batcher))
      {result, MiniStage.call(batcher, :stats)}
    after
      # unlinked first (an exit message that came before is dropped), so that no exit message
      # is left in the caller's mailbox
      for pid <- [producer, batcher] do
        Process.unlink(pid)

        receive do
          {:EXIT, ^pid, _} -> :ok
        after
          0 -> :ok
        end

        if Process.alive?(pid), do: GenServer.stop(pid)
      end

      Process.flag(:trap_exit, false)
    end
  end

  defp step({:demand, n}, producer, batcher) do
    MiniStage.demand(producer, n)
    out = MiniStage.take_output(producer)
    MiniStage.push(batcher, out)
    {:batches, MiniStage.take_output(batcher)}
  end

  defp step({:inject, events}, producer, _batcher) do
    send(producer, {:inject, events})
    {:injected, MiniStage.take_output(producer)}
  end

  defp step(:flush, _producer, batcher) do
    MiniStage.call(batcher, :flush)
    {:flushed, MiniStage.take_output(batcher)}
  end

  # the producer replies, then stops: wait for its exit so later steps see it gone
  defp step(:crash, producer, _batcher) do
    reply = MiniStage.call(producer, :crash)

    receive do
      {:EXIT, ^producer, reason} -> {:crash, reply, reason}
    end
  end

  defp step(msg, producer, _batcher), do: {msg, MiniStage.call(producer, msg)}
end
