/* CMocka tests of the call-tree builder (c_src/call_tree.c): pairing, nesting, attached
 * events, tail calls, unrecorded ends and the open stack. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "elixir_scope/call_tree.h"
#include "elixir_scope/event.h"

#define NONE_WORD 1 /* what the caller passes for "no tail target" */

/* event `id` of `kind` in call `cid`, module/function words m, f */
static es_ct_event ev(uint64_t id, es_kind kind, uint64_t cid, uint64_t m, uint64_t f) {
    es_ct_event e = {id, cid, m, f, NONE_WORD, NONE_WORD, (uint8_t)kind, 1};
    return e;
}

static es_ct_event tail(uint64_t id, uint64_t cid, uint64_t tm, uint64_t tf) {
    es_ct_event e = ev(id, ES_KIND_TAIL_CALL, cid, 0, 0);
    e.tail_module = tm;
    e.tail_function = tf;
    return e;
}

/* the node indices of a newest-first chain, in time order */
static size_t chain(const es_ct_tree *t, int32_t last, int32_t *out) {
    size_t n = 0;
    for (int32_t i = last; i != ES_CT_NONE; i = t->nodes[i].prev_sibling) n++;
    size_t k = n;
    for (int32_t i = last; i != ES_CT_NONE; i = t->nodes[i].prev_sibling) out[--k] = i;
    return n;
}

static void nests_pairs_and_attaches(void **state) {
    (void)state;
    es_ct_event evs[] = {
        ev(1, ES_KIND_CALL, 1, 7, 8),   ev(2, ES_KIND_LOCAL, 1, 0, 0), ev(3, ES_KIND_CALL, 3, 7, 9),
        ev(4, ES_KIND_RETURN, 3, 0, 0), ev(5, ES_KIND_EXPR, 1, 0, 0),  ev(6, ES_KIND_EXCEPTION, 1, 0, 0),
        ev(7, ES_KIND_SEND, 0, 0, 0),   ev(8, ES_KIND_CALL, 8, 7, 8),
    };
    es_ct_tree t;
    int32_t roots[4], kids[4];
    assert_int_equal(es_ct_build(evs, 8, 1, &t), 1);
    assert_int_equal(t.n_nodes, 3);
    assert_int_equal(chain(&t, t.last_root, roots), 2);
    es_ct_node *outer = &t.nodes[roots[0]], *open = &t.nodes[roots[1]];
    assert_int_equal(outer->call, 0);
    assert_int_equal(outer->exception, 5);
    assert_int_equal(outer->ret, ES_CT_NONE);
    assert_int_equal(outer->status, ES_CT_EXCEPTION);
    assert_int_equal(outer->duration_end, 5);
    /* attached events newest first: expr (4) then local (1) */
    assert_int_equal(outer->last_event, 4);
    assert_int_equal(t.prev_event[4], 1);
    assert_int_equal(t.prev_event[1], ES_CT_NONE);
    assert_int_equal(chain(&t, outer->last_child, kids), 1);
    assert_int_equal(t.nodes[kids[0]].ret, 3);
    assert_int_equal(t.nodes[kids[0]].status, ES_CT_OK);
    /* the call still open at the end */
    assert_int_equal(open->status, ES_CT_OPEN);
    assert_int_equal(open->duration_end, ES_CT_NONE);
    /* children end before their parents */
    assert_int_equal(t.n_finished, 3);
    assert_int_equal(t.finished[0], kids[0]);
    es_ct_free(&t);
}

static void unrecorded_ends_close_at_the_outer_end(void **state) {
    (void)state;
    /* 1 calls 2 calls 3; only 1 returns: 3 and 2 close without an ending */
    es_ct_event evs[] = {ev(1, ES_KIND_CALL, 1, 7, 8), ev(2, ES_KIND_CALL, 2, 7, 8), ev(3, ES_KIND_CALL, 3, 7, 8),
                         ev(4, ES_KIND_RETURN, 1, 0, 0), ev(5, ES_KIND_RETURN, 99, 0, 0)};
    es_ct_tree t;
    int32_t roots[2];
    assert_int_equal(es_ct_build(evs, 5, 1, &t), 1);
    assert_int_equal(chain(&t, t.last_root, roots), 1);
    assert_int_equal(t.nodes[roots[0]].ret, 3);
    assert_int_equal(t.nodes[1].status, ES_CT_OPEN);
    assert_int_equal(t.nodes[2].status, ES_CT_OPEN);
    assert_int_equal(t.nodes[2].prev_sibling, ES_CT_NONE);
    assert_int_equal(t.nodes[1].last_child, 2);
    es_ct_free(&t);
}

static void tail_call_into_instrumented_code_ends_with_its_target(void **state) {
    (void)state;
    /* 1 tail-calls module 7 function 9, which is call 3; 3 returns: both end at 4 */
    es_ct_event evs[] = {ev(1, ES_KIND_CALL, 1, 7, 8), tail(2, 1, 7, 9), ev(3, ES_KIND_CALL, 3, 7, 9),
                         ev(4, ES_KIND_RETURN, 3, 0, 0)};
    es_ct_tree t;
    assert_int_equal(es_ct_build(evs, 4, 1, &t), 1);
    assert_int_equal(t.nodes[0].status, ES_CT_TAIL_CALL);
    assert_int_equal(t.nodes[0].tail_call, 1);
    assert_int_equal(t.nodes[0].ret, 3);
    assert_int_equal(t.nodes[0].duration_end, 3);
    assert_int_equal(t.nodes[0].last_child, 1);
    assert_int_equal(t.nodes[1].status, ES_CT_OK);
    assert_int_equal(t.last_root, 0);
    es_ct_free(&t);
}

static void tail_call_out_of_instrumented_code_ends_at_the_jump(void **state) {
    (void)state;
    /* 1 calls 2, 2 tail-calls (7, 9) but the next event is a call of (7, 8): 2 ends at the jump */
    es_ct_event evs[] = {ev(1, ES_KIND_CALL, 1, 7, 8), ev(2, ES_KIND_CALL, 2, 7, 8), tail(3, 2, 7, 9),
                         ev(4, ES_KIND_CALL, 4, 7, 8)};
    es_ct_tree t;
    int32_t kids[3];
    assert_int_equal(es_ct_build(evs, 4, 1, &t), 1);
    assert_int_equal(t.nodes[1].status, ES_CT_TAIL_CALL);
    assert_int_equal(t.nodes[1].duration_end, 2); /* ended at its tail call */
    assert_int_equal(t.nodes[1].ret, ES_CT_NONE);
    assert_int_equal(chain(&t, t.nodes[0].last_child, kids), 2);
    assert_int_equal(kids[0], 1);
    assert_int_equal(kids[1], 2);
    es_ct_free(&t);
}

static void open_stack_without_closing(void **state) {
    (void)state;
    es_ct_event evs[] = {ev(1, ES_KIND_CALL, 1, 7, 8), ev(2, ES_KIND_CALL, 2, 7, 8), ev(3, ES_KIND_RETURN, 2, 0, 0),
                         ev(4, ES_KIND_CALL, 4, 7, 8), tail(5, 4, 7, 9)};
    es_ct_tree t;
    assert_int_equal(es_ct_build(evs, 5, 0, &t), 1);
    /* the pending tail call stays open: no event came after it */
    assert_int_equal(t.depth, 2);
    assert_int_equal(t.nodes[t.stack[0]].call, 0);
    assert_int_equal(t.nodes[t.stack[1]].call, 3);
    es_ct_free(&t);
}

static void empty_input_and_call_ids_that_name_no_call(void **state) {
    (void)state;
    es_ct_tree t;
    assert_int_equal(es_ct_build(NULL, 0, 1, &t), 1);
    assert_int_equal(t.n_nodes, 0);
    assert_int_equal(t.last_root, ES_CT_NONE);
    es_ct_free(&t);
    /* call 0 (an id of 0 is read as given): a local naming 0 belongs to no call, a return
       naming 0 ends it; a return whose call id is no integer ends nothing */
    es_ct_event evs[] = {ev(0, ES_KIND_CALL, 0, 7, 8), ev(1, ES_KIND_LOCAL, 0, 0, 0), ev(2, ES_KIND_RETURN, 0, 0, 0),
                         ev(3, ES_KIND_CALL, 3, 7, 8), ev(4, ES_KIND_RETURN, 3, 0, 0), ev(5, 200, 3, 0, 0)};
    evs[4].has_call_id = 0;
    assert_int_equal(es_ct_build(evs, 6, 1, &t), 1);
    assert_int_equal(t.nodes[0].last_event, ES_CT_NONE);
    assert_int_equal(t.nodes[0].ret, 2);
    assert_int_equal(t.nodes[1].status, ES_CT_OPEN);
    assert_int_equal(t.nodes[1].ret, ES_CT_NONE);
    /* a kind the builder does not know is an event of its call */
    assert_int_equal(t.nodes[1].last_event, 5);
    es_ct_free(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nests_pairs_and_attaches),
        cmocka_unit_test(unrecorded_ends_close_at_the_outer_end),
        cmocka_unit_test(tail_call_into_instrumented_code_ends_with_its_target),
        cmocka_unit_test(tail_call_out_of_instrumented_code_ends_at_the_jump),
        cmocka_unit_test(open_stack_without_closing),
        cmocka_unit_test(empty_input_and_call_ids_that_name_no_call),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
