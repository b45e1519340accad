defmodule ElixirScope.AST.Transformer do
  @moduledoc """
  The Elixir face of the C AST transformer (c_src/ast_transform.c).

  The quoted AST and the normalized plan travel to the NIF as external term
  format; the NIF (on a dirty CPU scheduler) walks the term and returns the
  instrumented AST (built as VM terms directly from the C result tree). What is injected (see `ElixirScope.AST.InjectorHelpers`):

    * at `:function_boundaries` and above, every `def`/`defp` clause reports its
      entry (arguments, line) and gets a call id; its body runs inside a `try`
      that reports exceptions and re-raises them with the original stacktrace;
      the value is reported on return. Local (and own-module / Erlang) calls in
      tail position are returned from the `try` as markers and performed after
      it, so they stay real tail calls: the frame reports `:tail_call` and only
      the frame that really returns reports `:return`;
    * `:expressions`: top-level expressions of bodies with their values;
    * `:locals`: the variables bound by each top-level match;
    * GenServer callbacks: the state before and after;
    * custom injections at a line, before or after the expression on it.

  `defmacro`, `defguard`, `defdelegate`, bodiless heads and definitions built
  with `unquote` fragments are left as they are.

  Errors: `{:error, {:invalid_ast, path}}` (path: the indices of tuple elements
  and list elements from the root to the bad node), `{:error, {:too_deep, n}}`,
  `{:error, {:invalid_plan, message}}`, `{:error, {:undefined_functions, [{name, arity}]}}`.
  """

  alias ElixirScope.AST.Plan
  alias ElixirScope.NIF

  @type reason ::
          {:invalid_ast, [non_neg_integer()]}
          | {:too_deep, pos_integer()}
          | {:invalid_plan, String.t() | atom()}
          | {:undefined_functions, [{atom(), non_neg_integer()}]}

  @doc """
  Instruments a module (or a whole file: every module in it, nested ones
  included) according to a module plan (or a level atom). Options: `:runtime`.
  """
  @spec transform_module(Macro.t(), Plan.module_plan() | Plan.level(), keyword()) ::
          {:ok, Macro.t()} | {:error, reason()}
  def transform_module(ast, plan, opts \\ []), do: run(ast, plan, opts)

  @doc """
  Instruments a single `def`/`defp` form (calls inside it to functions of the
  same name count as local calls). Same plan and result as `transform_module/3`.
  """
  @spec transform_function(Macro.t(), Plan.module_plan() | Plan.level(), keyword()) ::
          {:ok, Macro.t()} | {:error, reason()}
  def transform_function(ast, plan, opts \\ []), do: run(ast, plan, opts)

  defp run(ast, plan, opts) do
    with {:ok, plan} <- normalize(plan) do
      nif_plan = Plan.to_nif(plan, opts)
      NIF.ast_transform(:erlang.term_to_binary(ast), :erlang.term_to_binary(nif_plan))
    end
  end

  defp normalize(plan) do
    case Plan.normalize(plan) do
      {:ok, plan} -> {:ok, plan}
      {:error, msg} -> {:error, {:invalid_plan, msg}}
    end
  end

  @doc "A readable message for an error reason of `transform_module/3`."
  @spec format_error(reason() | term()) :: String.t()
  def format_error({:invalid_ast, path}),
    do: "not a valid quoted expression at path #{inspect(path)}"

  def format_error({:too_deep, n}), do: "the AST nests deeper than the transformer's limit (#{n})"
  def format_error({:invalid_plan, msg}) when is_binary(msg), do: "invalid plan: #{msg}"
  def format_error({:invalid_plan, what}), do: "invalid plan: bad #{what}"

  def format_error({:undefined_functions, fs}),
    do: "the plan names functions the module does not define: #{Plan.format_functions(fs)}"

  def format_error(other), do: inspect(other)
end
