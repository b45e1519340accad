defmodule Demo.Application do
  @moduledoc "Supervises the ledger, the risk scorer (which crashes and is restarted) and the courier."
  use Application

  @impl true
  def start(_type, _args) do
    children = [
      {Demo.Ledger, name: Demo.Ledger},
      {Demo.RiskScorer, name: Demo.RiskScorer},
      {Demo.Courier, name: Demo.Courier},
      {Task.Supervisor, name: Demo.TaskSupervisor}
    ]

    Supervisor.start_link(children, strategy: :one_for_one, name: Demo.Supervisor, max_restarts: 10)
  end
end
