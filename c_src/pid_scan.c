/* Distinct pids of the store's newest events (see include/elixir_scope/pid_scan.h).
 * While few processes record many events, each process's new events are found from the store's
 * pid index (es_store_pid_spans), without reading the events between. Otherwise the events are
 * read: an open-addressing set of pid words (0 never is a pid word: it marks a free slot) indexes
 * the output array, so each event costs one probe. */
#include "elixir_scope/pid_scan.h"

#include <stdlib.h>

typedef struct scan_ctx {
    es_pid_seen *out;
    size_t max, n;
    uint32_t *slots; /* index into out + 1; 0 = free */
    size_t mask;
    uint64_t last_id;
} scan_ctx;

static size_t slot_of(uint64_t w, size_t mask) { return (size_t)((w * 0x9E3779B97F4A7C15ull) >> 17) & mask; }

static int scan_cb(void *ctxp, const es_event_view *ev) {
    scan_ctx *c = ctxp;
    uint64_t w = ev->head.pid;
    if (w) {
        size_t i = slot_of(w, c->mask);
        while (c->slots[i] && c->out[c->slots[i] - 1].pid != w) i = (i + 1) & c->mask;
        if (!c->slots[i]) {
            if (c->n == c->max) return 1; /* a new pid with no room: stop before its event */
            c->out[c->n].pid = w;
            c->out[c->n].first_ts = ev->head.ts;
            c->slots[i] = (uint32_t)(++c->n);
        }
        c->out[c->slots[i] - 1].last_ts = ev->head.ts;
    }
    c->last_id = ev->head.id;
    return 0;
}

/* lifecycle events are recorded on other processes' behalf: they make no process seen */
#define SEEN_KINDS (((1u << ES_KIND__COUNT) - 1) & ~((1u << ES_KIND_SPAWN) | (1u << ES_KIND_EXIT)))

static int by_first_id(const void *a, const void *b) {
    uint64_t x = ((const es_pid_span *)a)->first_id, y = ((const es_pid_span *)b)->first_id;
    return x < y ? -1 : x > y;
}

/* From the pid index: 1 done, 0 the events are to be read instead, -1 out of memory. */
static int scan_spans(es_store *store, uint64_t after_id, es_pid_seen *out, size_t max, uint64_t *last_id, int *n) {
    es_pid_span *spans = malloc(max * sizeof *spans);
    if (!spans) return -1;
    uint64_t last;
    int k = es_store_pid_spans(store, after_id, SEEN_KINDS, spans, max, &last);
    if (k >= 0) {
        qsort(spans, (size_t)k, sizeof *spans, by_first_id); /* in order of first appearance */
        for (int i = 0; i < k; i++) out[i] = (es_pid_seen){spans[i].pid, spans[i].first_ts, spans[i].last_ts};
        *last_id = last;
        *n = k;
    }
    free(spans);
    return k >= 0;
}

int es_pid_scan(es_store *store, uint64_t after_id, es_pid_seen *out, size_t max, uint64_t *last_id) {
    int n, r;
    if (max == 0 || max > UINT32_MAX / 4) return -1;
    if ((r = scan_spans(store, after_id, out, max, last_id, &n)) != 0) return r < 0 ? -1 : n;
    return es_pid_scan_events(store, after_id, out, max, last_id);
}

int es_pid_scan_events(es_store *store, uint64_t after_id, es_pid_seen *out, size_t max, uint64_t *last_id) {
    scan_ctx c = {out, max, 0, NULL, 0, after_id};
    size_t nslots = 16;
    es_query q = {0};
    if (max == 0 || max > UINT32_MAX / 4) return -1;
    while (nslots < max * 2) nslots *= 2; /* at most half full: short probes */
    c.slots = calloc(nslots, sizeof *c.slots);
    if (!c.slots) return -1;
    c.mask = nslots - 1;
    q.fields = ES_Q_AFTER_ID | ES_Q_KINDS;
    q.after_id = after_id;
    q.kinds_mask = SEEN_KINDS;
    es_store_query(store, &q, scan_cb, &c);
    free(c.slots);
    *last_id = c.last_id;
    return (int)c.n;
}
