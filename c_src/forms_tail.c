/* The forms transformer, tail calls: a call in tail position must stay a tail call, or a loop
 * that runs in constant stack plain would grow instrumented. The body runs inside the frame's
 * try (which records exceptions), so each tail call returns a marker from the try instead,
 * {'$es_tail', I, Callee.., Args..}, with its arguments already evaluated, and the call is made
 * after the try, in the dispatch case's clause I, where it is a real tail call again. Other values
 * in tail position come out as {'$es_v', V}.
 *
 * Tail positions in the abstract format: the last expression of a body; the clause bodies of
 * case, if and receive (and the after body); the of and catch clause bodies of a try without
 * after (its body too when it has no of clauses, as a value); block bodies. Calls to the erlang
 * module (BIFs, erlang:error/raise among them) stay inside the try, as values, so their
 * exceptions are recorded; erlang:apply is a call like any other. */
#include <string.h>

#include "forms_internal.h"

static const T *value_marker(fx *x, fx_sites *s, const T *e) {
    s->values++;
    const T *anno = fx_anno(x, fx_line_of(e));
    const T *el[2] = {fx_atom_node(x, anno, "$es_v"), e};
    return fx_tuple_expr(x, anno, 2, el);
}

/* ---- the variables a literal fun closes over ---- */

typedef struct var_count {
    const T **names; /* atom nodes */
    uint32_t *counts;
    uint32_t n, cap;
} var_count;

static int vc_add(fx *x, var_count *vc, const T *name) {
    for (uint32_t i = 0; i < vc->n; i++)
        if (vc->names[i]->n == name->n && memcmp(vc->names[i]->u.bytes, name->u.bytes, name->n) == 0) {
            vc->counts[i]++;
            return 0;
        }
    if (vc->n == vc->cap) {
        uint32_t nc = vc->cap ? vc->cap * 2 : 16;
        const T **nn = es_arena_alloc(x->a, sizeof(T *) * nc);
        uint32_t *ncount = es_arena_alloc(x->a, sizeof(uint32_t) * nc);
        if (!nn || !ncount) return -1;
        if (vc->n) {
            memcpy(nn, vc->names, sizeof(T *) * vc->n);
            memcpy(ncount, vc->counts, sizeof(uint32_t) * vc->n);
        }
        vc->names = nn;
        vc->counts = ncount;
        vc->cap = nc;
    }
    vc->names[vc->n] = name;
    vc->counts[vc->n++] = 1;
    return 0;
}

static uint32_t vc_get(const var_count *vc, const T *name) {
    for (uint32_t i = 0; i < vc->n; i++)
        if (vc->names[i]->n == name->n && memcmp(vc->names[i]->u.bytes, name->u.bytes, name->n) == 0) return vc->counts[i];
    return 0;
}

/* counts the variable occurrences in t, iteratively (an explicit stack in the arena) */
static int count_vars(fx *x, const T *t, var_count *vc) {
    uint32_t cap = 256, n = 0;
    const T **stack = es_arena_alloc(x->a, sizeof(T *) * cap);
    if (!stack) return -1;
    stack[n++] = t;
    while (n) {
        const T *e = stack[--n];
        if (!e) continue;
        if (fx_tag_is(e, "var") && e->n == 3 && e->u.items[2]->kind == ES_ETF_ATOM) {
            if (!es_etf_is_atom(e->u.items[2], "_") && vc_add(x, vc, e->u.items[2]) < 0) return -1;
            continue;
        }
        if (e->kind != ES_ETF_TUPLE && e->kind != ES_ETF_LIST) continue;
        uint32_t count = e->kind == ES_ETF_LIST ? e->n + 1 : e->n;
        if (n + count > cap) {
            uint32_t nc = (n + count) * 2;
            const T **ns = es_arena_alloc(x->a, sizeof(T *) * nc);
            if (!ns) return -1;
            memcpy(ns, stack, sizeof(T *) * n);
            stack = ns;
            cap = nc;
        }
        for (uint32_t i = 0; i < count; i++) stack[n++] = e->u.items[i];
    }
    return 0;
}

/* a copy of t with the variables named in from[] renamed to to[] */
static const T *rename_vars(fx *x, const T *t, uint32_t k, const T *const *from, const T *const *to, int depth) {
    if (!t || depth > 2000) return t;
    if (fx_tag_is(t, "var") && t->n == 3) {
        for (uint32_t i = 0; i < k; i++)
            if (from[i]->n == t->u.items[2]->n && memcmp(from[i]->u.bytes, t->u.items[2]->u.bytes, from[i]->n) == 0)
                return to[i];
        return t;
    }
    if (t->kind != ES_ETF_TUPLE && t->kind != ES_ETF_LIST) return t;
    uint32_t count = t->kind == ES_ETF_LIST ? t->n + 1 : t->n;
    T *c = t->kind == ES_ETF_LIST ? es_etf_list(x->a, t->n) : es_etf_tuple(x->a, t->n);
    if (!c) return NULL;
    for (uint32_t i = 0; i < count; i++) {
        const T *r = rename_vars(x, t->u.items[i], k, from, to, depth + 1);
        if (!r) return NULL;
        c->u.items[i] = (T *)r;
    }
    return c;
}

/* A fun written where it is applied, (fn … end).(args): the Erlang compiler inlines it, which
 * names its frames (-f/1-inlined-0-). The dispatch clause applies the same literal fun, so it is
 * inlined as before; the variables it closes over that were bound in the clause travel in the
 * marker, under fresh names. Returns the number of them (parts/part_vars filled), -1 on OOM. */
static int literal_fun_free_vars(fx *x, const T *fun, const T *anno, const T ***parts, const T ***part_vars,
                                 const T **renamed) {
    var_count all = {0}, inside = {0};
    if (count_vars(x, x->clause_pats, &all) < 0 || count_vars(x, x->clause_body, &all) < 0 ||
        count_vars(x, fun, &inside) < 0)
        return -1;
    uint32_t k = 0;
    const T **from = es_arena_alloc(x->a, sizeof(T *) * (inside.n ? inside.n : 1));
    const T **to = es_arena_alloc(x->a, sizeof(T *) * (inside.n ? inside.n : 1));
    const T **vals = es_arena_alloc(x->a, sizeof(T *) * (inside.n ? inside.n : 1));
    if (!from || !to || !vals) return -1;
    for (uint32_t i = 0; i < inside.n; i++)
        if (vc_get(&all, inside.names[i]) > inside.counts[i]) { /* also used outside the fun: bound there */
            from[k] = inside.names[i];
            vals[k] = es_etf_tuple_of(x->a, 3, es_etf_atom(x->a, "var"), (T *)anno, (T *)inside.names[i]);
            to[k] = fx_var_n(x, anno, "ES@closed", ++x->counter);
            if (!vals[k] || !to[k]) return -1;
            k++;
        }
    *renamed = k ? rename_vars(x, fun, k, from, to, 0) : fun;
    *parts = vals;
    *part_vars = to;
    return *renamed ? (int)k : -1;
}

static int grow(fx *x, fx_sites *s) {
    if (s->n < s->cap) return 0;
    uint32_t nc = s->cap ? s->cap * 2 : 8;
    const T **nv = es_arena_alloc(x->a, sizeof(T *) * nc);
    if (!nv) return -1;
    if (s->n) memcpy(nv, s->clauses, sizeof(T *) * s->n);
    s->clauses = nv;
    s->cap = nc;
    return 0;
}

/* A call in tail position becomes a marker; its dispatch clause makes the real call. */
static const T *site(fx *x, const T *call, const T *call_var, fx_sites *s) {
    const T *fn = call->u.items[2], *args = call->u.items[3];
    if (!es_etf_is_proper_list(args)) return value_marker(x, s, call);
    int64_t line = fx_line_of(call);
    const T *anno = fx_anno(x, line);
    uint32_t argc = es_etf_list_len(args), idx = s->n;
    /* the callee's parts that are values computed at run time travel in the marker too */
    const T *fixed_parts[2] = {NULL, NULL}, *fixed_vars[2] = {NULL, NULL};
    const T **parts = fixed_parts, **part_vars = fixed_vars;
    uint32_t np = 0;
    const T *rep_mod, *rep_fun, *new_fn;
    if (fx_tag_is(fn, "fun") && fn->n == 3 && fx_tag_is(fn->u.items[2], "clauses")) {
        int k = literal_fun_free_vars(x, fn, anno, &parts, &part_vars, &new_fn);
        if (k < 0) return NULL;
        np = (uint32_t)k;
        rep_mod = fx_atom_node(x, anno, "nil");
        rep_fun = fx_atom_node(x, anno, "fn");
    } else if (fx_tag_is(fn, "atom")) {
        rep_mod = x->module;
        rep_fun = fn;
        new_fn = fn;
    } else if (fx_tag_is(fn, "remote") && fn->n == 4) {
        const T *m = fn->u.items[2], *f = fn->u.items[3];
        if (!fx_tag_is(m, "atom")) {
            parts[np] = m;
            part_vars[np] = fx_var_n(x, anno, "ES@callee", np);
            m = part_vars[np++];
        }
        if (!fx_tag_is(f, "atom")) {
            parts[np] = f;
            part_vars[np] = fx_var_n(x, anno, "ES@callee", np);
            f = part_vars[np++];
        }
        rep_mod = m;
        rep_fun = f;
        new_fn = es_etf_tuple_of(x->a, 4, fn->u.items[0], fn->u.items[1], (T *)m, (T *)f);
    } else { /* a fun call: the fun value travels */
        parts[np] = fn;
        part_vars[np] = fx_var_n(x, anno, "ES@callee", np);
        new_fn = part_vars[np++];
        rep_mod = fx_atom_node(x, anno, "nil");
        rep_fun = fx_atom_node(x, anno, "fn");
    }
    uint32_t width = 2 + np + argc;
    const T **marker = es_arena_alloc(x->a, sizeof(T *) * width);
    const T **pattern = es_arena_alloc(x->a, sizeof(T *) * width);
    const T **tvars = es_arena_alloc(x->a, sizeof(T *) * (argc ? argc : 1));
    if (!marker || !pattern || !tvars) return NULL;
    marker[0] = pattern[0] = fx_atom_node(x, anno, "$es_tail");
    marker[1] = pattern[1] = fx_int(x, anno, idx);
    for (uint32_t i = 0; i < np; i++) {
        marker[2 + i] = parts[i];
        pattern[2 + i] = part_vars[i];
    }
    for (uint32_t i = 0; i < argc; i++) {
        tvars[i] = fx_var_n(x, anno, "ES@tail", i + 1);
        marker[2 + np + i] = args->u.items[i];
        pattern[2 + np + i] = tvars[i];
    }
    const T *real = es_etf_tuple_of(x->a, 4, call->u.items[0], call->u.items[1], (T *)new_fn,
                                    (T *)fx_terms(x, tvars, argc));
    const T **rargs = es_arena_alloc(x->a, sizeof(T *) * (argc + 4));
    if (!rargs || argc > 250) return NULL;
    rargs[0] = call_var;
    rargs[1] = rep_mod;
    rargs[2] = rep_fun;
    rargs[3] = fx_int(x, anno, line);
    for (uint32_t i = 0; i < argc; i++) rargs[4 + i] = tvars[i];
    x->tail_used[argc] = 1;
    const T *report = fx_local_call(x, anno, FX_TAIL_HELPER, argc + 4, rargs);
    const T *body[2] = {report, real};
    const T *clause = fx_clause(x, anno, es_etf_list_of(x->a, 1, (T *)fx_tuple_expr(x, anno, width, pattern)),
                                es_etf_nil(x->a), fx_terms(x, body, 2));
    if (!clause || grow(x, s) < 0) return NULL;
    s->clauses[s->n++] = clause;
    return fx_tuple_expr(x, anno, width, marker);
}

static const T *tail_expr(fx *x, const T *e, const T *call_var, fx_sites *s, int depth);

/* a body with its last expression in tail position */
static const T *tail_body(fx *x, const T *body, const T *call_var, fx_sites *s, int depth) {
    if (!body || body->kind != ES_ETF_LIST || !es_etf_is_proper_list(body)) return body;
    T *nb = es_etf_list(x->a, body->n);
    if (!nb) return NULL;
    memcpy(nb->u.items, body->u.items, sizeof(T *) * body->n);
    const T *last = tail_expr(x, body->u.items[body->n - 1], call_var, s, depth);
    if (!last) return NULL;
    nb->u.items[body->n - 1] = (T *)last;
    return nb;
}

/* every clause's body in tail position */
static const T *tail_clauses(fx *x, const T *clauses, const T *call_var, fx_sites *s, int depth) {
    if (!clauses || clauses->kind != ES_ETF_LIST) return clauses;
    T *nc = es_etf_list(x->a, clauses->n);
    if (!nc) return NULL;
    for (uint32_t i = 0; i < clauses->n; i++) {
        const T *c = clauses->u.items[i];
        if (!fx_tag_is(c, "clause") || c->n != 5) return NULL;
        const T *b = tail_body(x, c->u.items[4], call_var, s, depth);
        if (!b) return NULL;
        nc->u.items[i] = (T *)es_etf_tuple_of(x->a, 5, c->u.items[0], c->u.items[1], c->u.items[2], c->u.items[3],
                                              (T *)b);
    }
    return nc;
}

static const T *tail_expr(fx *x, const T *e, const T *call_var, fx_sites *s, int depth) {
    if (depth > FX_MAX_TAIL_DEPTH || !e || e->kind != ES_ETF_TUPLE || e->n < 2) return value_marker(x, s, e);
    if (fx_tag_is(e, "call") && e->n == 4) return fx_is_tail_call(e) ? site(x, e, call_var, s) : value_marker(x, s, e);
    if (fx_tag_is(e, "case") && e->n == 4) return fx_with(x, e, 3, tail_clauses(x, e->u.items[3], call_var, s, depth + 1));
    if (fx_tag_is(e, "if") && e->n == 3) return fx_with(x, e, 2, tail_clauses(x, e->u.items[2], call_var, s, depth + 1));
    if (fx_tag_is(e, "receive") && e->n == 3)
        return fx_with(x, e, 2, tail_clauses(x, e->u.items[2], call_var, s, depth + 1));
    if (fx_tag_is(e, "receive") && e->n == 5) {
        const T *r = fx_with(x, e, 2, tail_clauses(x, e->u.items[2], call_var, s, depth + 1));
        return r ? fx_with(x, r, 4, tail_body(x, e->u.items[4], call_var, s, depth + 1)) : NULL;
    }
    if (fx_tag_is(e, "block") && e->n == 3) return fx_with(x, e, 2, tail_body(x, e->u.items[2], call_var, s, depth + 1));
    if (fx_tag_is(e, "try") && e->n == 6 && e->u.items[5]->kind == ES_ETF_NIL) {
        /* {try, A, Body, Of, Catch, []}: of and catch bodies run after the try's own frame */
        const T *r = e;
        if (e->u.items[3]->kind == ES_ETF_NIL) { /* the body's value is the result: mark it */
            const T *b = e->u.items[2];
            if (!b || b->kind != ES_ETF_LIST || !es_etf_is_proper_list(b)) return value_marker(x, s, e);
            T *nb = es_etf_list(x->a, b->n);
            if (!nb) return NULL;
            memcpy(nb->u.items, b->u.items, sizeof(T *) * b->n);
            nb->u.items[b->n - 1] = (T *)value_marker(x, s, b->u.items[b->n - 1]);
            r = fx_with(x, r, 2, nb);
        } else {
            r = fx_with(x, r, 3, tail_clauses(x, e->u.items[3], call_var, s, depth + 1));
        }
        return r ? fx_with(x, r, 4, tail_clauses(x, e->u.items[4], call_var, s, depth + 1)) : NULL;
    }
    return value_marker(x, s, e);
}

const T *fx_tail_rewrite(fx *x, const T *body, const T *call_var, fx_sites *sites) {
    const T *nb = tail_body(x, body, call_var, sites, 0);
    if (!nb) return NULL;
    return sites->n ? nb : body;
}
