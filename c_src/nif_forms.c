/* NIF glue of the forms transformer: two ETF binaries in (a module's abstract forms and its
 * plan), the result term {ok, Forms} | {error, Reason} out, built directly from the
 * transformer's term tree (iteratively; atoms are made once per distinct name). Runs on a
 * dirty CPU scheduler (see the function table in c_src/nif.c). */
#include <stdlib.h>
#include <string.h>

#include "elixir_scope/forms_transform.h"
#include "elixir_scope/etf.h"
#include "nif_glue.h"

typedef es_etf_term T;

/* ---- atom cache: name bytes -> atom term, open addressing */
typedef struct acache {
    const uint8_t **keys;
    uint32_t *lens;
    ERL_NIF_TERM *vals;
    size_t cap, n;
    ERL_NIF_TERM nil; /* [] */
    const T *last;    /* the last atom node seen, and its term: injected atoms are shared nodes */
    ERL_NIF_TERM last_val;
} acache;

/* FNV-1a over every byte, the high half folded into the low bits that pick the slot. The names
 * the transformer makes differ in their last digits only (ES@sent1 … ES@sent50000): a hash of
 * the first and last 8 bytes put 50,000 of them in about 900 slots, and a 50,000-statement
 * function took 80 s to build. Equality is checked with memcmp. */
static uint64_t hash_bytes(const uint8_t *p, size_t n) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001B3ull;
    return h ^ (h >> 32);
}

static int acache_grow(acache *c) {
    size_t nc = c->cap ? c->cap * 2 : 1024;
    const uint8_t **k = enif_alloc(nc * sizeof(*k));
    uint32_t *l = enif_alloc(nc * sizeof(*l));
    ERL_NIF_TERM *v = enif_alloc(nc * sizeof(*v));
    if (!k || !l || !v) {
        if (k) enif_free(k);
        if (l) enif_free(l);
        if (v) enif_free(v);
        return -1;
    }
    memset(k, 0, nc * sizeof(*k));
    for (size_t i = 0; i < c->cap; i++) {
        if (!c->keys[i]) continue;
        size_t h = hash_bytes(c->keys[i], c->lens[i]) & (nc - 1);
        while (k[h]) h = (h + 1) & (nc - 1);
        k[h] = c->keys[i];
        l[h] = c->lens[i];
        v[h] = c->vals[i];
    }
    if (c->cap) {
        enif_free(c->keys);
        enif_free(c->lens);
        enif_free(c->vals);
    }
    c->keys = k;
    c->lens = l;
    c->vals = v;
    c->cap = nc;
    return 0;
}

static int make_atom(ErlNifEnv *env, acache *c, const T *t, ERL_NIF_TERM *out) {
    if (t == c->last) {
        *out = c->last_val;
        return 0;
    }
    if ((c->n + 1) * 2 > c->cap && acache_grow(c) < 0) return -1;
    size_t h = hash_bytes(t->u.bytes, t->n) & (c->cap - 1);
    while (c->keys[h]) {
        if (c->lens[h] == t->n && (c->keys[h] == t->u.bytes || memcmp(c->keys[h], t->u.bytes, t->n) == 0)) {
            *out = c->vals[h];
            c->last = t;
            c->last_val = *out;
            return 0;
        }
        h = (h + 1) & (c->cap - 1);
    }
    int ascii = 1;
    for (uint32_t i = 0; i < t->n; i++)
        if (t->u.bytes[i] >= 0x80) ascii = 0;
    if (ascii) {
        *out = enif_make_atom_len(env, (const char *)t->u.bytes, t->n);
    } else { /* UTF-8 names: through the external format */
        unsigned char buf[3 + 1024];
        if (t->n > 1020) return -1;
        buf[0] = 131;
        buf[1] = 119; /* SMALL_ATOM_UTF8_EXT */
        buf[2] = (unsigned char)t->n;
        memcpy(buf + 3, t->u.bytes, t->n);
        if (!enif_binary_to_term(env, buf, 3 + t->n, out, 0)) return -1;
    }
    c->keys[h] = t->u.bytes;
    c->lens[h] = t->n;
    c->vals[h] = *out;
    c->n++;
    return 0;
}

static int make_leaf(ErlNifEnv *env, acache *c, const T *t, ERL_NIF_TERM *out) {
    unsigned char *p;
    switch (t->kind) {
    case ES_ETF_ATOM:
        return make_atom(env, c, t, out);
    case ES_ETF_INT:
        *out = enif_make_int64(env, t->u.i);
        return 0;
    case ES_ETF_FLOAT:
        *out = enif_make_double(env, t->u.f);
        return 0;
    case ES_ETF_BINARY:
        p = enif_make_new_binary(env, t->n, out);
        if (!p) return -1;
        if (t->n) memcpy(p, t->u.bytes, t->n);
        return 0;
    case ES_ETF_NIL:
        *out = c->nil;
        return 0;
    case ES_ETF_RAW: {
        unsigned char *buf = enif_alloc((size_t)t->n + 1);
        if (!buf) return -1;
        buf[0] = 131;
        memcpy(buf + 1, t->u.bytes, t->n);
        size_t used = enif_binary_to_term(env, buf, (size_t)t->n + 1, out, 0);
        enif_free(buf);
        return used ? 0 : -1;
    }
    default:
        return -1;
    }
}

typedef struct frame {
    const T *t;
    uint32_t next, count;
    size_t base; /* values[base..] are this node's children */
} frame;

/* buf with room for element n (n used, *cap allocated, doubled from `initial` when full), or NULL
 * when out of memory: buf is then freed, and the caller's pointer, now NULL, owns nothing. */
static void *room_for_one(void *buf, size_t *cap, size_t n, size_t size, size_t initial) {
    if (n < *cap) return buf;
    size_t nc = *cap ? *cap * 2 : initial;
    void *nb = enif_realloc(buf, nc * size);
    if (!nb) {
        enif_free(buf);
        return NULL;
    }
    *cap = nc;
    return nb;
}

/* Builds the VM term of the tree t, iteratively (post-order, explicit stacks). */
static int build(ErlNifEnv *env, const T *root, ERL_NIF_TERM *out) {
    acache cache = {0};
    cache.nil = enif_make_list(env, 0);
    frame *fs = NULL;
    ERL_NIF_TERM *vals = NULL;
    size_t fn = 0, fcap = 0, vn = 0, vcap = 0;
    int rc = -1;
    const T *pending = root;
    for (;;) {
        if (pending) {
            const T *t = pending;
            pending = NULL;
            if (t->kind == ES_ETF_LIST || t->kind == ES_ETF_TUPLE || t->kind == ES_ETF_MAP) {
                if (!(fs = room_for_one(fs, &fcap, fn, sizeof *fs, 256))) goto out;
                fs[fn].t = t;
                fs[fn].next = 0;
                fs[fn].count = t->kind == ES_ETF_LIST ? t->n + 1 : t->kind == ES_ETF_MAP ? 2 * t->n : t->n;
                fs[fn].base = vn;
                fn++;
            } else {
                if (!(vals = room_for_one(vals, &vcap, vn, sizeof *vals, 1024))) goto out;
                if (make_leaf(env, &cache, t, &vals[vn]) < 0) goto out;
                vn++;
            }
        }
        if (fn == 0) break;
        frame *f = &fs[fn - 1];
        if (f->next < f->count) {
            pending = f->t->u.items[f->next++];
            continue;
        }
        /* all children built: make the node */
        ERL_NIF_TERM *kids = vals + f->base, v;
        const T *t = f->t;
        if (t->kind == ES_ETF_TUPLE) {
            v = enif_make_tuple_from_array(env, kids, t->n);
        } else if (t->kind == ES_ETF_LIST) {
            if (t->u.items[t->n]->kind == ES_ETF_NIL) {
                v = enif_make_list_from_array(env, kids, t->n);
            } else {
                v = kids[t->n]; /* an improper tail */
                for (uint32_t i = t->n; i-- > 0;) v = enif_make_list_cell(env, kids[i], v);
            }
        } else {
            ERL_NIF_TERM *ks = enif_alloc(sizeof(ERL_NIF_TERM) * (t->n ? 2 * t->n : 1));
            if (!ks) goto out;
            ERL_NIF_TERM *vs = ks + t->n;
            for (uint32_t i = 0; i < t->n; i++) {
                ks[i] = kids[2 * i];
                vs[i] = kids[2 * i + 1];
            }
            int ok = enif_make_map_from_arrays(env, ks, vs, t->n, &v);
            enif_free(ks);
            if (!ok) goto out;
        }
        vn = f->base;
        /* a node without children may find the value stack full */
        if (!(vals = room_for_one(vals, &vcap, vn, sizeof *vals, 1024))) goto out;
        vals[vn++] = v;
        fn--;
    }
    if (vn != 1) goto out;
    *out = vals[0];
    rc = 0;
out:
    if (fs) enif_free(fs);
    if (vals) enif_free(vals);
    if (cache.cap) {
        enif_free(cache.keys);
        enif_free(cache.lens);
        enif_free(cache.vals);
    }
    return rc;
}

static void *block_alloc(size_t n) { return enif_alloc(n); }
static void block_free(void *p) { enif_free(p); }

ERL_NIF_TERM es_nif_forms_transform(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    ErlNifBinary forms, plan;
    es_forms_tree tree;
    ERL_NIF_TERM result;
    if (argc != 2) return es_raise_arg(env, "forms_transform/2 expects two binaries");
    if (!enif_inspect_binary(env, argv[0], &forms))
        return es_raise_arg(env, "forms_transform/2: the forms must be a binary (:erlang.term_to_binary(forms))");
    if (!enif_inspect_binary(env, argv[1], &plan))
        return es_raise_arg(env, "forms_transform/2: the plan must be a binary (:erlang.term_to_binary(plan))");
    if (es_forms_transform_tree(forms.data, forms.size, plan.data, plan.size, block_alloc, block_free, &tree) != 0)
        return enif_raise_exception(env, enif_make_atom(env, "enomem"));
    int rc = build(env, tree.result, &result);
    es_forms_tree_free(&tree);
    if (rc < 0) return enif_raise_exception(env, enif_make_atom(env, "enomem"));
    return result;
}
