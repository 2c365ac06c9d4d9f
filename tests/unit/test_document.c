/* test_document.c - the document poller: baseline, change, no-change, failure.
 *
 * Each case feeds bodies to the poller the way the bridge does after a
 * successful fetch, and records what it emits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r2m/error.h"
#include "r2m/poller.h"

struct sink {
    int n;
    int refuse; /* emulate a full outbox */
    char topic[256];
    char payload[8192];
};

static int record(void *ctx, const struct r2m_batch *b, r2m_persist_fn *persist, void *pctx,
                  char *err, size_t errlen)
{
    struct sink *s = ctx;
    assert_non_null(persist); /* every accepted poll hands over its new snapshot */
    assert_non_null(pctx);
    if (s->refuse) {
        snprintf(err, errlen, "outbox full; the change will be retried");
        return R2M_E_TOO_BIG;
    }
    assert_true(b->n <= 1); /* a document poll yields at most one event */
    if (b->n == 0)
        return 0; /* a silent baseline */
    s->n++;
    snprintf(s->topic, sizeof s->topic, "%s", r2m_batch_topic(b, 0));
    snprintf(s->payload, sizeof s->payload, "%s", r2m_batch_payload(b, 0));
    assert_int_equal(b->msgs[0].retained, 0);
    assert_int_equal(b->msgs[0].type, R2M_EVENT_DOCUMENT_CHANGED);
    return 0;
}

struct fixture {
    struct r2m_config cfg;
    struct r2m_endpoint_cfg ep;
    struct r2m_poll_env env;
    struct sink sink;
    void *state;
    char err[256];
};

static char *ignore_list[] = {"/fetchedAt", "/meta/*"};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->ep = (struct r2m_endpoint_cfg){
        .name = "flight",
        .url = "http://127.0.0.1/",
        .method = "GET",
        .max_body = 1 << 20,
        .ignore = ignore_list,
        .n_ignore = 2,
        .topic = "{prefix}/{endpoint}/{op}",
    };
    f->cfg.instance = "edge-1";
    f->cfg.mqtt.topic_prefix = "r2m";
    f->cfg.endpoints = &f->ep;
    f->cfg.n_endpoints = 1;
    if (r2m_poll_env_init(&f->env, &f->cfg))
        return -1;
    f->env.emit = record;
    f->env.emit_ctx = &f->sink;
    f->env.wall_ms = 1795767302113; /* 2026-11-27T... fixed */
    f->env.epoch = 7;
    if (r2m_poller_document.create(&f->state, &f->ep))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    r2m_poller_document.destroy(f->state);
    r2m_poll_env_cleanup(&f->env);
    free(f);
    return 0;
}

static int feed(struct fixture *f, const char *body)
{
    f->err[0] = '\0';
    return r2m_poller_document.on_body(f->state, &f->ep, &f->env, body, strlen(body), f->err,
                                       sizeof f->err);
}

static void first_poll_is_silent_baseline(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(feed(f, "{\"gate\":\"A1\"}"), 0);
    assert_int_equal(f->sink.n, 0);
}

static void change_emits_one_event(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(feed(f, "{\"gate\":\"A1\",\"delay\":0}"), 0);
    assert_int_equal(feed(f, "{\"gate\":\"B7\",\"delay\":0}"), 0);
    assert_int_equal(f->sink.n, 1);
    assert_string_equal(f->sink.topic, "r2m/flight/changed");
    const char *p = f->sink.payload;
    assert_non_null(strstr(p, "\"specversion\":\"1.0\""));
    assert_non_null(strstr(p, "\"source\":\"rest2mqtt://edge-1/flight\""));
    assert_non_null(strstr(p, "\"type\":\"rest2mqtt.document.changed\""));
    assert_null(strstr(p, "\"subject\""));
    assert_non_null(strstr(p, "\"before\":{\"delay\":0,\"gate\":\"A1\"}"));
    assert_non_null(strstr(p, "\"after\":{\"delay\":0,\"gate\":\"B7\"}"));
    assert_non_null(
        strstr(p, "\"patch\":[{\"op\":\"replace\",\"path\":\"/gate\",\"value\":\"B7\"}]"));
    /* and the next identical poll says nothing */
    assert_int_equal(feed(f, "{\"delay\":0,\"gate\":\"B7\"}"), 0);
    assert_int_equal(f->sink.n, 1);
}

static void equivalent_spellings_emit_nothing(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(feed(f, "{\"name\":\"Caf\\u00e9\",\"n\":1,\"l\":[1,2],\"fetchedAt\":1}"), 0);
    const char *same[] = {
        "{\"l\":[1,2],\"n\":1,\"name\":\"Café\"}",                             /* order, escape */
        "  {\n \"n\" : 1.0 , \"l\" : [ 1e0, 2 ], \"name\":\"Caf\\u00e9\" }\n", /* spacing */
        "{\"n\":10e-1,\"l\":[1,2.00],\"name\":\"Café\",\"fetchedAt\":\"later\"}", /* ignored */
        "{\"n\":1,\"l\":[1,2],\"name\":\"Café\",\"meta\":{}}",
    };
    /* "meta" appearing empty is a change (a new member), so do it last and
     * only check the first three for silence */
    for (int i = 0; i < 3; i++)
        assert_int_equal(feed(f, same[i]), 0);
    assert_int_equal(f->sink.n, 0);
    assert_int_equal(feed(f, same[3]), 0);
    assert_int_equal(f->sink.n, 1);
    /* members below /meta are ignored */
    assert_int_equal(feed(f, "{\"n\":1,\"l\":[1,2],\"name\":\"Café\",\"meta\":{\"x\":2}}"), 0);
    assert_int_equal(f->sink.n, 1);
}

static void failed_parse_keeps_snapshot(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(feed(f, "{\"stops\":3}"), 0);
    assert_int_equal(feed(f, "{\"stops\":"), R2M_E_JSON_SYNTAX);
    assert_true(f->err[0] != '\0');
    assert_int_equal(feed(f, "<html><body>Service Unavailable</body></html>"), R2M_E_JSON_SYNTAX);
    assert_int_equal(feed(f, ""), R2M_E_JSON_SYNTAX);
    assert_int_equal(feed(f, "{\"stops\":\"\\ud800\"}"), R2M_E_JSON_SYNTAX);
    assert_string_equal(f->err, "invalid JSON at byte 10: lone UTF-16 surrogate \\ud800");
    assert_int_equal(feed(f, "{\"stops\":\"\xc0\xaf\"}"), R2M_E_JSON_SYNTAX);
    assert_int_equal(f->sink.n, 0);
    /* the same document again after the failures: still nothing */
    assert_int_equal(feed(f, "{\"stops\":3}"), 0);
    assert_int_equal(f->sink.n, 0);
    /* a real change is diffed against the last good document */
    assert_int_equal(feed(f, "{\"stops\":1}"), 0);
    assert_int_equal(f->sink.n, 1);
    assert_non_null(strstr(f->sink.payload, "\"before\":{\"stops\":3}"));
}

static void full_outbox_does_not_advance(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(feed(f, "{\"v\":1}"), 0);
    f->sink.refuse = 1;
    assert_int_equal(feed(f, "{\"v\":2}"), R2M_E_TOO_BIG);
    assert_non_null(strstr(f->err, "retried"));
    f->sink.refuse = 0;
    /* the change was not lost: the next poll still sees it */
    assert_int_equal(feed(f, "{\"v\":2}"), 0);
    assert_int_equal(f->sink.n, 1);
    assert_non_null(strstr(f->sink.payload, "\"before\":{\"v\":1},\"after\":{\"v\":2}"));
}

static void ids_differ_between_changes(void **state)
{
    struct fixture *f = *state;
    char ids[4][17];
    assert_int_equal(feed(f, "{\"s\":\"A\"}"), 0);
    const char *seq[] = {"{\"s\":\"B\"}", "{\"s\":\"A\"}", "{\"s\":\"B\"}", "{\"s\":\"A\"}"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(feed(f, seq[i]), 0);
        const char *id = strstr(f->sink.payload, "\"id\":\"");
        assert_non_null(id);
        memcpy(ids[i], id + 6, 16);
        ids[i][16] = '\0';
    }
    assert_int_equal(f->sink.n, 4);
    /* A->B->A->B: the same transitions twice, never the same id */
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            assert_string_not_equal(ids[i], ids[j]);
}

static void emit_initial_reports_first_document(void **state)
{
    struct fixture *f = *state;
    f->env.emit_initial = 1;
    assert_int_equal(feed(f, "{\"a\":1}"), 0);
    assert_int_equal(f->sink.n, 1);
    assert_non_null(strstr(f->sink.payload, "\"before\":null,\"after\":{\"a\":1}"));
}

static void topic_pointer_from_document(void **state)
{
    struct fixture *f = *state;
    f->ep.topic = "{prefix}/flights/{/number}";
    assert_int_equal(feed(f, "{\"number\":\"LH/123\",\"gate\":1}"), 0);
    assert_int_equal(feed(f, "{\"number\":\"LH/123\",\"gate\":2}"), 0);
    assert_string_equal(f->sink.topic, "r2m/flights/LH%2F123");
    /* a document without the member cannot be routed: the poll fails */
    assert_int_equal(feed(f, "{\"gate\":3}"), R2M_E_TOPIC);
    assert_int_equal(f->sink.n, 1);
}

/* A snapshot stored before invalid text was refused: the next poll is a
 * new baseline, not a failure for good. */
static void stored_snapshot_with_invalid_text_is_a_new_baseline(void **state)
{
    struct fixture *f = *state;
    static char doc[] = "{\"s\":\"\xed\xa0\x80\"}";
    struct r2m_store_endpoint row = {
        .found = 1, .seq = 4, .has_doc = 1, .doc = doc, .doc_len = sizeof doc - 1};
    int partial = 0;
    assert_int_equal(r2m_poller_document.restore(f->state, &f->ep, NULL, &row, &partial), 0);
    assert_int_equal(partial, 1); /* the stored validators must not be used */
    assert_int_equal(feed(f, "{\"s\":\"ok\"}"), 0);
    assert_int_equal(f->sink.n, 0);
    assert_int_equal(feed(f, "{\"s\":\"changed\"}"), 0);
    assert_int_equal(f->sink.n, 1);
}

static void identical_body_skips_parsing_but_not_after_a_failure(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(feed(f, "{\"v\":1}"), 0);
    assert_int_equal(feed(f, "{\"v\":2}"), 0);
    assert_int_equal(f->sink.n, 1);
    /* the same bytes again: nothing to do */
    assert_int_equal(feed(f, "{\"v\":2}"), 0);
    assert_int_equal(f->sink.n, 1);
    /* a refused emit must not be remembered as seen: the retry emits */
    f->sink.refuse = 1;
    assert_int_equal(feed(f, "{\"v\":3}"), R2M_E_TOO_BIG);
    f->sink.refuse = 0;
    assert_int_equal(feed(f, "{\"v\":3}"), 0);
    assert_int_equal(f->sink.n, 2);
    assert_non_null(strstr(f->sink.payload, "\"before\":{\"v\":2},\"after\":{\"v\":3}"));
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(first_poll_is_silent_baseline),
        T(change_emits_one_event),
        T(equivalent_spellings_emit_nothing),
        T(failed_parse_keeps_snapshot),
        T(full_outbox_does_not_advance),
        T(ids_differ_between_changes),
        T(emit_initial_reports_first_document),
        T(topic_pointer_from_document),
        T(identical_body_skips_parsing_but_not_after_a_failure),
        T(stored_snapshot_with_invalid_text_is_a_new_baseline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
