/* NIF glue of the AST transformer: two binaries in, the result ETF binary out.
 * Runs on a dirty CPU scheduler (see the function table in c_src/nif.c). */
#include <string.h>

#include "elixir_scope/ast_transform.h"
#include "nif_glue.h"

ERL_NIF_TERM es_nif_ast_transform(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    ErlNifBinary ast, plan, out;
    es_ast_result res;
    if (argc != 2) return es_raise_arg(env, "ast_transform/2 expects two binaries");
    if (!enif_inspect_binary(env, argv[0], &ast))
        return es_raise_arg(env, "ast_transform/2: the AST must be a binary (:erlang.term_to_binary(ast))");
    if (!enif_inspect_binary(env, argv[1], &plan))
        return es_raise_arg(env, "ast_transform/2: the plan must be a binary (:erlang.term_to_binary(plan))");
    if (es_ast_transform(ast.data, ast.size, plan.data, plan.size, &res) != 0)
        return enif_raise_exception(env, enif_make_atom(env, "enomem"));
    if (!enif_alloc_binary(res.etf_len, &out)) {
        es_ast_result_free(&res);
        return enif_raise_exception(env, enif_make_atom(env, "enomem"));
    }
    memcpy(out.data, res.etf, res.etf_len);
    es_ast_result_free(&res);
    return enif_make_binary(env, &out);
}
