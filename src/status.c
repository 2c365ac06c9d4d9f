/* status.c - the loop's counters rendered as Prometheus text and /healthz JSON. */
#include "r2m/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "r2m/error.h"

/* Appends to a buffer and keeps the first error: a render either fits
 * whole or reports why it does not. */
struct out {
    struct r2m_buf *buf;
    int r;
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o, const char *fmt, ...)
{
    if (o->r)
        return;
    char *p = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&p, fmt, ap);
    va_end(ap);
    o->r = n < 0 ? R2M_E_NOMEM : r2m_buf_append(o->buf, p, (size_t)n);
    free(p);
}

static void histo(struct out *o, const struct r2m_histo *h, const char *name)
{
    static const struct r2m_histo none;
    if (!o->r)
        o->r = r2m_histo_render(h ? h : &none, name, "", o->buf);
}

static void endpoint_counters(struct out *o, const struct r2m_status *s)
{
    put(o, "# HELP rest2mqtt_polls_total Polls by endpoint and result.\n"
           "# TYPE rest2mqtt_polls_total counter\n");
    for (size_t i = 0; i < s->n_eps; i++) {
        const struct r2m_status_endpoint *ep = &s->eps[i];
        const char *n = ep->name;
        put(o, "rest2mqtt_polls_total{endpoint=\"%s\",result=\"ok\"} %llu\n", n,
            (unsigned long long)(ep->polls - ep->errors - ep->not_modified));
        put(o, "rest2mqtt_polls_total{endpoint=\"%s\",result=\"not_modified\"} %llu\n", n,
            (unsigned long long)ep->not_modified);
        put(o, "rest2mqtt_polls_total{endpoint=\"%s\",result=\"error\"} %llu\n", n,
            (unsigned long long)ep->errors);
    }
    put(o, "# HELP rest2mqtt_endpoint_events_total Events committed, by endpoint.\n"
           "# TYPE rest2mqtt_endpoint_events_total counter\n");
    for (size_t i = 0; i < s->n_eps; i++)
        put(o, "rest2mqtt_endpoint_events_total{endpoint=\"%s\"} %llu\n", s->eps[i].name,
            (unsigned long long)s->eps[i].events);
    put(o, "# HELP rest2mqtt_events_total Events committed, by CloudEvents type.\n"
           "# TYPE rest2mqtt_events_total counter\n");
    for (int k = R2M_EVENT_TYPE_NONE + 1; k < R2M_EVENT_TYPES; k++)
        put(o, "rest2mqtt_events_total{type=\"%s\"} %llu\n", r2m_event_type_name(k),
            (unsigned long long)s->events_by_type[k]);
    put(o, "# HELP rest2mqtt_endpoint_consecutive_failures Failed polls in a row.\n"
           "# TYPE rest2mqtt_endpoint_consecutive_failures gauge\n");
    for (size_t i = 0; i < s->n_eps; i++)
        put(o, "rest2mqtt_endpoint_consecutive_failures{endpoint=\"%s\"} %u\n", s->eps[i].name,
            s->eps[i].failures);
    put(o, "# HELP rest2mqtt_endpoint_last_success_timestamp_seconds Unix time of the last "
           "successful poll (0: none yet).\n"
           "# TYPE rest2mqtt_endpoint_last_success_timestamp_seconds gauge\n");
    for (size_t i = 0; i < s->n_eps; i++)
        put(o, "rest2mqtt_endpoint_last_success_timestamp_seconds{endpoint=\"%s\"} %.3f\n",
            s->eps[i].name, (double)s->eps[i].last_ok_wall / 1000.0);
}

int r2m_status_prometheus(const struct r2m_status *s, struct r2m_buf *buf)
{
    struct out o = {buf, 0};
    endpoint_counters(&o, s);
    put(&o,
        "# HELP rest2mqtt_outbox_events Events committed but not yet acknowledged by "
        "the broker.\n# TYPE rest2mqtt_outbox_events gauge\nrest2mqtt_outbox_events %zu\n",
        s->outbox);
    put(&o, "# HELP rest2mqtt_dead_letters_total Events the broker refused for good, "
            "moved to the dead-letter table (`rest2mqtt state dead-letters`).\n"
            "# TYPE rest2mqtt_dead_letters_total counter\n");
    for (size_t i = 0; i < s->n_dead; i++)
        put(&o, "rest2mqtt_dead_letters_total{endpoint=\"%s\",reason=\"%s\"} %llu\n",
            s->dead[i].endpoint, s->dead[i].reason, (unsigned long long)s->dead[i].n);
    put(&o,
        "# HELP rest2mqtt_broker_connected 1 when connected to the MQTT broker.\n"
        "# TYPE rest2mqtt_broker_connected gauge\nrest2mqtt_broker_connected %d\n",
        s->broker_connected);
    put(&o, "# HELP rest2mqtt_http_request_duration_seconds Time of each HTTP "
            "request.\n# TYPE rest2mqtt_http_request_duration_seconds histogram\n");
    histo(&o, s->http_seconds, "rest2mqtt_http_request_duration_seconds");
    put(&o, "# HELP rest2mqtt_publish_latency_seconds Time from committing an event "
            "to the broker's acknowledgement.\n"
            "# TYPE rest2mqtt_publish_latency_seconds histogram\n");
    histo(&o, s->publish_seconds, "rest2mqtt_publish_latency_seconds");
    return o.r;
}

int r2m_status_health(const struct r2m_status *s, struct r2m_buf *buf, int *http_status)
{
    struct out o = {buf, 0};
    size_t failing = 0;
    for (size_t i = 0; i < s->n_eps; i++)
        failing += s->eps[i].failures > 0;
    int up = s->broker_connected;
    *http_status = up ? 200 : 503;
    put(&o,
        "{\"status\":\"%s\",\"broker\":\"%s\",\"endpoints\":%zu,"
        "\"failing_endpoints\":%zu,\"outbox\":%zu%s}\n",
        up ? "ok" : "unhealthy", up ? "connected" : "disconnected", s->n_eps, failing, s->outbox,
        up ? "" : ",\"reason\":\"not connected to the MQTT broker\"");
    return o.r;
}
