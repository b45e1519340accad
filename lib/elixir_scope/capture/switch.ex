defmodule ElixirScope.Capture.Switch do
  @moduledoc """
  The run-time on/off switch that instrumented code consults before it records
  anything: `on?/1` is a remote call made before any argument list is built.

  This compiled default answers `false` (a constant: with capture off a call
  costs about a nanosecond), so instrumented code runs silently before
  ElixirScope starts. `ElixirScope.Capture.SwitchLoader` replaces it with one of
  two generated shapes:

    * `:dynamic` while ElixirScope runs: `on?/1` reads the mode word of
      `ElixirScope.Capture.Control` (its copy in the NIF), so switching capture is a
      memory write that takes effect at once, whatever the load;
    * `:off` (this constant `false` again) once capture has stayed off for a
      while, or when ElixirScope stops, so that the steady "off" state costs
      nothing.

  The persisted `shape` attribute says which one is loaded.
  """

  Module.register_attribute(__MODULE__, :shape, persist: true)
  @shape :off

  @doc "Whether events of `module` are recorded now."
  @spec on?(term()) :: boolean()
  def on?(_module), do: false
end
