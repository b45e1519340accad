/* A small decoder/encoder of Erlang's external term format (ETF) into a C
 * term tree, for the AST transformer. Pure C, no erl_nif.
 *
 * Types decoded into nodes: atoms (every atom tag; latin-1 atoms are turned
 * into UTF-8), small and 32-bit integers, new floats, binaries, [] and lists
 * (STRING_EXT is expanded into a list of integers; improper lists keep their
 * tail), tuples and maps. Anything else (big integers, pids, ports,
 * references, funs, bit strings, old floats) is kept as RAW: the bytes of one
 * complete term, written back unchanged.
 *
 * Every walk (decode, skip, encode) is iterative with an explicit stack on the
 * heap, so the nesting depth of the input never touches the C stack.
 *
 * Memory: every node is allocated in an es_arena, freed all at once.
 * Decoded binaries, atoms and RAW terms point into the input buffer, which
 * must outlive the arena's use. */
#ifndef ELIXIR_SCOPE_ETF_H
#define ELIXIR_SCOPE_ETF_H

#include <stddef.h>
#include <stdint.h>

/* ---- arena ---- */
typedef struct es_arena_block es_arena_block;
typedef struct es_arena {
    es_arena_block *head;
    size_t used;  /* bytes used in head */
    size_t cap;   /* capacity of head */
    int failed;   /* an allocation failed */
    void *(*block_alloc)(size_t); /* malloc unless set by es_arena_init_with */
    void (*block_free)(void *);
} es_arena;

void es_arena_init(es_arena *a);
/* Blocks come from alloc/free (e.g. enif_alloc/enif_free, whose pooled memory avoids fresh page faults). */
void es_arena_init_with(es_arena *a, void *(*alloc)(size_t), void (*free_fn)(void *));
void *es_arena_alloc(es_arena *a, size_t n); /* zeroed, 8-byte aligned; NULL (and failed=1) on OOM */
void es_arena_free(es_arena *a);

/* ---- terms ---- */
typedef enum es_etf_kind {
    ES_ETF_ATOM = 1,
    ES_ETF_INT,
    ES_ETF_FLOAT,
    ES_ETF_BINARY,
    ES_ETF_NIL,
    ES_ETF_LIST,  /* n elements in items[0..n-1], the tail in items[n] (a NIL node when proper) */
    ES_ETF_TUPLE, /* n elements */
    ES_ETF_MAP,   /* n pairs: items[2i] key, items[2i+1] value */
    ES_ETF_RAW    /* bytes: one complete ETF term (without the 131 version byte) */
} es_etf_kind;

typedef struct es_etf_term es_etf_term;
struct es_etf_term {
    uint8_t kind;
    uint32_t n;            /* atom/binary/raw: byte length; list/tuple: elements; map: pairs */
    union {
        int64_t i;
        double f;
        const uint8_t *bytes;
        es_etf_term **items;
    } u;
};

typedef enum es_etf_status {
    ES_ETF_OK = 0,
    ES_ETF_EBADARG,   /* malformed or unsupported input */
    ES_ETF_ETOODEEP,  /* nesting beyond max_depth */
    ES_ETF_ENOMEM
} es_etf_status;

/* Decodes buf (starting with the version byte 131) into *out.
 * On error, *err_offset (if not NULL) is the byte offset where it was found. */
es_etf_status es_etf_decode(es_arena *a, const uint8_t *buf, size_t len, size_t max_depth, es_etf_term **out,
                            size_t *err_offset);

/* Encodes t (with the version byte) into a malloc'ed buffer owned by the caller. */
es_etf_status es_etf_encode(const es_etf_term *t, uint8_t **out, size_t *out_len);

/* Length of the complete term at buf[0..len) (no version byte), iteratively; 0 when malformed. */
size_t es_etf_skip(const uint8_t *buf, size_t len);

/* ---- constructors (arena-allocated; NULL when the arena failed) ----
 * Terms are immutable once built and may be shared ([] is a single static node). */
es_etf_term *es_etf_atom(es_arena *a, const char *name); /* name must outlive the tree (e.g. a literal) */
es_etf_term *es_etf_atom_n(es_arena *a, const uint8_t *name, size_t len);
es_etf_term *es_etf_int(es_arena *a, int64_t v);
es_etf_term *es_etf_binary(es_arena *a, const uint8_t *bytes, size_t len); /* bytes must outlive the tree */
es_etf_term *es_etf_nil(es_arena *a);
es_etf_term *es_etf_tuple(es_arena *a, uint32_t n);       /* elements to be filled in */
es_etf_term *es_etf_list(es_arena *a, uint32_t n);        /* elements to be filled; tail set to [] */
es_etf_term *es_etf_tuple_of(es_arena *a, uint32_t n, ...); /* n es_etf_term* */
es_etf_term *es_etf_list_of(es_arena *a, uint32_t n, ...);  /* n es_etf_term*, proper */

/* ---- inspection ---- */
int es_etf_is_atom(const es_etf_term *t, const char *name);
int es_etf_is_proper_list(const es_etf_term *t); /* [] or a list with a [] tail */
uint32_t es_etf_list_len(const es_etf_term *t);  /* elements of a proper list (0 for []) */
es_etf_term *es_etf_list_at(const es_etf_term *t, uint32_t i);
/* The value of key (an atom name) in a map or keyword list, or NULL. */
es_etf_term *es_etf_get(const es_etf_term *map_or_kw, const char *key);

#endif
