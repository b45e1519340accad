defmodule Fidelity.Door do
  @moduledoc "A code lock as a :gen_statem in state_functions mode (the OTP manual's example)."
  @behaviour :gen_statem

  def start(code), do: :gen_statem.start(__MODULE__, code, [])
  def press(pid, digit), do: :gen_statem.call(pid, {:button, digit})
  def close(pid), do: :gen_statem.call(pid, :close)
  def state(pid), do: :gen_statem.call(pid, :get_state)
  def stop(pid), do: :gen_statem.stop(pid)

  @impl true
  def callback_mode, do: :state_functions

  @impl true
  def init(code) when is_list(code), do: {:ok, :locked, %{code: code, input: [], opened: 0}}
  def init(_), do: {:stop, :bad_code}

  def locked({:call, from}, {:button, digit}, %{code: code, input: input} = data) do
    input = input ++ [digit]

    cond do
      input == code ->
        {:next_state, :open, %{data | input: [], opened: data.opened + 1},
         [{:reply, from, :opened}]}

      List.starts_with?(code, input) ->
        {:keep_state, %{data | input: input}, [{:reply, from, :more}]}

      true ->
        {:keep_state, %{data | input: []}, [{:reply, from, :wrong}]}
    end
  end

  def locked({:call, from}, :close, _data),
    do: {:keep_state_and_data, [{:reply, from, :already_locked}]}

  def locked(type, msg, data), do: common(type, msg, data, :locked)

  def open({:call, from}, :close, data),
    do: {:next_state, :locked, data, [{:reply, from, :closed}]}

  def open({:call, from}, {:button, _}, _data),
    do: {:keep_state_and_data, [{:reply, from, :ignored}]}

  def open(type, msg, data), do: common(type, msg, data, :open)

  defp common({:call, from}, :get_state, data, state),
    do: {:keep_state_and_data, [{:reply, from, {state, data.opened}}]}

  defp common({:call, from}, other, _data, _state),
    do: {:keep_state_and_data, [{:reply, from, {:unknown, other}}]}

  defp common(_type, _msg, _data, _state), do: :keep_state_and_data

  @doc "Runs a script of presses and closes; returns the replies and the final state."
  def run(code, script) do
    {:ok, pid} = start(code)

    try do
      replies =
        Enum.map(script, fn
          :close -> close(pid)
          d -> press(pid, d)
        end)

      {replies, state(pid)}
    after
      stop(pid)
    end
  end
end

defmodule Fidelity.Thermostat do
  @moduledoc "A :gen_statem in handle_event_function mode with state enter calls and timeouts."
  @behaviour :gen_statem

  @impl true
  def callback_mode, do: [:handle_event_function, :state_enter]

  @impl true
  def init(target), do: {:ok, :idle, %{target: target, temp: target, log: []}}

  @impl true
  def handle_event(:enter, old, new, data),
    do: {:keep_state, %{data | log: [{old, new} | data.log]}}

  def handle_event({:call, from}, {:reading, t}, state, %{target: target} = data) do
    next =
      cond do
        t < target - 1 -> :heating
        t > target + 1 -> :cooling
        true -> :idle
      end

    data = %{data | temp: t}

    if next == state,
      do: {:keep_state, data, [{:reply, from, state}]},
      else: {:next_state, next, data, [{:reply, from, next}]}
  end

  def handle_event({:call, from}, {:target, t}, _state, data) when is_integer(t),
    do: {:keep_state, %{data | target: t}, [{:reply, from, :ok}]}

  def handle_event({:call, from}, :report, state, data),
    do: {:keep_state_and_data, [{:reply, from, {state, data.temp, Enum.reverse(data.log)}}]}

  def handle_event({:call, _from}, :boom, _state, _data),
    do: raise(ArgumentError, "thermostat exploded")

  @doc "Sends the readings; a crash of the machine ends the run with its exit reason."
  def run(target, readings) do
    {:ok, pid} = :gen_statem.start(__MODULE__, target, [])
    ref = Process.monitor(pid)
    replies = Enum.map(readings ++ [:report], &call(pid, ref, &1))
    if Process.alive?(pid), do: :gen_statem.stop(pid)
    Process.demonitor(ref, [:flush])
    replies
  end

  defp call(pid, ref, msg) do
    :gen_statem.call(pid, msg)
  catch
    :exit, {:noproc, _} ->
      :down

    :exit, {reason, _call} ->
      receive do
        {:DOWN, ^ref, :process, ^pid, _} -> {:crashed, reason}
      end
  end
end
