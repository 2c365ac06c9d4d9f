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
    struct r2m_poll_env env;
    assert_int_equal(r2m_poll_env_init(&env, &cfg), 0);
    assert_non_null(env.doc);
    assert_non_null(env.prev_doc);
    /* canonical text of a 5000-byte body always fits; unbounded never */
    assert_true(env.canon.max >= 5000 * 2);
    assert_true(env.canon.max < 5000 * 4);
    assert_true(env.event.max >= env.canon.max * 3);
    r2m_poll_env_cleanup(&env);
    r2m_poll_env_cleanup(&env); /* idempotent */
}

static void next_pages_stay_on_the_same_origin(void **state)
{
    (void)state;
    struct r2m_page_next n;
    char err[256];
    const char *base = "https://api.example:8443/v1/items?page=1";
    assert_int_equal(r2m_page_resolve(base, "?page=2", &n, err, sizeof err), 0);
    assert_string_equal(n.url, "https://api.example:8443/v1/items?page=2");
    assert_int_equal(r2m_page_resolve(base, "/v1/items?after=x", &n, err, sizeof err), 0);
    assert_string_equal(n.url, "https://api.example:8443/v1/items?after=x");
    assert_int_equal(r2m_page_resolve(base, "https://API.example:8443/v2", &n, err, sizeof err), 0);
    /* credentials must not follow a link to another origin */
    static const char *const foreign[] = {
        "https://evil.example:8443/v1/items", /* host */
        "https://api.example:9443/v1/items",  /* port */
        "http://api.example:8443/v1/items",   /* scheme: https -> http */
        "//evil.example/v1",                  /* scheme-relative */
    };
    for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++) {
        assert_int_equal(r2m_page_resolve(base, foreign[i], &n, err, sizeof err), R2M_E_INVALID);
        assert_non_null(strstr(err, "another origin"));
    }
    /* the default port counts as the same origin */
    assert_int_equal(
        r2m_page_resolve("https://a.example/x", "https://a.example:443/y", &n, err, sizeof err), 0);
}

static void page_parameters_are_encoded(void **state)
{
    (void)state;
    struct r2m_page_next n;
    char err[256];
    assert_int_equal(
        r2m_page_param("http://h/items?limit=2", "cursor", "a b&c=/+", &n, err, sizeof err), 0);
    assert_string_equal(n.url, "http://h/items?limit=2&cursor=a+b%26c%3d%2f%2b");
    assert_int_equal(r2m_page_param("http://h/items", "page", "2", &n, err, sizeof err), 0);
    assert_string_equal(n.url, "http://h/items?page=2");
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(endpoints_without_items_are_documents),
        cmocka_unit_test(env_buffers_follow_largest_max_body),
        cmocka_unit_test(next_pages_stay_on_the_same_origin),
        cmocka_unit_test(page_parameters_are_encoded),
        cmocka_unit_test(error_if_compares_by_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
