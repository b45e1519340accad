defmodule ElixirScope.AI.LLM.Settings do
  @moduledoc """
  Resolved settings of one provider call. The API key is an
  `ElixirScope.AI.LLM.Secret`; `inspect/1` shows `api_key: :redacted`.
  """

  defstruct provider: nil,
            base_url: nil,
            model: nil,
            api_key: nil,
            timeout_ms: 30_000,
            options: []

  @type t :: %__MODULE__{
          provider: atom,
          base_url: String.t() | nil,
          model: String.t() | nil,
          api_key: ElixirScope.AI.LLM.Secret.t() | nil,
          timeout_ms: pos_integer,
          options: keyword
        }

  defimpl Inspect do
    import Inspect.Algebra

    def inspect(s, opts) do
      shown = [
        provider: s.provider,
        base_url: s.base_url,
        model: s.model,
        api_key: if(s.api_key, do: :redacted, else: nil),
        timeout_ms: s.timeout_ms
      ]

      concat(["#ElixirScope.AI.LLM.Settings<", to_doc(shown, opts), ">"])
    end
  end
end
