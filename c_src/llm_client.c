/* LLM client: libcurl request executor + cJSON request builders, response
 * text extractors and the plan answer parser. See llm_client.h. */
#include "elixir_scope/llm_client.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <curl/curl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------ init */

int es_llm_global_init(void) {
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void es_llm_global_cleanup(void) { curl_global_cleanup(); }

/* ----------------------------------------------------------------- utils */

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static char *dup_n(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (!p) return NULL;
    if (n) memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

int es_utf8_valid(const char *buf, size_t len) {
    const unsigned char *s = (const unsigned char *)buf;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        unsigned cp;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (len - i <= need) return 0;
        for (size_t k = 1; k <= need; k++) {
            unsigned cc = s[i + k];
            if ((cc & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (cc & 0x3F);
        }
        if (need == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return 0;
        if (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;
        i += need + 1;
    }
    return 1;
}

int es_json_depth_ok(const char *buf, size_t len, int max_depth) {
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth) return 0;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return 1;
}

const char *es_http_err_name(es_http_err e) {
    static const char *const names[ES_HTTP_ERR__COUNT] = {
        "ok", "bad_request", "bad_url", "resolve", "connect_refused", "timeout",
        "tls", "too_large", "io", "nomem", "other"};
    if ((int)e < 0 || e >= ES_HTTP_ERR__COUNT) return "other";
    return names[e];
}

const char *es_llm_status_name(es_llm_status s) {
    switch (s) {
    case ES_LLM_OK: return "ok";
    case ES_LLM_MALFORMED: return "malformed_json";
    case ES_LLM_BAD_UTF8: return "invalid_utf8";
    case ES_LLM_API_ERROR: return "api_error";
    case ES_LLM_BLOCKED: return "blocked";
    case ES_LLM_NO_TEXT: return "no_text";
    case ES_LLM_INVALID: return "invalid_plan";
    case ES_LLM_NOMEM: return "nomem";
    }
    return "unknown";
}

const char *es_plan_level_name(es_plan_level l) {
    switch (l) {
    case ES_LEVEL_NONE: return "none";
    case ES_LEVEL_FUNCTION_BOUNDARIES: return "function_boundaries";
    case ES_LEVEL_EXPRESSIONS: return "expressions";
    case ES_LEVEL_LOCALS: return "locals";
    case ES_LEVEL_FULL: return "full";
    case ES_LEVEL_UNSET: break;
    }
    return NULL;
}

/* ------------------------------------------------------------------ HTTP */

#define ES_HTTP_MAX_HEADERS 256
#define ES_HTTP_MAX_HEADER_BYTES (64 * 1024)

typedef struct http_ctx {
    es_http_response *resp;
    size_t cap;
    size_t max;
    size_t header_bytes;
    int too_large;
    int nomem;
} http_ctx;

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata) {
    http_ctx *c = userdata;
    size_t n = size * nmemb;
    es_http_response *r = c->resp;
    if (n > c->max || r->body_len > c->max - n) {
        c->too_large = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (r->body_len + n + 1 > c->cap) {
        size_t ncap = c->cap ? c->cap : 4096;
        while (ncap < r->body_len + n + 1) ncap *= 2;
        char *nb = realloc(r->body, ncap);
        if (!nb) {
            c->nomem = 1;
            return 0;
        }
        r->body = nb;
        c->cap = ncap;
    }
    memcpy(r->body + r->body_len, ptr, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return n;
}

static void free_headers(es_http_response *r) {
    for (size_t i = 0; i < r->n_headers; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    r->headers = NULL;
    r->n_headers = 0;
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *userdata) {
    http_ctx *c = userdata;
    size_t n = size * nitems;
    es_http_response *r = c->resp;
    if (n >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        /* a new response (after 1xx): keep only the final one's headers */
        free_headers(r);
        c->header_bytes = 0;
        return n;
    }
    c->header_bytes += n;
    if (c->header_bytes > ES_HTTP_MAX_HEADER_BYTES) {
        c->too_large = 1;
        return 0;
    }
    const char *colon = memchr(buf, ':', n);
    if (!colon) return n; /* the blank line at the end, or junk */
    size_t nlen = (size_t)(colon - buf);
    const char *v = colon + 1;
    size_t vlen = n - nlen - 1;
    while (nlen > 0 && isspace((unsigned char)buf[nlen - 1])) nlen--;
    while (vlen > 0 && isspace((unsigned char)*v)) v++, vlen--;
    while (vlen > 0 && isspace((unsigned char)v[vlen - 1])) vlen--;
    if (nlen == 0) return n;
    if (r->n_headers >= ES_HTTP_MAX_HEADERS) return n; /* ignore the rest */
    es_http_header *nh = realloc(r->headers, (r->n_headers + 1) * sizeof(*nh));
    if (!nh) {
        c->nomem = 1;
        return 0;
    }
    r->headers = nh;
    char *name = dup_n(buf, nlen), *value = dup_n(v, vlen);
    if (!name || !value) {
        free(name);
        free(value);
        c->nomem = 1;
        return 0;
    }
    r->headers[r->n_headers].name = name;
    r->headers[r->n_headers].value = value;
    r->n_headers++;
    return n;
}

static int valid_method(const char *m) {
    static const char *const ok[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (strcmp(m, ok[i]) == 0) return 1;
    return 0;
}

static es_http_err map_curl_error(CURLcode rc, const http_ctx *c) {
    if (c->nomem) return ES_HTTP_ERR_NOMEM;
    if (c->too_large) return ES_HTTP_ERR_TOO_LARGE;
    switch (rc) {
    case CURLE_OK: return ES_HTTP_OK;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL: return ES_HTTP_ERR_BAD_URL;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return ES_HTTP_ERR_RESOLVE;
    case CURLE_COULDNT_CONNECT: return ES_HTTP_ERR_CONNECT_REFUSED;
    case CURLE_OPERATION_TIMEDOUT: return ES_HTTP_ERR_TIMEOUT;
    case CURLE_FILESIZE_EXCEEDED: return ES_HTTP_ERR_TOO_LARGE;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_USE_SSL_FAILED: return ES_HTTP_ERR_TLS;
    case CURLE_OUT_OF_MEMORY: return ES_HTTP_ERR_NOMEM;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_WRITE_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_BAD_CONTENT_ENCODING: return ES_HTTP_ERR_IO;
    default: return ES_HTTP_ERR_OTHER;
    }
}

static int has_http_scheme(const char *url) {
    return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
}

int es_http_perform(const es_http_request *req, es_http_response *resp) {
    memset(resp, 0, sizeof(*resp));
    resp->err = ES_HTTP_ERR_BAD_REQUEST;
    if (!req || !req->method || !req->url) {
        set_err(resp->errmsg, sizeof(resp->errmsg), "method and url are required");
        return -1;
    }
    if (!valid_method(req->method)) {
        set_err(resp->errmsg, sizeof(resp->errmsg), "unsupported HTTP method");
        return -1;
    }
    if (!has_http_scheme(req->url)) {
        resp->err = ES_HTTP_ERR_BAD_URL;
        set_err(resp->errmsg, sizeof(resp->errmsg), "the URL must start with http:// or https://");
        return -1;
    }
    if (req->timeout_ms <= 0 || req->max_response_bytes == 0 || req->connect_timeout_ms < 0) {
        set_err(resp->errmsg, sizeof(resp->errmsg), "timeout_ms and max_response_bytes must be positive");
        return -1;
    }
    if (req->body_len > 0 && !req->body) {
        set_err(resp->errmsg, sizeof(resp->errmsg), "body is NULL but body_len > 0");
        return -1;
    }

    struct curl_slist *hdrs = NULL;
    for (size_t i = 0; i < req->n_headers; i++) {
        const char *h = req->headers[i];
        if (!h || strpbrk(h, "\r\n") || !strchr(h, ':') || h[0] == ':') {
            curl_slist_free_all(hdrs);
            set_err(resp->errmsg, sizeof(resp->errmsg), "header %zu is not a single 'Name: value' line", i);
            return -1;
        }
        struct curl_slist *n = curl_slist_append(hdrs, h);
        if (!n) {
            curl_slist_free_all(hdrs);
            resp->err = ES_HTTP_ERR_NOMEM;
            set_err(resp->errmsg, sizeof(resp->errmsg), "out of memory");
            return -1;
        }
        hdrs = n;
    }
    /* no "Expect: 100-continue" round trip */
    struct curl_slist *n = curl_slist_append(hdrs, "Expect:");
    if (!n) {
        curl_slist_free_all(hdrs);
        resp->err = ES_HTTP_ERR_NOMEM;
        set_err(resp->errmsg, sizeof(resp->errmsg), "out of memory");
        return -1;
    }
    hdrs = n;

    CURL *h = curl_easy_init();
    if (!h) {
        curl_slist_free_all(hdrs);
        resp->err = ES_HTTP_ERR_NOMEM;
        set_err(resp->errmsg, sizeof(resp->errmsg), "curl_easy_init failed");
        return -1;
    }
    char errbuf[CURL_ERROR_SIZE];
    errbuf[0] = '\0';
    http_ctx ctx = {.resp = resp, .max = req->max_response_bytes};

    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_URL, req->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, req->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     req->connect_timeout_ms > 0 ? req->connect_timeout_ms : req->timeout_ms);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)req->max_response_bytes);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "elixir_scope/0.1");
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &ctx);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &ctx);
    if (req->ca_file && req->ca_file[0]) curl_easy_setopt(h, CURLOPT_CAINFO, req->ca_file);

    if (strcmp(req->method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else {
        if (strcmp(req->method, "POST") != 0) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body_len ? req->body : "");
    }

    CURLcode rc = curl_easy_perform(h);
    int ret = 0;
    if (rc == CURLE_OK && !ctx.too_large && !ctx.nomem) {
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        resp->status = status;
        resp->err = ES_HTTP_OK;
        if (!resp->body) {
            resp->body = calloc(1, 1);
            if (!resp->body) {
                resp->err = ES_HTTP_ERR_NOMEM;
                set_err(resp->errmsg, sizeof(resp->errmsg), "out of memory");
                ret = -1;
            }
        }
    } else {
        resp->err = map_curl_error(rc, &ctx);
        if (resp->err == ES_HTTP_ERR_TOO_LARGE)
            set_err(resp->errmsg, sizeof(resp->errmsg), "the response exceeded the limit of %zu bytes",
                    req->max_response_bytes);
        else if (resp->err == ES_HTTP_ERR_NOMEM)
            set_err(resp->errmsg, sizeof(resp->errmsg), "out of memory while receiving the response");
        else
            set_err(resp->errmsg, sizeof(resp->errmsg), "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        resp->status = status;
        free(resp->body);
        resp->body = NULL;
        resp->body_len = 0;
        free_headers(resp);
        ret = -1;
    }
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    return ret;
}

void es_http_response_free(es_http_response *resp) {
    if (!resp) return;
    free_headers(resp);
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
}

/* -------------------------------------------------------- request builders */

static cJSON *level_enum(void) {
    const char *levels[] = {"none", "function_boundaries", "expressions", "locals", "full"};
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "type", "STRING");
    cJSON *e = cJSON_CreateStringArray(levels, 5);
    if (!e) {
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddItemToObject(o, "enum", e);
    return o;
}

static cJSON *typed(const char *type) {
    cJSON *o = cJSON_CreateObject();
    if (o && !cJSON_AddStringToObject(o, "type", type)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static int add_required(cJSON *o, const char *const *names, int n) {
    cJSON *r = cJSON_CreateStringArray(names, n);
    if (!r) return -1;
    cJSON_AddItemToObject(o, "required", r);
    return 0;
}

/* Builds the responseSchema tree; NULL on OOM. cJSON_Add* on a NULL parent
 * are no-ops, and every created node is attached before the next allocation
 * so one cJSON_Delete(root) frees everything on any failure path. */
static cJSON *plan_schema(void) {
    cJSON *root = typed("OBJECT");
    if (!root) return NULL;
    cJSON *props = cJSON_AddObjectToObject(root, "properties");
    cJSON_AddItemToObject(props, "default_level", level_enum());
    cJSON_AddItemToObject(props, "summary", typed("STRING"));
    cJSON *modules = typed("ARRAY");
    cJSON_AddItemToObject(props, "modules", modules);
    cJSON *mod = typed("OBJECT");
    cJSON_AddItemToObject(modules, "items", mod);
    cJSON *mprops = cJSON_AddObjectToObject(mod, "properties");
    cJSON_AddItemToObject(mprops, "module", typed("STRING"));
    cJSON_AddItemToObject(mprops, "level", level_enum());
    cJSON *gs = typed("STRING");
    cJSON_AddItemToObject(mprops, "genserver_state", gs);
    const char *gsv[] = {"auto", "true", "false"};
    cJSON_AddItemToObject(gs, "enum", cJSON_CreateStringArray(gsv, 3));
    cJSON_AddItemToObject(mprops, "reason", typed("STRING"));
    cJSON *funs = typed("ARRAY");
    cJSON_AddItemToObject(mprops, "functions", funs);
    cJSON *fun = typed("OBJECT");
    cJSON_AddItemToObject(funs, "items", fun);
    cJSON *fprops = cJSON_AddObjectToObject(fun, "properties");
    cJSON_AddItemToObject(fprops, "name", typed("STRING"));
    cJSON_AddItemToObject(fprops, "arity", typed("INTEGER"));
    cJSON_AddItemToObject(fprops, "level", level_enum());
    cJSON_AddItemToObject(fprops, "capture_locals", typed("BOOLEAN"));
    cJSON_AddItemToObject(fprops, "trace_expressions", typed("BOOLEAN"));
    cJSON_AddItemToObject(fprops, "reason", typed("STRING"));
    const char *freq[] = {"name", "arity", "level", "reason"};
    const char *mreq[] = {"module", "level", "reason"};
    const char *rreq[] = {"modules"};
    if (!fun || add_required(fun, freq, 4) || !mod || add_required(mod, mreq, 3) || add_required(root, rreq, 1)) {
        cJSON_Delete(root);
        return NULL;
    }
    /* verify every node got created (an OOM leaves a missing key) */
    if (!cJSON_GetObjectItemCaseSensitive(fprops, "reason") || !cJSON_GetObjectItemCaseSensitive(gs, "enum") ||
        cJSON_GetArraySize(props) != 3 || cJSON_GetArraySize(mprops) != 5 || cJSON_GetArraySize(fprops) != 6) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

char *es_llm_plan_schema_json(void) {
    cJSON *s = plan_schema();
    if (!s) return NULL;
    char *out = cJSON_PrintUnformatted(s);
    cJSON_Delete(s);
    return out;
}

static int str_ok(const char *s) { return s && es_utf8_valid(s, strlen(s)); }

static cJSON *text_parts(const char *text) {
    cJSON *parts = cJSON_CreateArray();
    cJSON *p = cJSON_CreateObject();
    if (!parts || !p || !cJSON_AddStringToObject(p, "text", text)) {
        cJSON_Delete(parts);
        cJSON_Delete(p);
        return NULL;
    }
    cJSON_AddItemToArray(parts, p);
    return parts;
}

char *es_llm_build_gemini_request(const char *system_prompt, const char *user_prompt, int plan_schema_on,
                                  double temperature, int max_output_tokens) {
    if (!str_ok(user_prompt) || (system_prompt && !str_ok(system_prompt))) return NULL;
    if (!isfinite(temperature)) return NULL;
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    char *out = NULL;
    cJSON *contents = cJSON_AddArrayToObject(root, "contents");
    cJSON *msg = cJSON_CreateObject();
    if (!contents || !msg) {
        cJSON_Delete(msg);
        goto done;
    }
    cJSON_AddItemToArray(contents, msg);
    if (!cJSON_AddStringToObject(msg, "role", "user")) goto done;
    cJSON *parts = text_parts(user_prompt);
    if (!parts) goto done;
    cJSON_AddItemToObject(msg, "parts", parts);
    if (system_prompt) {
        cJSON *si = cJSON_AddObjectToObject(root, "systemInstruction");
        cJSON *sp = text_parts(system_prompt);
        if (!si || !sp) {
            cJSON_Delete(sp);
            goto done;
        }
        cJSON_AddItemToObject(si, "parts", sp);
    }
    cJSON *gc = cJSON_AddObjectToObject(root, "generationConfig");
    if (!gc || !cJSON_AddNumberToObject(gc, "temperature", temperature)) goto done;
    if (max_output_tokens > 0 && !cJSON_AddNumberToObject(gc, "maxOutputTokens", max_output_tokens)) goto done;
    if (plan_schema_on) {
        if (!cJSON_AddStringToObject(gc, "responseMimeType", "application/json")) goto done;
        cJSON *s = plan_schema();
        if (!s) goto done;
        cJSON_AddItemToObject(gc, "responseSchema", s);
    }
    out = cJSON_PrintUnformatted(root);
done:
    cJSON_Delete(root);
    return out;
}

static cJSON *chat_message(const char *role, const char *content) {
    cJSON *m = cJSON_CreateObject();
    if (!m) return NULL;
    if (!cJSON_AddStringToObject(m, "role", role) || !cJSON_AddStringToObject(m, "content", content)) {
        cJSON_Delete(m);
        return NULL;
    }
    return m;
}

char *es_llm_build_openai_request(const char *model, const char *system_prompt, const char *user_prompt,
                                  int json_mode, double temperature, int max_tokens) {
    if (!str_ok(model) || !str_ok(user_prompt) || (system_prompt && !str_ok(system_prompt))) return NULL;
    if (!isfinite(temperature)) return NULL;
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    char *out = NULL;
    if (!cJSON_AddStringToObject(root, "model", model)) goto done;
    cJSON *msgs = cJSON_AddArrayToObject(root, "messages");
    if (!msgs) goto done;
    if (system_prompt) {
        cJSON *m = chat_message("system", system_prompt);
        if (!m) goto done;
        cJSON_AddItemToArray(msgs, m);
    }
    cJSON *u = chat_message("user", user_prompt);
    if (!u) goto done;
    cJSON_AddItemToArray(msgs, u);
    if (!cJSON_AddNumberToObject(root, "temperature", temperature)) goto done;
    if (max_tokens > 0 && !cJSON_AddNumberToObject(root, "max_tokens", max_tokens)) goto done;
    if (json_mode) {
        cJSON *rf = cJSON_AddObjectToObject(root, "response_format");
        if (!rf || !cJSON_AddStringToObject(rf, "type", "json_object")) goto done;
    }
    if (!cJSON_AddFalseToObject(root, "stream")) goto done;
    out = cJSON_PrintUnformatted(root);
done:
    cJSON_Delete(root);
    return out;
}

/* ------------------------------------------------------------ extractors */

static es_llm_status parse_doc(const char *json, size_t len, cJSON **out, char *err, size_t errlen) {
    *out = NULL;
    if (!json || len == 0) {
        set_err(err, errlen, "empty response body");
        return ES_LLM_MALFORMED;
    }
    if (!es_utf8_valid(json, len)) {
        set_err(err, errlen, "the response is not valid UTF-8");
        return ES_LLM_BAD_UTF8;
    }
    if (!es_json_depth_ok(json, len, ES_JSON_MAX_DEPTH)) {
        set_err(err, errlen, "JSON nested deeper than %d levels", ES_JSON_MAX_DEPTH);
        return ES_LLM_MALFORMED;
    }
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!doc) {
        size_t off = end && end >= json ? (size_t)(end - json) : 0;
        set_err(err, errlen, "malformed or truncated JSON (parse error near byte %zu of %zu)", off, len);
        return ES_LLM_MALFORMED;
    }
    /* trailing garbage other than whitespace */
    if (end) {
        while ((size_t)(end - json) < len && isspace((unsigned char)*end)) end++;
        if ((size_t)(end - json) < len) {
            size_t off = (size_t)(end - json);
            cJSON_Delete(doc);
            set_err(err, errlen, "malformed JSON (unexpected data at byte %zu of %zu)", off, len);
            return ES_LLM_MALFORMED;
        }
    }
    *out = doc;
    return ES_LLM_OK;
}

static const char *get_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Copies at most max bytes of s, cut at a UTF-8 boundary. */
static void copy_trunc(char *dst, size_t dstlen, const char *s) {
    if (!dst || dstlen == 0) return;
    size_t n = strlen(s);
    if (n >= dstlen) {
        n = dstlen - 1;
        while (n > 0 && (((unsigned char)s[n]) & 0xC0) == 0x80) n--;
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
}

static int api_error(const cJSON *doc, char *err, size_t errlen) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, "error");
    if (!e) return 0;
    char tmp[512];
    if (cJSON_IsString(e)) {
        snprintf(tmp, sizeof(tmp), "the service returned an error: %s", e->valuestring);
    } else if (cJSON_IsObject(e)) {
        const char *msg = get_str(e, "message");
        const char *status = get_str(e, "status");
        if (!status) status = get_str(e, "type");
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
        char codebuf[32] = "";
        if (cJSON_IsNumber(code) && fabs(code->valuedouble) < 1e9)
            snprintf(codebuf, sizeof(codebuf), "%d ", (int)code->valuedouble);
        else if (cJSON_IsString(code))
            snprintf(codebuf, sizeof(codebuf), "%.20s ", code->valuestring);
        snprintf(tmp, sizeof(tmp), "the service returned an error: %s%s%s%s", codebuf, status ? status : "",
                 status ? ": " : "", msg ? msg : "(no message)");
    } else {
        snprintf(tmp, sizeof(tmp), "the service returned an error");
    }
    copy_trunc(err, errlen, tmp);
    return 1;
}

/* appends s to the growing buffer *buf */
static int append(char **buf, size_t *len, const char *s) {
    size_t n = strlen(s);
    char *nb = realloc(*buf, *len + n + 1);
    if (!nb) return -1;
    memcpy(nb + *len, s, n);
    *len += n;
    nb[*len] = '\0';
    *buf = nb;
    return 0;
}

static es_llm_status finish_text(char *text, size_t len, char **out, char *err, size_t errlen) {
    if (!text || len == 0) {
        free(text);
        set_err(err, errlen, "the answer contains no text");
        return ES_LLM_NO_TEXT;
    }
    if (!es_utf8_valid(text, len) || strlen(text) != len) {
        free(text);
        set_err(err, errlen, "the answer text is not valid UTF-8 (or contains NUL)");
        return ES_LLM_BAD_UTF8;
    }
    *out = text;
    return ES_LLM_OK;
}

es_llm_status es_llm_extract_gemini_text(const char *json, size_t len, char **out, char *err, size_t errlen) {
    *out = NULL;
    cJSON *doc;
    es_llm_status st = parse_doc(json, len, &doc, err, errlen);
    if (st != ES_LLM_OK) return st;
    if (!cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        set_err(err, errlen, "expected a JSON object as the generateContent response");
        return ES_LLM_MALFORMED;
    }
    if (api_error(doc, err, errlen)) {
        cJSON_Delete(doc);
        return ES_LLM_API_ERROR;
    }
    const cJSON *cands = cJSON_GetObjectItemCaseSensitive(doc, "candidates");
    if (!cJSON_IsArray(cands) || cJSON_GetArraySize(cands) == 0) {
        const cJSON *pf = cJSON_GetObjectItemCaseSensitive(doc, "promptFeedback");
        const char *br = pf ? get_str(pf, "blockReason") : NULL;
        if (br) {
            char tmp[256];
            snprintf(tmp, sizeof(tmp), "the prompt was blocked by the service (%s)", br);
            copy_trunc(err, errlen, tmp);
            cJSON_Delete(doc);
            return ES_LLM_BLOCKED;
        }
        cJSON_Delete(doc);
        set_err(err, errlen, "the response has no candidates");
        return ES_LLM_NO_TEXT;
    }
    const cJSON *c0 = cJSON_GetArrayItem(cands, 0);
    const char *finish = cJSON_IsObject(c0) ? get_str(c0, "finishReason") : NULL;
    const cJSON *content = cJSON_IsObject(c0) ? cJSON_GetObjectItemCaseSensitive(c0, "content") : NULL;
    const cJSON *parts = cJSON_IsObject(content) ? cJSON_GetObjectItemCaseSensitive(content, "parts") : NULL;
    char *text = NULL;
    size_t tlen = 0;
    if (cJSON_IsArray(parts)) {
        const cJSON *p;
        cJSON_ArrayForEach(p, parts) {
            const char *t = cJSON_IsObject(p) ? get_str(p, "text") : NULL;
            if (!t) continue;
            /* "thought" parts of thinking models are not the answer */
            if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "thought"))) continue;
            if (append(&text, &tlen, t)) {
                free(text);
                cJSON_Delete(doc);
                set_err(err, errlen, "out of memory");
                return ES_LLM_NOMEM;
            }
        }
    }
    if (!text && finish &&
        (strcmp(finish, "SAFETY") == 0 || strcmp(finish, "RECITATION") == 0 || strcmp(finish, "BLOCKLIST") == 0 ||
         strcmp(finish, "PROHIBITED_CONTENT") == 0 || strcmp(finish, "SPII") == 0)) {
        char tmp[256];
        snprintf(tmp, sizeof(tmp), "the answer was blocked by the service (finishReason %s)", finish);
        copy_trunc(err, errlen, tmp);
        cJSON_Delete(doc);
        return ES_LLM_BLOCKED;
    }
    if (!text && finish && strcmp(finish, "MAX_TOKENS") == 0) {
        cJSON_Delete(doc);
        set_err(err, errlen, "the answer was cut off before any text (finishReason MAX_TOKENS)");
        return ES_LLM_NO_TEXT;
    }
    cJSON_Delete(doc);
    return finish_text(text, tlen, out, err, errlen);
}

es_llm_status es_llm_extract_openai_text(const char *json, size_t len, char **out, char *err, size_t errlen) {
    *out = NULL;
    cJSON *doc;
    es_llm_status st = parse_doc(json, len, &doc, err, errlen);
    if (st != ES_LLM_OK) return st;
    if (!cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        set_err(err, errlen, "expected a JSON object as the chat-completions response");
        return ES_LLM_MALFORMED;
    }
    if (api_error(doc, err, errlen)) {
        cJSON_Delete(doc);
        return ES_LLM_API_ERROR;
    }
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(doc, "choices");
    if (!cJSON_IsArray(choices) || cJSON_GetArraySize(choices) == 0) {
        cJSON_Delete(doc);
        set_err(err, errlen, "the response has no choices");
        return ES_LLM_NO_TEXT;
    }
    const cJSON *c0 = cJSON_GetArrayItem(choices, 0);
    const char *finish = cJSON_IsObject(c0) ? get_str(c0, "finish_reason") : NULL;
    const cJSON *msg = cJSON_IsObject(c0) ? cJSON_GetObjectItemCaseSensitive(c0, "message") : NULL;
    const cJSON *content = cJSON_IsObject(msg) ? cJSON_GetObjectItemCaseSensitive(msg, "content") : NULL;
    char *text = NULL;
    size_t tlen = 0;
    int oom = 0;
    if (cJSON_IsString(content)) {
        oom = append(&text, &tlen, content->valuestring);
    } else if (cJSON_IsArray(content)) {
        const cJSON *p;
        cJSON_ArrayForEach(p, content) {
            const char *t = cJSON_IsObject(p) ? get_str(p, "text") : NULL;
            if (t && append(&text, &tlen, t)) {
                oom = 1;
                break;
            }
        }
    }
    if (oom) {
        free(text);
        cJSON_Delete(doc);
        set_err(err, errlen, "out of memory");
        return ES_LLM_NOMEM;
    }
    const char *refusal = cJSON_IsObject(msg) ? get_str(msg, "refusal") : NULL;
    if ((!text || tlen == 0) && (refusal || (finish && strcmp(finish, "content_filter") == 0))) {
        char tmp[512];
        snprintf(tmp, sizeof(tmp), "the model refused to answer%s%s", refusal ? ": " : " (content_filter)",
                 refusal ? refusal : "");
        copy_trunc(err, errlen, tmp);
        free(text);
        cJSON_Delete(doc);
        return ES_LLM_BLOCKED;
    }
    cJSON_Delete(doc);
    return finish_text(text, tlen, out, err, errlen);
}

/* ------------------------------------------------------------ plan parser */

static es_plan_level parse_level(const char *s) {
    for (int l = ES_LEVEL_NONE; l <= ES_LEVEL_FULL; l++)
        if (strcmp(s, es_plan_level_name((es_plan_level)l)) == 0) return (es_plan_level)l;
    return ES_LEVEL_UNSET;
}

/* An Elixir alias: Segment(.Segment)*, each [A-Z][A-Za-z0-9_]* */
static int valid_module_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > ES_PLAN_MAX_NAME) return 0;
    int at_start = 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (at_start) {
            if (!(c >= 'A' && c <= 'Z')) return 0;
            at_start = 0;
        } else if (c == '.') {
            at_start = 1;
        } else if (!(isalnum(c) || c == '_')) {
            return 0;
        }
    }
    return !at_start;
}

/* A function name: [a-z_][A-Za-z0-9_]*[?!]? */
static int valid_function_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > ES_PLAN_MAX_NAME) return 0;
    unsigned char c0 = (unsigned char)s[0];
    if (!((c0 >= 'a' && c0 <= 'z') || c0 == '_')) return 0;
    for (size_t i = 1; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c == '_') continue;
        if ((c == '?' || c == '!') && i == n - 1) continue;
        return 0;
    }
    return 1;
}

/* optional string; returns -1 on wrong type; truncates long text */
static int opt_text(const cJSON *o, const char *key, char **out, const char *path, char *err, size_t errlen) {
    *out = NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsString(v)) {
        set_err(err, errlen, "%s.%s: expected a string", path, key);
        return -1;
    }
    size_t n = strlen(v->valuestring);
    if (n > ES_PLAN_MAX_TEXT) {
        n = ES_PLAN_MAX_TEXT;
        while (n > 0 && (((unsigned char)v->valuestring[n]) & 0xC0) == 0x80) n--;
    }
    *out = dup_n(v->valuestring, n);
    if (!*out) {
        set_err(err, errlen, "out of memory");
        return -2;
    }
    return 0;
}

static int opt_level(const cJSON *o, const char *key, es_plan_level *out, const char *path, char *err,
                     size_t errlen) {
    *out = ES_LEVEL_UNSET;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsString(v) || (*out = parse_level(v->valuestring)) == ES_LEVEL_UNSET) {
        set_err(err, errlen,
                "%s.%s: expected one of \"none\", \"function_boundaries\", \"expressions\", \"locals\", \"full\"",
                path, key);
        return -1;
    }
    return 0;
}

static int opt_bool(const cJSON *o, const char *key, int *out, const char *path, char *err, size_t errlen) {
    *out = -1;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (cJSON_IsBool(v)) {
        *out = cJSON_IsTrue(v) ? 1 : 0;
        return 0;
    }
    if (cJSON_IsString(v) && strcmp(v->valuestring, "true") == 0) {
        *out = 1;
        return 0;
    }
    if (cJSON_IsString(v) && strcmp(v->valuestring, "false") == 0) {
        *out = 0;
        return 0;
    }
    set_err(err, errlen, "%s.%s: expected true or false", path, key);
    return -1;
}

/* Strips a ```json fence and any prose around the outermost {...}. */
static void locate_object(const char *s, size_t len, size_t *start, size_t *end) {
    size_t a = 0, b = len;
    while (a < b && isspace((unsigned char)s[a])) a++;
    while (b > a && isspace((unsigned char)s[b - 1])) b--;
    if (a < b && s[a] != '{') {
        const char *o = memchr(s + a, '{', b - a);
        if (o) a = (size_t)(o - s);
        size_t k = b;
        while (k > a && s[k - 1] != '}') k--;
        if (k > a) b = k;
    }
    *start = a;
    *end = b;
}

void es_plan_free(es_plan *plan) {
    if (!plan) return;
    for (size_t i = 0; i < plan->n_modules; i++) {
        es_plan_module *m = &plan->modules[i];
        for (size_t j = 0; j < m->n_functions; j++) {
            free(m->functions[j].name);
            free(m->functions[j].reason);
        }
        free(m->functions);
        free(m->module);
        free(m->reason);
    }
    free(plan->modules);
    free(plan->summary);
    free(plan);
}

static es_llm_status parse_function(const cJSON *f, es_plan_function *pf, const char *path, char *err,
                                    size_t errlen) {
    pf->arity = -1;
    pf->level = ES_LEVEL_UNSET;
    pf->capture_locals = pf->trace_expressions = -1;
    if (!cJSON_IsObject(f)) {
        set_err(err, errlen, "%s: expected an object", path);
        return ES_LLM_INVALID;
    }
    const char *name = get_str(f, "name");
    if (!name || !valid_function_name(name)) {
        set_err(err, errlen, "%s.name: expected a function name such as \"handle_call\"", path);
        return ES_LLM_INVALID;
    }
    const cJSON *ar = cJSON_GetObjectItemCaseSensitive(f, "arity");
    if (!cJSON_IsNumber(ar) || !(ar->valuedouble >= 0 && ar->valuedouble <= 255) ||
        ar->valuedouble != floor(ar->valuedouble)) {
        set_err(err, errlen, "%s.arity: expected an integer from 0 to 255", path);
        return ES_LLM_INVALID;
    }
    pf->arity = (int)ar->valuedouble;
    if (opt_level(f, "level", &pf->level, path, err, errlen) ||
        opt_bool(f, "capture_locals", &pf->capture_locals, path, err, errlen) ||
        opt_bool(f, "trace_expressions", &pf->trace_expressions, path, err, errlen))
        return ES_LLM_INVALID;
    int r = opt_text(f, "reason", &pf->reason, path, err, errlen);
    if (r == -2) return ES_LLM_NOMEM;
    if (r) return ES_LLM_INVALID;
    pf->name = dup_n(name, strlen(name));
    if (!pf->name) {
        set_err(err, errlen, "out of memory");
        return ES_LLM_NOMEM;
    }
    return ES_LLM_OK;
}

static es_llm_status parse_module(const cJSON *m, es_plan_module *pm, const char *path, char *err,
                                  size_t errlen) {
    pm->level = ES_LEVEL_UNSET;
    pm->genserver_state = -1;
    if (!cJSON_IsObject(m)) {
        set_err(err, errlen, "%s: expected an object", path);
        return ES_LLM_INVALID;
    }
    const char *name = get_str(m, "module");
    if (name && strncmp(name, "Elixir.", 7) == 0) name += 7;
    if (!name || !valid_module_name(name)) {
        set_err(err, errlen, "%s.module: expected a module name such as \"MyApp.Worker\"", path);
        return ES_LLM_INVALID;
    }
    pm->module = dup_n(name, strlen(name));
    if (!pm->module) {
        set_err(err, errlen, "out of memory");
        return ES_LLM_NOMEM;
    }
    if (opt_level(m, "level", &pm->level, path, err, errlen)) return ES_LLM_INVALID;
    const cJSON *gs = cJSON_GetObjectItemCaseSensitive(m, "genserver_state");
    if (gs && !cJSON_IsNull(gs)) {
        if (cJSON_IsString(gs) && strcmp(gs->valuestring, "auto") == 0) {
            pm->genserver_state = 2;
        } else if (opt_bool(m, "genserver_state", &pm->genserver_state, path, err, errlen)) {
            set_err(err, errlen, "%s.genserver_state: expected true, false or \"auto\"", path);
            return ES_LLM_INVALID;
        }
    }
    int r = opt_text(m, "reason", &pm->reason, path, err, errlen);
    if (r == -2) return ES_LLM_NOMEM;
    if (r) return ES_LLM_INVALID;
    const cJSON *funs = cJSON_GetObjectItemCaseSensitive(m, "functions");
    if (!funs || cJSON_IsNull(funs)) return ES_LLM_OK;
    if (!cJSON_IsArray(funs)) {
        set_err(err, errlen, "%s.functions: expected an array", path);
        return ES_LLM_INVALID;
    }
    int n = cJSON_GetArraySize(funs);
    if (n > ES_PLAN_MAX_FUNCTIONS) {
        set_err(err, errlen, "%s.functions: more than %d entries", path, ES_PLAN_MAX_FUNCTIONS);
        return ES_LLM_INVALID;
    }
    if (n == 0) return ES_LLM_OK;
    pm->functions = calloc((size_t)n, sizeof(es_plan_function));
    if (!pm->functions) {
        set_err(err, errlen, "out of memory");
        return ES_LLM_NOMEM;
    }
    const cJSON *f;
    cJSON_ArrayForEach(f, funs) {
        char fpath[96];
        snprintf(fpath, sizeof(fpath), "%s.functions[%zu]", path, pm->n_functions);
        es_plan_function *pf = &pm->functions[pm->n_functions++];
        es_llm_status st = parse_function(f, pf, fpath, err, errlen);
        if (st != ES_LLM_OK) return st;
    }
    return ES_LLM_OK;
}

es_llm_status es_plan_parse(const char *json, size_t len, es_plan **out, char *err, size_t errlen) {
    *out = NULL;
    if (!json) {
        set_err(err, errlen, "no plan text");
        return ES_LLM_MALFORMED;
    }
    size_t a, b;
    locate_object(json, len, &a, &b);
    cJSON *doc;
    es_llm_status st = parse_doc(json + a, b - a, &doc, err, errlen);
    if (st != ES_LLM_OK) return st;
    if (!cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        set_err(err, errlen, "the plan must be a JSON object with a \"modules\" array");
        return ES_LLM_INVALID;
    }
    es_plan *plan = calloc(1, sizeof(*plan));
    if (!plan) {
        cJSON_Delete(doc);
        set_err(err, errlen, "out of memory");
        return ES_LLM_NOMEM;
    }
    st = ES_LLM_INVALID;
    if (opt_level(doc, "default_level", &plan->default_level, "plan", err, errlen)) goto fail;
    int r = opt_text(doc, "summary", &plan->summary, "plan", err, errlen);
    if (r) {
        st = r == -2 ? ES_LLM_NOMEM : ES_LLM_INVALID;
        goto fail;
    }
    const cJSON *mods = cJSON_GetObjectItemCaseSensitive(doc, "modules");
    if (!cJSON_IsArray(mods)) {
        set_err(err, errlen, "plan.modules: expected an array of module plans");
        goto fail;
    }
    int n = cJSON_GetArraySize(mods);
    if (n > ES_PLAN_MAX_MODULES) {
        set_err(err, errlen, "plan.modules: more than %d entries", ES_PLAN_MAX_MODULES);
        goto fail;
    }
    if (n > 0) {
        plan->modules = calloc((size_t)n, sizeof(es_plan_module));
        if (!plan->modules) {
            set_err(err, errlen, "out of memory");
            st = ES_LLM_NOMEM;
            goto fail;
        }
        const cJSON *m;
        cJSON_ArrayForEach(m, mods) {
            char path[48];
            snprintf(path, sizeof(path), "plan.modules[%zu]", plan->n_modules);
            es_plan_module *pm = &plan->modules[plan->n_modules++];
            st = parse_module(m, pm, path, err, errlen);
            if (st != ES_LLM_OK) goto fail;
        }
    }
    cJSON_Delete(doc);
    *out = plan;
    return ES_LLM_OK;
fail:
    cJSON_Delete(doc);
    es_plan_free(plan);
    return st;
}
