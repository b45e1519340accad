/* The event record shared by the ring buffer and the event store.
 * Pure C: the 64-bit "term words" (pid, module, function) are VM immediates
 * (local pids and atoms) that C never interprets, only compares and returns. */
#ifndef ELIXIR_SCOPE_EVENT_H
#define ELIXIR_SCOPE_EVENT_H

#include <stdint.h>

typedef enum es_kind {
    ES_KIND_CALL = 0,
    ES_KIND_RETURN,
    ES_KIND_EXCEPTION,
    ES_KIND_TAIL_CALL,
    ES_KIND_LOCAL,
    ES_KIND_EXPR,
    ES_KIND_STATE,
    ES_KIND_SEND,
    ES_KIND_RECEIVE,
    ES_KIND_SPAWN,
    ES_KIND_EXIT,
    ES_KIND_CUSTOM,
    ES_KIND__COUNT
} es_kind;

/* flags */
#define ES_FLAG_TRUNCATED 0x0001u /* payload was cut by the codec's limits */
#define ES_FLAG_REDACTED 0x0002u  /* a redacted key was found in the payload */

/* 64 bytes: what a producer hands to the ring, and what the store keeps
 * (the store may pack it tighter). */
typedef struct es_event_head {
    uint64_t id;       /* ring position + 1, assigned by es_ring_push; never 0 */
    uint64_t ts;       /* monotonic nanoseconds (es_now_ns) */
    uint64_t pid;      /* term word of the emitting process */
    uint64_t module;   /* term word (atom) or 0 */
    uint64_t function; /* term word (atom) or 0 */
    uint64_t call_id;  /* id of the :call event this event belongs to; for a :call, its own id */
    uint64_t link;     /* correlation id (send/receive/spawn/custom); for a :call, the id of its
                          :return/:exception/:tail_call once the store has seen it */
    uint32_t line;
    uint8_t kind;  /* es_kind */
    uint8_t arity; /* 255 = unknown */
    uint16_t flags;
} es_event_head;

/* Monotonic clock in nanoseconds (CLOCK_MONOTONIC). */
uint64_t es_now_ns(void);

#endif
