/* Lock-free pool of fixed-size payload blocks (see payload_pool.h).
 *
 * The mapping is cut into units of ES_POOL_MIN_BLOCK bytes; a block of class
 * k spans 2^k units and is named by the index of its first unit. Each class's
 * free list is a Treiber stack whose head packs (tag << 32 | index + 1) into
 * one 64-bit word (0 = empty): the tag, bumped by every change, makes a pop
 * that read a stale successor fail its CAS (ABA). The successor links live in
 * a side array of atomics, not in the blocks, so a pop racing with the reuse
 * of the block it read never touches payload bytes. */
#include "elixir_scope/payload_pool.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
/* ASan cannot see the pool's blocks as allocations: a free block (and the
 * tail of a block past its payload) is poisoned so that a stray access is
 * still caught under `make test-asan`. Only carved blocks are (un)poisoned:
 * poisoning the whole reservation would make its shadow resident. */
#define POOL_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define POOL_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POOL_POISON(p, n) ((void)(p), (void)(n))
#define POOL_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define UNIT ES_POOL_MIN_BLOCK
#define CLASSES ES_POOL_CLASSES
#define INDEX_MASK 0xffffffffull

_Static_assert((ES_POOL_MIN_BLOCK << (CLASSES - 1)) == ES_POOL_MAX_BLOCK, "classes span min .. max block");

typedef struct free_list {
    alignas(64) _Atomic uint64_t head; /* one cache line each: classes do not contend */
} free_list;

struct es_pool {
    uint8_t *base;
    _Atomic uint32_t *next; /* successor (index + 1, 0 = none) of each unit that starts a free block */
    uint64_t reserved_units;
    uint64_t limit_units;
    alignas(64) _Atomic uint64_t carved_units;
    free_list free[CLASSES];
};

static inline unsigned class_of(uint32_t len) {
    return len <= UNIT ? 0 : (unsigned)(32 - __builtin_clz(len - 1)) - 8; /* ceil(log2 len) - log2 UNIT */
}

static void *map_reserve(size_t bytes) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

es_pool *es_pool_create(uint64_t reserve_bytes) {
    uint64_t units = reserve_bytes / UNIT;
    if (units < ES_POOL_MAX_BLOCK / UNIT) units = ES_POOL_MAX_BLOCK / UNIT;
    if (units > INDEX_MASK - 1) units = INDEX_MASK - 1;
    es_pool *pool = aligned_alloc(64, sizeof(es_pool));
    if (!pool) return NULL;
    pool->base = map_reserve(units * UNIT);
    pool->next = map_reserve(units * sizeof(uint32_t));
    if (!pool->base || !pool->next) {
        if (pool->base) munmap(pool->base, units * UNIT);
        if (pool->next) munmap((void *)pool->next, units * sizeof(uint32_t));
        free(pool);
        return NULL;
    }
    pool->reserved_units = pool->limit_units = units;
    atomic_init(&pool->carved_units, 0);
    for (unsigned k = 0; k < CLASSES; k++) atomic_init(&pool->free[k].head, 0);
    return pool;
}

void es_pool_set_limit(es_pool *pool, uint64_t bytes) {
    uint64_t units = bytes / UNIT;
    pool->limit_units = units < pool->reserved_units ? units : pool->reserved_units;
}

static void *pop_free(es_pool *pool, unsigned k) {
    _Atomic uint64_t *head = &pool->free[k].head;
    uint64_t old = atomic_load_explicit(head, memory_order_acquire);
    while (old & INDEX_MASK) {
        uint64_t idx = (old & INDEX_MASK) - 1;
        uint64_t succ = atomic_load_explicit(&pool->next[idx], memory_order_relaxed);
        uint64_t new = (((old >> 32) + 1) << 32) | succ;
        if (atomic_compare_exchange_weak_explicit(head, &old, new, memory_order_acquire, memory_order_acquire))
            return pool->base + idx * UNIT;
    }
    return NULL;
}

static void *carve(es_pool *pool, unsigned k) {
    uint64_t units = 1ull << k;
    uint64_t at = atomic_load_explicit(&pool->carved_units, memory_order_relaxed);
    do {
        if (at + units > pool->limit_units) return NULL;
    } while (!atomic_compare_exchange_weak_explicit(&pool->carved_units, &at, at + units, memory_order_relaxed,
                                                    memory_order_relaxed));
    return pool->base + at * UNIT;
}

void *es_pool_alloc(es_pool *pool, uint32_t len) {
    if (len > ES_POOL_MAX_BLOCK) return NULL;
    unsigned k = class_of(len);
    uint8_t *p = pop_free(pool, k);
    if (!p) p = carve(pool, k);
    if (p) {
        POOL_UNPOISON(p, len);
        POOL_POISON(p + len, ((size_t)UNIT << k) - len);
    }
    return p;
}

int es_pool_owns(const es_pool *pool, const void *p) {
    const uint8_t *b = p;
    return b >= pool->base && b < pool->base + pool->reserved_units * UNIT;
}

/* Pushes the chain first .. last (indices + 1, linked through next[]) onto class k's free list. */
static void push_chain(es_pool *pool, unsigned k, uint32_t first, uint32_t last) {
    _Atomic uint64_t *head = &pool->free[k].head;
    uint64_t old = atomic_load_explicit(head, memory_order_relaxed), new;
    do {
        atomic_store_explicit(&pool->next[last - 1], (uint32_t)(old & INDEX_MASK), memory_order_relaxed);
        new = (((old >> 32) + 1) << 32) | first;
    } while (!atomic_compare_exchange_weak_explicit(head, &old, new, memory_order_release, memory_order_relaxed));
}

/* The block's index + 1, poisoned as free. */
static uint32_t retire(es_pool *pool, void *p, unsigned k) {
    POOL_POISON(p, (size_t)UNIT << k);
    return (uint32_t)((uint64_t)((uint8_t *)p - pool->base) / UNIT) + 1;
}

void es_pool_free(es_pool *pool, void *p, uint32_t len) {
    unsigned k = class_of(len);
    uint32_t i = retire(pool, p, k);
    push_chain(pool, k, i, i);
}

void es_pool_batch_add(es_pool *pool, es_pool_batch *batch, void *p, uint32_t len) {
    unsigned k = class_of(len);
    uint32_t i = retire(pool, p, k);
    if (batch->first[k]) atomic_store_explicit(&pool->next[i - 1], batch->first[k], memory_order_relaxed);
    else batch->last[k] = i;
    batch->first[k] = i;
}

void es_pool_batch_release(es_pool *pool, es_pool_batch *batch) {
    for (unsigned k = 0; k < CLASSES; k++)
        if (batch->first[k]) {
            push_chain(pool, k, batch->first[k], batch->last[k]);
            batch->first[k] = batch->last[k] = 0;
        }
}

uint64_t es_pool_carved_bytes(const es_pool *pool) {
    return atomic_load_explicit(&pool->carved_units, memory_order_relaxed) * UNIT;
}

void es_pool_destroy(es_pool *pool) {
    if (!pool) return;
    POOL_UNPOISON(pool->base, es_pool_carved_bytes(pool));
    munmap(pool->base, pool->reserved_units * UNIT);
    munmap((void *)pool->next, pool->reserved_units * sizeof(uint32_t));
    free(pool);
}
