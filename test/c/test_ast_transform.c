/* CMocka tests of the AST transformer (c_src/ast_transform.c) without the VM:
 * ASTs and plans are built with the ETF constructors, results decoded back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "elixir_scope/ast_transform.h"
#include "elixir_scope/etf.h"

typedef es_etf_term T;
static es_arena A; /* per test */

static T *at(const char *s) { return es_etf_atom(&A, s); }
static T *in(int64_t v) { return es_etf_int(&A, v); }
static T *nil(void) { return es_etf_nil(&A); }
static T *t2(T *a, T *b) { return es_etf_tuple_of(&A, 2, a, b); }
static T *t3(T *a, T *b, T *c) { return es_etf_tuple_of(&A, 3, a, b, c); }
static T *l1(T *a) { return es_etf_list_of(&A, 1, a); }
static T *l2(T *a, T *b) { return es_etf_list_of(&A, 2, a, b); }
static T *meta(int line) { return l1(t2(at("line"), in(line))); }
static T *var(const char *n) { return t3(at(n), meta(1), at("nil")); }
static T *call1(const char *n, T *a) { return t3(at(n), meta(2), l1(a)); }
static T *hole(const char *n) { return t3(at("$es_hole"), nil(), at(n)); }
static T *kw_do(T *body) { return l1(t2(at("do"), body)); }
static T *def1(const char *name, T *arg, T *body) {
    return t3(at("def"), meta(1), l2(t3(at(name), meta(1), l1(arg)), kw_do(body)));
}
static T *module(T *body) {
    return t3(at("defmodule"), meta(1), l2(t3(at("__aliases__"), meta(1), l1(at("M"))), kw_do(body)));
}
static T *block(T **items, uint32_t n) {
    T *l = es_etf_list(&A, n);
    for (uint32_t i = 0; i < n; i++) l->u.items[i] = items[i];
    return t3(at("__block__"), nil(), l);
}

/* rt_<name>(holes...) */
static T *tpl(const char *name, int n, ...) {
    va_list ap;
    va_start(ap, n);
    T *args = es_etf_list(&A, (uint32_t)n);
    for (int i = 0; i < n; i++) args->u.items[i] = hole(va_arg(ap, const char *));
    va_end(ap);
    return t3(at(name), nil(), args);
}

static T *fnplan(int level) { return es_etf_tuple_of(&A, 4, in(level), at("all"), at("all"), nil()); }

static T *plan_with(int level, T *functions) {
    T *tp = es_etf_tuple(&A, 0);
    tp->kind = ES_ETF_MAP;
    const char *keys[] = {"entry", "exit", "tail", "error", "locals", "expr", "state_before", "state_after", "module",
                          "tail_marker", "tail_require", "import_marker"};
    T *vals[] = {tpl("rt_entry", 3, "fun", "args", "line"),
                 tpl("rt_exit", 2, "call", "value"),
                 tpl("rt_tail", 5, "call", "mod", "fun", "args", "line"),
                 tpl("rt_error", 3, "call", "kind", "reason"),
                 tpl("rt_locals", 3, "call", "vars", "line"),
                 tpl("rt_expr", 4, "call", "source", "value", "line"),
                 tpl("rt_state_before", 3, "call", "state", "line"),
                 tpl("rt_state_after", 3, "call", "result", "line"),
                 t3(at("__MODULE__"), nil(), at("nil")),
                 tpl("rt_tail_marker", 2, "index", "call"),
                 t3(at("require"), nil(), l1(at("Elixir.Tail"))),
                 tpl("rt_import_marker", 2, "index", "call")};
    size_t nk = sizeof keys / sizeof keys[0];
    tp->n = (uint32_t)nk;
    tp->u.items = es_arena_alloc(&A, sizeof(T *) * 2 * nk);
    for (size_t i = 0; i < nk; i++) {
        tp->u.items[2 * i] = at(keys[i]);
        tp->u.items[2 * i + 1] = vals[i];
    }
    T *p = es_etf_tuple(&A, 0);
    p->kind = ES_ETF_MAP;
    p->n = 6;
    p->u.items = es_arena_alloc(&A, sizeof(T *) * 12);
    T *pv[] = {at("version"), in(1),         at("default"), fnplan(level), at("functions"), functions,
               at("genserver"), at("auto"), at("var_context"), at("es"),     at("templates"), tp};
    memcpy(p->u.items, pv, sizeof pv);
    return p;
}

static uint8_t *enc(T *t, size_t *len) {
    uint8_t *b = NULL;
    assert_int_equal(es_etf_encode(t, &b, len), ES_ETF_OK);
    return b;
}

/* runs the transformer; returns the decoded result (in arena R) */
static es_arena R;
static T *run(T *ast, T *plan) {
    size_t al, pl;
    uint8_t *ab = enc(ast, &al), *pb = enc(plan, &pl);
    es_ast_result res;
    assert_int_equal(es_ast_transform(ab, al, pb, pl, &res), 0);
    free(ab);
    free(pb);
    T *out = NULL;
    /* the result must decode; keep its bytes alive with the arena */
    size_t len = res.etf_len;
    uint8_t *keep = es_arena_alloc(&R, len);
    memcpy(keep, res.etf, len);
    es_ast_result_free(&res);
    assert_int_equal(es_etf_decode(&R, keep, len, 1u << 24, &out, NULL), ES_ETF_OK);
    return out;
}

/* occurrences of an atom anywhere (iterative) */
static size_t count_atom(const T *t, const char *name) {
    size_t n = 0, sn = 0, cap = 1024;
    const T **st = malloc(cap * sizeof(T *));
    st[sn++] = t;
    while (sn) {
        const T *x = st[--sn];
        if (es_etf_is_atom(x, name)) n++;
        if (x->kind == ES_ETF_TUPLE || x->kind == ES_ETF_LIST || x->kind == ES_ETF_MAP) {
            uint32_t c = x->kind == ES_ETF_LIST ? x->n + 1 : x->kind == ES_ETF_MAP ? 2 * x->n : x->n;
            for (uint32_t i = 0; i < c; i++) {
                if (sn == cap) st = realloc(st, (cap *= 2) * sizeof(T *));
                st[sn++] = x->u.items[i];
            }
        }
    }
    free(st);
    return n;
}

static int setup(void **state) {
    (void)state;
    es_arena_init(&A);
    es_arena_init(&R);
    return 0;
}
static int teardown(void **state) {
    (void)state;
    es_arena_free(&A);
    es_arena_free(&R);
    return 0;
}

static void assert_error(T *res, const char *reason) {
    assert_int_equal(res->kind, ES_ETF_TUPLE);
    assert_true(es_etf_is_atom(res->u.items[0], "error"));
    T *r = res->u.items[1];
    if (r->kind == ES_ETF_TUPLE) r = r->u.items[0];
    assert_true(es_etf_is_atom(r, reason));
}

static void test_small_transform(void **state) {
    (void)state;
    /* defmodule M do def f(x), do: g(x); def g(y), do: y + 1 end */
    T *defs[] = {def1("f", var("x"), call1("g", var("x"))),
                 def1("g", var("y"), t3(at("+"), meta(3), l2(var("y"), in(1))))};
    T *res = run(module(block(defs, 2)), plan_with(4, nil()));
    assert_true(es_etf_is_atom(res->u.items[0], "ok"));
    T *ast = res->u.items[1];
    assert_int_equal(count_atom(ast, "rt_entry"), 2);
    assert_int_equal(count_atom(ast, "rt_error"), 2);
    assert_int_equal(count_atom(ast, "rt_exit"), 2);
    /* f ends with a local tail call: a marker and a tail report, and f is called after the try */
    assert_int_equal(count_atom(ast, "$es_tail"), 2); /* the marker and its pattern */
    assert_int_equal(count_atom(ast, "rt_tail"), 1);
    assert_int_equal(count_atom(ast, "try"), 2);
    /* g traces its expression (level :full): y + 1 rendered as source */
    assert_int_equal(count_atom(ast, "rt_expr"), 1);
    assert_int_equal(count_atom(ast, "es_call") > 0, 1);
}

static void test_level_none_is_identity(void **state) {
    (void)state;
    T *defs[] = {def1("f", var("x"), call1("g", var("x"))), def1("g", var("y"), var("y"))};
    T *ast = module(block(defs, 2));
    T *res = run(ast, plan_with(0, nil()));
    assert_true(es_etf_is_atom(res->u.items[0], "ok"));
    size_t l1n, l2n;
    uint8_t *a = enc(ast, &l1n), *b = enc(res->u.items[1], &l2n);
    assert_int_equal(l1n, l2n);
    assert_memory_equal(a, b, l1n);
    free(a);
    free(b);
}

static void test_invalid_ast_path(void **state) {
    (void)state;
    /* the body {:foo, :bad_meta, []} sits at [2, 1, 0, 1] of the defmodule; its meta at index 1 */
    T *res = run(module(t3(at("foo"), at("bad_meta"), nil())), plan_with(4, nil()));
    assert_error(res, "invalid_ast");
    T *path = res->u.items[1]->u.items[1];
    const int64_t want[] = {2, 1, 0, 1, 1};
    assert_int_equal(es_etf_list_len(path), 5);
    for (int i = 0; i < 5; i++) assert_int_equal(es_etf_list_at(path, (uint32_t)i)->u.i, want[i]);

    /* a map is not a quoted form */
    T *m = es_etf_tuple(&A, 0);
    m->kind = ES_ETF_MAP;
    res = run(l2(in(1), m), plan_with(4, nil()));
    assert_error(res, "invalid_ast");
}

static void test_deep_structure_rejected(void **state) {
    (void)state;
    T *x = def1("f", var("x"), var("x"));
    for (int i = 0; i < 100000; i++) {
        T *one[] = {x};
        x = block(one, 1);
    }
    T *res = run(x, plan_with(4, nil()));
    assert_error(res, "too_deep");
}

static void test_deep_expression_transformed(void **state) {
    (void)state;
    T *e = var("x");
    for (int i = 0; i < 200000; i++) e = t3(at("+"), meta(2), l2(e, in(1)));
    T *res = run(module(def1("f", var("x"), e)), plan_with(4, nil()));
    assert_true(es_etf_is_atom(res->u.items[0], "ok"));
    assert_int_equal(count_atom(res->u.items[1], "rt_entry"), 1);
}

static void test_many_clauses(void **state) {
    (void)state;
    uint32_t n = 50000;
    T **defs = malloc(sizeof(T *) * n);
    for (uint32_t i = 0; i < n; i++) defs[i] = def1("f", in(i), t3(at("*"), meta(2), l2(in(i), in(2))));
    T *res = run(module(block(defs, n)), plan_with(1, nil()));
    free(defs);
    assert_true(es_etf_is_atom(res->u.items[0], "ok"));
    assert_int_equal(count_atom(res->u.items[1], "rt_entry"), n);
}

static void test_plan_errors(void **state) {
    (void)state;
    T *ast = module(def1("f", var("x"), var("x")));
    /* a function the module does not define */
    T *fns = l1(es_etf_tuple_of(&A, 3, at("nope"), in(2), fnplan(4)));
    assert_error(run(ast, plan_with(4, fns)), "undefined_functions");
    /* a defined one is fine */
    fns = l1(es_etf_tuple_of(&A, 3, at("f"), in(1), fnplan(0)));
    T *res = run(ast, plan_with(4, fns));
    assert_true(es_etf_is_atom(res->u.items[0], "ok"));
    assert_int_equal(count_atom(res->u.items[1], "rt_entry"), 0);
    /* a malformed plan */
    assert_error(run(ast, at("not_a_plan")), "invalid_plan");
}

static void test_bad_etf(void **state) {
    (void)state;
    size_t pl;
    uint8_t *pb = enc(plan_with(4, nil()), &pl);
    const uint8_t bad[] = {131, 104, 3, 97};
    es_ast_result res;
    assert_int_equal(es_ast_transform(bad, sizeof bad, pb, pl, &res), 0);
    es_arena_init(&R);
    T *out;
    assert_int_equal(es_etf_decode(&R, res.etf, res.etf_len, 10, &out, NULL), ES_ETF_OK);
    assert_error(out, "bad_etf");
    es_ast_result_free(&res);
    free(pb);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_small_transform, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_none_is_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_ast_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deep_structure_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deep_expression_transformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_clauses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plan_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_etf, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
