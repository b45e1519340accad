/* CMocka tests of the ETF decoder/encoder (c_src/etf.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "elixir_scope/etf.h"

/* term_to_binary({ok, [-5, 100000, -100000, 1 bsl 70, 3.5, <<"ab">>, abc, {}, #{a => 1}, [x | y],
 *                      {a, b, c}, <<>>, [], true]}, [{minor_version, 2}]) */
static const uint8_t MIXED[] = {
    131, 104, 2,   119, 2,   111, 107, 108, 0,   0,   0,   14,  98,  255, 255, 255, 251, 98,  0,   1,   134,
    160, 98,  255, 254, 121, 96,  110, 9,   0,   0,   0,   0,   0,   0,   0,   0,   0,   64,  70,  64,  12,
    0,   0,   0,   0,   0,   0,   109, 0,   0,   0,   2,   97,  98,  119, 3,   97,  98,  99,  104, 0,   116,
    0,   0,   0,   1,   119, 1,   97,  97,  1,   108, 0,   0,   0,   1,   119, 1,   120, 119, 1,   121, 104,
    3,   119, 1,   97,  119, 1,   98,  119, 1,   99,  109, 0,   0,   0,   0,   106, 119, 4,   116, 114, 117,
    101, 106};

/* term_to_binary({self(), make_ref(), fun lists:reverse/1, <<1:3>>}, [{minor_version, 2}]) */
static const uint8_t OPAQUE[] = {
    131, 104, 4,   88,  119, 13,  110, 111, 110, 111, 100, 101, 64,  110, 111, 104, 111, 115, 116, 0,   0,
    0,   9,   0,   0,   0,   0,   0,   0,   0,   0,   90,  0,   3,   119, 13,  110, 111, 110, 111, 100, 101,
    64,  110, 111, 104, 111, 115, 116, 0,   0,   0,   0,   0,   2,   163, 251, 155, 184, 0,   1,   100, 117,
    116, 85,  113, 119, 5,   108, 105, 115, 116, 115, 119, 7,   114, 101, 118, 101, 114, 115, 101, 97,  1,
    77,  0,   0,   0,   1,   3,   32};

static void roundtrip(const uint8_t *in, size_t len) {
    es_arena a;
    es_arena_init(&a);
    es_etf_term *t = NULL;
    size_t off = 0;
    assert_int_equal(es_etf_decode(&a, in, len, 1000, &t, &off), ES_ETF_OK);
    uint8_t *out = NULL;
    size_t olen = 0;
    assert_int_equal(es_etf_encode(t, &out, &olen), ES_ETF_OK);
    assert_int_equal(olen, len);
    assert_memory_equal(out, in, len);
    free(out);
    es_arena_free(&a);
}

static void test_roundtrip_mixed(void **state) {
    (void)state;
    roundtrip(MIXED, sizeof MIXED);
}

static void test_roundtrip_opaque_terms_kept_raw(void **state) {
    (void)state;
    roundtrip(OPAQUE, sizeof OPAQUE);
    es_arena a;
    es_arena_init(&a);
    es_etf_term *t = NULL;
    assert_int_equal(es_etf_decode(&a, OPAQUE, sizeof OPAQUE, 10, &t, NULL), ES_ETF_OK);
    assert_int_equal(t->kind, ES_ETF_TUPLE);
    assert_int_equal(t->n, 4);
    for (int i = 0; i < 4; i++) assert_int_equal(t->u.items[i]->kind, ES_ETF_RAW);
    es_arena_free(&a);
}

static void test_decoded_shapes(void **state) {
    (void)state;
    es_arena a;
    es_arena_init(&a);
    es_etf_term *t = NULL;
    assert_int_equal(es_etf_decode(&a, MIXED, sizeof MIXED, 100, &t, NULL), ES_ETF_OK);
    assert_true(es_etf_is_atom(t->u.items[0], "ok"));
    es_etf_term *l = t->u.items[1];
    assert_true(es_etf_is_proper_list(l));
    assert_int_equal(es_etf_list_len(l), 14);
    assert_int_equal(es_etf_list_at(l, 0)->u.i, -5);
    assert_int_equal(es_etf_list_at(l, 2)->u.i, -100000);
    assert_int_equal(es_etf_list_at(l, 3)->kind, ES_ETF_RAW); /* bignum */
    assert_true(es_etf_list_at(l, 4)->u.f == 3.5);
    assert_int_equal(es_etf_list_at(l, 5)->kind, ES_ETF_BINARY);
    assert_memory_equal(es_etf_list_at(l, 5)->u.bytes, "ab", 2);
    es_etf_term *m = es_etf_list_at(l, 8);
    assert_int_equal(m->kind, ES_ETF_MAP);
    assert_int_equal(es_etf_get(m, "a")->u.i, 1);
    es_etf_term *improper = es_etf_list_at(l, 9);
    assert_false(es_etf_is_proper_list(improper));
    assert_true(es_etf_is_atom(improper->u.items[1], "y"));
    es_arena_free(&a);
}

static void test_string_ext_and_latin1_atoms(void **state) {
    (void)state;
    /* {[1,2,3] as STRING_EXT, 'é' as a latin-1 ATOM_EXT} */
    const uint8_t in[] = {131, 104, 2, 107, 0, 3, 1, 2, 3, 100, 0, 1, 0xE9};
    es_arena a;
    es_arena_init(&a);
    es_etf_term *t = NULL;
    assert_int_equal(es_etf_decode(&a, in, sizeof in, 10, &t, NULL), ES_ETF_OK);
    es_etf_term *s = t->u.items[0];
    assert_int_equal(s->kind, ES_ETF_LIST);
    assert_int_equal(s->n, 3);
    assert_int_equal(s->u.items[2]->u.i, 3);
    es_etf_term *at = t->u.items[1];
    assert_int_equal(at->kind, ES_ETF_ATOM);
    assert_int_equal(at->n, 2);
    assert_int_equal(at->u.bytes[0], 0xC3);
    assert_int_equal(at->u.bytes[1], 0xA9);
    uint8_t *out;
    size_t olen;
    assert_int_equal(es_etf_encode(t, &out, &olen), ES_ETF_OK);
    /* 131 104 2 | 108 0 0 0 3 97 1 97 2 97 3 106 | 119 2 C3 A9 */
    const uint8_t want[] = {131, 104, 2, 108, 0, 0, 0, 3, 97, 1, 97, 2, 97, 3, 106, 119, 2, 0xC3, 0xA9};
    assert_int_equal(olen, sizeof want);
    assert_memory_equal(out, want, sizeof want);
    free(out);
    es_arena_free(&a);
}

/* [[[...[]...]]] nested `depth` deep */
static uint8_t *nested_lists(size_t depth, size_t *len) {
    size_t n = 1 + depth * 5 + 1 + depth;
    uint8_t *b = malloc(n);
    size_t p = 0;
    b[p++] = 131;
    for (size_t i = 0; i < depth; i++) {
        b[p++] = 108;
        b[p++] = 0;
        b[p++] = 0;
        b[p++] = 0;
        b[p++] = 1;
    }
    b[p++] = 106;
    for (size_t i = 0; i < depth; i++) b[p++] = 106;
    *len = p;
    return b;
}

static void test_deep_nesting_is_iterative(void **state) {
    (void)state;
    size_t len;
    uint8_t *in = nested_lists(1000000, &len);
    es_arena a;
    es_arena_init(&a);
    es_etf_term *t = NULL;
    assert_int_equal(es_etf_decode(&a, in, len, 2000000, &t, NULL), ES_ETF_OK);
    uint8_t *out;
    size_t olen;
    assert_int_equal(es_etf_encode(t, &out, &olen), ES_ETF_OK);
    assert_int_equal(olen, len);
    assert_memory_equal(out, in, len);
    free(out);
    assert_int_equal(es_etf_skip(in + 1, len - 1), len - 1);
    es_arena_free(&a);

    es_arena_init(&a);
    size_t off = 0;
    assert_int_equal(es_etf_decode(&a, in, len, 1000, &t, &off), ES_ETF_ETOODEEP);
    es_arena_free(&a);
    free(in);
}

static void test_malformed_inputs(void **state) {
    (void)state;
    const uint8_t *cases[] = {
        (const uint8_t[]){130, 106},                  /* bad version */
        (const uint8_t[]){131},                       /* empty */
        (const uint8_t[]){131, 104, 2, 97},           /* truncated tuple */
        (const uint8_t[]){131, 108, 255, 255, 255, 255, 106}, /* absurd list length */
        (const uint8_t[]){131, 109, 0, 0, 0, 9, 1},   /* binary longer than input */
        (const uint8_t[]){131, 200},                  /* unknown tag */
        (const uint8_t[]){131, 106, 106},             /* trailing bytes */
        (const uint8_t[]){131, 119, 5, 97},           /* truncated atom */
    };
    const size_t lens[] = {2, 1, 4, 7, 7, 2, 3, 4};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        es_arena a;
        es_arena_init(&a);
        es_etf_term *t = NULL;
        assert_int_equal(es_etf_decode(&a, cases[i], lens[i], 100, &t, NULL), ES_ETF_EBADARG);
        es_arena_free(&a);
    }
}

static void test_constructors(void **state) {
    (void)state;
    es_arena a;
    es_arena_init(&a);
    es_etf_term *t = es_etf_tuple_of(&a, 3, es_etf_atom(&a, "x"), es_etf_int(&a, 1LL << 40),
                                     es_etf_list_of(&a, 2, es_etf_int(&a, -1), es_etf_binary(&a, (const uint8_t *)"hi", 2)));
    uint8_t *out;
    size_t olen;
    assert_int_equal(es_etf_encode(t, &out, &olen), ES_ETF_OK);
    es_arena b;
    es_arena_init(&b);
    es_etf_term *back = NULL;
    assert_int_equal(es_etf_decode(&b, out, olen, 10, &back, NULL), ES_ETF_OK);
    assert_true(es_etf_is_atom(back->u.items[0], "x"));
    assert_int_equal(back->u.items[1]->kind, ES_ETF_RAW); /* 2^40 goes out as a small big */
    assert_int_equal(es_etf_list_at(back->u.items[2], 0)->u.i, -1);
    free(out);
    es_arena_free(&b);
    es_arena_free(&a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_mixed),
        cmocka_unit_test(test_roundtrip_opaque_terms_kept_raw),
        cmocka_unit_test(test_decoded_shapes),
        cmocka_unit_test(test_string_ext_and_latin1_atoms),
        cmocka_unit_test(test_deep_nesting_is_iterative),
        cmocka_unit_test(test_malformed_inputs),
        cmocka_unit_test(test_constructors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
