defmodule ElixirScope.Compiler.Loader do
  @moduledoc """
  Compiles the instrumented forms of one user source file. The `:elixir_scope` compiler writes, per
  user file, the instrumented quoted forms as an ETF file and a one-line wrapper `.ex` file that calls
  `eval!/2`; Mix's own Elixir compiler then compiles the wrappers (so compile-time dependencies
  between modules, structs, macros and protocols are resolved by Kernel.ParallelCompiler, and Mix's
  incremental manifest tracks them).

  The forms are evaluated in the wrapper's environment (same lexical tracker, so Mix records the
  dependencies) with the `file` set to the user's file, so compile errors, warnings, `__ENV__`,
  `__DIR__`, the module's `:source` and stack traces all name the user's file and lines.
  """

  @format :elixir_scope_forms
  @version 1

  @doc "Encodes the forms of `user_file` as the ETF the wrapper loads."
  @spec encode(String.t(), Macro.t()) :: binary()
  def encode(user_file, forms) do
    :erlang.term_to_binary({@format, @version, user_file, forms}, [:deterministic])
  end

  @doc "Called by a generated wrapper: compiles the forms stored in `etf_name` (next to the wrapper)."
  @spec eval!(Macro.Env.t(), String.t()) :: :ok
  def eval!(%Macro.Env{} = env, etf_name) do
    path = Path.join(Path.dirname(env.file), etf_name)

    case :erlang.binary_to_term(File.read!(path)) do
      {@format, @version, user_file, forms} ->
        _ = Code.eval_quoted(forms, [], %{env | file: user_file, line: 1})
        :ok

      _ ->
        raise ArgumentError,
              "#{path} is not an ElixirScope forms file of version #{@version}; run mix compile --force"
    end
  end
end
