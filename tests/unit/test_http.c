/* test_http.c - the fetch layer against a scripted HTTP server on loopback.
 *
 * The server runs on a thread of this test and answers one connection at a
 * time with the reply the current case scripts; the case drives libcurl
 * through the module's epoll interface exactly as the bridge does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loopback.h"
#include "r2m/error.h"
#include "r2m/http.h"

enum reply {
    R_JSON,
    R_500,
    R_CHUNKED_ENDLESS,
    R_SIZED_BIG,
    R_HANG,
    R_LINKS,
    R_BIG_HEADER,
    R_MANY_LINKS,
    R_LINKS_1XX_FOLD_TRAILER
};

static struct {
    int lfd;
    int port;
    volatile int stop;
    volatile int reply;
    char last_request[4096];
    pthread_t thread;
} srv;

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* Waits (bounded) until the client closes the connection or the test ends. */
static void wait_close(int fd)
{
    char b[256];
    for (int i = 0; i < 200 && !srv.stop; i++) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 50) > 0 && recv(fd, b, sizeof b, 0) <= 0)
            return;
    }
}

static void *serve(void *arg)
{
    (void)arg;
    while (!srv.stop) {
        struct pollfd p = {srv.lfd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept(srv.lfd, NULL, NULL);
        if (fd < 0)
            continue;
        size_t n = 0;
        srv.last_request[0] = '\0';
        while (n < sizeof srv.last_request - 1 && !strstr(srv.last_request, "\r\n\r\n")) {
            ssize_t r = recv(fd, srv.last_request + n, sizeof srv.last_request - 1 - n, 0);
            if (r <= 0)
                break;
            n += (size_t)r;
            srv.last_request[n] = '\0';
        }
        const char *body = "{\"b\":1, \"a\":[1,2]}";
        char head[256];
        switch (srv.reply) {
        case R_JSON:
            snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     strlen(body));
            send_all(fd, head, strlen(head));
            send_all(fd, body, strlen(body));
            break;
        case R_500:
            body = "<html><body>Internal Server Error</body></html>";
            snprintf(head, sizeof head,
                     "HTTP/1.1 500 Internal Server Error\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     strlen(body));
            send_all(fd, head, strlen(head));
            send_all(fd, body, strlen(body));
            break;
        case R_CHUNKED_ENDLESS: {
            const char *h = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
            send_all(fd, h, strlen(h));
            char chunk[4096 + 16];
            int k = snprintf(chunk, sizeof chunk, "1000\r\n");
            memset(chunk + k, ' ', 4096);
            memcpy(chunk + k + 4096, "\r\n", 2);
            /* at most 64 MiB, so the case ends even if the client never stops */
            for (int i = 0; i < 16384 && !srv.stop; i++) {
                ssize_t w = send(fd, chunk, (size_t)k + 4098, MSG_NOSIGNAL);
                if (w <= 0)
                    break;
            }
            break;
        }
        case R_SIZED_BIG: {
            const char *h = "HTTP/1.1 200 OK\r\nContent-Length: 10737418240\r\n\r\n[";
            send_all(fd, h, strlen(h));
            wait_close(fd);
            break;
        }
        case R_HANG:
            wait_close(fd);
            break;
        case R_LINKS: {
            const char *h = "HTTP/1.1 200 OK\r\nLink: </p1>; rel=self\r\nX-Other: 1\r\n"
                            "link: </p2>; title=\"a, b\"; rel=next\r\nContent-Length: 2\r\n"
                            "Connection: close\r\n\r\n{}";
            send_all(fd, h, strlen(h));
            break;
        }
        case R_MANY_LINKS: {
            /* 20,000 Link field lines (220 KB, under libcurl's 300 KB for
             * all headers of a response) */
            const char *h = "HTTP/1.1 200 OK\r\n";
            send_all(fd, h, strlen(h));
            static char many[20000 * 11];
            for (size_t i = 0; i < 20000; i++)
                memcpy(many + i * 11, "Link: <x>\r\n", 11);
            send_all(fd, many, sizeof many);
            h = "Content-Length: 2\r\nConnection: close\r\n\r\n{}";
            send_all(fd, h, strlen(h));
            break;
        }
        case R_LINKS_1XX_FOLD_TRAILER: {
            /* an Early Hints Link is not the answer's; a folded line
             * continues its field; a trailer is not a header */
            const char *h = "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                            "HTTP/1.1 200 OK\r\nLINK:   </p2>;\r\n rel=next  \r\n"
                            "Transfer-Encoding: chunked\r\nTrailer: Link\r\n"
                            "Connection: close\r\n\r\n2\r\n{}\r\n0\r\n"
                            "Link: </p3>; rel=next\r\n\r\n";
            send_all(fd, h, strlen(h));
            break;
        }
        case R_BIG_HEADER: {
            /* one 200 KB header line: over libcurl's CURL_MAX_HTTP_HEADER */
            const char *h = "HTTP/1.1 200 OK\r\nX-Big: ";
            send_all(fd, h, strlen(h));
            static char big[200 * 1000];
            memset(big, 'a', sizeof big);
            send_all(fd, big, sizeof big);
            h = "\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
            send_all(fd, h, strlen(h));
            break;
        }
        }
        close(fd);
    }
    return NULL;
}

static int setup(void **state)
{
    (void)state;
    memset(&srv, 0, sizeof srv);
    srv.lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(srv.lfd, (struct sockaddr *)&a, sizeof a) || listen(srv.lfd, 16))
        return -1;
    socklen_t len = sizeof a;
    getsockname(srv.lfd, (struct sockaddr *)&a, &len);
    srv.port = ntohs(a.sin_port);
    return pthread_create(&srv.thread, NULL, serve, NULL);
}

static int teardown(void **state)
{
    (void)state;
    srv.stop = 1;
    pthread_join(srv.thread, NULL);
    close(srv.lfd);
    return 0;
}

/* ---- a minimal copy of the bridge's loop ---- */

struct outcome {
    int done;
    int result;
    long status;
    char body[256];
    size_t len;
    char err[256];
    char link[3][64]; /* Link field lines, read inside done */
    int n_link;
    size_t all_links; /* every Link field line, counted inside done */
};

static void on_done(void *owner, struct r2m_http_xfer *x, const struct r2m_http_result *res)
{
    (void)x;
    struct outcome *o = owner;
    o->done++;
    o->result = res->result;
    o->status = res->status;
    o->len = res->len;
    if (res->body)
        snprintf(o->body, sizeof o->body, "%.*s", (int)(res->len < 255 ? res->len : 255),
                 res->body);
    snprintf(o->err, sizeof o->err, "%s", res->err ? res->err : "");
    const char *v;
    for (o->n_link = 0; o->n_link < 3 && (v = r2m_http_header(res, "Link", (size_t)o->n_link));
         o->n_link++)
        snprintf(o->link[o->n_link], sizeof o->link[0], "%s", v);
    for (o->all_links = 0; r2m_http_header(res, "Link", o->all_links); o->all_links++)
        ;
}

static struct outcome fetch_url(struct r2m_endpoint_cfg *cfg, const char *page_url);

/* The transfer options of fetch (by default Link lines collected and
 * conditional GET), and a committed ETag to start with (NULL: none). */
static struct r2m_http_opts fetch_opts = {.link_headers = 1, .conditional = 1};
static const char *fetch_etag;

static struct outcome fetch(struct r2m_endpoint_cfg *cfg)
{
    return fetch_url(cfg, NULL);
}

/* One request of cfg's endpoint; page_url: a next page's URL, or NULL. */
static struct outcome fetch_url(struct r2m_endpoint_cfg *cfg, const char *page_url)
{
    struct outcome o = {0};
    int ep = epoll_create1(0);
    struct r2m_http *h;
    struct r2m_http_xfer *x;
    assert_int_equal(r2m_http_new(ep, on_done, &h), 0);
    assert_int_equal(r2m_http_xfer_new(h, cfg, &fetch_opts, &o, &x), 0);
    if (fetch_etag)
        r2m_http_set_validators(x, fetch_etag, NULL);
    assert_int_equal(r2m_http_start_url(x, page_url), 0);
    assert_int_equal(r2m_http_start(x), R2M_E_INVALID); /* one poll at a time */
    assert_int_equal(r2m_http_active(h), 1);
    int64_t end = r2m_http_now_ms() + 10000;
    while (!o.done && r2m_http_now_ms() < end) {
        int64_t now = r2m_http_now_ms();
        int64_t dl = r2m_http_deadline(h);
        int timeout = dl == INT64_MAX ? 100 : (int)(dl - now < 0 ? 0 : dl - now);
        struct epoll_event evs[8];
        int n = epoll_wait(ep, evs, 8, timeout > 100 ? 100 : timeout);
        for (int i = 0; i < n; i++)
            r2m_http_on_socket(h, (int)(evs[i].data.u64 & 0xffffffffu), evs[i].events);
        if (r2m_http_now_ms() >= r2m_http_deadline(h))
            r2m_http_on_timeout(h);
    }
    assert_int_equal(o.done, 1);
    assert_int_equal(r2m_http_active(h), 0);
    assert_false(r2m_http_running(x));
    r2m_http_xfer_free(x);
    r2m_http_free(h);
    close(ep);
    return o;
}

static char url[256];
static struct r2m_header hdr = {"X-Tenant", "acme"};

static struct r2m_endpoint_cfg endpoint(const char *path)
{
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", srv.port, path);
    struct r2m_endpoint_cfg c = {
        .name = "t",
        .url = url,
        .method = "GET",
        .headers = &hdr,
        .n_headers = 1,
        .interval_ms = 1000,
        .timeout_ms = 2000,
        .max_body = 1024 * 1024,
        .topic = "{prefix}/{endpoint}",
    };
    return c;
}

static void ok_body_and_headers(void **state)
{
    (void)state;
    srv.reply = R_JSON;
    struct r2m_endpoint_cfg c = endpoint("/doc?x=1");
    struct outcome o = fetch(&c);
    assert_int_equal(o.result, 0);
    assert_int_equal(o.status, 200);
    assert_string_equal(o.body, "{\"b\":1, \"a\":[1,2]}");
    assert_non_null(strstr(srv.last_request, "GET /doc?x=1 HTTP/1.1\r\n"));
    assert_non_null(strstr(srv.last_request, "X-Tenant: acme\r\n"));
    assert_non_null(strstr(srv.last_request, "Accept: application/json\r\n"));
    assert_non_null(strstr(srv.last_request, "User-Agent: rest2mqtt/"));
}

static void status_500_is_failure(void **state)
{
    (void)state;
    srv.reply = R_500;
    struct r2m_endpoint_cfg c = endpoint("/fail");
    struct outcome o = fetch(&c);
    assert_int_equal(o.result, R2M_E_HTTP_STATUS);
    assert_int_equal(o.status, 500);
    assert_string_equal(o.err, "HTTP status 500");
    assert_int_equal(o.len, 0); /* the error page never reaches a poller */
}

static void unsized_body_cut_at_max_body(void **state)
{
    (void)state;
    srv.reply = R_CHUNKED_ENDLESS;
    struct r2m_endpoint_cfg c = endpoint("/endless");
    c.max_body = 64 * 1024;
    struct outcome o = fetch(&c);
    assert_int_equal(o.result, R2M_E_BODY_TOO_LARGE);
    assert_non_null(strstr(o.err, "max_body (65536 bytes)"));
}

static void sized_body_over_max_body(void **state)
{
    (void)state;
    srv.reply = R_SIZED_BIG; /* announces 10 GiB */
    struct r2m_endpoint_cfg c = endpoint("/big");
    struct outcome o = fetch(&c);
    assert_int_equal(o.result, R2M_E_BODY_TOO_LARGE);
}

static void hanging_server_times_out(void **state)
{
    (void)state;
    srv.reply = R_HANG;
    struct r2m_endpoint_cfg c = endpoint("/hang");
    c.timeout_ms = 300;
    int64_t t0 = r2m_http_now_ms();
    struct outcome o = fetch(&c);
    assert_int_equal(o.result, R2M_E_TIMEOUT);
    assert_string_equal(o.err, "timed out after 300 ms");
    assert_true(r2m_http_now_ms() - t0 < 5000);
}

/* epoll_ctl failing for a transfer's socket fails that transfer at once,
 * with the cause, instead of leaving it to wait until its timeout. */
static void unwatchable_socket_fails_the_transfer(void **state)
{
    (void)state;
    srv.reply = R_JSON;
    struct r2m_endpoint_cfg c = endpoint("/doc");
    c.timeout_ms = 5000;
    struct outcome o = {0};
    int notep = eventfd(0, 0); /* not an epoll fd: every epoll_ctl fails */
    assert_true(notep >= 0);
    struct r2m_http *h;
    struct r2m_http_xfer *x;
    assert_int_equal(r2m_http_new(notep, on_done, &h), 0);
    assert_int_equal(r2m_http_xfer_new(h, &c, &fetch_opts, &o, &x), 0);
    assert_int_equal(r2m_http_start(x), 0);
    int64_t t0 = r2m_http_now_ms();
    while (!o.done && r2m_http_now_ms() - t0 < 4000) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        if (r2m_http_now_ms() >= r2m_http_deadline(h))
            r2m_http_on_timeout(h);
    }
    assert_int_equal(o.done, 1);
    assert_int_equal(o.result, R2M_E_HTTP);
    assert_non_null(strstr(o.err, "epoll_ctl"));
    assert_true(r2m_http_now_ms() - t0 < 2000);
    assert_int_equal(r2m_http_active(h), 0);
    r2m_http_xfer_free(x);
    r2m_http_free(h);
    close(notep);
}

static void connection_refused(void **state)
{
    (void)state;
    struct r2m_endpoint_cfg c = endpoint("/");
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", loopback_free_port());
    struct outcome o = fetch(&c);
    assert_int_equal(o.result, R2M_E_HTTP);
    assert_true(o.err[0] != '\0');
}

static void file_url(void **state)
{
    (void)state;
    char path[] = "/tmp/r2m-test-http-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "[1,2,3]", 7), 7);
    close(fd);
    struct r2m_endpoint_cfg c = endpoint("/");
    snprintf(url, sizeof url, "file://%s", path);
    struct outcome o = fetch(&c);
    assert_int_equal(o.result, 0);
    assert_string_equal(o.body, "[1,2,3]");
    unlink(path);
    o = fetch(&c); /* the file is gone now */
    assert_int_equal(o.result, R2M_E_HTTP);
}

/* ---- origins: the one comparison behind redirects and pagination -------- */

/* auth: query adds the key to a next page on the origin unless that page's
 * query already has a parameter of that name - not merely the name
 * somewhere in the URL ("key" in "/monkeys", in a value, in another name). */
static void query_key_added_to_pages_unless_the_parameter_is_there(void **state)
{
    (void)state;
    srv.reply = R_JSON;
    struct r2m_endpoint_cfg c = endpoint("/monkeys");
    c.auth.type = R2M_AUTH_QUERY;
    c.auth.name = "key";
    c.auth.value = "Qk-1";
    static const struct {
        const char *page, *want;
    } cases[] = {
        {"/monkeys?p=2", "GET /monkeys?p=2&key=Qk-1 HTTP"},
        {"/monkeys?monkey=1&p=2", "GET /monkeys?monkey=1&p=2&key=Qk-1 HTTP"},
        {"/items?after=key", "GET /items?after=key&key=Qk-1 HTTP"},
        {"/items?xkey=1", "GET /items?xkey=1&key=Qk-1 HTTP"},
        {"/items#key", "GET /items?key=Qk-1 HTTP"},
        /* the server repeats the key itself (any spelling): sent as it is */
        {"/items?p=2&key=Qk-1", "GET /items?p=2&key=Qk-1 HTTP"},
        {"/items?k%65y=Qk-1&p=3", "GET /items?k%65y=Qk-1&p=3 HTTP"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char page[300];
        snprintf(page, sizeof page, "http://127.0.0.1:%d%s", srv.port, cases[i].page);
        struct outcome o = fetch_url(&c, page);
        assert_int_equal(o.result, 0);
        if (!strstr(srv.last_request, cases[i].want))
            fail_msg("page %s: sent %.80s, want %s", cases[i].page, srv.last_request,
                     cases[i].want);
    }
}

static void origin_table(void **state)
{
    (void)state;
    static const struct {
        const char *a, *b;
        int same;
    } cases[] = {
        /* default ports are spelled out */
        {"https://h", "https://h:443", 1},
        {"http://h/", "http://h:80/x?y=1#z", 1},
        {"https://h:8443/", "https://h/", 0},
        /* scheme and host compare case-insensitively */
        {"HTTPS://API.Example.COM/a", "https://api.example.com/b", 1},
        /* https -> http is another origin, as is another port or host */
        {"https://h/", "http://h/", 0},
        {"http://h:80/", "http://h:8080/", 0},
        {"http://api.example/", "http://api.example.evil/", 0},
        {"http://api.example/", "http://evil/api.example", 0},
        /* userinfo is not part of the origin and cannot smuggle a host in */
        {"https://user:pw@h/", "https://h/", 1},
        {"https://h/", "https://h@evil/", 0},
        {"https://h/", "https://h:443@evil/", 0},
        {"https://h/", "https://h%40evil/", 0},
        /* IDN: the Unicode and the punycode spelling are one host */
        {"https://b\xc3\xbc"
         "cher.example/",
         "https://xn--bcher-kva.example/", 1},
        {"https://B\xc3\x9c"
         "CHER.example/",
         "https://xn--bcher-kva.example/", 1},
        {"https://b\xc3\xbc"
         "cher.example/",
         "https://bucher.example/", 0},
        /* IPv4 spellings libcurl would connect to the same address */
        {"http://127.0.0.1/", "http://127.1/", 1},
        {"http://[::1]:80/", "http://[::1]/", 1},
        {"http://[::1]/", "http://127.0.0.1/", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char oa[R2M_HTTP_ORIGIN_MAX], ob[R2M_HTTP_ORIGIN_MAX];
        int ra = r2m_http_origin(cases[i].a, oa, sizeof oa);
        int rb = r2m_http_origin(cases[i].b, ob, sizeof ob);
        int same = !ra && !rb && !strcmp(oa, ob);
        if (same != cases[i].same)
            fail_msg("%s (%s) vs %s (%s): expected %s origins", cases[i].a, ra ? "invalid" : oa,
                     cases[i].b, rb ? "invalid" : ob, cases[i].same ? "the same" : "different");
    }
    char o[R2M_HTTP_ORIGIN_MAX];
    assert_int_equal(r2m_http_origin("https://U:P@Example.com/x", o, sizeof o), 0);
    assert_string_equal(o, "https://example.com:443");
    /* not http(s), or no URL at all: no origin */
    assert_int_equal(r2m_http_origin("file:///etc/passwd", o, sizeof o), R2M_E_INVALID);
    assert_int_equal(r2m_http_origin("ftp://h/", o, sizeof o), R2M_E_INVALID);
    assert_int_equal(r2m_http_origin("not a url", o, sizeof o), R2M_E_INVALID);
    assert_int_equal(r2m_http_origin(NULL, o, sizeof o), R2M_E_INVALID);
    assert_int_equal(r2m_http_origin("https://h/", o, 8), R2M_E_INVALID);
}

static void link_field_lines_are_read_raw(void **state)
{
    (void)state;
    srv.reply = R_LINKS;
    struct r2m_endpoint_cfg c = endpoint("/links");
    struct outcome o = fetch(&c);
    assert_int_equal(o.result, 0);
    assert_int_equal(o.n_link, 2); /* both lines, in order, any spelling of the name */
    assert_string_equal(o.link[0], "</p1>; rel=self");
    assert_string_equal(o.link[1], "</p2>; title=\"a, b\"; rel=next");
}

/* Reading every Link field line of an answer costs time linear in their
 * number: a hostile API sending 20,000 of them must not stall the one
 * event loop every endpoint shares (libcurl's curl_easy_header walks all
 * headers per call: reading them one by one was quadratic, ~14 s here). */
static void many_link_lines_read_in_linear_time(void **state)
{
    (void)state;
    srv.reply = R_MANY_LINKS;
    struct r2m_endpoint_cfg c = endpoint("/many");
    int64_t t0 = r2m_http_now_ms();
    struct outcome o = fetch(&c);
    int64_t ms = r2m_http_now_ms() - t0;
    assert_int_equal(o.result, 0);
    assert_int_equal(o.all_links, 20000);
    assert_string_equal(o.link[2], "<x>");
    if (ms > 1500)
        fail_msg("reading 20,000 Link lines took %lld ms", (long long)ms);
}

static void link_lines_of_the_answer_only(void **state)
{
    (void)state;
    srv.reply = R_LINKS_1XX_FOLD_TRAILER;
    struct r2m_endpoint_cfg c = endpoint("/hints");
    struct outcome o = fetch(&c);
    assert_int_equal(o.result, 0);
    assert_int_equal(o.all_links, 1);
    assert_string_equal(o.link[0], "</p2>; rel=next");
}

/* Without link_headers the Link lines are not collected, and still read
 * (through libcurl); without conditional no validator is sent or kept. */
static void transfer_options_decide_links_and_validators(void **state)
{
    (void)state;
    srv.reply = R_LINKS;
    struct r2m_endpoint_cfg c = endpoint("/links");
    fetch_opts = (struct r2m_http_opts){.link_headers = 0, .conditional = 0};
    fetch_etag = "\"v1\"";
    struct outcome o = fetch(&c);
    assert_int_equal(o.result, 0);
    assert_int_equal(o.n_link, 2);
    assert_string_equal(o.link[1], "</p2>; title=\"a, b\"; rel=next");
    assert_null(strstr(srv.last_request, "If-None-Match"));

    fetch_opts.conditional = 1;
    o = fetch(&c);
    assert_int_equal(o.result, 0);
    assert_non_null(strstr(srv.last_request, "If-None-Match: \"v1\"\r\n"));
    fetch_opts = (struct r2m_http_opts){.link_headers = 1, .conditional = 1};
    fetch_etag = NULL;
}

static void header_over_curls_limit_says_so(void **state)
{
    (void)state;
    srv.reply = R_BIG_HEADER;
    struct r2m_endpoint_cfg c = endpoint("/bighead");
    struct outcome o = fetch(&c);
    assert_int_equal(o.result, R2M_E_HTTP);
    assert_non_null(strstr(o.err, "response header larger than curl's limit of 100 KiB"));
}

static void retry_after_forms(void **state)
{
    (void)state;
    const int64_t now = 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */
    static const struct {
        const char *v;
        int64_t max, want;
        int bad;
    } cases[] = {
        {"120", 300000, 120000, 0},
        {" 2\t", 300000, 2000, 0},
        {"0", 300000, 0, 0},
        {"301", 300000, 300000, 0},                           /* clamped to max_backoff */
        {"99999999999999999999999999", 300000, 300000, 0},    /* no overflow */
        {"9223372036854775807", 0, INT64_MAX, 0},             /* no cap: saturates */
        {"Sun, 06 Nov 1994 08:51:37 GMT", 300000, 120000, 0}, /* IMF-fixdate */
        {"Sunday, 06-Nov-94 08:50:37 GMT", 300000, 60000, 0}, /* RFC 850 */
        {"Sun Nov  6 08:50:07 1994", 300000, 30000, 0},       /* asctime */
        {"Sun Nov 16 08:49:37 1994", 300000, 300000, 0},      /* 10 days: clamped */
        {"Sun, 06 Nov 1994 08:00:00 GMT", 300000, 0, 0},      /* past: now */
        {"Tue, 01 Jan 2999 00:00:00 GMT", 300000, 300000, 0},
        {"", 300000, 0, 1},
        {"soon", 300000, 0, 1},
        {"-5", 300000, 0, 1},
        {"1.5", 300000, 0, 1},
        {"120 seconds", 300000, 0, 1},
        {"0x10", 300000, 0, 1},
        {"Sun, 06 Nov 1994 08:51:37 UTC", 300000, 0, 1},
        {"Sun, 32 Nov 1994 08:51:37 GMT", 300000, 0, 1},
        {"Sun, 06 Nov 1994 25:51:37 GMT", 300000, 0, 1},
        {"Sun, 06 Nov 1994 08:51:37 GMT trailing", 300000, 0, 1},
        {"Sun, 6 Nov 1994 08:51:37 GMT", 300000, 0, 1},
        {"06 Nov 1994 08:51:37 GMT", 300000, 0, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int bad = -1;
        int64_t ms = r2m_http_retry_after(cases[i].v, strlen(cases[i].v), now, cases[i].max, &bad);
        if (ms != cases[i].want || bad != cases[i].bad)
            fail_msg("Retry-After \"%s\": %lld ms, bad %d; want %lld, bad %d", cases[i].v,
                     (long long)ms, bad, (long long)cases[i].want, cases[i].bad);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ok_body_and_headers),
        cmocka_unit_test(status_500_is_failure),
        cmocka_unit_test(unsized_body_cut_at_max_body),
        cmocka_unit_test(sized_body_over_max_body),
        cmocka_unit_test(hanging_server_times_out),
        cmocka_unit_test(connection_refused),
        cmocka_unit_test(unwatchable_socket_fails_the_transfer),
        cmocka_unit_test(file_url),
        cmocka_unit_test(origin_table),
        cmocka_unit_test(query_key_added_to_pages_unless_the_parameter_is_there),
        cmocka_unit_test(link_field_lines_are_read_raw),
        cmocka_unit_test(many_link_lines_read_in_linear_time),
        cmocka_unit_test(link_lines_of_the_answer_only),
        cmocka_unit_test(transfer_options_decide_links_and_validators),
        cmocka_unit_test(header_over_curls_limit_says_so),
        cmocka_unit_test(retry_after_forms),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
