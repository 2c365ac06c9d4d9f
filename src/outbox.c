/* outbox.c - snapshot + events in one transaction; acks and dead letters. */
#include "r2m/outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r2m/buf.h"
#include "r2m/error.h"
#include "r2m/log.h"

/* A message the broker refused for good, waiting to be moved from the
 * outbox to the dead-letter table with this turn's acknowledgements. */
struct dead_letter {
    int64_t id; /* outbox row; 0: not in the outbox (the status message) */
    char *topic, *words, *event_id;
    const char *reason; /* static token from r2m/publish.h */
    uint64_t size;
};

struct r2m_outbox {
    struct r2m_store *store;
    const char *path;
    uint64_t max;
    struct r2m_outbox_sink sink;
    int64_t *ids; /* rows of the batch being committed */
    size_t cap_ids;
    int64_t *acked; /* rows acknowledged, deleted at the next flush */
    size_t n_acked, cap_acked;
    struct dead_letter *dead; /* refused for good, moved at the next flush */
    size_t n_dead, cap_dead;
    struct r2m_outbox_dead_count *counts;
    size_t n_counts, cap_counts;
    struct r2m_log_limit flush_log; /* the outbox cannot be written */
    int full;                       /* warned about a full outbox; cleared when there is room */
    /* Rows with a larger id than this one wait in the store because the
     * publisher's queue was full when they were read (a start with more
     * stored events than outbox_max, or requeued dead letters); 0: none.
     * They are queued as acknowledgements make room, before anything new. */
    int64_t backlog;
};

int r2m_outbox_new(struct r2m_outbox **out, struct r2m_store *store, const char *path, uint64_t max,
                   const struct r2m_outbox_sink *sink)
{
    struct r2m_outbox *o = calloc(1, sizeof *o);
    if (!o)
        return R2M_E_NOMEM;
    o->store = store;
    o->path = path;
    o->max = max;
    o->sink = *sink;
    *out = o;
    return 0;
}

static void dead_free(struct dead_letter *d)
{
    free(d->topic);
    free(d->words);
    free(d->event_id);
}

void r2m_outbox_free(struct r2m_outbox *o)
{
    if (!o)
        return;
    free(o->ids);
    free(o->acked);
    for (size_t i = 0; i < o->n_dead; i++)
        dead_free(&o->dead[i]);
    free(o->dead);
    for (size_t i = 0; i < o->n_counts; i++)
        free(o->counts[i].endpoint);
    free(o->counts);
    free(o);
}

/* Copies a message for the publisher, which takes ownership. */
static int queue(struct r2m_outbox *o, const char *topic, const char *payload, size_t len,
                 int retained, int64_t id)
{
    char *t = strdup(topic), *p = malloc(len + 1);
    if (!t || !p) {
        free(t);
        free(p);
        return R2M_E_NOMEM;
    }
    if (len)
        memcpy(p, payload, len);
    p[len] = '\0';
    return o->sink.enqueue(o->sink.ctx, t, p, len, retained, id) == R2M_E_NOMEM ? R2M_E_NOMEM : 0;
}

/* Reading stored rows into the publisher's queue, oldest first. */
struct refill_pass {
    struct r2m_outbox *o;
    int64_t after; /* rows up to this id are queued already */
    int64_t last;  /* the last row queued by this pass */
    int stopped;   /* the queue filled up before the end */
};

static int load_entry(void *ctx, int64_t id, const char *topic, const char *payload, size_t len,
                      int retained)
{
    struct refill_pass *rf = ctx;
    if (id <= rf->after)
        return 0;
    if (!rf->o->sink.room(rf->o->sink.ctx)) {
        rf->stopped = 1;
        return R2M_E_TOO_BIG; /* ends the walk; not an error */
    }
    int r = queue(rf->o, topic, payload, len, retained, id);
    if (r)
        return r;
    rf->last = id;
    return 0;
}

/* Queues stored rows after `after` while the publisher has room; sets
 * o->backlog to the last row queued when some stay behind, else to 0. */
static int refill(struct r2m_outbox *o, int64_t after)
{
    struct refill_pass rf = {o, after, after, 0};
    int r = r2m_store_outbox(o->store, load_entry, &rf);
    if (r && !(r == R2M_E_TOO_BIG && rf.stopped))
        return r;
    o->backlog = rf.stopped ? rf.last : 0;
    return 0;
}

int r2m_outbox_load(struct r2m_outbox *o, char *err, size_t errlen)
{
    int r = refill(o, 0);
    if (r) {
        snprintf(err, errlen, "cannot load the outbox from %s: %s", o->path,
                 r2m_store_errmsg(o->store));
        return r;
    }
    size_t n = o->sink.pending(o->sink.ctx);
    if (n) {
        char s[24];
        snprintf(s, sizeof s, "%zu", n);
        r2m_log(R2M_LOG_INFO, "resuming: events from the outbox will be delivered first", "count",
                s, NULL);
    }
    if (o->backlog) {
        char s[24];
        snprintf(s, sizeof s, "%lld", (long long)(r2m_store_outbox_count(o->store) - (int64_t)n));
        r2m_log(R2M_LOG_INFO,
                "more stored events than state.outbox_max: the rest are queued as the broker "
                "acknowledges, before any new event",
                "waiting", s, NULL);
    }
    return 0;
}

/* R2M_E_TOO_BIG with err set when the batch cannot be taken now or ever. */
static int check_room(struct r2m_outbox *o, size_t n, char *err, size_t errlen)
{
    if (n > o->max) {
        /* not "outbox full": no acknowledgement makes room for this one,
         * every later poll finds the same change (or a bigger one) */
        snprintf(err, errlen,
                 "this poll's change is %zu events, more than state.outbox_max (%llu) can ever "
                 "hold; snapshot not advanced, nothing published - raise state.outbox_max and "
                 "restart to deliver it",
                 n, (unsigned long long)o->max);
        return R2M_E_TOO_BIG;
    }
    if (o->backlog || o->sink.room(o->sink.ctx) < n) {
        snprintf(err, errlen,
                 "outbox full (%zu events wait for the broker, state.outbox_max is %llu); "
                 "snapshot not advanced, the change will be delivered by a later poll",
                 o->sink.pending(o->sink.ctx), (unsigned long long)o->max);
        if (!o->full) {
            char s[24];
            snprintf(s, sizeof s, "%llu", (unsigned long long)o->max);
            r2m_log(R2M_LOG_WARN,
                    "outbox full: endpoints stop advancing their snapshots until the broker "
                    "acknowledges events; no change is lost",
                    "outbox_max", s, NULL);
        }
        o->full = 1;
        return R2M_E_TOO_BIG;
    }
    o->full = 0;
    return 0;
}

/* The one transaction: snapshot, validators, events. */
static int commit(struct r2m_outbox *o, const struct r2m_poller_batch *batch,
                  r2m_poller_persist_fn *persist, void *pctx, const struct r2m_outbox_from *from)
{
    int r;
    if ((r = r2m_store_begin(o->store)) || (r = persist(pctx, o->store)))
        return r;
    if (from->endpoint &&
        (r = r2m_store_validators_put(o->store, from->endpoint, from->etag, from->last_modified)))
        return r;
    for (size_t i = 0; i < batch->n; i++) {
        const struct r2m_poller_batch_msg *m = &batch->msgs[i];
        if ((r = r2m_store_outbox_add(o->store, from->endpoint, r2m_poller_batch_topic(batch, i),
                                      m->topic_len, r2m_poller_batch_payload(batch, i),
                                      m->payload_len, m->retained, &o->ids[i])))
            return r;
    }
    return r2m_store_commit(o->store);
}

int r2m_outbox_emit(struct r2m_outbox *o, const struct r2m_poller_batch *batch,
                    r2m_poller_persist_fn *persist, void *pctx, const struct r2m_outbox_from *from,
                    char *err, size_t errlen)
{
    int r;
    if ((r = check_room(o, batch->n, err, errlen)))
        return r;
    if ((r = r2m_buf_grow(&o->ids, &o->cap_ids, batch->n, sizeof *o->ids)))
        return r;
    if ((r = commit(o, batch, persist, pctx, from))) {
        snprintf(err, errlen, "state not saved (%s: %s); snapshot not advanced, nothing published",
                 o->path, r2m_store_errmsg(o->store));
        r2m_store_rollback(o->store);
        return R2M_E_IO;
    }
    /* committed: from here on the events exist; memory failures below only
     * delay them until the next start (they are in the outbox) */
    for (size_t i = 0; i < batch->n; i++) {
        const struct r2m_poller_batch_msg *m = &batch->msgs[i];
        if (queue(o, r2m_poller_batch_topic(batch, i), r2m_poller_batch_payload(batch, i),
                  m->payload_len, m->retained, o->ids[i]))
            r2m_log(R2M_LOG_ERROR,
                    "out of memory queueing a committed event; it stays in the "
                    "outbox and is sent after a restart",
                    NULL);
    }
    return 0;
}

void r2m_outbox_on_ack(struct r2m_outbox *o, int64_t id)
{
    /* on failure not deleted now: it will be sent again after a restart
     * (same id) */
    if (!r2m_buf_grow(&o->acked, &o->cap_acked, o->n_acked + 1, sizeof *o->acked))
        o->acked[o->n_acked++] = id;
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

void r2m_outbox_on_dead(struct r2m_outbox *o, int64_t id, const char *topic, const char *payload,
                        size_t len, uint64_t size, const char *reason, const char *words)
{
    if (r2m_buf_grow(&o->dead, &o->cap_dead, o->n_dead + 1, sizeof *o->dead))
        goto oom;
    struct dead_letter d = {id,     strdup(topic), strdup(words), event_id_of(payload, len),
                            reason, size};
    if (!d.topic || !d.words) {
        dead_free(&d);
        goto oom;
    }
    o->dead[o->n_dead++] = d;
    return;
oom:
    r2m_log(R2M_LOG_ERROR,
            "out of memory recording an event the broker refused; it stays in the outbox and "
            "is tried again after a restart",
            "topic", topic, NULL);
}

static void count_dead(struct r2m_outbox *o, const char *endpoint, const char *reason)
{
    for (size_t i = 0; i < o->n_counts; i++)
        if (!strcmp(o->counts[i].endpoint, endpoint) && o->counts[i].reason == reason) {
            o->counts[i].n++;
            return;
        }
    char *e = strdup(endpoint);
    if (!e || r2m_buf_grow(&o->counts, &o->cap_counts, o->n_counts + 1, sizeof *o->counts)) {
        free(e);
        return; /* the metric misses one; the log line and the table have it */
    }
    o->counts[o->n_counts++] = (struct r2m_outbox_dead_count){e, reason, 1};
}

/* Tells the operator, once per refused message, after its move committed. */
static void dead_logged(struct r2m_outbox *o, const struct dead_letter *d, const char *endpoint)
{
    char size[24];
    snprintf(size, sizeof size, "%llu", (unsigned long long)d->size);
    if (!d->id) {
        r2m_log(R2M_LOG_ERROR, "status message refused by the broker for good; dropped", "topic",
                d->topic, "size", size, "reason", d->reason, "detail", d->words, NULL);
        return;
    }
    count_dead(o, endpoint, d->reason);
    r2m_log(R2M_LOG_ERROR,
            "event refused by the broker for good; moved to the dead-letter table, later events "
            "flow on",
            "endpoint", endpoint, "topic", d->topic, "size", size, "reason", d->reason, "detail",
            d->words, "event_id", d->event_id ? d->event_id : "", "hint",
            "fix the cause (broker ACL, mqtt.max_packet_size, ...), stop the bridge and run "
            "`rest2mqtt state dead-letters --requeue`",
            NULL);
}

/* The flush's transaction; eps[i] receives dead letter i's endpoint. */
static int flush_commit(struct r2m_outbox *o, char (*eps)[128], int64_t wall_ms)
{
    int r = r2m_store_begin(o->store);
    for (size_t i = 0; !r && i < o->n_acked; i++)
        r = r2m_store_outbox_delete(o->store, o->acked[i]);
    for (size_t i = 0; !r && i < o->n_dead; i++)
        if (o->dead[i].id)
            r = r2m_store_dead_letter_add(o->store, o->dead[i].id, o->dead[i].size,
                                          o->dead[i].reason, o->dead[i].event_id, wall_ms, eps[i],
                                          sizeof eps[i]);
    if (!r)
        r = r2m_store_commit(o->store);
    if (r)
        r2m_store_rollback(o->store);
    return r;
}

void r2m_outbox_flush(struct r2m_outbox *o, int64_t wall_ms)
{
    if (!o->n_acked && !o->n_dead)
        return;
    char(*eps)[128] = o->n_dead ? calloc(o->n_dead, sizeof *eps) : NULL;
    int r = o->n_dead && !eps ? R2M_E_NOMEM : flush_commit(o, eps, wall_ms);
    if (r) {
        free(eps);
        /* a full disk fails this on every turn: rate limited like polls */
        if (r2m_log_limit_hit(&o->flush_log, r)) {
            char n[24];
            snprintf(n, sizeof n, "%lu", o->flush_log.count);
            r2m_log(R2M_LOG_WARN,
                    "could not update the outbox (acknowledged or refused events); retrying",
                    "path", o->path, "error",
                    r == R2M_E_NOMEM ? r2m_strerror(r) : r2m_store_errmsg(o->store), "consecutive",
                    n, NULL);
        }
        return;
    }
    unsigned long failed = r2m_log_limit_clear(&o->flush_log);
    if (failed) {
        char n[24];
        snprintf(n, sizeof n, "%lu", failed);
        r2m_log(R2M_LOG_INFO, "outbox writable again", "failed_turns", n, NULL);
    }
    for (size_t i = 0; i < o->n_dead; i++) {
        dead_logged(o, &o->dead[i], eps[i][0] ? eps[i] : "unknown");
        dead_free(&o->dead[i]);
    }
    free(eps);
    o->n_acked = 0;
    o->n_dead = 0;
    /* rows left in the store at start move up as the acks made room; a
     * failure here leaves them for the next flush */
    if (o->backlog && refill(o, o->backlog))
        r2m_log(R2M_LOG_WARN, "could not read waiting events from the outbox; retrying", "path",
                o->path, "error", r2m_store_errmsg(o->store), NULL);
}

const struct r2m_outbox_dead_count *r2m_outbox_dead_counts(const struct r2m_outbox *o, size_t *n)
{
    *n = o->n_counts;
    return o->counts;
}
