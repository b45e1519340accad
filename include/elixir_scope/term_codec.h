/* Bounded encoding of captured values into Erlang's external term format
 * (so Elixir decodes them with :erlang.binary_to_term/1).
 *
 * The walker is iterative (explicit stack) and knows nothing of erl_nif:
 * terms are reached through es_term_ops, which the NIF glue implements over
 * ERL_NIF_TERM and the C unit tests implement over a small fake term model.
 *
 * Limits: max_depth, max_width (elements of a list/tuple/map kept), max_binary
 * (bytes of a binary kept), max_bytes (soft budget of the whole encoding).
 * Whatever is cut is replaced by the marker tuple
 *     {:"$es_truncated", Kind, Count}
 * with Kind one of depth | list | tuple | map | binary | bytes and Count the
 * number of elements/bytes that were left out (for depth and bytes: 1 per
 * subterm replaced). Elixir turns markers into %ElixirScope.Truncated{}.
 *
 * Redaction: a map value whose key, or a 2-tuple's second element whose
 * first element (keyword lists), is an atom or binary named in the redact
 * set is replaced by the atom :"[REDACTED]" before it is written.
 *
 * Precise rules (implementation notes, added by the capture core):
 * - Depth: the root term is at depth 1, a container's elements (and an
 *   improper list's tail) at depth + 1. A list/tuple/map deeper than max_depth
 *   is replaced by {:"$es_truncated", :depth, 1}; scalars are never cut by
 *   depth. max_depth = 0 replaces even a container root.
 * - Width: a list/tuple longer than max_width keeps its first max_width
 *   elements followed by ONE marker element {:"$es_truncated", :list | :tuple,
 *   omitted} (so it has max_width + 1 elements; an improper list keeps its
 *   tail). A map with more than max_width pairs keeps max_width pairs (in
 *   map_pairs order) plus the pair
 *   :"$es_truncated" => {:"$es_truncated", :map, omitted}.
 * - Binary: a binary/bitstring of more than max_binary bytes (a bitstring's
 *   partial last byte counts as one) becomes
 *   {:"$es_truncated", {:binary, <<first max_binary bytes>>}, omitted_bytes},
 *   or {:"$es_truncated", :binary, total_bytes} when max_binary is 0.
 *   So Kind is an atom, except for a binary prefix, where it is {:binary, prefix}.
 * - Bytes: max_bytes = 0 means no budget. Otherwise, once the encoding is
 *   longer than max_bytes, every subterm not yet written is replaced by
 *   {:"$es_truncated", :bytes, 1} (containers already opened stay valid ETF;
 *   [] is always written, so proper lists stay proper).
 * - Other: when an op fails, or ES_T_OTHER and ops->external is NULL or
 *   fails without an allocation failure, the term is written as
 *   {:"$es_truncated", :other, 1}.
 * - Redaction applies to a 2-tuple's second element (only when the tuple is
 *   not width-truncated) and to map values; the flag ES_CODEC_REDACTED is set.
 * Op return conventions: get_int64, get_double, get_binary, list_cell, tuple
 * return nonzero on success (like enif_get_*; list_cell must return 0 for a
 * term that is not a cons cell: the walker calls it on list tails); get_atom returns the name's
 * length or -1; map_pairs and external return 0 on success. For
 * ES_T_BITSTRING, get_binary's data holds *size whole bytes plus one more
 * byte whose tail_bits high bits are used (the ETF layout). The walker never
 * keeps pointers returned by ops beyond the encode call. */
#ifndef ELIXIR_SCOPE_TERM_CODEC_H
#define ELIXIR_SCOPE_TERM_CODEC_H

#include <stddef.h>
#include <stdint.h>

typedef uint64_t es_term; /* an opaque term word, ERL_NIF_TERM in the NIF */

typedef struct es_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    int on_heap;  /* data was malloc'ed by es_buf and must be freed */
    int failed;   /* an allocation failed; the content is incomplete */
} es_buf;

typedef enum es_term_type {
    ES_T_INT = 0,  /* fits int64 */
    ES_T_FLOAT,
    ES_T_ATOM,
    ES_T_BINARY,   /* byte-aligned binary */
    ES_T_BITSTRING,/* not byte-aligned */
    ES_T_NIL,      /* [] */
    ES_T_LIST,     /* a cons cell */
    ES_T_TUPLE,
    ES_T_MAP,
    ES_T_OTHER     /* bignum, pid, port, reference, fun: written through ops->external */
} es_term_type;

typedef struct es_term_ops {
    es_term_type (*type)(void *env, es_term t);
    int (*get_int64)(void *env, es_term t, int64_t *out);
    int (*get_double)(void *env, es_term t, double *out);
    /* Writes the atom's UTF-8 name into buf (size cap); returns length or -1. */
    int (*get_atom)(void *env, es_term t, char *buf, size_t cap);
    /* For ES_T_BINARY and ES_T_BITSTRING: data, whole bytes, and the bits used in the last byte (0 = whole). */
    int (*get_binary)(void *env, es_term t, const uint8_t **data, size_t *size, unsigned *tail_bits);
    int (*list_cell)(void *env, es_term t, es_term *head, es_term *tail);
    int (*tuple)(void *env, es_term t, int *arity, const es_term **elems);
    size_t (*map_size)(void *env, es_term t);
    /* Map iteration: fill keys/values (arrays of map_size) in iteration order. Returns 0 on success.
       The walker allocates the arrays. */
    int (*map_pairs)(void *env, es_term t, es_term *keys, es_term *values, size_t n);
    /* ETF of t without the leading version byte 131, appended to out by the callee through es_buf_put. */
    int (*external)(void *env, es_term t, struct es_buf *out);
} es_term_ops;

/* Start with caller-provided storage (e.g. a stack array); grows onto the heap. */
void es_buf_init(es_buf *b, uint8_t *storage, size_t cap);
int es_buf_put(es_buf *b, const void *bytes, size_t n);
void es_buf_free(es_buf *b);

typedef struct es_codec_limits {
    uint32_t max_depth;  /* >= 1 */
    uint32_t max_width;  /* >= 1 */
    uint32_t max_binary; /* bytes */
    uint32_t max_bytes;  /* soft budget for the whole encoding */
} es_codec_limits;

#define ES_REDACT_MAX 64
typedef struct es_redact_set {
    size_t count;
    char names[ES_REDACT_MAX][64]; /* atom names / binary keys, NUL-terminated */
} es_redact_set;

/* Result flags */
#define ES_CODEC_TRUNCATED 0x1
#define ES_CODEC_REDACTED 0x2

/* Encodes term as ETF (with the 131 version byte) into out.
 * Returns 0 and sets *result_flags, or -1 on allocation failure. Never recurses. */
int es_codec_encode(const es_term_ops *ops, void *env, es_term term, const es_codec_limits *limits,
                    const es_redact_set *redact, es_buf *out, unsigned *result_flags);

#endif
