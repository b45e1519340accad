defmodule Fidelity.Spawns do
  @moduledoc "Processes started in each way the transformer records as a spawn: what the caller sees."

  def double(x), do: x * 2

  def reply_to(parent, x), do: send(parent, {self(), double(x)})

  def async_all(xs), do: xs |> Enum.map(fn x -> Task.async(fn -> double(x) end) end) |> Enum.map(&Task.await/1)

  def async_mfa(x), do: Task.async(__MODULE__, :double, [x]) |> Task.await()

  # in tail position: the %Task{} itself is the value
  def task(x), do: Task.async(fn -> double(x) end)

  def echo(x) do
    me = self()
    pid = spawn(fn -> send(me, {:echo, self(), x}) end)

    receive do
      {:echo, ^pid, v} -> v
    end
  end

  def linked(x) do
    pid = spawn_link(__MODULE__, :reply_to, [self(), x])

    receive do
      {^pid, v} -> v
    end
  end

  def monitored(x) do
    {pid, ref} = spawn_monitor(fn -> exit({:done, x}) end)

    receive do
      {:DOWN, ^ref, :process, ^pid, reason} -> reason
    end
  end

  def process_spawn(x) do
    {pid, ref} = Process.spawn(fn -> x end, [:monitor])

    receive do
      {:DOWN, ^ref, :process, ^pid, reason} -> {reason, x}
    end
  end

  def erlang_spawn(x) do
    pid = :erlang.spawn(__MODULE__, :reply_to, [self(), x])

    receive do
      {^pid, v} -> v
    end
  end

  def started(x) do
    me = self()
    {:ok, pid} = Task.start(fn -> send(me, {:started, self(), double(x)}) end)

    receive do
      {:started, ^pid, v} -> v
    end
  end

  def node_spawn(x) do
    me = self()
    pid = Node.spawn(node(), fn -> send(me, {:node, self(), x}) end)

    receive do
      {:node, ^pid, v} -> {node(pid) == node(), v}
    end
  end

  def supervised(x) do
    {:ok, sup} = Task.Supervisor.start_link()
    v = sup |> Task.Supervisor.async(fn -> double(x) end) |> Task.await()
    {:ok, child} = Task.Supervisor.start_child(sup, fn -> :ok end)
    Supervisor.stop(sup)
    {v, is_pid(child)}
  end

  def stream(xs), do: xs |> Task.async_stream(&double/1) |> Enum.to_list()
end
