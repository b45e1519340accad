/* ETF decoder/encoder into an arena-allocated term tree. See include/elixir_scope/etf.h. */
#include "elixir_scope/etf.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---------------- arena ---------------- */

struct es_arena_block {
    es_arena_block *next;
    size_t cap;
    _Alignas(8) unsigned char data[];
};

#define ES_ARENA_MIN_BLOCK (64 * 1024)

void es_arena_init_with(es_arena *a, void *(*alloc)(size_t), void (*free_fn)(void *)) {
    a->head = NULL;
    a->used = 0;
    a->cap = 0;
    a->failed = 0;
    a->block_alloc = alloc ? alloc : malloc;
    a->block_free = free_fn ? free_fn : free;
}

void es_arena_init(es_arena *a) { es_arena_init_with(a, NULL, NULL); }

void *es_arena_alloc(es_arena *a, size_t n) {
    if (a->failed) return NULL;
    n = (n + 7) & ~(size_t)7;
    if (n == 0) n = 8;
    if (!a->head || a->cap - a->used < n) {
        size_t cap = n > ES_ARENA_MIN_BLOCK ? n : ES_ARENA_MIN_BLOCK;
        es_arena_block *b = a->block_alloc(sizeof(es_arena_block) + cap);
        if (!b) {
            a->failed = 1;
            return NULL;
        }
        b->next = a->head;
        b->cap = cap;
        a->head = b;
        a->used = 0;
        a->cap = cap;
    }
    void *p = a->head->data + a->used;
    a->used += n;
    memset(p, 0, n);
    return p;
}

void es_arena_free(es_arena *a) {
    es_arena_block *b = a->head;
    while (b) {
        es_arena_block *n = b->next;
        a->block_free(b);
        b = n;
    }
    es_arena_init_with(a, a->block_alloc, a->block_free);
}

/* ---------------- tags ---------------- */

enum {
    T_VERSION = 131,
    T_NEW_FLOAT = 70,
    T_BIT_BINARY = 77,
    T_NEWER_REFERENCE = 90,
    T_SMALL_INTEGER = 97,
    T_INTEGER = 98,
    T_FLOAT = 99,
    T_ATOM = 100,
    T_REFERENCE = 101,
    T_PORT = 102,
    T_PID = 103,
    T_SMALL_TUPLE = 104,
    T_LARGE_TUPLE = 105,
    T_NIL = 106,
    T_STRING = 107,
    T_LIST = 108,
    T_BINARY = 109,
    T_SMALL_BIG = 110,
    T_LARGE_BIG = 111,
    T_NEW_FUN = 112,
    T_EXPORT = 113,
    T_NEW_REFERENCE = 114,
    T_SMALL_ATOM = 115,
    T_MAP = 116,
    T_FUN = 117,
    T_ATOM_UTF8 = 118,
    T_SMALL_ATOM_UTF8 = 119,
    T_V4_PORT = 120,
    T_NEW_PID = 88,
    T_NEW_PORT = 89,
};

static uint32_t rd16(const uint8_t *p) { return ((uint32_t)p[0] << 8) | p[1]; }
static uint32_t rd32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* ---------------- skip (iterative) ---------------- */

/* Length of an atom at buf[pos], or 0. */
static size_t skip_atom(const uint8_t *buf, size_t len, size_t pos) {
    if (pos >= len) return 0;
    size_t need;
    switch (buf[pos]) {
    case T_ATOM:
    case T_ATOM_UTF8:
        if (pos + 3 > len) return 0;
        need = 3 + rd16(buf + pos + 1);
        break;
    case T_SMALL_ATOM:
    case T_SMALL_ATOM_UTF8:
        if (pos + 2 > len) return 0;
        need = 2 + buf[pos + 1];
        break;
    default:
        return 0;
    }
    return pos + need <= len ? need : 0;
}

size_t es_etf_skip(const uint8_t *buf, size_t len) {
    size_t pos = 0;
    uint64_t remaining = 1;
    while (remaining > 0) {
        remaining--;
        if (pos >= len) return 0;
        uint8_t tag = buf[pos];
        size_t need = 0, a;
        switch (tag) {
        case T_SMALL_INTEGER: need = 2; break;
        case T_INTEGER: need = 5; break;
        case T_NEW_FLOAT: need = 9; break;
        case T_FLOAT: need = 32; break;
        case T_NIL: need = 1; break;
        case T_ATOM:
        case T_ATOM_UTF8:
        case T_SMALL_ATOM:
        case T_SMALL_ATOM_UTF8:
            need = skip_atom(buf, len, pos);
            if (!need) return 0;
            break;
        case T_STRING:
            if (pos + 3 > len) return 0;
            need = 3 + rd16(buf + pos + 1);
            break;
        case T_BINARY:
            if (pos + 5 > len) return 0;
            need = 5 + (size_t)rd32(buf + pos + 1);
            break;
        case T_BIT_BINARY:
            if (pos + 6 > len) return 0;
            need = 6 + (size_t)rd32(buf + pos + 1);
            break;
        case T_SMALL_BIG:
            if (pos + 2 > len) return 0;
            need = 3 + (size_t)buf[pos + 1];
            break;
        case T_LARGE_BIG:
            if (pos + 5 > len) return 0;
            need = 6 + (size_t)rd32(buf + pos + 1);
            break;
        case T_SMALL_TUPLE:
            if (pos + 2 > len) return 0;
            remaining += buf[pos + 1];
            need = 2;
            break;
        case T_LARGE_TUPLE:
            if (pos + 5 > len) return 0;
            remaining += rd32(buf + pos + 1);
            need = 5;
            break;
        case T_LIST:
            if (pos + 5 > len) return 0;
            remaining += (uint64_t)rd32(buf + pos + 1) + 1;
            need = 5;
            break;
        case T_MAP:
            if (pos + 5 > len) return 0;
            remaining += 2 * (uint64_t)rd32(buf + pos + 1);
            need = 5;
            break;
        case T_EXPORT:
            remaining += 3;
            need = 1;
            break;
        case T_NEW_FUN:
            if (pos + 5 > len) return 0;
            need = 1 + (size_t)rd32(buf + pos + 1);
            if (need < 5) return 0;
            break;
        case T_NEW_PID:
        case T_PID:
        case T_NEW_PORT:
        case T_PORT:
        case T_V4_PORT:
        case T_REFERENCE:
            a = skip_atom(buf, len, pos + 1);
            if (!a) return 0;
            need = 1 + a +
                   (tag == T_NEW_PID ? 12 : tag == T_PID ? 9 : tag == T_NEW_PORT ? 8 : tag == T_PORT ? 5
                                                                      : tag == T_V4_PORT ? 12 : 5);
            break;
        case T_NEW_REFERENCE:
        case T_NEWER_REFERENCE: {
            if (pos + 3 > len) return 0;
            size_t words = rd16(buf + pos + 1);
            a = skip_atom(buf, len, pos + 3);
            if (!a) return 0;
            need = 3 + a + (tag == T_NEWER_REFERENCE ? 4 : 1) + 4 * words;
            break;
        }
        default:
            return 0;
        }
        if (pos + need > len || need == 0) return 0;
        pos += need;
    }
    return pos;
}

/* ---------------- constructors ---------------- */

static es_etf_term *node(es_arena *a, uint8_t kind) {
    es_etf_term *t = es_arena_alloc(a, sizeof(es_etf_term));
    if (t) t->kind = kind;
    return t;
}

es_etf_term *es_etf_atom_n(es_arena *a, const uint8_t *name, size_t len) {
    es_etf_term *t = node(a, ES_ETF_ATOM);
    if (!t) return NULL;
    t->n = (uint32_t)len;
    t->u.bytes = name;
    return t;
}

es_etf_term *es_etf_atom(es_arena *a, const char *name) {
    return es_etf_atom_n(a, (const uint8_t *)name, strlen(name));
}

es_etf_term *es_etf_int(es_arena *a, int64_t v) {
    es_etf_term *t = node(a, ES_ETF_INT);
    if (t) t->u.i = v;
    return t;
}

es_etf_term *es_etf_binary(es_arena *a, const uint8_t *bytes, size_t len) {
    es_etf_term *t = node(a, ES_ETF_BINARY);
    if (!t) return NULL;
    t->n = (uint32_t)len;
    t->u.bytes = bytes;
    return t;
}

/* [] is one shared, immutable node */
static const es_etf_term es_nil_node = {.kind = ES_ETF_NIL};
es_etf_term *es_etf_nil(es_arena *a) {
    (void)a;
    return (es_etf_term *)&es_nil_node;
}

es_etf_term *es_etf_tuple(es_arena *a, uint32_t n) {
    es_etf_term *t = node(a, ES_ETF_TUPLE);
    if (!t) return NULL;
    t->n = n;
    t->u.items = es_arena_alloc(a, sizeof(es_etf_term *) * (n ? n : 1));
    return t->u.items ? t : NULL;
}

es_etf_term *es_etf_list(es_arena *a, uint32_t n) {
    if (n == 0) return es_etf_nil(a);
    es_etf_term *t = node(a, ES_ETF_LIST);
    if (!t) return NULL;
    t->n = n;
    t->u.items = es_arena_alloc(a, sizeof(es_etf_term *) * ((size_t)n + 1)); /* n + 1 in 32 bits wraps at n = UINT32_MAX */
    if (!t->u.items) return NULL;
    t->u.items[n] = es_etf_nil(a);
    return t->u.items[n] ? t : NULL;
}

es_etf_term *es_etf_tuple_of(es_arena *a, uint32_t n, ...) {
    es_etf_term *t = es_etf_tuple(a, n);
    va_list ap;
    va_start(ap, n);
    for (uint32_t i = 0; i < n; i++) {
        es_etf_term *x = va_arg(ap, es_etf_term *);
        if (t) t->u.items[i] = x;
        if (!x) t = NULL;
    }
    va_end(ap);
    return t;
}

es_etf_term *es_etf_list_of(es_arena *a, uint32_t n, ...) {
    es_etf_term *t = es_etf_list(a, n);
    va_list ap;
    va_start(ap, n);
    for (uint32_t i = 0; i < n; i++) {
        es_etf_term *x = va_arg(ap, es_etf_term *);
        if (t) t->u.items[i] = x;
        if (!x) t = NULL;
    }
    va_end(ap);
    return t;
}

/* ---------------- inspection ---------------- */

int es_etf_is_atom(const es_etf_term *t, const char *name) {
    if (!t || t->kind != ES_ETF_ATOM) return 0;
    size_t l = strlen(name);
    return t->n == l && memcmp(t->u.bytes, name, l) == 0;
}

int es_etf_is_proper_list(const es_etf_term *t) {
    if (!t) return 0;
    if (t->kind == ES_ETF_NIL) return 1;
    return t->kind == ES_ETF_LIST && t->u.items[t->n]->kind == ES_ETF_NIL;
}

uint32_t es_etf_list_len(const es_etf_term *t) { return (t && t->kind == ES_ETF_LIST) ? t->n : 0; }

es_etf_term *es_etf_list_at(const es_etf_term *t, uint32_t i) {
    if (!t || t->kind != ES_ETF_LIST || i >= t->n) return NULL;
    return t->u.items[i];
}

es_etf_term *es_etf_get(const es_etf_term *t, const char *key) {
    if (!t) return NULL;
    if (t->kind == ES_ETF_MAP) {
        for (uint32_t i = 0; i < t->n; i++)
            if (es_etf_is_atom(t->u.items[2 * i], key)) return t->u.items[2 * i + 1];
        return NULL;
    }
    if (t->kind == ES_ETF_LIST) {
        for (uint32_t i = 0; i < t->n; i++) {
            es_etf_term *e = t->u.items[i];
            if (e->kind == ES_ETF_TUPLE && e->n == 2 && es_etf_is_atom(e->u.items[0], key)) return e->u.items[1];
        }
    }
    return NULL;
}

/* ---------------- decode (iterative) ---------------- */

typedef struct dframe {
    es_etf_term **slots;
    uint32_t count; /* slots to fill */
    uint32_t next;
} dframe;

typedef struct dstack {
    dframe *f;
    size_t n, cap;
} dstack;

static int dpush(dstack *s, es_etf_term **slots, uint32_t count) {
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64;
        dframe *nf = realloc(s->f, nc * sizeof(dframe));
        if (!nf) return -1;
        s->f = nf;
        s->cap = nc;
    }
    s->f[s->n].slots = slots;
    s->f[s->n].count = count;
    s->f[s->n].next = 0;
    s->n++;
    return 0;
}

static es_etf_term *decode_atom(es_arena *a, const uint8_t *p, size_t l, int latin1) {
    int high = 0;
    if (latin1)
        for (size_t i = 0; i < l; i++)
            if (p[i] >= 0x80) high = 1;
    if (!high) return es_etf_atom_n(a, p, l);
    uint8_t *u = es_arena_alloc(a, 2 * l);
    if (!u) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < l; i++) {
        if (p[i] < 0x80) {
            u[k++] = p[i];
        } else {
            u[k++] = (uint8_t)(0xC0 | (p[i] >> 6));
            u[k++] = (uint8_t)(0x80 | (p[i] & 0x3F));
        }
    }
    return es_etf_atom_n(a, u, k);
}

es_etf_status es_etf_decode(es_arena *a, const uint8_t *buf, size_t len, size_t max_depth, es_etf_term **out,
                            size_t *err_offset) {
    size_t pos = 0;
    es_etf_status st = ES_ETF_OK;
    dstack s = {0};
    es_etf_term *root = NULL;
    es_etf_term **slot = &root;
    if (len < 1 || buf[0] != T_VERSION) {
        st = ES_ETF_EBADARG;
        goto done;
    }
    pos = 1;
    for (;;) {
        /* decode one term at pos into *slot */
        if (pos >= len) {
            st = ES_ETF_EBADARG;
            goto done;
        }
        uint8_t tag = buf[pos];
        es_etf_term *t = NULL;
        uint32_t n;
        switch (tag) {
        case T_SMALL_INTEGER:
            if (pos + 2 > len) goto bad;
            t = es_etf_int(a, buf[pos + 1]);
            pos += 2;
            break;
        case T_INTEGER:
            if (pos + 5 > len) goto bad;
            t = es_etf_int(a, (int32_t)rd32(buf + pos + 1));
            pos += 5;
            break;
        case T_NEW_FLOAT: {
            if (pos + 9 > len) goto bad;
            uint64_t bits = ((uint64_t)rd32(buf + pos + 1) << 32) | rd32(buf + pos + 5);
            t = node(a, ES_ETF_FLOAT);
            if (t) memcpy(&t->u.f, &bits, sizeof bits);
            pos += 9;
            break;
        }
        case T_ATOM:
        case T_ATOM_UTF8:
            if (pos + 3 > len) goto bad;
            n = rd16(buf + pos + 1);
            if (pos + 3 + n > len) goto bad;
            t = decode_atom(a, buf + pos + 3, n, tag == T_ATOM);
            pos += 3 + n;
            break;
        case T_SMALL_ATOM:
        case T_SMALL_ATOM_UTF8:
            if (pos + 2 > len) goto bad;
            n = buf[pos + 1];
            if (pos + 2 + n > len) goto bad;
            t = decode_atom(a, buf + pos + 2, n, tag == T_SMALL_ATOM);
            pos += 2 + n;
            break;
        case T_BINARY:
            if (pos + 5 > len) goto bad;
            n = rd32(buf + pos + 1);
            if (pos + 5 + (size_t)n > len) goto bad;
            t = es_etf_binary(a, buf + pos + 5, n);
            pos += 5 + (size_t)n;
            break;
        case T_NIL:
            t = es_etf_nil(a);
            pos += 1;
            break;
        case T_STRING:
            if (pos + 3 > len) goto bad;
            n = rd16(buf + pos + 1);
            if (pos + 3 + n > len) goto bad;
            t = es_etf_list(a, n);
            for (uint32_t i = 0; t && i < n; i++) {
                t->u.items[i] = es_etf_int(a, buf[pos + 3 + i]);
                if (!t->u.items[i]) t = NULL;
            }
            pos += 3 + n;
            break;
        case T_SMALL_TUPLE:
        case T_LARGE_TUPLE:
        case T_LIST:
        case T_MAP: {
            size_t hdr = tag == T_SMALL_TUPLE ? 2 : 5;
            if (pos + hdr > len) goto bad;
            n = tag == T_SMALL_TUPLE ? buf[pos + 1] : rd32(buf + pos + 1);
            pos += hdr;
            /* each element takes at least one byte: reject absurd counts early */
            uint64_t slots = tag == T_LIST ? (uint64_t)n + 1 : tag == T_MAP ? 2 * (uint64_t)n : n;
            if (slots > len - pos + 1) goto bad;
            if (tag == T_LIST) {
                t = node(a, ES_ETF_LIST);
            } else {
                t = node(a, tag == T_MAP ? ES_ETF_MAP : ES_ETF_TUPLE);
            }
            if (!t) break;
            t->n = n;
            t->u.items = es_arena_alloc(a, sizeof(es_etf_term *) * (slots ? slots : 1));
            if (!t->u.items) {
                t = NULL;
                break;
            }
            *slot = t;
            if (slots > 0) {
                if (s.n + 1 > max_depth) {
                    st = ES_ETF_ETOODEEP;
                    goto done;
                }
                if (dpush(&s, t->u.items, (uint32_t)slots) < 0) {
                    st = ES_ETF_ENOMEM;
                    goto done;
                }
            }
            break;
        }
        default: {
            size_t l = es_etf_skip(buf + pos, len - pos);
            if (!l) goto bad;
            t = node(a, ES_ETF_RAW);
            if (t) {
                t->n = (uint32_t)l;
                t->u.bytes = buf + pos;
            }
            pos += l;
            break;
        }
        }
        if (!t) {
            st = ES_ETF_ENOMEM;
            goto done;
        }
        *slot = t;
        /* find the next slot to fill */
        for (;;) {
            if (s.n == 0) goto finished;
            dframe *f = &s.f[s.n - 1];
            if (f->next < f->count) {
                slot = &f->slots[f->next++];
                break;
            }
            s.n--;
        }
    }
finished:
    if (pos != len) goto bad;
    *out = root;
    goto done;
bad:
    st = ES_ETF_EBADARG;
done:
    free(s.f);
    if (st != ES_ETF_OK && err_offset) *err_offset = pos;
    return st;
}

/* ---------------- encode (iterative) ---------------- */

typedef struct obuf {
    uint8_t *d;
    size_t len, cap;
    int failed;
} obuf;

static uint8_t *oreserve(obuf *b, size_t n) {
    if (b->failed) return NULL;
    if (b->len + n > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < b->len + n) nc *= 2;
        uint8_t *nd = realloc(b->d, nc);
        if (!nd) {
            b->failed = 1;
            return NULL;
        }
        b->d = nd;
        b->cap = nc;
    }
    uint8_t *p = b->d + b->len;
    b->len += n;
    return p;
}

static void wr32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

typedef struct eframe {
    const es_etf_term *t;
    uint32_t next;
    uint32_t count;
} eframe;

static void encode_leaf(obuf *b, const es_etf_term *t) {
    uint8_t *p;
    switch (t->kind) {
    case ES_ETF_ATOM:
        if (t->n < 256) {
            p = oreserve(b, 2 + t->n);
            if (!p) return;
            p[0] = T_SMALL_ATOM_UTF8;
            p[1] = (uint8_t)t->n;
            memcpy(p + 2, t->u.bytes, t->n);
        } else {
            p = oreserve(b, 3 + t->n);
            if (!p) return;
            p[0] = T_ATOM_UTF8;
            p[1] = (uint8_t)(t->n >> 8);
            p[2] = (uint8_t)t->n;
            memcpy(p + 3, t->u.bytes, t->n);
        }
        break;
    case ES_ETF_INT:
        if (t->u.i >= 0 && t->u.i <= 255) {
            p = oreserve(b, 2);
            if (!p) return;
            p[0] = T_SMALL_INTEGER;
            p[1] = (uint8_t)t->u.i;
        } else if (t->u.i >= INT32_MIN && t->u.i <= INT32_MAX) {
            p = oreserve(b, 5);
            if (!p) return;
            p[0] = T_INTEGER;
            wr32(p + 1, (uint32_t)(int32_t)t->u.i);
        } else {
            uint64_t m = t->u.i < 0 ? (uint64_t)0 - (uint64_t)t->u.i : (uint64_t)t->u.i;
            p = oreserve(b, 3 + 8);
            if (!p) return;
            p[0] = T_SMALL_BIG;
            p[1] = 8;
            p[2] = t->u.i < 0;
            for (int i = 0; i < 8; i++) p[3 + i] = (uint8_t)(m >> (8 * i));
        }
        break;
    case ES_ETF_FLOAT: {
        uint64_t bits;
        memcpy(&bits, &t->u.f, sizeof bits);
        p = oreserve(b, 9);
        if (!p) return;
        p[0] = T_NEW_FLOAT;
        wr32(p + 1, (uint32_t)(bits >> 32));
        wr32(p + 5, (uint32_t)bits);
        break;
    }
    case ES_ETF_BINARY:
        p = oreserve(b, 5 + (size_t)t->n);
        if (!p) return;
        p[0] = T_BINARY;
        wr32(p + 1, t->n);
        if (t->n) memcpy(p + 5, t->u.bytes, t->n);
        break;
    case ES_ETF_NIL:
        p = oreserve(b, 1);
        if (p) p[0] = T_NIL;
        break;
    case ES_ETF_RAW:
        p = oreserve(b, t->n);
        if (p) memcpy(p, t->u.bytes, t->n);
        break;
    default:
        b->failed = 1;
    }
}

es_etf_status es_etf_encode(const es_etf_term *root, uint8_t **out, size_t *out_len) {
    obuf b = {0};
    eframe *st = NULL;
    size_t sn = 0, scap = 0;
    uint8_t *p = oreserve(&b, 1);
    if (p) p[0] = T_VERSION;
    const es_etf_term *t = root;
    for (;;) {
        if (!t) {
            b.failed = 1;
            break;
        }
        if (t->kind == ES_ETF_LIST || t->kind == ES_ETF_TUPLE || t->kind == ES_ETF_MAP) {
            uint32_t count;
            if (t->kind == ES_ETF_TUPLE && t->n < 256) {
                p = oreserve(&b, 2);
                if (p) {
                    p[0] = T_SMALL_TUPLE;
                    p[1] = (uint8_t)t->n;
                }
            } else {
                p = oreserve(&b, 5);
                if (p) {
                    p[0] = t->kind == ES_ETF_LIST ? T_LIST : t->kind == ES_ETF_MAP ? T_MAP : T_LARGE_TUPLE;
                    wr32(p + 1, t->n);
                }
            }
            count = t->kind == ES_ETF_LIST ? t->n + 1 : t->kind == ES_ETF_MAP ? 2 * t->n : t->n;
            if (count > 0) {
                if (sn == scap) {
                    size_t nc = scap ? scap * 2 : 64;
                    eframe *nf = realloc(st, nc * sizeof(eframe));
                    if (!nf) {
                        b.failed = 1;
                        break;
                    }
                    st = nf;
                    scap = nc;
                }
                st[sn].t = t;
                st[sn].next = 0;
                st[sn].count = count;
                sn++;
            }
        } else {
            encode_leaf(&b, t);
        }
        if (b.failed) break;
        int more = 0;
        while (sn > 0) {
            eframe *f = &st[sn - 1];
            if (f->next < f->count) {
                t = f->t->u.items[f->next++];
                more = 1;
                break;
            }
            sn--;
        }
        if (!more) break;
    }
    free(st);
    if (b.failed) {
        free(b.d);
        return ES_ETF_ENOMEM;
    }
    *out = b.d;
    *out_len = b.len;
    return ES_ETF_OK;
}
