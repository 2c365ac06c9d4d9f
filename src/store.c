/* store.c - picks a store backend and dispatches to it; see r2m/store.h.
 *
 * Nothing here knows SQL: each function passes its arguments unchanged to
 * the backend's operation (r2m/store_backend.h) and returns its result. */
#include "r2m/store.h"

#include <stdio.h>

#include "r2m/error.h"
#include "r2m/store_backend.h"

int r2m_store_new(const struct r2m_store_params *p, char *err, size_t errlen,
                  struct r2m_store **out)
{
    if (errlen)
        err[0] = '\0';
    if (!p || !p->path) {
        snprintf(err, errlen, "no state store configured (state.path)");
        return R2M_E_INVALID;
    }
    return r2m_store_sqlite_new(p, err, errlen, out);
}

void r2m_store_free(struct r2m_store *s)
{
    if (s)
        s->ops->free(s);
}

const char *r2m_store_errmsg(const struct r2m_store *s)
{
    return s ? s->ops->errmsg(s) : "no store";
}

uint64_t r2m_store_epoch(const struct r2m_store *s)
{
    return s->ops->epoch(s);
}

int r2m_store_set_sync(struct r2m_store *s, int full)
{
    return s->ops->set_sync ? s->ops->set_sync(s, full) : 0;
}

int r2m_store_check_file(struct r2m_store *s, char *err, size_t errlen)
{
    return s->ops->check_file ? s->ops->check_file(s, err, errlen) : 0;
}

int r2m_store_limit_length(struct r2m_store *s, int bytes)
{
    return s->ops->limit_length ? s->ops->limit_length(s, bytes) : -1;
}

int r2m_store_begin(struct r2m_store *s)
{
    return s->ops->begin(s);
}

int r2m_store_commit(struct r2m_store *s)
{
    return s->ops->commit(s);
}

void r2m_store_rollback(struct r2m_store *s)
{
    s->ops->rollback(s);
}

int r2m_store_endpoint_get(struct r2m_store *s, const char *name, struct r2m_store_endpoint *out)
{
    return s->ops->endpoint_get(s, name, out);
}

int r2m_store_endpoint_put(struct r2m_store *s, const char *name, struct r2m_fp settings,
                           uint64_t seq, const char *doc, size_t doc_len, struct r2m_fp doc_fp)
{
    return s->ops->endpoint_put(s, name, settings, seq, doc, doc_len, doc_fp);
}

int r2m_store_validators_put(struct r2m_store *s, const char *name, const char *etag,
                             const char *last_modified)
{
    return s->ops->validators_put(s, name, etag, last_modified);
}

int r2m_store_endpoint_reset(struct r2m_store *s, const char *name)
{
    return s->ops->endpoint_reset(s, name);
}

int r2m_store_endpoint_names(struct r2m_store *s, void (*fn)(void *ctx, const char *name),
                             void *ctx)
{
    return s->ops->endpoint_names(s, fn, ctx);
}

int r2m_store_item_put(struct r2m_store *s, const char *endpoint, const char *key, size_t key_len,
                       struct r2m_fp fp, const char *body, size_t body_len)
{
    return s->ops->item_put(s, endpoint, key, key_len, fp, body, body_len);
}

int r2m_store_item_delete(struct r2m_store *s, const char *endpoint, const char *key,
                          size_t key_len)
{
    return s->ops->item_delete(s, endpoint, key, key_len);
}

int r2m_store_items(struct r2m_store *s, const char *endpoint, r2m_store_item_fn *fn, void *ctx)
{
    return s->ops->items(s, endpoint, fn, ctx);
}

int r2m_store_outbox_add(struct r2m_store *s, const char *endpoint, const char *topic,
                         size_t topic_len, const char *payload, size_t payload_len, int retained,
                         int64_t *id)
{
    return s->ops->outbox_add(s, endpoint, topic, topic_len, payload, payload_len, retained, id);
}

int r2m_store_outbox_delete(struct r2m_store *s, int64_t id)
{
    return s->ops->outbox_delete(s, id);
}

int r2m_store_outbox(struct r2m_store *s, r2m_store_outbox_fn *fn, void *ctx)
{
    return s->ops->outbox(s, fn, ctx);
}

int64_t r2m_store_outbox_count(struct r2m_store *s)
{
    return s->ops->outbox_count(s);
}

int r2m_store_dead_letter_add(struct r2m_store *s, int64_t outbox_id, uint64_t size,
                              const char *reason, const char *event_id, int64_t time_ms,
                              char *endpoint, size_t endpoint_len)
{
    return s->ops->dead_letter_add(s, outbox_id, size, reason, event_id, time_ms, endpoint,
                                   endpoint_len);
}

int r2m_store_dead_letters(struct r2m_store *s, r2m_store_dead_letter_fn *fn, void *ctx)
{
    return s->ops->dead_letters(s, fn, ctx);
}

int r2m_store_dead_letter_requeue(struct r2m_store *s, int64_t *n)
{
    return s->ops->dead_letter_requeue(s, n);
}

int64_t r2m_store_dead_letter_count(struct r2m_store *s)
{
    return s->ops->dead_letter_count(s);
}
