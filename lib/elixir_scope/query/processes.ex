defmodule ElixirScope.Query.Processes do
  @moduledoc """
  The recorded processes: for each, its event count, its first and last events, its first
  recorded call, the names it had, whether it crashed, its lifecycle as the session observed it
  (`spawn` and `exit` events, see `ElixirScope.Capture.Lifecycle`), which process it restarted
  and which restarted it, and a `label`: its registered name, else its initial call (`Task from
  Demo.Audit.check/3`, a GenServer's module), else its first recorded call.

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
          crash: Event.t() | nil,
          spawn: Event.t() | nil,
          exit: Event.t() | nil,
          restart_of: pid() | nil,
          restarted_as: pid() | nil,
          label: String.t()
        }

  @doc """
  Every process of the source, in order of its first event (except parents that recorded nothing
  themselves, see `spawner_only?/1`). `crash` is the exception event of a
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

    named = Enum.reverse(named)
    names = names(source, named)
    restarts = for %{type: :restart, from: old, to: new} <- Correlation.links(named), do: {old.pid, Event.spawn_info(new).child}
    restart_of = Map.new(restarts, fn {old, new} -> {new, old} end)
    restarted_as = Map.new(restarts)

    spawns = observed_spawns(named)

    procs
    |> Map.values()
    |> Enum.reject(&(&1.spawner_only))
    |> Enum.sort_by(& &1.first.id)
    |> Enum.map(fn p ->
      %{p | names: Map.get(names, p.pid, []), crash: crash(p, source), spawn: spawns[p.pid]}
      |> Map.drop([:exceptions, :spawner_only])
      |> Map.merge(%{restart_of: restart_of[p.pid], restarted_as: restarted_as[p.pid]})
      |> then(&Map.put(&1, :label, label(&1)))
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

  @doc """
  Labels (`label/1`) of the processes of a list of events, from those events alone:
  `%{pid => label}`. `names` (pid => name) wins over what the events say.
  """
  @spec labels([Event.t()], %{optional(pid()) => term()}) :: %{optional(pid()) => String.t()}
  def labels(events, names \\ %{}) do
    spawns = observed_spawns(events)

    events
    |> Enum.sort_by(& &1.id)
    |> Enum.reduce(%{}, fn e, acc -> Map.update(acc, e.pid, new(e), &add(&1, e)) end)
    |> Map.new(fn {pid, p} ->
      p = %{p | spawn: spawns[pid]}
      spawn_name = p.spawn && Event.spawn_info(p.spawn).name
      given = Map.get(names, pid) || spawn_name
      {pid, label(%{p | names: if(given, do: [given], else: [])})}
    end)
  end

  @doc """
  A process's label: its registered name, else its initial call (`Task from M.f/a` for a Task,
  the module of a GenServer or other proc_lib process), else its first recorded call, else its pid.
  """
  @spec label(map()) :: String.t()
  def label(%{names: [name | _]}) when is_atom(name), do: inspect(name)
  def label(%{names: [name | _]}), do: to_string(name)

  def label(p) do
    initial_call_label(p[:spawn] && Event.spawn_info(p.spawn)) ||
      (p[:first_call] && Exception.format_mfa(p.first_call.module, p.first_call.function, p.first_call.arity || 0)) ||
      inspect(p.pid)
  end

  defp initial_call_label(%{initial_call: {m, f, a}, callers: callers} = info) when is_atom(m) and is_atom(f) do
    case Regex.run(~r/^-(.+)\/(\d+)-fun-\d+-$/, Atom.to_string(f)) do
      [_, name, arity] -> "#{if callers != [] or info[:via] == :task, do: "Task", else: "fn"} from #{Exception.format_mfa(m, String.to_atom(name), String.to_integer(arity))}"
      nil when {m, f, a} in [{:erlang, :apply, 2}, {:proc_lib, :init_p, 5}] -> nil
      nil when f == :init and a == 1 -> inspect(m)
      nil -> Exception.format_mfa(m, f, a)
    end
  end

  defp initial_call_label(_), do: nil

  defp new(e) do
    %{pid: e.pid, names: [], events: 1, first: e, last: e, first_call: call(e), crash: nil, exceptions: exc(e),
      spawn: nil, exit: exit_event(e), spawner_only: observed_spawn?(e)}
  end

  defp add(p, e) do
    %{p | events: p.events + 1, last: e, first_call: p.first_call || call(e), exceptions: p.exceptions or exc(e),
          exit: p.exit || exit_event(e), spawner_only: p.spawner_only and observed_spawn?(e)}
  end

  @doc """
  Whether a process's events are only the `:spawn`s the session recorded on its behalf (a parent
  that recorded nothing itself, e.g. an application master): such a process is not listed.
  """
  @spec spawner_only?([Event.t()]) :: boolean()
  def spawner_only?(events), do: events != [] and Enum.all?(events, &observed_spawn?/1)

  defp observed_spawn?(%Event{kind: :spawn, function: :observed}), do: true
  defp observed_spawn?(_e), do: false

  defp exit_event(%Event{kind: :exit} = e), do: e
  defp exit_event(_e), do: nil

  # child pid => the :spawn that announces it (its call site's, else the observer's)
  defp observed_spawns(events), do: Event.announcing_spawns(events)

  defp call(%Event{kind: :call} = e), do: e
  defp call(_), do: nil

  defp exc(%Event{kind: k}), do: k in [:exception, :exit]

  # sends to a name, and the events that take messages (receives, OTP callbacks' calls)
  defp name_evidence?(%Event{kind: :send, payload: {dest, _}}), do: name_of(dest) != nil
  defp name_evidence?(%Event{kind: :receive}), do: true
  defp name_evidence?(%Event{kind: :call, function: f}), do: f in [:handle_call, :handle_cast, :handle_info]
  defp name_evidence?(%Event{kind: k}), do: k in [:spawn, :exit]

  defp name_of(name) when is_atom(name) and name not in [nil, true, false], do: name
  defp name_of({name, node}) when is_atom(name) and is_atom(node), do: name_of(name)
  defp name_of(_), do: nil

  # %{pid => [name]}: registered names, the names the session saw a process have, and the names
  # whose messages a process took
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
    |> Kernel.++(for e <- evidence, %{name: name, child: pid} <- [Event.spawn_info(e)], name != nil, do: {pid, name})
    |> Enum.reduce(registered, fn {pid, name}, acc -> Map.update(acc, pid, [name], &Enum.uniq(&1 ++ [name])) end)
  end

  defp crash(%{exceptions: false}, _source), do: nil

  # the exception that escaped says what and where; the exit, observed later, only why it ended
  defp crash(%{pid: pid}, source) do
    escaped(pid, source) || abnormal_exit(pid, source)
  end

  defp abnormal_exit(pid, source) do
    case Query.events(pid: pid, kind: :exit, source: source) do
      evs when is_list(evs) -> Enum.find(evs, &Event.crash_exit?/1)
      _ -> nil
    end
  end

  # the first root call that ended in an exception
  defp escaped(pid, source) do
    case Query.call_tree(pid, source: source) do
      roots when is_list(roots) -> Enum.find_value(roots, fn n -> n.status == :exception && n.exception end)
      _ -> nil
    end
  end
end
