/* Bounded, iterative encoder of terms into Erlang's external term format.
 * See include/elixir_scope/term_codec.h for the limits and markers.
 *
 * The walker keeps an explicit work stack (a small array on the C stack,
 * moved to the heap when it grows), so arbitrarily deep terms never recurse.
 * Containers write their header at once and push their children in reverse
 * order, so the bytes come out in ETF order. */
#include "elixir_scope/term_codec.h"

#include <stdlib.h>
#include <string.h>

/* ---- ETF tags ---- */
#define ETF_VERSION 131
#define ETF_NEW_FLOAT 70
#define ETF_BIT_BINARY 77
#define ETF_SMALL_INTEGER 97
#define ETF_INTEGER 98
#define ETF_SMALL_TUPLE 104
#define ETF_LARGE_TUPLE 105
#define ETF_NIL 106
#define ETF_LIST 108
#define ETF_BINARY 109
#define ETF_SMALL_BIG 110
#define ETF_MAP 116
#define ETF_ATOM_UTF8 118
#define ETF_SMALL_ATOM_UTF8 119

/* ---- es_buf ---- */
void es_buf_init(es_buf *b, uint8_t *storage, size_t cap) {
    b->data = storage;
    b->len = 0;
    b->cap = storage ? cap : 0;
    b->on_heap = 0;
    b->failed = 0;
}

static int buf_grow(es_buf *b, size_t need) {
    if (b->failed) return -1;
    size_t ncap = b->cap ? b->cap * 2 : 256;
    if (ncap < b->len + need) ncap = b->len + need;
    uint8_t *nd;
    if (b->on_heap) {
        nd = realloc(b->data, ncap);
    } else {
        nd = malloc(ncap);
        if (nd && b->len) memcpy(nd, b->data, b->len);
    }
    if (!nd) {
        b->failed = 1;
        return -1;
    }
    b->data = nd;
    b->cap = ncap;
    b->on_heap = 1;
    return 0;
}

int es_buf_put(es_buf *b, const void *bytes, size_t n) {
    if (b->failed) return -1;
    if (b->cap - b->len < n && buf_grow(b, n) != 0) return -1;
    if (n) memcpy(b->data + b->len, bytes, n);
    b->len += n;
    return 0;
}

void es_buf_free(es_buf *b) {
    if (b->on_heap) free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->on_heap = 0;
}

static inline int buf_reserve(es_buf *b, size_t n) { return b->cap - b->len >= n ? 0 : buf_grow(b, n); }

/* memcpy that stays inline for the short strings atoms and small binaries are */
static inline void copy_small(uint8_t *dst, const void *src, size_t n) {
    const uint8_t *s = src;
    if (n <= 16) {
        for (size_t i = 0; i < n; i++) dst[i] = s[i];
    } else {
        memcpy(dst, src, n);
    }
}

static inline int put1(es_buf *b, uint8_t c) {
    if (b->len < b->cap) {
        b->data[b->len++] = c;
        return 0;
    }
    return es_buf_put(b, &c, 1);
}

static inline int put_be32(es_buf *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    return es_buf_put(b, x, 4);
}

static inline int put_tag_be32(es_buf *b, uint8_t tag, uint32_t v) {
    if (buf_reserve(b, 5)) return -1;
    uint8_t *p = b->data + b->len;
    p[0] = tag;
    p[1] = (uint8_t)(v >> 24);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 8);
    p[4] = (uint8_t)v;
    b->len += 5;
    return 0;
}

static int put_int(es_buf *b, int64_t v) {
    if (v >= 0 && v <= 255) {
        if (buf_reserve(b, 2)) return -1;
        b->data[b->len] = ETF_SMALL_INTEGER;
        b->data[b->len + 1] = (uint8_t)v;
        b->len += 2;
        return 0;
    }
    if (v >= INT32_MIN && v <= INT32_MAX) return put_tag_be32(b, ETF_INTEGER, (uint32_t)(int32_t)v);
    uint64_t mag = v < 0 ? (uint64_t)(-(v + 1)) + 1u : (uint64_t)v;
    uint8_t x[3 + 8];
    uint8_t n = 0;
    while (mag) {
        x[3 + n++] = (uint8_t)(mag & 0xff);
        mag >>= 8;
    }
    x[0] = ETF_SMALL_BIG;
    x[1] = n;
    x[2] = v < 0 ? 1 : 0;
    return es_buf_put(b, x, 3u + n);
}

static int put_u64_int(es_buf *b, uint64_t v) {
    if (v <= (uint64_t)INT64_MAX) return put_int(b, (int64_t)v);
    uint8_t x[3 + 8] = {ETF_SMALL_BIG, 8, 0};
    for (int i = 0; i < 8; i++) x[3 + i] = (uint8_t)(v >> (8 * i));
    return es_buf_put(b, x, sizeof x);
}

static int put_atom(es_buf *b, const char *name, size_t len) {
    if (buf_reserve(b, len + 3)) return -1;
    uint8_t *p = b->data + b->len;
    if (len <= 255) {
        p[0] = ETF_SMALL_ATOM_UTF8;
        p[1] = (uint8_t)len;
        p += 2;
        b->len += 2;
    } else {
        p[0] = ETF_ATOM_UTF8;
        p[1] = (uint8_t)(len >> 8);
        p[2] = (uint8_t)len;
        p += 3;
        b->len += 3;
    }
    copy_small(p, name, len);
    b->len += len;
    return 0;
}

#define MARKER_ATOM "$es_truncated"
#define REDACTED_ATOM "[REDACTED]"

/* {:"$es_truncated", kind, count} */
static int put_marker(es_buf *b, const char *kind, uint64_t count) {
    uint8_t x[2] = {ETF_SMALL_TUPLE, 3};
    if (es_buf_put(b, x, 2)) return -1;
    if (put_atom(b, MARKER_ATOM, sizeof(MARKER_ATOM) - 1)) return -1;
    if (put_atom(b, kind, strlen(kind))) return -1;
    return put_u64_int(b, count);
}

/* {:"$es_truncated", {:binary, <<prefix>>}, omitted} */
static int put_binary_marker(es_buf *b, const uint8_t *data, uint32_t keep, uint64_t omitted) {
    uint8_t x[2] = {ETF_SMALL_TUPLE, 3};
    if (es_buf_put(b, x, 2)) return -1;
    if (put_atom(b, MARKER_ATOM, sizeof(MARKER_ATOM) - 1)) return -1;
    uint8_t y[2] = {ETF_SMALL_TUPLE, 2};
    if (es_buf_put(b, y, 2)) return -1;
    if (put_atom(b, "binary", 6)) return -1;
    if (put_tag_be32(b, ETF_BINARY, keep)) return -1;
    if (es_buf_put(b, data, keep)) return -1;
    return put_u64_int(b, omitted);
}

static int put_tuple_header(es_buf *b, uint64_t arity) {
    if (arity <= 255) {
        uint8_t x[2] = {ETF_SMALL_TUPLE, (uint8_t)arity};
        return es_buf_put(b, x, 2);
    }
    return put_tag_be32(b, ETF_LARGE_TUPLE, (uint32_t)arity);
}

/* ---- the work stack ---- */
enum {
    W_TERM = 0,
    W_MARKER,      /* {:"$es_truncated", kind, n} */
    W_REDACTED,    /* :"[REDACTED]" */
    W_MAP_MARKER   /* key :"$es_truncated" and value {:"$es_truncated", :map, n} */
};

typedef struct work {
    es_term t;
    uint64_t n;
    uint32_t depth;
    uint8_t op;
    const char *kind;
} work;

#define SMALL_STACK 32
#define SMALL_MAP 16

typedef struct walker {
    work *items;
    size_t top, cap;
    int on_heap;
    int oom;
} walker;

static int stack_reserve(walker *w, size_t extra) {
    if (w->cap - w->top >= extra) return 0;
    size_t ncap = w->cap * 2;
    if (ncap < w->top + extra) ncap = w->top + extra;
    work *n;
    if (w->on_heap) {
        n = realloc(w->items, ncap * sizeof(work));
    } else {
        n = malloc(ncap * sizeof(work));
        if (n) memcpy(n, w->items, w->top * sizeof(work));
    }
    if (!n) {
        w->oom = 1;
        return -1;
    }
    w->items = n;
    w->cap = ncap;
    w->on_heap = 1;
    return 0;
}

static inline int push_term(walker *w, es_term t, uint32_t depth) {
    if (w->top == w->cap && stack_reserve(w, 1)) return -1;
    work *it = &w->items[w->top++];
    it->t = t;
    it->depth = depth;
    it->op = W_TERM;
    return 0;
}

static inline int push_op(walker *w, uint8_t op, const char *kind, uint64_t n) {
    if (w->top == w->cap && stack_reserve(w, 1)) return -1;
    work *it = &w->items[w->top++];
    it->op = op;
    it->kind = kind;
    it->n = n;
    it->t = 0;
    it->depth = 0;
    return 0;
}

/* ---- redaction ---- */
static int redact_match(const es_term_ops *ops, void *env, es_term key, const es_redact_set *rs) {
    es_term_type ty = ops->type(env, key);
    const char *name;
    size_t len;
    char abuf[1024];
    if (ty == ES_T_ATOM) {
        int n = ops->get_atom(env, key, abuf, sizeof abuf);
        if (n < 0) return 0;
        name = abuf;
        len = (size_t)n;
    } else if (ty == ES_T_BINARY) {
        const uint8_t *d;
        size_t sz;
        unsigned tb = 0;
        if (!ops->get_binary(env, key, &d, &sz, &tb) || tb) return 0;
        name = (const char *)d;
        len = sz;
    } else {
        return 0;
    }
    for (size_t i = 0; i < rs->count && i < ES_REDACT_MAX; i++) {
        const char *r = rs->names[i];
        size_t rl = strnlen(r, sizeof rs->names[i]);
        if (rl == len && memcmp(r, name, len) == 0) return 1;
    }
    return 0;
}

/* ---- the walker ---- */
int es_codec_encode(const es_term_ops *ops, void *env, es_term term, const es_codec_limits *limits,
                    const es_redact_set *redact, es_buf *out, unsigned *result_flags) {
    work small[SMALL_STACK];
    walker w = {small, 0, SMALL_STACK, 0, 0};
    unsigned flags = 0;
    const size_t start = out->len;
    const uint32_t max_depth = limits->max_depth, max_width = limits->max_width;
    const uint32_t max_binary = limits->max_binary, max_bytes = limits->max_bytes;
    const int redacting = redact && redact->count > 0;
    char abuf[1024];
    int rc = 0;

    if (put1(out, ETF_VERSION)) goto fail;
    if (push_term(&w, term, 1)) goto fail;

    while (w.top > 0) {
        work it = w.items[--w.top];
        if (it.op == W_MARKER) {
            if (put_marker(out, it.kind, it.n)) goto fail;
            continue;
        }
        if (it.op == W_REDACTED) {
            if (put_atom(out, REDACTED_ATOM, sizeof(REDACTED_ATOM) - 1)) goto fail;
            continue;
        }
        if (it.op == W_MAP_MARKER) {
            if (put_atom(out, MARKER_ATOM, sizeof(MARKER_ATOM) - 1)) goto fail;
            if (put_marker(out, "map", it.n)) goto fail;
            continue;
        }
        /* W_TERM */
        es_term t = it.t;
        es_term_type ty = ops->type(env, t);
        if (max_bytes && out->len - start > max_bytes && ty != ES_T_NIL) {
            /* [] (one byte) is kept so that lists stay proper */
            flags |= ES_CODEC_TRUNCATED;
            if (put_marker(out, "bytes", 1)) goto fail;
            continue;
        }
        switch (ty) {
        case ES_T_INT: {
            int64_t v;
            if (!ops->get_int64(env, t, &v)) goto other;
            if (put_int(out, v)) goto fail;
            break;
        }
        case ES_T_FLOAT: {
            double d;
            if (!ops->get_double(env, t, &d)) goto other;
            uint64_t bits;
            memcpy(&bits, &d, sizeof bits);
            uint8_t x[9] = {ETF_NEW_FLOAT,         (uint8_t)(bits >> 56), (uint8_t)(bits >> 48),
                            (uint8_t)(bits >> 40), (uint8_t)(bits >> 32), (uint8_t)(bits >> 24),
                            (uint8_t)(bits >> 16), (uint8_t)(bits >> 8),  (uint8_t)bits};
            if (es_buf_put(out, x, 9)) goto fail;
            break;
        }
        case ES_T_ATOM: {
            int n = ops->get_atom(env, t, abuf, sizeof abuf);
            if (n < 0) goto other;
            if (put_atom(out, abuf, (size_t)n)) goto fail;
            break;
        }
        case ES_T_BINARY:
        case ES_T_BITSTRING: {
            const uint8_t *d;
            size_t sz;
            unsigned tail_bits = 0;
            if (!ops->get_binary(env, t, &d, &sz, &tail_bits)) goto other;
            if (ty == ES_T_BINARY) tail_bits = 0;
            size_t total = sz + (tail_bits ? 1 : 0); /* bytes the value occupies */
            if (total > max_binary) {
                flags |= ES_CODEC_TRUNCATED;
                if (max_binary == 0) {
                    if (put_marker(out, "binary", total)) goto fail;
                } else {
                    if (put_binary_marker(out, d, max_binary, total - max_binary)) goto fail;
                }
            } else if (tail_bits) {
                if (put_tag_be32(out, ETF_BIT_BINARY, (uint32_t)total)) goto fail;
                if (put1(out, (uint8_t)tail_bits)) goto fail;
                if (es_buf_put(out, d, total)) goto fail;
            } else {
                if (put_tag_be32(out, ETF_BINARY, (uint32_t)sz)) goto fail;
                if (es_buf_put(out, d, sz)) goto fail;
            }
            break;
        }
        case ES_T_NIL:
            if (put1(out, ETF_NIL)) goto fail;
            break;
        case ES_T_LIST: {
            if (it.depth > max_depth) {
                flags |= ES_CODEC_TRUNCATED;
                if (put_marker(out, "depth", 1)) goto fail;
                break;
            }
            /* One pass over the cells: the first max_width heads go onto the
               stack (reversed afterwards), the rest are only counted. Below
               them: the tail, and above the tail the width marker when
               something was cut. */
            if (stack_reserve(&w, 1)) goto fail;
            size_t base = w.top;
            w.top += 1;
            uint64_t count = 0;
            es_term cur = t, hd, tl;
            while (ops->list_cell(env, cur, &hd, &tl)) {
                if (count < max_width) {
                    if (w.top == w.cap && stack_reserve(&w, 1)) goto fail;
                    work *slot = &w.items[w.top++];
                    slot->t = hd;
                    slot->depth = it.depth + 1;
                    slot->op = W_TERM;
                }
                count++;
                cur = tl;
            }
            uint64_t kept = count < max_width ? count : max_width;
            uint64_t omitted = count - kept;
            work *tail = &w.items[base];
            tail->t = cur;
            tail->depth = it.depth + 1;
            tail->op = W_TERM;
            size_t first = base + 1;
            if (omitted) { /* the marker goes between the tail and the elements */
                if (stack_reserve(&w, 1)) goto fail;
                memmove(&w.items[base + 2], &w.items[base + 1], (size_t)kept * sizeof(work));
                w.top++;
                work *mark = &w.items[base + 1];
                mark->op = W_MARKER;
                mark->kind = "list";
                mark->n = omitted;
                first = base + 2;
            }
            for (size_t i = first, j = w.top - 1; kept > 1 && i < j; i++, j--) {
                work tmp = w.items[i];
                w.items[i] = w.items[j];
                w.items[j] = tmp;
            }
            if (omitted) flags |= ES_CODEC_TRUNCATED;
            if (put_tag_be32(out, ETF_LIST, (uint32_t)(kept + (omitted ? 1 : 0)))) goto fail;
            break;
        }
        case ES_T_TUPLE: {
            if (it.depth > max_depth) {
                flags |= ES_CODEC_TRUNCATED;
                if (put_marker(out, "depth", 1)) goto fail;
                break;
            }
            int arity = 0;
            const es_term *elems = NULL;
            if (!ops->tuple(env, t, &arity, &elems)) goto other;
            uint64_t n = arity > 0 ? (uint64_t)arity : 0;
            uint64_t kept = n < max_width ? n : max_width;
            uint64_t omitted = n - kept;
            if (omitted) flags |= ES_CODEC_TRUNCATED;
            if (put_tuple_header(out, kept + (omitted ? 1 : 0))) goto fail;
            if (stack_reserve(&w, (size_t)kept + 1)) goto fail;
            if (omitted) push_op(&w, W_MARKER, "tuple", omitted);
            int redact_second = 0;
            if (redacting && n == 2 && kept == 2 && redact_match(ops, env, elems[0], redact)) redact_second = 1;
            for (uint64_t i = kept; i-- > 0;) {
                if (i == 1 && redact_second) {
                    flags |= ES_CODEC_REDACTED;
                    push_op(&w, W_REDACTED, NULL, 0);
                } else {
                    push_term(&w, elems[i], it.depth + 1);
                }
            }
            break;
        }
        case ES_T_MAP: {
            if (it.depth > max_depth) {
                flags |= ES_CODEC_TRUNCATED;
                if (put_marker(out, "depth", 1)) goto fail;
                break;
            }
            size_t n = ops->map_size(env, t);
            es_term kbuf[SMALL_MAP], vbuf[SMALL_MAP];
            es_term *keys = kbuf, *vals = vbuf;
            if (n > SMALL_MAP) {
                keys = malloc(n * sizeof(es_term));
                vals = malloc(n * sizeof(es_term));
                if (!keys || !vals) {
                    free(keys);
                    free(vals);
                    goto fail;
                }
            }
            if (n && ops->map_pairs(env, t, keys, vals, n) != 0) {
                if (n > SMALL_MAP) {
                    free(keys);
                    free(vals);
                }
                goto other;
            }
            size_t kept = n < max_width ? n : max_width;
            size_t omitted = n - kept;
            if (omitted) flags |= ES_CODEC_TRUNCATED;
            int bad = put_tag_be32(out, ETF_MAP, (uint32_t)(kept + (omitted ? 1 : 0))) ||
                      stack_reserve(&w, 2 * kept + 1);
            if (!bad) {
                if (omitted) push_op(&w, W_MAP_MARKER, NULL, omitted);
                for (size_t i = kept; i-- > 0;) {
                    if (redacting && redact_match(ops, env, keys[i], redact)) {
                        flags |= ES_CODEC_REDACTED;
                        push_op(&w, W_REDACTED, NULL, 0);
                    } else {
                        push_term(&w, vals[i], it.depth + 1);
                    }
                    push_term(&w, keys[i], it.depth + 1);
                }
            }
            if (n > SMALL_MAP) {
                free(keys);
                free(vals);
            }
            if (bad) goto fail;
            break;
        }
        case ES_T_OTHER:
        default:
        other:
            if (ops->external) {
                size_t before = out->len;
                if (ops->external(env, t, out) == 0 && !out->failed) break;
                if (out->failed) goto fail;
                out->len = before; /* drop a partial write */
            }
            flags |= ES_CODEC_TRUNCATED;
            if (put_marker(out, "other", 1)) goto fail;
            break;
        }
    }
    goto done;
fail:
    rc = -1;
done:
    if (w.on_heap) free(w.items);
    if (out->failed) rc = -1;
    if (result_flags) *result_flags = flags;
    return rc;
}
