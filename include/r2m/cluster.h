/* r2m/cluster.h - cluster mode's rules: which member owns an endpoint, what
 * moves when members come and go, and the lease arithmetic.
 *
 * Pure: no I/O, no clock, no globals. The store (PostgreSQL) supplies the
 * live members and the ownership rows; the loop supplies `now`; this module
 * decides. DESIGN.md invariant 10.
 *
 * Ownership is rendezvous (highest random weight) hashing: every live member
 * gets a weight per endpoint, XXH3-64 of the endpoint name seeded with a hash
 * of the member name, and the heaviest member owns the endpoint (equal
 * weights, astronomically rare, go to the bytewise smaller name). Every member
 * computes the same owner from the same member set, without talking to the
 * others. A member joining takes only the endpoints it now outweighs (about
 * 1/N of them); a member leaving gives up only its own; no other endpoint
 * changes owner.
 *
 * Leases. A member renews a heartbeat row every lease/3; the others count it
 * dead once its heartbeat is older than the lease (measured on the
 * database's clock). A member fences itself: it polls and commits only until
 * lease*2/3 after it SENT its last successful renewal (its own monotonic
 * clock). Timing it from the send, not the reply, keeps it on the safe side
 * whenever the reply was slow; the remaining third of the lease absorbs clock
 * rate differences and a stall between a check and a commit. The ownership
 * generation checked inside every commit (store_pg) is the backstop when a
 * paused process overshoots even that. */
#ifndef R2M_CLUSTER_H
#define R2M_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

/* Longest member name in bytes (a Kubernetes pod name is at most 253). */
#define R2M_CLUSTER_MEMBER_MAX 253

/* ---- rendezvous hashing ---- */

/* The per-member seed of the weights: a hash of the member name. */
uint64_t r2m_cluster_member_seed(const char *member);

/* member's weight for endpoint, given r2m_cluster_member_seed(member). */
uint64_t r2m_cluster_weight(uint64_t member_seed, const char *endpoint);

/* A set of live members: names copied, sorted bytewise, seeds precomputed.
 * Immutable once made; a membership change makes a new view. */
struct r2m_cluster_view;

/* Makes a view of n member names (copied; the caller keeps its strings).
 * R2M_E_INVALID for an empty name, a name over R2M_CLUSTER_MEMBER_MAX bytes or
 * a name given twice (two live members with one name is an error the
 * second member reports); R2M_E_NOMEM. n may be 0 (nobody is live). The
 * caller frees *out with r2m_cluster_view_free. */
int r2m_cluster_view_new(struct r2m_cluster_view **out, const char *const *names, size_t n);
void r2m_cluster_view_free(struct r2m_cluster_view *v);

size_t r2m_cluster_view_size(const struct r2m_cluster_view *v);
/* The i-th member in bytewise order (i < size); owned by the view. */
const char *r2m_cluster_view_member(const struct r2m_cluster_view *v, size_t i);
/* Whether name is a member of the view: 1 or 0. */
int r2m_cluster_view_has(const struct r2m_cluster_view *v, const char *name);

/* The member that owns endpoint (owned by the view), or NULL when the view
 * is empty. */
const char *r2m_cluster_owner(const struct r2m_cluster_view *v, const char *endpoint);

/* One endpoint whose owner differs between two views. from/to are NULL
 * when the old/new view is empty; the strings belong to the views. */
struct r2m_cluster_move {
    size_t endpoint; /* index into the endpoints array */
    const char *from, *to;
};
typedef int r2m_cluster_move_fn(void *ctx, const struct r2m_cluster_move *m);

/* Calls fn (may be NULL) for every endpoint whose owner in `before` differs
 * from its owner in `after`, in array order; *moved counts them. A non-zero
 * return of fn stops the walk and is returned. */
int r2m_cluster_moves(const struct r2m_cluster_view *before, const struct r2m_cluster_view *after,
                      const char *const *endpoints, size_t n, r2m_cluster_move_fn *fn, void *ctx,
                      size_t *moved);

/* Whether self may take endpoint over now, given the live view and the
 * member the endpoint's ownership row names (holder; NULL when the row is
 * missing or released): 1 when self is the rendezvous owner in the view and
 * the holder is self, nobody, or not live. 0 while a live other member still
 * holds it: that member stops polling it and releases it when it sees the
 * same view, so the endpoint is never polled by both. */
int r2m_cluster_may_claim(const struct r2m_cluster_view *live, const char *self,
                          const char *endpoint, const char *holder);

/* What a member does about one endpoint in a membership round, given the
 * live view and the endpoint's current holder (NULL: none or released). */
enum r2m_cluster_action {
    R2M_CLUSTER_IGNORE,  /* another member's, not held by self: nothing to do */
    R2M_CLUSTER_KEEP,    /* self's and held by self: keep polling */
    R2M_CLUSTER_CLAIM,   /* self's, free or held by a dead member: claim, then poll */
    R2M_CLUSTER_WAIT,    /* self's, still held by a live other member: its release comes */
    R2M_CLUSTER_RELEASE, /* held by self but another live member's now: stop polling,
                          * then release, so that the two never poll together */
};

/* The action for endpoint. A member that holds an endpoint while it is not
 * in the view itself (its heartbeat lapsed) releases everything: it may
 * not poll until it is live again. */
enum r2m_cluster_action r2m_cluster_decide(const struct r2m_cluster_view *live, const char *self,
                                           const char *endpoint, const char *holder);

/* ---- leases (all times in ms; the caller's clock) ---- */

/* Whether a member whose last heartbeat is heartbeat_ms counts as dead at
 * now_ms: its heartbeat is older than lease_ms. 1 or 0. */
int r2m_cluster_is_dead(int64_t heartbeat_ms, int64_t lease_ms, int64_t now_ms);

/* A member's own view of its lease, on its monotonic clock. */
struct r2m_cluster_lease {
    int64_t lease_ms;
    int64_t renewed_ms; /* when the last successful renewal was sent; INT64_MIN: never */
};

/* A lease of lease_ms that has never been renewed: no polling until the
 * first renewal succeeds. R2M_E_INVALID when lease_ms < 3 (a third of it
 * must be at least 1 ms). */
int r2m_cluster_lease_init(struct r2m_cluster_lease *l, int64_t lease_ms);

/* Records a successful renewal whose request was sent at sent_ms (not the
 * time the reply came). An older send than the one recorded changes
 * nothing. */
void r2m_cluster_lease_renewed(struct r2m_cluster_lease *l, int64_t sent_ms);

/* When the next renewal is due: lease/3 after the last one was sent (at
 * once when there was none). */
int64_t r2m_cluster_lease_renew_at(const struct r2m_cluster_lease *l);

/* The instant from which the member must not poll or commit any more:
 * lease*2/3 after the last successful renewal was sent (INT64_MIN when never
 * renewed). */
int64_t r2m_cluster_lease_stop_at(const struct r2m_cluster_lease *l);

/* Whether the member may poll and commit at now_ms: now_ms < stop_at. */
int r2m_cluster_lease_valid(const struct r2m_cluster_lease *l, int64_t now_ms);

#endif
