/* Declarations of NIF functions that live in component-specific glue files
 * (c_src/nif_<component>.c). c_src/nif.c owns the function table. */
#ifndef ELIXIR_SCOPE_NIF_GLUE_H
#define ELIXIR_SCOPE_NIF_GLUE_H

#include <erl_nif.h>

#include "elixir_scope/event.h"
#include "elixir_scope/event_store.h"

/* Raises an ElixirScope argument error: %ArgumentError{message: msg}. */
ERL_NIF_TERM es_raise_arg(ErlNifEnv *env, const char *msg);

/* ---- nif_llm.c (LLM client, JSON bridge; issue 5) ---- */
ERL_NIF_TERM es_nif_llm_http_request(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM es_nif_json_decode(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM es_nif_json_encode(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM es_nif_llm_build_gemini_request(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM es_nif_llm_build_openai_request(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM es_nif_llm_extract_text(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM es_nif_llm_parse_plan(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM es_nif_llm_plan_schema(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);
/* ---- nif_forms.c (forms transformer): forms_transform(forms_etf, plan_etf) -> {ok, Forms} | {error, Reason} */
ERL_NIF_TERM es_nif_forms_transform(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);

/* The atom names of es_kind (nif.c). */
extern const char *const KIND_NAMES[ES_KIND__COUNT];

/* ---- nif_payload.c: stored payloads to terms (as binary_to_term/1), atoms memoised a query ---- */
#define ES_ATOM_MEMO_SLOTS 64
typedef struct es_atom_memo es_atom_memo;
es_atom_memo *es_atom_memo_new(void);
void es_atom_memo_free(es_atom_memo *memo);
/* 1 and *out, or 0: not external term format */
int es_decode_payload(ErlNifEnv *env, es_atom_memo *memo, const unsigned char *data, size_t len, ERL_NIF_TERM *out);

/* ---- nif_query.c (fast reads: issue 13) ---- */
/* query_events/3: the fields of %ElixirScope.Event{} from store rows, payloads decoded.
   begin (0: clock is not nil or {monotonic_ns, system_us}, nor a tree query's
   {clock, %ElixirScope.Event{}, node shape, expected events} or :words; or out of memory), run
   es_store_query with es_event_rows_cb(), then end: {[row tuple in Event field order],
   truncated_count}, or an ArgumentError raised; end frees the collector. */
typedef struct es_event_rows es_event_rows;
int es_event_rows_begin(ErlNifEnv *env, ERL_NIF_TERM clock, es_event_rows **out);
es_query_cb es_event_rows_cb(void);
/* what es_event_rows_cb() does with a view whose words are terms (lenient: see nif_query.c) */
int es_event_rows_add(es_event_rows *c, const es_event_view *ev, int lenient);
ERL_NIF_TERM es_event_rows_end(es_event_rows *c);
/* query_call_trees/3's end: {[{pid, [root node map]}], truncated_count}, or for :words {words,
   events} (see nif_query.c) */
ERL_NIF_TERM es_event_rows_end_trees(es_event_rows *c);
/* call_trees(events, :by_pid | :roots | :open_calls): call tree ops (see nif_query.c) */
ERL_NIF_TERM es_nif_call_trees(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);
/* ---- nif_recording.c (recording files, version 3; issue 13) ---- */
#define ES_NIF_RECORDING_TYPES 2
/* Opens the recording resource types into types[0..1] (from on_load); 0 on success. */
int es_nif_recording_open_types(ErlNifEnv *env, ErlNifResourceType **types);
ErlNifResourceType **es_nif_recording_types(ErlNifEnv *env);
/* The live store of a session resource, or NULL when t is not one. */
es_store *es_nif_session_store(ErlNifEnv *env, ERL_NIF_TERM t);
/* The query filters map as query/2 takes them (nif.c); 0 with *err set when one is bad. */
int es_nif_parse_query(ErlNifEnv *env, ERL_NIF_TERM map, es_query *q, const char **err);
/* An event as query/2 returns it; the head's pid, module and function words are terms. */
ERL_NIF_TERM es_nif_event_to_term(ErlNifEnv *env, const es_event_view *ev);
ERL_NIF_TERM es_nif_recording_save(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM es_nif_recording_save_end(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM es_nif_recording_open(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM es_nif_recording_ready(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM es_nif_recording_query(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM es_nif_recording_get(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM es_nif_recording_info(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);
/* recording_query_call_trees(recording, filters, clock): as query_call_trees/3 (nif_query.c) */
ERL_NIF_TERM es_nif_recording_query_call_trees(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);

#endif
