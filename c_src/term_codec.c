/* Bounded, iterative encoder of terms into Erlang's external term format.
 * See include/elixir_scope/term_codec.h for the limits and markers.
 *
 * The walker keeps an explicit work stack (a small array on the C stack,
 * moved to the heap when it grows), so arbitrarily deep terms never recurse.
 * Containers write their header at once and push their children in reverse
 * order, so the bytes come out in ETF order. Each container also pushes a
 * frame (where its header is, how many slots it declares) below its children,
 * so that the byte budget can cut it short and patch the header. */
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
#define ETF_LARGE_BIG 111
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

#define INT_ETF_MAX 11

/* The ETF of an integer at d (INT_ETF_MAX bytes of room); returns its length. */
static inline size_t int_etf(uint8_t *d, int64_t v) {
    if (v >= 0 && v <= 255) {
        d[0] = ETF_SMALL_INTEGER;
        d[1] = (uint8_t)v;
        return 2;
    }
    if (v >= INT32_MIN && v <= INT32_MAX) {
        uint32_t u = (uint32_t)(int32_t)v;
        d[0] = ETF_INTEGER;
        d[1] = (uint8_t)(u >> 24);
        d[2] = (uint8_t)(u >> 16);
        d[3] = (uint8_t)(u >> 8);
        d[4] = (uint8_t)u;
        return 5;
    }
    uint64_t mag = v < 0 ? (uint64_t)(-(v + 1)) + 1u : (uint64_t)v;
    uint8_t n = 0;
    while (mag) {
        d[3 + n++] = (uint8_t)(mag & 0xff);
        mag >>= 8;
    }
    d[0] = ETF_SMALL_BIG;
    d[1] = n;
    d[2] = v < 0 ? 1 : 0;
    return 3u + n;
}

static int put_int(es_buf *b, int64_t v) {
    if (buf_reserve(b, INT_ETF_MAX)) return -1;
    b->len += int_etf(b->data + b->len, v);
    return 0;
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
#define MARKER_LEN (sizeof(MARKER_ATOM) - 1)
#define REDACTED_ATOM "[REDACTED]"
#define COUNT_UNKNOWN UINT64_MAX

/* a marker's count: an integer, or the atom `unknown` */
static int put_count(es_buf *b, uint64_t n) {
    if (n == COUNT_UNKNOWN) return put_atom(b, "unknown", 7);
    return put_u64_int(b, n);
}

/* {:"$es_truncated", (then the caller writes kind and count) */
static int put_marker_head(es_buf *b) {
    uint8_t x[2] = {ETF_SMALL_TUPLE, 3};
    if (es_buf_put(b, x, 2)) return -1;
    return put_atom(b, MARKER_ATOM, MARKER_LEN);
}

static int put_small_tuple_header(es_buf *b, uint8_t arity) {
    uint8_t x[2] = {ETF_SMALL_TUPLE, arity};
    return es_buf_put(b, x, 2);
}

/* {:"$es_truncated", kind, count} */
static int put_marker(es_buf *b, const char *kind, uint64_t count) {
    if (put_marker_head(b)) return -1;
    if (put_atom(b, kind, strlen(kind))) return -1;
    return put_count(b, count);
}

/* {:"$es_truncated", {:binary, <<prefix>>}, omitted} */
static int put_binary_marker(es_buf *b, const uint8_t *data, uint32_t keep, uint64_t omitted) {
    if (put_marker_head(b) || put_small_tuple_header(b, 2) || put_atom(b, "binary", 6)) return -1;
    if (put_tag_be32(b, ETF_BINARY, keep)) return -1;
    if (es_buf_put(b, data, keep)) return -1;
    return put_u64_int(b, omitted);
}

/* {:"$es_truncated", {:integer, Top}, omitted_bytes}; top: the most significant bytes, little-endian */
static int put_integer_marker(es_buf *b, uint8_t sign, const uint8_t *top, uint32_t keep, uint64_t omitted) {
    if (put_marker_head(b) || put_small_tuple_header(b, 2) || put_atom(b, "integer", 7)) return -1;
    if (keep <= 255) {
        uint8_t x[3] = {ETF_SMALL_BIG, (uint8_t)keep, sign};
        if (es_buf_put(b, x, 3)) return -1;
    } else {
        if (put_tag_be32(b, ETF_LARGE_BIG, keep) || put1(b, sign)) return -1;
    }
    if (es_buf_put(b, top, keep)) return -1;
    return put_u64_int(b, omitted);
}

static int put_tuple_header(es_buf *b, uint64_t arity) {
    if (arity <= 255) return put_small_tuple_header(b, (uint8_t)arity);
    return put_tag_be32(b, ETF_LARGE_TUPLE, (uint32_t)arity);
}

static void patch_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* ---- redaction rules ---- */
enum { RK_EXACT = 0, RK_PREFIX, RK_SUFFIX, RK_CONTAINS };

/* ASCII lower case without '_', '-', '.' and spaces: `apiKey`, `API_KEY`, `x-api-key` contain `apikey`. */
static size_t normalize(const char *in, size_t len, char *out) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '_' || c == '-' || c == '.' || c == ' ') continue;
        if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
        out[n++] = (char)c;
    }
    return n;
}

void es_redact_init(es_redact_set *rs) { memset(rs, 0, sizeof *rs); }

const char *es_redact_add(es_redact_set *rs, int allow, const char *p, size_t len) {
    uint32_t *count = allow ? &rs->nallow : &rs->ndeny;
    if (*count >= ES_REDACT_MAX) return "at most 64 redaction patterns per list";
    if (len == 0 || len > ES_REDACT_PATTERN_MAX) return "a redaction pattern must be 1 to 63 bytes long";
    int lead = p[0] == '*';
    int trail = len > 1 && p[len - 1] == '*';
    const char *inner = p + lead;
    size_t ilen = len - (size_t)lead - (size_t)trail;
    if (memchr(inner, '*', ilen)) return "'*' may only begin or end a redaction pattern";
    es_redact_rule *r = allow ? &rs->allow[*count] : &rs->deny[*count];
    size_t n = normalize(inner, ilen, r->text);
    if (n == 0) return "a redaction pattern must name something besides '*', '_', '-', '.' and spaces";
    r->text[n] = '\0';
    r->len = (uint8_t)n;
    r->kind = lead && trail ? RK_CONTAINS : lead ? RK_SUFFIX : trail ? RK_PREFIX : RK_EXACT;
    if (!allow && r->kind == RK_CONTAINS) rs->contains_at[(unsigned char)r->text[0]] |= 1ull << *count;
    else if (!allow) rs->anchored |= 1ull << *count;
    (*count)++;
    return NULL;
}

static int rule_match(const es_redact_rule *r, const char *s, size_t n) {
    if (n < r->len) return 0;
    switch (r->kind) {
    case RK_EXACT: return n == r->len && memcmp(s, r->text, n) == 0;
    case RK_PREFIX: return memcmp(s, r->text, r->len) == 0;
    case RK_SUFFIX: return memcmp(s + n - r->len, r->text, r->len) == 0;
    default: return memmem(s, n, r->text, r->len) != NULL;
    }
}

/* Whether some deny rule matches the normalised name: the anchored rules each at their one place,
 * the `*text*` rules at the places holding their first byte (one pass over the name, through
 * contains_at, instead of a substring search per rule). */
static int deny_match(const es_redact_set *rs, const char *s, size_t n) {
    for (uint64_t m = rs->anchored; m; m &= m - 1)
        if (rule_match(&rs->deny[__builtin_ctzll(m)], s, n)) return 1;
    for (size_t i = 0; i < n; i++)
        for (uint64_t m = rs->contains_at[(unsigned char)s[i]]; m; m &= m - 1) {
            const es_redact_rule *r = &rs->deny[__builtin_ctzll(m)];
            /* the second byte first: most places that hold a pattern's first byte are no match */
            if (r->len <= n - i && (r->len == 1 || s[i + 1] == r->text[1]) && memcmp(s + i, r->text, r->len) == 0)
                return 1;
        }
    return 0;
}

int es_redact_secret_name(const es_redact_set *rs, const char *name, size_t len) {
    char norm[ES_REDACT_NAME_MAX];
    if (!rs || len > ES_REDACT_NAME_MAX) return 0;
    size_t n = normalize(name, len, norm);
    if (n == 0 || !deny_match(rs, norm, n)) return 0;
    for (uint32_t j = 0; j < rs->nallow && j < ES_REDACT_MAX; j++)
        if (rule_match(&rs->allow[j], norm, n)) return 0;
    return 1;
}

static inline size_t cache_slot(es_term t) {
    return (size_t)(((uint64_t)t * 0x9E3779B97F4A7C15ull) >> 32) % ES_REDACT_CACHE;
}

/* The header word of a boxed term (ops->layout), or NULL when t is not boxed or boxes are not read. */
static inline const uint64_t *boxed(const es_term_layout *l, es_term t) {
    if (!l || !l->boxed_mask || (t & l->boxed_mask) != l->boxed_tag) return NULL;
    return (const uint64_t *)(uintptr_t)(t - l->boxed_tag);
}

/* Whether a map key or a tuple's first element names a secret. */
static int secret_term(const es_term_ops *ops, void *env, es_term key, const es_redact_set *rs) {
    const es_term_layout *l = ops->layout;
    const uint64_t *box = boxed(l, key);
    es_term_type ty;
    if (l && (key & l->atom_mask) == l->atom_tag) ty = ES_T_ATOM; /* the usual tag: no op call */
    else if (l && ((key & l->small_mask) == l->small_tag || key == l->nil || (key & l->list_mask) == l->list_tag ||
                   (l->pid_mask && (key & l->pid_mask) == l->pid_tag)))
        return 0; /* only atoms and binaries name things */
    else if (box && (box[0] & l->header_mask) == l->heap_bin_tag)
        return es_redact_secret_name(rs, (const char *)(box + 2), (size_t)box[1]);
    else if (box && ((box[0] & l->header_mask) == l->tuple_tag || (l->flatmap_header && box[0] == l->flatmap_header) ||
                     (l->ref_tag && (box[0] & l->header_mask) == l->ref_tag)))
        return 0;
    else ty = ops->type(env, key);
    if (ty == ES_T_ATOM) {
        es_redact_cache *c = rs->cache;
        size_t slot = cache_slot(key);
        if (c) {
            if (atomic_load_explicit(&c->clean[slot], memory_order_relaxed) == key) return 0;
            if (atomic_load_explicit(&c->secret[slot], memory_order_relaxed) == key) return 1;
        }
        char name[ES_NAME_MAX];
        int n = ops->get_atom(env, key, name, sizeof name);
        if (n < 0) return 0;
        int secret = es_redact_secret_name(rs, name, (size_t)n);
        if (c) atomic_store_explicit(secret ? &c->secret[slot] : &c->clean[slot], key, memory_order_relaxed);
        return secret;
    }
    if (ty == ES_T_BINARY) {
        const uint8_t *d;
        size_t sz;
        unsigned tb = 0;
        if (!ops->get_binary(env, key, &d, &sz, &tb) || tb) return 0;
        return es_redact_secret_name(rs, (const char *)d, sz);
    }
    return 0;
}

/* ---- the work stack ---- */
enum {
    W_TERM = 0,
    W_MARKER,     /* {:"$es_truncated", kind, n} */
    W_REDACTED,   /* :"[REDACTED]" */
    W_MAP_MARKER, /* key :"$es_truncated" and value {:"$es_truncated", :map, n} */
    W_NIL,        /* [] ending a list cut short */
    W_FRAME,      /* a container: t = offset of its header in out, n = slots declared */
    W_KEY_END     /* after a map key: t = its offset, n = inexact count before it, depth = pair position */
};

/* where an item sits in its container (what a spent byte budget does to it) */
enum { R_ROOT = 0, R_ELEM, R_KEY, R_VALUE, R_TAIL, R_PAIR, R_NONE };
enum { C_LIST = 0, C_SMALL_TUPLE, C_LARGE_TUPLE, C_MAP };
enum { K_DEPTH = 0, K_LIST, K_TUPLE, K_MAP, K_BINARY, K_BYTES, K_OTHER, K_INTEGER };
static const char *const KIND_NAME[] = {"depth", "list", "tuple", "map", "binary", "bytes", "other", "integer"};

#define NO_PARENT UINT32_MAX

typedef struct work {
    es_term t;
    uint64_t n;
    uint32_t depth;
    uint32_t parent; /* stack index of the enclosing W_FRAME */
    uint8_t op, role, kind;
} work;

#define SMALL_STACK 32
#define SMALL_MAP 16

typedef struct walker {
    work *items;
    size_t top, cap;
    int on_heap;
} walker;

static int stack_reserve(walker *w, size_t extra) {
    if (w->cap - w->top >= extra) return 0;
    size_t ncap = w->cap * 2;
    if (ncap < w->top + extra) ncap = w->top + extra;
    if (ncap >= NO_PARENT) return -1; /* parent indexes are 32-bit */
    work *n;
    if (w->on_heap) {
        n = realloc(w->items, ncap * sizeof(work));
    } else {
        n = malloc(ncap * sizeof(work));
        if (n) memcpy(n, w->items, w->top * sizeof(work));
    }
    if (!n) return -1;
    w->items = n;
    w->cap = ncap;
    w->on_heap = 1;
    return 0;
}

/* Callers reserve first. */
static inline work *push(walker *w, uint8_t op, uint8_t role, size_t parent) {
    work *it = &w->items[w->top++];
    it->op = op;
    it->role = role;
    it->parent = (uint32_t)parent;
    return it;
}

static inline void push_term(walker *w, es_term t, uint32_t depth, uint8_t role, size_t parent) {
    work *it = push(w, W_TERM, role, parent);
    it->t = t;
    it->depth = depth;
}

static inline void push_marker(walker *w, uint8_t op, uint8_t kind, uint64_t n, uint8_t role, size_t parent) {
    work *it = push(w, op, role, parent);
    it->kind = kind;
    it->n = n;
}

static inline size_t push_frame(walker *w, size_t at, uint8_t ckind, uint64_t slots, uint32_t parent) {
    size_t fi = w->top;
    work *f = push(w, W_FRAME, R_NONE, parent);
    f->t = at;
    f->kind = ckind;
    f->n = slots;
    return fi;
}

/* ---- the encoder ---- */
typedef struct enc {
    const es_term_ops *ops;
    void *env;
    es_buf *out;
    unsigned flags;
    uint64_t inexact; /* markers, redactions and :"$es_truncated" atoms written so far (keys compare it) */
    uint32_t max_binary;
    walker w;
} enc;

static int marker(enc *e, int kind, uint64_t n) {
    e->flags |= ES_CODEC_TRUNCATED;
    e->inexact++;
    return put_marker(e->out, KIND_NAME[kind], n);
}

/* The byte budget is spent at x, an element or a key: x and its remaining
 * siblings are dropped, the container's header is patched to what was written
 * plus one marker saying how much was not. */
static int cut_container(enc *e, const work *x) {
    walker *w = &e->w;
    size_t fi = x->parent;
    const work *f = &w->items[fi];
    uint64_t slots = 1, omitted = 1; /* x itself */
    for (size_t i = fi + 1; i < w->top; i++) {
        const work *s = &w->items[i];
        if (s->role != R_ELEM && s->role != R_KEY && s->role != R_PAIR) continue;
        slots++;
        if (omitted == COUNT_UNKNOWN) continue;
        if (s->op == W_MARKER || s->op == W_MAP_MARKER) omitted = s->n == COUNT_UNKNOWN ? COUNT_UNKNOWN : omitted + s->n;
        else omitted++;
    }
    uint64_t count = f->n - slots + 1;
    uint8_t *h = e->out->data + f->t;
    uint8_t ckind = f->kind;
    if (ckind == C_SMALL_TUPLE) h[1] = (uint8_t)count;
    else patch_be32(h + 1, (uint32_t)count);
    w->top = fi + 1; /* the frame stays, a no-op when popped */
    if (ckind == C_MAP && put_atom(e->out, MARKER_ATOM, MARKER_LEN)) return -1;
    if (marker(e, K_BYTES, omitted)) return -1;
    if (ckind == C_LIST) return put1(e->out, ETF_NIL);
    return 0;
}

static int over_budget(enc *e, const work *x) {
    switch (x->role) {
    case R_TAIL:
        if (e->ops->type(e->env, x->t) == ES_T_NIL) return put1(e->out, ETF_NIL);
        return marker(e, K_BYTES, 1);
    case R_ELEM:
    case R_KEY:
        return cut_container(e, x);
    default: /* the root, or a value whose key is written */
        return marker(e, K_BYTES, 1);
    }
}

/* A key that is not exact becomes {:"$es_truncated", {:key, index}, key}: the
 * key's bytes (from `at` to the end) move right to make room for the head. */
static int wrap_key(enc *e, size_t at, uint32_t index) {
    uint8_t pre[48];
    size_t n = 0;
    pre[n++] = ETF_SMALL_TUPLE;
    pre[n++] = 3;
    pre[n++] = ETF_SMALL_ATOM_UTF8;
    pre[n++] = MARKER_LEN;
    memcpy(pre + n, MARKER_ATOM, MARKER_LEN);
    n += MARKER_LEN;
    pre[n++] = ETF_SMALL_TUPLE;
    pre[n++] = 2;
    pre[n++] = ETF_SMALL_ATOM_UTF8;
    pre[n++] = 3;
    memcpy(pre + n, "key", 3);
    n += 3;
    if (index <= 255) {
        pre[n++] = ETF_SMALL_INTEGER;
        pre[n++] = (uint8_t)index;
    } else {
        pre[n++] = ETF_INTEGER;
        patch_be32(pre + n, index);
        n += 4;
    }
    es_buf *b = e->out;
    if (buf_reserve(b, n)) return -1;
    memmove(b->data + at + n, b->data + at, b->len - at);
    memcpy(b->data + at, pre, n);
    b->len += n;
    e->flags |= ES_CODEC_TRUNCATED;
    e->inexact++;
    return 0;
}

/* {:"$es_truncated", {:fun, {Mod, :name, Arity}}, 0} or {:"$es_truncated", {:fun, {Mod, Index, Uniq}}, :unknown} */
static int put_fun(enc *e, es_term t) {
    es_fun_info fi;
    memset(&fi, 0, sizeof fi);
    if (!e->ops->fun_info || e->ops->fun_info(e->env, t, &fi) != 0) return marker(e, K_OTHER, 1);
    fi.module[ES_NAME_MAX - 1] = fi.name[ES_NAME_MAX - 1] = '\0';
    es_buf *b = e->out;
    e->flags |= ES_CODEC_TRUNCATED;
    e->inexact++;
    if (put_marker_head(b) || put_small_tuple_header(b, 2) || put_atom(b, "fun", 3) || put_small_tuple_header(b, 3) ||
        put_atom(b, fi.module, strlen(fi.module)))
        return -1;
    if (fi.external)
        return put_atom(b, fi.name, strlen(fi.name)) || put_u64_int(b, fi.arity) || put_u64_int(b, 0) ? -1 : 0;
    return put_u64_int(b, fi.index) || put_u64_int(b, fi.uniq) || put_count(b, COUNT_UNKNOWN) ? -1 : 0;
}

/* An integer beyond int64: its ETF (SMALL_BIG/LARGE_BIG) from ops->external, cut to max_binary bytes. */
static int put_bigint(enc *e, es_term t, uint32_t max_binary) {
    uint8_t storage[64];
    es_buf tmp;
    es_buf_init(&tmp, storage, sizeof storage);
    int ok = e->ops->external && e->ops->external(e->env, t, &tmp) == 0;
    if (tmp.failed) {
        es_buf_free(&tmp);
        return -1;
    }
    size_t nd = 0, hdr = 0;
    uint8_t sign = 0;
    if (ok && tmp.len >= 3 && tmp.data[0] == ETF_SMALL_BIG) {
        nd = tmp.data[1];
        sign = tmp.data[2];
        hdr = 3;
    } else if (ok && tmp.len >= 6 && tmp.data[0] == ETF_LARGE_BIG) {
        nd = (size_t)tmp.data[1] << 24 | (size_t)tmp.data[2] << 16 | (size_t)tmp.data[3] << 8 | tmp.data[4];
        sign = tmp.data[5];
        hdr = 6;
    } else {
        ok = 0;
    }
    int rc;
    if (!ok || tmp.len != hdr + nd || nd == 0) rc = marker(e, K_OTHER, 1);
    else if (nd <= max_binary) rc = es_buf_put(e->out, tmp.data, tmp.len);
    else if (max_binary == 0) rc = marker(e, K_INTEGER, nd);
    else {
        e->flags |= ES_CODEC_TRUNCATED;
        e->inexact++;
        rc = put_integer_marker(e->out, sign, tmp.data + hdr + nd - max_binary, max_binary, nd - max_binary);
    }
    es_buf_free(&tmp);
    return rc;
}

static int put_float(es_buf *b, double d) {
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    uint8_t x[9] = {ETF_NEW_FLOAT,         (uint8_t)(bits >> 56), (uint8_t)(bits >> 48),
                    (uint8_t)(bits >> 40), (uint8_t)(bits >> 32), (uint8_t)(bits >> 24),
                    (uint8_t)(bits >> 16), (uint8_t)(bits >> 8),  (uint8_t)bits};
    return es_buf_put(b, x, 9);
}

static void reverse(work *items, size_t from, size_t to /* exclusive */) {
    for (size_t i = from, j = to - 1; to - from > 1 && i < j; i++, j--) {
        work tmp = items[i];
        items[i] = items[j];
        items[j] = tmp;
    }
}

static int put_redacted(enc *e) {
    e->flags |= ES_CODEC_REDACTED;
    e->inexact++;
    return put_atom(e->out, REDACTED_ATOM, sizeof(REDACTED_ATOM) - 1);
}

/* Pids, ports, references (or a term an op failed on): through ops->external, else a marker. */
static int put_other(enc *e, es_term t) {
    es_buf *out = e->out;
    if (e->ops->external) {
        size_t before = out->len;
        if (e->ops->external(e->env, t, out) == 0 && !out->failed) return 0;
        if (out->failed) return -1;
        out->len = before; /* drop a partial write */
    }
    return marker(e, K_OTHER, 1);
}

static inline int is_scalar(es_term_type ty) { return ty <= ES_T_NIL; }

static inline size_t atom_etf(es_atom_cache *c, es_term t, uint8_t *d);

/* Heap binaries the layout reads (the VM keeps binaries of up to 64 bytes on the heap). */
#define HEAP_BIN_MAX 64
/* Room immediate_etf may write: a heap binary's 5-byte header and bytes is the largest. */
#define IMMEDIATE_ETF_MAX (5 + HEAP_BIN_MAX)

/* The ETF of t at d (IMMEDIATE_ETF_MAX bytes of room) when it is read from the term itself
 * (a layout is set): a small integer, [], a cached atom, or a heap binary of at most max_binary
 * bytes (so that nothing is cut). Returns its length, or 0 when t is none of those. */
static inline __attribute__((always_inline)) size_t immediate_etf(const es_term_layout *l, es_atom_cache *atoms,
                                                                  uint32_t max_binary, es_term t, uint8_t *d) {
    if ((t & l->small_mask) == l->small_tag) return int_etf(d, (int64_t)t >> l->small_shift);
    if (t == l->nil) {
        d[0] = ETF_NIL;
        return 1;
    }
    if ((t & l->atom_mask) == l->atom_tag) return atoms ? atom_etf(atoms, t, d) : 0;
    const uint64_t *box = boxed(l, t);
    if (!box || (box[0] & l->header_mask) != l->heap_bin_tag || box[1] > max_binary || box[1] > HEAP_BIN_MAX) return 0;
    uint32_t n = (uint32_t)box[1];
    d[0] = ETF_BINARY;
    d[1] = (uint8_t)(n >> 24);
    d[2] = (uint8_t)(n >> 16);
    d[3] = (uint8_t)(n >> 8);
    d[4] = (uint8_t)n;
    copy_small(d + 5, box + 2, n);
    return 5u + n;
}

/* immediate_etf into e->out: 1 written, 0 not such a term, -1 out of memory. */
static inline int put_immediate(enc *e, es_term t) {
    const es_term_layout *l = e->ops->layout;
    if (!l) return 0;
    if (buf_reserve(e->out, IMMEDIATE_ETF_MAX)) return -1;
    size_t n = immediate_etf(l, e->ops->atoms, e->max_binary, t, e->out->data + e->out->len);
    e->out->len += n;
    return n != 0;
}

/* The type of t, read from the term itself where the layout says how (no op call). */
static inline es_term_type type_of(const enc *e, es_term t) {
    const es_term_layout *l = e->ops->layout;
    if (l) {
        if ((t & l->list_mask) == l->list_tag) return ES_T_LIST;
        const uint64_t *box = boxed(l, t);
        if (box && (box[0] & l->header_mask) == l->tuple_tag) return ES_T_TUPLE;
    }
    return e->ops->type(e->env, t);
}

/* A tuple's arity and elements, read from the term itself where the layout says how. */
static inline int tuple_of(const enc *e, es_term t, int *arity, const es_term **elems) {
    const es_term_layout *l = e->ops->layout;
    const uint64_t *box = boxed(l, t);
    if (box && (box[0] & l->header_mask) == l->tuple_tag) {
        *arity = (int)(box[0] >> l->header_shift);
        *elems = (const es_term *)(box + 1);
        return 1;
    }
    return e->ops->tuple(e->env, t, arity, elems);
}

static inline int list_cell(const enc *e, es_term t, es_term *hd, es_term *tl) {
    const es_term_layout *l = e->ops->layout;
    if (!l) return e->ops->list_cell(e->env, t, hd, tl);
    if ((t & l->list_mask) != l->list_tag) return 0;
    const es_term *cell = (const es_term *)(uintptr_t)(t - l->list_tag);
    *hd = cell[0];
    *tl = cell[1];
    return 1;
}

static inline int is_nil(const enc *e, es_term t) {
    const es_term_layout *l = e->ops->layout;
    return l ? t == l->nil : e->ops->type(e->env, t) == ES_T_NIL;
}

int es_term_list_length(const es_term_ops *ops, void *env, es_term t, size_t max, size_t *len) {
    enc e = {ops, env, NULL, 0, 0, 0, {NULL, 0, 0, 0}};
    es_term hd;
    size_t n = 0;
    while (n <= max && list_cell(&e, t, &hd, &t)) n++;
    if (n > max || !is_nil(&e, t)) return 0;
    *len = n;
    return 1;
}

/* ---- the atom cache ---- */
static inline es_atom_cache_slot *atom_slot(es_atom_cache *c, es_term t) {
    return &c->slots[(size_t)((t * 0x9E3779B97F4A7C15ull) >> 40) % ES_ATOM_CACHE_SLOTS];
}

#define ATOM_ETF_WORDS (sizeof(((es_atom_cache_slot *)0)->etf) / sizeof(uint64_t))
_Static_assert(ES_ATOM_CACHE_NAME_MAX + 2 == 8 * ATOM_ETF_WORDS && ATOM_ETF_WORDS == 6,
               "a slot holds the header and the longest name, in the 6 words atom_etf reads");
_Static_assert(IMMEDIATE_ETF_MAX >= 8 * ATOM_ETF_WORDS, "immediate_etf's room takes a cached atom's words");

/* A cached atom's ETF at d (8 * ATOM_ETF_WORDS bytes of room, all of which it may write): its
 * length, or 0 when t is not cached (or its slot is being rewritten). */
static inline __attribute__((always_inline)) size_t atom_etf(es_atom_cache *c, es_term t, uint8_t *d) {
    es_atom_cache_slot *s = atom_slot(c, t);
    uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
    if ((seq & 1) || atomic_load_explicit(&s->word, memory_order_relaxed) != t) return 0;
    /* word by word from registers into d (its room is scratch until the caller counts it): a copy
     * through a stack array stalls on store forwarding. Three words hold names of up to 22 bytes. */
    uint64_t w0 = atomic_load_explicit(&s->etf[0], memory_order_relaxed);
    uint64_t w1 = atomic_load_explicit(&s->etf[1], memory_order_relaxed);
    uint64_t w2 = atomic_load_explicit(&s->etf[2], memory_order_relaxed);
    size_t n = (size_t)((const uint8_t *)&w0)[1] + 2; /* SMALL_ATOM_UTF8_EXT, length, name */
    memcpy(d, &w0, 8);
    memcpy(d + 8, &w1, 8);
    memcpy(d + 16, &w2, 8);
    if (n > 24) {
        uint64_t w3 = atomic_load_explicit(&s->etf[3], memory_order_relaxed);
        uint64_t w4 = atomic_load_explicit(&s->etf[4], memory_order_relaxed);
        uint64_t w5 = atomic_load_explicit(&s->etf[5], memory_order_relaxed);
        memcpy(d + 24, &w3, 8);
        memcpy(d + 32, &w4, 8);
        memcpy(d + 40, &w5, 8);
    }
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&s->seq, memory_order_relaxed) != seq || n > 8 * ATOM_ETF_WORDS) return 0; /* rewritten */
    return n;
}

/* Writes a cached atom's ETF: 1 written, 0 not cached, -1 out of memory. */
static int atom_cached(es_atom_cache *c, es_term t, es_buf *out) {
    if (buf_reserve(out, 8 * ATOM_ETF_WORDS)) return -1;
    size_t n = atom_etf(c, t, out->data + out->len);
    out->len += n;
    return n != 0;
}

/* Remembers the ETF of an atom just written (n bytes at etf), in place of what its slot held; a
 * slot another thread is writing is left alone. */
static void atom_remember(es_atom_cache *c, es_term t, const uint8_t *etf, size_t n) {
    es_atom_cache_slot *s = atom_slot(c, t);
    uint64_t seq = atomic_load_explicit(&s->seq, memory_order_relaxed), w[ATOM_ETF_WORDS] = {0};
    if (t == 0 || n > sizeof w || etf[0] != ETF_SMALL_ATOM_UTF8 || (seq & 1)) return;
    if (!atomic_compare_exchange_strong_explicit(&s->seq, &seq, seq + 1, memory_order_relaxed, memory_order_relaxed))
        return;
    atomic_thread_fence(memory_order_release); /* the odd sequence is seen before any of the stores below */
    memcpy(w, etf, n);
    atomic_store_explicit(&s->word, t, memory_order_relaxed);
    for (size_t i = 0; i < ATOM_ETF_WORDS; i++) atomic_store_explicit(&s->etf[i], w[i], memory_order_relaxed);
    atomic_store_explicit(&s->seq, seq + 2, memory_order_release);
}

/* A term that is neither a container nor special (is_scalar). */
/* A binary's bytes (d, sz whole bytes, then tail_bits of one more), or its first max_binary bytes
 * in a marker. */
static int put_bits(enc *e, const uint8_t *d, size_t sz, unsigned tail_bits, uint32_t max_binary) {
    es_buf *out = e->out;
    size_t total = sz + (tail_bits ? 1 : 0); /* bytes the value occupies */
    if (total > max_binary) {
        if (max_binary == 0) return marker(e, K_BINARY, total);
        e->flags |= ES_CODEC_TRUNCATED;
        e->inexact++;
        return put_binary_marker(out, d, max_binary, total - max_binary);
    }
    if (tail_bits) {
        if (put_tag_be32(out, ETF_BIT_BINARY, (uint32_t)total) || put1(out, (uint8_t)tail_bits)) return -1;
        return es_buf_put(out, d, total);
    }
    if (put_tag_be32(out, ETF_BINARY, (uint32_t)sz)) return -1;
    return es_buf_put(out, d, sz);
}

static int put_scalar(enc *e, es_term t, es_term_type ty, uint32_t max_binary) {
    const es_term_ops *ops = e->ops;
    es_buf *out = e->out;
    switch (ty) {
    case ES_T_INT: {
        int64_t v;
        if (!ops->get_int64(e->env, t, &v)) return put_other(e, t);
        return put_int(out, v);
    }
    case ES_T_FLOAT: {
        double d;
        if (!ops->get_double(e->env, t, &d)) return put_other(e, t);
        return put_float(out, d);
    }
    case ES_T_ATOM: {
        int hit = ops->atoms ? atom_cached(ops->atoms, t, out) : 0;
        if (hit) return hit < 0 ? -1 : 0;
        char name[ES_NAME_MAX];
        int n = ops->get_atom(e->env, t, name, sizeof name);
        if (n < 0) return put_other(e, t);
        int marker_atom = n == (int)MARKER_LEN && memcmp(name, MARKER_ATOM, MARKER_LEN) == 0;
        if (marker_atom) e->inexact++; /* never cached: it must be counted */
        size_t at = out->len;
        if (put_atom(out, name, (size_t)n)) return -1;
        if (ops->atoms && !marker_atom) atom_remember(ops->atoms, t, out->data + at, out->len - at);
        return 0;
    }
    case ES_T_BINARY:
    case ES_T_BITSTRING: {
        const uint8_t *d;
        size_t sz;
        unsigned tail_bits = 0;
        if (!ops->get_binary(e->env, t, &d, &sz, &tail_bits)) return put_other(e, t);
        return put_bits(e, d, sz, ty == ES_T_BINARY ? 0 : tail_bits, max_binary);
    }
    default: /* ES_T_NIL */
        return put1(out, ETF_NIL);
    }
}

/* A map's header and pairs (the first `kept` of its iteration, `omitted` more).
 * Leading pairs of scalars are written at once (the fast path), a key that is
 * not exact wrapped on the spot; from the first other pair on, pairs are
 * pushed: value, W_KEY_END, key, so the key's end is seen before its value. */
static int map_body(enc *e, const work *it, const es_term *keys, const es_term *vals, size_t kept, size_t omitted,
                    const es_codec_limits *lim, const es_redact_set *rs, size_t start) {
    const es_term_ops *ops = e->ops;
    void *env = e->env;
    es_buf *out = e->out;
    walker *w = &e->w;
    uint64_t slots = kept + (omitted ? 1 : 0);
    if (stack_reserve(w, 3 * kept + 2)) return -1;
    size_t fi = push_frame(w, out->len, C_MAP, slots, it->parent);
    if (put_tag_be32(out, ETF_MAP, (uint32_t)slots)) return -1;
    size_t i = 0;
    for (; i < kept && (!lim->max_bytes || out->len - start <= lim->max_bytes); i++) {
        es_term_type kty = ops->type(env, keys[i]), vty = ES_T_NIL;
        if (!is_scalar(kty)) break;
        int secret = rs && secret_term(ops, env, keys[i], rs);
        if (!secret && !is_scalar(vty = ops->type(env, vals[i]))) break;
        size_t at = out->len;
        uint64_t before = e->inexact;
        if (put_scalar(e, keys[i], kty, lim->max_binary)) return -1;
        if (e->inexact != before && wrap_key(e, at, (uint32_t)i)) return -1;
        int rc = secret                                                          ? put_redacted(e)
                 : lim->max_bytes && out->len - start > lim->max_bytes ? marker(e, K_BYTES, 1) /* as pushed values */
                                                                         : put_scalar(e, vals[i], vty, lim->max_binary);
        if (rc) return -1;
    }
    if (i == kept) { /* nothing pushed: no frame needed */
        w->top = fi;
        if (omitted && (put_atom(out, MARKER_ATOM, MARKER_LEN) || marker(e, K_MAP, omitted))) return -1;
        return 0;
    }
    if (omitted) push_marker(w, W_MAP_MARKER, K_MAP, omitted, R_PAIR, fi);
    for (size_t j = kept; j-- > i;) {
        if (rs && secret_term(ops, env, keys[j], rs)) push(w, W_REDACTED, R_VALUE, fi);
        else push_term(w, vals[j], it->depth + 1, R_VALUE, fi);
        push(w, W_KEY_END, R_NONE, fi)->depth = (uint32_t)j;
        push_term(w, keys[j], it->depth + 1, R_KEY, fi);
    }
    return 0;
}

/* ---- the hot path ----
 * A small term the layout reads (tuples, proper and improper lists and flat maps, nested in any
 * shape, down to small integers, [], atoms, heap binaries and identifiers) is written in one
 * recursive pass, without the work stack. Leaves the layout does not read (a float, a long atom,
 * an integer beyond the small ones, a refc binary within max_binary, a port) are written by the
 * walker's own writers, so every byte is the walker's; so are the redaction atom that replaces the
 * value of a map key or the rest of a tuple tag naming a secret, and the marker of a binary over
 * max_binary outside map keys. The pass gives up (returns 0, nothing written) wherever the walker
 * would write something else: a container deeper than max_depth or wider than max_width, any other
 * marker (a fun, a failed op, a cut binary inside a key) or the marker atom, more than max_bytes in
 * all; and past
 * FAST_DEPTH levels, FAST_TERMS terms or FAST_BYTES bytes, which bound the work it may waste.
 * test_layout_and_atom_cache and test_fast_path_matches_walker compare its bytes with the
 * walker's. */
#define FAST_DEPTH 16
#define FAST_TERMS 256
#define FAST_BYTES 2048

typedef struct fast {
    const es_term_layout *l;
    enc *e;
    es_atom_cache *atoms;
    const es_redact_set *rs;
    size_t start;    /* where the encoding began (its version byte) */
    size_t byte_cap; /* give up once more than this is written */
    uint32_t max_depth, max_width, max_binary;
    uint32_t terms;    /* left to visit */
    uint32_t in_key;   /* > 0 while a map key is written (an inexact key is wrapped: the walker's) */
    uint64_t redacted; /* values written as the redaction atom, */
    uint64_t cut;      /* and binaries cut at max_binary: what e->inexact may count */
} fast;

/* Nothing inexact written but the pass's own redactions and cut binaries: no other marker. */
static inline int fast_exact(const fast *f) {
    return !(f->e->flags & ~(unsigned)(ES_CODEC_REDACTED | ES_CODEC_TRUNCATED)) &&
           f->e->inexact == f->redacted + f->cut;
}

/* The value of a secret (a map key or a tuple tag names one): the atom the walker writes too. */
static int fast_redacted(fast *f) {
    f->redacted++;
    return put_redacted(f->e) ? -1 : 1;
}

static int fast_container(fast *f, es_term t, uint32_t depth);

/* One element at depth (IMMEDIATE_ETF_MAX bytes reserved): a scalar the layout reads inline (lay:
 * the caller's copy of the layout, which the compiler keeps in registers: the byte stores may
 * alias anything in memory), anything else through fast_container. 1 written, 0 give up, -1 out of
 * memory. */
static inline __attribute__((always_inline)) int fast_elem(fast *f, const es_term_layout *lay, es_term t,
                                                           uint32_t depth) {
    es_buf *out = f->e->out;
    size_t k = immediate_etf(lay, f->atoms, f->max_binary, t, out->data + out->len);
    if (!k) return out->len - f->start > f->byte_cap ? 0 : fast_container(f, t, depth);
    out->len += k;
    return 1;
}

/* Takes n terms from the budget of terms visited; 0 when it is spent. */
static inline int fast_spend(fast *f, uint64_t n) {
    if (f->terms < n) return 0;
    f->terms -= (uint32_t)n;
    return 1;
}

/* A tag and a 32-bit count (room reserved by the caller). */
static inline void tag_be32(es_buf *out, uint8_t tag, uint32_t n) {
    uint8_t *p = out->data + out->len;
    p[0] = tag;
    patch_be32(p + 1, n);
    out->len += 5;
}

/* A list (t is a cons) at depth: its header, its cells, its tail; *count: its length when it is
 * proper. */
static int fast_list(fast *f, es_term t, uint32_t depth, size_t *count) {
    es_buf *out = f->e->out;
    const es_term_layout lay = *f->l;
    const uint32_t max_width = f->max_width;
    const size_t limit = f->start + f->byte_cap;
    /* wider than max_width: the walker cuts it. A list inside the payload is counted before anything
     * is written, so that a long one (a list walk's argument, an accumulator) costs its first
     * max_width cells read, not written and then written again by the walker. An argument list
     * (count set) is not: its length is the arity, short, and a second chase of its cells would
     * cost each entry event a few nanoseconds. */
    es_term cur = t;
    for (uint32_t m = 0; !count && (cur & lay.list_mask) == lay.list_tag; m++) {
        if (m == max_width) return 0;
        cur = ((const es_term *)(uintptr_t)(cur - lay.list_tag))[1];
    }
    const size_t hdr = out->len;
    tag_be32(out, ETF_LIST, 0);
    cur = t;
    uint32_t n = 0;
    do {
        const es_term *cell = (const es_term *)(uintptr_t)(cur - lay.list_tag);
        if (n == max_width || out->len > limit) return 0; /* wider than max_width: the walker cuts it */
        if (buf_reserve(out, IMMEDIATE_ETF_MAX)) return -1;
        size_t k = immediate_etf(&lay, f->atoms, f->max_binary, cell[0], out->data + out->len);
        if (k) {
            out->len += k;
        } else {
            int r = fast_container(f, cell[0], depth + 1);
            if (r <= 0) return r;
        }
        n++;
        cur = cell[1];
    } while ((cur & lay.list_mask) == lay.list_tag);
    if (!fast_spend(f, n)) return 0;
    patch_be32(out->data + hdr + 1, n);
    if (cur != lay.nil) /* an improper tail */
        return buf_reserve(out, IMMEDIATE_ETF_MAX) ? -1 : fast_elem(f, &lay, cur, depth + 1);
    if (count) *count = n;
    return put1(out, ETF_NIL) ? -1 : 1;
}

static int fast_tuple(fast *f, const uint64_t *box, uint32_t depth) {
    es_buf *out = f->e->out;
    const es_term_layout lay = *f->l;
    const uint64_t arity = box[0] >> lay.header_shift;
    const es_term *elems = (const es_term *)(box + 1);
    if (arity > f->max_width || !fast_spend(f, arity)) return 0;
    /* a tuple tagged with a secret name: {:password, v}, {"authorization", v}, {:token, v, x} */
    const int redact_rest = f->rs && arity >= 2 && secret_term(f->e->ops, f->e->env, elems[0], f->rs);
    if (arity <= 255) {
        out->data[out->len++] = ETF_SMALL_TUPLE;
        out->data[out->len++] = (uint8_t)arity;
    } else {
        tag_be32(out, ETF_LARGE_TUPLE, (uint32_t)arity);
    }
    for (uint64_t i = 0; i < arity; i++) {
        int r = i >= 1 && redact_rest             ? fast_redacted(f)
                : buf_reserve(out, IMMEDIATE_ETF_MAX) ? -1
                                                      : fast_elem(f, &lay, elems[i], depth + 1);
        if (r <= 0) return r;
    }
    return 1;
}

/* A flat map: size, a tuple of its keys, its values (the pairs in map_pairs order). */
static int fast_map(fast *f, const uint64_t *box, uint32_t depth) {
    es_buf *out = f->e->out;
    const es_term_layout lay = *f->l;
    const uint64_t n = box[1];
    const uint64_t *keys_box = boxed(&lay, (es_term)box[2]);
    if (n > f->max_width || !keys_box || (keys_box[0] & lay.header_mask) != lay.tuple_tag ||
        keys_box[0] >> lay.header_shift != n || !fast_spend(f, 2 * n))
        return 0;
    const es_term *keys = (const es_term *)(keys_box + 1), *vals = (const es_term *)(box + 3);
    tag_be32(out, ETF_MAP, (uint32_t)n);
    for (uint64_t i = 0; i < n; i++) {
        const int secret = f->rs && secret_term(f->e->ops, f->e->env, keys[i], f->rs);
        f->in_key++;
        int r = buf_reserve(out, IMMEDIATE_ETF_MAX) ? -1 : fast_elem(f, &lay, keys[i], depth + 1);
        f->in_key--;
        if (r > 0)
            r = secret                                ? fast_redacted(f)
                : buf_reserve(out, IMMEDIATE_ETF_MAX) ? -1
                                                      : fast_elem(f, &lay, vals[i], depth + 1);
        if (r <= 0) return r;
    }
    return 1;
}

/* A term at depth that is not a scalar the layout reads (IMMEDIATE_ETF_MAX bytes reserved). */
static int fast_container(fast *f, es_term t, uint32_t depth) {
    enc *e = f->e;
    const es_term_layout *l = f->l;
    const uint64_t *box;
    const int deep = depth > f->max_depth || depth > FAST_DEPTH; /* a container there: the walker's marker */
    if ((t & l->list_mask) == l->list_tag) return deep ? 0 : fast_list(f, t, depth, NULL);
    if (l->pid_mask && (t & l->pid_mask) == l->pid_tag) return put_other(e, t) ? -1 : 1;
    if ((box = boxed(l, t)) != NULL) {
        uint64_t h = box[0];
        if ((h & l->header_mask) == l->tuple_tag) return deep ? 0 : fast_tuple(f, box, depth);
        if (l->flatmap_header && h == l->flatmap_header) return deep ? 0 : fast_map(f, box, depth);
        if (l->ref_tag && (h & l->header_mask) == l->ref_tag) return put_other(e, t) ? -1 : 1;
    }
    es_term_type ty = e->ops->type(e->env, t);
    if (ty == ES_T_BINARY) {
        /* a binary the layout does not read inline (refc, sub-binary: a string over 64 bytes) is
         * written from its bytes when it fits max_binary, else as the walker's marker, its first
         * max_binary bytes and the count of the others (a value only: a key holding a marker is
         * wrapped, which only the walker does); within the pass's byte budget */
        const uint8_t *d;
        size_t sz;
        unsigned tail_bits = 0;
        if (!e->ops->get_binary(e->env, t, &d, &sz, &tail_bits)) return 0;
        const size_t kept = sz < f->max_binary ? sz : f->max_binary;
        if (e->out->len + kept + 64 - f->start > f->byte_cap) return 0;
        if (sz > f->max_binary) {
            if (f->in_key || f->max_binary == 0) return 0;
            f->cut++;
        }
        return put_bits(e, d, sz, 0, f->max_binary) ? -1 : 1;
    }
    if (ty == ES_T_BITSTRING) return 0;
    if (is_scalar(ty)) return put_scalar(e, t, ty, f->max_binary) ? -1 : fast_exact(f);
    if (ty == ES_T_BIGINT) return put_bigint(e, t, f->max_binary) ? -1 : 1;
    if (ty == ES_T_OTHER) return put_other(e, t) ? -1 : 1;
    return 0; /* a fun (always a marker), or a container the layout does not read */
}

/* The root through the hot path: 1 written (and *list_len, for a proper list of at most
 * ES_CODEC_LIST_MAX), 0 left to the walker with nothing written, -1 out of memory. A leaf that
 * wrote a marker or the marker atom shows in e->flags or e->inexact beyond the pass's own
 * redactions and cut binaries (fast_exact): the walker then redoes it. */
static int encode_fast(enc *e, es_term t, size_t start, const es_codec_limits *lim, const es_redact_set *rs,
                       size_t *list_len) {
    const es_term_layout *l = e->ops->layout;
    if (!l) return 0;
    es_buf *out = e->out;
    const size_t at = out->len;
    fast f = {l, e, e->ops->atoms, rs, start, lim->max_bytes && lim->max_bytes < FAST_BYTES ? lim->max_bytes : FAST_BYTES,
              lim->max_depth, lim->max_width, lim->max_binary, FAST_TERMS, 0, 0, 0};
    size_t n = SIZE_MAX;
    int r;
    if (buf_reserve(out, IMMEDIATE_ETF_MAX)) r = -1;
    else if ((t & l->list_mask) != l->list_tag) r = fast_elem(&f, l, t, 1);
    else r = lim->max_depth < 1 ? 0 : fast_list(&f, t, 1, list_len ? &n : NULL); /* an argument list: counted as it is written */
    if (r < 0) return -1;
    if (r == 0 || !fast_exact(&f) || (lim->max_bytes && out->len - start > lim->max_bytes)) {
        out->len = at;
        e->flags = 0;
        e->inexact = 0;
        return 0;
    }
    if (list_len && n <= ES_CODEC_LIST_MAX) *list_len = n;
    return 1;
}

/* ---- the walker ----
 * Every term the one-pass path leaves, from `start` (its version byte written). Kept out of line:
 * its work stack and locals make a frame of kilobytes that the common event never needs. */
static __attribute__((noinline)) int walk(const es_term_ops *ops, void *env, es_term term,
                                          const es_codec_limits *limits, const es_redact_set *rs, es_buf *out,
                                          size_t start, unsigned *result_flags) {
    work small[SMALL_STACK];
    enc e = {ops, env, out, 0, 0, limits->max_binary, {small, 0, SMALL_STACK, 0}};
    walker *w = &e.w;
    const uint32_t max_depth = limits->max_depth, max_width = limits->max_width;
    const uint32_t max_binary = limits->max_binary, max_bytes = limits->max_bytes;
    int rc = 0;

    push_term(w, term, 1, R_ROOT, NO_PARENT);

    while (w->top > 0) {
        work it = w->items[--w->top];
        switch (it.op) {
        case W_TERM: break;
        case W_FRAME: continue;
        case W_MARKER:
            if (marker(&e, it.kind, it.n)) goto fail;
            continue;
        case W_REDACTED:
            if (put_redacted(&e)) goto fail;
            continue;
        case W_MAP_MARKER:
            if (put_atom(out, MARKER_ATOM, MARKER_LEN) || marker(&e, K_MAP, it.n)) goto fail;
            continue;
        case W_NIL:
            if (put1(out, ETF_NIL)) goto fail;
            continue;
        case W_KEY_END:
            if (e.inexact != it.n && wrap_key(&e, (size_t)it.t, it.depth)) goto fail;
            continue;
        default: continue;
        }
        /* W_TERM */
        es_term t = it.t;
        if (it.role == R_KEY) { /* its W_KEY_END is right below: note where the key starts */
            w->items[w->top - 1].t = out->len;
            w->items[w->top - 1].n = e.inexact;
        }
        if (max_bytes && out->len - start > max_bytes) {
            if (over_budget(&e, &it)) goto fail;
            continue;
        }
        int imm = put_immediate(&e, t);
        if (imm < 0) goto fail;
        if (imm) continue;
        es_term_type ty = type_of(&e, t);
        switch (ty) {
        case ES_T_INT:
        case ES_T_FLOAT:
        case ES_T_ATOM:
        case ES_T_BINARY:
        case ES_T_BITSTRING:
        case ES_T_NIL:
            if (put_scalar(&e, t, ty, max_binary)) goto fail;
            break;
        case ES_T_LIST: {
            if (it.depth > max_depth) {
                if (marker(&e, K_DEPTH, 1)) goto fail;
                break;
            }
            /* The header goes first (its count patched below). Leading scalar
               elements are written at once (the fast path); from the first
               other one on, elements are pushed. Stack, bottom up: frame, tail,
               [width marker], pushed elements (reversed below). At most
               max_width cells are kept and max_width more looked at,
               whatever the list's length. */
            if (stack_reserve(w, 2)) goto fail;
            const size_t hdr = out->len;
            if (put_tag_be32(out, ETF_LIST, 0)) goto fail;
            size_t fi = push_frame(w, hdr, C_LIST, 0, it.parent);
            w->top++; /* the tail, set below */
            const size_t first_pushed = w->top;
            const uint32_t d = it.depth + 1;
            uint64_t kept = 0;
            int inline_ok = 1;
            es_term cur = t, hd, tl;
            while (kept < max_width && list_cell(&e, cur, &hd, &tl)) {
                es_term_type hty;
                int done = 0;
                if (inline_ok && (!max_bytes || out->len - start <= max_bytes)) {
                    if ((done = put_immediate(&e, hd)) < 0) goto fail;
                    if (!done && is_scalar(hty = type_of(&e, hd))) {
                        if (put_scalar(&e, hd, hty, max_binary)) goto fail;
                        done = 1;
                    }
                }
                if (!done) {
                    inline_ok = 0;
                    if (w->top == w->cap && stack_reserve(w, 1)) goto fail;
                    push_term(w, hd, d, R_ELEM, fi);
                }
                kept++;
                cur = tl;
            }
            int cut = 0, unknown = 0;
            uint64_t omitted = 0;
            if (kept == max_width && list_cell(&e, cur, &hd, &tl)) {
                es_term c = cur;
                while (omitted < max_width && list_cell(&e, c, &hd, &tl)) {
                    omitted++;
                    c = tl;
                }
                cut = 1;
                if (list_cell(&e, c, &hd, &tl)) unknown = 1; /* longer still: not counted */
                else cur = c;
            }
            patch_be32(out->data + hdr + 1, (uint32_t)(kept + (uint64_t)cut));
            size_t pushed = w->top - first_pushed;
            if (pushed == 0 && !cut && is_nil(&e, cur)) { /* all written: close it here */
                w->top = fi;
                if (put1(out, ETF_NIL)) goto fail;
                break;
            }
            work *tail = &w->items[fi + 1];
            tail->op = unknown ? W_NIL : W_TERM;
            tail->role = R_TAIL;
            tail->parent = (uint32_t)fi;
            tail->t = cur;
            tail->depth = d;
            size_t first = first_pushed;
            if (cut) { /* the marker goes below the pushed elements */
                if (stack_reserve(w, 1)) goto fail;
                memmove(&w->items[first + 1], &w->items[first], pushed * sizeof(work));
                w->top = first;
                push_marker(w, W_MARKER, K_LIST, unknown ? COUNT_UNKNOWN : omitted, R_ELEM, fi);
                w->top = first + 1 + pushed;
                first++;
            }
            reverse(w->items, first, w->top);
            w->items[fi].n = kept + (uint64_t)cut;
            break;
        }
        case ES_T_TUPLE: {
            if (it.depth > max_depth) {
                if (marker(&e, K_DEPTH, 1)) goto fail;
                break;
            }
            int arity = 0;
            const es_term *elems = NULL;
            if (!tuple_of(&e, t, &arity, &elems)) {
                if (marker(&e, K_OTHER, 1)) goto fail;
                break;
            }
            uint64_t n = arity > 0 ? (uint64_t)arity : 0;
            uint64_t kept = n < max_width ? n : max_width;
            uint64_t omitted = n - kept;
            uint64_t slots = kept + (omitted ? 1 : 0);
            if (stack_reserve(w, (size_t)slots + 1)) goto fail;
            size_t fi = push_frame(w, out->len, slots <= 255 ? C_SMALL_TUPLE : C_LARGE_TUPLE, slots, it.parent);
            if (put_tuple_header(out, slots)) goto fail;
            /* a tuple tagged with a secret name: {:password, v}, {"authorization", v}, {:token, v, x} */
            int redact_rest = rs && kept >= 2 && secret_term(ops, env, elems[0], rs);
            uint64_t i = 0;
            for (; i < kept && (!max_bytes || out->len - start <= max_bytes); i++) { /* leading scalars at once */
                if (i >= 1 && redact_rest) {
                    if (put_redacted(&e)) goto fail;
                    continue;
                }
                int done = put_immediate(&e, elems[i]);
                if (done < 0) goto fail;
                if (done) continue;
                es_term_type ety = type_of(&e, elems[i]);
                if (!is_scalar(ety)) break;
                if (put_scalar(&e, elems[i], ety, max_binary)) goto fail;
            }
            if (i == kept) {
                w->top = fi; /* nothing pushed: no frame needed */
                if (omitted && marker(&e, K_TUPLE, omitted)) goto fail;
                break;
            }
            if (omitted) push_marker(w, W_MARKER, K_TUPLE, omitted, R_ELEM, fi);
            for (uint64_t j = kept; j-- > i;) {
                if (j >= 1 && redact_rest) push(w, W_REDACTED, R_ELEM, fi);
                else push_term(w, elems[j], it.depth + 1, R_ELEM, fi);
            }
            break;
        }
        case ES_T_MAP: {
            if (it.depth > max_depth) {
                if (marker(&e, K_DEPTH, 1)) goto fail;
                break;
            }
            size_t n = ops->map_size(env, t);
            size_t kept = n < max_width ? n : max_width;
            size_t omitted = n - kept;
            es_term kbuf[SMALL_MAP], vbuf[SMALL_MAP];
            es_term *keys = kbuf, *vals = vbuf;
            if (kept > SMALL_MAP) {
                keys = malloc(kept * sizeof(es_term));
                vals = malloc(kept * sizeof(es_term));
                if (!keys || !vals) {
                    free(keys);
                    free(vals);
                    goto fail;
                }
            }
            int bad = kept && ops->map_pairs(env, t, keys, vals, kept) != 0;
            int oom = !bad && map_body(&e, &it, keys, vals, kept, omitted, limits, rs, start);
            if (kept > SMALL_MAP) {
                free(keys);
                free(vals);
            }
            if (oom) goto fail;
            if (bad && marker(&e, K_OTHER, 1)) goto fail; /* not through external: that would copy it all */
            break;
        }
        case ES_T_BIGINT:
            if (put_bigint(&e, t, max_binary)) goto fail;
            break;
        case ES_T_FUN:
            if (put_fun(&e, t)) goto fail;
            break;
        case ES_T_OTHER:
        default:
            if (put_other(&e, t)) goto fail;
            break;
        }
    }
    goto done;
fail:
    rc = -1;
done:
    if (w->on_heap) free(w->items);
    if (out->failed) rc = -1;
    if (result_flags) *result_flags = e.flags;
    return rc;
}

static int encode(const es_term_ops *ops, void *env, es_term term, const es_codec_limits *limits,
                  const es_redact_set *redact, es_buf *out, unsigned *result_flags, size_t *list_len) {
    const size_t start = out->len;
    const es_redact_set *rs = redact && redact->ndeny > 0 ? redact : NULL;
    enc e = {ops, env, out, 0, 0, limits->max_binary, {NULL, 0, 0, 0}}; /* the one-pass path has no stack */
    if (put1(out, ETF_VERSION)) return -1;
    int flat = encode_fast(&e, term, start, limits, rs, list_len);
    if (flat == 0) return walk(ops, env, term, limits, rs, out, start, result_flags);
    if (result_flags) *result_flags = e.flags;
    return flat < 0 || out->failed ? -1 : 0;
}

int es_codec_encode(const es_term_ops *ops, void *env, es_term term, const es_codec_limits *limits,
                    const es_redact_set *redact, es_buf *out, unsigned *result_flags) {
    return encode(ops, env, term, limits, redact, out, result_flags, NULL);
}

int es_codec_encode_list(const es_term_ops *ops, void *env, es_term list, const es_codec_limits *limits,
                         const es_redact_set *redact, es_buf *out, unsigned *result_flags, size_t *length) {
    *length = SIZE_MAX;
    int rc = encode(ops, env, list, limits, redact, out, result_flags, length);
    /* the walker took it: its cells are in the cache now */
    if (*length == SIZE_MAX && !es_term_list_length(ops, env, list, ES_CODEC_LIST_MAX, length)) *length = SIZE_MAX;
    return rc;
}
