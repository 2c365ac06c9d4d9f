/* r2m/store_pg.h - cluster mode's state in PostgreSQL (libpq): membership,
 * endpoint ownership with fencing, and the same snapshot/outbox data the
 * SQLite store keeps. DRAFT: these functions go behind the one store
 * interface (r2m/store.h) when that lands; until then nothing calls them but
 * tests/unit/test_store_pg.c, and no config key selects them.
 *
 * Tables (created on open, idempotently, under an advisory lock so replicas
 * that start together do not race): r2m_meta (schema version, epoch),
 * r2m_member (name, incarnation, heartbeat, started), r2m_ownership
 * (endpoint, member, generation, since), r2m_endpoint, r2m_item, r2m_outbox,
 * r2m_dead_letter. Times are the database's clock (now()), never a
 * member's: lease comparisons do not depend on the replicas' clocks agreeing.
 *
 * Fencing. A member owns an endpoint under a generation number; every claim
 * and every release adds one to it. The only way to write an endpoint's
 * snapshot, items or events is inside r2m_store_pg_begin(endpoint, member,
 * generation), which locks the ownership row FOR SHARE and checks all three
 * in the same transaction. A claim by another member has to update that row:
 * it waits for a commit in progress, and once it has committed, a commit
 * that started later finds the row changed and fails with R2M_E_FENCED. A
 * member that was paused or partitioned past its lease therefore commits
 * nothing for an endpoint it lost, whatever its own clock believes.
 *
 * One connection, used by the loop thread only. R2M_E_IO means the statement
 * or the connection failed (r2m_store_pg_errmsg says why; the connection
 * string, which may hold a password, is never part of it). */
#ifndef R2M_STORE_PG_H
#define R2M_STORE_PG_H

#include <stddef.h>
#include <stdint.h>

#include "r2m/fp.h"
#include "r2m/store.h"

struct r2m_store_pg;

/* Connects with a libpq connection string or postgresql:// URI, creates or
 * checks the schema and reads the shared epoch. A database holding a newer
 * schema, or unreachable, is an error explained in err. The caller frees
 * *out with r2m_store_pg_close. */
int r2m_store_pg_open(struct r2m_store_pg **out, const char *conninfo, char *err, size_t errlen);
void r2m_store_pg_close(struct r2m_store_pg *s);

/* Last error text, for logs (never NULL). */
const char *r2m_store_pg_errmsg(const struct r2m_store_pg *s);

/* The database's epoch: fixed when the first member created the schema and
 * the same for every member, so an event id does not change when another
 * member takes the endpoint over. */
uint64_t r2m_store_pg_epoch(const struct r2m_store_pg *s);

/* ---- membership ---- */

/* Registers member with this process's incarnation (a random number drawn
 * at start). R2M_E_CONFIG (err says so) when a live member - heartbeat
 * within lease_ms - already has the name with another incarnation: two
 * replicas with one name. A dead member's row is taken over. */
int r2m_store_pg_join(struct r2m_store_pg *s, const char *member, uint64_t incarnation,
                      int64_t lease_ms, char *err, size_t errlen);

/* Renews member's heartbeat. R2M_E_FENCED when the row is gone or names
 * another incarnation: another process took the name while this one was
 * away, and this one must stop at once. */
int r2m_store_pg_renew(struct r2m_store_pg *s, const char *member, uint64_t incarnation);

/* Graceful exit: removes member's row and releases all its endpoints (one
 * transaction), so the others take them over without waiting for the
 * lease. */
int r2m_store_pg_leave(struct r2m_store_pg *s, const char *member, uint64_t incarnation);

/* Calls fn for every live member (heartbeat within lease_ms), in bytewise
 * name order. A non-zero return of fn stops and is returned. */
int r2m_store_pg_members(struct r2m_store_pg *s, int64_t lease_ms,
                         int (*fn)(void *ctx, const char *member), void *ctx);

/* ---- ownership ---- */

/* Takes endpoint for member when nobody holds it, member itself holds it
 * (a restart), or its holder is not live (no heartbeat within lease_ms);
 * *generation is the new generation. R2M_E_FENCED when a live other member
 * holds it (it releases the endpoint when it sees the new membership). A
 * claim waits for the holder's commit in progress. */
int r2m_store_pg_claim(struct r2m_store_pg *s, const char *endpoint, const char *member,
                       int64_t lease_ms, int64_t *generation);

/* Gives endpoint up (handover): after this, member's commits for it fail.
 * R2M_E_FENCED when member did not hold it under generation. */
int r2m_store_pg_release(struct r2m_store_pg *s, const char *endpoint, const char *member,
                         int64_t generation);

/* Calls fn for every ownership row in endpoint order; member is NULL for a
 * released endpoint. For `state list` and for a member learning which
 * endpoints it lost. A non-zero return of fn stops and is returned. */
typedef int r2m_store_pg_owner_fn(void *ctx, const char *endpoint, const char *member,
                                  int64_t generation);
int r2m_store_pg_owners(struct r2m_store_pg *s, r2m_store_pg_owner_fn *fn, void *ctx);

/* ---- the fenced transaction ---- */

/* Begins the transaction that commits one poll of endpoint: checks, holding
 * the ownership row FOR SHARE until commit or rollback, that member owns it
 * under generation. R2M_E_FENCED (the transaction is rolled back) when it
 * does not. */
int r2m_store_pg_begin(struct r2m_store_pg *s, const char *endpoint, const char *member,
                       int64_t generation);
int r2m_store_pg_commit(struct r2m_store_pg *s);
void r2m_store_pg_rollback(struct r2m_store_pg *s);

/* ---- data: as in r2m/store.h. Writes need r2m_store_pg_begin (outside
 * one they fail with R2M_E_INVALID: no write is ever unfenced) and only
 * touch the endpoint named there. ---- */

int r2m_store_pg_endpoint_get(struct r2m_store_pg *s, const char *name,
                              struct r2m_store_endpoint *out);
int r2m_store_pg_endpoint_put(struct r2m_store_pg *s, struct r2m_fp settings, uint64_t seq,
                              const char *doc, size_t doc_len, struct r2m_fp doc_fp);
int r2m_store_pg_validators_put(struct r2m_store_pg *s, const char *etag,
                                const char *last_modified);
int r2m_store_pg_item_put(struct r2m_store_pg *s, const char *key, size_t key_len, struct r2m_fp fp,
                          const char *body, size_t body_len);
int r2m_store_pg_item_delete(struct r2m_store_pg *s, const char *key, size_t key_len);
int r2m_store_pg_items(struct r2m_store_pg *s, const char *endpoint, r2m_store_item_fn *fn,
                       void *ctx);

/* Adds an event of the fenced transaction's endpoint to the outbox. */
int r2m_store_pg_outbox_add(struct r2m_store_pg *s, const char *topic, size_t topic_len,
                            const char *payload, size_t payload_len, int retained, int64_t *id);
/* Removes an acknowledged event (no fence: it was delivered). */
int r2m_store_pg_outbox_delete(struct r2m_store_pg *s, int64_t id);
/* Calls fn for every outbox row of the endpoints member owns, oldest
 * first: after a takeover, the rows the previous owner committed but did
 * not get acknowledged, with their ids. */
int r2m_store_pg_outbox(struct r2m_store_pg *s, const char *member, r2m_store_outbox_fn *fn,
                        void *ctx);

#endif
