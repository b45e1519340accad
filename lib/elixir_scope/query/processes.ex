defmodule ElixirScope.Query.Processes do
  @moduledoc """
  The recorded processes: for each, its event count, its first and last events, its first
  recorded call, the names it had, and whether it crashed.

  A name is known two ways: the registry (a live session's, or the names saved with a recording,
  which are those registered when it was saved), and the messages sent to the name that a process
  took (`ElixirScope.Query.Correlation`). The second way finds a process that held a name before it
  crashed and a restarted one took the name over.
  """

  alias ElixirScope.{Event, Query}
  alias ElixirScope.Query.{Correlation, Source}

  @type info :: %{
          pid: pid(),
          names: [atom()],
          events: pos_integer(),
          first: Event.t(),
          last: Event.t(),
          first_call: Event.t() | nil,
          crash: Event.t() | nil
        }

  @doc """
  Every process of the source, in order of its first event. `crash` is the exception event of a
  call at the bottom of the process's stack that raised (nothing recorded catches it), or an
  `:exit` event with an abnormal reason. Options: `source:`.
  """
  @spec list(keyword()) :: [info()] | {:error, String.t()}
  def list(opts \\ []) do
    source = Source.from_opts(opts)

    {procs, named} =
      Query.stream([], source: source)
      |> Enum.reduce({%{}, []}, fn e, {procs, named} ->
        {Map.update(procs, e.pid, new(e), &add(&1, e)), if(name_evidence?(e), do: [e | named], else: named)}
      end)

    names = names(source, Enum.reverse(named))

    procs
    |> Map.values()
    |> Enum.sort_by(& &1.first.id)
    |> Enum.map(fn p ->
      %{p | names: Map.get(names, p.pid, []), crash: crash(p, source)} |> Map.delete(:exceptions)
    end)
  catch
    {:query_error, msg} -> {:error, msg}
  end

  @doc "Every process that had the registered name `name`, in order of first evidence. Options: `source:`."
  @spec named(atom(), keyword()) :: [pid()]
  def named(name, opts \\ []) do
    source = Source.from_opts(opts)
    evidence = Query.events(where: &name_evidence?/1, source: source)
    evidence = if is_list(evidence), do: evidence, else: []

    source
    |> names(evidence)
    |> Enum.filter(fn {_pid, ns} -> name in ns end)
    |> Enum.map(&elem(&1, 0))
    |> then(&order_by_first(&1, source))
  catch
    {:query_error, _} -> []
  end

  defp order_by_first(pids, source) do
    Enum.sort_by(pids, fn p ->
      case Query.events(pid: p, limit: 1, source: source) do
        [e] -> e.id
        _ -> 0
      end
    end)
  end

  defp new(e), do: %{pid: e.pid, names: [], events: 1, first: e, last: e, first_call: call(e), crash: nil, exceptions: exc(e)}

  defp add(p, e) do
    %{p | events: p.events + 1, last: e, first_call: p.first_call || call(e), exceptions: p.exceptions or exc(e)}
  end

  defp call(%Event{kind: :call} = e), do: e
  defp call(_), do: nil

  defp exc(%Event{kind: k}), do: k in [:exception, :exit]

  # sends to a name, and the events that take messages (receives, OTP callbacks' calls)
  defp name_evidence?(%Event{kind: :send, payload: {dest, _}}), do: name_of(dest) != nil
  defp name_evidence?(%Event{kind: :receive}), do: true
  defp name_evidence?(%Event{kind: :call, function: f}), do: f in [:handle_call, :handle_cast, :handle_info]
  defp name_evidence?(_), do: false

  defp name_of(name) when is_atom(name) and name not in [nil, true, false], do: name
  defp name_of({name, node}) when is_atom(name) and is_atom(node), do: name_of(name)
  defp name_of(_), do: nil

  # %{pid => [name]}: registered names, plus the names whose messages a process took
  defp names(source, evidence) do
    registered = Source.names(source) |> Map.new(fn {pid, name} -> {pid, [name]} end)

    evidence
    |> Correlation.links()
    |> Enum.flat_map(fn
      %{from: %Event{kind: :send, payload: {dest, _}}, to: to} ->
        case name_of(dest) do
          nil -> []
          name -> [{to.pid, name}]
        end

      _ ->
        []
    end)
    |> Enum.reduce(registered, fn {pid, name}, acc -> Map.update(acc, pid, [name], &Enum.uniq(&1 ++ [name])) end)
  end

  defp crash(%{exceptions: false}, _source), do: nil

  defp crash(%{pid: pid}, source) do
    abnormal_exit(pid, source) || escaped(pid, source)
  end

  defp abnormal_exit(pid, source) do
    case Query.events(pid: pid, kind: :exit, source: source) do
      evs when is_list(evs) -> Enum.find(evs, &abnormal?(&1.payload))
      _ -> nil
    end
  end

  defp abnormal?(reason), do: reason not in [:normal, :shutdown] and not match?({:shutdown, _}, reason)

  # the first root call that ended in an exception
  defp escaped(pid, source) do
    case Query.call_tree(pid, source: source) do
      roots when is_list(roots) -> Enum.find_value(roots, fn n -> n.status == :exception && n.exception end)
      _ -> nil
    end
  end
end
