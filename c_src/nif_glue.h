/* Declarations of the NIF functions that live outside nif.c (one section per
 * component; append only). The function table is in nif.c. */
#ifndef ELIXIR_SCOPE_NIF_GLUE_H
#define ELIXIR_SCOPE_NIF_GLUE_H

#include <erl_nif.h>

/* ---- nif_llm.c (LLM client, JSON bridge; issue 5) ----
 * table lines (nif.c):
 *   {"llm_http_request", 5, es_nif_llm_http_request, ERL_NIF_DIRTY_JOB_IO_BOUND},
 *   {"json_decode", 1, es_nif_json_decode, 0},
 *   {"json_encode", 1, es_nif_json_encode, ERL_NIF_DIRTY_JOB_CPU_BOUND},
 *   {"llm_build_gemini_request", 5, es_nif_llm_build_gemini_request, ERL_NIF_DIRTY_JOB_CPU_BOUND},
 *   {"llm_build_openai_request", 6, es_nif_llm_build_openai_request, ERL_NIF_DIRTY_JOB_CPU_BOUND},
 *   {"llm_extract_text", 2, es_nif_llm_extract_text, ERL_NIF_DIRTY_JOB_CPU_BOUND},
 *   {"llm_parse_plan", 1, es_nif_llm_parse_plan, ERL_NIF_DIRTY_JOB_CPU_BOUND},
 *   {"llm_plan_schema", 0, es_nif_llm_plan_schema, 0},
 * load: es_llm_global_init() (from include/elixir_scope/llm_client.h) once;
 * unload: es_llm_global_cleanup(). */
ERL_NIF_TERM es_nif_llm_http_request(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM es_nif_json_decode(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM es_nif_json_encode(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM es_nif_llm_build_gemini_request(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM es_nif_llm_build_openai_request(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM es_nif_llm_extract_text(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM es_nif_llm_parse_plan(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM es_nif_llm_plan_schema(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]);

#endif
