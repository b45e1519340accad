defmodule Demo.Application do
  @moduledoc "Supervises ElixirScope, the ledger, the risk scorer (which crashes and is restarted) and the courier."
  use Application

  @impl true
  def start(_type, _args) do
    children = [
      # ElixirScope first: it records everything the processes below do, from their init on.
      {ElixirScope, []},
      {Demo.Ledger, name: Demo.Ledger},
      {Demo.RiskScorer, name: Demo.RiskScorer},
      {Demo.Courier, name: Demo.Courier},
      {Task.Supervisor, name: Demo.TaskSupervisor}
    ]

    Supervisor.start_link(children,
      strategy: :one_for_one,
      name: Demo.Supervisor,
      max_restarts: 10
    )
  end
end
