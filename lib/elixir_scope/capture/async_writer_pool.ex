defmodule ElixirScope.Capture.AsyncWriterPool do
  @moduledoc """
  Workers that drain the ring buffer into the event store in batches
  (`capture: [batch_size:, flush_interval:, writers:]`). Each worker wakes every
  `flush_interval` ms and drains until the ring is empty. A crashed worker is
  restarted by the pool's supervisor; the events wait in the ring meanwhile.
  A drain is one dirty NIF call that moves a batch from the ring into the store,
  and a process cannot be killed in the middle of a NIF call, so killing a
  writer never loses the batch it was moving. Drains are serialised natively,
  so several workers never reorder events.
  """
  use Supervisor

  @doc false
  @spec start_link(keyword()) :: Supervisor.on_start()
  def start_link(opts), do: Supervisor.start_link(__MODULE__, opts, name: __MODULE__)

  @impl true
  def init(opts) do
    writers = Keyword.fetch!(opts, :writers)

    children =
      for i <- 1..writers do
        Supervisor.child_spec({ElixirScope.Capture.AsyncWriter, Keyword.put(opts, :index, i)}, id: {:writer, i})
      end

    Supervisor.init(children, strategy: :one_for_one, max_restarts: 100, max_seconds: 5)
  end

  @doc "The pids of the running writers (none while the pool is being restarted)."
  @spec writers() :: [pid()]
  def writers do
    for {_, pid, _, _} <- Supervisor.which_children(__MODULE__), is_pid(pid), do: pid
  catch
    :exit, _ -> []
  end
end

defmodule ElixirScope.Capture.AsyncWriter do
  @moduledoc "One writer of `ElixirScope.Capture.AsyncWriterPool`: a timer-driven drain loop."
  use GenServer

  alias ElixirScope.Capture.RingBuffer

  @doc false
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts), do: GenServer.start_link(__MODULE__, opts)

  @impl true
  def init(opts) do
    # Above the producers: with every scheduler busy running instrumented code, a writer at normal
    # priority waits behind all of it and the ring overflows (its drain itself runs dirty).
    Process.flag(:priority, :high)

    state = %{
      session: Keyword.fetch!(opts, :session),
      batch_size: Keyword.fetch!(opts, :batch_size),
      interval: Keyword.fetch!(opts, :flush_interval),
      drained: 0
    }

    # stagger the writers so they do not all wake at once
    Process.send_after(self(), :drain, Keyword.get(opts, :index, 1))
    {:ok, state}
  end

  @impl true
  def handle_info(:drain, state) do
    n = RingBuffer.drain_all(state.session, state.batch_size, 100)
    Process.send_after(self(), :drain, state.interval)
    {:noreply, %{state | drained: state.drained + n}}
  end

  @impl true
  def handle_call(:drained, _from, state), do: {:reply, state.drained, state}
end
