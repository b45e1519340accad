defmodule ElixirScope.Cluster.Member do
  @moduledoc """
  What the coordinator (`ElixirScope.Cluster`) asks of each recorded node over `:erpc`: start
  capture there, its counters, its registered names and pages of its events. Every function runs
  on the member node and reads only its own store; nothing here sends an event anywhere while the
  program runs — events travel only when a query or a save asks for them.
  """

  alias ElixirScope.Query.Source
  alias ElixirScope.Storage.DataAccess

  @doc """
  Starts capture on this node with `opts` (`ElixirScope.start/1` options) unless it runs already.
  The member never starts a cluster of its own: the coordinator is the only one.
  """
  @spec start_capture(keyword()) :: :ok | {:error, term()}
  def start_capture(opts) do
    case ElixirScope.start(Keyword.put(opts, :cluster, nodes: nil)) do
      :ok -> :ok
      {:error, :already_running} -> :ok
      error -> error
    end
  end

  @doc "Which VM this is: a node of the same name started again is another incarnation."
  @spec incarnation() :: {integer(), String.t()}
  def incarnation, do: {:erlang.system_info(:creation), System.pid()}

  @doc "This node's capture counters and the id of its latest stored event (0 when none)."
  @spec info() :: %{running: boolean(), stats: map(), last_id: non_neg_integer()}
  def info do
    last =
      case ElixirScope.running?() && DataAccess.get_events(order: :desc, limit: 1) do
        [e] -> e.id
        _ -> 0
      end

    %{running: ElixirScope.running?(), stats: ElixirScope.stats(), last_id: last}
  end

  @doc "This node's registered names (`%{name => pid}`)."
  @spec names() :: %{atom() => pid()}
  def names, do: Map.new(Source.names(:live), fn {pid, name} -> {name, pid} end)

  @doc """
  Up to `limit` events with ids above `after_id`, in id order, as one compressed binary (about
  20 times smaller than the list the distribution would otherwise copy term by term).
  """
  @spec page(non_neg_integer(), pos_integer()) :: binary()
  def page(after_id, limit) do
    events =
      case DataAccess.get_events(after_id: after_id, limit: limit, order: :asc) do
        list when is_list(list) -> list
        {:error, _} -> []
      end

    :erlang.term_to_binary(events, compressed: 1)
  end
end
