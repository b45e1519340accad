defmodule Demo.Audit do
  @moduledoc "Audits every account concurrently with Task.async_stream (a fan-out over processes)."
  alias Demo.Posting

  @doc "Recomputes each account's balance from the journal in parallel; returns mismatches."
  @spec audit(%{String.t() => integer()}, [Posting.t()]) :: [{String.t(), integer(), integer()}]
  def audit(balances, journal) do
    balances
    |> Task.async_stream(fn {account, balance} -> check(account, balance, journal) end,
      max_concurrency: 4
    )
    |> Enum.flat_map(fn {:ok, result} -> result end)
  end

  @doc false
  @spec check(String.t(), integer(), [Posting.t()]) :: [{String.t(), integer(), integer()}]
  def check(account, balance, journal) do
    recomputed =
      for %Posting{account: ^account, amount: a} <- journal, reduce: 0, do: (acc -> acc + a)

    if recomputed == balance, do: [], else: [{account, balance, recomputed}]
  end
end
