/* Bounded encoding of captured values into Erlang's external term format
 * (so Elixir decodes them with :erlang.binary_to_term/1).
 *
 * The walker is iterative (explicit stack) and knows nothing of erl_nif:
 * terms are reached through es_term_ops, which the NIF glue implements over
 * ERL_NIF_TERM and the C unit tests implement over a small fake term model.
 *
 * Guarantees:
 * - Cost is bounded by the limits, not by the value: a list is walked for at
 *   most 2 * max_width cells, a map for max_width pairs, a binary copied for
 *   max_binary bytes. (Exceptions, in the glue: a bitstring that is not
 *   byte-aligned and an integer beyond 64 bits are serialised by the VM
 *   before being cut, and a byte-sized binary starting at a bit offset is
 *   copied by enif_inspect_binary; all three are rare.)
 * - The output is always valid ETF: every map's keys stay distinct, whatever
 *   the limits cut (see "key" below).
 *
 * Limits: max_depth, max_width (elements of a list/tuple/map kept), max_binary
 * (bytes of a binary, bitstring or big integer kept), max_bytes (soft budget
 * of the whole encoding). Whatever is cut is replaced by the marker tuple
 *     {:"$es_truncated", Kind, Count}
 * Count is a non-negative integer, or the atom `unknown` where counting would
 * cost more than the limits allow. Elixir turns markers into
 * %ElixirScope.Truncated{}. The rules:
 * - Depth: the root term is at depth 1, a container's elements (and an
 *   improper list's tail) at depth + 1. A list/tuple/map deeper than max_depth
 *   is replaced by {:"$es_truncated", :depth, 1}; scalars are never cut by
 *   depth. max_depth = 0 replaces even a container root.
 * - Width: a list/tuple longer than max_width keeps its first max_width
 *   elements followed by ONE marker element {:"$es_truncated", :list | :tuple,
 *   omitted}. A list is looked at for max_width more cells: when it ends there,
 *   omitted is exact and an improper tail is kept; otherwise omitted is
 *   `unknown` and the kept list ends in []. A map with more than max_width
 *   pairs keeps max_width pairs (in map_pairs order) plus the pair
 *   :"$es_truncated" => {:"$es_truncated", :map, omitted}.
 * - Binary: a binary/bitstring of more than max_binary bytes (a bitstring's
 *   partial last byte counts as one) becomes
 *   {:"$es_truncated", {:binary, <<first max_binary bytes>>}, omitted_bytes},
 *   or {:"$es_truncated", :binary, total_bytes} when max_binary is 0.
 * - Integer: an integer beyond 64 bits whose magnitude is longer than
 *   max_binary bytes becomes {:"$es_truncated", {:integer, Top}, omitted_bytes}
 *   where Top is its max_binary most significant bytes (with its sign), so the
 *   value is about Top * 256^omitted_bytes; {:"$es_truncated", :integer,
 *   total_bytes} when max_binary is 0.
 * - Fun: never serialised with its environment (which may be any size and
 *   hold secrets). `&Mod.name/arity` becomes
 *   {:"$es_truncated", {:fun, {Mod, :name, Arity}}, 0}; a closure becomes
 *   {:"$es_truncated", {:fun, {Mod, Index, Uniq}}, :unknown} (its free
 *   variables are not captured).
 * - Bytes: max_bytes = 0 means no budget. Otherwise, once the encoding is
 *   longer than max_bytes, the next subterm cuts its container: the list or
 *   tuple keeps what is written plus ONE marker {:"$es_truncated", :bytes,
 *   not_written} (a list then ends in []); a map gets the pair
 *   :"$es_truncated" => {:"$es_truncated", :bytes, pairs_not_written}. A map
 *   value whose key is written, an improper tail, or the root becomes
 *   {:"$es_truncated", :bytes, 1}; a [] tail is always written.
 * - Key: a map key whose encoding is not exact (something in it was cut or
 *   redacted, or it holds the atom :"$es_truncated") is written as
 *   {:"$es_truncated", {:key, I}, cut_key}, I being the pair's position, so
 *   two keys cut alike stay distinct, and no exact key can equal a marker.
 * - Other: pids, ports and references are written whole through
 *   ops->external. When an op fails the term is written as
 *   {:"$es_truncated", :other, 1}.
 * ES_CODEC_TRUNCATED is set whenever a marker is written.
 *
 * Redaction: a name (an atom, or a binary of at most 255 bytes) is a secret
 * when, normalised (ASCII lower case; '_', '-', '.' and spaces removed, so
 * `apiKey`, `API_KEY` and `x-api-key` all contain `apikey`), it matches a deny
 * pattern and no allow pattern. Patterns are `name` (equal), `name*`
 * (prefix), `*name` (suffix) and `*name*` (contains), normalised the same way.
 * The value of a map pair whose key is a secret name, and every element after
 * the first of a tuple (any arity >= 2) whose first element is a secret name
 * (keyword pairs, `{:password, v, x}`, `{"authorization", v}` headers), are
 * written as the atom :"[REDACTED]" and ES_CODEC_REDACTED is set.
 *
 * Op return conventions: get_int64, get_double, get_binary, list_cell, tuple
 * return nonzero on success (like enif_get_*; list_cell must return 0 for a
 * term that is not a cons cell: the walker calls it on list tails); get_atom
 * returns the name's length or -1; map_pairs, fun_info and external return 0
 * on success. For ES_T_BITSTRING, get_binary's data holds *size whole bytes
 * plus one more byte whose tail_bits high bits are used (the ETF layout). The
 * walker never keeps pointers returned by ops beyond the encode call. */
#ifndef ELIXIR_SCOPE_TERM_CODEC_H
#define ELIXIR_SCOPE_TERM_CODEC_H

#include <stdatomic.h>
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
    ES_T_BIGINT,   /* an integer beyond int64: its ETF comes from ops->external, then is cut */
    ES_T_FUN,      /* described through ops->fun_info, never serialised */
    ES_T_OTHER     /* pid, port, reference: written through ops->external */
} es_term_type;

#define ES_NAME_MAX 1024 /* UTF-8 bytes of an atom name (255 characters) plus NUL */

typedef struct es_fun_info {
    int external;             /* 1: &module.name/arity; 0: a closure module/index/uniq */
    char module[ES_NAME_MAX]; /* UTF-8, NUL-terminated */
    char name[ES_NAME_MAX];   /* external funs only */
    uint64_t arity;           /* external funs only */
    uint64_t index, uniq;     /* closures only */
} es_fun_info;

/* Optional: how the host lays out small integers, [] and list cells in a term word, so that
 * the walker reads them without an op call (the hot path: argument lists of small values).
 * The glue fills it only after checking it against terms the VM made, at load. */
typedef struct es_term_layout {
    uint64_t small_mask, small_tag; /* a small integer: (value << small_shift) | small_tag */
    unsigned small_shift;
    uint64_t nil;                   /* the word of [] */
    uint64_t atom_mask, atom_tag;   /* an atom (its name then comes from the atom cache, if any) */
    uint64_t list_mask, list_tag;   /* a cons: address | list_tag, pointing at {head, tail} words */
    /* Boxed terms (boxed_mask 0: none read this way): address | boxed_tag, pointing at a header
     * word whose header_mask bits say what follows. A tuple: header (arity << header_shift) |
     * tuple_tag, then its elements. A heap binary (a small, whole binary): header | heap_bin_tag,
     * a word holding its byte size, then the bytes. */
    uint64_t boxed_mask, boxed_tag, header_mask, tuple_tag, heap_bin_tag;
    unsigned header_shift;
    /* Identifiers, written through ops->external without asking ops->type what they are (0: not
     * read this way): a local pid is an immediate, (t & pid_mask) == pid_tag; a local reference is
     * boxed, its header under header_mask is ref_tag. */
    uint64_t pid_mask, pid_tag, ref_tag;
    /* A flat map (0: maps through the ops): boxed, header word == flatmap_header, then its size, a
     * boxed tuple of its keys, and its values, in the order map_pairs gives them. */
    uint64_t flatmap_header;
} es_term_layout;

/* Optional: the encodings of atoms seen before, keyed by term word (an atom's word names the
 * same atom for the life of the VM), so that a known atom costs a copy instead of an op call.
 * Lock-free: a seqlock per slot (its sequence is odd while the slot is rewritten, and only ever
 * grows, so a reader never takes a mix of two atoms); names up to ES_ATOM_CACHE_NAME_MAX bytes
 * (module names such as Elixir.MyApp.Accounts.UserServer included). Zeroed = empty. */
#define ES_ATOM_CACHE_SLOTS 1024
#define ES_ATOM_CACHE_NAME_MAX 46
typedef struct es_atom_cache_slot {
    _Atomic uint64_t seq;    /* even: stable; odd: being written */
    _Atomic uint64_t word;   /* 0 empty, else the atom's term word */
    _Atomic uint64_t etf[6]; /* SMALL_ATOM_UTF8_EXT, length, name */
} es_atom_cache_slot;
typedef struct es_atom_cache {
    es_atom_cache_slot slots[ES_ATOM_CACHE_SLOTS];
} es_atom_cache;

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
    /* Map iteration: fill keys/values (arrays of n <= map_size) with the first n pairs in iteration
       order. Returns 0 on success. The walker allocates the arrays. */
    int (*map_pairs)(void *env, es_term t, es_term *keys, es_term *values, size_t n);
    /* ETF of t without the leading version byte 131, appended to out by the callee through es_buf_put. */
    int (*external)(void *env, es_term t, struct es_buf *out);
    /* For ES_T_FUN: what the fun is (not its environment). */
    int (*fun_info)(void *env, es_term t, es_fun_info *out);
    const es_term_layout *layout; /* NULL: every term through the ops */
    es_atom_cache *atoms;         /* NULL: every atom through get_atom */
} es_term_ops;

/* The length of a proper list of at most max cells (through the layout when there is one):
 * 1 and *len, or 0 when t is not a proper list or is longer than max. */
int es_term_list_length(const es_term_ops *ops, void *env, es_term t, size_t max, size_t *len);

/* Start with caller-provided storage (e.g. a stack array); grows onto the heap. */
void es_buf_init(es_buf *b, uint8_t *storage, size_t cap);
int es_buf_put(es_buf *b, const void *bytes, size_t n);
void es_buf_free(es_buf *b);

typedef struct es_codec_limits {
    uint32_t max_depth;  /* >= 1 */
    uint32_t max_width;  /* >= 1 */
    uint32_t max_binary; /* bytes */
    uint32_t max_bytes;  /* soft budget for the whole encoding; 0 = none */
} es_codec_limits;

/* ---- redaction rules ---- */
#define ES_REDACT_MAX 64         /* patterns per list (deny, allow) */
#define ES_REDACT_PATTERN_MAX 63 /* bytes of a pattern as given */
#define ES_REDACT_NAME_MAX 255   /* longer names are never secret names */
#define ES_REDACT_CACHE 256      /* slots of the per-atom verdict cache */

typedef struct es_redact_rule {
    uint8_t kind; /* exact, prefix, suffix, contains */
    uint8_t len;  /* of text */
    char text[ES_REDACT_PATTERN_MAX + 1]; /* normalised */
} es_redact_rule;

/* Remembers verdicts per atom term word (an atom's word names the same atom
 * for the life of the VM). Lock-free: a slot holds one atom word, and a word
 * is only ever stored in the table of its (fixed) verdict. Zeroed = empty. */
typedef struct es_redact_cache {
    _Atomic uint64_t secret[ES_REDACT_CACHE];
    _Atomic uint64_t clean[ES_REDACT_CACHE];
} es_redact_cache;

typedef struct es_redact_set {
    uint32_t ndeny, nallow;
    es_redact_rule deny[ES_REDACT_MAX];
    es_redact_rule allow[ES_REDACT_MAX];
    es_redact_cache *cache; /* optional (NULL: no caching) */
    /* An index of the deny rules, kept by es_redact_add, so that a name is read once rather than
     * once per rule: bit i of contains_at[c] is set when deny rule i is `*text*` and text starts
     * with byte c; anchored has a bit per exact, prefix and suffix rule. */
    uint64_t contains_at[256];
    uint64_t anchored;
} es_redact_set;

void es_redact_init(es_redact_set *rs);
/* Adds a deny (allow = 0) or allow pattern. Returns NULL, or a message saying what is wrong. */
const char *es_redact_add(es_redact_set *rs, int allow, const char *pattern, size_t len);
/* 1 when name (UTF-8 or bytes) is a secret name under rs. */
int es_redact_secret_name(const es_redact_set *rs, const char *name, size_t len);

/* Result flags */
#define ES_CODEC_TRUNCATED 0x1
#define ES_CODEC_REDACTED 0x2

/* Encodes term as ETF (with the 131 version byte) into out.
 * redact may be NULL. Returns 0 and sets *result_flags, or -1 on allocation failure. Never recurses. */
int es_codec_encode(const es_term_ops *ops, void *env, es_term term, const es_codec_limits *limits,
                    const es_redact_set *redact, es_buf *out, unsigned *result_flags);

/* es_codec_encode for an argument list, which also gives its length (reading its cells once):
 * *length is the number of elements of a proper list of at most ES_CODEC_LIST_MAX, else SIZE_MAX
 * (not a proper list, or a longer one: the caller asks the host). */
#define ES_CODEC_LIST_MAX 255
int es_codec_encode_list(const es_term_ops *ops, void *env, es_term list, const es_codec_limits *limits,
                         const es_redact_set *redact, es_buf *out, unsigned *result_flags, size_t *length);

#endif
