defmodule Fidelity.EventLog do
  @moduledoc "A :gen_event handler that keeps the last events per level (a logger backend's shape)."
  @behaviour :gen_event

  @impl true
  def init(max) when is_integer(max) and max > 0, do: {:ok, %{max: max, events: %{}, dropped: 0}}

  @impl true
  def handle_event({level, msg}, %{max: max, events: events} = state)
      when level in [:info, :warn, :error] do
    list = Map.get(events, level, [])

    if length(list) >= max,
      do:
        {:ok,
         %{
           state
           | events: Map.put(events, level, [msg | Enum.take(list, max - 1)]),
             dropped: state.dropped + 1
         }},
      else: {:ok, %{state | events: Map.put(events, level, [msg | list])}}
  end

  def handle_event(_other, state), do: {:ok, state}

  @impl true
  def handle_call(:dump, state), do: {:ok, {state.events, state.dropped}, state}
  def handle_call({:max, max}, state), do: {:ok, :ok, %{state | max: max}}

  @impl true
  def handle_info(_msg, state), do: {:ok, state}

  def run(max, events) do
    {:ok, mgr} = :gen_event.start()

    try do
      :ok = :gen_event.add_handler(mgr, __MODULE__, max)
      Enum.each(events, &:gen_event.sync_notify(mgr, &1))
      :gen_event.call(mgr, __MODULE__, :dump)
    after
      :gen_event.stop(mgr)
    end
  end
end
