/* Append-only segmented event log with indexes.
 *
 * Layout
 * - Every appended event gets an ordinal (0, 1, 2, ... in append order).
 *   Segments hold contiguous ordinal ranges: an array of packed 48-byte
 *   records and a payload arena (a record keeps its payload offset; the
 *   length is the distance to the next record's offset).
 * - Records keep ts, call_id and link as u64, the id as a u32 delta from the
 *   segment's base id, the pid and the {module, function, arity} interned to
 *   u32 indexes of two key tables (open-addressing hash + array).
 * - Each key (pid, MFA) owns a posting list of ordinals: chunks of u32 deltas
 *   from a u64 chunk base (a chunk grows 4 -> 4096 entries, then a new one is
 *   started). Posting lists are sorted, so an id/ordinal window is a binary
 *   search away.
 * - Correlation ids: an open-addressing multimap {link, ordinal} for
 *   send/receive/spawn/exit/custom events with link != 0.
 * - get by id: binary search of the segments by base id, then of the records.
 * - Call ids: a :call's id is its call_id; appending its
 *   :return/:exception/:tail_call back-patches the call's link. The events of
 *   a call are found on the call's pid posting list between the call and its
 *   link.
 * - Byte cap: before an append would push bytes_used over max_bytes, the
 *   oldest whole segment is evicted (the newest, open segment never is).
 *   Posting entries of evicted events are skipped (they are a sorted prefix)
 *   and whole dead chunks are freed as soon as their segment goes.
 * - One pthread rwlock (writer-preferring): append/clear write, the rest read. */
#include "elixir_scope/event_store.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* records and segments                                                */

typedef struct es_rec {
    uint64_t ts;
    uint64_t call_id;
    uint64_t link;
    uint32_t id_delta; /* id - segment base id */
    uint32_t pid_idx;  /* index into the pid key table */
    uint32_t mfa;      /* index + 1 into the MFA key table; 0 = no module/function */
    uint32_t line;
    uint32_t payload_off; /* offset in the segment arena; length = next offset - this */
    uint16_t flags;
    uint8_t kind;
    uint8_t arity;
} es_rec;

_Static_assert(sizeof(es_rec) == 48, "packed record is 48 bytes");

typedef struct es_seg {
    uint64_t base_id;
    uint64_t first_ord;
    uint64_t min_ts, max_ts;
    es_rec *recs;     /* reserved for segment_events records */
    uint8_t *arena;   /* reserved for ES_ARENA_RESERVE bytes */
    uint32_t n;
    uint32_t arena_len;
    uint64_t rec_acct, arena_acct; /* bytes charged to the accounting */
} es_seg;

/* ------------------------------------------------------------------ */
/* posting lists                                                       */

#define CHUNK_MIN 4u
#define CHUNK_MAX 4096u

typedef struct es_chunk {
    uint64_t base;
    uint32_t n, cap;
    uint32_t d[];
} es_chunk;

typedef struct es_plist {
    es_chunk **chunks;
    uint32_t n, cap;
    uint64_t count; /* entries held (live or not yet compacted) */
} es_plist;

/* ------------------------------------------------------------------ */
/* key tables (pids and MFAs)                                          */

typedef struct es_key {
    uint64_t a, b; /* pid: (pid, 0); MFA: (module, function) */
    uint32_t c;    /* MFA: arity */
    uint32_t stamp;
    es_plist pl;
} es_key;

typedef struct es_keytab {
    es_key *keys;
    uint32_t n, cap;
    uint32_t *slots; /* key index + 1; 0 = empty */
    uint32_t slot_mask;
    uint32_t *free_idx; /* indexes of removed keys (c == KEY_DEAD), reused first */
    uint32_t nfree, free_cap;
    uint32_t last; /* the key interned last (checked by content: it may have been removed since) */
} es_keytab;

#define KEY_DEAD UINT32_MAX

/* correlation multimap */
typedef struct es_corr_ent {
    uint64_t key; /* 0 = empty */
    uint64_t ord;
} es_corr_ent;

struct es_store {
    pthread_rwlock_t lock;
    uint64_t max_bytes;
    uint32_t seg_events;

    es_seg **segs;
    uint32_t nsegs, segs_cap;
    es_seg *spare; /* one evicted segment kept for reuse (not in the accounting) */

    uint64_t next_ord;
    uint64_t first_live_ord;
    uint64_t last_id;

    es_keytab pids, mfas;
    uint32_t epoch;

    es_corr_ent *corr;
    uint64_t corr_cap, corr_n, corr_dead;

    /* accounting */
    uint64_t appended, evicted_events, evicted_segments;
    uint64_t record_bytes, payload_bytes, index_bytes;
};

/* ------------------------------------------------------------------ */
/* small helpers                                                       */

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static inline int corr_kind(uint8_t kind) {
    return kind == ES_KIND_SEND || kind == ES_KIND_RECEIVE || kind == ES_KIND_SPAWN || kind == ES_KIND_EXIT ||
           kind == ES_KIND_CUSTOM;
}

static inline int closing_kind(uint8_t kind) {
    return kind == ES_KIND_RETURN || kind == ES_KIND_EXCEPTION || kind == ES_KIND_TAIL_CALL;
}

/* ------------------------------------------------------------------ */
/* posting lists                                                       */

static inline uint64_t chunk_last(const es_chunk *c) { return c->base + c->d[c->n - 1]; }

static int plist_add(es_store *s, es_plist *pl, uint64_t ord) {
    es_chunk *c = pl->n ? pl->chunks[pl->n - 1] : NULL;
    if (c && ord - c->base <= UINT32_MAX) {
        if (c->n == c->cap && c->cap < CHUNK_MAX) {
            uint32_t ncap = c->cap * 2;
            es_chunk *nc = realloc(c, sizeof(es_chunk) + (size_t)ncap * 4);
            if (!nc) return -1;
            s->index_bytes += (uint64_t)(ncap - nc->cap) * 4;
            nc->cap = ncap;
            pl->chunks[pl->n - 1] = nc;
            c = nc;
        }
        if (c->n < c->cap) {
            c->d[c->n++] = (uint32_t)(ord - c->base);
            pl->count++;
            return 0;
        }
    }
    if (pl->n == pl->cap) {
        uint32_t ncap = pl->cap ? pl->cap * 2 : 1;
        es_chunk **na = realloc(pl->chunks, (size_t)ncap * sizeof(*na));
        if (!na) return -1;
        s->index_bytes += (uint64_t)(ncap - pl->cap) * sizeof(*na);
        pl->chunks = na;
        pl->cap = ncap;
    }
    es_chunk *nc = malloc(sizeof(es_chunk) + CHUNK_MIN * 4);
    if (!nc) return -1;
    s->index_bytes += sizeof(es_chunk) + CHUNK_MIN * 4;
    nc->base = ord;
    nc->n = 1;
    nc->cap = CHUNK_MIN;
    nc->d[0] = 0;
    pl->chunks[pl->n++] = nc;
    pl->count++;
    return 0;
}

/* Undoes the last plist_add (used to roll back a failed append). */
static void plist_pop(es_store *s, es_plist *pl) {
    es_chunk *c = pl->chunks[pl->n - 1];
    c->n--;
    pl->count--;
    if (c->n == 0) {
        s->index_bytes -= sizeof(es_chunk) + (uint64_t)c->cap * 4;
        free(c);
        pl->n--;
    }
}

/* Frees the chunks whose entries are all below first_live. */
static void plist_compact(es_store *s, es_plist *pl, uint64_t first_live) {
    uint32_t dead = 0;
    while (dead < pl->n && chunk_last(pl->chunks[dead]) < first_live) {
        es_chunk *c = pl->chunks[dead];
        s->index_bytes -= sizeof(es_chunk) + (uint64_t)c->cap * 4;
        pl->count -= c->n;
        free(c);
        dead++;
    }
    if (dead) {
        memmove(pl->chunks, pl->chunks + dead, (size_t)(pl->n - dead) * sizeof(*pl->chunks));
        pl->n -= dead;
    }
}

static void plist_free(es_plist *pl) {
    for (uint32_t i = 0; i < pl->n; i++) free(pl->chunks[i]);
    free(pl->chunks);
    memset(pl, 0, sizeof *pl);
}

typedef struct pcur {
    const es_plist *pl;
    uint32_t ci, pi;
    uint64_t cur;
} pcur;

/* Positions c at the first entry >= ord; returns 0 when there is none. */
static int pcur_lower_bound(pcur *c, const es_plist *pl, uint64_t ord) {
    c->pl = pl;
    uint32_t lo = 0, hi = pl->n;
    while (lo < hi) { /* first chunk whose last entry >= ord */
        uint32_t mid = lo + (hi - lo) / 2;
        if (chunk_last(pl->chunks[mid]) < ord)
            lo = mid + 1;
        else
            hi = mid;
    }
    c->ci = lo;
    if (lo == pl->n) {
        c->pi = 0;
        return 0;
    }
    const es_chunk *ch = pl->chunks[lo];
    uint32_t a = 0, b = ch->n;
    if (ord > ch->base) {
        uint64_t rel = ord - ch->base;
        while (a < b) {
            uint32_t mid = a + (b - a) / 2;
            if (ch->d[mid] < rel)
                a = mid + 1;
            else
                b = mid;
        }
    }
    c->pi = a;
    c->cur = ch->base + ch->d[a];
    return 1;
}

static inline int pcur_next(pcur *c) {
    const es_chunk *ch = c->pl->chunks[c->ci];
    if (++c->pi >= ch->n) {
        if (++c->ci >= c->pl->n) return 0;
        c->pi = 0;
        ch = c->pl->chunks[c->ci];
    }
    c->cur = ch->base + ch->d[c->pi];
    return 1;
}

static inline int pcur_prev(pcur *c) {
    if (c->pi == 0) {
        if (c->ci == 0) return 0;
        c->ci--;
        c->pi = c->pl->chunks[c->ci]->n;
    }
    c->pi--;
    const es_chunk *ch = c->pl->chunks[c->ci];
    c->cur = ch->base + ch->d[c->pi];
    return 1;
}

/* Positions c at the last entry < ord; returns 0 when there is none. */
static int pcur_last_below(pcur *c, const es_plist *pl, uint64_t ord) {
    if (pcur_lower_bound(c, pl, ord)) return pcur_prev(c);
    /* every entry is < ord: position at the very last one */
    if (pl->n == 0) return 0;
    c->ci = pl->n - 1;
    c->pi = pl->chunks[c->ci]->n - 1;
    c->cur = chunk_last(pl->chunks[c->ci]);
    return 1;
}

/* ------------------------------------------------------------------ */
/* key tables                                                          */

static inline uint64_t key_hash(uint64_t a, uint64_t b, uint32_t c) {
    return mix64(a ^ mix64(b + 0x9e3779b97f4a7c15ULL * (c + 1u)));
}

static uint32_t keytab_find(const es_keytab *kt, uint64_t a, uint64_t b, uint32_t c) {
    if (!kt->slots) return UINT32_MAX;
    uint64_t h = key_hash(a, b, c);
    for (uint32_t i = (uint32_t)h & kt->slot_mask;; i = (i + 1) & kt->slot_mask) {
        uint32_t v = kt->slots[i];
        if (!v) return UINT32_MAX;
        const es_key *k = &kt->keys[v - 1];
        if (k->a == a && k->b == b && k->c == c) return v - 1;
    }
}

static int keytab_rehash(es_store *s, es_keytab *kt, uint32_t nslots) {
    uint32_t *ns = calloc(nslots, sizeof(uint32_t));
    if (!ns) return -1;
    uint32_t mask = nslots - 1;
    for (uint32_t idx = 0; idx < kt->n; idx++) {
        const es_key *k = &kt->keys[idx];
        if (k->c == KEY_DEAD) continue;
        uint32_t i = (uint32_t)key_hash(k->a, k->b, k->c) & mask;
        while (ns[i]) i = (i + 1) & mask;
        ns[i] = idx + 1;
    }
    if (kt->slots) s->index_bytes -= (uint64_t)(kt->slot_mask + 1) * sizeof(uint32_t);
    free(kt->slots);
    kt->slots = ns;
    kt->slot_mask = mask;
    s->index_bytes += (uint64_t)nslots * sizeof(uint32_t);
    return 0;
}

static uint32_t keytab_intern(es_store *s, es_keytab *kt, uint64_t a, uint64_t b, uint32_t c) {
    /* a process records in bursts, a call's events share its MFA: the key of the event before is
     * the likely one, and comparing it costs less than hashing (a removed key's c is KEY_DEAD,
     * which no live key's is) */
    const es_key *prev = kt->last < kt->n ? &kt->keys[kt->last] : NULL;
    if (prev && prev->a == a && prev->b == b && prev->c == c) return kt->last;
    uint32_t idx = keytab_find(kt, a, b, c);
    if (idx != UINT32_MAX) return kt->last = idx;
    if (kt->n == UINT32_MAX - 1) return UINT32_MAX;
    if (!kt->nfree && kt->n == kt->cap) {
        uint32_t ncap = kt->cap ? kt->cap * 2 : 16;
        es_key *nk = realloc(kt->keys, (size_t)ncap * sizeof(es_key));
        if (!nk) return UINT32_MAX;
        s->index_bytes += (uint64_t)(ncap - kt->cap) * sizeof(es_key);
        kt->keys = nk;
        kt->cap = ncap;
    }
    uint32_t live = kt->n - kt->nfree;
    if (!kt->slots || (uint64_t)(live + 1) * 2 > (uint64_t)kt->slot_mask + 1) {
        uint32_t nslots = kt->slots ? (kt->slot_mask + 1) * 2 : 32;
        if (keytab_rehash(s, kt, nslots)) return UINT32_MAX;
    }
    idx = kt->nfree ? kt->free_idx[--kt->nfree] : kt->n++;
    es_key *k = &kt->keys[idx];
    memset(k, 0, sizeof *k);
    k->a = a;
    k->b = b;
    k->c = c;
    uint32_t i = (uint32_t)key_hash(a, b, c) & kt->slot_mask;
    while (kt->slots[i]) i = (i + 1) & kt->slot_mask;
    kt->slots[i] = idx + 1;
    return kt->last = idx;
}

/* Removes a key whose posting list is empty (no live event refers to it):
 * backward-shift deletion from the hash, index put on the free list. */
static void keytab_remove(es_store *s, es_keytab *kt, uint32_t idx) {
    es_key *k = &kt->keys[idx];
    if (kt->nfree == kt->free_cap) {
        uint32_t ncap = kt->free_cap ? kt->free_cap * 2 : 16;
        uint32_t *nf = realloc(kt->free_idx, (size_t)ncap * sizeof(uint32_t));
        if (!nf) return; /* keep the key; nothing is lost */
        s->index_bytes += (uint64_t)(ncap - kt->free_cap) * sizeof(uint32_t);
        kt->free_idx = nf;
        kt->free_cap = ncap;
    }
    uint32_t mask = kt->slot_mask;
    uint32_t i = (uint32_t)key_hash(k->a, k->b, k->c) & mask;
    while (kt->slots[i] != idx + 1) i = (i + 1) & mask;
    kt->slots[i] = 0;
    for (uint32_t j = (i + 1) & mask; kt->slots[j]; j = (j + 1) & mask) {
        const es_key *o = &kt->keys[kt->slots[j] - 1];
        uint32_t home = (uint32_t)key_hash(o->a, o->b, o->c) & mask;
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            kt->slots[i] = kt->slots[j];
            kt->slots[j] = 0;
            i = j;
        }
    }
    s->index_bytes -= (uint64_t)k->pl.cap * sizeof(*k->pl.chunks);
    plist_free(&k->pl);
    k->a = k->b = 0;
    k->c = KEY_DEAD;
    kt->free_idx[kt->nfree++] = idx;
}

static void keytab_free(es_keytab *kt) {
    for (uint32_t i = 0; i < kt->n; i++) plist_free(&kt->keys[i].pl);
    free(kt->keys);
    free(kt->slots);
    free(kt->free_idx);
    memset(kt, 0, sizeof *kt);
}

/* ------------------------------------------------------------------ */
/* correlation multimap                                                */

static int corr_rebuild(es_store *s, uint64_t min_cap) {
    uint64_t live = 0;
    for (uint64_t i = 0; i < s->corr_cap; i++)
        if (s->corr[i].key && s->corr[i].ord >= s->first_live_ord) live++;
    uint64_t ncap = 64;
    while (ncap < (live + 1) * 2 || ncap < min_cap) ncap *= 2;
    es_corr_ent *nt = calloc(ncap, sizeof(es_corr_ent));
    if (!nt) return -1;
    for (uint64_t i = 0; i < s->corr_cap; i++) {
        es_corr_ent e = s->corr[i];
        if (!e.key || e.ord < s->first_live_ord) continue;
        uint64_t j = mix64(e.key) & (ncap - 1);
        while (nt[j].key) j = (j + 1) & (ncap - 1);
        nt[j] = e;
    }
    s->index_bytes -= s->corr_cap * sizeof(es_corr_ent);
    free(s->corr);
    s->corr = nt;
    s->corr_cap = ncap;
    s->corr_n = live;
    s->corr_dead = 0;
    s->index_bytes += ncap * sizeof(es_corr_ent);
    return 0;
}

static int corr_insert(es_store *s, uint64_t key, uint64_t ord) {
    /* the rebuild drops dead entries and sizes the table to twice the live ones */
    if ((s->corr_n + 1) * 4 > s->corr_cap * 3 && corr_rebuild(s, 0)) return -1;
    uint64_t mask = s->corr_cap - 1;
    uint64_t j = mix64(key) & mask;
    while (s->corr[j].key) j = (j + 1) & mask;
    s->corr[j].key = key;
    s->corr[j].ord = ord;
    s->corr_n++;
    return 0;
}

/* ------------------------------------------------------------------ */
/* segments                                                            */

/* Segment memory: the record array (segment_events records) and the payload
 * arena are reserved as virtual memory (mmap, MAP_NORESERVE) once, never
 * moved or copied, and asked for transparent huge pages, so that filling
 * them costs one page fault per 2 MB instead of per 4 KB. Only touched pages
 * are resident; the accounting charges what has been written, rounded up to
 * 4 KB pages (with huge pages the resident set of the open segment can be up
 * to 2 MB more). */
#define ES_ARENA_RESERVE (256u << 20) /* payload bytes per segment, at most */
#define ES_PAGE 4096u

static inline uint64_t page_up(uint64_t x) { return (x + ES_PAGE - 1) & ~(uint64_t)(ES_PAGE - 1); }

static void *region_reserve(size_t bytes) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
    if (bytes >= (2u << 20)) madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

static inline size_t rec_reserve_bytes(const es_store *s) { return page_up((uint64_t)s->seg_events * sizeof(es_rec)); }

static void seg_release(es_store *s, es_seg *g) {
    munmap(g->recs, rec_reserve_bytes(s));
    munmap(g->arena, ES_ARENA_RESERVE);
    free(g);
}

/* Removes g from the accounting; keeps it as the spare (its pages stay
 * resident, so the next segment does not fault them in again) when keep is
 * set and there is no spare yet, else unmaps it. */
static void seg_free(es_store *s, es_seg *g, int keep) {
    s->record_bytes -= g->rec_acct + sizeof(es_seg);
    s->payload_bytes -= g->arena_acct;
    if (keep && !s->spare) {
        s->spare = g;
        return;
    }
    seg_release(s, g);
}

/* Gives back the rest of the (huge) page after a closed segment's data, so a
 * segment's resident memory matches its accounting (up to 4 KB). */
static void trim_after(uint8_t *base, uint64_t used, uint64_t reserved) {
    const uint64_t huge = 2u << 20;
    uintptr_t start = (uintptr_t)base + used;
    uintptr_t stop = (start + huge - 1) & ~(uintptr_t)(huge - 1);
    uintptr_t limit = (uintptr_t)base + reserved;
    if (stop > limit) stop = limit;
    if (stop > start) madvise((void *)start, stop - start, MADV_DONTNEED);
}

static void seg_close(const es_store *s, es_seg *g) {
    trim_after((uint8_t *)g->recs, g->rec_acct, rec_reserve_bytes(s));
    trim_after(g->arena, g->arena_acct, ES_ARENA_RESERVE);
}

static es_seg *seg_new(es_store *s, uint64_t base_id) {
    if (s->nsegs == s->segs_cap) {
        uint32_t ncap = s->segs_cap ? s->segs_cap * 2 : 16;
        es_seg **ns = realloc(s->segs, (size_t)ncap * sizeof(*ns));
        if (!ns) return NULL;
        s->index_bytes += (uint64_t)(ncap - s->segs_cap) * sizeof(*ns);
        s->segs = ns;
        s->segs_cap = ncap;
    }
    es_seg *g = s->spare;
    if (g) {
        s->spare = NULL;
        es_rec *recs = g->recs;
        uint8_t *arena = g->arena;
        memset(g, 0, sizeof *g);
        g->recs = recs;
        g->arena = arena;
        goto ready;
    }
    g = calloc(1, sizeof(es_seg));
    if (!g) return NULL;
    g->recs = region_reserve(rec_reserve_bytes(s));
    g->arena = region_reserve(ES_ARENA_RESERVE);
    if (!g->recs || !g->arena) {
        if (g->recs) munmap(g->recs, rec_reserve_bytes(s));
        if (g->arena) munmap(g->arena, ES_ARENA_RESERVE);
        free(g);
        return NULL;
    }
ready:
    if (s->nsegs) seg_close(s, s->segs[s->nsegs - 1]);
    g->base_id = base_id;
    g->first_ord = s->next_ord;
    g->min_ts = UINT64_MAX;
    g->max_ts = 0;
    s->record_bytes += sizeof(es_seg);
    s->segs[s->nsegs++] = g;
    return g;
}

static void evict_oldest(es_store *s) {
    es_seg *g = s->segs[0];
    memmove(s->segs, s->segs + 1, (size_t)(s->nsegs - 1) * sizeof(*s->segs));
    s->nsegs--;
    s->first_live_ord = g->first_ord + g->n;
    uint32_t stamp = ++s->epoch;
    if (stamp == 0) { /* wrapped: reset every stamp */
        for (uint32_t i = 0; i < s->pids.n; i++) s->pids.keys[i].stamp = 0;
        for (uint32_t i = 0; i < s->mfas.n; i++) s->mfas.keys[i].stamp = 0;
        stamp = s->epoch = 1;
    }
    for (uint32_t i = 0; i < g->n; i++) {
        const es_rec *r = &g->recs[i];
        es_key *pk = &s->pids.keys[r->pid_idx];
        if (pk->stamp != stamp) {
            pk->stamp = stamp;
            plist_compact(s, &pk->pl, s->first_live_ord);
            if (pk->pl.n == 0) keytab_remove(s, &s->pids, r->pid_idx);
        }
        if (r->mfa) {
            es_key *mk = &s->mfas.keys[r->mfa - 1];
            if (mk->stamp != stamp) {
                mk->stamp = stamp;
                plist_compact(s, &mk->pl, s->first_live_ord);
                if (mk->pl.n == 0) keytab_remove(s, &s->mfas, r->mfa - 1);
            }
        }
        if (r->link && corr_kind(r->kind)) s->corr_dead++;
    }
    s->evicted_events += g->n;
    s->evicted_segments++;
    seg_free(s, g, 1);
    if (s->corr_dead * 2 > s->corr_n && s->corr_dead > 1024) corr_rebuild(s, 0);
}

/* Segment holding ordinal ord (which must be live). */
static es_seg *seg_for_ord(const es_store *s, uint64_t ord) {
    uint32_t lo = 0, hi = s->nsegs;
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->segs[mid]->first_ord <= ord)
            lo = mid;
        else
            hi = mid;
    }
    return s->segs[lo];
}

/* Index of the last segment whose base_id <= id, or -1. */
static int64_t seg_index_for_id(const es_store *s, uint64_t id) {
    if (!s->nsegs || s->segs[0]->base_id > id) return -1;
    uint32_t lo = 0, hi = s->nsegs;
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->segs[mid]->base_id <= id)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* First record index in g with id >= id. */
static uint32_t seg_lower_bound(const es_seg *g, uint64_t id) {
    if (id <= g->base_id) return 0;
    uint64_t rel64 = id - g->base_id;
    if (rel64 > UINT32_MAX) return g->n;
    uint32_t rel = (uint32_t)rel64;
    /* deltas strictly increase from 0, so delta[i] >= i: the answer is <= rel,
       and with dense ids it is rel itself */
    if (rel < g->n && g->recs[rel].id_delta == rel) return rel;
    uint32_t lo = 0, hi = rel < g->n ? rel + 1 : g->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (g->recs[mid].id_delta < rel)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Ordinal of the live event with this id, or UINT64_MAX. */
static uint64_t ord_of_id(const es_store *s, uint64_t id) {
    int64_t si = seg_index_for_id(s, id);
    if (si < 0) return UINT64_MAX;
    const es_seg *g = s->segs[si];
    uint32_t i = seg_lower_bound(g, id);
    if (i < g->n && g->base_id + g->recs[i].id_delta == id) return g->first_ord + i;
    return UINT64_MAX;
}

/* First live ordinal whose id >= id (next_ord when none). */
static uint64_t ord_lower_bound_id(const es_store *s, uint64_t id) {
    int64_t si = seg_index_for_id(s, id);
    if (si < 0) return s->first_live_ord;
    const es_seg *g = s->segs[si];
    uint32_t i = seg_lower_bound(g, id);
    if (i < g->n) return g->first_ord + i;
    return g->first_ord + g->n; /* the next segment's first ordinal */
}

/* First ordinal a filter `id > after_id` keeps (next_ord when none). */
static uint64_t ord_after_id(const es_store *s, uint64_t after_id) {
    return after_id == UINT64_MAX ? s->next_ord : ord_lower_bound_id(s, after_id + 1);
}

static inline int kind_in(uint32_t mask, const es_rec *r) { return (mask >> r->kind) & 1u; }

static inline es_rec *rec_of_ord(const es_store *s, uint64_t ord, es_seg **gp) {
    es_seg *g = seg_for_ord(s, ord);
    if (gp) *gp = g;
    return &g->recs[ord - g->first_ord];
}

/* ------------------------------------------------------------------ */
/* create / destroy / clear                                            */

es_store *es_store_create(const es_store_config *cfg) {
    uint32_t seg_events = cfg && cfg->segment_events ? cfg->segment_events : 65536;
    if (seg_events < 16) return NULL;
    es_store *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    if (pthread_rwlock_init(&s->lock, &attr) != 0) {
        pthread_rwlockattr_destroy(&attr);
        free(s);
        return NULL;
    }
    pthread_rwlockattr_destroy(&attr);
    s->max_bytes = cfg ? cfg->max_bytes : 0;
    s->seg_events = seg_events;
    return s;
}

static void store_free_contents(es_store *s) {
    for (uint32_t i = 0; i < s->nsegs; i++) seg_free(s, s->segs[i], 0);
    if (s->spare) seg_release(s, s->spare);
    s->spare = NULL;
    free(s->segs);
    keytab_free(&s->pids);
    keytab_free(&s->mfas);
    free(s->corr);
    s->segs = NULL;
    s->nsegs = s->segs_cap = 0;
    s->corr = NULL;
    s->corr_cap = s->corr_n = s->corr_dead = 0;
}

void es_store_destroy(es_store *store) {
    if (!store) return;
    store_free_contents(store);
    pthread_rwlock_destroy(&store->lock);
    free(store);
}

void es_store_clear(es_store *store) {
    pthread_rwlock_wrlock(&store->lock);
    store_free_contents(store);
    store->next_ord = store->first_live_ord = 0;
    store->last_id = 0;
    store->epoch = 0;
    store->appended = store->evicted_events = store->evicted_segments = 0;
    store->record_bytes = store->payload_bytes = store->index_bytes = 0;
    pthread_rwlock_unlock(&store->lock);
}

/* ------------------------------------------------------------------ */
/* append                                                              */

static inline uint64_t bytes_used(const es_store *s) { return s->record_bytes + s->payload_bytes + s->index_bytes; }

static int append_locked(es_store *s, const es_event_head *head, const uint8_t *payload, uint32_t len) {
    uint64_t id = head->id;
    if (id == 0 || (s->appended && id <= s->last_id) || head->kind >= ES_KIND__COUNT) return -1;
    if (len > ES_ARENA_RESERVE || (len && !payload)) return -1;

    es_seg *g = s->nsegs ? s->segs[s->nsegs - 1] : NULL;
    if (!g || g->n >= s->seg_events || id - g->base_id > UINT32_MAX ||
        (uint64_t)g->arena_len + len > ES_ARENA_RESERVE) {
        g = seg_new(s, id);
        if (!g) return -1;
    }
    /* byte cap: evict the oldest segments (never the open one) */
    if (s->max_bytes) {
        uint64_t need = sizeof(es_rec) + len + 8;
        while (s->nsegs > 1 && bytes_used(s) + need > s->max_bytes) evict_oldest(s);
    }
    uint64_t ord = s->next_ord;
    uint32_t pid_idx = keytab_intern(s, &s->pids, head->pid, 0, 0);
    if (pid_idx == UINT32_MAX) return -1;

    uint64_t module = head->module, function = head->function;
    uint8_t arity = head->arity;
    /* the call this event closes (back-patched once nothing can fail) */
    es_rec *call = NULL;
    if (closing_kind(head->kind) && head->call_id) {
        uint64_t cord = ord_of_id(s, head->call_id);
        if (cord != UINT64_MAX) {
            es_rec *cr = rec_of_ord(s, cord, NULL);
            if (cr->kind == ES_KIND_CALL) {
                call = cr;
                if (module == 0 && function == 0 && cr->mfa) {
                    const es_key *mk = &s->mfas.keys[cr->mfa - 1];
                    module = mk->a;
                    function = mk->b;
                    arity = (uint8_t)mk->c;
                }
            }
        }
    }
    /* index entries: all or nothing */
    uint32_t mfa = 0;
    es_plist *mpl = NULL, *ppl;
    if (module || function) {
        uint32_t mi = keytab_intern(s, &s->mfas, module, function, arity);
        if (mi == UINT32_MAX) return -1;
        mpl = &s->mfas.keys[mi].pl;
        if (plist_add(s, mpl, ord)) return -1;
        mfa = mi + 1;
    }
    ppl = &s->pids.keys[pid_idx].pl;
    if (plist_add(s, ppl, ord)) {
        if (mpl) plist_pop(s, mpl);
        return -1;
    }
    if (head->link && corr_kind(head->kind) && corr_insert(s, head->link, ord)) {
        plist_pop(s, ppl);
        if (mpl) plist_pop(s, mpl);
        return -1;
    }
    if (call) call->link = id;

    es_rec *r = &g->recs[g->n];
    r->ts = head->ts;
    r->call_id = head->call_id;
    r->link = head->link;
    r->id_delta = (uint32_t)(id - g->base_id);
    r->pid_idx = pid_idx;
    r->mfa = mfa;
    r->line = head->line;
    r->payload_off = g->arena_len;
    r->flags = head->flags;
    r->kind = head->kind;
    r->arity = arity;
    if (len) memcpy(g->arena + g->arena_len, payload, len);
    g->arena_len += len;
    g->n++;
    uint64_t ra = page_up((uint64_t)g->n * sizeof(es_rec)), pa = page_up(g->arena_len);
    if (ra != g->rec_acct) {
        s->record_bytes += ra - g->rec_acct;
        g->rec_acct = ra;
    }
    if (pa != g->arena_acct) {
        s->payload_bytes += pa - g->arena_acct;
        g->arena_acct = pa;
    }
    if (head->ts < g->min_ts) g->min_ts = head->ts;
    if (head->ts > g->max_ts) g->max_ts = head->ts;

    s->next_ord++;
    s->last_id = id;
    s->appended++;
    /* growth can overshoot the estimate: settle under the cap again */
    while (s->max_bytes && s->nsegs > 1 && bytes_used(s) > s->max_bytes) evict_oldest(s);
    return 0;
}

int es_store_append(es_store *store, const es_event_head *head, const uint8_t *payload, uint32_t len) {
    pthread_rwlock_wrlock(&store->lock);
    int rc = append_locked(store, head, payload, len);
    pthread_rwlock_unlock(&store->lock);
    return rc;
}

void es_store_write_lock(es_store *store) { pthread_rwlock_wrlock(&store->lock); }

int es_store_try_write_lock(es_store *store) { return pthread_rwlock_trywrlock(&store->lock) == 0; }

void es_store_write_unlock(es_store *store) { pthread_rwlock_unlock(&store->lock); }

int es_store_append_locked(es_store *store, const es_event_head *head, const uint8_t *payload, uint32_t len) {
    return append_locked(store, head, payload, len);
}

/* ------------------------------------------------------------------ */
/* views                                                               */

static void make_view(const es_store *s, const es_seg *g, const es_rec *r, es_event_view *v) {
    es_event_head *h = &v->head;
    h->id = g->base_id + r->id_delta;
    h->ts = r->ts;
    h->pid = s->pids.keys[r->pid_idx].a;
    if (r->mfa) {
        const es_key *mk = &s->mfas.keys[r->mfa - 1];
        h->module = mk->a;
        h->function = mk->b;
    } else {
        h->module = 0;
        h->function = 0;
    }
    h->call_id = r->call_id;
    h->link = r->link;
    h->line = r->line;
    h->kind = r->kind;
    h->arity = r->arity;
    h->flags = r->flags;
    uint32_t idx = (uint32_t)(r - g->recs);
    uint32_t end = idx + 1 < g->n ? g->recs[idx + 1].payload_off : g->arena_len;
    v->payload_len = end - r->payload_off;
    v->payload = v->payload_len ? g->arena + r->payload_off : NULL;
}

int es_store_get(es_store *store, uint64_t id, es_query_cb cb, void *ctx) {
    pthread_rwlock_rdlock(&store->lock);
    int found = 0;
    uint64_t ord = ord_of_id(store, id);
    if (ord != UINT64_MAX) {
        es_seg *g;
        es_rec *r = rec_of_ord(store, ord, &g);
        es_event_view v;
        make_view(store, g, r, &v);
        found = 1;
        if (cb) cb(ctx, &v);
    }
    pthread_rwlock_unlock(&store->lock);
    return found;
}

/* ------------------------------------------------------------------ */
/* queries                                                             */

typedef struct qctx {
    const es_store *s;
    const es_query *q;
    es_query_cb cb;
    void *ctx;
    size_t count;
    int stop;
    uint32_t pid_idx;
    es_seg *seg; /* cache for ordinal -> segment */
} qctx;

static int rec_matches(const qctx *c, const es_seg *g, const es_rec *r) {
    const es_query *q = c->q;
    uint32_t f = q->fields;
    if ((f & ES_Q_PID) && r->pid_idx != c->pid_idx) return 0;
    if (f & ES_Q_MODULE) {
        if (!r->mfa) return 0;
        const es_key *mk = &c->s->mfas.keys[r->mfa - 1];
        if (mk->a != q->module) return 0;
        if ((f & ES_Q_FUNCTION) && mk->b != q->function) return 0;
        if ((f & ES_Q_FUNCTION) && (f & ES_Q_ARITY) && mk->c != q->arity) return 0;
    }
    if ((f & ES_Q_KINDS) && !kind_in(q->kinds_mask, r)) return 0;
    if (f & ES_Q_CALL_ID) {
        uint64_t id = g->base_id + r->id_delta;
        if (r->call_id != q->call_id && id != q->call_id) return 0;
    }
    if ((f & ES_Q_CORRELATION) && (r->link != q->correlation_id || !corr_kind(r->kind))) return 0;
    if ((f & ES_Q_SINCE_TS) && r->ts < q->since_ts) return 0;
    if ((f & ES_Q_UNTIL_TS) && r->ts > q->until_ts) return 0;
    if (f & (ES_Q_AFTER_ID | ES_Q_BEFORE_ID)) {
        uint64_t id = g->base_id + r->id_delta;
        if ((f & ES_Q_AFTER_ID) && id <= q->after_id) return 0;
        if ((f & ES_Q_BEFORE_ID) && id >= q->before_id) return 0;
    }
    return 1;
}

/* Visits one live ordinal; returns nonzero to stop. */
static int visit(qctx *c, uint64_t ord) {
    es_seg *g = c->seg;
    if (!g || ord < g->first_ord || ord >= g->first_ord + g->n) {
        g = seg_for_ord(c->s, ord);
        c->seg = g;
    }
    const es_rec *r = &g->recs[ord - g->first_ord];
    if (!rec_matches(c, g, r)) return 0;
    es_event_view v;
    make_view(c->s, g, r, &v);
    c->count++;
    if (c->cb && c->cb(c->ctx, &v)) c->stop = 1;
    if (c->q->limit && c->count >= c->q->limit) c->stop = 1;
    return c->stop;
}

/* k-way merge of posting lists over ordinals [lo, hi). */
static inline int heap_less(const pcur *a, const pcur *b, int rev) { return rev ? a->cur > b->cur : a->cur < b->cur; }

static void heap_down(pcur *h, size_t n, size_t i, int rev) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && heap_less(&h[l], &h[m], rev)) m = l;
        if (r < n && heap_less(&h[r], &h[m], rev)) m = r;
        if (m == i) return;
        pcur t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void iterate_plists(qctx *c, const es_plist **pls, size_t k, uint64_t lo, uint64_t hi) {
    int rev = c->q->reverse;
    pcur small[8];
    pcur *h = k <= 8 ? small : malloc(k * sizeof(pcur));
    if (!h) return;
    size_t n = 0;
    for (size_t i = 0; i < k; i++) {
        pcur cur;
        int ok = rev ? pcur_last_below(&cur, pls[i], hi) : pcur_lower_bound(&cur, pls[i], lo);
        if (ok && cur.cur >= lo && cur.cur < hi) h[n++] = cur;
    }
    for (size_t i = n / 2; i-- > 0;) heap_down(h, n, i, rev);
    while (n > 0 && !c->stop) {
        if (visit(c, h[0].cur)) break;
        int ok = rev ? pcur_prev(&h[0]) : pcur_next(&h[0]);
        if (!ok || h[0].cur < lo || h[0].cur >= hi) h[0] = h[--n];
        heap_down(h, n, 0, rev);
    }
    if (h != small) free(h);
}

static void iterate_range(qctx *c, uint64_t lo, uint64_t hi) {
    const es_store *s = c->s;
    const es_query *q = c->q;
    if (lo >= hi || !s->nsegs) return;
    if (!q->reverse) {
        for (uint32_t si = 0; si < s->nsegs && !c->stop; si++) {
            es_seg *g = s->segs[si];
            uint64_t a = g->first_ord, b = g->first_ord + g->n;
            if (b <= lo) continue;
            if (a >= hi) break;
            if ((q->fields & ES_Q_SINCE_TS) && g->max_ts < q->since_ts) continue;
            if ((q->fields & ES_Q_UNTIL_TS) && g->min_ts > q->until_ts) continue;
            c->seg = g;
            for (uint64_t o = a > lo ? a : lo; o < b && o < hi; o++)
                if (visit(c, o)) return;
        }
    } else {
        for (uint32_t si = s->nsegs; si-- > 0 && !c->stop;) {
            es_seg *g = s->segs[si];
            uint64_t a = g->first_ord, b = g->first_ord + g->n;
            if (a >= hi) continue;
            if (b <= lo) break;
            if ((q->fields & ES_Q_SINCE_TS) && g->max_ts < q->since_ts) continue;
            if ((q->fields & ES_Q_UNTIL_TS) && g->min_ts > q->until_ts) continue;
            c->seg = g;
            uint64_t top = b < hi ? b : hi, bot = a > lo ? a : lo;
            for (uint64_t o = top; o-- > bot;)
                if (visit(c, o)) return;
        }
    }
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void iterate_correlation(qctx *c, uint64_t lo, uint64_t hi) {
    const es_store *s = c->s;
    uint64_t key = c->q->correlation_id;
    if (!s->corr_cap || key == 0) return;
    size_t n = 0, cap = 16;
    uint64_t *ords = malloc(cap * sizeof(uint64_t));
    if (!ords) return;
    uint64_t mask = s->corr_cap - 1;
    for (uint64_t j = mix64(key) & mask; s->corr[j].key; j = (j + 1) & mask) {
        if (s->corr[j].key != key || s->corr[j].ord < lo || s->corr[j].ord >= hi) continue;
        if (n == cap) {
            uint64_t *no = realloc(ords, cap * 2 * sizeof(uint64_t));
            if (!no) break;
            ords = no;
            cap *= 2;
        }
        ords[n++] = s->corr[j].ord;
    }
    qsort(ords, n, sizeof(uint64_t), cmp_u64);
    if (!c->q->reverse) {
        for (size_t i = 0; i < n; i++)
            if (visit(c, ords[i])) break;
    } else {
        for (size_t i = n; i-- > 0;)
            if (visit(c, ords[i])) break;
    }
    free(ords);
}

/* A span reads per process two binary searches and the records at both ends of its new events
 * (skipping those of other kinds): worth it while processes are fewer than a quarter of the events
 * a scan would read. */
#define SPAN_EVENTS_PER_PID 4

int es_store_pid_spans(es_store *store, uint64_t after_id, uint32_t kinds_mask, es_pid_span *out, size_t max,
                       uint64_t *last_id) {
    es_store *s = store;
    int n = -1;
    pthread_rwlock_rdlock(&store->lock);
    uint64_t lo = s->first_live_ord, hi = s->next_ord;
    uint64_t o = ord_after_id(s, after_id);
    if (o > lo) lo = o;
    uint64_t live_pids = s->pids.n - s->pids.nfree;
    if (max > (size_t)INT32_MAX || (lo < hi && live_pids * SPAN_EVENTS_PER_PID > hi - lo)) goto done;
    size_t k = 0;
    for (uint32_t idx = 0; lo < hi && idx < s->pids.n; idx++) {
        const es_key *key = &s->pids.keys[idx];
        const es_plist *pl = &key->pl;
        pcur first, last;
        if (key->c == KEY_DEAD || !key->a || !pl->n || chunk_last(pl->chunks[pl->n - 1]) < lo) continue;
        if (!pcur_lower_bound(&first, pl, lo)) continue;
        es_seg *g;
        const es_rec *r = rec_of_ord(s, first.cur, &g);
        while (!kind_in(kinds_mask, r) && pcur_next(&first)) r = rec_of_ord(s, first.cur, &g);
        if (!kind_in(kinds_mask, r)) continue; /* only events of other kinds */
        if (k == max) goto done;
        out[k].pid = key->a;
        out[k].first_id = g->base_id + r->id_delta;
        out[k].first_ts = r->ts;
        pcur_last_below(&last, pl, hi);
        const es_rec *e = rec_of_ord(s, last.cur, NULL);
        while (!kind_in(kinds_mask, e) && pcur_prev(&last)) e = rec_of_ord(s, last.cur, NULL);
        out[k++].last_ts = e->ts;
    }
    *last_id = after_id;
    for (uint64_t ord = hi; ord > lo; ord--) { /* the newest event of those kinds */
        es_seg *g;
        const es_rec *r = rec_of_ord(s, ord - 1, &g);
        if (kind_in(kinds_mask, r)) {
            *last_id = g->base_id + r->id_delta;
            break;
        }
    }
    n = (int)k;
done:
    pthread_rwlock_unlock(&store->lock);
    return n;
}

size_t es_store_query(es_store *store, const es_query *q, es_query_cb cb, void *ctx) {
    pthread_rwlock_rdlock(&store->lock);
    es_store *s = store;
    qctx c = {s, q, cb, ctx, 0, 0, 0, NULL};
    uint32_t f = q->fields;
    uint64_t lo = s->first_live_ord, hi = s->next_ord;
    const es_plist **pls = NULL;

    if (f & ES_Q_AFTER_ID) {
        uint64_t o = ord_after_id(s, q->after_id);
        if (o > lo) lo = o;
    }
    if (f & ES_Q_BEFORE_ID) {
        uint64_t o = ord_lower_bound_id(s, q->before_id);
        if (o < hi) hi = o;
    }
    if ((f & ES_Q_SINCE_TS) && (f & ES_Q_UNTIL_TS) && q->since_ts > q->until_ts) goto done;
    if (lo >= hi) goto done;

    if (f & ES_Q_PID) {
        c.pid_idx = keytab_find(&s->pids, q->pid, 0, 0);
        if (c.pid_idx == UINT32_MAX) goto done;
    }

    /* 1. call id: the call's pid between the call and its closing event */
    if (f & ES_Q_CALL_ID) {
        uint64_t cord = ord_of_id(s, q->call_id);
        if (cord != UINT64_MAX) {
            es_rec *cr = rec_of_ord(s, cord, NULL);
            if (cr->kind == ES_KIND_CALL) {
                uint64_t a = cord > lo ? cord : lo;
                uint64_t b = hi;
                if (cr->link) {
                    uint64_t lord = ord_of_id(s, cr->link);
                    if (lord != UINT64_MAX && lord + 1 < b) b = lord + 1;
                }
                const es_plist *pl = &s->pids.keys[cr->pid_idx].pl;
                if (a < b) iterate_plists(&c, &pl, 1, a, b);
                goto done;
            }
        }
        /* the call itself is gone (or was never a call): scan from its id on */
        uint64_t a = q->call_id == 0 ? lo : ord_lower_bound_id(s, q->call_id);
        iterate_range(&c, a > lo ? a : lo, hi);
        goto done;
    }
    /* 2. correlation id */
    if (f & ES_Q_CORRELATION) {
        iterate_correlation(&c, lo, hi);
        goto done;
    }
    /* 3. the smaller of the pid and MFA posting lists; else a scan */
    uint64_t best = hi - lo;
    int use = 0; /* 0 scan, 1 pid, 2 mfas */
    size_t k = 0;
    if (f & ES_Q_PID) {
        uint64_t cnt = s->pids.keys[c.pid_idx].pl.count;
        if (cnt < best) {
            best = cnt;
            use = 1;
        }
    }
    if (f & ES_Q_MODULE) {
        int want_f = (f & ES_Q_FUNCTION) != 0, want_a = want_f && (f & ES_Q_ARITY);
        if (want_a) {
            uint32_t mi = keytab_find(&s->mfas, q->module, q->function, q->arity);
            if (mi == UINT32_MAX) goto done;
            pls = malloc(sizeof(*pls));
            if (!pls) goto done;
            pls[k++] = &s->mfas.keys[mi].pl;
        } else {
            pls = malloc((size_t)(s->mfas.n ? s->mfas.n : 1) * sizeof(*pls));
            if (!pls) goto done;
            for (uint32_t i = 0; i < s->mfas.n; i++) {
                const es_key *mk = &s->mfas.keys[i];
                if (mk->a == q->module && (!want_f || mk->b == q->function) && mk->pl.count) pls[k++] = &mk->pl;
            }
            if (k == 0) goto done;
        }
        uint64_t cnt = 0;
        for (size_t i = 0; i < k; i++) cnt += pls[i]->count;
        if (cnt < best) {
            best = cnt;
            use = 2;
        }
    }
    if (use == 1) {
        const es_plist *pl = &s->pids.keys[c.pid_idx].pl;
        iterate_plists(&c, &pl, 1, lo, hi);
    } else if (use == 2) {
        iterate_plists(&c, pls, k, lo, hi);
    } else {
        iterate_range(&c, lo, hi);
    }
done:
    free(pls);
    pthread_rwlock_unlock(&store->lock);
    return c.count;
}

/* ------------------------------------------------------------------ */
/* stats                                                               */

void es_store_get_stats(es_store *store, es_store_stats *out) {
    pthread_rwlock_rdlock(&store->lock);
    es_store *s = store;
    memset(out, 0, sizeof *out);
    out->appended = s->appended;
    out->evicted_events = s->evicted_events;
    out->evicted_segments = s->evicted_segments;
    out->live_events = s->appended - s->evicted_events;
    out->record_bytes = s->record_bytes;
    out->payload_bytes = s->payload_bytes;
    out->index_bytes = s->index_bytes;
    out->bytes_used = bytes_used(s);
    out->segments = s->nsegs;
    if (out->live_events) {
        const es_seg *g0 = s->segs[0];
        out->first_id = g0->base_id + g0->recs[0].id_delta;
        out->last_id = s->last_id;
        out->min_ts = UINT64_MAX;
        out->max_ts = 0;
        for (uint32_t i = 0; i < s->nsegs; i++) {
            if (s->segs[i]->n == 0) continue;
            if (s->segs[i]->min_ts < out->min_ts) out->min_ts = s->segs[i]->min_ts;
            if (s->segs[i]->max_ts > out->max_ts) out->max_ts = s->segs[i]->max_ts;
        }
    }
    pthread_rwlock_unlock(&store->lock);
}
