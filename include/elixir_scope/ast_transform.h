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

/* The same transformation, leaving the result ({ok, Ast} or {error, Reason}) as a term tree
 * (include/elixir_scope/etf.h) so the NIF glue can build VM terms from it directly instead of
 * encoding ETF that Elixir would decode again. Arena blocks come from block_alloc/block_free
 * (NULL: malloc/free). The tree may point into ast_etf and plan_etf, which must outlive it.
 * Returns 0 when a result term was produced, -1 on allocation failure. */
struct es_etf_term;
typedef struct es_ast_tree {
    struct es_arena *arena; /* owns every node of result */
    const struct es_etf_term *result;
} es_ast_tree;

int es_ast_transform_tree(const uint8_t *ast_etf, size_t ast_len, const uint8_t *plan_etf, size_t plan_len,
                          void *(*block_alloc)(size_t), void (*block_free)(void *), es_ast_tree *out);

void es_ast_tree_free(es_ast_tree *t);

#endif
