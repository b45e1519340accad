defmodule Demo.Interest do
  @moduledoc "Recursive algorithms: compound interest year by year, and a recursive split of a payment."
  require Demo.Posting

  @doc "The balance (in cents) after `years` years at `rate_bp` basis points a year, compounded yearly."
  @spec compound(non_neg_integer(), non_neg_integer(), non_neg_integer()) :: non_neg_integer()
  def compound(balance, _rate_bp, 0), do: balance

  def compound(balance, rate_bp, years) do
    interest = div(balance * rate_bp, 10_000)
    compound(balance + interest, rate_bp, years - 1)
  end

  @doc "Splits `cents` into `parts` near-equal integer parts, recursively (body recursion)."
  @spec split(non_neg_integer(), pos_integer()) :: [non_neg_integer()]
  def split(cents, 1), do: [cents]

  def split(cents, parts) do
    share = div(cents, parts)
    [share | split(cents - share, parts - 1)]
  end

  @doc "Human-readable amount."
  @spec format(integer()) :: String.t()
  def format(cents), do: Demo.Posting.money(cents)
end
