/* test_status.c - the loop's counters rendered as /metrics and /healthz text,
 * the HTML status page and /status.json. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r2m/error.h"
#include "r2m/json.h"
#include "r2m/status.h"

/* The text /metrics served before the status module existed, for one
 * endpoint and one dead-letter count (the histograms follow). */
static const char expected_head[] =
    "# HELP rest2mqtt_polls_total Polls by endpoint and result.\n"
    "# TYPE rest2mqtt_polls_total counter\n"
    "rest2mqtt_polls_total{endpoint=\"alpha\",result=\"ok\"} 6\n"
    "rest2mqtt_polls_total{endpoint=\"alpha\",result=\"not_modified\"} 3\n"
    "rest2mqtt_polls_total{endpoint=\"alpha\",result=\"error\"} 1\n"
    "# HELP rest2mqtt_endpoint_events_total Events committed, by endpoint.\n"
    "# TYPE rest2mqtt_endpoint_events_total counter\n"
    "rest2mqtt_endpoint_events_total{endpoint=\"alpha\"} 7\n"
    "# HELP rest2mqtt_events_total Events committed, by CloudEvents type.\n"
    "# TYPE rest2mqtt_events_total counter\n"
    "rest2mqtt_events_total{type=\"rest2mqtt.document.changed\"} 1\n"
    "rest2mqtt_events_total{type=\"rest2mqtt.item.created\"} 4\n"
    "rest2mqtt_events_total{type=\"rest2mqtt.item.updated\"} 2\n"
    "rest2mqtt_events_total{type=\"rest2mqtt.item.deleted\"} 0\n"
    "# HELP rest2mqtt_endpoint_consecutive_failures Failed polls in a row.\n"
    "# TYPE rest2mqtt_endpoint_consecutive_failures gauge\n"
    "rest2mqtt_endpoint_consecutive_failures{endpoint=\"alpha\"} 1\n"
    "# HELP rest2mqtt_endpoint_last_success_timestamp_seconds Unix time of the last "
    "successful poll (0: none yet).\n"
    "# TYPE rest2mqtt_endpoint_last_success_timestamp_seconds gauge\n"
    "rest2mqtt_endpoint_last_success_timestamp_seconds{endpoint=\"alpha\"} 1764000000.125\n"
    "# HELP rest2mqtt_outbox_events Events committed but not yet acknowledged by the broker.\n"
    "# TYPE rest2mqtt_outbox_events gauge\n"
    "rest2mqtt_outbox_events 12\n"
    "# HELP rest2mqtt_dead_letters_total Events the broker refused for good, moved to the "
    "dead-letter table (`rest2mqtt state dead-letters`).\n"
    "# TYPE rest2mqtt_dead_letters_total counter\n"
    "rest2mqtt_dead_letters_total{endpoint=\"alpha\",reason=\"packet_too_large\"} 2\n"
    "# HELP rest2mqtt_broker_connected 1 when connected to the MQTT broker.\n"
    "# TYPE rest2mqtt_broker_connected gauge\n"
    "rest2mqtt_broker_connected 1\n"
    "# HELP rest2mqtt_http_request_duration_seconds Time of each HTTP request.\n"
    "# TYPE rest2mqtt_http_request_duration_seconds histogram\n";

static struct r2m_status_endpoint alpha(void)
{
    struct r2m_status_endpoint e = {
        .name = "alpha",
        .kind = "collection",
        .url = "https://api.example/items",
        .interval_ms = 10000,
        .polls = 10,
        .errors = 1,
        .not_modified = 3,
        .events = 7,
        .failures = 1,
        .last_ok_wall = 1764000000125,
        .last_error = "HTTP 500",
        .next_poll_in_ms = 2500,
    };
    e.events_by_type[R2M_EVENT_ITEM_CREATED] = 4;
    return e;
}

static void prometheus_text_is_unchanged(void **state)
{
    (void)state;
    struct r2m_status_endpoint eps[1] = {alpha()};
    struct r2m_status_dead dead[1] = {{"alpha", "packet_too_large", 2}};
    struct r2m_metrics_histo http = {0}, pub = {0};
    r2m_metrics_histo_observe(&http, 0.2);
    struct r2m_status s = {.version = "1.2.3",
                           .broker_connected = 1,
                           .outbox = 12,
                           .eps = eps,
                           .n_eps = 1,
                           .dead = dead,
                           .n_dead = 1,
                           .http_seconds = &http,
                           .publish_seconds = &pub};
    s.events_by_type[R2M_EVENT_DOCUMENT_CHANGED] = 1;
    s.events_by_type[R2M_EVENT_ITEM_CREATED] = 4;
    s.events_by_type[R2M_EVENT_ITEM_UPDATED] = 2;
    struct r2m_buf out, want;
    r2m_buf_init(&out, 1 << 20);
    r2m_buf_init(&want, 1 << 20);
    assert_int_equal(r2m_status_prometheus(&s, &out), 0);
    /* the histograms as r2m_metrics_histo_render writes them, after their headers */
    assert_int_equal(r2m_buf_puts(&want, expected_head), 0);
    assert_int_equal(
        r2m_metrics_histo_render(&http, "rest2mqtt_http_request_duration_seconds", "", &want), 0);
    assert_int_equal(r2m_buf_puts(&want,
                                  "# HELP rest2mqtt_publish_latency_seconds Time from committing "
                                  "an event to the broker's acknowledgement.\n"
                                  "# TYPE rest2mqtt_publish_latency_seconds histogram\n"),
                     0);
    assert_int_equal(r2m_metrics_histo_render(&pub, "rest2mqtt_publish_latency_seconds", "", &want),
                     0);
    assert_string_equal(out.data, want.data);
    assert_non_null(strstr(out.data, "rest2mqtt_http_request_duration_seconds_count 1\n"));
    r2m_buf_free(&out);
    r2m_buf_free(&want);
}

static void no_endpoints_still_renders_every_family(void **state)
{
    (void)state;
    struct r2m_status s = {0}; /* histograms absent: rendered empty */
    struct r2m_buf out;
    r2m_buf_init(&out, 1 << 20);
    assert_int_equal(r2m_status_prometheus(&s, &out), 0);
    assert_non_null(strstr(out.data, "rest2mqtt_outbox_events 0\n"));
    assert_non_null(strstr(out.data, "rest2mqtt_broker_connected 0\n"));
    assert_non_null(
        strstr(out.data, "rest2mqtt_events_total{type=\"rest2mqtt.item.deleted\"} 0\n"));
    assert_non_null(strstr(out.data, "rest2mqtt_publish_latency_seconds_count 0\n"));
    assert_null(strstr(out.data, "endpoint=\""));
    r2m_buf_free(&out);
}

static void a_full_buffer_is_an_error_not_a_cut_text(void **state)
{
    (void)state;
    struct r2m_status_endpoint eps[1] = {alpha()};
    struct r2m_status s = {.eps = eps, .n_eps = 1};
    struct r2m_buf out;
    r2m_buf_init(&out, 200);
    assert_int_equal(r2m_status_prometheus(&s, &out), R2M_E_TOO_BIG);
    r2m_buf_free(&out);
}

static void health_follows_the_broker(void **state)
{
    (void)state;
    struct r2m_status_endpoint eps[2] = {alpha(), alpha()};
    eps[1].name = "beta";
    eps[1].failures = 0;
    struct r2m_status s = {.broker_connected = 1, .outbox = 5, .eps = eps, .n_eps = 2};
    struct r2m_buf out;
    r2m_buf_init(&out, 4096);
    int status = 0;
    assert_int_equal(r2m_status_health(&s, &out, &status), 0);
    assert_int_equal(status, 200);
    assert_string_equal(out.data, "{\"status\":\"ok\",\"broker\":\"connected\",\"endpoints\":2,"
                                  "\"failing_endpoints\":1,\"outbox\":5}\n");
    r2m_buf_reset(&out);
    s.broker_connected = 0;
    assert_int_equal(r2m_status_health(&s, &out, &status), 0);
    assert_int_equal(status, 503);
    assert_string_equal(out.data,
                        "{\"status\":\"unhealthy\",\"broker\":\"disconnected\",\"endpoints\":2,"
                        "\"failing_endpoints\":1,\"outbox\":5,\"reason\":\"not connected to the "
                        "MQTT broker\"}\n");
    r2m_buf_free(&out);
}

/* ---- the status page and /status.json ---- */

#define NASTY      "<b>\"x\"&'</b>"
#define NASTY_HTML "&lt;b&gt;&quot;x&quot;&amp;&#39;&lt;/b&gt;"

/* Four endpoints in config order: ok, failing, never polled, failing. */
static void four_endpoints(struct r2m_status_endpoint eps[4], struct r2m_status *s)
{
    for (int i = 0; i < 4; i++)
        eps[i] = alpha();
    eps[0].name = "a-ok";
    eps[0].failures = 0;
    eps[0].last_error = "";
    eps[0].last_poll_wall = 1764000000125;
    eps[1].name = "b-fails";
    eps[1].url = "https://api.example/x?q=1&r=<2>";
    eps[1].last_error = "duplicate key " NASTY " in items 1 and 2";
    eps[1].last_result = R2M_E_INVALID;
    eps[1].failures = 3;
    eps[1].last_poll_wall = 1764000000125;
    eps[1].error_since_wall = 1763999990000;
    eps[2].name = "c-new";
    eps[2].failures = 0;
    eps[2].last_error = "";
    eps[2].next_poll_in_ms = -1;
    eps[3].name = "d-\"fails\"";
    eps[3].last_error = "HTTP status 500";
    eps[3].last_result = R2M_E_HTTP_STATUS;
    eps[3].failures = 1;
    eps[3].last_poll_wall = 1764000000125;
    *s = (struct r2m_status){.version = "1.2.3",
                             .now_wall = 1764000003125,
                             .uptime_ms = 3723000,
                             .broker_connected = 1,
                             .outbox = 12,
                             .eps = eps,
                             .n_eps = 4};
}

/* Four endpoints and an output buffer, for each test of the page and JSON. */
struct fixture {
    struct r2m_status_endpoint eps[4];
    struct r2m_status s;
    struct r2m_buf out;
};

static int fixture_setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    four_endpoints(f->eps, &f->s);
    r2m_buf_init(&f->out, 1 << 20);
    *state = f;
    return 0;
}

static int fixture_teardown(void **state)
{
    struct fixture *f = *state;
    r2m_buf_free(&f->out);
    free(f);
    return 0;
}

/* Offset of needle in hay; fails the test when absent. */
static size_t offset_of(const char *hay, const char *needle)
{
    const char *p = strstr(hay, needle);
    if (!p)
        fail_msg("\"%s\" not found in the output", needle);
    return (size_t)(p - hay);
}

static void html_escapes_every_string(void **state)
{
    struct fixture *f = *state;
    struct r2m_status s = f->s;
    struct r2m_buf *out = &f->out;
    assert_int_equal(r2m_status_html(&s, 5, out), 0);
    offset_of(out->data, "<td class=\"error\">duplicate key " NASTY_HTML " in items 1 and 2</td>");
    offset_of(out->data, "https://api.example/x?q=1&amp;r=&lt;2&gt;");
    offset_of(out->data, "data-endpoint=\"d-&quot;fails&quot;\"");
    /* the raw text appears nowhere: it could not open an element or
     * close an attribute */
    assert_null(strstr(out->data, "<b>"));
    assert_null(strstr(out->data, "\"x\""));
    assert_null(strstr(out->data, "d-\"fails"));
}

static void html_is_self_contained_and_refreshes(void **state)
{
    struct fixture *f = *state;
    struct r2m_status s = f->s;
    struct r2m_buf *out = &f->out;
    assert_int_equal(r2m_status_html(&s, 7, out), 0);
    assert_int_equal(offset_of(out->data, "<!DOCTYPE html>"), 0);
    offset_of(out->data, "<meta http-equiv=\"refresh\" content=\"7\">");
    offset_of(out->data, "<dd id=\"broker\" class=\"up\">connected</dd>");
    offset_of(out->data, "<dd id=\"outbox\">12</dd>");
    offset_of(out->data, "<dd id=\"uptime\">1h 2m</dd>");
    offset_of(out->data, "<dd id=\"version\">1.2.3</dd>");
    offset_of(out->data, "<dd id=\"endpoints\">4 (2 failing)</dd>");
    /* last poll: absolute and relative to the snapshot's time */
    offset_of(out->data, "<td class=\"last-poll\"><time datetime=\"2025-11-24T16:00:00.125Z\">"
                         "2025-11-24 16:00:00</time><br><small>3s ago</small></td>");
    offset_of(out->data, "<td class=\"error-since\"><time datetime=\"2025-11-24T15:59:50.000Z\">");
    offset_of(out->data, "<td class=\"interval\">10s</td>");
    offset_of(out->data, "<td class=\"next-poll\">in 2.5s</td>");
    offset_of(out->data, "<td class=\"next-poll none\">not scheduled</td>");
    offset_of(out->data, "<td class=\"result none\">not polled yet</td>");
    /* nothing loaded from elsewhere, nothing run */
    assert_null(strstr(out->data, "<script"));
    assert_null(strstr(out->data, "<link"));
    assert_null(strstr(out->data, "src="));
    assert_null(strstr(out->data, "url("));
    assert_int_equal(offset_of(out->data, "</html>\n") + 8, out->len);
    r2m_buf_reset(out);
    assert_int_equal(r2m_status_html(&s, 0, out), 0);
    assert_null(strstr(out->data, "http-equiv"));
}

static void html_lists_failing_endpoints_first(void **state)
{
    struct fixture *f = *state;
    struct r2m_status s = f->s;
    struct r2m_buf *out = &f->out;
    assert_int_equal(r2m_status_html(&s, 5, out), 0);
    size_t b = offset_of(out->data, "<tr class=\"failing\" data-endpoint=\"b-fails\">");
    size_t d = offset_of(out->data, "<tr class=\"failing\" data-endpoint=\"d-&quot;fails&quot;\">");
    size_t a = offset_of(out->data, "<tr class=\"ok\" data-endpoint=\"a-ok\">");
    size_t c = offset_of(out->data, "<tr class=\"new\" data-endpoint=\"c-new\">");
    assert_true(b < d);
    assert_true(d < a);
    assert_true(a < c);
}

/* The string at ptr in root, or fails the test. */
static const char *str_at(struct r2m_json *root, const char *ptr)
{
    struct r2m_json *v = r2m_json_pointer(root, ptr);
    if (!v || v->type != R2M_JSON_STRING)
        fail_msg("%s: expected a string", ptr);
    return v->u.str;
}

static void json_parses_and_matches_the_page(void **state)
{
    struct fixture *f = *state;
    struct r2m_status s = f->s;
    struct r2m_buf *out = &f->out;
    struct r2m_status_dead dead[1] = {{"b-fails", "packet_too_large", 2}};
    s.dead = dead;
    s.n_dead = 1;
    s.events_by_type[R2M_EVENT_ITEM_CREATED] = 4;
    assert_int_equal(r2m_status_json(&s, out), 0);
    struct r2m_json_doc *doc = NULL;
    struct r2m_json *root = NULL;
    char err[200];
    assert_int_equal(r2m_json_doc_new(&doc, NULL), 0);
    if (r2m_json_parse(doc, out->data, out->len, &root, err, sizeof err))
        fail_msg("/status.json does not parse: %s\n%s", err, out->data);
    assert_string_equal(str_at(root, "/version"), "1.2.3");
    assert_string_equal(str_at(root, "/now"), "2025-11-24T16:00:03.125Z");
    assert_int_equal(r2m_json_pointer(root, "/broker/connected")->type, R2M_JSON_TRUE);
    assert_string_equal(r2m_json_pointer(root, "/outbox")->u.str, "12");
    assert_string_equal(r2m_json_pointer(root, "/dead_letters")->u.str, "2");
    assert_string_equal(str_at(root, "/dead_letters_by/0/reason"), "packet_too_large");
    assert_string_equal(r2m_json_pointer(root, "/events_by_type/rest2mqtt.item.created")->u.str,
                        "4");
    assert_string_equal(r2m_json_pointer(root, "/endpoints_failing")->u.str, "2");
    /* the page's order: failing first */
    assert_int_equal(r2m_json_pointer(root, "/endpoints")->n, 4);
    assert_string_equal(str_at(root, "/endpoints/0/name"), "b-fails");
    assert_string_equal(str_at(root, "/endpoints/1/name"), "d-\"fails\"");
    assert_string_equal(str_at(root, "/endpoints/2/name"), "a-ok");
    assert_string_equal(str_at(root, "/endpoints/3/name"), "c-new");
    /* exact text back, whatever it holds */
    assert_string_equal(str_at(root, "/endpoints/0/last_error"),
                        "duplicate key " NASTY " in items 1 and 2");
    assert_string_equal(str_at(root, "/endpoints/0/url"), "https://api.example/x?q=1&r=<2>");
    assert_string_equal(str_at(root, "/endpoints/0/state"), "failing");
    assert_string_equal(str_at(root, "/endpoints/0/error_since"), "2025-11-24T15:59:50.000Z");
    assert_string_equal(r2m_json_pointer(root, "/endpoints/0/consecutive_failures")->u.str, "3");
    assert_string_equal(str_at(root, "/endpoints/2/state"), "ok");
    assert_string_equal(str_at(root, "/endpoints/2/last_poll"), "2025-11-24T16:00:00.125Z");
    assert_string_equal(str_at(root, "/endpoints/2/last_result"), "ok");
    assert_int_equal(r2m_json_pointer(root, "/endpoints/2/last_error")->type, R2M_JSON_NULL);
    assert_int_equal(r2m_json_pointer(root, "/endpoints/2/error_since")->type, R2M_JSON_NULL);
    assert_string_equal(r2m_json_pointer(root, "/endpoints/2/next_poll_in_ms")->u.str, "2500");
    assert_string_equal(str_at(root, "/endpoints/3/state"), "new");
    assert_int_equal(r2m_json_pointer(root, "/endpoints/3/last_poll")->type, R2M_JSON_NULL);
    assert_int_equal(r2m_json_pointer(root, "/endpoints/3/next_poll_in_ms")->type, R2M_JSON_NULL);
    r2m_json_doc_free(doc);
}

static void invalid_utf8_in_an_error_is_replaced(void **state)
{
    struct fixture *f = *state;
    struct r2m_status s = f->s;
    struct r2m_buf *out = &f->out;
    /* an item key cut by %.100s in the middle of "é" */
    f->eps[1].last_error = "item \"caf\xC3\" unreadable";
    assert_int_equal(r2m_status_json(&s, out), 0);
    struct r2m_json_doc *doc = NULL;
    struct r2m_json *root = NULL;
    assert_int_equal(r2m_json_doc_new(&doc, NULL), 0);
    assert_int_equal(r2m_json_parse(doc, out->data, out->len, &root, NULL, 0), 0);
    assert_string_equal(str_at(root, "/endpoints/0/last_error"),
                        "item \"caf\xEF\xBF\xBD\" unreadable");
    r2m_buf_reset(out);
    assert_int_equal(r2m_status_html(&s, 5, out), 0);
    offset_of(out->data, "item &quot;caf\xEF\xBF\xBD&quot; unreadable");
    /* nothing but invalid bytes, longer than any error: still a page */
    char junk[5000];
    memset(junk, 0xFF, sizeof junk - 1);
    junk[sizeof junk - 1] = '\0';
    f->eps[1].last_error = junk;
    r2m_buf_reset(out);
    assert_int_equal(r2m_status_json(&s, out), 0);
    assert_int_equal(r2m_json_parse(doc, out->data, out->len, &root, NULL, 0), 0);
    assert_int_equal(r2m_json_pointer(root, "/endpoints/0/last_error")->n, 3 * 4096);
    r2m_json_doc_free(doc);
}

static void page_and_json_fit_whole_or_fail(void **state)
{
    struct fixture *f = *state;
    struct r2m_status s = f->s;
    struct r2m_buf *out = &f->out;
    out->max = 600;
    assert_int_equal(r2m_status_html(&s, 5, out), R2M_E_TOO_BIG);
    r2m_buf_reset(out);
    assert_int_equal(r2m_status_json(&s, out), R2M_E_TOO_BIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(prometheus_text_is_unchanged),
        cmocka_unit_test(no_endpoints_still_renders_every_family),
        cmocka_unit_test(a_full_buffer_is_an_error_not_a_cut_text),
        cmocka_unit_test(health_follows_the_broker),
        cmocka_unit_test_setup_teardown(html_escapes_every_string, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(html_is_self_contained_and_refreshes, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(html_lists_failing_endpoints_first, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(json_parses_and_matches_the_page, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(invalid_utf8_in_an_error_is_replaced, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(page_and_json_fit_whole_or_fail, fixture_setup,
                                        fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
