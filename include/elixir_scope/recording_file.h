/* Recording file, version 3: the event store's own layout on disk, written and
 * read in pure C (no erl_nif), so that a recording saves and loads at the
 * speed of the store. Every integer is little-endian.
 *
 *   magic    "ESCOPE-REC\n"  11 bytes, u16 version (3)
 *   segment  "S", u32 n events, u32 words bytes, u32 payload bytes, u32 crc32 of the three parts,
 *            n records of 56 bytes, the word table, the payloads (ETF, as the store keeps them)
 *   ...      (one segment per ES_RECW_SEGMENT_EVENTS events or fewer)
 *   meta     "M", u32 length, u32 crc32, the metadata (opaque here: written and read by Elixir)
 *   trailer  "E", u64 total events, u32 crc32 of every segment crc32 and the meta crc32 (u32 each)
 *
 * A record: u64 id, ts, call_id, link; u32 pid, module, function (0 = none, else 1 + a position in
 * the segment's word table), line, payload length; u16 flags; u8 kind, arity.
 * A word table: u32 count, then count x (u16 length, the ETF of one atom or pid, with byte 131).
 *
 * Terms are VM words in the live store, and have no meaning in a file: the writer asks its
 * caller for the ETF of each distinct word a segment names (es_recw_word_fn), and the reader
 * gives each distinct word of the file a number (1, 2, ...) that the store it fills keeps in
 * their place; the caller turns the numbers back into terms from es_recr_word().
 *
 * The reader trusts nothing: every size against what is left of the file, every checksum,
 * every record field (ascending non-zero ids, known kinds and flags, words of the right type,
 * payload lengths that add up), and every payload and word is walked as ETF: well formed, of
 * the tags ElixirScope writes, using all its bytes, atoms valid UTF-8 of at most 255
 * characters. The atoms and external functions named are collected (es_recr_atom,
 * es_recr_export) so that the caller can bound the atoms a file creates before decoding any. */
#ifndef ELIXIR_SCOPE_RECORDING_FILE_H
#define ELIXIR_SCOPE_RECORDING_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "elixir_scope/event_store.h"
#include "elixir_scope/term_codec.h"

#define ES_REC_MAGIC "ESCOPE-REC\n"
#define ES_REC_MAGIC_LEN 11
#define ES_REC_VERSION 3
#define ES_REC_RECORD_BYTES 56
#define ES_RECW_SEGMENT_EVENTS 65536u
/* the reader refuses segments of more events (a writer never makes them) */
#define ES_RECR_MAX_SEGMENT_EVENTS (1u << 20)

/* ---- writer ---- */
typedef struct es_recw es_recw;

/* Appends the ETF (with byte 131) of `word` to out; nonzero on failure. */
typedef int (*es_recw_word_fn)(void *ctx, uint64_t word, es_buf *out);

/* Writes the magic and version to f (which stays the caller's); NULL on OOM or I/O error. */
es_recw *es_recw_new(FILE *f, es_recw_word_fn word, void *ctx);
/* Adds one event (an es_query_cb: returns nonzero to stop, after an error). */
int es_recw_add(void *w, const es_event_view *ev);
/* Writes the last segment; then the meta and the trailer. 0 on success. */
int es_recw_end(es_recw *w, const uint8_t *meta, uint32_t meta_len);
/* The first error (a static string), or NULL. */
const char *es_recw_error(const es_recw *w);
uint64_t es_recw_count(const es_recw *w);
/* What the events point at, for the metadata: each distinct (module word, line), the module
 * being the event's own or its call's; and each distinct atom named in a payload that may
 * name an Elixir module ("Elixir." and more): the struct modules are among them. */
void es_recw_lines(const es_recw *w, void (*cb)(void *ctx, uint64_t module, uint32_t line), void *ctx);
void es_recw_atoms(const es_recw *w, void (*cb)(void *ctx, const uint8_t *name, uint32_t len), void *ctx);
void es_recw_free(es_recw *w);

/* ---- reader ---- */
typedef struct es_recr es_recr;

es_recr *es_recr_new(void);
/* Reads f (size bytes, positioned at 0) into store, which must be empty. 0 on success; else -1
 * and es_recr_error says what is wrong and at which byte. The store is left half-filled on error
 * (the caller destroys it). Memory: one segment's bytes at a time, besides the store. */
int es_recr_load(es_recr *r, FILE *f, uint64_t size, es_store *store);
const char *es_recr_error(const es_recr *r);
uint64_t es_recr_count(const es_recr *r);
/* The meta section's bytes (checked against its crc32), valid until es_recr_free. */
const uint8_t *es_recr_meta(const es_recr *r, uint32_t *len);
/* Distinct words of the file: word number w (1..n) is the ETF bytes es_recr_word(r, w, &len). */
uint32_t es_recr_words(const es_recr *r);
const uint8_t *es_recr_word(const es_recr *r, uint32_t w, uint32_t *len);
/* The byte offset where word w first appears in the file (for messages). */
uint64_t es_recr_word_at(const es_recr *r, uint32_t w);
/* Distinct atoms named anywhere in the file (payloads and words), and external functions
 * (module and function as atom positions). */
uint32_t es_recr_atoms(const es_recr *r);
const uint8_t *es_recr_atom(const es_recr *r, uint32_t i, uint32_t *len);
uint32_t es_recr_exports(const es_recr *r);
void es_recr_export(const es_recr *r, uint32_t i, uint32_t *module, uint32_t *function, uint8_t *arity);
void es_recr_free(es_recr *r);

/* Walks one ETF term (buf starts with 131) and checks it is well formed, of ElixirScope's tags,
 * and uses all len bytes. 0 when it is; else -1 and *err_at is the offset of the fault. */
int es_rec_check_etf(const uint8_t *buf, size_t len, size_t *err_at);

#endif
