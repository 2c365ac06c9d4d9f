/* http.c - libcurl multi socket API driven by the caller's epoll. */
#include "r2m/http.h"

#include <ctype.h>
#include <curl/curl.h>
#include <curl/header.h>
#include <errno.h>
#include <idn2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <time.h>

#include "r2m/error.h"
#include "r2m/log.h"

/* What one transfer in progress needs: an easy handle, the body, error
 * text. Slots are pooled by the multi handle and lent to an endpoint's
 * transfer while it runs, so memory and libcurl state grow with the number
 * of transfers in flight, not with the number of endpoints (a libcurl easy
 * handle alone is ~8 KB). */
struct slot {
    struct slot *next; /* free list */
    CURL *easy;
    struct r2m_buf body;
    /* the Link field values of the answer, each NUL-terminated, collected
     * line by line as they arrive: libcurl's curl_easy_header() walks every
     * header of the response per call, so reading n Link lines through it
     * costs n^2 - 20,000 lines stalled the event loop for 15 s */
    struct r2m_buf links;
    size_t n_links;
    int in_head;     /* 1 between a status line and the blank line after it,
                        2 after it (trailers), 0 before any status line */
    int link_last;   /* the last header line was a Link (for obs-fold) */
    int links_lost;  /* they did not fit: read them through libcurl */
    size_t at_index; /* r2m_http_header's place: index and offset of the */
    size_t at_off;   /* line after the one it returned last */
    char errbuf[CURL_ERROR_SIZE];
    char msg[CURL_ERROR_SIZE + 64];
};

#define LINKS_MAX (1u << 20) /* more than libcurl takes for all headers */

#define DOOMED_MAX 16

struct r2m_http {
    CURLM *multi;
    int epfd;
    /* transfers whose socket could not be watched (epoll_ctl failed): they
     * are failed right after the libcurl call, each alone */
    CURL *doomed[DOOMED_MAX];
    int doomed_errno[DOOMED_MAX];
    size_t n_doomed;
    int64_t deadline; /* monotonic ms when libcurl wants a timeout call */
    size_t active;
    r2m_http_done_fn *done;
    struct slot *free_slots;
};

#define VALIDATOR_MAX 512
#define MAX_HOPS      5 /* redirects per request, as curl's -L used to do here */

struct r2m_http_xfer {
    struct r2m_http *h;
    const struct r2m_endpoint_cfg *cfg;
    void *owner;
    struct slot *slot;          /* while running */
    struct curl_slist *headers; /* static ones + token + validators; rebuilt on change */
    char *url;                  /* the endpoint's URL, with the query auth parameter */
    char *body;                 /* POST body, our own copy (NULL: GET) */
    size_t body_len;            /* its length */
    char *token;                /* OAuth2 access token, or NULL */
    struct r2m_http_opts opts;
    int too_big;
    int is_file;
    int conditional; /* validators were sent with this request */
    int headers_dirty;
    char origin[R2M_HTTP_ORIGIN_MAX]; /* of cfg->url; "" for file:// */
    struct curl_slist *bare;          /* headers off the origin: Accept (+ Content-Type) */
    int hops;                         /* redirects followed by this request */
    int foreign;                      /* this request left the origin: no credentials */
    int as_get;                       /* a 301/302/303 turned the POST into a GET */
    int64_t t0;                       /* monotonic ms when this request started */
    /* validators (NULL = none): current (sent), and pending (from the last
     * 2xx, kept until the poll succeeded as a whole) */
    char *etag, *last_modified;
    char *p_etag, *p_last_modified;
};

static void slot_free(struct slot *sl)
{
    if (!sl)
        return;
    curl_easy_cleanup(sl->easy);
    r2m_buf_free(&sl->body);
    r2m_buf_free(&sl->links);
    free(sl);
}

/* A slot from the pool, or a new one. */
static struct slot *slot_get(struct r2m_http *h)
{
    struct slot *sl = h->free_slots;
    if (sl) {
        h->free_slots = sl->next;
        curl_easy_reset(sl->easy); /* options only: connections live in the multi */
        return sl;
    }
    sl = calloc(1, sizeof *sl);
    if (!sl)
        return NULL;
    r2m_buf_init(&sl->body, 0);
    r2m_buf_init(&sl->links, LINKS_MAX);
    if (!(sl->easy = curl_easy_init())) {
        free(sl);
        return NULL;
    }
    return sl;
}

static void slot_put(struct r2m_http *h, struct slot *sl)
{
    /* a huge body once must not pin its memory for ever */
    if (sl->body.cap > (1u << 20))
        r2m_buf_free(&sl->body);
    if (sl->links.cap > (64u << 10))
        r2m_buf_free(&sl->links);
    sl->next = h->free_slots;
    h->free_slots = sl;
}

/* Replaces *dst with a copy of src ("" or NULL: none); 0 or R2M_E_NOMEM. */
static int set_str(char **dst, const char *src)
{
    char *c = src && *src ? strdup(src) : NULL;
    if (src && *src && !c)
        return R2M_E_NOMEM;
    free(*dst);
    *dst = c;
    return 0;
}

static int str_same(const char *a, const char *b)
{
    return (!a || !*a) ? (!b || !*b) : (b && !strcmp(a, b));
}

/* A socket libcurl needs could not be put in the epoll set: without it the
 * transfer would wait for events that never come (until its timeout).
 * Fail that transfer alone once libcurl returns (see fail_doomed); -1 (which
 * makes libcurl fail every transfer of the multi handle) only when too
 * many fail at once to remember them. */
static int watch_failed(struct r2m_http *h, CURL *easy)
{
    if (h->n_doomed == DOOMED_MAX)
        return -1;
    h->doomed_errno[h->n_doomed] = errno;
    h->doomed[h->n_doomed++] = easy;
    return 0;
}

static void undoom(struct r2m_http *h, CURL *easy)
{
    for (size_t i = 0; i < h->n_doomed; i++)
        if (h->doomed[i] == easy) {
            h->doomed[i] = h->doomed[--h->n_doomed];
            h->doomed_errno[i] = h->doomed_errno[h->n_doomed];
            return;
        }
}

/* Takes a handle out of the multi; libcurl refuses only a handle it does
 * not hold, which leaves nothing to undo. */
static void multi_remove(struct r2m_http *h, CURL *easy)
{
    CURLMcode mc = curl_multi_remove_handle(h->multi, easy);
    if (mc != CURLM_OK)
        r2m_log(R2M_LOG_WARN, "libcurl refused to remove a transfer", "error",
                curl_multi_strerror(mc), NULL);
}

int r2m_http_origin(const char *url, char *out, size_t outlen)
{
    int r = R2M_E_INVALID;
    char *scheme = NULL, *host = NULL, *port = NULL, *zone = NULL, *idn = NULL;
    CURLU *u = curl_url();
    if (!u)
        return R2M_E_NOMEM;
    /* libcurl's parser is the one that will connect: what it calls the
     * host is where the credentials would go (userinfo, "@" tricks and
     * IPv4 spellings included) */
    if (!url || curl_url_set(u, CURLUPART_URL, url, 0) ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT))
        goto out;
    for (const char *p = host; *p; p++) {
        if (!((unsigned char)*p & 0x80))
            continue;
        /* an IDN: one spelling, the punycode libcurl resolves (with the
         * same IDNA2008 flags). libcurl's own CURLU_PUNYCODE converts
         * through the locale and fails in the C locale. */
        if (idn2_to_ascii_8z(host, &idn, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) != IDN2_OK)
            goto out;
        break;
    }
    if (curl_url_get(u, CURLUPART_ZONEID, &zone, 0) != CURLUE_OK)
        zone = NULL; /* most hosts have none */
    if ((strcasecmp(scheme, "http") && strcasecmp(scheme, "https")) || !*host)
        goto out;
    int n = snprintf(out, outlen, "%s://%s%s%s:%s", scheme, idn ? idn : host, zone ? "%25" : "",
                     zone ? zone : "", port);
    if (n < 0 || (size_t)n >= outlen)
        goto out;
    for (char *p = out; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    r = 0;
out:
    if (r && outlen)
        out[0] = '\0';
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(zone);
    idn2_free(idn);
    curl_url_cleanup(u);
    return r;
}

/* Whether url is on the endpoint's configured origin (file:// always is). */
static int on_origin(const struct r2m_http_xfer *x, const char *url)
{
    char o[R2M_HTTP_ORIGIN_MAX];
    return x->is_file ||
           (x->origin[0] && !r2m_http_origin(url, o, sizeof o) && !strcmp(o, x->origin));
}

/* Whether the query part q[0..n) names `name` (compared percent-decoded). */
static int param_is(const char *q, size_t n, const char *name)
{
    size_t i = 0, k = 0;
    while (i < n && q[i] != '=') {
        int ch = (unsigned char)q[i];
        if (ch == '%' && i + 2 < n && isxdigit((unsigned char)q[i + 1]) &&
            isxdigit((unsigned char)q[i + 2])) {
            char hex[3] = {q[i + 1], q[i + 2], 0};
            ch = (int)strtol(hex, NULL, 16);
            i += 2;
        } else if (ch == '+') {
            ch = ' ';
        }
        if (name[k] != (char)ch)
            return 0;
        i++;
        k++;
    }
    return name[k] == '\0';
}

/* url made fit for a request off the origin: no user part, and no query
 * auth parameter (servers often copy the whole query into a redirect).
 * Malloc'd, or NULL when out of memory or unusable. */
static char *foreign_url(const struct r2m_http_xfer *x, const char *url)
{
    CURLU *u = curl_url();
    char *q = NULL, *out = NULL, *keep = NULL;
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) || curl_url_set(u, CURLUPART_USER, NULL, 0) ||
        curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) || curl_url_set(u, CURLUPART_OPTIONS, NULL, 0))
        goto out;
    if (x->cfg->auth.type == R2M_AUTH_QUERY && !curl_url_get(u, CURLUPART_QUERY, &q, 0)) {
        size_t len = strlen(q), k = 0;
        if (!(keep = malloc(len + 1)))
            goto out;
        for (const char *p = q; *p;) {
            size_t n = strcspn(p, "&");
            if (n && !param_is(p, n, x->cfg->auth.name)) {
                if (k)
                    keep[k++] = '&';
                memcpy(keep + k, p, n);
                k += n;
            }
            p += n + (p[n] == '&');
        }
        keep[k] = '\0';
        if (curl_url_set(u, CURLUPART_QUERY, k ? keep : NULL, 0))
            goto out;
    }
    if (curl_url_get(u, CURLUPART_URL, &out, 0) != CURLUE_OK)
        out = NULL;
out:
    if (q)
        explicit_bzero(q, strlen(q));
    curl_free(q);
    if (keep)
        explicit_bzero(keep, strlen(keep));
    free(keep);
    curl_url_cleanup(u);
    char *r = out ? strdup(out) : NULL;
    curl_free(out);
    return r;
}

static int sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct r2m_http *h = userp;
    struct epoll_event ev = {0};
    ev.data.u64 = R2M_HTTP_EPOLL_TAG | (uint32_t)fd;
    if (what == CURL_POLL_REMOVE) {
        /* libcurl may have closed the fd already (the kernel then dropped
         * it from the set, ENOENT/EBADF); whatever the result, nothing
         * waits on a socket being removed, so no transfer is left hanging */
        (void)epoll_ctl(h->epfd, EPOLL_CTL_DEL, fd, NULL);
        /* refused only for an fd libcurl no longer knows: nothing to forget */
        (void)curl_multi_assign(h->multi, fd, NULL);
        return 0;
    }
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
    /* socketp marks fds already registered, so we know MOD from ADD */
    if (socketp) {
        if (epoll_ctl(h->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
            return watch_failed(h, easy);
    } else {
        if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 &&
            (errno != EEXIST || epoll_ctl(h->epfd, EPOLL_CTL_MOD, fd, &ev) < 0))
            return watch_failed(h, easy);
        /* without the mark the next call ADDs again, and EEXIST turns
         * that into the MOD it should have been */
        (void)curl_multi_assign(h->multi, fd, h);
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

int r2m_http_new(int epfd, r2m_http_done_fn *done, struct r2m_http **out)
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
    /* many endpoints on one legacy host: keep their connections */
    if (curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, sock_cb) != CURLM_OK ||
        curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h) != CURLM_OK ||
        curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb) != CURLM_OK ||
        curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h) != CURLM_OK ||
        curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, 1024L) != CURLM_OK) {
        r2m_http_free(h);
        return R2M_E_HTTP;
    }
    *out = h;
    return 0;
}

void r2m_http_free(struct r2m_http *h)
{
    if (!h)
        return;
    /* refused only for a handle that is not a multi: nothing to undo */
    (void)curl_multi_cleanup(h->multi);
    for (struct slot *sl = h->free_slots, *next; sl; sl = next) {
        next = sl->next;
        slot_free(sl);
    }
    free(h);
}

static size_t write_cb(char *p, size_t size, size_t nmemb, void *userp)
{
    struct r2m_http_xfer *x = userp;
    size_t n = size * nmemb;
    if (r2m_buf_append(&x->slot->body, p, n)) {
        x->too_big = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    return n;
}

static void links_reset(struct slot *sl)
{
    r2m_buf_reset(&sl->links);
    sl->n_links = 0;
    sl->link_last = 0;
    sl->links_lost = 0;
    sl->at_index = sl->at_off = 0;
}

/* Appends p[0..n) with leading and trailing whitespace (and CR LF) cut. */
static int links_put_trimmed(struct slot *sl, const char *p, size_t n)
{
    while (n && (*p == ' ' || *p == '\t'))
        p++, n--;
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r' || p[n - 1] == '\n'))
        n--;
    return r2m_buf_append(&sl->links, p, n);
}

/* Every header line of every response of the transfer: keeps the Link
 * fields of the answer, as curl_easy_header(..., CURLH_HEADER, -1) would
 * give them (no 1xx, no trailers, folded lines joined with a space). */
static size_t header_cb(char *p, size_t size, size_t nitems, void *userp)
{
    struct r2m_http_xfer *x = userp;
    struct slot *sl = x->slot;
    size_t n = size * nitems;
    if (!sl || !x->opts.link_headers)
        return n;
    if (n >= 5 && !memcmp(p, "HTTP/", 5)) {
        links_reset(sl); /* a new response: a 1xx's fields are not the answer's */
        sl->in_head = 1;
        return n;
    }
    if (n == 0 || p[0] == '\r' || p[0] == '\n') {
        sl->in_head = 2; /* what comes after the blank line are trailers */
        return n;
    }
    if (!sl->in_head)
        sl->links_lost = 1; /* fields without an "HTTP/" status line: ask libcurl */
    if (sl->in_head != 1 || sl->links_lost)
        return n;
    if (p[0] == ' ' || p[0] == '\t') {
        /* obs-fold: continues the field above */
        if (sl->link_last) {
            sl->links.len--; /* the NUL */
            if (r2m_buf_putc(&sl->links, ' ') || links_put_trimmed(sl, p, n) ||
                r2m_buf_putc(&sl->links, '\0'))
                sl->links_lost = 1;
        }
        return n;
    }
    sl->link_last = n > 5 && !strncasecmp(p, "link:", 5);
    if (sl->link_last) {
        if (links_put_trimmed(sl, p + 5, n - 5) || r2m_buf_putc(&sl->links, '\0'))
            sl->links_lost = 1;
        else
            sl->n_links++;
    }
    return n;
}

/* Appends "name: value" to the list; 0 or R2M_E_NOMEM. */
static int add_header(struct curl_slist **list, const char *name, const char *prefix,
                      const char *value)
{
    size_t n = strlen(name) + strlen(prefix) + strlen(value) + 3;
    char *line = malloc(n);
    if (!line)
        return R2M_E_NOMEM;
    snprintf(line, n, "%s: %s%s", name, prefix, value);
    struct curl_slist *l = curl_slist_append(*list, line);
    explicit_bzero(line, n); /* may hold a credential */
    free(line);
    if (!l)
        return R2M_E_NOMEM;
    *list = l;
    return 0;
}

/* (Re)builds the request headers: configured ones, Accept, Content-Type,
 * credentials, validators. Runs at creation and when a token or a validator
 * changes - not per poll. */
static int build_headers(struct r2m_http_xfer *x)
{
    const struct r2m_endpoint_cfg *cfg = x->cfg;
    struct curl_slist *list = NULL;
    int has_accept = 0, has_ctype = 0, r = 0;
    for (size_t i = 0; i < cfg->n_headers && !r; i++) {
        has_accept |= !strcasecmp(cfg->headers[i].name, "Accept");
        has_ctype |= !strcasecmp(cfg->headers[i].name, "Content-Type");
        r = add_header(&list, cfg->headers[i].name, "", cfg->headers[i].value);
    }
    if (!r && !has_accept)
        r = add_header(&list, "Accept", "", "application/json");
    if (!r && !has_ctype && !strcmp(cfg->method, "POST"))
        r = add_header(&list, "Content-Type", "",
                       cfg->content_type ? cfg->content_type : "application/json");
    if (!r && cfg->auth.type == R2M_AUTH_BEARER)
        r = add_header(&list, "Authorization", "Bearer ", cfg->auth.token);
    if (!r && cfg->auth.type == R2M_AUTH_OAUTH2 && x->token)
        r = add_header(&list, "Authorization", "Bearer ", x->token);
    if (!r && cfg->auth.type == R2M_AUTH_HEADER)
        r = add_header(&list, cfg->auth.name, "", cfg->auth.value);
    /* conditional GET, when the transfer's options allow it (not for
     * paginated endpoints: a 304 for page 1 says nothing about the others) */
    x->conditional = 0;
    if (!r && x->opts.conditional && x->etag) {
        r = add_header(&list, "If-None-Match", "", x->etag);
        x->conditional = 1;
    }
    if (!r && x->opts.conditional && x->last_modified) {
        r = add_header(&list, "If-Modified-Since", "", x->last_modified);
        x->conditional = 1;
    }
    if (r) {
        curl_slist_free_all(list);
        return r;
    }
    curl_slist_free_all(x->headers);
    x->headers = list;
    x->headers_dirty = 0;
    return 0;
}

/* Appends "name=value" (both URL-encoded) to url's query, before a
 * fragment (which is never sent). Returns malloc'd text. */
static char *with_param(const char *url, const char *name, const char *value)
{
    /* curl_easy_escape ignores its handle since 7.82 */
    char *n = curl_easy_escape(NULL, name, 0), *v = curl_easy_escape(NULL, value, 0);
    char *out = NULL;
    if (n && v) {
        size_t at = strcspn(url, "#"); /* '#' only ever starts the fragment */
        int has_query = memchr(url, '?', at) != NULL;
        size_t len = at + strlen(n) + strlen(v) + 3;
        if ((out = malloc(len)))
            snprintf(out, len, "%.*s%c%s=%s", (int)at, url, has_query ? '&' : '?', n, v);
    }
    curl_free(n);
    curl_free(v);
    return out;
}

/* Whether url's query has a parameter called name (compared decoded). */
static int has_param(const char *url, const char *name)
{
    size_t end = strcspn(url, "#");
    const char *q = memchr(url, '?', end);
    if (!q)
        return 0;
    q++;
    const char *stop = url + end;
    while (q < stop) {
        size_t n = strcspn(q, "&#");
        if (n && param_is(q, n, name))
            return 1;
        q += n + 1;
    }
    return 0;
}

int r2m_http_xfer_new(struct r2m_http *h, const struct r2m_endpoint_cfg *cfg,
                      const struct r2m_http_opts *opts, void *owner, struct r2m_http_xfer **out)
{
    int r = R2M_E_NOMEM;
    struct r2m_http_xfer *x = calloc(1, sizeof *x);
    if (!x)
        return R2M_E_NOMEM;
    x->h = h;
    x->cfg = cfg;
    x->opts = *opts;
    x->owner = owner;
    x->is_file = strncasecmp(cfg->url, "file://", 7) == 0;
    x->url = cfg->auth.type == R2M_AUTH_QUERY
                 ? with_param(cfg->url, cfg->auth.name, cfg->auth.value)
                 : strdup(cfg->url);
    if (!x->url || (r = build_headers(x)))
        goto out;
    /* libcurl's CURLOPT_POSTFIELDS does not copy, and a reload frees the
     * configuration while a POST may still be sending: the transfer owns
     * its body. (URL and headers are copied already: x->url, x->headers.) */
    if (!strcmp(cfg->method, "POST")) {
        x->body_len = cfg->body ? strlen(cfg->body) : 0;
        if (!(x->body = malloc(x->body_len + 1))) {
            r = R2M_E_NOMEM;
            goto out;
        }
        memcpy(x->body, cfg->body ? cfg->body : "", x->body_len + 1);
    }
    if (!x->is_file && r2m_http_origin(cfg->url, x->origin, sizeof x->origin)) {
        r = R2M_E_INVALID; /* config checks the URL: not expected */
        goto out;
    }
    r = add_header(&x->bare, "Accept", "", "application/json");
    if (!r && !strcmp(cfg->method, "POST"))
        r = add_header(&x->bare, "Content-Type", "",
                       cfg->content_type ? cfg->content_type : "application/json");
    if (r)
        goto out;
    *out = x;
    x = NULL;
    r = 0;
out:
    r2m_http_xfer_free(x);
    return r;
}

/* curl_easy_setopt unless an earlier one failed: *rc keeps the first
 * failure, so a list of options is set in order and checked once. */
#define SETOPT(rc, e, opt, val)                                                                    \
    do {                                                                                           \
        if (*(rc) == CURLE_OK)                                                                     \
            *(rc) = curl_easy_setopt((e), (opt), (val));                                           \
    } while (0)

/* The options about credentials: none once the request left the origin. */
static void apply_auth_options(const struct r2m_http_xfer *x, CURL *e, CURLcode *rc)
{
    const struct r2m_endpoint_cfg *cfg = x->cfg;
    if (cfg->auth.type == R2M_AUTH_BASIC && !x->foreign) {
        SETOPT(rc, e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        SETOPT(rc, e, CURLOPT_USERNAME, cfg->auth.username);
        SETOPT(rc, e, CURLOPT_PASSWORD, cfg->auth.password);
    }
    if (cfg->tls.ca_file)
        SETOPT(rc, e, CURLOPT_CAINFO, cfg->tls.ca_file);
    /* a client certificate is a credential too: never shown to a server
     * off the origin (it would learn who we are, and may accept it) */
    if (cfg->tls.cert_file && !x->foreign)
        SETOPT(rc, e, CURLOPT_SSLCERT, cfg->tls.cert_file);
    if (cfg->tls.key_file && !x->foreign)
        SETOPT(rc, e, CURLOPT_SSLKEY, cfg->tls.key_file);
    if (cfg->tls.insecure) {
        SETOPT(rc, e, CURLOPT_SSL_VERIFYPEER, 0L);
        SETOPT(rc, e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
}

/* Sets every option of a request on a (reset) easy handle. 0, or
 * R2M_E_HTTP with the slot's msg naming libcurl's refusal (an option this
 * libcurl lacks, out of memory): a request set up halfway is never sent. */
static int apply_options(struct r2m_http_xfer *x, CURL *e, const char *url)
{
    const struct r2m_endpoint_cfg *cfg = x->cfg;
    CURLcode rc = CURLE_OK;
    SETOPT(&rc, e, CURLOPT_URL, url);
    SETOPT(&rc, e, CURLOPT_PRIVATE, x);
    SETOPT(&rc, e, CURLOPT_NOSIGNAL, 1L); /* paho makes us multi-threaded */
    SETOPT(&rc, e, CURLOPT_WRITEFUNCTION, write_cb);
    SETOPT(&rc, e, CURLOPT_WRITEDATA, x);
    SETOPT(&rc, e, CURLOPT_HEADERFUNCTION, header_cb);
    SETOPT(&rc, e, CURLOPT_HEADERDATA, x);
    SETOPT(&rc, e, CURLOPT_ERRORBUFFER, x->slot->errbuf);
    /* one timeout for the request and all its redirects */
    int64_t left = cfg->timeout_ms - (r2m_http_now_ms() - x->t0);
    if (left < 1)
        left = 1;
    SETOPT(&rc, e, CURLOPT_TIMEOUT_MS, (long)left);
    SETOPT(&rc, e, CURLOPT_CONNECTTIMEOUT_MS, (long)left);
    SETOPT(&rc, e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)cfg->max_body);
    SETOPT(&rc, e, CURLOPT_HTTPHEADER, x->foreign ? x->bare : x->headers);
    SETOPT(&rc, e, CURLOPT_USERAGENT, "rest2mqtt/" R2M_VERSION);
    SETOPT(&rc, e, CURLOPT_ACCEPT_ENCODING, ""); /* every decoder libcurl has */
    SETOPT(&rc, e, CURLOPT_PROTOCOLS_STR, "http,https,file");
    SETOPT(&rc, e, CURLOPT_FOLLOWLOCATION, 0L); /* follow() decides */
    SETOPT(&rc, e, CURLOPT_TCP_KEEPALIVE, 1L);
    apply_auth_options(x, e, &rc);
    if (rc == CURLE_OK)
        return 0;
    snprintf(x->slot->msg, sizeof x->slot->msg, "cannot set up the request: libcurl: %s",
             curl_easy_strerror(rc));
    return R2M_E_HTTP;
}

/* The POST body, from the transfer's own copy (see r2m_http_xfer_new). */
static int set_body(struct r2m_http_xfer *x, CURL *e)
{
    if (!x->body || x->as_get)
        return 0;
    if (curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body) != CURLE_OK)
        return R2M_E_HTTP;
    return 0;
}

void r2m_http_xfer_retarget(struct r2m_http_xfer *x, const struct r2m_endpoint_cfg *cfg)
{
    /* only what is read when a request ends or starts changes hands; what a
     * request in flight uses (URL, headers, body) is the transfer's own */
    x->cfg = cfg;
}

void r2m_http_xfer_free(struct r2m_http_xfer *x)
{
    if (!x)
        return;
    if (x->slot) {
        undoom(x->h, x->slot->easy);
        multi_remove(x->h, x->slot->easy);
        x->h->active--;
        slot_put(x->h, x->slot);
    }
    curl_slist_free_all(x->headers);
    curl_slist_free_all(x->bare);
    free(x->url);
    free(x->body);
    free(x->etag);
    free(x->last_modified);
    free(x->p_etag);
    free(x->p_last_modified);
    if (x->token)
        explicit_bzero(x->token, strlen(x->token));
    free(x->token);
    free(x);
}

int r2m_http_start(struct r2m_http_xfer *x)
{
    return r2m_http_start_url(x, NULL);
}

int r2m_http_start_url(struct r2m_http_xfer *x, const char *url)
{
    if (x->slot)
        return R2M_E_INVALID;
    if (x->headers_dirty && build_headers(x))
        return R2M_E_NOMEM;
    char *with_key = NULL;
    x->hops = 0;
    x->as_get = 0;
    x->t0 = r2m_http_now_ms();
    /* a page URL from the server may point anywhere: credentials only
     * ever go to the configured origin */
    x->foreign = url && !on_origin(x, url);
    if (x->foreign) {
        if (!(with_key = foreign_url(x, url)))
            return R2M_E_INVALID;
        url = with_key;
    } else if (url && x->cfg->auth.type == R2M_AUTH_QUERY && !has_param(url, x->cfg->auth.name)) {
        /* page URLs from the server rarely repeat the API key; the name
         * elsewhere in the URL ("key" in "/monkeys") does not count */
        if (!(with_key = with_param(url, x->cfg->auth.name, x->cfg->auth.value)))
            return R2M_E_NOMEM;
        url = with_key;
    }
    struct slot *sl = slot_get(x->h);
    if (!sl) {
        free(with_key);
        return R2M_E_NOMEM;
    }
    x->slot = sl;
    int r = apply_options(x, sl->easy, url ? url : x->url);
    if (with_key)
        explicit_bzero(with_key, strlen(with_key));
    free(with_key); /* libcurl copied it */
    if (r || set_body(x, sl->easy)) {
        x->slot = NULL;
        slot_put(x->h, sl);
        return R2M_E_HTTP;
    }
    r2m_buf_reset(&sl->body);
    links_reset(sl);
    sl->in_head = 0;
    sl->body.max = x->cfg->max_body;
    x->too_big = 0;
    sl->errbuf[0] = '\0';
    if (curl_multi_add_handle(x->h->multi, sl->easy) != CURLM_OK) {
        x->slot = NULL;
        slot_put(x->h, sl);
        return R2M_E_HTTP;
    }
    x->h->active++;
    return 0;
}

int r2m_http_running(const struct r2m_http_xfer *x)
{
    return x->slot != NULL;
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

static int status_ok(const struct r2m_endpoint_cfg *cfg, long status)
{
    if (!cfg->n_accept_status)
        return status >= 200 && status <= 299;
    for (size_t i = 0; i < cfg->n_accept_status; i++)
        if (cfg->accept_status[i] == status)
            return 1;
    return 0;
}

/* Copies the last value of a response header, or "" (also when too long). */
static void header_value(CURL *easy, const char *name, char *out, size_t outlen)
{
    struct curl_header *h = NULL;
    out[0] = '\0';
    if (curl_easy_header(easy, name, 0, CURLH_HEADER, -1, &h) == CURLHE_OK && h->value &&
        strlen(h->value) < outlen && !strpbrk(h->value, "\r\n"))
        strcpy(out, h->value);
}

/* ---- Retry-After ---- */

/* days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil), independent of TZ and locale */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

struct date_scan {
    const char *s;
    size_t len, pos;
};

static int ds_lit(struct date_scan *k, const char *lit)
{
    size_t n = strlen(lit);
    if (k->len - k->pos < n || memcmp(k->s + k->pos, lit, n))
        return 0;
    k->pos += n;
    return 1;
}

/* exactly n digits */
static int ds_num(struct date_scan *k, size_t n, int *out)
{
    if (k->len - k->pos < n)
        return 0;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        char c = k->s[k->pos + i];
        if (c < '0' || c > '9')
            return 0;
        v = v * 10 + (c - '0');
    }
    k->pos += n;
    *out = v;
    return 1;
}

/* one of n names; *out is its index */
static int ds_name(struct date_scan *k, const char *const *names, int n, int *out)
{
    for (int i = 0; i < n; i++)
        if (ds_lit(k, names[i])) {
            *out = i;
            return 1;
        }
    return 0;
}

static const char *const wkday[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char *const weekday[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                      "Friday", "Saturday", "Sunday"};
static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* "08:49:37" */
static int ds_time(struct date_scan *k, int *h, int *m, int *sec)
{
    return ds_num(k, 2, h) && ds_lit(k, ":") && ds_num(k, 2, m) && ds_lit(k, ":") &&
           ds_num(k, 2, sec) && *h < 24 && *m < 60 && *sec <= 60;
}

/* HTTP-date of RFC 9110 section 5.6.7 in Unix seconds; 0 when it is none. */
static int http_date(const char *s, size_t len, int64_t now_s, int64_t *out)
{
    struct date_scan k = {s, len, 0};
    int wd, d, mon, y, h, mi, sec;
    if (ds_name(&k, weekday, 7, &wd)) {
        /* rfc850-date: Sunday, 06-Nov-94 08:49:37 GMT */
        if (!(ds_lit(&k, ", ") && ds_num(&k, 2, &d) && ds_lit(&k, "-") &&
              ds_name(&k, months, 12, &mon) && ds_lit(&k, "-") && ds_num(&k, 2, &y) &&
              ds_lit(&k, " ") && ds_time(&k, &h, &mi, &sec) && ds_lit(&k, " GMT")))
            return 0;
        /* a two-digit year more than 50 years ahead is in the past century */
        int64_t now_y = 1970 + now_s / 31556952, yy = now_y - now_y % 100 + y;
        if (yy > now_y + 50)
            yy -= 100;
        y = (int)yy;
    } else if (ds_name(&k, wkday, 7, &wd)) {
        if (ds_lit(&k, ", ")) {
            /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
            if (!(ds_num(&k, 2, &d) && ds_lit(&k, " ") && ds_name(&k, months, 12, &mon) &&
                  ds_lit(&k, " ") && ds_num(&k, 4, &y) && ds_lit(&k, " ") &&
                  ds_time(&k, &h, &mi, &sec) && ds_lit(&k, " GMT")))
                return 0;
        } else {
            /* asctime-date: Sun Nov  6 08:49:37 1994 */
            if (!(ds_lit(&k, " ") && ds_name(&k, months, 12, &mon) && ds_lit(&k, " ")))
                return 0;
            if (!(ds_lit(&k, " ") ? ds_num(&k, 1, &d) : ds_num(&k, 2, &d)))
                return 0;
            if (!(ds_lit(&k, " ") && ds_time(&k, &h, &mi, &sec) && ds_lit(&k, " ") &&
                  ds_num(&k, 4, &y)))
                return 0;
        }
    } else {
        return 0;
    }
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (k.pos != k.len || d < 1 || d > mdays[mon])
        return 0;
    *out = days_from_civil(y, (unsigned)mon + 1, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec;
    return 1;
}

int64_t r2m_http_retry_after(const char *v, size_t len, int64_t now_s, int64_t max_ms, int *bad)
{
    *bad = 0;
    while (len && (*v == ' ' || *v == '\t'))
        v++, len--;
    while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    int64_t cap = max_ms > 0 ? max_ms : INT64_MAX;
    size_t digits = 0;
    while (digits < len && v[digits] >= '0' && v[digits] <= '9')
        digits++;
    if (digits && digits == len) {
        /* delay-seconds: 1*DIGIT, however many; past the cap it is the cap */
        int64_t ms = 0;
        for (size_t i = 0; i < len; i++) {
            if (ms > cap / 10 || ms * 10 > cap - (v[i] - '0') * 1000)
                return cap;
            ms = ms * 10 + (v[i] - '0') * 1000;
        }
        return ms > cap ? cap : ms;
    }
    int64_t when;
    if (!len || !http_date(v, len, now_s, &when)) {
        *bad = 1;
        return 0;
    }
    if (when <= now_s)
        return 0; /* a date in the past: retry now */
    if (when - now_s > cap / 1000)
        return cap;
    return (when - now_s) * 1000;
}

/* Retry-After of a 429 or 503, in ms; a value that is neither form is
 * ignored with a warning. */
static int64_t retry_after(struct r2m_http_xfer *x, CURL *easy)
{
    struct curl_header *h = NULL;
    if (curl_easy_header(easy, "Retry-After", 0, CURLH_HEADER, -1, &h) != CURLHE_OK || !h->value)
        return 0;
    int bad;
    int64_t ms = r2m_http_retry_after(h->value, strlen(h->value), (int64_t)time(NULL),
                                      x->cfg->max_backoff_ms, &bad);
    if (bad) {
        char shown[64];
        size_t n = 0;
        for (const char *p = h->value; *p && n + 1 < sizeof shown; p++)
            shown[n++] = *p >= 0x20 && *p < 0x7f ? *p : '?';
        shown[n] = '\0';
        r2m_log(R2M_LOG_WARN, "ignoring Retry-After: neither delay-seconds nor an HTTP-date",
                "endpoint", x->cfg->name, "retry_after", shown, NULL);
    }
    return ms;
}

const char *r2m_http_header(const void *result, const char *name, size_t index)
{
    const struct r2m_http_result *res = result;
    struct curl_header *h = NULL;
    /* the slot is still the transfer's while done() runs */
    struct slot *sl = res && !strcasecmp(name, "Link") ? res->slot_ : NULL;
    if (sl && !sl->links_lost) {
        if (index >= sl->n_links)
            return NULL;
        if (index < sl->at_index) /* read in order, each step is O(1) */
            sl->at_index = sl->at_off = 0;
        while (sl->at_index < index) {
            sl->at_off += strlen(sl->links.data + sl->at_off) + 1;
            sl->at_index++;
        }
        return sl->links.data + sl->at_off;
    }
    if (!res || !res->easy_ ||
        curl_easy_header(res->easy_, name, index, CURLH_HEADER, -1, &h) != CURLHE_OK)
        return NULL;
    return h->value;
}

int r2m_http_commit_validators(struct r2m_http_xfer *x)
{
    if (!x->opts.conditional || x->is_file)
        return 0;
    if (str_same(x->etag, x->p_etag) && str_same(x->last_modified, x->p_last_modified))
        return 0;
    if (set_str(&x->etag, x->p_etag) || set_str(&x->last_modified, x->p_last_modified)) {
        /* out of memory: send no validators rather than stale ones */
        set_str(&x->etag, NULL);
        set_str(&x->last_modified, NULL);
    }
    x->headers_dirty = 1;
    return 1;
}

void r2m_http_set_validators(struct r2m_http_xfer *x, const char *etag, const char *last_modified)
{
    if (etag && strlen(etag) >= VALIDATOR_MAX)
        etag = NULL;
    if (last_modified && strlen(last_modified) >= VALIDATOR_MAX)
        last_modified = NULL;
    if (set_str(&x->etag, etag) || set_str(&x->last_modified, last_modified) ||
        set_str(&x->p_etag, etag) || set_str(&x->p_last_modified, last_modified)) {
        set_str(&x->etag, NULL);
        set_str(&x->last_modified, NULL);
    }
    x->headers_dirty = 1;
}

const char *r2m_http_etag(const struct r2m_http_xfer *x)
{
    return x->p_etag ? x->p_etag : "";
}

const char *r2m_http_last_modified(const struct r2m_http_xfer *x)
{
    return x->p_last_modified ? x->p_last_modified : "";
}

const char *r2m_http_committed_etag(const struct r2m_http_xfer *x)
{
    return x->etag ? x->etag : "";
}

const char *r2m_http_committed_last_modified(const struct r2m_http_xfer *x)
{
    return x->last_modified ? x->last_modified : "";
}

int r2m_http_set_token(struct r2m_http_xfer *x, const char *token)
{
    char *t = token ? strdup(token) : NULL;
    if (token && !t)
        return R2M_E_NOMEM;
    if (x->token)
        explicit_bzero(x->token, strlen(x->token));
    free(x->token);
    x->token = t;
    x->headers_dirty = 1;
    return 0;
}

/* A 3xx answered the request in x's slot. Starts the next hop on the same
 * slot and returns 0; or returns -1 when there is nothing to follow (no
 * Location: an ordinary status), or an R2M_E_* code with the slot's msg
 * saying why the redirect was refused. */
static int follow(struct r2m_http_xfer *x, long status)
{
    struct slot *sl = x->slot;
    const struct r2m_endpoint_cfg *cfg = x->cfg;
    char *loc = NULL, *eff = NULL;
    char from[R2M_HTTP_ORIGIN_MAX], to[R2M_HTTP_ORIGIN_MAX];
    if (curl_easy_getinfo(sl->easy, CURLINFO_REDIRECT_URL, &loc) != CURLE_OK || !loc)
        return -1; /* an ordinary status: the caller judges it */
    if (curl_easy_getinfo(sl->easy, CURLINFO_EFFECTIVE_URL, &eff) != CURLE_OK)
        eff = NULL; /* then "from" is the configured origin */
    if (r2m_http_origin(eff, from, sizeof from))
        snprintf(from, sizeof from, "%s", x->origin);
    if (r2m_http_origin(loc, to, sizeof to)) {
        snprintf(sl->msg, sizeof sl->msg,
                 "HTTP status %ld redirects from %.120s to a location that is not an http(s) URL; "
                 "not followed",
                 status, from);
        return R2M_E_HTTP_STATUS;
    }
    if (cfg->redirects == R2M_REDIRECTS_NONE) {
        snprintf(sl->msg, sizeof sl->msg,
                 "HTTP status %ld redirects from %.120s to %.120s; not followed (redirects: none)",
                 status, from, to);
        return R2M_E_HTTP_STATUS;
    }
    int leaves = strcmp(to, x->origin) != 0;
    if (leaves && cfg->redirects == R2M_REDIRECTS_SAME_ORIGIN) {
        snprintf(sl->msg, sizeof sl->msg,
                 "HTTP status %ld redirects from %.80s to another origin (%.80s); not followed, "
                 "credentials stay with their origin - set redirects: any to follow it without "
                 "credentials",
                 status, from, to);
        return R2M_E_HTTP_STATUS;
    }
    if (x->hops >= MAX_HOPS) {
        snprintf(sl->msg, sizeof sl->msg, "more than %d redirects (last from %.120s to %.120s)",
                 MAX_HOPS, from, to);
        return R2M_E_HTTP;
    }
    if (r2m_http_now_ms() - x->t0 >= cfg->timeout_ms) {
        snprintf(sl->msg, sizeof sl->msg, "timed out after %lld ms", (long long)cfg->timeout_ms);
        return R2M_E_TIMEOUT;
    }
    /* a 307/308 repeats the POST with its body; the configured body (often
     * built from ${env:}/${file:} secrets) stays with its origin like the
     * credentials, so such a hop off the origin is not followed */
    if ((leaves || x->foreign) && x->body && !x->as_get && (status == 307 || status == 308)) {
        snprintf(sl->msg, sizeof sl->msg,
                 "HTTP status %ld would repeat the POST with its body at another origin "
                 "(%.80s); not followed, the configured body stays with its origin - point url "
                 "at that origin",
                 status, to);
        return R2M_E_HTTP_STATUS;
    }
    /* once off the origin, the rest of the request carries no credentials,
     * even when a foreign server sends it back */
    x->foreign |= leaves;
    char *next = x->foreign ? foreign_url(x, loc) : strdup(loc);
    if (!next) {
        snprintf(sl->msg, sizeof sl->msg, "cannot follow the redirect from %.120s to %.120s", from,
                 to);
        return R2M_E_HTTP;
    }
    x->hops++;
    /* RFC 9110 15.4 and what curl and browsers do: 301, 302 and 303 turn a
     * POST into a GET without body; 307 and 308 repeat it as it was */
    if (status == 301 || status == 302 || status == 303)
        x->as_get = 1;
    curl_easy_reset(sl->easy);
    int r = apply_options(x, sl->easy, next);
    explicit_bzero(next, strlen(next));
    free(next);
    if (r)
        return r; /* msg says why */
    if (set_body(x, sl->easy)) {
        snprintf(sl->msg, sizeof sl->msg, "cannot follow the redirect from %.120s to %.120s", from,
                 to);
        return R2M_E_HTTP;
    }
    r2m_buf_reset(&sl->body);
    links_reset(sl);
    sl->in_head = 0;
    x->too_big = 0;
    sl->errbuf[0] = '\0';
    if (curl_multi_add_handle(x->h->multi, sl->easy) != CURLM_OK) {
        snprintf(sl->msg, sizeof sl->msg, "cannot follow the redirect from %.120s to %.120s", from,
                 to);
        return R2M_E_HTTP;
    }
    x->h->active++;
    return 0;
}

/* The transfer an easy handle runs for (CURLOPT_PRIVATE, set with every
 * request), or NULL for a handle that is not ours. */
static struct r2m_http_xfer *xfer_of(CURL *easy)
{
    struct r2m_http_xfer *x = NULL;
    if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x) != CURLE_OK)
        return NULL;
    return x;
}

/* The ETag and Last-Modified of a 2xx answer, as pending validators. */
static void keep_validators(struct r2m_http_xfer *x, CURL *easy)
{
    char v[VALIDATOR_MAX];
    header_value(easy, "ETag", v, sizeof v);
    if (!str_same(v, x->p_etag) && set_str(&x->p_etag, v))
        set_str(&x->p_etag, NULL);
    header_value(easy, "Last-Modified", v, sizeof v);
    if (!str_same(v, x->p_last_modified) && set_str(&x->p_last_modified, v))
        set_str(&x->p_last_modified, NULL);
}

/* Judges a finished request (not a redirect followed) into res: result
 * and sl->msg on failure; body, validators and URL on success. */
static void judge(struct r2m_http_xfer *x, struct slot *sl, CURL *easy, CURLcode code,
                  struct r2m_http_result *res)
{
    char *eff = NULL;
    if (x->too_big || code == CURLE_FILESIZE_EXCEEDED) {
        res->result = R2M_E_BODY_TOO_LARGE;
        snprintf(sl->msg, sizeof sl->msg, "response body larger than max_body (%llu bytes)",
                 (unsigned long long)x->cfg->max_body);
    } else if (code == CURLE_OPERATION_TIMEDOUT) {
        res->result = R2M_E_TIMEOUT;
        snprintf(sl->msg, sizeof sl->msg, "timed out after %lld ms", (long long)x->cfg->timeout_ms);
    } else if (code == CURLE_OUT_OF_MEMORY) {
        /* what libcurl 7.88 reports for a header line over its fixed
         * CURL_MAX_HTTP_HEADER; a real allocation failure is far rarer */
        res->result = R2M_E_HTTP;
        snprintf(sl->msg, sizeof sl->msg,
                 "response header larger than curl's limit of 100 KiB (libcurl: out of memory)");
    } else if (code != CURLE_OK) {
        res->result = R2M_E_HTTP;
        /* libcurl's error buffer names host and port, never credentials */
        snprintf(sl->msg, sizeof sl->msg, "%s",
                 sl->errbuf[0] ? sl->errbuf : curl_easy_strerror(code));
    } else if (!x->is_file && res->status == 304 && x->conditional) {
        res->not_modified = 1; /* success: nothing changed, nothing to parse */
    } else if (!x->is_file && !status_ok(x->cfg, res->status)) {
        res->result = R2M_E_HTTP_STATUS;
        snprintf(sl->msg, sizeof sl->msg, "HTTP status %ld", res->status);
        if (res->status == 429 || res->status == 503)
            res->retry_after_ms = retry_after(x, easy);
    } else {
        res->body = sl->body.data ? sl->body.data : "";
        res->len = sl->body.len;
        if (!x->is_file && x->opts.conditional)
            keep_validators(x, easy);
        /* unknown: the caller takes the configured URL */
        if (curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_URL, &eff) == CURLE_OK)
            res->url = eff;
    }
}

/* Turns a finished transfer into a result and reports it. */
static void finish(struct r2m_http *h, CURL *easy, CURLcode code)
{
    struct r2m_http_xfer *x = xfer_of(easy);
    undoom(h, easy);
    multi_remove(h, easy);
    h->active--;
    if (!x) {
        r2m_log(R2M_LOG_ERROR, "libcurl finished a transfer that is not ours", NULL);
        return;
    }
    struct r2m_http_result res = {0};
    int refused = 0;
    if (code == CURLE_OK &&
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &res.status) != CURLE_OK) {
        /* without a status nothing can be judged: fail the request */
        code = CURLE_BAD_FUNCTION_ARGUMENT;
        snprintf(x->slot->errbuf, sizeof x->slot->errbuf, "cannot read the response status");
    }
    if (curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME, &res.total_s) != CURLE_OK)
        res.total_s = 0; /* only a metric */
    if (code == CURLE_OK && !x->too_big && !x->is_file &&
        (res.status == 301 || res.status == 302 || res.status == 303 || res.status == 307 ||
         res.status == 308)) {
        refused = follow(x, res.status);
        if (!refused)
            return; /* the next hop runs on the same slot */
    }
    /* the slot stays ours until done() returned: the result points into it,
     * and done() may already start this endpoint's next request */
    struct slot *sl = x->slot;
    x->slot = NULL;
    if (refused > 0)
        res.result = refused;
    else
        judge(x, sl, easy, code, &res);
    res.err = res.result ? sl->msg : NULL;
    res.easy_ = easy;
    res.slot_ = x->opts.link_headers ? sl : NULL; /* else Link is read through libcurl */
    h->done(x->owner, x, &res);
    slot_put(h, sl);
}

/* Fails the transfers whose socket could not be watched, each with the
 * cause; every entry is a running transfer (finish and free undoom). */
static void fail_doomed(struct r2m_http *h)
{
    while (h->n_doomed) {
        size_t i = --h->n_doomed;
        CURL *easy = h->doomed[i];
        struct r2m_http_xfer *x = xfer_of(easy);
        if (x && x->slot)
            snprintf(x->slot->errbuf, sizeof x->slot->errbuf,
                     "cannot watch the connection's socket (epoll_ctl: %s)",
                     strerror(h->doomed_errno[i]));
        finish(h, easy, CURLE_SEND_ERROR);
    }
}

static void drain(struct r2m_http *h)
{
    CURLMsg *m;
    int left;
    fail_doomed(h);
    while ((m = curl_multi_info_read(h->multi, &left)))
        if (m->msg == CURLMSG_DONE)
            finish(h, m->easy_handle, m->data.result);
}

/* curl_multi_socket_action, and what finished. libcurl fails this call only
 * for a bad handle or out of memory; its transfers then end by timeout. */
static void socket_action(struct r2m_http *h, curl_socket_t fd, int mask)
{
    int running;
    CURLMcode mc = curl_multi_socket_action(h->multi, fd, mask, &running);
    if (mc != CURLM_OK)
        r2m_log(R2M_LOG_ERROR, "libcurl could not drive its transfers", "error",
                curl_multi_strerror(mc), NULL);
    drain(h);
}

void r2m_http_on_socket(struct r2m_http *h, int fd, uint32_t events)
{
    int mask = 0;
    if (events & EPOLLIN)
        mask |= CURL_CSELECT_IN;
    if (events & EPOLLOUT)
        mask |= CURL_CSELECT_OUT;
    if (events & (EPOLLERR | EPOLLHUP))
        mask |= CURL_CSELECT_ERR;
    socket_action(h, fd, mask);
}

void r2m_http_on_timeout(struct r2m_http *h)
{
    h->deadline = INT64_MAX;
    socket_action(h, CURL_SOCKET_TIMEOUT, 0);
}
