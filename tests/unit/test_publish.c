/* test_publish.c - the publisher against a real mosquitto on loopback.
 *
 * Each case starts its own broker (R2M_MOSQUITTO, else /usr/sbin/mosquitto)
 * on a free port. The cases drive the publisher the way the bridge does:
 * epoll on its eventfd, r2m_pub_dispatch on wake-ups and deadlines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "r2m/config.h"
#include "loopback.h"
#include "r2m/error.h"
#include "r2m/http.h"
#include "r2m/log.h"
#include "r2m/publish.h"

static const char *mosquitto_bin(void)
{
    const char *m = getenv("R2M_MOSQUITTO");
    return m && *m ? m : "/usr/sbin/mosquitto";
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static pid_t start_broker(int port, const char *dir)
{
    char conf[512];
    snprintf(conf, sizeof conf, "%s/mosquitto.conf", dir);
    FILE *f = fopen(conf, "w");
    fprintf(f, "listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n", port);
    fclose(f);
    pid_t pid = fork();
    if (pid == 0) {
        freopen("/dev/null", "w", stderr);
        freopen("/dev/null", "w", stdout);
        execl(mosquitto_bin(), "mosquitto", "-c", conf, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100 && !loopback_port_open(port); i++)
        sleep_ms(50);
    return pid;
}

static void stop_broker(pid_t pid, int sig)
{
    if (pid <= 0)
        return;
    kill(pid, sig);
    waitpid(pid, NULL, 0);
}

struct fx {
    struct r2m_config cfg;
    char url[64];
    char dir[64];
    int port;
    pid_t broker;
    struct r2m_pub *pub;
    int epfd;
};

static int setup(void **state)
{
    if (access(mosquitto_bin(), X_OK) != 0) {
        fprintf(stderr, "mosquitto not found at %s\n", mosquitto_bin());
        return -1;
    }
    struct fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/r2m-test-pub-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    f->port = loopback_free_port();
    snprintf(f->url, sizeof f->url, "mqtt://127.0.0.1:%d", f->port);
    f->cfg.mqtt.url = f->url;
    f->cfg.mqtt.client_id = "r2m-unit-publish";
    f->cfg.mqtt.version = 5;
    f->cfg.mqtt.qos = 1;
    f->cfg.mqtt.keepalive_ms = 5000;
    f->cfg.mqtt.topic_prefix = "t";
    f->epfd = epoll_create1(0);
    r2m_log_setup(getenv("R2M_DEBUG") ? R2M_LOG_DEBUG : R2M_LOG_ERROR, R2M_LOG_TEXT);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    r2m_pub_free(f->pub);
    stop_broker(f->broker, SIGTERM);
    close(f->epfd);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
}

static void make_pub(struct fx *f, size_t max_queued)
{
    assert_int_equal(r2m_pub_new(&f->pub, &f->cfg, max_queued), 0);
    struct epoll_event ev = {.events = EPOLLIN};
    epoll_ctl(f->epfd, EPOLL_CTL_ADD, r2m_pub_fd(f->pub), &ev);
    assert_int_equal(r2m_pub_connect(f->pub, r2m_http_now_ms()), 0);
}

/* Turns the loop until cond() holds or ms pass; returns cond(). */
/* Deadlines stretch by R2M_TEST_TIME_SCALE (tests/run --valgrind sets it:
 * under valgrind, 20000 publishes take far longer than 20 s). */
static int time_scale(void)
{
    const char *s = getenv("R2M_TEST_TIME_SCALE");
    int k = s ? atoi(s) : 1;
    return k > 0 ? k : 1;
}

static int pump(struct fx *f, int ms, int (*cond)(struct fx *), int *counter)
{
    int64_t end = r2m_http_now_ms() + (int64_t)ms * time_scale();
    while (!cond(f) && r2m_http_now_ms() < end) {
        struct epoll_event ev;
        epoll_wait(f->epfd, &ev, 1, 20);
        r2m_pub_dispatch(f->pub, r2m_http_now_ms());
        if (counter)
            (*counter)++;
    }
    return cond(f);
}

static int is_connected(struct fx *f)
{
    return r2m_pub_connected(f->pub);
}

static int retry_scheduled(struct fx *f)
{
    return r2m_pub_deadline(f->pub) != INT64_MAX;
}

static int is_drained(struct fx *f)
{
    return r2m_pub_pending(f->pub) == 0;
}

static void enqueue(struct fx *f, int i)
{
    char *t = strdup("t/unit"), *p = malloc(32);
    int n = snprintf(p, 32, "{\"n\":%d}", i);
    assert_int_equal(r2m_pub_enqueue(f->pub, t, p, (size_t)n, 0, i + 1), 0);
}

static void publishes_are_acknowledged(void **state)
{
    struct fx *f = *state;
    f->broker = start_broker(f->port, f->dir);
    make_pub(f, 10000);
    assert_true(pump(f, 5000, is_connected, NULL));
    /* mosquitto announces Receive Maximum 20 by default (MQTT 5): more in
     * flight would make paho hold messages back for a second */
    assert_int_equal(r2m_pub_window(f->pub), 20);
    for (int i = 0; i < 1000; i++)
        enqueue(f, i);
    assert_int_equal(r2m_pub_pending(f->pub), 1000);
    assert_true(pump(f, 10000, is_drained, NULL));
    assert_int_equal(r2m_pub_acked(f->pub), 1000);
}

static void queue_has_a_ceiling(void **state)
{
    struct fx *f = *state;
    make_pub(f, 3); /* no broker: nothing can leave the queue */
    for (int i = 0; i < 3; i++)
        enqueue(f, i);
    char *t = strdup("t/unit"), *p = strdup("{}");
    assert_int_equal(r2m_pub_enqueue(f->pub, t, p, 2, 0, 0), R2M_E_TOO_BIG);
    assert_int_equal(r2m_pub_pending(f->pub), 3);
}

static void broker_absent_at_start_then_appears(void **state)
{
    struct fx *f = *state;
    make_pub(f, 100);
    for (int i = 0; i < 10; i++)
        enqueue(f, i);
    /* the connect fails; a retry is scheduled, the messages wait (wait for
     * the retry, not for a fixed time: under valgrind the retry itself may
     * already be under way after any fixed time) */
    assert_true(pump(f, 300, retry_scheduled, NULL));
    assert_false(r2m_pub_connected(f->pub));
    assert_int_equal(r2m_pub_pending(f->pub), 10);
    f->broker = start_broker(f->port, f->dir);
    assert_true(pump(f, 10000, is_drained, NULL));
    assert_int_equal(r2m_pub_acked(f->pub), 10);
}

static void broker_killed_mid_stream_loses_nothing(void **state)
{
    struct fx *f = *state;
    f->broker = start_broker(f->port, f->dir);
    make_pub(f, 100000);
    assert_true(pump(f, 5000, is_connected, NULL));
    for (int i = 0; i < 20000; i++)
        enqueue(f, i);
    /* let some go out, then kill the broker while messages are in flight */
    int turns = 0;
    while (r2m_pub_acked(f->pub) < 2000 && turns < 100000)
        pump(f, 1, is_drained, &turns);
    assert_true(r2m_pub_pending(f->pub) > 0);
    stop_broker(f->broker, SIGKILL);
    f->broker = 0;
    pump(f, 300, is_drained, NULL);
    assert_false(r2m_pub_connected(f->pub));
    f->broker = start_broker(f->port, f->dir);
    assert_true(pump(f, 20000, is_drained, NULL));
    /* every message acknowledged exactly once from our side */
    assert_int_equal(r2m_pub_acked(f->pub), 20000);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(publishes_are_acknowledged),
        T(queue_has_a_ceiling),
        T(broker_absent_at_start_then_appears),
        T(broker_killed_mid_stream_loses_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
