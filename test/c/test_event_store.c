/* CMocka tests of the segmented event store (c_src/event_store.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elixir_scope/event_store.h"

/* ---- helpers ---- */
static es_event_head ev(uint64_t id, uint64_t pid, es_kind kind, uint64_t module, uint64_t function, uint8_t arity) {
    es_event_head h;
    memset(&h, 0, sizeof h);
    h.id = id;
    h.ts = 1000 + id * 10;
    h.pid = pid;
    h.kind = (uint8_t)kind;
    h.module = module;
    h.function = function;
    h.arity = arity;
    h.line = (uint32_t)(id % 1000);
    return h;
}

static int app(es_store *s, const es_event_head *h) {
    uint8_t pl[16];
    memcpy(pl, &h->id, 8);
    memcpy(pl + 8, &h->pid, 8);
    return es_store_append(s, h, pl, sizeof pl);
}

typedef struct got {
    es_event_head heads[4096];
    size_t n;
    int payload_errors;
} got;

static int collect(void *ctx, const es_event_view *v) {
    got *g = ctx;
    if (g->n < sizeof g->heads / sizeof g->heads[0]) g->heads[g->n] = v->head;
    g->n++;
    if (v->payload_len == 16) {
        uint64_t id, pid;
        memcpy(&id, v->payload, 8);
        memcpy(&pid, v->payload + 8, 8);
        if (id != v->head.id || pid != v->head.pid) g->payload_errors++;
    }
    return 0;
}

static got *run(es_store *s, const es_query *q) {
    static got g;
    memset(&g, 0, sizeof g);
    size_t n = es_store_query(s, q, collect, &g);
    assert_int_equal(n, g.n);
    assert_int_equal(g.payload_errors, 0);
    return &g;
}

static void expect_ids(const got *g, const uint64_t *ids, size_t n) {
    if (g->n != n) {
        fprintf(stderr, "got %zu ids:", g->n);
        for (size_t i = 0; i < g->n && i < 40; i++) fprintf(stderr, " %llu", (unsigned long long)g->heads[i].id);
        fprintf(stderr, "\n");
    }
    assert_int_equal(g->n, n);
    for (size_t i = 0; i < n; i++) assert_int_equal(g->heads[i].id, ids[i]);
}
#define EXPECT_IDS(g, ...)                                                                \
    do {                                                                                  \
        static const uint64_t e_[] = {__VA_ARGS__};                                       \
        expect_ids((g), e_, sizeof e_ / sizeof e_[0]);                                    \
    } while (0)

static es_store *mk(uint64_t max_bytes, uint32_t seg) {
    es_store_config cfg = {max_bytes, seg};
    es_store *s = es_store_create(&cfg);
    assert_non_null(s);
    return s;
}

/* ---- tests ---- */
static void test_create_validation(void **state) {
    (void)state;
    es_store_config bad = {0, 15};
    assert_null(es_store_create(&bad));
    es_store *s = es_store_create(NULL); /* defaults */
    assert_non_null(s);
    es_store_stats st;
    es_store_get_stats(s, &st);
    assert_int_equal(st.appended, 0);
    assert_int_equal(st.first_id, 0);
    assert_int_equal(st.last_id, 0);
    es_query q = {0};
    assert_int_equal(es_store_query(s, &q, NULL, NULL), 0);
    assert_int_equal(es_store_get(s, 1, NULL, NULL), 0);
    es_store_destroy(s);
    es_store_destroy(NULL);
}

static int copy_view(void *ctx, const es_event_view *v) {
    es_event_view *out = ctx;
    *out = *v;
    return 0;
}

static void test_append_get(void **state) {
    (void)state;
    es_store *s = mk(0, 16);
    for (uint64_t id = 1; id <= 100; id++) {
        es_event_head h = ev(id * 3, 0xA0 + id % 4, (es_kind)(id % ES_KIND__COUNT), id % 5 ? 0x11 : 0, 0x22, 1);
        h.flags = (uint16_t)(id % 4);
        h.link = id % 7 ? 0 : 999;
        h.call_id = id % 3 ? 0 : 5;
        uint8_t pl[300];
        for (size_t i = 0; i < id * 3 % 300; i++) pl[i] = (uint8_t)(id + i);
        assert_int_equal(es_store_append(s, &h, pl, (uint32_t)(id * 3 % 300)), 0);
    }
    for (uint64_t id = 1; id <= 100; id++) {
        es_event_view v;
        assert_int_equal(es_store_get(s, id * 3, copy_view, &v), 1);
        assert_int_equal(v.head.id, id * 3);
        assert_int_equal(v.head.ts, 1000 + id * 30);
        assert_int_equal(v.head.pid, 0xA0 + id % 4);
        assert_int_equal(v.head.kind, id % ES_KIND__COUNT);
        uint64_t m = id % 5 ? 0x11 : 0;
        assert_int_equal(v.head.module, m);
        assert_int_equal(v.head.function, 0x22);
        assert_int_equal(v.head.arity, 1);
        assert_int_equal(v.head.line, (id * 3) % 1000);
        assert_int_equal(v.head.flags, id % 4);
        assert_int_equal(v.head.link, id % 7 ? 0 : 999);
        assert_int_equal(v.payload_len, id * 3 % 300);
        for (size_t i = 0; i < v.payload_len; i++) assert_int_equal(v.payload[i], (uint8_t)(id + i));
        /* ids in between are not there */
        assert_int_equal(es_store_get(s, id * 3 - 1, NULL, NULL), 0);
    }
    assert_int_equal(es_store_get(s, 0, NULL, NULL), 0);
    assert_int_equal(es_store_get(s, 301, NULL, NULL), 0);
    es_store_stats st;
    es_store_get_stats(s, &st);
    assert_int_equal(st.appended, 100);
    assert_int_equal(st.live_events, 100);
    assert_int_equal(st.first_id, 3);
    assert_int_equal(st.last_id, 300);
    assert_int_equal(st.min_ts, 1030);
    assert_int_equal(st.max_ts, 4000);
    assert_int_equal(st.segments, 7); /* 16 per segment */
    assert_int_equal(st.bytes_used, st.record_bytes + st.payload_bytes + st.index_bytes);
    es_store_destroy(s);
}

static void test_reject_bad_appends(void **state) {
    (void)state;
    es_store *s = mk(0, 16);
    es_event_head h = ev(5, 1, ES_KIND_CALL, 1, 2, 0);
    assert_int_equal(app(s, &h), 0);
    assert_int_equal(app(s, &h), -1); /* same id */
    h.id = 4;
    assert_int_equal(app(s, &h), -1);
    h.id = 0;
    assert_int_equal(app(s, &h), -1);
    h.id = 6;
    h.kind = ES_KIND__COUNT;
    assert_int_equal(app(s, &h), -1);
    h.kind = ES_KIND_CALL;
    assert_int_equal(es_store_append(s, &h, NULL, 5), -1); /* payload length without data */
    assert_int_equal(app(s, &h), 0);
    /* a huge id gap starts a new segment (id deltas are 32-bit) */
    h.id = 6 + (1ull << 33);
    assert_int_equal(app(s, &h), 0);
    assert_int_equal(es_store_get(s, h.id, NULL, NULL), 1);
    assert_int_equal(es_store_get(s, 6, NULL, NULL), 1);
    es_store_stats st;
    es_store_get_stats(s, &st);
    assert_int_equal(st.appended, 3);
    assert_int_equal(st.segments, 2);
    es_store_destroy(s);
}

/* Pids 1,2,3 interleaved; modules 100/200; functions 10/20; arities 1/2 */
static es_store *mixed_store(uint32_t seg) {
    es_store *s = mk(0, seg);
    for (uint64_t id = 1; id <= 60; id++) {
        uint64_t pid = 1 + id % 3;
        uint64_t mod = id % 2 ? 100 : 200;
        uint64_t fun = id % 4 < 2 ? 10 : 20;
        uint8_t ar = id % 5 == 0 ? 2 : 1;
        es_kind k = id % 6 == 0 ? ES_KIND_SEND : ES_KIND_LOCAL;
        es_event_head h = ev(id, pid, k, mod, fun, ar);
        if (id % 10 == 0) h.module = h.function = 0; /* no MFA */
        assert_int_equal(app(s, &h), 0);
    }
    return s;
}

static int matches(uint64_t id, const es_query *q) {
    uint64_t pid = 1 + id % 3;
    uint64_t mod = id % 10 == 0 ? 0 : (id % 2 ? 100 : 200);
    uint64_t fun = id % 10 == 0 ? 0 : (id % 4 < 2 ? 10 : 20);
    uint8_t ar = id % 5 == 0 ? 2 : 1;
    es_kind k = id % 6 == 0 ? ES_KIND_SEND : ES_KIND_LOCAL;
    uint64_t ts = 1000 + id * 10;
    if ((q->fields & ES_Q_PID) && pid != q->pid) return 0;
    if ((q->fields & ES_Q_MODULE) && mod != q->module) return 0;
    if ((q->fields & ES_Q_FUNCTION) && fun != q->function) return 0;
    if ((q->fields & ES_Q_ARITY) && ar != q->arity) return 0;
    if ((q->fields & ES_Q_KINDS) && !(q->kinds_mask & (1u << k))) return 0;
    if ((q->fields & ES_Q_SINCE_TS) && ts < q->since_ts) return 0;
    if ((q->fields & ES_Q_UNTIL_TS) && ts > q->until_ts) return 0;
    if ((q->fields & ES_Q_AFTER_ID) && id <= q->after_id) return 0;
    if ((q->fields & ES_Q_BEFORE_ID) && id >= q->before_id) return 0;
    return 1;
}

/* Compares a query against the brute-force model, with and without reverse/limit. */
static void check_query(es_store *s, es_query q) {
    uint64_t want[64];
    size_t n = 0;
    for (uint64_t id = 1; id <= 60; id++)
        if (matches(id, &q)) want[n++] = id;
    for (int rev = 0; rev < 2; rev++) {
        for (uint32_t lim = 0; lim < 4; lim += 3) {
            q.reverse = rev;
            q.limit = lim;
            got *g = run(s, &q);
            size_t expect_n = lim && lim < n ? lim : n;
            assert_int_equal(g->n, expect_n);
            for (size_t i = 0; i < expect_n; i++) assert_int_equal(g->heads[i].id, rev ? want[n - 1 - i] : want[i]);
        }
    }
}

static void test_pid_mfa_kind_queries(void **state) {
    (void)state;
    uint32_t segs[] = {16, 1000};
    for (int si = 0; si < 2; si++) {
        es_store *s = mixed_store(segs[si]);
        es_query q;
        memset(&q, 0, sizeof q);
        check_query(s, q); /* everything */
        for (uint64_t pid = 1; pid <= 4; pid++) {
            memset(&q, 0, sizeof q);
            q.fields = ES_Q_PID;
            q.pid = pid;
            check_query(s, q);
            q.fields |= ES_Q_AFTER_ID | ES_Q_BEFORE_ID;
            q.after_id = 17;
            q.before_id = 44;
            check_query(s, q);
        }
        uint64_t mods[] = {100, 200, 300};
        for (int m = 0; m < 3; m++) {
            memset(&q, 0, sizeof q);
            q.fields = ES_Q_MODULE;
            q.module = mods[m];
            check_query(s, q);
            q.fields |= ES_Q_FUNCTION;
            q.function = 20;
            check_query(s, q);
            q.fields |= ES_Q_ARITY;
            q.arity = 2;
            check_query(s, q);
            q.arity = 1;
            q.fields |= ES_Q_PID;
            q.pid = 2;
            check_query(s, q);
        }
        memset(&q, 0, sizeof q);
        q.fields = ES_Q_KINDS;
        q.kinds_mask = 1u << ES_KIND_SEND;
        check_query(s, q);
        q.fields |= ES_Q_PID;
        q.pid = 1;
        check_query(s, q);
        /* time windows, alone and with the other filters */
        memset(&q, 0, sizeof q);
        q.fields = ES_Q_SINCE_TS | ES_Q_UNTIL_TS;
        q.since_ts = 1000 + 12 * 10;
        q.until_ts = 1000 + 33 * 10;
        check_query(s, q);
        q.fields |= ES_Q_MODULE;
        q.module = 100;
        check_query(s, q);
        q.fields = ES_Q_SINCE_TS;
        check_query(s, q);
        q.fields = ES_Q_UNTIL_TS;
        check_query(s, q);
        q.fields = ES_Q_SINCE_TS | ES_Q_UNTIL_TS;
        q.since_ts = 5000;
        q.until_ts = 10;
        check_query(s, q);
        /* id windows */
        memset(&q, 0, sizeof q);
        q.fields = ES_Q_AFTER_ID;
        q.after_id = 58;
        check_query(s, q);
        q.after_id = UINT64_MAX;
        check_query(s, q);
        q.fields = ES_Q_BEFORE_ID;
        q.before_id = 1;
        check_query(s, q);
        q.before_id = 3;
        check_query(s, q);
        es_store_destroy(s);
    }
}

static int stop_at_5(void *ctx, const es_event_view *v) {
    (void)v;
    int *seen = ctx;
    return ++*seen == 5;
}

static void test_stop_from_callback(void **state) {
    (void)state;
    es_store *s = mixed_store(16);
    es_query q;
    memset(&q, 0, sizeof q);
    assert_int_equal(es_store_query(s, &q, NULL, NULL), 60); /* a NULL callback just counts */
    int seen = 0;
    assert_int_equal(es_store_query(s, &q, stop_at_5, &seen), 5);
    assert_int_equal(seen, 5);
    q.fields = ES_Q_MODULE;
    q.module = 100;
    seen = 0;
    assert_int_equal(es_store_query(s, &q, stop_at_5, &seen), 5);
    es_store_destroy(s);
}

static void test_call_backpatch_and_call_query(void **state) {
    (void)state;
    es_store *s = mk(0, 16);
    const uint64_t P = 42, Q = 43, M = 0x100, F = 0x200, G = 0x300;
    /* 10: call M.F/2 in P */
    es_event_head h = ev(10, P, ES_KIND_CALL, M, F, 2);
    h.call_id = 10;
    assert_int_equal(app(s, &h), 0);
    h = ev(11, P, ES_KIND_LOCAL, 0, 0, 255); /* a local of call 10 */
    h.call_id = 10;
    assert_int_equal(app(s, &h), 0);
    h = ev(12, P, ES_KIND_CALL, M, G, 0); /* a nested call */
    h.call_id = 12;
    assert_int_equal(app(s, &h), 0);
    h = ev(13, Q, ES_KIND_CALL, M, G, 0); /* another process */
    h.call_id = 13;
    assert_int_equal(app(s, &h), 0);
    h = ev(14, P, ES_KIND_RETURN, 0, 0, 255); /* return of 12 */
    h.call_id = 12;
    assert_int_equal(app(s, &h), 0);
    h = ev(15, P, ES_KIND_EXPR, 0, 0, 255);
    h.call_id = 10;
    assert_int_equal(app(s, &h), 0);
    h = ev(16, P, ES_KIND_EXCEPTION, 0, 0, 255); /* 10 raises */
    h.call_id = 10;
    assert_int_equal(app(s, &h), 0);
    h = ev(17, P, ES_KIND_LOCAL, 0, 0, 255); /* after the call: same call_id by mistake, outside its span */
    h.call_id = 10;
    assert_int_equal(app(s, &h), 0);
    h = ev(18, Q, ES_KIND_RETURN, 0, 0, 255); /* return of 9: not a stored call */
    h.call_id = 9;
    assert_int_equal(app(s, &h), 0);
    h = ev(19, Q, ES_KIND_TAIL_CALL, M, F, 2); /* explicit module kept; closes 13 */
    h.call_id = 13;
    assert_int_equal(app(s, &h), 0);

    es_event_view v;
    assert_int_equal(es_store_get(s, 10, copy_view, &v), 1);
    assert_int_equal(v.head.link, 16);
    assert_int_equal(es_store_get(s, 12, copy_view, &v), 1);
    assert_int_equal(v.head.link, 14);
    assert_int_equal(es_store_get(s, 13, copy_view, &v), 1);
    assert_int_equal(v.head.link, 19);
    assert_int_equal(es_store_get(s, 14, copy_view, &v), 1);
    assert_int_equal(v.head.module, M);
    assert_int_equal(v.head.function, G);
    assert_int_equal(v.head.arity, 0);
    assert_int_equal(es_store_get(s, 16, copy_view, &v), 1);
    assert_int_equal(v.head.module, M);
    assert_int_equal(v.head.function, F);
    assert_int_equal(v.head.arity, 2);
    assert_int_equal(es_store_get(s, 18, copy_view, &v), 1);
    assert_int_equal(v.head.module, 0);
    assert_int_equal(v.head.arity, 255);
    assert_int_equal(es_store_get(s, 19, copy_view, &v), 1);
    assert_int_equal(v.head.function, F);

    es_query q;
    memset(&q, 0, sizeof q);
    q.fields = ES_Q_CALL_ID;
    q.call_id = 10;
    EXPECT_IDS(run(s, &q), 10, 11, 15, 16);
    q.reverse = 1;
    EXPECT_IDS(run(s, &q), 16, 15, 11, 10);
    q.reverse = 0;
    q.call_id = 12;
    EXPECT_IDS(run(s, &q), 12, 14);
    q.fields |= ES_Q_KINDS;
    q.kinds_mask = 1u << ES_KIND_RETURN;
    EXPECT_IDS(run(s, &q), 14);
    /* the returns are indexed under the call's MFA */
    memset(&q, 0, sizeof q);
    q.fields = ES_Q_MODULE | ES_Q_FUNCTION | ES_Q_ARITY;
    q.module = M;
    q.function = G;
    q.arity = 0;
    EXPECT_IDS(run(s, &q), 12, 13, 14);
    /* a call_id that names no call: scanned */
    memset(&q, 0, sizeof q);
    q.fields = ES_Q_CALL_ID;
    q.call_id = 9;
    EXPECT_IDS(run(s, &q), 18);
    es_store_destroy(s);
}

static void test_correlation(void **state) {
    (void)state;
    es_store *s = mk(0, 16);
    for (uint64_t id = 1; id <= 200; id++) {
        es_kind k = id % 4 == 0 ? ES_KIND_SEND : id % 4 == 1 ? ES_KIND_RECEIVE : id % 4 == 2 ? ES_KIND_CALL : ES_KIND_CUSTOM;
        es_event_head h = ev(id, id % 2, k, 0, 0, 255);
        h.link = id % 5 == 0 ? 0 : 1 + id % 7; /* 7 correlation ids, some events without */
        assert_int_equal(app(s, &h), 0);
    }
    for (uint64_t key = 0; key <= 8; key++) {
        uint64_t want[200];
        size_t n = 0;
        for (uint64_t id = 1; id <= 200; id++) {
            uint64_t link = id % 5 == 0 ? 0 : 1 + id % 7;
            if (key && link == key && id % 4 != 2) want[n++] = id;
        }
        es_query q;
        memset(&q, 0, sizeof q);
        q.fields = ES_Q_CORRELATION;
        q.correlation_id = key;
        expect_ids(run(s, &q), want, n);
        q.fields |= ES_Q_AFTER_ID;
        q.after_id = 100;
        size_t k = 0;
        while (k < n && want[k] <= 100) k++;
        expect_ids(run(s, &q), want + k, n - k);
        q.reverse = 1;
        q.limit = 2;
        got *g = run(s, &q);
        if (n - k >= 2) {
            assert_int_equal(g->n, 2);
            assert_int_equal(g->heads[0].id, want[n - 1]);
            assert_int_equal(g->heads[1].id, want[n - 2]);
        }
    }
    es_store_destroy(s);
}

static void test_byte_cap_eviction(void **state) {
    (void)state;
    const uint64_t cap = 64 * 1024;
    es_store *s = mk(cap, 16);
    uint64_t pay[64];
    const uint64_t N = 20000;
    for (uint64_t id = 1; id <= N; id++) {
        es_kind k = id % 3 == 0 ? ES_KIND_CALL : id % 3 == 1 ? ES_KIND_RETURN : ES_KIND_SEND;
        es_event_head h = ev(id, id % 5, k, 7, 8 + id % 3, 1);
        h.call_id = k == ES_KIND_RETURN ? id - 1 : id;
        h.link = k == ES_KIND_SEND ? 1 + id % 11 : 0;
        for (int i = 0; i < 64; i++) pay[i] = id;
        pay[1] = id % 5; /* the collector checks (id, pid) in 16-byte payloads */
        uint32_t len = (uint32_t)(8 * (id % 20));
        assert_int_equal(es_store_append(s, &h, (uint8_t *)pay, len), 0);
        if (id % 997 == 0) {
            es_store_stats st;
            es_store_get_stats(s, &st);
            assert_true(st.bytes_used <= cap);
        }
    }
    es_store_stats st;
    es_store_get_stats(s, &st);
    assert_int_equal(st.appended, N);
    assert_true(st.evicted_events > 0);
    assert_true(st.evicted_segments > 0);
    assert_int_equal(st.appended, st.live_events + st.evicted_events);
    assert_int_equal(st.evicted_events, st.evicted_segments * 16); /* whole segments */
    assert_true(st.bytes_used <= cap);
    assert_int_equal(st.last_id, N);
    assert_int_equal(st.first_id, st.evicted_events + 1);
    uint64_t first = st.first_id;
    /* everything returned is live; counts agree with the model */
    es_query q;
    memset(&q, 0, sizeof q);
    got *g = run(s, &q);
    assert_int_equal(g->n, st.live_events);
    assert_int_equal(g->heads[0].id, first);
    for (uint64_t pid = 0; pid < 5; pid++) {
        memset(&q, 0, sizeof q);
        q.fields = ES_Q_PID;
        q.pid = pid;
        g = run(s, &q);
        size_t want = 0;
        for (uint64_t id = first; id <= N; id++) want += id % 5 == pid;
        assert_int_equal(g->n, want);
        for (size_t i = 0; i < g->n && i < 4096; i++) {
            assert_true(g->heads[i].id >= first);
            assert_int_equal(g->heads[i].id % 5, pid);
        }
        q.reverse = 1;
        g = run(s, &q);
        assert_int_equal(g->n, want);
    }
    memset(&q, 0, sizeof q);
    q.fields = ES_Q_MODULE | ES_Q_FUNCTION;
    q.module = 7;
    q.function = 9;
    g = run(s, &q);
    size_t want = 0;
    for (uint64_t id = first; id <= N; id++) want += 8 + id % 3 == 9;
    assert_int_equal(g->n, want);
    memset(&q, 0, sizeof q);
    q.fields = ES_Q_CORRELATION;
    q.correlation_id = 3;
    g = run(s, &q);
    want = 0;
    for (uint64_t id = first; id <= N; id++) want += id % 3 == 2 && 1 + id % 11 == 3;
    assert_int_equal(g->n, want);
    for (size_t i = 0; i < g->n; i++) assert_true(g->heads[i].id >= first);
    /* evicted ids are gone */
    assert_int_equal(es_store_get(s, first - 1, NULL, NULL), 0);
    assert_int_equal(es_store_get(s, 1, NULL, NULL), 0);
    assert_int_equal(es_store_get(s, first, NULL, NULL), 1);
    memset(&q, 0, sizeof q);
    q.fields = ES_Q_CALL_ID;
    q.call_id = 3; /* evicted call */
    g = run(s, &q);
    assert_int_equal(g->n, 0);
    /* time windows respect eviction too */
    memset(&q, 0, sizeof q);
    q.fields = ES_Q_UNTIL_TS;
    q.until_ts = 1000 + (first + 5) * 10;
    g = run(s, &q);
    assert_int_equal(g->n, 6);
    es_store_destroy(s);
}

static void test_batch_append_locked(void **state) {
    (void)state;
    es_store *s = mk(32 * 1024, 16);
    uint64_t id = 1;
    for (int batch = 0; batch < 50; batch++) {
        es_store_write_lock(s);
        for (int i = 0; i < 100; i++, id++) {
            es_event_head h = ev(id, id % 3, ES_KIND_CALL, 1, 2, 0);
            uint8_t pl[16];
            memcpy(pl, &h.id, 8);
            memcpy(pl + 8, &h.pid, 8);
            assert_int_equal(es_store_append_locked(s, &h, pl, sizeof pl), 0);
        }
        es_event_head old = ev(1, 0, ES_KIND_CALL, 1, 2, 0);
        assert_int_equal(es_store_append_locked(s, &old, NULL, 0), -1);
        es_store_write_unlock(s);
    }
    es_store_stats st;
    es_store_get_stats(s, &st);
    assert_int_equal(st.appended, 5000);
    assert_int_equal(st.appended, st.live_events + st.evicted_events);
    assert_true(st.evicted_segments > 0); /* recycled segments get reused */
    assert_true(st.bytes_used <= 32 * 1024);
    es_query q;
    memset(&q, 0, sizeof q);
    q.fields = ES_Q_PID;
    q.pid = 1;
    got *g = run(s, &q);
    size_t want = 0;
    for (uint64_t i = st.first_id; i <= 5000; i++) want += i % 3 == 1;
    assert_int_equal(g->n, want);
    es_store_destroy(s);
}

/* Many short-lived processes under a byte cap: keys of fully evicted pids and
 * MFAs are removed and reused, so the indexes stay bounded. */
static void test_key_reuse_many_pids(void **state) {
    (void)state;
    const uint64_t cap = 256 * 1024;
    es_store *s = mk(cap, 64);
    uint64_t max_index = 0;
    const uint64_t N = 200000;
    for (uint64_t id = 1; id <= N; id++) {
        uint64_t pid = 0x5000 + id / 4; /* a new process every 4 events */
        es_event_head h = ev(id, pid, ES_KIND_CALL, 0x77 + (id / 100), 1, 0);
        assert_int_equal(app(s, &h), 0);
        if (id % 1000 == 0) {
            es_store_stats st;
            es_store_get_stats(s, &st);
            if (id > N / 2 && st.index_bytes > max_index) max_index = st.index_bytes;
            assert_true(st.bytes_used <= cap);
        }
    }
    es_store_stats st;
    es_store_get_stats(s, &st);
    assert_int_equal(st.appended, st.live_events + st.evicted_events);
    assert_true(max_index < cap);
    /* live pids answer, evicted ones do not */
    for (uint64_t id = N - 40; id <= N; id += 4) {
        es_query q;
        memset(&q, 0, sizeof q);
        q.fields = ES_Q_PID;
        q.pid = 0x5000 + id / 4;
        got *g = run(s, &q);
        size_t want = 0;
        for (uint64_t k = st.first_id; k <= N; k++) want += k / 4 == id / 4;
        assert_int_equal(g->n, want);
        for (size_t i = 0; i < g->n; i++) assert_int_equal(g->heads[i].pid, q.pid);
        q.fields = ES_Q_MODULE;
        q.module = 0x77 + id / 100;
        g = run(s, &q);
        want = 0;
        for (uint64_t k = st.first_id; k <= N; k++) want += k / 100 == id / 100;
        assert_int_equal(g->n, want);
    }
    es_query q;
    memset(&q, 0, sizeof q);
    q.fields = ES_Q_PID;
    q.pid = 0x5000 + 1;
    assert_int_equal(run(s, &q)->n, 0);
    q.fields = ES_Q_MODULE;
    q.module = 0x77;
    assert_int_equal(run(s, &q)->n, 0);
    /* every live event's pid round-trips through get */
    es_event_view v;
    assert_int_equal(es_store_get(s, N, copy_view, &v), 1);
    assert_int_equal(v.head.pid, 0x5000 + N / 4);
    assert_int_equal(v.head.module, 0x77 + N / 100);
    es_store_destroy(s);
}

static void test_clear(void **state) {
    (void)state;
    es_store *s = mixed_store(16);
    es_store_clear(s);
    es_store_stats st;
    es_store_get_stats(s, &st);
    assert_int_equal(st.appended, 0);
    assert_int_equal(st.live_events, 0);
    assert_int_equal(st.bytes_used, 0);
    es_query q;
    memset(&q, 0, sizeof q);
    assert_int_equal(run(s, &q)->n, 0);
    assert_int_equal(es_store_get(s, 5, NULL, NULL), 0);
    /* ids may start over after a clear */
    es_event_head h = ev(1, 1, ES_KIND_CALL, 1, 1, 1);
    assert_int_equal(app(s, &h), 0);
    assert_int_equal(es_store_get(s, 1, NULL, NULL), 1);
    es_store_destroy(s);
}

static void test_million_events_pid_query(void **state) {
    (void)state;
    es_store *s = mk(0, 65536);
    const uint64_t N = 1000000;
    for (uint64_t id = 1; id <= N; id++) {
        es_event_head h = ev(id, 0x1000 + id % 1000, id % 2 ? ES_KIND_CALL : ES_KIND_RETURN, 0x50 + id % 7, 0x60 + id % 13,
                             (uint8_t)(id % 3));
        h.call_id = id % 2 ? id : id - 1;
        assert_int_equal(es_store_append(s, &h, NULL, 0), 0);
    }
    es_query q;
    memset(&q, 0, sizeof q);
    q.fields = ES_Q_PID;
    q.pid = 0x1000 + 7;
    got *g = run(s, &q);
    assert_int_equal(g->n, 1000);
    for (size_t i = 0; i < 1000; i++) assert_int_equal(g->heads[i].id, 7 + 1000 * i);
    q.reverse = 1;
    q.limit = 10;
    g = run(s, &q);
    assert_int_equal(g->n, 10);
    assert_int_equal(g->heads[0].id, 999007);
    q.fields |= ES_Q_SINCE_TS;
    q.reverse = 0;
    q.limit = 0;
    q.since_ts = 1000 + 500000 * 10;
    g = run(s, &q);
    assert_int_equal(g->n, 500);
    assert_int_equal(g->heads[0].id, 500007);
    es_store_stats st;
    es_store_get_stats(s, &st);
    assert_int_equal(st.live_events, N);
    double per_event = (double)(st.record_bytes + st.index_bytes) / (double)st.live_events;
    fprintf(stderr, "   store bytes/event (records + indexes): %.2f (records %llu, index %llu)\n", per_event,
            (unsigned long long)st.record_bytes, (unsigned long long)st.index_bytes);
    assert_true(per_event <= 64.0);
    es_store_destroy(s);
}

/* ---- concurrency ---- */
typedef struct conc {
    es_store *s;
    atomic_int done;
    atomic_long errors;
    atomic_long queries;
} conc;

typedef struct order {
    uint64_t last;
    int bad;
} order;

static int conc_cb(void *ctx, const es_event_view *v) {
    order *o = ctx;
    if (v->head.id <= o->last || v->payload_len != 16) o->bad = 1;
    o->last = v->head.id;
    return 0;
}

static void *reader(void *p) {
    conc *c = p;
    uint64_t k = 0;
    while (!atomic_load(&c->done)) {
        es_query q;
        memset(&q, 0, sizeof q);
        q.fields = ES_Q_PID;
        q.pid = k % 8;
        order o = {0, 0};
        size_t n = es_store_query(c->s, &q, conc_cb, &o);
        if (o.bad || (n && o.last == 0)) atomic_fetch_add(&c->errors, 1);
        es_store_stats st;
        es_store_get_stats(c->s, &st);
        if (st.live_events + st.evicted_events != st.appended) atomic_fetch_add(&c->errors, 1);
        if (st.last_id) {
            es_event_view v;
            int found = es_store_get(c->s, st.last_id, copy_view, &v);
            if (found && (v.head.id != st.last_id || v.payload_len != 16)) atomic_fetch_add(&c->errors, 1);
            if (!found) { /* only acceptable if it was evicted meanwhile */
                es_store_stats st2;
                es_store_get_stats(c->s, &st2);
                if (st2.first_id <= st.last_id) atomic_fetch_add(&c->errors, 1);
            }
        }
        atomic_fetch_add(&c->queries, 1);
        k++;
    }
    return NULL;
}

static void test_concurrent_readers(void **state) {
    (void)state;
    conc c;
    c.s = mk(256 * 1024, 1024);
    atomic_init(&c.done, 0);
    atomic_init(&c.errors, 0);
    atomic_init(&c.queries, 0);
    pthread_t r[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&r[i], NULL, reader, &c), 0);
    for (uint64_t id = 1; id <= 200000; id++) {
        es_event_head h = ev(id, id % 8, ES_KIND_CALL, 1, 2, 3);
        h.call_id = id;
        assert_int_equal(app(c.s, &h), 0);
    }
    atomic_store(&c.done, 1);
    for (int i = 0; i < 2; i++) pthread_join(r[i], NULL);
    assert_int_equal(atomic_load(&c.errors), 0);
    assert_true(atomic_load(&c.queries) > 0);
    es_store_stats st;
    es_store_get_stats(c.s, &st);
    assert_int_equal(st.appended, 200000);
    assert_true(st.evicted_events > 0);
    es_store_destroy(c.s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_validation),
        cmocka_unit_test(test_append_get),
        cmocka_unit_test(test_reject_bad_appends),
        cmocka_unit_test(test_pid_mfa_kind_queries),
        cmocka_unit_test(test_stop_from_callback),
        cmocka_unit_test(test_call_backpatch_and_call_query),
        cmocka_unit_test(test_correlation),
        cmocka_unit_test(test_byte_cap_eviction),
        cmocka_unit_test(test_batch_append_locked),
        cmocka_unit_test(test_key_reuse_many_pids),
        cmocka_unit_test(test_clear),
        cmocka_unit_test(test_million_events_pid_query),
        cmocka_unit_test(test_concurrent_readers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
