/* Recording file, version 3 (see include/elixir_scope/recording_file.h).
 *
 * The writer is an es_query_cb: a save is one es_store_query whose callback packs each event
 * into the open segment (records, word table, payload bytes) and writes the segment out when
 * it is full. The reader reads one segment at a time into one buffer, checks all of it, and
 * only then appends its events to the store, so a corrupt segment adds nothing. */
#include "elixir_scope/recording_file.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* ------------------------------------------------------------------ */
/* little-endian fields                                                */

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32); }
static uint32_t get32be(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static uint32_t crc_of(uint32_t crc, const uint8_t *p, size_t n) {
    while (n) { /* zlib takes an unsigned int length */
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = (uint32_t)crc32(crc, p, k);
        p += k;
        n -= k;
    }
    return crc;
}

/* FNV-1a, continued from h over n bytes */
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}
#define FNV_START 1469598103934665603ULL

/* The trailer covers every section's crc32: each one is kept, 4 bytes little-endian. */
static int push_crc(es_buf *crcs, uint32_t crc) {
    uint8_t c4[4];
    put32(c4, crc);
    return es_buf_put(crcs, c4, 4);
}

/* ------------------------------------------------------------------ */
/* a map of (u64, u64) keys to u64 values (open addressing)            */

typedef struct pent {
    uint64_t a, b, v;
    int used;
} pent;

typedef struct pmap {
    pent *t;
    size_t cap, n;
} pmap;

static pent *pmap_slot(const pmap *m, uint64_t a, uint64_t b) {
    size_t mask = m->cap - 1;
    /* multiply-xorshift of the two words: keys are pointers-like words and small numbers */
    uint64_t h = (a ^ (b * 0x9e3779b97f4a7c15ULL)) * 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 31;
    for (size_t i = h & mask;; i = (i + 1) & mask)
        if (!m->t[i].used || (m->t[i].a == a && m->t[i].b == b)) return &m->t[i];
}

/* The entry of (a, b), added with value v when absent (*added = 1); NULL on OOM. */
static pent *pmap_put(pmap *m, uint64_t a, uint64_t b, uint64_t v, int *added) {
    if ((m->n + 1) * 2 > m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 64;
        pmap nm = {calloc(ncap, sizeof(pent)), ncap, m->n};
        if (!nm.t) return NULL;
        for (size_t i = 0; i < m->cap; i++)
            if (m->t[i].used) *pmap_slot(&nm, m->t[i].a, m->t[i].b) = m->t[i];
        free(m->t);
        *m = nm;
    }
    pent *e = pmap_slot(m, a, b);
    *added = !e->used;
    if (!e->used) {
        *e = (pent){a, b, v, 1};
        m->n++;
    }
    return e;
}

static const pent *pmap_get(const pmap *m, uint64_t a, uint64_t b) {
    if (!m->cap) return NULL;
    const pent *e = pmap_slot(m, a, b);
    return e->used ? e : NULL;
}

static void pmap_clear(pmap *m) {
    if (m->t) memset(m->t, 0, m->cap * sizeof(pent));
    m->n = 0;
}

static void pmap_free(pmap *m) {
    free(m->t);
    memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------------ */
/* distinct byte strings, numbered in order of first appearance        */

typedef struct strset {
    es_buf bytes;          /* the strings, end to end */
    uint64_t *off_len;     /* per string: offset << 16 | length (length < 65536) */
    uint32_t n, cap;
    pmap index; /* (hash, length) -> first string number + 1; collisions chained through v's high bits are
                   avoided by comparing bytes, probing on to the next hash */
} strset;

static void strset_init(strset *s) {
    memset(s, 0, sizeof *s);
    es_buf_init(&s->bytes, NULL, 0);
}

static const uint8_t *strset_at(const strset *s, uint32_t i, uint32_t *len) {
    *len = (uint32_t)(s->off_len[i] & 0xFFFF);
    return s->bytes.data + (s->off_len[i] >> 16);
}

/* The number of the string (added when new); UINT32_MAX on OOM. */
static uint32_t strset_add(strset *s, const uint8_t *p, uint32_t len) {
    uint64_t h = fnv(FNV_START, p, len);
    for (uint64_t probe = 0;; probe++) {
        int added;
        pent *e = pmap_put(&s->index, h, ((uint64_t)len << 32) | probe, s->n, &added);
        if (!e) return UINT32_MAX;
        if (!added) {
            uint32_t l;
            const uint8_t *q = strset_at(s, (uint32_t)e->v, &l);
            if (l == len && memcmp(q, p, len) == 0) return (uint32_t)e->v;
            continue; /* same hash and length, other bytes: the next probe number */
        }
        if (s->n == s->cap) {
            uint32_t ncap = s->cap ? s->cap * 2 : 64;
            uint64_t *no = realloc(s->off_len, (size_t)ncap * sizeof(uint64_t));
            if (!no) return UINT32_MAX;
            s->off_len = no;
            s->cap = ncap;
        }
        s->off_len[s->n] = ((uint64_t)s->bytes.len << 16) | len;
        if (es_buf_put(&s->bytes, p, len) || s->bytes.failed) return UINT32_MAX;
        return s->n++;
    }
}

static void strset_free(strset *s) {
    es_buf_free(&s->bytes);
    free(s->off_len);
    pmap_free(&s->index);
}

/* ------------------------------------------------------------------ */
/* ETF walk                                                            */

/* The tags of what ElixirScope writes: the codec's own terms, and pids, ports, references,
 * funs as term_to_binary writes them. */
enum {
    T_NEW_FLOAT = 70, T_BIT_BINARY = 77, T_NEW_PID = 88, T_NEW_PORT = 89, T_NEWER_REF = 90,
    T_SMALL_INT = 97, T_INT = 98, T_ATOM = 100, T_SMALL_ATOM = 115, T_SMALL_TUPLE = 104, T_LARGE_TUPLE = 105, T_NIL = 106,
    T_STRING = 107, T_LIST = 108, T_BINARY = 109, T_SMALL_BIG = 110, T_LARGE_BIG = 111,
    T_NEW_FUN = 112, T_EXPORT = 113, T_MAP = 116, T_ATOM_UTF8 = 118, T_SMALL_ATOM_UTF8 = 119,
    T_V4_PORT = 120
};

typedef struct walk_cb {
    void *ctx;
    int (*atom)(void *ctx, const uint8_t *name, uint32_t len);
    int (*export)(void *ctx, const uint8_t *m, uint32_t mlen, const uint8_t *f, uint32_t flen, uint8_t arity);
} walk_cb;

/* Valid UTF-8 (no overlongs, no surrogates) of at most 255 characters, as atoms must be. */
static int atom_name_ok(const uint8_t *p, uint32_t len) {
    uint32_t chars = 0;
    for (uint32_t i = 0; i < len; chars++) {
        uint8_t c = p[i];
        uint32_t n, cp;
        if (c < 0x80) n = 1, cp = c;
        else if ((c & 0xE0) == 0xC0) n = 2, cp = c & 0x1F;
        else if ((c & 0xF0) == 0xE0) n = 3, cp = c & 0x0F;
        else if ((c & 0xF8) == 0xF0) n = 4, cp = c & 0x07;
        else return 0;
        if (len - i < n) return 0;
        for (uint32_t k = 1; k < n; k++) {
            if ((p[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n;
    }
    return chars <= 255;
}

/* An atom at p (its tag first): its UTF-8 name (latin-1 names, as enif_term_to_binary writes
 * them, converted into buf); 0 when it is not a well-formed atom. */
static int read_atom(const uint8_t *p, size_t avail, uint8_t buf[512], const uint8_t **name, uint32_t *len,
                     size_t *used) {
    uint32_t n;
    size_t hdr;
    if (avail >= 2 && (p[0] == T_SMALL_ATOM_UTF8 || p[0] == T_SMALL_ATOM)) n = p[1], hdr = 2;
    else if (avail >= 3 && (p[0] == T_ATOM_UTF8 || p[0] == T_ATOM)) n = (uint32_t)((p[1] << 8) | p[2]), hdr = 3;
    else return 0;
    *used = hdr + n;
    if (*used > avail) return 0;
    if (p[0] == T_ATOM || p[0] == T_SMALL_ATOM) {
        if (n > 255) return 0;
        uint32_t o = 0;
        for (uint32_t i = 0; i < n; i++) {
            uint8_t c = p[hdr + i];
            if (c < 0x80) buf[o++] = c;
            else buf[o++] = (uint8_t)(0xC0 | (c >> 6)), buf[o++] = (uint8_t)(0x80 | (c & 0x3F));
        }
        *name = buf;
        *len = o;
        return 1;
    }
    *name = p + hdr;
    *len = n;
    return atom_name_ok(*name, *len);
}

static inline int is_atom_tag(uint8_t t) {
    return t == T_ATOM_UTF8 || t == T_SMALL_ATOM_UTF8 || t == T_ATOM || t == T_SMALL_ATOM;
}

/* Walks buf[1..len) (buf[0] is 131). Terms are written prefix first, so a count of the terms
 * still to read is all the state the walk needs: no stack, whatever the nesting. */
static int walk_etf(const uint8_t *buf, size_t len, const walk_cb *cb, size_t *err_at) {
    size_t i = 1;
    uint64_t pending = 1;
    if (len < 2 || buf[0] != 131) return (*err_at = 0), -1;
    while (pending) {
        /* every term takes at least one byte: more pending terms than bytes left is a lie */
        if (pending > len - i) goto bad;
        pending--;
        uint8_t tag = buf[i];
        size_t left = len - i;
        const uint8_t *p = buf + i;
        size_t used;
        uint64_t more = 0;
        const uint8_t *name;
        uint32_t nlen;
        uint8_t nbuf[512], nbuf2[512];
        switch (tag) {
        case T_SMALL_ATOM_UTF8:
        case T_ATOM_UTF8:
        case T_SMALL_ATOM:
        case T_ATOM:
            if (!read_atom(p, left, nbuf, &name, &nlen, &used)) goto bad;
            if (cb && cb->atom && cb->atom(cb->ctx, name, nlen)) goto bad;
            break;
        case T_NEW_FLOAT: /* finite only: the VM has no other floats */
            if (left < 9 || ((p[1] & 0x7F) == 0x7F && (p[2] & 0xF0) == 0xF0)) goto bad;
            used = 9;
            break;
        case T_SMALL_INT: used = 2; break;
        case T_INT: used = 5; break;
        case T_NIL: used = 1; break;
        case T_SMALL_TUPLE:
            if (left < 2) goto bad;
            used = 2, more = p[1];
            break;
        case T_LARGE_TUPLE:
            if (left < 5) goto bad;
            used = 5, more = get32be(p + 1);
            break;
        case T_LIST:
            if (left < 5) goto bad;
            used = 5, more = (uint64_t)get32be(p + 1) + 1; /* the elements and the tail */
            break;
        case T_MAP:
            if (left < 5) goto bad;
            used = 5, more = (uint64_t)get32be(p + 1) * 2;
            break;
        case T_STRING:
            if (left < 3) goto bad;
            used = 3 + (size_t)((p[1] << 8) | p[2]);
            break;
        case T_BINARY:
            if (left < 5) goto bad;
            used = 5 + (size_t)get32be(p + 1);
            break;
        case T_BIT_BINARY:
            if (left < 6 || p[5] < 1 || p[5] > 8 || get32be(p + 1) == 0) goto bad;
            used = 6 + (size_t)get32be(p + 1);
            break;
        case T_SMALL_BIG:
            if (left < 3 || p[2] > 1) goto bad;
            used = 3 + (size_t)p[1];
            break;
        case T_LARGE_BIG:
            if (left < 6 || p[5] > 1) goto bad;
            used = 6 + (size_t)get32be(p + 1);
            break;
        case T_NEW_PID:
        case T_NEW_PORT:
        case T_V4_PORT: {
            /* a node atom, then fixed-size integers */
            size_t tail = tag == T_NEW_PID ? 12 : tag == T_NEW_PORT ? 8 : 12;
            if (!read_atom(p + 1, left - 1, nbuf, &name, &nlen, &used)) goto bad;
            if (cb && cb->atom && cb->atom(cb->ctx, name, nlen)) goto bad;
            used += 1 + tail;
            break;
        }
        case T_NEWER_REF: {
            if (left < 3) goto bad;
            size_t words = (size_t)((p[1] << 8) | p[2]);
            if (words > 5) goto bad;
            if (!read_atom(p + 3, left - 3, nbuf, &name, &nlen, &used)) goto bad;
            if (cb && cb->atom && cb->atom(cb->ctx, name, nlen)) goto bad;
            used += 3 + 4 + 4 * words;
            break;
        }
        case T_EXPORT: {
            const uint8_t *m, *f;
            uint32_t mlen, flen;
            size_t u1, u2;
            if (!read_atom(p + 1, left - 1, nbuf, &m, &mlen, &u1)) goto bad;
            if (!read_atom(p + 1 + u1, left - 1 - u1, nbuf2, &f, &flen, &u2)) goto bad;
            used = 1 + u1 + u2 + 2;
            if (used > left || p[1 + u1 + u2] != T_SMALL_INT) goto bad;
            if (cb && cb->atom && (cb->atom(cb->ctx, m, mlen) || cb->atom(cb->ctx, f, flen))) goto bad;
            if (cb && cb->export && cb->export(cb->ctx, m, mlen, f, flen, p[used - 1])) goto bad;
            break;
        }
        case T_NEW_FUN: {
            /* size, arity, uniq, index, free count, then module, old index, old uniq, pid, free vars */
            if (left < 1 + 4 + 1 + 16 + 4 + 4) goto bad;
            size_t size = get32be(p + 1);
            if (size < 4 + 1 + 16 + 4 + 4 || size + 1 > left) goto bad;
            uint32_t nfree = get32be(p + 1 + 4 + 1 + 16 + 4);
            used = 1 + 4 + 1 + 16 + 4 + 4;
            more = 4 + (uint64_t)nfree;
            break;
        }
        default:
            goto bad;
        }
        if (used > left) goto bad;
        i += used;
        pending += more;
    }
    if (i != len) goto bad;
    return 0;
bad:
    *err_at = i;
    return -1;
}

int es_rec_check_etf(const uint8_t *buf, size_t len, size_t *err_at) { return walk_etf(buf, len, NULL, err_at); }

/* ------------------------------------------------------------------ */
/* writer                                                              */

#define OPEN_SLOTS 65536u

struct es_recw {
    FILE *f;
    es_recw_word_fn word;
    void *word_ctx;
    es_buf recs, words, payloads;
    uint32_t n, nwords;
    pmap seg_words; /* (word, 0) -> 1 + position in the segment's word table */
    uint64_t last[3][2]; /* per field (pid, module, function): the last word and its position */
    pmap lines;     /* (module word, line) */
    uint64_t last_line[2]; /* the last (module, line) noted: a loop's events repeat it */
    /* the module of each open call: a direct-mapped table by call id (a call usually ends soon
       after it starts, and its end frees its slot), and a map for the open calls pushed out */
    struct open_call {
        uint64_t id, module;
    } *open;
    pmap calls; /* (call id, 0) -> module word */
    strset atoms;   /* atoms named in payloads */
    uint64_t count;
    es_buf crcs; /* each segment's crc32, u32 little-endian */
    const char *error;
};

static int fail_w(es_recw *w, const char *what) {
    if (!w->error) w->error = what;
    return -1;
}

static int write_all(FILE *f, const void *p, size_t n) { return n == 0 || fwrite(p, 1, n, f) == n ? 0 : -1; }

es_recw *es_recw_new(FILE *f, es_recw_word_fn word, void *ctx) {
    es_recw *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->f = f;
    w->word = word;
    w->word_ctx = ctx;
    es_buf_init(&w->recs, NULL, 0);
    es_buf_init(&w->words, NULL, 0);
    es_buf_init(&w->payloads, NULL, 0);
    es_buf_init(&w->crcs, NULL, 0);
    strset_init(&w->atoms);
    if (!(w->open = calloc(OPEN_SLOTS, sizeof *w->open))) {
        es_recw_free(w);
        return NULL;
    }
    uint8_t head[ES_REC_MAGIC_LEN + 2];
    memcpy(head, ES_REC_MAGIC, ES_REC_MAGIC_LEN);
    /* big-endian, as version 2 wrote it: every version reads the same number there */
    head[ES_REC_MAGIC_LEN] = 0;
    head[ES_REC_MAGIC_LEN + 1] = ES_REC_VERSION;
    if (write_all(f, head, sizeof head)) {
        es_recw_free(w);
        return NULL;
    }
    return w;
}

static int flush_segment(es_recw *w) {
    if (w->n == 0) return 0;
    uint8_t count[4];
    put32(count, w->nwords);
    /* the word table's count is its first 4 bytes: written in front of the table's entries */
    uint32_t words_len = (uint32_t)(w->words.len + 4);
    uint32_t crc = crc_of(0, w->recs.data, w->recs.len);
    crc = crc_of(crc, count, 4);
    crc = crc_of(crc, w->words.data, w->words.len);
    crc = crc_of(crc, w->payloads.data, w->payloads.len);
    uint8_t head[17];
    head[0] = 'S';
    put32(head + 1, w->n);
    put32(head + 5, words_len);
    put32(head + 9, (uint32_t)w->payloads.len);
    put32(head + 13, crc);
    if (write_all(w->f, head, sizeof head) || write_all(w->f, w->recs.data, w->recs.len) ||
        write_all(w->f, count, 4) || write_all(w->f, w->words.data, w->words.len) ||
        write_all(w->f, w->payloads.data, w->payloads.len))
        return fail_w(w, "could not write a segment (disk full?)");
    /* the disk starts on what is written while the next segment is packed: the caller's final
       fsync then waits for less (a hint: a file system without it just syncs later) */
    if (fflush(w->f) == 0) (void)sync_file_range(fileno(w->f), 0, 0, SYNC_FILE_RANGE_WRITE);
    if (push_crc(&w->crcs, crc)) return fail_w(w, "out of memory");
    w->recs.len = w->words.len = w->payloads.len = 0;
    w->n = w->nwords = 0;
    pmap_clear(&w->seg_words);
    memset(w->last, 0, sizeof w->last);
    return 0;
}

/* 1 + the word's position in the segment's table (0 for no word). `last` caches the field's
 * previous word: consecutive events mostly name the same process and function. */
static uint32_t seg_word(es_recw *w, uint64_t word, uint64_t last[2]) {
    if (!word) return 0;
    if (last[0] == word && last[1]) return (uint32_t)last[1];
    int added;
    pent *e = pmap_put(&w->seg_words, word, 0, w->nwords + 1, &added);
    if (!e) return fail_w(w, "out of memory"), 0;
    if (added) {
        size_t at = w->words.len;
        uint8_t len2[2] = {0, 0};
        if (es_buf_put(&w->words, len2, 2) || w->word(w->word_ctx, word, &w->words) || w->words.failed)
            return fail_w(w, "a process or atom could not be encoded"), 0;
        size_t n = w->words.len - at - 2;
        if (n > 0xFFFF) return fail_w(w, "a process or atom encodes to more than 64 KB"), 0;
        put16(w->words.data + at, (uint16_t)n);
        w->nwords++;
    }
    last[0] = word;
    last[1] = e->v;
    return (uint32_t)e->v;
}

/* Struct modules are Elixir modules: only atoms of that shape are noted (hashing every atom of
 * every payload would cost the save more than the rest of its work on an event). */
static int note_atom(void *ctx, const uint8_t *name, uint32_t len) {
    if (len <= 7 || memcmp(name, "Elixir.", 7) != 0) return 0;
    return strset_add(ctx, name, len) == UINT32_MAX ? -1 : 0;
}

/* Sources: the line an event points at, in its own module or its call's. */
static int note_line(es_recw *w, const es_event_head *h) {
    int added;
    uint64_t module = h->module;
    if (h->kind == ES_KIND_CALL && module) {
        struct open_call *slot = &w->open[h->id & (OPEN_SLOTS - 1)];
        if (slot->id && !pmap_put(&w->calls, slot->id, 0, slot->module, &added)) return -1;
        *slot = (struct open_call){h->id, module};
    } else if (!module) {
        const struct open_call *slot = &w->open[h->call_id & (OPEN_SLOTS - 1)];
        const pent *c = slot->id == h->call_id ? NULL : pmap_get(&w->calls, h->call_id, 0);
        module = slot->id == h->call_id ? slot->module : c ? c->v : 0;
    } else if (h->kind == ES_KIND_RETURN || h->kind == ES_KIND_EXCEPTION || h->kind == ES_KIND_TAIL_CALL) {
        struct open_call *slot = &w->open[h->call_id & (OPEN_SLOTS - 1)];
        if (slot->id == h->call_id) slot->id = 0;
    }
    if (!module || !h->line || (module == w->last_line[0] && h->line == w->last_line[1])) return 0;
    w->last_line[0] = module;
    w->last_line[1] = h->line;
    return pmap_put(&w->lines, module, h->line, 0, &added) ? 0 : -1;
}

/* Whether "Elixir." appears in p (an atom's name is in the ETF as it is); memchr is quicker than
 * memmem on the short payloads events have. */
static int names_elixir_atom(const uint8_t *p, size_t n) {
    const uint8_t *end = p + n, *e = p;
    while (end - e >= 7 && (e = memchr(e, 'E', (size_t)(end - e) - 6)) != NULL) {
        if (memcmp(e + 1, "lixir.", 6) == 0) return 1;
        e++;
    }
    return 0;
}

int es_recw_add(void *wp, const es_event_view *ev) {
    es_recw *w = wp;
    const es_event_head *h = &ev->head;
    if (w->error) return 1;
    uint8_t r[ES_REC_RECORD_BYTES];
    put64(r, h->id);
    put64(r + 8, h->ts);
    put64(r + 16, h->call_id);
    put64(r + 24, h->link);
    uint32_t pw = seg_word(w, h->pid, w->last[0]), mw = seg_word(w, h->module, w->last[1]),
             fw = seg_word(w, h->function, w->last[2]);
    if (w->error) return 1;
    put32(r + 32, pw);
    put32(r + 36, mw);
    put32(r + 40, fw);
    put32(r + 44, h->line);
    put32(r + 48, ev->payload_len);
    put16(r + 52, h->flags);
    r[54] = h->kind;
    r[55] = h->arity;
    if (es_buf_put(&w->recs, r, sizeof r) || es_buf_put(&w->payloads, ev->payload, ev->payload_len) ||
        w->recs.failed || w->payloads.failed)
        return fail_w(w, "out of memory"), 1;
    if (note_line(w, h)) return fail_w(w, "out of memory"), 1;
    /* an atom's name is in the ETF as it is: only a payload holding "Elixir." is walked */
    if (names_elixir_atom(ev->payload, ev->payload_len)) {
        walk_cb cb = {&w->atoms, note_atom, NULL};
        size_t at;
        /* the store holds what the codec wrote: a payload that does not walk is saved as it is
           (the loader would refuse it, and say where), but names no atom here */
        (void)walk_etf(ev->payload, ev->payload_len, &cb, &at);
    }
    w->n++;
    w->count++;
    if (w->n >= ES_RECW_SEGMENT_EVENTS || w->payloads.len >= (64u << 20)) return flush_segment(w) ? 1 : 0;
    return 0;
}

int es_recw_end(es_recw *w, const uint8_t *meta, uint32_t meta_len) {
    if (w->error || flush_segment(w)) return -1;
    uint32_t mcrc = crc_of(0, meta, meta_len);
    uint8_t head[9], tail[13];
    head[0] = 'M';
    put32(head + 1, meta_len);
    put32(head + 5, mcrc);
    if (push_crc(&w->crcs, mcrc)) return fail_w(w, "out of memory");
    tail[0] = 'E';
    put64(tail + 1, w->count);
    put32(tail + 9, crc_of(0, w->crcs.data, w->crcs.len));
    if (write_all(w->f, head, sizeof head) || write_all(w->f, meta, meta_len) || write_all(w->f, tail, sizeof tail) ||
        fflush(w->f))
        return fail_w(w, "could not write the end of the recording (disk full?)");
    return 0;
}

const char *es_recw_error(const es_recw *w) { return w->error; }
uint64_t es_recw_count(const es_recw *w) { return w->count; }

void es_recw_lines(const es_recw *w, void (*cb)(void *ctx, uint64_t module, uint32_t line), void *ctx) {
    for (size_t i = 0; i < w->lines.cap; i++)
        if (w->lines.t[i].used) cb(ctx, w->lines.t[i].a, (uint32_t)w->lines.t[i].b);
}

void es_recw_atoms(const es_recw *w, void (*cb)(void *ctx, const uint8_t *name, uint32_t len), void *ctx) {
    for (uint32_t i = 0; i < w->atoms.n; i++) {
        uint32_t len;
        const uint8_t *p = strset_at(&w->atoms, i, &len);
        cb(ctx, p, len);
    }
}

void es_recw_free(es_recw *w) {
    if (!w) return;
    es_buf_free(&w->recs);
    es_buf_free(&w->words);
    es_buf_free(&w->payloads);
    es_buf_free(&w->crcs);
    pmap_free(&w->seg_words);
    pmap_free(&w->lines);
    pmap_free(&w->calls);
    free(w->open);
    strset_free(&w->atoms);
    free(w);
}

/* ------------------------------------------------------------------ */
/* reader                                                              */

struct es_recr {
    strset words;   /* the file's distinct words (ETF) */
    uint64_t *word_at; /* the byte of each word's first appearance */
    uint32_t word_at_cap;
    strset atoms;   /* atoms named anywhere */
    pmap exports;   /* (module atom << 32 | function atom, arity) -> position */
    uint32_t *export_list; /* 3 per export: module, function, arity */
    uint32_t nexports, exports_cap;
    uint8_t *meta;
    uint32_t meta_len;
    uint64_t count;
    char error[256];
};

es_recr *es_recr_new(void) {
    es_recr *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    strset_init(&r->words);
    strset_init(&r->atoms);
    return r;
}

static int fail_r(es_recr *r, uint64_t at, const char *what) {
    if (!r->error[0]) snprintf(r->error, sizeof r->error, "%s at byte %llu", what, (unsigned long long)at);
    return -1;
}

static int recr_atom(void *ctx, const uint8_t *name, uint32_t len) {
    es_recr *r = ctx;
    return strset_add(&r->atoms, name, len) == UINT32_MAX ? -1 : 0;
}

static int recr_export(void *ctx, const uint8_t *m, uint32_t mlen, const uint8_t *f, uint32_t flen, uint8_t arity) {
    es_recr *r = ctx;
    uint32_t mi = strset_add(&r->atoms, m, mlen), fi = strset_add(&r->atoms, f, flen);
    int added;
    if (mi == UINT32_MAX || fi == UINT32_MAX) return -1;
    if (!pmap_put(&r->exports, ((uint64_t)mi << 32) | fi, arity, r->nexports, &added)) return -1;
    if (!added) return 0;
    if (r->nexports == r->exports_cap) {
        uint32_t ncap = r->exports_cap ? r->exports_cap * 2 : 16;
        uint32_t *ne = realloc(r->export_list, (size_t)ncap * 3 * sizeof(uint32_t));
        if (!ne) return -1;
        r->export_list = ne;
        r->exports_cap = ncap;
    }
    r->export_list[3 * r->nexports] = mi;
    r->export_list[3 * r->nexports + 1] = fi;
    r->export_list[3 * r->nexports + 2] = arity;
    r->nexports++;
    return 0;
}

static int read_exact(FILE *f, void *p, size_t n) { return n == 0 || fread(p, 1, n, f) == n ? 0 : -1; }

enum { W_PID = 1, W_ATOM = 2 };

/* Checks one segment's bytes (seg: records, word table, payloads) and appends its events. */
static int load_segment(es_recr *r, const uint8_t *seg, uint32_t n, uint32_t words_len, uint32_t payload_len,
                        uint64_t at, uint64_t *last_id, es_store *store, uint32_t **map, uint32_t *map_cap) {
    const uint8_t *recs = seg, *words = seg + (size_t)n * ES_REC_RECORD_BYTES, *payloads = words + words_len;
    walk_cb cb = {r, recr_atom, recr_export};
    size_t err_at;
    uint64_t wat = at + (uint64_t)n * ES_REC_RECORD_BYTES;
    if (words_len < 4) return fail_r(r, wat, "corrupted recording: a word table shorter than its count");
    uint32_t nwords = get32(words);
    if (nwords > (words_len - 4) / 3) return fail_r(r, wat, "corrupted recording: a word table announces more words than its bytes hold");
    if (nwords > *map_cap) {
        uint32_t *nm = realloc(*map, (size_t)nwords * sizeof(uint32_t) * 2);
        if (!nm) return fail_r(r, wat, "out of memory");
        *map = nm;
        *map_cap = nwords;
    }
    /* (*map)[2i]: the file-wide number of word i + 1; (*map)[2i + 1]: its type */
    size_t o = 4;
    for (uint32_t i = 0; i < nwords; i++) {
        if (words_len - o < 2) return fail_r(r, wat + o, "corrupted recording: a word runs past its table");
        uint32_t len = get16(words + o);
        o += 2;
        if (words_len - o < len) return fail_r(r, wat + o, "corrupted recording: a word runs past its table");
        const uint8_t *w = words + o;
        if (walk_etf(w, len, &cb, &err_at))
            return fail_r(r, wat + o + err_at, "corrupted recording: a word is not well-formed ETF");
        if (w[1] != T_NEW_PID && !is_atom_tag(w[1]))
            return fail_r(r, wat + o, "corrupted recording: a word is neither a pid nor an atom");
        uint32_t g = strset_add(&r->words, w, len);
        if (g == UINT32_MAX) return fail_r(r, wat + o, "out of memory");
        if (g >= r->word_at_cap) {
            uint32_t ncap = r->word_at_cap ? r->word_at_cap * 2 : 64;
            uint64_t *na = realloc(r->word_at, (size_t)ncap * sizeof(uint64_t));
            if (!na) return fail_r(r, wat + o, "out of memory");
            r->word_at = na;
            r->word_at_cap = ncap;
        }
        if (g + 1 == r->words.n) r->word_at[g] = wat + o;
        (*map)[2 * i] = g + 1;
        (*map)[2 * i + 1] = w[1] == T_NEW_PID ? W_PID : W_ATOM;
        o += len;
    }
    if (o != words_len) return fail_r(r, wat + o, "corrupted recording: bytes after the last word of a table");
    /* every record, before any is appended */
    uint64_t id = *last_id, sum = 0;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *p = recs + (size_t)i * ES_REC_RECORD_BYTES;
        uint64_t rat = at + (uint64_t)i * ES_REC_RECORD_BYTES;
        uint64_t rid = get64(p);
        uint32_t pw = get32(p + 32), mw = get32(p + 36), fw = get32(p + 40), plen = get32(p + 48);
        if (rid <= id) return fail_r(r, rat, "corrupted recording: an event id is not above the previous one");
        id = rid;
        if (p[54] >= ES_KIND__COUNT) return fail_r(r, rat, "corrupted recording: an event of an unknown kind");
        if (get16(p + 52) & ~(ES_FLAG_TRUNCATED | ES_FLAG_REDACTED))
            return fail_r(r, rat, "corrupted recording: an event with unknown flags");
        if (pw > nwords || mw > nwords || fw > nwords)
            return fail_r(r, rat, "corrupted recording: an event names a word its segment's table does not hold");
        if ((pw && (*map)[2 * (pw - 1) + 1] != W_PID) || (mw && (*map)[2 * (mw - 1) + 1] != W_ATOM) ||
            (fw && (*map)[2 * (fw - 1) + 1] != W_ATOM))
            return fail_r(r, rat, "corrupted recording: an event's process is not a pid or its module or function not an atom");
        if (plen > payload_len - sum) return fail_r(r, rat, "corrupted recording: the payloads overrun their section");
        if (plen && walk_etf(payloads + sum, plen, &cb, &err_at))
            return fail_r(r, at + (uint64_t)n * ES_REC_RECORD_BYTES + words_len + sum + err_at,
                          "corrupted recording: a payload is not well-formed ETF");
        sum += plen;
    }
    if (sum != payload_len) return fail_r(r, at, "corrupted recording: the payloads do not fill their section");
    /* all checked: into the store */
    sum = 0;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *p = recs + (size_t)i * ES_REC_RECORD_BYTES;
        uint32_t pw = get32(p + 32), mw = get32(p + 36), fw = get32(p + 40), plen = get32(p + 48);
        es_event_head h = {
            .id = get64(p), .ts = get64(p + 8), .call_id = get64(p + 16), .link = get64(p + 24),
            .pid = pw ? (*map)[2 * (pw - 1)] : 0, .module = mw ? (*map)[2 * (mw - 1)] : 0,
            .function = fw ? (*map)[2 * (fw - 1)] : 0, .line = get32(p + 44), .flags = get16(p + 52),
            .kind = p[54], .arity = p[55]};
        if (es_store_append_locked(store, &h, plen ? payloads + sum : NULL, plen))
            return fail_r(r, at + (uint64_t)i * ES_REC_RECORD_BYTES, "out of memory building the store");
        sum += plen;
    }
    *last_id = id;
    r->count += n;
    return 0;
}

/* A section's bytes against its crc32, which the trailer's crc covers. */
static int check_crc(es_recr *r, es_buf *crcs, const uint8_t *p, size_t n, uint32_t crc, uint64_t at, const char *what) {
    if (crc_of(0, p, n) != crc) return fail_r(r, at, what);
    return push_crc(crcs, crc) ? fail_r(r, at, "out of memory") : 0;
}

int es_recr_load(es_recr *r, FILE *f, uint64_t size, es_store *store) {
    uint8_t head[17];
    uint64_t at = ES_REC_MAGIC_LEN + 2, last_id = 0;
    uint8_t *seg = NULL;
    size_t seg_cap = 0;
    uint32_t *map = NULL, map_cap = 0;
    es_buf crcs;
    int rc = -1;
    es_buf_init(&crcs, NULL, 0);
    if (size < at || read_exact(f, head, at)) {
        fail_r(r, 0, "not an ElixirScope recording (too short)");
        goto out;
    }
    if (memcmp(head, ES_REC_MAGIC, ES_REC_MAGIC_LEN) != 0) {
        fail_r(r, 0, "not an ElixirScope recording (no magic)");
        goto out;
    }
    if (head[ES_REC_MAGIC_LEN] != 0 || head[ES_REC_MAGIC_LEN + 1] != ES_REC_VERSION) {
        fail_r(r, ES_REC_MAGIC_LEN, "not a version 3 recording");
        goto out;
    }
    es_store_write_lock(store);
    for (;;) {
        uint8_t tag;
        if (size - at < 1 || read_exact(f, &tag, 1)) {
            fail_r(r, at, "truncated recording: the file ends without its trailer (an interrupted write?)");
            break;
        }
        if (tag == 'S') {
            if (size - at < 17 || read_exact(f, head + 1, 16)) {
                fail_r(r, at, "truncated recording: the file ends inside a segment header");
                break;
            }
            uint32_t n = get32(head + 1), wl = get32(head + 5), pl = get32(head + 9), crc = get32(head + 13);
            uint64_t body = (uint64_t)n * ES_REC_RECORD_BYTES + wl + pl;
            if (n == 0 || n > ES_RECR_MAX_SEGMENT_EVENTS) {
                fail_r(r, at, "corrupted recording: a segment announces no events or too many");
                break;
            }
            if (body > size - at - 17) {
                fail_r(r, at, "truncated recording: a segment needs more bytes than the file has left");
                break;
            }
            if (body > seg_cap) {
                uint8_t *ns = realloc(seg, body);
                if (!ns) {
                    fail_r(r, at, "out of memory");
                    break;
                }
                seg = ns;
                seg_cap = body;
            }
            if (read_exact(f, seg, body)) {
                fail_r(r, at, "truncated recording: the file could not be read to the end of a segment");
                break;
            }
            if (check_crc(r, &crcs, seg, body, crc, at, "corrupted recording: a segment's checksum does not match")) break;
            if (load_segment(r, seg, n, wl, pl, at + 17, &last_id, store, &map, &map_cap)) break;
            at += 17 + body;
        } else if (tag == 'M') {
            if (r->meta) {
                fail_r(r, at, "corrupted recording: a second meta section");
                break;
            }
            if (size - at < 9 || read_exact(f, head + 1, 8)) {
                fail_r(r, at, "truncated recording: the file ends inside the meta header");
                break;
            }
            uint32_t len = get32(head + 1), crc = get32(head + 5);
            if (len > size - at - 9 || !(r->meta = malloc(len ? len : 1)) || read_exact(f, r->meta, len)) {
                fail_r(r, at, "truncated recording: the meta section needs more bytes than the file has left");
                break;
            }
            r->meta_len = len;
            if (check_crc(r, &crcs, r->meta, len, crc, at, "corrupted recording: the meta checksum does not match")) break;
            at += 9 + len;
        } else if (tag == 'E') {
            if (size - at < 13 || read_exact(f, head + 1, 12)) {
                fail_r(r, at, "truncated recording: the file ends inside its trailer");
                break;
            }
            if (!r->meta) {
                fail_r(r, at, "corrupted recording: no meta section before the trailer");
                break;
            }
            if (get64(head + 1) != r->count) {
                fail_r(r, at, "corrupted recording: the trailer's event count does not match the segments");
                break;
            }
            if (get32(head + 9) != crc_of(0, crcs.data, crcs.len)) {
                fail_r(r, at, "corrupted recording: the trailer checksum does not match the sections");
                break;
            }
            if (size - at != 13) {
                fail_r(r, at + 13, "corrupted recording: unexpected bytes after the trailer");
                break;
            }
            rc = 0;
            break;
        } else {
            fail_r(r, at, "corrupted recording: unexpected bytes where a section should start");
            break;
        }
    }
    es_store_write_unlock(store);
out:
    free(seg);
    free(map);
    es_buf_free(&crcs);
    return rc;
}

const char *es_recr_error(const es_recr *r) { return r->error; }
uint64_t es_recr_count(const es_recr *r) { return r->count; }

const uint8_t *es_recr_meta(const es_recr *r, uint32_t *len) {
    *len = r->meta_len;
    return r->meta;
}

uint32_t es_recr_words(const es_recr *r) { return r->words.n; }

const uint8_t *es_recr_word(const es_recr *r, uint32_t w, uint32_t *len) { return strset_at(&r->words, w - 1, len); }

uint64_t es_recr_word_at(const es_recr *r, uint32_t w) { return r->word_at[w - 1]; }

uint32_t es_recr_atoms(const es_recr *r) { return r->atoms.n; }

const uint8_t *es_recr_atom(const es_recr *r, uint32_t i, uint32_t *len) { return strset_at(&r->atoms, i, len); }

uint32_t es_recr_exports(const es_recr *r) { return r->nexports; }

void es_recr_export(const es_recr *r, uint32_t i, uint32_t *module, uint32_t *function, uint8_t *arity) {
    *module = r->export_list[3 * i];
    *function = r->export_list[3 * i + 1];
    *arity = (uint8_t)r->export_list[3 * i + 2];
}

void es_recr_free(es_recr *r) {
    if (!r) return;
    strset_free(&r->words);
    free(r->word_at);
    strset_free(&r->atoms);
    pmap_free(&r->exports);
    free(r->export_list);
    free(r->meta);
    free(r);
}
