/* Call trees from one process's events: see include/elixir_scope/call_tree.h. */
#include "elixir_scope/call_tree.h"

#include <stdlib.h>
#include <string.h>

#include "elixir_scope/event.h"

typedef struct builder {
    const es_ct_event *evs;
    es_ct_tree *t;
} builder;

static int32_t top(const builder *b) { return b->t->depth ? b->t->stack[b->t->depth - 1] : ES_CT_NONE; }

/* the stack position of the open call with this id, or -1 (searched from the top: it is
   usually there) */
static long find_open(const builder *b, uint64_t call_id) {
    for (size_t i = b->t->depth; i-- > 0;)
        if (b->evs[b->t->nodes[b->t->stack[i]].call].id == call_id) return (long)i;
    return -1;
}

/* Ends the top frame with `ending` (an event index, or ES_CT_NONE: its end was not
   recorded) and hangs it under the frame below, or among the roots. */
static void finish_top(builder *b, int32_t ending) {
    es_ct_tree *t = b->t;
    int32_t ni = t->stack[--t->depth];
    es_ct_node *node = &t->nodes[ni];
    int tail = node->status == ES_CT_TAIL_CALL;
    node->tail_pending = 0;
    if (ending == ES_CT_NONE) {
        node->status = tail ? ES_CT_TAIL_CALL : ES_CT_OPEN;
        node->duration_end = node->tail_call;
    } else {
        if (b->evs[ending].kind == ES_KIND_RETURN) {
            node->ret = ending;
            node->status = tail ? ES_CT_TAIL_CALL : ES_CT_OK;
        } else {
            node->exception = ending;
            node->status = tail ? ES_CT_TAIL_CALL : ES_CT_EXCEPTION;
        }
        node->duration_end = ending;
    }
    t->finished[t->n_finished++] = ni;
    if (t->depth) {
        es_ct_node *parent = &t->nodes[top(b)];
        node->prev_sibling = parent->last_child;
        parent->last_child = ni;
    } else {
        node->prev_sibling = t->last_root;
        t->last_root = ni;
    }
}

/* frames below that were waiting on a tail call end with the same ending */
static void close_tail_waiters(builder *b, int32_t ending) {
    while (b->t->depth && b->t->nodes[top(b)].status == ES_CT_TAIL_CALL) finish_top(b, ending);
}

/* The event right after a :tail_call tells whether the jump landed in instrumented code: a
   :call of the target nests under the waiting frame; anything else means the target is not
   instrumented, so the waiting frame (and those waiting on it) end there. */
static void settle_tail(builder *b, const es_ct_event *e) {
    int32_t ti = top(b);
    if (ti == ES_CT_NONE || !b->t->nodes[ti].tail_pending) return;
    const es_ct_event *tail = &b->evs[b->t->nodes[ti].tail_call];
    if (e->kind == ES_KIND_CALL && e->module == tail->tail_module && e->function == tail->tail_function) {
        b->t->nodes[ti].tail_pending = 0;
    } else {
        finish_top(b, ES_CT_NONE);
        close_tail_waiters(b, ES_CT_NONE);
    }
}

static void step(builder *b, int32_t i) {
    const es_ct_event *e = &b->evs[i];
    es_ct_tree *t = b->t;
    long at;
    if (e->kind == ES_KIND_CALL) {
        int32_t ni = (int32_t)t->n_nodes++;
        es_ct_node *node = &t->nodes[ni];
        memset(node, 0, sizeof *node);
        node->call = i;
        node->ret = node->exception = node->tail_call = ES_CT_NONE;
        node->last_child = node->prev_sibling = node->last_event = node->duration_end = ES_CT_NONE;
        t->stack[t->depth++] = ni;
        return;
    }
    /* an ending names its call by any integer; an event of a call by one above 0 */
    int ending = e->kind == ES_KIND_TAIL_CALL || e->kind == ES_KIND_RETURN || e->kind == ES_KIND_EXCEPTION;
    if (!e->has_call_id || (!ending && e->call_id == 0) || (at = find_open(b, e->call_id)) < 0) return;
    es_ct_node *node = &t->nodes[t->stack[at]];
    switch (e->kind) {
    case ES_KIND_TAIL_CALL:
        node->tail_call = i;
        node->status = ES_CT_TAIL_CALL;
        node->tail_pending = 1;
        break;
    case ES_KIND_RETURN:
    case ES_KIND_EXCEPTION:
        /* frames above it ended without an event (their end was not recorded) */
        while (t->depth > (size_t)at + 1) finish_top(b, ES_CT_NONE);
        finish_top(b, i);
        close_tail_waiters(b, i);
        break;
    default:
        t->prev_event[i] = node->last_event;
        node->last_event = i;
    }
}

void es_ct_free(es_ct_tree *t) {
    free(t->nodes);
    free(t->finished);
    free(t->prev_event);
    free(t->stack);
    memset(t, 0, sizeof *t);
}

int es_ct_build(const es_ct_event *evs, size_t n, int close_open, es_ct_tree *out) {
    size_t calls = 0;
    builder b = {evs, out};
    memset(out, 0, sizeof *out);
    out->last_root = ES_CT_NONE;
    if (n > INT32_MAX) return 0;
    for (size_t i = 0; i < n; i++) calls += evs[i].kind == ES_KIND_CALL;
    /* at least one element each: malloc(0) may answer NULL */
    out->nodes = malloc((calls + 1) * sizeof *out->nodes);
    out->finished = malloc((calls + 1) * sizeof *out->finished);
    out->stack = malloc((calls + 1) * sizeof *out->stack);
    out->prev_event = malloc((n + 1) * sizeof *out->prev_event);
    if (!out->nodes || !out->finished || !out->stack || !out->prev_event) {
        es_ct_free(out);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        out->prev_event[i] = ES_CT_NONE;
        settle_tail(&b, &evs[i]);
        step(&b, (int32_t)i);
    }
    if (close_open)
        while (out->depth) finish_top(&b, ES_CT_NONE);
    return 1;
}
