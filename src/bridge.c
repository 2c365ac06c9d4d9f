/* bridge.c - the single-threaded event loop: schedule -> fetch -> poller -> publish. */
#include "r2m/bridge.h"

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "r2m/error.h"
#include "r2m/http.h"
#include "r2m/log.h"
#include "r2m/metrics.h"
#include "r2m/poller.h"
#include "r2m/publish.h"
#include "r2m/sched.h"
#include "r2m/store.h"

#define TAG_SIGNAL  (2ull << 32)
#define TAG_PUB     (3ull << 32)
#define TAG_METRICS (4ull << 32)
#define TAG_MASK    (0xffffffffull << 32)

struct endpoint {
    const struct r2m_endpoint_cfg *cfg;
    const struct r2m_poller_kind *kind;
    void *state;
    struct r2m_http_xfer *xfer;
    struct r2m_bridge *b;
    uint32_t id;
    int64_t started;        /* monotonic ms of the current/last poll start */
    uint32_t failures;      /* consecutive */
    int last_result;        /* code of the last failure, for log rate limiting */
    uint64_t last_why;      /* hash of its message: a new message is news */
    int64_t retry_after_ms; /* the server's Retry-After of the last failure */
    unsigned page;          /* page of the poll in progress (paginate:) */
    /* OAuth2 client credentials: a second transfer fetches the token */
    struct r2m_endpoint_cfg token_cfg;
    struct r2m_http_xfer *token_xfer;
    char *token_body;
    int64_t token_expires;  /* monotonic ms; 0 = no token */
    int auth_retried;       /* this poll already refetched the token after a 401 */
    int saved;              /* this poll committed to the store */
    int validators_unsaved; /* new validators arrived with an unchanged body */
    uint64_t polls, errors, not_modified, events;
    int64_t last_ok_wall; /* wall ms of the last successful poll */
    char last_error[256]; /* cause of the last failure, for /healthz */
    /* origin (scheme, host, port of url) for the per-origin cap */
    uint32_t origin;  /* index into the bridge's origins */
    int in_poll;      /* a poll is in progress: counted in its origin */
    int parked;       /* due, waiting in its origin's queue */
    int64_t park_due; /* when it fell due */
    struct endpoint *park_next;
};

/* Requests in flight per origin (DESIGN.md invariant 9). Due polls of an
 * origin that may not start now wait in its queue, in due order, without
 * holding up polls of other origins. */
struct origin {
    char *name;       /* "scheme://host:port" */
    size_t in_flight; /* polls in progress */
    struct endpoint *park_head, *park_tail;
};

/* Event types counted for /metrics, in the order of the metric's labels. */
static const char *const event_types[] = {"rest2mqtt.document.changed", "rest2mqtt.item.created",
                                          "rest2mqtt.item.updated", "rest2mqtt.item.deleted"};
#define N_EVENT_TYPES 4

/* A message the broker refused for good, waiting to be moved from the
 * outbox to the dead-letter table with this turn's acknowledgements. */
struct dead_letter {
    int64_t id; /* outbox row; 0: not in the outbox (the status message) */
    char *topic, *words, *event_id;
    const char *reason; /* static token from r2m/publish.h */
    uint64_t size;
};

/* rest2mqtt_dead_letters_total{endpoint,reason} */
struct dead_count {
    char *endpoint;
    const char *reason;
    uint64_t n;
};

struct r2m_bridge {
    const struct r2m_config *cfg;
    int mode;
    int epfd, sigfd;
    struct r2m_sched *sched;
    struct r2m_http *http;
    struct r2m_publish *pub;
    struct r2m_store *store;
    int64_t *ids; /* outbox rows of the batch being committed */
    size_t cap_ids;
    int64_t *acked; /* outbox rows acknowledged, deleted after each turn */
    size_t n_acked, cap_acked;
    struct dead_letter *dead; /* refused for good, moved after each turn */
    size_t n_dead, cap_dead;
    struct dead_count *dead_counts;
    size_t n_dead_counts;
    struct r2m_log_limit flush_log; /* the outbox cannot be written */
    int outbox_full;                /* warned about a full outbox; cleared when there is room */
    struct endpoint *current;       /* the endpoint whose poll is being committed */
    struct r2m_metrics *metrics;
    struct r2m_metrics_histo http_seconds, publish_seconds;
    uint64_t events_by_type[N_EVENT_TYPES];
    struct r2m_poller_env env;
    struct endpoint **eps; /* each allocated alone: transfers point at them */
    size_t n_eps;
    struct r2m_config *reloaded; /* the config of the last SIGHUP reload, owned */
    struct origin *origins;
    size_t n_origins, busy_origins; /* busy: with a poll in progress */
    uint32_t *waiting;              /* origins with due polls parked */
    size_t n_waiting;
    int64_t file_checked; /* when the state file's identity was last checked */
    int fatal;            /* a runtime failure that stops the bridge (exit 2) */
    uint64_t rng;
    int64_t now;
    int stopping;
    int reload_pending;
    size_t once_left;
    int once_failed;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- events out ---- */

static int grow_ids(int64_t **v, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t cap2 = *cap ? *cap : 64;
    while (cap2 < need)
        cap2 *= 2;
    int64_t *p = realloc(*v, cap2 * sizeof *p);
    if (!p)
        return R2M_E_NOMEM;
    *v = p;
    *cap = cap2;
    return 0;
}

/* Counts an event by its CloudEvents type (rendered by us, so the "type"
 * member is always there); retained state messages are not events. */
static void count_event(struct r2m_bridge *b, const char *payload, int retained)
{
    if (retained)
        return;
    if (b->current)
        b->current->events++;
    const char *t = strstr(payload, "\"type\":\"");
    for (int k = 0; t && k < N_EVENT_TYPES; k++)
        if (!strncmp(t + 8, event_types[k], strlen(event_types[k])) &&
            t[8 + strlen(event_types[k])] == '"') {
            b->events_by_type[k]++;
            return;
        }
}

/* The transactional outbox: the poller's new snapshot and the poll's events
 * commit together, then the events are queued for publishing. */
static int emit_publish(void *ctx, const struct r2m_poller_batch *batch,
                        r2m_poller_persist_fn *persist, void *pctx, char *err, size_t errlen)
{
    struct r2m_bridge *b = ctx;
    int r;
    if (batch->n > b->cfg->state.outbox_max) {
        /* not "outbox full": no acknowledgement makes room for this one,
         * every later poll finds the same change (or a bigger one) */
        snprintf(err, errlen,
                 "this poll's change is %zu events, more than state.outbox_max (%llu) can ever "
                 "hold; snapshot not advanced, nothing published - raise state.outbox_max and "
                 "restart to deliver it",
                 batch->n, (unsigned long long)b->cfg->state.outbox_max);
        return R2M_E_TOO_BIG;
    }
    if (r2m_publish_room(b->pub) < batch->n) {
        snprintf(err, errlen,
                 "outbox full (%zu events wait for the broker, state.outbox_max is %llu); "
                 "snapshot not advanced, the change will be delivered by a later poll",
                 r2m_publish_pending(b->pub), (unsigned long long)b->cfg->state.outbox_max);
        if (!b->outbox_full) {
            char n[24];
            snprintf(n, sizeof n, "%llu", (unsigned long long)b->cfg->state.outbox_max);
            r2m_log(R2M_LOG_WARN,
                    "outbox full: endpoints stop advancing their snapshots until the broker "
                    "acknowledges events; no change is lost",
                    "outbox_max", n, NULL);
        }
        b->outbox_full = 1;
        return R2M_E_TOO_BIG;
    }
    b->outbox_full = 0;
    if ((r = grow_ids(&b->ids, &b->cap_ids, batch->n)))
        return r;
    if ((r = r2m_store_begin(b->store)))
        goto fail;
    if ((r = persist(pctx, b->store)))
        goto fail;
    if (b->current && (r = r2m_store_validators_put(b->store, b->current->cfg->name,
                                                    r2m_http_etag(b->current->xfer),
                                                    r2m_http_last_modified(b->current->xfer))))
        goto fail;
    for (size_t i = 0; i < batch->n; i++) {
        const struct r2m_poller_batch_msg *m = &batch->msgs[i];
        if ((r = r2m_store_outbox_add(b->store, b->current ? b->current->cfg->name : NULL,
                                      r2m_poller_batch_topic(batch, i), m->topic_len,
                                      r2m_poller_batch_payload(batch, i), m->payload_len,
                                      m->retained, &b->ids[i])))
            goto fail;
    }
    if ((r = r2m_store_commit(b->store)))
        goto fail;
    if (b->current) {
        b->current->saved = 1;
        b->current->validators_unsaved = 0;
    }
    /* committed: from here on the events exist; memory failures below only
     * delay them until the next start (they are in the outbox) */
    for (size_t i = 0; i < batch->n; i++) {
        const struct r2m_poller_batch_msg *m = &batch->msgs[i];
        count_event(b, r2m_poller_batch_payload(batch, i), m->retained);
        char *t = strdup(r2m_poller_batch_topic(batch, i));
        char *p = malloc(m->payload_len + 1);
        if (!t || !p) {
            free(t);
            free(p);
            r2m_log(R2M_LOG_ERROR,
                    "out of memory queueing a committed event; it stays in the "
                    "outbox and is sent after a restart",
                    NULL);
            continue;
        }
        memcpy(p, r2m_poller_batch_payload(batch, i), m->payload_len + 1);
        r2m_publish_enqueue(b->pub, t, p, m->payload_len, m->retained, b->ids[i]);
    }
    return 0;
fail:
    snprintf(err, errlen, "state not saved (%s: %s); snapshot not advanced, nothing published",
             b->cfg->state.path, r2m_store_errmsg(b->store));
    r2m_store_rollback(b->store);
    return R2M_E_IO;
}

static void on_ack(void *ctx, int64_t id, int64_t latency_ms)
{
    struct r2m_bridge *b = ctx;
    r2m_metrics_histo_observe(&b->publish_seconds, (double)latency_ms / 1000.0);
    if (grow_ids(&b->acked, &b->cap_acked, b->n_acked + 1)) {
        /* not deleted now: it will be sent again after a restart (same id) */
        return;
    }
    b->acked[b->n_acked++] = id;
}

/* The CloudEvents id of a payload we rendered (r2m/event.h puts it first);
 * NULL for other messages (retained item states). malloc'd. */
static char *event_id_of(const char *payload, size_t len)
{
    static const char head[] = "{\"specversion\":\"1.0\",\"id\":\"";
    size_t h = sizeof head - 1;
    if (len <= h || memcmp(payload, head, h))
        return NULL;
    const char *end = memchr(payload + h, '"', len - h);
    return end ? strndup(payload + h, (size_t)(end - payload - h)) : NULL;
}

static void on_dead(void *ctx, int64_t id, const char *topic, const char *payload, size_t len,
                    uint64_t size, const char *reason, const char *words)
{
    struct r2m_bridge *b = ctx;
    if (b->n_dead == b->cap_dead) {
        size_t cap = b->cap_dead ? b->cap_dead * 2 : 16;
        struct dead_letter *d = realloc(b->dead, cap * sizeof *d);
        if (!d)
            goto oom;
        b->dead = d;
        b->cap_dead = cap;
    }
    struct dead_letter d = {id,     strdup(topic), strdup(words), event_id_of(payload, len),
                            reason, size};
    if (!d.topic || !d.words) {
        free(d.topic);
        free(d.words);
        free(d.event_id);
        goto oom;
    }
    b->dead[b->n_dead++] = d;
    return;
oom:
    r2m_log(R2M_LOG_ERROR,
            "out of memory recording an event the broker refused; it stays in the outbox and "
            "is tried again after a restart",
            "topic", topic, NULL);
}

static void count_dead(struct r2m_bridge *b, const char *endpoint, const char *reason)
{
    for (size_t i = 0; i < b->n_dead_counts; i++)
        if (!strcmp(b->dead_counts[i].endpoint, endpoint) && b->dead_counts[i].reason == reason) {
            b->dead_counts[i].n++;
            return;
        }
    struct dead_count *v = realloc(b->dead_counts, (b->n_dead_counts + 1) * sizeof *v);
    char *e = strdup(endpoint);
    if (v)
        b->dead_counts = v;
    if (!v || !e) {
        free(e);
        return; /* the metric misses one; the log line and the table have it */
    }
    b->dead_counts[b->n_dead_counts++] = (struct dead_count){e, reason, 1};
}

/* Tells the operator, once per refused message, after its move committed. */
static void dead_logged(struct r2m_bridge *b, const struct dead_letter *d, const char *endpoint)
{
    char size[24];
    snprintf(size, sizeof size, "%llu", (unsigned long long)d->size);
    if (!d->id) {
        r2m_log(R2M_LOG_ERROR, "status message refused by the broker for good; dropped", "topic",
                d->topic, "size", size, "reason", d->reason, "detail", d->words, NULL);
        return;
    }
    count_dead(b, endpoint, d->reason);
    r2m_log(R2M_LOG_ERROR,
            "event refused by the broker for good; moved to the dead-letter table, later events "
            "flow on",
            "endpoint", endpoint, "topic", d->topic, "size", size, "reason", d->reason, "detail",
            d->words, "event_id", d->event_id ? d->event_id : "", "hint",
            "fix the cause (broker ACL, mqtt.max_packet_size, ...), stop the bridge and run "
            "`rest2mqtt state dead-letters --requeue`",
            NULL);
}

static void dead_free(struct dead_letter *d)
{
    free(d->topic);
    free(d->words);
    free(d->event_id);
}

/* Deletes acknowledged events from the outbox and moves refused ones to the
 * dead-letter table, one transaction per turn. */
static void flush_acks(struct r2m_bridge *b)
{
    if (!b->n_acked && !b->n_dead)
        return;
    char(*eps)[128] = b->n_dead ? calloc(b->n_dead, sizeof *eps) : NULL;
    int r = b->n_dead && !eps ? R2M_E_NOMEM : r2m_store_begin(b->store);
    for (size_t i = 0; !r && i < b->n_acked; i++)
        r = r2m_store_outbox_delete(b->store, b->acked[i]);
    for (size_t i = 0; !r && i < b->n_dead; i++)
        if (b->dead[i].id)
            r = r2m_store_dead_letter_add(b->store, b->dead[i].id, b->dead[i].size,
                                          b->dead[i].reason, b->dead[i].event_id, wall_ms(), eps[i],
                                          sizeof eps[i]);
    if (!r)
        r = r2m_store_commit(b->store);
    if (r) {
        r2m_store_rollback(b->store);
        free(eps);
        /* a full disk fails this on every turn: rate limited like polls */
        if (r2m_log_limit_hit(&b->flush_log, r)) {
            char n[24];
            snprintf(n, sizeof n, "%lu", b->flush_log.count);
            r2m_log(R2M_LOG_WARN,
                    "could not update the outbox (acknowledged or refused events); retrying",
                    "path", b->cfg->state.path, "error",
                    r == R2M_E_NOMEM ? r2m_strerror(r) : r2m_store_errmsg(b->store), "consecutive",
                    n, NULL);
        }
        return;
    }
    unsigned long failed = r2m_log_limit_clear(&b->flush_log);
    if (failed) {
        char n[24];
        snprintf(n, sizeof n, "%lu", failed);
        r2m_log(R2M_LOG_INFO, "outbox writable again", "failed_turns", n, NULL);
    }
    for (size_t i = 0; i < b->n_dead; i++) {
        dead_logged(b, &b->dead[i], eps[i][0] ? eps[i] : "unknown");
        dead_free(&b->dead[i]);
    }
    free(eps);
    b->n_acked = 0;
    b->n_dead = 0;
}

static int emit_print(void *ctx, const struct r2m_poller_batch *batch,
                      r2m_poller_persist_fn *persist, void *pctx, char *err, size_t errlen)
{
    (void)ctx;
    (void)persist; /* `once` keeps no state */
    (void)pctx;
    (void)err;
    (void)errlen;
    for (size_t i = 0; i < batch->n; i++) {
        if (batch->msgs[i].retained)
            continue; /* state messages are for subscribers, not for reading */
        fwrite(r2m_poller_batch_payload(batch, i), 1, batch->msgs[i].payload_len, stdout);
        fputc('\n', stdout);
    }
    fflush(stdout);
    return 0;
}

/* ---- polls ---- */

static void schedule_next(struct r2m_bridge *b, struct endpoint *ep)
{
    if (b->mode == R2M_BRIDGE_ONCE || b->stopping)
        return;
    int64_t delay = r2m_sched_delay(ep->cfg->interval_ms, ep->cfg->jitter, &b->rng);
    int64_t base = ep->started; /* interval: from start to start */
    if (ep->failures) {
        /* back off: double the interval per consecutive failure (the jitter
         * above spreads the retries), up to max(interval, max_backoff), so a
         * dead API is not hammered; a Retry-After from the server wins.
         * Counted from the END of the failed poll: a poll that hung for its
         * whole timeout must not come straight back */
        int64_t cap = ep->cfg->max_backoff_ms > ep->cfg->interval_ms ? ep->cfg->max_backoff_ms
                                                                     : ep->cfg->interval_ms;
        delay = r2m_sched_backoff(delay, ep->failures, cap);
        if (ep->retry_after_ms > delay)
            delay = ep->retry_after_ms;
        base = b->now;
    }
    int64_t due = r2m_sched_at(base, delay);
    if (due < b->now)
        due = b->now;
    if (r2m_sched_add(b->sched, ep->id, due))
        r2m_log(R2M_LOG_ERROR, "out of memory scheduling endpoint", "endpoint", ep->cfg->name,
                NULL);
}

static void poll_failed(struct r2m_bridge *b, struct endpoint *ep, int code, const char *why)
{
    ep->errors++;
    ep->failures++;
    if (b->mode == R2M_BRIDGE_ONCE)
        b->once_failed = 1;
    /* rate limit: a new kind of failure (another code or another message)
     * is always logged; a repeat only at the 2nd, 4th, 8th... consecutive
     * occurrence */
    uint64_t h = XXH3_64bits(why ? why : "", why ? strlen(why) : 0);
    int repeat = ep->failures > 1 && code == ep->last_result && h == ep->last_why;
    ep->last_result = code;
    ep->last_why = h;
    if (r2m_log_due(ep->failures, repeat)) {
        char n[16];
        snprintf(n, sizeof n, "%u", ep->failures);
        r2m_log(R2M_LOG_WARN, "poll failed, nothing emitted, previous snapshot kept", "endpoint",
                ep->cfg->name, "error", why, "consecutive", n, NULL);
    }
}

/* The single end of every poll, successful (code 0) or not. */
static void origin_leave(struct r2m_bridge *b, struct endpoint *ep)
{
    if (!ep->in_poll)
        return;
    ep->in_poll = 0;
    struct origin *o = &b->origins[ep->origin];
    if (--o->in_flight == 0)
        b->busy_origins--;
}

static void poll_end(struct r2m_bridge *b, struct endpoint *ep, int code, const char *why)
{
    origin_leave(b, ep);
    ep->polls++;
    if (code) {
        snprintf(ep->last_error, sizeof ep->last_error, "%s", why ? why : r2m_strerror(code));
        poll_failed(b, ep, code, why);
    } else {
        if (ep->failures) {
            char n[16];
            snprintf(n, sizeof n, "%u", ep->failures);
            r2m_log(R2M_LOG_INFO, "endpoint recovered", "endpoint", ep->cfg->name, "failed_polls",
                    n, NULL);
        }
        ep->failures = 0;
        ep->last_result = 0;
        ep->retry_after_ms = 0;
        ep->last_ok_wall = wall_ms();
    }
    if (b->mode == R2M_BRIDGE_ONCE)
        b->once_left--;
    schedule_next(b, ep);
}

static int needs_token(const struct r2m_bridge *b, const struct endpoint *ep)
{
    /* refresh shortly before expiry, so no request carries a stale token */
    return ep->token_xfer && (!ep->token_expires || b->now >= ep->token_expires - 30000);
}

static void start_main(struct r2m_bridge *b, struct endpoint *ep, const char *url)
{
    struct r2m_page_next first;
    char err[512];
    if (!url) {
        if (r2m_page_first(ep->cfg, &first, err, sizeof err)) {
            poll_end(b, ep, R2M_E_INVALID, err);
            return;
        }
        url = first.url[0] ? first.url : NULL;
    }
    if (r2m_http_start_url(ep->xfer, url))
        poll_end(b, ep, R2M_E_HTTP, "could not start the HTTP transfer");
}

static void start_poll(struct r2m_bridge *b, struct endpoint *ep)
{
    struct origin *o = &b->origins[ep->origin];
    if (o->in_flight++ == 0)
        b->busy_origins++;
    ep->in_poll = 1;
    ep->started = b->now;
    ep->page = 0;
    ep->auth_retried = 0;
    if (needs_token(b, ep)) {
        if (r2m_http_start(ep->token_xfer))
            poll_end(b, ep, R2M_E_HTTP, "could not start the OAuth2 token request");
        return;
    }
    start_main(b, ep, NULL);
}

/* The token endpoint answered: {"access_token": "...", "expires_in": 3600}. */
static void token_done(struct r2m_bridge *b, struct endpoint *ep, const struct r2m_http_result *res)
{
    char err[512], why[600];
    struct r2m_json *root;
    if (res->result) {
        snprintf(why, sizeof why, "OAuth2 token request to %s failed: %s",
                 r2m_log_url(ep->cfg->auth.token_url, (char[256]){0}, 256), res->err);
        poll_end(b, ep, res->result, why);
        return;
    }
    if (r2m_json_parse(b->env.doc, res->body, res->len, &root, err, sizeof err)) {
        snprintf(why, sizeof why, "OAuth2 token response is not JSON: %s", err);
        poll_end(b, ep, R2M_E_JSON_SYNTAX, why);
        return;
    }
    struct r2m_json *tok = r2m_json_pointer(root, "/access_token");
    struct r2m_json *exp = r2m_json_pointer(root, "/expires_in");
    if (!tok || tok->type != R2M_JSON_STRING || !tok->n) {
        poll_end(b, ep, R2M_E_HTTP, "OAuth2 token response has no access_token");
        return;
    }
    for (size_t i = 0; i < tok->n; i++) {
        unsigned char ch = (unsigned char)tok->u.str[i];
        if (ch < 0x20 || ch == 0x7f) {
            /* it goes into an Authorization header: CR or LF would inject
             * headers, NUL would cut it; never show the token itself */
            poll_end(b, ep, R2M_E_HTTP,
                     "OAuth2 token response's access_token contains CR, LF, NUL or another "
                     "control character; not used");
            return;
        }
    }
    long long secs = exp && exp->type == R2M_JSON_NUMBER ? strtoll(exp->u.str, NULL, 10) : 3600;
    if (secs <= 0 || secs > 86400 * 365)
        secs = 3600;
    if (r2m_http_set_token(ep->xfer, tok->u.str)) {
        poll_end(b, ep, R2M_E_NOMEM, "out of memory storing the OAuth2 token");
        return;
    }
    ep->token_expires = b->now + secs * 1000;
    start_main(b, ep, NULL);
}

static void http_done(void *owner, struct r2m_http_xfer *x, const struct r2m_http_result *res)
{
    struct endpoint *ep = owner;
    struct r2m_bridge *b = ep->b;
    char err[512] = "";
    int r;
    b->now = r2m_http_now_ms();
    if (x == ep->token_xfer) {
        token_done(b, ep, res);
        return;
    }
    r2m_metrics_histo_observe(&b->http_seconds, res->total_s);
    if (res->result) {
        if (res->status == 401 && ep->token_xfer && !ep->auth_retried) {
            /* the token was revoked or expired early: fetch one, retry once */
            ep->auth_retried = 1;
            ep->token_expires = 0;
            ep->page = 0;
            if (!r2m_http_start(ep->token_xfer))
                return;
        }
        ep->retry_after_ms = res->retry_after_ms;
        if (ep->cfg->paginate.kind && ep->page > 0) {
            snprintf(err, sizeof err, "%s (page %u)", res->err, ep->page + 1);
            poll_end(b, ep, res->result, err);
        } else {
            poll_end(b, ep, res->result, res->err);
        }
        return;
    }
    if (res->not_modified) {
        ep->not_modified++;
        poll_end(b, ep, 0, NULL); /* 304: nothing changed, nothing parsed */
        return;
    }
    b->env.wall_ms = wall_ms();
    b->current = ep;
    ep->saved = 0;
    if (ep->kind->on_page && ep->cfg->paginate.kind) {
        struct r2m_page pg = {ep->page, res->url ? res->url : ep->cfg->url, r2m_http_header, res};
        struct r2m_page_next next;
        r = ep->kind->on_page(ep->state, ep->cfg, &b->env, res->body, res->len, &pg, &next, err,
                              sizeof err);
        if (!r && next.url[0]) {
            if (ep->page + 1 >= ep->cfg->max_pages) {
                snprintf(err, sizeof err,
                         "more than max_pages (%u) pages; nothing emitted - raise max_pages if "
                         "the list is really that long",
                         ep->cfg->max_pages);
                r = R2M_E_TOO_BIG;
            } else {
                ep->page++;
                b->current = NULL;
                start_main(b, ep, next.url);
                return;
            }
        }
        if (!r)
            r = ep->kind->on_pages_done(ep->state, ep->cfg, &b->env, err, sizeof err);
    } else {
        r = ep->kind->on_body(ep->state, ep->cfg, &b->env, res->body, res->len, err, sizeof err);
    }
    b->current = NULL;
    /* an unchanged body with new validators writes nothing now (the
     * unchanged path never touches the disk); they are saved with the next
     * commit, or at a graceful stop */
    if (!r && r2m_http_commit_validators(ep->xfer) && !ep->saved)
        ep->validators_unsaved = 1;
    poll_end(b, ep, r, err[0] ? err : r2m_strerror(r));
}

/* May a poll of origin o start now? See r2m_sched_admit for the rule. */
static int admit(const struct r2m_bridge *b, const struct origin *o)
{
    return r2m_sched_admit(r2m_http_active(b->http), b->cfg->max_concurrent, o->in_flight,
                           b->cfg->max_per_host, b->n_origins - b->busy_origins);
}

static void park(struct r2m_bridge *b, struct endpoint *ep, int64_t due)
{
    struct origin *o = &b->origins[ep->origin];
    ep->parked = 1;
    ep->park_due = due;
    ep->park_next = NULL;
    if (o->park_tail) {
        o->park_tail->park_next = ep;
    } else {
        o->park_head = ep;
        b->waiting[b->n_waiting++] = ep->origin; /* room for every origin */
    }
    o->park_tail = ep;
}

/* Takes the first parked poll of the origin at waiting[w]. */
static struct endpoint *unpark(struct r2m_bridge *b, size_t w)
{
    struct origin *o = &b->origins[b->waiting[w]];
    struct endpoint *ep = o->park_head;
    if (!(o->park_head = ep->park_next)) {
        o->park_tail = NULL;
        b->waiting[w] = b->waiting[--b->n_waiting];
    }
    ep->parked = 0;
    ep->park_next = NULL;
    return ep;
}

static void start_due(struct r2m_bridge *b)
{
    /* at most max_concurrent requests in flight, at most max_per_host per
     * origin, and a slot kept for every origin with none in flight. A due
     * poll that may not start waits in its origin's queue; the next poll
     * to start is the earliest due one among the heap and the heads of the
     * queues of origins that may start */
    while (!b->stopping && r2m_http_active(b->http) < b->cfg->max_concurrent) {
        size_t best = SIZE_MAX;
        for (size_t w = 0; w < b->n_waiting; w++) {
            const struct origin *o = &b->origins[b->waiting[w]];
            if (admit(b, o) &&
                (best == SIZE_MAX ||
                 o->park_head->park_due < b->origins[b->waiting[best]].park_head->park_due))
                best = w;
        }
        int64_t next = r2m_sched_next(b->sched);
        if (best != SIZE_MAX &&
            (next > b->now || b->origins[b->waiting[best]].park_head->park_due <= next)) {
            start_poll(b, unpark(b, best));
            continue;
        }
        uint32_t id;
        if (!r2m_sched_pop_due(b->sched, b->now, &id))
            return;
        struct endpoint *ep = b->eps[id];
        if (admit(b, &b->origins[ep->origin]))
            start_poll(b, ep);
        else
            park(b, ep, next);
    }
}

/* ---- metrics and health ---- */

static void render_metrics(struct r2m_bridge *b, struct r2m_buf *o)
{
    r2m_buf_puts(o, "# HELP rest2mqtt_polls_total Polls by endpoint and result.\n"
                    "# TYPE rest2mqtt_polls_total counter\n");
    for (size_t i = 0; i < b->n_eps; i++) {
        const struct endpoint *ep = b->eps[i];
        const char *n = ep->cfg->name;
        r2m_buf_printf(o, "rest2mqtt_polls_total{endpoint=\"%s\",result=\"ok\"} %llu\n", n,
                       (unsigned long long)(ep->polls - ep->errors - ep->not_modified));
        r2m_buf_printf(o, "rest2mqtt_polls_total{endpoint=\"%s\",result=\"not_modified\"} %llu\n",
                       n, (unsigned long long)ep->not_modified);
        r2m_buf_printf(o, "rest2mqtt_polls_total{endpoint=\"%s\",result=\"error\"} %llu\n", n,
                       (unsigned long long)ep->errors);
    }
    r2m_buf_puts(o, "# HELP rest2mqtt_endpoint_events_total Events committed, by endpoint.\n"
                    "# TYPE rest2mqtt_endpoint_events_total counter\n");
    for (size_t i = 0; i < b->n_eps; i++)
        r2m_buf_printf(o, "rest2mqtt_endpoint_events_total{endpoint=\"%s\"} %llu\n",
                       b->eps[i]->cfg->name, (unsigned long long)b->eps[i]->events);
    r2m_buf_puts(o, "# HELP rest2mqtt_events_total Events committed, by CloudEvents type.\n"
                    "# TYPE rest2mqtt_events_total counter\n");
    for (int k = 0; k < N_EVENT_TYPES; k++)
        r2m_buf_printf(o, "rest2mqtt_events_total{type=\"%s\"} %llu\n", event_types[k],
                       (unsigned long long)b->events_by_type[k]);
    r2m_buf_puts(o, "# HELP rest2mqtt_endpoint_consecutive_failures Failed polls in a row.\n"
                    "# TYPE rest2mqtt_endpoint_consecutive_failures gauge\n");
    for (size_t i = 0; i < b->n_eps; i++)
        r2m_buf_printf(o, "rest2mqtt_endpoint_consecutive_failures{endpoint=\"%s\"} %u\n",
                       b->eps[i]->cfg->name, b->eps[i]->failures);
    r2m_buf_puts(o,
                 "# HELP rest2mqtt_endpoint_last_success_timestamp_seconds Unix time of the last "
                 "successful poll (0: none yet).\n"
                 "# TYPE rest2mqtt_endpoint_last_success_timestamp_seconds gauge\n");
    for (size_t i = 0; i < b->n_eps; i++)
        r2m_buf_printf(o,
                       "rest2mqtt_endpoint_last_success_timestamp_seconds{endpoint=\"%s\"} "
                       "%.3f\n",
                       b->eps[i]->cfg->name, (double)b->eps[i]->last_ok_wall / 1000.0);
    r2m_buf_printf(o,
                   "# HELP rest2mqtt_outbox_events Events committed but not yet acknowledged by "
                   "the broker.\n# TYPE rest2mqtt_outbox_events gauge\nrest2mqtt_outbox_events "
                   "%zu\n",
                   r2m_publish_pending(b->pub));
    r2m_buf_puts(o, "# HELP rest2mqtt_dead_letters_total Events the broker refused for good, "
                    "moved to the dead-letter table (`rest2mqtt state dead-letters`).\n"
                    "# TYPE rest2mqtt_dead_letters_total counter\n");
    for (size_t i = 0; i < b->n_dead_counts; i++)
        r2m_buf_printf(o, "rest2mqtt_dead_letters_total{endpoint=\"%s\",reason=\"%s\"} %llu\n",
                       b->dead_counts[i].endpoint, b->dead_counts[i].reason,
                       (unsigned long long)b->dead_counts[i].n);
    r2m_buf_printf(o,
                   "# HELP rest2mqtt_broker_connected 1 when connected to the MQTT broker.\n"
                   "# TYPE rest2mqtt_broker_connected gauge\nrest2mqtt_broker_connected %d\n",
                   r2m_publish_connected(b->pub));
    r2m_buf_puts(o, "# HELP rest2mqtt_http_request_duration_seconds Time of each HTTP "
                    "request.\n# TYPE rest2mqtt_http_request_duration_seconds histogram\n");
    r2m_metrics_histo_render(&b->http_seconds, "rest2mqtt_http_request_duration_seconds", "", o);
    r2m_buf_puts(o, "# HELP rest2mqtt_publish_latency_seconds Time from committing an event "
                    "to the broker's acknowledgement.\n"
                    "# TYPE rest2mqtt_publish_latency_seconds histogram\n");
    r2m_metrics_histo_render(&b->publish_seconds, "rest2mqtt_publish_latency_seconds", "", o);
}

static void metrics_handler(void *ctx, const char *path, struct r2m_buf *out, int *status,
                            const char **ctype)
{
    struct r2m_bridge *b = ctx;
    if (!strcmp(path, "/metrics")) {
        *status = 200;
        *ctype = "text/plain; version=0.0.4; charset=utf-8";
        render_metrics(b, out);
        return;
    }
    if (!strcmp(path, "/healthz")) {
        /* the loop is turning: it is the loop that answers this request */
        size_t failing = 0;
        for (size_t i = 0; i < b->n_eps; i++)
            failing += b->eps[i]->failures > 0;
        int up = r2m_publish_connected(b->pub);
        *status = up ? 200 : 503;
        *ctype = "application/json";
        r2m_buf_printf(out,
                       "{\"status\":\"%s\",\"broker\":\"%s\",\"endpoints\":%zu,"
                       "\"failing_endpoints\":%zu,\"outbox\":%zu%s}\n",
                       up ? "ok" : "unhealthy", up ? "connected" : "disconnected", b->n_eps,
                       failing, r2m_publish_pending(b->pub),
                       up ? "" : ",\"reason\":\"not connected to the MQTT broker\"");
        return;
    }
    *status = 404;
    r2m_buf_puts(out, "not found; try /metrics or /healthz\n");
}

/* ---- setup ---- */

struct origin_of {
    char *name;
    size_t ep;
};

static int origin_cmp(const void *a, const void *c)
{
    return strcasecmp(((const struct origin_of *)a)->name, ((const struct origin_of *)c)->name);
}

static void origins_free(struct origin *o, size_t n)
{
    for (size_t i = 0; o && i < n; i++)
        free(o[i].name);
    free(o);
}

/* Groups the endpoints by the origin of their url and counts the polls in
 * progress per origin (from each endpoint's in_poll). No poll may be
 * parked. On failure (R2M_E_NOMEM) the previous table stays. */
static int build_origins(struct r2m_bridge *b)
{
    size_t n = b->n_eps, k = 0;
    int r = R2M_E_NOMEM;
    struct origin_of *of = calloc(n ? n : 1, sizeof *of);
    struct origin *origins = calloc(n ? n : 1, sizeof *origins);
    uint32_t *waiting = calloc(n ? n : 1, sizeof *waiting);
    if (!of || !origins || !waiting)
        goto out;
    for (size_t i = 0; i < n; i++) {
        of[i].ep = i;
        char o[R2M_HTTP_ORIGIN_MAX];
        /* file:// (tests) has no origin: each such URL is its own */
        const char *name =
            r2m_http_origin(b->eps[i]->cfg->url, o, sizeof o) ? b->eps[i]->cfg->url : o;
        int e = (of[i].name = strdup(name)) ? 0 : R2M_E_NOMEM;
        if (e)
            goto out;
    }
    qsort(of, n, sizeof *of, origin_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || strcasecmp(of[i].name, origins[k - 1].name)) {
            origins[k++].name = of[i].name;
        } else {
            free(of[i].name);
        }
        of[i].name = NULL;
        b->eps[of[i].ep]->origin = (uint32_t)(k - 1);
    }
    size_t busy = 0;
    for (size_t i = 0; i < n; i++)
        if (b->eps[i]->in_poll && origins[b->eps[i]->origin].in_flight++ == 0)
            busy++;
    origins_free(b->origins, b->n_origins);
    free(b->waiting);
    b->origins = origins;
    b->n_origins = k;
    b->busy_origins = busy;
    b->waiting = waiting;
    b->n_waiting = 0;
    origins = NULL;
    waiting = NULL;
    r = 0;
out:
    for (size_t i = 0; of && i < n; i++)
        free(of[i].name);
    free(of);
    origins_free(origins, k);
    free(waiting);
    return r;
}

/* The client-credentials request of an OAuth2 endpoint (RFC 6749 4.4). */
static int token_xfer_new(struct r2m_bridge *b, struct endpoint *ep)
{
    const struct r2m_endpoint_cfg *ec = ep->cfg;
    struct r2m_buf body;
    r2m_buf_init(&body, 64 * 1024);
    CURL *e = curl_easy_init();
    if (!e)
        return R2M_E_NOMEM;
    char *id = curl_easy_escape(e, ec->auth.client_id, 0);
    char *sec = curl_easy_escape(e, ec->auth.client_secret, 0);
    char *scope = ec->auth.scope ? curl_easy_escape(e, ec->auth.scope, 0) : NULL;
    int r = id && sec ? 0 : R2M_E_NOMEM;
    if (!r)
        r = r2m_buf_printf(&body, "grant_type=client_credentials&client_id=%s&client_secret=%s", id,
                           sec);
    if (!r && scope)
        r = r2m_buf_printf(&body, "&scope=%s", scope);
    curl_free(id);
    if (sec)
        explicit_bzero(sec, strlen(sec));
    curl_free(sec);
    curl_free(scope);
    curl_easy_cleanup(e);
    if (r) {
        r2m_buf_free(&body);
        return r;
    }
    ep->token_body = r2m_buf_take(&body);
    struct r2m_endpoint_cfg *t = &ep->token_cfg;
    t->name = ec->name;
    t->url = ec->auth.token_url;
    t->method = "POST";
    t->body = ep->token_body;
    t->content_type = "application/x-www-form-urlencoded";
    t->timeout_ms = ec->timeout_ms;
    t->max_body = 1 << 20;
    t->max_depth = 16;
    t->tls = ec->tls;
    t->max_pages = 1;
    /* the body holds the client secret: it never follows a redirect to
     * another origin, whatever redirects: says for the endpoint */
    t->redirects =
        ec->redirects == R2M_REDIRECTS_NONE ? R2M_REDIRECTS_NONE : R2M_REDIRECTS_SAME_ORIGIN;
    struct r2m_http_opts ho = {0}; /* a token request: one page, never conditional */
    return r2m_http_xfer_new(b->http, t, &ho, ep, &ep->token_xfer);
}

/* Loads each endpoint's stored snapshot; drops it when the settings that
 * shape it changed (a silent re-baseline, logged). */
static int restore_endpoint(struct r2m_bridge *b, struct endpoint *ep, char *err, size_t errlen)
{
    struct r2m_store_endpoint row;
    int r = r2m_store_endpoint_get(b->store, ep->cfg->name, &row);
    if (r)
        goto fail;
    if (!row.found)
        return 0;
    struct r2m_fp want = r2m_poller_settings(ep->cfg);
    if (row.settings.hi != want.hi || row.settings.lo != want.lo) {
        free(row.doc);
        free(row.etag);
        free(row.last_modified);
        r2m_log(R2M_LOG_INFO,
                "endpoint settings (items, key or ignore) changed: stored snapshot dropped, the "
                "next poll is a silent baseline",
                "endpoint", ep->cfg->name, NULL);
        if ((r = r2m_store_begin(b->store)) ||
            (r = r2m_store_endpoint_reset(b->store, ep->cfg->name)) ||
            (r = r2m_store_commit(b->store)))
            goto fail;
        return 0;
    }
    int partial = 0;
    r = ep->kind->restore(ep->state, ep->cfg, b->store, &row, &partial);
    /* validators describe the stored snapshot: when the poller dropped
     * some of it, a 304 would keep it dropped (and a document's next
     * change would be taken as a silent baseline) */
    if (!partial)
        r2m_http_set_validators(ep->xfer, row.etag, row.last_modified);
    free(row.doc);
    free(row.etag);
    free(row.last_modified);
    if (r)
        goto fail;
    return 0;
fail:
    r2m_store_rollback(b->store);
    snprintf(err, errlen, "cannot load the state of endpoint '%s' from %s: %s", ep->cfg->name,
             b->cfg->state.path, r2m_store_errmsg(b->store));
    return r ? r : R2M_E_IO;
}

static int load_outbox_entry(void *ctx, int64_t id, const char *topic, const char *payload,
                             size_t len, int retained)
{
    struct r2m_bridge *b = ctx;
    char *t = strdup(topic), *p = malloc(len + 1);
    if (!t || !p) {
        free(t);
        free(p);
        return R2M_E_NOMEM;
    }
    if (len)
        memcpy(p, payload, len);
    p[len] = '\0';
    /* at start the queue may hold more than outbox_max (a smaller limit
     * than last time): everything stored is delivered */
    return r2m_publish_enqueue(b->pub, t, p, len, retained, id) == R2M_E_NOMEM ? R2M_E_NOMEM : 0;
}

static void endpoint_free(struct endpoint *ep)
{
    if (!ep)
        return;
    r2m_http_xfer_free(ep->xfer);
    r2m_http_xfer_free(ep->token_xfer);
    if (ep->token_body)
        explicit_bzero(ep->token_body, strlen(ep->token_body));
    free(ep->token_body);
    if (ep->kind)
        ep->kind->destroy(ep->state);
    free(ep);
}

static int endpoint_new(struct r2m_bridge *b, const struct r2m_endpoint_cfg *ec,
                        struct endpoint **out)
{
    struct endpoint *ep = calloc(1, sizeof *ep);
    if (!ep)
        return R2M_E_NOMEM;
    ep->cfg = ec;
    ep->b = b;
    ep->kind = r2m_poller_for(ec);
    int r = ep->kind->create(&ep->state, ec);
    if (r) {
        ep->kind = NULL;
        goto fail;
    }
    struct r2m_http_opts ho;
    r2m_page_http_opts(ec, &ho);
    if ((r = r2m_http_xfer_new(b->http, ec, &ho, ep, &ep->xfer)) ||
        (ec->auth.type == R2M_AUTH_OAUTH2 && (r = token_xfer_new(b, ep))))
        goto fail;
    *out = ep;
    return 0;
fail:
    endpoint_free(ep);
    return r;
}

int r2m_bridge_new(struct r2m_bridge **out, const struct r2m_config *cfg, int mode,
                   const char *only, char *err, size_t errlen)
{
    int r = R2M_E_NOMEM;
    struct r2m_bridge *b = calloc(1, sizeof *b);
    if (!b)
        return R2M_E_NOMEM;
    b->cfg = cfg;
    b->mode = mode;
    b->epfd = b->sigfd = -1;
    b->rng = (uint64_t)wall_ms() ^ ((uint64_t)getpid() << 40);

    /* block the signals before paho starts threads, so they inherit the
     * mask and the signals arrive only through our signalfd */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) {
        r = R2M_E_SYSTEM;
        goto out;
    }
    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    b->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (b->epfd < 0 || b->sigfd < 0) {
        r = R2M_E_SYSTEM;
        goto out;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_SIGNAL};
    if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->sigfd, &ev) < 0) {
        r = R2M_E_SYSTEM;
        goto out;
    }
    if ((r = r2m_sched_new(&b->sched)) || (r = r2m_http_new(b->epfd, http_done, &b->http)) ||
        (r = r2m_poller_env_init(&b->env, cfg)))
        goto out;
    /* `once` keeps no state: its ids only need to be unique per run */
    b->env.epoch = b->rng ^ 0x5bd1e995u;
    if (mode == R2M_BRIDGE_RUN) {
        if ((r = r2m_store_open(&b->store, cfg->state.path, err, errlen)))
            goto out_err;
        if ((r = r2m_store_set_sync(b->store, cfg->state.sync_full))) {
            snprintf(err, errlen, "state file %s: cannot set state.sync", cfg->state.path);
            goto out_err;
        }
        b->env.epoch = r2m_store_epoch(b->store);
        if ((r = r2m_publish_new(cfg, cfg->state.outbox_max, &b->pub)))
            goto out;
        char shown[256];
        if (cfg->mqtt.insecure)
            r2m_log(R2M_LOG_WARN,
                    "TLS certificate verification is OFF for the broker (mqtt.tls.insecure)",
                    "broker", r2m_log_url(cfg->mqtt.url, shown, sizeof shown), NULL);
        r2m_publish_on_ack(b->pub, on_ack, b);
        r2m_publish_on_dead(b->pub, on_dead, b);
        if (cfg->metrics.listen &&
            (r = r2m_metrics_new(cfg->metrics.listen, b->epfd, TAG_METRICS, metrics_handler, b,
                                 &b->metrics, err, errlen)))
            goto out_err;
        ev.data.u64 = TAG_PUB;
        if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, r2m_publish_fd(b->pub), &ev) < 0) {
            r = R2M_E_SYSTEM;
            goto out;
        }
        b->env.emit = emit_publish;
    } else {
        b->env.emit = emit_print;
        b->env.emit_initial = 1;
    }
    b->env.emit_ctx = b;

    b->eps = calloc(cfg->n_endpoints ? cfg->n_endpoints : 1, sizeof *b->eps);
    if (!b->eps) {
        r = R2M_E_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < cfg->n_endpoints; i++) {
        const struct r2m_endpoint_cfg *ec = &cfg->endpoints[i];
        if (only && strcmp(only, ec->name) != 0)
            continue;
        if ((r = endpoint_new(b, ec, &b->eps[b->n_eps])))
            goto out;
        if (ec->tls.insecure)
            r2m_log(R2M_LOG_WARN,
                    "TLS certificate verification is OFF for this endpoint (tls.insecure); "
                    "anyone on the path can read and change its data",
                    "endpoint", ec->name, NULL);
        b->eps[b->n_eps]->id = (uint32_t)b->n_eps;
        b->n_eps++;
    }
    if (only && b->n_eps == 0) {
        r = R2M_E_NOT_FOUND;
        snprintf(err, errlen, "no endpoint named '%s'", only);
        goto out_err;
    }
    if ((r = build_origins(b)))
        goto out;
    if (b->n_origins > cfg->max_concurrent) {
        char n[24], m[24];
        snprintf(n, sizeof n, "%zu", b->n_origins);
        snprintf(m, sizeof m, "%u", cfg->max_concurrent);
        r2m_log(R2M_LOG_WARN,
                "more origins than max_concurrent: slow origins can then delay the others; "
                "raise max_concurrent to at least the number of origins",
                "origins", n, "max_concurrent", m, NULL);
    }
    if (b->store) {
        for (size_t i = 0; i < b->n_eps; i++)
            if ((r = restore_endpoint(b, b->eps[i], err, errlen)))
                goto out_err;
        if ((r = r2m_store_outbox(b->store, load_outbox_entry, b))) {
            snprintf(err, errlen, "cannot load the outbox from %s: %s", cfg->state.path,
                     r2m_store_errmsg(b->store));
            goto out_err;
        }
        if (r2m_publish_pending(b->pub)) {
            char n[24];
            snprintf(n, sizeof n, "%zu", r2m_publish_pending(b->pub));
            r2m_log(R2M_LOG_INFO, "resuming: events from the outbox will be delivered first",
                    "count", n, NULL);
        }
    }
    *out = b;
    return 0;
out:
    snprintf(err, errlen, "%s", r2m_strerror(r));
out_err:
    r2m_bridge_free(b);
    return r;
}

void r2m_bridge_free(struct r2m_bridge *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n_eps; i++)
        endpoint_free(b->eps[i]);
    free(b->eps);
    origins_free(b->origins, b->n_origins);
    free(b->waiting);
    r2m_config_free(b->reloaded);
    r2m_http_free(b->http);
    r2m_metrics_free(b->metrics);
    r2m_publish_free(b->pub);
    r2m_store_close(b->store);
    free(b->ids);
    free(b->acked);
    for (size_t i = 0; i < b->n_dead; i++)
        dead_free(&b->dead[i]);
    free(b->dead);
    for (size_t i = 0; i < b->n_dead_counts; i++)
        free(b->dead_counts[i].endpoint);
    free(b->dead_counts);
    r2m_sched_free(b->sched);
    r2m_poller_env_cleanup(&b->env);
    if (b->sigfd >= 0)
        close(b->sigfd);
    if (b->epfd >= 0)
        close(b->epfd);
    free(b);
}

/* Writes validators that changed with unchanged bodies, in one transaction,
 * so a graceful restart starts with conditional requests right away. */
static void save_validators(struct r2m_bridge *b)
{
    size_t n = 0;
    for (size_t i = 0; i < b->n_eps; i++)
        n += b->eps[i]->validators_unsaved;
    if (!n || !b->store)
        return;
    int r = r2m_store_begin(b->store);
    for (size_t i = 0; i < b->n_eps && !r; i++) {
        struct endpoint *ep = b->eps[i];
        /* the committed ones: a poll that failed after them left its own
         * response's validators pending, and a restart sending those would
         * get a 304 for the response it failed on */
        if (ep->validators_unsaved)
            r = r2m_store_validators_put(b->store, ep->cfg->name, r2m_http_committed_etag(ep->xfer),
                                         r2m_http_committed_last_modified(ep->xfer));
    }
    if (!r)
        r = r2m_store_commit(b->store);
    if (r) {
        r2m_store_rollback(b->store);
        r2m_log(R2M_LOG_WARN,
                "could not save HTTP validators; the first polls after the next "
                "start fetch full bodies",
                "error", r2m_store_errmsg(b->store), NULL);
    }
}

/* ---- reload (SIGHUP) ---- */

static int str_eq(const char *a, const char *c)
{
    return a == c || (a && c && !strcmp(a, c));
}

/* Settings outside endpoints: are read once at start. */
static int globals_differ(const struct r2m_config *a, const struct r2m_config *c)
{
    return !str_eq(a->instance, c->instance) || !str_eq(a->mqtt.url, c->mqtt.url) ||
           !str_eq(a->mqtt.client_id, c->mqtt.client_id) ||
           !str_eq(a->mqtt.username, c->mqtt.username) ||
           !str_eq(a->mqtt.password, c->mqtt.password) || a->mqtt.version != c->mqtt.version ||
           a->mqtt.qos != c->mqtt.qos || a->mqtt.keepalive_ms != c->mqtt.keepalive_ms ||
           !str_eq(a->mqtt.topic_prefix, c->mqtt.topic_prefix) ||
           !str_eq(a->mqtt.status_topic, c->mqtt.status_topic) ||
           !str_eq(a->mqtt.ca_file, c->mqtt.ca_file) ||
           !str_eq(a->mqtt.cert_file, c->mqtt.cert_file) ||
           !str_eq(a->mqtt.key_file, c->mqtt.key_file) || a->mqtt.insecure != c->mqtt.insecure ||
           a->mqtt.max_packet_size != c->mqtt.max_packet_size ||
           !str_eq(a->state.path, c->state.path) || a->state.outbox_max != c->state.outbox_max ||
           a->state.sync_full != c->state.sync_full ||
           !str_eq(a->metrics.listen, c->metrics.listen) ||
           a->shutdown_timeout_ms != c->shutdown_timeout_ms ||
           a->max_concurrent != c->max_concurrent;
}

static void point_at(struct endpoint *ep, const struct r2m_endpoint_cfg *ec)
{
    ep->cfg = ec;
    r2m_http_xfer_retarget(ep->xfer, ec);
    if (ep->token_xfer) {
        ep->token_cfg.name = ec->name;
        ep->token_cfg.url = ec->auth.token_url;
        ep->token_cfg.tls = ec->tls;
    }
}

/* SIGHUP: endpoints added start, removed ones stop, changed ones restart
 * from their stored snapshot with the new settings (re-baselining only if
 * items/key/ignore changed); unchanged ones keep their schedule, their
 * transfer in progress and their state. An invalid file changes nothing. */
static void reload(struct r2m_bridge *b)
{
    const char *file = b->cfg->file;
    struct r2m_config *nc = NULL;
    struct r2m_diag d = {0};
    r2m_log(R2M_LOG_INFO, "reloading configuration", "file", file, NULL);
    if (r2m_config_load(file, &nc, &d)) {
        for (size_t i = 0; i < d.n; i++)
            r2m_log(R2M_LOG_ERROR, "reload: configuration error", "error", d.lines[i], NULL);
        r2m_log(R2M_LOG_ERROR, "configuration reload rejected; the running configuration stays",
                "file", file, NULL);
        r2m_diag_free(&d);
        return;
    }
    r2m_diag_free(&d);
    if (globals_differ(b->cfg, nc))
        r2m_log(R2M_LOG_WARN,
                "settings outside endpoints: and log: (mqtt, state, metrics, instance, "
                "shutdown_timeout, max_concurrent) changed; they take effect after a restart",
                NULL);
    r2m_log_setup(nc->log.level, nc->log.format);

    struct endpoint **neps = calloc(nc->n_endpoints ? nc->n_endpoints : 1, sizeof *neps);
    int64_t *due = calloc(b->n_eps ? b->n_eps : 1, sizeof *due);
    char *moved = calloc(b->n_eps ? b->n_eps : 1, 1);
    if (!neps || !due || !moved) {
        free(neps);
        free(due);
        free(moved);
        r2m_config_free(nc);
        r2m_log(R2M_LOG_ERROR, "reload: out of memory; the running configuration stays", NULL);
        return;
    }
    /* where each old endpoint stands in the schedule (INT64_MIN: in flight) */
    for (size_t i = 0; i < b->n_eps; i++)
        due[i] = INT64_MIN;
    uint32_t id;
    int64_t when;
    while (r2m_sched_take(b->sched, &id, &when))
        due[id] = when;
    while (b->n_waiting) { /* due polls waiting for their origin keep their turn */
        struct endpoint *ep = unpark(b, 0);
        due[ep->id] = ep->park_due;
    }

    size_t n = 0, added = 0, changed = 0, unchanged = 0, removed = 0, failed = 0;
    char err[1024];
    for (size_t i = 0; i < nc->n_endpoints; i++) {
        const struct r2m_endpoint_cfg *ec = &nc->endpoints[i];
        size_t k = 0;
        while (k < b->n_eps && (moved[k] || strcmp(b->eps[k]->cfg->name, ec->name)))
            k++;
        int found = k < b->n_eps;
        if (found && r2m_config_endpoint_hash(b->eps[k]->cfg) == r2m_config_endpoint_hash(ec)) {
            struct endpoint *ep = b->eps[k];
            moved[k] = 1;
            point_at(ep, ec);
            ep->id = (uint32_t)n;
            if (due[k] != INT64_MIN)
                r2m_sched_add(b->sched, ep->id, due[k]);
            neps[n++] = ep;
            unchanged++;
            continue;
        }
        struct endpoint *ep = NULL;
        if (endpoint_new(b, ec, &ep) || restore_endpoint(b, ep, err, sizeof err)) {
            r2m_log(R2M_LOG_ERROR, "reload: endpoint could not be started", "endpoint", ec->name,
                    NULL);
            endpoint_free(ep);
            failed++;
            continue;
        }
        ep->id = (uint32_t)n;
        r2m_sched_add(b->sched, ep->id,
                      b->now + r2m_sched_first(ec->interval_ms, ec->jitter, &b->rng));
        neps[n++] = ep;
        if (found)
            changed++;
        else
            added++;
    }
    for (size_t k = 0; k < b->n_eps; k++) {
        if (moved[k])
            continue;
        /* a changed endpoint's old copy, or one removed from the file; its
         * stored state stays until `rest2mqtt state prune` */
        int still = 0;
        for (size_t i = 0; i < nc->n_endpoints && !still; i++)
            still = !strcmp(nc->endpoints[i].name, b->eps[k]->cfg->name);
        removed += !still;
        endpoint_free(b->eps[k]);
    }
    free(b->eps);
    free(due);
    free(moved);
    b->eps = neps;
    b->n_eps = n;
    if (build_origins(b)) {
        /* the old table no longer matches the endpoints: cannot go on */
        r2m_log(R2M_LOG_ERROR, "reload: out of memory grouping endpoints by origin; stopping",
                NULL);
        for (size_t i = 0; i < n; i++)
            neps[i]->in_poll = 0; /* their origin indices mean nothing now */
        b->fatal = R2M_E_NOMEM;
        b->stopping = 1;
    }
    r2m_poller_env_limits(&b->env, nc);
    /* every endpoint now points into nc; the previous reload's config can go */
    r2m_config_free(b->reloaded);
    b->reloaded = nc;
    char a[16], c[16], u[16], r[16], f[16];
    snprintf(a, sizeof a, "%zu", added);
    snprintf(c, sizeof c, "%zu", changed);
    snprintf(u, sizeof u, "%zu", unchanged);
    snprintf(r, sizeof r, "%zu", removed);
    snprintf(f, sizeof f, "%zu", failed);
    r2m_log(failed ? R2M_LOG_WARN : R2M_LOG_INFO, "configuration reloaded", "added", a, "changed",
            c, "unchanged", u, "removed", r, "failed", f, NULL);
}

/* ---- the loop ---- */

static void on_signal(struct r2m_bridge *b)
{
    struct signalfd_siginfo si;
    while (read(b->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGHUP) {
            b->reload_pending = b->mode == R2M_BRIDGE_RUN;
            continue;
        }
        if (!b->stopping)
            r2m_log(R2M_LOG_INFO, "stopping", "signal", strsignal((int)si.ssi_signo), NULL);
        b->stopping = 1;
    }
}

static int64_t min64(int64_t a, int64_t c)
{
    return a < c ? a : c;
}

/* The state file must still be the file we write: deleted or replaced
 * under us, every later commit (and the outbox) is lost to the next start.
 * One stat() at most once a second (force: now), by the cached clock. */
static int state_file_ok(struct r2m_bridge *b, int force)
{
    if (!b->store || (!force && b->now - b->file_checked < 1000))
        return 1;
    b->file_checked = b->now;
    char err[1024];
    if (!r2m_store_check_file(b->store, err, sizeof err))
        return 1;
    r2m_log(R2M_LOG_ERROR, "state file lost; stopping (exit 2)", "error", err, NULL);
    b->fatal = R2M_E_IO;
    b->stopping = 1;
    return 0;
}

/* One turn: wait for the earliest of fds and timers, then handle what is due. */
static int turn(struct r2m_bridge *b, int64_t extra_deadline)
{
    int64_t deadline = min64(r2m_http_deadline(b->http), extra_deadline);
    /* when max_concurrent requests are in flight, due polls wait for one to
     * finish (a socket event), not for the clock */
    if (!b->stopping && r2m_http_active(b->http) < b->cfg->max_concurrent)
        deadline = min64(deadline, r2m_sched_next(b->sched));
    if (b->pub)
        deadline = min64(deadline, r2m_publish_deadline(b->pub));
    b->now = r2m_http_now_ms();
    if (b->metrics) {
        int64_t t = r2m_metrics_timeout_ms(b->metrics);
        if (t >= 0)
            deadline = min64(deadline, b->now + t);
    }
    int timeout = deadline == INT64_MAX ? 1000 : (int)min64(deadline - b->now, 1000);
    if (timeout < 0)
        timeout = 0;
    struct epoll_event evs[64];
    int n = epoll_wait(b->epfd, evs, 64, timeout);
    if (n < 0 && errno != EINTR) {
        r2m_log(R2M_LOG_ERROR, "epoll_wait failed", "error", strerror(errno), NULL);
        return R2M_E_SYSTEM;
    }
    b->now = r2m_http_now_ms();
    for (int i = 0; i < n; i++) {
        uint64_t tag = evs[i].data.u64 & TAG_MASK;
        if (tag == TAG_SIGNAL)
            on_signal(b);
        else if (tag == TAG_PUB)
            r2m_publish_dispatch(b->pub, b->now);
        else if (tag == TAG_METRICS)
            r2m_metrics_run(b->metrics);
        else if (tag == R2M_HTTP_EPOLL_TAG)
            r2m_http_on_socket(b->http, (int)(evs[i].data.u64 & 0xffffffffu), evs[i].events);
    }
    b->now = r2m_http_now_ms();
    if (b->fatal || !state_file_ok(b, 0))
        return b->fatal;
    if (b->reload_pending && !b->stopping) {
        b->reload_pending = 0;
        reload(b);
    }
    if (b->now >= r2m_http_deadline(b->http))
        r2m_http_on_timeout(b->http);
    if (b->pub && b->now >= r2m_publish_deadline(b->pub))
        r2m_publish_dispatch(b->pub, b->now);
    if (b->metrics && r2m_metrics_timeout_ms(b->metrics) == 0)
        r2m_metrics_run(b->metrics);
    start_due(b);
    /* events emitted by this turn's polls go out now, not at the next wake-up */
    if (b->pub) {
        r2m_publish_dispatch(b->pub, b->now);
        flush_acks(b);
    }
    return 0;
}

int r2m_bridge_run(struct r2m_bridge *b)
{
    int r = 0;
    b->now = r2m_http_now_ms();
    for (size_t i = 0; i < b->n_eps; i++) {
        struct endpoint *ep = b->eps[i];
        int64_t first = b->mode == R2M_BRIDGE_ONCE
                            ? 0
                            : r2m_sched_first(ep->cfg->interval_ms, ep->cfg->jitter, &b->rng);
        if ((r = r2m_sched_add(b->sched, ep->id, b->now + first)))
            return r;
    }
    b->once_left = b->n_eps;
    if (b->pub) {
        char n[16];
        snprintf(n, sizeof n, "%zu", b->n_eps);
        r2m_log(R2M_LOG_INFO, "starting", "endpoints", n, "broker",
                r2m_log_url(b->cfg->mqtt.url, (char[512]){0}, 512), NULL);
        r2m_publish_connect(b->pub, b->now);
    }

    while (!b->stopping) {
        if ((r = turn(b, INT64_MAX)))
            return r;
        if (b->mode == R2M_BRIDGE_ONCE && b->once_left == 0)
            return b->once_failed ? R2M_E_HTTP : 0;
    }
    if (b->mode == R2M_BRIDGE_ONCE)
        return 0;
    /* a lost state file: no claim that anything stays in the outbox */
    if (b->fatal || !state_file_ok(b, 1))
        return b->fatal;

    /* graceful stop: no new polls; let polls in progress finish within a
     * short grace period, then wait for the broker to acknowledge what is
     * queued, up to shutdown_timeout */
    int64_t end = b->now + b->cfg->shutdown_timeout_ms;
    int64_t http_end = b->now + min64(2000, b->cfg->shutdown_timeout_ms);
    while (r2m_http_active(b->http) && b->now < http_end)
        if ((r = turn(b, http_end)))
            return r;
    while (r2m_publish_pending(b->pub) && b->now < end)
        if ((r = turn(b, end)))
            return r;
    if (r2m_publish_pending(b->pub)) {
        char n[24];
        snprintf(n, sizeof n, "%zu", r2m_publish_pending(b->pub));
        r2m_log(R2M_LOG_WARN,
                "shutdown_timeout reached with events unacknowledged; they stay in the outbox "
                "and are delivered after the next start",
                "count", n, NULL);
    }
    int64_t left = end - b->now;
    r2m_publish_goodbye(b->pub, left > 1000 ? left : 1000);
    flush_acks(b);
    save_validators(b);
    r2m_log(R2M_LOG_INFO, "stopped", NULL);
    return 0;
}
