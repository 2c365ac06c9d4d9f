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

#endif
