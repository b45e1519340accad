defmodule ElixirScope.Test.ASTCorpus do
  @moduledoc """
  Helpers of the transformer corpus tests: load a fixture under test/fixtures/ast,
  give it a distinct module name, compile it plain or instrumented, and compare
  outcomes (values, or exception class/reason/user frames) one for one.
  """

  alias ElixirScope.AST.Transformer

  @fixtures Path.expand("../fixtures/ast", __DIR__)

  @doc "The path of a fixture file."
  @spec path(String.t()) :: String.t()
  def path(file), do: Path.join(@fixtures, file)

  @doc "The quoted form of a fixture (with line numbers)."
  @spec load(String.t()) :: Macro.t()
  def load(file), do: Code.string_to_quoted!(File.read!(path(file)), file: path(file))

  @doc "Replaces every alias `from` (segments), and those it prefixes, by `to` (segments)."
  @spec rename(Macro.t(), [atom()], [atom()]) :: Macro.t()
  def rename(ast, from, to) do
    n = length(from)

    Macro.prewalk(ast, fn
      {:__aliases__, meta, segs} = node when is_list(segs) ->
        if Enum.take(segs, n) == from,
          do: {:__aliases__, meta, to ++ Enum.drop(segs, n)},
          else: node

      other ->
        other
    end)
  end

  @doc """
  Compiles `file` as the module `to` (segments), plain (`plan == :plain`) or
  instrumented with `plan`. Returns `{module, compiler_stderr}`. Raises if a module
  compiled with a plan above `:none` was not instrumented (the transform did not run or
  failed), so no test passes on plain code by accident.
  """
  @spec compile(String.t(), [atom()], [atom()], term(), keyword()) :: {module(), String.t()}
  def compile(file, from, to, plan, opts \\ []) do
    ast = file |> load() |> rename(from, to)

    ast =
      case plan do
        :plain ->
          ast

        plan ->
          {:ok, new} = Transformer.transform_module(ast, plan, opts)
          new
      end

    stderr = ExUnit.CaptureIO.capture_io(:stderr, fn -> Code.compile_quoted(ast, path(file)) end)
    mod = Module.concat(to)

    if plan not in [:plain, :none] and not instrumented?(mod),
      do:
        raise(
          "#{inspect(mod)} was compiled with #{inspect(plan)} but not instrumented:\n#{stderr}"
        )

    {mod, own_warnings(stderr, file)}
  end

  @doc "Whether a loaded module was instrumented (the transform tags it with `:elixir_scope`)."
  @spec instrumented?(module()) :: boolean()
  def instrumented?(mod), do: Keyword.has_key?(mod.module_info(:attributes), :elixir_scope)

  @doc """
  Compiles `src` plain and returns the Erlang abstract forms of its first module. Debug info is
  forced per module (`mix test` may compile test files with `debug_info: false`, a global option).
  """
  @spec forms_of_source(String.t()) :: [tuple()]
  def forms_of_source(src) do
    ast =
      src
      |> Code.string_to_quoted!()
      |> Macro.prewalk(fn
        {:defmodule, meta, [name, [do: body]]} ->
          {:defmodule, meta,
           [name, [do: {:__block__, [], [quote(do: @compile({:debug_info, true})), body]}]]}

        other ->
          other
      end)

    [{_, bin} | _] = Code.compile_quoted(ast)
    forms(bin)
  end

  @doc "The Erlang abstract forms of a compiled module (from its debug info)."
  @spec forms(binary()) :: [tuple()]
  def forms(beam) do
    {:ok, {mod, [debug_info: {:debug_info_v1, backend, data}]}} =
      :beam_lib.chunks(beam, [:debug_info])

    {:ok, forms} = backend.debug_info(:erlang_v1, mod, data, [])
    forms
  end

  @doc """
  The `{name, arity}` of the functions in `forms` that are instrumented: every clause
  reports its entry (binds the injected `ES@call`).
  """
  @spec instrumented_functions([tuple()]) :: [{atom(), arity()}]
  def instrumented_functions(forms) do
    for {:function, _, name, arity, clauses} <- forms,
        Enum.all?(clauses, fn {:clause, _, _, _, body} ->
          match?([{:match, _, {:var, _, :ES@call}, _} | _], recorded_body(body))
        end),
        do: {name, arity}
  end

  @doc """
  The statements an instrumented clause runs with capture on: the `_ ->` branch of the switch
  case its body is (docs/ast_transformer.md), or the body itself when it has no plain copy.
  """
  @spec recorded_body([tuple()]) :: [tuple()]
  def recorded_body([{:case, _, switch, [{:clause, _, [{:atom, _, false}], [], [_off]}, {:clause, _, [{:var, _, :_}], [], [on]}]}])
      when elem(switch, 0) == :call and elem(elem(switch, 2), 0) == :remote do
    {:remote, _, {:atom, _, ElixirScope.Capture.Switch}, {:atom, _, :on?}} = elem(switch, 2)

    case on do
      {:block, _, statements} -> statements
      statement -> [statement]
    end
  end

  def recorded_body(body), do: body

  # stderr is global: keep only the messages about this fixture (other async tests may print)
  defp own_warnings(stderr, file) do
    stderr
    |> String.split(~r/\n\n+/, trim: true)
    |> Enum.filter(&String.contains?(&1, file))
    |> Enum.join("\n\n")
  end

  @doc """
  At macro-expansion time (so before a later `doctest` in the same module body
  expands): compiles fixture `file` instrumented with `plan` under its own name,
  writes the .beam to a temporary directory and loads it from there, so that its
  docs chunk can be read.
  """
  defmacro compile_for_doctest!(file, plan) do
    {plan, _} = Code.eval_quoted(plan, [], __CALLER__)
    {:ok, ast} = Transformer.transform_module(load(file), plan)
    docs = Code.get_compiler_option(:docs)
    Code.put_compiler_option(:docs, true)
    [{mod, bin}] = Code.compile_quoted(ast, path(file))
    Code.put_compiler_option(:docs, docs)
    dir = Path.join(System.tmp_dir!(), "es_doctest_#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    beam = Path.join(dir, "#{mod}.beam")
    File.write!(beam, bin)
    true = :code.add_patha(String.to_charlist(dir))
    :code.purge(mod)
    {:module, _} = :code.load_abs(String.to_charlist(Path.rootname(beam)))
    :ok
  end

  @doc "Runs `fun` and describes what happened."
  @spec outcome((() -> term())) :: {:ok, term()} | {:raised, atom(), term(), list()}
  def outcome(fun) do
    {:ok, fun.()}
  catch
    kind, reason -> {:raised, kind, reason, user_frames(__STACKTRACE__)}
  end

  # the frames of fixture modules: {module, function, arity, line}
  defp user_frames(stack) do
    for {mod, fun, args, loc} <- stack, fixture_module?(mod) do
      {mod, fun, if(is_list(args), do: length(args), else: args), Keyword.get(loc, :line)}
    end
  end

  defp fixture_module?(mod), do: String.starts_with?(Atom.to_string(mod), "Elixir.ESTest.")

  @doc "Replaces the module names of variant `from` by those of `to` inside a term."
  @spec normalize(term(), String.t(), String.t()) :: term()
  def normalize(term, from, to) do
    case term do
      a when is_atom(a) ->
        s = Atom.to_string(a)

        if String.starts_with?(s, from),
          do: String.to_atom(to <> String.trim_leading(s, from)),
          else: a

      l when is_list(l) ->
        normalize_list(l, from, to)

      t when is_tuple(t) ->
        t |> Tuple.to_list() |> Enum.map(&normalize(&1, from, to)) |> List.to_tuple()

      %{} = m ->
        m |> :maps.to_list() |> Enum.map(&normalize(&1, from, to)) |> :maps.from_list()

      other ->
        other
    end
  end

  defp normalize_list([h | t], from, to),
    do: [normalize(h, from, to) | normalize_list(t, from, to)]

  defp normalize_list([], _, _), do: []
  defp normalize_list(tail, from, to), do: normalize(tail, from, to)
end
