defmodule ElixirScope.Fuzz.Peer do
  @moduledoc """
  A child VM (an OTP `:peer` over its standard input and output, no
  distribution) with this project's code paths, the fuzzer's child module
  loaded and its `init` calls made (again after every restart). A call that does not come back within its bound is a hang; a call
  whose VM goes away is a crash. Either way the child is killed (by its OS
  pid, which this module started) and a fresh one started for what follows.
  """

  defstruct [:peer, :os_pid, :modules, :init]

  @type t :: %__MODULE__{peer: pid(), os_pid: String.t(), modules: [{module(), binary()}], init: [{module(), atom(), list()}]}

  @doc "Starts a child VM, loads `modules` (`[{module, object code}]`) into it and makes the `init` calls."
  @spec start([{module(), binary()}], [{module(), atom(), list()}]) :: t()
  def start(modules, init \\ []) do
    paths = Enum.flat_map(:code.get_path(), &[~c"-pa", &1])
    {:ok, peer, _node} = :peer.start(%{connection: :standard_io, args: paths, wait_boot: 60_000})
    {:ok, _} = :peer.call(peer, :application, :ensure_all_started, [:elixir], 30_000)
    for {m, bin} <- modules, do: {:module, ^m} = :peer.call(peer, :code, :load_binary, [m, ~c"#{m}.beam", bin], 30_000)
    os_pid = :peer.call(peer, :os, :getpid, [], 10_000)
    for {m, f, a} <- init, do: :ok = :peer.call(peer, m, f, a, 120_000)
    %__MODULE__{peer: peer, os_pid: to_string(os_pid), modules: modules, init: init}
  end

  @doc """
  Calls `m.f(args)` in the child: `{:ok, result, child}`, or `{:crash, why, child}`
  / `{:hang, child}` with `child` a fresh VM.
  """
  @spec call(t(), module(), atom(), list(), timeout()) ::
          {:ok, term(), t()} | {:crash, term(), t()} | {:hang, t()}
  def call(%__MODULE__{} = child, m, f, args, timeout) do
    {:ok, :peer.call(child.peer, m, f, args, timeout), child}
  catch
    :exit, {:timeout, _} ->
      {:hang, restart(child)}

    :exit, reason ->
      {:crash, reason, restart(child)}

    kind, reason ->
      {:crash, {kind, reason}, restart(child)}
  end

  @doc "Stops the child (kills it if it does not stop)."
  @spec stop(t()) :: :ok
  def stop(%__MODULE__{peer: peer, os_pid: os_pid}) do
    # a wedged VM does not read its stdin closing: kill it by the pid it reported
    _ = System.cmd("kill", ["-9", os_pid], stderr_to_stdout: true)

    try do
      :peer.stop(peer)
    catch
      _, _ -> :ok
    end

    :ok
  end

  @doc "A fresh child VM in place of this one."
  @spec restart(t()) :: t()
  def restart(child) do
    stop(child)
    start(child.modules, child.init)
  end
end
