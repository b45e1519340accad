defmodule ElixirScope.Capture.Ingestor do
  @moduledoc """
  The Elixir face of the native ingestor: creating, installing and removing the
  capture session (ring buffer + event store) and switching the native side of
  capture on and off. Instrumented code does not call this module; it goes
  through `ElixirScope.Capture.InstrumentationRuntime`.
  """

  alias ElixirScope.NIF

  @typedoc "A native session: one ring buffer and one event store."
  @type session :: reference()

  @doc "Creates a session from `ElixirScope.Config.session_options/1`."
  @spec new_session(map()) :: session()
  def new_session(options) when is_map(options), do: NIF.session_new(options)

  @doc "Makes `session` the one that instrumented code writes to."
  @spec install(session()) :: :ok
  def install(session), do: NIF.session_install(session)

  @doc "Detaches the installed session; producers already inside a push finish first."
  @spec uninstall() :: :ok
  def uninstall, do: NIF.session_uninstall()

  @doc "Switches the native side of capture on or off."
  @spec set_enabled(session(), boolean()) :: :ok
  def set_enabled(session, on) when is_boolean(on), do: NIF.set_enabled(session, on)

  @doc "The native monotonic clock (ns) that event timestamps use."
  @spec now() :: non_neg_integer()
  def now, do: NIF.now()

  @doc "Encodes `term` with the session's capture limits and redaction (as events do)."
  @spec encode(session(), term()) :: {binary(), non_neg_integer()}
  def encode(session, term), do: NIF.encode(session, term)
end
