defmodule Fidelity.Types do
  @moduledoc """
  Code that returns quoted AST, as typespec builders and code generators do (NimbleOptions'
  `option_typespec`, Ecto's type expansion, Phoenix's generators).
  """

  @basic [:integer, :atom, :boolean, :binary, :float, :pid, :any]

  def typespec, do: quote(do: atom())

  def type_ast(type) when type in @basic, do: quote(do: unquote(type)())
  def type_ast(:string), do: quote(do: String.t())
  def type_ast(:pos_integer), do: quote(do: pos_integer())
  def type_ast({:list, inner}), do: quote(do: [unquote(type_ast(inner))])

  def type_ast({:map, k, v}),
    do: quote(do: %{optional(unquote(type_ast(k))) => unquote(type_ast(v))})

  def type_ast({:in, choices}) when is_list(choices),
    do: Enum.reduce(Enum.reverse(choices), &quote(do: unquote(&1) | unquote(&2)))

  def type_ast({:tuple, types}), do: {:{}, [], Enum.map(types, &type_ast/1)}

  def type_ast({:keyword, keys}),
    do: quote(do: [unquote_splicing(for {k, t} <- keys, do: {k, type_ast(t)})])

  def type_ast(other), do: raise(ArgumentError, "unknown type: #{inspect(other)}")

  def spec_ast(name, args, ret) do
    quote do
      @spec unquote(name)(unquote_splicing(Enum.map(args, &type_ast/1))) :: unquote(type_ast(ret))
    end
  end

  @doc "A getter function definition for each field, as a code generator would emit."
  def getters(struct_name, fields) do
    for {field, type} <- fields do
      var = Macro.var(field, __MODULE__)

      quote do
        @doc unquote("Returns the #{field} of a #{struct_name}.")
        unquote(spec_ast(field, [{:tuple, [:atom]}], type))
        def unquote(field)(%{unquote(field) => unquote(var)}), do: unquote(var)
      end
    end
  end

  def with_bindings(a, b) do
    quote bind_quoted: [a: a, b: b] do
      sum = a + b
      {sum, a * b}
    end
  end

  def escaped(term), do: quote(do: Map.merge(%{}, unquote(Macro.escape(term))))

  def generated(name), do: quote(generated: true, do: def(unquote(name)(), do: :ok))

  def kept, do: quote(location: :keep, do: Fidelity.Types.type_ast(:integer))

  def unquoted_fun, do: quote(do: Enum.map(list, &(&1 * unquote(2))))

  def context_var, do: quote(do: var!(x, Fidelity.Types) + x)

  def to_source(ast), do: Macro.to_string(ast)

  def evaluate(ast, binding) do
    {value, _} = Code.eval_quoted(ast, binding)
    value
  end
end
