/* test_oauth2.c - OAuth2 client-credentials token state, on a fake clock. */
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
#include "r2m/json.h"
#include "r2m/oauth2.h"

struct fixture {
    struct r2m_config *cfg;
    struct r2m_oauth2 *t;
    struct r2m_json_doc *doc;
};

static int setup(void **state)
{
    static const char yaml[] = "mqtt: { url: \"mqtt://127.0.0.1:1\", client_id: unit }\n"
                               "endpoints:\n"
                               "  - name: alpha\n"
                               "    url: \"https://api.example/items\"\n"
                               "    interval: 10s\n"
                               "    auth:\n"
                               "      type: oauth2\n"
                               "      token_url: \"https://login.example/token?tenant=x\"\n"
                               "      client_id: \"me&you\"\n"
                               "      client_secret: \"s3cr=t\"\n"
                               "      scope: \"read write\"\n";
    struct fixture *f = calloc(1, sizeof *f);
    struct r2m_diag diag = {0};
    if (!f || r2m_config_parse("oauth2.yaml", yaml, strlen(yaml), &f->cfg, &diag))
        return -1;
    r2m_diag_free(&diag);
    if (r2m_oauth2_new(&f->t, &f->cfg->endpoints[0]) || r2m_json_doc_new(&f->doc, NULL))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    r2m_oauth2_free(f->t);
    r2m_json_doc_free(f->doc);
    r2m_config_free(f->cfg);
    free(f);
    return 0;
}

static struct r2m_http_result answer(const char *body)
{
    struct r2m_http_result res = {0};
    res.status = 200;
    res.body = body;
    res.len = strlen(body);
    return res;
}

static void the_request_posts_the_credentials_form(void **state)
{
    struct fixture *f = *state;
    const struct r2m_endpoint_cfg *q = r2m_oauth2_request(f->t);
    assert_string_equal(q->method, "POST");
    assert_string_equal(q->url, "https://login.example/token?tenant=x");
    assert_string_equal(q->name, "alpha");
    assert_string_equal(q->content_type, "application/x-www-form-urlencoded");
    assert_string_equal(q->body, "grant_type=client_credentials&client_id=me%26you"
                                 "&client_secret=s3cr%3Dt&scope=read%20write");
    /* the body holds the secret: never to another origin */
    assert_int_equal(q->redirects, R2M_REDIRECTS_SAME_ORIGIN);
}

static void a_token_lasts_until_shortly_before_it_expires(void **state)
{
    struct fixture *f = *state;
    char why[600];
    const char *token = NULL;
    assert_int_equal(r2m_oauth2_poll_start(f->t, 1000), 1); /* none yet */
    struct r2m_http_result res = answer("{\"access_token\":\"abc.def\",\"expires_in\":120}");
    assert_int_equal(r2m_oauth2_done(f->t, &res, f->doc, 1000, &token, why, sizeof why), 0);
    assert_string_equal(token, "abc.def");
    assert_int_equal(r2m_oauth2_expires(f->t), 1000 + 120000);
    assert_int_equal(r2m_oauth2_poll_start(f->t, 2000), 0);
    /* refetched R2M_OAUTH2_EARLY_MS before the end */
    assert_int_equal(r2m_oauth2_poll_start(f->t, 121000 - R2M_OAUTH2_EARLY_MS - 1), 0);
    assert_int_equal(r2m_oauth2_poll_start(f->t, 121000 - R2M_OAUTH2_EARLY_MS), 1);
}

static void expires_in_missing_or_absurd_means_an_hour(void **state)
{
    struct fixture *f = *state;
    char why[600];
    const char *token = NULL;
    const char *bodies[] = {"{\"access_token\":\"t\"}", "{\"access_token\":\"t\",\"expires_in\":0}",
                            "{\"access_token\":\"t\",\"expires_in\":\"60\"}",
                            "{\"access_token\":\"t\",\"expires_in\":99999999999}"};
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        struct r2m_http_result res = answer(bodies[i]);
        assert_int_equal(r2m_oauth2_done(f->t, &res, f->doc, 5000, &token, why, sizeof why), 0);
        assert_int_equal(r2m_oauth2_expires(f->t), 5000 + 3600000);
    }
}

static void unusable_answers_fail_the_poll(void **state)
{
    struct fixture *f = *state;
    char why[600];
    const char *token = NULL;
    struct {
        const char *body;
        int code;
        const char *words;
    } cases[] = {
        {"not json", R2M_E_JSON_SYNTAX, "not JSON"},
        {"{\"token\":\"x\"}", R2M_E_HTTP, "no access_token"},
        {"{\"access_token\":\"\"}", R2M_E_HTTP, "no access_token"},
        {"{\"access_token\":42}", R2M_E_HTTP, "no access_token"},
        {"{\"access_token\":\"a\\r\\nX-Evil: 1\"}", R2M_E_HTTP, "control character"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct r2m_http_result res = answer(cases[i].body);
        why[0] = '\0';
        assert_int_equal(r2m_oauth2_done(f->t, &res, f->doc, 0, &token, why, sizeof why),
                         cases[i].code);
        assert_non_null(strstr(why, cases[i].words));
        assert_null(strstr(why, "X-Evil")); /* the token is never shown */
        assert_int_equal(r2m_oauth2_expires(f->t), 0);
    }
    /* the transfer failed: its error, with the token URL's query masked */
    struct r2m_http_result res = {.result = R2M_E_HTTP_STATUS, .status = 400, .err = "HTTP 400"};
    assert_int_equal(r2m_oauth2_done(f->t, &res, f->doc, 0, &token, why, sizeof why),
                     R2M_E_HTTP_STATUS);
    assert_non_null(strstr(why, "https://login.example/token?tenant=*"));
    assert_non_null(strstr(why, "HTTP 400"));
}

static void a_401_refetches_once_per_poll(void **state)
{
    struct fixture *f = *state;
    char why[600];
    const char *token = NULL;
    struct r2m_http_result res = answer("{\"access_token\":\"t1\",\"expires_in\":3600}");
    assert_int_equal(r2m_oauth2_poll_start(f->t, 0), 1);
    assert_int_equal(r2m_oauth2_done(f->t, &res, f->doc, 0, &token, why, sizeof why), 0);
    assert_int_equal(r2m_oauth2_poll_start(f->t, 10000), 0);
    /* the API refused the token: fetch a new one and retry */
    assert_int_equal(r2m_oauth2_unauthorized(f->t), 1);
    assert_int_equal(r2m_oauth2_expires(f->t), 0);
    res = answer("{\"access_token\":\"t2\",\"expires_in\":3600}");
    assert_int_equal(r2m_oauth2_done(f->t, &res, f->doc, 11000, &token, why, sizeof why), 0);
    assert_string_equal(token, "t2");
    /* refused again within the same poll: no loop of token requests */
    assert_int_equal(r2m_oauth2_unauthorized(f->t), 0);
    assert_int_equal(r2m_oauth2_expires(f->t), 11000 + 3600000);
    /* the next poll may retry again */
    assert_int_equal(r2m_oauth2_poll_start(f->t, 20000), 0);
    assert_int_equal(r2m_oauth2_unauthorized(f->t), 1);
    assert_int_equal(r2m_oauth2_poll_start(f->t, 30000), 1);
    /* a token the transfer could not take is forgotten */
    assert_int_equal(r2m_oauth2_done(f->t, &res, f->doc, 30000, &token, why, sizeof why), 0);
    r2m_oauth2_forget(f->t);
    assert_int_equal(r2m_oauth2_poll_start(f->t, 30001), 1);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(the_request_posts_the_credentials_form),
        T(a_token_lasts_until_shortly_before_it_expires),
        T(expires_in_missing_or_absurd_means_an_hour),
        T(unusable_answers_fail_the_poll),
        T(a_401_refetches_once_per_poll),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
