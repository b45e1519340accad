/* The forms transformer, statements: at :expressions and up each statement of a body is recorded
 * with its value, line and source text; at :locals and up the variables each match binds are
 * recorded after it; custom injections run before or after the statement on their line. Nested
 * bodies (case, if, receive and try clauses, blocks) are walked too, never fun bodies or guards.
 * Values named like secrets (by variable name, or a source line naming one) are never recorded. */
#include <string.h>

#include "forms_internal.h"

/* variables bound so far on the way to a statement (head patterns, earlier matches) */
typedef struct bound {
    const T *var; /* {var, A, Name} */
    const struct bound *next;
} bound;

typedef struct walk {
    fx *x;
    const T *call_var;
    uint8_t *inject_used; /* one flag per injection: each runs at the first statement on its line */
} walk;

/* ---- variables of a pattern ---- */

static const bound *pattern_vars(fx *x, const T *p, const bound *acc, int depth) {
    if (!p || depth > 256) return acc;
    if (p->kind == ES_ETF_TUPLE) {
        if (fx_tag_is(p, "var") && p->n == 3) {
            bound *b = es_arena_alloc(x->a, sizeof(bound));
            if (!b) return acc;
            b->var = p;
            b->next = acc;
            return b;
        }
        /* atoms, integers, strings, chars, floats: no variables; skip the annotation (item 1) */
        for (uint32_t i = 2; i < p->n; i++) acc = pattern_vars(x, p->u.items[i], acc, depth + 1);
        return acc;
    }
    if (p->kind == ES_ETF_LIST)
        for (uint32_t i = 0; i <= p->n; i++) acc = pattern_vars(x, p->u.items[i], acc, depth + 1);
    return acc;
}

static const bound *clause_vars(fx *x, const T *clause, const bound *acc) {
    return fx_tag_is(clause, "clause") && clause->n == 5 ? pattern_vars(x, clause->u.items[2], acc, 0) : acc;
}

/* ---- source text ---- */

/* the trimmed text of line `line` of the source, cut at source_max bytes on a UTF-8 boundary */
static const T *source_text(fx *x, const T *anno, int64_t line) {
    const uint8_t *s = x->source, *end = x->source + x->source_len;
    if (!s || line < 1) return fx_binary_string(x, anno, NULL, 0);
    for (int64_t l = 1; l < line && s < end; l++) {
        const uint8_t *nl = memchr(s, '\n', (size_t)(end - s));
        s = nl ? nl + 1 : end;
    }
    const uint8_t *e = memchr(s, '\n', (size_t)(end - s));
    if (!e) e = end;
    while (s < e && (*s == ' ' || *s == '\t')) s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) e--;
    size_t n = (size_t)(e - s);
    if (n <= x->source_max) return fx_binary_string(x, anno, s, n);
    size_t cut = x->source_max;
    while (cut > 0 && (s[cut] & 0xC0) == 0x80) cut--;
    uint8_t *buf = es_arena_alloc(x->a, cut + 3);
    if (!buf) return NULL;
    memcpy(buf, s, cut);
    memcpy(buf + cut, "\xE2\x80\xA6", 3); /* … */
    return fx_binary_string(x, anno, buf, cut + 3);
}

/* ---- what a statement is ---- */

/* the first line found in e, preorder (0 when none within the body depth limit) */
static int64_t first_line(const T *e, int depth) {
    if (!e || depth > FX_MAX_BODY_DEPTH || (e->kind != ES_ETF_TUPLE && e->kind != ES_ETF_LIST)) return 0;
    int64_t l = e->kind == ES_ETF_TUPLE ? fx_line_of(e) : 0;
    uint32_t from = e->kind == ES_ETF_TUPLE ? 2 : 0, to = e->kind == ES_ETF_TUPLE ? e->n : e->n + 1;
    for (uint32_t i = from; l <= 0 && i < to; i++) l = first_line(e->u.items[i], depth + 1);
    return l;
}

/* A statement's line: its own, else (Elixir's 2-tuples and lists carry none) the first line
 * inside it, so its source text and injections are those of its line; else its clause's. */
static int64_t statement_line(const fx *x, const T *s) {
    int64_t l = first_line(s, 0);
    return l > 0 ? l : x->clause_line;
}

static int is_plain_value(const T *e) {
    static const char *const leaf[] = {"var", "atom", "integer", "float", "char", "string", "nil", NULL};
    for (int i = 0; leaf[i]; i++)
        if (fx_tag_is(e, leaf[i])) return 1;
    return 0;
}

static int is_control(const T *e) {
    return fx_tag_is(e, "case") || fx_tag_is(e, "if") || fx_tag_is(e, "receive") || fx_tag_is(e, "try") ||
           fx_tag_is(e, "block");
}

/* the name a trace_expressions list may select a statement by: its called function */
static int called_name(const T *e, const uint8_t **name, size_t *len) {
    if (!fx_tag_is(e, "call") || e->n != 4) return 0;
    const T *fn = e->u.items[2];
    if (fx_tag_is(fn, "remote") && fn->n == 4) fn = fn->u.items[3];
    if (!fx_tag_is(fn, "atom") || fn->n != 3) return 0;
    *name = fn->u.items[2]->u.bytes;
    *len = fn->u.items[2]->n;
    return 1;
}

static int expr_selected(fx *x, const T *stmt) {
    const T *sel = x->fun->exprs;
    if (!sel || es_etf_is_atom(sel, "none")) return 0;
    if (es_etf_is_atom(sel, "all")) return 1;
    const uint8_t *name;
    size_t len;
    const T *e = fx_tag_is(stmt, "match") && stmt->n == 4 ? stmt->u.items[3] : stmt;
    if (called_name(e, &name, &len) && fx_name_listed(sel, name, len)) return 1;
    if (fx_tag_is(stmt, "match") && stmt->n == 4)
        for (const bound *b = pattern_vars(x, stmt->u.items[2], NULL, 0); b; b = b->next)
            if (fx_var_base(b->var->u.items[2], &name, &len) && fx_name_listed(sel, name, len)) return 1;
    return 0;
}

/* ---- the reports ---- */

/* An expression that names a secret: a variable or an atom (a key, a field) whose name is one.
 * Its value, and the variables a match of it binds, are not recorded (the source line is not
 * always readable: code compiled from a string has none). */
static int names_secret(fx *x, const T *e, int depth) {
    if (!e || depth > 256) return 0;
    if (e->kind == ES_ETF_LIST) {
        for (uint32_t i = 0; i <= e->n; i++)
            if (names_secret(x, e->u.items[i], depth + 1)) return 1;
        return 0;
    }
    if (e->kind != ES_ETF_TUPLE || e->n < 2) return 0;
    const uint8_t *base;
    size_t len;
    if (fx_tag_is(e, "var") && e->n == 3) return fx_var_base(e->u.items[2], &base, &len) && fx_is_secret(x, base, len);
    if (fx_tag_is(e, "atom") && e->n == 3 && e->u.items[2]->kind == ES_ETF_ATOM)
        return fx_name_listed(x->secrets, e->u.items[2]->u.bytes, e->u.items[2]->n);
    if (fx_tag_is(e, "fun")) return 0; /* a fun's body runs elsewhere */
    for (uint32_t i = 2; i < e->n; i++)
        if (names_secret(x, e->u.items[i], depth + 1)) return 1;
    return 0;
}

static const T *expr_report(walk *w, const T *anno, int64_t line, const T *value_var, int secret) {
    fx *x = w->x;
    const char *names[4] = {"call", "source", "value", "line"};
    const T *vals[4] = {w->call_var, source_text(x, anno, line),
                        secret || fx_line_is_secret(x, line) ? x->redacted : value_var, fx_int(x, anno, line)};
    return fx_fill(x, x->tpl.expr, anno, 4, names, vals);
}

/* #{name => Var} of the given variables (the latest binding of each name), or NULL when none;
 * every value redacted when redact_all (variables bound on a line naming a secret) */
static const T *vars_map(fx *x, const T *anno, const bound *vars, const T *selection, int redact_all) {
    uint32_t n = 0;
    for (const bound *b = vars; b; b = b->next) n++;
    const T **fields = es_arena_alloc(x->a, sizeof(T *) * (n ? n : 1));
    const uint8_t **seen = es_arena_alloc(x->a, sizeof(uint8_t *) * (n ? n : 1));
    size_t *seen_len = es_arena_alloc(x->a, sizeof(size_t) * (n ? n : 1));
    if (!fields || !seen || !seen_len) return NULL;
    uint32_t k = 0;
    for (const bound *b = vars; b; b = b->next) {
        const uint8_t *base;
        size_t len;
        if (!fx_var_base(b->var->u.items[2], &base, &len) || !fx_name_listed(selection, base, len)) continue;
        int dup = 0;
        for (uint32_t i = 0; i < k && !dup; i++) dup = seen_len[i] == len && memcmp(seen[i], base, len) == 0;
        if (dup) continue;
        seen[k] = base;
        seen_len[k] = len;
        const T *key = es_etf_tuple_of(x->a, 3, es_etf_atom(x->a, "atom"), (T *)anno, es_etf_atom_n(x->a, base, len));
        const T *val = redact_all || fx_is_secret(x, base, len) ? x->redacted : b->var;
        fields[k++] = es_etf_tuple_of(x->a, 4, es_etf_atom(x->a, "map_field_assoc"), (T *)anno, (T *)key, (T *)val);
    }
    if (k == 0) return NULL;
    return es_etf_tuple_of(x->a, 3, es_etf_atom(x->a, "map"), (T *)anno, (T *)fx_terms(x, fields, k));
}

static const T *locals_report(walk *w, const T *anno, int64_t line, const bound *vars, int secret) {
    fx *x = w->x;
    const T *map = vars_map(x, anno, vars, x->fun->locals, secret || fx_line_is_secret(x, line));
    if (!map) return NULL; /* nothing to record (or no memory: the arena says) */
    const char *names[3] = {"call", "vars", "line"};
    const T *vals[3] = {w->call_var, map, fx_int(x, anno, line)};
    return fx_fill(x, x->tpl.locals, anno, 3, names, vals);
}

static int injection_matches(walk *w, uint32_t i, int64_t line, const char *side) {
    const T *e = w->x->fun->inject->u.items[i];
    return e->kind == ES_ETF_TUPLE && e->n == 4 && e->u.items[0]->kind == ES_ETF_INT && e->u.items[0]->u.i == line &&
           es_etf_is_atom(e->u.items[1], side) && !w->inject_used[2 * i + (side[0] == 'a')];
}

/* an injection of this line and side that has not run yet */
static int pending(walk *w, int64_t line, const char *side) {
    const T *inj = w->x->fun->inject;
    if (!inj || inj->kind != ES_ETF_LIST) return 0;
    for (uint32_t i = 0; i < inj->n; i++)
        if (injection_matches(w, i, line, side)) return 1;
    return 0;
}

/* {Line, before | after, Code, [VarBase]} injections of this line and side */
static int injections(walk *w, int64_t line, const char *side, const bound *visible, const T **out, uint32_t *n,
                      uint32_t max) {
    fx *x = w->x;
    const T *inj = x->fun->inject;
    if (!inj || inj->kind != ES_ETF_LIST) return 0;
    for (uint32_t i = 0; i < inj->n; i++) {
        const T *e = inj->u.items[i];
        if (!injection_matches(w, i, line, side)) continue;
        if (*n >= max) return -1;
        w->inject_used[2 * i + (side[0] == 'a')] = 1;
        const T *anno = fx_anno(x, line);
        const T *vars = vars_map(x, anno, visible, e->u.items[3], 0);
        if (!vars) vars = es_etf_tuple_of(x->a, 3, es_etf_atom(x->a, "map"), (T *)anno, es_etf_nil(x->a));
        const char *names[4] = {"call", "code", "vars", "line"};
        const T *vals[4] = {w->call_var, e->u.items[2], vars, fx_int(x, anno, line)};
        const T *r = fx_fill(x, x->tpl.inject, anno, 4, names, vals);
        if (!r) return -1;
        out[(*n)++] = r;
    }
    return 0;
}

/* ---- walking ---- */

static const T *walk_body(walk *w, const T *body, const bound *visible, int depth);

static const T *walk_clauses(walk *w, const T *clauses, const bound *visible, int depth) {
    if (!clauses || clauses->kind != ES_ETF_LIST) return clauses;
    T *nc = es_etf_list(w->x->a, clauses->n);
    if (!nc) return NULL;
    for (uint32_t i = 0; i < clauses->n; i++) {
        const T *c = clauses->u.items[i];
        if (!fx_tag_is(c, "clause") || c->n != 5) return clauses;
        const T *b = walk_body(w, c->u.items[4], clause_vars(w->x, c, visible), depth + 1);
        if (!b) return NULL;
        nc->u.items[i] = b == c->u.items[4] ? (T *)c
                                             : es_etf_tuple_of(w->x->a, 5, c->u.items[0], c->u.items[1],
                                                               c->u.items[2], c->u.items[3], (T *)b);
    }
    return nc;
}

/* the nested bodies of a control structure */
static const T *walk_nested(walk *w, const T *e, const bound *visible, int depth) {
    fx *x = w->x;
    if (fx_tag_is(e, "case") && e->n == 4) return fx_with(x, e, 3, walk_clauses(w, e->u.items[3], visible, depth));
    if (fx_tag_is(e, "if") && e->n == 3) return fx_with(x, e, 2, walk_clauses(w, e->u.items[2], visible, depth));
    if (fx_tag_is(e, "receive") && (e->n == 3 || e->n == 5)) {
        const T *r = fx_with(x, e, 2, walk_clauses(w, e->u.items[2], visible, depth));
        return r && e->n == 5 ? fx_with(x, r, 4, walk_body(w, e->u.items[4], visible, depth + 1)) : r;
    }
    if (fx_tag_is(e, "block") && e->n == 3) return fx_with(x, e, 2, walk_body(w, e->u.items[2], visible, depth + 1));
    if (fx_tag_is(e, "try") && e->n == 6) {
        const T *r = fx_with(x, e, 2, walk_body(w, e->u.items[2], visible, depth + 1));
        r = r ? fx_with(x, r, 3, walk_clauses(w, e->u.items[3], visible, depth)) : NULL;
        r = r ? fx_with(x, r, 4, walk_clauses(w, e->u.items[4], visible, depth)) : NULL;
        return r ? fx_with(x, r, 5, walk_body(w, e->u.items[5], visible, depth + 1)) : NULL;
    }
    if (fx_tag_is(e, "match") && e->n == 4 && is_control(e->u.items[3]))
        return fx_with(x, e, 3, walk_nested(w, e->u.items[3], visible, depth));
    return e;
}

#define MAX_AROUND 16

static const T *walk_body(walk *w, const T *body, const bound *visible, int depth) {
    fx *x = w->x;
    if (!body || body->kind != ES_ETF_LIST || !es_etf_is_proper_list(body) || depth > FX_MAX_BODY_DEPTH) return body;
    int exprs_on = x->fun->exprs && !es_etf_is_atom(x->fun->exprs, "none");
    int locals_on = x->fun->locals && !es_etf_is_atom(x->fun->locals, "none");
    uint32_t n = body->n, cap = n * 4 + 2 * MAX_AROUND, k = 0;
    const T **out = es_arena_alloc(x->a, sizeof(T *) * cap);
    if (!out) return NULL;
    int changed = 0;
    for (uint32_t i = 0; i < n; i++) {
        const T *s = walk_nested(w, body->u.items[i], visible, depth);
        if (!s) return NULL;
        if (s != body->u.items[i]) changed = 1;
        int last = i + 1 == n;
        int64_t line = statement_line(x, s);
        const T *anno = fx_anno(x, line);
        uint32_t before = k;
        if (injections(w, line, "before", visible, out, &k, cap) < 0) return NULL;
        int is_match = fx_tag_is(s, "match") && s->n == 4;
        const T *value = is_match ? s->u.items[3] : s;
        /* the value of a call in last position is the call's return (or its tail call) */
        int record = exprs_on && !is_plain_value(value) && !is_control(value) && !fx_is_constant(value, 0) &&
                     !(last && fx_is_tail_call(value)) && expr_selected(x, s);
        if (record) {
            const T *v = fx_var_n(x, anno, "ES@expr", ++x->counter);
            out[k++] = is_match ? fx_match(x, s->u.items[1], s->u.items[2], fx_match(x, anno, v, value))
                                : fx_match(x, anno, v, s);
            out[k++] = expr_report(w, anno, line, v, names_secret(x, value, 0));
            if (last) out[k++] = v;
        } else {
            out[k++] = s;
        }
        if (is_match) visible = pattern_vars(x, s->u.items[2], visible, 0);
        if (locals_on && is_match && !last) {
            const T *r = locals_report(w, anno, line, pattern_vars(x, s->u.items[2], NULL, 0), names_secret(x, value, 0));
            if (r) out[k++] = r;
            if (x->a->failed) return NULL;
        }
        if (!last) {
            if (injections(w, line, "after", visible, out, &k, cap) < 0) return NULL;
        } else if (!fx_is_tail_call(value) && pending(w, line, "after")) {
            /* after the last statement: its value is kept and returned after the injections
             * (never after a call, which must stay in tail position) */
            const T *v;
            if (record) {
                v = out[--k]; /* the value variable that recording appended */
            } else {
                v = fx_var_n(x, anno, "ES@expr", ++x->counter);
                out[k - 1] = fx_match(x, anno, v, out[k - 1]);
            }
            if (injections(w, line, "after", visible, out, &k, cap) < 0) return NULL;
            out[k++] = v;
        }
        if (k != before + 1) changed = 1;
        for (uint32_t j = before; j < k; j++)
            if (!out[j]) return NULL;
    }
    return changed ? fx_terms(x, out, k) : body;
}

const T *fx_statements(fx *x, const T *body, const T *call_var, const T *head_patterns) {
    uint32_t ninj = x->fun->inject && x->fun->inject->kind == ES_ETF_LIST ? x->fun->inject->n : 0;
    walk w = {x, call_var, es_arena_alloc(x->a, 2 * (ninj ? ninj : 1))};
    if (!w.inject_used) return NULL;
    return walk_body(&w, body, pattern_vars(x, head_patterns, NULL, 0), 0);
}
