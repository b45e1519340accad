/* The AST transformer: walks a quoted Elixir AST (decoded from ETF) and
 * injects instrumentation according to a normalized plan.
 *
 * Plan term (built by ElixirScope.AST.Plan.to_nif/2):
 *   %{version: 1,
 *     default: FnPlan, functions: [{name, arity, FnPlan}],
 *     genserver: :auto | true | false, var_context: atom,
 *     templates: %{entry:, exit:, tail:, error:, locals:, expr:, state_before:, state_after:, module:}}
 *   FnPlan = {level 0..4, locals :: :all | :none | [atom], exprs :: :all | :none | [atom],
 *             injections :: [{line, :before | :after, ast}]}
 * Templates are quoted ASTs with holes {:"$es_hole", [], name} that are
 * substituted here; the shapes of injected calls live in Elixir
 * (ElixirScope.AST.InjectorHelpers).
 *
 * Depth: the ETF decode/encode, validation, pattern scans and unquote scans are
 * iterative. The structural rewrite recurses only through module nesting
 * (bounded by ES_MAX_FORM_DEPTH, beyond which the result is {error, {too_deep, N}})
 * and through control structures in tail position (bounded by ES_MAX_TAIL_NEST,
 * beyond which the rest is left unchanged and treated as a plain value). */
#include "elixir_scope/ast_transform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elixir_scope/etf.h"

#define ES_MAX_FORM_DEPTH 64
#define ES_MAX_TAIL_NEST 96
#define ES_MAX_TEMPLATE_DEPTH 64
#define ES_ETF_DECODE_MAX_DEPTH (1u << 24)
#define ES_SOURCE_MAX 120

typedef es_etf_term T;

enum { L_NONE = 0, L_BOUNDARIES = 1, L_EXPRESSIONS = 2, L_LOCALS = 3, L_FULL = 4 };
enum { M_PLAIN = 0, M_WRAP = 1, M_TAIL = 2 };

typedef struct fnplan {
    int level;
    T *locals; /* :all | :none | [atom] */
    T *exprs;
    T *injections;
} fnplan;

typedef struct tctx {
    es_arena *a;
    fnplan deflt;
    T *functions;     /* [{name, arity, fnplan}] */
    uint8_t *fn_used; /* per plan function: matched a definition */
    uint32_t n_functions;
    int genserver; /* -1 auto */
    int macros;    /* instrument defmacro/defmacrop bodies too */
    T *var_ctx;
    T *tpl_entry, *tpl_exit, *tpl_tail, *tpl_error, *tpl_locals, *tpl_expr, *tpl_state_before, *tpl_state_after,
        *tpl_module, *tpl_tail_marker, *tpl_tail_require, *tpl_import_marker;
    T *error; /* the reason of {error, Reason} once failed */
    int nomem;
    struct {
        const char *key;
        T *atom;
    } acache[256]; /* atoms made from C literals, by address */
    struct {
        const char *key;
        T *var;
    } vcache[16];
} tctx;

typedef struct defn {
    T *name;
    uint32_t min_arity, max_arity;
} defn;

typedef struct mctx {
    defn *defs;
    size_t n_defs, cap_defs;
    int is_genserver;
    T *alias_full;  /* [atom] segments of the module name, or NULL */
    T *alias_short; /* segments as written in a nested defmodule, or NULL */
} mctx;

enum { SITE_LOCAL = 1, SITE_REMOTE = 2, SITE_IMPORT = 3, SITE_FUN = 4 };

typedef struct tail_site {
    int remote; /* a SITE_* kind */
    int literal_mod; /* remote: the module AST can be repeated after the try */
    T *meta;     /* meta of the original call */
    T *dot_meta; /* remote: meta of the dot */
    T *mod;      /* remote: the module AST */
    T *name;
    uint32_t nargs;
} tail_site;

typedef struct fctx {
    tctx *t;
    mctx *m;
    fnplan *plan;
    int instrument; /* boundaries (and locals/exprs) on */
    T *call_var;
    T *line; /* INT term */
    tail_site *sites;
    size_t n_sites, cap_sites;
    int tail_enabled;
    int needs_require; /* a remote tail marker was emitted */
    int has_alias;     /* the definition contains an alias form (lexical aliases inside the body) */
    int saw_tail;      /* a plain-mode pass met a call that could be a tail marker */
    int raw_values;    /* a value may leave the try unwrapped (with without else) */
} fctx;

/* ---------------------------------------------------------------- helpers */

#define OOM(tc) ((tc)->a->failed)

static T *atom(tctx *tc, const char *s) {
    size_t h = ((uintptr_t)s >> 3) & 255;
    for (size_t k = 0; k < 256; k++, h = (h + 1) & 255) {
        if (tc->acache[h].key == s) return tc->acache[h].atom;
        if (!tc->acache[h].key) {
            T *a = es_etf_atom(tc->a, s);
            if (a) {
                tc->acache[h].key = s;
                tc->acache[h].atom = a;
            }
            return a;
        }
    }
    return es_etf_atom(tc->a, s);
}

static int is_tuple(const T *e, uint32_t n) { return e && e->kind == ES_ETF_TUPLE && e->n == n; }
static T *el(const T *e, uint32_t i) { return e->u.items[i]; }
static int is_list(const T *e) { return e && (e->kind == ES_ETF_NIL || (e->kind == ES_ETF_LIST)); }
static int is_plist(const T *e) { return es_etf_is_proper_list(e); }
static uint32_t llen(const T *e) { return e->kind == ES_ETF_LIST ? e->n : 0; }
static T *lat(const T *e, uint32_t i) { return e->u.items[i]; }

/* {name, meta, args} with name an atom */
static int is_form(const T *e, const char *name) {
    return is_tuple(e, 3) && es_etf_is_atom(el(e, 0), name) && is_list(el(e, 1));
}
static int atom_eq(const T *x, const T *y) {
    return x && y && x->kind == ES_ETF_ATOM && y->kind == ES_ETF_ATOM && x->n == y->n &&
           memcmp(x->u.bytes, y->u.bytes, x->n) == 0;
}

static T *tup3(tctx *tc, T *a, T *b, T *c) { return es_etf_tuple_of(tc->a, 3, a, b, c); }
static T *tup2(tctx *tc, T *a, T *b) { return es_etf_tuple_of(tc->a, 2, a, b); }
static T *nil(tctx *tc) { return es_etf_nil(tc->a); }

static T *list_from(tctx *tc, T **items, size_t n) {
    T *l = es_etf_list(tc->a, (uint32_t)n);
    if (!l) return NULL;
    for (size_t i = 0; i < n; i++) l->u.items[i] = items[i];
    return l;
}

/* a growable array of terms */
typedef struct tvec {
    T **v;
    size_t n, cap;
} tvec;
static int tv_push(tctx *tc, tvec *tv, T *x) {
    if (!x) return -1;
    if (tv->n == tv->cap) {
        size_t nc = tv->cap ? tv->cap * 2 : 16;
        T **nv = es_arena_alloc(tc->a, nc * sizeof(T *));
        if (!nv) return -1;
        if (tv->n) memcpy(nv, tv->v, tv->n * sizeof(T *));
        tv->v = nv;
        tv->cap = nc;
    }
    tv->v[tv->n++] = x;
    return 0;
}

static T *gen_meta(tctx *tc) { return es_etf_list_of(tc->a, 1, tup2(tc, atom(tc, "generated"), atom(tc, "true"))); }

/* injected variables are immutable nodes: one per name (cached by the literal's address) */
static T *var(tctx *tc, const char *name) {
    for (size_t k = 0; k < 16 && tc->vcache[k].key; k++)
        if (tc->vcache[k].key == name) return tc->vcache[k].var;
    T *v = tup3(tc, atom(tc, name), nil(tc), tc->var_ctx);
    for (size_t k = 0; k < 16; k++)
        if (!tc->vcache[k].key) {
            tc->vcache[k].key = name;
            tc->vcache[k].var = v;
            break;
        }
    return v;
}

static T *var_n(tctx *tc, const char *prefix, unsigned i) {
    char *s = es_arena_alloc(tc->a, 32);
    if (!s) return NULL;
    snprintf(s, 32, "%s%u", prefix, i);
    return tup3(tc, es_etf_atom(tc->a, s), nil(tc), tc->var_ctx);
}

static T *match(tctx *tc, T *l, T *r) { return tup3(tc, atom(tc, "="), nil(tc), es_etf_list_of(tc->a, 2, l, r)); }

static int64_t meta_line(const T *e);
/* l = r, carrying the line of `at` (so errors raised by r keep their line) */
static T *match_at(tctx *tc, T *l, T *r, const T *at) {
    int64_t line = meta_line(at);
    T *meta = line >= 0 ? es_etf_list_of(tc->a, 1, tup2(tc, atom(tc, "line"), es_etf_int(tc->a, line))) : nil(tc);
    return tup3(tc, atom(tc, "="), meta, es_etf_list_of(tc->a, 2, l, r));
}

static T *block(tctx *tc, T **stmts, size_t n) {
    if (n == 1) return stmts[0];
    return tup3(tc, atom(tc, "__block__"), nil(tc), list_from(tc, stmts, n));
}

static T *gen_meta(tctx *tc);
static T *arrow(tctx *tc, T *lhs_list, T *body) {
    return tup3(tc, atom(tc, "->"), gen_meta(tc), es_etf_list_of(tc->a, 2, lhs_list, body));
}

static int64_t meta_line(const T *e) {
    if (!e || e->kind != ES_ETF_TUPLE || e->n != 3) return -1;
    T *m = el(e, 1);
    if (!is_list(m)) return -1;
    T *l = es_etf_get(m, "line");
    return (l && l->kind == ES_ETF_INT) ? l->u.i : -1;
}

static void set_error(tctx *tc, T *reason) {
    if (!tc->error) tc->error = reason;
}

/* ---------------------------------------------------------------- validation (iterative) */

typedef struct vframe {
    const T *t;
    uint32_t step;  /* next step */
    uint32_t child; /* index of the child being visited (for the path) */
} vframe;

static int raw_valid(const T *t) {
    uint8_t tag = t->u.bytes[0];
    return tag == 110 || tag == 111 || tag == 88 || tag == 103 || tag == 113 || tag == 99;
}

/* Returns 0 when valid; otherwise sets the error {invalid_ast, Path}. -1 on OOM. */
static int validate(tctx *tc, const T *root) {
    vframe *st = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    const T *cur = root;
    int bad = 0;
    uint32_t bad_extra = 0;
    int has_extra = 0;
    for (;;) {
        if (cur) {
            /* classify cur */
            int push = 0;
            switch (cur->kind) {
            case ES_ETF_ATOM:
            case ES_ETF_INT:
            case ES_ETF_FLOAT:
            case ES_ETF_BINARY:
            case ES_ETF_NIL:
                break;
            case ES_ETF_RAW:
                if (!raw_valid(cur)) bad = 1;
                break;
            case ES_ETF_MAP:
                bad = 1;
                break;
            case ES_ETF_LIST:
                if (cur->u.items[cur->n]->kind != ES_ETF_NIL) {
                    bad = 1;
                    has_extra = 1;
                    bad_extra = cur->n;
                } else {
                    push = 1;
                }
                break;
            case ES_ETF_TUPLE:
                if (cur->n == 2) {
                    push = 1;
                } else if (cur->n == 3) {
                    const T *m = el(cur, 1), *args = el(cur, 2);
                    if (!is_plist(m)) {
                        bad = 1;
                        has_extra = 1;
                        bad_extra = 1;
                    } else if (args->kind != ES_ETF_ATOM && !is_plist(args)) {
                        bad = 1;
                        has_extra = 1;
                        bad_extra = 2;
                    } else {
                        push = 1;
                    }
                } else {
                    bad = 1;
                }
                break;
            default:
                bad = 1;
            }
            if (bad) break;
            if (push) {
                if (n == cap) {
                    size_t nc = cap ? cap * 2 : 64;
                    vframe *nf = realloc(st, nc * sizeof(vframe));
                    if (!nf) {
                        rc = -1;
                        goto out;
                    }
                    st = nf;
                    cap = nc;
                }
                st[n].t = cur;
                st[n].step = 0;
                st[n].child = 0;
                n++;
            }
        }
        /* next child */
        cur = NULL;
        while (n > 0 && !cur) {
            vframe *f = &st[n - 1];
            const T *t = f->t;
            if (t->kind == ES_ETF_LIST) {
                if (f->step < t->n) {
                    f->child = f->step;
                    cur = t->u.items[f->step++];
                }
            } else if (t->n == 2) {
                if (f->step < 2) {
                    f->child = f->step;
                    cur = el(t, f->step++);
                }
            } else { /* 3-tuple: child 0 unless atom, then child 2 when a list */
                if (f->step == 0) {
                    f->step = 1;
                    if (el(t, 0)->kind != ES_ETF_ATOM) {
                        f->child = 0;
                        cur = el(t, 0);
                    }
                }
                if (!cur && f->step == 1) {
                    f->step = 2;
                    if (el(t, 2)->kind != ES_ETF_ATOM) {
                        f->child = 2;
                        cur = el(t, 2);
                    }
                }
            }
            if (!cur) n--;
        }
        if (!cur) break;
    }
    if (bad) {
        size_t plen = n + (has_extra ? 1 : 0);
        T *path = es_etf_list(tc->a, (uint32_t)plen);
        if (!path) {
            rc = -1;
            goto out;
        }
        for (size_t i = 0; i < n; i++) path->u.items[i] = es_etf_int(tc->a, st[i].child);
        if (has_extra) path->u.items[n] = es_etf_int(tc->a, bad_extra);
        set_error(tc, tup2(tc, atom(tc, "invalid_ast"), path));
        rc = 1;
    }
out:
    free(st);
    return rc;
}

/* ---------------------------------------------------------------- plan */

static int parse_fnplan(const T *t, fnplan *p) {
    if (!is_tuple(t, 4)) return -1;
    if (el(t, 0)->kind != ES_ETF_INT || el(t, 0)->u.i < 0 || el(t, 0)->u.i > 4) return -1;
    p->level = (int)el(t, 0)->u.i;
    p->locals = el(t, 1);
    p->exprs = el(t, 2);
    p->injections = el(t, 3);
    if (!(p->locals->kind == ES_ETF_ATOM || is_plist(p->locals))) return -1;
    if (!(p->exprs->kind == ES_ETF_ATOM || is_plist(p->exprs))) return -1;
    if (!is_plist(p->injections)) return -1;
    for (uint32_t i = 0; i < llen(p->injections); i++) {
        T *inj = lat(p->injections, i);
        if (!is_tuple(inj, 3) || el(inj, 0)->kind != ES_ETF_INT ||
            !(es_etf_is_atom(el(inj, 1), "before") || es_etf_is_atom(el(inj, 1), "after")))
            return -1;
    }
    return 0;
}

static int parse_plan(tctx *tc, const T *plan) {
    const char *what = "plan";
    if (!plan || plan->kind != ES_ETF_MAP) goto bad;
    what = "default";
    if (parse_fnplan(es_etf_get(plan, "default"), &tc->deflt) < 0) goto bad;
    what = "functions";
    tc->functions = es_etf_get(plan, "functions");
    if (!tc->functions || !is_plist(tc->functions)) goto bad;
    tc->n_functions = llen(tc->functions);
    tc->fn_used = es_arena_alloc(tc->a, tc->n_functions + 1);
    for (uint32_t i = 0; i < tc->n_functions; i++) {
        T *f = lat(tc->functions, i);
        fnplan tmp;
        if (!is_tuple(f, 3) || el(f, 0)->kind != ES_ETF_ATOM || el(f, 1)->kind != ES_ETF_INT ||
            parse_fnplan(el(f, 2), &tmp) < 0)
            goto bad;
    }
    what = "genserver";
    T *g = es_etf_get(plan, "genserver");
    if (es_etf_is_atom(g, "auto"))
        tc->genserver = -1;
    else if (es_etf_is_atom(g, "true"))
        tc->genserver = 1;
    else if (es_etf_is_atom(g, "false"))
        tc->genserver = 0;
    else
        goto bad;
    what = "macros";
    T *mac = es_etf_get(plan, "macros");
    if (!mac || es_etf_is_atom(mac, "false"))
        tc->macros = 0;
    else if (es_etf_is_atom(mac, "true"))
        tc->macros = 1;
    else
        goto bad;
    what = "var_context";
    tc->var_ctx = es_etf_get(plan, "var_context");
    if (!tc->var_ctx || tc->var_ctx->kind != ES_ETF_ATOM) goto bad;
    what = "templates";
    T *tp = es_etf_get(plan, "templates");
    if (!tp || tp->kind != ES_ETF_MAP) goto bad;
#define TPL(field, key)                          \
    what = "templates." key;                     \
    tc->field = es_etf_get(tp, key);             \
    if (!tc->field) goto bad;
    TPL(tpl_entry, "entry")
    TPL(tpl_exit, "exit")
    TPL(tpl_tail, "tail")
    TPL(tpl_error, "error")
    TPL(tpl_locals, "locals")
    TPL(tpl_expr, "expr")
    TPL(tpl_state_before, "state_before")
    TPL(tpl_state_after, "state_after")
    TPL(tpl_module, "module")
    TPL(tpl_tail_marker, "tail_marker")
    TPL(tpl_tail_require, "tail_require")
    TPL(tpl_import_marker, "import_marker")
#undef TPL
    return 0;
bad:
    set_error(tc, tup2(tc, atom(tc, "invalid_plan"), atom(tc, what)));
    return -1;
}

/* ---------------------------------------------------------------- templates */

typedef struct hole {
    const char *name;
    T *value;
} hole;

/* Fills the holes of a template. With linemeta ([line: L]), every call of the template that has
 * no metadata gets it (holes' values are left as they are). */
static T *subst(tctx *tc, T *tpl, const hole *holes, size_t nh, int depth, T *linemeta) {
    if (depth > ES_MAX_TEMPLATE_DEPTH) {
        set_error(tc, tup2(tc, atom(tc, "invalid_plan"), atom(tc, "template_too_deep")));
        return tpl;
    }
    if (is_tuple(tpl, 3) && es_etf_is_atom(el(tpl, 0), "$es_hole")) {
        for (size_t i = 0; i < nh; i++)
            if (es_etf_is_atom(el(tpl, 2), holes[i].name)) return holes[i].value;
        set_error(tc, tup2(tc, atom(tc, "invalid_plan"), atom(tc, "unknown_template_hole")));
        return tpl;
    }
    if (tpl->kind == ES_ETF_TUPLE || tpl->kind == ES_ETF_LIST) {
        uint32_t cnt = tpl->kind == ES_ETF_LIST ? tpl->n + 1 : tpl->n;
        T *c = NULL;
        /* calls only: local (atom head) or remote (dot-call head); not dots, clauses, blocks */
        int add_line = linemeta && tpl->kind == ES_ETF_TUPLE && tpl->n == 3 && tpl->u.items[1]->kind == ES_ETF_NIL &&
                       is_plist(tpl->u.items[2]) &&
                       (is_form(tpl->u.items[0], ".") ||
                        (tpl->u.items[0]->kind == ES_ETF_ATOM && !es_etf_is_atom(tpl->u.items[0], ".") &&
                         !es_etf_is_atom(tpl->u.items[0], "->") && !es_etf_is_atom(tpl->u.items[0], "__block__") &&
                         !es_etf_is_atom(tpl->u.items[0], "case")));
        for (uint32_t i = 0; i < cnt; i++) {
            T *x = (add_line && i == 1) ? linemeta : subst(tc, tpl->u.items[i], holes, nh, depth + 1, linemeta);
            if (x != tpl->u.items[i] && !c) {
                c = es_arena_alloc(tc->a, sizeof(T));
                if (!c) return tpl;
                *c = *tpl;
                c->u.items = es_arena_alloc(tc->a, sizeof(T *) * (cnt ? cnt : 1));
                if (!c->u.items) return tpl;
                memcpy(c->u.items, tpl->u.items, sizeof(T *) * cnt);
            }
            if (c) c->u.items[i] = x;
        }
        return c ? c : tpl;
    }
    return tpl;
}

/* ---------------------------------------------------------------- source rendering (bounded) */

typedef struct sbuf {
    char *d;
    size_t n, cap;
    int full;
} sbuf;

static void sput(sbuf *s, const char *p, size_t l) {
    if (s->full) return;
    if (s->n + l > s->cap) {
        size_t k = s->cap - s->n;
        memcpy(s->d + s->n, p, k);
        s->n += k;
        s->full = 1;
        return;
    }
    memcpy(s->d + s->n, p, l);
    s->n += l;
}
static void sputs(sbuf *s, const char *p) { sput(s, p, strlen(p)); }

static const char *const BINOPS[] = {"+",  "-",  "*",  "/",   "==", "!=", "===", "!==", "<",  ">",   "<=", ">=",
                                     "&&", "||", "and", "or", "<>", "++", "--",  "=",   "|>", "in",  "..", "::",
                                     "=~", "|",  "<-", "\\\\", "when", "//", NULL};

static int is_binop(const T *a) {
    for (int i = 0; BINOPS[i]; i++)
        if (es_etf_is_atom(a, BINOPS[i])) return 1;
    return 0;
}

static void render(sbuf *s, const T *e, int depth);

static void render_list(sbuf *s, const T *l, int depth) {
    for (uint32_t i = 0; i < llen(l) && !s->full; i++) {
        if (i) sputs(s, ", ");
        render(s, lat(l, i), depth + 1);
    }
}

static void render(sbuf *s, const T *e, int depth) {
    char tmp[64];
    if (s->full) return;
    if (depth > 24) {
        sputs(s, "...");
        return;
    }
    switch (e->kind) {
    case ES_ETF_ATOM:
        if (!(es_etf_is_atom(e, "nil") || es_etf_is_atom(e, "true") || es_etf_is_atom(e, "false"))) sputs(s, ":");
        sput(s, (const char *)e->u.bytes, e->n);
        return;
    case ES_ETF_INT:
        snprintf(tmp, sizeof tmp, "%lld", (long long)e->u.i);
        sputs(s, tmp);
        return;
    case ES_ETF_FLOAT:
        snprintf(tmp, sizeof tmp, "%g", e->u.f);
        sputs(s, tmp);
        return;
    case ES_ETF_BINARY:
        sputs(s, "\"");
        sput(s, (const char *)e->u.bytes, e->n);
        sputs(s, "\"");
        return;
    case ES_ETF_NIL:
        sputs(s, "[]");
        return;
    case ES_ETF_LIST:
        sputs(s, "[");
        render_list(s, e, depth);
        sputs(s, "]");
        return;
    case ES_ETF_TUPLE:
        if (e->n == 2) {
            sputs(s, "{");
            render(s, el(e, 0), depth + 1);
            sputs(s, ", ");
            render(s, el(e, 1), depth + 1);
            sputs(s, "}");
            return;
        }
        if (e->n == 3) {
            T *h = el(e, 0), *args = el(e, 2);
            if (h->kind == ES_ETF_ATOM && args->kind == ES_ETF_ATOM) { /* variable */
                sput(s, (const char *)h->u.bytes, h->n);
                return;
            }
            if (es_etf_is_atom(h, "__aliases__") && is_plist(args)) {
                for (uint32_t i = 0; i < llen(args); i++) {
                    if (i) sputs(s, ".");
                    T *seg = lat(args, i);
                    if (seg->kind == ES_ETF_ATOM)
                        sput(s, (const char *)seg->u.bytes, seg->n);
                    else
                        render(s, seg, depth + 1);
                }
                return;
            }
            if (es_etf_is_atom(h, "{}") && is_plist(args)) {
                sputs(s, "{");
                render_list(s, args, depth);
                sputs(s, "}");
                return;
            }
            if (h->kind == ES_ETF_ATOM && is_plist(args) && llen(args) == 2 && is_binop(h)) {
                render(s, lat(args, 0), depth + 1);
                sputs(s, " ");
                sput(s, (const char *)h->u.bytes, h->n);
                sputs(s, " ");
                render(s, lat(args, 1), depth + 1);
                return;
            }
            if (h->kind == ES_ETF_ATOM && is_plist(args) && llen(args) == 1 &&
                (es_etf_is_atom(h, "-") || es_etf_is_atom(h, "!") || es_etf_is_atom(h, "^") ||
                 es_etf_is_atom(h, "@") || es_etf_is_atom(h, "&"))) {
                sput(s, (const char *)h->u.bytes, h->n);
                render(s, lat(args, 0), depth + 1);
                return;
            }
            if (h->kind == ES_ETF_ATOM && is_plist(args)) {
                sput(s, (const char *)h->u.bytes, h->n);
                sputs(s, "(");
                render_list(s, args, depth);
                sputs(s, ")");
                return;
            }
            if (is_form(h, ".") && is_plist(args)) {
                T *dargs = el(h, 2);
                if (is_plist(dargs) && llen(dargs) == 2 && lat(dargs, 1)->kind == ES_ETF_ATOM) {
                    T *mod = lat(dargs, 0);
                    if (mod->kind == ES_ETF_ATOM) {
                        sputs(s, ":");
                        sput(s, (const char *)mod->u.bytes, mod->n);
                    } else {
                        render(s, mod, depth + 1);
                    }
                    sputs(s, ".");
                    sput(s, (const char *)lat(dargs, 1)->u.bytes, lat(dargs, 1)->n);
                    T *m = el(e, 1);
                    if (!(es_etf_get(m, "no_parens") && llen(args) == 0)) {
                        sputs(s, "(");
                        render_list(s, args, depth);
                        sputs(s, ")");
                    }
                    return;
                }
                if (is_plist(dargs) && llen(dargs) == 1) {
                    render(s, lat(dargs, 0), depth + 1);
                    sputs(s, ".(");
                    render_list(s, args, depth);
                    sputs(s, ")");
                    return;
                }
            }
        }
        sputs(s, "...");
        return;
    default:
        sputs(s, "...");
    }
}

static T *source_of(tctx *tc, const T *e) {
    char *d = es_arena_alloc(tc->a, ES_SOURCE_MAX + 4);
    if (!d) return NULL;
    sbuf s = {d, 0, ES_SOURCE_MAX, 0};
    render(&s, e, 0);
    if (s.full) {
        memcpy(d + s.n, "...", 3);
        s.n += 3;
    }
    return es_etf_binary(tc->a, (const uint8_t *)d, s.n);
}

/* ---------------------------------------------------------------- scans (iterative) */

/* Is there a form named n1 or n2 (outside quotes) in e? */
static int has_form(const T *e, const char *n1, const char *n2) {
    const T **st = NULL;
    size_t n = 0, cap = 0;
    int found = 0;
#define PUSH(x)                                                   \
    do {                                                          \
        if (n == cap) {                                           \
            size_t nc = cap ? cap * 2 : 64;                       \
            const T **ns = realloc(st, nc * sizeof(T *));         \
            if (!ns) {                                            \
                found = 1;                                        \
                goto out;                                         \
            }                                                     \
            st = ns;                                              \
            cap = nc;                                             \
        }                                                         \
        st[n++] = (x);                                            \
    } while (0)
    PUSH(e);
    while (n > 0) {
        const T *t = st[--n];
        if (t->kind == ES_ETF_TUPLE) {
            if (t->n == 3 && (es_etf_is_atom(el(t, 0), n1) || es_etf_is_atom(el(t, 0), n2))) {
                found = 1;
                break;
            }
            if (t->n == 3 && es_etf_is_atom(el(t, 0), "quote")) continue;
            for (uint32_t i = 0; i < t->n; i++) PUSH(t->u.items[i]);
        } else if (t->kind == ES_ETF_LIST) {
            for (uint32_t i = 0; i <= t->n; i++) PUSH(t->u.items[i]);
        }
    }
out:
    free(st);
    return found;
#undef PUSH
}

static int name_in(const T *name, const T *sel) {
    if (es_etf_is_atom(sel, "all")) return 1;
    if (!is_list(sel)) return 0;
    for (uint32_t i = 0; i < llen(sel); i++)
        if (atom_eq(lat(sel, i), name)) return 1;
    return 0;
}

/* Does the variable v (name and context) appear anywhere in stmts[0..n)? Iterative. */
static int var_occurs(const T *v, T *const *stmts, size_t n) {
    const T **st = NULL;
    size_t sn = 0, cap = 0;
    int found = 0;
    for (size_t k = 0; k < n && !found; k++) {
        sn = 0;
#define PUSHO(x)                                                  \
    do {                                                          \
        if (sn == cap) {                                          \
            size_t nc = cap ? cap * 2 : 64;                       \
            const T **ns = realloc(st, nc * sizeof(T *));         \
            if (!ns) {                                            \
                found = 1; /* conservative */                     \
                goto out;                                         \
            }                                                     \
            st = ns;                                              \
            cap = nc;                                             \
        }                                                         \
        st[sn++] = (x);                                           \
    } while (0)
        PUSHO(stmts[k]);
        while (sn > 0) {
            const T *t = st[--sn];
            if (t->kind == ES_ETF_TUPLE) {
                if (t->n == 3 && atom_eq(el(t, 0), el(v, 0)) && atom_eq(el(t, 2), el(v, 2))) {
                    found = 1;
                    break;
                }
                for (uint32_t i = 0; i < t->n; i++) PUSHO(t->u.items[i]);
            } else if (t->kind == ES_ETF_LIST) {
                for (uint32_t i = 0; i <= t->n; i++) PUSHO(t->u.items[i]);
            }
        }
#undef PUSHO
    }
out:
    free(st);
    return found;
}

/* Variables bound by a pattern, in order, unique, filtered by sel and by being read in rest[0..nrest)
 * (capturing a variable that is never read would hide the user's "unused variable" warning);
 * returns a keyword list AST or NULL when none. */
static T *pattern_vars(tctx *tc, const T *pat, const T *sel, T *const *rest, size_t nrest) {
    tvec out = {0};
    const T **st = NULL;
    size_t n = 0, cap = 0;
    int fail = 0;
#define PUSHV(x)                                                  \
    do {                                                          \
        if (n == cap) {                                           \
            size_t nc = cap ? cap * 2 : 64;                       \
            const T **ns = realloc(st, nc * sizeof(T *));         \
            if (!ns) {                                            \
                fail = 1;                                         \
                goto out;                                         \
            }                                                     \
            st = ns;                                              \
            cap = nc;                                             \
        }                                                         \
        st[n++] = (x);                                            \
    } while (0)
    PUSHV(pat);
    while (n > 0) {
        const T *t = st[--n];
        if (t->kind == ES_ETF_LIST) {
            for (uint32_t i = t->n + 1; i-- > 0;) PUSHV(t->u.items[i]);
        } else if (t->kind == ES_ETF_TUPLE && t->n == 2) {
            PUSHV(el(t, 1));
            PUSHV(el(t, 0));
        } else if (t->kind == ES_ETF_TUPLE && t->n == 3) {
            T *h = el(t, 0), *args = el(t, 2);
            if (h->kind == ES_ETF_ATOM && args->kind == ES_ETF_ATOM) {
                if (h->n == 0 || h->u.bytes[0] == '_') continue;
                if (!name_in(h, sel)) continue;
                if (!var_occurs(t, rest, nrest)) continue;
                int dup = 0;
                for (size_t i = 0; i < out.n; i++)
                    if (atom_eq(el(out.v[i], 0), h)) dup = 1;
                if (!dup && tv_push(tc, &out, tup2(tc, h, (T *)t)) < 0) {
                    fail = 1;
                    goto out;
                }
                continue;
            }
            if (es_etf_is_atom(h, "^") || es_etf_is_atom(h, "@") || es_etf_is_atom(h, "quote")) continue;
            if (!is_plist(args)) continue;
            if (es_etf_is_atom(h, "::") && llen(args) == 2) {
                PUSHV(lat(args, 0));
                continue;
            }
            if (h->kind != ES_ETF_ATOM) PUSHV(h);
            for (uint32_t i = llen(args); i-- > 0;) PUSHV(lat(args, i));
        }
    }
out:
    free(st);
#undef PUSHV
    if (fail || out.n == 0) return NULL;
    return list_from(tc, out.v, out.n);
}

/* ---------------------------------------------------------------- module scan */

static int add_def(tctx *tc, mctx *m, T *name, uint32_t mn, uint32_t mx) {
    (void)tc;
    if (m->n_defs == m->cap_defs) {
        size_t nc = m->cap_defs ? m->cap_defs * 2 : 64;
        defn *nd = realloc(m->defs, nc * sizeof(defn));
        if (!nd) return -1;
        m->defs = nd;
        m->cap_defs = nc;
    }
    m->defs[m->n_defs].name = name;
    m->defs[m->n_defs].min_arity = mn;
    m->defs[m->n_defs].max_arity = mx;
    m->n_defs++;
    return 0;
}

static int atom_cmp(const T *x, const T *y) {
    size_t l = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->u.bytes, y->u.bytes, l);
    if (c) return c;
    return x->n < y->n ? -1 : x->n > y->n ? 1 : 0;
}

static int defn_cmp(const void *a, const void *b) {
    return atom_cmp(((const defn *)a)->name, ((const defn *)b)->name);
}

static void sort_defs(mctx *m) {
    if (m->n_defs > 1) qsort(m->defs, m->n_defs, sizeof(defn), defn_cmp);
}

/* defs are sorted by name (sort_defs): binary search, then the run of equal names */
static int has_def(const mctx *m, const T *name, uint32_t arity) {
    if (!name || name->kind != ES_ETF_ATOM) return 0;
    size_t lo = 0, hi = m->n_defs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (atom_cmp(m->defs[mid].name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < m->n_defs && atom_eq(m->defs[i].name, name); i++)
        if (arity >= m->defs[i].min_arity && arity <= m->defs[i].max_arity) return 1;
    return 0;
}

/* Head of a def: unwraps `when`; returns the call {name, meta, args} or NULL. */
static T *def_call(T *head) {
    if (is_form(head, "when") && is_plist(el(head, 2)) && llen(el(head, 2)) == 2) head = lat(el(head, 2), 0);
    if (!is_tuple(head, 3) || el(head, 0)->kind != ES_ETF_ATOM) return NULL;
    T *args = el(head, 2);
    if (!(args->kind == ES_ETF_ATOM || is_plist(args))) return NULL;
    return head;
}

static void def_arity(const T *call, uint32_t *mn, uint32_t *mx) {
    T *args = el(call, 2);
    uint32_t n = args->kind == ES_ETF_ATOM ? 0 : llen(args), d = 0;
    for (uint32_t i = 0; i < n; i++)
        if (is_form(lat(args, i), "\\\\")) d++;
    *mn = n - d;
    *mx = n;
}

static int is_def_kind(const T *e, int with_delegate) {
    if (!is_tuple(e, 3) || !is_plist(el(e, 2)) || llen(el(e, 2)) < 1) return 0;
    T *h = el(e, 0);
    return es_etf_is_atom(h, "def") || es_etf_is_atom(h, "defp") ||
           (with_delegate && es_etf_is_atom(h, "defdelegate"));
}

static int is_genserver_marker(const T *e) {
    /* use GenServer[, opts] | @behaviour GenServer */
    if (is_form(e, "use") && is_plist(el(e, 2)) && llen(el(e, 2)) >= 1) {
        T *a = lat(el(e, 2), 0);
        return is_form(a, "__aliases__") && is_plist(el(a, 2)) && llen(el(a, 2)) == 1 &&
               es_etf_is_atom(lat(el(a, 2), 0), "GenServer");
    }
    if (is_form(e, "@") && is_plist(el(e, 2)) && llen(el(e, 2)) == 1) {
        T *b = lat(el(e, 2), 0);
        if (is_form(b, "behaviour") && is_plist(el(b, 2)) && llen(el(b, 2)) == 1) {
            T *a = lat(el(b, 2), 0);
            return is_form(a, "__aliases__") && is_plist(el(a, 2)) && llen(el(a, 2)) == 1 &&
                   es_etf_is_atom(lat(el(a, 2), 0), "GenServer");
        }
    }
    return 0;
}

/* Collects the defs of one module body (through __block__, not into nested modules). */
static int scan_module(tctx *tc, mctx *m, T *body) {
    T **st = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    if (!body) return 0;
#define PUSHS(x)                                                  \
    do {                                                          \
        if (n == cap) {                                           \
            size_t nc = cap ? cap * 2 : 64;                       \
            T **ns = realloc(st, nc * sizeof(T *));               \
            if (!ns) {                                            \
                rc = -1;                                          \
                goto out;                                         \
            }                                                     \
            st = ns;                                              \
            cap = nc;                                             \
        }                                                         \
        st[n++] = (x);                                            \
    } while (0)
    PUSHS(body);
    while (n > 0) {
        T *e = st[--n];
        if (is_form(e, "__block__") && is_plist(el(e, 2))) {
            for (uint32_t i = llen(el(e, 2)); i-- > 0;) PUSHS(lat(el(e, 2), i));
            continue;
        }
        if (is_genserver_marker(e)) m->is_genserver = 1;
        if (is_def_kind(e, 1)) {
            T *call = def_call(lat(el(e, 2), 0));
            if (!call) continue;
            uint32_t mn, mx;
            def_arity(call, &mn, &mx);
            if (add_def(tc, m, el(call, 0), mn, mx) < 0) {
                rc = -1;
                goto out;
            }
            for (uint32_t i = 0; i < tc->n_functions; i++) {
                T *f = lat(tc->functions, i);
                if (atom_eq(el(f, 0), el(call, 0)) && el(f, 1)->u.i >= mn && el(f, 1)->u.i <= mx)
                    tc->fn_used[i] = 1;
            }
        }
    }
out:
    free(st);
    sort_defs(m);
    return rc;
#undef PUSHS
}

/* ---------------------------------------------------------------- function rewrite */

/* A template with its holes filled; the call at its root gets the line (the "line" hole, else the
 * definition's line), so that the VM's "last line executed" (used for errors that carry no line of
 * their own, such as a bad receive timeout) is what it would be in the plain function. */
static T *hole_call(fctx *f, T *tpl, const hole *h, size_t nh) {
    tctx *tc = f->t;
    T *line = f->line;
    for (size_t i = 0; i < nh; i++)
        if (strcmp(h[i].name, "line") == 0 && h[i].value && h[i].value->kind == ES_ETF_INT) line = h[i].value;
    T *linemeta = es_etf_list_of(tc->a, 1, tup2(tc, atom(tc, "line"), line));
    return subst(tc, tpl, h, nh, 0, linemeta);
}

static T *wrap_value(fctx *f, T *e) { return tup2(f->t, atom(f->t, "$es_v"), e); }

static T *add_site(fctx *f, int remote, T *meta, T *dot_meta, T *mod, T *name, T *args) {
    tctx *tc = f->t;
    if (f->n_sites == f->cap_sites) {
        size_t nc = f->cap_sites ? f->cap_sites * 2 : 8;
        tail_site *ns = es_arena_alloc(tc->a, nc * sizeof(tail_site));
        if (!ns) return NULL;
        if (f->n_sites) memcpy(ns, f->sites, f->n_sites * sizeof(tail_site));
        f->sites = ns;
        f->cap_sites = nc;
    }
    uint32_t nargs = llen(args);
    tail_site *s = &f->sites[f->n_sites];
    s->remote = remote;
    s->meta = meta;
    s->dot_meta = dot_meta;
    s->mod = mod;
    s->name = name;
    s->nargs = nargs;
    s->literal_mod = 0;
    if (remote == SITE_REMOTE && !f->has_alias) {
        if (mod->kind == ES_ETF_ATOM) s->literal_mod = 1;
        if (is_form(mod, "__MODULE__") && el(mod, 2)->kind == ES_ETF_ATOM) s->literal_mod = 1;
        if (is_form(mod, "__aliases__") && is_plist(el(mod, 2)) && llen(el(mod, 2)) > 0) {
            T *first = lat(el(mod, 2), 0);
            s->literal_mod = first->kind == ES_ETF_ATOM || is_form(first, "__MODULE__");
        }
    }
    if (remote == SITE_IMPORT) {
        /* ElixirScope.AST.Tail.import_marker(index, fun(args)): an imported function, or else a value */
        hole h[] = {{"index", es_etf_int(tc->a, (int64_t)f->n_sites)}, {"call", tup3(tc, name, meta, args)}};
        f->n_sites++;
        f->needs_require = 1;
        return subst(tc, tc->tpl_import_marker, h, 2, 0, NULL);
    }
    if (remote == SITE_FUN) { /* {:"$es_tail", index, fun, args...} */
        T *elems = es_etf_list(tc->a, nargs + 3);
        if (!elems) return NULL;
        elems->u.items[0] = atom(tc, "$es_tail");
        elems->u.items[1] = es_etf_int(tc->a, (int64_t)f->n_sites);
        elems->u.items[2] = mod;
        for (uint32_t i = 0; i < nargs; i++) elems->u.items[3 + i] = lat(args, i);
        f->n_sites++;
        return tup3(tc, atom(tc, "{}"), nil(tc), elems);
    }
    if (remote == SITE_REMOTE) {
        /* ElixirScope.AST.Tail.marker(index, Mod.fun(args)): decided at expansion (function or macro) */
        T *dot = tup3(tc, atom(tc, "."), dot_meta, es_etf_list_of(tc->a, 2, mod, name));
        hole h[] = {{"index", es_etf_int(tc->a, (int64_t)f->n_sites)}, {"call", tup3(tc, dot, meta, args)}};
        f->n_sites++;
        f->needs_require = 1;
        return subst(tc, tc->tpl_tail_marker, h, 2, 0, NULL);
    }
    /* marker: {:{}, [], [:"$es_tail", index, args...]} */
    T *elems = es_etf_list(tc->a, nargs + 2);
    if (!elems) return NULL;
    elems->u.items[0] = atom(tc, "$es_tail");
    elems->u.items[1] = es_etf_int(tc->a, (int64_t)f->n_sites);
    for (uint32_t i = 0; i < nargs; i++) elems->u.items[2 + i] = lat(args, i);
    f->n_sites++;
    return tup3(tc, atom(tc, "{}"), nil(tc), elems);
}

/* Is e (with a piped first argument) a call that may become a tail marker? */
/* A local call that might be an imported function (decided at expansion): an identifier that is
 * not a special form or one of the forms the rewrite handles. */
static int maybe_import(const T *h) {
    /* special forms, and Kernel functions/macros (inlined or not tail-callable the same way) */
    static const char *const skip[] = {
        "quote", "unquote", "unquote_splicing", "super", "fn", "for", "import", "alias", "require", "use", "try",
        "receive", "case", "cond", "with", "if", "unless", "raise", "reraise", "throw", "exit", "length", "elem",
        "put_elem", "hd", "tl", "map_size", "tuple_size", "byte_size", "bit_size", "abs", "div", "rem", "round",
        "trunc", "max", "min", "not", "self", "node", "send", "spawn", "spawn_link", "spawn_monitor", "make_ref",
        "inspect", "to_string", "to_charlist", "binary_part", "is_atom", "is_binary", "is_bitstring",
        "is_boolean", "is_float", "is_function", "is_integer", "is_list", "is_map", "is_map_key", "is_nil",
        "is_number", "is_pid", "is_port", "is_reference", "is_tuple", "is_struct", "is_exception", "struct",
        "struct!", "get_in", "put_in", "update_in", "pop_in", "get_and_update_in", "then", "tap", "dbg",
        "match?", "sigil_r", "sigil_s", "sigil_S", "sigil_c", "sigil_w", "sigil_D", "sigil_T", "sigil_N",
        "sigil_U", "binding", "var!", "destructure", "defstruct", "defexception", "tl", NULL};
    if (h->n == 0) return 0;
    uint8_t c = h->u.bytes[0];
    if (!((c >= 'a' && c <= 'z') || c == '_')) return 0;
    if (c == '_' && h->n > 1 && h->u.bytes[1] == '_') return 0;
    for (int i = 0; skip[i]; i++)
        if (es_etf_is_atom(h, skip[i])) return 0;
    return 1;
}

/* Is e (with a piped first argument) a call that may become a tail marker? Returns its SITE_* kind or 0. */
static int tail_target(fctx *f, const T *e, int piped) {
    if (!is_tuple(e, 3) || !is_plist(el(e, 2))) return 0;
    T *h = el(e, 0);
    uint32_t arity = llen(el(e, 2)) + (piped ? 1 : 0);
    if (h->kind == ES_ETF_ATOM) {
        if (has_def(f->m, h, arity)) return SITE_LOCAL;
        return maybe_import(h) ? SITE_IMPORT : 0;
    }
    if (is_form(h, ".") && is_plist(el(h, 2)) && llen(el(h, 2)) == 2) {
        T *fname = lat(el(h, 2), 1);
        if (fname->kind != ES_ETF_ATOM) return 0;
        if (es_etf_get(el(e, 1), "no_parens")) return 0;
        return SITE_REMOTE;
    }
    if (is_form(h, ".") && is_plist(el(h, 2)) && llen(el(h, 2)) == 1) return SITE_FUN; /* f.(args) */
    return 0;
}

static int is_control(const T *e) {
    static const char *const forms[] = {"__block__", "if", "unless", "case", "cond", "receive", "with", "try", NULL};
    if (!is_tuple(e, 3) || !is_plist(el(e, 2))) return 0;
    for (int i = 0; forms[i]; i++)
        if (es_etf_is_atom(el(e, 0), forms[i])) return 1;
    return 0;
}

/* Would the last statement s be rewritten structurally (control structure or tail call)? */
static int tail_structural(fctx *f, const T *s, int mode) {
    if (is_control(s)) return 1;
    /* the plain pass must decide as the tail pass would (it detects whether a tail pass is needed) */
    if (mode == M_WRAP || !f->tail_enabled) return 0;
    if (tail_target(f, s, 0)) return 1;
    if (is_form(s, "|>") && is_plist(el(s, 2)) && llen(el(s, 2)) == 2 && tail_target(f, lat(el(s, 2), 1), 1))
        return 1;
    return 0;
}

/* A tail-position call that may become a marker: returns the marker or NULL. */
static T *try_tail_call(fctx *f, T *e, T *piped) {
    tctx *tc = f->t;
    if (!tail_target(f, e, piped != NULL)) return NULL;
    T *h = el(e, 0), *args = el(e, 2);
    if (piped) {
        T *na = es_etf_list(tc->a, llen(args) + 1);
        if (!na) return NULL;
        na->u.items[0] = piped;
        for (uint32_t i = 0; i < llen(args); i++) na->u.items[i + 1] = lat(args, i);
        args = na;
    }
    int kind = tail_target(f, e, piped != NULL);
    if (kind == SITE_LOCAL || kind == SITE_IMPORT) return add_site(f, kind, el(e, 1), NULL, NULL, h, args);
    if (kind == SITE_FUN) return add_site(f, kind, el(e, 1), el(h, 1), lat(el(h, 2), 0), NULL, args);
    return add_site(f, kind, el(e, 1), el(h, 1), lat(el(h, 2), 0), lat(el(h, 2), 1), args);
}

static T *process_body(fctx *f, T *body, int mode, int depth);

/* rewrite the bodies of a list of -> clauses */
static T *rw_clauses(fctx *f, T *clauses, int mode, int depth) {
    tctx *tc = f->t;
    if (!is_plist(clauses) || clauses->kind == ES_ETF_NIL) return NULL;
    T *out = es_etf_list(tc->a, llen(clauses));
    if (!out) return NULL;
    for (uint32_t i = 0; i < llen(clauses); i++) {
        T *c = lat(clauses, i);
        if (!is_form(c, "->") || !is_plist(el(c, 2)) || llen(el(c, 2)) != 2) return NULL;
        T *nb = process_body(f, lat(el(c, 2), 1), mode, depth + 1);
        if (!nb) return NULL;
        out->u.items[i] = tup3(tc, el(c, 0), el(c, 1), es_etf_list_of(tc->a, 2, lat(el(c, 2), 0), nb));
    }
    return out;
}

/* copies a keyword list replacing values; fn: 0 = body, 1 = clauses, 2 = keep */
static T *kw_put(tctx *tc, T *kw, const char *key, T *val) {
    uint32_t n = llen(kw);
    for (uint32_t i = 0; i < n; i++) {
        T *p = lat(kw, i);
        if (is_tuple(p, 2) && es_etf_is_atom(el(p, 0), key)) {
            T *c = es_etf_list(tc->a, n);
            if (!c) return NULL;
            for (uint32_t j = 0; j < n; j++) c->u.items[j] = lat(kw, j);
            c->u.items[i] = tup2(tc, el(p, 0), val);
            return c;
        }
    }
    T *c = es_etf_list(tc->a, n + 1);
    if (!c) return NULL;
    for (uint32_t j = 0; j < n; j++) c->u.items[j] = lat(kw, j);
    c->u.items[n] = tup2(tc, atom(tc, key), val);
    return c;
}

static int is_kw_with_do(const T *kw) {
    return kw && kw->kind == ES_ETF_LIST && is_plist(kw) && es_etf_get(kw, "do") != NULL;
}

static T *leaf(fctx *f, T *e, int mode) {
    if (mode == M_PLAIN) {
        if (f->tail_enabled && tail_target(f, e, 0)) f->saw_tail = 1;
        return e;
    }
    if (mode == M_TAIL) {
        T *m = try_tail_call(f, e, NULL);
        if (m) return m;
    }
    return wrap_value(f, e);
}

/* Rewrites the expression in tail position e for mode. Never returns NULL unless OOM. */
static T *tail_rw(fctx *f, T *e, int mode, int depth) {
    tctx *tc = f->t;
    if (depth > ES_MAX_TAIL_NEST) return mode == M_PLAIN ? e : wrap_value(f, e);
    if (!is_tuple(e, 3) || el(e, 0)->kind != ES_ETF_ATOM || !is_plist(el(e, 2))) return leaf(f, e, mode);
    T *h = el(e, 0), *meta = el(e, 1), *args = el(e, 2);
    uint32_t n = llen(args);

    if (es_etf_is_atom(h, "__block__") && n > 0) {
        T *b = process_body(f, e, mode, depth + 1);
        return b ? b : leaf(f, e, mode);
    }
    if ((es_etf_is_atom(h, "if") || es_etf_is_atom(h, "unless")) && n == 2 && is_kw_with_do(lat(args, 1))) {
        T *kw = lat(args, 1);
        T *nd = process_body(f, es_etf_get(kw, "do"), mode, depth + 1);
        T *ov = es_etf_get(kw, "else");
        T *ne = ov ? process_body(f, ov, mode, depth + 1) : (mode == M_PLAIN ? NULL : wrap_value(f, atom(tc, "nil")));
        T *nkw = kw_put(tc, kw, "do", nd);
        if (ne && nkw) nkw = kw_put(tc, nkw, "else", ne);
        if (!nkw) return NULL;
        return tup3(tc, h, meta, es_etf_list_of(tc->a, 2, lat(args, 0), nkw));
    }
    if ((es_etf_is_atom(h, "case") && n == 2 && is_kw_with_do(lat(args, 1))) ||
        (es_etf_is_atom(h, "cond") && n == 1 && is_kw_with_do(lat(args, 0))) ||
        (es_etf_is_atom(h, "receive") && n == 1 && is_kw_with_do(lat(args, 0)))) {
        T *kw = lat(args, n - 1);
        T *nkw = kw;
        T *dc = es_etf_get(kw, "do");
        size_t save = f->n_sites;
        if (dc->kind == ES_ETF_LIST) {
            T *nc = rw_clauses(f, dc, mode, depth);
            if (!nc) {
                f->n_sites = save;
                return leaf(f, e, mode);
            }
            nkw = kw_put(tc, nkw, "do", nc);
        } else if (!(es_etf_is_atom(h, "receive"))) {
            return leaf(f, e, mode);
        }
        T *ac = es_etf_get(kw, "after");
        if (ac && es_etf_is_atom(h, "receive")) {
            T *nc = rw_clauses(f, ac, mode, depth);
            if (!nc) {
                f->n_sites = save;
                return leaf(f, e, mode);
            }
            nkw = kw_put(tc, nkw, "after", nc);
        } else if (es_etf_is_atom(h, "receive") && dc->kind != ES_ETF_LIST) {
            return leaf(f, e, mode);
        }
        if (!nkw) return NULL;
        T *na = n == 2 ? es_etf_list_of(tc->a, 2, lat(args, 0), nkw) : es_etf_list_of(tc->a, 1, nkw);
        return tup3(tc, h, meta, na);
    }
    if (es_etf_is_atom(h, "with") && n >= 1 && is_kw_with_do(lat(args, n - 1))) {
        T *kw = lat(args, n - 1);
        size_t save = f->n_sites;
        T *nkw = kw_put(tc, kw, "do", process_body(f, es_etf_get(kw, "do"), mode, depth + 1));
        T *ec = es_etf_get(kw, "else");
        if (ec) {
            T *nc = rw_clauses(f, ec, mode, depth);
            if (!nc) {
                f->n_sites = save;
                return leaf(f, e, mode);
            }
            nkw = kw_put(tc, nkw, "else", nc);
        } else if (mode != M_PLAIN) {
            /* no else: a non-matching value leaves the with as it is (an else clause would make the
             * compiler warn when every clause always matches); the dispatch gets a catch-all clause */
            f->raw_values = 1;
        }
        if (!nkw) return NULL;
        T *na = es_etf_list(tc->a, n);
        if (!na) return NULL;
        for (uint32_t i = 0; i + 1 < n; i++) na->u.items[i] = lat(args, i);
        na->u.items[n - 1] = nkw;
        return tup3(tc, h, meta, na);
    }
    if (es_etf_is_atom(h, "try") && n == 1 && is_kw_with_do(lat(args, 0))) {
        T *kw = lat(args, 0);
        int has_after = es_etf_get(kw, "after") != NULL, has_else = es_etf_get(kw, "else") != NULL;
        int cmode = has_after && mode != M_PLAIN ? M_WRAP : mode;
        int dmode = has_else ? M_PLAIN : (mode == M_PLAIN ? M_PLAIN : M_WRAP);
        size_t save = f->n_sites;
        T *nkw = kw_put(tc, kw, "do", process_body(f, es_etf_get(kw, "do"), dmode, depth + 1));
        static const char *const keys[] = {"rescue", "catch", "else"};
        for (int k = 0; k < 3 && nkw; k++) {
            T *c = es_etf_get(kw, keys[k]);
            if (!c) continue;
            T *nc = rw_clauses(f, c, cmode, depth);
            if (!nc) {
                f->n_sites = save;
                return leaf(f, e, mode);
            }
            nkw = kw_put(tc, nkw, keys[k], nc);
        }
        if (!nkw) return NULL;
        return tup3(tc, h, meta, es_etf_list_of(tc->a, 1, nkw));
    }
    if (es_etf_is_atom(h, "|>") && n == 2 && mode == M_PLAIN && f->tail_enabled && tail_target(f, lat(args, 1), 1))
        f->saw_tail = 1;
    if (es_etf_is_atom(h, "|>") && n == 2 && mode == M_TAIL) {
        T *m = try_tail_call(f, lat(args, 1), lat(args, 0));
        if (m) return m;
    }
    return leaf(f, e, mode);
}

/* ---- statements */

static int is_directive(const T *e) {
    return is_form(e, "alias") || is_form(e, "import") || is_form(e, "require") || is_form(e, "use") ||
           is_form(e, "@");
}

static T *stmt_name(const T *e) {
    if (is_form(e, "=") && is_plist(el(e, 2)) && llen(el(e, 2)) == 2) {
        T *rhs = lat(el(e, 2), 1), *lhs = lat(el(e, 2), 0);
        T *n = stmt_name(rhs);
        if (n) return n;
        if (is_tuple(lhs, 3) && el(lhs, 0)->kind == ES_ETF_ATOM && el(lhs, 2)->kind == ES_ETF_ATOM) return el(lhs, 0);
        return NULL;
    }
    if (is_form(e, "|>") && is_plist(el(e, 2)) && llen(el(e, 2)) == 2) return stmt_name(lat(el(e, 2), 1));
    if (!is_tuple(e, 3)) return NULL;
    T *h = el(e, 0);
    if (h->kind == ES_ETF_ATOM) return h;
    if (is_form(h, ".") && is_plist(el(h, 2)) && llen(el(h, 2)) == 2 && lat(el(h, 2), 1)->kind == ES_ETF_ATOM)
        return lat(el(h, 2), 1);
    return NULL;
}

static T *line_of(fctx *f, const T *e) {
    int64_t l = meta_line(e);
    return l >= 0 ? es_etf_int(f->t->a, l) : f->line;
}

/* The line of a statement: its own, else the first line found in its first few subterms
 * (literal tuples and lists carry no metadata). Bounded breadth-first search. */
static int64_t stmt_line(const T *e) {
    const T *q[64];
    size_t head = 0, tail = 0;
    q[tail++] = e;
    while (head < tail) {
        const T *t = q[head++];
        int64_t l = meta_line(t);
        if (l >= 0) return l;
        uint32_t cnt = t->kind == ES_ETF_TUPLE ? t->n : t->kind == ES_ETF_LIST ? t->n : 0;
        for (uint32_t i = 0; i < cnt && tail < 64; i++) q[tail++] = t->u.items[i];
    }
    return -1;
}

static int push_injections(fctx *f, tvec *out, int64_t line, const char *where) {
    if (line < 0) return 0;
    T *inj = f->plan->injections;
    for (uint32_t i = 0; i < llen(inj); i++) {
        T *x = lat(inj, i);
        if (el(x, 0)->u.i == line && es_etf_is_atom(el(x, 1), where))
            if (tv_push(f->t, out, el(x, 2)) < 0) return -1;
    }
    return 0;
}

static int has_injection(fctx *f, int64_t line, const char *where) {
    if (line < 0) return 0;
    T *inj = f->plan->injections;
    for (uint32_t i = 0; i < llen(inj); i++) {
        T *x = lat(inj, i);
        if (el(x, 0)->u.i == line && es_etf_is_atom(el(x, 1), where)) return 1;
    }
    return 0;
}

/* Pushes the statement S with its tracing: returns 1 if S's value is now in es_expr (post-statements
 * were added), 0 if S was pushed unchanged (or not at all when last and untraced), -1 on OOM. */
static int push_traced(fctx *f, tvec *out, T *s, int last, int mode, T *const *rest, size_t nrest) {
    tctx *tc = f->t;
    int trace_expr = 0;
    T *locals = NULL;
    int64_t line = stmt_line(s);
    if (f->instrument && !is_directive(s)) {
        if (f->plan->level >= L_EXPRESSIONS || is_list(f->plan->exprs)) {
            T *nm = stmt_name(s);
            if (es_etf_is_atom(f->plan->exprs, "all") || (nm && name_in(nm, f->plan->exprs))) trace_expr = 1;
            /* a bare variable or literal is not worth an event */
            if (s->kind != ES_ETF_TUPLE && s->kind != ES_ETF_LIST) trace_expr = 0;
            if (is_tuple(s, 3) && el(s, 0)->kind == ES_ETF_ATOM && el(s, 2)->kind == ES_ETF_ATOM) trace_expr = 0;
            if (last && tail_structural(f, s, mode)) trace_expr = 0;
        }
        if (is_form(s, "=") && is_plist(el(s, 2)) && llen(el(s, 2)) == 2 && !es_etf_is_atom(f->plan->locals, "none"))
            locals = pattern_vars(tc, lat(el(s, 2), 0), f->plan->locals, rest, nrest);
    }
    int inj_after = has_injection(f, line, "after");
    if (!trace_expr && !locals && !inj_after) {
        if (!last && tv_push(tc, out, s) < 0) return -1;
        return 0;
    }
    T *ev = var(tc, "es_expr");
    if (trace_expr || (last && (locals || inj_after))) {
        if (tv_push(tc, out, match_at(tc, ev, s, s)) < 0) return -1;
    } else {
        if (tv_push(tc, out, s) < 0) return -1;
    }
    if (trace_expr) {
        hole h[] = {{"call", f->call_var}, {"source", source_of(tc, s)}, {"value", ev}, {"line", line_of(f, s)}};
        if (tv_push(tc, out, hole_call(f, tc->tpl_expr, h, 4)) < 0) return -1;
    }
    if (locals) {
        hole h[] = {{"call", f->call_var}, {"vars", locals}, {"line", line_of(f, s)}};
        if (tv_push(tc, out, hole_call(f, tc->tpl_locals, h, 3)) < 0) return -1;
    }
    if (push_injections(f, out, line, "after") < 0) return -1;
    return (trace_expr || last) ? 1 : 0;
}

/* Processes a body (block or single expression): statement tracing and injections, and the last
 * expression rewritten by tail_rw for mode. */
static T *process_body(fctx *f, T *body, int mode, int depth) {
    tctx *tc = f->t;
    if (!body) return NULL;
    T **stmts;
    uint32_t n;
    T *bmeta = NULL;
    T *one[1];
    if (is_form(body, "__block__") && is_plist(el(body, 2)) && llen(el(body, 2)) > 0) {
        stmts = el(body, 2)->u.items;
        n = llen(el(body, 2));
        bmeta = el(body, 1);
    } else {
        one[0] = body;
        stmts = one;
        n = 1;
    }
    tvec out = {0};
    for (uint32_t i = 0; i < n; i++) {
        T *s = stmts[i];
        int last = i + 1 == n;
        if (push_injections(f, &out, stmt_line(s), "before") < 0) return NULL;
        if (!last) {
            if (push_traced(f, &out, s, 0, mode, stmts + i + 1, n - i - 1) < 0) return NULL;
            continue;
        }
        int r = push_traced(f, &out, s, 1, mode, NULL, 0);
        if (r < 0) return NULL;
        T *final = r == 1 ? tail_rw(f, var(tc, "es_expr"), mode, depth + 1) : tail_rw(f, s, mode, depth + 1);
        if (tv_push(tc, &out, final) < 0) return NULL;
    }
    if (OOM(tc)) return NULL;
    if (out.n == 1) return out.v[0];
    return tup3(tc, atom(tc, "__block__"), bmeta ? bmeta : nil(tc), list_from(tc, out.v, out.n));
}

/* ---- clause */

static int genserver_state_arg(const T *name, uint32_t arity, int *has_after) {
    *has_after = 1;
    if (es_etf_is_atom(name, "init") && arity == 1) return -1;
    if (es_etf_is_atom(name, "handle_call") && arity == 3) return 2;
    if ((es_etf_is_atom(name, "handle_cast") || es_etf_is_atom(name, "handle_info") ||
         es_etf_is_atom(name, "handle_continue")) &&
        arity == 2)
        return 1;
    if (es_etf_is_atom(name, "terminate") && arity == 2) {
        *has_after = 0;
        return 1;
    }
    return -2;
}

static fnplan *plan_for(tctx *tc, T *name, uint32_t mn, uint32_t mx, fnplan *buf) {
    for (uint32_t i = 0; i < tc->n_functions; i++) {
        T *f = lat(tc->functions, i);
        if (atom_eq(el(f, 0), name) && el(f, 1)->u.i >= mn && el(f, 1)->u.i <= mx) {
            parse_fnplan(el(f, 2), buf);
            return buf;
        }
    }
    return &tc->deflt;
}

static T *instrument_def(tctx *tc, mctx *m, T *def) {
    T *dargs = el(def, 2);
    if (llen(dargs) != 2) return def; /* bodiless head */
    T *head = lat(dargs, 0), *kw = lat(dargs, 1);
    if (!is_kw_with_do(kw)) return def;
    T *call = def_call(head);
    if (!call) return def;
    if (has_form(def, "unquote", "unquote_splicing")) return def;
    uint32_t mn, mx;
    def_arity(call, &mn, &mx);
    fnplan pbuf;
    fnplan *plan = plan_for(tc, el(call, 0), mn, mx, &pbuf);
    if (plan->level == L_NONE && llen(plan->injections) == 0) return def;

    fctx f = {0};
    f.t = tc;
    f.m = m;
    f.plan = plan;
    f.instrument = plan->level >= L_BOUNDARIES;
    f.has_alias = has_form(def, "alias", "alias");
    int64_t line = meta_line(def);
    if (line < 0) line = meta_line(call);
    f.line = es_etf_int(tc->a, line < 0 ? 0 : line);
    f.call_var = f.instrument ? var(tc, "es_call") : atom(tc, "nil");

    /* the body: implicit try becomes an explicit try */
    T *body;
    if (llen(kw) == 1) {
        body = es_etf_get(kw, "do");
    } else {
        body = tup3(tc, atom(tc, "try"), el(def, 1), es_etf_list_of(tc->a, 1, kw));
    }

    if (!f.instrument) {
        T *nb = process_body(&f, body, M_PLAIN, 0);
        if (!nb) return NULL;
        T *nkw = es_etf_list_of(tc->a, 1, tup2(tc, atom(tc, "do"), nb));
        return tup3(tc, el(def, 0), el(def, 1), es_etf_list_of(tc->a, 2, head, nkw));
    }

    /* arguments: p -> p = es_argN (inside a default: (p = es_argN) \\ d) */
    T *cargs = el(call, 2);
    uint32_t arity = cargs->kind == ES_ETF_ATOM ? 0 : llen(cargs);
    T *argvars = es_etf_list(tc->a, arity);
    T *nargs = arity ? es_etf_list(tc->a, arity) : cargs;
    if (!argvars || !nargs) return NULL;
    for (uint32_t i = 0; i < arity; i++) {
        T *av = var_n(tc, "es_arg", i + 1);
        argvars->u.items[i] = av;
        T *p = lat(cargs, i);
        if (is_form(p, "\\\\") && is_plist(el(p, 2)) && llen(el(p, 2)) == 2) {
            T *inner = match(tc, lat(el(p, 2), 0), av);
            nargs->u.items[i] = tup3(tc, el(p, 0), el(p, 1), es_etf_list_of(tc->a, 2, inner, lat(el(p, 2), 1)));
        } else {
            nargs->u.items[i] = match(tc, p, av);
        }
    }
    if (!argvars || !nargs) return NULL;
    T *ncall = tup3(tc, el(call, 0), el(call, 1), nargs);
    T *nhead = ncall;
    if (is_form(head, "when")) nhead = tup3(tc, el(head, 0), el(head, 1), es_etf_list_of(tc->a, 2, ncall, lat(el(head, 2), 1)));

    /* GenServer callbacks */
    int gs = tc->genserver == -1 ? m->is_genserver : tc->genserver;
    int gs_after = 0, gs_arg = -2;
    if (gs && es_etf_is_atom(el(def, 0), "def")) gs_arg = genserver_state_arg(el(call, 0), arity, &gs_after);
    int is_callback = gs_arg != -2;

    int is_macro = !es_etf_is_atom(el(def, 0), "def") && !es_etf_is_atom(el(def, 0), "defp");
    f.tail_enabled = !is_callback && !is_macro; /* a macro's value is the AST it returns */
    /* the plain shape first (most functions); again with tail markers if a tail call was seen */
    int mode = M_PLAIN;
    T *nbody = process_body(&f, body, M_PLAIN, 0);
    if (!nbody) return NULL;
    if (f.tail_enabled && f.saw_tail) {
        f.n_sites = 0;
        f.needs_require = 0;
        f.raw_values = 0;
        T *tb = process_body(&f, body, M_TAIL, 0);
        if (!tb) return NULL;
        if (f.n_sites > 0) {
            nbody = tb;
            mode = M_TAIL;
        }
    }

    tvec out = {0};
    if (f.needs_require && tv_push(tc, &out, tc->tpl_tail_require) < 0) return NULL;
    hole he[] = {{"fun", el(call, 0)}, {"args", argvars}, {"line", f.line}};
    if (tv_push(tc, &out, match(tc, f.call_var, hole_call(&f, tc->tpl_entry, he, 3))) < 0) return NULL;
    if (is_callback && gs_arg >= 0) {
        hole hs[] = {{"call", f.call_var}, {"state", argvars->u.items[gs_arg]}, {"line", f.line}};
        if (tv_push(tc, &out, hole_call(&f, tc->tpl_state_before, hs, 3)) < 0) return NULL;
    }
    T *kind = var(tc, "es_kind"), *reason = var(tc, "es_reason");
    hole hr[] = {{"call", f.call_var}, {"kind", kind}, {"reason", reason}};
    T *catch_clause = arrow(tc, es_etf_list_of(tc->a, 2, kind, reason), hole_call(&f, tc->tpl_error, hr, 3));
    T *trykw = es_etf_list_of(tc->a, 2, tup2(tc, atom(tc, "do"), nbody),
                              tup2(tc, atom(tc, "catch"), es_etf_list_of(tc->a, 1, catch_clause)));
    T *trynode = tup3(tc, atom(tc, "try"), gen_meta(tc), es_etf_list_of(tc->a, 1, trykw));
    T *res = var(tc, "es_result");
    hole hx[] = {{"call", f.call_var}, {"value", res}};
    T *exit_call = hole_call(&f, tc->tpl_exit, hx, 2);
    T *state_after = NULL;
    if (is_callback && gs_after) {
        hole ha[] = {{"call", f.call_var}, {"result", res}, {"line", f.line}};
        state_after = hole_call(&f, tc->tpl_state_after, ha, 3);
    }
    if (mode == M_PLAIN) {
        if (tv_push(tc, &out, match(tc, res, trynode)) < 0) return NULL;
        if (tv_push(tc, &out, exit_call) < 0) return NULL;
        if (state_after && tv_push(tc, &out, state_after) < 0) return NULL;
        if (tv_push(tc, &out, res) < 0) return NULL;
    } else {
        T *clauses = es_etf_list(tc->a, (uint32_t)f.n_sites + 1 + (f.raw_values ? 1 : 0));
        if (!clauses) return NULL;
        if (f.raw_values) {
            T *raw = var(tc, "es_raw");
            hole hw[] = {{"call", f.call_var}, {"value", raw}};
            T *rstmts[2] = {hole_call(&f, tc->tpl_exit, hw, 2), raw};
            clauses->u.items[f.n_sites + 1] = arrow(tc, es_etf_list_of(tc->a, 1, raw), block(tc, rstmts, 2));
        }
        T *vstmts[2] = {exit_call, res};
        clauses->u.items[0] = arrow(tc, es_etf_list_of(tc->a, 1, wrap_value(&f, res)), block(tc, vstmts, 2));
        for (size_t i = 0; i < f.n_sites; i++) {
            tail_site *s = &f.sites[i];
            int has_mod = s->remote != SITE_LOCAL;
            uint32_t off = has_mod ? 3 : 2;
            T *pel = es_etf_list(tc->a, s->nargs + off);
            T *tvars = es_etf_list(tc->a, s->nargs);
            if (!pel || !tvars) return NULL;
            T *modvar = var(tc, "es_mod");
            pel->u.items[0] = atom(tc, "$es_tail");
            pel->u.items[1] = es_etf_int(tc->a, (int64_t)i);
            if (has_mod) pel->u.items[2] = s->literal_mod ? tup3(tc, atom(tc, "_"), nil(tc), tc->var_ctx) : modvar;
            for (uint32_t k = 0; k < s->nargs; k++) {
                T *tv = var_n(tc, "es_t", k + 1);
                pel->u.items[off + k] = tv;
                tvars->u.items[k] = tv;
            }
            T *pat = tup3(tc, atom(tc, "{}"), nil(tc), pel);
            T *mod = has_mod ? (s->literal_mod ? s->mod : modvar) : tc->tpl_module;
            int64_t cl = -1;
            T *lm = es_etf_get(s->meta, "line");
            if (lm && lm->kind == ES_ETF_INT) cl = lm->u.i;
            hole ht[] = {{"call", f.call_var},
                         {"mod", mod},
                         {"fun", s->name ? s->name : atom(tc, "nil")},
                         {"args", tvars},
                         {"line", cl >= 0 ? es_etf_int(tc->a, cl) : f.line}};
            T *report = hole_call(&f, tc->tpl_tail, ht, 5);
            T *real;
            if (s->remote == SITE_FUN) {
                T *dot = tup3(tc, atom(tc, "."), s->dot_meta, es_etf_list_of(tc->a, 1, mod));
                real = tup3(tc, dot, s->meta, tvars);
            } else if (s->remote == SITE_IMPORT) {
                T *dot = tup3(tc, atom(tc, "."), nil(tc), es_etf_list_of(tc->a, 2, mod, s->name));
                real = tup3(tc, dot, s->meta, tvars);
            } else if (s->remote == SITE_REMOTE) {
                T *dot = tup3(tc, atom(tc, "."), s->dot_meta, es_etf_list_of(tc->a, 2, mod, s->name));
                real = tup3(tc, dot, s->meta, tvars);
            } else {
                real = tup3(tc, s->name, s->meta, tvars);
            }
            T *tstmts[2] = {report, real};
            clauses->u.items[i + 1] = arrow(tc, es_etf_list_of(tc->a, 1, pat), block(tc, tstmts, 2));
        }
        T *casenode = tup3(tc, atom(tc, "case"), gen_meta(tc),
                           es_etf_list_of(tc->a, 2, trynode, es_etf_list_of(tc->a, 1, tup2(tc, atom(tc, "do"), clauses))));
        if (tv_push(tc, &out, casenode) < 0) return NULL;
    }
    if (OOM(tc)) return NULL;
    T *newbody = tup3(tc, atom(tc, "__block__"), nil(tc), list_from(tc, out.v, out.n));
    T *nkw = es_etf_list_of(tc->a, 1, tup2(tc, atom(tc, "do"), newbody));
    return tup3(tc, el(def, 0), el(def, 1), es_etf_list_of(tc->a, 2, nhead, nkw));
}

/* ---------------------------------------------------------------- module walk */

static T *alias_segments(tctx *tc, T *alias, T *outer) {
    if (!is_form(alias, "__aliases__") || !is_plist(el(alias, 2))) return NULL;
    T *segs = el(alias, 2);
    for (uint32_t i = 0; i < llen(segs); i++)
        if (lat(segs, i)->kind != ES_ETF_ATOM) return NULL;
    if (!outer) return segs;
    uint32_t a = llen(outer), b = llen(segs);
    T *l = es_etf_list(tc->a, a + b);
    if (!l) return NULL;
    for (uint32_t i = 0; i < a; i++) l->u.items[i] = lat(outer, i);
    for (uint32_t i = 0; i < b; i++) l->u.items[a + i] = lat(segs, i);
    return l;
}

static T *rewrite_forms(tctx *tc, mctx *m, T *e, int depth);

static T *rewrite_module(tctx *tc, mctx *outer, T *e, int depth) {
    T *args = el(e, 2);
    if (llen(args) != 2 || !is_kw_with_do(lat(args, 1))) return e;
    T *kw = lat(args, 1);
    mctx m = {0};
    m.alias_short = alias_segments(tc, lat(args, 0), NULL);
    m.alias_full = alias_segments(tc, lat(args, 0), outer ? outer->alias_full : NULL);
    T *body = es_etf_get(kw, "do");
    T *nb = NULL;
    if (scan_module(tc, &m, body) < 0) {
        tc->nomem = 1;
    } else {
        nb = rewrite_forms(tc, &m, body, depth + 1);
    }
    free(m.defs);
    if (!nb) return NULL;
    if (nb == body) return e;
    T *nkw = kw_put(tc, kw, "do", nb);
    return tup3(tc, el(e, 0), el(e, 1), es_etf_list_of(tc->a, 2, lat(args, 0), nkw));
}

static T *rewrite_forms(tctx *tc, mctx *m, T *e, int depth) {
    if (depth > ES_MAX_FORM_DEPTH) {
        set_error(tc, tup2(tc, atom(tc, "too_deep"), es_etf_int(tc->a, ES_MAX_FORM_DEPTH)));
        return e;
    }
    if (tc->error) return e;
    if (is_form(e, "__block__") && is_plist(el(e, 2)) && llen(el(e, 2)) > 0) {
        T *items = el(e, 2);
        T *ni = NULL;
        for (uint32_t i = 0; i < llen(items); i++) {
            T *x = rewrite_forms(tc, m, lat(items, i), depth + 1);
            if (!x) return NULL;
            if (x != lat(items, i) && !ni) {
                ni = es_etf_list(tc->a, llen(items));
                if (!ni) return NULL;
                for (uint32_t j = 0; j < llen(items); j++) ni->u.items[j] = lat(items, j);
            }
            if (ni) ni->u.items[i] = x;
        }
        return ni ? tup3(tc, el(e, 0), el(e, 1), ni) : e;
    }
    if (is_form(e, "defmodule") && is_plist(el(e, 2))) return rewrite_module(tc, m, e, depth);
    if (is_def_kind(e, 0)) return instrument_def(tc, m, e);
    if (tc->macros && is_tuple(e, 3) && (es_etf_is_atom(el(e, 0), "defmacro") || es_etf_is_atom(el(e, 0), "defmacrop")) &&
        is_plist(el(e, 2)) && llen(el(e, 2)) >= 1)
        return instrument_def(tc, m, e);
    return e;
}

/* ---------------------------------------------------------------- entry */


/* Runs the transformation in arena; *result is {ok, Ast} or {error, Reason}. -1 on OOM. */
static int transform_core(es_arena *arena, const uint8_t *ast_etf, size_t ast_len, const uint8_t *plan_etf,
                          size_t plan_len, T **result) {
    tctx *tcp = calloc(1, sizeof(tctx));
    if (!tcp) return -1;
    tctx *tc = tcp;
    tc->a = arena;
    T *ast = NULL, *plan = NULL;
    size_t off = 0;
    int rc = 0;
    *result = NULL;

    es_etf_status st = es_etf_decode(arena, plan_etf, plan_len, 64, &plan, &off);
    if (st == ES_ETF_ENOMEM) goto oom;
    if (st != ES_ETF_OK) {
        set_error(tc, tup2(tc, atom(tc, "invalid_plan"), atom(tc, "bad_etf")));
        goto error;
    }
    if (parse_plan(tc, plan) < 0) goto error;
    st = es_etf_decode(arena, ast_etf, ast_len, ES_ETF_DECODE_MAX_DEPTH, &ast, &off);
    if (st == ES_ETF_ENOMEM) goto oom;
    if (st == ES_ETF_ETOODEEP) {
        set_error(tc, tup2(tc, atom(tc, "too_deep"), es_etf_int(arena, ES_ETF_DECODE_MAX_DEPTH)));
        goto error;
    }
    if (st != ES_ETF_OK) {
        set_error(tc, tup2(tc, atom(tc, "bad_etf"), es_etf_int(arena, (int64_t)off)));
        goto error;
    }
    int v = validate(tc, ast);
    if (v < 0) goto oom;
    if (v > 0) goto error;

    mctx top = {0};
    if (scan_module(tc, &top, ast) < 0) {
        free(top.defs);
        goto oom;
    }
    T *nast = rewrite_forms(tc, &top, ast, 0);
    free(top.defs);
    if (tc->nomem || (!nast && !tc->error) || OOM(tc)) goto oom;
    if (tc->error) goto error;
    /* functions named by the plan but defined nowhere */
    tvec undef = {0};
    for (uint32_t i = 0; i < tc->n_functions; i++) {
        if (tc->fn_used[i]) continue;
        T *f = lat(tc->functions, i);
        if (tv_push(tc, &undef, tup2(tc, el(f, 0), el(f, 1))) < 0) goto oom;
    }
    if (undef.n) {
        set_error(tc, tup2(tc, atom(tc, "undefined_functions"), list_from(tc, undef.v, undef.n)));
        goto error;
    }
    *result = tup2(tc, atom(tc, "ok"), nast);
    if (!*result || OOM(tc)) goto oom;
    goto done;
error:
    *result = tup2(tc, atom(tc, "error"), tc->error ? tc->error : atom(tc, "unknown"));
    if (!*result || OOM(tc)) goto oom;
    goto done;
oom:
    rc = -1;
done:
    free(tcp);
    return rc;
}

int es_ast_transform(const uint8_t *ast_etf, size_t ast_len, const uint8_t *plan_etf, size_t plan_len,
                     es_ast_result *out) {
    es_arena arena;
    es_arena_init(&arena);
    out->etf = NULL;
    out->etf_len = 0;
    T *result = NULL;
    int rc = transform_core(&arena, ast_etf, ast_len, plan_etf, plan_len, &result);
    if (rc == 0 && es_etf_encode(result, &out->etf, &out->etf_len) != ES_ETF_OK) rc = -1;
    es_arena_free(&arena);
    return rc;
}

int es_ast_transform_tree(const uint8_t *ast_etf, size_t ast_len, const uint8_t *plan_etf, size_t plan_len,
                          void *(*block_alloc)(size_t), void (*block_free)(void *), es_ast_tree *out) {
    out->arena = NULL;
    out->result = NULL;
    es_arena *arena = malloc(sizeof(es_arena));
    if (!arena) return -1;
    es_arena_init_with(arena, block_alloc, block_free);
    T *result = NULL;
    if (transform_core(arena, ast_etf, ast_len, plan_etf, plan_len, &result) < 0) {
        es_arena_free(arena);
        free(arena);
        return -1;
    }
    out->arena = arena;
    out->result = result;
    return 0;
}

void es_ast_tree_free(es_ast_tree *t) {
    if (!t || !t->arena) return;
    es_arena_free(t->arena);
    free(t->arena);
    t->arena = NULL;
    t->result = NULL;
}

void es_ast_result_free(es_ast_result *r) {
    if (!r) return;
    free(r->etf);
    r->etf = NULL;
    r->etf_len = 0;
}
