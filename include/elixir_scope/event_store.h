/* Append-only segmented event log with indexes (pid, module/function/arity,
 * call id, correlation id, time), a byte cap kept by evicting the oldest
 * segment, and concurrent readers (an internal rwlock; one writer at a time). */
#ifndef ELIXIR_SCOPE_EVENT_STORE_H
#define ELIXIR_SCOPE_EVENT_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "elixir_scope/event.h"

typedef struct es_store es_store;

typedef struct es_store_config {
    uint64_t max_bytes;      /* 0 = unlimited; otherwise oldest segments are evicted to stay under */
    uint32_t segment_events; /* records per segment (>= 16) */
} es_store_config;

typedef struct es_store_stats {
    uint64_t appended;         /* events ever appended */
    uint64_t evicted_events;   /* events removed by the byte cap */
    uint64_t evicted_segments;
    uint64_t live_events;      /* appended - evicted */
    uint64_t bytes_used;       /* records + payloads + indexes */
    uint64_t record_bytes;
    uint64_t payload_bytes;
    uint64_t index_bytes;
    uint64_t segments;
    uint64_t first_id;         /* oldest live id (0 when empty) */
    uint64_t last_id;          /* newest id (0 when empty) */
    uint64_t min_ts, max_ts;   /* of live events */
} es_store_stats;

es_store *es_store_create(const es_store_config *cfg);
void es_store_destroy(es_store *store);

/* Appends one event (ids must increase across appends; a non-increasing id is
 * rejected with -1). Payload is copied. For :return/:exception/:tail_call
 * events whose call_id names a live :call, the store sets that call's link
 * to this event's id and, when module/function are 0, copies the call's
 * module/function/arity into this event. Returns 0 on success, -1 on error. */
int es_store_append(es_store *store, const es_event_head *head, const uint8_t *payload, uint32_t len);

typedef struct es_event_view {
    es_event_head head;
    const uint8_t *payload;
    uint32_t payload_len;
} es_event_view;

/* Which filters of es_query are set */
#define ES_Q_PID (1u << 0)
#define ES_Q_MODULE (1u << 1)
#define ES_Q_FUNCTION (1u << 2) /* needs ES_Q_MODULE */
#define ES_Q_ARITY (1u << 3)    /* needs ES_Q_FUNCTION */
#define ES_Q_KINDS (1u << 4)
#define ES_Q_CALL_ID (1u << 5)  /* the call event itself and events whose call_id equals it */
#define ES_Q_CORRELATION (1u << 6) /* events whose link equals it, kinds send/receive/spawn/exit/custom */
#define ES_Q_SINCE_TS (1u << 7) /* ts >= since_ts */
#define ES_Q_UNTIL_TS (1u << 8) /* ts <= until_ts */
#define ES_Q_AFTER_ID (1u << 9) /* id > after_id */
#define ES_Q_BEFORE_ID (1u << 10) /* id < before_id */

typedef struct es_query {
    uint32_t fields;
    uint64_t pid, module, function;
    uint8_t arity;
    uint32_t kinds_mask; /* bit (1 << es_kind) */
    uint64_t call_id, correlation_id;
    uint64_t since_ts, until_ts;
    uint64_t after_id, before_id;
    uint32_t limit;  /* 0 = no limit */
    int reverse;     /* newest first */
} es_query;

/* Called per matching event in id order (or reverse); return nonzero to stop.
 * The view is valid only during the call; the store's read lock is held. */
typedef int (*es_query_cb)(void *ctx, const es_event_view *ev);

/* Returns the number of events passed to cb. Picks the most selective index. */
size_t es_store_query(es_store *store, const es_query *q, es_query_cb cb, void *ctx);

/* Calls cb for the live event with this id; returns 1 if found, 0 if not. */
int es_store_get(es_store *store, uint64_t id, es_query_cb cb, void *ctx);

void es_store_get_stats(es_store *store, es_store_stats *out);

/* A process's events after some id, of some kinds: its first one's id and time, its last one's. */
typedef struct es_pid_span {
    uint64_t pid, first_id, first_ts, last_ts;
} es_pid_span;

/* The processes with events of kinds_mask after after_id, read from the pid index (each process's
 * posting list) instead of from the events: one span per process, in no particular order, and in
 * *last_id the id of the newest such event (after_id when there is none). Returns how many spans
 * were written (at most max), or -1 without writing any when reading the events would cost less
 * (at least a quarter as many processes as new events) or more than max processes have some. */
int es_store_pid_spans(es_store *store, uint64_t after_id, uint32_t kinds_mask, es_pid_span *out, size_t max,
                       uint64_t *last_id);

/* Batch appends (added by the capture core): a drainer takes the write lock
 * once per batch instead of once per event, e.g.
 *     es_store_write_lock(store);
 *     es_ring_drain(ring, 4096, sink_calling_es_store_append_locked, store);
 *     es_store_write_unlock(store);
 * es_store_append_locked has es_store_append's contract but must only be
 * called between es_store_write_lock and es_store_write_unlock, by the thread
 * holding the lock. Never call store functions from a query callback (the
 * read lock is held there). */
void es_store_write_lock(es_store *store);
/* 1 when the write lock was free and is now held; 0 at once otherwise (a producer helping the drain
 * must not wait behind a long query). */
int es_store_try_write_lock(es_store *store);
void es_store_write_unlock(es_store *store);
int es_store_append_locked(es_store *store, const es_event_head *head, const uint8_t *payload, uint32_t len);

/* Removes every event (counts nothing as evicted). */
void es_store_clear(es_store *store);

/* Implementation notes (capture core):
 * - es_store_create(NULL) or segment_events = 0: 65,536 records per segment;
 *   1..15 -> NULL. A segment also closes early when its payloads reach 256 MB
 *   or an id is more than 2^32 past its first id. Payloads over 256 MB are
 *   rejected (-1).
 * - es_store_clear resets everything, counters included (appended,
 *   evicted...), and forgets the last id: ids may start again at 1.
 * - Memory: a record is 48 bytes; each event adds 4 bytes to its pid's and
 *   4 to its MFA's posting list (plus chunk slack); send/receive/spawn/exit/
 *   custom events with a link add a 16-byte correlation entry (table kept
 *   <= 75% full). record_bytes/payload_bytes count written memory rounded up
 *   to 4 KB pages per segment; index_bytes counts every index allocation.
 *   Segment memory is reserved with mmap (no copies on growth) and one
 *   evicted segment is kept for reuse outside the accounting.
 * - Byte cap: the oldest segment is evicted while bytes_used would go over
 *   max_bytes; the newest (open) segment never is, so a cap below about one
 *   segment is exceeded by that segment. Keys (pids, MFAs) left without live
 *   events are removed, so many short-lived processes do not grow the store.
 * - Queries: ES_Q_FUNCTION without ES_Q_MODULE (and ES_Q_ARITY without
 *   ES_Q_FUNCTION) is ignored. The index used: the call's pid list between
 *   the call and its link for ES_Q_CALL_ID (when the call is gone, a scan
 *   from that id on), the correlation table for ES_Q_CORRELATION, else the
 *   smaller of the pid list and the MFA lists (a module or module+function
 *   query merges the lists of its MFAs), else a scan of the segments whose
 *   ts range meets since/until. Every filter set is applied to every event.
 *   A NULL callback just counts.
 * - Thread safety: every function may be called from any thread; callbacks
 *   run under the read lock and must not call into the store. */

#endif
