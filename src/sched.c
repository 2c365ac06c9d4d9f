/* sched.c - timer heap for poll schedules. */
#include "r2m/sched.h"

#include <stdlib.h>

#include "r2m/buf.h"
#include "r2m/error.h"

struct entry {
    int64_t due;
    uint64_t order; /* insertion counter: FIFO among equal due times */
    uint32_t id;
};

struct r2m_sched {
    struct entry *heap;
    size_t n, cap;
    uint64_t counter;
};

int r2m_sched_new(struct r2m_sched **out)
{
    struct r2m_sched *s = calloc(1, sizeof *s);
    if (!s)
        return R2M_E_NOMEM;
    *out = s;
    return 0;
}

void r2m_sched_free(struct r2m_sched *s)
{
    if (!s)
        return;
    free(s->heap);
    free(s);
}

static int before(const struct entry *a, const struct entry *b)
{
    return a->due < b->due || (a->due == b->due && a->order < b->order);
}

int r2m_sched_add(struct r2m_sched *s, uint32_t id, int64_t due_ms)
{
    if (r2m_grow(&s->heap, &s->cap, s->n + 1, sizeof *s->heap))
        return R2M_E_NOMEM;
    struct entry e = {due_ms, s->counter++, id};
    size_t i = s->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&e, &s->heap[parent]))
            break;
        s->heap[i] = s->heap[parent];
        i = parent;
    }
    s->heap[i] = e;
    return 0;
}

int64_t r2m_sched_next(const struct r2m_sched *s)
{
    return s->n ? s->heap[0].due : INT64_MAX;
}

size_t r2m_sched_size(const struct r2m_sched *s)
{
    return s->n;
}

int r2m_sched_take(struct r2m_sched *s, uint32_t *id, int64_t *due_ms)
{
    if (!s->n)
        return 0;
    *due_ms = s->heap[0].due;
    return r2m_sched_pop_due(s, *due_ms, id);
}

int r2m_sched_pop_due(struct r2m_sched *s, int64_t now_ms, uint32_t *id)
{
    if (!s->n || s->heap[0].due > now_ms)
        return 0;
    *id = s->heap[0].id;
    struct entry last = s->heap[--s->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->n)
            break;
        if (c + 1 < s->n && before(&s->heap[c + 1], &s->heap[c]))
            c++;
        if (!before(&s->heap[c], &last))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->n)
        s->heap[i] = last;
    return 1;
}

static double uniform(uint64_t *rng)
{
    /* xorshift64*: good enough to spread schedules; not for secrets */
    uint64_t x = *rng ? *rng : 0x9e3779b97f4a7c15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *rng = x;
    return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) / (double)(1ull << 53);
}

/* A double to int64_t, saturating (the conversion is undefined outside). */
static int64_t clamp_ms(double v)
{
    if (v >= 9.2e18)
        return INT64_MAX;
    if (v <= -9.2e18)
        return INT64_MIN;
    return (int64_t)v;
}

int64_t r2m_sched_delay(int64_t interval_ms, double jitter, uint64_t *rng)
{
    double span = (double)interval_ms * jitter;
    int64_t off = clamp_ms((uniform(rng) - 0.5) * span);
    int64_t d = r2m_sched_at(interval_ms, off);
    return d < 1 ? 1 : d;
}

int64_t r2m_sched_first(int64_t interval_ms, double jitter, uint64_t *rng)
{
    int64_t d = clamp_ms(uniform(rng) * (double)interval_ms * jitter);
    return d < 0 ? 0 : d;
}

int64_t r2m_sched_at(int64_t base_ms, int64_t delay_ms)
{
    if (delay_ms > 0 && base_ms > INT64_MAX - delay_ms)
        return INT64_MAX;
    if (delay_ms < 0 && base_ms < INT64_MIN - delay_ms)
        return INT64_MIN;
    return base_ms + delay_ms;
}

int64_t r2m_sched_backoff(int64_t delay_ms, uint32_t failures, int64_t cap_ms)
{
    /* doubling by comparison, not by multiplying first: never overflows */
    for (uint32_t i = 0; i < failures && delay_ms < cap_ms; i++)
        delay_ms = delay_ms > cap_ms / 2 ? cap_ms : delay_ms * 2;
    return delay_ms > cap_ms ? cap_ms : delay_ms;
}

int r2m_sched_admit(size_t total, size_t max_total, size_t origin_busy, size_t max_per_origin,
                    size_t idle_origins)
{
    if (total >= max_total || origin_busy >= max_per_origin)
        return 0;
    /* an origin's first request needs only a free slot; a further one must
     * leave one free slot for every origin that has none in flight */
    return origin_busy == 0 || total + idle_origins < max_total;
}
