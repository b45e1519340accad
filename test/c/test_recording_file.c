/* CMocka tests of recording files, version 3 (c_src/recording_file.c): a store written and read
 * back is the same store, and no corrupt file is believed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elixir_scope/recording_file.h"

/* Fake VM words: pids 0x1000 + n, atoms 0x2000 + n. Their ETF: a pid of node 'n@h', an atom "aN". */
#define PID(n) (0x1000u + (n))
#define ATOM(n) (0x2000u + (n))

static int word_etf(void *ctx, uint64_t word, es_buf *out) {
    uint8_t b[32];
    size_t n = 0;
    (void)ctx;
    b[n++] = 131;
    if (word >= 0x2000) {
        int len = snprintf((char *)b + 3, sizeof b - 3, "a%u", (unsigned)(word - 0x2000));
        b[n++] = 119;
        b[n++] = (uint8_t)len;
        n += (size_t)len;
    } else {
        b[n++] = 88;
        b[n++] = 119;
        b[n++] = 3;
        memcpy(b + n, "n@h", 3);
        n += 3;
        uint32_t id = (uint32_t)word;
        uint8_t rest[12] = {(uint8_t)(id >> 24), (uint8_t)(id >> 16), (uint8_t)(id >> 8), (uint8_t)id, 0, 0, 0, 0, 0, 0, 0, 1};
        memcpy(b + n, rest, 12);
        n += 12;
    }
    return es_buf_put(out, b, n);
}

/* {ok, I} with an atom "ok" (SMALL_ATOM_UTF8) and a 32-bit integer */
static size_t payload(uint8_t *b, uint32_t i) {
    uint8_t p[] = {131, 104, 2, 119, 2, 'o', 'k', 98, (uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
    memcpy(b, p, sizeof p);
    return sizeof p;
}

/* n events over 5 processes and 3 modules; every 7th without a payload */
static es_store *make_store(uint32_t n) {
    es_store *s = es_store_create(NULL);
    assert_non_null(s);
    for (uint32_t i = 1; i <= n; i++) {
        es_event_head h = {.id = i * 2, .ts = 1000 + i, .pid = PID(i % 5), .module = ATOM(i % 3), .function = ATOM(10 + i % 4),
                           .call_id = i, .link = i % 3 ? 0 : i + 1, .line = i % 100, .kind = (uint8_t)(i % ES_KIND__COUNT),
                           .arity = (uint8_t)(i % 4), .flags = (uint16_t)(i % 4)};
        uint8_t b[32];
        size_t len = i % 7 ? payload(b, i) : 0;
        assert_int_equal(es_store_append(s, &h, len ? b : NULL, (uint32_t)len), 0);
    }
    return s;
}

/* the whole file of a store, in memory */
static uint8_t *write_file(es_store *s, size_t *len, uint64_t *count) {
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    assert_non_null(f);
    es_recw *w = es_recw_new(f, word_etf, NULL);
    assert_non_null(w);
    es_query q = {0};
    es_store_query(s, &q, es_recw_add, w);
    assert_int_equal(es_recw_end(w, (const uint8_t *)"meta!", 5), 0);
    assert_null(es_recw_error(w));
    *count = es_recw_count(w);
    es_recw_free(w);
    fclose(f);
    return (uint8_t *)buf;
}

/* loads bytes into a fresh store: 0 or -1, the store and reader returned for inspection */
static int load_bytes(const uint8_t *bytes, size_t len, es_recr **rp, es_store **sp) {
    FILE *f = fmemopen((void *)bytes, len ? len : 1, "rb");
    assert_non_null(f);
    *rp = es_recr_new();
    *sp = es_store_create(NULL);
    int rc = es_recr_load(*rp, f, len, *sp);
    fclose(f);
    return rc;
}

/* load_bytes, its reader and store freed: 0 or -1 */
static int loads(const uint8_t *bytes, size_t len) {
    es_recr *r;
    es_store *t;
    int rc = load_bytes(bytes, len, &r, &t);
    if (rc) assert_true(strlen(es_recr_error(r)) > 0);
    es_recr_free(r);
    es_store_destroy(t);
    return rc;
}

typedef struct views {
    es_event_view v[4096];
    uint8_t payloads[4096][32];
    size_t n;
} views;

static int collect(void *ctx, const es_event_view *ev) {
    views *vs = ctx;
    vs->v[vs->n] = *ev;
    if (ev->payload_len) memcpy(vs->payloads[vs->n], ev->payload, ev->payload_len);
    vs->n++;
    return 0;
}

static void test_round_trip(void **state) {
    (void)state;
    es_store *s = make_store(3000);
    size_t len;
    uint64_t count;
    uint8_t *bytes = write_file(s, &len, &count);
    assert_int_equal(count, 3000);
    es_recr *r;
    es_store *t;
    assert_int_equal(load_bytes(bytes, len, &r, &t), 0);
    assert_int_equal(es_recr_count(r), 3000);
    uint32_t mlen;
    assert_memory_equal(es_recr_meta(r, &mlen), "meta!", 5);
    assert_int_equal(mlen, 5);

    static views a, b;
    a.n = b.n = 0;
    es_query q = {0};
    es_store_query(s, &q, collect, &a);
    es_store_query(t, &q, collect, &b);
    assert_int_equal(a.n, 3000);
    assert_int_equal(b.n, 3000);
    for (size_t i = 0; i < a.n; i++) {
        es_event_head *x = &a.v[i].head, *y = &b.v[i].head;
        assert_int_equal(x->id, y->id);
        assert_int_equal(x->ts, y->ts);
        assert_int_equal(x->call_id, y->call_id);
        assert_int_equal(x->link, y->link);
        assert_int_equal(x->line, y->line);
        assert_int_equal(x->kind, y->kind);
        assert_int_equal(x->arity, y->arity);
        assert_int_equal(x->flags, y->flags);
        assert_int_equal(a.v[i].payload_len, b.v[i].payload_len);
        assert_memory_equal(a.payloads[i], b.payloads[i], a.v[i].payload_len);
        /* the loaded store holds word numbers: their ETF is the original word's */
        uint64_t words[3][2] = {{x->pid, y->pid}, {x->module, y->module}, {x->function, y->function}};
        for (int k = 0; k < 3; k++) {
            es_buf e;
            uint32_t wl;
            es_buf_init(&e, NULL, 0);
            assert_int_equal(word_etf(NULL, words[k][0], &e), 0);
            const uint8_t *w = es_recr_word(r, (uint32_t)words[k][1], &wl);
            assert_int_equal(wl, e.len);
            assert_memory_equal(w, e.data, wl);
            es_buf_free(&e);
        }
    }
    /* atoms: "ok", the node, the modules and functions; no exports */
    int seen_ok = 0, seen_node = 0;
    for (uint32_t i = 0; i < es_recr_atoms(r); i++) {
        uint32_t l;
        const uint8_t *p = es_recr_atom(r, i, &l);
        seen_ok |= l == 2 && !memcmp(p, "ok", 2);
        seen_node |= l == 3 && !memcmp(p, "n@h", 3);
    }
    assert_true(seen_ok && seen_node);
    assert_int_equal(es_recr_atoms(r), 2 + 3 + 4);
    assert_int_equal(es_recr_words(r), 5 + 3 + 4);
    assert_int_equal(es_recr_exports(r), 0);
    es_recr_free(r);
    es_store_destroy(t);
    es_store_destroy(s);
    free(bytes);
}

/* a file must end with its trailer: every shorter prefix is refused */
static void test_every_cut_refused(void **state) {
    (void)state;
    es_store *s = make_store(40);
    size_t len;
    uint64_t count;
    uint8_t *bytes = write_file(s, &len, &count);
    for (size_t cut = 0; cut < len; cut++) assert_int_equal(loads(bytes, cut), -1);
    es_store_destroy(s);
    free(bytes);
}

/* every byte flipped anywhere is refused (checksums, sizes, tags, the trailer) */
static void test_every_flip_refused(void **state) {
    (void)state;
    es_store *s = make_store(40);
    size_t len;
    uint64_t count;
    uint8_t *bytes = write_file(s, &len, &count);
    for (size_t pos = 0; pos < len; pos++) {
        bytes[pos] ^= 0x41;
        if (loads(bytes, len) != -1) fail_msg("a flip at byte %zu was not noticed", pos);
        bytes[pos] ^= 0x41;
    }
    es_store_destroy(s);
    free(bytes);
}

static void put32le(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void expect_error(const uint8_t *bytes, size_t len, const char *what) {
    es_recr *r;
    es_store *t;
    assert_int_equal(load_bytes(bytes, len, &r, &t), -1);
    if (!strstr(es_recr_error(r), what)) fail_msg("expected \"%s\", got \"%s\"", what, es_recr_error(r));
    assert_non_null(strstr(es_recr_error(r), "at byte"));
    es_recr_free(r);
    es_store_destroy(t);
}

static void test_absurd_counts_and_sizes(void **state) {
    (void)state;
    es_store *s = make_store(40);
    size_t len;
    uint64_t count;
    uint8_t *bytes = write_file(s, &len, &count);
    uint8_t *c = malloc(len);
    /* the segment header follows magic and version: "S", n, words, payloads, crc */
    assert_int_equal(bytes[13], 'S');
    memcpy(c, bytes, len);
    put32le(c + 14, 0xFFFFFFFFu);
    expect_error(c, len, "too many");
    memcpy(c, bytes, len);
    put32le(c + 14, 0);
    expect_error(c, len, "no events");
    memcpy(c, bytes, len);
    put32le(c + 18, 0xFFFFFFF0u);
    expect_error(c, len, "needs more bytes");
    memcpy(c, bytes, len);
    put32le(c + 22, 0x7FFFFFFFu);
    expect_error(c, len, "needs more bytes");
    memcpy(c, bytes, len);
    c[12] = 2;
    expect_error(c, len, "not a version 3 recording");
    free(c);
    es_store_destroy(s);
    free(bytes);
}

/* a store that holds what no writer of ElixirScope makes (a payload that is not ETF): the file
 * is written, its checksums are right, and the reader still refuses it */
static void test_checksummed_lies_refused(void **state) {
    (void)state;
    es_store *s = es_store_create(NULL);
    es_event_head h = {.id = 1, .pid = PID(1), .kind = ES_KIND_CUSTOM};
    uint8_t bad[] = {131, 108, 0, 0, 0, 200, 106}; /* a list of 200 elements in 7 bytes */
    assert_int_equal(es_store_append(s, &h, bad, sizeof bad), 0);
    size_t len;
    uint64_t count;
    uint8_t *bytes = write_file(s, &len, &count);
    expect_error(bytes, len, "not well-formed ETF");
    free(bytes);
    es_store_destroy(s);

    /* a module word that is a pid */
    s = es_store_create(NULL);
    h.module = PID(2);
    h.function = ATOM(1);
    assert_int_equal(es_store_append(s, &h, NULL, 0), 0);
    bytes = write_file(s, &len, &count);
    expect_error(bytes, len, "not an atom");
    free(bytes);
    es_store_destroy(s);
}

static void test_etf_walk(void **state) {
    (void)state;
    size_t at;
    /* good: [a | b], a map, a binary, a big integer, a float, an export */
    uint8_t list[] = {131, 108, 0, 0, 0, 1, 119, 1, 'a', 119, 1, 'b'};
    uint8_t map[] = {131, 116, 0, 0, 0, 1, 97, 1, 109, 0, 0, 0, 2, 'h', 'i'};
    uint8_t big[] = {131, 110, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    uint8_t flt[] = {131, 70, 0x3F, 0xF8, 0, 0, 0, 0, 0, 0};
    uint8_t exp[] = {131, 113, 119, 1, 'm', 119, 1, 'f', 97, 2};
    assert_int_equal(es_rec_check_etf(list, sizeof list, &at), 0);
    assert_int_equal(es_rec_check_etf(map, sizeof map, &at), 0);
    assert_int_equal(es_rec_check_etf(big, sizeof big, &at), 0);
    assert_int_equal(es_rec_check_etf(flt, sizeof flt, &at), 0);
    assert_int_equal(es_rec_check_etf(exp, sizeof exp, &at), 0);
    /* bad: trailing bytes, a cut binary, invalid UTF-8, an unknown tag, no version byte */
    uint8_t trail[] = {131, 97, 1, 97};
    uint8_t cut[] = {131, 109, 0, 0, 0, 9, 'x'};
    uint8_t utf[] = {131, 119, 2, 0xC0, 0x80};
    uint8_t tag[] = {131, 82, 0};
    uint8_t nover[] = {97, 1};
    assert_int_equal(es_rec_check_etf(trail, sizeof trail, &at), -1);
    assert_int_equal(at, 3);
    assert_int_equal(es_rec_check_etf(cut, sizeof cut, &at), -1);
    assert_int_equal(es_rec_check_etf(utf, sizeof utf, &at), -1);
    assert_int_equal(es_rec_check_etf(tag, sizeof tag, &at), -1);
    assert_int_equal(es_rec_check_etf(nover, sizeof nover, &at), -1);
    /* 200,000 nested one-element lists: walked without a stack */
    size_t depth = 200000, n = 1 + depth * 6 + 2 + depth;
    uint8_t *deep = malloc(n);
    size_t o = 0;
    deep[o++] = 131;
    for (size_t i = 0; i < depth; i++) {
        uint8_t cell[] = {108, 0, 0, 0, 1};
        memcpy(deep + o, cell, 5);
        o += 5;
    }
    deep[o++] = 106;
    for (size_t i = 0; i < depth; i++) deep[o++] = 106;
    assert_int_equal(es_rec_check_etf(deep, o, &at), 0);
    assert_int_equal(es_rec_check_etf(deep, o - 1, &at), -1);
    free(deep);
    (void)n;
}

typedef struct noted {
    uint64_t lines[16][2];
    size_t nlines;
    char atoms[4][32];
    size_t natoms;
} noted;

static void note_line_cb(void *ctx, uint64_t module, uint32_t line) {
    noted *n = ctx;
    n->lines[n->nlines][0] = module;
    n->lines[n->nlines++][1] = line;
}

static void note_atom_cb(void *ctx, const uint8_t *name, uint32_t len) {
    noted *n = ctx;
    memcpy(n->atoms[n->natoms], name, len);
    n->atoms[n->natoms++][len] = 0;
}

static int has_line(const noted *n, uint64_t module, uint64_t line) {
    for (size_t i = 0; i < n->nlines; i++)
        if (n->lines[i][0] == module && n->lines[i][1] == line) return 1;
    return 0;
}

/* The writer notes each line once, in the event's module or its call's (a call whose slot was
 * taken by a later one is still found), and the Elixir module atoms of the payloads. */
static void test_writer_notes_lines_and_atoms(void **state) {
    (void)state;
    es_store *s = es_store_create(NULL);
    uint8_t elixir[] = {131, 104, 2, 119, 10, 'E', 'l', 'i', 'x', 'i', 'r', '.', 'F', 'o', 'o', 119, 2, 'o', 'k'};
    /* call 1 in module a1 stays open while 70,000 calls of a2 come and go; then an event of call 1
       without a module */
    es_event_head h = {.id = 1, .pid = PID(1), .module = ATOM(1), .function = ATOM(9), .kind = ES_KIND_CALL, .line = 5,
                       .call_id = 1};
    assert_int_equal(es_store_append(s, &h, elixir, sizeof elixir), 0);
    uint64_t id = 2;
    for (uint32_t i = 0; i < 70000; i++, id += 2) {
        es_event_head c = {.id = id, .pid = PID(2), .module = ATOM(2), .function = ATOM(9), .kind = ES_KIND_CALL,
                           .line = 7, .call_id = id};
        es_event_head r = {.id = id + 1, .pid = PID(2), .kind = ES_KIND_RETURN, .call_id = id};
        assert_int_equal(es_store_append(s, &c, NULL, 0), 0);
        assert_int_equal(es_store_append(s, &r, NULL, 0), 0);
    }
    es_event_head l = {.id = id, .pid = PID(1), .kind = ES_KIND_LOCAL, .line = 6, .call_id = 1};
    assert_int_equal(es_store_append(s, &l, NULL, 0), 0);
    char *buf = NULL;
    size_t len;
    FILE *f = open_memstream(&buf, &len);
    es_recw *w = es_recw_new(f, word_etf, NULL);
    es_query q = {0};
    es_store_query(s, &q, es_recw_add, w);
    static noted n;
    memset(&n, 0, sizeof n);
    es_recw_lines(w, note_line_cb, &n);
    es_recw_atoms(w, note_atom_cb, &n);
    assert_int_equal(n.nlines, 3);
    assert_true(has_line(&n, ATOM(1), 5) && has_line(&n, ATOM(2), 7) && has_line(&n, ATOM(1), 6));
    assert_int_equal(n.natoms, 1);
    assert_string_equal(n.atoms[0], "Elixir.Foo");
    es_recw_free(w);
    fclose(f);
    free(buf);
    es_store_destroy(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_every_cut_refused),
        cmocka_unit_test(test_every_flip_refused),
        cmocka_unit_test(test_absurd_counts_and_sizes),
        cmocka_unit_test(test_checksummed_lies_refused),
        cmocka_unit_test(test_etf_walk),
        cmocka_unit_test(test_writer_notes_lines_and_atoms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
