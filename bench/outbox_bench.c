/* outbox_bench.c - events through the transactional outbox against a bare paho publisher.
 *
 * Durability issue: "events committed and published per second through the
 * outbox with QoS 1 to a local mosquitto, printed beside the rate of a
 * minimal paho MQTTAsync QoS 1 publisher (same broker, same payloads, same
 * in-flight window, no outbox) ... as a ratio. Target: the outbox path keeps
 * at least 50% of the raw rate."
 *
 * Every path publishes the same messages: message i is a ~630-byte
 * CloudEvents "rest2mqtt.item.updated" event (before, after and a JSON Patch
 * of an order, the shape src/event.c renders) on rest2mqtt/orders/<key>/updated,
 * distinct per i, QoS 1, MQTT 5 with the content-type property the real
 * publisher adds, at most R2M_PUB_WINDOW (64) unacknowledged. Each path
 * renders each message once as it produces it (about 1 us).
 *
 *   raw       a minimal MQTTAsync publisher written here: createWithOptions
 *             (MQTTVERSION_5, PERSISTENCE_NONE), maxInflight 64; the main
 *             thread keeps at most 64 publishes unacknowledged and counts
 *             onSuccess5 (PUBACK) under a mutex. Rate: messages / time from the
 *             first send until the last PUBACK.
 *   outbox    the real modules, driven the way src/bridge.c drives them: one
 *             loop thread with epoll on r2m_pub_fd. A turn is epoll_wait,
 *             r2m_pub_dispatch, then the producer, then r2m_pub_dispatch and
 *             the ack flush. The producer commits events like emit_publish:
 *             r2m_store_begin, r2m_store_outbox_add per event,
 *             r2m_store_commit, then r2m_pub_enqueue of copies with the row
 *             ids. It commits B events per transaction (B=1: one event per
 *             poll, the common case; B=10) and keeps going while
 *             r2m_pub_pending < 4 windows. The ack callback collects ids, and
 *             the flush deletes them in one transaction per turn (like
 *             bridge.c on_ack / flush_acks). Rate: events / time from the
 *             first commit until every event is acknowledged AND deleted; the
 *             outbox must be empty at the end (checked, else exit 2).
 *             The real store, with state.sync normal (the default) and full.
 *   turn      (context) the outbox path on the real store with one event per
 *             poll, but the polls of a loop turn share one transaction, committed
 *             before the turn's r2m_pub_dispatch: group commit, as bridge.c
 *             could do it. "commits/event" shows what it amortises.
 *   sqlite    the same loop on a copy of the store's outbox code written
 *             here with sqlite3 directly: the same pragmas (EXCLUSIVE
 *             locking, WAL), the same table and statements (BEGIN IMMEDIATE,
 *             INSERT INTO outbox, DELETE ... WHERE id, COMMIT), only
 *             synchronous differs. "sqlite FULL" checks that the copy
 *             matches the real store; "sqlite NORMAL" shows what
 *             synchronous=NORMAL would give. Context only, not the verdict.
 *
 * Each path first runs for 0.5 s to estimate its rate; its N is then set so
 * that one measurement takes about --seconds (default 3). Then 3 rounds,
 * each running raw and then every outbox path once, so load from other work
 * hits all paths alike; each figure is the best of the 3 runs. Every
 * outbox measurement uses a new database file in --dir and a new MQTT
 * connection (connecting is not timed).
 *
 * Verdict: outbox B=1 on the real store (state.sync normal), best of 3,
 * divided by raw, best of 3, at least 0.5.
 *
 * The broker must accept 64 in flight: paho lowers maxInflight to the
 * Receive Maximum of the CONNACK (mosquitto sends max_inflight_messages,
 * default 20) and parks the other publishes in its command queue, which its
 * send thread looks at again on the next publish or after a 1 s timed wait.
 * With a window of 64 that stalls the end of every burst for up to a second
 * per 20 messages, in every path alike, and the rates become noise.
 * bench/outbox/run sets max_inflight_messages 64; the program prints the
 * Receive Maximum it got and warns when it is below 64.
 *
 * Usage: outbox_bench [--broker HOST:PORT] [--dir DIR] [--seconds S] [--quick]
 *                     [--only PATH --count N]
 *   --broker   the mosquitto to use (default 127.0.0.1:1883); bench/outbox/run
 *              starts one on a free port
 *   --dir      where the database files go (default: a new folder in /tmp)
 *   --seconds  target time per measurement (default 3; --quick: 1)
 *   --only     one measurement of N messages (default 20000), for profilers:
 *              raw, store:B, sqlite-full:B or sqlite-normal:B (B a number, or
 *              "turn" for one transaction per loop turn)
 * Exit status: 0 when the verdict passes, 1 when it fails, 2 on error. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>
#include <sqlite3.h>

#include "r2m/config.h"
#include "r2m/error.h"
#include "r2m/http.h"
#include "r2m/log.h"
#include "r2m/publish.h"
#include "r2m/store.h"

#define SEED       UINT64_C(0x0b0c5eed7a11ce55)
#define WINDOW     R2M_PUB_WINDOW
#define TOP_UP     (4 * WINDOW) /* the producer runs while fewer are pending */
#define MAX_QUEUED 100000       /* state.outbox_max's default */
#define MAX_N      1000000u
#define CALIBRATE  0.5 /* seconds */
#define ROUNDS     3
#define BUDGET     0.5
#define STALL_MS   15000 /* no progress for this long: error */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "outbox_bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the events ---------------------------------------------------------- */

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static const char *const STATUS[] = {"open", "paid", "packed", "sent", "held"};
static const char *const NAMES[] = {"Berg", "Hansen",   "Olsen", "Dahl",   "Lie",
                                    "Moe",  "Johansen", "Bakke", "Strand", "Nilsen"};
static const char *const CITIES[] = {"Oslo", "Bergen", "Trondheim", "Tromsø",
                                     "Bodø", "Hamar",  "Molde",     "Ålesund"};

struct event {
    char topic[64];
    size_t topic_len;
    char payload[1024];
    size_t len;
};

static int put_item(char *p, size_t cap, uint64_t key, unsigned st, unsigned qty, unsigned price,
                    unsigned nm, unsigned city, unsigned sku, unsigned q)
{
    return snprintf(p, cap,
                    "{\"id\":%" PRIu64 ",\"st\":\"%s\",\"qty\":%u,\"price\":%u.%02u,"
                    "\"cust\":{\"name\":\"%s\",\"addr\":{\"city\":\"%s\"}},"
                    "\"lines\":[{\"sku\":\"K%04u\",\"q\":%u}]}",
                    key, STATUS[st], qty, price / 100, price % 100, NAMES[nm], CITIES[city], sku,
                    q);
}

/* Message i: an "updated" event of order 100000+i (status and qty change),
 * rendered as src/event.c renders events. */
static void make_event(uint64_t i, struct event *e)
{
    uint64_t s = SEED ^ (i * UINT64_C(0x2545f4914f6cdd1d));
    uint64_t key = 100000 + i, r = rnd(&s), id = rnd(&s);
    unsigned st = (unsigned)(r % 4), qty = 1 + (unsigned)(r >> 8) % 20,
             price = 100 + (unsigned)(r >> 16) % 9900, nm = (unsigned)(r >> 32) % 10,
             city = (unsigned)(r >> 40) % 8, sku = (unsigned)(r >> 44) % 10000,
             q = 1 + (unsigned)(r >> 58) % 9;
    time_t t = (time_t)(UINT64_C(1767225600) + i);
    struct tm tm;
    gmtime_r(&t, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);

    int n = snprintf(e->topic, sizeof e->topic, "rest2mqtt/orders/%" PRIu64 "/updated", key);
    e->topic_len = (size_t)n;
    char *p = e->payload;
    size_t cap = sizeof e->payload;
    n = snprintf(p, cap,
                 "{\"specversion\":\"1.0\",\"id\":\"%016" PRIx64 "\","
                 "\"source\":\"rest2mqtt://bench/orders\",\"type\":\"rest2mqtt.item.updated\","
                 "\"subject\":\"%" PRIu64 "\",\"time\":\"%s.%03uZ\","
                 "\"datacontenttype\":\"application/json\",\"data\":{\"endpoint\":\"orders\","
                 "\"key\":\"%" PRIu64 "\",\"op\":\"updated\",\"before\":",
                 id, key, ts, (unsigned)(id % 1000), key);
    n += put_item(p + n, cap - (size_t)n, key, st, qty, price, nm, city, sku, q);
    n += snprintf(p + n, cap - (size_t)n, ",\"after\":");
    n += put_item(p + n, cap - (size_t)n, key, st + 1, qty + 1, price, nm, city, sku, q);
    n += snprintf(p + n, cap - (size_t)n,
                  ",\"patch\":[{\"op\":\"replace\",\"path\":\"/st\",\"value\":\"%s\"},"
                  "{\"op\":\"replace\",\"path\":\"/qty\",\"value\":%u}]}}",
                  STATUS[st + 1], qty + 1);
    e->len = (size_t)n;
}

/* ---- options ------------------------------------------------------------- */

enum path_kind { P_RAW, P_STORE, P_STORE_NORMAL, P_SQLITE_FULL, P_SQLITE_NORMAL };

struct path {
    int kind;
    size_t batch; /* events per transaction (outbox paths); 0: all of a turn's */
    const char *label, *sync;
};

static struct {
    char host_port[128];
    char tcp_uri[160];  /* for paho */
    char mqtt_url[160]; /* for struct r2m_config */
    char dir[256];
    double seconds;
} opt;

static unsigned conn_seq;    /* distinct client ids */
static char current_db[512]; /* removed at exit, with the folder if we made it */
static int own_dir;

static void remove_db(void)
{
    const char *suffix[] = {"", "-wal", "-shm", "-journal"};
    char f[600];
    for (int i = 0; current_db[0] && i < 4; i++) {
        snprintf(f, sizeof f, "%s%s", current_db, suffix[i]);
        unlink(f);
    }
    current_db[0] = '\0';
}

static void cleanup(void)
{
    remove_db();
    if (own_dir)
        rmdir(opt.dir);
}

/* ---- (a) raw: a minimal MQTTAsync QoS 1 publisher ------------------------ */

struct raw {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int connected, conn_failed, disconnected;
    int receive_max; /* the broker's Receive Maximum (CONNACK), 65535 if absent */
    uint64_t acked, failed;
};

static int broker_receive_max = -1; /* as the last raw connection saw it */

static void raw_signal(struct raw *r, int what)
{
    pthread_mutex_lock(&r->mu);
    switch (what) {
    case 0:
        r->connected = 1;
        break;
    case 1:
        r->conn_failed = 1;
        break;
    case 2:
        r->acked++;
        break;
    case 3:
        r->failed++;
        break;
    default:
        r->disconnected = 1;
    }
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void raw_conn_ok(void *ctx, MQTTAsync_successData5 *d)
{
    struct raw *r = ctx;
    int max = 65535;
    if (d && MQTTProperties_hasProperty(&d->properties, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM))
        max = MQTTProperties_getNumericValue(&d->properties, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM);
    pthread_mutex_lock(&r->mu);
    r->receive_max = max;
    pthread_mutex_unlock(&r->mu);
    raw_signal(ctx, 0);
}

static void raw_conn_fail(void *ctx, MQTTAsync_failureData5 *d)
{
    (void)d;
    raw_signal(ctx, 1);
}

static void raw_pub_ok(void *ctx, MQTTAsync_successData5 *d)
{
    (void)d;
    raw_signal(ctx, 2);
}

static void raw_pub_fail(void *ctx, MQTTAsync_failureData5 *d)
{
    (void)d;
    raw_signal(ctx, 3);
}

static void raw_disc_ok(void *ctx, MQTTAsync_successData5 *d)
{
    (void)d;
    raw_signal(ctx, 4);
}

static void raw_disc_fail(void *ctx, MQTTAsync_failureData5 *d)
{
    (void)d;
    raw_signal(ctx, 4);
}

/* Waits on r->cv until *flag (NULL: any signal) or ms pass; mutex held. */
static void raw_wait(struct raw *r, const int *flag, int ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    if (!flag) {
        pthread_cond_timedwait(&r->cv, &r->mu, &dl);
        return;
    }
    while (!*flag && pthread_cond_timedwait(&r->cv, &r->mu, &dl) != ETIMEDOUT)
        ;
}

/* Publishes messages 0..n-1 (fewer if cut > 0: no new send after cut seconds)
 * and returns the rate; *done = messages acknowledged. */
static double run_raw(uint64_t n, double cut, uint64_t *done)
{
    struct raw r = {.acked = 0};
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    char cid[64];
    snprintf(cid, sizeof cid, "r2m-bench-raw-%d-%u", (int)getpid(), conn_seq++);
    MQTTAsync c;
    MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
    co.MQTTVersion = MQTTVERSION_5;
    co.maxBufferedMessages = 16 * WINDOW; /* as src/publish.c; never reached with 64 */
    if (MQTTAsync_createWithOptions(&c, opt.tcp_uri, cid, MQTTCLIENT_PERSISTENCE_NONE, NULL, &co) !=
        MQTTASYNC_SUCCESS)
        die("raw: MQTTAsync_createWithOptions failed");
    MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer5;
    o.keepAliveInterval = 30;
    o.cleanstart = 1;
    o.maxInflight = WINDOW;
    o.connectTimeout = 10;
    o.onSuccess5 = raw_conn_ok;
    o.onFailure5 = raw_conn_fail;
    o.context = &r;
    pthread_mutex_lock(&r.mu);
    if (MQTTAsync_connect(c, &o) != MQTTASYNC_SUCCESS)
        die("raw: MQTTAsync_connect failed");
    for (double end = now_s() + 10; !r.connected && !r.conn_failed && now_s() < end;)
        raw_wait(&r, NULL, 100);
    if (!r.connected)
        die("raw: cannot connect to %s", opt.tcp_uri);
    broker_receive_max = r.receive_max;

    MQTTProperty ct;
    ct.identifier = MQTTPROPERTY_CODE_CONTENT_TYPE;
    ct.value.data.data = "application/cloudevents+json";
    ct.value.data.len = (int)strlen(ct.value.data.data);
    struct event ev;
    uint64_t sent = 0, last_acked = 0;
    double t0 = now_s(), progress = t0;
    while (r.acked < n) {
        while (sent < n && sent - r.acked < WINDOW) {
            if (cut > 0 && now_s() - t0 >= cut) {
                n = sent;
                break;
            }
            pthread_mutex_unlock(&r.mu);
            make_event(sent, &ev);
            MQTTAsync_message m = MQTTAsync_message_initializer;
            MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
            m.payload = ev.payload;
            m.payloadlen = (int)ev.len;
            m.qos = 1;
            m.retained = 0;
            MQTTProperties_add(&m.properties, &ct);
            ro.onSuccess5 = raw_pub_ok;
            ro.onFailure5 = raw_pub_fail;
            ro.context = &r;
            int rc = MQTTAsync_sendMessage(c, ev.topic, &m, &ro);
            MQTTProperties_free(&m.properties);
            if (rc != MQTTASYNC_SUCCESS)
                die("raw: MQTTAsync_sendMessage returned %d", rc);
            pthread_mutex_lock(&r.mu);
            sent++;
        }
        if (r.failed)
            die("raw: %" PRIu64 " publishes failed", r.failed);
        if (r.acked >= n)
            break;
        raw_wait(&r, NULL, 1000); /* every callback signals */
        if (r.acked != last_acked) {
            last_acked = r.acked;
            progress = now_s();
        } else if (now_s() - progress > STALL_MS / 1000.0) {
            die("raw: no PUBACK for %d s (%" PRIu64 " of %" PRIu64 ")", STALL_MS / 1000, r.acked,
                n);
        }
    }
    double t1 = now_s();
    *done = r.acked;

    MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer5;
    d.timeout = 1000;
    d.onSuccess5 = raw_disc_ok;
    d.onFailure5 = raw_disc_fail;
    d.context = &r;
    if (MQTTAsync_disconnect(c, &d) == MQTTASYNC_SUCCESS)
        raw_wait(&r, &r.disconnected, 2000);
    pthread_mutex_unlock(&r.mu);
    MQTTAsync_destroy(&c);
    pthread_cond_destroy(&r.cv);
    pthread_mutex_destroy(&r.mu);
    return (double)*done / (t1 - t0);
}

/* ---- the outbox: the real store, or the same statements on sqlite3 ------- */

enum { S_BEGIN, S_COMMIT, S_ROLLBACK, S_ADD, S_DEL, S_COUNT, S__N };

struct sink {
    struct r2m_store *store; /* the real store, or: */
    sqlite3 *db;
    sqlite3_stmt *q[S__N];
    uint64_t commits;
};

/* src/store.c's outbox table and statements */
static const char *const sink_sql[S__N] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_ADD] = "INSERT INTO outbox(topic, payload, retained) VALUES (?1, ?2, ?3)",
    [S_DEL] = "DELETE FROM outbox WHERE id = ?1",
    [S_COUNT] = "SELECT count(*) FROM outbox",
};

static void sink_open(struct sink *s, int kind, const char *path)
{
    memset(s, 0, sizeof *s);
    if (kind == P_STORE || kind == P_STORE_NORMAL) {
        char err[512];
        if (r2m_store_new(&(struct r2m_store_params){.path = path}, err, sizeof err, &s->store))
            die("%s", err);
        /* state.sync: normal (the default) or full, as the bridge sets it */
        if (r2m_store_set_sync(s->store, kind == P_STORE))
            die("%s: cannot set synchronous", path);
        return;
    }
    /* the pragmas of r2m_store_new, except synchronous */
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK)
        die("%s: cannot open", path);
    sqlite3_extended_result_codes(s->db, 1);
    const char *setup[] = {
        "PRAGMA locking_mode=EXCLUSIVE",
        kind == P_SQLITE_FULL ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
        "PRAGMA foreign_keys=OFF",
        "PRAGMA journal_mode=WAL",
        "CREATE TABLE IF NOT EXISTS outbox("
        "  id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL,"
        "  retained INTEGER NOT NULL)",
    };
    for (size_t i = 0; i < sizeof setup / sizeof setup[0]; i++)
        if (sqlite3_exec(s->db, setup[i], NULL, NULL, NULL) != SQLITE_OK)
            die("%s: %s: %s", path, setup[i], sqlite3_errmsg(s->db));
    for (int i = 0; i < S__N; i++)
        if (sqlite3_prepare_v3(s->db, sink_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->q[i], NULL) !=
            SQLITE_OK)
            die("%s: %s", path, sqlite3_errmsg(s->db));
}

static void sink_close(struct sink *s)
{
    if (s->store)
        r2m_store_free(s->store);
    for (int i = 0; i < S__N; i++)
        sqlite3_finalize(s->q[i]);
    if (s->db)
        sqlite3_close(s->db);
}

/* as store.c's step_done */
static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : R2M_E_IO;
}

static int sink_begin(struct sink *s)
{
    return s->store ? r2m_store_begin(s->store) : step_done(s->q[S_BEGIN]);
}

static int sink_commit(struct sink *s)
{
    s->commits++;
    return s->store ? r2m_store_commit(s->store) : step_done(s->q[S_COMMIT]);
}

static int sink_add(struct sink *s, const struct event *e, int64_t *id)
{
    if (s->store)
        return r2m_store_outbox_add(s->store, NULL, e->topic, e->topic_len, e->payload, e->len, 0,
                                    id);
    sqlite3_stmt *st = s->q[S_ADD];
    sqlite3_bind_text64(st, 1, e->topic, e->topic_len, SQLITE_STATIC, SQLITE_UTF8);
    sqlite3_bind_blob64(st, 2, e->payload, e->len, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, 0);
    int r = step_done(st);
    if (!r)
        *id = sqlite3_last_insert_rowid(s->db);
    return r;
}

static int sink_delete(struct sink *s, int64_t id)
{
    if (s->store)
        return r2m_store_outbox_delete(s->store, id);
    sqlite3_bind_int64(s->q[S_DEL], 1, id);
    return step_done(s->q[S_DEL]);
}

static int64_t sink_count(struct sink *s)
{
    if (s->store)
        return r2m_store_outbox_count(s->store);
    sqlite3_stmt *st = s->q[S_COUNT];
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_reset(st);
    return n;
}

static const char *sink_err(struct sink *s)
{
    return s->store ? r2m_store_errmsg(s->store) : sqlite3_errmsg(s->db);
}

/* ---- (b) the outbox loop -------------------------------------------------- */

struct acks {
    int64_t *ids;
    size_t n, cap;
    uint64_t deleted;
};

/* bridge.c on_ack: collect; the store is touched by the flush only */
static void on_ack(void *ctx, int64_t id, int64_t latency_ms)
{
    (void)latency_ms;
    struct acks *a = ctx;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 256;
        int64_t *p = realloc(a->ids, cap * sizeof *p);
        if (!p)
            die("out of memory");
        a->ids = p;
        a->cap = cap;
    }
    a->ids[a->n++] = id;
}

/* bridge.c flush_acks: one transaction per loop turn */
static void flush_acks(struct acks *a, struct sink *s)
{
    if (!a->n)
        return;
    int r = sink_begin(s);
    for (size_t i = 0; !r && i < a->n; i++)
        r = sink_delete(s, a->ids[i]);
    if (!r)
        r = sink_commit(s);
    if (r)
        die("deleting acknowledged events: %s", sink_err(s));
    a->deleted += a->n;
    a->n = 0;
}

struct outbox_result {
    double rate;
    uint64_t done;
    double commits_per_event;
};

static void run_outbox(const struct path *pa, uint64_t n, double cut, struct outbox_result *res)
{
    char *path = current_db, cid[64];
    unsigned seq = conn_seq++;
    snprintf(current_db, sizeof current_db, "%s/outbox-%u.db", opt.dir, seq);
    snprintf(cid, sizeof cid, "r2m-bench-outbox-%d-%u", (int)getpid(), seq);
    struct sink s;
    sink_open(&s, pa->kind, path);

    /* as tests/unit/test_publish.c fills it */
    struct r2m_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.mqtt.url = opt.mqtt_url;
    cfg.mqtt.client_id = cid;
    cfg.mqtt.version = 5;
    cfg.mqtt.qos = 1;
    cfg.mqtt.keepalive_ms = 30000;
    cfg.mqtt.topic_prefix = "rest2mqtt";
    cfg.state.path = path;
    cfg.state.outbox_max = MAX_QUEUED;

    struct r2m_pub *p;
    if (r2m_pub_new(&p, &cfg, MAX_QUEUED))
        die("r2m_pub_new failed");
    struct acks a = {.ids = NULL};
    r2m_pub_on_ack(p, on_ack, &a);
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event reg = {.events = EPOLLIN};
    if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, r2m_pub_fd(p), &reg))
        die("epoll: %s", strerror(errno));
    r2m_pub_connect(p, r2m_http_now_ms());
    for (int i = 0; i < 500 && !r2m_pub_connected(p); i++) {
        struct epoll_event ev;
        epoll_wait(epfd, &ev, 1, 20);
        r2m_pub_dispatch(p, r2m_http_now_ms());
    }
    if (!r2m_pub_connected(p))
        die("outbox: cannot connect to %s", opt.mqtt_url);

    size_t most = pa->batch ? pa->batch : TOP_UP; /* events in one transaction */
    int64_t *ids = malloc(most * sizeof *ids);
    struct event *evs = malloc(most * sizeof *evs);
    if (!ids || !evs)
        die("out of memory");
    uint64_t produced = 0, last_deleted = 0;
    double t0 = now_s(), progress = t0;
    while (a.deleted < n) {
        struct epoll_event e;
        int produce = produced < n && r2m_pub_pending(p) < TOP_UP;
        epoll_wait(epfd, &e, 1, produce ? 0 : 1000);
        r2m_pub_dispatch(p, r2m_http_now_ms());
        /* the polls of this turn: one emit_publish each (batch 0: all of
         * them in one transaction, committed before the turn's dispatch) */
        while (produced < n && r2m_pub_pending(p) < TOP_UP) {
            if (cut > 0 && now_s() - t0 >= cut) {
                n = produced;
                break;
            }
            size_t b = pa->batch ? pa->batch : TOP_UP - r2m_pub_pending(p);
            if (b > n - produced)
                b = (size_t)(n - produced);
            int r = sink_begin(&s);
            for (size_t k = 0; !r && k < b; k++) {
                make_event(produced + k, &evs[k]);
                r = sink_add(&s, &evs[k], &ids[k]);
            }
            if (!r)
                r = sink_commit(&s);
            if (r)
                die("committing events: %s", sink_err(&s));
            /* committed: queue copies, as emit_publish does */
            for (size_t k = 0; k < b; k++) {
                const struct event *ev = &evs[k];
                char *t = strdup(ev->topic), *pl = malloc(ev->len + 1);
                if (!t || !pl)
                    die("out of memory");
                memcpy(pl, ev->payload, ev->len + 1);
                if (r2m_pub_enqueue(p, t, pl, ev->len, 0, ids[k]))
                    die("r2m_pub_enqueue refused a message");
            }
            produced += b;
        }
        /* end of the turn, as in bridge.c turn() */
        r2m_pub_dispatch(p, r2m_http_now_ms());
        flush_acks(&a, &s);
        if (a.deleted != last_deleted) {
            last_deleted = a.deleted;
            progress = now_s();
        } else if (now_s() - progress > STALL_MS / 1000.0) {
            die("outbox: no acknowledgement for %d s (%" PRIu64 " of %" PRIu64 ")", STALL_MS / 1000,
                a.deleted, n);
        }
    }
    double t1 = now_s();

    int64_t left = sink_count(&s);
    if (left != 0 || a.deleted != n || r2m_pub_acked(p) != n || r2m_pub_pending(p) != 0)
        die("outbox not drained: %" PRId64 " rows left, %" PRIu64 " deleted, %" PRIu64
            " acknowledged, %zu pending, %" PRIu64 " produced",
            left, a.deleted, r2m_pub_acked(p), r2m_pub_pending(p), n);
    res->done = n;
    res->rate = (double)n / (t1 - t0);
    res->commits_per_event = n ? (double)s.commits / (double)n : 0;

    free(ids);
    free(evs);
    free(a.ids);
    r2m_pub_free(p);
    close(epfd);
    sink_close(&s);
    remove_db();
}

/* One measurement: rate, and *done messages. */
static double measure(const struct path *pa, uint64_t n, double cut, uint64_t *done,
                      double *commits_per_event)
{
    if (pa->kind == P_RAW) {
        *commits_per_event = 0;
        return run_raw(n, cut, done);
    }
    struct outbox_result r;
    run_outbox(pa, n, cut, &r);
    *done = r.done;
    *commits_per_event = r.commits_per_event;
    return r.rate;
}

/* ---- main ------------------------------------------------------------------ */

static int parse_only(const char *s, struct path *pa)
{
    static const struct {
        const char *name;
        int kind;
        const char *label, *sync;
    } k[] = {{"store", P_STORE, "outbox (r2m_store)", "FULL"},
             {"store-normal", P_STORE_NORMAL, "outbox (r2m_store)", "NORMAL"},
             {"sqlite-full", P_SQLITE_FULL, "sqlite3 direct", "FULL"},
             {"sqlite-normal", P_SQLITE_NORMAL, "sqlite3 direct", "NORMAL"}};
    if (!strcmp(s, "raw")) {
        *pa = (struct path){P_RAW, 0, "raw paho MQTTAsync", "-"};
        return 0;
    }
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        size_t l = strlen(k[i].name);
        if (!strncmp(s, k[i].name, l) && !strcmp(s + l, ":turn")) {
            *pa = (struct path){k[i].kind, 0, k[i].label, k[i].sync};
            return 0;
        }
        if (!strncmp(s, k[i].name, l) && s[l] == ':') {
            long b = strtol(s + l + 1, NULL, 10);
            if (b < 1 || b > 10000)
                return -1;
            *pa = (struct path){k[i].kind, (size_t)b, k[i].label, k[i].sync};
            return 0;
        }
    }
    return -1;
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--broker HOST:PORT] [--dir DIR] [--seconds S] [--quick] "
            "[--only raw|store:B|sqlite-full:B|sqlite-normal:B --count N]\n"
            "  (B: events per transaction, or turn: all events of a loop turn)\n",
            argv0);
    exit(2);
}

int main(int argc, char **argv)
{
    const char *only = NULL;
    uint64_t count = 20000;
    snprintf(opt.host_port, sizeof opt.host_port, "127.0.0.1:1883");
    opt.seconds = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--broker") && i + 1 < argc) {
            snprintf(opt.host_port, sizeof opt.host_port, "%s", argv[++i]);
        } else if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
            snprintf(opt.dir, sizeof opt.dir, "%s", argv[++i]);
        } else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            opt.seconds = strtod(argv[++i], NULL);
            if (!(opt.seconds >= 0.2 && opt.seconds <= 60))
                die("--seconds: from 0.2 to 60");
        } else if (!strcmp(argv[i], "--quick")) {
            opt.seconds = 1;
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            only = argv[++i];
        } else if (!strcmp(argv[i], "--count") && i + 1 < argc) {
            count = strtoull(argv[++i], NULL, 10);
            if (count < 1 || count > MAX_N)
                die("--count: from 1 to %u", MAX_N);
        } else {
            usage(argv[0]);
        }
    }
    snprintf(opt.tcp_uri, sizeof opt.tcp_uri, "tcp://%s", opt.host_port);
    snprintf(opt.mqtt_url, sizeof opt.mqtt_url, "mqtt://%s", opt.host_port);
    if (!opt.dir[0]) {
        snprintf(opt.dir, sizeof opt.dir, "/tmp/r2m-outbox-bench-XXXXXX");
        if (!mkdtemp(opt.dir))
            die("mkdtemp: %s", strerror(errno));
        own_dir = 1;
    }
    atexit(cleanup);
    r2m_log_setup(R2M_LOG_ERROR, R2M_LOG_TEXT);
    setvbuf(stdout, NULL, _IOLBF, 0);

    if (only) {
        struct path pa;
        if (parse_only(only, &pa))
            usage(argv[0]);
        uint64_t done;
        double cpe;
        double rate = measure(&pa, count, 0, &done, &cpe);
        char b[24] = "turn";
        if (pa.batch)
            snprintf(b, sizeof b, "%zu", pa.batch);
        printf("%s B=%s %s: %" PRIu64 " messages, %.0f /s, %.2f commits/event\n", pa.label,
               pa.kind == P_RAW ? "-" : b, pa.sync, done, rate, cpe);
        return 0;
    }

    const struct path paths[] = {
        {P_RAW, 0, "raw paho MQTTAsync", "-"},
        {P_STORE_NORMAL, 1, "outbox (r2m_store)", "NORMAL"},
        {P_STORE_NORMAL, 10, "outbox (r2m_store)", "NORMAL"},
        {P_STORE, 1, "outbox (r2m_store)", "FULL"},
        {P_STORE, 10, "outbox (r2m_store)", "FULL"},
        {P_STORE, 0, "outbox, txn per turn", "FULL"},
    };
    enum { NP = sizeof paths / sizeof paths[0] };

    size_t total = 0, lo = SIZE_MAX, hi = 0;
    struct event ev;
    for (uint64_t i = 0; i < 1000; i++) {
        make_event(i, &ev);
        total += ev.len;
        lo = ev.len < lo ? ev.len : lo;
        hi = ev.len > hi ? ev.len : hi;
    }
    printf("rest2mqtt outbox benchmark (durability issue: outbox >= %.0f%% of a bare paho "
           "publisher)\n",
           BUDGET * 100);
    printf("messages: CloudEvents item.updated, %zu-%zu bytes (mean %zu), distinct per message, "
           "topic rest2mqtt/orders/<key>/updated\n",
           lo, hi, total / 1000);
    printf("outbox: %s/outbox-*.db (WAL), B events per transaction, producer tops up to %d "
           "pending, acks deleted once per loop turn\n",
           opt.dir, TOP_UP);
    printf("time: first send/commit to last PUBACK (raw) or last outbox DELETE (outbox); best of "
           "%d, paths alternate; ~%.1f s each\n",
           ROUNDS, opt.seconds);

    /* size: a short run per path estimates its rate */
    uint64_t n[NP];
    for (int i = 0; i < NP; i++) {
        uint64_t done;
        double cpe, rate = measure(&paths[i], MAX_N, CALIBRATE, &done, &cpe);
        double want = rate * opt.seconds;
        n[i] = want < 500 ? 500 : want > MAX_N ? MAX_N : (uint64_t)want;
        if (paths[i].batch > 1)
            n[i] -= n[i] % paths[i].batch;
    }

    printf("broker: %s, MQTT 5, QoS 1, in-flight window %d, no persistence in paho; the "
           "broker's Receive Maximum: %d\n",
           opt.host_port, WINDOW, broker_receive_max);
    if (broker_receive_max < WINDOW)
        printf("warning: Receive Maximum %d < %d: paho sends at most %d at a time and parks the "
               "rest in its command queue, which it\n  looks at again on the next send or after "
               "1 s - every path is limited by that, not by the outbox\n  (bench/outbox/run "
               "configures max_inflight_messages %d unless --broker-defaults)\n",
               broker_receive_max, WINDOW, broker_receive_max, WINDOW);
    printf("\n");

    double rate[NP][ROUNDS], cpe[NP], best[NP];
    for (int r = 0; r < ROUNDS; r++)
        for (int i = 0; i < NP; i++) {
            uint64_t done;
            rate[i][r] = measure(&paths[i], n[i], 0, &done, &cpe[i]);
            if (done != n[i])
                die("%s: %" PRIu64 " of %" PRIu64 " messages", paths[i].label, done, n[i]);
        }

    printf("%-24s %4s %-6s %7s %9s  %-20s %13s %6s\n", "path", "B", "sync", "N", "best /s",
           "runs /s", "commits/event", "ratio");
    for (int i = 0; i < NP; i++) {
        best[i] = 0;
        char runs[64];
        int k = 0;
        for (int r = 0; r < ROUNDS; r++) {
            best[i] = rate[i][r] > best[i] ? rate[i][r] : best[i];
            k += snprintf(runs + k, sizeof runs - (size_t)k, "%s%.0f", r ? " " : "", rate[i][r]);
        }
        char b[24] = "-", c[24] = "-";
        if (paths[i].batch)
            snprintf(b, sizeof b, "%zu", paths[i].batch);
        else if (paths[i].kind != P_RAW)
            snprintf(b, sizeof b, "turn");
        if (paths[i].kind != P_RAW)
            snprintf(c, sizeof c, "%.2f", cpe[i]);
        printf("%-24s %4s %-6s %7" PRIu64 " %9.0f  %-20s %13s %6.2f\n", paths[i].label, b,
               paths[i].sync, n[i], best[i], runs, c, best[i] / best[0]);
    }
    printf("NORMAL is state.sync: normal (the default: a crash of rest2mqtt loses nothing); FULL\n"
           "is state.sync: full (also survives a power loss; one disk flush per commit).\n"
           "B turn: one event per poll, but all the polls of a loop turn in one transaction - "
           "context\n\n");

    double ratio = best[1] / best[0];
    int pass = ratio >= BUDGET;
    printf("outbox B=1, state.sync normal (default): %.0f events/s / raw %.0f messages/s = %.2f  "
           "(target >= %.2f)  %s\n",
           best[1], best[0], ratio, BUDGET, pass ? "PASS" : "FAIL");
    printf("outbox B=1, state.sync full: %.0f events/s = %.2f of raw (context: bounded by one "
           "fdatasync per commit)\n",
           best[3], best[3] / best[0]);
    return pass ? 0 : 1;
}
