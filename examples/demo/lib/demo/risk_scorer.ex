defmodule Demo.RiskScorer do
  @moduledoc """
  Scores transfers for risk. A transfer from an account with no history makes it divide by zero:
  the process crashes with an ArithmeticError and its supervisor restarts it.
  """
  use GenServer

  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts), do: GenServer.start_link(__MODULE__, :ok, opts)

  @doc "The risk score (0..100) of moving `amount` out of an account with `history` (past amounts)."
  @spec score(GenServer.server(), pos_integer(), [integer()]) :: non_neg_integer()
  def score(server \\ __MODULE__, amount, history),
    do: GenServer.call(server, {:score, amount, history})

  @impl true
  def init(:ok), do: {:ok, %{scored: 0}}

  @impl true
  def handle_call({:score, amount, history}, _from, state) do
    score = risk(amount, history)
    {:reply, score, %{state | scored: state.scored + 1}}
  end

  @doc false
  @spec risk(pos_integer(), [integer()]) :: non_neg_integer()
  def risk(amount, history) do
    total = Enum.sum(Enum.map(history, &abs/1))
    average = div(total, length(history))
    ratio = div(amount * 10, average)
    min(100, ratio)
  end
end
