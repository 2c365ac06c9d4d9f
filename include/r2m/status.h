/* r2m/status.h - one snapshot of the loop's counters, and its renderings.
 *
 * The loop fills a plain struct r2m_status (it owns every string and array
 * the snapshot points at, for the duration of the render call); rendering
 * reads only that struct, never the loop's own lists, so the same snapshot
 * serves the Prometheus text of /metrics, the /healthz answer, the status
 * page (GET /) and its JSON twin (GET /status.json). Pure: no I/O, no clock,
 * no globals; times are shown relative to the snapshot's own now_wall. */
#ifndef R2M_STATUS_H
#define R2M_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "r2m/buf.h"
#include "r2m/event.h"
#include "r2m/metrics.h"

/* One endpoint. Times are wall-clock ms since the Unix epoch (0: never). */
struct r2m_status_endpoint {
    const char *name;
    const char *kind; /* poller kind: "document", "collection" */
    const char *url;  /* credentials masked (r2m_log_url) */
    int64_t interval_ms;
    uint64_t polls, errors, not_modified; /* not_modified: 304 answers */
    uint64_t events;                      /* events committed, every type */
    uint64_t events_by_type[R2M_EVENT_TYPES];
    uint32_t failures;        /* consecutive failed polls */
    int64_t last_poll_wall;   /* end of the last poll */
    int last_result;          /* R2M_E_* of the last poll, 0: success */
    const char *last_error;   /* cause of the last failure; "" if none */
    int64_t error_since_wall; /* first of the current run of failures */
    int64_t last_ok_wall;     /* end of the last successful poll */
    int64_t last_change_wall; /* last poll that committed events */
    int64_t next_poll_in_ms;  /* from the snapshot's time; -1: not scheduled */
};

/* rest2mqtt_dead_letters_total{endpoint,reason} */
struct r2m_status_dead {
    const char *endpoint;
    const char *reason; /* token from r2m/publish.h */
    uint64_t n;
};

struct r2m_status {
    const char *version;
    int64_t now_wall; /* wall-clock ms when the snapshot was taken; 0: unknown */
    int64_t uptime_ms;
    int broker_connected;
    size_t outbox; /* events committed, not yet acknowledged */
    uint64_t events_by_type[R2M_EVENT_TYPES];
    const struct r2m_status_endpoint *eps;
    size_t n_eps;
    const struct r2m_status_dead *dead;
    size_t n_dead;
    const struct r2m_metrics_histo *http_seconds;    /* NULL: none */
    const struct r2m_metrics_histo *publish_seconds; /* NULL: none */
};

/* Appends the Prometheus text exposition (format 0.0.4) of s to out.
 * 0, or R2M_E_TOO_BIG / R2M_E_NOMEM from the buffer. */
int r2m_status_prometheus(const struct r2m_status *s, struct r2m_buf *out);

/* Appends the /healthz JSON of s to out and sets *http_status: 200 while
 * connected to the broker, else 503. 0 or the buffer's error. */
int r2m_status_health(const struct r2m_status *s, struct r2m_buf *out, int *http_status);

/* Appends the status page: one self-contained HTML document (inline CSS,
 * no script, no external asset) that reloads itself every refresh_s
 * seconds (0: never). Failing endpoints come first, each group in the
 * order of s->eps. Every string from s is HTML-escaped and invalid UTF-8
 * is replaced by U+FFFD, so no endpoint error or URL can break the page.
 * 0, or R2M_E_TOO_BIG / R2M_E_NOMEM from the buffer. */
int r2m_status_html(const struct r2m_status *s, unsigned refresh_s, struct r2m_buf *out);

/* Appends the same content as r2m_status_html as one JSON object (RFC
 * 8259, valid UTF-8; times RFC 3339 UTC strings or null), endpoints in the
 * same order. 0, or R2M_E_TOO_BIG / R2M_E_NOMEM from the buffer. */
int r2m_status_json(const struct r2m_status *s, struct r2m_buf *out);

#endif
