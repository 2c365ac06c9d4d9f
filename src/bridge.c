/* bridge.c - the single-threaded event loop: schedule -> fetch -> poller -> publish. */
#include "r2m/bridge.h"

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
#include "r2m/oauth2.h"
#include "r2m/outbox.h"
#include "r2m/poller.h"
#include "r2m/publish.h"
#include "r2m/reload.h"
#include "r2m/sched.h"
#include "r2m/status.h"
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
    struct r2m_oauth2 *oauth2;
    struct r2m_http_xfer *token_xfer;
    int saved;                     /* this poll committed to the store */
    int validators_unsaved;        /* new validators arrived with an unchanged body */
    struct r2m_status_endpoint st; /* counters for /metrics (names filled on demand) */
    char last_error[256];          /* cause of the last failure, for /healthz */
    int64_t next_due;              /* monotonic ms of the next poll; 0: none */
    /* origin (scheme, host, port of url) for the per-origin cap */
    uint32_t origin;  /* index into the bridge's origins */
    int in_poll;      /* a poll is in progress: counted in its origin */
    int parked;       /* due, waiting in its origin's queue */
    int64_t park_due; /* when it fell due */
    struct endpoint *park_next;
};

/* Requests in flight per origin (README guarantee 8). Due polls of an
 * origin that may not start now wait in its queue, in due order, without
 * holding up polls of other origins. */
struct origin {
    char *name;       /* "scheme://host:port" */
    size_t in_flight; /* polls in progress */
    struct endpoint *park_head, *park_tail;
};

struct r2m_bridge {
    const struct r2m_config *cfg;
    int mode;
    int epfd, sigfd;
    struct r2m_sched *sched;
    struct r2m_http *http;
    struct r2m_publish *pub;
    struct r2m_store *store;
    struct r2m_outbox *outbox;
    struct endpoint *current; /* the endpoint whose poll is being committed */
    struct r2m_metrics *metrics;
    struct r2m_metrics_histo http_seconds, publish_seconds;
    uint64_t events_by_type[R2M_EVENT_TYPES];
    int64_t started; /* monotonic ms of the start, for uptime */
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

/* Counts committed events by the type their poller gave them; retained
 * state messages are not events. */
static void count_events(struct r2m_bridge *b, struct endpoint *ep, const struct r2m_poller_batch *batch)
{
    for (size_t i = 0; i < batch->n; i++) {
        const struct r2m_poller_batch_msg *m = &batch->msgs[i];
        if (m->retained)
            continue;
        b->events_by_type[m->type]++;
        if (!ep)
            continue;
        ep->st.events++;
        ep->st.events_by_type[m->type]++;
        ep->st.last_change_wall = b->env.wall_ms;
    }
}

/* The poller's result goes to the transactional outbox (r2m/outbox.h). */
static int emit_publish(void *ctx, const struct r2m_poller_batch *batch, r2m_poller_persist_fn *persist,
                        void *pctx, char *err, size_t errlen)
{
    struct r2m_bridge *b = ctx;
    struct endpoint *ep = b->current;
    struct r2m_outbox_from from = {0};
    if (ep)
        from = (struct r2m_outbox_from){ep->cfg->name, r2m_http_etag(ep->xfer),
                                        r2m_http_last_modified(ep->xfer)};
    int r = r2m_outbox_emit(b->outbox, batch, persist, pctx, &from, err, errlen);
    if (r)
        return r;
    if (ep) {
        ep->saved = 1;
        ep->validators_unsaved = 0;
    }
    count_events(b, ep, batch);
    return 0;
}

static void on_ack(void *ctx, int64_t id, int64_t latency_ms)
{
    struct r2m_bridge *b = ctx;
    r2m_metrics_histo_observe(&b->publish_seconds, (double)latency_ms / 1000.0);
    r2m_outbox_on_ack(b->outbox, id);
}

static void on_dead(void *ctx, int64_t id, const char *topic, const char *payload, size_t len,
                    uint64_t size, const char *reason, const char *words)
{
    struct r2m_bridge *b = ctx;
    r2m_outbox_on_dead(b->outbox, id, topic, payload, len, size, reason, words);
}

/* The publisher, as the outbox sees it. */
static size_t sink_room(void *ctx)
{
    return r2m_publish_room(ctx);
}

static size_t sink_pending(void *ctx)
{
    return r2m_publish_pending(ctx);
}

static int sink_enqueue(void *ctx, char *topic, char *payload, size_t len, int retained, int64_t id)
{
    return r2m_publish_enqueue(ctx, topic, payload, len, retained, id);
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

/* Puts ep's next poll at due (monotonic ms) on the schedule. */
static int schedule(struct r2m_bridge *b, struct endpoint *ep, int64_t due)
{
    int r = r2m_sched_add(b->sched, ep->id, due);
    if (r)
        r2m_log(R2M_LOG_ERROR, "out of memory scheduling endpoint", "endpoint", ep->cfg->name,
                NULL);
    else
        ep->next_due = due;
    return r;
}

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
    schedule(b, ep, due < b->now ? b->now : due);
}

static void poll_failed(struct r2m_bridge *b, struct endpoint *ep, int code, const char *why)
{
    ep->st.errors++;
    if (!ep->failures++)
        ep->st.error_since_wall = ep->st.last_poll_wall;
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
    ep->st.polls++;
    ep->st.last_poll_wall = wall_ms();
    ep->st.last_result = code;
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
        ep->st.last_ok_wall = ep->st.last_poll_wall;
    }
    if (b->mode == R2M_BRIDGE_ONCE)
        b->once_left--;
    schedule_next(b, ep);
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
    ep->next_due = 0;
    if (ep->oauth2 && r2m_oauth2_poll_start(ep->oauth2, b->now)) {
        if (r2m_http_start(ep->token_xfer))
            poll_end(b, ep, R2M_E_HTTP, "could not start the OAuth2 token request");
        return;
    }
    start_main(b, ep, NULL);
}

/* The token endpoint answered: the poll goes on with the token, or ends. */
static void token_done(struct r2m_bridge *b, struct endpoint *ep, const struct r2m_http_result *res)
{
    char why[600];
    const char *token = NULL;
    int r = r2m_oauth2_done(ep->oauth2, res, b->env.doc, b->now, &token, why, sizeof why);
    if (r) {
        poll_end(b, ep, r, why);
        return;
    }
    if (r2m_http_set_token(ep->xfer, token)) {
        r2m_oauth2_forget(ep->oauth2);
        poll_end(b, ep, R2M_E_NOMEM, "out of memory storing the OAuth2 token");
        return;
    }
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
        if (res->status == 401 && ep->oauth2 && r2m_oauth2_unauthorized(ep->oauth2)) {
            /* the token was revoked or expired early: fetch one, retry once */
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
        ep->st.not_modified++;
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

/* The arrays a status snapshot points at (r2m/status.h). */
struct snapshot {
    struct r2m_status s;
    struct r2m_status_endpoint *eps;
    char (*urls)[256];
    struct r2m_status_dead *dead;
};

static void snapshot_free(struct snapshot *m)
{
    free(m->eps);
    free(m->urls);
    free(m->dead);
}

/* Fills m from the loop's counters; free with snapshot_free. */
static int snapshot_take(struct r2m_bridge *b, struct snapshot *m)
{
    size_t n_dead = 0;
    const struct r2m_outbox_dead_count *dc =
        b->outbox ? r2m_outbox_dead_counts(b->outbox, &n_dead) : NULL;
    *m = (struct snapshot){0};
    m->eps = calloc(b->n_eps ? b->n_eps : 1, sizeof *m->eps);
    m->urls = calloc(b->n_eps ? b->n_eps : 1, sizeof *m->urls);
    m->dead = calloc(n_dead ? n_dead : 1, sizeof *m->dead);
    if (!m->eps || !m->urls || !m->dead)
        return R2M_E_NOMEM;
    for (size_t i = 0; i < b->n_eps; i++) {
        const struct endpoint *ep = b->eps[i];
        struct r2m_status_endpoint *e = &m->eps[i];
        *e = ep->st;
        e->name = ep->cfg->name;
        e->kind = ep->kind->name;
        e->url = r2m_log_url(ep->cfg->url, m->urls[i], sizeof m->urls[i]);
        e->interval_ms = ep->cfg->interval_ms;
        e->failures = ep->failures;
        e->last_error = ep->failures ? ep->last_error : "";
        e->next_poll_in_ms = !ep->next_due ? -1 : ep->next_due < b->now ? 0 : ep->next_due - b->now;
    }
    for (size_t i = 0; i < n_dead; i++)
        m->dead[i] = (struct r2m_status_dead){dc[i].endpoint, dc[i].reason, dc[i].n};
    m->s = (struct r2m_status){.version = R2M_VERSION,
                               .now_wall = wall_ms(),
                               .uptime_ms = b->now - b->started,
                               .broker_connected = r2m_publish_connected(b->pub),
                               .outbox = r2m_publish_pending(b->pub),
                               .eps = m->eps,
                               .n_eps = b->n_eps,
                               .dead = m->dead,
                               .n_dead = n_dead,
                               .http_seconds = &b->http_seconds,
                               .publish_seconds = &b->publish_seconds};
    memcpy(m->s.events_by_type, b->events_by_type, sizeof b->events_by_type);
    return 0;
}

/* The status page reloads itself this often (seconds). */
#define STATUS_PAGE_REFRESH_S 5

static void metrics_handler(void *ctx, const char *path, struct r2m_buf *out, int *status,
                            const char **ctype)
{
    struct r2m_bridge *b = ctx;
    int metrics = !strcmp(path, "/metrics"), health = !strcmp(path, "/healthz");
    int page = !strcmp(path, "/"), json = !strcmp(path, "/status.json");
    if (!metrics && !health && !page && !json) {
        *status = 404;
        r2m_buf_puts(out, "not found; try /, /status.json, /metrics or /healthz\n");
        return;
    }
    struct snapshot m;
    int r = snapshot_take(b, &m);
    if (!r && metrics) {
        *status = 200;
        *ctype = "text/plain; version=0.0.4; charset=utf-8";
        r = r2m_status_prometheus(&m.s, out);
    } else if (!r && (page || json)) {
        *status = 200;
        *ctype = page ? "text/html; charset=utf-8" : "application/json";
        r = page ? r2m_status_html(&m.s, STATUS_PAGE_REFRESH_S, out) : r2m_status_json(&m.s, out);
    } else if (!r) {
        /* the loop is turning: it is the loop that answers this request */
        *ctype = "application/json";
        r = r2m_status_health(&m.s, out, status);
    }
    snapshot_free(&m);
    if (r) {
        r2m_buf_reset(out);
        *status = 500;
        *ctype = "text/plain; charset=utf-8";
        r2m_buf_printf(out, "%s\n", r2m_strerror(r));
    }
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

static void endpoint_free(struct endpoint *ep)
{
    if (!ep)
        return;
    r2m_http_xfer_free(ep->xfer);
    r2m_http_xfer_free(ep->token_xfer);
    r2m_oauth2_free(ep->oauth2);
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
    if ((r = r2m_http_xfer_new(b->http, ec, &ho, ep, &ep->xfer)))
        goto fail;
    /* OAuth2: a second transfer of the same endpoint fetches the token
     * (one page, never conditional) */
    struct r2m_http_opts token_ho = {0};
    if (ec->auth.type == R2M_AUTH_OAUTH2 &&
        ((r = r2m_oauth2_new(&ep->oauth2, ec)) ||
         (r = r2m_http_xfer_new(b->http, r2m_oauth2_request(ep->oauth2), &token_ho, ep,
                                &ep->token_xfer))))
        goto fail;
    *out = ep;
    return 0;
fail:
    endpoint_free(ep);
    return r;
}

/* Blocks SIGINT, SIGTERM and SIGHUP and watches them through a signalfd
 * in a new epoll. */
static int setup_loop(struct r2m_bridge *b)
{
    /* block the signals before paho starts threads, so they inherit the
     * mask and the signals arrive only through our signalfd */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return R2M_E_SYSTEM;
    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    b->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (b->epfd < 0 || b->sigfd < 0)
        return R2M_E_SYSTEM;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_SIGNAL};
    if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->sigfd, &ev) < 0)
        return R2M_E_SYSTEM;
    return 0;
}

/* RUN mode: the state file, the publisher, the outbox between them and the
 * metrics server. err is set when the error names a file or an address
 * (*err_set), else the caller words it. */
static int setup_run(struct r2m_bridge *b, char *err, size_t errlen, int *err_set)
{
    const struct r2m_config *cfg = b->cfg;
    int r;
    *err_set = 1;
    if ((r = r2m_store_new(&(struct r2m_store_params){.path = cfg->state.path}, err, errlen,
                           &b->store)))
        return r;
    if ((r = r2m_store_set_sync(b->store, cfg->state.sync_full))) {
        snprintf(err, errlen, "state file %s: cannot set state.sync", cfg->state.path);
        return r;
    }
    b->env.epoch = r2m_store_epoch(b->store);
    *err_set = 0;
    if ((r = r2m_publish_new(cfg, cfg->state.outbox_max, &b->pub)))
        return r;
    struct r2m_outbox_sink sink = {b->pub, sink_room, sink_pending, sink_enqueue};
    if ((r = r2m_outbox_new(&b->outbox, b->store, cfg->state.path, cfg->state.outbox_max, &sink)))
        return r;
    char shown[256];
    if (cfg->mqtt.insecure)
        r2m_log(R2M_LOG_WARN,
                "TLS certificate verification is OFF for the broker (mqtt.tls.insecure)", "broker",
                r2m_log_url(cfg->mqtt.url, shown, sizeof shown), NULL);
    r2m_publish_on_ack(b->pub, on_ack, b);
    r2m_publish_on_dead(b->pub, on_dead, b);
    *err_set = 1;
    if (cfg->metrics.listen && (r = r2m_metrics_new(cfg->metrics.listen, b->epfd, TAG_METRICS,
                                                    metrics_handler, b, &b->metrics, err, errlen)))
        return r;
    *err_set = 0;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_PUB};
    if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, r2m_publish_fd(b->pub), &ev) < 0)
        return R2M_E_SYSTEM;
    b->env.emit = emit_publish;
    return 0;
}

/* Creates the endpoints (all, or the one named only) and groups them by
 * origin. err is set when *err_set. */
static int setup_endpoints(struct r2m_bridge *b, const char *only, char *err, size_t errlen,
                           int *err_set)
{
    const struct r2m_config *cfg = b->cfg;
    int r;
    *err_set = 0;
    b->eps = calloc(cfg->n_endpoints ? cfg->n_endpoints : 1, sizeof *b->eps);
    if (!b->eps)
        return R2M_E_NOMEM;
    for (size_t i = 0; i < cfg->n_endpoints; i++) {
        const struct r2m_endpoint_cfg *ec = &cfg->endpoints[i];
        if (only && strcmp(only, ec->name) != 0)
            continue;
        if ((r = endpoint_new(b, ec, &b->eps[b->n_eps])))
            return r;
        if (ec->tls.insecure)
            r2m_log(R2M_LOG_WARN,
                    "TLS certificate verification is OFF for this endpoint (tls.insecure); "
                    "anyone on the path can read and change its data",
                    "endpoint", ec->name, NULL);
        b->eps[b->n_eps]->id = (uint32_t)b->n_eps;
        b->n_eps++;
    }
    if (only && b->n_eps == 0) {
        *err_set = 1;
        snprintf(err, errlen, "no endpoint named '%s'", only);
        return R2M_E_NOT_FOUND;
    }
    if ((r = build_origins(b)))
        return r;
    if (b->n_origins > cfg->max_concurrent) {
        char n[24], m[24];
        snprintf(n, sizeof n, "%zu", b->n_origins);
        snprintf(m, sizeof m, "%u", cfg->max_concurrent);
        r2m_log(R2M_LOG_WARN,
                "more origins than max_concurrent: slow origins can then delay the others; "
                "raise max_concurrent to at least the number of origins",
                "origins", n, "max_concurrent", m, NULL);
    }
    return 0;
}

int r2m_bridge_new(struct r2m_bridge **out, const struct r2m_config *cfg, int mode,
                   const char *only, char *err, size_t errlen)
{
    int r, err_set = 0;
    struct r2m_bridge *b = calloc(1, sizeof *b);
    if (!b)
        return R2M_E_NOMEM;
    b->cfg = cfg;
    b->mode = mode;
    b->epfd = b->sigfd = -1;
    b->rng = (uint64_t)wall_ms() ^ ((uint64_t)getpid() << 40);
    b->started = r2m_http_now_ms();
    if ((r = setup_loop(b)) || (r = r2m_sched_new(&b->sched)) ||
        (r = r2m_http_new(b->epfd, http_done, &b->http)) || (r = r2m_poller_env_init(&b->env, cfg)))
        goto out;
    /* `once` keeps no state: its ids only need to be unique per run */
    b->env.epoch = b->rng ^ 0x5bd1e995u;
    if (mode == R2M_BRIDGE_RUN) {
        if ((r = setup_run(b, err, errlen, &err_set)))
            goto out;
    } else {
        b->env.emit = emit_print;
        b->env.emit_initial = 1;
    }
    b->env.emit_ctx = b;
    if ((r = setup_endpoints(b, only, err, errlen, &err_set)))
        goto out;
    err_set = 1;
    for (size_t i = 0; b->store && i < b->n_eps; i++)
        if ((r = restore_endpoint(b, b->eps[i], err, errlen)))
            goto out;
    if (b->outbox && (r = r2m_outbox_load(b->outbox, err, errlen)))
        goto out;
    *out = b;
    return 0;
out:
    if (!err_set)
        snprintf(err, errlen, "%s", r2m_strerror(r));
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
    r2m_outbox_free(b->outbox);
    r2m_store_free(b->store);
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

static void point_at(struct endpoint *ep, const struct r2m_endpoint_cfg *ec)
{
    ep->cfg = ec;
    r2m_http_xfer_retarget(ep->xfer, ec);
    if (ep->oauth2)
        r2m_oauth2_retarget(ep->oauth2, ec);
}

/* The file behind the running configuration, loaded again; NULL (logged)
 * when it is invalid. */
static struct r2m_config *reload_load(const char *file)
{
    struct r2m_config *nc = NULL;
    struct r2m_diag d = {0};
    r2m_log(R2M_LOG_INFO, "reloading configuration", "file", file, NULL);
    if (r2m_config_load(file, &nc, &d)) {
        for (size_t i = 0; i < d.n; i++)
            r2m_log(R2M_LOG_ERROR, "reload: configuration error", "error", d.lines[i], NULL);
        r2m_log(R2M_LOG_ERROR, "configuration reload rejected; the running configuration stays",
                "file", file, NULL);
        nc = NULL;
    }
    r2m_diag_free(&d);
    return nc;
}

/* Where each endpoint stands in the schedule (due[id]; INT64_MIN: in
 * flight), taking them all off it: the plan renumbers them. */
static void unschedule_all(struct r2m_bridge *b, int64_t *due)
{
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
}

/* What the applied plan did, for the log line. */
struct reload_counts {
    size_t added, changed, unchanged, removed, failed;
};

/* Applies plan to the endpoints (the new ones point into nc): unchanged
 * ones keep their schedule, their transfer in progress and their state;
 * changed and added ones start from their stored snapshot; the others
 * stop (their stored state stays until `rest2mqtt state prune`).
 * R2M_E_NOMEM changes nothing. */
static int reload_apply(struct r2m_bridge *b, const struct r2m_config *nc,
                        const struct r2m_reload_plan *plan, struct reload_counts *c)
{
    struct endpoint **neps = calloc(plan->n_steps ? plan->n_steps : 1, sizeof *neps);
    int64_t *due = calloc(b->n_eps ? b->n_eps : 1, sizeof *due);
    if (!neps || !due) {
        free(neps);
        free(due);
        return R2M_E_NOMEM;
    }
    unschedule_all(b, due);
    size_t n = 0;
    char err[1024];
    for (size_t i = 0; i < plan->n_steps; i++) {
        const struct r2m_endpoint_cfg *ec = &nc->endpoints[i];
        const struct r2m_reload_step *st = &plan->steps[i];
        struct endpoint *ep = NULL;
        if (st->action == R2M_RELOAD_UNCHANGED) {
            ep = b->eps[st->old];
            point_at(ep, ec);
            ep->id = (uint32_t)n;
            neps[n++] = ep;
            if (due[st->old] != INT64_MIN)
                (void)schedule(b, ep, due[st->old]); /* failure logged */
            c->unchanged++;
            continue;
        }
        if (endpoint_new(b, ec, &ep) || restore_endpoint(b, ep, err, sizeof err)) {
            r2m_log(R2M_LOG_ERROR, "reload: endpoint could not be started", "endpoint", ec->name,
                    NULL);
            endpoint_free(ep);
            c->failed++;
            continue;
        }
        ep->id = (uint32_t)n;
        neps[n++] = ep;
        (void)schedule(b, ep, b->now + r2m_sched_first(ec->interval_ms, ec->jitter, &b->rng));
        if (st->action == R2M_RELOAD_CHANGED)
            c->changed++;
        else
            c->added++;
    }
    for (size_t k = 0; k < b->n_eps; k++)
        if (!plan->kept[k])
            endpoint_free(b->eps[k]);
    c->removed = plan->removed;
    free(b->eps);
    free(due);
    b->eps = neps;
    b->n_eps = n;
    return 0;
}

static void reload_logged(const struct reload_counts *c)
{
    char a[24], ch[24], u[24], r[24], f[24];
    snprintf(a, sizeof a, "%zu", c->added);
    snprintf(ch, sizeof ch, "%zu", c->changed);
    snprintf(u, sizeof u, "%zu", c->unchanged);
    snprintf(r, sizeof r, "%zu", c->removed);
    snprintf(f, sizeof f, "%zu", c->failed);
    r2m_log(c->failed ? R2M_LOG_WARN : R2M_LOG_INFO, "configuration reloaded", "added", a,
            "changed", ch, "unchanged", u, "removed", r, "failed", f, NULL);
}

/* SIGHUP: endpoints added start, removed ones stop, changed ones restart
 * from their stored snapshot with the new settings (re-baselining only if
 * items/key/ignore changed); unchanged ones keep their schedule, their
 * transfer in progress and their state (r2m/reload.h plans, reload_apply
 * applies). An invalid file changes nothing. */
static void reload(struct r2m_bridge *b)
{
    struct r2m_config *nc = reload_load(b->cfg->file);
    if (!nc)
        return;
    struct r2m_reload_plan plan = {0};
    const struct r2m_endpoint_cfg **olds = calloc(b->n_eps ? b->n_eps : 1, sizeof *olds);
    for (size_t i = 0; olds && i < b->n_eps; i++)
        olds[i] = b->eps[i]->cfg;
    int r = olds ? r2m_reload_plan_new(&plan, b->cfg, olds, b->n_eps, nc) : R2M_E_NOMEM;
    free(olds);
    if (!r && plan.globals_differ)
        r2m_log(R2M_LOG_WARN,
                "settings outside endpoints: and log: (mqtt, state, metrics, instance, "
                "shutdown_timeout, max_concurrent) changed; they take effect after a restart",
                NULL);
    if (!r)
        r2m_log_setup(nc->log.level, nc->log.format);
    struct reload_counts c = {0};
    if (r || (r = reload_apply(b, nc, &plan, &c))) {
        r2m_reload_plan_free(&plan);
        r2m_config_free(nc);
        r2m_log(R2M_LOG_ERROR, "reload: out of memory; the running configuration stays", NULL);
        return;
    }
    r2m_reload_plan_free(&plan);
    if (build_origins(b)) {
        /* the old table no longer matches the endpoints: cannot go on */
        r2m_log(R2M_LOG_ERROR, "reload: out of memory grouping endpoints by origin; stopping",
                NULL);
        for (size_t i = 0; i < b->n_eps; i++)
            b->eps[i]->in_poll = 0; /* their origin indices mean nothing now */
        b->fatal = R2M_E_NOMEM;
        b->stopping = 1;
    }
    r2m_poller_env_limits(&b->env, nc);
    /* every endpoint now points into nc; the previous reload's config can go */
    r2m_config_free(b->reloaded);
    b->reloaded = nc;
    reload_logged(&c);
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

/* How long the next epoll_wait may sleep: until the earliest of the
 * timers, at most 1 s. */
static int wait_ms(struct r2m_bridge *b, int64_t extra_deadline)
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
    return timeout < 0 ? 0 : timeout;
}

static void dispatch(struct r2m_bridge *b, const struct epoll_event *evs, int n)
{
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
}

/* One turn: wait for the earliest of fds and timers, then handle what is due. */
static int turn(struct r2m_bridge *b, int64_t extra_deadline)
{
    struct epoll_event evs[64];
    int n = epoll_wait(b->epfd, evs, 64, wait_ms(b, extra_deadline));
    if (n < 0 && errno != EINTR) {
        r2m_log(R2M_LOG_ERROR, "epoll_wait failed", "error", strerror(errno), NULL);
        return R2M_E_SYSTEM;
    }
    b->now = r2m_http_now_ms();
    dispatch(b, evs, n);
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
        r2m_outbox_flush(b->outbox, wall_ms());
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
        if ((r = schedule(b, ep, b->now + first)))
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
    r2m_outbox_flush(b->outbox, wall_ms());
    save_validators(b);
    r2m_log(R2M_LOG_INFO, "stopped", NULL);
    return 0;
}
