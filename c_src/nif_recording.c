/* NIF glue of recording files, version 3 (c_src/recording_file.c): saves a store (a live
 * session's, or a loaded recording's) and loads a file into a store of its own, which answers
 * queries through the same es_store_query as the live store.
 *
 * A loaded recording is a resource holding the store, the file's distinct words (the ETF of
 * each pid and atom its events name) and, once recording_ready/1 has made them terms, those
 * terms in an environment of its own. Its store keeps word numbers where the live store keeps
 * VM words: a recorded pid may be another node's (or another run's), which is no immediate. */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elixir_scope/recording_file.h"
#include "nif_glue.h"

enum { T_RECORDING = 0, T_WRITER = 1 };

typedef struct es_recording {
    es_store *store;
    es_recr *reader;
    ErlNifEnv *terms_env;
    ERL_NIF_TERM *terms; /* word w is terms[w - 1], once ready */
    uint32_t nterms;
    _Atomic int ready;
    ErlNifMutex *lock; /* recording_ready/1 runs once */
} es_recording;

typedef struct es_writer {
    FILE *f;
    es_recw *w;
} es_writer;

static void recording_dtor(ErlNifEnv *env, void *obj) {
    es_recording *r = obj;
    (void)env;
    if (r->store) es_store_destroy(r->store);
    es_recr_free(r->reader);
    if (r->terms_env) enif_free_env(r->terms_env);
    enif_free(r->terms);
    if (r->lock) enif_mutex_destroy(r->lock);
}

static void writer_dtor(ErlNifEnv *env, void *obj) {
    es_writer *w = obj;
    (void)env;
    es_recw_free(w->w);
    if (w->f) fclose(w->f);
}

int es_nif_recording_open_types(ErlNifEnv *env, ErlNifResourceType **types) {
    ErlNifResourceFlags fl = ERL_NIF_RT_CREATE | ERL_NIF_RT_TAKEOVER;
    types[T_RECORDING] = enif_open_resource_type(env, NULL, "elixir_scope_recording", recording_dtor, fl, NULL);
    types[T_WRITER] = enif_open_resource_type(env, NULL, "elixir_scope_recording_writer", writer_dtor, fl, NULL);
    return types[T_RECORDING] && types[T_WRITER] ? 0 : -1;
}

static ERL_NIF_TERM error_tuple(ErlNifEnv *env, const char *msg) {
    ERL_NIF_TERM bin;
    size_t n = strlen(msg);
    memcpy(enif_make_new_binary(env, n, &bin), msg, n);
    return enif_make_tuple2(env, enif_make_atom(env, "error"), bin);
}

static es_recording *get_recording(ErlNifEnv *env, ERL_NIF_TERM t, int ready) {
    es_recording *r;
    if (!enif_get_resource(env, t, es_nif_recording_types(env)[T_RECORDING], (void **)&r)) return NULL;
    return !ready || atomic_load(&r->ready) ? r : NULL;
}

/* An absolute path (the Elixir side expands every path it is given). */
static int get_path(ErlNifEnv *env, ERL_NIF_TERM t, char *out, size_t cap) {
    ErlNifBinary b;
    if (!enif_inspect_binary(env, t, &b) || b.size < 2 || b.data[0] != '/' || b.size >= cap || memchr(b.data, 0, b.size))
        return 0;
    memcpy(out, b.data, b.size);
    out[b.size] = 0;
    return 1;
}

/* The word number of a term among a recording's words (0 when it names none). */
static uint64_t word_of(const es_recording *r, ERL_NIF_TERM t) {
    for (uint32_t i = 0; i < r->nterms; i++)
        if (enif_is_identical(r->terms[i], t)) return (uint64_t)i + 1;
    return 0;
}

/* A recording's filters: pid, module and function become word numbers; 0 when one of them is
 * not in the recording (nothing can match). */
static int parse_recording_query(ErlNifEnv *env, const es_recording *r, ERL_NIF_TERM map, es_query *q,
                                 const char **err) {
    ERL_NIF_TERM keys[3] = {enif_make_atom(env, "pid"), enif_make_atom(env, "module"), enif_make_atom(env, "function")};
    ERL_NIF_TERM vals[3], rest = map;
    int has[3];
    uint64_t words[3] = {0, 0, 0};
    if (!enif_is_map(env, map)) return (*err = "expects a map of filters"), -1;
    for (int i = 0; i < 3; i++) {
        has[i] = enif_get_map_value(env, map, keys[i], &vals[i]);
        if (has[i]) enif_make_map_remove(env, rest, keys[i], &rest);
    }
    if (has[0] && !enif_is_pid(env, vals[0])) return (*err = "pid filter must be a pid"), -1;
    if ((has[1] && !enif_is_atom(env, vals[1])) || (has[2] && (!enif_is_atom(env, vals[2]) || !has[1])))
        return (*err = "module and function filters must be atoms (function needs module)"), -1;
    ERL_NIF_TERM arity;
    if (enif_get_map_value(env, rest, enif_make_atom(env, "arity"), &arity) && !has[2])
        return (*err = "arity filter must be an integer in 0..254 and needs a function filter"), -1;
    int present = 1;
    for (int i = 0; i < 3; i++)
        if (has[i] && !(words[i] = word_of(r, vals[i]))) present = 0;
    /* parse the rest; the arity filter needs a function filter there: a placeholder one */
    if (has[2]) {
        enif_make_map_put(env, rest, keys[1], keys[1], &rest);
        enif_make_map_put(env, rest, keys[2], keys[2], &rest);
    }
    if (!es_nif_parse_query(env, rest, q, err)) return -1;
    q->fields &= ~(uint32_t)(ES_Q_PID | ES_Q_MODULE | ES_Q_FUNCTION);
    if (has[0]) q->fields |= ES_Q_PID, q->pid = words[0];
    if (has[1]) q->fields |= ES_Q_MODULE, q->module = words[1];
    if (has[2]) q->fields |= ES_Q_FUNCTION, q->function = words[2];
    return present;
}

/* ---- save -------------------------------------------------------------------- */

typedef struct word_src {
    ErlNifEnv *env;
    const es_recording *rec; /* NULL: the live store, whose words are VM terms */
} word_src;

static int word_etf(void *ctx, uint64_t word, es_buf *out) {
    word_src *src = ctx;
    if (src->rec) {
        uint32_t len;
        if (word == 0 || word > es_recr_words(src->rec->reader)) return -1;
        const uint8_t *p = es_recr_word(src->rec->reader, (uint32_t)word, &len);
        return es_buf_put(out, p, len);
    }
    ErlNifBinary bin;
    if (!enif_term_to_binary(src->env, (ERL_NIF_TERM)word, &bin)) return -1;
    int rc = es_buf_put(out, bin.data, bin.size);
    enif_release_binary(&bin);
    return rc;
}

static ERL_NIF_TERM word_term(ErlNifEnv *env, const es_recording *rec, uint64_t word) {
    ErlNifPid local;
    ERL_NIF_TERM t;
    if (!rec) return (ERL_NIF_TERM)word;
    if (!word || word > rec->nterms) return enif_make_atom(env, "nil");
    t = rec->terms[word - 1];
    /* atoms and local pids are the same words in every environment: only others are copied */
    return enif_is_atom(env, t) || enif_get_local_pid(env, t, &local) ? t : enif_make_copy(env, t);
}

typedef struct list_acc {
    ErlNifEnv *env;
    const es_recording *rec;
    ERL_NIF_TERM list;
} list_acc;

static void add_line(void *ctx, uint64_t module, uint32_t line) {
    list_acc *a = ctx;
    ERL_NIF_TERM t = enif_make_tuple2(a->env, word_term(a->env, a->rec, module), enif_make_uint(a->env, line));
    a->list = enif_make_list_cell(a->env, t, a->list);
}

static void add_atom(void *ctx, const uint8_t *name, uint32_t len) {
    list_acc *a = ctx;
    ERL_NIF_TERM bin;
    memcpy(enif_make_new_binary(a->env, len, &bin), name, len);
    a->list = enif_make_list_cell(a->env, bin, a->list);
}

/* recording_save(session | recording, path, filters) -> {writer, count, [{module, line}], [atom name]}
 * | {:error, message}: writes the segments of the matching events; recording_save_end/2 ends the file. */
ERL_NIF_TERM es_nif_recording_save(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    char path[4096];
    es_query q;
    const char *err = NULL;
    (void)argc;
    word_src src = {env, get_recording(env, argv[0], 1)};
    es_store *store = src.rec ? src.rec->store : es_nif_session_store(env, argv[0]);
    if (!store) return es_raise_arg(env, "recording_save/3 expects a session or a loaded recording");
    if (!get_path(env, argv[1], path, sizeof path)) return es_raise_arg(env, "recording_save/3: bad path");
    int present = src.rec ? parse_recording_query(env, src.rec, argv[2], &q, &err) : es_nif_parse_query(env, argv[2], &q, &err);
    if (present < 0 || (!src.rec && !present)) return es_raise_arg(env, err);
    ERL_NIF_TERM v;
    if (!enif_get_map_value(env, argv[2], enif_make_atom(env, "limit"), &v)) q.limit = 0; /* a save has no default limit */

    es_writer *w = enif_alloc_resource(es_nif_recording_types(env)[T_WRITER], sizeof *w);
    if (!w) return es_raise_arg(env, "out of memory");
    memset(w, 0, sizeof *w);
    ERL_NIF_TERM wt = enif_make_resource(env, w);
    enif_release_resource(w);
    if (!(w->f = fopen(path, "wb"))) return error_tuple(env, strerror(errno));
    setvbuf(w->f, NULL, _IOFBF, 1 << 20);
    if (!(w->w = es_recw_new(w->f, word_etf, &src))) return error_tuple(env, "could not start the file");
    if (present) es_store_query(store, &q, es_recw_add, w->w);
    if (es_recw_error(w->w)) return error_tuple(env, es_recw_error(w->w));
    list_acc lines = {env, src.rec, enif_make_list(env, 0)}, atoms = {env, src.rec, enif_make_list(env, 0)};
    es_recw_lines(w->w, add_line, &lines);
    es_recw_atoms(w->w, add_atom, &atoms);
    return enif_make_tuple4(env, wt, enif_make_uint64(env, es_recw_count(w->w)), lines.list, atoms.list);
}

/* recording_save_end(writer, meta) -> :ok | {:error, message}: the meta, the trailer, synced. */
ERL_NIF_TERM es_nif_recording_save_end(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    es_writer *w;
    ErlNifBinary meta;
    (void)argc;
    if (!enif_get_resource(env, argv[0], es_nif_recording_types(env)[T_WRITER], (void **)&w) || !w->w || !w->f)
        return es_raise_arg(env, "recording_save_end/2 expects an open writer");
    if (!enif_inspect_binary(env, argv[1], &meta) || meta.size > UINT32_MAX)
        return es_raise_arg(env, "recording_save_end/2: meta must be a binary");
    int rc = es_recw_end(w->w, meta.data, (uint32_t)meta.size);
    const char *e = es_recw_error(w->w);
    if (rc == 0 && fsync(fileno(w->f)) != 0) rc = -1, e = strerror(errno);
    if (fclose(w->f) != 0 && rc == 0) rc = -1, e = strerror(errno);
    w->f = NULL;
    es_recw_free(w->w);
    w->w = NULL;
    return rc == 0 ? enif_make_atom(env, "ok") : error_tuple(env, e ? e : "could not write the recording");
}

/* ---- load -------------------------------------------------------------------- */

/* recording_open(path, max_bytes) -> {:ok, recording, meta, [atom name], [{module, function, arity}]}
 * | {:error, message}: reads and checks the whole file into a store (the atoms are indexes into the
 * list of names); nothing is a term yet. */
ERL_NIF_TERM es_nif_recording_open(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    char path[4096];
    ErlNifUInt64 max_bytes;
    struct stat st;
    (void)argc;
    if (!get_path(env, argv[0], path, sizeof path)) return es_raise_arg(env, "recording_open/2: bad path");
    if (!enif_get_uint64(env, argv[1], &max_bytes)) return es_raise_arg(env, "recording_open/2: bad max_bytes");
    FILE *f = fopen(path, "rb");
    if (!f) return error_tuple(env, strerror(errno));
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return error_tuple(env, "it is not a regular file");
    }
    if ((uint64_t)st.st_size > max_bytes) {
        fclose(f);
        return error_tuple(env, "recording refused: the file is larger than max_total_bytes allows");
    }
    es_recording *r = enif_alloc_resource(es_nif_recording_types(env)[T_RECORDING], sizeof *r);
    if (!r) {
        fclose(f);
        return es_raise_arg(env, "out of memory");
    }
    memset(r, 0, sizeof *r);
    ERL_NIF_TERM rt = enif_make_resource(env, r);
    enif_release_resource(r);
    r->store = es_store_create(NULL);
    r->reader = es_recr_new();
    r->lock = enif_mutex_create("elixir_scope_recording");
    if (!r->store || !r->reader || !r->lock) {
        fclose(f);
        return es_raise_arg(env, "out of memory");
    }
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    int rc = es_recr_load(r->reader, f, (uint64_t)st.st_size, r->store);
    fclose(f);
    if (rc != 0) return error_tuple(env, es_recr_error(r->reader));
    uint32_t len;
    const uint8_t *p = es_recr_meta(r->reader, &len);
    ERL_NIF_TERM meta, atoms = enif_make_list(env, 0), exports = enif_make_list(env, 0);
    memcpy(enif_make_new_binary(env, len, &meta), p, len);
    for (uint32_t i = es_recr_atoms(r->reader); i-- > 0;) {
        ERL_NIF_TERM bin;
        p = es_recr_atom(r->reader, i, &len);
        memcpy(enif_make_new_binary(env, len, &bin), p, len);
        atoms = enif_make_list_cell(env, bin, atoms);
    }
    for (uint32_t i = es_recr_exports(r->reader); i-- > 0;) {
        uint32_t m, fn;
        uint8_t a;
        es_recr_export(r->reader, i, &m, &fn, &a);
        exports = enif_make_list_cell(
            env, enif_make_tuple3(env, enif_make_uint(env, m), enif_make_uint(env, fn), enif_make_uint(env, a)), exports);
    }
    return enif_make_tuple5(env, enif_make_atom(env, "ok"), rt, meta, atoms, exports);
}

/* recording_ready(recording) -> :ok | {:error, message}: the words become terms, decoded without
 * creating atoms (the caller has created the file's atoms it admits). */
ERL_NIF_TERM es_nif_recording_ready(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    es_recording *r = get_recording(env, argv[0], 0);
    const char *err = NULL;
    char msg[160];
    (void)argc;
    if (!r) return es_raise_arg(env, "recording_ready/1 expects a recording");
    enif_mutex_lock(r->lock);
    if (!atomic_load(&r->ready)) {
        uint32_t n = es_recr_words(r->reader);
        r->terms_env = enif_alloc_env();
        r->terms = enif_alloc((size_t)(n ? n : 1) * sizeof(ERL_NIF_TERM));
        if (!r->terms_env || !r->terms) err = "out of memory";
        for (uint32_t w = 1; !err && w <= n; w++) {
            uint32_t len;
            const uint8_t *p = es_recr_word(r->reader, w, &len);
            /* the walk checked its shape; the VM also bounds a pid's fields */
            if (enif_binary_to_term(r->terms_env, p, len, &r->terms[w - 1], ERL_NIF_BIN2TERM_SAFE) != len) {
                snprintf(msg, sizeof msg, "corrupted recording: a process or atom of its events cannot be decoded at byte %llu",
                         (unsigned long long)es_recr_word_at(r->reader, w));
                err = msg;
            }
        }
        if (!err) {
            r->nterms = n;
            atomic_store(&r->ready, 1);
        }
    }
    enif_mutex_unlock(r->lock);
    return err ? error_tuple(env, err) : enif_make_atom(env, "ok");
}

/* ---- queries ------------------------------------------------------------------- */

typedef struct rq_ctx {
    ErlNifEnv *env;
    const es_recording *r;
    ERL_NIF_TERM *items;
    size_t n, cap;
    int oom;
} rq_ctx;

static int rq_collect(void *ctxp, const es_event_view *ev) {
    rq_ctx *c = ctxp;
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 64;
        ERL_NIF_TERM *ni = enif_realloc(c->items, ncap * sizeof(ERL_NIF_TERM));
        if (!ni) return (c->oom = 1);
        c->items = ni;
        c->cap = ncap;
    }
    es_event_view v = *ev;
    v.head.pid = v.head.pid ? (uint64_t)word_term(c->env, c->r, v.head.pid) : 0;
    v.head.module = v.head.module ? (uint64_t)word_term(c->env, c->r, v.head.module) : 0;
    v.head.function = v.head.function ? (uint64_t)word_term(c->env, c->r, v.head.function) : 0;
    c->items[c->n++] = es_nif_event_to_term(c->env, &v);
    return 0;
}

static ERL_NIF_TERM rq_result(rq_ctx *c) {
    if (c->oom) {
        enif_free(c->items);
        return es_raise_arg(c->env, "out of memory building the query result");
    }
    ERL_NIF_TERM list = enif_make_list_from_array(c->env, c->items, (unsigned)c->n);
    enif_free(c->items);
    return list;
}

/* recording_query(recording, filters) -> [event tuple], as query/2 answers for a session. */
ERL_NIF_TERM es_nif_recording_query(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    es_recording *r = get_recording(env, argv[0], 1);
    es_query q;
    const char *err = NULL;
    rq_ctx c = {env, r, NULL, 0, 0, 0};
    (void)argc;
    if (!r) return es_raise_arg(env, "recording_query/2 expects a ready recording");
    int present = parse_recording_query(env, r, argv[1], &q, &err);
    if (present < 0) return es_raise_arg(env, err);
    if (present) es_store_query(r->store, &q, rq_collect, &c);
    return rq_result(&c);
}

typedef struct rows_ctx {
    ErlNifEnv *env;
    const es_recording *r;
    es_event_rows *rows;
} rows_ctx;

static int rows_collect(void *ctxp, const es_event_view *ev) {
    rows_ctx *c = ctxp;
    ErlNifEnv *env = c->env;
    es_event_view v = *ev;
    v.head.pid = v.head.pid ? (uint64_t)word_term(env, c->r, v.head.pid) : 0;
    v.head.module = v.head.module ? (uint64_t)word_term(env, c->r, v.head.module) : 0;
    v.head.function = v.head.function ? (uint64_t)word_term(env, c->r, v.head.function) : 0;
    return es_event_rows_add(c->rows, &v, 1);
}

/* recording_query_call_trees(recording, filters, shapes | :words): as query_call_trees/3 answers
   for a session (nif_query.c) */
ERL_NIF_TERM es_nif_recording_query_call_trees(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    es_recording *r = get_recording(env, argv[0], 1);
    es_query q;
    const char *err = NULL;
    rows_ctx c = {env, r, NULL};
    (void)argc;
    if (!r) return es_raise_arg(env, "recording_query_call_trees/3 expects a ready recording");
    int present = parse_recording_query(env, r, argv[1], &q, &err);
    if (present < 0) return es_raise_arg(env, err);
    if (!es_event_rows_begin(env, argv[2], &c.rows))
        return es_raise_arg(env, "recording_query_call_trees/3: clock must be nil or {monotonic_ns, system_us} "
                                 "(integers within 2^62 of 0)");
    if (present) es_store_query(r->store, &q, rows_collect, &c);
    return es_event_rows_end_trees(c.rows);
}

/* recording_get(recording, id) -> event tuple | nil */
ERL_NIF_TERM es_nif_recording_get(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    es_recording *r = get_recording(env, argv[0], 1);
    ErlNifUInt64 id;
    rq_ctx c = {env, r, NULL, 0, 0, 0};
    (void)argc;
    if (!r) return es_raise_arg(env, "recording_get/2 expects a ready recording");
    if (!enif_get_uint64(env, argv[1], &id)) return es_raise_arg(env, "recording_get/2: id must be a non-negative integer");
    if (!es_store_get(r->store, id, rq_collect, &c) || c.n == 0) {
        enif_free(c.items);
        return enif_make_atom(env, "nil");
    }
    ERL_NIF_TERM ev = c.items[0];
    enif_free(c.items);
    return ev;
}

/* recording_info(recording) -> {events, first_id, last_id, bytes_used, [pid]} */
ERL_NIF_TERM es_nif_recording_info(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    es_recording *r = get_recording(env, argv[0], 1);
    es_store_stats st;
    (void)argc;
    if (!r) return es_raise_arg(env, "recording_info/1 expects a ready recording");
    es_store_get_stats(r->store, &st);
    ERL_NIF_TERM pids = enif_make_list(env, 0);
    for (uint32_t i = r->nterms; i-- > 0;)
        if (enif_is_pid(env, r->terms[i])) pids = enif_make_list_cell(env, enif_make_copy(env, r->terms[i]), pids);
    return enif_make_tuple5(env, enif_make_uint64(env, st.live_events), enif_make_uint64(env, st.first_id),
                            enif_make_uint64(env, st.last_id), enif_make_uint64(env, st.bytes_used), pids);
}
