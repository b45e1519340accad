/* Bounded lock-free MPMC ring of fixed-size event slots (after D. Vyukov's
 * bounded MPMC queue). Many producers (every scheduler thread) push
 * concurrently; a drainer pops in position order, so the order of one
 * producer's pushes is kept exactly. */
#ifndef ELIXIR_SCOPE_RING_BUFFER_H
#define ELIXIR_SCOPE_RING_BUFFER_H

#include <stddef.h>
#include <stdint.h>
#include "elixir_scope/event.h"

typedef enum es_overflow {
    ES_OVERFLOW_DROP_NEWEST = 0,    /* a push into a full ring is dropped and counted */
    ES_OVERFLOW_OVERWRITE_OLDEST = 1 /* the oldest event is discarded (counted) to make room */
} es_overflow;

/* Payloads up to this size live inside the slot; larger ones are copied to a
 * block of the ring's payload pool (payload_pool.h), or to malloc'd memory when
 * the pool has no block for them, and owned by the slot until drained. */
#define ES_RING_INLINE_PAYLOAD 168u
/* The pool reserves this many bytes of address space per slot (touched only as used). */
#define ES_RING_POOL_PER_SLOT 4096u

/* A slot takes this many bytes; the largest ring (2^22 slots) takes 1 GiB. */
#define ES_RING_SLOT_BYTES 256u
#define ES_RING_MAX_CAPACITY (1u << 22)

typedef struct es_ring es_ring;

typedef struct es_ring_stats {
    uint64_t capacity;
    uint64_t pushed;       /* events that entered the ring */
    uint64_t dropped_full; /* pushes refused because the ring was full (drop_newest) */
    uint64_t overwritten;  /* events discarded to make room (overwrite_oldest) */
    uint64_t popped;       /* events handed to a sink */
    uint64_t size;         /* events in the ring now (approximate while producers run) */
    uint64_t full_since_ns; /* 0, or the es_now_ns() at which the ring was last seen becoming full */
    uint64_t heap_bytes;    /* out-of-slot payload bytes held by events in the ring now (pool or malloc) */
    uint64_t waits;         /* pushes that found the ring full and waited for room (back-pressure) */
    uint64_t wait_ns;       /* the time they waited, in total */
    uint64_t heap_fallbacks; /* out-of-slot payloads that went to malloc: over the pool's largest block, or none left */
    uint64_t pool_bytes;     /* payload pool blocks carved so far (resident; kept until destroy) */
} es_ring_stats;

/* capacity must be a power of two in [2, ES_RING_MAX_CAPACITY]; returns NULL
 * otherwise or on OOM. The slots are reserved, not touched: a page of the ring
 * becomes resident only when an event is first written to it (4 KiB at a time: the ring
 * asks for no huge pages, see es_ring_create). */
es_ring *es_ring_create(uint32_t capacity, es_overflow policy);

/* Bounds the payload bytes the ring holds outside its slots (payloads over
 * ES_RING_INLINE_PAYLOAD); 0 = unbounded (the default). A push that would go
 * over is dropped and counted in dropped_full. The pool carves no more than
 * this either (payloads past that go to malloc, still within the budget).
 * Call before producers start. */
void es_ring_set_payload_budget(es_ring *ring, uint64_t bytes);
/* Back-pressure (drop_newest only): a push that finds the ring full waits up to ns nanoseconds
 * for room before it is dropped, counted in waits and wait_ns. While it waits it calls
 * relief(ctx), which may drain the ring (it returns how many events it moved; the producer has
 * claimed no slot yet, so draining from there is safe), and yields its core when relief moved
 * nothing. ns = 0 (the default) drops at once. Call before producers start. */
typedef size_t (*es_ring_relief)(void *ctx);
void es_ring_set_backpressure(es_ring *ring, uint64_t ns, es_ring_relief relief, void *ctx);
/* Frees the ring and any heap payload still inside. No producer or drainer may be running. */
void es_ring_destroy(es_ring *ring);

/* Copies head and payload into a slot. head->id is set to the event's id
 * (position + 1). Returns that id, or 0 when the event was dropped (counted).
 * A payload that cannot be allocated is dropped and counted in dropped_full. */
uint64_t es_ring_push(es_ring *ring, es_event_head *head, const uint8_t *payload, uint32_t len);

/* Called once per drained event, in position order; payload is valid only during the call. */
typedef void (*es_ring_sink)(void *ctx, const es_event_head *head, const uint8_t *payload, uint32_t len);

/* Pops up to max events into sink. Returns how many. Safe to call from
 * several threads, but callers that need a total order must serialise drains. */
size_t es_ring_drain(es_ring *ring, size_t max, es_ring_sink sink, void *ctx);

void es_ring_get_stats(es_ring *ring, es_ring_stats *out);

/* Implementation notes (capture core):
 * - Thread safety: es_ring_push from any number of threads; es_ring_drain
 *   from any thread (runs of ready slots are claimed with one CAS);
 *   es_ring_get_stats from anywhere (a consistent-enough snapshot).
 *   create/destroy are not concurrent with anything.
 * - A slot is 256 bytes (64-byte head + 168 inline payload bytes + bookkeeping);
 *   the ring reserves capacity * 256 bytes of address space (anonymous mmap,
 *   zero pages until written: a slot's sequence number is stored relative to
 *   its index so that zeroed memory is a valid empty ring). Out-of-slot
 *   payloads are returned to the pool (or freed) by the drain (after the sink
 *   returns), by an overwrite, or by es_ring_destroy, and counted in
 *   heap_bytes while held. The pool hands a producer a block another thread
 *   freed without a lock or a system call: no malloc/free on the hot path
 *   for payloads up to ES_POOL_MAX_BLOCK.
 * - The sink runs while its slots are still claimed: it must not push into the
 *   same ring (a producer that meets a claimed slot waits for it).
 * - "full" means capacity events are waiting: a producer that meets a slot a
 *   drainer is still handing to its sink waits (spins, then sched_yield)
 *   instead of dropping, so drops happen only when the ring is really full.
 * - Exact accounting once producers and drainers are quiet:
 *   attempted pushes = pushed + dropped_full, and pushed = popped +
 *   overwritten + size. Ids are dense (1, 2, 3, ...) because a refused push
 *   consumes no position; under overwrite_oldest the overwritten ids are the
 *   gaps the drainer sees.
 * - full_since_ns is set by the first push that finds the ring full and reset
 *   to 0 by any drain that pops at least one event. */

#endif
