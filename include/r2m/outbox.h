/* r2m/outbox.h - the transactional outbox: a poll's snapshot and events
 * commit together; events leave only when acknowledged or refused for good.
 *
 * r2m_outbox_emit() runs the poller's persist step, stores the endpoint's
 * validators and adds every message of the batch to the store's outbox in
 * ONE transaction, then hands the messages to the publisher with their row
 * ids. Acknowledgements (r2m_outbox_on_ack) and refusals for good
 * (r2m_outbox_on_dead) are collected and applied by r2m_outbox_flush() in
 * one transaction per loop turn: acknowledged rows are deleted, refused rows
 * move to the dead-letter table. Until a flush commits, a row stays in the
 * outbox and is sent again after a restart (r2m_outbox_load), with the same
 * id and in the same order. The loop never builds SQL nor calls the store's
 * outbox functions itself.
 *
 * The outbox talks to the publisher only through struct r2m_outbox_sink,
 * so tests drive it with a fake publisher; time comes in as arguments. */
#ifndef R2M_OUTBOX_H
#define R2M_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "r2m/poller.h"
#include "r2m/store.h"

/* The publisher as the outbox sees it (r2m/publish.h in the bridge). */
struct r2m_outbox_sink {
    void *ctx;
    /* How many more messages enqueue accepts now. */
    size_t (*room)(void *ctx);
    /* Messages queued or in flight, not yet acknowledged. */
    size_t (*pending)(void *ctx);
    /* Queues a message; takes ownership of topic and payload (malloc'd) in
     * every case. id is its outbox row. R2M_E_NOMEM, or R2M_E_TOO_BIG when
     * full; any other value is taken as queued. */
    int (*enqueue)(void *ctx, char *topic, char *payload, size_t len, int retained, int64_t id);
};

/* Where a batch comes from: the endpoint (NULL: none; then no validators
 * are stored) and the validators of the response it was made from. */
struct r2m_outbox_from {
    const char *endpoint;
    const char *etag, *last_modified; /* NULL: none */
};

/* rest2mqtt_dead_letters_total{endpoint,reason}, counted by the outbox. */
struct r2m_outbox_dead_count {
    char *endpoint;
    const char *reason; /* static token from r2m/publish.h */
    uint64_t n;
};

struct r2m_outbox;

/* store, path (for messages) and sink must outlive the outbox; max is
 * state.outbox_max, the most events one batch may ever hold. */
int r2m_outbox_new(struct r2m_outbox **out, struct r2m_store *store, const char *path, uint64_t max,
                   const struct r2m_outbox_sink *sink);
/* Frees what was collected but not flushed (those rows stay stored).
 * Accepts NULL. */
void r2m_outbox_free(struct r2m_outbox *o);

/* At start: queues every stored row, oldest first, with its id (more than
 * max if a smaller limit was configured since). 0, or R2M_E_NOMEM / the
 * store's error with err saying which file. */
int r2m_outbox_load(struct r2m_outbox *o, char *err, size_t errlen);

/* Commits batch (persist(pctx, store) first, then from's validators, then
 * every message) and queues its messages. 0; R2M_E_TOO_BIG when the batch
 * does not fit (now, or ever); R2M_E_IO when the transaction failed. On
 * error nothing is stored or queued and err says why. Matches
 * r2m_emit_fn's contract (r2m/poller.h). */
int r2m_outbox_emit(struct r2m_outbox *o, const struct r2m_batch *batch, r2m_persist_fn *persist,
                    void *pctx, const struct r2m_outbox_from *from, char *err, size_t errlen);

/* The broker acknowledged row id: deleted at the next flush. */
void r2m_outbox_on_ack(struct r2m_outbox *o, int64_t id);
/* The broker refused row id for good (id 0: a message not in the outbox,
 * only logged); arguments as r2m_pub_dead_fn (r2m/publish.h), copied. */
void r2m_outbox_on_dead(struct r2m_outbox *o, int64_t id, const char *topic, const char *payload,
                        size_t len, uint64_t size, const char *reason, const char *words);
/* Deletes acknowledged rows and moves refused ones to the dead-letter table
 * (stamped wall_ms), in one transaction; logs each dead letter once it
 * moved. A failed transaction keeps everything for the next flush (logged,
 * rate limited). */
void r2m_outbox_flush(struct r2m_outbox *o, int64_t wall_ms);

/* Dead letters moved since start, by endpoint and reason; valid until the
 * next flush. */
const struct r2m_outbox_dead_count *r2m_outbox_dead_counts(const struct r2m_outbox *o, size_t *n);

#endif
