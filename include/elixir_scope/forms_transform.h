/* The forms transformer: a module's Erlang abstract forms in (what the Elixir compiler hands to
 * the Erlang compiler, after every macro is expanded), the instrumented forms out. Both travel as
 * external term format, so this component is pure C and testable without the VM.
 *
 * Working on the expanded forms (as OTP's cover does) is what makes the instrumented program
 * behave as the plain one: quote results, macros in tail position and modules defined by code
 * at compile time are all already final here. See docs/ast_transformer.md. */
#ifndef ELIXIR_SCOPE_FORMS_TRANSFORM_H
#define ELIXIR_SCOPE_FORMS_TRANSFORM_H

#include <stddef.h>
#include <stdint.h>

struct es_etf_term;
struct es_arena;

typedef struct es_forms_tree {
    struct es_arena *arena; /* owns every node of result */
    const struct es_etf_term *result; /* {ok, Forms} | {error, Reason} */
} es_forms_tree;

/* forms_etf: term_to_binary(Forms); plan_etf: term_to_binary(Plan), the plan built by
 * ElixirScope.Compiler.ParseTransform (module, templates, source, secrets, functions).
 * The result tree may point into both buffers, which must outlive it. Arena blocks come from
 * block_alloc/block_free (NULL: malloc/free). Returns 0 when a result term was produced, -1 on
 * allocation failure. */
int es_forms_transform_tree(const uint8_t *forms_etf, size_t forms_len, const uint8_t *plan_etf,
                            size_t plan_len, void *(*block_alloc)(size_t), void (*block_free)(void *),
                            es_forms_tree *out);

void es_forms_tree_free(es_forms_tree *t);

/* The same, encoded: *out_etf (malloc'ed, owned by the caller) is term_to_binary of the result. */
int es_forms_transform(const uint8_t *forms_etf, size_t forms_len, const uint8_t *plan_etf, size_t plan_len,
                       uint8_t **out_etf, size_t *out_len);

#endif
