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

#endif
