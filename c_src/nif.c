/* NIF glue: converts terms, owns the session resource, and calls the pure C
 * components (ring buffer, term codec, event store). No capture logic here. */
#include <erl_nif.h>
#include <dlfcn.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "elixir_scope/clock.h"
#include "elixir_scope/event_store.h"
#include "elixir_scope/llm_client.h"
#include "elixir_scope/pid_scan.h"
#include "elixir_scope/ring_buffer.h"
#include "elixir_scope/term_codec.h"
#include "nif_glue.h"

/* ---- atoms (created once at load, immutable afterwards) ---------------- */
typedef struct es_atoms {
    ERL_NIF_TERM ok, error, nil, true_, false_, kinds[ES_KIND__COUNT];
    ERL_NIF_TERM drop_newest, overwrite_oldest, asc, desc;
    ERL_NIF_TERM k_ring_capacity, k_overflow, k_max_depth, k_max_width, k_max_binary, k_max_bytes,
        k_redact, k_redact_allow, k_store_max_bytes, k_segment_events, k_ring_payload_budget, k_ring_max_wait_ns;
    ERL_NIF_TERM k_pid, k_module, k_function, k_arity, k_kinds, k_call_id, k_correlation_id, k_since,
        k_until, k_after_id, k_before_id, k_limit, k_order;
    ERL_NIF_TERM s_emitted, s_pushed, s_stored, s_dropped_full, s_overwritten, s_dropped_store,
        s_pending, s_capacity, s_evicted_events, s_evicted_segments, s_live_events, s_bytes_used,
        s_record_bytes, s_payload_bytes, s_index_bytes, s_segments, s_first_id, s_last_id, s_min_ts,
        s_max_ts, s_full_since_ns, s_enabled, s_installed, s_dropped_encode, s_waits, s_wait_ns, s_pool_bytes,
        s_heap_fallbacks;
    ERL_NIF_TERM exc_struct, exc_module, exc_message, exc_exception;
} es_atoms;

const char *const KIND_NAMES[ES_KIND__COUNT] = {
    "call", "return", "exception", "tail_call", "local", "expr",
    "state", "send", "receive", "spawn", "exit", "custom"};

/* The session: one ring, one store, the capture limits. Lives as a resource. */
typedef struct es_session {
    es_ring *ring;
    es_store *store;
    es_codec_limits limits;
    es_redact_set redact;
    es_redact_cache redact_cache;
    ErlNifMutex *drain_lock; /* drains are serialised so store ids keep ring order */
    _Atomic int enabled;
    _Atomic uint64_t dropped_store;  /* drained events the store refused */
    _Atomic uint64_t dropped_encode; /* events whose payload could not be encoded (OOM) */
} es_session;

#define INFLIGHT_STRIPES 64

/* erts_encode_ext(term, &cursor): the VM's own ETF writer (version byte first), exported by the
 * emulator but not part of the NIF API; see checked_encode_ext. */
typedef void (*es_encode_ext_fn)(ERL_NIF_TERM term, unsigned char **cursor);

typedef struct es_priv {
    ErlNifResourceType *session_type;
    ErlNifResourceType *recording_types[ES_NIF_RECORDING_TYPES]; /* nif_recording.c */
    es_atoms atoms;
    es_term_ops ops;       /* NIF_TERM_OPS, with the layout when the VM matches it */
    es_term_layout layout;
    es_clock clock;           /* event timestamps */
    es_atom_cache atom_cache; /* atoms never leave the VM's atom table: valid for the life of the load */
    _Atomic(es_session *) active; /* the installed session (a kept resource reference) */
    _Atomic int switch_mode;      /* ElixirScope.Capture.Control's mode word, for the dynamic switch */
    es_encode_ext_fn encode_ext;  /* the VM's ETF writer for pids, ports and references, or NULL */
    /* producers inside a push, striped by thread so that schedulers do not share a cache line;
       uninstall waits for every stripe to be 0 */
    struct {
        _Atomic uint64_t n;
        char pad[64 - sizeof(uint64_t)];
    } inflight[INFLIGHT_STRIPES];
} es_priv;

#define PRIV(env) ((es_priv *)enif_priv_data(env))

/* ---- errors -------------------------------------------------------------- */
ERL_NIF_TERM es_raise_arg(ErlNifEnv *env, const char *msg) {
    es_atoms *a = &PRIV(env)->atoms;
    ERL_NIF_TERM keys[3] = {a->exc_struct, a->exc_message, a->exc_exception};
    ERL_NIF_TERM vals[3];
    ERL_NIF_TERM map;
    ErlNifBinary bin;
    size_t n = strlen(msg);
    if (!enif_alloc_binary(n, &bin)) return enif_make_badarg(env);
    memcpy(bin.data, msg, n);
    vals[0] = a->exc_module;
    vals[1] = enif_make_binary(env, &bin);
    vals[2] = a->true_;
    if (!enif_make_map_from_arrays(env, keys, vals, 3, &map)) return enif_make_badarg(env);
    return enif_raise_exception(env, map);
}

/* ---- term ops for the codec (over ERL_NIF_TERM) -------------------------- */
static es_term_type op_type(void *envp, es_term t) {
    ErlNifEnv *env = envp;
    ERL_NIF_TERM term = (ERL_NIF_TERM)t;
    ErlNifSInt64 i;
    switch (enif_term_type(env, term)) {
    case ERL_NIF_TERM_TYPE_ATOM: return ES_T_ATOM;
    case ERL_NIF_TERM_TYPE_FLOAT: return ES_T_FLOAT;
    case ERL_NIF_TERM_TYPE_INTEGER: return enif_get_int64(env, term, &i) ? ES_T_INT : ES_T_BIGINT;
    case ERL_NIF_TERM_TYPE_BITSTRING: return enif_is_binary(env, term) ? ES_T_BINARY : ES_T_BITSTRING;
    case ERL_NIF_TERM_TYPE_LIST: return enif_is_empty_list(env, term) ? ES_T_NIL : ES_T_LIST;
    case ERL_NIF_TERM_TYPE_TUPLE: return ES_T_TUPLE;
    case ERL_NIF_TERM_TYPE_MAP: return ES_T_MAP;
    case ERL_NIF_TERM_TYPE_FUN: return ES_T_FUN;
    default: return ES_T_OTHER; /* pid, port, reference */
    }
}

static int op_get_int64(void *env, es_term t, int64_t *out) {
    ErlNifSInt64 v;
    if (!enif_get_int64(env, (ERL_NIF_TERM)t, &v)) return 0;
    *out = (int64_t)v;
    return 1;
}

static int op_get_double(void *env, es_term t, double *out) {
    return enif_get_double(env, (ERL_NIF_TERM)t, out);
}

/* OTP 25 only gives atom names in Latin-1; the codec wants UTF-8. Atoms with
 * characters beyond Latin-1 fail here and the codec falls back to `external`. */
static int op_get_atom(void *env, es_term t, char *buf, size_t cap) {
    char latin1[256];
    int n = enif_get_atom(env, (ERL_NIF_TERM)t, latin1, sizeof(latin1), ERL_NIF_LATIN1);
    size_t out = 0;
    if (n <= 0) return -1;
    for (int i = 0; i < n - 1; i++) {
        unsigned char c = (unsigned char)latin1[i];
        if (out + 2 >= cap) return -1;
        if (c < 0x80) {
            buf[out++] = (char)c;
        } else {
            buf[out++] = (char)(0xC0 | (c >> 6));
            buf[out++] = (char)(0x80 | (c & 0x3F));
        }
    }
    buf[out] = '\0';
    return (int)out;
}

static int op_get_binary(void *envp, es_term t, const uint8_t **data, size_t *size, unsigned *tail_bits) {
    ErlNifEnv *env = envp;
    ErlNifBinary bin;
    if (enif_inspect_binary(env, (ERL_NIF_TERM)t, &bin)) {
        *data = bin.data;
        *size = bin.size;
        *tail_bits = 0;
        return 1;
    }
    /* A bitstring that is not byte-aligned: OTP 25 NIFs cannot see its bits
     * except through its ETF, BIT_BINARY_EXT = 131, 77, Len:32, Bits, Data.
     * The binary is handed to a term of env, which frees it after the call. */
    if (!enif_term_to_binary(env, (ERL_NIF_TERM)t, &bin)) return 0;
    enif_make_binary(env, &bin);
    if (bin.size < 7 || bin.data[1] != 77) return 0;
    size_t len = (size_t)bin.data[2] << 24 | (size_t)bin.data[3] << 16 | (size_t)bin.data[4] << 8 | bin.data[5];
    unsigned bits = bin.data[6];
    if (len == 0 || len != bin.size - 7 || bits == 0 || bits > 8) return 0;
    *data = bin.data + 7;
    *size = bits == 8 ? len : len - 1;
    *tail_bits = bits == 8 ? 0 : bits;
    return 1;
}

static int op_list_cell(void *env, es_term t, es_term *head, es_term *tail) {
    ERL_NIF_TERM h, tl;
    if (!enif_get_list_cell(env, (ERL_NIF_TERM)t, &h, &tl)) return 0;
    *head = h;
    *tail = tl;
    return 1;
}

static int op_tuple(void *env, es_term t, int *arity, const es_term **elems) {
    const ERL_NIF_TERM *e;
    if (!enif_get_tuple(env, (ERL_NIF_TERM)t, arity, &e)) return 0;
    *elems = (const es_term *)e;
    return 1;
}

static size_t op_map_size(void *env, es_term t) {
    size_t n = 0;
    enif_get_map_size(env, (ERL_NIF_TERM)t, &n);
    return n;
}

/* The first n pairs only: a map is never iterated further than the capture keeps. */
static int op_map_pairs(void *env, es_term t, es_term *keys, es_term *values, size_t n) {
    ErlNifMapIterator it;
    size_t i = 0;
    if (!enif_map_iterator_create(env, (ERL_NIF_TERM)t, &it, ERL_NIF_MAP_ITERATOR_FIRST)) return -1;
    while (i < n) {
        ERL_NIF_TERM k, v;
        if (!enif_map_iterator_get_pair(env, &it, &k, &v)) break;
        keys[i] = k;
        values[i] = v;
        i++;
        enif_map_iterator_next(env, &it);
    }
    enif_map_iterator_destroy(env, &it);
    return i == n ? 0 : -1;
}

/* The ETF of a pid, port or reference is bounded: a node name is an atom of at most 255
 * characters (1,020 bytes of UTF-8), a reference has at most 5 words. */
#define IDENT_ETF_MAX 2048

/* Pids, ports, references; the ETF of a big integer. Identifiers go straight through the VM's
 * writer when it was verified at load: enif_term_to_binary wraps the same call in the allocation
 * and release of a binary, which made a pid in a payload cost ~200 ns more than the bytes. */
static int op_external(void *envp, es_term t, es_buf *out) {
    ErlNifEnv *env = envp;
    ERL_NIF_TERM term = (ERL_NIF_TERM)t;
    es_encode_ext_fn encode_ext = PRIV(env)->encode_ext;
    ErlNifBinary bin;
    int rc;
    if (encode_ext && (enif_is_pid(env, term) || enif_is_ref(env, term) || enif_is_port(env, term))) {
        unsigned char etf[IDENT_ETF_MAX], *end = etf;
        encode_ext(term, &end);
        return end - etf > 1 ? es_buf_put(out, etf + 1, (size_t)(end - etf) - 1) : -1;
    }
    if (enif_is_fun(env, term)) return -1; /* never a fun's environment, whoever asks */
    if (!enif_term_to_binary(env, term, &bin)) return -1;
    rc = bin.size > 1 ? es_buf_put(out, bin.data + 1, bin.size - 1) : -1;
    enif_release_binary(&bin);
    return rc;
}

/* An atom in ETF (the 4 atom tags) into a NUL-terminated UTF-8 name; returns bytes read or 0. */
static size_t etf_atom_name(const uint8_t *p, size_t avail, char *out, size_t cap) {
    size_t len, hdr, o = 0;
    int latin1;
    if (avail < 2) return 0;
    switch (p[0]) {
    case 119: len = p[1]; hdr = 2; latin1 = 0; break;  /* SMALL_ATOM_UTF8_EXT */
    case 115: len = p[1]; hdr = 2; latin1 = 1; break;  /* SMALL_ATOM_EXT */
    case 118: case 100:                                 /* ATOM_UTF8_EXT, ATOM_EXT */
        if (avail < 3) return 0;
        len = (size_t)p[1] << 8 | p[2];
        hdr = 3;
        latin1 = p[0] == 100;
        break;
    default: return 0;
    }
    if (avail < hdr + len) return 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = p[hdr + i];
        if (o + 3 > cap) return 0;
        if (latin1 && c >= 0x80) {
            out[o++] = (char)(0xC0 | (c >> 6));
            out[o++] = (char)(0x80 | (c & 0x3F));
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
    return hdr + len;
}

/* What a fun is, in O(1): never its environment. A closure prints as
 * #Fun<Module.Index.Uniq> (enif_snprintf does not walk the environment); an
 * external fun has a constant-size ETF, EXPORT_EXT = 113, Module, Name, Arity. */
static int op_fun_info(void *envp, es_term t, es_fun_info *fi) {
    ErlNifEnv *env = envp;
    char txt[ES_NAME_MAX + 64];
    int n = enif_snprintf(txt, sizeof txt, "%T", (ERL_NIF_TERM)t);
    if (n <= 0 || (size_t)n >= sizeof txt) return -1;
    if (strncmp(txt, "#Fun<", 5) == 0 && txt[n - 1] == '>') {
        char *dot2 = NULL, *dot1 = NULL;
        for (char *q = txt + n - 2; q > txt + 5; q--)
            if (*q == '.') {
                if (!dot2) dot2 = q;
                else { dot1 = q; break; }
            }
        if (!dot1) return -1;
        size_t mlen = (size_t)(dot1 - (txt + 5));
        if (mlen == 0 || mlen >= sizeof fi->module) return -1;
        memcpy(fi->module, txt + 5, mlen);
        fi->module[mlen] = '\0';
        fi->external = 0;
        fi->index = strtoull(dot1 + 1, NULL, 10);
        fi->uniq = strtoull(dot2 + 1, NULL, 10);
        return 0;
    }
    ErlNifBinary bin;
    if (!enif_term_to_binary(env, (ERL_NIF_TERM)t, &bin)) return -1;
    int rc = -1;
    if (bin.size > 2 && bin.data[1] == 113) {
        size_t off = 2, k;
        if ((k = etf_atom_name(bin.data + off, bin.size - off, fi->module, sizeof fi->module)) != 0) {
            off += k;
            if ((k = etf_atom_name(bin.data + off, bin.size - off, fi->name, sizeof fi->name)) != 0) {
                off += k;
                if (off + 2 == bin.size && bin.data[off] == 97) {
                    fi->arity = bin.data[off + 1];
                    fi->external = 1;
                    rc = 0;
                }
            }
        }
    }
    enif_release_binary(&bin);
    return rc;
}

static const es_term_ops NIF_TERM_OPS = {
    op_type, op_get_int64, op_get_double, op_get_atom, op_get_binary, op_list_cell,
    op_tuple, op_map_size, op_map_pairs, op_external, op_fun_info, NULL, NULL};

/* The layout of small integers, [] and cons cells of 64-bit BEAM (erts/emulator/beam/erl_term.h),
 * its tuples, heap binaries, local pids and references, and its flat maps (erl_map.h; every map of
 * up to 32 keys starts with the header word 0x13C on OTP 25), used by the codec only when terms
 * this VM makes read back as it says. */
static const es_term_layout BEAM_LAYOUT = {0xF, 0xF, 4, 0x3B, 0x3F, 0x0B, 0x3, 0x1, 0x3, 0x2, 0x3F, 0x0, 0x24, 6,
                                           0xF, 0x3, 0x10, 0x13C};

static const uint64_t *boxed_words(const es_term_layout *l, ERL_NIF_TERM t) {
    return (t & l->boxed_mask) == l->boxed_tag ? (const uint64_t *)(uintptr_t)(t - l->boxed_tag) : NULL;
}

/* Tuples and heap binaries the VM makes read back as the layout says (the elements and bytes at
 * the addresses enif_get_tuple and enif_inspect_binary give), and no other boxed term (a refc
 * or sub binary, a float, a big integer, a map, a reference, a fun, a pid) looks like either. */
static int boxed_layout_holds(ErlNifEnv *env, const es_term_layout *l) {
    ERL_NIF_TERM one = enif_make_int(env, 1), ok = enif_make_atom(env, "ok");
    ERL_NIF_TERM tuples[] = {enif_make_tuple(env, 0), enif_make_tuple1(env, one), enif_make_tuple2(env, ok, one),
                             enif_make_tuple(env, 5, one, ok, one, ok, enif_make_list(env, 0))};
    for (size_t i = 0; i < sizeof tuples / sizeof *tuples; i++) {
        const uint64_t *box = boxed_words(l, tuples[i]);
        const ERL_NIF_TERM *elems;
        int arity;
        if (!box || !enif_get_tuple(env, tuples[i], &arity, &elems) || (box[0] & l->header_mask) != l->tuple_tag ||
            box[0] >> l->header_shift != (uint64_t)arity || (const void *)(box + 1) != (const void *)elems)
            return 0;
    }
    static const size_t sizes[] = {0, 1, 7, 8, 9, 64};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        ERL_NIF_TERM t;
        unsigned char *d = enif_make_new_binary(env, sizes[i], &t);
        ErlNifBinary bin;
        for (size_t k = 0; k < sizes[i]; k++) d[k] = (unsigned char)(k * 7 + 1);
        const uint64_t *box = boxed_words(l, t);
        if (!box || !enif_inspect_binary(env, t, &bin) || (box[0] & l->header_mask) != l->heap_bin_tag ||
            box[1] != sizes[i] || bin.size != sizes[i] || (const void *)(box + 2) != (const void *)bin.data)
            return 0;
    }
    ErlNifBinary big;
    if (!enif_alloc_binary(1000, &big)) return 0;
    memset(big.data, 1, big.size);
    ERL_NIF_TERM refc = enif_make_binary(env, &big);
    ErlNifPid self;
    ERL_NIF_TERM others[] = {refc, enif_make_sub_binary(env, refc, 1, 10), enif_make_double(env, 1.5),
                             enif_make_int64(env, INT64_MAX), enif_make_new_map(env), enif_make_ref(env),
                             enif_self(env, &self) ? enif_make_pid(env, &self) : enif_make_ref(env)};
    for (size_t i = 0; i < sizeof others / sizeof *others; i++) {
        const uint64_t *box = boxed_words(l, others[i]);
        if (box && ((box[0] & l->header_mask) == l->tuple_tag || (box[0] & l->header_mask) == l->heap_bin_tag)) return 0;
    }
    return 1;
}

static int layout_holds(ErlNifEnv *env, const es_term_layout *l) {
    static const int64_t samples[] = {0, 1, -1, 255, 256, -129, 1000000007, -(1ll << 40), (1ll << 59) - 1, -(1ll << 59)};
    if (sizeof(ERL_NIF_TERM) != sizeof(uint64_t)) return 0;
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        ERL_NIF_TERM t = enif_make_int64(env, samples[i]);
        if ((t & l->small_mask) != l->small_tag || (int64_t)t >> l->small_shift != samples[i]) return 0;
    }
    /* no other kind of term may look like a small integer or [] */
    ERL_NIF_TERM others[] = {enif_make_atom(env, "ok"), enif_make_ref(env),
                             enif_make_double(env, 1.5), enif_make_int64(env, INT64_MAX),
                             enif_make_tuple2(env, enif_make_int(env, 1), enif_make_int(env, 2)),
                             enif_make_list1(env, enif_make_int(env, 1)), enif_make_new_map(env)};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        if ((others[i] & l->small_mask) == l->small_tag || others[i] == l->nil) return 0;
    if (enif_make_list(env, 0) != l->nil) return 0;
    if ((others[0] & l->atom_mask) != l->atom_tag || (enif_make_atom(env, "error") & l->atom_mask) != l->atom_tag)
        return 0;
    for (size_t i = 1; i < sizeof others / sizeof others[0]; i++)
        if ((others[i] & l->atom_mask) == l->atom_tag || (l->nil & l->atom_mask) == l->atom_tag) return 0;
    ERL_NIF_TERM h = enif_make_atom(env, "head"), tl = enif_make_int(env, 7), cell = enif_make_list_cell(env, h, tl);
    const ERL_NIF_TERM *words = (const ERL_NIF_TERM *)(uintptr_t)(cell - l->list_tag);
    if ((cell & l->list_mask) != l->list_tag || words[0] != h || words[1] != tl) return 0;
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        if ((others[i] & l->list_mask) == l->list_tag && !enif_is_list(env, others[i])) return 0;
    return 1;
}

/* The layout the codec may read terms with: BEAM's whole, or without boxes, or none (every term
 * through the enif_* ops). */
/* Whether `encode_ext` writes what enif_term_to_binary writes for `t` (which calls it). */
static int same_etf(ErlNifEnv *env, es_encode_ext_fn encode_ext, ERL_NIF_TERM t) {
    unsigned char etf[IDENT_ETF_MAX], *end = etf;
    ErlNifBinary bin;
    int same;
    if (!enif_term_to_binary(env, t, &bin)) return 0;
    if (bin.size > sizeof(etf)) {
        enif_release_binary(&bin);
        return 0;
    }
    encode_ext(t, &end);
    same = (size_t)(end - etf) == bin.size && memcmp(etf, bin.data, bin.size) == 0;
    enif_release_binary(&bin);
    return same;
}

/* erts_encode_ext when the emulator exports it with the signature it has had since OTP R13 and it
 * writes, for this process's pid and a new reference, exactly what enif_term_to_binary writes,
 * on OTP 25's NIF API (2.16), the one verified; else NULL (every identifier then goes through enif_term_to_binary). */
static es_encode_ext_fn checked_encode_ext(ErlNifEnv *env) {
#if ERL_NIF_MAJOR_VERSION == 2 && ERL_NIF_MINOR_VERSION == 16
    es_encode_ext_fn encode_ext;
    ErlNifPid self;
    *(void **)&encode_ext = dlsym(RTLD_DEFAULT, "erts_encode_ext");
    if (!encode_ext || !enif_self(env, &self)) return NULL;
    if (!same_etf(env, encode_ext, enif_make_pid(env, &self)) || !same_etf(env, encode_ext, enif_make_ref(env)))
        return NULL;
    return encode_ext;
#else
    /* another OTP: calling a function of another signature, even to check it, could crash the VM */
    (void)env;
    (void)same_etf;
    return NULL;
#endif
}

/* Boxed terms of every kind a NIF can make, and a 33-key map (a hash map, not a flat one). */
static size_t sample_boxed(ErlNifEnv *env, ERL_NIF_TERM *out) {
    ErlNifBinary big;
    ERL_NIF_TERM keys[33], vals[33], hamt, refc;
    size_t n = 0;
    for (int i = 0; i < 33; i++) keys[i] = enif_make_int(env, i), vals[i] = keys[i];
    if (!enif_make_map_from_arrays(env, keys, vals, 33, &hamt) || !enif_alloc_binary(1000, &big)) return 0;
    memset(big.data, 1, big.size);
    refc = enif_make_binary(env, &big);
    out[n++] = hamt;
    out[n++] = refc;
    out[n++] = enif_make_sub_binary(env, refc, 1, 10);
    out[n++] = enif_make_double(env, 1.5);
    out[n++] = enif_make_int64(env, INT64_MAX);
    out[n++] = enif_make_int64(env, INT64_MIN);
    out[n++] = enif_make_tuple2(env, keys[1], keys[2]);
    memset(enif_make_new_binary(env, 3, &out[n++]), 2, 3);
    out[n++] = enif_make_new_map(env);
    out[n++] = enif_make_ref(env);
    return n;
}

/* Local pids and references read as the layout says (a pid an immediate under pid_mask, a
 * reference boxed with a ref_tag header), and no other term looks like either. */
static int identifiers_hold(ErlNifEnv *env, const es_term_layout *l) {
    ErlNifPid self;
    ERL_NIF_TERM boxes[16];
    size_t nboxed = sample_boxed(env, boxes);
    if (!enif_self(env, &self) || nboxed == 0) return 0;
    ERL_NIF_TERM pid = enif_make_pid(env, &self), refs[] = {enif_make_ref(env), enif_make_ref(env)};
    if ((pid & l->pid_mask) != l->pid_tag || !enif_is_pid(env, pid)) return 0;
    for (size_t i = 0; i < sizeof refs / sizeof *refs; i++) {
        const uint64_t *box = boxed_words(l, refs[i]);
        if (!box || (box[0] & l->header_mask) != l->ref_tag || !enif_is_ref(env, refs[i])) return 0;
    }
    ERL_NIF_TERM words[] = {enif_make_int(env, 0), enif_make_int(env, -1), enif_make_int64(env, (1ll << 59) - 1),
                            enif_make_atom(env, "ok"), enif_make_list(env, 0),
                            enif_make_list1(env, enif_make_int(env, 1))};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if ((words[i] & l->pid_mask) == l->pid_tag) return 0;
    for (size_t i = 0; i < nboxed; i++) {
        const uint64_t *box = boxed_words(l, boxes[i]);
        if ((boxes[i] & l->pid_mask) == l->pid_tag) return 0;
        if (!enif_is_ref(env, boxes[i]) && box && (box[0] & l->header_mask) == l->ref_tag) return 0;
    }
    return 1;
}

/* Maps of up to 32 keys are flat as the layout says: the header word, the size, a tuple of the
 * keys, the values, in the order enif_map_iterator gives the pairs (the walker's order); a hash
 * map and every other boxed term has another header. */
static int flatmaps_hold(ErlNifEnv *env, const es_term_layout *l) {
    ERL_NIF_TERM keys[32], vals[32], maps[5], boxes[16];
    static const size_t sizes[] = {0, 1, 3, 32};
    size_t nmaps = 0, nboxed = sample_boxed(env, boxes);
    if (nboxed == 0) return 0;
    for (size_t i = 0; i < 32; i++) { /* distinct keys of several kinds, given out of term order */
        ERL_NIF_TERM k = enif_make_int(env, (int)(i * 7919 % 101));
        if (i % 3 == 1) k = enif_make_tuple2(env, k, enif_make_atom(env, "ok"));
        if (i % 3 == 2) memset(enif_make_new_binary(env, 1 + i % 5, &k), (int)i, 1 + i % 5);
        keys[i] = k;
        vals[i] = enif_make_int(env, (int)(1000 - i));
    }
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        if (!enif_make_map_from_arrays(env, keys, vals, sizes[i], &maps[nmaps++])) return 0;
    if (!enif_make_map_put(env, maps[2], enif_make_atom(env, "ok"), vals[0], &maps[nmaps++])) return 0;
    for (size_t m = 0; m < nmaps; m++) {
        const uint64_t *box = boxed_words(l, maps[m]);
        size_t size;
        ErlNifMapIterator it;
        if (!box || box[0] != l->flatmap_header || !enif_get_map_size(env, maps[m], &size) || box[1] != size) return 0;
        const uint64_t *kbox = boxed_words(l, (ERL_NIF_TERM)box[2]);
        if (!kbox || (kbox[0] & l->header_mask) != l->tuple_tag || kbox[0] >> l->header_shift != size) return 0;
        if (!enif_map_iterator_create(env, maps[m], &it, ERL_NIF_MAP_ITERATOR_FIRST)) return 0;
        size_t i = 0;
        ERL_NIF_TERM k, v;
        for (; enif_map_iterator_get_pair(env, &it, &k, &v); i++, enif_map_iterator_next(env, &it))
            if (i >= size || k != kbox[1 + i] || v != box[3 + i]) break;
        enif_map_iterator_destroy(env, &it);
        if (i != size) return 0;
    }
    for (size_t i = 0; i < nboxed; i++) {
        const uint64_t *box = boxed_words(l, boxes[i]);
        size_t size;
        if (box && box[0] == l->flatmap_header && !(enif_get_map_size(env, boxes[i], &size) && size <= 32)) return 0;
    }
    return 1;
}

static const es_term_layout *checked_layout(ErlNifEnv *env, es_term_layout *l) {
    *l = BEAM_LAYOUT;
    if (!layout_holds(env, l)) return NULL;
    if (!boxed_layout_holds(env, l)) l->boxed_mask = 0;
    if (!l->boxed_mask || !identifiers_hold(env, l)) l->pid_mask = l->pid_tag = l->ref_tag = 0;
    if (!l->boxed_mask || !flatmaps_hold(env, l)) l->flatmap_header = 0;
    return l;
}

/* ---- session resource ------------------------------------------------------ */
static void session_dtor(ErlNifEnv *env, void *obj) {
    es_session *s = obj;
    (void)env;
    if (s->ring) es_ring_destroy(s->ring);
    if (s->store) es_store_destroy(s->store);
    if (s->drain_lock) enif_mutex_destroy(s->drain_lock);
}

/* A producer takes the installed session for the length of one push.
 * Its thread's inflight stripe is incremented before active is read (both
 * sequentially consistent), so uninstall (which clears active, then waits for
 * every stripe to be 0) never frees a session in use. */
static _Atomic uint64_t *my_stripe(es_priv *p) {
    /* The thread is told by its stack (threads' stacks lie far apart), which costs no call. Any
     * stripe would be correct, as a call increments and decrements the same one: spreading the
     * threads only keeps them off each other's cache line. */
    char here;
    uint64_t h = ((uint64_t)(uintptr_t)&here >> 16) * 0x9E3779B97F4A7C15ull;
    return &p->inflight[h >> 58].n;
}

static es_session *acquire_active(es_priv *p, _Atomic uint64_t *stripe) {
    es_session *s;
    atomic_fetch_add(stripe, 1);
    s = atomic_load(&p->active);
    if (s && atomic_load_explicit(&s->enabled, memory_order_relaxed)) return s;
    atomic_fetch_sub(stripe, 1);
    return NULL;
}

static void release_active(_Atomic uint64_t *stripe) { atomic_fetch_sub_explicit(stripe, 1, memory_order_release); }

static es_session *uninstall_active(es_priv *p) {
    es_session *old = atomic_exchange(&p->active, NULL);
    for (int i = 0; i < INFLIGHT_STRIPES; i++)
        while (atomic_load(&p->inflight[i].n) != 0) sched_yield();
    return old;
}

static int get_session(ErlNifEnv *env, ERL_NIF_TERM t, es_session **out) {
    return enif_get_resource(env, t, PRIV(env)->session_type, (void **)out);
}

es_store *es_nif_session_store(ErlNifEnv *env, ERL_NIF_TERM t) {
    es_session *s;
    return get_session(env, t, &s) ? s->store : NULL;
}

ErlNifResourceType **es_nif_recording_types(ErlNifEnv *env) { return PRIV(env)->recording_types; }

/* ---- option parsing -------------------------------------------------------- */
static int map_u64(ErlNifEnv *env, ERL_NIF_TERM map, ERL_NIF_TERM key, uint64_t *out, int *present) {
    ERL_NIF_TERM v;
    ErlNifUInt64 u;
    *present = 0;
    if (!enif_get_map_value(env, map, key, &v)) return 1;
    if (!enif_get_uint64(env, v, &u)) return 0;
    *out = u;
    *present = 1;
    return 1;
}

/* A list of redaction patterns (atoms or binaries) into rs; NULL or what is wrong. */
static const char *add_patterns(ErlNifEnv *env, es_redact_set *rs, int allow, ERL_NIF_TERM list) {
    ERL_NIF_TERM head, tail = list;
    while (enif_get_list_cell(env, tail, &head, &tail)) {
        char name[256];
        ErlNifBinary bin;
        const char *err;
        int n = enif_get_atom(env, head, name, sizeof name, ERL_NIF_LATIN1);
        if (n > 0) err = es_redact_add(rs, allow, name, (size_t)n - 1);
        else if (enif_inspect_binary(env, head, &bin)) err = es_redact_add(rs, allow, (const char *)bin.data, bin.size);
        else err = "redaction patterns must be Latin-1 atoms or binaries";
        if (err) return err;
    }
    if (!enif_is_empty_list(env, tail)) return "redaction patterns must be a proper list";
    return NULL;
}

/* ---- drain (the sink, and the help of producers that find the ring full) ---- */
typedef struct drain_ctx {
    es_session *s;
} drain_ctx;

static void drain_sink(void *ctxp, const es_event_head *head, const uint8_t *payload, uint32_t len) {
    drain_ctx *ctx = ctxp;
    es_event_head h = *head;
    if (h.kind == ES_KIND_CALL) h.call_id = h.id;
    if (es_store_append_locked(ctx->s->store, &h, payload, len) != 0) atomic_fetch_add(&ctx->s->dropped_store, 1);
}

/* A small batch, moved by a producer whose push found the ring full: when every scheduler runs
 * producers, the writers may not get one to start their drain, so the producers drain. Never
 * waits for a lock (a drain or a long query holds it: the producer yields instead). */
#define HELP_BATCH 256
#define DRAIN_CHUNK 2048

static size_t help_drain(void *sp) {
    es_session *s = sp;
    drain_ctx ctx = {s};
    size_t n = 0;
    if (enif_mutex_trylock(s->drain_lock) != 0) return 0;
    if (es_store_try_write_lock(s->store)) {
        n = es_ring_drain(s->ring, HELP_BATCH, drain_sink, &ctx);
        es_store_write_unlock(s->store);
    }
    enif_mutex_unlock(s->drain_lock);
    return n;
}

static ERL_NIF_TERM nif_session_new(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    es_priv *p = PRIV(env);
    es_atoms *a = &p->atoms;
    uint64_t cap = 65536, depth = 8, width = 32, maxbin = 256, maxbytes = 4096, store_max = 0, seg = 65536,
             payload_budget = 0, max_wait = 0;
    int present;
    es_overflow policy = ES_OVERFLOW_DROP_NEWEST;
    ERL_NIF_TERM opts = argv[0], v;
    es_session *s;
    ERL_NIF_TERM res;
    (void)argc;

    if (!enif_is_map(env, opts)) return es_raise_arg(env, "session_new/1 expects a map of options");
    if (!map_u64(env, opts, a->k_ring_capacity, &cap, &present) || cap < 2 || cap > ES_RING_MAX_CAPACITY ||
        (cap & (cap - 1)) != 0)
        return es_raise_arg(env, "ring_capacity must be a power of two between 2 and 4194304 "
                                 "(the largest ring takes 1 GiB at 256 B a slot)");
    if (!map_u64(env, opts, a->k_ring_payload_budget, &payload_budget, &present))
        return es_raise_arg(env, "ring_payload_budget must be a non-negative integer (bytes, 0 = unbounded)");
    if (!map_u64(env, opts, a->k_ring_max_wait_ns, &max_wait, &present) || max_wait > 1000000000)
        return es_raise_arg(env, "ring_max_wait_ns must be an integer in 0..1000000000");
    if (!map_u64(env, opts, a->k_max_depth, &depth, &present) || depth < 1 || depth > 10000)
        return es_raise_arg(env, "max_depth must be an integer in 1..10000");
    if (!map_u64(env, opts, a->k_max_width, &width, &present) || width < 1 || width > 1000000)
        return es_raise_arg(env, "max_width must be an integer in 1..1000000");
    if (!map_u64(env, opts, a->k_max_binary, &maxbin, &present) || maxbin > (1u << 26))
        return es_raise_arg(env, "max_binary must be an integer in 0..67108864");
    if (!map_u64(env, opts, a->k_max_bytes, &maxbytes, &present) || maxbytes < 64 || maxbytes > (1u << 26))
        return es_raise_arg(env, "max_bytes must be an integer in 64..67108864");
    if (!map_u64(env, opts, a->k_store_max_bytes, &store_max, &present))
        return es_raise_arg(env, "store_max_bytes must be a non-negative integer");
    if (!map_u64(env, opts, a->k_segment_events, &seg, &present) || seg < 16 || seg > (1u << 24))
        return es_raise_arg(env, "segment_events must be an integer in 16..16777216");
    if (enif_get_map_value(env, opts, a->k_overflow, &v)) {
        if (enif_is_identical(v, a->drop_newest)) policy = ES_OVERFLOW_DROP_NEWEST;
        else if (enif_is_identical(v, a->overwrite_oldest)) policy = ES_OVERFLOW_OVERWRITE_OLDEST;
        else return es_raise_arg(env, "overflow must be :drop_newest or :overwrite_oldest");
    }

    s = enif_alloc_resource(p->session_type, sizeof(es_session));
    if (!s) return es_raise_arg(env, "out of memory allocating the session");
    memset(s, 0, sizeof(*s));
    s->limits.max_depth = (uint32_t)depth;
    s->limits.max_width = (uint32_t)width;
    s->limits.max_binary = (uint32_t)maxbin;
    s->limits.max_bytes = (uint32_t)maxbytes;

    s->redact.cache = &s->redact_cache;
    {
        const char *err = NULL;
        if (enif_get_map_value(env, opts, a->k_redact, &v)) err = add_patterns(env, &s->redact, 0, v);
        if (!err && enif_get_map_value(env, opts, a->k_redact_allow, &v)) err = add_patterns(env, &s->redact, 1, v);
        if (err) {
            enif_release_resource(s);
            return es_raise_arg(env, err);
        }
    }

    s->ring = es_ring_create((uint32_t)cap, policy);
    if (s->ring) {
        es_ring_set_payload_budget(s->ring, payload_budget);
        if (policy == ES_OVERFLOW_DROP_NEWEST) es_ring_set_backpressure(s->ring, max_wait, help_drain, s);
    }
    {
        es_store_config sc = {store_max, (uint32_t)seg};
        s->store = es_store_create(&sc);
    }
    s->drain_lock = enif_mutex_create("elixir_scope_drain");
    if (!s->ring || !s->store || !s->drain_lock) {
        enif_release_resource(s); /* the destructor frees what was made */
        return es_raise_arg(env, "out of memory creating the ring buffer or the event store");
    }
    atomic_store(&s->enabled, 1);
    res = enif_make_resource(env, s);
    enif_release_resource(s);
    return res;
}

static ERL_NIF_TERM nif_session_install(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    es_priv *p = PRIV(env);
    es_session *s, *old;
    (void)argc;
    if (!get_session(env, argv[0], &s)) return es_raise_arg(env, "install/1 expects a session");
    enif_keep_resource(s);
    old = uninstall_active(p);
    atomic_store(&p->active, s);
    if (old) enif_release_resource(old);
    return p->atoms.ok;
}

static ERL_NIF_TERM nif_session_uninstall(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    es_priv *p = PRIV(env);
    es_session *old;
    (void)argc;
    (void)argv;
    old = uninstall_active(p);
    if (old) enif_release_resource(old);
    return p->atoms.ok;
}

static ERL_NIF_TERM nif_set_enabled(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    es_atoms *a = &PRIV(env)->atoms;
    es_session *s;
    (void)argc;
    if (!get_session(env, argv[0], &s)) return es_raise_arg(env, "set_enabled/2 expects a session");
    if (enif_is_identical(argv[1], a->true_)) atomic_store(&s->enabled, 1);
    else if (enif_is_identical(argv[1], a->false_)) atomic_store(&s->enabled, 0);
    else return es_raise_arg(env, "set_enabled/2 expects a boolean");
    return a->ok;
}

/* ---- the hot path ------------------------------------------------------------ */
static int kind_from_atom(es_atoms *a, ERL_NIF_TERM t) {
    for (int k = 0; k < ES_KIND__COUNT; k++)
        if (a->kinds[k] == t) return k;
    return -1;
}

/* Argument checks of the hot path through the layout verified at load (no call into the VM),
 * else through enif_*. */
static inline int is_atom_term(const es_priv *p, ErlNifEnv *env, ERL_NIF_TERM t) {
    const es_term_layout *l = p->ops.layout;
    return l ? (t & l->atom_mask) == l->atom_tag : enif_is_atom(env, t);
}

static inline int get_line(const es_priv *p, ErlNifEnv *env, ERL_NIF_TERM t, int *line) {
    const es_term_layout *l = p->ops.layout;
    if (l && (t & l->small_mask) == l->small_tag) {
        int64_t v = (int64_t)t >> l->small_shift;
        *line = (int)v;
        return v >= 0 && v <= INT32_MAX;
    }
    return enif_get_int(env, t, line) && *line >= 0;
}

static inline int get_u64(const es_priv *p, ErlNifEnv *env, ERL_NIF_TERM t, ErlNifUInt64 *out) {
    const es_term_layout *l = p->ops.layout;
    if (l && (t & l->small_mask) == l->small_tag) {
        int64_t v = (int64_t)t >> l->small_shift;
        *out = (ErlNifUInt64)v;
        return v >= 0;
    }
    return enif_get_uint64(env, t, out);
}

static int atom_or_nil(const es_priv *p, ErlNifEnv *env, ERL_NIF_TERM t, uint64_t *out) {
    if (t == p->atoms.nil) {
        *out = 0;
        return 1;
    }
    if (!is_atom_term(p, env, t)) return 0;
    *out = (uint64_t)t;
    return 1;
}

#define NOT_A_LIST UINT64_MAX

/* Encodes the payload and pushes one event. Returns the id, 0 if dropped, or NOT_A_LIST (nothing
 * pushed) when args is set and the payload, an argument list whose length becomes the arity, is not
 * a proper list. */
static uint64_t push_event(es_priv *p, ErlNifEnv *env, es_session *s, es_event_head *h, ERL_NIF_TERM payload,
                           int args) {
    uint8_t storage[512];
    es_buf buf;
    unsigned flags = 0;
    uint64_t id;
    ErlNifPid self;
    int rc;

    if (!h->pid) { /* emit_as/5 sets another process's pid and a time */
        enif_self(env, &self);
        h->pid = (uint64_t)enif_make_pid(env, &self);
    }
    if (!h->ts) h->ts = es_clock_now(&p->clock);
    es_buf_init(&buf, storage, sizeof(storage));
    if (args) {
        size_t n;
        unsigned len;
        rc = es_codec_encode_list(&p->ops, env, (es_term)payload, &s->limits, &s->redact, &buf, &flags, &n);
        if (n == SIZE_MAX) { /* not counted by the codec: not a list, or a long one */
            if (!enif_get_list_length(env, payload, &len)) {
                es_buf_free(&buf);
                return NOT_A_LIST;
            }
            n = len;
        }
        h->arity = n > 254 ? 255 : (uint8_t)n;
    } else {
        rc = es_codec_encode(&p->ops, env, (es_term)payload, &s->limits, &s->redact, &buf, &flags);
    }
    if (rc != 0 || buf.failed) {
        es_buf_free(&buf);
        atomic_fetch_add(&s->dropped_encode, 1);
        return 0;
    }
    if (flags & ES_CODEC_TRUNCATED) h->flags |= ES_FLAG_TRUNCATED;
    if (flags & ES_CODEC_REDACTED) h->flags |= ES_FLAG_REDACTED;
    id = es_ring_push(s->ring, h, buf.data, (uint32_t)buf.len);
    es_buf_free(&buf);
    return id;
}

/* emit_entry(module, function, args, line) -> call_id | nil */
static ERL_NIF_TERM nif_emit_entry(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    es_priv *p = PRIV(env);
    _Atomic uint64_t *stripe = my_stripe(p);
    es_atoms *a = &p->atoms;
    es_event_head h;
    int line;
    uint64_t id;
    es_session *s;
    static const char *const usage =
        "emit_entry/4 expects (module :: atom, function :: atom, args :: list, line :: non_neg_integer)";
    (void)argc;

    if (!is_atom_term(p, env, argv[0]) || !is_atom_term(p, env, argv[1]) || !get_line(p, env, argv[3], &line))
        return es_raise_arg(env, usage);
    s = acquire_active(p, stripe);
    if (!s) return enif_get_list_length(env, argv[2], &(unsigned){0}) ? a->nil : es_raise_arg(env, usage);
    memset(&h, 0, sizeof(h));
    h.kind = ES_KIND_CALL;
    h.module = (uint64_t)argv[0];
    h.function = (uint64_t)argv[1];
    h.line = (uint32_t)line;
    /* the arguments are validated (a proper list) and counted while they are encoded */
    id = push_event(p, env, s, &h, argv[2], 1);
    release_active(stripe);
    if (id == NOT_A_LIST) return es_raise_arg(env, usage);
    return id ? enif_make_uint64(env, id) : a->nil;
}

/* One event of the recorded call cid that names no function (the store gives it the call's MFA),
 * pushed when a session records. */
static void emit_in_call(ErlNifEnv *env, uint8_t kind, uint64_t cid, int line, ERL_NIF_TERM payload) {
    es_priv *p = PRIV(env);
    _Atomic uint64_t *stripe = my_stripe(p);
    es_session *s = acquire_active(p, stripe);
    es_event_head h;
    if (!s) return;
    memset(&h, 0, sizeof(h));
    h.kind = kind;
    h.call_id = cid;
    h.arity = 255;
    h.line = (uint32_t)line;
    push_event(p, env, s, &h, payload, 0);
    release_active(stripe);
}

/* emit_exit(call_id, value) -> :ok */
static ERL_NIF_TERM nif_emit_exit(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    es_priv *p = PRIV(env);
    ErlNifUInt64 cid;
    (void)argc;
    if (!get_u64(p, env, argv[0], &cid) || cid == 0)
        return es_raise_arg(env, "emit_exit/2 expects a call id (positive integer)");
    emit_in_call(env, ES_KIND_RETURN, cid, 0, argv[1]);
    return p->atoms.ok;
}

/* An OTP callback's reports, two in one call: its state (a :state event at `line_term`, payload
 * {before | after, State}; none when nil), then either the message it takes (a :receive event whose
 * function is :receive; none when nil) or its return (always: nil is a value). */
static ERL_NIF_TERM emit_callback_pair(ErlNifEnv *env, const char *usage, ERL_NIF_TERM call, ERL_NIF_TERM line_term,
                                       ERL_NIF_TERM state, uint8_t kind, ERL_NIF_TERM payload) {
    es_priv *p = PRIV(env);
    _Atomic uint64_t *stripe = my_stripe(p);
    es_atoms *a = &p->atoms;
    es_event_head h;
    ErlNifUInt64 cid;
    int line;
    es_session *s;
    if (!get_u64(p, env, call, &cid) || cid == 0 || !get_line(p, env, line_term, &line)) return es_raise_arg(env, usage);
    s = acquire_active(p, stripe);
    if (!s) return a->ok;
    memset(&h, 0, sizeof(h));
    h.call_id = cid;
    h.arity = 255;
    if (state != a->nil) {
        h.kind = ES_KIND_STATE;
        h.line = (uint32_t)line;
        push_event(p, env, s, &h, state, 0);
    }
    if (kind == ES_KIND_RETURN || payload != a->nil) {
        memset(&h, 0, sizeof(h));
        h.kind = kind;
        h.call_id = cid;
        h.arity = 255;
        if (kind == ES_KIND_RECEIVE) {
            h.function = (uint64_t)a->kinds[ES_KIND_RECEIVE];
            h.line = (uint32_t)line;
        }
        push_event(p, env, s, &h, payload, 0);
    }
    release_active(stripe);
    return a->ok;
}

/* emit_pre(call_id, line, state_payload | nil, receive_payload | nil) -> :ok: what an OTP callback
 * reports between its entry and its body: the state it was given, then the message it takes. */
static ERL_NIF_TERM nif_emit_pre(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    return emit_callback_pair(env,
                              "emit_pre/4 expects (call_id :: pos_integer, line :: non_neg_integer, "
                              "state_payload | nil, receive_payload | nil)",
                              argv[0], argv[1], argv[2], ES_KIND_RECEIVE, argv[3]);
}

/* emit_callback_exit(call_id, value, state_payload | nil, line) -> :ok: the end of an OTP callback:
 * the state it returned, then its return. */
static ERL_NIF_TERM nif_emit_callback_exit(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    return emit_callback_pair(env,
                              "emit_callback_exit/4 expects (call_id :: pos_integer, value, "
                              "state_payload | nil, line :: non_neg_integer)",
                              argv[0], argv[3], argv[2], ES_KIND_RETURN, argv[1]);
}

/* emit(kind, call_id, module, function, arity, line, link, payload) -> id | nil */
static ERL_NIF_TERM nif_emit(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    es_priv *p = PRIV(env);
    _Atomic uint64_t *stripe = my_stripe(p);
    es_atoms *a = &p->atoms;
    es_event_head h;
    ErlNifUInt64 cid, link;
    int kind, arity, line;
    uint64_t mod, fun, id;
    es_session *s;
    (void)argc;

    kind = kind_from_atom(a, argv[0]);
    if (kind < 0) return es_raise_arg(env, "emit/8: unknown event kind");
    if (argv[1] == a->nil) cid = 0;
    else if (!get_u64(p, env, argv[1], &cid)) return es_raise_arg(env, "emit/8: call_id must be a non-negative integer or nil");
    if (!atom_or_nil(p, env, argv[2], &mod) || !atom_or_nil(p, env, argv[3], &fun))
        return es_raise_arg(env, "emit/8: module and function must be atoms or nil");
    if (argv[4] == a->nil) arity = 255;
    else if (!enif_get_int(env, argv[4], &arity) || arity < 0 || arity > 255)
        return es_raise_arg(env, "emit/8: arity must be an integer in 0..255 or nil");
    if (!get_line(p, env, argv[5], &line)) return es_raise_arg(env, "emit/8: line must be a non-negative integer");
    if (argv[6] == a->nil) link = 0;
    else if (!get_u64(p, env, argv[6], &link)) return es_raise_arg(env, "emit/8: link must be a non-negative integer or nil");

    s = acquire_active(p, stripe);
    if (!s) return a->nil;
    memset(&h, 0, sizeof(h));
    h.kind = (uint8_t)kind;
    h.call_id = cid;
    h.module = mod;
    h.function = fun;
    h.arity = (uint8_t)arity;
    h.line = (uint32_t)line;
    h.link = link;
    id = push_event(p, env, s, &h, argv[7], 0);
    release_active(stripe);
    return id ? enif_make_uint64(env, id) : a->nil;
}

/* emit_value(kind, call_id, line, payload) -> :ok: an event of a recorded call that names no
 * function (a :local snapshot, an :expr value, a :tail_call), as instrumented code reports it:
 * emit/8's event, with four arguments fewer to pass and check. */
static ERL_NIF_TERM nif_emit_value(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    es_priv *p = PRIV(env);
    es_atoms *a = &p->atoms;
    ErlNifUInt64 cid;
    int line;
    uint8_t kind;
    (void)argc;
    if (argv[0] == a->kinds[ES_KIND_EXPR]) kind = ES_KIND_EXPR;
    else if (argv[0] == a->kinds[ES_KIND_LOCAL]) kind = ES_KIND_LOCAL;
    else if (argv[0] == a->kinds[ES_KIND_TAIL_CALL]) kind = ES_KIND_TAIL_CALL;
    else kind = ES_KIND__COUNT;
    if (kind == ES_KIND__COUNT || !get_u64(p, env, argv[1], &cid) || cid == 0 || !get_line(p, env, argv[2], &line))
        return es_raise_arg(env, "emit_value/4 expects (:local | :expr | :tail_call, call_id :: pos_integer, "
                                 "line :: non_neg_integer, payload)");
    emit_in_call(env, kind, cid, line, argv[3]);
    return a->ok;
}

/* emit_as(pid, kind, function, ts, payload) -> id | nil: a :spawn or :exit event on behalf of
 * another (local) process, as the session's lifecycle observer sees it; ts nil = now. */
static ERL_NIF_TERM nif_emit_as(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    es_priv *p = PRIV(env);
    es_atoms *a = &p->atoms;
    es_event_head h;
    ErlNifUInt64 ts = 0;
    uint64_t fun, id;
    es_session *s;
    ErlNifPid pid;
    _Atomic uint64_t *stripe = my_stripe(p);
    (void)argc;
    if (!enif_get_local_pid(env, argv[0], &pid) || (argv[1] != a->kinds[ES_KIND_SPAWN] && argv[1] != a->kinds[ES_KIND_EXIT]) ||
        !atom_or_nil(p, env, argv[2], &fun) || (argv[3] != a->nil && (!enif_get_uint64(env, argv[3], &ts) || ts == 0)))
        return es_raise_arg(env, "emit_as/5 expects (local pid, :spawn | :exit, function :: atom | nil, "
                                 "ts :: pos_integer | nil, payload)");
    s = acquire_active(p, stripe);
    if (!s) return a->nil;
    memset(&h, 0, sizeof(h));
    h.kind = argv[1] == a->kinds[ES_KIND_SPAWN] ? ES_KIND_SPAWN : ES_KIND_EXIT;
    h.pid = (uint64_t)argv[0];
    h.function = fun;
    h.arity = 255;
    h.ts = ts;
    id = push_event(p, env, s, &h, argv[4], 0);
    release_active(stripe);
    return id ? enif_make_uint64(env, id) : a->nil;
}

/* ---- drain ------------------------------------------------------------------- */

/* drain(session, max) -> count (dirty CPU) */
static ERL_NIF_TERM nif_drain(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    es_session *s;
    ErlNifUInt64 max;
    drain_ctx ctx;
    size_t n;
    (void)argc;
    if (!get_session(env, argv[0], &s)) return es_raise_arg(env, "drain/2 expects a session");
    if (!enif_get_uint64(env, argv[1], &max) || max == 0) return es_raise_arg(env, "drain/2: max must be a positive integer");
    ctx.s = s;
    es_clock_calibrate(&PRIV(env)->clock);
    /* the locks are taken per chunk, not per event, and let go between chunks so that producers
       helping the drain (help_drain) and queries get in */
    n = 0;
    for (;;) {
        size_t want = max - n < DRAIN_CHUNK ? (size_t)(max - n) : DRAIN_CHUNK, got;
        enif_mutex_lock(s->drain_lock);
        es_store_write_lock(s->store);
        got = es_ring_drain(s->ring, want, drain_sink, &ctx);
        es_store_write_unlock(s->store);
        enif_mutex_unlock(s->drain_lock);
        n += got;
        if (got < want || n >= max) break;
    }
    return enif_make_uint64(env, n);
}

/* pids_since(session, after_id) -> {last_id, [{pid, first_ts, last_ts}]}: the processes that recorded
 * events after after_id (dirty CPU; at most 4096 a call, the rest from last_id on). */
#define PID_SCAN_MAX 4096
static ERL_NIF_TERM nif_pids_since(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    es_session *s;
    ErlNifUInt64 after;
    uint64_t last;
    es_pid_seen *seen;
    ERL_NIF_TERM list;
    int n;
    (void)argc;
    if (!get_session(env, argv[0], &s) || !enif_get_uint64(env, argv[1], &after))
        return es_raise_arg(env, "pids_since/2 expects (session, after_id :: non_neg_integer)");
    seen = enif_alloc(PID_SCAN_MAX * sizeof *seen);
    if (!seen || (n = es_pid_scan(s->store, after, seen, PID_SCAN_MAX, &last)) < 0) {
        enif_free(seen);
        return es_raise_arg(env, "pids_since/2: out of memory");
    }
    list = enif_make_list(env, 0);
    while (n-- > 0) /* built from the end: the list is in order of first appearance */
        list = enif_make_list_cell(
            env,
            enif_make_tuple3(env, (ERL_NIF_TERM)seen[n].pid, enif_make_uint64(env, seen[n].first_ts),
                             enif_make_uint64(env, seen[n].last_ts)),
            list);
    enif_free(seen);
    return enif_make_tuple2(env, enif_make_uint64(env, last), list);
}

/* ---- reading back -------------------------------------------------------------- */
static ERL_NIF_TERM word_or_nil(es_atoms *a, uint64_t w) { return w ? (ERL_NIF_TERM)w : a->nil; }

static ERL_NIF_TERM event_to_term(ErlNifEnv *env, es_atoms *a, const es_event_view *ev) {
    const es_event_head *h = &ev->head;
    ERL_NIF_TERM payload;
    unsigned char *dst = enif_make_new_binary(env, ev->payload_len, &payload);
    if (ev->payload_len) memcpy(dst, ev->payload, ev->payload_len);
    ERL_NIF_TERM items[12] = {
        enif_make_uint64(env, h->id),
        enif_make_uint64(env, h->ts),
        word_or_nil(a, h->pid),
        h->kind < ES_KIND__COUNT ? a->kinds[h->kind] : a->nil,
        word_or_nil(a, h->module),
        word_or_nil(a, h->function),
        h->arity == 255 ? a->nil : enif_make_uint(env, h->arity),
        enif_make_uint(env, h->line),
        enif_make_uint64(env, h->call_id),
        enif_make_uint64(env, h->link),
        enif_make_uint(env, h->flags),
        payload};
    return enif_make_tuple_from_array(env, items, 12);
}

ERL_NIF_TERM es_nif_event_to_term(ErlNifEnv *env, const es_event_view *ev) {
    return event_to_term(env, &PRIV(env)->atoms, ev);
}

typedef struct collect_ctx {
    ErlNifEnv *env;
    es_atoms *a;
    ERL_NIF_TERM *items;
    size_t n, cap;
    int oom;
} collect_ctx;

static int collect_cb(void *ctxp, const es_event_view *ev) {
    collect_ctx *c = ctxp;
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 64;
        ERL_NIF_TERM *ni = enif_realloc(c->items, ncap * sizeof(ERL_NIF_TERM));
        if (!ni) {
            c->oom = 1;
            return 1;
        }
        c->items = ni;
        c->cap = ncap;
    }
    c->items[c->n++] = event_to_term(c->env, c->a, ev);
    return 0;
}

static ERL_NIF_TERM collected_list(collect_ctx *c) {
    ERL_NIF_TERM list = enif_make_list_from_array(c->env, c->items, (unsigned)c->n);
    enif_free(c->items);
    return list;
}

#define QUERY_HARD_LIMIT 1000000u

static int parse_query(ErlNifEnv *env, es_atoms *a, ERL_NIF_TERM map, es_query *q, const char **err) {
    ERL_NIF_TERM v;
    ErlNifUInt64 u;
    memset(q, 0, sizeof(*q));
    q->limit = QUERY_HARD_LIMIT;
    if (!enif_is_map(env, map)) return (*err = "query/2 expects a map of filters"), 0;
    if (enif_get_map_value(env, map, a->k_pid, &v)) {
        if (!enif_is_pid(env, v)) return (*err = "pid filter must be a local pid"), 0;
        q->fields |= ES_Q_PID;
        q->pid = (uint64_t)v;
    }
    if (enif_get_map_value(env, map, a->k_module, &v)) {
        if (!enif_is_atom(env, v)) return (*err = "module filter must be an atom"), 0;
        q->fields |= ES_Q_MODULE;
        q->module = (uint64_t)v;
    }
    if (enif_get_map_value(env, map, a->k_function, &v)) {
        if (!enif_is_atom(env, v) || !(q->fields & ES_Q_MODULE))
            return (*err = "function filter must be an atom and needs a module filter"), 0;
        q->fields |= ES_Q_FUNCTION;
        q->function = (uint64_t)v;
    }
    if (enif_get_map_value(env, map, a->k_arity, &v)) {
        int ar;
        if (!enif_get_int(env, v, &ar) || ar < 0 || ar > 254 || !(q->fields & ES_Q_FUNCTION))
            return (*err = "arity filter must be an integer in 0..254 and needs a function filter"), 0;
        q->fields |= ES_Q_ARITY;
        q->arity = (uint8_t)ar;
    }
    if (enif_get_map_value(env, map, a->k_kinds, &v)) {
        ERL_NIF_TERM head, tail = v;
        while (enif_get_list_cell(env, tail, &head, &tail)) {
            int k = kind_from_atom(a, head);
            if (k < 0) return (*err = "kinds filter: unknown event kind"), 0;
            q->kinds_mask |= 1u << k;
        }
        if (!enif_is_empty_list(env, tail)) return (*err = "kinds filter must be a list of kinds"), 0;
        q->fields |= ES_Q_KINDS;
    }
#define U64_FILTER(key, flag, field, msg)                         \
    if (enif_get_map_value(env, map, a->key, &v)) {               \
        if (!enif_get_uint64(env, v, &u)) return (*err = msg), 0; \
        q->fields |= flag;                                        \
        q->field = u;                                             \
    }
    U64_FILTER(k_call_id, ES_Q_CALL_ID, call_id, "call_id filter must be a non-negative integer")
    U64_FILTER(k_correlation_id, ES_Q_CORRELATION, correlation_id, "correlation_id filter must be a non-negative integer")
    U64_FILTER(k_since, ES_Q_SINCE_TS, since_ts, "since must be a non-negative integer (monotonic ns)")
    U64_FILTER(k_until, ES_Q_UNTIL_TS, until_ts, "until must be a non-negative integer (monotonic ns)")
    U64_FILTER(k_after_id, ES_Q_AFTER_ID, after_id, "after_id must be a non-negative integer")
    U64_FILTER(k_before_id, ES_Q_BEFORE_ID, before_id, "before_id must be a non-negative integer")
#undef U64_FILTER
    if (enif_get_map_value(env, map, a->k_limit, &v)) {
        if (!enif_get_uint64(env, v, &u) || u == 0) return (*err = "limit must be a positive integer"), 0;
        q->limit = u > QUERY_HARD_LIMIT ? QUERY_HARD_LIMIT : (uint32_t)u;
    }
    if (enif_get_map_value(env, map, a->k_order, &v)) {
        if (v == a->desc) q->reverse = 1;
        else if (v != a->asc) return (*err = "order must be :asc or :desc"), 0;
    }
    return 1;
}

int es_nif_parse_query(ErlNifEnv *env, ERL_NIF_TERM map, es_query *q, const char **err) {
    return parse_query(env, &PRIV(env)->atoms, map, q, err);
}

/* query(session, filters) -> [event_tuple] (dirty CPU) */
static ERL_NIF_TERM nif_query(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    es_atoms *a = &PRIV(env)->atoms;
    es_session *s;
    es_query q;
    const char *err = NULL;
    collect_ctx c = {env, a, NULL, 0, 0, 0};
    (void)argc;
    if (!get_session(env, argv[0], &s)) return es_raise_arg(env, "query/2 expects a session");
    if (!parse_query(env, a, argv[1], &q, &err)) return es_raise_arg(env, err);
    es_store_query(s->store, &q, collect_cb, &c);
    if (c.oom) {
        enif_free(c.items);
        return es_raise_arg(env, "out of memory building the query result");
    }
    return collected_list(&c);
}

/* Runs a query into the row collector of nif_query.c; `end` answers. */
static ERL_NIF_TERM query_rows(ErlNifEnv *env, const ERL_NIF_TERM argv[], const char *name,
                               ERL_NIF_TERM (*end)(es_event_rows *)) {
    es_session *s;
    es_query q;
    es_event_rows *c;
    const char *err = NULL;
    char msg[128];
    if (!get_session(env, argv[0], &s))
        return snprintf(msg, sizeof msg, "%s expects a session", name), es_raise_arg(env, msg);
    if (!parse_query(env, &PRIV(env)->atoms, argv[1], &q, &err)) return es_raise_arg(env, err);
    if (!es_event_rows_begin(env, argv[2], &c))
        return snprintf(msg, sizeof msg, "%s: clock must be nil or {monotonic_ns, system_us} (integers within 2^62 of 0)", name),
               es_raise_arg(env, msg);
    es_store_query(s->store, &q, es_event_rows_cb(), c);
    return end(c);
}

static ERL_NIF_TERM nif_query_events_dirty(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    return query_rows(env, argv, "query_events/3", es_event_rows_end);
}

/* At most this many rows of one pid (and no other filter) walk only the pid's posting list:
 * about 0.2 ms, answered on the calling scheduler (a dirty one would add its hand-over, and
 * under load the wait for a core). */
#define ROWS_ON_SCHEDULER 2000

/* query_events(session, filters, clock) -> {[row], truncated_count}: rows hold the fields of
 * %ElixirScope.Event{}, built in nif_query.c; every query but a small one of one pid runs dirty */
static ERL_NIF_TERM nif_query_events(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    es_session *s;
    es_query q;
    const char *err = NULL;
    if (get_session(env, argv[0], &s) && parse_query(env, &PRIV(env)->atoms, argv[1], &q, &err) &&
        q.fields == ES_Q_PID && q.limit <= ROWS_ON_SCHEDULER) {
        ERL_NIF_TERM rows = query_rows(env, argv, "query_events/3", es_event_rows_end);
        enif_consume_timeslice(env, 20);
        return rows;
    }
    return enif_schedule_nif(env, "query_events", ERL_NIF_DIRTY_JOB_CPU_BOUND, nif_query_events_dirty, argc, argv);
}

/* query_call_trees(session, filters, {clock, event_shape, node_shape, expected_events} | :words) ->
 * {[{pid, roots}], truncated_count} | {words, events}: each process's call trees as finished node maps,
 * or, first, an upper bound on their heap size (dirty CPU; see nif_query.c) */
static ERL_NIF_TERM nif_query_call_trees(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    return query_rows(env, argv, "query_call_trees/3", es_event_rows_end_trees);
}

/* get_event(session, id) -> event_tuple | nil */
static ERL_NIF_TERM nif_get_event(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    es_atoms *a = &PRIV(env)->atoms;
    es_session *s;
    ErlNifUInt64 id;
    collect_ctx c = {env, a, NULL, 0, 0, 0};
    (void)argc;
    if (!get_session(env, argv[0], &s)) return es_raise_arg(env, "get_event/2 expects a session");
    if (!enif_get_uint64(env, argv[1], &id)) return es_raise_arg(env, "get_event/2: id must be a non-negative integer");
    if (!es_store_get(s->store, id, collect_cb, &c) || c.n == 0) {
        enif_free(c.items);
        return a->nil;
    }
    ERL_NIF_TERM ev = c.items[0];
    enif_free(c.items);
    return ev;
}

static ERL_NIF_TERM nif_clear(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    es_session *s;
    (void)argc;
    if (!get_session(env, argv[0], &s)) return es_raise_arg(env, "clear/1 expects a session");
    es_store_clear(s->store);
    return PRIV(env)->atoms.ok;
}

static ERL_NIF_TERM nif_stats(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    es_priv *p = PRIV(env);
    es_atoms *a = &p->atoms;
    es_session *s;
    es_ring_stats rs;
    es_store_stats ss;
    uint64_t dstore, denc;
    (void)argc;
    if (!get_session(env, argv[0], &s)) return es_raise_arg(env, "stats/1 expects a session");
    es_ring_get_stats(s->ring, &rs);
    es_store_get_stats(s->store, &ss);
    dstore = atomic_load(&s->dropped_store);
    denc = atomic_load(&s->dropped_encode);
    ERL_NIF_TERM keys[] = {a->s_emitted, a->s_pushed, a->s_stored, a->s_dropped_full, a->s_overwritten,
                           a->s_dropped_store, a->s_dropped_encode, a->s_pending, a->s_capacity,
                           a->s_evicted_events, a->s_evicted_segments, a->s_live_events, a->s_bytes_used,
                           a->s_record_bytes, a->s_payload_bytes, a->s_index_bytes, a->s_segments,
                           a->s_first_id, a->s_last_id, a->s_min_ts, a->s_max_ts, a->s_full_since_ns,
                           a->s_enabled, a->s_installed, a->s_waits, a->s_wait_ns, a->s_pool_bytes,
                           a->s_heap_fallbacks};
    ERL_NIF_TERM vals[] = {
        enif_make_uint64(env, rs.pushed + rs.dropped_full + denc),
        enif_make_uint64(env, rs.pushed),
        enif_make_uint64(env, ss.appended),
        enif_make_uint64(env, rs.dropped_full),
        enif_make_uint64(env, rs.overwritten),
        enif_make_uint64(env, dstore),
        enif_make_uint64(env, denc),
        enif_make_uint64(env, rs.pushed - rs.overwritten - rs.popped),
        enif_make_uint64(env, rs.capacity),
        enif_make_uint64(env, ss.evicted_events),
        enif_make_uint64(env, ss.evicted_segments),
        enif_make_uint64(env, ss.live_events),
        enif_make_uint64(env, ss.bytes_used),
        enif_make_uint64(env, ss.record_bytes),
        enif_make_uint64(env, ss.payload_bytes),
        enif_make_uint64(env, ss.index_bytes),
        enif_make_uint64(env, ss.segments),
        enif_make_uint64(env, ss.first_id),
        enif_make_uint64(env, ss.last_id),
        enif_make_uint64(env, ss.min_ts),
        enif_make_uint64(env, ss.max_ts),
        enif_make_uint64(env, rs.full_since_ns),
        atomic_load(&s->enabled) ? a->true_ : a->false_,
        atomic_load(&p->active) == s ? a->true_ : a->false_,
        enif_make_uint64(env, rs.waits),
        enif_make_uint64(env, rs.wait_ns),
        enif_make_uint64(env, rs.pool_bytes),
        enif_make_uint64(env, rs.heap_fallbacks)};
    ERL_NIF_TERM map;
    if (!enif_make_map_from_arrays(env, keys, vals, sizeof(keys) / sizeof(keys[0]), &map))
        return es_raise_arg(env, "stats: could not build the map");
    return map;
}

/* encode(session, term) -> {etf_binary, flags}: the codec alone, for tests and benches */
static ERL_NIF_TERM nif_encode(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    es_session *s;
    uint8_t storage[512];
    es_buf buf;
    unsigned flags = 0;
    ERL_NIF_TERM bin;
    (void)argc;
    if (!get_session(env, argv[0], &s)) return es_raise_arg(env, "encode/2 expects a session");
    es_buf_init(&buf, storage, sizeof(storage));
    if (es_codec_encode(&PRIV(env)->ops, env, (es_term)argv[1], &s->limits, &s->redact, &buf, &flags) != 0 ||
        buf.failed) {
        es_buf_free(&buf);
        return es_raise_arg(env, "encode/2: out of memory");
    }
    memcpy(enif_make_new_binary(env, buf.len, &bin), buf.data, buf.len);
    es_buf_free(&buf);
    return enif_make_tuple2(env, bin, enif_make_uint(env, flags));
}

/* redact_check(deny, allow) -> :ok | {:error, message}: the patterns as session_new/1 takes them */
static ERL_NIF_TERM nif_redact_check(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    es_redact_set *rs = enif_alloc(sizeof *rs);
    const char *err;
    ERL_NIF_TERM msg;
    (void)argc;
    if (!rs) return es_raise_arg(env, "redact_check/2: out of memory");
    es_redact_init(rs);
    err = add_patterns(env, rs, 0, argv[0]);
    if (!err) err = add_patterns(env, rs, 1, argv[1]);
    enif_free(rs);
    if (!err) return PRIV(env)->atoms.ok;
    memcpy(enif_make_new_binary(env, strlen(err), &msg), err, strlen(err));
    return enif_make_tuple2(env, PRIV(env)->atoms.error, msg);
}

/* redact_secret_name(name, deny, allow) -> boolean: the capture's name rule, for the compiler */
static ERL_NIF_TERM nif_redact_secret_name(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    es_atoms *a = &PRIV(env)->atoms;
    char name[ES_NAME_MAX];
    const char *data = name;
    size_t len;
    ErlNifBinary bin;
    int n, secret;
    es_redact_set *rs;
    const char *err;
    (void)argc;
    if ((n = enif_get_atom(env, argv[0], name, sizeof name, ERL_NIF_LATIN1)) > 0) {
        len = (size_t)n - 1;
    } else if (enif_inspect_binary(env, argv[0], &bin)) {
        data = (const char *)bin.data;
        len = bin.size;
    } else if (enif_is_atom(env, argv[0])) {
        return a->false_; /* beyond Latin-1: no pattern is (patterns are ASCII in practice) */
    } else {
        return es_raise_arg(env, "redact_secret_name/3: the name must be an atom or a binary");
    }
    rs = enif_alloc(sizeof *rs);
    if (!rs) return es_raise_arg(env, "redact_secret_name/3: out of memory");
    es_redact_init(rs);
    err = add_patterns(env, rs, 0, argv[1]);
    if (!err) err = add_patterns(env, rs, 1, argv[2]);
    secret = !err && es_redact_secret_name(rs, data, len);
    enif_free(rs);
    if (err) return es_raise_arg(env, err);
    return secret ? a->true_ : a->false_;
}

static ERL_NIF_TERM nif_now(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    (void)argv;
    return enif_make_uint64(env, es_clock_now(&PRIV(env)->clock));
}

/* The capture switch's mode (0 off, 1 on, 2 on but for some modules), read by the :dynamic shape of
 * ElixirScope.Capture.Switch before every entry. A NIF rather than the :atomics Control keeps: on
 * OTP 25 an :atomics (or :counters) read makes the NIF call after it ~120 ns slower (measured:
 * bench/capture_bench.exs), a NIF call does not. */
static ERL_NIF_TERM nif_switch_mode(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    (void)argv;
    return enif_make_int(env, atomic_load_explicit(&PRIV(env)->switch_mode, memory_order_relaxed));
}

static ERL_NIF_TERM nif_set_switch_mode(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    int mode;
    (void)argc;
    if (!enif_get_int(env, argv[0], &mode) || mode < 0 || mode > 2)
        return es_raise_arg(env, "set_switch_mode/1 expects 0, 1 or 2");
    atomic_store(&PRIV(env)->switch_mode, mode);
    return PRIV(env)->atoms.ok;
}

/* The baseline for benchmarks: a NIF that does nothing. */
static ERL_NIF_TERM nif_noop(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    (void)argv;
    return PRIV(env)->atoms.ok;
}

/* ---- load / unload ------------------------------------------------------------- */
static ERL_NIF_TERM mk_atom(ErlNifEnv *env, const char *name) { return enif_make_atom(env, name); }

static void make_atoms(ErlNifEnv *env, es_atoms *a) {
    a->ok = mk_atom(env, "ok");
    a->error = mk_atom(env, "error");
    a->nil = mk_atom(env, "nil");
    a->true_ = mk_atom(env, "true");
    a->false_ = mk_atom(env, "false");
    for (int k = 0; k < ES_KIND__COUNT; k++) a->kinds[k] = mk_atom(env, KIND_NAMES[k]);
    a->drop_newest = mk_atom(env, "drop_newest");
    a->overwrite_oldest = mk_atom(env, "overwrite_oldest");
    a->asc = mk_atom(env, "asc");
    a->desc = mk_atom(env, "desc");
    a->k_ring_capacity = mk_atom(env, "ring_capacity");
    a->k_overflow = mk_atom(env, "overflow");
    a->k_max_depth = mk_atom(env, "max_depth");
    a->k_max_width = mk_atom(env, "max_width");
    a->k_max_binary = mk_atom(env, "max_binary");
    a->k_max_bytes = mk_atom(env, "max_bytes");
    a->k_redact = mk_atom(env, "redact");
    a->k_redact_allow = mk_atom(env, "redact_allow");
    a->k_store_max_bytes = mk_atom(env, "store_max_bytes");
    a->k_segment_events = mk_atom(env, "segment_events");
    a->k_ring_payload_budget = mk_atom(env, "ring_payload_budget");
    a->k_ring_max_wait_ns = mk_atom(env, "ring_max_wait_ns");
    a->s_waits = mk_atom(env, "backpressure_waits");
    a->s_wait_ns = mk_atom(env, "backpressure_wait_ns");
    a->s_pool_bytes = mk_atom(env, "payload_pool_bytes");
    a->s_heap_fallbacks = mk_atom(env, "payload_heap_fallbacks");
    a->k_pid = mk_atom(env, "pid");
    a->k_module = mk_atom(env, "module");
    a->k_function = mk_atom(env, "function");
    a->k_arity = mk_atom(env, "arity");
    a->k_kinds = mk_atom(env, "kinds");
    a->k_call_id = mk_atom(env, "call_id");
    a->k_correlation_id = mk_atom(env, "correlation_id");
    a->k_since = mk_atom(env, "since");
    a->k_until = mk_atom(env, "until");
    a->k_after_id = mk_atom(env, "after_id");
    a->k_before_id = mk_atom(env, "before_id");
    a->k_limit = mk_atom(env, "limit");
    a->k_order = mk_atom(env, "order");
    a->s_emitted = mk_atom(env, "emitted");
    a->s_pushed = mk_atom(env, "pushed");
    a->s_stored = mk_atom(env, "stored");
    a->s_dropped_full = mk_atom(env, "dropped_ring_full");
    a->s_overwritten = mk_atom(env, "dropped_overwritten");
    a->s_dropped_store = mk_atom(env, "dropped_store");
    a->s_dropped_encode = mk_atom(env, "dropped_encode");
    a->s_pending = mk_atom(env, "pending");
    a->s_capacity = mk_atom(env, "ring_capacity");
    a->s_evicted_events = mk_atom(env, "evicted_events");
    a->s_evicted_segments = mk_atom(env, "evicted_segments");
    a->s_live_events = mk_atom(env, "live_events");
    a->s_bytes_used = mk_atom(env, "bytes_used");
    a->s_record_bytes = mk_atom(env, "record_bytes");
    a->s_payload_bytes = mk_atom(env, "payload_bytes");
    a->s_index_bytes = mk_atom(env, "index_bytes");
    a->s_segments = mk_atom(env, "segments");
    a->s_first_id = mk_atom(env, "first_id");
    a->s_last_id = mk_atom(env, "last_id");
    a->s_min_ts = mk_atom(env, "min_ts");
    a->s_max_ts = mk_atom(env, "max_ts");
    a->s_full_since_ns = mk_atom(env, "ring_full_since_ns");
    a->s_enabled = mk_atom(env, "enabled");
    a->s_installed = mk_atom(env, "installed");
    a->exc_struct = mk_atom(env, "__struct__");
    a->exc_module = mk_atom(env, "Elixir.ArgumentError");
    a->exc_message = mk_atom(env, "message");
    a->exc_exception = mk_atom(env, "__exception__");
}

static int on_load(ErlNifEnv *env, void **priv_data, ERL_NIF_TERM load_info) {
    es_priv *p = enif_alloc(sizeof(es_priv));
    (void)load_info;
    if (!p) return 1;
    memset(p, 0, sizeof(*p));
    p->session_type = enif_open_resource_type(env, NULL, "elixir_scope_session", session_dtor,
                                              ERL_NIF_RT_CREATE | ERL_NIF_RT_TAKEOVER, NULL);
    if (!p->session_type) {
        enif_free(p);
        return 1;
    }
    if (es_llm_global_init() != 0) { /* libcurl, once per load (llm, issue 5) */
        enif_free(p);
        return 1;
    }
    if (es_nif_recording_open_types(env, p->recording_types) != 0) {
        enif_free(p);
        return 1;
    }
    make_atoms(env, &p->atoms);
    p->ops = NIF_TERM_OPS;
    p->ops.layout = checked_layout(env, &p->layout);
    p->encode_ext = checked_encode_ext(env);
    p->ops.atoms = &p->atom_cache;
    es_clock_init(&p->clock, es_clock_tsc_usable());
    atomic_store(&p->active, NULL);
    atomic_store(&p->switch_mode, 0);
    for (int i = 0; i < INFLIGHT_STRIPES; i++) atomic_store(&p->inflight[i].n, 0);
    *priv_data = p;
    return 0;
}

static void on_unload(ErlNifEnv *env, void *priv_data) {
    es_priv *p = priv_data;
    es_session *old;
    (void)env;
    old = uninstall_active(p);
    if (old) enif_release_resource(old);
    enif_free(p);
    es_llm_global_cleanup(); /* llm (issue 5) */
}

static ErlNifFunc nif_funcs[] = {
    /* capture core (this file) */
    {"session_new", 1, nif_session_new, 0},
    {"session_install", 1, nif_session_install, 0},
    {"session_uninstall", 0, nif_session_uninstall, 0},
    {"set_enabled", 2, nif_set_enabled, 0},
    {"emit_entry", 4, nif_emit_entry, 0},
    {"emit_exit", 2, nif_emit_exit, 0},
    {"emit_pre", 4, nif_emit_pre, 0},
    {"emit_callback_exit", 4, nif_emit_callback_exit, 0},
    {"emit", 8, nif_emit, 0},
    {"emit_value", 4, nif_emit_value, 0},
    {"emit_as", 5, nif_emit_as, 0},
    {"pids_since", 2, nif_pids_since, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    {"drain", 2, nif_drain, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    {"query", 2, nif_query, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    {"query_events", 3, nif_query_events, 0}, /* small pid queries here, the rest dirty */
    {"query_call_trees", 3, nif_query_call_trees, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    {"call_trees", 2, es_nif_call_trees, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    {"get_event", 2, nif_get_event, ERL_NIF_DIRTY_JOB_CPU_BOUND}, /* payloads up to max_bytes */
    {"clear", 1, nif_clear, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    {"stats", 1, nif_stats, 0},
    {"encode", 2, nif_encode, 0},
    {"redact_check", 2, nif_redact_check, 0},
    {"redact_secret_name", 3, nif_redact_secret_name, 0},
    {"now", 0, nif_now, 0},
    {"noop", 0, nif_noop, 0},
    {"switch_mode", 0, nif_switch_mode, 0},
    {"set_switch_mode", 1, nif_set_switch_mode, 0},
    /* component glue (c_src/nif_<component>.c), appended below */
    /* ---- llm (issue 5, c_src/nif_llm.c) ---- */
    {"llm_http_request", 5, es_nif_llm_http_request, ERL_NIF_DIRTY_JOB_IO_BOUND},
    {"json_decode", 1, es_nif_json_decode, 0},
    {"json_encode", 1, es_nif_json_encode, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    {"llm_build_gemini_request", 5, es_nif_llm_build_gemini_request, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    {"llm_build_openai_request", 6, es_nif_llm_build_openai_request, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    {"llm_extract_text", 2, es_nif_llm_extract_text, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    {"llm_parse_plan", 1, es_nif_llm_parse_plan, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    {"llm_plan_schema", 0, es_nif_llm_plan_schema, 0},
    /* ---- forms transformer (c_src/nif_forms.c) ---- */
    {"forms_transform", 2, es_nif_forms_transform, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    /* ---- recording files, version 3 (c_src/nif_recording.c) ---- */
    {"recording_save", 3, es_nif_recording_save, ERL_NIF_DIRTY_JOB_IO_BOUND},
    {"recording_save_end", 2, es_nif_recording_save_end, ERL_NIF_DIRTY_JOB_IO_BOUND},
    {"recording_open", 2, es_nif_recording_open, ERL_NIF_DIRTY_JOB_IO_BOUND},
    {"recording_ready", 1, es_nif_recording_ready, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    {"recording_query", 2, es_nif_recording_query, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    {"recording_get", 2, es_nif_recording_get, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    {"recording_query_call_trees", 3, es_nif_recording_query_call_trees, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    {"recording_info", 1, es_nif_recording_info, 0},
};

ERL_NIF_INIT(Elixir.ElixirScope.NIF, nif_funcs, on_load, NULL, NULL, on_unload)
