defmodule ElixirScope.Redaction do
  @moduledoc """
  Which names are secrets. (Interim: replaced by the capture codec's rule set.)
  """

  @patterns ~w(password passwd secret token apikey privatekey authorization cookie credential)

  @doc "The redaction rules of a capture configuration."
  @spec rules(keyword()) :: [String.t()]
  def rules(_capture_opts), do: @patterns

  @doc "True when `name` names a secret (case-insensitive, snake, camel and kebab case alike)."
  @spec secret_name?(atom() | String.t(), [String.t()]) :: boolean()
  def secret_name?(name, rules) when is_atom(name), do: secret_name?(Atom.to_string(name), rules)

  def secret_name?(name, rules) when is_binary(name) do
    norm = name |> String.downcase() |> String.replace(["_", "-"], "")
    Enum.any?(rules, &String.contains?(norm, &1))
  end
end
