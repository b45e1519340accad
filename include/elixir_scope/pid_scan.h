/* Which processes recorded events since a given id: the distinct pid words of
 * the store's events after `after_id`, each with the timestamp of its first
 * event there. The session's lifecycle observer calls it after every drain to
 * find processes it has not seen yet. Pure C (the store's public query API). */
#ifndef ELIXIR_SCOPE_PID_SCAN_H
#define ELIXIR_SCOPE_PID_SCAN_H

#include <stddef.h>
#include <stdint.h>
#include "elixir_scope/event_store.h"

typedef struct es_pid_seen {
    uint64_t pid;      /* the term word of the process */
    uint64_t first_ts; /* ts of its first event in the scanned range */
    uint64_t last_ts;  /* ts of its last event in the scanned range */
} es_pid_seen;

/* Scans the events with id > after_id in id order (except :spawn and :exit events, which the
 * lifecycle observer records on other processes' behalf) and writes each distinct
 * pid once into out (at most max, max >= 1), in order of first appearance.
 * Stops before the first event whose pid would be the (max+1)-th, so that a
 * later scan from *last_id goes on where this one stopped. *last_id is the id
 * of the last event scanned (after_id when there was none). Returns how many
 * pids were written, or -1 when out of memory. */
int es_pid_scan(es_store *store, uint64_t after_id, es_pid_seen *out, size_t max, uint64_t *last_id);

/* The same answer, always by reading every event after after_id (es_pid_scan reads the pid index
 * instead while processes are few; the tests compare the two). */
int es_pid_scan_events(es_store *store, uint64_t after_id, es_pid_seen *out, size_t max, uint64_t *last_id);

#endif
