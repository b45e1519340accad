defmodule Demo.Ledger do
  @moduledoc """
  A bank ledger: a GenServer whose state (balances and a journal of postings) changes on every call.
  """
  use GenServer

  alias Demo.Posting

  @type account :: String.t()

  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts), do: GenServer.start_link(__MODULE__, :ok, opts)

  @doc "Opens an account with an initial deposit."
  @spec open(GenServer.server(), account(), non_neg_integer()) :: :ok | {:error, :exists}
  def open(ledger \\ __MODULE__, account, amount),
    do: GenServer.call(ledger, {:open, account, amount})

  @spec deposit(GenServer.server(), account(), pos_integer()) ::
          {:ok, integer()} | {:error, atom()}
  def deposit(ledger \\ __MODULE__, account, amount),
    do: GenServer.call(ledger, {:deposit, account, amount})

  @spec withdraw(GenServer.server(), account(), pos_integer()) ::
          {:ok, integer()} | {:error, atom()}
  def withdraw(ledger \\ __MODULE__, account, amount),
    do: GenServer.call(ledger, {:withdraw, account, amount})

  @spec transfer(GenServer.server(), account(), account(), pos_integer()) ::
          :ok | {:error, atom()}
  def transfer(ledger \\ __MODULE__, from, to, amount),
    do: GenServer.call(ledger, {:transfer, from, to, amount})

  @spec balances(GenServer.server()) :: %{account() => integer()}
  @doc """
  A transfer that the risk scorer approves first: the ledger asks `Demo.RiskScorer` (another
  GenServer) while it handles the caller's request, so one request crosses three processes.
  """
  @spec checked_transfer(GenServer.server(), String.t(), String.t(), pos_integer()) ::
          :ok | {:error, term()}
  def checked_transfer(ledger \\ __MODULE__, from, to, amount),
    do: GenServer.call(ledger, {:checked_transfer, from, to, amount})

  def balances(ledger \\ __MODULE__), do: GenServer.call(ledger, :balances)

  @spec journal(GenServer.server()) :: [Posting.t()]
  def journal(ledger \\ __MODULE__), do: GenServer.call(ledger, :journal)

  @impl true
  def init(:ok), do: {:ok, %{balances: %{}, journal: [], seq: 0}}

  @impl true
  def handle_call({:open, account, amount}, _from, state) do
    if Map.has_key?(state.balances, account) do
      {:reply, {:error, :exists}, state}
    else
      state =
        post(%{state | balances: Map.put(state.balances, account, 0)}, account, amount, :open)

      {:reply, :ok, state}
    end
  end

  def handle_call({:deposit, account, amount}, _from, state) do
    with {:ok, _} <- fetch(state, account) do
      state = post(state, account, amount, :deposit)
      {:reply, {:ok, state.balances[account]}, state}
    else
      error -> {:reply, error, state}
    end
  end

  def handle_call({:withdraw, account, amount}, _from, state) do
    with {:ok, balance} <- fetch(state, account),
         :ok <- sufficient(balance, amount) do
      state = post(state, account, -amount, :withdraw)
      {:reply, {:ok, state.balances[account]}, state}
    else
      error -> {:reply, error, state}
    end
  end

  def handle_call({:transfer, from, to, amount}, _from, state) do
    with {:ok, balance} <- fetch(state, from),
         {:ok, _} <- fetch(state, to),
         :ok <- sufficient(balance, amount) do
      state =
        state
        |> post(from, -amount, {:transfer_to, to})
        |> post(to, amount, {:transfer_from, from})

      {:reply, :ok, state}
    else
      error -> {:reply, error, state}
    end
  end

  def handle_call({:checked_transfer, from, to, amount}, caller, state) do
    history = for %{account: ^from, amount: a} <- state.journal, do: a

    case Demo.RiskScorer.score(amount, history) do
      risk when risk < 90 -> handle_call({:transfer, from, to, amount}, caller, state)
      risk -> {:reply, {:error, {:too_risky, risk}}, state}
    end
  end

  def handle_call(:balances, _from, state), do: {:reply, state.balances, state}
  def handle_call(:journal, _from, state), do: {:reply, Enum.reverse(state.journal), state}

  defp fetch(state, account) do
    case Map.fetch(state.balances, account) do
      {:ok, balance} -> {:ok, balance}
      :error -> {:error, :no_such_account}
    end
  end

  defp sufficient(balance, amount) when balance >= amount, do: :ok
  defp sufficient(_balance, _amount), do: {:error, :insufficient_funds}

  defp post(state, account, amount, kind) do
    seq = state.seq + 1
    posting = %Posting{seq: seq, account: account, amount: amount, kind: kind}
    balances = Map.update!(state.balances, account, &(&1 + amount))
    %{state | balances: balances, journal: [posting | state.journal], seq: seq}
  end
end
