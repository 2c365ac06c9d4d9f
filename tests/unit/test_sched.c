/* test_sched.c - the poll schedule under a fake clock.
 *
 * The scheduler never reads a clock, so every case steps `now` by hand: an
 * entry comes out exactly when it is due, never before, earliest first and
 * first-come-first-served among equals. The delay cases draw many times from
 * a seeded generator and state the bounds every draw must keep. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "r2m/error.h"
#include "r2m/sched.h"

static int setup_sched(void **state)
{
    struct r2m_sched *s = NULL;
    assert_int_equal(r2m_sched_new(&s), 0);
    assert_non_null(s);
    *state = s;
    return 0;
}

static int teardown_sched(void **state)
{
    r2m_sched_free(*state);
    return 0;
}

/* The test's own generator, independent of the one under test. */
static uint64_t next_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void assert_pops(struct r2m_sched *s, int64_t now, uint32_t want)
{
    uint32_t id = UINT32_MAX;
    assert_int_equal(r2m_sched_pop_due(s, now, &id), 1);
    assert_int_equal(id, want);
}

static void assert_nothing_due(struct r2m_sched *s, int64_t now)
{
    uint32_t id = 12345;
    assert_int_equal(r2m_sched_pop_due(s, now, &id), 0);
    assert_int_equal(id, 12345); /* left alone */
}

/* ---- the heap ------------------------------------------------------------- */

static void test_an_empty_schedule_has_nothing_due_ever(void **state)
{
    struct r2m_sched *s = *state;
    assert_int_equal(r2m_sched_size(s), 0);
    assert_true(r2m_sched_next(s) == INT64_MAX);
    assert_nothing_due(s, 0);
    assert_nothing_due(s, INT64_MAX);
}

static void test_free_accepts_null(void **state)
{
    (void)state;
    r2m_sched_free(NULL);
}

static void test_entries_come_out_in_due_order_and_only_when_due(void **state)
{
    struct r2m_sched *s = *state;
    assert_int_equal(r2m_sched_add(s, 1, 300), 0);
    assert_int_equal(r2m_sched_add(s, 2, 100), 0);
    assert_int_equal(r2m_sched_add(s, 3, 200), 0);
    assert_int_equal(r2m_sched_size(s), 3);
    assert_true(r2m_sched_next(s) == 100);

    assert_nothing_due(s, 0);
    assert_nothing_due(s, 99);
    assert_pops(s, 100, 2);
    assert_nothing_due(s, 100); /* 3 is due at 200, not yet */
    assert_true(r2m_sched_next(s) == 200);
    assert_int_equal(r2m_sched_size(s), 2);

    /* a late tick releases everything overdue, earliest first */
    assert_pops(s, 1000, 3);
    assert_pops(s, 1000, 1);
    assert_nothing_due(s, 1000);
    assert_int_equal(r2m_sched_size(s), 0);
    assert_true(r2m_sched_next(s) == INT64_MAX);
}

static void test_equal_due_times_come_out_in_insertion_order(void **state)
{
    struct r2m_sched *s = *state;
    /* inserted in an order that a heap without tie-breaking would shuffle */
    static const uint32_t ids[] = {9, 4, 7, 1, 8, 2, 6, 3, 5, 0, 11, 10};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        assert_int_equal(r2m_sched_add(s, ids[i], 500), 0);
    assert_int_equal(r2m_sched_add(s, 99, 499), 0);
    assert_nothing_due(s, 498);
    assert_pops(s, 500, 99);
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        assert_pops(s, 500, ids[i]);
    assert_nothing_due(s, INT64_MAX);
}

static void test_fifo_holds_across_interleaved_adds_and_pops(void **state)
{
    struct r2m_sched *s = *state;
    assert_int_equal(r2m_sched_add(s, 1, 10), 0);
    assert_int_equal(r2m_sched_add(s, 2, 10), 0);
    assert_int_equal(r2m_sched_add(s, 3, 5), 0);
    assert_pops(s, 10, 3);
    assert_int_equal(r2m_sched_add(s, 4, 10), 0);
    assert_pops(s, 10, 1);
    assert_int_equal(r2m_sched_add(s, 5, 10), 0);
    assert_pops(s, 10, 2);
    assert_pops(s, 10, 4);
    assert_pops(s, 10, 5);
    assert_nothing_due(s, 10);
}

static void test_extreme_due_times_are_ordered(void **state)
{
    struct r2m_sched *s = *state;
    assert_int_equal(r2m_sched_add(s, 1, INT64_MAX), 0);
    assert_int_equal(r2m_sched_add(s, 2, INT64_MIN), 0);
    assert_int_equal(r2m_sched_add(s, 3, -5), 0);
    assert_int_equal(r2m_sched_add(s, 4, 0), 0);
    assert_true(r2m_sched_next(s) == INT64_MIN);
    assert_pops(s, INT64_MIN, 2);
    assert_nothing_due(s, -6);
    assert_pops(s, -5, 3);
    assert_pops(s, 0, 4);
    assert_nothing_due(s, INT64_MAX - 1);
    assert_pops(s, INT64_MAX, 1);
}

struct expected {
    int64_t due;
    uint32_t id; /* also the insertion index */
};

static int by_due_then_insertion(const void *a, const void *b)
{
    const struct expected *x = a, *y = b;
    if (x->due != y->due)
        return x->due < y->due ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Inserts n random due times in [0, range) and checks they come out sorted
 * by due time, ties in insertion order, each exactly once. */
static void check_random_inserts(struct r2m_sched *s, size_t n, int64_t range, uint64_t seed)
{
    struct expected *want = malloc(n * sizeof *want);
    assert_non_null(want);
    for (size_t i = 0; i < n; i++) {
        want[i].due = (int64_t)(next_rand(&seed) % (uint64_t)range);
        want[i].id = (uint32_t)i;
        assert_int_equal(r2m_sched_add(s, want[i].id, want[i].due), 0);
    }
    assert_int_equal(r2m_sched_size(s), n);
    qsort(want, n, sizeof *want, by_due_then_insertion);

    for (size_t i = 0; i < n; i++) {
        assert_true(r2m_sched_next(s) == want[i].due);
        /* one tick before its due time nothing comes out */
        if (want[i].due > 0)
            assert_nothing_due(s, want[i].due - 1);
        uint32_t id;
        assert_int_equal(r2m_sched_pop_due(s, want[i].due, &id), 1);
        if (id != want[i].id)
            fail_msg("pop %zu: got id %u, expected %u (due %lld)", i, id, want[i].id,
                     (long long)want[i].due);
        assert_int_equal(r2m_sched_size(s), n - i - 1);
    }
    assert_true(r2m_sched_next(s) == INT64_MAX);
    free(want);
}

static void test_ten_thousand_random_inserts_come_out_sorted(void **state)
{
    check_random_inserts(*state, 10000, INT64_C(1) << 40, 0x243F6A8885A308D3ull);
}

static void test_ten_thousand_inserts_with_many_ties_keep_fifo(void **state)
{
    /* only 50 distinct due times: about 200 entries share each */
    check_random_inserts(*state, 10000, 50, 0x13198A2E03707344ull);
}

static void test_a_fake_clock_polls_each_endpoint_once_per_interval(void **state)
{
    struct r2m_sched *s = *state;
    /* three endpoints, re-added after each poll as the loop does */
    static const int64_t interval[] = {100, 250, 1000};
    int polls[3] = {0};
    for (uint32_t id = 0; id < 3; id++)
        assert_int_equal(r2m_sched_add(s, id, interval[id]), 0);
    for (int64_t now = 0; now <= 10000; now++) {
        uint32_t id;
        while (r2m_sched_pop_due(s, now, &id)) {
            assert_true(id < 3);
            assert_true(now % interval[id] == 0); /* on time, never early or late */
            polls[id]++;
            assert_int_equal(r2m_sched_add(s, id, now + interval[id]), 0);
        }
        assert_true(r2m_sched_next(s) > now);
    }
    assert_int_equal(polls[0], 100);
    assert_int_equal(polls[1], 40);
    assert_int_equal(polls[2], 10);
    assert_int_equal(r2m_sched_size(s), 3);
}

/* ---- delays ----------------------------------------------------------------- */

static void test_zero_jitter_gives_exactly_the_interval(void **state)
{
    (void)state;
    static const int64_t intervals[] = {1, 2, 10, 999, 30000, INT64_C(86400000)};
    uint64_t rng = 42;
    for (size_t i = 0; i < sizeof intervals / sizeof intervals[0]; i++)
        for (int k = 0; k < 1000; k++)
            assert_true(r2m_sched_delay(intervals[i], 0.0, &rng) == intervals[i]);
}

static void test_delay_stays_within_half_the_jitter_either_side(void **state)
{
    (void)state;
    static const int64_t intervals[] = {1, 2, 3, 10, 100, 1000, 30000, INT64_C(3600000)};
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < sizeof intervals / sizeof intervals[0]; i++) {
        int64_t iv = intervals[i];
        for (int j = 0; j <= 20; j++) {
            double jitter = j / 20.0;
            double lo = (double)iv * (1 - jitter / 2), hi = (double)iv * (1 + jitter / 2);
            for (int k = 0; k < 5000; k++) {
                int64_t d = r2m_sched_delay(iv, jitter, &rng);
                if (d < 1 || (double)d < lo - 1e-9 || (double)d > hi + 1e-9)
                    fail_msg("interval %lld jitter %.2f: delay %lld outside [%.3f, %.3f] or < 1",
                             (long long)iv, jitter, (long long)d, lo, hi);
            }
        }
    }
}

static void test_delay_spreads_over_the_whole_range_around_the_interval(void **state)
{
    (void)state;
    /* 10% jitter on 1 s: draws fill [950, 1050] and average 1000 */
    uint64_t rng = 7;
    int64_t min = INT64_MAX, max = INT64_MIN;
    double sum = 0;
    enum { N = 100000 };
    for (int k = 0; k < N; k++) {
        int64_t d = r2m_sched_delay(1000, 0.1, &rng);
        min = d < min ? d : min;
        max = d > max ? d : max;
        sum += (double)d;
    }
    assert_true(min >= 950 && min <= 952);
    assert_true(max >= 1048 && max <= 1050);
    double mean = sum / N;
    assert_true(mean > 999.0 && mean < 1001.0);
}

static void test_delay_is_never_below_one_millisecond(void **state)
{
    (void)state;
    uint64_t rng = 99;
    for (int k = 0; k < 10000; k++) {
        assert_true(r2m_sched_delay(1, 1.0, &rng) >= 1);
        assert_true(r2m_sched_delay(0, 0.5, &rng) >= 1);
        assert_true(r2m_sched_delay(-5, 0.0, &rng) >= 1);
    }
}

static void test_the_same_seed_gives_the_same_delays(void **state)
{
    (void)state;
    uint64_t a = 1234, b = 1234;
    int differs = 0;
    int64_t first = r2m_sched_delay(10000, 0.5, &a);
    assert_true(r2m_sched_delay(10000, 0.5, &b) == first);
    for (int k = 0; k < 1000; k++) {
        int64_t x = r2m_sched_delay(10000, 0.5, &a);
        assert_true(r2m_sched_delay(10000, 0.5, &b) == x);
        differs |= x != first;
    }
    assert_true(differs); /* the state advances: not one value over and over */
}

static void test_first_polls_spread_over_zero_to_jitter_times_interval(void **state)
{
    (void)state;
    static const double jitters[] = {0.01, 0.1, 0.5, 1.0};
    uint64_t rng = 2024;
    for (size_t j = 0; j < sizeof jitters / sizeof jitters[0]; j++) {
        double bound = 30000 * jitters[j];
        int64_t max = -1;
        int64_t min = INT64_MAX;
        for (int k = 0; k < 20000; k++) {
            int64_t f = r2m_sched_first(30000, jitters[j], &rng);
            if (f < 0 || (double)f >= bound)
                fail_msg("jitter %.2f: first offset %lld outside [0, %.0f)", jitters[j],
                         (long long)f, bound);
            max = f > max ? f : max;
            min = f < min ? f : min;
        }
        /* spread, not bunched at one end */
        assert_true((double)min < bound * 0.01 + 1);
        assert_true((double)max > bound * 0.99 - 1);
    }
    /* no jitter: everything starts at once */
    for (int k = 0; k < 100; k++)
        assert_true(r2m_sched_first(30000, 0.0, &rng) == 0);
}

static void test_time_arithmetic_saturates(void **state)
{
    (void)state;
    assert_true(r2m_sched_at(1, 2) == 3);
    assert_true(r2m_sched_at(INT64_MAX - 5, 10) == INT64_MAX);
    assert_true(r2m_sched_at(INT64_MIN + 5, -10) == INT64_MIN);
    assert_true(r2m_sched_at(INT64_MAX, INT64_MAX) == INT64_MAX);
    /* huge intervals and full jitter: no overflow (UBSan checks), no wrap */
    uint64_t rng = 7;
    for (int k = 0; k < 1000; k++) {
        assert_true(r2m_sched_delay(INT64_MAX, 1.0, &rng) >= INT64_MAX / 2);
        assert_true(r2m_sched_first(INT64_MAX, 1.0, &rng) >= 0);
    }
}

static void test_backoff_doubles_up_to_the_cap_without_overflow(void **state)
{
    (void)state;
    assert_true(r2m_sched_backoff(1000, 0, 300000) == 1000);
    assert_true(r2m_sched_backoff(1000, 1, 300000) == 2000);
    assert_true(r2m_sched_backoff(1000, 3, 300000) == 8000);
    assert_true(r2m_sched_backoff(1000, 100, 300000) == 300000);
    assert_true(r2m_sched_backoff(1000, UINT32_MAX, 300000) == 300000);
    assert_true(r2m_sched_backoff(INT64_MAX / 2 + 1, 5, INT64_MAX) == INT64_MAX);
    assert_true(r2m_sched_backoff(3, 70, INT64_MAX) == INT64_MAX);
    /* a delay already above the cap (jitter) comes down to it */
    assert_true(r2m_sched_backoff(5000, 1, 4000) == 4000);
}

/* Origins asking in random order, requests ending at random: with no more
 * origins than max_total, an origin with nothing in flight is always
 * admitted, no origin exceeds max_per_origin, the total never exceeds
 * max_total. */
static void test_an_idle_origin_is_always_admitted(void **state)
{
    (void)state;
    enum { C = 10, P = 8, N = 5 };
    size_t busy[N] = {0}, total = 0, n_busy = 0;
    uint64_t rng = 99;
    for (int step = 0; step < 200000; step++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        size_t o = rng % N;
        if ((rng >> 20) % 3 == 0) { /* one of o's requests ends */
            if (busy[o]) {
                total--;
                n_busy -= --busy[o] == 0;
            }
            continue;
        }
        int ok = r2m_sched_admit(total, C, busy[o], P, N - n_busy);
        if (busy[o] == 0)
            assert_true(ok);
        if (ok) {
            n_busy += busy[o]++ == 0;
            total++;
        }
        assert_true(busy[o] <= P);
        assert_true(total <= C);
    }
}

static void test_two_slow_origins_leave_a_slot_for_a_third(void **state)
{
    (void)state;
    /* A and B never finish and ask all the time; H asks now and then */
    size_t a = 0, bb = 0, total = 0;
    for (int round = 0; round < 50; round++) {
        size_t idle = 1 + (a == 0) + (bb == 0); /* H is idle between its polls */
        if (r2m_sched_admit(total, 10, a, 8, idle))
            a++, total++;
        idle = 1 + (a == 0) + (bb == 0);
        if (r2m_sched_admit(total, 10, bb, 8, idle))
            bb++, total++;
    }
    assert_true(a <= 8 && bb <= 8);
    assert_true(total == 9);
    assert_true(r2m_sched_admit(total, 10, 0, 8, 1)); /* H: idle, admitted */
    /* and H's second request must wait: no origin is idle then */
    assert_false(r2m_sched_admit(total + 1, 10, 1, 8, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_an_empty_schedule_has_nothing_due_ever, setup_sched,
                                        teardown_sched),
        cmocka_unit_test(test_free_accepts_null),
        cmocka_unit_test_setup_teardown(test_entries_come_out_in_due_order_and_only_when_due,
                                        setup_sched, teardown_sched),
        cmocka_unit_test_setup_teardown(test_equal_due_times_come_out_in_insertion_order,
                                        setup_sched, teardown_sched),
        cmocka_unit_test_setup_teardown(test_fifo_holds_across_interleaved_adds_and_pops,
                                        setup_sched, teardown_sched),
        cmocka_unit_test_setup_teardown(test_extreme_due_times_are_ordered, setup_sched,
                                        teardown_sched),
        cmocka_unit_test_setup_teardown(test_ten_thousand_random_inserts_come_out_sorted,
                                        setup_sched, teardown_sched),
        cmocka_unit_test_setup_teardown(test_ten_thousand_inserts_with_many_ties_keep_fifo,
                                        setup_sched, teardown_sched),
        cmocka_unit_test_setup_teardown(test_a_fake_clock_polls_each_endpoint_once_per_interval,
                                        setup_sched, teardown_sched),
        cmocka_unit_test(test_zero_jitter_gives_exactly_the_interval),
        cmocka_unit_test(test_delay_stays_within_half_the_jitter_either_side),
        cmocka_unit_test(test_delay_spreads_over_the_whole_range_around_the_interval),
        cmocka_unit_test(test_delay_is_never_below_one_millisecond),
        cmocka_unit_test(test_the_same_seed_gives_the_same_delays),
        cmocka_unit_test(test_first_polls_spread_over_zero_to_jitter_times_interval),
        cmocka_unit_test(test_time_arithmetic_saturates),
        cmocka_unit_test(test_backoff_doubles_up_to_the_cap_without_overflow),
        cmocka_unit_test(test_an_idle_origin_is_always_admitted),
        cmocka_unit_test(test_two_slow_origins_leave_a_slot_for_a_third),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
