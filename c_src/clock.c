/* The event clock (include/elixir_scope/clock.h). */
#include "elixir_scope/clock.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#include <x86intrin.h>
static inline uint64_t ticks(void) { return __rdtsc(); }
#define HAVE_TSC 1
#else
static inline uint64_t ticks(void) { return 0; }
#define HAVE_TSC 0
#endif

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int es_clock_tsc_usable(void) {
    char name[32] = {0};
    FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
    if (!f) return 0;
    int ok = fgets(name, sizeof name, f) != NULL && strncmp(name, "tsc", 3) == 0 && (name[3] == '\n' || !name[3]);
    fclose(f);
    return HAVE_TSC && ok;
}

/* A (tsc, ns) pair read back to back: the tighter of a few tries. */
static void sample(uint64_t *tsc, uint64_t *ns) {
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 4; i++) {
        uint64_t t0 = ticks(), n = mono_ns(), t1 = ticks();
        if (t1 - t0 < best) {
            best = t1 - t0;
            *tsc = t0 + (t1 - t0) / 2;
            *ns = n;
        }
    }
}

typedef struct map {
    uint64_t tsc, ns, rate;
} map;

static inline uint64_t map_at(const map *m, uint64_t tsc) {
    uint64_t d = tsc > m->tsc ? tsc - m->tsc : 0;
    return m->ns + (uint64_t)(((unsigned __int128)d * m->rate) >> 32);
}

static void load_map(es_clock *c, uint64_t slot, map *m) {
    m->tsc = atomic_load_explicit(&c->maps[slot][ES_CLOCK_TSC], memory_order_relaxed);
    m->ns = atomic_load_explicit(&c->maps[slot][ES_CLOCK_NS], memory_order_relaxed);
    m->rate = atomic_load_explicit(&c->maps[slot][ES_CLOCK_RATE], memory_order_relaxed);
}

static void store_map(es_clock *c, uint64_t slot, const map *m) {
    atomic_store_explicit(&c->maps[slot][ES_CLOCK_TSC], m->tsc, memory_order_relaxed);
    atomic_store_explicit(&c->maps[slot][ES_CLOCK_NS], m->ns, memory_order_relaxed);
    atomic_store_explicit(&c->maps[slot][ES_CLOCK_RATE], m->rate, memory_order_relaxed);
}

/* Seqlock: the other slot is written, then made current. */
static void publish(es_clock *c, const map *m) {
    uint64_t s = atomic_load_explicit(&c->seq, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    store_map(c, (s + 1) & 1, m);
    atomic_store_explicit(&c->seq, s + 1, memory_order_release);
}

void es_clock_init(es_clock *c, int use_tsc) {
    memset(c, 0, sizeof *c);
    c->tsc = use_tsc && HAVE_TSC;
    if (!c->tsc) return;
    uint64_t t0, n0, t1, n1;
    sample(&t0, &n0);
    do sample(&t1, &n1); while (n1 - n0 < 1000000); /* a millisecond */
    if (t1 <= t0) {
        c->tsc = 0;
        return;
    }
    c->base_tsc = t0;
    c->base_ns = n0;
    c->last_tsc = t1;
    map m = {t1, n1, (uint64_t)((((unsigned __int128)(n1 - n0)) << 32) / (t1 - t0))};
    store_map(c, 0, &m);
    store_map(c, 1, &m);
}

uint64_t es_clock_now(es_clock *c) {
    if (!c->tsc) return mono_ns();
    for (;;) {
        uint64_t s = atomic_load_explicit(&c->seq, memory_order_acquire);
        map m;
        load_map(c, s & 1, &m);
        atomic_thread_fence(memory_order_acquire);
        /* whole unless the calibrator rewrote this slot meanwhile (two publishes) */
        if (atomic_load_explicit(&c->seq, memory_order_relaxed) - s < 2) return map_at(&m, ticks());
    }
}

void es_clock_calibrate(es_clock *c) {
    if (!c->tsc) return;
    int idle = 0;
    if (!atomic_compare_exchange_strong(&c->calibrating, &idle, 1)) return;
    map cur;
    load_map(c, atomic_load_explicit(&c->seq, memory_order_relaxed) & 1, &cur);
    uint64_t tsc, ns;
    if (map_at(&cur, ticks()) - map_at(&cur, c->last_tsc) >= 1000000) { /* at most every millisecond */
        sample(&tsc, &ns);
        if (tsc > c->base_tsc && ns > c->base_ns && tsc > cur.tsc) {
            /* the long-run rate, slewed to absorb the error over the next 100 ms (by at most 0.05 %) */
            unsigned __int128 rate = (((unsigned __int128)(ns - c->base_ns)) << 32) / (tsc - c->base_tsc);
            uint64_t mapped = map_at(&cur, tsc);
            int64_t err = (int64_t)(mapped - ns); /* > 0: the mapping runs ahead */
            __int128 adj = (__int128)rate * err / 100000000, limit = (__int128)(rate / 2000);
            if (adj > limit) adj = limit;
            if (adj < -limit) adj = -limit;
            map m = {tsc, mapped, (uint64_t)((__int128)rate - adj)};
            publish(c, &m);
        }
        c->last_tsc = tsc;
    }
    atomic_store(&c->calibrating, 0);
}
