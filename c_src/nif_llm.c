/* NIF glue of the LLM client and the JSON <-> term bridge (issue 5).
 * Thin: validates and converts terms, calls llm_client.c. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elixir_scope/llm_client.h"
#include "nif_glue.h"

#define JSON_MAX_DEPTH ES_JSON_MAX_DEPTH
#define JSON_DIRTY_THRESHOLD (16 * 1024)
#define HTTP_MAX_HEADERS 64
#define ES_STR2(x) #x
#define ES_STR(x) ES_STR2(x)
#define HTTP_MAX_HEADER_LINE 8192

static ERL_NIF_TERM make_bin(ErlNifEnv *env, const char *s, size_t n) {
    ERL_NIF_TERM t;
    unsigned char *p = enif_make_new_binary(env, n, &t);
    if (n) memcpy(p, s, n);
    return t;
}

static ERL_NIF_TERM make_str(ErlNifEnv *env, const char *s) { return make_bin(env, s, strlen(s)); }

static ERL_NIF_TERM error3(ErlNifEnv *env, const char *code, const char *msg) {
    return enif_make_tuple3(env, enif_make_atom(env, "error"), enif_make_atom(env, code), make_str(env, msg));
}

/* Copies a binary argument into a NUL-terminated malloc'ed string; rejects
 * embedded NULs. Returns NULL (and sets *bad) on failure. */
static char *bin_to_cstr(ErlNifEnv *env, ERL_NIF_TERM t, int *bad) {
    ErlNifBinary b;
    *bad = 0;
    if (!enif_inspect_binary(env, t, &b) || memchr(b.data, 0, b.size)) {
        *bad = 1;
        return NULL;
    }
    char *s = malloc(b.size + 1);
    if (!s) return NULL;
    memcpy(s, b.data, b.size);
    s[b.size] = '\0';
    return s;
}

static int is_atom(ErlNifEnv *env, ERL_NIF_TERM t, const char *name) {
    char buf[32];
    return enif_get_atom(env, t, buf, sizeof(buf), ERL_NIF_LATIN1) > 0 && strcmp(buf, name) == 0;
}

static int map_get(ErlNifEnv *env, ERL_NIF_TERM map, const char *key, ERL_NIF_TERM *out) {
    return enif_get_map_value(env, map, enif_make_atom(env, key), out);
}

/* ------------------------------------------------------------ http_request */

/* llm_http_request(method, url, headers :: [{name, value}], body, opts :: map) */
ERL_NIF_TERM es_nif_llm_http_request(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    char method[16];
    if (enif_get_atom(env, argv[0], method, sizeof(method), ERL_NIF_LATIN1) <= 0) {
        ErlNifBinary mb;
        if (!enif_inspect_binary(env, argv[0], &mb) || mb.size == 0 || mb.size >= sizeof(method))
            return es_raise_arg(env, "http_request: method must be an atom or binary such as \"POST\"");
        memcpy(method, mb.data, mb.size);
        method[mb.size] = '\0';
    }
    for (char *p = method; *p; p++) *p = (char)toupper((unsigned char)*p);

    ErlNifBinary ub;
    if (!enif_inspect_binary(env, argv[1], &ub) || ub.size == 0 || ub.size > 8192 || memchr(ub.data, 0, ub.size))
        return es_raise_arg(env, "http_request: url must be a non-empty binary without NUL bytes");
    ErlNifBinary body;
    if (!enif_inspect_iolist_as_binary(env, argv[3], &body))
        return es_raise_arg(env, "http_request: body must be a binary or iodata");
    if (!enif_is_map(env, argv[4])) return es_raise_arg(env, "http_request: opts must be a map");

    ERL_NIF_TERM v;
    ErlNifSInt64 timeout_ms = 30000, connect_ms = 0, max_bytes = 8 * 1024 * 1024;
    if (map_get(env, argv[4], "timeout_ms", &v) && (!enif_get_int64(env, v, &timeout_ms) || timeout_ms <= 0 ||
                                                    timeout_ms > 3600 * 1000))
        return es_raise_arg(env, "http_request: timeout_ms must be an integer in 1..3600000");
    if (map_get(env, argv[4], "connect_timeout_ms", &v) &&
        (!enif_get_int64(env, v, &connect_ms) || connect_ms < 0 || connect_ms > 3600 * 1000))
        return es_raise_arg(env, "http_request: connect_timeout_ms must be an integer in 0..3600000");
    if (map_get(env, argv[4], "max_response_bytes", &v) &&
        (!enif_get_int64(env, v, &max_bytes) || max_bytes <= 0 || max_bytes > (ErlNifSInt64)1 << 31))
        return es_raise_arg(env, "http_request: max_response_bytes must be an integer in 1..2^31");

    unsigned hlen;
    if (!enif_get_list_length(env, argv[2], &hlen) || hlen > HTTP_MAX_HEADERS)
        return es_raise_arg(env, "http_request: headers must be a list of at most 64 {name, value} binaries");

    char *url = NULL, *ca_file = NULL;
    char *lines[HTTP_MAX_HEADERS];
    size_t nlines = 0;
    ERL_NIF_TERM result;
    const char *bad = NULL;

    if (map_get(env, argv[4], "ca_file", &v) && !is_atom(env, v, "nil")) {
        int b;
        ca_file = bin_to_cstr(env, v, &b);
        if (!ca_file) {
            bad = b ? "http_request: ca_file must be a binary path or nil" : "out of memory";
            goto out;
        }
    }
    url = malloc(ub.size + 1);
    if (!url) {
        bad = "out of memory";
        goto out;
    }
    memcpy(url, ub.data, ub.size);
    url[ub.size] = '\0';

    ERL_NIF_TERM list = argv[2], head;
    while (enif_get_list_cell(env, list, &head, &list)) {
        const ERL_NIF_TERM *tup;
        int arity;
        ErlNifBinary nb, vb;
        if (!enif_get_tuple(env, head, &arity, &tup) || arity != 2 || !enif_inspect_binary(env, tup[0], &nb) ||
            !enif_inspect_binary(env, tup[1], &vb)) {
            bad = "http_request: each header must be a {name, value} tuple of binaries";
            goto out;
        }
        if (nb.size == 0 || nb.size + vb.size + 3 > HTTP_MAX_HEADER_LINE) {
            bad = "http_request: header names must be non-empty and header lines at most 8 KiB";
            goto out;
        }
        for (size_t i = 0; i < nb.size; i++) {
            unsigned char c = nb.data[i];
            if (c <= 32 || c >= 127 || c == ':') {
                bad = "http_request: header names must be visible ASCII without ':'";
                goto out;
            }
        }
        for (size_t i = 0; i < vb.size; i++) {
            unsigned char c = vb.data[i];
            if (c == '\r' || c == '\n' || c == 0) {
                bad = "http_request: header values must not contain CR, LF or NUL";
                goto out;
            }
        }
        char *line = malloc(nb.size + vb.size + 3);
        if (!line) {
            bad = "out of memory";
            goto out;
        }
        memcpy(line, nb.data, nb.size);
        memcpy(line + nb.size, ": ", 2);
        memcpy(line + nb.size + 2, vb.data, vb.size);
        line[nb.size + 2 + vb.size] = '\0';
        lines[nlines++] = line;
    }

    es_http_request req = {
        .method = method,
        .url = url,
        .headers = (const char *const *)lines,
        .n_headers = nlines,
        .body = (const char *)body.data,
        .body_len = body.size,
        .timeout_ms = (long)timeout_ms,
        .connect_timeout_ms = (long)connect_ms,
        .max_response_bytes = (size_t)max_bytes,
        .ca_file = ca_file,
    };
    es_http_response resp;
    if (es_http_perform(&req, &resp) != 0) {
        if (resp.err == ES_HTTP_ERR_BAD_REQUEST) {
            /* arguments the checks above let through (e.g. the method) */
            char tmp[300];
            snprintf(tmp, sizeof(tmp), "http_request: %s", resp.errmsg);
            es_http_response_free(&resp);
            result = es_raise_arg(env, tmp);
            goto done;
        }
        result = error3(env, es_http_err_name(resp.err), resp.errmsg);
        es_http_response_free(&resp);
        goto done;
    }
    ERL_NIF_TERM hl = enif_make_list(env, 0);
    for (size_t i = resp.n_headers; i > 0; i--) {
        es_http_header *h = &resp.headers[i - 1];
        for (char *p = h->name; *p; p++) *p = (char)tolower((unsigned char)*p);
        hl = enif_make_list_cell(env, enif_make_tuple2(env, make_str(env, h->name), make_str(env, h->value)), hl);
    }
    result = enif_make_tuple4(env, enif_make_atom(env, "ok"), enif_make_long(env, resp.status), hl,
                              make_bin(env, resp.body, resp.body_len));
    es_http_response_free(&resp);
    goto done;

out:
    result = es_raise_arg(env, bad);
done:
    for (size_t i = 0; i < nlines; i++) free(lines[i]);
    free(url);
    free(ca_file);
    return result;
}

/* ------------------------------------------------------- JSON -> term */

static int json_to_term(ErlNifEnv *env, const cJSON *j, int depth, ERL_NIF_TERM *out, const char **err) {
    if (depth > JSON_MAX_DEPTH) {
        *err = "JSON nested too deeply";
        return 0;
    }
    if (cJSON_IsNull(j)) {
        *out = enif_make_atom(env, "nil");
    } else if (cJSON_IsTrue(j)) {
        *out = enif_make_atom(env, "true");
    } else if (cJSON_IsFalse(j)) {
        *out = enif_make_atom(env, "false");
    } else if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (!isfinite(d)) {
            *err = "a JSON number is out of the range of a double";
            return 0;
        }
        if (d == floor(d) && fabs(d) <= 9007199254740992.0)
            *out = enif_make_int64(env, (ErlNifSInt64)d);
        else
            *out = enif_make_double(env, d);
    } else if (cJSON_IsString(j)) {
        *out = make_str(env, j->valuestring);
    } else if (cJSON_IsArray(j)) {
        int n = cJSON_GetArraySize(j);
        ERL_NIF_TERM *items = n > 0 ? enif_alloc(sizeof(ERL_NIF_TERM) * (size_t)n) : NULL;
        if (n > 0 && !items) {
            *err = "out of memory";
            return 0;
        }
        int i = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, j) {
            if (!json_to_term(env, c, depth + 1, &items[i++], err)) {
                enif_free(items);
                return 0;
            }
        }
        *out = enif_make_list_from_array(env, items, (unsigned)i);
        enif_free(items);
    } else if (cJSON_IsObject(j)) {
        ERL_NIF_TERM m = enif_make_new_map(env);
        const cJSON *c;
        cJSON_ArrayForEach(c, j) {
            ERL_NIF_TERM val;
            if (!json_to_term(env, c, depth + 1, &val, err)) return 0;
            ERL_NIF_TERM nm;
            enif_make_map_put(env, m, make_str(env, c->string ? c->string : ""), val, &nm);
            m = nm; /* duplicate keys: the last one wins */
        }
        *out = m;
    } else {
        *err = "unsupported JSON value";
        return 0;
    }
    return 1;
}

static ERL_NIF_TERM json_decode_impl(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    ErlNifBinary b;
    if (!enif_inspect_binary(env, argv[0], &b)) return es_raise_arg(env, "json_decode: expected a binary");
    if (!es_utf8_valid((const char *)b.data, b.size))
        return enif_make_tuple2(env, enif_make_atom(env, "error"), make_str(env, "invalid UTF-8 in JSON input"));
    if (!es_json_depth_ok((const char *)b.data, b.size, JSON_MAX_DEPTH))
        return enif_make_tuple2(env, enif_make_atom(env, "error"),
                                make_str(env, "JSON nested too deeply (limit " ES_STR(ES_JSON_MAX_DEPTH) ")"));
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts((const char *)b.data, b.size, &end, 0);
    if (!doc) {
        char msg[128];
        size_t off = end ? (size_t)(end - (const char *)b.data) : 0;
        snprintf(msg, sizeof(msg), "malformed, truncated or too deeply nested JSON near byte %zu of %zu", off,
                 b.size);
        return enif_make_tuple2(env, enif_make_atom(env, "error"), make_str(env, msg));
    }
    if (end) {
        while ((size_t)(end - (const char *)b.data) < b.size && isspace((unsigned char)*end)) end++;
        if ((size_t)(end - (const char *)b.data) < b.size) {
            cJSON_Delete(doc);
            return enif_make_tuple2(env, enif_make_atom(env, "error"),
                                    make_str(env, "unexpected data after the JSON value"));
        }
    }
    ERL_NIF_TERM t;
    const char *err = NULL;
    int ok = json_to_term(env, doc, 0, &t, &err);
    cJSON_Delete(doc);
    if (!ok) return enif_make_tuple2(env, enif_make_atom(env, "error"), make_str(env, err));
    return enif_make_tuple2(env, enif_make_atom(env, "ok"), t);
}

ERL_NIF_TERM es_nif_json_decode(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    ErlNifBinary b;
    if (!enif_inspect_binary(env, argv[0], &b)) return es_raise_arg(env, "json_decode: expected a binary");
    if (b.size > JSON_DIRTY_THRESHOLD)
        return enif_schedule_nif(env, "json_decode_dirty", ERL_NIF_DIRTY_JOB_CPU_BOUND, json_decode_impl, argc,
                                 argv);
    return json_decode_impl(env, argc, argv);
}

/* ------------------------------------------------------- term -> JSON */

/* latin1 atom text -> UTF-8 */
static int atom_utf8(ErlNifEnv *env, ERL_NIF_TERM t, char *out, size_t outlen) {
    char buf[256];
    if (enif_get_atom(env, t, buf, sizeof(buf), ERL_NIF_LATIN1) <= 0) return 0;
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)buf; *p; p++) {
        if (o + 3 > outlen) return 0;
        if (*p < 0x80) {
            out[o++] = (char)*p;
        } else {
            out[o++] = (char)(0xC0 | (*p >> 6));
            out[o++] = (char)(0x80 | (*p & 0x3F));
        }
    }
    out[o] = '\0';
    return 1;
}

static char *bin_utf8(ErlNifEnv *env, ERL_NIF_TERM t, const char **err) {
    ErlNifBinary b;
    if (!enif_inspect_binary(env, t, &b)) return NULL;
    if (!es_utf8_valid((const char *)b.data, b.size) || memchr(b.data, 0, b.size)) {
        *err = "json_encode: strings must be valid UTF-8 without NUL bytes";
        return NULL;
    }
    char *s = malloc(b.size + 1);
    if (!s) {
        *err = "out of memory";
        return NULL;
    }
    memcpy(s, b.data, b.size);
    s[b.size] = '\0';
    return s;
}

static __attribute__((noinline)) cJSON *atom_to_json(ErlNifEnv *env, ERL_NIF_TERM t, const char **err) {
    char abuf[520];
    if (!atom_utf8(env, t, abuf, sizeof(abuf))) {
        *err = "json_encode: unsupported atom";
        return NULL;
    }
    if (strcmp(abuf, "nil") == 0) return cJSON_CreateNull();
    if (strcmp(abuf, "true") == 0) return cJSON_CreateTrue();
    if (strcmp(abuf, "false") == 0) return cJSON_CreateFalse();
    return cJSON_CreateString(abuf);
}

static __attribute__((noinline)) char *key_to_cstr(ErlNifEnv *env, ERL_NIF_TERM k, const char **err) {
    char abuf[520];
    if (enif_is_atom(env, k)) return atom_utf8(env, k, abuf, sizeof(abuf)) ? strdup(abuf) : NULL;
    if (enif_is_binary(env, k)) return bin_utf8(env, k, err);
    return NULL;
}

/* Recursion bounded by JSON_MAX_DEPTH with a small frame (buffers live in
 * the noinline helpers above). */
static cJSON *term_to_json(ErlNifEnv *env, ERL_NIF_TERM t, int depth, const char **err) {
    if (depth > JSON_MAX_DEPTH) {
        *err = "json_encode: term nested too deeply (limit " ES_STR(ES_JSON_MAX_DEPTH) ")";
        return NULL;
    }
    ErlNifSInt64 i64;
    double d;
    if (enif_is_atom(env, t)) return atom_to_json(env, t, err);
    if (enif_get_int64(env, t, &i64)) {
        if (i64 > 9007199254740992LL || i64 < -9007199254740992LL) {
            *err = "json_encode: integers beyond 2^53 cannot be represented exactly";
            return NULL;
        }
        return cJSON_CreateNumber((double)i64);
    }
    if (enif_get_double(env, t, &d)) return cJSON_CreateNumber(d);
    if (enif_is_number(env, t)) {
        *err = "json_encode: integers beyond 2^53 cannot be represented exactly";
        return NULL;
    }
    if (enif_is_binary(env, t)) {
        const char *e2 = NULL;
        char *s = bin_utf8(env, t, &e2);
        if (!s) {
            *err = e2 ? e2 : "json_encode: bad binary";
            return NULL;
        }
        cJSON *j = cJSON_CreateString(s);
        free(s);
        return j;
    }
    if (enif_is_list(env, t)) {
        cJSON *arr = cJSON_CreateArray();
        if (!arr) return NULL;
        ERL_NIF_TERM head, tail = t;
        while (enif_get_list_cell(env, tail, &head, &tail)) {
            cJSON *c = term_to_json(env, head, depth + 1, err);
            if (!c) {
                cJSON_Delete(arr);
                return NULL;
            }
            cJSON_AddItemToArray(arr, c);
        }
        if (!enif_is_empty_list(env, tail)) {
            cJSON_Delete(arr);
            *err = "json_encode: improper lists cannot be encoded";
            return NULL;
        }
        return arr;
    }
    if (enif_is_map(env, t)) {
        cJSON *obj = cJSON_CreateObject();
        if (!obj) return NULL;
        ErlNifMapIterator it;
        if (!enif_map_iterator_create(env, t, &it, ERL_NIF_MAP_ITERATOR_FIRST)) {
            cJSON_Delete(obj);
            return NULL;
        }
        ERL_NIF_TERM k, v;
        while (enif_map_iterator_get_pair(env, &it, &k, &v)) {
            char *key = key_to_cstr(env, k, err);
            if (!key) {
                if (!*err) *err = "json_encode: map keys must be atoms or UTF-8 binaries";
                enif_map_iterator_destroy(env, &it);
                cJSON_Delete(obj);
                return NULL;
            }
            cJSON *c = term_to_json(env, v, depth + 1, err);
            if (!c) {
                free(key);
                enif_map_iterator_destroy(env, &it);
                cJSON_Delete(obj);
                return NULL;
            }
            cJSON_AddItemToObject(obj, key, c);
            free(key);
            enif_map_iterator_next(env, &it);
        }
        enif_map_iterator_destroy(env, &it);
        return obj;
    }
    *err = "json_encode: only maps, lists, binaries, numbers, booleans, nil and atoms can be encoded "
           "(tuples, pids, refs and funs cannot)";
    return NULL;
}

ERL_NIF_TERM es_nif_json_encode(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    const char *err = NULL;
    cJSON *j = term_to_json(env, argv[0], 0, &err);
    if (!j) return es_raise_arg(env, err ? err : "json_encode: out of memory");
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s) return es_raise_arg(env, "json_encode: out of memory");
    ERL_NIF_TERM r = make_str(env, s);
    free(s);
    return r;
}

/* ------------------------------------------------------- LLM helpers */

static int opt_cstr(ErlNifEnv *env, ERL_NIF_TERM t, char **out) {
    *out = NULL;
    if (is_atom(env, t, "nil")) return 1;
    int bad;
    *out = bin_to_cstr(env, t, &bad);
    return *out != NULL;
}

static int get_number(ErlNifEnv *env, ERL_NIF_TERM t, double *d) {
    ErlNifSInt64 i;
    if (enif_get_double(env, t, d)) return 1;
    if (enif_get_int64(env, t, &i)) {
        *d = (double)i;
        return 1;
    }
    return 0;
}

/* llm_build_gemini_request(system | nil, user, plan_schema :: boolean, temperature, max_tokens) */
ERL_NIF_TERM es_nif_llm_build_gemini_request(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    char *sys = NULL, *user = NULL;
    double temp;
    int maxt;
    ERL_NIF_TERM r;
    if (!opt_cstr(env, argv[0], &sys)) return es_raise_arg(env, "build_gemini_request: system must be a binary or nil");
    int bad;
    user = bin_to_cstr(env, argv[1], &bad);
    if (!user) {
        r = es_raise_arg(env, "build_gemini_request: user prompt must be a binary without NUL bytes");
        goto done;
    }
    if (!is_atom(env, argv[2], "true") && !is_atom(env, argv[2], "false")) {
        r = es_raise_arg(env, "build_gemini_request: plan_schema must be a boolean");
        goto done;
    }
    if (!get_number(env, argv[3], &temp) || temp < 0 || temp > 2) {
        r = es_raise_arg(env, "build_gemini_request: temperature must be a number in 0..2");
        goto done;
    }
    if (!enif_get_int(env, argv[4], &maxt) || maxt < 0) {
        r = es_raise_arg(env, "build_gemini_request: max_tokens must be a non-negative integer");
        goto done;
    }
    char *json = es_llm_build_gemini_request(sys, user, is_atom(env, argv[2], "true"), temp, maxt);
    if (!json) {
        r = es_raise_arg(env, "build_gemini_request: prompts must be valid UTF-8");
        goto done;
    }
    r = make_str(env, json);
    free(json);
done:
    free(sys);
    free(user);
    return r;
}

/* llm_build_openai_request(model, system | nil, user, json_mode, temperature, max_tokens) */
ERL_NIF_TERM es_nif_llm_build_openai_request(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    char *model = NULL, *sys = NULL, *user = NULL;
    double temp;
    int maxt, bad;
    ERL_NIF_TERM r;
    model = bin_to_cstr(env, argv[0], &bad);
    if (!model) return es_raise_arg(env, "build_openai_request: model must be a binary");
    if (!opt_cstr(env, argv[1], &sys)) {
        r = es_raise_arg(env, "build_openai_request: system must be a binary or nil");
        goto done;
    }
    user = bin_to_cstr(env, argv[2], &bad);
    if (!user) {
        r = es_raise_arg(env, "build_openai_request: user prompt must be a binary without NUL bytes");
        goto done;
    }
    if (!is_atom(env, argv[3], "true") && !is_atom(env, argv[3], "false")) {
        r = es_raise_arg(env, "build_openai_request: json_mode must be a boolean");
        goto done;
    }
    if (!get_number(env, argv[4], &temp) || temp < 0 || temp > 2) {
        r = es_raise_arg(env, "build_openai_request: temperature must be a number in 0..2");
        goto done;
    }
    if (!enif_get_int(env, argv[5], &maxt) || maxt < 0) {
        r = es_raise_arg(env, "build_openai_request: max_tokens must be a non-negative integer");
        goto done;
    }
    char *json = es_llm_build_openai_request(model, sys, user, is_atom(env, argv[3], "true"), temp, maxt);
    if (!json) {
        r = es_raise_arg(env, "build_openai_request: model and prompts must be valid UTF-8");
        goto done;
    }
    r = make_str(env, json);
    free(json);
done:
    free(model);
    free(sys);
    free(user);
    return r;
}

/* llm_extract_text(:gemini | :openai, body) -> {:ok, text} | {:error, code, message} */
ERL_NIF_TERM es_nif_llm_extract_text(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    int gemini = is_atom(env, argv[0], "gemini");
    if (!gemini && !is_atom(env, argv[0], "openai"))
        return es_raise_arg(env, "extract_text: format must be :gemini or :openai");
    ErlNifBinary b;
    if (!enif_inspect_binary(env, argv[1], &b)) return es_raise_arg(env, "extract_text: body must be a binary");
    char *text = NULL;
    char err[512] = "";
    es_llm_status st = gemini ? es_llm_extract_gemini_text((const char *)b.data, b.size, &text, err, sizeof(err))
                              : es_llm_extract_openai_text((const char *)b.data, b.size, &text, err, sizeof(err));
    if (st != ES_LLM_OK) return error3(env, es_llm_status_name(st), err);
    ERL_NIF_TERM r = enif_make_tuple2(env, enif_make_atom(env, "ok"), make_str(env, text));
    free(text);
    return r;
}

static ERL_NIF_TERM level_term(ErlNifEnv *env, es_plan_level l) {
    const char *n = es_plan_level_name(l);
    return enif_make_atom(env, n ? n : "nil");
}

static ERL_NIF_TERM opt_str_term(ErlNifEnv *env, const char *s) {
    return s ? make_str(env, s) : enif_make_atom(env, "nil");
}

static ERL_NIF_TERM tri_term(ErlNifEnv *env, int v) {
    return enif_make_atom(env, v < 0 ? "nil" : v == 0 ? "false" : v == 1 ? "true" : "auto");
}

static ERL_NIF_TERM make_atom_map(ErlNifEnv *env, const char *const *keys, ERL_NIF_TERM *vals, unsigned n) {
    ERL_NIF_TERM k[8], m;
    for (unsigned i = 0; i < n; i++) k[i] = enif_make_atom(env, keys[i]);
    enif_make_map_from_arrays(env, k, vals, n, &m);
    return m;
}

/* llm_parse_plan(text) -> {:ok, map} | {:error, code, message} */
ERL_NIF_TERM es_nif_llm_parse_plan(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    ErlNifBinary b;
    if (!enif_inspect_binary(env, argv[0], &b)) return es_raise_arg(env, "parse_plan: expected a binary");
    es_plan *plan = NULL;
    char err[512] = "";
    es_llm_status st = es_plan_parse((const char *)b.data, b.size, &plan, err, sizeof(err));
    if (st != ES_LLM_OK) return error3(env, es_llm_status_name(st), err);

    static const char *const fkeys[] = {"name", "arity", "level", "capture_locals", "trace_expressions", "reason"};
    static const char *const mkeys[] = {"module", "level", "genserver_state", "reason", "functions"};
    static const char *const pkeys[] = {"default_level", "summary", "modules"};
    ERL_NIF_TERM mods = enif_make_list(env, 0);
    for (size_t i = plan->n_modules; i > 0; i--) {
        es_plan_module *m = &plan->modules[i - 1];
        ERL_NIF_TERM funs = enif_make_list(env, 0);
        for (size_t j = m->n_functions; j > 0; j--) {
            es_plan_function *f = &m->functions[j - 1];
            ERL_NIF_TERM fv[6] = {make_str(env, f->name),           enif_make_int(env, f->arity),
                                  level_term(env, f->level),        tri_term(env, f->capture_locals),
                                  tri_term(env, f->trace_expressions), opt_str_term(env, f->reason)};
            funs = enif_make_list_cell(env, make_atom_map(env, fkeys, fv, 6), funs);
        }
        ERL_NIF_TERM mv[5] = {make_str(env, m->module), level_term(env, m->level), tri_term(env, m->genserver_state),
                              opt_str_term(env, m->reason), funs};
        mods = enif_make_list_cell(env, make_atom_map(env, mkeys, mv, 5), mods);
    }
    ERL_NIF_TERM pv[3] = {level_term(env, plan->default_level), opt_str_term(env, plan->summary), mods};
    ERL_NIF_TERM r = enif_make_tuple2(env, enif_make_atom(env, "ok"), make_atom_map(env, pkeys, pv, 3));
    es_plan_free(plan);
    return r;
}

ERL_NIF_TERM es_nif_llm_plan_schema(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    (void)argv;
    char *s = es_llm_plan_schema_json();
    if (!s) return es_raise_arg(env, "plan_schema: out of memory");
    ERL_NIF_TERM r = make_str(env, s);
    free(s);
    return r;
}
