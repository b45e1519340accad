/* CMocka tests of the forms transformer (c_src/forms_transform.c, forms_tail.c, forms_body.c):
 * abstract forms and plans are built by hand with etf.h's constructors, encoded, transformed by
 * es_forms_transform, and the result decoded and inspected. The templates are small calls
 * rt:Name(Holes...) whose holes are the ones the transformer fills, so each injected report is
 * easy to find and read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "elixir_scope/etf.h"
#include "elixir_scope/forms_transform.h"

typedef es_etf_term T;

/* ---------------- builders of abstract forms ---------------- */

static T *at(es_arena *a, const char *s) { return es_etf_atom(a, s); }
static T *ln(es_arena *a, int64_t line) { return es_etf_int(a, line); }
static T *var(es_arena *a, int64_t line, const char *name) { return es_etf_tuple_of(a, 3, at(a, "var"), ln(a, line), at(a, name)); }
static T *aint(es_arena *a, int64_t line, int64_t v) { return es_etf_tuple_of(a, 3, at(a, "integer"), ln(a, line), es_etf_int(a, v)); }
static T *aatom(es_arena *a, int64_t line, const char *v) { return es_etf_tuple_of(a, 3, at(a, "atom"), ln(a, line), at(a, v)); }
static T *op(es_arena *a, int64_t line, const char *o, T *l, T *r) { return es_etf_tuple_of(a, 5, at(a, "op"), ln(a, line), at(a, o), l, r); }
static T *match(es_arena *a, int64_t line, T *p, T *e) { return es_etf_tuple_of(a, 4, at(a, "match"), ln(a, line), p, e); }
static T *tuple_expr(es_arena *a, int64_t line, T *elems) { return es_etf_tuple_of(a, 3, at(a, "tuple"), ln(a, line), elems); }

static T *lcall(es_arena *a, int64_t line, const char *f, T *args) {
    return es_etf_tuple_of(a, 4, at(a, "call"), ln(a, line), aatom(a, line, f), args);
}

static T *rcall(es_arena *a, int64_t line, const char *m, const char *f, T *args) {
    T *remote = es_etf_tuple_of(a, 4, at(a, "remote"), ln(a, line), aatom(a, line, m), aatom(a, line, f));
    return es_etf_tuple_of(a, 4, at(a, "call"), ln(a, line), remote, args);
}

static T *clause(es_arena *a, int64_t line, T *pats, T *body) {
    return es_etf_tuple_of(a, 5, at(a, "clause"), ln(a, line), pats, es_etf_nil(a), body);
}

static T *case_expr(es_arena *a, int64_t line, T *e, T *clauses) {
    return es_etf_tuple_of(a, 4, at(a, "case"), ln(a, line), e, clauses);
}

static T *function(es_arena *a, int64_t line, const char *name, int64_t arity, T *clauses) {
    return es_etf_tuple_of(a, 5, at(a, "function"), ln(a, line), at(a, name), es_etf_int(a, arity), clauses);
}

/* [{attribute, 1, module, m}, Fun...] */
static T *module(es_arena *a, uint32_t n, ...) {
    T *l = es_etf_list(a, n + 1);
    l->u.items[0] = es_etf_tuple_of(a, 4, at(a, "attribute"), ln(a, 1), at(a, "module"), at(a, "m"));
    va_list ap;
    va_start(ap, n);
    for (uint32_t i = 0; i < n; i++) l->u.items[i + 1] = va_arg(ap, T *);
    va_end(ap);
    return l;
}

/* a map of n atom keys and values: key1, value1, ... */
static T *map_of(es_arena *a, uint32_t n, ...) {
    T *m = es_arena_alloc(a, sizeof(T));
    m->kind = ES_ETF_MAP;
    m->n = n;
    m->u.items = es_arena_alloc(a, sizeof(T *) * 2 * (n ? n : 1));
    va_list ap;
    va_start(ap, n);
    for (uint32_t i = 0; i < n; i++) {
        m->u.items[2 * i] = at(a, va_arg(ap, const char *));
        m->u.items[2 * i + 1] = va_arg(ap, T *);
    }
    va_end(ap);
    return m;
}

/* ---------------- templates and plans ---------------- */

/* rt:Name(ES@HOLE_h1, ...), every annotation '$es_anno' */
static T *tpl(es_arena *a, const char *name, uint32_t n, ...) {
    T *an = at(a, "$es_anno");
    T *args = es_etf_list(a, n);
    va_list ap;
    va_start(ap, n);
    for (uint32_t i = 0; i < n; i++) {
        const char *hole = va_arg(ap, const char *);
        char *full = es_arena_alloc(a, strlen(hole) + 9);
        memcpy(full, "ES@HOLE_", 8);
        memcpy(full + 8, hole, strlen(hole) + 1);
        args->u.items[i] = es_etf_tuple_of(a, 3, at(a, "var"), an, at(a, full));
    }
    va_end(ap);
    T *remote = es_etf_tuple_of(a, 4, at(a, "remote"), an, es_etf_tuple_of(a, 3, at(a, "atom"), an, at(a, "rt")),
                                es_etf_tuple_of(a, 3, at(a, "atom"), an, at(a, name)));
    return es_etf_tuple_of(a, 4, at(a, "call"), an, remote, args);
}

static T *templates(es_arena *a) {
    return map_of(a, 19, "switch", tpl(a, "switch", 3, "mod", "off", "on"), "rpc", tpl(a, "rpc", 4, "call", "api", "args", "line"), "rpc_call",
                  tpl(a, "rpc_call", 8, "rpc", "value", "call", "request", "line", "class", "reason", "stack"), "spawn",
                  tpl(a, "spawn", 5, "call", "via", "args", "result", "line"), "send",
                  tpl(a, "send", 5, "call", "kind", "dest", "msg", "line"), "receive",
                  tpl(a, "receive", 5, "call", "msg", "clause", "since", "line"), "receive_start",
                  tpl(a, "receive_start", 1, "call"), "no_clause", tpl(a, "no_clause", 4, "mod", "fun", "args", "location"),
                  "entry", tpl(a, "entry", 4, "mod", "fun", "args", "line"), "exit",
                  tpl(a, "exit", 2, "call", "value"), "tail", tpl(a, "tail", 5, "call", "mod", "fun", "args", "line"),
                  "error", tpl(a, "error", 4, "call", "kind", "reason", "stack"), "locals",
                  tpl(a, "locals", 3, "call", "vars", "line"), "expr", tpl(a, "expr", 4, "call", "source", "value", "line"),
                  "state_before", tpl(a, "state_before", 1, "state"), "callback_message",
                  tpl(a, "callback_message", 2, "msg", "clause"), "callback_pre",
                  tpl(a, "callback_pre", 4, "call", "line", "state", "msg"), "callback_exit",
                  tpl(a, "callback_exit", 5, "call", "kind", "result", "before", "line"), "inject",
                  tpl(a, "inject", 4, "call", "code", "vars", "line"));
}

/* {Name, Arity, #{level, locals, exprs, tail, state, inject}} */
static T *fun_spec(es_arena *a, const char *name, int64_t arity, int64_t level, const char *locals, const char *exprs) {
    return es_etf_tuple_of(a, 3, at(a, name), es_etf_int(a, arity),
                           map_of(a, 6, "level", es_etf_int(a, level), "locals", at(a, locals), "exprs", at(a, exprs),
                                  "tail", at(a, "true"), "state", at(a, "none"), "inject", es_etf_nil(a)));
}

/* bodies of up to 200 nodes copied for capture off (the option a project sets: ast: [off_copy: 200]) */
static T *plan_with(es_arena *a, T *functions, T *secrets, T *tpls) {
    return map_of(a, 8, "module", at(a, "m"), "templates", tpls, "source", at(a, "nil"), "source_max",
                  es_etf_int(a, 120), "secrets", secrets, "secret_lines", es_etf_nil(a), "functions", functions,
                  "off_copy", es_etf_int(a, 200));
}

static T *plan(es_arena *a, T *functions) { return plan_with(a, functions, es_etf_nil(a), templates(a)); }

/* ---------------- running the transformer ---------------- */

static es_arena *report_arena; /* where helper calls are re-shaped as template calls (the last run's arena) */

typedef struct run {
    es_arena a;   /* owns the decoded result */
    uint8_t *out; /* the encoded result */
    size_t out_len;
    T *result;    /* {ok, Forms} | {error, Reason} */
} run;

static void transform(run *r, const T *forms, const T *p) {
    uint8_t *fb, *pb;
    size_t fl, pl;
    assert_int_equal(es_etf_encode(forms, &fb, &fl), ES_ETF_OK);
    assert_int_equal(es_etf_encode(p, &pb, &pl), ES_ETF_OK);
    es_arena_init(&r->a);
    assert_int_equal(es_forms_transform(fb, fl, pb, pl, &r->out, &r->out_len), 0);
    free(fb);
    free(pb);
    r->result = NULL;
    assert_int_equal(es_etf_decode(&r->a, r->out, r->out_len, 10000, &r->result, NULL), ES_ETF_OK);
    report_arena = &r->a;
}

static void run_free(run *r) {
    free(r->out);
    es_arena_free(&r->a);
}

/* the forms of an {ok, Forms} result */
static T *ok_forms(const run *r) {
    assert_int_equal(r->result->kind, ES_ETF_TUPLE);
    assert_true(es_etf_is_atom(r->result->u.items[0], "ok"));
    return r->result->u.items[1];
}

static T *find_function(T *forms, const char *name, int64_t arity) {
    for (uint32_t i = 0; i < es_etf_list_len(forms); i++) {
        T *f = es_etf_list_at(forms, i);
        if (f->kind == ES_ETF_TUPLE && f->n == 5 && es_etf_is_atom(f->u.items[0], "function") &&
            es_etf_is_atom(f->u.items[2], name) && f->u.items[3]->u.i == arity)
            return f;
    }
    fail_msg("no function %s/%d", name, (int)arity);
    return NULL;
}

/* the forms but the local report helpers the transformer adds ('-es-entry-' …) */
static uint32_t user_forms(T *forms) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < es_etf_list_len(forms); i++) {
        T *f = es_etf_list_at(forms, i);
        int helper = f->kind == ES_ETF_TUPLE && f->n == 5 && es_etf_is_atom(f->u.items[0], "function") &&
                     f->u.items[2]->kind == ES_ETF_ATOM && f->u.items[2]->n > 4 &&
                     memcmp(f->u.items[2]->u.bytes, "-es-", 4) == 0;
        if (!helper) n++;
    }
    return n;
}

static T *first_clause(T *forms, const char *name, int64_t arity) {
    return es_etf_list_at(find_function(forms, name, arity)->u.items[4], 0);
}

static int is_tag(const T *t, const char *tag) {
    return t && t->kind == ES_ETF_TUPLE && t->n >= 2 && es_etf_is_atom(t->u.items[0], tag);
}

static int is_var(const T *t, const char *name) { return is_tag(t, "var") && es_etf_is_atom(t->u.items[2], name); }
static int is_atom_node(const T *t, const char *v) { return is_tag(t, "atom") && es_etf_is_atom(t->u.items[2], v); }

static T *last(T *list) { return es_etf_list_at(list, es_etf_list_len(list) - 1); }

/* structural equality (small trees only) */
static int term_eq(const T *x, const T *y) {
    if (x->kind != y->kind || x->n != y->n) return 0;
    switch (x->kind) {
    case ES_ETF_INT:
        return x->u.i == y->u.i;
    case ES_ETF_ATOM:
    case ES_ETF_BINARY:
    case ES_ETF_RAW:
        return memcmp(x->u.bytes, y->u.bytes, x->n) == 0;
    case ES_ETF_NIL:
        return 1;
    case ES_ETF_LIST:
    case ES_ETF_TUPLE:
    case ES_ETF_MAP: {
        uint32_t c = x->kind == ES_ETF_LIST ? x->n + 1 : x->kind == ES_ETF_MAP ? 2 * x->n : x->n;
        for (uint32_t i = 0; i < c; i++)
            if (!term_eq(x->u.items[i], y->u.items[i])) return 0;
        return 1;
    }
    default:
        return 0;
    }
}

/* the n-th (from 0) call rt:Name(...) in t, depth first; NULL when none */

/* A call to a local report helper ('-es-entry-'(Fun, Line, Args...), '-es-exit-'(Call, Value),
 * '-es-tail-'(Call, Mod, Fun, Line, Args...)) re-shaped as the template call it stands for
 * (rt:entry(Mod, Fun, [Args], Line), rt:exit(Call, Value), rt:tail(Call, Mod, Fun, [Args], Line)). */
static T *helper_as_template(T *t) {
    if (!is_tag(t, "call") || t->n != 4 || !is_tag(t->u.items[2], "atom")) return NULL;
    T *fn = t->u.items[2]->u.items[2], *args = t->u.items[3];
    es_arena *a = report_arena;
    T *an = t->u.items[1];
    uint32_t n = es_etf_list_len(args);
    const char *name;
    T *targs;
    T *list = es_etf_tuple_of(a, 2, at(a, "nil"), an);
    if (es_etf_is_atom(fn, "-es-entry-")) {
        for (uint32_t i = n; i-- > 2;) list = es_etf_tuple_of(a, 4, at(a, "cons"), an, args->u.items[i], list);
        name = "entry";
        targs = es_etf_list_of(a, 4, es_etf_tuple_of(a, 3, at(a, "atom"), an, at(a, "m")), args->u.items[0], list,
                               args->u.items[1]);
    } else if (es_etf_is_atom(fn, "-es-tail-")) {
        for (uint32_t i = n; i-- > 4;) list = es_etf_tuple_of(a, 4, at(a, "cons"), an, args->u.items[i], list);
        name = "tail";
        targs = es_etf_list_of(a, 5, args->u.items[0], args->u.items[1], args->u.items[2], list, args->u.items[3]);
    } else if (es_etf_is_atom(fn, "-es-exit-")) {
        name = "exit";
        targs = args;
    } else {
        return NULL;
    }
    T *remote = es_etf_tuple_of(a, 4, at(a, "remote"), an, es_etf_tuple_of(a, 3, at(a, "atom"), an, at(a, "rt")),
                                es_etf_tuple_of(a, 3, at(a, "atom"), an, at(a, name)));
    return es_etf_tuple_of(a, 4, at(a, "call"), an, remote, targs);
}

static T *find_report_n(T *t, const char *name, int *n) {
    if (!t) return NULL;
    T *h = report_arena ? helper_as_template(t) : NULL;
    if (h) t = h;
    if (is_tag(t, "call") && t->n == 4 && is_tag(t->u.items[2], "remote") && is_atom_node(t->u.items[2]->u.items[2], "rt") &&
        is_atom_node(t->u.items[2]->u.items[3], name) && (*n)-- == 0)
        return t;
    if (t->kind != ES_ETF_TUPLE && t->kind != ES_ETF_LIST) return NULL;
    uint32_t c = t->kind == ES_ETF_LIST ? t->n + 1 : t->n;
    for (uint32_t i = 0; i < c; i++) {
        T *r = find_report_n(t->u.items[i], name, n);
        if (r) return r;
    }
    return NULL;
}

static T *find_report(T *t, const char *name) {
    int n = 0;
    return find_report_n(t, name, &n);
}

static int count_reports(T *t, const char *name) {
    int k = 0;
    for (;;) {
        int n = k;
        if (!find_report_n(t, name, &n)) return k;
        k++;
    }
}

/* the argument list of a report, as an array */
static T *report_arg(T *report, uint32_t i) { return es_etf_list_at(report->u.items[3], i); }

/* the elements of a list expression {cons, A, H, T} ... {nil, A} */
static uint32_t cons_items(T *e, T **out, uint32_t max) {
    uint32_t n = 0;
    while (is_tag(e, "cons") && n < max) {
        out[n++] = e->u.items[2];
        e = e->u.items[3];
    }
    assert_true(is_tag(e, "nil"));
    return n;
}

/* The switch a clause's body is, rt:switch(Mod, Off, On) with these templates; NULL when none. */
static T *clause_switch(T *cl) {
    T *body = cl->u.items[4];
    if (es_etf_list_len(body) != 1) return NULL;
    T *sw = es_etf_list_at(body, 0);
    int is_switch = is_tag(sw, "call") && sw->n == 4 && is_tag(sw->u.items[2], "remote") &&
                    is_atom_node(sw->u.items[2]->u.items[3], "switch");
    return is_switch ? sw : NULL;
}

/* a branch of the switch as a body: a block's expressions, or the one expression */
static T *branch_body(T *e) { return is_tag(e, "block") ? e->u.items[2] : es_etf_list_of(report_arena, 1, e); }

/* The statements a clause runs with capture on: the switch's On branch, or the body itself
 * when it has no plain copy. */
static T *recorded(T *cl) {
    T *sw = clause_switch(cl);
    return sw ? branch_body(report_arg(sw, 2)) : cl->u.items[4];
}

/* The body of an instrumented clause: n statements, the first ES@call = Entry. */
static T *instrumented_body(T *cl, uint32_t n) {
    T *body = recorded(cl);
    assert_int_equal(es_etf_list_len(body), n);
    T *m = es_etf_list_at(body, 0);
    assert_true(is_tag(m, "match") && is_var(m->u.items[2], "ES@call"));
    return body;
}

/* With tail calls: [ES@call = Entry, case try ... end of ...]; returns the dispatch case. */
static T *dispatch_case(T *cl) {
    T *c = es_etf_list_at(instrumented_body(cl, 2), 1);
    /* a body that cannot raise is a block, not a try */
    assert_true(is_tag(c, "case") && (is_tag(c->u.items[2], "try") || is_tag(c->u.items[2], "block")));
    return c;
}

/* Without: [ES@call = Entry, ES@result = try ... end, Exit, ES@result]; returns the try. */
static T *plain_try(T *cl) {
    T *body = instrumented_body(cl, 4);
    T *m = es_etf_list_at(body, 1);
    assert_true(is_tag(m, "match") && is_var(m->u.items[2], "ES@result") &&
                (is_tag(m->u.items[3], "try") || is_tag(m->u.items[3], "block")));
    assert_non_null(find_report(es_etf_list_at(body, 2), "exit"));
    assert_true(is_var(es_etf_list_at(body, 3), "ES@result"));
    return m->u.items[3];
}

static T *try_body(T *tr) { return tr->u.items[2]; }

/* {tuple, _, ['$es_tail', I, Args...]} with I == idx */
static int is_tail_marker(const T *e, int64_t idx, uint32_t width) {
    if (!is_tag(e, "tuple")) return 0;
    T *el = e->u.items[2];
    return es_etf_list_len(el) == width && is_atom_node(es_etf_list_at(el, 0), "$es_tail") &&
           is_tag(es_etf_list_at(el, 1), "integer") && es_etf_list_at(el, 1)->u.items[2]->u.i == idx;
}

static int is_value_marker(const T *e) {
    return is_tag(e, "tuple") && es_etf_list_len(e->u.items[2]) == 2 &&
           is_atom_node(es_etf_list_at(e->u.items[2], 0), "$es_v");
}

static const T *tree_forms(es_forms_tree *t) {
    assert_int_equal(t->result->kind, ES_ETF_TUPLE);
    assert_true(es_etf_is_atom(t->result->u.items[0], "ok"));
    return t->result->u.items[1];
}

/* For big or deep trees: the result tree, not re-decoded; *fb and *pb must outlive it. */
static void transform_tree(const T *forms, const T *p, es_forms_tree *t, uint8_t **fb, uint8_t **pb) {
    size_t fl, pl;
    assert_int_equal(es_etf_encode(forms, fb, &fl), ES_ETF_OK);
    assert_int_equal(es_etf_encode(p, pb, &pl), ES_ETF_OK);
    assert_int_equal(es_forms_transform_tree(*fb, fl, *pb, pl, NULL, NULL, t), 0);
    report_arena = t->arena;
}

/* ---------------- tail calls ---------------- */

static void test_local_tail_call_becomes_marker_and_dispatch_clause(void **state) {
    (void)state;
    es_arena a;
    es_arena_init(&a);
    /* f(N) -> g(N).   g(X) -> X. */
    T *f = function(&a, 2, "f", 1,
                    es_etf_list_of(&a, 1, clause(&a, 2, es_etf_list_of(&a, 1, var(&a, 2, "_n@1")),
                                                 es_etf_list_of(&a, 1, lcall(&a, 3, "g", es_etf_list_of(&a, 1, var(&a, 3, "_n@1")))))));
    T *g = function(&a, 5, "g", 1,
                    es_etf_list_of(&a, 1, clause(&a, 5, es_etf_list_of(&a, 1, var(&a, 5, "_x@1")),
                                                 es_etf_list_of(&a, 1, var(&a, 5, "_x@1")))));
    T *forms = module(&a, 2, f, g);
    run r;
    /* g is not in the plan: left alone */
    transform(&r, forms, plan(&a, es_etf_list_of(&a, 1, fun_spec(&a, "f", 1, 1, "none", "none"))));
    T *out = ok_forms(&r);
    assert_int_equal(user_forms(out), 3);
    assert_true(term_eq(find_function(out, "g", 1), g));

    T *cl = first_clause(out, "f", 1);
    /* the switch first: off, the body as it was written */
    T *sw = clause_switch(cl);
    assert_non_null(sw);
    assert_true(is_atom_node(report_arg(sw, 0), "m"));
    assert_true(term_eq(branch_body(report_arg(sw, 1)), first_clause(forms, "f", 1)->u.items[4]));
    T *entry = find_report(es_etf_list_at(recorded(cl), 0), "entry");
    assert_non_null(entry);
    assert_true(is_atom_node(report_arg(entry, 0), "m"));
    assert_true(is_atom_node(report_arg(entry, 1), "f"));
    T *args[4];
    assert_int_equal(cons_items(report_arg(entry, 2), args, 4), 1);
    assert_true(is_var(args[0], "_n@1"));
    assert_int_equal(report_arg(entry, 3)->u.items[2]->u.i, 2);
    /* injected nodes are generated, at the user's line */
    T *anno = entry->u.items[1];
    assert_int_equal(anno->kind, ES_ETF_LIST);
    assert_true(es_etf_is_atom(es_etf_get(anno, "generated"), "true"));
    assert_int_equal(es_etf_get(anno, "location")->u.i, 2);

    T *c = dispatch_case(cl);
    /* inside the try the call is a marker with its evaluated argument */
    T *tb = try_body(c->u.items[2]);
    assert_int_equal(es_etf_list_len(tb), 1);
    assert_true(is_tail_marker(last(tb), 0, 3));
    assert_true(is_var(es_etf_list_at(last(tb)->u.items[2], 2), "_n@1"));
    /* building the marker cannot raise: a block, no try (no exception to record) */
    assert_true(is_tag(c->u.items[2], "block"));

    /* the case: {'$es_tail', 0, ES@tail1} -> tail report, g(ES@tail1); no value can come, so no
     * {'$es_v', ES@result} clause */
    T *clauses = c->u.items[3];
    assert_int_equal(es_etf_list_len(clauses), 1);
    T *tcl = es_etf_list_at(clauses, 0);
    T *pat = es_etf_list_at(tcl->u.items[2], 0);
    assert_true(is_tail_marker(pat, 0, 3));
    assert_true(is_var(es_etf_list_at(pat->u.items[2], 2), "ES@tail1"));
    T *tail = find_report(tcl, "tail");
    assert_non_null(tail);
    assert_true(is_atom_node(report_arg(tail, 1), "m"));
    assert_true(is_atom_node(report_arg(tail, 2), "g"));
    assert_int_equal(report_arg(tail, 4)->u.items[2]->u.i, 3);
    T *real = last(tcl->u.items[4]);
    assert_true(is_tag(real, "call") && is_atom_node(real->u.items[2], "g"));
    assert_true(is_var(es_etf_list_at(real->u.items[3], 0), "ES@tail1"));
    assert_int_equal(real->u.items[1]->u.i, 3); /* the user's call keeps its annotation */
    assert_int_equal(count_reports(out, "exit"), 0);
    run_free(&r);
    es_arena_free(&a);
}

/* A body from which the Erlang compiler makes local functions (funs, comprehensions) is not
 * copied: a copy would renumber them; nor is a large one. There the entry helper asks the switch
 * (nil when off). A remote fun reference makes none: such a body is copied. */
static void test_bodies_with_local_functions_or_large_are_not_copied(void **state) {
    (void)state;
    es_arena a;
    es_arena_init(&a);
    T *x = var(&a, 3, "_x@1");
    T *fun_clause = clause(&a, 3, es_etf_nil(&a), es_etf_list_of(&a, 1, x));
    T *large = x;
    for (int i = 0; i < 300; i++) large = op(&a, 3, "+", large, aint(&a, 3, i));
    T *made[5] = {
        es_etf_tuple_of(&a, 3, at(&a, "fun"), ln(&a, 3), es_etf_tuple_of(&a, 2, at(&a, "clauses"), es_etf_list_of(&a, 1, fun_clause))),
        es_etf_tuple_of(&a, 3, at(&a, "fun"), ln(&a, 3), es_etf_tuple_of(&a, 3, at(&a, "function"), at(&a, "f"), es_etf_int(&a, 1))),
        es_etf_tuple_of(&a, 4, at(&a, "lc"), ln(&a, 3), x,
                        es_etf_list_of(&a, 1, es_etf_tuple_of(&a, 4, at(&a, "generate"), ln(&a, 3), var(&a, 3, "_y@1"), x))),
        large,
        es_etf_tuple_of(&a, 3, at(&a, "fun"), ln(&a, 3),
                        es_etf_tuple_of(&a, 4, at(&a, "function"), aatom(&a, 3, "lists"), aatom(&a, 3, "reverse"), aint(&a, 3, 1))),
    };
    for (int i = 0; i < 5; i++) {
        /* f(X) -> {ok, Made}. */
        T *body = es_etf_list_of(&a, 1, tuple_expr(&a, 3, es_etf_list_of(&a, 2, aatom(&a, 3, "ok"), made[i])));
        T *f = function(&a, 2, "f", 1, es_etf_list_of(&a, 1, clause(&a, 2, es_etf_list_of(&a, 1, var(&a, 2, "_x@1")), body)));
        run r;
        transform(&r, module(&a, 1, f), plan(&a, es_etf_list_of(&a, 1, fun_spec(&a, "f", 1, 1, "none", "none"))));
        T *out = ok_forms(&r);
        T *cl = first_clause(out, "f", 1);
        if (i == 4) {
            assert_non_null(clause_switch(cl));
        } else {
            assert_null(clause_switch(cl));
            /* ES@call = case '-es-switch-entry-'(f, 2, X) of ..., whose body is rt:switch(m, nil, Entry) */
            T *m = es_etf_list_at(instrumented_body(cl, 4), 0);
            T *call = m->u.items[3]->u.items[2];
            assert_true(is_tag(call, "call") && is_atom_node(call->u.items[2], "-es-switch-entry-"));
            T *helper = es_etf_list_at(find_function(out, "-es-switch-entry-", 3)->u.items[4], 0);
            T *sw = last(helper->u.items[4]);
            assert_true(is_atom_node(report_arg(sw, 0), "m") && is_atom_node(report_arg(sw, 1), "nil"));
            assert_non_null(find_report(report_arg(sw, 2), "entry"));
            /* the body once, in the try */
            assert_true(term_eq(last(try_body(plain_try(cl))), es_etf_list_at(body, 0)));
        }
        run_free(&r);
    }
    /* without off_copy in the plan (the default, 0), no body is copied */
    T *small = es_etf_list_of(&a, 1, x);
    T *g = function(&a, 2, "g", 1, es_etf_list_of(&a, 1, clause(&a, 2, es_etf_list_of(&a, 1, var(&a, 2, "_x@1")), small)));
    run r;
    transform(&r, module(&a, 1, g),
              map_of(&a, 7, "module", at(&a, "m"), "templates", templates(&a), "source", at(&a, "nil"), "source_max",
                     es_etf_int(&a, 120), "secrets", es_etf_nil(&a), "secret_lines", es_etf_nil(&a), "functions",
                     es_etf_list_of(&a, 1, fun_spec(&a, "g", 1, 1, "none", "none"))));
    assert_null(clause_switch(first_clause(ok_forms(&r), "g", 1)));
    run_free(&r);
    es_arena_free(&a);
}

static void test_values_in_tail_position_are_wrapped(void **state) {
    (void)state;
    es_arena a;
    es_arena_init(&a);
    /* f(N) -> case N of 0 -> done; _ -> g(N) end. */
    T *body = case_expr(&a, 3, var(&a, 3, "_n@1"),
                        es_etf_list_of(&a, 2, clause(&a, 4, es_etf_list_of(&a, 1, aint(&a, 4, 0)), es_etf_list_of(&a, 1, aatom(&a, 4, "done"))),
                                       clause(&a, 5, es_etf_list_of(&a, 1, var(&a, 5, "_")),
                                              es_etf_list_of(&a, 1, lcall(&a, 5, "g", es_etf_list_of(&a, 1, var(&a, 5, "_n@1")))))));
    T *f = function(&a, 2, "f", 1, es_etf_list_of(&a, 1, clause(&a, 2, es_etf_list_of(&a, 1, var(&a, 2, "_n@1")), es_etf_list_of(&a, 1, body))));
    /* h(N) -> N + 1.  (no tail call: the simple shape, nothing wrapped) */
    T *h = function(&a, 7, "h", 1,
                    es_etf_list_of(&a, 1, clause(&a, 7, es_etf_list_of(&a, 1, var(&a, 7, "_n@1")),
                                                 es_etf_list_of(&a, 1, op(&a, 7, "+", var(&a, 7, "_n@1"), aint(&a, 7, 1))))));
    run r;
    transform(&r, module(&a, 2, f, h),
              plan(&a, es_etf_list_of(&a, 2, fun_spec(&a, "f", 1, 1, "none", "none"), fun_spec(&a, "h", 1, 1, "none", "none"))));
    T *out = ok_forms(&r);
    T *c = dispatch_case(first_clause(out, "f", 1));
    T *inner = last(try_body(c->u.items[2]));
    assert_true(is_tag(inner, "case"));
    T *v = last(es_etf_list_at(inner->u.items[3], 0)->u.items[4]);
    assert_true(is_value_marker(v));
    assert_true(is_atom_node(es_etf_list_at(v->u.items[2], 1), "done"));
    assert_true(is_tail_marker(last(es_etf_list_at(inner->u.items[3], 1)->u.items[4]), 0, 3));

    T *tr = plain_try(first_clause(out, "h", 1));
    assert_true(is_tag(last(try_body(tr)), "op"));
    run_free(&r);
    es_arena_free(&a);
}

/* f(L) -> Call.  with Call built by make(a, line, L) */
static T *one_call_fun(es_arena *a, T *call) {
    return function(a, 2, "f", 1,
                    es_etf_list_of(a, 1, clause(a, 2, es_etf_list_of(a, 1, var(a, 2, "_l@1")), es_etf_list_of(a, 1, call))));
}

static int same_var(const T *v, const T *w) {
    return is_tag(v, "var") && is_tag(w, "var") && v->u.items[2]->n == w->u.items[2]->n &&
           memcmp(v->u.items[2]->u.bytes, w->u.items[2]->u.bytes, v->u.items[2]->n) == 0;
}

/* f(L) -> 'Elixir.Task':async(L).  The spawn's result is bound, reported and returned: a value, not
 * a tail call; Task.async_stream is not a spawn at its call (its workers start later). */
static void test_spawn_is_reported_after_it_returns(void **state) {
    (void)state;
    es_arena a;
    es_arena_init(&a);
    T *p = plan(&a, es_etf_list_of(&a, 1, fun_spec(&a, "f", 1, 1, "none", "none")));
    run r;
    transform(&r, module(&a, 1, one_call_fun(&a, rcall(&a, 3, "Elixir.Task", "async", es_etf_list_of(&a, 1, var(&a, 3, "_l@1"))))), p);
    T *blk = last(try_body(plain_try(first_clause(ok_forms(&r), "f", 1))));
    assert_true(is_tag(blk, "block"));
    T *stmts = blk->u.items[2];
    assert_int_equal(es_etf_list_len(stmts), 4);
    T *arg = es_etf_list_at(stmts, 0), *spawned = es_etf_list_at(stmts, 1), *report = es_etf_list_at(stmts, 2);
    assert_true(is_tag(arg, "match") && is_var(arg->u.items[3], "_l@1"));
    assert_true(is_tag(spawned, "match") && is_tag(spawned->u.items[3], "call"));
    T *call = spawned->u.items[3];
    assert_true(is_atom_node(call->u.items[2]->u.items[3], "async"));
    assert_true(same_var(es_etf_list_at(call->u.items[3], 0), arg->u.items[2]));
    /* rt:spawn(Call, task, [ES@sent], ES@spawned, 3), then ES@spawned */
    assert_true(is_tag(report, "call") && is_atom_node(report->u.items[2]->u.items[3], "spawn"));
    T *rargs = report->u.items[3];
    assert_true(is_atom_node(es_etf_list_at(rargs, 1), "task"));
    assert_true(is_tag(es_etf_list_at(rargs, 2), "cons"));
    assert_true(same_var(es_etf_list_at(rargs, 3), spawned->u.items[2]));
    assert_true(same_var(es_etf_list_at(rargs, 3), last(stmts)));
    assert_int_equal(es_etf_list_at(rargs, 4)->u.items[2]->u.i, 3);
    run_free(&r);

    /* erlang:spawn(m, g, L) in a non-tail position: wrapped too, its value kept for the next statement */
    T *body = es_etf_list_of(&a, 2, rcall(&a, 3, "erlang", "spawn", es_etf_list_of(&a, 3, aatom(&a, 3, "m"), aatom(&a, 3, "g"), var(&a, 3, "_l@1"))),
                             aatom(&a, 4, "ok"));
    transform(&r, module(&a, 1, function(&a, 2, "f", 1, es_etf_list_of(&a, 1, clause(&a, 2, es_etf_list_of(&a, 1, var(&a, 2, "_l@1")), body)))), p);
    T *tb = try_body(plain_try(first_clause(ok_forms(&r), "f", 1)));
    assert_true(is_tag(es_etf_list_at(tb, es_etf_list_len(tb) - 2), "block"));
    run_free(&r);

    /* 'Elixir.Task':async_stream(L, F): a plain remote tail call */
    transform(&r, module(&a, 1, one_call_fun(&a, rcall(&a, 3, "Elixir.Task", "async_stream",
                                                        es_etf_list_of(&a, 2, var(&a, 3, "_l@1"), var(&a, 3, "_l@1"))))), p);
    T *c = dispatch_case(first_clause(ok_forms(&r), "f", 1));
    assert_true(is_tail_marker(last(try_body(c->u.items[2])), 0, 4));
    run_free(&r);
    es_arena_free(&a);
}

/* f(L) -> erpc:call(n, m, g, L).  The request is reported (its id bound) before the call, and the
 * call is the 'rpc' hole of the rpc_call template (the try that reports its outcome); a cast is
 * made after its request, as the block's last statement: in tail position it stays a tail call. */
static void test_rpc_calls_report_request_and_outcome(void **state) {
    (void)state;
    es_arena a;
    es_arena_init(&a);
    T *p = plan(&a, es_etf_list_of(&a, 1, fun_spec(&a, "f", 1, 1, "none", "none")));
    run r;
    T *args = es_etf_list_of(&a, 4, aatom(&a, 3, "n"), aatom(&a, 3, "m"), aatom(&a, 3, "g"), var(&a, 3, "_l@1"));
    /* not in tail position: these templates are plain calls, which the tail rewrite would take */
    T *body = es_etf_list_of(&a, 2, rcall(&a, 3, "erpc", "call", args), aatom(&a, 4, "ok"));
    transform(&r, module(&a, 1, function(&a, 2, "f", 1, es_etf_list_of(&a, 1, clause(&a, 2, es_etf_list_of(&a, 1, var(&a, 2, "_l@1")), body)))), p);
    T *tb = try_body(plain_try(first_clause(ok_forms(&r), "f", 1)));
    T *blk = es_etf_list_at(tb, es_etf_list_len(tb) - 2);
    assert_true(is_tag(blk, "block"));
    T *stmts = blk->u.items[2];
    assert_int_equal(es_etf_list_len(stmts), 6);
    T *request = es_etf_list_at(stmts, 4), *outcome = es_etf_list_at(stmts, 5);
    /* ES@rpc = rt:rpc(Call, {erpc, call}, [ES@sent...], 3) */
    assert_true(is_tag(request, "match") && is_tag(request->u.items[3], "call"));
    assert_true(is_atom_node(request->u.items[3]->u.items[2]->u.items[3], "rpc"));
    T *api = es_etf_list_at(request->u.items[3]->u.items[3], 1);
    assert_true(is_tag(api, "tuple") && is_atom_node(es_etf_list_at(api->u.items[2], 0), "erpc"));
    /* rt:rpc_call(erpc:call(ES@sent...), ES@rpcv, Call, ES@rpc, 3, ES@rpcc, ES@rpcr, ES@rpcs) */
    assert_true(is_tag(outcome, "call") && is_atom_node(outcome->u.items[2]->u.items[3], "rpc_call"));
    T *oargs = outcome->u.items[3];
    T *call = es_etf_list_at(oargs, 0);
    assert_true(is_tag(call, "call") && is_atom_node(call->u.items[2]->u.items[3], "call"));
    assert_true(same_var(es_etf_list_at(call->u.items[3], 3), es_etf_list_at(stmts, 3)->u.items[2]));
    assert_true(same_var(es_etf_list_at(oargs, 3), request->u.items[2]));
    run_free(&r);

    /* erpc:cast(n, m, g, L) in tail position: its request, then the cast, still a tail call */
    transform(&r, module(&a, 1, one_call_fun(&a, rcall(&a, 3, "erpc", "cast", args))), p);
    T *c = dispatch_case(first_clause(ok_forms(&r), "f", 1));
    T *cblk = last(try_body(c->u.items[2]));
    assert_true(is_tag(cblk, "block") && is_tail_marker(last(cblk->u.items[2]), 0, 6));
    run_free(&r);
    es_arena_free(&a);
}

static void test_erlang_bifs_are_values_and_apply_is_a_tail_call(void **state) {
    (void)state;
    es_arena a;
    es_arena_init(&a);
    T *p = plan(&a, es_etf_list_of(&a, 1, fun_spec(&a, "f", 1, 1, "none", "none")));
    run r;

    /* erlang:length(L): stays inside the try, so its exception is the frame's */
    transform(&r, module(&a, 1, one_call_fun(&a, rcall(&a, 3, "erlang", "length", es_etf_list_of(&a, 1, var(&a, 3, "_l@1"))))), p);
    T *tr = plain_try(first_clause(ok_forms(&r), "f", 1));
    T *call = last(try_body(tr));
    assert_true(is_tag(call, "call") && is_atom_node(call->u.items[2]->u.items[3], "length"));
    run_free(&r);

    /* erlang:error(x) too */
    transform(&r, module(&a, 1, one_call_fun(&a, rcall(&a, 3, "erlang", "error", es_etf_list_of(&a, 1, aatom(&a, 3, "x"))))), p);
    plain_try(first_clause(ok_forms(&r), "f", 1));
    run_free(&r);

    /* erlang:apply(m, g, L): a call like any other, made after the try */
    transform(&r,
              module(&a, 1, one_call_fun(&a, rcall(&a, 3, "erlang", "apply",
                                                    es_etf_list_of(&a, 3, aatom(&a, 3, "m"), aatom(&a, 3, "g"), var(&a, 3, "_l@1"))))),
              p);
    T *c = dispatch_case(first_clause(ok_forms(&r), "f", 1));
    assert_true(is_tail_marker(last(try_body(c->u.items[2])), 0, 5));
    T *real = last(last(c->u.items[3])->u.items[4]);
    assert_true(is_tag(real, "call") && is_atom_node(real->u.items[2]->u.items[3], "apply"));
    assert_int_equal(es_etf_list_len(real->u.items[3]), 3);
    run_free(&r);

    /* lists:reverse(L): a remote tail call */
    transform(&r, module(&a, 1, one_call_fun(&a, rcall(&a, 3, "lists", "reverse", es_etf_list_of(&a, 1, var(&a, 3, "_l@1"))))), p);
    c = dispatch_case(first_clause(ok_forms(&r), "f", 1));
    T *tail = find_report(last(c->u.items[3]), "tail");
    assert_true(is_atom_node(report_arg(tail, 1), "lists"));
    assert_true(is_atom_node(report_arg(tail, 2), "reverse"));
    run_free(&r);

    /* L(1): a fun call; the fun value travels in the marker */
    T *funcall = es_etf_tuple_of(&a, 4, at(&a, "call"), ln(&a, 3), var(&a, 3, "_l@1"), es_etf_list_of(&a, 1, aint(&a, 3, 1)));
    transform(&r, module(&a, 1, one_call_fun(&a, funcall)), p);
    c = dispatch_case(first_clause(ok_forms(&r), "f", 1));
    T *marker = last(try_body(c->u.items[2]));
    assert_true(is_tail_marker(marker, 0, 4));
    assert_true(is_var(es_etf_list_at(marker->u.items[2], 2), "_l@1"));
    real = last(last(c->u.items[3])->u.items[4]);
    assert_true(is_var(real->u.items[2], "ES@callee0"));
    run_free(&r);
    es_arena_free(&a);
}

static void test_try_with_after_is_a_value_and_catch_bodies_are_tail(void **state) {
    (void)state;
    es_arena a;
    es_arena_init(&a);
    T *p = plan(&a, es_etf_list_of(&a, 1, fun_spec(&a, "f", 1, 1, "none", "none")));
    T *g = lcall(&a, 3, "g", es_etf_list_of(&a, 1, var(&a, 3, "_l@1")));
    /* try g(L) after ok end: the after body runs when g returns, so g is no tail call */
    T *with_after = es_etf_tuple_of(&a, 6, at(&a, "try"), ln(&a, 3), es_etf_list_of(&a, 1, g), es_etf_nil(&a), es_etf_nil(&a),
                                    es_etf_list_of(&a, 1, aatom(&a, 4, "ok")));
    run r;
    transform(&r, module(&a, 1, one_call_fun(&a, with_after)), p);
    T *tr = plain_try(first_clause(ok_forms(&r), "f", 1));
    T *user_try = last(try_body(tr));
    assert_true(is_tag(user_try, "try"));
    assert_true(term_eq(es_etf_list_at(user_try->u.items[2], 0), g));
    run_free(&r);

    /* try h() catch _:_ -> g(L) end: the catch body is in tail position, the try body a value */
    T *catch_cl = es_etf_tuple_of(&a, 5, at(&a, "clause"), ln(&a, 5),
                                  es_etf_list_of(&a, 1, tuple_expr(&a, 5, es_etf_list_of(&a, 3, var(&a, 5, "_"), var(&a, 5, "_"), var(&a, 5, "_")))),
                                  es_etf_nil(&a), es_etf_list_of(&a, 1, g));
    T *with_catch = es_etf_tuple_of(&a, 6, at(&a, "try"), ln(&a, 3), es_etf_list_of(&a, 1, lcall(&a, 4, "h", es_etf_nil(&a))), es_etf_nil(&a),
                                    es_etf_list_of(&a, 1, catch_cl), es_etf_nil(&a));
    transform(&r, module(&a, 1, one_call_fun(&a, with_catch)), p);
    T *c = dispatch_case(first_clause(ok_forms(&r), "f", 1));
    user_try = last(try_body(c->u.items[2]));
    assert_true(is_value_marker(last(user_try->u.items[2])));
    assert_true(is_tail_marker(last(es_etf_list_at(user_try->u.items[4], 0)->u.items[4]), 0, 3));
    run_free(&r);
    es_arena_free(&a);
}

/* ---------------- arguments, locals, secrets ---------------- */

static void test_pattern_arguments_get_aliases(void **state) {
    (void)state;
    es_arena a;
    es_arena_init(&a);
    /* f({A, B}, _, C) -> A. */
    T *pair = tuple_expr(&a, 2, es_etf_list_of(&a, 2, var(&a, 2, "_a@1"), var(&a, 2, "_b@1")));
    T *pats = es_etf_list_of(&a, 3, pair, var(&a, 2, "_"), var(&a, 2, "_c@1"));
    T *f = function(&a, 2, "f", 3, es_etf_list_of(&a, 1, clause(&a, 2, pats, es_etf_list_of(&a, 1, var(&a, 2, "_a@1")))));
    run r;
    transform(&r, module(&a, 1, f), plan(&a, es_etf_list_of(&a, 1, fun_spec(&a, "f", 3, 1, "none", "none"))));
    T *cl = first_clause(ok_forms(&r), "f", 3);
    T *np = cl->u.items[2];
    assert_int_equal(es_etf_list_len(np), 3);
    T *p1 = es_etf_list_at(np, 0), *p2 = es_etf_list_at(np, 1);
    assert_true(is_tag(p1, "match") && term_eq(p1->u.items[2], pair) && is_var(p1->u.items[3], "ES@arg1"));
    assert_true(is_tag(p2, "match") && is_var(p2->u.items[2], "_") && is_var(p2->u.items[3], "ES@arg2"));
    assert_true(is_var(es_etf_list_at(np, 2), "_c@1")); /* a plain variable stays */
    T *args[4];
    assert_int_equal(cons_items(report_arg(find_report(cl, "entry"), 2), args, 4), 3);
    assert_true(is_var(args[0], "ES@arg1"));
    assert_true(is_var(args[1], "ES@arg2"));
    assert_true(is_var(args[2], "_c@1"));
    run_free(&r);
    es_arena_free(&a);
}

static void test_locals_are_reported_after_a_match(void **state) {
    (void)state;
    es_arena a;
    es_arena_init(&a);
    /* f(X) -> Y = X + 1, {Z, _W} = {Y, 2}, Y * Z. */
    T *m1 = match(&a, 3, var(&a, 3, "_y@1"), op(&a, 3, "+", var(&a, 3, "_x@1"), aint(&a, 3, 1)));
    T *m2 = match(&a, 4, tuple_expr(&a, 4, es_etf_list_of(&a, 2, var(&a, 4, "_z@1"), var(&a, 4, "__w@1"))),
                  tuple_expr(&a, 4, es_etf_list_of(&a, 2, var(&a, 4, "_y@1"), aint(&a, 4, 2))));
    T *res = op(&a, 5, "*", var(&a, 5, "_y@1"), var(&a, 5, "_z@1"));
    T *f = function(&a, 2, "f", 1,
                    es_etf_list_of(&a, 1, clause(&a, 2, es_etf_list_of(&a, 1, var(&a, 2, "_x@1")), es_etf_list_of(&a, 3, m1, m2, res))));
    run r;
    transform(&r, module(&a, 1, f), plan(&a, es_etf_list_of(&a, 1, fun_spec(&a, "f", 1, 3, "all", "none"))));
    T *tb = try_body(plain_try(first_clause(ok_forms(&r), "f", 1)));
    /* [Y = X + 1, locals(#{y}), {Z, _W} = ..., locals(#{z}), Y * Z] */
    assert_int_equal(es_etf_list_len(tb), 5);
    assert_true(term_eq(es_etf_list_at(tb, 0), m1));
    T *l1 = find_report(es_etf_list_at(tb, 1), "locals");
    assert_non_null(l1);
    T *vars = report_arg(l1, 1);
    assert_true(is_tag(vars, "map"));
    assert_int_equal(es_etf_list_len(vars->u.items[2]), 1);
    T *field = es_etf_list_at(vars->u.items[2], 0);
    assert_true(is_tag(field, "map_field_assoc") && is_atom_node(field->u.items[2], "y") && is_var(field->u.items[3], "_y@1"));
    assert_int_equal(report_arg(l1, 2)->u.items[2]->u.i, 3);
    /* __w@1 (the user wrote _w) is not meant to be seen */
    T *l2 = find_report(es_etf_list_at(tb, 3), "locals");
    vars = report_arg(l2, 1);
    assert_int_equal(es_etf_list_len(vars->u.items[2]), 1);
    assert_true(is_atom_node(es_etf_list_at(vars->u.items[2], 0)->u.items[2], "z"));
    assert_true(term_eq(es_etf_list_at(tb, 4), res));
    assert_int_equal(count_reports(tb, "expr"), 0);
    run_free(&r);
    es_arena_free(&a);
}

static void test_expressions_in_nested_bodies_and_constants(void **state) {
    (void)state;
    es_arena a;
    es_arena_init(&a);
    /* f(X) -> Y = g(X), case Y of 1 -> h(Y), {ok, 1}; _ -> Y end. */
    T *m1 = match(&a, 3, var(&a, 3, "_y@1"), lcall(&a, 3, "g", es_etf_list_of(&a, 1, var(&a, 3, "_x@1"))));
    T *cl1 = clause(&a, 5, es_etf_list_of(&a, 1, aint(&a, 5, 1)),
                    es_etf_list_of(&a, 2, lcall(&a, 5, "h", es_etf_list_of(&a, 1, var(&a, 5, "_y@1"))),
                                   tuple_expr(&a, 5, es_etf_list_of(&a, 2, aatom(&a, 5, "ok"), aint(&a, 5, 1)))));
    T *cl2 = clause(&a, 6, es_etf_list_of(&a, 1, var(&a, 6, "_")), es_etf_list_of(&a, 1, var(&a, 6, "_y@1")));
    T *c = case_expr(&a, 4, var(&a, 4, "_y@1"), es_etf_list_of(&a, 2, cl1, cl2));
    T *f = function(&a, 2, "f", 1, es_etf_list_of(&a, 1, clause(&a, 2, es_etf_list_of(&a, 1, var(&a, 2, "_x@1")), es_etf_list_of(&a, 2, m1, c))));
    run r;
    transform(&r, module(&a, 1, f), plan(&a, es_etf_list_of(&a, 1, fun_spec(&a, "f", 1, 2, "none", "all"))));
    T *out = ok_forms(&r);
    /* recorded: Y = g(X) (line 3) and h(Y) (line 5, inside the case); not the constant {ok, 1},
     * not the bare variable, not the case itself */
    assert_int_equal(count_reports(out, "expr"), 2);
    int n = 0;
    T *e1 = find_report_n(out, "expr", &n);
    n = 1;
    T *e2 = find_report_n(out, "expr", &n);
    assert_int_equal(report_arg(e1, 3)->u.items[2]->u.i, 3);
    assert_int_equal(report_arg(e2, 3)->u.items[2]->u.i, 5);
    assert_int_equal(count_reports(out, "locals"), 0);
    run_free(&r);
    es_arena_free(&a);
}

static void test_secret_parameters_are_redacted(void **state) {
    (void)state;
    es_arena a;
    es_arena_init(&a);
    /* login(User, Password) -> Password2 = string:trim(Password), {User, Password2}.
     * with secrets [password]: the parameter and the local are recorded as '[REDACTED]' */
    T *pats = es_etf_list_of(&a, 2, var(&a, 2, "_user@1"), var(&a, 2, "_password@1"));
    T *m = match(&a, 3, var(&a, 3, "_password@2"), rcall(&a, 3, "string", "trim", es_etf_list_of(&a, 1, var(&a, 3, "_password@1"))));
    T *res = tuple_expr(&a, 4, es_etf_list_of(&a, 2, var(&a, 4, "_user@1"), var(&a, 4, "_password@2")));
    T *f = function(&a, 2, "login", 2, es_etf_list_of(&a, 1, clause(&a, 2, pats, es_etf_list_of(&a, 2, m, res))));
    run r;
    transform(&r, module(&a, 1, f),
              plan_with(&a, es_etf_list_of(&a, 1, fun_spec(&a, "login", 2, 3, "all", "none")), es_etf_list_of(&a, 1, at(&a, "password")),
                        templates(&a)));
    T *cl = first_clause(ok_forms(&r), "login", 2);
    T *args[4];
    assert_int_equal(cons_items(report_arg(find_report(cl, "entry"), 2), args, 4), 2);
    assert_true(is_var(args[0], "_user@1"));
    assert_true(is_atom_node(args[1], "[REDACTED]"));
    /* the function itself still gets the value */
    assert_true(term_eq(es_etf_list_at(cl->u.items[2], 1), var(&a, 2, "_password@1")));
    T *fields = report_arg(find_report(cl, "locals"), 1)->u.items[2];
    assert_int_equal(es_etf_list_len(fields), 1);
    assert_true(is_atom_node(es_etf_list_at(fields, 0)->u.items[2], "password"));
    assert_true(is_atom_node(es_etf_list_at(fields, 0)->u.items[3], "[REDACTED]"));
    run_free(&r);
    es_arena_free(&a);
}

static void test_functions_found_whatever_the_plan_order_and_none_left_alone(void **state) {
    (void)state;
    es_arena a;
    es_arena_init(&a);
    T *mk[3];
    const char *names[3] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++)
        mk[i] = function(&a, 2 + i, names[i], 0, es_etf_list_of(&a, 1, clause(&a, 2 + i, es_etf_nil(&a), es_etf_list_of(&a, 1, aint(&a, 2 + i, i)))));
    run r;
    transform(&r, module(&a, 3, mk[0], mk[1], mk[2]),
              plan(&a, es_etf_list_of(&a, 3, fun_spec(&a, "c", 0, 1, "none", "none"), fun_spec(&a, "b", 0, 0, "none", "none"),
                                      fun_spec(&a, "a", 0, 1, "none", "none"))));
    T *out = ok_forms(&r);
    assert_non_null(find_report(find_function(out, "a", 0), "entry"));
    assert_true(term_eq(find_function(out, "b", 0), mk[1]));
    assert_non_null(find_report(find_function(out, "c", 0), "entry"));
    run_free(&r);
    es_arena_free(&a);
}

static void test_injections_run_at_their_line_whatever_their_size(void **state) {
    (void)state;
    es_arena a;
    es_arena_init(&a);
    /* f(X) -> Y = g(X), Y.  with {3, after, Code, [y]}, Code nested 1,000 deep */
    T *code = aatom(&a, 3, "probe");
    for (int i = 0; i < 1000; i++) code = tuple_expr(&a, 3, es_etf_list_of(&a, 1, code));
    T *inject = es_etf_list_of(&a, 1, es_etf_tuple_of(&a, 4, es_etf_int(&a, 3), at(&a, "after"), code, es_etf_list_of(&a, 1, at(&a, "y"))));
    T *spec = es_etf_tuple_of(&a, 3, at(&a, "f"), es_etf_int(&a, 1),
                              map_of(&a, 6, "level", es_etf_int(&a, 1), "locals", at(&a, "none"), "exprs", at(&a, "none"), "tail",
                                     at(&a, "true"), "state", at(&a, "none"), "inject", inject));
    T *m = match(&a, 3, var(&a, 3, "_y@1"), lcall(&a, 3, "g", es_etf_list_of(&a, 1, var(&a, 3, "_x@1"))));
    T *f = function(&a, 2, "f", 1,
                    es_etf_list_of(&a, 1, clause(&a, 2, es_etf_list_of(&a, 1, var(&a, 2, "_x@1")), es_etf_list_of(&a, 2, m, var(&a, 4, "_y@1")))));
    es_forms_tree t;
    uint8_t *fb, *pb;
    transform_tree(module(&a, 1, f), plan(&a, es_etf_list_of(&a, 1, spec)), &t, &fb, &pb);
    const T *cl = es_etf_list_at(es_etf_list_at(tree_forms(&t), 1)->u.items[4], 0);
    T *tb = try_body(plain_try((T *)cl));
    /* [Y = g(X), inject(ES@call, Code, #{y => Y}, 3), Y] */
    assert_int_equal(es_etf_list_len(tb), 3);
    T *inj = find_report(es_etf_list_at(tb, 1), "inject");
    assert_non_null(inj);
    assert_true(report_arg(inj, 1) == code || term_eq(report_arg(inj, 1), code));
    T *field = es_etf_list_at(report_arg(inj, 2)->u.items[2], 0);
    assert_true(is_atom_node(field->u.items[2], "y") && is_var(field->u.items[3], "_y@1"));
    es_forms_tree_free(&t);
    free(fb);
    free(pb);
    es_arena_free(&a);
}

static void test_locals_on_a_secret_line_are_redacted(void **state) {
    (void)state;
    es_arena a;
    es_arena_init(&a);
    /* f(X) -> Pin = string:trim(X), Pin.  line 3 names a secret (secret_lines [3]) */
    T *m = match(&a, 3, var(&a, 3, "_pin@1"), rcall(&a, 3, "string", "trim", es_etf_list_of(&a, 1, var(&a, 3, "_x@1"))));
    T *f = function(&a, 2, "f", 1,
                    es_etf_list_of(&a, 1, clause(&a, 2, es_etf_list_of(&a, 1, var(&a, 2, "_x@1")), es_etf_list_of(&a, 2, m, var(&a, 4, "_pin@1")))));
    T *p = plan_with(&a, es_etf_list_of(&a, 1, fun_spec(&a, "f", 1, 4, "all", "all")), es_etf_nil(&a), templates(&a));
    p->u.items[11] = es_etf_list_of(&a, 1, es_etf_int(&a, 3)); /* secret_lines */
    run r;
    transform(&r, module(&a, 1, f), p);
    T *tb = try_body(plain_try(first_clause(ok_forms(&r), "f", 1)));
    T *expr = find_report(tb, "expr");
    assert_true(is_atom_node(report_arg(expr, 2), "[REDACTED]"));
    T *fields = report_arg(find_report(tb, "locals"), 1)->u.items[2];
    assert_true(is_atom_node(es_etf_list_at(fields, 0)->u.items[2], "pin"));
    assert_true(is_atom_node(es_etf_list_at(fields, 0)->u.items[3], "[REDACTED]"));
    run_free(&r);
    es_arena_free(&a);
}

static void test_a_statement_without_a_line_takes_the_first_line_inside_it(void **state) {
    (void)state;
    es_arena a;
    es_arena_init(&a);
    /* f(X) ->            (line 2)
     *     Y = g(X),      (line 3)
     *     {ok, Y}.       (line 4, but Elixir's 2-tuples have no line: {tuple, 0, ...}) */
    T *m = match(&a, 3, var(&a, 3, "_y@1"), lcall(&a, 3, "g", es_etf_list_of(&a, 1, var(&a, 3, "_x@1"))));
    T *last_stmt = tuple_expr(&a, 0, es_etf_list_of(&a, 2, aatom(&a, 0, "ok"), var(&a, 4, "_y@1")));
    T *inject = es_etf_list_of(&a, 1, es_etf_tuple_of(&a, 4, es_etf_int(&a, 4), at(&a, "before"), aatom(&a, 4, "probe"), es_etf_nil(&a)));
    T *spec = es_etf_tuple_of(&a, 3, at(&a, "f"), es_etf_int(&a, 1),
                              map_of(&a, 6, "level", es_etf_int(&a, 2), "locals", at(&a, "none"), "exprs", at(&a, "all"), "tail",
                                     at(&a, "true"), "state", at(&a, "none"), "inject", inject));
    T *f = function(&a, 2, "f", 1,
                    es_etf_list_of(&a, 1, clause(&a, 2, es_etf_list_of(&a, 1, var(&a, 2, "_x@1")), es_etf_list_of(&a, 2, m, last_stmt))));
    run r;
    transform(&r, module(&a, 1, f), plan(&a, es_etf_list_of(&a, 1, spec)));
    T *tb = try_body(plain_try(first_clause(ok_forms(&r), "f", 1)));
    int n = 1;
    T *e2 = find_report_n(tb, "expr", &n);
    assert_non_null(e2);
    assert_int_equal(report_arg(e2, 3)->u.items[2]->u.i, 4);
    T *inj = find_report(tb, "inject");
    assert_non_null(inj);
    assert_int_equal(report_arg(inj, 3)->u.items[2]->u.i, 4);
    run_free(&r);
    es_arena_free(&a);
}

/* ---------------- bad input ---------------- */

/* the result is {error, Reason}; returns Reason */
static T *error_reason(const run *r) {
    assert_int_equal(r->result->kind, ES_ETF_TUPLE);
    assert_true(es_etf_is_atom(r->result->u.items[0], "error"));
    return r->result->u.items[1];
}

static void transform_bytes(run *r, const uint8_t *f, size_t fl, const uint8_t *p, size_t pl) {
    es_arena_init(&r->a);
    assert_int_equal(es_forms_transform(f, fl, p, pl, &r->out, &r->out_len), 0);
    assert_int_equal(es_etf_decode(&r->a, r->out, r->out_len, 10000, &r->result, NULL), ES_ETF_OK);
}

static void test_malformed_forms_and_plans_give_errors(void **state) {
    (void)state;
    es_arena a;
    es_arena_init(&a);
    T *good_forms = module(&a, 1, one_call_fun(&a, lcall(&a, 3, "g", es_etf_nil(&a))));
    T *good_plan = plan(&a, es_etf_list_of(&a, 1, fun_spec(&a, "f", 1, 1, "none", "none")));
    uint8_t *pb, *fb;
    size_t pl, fl;
    assert_int_equal(es_etf_encode(good_plan, &pb, &pl), ES_ETF_OK);
    assert_int_equal(es_etf_encode(good_forms, &fb, &fl), ES_ETF_OK);
    run r;

    static const uint8_t truncated[] = {131, 104};
    transform_bytes(&r, truncated, sizeof truncated, pb, pl);
    assert_true(es_etf_is_atom(error_reason(&r), "invalid_forms"));
    run_free(&r);
    transform_bytes(&r, truncated, 0, pb, pl);
    assert_true(es_etf_is_atom(error_reason(&r), "invalid_forms"));
    run_free(&r);

    transform(&r, at(&a, "not_forms"), good_plan);
    assert_true(es_etf_is_atom(error_reason(&r), "invalid_forms"));
    run_free(&r);

    transform_bytes(&r, fb, fl, truncated, sizeof truncated);
    assert_true(es_etf_is_atom(error_reason(&r), "invalid_plan"));
    run_free(&r);

    transform(&r, good_forms, es_etf_list_of(&a, 1, at(&a, "plan")));
    assert_true(es_etf_is_atom(error_reason(&r), "invalid_plan"));
    run_free(&r);

    /* no templates */
    transform(&r, good_forms, map_of(&a, 2, "module", at(&a, "m"), "functions", es_etf_nil(&a)));
    assert_true(es_etf_is_atom(error_reason(&r), "invalid_plan"));
    run_free(&r);

    /* a level out of range names the entry */
    T *bad_entry = fun_spec(&a, "f", 1, 9, "none", "none");
    transform(&r, good_forms, plan(&a, es_etf_list_of(&a, 1, bad_entry)));
    T *reason = error_reason(&r);
    assert_true(is_tag(reason, "invalid_plan"));
    assert_true(term_eq(reason->u.items[1], bad_entry));
    run_free(&r);

    /* an entry that is not {Name, Arity, Map} */
    transform(&r, good_forms, plan(&a, es_etf_list_of(&a, 1, at(&a, "f"))));
    assert_true(is_tag(error_reason(&r), "invalid_plan"));
    run_free(&r);

    /* a template with a hole the transformer does not fill: the plan is refused */
    T *tpls = templates(&a);
    for (uint32_t i = 0; i < tpls->n; i++)
        if (es_etf_is_atom(tpls->u.items[2 * i], "entry")) tpls->u.items[2 * i + 1] = tpl(&a, "entry", 2, "mod", "bogus");
    transform(&r, good_forms, plan_with(&a, es_etf_list_of(&a, 1, fun_spec(&a, "f", 1, 1, "none", "none")), es_etf_nil(&a), tpls));
    reason = error_reason(&r);
    assert_true(is_tag(reason, "invalid_plan"));
    assert_true(es_etf_is_atom(reason->u.items[1], "templates"));
    run_free(&r);

    /* function forms of the wrong shape are kept as they are */
    T *odd[5] = {
        es_etf_tuple_of(&a, 5, at(&a, "function"), ln(&a, 2), at(&a, "f"), es_etf_int(&a, 1), at(&a, "not_clauses")),
        function(&a, 2, "f", 1, es_etf_list_of(&a, 1, at(&a, "not_a_clause"))),
        function(&a, 2, "f", 1, es_etf_list_of(&a, 1, clause(&a, 2, es_etf_list_of(&a, 1, var(&a, 2, "_x@1")), at(&a, "body")))),
        function(&a, 2, "f", 1, es_etf_list_of(&a, 1, clause(&a, 2, es_etf_list_of(&a, 1, var(&a, 2, "_x@1")), es_etf_nil(&a)))),
        es_etf_tuple_of(&a, 5, at(&a, "function"), ln(&a, 2), at(&a, "f"), at(&a, "one"), es_etf_nil(&a)),
    };
    for (int i = 0; i < 5; i++) {
        transform(&r, module(&a, 1, odd[i]), good_plan);
        assert_true(term_eq(es_etf_list_at(ok_forms(&r), 1), odd[i]));
        run_free(&r);
    }
    /* a clause whose body holds nodes of the wrong shape is instrumented around them */
    T *junk = function(&a, 2, "f", 1,
                       es_etf_list_of(&a, 1, clause(&a, 2, es_etf_list_of(&a, 1, var(&a, 2, "_x@1")),
                                                    es_etf_list_of(&a, 3, at(&a, "junk"), es_etf_tuple_of(&a, 1, at(&a, "case")),
                                                                   es_etf_tuple_of(&a, 4, at(&a, "case"), ln(&a, 2), at(&a, "x"), at(&a, "y"))))));
    transform(&r, module(&a, 1, junk), plan(&a, es_etf_list_of(&a, 1, fun_spec(&a, "f", 1, 4, "all", "all"))));
    assert_non_null(find_report(ok_forms(&r), "entry"));
    run_free(&r);

    free(pb);
    free(fb);
    es_arena_free(&a);
}

/* A plan entry's arity is an Erlang function's (0 to 255): the clause that records a call no
 * clause matches gets that many parameters, each a new variable (a new atom in the VM), so a
 * function form and a plan entry of arity 100000 took 30 s, and 2147483647 asked for 16 GB. */
static void test_plan_arity_out_of_range_is_refused(void **state) {
    (void)state;
    es_arena a;
    es_arena_init(&a);
    const int64_t arities[4] = {100000, 2147483647, -1, 256};
    for (int i = 0; i < 4; i++) {
        /* the function the entry names, with one clause that does not match every call */
        T *f = function(&a, 2, "f", arities[i],
                        es_etf_list_of(&a, 1, clause(&a, 2, es_etf_list_of(&a, 1, aint(&a, 2, 0)),
                                                     es_etf_list_of(&a, 1, aatom(&a, 2, "zero")))));
        T *entry = fun_spec(&a, "f", arities[i], 1, "none", "none");
        run r;
        transform(&r, module(&a, 1, f), plan(&a, es_etf_list_of(&a, 1, entry)));
        T *reason = error_reason(&r);
        assert_true(is_tag(reason, "invalid_plan"));
        assert_true(term_eq(reason->u.items[1], entry));
        run_free(&r);
    }
    es_arena_free(&a);
}

/* Every truncation and many one-byte corruptions of valid input give a result, never a crash
 * (run under ASan by make test-asan). */
static void test_corrupted_input_never_crashes(void **state) {
    (void)state;
    es_arena a;
    es_arena_init(&a);
    T *m1 = match(&a, 3, var(&a, 3, "_y@1"), op(&a, 3, "+", var(&a, 3, "_x@1"), aint(&a, 3, 1)));
    T *body = case_expr(&a, 4, var(&a, 4, "_y@1"),
                        es_etf_list_of(&a, 2, clause(&a, 5, es_etf_list_of(&a, 1, aint(&a, 5, 0)), es_etf_list_of(&a, 1, aatom(&a, 5, "done"))),
                                       clause(&a, 6, es_etf_list_of(&a, 1, var(&a, 6, "_")),
                                              es_etf_list_of(&a, 1, lcall(&a, 6, "f", es_etf_list_of(&a, 1, var(&a, 6, "_y@1")))))));
    T *f = function(&a, 2, "f", 1, es_etf_list_of(&a, 1, clause(&a, 2, es_etf_list_of(&a, 1, var(&a, 2, "_x@1")), es_etf_list_of(&a, 2, m1, body))));
    uint8_t *fb, *pb;
    size_t fl, pl;
    assert_int_equal(es_etf_encode(module(&a, 1, f), &fb, &fl), ES_ETF_OK);
    assert_int_equal(es_etf_encode(plan(&a, es_etf_list_of(&a, 1, fun_spec(&a, "f", 1, 4, "all", "all"))), &pb, &pl), ES_ETF_OK);
    uint8_t *copy = malloc(fl > pl ? fl : pl);
    uint32_t seed = 12345;
    for (int which = 0; which < 2; which++) {
        const uint8_t *src = which ? pb : fb;
        size_t len = which ? pl : fl;
        for (size_t cut = 0; cut <= len; cut++) { /* truncations */
            memcpy(copy, src, cut);
            uint8_t *out = NULL;
            size_t ol;
            int rc = which ? es_forms_transform(fb, fl, copy, cut, &out, &ol) : es_forms_transform(copy, cut, pb, pl, &out, &ol);
            assert_int_equal(rc, 0);
            free(out);
        }
        for (int k = 0; k < 4000; k++) { /* one corrupted byte */
            memcpy(copy, src, len);
            seed = seed * 1103515245u + 12345u;
            size_t at_ = (seed >> 8) % len;
            seed = seed * 1103515245u + 12345u;
            copy[at_] = (uint8_t)(seed >> 16);
            uint8_t *out = NULL;
            size_t ol;
            int rc = which ? es_forms_transform(fb, fl, copy, len, &out, &ol) : es_forms_transform(copy, len, pb, pl, &out, &ol);
            assert_int_equal(rc, 0);
            es_arena b;
            es_arena_init(&b);
            T *res = NULL;
            assert_int_equal(es_etf_decode(&b, out, ol, 100000, &res, NULL), ES_ETF_OK);
            assert_true(es_etf_is_atom(res->u.items[0], "ok") || es_etf_is_atom(res->u.items[0], "error"));
            es_arena_free(&b);
            free(out);
        }
    }
    free(copy);
    free(fb);
    free(pb);
    es_arena_free(&a);
}

/* ---------------- size and depth ---------------- */

/* f(X) -> case X of _ -> case X of _ -> ... g(X) ... end end, depth cases deep (built iteratively) */
static T *nested_case_fun(es_arena *a, uint32_t depth) {
    T *e = lcall(a, 3, "g", es_etf_list_of(a, 1, var(a, 3, "_x@1")));
    for (uint32_t i = 0; i < depth; i++)
        e = case_expr(a, 3, var(a, 3, "_x@1"),
                      es_etf_list_of(a, 1, clause(a, 3, es_etf_list_of(a, 1, var(a, 3, "_")), es_etf_list_of(a, 1, e))));
    return function(a, 2, "f", 1, es_etf_list_of(a, 1, clause(a, 2, es_etf_list_of(a, 1, var(a, 2, "_x@1")), es_etf_list_of(a, 1, e))));
}

static void test_deep_nested_case_in_tail_position(void **state) {
    (void)state;
    es_arena a;
    es_arena_init(&a);
    T *p = plan(&a, es_etf_list_of(&a, 1, fun_spec(&a, "f", 1, 4, "all", "all")));
    es_forms_tree t;
    uint8_t *fb, *pb;

    /* 150 deep: the tail call is still made after the try */
    transform_tree(module(&a, 1, nested_case_fun(&a, 150)), p, &t, &fb, &pb);
    const T *cl = es_etf_list_at(es_etf_list_at(tree_forms(&t), 1)->u.items[4], 0);
    dispatch_case((T *)cl);
    es_forms_tree_free(&t);
    free(fb);
    free(pb);

    /* 100,000 deep: instrumented (deeper than the tail limit, the call stays a value), and
     * neither the transformer nor the encoder recurses on the C stack */
    transform_tree(module(&a, 1, nested_case_fun(&a, 100000)), p, &t, &fb, &pb);
    cl = es_etf_list_at(es_etf_list_at(tree_forms(&t), 1)->u.items[4], 0);
    plain_try((T *)cl);
    uint8_t *out;
    size_t ol;
    assert_int_equal(es_etf_encode(t.result, &out, &ol), ES_ETF_OK);
    free(out);
    es_forms_tree_free(&t);
    free(fb);
    free(pb);
    es_arena_free(&a);
}

static void test_deep_expression_and_pattern(void **state) {
    (void)state;
    es_arena a;
    es_arena_init(&a);
    /* f(X) -> {{{...X...}}} = X + 1 + 1 ... (100,000 deep each side), X. */
    T *e = var(&a, 3, "_x@1"), *pat = var(&a, 3, "_y@1");
    for (int i = 0; i < 100000; i++) {
        e = op(&a, 3, "+", e, aint(&a, 3, 1));
        pat = tuple_expr(&a, 3, es_etf_list_of(&a, 1, pat));
    }
    T *f = function(&a, 2, "f", 1,
                    es_etf_list_of(&a, 1, clause(&a, 2, es_etf_list_of(&a, 1, var(&a, 2, "_x@1")),
                                                 es_etf_list_of(&a, 2, match(&a, 3, pat, e), var(&a, 4, "_x@1")))));
    es_forms_tree t;
    uint8_t *fb, *pb;
    transform_tree(module(&a, 1, f), plan(&a, es_etf_list_of(&a, 1, fun_spec(&a, "f", 1, 4, "all", "all"))), &t, &fb, &pb);
    const T *cl = es_etf_list_at(es_etf_list_at(tree_forms(&t), 1)->u.items[4], 0);
    T *tb = try_body(plain_try((T *)cl));
    /* the statement is recorded (its value is not a constant) */
    assert_non_null(find_report(es_etf_list_at(tb, 1), "expr"));
    es_forms_tree_free(&t);
    free(fb);
    free(pb);
    es_arena_free(&a);
}

static void test_fifty_thousand_clauses(void **state) {
    (void)state;
    es_arena a;
    es_arena_init(&a);
    enum { N = 50000 };
    /* f(1) -> g(1); f(2) -> g(2); ... each clause with a tail call and a literal pattern */
    T *clauses = es_etf_list(&a, N);
    for (uint32_t i = 0; i < N; i++)
        clauses->u.items[i] = clause(&a, 2 + i, es_etf_list_of(&a, 1, aint(&a, 2 + i, i)),
                                     es_etf_list_of(&a, 1, lcall(&a, 2 + i, "g", es_etf_list_of(&a, 1, aint(&a, 2 + i, i)))));
    es_forms_tree t;
    uint8_t *fb, *pb;
    transform_tree(module(&a, 1, function(&a, 2, "f", 1, clauses)),
                   plan(&a, es_etf_list_of(&a, 1, fun_spec(&a, "f", 1, 4, "all", "all"))), &t, &fb, &pb);
    const T *out = es_etf_list_at(tree_forms(&t), 1)->u.items[4];
    assert_int_equal(es_etf_list_len(out), N + 1); /* and the clause that records a call no clause matches */
    for (uint32_t i = 0; i < N; i += 997) {
        T *cl = es_etf_list_at(out, i);
        T *p0 = es_etf_list_at(cl->u.items[2], 0);
        assert_true(is_tag(p0, "match") && is_var(p0->u.items[3], "ES@arg1"));
        assert_int_equal(p0->u.items[2]->u.items[2]->u.i, i);
        T *c = dispatch_case(cl);
        assert_int_equal(es_etf_list_len(c->u.items[3]), 1); /* the tail clause only: no value can come */
    }
    uint8_t *enc;
    size_t el;
    assert_int_equal(es_etf_encode(t.result, &enc, &el), ES_ETF_OK);
    free(enc);
    es_forms_tree_free(&t);
    free(fb);
    free(pb);
    es_arena_free(&a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_tail_call_becomes_marker_and_dispatch_clause),
        cmocka_unit_test(test_plan_arity_out_of_range_is_refused),
        cmocka_unit_test(test_bodies_with_local_functions_or_large_are_not_copied),
        cmocka_unit_test(test_values_in_tail_position_are_wrapped),
        cmocka_unit_test(test_erlang_bifs_are_values_and_apply_is_a_tail_call),
        cmocka_unit_test(test_spawn_is_reported_after_it_returns),
        cmocka_unit_test(test_rpc_calls_report_request_and_outcome),
        cmocka_unit_test(test_try_with_after_is_a_value_and_catch_bodies_are_tail),
        cmocka_unit_test(test_pattern_arguments_get_aliases),
        cmocka_unit_test(test_locals_are_reported_after_a_match),
        cmocka_unit_test(test_expressions_in_nested_bodies_and_constants),
        cmocka_unit_test(test_secret_parameters_are_redacted),
        cmocka_unit_test(test_functions_found_whatever_the_plan_order_and_none_left_alone),
        cmocka_unit_test(test_injections_run_at_their_line_whatever_their_size),
        cmocka_unit_test(test_locals_on_a_secret_line_are_redacted),
        cmocka_unit_test(test_a_statement_without_a_line_takes_the_first_line_inside_it),
        cmocka_unit_test(test_malformed_forms_and_plans_give_errors),
        cmocka_unit_test(test_corrupted_input_never_crashes),
        cmocka_unit_test(test_deep_nested_case_in_tail_position),
        cmocka_unit_test(test_deep_expression_and_pattern),
        cmocka_unit_test(test_fifty_thousand_clauses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
