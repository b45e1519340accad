/* Call trees from one process's events: pairs each :call with its :return,
 * :exception or :tail_call (by call id), nests calls and attaches the events of a
 * call (locals, expressions, state, ...). Pure C: the words of es_ct_event are
 * compared, never interpreted. The rules are those of ElixirScope.Storage.EventCorrelator
 * (its moduledoc): a frame that ended in a tail call stays open until the call it
 * jumped to ends, unless the next event is not a :call of the jump's target. */
#ifndef ELIXIR_SCOPE_CALL_TREE_H
#define ELIXIR_SCOPE_CALL_TREE_H

#include <stddef.h>
#include <stdint.h>

typedef struct es_ct_event {
    uint64_t id;
    uint64_t call_id;       /* with has_call_id; an event of a call names a call_id > 0 */
    uint64_t module;        /* words compared with a tail call's target */
    uint64_t function;
    uint64_t tail_module;   /* for a :tail_call, the target's words (or the caller's "none" word) */
    uint64_t tail_function;
    uint8_t kind;           /* es_kind; any other value: an event of its call (if any) */
    uint8_t has_call_id;    /* 0: its call id names no call (not an integer) */
} es_ct_event;

typedef enum es_ct_status { ES_CT_OPEN = 0, ES_CT_OK, ES_CT_EXCEPTION, ES_CT_TAIL_CALL } es_ct_status;

#define ES_CT_NONE (-1)

/* One call. Lists are chained newest first (walk them and prepend to get time order). */
typedef struct es_ct_node {
    int32_t call;           /* event index of the :call */
    int32_t ret, exception, tail_call; /* event indices, or ES_CT_NONE */
    int32_t last_child;     /* node index of the newest child, or ES_CT_NONE */
    int32_t prev_sibling;   /* node index of the previous sibling (or previous root) */
    int32_t last_event;     /* event index of the newest attached event */
    int32_t duration_end;   /* the event whose ts ends its duration (its ending, else its tail
                               call), or ES_CT_NONE: open */
    uint8_t status;         /* es_ct_status */
    uint8_t tail_pending;   /* building only: waiting for the event after the tail call */
} es_ct_node;

typedef struct es_ct_tree {
    es_ct_node *nodes;      /* one per :call, in call order */
    size_t n_nodes;
    int32_t *finished;      /* node indices in the order they ended: children before parents */
    size_t n_finished;
    int32_t *prev_event;    /* per event: the attached event before it in its call, or ES_CT_NONE */
    int32_t last_root;      /* node index of the newest root, or ES_CT_NONE */
    int32_t *stack;         /* node indices of the calls open after the last event, outermost first */
    size_t depth;
} es_ct_tree;

/* Builds the tree of `n` events (one process's, in id order; n < 2^31).
 * `close_open`: close the calls still open at the end (as roots or children, status open);
 * otherwise they stay on `stack`. Returns 1, or 0 when out of memory (out is then freed). */
int es_ct_build(const es_ct_event *evs, size_t n, int close_open, es_ct_tree *out);

void es_ct_free(es_ct_tree *tree);

#endif
