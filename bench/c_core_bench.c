/* Benchmark of the pure C capture core: ring buffer, term codec, event store.
 *
 * Build and run (from the repository root): make build/c_core_bench && ./build/c_core_bench
 *
 * Prints one "name: value unit" line per measurement, then the same numbers
 * as one JSON object on the last line (for bench/run.exs to pick up).
 * Every figure is the median of several rounds. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elixir_scope/event_store.h"
#include "elixir_scope/ring_buffer.h"
#include "elixir_scope/term_codec.h"

#define ROUNDS 7

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), cmp_d);
    return v[n / 2];
}

static es_event_head head_for(uint64_t pid, uint32_t line) {
    es_event_head h;
    memset(&h, 0, sizeof h);
    h.ts = 0;
    h.pid = pid;
    h.module = 0x100;
    h.function = 0x200 + line % 16;
    h.kind = ES_KIND_CALL;
    h.arity = 2;
    h.line = line;
    return h;
}

static void null_sink(void *ctx, const es_event_head *h, const uint8_t *p, uint32_t len) {
    (void)h;
    (void)p;
    *(uint64_t *)ctx += len;
}

/* ---- 1. ring push, one thread ---- */
static double bench_push_single(void) {
    const uint32_t cap = 1u << 16;
    es_ring *r = es_ring_create(cap, ES_OVERFLOW_DROP_NEWEST);
    uint8_t payload[40];
    memset(payload, 7, sizeof payload);
    double res[ROUNDS];
    uint64_t sink = 0;
    for (int round = 0; round < ROUNDS; round++) {
        double total = 0;
        uint64_t n = 0;
        for (int batch = 0; batch < 8; batch++) {
            uint64_t t0 = es_now_ns();
            for (uint32_t i = 0; i < cap; i++) {
                es_event_head h = head_for(1, i);
                es_ring_push(r, &h, payload, sizeof payload);
            }
            total += (double)(es_now_ns() - t0);
            n += cap;
            es_ring_drain(r, cap, null_sink, &sink);
        }
        res[round] = total / (double)n;
    }
    es_ring_destroy(r);
    return median(res, ROUNDS);
}

/* ---- 1b. ring push over a fresh ring's first lap (the pages of its slots are first touched) ---- */
static double bench_push_first_lap(void) {
    const uint32_t cap = 1u << 16;
    uint8_t payload[40];
    memset(payload, 7, sizeof payload);
    double res[ROUNDS];
    for (int round = 0; round < ROUNDS; round++) {
        es_ring *r = es_ring_create(cap, ES_OVERFLOW_DROP_NEWEST);
        uint64_t t0 = es_now_ns();
        for (uint32_t i = 0; i < cap; i++) {
            es_event_head h = head_for(1, i);
            es_ring_push(r, &h, payload, sizeof payload);
        }
        res[round] = (double)(es_now_ns() - t0) / cap;
        es_ring_destroy(r);
    }
    return median(res, ROUNDS);
}

/* ---- 2. ring push, two producer threads at once ---- */
typedef struct pusher {
    es_ring *r;
    uint32_t n;
    atomic_int *go;
    uint64_t ns;
    uint64_t pid;
} pusher;

static void *push_thread(void *p) {
    pusher *a = p;
    uint8_t payload[40];
    memset(payload, 3, sizeof payload);
    while (!atomic_load(a->go)) {
    }
    uint64_t t0 = es_now_ns();
    for (uint32_t i = 0; i < a->n; i++) {
        es_event_head h = head_for(a->pid, i);
        es_ring_push(a->r, &h, payload, sizeof payload);
    }
    a->ns = es_now_ns() - t0;
    return NULL;
}

static double bench_push_two(void) {
    const uint32_t per = 100000;
    es_ring *r = es_ring_create(1u << 18, ES_OVERFLOW_DROP_NEWEST);
    double res[ROUNDS];
    uint64_t sink = 0;
    for (int round = 0; round < ROUNDS; round++) {
        atomic_int go;
        atomic_init(&go, 0);
        pusher a[2] = {{r, per, &go, 0, 1}, {r, per, &go, 0, 2}};
        pthread_t t[2];
        for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, push_thread, &a[i]);
        atomic_store(&go, 1);
        for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
        res[round] = ((double)a[0].ns / per + (double)a[1].ns / per) / 2.0; /* ns per push per thread */
        es_ring_drain(r, SIZE_MAX, null_sink, &sink);
    }
    es_ring_destroy(r);
    return median(res, ROUNDS);
}

/* ---- 3. drain ring -> store ----
 * warm: the store runs at its byte cap (64 MB), so evicted segments are
 * recycled and no fresh memory is touched (the steady state of a long
 * session); the drainer holds the write lock per batch of 4096.
 * cold: an empty uncapped store, every event lands in freshly faulted memory
 * (one lock per event, es_store_append). */
static void store_sink_locked(void *ctx, const es_event_head *h, const uint8_t *p, uint32_t len) {
    es_store_append_locked((es_store *)ctx, h, p, len);
}
static void store_sink(void *ctx, const es_event_head *h, const uint8_t *p, uint32_t len) {
    es_store_append((es_store *)ctx, h, p, len);
}

static void fill_ring(es_ring *r, uint32_t n, uint64_t *ts) {
    uint8_t payload[40];
    memset(payload, 9, sizeof payload);
    for (uint32_t i = 0; i < n; i++) {
        es_event_head h = head_for(1 + i % 64, i);
        h.ts = (*ts)++;
        h.kind = i % 2 ? ES_KIND_RETURN : ES_KIND_CALL;
        es_ring_push(r, &h, payload, sizeof payload);
        /* call_id = own id for calls, the previous id for returns */
    }
}

static double bench_drain_append(int warm) {
    const uint32_t cap = 1u << 16;
    es_ring *r = es_ring_create(cap, ES_OVERFLOW_DROP_NEWEST);
    double res[ROUNDS];
    uint64_t ts = 1;
    es_store_config cfg = {64u << 20, 65536};
    es_store *s = warm ? es_store_create(&cfg) : NULL;
    if (warm) { /* fill past the cap first */
        for (int i = 0; i < 40; i++) {
            fill_ring(r, cap, &ts);
            es_store_write_lock(s);
            es_ring_drain(r, SIZE_MAX, store_sink_locked, s);
            es_store_write_unlock(s);
        }
    }
    for (int round = 0; round < ROUNDS; round++) {
        if (!warm) s = es_store_create(NULL);
        double total_ns = 0;
        uint64_t n = 0;
        for (int batch = 0; batch < 8; batch++) {
            fill_ring(r, cap, &ts);
            uint64_t t0 = es_now_ns();
            if (warm) {
                size_t got;
                do {
                    es_store_write_lock(s);
                    got = es_ring_drain(r, 4096, store_sink_locked, s);
                    es_store_write_unlock(s);
                    n += got;
                } while (got);
            } else {
                n += es_ring_drain(r, SIZE_MAX, store_sink, s);
            }
            total_ns += (double)(es_now_ns() - t0);
        }
        res[round] = (double)n / (total_ns / 1e9);
        if (!warm) es_store_destroy(s);
    }
    if (warm) {
        es_store_stats st;
        es_store_get_stats(s, &st);
        if (st.evicted_segments == 0) fprintf(stderr, "warm store never evicted\n");
        es_store_destroy(s);
    }
    es_ring_destroy(r);
    return median(res, ROUNDS);
}

/* ---- 4. store: pid query of 1,000 events out of 1,000,000; bytes/event ---- */
static int count_cb(void *ctx, const es_event_view *v) {
    *(uint64_t *)ctx += v->head.id;
    return 0;
}

static void bench_store(double *query_us, double *bytes_per_event, double *payload_per_event, double *get_ns) {
    es_store *s = es_store_create(NULL);
    uint8_t payload[40];
    memset(payload, 1, sizeof payload);
    const uint64_t N = 1000000;
    for (uint64_t id = 1; id <= N; id++) {
        es_event_head h = head_for(0x1000 + id % 1000, (uint32_t)id);
        h.id = id;
        h.ts = id * 100;
        h.kind = id % 2 ? ES_KIND_CALL : ES_KIND_RETURN;
        h.call_id = id % 2 ? id : id - 1;
        es_store_append(s, &h, payload, sizeof payload);
    }
    double res[ROUNDS * 3];
    uint64_t acc = 0;
    for (int round = 0; round < ROUNDS * 3; round++) {
        es_query q;
        memset(&q, 0, sizeof q);
        q.fields = ES_Q_PID;
        q.pid = 0x1000 + (uint64_t)(round * 37 % 1000);
        uint64_t t0 = es_now_ns();
        size_t n = es_store_query(s, &q, count_cb, &acc);
        res[round] = (double)(es_now_ns() - t0) / 1000.0;
        if (n != 1000) fprintf(stderr, "unexpected count %zu\n", n);
    }
    *query_us = median(res, ROUNDS * 3);
    /* get by id */
    for (int round = 0; round < ROUNDS; round++) {
        uint64_t t0 = es_now_ns();
        for (uint64_t i = 0; i < 100000; i++) es_store_get(s, 1 + (i * 7919) % N, count_cb, &acc);
        res[round] = (double)(es_now_ns() - t0) / 100000.0;
    }
    *get_ns = median(res, ROUNDS);
    es_store_stats st;
    es_store_get_stats(s, &st);
    *bytes_per_event = (double)(st.record_bytes + st.index_bytes) / (double)st.live_events;
    *payload_per_event = (double)st.payload_bytes / (double)st.live_events;
    es_store_destroy(s);
}

/* ---- 5. codec: a 4-element list of small ints/atoms through a minimal term model ---- */
typedef struct bt {
    es_term_type ty;
    int64_t v;
    const char *name;
    es_term hd, tl;
} bt;
#define BT(t) ((bt *)(uintptr_t)(t))
static es_term_type b_type(void *e, es_term t) {
    (void)e;
    if ((t & 0xF) == 0x3) return ES_T_OTHER; /* a pid word */
    if ((t & 0x3F) == 0xB) return ES_T_ATOM;  /* an atom word */
    if ((t & 0x3) == 0x2) return (*(const uint64_t *)(uintptr_t)(t - 2) & 0x3F) == 0 ? ES_T_TUPLE : ES_T_OTHER;
    return BT(t)->ty;
}
static int b_int(void *e, es_term t, int64_t *o) {
    (void)e;
    *o = BT(t)->v;
    return 1;
}
static int b_dbl(void *e, es_term t, double *o) {
    (void)e;
    (void)t;
    *o = 0;
    return 0;
}
/* the atoms of the term words below, by index (word = index << 6 | 0xB) */
static const char *const WORD_ATOMS[] = {[7] = "ok", [9] = "add", [10] = "alias"};
static int b_atom(void *e, es_term t, char *buf, size_t cap) {
    (void)e;
    const char *name = (t & 0x3F) == 0xB ? WORD_ATOMS[t >> 6] : BT(t)->name;
    size_t n = strlen(name);
    if (n >= cap) return -1;
    memcpy(buf, name, n + 1);
    return (int)n;
}
static int b_bin(void *e, es_term t, const uint8_t **d, size_t *s, unsigned *tb) {
    (void)e;
    (void)t;
    (void)d;
    (void)s;
    (void)tb;
    return 0;
}
static int b_cell(void *e, es_term t, es_term *h, es_term *tl) {
    (void)e;
    if (BT(t)->ty != ES_T_LIST) return 0;
    *h = BT(t)->hd;
    *tl = BT(t)->tl;
    return 1;
}
static int b_tuple(void *e, es_term t, int *a, const es_term **el) {
    (void)e;
    (void)t;
    (void)a;
    (void)el;
    return 0;
}
static size_t b_msize(void *e, es_term t) {
    (void)e;
    (void)t;
    return 0;
}
static int b_mpairs(void *e, es_term t, es_term *k, es_term *v, size_t n) {
    (void)e;
    (void)t;
    (void)k;
    (void)v;
    (void)n;
    return -1;
}

/* ns per encoding of t (the median of ROUNDS rounds); complains unless each takes expect bytes */
static double time_encode(const es_term_ops *ops, es_term t, size_t expect, const es_redact_set *rs) {
    es_codec_limits lim = {16, 64, 1024, 4096};
    double res[ROUNDS];
    size_t total = 0;
    const int N = 1000000;
    for (int round = 0; round < ROUNDS; round++) {
        uint64_t t0 = es_now_ns();
        for (int i = 0; i < N; i++) {
            uint8_t storage[ES_RING_INLINE_PAYLOAD];
            es_buf b;
            es_buf_init(&b, storage, sizeof storage);
            unsigned fl;
            es_codec_encode(ops, NULL, t, &lim, rs, &b, &fl);
            total += b.len;
            es_buf_free(&b);
        }
        res[round] = (double)(es_now_ns() - t0) / N;
    }
    if (total != (size_t)N * ROUNDS * expect) fprintf(stderr, "codec wrote %zu bytes, not %zu\n", total, expect);
    return median(res, ROUNDS);
}

static double bench_codec(void) {
    static const es_term_ops ops = {b_type, b_int, b_dbl, b_atom, b_bin, b_cell, b_tuple, b_msize, b_mpairs, NULL, NULL, NULL, NULL};
    bt nil = {ES_T_NIL, 0, NULL, 0, 0};
    bt a1 = {ES_T_INT, 1, NULL, 0, 0}, a2 = {ES_T_ATOM, 0, "ok", 0, 0}, a3 = {ES_T_INT, 100000, NULL, 0, 0},
       a4 = {ES_T_ATOM, 0, "error", 0, 0};
    bt c4 = {ES_T_LIST, 0, NULL, (es_term)(uintptr_t)&a4, (es_term)(uintptr_t)&nil};
    bt c3 = {ES_T_LIST, 0, NULL, (es_term)(uintptr_t)&a3, (es_term)(uintptr_t)&c4};
    bt c2 = {ES_T_LIST, 0, NULL, (es_term)(uintptr_t)&a2, (es_term)(uintptr_t)&c3};
    bt c1 = {ES_T_LIST, 0, NULL, (es_term)(uintptr_t)&a1, (es_term)(uintptr_t)&c2};
    return time_encode(&ops, (es_term)(uintptr_t)&c1, 25, NULL);
}

/* 64-bit BEAM's term words (erl_term.h, erl_map.h), as the NIF verifies them at load */
#define BEAM_WORDS {0xF, 0xF, 4, 0x3B, 0x3F, 0xB, 0x3, 0x1, 0x3, 0x2, 0x3F, 0x0, 0x24, 6, 0xF, 0x3, 0x10, 0x13C}

/* pids and references: the ETF the VM's writer gives (a copy of fixed bytes here) */
static int b_ext(void *e, es_term t, es_buf *out) {
    static const uint8_t pid[] = {88, 119, 13, 'n', 'o', 'n', 'o', 'd', 'e', '@', 'n', 'o', 'h', 'o', 's', 't',
                                  0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t ref[] = {90, 0, 3, 119, 13, 'n', 'o', 'n', 'o', 'd', 'e', '@', 'n', 'o', 'h', 'o', 's', 't',
                                  0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 0, 0, 5, 6};
    (void)e;
    return (t & 0xF) == 0x3 ? es_buf_put(out, pid, sizeof pid) : es_buf_put(out, ref, sizeof ref);
}

/* terms as the VM lays them out, read through the layout and the atom cache (what the NIF does) */
static const es_term_layout BEAM = BEAM_WORDS;
static es_atom_cache word_atoms;
static const es_term_ops WORD_OPS = {b_type, b_int, b_dbl, b_atom, b_bin, b_cell, b_tuple, b_msize, b_mpairs, b_ext, NULL,
                                     &BEAM, &word_atoms};

/* an atom word's first encoding, which puts it into the atom cache (as in the VM) */
static void cache_atom(uint64_t word) {
    uint8_t storage[64];
    es_buf b;
    es_codec_limits lim = {1, 1, 0, 0};
    unsigned fl;
    es_buf_init(&b, storage, sizeof storage);
    es_codec_encode(&WORD_OPS, NULL, word, &lim, NULL, &b, &fl);
    es_buf_free(&b);
}

/* ---- 5b. the same list as the VM lays it out, read through es_term_layout and the atom cache
 * (what the NIF does): small integers, a cached atom and a heap binary ---- */
static double bench_codec_layout(void) {
    static uint64_t words[12] __attribute__((aligned(16)));
    const uint64_t atom_ok = (7u << 6) | 0xB;
    /* "b" as a heap binary: header (2 words follow) | 0x24, size 1, the byte */
    words[0] = (2u << 6) | 0x24;
    words[1] = 1;
    words[2] = 'b';
    uint64_t bin = (uint64_t)(uintptr_t)&words[0] | 2;
    /* cons cells {head, tail}: [1, 100000, :ok, "b"] */
    uint64_t *c = &words[4];
    c[6] = bin, c[7] = 0x3B;
    c[4] = atom_ok, c[5] = (uint64_t)(uintptr_t)&c[6] | 1;
    c[2] = (100000u << 4) | 0xF, c[3] = (uint64_t)(uintptr_t)&c[4] | 1;
    c[0] = (1u << 4) | 0xF, c[1] = (uint64_t)(uintptr_t)&c[2] | 1;
    es_term list = (es_term)(uintptr_t)&c[0] | 1;
    cache_atom(atom_ok);
    return time_encode(&WORD_OPS, list, 24, NULL);
}

/* ---- 5c. a GenServer call's arguments, [{:add, 1}, {pid, [:alias | ref]}, 0], as the VM lays them
 * out, under the default redaction rules (each tuple's tag is looked up) ---- */
static double bench_codec_nested(void) {
    static uint64_t w[32] __attribute__((aligned(16)));
    const uint64_t add = (9u << 6) | 0xB, alias = (10u << 6) | 0xB, pid = (77u << 4) | 0x3;
    cache_atom(add);
    cache_atom(alias);
#define BOX(i) ((uint64_t)(uintptr_t)&w[i] | 2)
#define CONS(i) ((uint64_t)(uintptr_t)&w[i] | 1)
    w[0] = 3u << 6 | 0x10, w[1] = 1, w[2] = 2, w[3] = 3;   /* a reference */
    w[4] = alias, w[5] = BOX(0);                          /* [:alias | ref] */
    w[6] = 2u << 6, w[7] = pid, w[8] = CONS(4);           /* {pid, [:alias | ref]} */
    w[10] = 2u << 6, w[11] = add, w[12] = (1u << 4) | 0xF; /* {:add, 1} */
    w[14] = BOX(10), w[15] = CONS(16);                    /* the argument list */
    w[16] = BOX(6), w[17] = CONS(18);
    w[18] = 0xF, w[19] = 0x3B;
    es_term args = CONS(14);
#undef BOX
#undef CONS
    static es_redact_set rs;
    static es_redact_cache rcache;
    es_redact_init(&rs);
    es_redact_add(&rs, 0, "*password*", 10);
    es_redact_add(&rs, 0, "*token*", 7);
    rs.cache = &rcache;
    return time_encode(&WORD_OPS, args, 1 + 5 + 2 + 5 + 2 + 2 + 28 + 5 + 7 + 34 + 2 + 1, &rs);
}

int main(void) {
    double push1 = bench_push_single();
    printf("ring_push_ns_1thread: %.1f ns/op\n", push1);
    double push_first = bench_push_first_lap();
    printf("ring_push_ns_first_lap: %.1f ns/op (a fresh ring, 65,536 slots)\n", push_first);
    double push2 = bench_push_two();
    printf("ring_push_ns_2threads: %.1f ns/op per thread\n", push2);
    double codec = bench_codec();
    printf("codec_encode_4_args_ns: %.1f ns/op\n", codec);
    double codec_layout = bench_codec_layout();
    printf("codec_encode_4_args_layout_ns: %.1f ns/op (term words as the VM lays them out)\n", codec_layout);
    double codec_nested = bench_codec_nested();
    printf("codec_encode_call_args_ns: %.1f ns/op ([{:add, 1}, {pid, [:alias | ref]}, 0], redaction rules on)\n",
           codec_nested);
    double drain = bench_drain_append(1);
    printf("drain_to_store_events_per_s: %.0f (warm: store at its cap, batch lock)\n", drain);
    double drain_cold = bench_drain_append(0);
    printf("drain_to_store_cold_events_per_s: %.0f (fresh memory, lock per event)\n", drain_cold);
    double q_us, bpe, ppe, get_ns;
    bench_store(&q_us, &bpe, &ppe, &get_ns);
    printf("store_pid_query_1000_of_1M_us: %.1f us\n", q_us);
    printf("store_get_by_id_ns: %.1f ns\n", get_ns);
    printf("store_event_bytes: %.2f bytes/event (records + indexes, excluding payload)\n", bpe);
    printf("store_payload_bytes: %.2f bytes/event (40-byte payloads, arena capacity)\n", ppe);
    printf("{\"ring_push_ns_1thread\": %.1f, \"ring_push_ns_first_lap\": %.1f, \"ring_push_ns_2threads\": %.1f, \"codec_encode_4_args_ns\": %.1f, \"codec_encode_4_args_layout_ns\": %.1f, "
           "\"codec_encode_call_args_ns\": %.1f, "
           "\"drain_to_store_events_per_s\": %.0f, \"drain_to_store_cold_events_per_s\": %.0f, "
           "\"store_pid_query_1000_of_1M_us\": %.1f, "
           "\"store_get_by_id_ns\": %.1f, \"store_event_bytes\": %.2f, \"store_payload_bytes\": %.2f}\n",
           push1, push_first, push2, codec, codec_layout, codec_nested, drain, drain_cold, q_us, get_ns, bpe, ppe);
    return 0;
}
