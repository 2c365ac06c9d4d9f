/* test_poller.c - poller selection and the shared scratch space. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "r2m/error.h"
#include "r2m/poller.h"

static void endpoints_without_items_are_documents(void **state)
{
    (void)state;
    struct r2m_endpoint_cfg ep = {.name = "doc", .max_body = 1024};
    const struct r2m_poller_kind *k = r2m_poller_for(&ep);
    assert_ptr_equal(k, &r2m_poller_document);
    assert_string_equal(k->name, "document");
}

static void env_buffers_follow_largest_max_body(void **state)
{
    (void)state;
    struct r2m_endpoint_cfg eps[2] = {{.name = "a", .max_body = 1000},
                                      {.name = "b", .max_body = 5000}};
    struct r2m_config cfg = {.endpoints = eps, .n_endpoints = 2};
    struct r2m_poller_env env;
    assert_int_equal(r2m_poller_env_init(&env, &cfg), 0);
    assert_non_null(env.doc);
    assert_non_null(env.prev_doc);
    /* canonical text of a 5000-byte body always fits; unbounded never */
    assert_true(env.canon.max >= 5000 * 2);
    assert_true(env.canon.max < 5000 * 4);
    assert_true(env.event.max >= env.canon.max * 3);
    r2m_poller_env_cleanup(&env);
    r2m_poller_env_cleanup(&env); /* idempotent */
}

static void error_if_compares_by_value(void **state)
{
    (void)state;
    struct r2m_endpoint_cfg ep = {.name = "e"};
    ep.error_if.pointer = "/status";
    ep.error_if.equals = "500";
    struct r2m_json_doc *doc;
    struct r2m_json *root;
    char err[256];
    assert_int_equal(r2m_json_doc_new(&doc, NULL), 0);
    static const struct {
        const char *body;
        int fails;
    } cases[] = {
        {"{\"status\":500}", 1},   {"{\"status\":5e2}", 1},      {"{\"status\":\"500\"}", 1},
        {"{\"status\":501}", 0},   {"{\"status\":\"5000\"}", 0}, {"{\"other\":500}", 0},
        {"{\"status\":[500]}", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(
            r2m_json_parse(doc, cases[i].body, strlen(cases[i].body), &root, err, sizeof err), 0);
        int r = r2m_poller_error_if(&ep, root, err, sizeof err);
        if ((r != 0) != cases[i].fails)
            fail_msg("%s: error_if gave %d", cases[i].body, r);
    }
    r2m_json_doc_free(doc);
}

/* The settings fingerprint is stored with every snapshot: its value must
 * not change between releases (that would re-baseline every endpoint), so
 * it is pinned to the hash of its documented byte layout. */
static void settings_fingerprint_is_stable_and_tells_fields_apart(void **state)
{
    (void)state;
    char *keys[] = {"/id", "/region"}, *ignore[] = {"/ts"};
    struct r2m_endpoint_cfg ep = {
        .items = "/data", .key = keys, .n_key = 2, .ignore = ignore, .n_ignore = 1};
    static const char layout[] = "v1\0kind=collection\0items=/data\0key=/id\0key=/region\0"
                                 "ignore=/ts";
    struct r2m_fp want = r2m_json_fingerprint(layout, sizeof layout); /* with the last NUL */
    struct r2m_fp got = r2m_poller_settings(&ep);
    assert_true(got.hi == want.hi && got.lo == want.lo);

    struct r2m_endpoint_cfg doc = {0};
    static const char doc_layout[] = "v1\0kind=document";
    want = r2m_json_fingerprint(doc_layout, sizeof doc_layout);
    got = r2m_poller_settings(&doc);
    assert_true(got.hi == want.hi && got.lo == want.lo);

    /* text shifted from one key to the next is another setting */
    char *shifted[] = {"/id/", "region"};
    ep.key = shifted;
    struct r2m_fp other = r2m_poller_settings(&ep);
    want = r2m_json_fingerprint(layout, sizeof layout);
    assert_false(other.hi == want.hi && other.lo == want.lo);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(endpoints_without_items_are_documents),
        cmocka_unit_test(env_buffers_follow_largest_max_body),
        cmocka_unit_test(error_if_compares_by_value),
        cmocka_unit_test(settings_fingerprint_is_stable_and_tells_fields_apart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
