/* Declarations of NIF functions that live in component-specific glue files
 * (c_src/nif_<component>.c). c_src/nif.c owns the function table. */
#ifndef ELIXIR_SCOPE_NIF_GLUE_H
#define ELIXIR_SCOPE_NIF_GLUE_H

#include <erl_nif.h>

/* Raises an ElixirScope argument error: %ArgumentError{message: msg}. */
ERL_NIF_TERM es_raise_arg(ErlNifEnv *env, const char *msg);

/* AST transformer (c_src/nif_ast.c): ast_transform(ast_etf, plan_etf) -> result ETF binary */
ERL_NIF_TERM es_nif_ast_transform(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);

#endif
