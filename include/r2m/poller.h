/* r2m/poller.h - the interface every poller kind implements.
 *
 * A poller turns one successfully fetched body into zero or more events.
 * The bridge owns fetching, scheduling, publishing and failure handling; a
 * poller only decides what changed. Kinds live in pollers/ (document today;
 * collections and paginated lists slot in beside it) and are chosen by
 * r2m_poller_for() from the endpoint's configuration.
 *
 * Contract for on_body (invariant 1 of DESIGN.md): either every event of the
 * poll is emitted and the poller's snapshot advances, or the call returns an
 * error, nothing was emitted and the snapshot is untouched. An unchanged
 * body must cost parse + canonicalise + hash only: no allocation once the
 * shared arenas have grown, no I/O, no log line. */
#ifndef R2M_POLLER_H
#define R2M_POLLER_H

#include <stddef.h>
#include <stdint.h>

#include "r2m/buf.h"
#include "r2m/config.h"
#include "r2m/event.h"
#include "r2m/json.h"
#include "r2m/page.h"
#include "r2m/store.h"

/* The messages one poll produces, in publishing order. Topics and payloads
 * are stored back to back in `bytes`, each followed by a NUL. */
struct r2m_batch_msg {
    size_t topic, topic_len; /* offsets into bytes */
    size_t payload, payload_len;
    int retained;
    enum r2m_event_type type; /* R2M_EVENT_TYPE_NONE for state messages */
};
struct r2m_batch {
    struct r2m_buf bytes;
    struct r2m_batch_msg *msgs;
    size_t n, cap;
};
void r2m_batch_reset(struct r2m_batch *b);
/* type: what the message is, for counting (r2m/event.h). */
int r2m_batch_add(struct r2m_batch *b, const char *topic, size_t topic_len, const char *payload,
                  size_t payload_len, int retained, enum r2m_event_type type);
static inline const char *r2m_batch_topic(const struct r2m_batch *b, size_t i)
{
    return b->bytes.data + b->msgs[i].topic;
}
static inline const char *r2m_batch_payload(const struct r2m_batch *b, size_t i)
{
    return b->bytes.data + b->msgs[i].payload;
}

struct r2m_store;

/* Writes a poller's new snapshot into the store, inside the transaction
 * that also adds the poll's events to the outbox. */
typedef int r2m_persist_fn(void *pctx, struct r2m_store *store);

/* Where a poll's result goes: the batch of messages (possibly empty) and the
 * new snapshot, all of them or none. With a store, emit runs persist and
 * adds the messages to the outbox in one transaction, then queues them for
 * publishing. It returns 0, or an error (R2M_E_TOO_BIG when the outbox has
 * no room for the whole batch, R2M_E_IO when the transaction failed), in
 * which case nothing was queued or stored, err says why, and the poller
 * must not advance its in-memory snapshot either. */
typedef int r2m_emit_fn(void *ctx, const struct r2m_batch *batch, r2m_persist_fn *persist,
                        void *pctx, char *err, size_t errlen);

/* Shared, single-threaded scratch space for all pollers; owned by the bridge. */
struct r2m_poll_env {
    const struct r2m_config *cfg;
    struct r2m_json_doc *doc;      /* arena for the new body */
    struct r2m_json_doc *prev_doc; /* arena for re-reading a stored snapshot */
    struct r2m_json_doc *item_doc; /* arena for re-reading a new item */
    struct r2m_buf canon;          /* canonical text of the new body */
    struct r2m_buf patch;
    struct r2m_buf event;
    struct r2m_buf topic;
    struct r2m_batch batch; /* the poll's messages, handed to emit */
    int64_t wall_ms;        /* wall-clock time of this poll, for event `time` */
    uint64_t epoch;         /* goes into event ids, see r2m_event_id */
    int emit_initial;       /* the first poll emits instead of recording a baseline */
    r2m_emit_fn *emit;
    void *emit_ctx;
};

/* Fingerprint of the settings a snapshot depends on (kind, items, key,
 * ignore): when it differs from the stored one, the stored snapshot is
 * dropped and the endpoint re-baselines silently. */
struct r2m_fp r2m_poller_settings(const struct r2m_endpoint_cfg *cfg);

int r2m_poll_env_init(struct r2m_poll_env *env, const struct r2m_config *cfg);
void r2m_poll_env_cleanup(struct r2m_poll_env *env);
/* Sets the buffers' ceilings from the endpoints' max_body (after a reload). */
void r2m_poll_env_limits(struct r2m_poll_env *env, const struct r2m_config *cfg);

/* Pagination: struct r2m_page (what the bridge tells a poller about a page)
 * and struct r2m_page_next (where the next one is) are in r2m/page.h. */

/* error_if: fails the poll (R2M_E_HTTP_STATUS) when the value at the
 * configured pointer equals the configured value; 0 otherwise. */
int r2m_poller_error_if(const struct r2m_endpoint_cfg *cfg, struct r2m_json *root, char *err,
                        size_t errlen);

struct r2m_poller_kind {
    const char *name;
    int (*create)(void **state, const struct r2m_endpoint_cfg *cfg);
    void (*destroy)(void *state);
    /* Loads the snapshot stored for the endpoint (row is its endpoint row,
     * row->found set). Called once, before the first poll. *partial is set
     * to 1 when part or all of it was dropped (text that is not valid
     * UTF-8): the stored validators then describe a response the snapshot
     * no longer holds, and must not be sent (a 304 would keep it dropped). */
    int (*restore)(void *state, const struct r2m_endpoint_cfg *cfg, struct r2m_store *store,
                   const struct r2m_store_endpoint *row, int *partial);
    /* err receives a one-line cause on failure (never secrets). */
    int (*on_body)(void *state, const struct r2m_endpoint_cfg *cfg, struct r2m_poll_env *env,
                   const char *body, size_t len, char *err, size_t errlen);
    /* Paginated endpoints (NULL for kinds without pages): on_page takes each
     * page's body and says where the next one is; after the last page,
     * on_pages_done diffs all pages as one collection. A failure of either
     * fails the whole poll: nothing emitted, snapshot untouched. */
    int (*on_page)(void *state, const struct r2m_endpoint_cfg *cfg, struct r2m_poll_env *env,
                   const char *body, size_t len, const struct r2m_page *pg,
                   struct r2m_page_next *next, char *err, size_t errlen);
    int (*on_pages_done)(void *state, const struct r2m_endpoint_cfg *cfg, struct r2m_poll_env *env,
                         char *err, size_t errlen);
};

extern const struct r2m_poller_kind r2m_poller_document;
extern const struct r2m_poller_kind r2m_poller_collection;

/* The kind that serves an endpoint. */
const struct r2m_poller_kind *r2m_poller_for(const struct r2m_endpoint_cfg *cfg);

#endif
