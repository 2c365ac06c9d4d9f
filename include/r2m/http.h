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
 * Content-Length in libcurl < 8.4 (and decompressed bytes).
 *
 * Redirects are followed here, not by libcurl (which keeps every configured
 * header but Authorization and Cookie on a redirect to another host), per
 * the endpoint's `redirects:` (at most 5 hops, all within its timeout; 301,
 * 302 and 303 turn a POST into a GET, 307 and 308 keep method and body).
 * Credentials (every auth type, the OAuth2 token, a query auth parameter)
 * and configured headers go only to requests on the configured origin
 * (r2m_http_origin of cfg->url); once a redirect left it, the rest of that
 * request carries none. */
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
    void *slot_;            /* private: for r2m_http_header (Link) */
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

/* The origin (RFC 6454) of an absolute http:// or https:// URL, written
 * "scheme://host:port": scheme and host in lower case, an IDN host in
 * punycode, the default port spelled out; user part, path, query and
 * fragment dropped. Two URLs share an origin exactly when these texts are
 * equal (so "https://U:P@H" and "https://h:443/x" do). 0, or R2M_E_INVALID
 * (no such URL, or longer than outlen - R2M_HTTP_ORIGIN_MAX always fits
 * a valid one) or R2M_E_NOMEM. */
#define R2M_HTTP_ORIGIN_MAX 320
int r2m_http_origin(const char *url, char *out, size_t outlen);

int r2m_http_new(int epfd, r2m_http_done_fn *done, struct r2m_http **out);
/* Aborts running transfers (without calling done) and frees the multi handle. */
void r2m_http_free(struct r2m_http *h);

/* What a transfer does beyond the request its endpoint configures; the
 * caller decides (for pagination: r2m_page_http_opts). */
struct r2m_http_opts {
    /* keep the answer's Link field lines as they arrive, so reading them
     * all through r2m_http_header costs linear time (Link pagination);
     * without it r2m_http_header reads Link through libcurl */
    int link_headers;
    /* conditional GET: send the committed validators and keep the new
     * ones of each 2xx answer (see r2m_http_commit_validators) */
    int conditional;
};

/* Creates the reusable transfer of an endpoint. cfg must stay valid until
 * the transfer is freed or retargeted. The transfer keeps its own copies of
 * everything a request in flight reads (URL, headers, POST body, opts), so
 * a reload may free cfg while a request runs, once it has retargeted. */
int r2m_http_xfer_new(struct r2m_http *h, const struct r2m_endpoint_cfg *cfg,
                      const struct r2m_http_opts *opts, void *owner, struct r2m_http_xfer **out);
void r2m_http_xfer_free(struct r2m_http_xfer *x);
/* Points the transfer at an identical copy of its configuration (a reload
 * that left the endpoint unchanged, so its opts too); a transfer in
 * progress continues. */
void r2m_http_xfer_retarget(struct r2m_http_xfer *x, const struct r2m_endpoint_cfg *cfg);

/* Starts a fetch; done is called exactly once for it later (never from
 * inside this call). R2M_E_INVALID if the transfer is already running. */
int r2m_http_start(struct r2m_http_xfer *x);
/* The same with another URL for this one request (a further page); the
 * query auth parameter is added when the URL lacks it. */
int r2m_http_start_url(struct r2m_http_xfer *x, const char *url);

/* Conditional GET (opts.conditional). The ETag / Last-Modified of the last
 * 2xx answer are held as pending; the bridge commits them only when the
 * whole poll succeeded, so a poll that failed after the transfer can never
 * be skipped by a 304 later. Without opts.conditional no validators are
 * sent, kept or committed. */
/* Returns 1 when the validators changed. */
int r2m_http_commit_validators(struct r2m_http_xfer *x);
void r2m_http_set_validators(struct r2m_http_xfer *x, const char *etag, const char *last_modified);
const char *r2m_http_etag(const struct r2m_http_xfer *x);          /* pending */
const char *r2m_http_last_modified(const struct r2m_http_xfer *x); /* pending */
/* The committed validators (those of the last successful poll, sent with
 * the next request): what to save outside a poll's own commit. The pending
 * ones may be those of a 200 whose poll then failed. */
const char *r2m_http_committed_etag(const struct r2m_http_xfer *x);
const char *r2m_http_committed_last_modified(const struct r2m_http_xfer *x);

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
