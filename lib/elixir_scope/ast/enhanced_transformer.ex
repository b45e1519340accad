defmodule ElixirScope.AST.EnhancedTransformer do
  @moduledoc """
  Fine-grained instrumentation: a plan naming the locals to capture, the
  expressions to trace and code to inject at given lines, e.g.

      %{capture_locals: [:important_var, :result],
        trace_expressions: [:complex_calculation],
        custom_injections: [{10, :after, quote(do: IO.puts("Checkpoint reached"))}]}

  Without a `:level` the function boundaries are instrumented as well (the call
  id ties the captured values to their call). Same engine as
  `ElixirScope.AST.Transformer`.
  """

  alias ElixirScope.AST.{Plan, Transformer}

  @doc "Instruments a module, a file or a single definition with an enhanced plan."
  @spec transform_with_enhanced_instrumentation(Macro.t(), Plan.module_plan(), keyword()) ::
          {:ok, Macro.t()} | {:error, Transformer.reason()}
  def transform_with_enhanced_instrumentation(ast, plan, opts \\ []) when is_map(plan),
    do: Transformer.transform_module(ast, plan, opts)
end
