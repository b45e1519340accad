defmodule ElixirScope.Capture.SwitchLoader do
  @settle_ms 2_000
  @busy_retry_ms 250
  @quiet_run_queue 2

  @moduledoc """
  Loads the shapes of `ElixirScope.Capture.Switch` (see its moduledoc) and keeps
  the loaded one in line with the switch: `:dynamic` while capture is on or was
  switched off less than #{@settle_ms} ms ago, `:off` once it has stayed off that long and the node is not busy
  (at most #{@quiet_run_queue} runnable processes per scheduler; looked at again every #{@busy_retry_ms} ms).

  Switching never waits for a load: `ElixirScope.Capture.Control` writes the
  mode word that the `:dynamic` shape reads. Loads happen here, in a
  high-priority process, and only when the previous version of the module has
  been purged (a soft purge, retried in the background: a process that is
  inside the old code is never killed). The one case where a switch waits is
  `enable/1` while the `:off` shape is loaded: the `:dynamic` shape must be
  loaded first, which is immediate unless the `:off` shape was itself loaded so
  recently that the version before it is still in use. Loading `:off` only on a
  quiet node keeps that window to a few time slices.

  Loads use `:erlang.load_module/2` and purges `:erts_code_purger` (a
  high-priority system process) directly: going through the code server (a
  normal-priority process) would put the switch behind every runnable process.
  """
  use GenServer

  alias ElixirScope.Capture.Control

  @switch ElixirScope.Capture.Switch

  # Both shapes are compiled once, when this module is.
  @shapes (for {shape, body} <- [
                 off: ~c"'on?'(_) -> false.",
                 dynamic: ~c"""
                 'on?'(M) ->
                     case 'Elixir.ElixirScope.NIF':switch_mode() of
                         1 -> true;
                         2 -> not is_map_key(M, persistent_term:get({'Elixir.ElixirScope.Capture.Switch', off}, \#{}));
                         _ -> false
                     end.
                 """
               ],
               into: %{} do
             source = [
               ~c"-module('Elixir.ElixirScope.Capture.Switch').",
               ~c"-export(['on?'/1]).",
               ~c"-shape(#{shape}).",
               body
             ]

             forms =
               for form <- source do
                 {:ok, tokens, _} = :erl_scan.string(form)
                 {:ok, parsed} = :erl_parse.parse_form(tokens)
                 parsed
               end

             {:ok, _, binary} = :compile.forms(forms, [:binary, :return_errors])
             {shape, binary}
           end)

  @doc false
  @spec start_link(term()) :: GenServer.on_start()
  def start_link(_), do: GenServer.start_link(__MODULE__, [], name: __MODULE__)

  @doc "The shape of `ElixirScope.Capture.Switch` loaded now."
  @spec shape() :: :off | :dynamic
  def shape do
    [shape] = Keyword.fetch!(@switch.module_info(:attributes), :shape)
    shape
  end

  @doc "Tells the loader that the switch changed (no-op when it is not running)."
  @spec changed() :: :ok
  def changed do
    if pid = Process.whereis(__MODULE__), do: send(pid, :converge)
    :ok
  end

  @doc "Makes sure the `:dynamic` shape is loaded (waiting at most `timeout` ms for a purge)."
  @spec ensure_dynamic(timeout()) :: :ok
  def ensure_dynamic(timeout \\ 5_000) do
    cond do
      shape() == :dynamic -> :ok
      pid = Process.whereis(__MODULE__) -> call(pid, timeout)
      true -> load_now(:dynamic, timeout)
    end
  end

  @doc """
  Loads `shape` from the calling process, after waiting up to `wait_ms` for the
  previous version to be purged. Returns `:ok`, or `{:error, :not_purged}`.
  """
  @spec load_now(:off | :dynamic, non_neg_integer()) :: :ok | {:error, :not_purged}
  def load_now(shape, wait_ms) do
    cond do
      shape() == shape -> :ok
      purged?(System.monotonic_time(:millisecond) + wait_ms) -> load(shape)
      true -> {:error, :not_purged}
    end
  end

  @impl true
  def init(_) do
    Process.flag(:priority, :high)
    send(self(), :purge)
    send(self(), :converge)
    {:ok, %{settle: nil}}
  end

  @impl true
  def handle_call(:ensure_dynamic, _from, state) do
    {:reply, load_now(:dynamic, 60_000), state}
  end

  @impl true
  def handle_info(:converge, state), do: {:noreply, converge(state)}

  def handle_info(:settled, state), do: {:noreply, converge(%{state | settle: nil})}

  def handle_info(:purge, state) do
    unless purged?(System.monotonic_time(:millisecond)), do: Process.send_after(self(), :purge, 50)
    {:noreply, state}
  end

  def handle_info(_msg, state), do: {:noreply, state}

  defp converge(state) do
    case {Control.off_for_ms(), shape()} do
      {nil, :off} ->
        load_now(:dynamic, 60_000)
        state

      {off_ms, :dynamic} when is_integer(off_ms) and off_ms < @settle_ms ->
        if state.settle, do: state, else: %{state | settle: Process.send_after(self(), :settled, @settle_ms - off_ms)}

      {off_ms, :dynamic} when is_integer(off_ms) ->
        if quiet?() and purged?(System.monotonic_time(:millisecond) + 60_000) do
          # under the switch lock: an enable/1 cannot slip in between the check and the load
          Control.while_off(fn -> load(:off) end)
          # purged now, while the node is quiet, so that an enable/1 finds nothing to wait for
          purged?(System.monotonic_time(:millisecond) + 1_000)
          state
        else
          # busy: look again later (state.settle is nil here: this runs on :settled or :converge
          # after the settling time)
          %{state | settle: state.settle || Process.send_after(self(), :settled, @busy_retry_ms)}
        end

      _ ->
        state
    end
  end

  # Loading a shape leaves the one it replaced as old code, and the next load (an enable/1 after
  # the constant shape) must wait until it is purged. A purge asks every process to check its
  # own stack, so on a busy node it waits for a whole round of the run queue (~0.4 s with 1,000
  # busy processes). So the constant shape is loaded, and its predecessor purged, only when few
  # processes are runnable; a busy node keeps the dynamic shape.
  defp quiet? do
    :erlang.statistics(:total_run_queue_lengths_all) <= @quiet_run_queue * :erlang.system_info(:schedulers_online)
  end

  defp call(pid, timeout) do
    GenServer.call(pid, :ensure_dynamic, timeout)
  catch
    :exit, _ -> :ok
  end

  defp load(shape) do
    case :erlang.load_module(@switch, Map.fetch!(@shapes, shape)) do
      {:module, @switch} ->
        # the version just replaced is purged in the background, so that the next load is immediate
        if pid = Process.whereis(__MODULE__), do: send(pid, :purge)
        :ok

      {:error, :not_purged} ->
        {:error, :not_purged}
    end
  end

  defp retry_purge(deadline) do
    Process.sleep(10)
    purged?(deadline)
  end

  # True once no old version of the switch is left (soft purges only, until the deadline).
  defp purged?(deadline) do
    cond do
      not :erlang.check_old_code(@switch) -> true
      :erts_code_purger.soft_purge(@switch) -> true
      System.monotonic_time(:millisecond) >= deadline -> false
      true -> retry_purge(deadline)
    end
  end
end
