/* NIF glue for reading events fast: the fields of %ElixirScope.Event{} straight from store
 * rows, payloads decoded by nif_payload.c (query_events/3, with nif.c's query parsing), and
 * call trees by the pure builder (c_src/call_tree.c) over those rows (query_call_trees/3) or a
 * list of %ElixirScope.Event{} (call_trees/2). The fields and their meaning are
 * ElixirScope.Event's (its from_tuple/2 is the reference). */
#include <erl_nif.h>
#include <string.h>

#include "elixir_scope/call_tree.h"
#include "elixir_scope/event_store.h"
#include "nif_glue.h"

/* ---- %ElixirScope.Event{} keys, in defstruct order ------------------------------------ */
enum {
    F_STRUCT, F_ID, F_TS, F_WALL_TIME, F_PID, F_KIND, F_MODULE, F_FUNCTION, F_ARITY, F_LINE, F_CALL_ID,
    F_LINK, F_CORRELATION_ID, F_RETURN_ID, F_PAYLOAD, F_TRUNCATED, F_REDACTED, F__COUNT
};
static const char *const FIELD_NAMES[F__COUNT] = {
    "__struct__", "id", "ts", "wall_time", "pid", "kind", "module", "function", "arity", "line", "call_id",
    "link", "correlation_id", "return_id", "payload", "truncated?", "redacted?"};

typedef struct event_atoms {
    ERL_NIF_TERM keys[F__COUNT], kinds[ES_KIND__COUNT], event_module, nil, true_, false_;
} event_atoms;

static void make_event_atoms(ErlNifEnv *env, event_atoms *a) {
    for (int i = 0; i < F__COUNT; i++) a->keys[i] = enif_make_atom(env, FIELD_NAMES[i]);
    for (int i = 0; i < ES_KIND__COUNT; i++) a->kinds[i] = enif_make_atom(env, KIND_NAMES[i]);
    a->event_module = enif_make_atom(env, "Elixir.ElixirScope.Event");
    a->nil = enif_make_atom(env, "nil");
    a->true_ = enif_make_atom(env, "true");
    a->false_ = enif_make_atom(env, "false");
}

/* ---- query rows -> structs --------------------------------------------------------------- */
struct es_event_rows {
    ErlNifEnv *env;
    event_atoms a;
    int has_clock;
    ErlNifSInt64 mono0, sys0;
    es_event_head *heads;
    ERL_NIF_TERM *payloads; /* decoded while the store holds them */
    size_t n, cap;
    es_atom_memo *memo;
    uint64_t truncated;
    const char *error; /* set: stop and raise */
};

#define CLOCK_BOUND ((ErlNifSInt64)1 << 62)

static ERL_NIF_TERM word_or_nil(const event_atoms *a, uint64_t w) { return w ? (ERL_NIF_TERM)w : a->nil; }
static ERL_NIF_TERM nonzero_or_nil(ErlNifEnv *env, const event_atoms *a, uint64_t v) {
    return v ? enif_make_uint64(env, v) : a->nil;
}

/* the kinds whose link is a correlation id (messages, spawns, exits, custom links) */
static int links_correlation(unsigned kind) {
    return kind == ES_KIND_SEND || kind == ES_KIND_RECEIVE || kind == ES_KIND_SPAWN || kind == ES_KIND_EXIT ||
           kind == ES_KIND_CUSTOM || kind >= ES_KIND__COUNT;
}

/* Keeps the row and its payload, decoded as Event.decode_payload/2 does (an empty payload is
   nil). A payload the VM refuses stops the query, or with `lenient` (a recording's: the loader
   checked it as ETF, the VM is stricter) reads as nil, flagged truncated. 1: stop. */
int es_event_rows_add(es_event_rows *c, const es_event_view *ev, int lenient) {
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 256;
        es_event_head *nh = enif_realloc(c->heads, ncap * sizeof *nh);
        if (nh) c->heads = nh;
        ERL_NIF_TERM *np = nh ? enif_realloc(c->payloads, ncap * sizeof *np) : NULL;
        if (!np) return (c->error = "out of memory building the query result"), 1;
        c->payloads = np;
        c->cap = ncap;
    }
    c->heads[c->n] = ev->head;
    if (ev->payload_len == 0) {
        c->payloads[c->n] = c->a.nil;
    } else if (!es_decode_payload(c->env, c->memo, ev->payload, ev->payload_len, &c->payloads[c->n])) {
        if (!lenient) return (c->error = "a stored payload is not valid external term format"), 1;
        c->payloads[c->n] = c->a.nil;
        c->heads[c->n].flags |= ES_FLAG_TRUNCATED;
    }
    c->n++;
    return 0;
}

static int row_cb(void *ctxp, const es_event_view *ev) { return es_event_rows_add(ctxp, ev, 0); }

/* {id, ts, wall_time, pid, kind, module, function, arity, line, call_id, link, correlation_id,
   return_id, payload, truncated?, redacted?}: the fields of %ElixirScope.Event{} in order */
static ERL_NIF_TERM row_term(es_event_rows *c, const es_event_head *h, ERL_NIF_TERM payload) {
    ErlNifEnv *env = c->env;
    const event_atoms *a = &c->a;
    ERL_NIF_TERM v[F__COUNT - 1];
    v[F_ID - 1] = enif_make_uint64(env, h->id);
    v[F_TS - 1] = enif_make_uint64(env, h->ts);
    /* as Event.wall_time/2: sys0 + div(ts - mono0, 1000), truncating like div/2; with the clock
       within ±2^62 it fits in 64 bits */
    v[F_WALL_TIME - 1] =
        c->has_clock ? enif_make_int64(env, (ErlNifSInt64)(c->sys0 + ((__int128)h->ts - c->mono0) / 1000)) : a->nil;
    v[F_PID - 1] = word_or_nil(a, h->pid);
    v[F_KIND - 1] = h->kind < ES_KIND__COUNT ? a->kinds[h->kind] : a->nil;
    v[F_MODULE - 1] = word_or_nil(a, h->module);
    v[F_FUNCTION - 1] = word_or_nil(a, h->function);
    v[F_ARITY - 1] = h->arity == 255 ? a->nil : enif_make_uint(env, h->arity);
    v[F_LINE - 1] = enif_make_uint(env, h->line);
    v[F_CALL_ID - 1] = enif_make_uint64(env, h->call_id);
    v[F_LINK - 1] = enif_make_uint64(env, h->link);
    v[F_CORRELATION_ID - 1] = links_correlation(h->kind) ? nonzero_or_nil(env, a, h->link) : a->nil;
    v[F_RETURN_ID - 1] = h->kind == ES_KIND_CALL ? nonzero_or_nil(env, a, h->link) : a->nil;
    v[F_PAYLOAD - 1] = payload;
    v[F_TRUNCATED - 1] = h->flags & ES_FLAG_TRUNCATED ? a->true_ : a->false_;
    v[F_REDACTED - 1] = h->flags & ES_FLAG_REDACTED ? a->true_ : a->false_;
    c->truncated += (h->flags & ES_FLAG_TRUNCATED) != 0;
    return enif_make_tuple_from_array(env, v, F__COUNT - 1);
}

/* clock: nil or {monotonic_ns, system_us}, integers within ±2^62 (so that every wall time fits
   in 64 bits) */
int es_event_rows_begin(ErlNifEnv *env, ERL_NIF_TERM clock, es_event_rows **out) {
    const ERL_NIF_TERM *parts;
    int arity;
    es_event_rows *c = enif_alloc(sizeof *c);
    if (!c) return 0;
    memset(c, 0, sizeof *c);
    c->env = env;
    make_event_atoms(env, &c->a);
    if ((clock != c->a.nil && (!enif_get_tuple(env, clock, &arity, &parts) || arity != 2 ||
                               !enif_get_int64(env, parts[0], &c->mono0) || !enif_get_int64(env, parts[1], &c->sys0) ||
                               c->mono0 > CLOCK_BOUND || c->mono0 < -CLOCK_BOUND || c->sys0 > CLOCK_BOUND ||
                               c->sys0 < -CLOCK_BOUND)) ||
        !(c->memo = es_atom_memo_new())) {
        enif_free(c);
        return 0;
    }
    c->has_clock = clock != c->a.nil;
    *out = c;
    return 1;
}

static void free_rows(es_event_rows *c) {
    enif_free(c->heads);
    enif_free(c->payloads);
    es_atom_memo_free(c->memo);
    enif_free(c);
}

/* the rows as a list, or NULL and the error to raise */
static const char *rows_list(es_event_rows *c, ERL_NIF_TERM *rows) {
    ERL_NIF_TERM *items;
    if (c->error) return c->error;
    if (!(items = enif_alloc((c->n + 1) * sizeof *items))) return "out of memory building the query result";
    for (size_t i = 0; i < c->n; i++) items[i] = row_term(c, &c->heads[i], c->payloads[i]);
    *rows = enif_make_list_from_array(c->env, items, (unsigned)c->n);
    enif_free(items);
    return NULL;
}

/* {[row], truncated_count}, or raises; frees c */
ERL_NIF_TERM es_event_rows_end(es_event_rows *c) {
    ErlNifEnv *env = c->env;
    ERL_NIF_TERM rows;
    const char *error = rows_list(c, &rows);
    if (!error) rows = enif_make_tuple2(env, rows, enif_make_uint64(env, c->truncated));
    free_rows(c);
    return error ? es_raise_arg(env, error) : rows;
}

es_query_cb es_event_rows_cb(void) { return row_cb; }

/* ---- call trees ----------------------------------------------------------------------------
 * The builder's output goes back as one list of node ops a process, in the order the calls
 * ended (children before parents): {call, return, exception, tail_call, status, duration_end,
 * [event], children_count}, events named by their position in the input (nil: none);
 * duration_end is the event whose ts ends the call's duration (the difference is taken in Elixir,
 * whatever the integers).
 * ElixirScope.Storage.EventCorrelator assembles the node maps from them. */
typedef struct tree_atoms {
    ERL_NIF_TERM status[4], observed, by_pid, roots, open_calls;
} tree_atoms;

static void make_tree_atoms(ErlNifEnv *env, tree_atoms *t) {
    static const char *const status[4] = {"open", "ok", "exception", "tail_call"}; /* es_ct_status order */
    for (int i = 0; i < 4; i++) t->status[i] = enif_make_atom(env, status[i]);
    t->observed = enif_make_atom(env, "observed");
    t->by_pid = enif_make_atom(env, "by_pid");
    t->roots = enif_make_atom(env, "roots");
    t->open_calls = enif_make_atom(env, "open_calls");
}

/* a word no atom has (terms are never 0): a module or function that is no atom */
#define NOT_AN_ATOM 0

/* one input event: its process, its position in the input, and what the builder reads */
typedef struct in_event {
    ERL_NIF_TERM pid;
    size_t pos;
    es_ct_event ct;
} in_event;

static int kind_index(const event_atoms *a, ERL_NIF_TERM t) {
    for (int k = 0; k < ES_KIND__COUNT; k++)
        if (a->kinds[k] == t) return k;
    return -1;
}

static int field(ErlNifEnv *env, const event_atoms *a, ERL_NIF_TERM map, int f, ERL_NIF_TERM *out) {
    return enif_get_map_value(env, map, a->keys[f], out);
}

/* a tail call's target: {module, function, args} with atoms, else nil (as EventCorrelator) */
static void tail_target(ErlNifEnv *env, const event_atoms *a, ERL_NIF_TERM payload, es_ct_event *e) {
    const ERL_NIF_TERM *parts;
    int arity;
    e->tail_module = e->tail_function = a->nil;
    if (enif_get_tuple(env, payload, &arity, &parts) && arity == 3 && enif_is_atom(env, parts[0]) &&
        enif_is_atom(env, parts[1])) {
        e->tail_module = parts[0];
        e->tail_function = parts[1];
    }
}

/* an observed :spawn is recorded by the lifecycle observer on a parent's behalf and placed by
   time: no part of its calls */
static int observed_spawn(const tree_atoms *ta, const es_ct_event *e) {
    return e->kind == ES_KIND_SPAWN && e->function == ta->observed;
}

/* Reads one %ElixirScope.Event{}; 0 if it is not one (or its id is not a 64-bit integer). Any
   value of the other fields is read as EventCorrelator reads it: an unknown kind is an event of
   its call, a call id that is no integer names no call, a module or function that is no atom
   matches no tail call's target. Only the fields the builder reads for the kind are looked up. */
static int read_event(ErlNifEnv *env, const event_atoms *a, ERL_NIF_TERM t, in_event *e) {
    ERL_NIF_TERM v;
    ErlNifUInt64 u;
    int kind;
    if (!field(env, a, t, F_STRUCT, &v) || v != a->event_module) return 0; /* also: not a map */
    if (!field(env, a, t, F_ID, &v) || !enif_get_uint64(env, v, &u)) return 0;
    e->ct.id = u;
    if (!field(env, a, t, F_KIND, &v)) return 0;
    kind = kind_index(a, v);
    e->ct.kind = kind < 0 ? ES_KIND__COUNT : (uint8_t)kind;
    if (!field(env, a, t, F_CALL_ID, &v)) return 0;
    e->ct.has_call_id = enif_get_uint64(env, v, &u);
    e->ct.call_id = e->ct.has_call_id ? u : 0;
    if (!field(env, a, t, F_PID, &e->pid)) return 0;
    e->ct.module = e->ct.function = NOT_AN_ATOM;
    e->ct.tail_module = e->ct.tail_function = a->nil;
    if (kind == ES_KIND_CALL || kind == ES_KIND_SPAWN) {
        if (!field(env, a, t, F_FUNCTION, &v)) return 0;
        if (enif_is_atom(env, v)) e->ct.function = v;
    }
    if (kind == ES_KIND_CALL) {
        if (!field(env, a, t, F_MODULE, &v)) return 0;
        if (enif_is_atom(env, v)) e->ct.module = v;
    }
    if (kind == ES_KIND_TAIL_CALL) {
        if (!field(env, a, t, F_PAYLOAD, &v)) return 0;
        tail_target(env, a, v, &e->ct);
    }
    return 1;
}

/* by pid (term order), then id, then input position: each process's events in id order, as
   EventCorrelator groups them (a stable sort by id, then by process) */
static int by_pid_id(const void *x, const void *y) {
    const in_event *a = x, *b = y;
    int c = enif_compare(a->pid, b->pid);
    if (c) return c;
    if (a->ct.id != b->ct.id) return a->ct.id < b->ct.id ? -1 : 1;
    return a->pos < b->pos ? -1 : a->pos > b->pos;
}

static ERL_NIF_TERM pos_or_nil(ErlNifEnv *env, const event_atoms *a, const in_event *evs, int32_t i) {
    return i == ES_CT_NONE ? a->nil : enif_make_uint64(env, evs[i].pos);
}

/* the node ops of one process's events (see above); NULL, or the error to raise */
static const char *group_ops(ErlNifEnv *env, const event_atoms *a, const tree_atoms *ta, const in_event *evs, size_t n,
                             ERL_NIF_TERM *ops) {
    es_ct_event *cts = enif_alloc((n + 1) * sizeof *cts);
    ERL_NIF_TERM *items;
    es_ct_tree t;
    if (!cts) return "call_trees: out of memory";
    for (size_t i = 0; i < n; i++) cts[i] = evs[i].ct;
    if (!es_ct_build(cts, n, 1, &t)) {
        enif_free(cts);
        return "call_trees: out of memory";
    }
    enif_free(cts);
    if (!(items = enif_alloc((t.n_finished + 1) * sizeof *items))) {
        es_ct_free(&t);
        return "call_trees: out of memory";
    }
    for (size_t k = 0; k < t.n_finished; k++) {
        const es_ct_node *node = &t.nodes[t.finished[k]];
        ERL_NIF_TERM events = enif_make_list(env, 0), v[8];
        unsigned children = 0;
        for (int32_t i = node->last_event; i != ES_CT_NONE; i = t.prev_event[i])
            events = enif_make_list_cell(env, enif_make_uint64(env, evs[i].pos), events);
        for (int32_t c = node->last_child; c != ES_CT_NONE; c = t.nodes[c].prev_sibling) children++;
        v[0] = enif_make_uint64(env, evs[node->call].pos);
        v[1] = pos_or_nil(env, a, evs, node->ret);
        v[2] = pos_or_nil(env, a, evs, node->exception);
        v[3] = pos_or_nil(env, a, evs, node->tail_call);
        v[4] = ta->status[node->status];
        v[5] = pos_or_nil(env, a, evs, node->duration_end);
        v[6] = events;
        v[7] = enif_make_uint(env, children);
        items[k] = enif_make_tuple_from_array(env, v, 8);
    }
    *ops = enif_make_list_from_array(env, items, (unsigned)t.n_finished);
    enif_free(items);
    es_ct_free(&t);
    return NULL;
}

/* [{pid, ops}] of every process in evs (sorted here unless `sorted`); NULL, or the error */
static const char *trees_by_pid(ErlNifEnv *env, const event_atoms *a, const tree_atoms *ta, in_event *evs, size_t n,
                                int sorted, ERL_NIF_TERM *out) {
    const char *err = NULL;
    ERL_NIF_TERM list = enif_make_list(env, 0), ops;
    if (!sorted) qsort(evs, n, sizeof *evs, by_pid_id);
    /* built from the last process back: the list is in pid order */
    for (size_t end = n; end > 0 && !err;) {
        size_t start = end - 1;
        while (start > 0 && enif_is_identical(evs[start - 1].pid, evs[end - 1].pid)) start--;
        if (!(err = group_ops(env, a, ta, evs + start, end - start, &ops)))
            list = enif_make_list_cell(env, enif_make_tuple2(env, evs[start].pid, ops), list);
        end = start;
    }
    *out = list;
    return err;
}

/* call_trees(events, mode) (dirty CPU): mode :by_pid | :roots -> [{pid, ops}] (one list of ops a
   process); :open_calls -> the positions of the calls still open after the last event,
   outermost first (the list read as one process's, in its order). */
ERL_NIF_TERM es_nif_call_trees(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    event_atoms a;
    tree_atoms ta;
    unsigned len;
    ERL_NIF_TERM head, tail = argv[0], result;
    in_event *evs;
    size_t n = 0, pos = 0;
    int sorted = 1;
    const char *err = NULL;
    (void)argc;
    make_event_atoms(env, &a);
    make_tree_atoms(env, &ta);
    if (!enif_get_list_length(env, argv[0], &len) || len >= INT32_MAX)
        return es_raise_arg(env, "call_trees/2 expects a proper list of %ElixirScope.Event{} (fewer than 2^31)");
    if (argv[1] != ta.by_pid && argv[1] != ta.roots && argv[1] != ta.open_calls)
        return es_raise_arg(env, "call_trees/2: mode must be :by_pid, :roots or :open_calls");
    if (!(evs = enif_alloc(((size_t)len + 1) * sizeof *evs))) return es_raise_arg(env, "call_trees/2: out of memory");
    for (; enif_get_list_cell(env, tail, &head, &tail); pos++) {
        if (!read_event(env, &a, head, &evs[n])) {
            enif_free(evs);
            return es_raise_arg(env, "call_trees/2: every element must be an %ElixirScope.Event{} whose id is a "
                                     "non-negative 64-bit integer");
        }
        if (observed_spawn(&ta, &evs[n].ct)) continue;
        evs[n].pos = pos;
        /* queries answer one process's events in id order: sorting is needed only when not */
        if (n) sorted &= evs[n].ct.id > evs[n - 1].ct.id && enif_is_identical(evs[n].pid, evs[0].pid);
        n++;
    }
    if (argv[1] == ta.open_calls) {
        es_ct_event *cts = enif_alloc((n + 1) * sizeof *cts);
        es_ct_tree t;
        if (!cts) {
            err = "call_trees/2: out of memory";
        } else {
            for (size_t i = 0; i < n; i++) cts[i] = evs[i].ct;
            if (!es_ct_build(cts, n, 0, &t)) {
                err = "call_trees/2: out of memory";
            } else {
                result = enif_make_list(env, 0);
                for (size_t i = t.depth; i-- > 0;)
                    result = enif_make_list_cell(env, enif_make_uint64(env, evs[t.nodes[t.stack[i]].call].pos), result);
                es_ct_free(&t);
            }
            enif_free(cts);
        }
    } else {
        err = trees_by_pid(env, &a, &ta, evs, n, sorted, &result);
    }
    enif_free(evs);
    return err ? es_raise_arg(env, err) : result;
}

/* query_call_trees/3: {[row], truncated_count, [{pid, ops}]} over the rows (positions are row
   positions), or raises; frees c */
ERL_NIF_TERM es_event_rows_end_trees(es_event_rows *c) {
    ErlNifEnv *env = c->env;
    ERL_NIF_TERM rows, trees;
    in_event *evs = NULL;
    tree_atoms ta;
    size_t n = 0;
    int sorted = 1;
    const char *error = rows_list(c, &rows);
    make_tree_atoms(env, &ta);
    if (!error && !(evs = enif_alloc((c->n + 1) * sizeof *evs))) error = "out of memory building the query result";
    for (size_t i = 0; !error && i < c->n; i++) {
        const es_event_head *h = &c->heads[i];
        in_event *e = &evs[n];
        e->pid = word_or_nil(&c->a, h->pid);
        e->pos = i;
        e->ct.id = h->id;
        e->ct.call_id = h->call_id;
        e->ct.has_call_id = 1;
        e->ct.kind = h->kind < ES_KIND__COUNT ? h->kind : ES_KIND__COUNT;
        e->ct.module = word_or_nil(&c->a, h->module);
        e->ct.function = word_or_nil(&c->a, h->function);
        e->ct.tail_module = e->ct.tail_function = c->a.nil;
        if (h->kind == ES_KIND_TAIL_CALL) tail_target(env, &c->a, c->payloads[i], &e->ct);
        if (observed_spawn(&ta, &e->ct)) continue;
        if (n) sorted &= e->ct.id > evs[n - 1].ct.id && enif_is_identical(e->pid, evs[0].pid);
        n++;
    }
    if (!error) error = trees_by_pid(env, &c->a, &ta, evs, n, sorted, &trees);
    enif_free(evs);
    if (!error) rows = enif_make_tuple3(env, rows, enif_make_uint64(env, c->truncated), trees);
    free_rows(c);
    return error ? es_raise_arg(env, error) : rows;
}
