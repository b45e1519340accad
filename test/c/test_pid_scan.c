/* CMocka tests of the pid scan (c_src/pid_scan.c): distinct pids of the newest events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "elixir_scope/pid_scan.h"

static void append(es_store *s, uint64_t id, uint64_t pid, uint64_t ts) {
    es_event_head h;
    uint8_t pl[1] = {0};
    memset(&h, 0, sizeof h);
    h.id = id;
    h.pid = pid;
    h.ts = ts;
    h.kind = ES_KIND_EXPR;
    assert_int_equal(es_store_append(s, &h, pl, sizeof pl), 0);
}

static es_store *store_of(const uint64_t *pids, size_t n) {
    es_store_config cfg = {0, 16};
    es_store *s = es_store_create(&cfg);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++) append(s, i + 1, pids[i], 100 + i);
    return s;
}

static void distinct_in_first_order_with_first_ts(void **state) {
    (void)state;
    const uint64_t pids[] = {7, 9, 7, 11, 9, 7};
    es_store *s = store_of(pids, 6);
    es_pid_seen out[8];
    uint64_t last = 0;
    assert_int_equal(es_pid_scan(s, 0, out, 8, &last), 3);
    assert_int_equal(last, 6);
    assert_int_equal(out[0].pid, 7);
    assert_int_equal(out[0].first_ts, 100);
    assert_int_equal(out[0].last_ts, 105);
    assert_int_equal(out[1].pid, 9);
    assert_int_equal(out[1].last_ts, 104);
    assert_int_equal(out[1].first_ts, 101);
    assert_int_equal(out[2].pid, 11);
    assert_int_equal(out[2].first_ts, 103);
    es_store_destroy(s);
}

static void only_events_after_the_id(void **state) {
    (void)state;
    const uint64_t pids[] = {7, 9, 7, 11};
    es_store *s = store_of(pids, 4);
    es_pid_seen out[8];
    uint64_t last = 0;
    assert_int_equal(es_pid_scan(s, 2, out, 8, &last), 2);
    assert_int_equal(out[0].pid, 7);
    assert_int_equal(out[0].first_ts, 102);
    assert_int_equal(out[1].pid, 11);
    assert_int_equal(last, 4);
    /* nothing new: the id stays */
    assert_int_equal(es_pid_scan(s, 4, out, 8, &last), 0);
    assert_int_equal(last, 4);
    es_store_destroy(s);
}

/* A full output stops before the event of the next new pid, and a scan from there loses none. */
static void full_output_resumes_without_loss(void **state) {
    (void)state;
    uint64_t pids[100];
    for (size_t i = 0; i < 100; i++) pids[i] = 1000 + (i % 50) * 8;
    es_store *s = store_of(pids, 100);
    es_pid_seen out[16];
    uint64_t last = 0, seen = 0;
    int n = es_pid_scan(s, 0, out, 16, &last);
    assert_int_equal(n, 16);
    assert_int_equal(last, 16);
    for (int round = 0; round < 10 && n > 0; round++) {
        seen += (uint64_t)n;
        n = es_pid_scan(s, last, out, 16, &last);
    }
    /* ids 1..50 hold the 50 pids once each; the second half repeats them and
       each scan from there finds them again as new to that scan */
    assert_true(seen >= 50);
    assert_int_equal(last, 100);
    es_store_destroy(s);
}

/* :spawn and :exit events (recorded on behalf of others) make no pid seen */
static void lifecycle_events_are_skipped(void **state) {
    (void)state;
    es_store_config cfg = {0, 16};
    es_store *s = es_store_create(&cfg);
    es_event_head h;
    uint8_t pl[1] = {0};
    es_pid_seen out[4];
    uint64_t last = 0;
    append(s, 1, 7, 100);
    memset(&h, 0, sizeof h);
    h.id = 2; h.pid = 9; h.ts = 101; h.kind = ES_KIND_SPAWN;
    assert_int_equal(es_store_append(s, &h, pl, 1), 0);
    h.id = 3; h.pid = 11; h.ts = 102; h.kind = ES_KIND_EXIT;
    assert_int_equal(es_store_append(s, &h, pl, 1), 0);
    assert_int_equal(es_pid_scan(s, 0, out, 4, &last), 1);
    assert_int_equal(out[0].pid, 7);
    es_store_destroy(s);
}

static void empty_store_and_bad_max(void **state) {
    (void)state;
    es_store_config cfg = {0, 16};
    es_store *s = es_store_create(&cfg);
    es_pid_seen out[1];
    uint64_t last = 5;
    assert_int_equal(es_pid_scan(s, 0, out, 1, &last), 0);
    assert_int_equal(last, 0);
    assert_int_equal(es_pid_scan(s, 0, out, 0, &last), -1);
    es_store_destroy(s);
}

/* Few processes, many events: the answer read from the pid index (es_store_pid_spans) is the
 * answer read from the events, for every after_id, with lifecycle events mixed in and, in a
 * capped store, the oldest segments evicted. */
static void pid_index_answers_as_the_events_do(void **state) {
    (void)state;
    uint64_t rng = 42;
    for (int round = 0; round < 6; round++) {
        es_store_config cfg = {round % 2 ? 40000 : 0, 64};
        es_store *s = es_store_create(&cfg);
        assert_non_null(s);
        const uint64_t npids = 1 + (uint64_t)round * 3, nevents = 3000;
        uint64_t id = 0;
        for (uint64_t i = 0; i < nevents; i++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            es_event_head h;
            uint8_t pl[8] = {0};
            memset(&h, 0, sizeof h);
            id += 1 + (rng >> 62 == 3); /* ids with gaps, as after drops */
            h.id = id;
            h.pid = 0x1000 + ((rng >> 33) % npids) * 16;
            h.ts = 1000 + i;
            uint64_t k = (rng >> 20) % 10;
            h.kind = k == 0 ? ES_KIND_SPAWN : k == 1 ? ES_KIND_EXIT : k < 5 ? ES_KIND_CALL : ES_KIND_EXPR;
            if (h.kind == ES_KIND_CALL) h.call_id = id;
            assert_int_equal(es_store_append(s, &h, pl, sizeof pl), 0);
        }
        int spans_used = 0;
        for (uint64_t after = 0; after <= id + 1; after += 1 + after / 3) {
            es_pid_seen a[64], b[64];
            uint64_t la = 7, lb = 9;
            es_pid_span sp[64];
            uint64_t ls;
            spans_used += es_store_pid_spans(s, after, ~0u, sp, 64, &ls) >= 0;
            int na = es_pid_scan(s, after, a, 64, &la), nb = es_pid_scan_events(s, after, b, 64, &lb);
            assert_int_equal(na, nb);
            assert_int_equal(la, lb);
            for (int i = 0; i < na; i++) {
                assert_int_equal(a[i].pid, b[i].pid);
                assert_int_equal(a[i].first_ts, b[i].first_ts);
                assert_int_equal(a[i].last_ts, b[i].last_ts);
            }
        }
        assert_true(spans_used > 0); /* the index was read, not only the events */
        es_store_destroy(s);
    }
}

/* More processes with new events than the output holds: the events are read, and the scan stops
 * before the first process that does not fit, as it always did. */
static void more_pids_than_room_reads_the_events(void **state) {
    (void)state;
    uint64_t pids[400];
    for (size_t i = 0; i < 400; i++) pids[i] = 1000 + (i % 8) * 8;
    es_store *s = store_of(pids, 400);
    es_pid_span sp[8];
    uint64_t last = 0;
    assert_int_equal(es_store_pid_spans(s, 0, ~0u, sp, 4, &last), -1);
    assert_int_equal(es_store_pid_spans(s, 0, ~0u, sp, 8, &last), 8);
    assert_int_equal(last, 400);
    es_pid_seen out[4];
    assert_int_equal(es_pid_scan(s, 0, out, 4, &last), 4);
    assert_int_equal(last, 4);
    es_store_destroy(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(distinct_in_first_order_with_first_ts),
        cmocka_unit_test(only_events_after_the_id),
        cmocka_unit_test(full_output_resumes_without_loss),
        cmocka_unit_test(lifecycle_events_are_skipped),
        cmocka_unit_test(empty_store_and_bad_max),
        cmocka_unit_test(pid_index_answers_as_the_events_do),
        cmocka_unit_test(more_pids_than_room_reads_the_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
