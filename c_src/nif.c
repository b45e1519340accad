/* NIF entry point: the function table of ElixirScope.NIF.
 * (Minimal version on the ai branch; the lead's nif.c replaces it.) */
#include <erl_nif.h>

#include "elixir_scope/llm_client.h"
#include "nif_glue.h"

static int load(ErlNifEnv *env, void **priv, ERL_NIF_TERM info) {
    (void)env;
    (void)priv;
    (void)info;
    return es_llm_global_init() == 0 ? 0 : 1;
}

static int upgrade(ErlNifEnv *env, void **priv, void **old_priv, ERL_NIF_TERM info) {
    (void)env;
    (void)priv;
    (void)old_priv;
    (void)info;
    return 0;
}

static void unload(ErlNifEnv *env, void *priv) {
    (void)env;
    (void)priv;
    es_llm_global_cleanup();
}

static ErlNifFunc funcs[] = {
    /* ---- llm (issue 5) ---- */
    {"llm_http_request", 5, es_nif_llm_http_request, ERL_NIF_DIRTY_JOB_IO_BOUND},
    {"json_decode", 1, es_nif_json_decode, 0},
    {"json_encode", 1, es_nif_json_encode, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    {"llm_build_gemini_request", 5, es_nif_llm_build_gemini_request, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    {"llm_build_openai_request", 6, es_nif_llm_build_openai_request, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    {"llm_extract_text", 2, es_nif_llm_extract_text, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    {"llm_parse_plan", 1, es_nif_llm_parse_plan, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    {"llm_plan_schema", 0, es_nif_llm_plan_schema, 0},
};

ERL_NIF_INIT(Elixir.ElixirScope.NIF, funcs, load, NULL, upgrade, unload)
