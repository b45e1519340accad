/* The forms transformer, messages and spawns: every send in an instrumented body (Kernel.send, Process.send,
 * send_after, GenServer/:gen_server/:gen_statem/:gen_event call, cast, reply and notify) records a
 * :send with its destination and message just before it is made, and every receive records the
 * message its clause took, which clause, and when it started waiting (or that its after ran).
 * (How long a receive waited is recorded when the receive cannot raise by itself: see wrap_receive.) Messages are never changed: the arguments are evaluated once, into fresh variables, recorded,
 * and then passed to the very call the program made, so the call, its stack trace and its tail
 * position are as before. Calls cannot appear in patterns, and none of these is a guard BIF, so
 * the walk may enter every sub-term; it enters funs too (a send inside Enum.each's fun is still a
 * send of this call; the fun captures the call id).
 * Every spawn (spawn*, Process.spawn, Node.spawn*, Task.async/start/start_link, Task.Supervisor
 * async/async_nolink/start_child) records a :spawn in the parent just after it returns: the call's
 * result is bound to a fresh variable, reported, and is the block's value. Such a call in tail
 * position becomes a value (the frame returns the child instead of ending by a tail call): these
 * functions return at once, so this costs one frame, never a loop. Task.async_stream's workers
 * are spawned later inside Task's code: the call is not a spawn here (the lifecycle observer
 * sees the workers, and their $callers).
 * Every :erpc/:rpc call, cast and multicall records its request (a :send with function rpc) just
 * before it is made; a call or multicall is also wrapped in a try that records how it ended (its
 * value, or the exception, raised again with its own class, reason and stacktrace). Such a call in
 * tail position becomes a value, as a spawn does; a cast stays where it was. */
#include <string.h>

#include "forms_internal.h"

typedef struct msg_call {
    const char *module, *function;
    uint32_t arity;
    const char *kind;  /* what the :send records: send, send_after, call, cast, reply */
    uint32_t dest, msg; /* 1-based argument positions */
} msg_call;

static const msg_call MESSAGE_CALLS[] = {
    {"erlang", "send", 2, "send", 1, 2},
    {"erlang", "send", 3, "send", 1, 2},
    {"erlang", "send_after", 3, "send_after", 2, 3},
    {"erlang", "send_after", 4, "send_after", 2, 3},
    {"Elixir.Process", "send", 3, "send", 1, 2},
    {"Elixir.Process", "send_after", 3, "send_after", 1, 2},
    {"Elixir.Process", "send_after", 4, "send_after", 1, 2},
    {"Elixir.GenServer", "call", 2, "call", 1, 2},
    {"Elixir.GenServer", "call", 3, "call", 1, 2},
    {"Elixir.GenServer", "cast", 2, "cast", 1, 2},
    {"Elixir.GenServer", "reply", 2, "reply", 1, 2},
    {"gen_server", "call", 2, "call", 1, 2},
    {"gen_server", "call", 3, "call", 1, 2},
    {"gen_server", "cast", 2, "cast", 1, 2},
    {"gen_server", "reply", 2, "reply", 1, 2},
    {"gen_statem", "call", 2, "call", 1, 2},
    {"gen_statem", "call", 3, "call", 1, 2},
    {"gen_statem", "cast", 2, "cast", 1, 2},
    {"gen_statem", "reply", 2, "reply", 1, 2},
    {"gen_event", "call", 3, "call", 1, 3},
    {"gen_event", "call", 4, "call", 1, 3},
    {"gen_event", "notify", 2, "cast", 1, 2},
    {"gen_event", "sync_notify", 2, "call", 1, 2},
    {NULL, NULL, 0, NULL, 0, 0},
};

/* Functions known by name and a range of arities: {module, function, lowest arity, highest arity, what}. */
typedef struct ranged_call {
    const char *module, *function;
    uint32_t min_arity, max_arity;
    const char *what;
} ranged_call;

/* the spawning functions; what the :spawn records as via: spawn, node, task */
static const ranged_call SPAWN_CALLS[] = {
    {"erlang", "spawn", 1, 4, "spawn"},
    {"erlang", "spawn_link", 1, 4, "spawn"},
    {"erlang", "spawn_monitor", 1, 4, "spawn"},
    {"erlang", "spawn_opt", 2, 5, "spawn"},
    {"Elixir.Process", "spawn", 2, 4, "spawn"},
    {"Elixir.Node", "spawn", 2, 5, "node"},
    {"Elixir.Node", "spawn_link", 2, 4, "node"},
    {"Elixir.Node", "spawn_monitor", 2, 4, "node"},
    {"Elixir.Task", "async", 1, 3, "task"},
    {"Elixir.Task", "start", 1, 3, "task"},
    {"Elixir.Task", "start_link", 1, 3, "task"},
    {"Elixir.Task.Supervisor", "async", 2, 5, "task"},
    {"Elixir.Task.Supervisor", "async_nolink", 2, 5, "task"},
    {"Elixir.Task.Supervisor", "start_child", 2, 5, "task"},
    {NULL, NULL, 0, 0, NULL},
};

/* the remote procedure calls: a call returns what the other nodes did (it is wrapped in a try),
 * a cast does not */
static const ranged_call RPC_CALLS[] = {
    {"erpc", "call", 2, 5, "call"},      {"erpc", "multicall", 2, 5, "call"}, {"erpc", "cast", 2, 4, "cast"},
    {"erpc", "multicast", 2, 4, "cast"}, {"rpc", "call", 4, 5, "call"},       {"rpc", "multicall", 3, 5, "call"},
    {"rpc", "cast", 4, 4, "cast"},       {NULL, NULL, 0, 0, NULL},
};

/* the module and function atoms and the arity of a remote call to constant names */
static int remote_call(const T *e, const T **m, const T **f, uint32_t *arity) {
    if (!fx_tag_is(e, "call") || e->n != 4) return 0;
    const T *fn = e->u.items[2], *args = e->u.items[3];
    if (!fx_tag_is(fn, "remote") || fn->n != 4 || !fx_tag_is(fn->u.items[2], "atom") ||
        !fx_tag_is(fn->u.items[3], "atom") || !es_etf_is_proper_list(args))
        return 0;
    *m = fn->u.items[2]->u.items[2];
    *f = fn->u.items[3]->u.items[2];
    *arity = es_etf_list_len(args);
    return 1;
}

static const msg_call *message_call(const T *e) {
    const T *m, *f;
    uint32_t arity;
    if (!remote_call(e, &m, &f, &arity)) return NULL;
    for (const msg_call *c = MESSAGE_CALLS; c->module; c++)
        if (c->arity == arity && es_etf_is_atom(m, c->module) && es_etf_is_atom(f, c->function)) return c;
    return NULL;
}

static const ranged_call *ranged(const T *e, const ranged_call *table) {
    const T *m, *f;
    uint32_t arity;
    if (!remote_call(e, &m, &f, &arity)) return NULL;
    for (const ranged_call *c = table; c->module; c++)
        if (arity >= c->min_arity && arity <= c->max_arity && es_etf_is_atom(m, c->module) &&
            es_etf_is_atom(f, c->function))
            return c;
    return NULL;
}

typedef struct mwalk {
    fx *x;
    const T *call_var;
} mwalk;

static const T *walk(mwalk *w, const T *t, int depth);

static int64_t call_line(const fx *x, const T *call) {
    int64_t line = fx_line_of(call);
    return line > 0 ? line : x->clause_line;
}

/* A call being wrapped in a block: its line, the block's statements (the first n bind its
 * arguments, walked, to fresh variables; `extra` more slots follow) and the call on them. */
typedef struct wrapped {
    int64_t line;
    const T *anno, **stmts, *call;
    T *args; /* the variables */
    uint32_t n;
} wrapped;

static int wrap_args(mwalk *w, const T *call, uint32_t extra, wrapped *o, int depth) {
    fx *x = w->x;
    const T *args = call->u.items[3];
    o->n = args->n;
    o->line = call_line(x, call);
    o->anno = fx_anno(x, o->line);
    o->stmts = es_arena_alloc(x->a, sizeof(T *) * (o->n + extra));
    o->args = es_etf_list(x->a, o->n);
    if (!o->stmts || !o->args) return -1;
    for (uint32_t i = 0; i < o->n; i++) {
        const T *arg = walk(w, args->u.items[i], depth + 1);
        const T *v = fx_var_n(x, o->anno, "ES@sent", ++x->counter);
        if (!arg || !v) return -1;
        o->stmts[i] = fx_match(x, o->anno, v, arg);
        o->args->u.items[i] = (T *)v;
    }
    o->call = es_etf_tuple_of(x->a, 4, call->u.items[0], call->u.items[1], call->u.items[2], o->args);
    return o->call ? 0 : -1;
}

static const T *block(fx *x, const wrapped *o, uint32_t n) {
    return es_etf_tuple_of(x->a, 3, es_etf_atom(x->a, "block"), (T *)o->anno, (T *)fx_terms(x, o->stmts, n));
}

/* begin Arg_i = ..., report, Call(Args) end */
static const T *wrap_send(mwalk *w, const T *call, const msg_call *mc, int depth) {
    fx *x = w->x;
    wrapped o;
    if (wrap_args(w, call, 2, &o, depth) < 0) return NULL;
    const char *names[5] = {"call", "kind", "dest", "msg", "line"};
    const T *vals[5] = {w->call_var, fx_atom_node(x, o.anno, mc->kind), o.args->u.items[mc->dest - 1],
                        o.args->u.items[mc->msg - 1], fx_int(x, o.anno, o.line)};
    o.stmts[o.n] = fx_fill(x, x->tpl.send, o.anno, 5, names, vals);
    o.stmts[o.n + 1] = o.call;
    return block(x, &o, o.n + 2);
}

/* begin Arg_i = ..., ES@spawned = Call(Args), report, ES@spawned end */
static const T *wrap_spawn(mwalk *w, const T *call, const ranged_call *sc, int depth) {
    fx *x = w->x;
    wrapped o;
    if (wrap_args(w, call, 3, &o, depth) < 0) return NULL;
    const T *result = fx_var_n(x, o.anno, "ES@spawned", ++x->counter);
    if (!result) return NULL;
    const char *names[5] = {"call", "via", "args", "result", "line"};
    const T *vals[5] = {w->call_var, fx_atom_node(x, o.anno, sc->what),
                        fx_list_expr(x, o.anno, o.n, (const T *const *)o.args->u.items), result,
                        fx_int(x, o.anno, o.line)};
    o.stmts[o.n] = fx_match(x, o.anno, result, o.call);
    o.stmts[o.n + 1] = fx_fill(x, x->tpl.spawn, o.anno, 5, names, vals);
    o.stmts[o.n + 2] = result;
    return block(x, &o, o.n + 3);
}

/* begin Arg_i = ..., ES@rpc = report request, Call(Args) end for a cast; for a call the last
 * statement is try Call(Args) of V -> report V, V catch C:R:S -> report, erlang:raise(C, R, S) end */
static const T *wrap_rpc(mwalk *w, const T *call, const ranged_call *rc, int depth) {
    fx *x = w->x;
    wrapped o;
    if (wrap_args(w, call, 2, &o, depth) < 0) return NULL;
    const T *request = fx_var_n(x, o.anno, "ES@rpc", ++x->counter);
    const T *fn = call->u.items[2];
    /* {Module, Function} as the call names them */
    const T *api[2] = {fn->u.items[2], fn->u.items[3]};
    const char *names[4] = {"call", "api", "args", "line"};
    const T *vals[4] = {w->call_var, fx_tuple_expr(x, o.anno, 2, api),
                        fx_list_expr(x, o.anno, o.n, (const T *const *)o.args->u.items), fx_int(x, o.anno, o.line)};
    const T *report = fx_fill(x, x->tpl.rpc, o.anno, 4, names, vals);
    if (!request || !report) return NULL;
    o.stmts[o.n] = fx_match(x, o.anno, request, report);
    if (strcmp(rc->what, "cast") == 0) {
        o.stmts[o.n + 1] = o.call;
        return block(x, &o, o.n + 2);
    }
    const char *tnames[8] = {"rpc", "value", "call", "request", "line", "class", "reason", "stack"};
    const T *tvals[8] = {o.call,
                         fx_var_n(x, o.anno, "ES@rpcv", x->counter),
                         w->call_var,
                         request,
                         vals[3],
                         fx_var_n(x, o.anno, "ES@rpcc", x->counter),
                         fx_var_n(x, o.anno, "ES@rpcr", x->counter),
                         fx_var_n(x, o.anno, "ES@rpcs", x->counter)};
    o.stmts[o.n + 1] = fx_fill(x, x->tpl.rpc_call, o.anno, 8, tnames, tvals);
    return block(x, &o, o.n + 2);
}

static const T *receive_report(mwalk *w, const T *anno, int64_t line, const T *msg, const T *clause, const T *t0) {
    const char *names[5] = {"call", "msg", "clause", "since", "line"};
    const T *vals[5] = {w->call_var, msg, clause, t0, fx_int(w->x, anno, line)};
    return fx_fill(w->x, w->x->tpl.receive, anno, 5, names, vals);
}

static const T *prepend(fx *x, const T *first, const T *body) {
    if (!first || !body || body->kind != ES_ETF_LIST) return NULL;
    T *nb = es_etf_list(x->a, body->n + 1);
    if (!nb) return NULL;
    nb->u.items[0] = (T *)first;
    memcpy(nb->u.items + 1, body->u.items, sizeof(T *) * body->n);
    return nb;
}

/* A receive that cannot raise by itself: no after, or an after whose timeout is a literal
 * non-negative integer or 'infinity'. */
static int timeout_cannot_fail(const T *r) {
    if (r->n != 5) return 1;
    const T *t = r->u.items[3];
    if (fx_tag_is(t, "integer") && t->n == 3) return t->u.items[2]->kind == ES_ETF_INT && t->u.items[2]->u.i >= 0;
    return fx_tag_is(t, "atom") && t->n == 3 && es_etf_is_atom(t->u.items[2], "infinity");
}

/* ES@since = <now, when recording>, receive P = ES@msg -> report, Body ... end. The time is read
 * only before a receive that cannot raise by itself: before one with a computed timeout, a call
 * would change the line that the receive's own exception (a bad timeout) reports, so its wait is
 * not recorded (since = nil). */
static const T *wrap_receive(mwalk *w, const T *r, int depth) {
    fx *x = w->x;
    int64_t line = call_line(x, r);
    const T *anno = fx_anno(x, line);
    int timed = timeout_cannot_fail(r);
    const T *since = timed ? fx_var_n(x, anno, "ES@since", ++x->counter) : fx_atom_node(x, anno, "nil");
    const T *clauses = r->u.items[2];
    if (!since) return NULL;
    if (clauses->kind != ES_ETF_LIST && clauses->kind != ES_ETF_NIL) return r;
    uint32_t nc = es_etf_list_len(clauses);
    T *ncl = es_etf_list(x->a, nc);
    if (!ncl) return NULL;
    for (uint32_t i = 0; i < nc; i++) {
        const T *c = clauses->u.items[i];
        if (!fx_tag_is(c, "clause") || c->n != 5 || es_etf_list_len(c->u.items[2]) != 1) return r;
        const T *ca = c->u.items[1], *pat = c->u.items[2]->u.items[0];
        const T *mv = fx_var_n(x, anno, "ES@msg", ++x->counter);
        const T *body = walk(w, c->u.items[4], depth + 1);
        const T *rep = receive_report(w, fx_anno(x, fx_line_of(c) > 0 ? fx_line_of(c) : line),
                                      fx_line_of(c) > 0 ? fx_line_of(c) : line, mv, fx_int(x, anno, i + 1), since);
        const T *guards = walk(w, c->u.items[3], depth + 1);
        if (!mv || !body || !rep || !guards) return NULL;
        ncl->u.items[i] = (T *)fx_clause(x, ca, es_etf_list_of(x->a, 1, (T *)fx_match(x, ca, pat, mv)), guards,
                                         prepend(x, rep, body));
    }
    const T *nr;
    if (r->n == 5) {
        const T *after = walk(w, r->u.items[4], depth + 1);
        const T *timeout = walk(w, r->u.items[3], depth + 1);
        const T *rep = receive_report(w, anno, line, fx_atom_node(x, anno, "$es_after"), fx_atom_node(x, anno, "after"),
                                      since);
        if (!after || !timeout || !rep) return NULL;
        nr = es_etf_tuple_of(x->a, 5, r->u.items[0], r->u.items[1], ncl, (T *)timeout, (T *)prepend(x, rep, after));
    } else {
        nr = es_etf_tuple_of(x->a, 3, r->u.items[0], r->u.items[1], ncl);
    }
    if (!timed) return nr;
    const char *names[1] = {"call"};
    const T *vals[1] = {w->call_var};
    const T *start = fx_fill(x, x->tpl.receive_start, anno, 1, names, vals);
    const T *bind = start ? fx_match(x, anno, since, start) : NULL;
    if (!nr || !bind) return NULL;
    return es_etf_tuple_of(x->a, 3, es_etf_atom(x->a, "block"), (T *)anno, (T *)fx_terms(x, (const T *[]){bind, nr}, 2));
}

/* a list literal is a chain of cons cells as deep as it is long: walked in a loop */
static const T *walk_cons(mwalk *w, const T *t, int depth) {
    uint32_t n = 0;
    for (const T *c = t; fx_tag_is(c, "cons") && c->n == 4; c = c->u.items[3]) n++;
    const T **cells = es_arena_alloc(w->x->a, sizeof(T *) * n), **heads = es_arena_alloc(w->x->a, sizeof(T *) * n);
    if (!cells || !heads) return NULL;
    const T *c = t;
    int changed = 0;
    for (uint32_t i = 0; i < n; i++, c = c->u.items[3]) {
        cells[i] = c;
        heads[i] = walk(w, c->u.items[2], depth + 1);
        if (!heads[i]) return NULL;
        changed |= heads[i] != c->u.items[2];
    }
    const T *tail = walk(w, c, depth + 1);
    if (!tail) return NULL;
    if (!changed && tail == c) return t;
    for (uint32_t i = n; i-- > 0;)
        tail = es_etf_tuple_of(w->x->a, 4, cells[i]->u.items[0], cells[i]->u.items[1], (T *)heads[i], (T *)tail);
    return tail;
}

static const T *walk(mwalk *w, const T *t, int depth) {
    /* deeper nesting than this is left as it is (its sends are not recorded), never a stack overflow */
    if (!t || depth > FX_MAX_MESSAGE_DEPTH) return t;
    if (fx_tag_is(t, "cons") && t->n == 4) return walk_cons(w, t, depth);
    if (t->kind == ES_ETF_LIST) {
        T *c = NULL;
        for (uint32_t i = 0; i <= t->n; i++) {
            const T *k = walk(w, t->u.items[i], depth + 1);
            if (!k) return NULL;
            if (k != t->u.items[i] && !c) {
                c = es_etf_list(w->x->a, t->n);
                if (!c) return NULL;
                memcpy(c->u.items, t->u.items, sizeof(T *) * (t->n + 1));
            }
            if (c) c->u.items[i] = (T *)k;
        }
        return c ? c : t;
    }
    if (t->kind != ES_ETF_TUPLE || t->n < 2) return t;
    const msg_call *mc = message_call(t);
    if (mc) return wrap_send(w, t, mc, depth);
    const ranged_call *sc = ranged(t, SPAWN_CALLS);
    if (sc) return wrap_spawn(w, t, sc, depth);
    const ranged_call *rc = ranged(t, RPC_CALLS);
    if (rc) return wrap_rpc(w, t, rc, depth);
    if (fx_tag_is(t, "receive") && (t->n == 3 || t->n == 5)) return wrap_receive(w, t, depth);
    T *c = NULL;
    for (uint32_t i = 2; i < t->n; i++) { /* item 1 is the annotation */
        const T *k = walk(w, t->u.items[i], depth + 1);
        if (!k) return NULL;
        if (k != t->u.items[i] && !c) {
            c = es_etf_tuple(w->x->a, t->n);
            if (!c) return NULL;
            memcpy(c->u.items, t->u.items, sizeof(T *) * t->n);
        }
        if (c) c->u.items[i] = (T *)k;
    }
    return c ? c : t;
}

const T *fx_messages(fx *x, const T *body, const T *call_var) {
    mwalk w = {x, call_var};
    return walk(&w, body, 0);
}

/* the payload of the :receive event of a message an OTP callback takes (`kind`: call, cast, info) */
const T *fx_callback_message(fx *x, const T *anno, const T *kind, const T *msg) {
    const char *names[2] = {"msg", "clause"};
    const T *vals[2] = {msg, kind};
    return fx_fill(x, x->tpl.callback_message, anno, 2, names, vals);
}
