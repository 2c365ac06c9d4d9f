/* r2m/store.h - durable state and the transactional outbox, behind one interface.
 *
 * The store holds, per endpoint, the last committed snapshot (the canonical
 * document, or the collection's items with their fingerprints), the change
 * sequence number, a fingerprint of the settings that shape the snapshot,
 * and the outbox of events the broker has not acknowledged yet. A poll's new
 * snapshot and its events are written in ONE transaction (r2m_store_begin ..
 * r2m_store_commit), so a crash at any instant leaves either the old state
 * and no events, or the new state and all its events. Events leave the
 * outbox only when the broker acknowledged them (r2m_store_outbox_delete).
 *
 * Every function here dispatches through the store's backend (a table of
 * operations, r2m/store_backend.h), so the loop and the pollers never know
 * which one is in use. Today's backend is SQLite (src/store_sqlite.c: one
 * database file in WAL mode). A backend shared by several processes
 * (cluster mode) fences every transaction: r2m_store_commit checks that
 * this process still owns each endpoint written in it and otherwise fails
 * with R2M_E_FENCED, storing nothing.
 *
 * Only the loop thread uses a store. An unchanged poll never calls into it. */
#ifndef R2M_STORE_H
#define R2M_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "r2m/fp.h"

struct r2m_store;

/* Where the state lives, and how to open it. */
struct r2m_store_params {
    const char *path; /* SQLite state file */
    int existing;     /* open only a store that exists: R2M_E_NOT_FOUND when it
                       * does not (commands that read state must not create it) */
};

/* Opens (creating it if needed, unless p->existing) the store p names and
 * sets *out; the caller frees it with r2m_store_free. A file that is not a
 * rest2mqtt database, is corrupt, or cannot be written is an error with a
 * message in err naming the path (never a silent reset). */
int r2m_store_new(const struct r2m_store_params *p, char *err, size_t errlen,
                  struct r2m_store **out);
/* Closes the store; accepts NULL. An open transaction is rolled back. */
void r2m_store_free(struct r2m_store *s);

/* Durability of commits. FULL (the default after open) flushes the WAL to
 * disk at every commit: nothing committed is lost even on a power loss.
 * NORMAL flushes only at checkpoints: a crash or kill -9 of the process
 * loses nothing (the WAL is in the OS's hands), an OS crash or power loss
 * can roll back the last commits - snapshot and events together, never
 * one without the other - so the next poll detects the change again and
 * re-emits it, with the same id when nothing else changed meanwhile.
 * Backends without the choice accept it and return 0. */
int r2m_store_set_sync(struct r2m_store *s, int full);

/* Random 64-bit number fixed when the store was created: part of every
 * event id, so ids from different stores never collide. */
uint64_t r2m_store_epoch(const struct r2m_store *s);

/* Whether the file at the path given to r2m_store_new is still the file
 * this store has open. 0 when it is (or when that cannot be told, e.g. the
 * directory became unreadable, or the backend has no file); R2M_E_IO when
 * the path is gone or names another file (deleted, or replaced by mv/cp
 * over it): everything written since, and everything in it, is lost to the
 * next start. err then says so, naming the path and what to do. Costs one
 * stat(). */
int r2m_store_check_file(struct r2m_store *s, char *err, size_t errlen);

/* Lowers SQLite's limit on one string or blob (SQLITE_LIMIT_LENGTH) to
 * bytes; returns the previous limit (-1 when the backend has none). A value
 * over it fails its statement with R2M_E_TOO_BIG (r2m_store_errmsg says
 * "string or blob too big"), never stores NULL instead. For tests; the
 * default is 1,000,000,000. */
int r2m_store_limit_length(struct r2m_store *s, int bytes);

/* The backend's last error text, for logs; never NULL. */
const char *r2m_store_errmsg(const struct r2m_store *s);

/* A transaction. On any error of r2m_store_commit (R2M_E_FENCED from a
 * fencing backend, R2M_E_IO) the transaction is rolled back: nothing of it
 * is stored. */
int r2m_store_begin(struct r2m_store *s);
int r2m_store_commit(struct r2m_store *s);
void r2m_store_rollback(struct r2m_store *s);

/* ---- endpoints ---- */

struct r2m_store_endpoint {
    int found;
    struct r2m_fp settings; /* fingerprint of the settings the snapshot depends on */
    uint64_t seq;           /* events emitted so far */
    int has_doc;
    char *doc; /* document snapshot (malloc'd, NUL-terminated) or NULL */
    size_t doc_len;
    struct r2m_fp doc_fp;
    char *etag, *last_modified; /* conditional-GET validators (malloc'd) or NULL */
};
/* Reads an endpoint's row; out->found = 0 if there is none. Free out->doc,
 * out->etag and out->last_modified. */
int r2m_store_endpoint_get(struct r2m_store *s, const char *name, struct r2m_store_endpoint *out);
/* Inserts or replaces the row (doc may be NULL for collections). */
int r2m_store_endpoint_put(struct r2m_store *s, const char *name, struct r2m_fp settings,
                           uint64_t seq, const char *doc, size_t doc_len, struct r2m_fp doc_fp);
/* Stores the conditional-GET validators with the endpoint's row (after
 * r2m_store_endpoint_put in the same transaction). */
int r2m_store_validators_put(struct r2m_store *s, const char *name, const char *etag,
                             const char *last_modified);
/* Forgets everything about an endpoint (row and items; not its outbox). */
int r2m_store_endpoint_reset(struct r2m_store *s, const char *name);
/* Names of endpoints with stored state, for `state prune`; calls fn per name. */
int r2m_store_endpoint_names(struct r2m_store *s, void (*fn)(void *ctx, const char *name),
                             void *ctx);

/* ---- collection items ---- */

int r2m_store_item_put(struct r2m_store *s, const char *endpoint, const char *key, size_t key_len,
                       struct r2m_fp fp, const char *body, size_t body_len);
int r2m_store_item_delete(struct r2m_store *s, const char *endpoint, const char *key,
                          size_t key_len);
/* Calls fn for every stored item of the endpoint in key order (bytewise). */
typedef int r2m_store_item_fn(void *ctx, const char *key, size_t key_len, struct r2m_fp fp,
                              const char *body, size_t body_len);
int r2m_store_items(struct r2m_store *s, const char *endpoint, r2m_store_item_fn *fn, void *ctx);

/* ---- outbox ---- */

/* endpoint names the endpoint the event belongs to (NULL: none), so a dead
 * letter can say where it came from. */
int r2m_store_outbox_add(struct r2m_store *s, const char *endpoint, const char *topic,
                         size_t topic_len, const char *payload, size_t payload_len, int retained,
                         int64_t *id);
int r2m_store_outbox_delete(struct r2m_store *s, int64_t id);
/* Calls fn for every outbox entry, oldest first. */
typedef int r2m_store_outbox_fn(void *ctx, int64_t id, const char *topic, const char *payload,
                                size_t payload_len, int retained);
int r2m_store_outbox(struct r2m_store *s, r2m_store_outbox_fn *fn, void *ctx);
int64_t r2m_store_outbox_count(struct r2m_store *s);

/* ---- dead letters ----
 * Events the broker refused for good (r2m/publish.h says which refusals
 * are). They leave the outbox so that everything behind them flows on, and
 * wait here until an operator requeues them (`state dead-letters
 * --requeue`) or removes the state file. */

/* Moves outbox row outbox_id to the dead-letter table with the refusal's
 * reason (a short token such as "not_authorized"), the encoded packet size,
 * the event id (NULL for messages that are not events) and the time (Unix
 * ms). Call inside a transaction (r2m_store_begin): the move is one step or
 * none. The row's endpoint is copied into endpoint ("" when unknown, or when
 * the row was already gone: then nothing moves and 0 is returned). */
int r2m_store_dead_letter_add(struct r2m_store *s, int64_t outbox_id, uint64_t size,
                              const char *reason, const char *event_id, int64_t time_ms,
                              char *endpoint, size_t endpoint_len);

struct r2m_store_dead_letter {
    int64_t id;
    const char *endpoint; /* NULL when unknown (queued by an older version) */
    const char *topic;
    const char *payload;
    size_t payload_len;
    uint64_t size; /* encoded PUBLISH packet, bytes */
    const char *reason;
    const char *event_id; /* NULL for messages that are not events */
    int64_t time_ms;      /* Unix ms of the refusal */
};
/* Calls fn for every dead letter, oldest first; the strings are valid during
 * the call only. A non-zero return of fn stops and is returned. */
typedef int r2m_store_dead_letter_fn(void *ctx, const struct r2m_store_dead_letter *d);
int r2m_store_dead_letters(struct r2m_store *s, r2m_store_dead_letter_fn *fn, void *ctx);
/* Appends every dead letter to the outbox (oldest first) and empties the
 * table; *n says how many moved. Call inside a transaction. */
int r2m_store_dead_letter_requeue(struct r2m_store *s, int64_t *n);
int64_t r2m_store_dead_letter_count(struct r2m_store *s);

#endif
