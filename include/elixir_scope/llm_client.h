/* The LLM client: a libcurl HTTP(S) request executor and cJSON helpers that
 * build Gemini / OpenAI-compatible requests, extract the model's text from
 * their responses and parse an instrumentation plan answer into a validated
 * intermediate form. Pure C (no erl_nif.h) so CMocka tests it alone.
 *
 * Ownership: every char* / struct returned by a function here is malloc'ed
 * and owned by the caller, who frees it with free() or the matching *_free. */
#ifndef ELIXIR_SCOPE_LLM_CLIENT_H
#define ELIXIR_SCOPE_LLM_CLIENT_H

#include <stddef.h>
#include <stdint.h>

/* Must be called once per process before any request (the NIF calls it
 * from its load callback): wraps curl_global_init. Returns 0 on success. */
int es_llm_global_init(void);
/* Counterpart of es_llm_global_init (at NIF unload). */
void es_llm_global_cleanup(void);

/* ---------------------------------------------------------------- HTTP */

typedef enum es_http_err {
    ES_HTTP_OK = 0,
    ES_HTTP_ERR_BAD_REQUEST,     /* invalid arguments (method, url, header) */
    ES_HTTP_ERR_BAD_URL,         /* malformed or unsupported URL */
    ES_HTTP_ERR_RESOLVE,         /* host name could not be resolved */
    ES_HTTP_ERR_CONNECT_REFUSED, /* connection refused / host unreachable */
    ES_HTTP_ERR_TIMEOUT,         /* connect or total timeout reached */
    ES_HTTP_ERR_TLS,             /* TLS handshake or certificate verification failed */
    ES_HTTP_ERR_TOO_LARGE,       /* response body exceeded max_response_bytes */
    ES_HTTP_ERR_IO,              /* send/receive failure, connection closed early, bad response */
    ES_HTTP_ERR_NOMEM,
    ES_HTTP_ERR_OTHER,
    ES_HTTP_ERR__COUNT
} es_http_err;

/* A short stable name for an error code ("timeout", "tls", ...). */
const char *es_http_err_name(es_http_err e);

typedef struct es_http_header {
    char *name;  /* as received (trimmed) */
    char *value; /* trimmed */
} es_http_header;

typedef struct es_http_request {
    const char *method;   /* "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD" */
    const char *url;      /* http:// or https:// only */
    const char *const *headers; /* "Name: value" lines (no CR/LF allowed) */
    size_t n_headers;
    const char *body;     /* may be NULL when body_len == 0 */
    size_t body_len;
    long timeout_ms;          /* total; > 0 */
    long connect_timeout_ms;  /* 0 = same as timeout_ms */
    size_t max_response_bytes; /* > 0; larger bodies fail with ES_HTTP_ERR_TOO_LARGE */
    const char *ca_file;  /* optional PEM bundle to trust instead of the system store */
} es_http_request;

typedef struct es_http_response {
    es_http_err err;     /* ES_HTTP_OK when a complete HTTP response was received */
    char errmsg[256];    /* human-readable detail when err != OK (never contains headers or body) */
    long status;         /* HTTP status code */
    es_http_header *headers; /* headers of the final response */
    size_t n_headers;
    char *body;          /* NUL-terminated for convenience; body_len excludes the NUL */
    size_t body_len;
} es_http_response;

/* Performs one request; always fills *resp (zeroed first). Returns 0 when a
 * response was received (whatever its status), -1 otherwise (see resp->err). */
int es_http_perform(const es_http_request *req, es_http_response *resp);
void es_http_response_free(es_http_response *resp);

/* ----------------------------------------------------------- JSON helpers */

/* Builds a Gemini / Vertex generateContent request body.
 * system_prompt may be NULL. When plan_schema is nonzero the request asks for
 * responseMimeType application/json with the plan responseSchema.
 * Returns a malloc'ed JSON string or NULL (invalid UTF-8 input or OOM). */
char *es_llm_build_gemini_request(const char *system_prompt, const char *user_prompt, int plan_schema,
                                  double temperature, int max_output_tokens);

/* Builds an OpenAI-compatible chat-completions request body.
 * json_mode nonzero adds response_format {"type":"json_object"}. */
char *es_llm_build_openai_request(const char *model, const char *system_prompt, const char *user_prompt,
                                  int json_mode, double temperature, int max_tokens);

/* The plan responseSchema (OpenAPI subset accepted by Gemini) as a JSON string. */
char *es_llm_plan_schema_json(void);

/* Result codes of the extractors and the plan parser. */
typedef enum es_llm_status {
    ES_LLM_OK = 0,
    ES_LLM_MALFORMED,   /* not JSON, truncated JSON, too deep */
    ES_LLM_BAD_UTF8,    /* a string is not valid UTF-8 */
    ES_LLM_API_ERROR,   /* the service returned an error object */
    ES_LLM_BLOCKED,     /* the answer was blocked (safety, recitation, ...) */
    ES_LLM_NO_TEXT,     /* valid JSON but no text where it should be */
    ES_LLM_INVALID,     /* plan: wrong shape / types / values */
    ES_LLM_NOMEM
} es_llm_status;

const char *es_llm_status_name(es_llm_status s);

/* Extract the model's text from a Gemini/Vertex generateContent response
 * (candidates[0].content.parts[*].text concatenated) or from an OpenAI
 * chat-completions response (choices[0].message.content). On success *out
 * is a malloc'ed NUL-terminated string. On failure err receives a message. */
es_llm_status es_llm_extract_gemini_text(const char *json, size_t len, char **out, char *err, size_t errlen);
es_llm_status es_llm_extract_openai_text(const char *json, size_t len, char **out, char *err, size_t errlen);

/* Instrumentation levels, in the order of the plan format. */
typedef enum es_plan_level {
    ES_LEVEL_UNSET = -1,
    ES_LEVEL_NONE = 0,
    ES_LEVEL_FUNCTION_BOUNDARIES,
    ES_LEVEL_EXPRESSIONS,
    ES_LEVEL_LOCALS,
    ES_LEVEL_FULL
} es_plan_level;

const char *es_plan_level_name(es_plan_level l);

/* -1 = not given */
typedef struct es_plan_function {
    char *name;
    int arity;            /* 0..255 */
    es_plan_level level;  /* UNSET when absent */
    int capture_locals;   /* -1 absent, 0 false, 1 true */
    int trace_expressions;/* -1 absent, 0 false, 1 true */
    char *reason;         /* may be NULL */
} es_plan_function;

typedef struct es_plan_module {
    char *module;         /* e.g. "MyApp.Worker" (an "Elixir." prefix is removed) */
    es_plan_level level;
    int genserver_state;  /* -1 absent, 0 false, 1 true, 2 auto */
    char *reason;
    es_plan_function *functions;
    size_t n_functions;
} es_plan_module;

typedef struct es_plan {
    es_plan_level default_level; /* UNSET when absent */
    char *summary;               /* may be NULL */
    es_plan_module *modules;
    size_t n_modules;
} es_plan;

/* Limits on what a plan answer may contain. */
#define ES_PLAN_MAX_MODULES 4096
#define ES_PLAN_MAX_FUNCTIONS 4096
#define ES_PLAN_MAX_NAME 255
#define ES_PLAN_MAX_TEXT 4096

/* Parses a plan answer (the JSON the model returned, optionally wrapped in a
 * ```json fence). Validates shape, types, level names, identifier syntax and
 * limits. On success *out is a malloc'ed plan owned by the caller. */
es_llm_status es_plan_parse(const char *json, size_t len, es_plan **out, char *err, size_t errlen);
void es_plan_free(es_plan *plan);

/* Maximum nesting of JSON arrays/objects accepted anywhere (checked before
 * cJSON, whose parser recurses, ever sees the input). */
#define ES_JSON_MAX_DEPTH 128

/* Returns 1 when the nesting depth of the JSON text (brackets outside
 * strings) never exceeds max_depth. Linear, no recursion. */
int es_json_depth_ok(const char *buf, size_t len, int max_depth);

/* Returns 1 when buf[0..len) is valid UTF-8 (no overlongs, no surrogates). */
int es_utf8_valid(const char *buf, size_t len);

#endif
