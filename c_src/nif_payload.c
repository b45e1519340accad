/* NIF glue: stored payloads (external term format written by the term codec) to terms, for the
 * query paths. The tags captured values mostly use (integers, atoms, floats, lists, tuples,
 * binaries, maps) are built here with atoms looked up once a query (an atom in
 * binary_to_term costs a lookup in the VM's atom table every time: about 80 ns); any other tag,
 * a deep term or an atom beyond Latin-1 goes to enif_binary_to_term, whose answer is the
 * reference: the terms built here are the same. */
#include <erl_nif.h>
#include <math.h>
#include <string.h>

#include "nif_glue.h"

#define MAX_FAST_DEPTH 32 /* deeper terms go to the VM decoder: bounded C stack */
#define SMALL_ARRAY 16

struct es_atom_memo {
    struct {
        uint16_t len; /* 0: empty slot (the empty atom is rare: looked up every time) */
        char name[255];
        ERL_NIF_TERM atom;
    } slot[ES_ATOM_MEMO_SLOTS];
};

es_atom_memo *es_atom_memo_new(void) {
    es_atom_memo *m = enif_alloc(sizeof *m);
    if (m)
        for (int i = 0; i < ES_ATOM_MEMO_SLOTS; i++) m->slot[i].len = 0;
    return m;
}

void es_atom_memo_free(es_atom_memo *m) { enif_free(m); }

typedef struct reader {
    ErlNifEnv *env;
    es_atom_memo *memo;
    const unsigned char *p, *end;
} reader;

static int need(const reader *r, size_t n) { return (size_t)(r->end - r->p) >= n; }
static uint32_t be32(const unsigned char *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* a Latin-1 atom name, through the memo */
static int atom(reader *r, const char *name, size_t len, ERL_NIF_TERM *out) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)name[i]) * 16777619u;
    __typeof__(r->memo->slot[0]) *s = &r->memo->slot[h % ES_ATOM_MEMO_SLOTS];
    if (s->len == len && len && memcmp(s->name, name, len) == 0) return (*out = s->atom), 1;
    *out = enif_make_atom_len(r->env, name, len);
    if (len) {
        s->len = (uint16_t)len;
        memcpy(s->name, name, len);
        s->atom = *out;
    }
    return 1;
}

/* UTF-8 atom text to Latin-1 (0: a character beyond Latin-1, left to the VM's decoder) */
static int utf8_atom(reader *r, const unsigned char *t, size_t len, ERL_NIF_TERM *out) {
    char latin1[255];
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (t[i] < 0x80) {
            if (n == sizeof latin1) return 0;
            latin1[n++] = (char)t[i];
        } else if ((t[i] == 0xC2 || t[i] == 0xC3) && i + 1 < len && (t[i + 1] & 0xC0) == 0x80) {
            if (n == sizeof latin1) return 0;
            latin1[n++] = (char)(((t[i] & 0x03) << 6) | (t[i + 1] & 0x3F));
            i++;
        } else {
            return 0;
        }
    }
    return atom(r, latin1, n, out);
}

static int term(reader *r, int depth, ERL_NIF_TERM *out);

/* n terms into a caller's array (small) or an allocated one */
static ERL_NIF_TERM *terms(reader *r, int depth, size_t n, ERL_NIF_TERM *small) {
    ERL_NIF_TERM *items = n <= SMALL_ARRAY ? small : enif_alloc(n * sizeof *items);
    if (!items) return NULL;
    for (size_t i = 0; i < n; i++)
        if (!term(r, depth + 1, &items[i])) {
            if (items != small) enif_free(items);
            return NULL;
        }
    return items;
}

static void done_with(ERL_NIF_TERM *items, ERL_NIF_TERM *small) {
    if (items != small) enif_free(items);
}

static int term(reader *r, int depth, ERL_NIF_TERM *out) {
    ERL_NIF_TERM small[SMALL_ARRAY], *items, tail;
    uint32_t n;
    if (depth > MAX_FAST_DEPTH || !need(r, 1)) return 0;
    unsigned tag = *r->p++;
    switch (tag) {
    case 97: /* SMALL_INTEGER_EXT */
        if (!need(r, 1)) return 0;
        *out = enif_make_int(r->env, *r->p++);
        return 1;
    case 98: /* INTEGER_EXT */
        if (!need(r, 4)) return 0;
        *out = enif_make_int(r->env, (int32_t)be32(r->p));
        r->p += 4;
        return 1;
    case 110: { /* SMALL_BIG_EXT: up to 64 bits here */
        uint64_t mag = 0;
        if (!need(r, 2)) return 0;
        unsigned len = r->p[0], neg = r->p[1];
        if (len > 8 || !need(r, 2 + (size_t)len)) return 0;
        for (unsigned i = len; i-- > 0;) mag = mag << 8 | r->p[2 + i];
        if (neg && mag > (uint64_t)INT64_MAX + 1) return 0;
        *out = neg ? enif_make_int64(r->env, mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag)
                   : enif_make_uint64(r->env, mag);
        r->p += 2 + len;
        return 1;
    }
    case 70: { /* NEW_FLOAT_EXT */
        uint64_t bits = 0;
        double d;
        if (!need(r, 8)) return 0;
        for (int i = 0; i < 8; i++) bits = bits << 8 | r->p[i];
        memcpy(&d, &bits, sizeof d);
        if (!isfinite(d)) return 0;
        *out = enif_make_double(r->env, d);
        r->p += 8;
        return 1;
    }
    case 100: /* ATOM_EXT (Latin-1) */
    case 118: /* ATOM_UTF8_EXT */
        if (!need(r, 2)) return 0;
        n = (uint32_t)r->p[0] << 8 | r->p[1];
        r->p += 2;
        goto atom_text;
    case 115: /* SMALL_ATOM_EXT (Latin-1) */
    case 119: /* SMALL_ATOM_UTF8_EXT */
        if (!need(r, 1)) return 0;
        n = *r->p++;
    atom_text:
        if (n > 255 * 4 || !need(r, n)) return 0;
        if (tag == 100 || tag == 115) {
            if (n > 255 || !atom(r, (const char *)r->p, n, out)) return 0;
        } else if (!utf8_atom(r, r->p, n, out)) {
            return 0;
        }
        r->p += n;
        return 1;
    case 104: /* SMALL_TUPLE_EXT */
    case 105: /* LARGE_TUPLE_EXT */
        if (tag == 104) {
            if (!need(r, 1)) return 0;
            n = *r->p++;
        } else {
            if (!need(r, 4)) return 0;
            n = be32(r->p);
            r->p += 4;
        }
        if (n > (size_t)(r->end - r->p) || !(items = terms(r, depth, n, small))) return 0;
        *out = enif_make_tuple_from_array(r->env, items, n);
        done_with(items, small);
        return 1;
    case 106: /* NIL_EXT */
        *out = enif_make_list(r->env, 0);
        return 1;
    case 107: /* STRING_EXT: a list of bytes */
        if (!need(r, 2)) return 0;
        n = (uint32_t)r->p[0] << 8 | r->p[1];
        if (!need(r, 2 + (size_t)n)) return 0;
        *out = enif_make_string_len(r->env, (const char *)r->p + 2, n, ERL_NIF_LATIN1);
        r->p += 2 + n;
        return 1;
    case 108: /* LIST_EXT: elements, then the tail ([] when proper) */
        if (!need(r, 4)) return 0;
        n = be32(r->p);
        r->p += 4;
        if (n > (size_t)(r->end - r->p) || !(items = terms(r, depth, n, small))) return 0;
        if (!term(r, depth + 1, &tail)) {
            done_with(items, small);
            return 0;
        }
        *out = enif_make_list_from_array(r->env, items, n);
        if (!enif_is_empty_list(r->env, tail)) {
            *out = tail;
            for (uint32_t i = n; i-- > 0;) *out = enif_make_list_cell(r->env, items[i], *out);
        }
        done_with(items, small);
        return 1;
    case 109: { /* BINARY_EXT */
        unsigned char *dst;
        if (!need(r, 4)) return 0;
        n = be32(r->p);
        if (!need(r, 4 + (size_t)n) || !(dst = enif_make_new_binary(r->env, n, out))) return 0;
        memcpy(dst, r->p + 4, n);
        r->p += 4 + n;
        return 1;
    }
    case 116: { /* MAP_EXT */
        ERL_NIF_TERM ksmall[SMALL_ARRAY], vsmall[SMALL_ARRAY], *ks, *vs;
        int ok = 1;
        if (!need(r, 4)) return 0;
        n = be32(r->p);
        r->p += 4;
        if (n > (size_t)(r->end - r->p) / 2) return 0;
        ks = n <= SMALL_ARRAY ? ksmall : enif_alloc(n * sizeof *ks);
        vs = n <= SMALL_ARRAY ? vsmall : enif_alloc(n * sizeof *vs);
        for (uint32_t i = 0; ok && ks && vs && i < n; i++) ok = term(r, depth + 1, &ks[i]) && term(r, depth + 1, &vs[i]);
        ok = ok && ks && vs && enif_make_map_from_arrays(r->env, ks, vs, n, out);
        done_with(ks, ksmall);
        done_with(vs, vsmall);
        return ok;
    }
    default: /* pids, ports, references, funs, bit binaries, big integers, old floats... */
        return 0;
    }
}

int es_decode_payload(ErlNifEnv *env, es_atom_memo *memo, const unsigned char *data, size_t len, ERL_NIF_TERM *out) {
    reader r = {env, memo, data + 1, data + len};
    if (len >= 2 && data[0] == 131 && term(&r, 0, out) && r.p == r.end) return 1;
    return enif_binary_to_term(env, data, len, out, 0) != 0;
}
