/* A bounded lock-free pool of fixed-size blocks for the ring's out-of-slot
 * payloads, so that a producer thread does not malloc what a drainer thread
 * frees (glibc then returns the chunk to the producer's arena under its lock,
 * and the producer's tcache runs dry: both slow and erratic).
 *
 * Blocks come in power-of-two size classes from ES_POOL_MIN_BLOCK to
 * ES_POOL_MAX_BLOCK. They are carved on first need, by a bump pointer, from
 * one anonymous mapping reserved at creation (untouched pages cost nothing);
 * a freed block goes onto its class's free list (a Treiber stack with an ABA
 * tag) and is never handed back to another class or to the kernel before
 * es_pool_destroy. Nothing here allocates on the hot path or takes a lock. */
#ifndef ELIXIR_SCOPE_PAYLOAD_POOL_H
#define ELIXIR_SCOPE_PAYLOAD_POOL_H

#include <stddef.h>
#include <stdint.h>

#define ES_POOL_MIN_BLOCK 256u
#define ES_POOL_MAX_BLOCK 8192u /* the default max_payload_bytes (4096) and what one subterm may overshoot it by */
#define ES_POOL_CLASSES 6       /* 256, 512, ..., 8192 */

typedef struct es_pool es_pool;

/* Reserves reserve_bytes of address space (at least one largest block, at
 * most 2^32 - 1 minimal blocks) and carves at most that much. NULL when the
 * reservation fails: the caller then does without a pool. */
es_pool *es_pool_create(uint64_t reserve_bytes);

/* Lowers how many bytes may be carved (never above the reservation).
 * Call before any thread allocates. */
void es_pool_set_limit(es_pool *pool, uint64_t bytes);

/* A block of at least len bytes, or NULL when len is over ES_POOL_MAX_BLOCK
 * or the pool has carved all it may and the class's free list is empty. */
void *es_pool_alloc(es_pool *pool, uint32_t len);

/* 1 when p points into the pool's mapping (a block es_pool_alloc returned). */
int es_pool_owns(const es_pool *pool, const void *p);

/* Returns a block; len must be the len it was allocated with. */
void es_pool_free(es_pool *pool, void *p, uint32_t len);

/* Blocks gathered by one thread and returned together, one CAS per size class:
 * a drainer that returned each block on its own would pull the free list's
 * cache line away from the producers once per event. Zero it before use. */
typedef struct es_pool_batch {
    uint32_t first[ES_POOL_CLASSES], last[ES_POOL_CLASSES]; /* index + 1 of a chain's ends; 0 = empty */
} es_pool_batch;

/* Adds a block (as es_pool_free would take it) to the batch; it is not free until released. */
void es_pool_batch_add(es_pool *pool, es_pool_batch *batch, void *p, uint32_t len);
/* Returns every block of the batch to the pool and empties it. */
void es_pool_batch_release(es_pool *pool, es_pool_batch *batch);

/* Bytes carved so far (resident once written), for stats and tests. */
uint64_t es_pool_carved_bytes(const es_pool *pool);

/* Unmaps everything. No thread may be using the pool; blocks still out become invalid. */
void es_pool_destroy(es_pool *pool);

#endif
