/* Internal to the forms transformer (forms_transform.c, forms_tail.c, forms_body.c):
 * the per-module context, the plan of one function, and the node builders of Erlang's
 * abstract format. Pure C over the term tree of etf.h. */
#ifndef ELIXIR_SCOPE_FORMS_INTERNAL_H
#define ELIXIR_SCOPE_FORMS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "elixir_scope/etf.h"

typedef es_etf_term T;

/* Levels, in the plan's order. */
enum { FX_NONE = 0, FX_BOUNDARIES = 1, FX_EXPRESSIONS = 2, FX_LOCALS = 3, FX_FULL = 4 };

/* Control structures nested deeper than this in tail position stay values (correct, not tail). */
#define FX_MAX_TAIL_DEPTH 200
/* The plan's off_copy (the largest body copied for capture off) is at most this. */
#define FX_MAX_COPY_NODES 100000
/* Statement walks (locals, expressions) do not go deeper than this into nested bodies. */
#define FX_MAX_BODY_DEPTH 64
/* The message and spawn walk does not go deeper than this into one expression: the walk recurses,
 * and it runs on a dirty scheduler, whose stack (320 KB by default) holds about 800 of its frames. */
#define FX_MAX_MESSAGE_DEPTH 256

/* The injected shapes (Erlang abstract expressions with holes), from the plan. */
typedef struct fx_templates {
    const T *switch_case, *entry, *exit, *tail, *error, *locals, *expr, *inject;
    /* an OTP callback's reports: the payloads of its state before and of the message it takes,
     * both reported by callback_pre; its state after and return, by callback_exit */
    const T *state_before, *callback_message, *callback_pre, *callback_exit;
    const T *send, *receive, *receive_start, *no_clause, *spawn, *rpc, *rpc_call;
} fx_templates;

/* What one function gets. */
typedef struct fx_fun {
    int level;
    const T *locals;   /* the atom 'all' or a list of base-name atoms */
    const T *exprs;    /* likewise */
    int tail;          /* tail calls are rewritten (not for callbacks whose value is needed) */
    const T *state;    /* 'none' or {Kind, Before} where Before is none | {arg, I} | {args, I, J} | {name, I} */
    const T *inject;   /* list of {Line, before | after, InjectionFun, [VarBase]} */
    const T *receive;  /* 'none' or {Kind, ArgIndex}: an OTP callback taking a message */
    int no_clause;     /* add the clause that records a call no clause matches */
    const T *name;     /* the function's name atom node */
    uint32_t arity;
} fx_fun;

typedef struct fx {
    es_arena *a;
    const T *module;       /* {atom, Anno, Module} node */
    fx_templates tpl;
    const uint8_t *source; /* the source file's text (may be NULL) */
    size_t source_len;
    size_t source_max;     /* at most this many bytes of a statement's text */
    const T *secrets;      /* list of base-name atoms whose values are redacted */
    const T *secret_lines; /* list of lines whose source names a secret */
    const T *file;         /* the module's file as the compiler names it (a charlist) */
    const T *redacted;     /* the atom node '[REDACTED]' */
    uint32_t counter;      /* fresh variable numbers */
    const fx_fun *fun;     /* the function being transformed */
    int64_t clause_line;   /* the line of the clause being transformed (for nodes without one) */
    uint8_t entry_used[256], switch_entry_used[256], tail_used[256], exit_used; /* the local report helpers the module needs */
    const T *clause_pats;  /* its patterns and (instrumented) body, for the free variables of funs */
    const T *clause_body;
    int try_join;          /* the call id joins right before each try (forms_transform.c, call_id_join) */
    uint32_t off_copy;     /* bodies of at most this many nodes are copied for capture off (0: none) */
} fx;

/* ---- node builders (every injected node has a generated annotation) ---- */
const T *fx_anno(fx *x, int64_t line);
const T *fx_atom(fx *x, const char *name);
const T *fx_atom_node(fx *x, const T *anno, const char *name);
const T *fx_var(fx *x, const T *anno, const char *name);
const T *fx_var_n(fx *x, const T *anno, const char *prefix, uint32_t n);
const T *fx_int(fx *x, const T *anno, int64_t v);
const T *fx_tuple_expr(fx *x, const T *anno, uint32_t n, const T *const *elems);
const T *fx_list_expr(fx *x, const T *anno, uint32_t n, const T *const *elems);
const T *fx_match(fx *x, const T *anno, const T *pattern, const T *expr);
const T *fx_clause(fx *x, const T *anno, const T *patterns, const T *guards, const T *body);
const T *fx_case(fx *x, const T *anno, const T *expr, const T *clauses);
const T *fx_binary_string(fx *x, const T *anno, const uint8_t *bytes, size_t len);
T *fx_list(fx *x, uint32_t n); /* a proper term list of n slots */
const T *fx_terms(fx *x, const T *const *items, uint32_t n); /* a term list of items */
const T *fx_with(fx *x, const T *t, uint32_t i, const T *v); /* tuple t with element i replaced */

/* A template with its holes filled: names[i] (without the "ES@HOLE_" prefix) -> values[i];
 * every '$es_anno' becomes anno. */
const T *fx_fill(fx *x, const T *tpl, const T *anno, uint32_t n, const char *const *names,
                 const T *const *values);

/* A call to the module's local report helper name/arity (the shapes the helpers share are
 * built once per module, so each clause carries one local call instead of the report code). */
const T *fx_local_call(fx *x, const T *anno, const char *name, uint32_t n, const T *const *args);
#define FX_ENTRY_HELPER "-es-entry-" /* (Fun, Line, Args...) -> call id | nil; the switch said on */
#define FX_SWITCH_ENTRY_HELPER "-es-switch-entry-" /* the same, asking the switch first (nil when off) */
#define FX_EXIT_HELPER "-es-exit-"   /* (Call, Value) */
#define FX_TAIL_HELPER "-es-tail-"   /* (Call, Mod, Fun, Line, Args...) */

/* ---- inspection of abstract-format nodes ---- */
int fx_tag_is(const T *node, const char *tag);
int64_t fx_line_of(const T *node); /* the line of a node's annotation, 0 when none */
int fx_var_base(const T *var_name_atom, const uint8_t **base, size_t *len);
int fx_name_listed(const T *list_or_all, const uint8_t *name, size_t len);
int fx_is_secret(const fx *x, const uint8_t *base, size_t len);
int fx_line_is_secret(const fx *x, int64_t line);
int fx_is_tail_call(const T *e);           /* a call that must stay a tail call in tail position */
int fx_is_constant(const T *e, int depth); /* built of literals only */
int fx_cannot_raise(const T *body);        /* a body of variables, literals and data construction only */

/* ---- forms_tail.c ---- */
/* Rewrites the tail positions of body (a list of expressions) so that calls in tail position
 * return {'$es_tail', I, Callee.., Args..} markers and other values {'$es_v', V}; appends one
 * dispatch clause per marker to *dispatch (a growable array). Returns the new body, or body
 * itself when it has no tail call (then *n_sites is 0). */
typedef struct fx_sites {
    const T **clauses;
    uint32_t n, cap;
    uint32_t values; /* how many {'$es_v', V} markers the body may return */
} fx_sites;
const T *fx_tail_rewrite(fx *x, const T *body, const T *call_var, fx_sites *sites);

/* ---- forms_messages.c ---- */
/* Records the sends, receives and spawns in body (see forms_messages.c). */
const T *fx_messages(fx *x, const T *body, const T *call_var);
/* The :receive of a message taken by an OTP callback (handle_call/cast/info). */
const T *fx_callback_message(fx *x, const T *anno, const T *kind, const T *msg);

/* ---- forms_body.c ---- */
/* Adds locals, expressions and injections to the statements of body (and nested bodies);
 * head_patterns: the clause's patterns, whose variables injections may see. */
const T *fx_statements(fx *x, const T *body, const T *call_var, const T *head_patterns);

#endif
