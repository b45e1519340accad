/* The forms transformer, function boundaries: decodes the module's abstract forms and the plan,
 * and gives every clause of a planned function its entry report, its exception report (a try
 * that re-raises with the original class, reason and stacktrace), its return report and, for
 * OTP callbacks, the state before and after. Tail calls: forms_tail.c; statements (locals,
 * expressions, injections): forms_body.c. The shapes of the injected calls are templates
 * from the plan (ElixirScope.AST.InjectorHelpers), so this file only builds structure. */
#include "elixir_scope/forms_transform.h"

#include <stdlib.h>
#include <string.h>

#include "forms_internal.h"

/* ---------------- node builders ---------------- */

const T *fx_atom(fx *x, const char *name) { return es_etf_atom(x->a, name); }

const T *fx_anno(fx *x, int64_t line) {
    /* [{generated, true}, {location, Line}]: injected code keeps the user's line for stack
     * traces, and the compiler does not warn about it */
    const T *gen = es_etf_tuple_of(x->a, 2, es_etf_atom(x->a, "generated"), es_etf_atom(x->a, "true"));
    const T *loc = es_etf_tuple_of(x->a, 2, es_etf_atom(x->a, "location"), es_etf_int(x->a, line));
    return es_etf_list_of(x->a, 2, (T *)gen, (T *)loc);
}

const T *fx_atom_node(fx *x, const T *anno, const char *name) {
    return es_etf_tuple_of(x->a, 3, es_etf_atom(x->a, "atom"), (T *)anno, es_etf_atom(x->a, name));
}

const T *fx_var(fx *x, const T *anno, const char *name) {
    return es_etf_tuple_of(x->a, 3, es_etf_atom(x->a, "var"), (T *)anno, es_etf_atom(x->a, name));
}

const T *fx_var_n(fx *x, const T *anno, const char *prefix, uint32_t n) {
    size_t pl = strlen(prefix);
    char *name = es_arena_alloc(x->a, pl + 12);
    if (!name) return NULL;
    memcpy(name, prefix, pl);
    char digits[12];
    int d = 0;
    do {
        digits[d++] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    for (int i = 0; i < d; i++) name[pl + i] = digits[d - 1 - i];
    name[pl + d] = 0;
    return fx_var(x, anno, name);
}

const T *fx_int(fx *x, const T *anno, int64_t v) {
    return es_etf_tuple_of(x->a, 3, es_etf_atom(x->a, "integer"), (T *)anno, es_etf_int(x->a, v));
}

T *fx_list(fx *x, uint32_t n) { return es_etf_list(x->a, n); }

/* a plain term list of the given nodes (NULL if any is NULL: an allocation failed) */
const T *fx_terms(fx *x, const T *const *items, uint32_t n) {
    T *l = es_etf_list(x->a, n);
    if (!l) return NULL;
    for (uint32_t i = 0; i < n; i++) {
        if (!items[i]) return NULL;
        l->u.items[i] = (T *)items[i];
    }
    return l;
}

const T *fx_tuple_expr(fx *x, const T *anno, uint32_t n, const T *const *elems) {
    return es_etf_tuple_of(x->a, 3, es_etf_atom(x->a, "tuple"), (T *)anno, (T *)fx_terms(x, elems, n));
}

/* the abstract form of a list expression: {cons, A, E1, {cons, A, E2, ... {nil, A}}} */
const T *fx_list_expr(fx *x, const T *anno, uint32_t n, const T *const *elems) {
    const T *acc = es_etf_tuple_of(x->a, 2, es_etf_atom(x->a, "nil"), (T *)anno);
    for (uint32_t i = n; i-- > 0;)
        acc = es_etf_tuple_of(x->a, 4, es_etf_atom(x->a, "cons"), (T *)anno, (T *)elems[i], (T *)acc);
    return acc;
}

const T *fx_match(fx *x, const T *anno, const T *pattern, const T *expr) {
    return es_etf_tuple_of(x->a, 4, es_etf_atom(x->a, "match"), (T *)anno, (T *)pattern, (T *)expr);
}

const T *fx_clause(fx *x, const T *anno, const T *patterns, const T *guards, const T *body) {
    return es_etf_tuple_of(x->a, 5, es_etf_atom(x->a, "clause"), (T *)anno, (T *)patterns, (T *)guards,
                           (T *)body);
}

const T *fx_case(fx *x, const T *anno, const T *expr, const T *clauses) {
    return es_etf_tuple_of(x->a, 4, es_etf_atom(x->a, "case"), (T *)anno, (T *)expr, (T *)clauses);
}

const T *fx_local_call(fx *x, const T *anno, const char *name, uint32_t n, const T *const *args) {
    return es_etf_tuple_of(x->a, 4, es_etf_atom(x->a, "call"), (T *)anno, (T *)fx_atom_node(x, anno, name),
                           (T *)fx_terms(x, args, n));
}

const T *fx_with(fx *x, const T *t, uint32_t i, const T *v) {
    if (!v) return NULL;
    if (v == t->u.items[i]) return t; /* unchanged: terms are immutable, so it is shared */
    T *c = es_etf_tuple(x->a, t->n);
    if (!c) return NULL;
    memcpy(c->u.items, t->u.items, sizeof(T *) * t->n);
    c->u.items[i] = (T *)v;
    return c;
}

const T *fx_binary_string(fx *x, const T *anno, const uint8_t *bytes, size_t len) {
    /* {bin, A, [{bin_element, A, {string, A, Bytes}, default, default}]}; <<>> when empty */
    if (len == 0) return es_etf_tuple_of(x->a, 3, es_etf_atom(x->a, "bin"), (T *)anno, es_etf_nil(x->a));
    T *chars = es_etf_list(x->a, (uint32_t)len);
    if (!chars) return NULL;
    for (size_t i = 0; i < len; i++) chars->u.items[i] = es_etf_int(x->a, bytes[i]);
    const T *str = es_etf_tuple_of(x->a, 3, es_etf_atom(x->a, "string"), (T *)anno, chars);
    const T *el = es_etf_tuple_of(x->a, 5, es_etf_atom(x->a, "bin_element"), (T *)anno, (T *)str,
                                  es_etf_atom(x->a, "default"), es_etf_atom(x->a, "default"));
    return es_etf_tuple_of(x->a, 3, es_etf_atom(x->a, "bin"), (T *)anno, es_etf_list_of(x->a, 1, (T *)el));
}

/* ---------------- templates ---------------- */

#define HOLE_PREFIX "ES@HOLE_"

static const T *fill_rec(fx *x, const T *t, const T *anno, uint32_t n, const char *const *names,
                         const T *const *values, int depth) {
    if (!t || depth > 256) return NULL;
    if (t->kind == ES_ETF_ATOM) return es_etf_is_atom(t, "$es_anno") ? anno : t;
    if (t->kind == ES_ETF_TUPLE && t->n == 3 && es_etf_is_atom(t->u.items[0], "var") &&
        t->u.items[2]->kind == ES_ETF_ATOM && t->u.items[2]->n > strlen(HOLE_PREFIX) &&
        memcmp(t->u.items[2]->u.bytes, HOLE_PREFIX, strlen(HOLE_PREFIX)) == 0) {
        const T *name = t->u.items[2];
        size_t pl = strlen(HOLE_PREFIX);
        for (uint32_t i = 0; i < n; i++)
            if (strlen(names[i]) == name->n - pl && memcmp(names[i], name->u.bytes + pl, name->n - pl) == 0)
                return values[i];
        return NULL; /* a hole the caller did not fill: a template and this code disagree */
    }
    if (t->kind != ES_ETF_TUPLE && t->kind != ES_ETF_LIST) return t;
    uint32_t count = t->kind == ES_ETF_LIST ? t->n + 1 : t->n;
    T *c = t->kind == ES_ETF_LIST ? es_etf_list(x->a, t->n) : es_etf_tuple(x->a, t->n);
    if (!c) return NULL;
    for (uint32_t i = 0; i < count; i++) {
        const T *k = fill_rec(x, t->u.items[i], anno, n, names, values, depth + 1);
        if (!k) return NULL;
        c->u.items[i] = (T *)k;
    }
    return c;
}

const T *fx_fill(fx *x, const T *tpl, const T *anno, uint32_t n, const char *const *names,
                 const T *const *values) {
    for (uint32_t i = 0; i < n; i++)
        if (!values[i]) return NULL;
    return fill_rec(x, tpl, anno, n, names, values, 0);
}

/* ---------------- inspection ---------------- */

int fx_tag_is(const T *node, const char *tag) {
    return node && node->kind == ES_ETF_TUPLE && node->n >= 2 && es_etf_is_atom(node->u.items[0], tag);
}

static int64_t anno_line(const T *anno) {
    if (!anno) return 0;
    if (anno->kind == ES_ETF_INT) return anno->u.i;
    if (anno->kind == ES_ETF_TUPLE && anno->n == 2 && anno->u.items[0]->kind == ES_ETF_INT)
        return anno->u.items[0]->u.i; /* {Line, Column} */
    if (anno->kind == ES_ETF_LIST) {
        const T *loc = es_etf_get(anno, "location");
        if (loc) return anno_line(loc);
    }
    return 0;
}

int64_t fx_line_of(const T *node) {
    if (!node || node->kind != ES_ETF_TUPLE || node->n < 2) return 0;
    return anno_line(node->u.items[1]);
}

/* Elixir names its variables _name@N (an unused one __name@N, a compiler one _@N): the base is
 * what the user wrote. Returns 1 with base/len set for a user-visible name. */
int fx_var_base(const T *name, const uint8_t **base, size_t *len) {
    if (!name || name->kind != ES_ETF_ATOM || name->n < 3 || name->u.bytes[0] != '_') return 0;
    const uint8_t *p = name->u.bytes;
    size_t n = name->n, at = n;
    while (at > 0 && p[at - 1] != '@') at--;
    if (at < 2) return 0; /* no '@', or "_@N" */
    if (p[1] == '_') return 0; /* the user wrote _name: not meant to be seen */
    *base = p + 1;
    *len = at - 2;
    return *len > 0;
}

int fx_name_listed(const T *list_or_all, const uint8_t *name, size_t len) {
    if (!list_or_all) return 0;
    if (es_etf_is_atom(list_or_all, "all")) return 1;
    if (list_or_all->kind != ES_ETF_LIST) return 0;
    for (uint32_t i = 0; i < list_or_all->n; i++) {
        const T *e = list_or_all->u.items[i];
        if (e->kind == ES_ETF_ATOM && e->n == len && memcmp(e->u.bytes, name, len) == 0) return 1;
    }
    return 0;
}

int fx_is_secret(const fx *x, const uint8_t *base, size_t len) { return fx_name_listed(x->secrets, base, len); }

int fx_line_is_secret(const fx *x, int64_t line) {
    const T *l = x->secret_lines;
    if (!l || l->kind != ES_ETF_LIST) return 0;
    for (uint32_t i = 0; i < l->n; i++)
        if (l->u.items[i]->kind == ES_ETF_INT && l->u.items[i]->u.i == line) return 1;
    return 0;
}

/* A call that stays a tail call: any call but those to the erlang module (BIFs, whose
 * exceptions the frame records), erlang:apply excepted. */
int fx_is_tail_call(const T *e) {
    if (!fx_tag_is(e, "call") || e->n != 4) return 0;
    const T *fn = e->u.items[2];
    if (!(fx_tag_is(fn, "remote") && fn->n == 4 && fx_tag_is(fn->u.items[2], "atom") &&
          es_etf_is_atom(fn->u.items[2]->u.items[2], "erlang")))
        return 1;
    return fx_tag_is(fn->u.items[3], "atom") && es_etf_is_atom(fn->u.items[3]->u.items[2], "apply");
}

/* e is built only of the given leaves and data nodes (no call, no operator, no map update) */
static int built_of(const T *e, const char *const *leaves, const char *const *nodes, int depth) {
    if (depth > 64) return 0;
    if (e->kind == ES_ETF_LIST) {
        for (uint32_t i = 0; i <= e->n; i++)
            if (!built_of(e->u.items[i], leaves, nodes, depth + 1)) return 0;
        return 1;
    }
    if (e->kind != ES_ETF_TUPLE) return 1;
    for (int i = 0; leaves[i]; i++)
        if (fx_tag_is(e, leaves[i])) return 1;
    if (fx_tag_is(e, "map") && e->n != 3) return 0; /* a map update can raise */
    for (int i = 0; nodes[i]; i++)
        if (fx_tag_is(e, nodes[i])) {
            for (uint32_t k = 2; k < e->n; k++)
                if (!built_of(e->u.items[k], leaves, nodes, depth + 1)) return 0;
            return 1;
        }
    return 0;
}

/* No exception can come out of a body of variables, literals, and tuples, lists and maps built
 * of them (the markers of tail calls among them): such a body needs no try. */
int fx_cannot_raise(const T *body) {
    static const char *const leaves[] = {"var", "atom", "integer", "float", "char", "string", "nil", NULL};
    static const char *const nodes[] = {"cons", "tuple", "map", "map_field_assoc", NULL};
    if (!body || body->kind != ES_ETF_LIST) return 0;
    for (uint32_t i = 0; i < body->n; i++)
        if (!built_of(body->u.items[i], leaves, nodes, 0)) return 0;
    return 1;
}

/* A value built only of literals (a quote result, a constant tuple): nothing worth recording. */
int fx_is_constant(const T *e, int depth) {
    static const char *const leaves[] = {"atom", "integer", "float", "char", "string", "nil", NULL};
    static const char *const nodes[] = {"cons", "tuple", "map", "map_field_assoc", "bin", "bin_element", NULL};
    return built_of(e, leaves, nodes, depth);
}

/* ---------------- boundaries ---------------- */

/* The value a callback's state-before report captures: none | {arg, I} | {args, I, J} | {name, J}. */
static const T *state_before_expr(fx *x, const T *anno, const T *spec, const T *const *argv, uint32_t argc) {
    if (!spec || spec->kind != ES_ETF_TUPLE || spec->n < 2) return NULL;
    const T *tag = spec->u.items[0];
    int64_t i = spec->u.items[1]->kind == ES_ETF_INT ? spec->u.items[1]->u.i : 0;
    if (i < 1 || (uint64_t)i > argc) return NULL;
    if (es_etf_is_atom(tag, "arg") && spec->n == 2) return argv[i - 1];
    if (es_etf_is_atom(tag, "args") && spec->n == 3 && spec->u.items[2]->kind == ES_ETF_INT) {
        int64_t j = spec->u.items[2]->u.i;
        if (j < 1 || (uint64_t)j > argc) return NULL;
        const T *pair[2] = {argv[i - 1], argv[j - 1]};
        return fx_tuple_expr(x, anno, 2, pair);
    }
    if (es_etf_is_atom(tag, "name") && spec->n == 2) {
        const T *pair[2] = {es_etf_tuple_of(x->a, 3, es_etf_atom(x->a, "atom"), (T *)anno, (T *)x->fun->name),
                            argv[i - 1]};
        return fx_tuple_expr(x, anno, 2, pair);
    }
    return NULL;
}

static const T *catch_clause(fx *x, const T *anno, const T *call_var) {
    const T *k = fx_var(x, anno, "ES@kind"), *r = fx_var(x, anno, "ES@reason"), *st = fx_var(x, anno, "ES@stack");
    const T *kv[3] = {k, r, st};
    const char *names[4] = {"call", "kind", "reason", "stack"};
    const T *vals[4] = {call_var, k, r, st};
    const T *body = fx_fill(x, x->tpl.error, anno, 4, names, vals);
    if (!body) return NULL;
    const T *pat = fx_tuple_expr(x, anno, 3, kv);
    return fx_clause(x, anno, es_etf_list_of(x->a, 1, (T *)pat), es_etf_nil(x->a), es_etf_list_of(x->a, 1, (T *)body));
}

static const T *try_expr(fx *x, const T *anno, const T *body, const T *call_var) {
    if (fx_cannot_raise(body)) /* nothing to record: the body as a block */
        return es_etf_tuple_of(x->a, 3, es_etf_atom(x->a, "block"), (T *)anno, (T *)body);
    const T *cc = catch_clause(x, anno, call_var);
    if (!cc) return NULL;
    return es_etf_tuple_of(x->a, 6, es_etf_atom(x->a, "try"), (T *)anno, (T *)body, es_etf_nil(x->a),
                           es_etf_list_of(x->a, 1, (T *)cc), es_etf_nil(x->a));
}

/* the statements that end a call with value v: exit report, state after, v */
static int finish(fx *x, const T *anno, const T *call_var, const T *v, const T *state_kind, const T *before,
                  int64_t line, const T **out, uint32_t *n) {
    const T *ev[2] = {call_var, v};
    if (state_kind) {
        /* a callback's end reports the state it returned, then its return (the state belongs
         * inside the call: queries by call id look between the call and its end) */
        const char *sn[5] = {"call", "kind", "result", "before", "line"};
        const T *sv[5] = {call_var, es_etf_tuple_of(x->a, 3, es_etf_atom(x->a, "atom"), (T *)anno, (T *)state_kind),
                          v, before ? before : fx_atom_node(x, anno, "none"), fx_int(x, anno, line)};
        out[(*n)++] = fx_fill(x, x->tpl.callback_exit, anno, 5, sn, sv);
    } else {
        x->exit_used = 1;
        out[(*n)++] = fx_local_call(x, anno, FX_EXIT_HELPER, 2, ev);
    }
    out[(*n)++] = v;
    for (uint32_t i = 0; i < *n; i++)
        if (!out[i]) return -1;
    return 0;
}

/* Is a body copied, to run as written while capture is off? Not when the Erlang compiler makes
 * local functions of something in it (a fun, a local fun reference, a comprehension): it numbers
 * them in each function (-f/1-fun-0-, -f/1-fun-1-, ...), so a second copy would rename every one
 * after it (in stack traces, in Function.info/1). Not when it has more than *budget nodes: the
 * copy is compiled again, and a large body costs the compiler most while the few nanoseconds
 * saved matter least. Not when it is nested deeper than the C stack allows. The last child is
 * walked in a loop, so long lists (cons chains) cost no depth. */
static int copyable(const T *t, int depth, uint32_t *budget) {
    for (;;) {
        if (depth > FX_MAX_MESSAGE_DEPTH) return 0;
        if (t->kind != ES_ETF_TUPLE && t->kind != ES_ETF_LIST) return 1;
        if (t->kind == ES_ETF_TUPLE) {
            if (*budget == 0) return 0;
            (*budget)--;
            if (fx_tag_is(t, "named_fun") || fx_tag_is(t, "lc") || fx_tag_is(t, "bc") || fx_tag_is(t, "mc")) return 0;
            /* a remote reference (fun M:F/A) is built at run time; any other fun is a local function */
            if (fx_tag_is(t, "fun")) return t->n == 3 && fx_tag_is(t->u.items[2], "function") && t->u.items[2]->n == 4;
        }
        uint32_t count = t->kind == ES_ETF_LIST ? t->n + 1 : t->n;
        if (count == 0) return 1;
        for (uint32_t i = 0; i + 1 < count; i++)
            if (!copyable(t->u.items[i], depth + 1, budget)) return 0;
        t = t->u.items[count - 1];
    }
}

/* the expressions of a body as one expression */
static const T *as_expression(fx *x, const T *anno, const T *body) {
    if (body->n == 1) return body->u.items[0];
    return es_etf_tuple_of(x->a, 3, es_etf_atom(x->a, "block"), (T *)anno, (T *)body);
}

/* `case Switch:'on?'(Mod) of false -> Off; _ -> On end` (the switch template) */
static const T *switch_case(fx *x, const T *anno, const T *off, const T *on) {
    const char *names[3] = {"mod", "off", "on"};
    const T *vals[3] = {x->module, off, on};
    return fx_fill(x, x->tpl.switch_case, anno, 3, names, vals);
}

/* `case Id of nil -> nil; ES@id -> ES@id end`: the call id itself, as the value of a case whose
 * branches join right before the clause's try. OTP 25's ssa_opt_try relabels a try whose tag is
 * alone in its SSA block on every round of beam_ssa_opt's fixpoint loop, so the function never
 * reaches the fixpoint and is optimized 16 times instead of 1 or 2 (most of an instrumented
 * compile's time). The join's phi shares the block with the tag, so the try is left as it is.
 * Compiled with no_ssa_opt_try (the plan's try_join is false), the join is left out. */
static const T *call_id_join(fx *x, const T *anno, const T *id) {
    const T *nil = fx_atom_node(x, anno, "nil"), *v = fx_var(x, anno, "ES@id");
    const T *cs[2] = {fx_clause(x, anno, es_etf_list_of(x->a, 1, (T *)nil), es_etf_nil(x->a),
                                es_etf_list_of(x->a, 1, (T *)nil)),
                      fx_clause(x, anno, es_etf_list_of(x->a, 1, (T *)v), es_etf_nil(x->a),
                                es_etf_list_of(x->a, 1, (T *)v))};
    return fx_case(x, anno, id, fx_terms(x, cs, 2));
}

static const T *transform_clause(fx *x, const T *clause) {
    if (!fx_tag_is(clause, "clause") || clause->n != 5) return clause;
    const T *pats = clause->u.items[2], *guards = clause->u.items[3], *body = clause->u.items[4];
    if (!es_etf_is_proper_list(pats) || !es_etf_is_proper_list(body) || body->kind != ES_ETF_LIST) return clause;
    int64_t line = fx_line_of(clause);
    x->clause_line = line;
    const T *anno = fx_anno(x, line);
    uint32_t argc = es_etf_list_len(pats);
    T *new_pats = es_etf_list(x->a, argc);
    const T **argv = es_arena_alloc(x->a, sizeof(T *) * (argc ? argc : 1));
    const T **reported = es_arena_alloc(x->a, sizeof(T *) * (argc ? argc : 1));
    if (!new_pats || !argv || !reported) return NULL;
    for (uint32_t i = 0; i < argc; i++) {
        const T *p = pats->u.items[i];
        const uint8_t *base;
        size_t blen;
        if (fx_tag_is(p, "var") && p->n == 3 && !es_etf_is_atom(p->u.items[2], "_")) {
            new_pats->u.items[i] = (T *)p;
            argv[i] = p;
        } else { /* P = ES@argN: the pattern matches as before, and the whole argument is seen */
            const T *v = fx_var_n(x, anno, "ES@arg", i + 1);
            new_pats->u.items[i] = (T *)fx_match(x, p->kind == ES_ETF_TUPLE && p->n >= 2 ? p->u.items[1] : anno, p, v);
            argv[i] = v;
        }
        reported[i] = argv[i];
        if (fx_tag_is(p, "var") && p->n == 3 && fx_var_base(p->u.items[2], &base, &blen) && fx_is_secret(x, base, blen))
            reported[i] = x->redacted; /* a parameter named like a secret is never recorded */
    }
    const T *call_var = fx_var(x, anno, "ES@call");
    if (argc > 250) return NULL;
    const T **eargs = es_arena_alloc(x->a, sizeof(T *) * (argc + 2));
    if (!eargs) return NULL;
    eargs[0] = es_etf_tuple_of(x->a, 3, es_etf_atom(x->a, "atom"), (T *)anno, (T *)x->fun->name);
    eargs[1] = fx_int(x, anno, line);
    for (uint32_t i = 0; i < argc; i++) eargs[2 + i] = reported[i];
    /* The switch is asked once, first. With capture off a copied clause runs its body as it was
     * written, and the instrumented statements below run only with capture on; in a clause not
     * copied, the entry helper asks the switch and every report is skipped on its nil. */
    uint32_t budget = x->off_copy;
    int copy = budget > 0 && copyable(body, 0, &budget);
    if (copy)
        x->entry_used[argc] = 1;
    else
        x->switch_entry_used[argc] = 1;
    const T *entry = fx_local_call(x, anno, copy ? FX_ENTRY_HELPER : FX_SWITCH_ENTRY_HELPER, argc + 2, eargs);
    if (!entry) return NULL;

    const T *inner = fx_statements(x, body, call_var, pats);
    if (inner) inner = fx_messages(x, inner, call_var);
    if (!inner) return NULL;
    fx_sites sites = {0};
    x->clause_pats = pats;
    x->clause_body = inner;
    const T *tailed = x->fun->tail ? fx_tail_rewrite(x, inner, call_var, &sites) : inner;
    if (!tailed) return NULL;
    int joined = x->try_join && !fx_cannot_raise(sites.n == 0 ? inner : tailed); /* a try follows */

    /* reports before the body, in one call: an OTP callback's state and the message it takes */
    const T *pre = NULL;
    /* with reports between the entry and the try, the call id is joined after them */
    const T *entry_var = joined ? fx_var(x, anno, "ES@entry") : call_var;
    const T *state_kind = NULL, *before = NULL, *state_payload = NULL, *message_payload = NULL;
    const T *st = x->fun->state;
    if (st && st->kind == ES_ETF_TUPLE && st->n == 2 && st->u.items[0]->kind == ES_ETF_ATOM) {
        state_kind = st->u.items[0];
        before = state_before_expr(x, anno, st->u.items[1], reported, argc);
        if (before) {
            const char *bn[1] = {"state"};
            state_payload = fx_fill(x, x->tpl.state_before, anno, 1, bn, &before);
            if (!state_payload) return NULL;
        }
    }

    const T *rcv = x->fun->receive;
    if (rcv && rcv->kind == ES_ETF_TUPLE && rcv->n == 2 && rcv->u.items[1]->kind == ES_ETF_INT &&
        rcv->u.items[1]->u.i >= 1 && (uint64_t)rcv->u.items[1]->u.i <= argc) {
        message_payload = fx_callback_message(
            x, anno, es_etf_tuple_of(x->a, 3, es_etf_atom(x->a, "atom"), (T *)anno, rcv->u.items[0]),
            reported[rcv->u.items[1]->u.i - 1]);
        if (!message_payload) return NULL;
    }
    if (state_payload || message_payload) {
        const char *pn[4] = {"call", "line", "state", "msg"};
        const T *pv[4] = {entry_var, fx_int(x, anno, line), state_payload ? state_payload : fx_atom_node(x, anno, "nil"),
                          message_payload ? message_payload : fx_atom_node(x, anno, "nil")};
        pre = fx_fill(x, x->tpl.callback_pre, anno, 4, pn, pv);
        if (!pre) return NULL;
    }

    const T *stmts[8];
    uint32_t ns = 0;
    if (!joined) {
        stmts[ns++] = fx_match(x, anno, call_var, entry);
    } else if (!pre) {
        stmts[ns++] = fx_match(x, anno, call_var, call_id_join(x, anno, entry));
    } else {
        stmts[ns++] = fx_match(x, anno, entry_var, entry);
    }
    if (pre) stmts[ns++] = pre;
    if (joined && pre) stmts[ns++] = fx_match(x, anno, call_var, call_id_join(x, anno, entry_var));

    const T *result = fx_var(x, anno, "ES@result");
    if (sites.n == 0) {
        const T *tr = try_expr(x, anno, inner, call_var);
        if (!tr) return NULL;
        stmts[ns++] = fx_match(x, anno, result, tr);
        if (finish(x, anno, call_var, result, state_kind, before, line, stmts, &ns) < 0) return NULL;
    } else {
        const T *tr = try_expr(x, anno, tailed, call_var);
        const T *vk[2] = {fx_atom_node(x, anno, "$es_v"), result};
        const T *fin[8];
        uint32_t nf = 0;
        if (!tr || (sites.values && finish(x, anno, call_var, result, NULL, NULL, line, fin, &nf) < 0)) return NULL;
        /* the clause for values only when the body may return one */
        uint32_t first = sites.values ? 1 : 0;
        T *clauses = es_etf_list(x->a, sites.n + first);
        if (!clauses) return NULL;
        if (first)
            clauses->u.items[0] = (T *)fx_clause(x, anno, es_etf_list_of(x->a, 1, (T *)fx_tuple_expr(x, anno, 2, vk)),
                                                 es_etf_nil(x->a), fx_terms(x, fin, nf));
        for (uint32_t i = 0; i < sites.n; i++) clauses->u.items[i + first] = (T *)sites.clauses[i];
        stmts[ns++] = fx_case(x, anno, tr, clauses);
    }
    const T *new_body = fx_terms(x, stmts, ns);
    if (new_body && copy) {
        const T *sw = switch_case(x, anno, as_expression(x, anno, body), as_expression(x, anno, new_body));
        new_body = sw ? es_etf_list_of(x->a, 1, (T *)sw) : NULL;
    }
    if (!new_body) return NULL;
    return fx_clause(x, clause->u.items[1], new_pats, guards, new_body);
}

/* A clause that matches whatever it is given: variables only (or _), no guard. */
static int catches_all(const T *clause) {
    if (!fx_tag_is(clause, "clause") || clause->n != 5 || clause->u.items[3]->kind != ES_ETF_NIL) return 0;
    const T *pats = clause->u.items[2];
    for (uint32_t i = 0; i < es_etf_list_len(pats); i++)
        if (!fx_tag_is(pats->u.items[i], "var")) return 0;
    return 1;
}

/* When no clause matches, the plain function raises function_clause before any body runs. This
 * last clause records that attempted call (arguments and exception) and raises the same error
 * with the same stacktrace: its body is a tail call, so the helper's stack is the caller's. */
static const T *no_clause_clause(fx *x, const T *first) {
    int64_t line = fx_line_of(first);
    const T *anno = fx_anno(x, line);
    uint32_t argc = x->fun->arity;
    T *pats = es_etf_list(x->a, argc);
    const T **args = es_arena_alloc(x->a, sizeof(T *) * (argc ? argc : 1));
    if (!pats || !args) return NULL;
    for (uint32_t i = 0; i < argc; i++) {
        args[i] = fx_var_n(x, anno, "ES@arg", i + 1);
        pats->u.items[i] = (T *)args[i];
    }
    const T *file = x->file && es_etf_is_proper_list(x->file) ? x->file : es_etf_nil(x->a);
    const T *file_el[2] = {fx_atom_node(x, anno, "file"),
                           es_etf_tuple_of(x->a, 3, es_etf_atom(x->a, "string"), (T *)anno, (T *)file)};
    const T *line_el[2] = {fx_atom_node(x, anno, "line"), fx_int(x, anno, line)};
    const T *loc[2] = {fx_tuple_expr(x, anno, 2, file_el), fx_tuple_expr(x, anno, 2, line_el)};
    const char *names[4] = {"mod", "fun", "args", "location"};
    const T *vals[4] = {x->module, es_etf_tuple_of(x->a, 3, es_etf_atom(x->a, "atom"), (T *)anno, (T *)x->fun->name),
                        fx_list_expr(x, anno, argc, args), fx_list_expr(x, anno, 2, loc)};
    const T *body = fx_fill(x, x->tpl.no_clause, anno, 4, names, vals);
    if (!body) return NULL;
    return fx_clause(x, anno, pats, es_etf_nil(x->a), es_etf_list_of(x->a, 1, (T *)body));
}

static const T *transform_function(fx *x, const T *form) {
    /* {function, Anno, Name, Arity, Clauses} */
    const T *clauses = form->u.items[4];
    if (!es_etf_is_proper_list(clauses) || clauses->kind != ES_ETF_LIST) return form;
    /* a function without a line (code generated at compile time, e.g. a derived protocol
     * implementation) has a compiler-specific no-clause frame: it is left as it is */
    int add_catch_all = x->fun->no_clause && fx_line_of(clauses->u.items[0]) > 0 &&
                        !catches_all(clauses->u.items[clauses->n - 1]);
    T *out = es_etf_list(x->a, clauses->n + (add_catch_all ? 1 : 0));
    if (!out) return NULL;
    for (uint32_t i = 0; i < clauses->n; i++) {
        const T *c = transform_clause(x, clauses->u.items[i]);
        if (!c) return NULL;
        out->u.items[i] = (T *)c;
    }
    if (add_catch_all) {
        const T *c = no_clause_clause(x, clauses->u.items[0]);
        if (!c) return NULL;
        out->u.items[clauses->n] = (T *)c;
    }
    return es_etf_tuple_of(x->a, 5, form->u.items[0], form->u.items[1], form->u.items[2], form->u.items[3], out);
}

/* ---------------- the module's report helpers ---------------- */

static const T *helper_form(fx *x, const char *name, uint32_t n, const T *const *params, const T *body) {
    const T *anno = fx_anno(x, 0);
    const T *clause = fx_clause(x, anno, fx_terms(x, params, n), es_etf_nil(x->a), es_etf_list_of(x->a, 1, (T *)body));
    return es_etf_tuple_of(x->a, 5, es_etf_atom(x->a, "function"), (T *)anno, es_etf_atom(x->a, name),
                           es_etf_int(x->a, n), es_etf_list_of(x->a, 1, (T *)clause));
}

/* '-es-entry-'(Fun, Line, A1..An), '-es-exit-'(Call, Value), '-es-tail-'(Call, Mod, Fun, Line, A1..An),
 * '-es-switch-entry-'(Fun, Line, A1..An): the entry, exit and tail-call templates once, for the
 * arities the module's clauses use */
static int add_helpers(fx *x, const T ***forms, uint32_t *n, uint32_t *cap) {
    const T *anno = fx_anno(x, 0);
    const T *params[260];
    for (int pass = 0; pass < 4; pass++)
        for (uint32_t arity = 0; arity < 256; arity++) {
            const T *form = NULL;
            int asks = pass == 3;
            if ((pass == 0 && x->entry_used[arity]) || (asks && x->switch_entry_used[arity])) {
                const T *fun = fx_var(x, anno, "ES@fun"), *line = fx_var(x, anno, "ES@line");
                params[0] = fun;
                params[1] = line;
                for (uint32_t i = 0; i < arity; i++) params[2 + i] = fx_var_n(x, anno, "ES@a", i + 1);
                const char *names[4] = {"mod", "fun", "args", "line"};
                const T *vals[4] = {x->module, fun, fx_list_expr(x, anno, arity, params + 2), line};
                const T *body = fx_fill(x, x->tpl.entry, anno, 4, names, vals);
                if (asks) body = switch_case(x, anno, fx_atom_node(x, anno, "nil"), body);
                form = helper_form(x, asks ? FX_SWITCH_ENTRY_HELPER : FX_ENTRY_HELPER, arity + 2, params, body);
            } else if (pass == 1 && x->tail_used[arity]) {
                const T *call = fx_var(x, anno, "ES@call"), *mod = fx_var(x, anno, "ES@mod"),
                        *fun = fx_var(x, anno, "ES@fun"), *line = fx_var(x, anno, "ES@line");
                params[0] = call;
                params[1] = mod;
                params[2] = fun;
                params[3] = line;
                for (uint32_t i = 0; i < arity; i++) params[4 + i] = fx_var_n(x, anno, "ES@a", i + 1);
                const char *names[5] = {"call", "mod", "fun", "args", "line"};
                const T *vals[5] = {call, mod, fun, fx_list_expr(x, anno, arity, params + 4), line};
                form = helper_form(x, FX_TAIL_HELPER, arity + 4, params, fx_fill(x, x->tpl.tail, anno, 5, names, vals));
            } else if (pass == 2 && arity == 0 && x->exit_used) {
                params[0] = fx_var(x, anno, "ES@call");
                params[1] = fx_var(x, anno, "ES@value");
                const char *names[2] = {"call", "value"};
                form = helper_form(x, FX_EXIT_HELPER, 2, params, fx_fill(x, x->tpl.exit, anno, 2, names, params));
            } else {
                continue;
            }
            if (!form) return -1;
            if (*n == *cap) {
                uint32_t nc = *cap * 2 + 8;
                const T **nf = es_arena_alloc(x->a, sizeof(T *) * nc);
                if (!nf) return -1;
                memcpy(nf, *forms, sizeof(T *) * *n);
                *forms = nf;
                *cap = nc;
            }
            (*forms)[(*n)++] = form;
        }
    return 0;
}

/* ---------------- plan ---------------- */

static int decode_fun(const T *entry, fx_fun *f) {
    /* {Name, Arity, #{level, locals, exprs, tail, state, inject}} */
    /* an Erlang function takes at most 255 arguments: the clause for calls no clause matches
     * gets one parameter per argument, so a larger arity is refused, not built */
    if (!entry || entry->kind != ES_ETF_TUPLE || entry->n != 3 || entry->u.items[0]->kind != ES_ETF_ATOM ||
        entry->u.items[1]->kind != ES_ETF_INT || entry->u.items[1]->u.i < 0 || entry->u.items[1]->u.i > 255 ||
        entry->u.items[2]->kind != ES_ETF_MAP)
        return -1;
    const T *spec = entry->u.items[2], *level = es_etf_get(spec, "level");
    if (!level || level->kind != ES_ETF_INT || level->u.i < FX_NONE || level->u.i > FX_FULL) return -1;
    memset(f, 0, sizeof(*f));
    f->name = entry->u.items[0];
    f->arity = (uint32_t)entry->u.items[1]->u.i;
    f->level = (int)level->u.i;
    f->locals = es_etf_get(spec, "locals");
    f->exprs = es_etf_get(spec, "exprs");
    f->tail = es_etf_is_atom(es_etf_get(spec, "tail"), "true");
    f->state = es_etf_get(spec, "state");
    f->inject = es_etf_get(spec, "inject");
    f->receive = es_etf_get(spec, "receive");
    f->no_clause = !es_etf_is_atom(es_etf_get(spec, "no_clause"), "false");
    return 0;
}

static int decode_templates(const T *m, fx_templates *t) {
    if (!m || m->kind != ES_ETF_MAP) return -1;
    t->switch_case = es_etf_get(m, "switch");
    t->entry = es_etf_get(m, "entry");
    t->exit = es_etf_get(m, "exit");
    t->tail = es_etf_get(m, "tail");
    t->error = es_etf_get(m, "error");
    t->locals = es_etf_get(m, "locals");
    t->expr = es_etf_get(m, "expr");
    t->state_before = es_etf_get(m, "state_before");
    t->callback_message = es_etf_get(m, "callback_message");
    t->callback_pre = es_etf_get(m, "callback_pre");
    t->callback_exit = es_etf_get(m, "callback_exit");
    t->inject = es_etf_get(m, "inject");
    t->send = es_etf_get(m, "send");
    t->receive = es_etf_get(m, "receive");
    t->receive_start = es_etf_get(m, "receive_start");
    t->no_clause = es_etf_get(m, "no_clause");
    t->spawn = es_etf_get(m, "spawn");
    t->rpc = es_etf_get(m, "rpc");
    t->rpc_call = es_etf_get(m, "rpc_call");
    return t->switch_case && t->entry && t->exit && t->tail && t->error && t->locals && t->expr && t->state_before &&
                   t->callback_message && t->callback_pre && t->callback_exit && t->inject && t->send && t->receive &&
                   t->receive_start && t->no_clause &&
                   t->spawn && t->rpc && t->rpc_call
               ? 0
               : -1;
}

static const T *error_term(es_arena *a, const char *what, const T *detail) {
    return es_etf_tuple_of(a, 2, es_etf_atom(a, "error"),
                           detail ? es_etf_tuple_of(a, 2, es_etf_atom(a, what), (T *)detail) : es_etf_atom(a, what));
}

static const T *run(es_arena *a, const uint8_t *forms_etf, size_t forms_len, const uint8_t *plan_etf,
                    size_t plan_len) {
    T *forms = NULL, *plan = NULL;
    /* no depth limit but the input's size: decoding is iterative and every walk of the forms
     * is bounded (FX_MAX_TAIL_DEPTH, FX_MAX_BODY_DEPTH), so a deeply nested module is valid;
     * likewise the plan, whose injections' code is copied into the forms, never walked */
    if (es_etf_decode(a, forms_etf, forms_len, forms_len, &forms, NULL) != ES_ETF_OK || !es_etf_is_proper_list(forms))
        return a->failed ? NULL : error_term(a, "invalid_forms", NULL);
    if (es_etf_decode(a, plan_etf, plan_len, plan_len, &plan, NULL) != ES_ETF_OK || plan->kind != ES_ETF_MAP)
        return a->failed ? NULL : error_term(a, "invalid_plan", NULL);

    fx x;
    memset(&x, 0, sizeof(x));
    x.a = a;
    const T *mod = es_etf_get(plan, "module"), *funs = es_etf_get(plan, "functions");
    const T *source = es_etf_get(plan, "source"), *smax = es_etf_get(plan, "source_max");
    if (!mod || mod->kind != ES_ETF_ATOM || !funs || !es_etf_is_proper_list(funs) ||
        decode_templates(es_etf_get(plan, "templates"), &x.tpl) < 0)
        return error_term(a, "invalid_plan", NULL);
    const T *anno0 = fx_anno(&x, 0);
    x.module = es_etf_tuple_of(a, 3, es_etf_atom(a, "atom"), (T *)anno0, (T *)mod);
    x.redacted = fx_atom_node(&x, anno0, "[REDACTED]");
    if (source && source->kind == ES_ETF_BINARY) {
        x.source = source->u.bytes;
        x.source_len = source->n;
    }
    x.source_max = smax && smax->kind == ES_ETF_INT && smax->u.i > 0 ? (size_t)smax->u.i : 120;
    x.secrets = es_etf_get(plan, "secrets");
    x.secret_lines = es_etf_get(plan, "secret_lines");
    x.file = es_etf_get(plan, "file");
    x.try_join = !es_etf_is_atom(es_etf_get(plan, "try_join"), "false");
    const T *off_copy = es_etf_get(plan, "off_copy");
    x.off_copy = off_copy && off_copy->kind == ES_ETF_INT && off_copy->u.i > 0
                     ? (uint32_t)(off_copy->u.i < FX_MAX_COPY_NODES ? off_copy->u.i : FX_MAX_COPY_NODES)
                     : 0;

    uint32_t nf = es_etf_list_len(funs);
    fx_fun *specs = es_arena_alloc(a, sizeof(fx_fun) * (nf ? nf : 1));
    if (!specs) return NULL;
    for (uint32_t i = 0; i < nf; i++)
        if (decode_fun(funs->u.items[i], &specs[i]) < 0) return error_term(a, "invalid_plan", funs->u.items[i]);

    uint32_t n = es_etf_list_len(forms);
    uint32_t out_cap = n + 8, out_n = 0;
    const T **out = es_arena_alloc(a, sizeof(T *) * out_cap);
    if (!out) return NULL;
    uint32_t cursor = 0; /* the plan lists functions in the order of the forms */
    for (uint32_t i = 0; i < n; i++) {
        const T *form = forms->u.items[i];
        if (fx_tag_is(form, "eof")) continue; /* put back last, after the helpers */
        out[out_n++] = form;
        if (!fx_tag_is(form, "function") || form->n != 5 || form->u.items[2]->kind != ES_ETF_ATOM ||
            form->u.items[3]->kind != ES_ETF_INT)
            continue;
        const T *name = form->u.items[2];
        int64_t arity = form->u.items[3]->u.i;
        const fx_fun *spec = NULL;
        for (uint32_t k = 0; k < nf && !spec; k++) {
            const fx_fun *s = &specs[(cursor + k) % nf];
            if (s->arity == arity && s->name->n == name->n && memcmp(s->name->u.bytes, name->u.bytes, name->n) == 0) {
                spec = s;
                cursor = (uint32_t)((s - specs) + 1);
            }
        }
        if (!spec || spec->level == FX_NONE) continue;
        x.fun = spec;
        const T *t = transform_function(&x, form);
        if (!t) {
            if (a->failed) return NULL;
            return error_term(a, "cannot_instrument",
                              es_etf_tuple_of(a, 2, (T *)name, es_etf_int(a, arity)));
        }
        out[out_n - 1] = t;
    }
    if (add_helpers(&x, &out, &out_n, &out_cap) < 0)
        return a->failed ? NULL : error_term(a, "invalid_plan", es_etf_atom(a, "templates"));
    T *result = es_etf_list(a, out_n + 1);
    if (!result) return NULL;
    memcpy(result->u.items, out, sizeof(T *) * out_n);
    result->n = out_n;
    for (uint32_t i = 0; i < n; i++)
        if (fx_tag_is(forms->u.items[i], "eof")) result->u.items[result->n++] = forms->u.items[i];
    result->u.items[result->n] = es_etf_nil(a);
    return es_etf_tuple_of(a, 2, es_etf_atom(a, "ok"), result->n ? result : es_etf_nil(a));
}

int es_forms_transform_tree(const uint8_t *forms_etf, size_t forms_len, const uint8_t *plan_etf,
                            size_t plan_len, void *(*block_alloc)(size_t), void (*block_free)(void *),
                            es_forms_tree *out) {
    es_arena *a = malloc(sizeof(es_arena));
    if (!a) return -1;
    if (block_alloc)
        es_arena_init_with(a, block_alloc, block_free);
    else
        es_arena_init(a);
    const T *r = run(a, forms_etf, forms_len, plan_etf, plan_len);
    if (!r || a->failed) {
        es_arena_free(a);
        free(a);
        return -1;
    }
    out->arena = a;
    out->result = r;
    return 0;
}

void es_forms_tree_free(es_forms_tree *t) {
    if (t && t->arena) {
        es_arena_free(t->arena);
        free(t->arena);
        t->arena = NULL;
    }
}

int es_forms_transform(const uint8_t *forms_etf, size_t forms_len, const uint8_t *plan_etf, size_t plan_len,
                       uint8_t **out_etf, size_t *out_len) {
    es_forms_tree tree;
    if (es_forms_transform_tree(forms_etf, forms_len, plan_etf, plan_len, NULL, NULL, &tree) < 0) return -1;
    int rc = es_etf_encode(tree.result, out_etf, out_len) == ES_ETF_OK ? 0 : -1;
    es_forms_tree_free(&tree);
    return rc;
}
