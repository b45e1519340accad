defmodule ElixirScope.AST.DoctestTest do
  @moduledoc false
  # The doctests of a module instrumented at :full (macros included) still run:
  # @moduledoc/@doc are kept and the examples give the documented results.
  use ExUnit.Case, async: true

  alias ElixirScope.Test.ASTCorpus

  require ASTCorpus
  ASTCorpus.compile_for_doctest!("doc_math.ex", %{level: :full, macros: true})

  doctest Fixture.DocMath

  test "the instrumented module's docs are the plain module's docs" do
    plain_ast =
      ASTCorpus.load("doc_math.ex")
      |> ASTCorpus.rename([:Fixture, :DocMath], [:ESTest, :DocPlain])

    docs = Code.get_compiler_option(:docs)
    Code.put_compiler_option(:docs, true)
    [{_, plain_bin}] = Code.compile_quoted(plain_ast, "doc_plain.ex")
    Code.put_compiler_option(:docs, docs)
    {:docs_v1, _, _, _, plain_mod_doc, _, plain_docs} = docs_of(plain_bin)
    {:docs_v1, _, _, _, mod_doc, _, docs} = Code.fetch_docs(Fixture.DocMath)
    assert mod_doc == plain_mod_doc
    strip = fn ds -> for {{k, n, a}, _, sig, doc, _} <- ds, do: {k, n, a, sig, doc} end
    assert strip.(docs) == strip.(plain_docs)
  end

  test "the module and its macro are instrumented" do
    assert ASTCorpus.instrumented?(Fixture.DocMath)
    [%{functions: functions}] = Fixture.DocMath.module_info(:attributes)[:elixir_scope]
    assert {{:"MACRO-double", 2}, :full} in functions
    assert {{:sum, 2}, :full} in functions
  end

  test "an instrumented macro expands as the plain one" do
    Code.compile_string("""
    defmodule ESTest.MacroUser do
      require Fixture.DocMath
      def four, do: Fixture.DocMath.double(2)
    end
    """)

    assert apply(ESTest.MacroUser, :four, []) == 4
  end

  defp docs_of(bin) do
    {:ok, {_, [{~c"Docs", chunk}]}} = :beam_lib.chunks(bin, [~c"Docs"])
    :erlang.binary_to_term(chunk)
  end
end
