/* NIF glue for reading events fast: the fields of %ElixirScope.Event{} straight from store
 * rows, payloads decoded (query_events/3, with nif.c's query parsing), and call trees built by the pure
 * builder (c_src/call_tree.c) over a list of %ElixirScope.Event{} (call_trees/2). The
 * fields and their meaning are ElixirScope.Event's (its from_tuple/2 is the reference). */
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

/* Keys in term order, and where each field goes: enif_make_map_from_arrays sorts its keys by
   insertion, so keys already in order cost one comparison each instead of dozens. */
static void sort_keys(const ERL_NIF_TERM *keys, int n, ERL_NIF_TERM *sorted, int *slot) {
    for (int i = 0; i < n; i++) {
        int pos = 0;
        for (int j = 0; j < n; j++) pos += enif_compare(keys[j], keys[i]) < 0;
        sorted[pos] = keys[i];
        slot[i] = pos;
    }
}

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
    es_event_head *heads; /* the rows are built once every payload is decoded */
    size_t n, cap;
    unsigned char *etf;   /* one ETF list of every payload: decoded by one binary_to_term */
    size_t etf_len, etf_cap;
    uint64_t truncated;
    const char *error; /* set: stop and raise */
};

#define ETF_VERSION 131
#define ETF_LIST_EXT 108
#define ETF_NIL_EXT 106
#define ETF_COMPRESSED 80

static ERL_NIF_TERM word_or_nil(const event_atoms *a, uint64_t w) { return w ? (ERL_NIF_TERM)w : a->nil; }
static ERL_NIF_TERM nonzero_or_nil(ErlNifEnv *env, const event_atoms *a, uint64_t v) {
    return v ? enif_make_uint64(env, v) : a->nil;
}

/* the kinds whose link is a correlation id (messages, spawns, exits, custom links) */
static int links_correlation(unsigned kind) {
    return kind == ES_KIND_SEND || kind == ES_KIND_RECEIVE || kind == ES_KIND_SPAWN || kind == ES_KIND_EXIT ||
           kind == ES_KIND_CUSTOM || kind >= ES_KIND__COUNT;
}

static int etf_append(es_event_rows *c, const void *data, size_t len) {
    if (c->etf_len + len > c->etf_cap) {
        size_t ncap = c->etf_cap ? c->etf_cap * 2 : 4096;
        while (ncap < c->etf_len + len) ncap *= 2;
        unsigned char *ne = enif_realloc(c->etf, ncap);
        if (!ne) return 0;
        c->etf = ne;
        c->etf_cap = ncap;
    }
    memcpy(c->etf + c->etf_len, data, len);
    c->etf_len += len;
    return 1;
}

/* Keeps the row and splices its payload's term into the list (an empty payload is nil, as in
   Event.decode_payload/2). Decoding every payload at once costs one heap allocation instead of
   one a payload. */
static int row_cb(void *ctxp, const es_event_view *ev) {
    static const unsigned char nil_atom[] = {119, 3, 'n', 'i', 'l'}; /* SMALL_ATOM_UTF8_EXT */
    es_event_rows *c = ctxp;
    int ok;
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 256;
        es_event_head *nh = enif_realloc(c->heads, ncap * sizeof *nh);
        if (!nh) return (c->error = "out of memory building the query result"), 1;
        c->heads = nh;
        c->cap = ncap;
    }
    if (ev->payload_len == 0)
        ok = etf_append(c, nil_atom, sizeof nil_atom);
    else if (ev->payload_len < 2 || ev->payload[0] != ETF_VERSION || ev->payload[1] == ETF_COMPRESSED)
        return (c->error = "a stored payload is not uncompressed external term format"), 1;
    else
        ok = etf_append(c, ev->payload + 1, ev->payload_len - 1);
    if (!ok) return (c->error = "out of memory building the query result"), 1;
    c->heads[c->n++] = ev->head;
    return 0;
}

/* {id, ts, wall_time, pid, kind, module, function, arity, line, call_id, link, correlation_id,
   return_id, payload, truncated?, redacted?}: the fields of %ElixirScope.Event{} in order */
static ERL_NIF_TERM row_term(es_event_rows *c, const es_event_head *h, ERL_NIF_TERM payload) {
    ErlNifEnv *env = c->env;
    const event_atoms *a = &c->a;
    ERL_NIF_TERM v[F__COUNT - 1];
    v[F_ID - 1] = enif_make_uint64(env, h->id);
    v[F_TS - 1] = enif_make_uint64(env, h->ts);
    /* as Event.wall_time/2: sys0 + div(ts - mono0, 1000), truncating like div/2 */
    v[F_WALL_TIME - 1] = c->has_clock ? enif_make_int64(env, c->sys0 + ((ErlNifSInt64)h->ts - c->mono0) / 1000) : a->nil;
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

/* clock: nil or {monotonic_ns, system_us} (integers) */
int es_event_rows_begin(ErlNifEnv *env, ERL_NIF_TERM clock, es_event_rows **out) {
    static const unsigned char head[6] = {ETF_VERSION, ETF_LIST_EXT, 0, 0, 0, 0};
    const ERL_NIF_TERM *parts;
    int arity;
    es_event_rows *c = enif_alloc(sizeof *c);
    if (!c) return 0;
    memset(c, 0, sizeof *c);
    c->env = env;
    make_event_atoms(env, &c->a);
    if (clock != c->a.nil && (!enif_get_tuple(env, clock, &arity, &parts) || arity != 2 ||
                              !enif_get_int64(env, parts[0], &c->mono0) || !enif_get_int64(env, parts[1], &c->sys0))) {
        enif_free(c);
        return 0;
    }
    c->has_clock = clock != c->a.nil;
    if (!etf_append(c, head, sizeof head)) {
        enif_free(c);
        return 0;
    }
    *out = c;
    return 1;
}

static void free_rows(es_event_rows *c) {
    enif_free(c->heads);
    enif_free(c->etf);
    enif_free(c);
}

/* {[row], truncated_count}, or raises; frees c */
ERL_NIF_TERM es_event_rows_end(es_event_rows *c) {
    static const unsigned char tail = ETF_NIL_EXT;
    ErlNifEnv *env = c->env;
    ERL_NIF_TERM payloads, payload, rows;
    ERL_NIF_TERM *items = NULL;
    const char *error = c->error;
    if (!error && !etf_append(c, &tail, 1)) error = "out of memory building the query result";
    if (!error) {
        c->etf[2] = (unsigned char)(c->n >> 24);
        c->etf[3] = (unsigned char)(c->n >> 16);
        c->etf[4] = (unsigned char)(c->n >> 8);
        c->etf[5] = (unsigned char)c->n;
        if (c->n == 0) payloads = enif_make_list(env, 0);
        else if (enif_binary_to_term(env, c->etf, c->etf_len, &payloads, 0) != c->etf_len)
            error = "a stored payload is not valid external term format";
    }
    if (!error && !(items = enif_alloc((c->n + 1) * sizeof *items))) error = "out of memory building the query result";
    if (error) {
        free_rows(c);
        return es_raise_arg(env, error);
    }
    for (size_t i = 0; i < c->n && enif_get_list_cell(env, payloads, &payload, &payloads); i++)
        items[i] = row_term(c, &c->heads[i], payload);
    rows = enif_make_list_from_array(env, items, (unsigned)c->n);
    rows = enif_make_tuple2(env, rows, enif_make_uint64(env, c->truncated));
    enif_free(items);
    free_rows(c);
    return rows;
}

es_query_cb es_event_rows_cb(void) { return row_cb; }

/* ---- call trees ---------------------------------------------------------------------------- */
typedef struct tree_atoms {
    ERL_NIF_TERM node_keys[8], status[4], observed, by_pid, roots, open_calls;
    ERL_NIF_TERM sorted_keys[8];
    int slot[8];
} tree_atoms;

enum { N_EVENT, N_RETURN, N_EXCEPTION, N_TAIL_CALL, N_STATUS, N_DURATION, N_EVENTS, N_CHILDREN };

static void make_tree_atoms(ErlNifEnv *env, tree_atoms *t) {
    static const char *const keys[8] = {"event", "return", "exception", "tail_call", "status", "duration_ns", "events", "children"};
    static const char *const status[4] = {"open", "ok", "exception", "tail_call"}; /* es_ct_status order */
    for (int i = 0; i < 8; i++) t->node_keys[i] = enif_make_atom(env, keys[i]);
    sort_keys(t->node_keys, 8, t->sorted_keys, t->slot);
    for (int i = 0; i < 4; i++) t->status[i] = enif_make_atom(env, status[i]);
    t->observed = enif_make_atom(env, "observed");
    t->by_pid = enif_make_atom(env, "by_pid");
    t->roots = enif_make_atom(env, "roots");
    t->open_calls = enif_make_atom(env, "open_calls");
}

/* one input event: the term, and what the builder and the grouping read of it */
typedef struct in_event {
    ERL_NIF_TERM term, pid;
    size_t pos; /* in the input list: keeps sorts stable */
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

/* Reads one %ElixirScope.Event{}; 0 if it is not one. *skip: an observed :spawn (recorded by
   the lifecycle observer on a parent's behalf, placed by time: no part of its calls). Only the
   fields the builder reads for the kind are looked up: module and function of calls (a tail
   call's target), the function of spawns, the payload of tail calls. */
static int read_event(ErlNifEnv *env, const event_atoms *a, const tree_atoms *ta, ERL_NIF_TERM t, in_event *e, int *skip) {
    ERL_NIF_TERM v, payload;
    ErlNifUInt64 u;
    ErlNifSInt64 ts;
    const ERL_NIF_TERM *parts;
    int kind, arity;
    if (!field(env, a, t, F_STRUCT, &v) || v != a->event_module) return 0; /* also: not a map */
    if (!field(env, a, t, F_KIND, &v) || (kind = kind_index(a, v)) < 0) return 0;
    e->ct.kind = (uint8_t)kind;
    if (!field(env, a, t, F_ID, &v) || !enif_get_uint64(env, v, &u) || u == 0) return 0;
    e->ct.id = u;
    if (!field(env, a, t, F_TS, &v) || !enif_get_int64(env, v, &ts)) return 0;
    e->ct.ts = ts;
    /* call_id: an integer; anything else (nil) belongs to no call, as does 0 */
    if (!field(env, a, t, F_CALL_ID, &v)) return 0;
    e->ct.call_id = enif_get_uint64(env, v, &u) ? u : 0;
    if (!field(env, a, t, F_PID, &e->pid)) return 0;
    e->ct.module = e->ct.function = a->nil;
    e->ct.tail_module = e->ct.tail_function = a->nil;
    *skip = 0;
    if (kind == ES_KIND_CALL || kind == ES_KIND_SPAWN) {
        if (!field(env, a, t, F_FUNCTION, &v) || !enif_is_atom(env, v)) return 0;
        e->ct.function = v;
        *skip = kind == ES_KIND_SPAWN && v == ta->observed;
    }
    if (kind == ES_KIND_CALL) {
        if (!field(env, a, t, F_MODULE, &v) || !enif_is_atom(env, v)) return 0;
        e->ct.module = v;
    }
    /* a tail call's target: {module, function, args} with atoms, else nil (as EventCorrelator) */
    if (kind == ES_KIND_TAIL_CALL) {
        if (!field(env, a, t, F_PAYLOAD, &payload)) return 0;
        if (enif_get_tuple(env, payload, &arity, &parts) && arity == 3 && enif_is_atom(env, parts[0]) &&
            enif_is_atom(env, parts[1])) {
            e->ct.tail_module = parts[0];
            e->ct.tail_function = parts[1];
        }
    }
    e->term = t;
    return 1;
}

static int by_id(const void *x, const void *y) {
    const in_event *a = x, *b = y;
    if (a->ct.id != b->ct.id) return a->ct.id < b->ct.id ? -1 : 1;
    return a->pos < b->pos ? -1 : a->pos > b->pos;
}

/* by pid (term order), then by the id order already given (pos) */
static int by_pid(const void *x, const void *y) {
    const in_event *a = x, *b = y;
    int c = enif_compare(a->pid, b->pid);
    if (c) return c;
    return a->pos < b->pos ? -1 : a->pos > b->pos;
}

/* a chain of attached events (newest first) as a list in time order */
static ERL_NIF_TERM events_list(ErlNifEnv *env, const in_event *evs, const es_ct_tree *t, int32_t last) {
    ERL_NIF_TERM list = enif_make_list(env, 0);
    for (int32_t i = last; i != ES_CT_NONE; i = t->prev_event[i]) list = enif_make_list_cell(env, evs[i].term, list);
    return list;
}

static ERL_NIF_TERM nodes_list(ErlNifEnv *env, const es_ct_tree *t, const ERL_NIF_TERM *node_terms, int32_t last) {
    ERL_NIF_TERM list = enif_make_list(env, 0);
    for (int32_t i = last; i != ES_CT_NONE; i = t->nodes[i].prev_sibling) list = enif_make_list_cell(env, node_terms[i], list);
    return list;
}

static ERL_NIF_TERM event_or_nil(const in_event *evs, const event_atoms *a, int32_t i) {
    return i == ES_CT_NONE ? a->nil : evs[i].term;
}

/* The roots of one process's events as a list of node maps; 0 when out of memory. */
static int build_roots(ErlNifEnv *env, const event_atoms *a, const tree_atoms *ta, const in_event *evs, size_t n,
                       ERL_NIF_TERM *roots, const char **err) {
    es_ct_event *cts = enif_alloc((n + 1) * sizeof *cts);
    ERL_NIF_TERM *node_terms = NULL;
    es_ct_tree t;
    if (!cts) return (*err = "call_trees/2: out of memory"), 0;
    for (size_t i = 0; i < n; i++) cts[i] = evs[i].ct;
    if (!es_ct_build(cts, n, 1, &t)) {
        enif_free(cts);
        return (*err = "call_trees/2: out of memory, or a duration beyond 64 bits"), 0;
    }
    enif_free(cts);
    node_terms = enif_alloc((t.n_nodes + 1) * sizeof *node_terms);
    if (!node_terms) {
        es_ct_free(&t);
        return (*err = "call_trees/2: out of memory"), 0;
    }
    for (size_t k = 0; k < t.n_finished; k++) { /* children before parents */
        int32_t ni = t.finished[k];
        const es_ct_node *node = &t.nodes[ni];
        ERL_NIF_TERM v[8], sorted[8];
        v[N_EVENT] = evs[node->call].term;
        v[N_RETURN] = event_or_nil(evs, a, node->ret);
        v[N_EXCEPTION] = event_or_nil(evs, a, node->exception);
        v[N_TAIL_CALL] = event_or_nil(evs, a, node->tail_call);
        v[N_STATUS] = ta->status[node->status];
        v[N_DURATION] = node->has_duration ? enif_make_int64(env, node->duration_ns) : a->nil;
        v[N_EVENTS] = events_list(env, evs, &t, node->last_event);
        v[N_CHILDREN] = nodes_list(env, &t, node_terms, node->last_child);
        for (int f = 0; f < 8; f++) sorted[ta->slot[f]] = v[f];
        if (!enif_make_map_from_arrays(env, (ERL_NIF_TERM *)ta->sorted_keys, sorted, 8, &node_terms[ni])) {
            enif_free(node_terms);
            es_ct_free(&t);
            return (*err = "call_trees/2: could not build a node"), 0;
        }
    }
    *roots = nodes_list(env, &t, node_terms, t.last_root);
    enif_free(node_terms);
    es_ct_free(&t);
    return 1;
}

/* open_calls: the calls still open after the last event, outermost first (no sorting) */
static ERL_NIF_TERM open_calls(ErlNifEnv *env, const in_event *evs, size_t n) {
    es_ct_event *cts = enif_alloc((n + 1) * sizeof *cts);
    es_ct_tree t;
    ERL_NIF_TERM list;
    if (!cts) return es_raise_arg(env, "call_trees/2: out of memory");
    for (size_t i = 0; i < n; i++) cts[i] = evs[i].ct;
    if (!es_ct_build(cts, n, 0, &t)) {
        enif_free(cts);
        return es_raise_arg(env, "call_trees/2: out of memory, or a duration beyond 64 bits");
    }
    enif_free(cts);
    list = enif_make_list(env, 0);
    for (size_t i = t.depth; i-- > 0;) list = enif_make_list_cell(env, evs[t.nodes[t.stack[i]].call].term, list);
    es_ct_free(&t);
    return list;
}

/* the roots of every group, as {first id, root} pairs sorted by id: the roots of all processes
   in time order */
static int root_by_id(const void *x, const void *y) {
    const uint64_t *a = x, *b = y;
    if (a[0] != b[0]) return a[0] < b[0] ? -1 : 1;
    return a[1] < b[1] ? -1 : a[1] > b[1];
}

static ERL_NIF_TERM grouped(ErlNifEnv *env, const event_atoms *a, const tree_atoms *ta, in_event *evs, size_t n, int by_pid_map) {
    ERL_NIF_TERM *keys = enif_alloc((n + 1) * sizeof *keys), *vals = enif_alloc((n + 1) * sizeof *vals), result;
    size_t groups = 0;
    const char *err = NULL;
    if (!keys || !vals) {
        err = "call_trees/2: out of memory";
        goto out;
    }
    for (size_t g = 0; g < n;) {
        size_t end = g + 1;
        while (end < n && enif_is_identical(evs[end].pid, evs[g].pid)) end++;
        keys[groups] = evs[g].pid;
        if (!build_roots(env, a, ta, evs + g, end - g, &vals[groups], &err)) goto out;
        groups++;
        g = end;
    }
    if (by_pid_map) {
        if (!enif_make_map_from_arrays(env, keys, vals, groups, &result)) err = "call_trees/2: pids that compare equal";
    } else if (groups == 1) {
        result = vals[0];
    } else {
        /* roots of every process, merged by the id of their call: (id, order seen, term) */
        size_t total = 0, k = 0;
        ERL_NIF_TERM head, tail;
        for (size_t g = 0; g < groups; g++) {
            unsigned len;
            enif_get_list_length(env, vals[g], &len);
            total += len;
        }
        uint64_t (*rows)[3] = enif_alloc((total + 1) * sizeof *rows);
        if (!rows) {
            err = "call_trees/2: out of memory";
            goto out;
        }
        for (size_t g = 0; g < groups; g++)
            for (tail = vals[g]; enif_get_list_cell(env, tail, &head, &tail); k++) {
                ERL_NIF_TERM ev, id;
                ErlNifUInt64 u = 0;
                if (enif_get_map_value(env, head, ta->node_keys[N_EVENT], &ev) && enif_get_map_value(env, ev, a->keys[F_ID], &id))
                    enif_get_uint64(env, id, &u);
                rows[k][0] = u;
                rows[k][1] = k;
                rows[k][2] = head;
            }
        qsort(rows, total, sizeof *rows, root_by_id);
        result = enif_make_list(env, 0);
        for (size_t i = total; i-- > 0;) result = enif_make_list_cell(env, (ERL_NIF_TERM)rows[i][2], result);
        enif_free(rows);
    }
out:
    enif_free(keys);
    enif_free(vals);
    return err ? es_raise_arg(env, err) : result;
}

/* call_trees(events, mode) (dirty CPU): mode :by_pid -> %{pid => [node]}; :roots -> [node] of
   every process in time order; :open_calls -> the call events still open after the last event
   (the list read as one process's, in its order). */
ERL_NIF_TERM es_nif_call_trees(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    event_atoms a;
    tree_atoms ta;
    unsigned len;
    ERL_NIF_TERM head, tail = argv[0], result;
    in_event *evs;
    size_t n = 0;
    int ascending = 1, one_pid = 1;
    (void)argc;
    make_event_atoms(env, &a);
    make_tree_atoms(env, &ta);
    if (!enif_get_list_length(env, argv[0], &len) || len >= INT32_MAX)
        return es_raise_arg(env, "call_trees/2 expects a proper list of %ElixirScope.Event{} (fewer than 2^31)");
    if (argv[1] != ta.by_pid && argv[1] != ta.roots && argv[1] != ta.open_calls)
        return es_raise_arg(env, "call_trees/2: mode must be :by_pid, :roots or :open_calls");
    if (!(evs = enif_alloc(((size_t)len + 1) * sizeof *evs))) return es_raise_arg(env, "call_trees/2: out of memory");
    while (enif_get_list_cell(env, tail, &head, &tail)) {
        int skip = 0;
        if (!read_event(env, &a, &ta, head, &evs[n], &skip)) {
            enif_free(evs);
            return es_raise_arg(env, "call_trees/2: every element must be an %ElixirScope.Event{} with a positive id, "
                                     "an integer ts, a kind, and atoms (or nil) for module and function");
        }
        if (skip) continue;
        evs[n].pos = n;
        if (n) {
            ascending &= evs[n].ct.id > evs[n - 1].ct.id;
            one_pid &= enif_is_identical(evs[n].pid, evs[0].pid);
        }
        n++;
    }
    if (argv[1] == ta.open_calls) {
        result = open_calls(env, evs, n);
    } else {
        /* queries answer in id order: sorting is needed only when they were not */
        if (!ascending) {
            qsort(evs, n, sizeof *evs, by_id);
            for (size_t i = 0; i < n; i++) evs[i].pos = i;
        }
        if (!one_pid) qsort(evs, n, sizeof *evs, by_pid);
        if (n == 0) result = argv[1] == ta.by_pid ? enif_make_new_map(env) : enif_make_list(env, 0);
        else result = grouped(env, &a, &ta, evs, n, argv[1] == ta.by_pid);
    }
    enif_free(evs);
    return result;
}
