/* Bounded lock-free MPMC ring of fixed-size event slots, after Dmitry
 * Vyukov's bounded MPMC queue: every slot carries a sequence number; a
 * producer claims position p by CAS on enqueue_pos when slot[p & mask].seq
 * == p, fills the slot and publishes it with seq = p + 1; a consumer claims
 * position p when seq == p + 1, reads it and frees it with seq = p + capacity.
 *
 * The drainer claims a run of ready slots with one CAS and hands them to the
 * sink in place (no copy), so the order of positions (and thus of one
 * producer's pushes) is kept exactly.
 *
 * Ids: id = position + 1. Drops never consume a position, so under
 * drop_newest ids are dense. Under overwrite_oldest a producer that finds the
 * ring full discards the oldest event itself (counted) and retries.
 *
 * The slots come from an anonymous mmap and are never initialised: a slot's
 * `seq` field holds (sequence - slot index), so the zero page already reads as
 * "slot i is free for position i" and a page becomes resident only when an
 * event is first written to it. */
#include "elixir_scope/ring_buffer.h"
#include "elixir_scope/payload_pool.h"

#include <sched.h>
#include <stdalign.h>
#include <sys/mman.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ES_CACHE_LINE 64

typedef struct es_slot {
    _Atomic uint64_t seq; /* sequence - slot index (see slot_seq) */
    uint32_t len;
    uint32_t pad_;
    uint8_t *heap; /* payload when len > ES_RING_INLINE_PAYLOAD (a pool block or malloc'd), owned by the slot */
    es_event_head head;
    uint8_t inline_payload[ES_RING_INLINE_PAYLOAD];
} __attribute__((aligned(ES_CACHE_LINE))) es_slot;

_Static_assert(sizeof(es_slot) == 256, "a slot is four cache lines");
_Static_assert(sizeof(es_event_head) == 64, "es_event_head is 64 bytes");

struct es_ring {
    /* read-only after creation */
    alignas(ES_CACHE_LINE) es_slot *slots;
    uint64_t mask;
    uint32_t capacity;
    es_overflow policy;
    uint64_t payload_budget; /* 0 = unbounded */
    uint64_t max_wait_ns;    /* drop_newest: how long a producer waits for room (0 = never) */
    es_ring_relief relief;   /* what a waiting producer calls (may be NULL) */
    void *relief_ctx;
    es_pool *pool;           /* blocks for out-of-slot payloads (NULL: malloc only) */
    /* producers */
    alignas(ES_CACHE_LINE) _Atomic uint64_t enqueue_pos;
    /* consumers */
    alignas(ES_CACHE_LINE) _Atomic uint64_t dequeue_pos;
    _Atomic uint64_t popped;
    /* slow-path counters */
    alignas(ES_CACHE_LINE) _Atomic uint64_t dropped_full;
    _Atomic uint64_t overwritten;
    _Atomic uint64_t full_since_ns;
    _Atomic uint64_t heap_bytes;
    _Atomic uint64_t waits, wait_ns;
    _Atomic uint64_t heap_fallbacks;
};

static inline uint64_t slot_index(const es_ring *r, const es_slot *s) { return (uint64_t)(s - r->slots); }

static inline uint64_t slot_seq(const es_ring *r, es_slot *s, memory_order mo) {
    return atomic_load_explicit(&s->seq, mo) + slot_index(r, s);
}

static inline void slot_set_seq(const es_ring *r, es_slot *s, uint64_t seq) {
    atomic_store_explicit(&s->seq, seq - slot_index(r, s), memory_order_release);
}

static inline int logically_full(es_ring *r, uint64_t pos) {
    uint64_t deq = atomic_load_explicit(&r->dequeue_pos, memory_order_acquire);
    return (int64_t)(pos - deq) >= (int64_t)r->capacity;
}

static void note_waited(es_ring *r, uint64_t since) {
    atomic_fetch_add_explicit(&r->wait_ns, es_now_ns() - since, memory_order_relaxed);
}

/* The out-of-slot payload paths are kept out of line (noinline) so that they do not weigh on the
 * inline-payload push and drain, the common case. */

/* A copy of an out-of-slot payload, counted in heap_bytes: in a pool block, or in malloc'd memory
 * (counted in heap_fallbacks) when the payload is larger than the pool's largest block or the pool
 * has none left. NULL when over the budget or out of memory: dropped, counted in dropped_full. */
static __attribute__((noinline)) uint8_t *spill(es_ring *r, const uint8_t *payload, uint32_t len) {
    uint64_t held = atomic_fetch_add_explicit(&r->heap_bytes, len, memory_order_relaxed) + len;
    uint8_t *p = NULL;
    if (!r->payload_budget || held <= r->payload_budget) {
        p = r->pool ? es_pool_alloc(r->pool, len) : NULL;
        if (!p && (p = malloc(len))) atomic_fetch_add_explicit(&r->heap_fallbacks, 1, memory_order_relaxed);
    }
    if (!p) {
        atomic_fetch_sub_explicit(&r->heap_bytes, len, memory_order_relaxed);
        atomic_fetch_add_explicit(&r->dropped_full, 1, memory_order_relaxed);
        return NULL;
    }
    memcpy(p, payload, len);
    return p;
}

/* Gives back what spill took. */
static __attribute__((noinline)) void unspill(es_ring *r, uint8_t *p, uint32_t len) {
    if (r->pool && es_pool_owns(r->pool, p)) es_pool_free(r->pool, p, len);
    else free(p);
    atomic_fetch_sub_explicit(&r->heap_bytes, len, memory_order_relaxed);
}

/* The drain's unspill: a pool block joins the drain's batch (returned once per run of slots). */
static __attribute__((noinline)) void unspill_drained(es_ring *r, es_pool_batch *batch, es_slot *s) {
    if (r->pool && es_pool_owns(r->pool, s->heap)) es_pool_batch_add(r->pool, batch, s->heap, s->len);
    else free(s->heap);
    s->heap = NULL;
}

static inline void release_heap(es_ring *r, es_slot *s) {
    if (s->heap) {
        unspill(r, s->heap, s->len);
        s->heap = NULL;
    }
}

uint64_t es_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(unsigned *spins) {
    if (++*spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        __asm__ __volatile__("yield");
#endif
    } else {
        *spins = 0;
        sched_yield();
    }
}

es_ring *es_ring_create(uint32_t capacity, es_overflow policy) {
    if (capacity < 2 || capacity > ES_RING_MAX_CAPACITY || (capacity & (capacity - 1)) != 0) return NULL;
    if (policy != ES_OVERFLOW_DROP_NEWEST && policy != ES_OVERFLOW_OVERWRITE_OLDEST) return NULL;
    es_ring *r = aligned_alloc(ES_CACHE_LINE, sizeof(es_ring));
    if (!r) return NULL;
    memset(r, 0, sizeof(*r));
    /* zero pages, untouched: the relative seq encoding makes them an empty ring */
    void *slots = mmap(NULL, (size_t)capacity * sizeof(es_slot), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (slots == MAP_FAILED) {
        free(r);
        return NULL;
    }
    /* No MADV_HUGEPAGE: with the kernel's defrag set to "madvise" (the default), a producer's
     * fault on the first lap could compact memory for milliseconds: a stall in instrumented code
     * (the first lap costs a page fault per 16 slots instead, once per session). */
    r->slots = slots;
    r->mask = (uint64_t)capacity - 1;
    r->capacity = capacity;
    r->policy = policy;
    r->payload_budget = 0;
    /* A pool the size of every slot holding an ES_RING_POOL_PER_SLOT payload; reserved, not
     * touched. Without one (no address space), payloads go to malloc as they did. */
    r->pool = es_pool_create((uint64_t)capacity * ES_RING_POOL_PER_SLOT);
    atomic_init(&r->enqueue_pos, 0);
    atomic_init(&r->dequeue_pos, 0);
    atomic_init(&r->popped, 0);
    atomic_init(&r->dropped_full, 0);
    atomic_init(&r->overwritten, 0);
    atomic_init(&r->full_since_ns, 0);
    atomic_init(&r->heap_bytes, 0);
    atomic_init(&r->waits, 0);
    atomic_init(&r->wait_ns, 0);
    atomic_init(&r->heap_fallbacks, 0);
    return r;
}

void es_ring_set_payload_budget(es_ring *ring, uint64_t bytes) {
    ring->payload_budget = bytes;
    /* the pool's resident blocks stay within the budget too */
    if (ring->pool && bytes) es_pool_set_limit(ring->pool, bytes);
}

void es_ring_set_backpressure(es_ring *ring, uint64_t ns, es_ring_relief relief, void *ctx) {
    ring->max_wait_ns = ns;
    ring->relief = relief;
    ring->relief_ctx = ctx;
}

/* Back-pressure: a producer that finds the ring full helps the drain (relief) or gives its core
 * away until there is room or max_wait_ns has passed. 1: there is room. */
static int wait_for_room(es_ring *r, uint64_t *waited_since) {
    uint64_t now = es_now_ns();
    if (*waited_since == 0) {
        *waited_since = now;
        atomic_fetch_add_explicit(&r->waits, 1, memory_order_relaxed);
    }
    while (now - *waited_since < r->max_wait_ns) {
        if (!(r->relief && r->relief(r->relief_ctx))) sched_yield();
        if (!logically_full(r, atomic_load_explicit(&r->enqueue_pos, memory_order_relaxed))) return 1;
        now = es_now_ns();
    }
    return 0;
}

void es_ring_destroy(es_ring *ring) {
    if (!ring) return;
    /* only slots between the dequeue and enqueue positions can hold a heap
       payload; walking just those keeps untouched pages untouched */
    uint64_t deq = atomic_load(&ring->dequeue_pos), enq = atomic_load(&ring->enqueue_pos);
    if (enq - deq > ring->capacity) deq = enq - ring->capacity;
    for (uint64_t p = deq; p < enq; p++) release_heap(ring, &ring->slots[p & ring->mask]);
    es_pool_destroy(ring->pool);
    munmap(ring->slots, (size_t)ring->capacity * sizeof(es_slot));
    free(ring);
}

static void note_full(es_ring *r) {
    if (atomic_load_explicit(&r->full_since_ns, memory_order_relaxed) == 0) {
        uint64_t expected = 0, now = es_now_ns();
        if (now == 0) now = 1;
        atomic_compare_exchange_strong_explicit(&r->full_since_ns, &expected, now, memory_order_relaxed,
                                                memory_order_relaxed);
    }
}


/* overwrite_oldest: discard the oldest published event. Returns 1 when one was discarded. */
static int discard_oldest(es_ring *r) {
    uint64_t pos = atomic_load_explicit(&r->dequeue_pos, memory_order_relaxed);
    for (;;) {
        es_slot *s = &r->slots[pos & r->mask];
        uint64_t seq = slot_seq(r, s, memory_order_acquire);
        int64_t dif = (int64_t)(seq - (pos + 1));
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&r->dequeue_pos, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                release_heap(r, s);
                atomic_fetch_add_explicit(&r->overwritten, 1, memory_order_relaxed);
                slot_set_seq(r, s, pos + r->mask + 1);
                return 1;
            }
        } else if (dif < 0) {
            return 0; /* empty, or its producer is still writing it */
        } else {
            pos = atomic_load_explicit(&r->dequeue_pos, memory_order_relaxed);
        }
    }
}

uint64_t es_ring_push(es_ring *ring, es_event_head *head, const uint8_t *payload, uint32_t len) {
    uint8_t *heap = NULL;
    if (len && !payload) len = 0; /* nothing to copy */
    if (len > ES_RING_INLINE_PAYLOAD && !(heap = spill(ring, payload, len))) return 0;
    unsigned spins = 0;
    uint64_t waited_since = 0;
    uint64_t pos = atomic_load_explicit(&ring->enqueue_pos, memory_order_relaxed);
    es_slot *s;
    for (;;) {
        s = &ring->slots[pos & ring->mask];
        /* First lap: the slot's page is written before it is read (an atomic no-op), so that the
         * kernel maps a fresh zeroed page at once, not the shared zero page that the first store
         * would then replace (a second fault, and a TLB shootdown on every core running the VM). */
        if (pos < ring->capacity) atomic_fetch_add_explicit(&s->seq, 0, memory_order_relaxed);
        uint64_t seq = slot_seq(ring, s, memory_order_acquire);
        int64_t dif = (int64_t)(seq - pos);
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&ring->enqueue_pos, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed))
                break;
        } else if (dif < 0) {
            /* The slot still holds the event of the previous lap. */
            if (logically_full(ring, pos)) {
                note_full(ring);
                if (ring->policy == ES_OVERFLOW_DROP_NEWEST) {
                    if (ring->max_wait_ns && wait_for_room(ring, &waited_since)) {
                        pos = atomic_load_explicit(&ring->enqueue_pos, memory_order_relaxed);
                        continue;
                    }
                    if (waited_since) note_waited(ring, waited_since);
                    if (heap) unspill(ring, heap, len);
                    atomic_fetch_add_explicit(&ring->dropped_full, 1, memory_order_relaxed);
                    return 0;
                }
                if (!discard_oldest(ring)) cpu_relax(&spins);
            } else {
                /* a drainer has claimed that slot and is handing it to its sink */
                cpu_relax(&spins);
            }
            pos = atomic_load_explicit(&ring->enqueue_pos, memory_order_relaxed);
        } else {
            pos = atomic_load_explicit(&ring->enqueue_pos, memory_order_relaxed);
        }
    }
    if (waited_since) note_waited(ring, waited_since);
    uint64_t id = pos + 1;
    head->id = id;
    s->head = *head;
    s->len = len;
    if (heap) {
        s->heap = heap;
    } else {
        s->heap = NULL;
        if (len) memcpy(s->inline_payload, payload, len);
    }
    slot_set_seq(ring, s, pos + 1);
    /* The next push most likely takes the next slot, which the drainer freed on its core a lap
     * ago: asking for its first two cache lines now (for writing) hides the miss its seq load and
     * stores would otherwise take. A hint only: it changes no memory. */
    es_slot *next = &ring->slots[(pos + 1) & ring->mask];
    __builtin_prefetch(next, 1, 3);
    __builtin_prefetch((const char *)next + ES_CACHE_LINE, 1, 3);
    return id;
}

#define ES_DRAIN_BATCH 64

size_t es_ring_drain(es_ring *ring, size_t max, es_ring_sink sink, void *ctx) {
    size_t done = 0;
    while (done < max) {
        uint64_t pos = atomic_load_explicit(&ring->dequeue_pos, memory_order_relaxed);
        size_t k = 0;
        size_t want = max - done;
        if (want > ES_DRAIN_BATCH) want = ES_DRAIN_BATCH;
        int64_t first_dif = 0;
        while (k < want) {
            es_slot *s = &ring->slots[(pos + k) & ring->mask];
            uint64_t seq = slot_seq(ring, s, memory_order_acquire);
            int64_t dif = (int64_t)(seq - (pos + k + 1));
            if (k == 0) first_dif = dif;
            if (dif != 0) break;
            k++;
        }
        if (k == 0) {
            if (first_dif < 0) break; /* empty (or the next event is still being written) */
            continue;                 /* another consumer moved on: reload */
        }
        if (!atomic_compare_exchange_strong_explicit(&ring->dequeue_pos, &pos, pos + k, memory_order_relaxed,
                                                     memory_order_relaxed))
            continue;
        es_pool_batch spilled = {{0}, {0}};
        uint64_t spilled_bytes = 0;
        for (size_t i = 0; i < k; i++) {
            es_slot *s = &ring->slots[(pos + i) & ring->mask];
            const uint8_t *p = s->heap ? s->heap : s->inline_payload;
            sink(ctx, &s->head, p, s->len);
            if (s->heap) {
                spilled_bytes += s->len;
                unspill_drained(ring, &spilled, s);
            }
            slot_set_seq(ring, s, pos + i + ring->mask + 1);
        }
        if (spilled_bytes) {
            if (ring->pool) es_pool_batch_release(ring->pool, &spilled);
            atomic_fetch_sub_explicit(&ring->heap_bytes, spilled_bytes, memory_order_relaxed);
        }
        atomic_fetch_add_explicit(&ring->popped, k, memory_order_relaxed);
        done += k;
    }
    if (done && atomic_load_explicit(&ring->full_since_ns, memory_order_relaxed) != 0)
        atomic_store_explicit(&ring->full_since_ns, 0, memory_order_relaxed);
    return done;
}

void es_ring_get_stats(es_ring *ring, es_ring_stats *out) {
    uint64_t deq = atomic_load_explicit(&ring->dequeue_pos, memory_order_acquire);
    uint64_t enq = atomic_load_explicit(&ring->enqueue_pos, memory_order_acquire);
    out->capacity = ring->capacity;
    out->pushed = enq;
    out->dropped_full = atomic_load_explicit(&ring->dropped_full, memory_order_relaxed);
    out->overwritten = atomic_load_explicit(&ring->overwritten, memory_order_relaxed);
    out->popped = atomic_load_explicit(&ring->popped, memory_order_relaxed);
    out->size = enq > deq ? enq - deq : 0;
    out->full_since_ns = atomic_load_explicit(&ring->full_since_ns, memory_order_relaxed);
    out->heap_bytes = atomic_load_explicit(&ring->heap_bytes, memory_order_relaxed);
    out->waits = atomic_load_explicit(&ring->waits, memory_order_relaxed);
    out->wait_ns = atomic_load_explicit(&ring->wait_ns, memory_order_relaxed);
    out->heap_fallbacks = atomic_load_explicit(&ring->heap_fallbacks, memory_order_relaxed);
    out->pool_bytes = ring->pool ? es_pool_carved_bytes(ring->pool) : 0;
}
