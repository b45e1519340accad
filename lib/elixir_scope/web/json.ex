defmodule ElixirScope.Web.JSON do
  @moduledoc """
  The web's name for `ElixirScope.JSON`, the one JSON codec of ElixirScope
  (kept so that existing callers need no change).
  """

  @doc "See `ElixirScope.JSON.encode!/1`."
  @spec encode!(term()) :: binary()
  defdelegate encode!(term), to: ElixirScope.JSON

  @doc "See `ElixirScope.JSON.encode_iodata/1`."
  @spec encode_iodata(term()) :: iodata()
  defdelegate encode_iodata(term), to: ElixirScope.JSON

  @doc "See `ElixirScope.JSON.decode/1`."
  @spec decode(binary()) :: {:ok, term()} | {:error, String.t()}
  defdelegate decode(bin), to: ElixirScope.JSON

  @doc "See `ElixirScope.JSON.decode!/1`."
  @spec decode!(binary()) :: term()
  defdelegate decode!(bin), to: ElixirScope.JSON
end
