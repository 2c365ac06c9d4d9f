/* test_status.c - the loop's counters rendered as /metrics and /healthz text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "r2m/error.h"
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
    struct r2m_histo http = {0}, pub = {0};
    r2m_histo_observe(&http, 0.2);
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
    /* the histograms as r2m_histo_render writes them, after their headers */
    assert_int_equal(r2m_buf_puts(&want, expected_head), 0);
    assert_int_equal(r2m_histo_render(&http, "rest2mqtt_http_request_duration_seconds", "", &want),
                     0);
    assert_int_equal(r2m_buf_puts(&want,
                                  "# HELP rest2mqtt_publish_latency_seconds Time from committing "
                                  "an event to the broker's acknowledgement.\n"
                                  "# TYPE rest2mqtt_publish_latency_seconds histogram\n"),
                     0);
    assert_int_equal(r2m_histo_render(&pub, "rest2mqtt_publish_latency_seconds", "", &want), 0);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(prometheus_text_is_unchanged),
        cmocka_unit_test(no_endpoints_still_renders_every_family),
        cmocka_unit_test(a_full_buffer_is_an_error_not_a_cut_text),
        cmocka_unit_test(health_follows_the_broker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
