defmodule ElixirScope.AST.Tail do
  @moduledoc """
  Compile-time helper of the transformer for remote calls in tail position.

  A remote call `Mod.fun(args)` in tail position of an instrumented function is
  wrapped in `marker(index, Mod.fun(args))`. Whether `Mod.fun/n` is a function
  or a macro is only known at expansion time (a macro can only be called when
  its module is required): a function call becomes the marker
  `{:"$es_tail", index, Mod, args...}`, performed as a real tail call after the
  frame's `try`; a macro call stays as it is, returned as a plain value
  `{:"$es_v", value}` (its expansion is not a call whose frame could vanish).
  """

  @doc "See the module doc. Only the transformer generates calls to this macro."
  defmacro marker(index, {{:., _, [mod_ast, fun]}, _, args} = call)
           when is_integer(index) and is_atom(fun) and is_list(args) do
    mod = Macro.expand(mod_ast, __CALLER__)

    if is_atom(mod) and macro?(mod, fun, length(args), __CALLER__) do
      quote do: {:"$es_v", unquote(call)}
    else
      {:{}, [], [:"$es_tail", index, mod_ast | args]}
    end
  end

  defmacro marker(_index, call), do: quote(do: {:"$es_v", unquote(call)})

  @doc """
  For a local call in tail position that is not a function of the module: an
  imported function (from a module other than `Kernel`, whose functions the
  compiler inlines) becomes the marker `{:"$es_tail", index, Module, args...}`;
  anything else (an imported macro, a `Kernel` function) stays a plain value.
  """
  defmacro import_marker(index, {name, _, args} = call)
           when is_integer(index) and is_atom(name) and is_list(args) do
    arity = length(args)

    case Enum.find(__CALLER__.functions, fn {_mod, fs} -> {name, arity} in fs end) do
      {Kernel, _} when name == :apply and arity in [2, 3] ->
        # Kernel.apply is :erlang.apply, a real tail call in the plain code
        {:{}, [], [:"$es_tail", index, :erlang | args]}

      {mod, _} when mod != Kernel ->
        # the module is named through a capture made in the caller's scope, so the import
        # counts as used (no "unused import" warning); the compiler folds it to the atom
        capture = {:&, [], [{:/, [], [{name, [], nil}, arity]}]}
        mod_expr = quote(do: :erlang.element(1, {unquote(mod), unquote(capture)}))
        {:{}, [], [:"$es_tail", index, mod_expr | args]}

      _ ->
        quote do: {:"$es_v", unquote(call)}
    end
  end

  defmacro import_marker(_index, call), do: quote(do: {:"$es_v", unquote(call)})

  defp macro?(mod, fun, arity, env) do
    mod in env.requires and Code.ensure_loaded?(mod) and macro_exported?(mod, fun, arity)
  end
end
