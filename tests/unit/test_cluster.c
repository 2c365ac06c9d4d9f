/* test_cluster.c - ownership by rendezvous hashing and the lease rules.
 *
 * Member names are those a StatefulSet gives (rest2mqtt-0, -1, ...): the
 * most similar names a real cluster has, the hardest case for balance.
 * Endpoint names are generated. The lease cases step a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "r2m/cluster.h"
#include "r2m/error.h"

#define N_ENDPOINTS 1000
#define MAX_MEMBERS 8

static char ep_buf[N_ENDPOINTS][32];
static const char *endpoints[N_ENDPOINTS];
static char member_buf[MAX_MEMBERS][32];
static const char *members[MAX_MEMBERS];

static int setup_names(void **state)
{
    (void)state;
    for (int i = 0; i < N_ENDPOINTS; i++) {
        snprintf(ep_buf[i], sizeof ep_buf[i], "%s-%d", i % 2 ? "shipments" : "flight", i);
        endpoints[i] = ep_buf[i];
    }
    for (int i = 0; i < MAX_MEMBERS; i++) {
        snprintf(member_buf[i], sizeof member_buf[i], "rest2mqtt-%d", i);
        members[i] = member_buf[i];
    }
    return 0;
}

static struct r2m_cluster_view *view_of(const char *const *names, size_t n)
{
    struct r2m_cluster_view *v = NULL;
    assert_int_equal(r2m_cluster_view_new(&v, names, n), 0);
    assert_non_null(v);
    return v;
}

static size_t index_of(const char *name)
{
    for (size_t i = 0; i < MAX_MEMBERS; i++)
        if (strcmp(members[i], name) == 0)
            return i;
    fail_msg("owner %s is not a member", name);
    return 0;
}

static void test_weight_depends_on_both_names(void **state)
{
    (void)state;
    uint64_t a = r2m_cluster_member_seed("rest2mqtt-0");
    uint64_t b = r2m_cluster_member_seed("rest2mqtt-1");
    assert_int_not_equal(a, b);
    assert_int_equal(r2m_cluster_member_seed("rest2mqtt-0"), a);
    assert_int_equal(r2m_cluster_weight(a, "flight-0"), r2m_cluster_weight(a, "flight-0"));
    assert_int_not_equal(r2m_cluster_weight(a, "flight-0"), r2m_cluster_weight(b, "flight-0"));
    assert_int_not_equal(r2m_cluster_weight(a, "flight-0"), r2m_cluster_weight(a, "flight-2"));
}

static void test_view_rejects_bad_member_sets(void **state)
{
    (void)state;
    struct r2m_cluster_view *v = NULL;
    const char *dup[] = {"a", "b", "a"};
    assert_int_equal(r2m_cluster_view_new(&v, dup, 3), R2M_E_INVALID);
    assert_null(v);
    const char *empty[] = {"a", ""};
    assert_int_equal(r2m_cluster_view_new(&v, empty, 2), R2M_E_INVALID);
    const char *null[] = {"a", NULL};
    assert_int_equal(r2m_cluster_view_new(&v, null, 2), R2M_E_INVALID);
    char longest[R2M_CLUSTER_MEMBER_MAX + 2];
    memset(longest, 'x', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0';
    const char *toolong[] = {longest};
    assert_int_equal(r2m_cluster_view_new(&v, toolong, 1), R2M_E_INVALID);
    longest[R2M_CLUSTER_MEMBER_MAX] = '\0'; /* exactly the limit is fine */
    v = view_of(toolong, 1);
    assert_string_equal(r2m_cluster_owner(v, "x"), longest);
    r2m_cluster_view_free(v);
    r2m_cluster_view_free(NULL);
}

static void test_view_sorted_and_searchable(void **state)
{
    (void)state;
    const char *names[] = {"c", "a", "b"};
    struct r2m_cluster_view *v = view_of(names, 3);
    assert_int_equal(r2m_cluster_view_size(v), 3);
    assert_string_equal(r2m_cluster_view_member(v, 0), "a");
    assert_string_equal(r2m_cluster_view_member(v, 2), "c");
    assert_null(r2m_cluster_view_member(v, 3));
    assert_true(r2m_cluster_view_has(v, "b"));
    assert_false(r2m_cluster_view_has(v, "d"));
    assert_false(r2m_cluster_view_has(v, ""));
    r2m_cluster_view_free(v);

    struct r2m_cluster_view *none = view_of(NULL, 0);
    assert_int_equal(r2m_cluster_view_size(none), 0);
    assert_null(r2m_cluster_owner(none, "flight-0"));
    assert_false(r2m_cluster_view_has(none, "a"));
    r2m_cluster_view_free(none);
}

/* Every member computes the same owner whatever order it learned the
 * members in, and the owner is the member with the highest weight. */
static void test_owner_is_heaviest_and_order_free(void **state)
{
    (void)state;
    const char *fwd[] = {members[0], members[1], members[2], members[3]};
    const char *rev[] = {members[3], members[2], members[1], members[0]};
    struct r2m_cluster_view *a = view_of(fwd, 4), *b = view_of(rev, 4);
    for (int i = 0; i < N_ENDPOINTS; i++) {
        const char *o = r2m_cluster_owner(a, endpoints[i]);
        assert_string_equal(o, r2m_cluster_owner(b, endpoints[i]));
        uint64_t w = r2m_cluster_weight(r2m_cluster_member_seed(o), endpoints[i]);
        for (int m = 0; m < 4; m++)
            assert_true(r2m_cluster_weight(r2m_cluster_member_seed(fwd[m]), endpoints[i]) <= w);
    }
    r2m_cluster_view_free(a);
    r2m_cluster_view_free(b);
}

/* 1000 endpoints over 3, 4 and 5 members: each member gets its fair share
 * within 20% (about 3 standard deviations of a fair coin at these sizes). */
static void test_balance(void **state)
{
    (void)state;
    for (size_t n = 3; n <= 5; n++) {
        struct r2m_cluster_view *v = view_of(members, n);
        size_t count[MAX_MEMBERS] = {0};
        for (int i = 0; i < N_ENDPOINTS; i++)
            count[index_of(r2m_cluster_owner(v, endpoints[i]))]++;
        double fair = (double)N_ENDPOINTS / (double)n;
        for (size_t m = 0; m < n; m++) {
            if (count[m] < fair * 0.8 || count[m] > fair * 1.2)
                fail_msg("%zu members: %s owns %zu of %d (fair %.0f)", n, members[m], count[m],
                         N_ENDPOINTS, fair);
        }
        r2m_cluster_view_free(v);
    }
}

struct moves_seen {
    size_t n;
    const char *only_from, *only_to; /* NULL: any */
    int stop_after;                  /* return 7 after this many (0: never) */
};

static int check_move(void *ctx, const struct r2m_cluster_move *m)
{
    struct moves_seen *s = ctx;
    assert_true(m->endpoint < N_ENDPOINTS);
    if (s->only_from)
        assert_string_equal(m->from, s->only_from);
    if (s->only_to)
        assert_string_equal(m->to, s->only_to);
    s->n++;
    return s->stop_after && (int)s->n == s->stop_after ? 7 : 0;
}

/* A member joining takes about 1/N of the endpoints, every one of them from
 * an existing member TO the new one; no endpoint moves between the old
 * members. */
static void test_join_moves_only_to_newcomer(void **state)
{
    (void)state;
    for (size_t n = 3; n <= 5; n++) {
        struct r2m_cluster_view *before = view_of(members, n), *after = view_of(members, n + 1);
        struct moves_seen seen = {0, NULL, members[n], 0};
        size_t moved = 0;
        assert_int_equal(
            r2m_cluster_moves(before, after, endpoints, N_ENDPOINTS, check_move, &seen, &moved), 0);
        assert_int_equal(seen.n, moved);
        double fair = (double)N_ENDPOINTS / (double)(n + 1);
        if (moved < fair * 0.8 || moved > fair * 1.2)
            fail_msg("%zu -> %zu members moved %zu endpoints (fair %.0f)", n, n + 1, moved, fair);
        /* and everything that did not move kept its owner */
        size_t kept = 0;
        for (int i = 0; i < N_ENDPOINTS; i++)
            kept += strcmp(r2m_cluster_owner(before, endpoints[i]),
                           r2m_cluster_owner(after, endpoints[i])) == 0;
        assert_int_equal(kept + moved, N_ENDPOINTS);
        r2m_cluster_view_free(before);
        r2m_cluster_view_free(after);
    }
}

/* A member leaving gives up exactly its own endpoints, and only those
 * move; where each goes is the owner among the rest. */
static void test_leave_moves_only_leavers_endpoints(void **state)
{
    (void)state;
    const size_t n = 4;
    struct r2m_cluster_view *all = view_of(members, n);
    for (size_t gone = 0; gone < n; gone++) {
        const char *rest[MAX_MEMBERS];
        size_t k = 0;
        for (size_t m = 0; m < n; m++)
            if (m != gone)
                rest[k++] = members[m];
        struct r2m_cluster_view *after = view_of(rest, k);
        size_t owned = 0;
        for (int i = 0; i < N_ENDPOINTS; i++)
            owned += strcmp(r2m_cluster_owner(all, endpoints[i]), members[gone]) == 0;
        assert_true(owned > 0);
        struct moves_seen seen = {0, members[gone], NULL, 0};
        size_t moved = 0;
        assert_int_equal(
            r2m_cluster_moves(all, after, endpoints, N_ENDPOINTS, check_move, &seen, &moved), 0);
        assert_int_equal(moved, owned);
        r2m_cluster_view_free(after);
    }
    r2m_cluster_view_free(all);
}

static void test_moves_edges(void **state)
{
    (void)state;
    struct r2m_cluster_view *none = view_of(NULL, 0), *one = view_of(members, 1);
    size_t moved = 99;
    /* nobody -> one member: everything goes to it, from nobody */
    struct moves_seen seen = {0, NULL, members[0], 0};
    assert_int_equal(r2m_cluster_moves(none, one, endpoints, 10, check_move, &seen, &moved), 0);
    assert_int_equal(moved, 10);
    assert_int_equal(r2m_cluster_moves(one, one, endpoints, 10, check_move, &seen, &moved), 0);
    assert_int_equal(moved, 0);
    /* a non-zero return stops the walk and comes back */
    struct moves_seen stop = {0, NULL, NULL, 3};
    assert_int_equal(r2m_cluster_moves(one, none, endpoints, 10, check_move, &stop, &moved), 7);
    assert_int_equal(stop.n, 3);
    assert_int_equal(r2m_cluster_moves(one, none, endpoints, 10, NULL, NULL, &moved), 0);
    assert_int_equal(moved, 10);
    r2m_cluster_view_free(none);
    r2m_cluster_view_free(one);
}

static void test_may_claim(void **state)
{
    (void)state;
    struct r2m_cluster_view *live = view_of(members, 3);
    const char *ep = endpoints[0];
    const char *owner = r2m_cluster_owner(live, ep);
    const char *other = strcmp(owner, members[0]) == 0 ? members[1] : members[0];
    assert_true(r2m_cluster_may_claim(live, owner, ep, NULL));          /* unowned */
    assert_true(r2m_cluster_may_claim(live, owner, ep, owner));         /* already ours */
    assert_true(r2m_cluster_may_claim(live, owner, ep, "rest2mqtt-7")); /* holder dead */
    assert_false(r2m_cluster_may_claim(live, owner, ep, other));        /* live holder: wait */
    assert_false(r2m_cluster_may_claim(live, other, ep, NULL));         /* not ours to take */
    assert_false(r2m_cluster_may_claim(live, other, ep, other));
    r2m_cluster_view_free(live);
}

/* A whole round for three members, then a fourth joins: each endpoint ends
 * with exactly one member that polls it (KEEP or CLAIM), a moving endpoint
 * is released by its old holder before the newcomer may claim it, and
 * nobody polls it in between twice. */
static void test_decide_rounds(void **state)
{
    (void)state;
    struct r2m_cluster_view *three = view_of(members, 3), *four = view_of(members, 4);
    const char *holder[N_ENDPOINTS];
    /* round 1: nothing held yet; each endpoint claimed by exactly its owner */
    for (int i = 0; i < N_ENDPOINTS; i++) {
        int claims = 0;
        for (int m = 0; m < 3; m++) {
            enum r2m_cluster_action a = r2m_cluster_decide(three, members[m], endpoints[i], NULL);
            assert_true(a == R2M_CLUSTER_CLAIM || a == R2M_CLUSTER_IGNORE);
            if (a == R2M_CLUSTER_CLAIM) {
                claims++;
                holder[i] = members[m];
            }
        }
        assert_int_equal(claims, 1);
    }
    /* a fourth member joins: it waits for what moves to it, the old holder
     * releases, then the newcomer claims; everything else is kept */
    size_t moved = 0;
    for (int i = 0; i < N_ENDPOINTS; i++) {
        const char *newcomer = members[3];
        enum r2m_cluster_action a = r2m_cluster_decide(four, newcomer, endpoints[i], holder[i]);
        enum r2m_cluster_action h = r2m_cluster_decide(four, holder[i], endpoints[i], holder[i]);
        if (a == R2M_CLUSTER_WAIT) {
            assert_int_equal(h, R2M_CLUSTER_RELEASE);
            assert_int_equal(r2m_cluster_decide(four, newcomer, endpoints[i], NULL),
                             R2M_CLUSTER_CLAIM);
            moved++;
        } else {
            assert_int_equal(a, R2M_CLUSTER_IGNORE);
            assert_int_equal(h, R2M_CLUSTER_KEEP);
        }
    }
    assert_true(moved > N_ENDPOINTS / 4 * 0.8 && moved < N_ENDPOINTS / 4 * 1.2);
    /* a member that lapsed (not in the view) releases what it holds, and
     * the live owner takes it at once: the holder is not live */
    const char *rest[] = {members[1], members[2]};
    struct r2m_cluster_view *without0 = view_of(rest, 2);
    for (int i = 0; i < N_ENDPOINTS; i++) {
        if (strcmp(holder[i], members[0]) != 0)
            continue;
        assert_int_equal(r2m_cluster_decide(without0, members[0], endpoints[i], members[0]),
                         R2M_CLUSTER_RELEASE);
        const char *o = r2m_cluster_owner(without0, endpoints[i]);
        assert_int_equal(r2m_cluster_decide(without0, o, endpoints[i], members[0]),
                         R2M_CLUSTER_CLAIM);
    }
    r2m_cluster_view_free(three);
    r2m_cluster_view_free(four);
    r2m_cluster_view_free(without0);
}

static void test_dead_after_lease(void **state)
{
    (void)state;
    assert_false(r2m_cluster_is_dead(1000, 10000, 1000));
    assert_false(r2m_cluster_is_dead(1000, 10000, 11000)); /* exactly the lease: alive */
    assert_true(r2m_cluster_is_dead(1000, 10000, 11001));
    assert_false(r2m_cluster_is_dead(5000, 10000, 1000));               /* clock behind: alive */
    assert_false(r2m_cluster_is_dead(INT64_MAX - 5, 10000, INT64_MAX)); /* no overflow */
    assert_true(r2m_cluster_is_dead(INT64_MIN, 10000, 0));
}

static void test_lease_fake_clock(void **state)
{
    (void)state;
    struct r2m_cluster_lease l;
    assert_int_equal(r2m_cluster_lease_init(&l, 2), R2M_E_INVALID);
    assert_int_equal(r2m_cluster_lease_init(&l, 10000), 0);
    /* never renewed: no polling, renewal due at once */
    assert_false(r2m_cluster_lease_valid(&l, 0));
    assert_true(r2m_cluster_lease_renew_at(&l) <= 0);

    int64_t now = 1000;
    r2m_cluster_lease_renewed(&l, now);
    assert_int_equal(r2m_cluster_lease_renew_at(&l), 1000 + 3333);
    assert_int_equal(r2m_cluster_lease_stop_at(&l), 1000 + 6666);
    assert_true(r2m_cluster_lease_valid(&l, 1000 + 6665));
    assert_false(r2m_cluster_lease_valid(&l, 1000 + 6666));

    /* renewed on time: the deadline moves with it */
    r2m_cluster_lease_renewed(&l, 4333);
    assert_true(r2m_cluster_lease_valid(&l, 10998));
    /* a late reply to an older renewal changes nothing */
    r2m_cluster_lease_renewed(&l, 2000);
    assert_int_equal(r2m_cluster_lease_stop_at(&l), 4333 + 6666);

    /* the database is away: renewals fail from 4333 on; the member stops
     * polling at 10999 while the others count it alive until 14333 */
    for (now = 4333; now < 30000; now += 250) {
        if (r2m_cluster_lease_valid(&l, now))
            assert_false(r2m_cluster_is_dead(4333, 10000, now));
    }
    assert_false(r2m_cluster_lease_valid(&l, 10999));
}

/* The safety margin: whatever the delay between sending a renewal and the
 * database writing it (the heartbeat is at least the send time), a member
 * stops polling at least lease/3 before anyone may count it dead. */
static void test_lease_stops_before_others_take_over(void **state)
{
    (void)state;
    static const int64_t leases[] = {3, 10, 999, 10000, 60000};
    for (size_t i = 0; i < sizeof leases / sizeof leases[0]; i++) {
        int64_t lease = leases[i];
        for (int64_t delay = 0; delay <= lease * 2; delay += lease / 3 + 1) {
            struct r2m_cluster_lease l;
            assert_int_equal(r2m_cluster_lease_init(&l, lease), 0);
            int64_t sent = 50000;
            int64_t heartbeat = sent + delay; /* when the row was written */
            r2m_cluster_lease_renewed(&l, sent);
            int64_t stop = r2m_cluster_lease_stop_at(&l);
            int64_t dead = heartbeat + lease + 1; /* first instant counted dead */
            assert_true(r2m_cluster_is_dead(heartbeat, lease, dead));
            assert_false(r2m_cluster_is_dead(heartbeat, lease, dead - 1));
            assert_true(dead - stop >= lease / 3);
            assert_false(r2m_cluster_lease_valid(&l, stop));
            assert_true(r2m_cluster_lease_valid(&l, stop - 1));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weight_depends_on_both_names),
        cmocka_unit_test(test_view_rejects_bad_member_sets),
        cmocka_unit_test(test_view_sorted_and_searchable),
        cmocka_unit_test(test_owner_is_heaviest_and_order_free),
        cmocka_unit_test(test_balance),
        cmocka_unit_test(test_join_moves_only_to_newcomer),
        cmocka_unit_test(test_leave_moves_only_leavers_endpoints),
        cmocka_unit_test(test_moves_edges),
        cmocka_unit_test(test_may_claim),
        cmocka_unit_test(test_decide_rounds),
        cmocka_unit_test(test_dead_after_lease),
        cmocka_unit_test(test_lease_fake_clock),
        cmocka_unit_test(test_lease_stops_before_others_take_over),
    };
    return cmocka_run_group_tests(tests, setup_names, NULL);
}
