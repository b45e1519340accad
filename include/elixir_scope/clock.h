/* The event clock: CLOCK_MONOTONIC nanoseconds, read from the CPU's time-stamp counter where the
 * kernel itself keeps time with it (clocksource "tsc": invariant and synchronised across cores).
 * A read is one rdtsc and a multiply (about a third of clock_gettime's cost on this machine).
 *
 * The mapping ns = anchor_ns + (tsc - anchor_tsc) * rate is refined by es_clock_calibrate
 * (called by every drain, at most every millisecond): the rate is measured against
 * CLOCK_MONOTONIC since the start, and slewed so that the mapping converges to CLOCK_MONOTONIC
 * without ever stepping back. Without a usable TSC every read is clock_gettime. */
#ifndef ELIXIR_SCOPE_CLOCK_H
#define ELIXIR_SCOPE_CLOCK_H

#include <stdatomic.h>
#include <stdint.h>

/* A mapping: anchor tsc, anchor ns, rate (ns per tick, 32.32 fixed point). */
enum { ES_CLOCK_TSC = 0, ES_CLOCK_NS, ES_CLOCK_RATE };

typedef struct es_clock {
    int tsc;                    /* 0: every read is clock_gettime */
    _Atomic uint64_t seq;       /* maps[seq & 1] is current; bumped after the other is written */
    _Atomic uint64_t maps[2][3];
    _Atomic int calibrating;    /* one calibrator at a time (a try-lock) */
    uint64_t base_tsc, base_ns; /* the first measurement, for the long-run rate */
    uint64_t last_tsc;          /* of the last calibration */
} es_clock;

/* Sets the clock up (measures for about a millisecond when the TSC is used). use_tsc = 0 forces
 * clock_gettime. */
void es_clock_init(es_clock *c, int use_tsc);
/* 1 when the kernel keeps time with an invariant TSC (what es_clock_init wants for use_tsc). */
int es_clock_tsc_usable(void);
/* Nanoseconds on the CLOCK_MONOTONIC scale. A calibration re-anchors the mapping where it stands,
 * so reads never jump; the rate moves by at most 0.05 % at a time. */
uint64_t es_clock_now(es_clock *c);
/* Refines the mapping; cheap and a no-op within a millisecond of the previous call or while
 * another thread calibrates. */
void es_clock_calibrate(es_clock *c);

#endif
