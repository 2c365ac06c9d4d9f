/* test_publish.c - the publisher against a real mosquitto on loopback.
 *
 * Each case starts its own broker (R2M_MOSQUITTO, else /usr/sbin/mosquitto)
 * on a free port. The cases drive the publisher the way the bridge does:
 * epoll on its eventfd, r2m_publish_dispatch on wake-ups and deadlines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
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

static pid_t start_broker_with(int port, const char *dir, const char *extra)
{
    char conf[512];
    snprintf(conf, sizeof conf, "%s/mosquitto.conf", dir);
    FILE *f = fopen(conf, "w");
    fprintf(f, "listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n%s", port, extra);
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

static pid_t start_broker(int port, const char *dir)
{
    return start_broker_with(port, dir, "");
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
    struct r2m_publish *pub;
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
    r2m_publish_free(f->pub);
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
    assert_int_equal(r2m_publish_new(&f->cfg, max_queued, &f->pub), 0);
    struct epoll_event ev = {.events = EPOLLIN};
    epoll_ctl(f->epfd, EPOLL_CTL_ADD, r2m_publish_fd(f->pub), &ev);
    assert_int_equal(r2m_publish_connect(f->pub, r2m_http_now_ms()), 0);
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
        r2m_publish_dispatch(f->pub, r2m_http_now_ms());
        if (counter)
            (*counter)++;
    }
    return cond(f);
}

static int is_connected(struct fx *f)
{
    return r2m_publish_connected(f->pub);
}

static int retry_scheduled(struct fx *f)
{
    return r2m_publish_deadline(f->pub) != INT64_MAX;
}

static int is_drained(struct fx *f)
{
    return r2m_publish_pending(f->pub) == 0;
}

static void enqueue(struct fx *f, int i)
{
    char *t = strdup("t/unit"), *p = malloc(32);
    int n = snprintf(p, 32, "{\"n\":%d}", i);
    assert_int_equal(r2m_publish_enqueue(f->pub, t, p, (size_t)n, 0, i + 1), 0);
}

static void publishes_are_acknowledged(void **state)
{
    struct fx *f = *state;
    f->broker = start_broker(f->port, f->dir);
    make_pub(f, 10000);
    assert_true(pump(f, 5000, is_connected, NULL));
    /* mosquitto announces Receive Maximum 20 by default (MQTT 5): more in
     * flight would make paho hold messages back for a second */
    assert_int_equal(r2m_publish_window(f->pub), 20);
    for (int i = 0; i < 1000; i++)
        enqueue(f, i);
    assert_int_equal(r2m_publish_pending(f->pub), 1000);
    assert_true(pump(f, 10000, is_drained, NULL));
    assert_int_equal(r2m_publish_acked(f->pub), 1000);
}

/* Each publisher hears its own acknowledgements: paho's callbacks find
 * their publisher through the context they carry, nothing process-wide
 * (they used to reach whichever publisher was created last). */
static void two_publishers_each_get_their_acks(void **state)
{
    struct fx *f = *state;
    f->broker = start_broker(f->port, f->dir);
    struct r2m_config cfg2 = f->cfg;
    cfg2.mqtt.client_id = "r2m-unit-publish-2";
    make_pub(f, 1000);
    struct r2m_publish *other;
    assert_int_equal(r2m_publish_new(&cfg2, 1000, &other), 0);
    struct epoll_event ev = {.events = EPOLLIN};
    epoll_ctl(f->epfd, EPOLL_CTL_ADD, r2m_publish_fd(other), &ev);
    assert_int_equal(r2m_publish_connect(other, r2m_http_now_ms()), 0);
    for (int i = 0; i < 100; i++) {
        enqueue(f, i);
        char *t = strdup("t/other"), *p = strdup("{}");
        assert_int_equal(r2m_publish_enqueue(other, t, p, 2, 0, i + 1), 0);
    }
    int64_t end = r2m_http_now_ms() + 10000 * (int64_t)time_scale();
    while ((r2m_publish_pending(f->pub) || r2m_publish_pending(other)) && r2m_http_now_ms() < end) {
        epoll_wait(f->epfd, &ev, 1, 20);
        r2m_publish_dispatch(f->pub, r2m_http_now_ms());
        r2m_publish_dispatch(other, r2m_http_now_ms());
    }
    assert_int_equal(r2m_publish_acked(f->pub), 100);
    assert_int_equal(r2m_publish_acked(other), 100);
    r2m_publish_free(other);
}

static void queue_has_a_ceiling(void **state)
{
    struct fx *f = *state;
    make_pub(f, 3); /* no broker: nothing can leave the queue */
    for (int i = 0; i < 3; i++)
        enqueue(f, i);
    char *t = strdup("t/unit"), *p = strdup("{}");
    assert_int_equal(r2m_publish_enqueue(f->pub, t, p, 2, 0, 0), R2M_E_TOO_BIG);
    assert_int_equal(r2m_publish_pending(f->pub), 3);
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
    assert_false(r2m_publish_connected(f->pub));
    assert_int_equal(r2m_publish_pending(f->pub), 10);
    f->broker = start_broker(f->port, f->dir);
    assert_true(pump(f, 10000, is_drained, NULL));
    assert_int_equal(r2m_publish_acked(f->pub), 10);
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
    while (r2m_publish_acked(f->pub) < 2000 && turns < 100000)
        pump(f, 1, is_drained, &turns);
    assert_true(r2m_publish_pending(f->pub) > 0);
    stop_broker(f->broker, SIGKILL);
    f->broker = 0;
    pump(f, 300, is_drained, NULL);
    assert_false(r2m_publish_connected(f->pub));
    f->broker = start_broker(f->port, f->dir);
    assert_true(pump(f, 20000, is_drained, NULL));
    /* every message acknowledged exactly once from our side */
    assert_int_equal(r2m_publish_acked(f->pub), 20000);
}

/* ---- refusals, packet sizes ---- */

/* Each MQTT 5 failure reason code is decided: the ones that refuse this one
 * message dead-letter it, the others (connection, session, rate) resend. */
static void reason_codes_are_classified(void **state)
{
    (void)state;
    static const struct {
        int code;
        const char *token;
    } permanent[] = {
        {0x80, "unspecified_error"},
        {0x81, "malformed_packet"},
        {0x83, "implementation_specific_error"},
        {0x87, "not_authorized"},
        {0x90, "topic_name_invalid"},
        {0x95, "packet_too_large"},
        {0x97, "quota_exceeded"},
        {0x99, "payload_format_invalid"},
        {0x9A, "retain_not_supported"},
        {0x9B, "qos_not_supported"},
        {-5, "invalid_utf8"},
        {-7, "topic_name_truncated"},
    };
    for (size_t i = 0; i < sizeof permanent / sizeof *permanent; i++) {
        const char *t = r2m_publish_refusal(permanent[i].code);
        if (!t || strcmp(t, permanent[i].token))
            fail_msg("code %d: expected %s, got %s", permanent[i].code, permanent[i].token,
                     t ? t : "transient");
    }
    static const int transient[] = {0,    0x82, 0x84, 0x85, 0x86, 0x88, 0x89, 0x8A,
                                    0x8B, 0x8C, 0x8D, 0x8E, 0x91, 0x93, 0x96, 0x98,
                                    0x9C, 0x9F, -1,   -3,   -11,  -12};
    for (size_t i = 0; i < sizeof transient / sizeof *transient; i++)
        if (r2m_publish_refusal(transient[i]))
            fail_msg("code %d must be transient, got %s", transient[i],
                     r2m_publish_refusal(transient[i]));
    /* every code of the family has words: none was left undecided */
    for (int c = 0x80; c <= 0xA2; c++)
        if (!strcmp(r2m_publish_code_words(5, c), "unknown reason code"))
            fail_msg("reason code 0x%02X has no entry", c);
    assert_non_null(strstr(r2m_publish_code_words(5, 0x86), "bad user name or password"));
    assert_non_null(strstr(r2m_publish_code_words(4, 4), "bad user name or password"));
    assert_non_null(strstr(r2m_publish_code_words(4, 5), "not authorized"));
    assert_non_null(strstr(r2m_publish_code_words(4, 1), "protocol version"));
    assert_non_null(strstr(r2m_publish_code_words(5, -5), "UTF-8"));
}

static void packet_size_is_the_encoded_publish(void **state)
{
    (void)state;
    /* 3.1.1, QoS 1: fixed header 1 + length 1, topic 2+3, packet id 2, payload 10 */
    assert_int_equal(r2m_publish_packet_size(4, 1, 3, 0, 10), 19);
    /* QoS 0 has no packet identifier */
    assert_int_equal(r2m_publish_packet_size(4, 0, 3, 0, 10), 17);
    /* MQTT 5: properties length (1) + properties (31: the content type) */
    assert_int_equal(r2m_publish_packet_size(5, 1, 3, 31, 10), 19 + 1 + 31);
    /* MQTT 5 without properties still has their length byte */
    assert_int_equal(r2m_publish_packet_size(5, 1, 3, 0, 10), 20);
    /* the remaining length grows from 1 to 2 bytes at 128 */
    assert_int_equal(r2m_publish_packet_size(4, 1, 0, 0, 123), 1 + 1 + 127);
    assert_int_equal(r2m_publish_packet_size(4, 1, 0, 0, 124), 1 + 2 + 128);
    /* 3 bytes from 16384, 4 from 2097152 */
    assert_int_equal(r2m_publish_packet_size(4, 1, 0, 0, 16380), 1 + 3 + 16384);
    assert_int_equal(r2m_publish_packet_size(4, 1, 0, 0, 2097148), 1 + 4 + 2097152);
}

struct dead_seen {
    int n;
    int64_t id;
    uint64_t size;
    char reason[32];
};

static void on_dead_cb(void *ctx, int64_t id, const char *topic, const char *payload, size_t len,
                       uint64_t size, const char *reason, const char *words)
{
    (void)topic;
    (void)payload;
    (void)len;
    assert_non_null(words);
    struct dead_seen *d = ctx;
    d->n++;
    d->id = id;
    d->size = size;
    snprintf(d->reason, sizeof d->reason, "%s", reason);
}

static void enqueue_sized(struct fx *f, size_t len, int64_t id)
{
    char *t = strdup("t/unit"), *p = malloc(len + 1);
    memset(p, 'x', len);
    p[len] = '\0';
    assert_int_equal(r2m_publish_enqueue(f->pub, t, p, len, 0, id), 0);
}

/* mosquitto announces max_packet_size in CONNACK (MQTT 5): a packet of
 * exactly that size is delivered, one byte more is refused before sending,
 * and what follows is delivered. Checks our size arithmetic against the
 * broker's. */
static void packet_over_broker_maximum_is_dead_lettered(void **state)
{
    struct fx *f = *state;
    f->broker = start_broker_with(f->port, f->dir, "max_packet_size 1000\n");
    make_pub(f, 100);
    struct dead_seen d = {0};
    r2m_publish_on_dead(f->pub, on_dead_cb, &d);
    assert_true(pump(f, 5000, is_connected, NULL));
    assert_int_equal(r2m_publish_max_packet(f->pub), 1000);
    /* topic 6, QoS 1, content type property 31 + its length 1 */
    size_t fit = 1000 - (1 + 2 + 2 + 6 + 2 + 1 + 31);
    assert_int_equal(r2m_publish_packet_size(5, 1, 6, 31, fit), 1000);
    enqueue_sized(f, fit, 1);
    enqueue_sized(f, fit + 1, 2);
    enqueue_sized(f, 10, 3);
    assert_true(pump(f, 10000, is_drained, NULL));
    assert_int_equal(r2m_publish_acked(f->pub), 2);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.id, 2);
    assert_int_equal(d.size, 1001);
    assert_string_equal(d.reason, "packet_too_large");
    assert_int_equal(r2m_publish_dead(f->pub), 1);
    assert_true(r2m_publish_connected(f->pub)); /* nothing too big went out */
}

/* mqtt.max_packet_size is the limit when the broker announces none, and
 * the smaller of the two wins. */
static void configured_max_packet_size_applies(void **state)
{
    struct fx *f = *state;
    f->broker = start_broker(f->port, f->dir);
    f->cfg.mqtt.version = 4;
    f->cfg.mqtt.max_packet_size = 200;
    make_pub(f, 100);
    struct dead_seen d = {0};
    r2m_publish_on_dead(f->pub, on_dead_cb, &d);
    assert_true(pump(f, 5000, is_connected, NULL));
    assert_int_equal(r2m_publish_max_packet(f->pub), 200);
    size_t fit = 200 - (1 + 2 + 2 + 6 + 2);
    enqueue_sized(f, fit + 1, 7);
    enqueue_sized(f, fit, 8);
    assert_true(pump(f, 10000, is_drained, NULL));
    assert_int_equal(r2m_publish_acked(f->pub), 1);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.id, 7);
    assert_string_equal(d.reason, "packet_too_large");
}

/* ---- a late acknowledgement ---- */

/* A broker of our own (MQTT 3.1.1, one connection) that withholds the
 * PUBACK of the first PUBLISH until the publisher has sent
 * LATE_AT - 1 more, acknowledging all those at once, and then
 * acknowledges the first one before the LATE_AT-th. Brokers may
 * acknowledge out of order (the packet id says which); paho matches them. */
#define LATE_AT 4097
struct late_broker {
    int lfd, port;
    pthread_t th;
    int first_n, held_n;      /* payload "n" of the held PUBLISHes */
    atomic_int held_released; /* the LATE_AT-th PUBACK was written */
};

static int read_full(int fd, unsigned char *b, size_t n)
{
    while (n) {
        ssize_t r = read(fd, b, n);
        if (r <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

static void puback(int fd, unsigned id)
{
    unsigned char a[4] = {0x40, 2, (unsigned char)(id >> 8), (unsigned char)id};
    if (write(fd, a, 4) != 4)
        return;
}

static void *late_broker_run(void *arg)
{
    struct late_broker *b = arg;
    int fd = accept(b->lfd, NULL, NULL);
    unsigned first = 0, n = 0;
    static unsigned char body[1 << 16];
    for (;;) {
        unsigned char h, c;
        size_t len = 0;
        if (fd < 0 || read_full(fd, &h, 1))
            break;
        for (int shift = 0;; shift += 7) {
            if (read_full(fd, &c, 1))
                goto out;
            len |= (size_t)(c & 127) << shift;
            if (!(c & 128))
                break;
        }
        if (len > sizeof body || read_full(fd, body, len))
            break;
        if (h >> 4 == 1) { /* CONNECT */
            unsigned char ack[4] = {0x20, 2, 0, 0};
            if (write(fd, ack, 4) != 4)
                break;
        } else if (h >> 4 == 12) { /* PINGREQ */
            unsigned char pong[2] = {0xD0, 0};
            if (write(fd, pong, 2) != 2)
                break;
        } else if (h >> 4 == 3 && len >= 2) { /* PUBLISH, QoS 1 */
            size_t tl = (size_t)body[0] << 8 | body[1];
            unsigned id = (unsigned)body[2 + tl] << 8 | body[3 + tl];
            int pn = 0;
            sscanf((const char *)body + 4 + tl, "{\"n\":%d}", &pn);
            n++;
            if (n == 1) {
                first = id;
                b->first_n = pn;
            } else if (n == LATE_AT) {
                b->held_n = pn;
                puback(fd, first); /* the late one */
                sleep_ms(500);     /* the publisher hears it alone */
                atomic_store(&b->held_released, 1);
                puback(fd, id);
            } else {
                puback(fd, id);
            }
        } else if (h >> 4 == 14) {
            break;
        }
    }
out:
    if (fd >= 0)
        close(fd);
    return NULL;
}

struct late_acks {
    struct late_broker *b;
    int n, first_acked, early;
};

static void on_late_ack(void *ctx, int64_t id, int64_t latency_ms)
{
    (void)latency_ms;
    struct late_acks *a = ctx;
    a->n++;
    if (id == a->b->first_n + 1)
        a->first_acked++;
    /* the broker has not acknowledged this one yet */
    if (a->b->held_n && id == a->b->held_n + 1 && !atomic_load(&a->b->held_released))
        a->early++;
}

/* An acknowledgement that arrives after thousands of later sends acks the
 * message it belongs to: not the one whose send happens to reuse the
 * place its context pointer points at. */
static void late_ack_acks_its_own_message(void **state)
{
    struct fx *f = *state;
    /* static: the broker thread may outlive a failed assertion */
    static struct late_broker b;
    b = (struct late_broker){.port = f->port};
    b.lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(b.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)f->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(b.lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(b.lfd, 1), 0);
    assert_int_equal(pthread_create(&b.th, NULL, late_broker_run, &b), 0);
    f->cfg.mqtt.version = 4;
    make_pub(f, 10000);
    struct late_acks acks = {.b = &b};
    r2m_publish_on_ack(f->pub, on_late_ack, &acks);
    assert_true(pump(f, 5000, is_connected, NULL));
    for (int i = 0; i < LATE_AT + 100; i++)
        enqueue(f, i);
    int drained = pump(f, 30000, is_drained, NULL);
    if (getenv("R2M_DEBUG"))
        fprintf(stderr, "early %d first %d n %d pending %zu\n", acks.early, acks.first_acked,
                acks.n, r2m_publish_pending(f->pub));
    assert_int_equal(acks.early, 0);
    assert_int_equal(acks.first_acked, 1);
    assert_int_equal(acks.n, LATE_AT + 100);
    assert_true(drained);
    r2m_publish_free(f->pub);
    f->pub = NULL;
    pthread_join(b.th, NULL);
    close(b.lfd);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(publishes_are_acknowledged),
        T(two_publishers_each_get_their_acks),
        T(queue_has_a_ceiling),
        T(broker_absent_at_start_then_appears),
        T(broker_killed_mid_stream_loses_nothing),
        cmocka_unit_test(reason_codes_are_classified),
        cmocka_unit_test(packet_size_is_the_encoded_publish),
        T(packet_over_broker_maximum_is_dead_lettered),
        T(configured_max_packet_size_applies),
        T(late_ack_acks_its_own_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
