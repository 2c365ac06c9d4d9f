/* r2m/metrics.h - the metrics and health HTTP server, and histograms.
 *
 * A libmicrohttpd daemon without threads of its own: its epoll fd joins the
 * loop's epoll and r2m_metrics_run() serves whatever is ready, on the loop
 * thread, so the handler reads the bridge's counters without locks. The
 * handler renders the response body; this module only speaks HTTP. */
#ifndef R2M_METRICS_H
#define R2M_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "r2m/buf.h"

struct r2m_metrics;

/* Fills out with the body for path ("/metrics", "/healthz", ...); sets
 * *status (200, 404, 503) and *content_type (static text). */
typedef void r2m_metrics_handler(void *ctx, const char *path, struct r2m_buf *out, int *status,
                                 const char **content_type);

/* listen is "IPv4:PORT". The server's fd is added to epfd with epoll data
 * tag. err names the address and the cause when binding fails. */
int r2m_metrics_new(const char *listen, int epfd, uint64_t tag, r2m_metrics_handler *handler,
                    void *ctx, struct r2m_metrics **out, char *err, size_t errlen);
void r2m_metrics_free(struct r2m_metrics *m);
/* Serves ready connections; call when the fd is readable or the deadline passed. */
void r2m_metrics_run(struct r2m_metrics *m);
/* Milliseconds until r2m_metrics_run must be called without an fd event; -1: none. */
int64_t r2m_metrics_timeout_ms(struct r2m_metrics *m);

/* A Prometheus histogram with fixed upper bounds (seconds). */
#define R2M_METRICS_HISTO_BUCKETS 12
struct r2m_metrics_histo {
    uint64_t counts[R2M_METRICS_HISTO_BUCKETS + 1]; /* last: +Inf */
    double sum;
    uint64_t count;
};
void r2m_metrics_histo_observe(struct r2m_metrics_histo *h, double seconds);
/* Appends name_bucket{labels,le=...}, name_sum and name_count lines.
 * labels is "" or 'endpoint="x"'. */
int r2m_metrics_histo_render(const struct r2m_metrics_histo *h, const char *name,
                             const char *labels, struct r2m_buf *out);

#endif
