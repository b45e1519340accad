/* CMocka tests of the event clock (c_src/clock.c): it stays on the CLOCK_MONOTONIC scale,
 * calibrations never make it jump, and without a TSC it is clock_gettime. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <time.h>

#include "elixir_scope/clock.h"

static uint64_t mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int64_t gap(uint64_t a, uint64_t b) { return (int64_t)(a - b); }

/* Reads for about ms milliseconds, calibrating as the drains do; every read lies between two
 * CLOCK_MONOTONIC reads taken around it (within slack ns) and none goes back. */
static void follows_monotonic(es_clock *c, int ms, int64_t slack) {
    uint64_t last = 0, start = mono(), reads = 0;
    while (mono() - start < (uint64_t)ms * 1000000u) {
        for (int i = 0; i < 1000; i++, reads++) {
            uint64_t before = mono(), t = es_clock_now(c), after = mono();
            if (gap(t, before) < -slack || gap(t, after) > slack)
                fail_msg("read %llu: %lld ns from CLOCK_MONOTONIC", (unsigned long long)reads,
                         (long long)(gap(t, before) < 0 ? gap(t, before) : gap(t, after)));
            assert_true(t + 50 >= last); /* a re-anchoring moves the rate, never the reading */
            if (t > last) last = t;
        }
        es_clock_calibrate(c);
    }
}

static void test_tsc_clock_follows_monotonic(void **state) {
    (void)state;
    es_clock *c = calloc(1, sizeof *c);
    es_clock_init(c, es_clock_tsc_usable());
    if (!c->tsc) print_message("no usable TSC here: clock_gettime only\n");
    follows_monotonic(c, 300, 200000); /* 0.2 ms: one calibration's worth of a busy machine */
    free(c);
}

static void test_without_tsc_it_is_clock_gettime(void **state) {
    (void)state;
    es_clock *c = calloc(1, sizeof *c);
    es_clock_init(c, 0);
    assert_int_equal(c->tsc, 0);
    follows_monotonic(c, 20, 0);
    es_clock_calibrate(c); /* a no-op */
    free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tsc_clock_follows_monotonic),
        cmocka_unit_test(test_without_tsc_it_is_clock_gettime),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
