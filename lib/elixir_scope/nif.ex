defmodule ElixirScope.NIF do
  @moduledoc """
  The native functions (priv/elixir_scope_nif.so). Thin stubs only: the
  Elixir faces are `ElixirScope.Capture.Ingestor`, `ElixirScope.Capture.RingBuffer`
  and `ElixirScope.Storage.DataAccess`. Every NIF validates its arguments and
  raises `ArgumentError` with a message on bad input.
  """
  @on_load :load_nif
  @compile {:autoload, false}

  @doc false
  def load_nif do
    path = :filename.join(:code.priv_dir(:elixir_scope), ~c"elixir_scope_nif")

    case :erlang.load_nif(path, 0) do
      :ok -> :ok
      {:error, {:reload, _}} -> :ok
      {:error, reason} -> raise "ElixirScope: could not load the NIF from #{path}: #{inspect(reason)} (run `make nif`)"
    end
  end

  defp nif_missing, do: :erlang.nif_error(:elixir_scope_nif_not_loaded)

  # capture core
  @spec session_new(map()) :: reference()
  def session_new(_opts), do: nif_missing()
  @spec session_install(reference()) :: :ok
  def session_install(_session), do: nif_missing()
  @spec session_uninstall() :: :ok
  def session_uninstall, do: nif_missing()
  @spec set_enabled(reference(), boolean()) :: :ok
  def set_enabled(_session, _on), do: nif_missing()
  @spec emit_entry(module(), atom(), list(), non_neg_integer()) :: pos_integer() | nil
  def emit_entry(_module, _function, _args, _line), do: nif_missing()
  @spec emit_exit(pos_integer(), term()) :: :ok
  def emit_exit(_call_id, _value), do: nif_missing()
  @spec emit(atom(), non_neg_integer() | nil, atom(), atom(), non_neg_integer() | nil, non_neg_integer(),
               non_neg_integer() | nil, term()) :: pos_integer() | nil
  def emit(_kind, _call_id, _module, _function, _arity, _line, _link, _payload), do: nif_missing()
  @spec drain(reference(), pos_integer()) :: non_neg_integer()
  def drain(_session, _max), do: nif_missing()
  @spec query(reference(), map()) :: [tuple()]
  def query(_session, _filters), do: nif_missing()
  @spec get_event(reference(), non_neg_integer()) :: tuple() | nil
  def get_event(_session, _id), do: nif_missing()
  @spec clear(reference()) :: :ok
  def clear(_session), do: nif_missing()
  @spec stats(reference()) :: map()
  def stats(_session), do: nif_missing()
  @spec encode(reference(), term()) :: {binary(), non_neg_integer()}
  def encode(_session, _term), do: nif_missing()
  @spec now() :: non_neg_integer()
  def now, do: nif_missing()
  @spec noop() :: :ok
  def noop, do: nif_missing()

  # component glue (appended by component owners)
  @spec ast_transform(binary(), binary()) :: {:ok, Macro.t()} | {:error, term()}
  def ast_transform(_ast_etf, _plan_etf), do: nif_missing()
end
