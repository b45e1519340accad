defmodule ElixirScope.AST.Transformer do
  @moduledoc """
  Instrumenting code by hand, with the same engine as the `:elixir_scope` compiler.

  Instrumentation happens where the Elixir compiler hands a module to the Erlang compiler, after
  every macro is expanded (`ElixirScope.Compiler.ParseTransform`, which calls the C transformer in
  `c_src/forms_*.c`). So there are two faces:

    * `transform_module/3` takes quoted code (a `defmodule`, or a file of them) and returns it
      with each module naming its plan (`@compile {:elixir_scope_plan, plan}`); nothing else in
      the code changes. It installs the transform in this VM (`ParseTransform.install/0`), so
      compiling the result gives the instrumented module;
    * `transform_forms/3` takes a module's Erlang abstract forms and returns them instrumented.

  What is injected (see `ElixirScope.AST.InjectorHelpers` and docs/ast_transformer.md): every
  clause of a planned function reports its entry (arguments, line) and gets a call id; its body
  runs inside a `try` that reports exceptions and re-raises them unchanged; tail calls stay tail
  calls (the frame reports `:tail_call`, only the frame that returns reports `:return`); at
  `:expressions` each statement's value, at `:locals` the variables each match binds; OTP
  callbacks report their state before and after; custom injections run at their lines.
  """

  alias ElixirScope.AST.Plan
  alias ElixirScope.Compiler.ParseTransform

  @type reason :: {:invalid_plan, String.t()} | :not_an_elixir_module | term()

  @doc """
  Marks every module in quoted code to be instrumented with `plan` (a level or a module plan)
  when it is compiled. Options: `:runtime` (the module receiving the injected calls), `:off_copy`
  (the largest clause body, in abstract-format nodes, run as an uninstrumented copy while capture
  is off; default: `config :elixir_scope, ast: [off_copy: n]`, else 0).
  """
  @spec transform_module(Macro.t(), Plan.module_plan() | Plan.level(), keyword()) ::
          {:ok, Macro.t()} | {:error, reason()}
  def transform_module(ast, plan, opts \\ []) do
    case Plan.normalize(plan) do
      {:ok, _} ->
        ParseTransform.install()
        attrs = attributes(plan, opts)
        {:ok, Macro.prewalk(ast, &mark(&1, attrs))}

      {:error, msg} ->
        {:error, {:invalid_plan, msg}}
    end
  end

  @doc "Instruments a module's Erlang abstract forms with `plan`. Options: `:runtime`, `:off_copy`."
  @spec transform_forms([tuple()], Plan.module_plan() | Plan.level(), keyword()) ::
          {:ok, [tuple()]} | {:error, reason()}
  def transform_forms(forms, plan, opts \\ []) do
    case ParseTransform.transform_forms(forms, plan, opts) do
      {:ok, forms, _warnings} -> {:ok, forms}
      {:error, _} = error -> error
    end
  end

  defp attributes(plan, opts) do
    runtime =
      if opts[:runtime], do: [quote(do: @compile({:elixir_scope_runtime, unquote(opts[:runtime])}))], else: []

    off_copy =
      if opts[:off_copy], do: [quote(do: @compile({:elixir_scope_off_copy, unquote(opts[:off_copy])}))], else: []

    [quote(do: @compile({:elixir_scope_plan, unquote(Macro.escape(plan))})) | runtime ++ off_copy]
  end

  # defmodule Name, do: body | defimpl Proto, for: T, do: body | defimpl Proto, [for: T], do: body
  defp mark({kind, meta, args}, attrs) when kind in [:defmodule, :defimpl] and is_list(args) and args != [] do
    {init, [last]} = Enum.split(args, -1)

    if is_list(last) and Keyword.has_key?(last, :do) do
      {kind, meta, init ++ [Keyword.update!(last, :do, &{:__block__, [], attrs ++ [&1]})]}
    else
      {kind, meta, args}
    end
  end

  defp mark(other, _attrs), do: other

  @doc "A readable message for an error reason."
  @spec format_error(reason() | term()) :: String.t()
  def format_error({:invalid_plan, msg}) when is_binary(msg), do: "invalid plan: #{msg}"
  def format_error(:not_an_elixir_module), do: "not the forms of an Elixir module"
  def format_error(other), do: inspect(other)
end
