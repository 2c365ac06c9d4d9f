/* status.c - the loop's counters rendered as Prometheus text, /healthz JSON,
 * the HTML status page and its JSON twin. */
#include "r2m/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "r2m/error.h"
#include "r2m/json.h"
#include "r2m/utf8.h"

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

static void histo(struct out *o, const struct r2m_metrics_histo *h, const char *name)
{
    static const struct r2m_metrics_histo none;
    if (!o->r)
        o->r = r2m_metrics_histo_render(h ? h : &none, name, "", o->buf);
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

/* ---- the status page and /status.json ---- */

/* Longest string from the snapshot shown whole (URLs, errors); longer
 * ones are cut (a character cut in two becomes U+FFFD). */
#define TEXT_MAX 4096
/* Ceiling of the cleaned copy: each invalid byte becomes 3 (U+FFFD). */
#define CLEAN_MAX (3 * TEXT_MAX)

/* Copies s into t (reset first) with every invalid UTF-8 sequence replaced
 * by U+FFFD: an error message cut inside a character (a %.100s of an
 * item key) must not make the JSON invalid or the page undecodable. */
static int utf8_clean(const char *s, struct r2m_buf *t)
{
    r2m_buf_reset(t);
    size_t n = s ? strnlen(s, TEXT_MAX) : 0, bad;
    while (n) {
        if (!r2m_utf8_check(s, n, &bad))
            return r2m_buf_append(t, s, n);
        int r = r2m_buf_append(t, s, bad);
        if (!r)
            r = r2m_buf_puts(t, "\xEF\xBF\xBD");
        if (r)
            return r;
        s += bad + 1, n -= bad + 1;
    }
    return 0;
}

/* A snapshot string as HTML text or attribute value: the five characters
 * that could open markup or end an attribute become references. */
static void html_text(struct out *o, struct r2m_buf *t, const char *s)
{
    static const char special[] = "&<>\"'";
    static const char *const ref[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&#39;"};
    if (o->r || (o->r = utf8_clean(s, t)) || !t->data)
        return;
    for (const char *p = t->data; *p && !o->r;) {
        size_t run = strcspn(p, special);
        if (run)
            o->r = r2m_buf_append(o->buf, p, run);
        p += run;
        if (*p && !o->r)
            o->r = r2m_buf_puts(o->buf, ref[strchr(special, *p++) - special]);
    }
}

/* A snapshot string as a JSON string literal; NULL as null. */
static void json_text(struct out *o, struct r2m_buf *t, const char *s)
{
    if (o->r)
        return;
    if (!s)
        o->r = r2m_buf_puts(o->buf, "null");
    else if (!(o->r = utf8_clean(s, t)))
        o->r = r2m_json_quote(o->buf, t->data ? t->data : "", t->len);
}

/* "2026-12-02T11:20:03.125Z" for a wall-clock ms; "" for 0 (never). */
static const char *rfc3339(int64_t ms, char out[32])
{
    out[0] = '\0';
    if (ms <= 0)
        return out;
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&sec, &tm))
        return out;
    size_t k = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + k, 32 - k, ".%03dZ", (int)(ms % 1000));
    return out;
}

/* "250ms", "10s", "1m 30s", "2h 5m", "3d 4h": the two largest units. */
#define DURATION_LEN 48 /* two int64 numbers, units, a space */
static const char *duration(int64_t ms, char out[DURATION_LEN])
{
    static const struct {
        const char *unit;
        int64_t ms;
    } u[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
    if (ms < 0)
        ms = 0;
    if (ms < 1000 || (ms < 60000 && ms % 1000)) {
        if (ms < 1000)
            snprintf(out, DURATION_LEN, "%lldms", (long long)ms);
        else
            snprintf(out, DURATION_LEN, "%lld.%llds", (long long)(ms / 1000),
                     (long long)(ms % 1000 / 100));
        return out;
    }
    size_t i = 0;
    while (ms < u[i].ms)
        i++;
    int64_t a = ms / u[i].ms, rest = ms % u[i].ms;
    if (i + 1 < sizeof u / sizeof u[0] && rest / u[i + 1].ms)
        snprintf(out, DURATION_LEN, "%lld%s %lld%s", (long long)a, u[i].unit,
                 (long long)(rest / u[i + 1].ms), u[i + 1].unit);
    else
        snprintf(out, DURATION_LEN, "%lld%s", (long long)a, u[i].unit);
    return out;
}

static int failing(const struct r2m_status_endpoint *e)
{
    return e->failures > 0;
}

typedef void endpoint_fn(struct out *o, struct r2m_buf *t, const struct r2m_status *s,
                         const struct r2m_status_endpoint *e, size_t nth);

/* Renders every endpoint with fn, failing ones first, each group in
 * snapshot order; nth counts the calls from 0. */
static void each_failing_first(struct out *o, struct r2m_buf *t, const struct r2m_status *s,
                               endpoint_fn *fn)
{
    size_t nth = 0;
    for (int pass = 1; pass >= 0; pass--)
        for (size_t i = 0; i < s->n_eps && !o->r; i++)
            if (failing(&s->eps[i]) == pass)
                fn(o, t, s, &s->eps[i], nth++);
}

static uint64_t dead_total(const struct r2m_status *s)
{
    uint64_t n = 0;
    for (size_t i = 0; i < s->n_dead; i++)
        n += s->dead[i].n;
    return n;
}

static size_t failing_count(const struct r2m_status *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_eps; i++)
        n += failing(&s->eps[i]) != 0;
    return n;
}

/* A <td> holding a point in time: absolute (UTC) and how long ago. */
static void html_time(struct out *o, const struct r2m_status *s, const char *cls, int64_t ms)
{
    char ts[32], d[DURATION_LEN];
    if (ms <= 0) {
        put(o, "<td class=\"%s none\">never</td>", cls);
        return;
    }
    rfc3339(ms, ts);
    put(o, "<td class=\"%s\"><time datetime=\"%s\">%.10s %.8s</time>", cls, ts, ts, ts + 11);
    if (s->now_wall > 0)
        put(o, "<br><small>%s ago</small>", duration(s->now_wall - ms, d));
    put(o, "</td>");
}

static const char html_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";

static const char html_style[] =
    "<style>\n"
    "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}\n"
    "h1{font-size:1.3em;margin:0 0 .5em}\n"
    "dl.summary{display:flex;flex-wrap:wrap;gap:.3em 2em;margin:0 0 1em}\n"
    "dl.summary div{display:flex;gap:.4em}dt{color:#666}dd{margin:0;font-weight:600}\n"
    "table{border-collapse:collapse;width:100%}\n"
    "th,td{text-align:left;vertical-align:top;padding:.35em .6em;border-bottom:1px solid #ddd}\n"
    "th{background:#f3f3f3;font-weight:600}\n"
    "td.url,td.error{word-break:break-all;max-width:22em}\n"
    "td.num{text-align:right}small{color:#666}.none{color:#999}\n"
    "tr.failing{background:#fdecea}tr.failing td.result{color:#b00020;font-weight:600}\n"
    "tr.ok td.result{color:#1b7f3b;font-weight:600}\n"
    ".up{color:#1b7f3b}.down{color:#b00020}\n"
    "</style>\n</head>\n<body>\n";

static void html_summary(struct out *o, struct r2m_buf *t, const struct r2m_status *s)
{
    char d[DURATION_LEN], ts[32];
    put(o, "<h1>rest2mqtt ");
    html_text(o, t, s->version ? s->version : "");
    put(o, "</h1>\n<dl class=\"summary\">\n");
    put(o, "<div><dt>broker</dt><dd id=\"broker\" class=\"%s\">%s</dd></div>\n",
        s->broker_connected ? "up" : "down", s->broker_connected ? "connected" : "disconnected");
    put(o, "<div><dt>outbox</dt><dd id=\"outbox\">%zu</dd></div>\n", s->outbox);
    put(o, "<div><dt>dead letters</dt><dd id=\"dead-letters\">%llu</dd></div>\n",
        (unsigned long long)dead_total(s));
    put(o, "<div><dt>endpoints</dt><dd id=\"endpoints\">%zu (%zu failing)</dd></div>\n", s->n_eps,
        failing_count(s));
    put(o, "<div><dt>uptime</dt><dd id=\"uptime\">%s</dd></div>\n", duration(s->uptime_ms, d));
    put(o, "<div><dt>version</dt><dd id=\"version\">");
    html_text(o, t, s->version ? s->version : "");
    put(o, "</dd></div>\n");
    if (s->now_wall > 0)
        put(o,
            "<div><dt>as of</dt><dd><time id=\"now\" datetime=\"%s\">%.10s %.8s UTC</time>"
            "</dd></div>\n",
            rfc3339(s->now_wall, ts), ts, ts + 11);
    put(o, "</dl>\n");
}

static void html_endpoint(struct out *o, struct r2m_buf *t, const struct r2m_status *s,
                          const struct r2m_status_endpoint *e, size_t nth)
{
    (void)nth;
    char d[DURATION_LEN];
    int bad = failing(e);
    put(o, "<tr class=\"%s\" data-endpoint=\"", bad ? "failing" : e->last_poll_wall ? "ok" : "new");
    html_text(o, t, e->name);
    put(o, "\"><td class=\"name\">");
    html_text(o, t, e->name);
    put(o, "</td><td class=\"kind\">");
    html_text(o, t, e->kind);
    put(o, "</td><td class=\"url\">");
    html_text(o, t, e->url);
    put(o, "</td><td class=\"interval\">%s</td>", duration(e->interval_ms, d));
    html_time(o, s, "last-poll", e->last_poll_wall);
    if (!e->last_poll_wall)
        put(o, "<td class=\"result none\">not polled yet</td>");
    else
        put(o, "<td class=\"result\">%s</td>",
            e->last_result ? r2m_strerror(e->last_result) : "ok");
    if (bad && e->last_error && e->last_error[0]) {
        put(o, "<td class=\"error\">");
        html_text(o, t, e->last_error);
        put(o, "</td>");
        html_time(o, s, "error-since", e->error_since_wall);
    } else {
        put(o, "<td class=\"error none\"></td><td class=\"error-since none\"></td>");
    }
    put(o, "<td class=\"failures num\">%u</td>", e->failures);
    html_time(o, s, "last-change", e->last_change_wall);
    put(o, "<td class=\"events num\">%llu</td>", (unsigned long long)e->events);
    if (e->next_poll_in_ms < 0)
        put(o, "<td class=\"next-poll none\">not scheduled</td>");
    else if (e->next_poll_in_ms == 0)
        put(o, "<td class=\"next-poll\">due now</td>");
    else
        put(o, "<td class=\"next-poll\">in %s</td>", duration(e->next_poll_in_ms, d));
    put(o, "</tr>\n");
}

int r2m_status_html(const struct r2m_status *s, unsigned refresh_s, struct r2m_buf *buf)
{
    struct out o = {buf, 0};
    struct r2m_buf t;
    r2m_buf_init(&t, CLEAN_MAX);
    put(&o, "%s", html_head);
    if (refresh_s)
        put(&o, "<meta http-equiv=\"refresh\" content=\"%u\">\n", refresh_s);
    put(&o, "<title>rest2mqtt status</title>\n%s", html_style);
    html_summary(&o, &t, s);
    put(&o, "<table id=\"endpoints-table\">\n<thead><tr><th>endpoint</th><th>kind</th>"
            "<th>URL</th><th>interval</th><th>last poll</th><th>result</th>"
            "<th>last error</th><th>failing since</th><th>failures in a row</th>"
            "<th>last change</th><th>events sent</th><th>next poll</th></tr></thead>\n<tbody>\n");
    each_failing_first(&o, &t, s, html_endpoint);
    if (!s->n_eps)
        put(&o, "<tr><td colspan=\"12\" class=\"none\">no endpoints configured</td></tr>\n");
    put(&o, "</tbody>\n</table>\n");
    if (s->n_dead) {
        put(&o, "<h2>Dead letters</h2>\n<table id=\"dead-letters-table\">\n<thead><tr>"
                "<th>endpoint</th><th>reason</th><th>events</th></tr></thead>\n<tbody>\n");
        for (size_t i = 0; i < s->n_dead; i++) {
            put(&o, "<tr><td>");
            html_text(&o, &t, s->dead[i].endpoint);
            put(&o, "</td><td>");
            html_text(&o, &t, s->dead[i].reason);
            put(&o, "</td><td class=\"num\">%llu</td></tr>\n", (unsigned long long)s->dead[i].n);
        }
        put(&o, "</tbody>\n</table>\n");
    }
    put(&o, "<p><small>Also: <a href=\"/status.json\">/status.json</a>, "
            "<a href=\"/metrics\">/metrics</a>, <a href=\"/healthz\">/healthz</a></small></p>\n"
            "</body>\n</html>\n");
    r2m_buf_free(&t);
    return o.r;
}

/* "name":"2026-...Z" or "name":null */
static void json_time(struct out *o, const char *name, int64_t ms)
{
    char ts[32];
    if (ms > 0)
        put(o, ",\"%s\":\"%s\"", name, rfc3339(ms, ts));
    else
        put(o, ",\"%s\":null", name);
}

static void json_endpoint(struct out *o, struct r2m_buf *t, const struct r2m_status *s,
                          const struct r2m_status_endpoint *e, size_t nth)
{
    (void)s;
    int bad = failing(e);
    put(o, "%s{\"name\":", nth ? "," : "");
    json_text(o, t, e->name);
    put(o, ",\"kind\":");
    json_text(o, t, e->kind);
    put(o, ",\"url\":");
    json_text(o, t, e->url);
    put(o, ",\"interval_ms\":%lld,\"state\":\"%s\"", (long long)e->interval_ms,
        bad                 ? "failing"
        : e->last_poll_wall ? "ok"
                            : "new");
    json_time(o, "last_poll", e->last_poll_wall);
    if (!e->last_poll_wall)
        put(o, ",\"last_result\":null");
    else
        put(o, ",\"last_result\":\"%s\"", e->last_result ? r2m_strerror(e->last_result) : "ok");
    put(o, ",\"last_error\":");
    json_text(o, t, bad && e->last_error && e->last_error[0] ? e->last_error : NULL);
    json_time(o, "error_since", bad ? e->error_since_wall : 0);
    put(o, ",\"consecutive_failures\":%u", e->failures);
    json_time(o, "last_ok", e->last_ok_wall);
    json_time(o, "last_change", e->last_change_wall);
    put(o, ",\"events\":%llu,\"polls\":%llu,\"errors\":%llu,\"not_modified\":%llu",
        (unsigned long long)e->events, (unsigned long long)e->polls, (unsigned long long)e->errors,
        (unsigned long long)e->not_modified);
    if (e->next_poll_in_ms < 0)
        put(o, ",\"next_poll_in_ms\":null}");
    else
        put(o, ",\"next_poll_in_ms\":%lld}", (long long)e->next_poll_in_ms);
}

int r2m_status_json(const struct r2m_status *s, struct r2m_buf *buf)
{
    struct out o = {buf, 0};
    struct r2m_buf t;
    r2m_buf_init(&t, CLEAN_MAX);
    put(&o, "{\"version\":");
    json_text(&o, &t, s->version ? s->version : "");
    json_time(&o, "now", s->now_wall);
    put(&o, ",\"uptime_ms\":%lld,\"broker\":{\"connected\":%s},\"outbox\":%zu",
        (long long)s->uptime_ms, s->broker_connected ? "true" : "false", s->outbox);
    put(&o, ",\"dead_letters\":%llu,\"dead_letters_by\":[", (unsigned long long)dead_total(s));
    for (size_t i = 0; i < s->n_dead; i++) {
        put(&o, "%s{\"endpoint\":", i ? "," : "");
        json_text(&o, &t, s->dead[i].endpoint);
        put(&o, ",\"reason\":");
        json_text(&o, &t, s->dead[i].reason);
        put(&o, ",\"events\":%llu}", (unsigned long long)s->dead[i].n);
    }
    put(&o, "],\"events_by_type\":{");
    for (int k = R2M_EVENT_TYPE_NONE + 1; k < R2M_EVENT_TYPES; k++)
        put(&o, "%s\"%s\":%llu", k > R2M_EVENT_TYPE_NONE + 1 ? "," : "", r2m_event_type_name(k),
            (unsigned long long)s->events_by_type[k]);
    put(&o, "},\"endpoints_failing\":%zu,\"endpoints\":[", failing_count(s));
    each_failing_first(&o, &t, s, json_endpoint);
    put(&o, "]}\n");
    r2m_buf_free(&t);
    return o.r;
}
