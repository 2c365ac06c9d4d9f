/* test_metrics.c - histograms and the HTTP server driven from our own epoll. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loopback.h"
#include "r2m/error.h"
#include "r2m/metrics.h"

static void histogram_buckets_are_cumulative(void **state)
{
    (void)state;
    struct r2m_metrics_histo h = {0};
    r2m_metrics_histo_observe(&h, 0.0005); /* <= 1 ms */
    r2m_metrics_histo_observe(&h, 0.001);  /* le is inclusive */
    r2m_metrics_histo_observe(&h, 0.3);
    r2m_metrics_histo_observe(&h, 100); /* only +Inf */
    struct r2m_buf b;
    r2m_buf_init(&b, 1 << 16);
    assert_int_equal(r2m_metrics_histo_render(&h, "x_seconds", "endpoint=\"a\"", &b), 0);
    assert_non_null(strstr(b.data, "x_seconds_bucket{endpoint=\"a\",le=\"0.001\"} 2\n"));
    assert_non_null(strstr(b.data, "x_seconds_bucket{endpoint=\"a\",le=\"0.25\"} 2\n"));
    assert_non_null(strstr(b.data, "x_seconds_bucket{endpoint=\"a\",le=\"0.5\"} 3\n"));
    assert_non_null(strstr(b.data, "x_seconds_bucket{endpoint=\"a\",le=\"30\"} 3\n"));
    assert_non_null(strstr(b.data, "x_seconds_bucket{endpoint=\"a\",le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(b.data, "x_seconds_sum{endpoint=\"a\"} 100.301500\n"));
    assert_non_null(strstr(b.data, "x_seconds_count{endpoint=\"a\"} 4\n"));
    r2m_buf_reset(&b);
    assert_int_equal(r2m_metrics_histo_render(&h, "y", "", &b), 0);
    assert_non_null(strstr(b.data, "y_bucket{le=\"+Inf\"} 4\ny_sum 100.301500\ny_count 4\n"));
    r2m_buf_free(&b);
}

static int hits;

static void handler(void *ctx, const char *path, struct r2m_buf *out, int *status,
                    const char **ctype)
{
    (void)ctx;
    hits++;
    if (!strcmp(path, "/healthz")) {
        *status = 503;
        *ctype = "application/json";
        r2m_buf_puts(out, "{\"status\":\"unhealthy\"}");
    } else {
        *status = 200;
        r2m_buf_puts(out, "up 1\n");
    }
}

/* Sends a request and turns "the loop" until the answer is complete. */
static void request(struct r2m_metrics *m, int epfd, int port, const char *path, char *resp,
                    size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char req[256];
    int n =
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    assert_int_equal(write(fd, req, (size_t)n), n);
    size_t got = 0;
    for (int i = 0; i < 400; i++) {
        struct epoll_event ev;
        if (epoll_wait(epfd, &ev, 1, 5) > 0)
            assert_int_equal(ev.data.u64, 42);
        r2m_metrics_run(m);
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 0) > 0) {
            ssize_t r = read(fd, resp + got, cap - 1 - got);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
    }
    resp[got] = '\0';
    close(fd);
}

static void serves_from_the_callers_loop(void **state)
{
    (void)state;
    int epfd = epoll_create1(0);
    int port = loopback_free_port();
    char listen[32], err[256];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    struct r2m_metrics *m = NULL;
    assert_int_equal(r2m_metrics_new(listen, epfd, 42, handler, NULL, &m, err, sizeof err), 0);
    char resp[4096];
    request(m, epfd, port, "/metrics", resp, sizeof resp);
    assert_non_null(strstr(resp, "HTTP/1.1 200"));
    assert_non_null(strstr(resp, "\r\n\r\nup 1\n"));
    request(m, epfd, port, "/healthz", resp, sizeof resp);
    assert_non_null(strstr(resp, "HTTP/1.1 503"));
    assert_non_null(strstr(resp, "Content-Type: application/json"));
    assert_int_equal(hits, 2);
    /* the port is taken now: a second server reports it clearly */
    struct r2m_metrics *m2 = NULL;
    assert_int_equal(r2m_metrics_new(listen, epfd, 43, handler, NULL, &m2, err, sizeof err),
                     R2M_E_SYSTEM);
    assert_non_null(strstr(err, listen));
    r2m_metrics_free(m);
    close(epfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(histogram_buckets_are_cumulative),
        cmocka_unit_test(serves_from_the_callers_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
