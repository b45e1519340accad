/* Declarations of NIF functions that live in component-specific glue files
 * (c_src/nif_<component>.c). c_src/nif.c owns the function table. */
#ifndef ELIXIR_SCOPE_NIF_GLUE_H
#define ELIXIR_SCOPE_NIF_GLUE_H

#include <erl_nif.h>

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

/* ---- nif_recording.c (recording files, version 3; issue 13) ---- */
#include "elixir_scope/event_store.h"
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

#endif
