/* r2m/sched.h - poll schedule: a binary min-heap of (due time, endpoint id).
 *
 * Time is passed in (the loop's cached monotonic `now`, in ms); the module
 * never reads a clock, so tests step a fake one. Each id is in the heap at
 * most once per r2m_sched_add; an endpoint is re-added only when its poll
 * has finished, so a slow endpoint never piles up polls. */
#ifndef R2M_SCHED_H
#define R2M_SCHED_H

#include <stddef.h>
#include <stdint.h>

struct r2m_sched;

int r2m_sched_new(struct r2m_sched **out);
void r2m_sched_free(struct r2m_sched *s);

/* Schedules id at due_ms. R2M_E_NOMEM on failure. */
int r2m_sched_add(struct r2m_sched *s, uint32_t id, int64_t due_ms);
/* Earliest due time, or INT64_MAX when empty. */
int64_t r2m_sched_next(const struct r2m_sched *s);
/* Pops the earliest entry if it is due at now_ms: returns 1 and sets *id,
 * else 0. Entries with equal due times come out in insertion order. */
int r2m_sched_pop_due(struct r2m_sched *s, int64_t now_ms, uint32_t *id);
size_t r2m_sched_size(const struct r2m_sched *s);
/* Pops the earliest entry whatever its time (for rebuilding the schedule
 * after a reload): returns 1 with *id and *due_ms, or 0 when empty. */
int r2m_sched_take(struct r2m_sched *s, uint32_t *id, int64_t *due_ms);

/* The delay before the next poll: interval_ms, moved by a uniformly random
 * amount within +-jitter/2 of it (jitter is a fraction, 0.1 = 10%), never
 * below 1 ms. *rng is the caller's xorshift state (any non-zero seed). */
int64_t r2m_sched_delay(int64_t interval_ms, double jitter, uint64_t *rng);

/* Initial offset that spreads the first polls of many endpoints over
 * [0, jitter * interval). */
int64_t r2m_sched_first(int64_t interval_ms, double jitter, uint64_t *rng);

/* base_ms + delay_ms, saturating at INT64_MAX / INT64_MIN. */
int64_t r2m_sched_at(int64_t base_ms, int64_t delay_ms);

/* Backoff after `failures` consecutive failed polls: delay_ms doubled per
 * failure, never above cap_ms (and without overflowing on the way). */
int64_t r2m_sched_backoff(int64_t delay_ms, uint32_t failures, int64_t cap_ms);

/* The admission rule for one more request in flight (README guarantee
 * 8). total: requests in flight; origin_busy: those of the origin asking;
 * idle_origins: configured origins with none in flight. An origin may start
 * a request while it has fewer than max_per_origin in flight and the total
 * is below max_total; its first request needs nothing more, a further one
 * must leave one slot free for each idle origin. As long as there are no
 * more origins than max_total, total + idle_origins <= max_total therefore
 * holds, and an origin with nothing in flight can always start at once:
 * slow origins can delay each other, never an idle one. Returns 1 or 0. */
int r2m_sched_admit(size_t total, size_t max_total, size_t origin_busy, size_t max_per_origin,
                    size_t idle_origins);

#endif
