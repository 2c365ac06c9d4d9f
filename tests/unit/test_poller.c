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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(endpoints_without_items_are_documents),
        cmocka_unit_test(env_buffers_follow_largest_max_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
