defmodule Demo.Posting do
  @moduledoc "One journal entry of the ledger (a struct used across modules at compile time)."
  @enforce_keys [:seq, :account, :amount, :kind]
  defstruct [:seq, :account, :amount, :kind]

  @type t :: %__MODULE__{seq: pos_integer(), account: String.t(), amount: integer(), kind: term()}

  @doc "Formats an amount in cents as a currency string (a macro, expanded in other modules)."
  defmacro money(cents) do
    quote do
      cents = unquote(cents)
      sign = if cents < 0, do: "-", else: ""
      abs = Kernel.abs(cents)

      "#{sign}$#{div(abs, 100)}.#{abs |> rem(100) |> Integer.to_string() |> String.pad_leading(2, "0")}"
    end
  end
end
