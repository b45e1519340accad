/* CMocka tests of the bounded ETF encoder (c_src/term_codec.c) over a tiny
 * fake term model (tagged structs) implementing es_term_ops. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
static int f_cell(void *env, es_term t, es_term *h, es_term *tl) {
    (void)env;
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
    if (F(t)->type != ES_T_MAP || n != (size_t)F(t)->n) return -1;
    memcpy(keys, F(t)->elems, n * sizeof(es_term));
    memcpy(values, F(t)->vals, n * sizeof(es_term));
    return 0;
}
static int f_external(void *env, es_term t, es_buf *out) {
    (void)env;
    if (F(t)->type != ES_T_OTHER || F(t)->len == 0) return -1;
    return es_buf_put(out, F(t)->bytes, F(t)->len);
}

static const es_term_ops OPS = {f_type, f_int, f_double, f_atom, f_binary, f_cell,
                                f_tuple, f_map_size, f_map_pairs, f_external};

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
    EXPECT_LIM(LIST(I(1), I(2), I(3), I(4), I(5)), &lim, NULL, ES_CODEC_TRUNCATED, 108, 0, 0, 0, 3, 97, 1, 97, 2,
               MARKER_HEAD, 119, 4, 'l', 'i', 's', 't', 97, 3, 106);
    /* exactly max_width: untouched */
    EXPECT_LIM(LIST(I(1), I(2)), &lim, NULL, 0, 108, 0, 0, 0, 2, 97, 1, 97, 2, 106);
    /* improper list keeps its tail */
    EXPECT_LIM(CONS(I(1), CONS(I(2), CONS(I(3), A("t")))), &lim, NULL, ES_CODEC_TRUNCATED, 108, 0, 0, 0, 3, 97, 1, 97,
               2, MARKER_HEAD, 119, 4, 'l', 'i', 's', 't', 97, 1, 119, 1, 't');
    EXPECT_LIM(TUPLE(I(1), I(2), I(3)), &lim, NULL, ES_CODEC_TRUNCATED, 104, 3, 97, 1, 97, 2, MARKER_HEAD, 119, 5, 't',
               'u', 'p', 'l', 'e', 97, 1);
    EXPECT_LIM(MAP(I(1), I(10), I(2), I(20), I(3), I(30), I(4), I(40)), &lim, NULL, ES_CODEC_TRUNCATED, 116, 0, 0, 0,
               3, 97, 1, 97, 10, 97, 2, 97, 20, M_ATOM, MARKER_HEAD, 119, 3, 'm', 'a', 'p', 97, 2);
    /* a 1,000,000-element list with width 2: count is exact */
    {
        es_term l = NIL();
        for (int i = 0; i < 1000000; i++) l = CONS(I(i & 0x7f), l);
        EXPECT_LIM(l, &lim, NULL, ES_CODEC_TRUNCATED, 108, 0, 0, 0, 3, 97, 0x3f, 97, 0x3e, MARKER_HEAD, 119, 4, 'l',
                   'i', 's', 't', 98, 0, 0x0f, 0x42, 0x3e, 106); /* 999998 = 0x0F423E */
    }
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
    /* header 1+5; ints are 2 bytes: after 8 ints the encoding is 22 > 20, so 92 markers follow */
    const uint8_t marker[] = {MARKER_HEAD, 119, 5, 'b', 'y', 't', 'e', 's', 97, 1};
    assert_int_equal(b.len, 6 + 8 * 2 + 92 * sizeof marker + 1); /* [] is never replaced: the list stays proper */
    for (int i = 0; i < 8; i++) assert_int_equal(b.data[6 + 2 * i + 1], i);
    assert_memory_equal(b.data + 6 + 16, marker, sizeof marker);
    assert_memory_equal(b.data + 6 + 16 + 91 * sizeof marker, marker, sizeof marker);
    es_buf_free(&b);
    free_nodes();
}

static void set_redact(es_redact_set *rs, const char *a, const char *c) {
    memset(rs, 0, sizeof *rs);
    strcpy(rs->names[rs->count++], a);
    if (c) strcpy(rs->names[rs->count++], c);
}

#define REDACTED 119, 10, '[', 'R', 'E', 'D', 'A', 'C', 'T', 'E', 'D', ']'

static void test_redaction(void **state) {
    (void)state;
    es_redact_set rs;
    set_redact(&rs, "password", "token");
    EXPECT_LIM(MAP(A("user"), B("bob", 3), A("password"), B("s3cret", 6)), &BIG, &rs, ES_CODEC_REDACTED, 116, 0, 0, 0,
               2, 119, 4, 'u', 's', 'e', 'r', 109, 0, 0, 0, 3, 'b', 'o', 'b', 119, 8, 'p', 'a', 's', 's', 'w', 'o', 'r',
               'd', REDACTED);
    /* binary keys too */
    EXPECT_LIM(MAP(B("token", 5), LIST(I(1), I(2))), &BIG, &rs, ES_CODEC_REDACTED, 116, 0, 0, 0, 1, 109, 0, 0, 0, 5,
               't', 'o', 'k', 'e', 'n', REDACTED);
    /* keyword lists: [password: "x", a: 1] */
    EXPECT_LIM(LIST(TUPLE(A("password"), B("x", 1)), TUPLE(A("a"), I(1))), &BIG, &rs, ES_CODEC_REDACTED, 108, 0, 0, 0,
               2, 104, 2, 119, 8, 'p', 'a', 's', 's', 'w', 'o', 'r', 'd', REDACTED, 104, 2, 119, 1, 'a', 97, 1, 106);
    /* nested under a non-redacted key; prefix names do not match */
    EXPECT_LIM(MAP(A("cfg"), MAP(A("pass"), I(1), A("token"), I(2))), &BIG, &rs, ES_CODEC_REDACTED, 116, 0, 0, 0, 1,
               119, 3, 'c', 'f', 'g', 116, 0, 0, 0, 2, 119, 4, 'p', 'a', 's', 's', 97, 1, 119, 5, 't', 'o', 'k', 'e',
               'n', REDACTED);
    /* no match: no flag */
    EXPECT_LIM(TUPLE(A("user"), I(1)), &BIG, &rs, 0, 104, 2, 119, 4, 'u', 's', 'e', 'r', 97, 1);
    /* 3-tuples are not keyword pairs */
    EXPECT_LIM(TUPLE(A("token"), I(1), I(2)), &BIG, &rs, 0, 104, 3, 119, 5, 't', 'o', 'k', 'e', 'n', 97, 1, 97, 2);
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integers),          cmocka_unit_test(test_floats_atoms_binaries),
        cmocka_unit_test(test_lists_tuples_maps), cmocka_unit_test(test_width_truncation),
        cmocka_unit_test(test_depth_truncation),  cmocka_unit_test(test_deep_list_no_recursion),
        cmocka_unit_test(test_binary_truncation), cmocka_unit_test(test_byte_budget),
        cmocka_unit_test(test_redaction),         cmocka_unit_test(test_buf_and_append),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
