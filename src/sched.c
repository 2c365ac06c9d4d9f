/* sched.c - timer heap for poll schedules. */
#include "r2m/sched.h"

#include <stdlib.h>

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
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        struct entry *h = realloc(s->heap, cap * sizeof *h);
        if (!h)
            return R2M_E_NOMEM;
        s->heap = h;
        s->cap = cap;
    }
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

int64_t r2m_sched_delay(int64_t interval_ms, double jitter, uint64_t *rng)
{
    double span = (double)interval_ms * jitter;
    int64_t d = interval_ms + (int64_t)((uniform(rng) - 0.5) * span);
    return d < 1 ? 1 : d;
}

int64_t r2m_sched_first(int64_t interval_ms, double jitter, uint64_t *rng)
{
    return (int64_t)(uniform(rng) * (double)interval_ms * jitter);
}
