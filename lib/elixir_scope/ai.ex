defmodule ElixirScope.AI do
  @moduledoc """
  The AI facade. `explain/2` explains a recorded exception with the
  configured LLM provider (or offline with `:heuristic`).
  """

  alias ElixirScope.AI.Explainer
  alias ElixirScope.AI.LLM.Provider

  @doc """
  Explains the exception `event_or_id` (an exception event, its id, or the
  call id of the call that raised). The process's events up to the
  exception are read from the store (`ElixirScope.Storage.DataAccess`, or
  `opts[:data_access]`), at most `opts[:max_events]` (default 500), and
  the size-capped context goes to the provider. If the provider fails, the
  heuristic explanation is returned with a `:warning` saying why.
  """
  @spec explain(map | pos_integer, keyword) :: {:ok, map} | {:error, String.t()}
  def explain(event_or_id, opts \\ []) do
    da = Keyword.get(opts, :data_access, ElixirScope.Storage.DataAccess)

    with {:ok, exc} <- find_exception(da, event_or_id),
         {:ok, events} <- chain_events(da, exc, Keyword.get(opts, :max_events, 500)),
         {:ok, ctx} <- Explainer.context(events, exception_id: exc.id) do
      provider = Provider.current(opts)

      case Provider.module(provider) do
        {:ok, mod} -> run(mod, ctx, opts)
        {:error, msg} -> {:error, msg}
      end
    end
  end

  defp run(mod, ctx, opts) do
    case mod.explain_error(ctx, opts) do
      {:ok, result} ->
        {:ok, result}

      {:error, {kind, msg}} ->
        # returned in the result (which IEx prints), not logged: shown once
        warning = "#{mod.provider_name()} failed (#{kind}): #{msg}; heuristic explanation instead"
        {:ok, Map.put(Explainer.explain(ctx), :warning, warning)}
    end
  end

  defp find_exception(_da, %{kind: :exception} = e), do: {:ok, e}

  defp find_exception(_da, %{kind: k}),
    do: {:error, "event is a #{inspect(k)}, not an :exception"}

  defp find_exception(da, id) when is_integer(id) and id > 0 do
    case unwrap(call(da, :get_event, [id])) do
      %{kind: :exception} = e ->
        {:ok, e}

      %{kind: :call} ->
        case call(da, :get_events, [[call_id: id, kinds: [:exception]]]) |> unwrap() do
          [e | _] -> {:ok, e}
          _ -> {:error, "call #{id} did not raise (no :exception event with that call id)"}
        end

      %{kind: k} ->
        {:error, "event #{id} is a #{inspect(k)}, not an :exception or a :call"}

      _ ->
        {:error, "no event #{id} in the store"}
    end
  end

  defp find_exception(_da, other),
    do: {:error, "expected an exception event or an event/call id, got: #{inspect(other)}"}

  defp chain_events(da, exc, max) do
    case call(da, :get_events, [[pid: exc.pid, before_id: exc.id + 1, order: :desc, limit: max]])
         |> unwrap() do
      list when is_list(list) -> {:ok, Enum.reverse(list)}
      _ -> {:error, "could not read the events of #{inspect(exc.pid)} from the store"}
    end
  end

  defp call(da, fun, args) do
    if Code.ensure_loaded?(da) and function_exported?(da, fun, length(args)) do
      apply(da, fun, args)
    else
      {:error, :unavailable}
    end
  end

  defp unwrap({:ok, v}), do: v
  defp unwrap(v), do: v
end
