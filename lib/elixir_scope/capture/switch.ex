defmodule ElixirScope.Capture.Switch do
  @moduledoc """
  The run-time on/off switch that instrumented code consults before it records
  anything. `on?/1` is a remote call to a function whose clauses are a constant
  answer, so the "off" path costs about one nanosecond. `ElixirScope.Capture.SwitchLoader`
  replaces this module with generated clauses when capture is switched; this
  compiled default answers `false`, so instrumented code runs silently before
  ElixirScope starts.
  """

  @doc "Whether events of `module` are recorded now."
  @spec on?(module()) :: boolean()
  def on?(_module), do: false
end
