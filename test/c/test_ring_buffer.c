/* CMocka tests of the lock-free MPMC ring (c_src/ring_buffer.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elixir_scope/ring_buffer.h"

/* ---- a sink that records what it is handed ---- */
typedef struct rec {
    es_event_head head;
    uint32_t len;
    uint8_t payload[600];
} rec;

typedef struct collector {
    rec *items;
    size_t n, cap;
} collector;

static void collect_sink(void *ctx, const es_event_head *head, const uint8_t *payload, uint32_t len) {
    collector *c = ctx;
    assert_true(c->n < c->cap);
    rec *r = &c->items[c->n++];
    r->head = *head;
    r->len = len;
    assert_true(len <= sizeof(r->payload));
    memcpy(r->payload, payload, len);
}

static es_event_head mk_head(uint64_t pid, uint32_t line) {
    es_event_head h;
    memset(&h, 0, sizeof h);
    h.ts = es_now_ns();
    h.pid = pid;
    h.module = 0x1234;
    h.function = 0x5678;
    h.line = line;
    h.kind = ES_KIND_CALL;
    h.arity = 2;
    return h;
}

static void test_capacity_validation(void **state) {
    (void)state;
    assert_null(es_ring_create(0, ES_OVERFLOW_DROP_NEWEST));
    assert_null(es_ring_create(1, ES_OVERFLOW_DROP_NEWEST));
    assert_null(es_ring_create(3, ES_OVERFLOW_DROP_NEWEST));
    assert_null(es_ring_create(1000, ES_OVERFLOW_DROP_NEWEST));
    assert_null(es_ring_create((1u << 30) + 1, ES_OVERFLOW_DROP_NEWEST));
    assert_null(es_ring_create(ES_RING_MAX_CAPACITY * 2, ES_OVERFLOW_DROP_NEWEST));
    assert_null(es_ring_create(1u << 31, ES_OVERFLOW_DROP_NEWEST));
    assert_null(es_ring_create(16, (es_overflow)7));
    es_ring *r = es_ring_create(2, ES_OVERFLOW_DROP_NEWEST);
    assert_non_null(r);
    es_ring_destroy(r);
    r = es_ring_create(1024, ES_OVERFLOW_OVERWRITE_OLDEST);
    assert_non_null(r);
    es_ring_stats st;
    es_ring_get_stats(r, &st);
    assert_int_equal(st.capacity, 1024);
    assert_int_equal(st.pushed, 0);
    assert_int_equal(st.size, 0);
    assert_int_equal(st.full_since_ns, 0);
    es_ring_destroy(r);
    es_ring_destroy(NULL);
}

static void test_fifo_dense_ids(void **state) {
    (void)state;
    es_ring *r = es_ring_create(64, ES_OVERFLOW_DROP_NEWEST);
    assert_non_null(r);
    collector c = {calloc(200, sizeof(rec)), 0, 200};
    uint64_t expect_id = 1;
    for (int round = 0; round < 3; round++) {
        for (uint32_t i = 0; i < 50; i++) {
            es_event_head h = mk_head(7, i);
            uint8_t pl[4] = {(uint8_t)round, (uint8_t)i, 0xAB, 0xCD};
            uint64_t id = es_ring_push(r, &h, pl, sizeof pl);
            assert_int_equal(id, expect_id);
            assert_int_equal(h.id, id);
            expect_id++;
        }
        es_ring_stats st;
        es_ring_get_stats(r, &st);
        assert_int_equal(st.size, 50);
        assert_int_equal(es_ring_drain(r, 1000, collect_sink, &c), 50);
    }
    assert_int_equal(c.n, 150);
    for (size_t k = 0; k < c.n; k++) {
        assert_int_equal(c.items[k].head.id, k + 1);
        assert_int_equal(c.items[k].head.line, k % 50);
        assert_int_equal(c.items[k].head.pid, 7);
        assert_int_equal(c.items[k].head.module, 0x1234);
        assert_int_equal(c.items[k].len, 4);
        assert_int_equal(c.items[k].payload[0], k / 50);
        assert_int_equal(c.items[k].payload[1], k % 50);
    }
    /* drain of an empty ring */
    assert_int_equal(es_ring_drain(r, 10, collect_sink, &c), 0);
    /* max bounds the drain */
    for (int i = 0; i < 10; i++) {
        es_event_head h = mk_head(1, i);
        assert_int_not_equal(es_ring_push(r, &h, NULL, 0), 0);
    }
    assert_int_equal(es_ring_drain(r, 3, collect_sink, &c), 3);
    assert_int_equal(es_ring_drain(r, 100, collect_sink, &c), 7);
    assert_int_equal(c.items[c.n - 1].head.id, 160);
    assert_int_equal(c.items[c.n - 1].len, 0);
    es_ring_stats st;
    es_ring_get_stats(r, &st);
    assert_int_equal(st.pushed, 160);
    assert_int_equal(st.popped, 160);
    assert_int_equal(st.size, 0);
    free(c.items);
    es_ring_destroy(r);
}

static void test_inline_and_heap_payloads(void **state) {
    (void)state;
    es_ring *r = es_ring_create(8, ES_OVERFLOW_DROP_NEWEST);
    uint32_t sizes[] = {0, 1, 40, ES_RING_INLINE_PAYLOAD, ES_RING_INLINE_PAYLOAD + 1, 599};
    size_t n = sizeof sizes / sizeof sizes[0];
    uint8_t buf[600];
    for (size_t i = 0; i < n; i++) {
        for (uint32_t j = 0; j < sizes[i]; j++) buf[j] = (uint8_t)(j * 31 + i);
        es_event_head h = mk_head(1, (uint32_t)i);
        assert_int_equal(es_ring_push(r, &h, buf, sizes[i]), i + 1);
    }
    collector c = {calloc(16, sizeof(rec)), 0, 16};
    assert_int_equal(es_ring_drain(r, 100, collect_sink, &c), n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(c.items[i].len, sizes[i]);
        for (uint32_t j = 0; j < sizes[i]; j++) assert_int_equal(c.items[i].payload[j], (uint8_t)(j * 31 + i));
    }
    /* heap payloads still in the ring are freed by destroy (ASan checks the leak) */
    for (int i = 0; i < 5; i++) {
        es_event_head h = mk_head(1, 0);
        assert_int_not_equal(es_ring_push(r, &h, buf, 500), 0);
    }
    free(c.items);
    es_ring_destroy(r);
}

static void test_drop_newest_counts(void **state) {
    (void)state;
    es_ring *r = es_ring_create(16, ES_OVERFLOW_DROP_NEWEST);
    uint8_t big[300] = {0};
    for (int i = 0; i < 16; i++) {
        es_event_head h = mk_head(1, i);
        assert_int_equal(es_ring_push(r, &h, big, i % 2 ? 300 : 8), i + 1);
    }
    es_ring_stats st;
    es_ring_get_stats(r, &st);
    assert_int_equal(st.full_since_ns, 0);
    for (int i = 0; i < 10; i++) {
        es_event_head h = mk_head(1, 100 + i);
        assert_int_equal(es_ring_push(r, &h, big, i % 2 ? 300 : 8), 0);
    }
    es_ring_get_stats(r, &st);
    assert_int_equal(st.dropped_full, 10);
    assert_int_equal(st.pushed, 16);
    assert_int_equal(st.size, 16);
    assert_int_not_equal(st.full_since_ns, 0);
    assert_true(st.full_since_ns <= es_now_ns());
    collector c = {calloc(32, sizeof(rec)), 0, 32};
    assert_int_equal(es_ring_drain(r, 4, collect_sink, &c), 4);
    es_ring_get_stats(r, &st);
    assert_int_equal(st.full_since_ns, 0); /* a drain freed room */
    /* ids stay dense after drops */
    es_event_head h = mk_head(1, 999);
    assert_int_equal(es_ring_push(r, &h, NULL, 0), 17);
    assert_int_equal(es_ring_drain(r, 100, collect_sink, &c), 13);
    for (size_t k = 0; k < c.n; k++) assert_int_equal(c.items[k].head.id, k + 1);
    assert_int_equal(c.items[16].head.line, 999);
    free(c.items);
    es_ring_destroy(r);
}

static void test_overwrite_oldest_keeps_newest(void **state) {
    (void)state;
    es_ring *r = es_ring_create(8, ES_OVERFLOW_OVERWRITE_OLDEST);
    uint8_t big[300];
    for (int i = 0; i < 30; i++) {
        es_event_head h = mk_head(1, i);
        big[0] = (uint8_t)i;
        assert_int_equal(es_ring_push(r, &h, big, i % 3 ? 300 : 1), i + 1);
    }
    es_ring_stats st;
    es_ring_get_stats(r, &st);
    assert_int_equal(st.pushed, 30);
    assert_int_equal(st.overwritten, 22);
    assert_int_equal(st.dropped_full, 0);
    assert_int_equal(st.size, 8);
    assert_int_not_equal(st.full_since_ns, 0);
    collector c = {calloc(8, sizeof(rec)), 0, 8};
    assert_int_equal(es_ring_drain(r, 100, collect_sink, &c), 8);
    for (int k = 0; k < 8; k++) {
        assert_int_equal(c.items[k].head.id, 23 + k);
        assert_int_equal(c.items[k].head.line, 22 + k);
        assert_int_equal(c.items[k].payload[0], 22 + k);
    }
    es_ring_get_stats(r, &st);
    assert_int_equal(st.popped + st.overwritten, 30);
    free(c.items);
    es_ring_destroy(r);
}

/* ---- concurrency ---- */
#define NPROD 4
#define PER_PROD 200000

typedef struct stress {
    es_ring *ring;
    int retry; /* producers retry dropped pushes (lossless mode) */
    atomic_int producers_done;
    uint64_t attempted[NPROD];
    /* consumer state */
    uint64_t next_seq[NPROD];
    uint64_t received;
    uint64_t last_id;
    int order_errors;
    int id_errors;
    es_ring_sink sink; /* NULL: stress_sink */
} stress;

typedef struct prod_arg {
    stress *s;
    int index;
} prod_arg;

static void *producer(void *p) {
    prod_arg *a = p;
    stress *s = a->s;
    uint64_t attempted = 0;
    for (uint64_t i = 0; i < PER_PROD; i++) {
        es_event_head h = mk_head((uint64_t)a->index, 0);
        uint8_t pl[40];
        memset(pl, 0, sizeof pl);
        memcpy(pl, &i, sizeof i);
        for (;;) {
            attempted++;
            uint64_t id = es_ring_push(s->ring, &h, pl, sizeof pl);
            if (id || !s->retry) break;
            sched_yield();
        }
    }
    s->attempted[a->index] = attempted;
    atomic_fetch_add(&s->producers_done, 1);
    return NULL;
}

static void stress_sink(void *ctx, const es_event_head *head, const uint8_t *payload, uint32_t len) {
    stress *s = ctx;
    uint64_t seq;
    if (len != 40 || head->pid >= NPROD) {
        s->order_errors++;
        return;
    }
    memcpy(&seq, payload, sizeof seq);
    /* in lossless mode seq must be exactly the next; in lossy mode strictly increasing */
    if (s->retry ? seq != s->next_seq[head->pid] : seq < s->next_seq[head->pid]) s->order_errors++;
    s->next_seq[head->pid] = seq + 1;
    if (head->id <= s->last_id) s->id_errors++;
    s->last_id = head->id;
    s->received++;
}

static void *consumer(void *p) {
    stress *s = p;
    for (;;) {
        int done = atomic_load(&s->producers_done) == NPROD;
        size_t n = es_ring_drain(s->ring, 4096, s->sink ? s->sink : stress_sink, s);
        if (n == 0) {
            if (done) break;
            sched_yield();
        }
    }
    return NULL;
}

static void run_threads(stress *s, void *(*produce)(void *), void *(*consume)(void *)) {
    pthread_t pt[NPROD], ct;
    prod_arg args[NPROD];
    assert_int_equal(pthread_create(&ct, NULL, consume, s), 0);
    for (int i = 0; i < NPROD; i++) {
        args[i].s = s;
        args[i].index = i;
        assert_int_equal(pthread_create(&pt[i], NULL, produce, &args[i]), 0);
    }
    for (int i = 0; i < NPROD; i++) pthread_join(pt[i], NULL);
    pthread_join(ct, NULL);
}

static void run_stress(stress *s) { run_threads(s, producer, consumer); }

static void test_stress_lossless(void **state) {
    (void)state;
    stress *s = calloc(1, sizeof *s);
    s->ring = es_ring_create(1024, ES_OVERFLOW_DROP_NEWEST);
    s->retry = 1;
    run_stress(s);
    assert_int_equal(s->order_errors, 0);
    assert_int_equal(s->id_errors, 0);
    assert_int_equal(s->received, (uint64_t)NPROD * PER_PROD);
    for (int i = 0; i < NPROD; i++) assert_int_equal(s->next_seq[i], PER_PROD);
    es_ring_stats st;
    es_ring_get_stats(s->ring, &st);
    assert_int_equal(st.pushed, (uint64_t)NPROD * PER_PROD);
    assert_int_equal(st.popped, (uint64_t)NPROD * PER_PROD);
    assert_int_equal(s->last_id, (uint64_t)NPROD * PER_PROD); /* ids dense: the last one is the count */
    uint64_t attempted = 0;
    for (int i = 0; i < NPROD; i++) attempted += s->attempted[i];
    assert_int_equal(attempted, st.pushed + st.dropped_full);
    es_ring_destroy(s->ring);
    free(s);
}

static void test_stress_overflow_drop(void **state) {
    (void)state;
    stress *s = calloc(1, sizeof *s);
    s->ring = es_ring_create(64, ES_OVERFLOW_DROP_NEWEST);
    s->retry = 0;
    run_stress(s);
    es_ring_drain(s->ring, SIZE_MAX, stress_sink, s);
    es_ring_stats st;
    es_ring_get_stats(s->ring, &st);
    uint64_t attempted = 0;
    for (int i = 0; i < NPROD; i++) attempted += s->attempted[i];
    assert_int_equal(attempted, (uint64_t)NPROD * PER_PROD);
    assert_int_equal(st.dropped_full + st.popped, attempted);
    assert_int_equal(s->received, st.popped);
    assert_int_equal(st.pushed, st.popped);
    assert_int_equal(s->last_id, st.pushed); /* dense ids */
    assert_int_equal(s->order_errors, 0);
    assert_int_equal(s->id_errors, 0);
    es_ring_destroy(s->ring);
    free(s);
}

static void test_stress_overflow_overwrite(void **state) {
    (void)state;
    stress *s = calloc(1, sizeof *s);
    s->ring = es_ring_create(64, ES_OVERFLOW_OVERWRITE_OLDEST);
    s->retry = 0;
    run_stress(s);
    es_ring_drain(s->ring, SIZE_MAX, stress_sink, s);
    es_ring_stats st;
    es_ring_get_stats(s->ring, &st);
    assert_int_equal(st.pushed, (uint64_t)NPROD * PER_PROD);
    assert_int_equal(st.dropped_full, 0);
    assert_int_equal(st.overwritten + st.popped, st.pushed);
    assert_int_equal(s->received, st.popped);
    assert_int_equal(s->order_errors, 0);
    assert_int_equal(s->id_errors, 0);
    es_ring_destroy(s->ring);
    free(s);
}

/* Resident pages of this process (from /proc/self/statm). */
static long resident_pages(void) {
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = -1;
    fclose(f);
    return resident;
}

/* The largest ring reserves 1 GiB but touches nothing until events arrive;
   a lap over a few slots then makes only those pages resident. */
static void test_slots_are_touched_lazily(void **state) {
    (void)state;
    long before = resident_pages();
    es_ring *r = es_ring_create(ES_RING_MAX_CAPACITY, ES_OVERFLOW_DROP_NEWEST);
    assert_non_null(r);
    long after = resident_pages();
    assert_true(before > 0 && after > 0);
    assert_true((after - before) * 4096L < 4L * 1024 * 1024); /* not 1 GiB */
    collector c = {calloc(64, sizeof(rec)), 0, 64};
    for (int lap = 0; lap < 3; lap++) {
        c.n = 0;
        for (int i = 0; i < 64; i++) {
            es_event_head h = mk_head(2, (uint32_t)i);
            assert_int_equal(es_ring_push(r, &h, NULL, 0), (uint64_t)lap * 64 + i + 1);
        }
        assert_int_equal(es_ring_drain(r, 1000, collect_sink, &c), 64);
    }
    assert_true((resident_pages() - before) * 4096L < 8L * 1024 * 1024);
    free(c.items);
    es_ring_destroy(r);
}

/* Slot sequence numbers are stored relative to the slot index: many laps
   around a small ring keep FIFO order and dense ids. */
static void test_many_laps(void **state) {
    (void)state;
    es_ring *r = es_ring_create(4, ES_OVERFLOW_DROP_NEWEST);
    collector c = {calloc(4, sizeof(rec)), 0, 4};
    uint64_t next = 1;
    for (int lap = 0; lap < 1000; lap++) {
        c.n = 0;
        for (int i = 0; i < 3; i++) {
            es_event_head h = mk_head(3, (uint32_t)i);
            assert_int_equal(es_ring_push(r, &h, NULL, 0), next + i);
        }
        assert_int_equal(es_ring_drain(r, 10, collect_sink, &c), 3);
        for (int i = 0; i < 3; i++) assert_int_equal(c.items[i].head.id, next + i);
        next += 3;
    }
    free(c.items);
    es_ring_destroy(r);
}

/* Payloads kept outside the slots are bounded: pushes over the budget are
   dropped and counted; draining gives the budget back. */
static void test_payload_budget(void **state) {
    (void)state;
    es_ring *r = es_ring_create(64, ES_OVERFLOW_DROP_NEWEST);
    es_ring_set_payload_budget(r, 1000);
    uint8_t big[400] = {0};
    es_ring_stats st;
    es_event_head h = mk_head(1, 0);
    assert_int_not_equal(es_ring_push(r, &h, big, 400), 0);
    assert_int_not_equal(es_ring_push(r, &h, big, 400), 0);
    assert_int_equal(es_ring_push(r, &h, big, 400), 0); /* 1200 > 1000 */
    assert_int_not_equal(es_ring_push(r, &h, big, 8), 0); /* inline payloads are not counted */
    es_ring_get_stats(r, &st);
    assert_int_equal(st.heap_bytes, 800);
    assert_int_equal(st.dropped_full, 1);
    assert_int_equal(st.pushed, 3);
    collector c = {calloc(8, sizeof(rec)), 0, 8};
    assert_int_equal(es_ring_drain(r, 100, collect_sink, &c), 3);
    es_ring_get_stats(r, &st);
    assert_int_equal(st.heap_bytes, 0);
    assert_int_not_equal(es_ring_push(r, &h, big, 400), 0);
    free(c.items);
    es_ring_destroy(r);
}

/* ---- back-pressure ---- */
typedef struct relief_ctx {
    es_ring *ring;
    collector *sink;
    size_t calls;
} relief_ctx;

static size_t relieve(void *ctxp) {
    relief_ctx *r = ctxp;
    r->calls++;
    return es_ring_drain(r->ring, 3, collect_sink, r->sink);
}

static size_t no_relief(void *ctxp) {
    ((relief_ctx *)ctxp)->calls++;
    return 0;
}

static void test_backpressure_relief(void **state) {
    (void)state;
    /* a producer alone with a full 8-slot ring: its own relief drains, nothing is dropped */
    es_ring *r = es_ring_create(8, ES_OVERFLOW_DROP_NEWEST);
    collector c = {calloc(200, sizeof(rec)), 0, 200};
    relief_ctx rc = {r, &c, 0};
    es_ring_set_backpressure(r, 1000000000ull, relieve, &rc);
    for (uint32_t i = 1; i <= 100; i++) {
        es_event_head h = mk_head(7, i);
        assert_int_equal(es_ring_push(r, &h, NULL, 0), i);
    }
    es_ring_drain(r, 100, collect_sink, &c);
    es_ring_stats st;
    es_ring_get_stats(r, &st);
    assert_int_equal(st.dropped_full, 0);
    assert_int_equal(st.pushed, 100);
    assert_true(st.waits > 0 && rc.calls >= st.waits);
    assert_int_equal(c.n, 100);
    for (size_t i = 0; i < c.n; i++) assert_int_equal(c.items[i].head.line, i + 1); /* order kept */
    es_ring_destroy(r);

    /* nothing relieves it: each push waits its 2 ms, then is dropped (counted) */
    r = es_ring_create(8, ES_OVERFLOW_DROP_NEWEST);
    rc = (relief_ctx){r, &c, 0};
    es_ring_set_backpressure(r, 2000000, no_relief, &rc);
    uint64_t t0 = es_now_ns();
    for (uint32_t i = 1; i <= 11; i++) {
        es_event_head h = mk_head(7, i);
        es_ring_push(r, &h, NULL, 0);
    }
    es_ring_get_stats(r, &st);
    assert_int_equal(st.pushed, 8);
    assert_int_equal(st.dropped_full, 3);
    assert_int_equal(st.waits, 3);
    assert_true(st.wait_ns >= 3 * 2000000ull && es_now_ns() - t0 >= 3 * 2000000ull);
    assert_true(rc.calls > 0);
    es_ring_destroy(r);
    free(c.items);
}

/* ---- out-of-slot payloads: the pool ---- */
static void fill_payload(uint8_t *buf, uint32_t len, uint64_t seed) {
    for (uint32_t j = 0; j < len; j++) buf[j] = (uint8_t)(seed * 131 + j * 7 + (j >> 8));
}

static int payload_intact(const uint8_t *buf, uint32_t len, uint64_t seed) {
    for (uint32_t j = 0; j < len; j++)
        if (buf[j] != (uint8_t)(seed * 131 + j * 7 + (j >> 8))) return 0;
    return 1;
}

typedef struct checker {
    uint64_t next_line;
    int errors;
} checker;

/* the line carries the payload's seed; lines arrive in push order */
static void check_sink(void *ctx, const es_event_head *head, const uint8_t *payload, uint32_t len) {
    checker *c = ctx;
    if (head->line != c->next_line || !payload_intact(payload, len, head->line)) c->errors++;
    c->next_line = head->line + 1;
}

static void test_spilled_payloads_reuse_pool_blocks(void **state) {
    (void)state;
    static const uint32_t lens[] = {ES_RING_INLINE_PAYLOAD + 1, 300, 1000, 4096, 8192};
    es_ring *r = es_ring_create(64, ES_OVERFLOW_DROP_NEWEST);
    static uint8_t buf[8192];
    checker c = {0, 0};
    es_ring_stats st;
    for (uint32_t i = 0; i < 5000; i++) {
        uint32_t len = lens[i % 5];
        es_event_head h = mk_head(1, i);
        fill_payload(buf, len, i);
        assert_int_equal(es_ring_push(r, &h, buf, len), i + 1);
        if (i % 16 == 15) assert_int_equal(es_ring_drain(r, 100, check_sink, &c), 16);
    }
    assert_int_equal(es_ring_drain(r, 100, check_sink, &c), 5000 % 16);
    assert_int_equal(c.errors, 0);
    assert_int_equal(c.next_line, 5000);
    es_ring_get_stats(r, &st);
    assert_int_equal(st.heap_bytes, 0);
    assert_int_equal(st.heap_fallbacks, 0); /* every one of them in a pool block */
    /* blocks are reused: the pool holds no more than the 16 in flight at once need (4 of each class) */
    assert_true(st.pool_bytes > 0);
    assert_true(st.pool_bytes <= 4 * (256 + 512 + 1024 + 4096 + 8192));
    es_ring_destroy(r);
}

static void test_spill_fallback_counted(void **state) {
    (void)state;
    es_ring *r = es_ring_create(64, ES_OVERFLOW_DROP_NEWEST);
    es_ring_set_payload_budget(r, 1000); /* the pool carves at most 1000 bytes: one 512 block */
    static uint8_t buf[20000];
    es_ring_stats st;
    for (uint32_t i = 0; i < 4; i++) {
        es_event_head h = mk_head(1, i);
        fill_payload(buf, 300, i);
        uint64_t id = es_ring_push(r, &h, buf, 300);
        if (i < 3) assert_int_equal(id, i + 1);
        else assert_int_equal(id, 0); /* 1200 > 1000: over the budget, dropped and counted */
    }
    es_ring_get_stats(r, &st);
    assert_int_equal(st.pool_bytes, 512);
    assert_int_equal(st.heap_fallbacks, 2); /* the pool had nothing left: malloc, within the budget */
    assert_int_equal(st.heap_bytes, 900);
    assert_int_equal(st.dropped_full, 1);
    checker c = {0, 0};
    assert_int_equal(es_ring_drain(r, 100, check_sink, &c), 3);
    assert_int_equal(c.errors, 0);
    /* the pool block is free again: the next spill takes it */
    es_event_head h = mk_head(1, 3);
    fill_payload(buf, 300, 3);
    assert_int_not_equal(es_ring_push(r, &h, buf, 300), 0);
    es_ring_get_stats(r, &st);
    assert_int_equal(st.heap_fallbacks, 2);
    assert_int_equal(st.pool_bytes, 512);
    assert_int_equal(es_ring_drain(r, 100, check_sink, &c), 1);
    es_ring_destroy(r);

    /* larger than the pool's largest block: malloc'd, counted, intact */
    r = es_ring_create(64, ES_OVERFLOW_DROP_NEWEST);
    h = mk_head(1, 0);
    fill_payload(buf, sizeof buf, 0);
    assert_int_equal(es_ring_push(r, &h, buf, sizeof buf), 1);
    es_ring_get_stats(r, &st);
    assert_int_equal(st.heap_fallbacks, 1);
    assert_int_equal(st.heap_bytes, sizeof buf);
    c = (checker){0, 0};
    assert_int_equal(es_ring_drain(r, 100, check_sink, &c), 1);
    assert_int_equal(c.errors, 0);
    es_ring_destroy(r);
}

/* Destroy frees what is still in flight, pooled or malloc'd (ASan's leak check), and an overwrite
 * gives the discarded event's block back. */
static void test_spilled_payloads_in_flight(void **state) {
    (void)state;
    static uint8_t buf[10000];
    es_ring *r = es_ring_create(8, ES_OVERFLOW_OVERWRITE_OLDEST);
    es_ring_stats st;
    for (uint32_t i = 0; i < 100; i++) {
        es_event_head h = mk_head(1, i);
        uint32_t len = i % 10 == 0 ? sizeof buf : 400;
        fill_payload(buf, len, i);
        assert_int_equal(es_ring_push(r, &h, buf, len), i + 1);
    }
    es_ring_get_stats(r, &st);
    assert_int_equal(st.overwritten, 92);
    assert_int_equal(st.heap_fallbacks, 10);
    assert_int_equal(st.heap_bytes, 8 * 400); /* events 92..99 are left: the 10000-byte ones (90 and before) are gone */
    assert_true(st.pool_bytes <= 9 * 512); /* a producer holds its block before it discards the oldest */
    es_ring_destroy(r);

    r = es_ring_create(64, ES_OVERFLOW_DROP_NEWEST);
    for (uint32_t i = 0; i < 30; i++) {
        es_event_head h = mk_head(1, i);
        assert_int_not_equal(es_ring_push(r, &h, buf, i % 3 == 0 ? sizeof buf : 200 + i * 50), 0);
    }
    es_ring_destroy(r);
}

/* Producers push payloads of every size (inline, each pool class, over the largest block) while
 * a drainer checks every byte and each producer's order. */
#define SPILL_PER_PROD 20000

static uint32_t spill_len(uint64_t seq) {
    static const uint32_t lens[] = {8, ES_RING_INLINE_PAYLOAD, ES_RING_INLINE_PAYLOAD + 1, 256, 257, 600, 2000, 4096, 8192, 9000};
    return lens[seq % (sizeof lens / sizeof lens[0])];
}

static void *spill_producer(void *p) {
    prod_arg *a = p;
    uint8_t *buf = malloc(9000);
    for (uint64_t i = 0; i < SPILL_PER_PROD; i++) {
        uint64_t seed = i * NPROD + (uint64_t)a->index;
        uint32_t len = spill_len(i + (uint64_t)a->index);
        es_event_head h = mk_head((uint64_t)a->index, (uint32_t)i);
        fill_payload(buf, len, seed);
        while (!es_ring_push(a->s->ring, &h, buf, len)) sched_yield();
    }
    free(buf);
    atomic_fetch_add(&a->s->producers_done, 1);
    return NULL;
}

static void spill_sink(void *ctx, const es_event_head *head, const uint8_t *payload, uint32_t len) {
    stress *s = ctx;
    uint64_t i = head->line, pid = head->pid;
    if (pid >= NPROD || i != s->next_seq[pid] || len != spill_len(i + pid) ||
        !payload_intact(payload, len, i * NPROD + pid))
        s->order_errors++;
    if (pid < NPROD) s->next_seq[pid] = i + 1;
    s->received++;
}

static void test_stress_spilled_payloads(void **state) {
    (void)state;
    stress *s = calloc(1, sizeof *s);
    s->ring = es_ring_create(256, ES_OVERFLOW_DROP_NEWEST);
    s->sink = spill_sink;
    run_threads(s, spill_producer, consumer);
    assert_int_equal(s->order_errors, 0);
    assert_int_equal(s->received, (uint64_t)NPROD * SPILL_PER_PROD);
    es_ring_stats st;
    es_ring_get_stats(s->ring, &st);
    assert_int_equal(st.popped, (uint64_t)NPROD * SPILL_PER_PROD);
    assert_int_equal(st.heap_bytes, 0);
    /* the pool (256 slots x 4096 B) may run short when the ring is full of 8192s; the 9000s always fall back */
    assert_true(st.heap_fallbacks >= (uint64_t)NPROD * SPILL_PER_PROD / 10);
    assert_true(st.pool_bytes <= 256u * ES_RING_POOL_PER_SLOT);
    es_ring_destroy(s->ring);
    free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_capacity_validation),
        cmocka_unit_test(test_fifo_dense_ids),
        cmocka_unit_test(test_inline_and_heap_payloads),
        cmocka_unit_test(test_drop_newest_counts),
        cmocka_unit_test(test_overwrite_oldest_keeps_newest),
        cmocka_unit_test(test_stress_lossless),
        cmocka_unit_test(test_stress_overflow_drop),
        cmocka_unit_test(test_stress_overflow_overwrite),
        cmocka_unit_test(test_slots_are_touched_lazily),
        cmocka_unit_test(test_many_laps),
        cmocka_unit_test(test_payload_budget),
        cmocka_unit_test(test_backpressure_relief),
        cmocka_unit_test(test_spilled_payloads_reuse_pool_blocks),
        cmocka_unit_test(test_spill_fallback_counted),
        cmocka_unit_test(test_spilled_payloads_in_flight),
        cmocka_unit_test(test_stress_spilled_payloads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
