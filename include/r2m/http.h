/* r2m/http.h - concurrent HTTP fetches on libcurl's multi socket API.
 *
 * The caller owns an epoll instance; this module registers libcurl's sockets
 * in it (epoll data = R2M_HTTP_EPOLL_TAG | fd) and reports the timeout libcurl
 * wants. The loop calls r2m_http_on_socket() for ready fds and
 * r2m_http_on_timeout() when the timeout expires; finished transfers are
 * reported through the done callback, from inside those calls.
 *
 * One r2m_http_xfer per endpoint lives as long as the endpoint: its easy
 * handle, header list and body buffer are reused by every poll, so an
 * unchanged poll allocates nothing here, and connections are reused across
 * polls of the same host through the multi handle's connection cache.
 * The body is counted in the write callback and the transfer aborted past
 * max_body, because CURLOPT_MAXFILESIZE misses bodies without a
 * Content-Length in libcurl < 8.4 (and decompressed bytes). */
#ifndef R2M_HTTP_H
#define R2M_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "r2m/buf.h"
#include "r2m/config.h"

#define R2M_HTTP_EPOLL_TAG (1ull << 32)

struct r2m_http;
struct r2m_http_xfer;

/* Result of one fetch. result is 0 or R2M_E_HTTP, R2M_E_HTTP_STATUS,
 * R2M_E_BODY_TOO_LARGE, R2M_E_TIMEOUT; err is a one-line cause without
 * secrets ("connection refused", "status 503", "timed out after 2000 ms"). */
struct r2m_http_result {
    int result;
    long status; /* 0 for file:// */
    const char *body;
    size_t len;
    const char *err;
    double total_s;         /* transfer time */
    int not_modified;       /* 304 to a conditional request: success, no body */
    int64_t retry_after_ms; /* from Retry-After on 429/503 (at most max_backoff), else 0 */
    const char *url;        /* the URL that answered (after redirects) */
    void *easy_;            /* private: for r2m_http_header */
};

/* The index-th field line (0 = first) of response header name of the
 * answer (the last one after redirects), or NULL past the last. result is
 * a const struct r2m_http_result * (untyped, so that this function serves
 * as an r2m_page_header_fn); valid only inside the done callback. */
const char *r2m_http_header(const void *result, const char *name, size_t index);

/* Retry-After (RFC 9110 section 10.2.3) in ms: delay-seconds, or an
 * HTTP-date (IMF-fixdate, RFC 850, asctime) minus now_s (Unix seconds);
 * clamped to 0..max_ms (no clamp when max_ms <= 0). Anything else returns
 * 0 and sets *bad, so the caller can warn instead of misreading it. */
int64_t r2m_http_retry_after(const char *value, size_t len, int64_t now_s, int64_t max_ms,
                             int *bad);

typedef void r2m_http_done_fn(void *owner, struct r2m_http_xfer *x,
                              const struct r2m_http_result *res);

int r2m_http_new(struct r2m_http **out, int epfd, r2m_http_done_fn *done);
/* Aborts running transfers (without calling done) and frees the multi handle. */
void r2m_http_free(struct r2m_http *h);

/* Creates the reusable transfer of an endpoint. cfg must outlive it. */
int r2m_http_xfer_new(struct r2m_http *h, struct r2m_http_xfer **out,
                      const struct r2m_endpoint_cfg *cfg, void *owner);
void r2m_http_xfer_free(struct r2m_http_xfer *x);
/* Points the transfer at an identical copy of its configuration (a reload
 * that left the endpoint unchanged); a transfer in progress continues. */
void r2m_http_xfer_retarget(struct r2m_http_xfer *x, const struct r2m_endpoint_cfg *cfg);

/* Starts a fetch; done is called exactly once for it later (never from
 * inside this call). R2M_E_INVALID if the transfer is already running. */
int r2m_http_start(struct r2m_http_xfer *x);
/* The same with another URL for this one request (a further page); the
 * query auth parameter is added when the URL lacks it. */
int r2m_http_start_url(struct r2m_http_xfer *x, const char *url);

/* Conditional GET. The ETag / Last-Modified of the last 2xx answer are held
 * as pending; the bridge commits them only when the whole poll succeeded,
 * so a poll that failed after the transfer can never be skipped by a 304
 * later. Endpoints with paginate: never send validators. */
/* Returns 1 when the validators changed. */
int r2m_http_commit_validators(struct r2m_http_xfer *x);
void r2m_http_set_validators(struct r2m_http_xfer *x, const char *etag, const char *last_modified);
const char *r2m_http_etag(const struct r2m_http_xfer *x);          /* pending */
const char *r2m_http_last_modified(const struct r2m_http_xfer *x); /* pending */

/* OAuth2: the access token sent as "Authorization: Bearer"; NULL clears. */
int r2m_http_set_token(struct r2m_http_xfer *x, const char *token);
int r2m_http_running(const struct r2m_http_xfer *x);

/* Monotonic time (ms, r2m_http_now_ms clock) at which libcurl needs
 * r2m_http_on_timeout(); INT64_MAX when it needs none. */
int64_t r2m_http_deadline(const struct r2m_http *h);
/* CLOCK_MONOTONIC in ms: the clock of deadlines; the loop caches it as `now`. */
int64_t r2m_http_now_ms(void);
void r2m_http_on_socket(struct r2m_http *h, int fd, uint32_t epoll_events);
void r2m_http_on_timeout(struct r2m_http *h);
/* Number of transfers in progress. */
size_t r2m_http_active(const struct r2m_http *h);

#endif
