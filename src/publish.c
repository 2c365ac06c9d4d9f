/* publish.c - paho MQTTAsync behind a queue, an eventfd and the loop thread. */
#include "r2m/publish.h"

#include <MQTTAsync.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "r2m/buf.h"
#include "r2m/error.h"
#include "r2m/log.h"
#include "r2m/topic.h"

enum report_kind {
    REP_CONNECTED,
    REP_CONNECT_FAILED,
    REP_LOST,
    REP_DISCONNECT, /* MQTT 5: the broker closes the connection and says why */
    REP_PUB_OK,
    REP_PUB_FAIL
};

struct report {
    int kind;
    int code;
    uint64_t send_id;
    int64_t val; /* REP_CONNECTED: the broker's Maximum Packet Size (0: none) */
};

struct msg {
    struct msg *next;
    char *topic;
    char *payload;
    size_t len;
    uint64_t seq;     /* enqueue order */
    uint64_t send_id; /* the latest send attempt; kept when requeued, so an
                         acknowledgement that arrives after all is recognised */
    int64_t id;       /* outbox row, 0 if none */
    int64_t enq_ms;   /* monotonic time of enqueueing, for the latency metric */
    int retained;
    int status; /* the retained status message ("online"/"offline"): not an event */
};

enum conn_state { ST_IDLE, ST_CONNECTING, ST_UP, ST_DOWN };

/* What paho's context pointer of a publish points at: the publisher and the
 * send id, in a ring inside the publisher. An entry is taken for one send
 * and stays taken until that send's callback (exactly one per send paho
 * accepted) or until its client is destroyed (none can come after), so a
 * late callback always reads its own send id: never the id of a later send
 * that happens to reuse the entry (a broker may withhold one
 * acknowledgement while thousands of later ones come). Send ids whose
 * entry is still taken are skipped. The ring lives as long as the
 * publisher, so no callback reads freed memory; p is set once before any
 * client exists, send_id and taken are guarded by p->lock. */
#define PUB_CTX_RING 4096
struct pub_ctx {
    struct r2m_publish *p;
    uint64_t send_id;
    int taken;
};

struct r2m_publish {
    const struct r2m_config *cfg;
    MQTTAsync client;
    int efd;
    int state;
    int ever_connected;
    int64_t retry_at; /* when to try connecting again (ST_DOWN) */
    int64_t backoff_ms;
    int64_t up_since;              /* monotonic ms of the last CONNACK */
    struct r2m_log_limit conn_log; /* connection failures and losses */
    struct r2m_log_limit pub_log;  /* transient publish failures */
    int told_down;                 /* the last failure was logged: log the recovery */
    uint64_t broker_max_packet;    /* MQTT 5 CONNACK Maximum Packet Size; 0: none */
    uint64_t suspect_seq;          /* oldest event in flight at the last quick drop, + 1 */
    int suspect_told;              /* the hint about it was logged */
    int64_t hold_until;            /* pause after a rejected publish */
    uint64_t rng;
    char *status_topic;
    char *uri;
    char shown_url[256]; /* mqtt.url without its credentials, for logs */

    struct msg *head, *tail; /* waiting, oldest first */
    size_t queued, max_queued;
    size_t n_status; /* status messages among queued and in flight */
    struct msg *inflight[R2M_PUBLISH_WINDOW];
    size_t n_inflight;
    size_t window; /* R2M_PUBLISH_WINDOW, or less when the broker's Receive Maximum is */
    uint64_t next_seq, next_send_id, acked;
    r2m_publish_ack_fn *on_ack;
    void *ack_ctx;
    r2m_publish_dead_fn *on_dead;
    void *dead_ctx;
    uint64_t dead;

    pthread_mutex_t lock; /* guards reports, ctx[].send_id and ctx[].taken */
    struct pub_ctx ctx[PUB_CTX_RING];
    struct report *reports;
    size_t n_reports, cap_reports;
    int report_overflow;
    /* why the last connection attempt failed, in words (written by paho's
     * threads, read by the loop when it handles REP_CONNECT_FAILED) */
    char conn_why[384];
    char tls_err[256]; /* the last OpenSSL error of this attempt */
};

static int64_t mono_ms(void);

/* ---- paho threads: only record and wake ---- */

static void report_val(struct r2m_publish *p, int kind, int code, uint64_t send_id, int64_t val)
{
    pthread_mutex_lock(&p->lock);
    if (r2m_buf_grow(&p->reports, &p->cap_reports, p->n_reports + 1, sizeof *p->reports))
        /* cannot record it: the loop treats this as a lost connection,
         * which resends everything in flight - safe, at-least-once */
        p->report_overflow = 1;
    else
        p->reports[p->n_reports++] = (struct report){kind, code, send_id, val};
    pthread_mutex_unlock(&p->lock);
    uint64_t one = 1;
    ssize_t w = write(p->efd, &one, sizeof one);
    (void)w; /* EAGAIN means the counter is already non-zero: loop will wake */
}

static void report(struct r2m_publish *p, int kind, int code, uint64_t send_id)
{
    report_val(p, kind, code, send_id, 0);
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
    int rm =
        d ? MQTTProperties_getNumericValue(&d->properties, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM) : -1;
    /* and the largest packet they take: a bigger PUBLISH would be refused
     * (or cost the connection), so it is dead-lettered before sending */
    int mp =
        d && MQTTProperties_hasProperty(&d->properties, MQTTPROPERTY_CODE_MAXIMUM_PACKET_SIZE)
            ? MQTTProperties_getNumericValue(&d->properties, MQTTPROPERTY_CODE_MAXIMUM_PACKET_SIZE)
            : 0;
    report_val(ctx, REP_CONNECTED, rm > 0 ? rm : 0, 0, mp > 0 ? mp : 0);
}

static void diagnose(struct r2m_publish *p, int code, const char *message);

static void on_conn_fail(void *ctx, MQTTAsync_failureData *d)
{
    int code = d ? d->code : -1;
    diagnose(ctx, code, d ? d->message : NULL);
    report(ctx, REP_CONNECT_FAILED, code, 0);
}

static void on_conn_fail5(void *ctx, MQTTAsync_failureData5 *d)
{
    /* paho puts a CONNACK reason code in code, and leaves reasonCode 0 */
    int code = d ? (d->reasonCode ? (int)d->reasonCode : d->code) : -1;
    diagnose(ctx, code, d ? d->message : NULL);
    report(ctx, REP_CONNECT_FAILED, code, 0);
}

/* OpenSSL's error queue, handed over by paho during a TLS handshake. */
static int on_ssl_error(const char *str, size_t len, void *ctx)
{
    struct r2m_publish *p = ctx;
    pthread_mutex_lock(&p->lock);
    snprintf(p->tls_err, sizeof p->tls_err, "%.*s", (int)len, str);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

static void on_lost(void *ctx, char *cause)
{
    (void)cause;
    report(ctx, REP_LOST, 0, 0);
}

/* MQTT 5 DISCONNECT from the broker: the end of the connection (paho does
 * not call on_lost then) */
static void on_disconnected(void *ctx, MQTTProperties *props, enum MQTTReasonCodes rc)
{
    (void)props;
    report(ctx, REP_DISCONNECT, (int)rc, 0);
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

/* A publish's context is its struct pub_ctx entry, never paho's token
 * (which has been seen as 0 in failure reports). */
static void report_send(void *ctx, int kind, int code)
{
    struct pub_ctx *c = ctx;
    struct r2m_publish *p = c->p;
    pthread_mutex_lock(&p->lock);
    uint64_t send_id = c->send_id;
    c->taken = 0; /* the one callback of this send */
    pthread_mutex_unlock(&p->lock);
    report(p, kind, code, send_id);
}

static void on_pub_ok(void *ctx, MQTTAsync_successData *d)
{
    (void)d;
    report_send(ctx, REP_PUB_OK, 0);
}

static void on_pub_ok5(void *ctx, MQTTAsync_successData5 *d)
{
    (void)d;
    report_send(ctx, REP_PUB_OK, 0);
}

static void on_pub_fail(void *ctx, MQTTAsync_failureData *d)
{
    report_send(ctx, REP_PUB_FAIL, d ? d->code : -1);
}

static void on_pub_fail5(void *ctx, MQTTAsync_failureData5 *d)
{
    report_send(ctx, REP_PUB_FAIL, d ? (d->reasonCode ? (int)d->reasonCode : d->code) : -1);
}

/* ---- refusals and failures, in words ---- */

/* Every MQTT 5 reason code of the failure family (0x80 and up), decided one
 * by one. `refuses` says whether a PUBACK (or a publish failure) with this
 * code refuses THIS message for good, so that sending it again can only
 * fail again: such a message is dead-lettered and everything behind it
 * flows on. The others concern the connection or the session (a resend
 * after a reconnect can succeed): the message keeps its place.
 *
 *   code  refuses  why
 *   0x80  yes      unspecified: "does not accept the publish", no more said
 *   0x81  yes      malformed packet: the same bytes stay malformed
 *   0x82  no       protocol error: session state, a new session heals it
 *   0x83  yes      implementation specific: "valid but not willing"
 *   0x84-0x86, 0x88-0x8E  no  connection level (CONNACK/DISCONNECT)
 *   0x87  yes      not authorized: the topic is denied (ACL)
 *   0x8F  no       topic filter invalid (SUBSCRIBE only)
 *   0x90  yes      topic name invalid
 *   0x91, 0x92, 0x93  no  packet identifier / receive maximum: session
 *   0x94  no       topic alias invalid (we send no aliases)
 *   0x95  yes      packet too large
 *   0x96  no       message rate too high: later is fine
 *   0x97  yes      quota exceeded: an administrative limit for this message
 *   0x98  no       administrative action (disconnect)
 *   0x99  yes      payload format invalid
 *   0x9A  yes      retain not supported: this retained message never goes
 *   0x9B  yes      QoS not supported
 *   0x9C-0xA2  no  redirects, subscriptions, connection limits
 */
struct code_info {
    int code;
    int refuses;
    const char *token; /* the dead-letter reason and metric label */
    const char *words; /* for logs */
};

static const struct code_info mqtt5_codes[] = {
    {0x80, 1, "unspecified_error", "unspecified error"},
    {0x81, 1, "malformed_packet", "malformed packet"},
    {0x82, 0, "protocol_error", "protocol error"},
    {0x83, 1, "implementation_specific_error", "implementation specific error"},
    {0x84, 0, "unsupported_protocol_version",
     "unsupported protocol version; try mqtt.version: 3.1.1"},
    {0x85, 0, "client_identifier_not_valid", "client identifier not valid; change mqtt.client_id"},
    {0x86, 0, "bad_user_name_or_password",
     "bad user name or password; check mqtt.username and mqtt.password"},
    {0x87, 1, "not_authorized", "not authorized"},
    {0x88, 0, "server_unavailable", "server unavailable"},
    {0x89, 0, "server_busy", "server busy"},
    {0x8A, 0, "banned", "banned by the broker"},
    {0x8B, 0, "server_shutting_down", "server shutting down"},
    {0x8C, 0, "bad_authentication_method", "bad authentication method"},
    {0x8D, 0, "keep_alive_timeout", "keep alive timeout"},
    {0x8E, 0, "session_taken_over",
     "session taken over: another client connected with the same mqtt.client_id"},
    {0x8F, 0, "topic_filter_invalid", "topic filter invalid"},
    {0x90, 1, "topic_name_invalid", "topic name invalid"},
    {0x91, 0, "packet_identifier_in_use", "packet identifier in use"},
    {0x92, 0, "packet_identifier_not_found", "packet identifier not found"},
    {0x93, 0, "receive_maximum_exceeded", "receive maximum exceeded"},
    {0x94, 0, "topic_alias_invalid", "topic alias invalid"},
    {0x95, 1, "packet_too_large", "packet too large"},
    {0x96, 0, "message_rate_too_high", "message rate too high"},
    {0x97, 1, "quota_exceeded", "quota exceeded"},
    {0x98, 0, "administrative_action", "administrative action"},
    {0x99, 1, "payload_format_invalid", "payload format invalid"},
    {0x9A, 1, "retain_not_supported", "retain not supported"},
    {0x9B, 1, "qos_not_supported", "QoS not supported; lower mqtt.qos"},
    {0x9C, 0, "use_another_server", "use another server"},
    {0x9D, 0, "server_moved", "server moved"},
    {0x9E, 0, "shared_subscriptions_not_supported", "shared subscriptions not supported"},
    {0x9F, 0, "connection_rate_exceeded", "connection rate exceeded"},
    {0xA0, 0, "maximum_connect_time", "maximum connect time"},
    {0xA1, 0, "subscription_identifiers_not_supported", "subscription identifiers not supported"},
    {0xA2, 0, "wildcard_subscriptions_not_supported", "wildcard subscriptions not supported"},
};

/* paho's own refusals before anything is sent: the same message is refused
 * every time (FIELD-NOTES: -5 repeats on every resend) */
static const struct code_info paho_codes[] = {
    {MQTTASYNC_BAD_UTF8_STRING, 1, "invalid_utf8",
     "topic or payload is not valid UTF-8 (refused by the MQTT client library)"},
    {MQTTASYNC_TOPICNAME_TRUNCATED, 1, "topic_name_truncated", "topic contains a NUL byte"},
};

/* MQTT 3.1.1 CONNACK return codes */
static const char *const connack311[] = {
    NULL,
    "the broker does not accept MQTT 3.1.1 (unacceptable protocol version); try mqtt.version: 5",
    "client identifier rejected; change mqtt.client_id",
    "server unavailable",
    "bad user name or password; check mqtt.username and mqtt.password",
    "not authorized",
};

static const struct code_info *code_info(int code)
{
    const struct code_info *t = code < 0 ? paho_codes : mqtt5_codes;
    size_t n = code < 0 ? sizeof paho_codes / sizeof *paho_codes
                        : sizeof mqtt5_codes / sizeof *mqtt5_codes;
    for (size_t i = 0; i < n; i++)
        if (t[i].code == code)
            return &t[i];
    return NULL;
}

const char *r2m_publish_refusal(int code)
{
    const struct code_info *c = code_info(code);
    return c && c->refuses ? c->token : NULL;
}

const char *r2m_publish_code_words(int version, int code)
{
    if (version != 5 && code > 0 && code < (int)(sizeof connack311 / sizeof *connack311))
        return connack311[code];
    const struct code_info *c = code_info(code);
    if (c)
        return c->words;
    return code < 0 ? MQTTAsync_strerror(code) : "unknown reason code";
}

static size_t varint_len(uint64_t n)
{
    return n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : 4;
}

uint64_t r2m_publish_packet_size(int version, int qos, size_t topic_len, size_t props_len,
                                 size_t payload_len)
{
    /* topic (length-prefixed), packet identifier for QoS > 0, MQTT 5
     * properties (length-prefixed), payload; then the fixed header */
    uint64_t rem = 2 + (uint64_t)topic_len + (qos > 0 ? 2 : 0) + payload_len;
    if (version == 5)
        rem += varint_len(props_len) + props_len;
    return 1 + varint_len(rem) + rem;
}

/* What paho gets to say about a failed TLS handshake is OpenSSL's error
 * text; the usual three causes read better in words. */
static void tls_words(const char *ssl, char *why, size_t n)
{
    char e[256];
    snprintf(e, sizeof e, "%s", ssl);
    e[strcspn(e, "\r\n")] = '\0';
    if (strstr(e, "certificate verify failed"))
        snprintf(why, n,
                 "TLS handshake failed: certificate not trusted (check mqtt.tls.ca_file) [%s]", e);
    else if (strstr(e, "wrong version number") || strstr(e, "unexpected eof") ||
             strstr(e, "packet length too long") || strstr(e, "record layer failure"))
        snprintf(why, n,
                 "TLS handshake failed: the broker did not answer with TLS (a plain MQTT "
                 "port? use mqtt:// for it) [%s]",
                 e);
    else
        snprintf(why, n, "TLS handshake failed [%s]", e);
}

/* Whether the peer on fd answers a plain MQTT 3.1.1 CONNECT (empty client
 * id, clean session) with a CONNACK: then a TLS URL points at a plain port.
 * A TLS server answers such bytes with an alert or nothing. */
static int speaks_plain_mqtt(int fd)
{
    static const unsigned char connect_pkt[] = {0x10, 12, 0,    4, 'M', 'Q', 'T',
                                                'T',  4,  0x02, 0, 10,  0,   0};
    static const unsigned char disconnect_pkt[] = {0xE0, 0};
    unsigned char b = 0;
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    if (send(fd, connect_pkt, sizeof connect_pkt, MSG_NOSIGNAL) != (ssize_t)sizeof connect_pkt ||
        poll(&pf, 1, 2000) <= 0 || recv(fd, &b, 1, 0) != 1 || b != 0x20)
        return 0;
    ssize_t w = send(fd, disconnect_pkt, sizeof disconnect_pkt, MSG_NOSIGNAL);
    (void)w;
    return 1;
}

/* One plain TCP connection to the broker's address, to say why paho's
 * attempt failed: paho reports a name that does not resolve, a refused port
 * and a failed TLS handshake all as "TCP/TLS connect failure". */
static void probe(const char *uri, char *why, size_t n)
{
    char host[256] = "", port[16] = "";
    const char *h = strstr(uri, "://");
    int tls = !strncmp(uri, "ssl://", 6) || !strncmp(uri, "wss://", 6);
    h = h ? h + 3 : uri;
    const char *at = strchr(h, '@'), *slash = strchr(h, '/');
    if (at && (!slash || at < slash))
        h = at + 1;
    const char *end;
    if (*h == '[') {
        end = strchr(h, ']');
        snprintf(host, sizeof host, "%.*s", end ? (int)(end - h - 1) : 0, h + 1);
        end = end ? end + 1 : h;
    } else {
        end = h + strcspn(h, ":/");
        snprintf(host, sizeof host, "%.*s", (int)(end - h), h);
    }
    if (*end == ':')
        snprintf(port, sizeof port, "%.*s", (int)strcspn(end + 1, "/"), end + 1);
    else
        snprintf(port, sizeof port, "%s",
                 !strncmp(uri, "ws://", 5)    ? "80"
                 : !strncmp(uri, "wss://", 6) ? "443"
                 : tls                        ? "8883"
                                              : "1883");
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    int g = getaddrinfo(host, port, &hints, &ai);
    if (g) {
        snprintf(why, n, "DNS lookup of %s failed: %s", host, gai_strerror(g));
        return;
    }
    int err = 0, ok = 0, plain = 0;
    for (struct addrinfo *a = ai; a && !ok; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            ok = 1;
        } else if (errno == EINPROGRESS) {
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            socklen_t len = sizeof err;
            if (poll(&pf, 1, 3000) <= 0)
                err = ETIMEDOUT;
            else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && !err)
                ok = 1;
        } else {
            err = errno;
        }
        if (ok && tls)
            plain = speaks_plain_mqtt(fd);
        close(fd);
    }
    freeaddrinfo(ai);
    if (plain)
        snprintf(why, n,
                 "TLS handshake failed: the broker did not answer with TLS but with plain MQTT "
                 "(use mqtt:// for %s:%s, or the broker's TLS port)",
                 host, port);
    else if (ok && tls)
        snprintf(why, n,
                 "TLS handshake failed: the broker's certificate does not match the host name "
                 "%s, or the TLS session was refused",
                 host);
    else if (ok)
        snprintf(why, n, "the broker at %s:%s closed the connection before answering CONNECT", host,
                 port);
    else if (err == ECONNREFUSED)
        snprintf(why, n, "connection refused by %s:%s (is the broker running on that port?)", host,
                 port);
    else if (err == ETIMEDOUT)
        snprintf(why, n, "timeout connecting to %s:%s", host, port);
    else
        snprintf(why, n, "cannot connect to %s:%s: %s", host, port, strerror(err));
}

/* Runs on paho's thread after a failed attempt: the words for the log. */
static void diagnose(struct r2m_publish *p, int code, const char *message)
{
    char why[384], tls[256];
    pthread_mutex_lock(&p->lock);
    snprintf(tls, sizeof tls, "%s", p->tls_err);
    p->tls_err[0] = '\0';
    pthread_mutex_unlock(&p->lock);
    int v = p->cfg->mqtt.version;
    if (code > 0 && (code == 0x87 || (v != 5 && code == 5)))
        /* mosquitto answers a wrong password with "not authorized" too */
        snprintf(why, sizeof why,
                 "not authorized: the broker refused this client or its credentials (check "
                 "mqtt.username, mqtt.password and the broker's ACL)");
    else if (code > 0)
        snprintf(why, sizeof why, "%s", r2m_publish_code_words(v, code));
    else if (message && strstr(message, "timeout"))
        snprintf(why, sizeof why, "timeout: the broker did not complete the connection in time");
    else if (tls[0])
        tls_words(tls, why, sizeof why);
    else
        probe(p->uri, why, sizeof why);
    pthread_mutex_lock(&p->lock);
    snprintf(p->conn_why, sizeof p->conn_why, "%s", why);
    pthread_mutex_unlock(&p->lock);
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

/* A new paho client for p->uri. */
static int make_client(struct r2m_publish *p)
{
    MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
    if (p->cfg->mqtt.version == 5)
        co.MQTTVersion = MQTTVERSION_5;
    /* paho counts its own buffered commands against this limit even while
     * connected; keep it well above our window so it acts only as
     * back-pressure */
    co.maxBufferedMessages = 16 * R2M_PUBLISH_WINDOW;
    if (MQTTAsync_createWithOptions(&p->client, p->uri, p->cfg->mqtt.client_id,
                                    MQTTCLIENT_PERSISTENCE_NONE, NULL, &co) != MQTTASYNC_SUCCESS) {
        p->client = NULL;
        return R2M_E_MQTT;
    }
    /* a client that would not report losses could never reconnect */
    if (MQTTAsync_setCallbacks(p->client, p, on_lost, on_message, NULL) != MQTTASYNC_SUCCESS ||
        (p->cfg->mqtt.version == 5 &&
         MQTTAsync_setDisconnected(p->client, p, on_disconnected) != MQTTASYNC_SUCCESS)) {
        MQTTAsync_destroy(&p->client);
        p->client = NULL;
        return R2M_E_MQTT;
    }
    return 0;
}

int r2m_publish_new(const struct r2m_config *cfg, size_t max_queued, struct r2m_publish **out)
{
    int r = R2M_E_NOMEM;
    struct r2m_publish *p = calloc(1, sizeof *p);
    if (!p)
        return R2M_E_NOMEM;
    p->cfg = cfg;
    p->efd = -1;
    p->max_queued = max_queued;
    p->backoff_ms = 1000;
    p->window = R2M_PUBLISH_WINDOW;
    p->rng = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
    for (size_t i = 0; i < PUB_CTX_RING; i++)
        p->ctx[i].p = p;
    pthread_mutex_init(&p->lock, NULL);
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->efd < 0) {
        r = R2M_E_SYSTEM;
        goto out;
    }
    if (!(p->uri = server_uri(cfg->mqtt.url)))
        goto out;
    r2m_log_url(cfg->mqtt.url, p->shown_url, sizeof p->shown_url);
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
    if ((r = make_client(p)))
        goto out;
    *out = p;
    return 0;
out:
    r2m_publish_free(p);
    return r;
}

int r2m_publish_fd(const struct r2m_publish *p)
{
    return p->efd;
}

int r2m_publish_connected(const struct r2m_publish *p)
{
    return p->state == ST_UP;
}

/* Messages queued or in flight, status messages included. */
static size_t total(const struct r2m_publish *p)
{
    return p->queued + p->n_inflight;
}

/* Events only: the status message is no outbox row, so it neither takes a
 * place of state.outbox_max nor counts as an event waiting at a stop. */
size_t r2m_publish_pending(const struct r2m_publish *p)
{
    return total(p) - p->n_status;
}

size_t r2m_publish_window(const struct r2m_publish *p)
{
    return p->window;
}

size_t r2m_publish_room(const struct r2m_publish *p)
{
    size_t used = r2m_publish_pending(p);
    return used >= p->max_queued ? 0 : p->max_queued - used;
}

uint64_t r2m_publish_acked(const struct r2m_publish *p)
{
    return p->acked;
}

int64_t r2m_publish_deadline(const struct r2m_publish *p)
{
    if (p->state == ST_DOWN)
        return p->retry_at;
    if (p->state == ST_UP && p->queued && p->n_inflight < p->window && p->hold_until)
        return p->hold_until;
    return INT64_MAX;
}

int r2m_publish_connect(struct r2m_publish *p, int64_t now_ms)
{
    const struct r2m_config *cfg = p->cfg;
    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
    MQTTAsync_connectOptions co5 = MQTTAsync_connectOptions_initializer5;
    MQTTAsync_connectOptions *o = cfg->mqtt.version == 5 ? &co5 : &co;
    MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
    MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
    o->keepAliveInterval = (int)((cfg->mqtt.keepalive_ms + 999) / 1000);
    /* 3.1.1 exactly: paho's default would try 3.1 after a failed 3.1.1
     * attempt, a second connection per attempt */
    o->MQTTVersion = cfg->mqtt.version == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
    if (cfg->mqtt.version == 5)
        o->cleanstart = 1;
    else
        o->cleansession = 1;
    o->maxInflight = R2M_PUBLISH_WINDOW;
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
        ssl.ssl_error_cb = on_ssl_error;
        ssl.ssl_error_context = p;
        o->ssl = &ssl;
    }
    pthread_mutex_lock(&p->lock);
    p->tls_err[0] = p->conn_why[0] = '\0';
    pthread_mutex_unlock(&p->lock);
    p->state = ST_CONNECTING;
    int rc = MQTTAsync_connect(p->client, o);
    if (rc != MQTTASYNC_SUCCESS) {
        char code[16];
        snprintf(code, sizeof code, "%d", rc);
        if (r2m_log_limit_hit(&p->conn_log, rc))
            r2m_log(R2M_LOG_ERROR, "mqtt connect could not start", "broker", p->shown_url, "reason",
                    r2m_publish_code_words(cfg->mqtt.version, rc), "code", code, NULL);
        p->state = ST_DOWN;
        p->retry_at = now_ms + p->backoff_ms;
        return R2M_E_MQTT;
    }
    return 0;
}

void r2m_publish_on_ack(struct r2m_publish *p, r2m_publish_ack_fn *fn, void *ctx)
{
    p->on_ack = fn;
    p->ack_ctx = ctx;
}

void r2m_publish_on_dead(struct r2m_publish *p, r2m_publish_dead_fn *fn, void *ctx)
{
    p->on_dead = fn;
    p->dead_ctx = ctx;
}

uint64_t r2m_publish_dead(const struct r2m_publish *p)
{
    return p->dead;
}

uint64_t r2m_publish_max_packet(const struct r2m_publish *p)
{
    uint64_t m = R2M_MQTT_MAX_PACKET_SIZE;
    if (p->cfg->mqtt.max_packet_size && p->cfg->mqtt.max_packet_size < m)
        m = p->cfg->mqtt.max_packet_size;
    if (p->broker_max_packet && p->broker_max_packet < m)
        m = p->broker_max_packet;
    return m;
}

/* Queues m at the end, in enqueue order. */
static void append(struct r2m_publish *p, struct msg *m)
{
    m->seq = p->next_seq++;
    if (p->tail)
        p->tail->next = m;
    else
        p->head = m;
    p->tail = m;
    p->queued++;
}

int r2m_publish_enqueue(struct r2m_publish *p, char *topic, char *payload, size_t len, int retained,
                        int64_t id)
{
    if (r2m_publish_pending(p) >= p->max_queued) {
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
    append(p, m);
    return 0;
}

/* Puts a sent message back into the queue at its place by enqueue order:
 * what was sent is older than what waits, so the walk ends within the few
 * messages requeued before it. Its send_id stays: an acknowledgement of
 * that attempt can still arrive and is then honoured (take_queued). */
static void put_back(struct r2m_publish *p, struct msg *m)
{
    struct msg **at = &p->head;
    while (*at && (*at)->seq < m->seq)
        at = &(*at)->next;
    m->next = *at;
    *at = m;
    if (!m->next)
        p->tail = m;
    p->queued++;
}

/* Puts every in-flight message back into the queue, oldest first. */
static void requeue_inflight(struct r2m_publish *p)
{
    for (size_t i = 0; i < p->n_inflight; i++)
        put_back(p, p->inflight[i]);
    p->n_inflight = 0;
}

/* Removes the in-flight message of this send attempt; NULL if none. */
static struct msg *take_inflight(struct r2m_publish *p, uint64_t send_id)
{
    for (size_t i = 0; i < p->n_inflight; i++)
        if (p->inflight[i]->send_id == send_id) {
            struct msg *m = p->inflight[i];
            p->inflight[i] = p->inflight[--p->n_inflight];
            return m;
        }
    return NULL;
}

/* An acknowledgement for a message that was put back into the queue (the
 * connection dropped, or its report came late): the broker has it, so it
 * must not be sent again. Requeued messages are at the front. */
static struct msg *take_queued(struct r2m_publish *p, uint64_t send_id)
{
    struct msg **at = &p->head, *prev = NULL;
    for (size_t i = 0; send_id && *at && i <= R2M_PUBLISH_WINDOW; i++) {
        if ((*at)->send_id == send_id) {
            struct msg *m = *at;
            *at = m->next;
            if (p->tail == m)
                p->tail = prev;
            m->next = NULL;
            p->queued--;
            return m;
        }
        prev = *at;
        at = &(*at)->next;
    }
    return NULL;
}

/* The encoded size of m's PUBLISH packet, with the properties send_some
 * adds: the content type, on MQTT 5, for everything but the status topic. */
static const char content_type[] = "application/cloudevents+json";

static uint64_t packet_size(const struct r2m_publish *p, const struct msg *m)
{
    size_t props = p->cfg->mqtt.version == 5 && !m->status ? 3 + strlen(content_type) : 0;
    return r2m_publish_packet_size(p->cfg->mqtt.version, p->cfg->mqtt.qos, strlen(m->topic), props,
                                   m->len);
}

/* A message refused for good: it leaves the publisher (the bridge moves it
 * to the dead-letter table), so everything behind it flows on. */
static void refuse(struct r2m_publish *p, struct msg *m, const char *reason, const char *words)
{
    p->dead++;
    p->n_status -= m->status;
    if (p->on_dead)
        p->on_dead(p->dead_ctx, m->id, m->topic, m->payload, m->len, packet_size(p, m), reason,
                   words);
    msg_free(m);
}

static struct msg *unlink_head(struct r2m_publish *p)
{
    struct msg *m = p->head;
    p->head = m->next;
    if (!p->head)
        p->tail = NULL;
    m->next = NULL;
    p->queued--;
    return m;
}

/* Removes the status messages waiting in the queue (none is in flight
 * while the connection is down: requeue_inflight put them back). */
static void drop_status(struct r2m_publish *p)
{
    struct msg **at = &p->head, *prev = NULL;
    while (*at) {
        struct msg *m = *at;
        if (!m->status) {
            prev = m;
            at = &m->next;
            continue;
        }
        *at = m->next;
        if (p->tail == m)
            p->tail = prev;
        p->queued--;
        p->n_status--;
        msg_free(m);
    }
}

/* Queues the retained status message at the front or at the end; it takes
 * no place of max_queued. Out of memory it is left out. */
static void queue_status(struct r2m_publish *p, const char *text, int front)
{
    struct msg *m = calloc(1, sizeof *m);
    char *t = strdup(p->status_topic), *pl = strdup(text);
    if (!m || !t || !pl) {
        free(m);
        free(t);
        free(pl);
        return;
    }
    m->topic = t;
    m->payload = pl;
    m->len = strlen(text);
    m->retained = 1;
    m->status = 1;
    m->enq_ms = mono_ms();
    if (front) {
        m->next = p->head;
        p->head = m;
        if (!p->tail)
            p->tail = m;
        p->queued++;
    } else {
        append(p, m);
    }
    p->n_status++;
}

/* kinds for the connection's log limit besides the failure codes */
enum { KIND_LOST = -100000, KIND_OTHER = -100001 };

static uint64_t packet_size(const struct r2m_publish *p, const struct msg *m);

/* An MQTT 3.1.1 broker cannot refuse one message: mosquitto closes the
 * connection on a packet over its max_packet_size, on every resend, and
 * nothing behind it moves. The same event oldest in flight at two quick
 * drops in a row is told once, with what to do. */
static void suspect_drop(struct r2m_publish *p)
{
    const struct msg *o = NULL;
    for (size_t i = 0; i < p->n_inflight; i++)
        if (!p->inflight[i]->status && (!o || p->inflight[i]->seq < o->seq))
            o = p->inflight[i];
    if (!o) {
        p->suspect_seq = 0;
        return;
    }
    if (p->suspect_seq != o->seq + 1) {
        p->suspect_seq = o->seq + 1;
        p->suspect_told = 0;
        return;
    }
    if (p->suspect_told)
        return;
    p->suspect_told = 1;
    char size[24];
    snprintf(size, sizeof size, "%llu", (unsigned long long)packet_size(p, o));
    r2m_log(R2M_LOG_WARN,
            "the broker closed the connection again while this event was the oldest "
            "unacknowledged one; an MQTT 3.1.1 broker closes the connection on a packet over its "
            "size limit without saying so: if it is, set mqtt.max_packet_size (the event is then "
            "dead-lettered and the rest flows on) or use mqtt.version: 5",
            "topic", o->topic, "size", size, NULL);
}

static void went_down(struct r2m_publish *p, int64_t now, const char *why, int code,
                      const char *reason)
{
    int was_up = p->state == ST_UP;
    if (was_up && p->cfg->mqtt.version != 5 && now - p->up_since < R2M_PUBLISH_STABLE_MS)
        suspect_drop(p);
    requeue_inflight(p);
    p->state = ST_DOWN;
    /* the backoff starts over only after a connection that lasted: a broker
     * that accepts and then drops every connection is retried ever slower */
    if (was_up && now - p->up_since >= R2M_PUBLISH_STABLE_MS) {
        p->backoff_ms = 1000;
        r2m_log_limit_clear(&p->conn_log);
    }
    p->retry_at =
        now + p->backoff_ms / 2 +
        (int64_t)((p->rng = p->rng * 6364136223846793005ull + 1) >> 33) % (p->backoff_ms / 2 + 1);
    if (p->backoff_ms < 30000)
        p->backoff_ms *= 2;
    if (p->backoff_ms > 30000)
        p->backoff_ms = 30000;
    /* rate limited like failed polls: a new cause at once, the same one
     * again at the 2nd, 4th, 8th... time in a row */
    p->told_down = r2m_log_limit_hit(&p->conn_log, was_up ? KIND_LOST : code ? code : KIND_OTHER);
    if (p->told_down) {
        char c[16], q[24], n[24], retry[24];
        snprintf(c, sizeof c, "%d", code);
        snprintf(q, sizeof q, "%zu", p->queued);
        snprintf(n, sizeof n, "%lu", p->conn_log.count);
        snprintf(retry, sizeof retry, "%lldms", (long long)(p->retry_at - now));
        r2m_log(was_up ? R2M_LOG_WARN : R2M_LOG_ERROR, why, "broker", p->shown_url, "reason",
                reason, "code", c, "consecutive", n, "retry_in", retry, "queued", q, NULL);
    }
}

/* The connection is gone (paho's connection-lost callback, a publish
 * failing because of it, or paho saying it is not connected). */
static void connection_lost(struct r2m_publish *p, int64_t now)
{
    if (p->state == ST_UP)
        went_down(p, now, "mqtt connection lost, will reconnect", 0,
                  now - p->up_since < R2M_PUBLISH_STABLE_MS
                      ? "the broker closed the connection soon after accepting it"
                      : "the connection dropped");
}

/* The next send id whose context entry is free, with that entry taken;
 * NULL when every entry waits for a callback. */
static struct pub_ctx *ctx_take(struct r2m_publish *p, uint64_t *send_id)
{
    struct pub_ctx *c = NULL;
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < PUB_CTX_RING && !c; i++) {
        uint64_t id = ++p->next_send_id;
        struct pub_ctx *e = &p->ctx[id % PUB_CTX_RING];
        if (!e->taken) {
            e->send_id = id;
            e->taken = 1;
            *send_id = id;
            c = e;
        }
    }
    pthread_mutex_unlock(&p->lock);
    return c;
}

/* Frees entries no callback will come for: a send paho did not accept
 * (c), or every entry once the client is destroyed (c NULL). */
static void ctx_release(struct r2m_publish *p, struct pub_ctx *c)
{
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < PUB_CTX_RING; i++)
        if (!c || c == &p->ctx[i])
            p->ctx[i].taken = 0;
    pthread_mutex_unlock(&p->lock);
}

static void send_some(struct r2m_publish *p, int64_t now)
{
    if (p->state != ST_UP || (p->hold_until && now < p->hold_until))
        return;
    p->hold_until = 0;
    while (p->head && p->n_inflight < p->window) {
        struct msg *m = p->head;
        uint64_t size = packet_size(p, m), max = r2m_publish_max_packet(p);
        if (size > max) {
            /* checked before sending: the broker would refuse it, or (MQTT
             * 3.1.1) drop the connection, on every attempt */
            char words[200];
            snprintf(words, sizeof words,
                     "the PUBLISH packet is %llu bytes; the broker takes at most %llu "
                     "(mqtt.max_packet_size, or the broker's Maximum Packet Size)",
                     (unsigned long long)size, (unsigned long long)max);
            refuse(p, unlink_head(p), "packet_too_large", words);
            continue;
        }
        MQTTAsync_message pm = MQTTAsync_message_initializer;
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
        MQTTProperty prop;
        pm.payload = m->payload;
        pm.payloadlen = (int)m->len;
        pm.qos = p->cfg->mqtt.qos;
        pm.retained = m->retained;
        struct pub_ctx *c = ctx_take(p, &m->send_id);
        if (!c) {
            /* paho owes a callback for every entry: wait like for a full
             * buffer */
            m->send_id = 0;
            p->hold_until = now + 50;
            return;
        }
        ro.context = c;
        if (p->cfg->mqtt.version == 5) {
            ro.onSuccess5 = on_pub_ok5;
            ro.onFailure5 = on_pub_fail5;
            prop.identifier = MQTTPROPERTY_CODE_CONTENT_TYPE;
            prop.value.data.data = (char *)content_type;
            prop.value.data.len = (int)strlen(content_type);
            if (!m->status && MQTTProperties_add(&pm.properties, &prop)) {
                /* out of memory: try again shortly, like a full buffer */
                MQTTProperties_free(&pm.properties);
                ctx_release(p, c);
                m->send_id = 0;
                p->hold_until = now + 50;
                return;
            }
        } else {
            ro.onSuccess = on_pub_ok;
            ro.onFailure = on_pub_fail;
        }
        int rc = MQTTAsync_sendMessage(p->client, m->topic, &pm, &ro);
        MQTTProperties_free(&pm.properties);
        if (rc != MQTTASYNC_SUCCESS)
            ctx_release(p, c); /* not accepted: no callback will come */
        if (rc == MQTTASYNC_MAX_BUFFERED_MESSAGES || rc == MQTTASYNC_MAX_BUFFERED) {
            /* paho's own buffer is full: not an error, wait for it to drain */
            m->send_id = 0;
            p->hold_until = now + 50;
            return;
        }
        if (rc != MQTTASYNC_SUCCESS && r2m_publish_refusal(rc)) {
            /* paho refuses this message, and would again on every resend */
            refuse(p, unlink_head(p), r2m_publish_refusal(rc),
                   r2m_publish_code_words(p->cfg->mqtt.version, rc));
            continue;
        }
        if (rc == MQTTASYNC_DISCONNECTED) {
            /* the connection dropped and its report is still on its way */
            m->send_id = 0;
            connection_lost(p, now);
            return;
        }
        if (rc != MQTTASYNC_SUCCESS) {
            /* not sent: leave it at the head and treat the link as broken */
            m->send_id = 0;
            went_down(p, now, "mqtt publish refused by client library", rc,
                      r2m_publish_code_words(p->cfg->mqtt.version, rc));
            return;
        }
        p->inflight[p->n_inflight++] = unlink_head(p);
    }
}

/* CONNACK: up, with the broker's limits; "online" first in the queue. */
static void handle_connected(struct r2m_publish *p, const struct report *r, int64_t now)
{
    if (p->state == ST_UP)
        return;
    p->state = ST_UP;
    p->up_since = now;
    p->window =
        r->code > 0 && (size_t)r->code < R2M_PUBLISH_WINDOW ? (size_t)r->code : R2M_PUBLISH_WINDOW;
    p->broker_max_packet = (uint64_t)r->val;
    p->ever_connected = 1;
    /* the recovery from failed attempts is always told; a broker
     * that keeps dropping the connection is told as rarely as the
     * drops are */
    if (p->conn_log.last != KIND_LOST || p->told_down) {
        char mp[24];
        snprintf(mp, sizeof mp, "%llu", (unsigned long long)r->val);
        r2m_log(R2M_LOG_INFO, "mqtt connected", "broker", p->shown_url, "max_packet_size",
                r->val ? mp : "none", NULL);
    }
    if (p->status_topic) {
        /* "online" goes first so it precedes any event of this
         * session; one that a dropped connection left unsent is
         * stale: it goes, or every reconnect would add one more */
        drop_status(p);
        queue_status(p, "online", 1);
    }
}

/* The broker has a message: it leaves for good, and the outbox hears. */
static void handle_pub_ok(struct r2m_publish *p, const struct report *r, int64_t now)
{
    struct msg *m;
    /* not in flight any more: requeued by a lost connection, yet
     * the broker has it - it must not go out again */
    if (!(m = take_inflight(p, r->send_id)) && !(m = take_queued(p, r->send_id)))
        return;
    if (m->id && p->on_ack)
        p->on_ack(p->ack_ctx, m->id, now - m->enq_ms);
    p->n_status -= m->status;
    msg_free(m);
    p->acked++;
    r2m_log_limit_clear(&p->pub_log);
}

/* A publish failed: refused for good (dead letter), lost with the
 * connection, or transient (back to its place, resent later). */
static void handle_pub_fail(struct r2m_publish *p, const struct report *r, int64_t now)
{
    struct msg *m;
    const char *reason;
    if (!(m = take_inflight(p, r->send_id)))
        return;
    if ((reason = r2m_publish_refusal(r->code))) {
        refuse(p, m, reason, r2m_publish_code_words(p->cfg->mqtt.version, r->code));
        return;
    }
    if (r->code == MQTTASYNC_OPERATION_INCOMPLETE || r->code == MQTTASYNC_DISCONNECTED) {
        /* paho discards what was in flight when the connection
         * closes, before it reports the loss: that is one event,
         * told once, not a failed publish per message */
        if (p->state == ST_UP) {
            /* back among those in flight: went_down requeues them
             * all and sees which one was the oldest */
            p->inflight[p->n_inflight++] = m;
            connection_lost(p, now);
        } else {
            put_back(p, m);
        }
        return;
    }
    if (p->state == ST_UP) {
        if (r2m_log_limit_hit(&p->pub_log, r->code ? r->code : -1000)) {
            char c[16], k[24];
            snprintf(c, sizeof c, "%d", r->code);
            snprintf(k, sizeof k, "%lu", p->pub_log.count);
            r2m_log(R2M_LOG_WARN, "mqtt publish failed, will resend", "topic", m->topic, "reason",
                    r2m_publish_code_words(p->cfg->mqtt.version, r->code), "code", c, "consecutive",
                    k, NULL);
        }
        p->hold_until = now + 1000;
    }
    /* only this one goes back, to its place; the others in flight
     * stay there and get their acknowledgements */
    put_back(p, m);
}

/* After the backoff: a new client, and a new connection attempt. */
static void reconnect_if_due(struct r2m_publish *p, int64_t now)
{
    if (p->state != ST_DOWN || now < p->retry_at)
        return;
    /* a new client for every new connection: paho keeps the publish
     * commands it had not written yet when the connection dropped
     * ("outside the scope of the MQTT session") and sends them after
     * the next CONNACK - besides the copies requeue_inflight put back,
     * so one event would go out twice on one connection, the stale
     * copies first. Destroying the client drops them (their failure
     * reports carry old send ids and change nothing). */
    MQTTAsync_destroy(&p->client);
    ctx_release(p, NULL); /* no callback of the old client can come now */
    if (make_client(p)) {
        p->retry_at = now + p->backoff_ms;
        if (r2m_log_limit_hit(&p->conn_log, KIND_OTHER))
            r2m_log(R2M_LOG_ERROR, "mqtt client could not be created; will retry", "broker",
                    p->shown_url, NULL);
    } else {
        /* a failure is logged there and retried at retry_at */
        (void)r2m_publish_connect(p, now);
    }
}

void r2m_publish_dispatch(struct r2m_publish *p, int64_t now)
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
        char why[sizeof p->conn_why];
        switch (r->kind) {
        case REP_CONNECTED:
            handle_connected(p, r, now);
            break;
        case REP_CONNECT_FAILED:
            if (p->state != ST_CONNECTING)
                break;
            pthread_mutex_lock(&p->lock);
            snprintf(why, sizeof why, "%s", p->conn_why);
            pthread_mutex_unlock(&p->lock);
            went_down(p, now, "mqtt connect failed, will retry", r->code,
                      why[0] ? why : r2m_publish_code_words(p->cfg->mqtt.version, r->code));
            break;
        case REP_LOST:
            connection_lost(p, now);
            break;
        case REP_DISCONNECT:
            /* the connection is gone now: paho 1.3.12 clears "connected"
             * before it closes the session, so no connection-lost report
             * follows, and an idle bridge would look connected for good.
             * With the reason in words (0x8E: another client has our
             * client id) */
            if (p->state == ST_UP)
                went_down(p, now, "mqtt connection closed by the broker, will reconnect", r->code,
                          r->code ? r2m_publish_code_words(5, r->code)
                                  : "the broker ended the connection (normal disconnection)");
            break;
        case REP_PUB_OK:
            handle_pub_ok(p, r, now);
            break;
        case REP_PUB_FAIL:
            handle_pub_fail(p, r, now);
            break;
        }
    }
    free(reps);
    if (overflow && p->state == ST_UP)
        went_down(p, now, "mqtt report queue overflow", 0, "out of memory recording reports");
    reconnect_if_due(p, now);
    send_some(p, now);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void r2m_publish_goodbye(struct r2m_publish *p, int64_t timeout_ms)
{
    if (!p || p->state != ST_UP)
        return;
    int64_t end = mono_ms() + timeout_ms;
    if (p->status_topic) {
        /* even when the outbox is full: it is no event */
        queue_status(p, "offline", 0);
        /* the status message is last in the queue: wait for the queue */
        while (total(p) && p->state == ST_UP && mono_ms() < end) {
            struct timespec ts = {0, 5 * 1000000};
            nanosleep(&ts, NULL);
            r2m_publish_dispatch(p, mono_ms());
        }
    }
    MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
    d.timeout = 1000;
    /* refused: nothing to wait for (r2m_publish_free destroys the client) */
    int rc = MQTTAsync_disconnect(p->client, &d);
    for (int i = 0; rc == MQTTASYNC_SUCCESS && i < 200 && MQTTAsync_isConnected(p->client); i++) {
        struct timespec ts = {0, 5 * 1000000};
        nanosleep(&ts, NULL);
    }
    p->state = ST_IDLE;
}

void r2m_publish_free(struct r2m_publish *p)
{
    if (!p)
        return;
    if (p->client) {
        MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
        d.timeout = 1000;
        /* refused (not connected after all): destroying is all there is */
        if (MQTTAsync_isConnected(p->client) &&
            MQTTAsync_disconnect(p->client, &d) != MQTTASYNC_SUCCESS)
            r2m_log(R2M_LOG_DEBUG, "mqtt disconnect refused; closing anyway", NULL);
        MQTTAsync_destroy(&p->client);
    }
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
