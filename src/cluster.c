/* cluster.c - rendezvous hashing, ownership moves and lease arithmetic. */
#include "r2m/cluster.h"

#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "r2m/error.h"
#include "r2m/sched.h" /* r2m_sched_at: saturating time arithmetic */

struct member {
    char *name;
    uint64_t seed;
};

struct r2m_cluster_view {
    struct member *m; /* sorted bytewise by name */
    size_t n;
};

/* Distinct from any seed a caller might pick for another purpose, so that a
 * member's seed is not simply the hash another module stores. */
#define MEMBER_SEED_SALT 0x72326d636c757374ULL /* "r2mclust" */

uint64_t r2m_cluster_member_seed(const char *member)
{
    return XXH3_64bits_withSeed(member, strlen(member), MEMBER_SEED_SALT);
}

uint64_t r2m_cluster_weight(uint64_t member_seed, const char *endpoint)
{
    return XXH3_64bits_withSeed(endpoint, strlen(endpoint), member_seed);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct member *)a)->name, ((const struct member *)b)->name);
}

void r2m_cluster_view_free(struct r2m_cluster_view *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++)
        free(v->m[i].name);
    free(v->m);
    free(v);
}

int r2m_cluster_view_new(struct r2m_cluster_view **out, const char *const *names, size_t n)
{
    int rc = R2M_E_NOMEM;
    struct r2m_cluster_view *v = calloc(1, sizeof *v);
    if (!v)
        goto out;
    if (n > 0 && !(v->m = calloc(n, sizeof *v->m)))
        goto out;
    for (size_t i = 0; i < n; i++) {
        size_t len = names[i] ? strlen(names[i]) : 0;
        if (len == 0 || len > R2M_CLUSTER_MEMBER_MAX) {
            rc = R2M_E_INVALID;
            goto out;
        }
        if (!(v->m[i].name = strdup(names[i])))
            goto out;
        v->n = i + 1;
        v->m[i].seed = r2m_cluster_member_seed(names[i]);
    }
    if (n > 1)
        qsort(v->m, n, sizeof *v->m, by_name);
    for (size_t i = 1; i < v->n; i++) {
        if (strcmp(v->m[i - 1].name, v->m[i].name) == 0) {
            rc = R2M_E_INVALID;
            goto out;
        }
    }
    *out = v;
    v = NULL;
    rc = 0;
out:
    r2m_cluster_view_free(v);
    return rc;
}

size_t r2m_cluster_view_size(const struct r2m_cluster_view *v)
{
    return v->n;
}

const char *r2m_cluster_view_member(const struct r2m_cluster_view *v, size_t i)
{
    return i < v->n ? v->m[i].name : NULL;
}

int r2m_cluster_view_has(const struct r2m_cluster_view *v, const char *name)
{
    struct member key = {(char *)name, 0};
    return v->n > 0 && bsearch(&key, v->m, v->n, sizeof *v->m, by_name) != NULL;
}

const char *r2m_cluster_owner(const struct r2m_cluster_view *v, const char *endpoint)
{
    const struct member *best = NULL;
    uint64_t best_w = 0;
    /* members are in bytewise order and only a strictly heavier one
     * replaces the best: equal weights go to the smaller name */
    for (size_t i = 0; i < v->n; i++) {
        uint64_t w = r2m_cluster_weight(v->m[i].seed, endpoint);
        if (!best || w > best_w) {
            best = &v->m[i];
            best_w = w;
        }
    }
    return best ? best->name : NULL;
}

static int same_member(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

int r2m_cluster_moves(const struct r2m_cluster_view *before, const struct r2m_cluster_view *after,
                      const char *const *endpoints, size_t n, r2m_cluster_move_fn *fn, void *ctx,
                      size_t *moved)
{
    *moved = 0;
    for (size_t i = 0; i < n; i++) {
        struct r2m_cluster_move m = {i, r2m_cluster_owner(before, endpoints[i]),
                                     r2m_cluster_owner(after, endpoints[i])};
        if (same_member(m.from, m.to))
            continue;
        ++*moved;
        int rc = fn ? fn(ctx, &m) : 0;
        if (rc)
            return rc;
    }
    return 0;
}

int r2m_cluster_may_claim(const struct r2m_cluster_view *live, const char *self,
                          const char *endpoint, const char *holder)
{
    if (!same_member(r2m_cluster_owner(live, endpoint), self))
        return 0;
    return !holder || strcmp(holder, self) == 0 || !r2m_cluster_view_has(live, holder);
}

enum r2m_cluster_action r2m_cluster_decide(const struct r2m_cluster_view *live, const char *self,
                                           const char *endpoint, const char *holder)
{
    int mine = same_member(r2m_cluster_owner(live, endpoint), self);
    int held = holder && strcmp(holder, self) == 0;
    if (held)
        return mine ? R2M_CLUSTER_KEEP : R2M_CLUSTER_RELEASE;
    if (!mine)
        return R2M_CLUSTER_IGNORE;
    return r2m_cluster_may_claim(live, self, endpoint, holder) ? R2M_CLUSTER_CLAIM
                                                               : R2M_CLUSTER_WAIT;
}

/* ---- leases ---- */

int r2m_cluster_is_dead(int64_t heartbeat_ms, int64_t lease_ms, int64_t now_ms)
{
    return now_ms > r2m_sched_at(heartbeat_ms, lease_ms);
}

int r2m_cluster_lease_init(struct r2m_cluster_lease *l, int64_t lease_ms)
{
    if (lease_ms < 3)
        return R2M_E_INVALID;
    l->lease_ms = lease_ms;
    l->renewed_ms = INT64_MIN;
    return 0;
}

void r2m_cluster_lease_renewed(struct r2m_cluster_lease *l, int64_t sent_ms)
{
    if (sent_ms > l->renewed_ms)
        l->renewed_ms = sent_ms;
}

int64_t r2m_cluster_lease_renew_at(const struct r2m_cluster_lease *l)
{
    return r2m_sched_at(l->renewed_ms, l->lease_ms / 3);
}

int64_t r2m_cluster_lease_stop_at(const struct r2m_cluster_lease *l)
{
    if (l->renewed_ms == INT64_MIN)
        return INT64_MIN;
    return r2m_sched_at(l->renewed_ms, l->lease_ms / 3 * 2 + (l->lease_ms % 3) * 2 / 3);
}

int r2m_cluster_lease_valid(const struct r2m_cluster_lease *l, int64_t now_ms)
{
    return now_ms < r2m_cluster_lease_stop_at(l);
}
