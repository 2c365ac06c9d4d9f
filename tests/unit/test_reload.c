/* test_reload.c - the plan of a configuration reload, from two YAML texts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r2m/config.h"
#include "r2m/error.h"
#include "r2m/reload.h"

static struct r2m_config *parse(const char *yaml)
{
    struct r2m_config *cfg = NULL;
    struct r2m_diag diag = {0};
    int r = r2m_config_parse("reload.yaml", yaml, strlen(yaml), &cfg, &diag);
    for (size_t i = 0; i < diag.n; i++)
        fprintf(stderr, "%s\n", diag.lines[i]);
    r2m_diag_free(&diag);
    assert_int_equal(r, 0);
    return cfg;
}

#define HEAD                                                                                       \
    "mqtt: { url: \"mqtt://127.0.0.1:1\", client_id: unit }\n"                                     \
    "defaults: { interval: 10s, timeout: 2s }\n"

static const char old_yaml[] = HEAD "endpoints:\n"
                                    "  - { name: alpha, url: \"http://a.example/x\" }\n"
                                    "  - { name: beta, url: \"http://b.example/x\" }\n"
                                    "  - { name: delta, url: \"http://d.example/x\" }\n";

/* Plans old_yaml -> new_yaml over every endpoint of the old configuration. */
static void plan_of(const char *old_text, const char *new_text, struct r2m_reload_plan *plan)
{
    struct r2m_config *old = parse(old_text), *nc = parse(new_text);
    const struct r2m_endpoint_cfg *eps[8];
    assert_true(old->n_endpoints <= 8);
    for (size_t i = 0; i < old->n_endpoints; i++)
        eps[i] = &old->endpoints[i];
    assert_int_equal(r2m_reload_plan_new(plan, old, eps, old->n_endpoints, nc), 0);
    r2m_config_free(old);
    r2m_config_free(nc);
}

static void the_same_file_changes_nothing(void **state)
{
    (void)state;
    struct r2m_reload_plan p;
    plan_of(old_yaml, old_yaml, &p);
    assert_int_equal(p.n_steps, 3);
    assert_int_equal(p.unchanged, 3);
    assert_int_equal(p.added + p.changed + p.removed, 0);
    assert_int_equal(p.globals_differ, 0);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(p.steps[i].action, R2M_RELOAD_UNCHANGED);
        assert_int_equal(p.steps[i].old, i);
        assert_int_equal(p.kept[i], 1);
    }
    r2m_reload_plan_free(&p);
}

static void added_removed_changed_unchanged(void **state)
{
    (void)state;
    static const char new_yaml[] = HEAD "endpoints:\n"
                                        "  - { name: gamma, url: \"http://g.example/x\" }\n"
                                        "  - { name: beta, url: \"http://b.example/x\", "
                                        "interval: 30s }\n"
                                        "  - { name: alpha, url: \"http://a.example/x\" }\n";
    struct r2m_reload_plan p;
    plan_of(old_yaml, new_yaml, &p);
    assert_int_equal(p.n_steps, 3);
    assert_int_equal(p.n_old, 3);
    /* steps follow the new file's order */
    assert_int_equal(p.steps[0].action, R2M_RELOAD_ADDED);
    assert_int_equal(p.steps[0].old, SIZE_MAX);
    assert_int_equal(p.steps[1].action, R2M_RELOAD_CHANGED);
    assert_int_equal(p.steps[1].old, 1);
    assert_int_equal(p.steps[2].action, R2M_RELOAD_UNCHANGED);
    assert_int_equal(p.steps[2].old, 0);
    /* alpha runs on; beta's old copy and delta stop */
    assert_int_equal(p.kept[0], 1);
    assert_int_equal(p.kept[1], 0);
    assert_int_equal(p.kept[2], 0);
    assert_int_equal(p.added, 1);
    assert_int_equal(p.changed, 1);
    assert_int_equal(p.unchanged, 1);
    assert_int_equal(p.removed, 1);
    assert_int_equal(p.globals_differ, 0);
    r2m_reload_plan_free(&p);
}

static void a_rename_is_a_removal_and_an_addition(void **state)
{
    (void)state;
    static const char new_yaml[] = HEAD "endpoints:\n"
                                        "  - { name: alpha2, url: \"http://a.example/x\" }\n"
                                        "  - { name: beta, url: \"http://b.example/x\" }\n"
                                        "  - { name: delta, url: \"http://d.example/x\" }\n";
    struct r2m_reload_plan p;
    plan_of(old_yaml, new_yaml, &p);
    assert_int_equal(p.steps[0].action, R2M_RELOAD_ADDED);
    assert_int_equal(p.kept[0], 0);
    assert_int_equal(p.added, 1);
    assert_int_equal(p.removed, 1);
    assert_int_equal(p.unchanged, 2);
    r2m_reload_plan_free(&p);
}

static void a_secret_change_restarts_the_endpoint(void **state)
{
    (void)state;
    static const char a[] = HEAD "endpoints:\n"
                                 "  - name: alpha\n"
                                 "    url: \"http://a.example/x\"\n"
                                 "    auth: { type: bearer, token: one }\n";
    static const char c[] = HEAD "endpoints:\n"
                                 "  - name: alpha\n"
                                 "    url: \"http://a.example/x\"\n"
                                 "    auth: { type: bearer, token: two }\n";
    struct r2m_reload_plan p;
    plan_of(a, c, &p);
    assert_int_equal(p.steps[0].action, R2M_RELOAD_CHANGED);
    assert_int_equal(p.changed, 1);
    assert_int_equal(p.removed, 0);
    r2m_reload_plan_free(&p);
}

static void settings_outside_endpoints_need_a_restart(void **state)
{
    (void)state;
    static const char prefix[] =
        "mqtt: { url: \"mqtt://127.0.0.1:1\", client_id: unit, topic_prefix: other }\n"
        "defaults: { interval: 10s, timeout: 2s }\n"
        "endpoints:\n"
        "  - { name: alpha, url: \"http://a.example/x\" }\n";
    static const char logged[] = HEAD "log: { level: debug }\n"
                                      "endpoints:\n"
                                      "  - { name: alpha, url: \"http://a.example/x\" }\n";
    static const char base[] = HEAD "endpoints:\n"
                                    "  - { name: alpha, url: \"http://a.example/x\" }\n";
    struct r2m_reload_plan p;
    plan_of(base, prefix, &p);
    assert_int_equal(p.globals_differ, 1);
    r2m_reload_plan_free(&p);
    /* the per-origin cap is read once at start, like max_concurrent: a
     * reload that changes it says a restart is needed */
    static const char capped[] = HEAD "max_per_host: 1\n"
                                      "endpoints:\n"
                                      "  - { name: alpha, url: \"http://a.example/x\" }\n";
    plan_of(base, capped, &p);
    assert_int_equal(p.globals_differ, 1);
    r2m_reload_plan_free(&p);
    /* log: applies at once: not a restart */
    plan_of(base, logged, &p);
    assert_int_equal(p.globals_differ, 0);
    assert_int_equal(p.unchanged, 1);
    r2m_reload_plan_free(&p);
}

static void no_endpoints_running_or_none_left(void **state)
{
    (void)state;
    struct r2m_config *old = parse(old_yaml);
    struct r2m_reload_plan p;
    /* nothing running (every endpoint failed to start last time): all added */
    assert_int_equal(r2m_reload_plan_new(&p, old, NULL, 0, old), 0);
    assert_int_equal(p.added, 3);
    assert_int_equal(p.removed, 0);
    r2m_reload_plan_free(&p);
    r2m_reload_plan_free(&p); /* freeing twice is harmless */
    r2m_config_free(old);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_same_file_changes_nothing),
        cmocka_unit_test(added_removed_changed_unchanged),
        cmocka_unit_test(a_rename_is_a_removal_and_an_addition),
        cmocka_unit_test(a_secret_change_restarts_the_endpoint),
        cmocka_unit_test(settings_outside_endpoints_need_a_restart),
        cmocka_unit_test(no_endpoints_running_or_none_left),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
