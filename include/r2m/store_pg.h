/* r2m/store_pg.h - the PostgreSQL store backend for cluster mode (libpq):
 * the state of r2m/store.h shared by every replica, membership, and endpoint
 * ownership with fencing. DRAFT: r2m_store_new does not select it yet (no
 * config key: `state.postgres` comes with the config restructuring); the
 * generic r2m_store_* functions work on the store it makes, and
 * tests/unit/test_store_pg.c drives it against a real server.
 *
 * Tables (created on open, idempotently, under an advisory lock so replicas
 * that start together do not race): r2m_meta (schema version, epoch),
 * r2m_member (name, incarnation, heartbeat, started), r2m_ownership
 * (endpoint, member, generation, since), r2m_endpoint, r2m_item, r2m_outbox,
 * r2m_dead_letter. Times are the database's clock (now()), never a
 * member's: lease comparisons do not depend on the replicas' clocks agreeing.
 *
 * Fencing. A member owns an endpoint under a generation number; every claim
 * and every release adds one to it. Once a store has joined the cluster
 * (r2m_store_pg_join), the first write for an endpoint in a transaction
 * checks, with the ownership row locked FOR SHARE until the transaction
 * ends, that this member holds it under the generation its claim returned.
 * A claim by another member has to update that row: it waits for a commit
 * in progress, and once it has committed, a later check finds the row
 * changed: the write fails with R2M_E_FENCED, r2m_store_commit then rolls
 * back and returns R2M_E_FENCED, and the endpoint counts as lost. A member
 * that was paused or partitioned past its lease therefore commits nothing
 * for an endpoint it lost, whatever its own clock believes. A store that
 * joined no cluster (the `state` commands) writes unfenced, and so is an
 * outbox row of no endpoint (endpoint NULL).
 *
 * A member's r2m_store_outbox and r2m_store_outbox_count cover the events
 * of the endpoints it owns, so a new owner publishes what the previous one
 * left unacknowledged, in order, with the same ids; outbox deletes and dead
 * letters are not fenced (the event was delivered, or refused for good).
 *
 * One connection, used by the loop thread only. R2M_E_IO means the statement
 * or the connection failed (r2m_store_errmsg says why; the connection
 * string, which may hold a password, is never part of it). */
#ifndef R2M_STORE_PG_H
#define R2M_STORE_PG_H

#include <stddef.h>
#include <stdint.h>

#include "r2m/store.h"

/* Connects with a libpq connection string or postgresql:// URI, creates or
 * checks the schema and reads the shared epoch (the same for every member,
 * so an event id does not change when another member takes the endpoint
 * over). A database holding a newer schema, or unreachable, is an error
 * explained in err. The caller frees *out with r2m_store_free. */
int r2m_store_pg_new(const char *conninfo, char *err, size_t errlen, struct r2m_store **out);

/* The functions below take a store r2m_store_pg_new made; any other store
 * is R2M_E_INVALID. */

/* ---- membership ---- */

/* Joins the cluster as member with this process's incarnation (a random
 * number drawn at start); from now on every write is fenced. R2M_E_CONFIG
 * (err says so) when a live member - heartbeat within lease_ms - already
 * has the name with another incarnation: two replicas with one name. A dead
 * member's row is taken over. */
int r2m_store_pg_join(struct r2m_store *s, const char *member, uint64_t incarnation,
                      int64_t lease_ms, char *err, size_t errlen);

/* Renews the heartbeat. R2M_E_FENCED when the row is gone or names another
 * incarnation: another process took the name while this one was away; it
 * then owns nothing and must stop. R2M_E_INVALID before a join. */
int r2m_store_pg_renew(struct r2m_store *s);

/* Graceful exit: removes this member's row and releases all its endpoints
 * (one transaction), so the others take them over without waiting for the
 * lease. */
int r2m_store_pg_leave(struct r2m_store *s);

/* Calls fn for every live member (heartbeat within lease_ms), in bytewise
 * name order. A non-zero return of fn stops and is returned. */
int r2m_store_pg_members(struct r2m_store *s, int64_t lease_ms,
                         int (*fn)(void *ctx, const char *member), void *ctx);

/* ---- ownership (outside a transaction) ---- */

/* Takes endpoint when nobody holds it, this member holds it (a restart), or
 * its holder is not live (no heartbeat within lease_ms); *generation is the
 * new generation, under which this store's writes for it are fenced.
 * R2M_E_FENCED when a live other member holds it (that member releases the
 * endpoint when it sees the new membership). A claim waits for the holder's
 * commit in progress. */
int r2m_store_pg_claim(struct r2m_store *s, const char *endpoint, int64_t lease_ms,
                       int64_t *generation);

/* Gives a claimed endpoint up (handover): after this no commit of this
 * member writes it. R2M_E_FENCED when it had been lost before (it is
 * forgotten either way); R2M_E_INVALID when it was never claimed. */
int r2m_store_pg_release(struct r2m_store *s, const char *endpoint);

/* Calls fn for every ownership row in endpoint order; member is NULL for a
 * released endpoint. For `state list` and for a member learning which
 * endpoints it lost. A non-zero return of fn stops and is returned. */
typedef int r2m_store_pg_owner_fn(void *ctx, const char *endpoint, const char *member,
                                  int64_t generation);
int r2m_store_pg_owners(struct r2m_store *s, r2m_store_pg_owner_fn *fn, void *ctx);

#endif
