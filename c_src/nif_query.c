/* NIF glue for reading events fast: the fields of %ElixirScope.Event{} straight from store
 * rows, payloads decoded by nif_payload.c (query_events/3, with nif.c's query parsing), and
 * call trees by the pure builder (c_src/call_tree.c): over the store's events as the node maps
 * themselves (query_call_trees/3), or over a list of %ElixirScope.Event{} as node ops
 * (call_trees/2). The fields and their meaning are ElixirScope.Event's (its from_tuple/2 is the
 * reference), the nodes ElixirScope.Storage.EventCorrelator's. */
#include <erl_nif.h>
#include <stdint.h>
#include <stdlib.h>
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

/* ---- EventCorrelator.call_node() keys ----------------------------------------------------- */
enum { N_EVENT, N_RETURN, N_EXCEPTION, N_TAIL_CALL, N_STATUS, N_DURATION_NS, N_EVENTS, N_CHILDREN, N__COUNT };
static const char *const NODE_FIELDS[N__COUNT] = {"event",  "return",      "exception", "tail_call",
                                                  "status", "duration_ns", "events",    "children"};

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
/* ---- maps of a shape -------------------------------------------------------------------------
 * The maps query_call_trees/3 answers (events, call nodes) copy a shape: a map literal of the
 * calling Elixir module (%ElixirScope.Event{}, NativeCallTrees' node) whose key tuple, in the
 * literal area, every copy shares, as in the maps Elixir code builds: 3 words and one a value,
 * and no keys to copy when the map is sent. enif_make_map_from_arrays gives each map a key tuple
 * of its own (an event: 38 words instead of 20, twice the memory and GC of a large answer).
 * enif_make_map_update copies a flatmap keeping its key tuple; the values are then written into
 * that fresh copy, which nothing but this NIF holds yet. That relies on the flatmap layout of the
 * VMs of NIF API 2.16 (OTP 24 and 25: a header word, the size, the key tuple, the values in key
 * order), checked on the shape when a query begins and on each copy; anywhere else the maps come
 * from enif_make_map_from_arrays: the same maps, bigger. */
#define SHAPE_MAX_KEYS F__COUNT
#define BOXED_TAG ((ERL_NIF_TERM)2)

typedef struct shape {
    ERL_NIF_TERM map, keys[SHAPE_MAX_KEYS]; /* the literal; its keys in its order */
    ERL_NIF_TERM header, key_tuple;         /* in place: the header word of a flatmap, the key tuple */
    ERL_NIF_TERM probe;                     /* a value other than the literal's first */
    unsigned n;
    int in_place;
} shape;

static ERL_NIF_TERM *boxed_words(ERL_NIF_TERM t) { return (ERL_NIF_TERM *)(uintptr_t)(t - BOXED_TAG); }

/* 1: `map` is a map whose keys are exactly the atoms names[0..n-1]; slot[i] is the position of
   names[i] among its keys */
static int shape_init(ErlNifEnv *env, const event_atoms *a, ERL_NIF_TERM map, const char *const *names, unsigned n,
                      shape *s, unsigned *slot) {
    ErlNifMapIterator it;
    ERL_NIF_TERM values[SHAPE_MAX_KEYS], k, v;
    size_t size;
    unsigned i = 0;
    if (n > SHAPE_MAX_KEYS || !enif_get_map_size(env, map, &size) || size != n ||
        !enif_map_iterator_create(env, map, &it, ERL_NIF_MAP_ITERATOR_FIRST))
        return 0;
    for (; i < n && enif_map_iterator_get_pair(env, &it, &k, &v); enif_map_iterator_next(env, &it)) {
        s->keys[i] = k;
        values[i++] = v;
    }
    enif_map_iterator_destroy(env, &it);
    if (i != n) return 0;
    for (unsigned f = 0; f < n; f++) {
        ERL_NIF_TERM key = enif_make_atom(env, names[f]);
        for (slot[f] = 0; slot[f] < n && s->keys[slot[f]] != key; slot[f]++) {}
        if (slot[f] == n) return 0;
    }
    s->map = map;
    s->n = n;
    s->probe = values[0] == a->nil ? a->true_ : a->nil;
    s->in_place = 0;
#if ERL_NIF_MAJOR_VERSION == 2 && ERL_NIF_MINOR_VERSION == 16
    ERL_NIF_TERM one; /* a map the VM makes flat (one key): its first word is a flatmap's header */
    if ((map & 3) == BOXED_TAG && enif_make_map_from_arrays(env, s->keys, values, 1, &one) && (one & 3) == BOXED_TAG) {
        const ERL_NIF_TERM *w = boxed_words(map), *tk;
        int arity;
        s->header = boxed_words(one)[0];
        if (w[0] == s->header && w[1] == n && enif_get_tuple(env, w[2], &arity, &tk) && arity == (int)n) {
            s->key_tuple = w[2];
            s->in_place = 1;
            for (i = 0; i < n; i++) s->in_place &= tk[i] == s->keys[i] && w[3 + i] == values[i];
        }
    }
#endif
    return 1;
}

/* a map of shape s holding `values` (in the shape's key order) */
static ERL_NIF_TERM shape_make(ErlNifEnv *env, shape *s, ERL_NIF_TERM *values) {
    ERL_NIF_TERM m;
    /* the probe differs from the literal's value: the answer is a fresh copy, never the literal */
    if (s->in_place && enif_make_map_update(env, s->map, s->keys[0], s->probe, &m) && m != s->map) {
        ERL_NIF_TERM *w = boxed_words(m);
        if (w[0] == s->header && w[1] == s->n && w[2] == s->key_tuple) {
            memcpy(w + 3, values, s->n * sizeof *values);
            return m;
        }
        s->in_place = 0;
    }
    enif_make_map_from_arrays(env, s->keys, values, s->n, &m); /* distinct keys: cannot fail */
    return m;
}

/* ---- query rows -> structs --------------------------------------------------------------- */
/* query_call_trees/3: each event made a map when it is read, what the builder reads kept */
typedef struct tree_rows {
    shape event, node;
    unsigned event_slot[F__COUNT], node_slot[N__COUNT];
    tree_atoms ta;
    es_ct_event *cts; /* one an event, observed spawns left out */
    ERL_NIF_TERM *pids, *maps;
    uint64_t *ts;
    int sorted; /* one process, ids ascending: the builder reads cts as they are */
} tree_rows;

struct es_event_rows {
    ErlNifEnv *env;
    event_atoms a;
    int has_clock;
    ErlNifSInt64 mono0, sys0;
    size_t n, cap;
    es_event_head *heads;   /* query_events/3 */
    ERL_NIF_TERM *payloads; /* decoded while the store holds them */
    tree_rows *trees;       /* query_call_trees/3 (then no heads) */
    int sizing;             /* query_call_trees/3 asked for :words: only `words` is counted */
    uint64_t words;
    es_atom_memo *memo;
    uint64_t truncated;
    const char *error; /* set: stop and raise */
};

#define CLOCK_BOUND ((ErlNifSInt64)1 << 62)
#define OUT_OF_MEMORY "out of memory building the query result"

static ERL_NIF_TERM word_or_nil(const event_atoms *a, uint64_t w) { return w ? (ERL_NIF_TERM)w : a->nil; }
static ERL_NIF_TERM nonzero_or_nil(ErlNifEnv *env, const event_atoms *a, uint64_t v) {
    return v ? enif_make_uint64(env, v) : a->nil;
}

/* the kinds whose link is a correlation id (messages, spawns, exits, custom links) */
static int links_correlation(unsigned kind) {
    return kind == ES_KIND_SEND || kind == ES_KIND_RECEIVE || kind == ES_KIND_SPAWN || kind == ES_KIND_EXIT ||
           kind == ES_KIND_CUSTOM || kind >= ES_KIND__COUNT;
}

/* The fields of %ElixirScope.Event{}, v[F_...] */
static void event_values(es_event_rows *c, const es_event_head *h, ERL_NIF_TERM payload, ERL_NIF_TERM v[F__COUNT]) {
    ErlNifEnv *env = c->env;
    const event_atoms *a = &c->a;
    v[F_STRUCT] = a->event_module;
    v[F_ID] = enif_make_uint64(env, h->id);
    v[F_TS] = enif_make_uint64(env, h->ts);
    /* as Event.wall_time/2: sys0 + div(ts - mono0, 1000), truncating like div/2; with the clock
       within ±2^62 it fits in 64 bits */
    v[F_WALL_TIME] =
        c->has_clock ? enif_make_int64(env, (ErlNifSInt64)(c->sys0 + ((__int128)h->ts - c->mono0) / 1000)) : a->nil;
    v[F_PID] = word_or_nil(a, h->pid);
    v[F_KIND] = h->kind < ES_KIND__COUNT ? a->kinds[h->kind] : a->nil;
    v[F_MODULE] = word_or_nil(a, h->module);
    v[F_FUNCTION] = word_or_nil(a, h->function);
    v[F_ARITY] = h->arity == 255 ? a->nil : enif_make_uint(env, h->arity);
    v[F_LINE] = enif_make_uint(env, h->line);
    v[F_CALL_ID] = enif_make_uint64(env, h->call_id);
    v[F_LINK] = enif_make_uint64(env, h->link);
    v[F_CORRELATION_ID] = links_correlation(h->kind) ? nonzero_or_nil(env, a, h->link) : a->nil;
    v[F_RETURN_ID] = h->kind == ES_KIND_CALL ? nonzero_or_nil(env, a, h->link) : a->nil;
    v[F_PAYLOAD] = payload;
    v[F_TRUNCATED] = h->flags & ES_FLAG_TRUNCATED ? a->true_ : a->false_;
    v[F_REDACTED] = h->flags & ES_FLAG_REDACTED ? a->true_ : a->false_;
    c->truncated += (h->flags & ES_FLAG_TRUNCATED) != 0;
}

/* An upper bound of the heap words an event adds to a tree answer: its map and the list cell
   that holds it, a call's node and its cell, the integers past the small ones, and its payload:
   at most two words a byte of its external format (a string's character is one byte and one
   cons; everything else takes more bytes than words). */
#define SMALL_MAX (((uint64_t)1 << 59) - 1)
static uint64_t answer_words(const es_event_head *h, uint32_t payload_len) {
    uint64_t w = (3 + F__COUNT) + 2 + 2 * (uint64_t)payload_len;
    uint64_t ints[4] = {h->id, h->ts, h->call_id, h->link};
    for (int i = 0; i < 4; i++) w += ints[i] > SMALL_MAX ? 2 * 2 : 0; /* a bignum: 2 words (link twice) */
    if (h->kind == ES_KIND_CALL) w += (3 + N__COUNT) + 2 + 2;      /* node, cell, a big duration */
    return w;
}

/* room for one more event (or for `want`, when more); 0: out of memory */
static int reserve(es_event_rows *c, size_t want) {
    size_t ncap = c->cap ? c->cap * 2 : 256;
    tree_rows *t = c->trees;
    if (c->n < c->cap && want <= c->cap) return 1;
    if (want > ncap) ncap = want;
    if (t) {
        es_ct_event *cts = enif_realloc(t->cts, ncap * sizeof *cts);
        if (cts) t->cts = cts;
        ERL_NIF_TERM *pids = cts ? enif_realloc(t->pids, ncap * sizeof *pids) : NULL;
        if (pids) t->pids = pids;
        ERL_NIF_TERM *maps = pids ? enif_realloc(t->maps, ncap * sizeof *maps) : NULL;
        if (maps) t->maps = maps;
        uint64_t *ts = maps ? enif_realloc(t->ts, ncap * sizeof *ts) : NULL;
        if (!ts) return 0;
        t->ts = ts;
    } else {
        es_event_head *heads = enif_realloc(c->heads, ncap * sizeof *heads);
        if (heads) c->heads = heads;
        ERL_NIF_TERM *payloads = heads ? enif_realloc(c->payloads, ncap * sizeof *payloads) : NULL;
        if (!payloads) return 0;
        c->payloads = payloads;
    }
    c->cap = ncap;
    return 1;
}

/* an event of a tree query: its map, and what the builder reads */
static void tree_add(es_event_rows *c, const es_event_head *h, ERL_NIF_TERM payload) {
    tree_rows *t = c->trees;
    size_t i = c->n++;
    es_ct_event *e = &t->cts[i];
    ERL_NIF_TERM v[F__COUNT], values[F__COUNT];
    e->id = h->id;
    e->call_id = h->call_id;
    e->has_call_id = 1;
    e->kind = h->kind < ES_KIND__COUNT ? h->kind : ES_KIND__COUNT;
    e->module = word_or_nil(&c->a, h->module);
    e->function = word_or_nil(&c->a, h->function);
    e->tail_module = e->tail_function = c->a.nil;
    if (h->kind == ES_KIND_TAIL_CALL) tail_target(c->env, &c->a, payload, e);
    t->pids[i] = word_or_nil(&c->a, h->pid);
    t->ts[i] = h->ts;
    event_values(c, h, payload, v);
    for (int f = 0; f < F__COUNT; f++) values[t->event_slot[f]] = v[f];
    t->maps[i] = shape_make(c->env, &t->event, values);
    if (i) t->sorted &= e->id > t->cts[i - 1].id && enif_is_identical(t->pids[i], t->pids[0]);
}

/* Keeps the event and its payload, decoded as Event.decode_payload/2 does (an empty payload is
   nil). A payload the VM refuses stops the query, or with `lenient` (a recording's: the loader
   checked it as ETF, the VM is stricter) reads as nil, flagged truncated. 1: stop. */
int es_event_rows_add(es_event_rows *c, const es_event_view *ev, int lenient) {
    es_event_head h = ev->head;
    ERL_NIF_TERM payload = c->a.nil;
    if (c->sizing) return (c->words += answer_words(&h, ev->payload_len)), c->n++, 0;
    /* placed by time, not in its parent's order: no part of a tree (see observed_spawn) */
    if (c->trees && h.kind == ES_KIND_SPAWN && (ERL_NIF_TERM)h.function == c->trees->ta.observed) return 0;
    if (!reserve(c, 0)) return (c->error = OUT_OF_MEMORY), 1;
    if (ev->payload_len != 0 && !es_decode_payload(c->env, c->memo, ev->payload, ev->payload_len, &payload)) {
        if (!lenient) return (c->error = "a stored payload is not valid external term format"), 1;
        payload = c->a.nil;
        h.flags |= ES_FLAG_TRUNCATED;
    }
    if (c->trees) {
        tree_add(c, &h, payload);
    } else {
        c->heads[c->n] = h;
        c->payloads[c->n++] = payload;
    }
    return 0;
}

static int row_cb(void *ctxp, const es_event_view *ev) { return es_event_rows_add(ctxp, ev, 0); }

/* {id, ts, wall_time, pid, kind, module, function, arity, line, call_id, link, correlation_id,
   return_id, payload, truncated?, redacted?}: the fields of %ElixirScope.Event{} in order */
static ERL_NIF_TERM row_term(es_event_rows *c, const es_event_head *h, ERL_NIF_TERM payload) {
    ERL_NIF_TERM v[F__COUNT];
    event_values(c, h, payload, v);
    return enif_make_tuple_from_array(c->env, v + 1, F__COUNT - 1);
}

static int get_clock(ErlNifEnv *env, ERL_NIF_TERM clock, es_event_rows *c) {
    const ERL_NIF_TERM *parts;
    int arity;
    c->has_clock = clock != c->a.nil;
    return !c->has_clock ||
           (enif_get_tuple(env, clock, &arity, &parts) && arity == 2 && enif_get_int64(env, parts[0], &c->mono0) &&
            enif_get_int64(env, parts[1], &c->sys0) && c->mono0 <= CLOCK_BOUND && c->mono0 >= -CLOCK_BOUND &&
            c->sys0 <= CLOCK_BOUND && c->sys0 >= -CLOCK_BOUND);
}

/* {clock, %ElixirScope.Event{}, node shape, expected events}: a tree query's (the arrays are
   made that large at once: growing them copies them into fresh pages) */
#define EXPECTED_EVENTS_MAX ((ErlNifUInt64)1 << 22) /* beyond, the arrays grow as they fill */
static int get_shapes(ErlNifEnv *env, const ERL_NIF_TERM *parts, es_event_rows *c) {
    ErlNifUInt64 expected;
    tree_rows *t = enif_alloc(sizeof *t);
    if (!t) return 0;
    memset(t, 0, sizeof *t);
    c->trees = t;
    make_tree_atoms(env, &t->ta);
    t->sorted = 1;
    return get_clock(env, parts[0], c) &&
           shape_init(env, &c->a, parts[1], FIELD_NAMES, F__COUNT, &t->event, t->event_slot) &&
           shape_init(env, &c->a, parts[2], NODE_FIELDS, N__COUNT, &t->node, t->node_slot) &&
           enif_get_uint64(env, parts[3], &expected) && reserve(c, expected < EXPECTED_EVENTS_MAX ? expected : 0);
}

static void free_rows(es_event_rows *c) {
    if (c->trees) {
        enif_free(c->trees->cts);
        enif_free(c->trees->pids);
        enif_free(c->trees->maps);
        enif_free(c->trees->ts);
        enif_free(c->trees);
    }
    enif_free(c->heads);
    enif_free(c->payloads);
    es_atom_memo_free(c->memo);
    enif_free(c);
}

/* clock: nil or {monotonic_ns, system_us}, integers within ±2^62 (so that every wall time fits
   in 64 bits); a tree query's: {clock, %ElixirScope.Event{}, node shape, expected events}, or
   :words (the size of its answer) */
int es_event_rows_begin(ErlNifEnv *env, ERL_NIF_TERM clock, es_event_rows **out) {
    const ERL_NIF_TERM *parts;
    int arity, ok;
    es_event_rows *c = enif_alloc(sizeof *c);
    if (!c) return 0;
    memset(c, 0, sizeof *c);
    c->env = env;
    make_event_atoms(env, &c->a);
    if ((c->sizing = enif_is_identical(clock, enif_make_atom(env, "words"))))
        ok = 1;
    else if (enif_get_tuple(env, clock, &arity, &parts) && arity == 4)
        ok = get_shapes(env, parts, c);
    else
        ok = get_clock(env, clock, c);
    if (!ok || !(c->memo = es_atom_memo_new())) {
        free_rows(c);
        return 0;
    }
    *out = c;
    return 1;
}

/* the rows as a list, or NULL and the error to raise */
static const char *rows_list(es_event_rows *c, ERL_NIF_TERM *rows) {
    ERL_NIF_TERM *items;
    if (c->error) return c->error;
    if (c->trees || c->sizing) return "query_events: the clock must be nil or {monotonic_ns, system_us}";
    if (!(items = enif_alloc((c->n + 1) * sizeof *items))) return OUT_OF_MEMORY;
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

/* ---- call trees over a list of events (call_trees/2) ---------------------------------------
 * The builder's output goes back as one list of node ops a process, in the order the calls
 * ended (children before parents): {call, return, exception, tail_call, status, duration_end,
 * [event], children_count}, events named by their position in the input (nil: none);
 * duration_end is the event whose ts ends the call's duration (the difference is taken in Elixir,
 * whatever the integers).
 * ElixirScope.Storage.EventCorrelator assembles the node maps from them. */
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


/* ---- call trees over the store's events (query_call_trees/3) ------------------------------- */

/* ts_end - ts_start, exactly as Elixir subtracts the integers */
static ERL_NIF_TERM ts_difference(ErlNifEnv *env, uint64_t ts_end, uint64_t ts_start) {
    ERL_NIF_TERM out;
    uint64_t m = ts_start - ts_end; /* the magnitude of a negative difference */
    unsigned char etf[12] = {131, 110, 8, 1};
    if (ts_end >= ts_start) return enif_make_uint64(env, ts_end - ts_start);
    if (m <= (uint64_t)INT64_MAX) return enif_make_int64(env, -(ErlNifSInt64)m);
    /* below -(2^63 - 1): a negative bignum, made from its external format (SMALL_BIG_EXT) */
    for (int i = 0; i < 8; i++) etf[4 + i] = (unsigned char)(m >> (8 * i));
    out = enif_make_int64(env, INT64_MIN); /* not reached: the external format above is valid */
    enif_binary_to_term(env, etf, sizeof etf, &out, 0);
    return out;
}

/* one process's events among the rows: positions start.. of `order` (NULL: the rows in order) */
typedef struct tree_group {
    const uint32_t *order;
    size_t start;
} tree_group;

static size_t row_of(const tree_group *g, int32_t i) {
    return g->order ? g->order[g->start + (size_t)i] : g->start + (size_t)i;
}

static ERL_NIF_TERM map_or_nil(const es_event_rows *c, const tree_group *g, int32_t i) {
    return i == ES_CT_NONE ? c->a.nil : c->trees->maps[row_of(g, i)];
}

/* the node map of tree node ni, its children's maps made (they ended before it) */
static ERL_NIF_TERM node_map(es_event_rows *c, const tree_group *g, const es_ct_tree *tree, int32_t ni,
                             const ERL_NIF_TERM *node_maps) {
    ErlNifEnv *env = c->env;
    tree_rows *t = c->trees;
    const es_ct_node *node = &tree->nodes[ni];
    ERL_NIF_TERM v[N__COUNT], values[N__COUNT];
    size_t call = row_of(g, node->call);
    v[N_EVENT] = t->maps[call];
    v[N_RETURN] = map_or_nil(c, g, node->ret);
    v[N_EXCEPTION] = map_or_nil(c, g, node->exception);
    v[N_TAIL_CALL] = map_or_nil(c, g, node->tail_call);
    v[N_STATUS] = t->ta.status[node->status];
    v[N_DURATION_NS] = node->duration_end == ES_CT_NONE
                           ? c->a.nil
                           : ts_difference(env, t->ts[row_of(g, node->duration_end)], t->ts[call]);
    /* the chains run newest first: prepending puts them in time order */
    v[N_EVENTS] = enif_make_list(env, 0);
    for (int32_t i = node->last_event; i != ES_CT_NONE; i = tree->prev_event[i])
        v[N_EVENTS] = enif_make_list_cell(env, t->maps[row_of(g, i)], v[N_EVENTS]);
    v[N_CHILDREN] = enif_make_list(env, 0);
    for (int32_t k = node->last_child; k != ES_CT_NONE; k = tree->nodes[k].prev_sibling)
        v[N_CHILDREN] = enif_make_list_cell(env, node_maps[k], v[N_CHILDREN]);
    for (int f = 0; f < N__COUNT; f++) values[t->node_slot[f]] = v[f];
    return shape_make(env, &t->node, values);
}

/* the root node maps of the n events of one process; NULL, or the error to raise */
static const char *group_roots(es_event_rows *c, const tree_group *g, size_t n, ERL_NIF_TERM *roots) {
    es_ct_event *gathered = NULL;
    const es_ct_event *cts = c->trees->cts + g->start;
    ERL_NIF_TERM *node_maps;
    es_ct_tree tree;
    int built;
    if (g->order) {
        if (!(gathered = enif_alloc((n + 1) * sizeof *gathered))) return OUT_OF_MEMORY;
        for (size_t i = 0; i < n; i++) gathered[i] = c->trees->cts[g->order[g->start + i]];
        cts = gathered;
    }
    built = es_ct_build(cts, n, 1, &tree);
    enif_free(gathered);
    if (!built) return OUT_OF_MEMORY;
    if (!(node_maps = enif_alloc((tree.n_nodes + 1) * sizeof *node_maps))) {
        es_ct_free(&tree);
        return OUT_OF_MEMORY;
    }
    for (size_t k = 0; k < tree.n_finished; k++)
        node_maps[tree.finished[k]] = node_map(c, g, &tree, tree.finished[k], node_maps);
    *roots = enif_make_list(c->env, 0);
    for (int32_t k = tree.last_root; k != ES_CT_NONE; k = tree.nodes[k].prev_sibling)
        *roots = enif_make_list_cell(c->env, node_maps[k], *roots);
    enif_free(node_maps);
    es_ct_free(&tree);
    return NULL;
}

typedef struct row_key {
    ERL_NIF_TERM pid;
    uint64_t id;
    uint32_t row;
} row_key;

/* by pid (term order), then id, then row: each process's events in id order, as
   EventCorrelator groups them (a stable sort by id, then by process) */
static int by_pid_id_row(const void *x, const void *y) {
    const row_key *a = x, *b = y;
    int c = enif_compare(a->pid, b->pid);
    if (c) return c;
    if (a->id != b->id) return a->id < b->id ? -1 : 1;
    return a->row < b->row ? -1 : a->row > b->row;
}

/* the rows grouped by process, each in id order: NULL (the rows are one process's, in order),
   or the order (*error set when out of memory) */
static uint32_t *group_order(es_event_rows *c, const char **error) {
    tree_rows *t = c->trees;
    row_key *keys;
    uint32_t *order;
    if (t->sorted) return NULL;
    if (c->n >= UINT32_MAX || !(keys = enif_alloc(c->n * sizeof *keys))) return (*error = OUT_OF_MEMORY), NULL;
    for (size_t i = 0; i < c->n; i++) keys[i] = (row_key){t->pids[i], t->cts[i].id, (uint32_t)i};
    qsort(keys, c->n, sizeof *keys, by_pid_id_row);
    if ((order = enif_alloc(c->n * sizeof *order)))
        for (size_t i = 0; i < c->n; i++) order[i] = keys[i].row;
    else
        *error = OUT_OF_MEMORY;
    enif_free(keys);
    return order;
}

/* query_call_trees/3: {[{pid, [root node]}] in pid order, truncated_count}, or (:words) {an upper
   bound of the heap words of that answer, its events}, or raises; frees c */
ERL_NIF_TERM es_event_rows_end_trees(es_event_rows *c) {
    ErlNifEnv *env = c->env;
    const char *error = c->error;
    ERL_NIF_TERM groups = enif_make_list(env, 0), roots;
    uint32_t *order = NULL;
    if (c->sizing) {
        groups = enif_make_tuple2(env, enif_make_uint64(env, c->words), enif_make_uint64(env, c->n));
        free_rows(c);
        return groups;
    }
    if (!error && !c->trees)
        error = "query_call_trees: the clock must be {clock, %ElixirScope.Event{}, node shape, expected events}";
    if (!error && c->n) order = group_order(c, &error);
    /* built from the last process back: the list is in pid order */
    for (size_t end = c->n; !error && end > 0;) {
        size_t start = end - 1;
        const ERL_NIF_TERM *pids = c->trees->pids;
        if (!order) start = 0;
        while (start > 0 && enif_is_identical(pids[order[start - 1]], pids[order[end - 1]])) start--;
        tree_group g = {order, start};
        if (!(error = group_roots(c, &g, end - start, &roots)))
            groups = enif_make_list_cell(env, enif_make_tuple2(env, pids[row_of(&g, 0)], roots), groups);
        end = start;
    }
    enif_free(order);
    if (!error) groups = enif_make_tuple2(env, groups, enif_make_uint64(env, c->truncated));
    free_rows(c);
    return error ? es_raise_arg(env, error) : groups;
}
