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

  defp macro?(mod, fun, arity, env) do
    mod in env.requires and Code.ensure_loaded?(mod) and macro_exported?(mod, fun, arity)
  end
end
