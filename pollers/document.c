/* document.c - poller for a whole document: one fingerprint, one event per change. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "r2m/diff.h"
#include "r2m/error.h"
#include "r2m/event.h"
#include "r2m/poller.h"
#include "r2m/topic.h"
#include "r2m/utf8.h"

struct doc_state {
    int has;          /* a snapshot exists */
    struct r2m_fp fp; /* fingerprint of canon */
    char *canon;      /* canonical text of the last good document */
    size_t canon_len;
    uint64_t seq; /* changes seen, part of event ids */
    int has_raw;  /* raw: XXH3-64 of the last body accepted in this process */
    uint64_t raw;
};

static int doc_create(void **state, const struct r2m_endpoint_cfg *cfg)
{
    (void)cfg;
    struct doc_state *s = calloc(1, sizeof *s);
    if (!s)
        return R2M_E_NOMEM;
    *state = s;
    return 0;
}

static void doc_destroy(void *state)
{
    struct doc_state *s = state;
    if (!s)
        return;
    free(s->canon);
    free(s);
}

static int doc_restore(void *state, const struct r2m_endpoint_cfg *cfg, struct r2m_store *store,
                       const struct r2m_store_endpoint *row, int *partial)
{
    (void)cfg;
    (void)store;
    struct doc_state *s = state;
    s->seq = row->seq;
    s->has_raw = 0;
    *partial = 0;
    if (!row->has_doc)
        return 0;
    /* a snapshot written before invalid text was refused may hold some: it
     * could never be the before-image of an event, so the next poll is a
     * new baseline instead of failing for good */
    if (r2m_utf8_check(row->doc, row->doc_len, NULL)) {
        *partial = 1;
        return 0;
    }
    char *copy = malloc(row->doc_len + 1);
    if (!copy)
        return R2M_E_NOMEM;
    memcpy(copy, row->doc, row->doc_len + 1);
    free(s->canon);
    s->canon = copy;
    s->canon_len = row->doc_len;
    s->fp = row->doc_fp;
    s->has = 1;
    return 0;
}

/* What persist writes: the new snapshot, handed over by on_body. */
struct doc_commit {
    const struct r2m_endpoint_cfg *cfg;
    const struct r2m_buf *canon;
    struct r2m_fp fp;
    uint64_t seq;
};

static int doc_persist(void *pctx, struct r2m_store *store)
{
    struct doc_commit *c = pctx;
    return r2m_store_endpoint_put(store, c->cfg->name, r2m_poller_settings(c->cfg), c->seq,
                                  c->canon->data, c->canon->len, c->fp);
}

/* Queues the current document, retained, for subscribers that come later. */
static int add_state(const struct r2m_endpoint_cfg *cfg, struct r2m_poll_env *env,
                     struct r2m_json *root, char *err, size_t errlen)
{
    struct r2m_topic_vars tv = {
        .prefix = env->cfg->mqtt.topic_prefix, .endpoint = cfg->name, .op = "state", .item = root};
    r2m_buf_reset(&env->topic);
    int r = r2m_topic_expand(cfg->state_topic, &tv, &env->topic);
    if (r) {
        snprintf(err, errlen, "state_topic '%s' cannot be built from this document",
                 cfg->state_topic);
        return r;
    }
    if ((r = r2m_batch_add(&env->batch, env->topic.data, env->topic.len, env->canon.data,
                           env->canon.len, 1, R2M_EVENT_TYPE_NONE)))
        snprintf(err, errlen, "state message too large for the batch: %s", r2m_strerror(r));
    return r;
}

/* Fills env->batch with the change event (and the retained state message). */
static int build_event(struct doc_state *s, const struct r2m_endpoint_cfg *cfg,
                       struct r2m_poll_env *env, struct r2m_json *root, struct r2m_fp fp, char *err,
                       size_t errlen)
{
    struct r2m_json *before = NULL;
    int r;
    r2m_json_doc_set_depth(env->prev_doc, cfg->max_depth);
    if (s->has &&
        (r = r2m_json_parse(env->prev_doc, s->canon, s->canon_len, &before, err, errlen))) {
        snprintf(err, errlen, "stored snapshot unreadable: %s", r2m_strerror(r));
        return r;
    }
    r2m_buf_reset(&env->patch);
    r2m_buf_reset(&env->event);
    r2m_buf_reset(&env->topic);
    if ((r = r2m_diff_patch(before, root, &env->patch))) {
        snprintf(err, errlen, "patch too large: %s", r2m_strerror(r));
        return r;
    }
    struct r2m_event ev = {
        .instance = env->cfg->instance,
        .endpoint = cfg->name,
        .type = r2m_event_type_name(R2M_EVENT_DOCUMENT_CHANGED),
        .op = "changed",
        .before = s->has ? s->canon : NULL,
        .before_len = s->canon_len,
        .after = env->canon.data,
        .after_len = env->canon.len,
        .patch = env->patch.data,
        .patch_len = env->patch.len,
        .time_ms = env->wall_ms,
    };
    if (cfg->payload == R2M_PAYLOAD_PATCH)
        ev.fields = R2M_EVENT_PATCH;
    else if (cfg->payload == R2M_PAYLOAD_AFTER)
        ev.fields = R2M_EVENT_AFTER;
    struct r2m_fp none = {0, 0};
    r2m_event_id(ev.id, env->epoch, cfg->name, NULL, 0, "changed", s->has ? s->fp : none, fp,
                 s->seq + 1);
    if ((r = r2m_event_render(&ev, &env->event))) {
        snprintf(err, errlen, "event too large: %s", r2m_strerror(r));
        return r;
    }
    struct r2m_topic_vars tv = {.prefix = env->cfg->mqtt.topic_prefix,
                                .endpoint = cfg->name,
                                .op = "changed",
                                .item = root};
    if ((r = r2m_topic_expand(cfg->topic, &tv, &env->topic))) {
        snprintf(err, errlen,
                 "topic '%s' cannot be built from this document (a {/pointer} is missing, "
                 "empty or not a scalar)",
                 cfg->topic);
        return r;
    }
    if ((r = r2m_batch_add(&env->batch, env->topic.data, env->topic.len, env->event.data,
                           env->event.len, 0, R2M_EVENT_DOCUMENT_CHANGED)))
        goto too_big;
    return cfg->state_topic ? add_state(cfg, env, root, err, errlen) : 0;
too_big:
    snprintf(err, errlen, "event too large for the batch: %s", r2m_strerror(r));
    return r;
}

static int doc_accept(struct doc_state *s, const struct r2m_endpoint_cfg *cfg,
                      struct r2m_poll_env *env, const char *body, size_t len, char *err,
                      size_t errlen);

/* The byte-identical body of the last accepted poll needs no parsing: the
 * cheapest unchanged poll. The hash is only kept after a poll succeeded, so
 * a refused emit or a failure is always looked at again. */
static int doc_on_body(void *state, const struct r2m_endpoint_cfg *cfg, struct r2m_poll_env *env,
                       const char *body, size_t len, char *err, size_t errlen)
{
    struct doc_state *s = state;
    uint64_t raw = XXH3_64bits(len ? body : "", len);
    if (s->has_raw && s->raw == raw && !env->emit_initial)
        return 0;
    int r = doc_accept(s, cfg, env, body, len, err, errlen);
    s->has_raw = !r;
    s->raw = raw;
    return r;
}

static int doc_accept(struct doc_state *s, const struct r2m_endpoint_cfg *cfg,
                      struct r2m_poll_env *env, const char *body, size_t len, char *err,
                      size_t errlen)
{
    struct r2m_json *root;
    r2m_json_doc_set_depth(env->doc, cfg->max_depth);
    int r = r2m_json_parse(env->doc, body, len, &root, err, errlen);
    if (r)
        return r;
    if ((r = r2m_poller_error_if(cfg, root, err, errlen)))
        return r;
    r2m_json_remove(root, cfg->ignore, cfg->n_ignore);
    r2m_buf_reset(&env->canon);
    if ((r = r2m_json_canonical(root, &env->canon))) {
        snprintf(err, errlen, "canonical document too large");
        return r;
    }
    struct r2m_fp fp = r2m_json_fingerprint(env->canon.data, env->canon.len);
    if (s->has && fp.hi == s->fp.hi && fp.lo == s->fp.lo)
        return 0; /* the common case: nothing changed */

    /* quiet start: the first poll is a baseline, stored without events */
    int quiet = !s->has && !cfg->initial_emit && !env->emit_initial;
    r2m_batch_reset(&env->batch);
    if (!quiet && (r = build_event(s, cfg, env, root, fp, err, errlen)))
        return r;
    if (quiet && cfg->state_topic && (r = add_state(cfg, env, root, err, errlen)))
        return r; /* a silent baseline still sets the retained state */
    /* allocate before committing: after the commit nothing may fail */
    char *copy = malloc(env->canon.len + 1);
    if (!copy)
        return R2M_E_NOMEM;
    memcpy(copy, env->canon.data, env->canon.len + 1);
    struct doc_commit commit = {cfg, &env->canon, fp, s->seq + env->batch.n};
    if ((r = env->emit(env->emit_ctx, &env->batch, doc_persist, &commit, err, errlen))) {
        free(copy);
        return r;
    }
    free(s->canon);
    s->canon = copy;
    s->canon_len = env->canon.len;
    s->fp = fp;
    s->has = 1;
    s->seq = commit.seq;
    return 0;
}

const struct r2m_poller_kind r2m_poller_document = {
    .name = "document",
    .create = doc_create,
    .destroy = doc_destroy,
    .restore = doc_restore,
    .on_body = doc_on_body,
};
