/* metrics.c - libmicrohttpd on the loop's epoll; Prometheus histograms. */
#include "r2m/metrics.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "r2m/error.h"
#include "r2m/log.h"

struct r2m_metrics {
    struct MHD_Daemon *d;
    int epfd, fd;
    r2m_metrics_handler *handler;
    void *ctx;
    struct r2m_buf body;
};

/* libmicrohttpd's own messages (a client that hung up mid-request, ...) go
 * through our log, so stderr keeps one format. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    r2m_log(R2M_LOG_DEBUG, "metrics server", "detail", msg, NULL);
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)con_cls;
    struct r2m_metrics *m = cls;
    int status = 404;
    const char *ctype = "text/plain; charset=utf-8";
    r2m_buf_reset(&m->body);
    if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
        status = 405;
        r2m_buf_puts(&m->body, "only GET\n");
    } else {
        m->handler(m->ctx, url, &m->body, &status, &ctype);
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        m->body.len, m->body.data ? m->body.data : (char *)"", MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", ctype);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    enum MHD_Result r = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return r;
}

int r2m_metrics_new(const char *listen, int epfd, uint64_t tag, r2m_metrics_handler *handler,
                    void *ctx, struct r2m_metrics **out, char *err, size_t errlen)
{
    int r = R2M_E_SYSTEM;
    struct r2m_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return R2M_E_NOMEM;
    r2m_buf_init(&m->body, 64u << 20);
    m->handler = handler;
    m->ctx = ctx;
    m->epfd = epfd;
    m->fd = -1;
    struct sockaddr_in a = {.sin_family = AF_INET};
    char host[64];
    const char *colon = strrchr(listen, ':');
    snprintf(host, sizeof host, "%.*s", colon ? (int)(colon - listen) : 0, listen);
    a.sin_port = htons((uint16_t)atoi(colon ? colon + 1 : "0"));
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        snprintf(err, errlen, "metrics.listen %s: not an IPv4 address and port", listen);
        goto out;
    }
    /* no thread of its own: the daemon is driven from our loop */
    m->d = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, answer, m,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a,
                            MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_CONNECTION_TIMEOUT, 10u,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
    if (!m->d) {
        snprintf(err, errlen,
                 "cannot listen on %s for metrics (address in use, or not an address of this "
                 "host); change metrics.listen",
                 listen);
        goto out;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_EPOLL_FD);
    m->fd = info ? info->epoll_fd : -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};
    if (m->fd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, m->fd, &ev) < 0) {
        snprintf(err, errlen, "metrics server: cannot watch its epoll fd");
        goto out;
    }
    *out = m;
    m = NULL;
    r = 0;
out:
    r2m_metrics_free(m);
    return r;
}

void r2m_metrics_free(struct r2m_metrics *m)
{
    if (!m)
        return;
    if (m->fd >= 0)
        epoll_ctl(m->epfd, EPOLL_CTL_DEL, m->fd, NULL);
    if (m->d)
        MHD_stop_daemon(m->d);
    r2m_buf_free(&m->body);
    free(m);
}

void r2m_metrics_run(struct r2m_metrics *m)
{
    MHD_run(m->d);
}

int64_t r2m_metrics_timeout_ms(struct r2m_metrics *m)
{
    MHD_UNSIGNED_LONG_LONG t;
    if (MHD_get_timeout(m->d, &t) != MHD_YES)
        return -1;
    return (int64_t)t;
}

/* Upper bounds in seconds: from 1 ms (a local broker's ack) to 30 s (a
 * slow legacy API). */
static const double bounds[R2M_METRICS_HISTO_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                         0.1,   0.25,   0.5,   1,    5,     30};

void r2m_metrics_histo_observe(struct r2m_metrics_histo *h, double seconds)
{
    size_t i = 0;
    while (i < R2M_METRICS_HISTO_BUCKETS && seconds > bounds[i])
        i++;
    h->counts[i]++;
    h->sum += seconds;
    h->count++;
}

int r2m_metrics_histo_render(const struct r2m_metrics_histo *h, const char *name,
                             const char *labels, struct r2m_buf *out)
{
    const char *sep = labels[0] ? "," : "";
    uint64_t cum = 0;
    int r = 0;
    for (size_t i = 0; i <= R2M_METRICS_HISTO_BUCKETS && !r; i++) {
        cum += h->counts[i];
        if (i < R2M_METRICS_HISTO_BUCKETS)
            r = r2m_buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, bounds[i],
                               (unsigned long long)cum);
        else
            r = r2m_buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                               (unsigned long long)cum);
    }
    if (!r)
        r = r2m_buf_printf(out, "%s_sum%s%s%s %.6f\n%s_count%s%s%s %llu\n", name,
                           labels[0] ? "{" : "", labels, labels[0] ? "}" : "", h->sum, name,
                           labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
                           (unsigned long long)h->count);
    return r;
}
