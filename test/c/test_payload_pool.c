/* CMocka tests of the lock-free payload block pool (c_src/payload_pool.c) on its own;
 * the ring's use of it is tested in test_ring_buffer.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "elixir_scope/payload_pool.h"

static void test_classes_and_reuse(void **state) {
    (void)state;
    es_pool *pool = es_pool_create(1 << 20);
    assert_non_null(pool);
    assert_int_equal(es_pool_carved_bytes(pool), 0);
    uint8_t *a = es_pool_alloc(pool, 169);
    assert_non_null(a);
    assert_true(es_pool_owns(pool, a));
    memset(a, 0xab, 169);
    assert_int_equal(es_pool_carved_bytes(pool), 256);
    uint8_t *b = es_pool_alloc(pool, 257); /* the next class: 512 */
    assert_non_null(b);
    memset(b, 0xcd, 257);
    assert_int_equal(es_pool_carved_bytes(pool), 256 + 512);
    assert_true(b >= a + 256 || a >= b + 512); /* no overlap */
    uint8_t *c = es_pool_alloc(pool, ES_POOL_MAX_BLOCK);
    assert_non_null(c);
    memset(c, 0xef, ES_POOL_MAX_BLOCK);
    assert_int_equal(es_pool_carved_bytes(pool), 256 + 512 + ES_POOL_MAX_BLOCK);
    assert_null(es_pool_alloc(pool, ES_POOL_MAX_BLOCK + 1)); /* over the largest class: the caller mallocs */

    /* a freed block is handed out again for any length of its class, nothing more is carved */
    es_pool_free(pool, a, 169);
    assert_ptr_equal(es_pool_alloc(pool, 256), a);
    es_pool_free(pool, b, 257);
    assert_ptr_equal(es_pool_alloc(pool, 512), b);
    assert_int_equal(es_pool_carved_bytes(pool), 256 + 512 + ES_POOL_MAX_BLOCK);
    /* free lists are per class: a freed 256 block does not serve a 512 request */
    es_pool_free(pool, a, 256);
    uint8_t *d = es_pool_alloc(pool, 300);
    assert_ptr_not_equal(d, a);
    assert_int_equal(es_pool_carved_bytes(pool), 256 + 2 * 512 + ES_POOL_MAX_BLOCK);

    uint8_t outside[8];
    assert_false(es_pool_owns(pool, outside));
    assert_false(es_pool_owns(pool, NULL));
    es_pool_destroy(pool); /* blocks still out go with the mapping */
    es_pool_destroy(NULL);
}

static void test_limit_and_exhaustion(void **state) {
    (void)state;
    es_pool *pool = es_pool_create(1 << 20);
    es_pool_set_limit(pool, 1024 + 100); /* room for four 256 blocks */
    uint8_t *got[4];
    for (int i = 0; i < 4; i++) assert_non_null(got[i] = es_pool_alloc(pool, 200));
    assert_null(es_pool_alloc(pool, 200));
    assert_null(es_pool_alloc(pool, 1000)); /* nothing left to carve for any class */
    es_pool_free(pool, got[2], 200);
    assert_ptr_equal(es_pool_alloc(pool, 180), got[2]);
    assert_null(es_pool_alloc(pool, 200));
    assert_int_equal(es_pool_carved_bytes(pool), 1024);
    es_pool_set_limit(pool, UINT64_MAX); /* never above the reservation */
    for (int i = 0; i < 4; i++) es_pool_free(pool, got[i], 200);
    es_pool_destroy(pool);

    /* a tiny reservation still holds one block of the largest class */
    pool = es_pool_create(10);
    assert_non_null(pool);
    uint8_t *big = es_pool_alloc(pool, ES_POOL_MAX_BLOCK);
    assert_non_null(big);
    assert_null(es_pool_alloc(pool, 1));
    es_pool_free(pool, big, ES_POOL_MAX_BLOCK);
    assert_ptr_equal(es_pool_alloc(pool, ES_POOL_MAX_BLOCK), big);
    es_pool_destroy(pool);
}

static void test_batch_release(void **state) {
    (void)state;
    es_pool *pool = es_pool_create(1 << 20);
    es_pool_batch batch = {{0}, {0}};
    uint8_t *small[3], *big[2];
    for (int i = 0; i < 3; i++) small[i] = es_pool_alloc(pool, 200);
    for (int i = 0; i < 2; i++) big[i] = es_pool_alloc(pool, 3000);
    uint64_t carved = es_pool_carved_bytes(pool);
    assert_int_equal(carved, 3 * 256 + 2 * 4096);
    for (int i = 0; i < 3; i++) es_pool_batch_add(pool, &batch, small[i], 200);
    for (int i = 0; i < 2; i++) es_pool_batch_add(pool, &batch, big[i], 3000);
    /* not free until released: a request carves */
    uint8_t *extra = es_pool_alloc(pool, 200);
    assert_int_equal(es_pool_carved_bytes(pool), carved + 256);
    es_pool_batch_release(pool, &batch);
    for (unsigned k = 0; k < ES_POOL_CLASSES; k++) assert_int_equal(batch.first[k], 0);
    es_pool_batch_release(pool, &batch); /* empty: nothing happens */
    /* every block comes back once, then the pool carves again */
    int seen_small = 0, seen_big = 0;
    for (int i = 0; i < 3; i++) {
        uint8_t *p = es_pool_alloc(pool, 256);
        for (int j = 0; j < 3; j++) seen_small += p == small[j];
    }
    for (int i = 0; i < 2; i++) {
        uint8_t *p = es_pool_alloc(pool, 4096);
        for (int j = 0; j < 2; j++) seen_big += p == big[j];
    }
    assert_int_equal(seen_small, 3);
    assert_int_equal(seen_big, 2);
    assert_int_equal(es_pool_carved_bytes(pool), carved + 256);
    assert_non_null(es_pool_alloc(pool, 256));
    assert_int_equal(es_pool_carved_bytes(pool), carved + 512);
    (void)extra;
    es_pool_destroy(pool);
}

/* Threads take and give back blocks as fast as they can (odd threads in batches, as the drain
 * does), each stamping its blocks and checking the stamp is intact before giving them back: a
 * block handed to two holders at once (an ABA slip in the free list) shows as a torn stamp. */
#define POOL_THREADS 4
#define POOL_ROUNDS 20000
#define HELD 8

typedef struct churn {
    es_pool *pool;
    int index;
    _Atomic int *errors;
    _Atomic int *exhausted;
    _Atomic int *started;
} churn;

static uint32_t churn_len(unsigned i) {
    static const uint32_t lens[] = {169, 256, 300, 700, 2000, 4096, 8000};
    return lens[i % (sizeof lens / sizeof lens[0])];
}

static void *churn_thread(void *p) {
    churn *c = p;
    uint8_t *held[HELD] = {0};
    uint32_t lens[HELD] = {0};
    es_pool_batch batch = {{0}, {0}};
    for (unsigned r = 0; r < POOL_ROUNDS; r++) {
        unsigned k = r % HELD;
        if (held[k]) {
            uint8_t stamp = (uint8_t)(c->index * 31 + k);
            for (uint32_t j = 0; j < lens[k]; j++)
                if (held[k][j] != stamp) {
                    atomic_fetch_add(c->errors, 1);
                    break;
                }
            if (c->index & 1) es_pool_batch_add(c->pool, &batch, held[k], lens[k]);
            else es_pool_free(c->pool, held[k], lens[k]);
            held[k] = NULL;
        }
        if (k == HELD - 1) es_pool_batch_release(c->pool, &batch);
        lens[k] = churn_len(r * 3 + (unsigned)c->index); /* every thread cycles through every class */
        held[k] = es_pool_alloc(c->pool, lens[k]);
        if (!held[k]) {
            atomic_fetch_add(c->exhausted, 1);
            continue;
        }
        memset(held[k], (uint8_t)(c->index * 31 + k), lens[k]);
        if ((r & 63) == 0) sched_yield();
    }
    es_pool_batch_release(c->pool, &batch);
    for (unsigned k = 0; k < HELD; k++)
        if (held[k]) es_pool_free(c->pool, held[k], lens[k]);
    return NULL;
}

static void test_concurrent_churn(void **state) {
    (void)state;
    /* room for every thread's HELD blocks of every class: nothing may run out */
    es_pool *pool = es_pool_create((uint64_t)POOL_THREADS * HELD * 7 * ES_POOL_MAX_BLOCK);
    _Atomic int errors = 0, exhausted = 0;
    pthread_t t[POOL_THREADS];
    churn args[POOL_THREADS];
    for (int i = 0; i < POOL_THREADS; i++) {
        args[i] = (churn){pool, i, &errors, &exhausted, NULL};
        assert_int_equal(pthread_create(&t[i], NULL, churn_thread, &args[i]), 0);
    }
    for (int i = 0; i < POOL_THREADS; i++) pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&errors), 0);
    assert_int_equal(atomic_load(&exhausted), 0);
    /* blocks were reused, not carved anew: per class, at most what could be out at once (a thread
     * holds HELD blocks, and as many in its batch) */
    assert_true(es_pool_carved_bytes(pool) <= (uint64_t)POOL_THREADS * 2 * HELD * (256 + 512 + 1024 + 2048 + 4096 + 8192));
    es_pool_destroy(pool);
}

/* All threads on one class's free list, holding two blocks at a time, with no pause: the shape in
 * which a pop that read a stale successor (ABA) would hand one block to two threads. */
#define CONTENDED_ROUNDS 500000

static void *contend_thread(void *p) {
    churn *c = p;
    uint8_t stamp = (uint8_t)(c->index + 1);
    atomic_fetch_add(c->started, 1);
    while (atomic_load(c->started) < POOL_THREADS) sched_yield(); /* all at once */
    for (unsigned r = 0; r < CONTENDED_ROUNDS; r++) {
        uint8_t *a = es_pool_alloc(c->pool, 64), *b = es_pool_alloc(c->pool, 64);
        if (!a || !b) {
            atomic_fetch_add(c->exhausted, 1);
            if (a) es_pool_free(c->pool, a, 64);
            if (b) es_pool_free(c->pool, b, 64);
            continue;
        }
        memset(a, stamp, 64);
        memset(b, stamp, 64);
        if (a[0] != stamp || a[63] != stamp || b[0] != stamp || b[63] != stamp || a == b)
            atomic_fetch_add(c->errors, 1);
        es_pool_free(c->pool, a, 64);
        es_pool_free(c->pool, b, 64);
    }
    return NULL;
}

static void test_contended_free_list(void **state) {
    (void)state;
    es_pool *pool = es_pool_create(1 << 16);
    _Atomic int errors = 0, exhausted = 0, started = 0;
    pthread_t t[POOL_THREADS];
    churn args[POOL_THREADS];
    for (int i = 0; i < POOL_THREADS; i++) {
        args[i] = (churn){pool, i, &errors, &exhausted, &started};
        assert_int_equal(pthread_create(&t[i], NULL, contend_thread, &args[i]), 0);
    }
    for (int i = 0; i < POOL_THREADS; i++) pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&errors), 0);
    assert_int_equal(atomic_load(&exhausted), 0);
    assert_true(es_pool_carved_bytes(pool) <= POOL_THREADS * 2 * 256);
    es_pool_destroy(pool);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes_and_reuse),
        cmocka_unit_test(test_limit_and_exhaustion),
        cmocka_unit_test(test_batch_release),
        cmocka_unit_test(test_concurrent_churn),
        cmocka_unit_test(test_contended_free_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
