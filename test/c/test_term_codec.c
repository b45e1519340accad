/* CMocka tests of the bounded ETF encoder (c_src/term_codec.c) over a tiny
 * fake term model (tagged structs) implementing es_term_ops. Outputs are
 * checked byte for byte, or decoded with the project's ETF decoder
 * (c_src/etf.c) and printed in Erlang syntax. A seeded property test encodes
 * generated terms under many limits and checks every output is valid ETF
 * (decodes completely, distinct map keys) and, when nothing was cut, equal to
 * its input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elixir_scope/etf.h"
#include "elixir_scope/term_codec.h"

/* ---- fake term model ---- */
typedef struct ft {
    es_term_type type;
    int64_t i;
    double d;
    uint8_t *bytes; /* atom name, binary data, or external ETF */
    size_t len;     /* whole bytes */
    unsigned bits;  /* bitstring tail bits */
    es_term hd, tl; /* list cell */
    es_term *elems; /* tuple elements, or map keys */
    es_term *vals;  /* map values */
    int n;
    es_fun_info fun; /* ES_T_FUN */
    struct ft *next_alloc;
} ft;

static ft *all_nodes;

static ft *node(es_term_type ty) {
    ft *f = calloc(1, sizeof *f);
    f->type = ty;
    f->next_alloc = all_nodes;
    all_nodes = f;
    return f;
}

static void free_nodes(void) {
    while (all_nodes) {
        ft *n = all_nodes->next_alloc;
        free(all_nodes->bytes);
        free(all_nodes->elems);
        free(all_nodes->vals);
        free(all_nodes);
        all_nodes = n;
    }
}

#define T(p) ((es_term)(uintptr_t)(p))
#define F(t) ((ft *)(uintptr_t)(t))

static es_term I(int64_t v) {
    ft *f = node(ES_T_INT);
    f->i = v;
    return T(f);
}
static es_term FL(double v) {
    ft *f = node(ES_T_FLOAT);
    f->d = v;
    return T(f);
}
static es_term bytes_node(es_term_type ty, const void *b, size_t len) {
    ft *f = node(ty);
    f->bytes = malloc(len + 1);
    memcpy(f->bytes, b, len);
    f->len = len;
    return T(f);
}
static es_term A(const char *name) { return bytes_node(ES_T_ATOM, name, strlen(name)); }
static es_term B(const void *b, size_t len) { return bytes_node(ES_T_BINARY, b, len); }
static es_term BITS(const void *b, size_t whole, unsigned bits) {
    es_term t = bytes_node(ES_T_BITSTRING, b, whole + 1);
    F(t)->len = whole;
    F(t)->bits = bits;
    return t;
}
static es_term OTHER(const void *etf, size_t len) { return bytes_node(ES_T_OTHER, etf, len); }
/* an integer beyond int64: n magnitude bytes (little-endian), as its ETF */
static es_term BIGN(int negative, const uint8_t *mag, size_t n) {
    uint8_t *etf = malloc(n + 6);
    size_t h;
    if (n <= 255) {
        etf[0] = 110, etf[1] = (uint8_t)n, etf[2] = (uint8_t)negative, h = 3;
    } else {
        etf[0] = 111, etf[1] = (uint8_t)(n >> 24), etf[2] = (uint8_t)(n >> 16), etf[3] = (uint8_t)(n >> 8);
        etf[4] = (uint8_t)n, etf[5] = (uint8_t)negative, h = 6;
    }
    memcpy(etf + h, mag, n);
    es_term t = bytes_node(ES_T_BIGINT, etf, n + h);
    free(etf);
    return t;
}
static es_term FUN_EXT(const char *mod, const char *name, unsigned arity) {
    ft *f = node(ES_T_FUN);
    f->fun.external = 1;
    strcpy(f->fun.module, mod);
    strcpy(f->fun.name, name);
    f->fun.arity = arity;
    return T(f);
}
static es_term FUN_LOCAL(const char *mod, unsigned index, unsigned uniq) {
    ft *f = node(ES_T_FUN);
    strcpy(f->fun.module, mod);
    f->fun.index = index;
    f->fun.uniq = uniq;
    return T(f);
}
static es_term NIL(void) { return T(node(ES_T_NIL)); }
static es_term CONS(es_term h, es_term t) {
    ft *f = node(ES_T_LIST);
    f->hd = h;
    f->tl = t;
    return T(f);
}
static es_term LISTV(int n, const es_term *items, es_term tail) {
    es_term acc = tail;
    for (int i = n; i-- > 0;) acc = CONS(items[i], acc);
    return acc;
}
#define LIST(...) LISTV((int)(sizeof((es_term[]){__VA_ARGS__}) / sizeof(es_term)), (es_term[]){__VA_ARGS__}, NIL())
static es_term TUPLEV(int n, const es_term *items) {
    ft *f = node(ES_T_TUPLE);
    f->n = n;
    f->elems = calloc((size_t)n + 1, sizeof(es_term));
    if (n) memcpy(f->elems, items, (size_t)n * sizeof(es_term));
    return T(f);
}
#define TUPLE(...) TUPLEV((int)(sizeof((es_term[]){__VA_ARGS__}) / sizeof(es_term)), (es_term[]){__VA_ARGS__})
static es_term MAPV(int n, const es_term *kv) {
    ft *f = node(ES_T_MAP);
    f->n = n;
    f->elems = calloc((size_t)n + 1, sizeof(es_term));
    f->vals = calloc((size_t)n + 1, sizeof(es_term));
    for (int i = 0; i < n; i++) {
        f->elems[i] = kv[2 * i];
        f->vals[i] = kv[2 * i + 1];
    }
    return T(f);
}
#define MAP(...) MAPV((int)(sizeof((es_term[]){__VA_ARGS__}) / sizeof(es_term)) / 2, (es_term[]){__VA_ARGS__})

static es_term_type f_type(void *env, es_term t) {
    (void)env;
    return F(t)->type;
}
static int f_int(void *env, es_term t, int64_t *out) {
    (void)env;
    if (F(t)->type != ES_T_INT) return 0;
    *out = F(t)->i;
    return 1;
}
static int f_double(void *env, es_term t, double *out) {
    (void)env;
    if (F(t)->type != ES_T_FLOAT) return 0;
    *out = F(t)->d;
    return 1;
}
static int f_atom(void *env, es_term t, char *buf, size_t cap) {
    (void)env;
    if (F(t)->type != ES_T_ATOM || F(t)->len >= cap) return -1;
    memcpy(buf, F(t)->bytes, F(t)->len);
    buf[F(t)->len] = 0;
    return (int)F(t)->len;
}
static int f_binary(void *env, es_term t, const uint8_t **data, size_t *size, unsigned *tail_bits) {
    (void)env;
    if (F(t)->type != ES_T_BINARY && F(t)->type != ES_T_BITSTRING) return 0;
    *data = F(t)->bytes;
    *size = F(t)->len;
    *tail_bits = F(t)->bits;
    return 1;
}
static size_t cells_walked, pairs_asked; /* what the walker looked at: its cost */
static int f_cell(void *env, es_term t, es_term *h, es_term *tl) {
    (void)env;
    cells_walked++;
    if (F(t)->type != ES_T_LIST) return 0;
    *h = F(t)->hd;
    *tl = F(t)->tl;
    return 1;
}
static int f_tuple(void *env, es_term t, int *arity, const es_term **elems) {
    (void)env;
    if (F(t)->type != ES_T_TUPLE) return 0;
    *arity = F(t)->n;
    *elems = F(t)->elems;
    return 1;
}
static size_t f_map_size(void *env, es_term t) {
    (void)env;
    return F(t)->type == ES_T_MAP ? (size_t)F(t)->n : 0;
}
static int f_map_pairs(void *env, es_term t, es_term *keys, es_term *values, size_t n) {
    (void)env;
    if (F(t)->type != ES_T_MAP || n > (size_t)F(t)->n) return -1;
    pairs_asked += n;
    memcpy(keys, F(t)->elems, n * sizeof(es_term));
    memcpy(values, F(t)->vals, n * sizeof(es_term));
    return 0;
}
static int f_external(void *env, es_term t, es_buf *out) {
    (void)env;
    if ((F(t)->type != ES_T_OTHER && F(t)->type != ES_T_BIGINT) || F(t)->len == 0) return -1;
    return es_buf_put(out, F(t)->bytes, F(t)->len);
}
static int f_fun_info(void *env, es_term t, es_fun_info *out) {
    (void)env;
    if (F(t)->type != ES_T_FUN) return -1;
    *out = F(t)->fun;
    return 0;
}

static const es_term_ops OPS = {f_type, f_int, f_double, f_atom, f_binary, f_cell,
                                f_tuple, f_map_size, f_map_pairs, f_external, f_fun_info, NULL, NULL};

static const es_codec_limits BIG = {1000000, 100000, 1u << 20, 0};

/* Encodes and compares with the expected bytes (given without the 131 byte). */
static void expect_enc_l(es_term t, const es_codec_limits *lim, const es_redact_set *rs, const uint8_t *exp,
                         size_t n, unsigned want_flags) {
    uint8_t storage[64];
    es_buf b;
    es_buf_init(&b, storage, sizeof storage);
    unsigned flags = 99;
    assert_int_equal(es_codec_encode(&OPS, NULL, t, lim, rs, &b, &flags), 0);
    assert_int_equal(flags, want_flags);
    if (b.len != n + 1 || b.data[0] != 131 || memcmp(b.data + 1, exp, n) != 0) {
        fprintf(stderr, "expected (%zu):", n);
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %u", exp[i]);
        fprintf(stderr, "\ngot      (%zu):", b.len - 1);
        for (size_t i = 1; i < b.len; i++) fprintf(stderr, " %u", b.data[i]);
        fprintf(stderr, "\n");
        fail();
    }
    es_buf_free(&b);
}
#define EXPECT(t, ...)                                                                     \
    do {                                                                                   \
        static const uint8_t e_[] = {__VA_ARGS__};                                         \
        expect_enc_l((t), &BIG, NULL, e_, sizeof e_, 0);                                   \
    } while (0)
#define EXPECT_LIM(t, lim, rs, fl, ...)                                                    \
    do {                                                                                   \
        static const uint8_t e_[] = {__VA_ARGS__};                                         \
        expect_enc_l((t), (lim), (rs), e_, sizeof e_, (fl));                               \
    } while (0)


/* ---- decoding outputs back, for readable assertions ---- */
typedef struct sbuf {
    char *d;
    size_t len, cap;
} sbuf;

static void sput(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char tmp[512];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof tmp) n = sizeof tmp - 1;
    if (b->len + (size_t)n + 1 > b->cap) {
        b->cap = (b->len + (size_t)n + 1) * 2;
        b->d = realloc(b->d, b->cap);
    }
    memcpy(b->d + b->len, tmp, (size_t)n + 1);
    b->len += (size_t)n;
}

/* Erlang-like text of a decoded term (RAW terms print as raw<tag>) */
static void show_term(sbuf *b, const es_etf_term *t) {
    switch (t->kind) {
    case ES_ETF_ATOM: sput(b, "%.*s", (int)t->n, (const char *)t->u.bytes); break;
    case ES_ETF_INT: sput(b, "%lld", (long long)t->u.i); break;
    case ES_ETF_FLOAT: sput(b, "%g", t->u.f); break;
    case ES_ETF_BINARY: sput(b, "<<\"%.*s\">>", (int)t->n, (const char *)t->u.bytes); break;
    case ES_ETF_NIL: sput(b, "[]"); break;
    case ES_ETF_LIST:
        sput(b, "[");
        for (uint32_t i = 0; i < t->n; i++) {
            if (i) sput(b, ",");
            show_term(b, t->u.items[i]);
        }
        if (t->u.items[t->n]->kind != ES_ETF_NIL) {
            sput(b, "|");
            show_term(b, t->u.items[t->n]);
        }
        sput(b, "]");
        break;
    case ES_ETF_TUPLE:
        sput(b, "{");
        for (uint32_t i = 0; i < t->n; i++) {
            if (i) sput(b, ",");
            show_term(b, t->u.items[i]);
        }
        sput(b, "}");
        break;
    case ES_ETF_MAP:
        sput(b, "#{");
        for (uint32_t i = 0; i < t->n; i++) {
            if (i) sput(b, ",");
            show_term(b, t->u.items[2 * i]);
            sput(b, "=>");
            show_term(b, t->u.items[2 * i + 1]);
        }
        sput(b, "}");
        break;
    default: sput(b, "raw<%u>", t->u.bytes[0]); break;
    }
}

/* Encodes t and returns its decoded text (caller frees); *flags gets the result flags. */
static char *show(es_term t, const es_codec_limits *lim, const es_redact_set *rs, unsigned *flags) {
    es_buf b;
    es_buf_init(&b, NULL, 0);
    unsigned fl = 0;
    assert_int_equal(es_codec_encode(&OPS, NULL, t, lim, rs, &b, &fl), 0);
    if (flags) *flags = fl;
    es_arena a;
    es_arena_init(&a);
    es_etf_term *root = NULL;
    size_t off = 0;
    assert_int_equal(es_etf_decode(&a, b.data, b.len, 1u << 20, &root, &off), ES_ETF_OK);
    sbuf sb = {0};
    show_term(&sb, root);
    es_arena_free(&a);
    es_buf_free(&b);
    return sb.d;
}

#define EXPECT_SHOW(t, lim, rs, want_flags, text)                                          \
    do {                                                                                   \
        unsigned fl_;                                                                      \
        char *got_ = show((t), (lim), (rs), &fl_);                                         \
        if (strcmp(got_, (text)) != 0) fprintf(stderr, "expected %s\n     got %s\n", (text), got_); \
        assert_string_equal(got_, (text));                                                 \
        assert_int_equal(fl_, (want_flags));                                               \
        free(got_);                                                                        \
    } while (0)

#define MARKER_HEAD 104, 3, 119, 13, '$', 'e', 's', '_', 't', 'r', 'u', 'n', 'c', 'a', 't', 'e', 'd'
#define M_ATOM 119, 13, '$', 'e', 's', '_', 't', 'r', 'u', 'n', 'c', 'a', 't', 'e', 'd'

static void test_integers(void **state) {
    (void)state;
    EXPECT(I(0), 97, 0);
    EXPECT(I(42), 97, 42);
    EXPECT(I(255), 97, 255);
    EXPECT(I(256), 98, 0, 0, 1, 0);
    EXPECT(I(-1), 98, 255, 255, 255, 255);
    EXPECT(I(-300), 98, 255, 255, 254, 212);
    EXPECT(I(INT32_MAX), 98, 127, 255, 255, 255);
    EXPECT(I(INT32_MIN), 98, 128, 0, 0, 0);
    EXPECT(I((int64_t)INT32_MAX + 1), 110, 4, 0, 0, 0, 0, 128);
    EXPECT(I((int64_t)INT32_MIN - 1), 110, 4, 1, 1, 0, 0, 128);
    EXPECT(I(1099511627776LL), 110, 6, 0, 0, 0, 0, 0, 0, 1);
    EXPECT(I(INT64_MAX), 110, 8, 0, 255, 255, 255, 255, 255, 255, 255, 127);
    EXPECT(I(INT64_MIN), 110, 8, 1, 0, 0, 0, 0, 0, 0, 0, 128);
    free_nodes();
}

static void test_floats_atoms_binaries(void **state) {
    (void)state;
    EXPECT(FL(1.5), 70, 0x3F, 0xF8, 0, 0, 0, 0, 0, 0);
    EXPECT(FL(-2.0), 70, 0xC0, 0, 0, 0, 0, 0, 0, 0);
    EXPECT(FL(0.0), 70, 0, 0, 0, 0, 0, 0, 0, 0);
    EXPECT(A("ok"), 119, 2, 'o', 'k');
    EXPECT(A(""), 119, 0);
    EXPECT(A("h\xc3\xa9"), 119, 3, 'h', 0xC3, 0xA9); /* :hé */
    /* an atom of 255 two-byte characters is 510 bytes: ATOM_UTF8_EXT */
    {
        char name[511];
        for (int i = 0; i < 255; i++) {
            name[2 * i] = (char)0xC3;
            name[2 * i + 1] = (char)0xA9;
        }
        name[510] = 0;
        uint8_t storage[16];
        es_buf b;
        es_buf_init(&b, storage, sizeof storage);
        unsigned fl;
        assert_int_equal(es_codec_encode(&OPS, NULL, A(name), &BIG, NULL, &b, &fl), 0);
        assert_int_equal(b.len, 1 + 3 + 510);
        assert_int_equal(b.data[1], 118);
        assert_int_equal(b.data[2], 510 >> 8);
        assert_int_equal(b.data[3], 510 & 0xff);
        assert_memory_equal(b.data + 4, name, 510);
        assert_true(b.on_heap);
        es_buf_free(&b);
    }
    EXPECT(B("abc", 3), 109, 0, 0, 0, 3, 'a', 'b', 'c');
    EXPECT(B("", 0), 109, 0, 0, 0, 0);
    EXPECT(BITS((uint8_t[]){0x20}, 0, 3), 77, 0, 0, 0, 1, 3, 0x20);             /* <<1::3>> */
    EXPECT(BITS((uint8_t[]){0xAB, 0xA0}, 1, 3), 77, 0, 0, 0, 2, 3, 0xAB, 0xA0); /* <<0xAB, 5::3>> */
    EXPECT(NIL(), 106);
    EXPECT(OTHER((uint8_t[]){88, 1, 2, 3}, 4), 88, 1, 2, 3);
    /* an external that fails: marker :other */
    EXPECT_LIM(OTHER("", 0), &BIG, NULL, ES_CODEC_TRUNCATED, MARKER_HEAD, 119, 5, 'o', 't', 'h', 'e', 'r', 97, 1);
    free_nodes();
}

static void test_lists_tuples_maps(void **state) {
    (void)state;
    EXPECT(LIST(I(1), I(2)), 108, 0, 0, 0, 2, 97, 1, 97, 2, 106);
    EXPECT(CONS(I(1), I(2)), 108, 0, 0, 0, 1, 97, 1, 97, 2); /* [1 | 2] */
    EXPECT(CONS(I(1), CONS(A("a"), B("x", 1))), 108, 0, 0, 0, 2, 97, 1, 119, 1, 'a', 109, 0, 0, 0, 1, 'x');
    EXPECT(LIST(NIL(), LIST(NIL())), 108, 0, 0, 0, 2, 106, 108, 0, 0, 0, 1, 106, 106, 106);
    EXPECT(TUPLE(I(1), A("a")), 104, 2, 97, 1, 119, 1, 'a');
    EXPECT(TUPLEV(0, NULL), 104, 0);
    EXPECT(MAP(A("a"), I(1)), 116, 0, 0, 0, 1, 119, 1, 'a', 97, 1);
    EXPECT(MAPV(0, NULL), 116, 0, 0, 0, 0);
    EXPECT(MAP(B("k", 1), LIST(I(1)), I(2), TUPLEV(0, NULL)), 116, 0, 0, 0, 2, 109, 0, 0, 0, 1, 'k', 108, 0, 0, 0, 1, 97, 1,
           106, 97, 2, 104, 0);
    /* a large tuple and a large map (heap arrays for map_pairs) */
    {
        es_term items[300];
        es_term kv[600];
        for (int i = 0; i < 300; i++) {
            items[i] = I(i % 200);
            kv[2 * i] = I(i);
            kv[2 * i + 1] = NIL();
        }
        uint8_t storage[64];
        es_buf b;
        es_buf_init(&b, storage, sizeof storage);
        unsigned fl;
        assert_int_equal(es_codec_encode(&OPS, NULL, TUPLEV(300, items), &BIG, NULL, &b, &fl), 0);
        assert_int_equal(fl, 0);
        assert_int_equal(b.len, 1 + 5 + 300 * 2);
        uint8_t hdr[] = {131, 105, 0, 0, 1, 44};
        assert_memory_equal(b.data, hdr, sizeof hdr);
        assert_int_equal(b.data[6 + 2 * 199], 97);
        assert_int_equal(b.data[6 + 2 * 199 + 1], 199);
        b.len = 0;
        assert_int_equal(es_codec_encode(&OPS, NULL, MAPV(300, kv), &BIG, NULL, &b, &fl), 0);
        uint8_t mhdr[] = {131, 116, 0, 0, 1, 44, 97, 0, 106, 97, 1, 106};
        assert_memory_equal(b.data, mhdr, sizeof mhdr);
        es_buf_free(&b);
    }
    free_nodes();
}

static void test_width_truncation(void **state) {
    (void)state;
    es_codec_limits lim = {100, 2, 100, 0};
    EXPECT_LIM(LIST(I(1), I(2), I(3), I(4)), &lim, NULL, ES_CODEC_TRUNCATED, 108, 0, 0, 0, 3, 97, 1, 97, 2,
               MARKER_HEAD, 119, 4, 'l', 'i', 's', 't', 97, 2, 106);
    /* exactly max_width: untouched */
    EXPECT_LIM(LIST(I(1), I(2)), &lim, NULL, 0, 108, 0, 0, 0, 2, 97, 1, 97, 2, 106);
    /* improper list keeps its tail */
    EXPECT_LIM(CONS(I(1), CONS(I(2), CONS(I(3), A("t")))), &lim, NULL, ES_CODEC_TRUNCATED, 108, 0, 0, 0, 3, 97, 1, 97,
               2, MARKER_HEAD, 119, 4, 'l', 'i', 's', 't', 97, 1, 119, 1, 't');
    EXPECT_LIM(TUPLE(I(1), I(2), I(3)), &lim, NULL, ES_CODEC_TRUNCATED, 104, 3, 97, 1, 97, 2, MARKER_HEAD, 119, 5, 't',
               'u', 'p', 'l', 'e', 97, 1);
    EXPECT_LIM(MAP(I(1), I(10), I(2), I(20), I(3), I(30), I(4), I(40)), &lim, NULL, ES_CODEC_TRUNCATED, 116, 0, 0, 0,
               3, 97, 1, 97, 10, 97, 2, 97, 20, M_ATOM, MARKER_HEAD, 119, 3, 'm', 'a', 'p', 97, 2);
    /* a 1,000,000-element list with width 2: 2 kept, 2 more looked at, the rest not counted */
    {
        es_term l = NIL();
        for (int i = 0; i < 1000000; i++) l = CONS(I(i & 0x7f), l);
        cells_walked = 0;
        EXPECT_LIM(l, &lim, NULL, ES_CODEC_TRUNCATED, 108, 0, 0, 0, 3, 97, 0x3f, 97, 0x3e, MARKER_HEAD, 119, 4, 'l',
                   'i', 's', 't', 119, 7, 'u', 'n', 'k', 'n', 'o', 'w', 'n', 106);
        assert_true(cells_walked <= 2 * 2 + 3);
    }
    /* a list that ends within the look-ahead: exact count */
    EXPECT_SHOW(LIST(I(1), I(2), I(3), I(4)), &lim, NULL, ES_CODEC_TRUNCATED, "[1,2,{$es_truncated,list,2}]");
    EXPECT_SHOW(LIST(I(1), I(2), I(3), I(4), I(5)), &lim, NULL, ES_CODEC_TRUNCATED, "[1,2,{$es_truncated,list,unknown}]");
    free_nodes();
}

static void test_depth_truncation(void **state) {
    (void)state;
    es_codec_limits lim = {2, 100, 100, 0};
    EXPECT_LIM(LIST(LIST(LIST(I(1)))), &lim, NULL, ES_CODEC_TRUNCATED, 108, 0, 0, 0, 1, 108, 0, 0, 0, 1, MARKER_HEAD,
               119, 5, 'd', 'e', 'p', 't', 'h', 97, 1, 106, 106);
    /* scalars are not cut by depth; tuples and maps are */
    EXPECT_LIM(TUPLE(TUPLE(I(7), MAP(A("a"), I(1)))), &lim, NULL, ES_CODEC_TRUNCATED, 104, 1, 104, 2, 97, 7,
               MARKER_HEAD, 119, 5, 'd', 'e', 'p', 't', 'h', 97, 1);
    es_codec_limits d0 = {0, 100, 100, 0};
    EXPECT_LIM(LIST(I(1)), &d0, NULL, ES_CODEC_TRUNCATED, MARKER_HEAD, 119, 5, 'd', 'e', 'p', 't', 'h', 97, 1);
    EXPECT_LIM(I(5), &d0, NULL, 0, 97, 5);
    free_nodes();
}

static void test_deep_list_no_recursion(void **state) {
    (void)state;
    const int N = 1000000;
    es_term t = NIL();
    for (int i = 0; i < N; i++) t = CONS(t, NIL());
    /* with a depth limit: marker at depth 101 */
    es_codec_limits lim = {100, 100, 100, 0};
    es_buf b;
    es_buf_init(&b, NULL, 0);
    unsigned fl = 0;
    assert_int_equal(es_codec_encode(&OPS, NULL, t, &lim, NULL, &b, &fl), 0);
    assert_int_equal(fl, ES_CODEC_TRUNCATED);
    /* 100 list headers (5 bytes), one marker (26 bytes), 100 NIL tails */
    assert_int_equal(b.len, 1 + 100 * 5 + 26 + 100);
    es_buf_free(&b);
    /* with no effective depth limit: fully encoded through the heap stack */
    es_codec_limits unl = {UINT32_MAX, 100, 100, 0};
    es_buf_init(&b, NULL, 0);
    assert_int_equal(es_codec_encode(&OPS, NULL, t, &unl, NULL, &b, &fl), 0);
    assert_int_equal(fl, 0);
    assert_int_equal(b.len, 1 + (size_t)N * 6 + 1);
    assert_int_equal(b.data[1], 108);
    assert_int_equal(b.data[b.len - 1], 106);
    assert_int_equal(b.data[1 + (size_t)N * 5], 106); /* the innermost [] */
    es_buf_free(&b);
    free_nodes();
}

static void test_binary_truncation(void **state) {
    (void)state;
    es_codec_limits lim = {100, 100, 2, 0};
    EXPECT_LIM(B("abcdef", 6), &lim, NULL, ES_CODEC_TRUNCATED, MARKER_HEAD, 104, 2, 119, 6, 'b', 'i', 'n', 'a', 'r',
               'y', 109, 0, 0, 0, 2, 'a', 'b', 97, 4);
    EXPECT_LIM(B("ab", 2), &lim, NULL, 0, 109, 0, 0, 0, 2, 'a', 'b');
    /* a bitstring of 2 bytes + 3 bits is 3 bytes: cut to a 2-byte binary prefix, 1 omitted */
    EXPECT_LIM(BITS((uint8_t[]){1, 2, 0xE0}, 2, 3), &lim, NULL, ES_CODEC_TRUNCATED, MARKER_HEAD, 104, 2, 119, 6, 'b',
               'i', 'n', 'a', 'r', 'y', 109, 0, 0, 0, 2, 1, 2, 97, 1);
    es_codec_limits zero = {100, 100, 0, 0};
    EXPECT_LIM(B("abcdef", 6), &zero, NULL, ES_CODEC_TRUNCATED, MARKER_HEAD, 119, 6, 'b', 'i', 'n', 'a', 'r', 'y', 97,
               6);
    EXPECT_LIM(B("", 0), &zero, NULL, 0, 109, 0, 0, 0, 0);
    free_nodes();
}

static void test_byte_budget(void **state) {
    (void)state;
    es_term items[100];
    for (int i = 0; i < 100; i++) items[i] = I(i);
    es_term l = LISTV(100, items, NIL());
    es_codec_limits lim = {100, 1000, 100, 20};
    es_buf b;
    es_buf_init(&b, NULL, 0);
    unsigned fl = 0;
    assert_int_equal(es_codec_encode(&OPS, NULL, l, &lim, NULL, &b, &fl), 0);
    assert_int_equal(fl, ES_CODEC_TRUNCATED);
    /* header 1+5; ints are 2 bytes: after 8 ints the encoding is 22 > 20, so the
       list is cut there: its header says 9 and one marker counts the 92 left out */
    const uint8_t head[] = {131, 108, 0, 0, 0, 9};
    const uint8_t marker[] = {MARKER_HEAD, 119, 5, 'b', 'y', 't', 'e', 's', 97, 92, 106};
    assert_int_equal(b.len, 6 + 8 * 2 + sizeof marker);
    assert_memory_equal(b.data, head, sizeof head);
    for (int i = 0; i < 8; i++) assert_int_equal(b.data[6 + 2 * i + 1], i);
    assert_memory_equal(b.data + 6 + 16, marker, sizeof marker);
    es_buf_free(&b);

    /* tuples, maps (cut at a key: one pair counts the rest; at a value: that value), nested containers */
    es_codec_limits tiny = {100, 1000, 100, 12};
    EXPECT_SHOW(TUPLE(I(1000), I(1001), I(1002), I(1003)), &tiny, NULL, ES_CODEC_TRUNCATED,
                "{1000,1001,{$es_truncated,bytes,2}}");
    EXPECT_SHOW(MAP(I(1000), I(1), I(1001), I(2), I(1002), I(3)), &tiny, NULL, ES_CODEC_TRUNCATED,
                "#{1000=>1,$es_truncated=>{$es_truncated,bytes,2}}");
    EXPECT_SHOW(MAP(I(1000), B("0123456789", 10), I(1001), I(2)), &tiny, NULL, ES_CODEC_TRUNCATED,
                "#{1000=><<\"0123456789\">>,$es_truncated=>{$es_truncated,bytes,1}}");
    EXPECT_SHOW(MAP(B("0123456789", 10), I(5), I(1001), I(2)), &tiny, NULL, ES_CODEC_TRUNCATED,
                "#{<<\"0123456789\">>=>{$es_truncated,bytes,1},$es_truncated=>{$es_truncated,bytes,1}}");
    EXPECT_SHOW(LIST(LIST(I(1000), I(1001), I(1002)), I(7), I(8)), &tiny, NULL, ES_CODEC_TRUNCATED,
                "[[1000,{$es_truncated,bytes,2}],{$es_truncated,bytes,2}]");
    /* an improper tail over budget becomes a marker; a [] tail is always written */
    EXPECT_SHOW(CONS(I(1000), CONS(I(1001), A("tail"))), &tiny, NULL, ES_CODEC_TRUNCATED,
                "[1000,1001|{$es_truncated,bytes,1}]");
    EXPECT_SHOW(LIST(I(1000), I(1001)), &tiny, NULL, 0, "[1000,1001]");
    /* a width marker still pending when the budget cuts: counted with the rest */
    es_codec_limits w3 = {100, 3, 100, 12};
    EXPECT_SHOW(LIST(I(1000), I(1001), I(1002), I(1003), I(1004)), &w3, NULL, ES_CODEC_TRUNCATED,
                "[1000,1001,{$es_truncated,bytes,3}]");
    EXPECT_SHOW(LISTV(100, items, NIL()), &w3, NULL, ES_CODEC_TRUNCATED, "[0,1,2,{$es_truncated,list,unknown}]");
    free_nodes();
}

static void add(es_redact_set *rs, int allow, const char *p) { assert_null(es_redact_add(rs, allow, p, strlen(p))); }

static void default_rules(es_redact_set *rs, es_redact_cache *cache) {
    es_redact_init(rs);
    add(rs, 0, "*password*");
    add(rs, 0, "*secret*");
    add(rs, 0, "*token*");
    add(rs, 0, "*api_key*");
    add(rs, 0, "authorization");
    add(rs, 0, "cookie*");
    add(rs, 0, "*_pin");
    add(rs, 1, "tokens");
    rs->cache = cache;
}

#define REDACTED 119, 10, '[', 'R', 'E', 'D', 'A', 'C', 'T', 'E', 'D', ']'

static void test_redaction_rule(void **state) {
    (void)state;
    es_redact_set rs;
    default_rules(&rs, NULL);
    const char *secret[] = {"password", "Password", "PASSWORD", "db_password", "passwordHash", "x-api-key", "apiKey",
                            "API_KEY", "secret_key_base", "clientSecret", "access_token", "X-Auth-Token",
                            "authorization", "Authorization", "cookie", "Cookies", "card_pin", "api.key", "api key"};
    const char *clean[] = {"user", "pass", "tokens", "Tokens", "auth", "authorization_header" /* exact rule */,
                           "set_cookie" /* prefix rule */, "pinned", "", "___", "api"};
    for (size_t i = 0; i < sizeof secret / sizeof *secret; i++)
        if (!es_redact_secret_name(&rs, secret[i], strlen(secret[i]))) fail_msg("%s should be secret", secret[i]);
    for (size_t i = 0; i < sizeof clean / sizeof *clean; i++)
        if (es_redact_secret_name(&rs, clean[i], strlen(clean[i]))) fail_msg("%s should not be secret", clean[i]);
    /* names longer than 255 bytes are never secret */
    char longname[300];
    memset(longname, 'a', sizeof longname);
    memcpy(longname, "password", 8);
    assert_true(es_redact_secret_name(&rs, longname, 255));
    assert_false(es_redact_secret_name(&rs, longname, 256));
    /* bad patterns say what is wrong */
    es_redact_set bad;
    es_redact_init(&bad);
    assert_non_null(es_redact_add(&bad, 0, "", 0));
    assert_non_null(es_redact_add(&bad, 0, "*", 1));
    assert_non_null(es_redact_add(&bad, 0, "**", 2));
    assert_non_null(es_redact_add(&bad, 0, "*_-*", 4));
    assert_non_null(es_redact_add(&bad, 0, "pa*ss", 5));
    char big[64];
    memset(big, 'a', sizeof big);
    assert_non_null(es_redact_add(&bad, 0, big, 64));
    assert_null(es_redact_add(&bad, 0, big, 63));
    for (int i = 1; i < ES_REDACT_MAX; i++) assert_null(es_redact_add(&bad, 0, "x", 1));
    assert_non_null(es_redact_add(&bad, 0, "x", 1));
    assert_null(es_redact_add(&bad, 1, "x", 1)); /* the allow list has its own room */
}

/* The rule as written, one substring search per pattern: what es_redact_secret_name must answer. */
static int reference_secret(const char *const *deny, size_t nd, const char *const *allow, size_t na, const char *name) {
    char norm[512];
    size_t n = 0;
    for (const char *p = name; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '_' || c == '-' || c == '.' || c == ' ') continue;
        norm[n++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    norm[n] = '\0';
    if (n == 0 || strlen(name) > ES_REDACT_NAME_MAX) return 0;
    int hit[2] = {0, 0};
    for (int list = 0; list < 2; list++)
        for (size_t i = 0; i < (list ? na : nd); i++) {
            const char *pat = list ? allow[i] : deny[i];
            size_t pl = strlen(pat);
            int lead = pat[0] == '*', trail = pl > 1 && pat[pl - 1] == '*';
            char t[64];
            size_t tl = 0;
            for (size_t k = (size_t)lead; k < pl - (size_t)trail; k++) {
                unsigned char c = (unsigned char)pat[k];
                if (c == '_' || c == '-' || c == '.' || c == ' ') continue;
                t[tl++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
            }
            t[tl] = '\0';
            int m = tl > n ? 0
                    : lead && trail ? strstr(norm, t) != NULL
                    : lead          ? memcmp(norm + n - tl, t, tl) == 0
                    : trail         ? memcmp(norm, t, tl) == 0
                                    : n == tl && memcmp(norm, t, n) == 0;
            hit[list] |= m;
        }
    return hit[0] && !hit[1];
}

/* The indexed matcher answers as one search per pattern would, on generated names and rules. */
static void test_redaction_index_matches_the_rules(void **state) {
    (void)state;
    static const char *const deny[] = {"*password*", "*passwd*", "*secret*", "*token*", "*api_key*", "session",
                                       "*session_id*", "*csrf*", "set_*", "*_pin", "*aa*", "*a*", "*ab*"};
    static const char *const allow[] = {"tokens", "secretary", "*aaa*"};
    static const char *const parts[] = {"pass", "word", "secret", "_", "-", "token", "s", "api", "key", "session",
                                        "id", "csrf", "set", "pin", "a", "b", "A", "Token", "x", "ary", ".", " "};
    uint64_t rng = 7;
    for (size_t nd = 1; nd <= sizeof deny / sizeof *deny; nd++) {
        es_redact_set rs;
        es_redact_init(&rs);
        for (size_t i = 0; i < nd; i++) add(&rs, 0, deny[i]);
        for (size_t i = 0; i < 3; i++) add(&rs, 1, allow[i]);
        for (int k = 0; k < 3000; k++) {
            char name[300] = {0};
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            size_t count = 1 + (rng >> 59);
            for (size_t j = 0; j < count; j++) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                strcat(name, parts[(rng >> 33) % (sizeof parts / sizeof *parts)]);
            }
            int want = reference_secret(deny, nd, allow, 3, name);
            if (es_redact_secret_name(&rs, name, strlen(name)) != want)
                fail_msg("\"%s\" with %zu deny rules: expected %d", name, nd, want);
        }
    }
}

static void test_redaction(void **state) {
    (void)state;
    es_redact_set rs;
    es_redact_cache cache;
    memset(&cache, 0, sizeof cache);
    default_rules(&rs, &cache);
    for (int round = 0; round < 2; round++) { /* the second round answers from the atom cache */
        EXPECT_LIM(MAP(A("user"), B("bob", 3), A("password"), B("s3cret", 6)), &BIG, &rs, ES_CODEC_REDACTED, 116, 0, 0,
                   0, 2, 119, 4, 'u', 's', 'e', 'r', 109, 0, 0, 0, 3, 'b', 'o', 'b', 119, 8, 'p', 'a', 's', 's', 'w',
                   'o', 'r', 'd', REDACTED);
    }
    /* binary keys, any case and separator */
    EXPECT_SHOW(MAP(B("X-Api-Key", 9), LIST(I(1), I(2)), B("Tokens", 6), I(3)), &BIG, &rs, ES_CODEC_REDACTED,
                "#{<<\"X-Api-Key\">>=>[REDACTED],<<\"Tokens\">>=>3}");
    /* keyword lists, headers, tuples of any arity tagged with a secret name */
    EXPECT_SHOW(LIST(TUPLE(A("apiKey"), B("x", 1)), TUPLE(A("a"), I(1))), &BIG, &rs, ES_CODEC_REDACTED,
                "[{apiKey,[REDACTED]},{a,1}]");
    EXPECT_SHOW(LIST(TUPLE(B("authorization", 13), B("Bearer x", 8))), &BIG, &rs, ES_CODEC_REDACTED,
                "[{<<\"authorization\">>,[REDACTED]}]");
    EXPECT_SHOW(TUPLE(A("password"), I(1), A("x")), &BIG, &rs, ES_CODEC_REDACTED, "{password,[REDACTED],[REDACTED]}");
    EXPECT_SHOW(TUPLE(A("password")), &BIG, &rs, 0, "{password}");
    /* width-cut tuples are still redacted */
    es_codec_limits w2 = {100, 2, 100, 0};
    EXPECT_SHOW(TUPLE(A("db_password"), I(1), I(2)), &w2, &rs, ES_CODEC_REDACTED | ES_CODEC_TRUNCATED,
                "{db_password,[REDACTED],{$es_truncated,tuple,1}}");
    /* nested under a non-secret key; non-secret names are kept */
    EXPECT_SHOW(MAP(A("cfg"), MAP(A("pass"), I(1), A("secretKeyBase"), I(2))), &BIG, &rs, ES_CODEC_REDACTED,
                "#{cfg=>#{pass=>1,secretKeyBase=>[REDACTED]}}");
    EXPECT_SHOW(TUPLE(A("user"), I(1)), &BIG, &rs, 0, "{user,1}");
    /* secret names as map keys stay distinct once their insides are redacted */
    EXPECT_SHOW(MAP(TUPLE(A("token"), I(1)), I(1), TUPLE(A("token"), I(2)), I(2)), &BIG, &rs,
                ES_CODEC_REDACTED | ES_CODEC_TRUNCATED,
                "#{{$es_truncated,{key,0},{token,[REDACTED]}}=>1,{$es_truncated,{key,1},{token,[REDACTED]}}=>2}");
    free_nodes();
}

static void test_bounded_cost(void **state) {
    (void)state;
    es_codec_limits lim = {8, 32, 256, 4096};
    /* a 1,000,000-key map: 32 pairs asked for */
    {
        es_term *kv = malloc(2 * 1000000 * sizeof(es_term));
        es_term k = I(1), v = NIL();
        for (int i = 0; i < 1000000; i++) kv[2 * i] = k, kv[2 * i + 1] = v; /* keys need not differ here */
        es_term m = MAPV(1000000, kv);
        free(kv);
        pairs_asked = 0;
        unsigned fl;
        char *txt = show(m, &lim, NULL, &fl);
        assert_int_equal(pairs_asked, 32);
        assert_non_null(strstr(txt, "$es_truncated=>{$es_truncated,map,999968}"));
        free(txt);
    }
    /* lists: at most 2 * max_width cells, whatever the length */
    for (int len = 100; len <= 1000000; len *= 100) {
        es_term l = NIL();
        for (int i = 0; i < len; i++) l = CONS(I(i & 0x7f), l);
        cells_walked = 0;
        free(show(l, &lim, NULL, NULL));
        assert_true(cells_walked <= 2 * 32 + 3);
    }
    /* a 10 MB binary: 256 bytes copied */
    {
        size_t n = 10u << 20;
        uint8_t *data = calloc(n, 1);
        es_term b = B(data, n);
        free(data);
        es_buf out;
        es_buf_init(&out, NULL, 0);
        unsigned fl;
        assert_int_equal(es_codec_encode(&OPS, NULL, b, &lim, NULL, &out, &fl), 0);
        assert_int_equal(fl, ES_CODEC_TRUNCATED);
        assert_true(out.len < 256 + 64);
        es_buf_free(&out);
    }
    free_nodes();
}

static void test_big_integers_funs_bitstrings(void **state) {
    (void)state;
    es_codec_limits lim = {8, 32, 4, 0};
    uint8_t mag[300];
    for (int i = 0; i < 300; i++) mag[i] = (uint8_t)(i + 1);
    /* within max_binary: written whole */
    EXPECT_LIM(BIGN(1, mag, 3), &lim, NULL, 0, 110, 3, 1, 1, 2, 3);
    /* beyond: the 4 most significant bytes, and how many were left out */
    EXPECT_LIM(BIGN(1, mag, 10), &lim, NULL, ES_CODEC_TRUNCATED, MARKER_HEAD, 104, 2, 119, 7, 'i', 'n', 't', 'e', 'g',
               'e', 'r', 110, 4, 1, 7, 8, 9, 10, 97, 6);
    es_codec_limits lim300 = {8, 32, 299, 0};
    {
        unsigned fl;
        char *txt = show(BIGN(0, mag, 300), &lim300, NULL, &fl);
        assert_string_equal(txt, "{$es_truncated,{integer,raw<111>},1}");
        free(txt);
    }
    es_codec_limits zero = {8, 32, 0, 0};
    EXPECT_SHOW(BIGN(0, mag, 10), &zero, NULL, ES_CODEC_TRUNCATED, "{$es_truncated,integer,10}");
    /* funs: never their environment */
    EXPECT_SHOW(FUN_EXT("Elixir.Enum", "map", 2), &lim, NULL, ES_CODEC_TRUNCATED,
                "{$es_truncated,{fun,{Elixir.Enum,map,2}},0}");
    EXPECT_SHOW(FUN_LOCAL("Elixir.MyMod", 3, 123456), &lim, NULL, ES_CODEC_TRUNCATED,
                "{$es_truncated,{fun,{Elixir.MyMod,3,123456}},unknown}");
    /* bitstrings cut to max_binary whole bytes */
    EXPECT_SHOW(BITS((uint8_t[]){1, 2, 3, 4, 5, 0xE0}, 5, 3), &lim, NULL, ES_CODEC_TRUNCATED,
                "{$es_truncated,{binary,<<\"\x01\x02\x03\x04\">>},2}");
    EXPECT_SHOW(BITS((uint8_t[]){1, 2, 3, 0xE0}, 3, 3), &lim, NULL, 0, "raw<77>");
    free_nodes();
}

static void test_keys_stay_distinct(void **state) {
    (void)state;
    es_codec_limits lim = {2, 2, 3, 0};
    /* keys cut alike by depth, width, binary length, and a key that is the marker atom */
    EXPECT_SHOW(MAP(LIST(LIST(I(1))), I(1), LIST(LIST(I(2))), I(2)), &lim, NULL, ES_CODEC_TRUNCATED,
                "#{{$es_truncated,{key,0},[{$es_truncated,depth,1}]}=>1,"
                "{$es_truncated,{key,1},[{$es_truncated,depth,1}]}=>2}");
    EXPECT_SHOW(MAP(B("abcdef", 6), I(1), B("abcxyz", 6), I(2)), &lim, NULL, ES_CODEC_TRUNCATED,
                "#{{$es_truncated,{key,0},{$es_truncated,{binary,<<\"abc\">>},3}}=>1,"
                "{$es_truncated,{key,1},{$es_truncated,{binary,<<\"abc\">>},3}}=>2}");
    es_codec_limits wide = {8, 2, 100, 0};
    EXPECT_SHOW(MAP(A("$es_truncated"), I(1), A("a"), I(2), A("b"), I(3)), &wide, NULL, ES_CODEC_TRUNCATED,
                "#{{$es_truncated,{key,0},$es_truncated}=>1,a=>2,$es_truncated=>{$es_truncated,map,1}}");
    EXPECT_SHOW(MAP(FUN_LOCAL("m", 1, 2), I(1), FUN_LOCAL("m", 1, 2), I(2)), &wide, NULL, ES_CODEC_TRUNCATED,
                "#{{$es_truncated,{key,0},{$es_truncated,{fun,{m,1,2}},unknown}}=>1,"
                "{$es_truncated,{key,1},{$es_truncated,{fun,{m,1,2}},unknown}}=>2}");
    /* exact keys are left alone, even next to cut ones; large pair positions */
    EXPECT_SHOW(MAP(A("k"), LIST(I(1), I(2), I(3)), LIST(I(1), I(2), I(3)), I(2)), &wide, NULL, ES_CODEC_TRUNCATED,
                "#{k=>[1,2,{$es_truncated,list,1}],{$es_truncated,{key,1},[1,2,{$es_truncated,list,1}]}=>2}");
    {
        es_term kv[600];
        for (int i = 0; i < 300; i++) kv[2 * i] = B("abcdef", 6), kv[2 * i + 1] = I(i);
        es_codec_limits l2 = {8, 1000, 3, 0};
        unsigned fl;
        char *txt = show(MAPV(300, kv), &l2, NULL, &fl);
        assert_non_null(strstr(txt, "{$es_truncated,{key,299},{$es_truncated,{binary,<<\"abc\">>},3}}=>299"));
        free(txt);
    }
    free_nodes();
}

static void test_buf_and_append(void **state) {
    (void)state;
    uint8_t storage[4];
    es_buf b;
    es_buf_init(&b, storage, sizeof storage);
    assert_int_equal(es_buf_put(&b, "ab", 2), 0);
    assert_false(b.on_heap);
    assert_ptr_equal(b.data, storage);
    assert_int_equal(es_buf_put(&b, "cdefgh", 6), 0);
    assert_true(b.on_heap);
    assert_int_equal(b.len, 8);
    assert_memory_equal(b.data, "abcdefgh", 8);
    /* encode appends after existing content */
    unsigned fl;
    assert_int_equal(es_codec_encode(&OPS, NULL, I(3), &BIG, NULL, &b, &fl), 0);
    assert_int_equal(b.len, 11);
    assert_int_equal(b.data[8], 131);
    es_buf_free(&b);
    assert_null(b.data);
    /* a failed buffer refuses further writes and encode reports -1 */
    es_buf_init(&b, storage, sizeof storage);
    b.failed = 1;
    assert_int_equal(es_buf_put(&b, "x", 1), -1);
    assert_int_equal(es_codec_encode(&OPS, NULL, I(3), &BIG, NULL, &b, &fl), -1);
    es_buf_free(&b);
    free_nodes();
}

/* ---- property: every output is valid ETF ---- */
static uint64_t rng_state;
static uint64_t rnd(void) { /* xorshift64*, fixed seed: reproducible */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}
static unsigned rn(unsigned n) { return (unsigned)(rnd() % n); }

static es_term gen(int depth, int in_key);

static es_term gen_binary(es_term_type ty) {
    static const size_t sizes[] = {0, 1, 3, 8, 40, 300};
    uint8_t buf[301];
    size_t n = sizes[rn(6)];
    for (size_t i = 0; i <= n; i++) buf[i] = (uint8_t)("abcXYZ_-"[rn(8)]);
    if (ty == ES_T_BITSTRING) return BITS(buf, n, 1 + rn(7));
    return B(buf, n);
}

/* Encoded bytes under no limits: the identity of a fake term without maps (for distinct keys). */
static int same_bytes(es_term a, es_term b) {
    es_codec_limits none = {UINT32_MAX, UINT32_MAX, UINT32_MAX, 0};
    es_buf x, y;
    es_buf_init(&x, NULL, 0);
    es_buf_init(&y, NULL, 0);
    unsigned fl;
    es_codec_encode(&OPS, NULL, a, &none, NULL, &x, &fl);
    es_codec_encode(&OPS, NULL, b, &none, NULL, &y, &fl);
    int same = x.len == y.len && memcmp(x.data, y.data, x.len) == 0;
    es_buf_free(&x);
    es_buf_free(&y);
    return same;
}

static es_term gen_container(int depth, int in_key) {
    unsigned wide = rn(10) == 0;
    switch (rn(in_key ? 2 : 3)) {
    case 0: { /* list, sometimes improper, sometimes long */
        int n = wide ? 30 + (int)rn(80) : (int)rn(6);
        es_term items[110];
        for (int i = 0; i < n; i++) items[i] = gen(depth - 1, in_key);
        return LISTV(n, items, rn(5) == 0 ? gen(0, in_key) : NIL());
    }
    case 1: {
        int n = wide ? 30 + (int)rn(40) : (int)rn(5);
        es_term items[70];
        for (int i = 0; i < n; i++) items[i] = gen(depth - 1, in_key);
        return TUPLEV(n, items);
    }
    default: { /* map with distinct keys; keys are anything but maps (fake maps have no canonical order) */
        int want = wide ? 33 + (int)rn(30) : (int)rn(6), n = 0;
        es_term kv[2 * 64];
        for (int tries = 0; n < want && tries < 4 * want; tries++) {
            es_term k = gen(depth - 1, 1);
            int dup = 0;
            for (int j = 0; j < n && !dup; j++) dup = same_bytes(kv[2 * j], k);
            if (dup) continue;
            kv[2 * n] = k;
            kv[2 * n + 1] = gen(depth - 1, 0);
            n++;
        }
        return MAPV(n, kv);
    }
    }
}

static es_term gen(int depth, int in_key) {
    static const char *atoms[] = {"ok", "a", "$es_truncated", "password", "Api-Key", "tokens", "nil", "h\xc3\xa9"};
    static const uint8_t pid[] = {88, 119, 4, 'n', 'o', 'd', 'e', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0};
    static const int64_t ints[] = {0, 1, 255, 256, -1, INT32_MAX, (int64_t)INT32_MAX + 1, INT32_MIN, INT64_MAX, INT64_MIN};
    unsigned k = rn(depth > 0 ? 14 : 10);
    switch (k) {
    case 0: return I(ints[rn(10)]);
    case 1: return I((int64_t)rnd());
    case 2: return FL((double)(int64_t)rn(2000) / 8.0 - 100.0);
    case 3: return A(atoms[rn(8)]);
    case 4: return gen_binary(ES_T_BINARY);
    case 5: return gen_binary(ES_T_BITSTRING);
    case 6: return NIL();
    case 7: {
        uint8_t mag[400];
        size_t n = 9 + rn(391);
        for (size_t i = 0; i < n; i++) mag[i] = (uint8_t)(1 + rn(255));
        return BIGN((int)rn(2), mag, n);
    }
    case 8: return rn(2) ? FUN_EXT("Elixir.Enum", "map", 2) : FUN_LOCAL("Elixir.M", rn(4), 77);
    case 9: return OTHER(pid, sizeof pid);
    default: return gen_container(depth, in_key);
    }
}

static int etf_equal(const es_etf_term *a, const es_etf_term *b) {
    if (a->kind != b->kind || a->n != b->n) return 0;
    switch (a->kind) {
    case ES_ETF_INT: return a->u.i == b->u.i;
    case ES_ETF_FLOAT: return a->u.f == b->u.f; /* 0.0 == -0.0, as OTP 25 map keys */
    case ES_ETF_NIL: return 1;
    case ES_ETF_ATOM:
    case ES_ETF_BINARY:
    case ES_ETF_RAW: return memcmp(a->u.bytes, b->u.bytes, a->n) == 0;
    case ES_ETF_LIST:
        for (uint32_t i = 0; i <= a->n; i++)
            if (!etf_equal(a->u.items[i], b->u.items[i])) return 0;
        return 1;
    case ES_ETF_MAP: /* compared in order: enough for what the codec writes */
    case ES_ETF_TUPLE: {
        uint32_t m = a->kind == ES_ETF_MAP ? 2 * a->n : a->n;
        for (uint32_t i = 0; i < m; i++)
            if (!etf_equal(a->u.items[i], b->u.items[i])) return 0;
        return 1;
    }
    default: return 0;
    }
}

/* every map has distinct keys; every bitstring's bit count is 1..8 */
static void check_valid(const es_etf_term *t) {
    switch (t->kind) {
    case ES_ETF_LIST:
        for (uint32_t i = 0; i <= t->n; i++) check_valid(t->u.items[i]);
        break;
    case ES_ETF_TUPLE:
        for (uint32_t i = 0; i < t->n; i++) check_valid(t->u.items[i]);
        break;
    case ES_ETF_MAP:
        for (uint32_t i = 0; i < t->n; i++) {
            check_valid(t->u.items[2 * i]);
            check_valid(t->u.items[2 * i + 1]);
            for (uint32_t j = 0; j < i; j++)
                if (etf_equal(t->u.items[2 * i], t->u.items[2 * j])) fail_msg("duplicate map key at pair %u", i);
        }
        break;
    case ES_ETF_RAW:
        if (t->u.bytes[0] == 77) assert_true(t->n >= 7 && t->u.bytes[5] >= 1 && t->u.bytes[5] <= 8);
        break;
    default: break;
    }
}

/* the decoded output equals the input term (when nothing was cut or redacted) */
static int same_as_input(es_term t, const es_etf_term *e) {
    const ft *f = F(t);
    switch (f->type) {
    case ES_T_INT:
        if (e->kind == ES_ETF_INT) return e->u.i == f->i;
        if (e->kind != ES_ETF_RAW || e->u.bytes[0] != 110) return 0;
        {
            uint64_t mag = 0;
            for (int i = e->u.bytes[1]; i-- > 0;) mag = mag << 8 | e->u.bytes[3 + i];
            return e->u.bytes[2] ? (uint64_t)f->i == (uint64_t)0 - mag : (uint64_t)f->i == mag;
        }
        return 0;
    case ES_T_FLOAT: return e->kind == ES_ETF_FLOAT && e->u.f == f->d;
    case ES_T_ATOM:
    case ES_T_BINARY: return (e->kind == ES_ETF_ATOM || e->kind == ES_ETF_BINARY) && e->n == f->len &&
                             memcmp(e->u.bytes, f->bytes, f->len) == 0;
    case ES_T_BITSTRING:
        return e->kind == ES_ETF_RAW && e->n == 6 + f->len + 1 && e->u.bytes[5] == f->bits &&
               memcmp(e->u.bytes + 6, f->bytes, f->len + 1) == 0;
    case ES_T_BIGINT:
    case ES_T_OTHER: return e->kind == ES_ETF_RAW && e->n == f->len && memcmp(e->u.bytes, f->bytes, f->len) == 0;
    case ES_T_NIL: return e->kind == ES_ETF_NIL;
    case ES_T_LIST: {
        es_term cur = t;
        uint32_t i = 0;
        if (e->kind != ES_ETF_LIST) return 0;
        for (; F(cur)->type == ES_T_LIST; cur = F(cur)->tl, i++)
            if (i >= e->n || !same_as_input(F(cur)->hd, e->u.items[i])) return 0;
        return i == e->n && same_as_input(cur, e->u.items[e->n]);
    }
    case ES_T_TUPLE:
        if (e->kind != ES_ETF_TUPLE || e->n != (uint32_t)f->n) return 0;
        for (int i = 0; i < f->n; i++)
            if (!same_as_input(f->elems[i], e->u.items[i])) return 0;
        return 1;
    case ES_T_MAP:
        if (e->kind != ES_ETF_MAP || e->n != (uint32_t)f->n) return 0;
        for (int i = 0; i < f->n; i++)
            if (!same_as_input(f->elems[i], e->u.items[2 * i]) || !same_as_input(f->vals[i], e->u.items[2 * i + 1]))
                return 0;
        return 1;
    default: return 0;
    }
}

static void test_property_valid_etf(void **state) {
    (void)state;
    static const es_codec_limits limits[] = {
        {1, 1, 0, 64},  {2, 2, 1, 1},     {3, 3, 4, 40},   {4, 5, 8, 128}, {8, 32, 256, 4096},
        {2, 40, 3, 0},  {6, 2, 300, 200}, {1000, 1000, 1u << 20, 0},
    };
    es_redact_set rs;
    es_redact_cache cache;
    memset(&cache, 0, sizeof cache);
    default_rules(&rs, &cache);
    rng_state = 0x5EED1234ABCDULL;
    size_t outputs = 0, exact = 0;
    for (int iter = 0; iter < 400; iter++) {
        es_term t = gen(1 + (int)rn(5), 0);
        for (size_t l = 0; l < sizeof limits / sizeof *limits; l++) {
            for (int redacting = 0; redacting < 2; redacting++) {
                es_buf b;
                es_buf_init(&b, NULL, 0);
                unsigned fl = 0;
                assert_int_equal(es_codec_encode(&OPS, NULL, t, &limits[l], redacting ? &rs : NULL, &b, &fl), 0);
                es_arena a;
                es_arena_init(&a);
                es_etf_term *root = NULL;
                size_t off = 0;
                if (es_etf_decode(&a, b.data, b.len, 1u << 20, &root, &off) != ES_ETF_OK)
                    fail_msg("iteration %d, limits %zu: invalid ETF at byte %zu of %zu", iter, l, off, b.len);
                check_valid(root);
                if (limits[l].max_bytes && b.len > (size_t)limits[l].max_bytes + 64 * limits[l].max_depth + 400)
                    fail_msg("iteration %d, limits %zu: %zu bytes, far over the budget", iter, l, b.len);
                if (fl == 0) {
                    exact++;
                    if (!same_as_input(t, root)) fail_msg("iteration %d, limits %zu: not equal to its input", iter, l);
                }
                outputs++;
                es_arena_free(&a);
                es_buf_free(&b);
            }
        }
        free_nodes();
    }
    assert_true(exact > outputs / 20); /* the generator also makes values that fit */
}

/* ---- the host layout fast path and the atom cache ----
 * Words as 64-bit BEAM lays them out: small integers (v << 4 | 0xF), [] (0x3B), atoms
 * (index << 6 | 0xB) and cons cells (address | 1 of {head, tail}); anything else is a node of the
 * fake model (an aligned address: none of those tags). The ops understand both, so the same
 * term encodes through the ops alone and through the layout and the cache; the bytes must match. */
static const char *const W_ATOMS[] = {"ok", "error", "password", "$es_truncated", "a_rather_long_atom_name_of_40_bytes_xxxx"};
static size_t w_atom_calls, w_type_calls, w_pair_calls;
static es_term **w_cells;
static size_t w_ncells, w_cap;
static void w_own(es_term *c) {
    if (w_ncells == w_cap) w_cells = realloc(w_cells, (w_cap = w_cap ? 2 * w_cap : 256) * sizeof *w_cells);
    w_cells[w_ncells++] = c;
}
static void w_free(void) {
    while (w_ncells) free(w_cells[--w_ncells]);
}
static es_term WI(int64_t v) { return (es_term)((uint64_t)v << 4 | 0xF); }
static es_term WA(int i) { return (es_term)((uint64_t)i << 6 | 0xB); }
/* a local pid: an immediate, index << 4 | 0x3 */
static es_term WPID(uint32_t i) { return (es_term)((uint64_t)i << 4 | 0x3); }
#define W_NIL ((es_term)0x3B)
static es_term WCONS(es_term h, es_term t) {
    es_term *c = malloc(2 * sizeof(es_term));
    c[0] = h;
    c[1] = t;
    w_own(c);
    return (es_term)(uintptr_t)c | 1;
}
/* boxed: address | 2 of {header, ...}; a tuple's header is arity << 6, a heap binary's
 * words << 6 | 0x24, then its byte size and its bytes */
static es_term WBOX(uint64_t header, const uint64_t *rest, size_t nrest, const void *bytes, size_t nbytes) {
    uint64_t *c = calloc(1 + nrest + (nbytes + 7) / 8, sizeof(uint64_t));
    c[0] = header;
    if (nrest) memcpy(c + 1, rest, nrest * sizeof(uint64_t));
    if (nbytes) memcpy(c + 1 + nrest, bytes, nbytes);
    w_own((es_term *)c);
    return (es_term)(uintptr_t)c | 2;
}
static es_term WT2(es_term a, es_term b) { return WBOX(2u << 6, (const uint64_t[]){a, b}, 2, NULL, 0); }
static es_term WTV(int n, const es_term *items) { return WBOX((uint64_t)n << 6, items, (size_t)n, NULL, 0); }
static es_term WBINN(const void *bytes, uint64_t n) { return WBOX((1 + (n + 7) / 8) << 6 | 0x24, &n, 1, bytes, n); }
static es_term WBIN(const char *bytes) { return WBINN(bytes, strlen(bytes)); }
/* a local reference: header (3 words follow) | 0x10, then its numbers */
static es_term WREF(uint32_t a) { return WBOX(3u << 6 | 0x10, (const uint64_t[]){a, 7, 9}, 3, NULL, 0); }
/* a flat map: header 0x13C, its size, a tuple of its keys, its values */
static es_term WMAPV(int n, const es_term *kv) {
    uint64_t words[2 + 64];
    es_term keys[64];
    for (int i = 0; i < n; i++) keys[i] = kv[2 * i], words[2 + i] = kv[2 * i + 1];
    words[0] = (uint64_t)n;
    words[1] = WTV(n, keys);
    return WBOX(0x13C, words, 2 + (size_t)n, NULL, 0);
}
static const uint64_t *w_box(es_term t) { return (t & 3) == 2 ? (const uint64_t *)(uintptr_t)(t - 2) : NULL; }
static int w_is_word(es_term t) { return (t & 0xF) == 0xF || (t & 0x3F) == 0xB || t == W_NIL || (t & 3) == 1 || (t & 3) == 2 || (t & 0xF) == 0x3; }
static es_term_type w_type(void *env, es_term t) {
    w_type_calls++;
    if ((t & 0xF) == 0xF) return ES_T_INT;
    if ((t & 0xF) == 0x3) return ES_T_OTHER;
    if (t == W_NIL) return ES_T_NIL;
    if ((t & 0x3F) == 0xB) return ES_T_ATOM;
    if ((t & 3) == 1) return ES_T_LIST;
    if (w_box(t)) {
        uint64_t h = w_box(t)[0];
        return (h & 0x3F) == 0 ? ES_T_TUPLE : (h & 0x3F) == 0x10 ? ES_T_OTHER : h == 0x13C ? ES_T_MAP : ES_T_BINARY;
    }
    return f_type(env, t);
}
/* the ETF of a word pid or reference (as the VM writes them, with node :nonode@nohost) */
static int w_external(void *env, es_term t, es_buf *out) {
    static const uint8_t node[] = {119, 13, 'n', 'o', 'n', 'o', 'd', 'e', '@', 'n', 'o', 'h', 'o', 's', 't'};
    const uint64_t *box = w_box(t);
    if ((t & 0xF) == 0x3) {
        uint8_t x[12] = {0, 0, (uint8_t)(t >> 12), (uint8_t)(t >> 4), 0, 0, 0, 1, 0x60, 0, 0, 5};
        return es_buf_put(out, (const uint8_t[]){88}, 1) || es_buf_put(out, node, sizeof node) || es_buf_put(out, x, 12);
    }
    if (box && (box[0] & 0x3F) == 0x10) {
        uint8_t x[4 + 12] = {0x60, 0, 0, 5, 0, 0, 0, (uint8_t)box[1], 0, 0, 0, (uint8_t)box[2], 0, 0, 0, (uint8_t)box[3]};
        return es_buf_put(out, (const uint8_t[]){90, 0, 3}, 3) || es_buf_put(out, node, sizeof node) ||
               es_buf_put(out, x, sizeof x);
    }
    return w_is_word(t) ? -1 : f_external(env, t, out);
}
static int w_int(void *env, es_term t, int64_t *out) {
    if ((t & 0xF) != 0xF) return f_int(env, t, out);
    *out = (int64_t)t >> 4;
    return 1;
}
static int w_atom(void *env, es_term t, char *buf, size_t cap) {
    if (!w_is_word(t)) return f_atom(env, t, buf, cap);
    w_atom_calls++;
    const char *name = W_ATOMS[t >> 6];
    if (strlen(name) >= cap) return -1;
    strcpy(buf, name);
    return (int)strlen(name);
}
static int w_cell(void *env, es_term t, es_term *h, es_term *tl) {
    if (!w_is_word(t)) return f_cell(env, t, h, tl);
    if ((t & 3) != 1) return 0;
    const es_term *c = (const es_term *)(uintptr_t)(t - 1);
    *h = c[0];
    *tl = c[1];
    return 1;
}
static int w_tuple(void *env, es_term t, int *arity, const es_term **elems) {
    const uint64_t *box = w_box(t);
    if (box && (box[0] & 0x3F) == 0) {
        *arity = (int)(box[0] >> 6);
        *elems = box + 1;
        return 1;
    }
    return w_is_word(t) ? 0 : f_tuple(env, t, arity, elems);
}
static size_t w_map_size(void *env, es_term t) {
    const uint64_t *box = w_box(t);
    if (box && box[0] == 0x13C) return (size_t)box[1];
    return w_is_word(t) ? 0 : f_map_size(env, t);
}
static int w_map_pairs(void *env, es_term t, es_term *keys, es_term *values, size_t n) {
    const uint64_t *box = w_box(t);
    w_pair_calls++;
    if (!box || box[0] != 0x13C) return w_is_word(t) ? -1 : f_map_pairs(env, t, keys, values, n);
    if (n > box[1]) return -1;
    memcpy(keys, w_box((es_term)box[2]) + 1, n * sizeof(es_term));
    memcpy(values, box + 3, n * sizeof(es_term));
    return 0;
}
static int w_binary(void *env, es_term t, const uint8_t **data, size_t *size, unsigned *tail_bits) {
    const uint64_t *box = w_box(t);
    if (box && (box[0] & 0x3F) == 0x24) {
        *data = (const uint8_t *)(box + 2);
        *size = box[1];
        *tail_bits = 0;
        return 1;
    }
    return w_is_word(t) ? 0 : f_binary(env, t, data, size, tail_bits);
}

/* the layout of the word model: 64-bit BEAM's, with identifiers and flat maps; and with words only */
#define W_LAYOUT {0xF, 0xF, 4, 0x3B, 0x3F, 0xB, 0x3, 0x1, 0x3, 0x2, 0x3F, 0x0, 0x24, 6, 0xF, 0x3, 0x10, 0x13C}
#define W_LAYOUT_WORDS {0xF, 0xF, 4, 0x3B, 0x3F, 0xB, 0x3, 0x1, 0, 0, 0, 0, 0, 0, 0xF, 0x3, 0, 0}

static void test_layout_and_atom_cache(void **state) {
    (void)state;
    /* with boxes (tuples, heap binaries) read from the words, and without */
    static const es_term_layout boxes = W_LAYOUT, words = W_LAYOUT_WORDS;
    static es_atom_cache cache; /* zeroed: empty */
    const es_term_ops plain = {w_type, w_int, f_double, w_atom, w_binary, w_cell, w_tuple,
                               w_map_size, w_map_pairs, w_external, f_fun_info, NULL, NULL};
    es_redact_set rs;
    es_redact_cache rcache;
    memset(&rcache, 0, sizeof rcache);
    default_rules(&rs, &rcache);
    es_term ints = WCONS(WI(1), WCONS(WI(-5), WCONS(WI(1000000), WCONS(WI((1ll << 59) - 1), WCONS(WI(-(1ll << 59)), W_NIL)))));
    es_term atoms = WCONS(WA(0), WCONS(WA(1), WCONS(WA(4), WCONS(WA(0), W_NIL))));
    es_term mixed = WCONS(WI(7), WCONS(B("bin", 3), WCONS(TUPLE(WA(2), WI(1)), WCONS(WA(3), WI(9))))); /* improper */
    es_term keyed = MAP(TUPLE(WA(3)), WI(1), WA(0), WCONS(WA(1), W_NIL), WA(2), WI(3));
    es_term long_list = W_NIL;
    for (int i = 0; i < 40; i++) long_list = WCONS(i % 2 ? WI(i) : WA(i % 3), long_list);
    /* an argument list and return values as the VM makes them: boxed tuples and heap binaries */
    es_term args = WCONS(WI(1), WCONS(WI(2), WCONS(WA(0), WCONS(WBIN("b"), W_NIL))));
    es_term bins = WCONS(WBIN(""), WCONS(WBIN("12345678"), WCONS(WBIN("a heap binary of 30 bytes.....") , W_NIL)));
    es_term secret = WT2(WA(2), WBIN("hunter2")), secret_bin = WT2(WBIN("password"), WI(1));
    es_term nested = WT2(WA(0), WCONS(WT2(WI(3), WBIN("x")), WCONS(secret, W_NIL)));
    es_term terms[] = {WI(42), W_NIL, WA(0), ints, atoms, mixed, keyed, long_list, TUPLE(WI(1), WA(1), W_NIL, ints),
                       args, bins, secret, secret_bin, nested, WBIN("12345"), MAP(WA(2), WBIN("k"), WBIN("token"), WI(1))};
    static const es_codec_limits limits[] = {{8, 32, 256, 4096}, {2, 3, 2, 24}, {1, 1, 0, 0}, {8, 100, 256, 0}};
    for (int variant = 0; variant < 2; variant++) {
    const es_term_ops fast = {w_type, w_int, f_double, w_atom, w_binary, w_cell, w_tuple,
                              w_map_size, w_map_pairs, w_external, f_fun_info, variant ? &words : &boxes, &cache};
    memset(&cache, 0, sizeof cache);
    for (int round = 0; round < 2; round++) { /* the second round finds the atoms cached */
        if (round == 1) w_atom_calls = 0;
        for (size_t i = 0; i < sizeof terms / sizeof *terms; i++)
            for (size_t l = 0; l < sizeof limits / sizeof *limits; l++) {
                es_buf a, b;
                unsigned fa = 0, fb = 0;
                es_buf_init(&a, NULL, 0);
                es_buf_init(&b, NULL, 0);
                assert_int_equal(es_codec_encode(&plain, NULL, terms[i], &limits[l], &rs, &a, &fa), 0);
                size_t before = w_atom_calls;
                assert_int_equal(es_codec_encode(&fast, NULL, terms[i], &limits[l], &rs, &b, &fb), 0);
                if (round == 1 && i == 4) assert_true(w_atom_calls - before <= 1); /* at most the 40-byte name */
                assert_int_equal(fa, fb);
                if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
                    fail_msg("term %zu, limits %zu, round %d, variant %d: the fast path wrote other bytes", i, l, round,
                             variant);
                es_buf_free(&a);
                es_buf_free(&b);
            }
    }
    }
    /* es_term_list_length: proper lists only, up to max */
    const es_term_ops with_layout = {w_type, w_int, f_double, w_atom, w_binary, w_cell, w_tuple,
                                     w_map_size, w_map_pairs, w_external, f_fun_info, &boxes, &cache};
    const es_term_ops *both[] = {&plain, &with_layout};
    for (int k = 0; k < 2; k++) {
        size_t n = 99;
        assert_int_equal(es_term_list_length(both[k], NULL, args, 255, &n), 1);
        assert_int_equal(n, 4);
        assert_int_equal(es_term_list_length(both[k], NULL, W_NIL, 255, &n), 1);
        assert_int_equal(n, 0);
        assert_int_equal(es_term_list_length(both[k], NULL, args, 3, &n), 0);
        assert_int_equal(es_term_list_length(both[k], NULL, mixed, 255, &n), 0); /* improper */
        assert_int_equal(es_term_list_length(both[k], NULL, WI(1), 255, &n), 0);
    }
    const es_term_ops fast = with_layout;
    /* the marker atom is never served from the cache: a key holding it is still wrapped */
    for (int round = 0; round < 2; round++) {
        es_buf b;
        unsigned fl = 0;
        es_buf_init(&b, NULL, 0);
        assert_int_equal(es_codec_encode(&fast, NULL, MAP(WA(3), WI(1)), &BIG, NULL, &b, &fl), 0);
        assert_int_equal(fl, ES_CODEC_TRUNCATED);
        assert_non_null(memmem(b.data, b.len, (const uint8_t[]){119, 3, 'k', 'e', 'y', 97, 0}, 7));
        es_buf_free(&b);
    }
    w_free();
    free_nodes();
}


/* ---- the hot path (nested terms in one pass) against the walker ----
 * Generated nested terms of the word model (tuples, proper and improper lists, flat maps, pids,
 * references, heap binaries, small integers, atoms, with leaves only the ops read: floats, big
 * integers, funs, bitstrings, long binaries, maps that are not flat) encode to the same bytes and
 * flags through the ops alone (the walker) and through the layout (the hot path, or the walker
 * where it gives up), under limits that cut, budgets that run out and redaction. */
static es_term wgen(int depth);

static es_term wleaf(void) {
    static const int64_t ints[] = {0, 1, -1, 255, 256, -129, INT32_MAX, (int64_t)INT32_MAX + 1, INT32_MIN,
                                   (1ll << 59) - 1, -(1ll << 59)};
    static const size_t sizes[] = {0, 1, 7, 8, 9, 30, 64, 65, 100, 300};
    static const uint8_t pid_etf[] = {88, 119, 4, 'n', 'o', 'd', 'e', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0};
    uint8_t buf[300], mag[40];
    switch (rn(20)) {
    case 0: case 1: case 2: return WI(ints[rn(11)]);
    case 3: return WI((int64_t)(rnd() >> 5) - (1ll << 58));
    case 4: case 5: case 6: return WA((int)rn(5));
    case 7: return W_NIL;
    case 8: case 9: {
        size_t n = sizes[rn(10)];
        for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)("pasword_-X"[rn(10)]);
        return WBINN(buf, n);
    }
    case 10: return WPID(rn(1000));
    case 11: return WREF(rn(1000));
    case 12: return I(rn(2) ? INT64_MAX : INT64_MIN + (int64_t)rn(5)); /* beyond the small integers */
    case 13: return FL((double)rn(2000) / 8.0 - 100.0);
    case 14: {
        size_t n = rn(2) ? 9 : 40;
        for (size_t i = 0; i < n; i++) mag[i] = (uint8_t)(1 + rn(255));
        return BIGN((int)rn(2), mag, n);
    }
    case 15: return A(rn(2) ? "an atom the ops name" : "apiKey");
    case 16: return rn(2) ? FUN_EXT("Elixir.Enum", "map", 2) : FUN_LOCAL("Elixir.M", 3, 77);
    case 17: return BITS("abc", 2, 1 + rn(7));
    case 18: return OTHER(pid_etf, sizeof pid_etf);
    default: return MAP(WA(0), WI(1)); /* a map the layout does not read */
    }
}

static es_term wgen(int depth) {
    if (depth <= 0 || rn(3) == 0) return wleaf();
    int n = rn(8) == 0 ? 20 + (int)rn(30) : (int)rn(5);
    es_term items[2 * 50];
    switch (rn(4)) {
    case 0: { /* a list, sometimes improper */
        es_term acc = rn(5) == 0 ? wgen(depth - 1) : W_NIL;
        for (int i = 0; i < n; i++) acc = WCONS(wgen(depth - 1), acc);
        return acc;
    }
    case 1: /* a tuple, sometimes tagged with a secret name */
        for (int i = 0; i < n; i++) items[i] = wgen(depth - 1);
        if (n >= 2 && rn(4) == 0) items[0] = rn(2) ? WA(2) : WBIN("password");
        return WTV(n, items);
    case 2: /* a flat map, sometimes with a secret key or the marker atom in a key */
        if (n > 32) n = 32;
        for (int i = 0; i < n; i++) {
            unsigned k = rn(10);
            items[2 * i] = k == 0 ? WA(2) : k == 1 ? WA(3) : k == 2 ? WT2(WA(3), WI(i)) : k < 6 ? WI(i) : wleaf();
            items[2 * i + 1] = wgen(depth - 1);
        }
        return WMAPV(n, items);
    default: { /* a GenServer call's arguments: [request, {pid, [:alias | ref]}, state] */
        es_term from = WT2(WPID(rn(100)), WCONS(WA(0), WREF(rn(100))));
        return WCONS(WT2(WA(1), WI(rn(100))), WCONS(from, WCONS(wgen(depth - 1), W_NIL)));
    }
    }
}

static const es_term_ops W_PLAIN = {w_type, w_int, f_double, w_atom, w_binary, w_cell, w_tuple,
                                    w_map_size, w_map_pairs, w_external, f_fun_info, NULL, NULL};

/* Encodes t through the ops alone and through ops_fast; fails unless bytes and flags match.
 * Returns the op calls (type, map pairs) the second encoding made. */
static size_t same_as_walker(const es_term_ops *ops_fast, es_term t, const es_codec_limits *lim,
                             const es_redact_set *rs, unsigned *flags, const char *what) {
    es_buf a, b;
    unsigned fa = 0, fb = 0;
    es_buf_init(&a, NULL, 0);
    es_buf_init(&b, NULL, 0);
    assert_int_equal(es_codec_encode(&W_PLAIN, NULL, t, lim, rs, &a, &fa), 0);
    size_t calls = w_type_calls + w_pair_calls;
    assert_int_equal(es_codec_encode(ops_fast, NULL, t, lim, rs, &b, &fb), 0);
    calls = w_type_calls + w_pair_calls - calls;
    size_t at = 0;
    while (at < a.len && at < b.len && a.data[at] == b.data[at]) at++;
    if (fa != fb || a.len != b.len || at != a.len)
        fail_msg("%s: the layout wrote other bytes from byte %zu (%zu bytes against %zu, flags %u against %u)", what, at,
                 b.len, a.len, fb, fa);
    es_buf_free(&a);
    es_buf_free(&b);
    if (flags) *flags = fb;
    return calls;
}

static void test_fast_path_matches_walker(void **state) {
    (void)state;
    static const es_term_layout boxes = W_LAYOUT, words = W_LAYOUT_WORDS;
    static es_atom_cache cache;
    static const es_codec_limits limits[] = {{8, 32, 256, 4096}, {2, 3, 2, 24}, {1, 1, 0, 0},     {8, 100, 256, 0},
                                             {3, 5, 8, 60},      {16, 64, 1024, 0}, {20, 40, 64, 200}, {1000000, 100000, 1u << 20, 0}};
    es_redact_set rs;
    es_redact_cache rcache;
    memset(&rcache, 0, sizeof rcache);
    default_rules(&rs, &rcache);
    const es_term_ops fast[2] = {{w_type, w_int, f_double, w_atom, w_binary, w_cell, w_tuple, w_map_size, w_map_pairs,
                                  w_external, f_fun_info, &boxes, &cache},
                                 {w_type, w_int, f_double, w_atom, w_binary, w_cell, w_tuple, w_map_size, w_map_pairs,
                                  w_external, f_fun_info, &words, &cache}};
    rng_state = 0xC0DEC2ULL;
    size_t outputs = 0, without_ops = 0;
    char what[96];
    for (int iter = 0; iter < 1500; iter++) {
        es_term t = wgen(1 + (int)rn(6));
        for (size_t l = 0; l < sizeof limits / sizeof *limits; l++)
            for (int redacting = 0; redacting < 2; redacting++)
                for (int v = 0; v < 2; v++) {
                    snprintf(what, sizeof what, "term %d, limits %zu, redacting %d, variant %d", iter, l, redacting, v);
                    unsigned fl;
                    size_t plain_calls = w_type_calls + w_pair_calls;
                    size_t calls = same_as_walker(&fast[v], t, &limits[l], redacting ? &rs : NULL, &fl, what);
                    plain_calls = w_type_calls + w_pair_calls - plain_calls - calls;
                    outputs++;
                    if (v == 0 && calls == 0 && plain_calls > 0) without_ops++;
                }
        free_nodes();
        w_free();
        /* the fake atoms' addresses are reused: forget what was cached about them */
        memset(&cache, 0, sizeof cache);
        memset(&rcache, 0, sizeof rcache);
    }
    /* the hot path took a good share of what the ops alone would have asked about */
    assert_true(without_ops > outputs / 20);
}


/* ---- the atom cache under concurrent writers ----
 * 4,096 atoms (more than the cache has slots, so they evict each other) with names of 1 to 46
 * bytes (the longest a slot holds) and a few longer ones, encoded at once by several threads:
 * every encoding must be the atom's exact name, never a mix of two (what the slots' seqlock
 * guarantees; the test exercises it under ASan/UBSan, it cannot force the rare race). */
#define CACHE_ATOMS 4096
static size_t atom_name(uint64_t i, char *buf) {
    size_t n = i % 50 + 1; /* up to 50: names over 46 bytes are never cached */
    for (size_t k = 0; k < n; k++) buf[k] = (char)('a' + (i * 7 + k * 13) % 26);
    buf[0] = (char)('A' + i % 26);
    return n;
}
static es_term_type a_type(void *env, es_term t) {
    (void)env;
    (void)t;
    return ES_T_ATOM;
}
static int a_atom(void *env, es_term t, char *buf, size_t cap) {
    (void)env;
    if (cap < 64) return -1;
    return (int)atom_name(t >> 6, buf);
}
typedef struct cache_worker {
    const es_term_ops *ops;
    uint64_t seed;
    size_t wrong;
} cache_worker;
static void *encode_atoms(void *arg) {
    cache_worker *w = arg;
    es_codec_limits lim = {8, 32, 256, 0};
    for (int i = 0; i < 200000; i++) {
        w->seed = w->seed * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t idx = (w->seed >> 33) % CACHE_ATOMS;
        char name[64];
        size_t n = atom_name(idx, name);
        uint8_t storage[128];
        es_buf b;
        unsigned fl;
        es_buf_init(&b, storage, sizeof storage);
        es_codec_encode(w->ops, NULL, (es_term)(idx << 6 | 0xB), &lim, NULL, &b, &fl);
        if (b.len != n + 3 || b.data[1] != 119 || b.data[2] != n || memcmp(b.data + 3, name, n) != 0) w->wrong++;
        es_buf_free(&b);
    }
    return NULL;
}
static void test_atom_cache_concurrent(void **state) {
    (void)state;
    static const es_term_layout layout = W_LAYOUT;
    static es_atom_cache cache;
    memset(&cache, 0, sizeof cache);
    es_term_ops ops = {a_type, f_int, f_double, a_atom, f_binary, f_cell, f_tuple, f_map_size, f_map_pairs,
                       f_external, f_fun_info, &layout, &cache};
    cache_worker workers[4];
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) {
        workers[i] = (cache_worker){&ops, (uint64_t)i * 77 + 1, 0};
        assert_int_equal(pthread_create(&threads[i], NULL, encode_atoms, &workers[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(workers[i].wrong, 0);
    }
    /* the longest names a slot holds are served from it (the word model's atoms: an empty cache) */
    memset(&cache, 0, sizeof cache);
    size_t calls_before = w_atom_calls;
    es_term long_ok = WA(4); /* "a_rather_long_atom_name_of_40_bytes_xxxx" */
    es_term_ops words = {w_type, w_int, f_double, w_atom, w_binary, w_cell, w_tuple, w_map_size, w_map_pairs,
                         w_external, f_fun_info, &layout, &cache};
    for (int round = 0; round < 2; round++) {
        uint8_t storage[128];
        es_buf b;
        unsigned fl;
        es_buf_init(&b, storage, sizeof storage);
        assert_int_equal(es_codec_encode(&words, NULL, long_ok, &BIG, NULL, &b, &fl), 0);
        assert_int_equal(b.len, 3 + 40);
        es_buf_free(&b);
    }
    assert_int_equal(w_atom_calls - calls_before, 1);
}

/* What the hot path writes by itself (no op call: the walker would ask what each pid, reference
 * and map is) and where it leaves the term to the walker. */
static void test_fast_path_shapes(void **state) {
    (void)state;
    static const es_term_layout boxes = W_LAYOUT;
    static es_atom_cache cache;
    memset(&cache, 0, sizeof cache);
    const es_term_ops fast = {w_type, w_int, f_double, w_atom, w_binary, w_cell, w_tuple, w_map_size, w_map_pairs,
                              w_external, f_fun_info, &boxes, &cache};
    static const es_codec_limits dflt = {8, 32, 256, 4096};
    es_redact_set rs;
    es_redact_cache rcache;
    memset(&rcache, 0, sizeof rcache);
    default_rules(&rs, &rcache);
    es_term from = WT2(WPID(5), WCONS(WA(0), WREF(9)));
    es_term call_args = WCONS(WT2(WA(1), WI(1)), WCONS(from, WCONS(WI(0), W_NIL)));
    es_term reply = WTV(3, (es_term[]){WA(0), WA(1), WMAPV(2, (es_term[]){WA(0), WI(1), WA(1), WBIN("b")})});
    es_term received = WT2(WT2(WA(1), WI(1)), WMAPV(2, (es_term[]){WA(0), WA(1), WA(1), W_NIL}));
    es_term improper = WCONS(WI(1), WCONS(WA(0), WPID(3)));
    es_term nested = W_NIL;
    for (int i = 0; i < 4; i++) nested = WCONS(WT2(WI(i), nested), W_NIL); /* 8 levels */
    es_term by_itself[] = {call_args, reply, received, improper, nested, WMAPV(0, NULL), WTV(0, NULL), from};
    for (size_t i = 0; i < sizeof by_itself / sizeof *by_itself; i++) {
        unsigned fl;
        same_as_walker(&fast, by_itself[i], &BIG, &rs, &fl, "warming the atom cache");
        assert_int_equal(same_as_walker(&fast, by_itself[i], &dflt, &rs, &fl, "by itself"), 0);
        assert_int_equal(fl, 0);
    }
    /* a float, a big integer, a long atom: through the walker's own writers, exact */
    es_term leaves = WT2(FL(1.5), WCONS(I(INT64_MAX), WCONS(WA(4), W_NIL)));
    unsigned fl;
    same_as_walker(&fast, leaves, &dflt, &rs, &fl, "leaves the ops read");
    assert_int_equal(fl, 0);
    /* left to the walker, which cuts, redacts or marks: the same bytes either way */
    es_term wide = W_NIL;
    for (int i = 0; i < 40; i++) wide = WCONS(WPID((uint32_t)i), wide);
    struct {
        es_term t;
        unsigned flags;
    } walked[] = {
        {WCONS(WT2(WA(2), WBIN("hunter2")), W_NIL), ES_CODEC_REDACTED},           /* {:password, _} in a list */
        {WT2(WI(1), WMAPV(1, (es_term[]){WBIN("password"), WI(1)})), ES_CODEC_REDACTED}, /* a secret key */
        {WCONS(WI(1), wide), ES_CODEC_TRUNCATED},                                  /* wider than max_width */
        {WCONS(nested, W_NIL), ES_CODEC_TRUNCATED},                                /* deeper than max_depth */
        {WMAPV(1, (es_term[]){WT2(WA(3), WI(1)), WPID(1)}), ES_CODEC_TRUNCATED},   /* the marker atom in a key */
        {WT2(WPID(1), FUN_EXT("Elixir.Enum", "map", 2)), ES_CODEC_TRUNCATED},      /* a fun */
        {WT2(WPID(1), WBINN("0123456789", 10)), 0},                                /* over max_binary: below */
    };
    static const es_codec_limits tight = {8, 32, 4, 4096};
    for (size_t i = 0; i < sizeof walked / sizeof *walked; i++) {
        same_as_walker(&fast, walked[i].t, i == 6 ? &tight : &dflt, &rs, &fl, "walked");
        assert_int_equal(fl, i == 6 ? ES_CODEC_TRUNCATED : walked[i].flags);
    }
    /* a budget of bytes that runs out inside: cut by the walker, the same bytes */
    static const es_codec_limits small_budget = {8, 32, 256, 40};
    same_as_walker(&fast, call_args, &small_budget, NULL, &fl, "over max_bytes");
    assert_int_equal(fl, ES_CODEC_TRUNCATED);
    /* an argument list through the hot path is counted as it is written */
    es_buf b;
    size_t len = 0;
    es_buf_init(&b, NULL, 0);
    assert_int_equal(es_codec_encode_list(&fast, NULL, call_args, &dflt, &rs, &b, &fl, &len), 0);
    assert_int_equal(len, 3);
    es_buf_free(&b);
    w_free();
    free_nodes();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integers),          cmocka_unit_test(test_floats_atoms_binaries),
        cmocka_unit_test(test_lists_tuples_maps), cmocka_unit_test(test_width_truncation),
        cmocka_unit_test(test_depth_truncation),  cmocka_unit_test(test_deep_list_no_recursion),
        cmocka_unit_test(test_binary_truncation), cmocka_unit_test(test_byte_budget),
        cmocka_unit_test(test_redaction_rule),
        cmocka_unit_test(test_redaction_index_matches_the_rules),    cmocka_unit_test(test_redaction),
        cmocka_unit_test(test_bounded_cost),      cmocka_unit_test(test_big_integers_funs_bitstrings),
        cmocka_unit_test(test_keys_stay_distinct), cmocka_unit_test(test_property_valid_etf),
        cmocka_unit_test(test_buf_and_append),    cmocka_unit_test(test_layout_and_atom_cache),
        cmocka_unit_test(test_fast_path_matches_walker), cmocka_unit_test(test_fast_path_shapes),
        cmocka_unit_test(test_atom_cache_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
