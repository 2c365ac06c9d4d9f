/* publish.c - paho MQTTAsync behind a queue, an eventfd and the loop thread. */
#include "r2m/publish.h"

#include <MQTTAsync.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "r2m/buf.h"
#include "r2m/error.h"
#include "r2m/log.h"
#include "r2m/topic.h"

enum report_kind { REP_CONNECTED, REP_CONNECT_FAILED, REP_LOST, REP_PUB_OK, REP_PUB_FAIL };

struct report {
    int kind;
    int code;
    uint64_t send_id;
};

struct msg {
    struct msg *next;
    char *topic;
    char *payload;
    size_t len;
    uint64_t seq;     /* enqueue order */
    uint64_t send_id; /* identifies one send attempt; stale callbacks match nothing */
    int64_t id;       /* outbox row, 0 if none */
    int64_t enq_ms;   /* monotonic time of enqueueing, for the latency metric */
    int retained;
};

enum conn_state { ST_IDLE, ST_CONNECTING, ST_UP, ST_DOWN };

struct r2m_pub {
    const struct r2m_config *cfg;
    MQTTAsync client;
    int efd;
    int state;
    int ever_connected;
    int64_t retry_at; /* when to try connecting again (ST_DOWN) */
    int64_t backoff_ms;
    int64_t hold_until; /* pause after a rejected publish */
    uint64_t rng;
    char *status_topic;
    char *uri;

    struct msg *head, *tail; /* waiting, oldest first */
    size_t queued, max_queued;
    struct msg *inflight[R2M_PUB_WINDOW];
    size_t n_inflight;
    size_t window; /* R2M_PUB_WINDOW, or less when the broker's Receive Maximum is */
    uint64_t next_seq, next_send_id, acked;
    r2m_pub_ack_fn *on_ack;
    void *ack_ctx;

    pthread_mutex_t lock; /* guards reports only */
    struct report *reports;
    size_t n_reports, cap_reports;
    int report_overflow;
};

static int64_t mono_ms(void);

/* ---- paho threads: only record and wake ---- */

static void report(struct r2m_pub *p, int kind, int code, uint64_t send_id)
{
    pthread_mutex_lock(&p->lock);
    if (p->n_reports == p->cap_reports) {
        size_t cap = p->cap_reports ? p->cap_reports * 2 : 64;
        struct report *r = realloc(p->reports, cap * sizeof *r);
        if (!r) {
            /* cannot record it: the loop treats this as a lost connection,
             * which resends everything in flight - safe, at-least-once */
            p->report_overflow = 1;
            pthread_mutex_unlock(&p->lock);
            goto wake;
        }
        p->reports = r;
        p->cap_reports = cap;
    }
    p->reports[p->n_reports++] = (struct report){kind, code, send_id};
    pthread_mutex_unlock(&p->lock);
wake:;
    uint64_t one = 1;
    ssize_t w = write(p->efd, &one, sizeof one);
    (void)w; /* EAGAIN means the counter is already non-zero: loop will wake */
}

static void on_conn_ok(void *ctx, MQTTAsync_successData *d)
{
    (void)d;
    report(ctx, REP_CONNECTED, 0, 0);
}

static void on_conn_ok5(void *ctx, MQTTAsync_successData5 *d)
{
    /* MQTT 5 brokers announce how many QoS 1/2 publishes they take at once
     * (mosquitto: 20 by default); paho holds back the excess and looks at
     * it again only after a second, so the loop must not send more */
    int rm = d ? MQTTProperties_getNumericValue(&d->properties, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM)
               : -1;
    report(ctx, REP_CONNECTED, rm > 0 ? rm : 0, 0);
}

static void on_conn_fail(void *ctx, MQTTAsync_failureData *d)
{
    report(ctx, REP_CONNECT_FAILED, d ? d->code : -1, 0);
}

static void on_conn_fail5(void *ctx, MQTTAsync_failureData5 *d)
{
    report(ctx, REP_CONNECT_FAILED, d ? (d->reasonCode ? (int)d->reasonCode : d->code) : -1, 0);
}

static void on_lost(void *ctx, char *cause)
{
    (void)cause;
    report(ctx, REP_LOST, 0, 0);
}

static int on_message(void *ctx, char *topic, int len, MQTTAsync_message *m)
{
    (void)ctx;
    (void)len;
    /* we subscribe to nothing; free whatever arrives */
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    return 1;
}

/* The per-publish context is the send id itself, not a pointer and not
 * paho's token (which has been seen as 0 in failure reports). */
static struct r2m_pub *the_pub; /* contexts carry ids, so the pub comes from here */

static void on_pub_ok(void *ctx, MQTTAsync_successData *d)
{
    (void)d;
    report(the_pub, REP_PUB_OK, 0, (uint64_t)(uintptr_t)ctx);
}

static void on_pub_ok5(void *ctx, MQTTAsync_successData5 *d)
{
    (void)d;
    report(the_pub, REP_PUB_OK, 0, (uint64_t)(uintptr_t)ctx);
}

static void on_pub_fail(void *ctx, MQTTAsync_failureData *d)
{
    report(the_pub, REP_PUB_FAIL, d ? d->code : -1, (uint64_t)(uintptr_t)ctx);
}

static void on_pub_fail5(void *ctx, MQTTAsync_failureData5 *d)
{
    report(the_pub, REP_PUB_FAIL, d ? (d->reasonCode ? (int)d->reasonCode : d->code) : -1,
           (uint64_t)(uintptr_t)ctx);
}

/* ---- loop thread ---- */

static void msg_free(struct msg *m)
{
    if (!m)
        return;
    free(m->topic);
    free(m->payload);
    free(m);
}

static char *server_uri(const char *url)
{
    /* paho knows tcp:// and ssl://; accept the mqtt:// spellings users write */
    struct r2m_buf b;
    r2m_buf_init(&b, 4096);
    if (!strncmp(url, "mqtt://", 7))
        r2m_buf_printf(&b, "tcp://%s", url + 7);
    else if (!strncmp(url, "mqtts://", 8))
        r2m_buf_printf(&b, "ssl://%s", url + 8);
    else
        r2m_buf_puts(&b, url);
    return r2m_buf_take(&b);
}

int r2m_pub_new(struct r2m_pub **out, const struct r2m_config *cfg, size_t max_queued)
{
    int r = R2M_E_NOMEM;
    struct r2m_pub *p = calloc(1, sizeof *p);
    if (!p)
        return R2M_E_NOMEM;
    p->cfg = cfg;
    p->efd = -1;
    p->max_queued = max_queued;
    p->backoff_ms = 1000;
    p->window = R2M_PUB_WINDOW;
    p->rng = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
    pthread_mutex_init(&p->lock, NULL);
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->efd < 0) {
        r = R2M_E_SYSTEM;
        goto out;
    }
    if (!(p->uri = server_uri(cfg->mqtt.url)))
        goto out;
    if (cfg->mqtt.status_topic) {
        struct r2m_buf t;
        r2m_buf_init(&t, 65535);
        struct r2m_topic_vars v = {.prefix = cfg->mqtt.topic_prefix};
        if (r2m_topic_expand(cfg->mqtt.status_topic, &v, &t)) {
            r2m_buf_free(&t);
            r = R2M_E_TOPIC;
            goto out;
        }
        p->status_topic = r2m_buf_take(&t);
    }
    MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
    if (cfg->mqtt.version == 5)
        co.MQTTVersion = MQTTVERSION_5;
    /* paho counts its own buffered commands against this limit even while
     * connected, including leftovers of a dropped connection; keep it well
     * above our window so it acts only as back-pressure */
    co.maxBufferedMessages = 16 * R2M_PUB_WINDOW;
    if (MQTTAsync_createWithOptions(&p->client, p->uri, cfg->mqtt.client_id,
                                    MQTTCLIENT_PERSISTENCE_NONE, NULL, &co) != MQTTASYNC_SUCCESS) {
        r = R2M_E_MQTT;
        goto out;
    }
    MQTTAsync_setCallbacks(p->client, p, on_lost, on_message, NULL);
    the_pub = p;
    *out = p;
    return 0;
out:
    r2m_pub_free(p);
    return r;
}

int r2m_pub_fd(const struct r2m_pub *p)
{
    return p->efd;
}

int r2m_pub_connected(const struct r2m_pub *p)
{
    return p->state == ST_UP;
}

size_t r2m_pub_pending(const struct r2m_pub *p)
{
    return p->queued + p->n_inflight;
}

size_t r2m_pub_window(const struct r2m_pub *p)
{
    return p->window;
}

size_t r2m_pub_room(const struct r2m_pub *p)
{
    size_t used = p->queued + p->n_inflight;
    return used >= p->max_queued ? 0 : p->max_queued - used;
}

uint64_t r2m_pub_acked(const struct r2m_pub *p)
{
    return p->acked;
}

int64_t r2m_pub_deadline(const struct r2m_pub *p)
{
    if (p->state == ST_DOWN)
        return p->retry_at;
    if (p->state == ST_UP && p->queued && p->n_inflight < p->window && p->hold_until)
        return p->hold_until;
    return INT64_MAX;
}

int r2m_pub_connect(struct r2m_pub *p, int64_t now_ms)
{
    const struct r2m_config *cfg = p->cfg;
    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
    MQTTAsync_connectOptions co5 = MQTTAsync_connectOptions_initializer5;
    MQTTAsync_connectOptions *o = cfg->mqtt.version == 5 ? &co5 : &co;
    MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
    MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
    o->keepAliveInterval = (int)((cfg->mqtt.keepalive_ms + 999) / 1000);
    if (cfg->mqtt.version == 5)
        o->cleanstart = 1;
    else
        o->cleansession = 1;
    o->maxInflight = R2M_PUB_WINDOW;
    o->connectTimeout = 10;
    o->automaticReconnect = 0; /* we reconnect ourselves, with our own backoff */
    o->username = cfg->mqtt.username;
    o->password = cfg->mqtt.password;
    o->context = p;
    if (cfg->mqtt.version == 5) {
        o->onSuccess5 = on_conn_ok5;
        o->onFailure5 = on_conn_fail5;
    } else {
        o->onSuccess = on_conn_ok;
        o->onFailure = on_conn_fail;
    }
    if (p->status_topic) {
        will.topicName = p->status_topic;
        will.message = "offline";
        will.retained = 1;
        will.qos = 1;
        o->will = &will;
    }
    if (!strncmp(p->uri, "ssl://", 6) || !strncmp(p->uri, "wss://", 6)) {
        ssl.trustStore = cfg->mqtt.ca_file;
        ssl.keyStore = cfg->mqtt.cert_file;
        ssl.privateKey = cfg->mqtt.key_file;
        ssl.enableServerCertAuth = !cfg->mqtt.insecure;
        ssl.verify = !cfg->mqtt.insecure;
        o->ssl = &ssl;
    }
    p->state = ST_CONNECTING;
    int rc = MQTTAsync_connect(p->client, o);
    if (rc != MQTTASYNC_SUCCESS) {
        char code[16];
        snprintf(code, sizeof code, "%d", rc);
        r2m_log(R2M_LOG_ERROR, "mqtt connect could not start", "broker",
                r2m_log_url(cfg->mqtt.url, (char[512]){0}, 512), "code", code, NULL);
        p->state = ST_DOWN;
        p->retry_at = now_ms + p->backoff_ms;
        return R2M_E_MQTT;
    }
    return 0;
}

void r2m_pub_on_ack(struct r2m_pub *p, r2m_pub_ack_fn *fn, void *ctx)
{
    p->on_ack = fn;
    p->ack_ctx = ctx;
}

int r2m_pub_enqueue(struct r2m_pub *p, char *topic, char *payload, size_t len, int retained,
                    int64_t id)
{
    if (p->queued + p->n_inflight >= p->max_queued) {
        free(topic);
        free(payload);
        return R2M_E_TOO_BIG;
    }
    struct msg *m = calloc(1, sizeof *m);
    if (!m) {
        free(topic);
        free(payload);
        return R2M_E_NOMEM;
    }
    m->topic = topic;
    m->payload = payload;
    m->len = len;
    m->retained = retained;
    m->id = id;
    m->enq_ms = mono_ms();
    m->seq = p->next_seq++;
    if (p->tail)
        p->tail->next = m;
    else
        p->head = m;
    p->tail = m;
    p->queued++;
    return 0;
}

/* Puts every in-flight message back at the front of the queue, oldest first. */
static void requeue_inflight(struct r2m_pub *p)
{
    /* insertion sort by seq: at most R2M_PUB_WINDOW entries */
    for (size_t i = 1; i < p->n_inflight; i++) {
        struct msg *m = p->inflight[i];
        size_t j = i;
        while (j > 0 && p->inflight[j - 1]->seq > m->seq) {
            p->inflight[j] = p->inflight[j - 1];
            j--;
        }
        p->inflight[j] = m;
    }
    for (size_t i = p->n_inflight; i-- > 0;) {
        struct msg *m = p->inflight[i];
        m->send_id = 0;
        m->next = p->head;
        p->head = m;
        if (!p->tail)
            p->tail = m;
        p->queued++;
    }
    p->n_inflight = 0;
}

static long take_inflight(struct r2m_pub *p, uint64_t send_id)
{
    for (size_t i = 0; i < p->n_inflight; i++)
        if (p->inflight[i]->send_id == send_id)
            return (long)i;
    return -1;
}

static void went_down(struct r2m_pub *p, int64_t now, const char *why, int code)
{
    int was_up = p->state == ST_UP;
    requeue_inflight(p);
    p->state = ST_DOWN;
    p->retry_at =
        now + p->backoff_ms / 2 +
        (int64_t)((p->rng = p->rng * 6364136223846793005ull + 1) >> 33) % (p->backoff_ms / 2 + 1);
    if (p->backoff_ms < 30000)
        p->backoff_ms *= 2;
    if (p->backoff_ms > 30000)
        p->backoff_ms = 30000;
    /* log once per state change, not once per attempt */
    if (was_up || !p->ever_connected) {
        char c[16], q[24];
        snprintf(c, sizeof c, "%d", code);
        snprintf(q, sizeof q, "%zu", p->queued);
        r2m_log(was_up ? R2M_LOG_WARN : R2M_LOG_ERROR, why, "broker",
                r2m_log_url(p->cfg->mqtt.url, (char[512]){0}, 512), "code", c, "queued", q, NULL);
        p->ever_connected = 1; /* reuse as "already told the operator" */
    }
}

static void send_some(struct r2m_pub *p, int64_t now)
{
    if (p->state != ST_UP || (p->hold_until && now < p->hold_until))
        return;
    p->hold_until = 0;
    while (p->head && p->n_inflight < p->window) {
        struct msg *m = p->head;
        MQTTAsync_message pm = MQTTAsync_message_initializer;
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
        MQTTProperty prop;
        pm.payload = m->payload;
        pm.payloadlen = (int)m->len;
        pm.qos = p->cfg->mqtt.qos;
        pm.retained = m->retained;
        m->send_id = ++p->next_send_id;
        ro.context = (void *)(uintptr_t)m->send_id;
        if (p->cfg->mqtt.version == 5) {
            ro.onSuccess5 = on_pub_ok5;
            ro.onFailure5 = on_pub_fail5;
            if (!m->retained || strcmp(m->topic, p->status_topic ? p->status_topic : "")) {
                prop.identifier = MQTTPROPERTY_CODE_CONTENT_TYPE;
                prop.value.data.data = "application/cloudevents+json";
                prop.value.data.len = (int)strlen(prop.value.data.data);
                MQTTProperties_add(&pm.properties, &prop);
            }
        } else {
            ro.onSuccess = on_pub_ok;
            ro.onFailure = on_pub_fail;
        }
        int rc = MQTTAsync_sendMessage(p->client, m->topic, &pm, &ro);
        MQTTProperties_free(&pm.properties);
        if (rc == MQTTASYNC_MAX_BUFFERED_MESSAGES || rc == MQTTASYNC_MAX_BUFFERED) {
            /* paho's own buffer is full: not an error, wait for it to drain */
            m->send_id = 0;
            p->hold_until = now + 50;
            return;
        }
        if (rc != MQTTASYNC_SUCCESS) {
            /* not sent: leave it at the head and treat the link as broken */
            m->send_id = 0;
            went_down(p, now, "mqtt publish refused by client library", rc);
            return;
        }
        p->head = m->next;
        if (!p->head)
            p->tail = NULL;
        m->next = NULL;
        p->queued--;
        p->inflight[p->n_inflight++] = m;
    }
}

void r2m_pub_dispatch(struct r2m_pub *p, int64_t now)
{
    uint64_t cnt;
    ssize_t rd = read(p->efd, &cnt, sizeof cnt);
    (void)rd;
    pthread_mutex_lock(&p->lock);
    struct report *reps = p->reports;
    size_t n = p->n_reports;
    int overflow = p->report_overflow;
    p->reports = NULL;
    p->n_reports = p->cap_reports = 0;
    p->report_overflow = 0;
    pthread_mutex_unlock(&p->lock);

    for (size_t i = 0; i < n; i++) {
        struct report *r = &reps[i];
        long k;
        switch (r->kind) {
        case REP_CONNECTED:
            if (p->state == ST_UP)
                break;
            p->state = ST_UP;
            p->backoff_ms = 1000;
            p->window = r->code > 0 && (size_t)r->code < R2M_PUB_WINDOW ? (size_t)r->code
                                                                         : R2M_PUB_WINDOW;
            p->ever_connected = 1;
            r2m_log(R2M_LOG_INFO, "mqtt connected", "broker",
                    r2m_log_url(p->cfg->mqtt.url, (char[512]){0}, 512), NULL);
            if (p->status_topic) {
                /* "online" goes first so it precedes any event of this session */
                struct msg *m = calloc(1, sizeof *m);
                char *t = strdup(p->status_topic), *pl = strdup("online");
                if (m && t && pl) {
                    m->topic = t;
                    m->payload = pl;
                    m->len = 6;
                    m->retained = 1;
                    m->next = p->head;
                    p->head = m;
                    if (!p->tail)
                        p->tail = m;
                    p->queued++;
                } else {
                    free(m);
                    free(t);
                    free(pl);
                }
            }
            break;
        case REP_CONNECT_FAILED:
            if (p->state == ST_CONNECTING)
                went_down(p, now, "mqtt connect failed, will retry", r->code);
            break;
        case REP_LOST:
            if (p->state == ST_UP)
                went_down(p, now, "mqtt connection lost, will reconnect", 0);
            break;
        case REP_PUB_OK:
            if ((k = take_inflight(p, r->send_id)) < 0)
                break; /* a stale attempt: that message was already requeued */
            if (p->inflight[k]->id && p->on_ack)
                p->on_ack(p->ack_ctx, p->inflight[k]->id, now - p->inflight[k]->enq_ms);
            msg_free(p->inflight[k]);
            p->inflight[k] = p->inflight[--p->n_inflight];
            p->acked++;
            break;
        case REP_PUB_FAIL:
            if ((k = take_inflight(p, r->send_id)) < 0)
                break;
            if (p->state == ST_UP) {
                char c[16];
                snprintf(c, sizeof c, "%d", r->code);
                r2m_log(R2M_LOG_WARN, "mqtt publish failed, will resend", "topic",
                        p->inflight[k]->topic, "code", c, NULL);
                p->hold_until = now + 1000;
            }
            /* resend everything in flight in order, so this one keeps its place */
            requeue_inflight(p);
            break;
        }
    }
    free(reps);
    if (overflow && p->state == ST_UP)
        went_down(p, now, "mqtt report queue overflow", 0);
    if (p->state == ST_DOWN && now >= p->retry_at) {
        MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
        d.timeout = 0;
        if (MQTTAsync_isConnected(p->client))
            MQTTAsync_disconnect(p->client, &d);
        r2m_pub_connect(p, now);
    }
    send_some(p, now);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void r2m_pub_goodbye(struct r2m_pub *p, int64_t timeout_ms)
{
    if (!p || p->state != ST_UP)
        return;
    int64_t end = mono_ms() + timeout_ms;
    if (p->status_topic) {
        char *t = strdup(p->status_topic), *pl = strdup("offline");
        if (t && pl)
            r2m_pub_enqueue(p, t, pl, 7, 1, 0);
        else {
            free(t);
            free(pl);
        }
        /* the status message is last in the queue: wait for the queue */
        while (r2m_pub_pending(p) && p->state == ST_UP && mono_ms() < end) {
            struct timespec ts = {0, 5 * 1000000};
            nanosleep(&ts, NULL);
            r2m_pub_dispatch(p, mono_ms());
        }
    }
    MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
    d.timeout = 1000;
    MQTTAsync_disconnect(p->client, &d);
    for (int i = 0; i < 200 && MQTTAsync_isConnected(p->client); i++) {
        struct timespec ts = {0, 5 * 1000000};
        nanosleep(&ts, NULL);
    }
    p->state = ST_IDLE;
}

void r2m_pub_free(struct r2m_pub *p)
{
    if (!p)
        return;
    if (p->client) {
        if (MQTTAsync_isConnected(p->client)) {
            MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
            d.timeout = 1000;
            MQTTAsync_disconnect(p->client, &d);
        }
        MQTTAsync_destroy(&p->client);
    }
    if (the_pub == p)
        the_pub = NULL;
    requeue_inflight(p);
    for (struct msg *m = p->head, *next; m; m = next) {
        next = m->next;
        msg_free(m);
    }
    free(p->reports);
    free(p->status_topic);
    free(p->uri);
    if (p->efd >= 0)
        close(p->efd);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
