/* CMocka tests of the LLM client's JSON building and parsing (no network
 * except a refused connection to 127.0.0.1 and argument checks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elixir_scope/llm_client.h"

static char err[512];

static void test_utf8_validation(void **state) {
    (void)state;
    assert_true(es_utf8_valid("plain", 5));
    assert_true(es_utf8_valid("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 16));
    assert_false(es_utf8_valid("\xc3", 1));                 /* truncated */
    assert_false(es_utf8_valid("\xc0\xaf", 2));             /* overlong */
    assert_false(es_utf8_valid("\xed\xa0\x80", 3));         /* surrogate */
    assert_false(es_utf8_valid("\xf4\x90\x80\x80", 4));     /* > U+10FFFF */
    assert_false(es_utf8_valid("\xff", 1));
    assert_false(es_utf8_valid("ab\x80", 3));
}

static void test_json_depth(void **state) {
    (void)state;
    assert_true(es_json_depth_ok("[[{}]]", 6, 3));
    assert_false(es_json_depth_ok("[[{}]]", 6, 2));
    const char *instr = "[\"[[[[\\\"[[\"]";
    assert_true(es_json_depth_ok(instr, strlen(instr), 1)); /* brackets inside strings, escaped quote */
    assert_true(es_json_depth_ok("", 0, 1));
}

static void test_gemini_request_has_schema(void **state) {
    (void)state;
    char *j = es_llm_build_gemini_request("be brief", "plan \"this\"\n", 1, 0.2, 2048);
    assert_non_null(j);
    cJSON *d = cJSON_Parse(j);
    assert_non_null(d);
    cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(d, "contents"), 0);
    assert_string_equal(cJSON_GetObjectItem(c, "role")->valuestring, "user");
    cJSON *p = cJSON_GetArrayItem(cJSON_GetObjectItem(c, "parts"), 0);
    assert_string_equal(cJSON_GetObjectItem(p, "text")->valuestring, "plan \"this\"\n");
    cJSON *si = cJSON_GetObjectItem(d, "systemInstruction");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(si, "parts"), 0), "text")->valuestring,
                        "be brief");
    cJSON *gc = cJSON_GetObjectItem(d, "generationConfig");
    assert_string_equal(cJSON_GetObjectItem(gc, "responseMimeType")->valuestring, "application/json");
    assert_int_equal(cJSON_GetObjectItem(gc, "maxOutputTokens")->valueint, 2048);
    cJSON *schema = cJSON_GetObjectItem(gc, "responseSchema");
    assert_string_equal(cJSON_GetObjectItem(schema, "type")->valuestring, "OBJECT");
    assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(schema, "properties"), "modules"));
    cJSON_Delete(d);
    free(j);

    j = es_llm_build_gemini_request(NULL, "x", 0, 0.0, 0);
    assert_non_null(j);
    d = cJSON_Parse(j);
    assert_null(cJSON_GetObjectItem(d, "systemInstruction"));
    assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(d, "generationConfig"), "responseSchema"));
    cJSON_Delete(d);
    free(j);

    assert_null(es_llm_build_gemini_request(NULL, "bad \xff utf8", 1, 0.2, 0));
    assert_null(es_llm_build_gemini_request(NULL, NULL, 1, 0.2, 0));
}

static void test_openai_request(void **state) {
    (void)state;
    char *j = es_llm_build_openai_request("llama3", "sys", "user", 1, 0.5, 100);
    assert_non_null(j);
    cJSON *d = cJSON_Parse(j);
    assert_string_equal(cJSON_GetObjectItem(d, "model")->valuestring, "llama3");
    cJSON *msgs = cJSON_GetObjectItem(d, "messages");
    assert_int_equal(cJSON_GetArraySize(msgs), 2);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 0), "role")->valuestring, "system");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 1), "content")->valuestring, "user");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(d, "response_format"), "type")->valuestring,
                        "json_object");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(d, "stream")));
    cJSON_Delete(d);
    free(j);
    assert_null(es_llm_build_openai_request("m", NULL, "\xc3", 0, 0.5, 0));
}

static void test_extract_gemini(void **state) {
    (void)state;
    const char *ok = "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"{\\\"a\\\":\"},{\"text\":\"1}\"}],"
                     "\"role\":\"model\"},\"finishReason\":\"STOP\"}]}";
    char *t = NULL;
    assert_int_equal(es_llm_extract_gemini_text(ok, strlen(ok), &t, err, sizeof(err)), ES_LLM_OK);
    assert_string_equal(t, "{\"a\":1}");
    free(t);

    const char *thought = "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hmm\",\"thought\":true},"
                          "{\"text\":\"answer\"}]}}]}";
    assert_int_equal(es_llm_extract_gemini_text(thought, strlen(thought), &t, err, sizeof(err)), ES_LLM_OK);
    assert_string_equal(t, "answer");
    free(t);

    const char *apierr = "{\"error\":{\"code\":400,\"message\":\"API key not valid\",\"status\":\"INVALID_ARGUMENT\"}}";
    assert_int_equal(es_llm_extract_gemini_text(apierr, strlen(apierr), &t, err, sizeof(err)), ES_LLM_API_ERROR);
    assert_null(t);
    assert_non_null(strstr(err, "API key not valid"));
    assert_non_null(strstr(err, "400"));

    const char *blocked = "{\"promptFeedback\":{\"blockReason\":\"SAFETY\"}}";
    assert_int_equal(es_llm_extract_gemini_text(blocked, strlen(blocked), &t, err, sizeof(err)), ES_LLM_BLOCKED);
    assert_non_null(strstr(err, "SAFETY"));

    const char *safety = "{\"candidates\":[{\"finishReason\":\"SAFETY\"}]}";
    assert_int_equal(es_llm_extract_gemini_text(safety, strlen(safety), &t, err, sizeof(err)), ES_LLM_BLOCKED);

    const char *maxtok = "{\"candidates\":[{\"finishReason\":\"MAX_TOKENS\",\"content\":{}}]}";
    assert_int_equal(es_llm_extract_gemini_text(maxtok, strlen(maxtok), &t, err, sizeof(err)), ES_LLM_NO_TEXT);
    assert_non_null(strstr(err, "MAX_TOKENS"));

    const char *empty = "{\"candidates\":[]}";
    assert_int_equal(es_llm_extract_gemini_text(empty, strlen(empty), &t, err, sizeof(err)), ES_LLM_NO_TEXT);
    const char *notobj = "[1,2]";
    assert_int_equal(es_llm_extract_gemini_text(notobj, strlen(notobj), &t, err, sizeof(err)), ES_LLM_MALFORMED);
    /* a part whose text is the wrong type is skipped, so no text */
    const char *wrongtype = "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":42}]}}]}";
    assert_int_equal(es_llm_extract_gemini_text(wrongtype, strlen(wrongtype), &t, err, sizeof(err)),
                     ES_LLM_NO_TEXT);
}

static void test_extract_openai(void **state) {
    (void)state;
    const char *ok = "{\"id\":\"x\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
                     "\"hello \\u00e9\"},\"finish_reason\":\"stop\"}]}";
    char *t = NULL;
    assert_int_equal(es_llm_extract_openai_text(ok, strlen(ok), &t, err, sizeof(err)), ES_LLM_OK);
    assert_string_equal(t, "hello \xc3\xa9");
    free(t);
    const char *parts = "{\"choices\":[{\"message\":{\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
                        "{\"type\":\"text\",\"text\":\"b\"}]}}]}";
    assert_int_equal(es_llm_extract_openai_text(parts, strlen(parts), &t, err, sizeof(err)), ES_LLM_OK);
    assert_string_equal(t, "ab");
    free(t);
    const char *e = "{\"error\":{\"message\":\"Incorrect API key\",\"type\":\"invalid_request_error\"}}";
    assert_int_equal(es_llm_extract_openai_text(e, strlen(e), &t, err, sizeof(err)), ES_LLM_API_ERROR);
    assert_non_null(strstr(err, "Incorrect API key"));
    const char *refusal = "{\"choices\":[{\"message\":{\"content\":null,\"refusal\":\"no\"}}]}";
    assert_int_equal(es_llm_extract_openai_text(refusal, strlen(refusal), &t, err, sizeof(err)), ES_LLM_BLOCKED);
    const char *nochoice = "{\"choices\":[]}";
    assert_int_equal(es_llm_extract_openai_text(nochoice, strlen(nochoice), &t, err, sizeof(err)), ES_LLM_NO_TEXT);
}

static void test_truncated_json(void **state) {
    (void)state;
    const char *full = "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"abc\"}]}}]}";
    size_t n = strlen(full);
    char *t = NULL;
    /* every strict prefix is malformed, never a crash or a partial answer */
    for (size_t k = 0; k < n; k++) {
        char *buf = malloc(k + 1);
        memcpy(buf, full, k);
        buf[k] = '\0';
        es_llm_status st = es_llm_extract_gemini_text(buf, k, &t, err, sizeof(err));
        assert_int_equal(st, ES_LLM_MALFORMED);
        assert_null(t);
        free(buf);
    }
    /* trailing garbage */
    const char *trail = "{\"choices\":[]} xyz";
    assert_int_equal(es_llm_extract_openai_text(trail, strlen(trail), &t, err, sizeof(err)), ES_LLM_MALFORMED);
    /* NUL inside the buffer */
    const char nul[] = "{\"a\":1}\0{}";
    assert_int_equal(es_llm_extract_openai_text(nul, sizeof(nul) - 1, &t, err, sizeof(err)), ES_LLM_MALFORMED);
}

static void test_hostile_json(void **state) {
    (void)state;
    char *t = NULL;
    /* deep nesting: rejected (bounded by cJSON's nesting limit), no stack overflow */
    size_t depth = 100000;
    char *deep = malloc(depth * 2 + 1);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    deep[depth * 2] = '\0';
    assert_int_equal(es_llm_extract_gemini_text(deep, depth * 2, &t, err, sizeof(err)), ES_LLM_MALFORMED);
    es_plan *p = NULL;
    assert_int_equal(es_plan_parse(deep, depth * 2, &p, err, sizeof(err)), ES_LLM_MALFORMED);
    assert_null(p);
    free(deep);

    /* huge numbers */
    const char *huge = "{\"modules\":[{\"module\":\"A\",\"functions\":[{\"name\":\"f\",\"arity\":1e400}]}]}";
    assert_int_equal(es_plan_parse(huge, strlen(huge), &p, err, sizeof(err)), ES_LLM_INVALID);
    assert_non_null(strstr(err, "arity"));
    const char *neg = "{\"modules\":[{\"module\":\"A\",\"functions\":[{\"name\":\"f\",\"arity\":-1}]}]}";
    assert_int_equal(es_plan_parse(neg, strlen(neg), &p, err, sizeof(err)), ES_LLM_INVALID);
    const char *frac = "{\"modules\":[{\"module\":\"A\",\"functions\":[{\"name\":\"f\",\"arity\":1.5}]}]}";
    assert_int_equal(es_plan_parse(frac, strlen(frac), &p, err, sizeof(err)), ES_LLM_INVALID);
    const char *bignum = "{\"candidates\":[{\"index\":123456789012345678901234567890123456789,"
                         "\"content\":{\"parts\":[{\"text\":\"ok\"}]}}]}";
    assert_int_equal(es_llm_extract_gemini_text(bignum, strlen(bignum), &t, err, sizeof(err)), ES_LLM_OK);
    assert_string_equal(t, "ok");
    free(t);
    t = NULL;

    /* invalid UTF-8, raw and in the decoded text */
    const char *bad = "{\"choices\":[{\"message\":{\"content\":\"a\xff\xfe\"}}]}";
    assert_int_equal(es_llm_extract_openai_text(bad, strlen(bad), &t, err, sizeof(err)), ES_LLM_BAD_UTF8);
    assert_null(t);
    const char *surrogate = "{\"choices\":[{\"message\":{\"content\":\"\\udc00\"}}]}";
    assert_int_equal(es_llm_extract_openai_text(surrogate, strlen(surrogate), &t, err, sizeof(err)),
                     ES_LLM_MALFORMED);
    const char *badplan = "{\"modules\":[{\"module\":\"A\xc0\xaf\"}]}";
    assert_int_equal(es_plan_parse(badplan, strlen(badplan), &p, err, sizeof(err)), ES_LLM_BAD_UTF8);
    /* an escaped NUL in the text is refused rather than silently cut */
    const char *nul = "{\"choices\":[{\"message\":{\"content\":\"a\\u0000b\"}}]}";
    es_llm_status st = es_llm_extract_openai_text(nul, strlen(nul), &t, err, sizeof(err));
    if (st == ES_LLM_OK) {
        assert_string_equal(t, "a");
        free(t);
    }

    /* wrong types everywhere */
    const char *types[] = {
        "{\"modules\":{}}",
        "{\"modules\":[1]}",
        "{\"modules\":[{\"module\":5}]}",
        "{\"modules\":[{\"module\":\"lower.case\"}]}",
        "{\"modules\":[{\"module\":\"A..B\"}]}",
        "{\"modules\":[{\"module\":\"A\",\"level\":\"everything\"}]}",
        "{\"modules\":[{\"module\":\"A\",\"functions\":[{\"name\":\"Bad\",\"arity\":0}]}]}",
        "{\"modules\":[{\"module\":\"A\",\"functions\":[{\"name\":\"f\"}]}]}",
        "{\"modules\":[{\"module\":\"A\",\"functions\":[{\"name\":\"f\",\"arity\":0,\"capture_locals\":3}]}]}",
        "{\"modules\":[{\"module\":\"A\",\"genserver_state\":\"sometimes\"}]}",
        "{\"modules\":[{\"module\":\"A\",\"functions\":\"all\"}]}",
        "{\"default_level\":\"max\",\"modules\":[]}",
        "[]",
        "\"modules\"",
    };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        es_llm_status s = es_plan_parse(types[i], strlen(types[i]), &p, err, sizeof(err));
        assert_true(s == ES_LLM_INVALID || s == ES_LLM_MALFORMED);
        assert_null(p);
        assert_true(strlen(err) > 0);
    }
}

static void test_plan_parse_ok(void **state) {
    (void)state;
    const char *txt =
        "Here is the plan:\n```json\n"
        "{\"default_level\":\"function_boundaries\",\"summary\":\"s\",\"modules\":["
        "{\"module\":\"Elixir.MyApp.Worker\",\"level\":\"locals\",\"genserver_state\":\"auto\",\"reason\":\"GenServer\","
        "\"functions\":[{\"name\":\"handle_call\",\"arity\":3,\"level\":\"full\",\"capture_locals\":true,"
        "\"trace_expressions\":false,\"reason\":\"complex\"},{\"name\":\"valid?\",\"arity\":1,\"level\":\"none\"}]},"
        "{\"module\":\"MyApp\",\"genserver_state\":false}"
        "]}\n```\n";
    es_plan *p = NULL;
    assert_int_equal(es_plan_parse(txt, strlen(txt), &p, err, sizeof(err)), ES_LLM_OK);
    assert_non_null(p);
    assert_int_equal(p->default_level, ES_LEVEL_FUNCTION_BOUNDARIES);
    assert_string_equal(p->summary, "s");
    assert_int_equal(p->n_modules, 2);
    es_plan_module *m = &p->modules[0];
    assert_string_equal(m->module, "MyApp.Worker");
    assert_int_equal(m->level, ES_LEVEL_LOCALS);
    assert_int_equal(m->genserver_state, 2);
    assert_string_equal(m->reason, "GenServer");
    assert_int_equal(m->n_functions, 2);
    assert_string_equal(m->functions[0].name, "handle_call");
    assert_int_equal(m->functions[0].arity, 3);
    assert_int_equal(m->functions[0].level, ES_LEVEL_FULL);
    assert_int_equal(m->functions[0].capture_locals, 1);
    assert_int_equal(m->functions[0].trace_expressions, 0);
    assert_string_equal(m->functions[1].name, "valid?");
    assert_int_equal(m->functions[1].level, ES_LEVEL_NONE);
    assert_int_equal(m->functions[1].capture_locals, -1);
    assert_null(m->functions[1].reason);
    assert_int_equal(p->modules[1].level, ES_LEVEL_UNSET);
    assert_int_equal(p->modules[1].genserver_state, 0);
    assert_int_equal(p->modules[1].n_functions, 0);
    es_plan_free(p);

    /* long reasons are cut at a UTF-8 boundary */
    size_t n = ES_PLAN_MAX_TEXT + 100;
    char *big = malloc(n * 2 + 128);
    char *w = big;
    w += sprintf(w, "{\"modules\":[{\"module\":\"A\",\"reason\":\"");
    for (size_t i = 0; i < n; i++) {
        *w++ = '\xc3';
        *w++ = '\xa9';
    }
    w += sprintf(w, "\"}]}");
    assert_int_equal(es_plan_parse(big, (size_t)(w - big), &p, err, sizeof(err)), ES_LLM_OK);
    size_t rl = strlen(p->modules[0].reason);
    assert_true(rl <= ES_PLAN_MAX_TEXT);
    assert_true(es_utf8_valid(p->modules[0].reason, rl));
    es_plan_free(p);
    free(big);

    const char *empty = "{\"modules\":[]}";
    assert_int_equal(es_plan_parse(empty, strlen(empty), &p, err, sizeof(err)), ES_LLM_OK);
    assert_int_equal(p->n_modules, 0);
    es_plan_free(p);
}

/* Mutated valid documents and random bytes: never a crash, a leak or an
 * out-of-bounds read (run under ASan by make test-asan); OK results are valid UTF-8. */
static void test_mutation_fuzz(void **state) {
    (void)state;
    const char *seeds[] = {
        "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"{\\\"modules\\\":[]}\"}]}}]}",
        "{\"choices\":[{\"message\":{\"content\":\"hi \\u00e9\"}}]}",
        "{\"default_level\":\"none\",\"modules\":[{\"module\":\"A.B\",\"level\":\"full\",\"genserver_state\":\"auto\","
        "\"functions\":[{\"name\":\"f?\",\"arity\":2,\"capture_locals\":true,\"reason\":\"r\"}]}]}",
    };
    unsigned seed = 12345u;
    for (int round = 0; round < 3000; round++) {
        const char *src = seeds[round % 3];
        size_t n = strlen(src);
        char *buf = malloc(n + 1);
        memcpy(buf, src, n + 1);
        int flips = 1 + round % 4;
        for (int k = 0; k < flips; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t pos = (seed >> 8) % n;
            seed = seed * 1103515245u + 12345u;
            buf[pos] = (char)(seed >> 16);
        }
        seed = seed * 1103515245u + 12345u;
        size_t len = (round % 5 == 0) ? (seed >> 8) % (n + 1) : n;
        char *t = NULL;
        es_plan *p = NULL;
        if (es_llm_extract_gemini_text(buf, len, &t, err, sizeof(err)) == ES_LLM_OK) {
            assert_true(es_utf8_valid(t, strlen(t)));
            free(t);
        }
        t = NULL;
        if (es_llm_extract_openai_text(buf, len, &t, err, sizeof(err)) == ES_LLM_OK) {
            assert_true(es_utf8_valid(t, strlen(t)));
            free(t);
        }
        if (es_plan_parse(buf, len, &p, err, sizeof(err)) == ES_LLM_OK) {
            for (size_t i = 0; i < p->n_modules; i++) assert_true(strlen(p->modules[i].module) > 0);
            es_plan_free(p);
        }
        free(buf);
    }
}

static void test_schema(void **state) {
    (void)state;
    char *s = es_llm_plan_schema_json();
    assert_non_null(s);
    cJSON *d = cJSON_Parse(s);
    assert_non_null(d);
    assert_string_equal(cJSON_GetObjectItem(d, "type")->valuestring, "OBJECT");
    cJSON_Delete(d);
    free(s);
}

static void test_http_argument_errors(void **state) {
    (void)state;
    es_http_response r;
    es_http_request req = {.method = "GET", .url = "ftp://x", .timeout_ms = 1000, .max_response_bytes = 10};
    assert_int_equal(es_http_perform(&req, &r), -1);
    assert_int_equal(r.err, ES_HTTP_ERR_BAD_URL);
    es_http_response_free(&r);
    req.url = "http://127.0.0.1:1/";
    req.method = "BREW";
    assert_int_equal(es_http_perform(&req, &r), -1);
    assert_int_equal(r.err, ES_HTTP_ERR_BAD_REQUEST);
    es_http_response_free(&r);
    req.method = "GET";
    const char *hdrs[] = {"X-Evil: a\r\nInjected: b"};
    req.headers = hdrs;
    req.n_headers = 1;
    assert_int_equal(es_http_perform(&req, &r), -1);
    assert_int_equal(r.err, ES_HTTP_ERR_BAD_REQUEST);
    es_http_response_free(&r);
    req.n_headers = 0;
    /* port 1 on loopback: nothing listens there */
    assert_int_equal(es_http_perform(&req, &r), -1);
    assert_int_equal(r.err, ES_HTTP_ERR_CONNECT_REFUSED);
    assert_string_equal(es_http_err_name(r.err), "connect_refused");
    assert_null(r.body);
    es_http_response_free(&r);
}

int main(void) {
    es_llm_global_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_validation), cmocka_unit_test(test_json_depth),   cmocka_unit_test(test_gemini_request_has_schema),
        cmocka_unit_test(test_openai_request),    cmocka_unit_test(test_extract_gemini),
        cmocka_unit_test(test_extract_openai),    cmocka_unit_test(test_truncated_json),
        cmocka_unit_test(test_hostile_json),      cmocka_unit_test(test_plan_parse_ok),
        cmocka_unit_test(test_schema), cmocka_unit_test(test_mutation_fuzz),            cmocka_unit_test(test_http_argument_errors),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    es_llm_global_cleanup();
    return rc;
}
