/* The AST transformer: quoted Elixir AST in, instrumented quoted AST out.
 * Both travel as Erlang external term format (term_to_binary), so this
 * component is pure C and testable without the VM. */
#ifndef ELIXIR_SCOPE_AST_TRANSFORM_H
#define ELIXIR_SCOPE_AST_TRANSFORM_H

#include <stddef.h>
#include <stdint.h>

typedef struct es_ast_result {
    uint8_t *etf;     /* malloc'ed ETF of the result term ({ok, Ast} or {error, Reason}); owner: caller */
    size_t etf_len;
} es_ast_result;

/* ast_etf: term_to_binary(ast); plan_etf: term_to_binary(plan) in the
 * transformer's plan format (see ElixirScope.AST.Plan). Returns 0 when a
 * result term (ok or error) was produced, -1 on allocation failure. */
int es_ast_transform(const uint8_t *ast_etf, size_t ast_len, const uint8_t *plan_etf, size_t plan_len,
                     es_ast_result *out);

void es_ast_result_free(es_ast_result *r);

#endif
