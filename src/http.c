/* http.c - libcurl multi socket API driven by the caller's epoll. */
#include "r2m/http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <time.h>

#include "r2m/error.h"

struct r2m_http {
    CURLM *multi;
    int epfd;
    int64_t deadline; /* monotonic ms when libcurl wants a timeout call */
    size_t active;
    r2m_http_done_fn *done;
};

struct r2m_http_xfer {
    struct r2m_http *h;
    const struct r2m_endpoint_cfg *cfg;
    void *owner;
    CURL *easy;
    struct curl_slist *headers;
    struct r2m_buf body;
    int running;
    int too_big;
    int is_file;
    char errbuf[CURL_ERROR_SIZE];
    char msg[CURL_ERROR_SIZE + 64];
};

static int sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    struct r2m_http *h = userp;
    struct epoll_event ev = {0};
    ev.data.u64 = R2M_HTTP_EPOLL_TAG | (uint32_t)fd;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(h->epfd, EPOLL_CTL_DEL, fd, NULL);
        curl_multi_assign(h->multi, fd, NULL);
        return 0;
    }
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
    /* socketp marks fds already registered, so we know MOD from ADD */
    if (socketp) {
        epoll_ctl(h->epfd, EPOLL_CTL_MOD, fd, &ev);
    } else {
        epoll_ctl(h->epfd, EPOLL_CTL_ADD, fd, &ev);
        curl_multi_assign(h->multi, fd, h);
    }
    return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct r2m_http *h = userp;
    /* libcurl gives a relative delay; keep the absolute time so the loop
     * can compare it with its own clock whenever it likes */
    h->deadline = timeout_ms < 0 ? INT64_MAX : r2m_http_now_ms() + timeout_ms;
    return 0;
}

int r2m_http_new(struct r2m_http **out, int epfd, r2m_http_done_fn *done)
{
    static int global_ok;
    if (!global_ok) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return R2M_E_HTTP;
        global_ok = 1;
    }
    struct r2m_http *h = calloc(1, sizeof *h);
    if (!h)
        return R2M_E_NOMEM;
    h->multi = curl_multi_init();
    if (!h->multi) {
        free(h);
        return R2M_E_NOMEM;
    }
    h->epfd = epfd;
    h->deadline = INT64_MAX;
    h->done = done;
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    /* many endpoints on one legacy host: keep their connections */
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, 1024L);
    *out = h;
    return 0;
}

void r2m_http_free(struct r2m_http *h)
{
    if (!h)
        return;
    curl_multi_cleanup(h->multi);
    free(h);
}

static size_t write_cb(char *p, size_t size, size_t nmemb, void *userp)
{
    struct r2m_http_xfer *x = userp;
    size_t n = size * nmemb;
    if (r2m_buf_append(&x->body, p, n)) {
        x->too_big = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    return n;
}

int r2m_http_xfer_new(struct r2m_http *h, struct r2m_http_xfer **out,
                      const struct r2m_endpoint_cfg *cfg, void *owner)
{
    int r = R2M_E_NOMEM;
    struct r2m_http_xfer *x = calloc(1, sizeof *x);
    if (!x)
        return R2M_E_NOMEM;
    x->h = h;
    x->cfg = cfg;
    x->owner = owner;
    r2m_buf_init(&x->body, cfg->max_body);
    x->easy = curl_easy_init();
    if (!x->easy)
        goto out;
    x->is_file = strncasecmp(cfg->url, "file://", 7) == 0;
    int has_accept = 0;
    for (size_t i = 0; i < cfg->n_headers; i++) {
        char line[8192];
        if (strcasecmp(cfg->headers[i].name, "Accept") == 0)
            has_accept = 1;
        snprintf(line, sizeof line, "%s: %s", cfg->headers[i].name, cfg->headers[i].value);
        struct curl_slist *l = curl_slist_append(x->headers, line);
        if (!l)
            goto out;
        x->headers = l;
    }
    if (!has_accept) {
        struct curl_slist *l = curl_slist_append(x->headers, "Accept: application/json");
        if (!l)
            goto out;
        x->headers = l;
    }
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_URL, cfg->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L); /* paho makes us multi-threaded */
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)cfg->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->timeout_ms);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)cfg->max_body);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "rest2mqtt/" R2M_VERSION);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); /* every decoder libcurl has */
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https,file");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    if (strcmp(cfg->method, "POST") == 0) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, cfg->body ? cfg->body : "");
    }
    *out = x;
    x = NULL;
    r = 0;
out:
    r2m_http_xfer_free(x);
    return r;
}

void r2m_http_xfer_free(struct r2m_http_xfer *x)
{
    if (!x)
        return;
    if (x->running) {
        curl_multi_remove_handle(x->h->multi, x->easy);
        x->h->active--;
    }
    curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->headers);
    r2m_buf_free(&x->body);
    free(x);
}

int r2m_http_start(struct r2m_http_xfer *x)
{
    if (x->running)
        return R2M_E_INVALID;
    r2m_buf_reset(&x->body);
    x->too_big = 0;
    x->errbuf[0] = '\0';
    if (curl_multi_add_handle(x->h->multi, x->easy) != CURLM_OK)
        return R2M_E_HTTP;
    x->running = 1;
    x->h->active++;
    return 0;
}

int r2m_http_running(const struct r2m_http_xfer *x)
{
    return x->running;
}

size_t r2m_http_active(const struct r2m_http *h)
{
    return h->active;
}

int64_t r2m_http_deadline(const struct r2m_http *h)
{
    return h->deadline;
}

int64_t r2m_http_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Turns a finished transfer into a result and reports it. */
static void finish(struct r2m_http *h, CURL *easy, CURLcode code)
{
    struct r2m_http_xfer *x = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    curl_multi_remove_handle(h->multi, easy);
    x->running = 0;
    h->active--;
    struct r2m_http_result res = {0};
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &res.status);
    curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME, &res.total_s);
    if (x->too_big || code == CURLE_FILESIZE_EXCEEDED) {
        res.result = R2M_E_BODY_TOO_LARGE;
        snprintf(x->msg, sizeof x->msg, "response body larger than max_body (%llu bytes)",
                 (unsigned long long)x->cfg->max_body);
    } else if (code == CURLE_OPERATION_TIMEDOUT) {
        res.result = R2M_E_TIMEOUT;
        snprintf(x->msg, sizeof x->msg, "timed out after %lld ms",
                 (long long)x->cfg->timeout_ms);
    } else if (code != CURLE_OK) {
        res.result = R2M_E_HTTP;
        /* libcurl's error buffer names host and port, never credentials */
        snprintf(x->msg, sizeof x->msg, "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(code));
    } else if (!x->is_file && (res.status < 200 || res.status > 299)) {
        res.result = R2M_E_HTTP_STATUS;
        snprintf(x->msg, sizeof x->msg, "HTTP status %ld", res.status);
    } else {
        res.body = x->body.data ? x->body.data : "";
        res.len = x->body.len;
    }
    res.err = res.result ? x->msg : NULL;
    h->done(x->owner, x, &res);
}

static void drain(struct r2m_http *h)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(h->multi, &left)))
        if (m->msg == CURLMSG_DONE)
            finish(h, m->easy_handle, m->data.result);
}

void r2m_http_on_socket(struct r2m_http *h, int fd, uint32_t events)
{
    int mask = 0, running;
    if (events & EPOLLIN)
        mask |= CURL_CSELECT_IN;
    if (events & EPOLLOUT)
        mask |= CURL_CSELECT_OUT;
    if (events & (EPOLLERR | EPOLLHUP))
        mask |= CURL_CSELECT_ERR;
    curl_multi_socket_action(h->multi, fd, mask, &running);
    drain(h);
}

void r2m_http_on_timeout(struct r2m_http *h)
{
    int running;
    h->deadline = INT64_MAX;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    drain(h);
}
