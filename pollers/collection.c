/* collection.c - poller for keyed collections: created / updated / deleted per item.
 *
 * Each poll streams the items (an array, or an object whose members are the
 * items) out of the parser one at a time: extracts every item's key,
 * removes the ignored members, writes the item's canonical text and
 * fingerprints it. The parser then drops the item's nodes, so a poll never
 * holds the whole document as a tree. The entries are put in key order and
 * merge-joined with the previous snapshot: a key only in the new one is
 * created, only in the old one deleted, in both with another fingerprint
 * updated. Events come out in key order and are handed to emit as one
 * batch; only when emit accepted them does the new snapshot replace the old
 * one (invariant 1). An unchanged poll emits and stores nothing and
 * allocates nothing once the buffers have grown; a body byte-identical to
 * the last accepted one is not even parsed.
 *
 * Both snapshots keep their keys and texts in one heap. The records of the
 * current snapshot lie below `committed`; a poll writes each item's record
 * after that, keeps it only when the item is new or changed, and otherwise
 * points the new entry at the current snapshot's record. So the heap holds
 * one copy of the collection plus the changes, not two copies. Records the
 * current snapshot no longer uses are garbage until compact() slides the
 * live ones down. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "r2m/diff.h"
#include "r2m/error.h"
#include "r2m/event.h"
#include "r2m/poller.h"
#include "r2m/topic.h"
#include "r2m/utf8.h"

#define MAX_ITEMS 5000000u
#define NONE      UINT32_MAX

/* One item of a snapshot. Its record in the heap at off is the key, a NUL,
 * the canonical text, a NUL. */
struct entry {
    uint32_t off;
    uint32_t key_len, item_len;
    uint32_t index; /* position in the response: messages, lookup hint */
    struct r2m_fp fp;
};
_Static_assert(sizeof(struct entry) == 32, "entries stay small: one per item, two snapshots");

struct snap {
    struct entry *e;
    size_t n, cap;
};

struct change {
    const struct entry *old, *nw; /* into cur / next; one may be NULL */
};

struct coll_state {
    int has;
    struct snap cur, next;
    struct r2m_buf heap; /* records of cur and next, see the top of the file */
    size_t committed;    /* end of cur's records */
    size_t garbage;      /* bytes below committed that cur does not use */
    size_t limit;        /* most record bytes of one snapshot (2 x max_body) */
    size_t next_bytes;   /* record bytes of next */
    uint32_t *order;     /* cur's entries by response position (cur.n of them) */
    size_t cap_order;
    size_t n_order;  /* valid entries of order: cur.n, or 0 without memory */
    size_t hint;     /* response position in cur expected to come next */
    size_t misses;   /* lookups this poll that the hint did not answer */
    uint32_t *match; /* per next entry: cur's entry with its key, or NONE */
    size_t cap_match;
    uint32_t *tmp; /* scratch of order_by_cur */
    size_t cap_tmp;
    struct change *changes; /* this poll's, for persist */
    size_t n_changes, cap_changes;
    int baseline; /* this poll stores every item (no previous snapshot) */
    const struct r2m_endpoint_cfg *cfg;
    struct r2m_buf key;     /* composite key under construction */
    struct r2m_buf invalid; /* restore: keys of stored items to forget, each
                               after its uint32_t length */
    uint64_t seq;
    int has_raw; /* raw: XXH3-64 of the last body on_body accepted */
    uint64_t raw;
};

static int coll_create(void **state, const struct r2m_endpoint_cfg *cfg)
{
    struct coll_state *s = calloc(1, sizeof *s);
    if (!s)
        return R2M_E_NOMEM;
    /* a snapshot holds canonical items and keys; canonical text is never
     * much longer than the body it came from. The heap holds at most cur,
     * garbage of up to a quarter of cur and the new records of next;
     * entries address it with 32-bit offsets. */
    s->limit = (size_t)cfg->max_body * 2 + 1024;
    size_t heap_max = s->limit > UINT32_MAX / 3 ? UINT32_MAX : s->limit * 3;
    r2m_buf_init(&s->heap, heap_max);
    r2m_buf_init(&s->key, 64 * 1024);
    r2m_buf_init(&s->invalid, heap_max);
    s->cfg = cfg;
    *state = s;
    return 0;
}

static void coll_destroy(void *state)
{
    struct coll_state *s = state;
    if (!s)
        return;
    free(s->cur.e);
    free(s->next.e);
    r2m_buf_free(&s->heap);
    r2m_buf_free(&s->key);
    r2m_buf_free(&s->invalid);
    free(s->order);
    free(s->match);
    free(s->tmp);
    free(s->changes);
    free(s);
}

static const char *key_of(const struct coll_state *s, const struct entry *e)
{
    return s->heap.data + e->off;
}

static const char *text_of(const struct coll_state *s, const struct entry *e)
{
    return s->heap.data + e->off + e->key_len + 1;
}

static size_t record_size(const struct entry *e)
{
    return (size_t)e->key_len + e->item_len + 2;
}

static int bytes_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

static int key_cmp(const struct coll_state *s, const struct entry *x, const struct entry *y)
{
    return bytes_cmp(key_of(s, x), x->key_len, key_of(s, y), y->key_len);
}

static int entry_cmp(const void *a, const void *b, void *s)
{
    return key_cmp(s, a, b);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q)
        return R2M_E_NOMEM;
    *p = q;
    *cap = n;
    return 0;
}

/* cur's entry for a key, or NULL. Most APIs list their items in the same
 * order every time, so the entry after the last one found (in response
 * order) is tried first; otherwise a binary search over the sorted keys. */
static const struct entry *find_cur(struct coll_state *s, const char *key, size_t key_len)
{
    const struct snap *cur = &s->cur;
    if (s->hint < s->n_order) {
        uint32_t j = s->order[s->hint];
        if (j < cur->n && bytes_cmp(key_of(s, &cur->e[j]), cur->e[j].key_len, key, key_len) == 0) {
            s->hint++;
            return &cur->e[j];
        }
    }
    s->misses++;
    size_t lo = 0, hi = cur->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct entry *e = &cur->e[mid];
        int c = bytes_cmp(key_of(s, e), e->key_len, key, key_len);
        if (c == 0) {
            s->hint = (size_t)e->index + 1;
            return e;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Rebuilds the lookup hint for a new cur; without memory for it every
 * lookup searches. */
static void build_order(struct coll_state *s)
{
    const struct snap *cur = &s->cur;
    s->n_order = 0;
    if (!cur->n || grow((void **)&s->order, &s->cap_order, cur->n, sizeof *s->order))
        return;
    /* response positions are 0..n-1, each once; a slot left unset by a
     * stray one only costs a missed hint */
    memset(s->order, 0, cur->n * sizeof *s->order);
    for (size_t j = 0; j < cur->n; j++)
        if (cur->e[j].index < cur->n)
            s->order[cur->e[j].index] = (uint32_t)j;
    s->n_order = cur->n;
}

struct by_off {
    uint32_t off, j;
};

static int by_off_cmp(const void *a, const void *b)
{
    const struct by_off *x = a, *y = b;
    return (x->off > y->off) - (x->off < y->off);
}

/* Slides cur's records down over the garbage, in heap order. Without
 * memory for the sort it simply leaves the garbage for next time. */
static void compact(struct coll_state *s)
{
    struct snap *cur = &s->cur;
    struct by_off *o = malloc((cur->n ? cur->n : 1) * sizeof *o);
    if (!o)
        return;
    for (size_t j = 0; j < cur->n; j++)
        o[j] = (struct by_off){cur->e[j].off, (uint32_t)j};
    qsort(o, cur->n, sizeof *o, by_off_cmp);
    size_t w = 0;
    for (size_t k = 0; k < cur->n; k++) {
        struct entry *e = &cur->e[o[k].j];
        size_t n = record_size(e);
        if (e->off != w)
            memmove(s->heap.data + w, s->heap.data + e->off, n);
        e->off = (uint32_t)w;
        w += n;
    }
    free(o);
    s->heap.len = s->committed = w;
    if (s->heap.data)
        s->heap.data[w] = '\0';
    s->garbage = 0;
}

/* Appends one key part; parts of a composite key are joined with ',' and
 * '%' and ',' inside a part are percent-encoded, so the joined form is
 * unambiguous. */
static int put_key_part(struct r2m_buf *k, const struct r2m_json *v, int composite)
{
    if (!composite)
        return r2m_buf_append(k, v->u.str, v->n);
    if (k->len && r2m_buf_putc(k, ','))
        return R2M_E_TOO_BIG;
    for (uint32_t i = 0; i < v->n; i++) {
        char c = v->u.str[i];
        int r = c == '%'   ? r2m_buf_puts(k, "%25")
                : c == ',' ? r2m_buf_puts(k, "%2C")
                           : r2m_buf_putc(k, c);
        if (r)
            return r;
    }
    return 0;
}

static const char *type_name(const struct r2m_json *v)
{
    static const char *const names[] = {"null",     "false",    "true",     "a number",
                                        "a string", "an array", "an object"};
    return v->type <= R2M_JSON_OBJECT ? names[v->type] : "?";
}

/* Starts collecting a poll's items into s->next, after cur's records. */
static void begin_items(struct coll_state *s)
{
    if (!s->has) {
        s->cur.n = s->n_order = 0;
        s->committed = s->garbage = 0;
    }
    s->next.n = 0;
    s->next_bytes = 0;
    s->hint = 0;
    s->misses = 0;
    s->heap.len = s->committed; /* drops what a failed poll left */
    if (s->heap.data)
        s->heap.data[s->heap.len] = '\0';
}

/* One response's items on their way into s->next. The first error is kept
 * and reported after the parse, so that a failed poll reports what it
 * reported when the whole document was parsed first (a syntax error, then
 * error_if, then the items pointer, then the item); later items are
 * skipped. */
struct take {
    struct coll_state *s;
    const struct r2m_endpoint_cfg *cfg;
    size_t base; /* items of earlier pages */
    size_t n;    /* items of this page */
    int rc;
    char err[1024];
};

static const char *items_name(const struct r2m_endpoint_cfg *cfg)
{
    return *cfg->items ? cfg->items : "the root";
}

/* The item's key into s->key. member is the item's member name for an
 * object of items, NULL for an array. */
static int item_key(struct take *t, size_t i, const char *member, size_t member_len,
                    struct r2m_json *item)
{
    struct coll_state *s = t->s;
    const struct r2m_endpoint_cfg *cfg = t->cfg;
    int r = 0;
    r2m_buf_reset(&s->key);
    if (cfg->n_key == 0) {
        /* no key: pointers - the member names of an object are the keys */
        if (!member) {
            snprintf(t->err, sizeof t->err,
                     "items at %s is an array, so each item needs a key: set key: to a "
                     "JSON Pointer inside an item, e.g. key: /id",
                     items_name(cfg));
            return R2M_E_INVALID;
        }
        r = r2m_buf_append(&s->key, member, member_len);
    } else {
        for (size_t k = 0; k < cfg->n_key && !r; k++) {
            const struct r2m_json *v = r2m_json_pointer(item, cfg->key[k]);
            if (!v) {
                snprintf(t->err, sizeof t->err, "item %zu has no key at %s", i, cfg->key[k]);
                return R2M_E_NOT_FOUND;
            }
            if (v->type != R2M_JSON_STRING && v->type != R2M_JSON_NUMBER) {
                snprintf(t->err, sizeof t->err,
                         "key %s of item %zu is %s; a key must be a string or a number",
                         cfg->key[k], i, type_name(v));
                return R2M_E_INVALID;
            }
            if (v->n == 0) {
                snprintf(t->err, sizeof t->err, "key %s of item %zu is an empty string",
                         cfg->key[k], i);
                return R2M_E_INVALID;
            }
            r = put_key_part(&s->key, v, cfg->n_key > 1);
        }
    }
    if (r) {
        snprintf(t->err, sizeof t->err, "key of item %zu is too long", i);
        return r;
    }
    if (s->key.len == 0) {
        snprintf(t->err, sizeof t->err, "item %zu has an empty key", i);
        return R2M_E_INVALID;
    }
    return 0;
}

/* Writes the item's record at the end of the heap and adds its entry to
 * next; an item that cur holds unchanged shares cur's record instead. */
static int item_record(struct coll_state *s, size_t i, struct r2m_json *item)
{
    struct r2m_buf *h = &s->heap;
    struct snap *nx = &s->next;
    size_t off = h->len;
    int r;
    if (off > UINT32_MAX || s->key.len > UINT32_MAX)
        return R2M_E_TOO_BIG;
    if ((r = r2m_buf_append(h, s->key.data, s->key.len + 1)) || (r = r2m_json_canonical(item, h)) ||
        (r = r2m_buf_putc(h, '\0')))
        goto undo;
    size_t item_off = off + s->key.len + 1;
    size_t item_len = h->len - 1 - item_off;
    if (item_len > UINT32_MAX) {
        r = R2M_E_TOO_BIG;
        goto undo;
    }
    struct entry e = {
        .off = (uint32_t)off,
        .key_len = (uint32_t)s->key.len,
        .item_len = (uint32_t)item_len,
        .index = (uint32_t)i,
        .fp = r2m_json_fingerprint(h->data + item_off, item_len),
    };
    const struct entry *old = find_cur(s, s->key.data, s->key.len);
    if (old && old->fp.hi == e.fp.hi && old->fp.lo == e.fp.lo) {
        e.off = old->off; /* unchanged: share cur's record */
        h->len = off;
        h->data[off] = '\0';
    }
    s->next_bytes += record_size(&e);
    if (s->next_bytes > s->limit) {
        r = R2M_E_TOO_BIG;
        goto undo;
    }
    if ((r = grow((void **)&nx->e, &nx->cap, nx->n + 1, sizeof *nx->e)) ||
        (r = grow((void **)&s->match, &s->cap_match, nx->n + 1, sizeof *s->match)))
        goto undo;
    s->match[nx->n] = old ? (uint32_t)(old - s->cur.e) : NONE;
    nx->e[nx->n++] = e;
    return 0;
undo:
    h->len = off;
    if (h->data)
        h->data[off] = '\0';
    return r;
}

/* r2m_json_item_fn: one item of the response into s->next. */
static int take_item(void *ctx, size_t k, const char *member, size_t member_len,
                     struct r2m_json *item)
{
    struct take *t = ctx;
    size_t i = t->base + k; /* position across all pages, for messages */
    t->n = k + 1;
    if (t->rc || i >= MAX_ITEMS)
        return 0;
    int r = item_key(t, i, member, member_len, item);
    if (!r) {
        r2m_json_remove(item, t->cfg->ignore, t->cfg->n_ignore);
        if ((r = item_record(t->s, i, item)))
            snprintf(t->err, sizeof t->err,
                     "canonical items larger than the snapshot limit (2 x max_body)");
    }
    t->rc = r;
    return 0;
}

static int fresh_cmp(const void *a, const void *b, void *ctx)
{
    const struct coll_state *s = ctx;
    return key_cmp(s, &s->next.e[*(const uint32_t *)a], &s->next.e[*(const uint32_t *)b]);
}

/* Puts s->next in key order without sorting it: an item whose key cur
 * holds goes where cur has that key (cur is sorted), and only the new keys
 * are sorted and merged in. Returns nonzero, with next untouched, when it
 * finds a duplicate key (the caller sorts and reports it) or has no memory. */
static int order_by_cur(struct coll_state *s)
{
    struct snap *nx = &s->next;
    size_t n = nx->n, m = s->cur.n;
    if (grow((void **)&s->tmp, &s->cap_tmp, m + 2 * n, sizeof *s->tmp))
        return R2M_E_NOMEM;
    uint32_t *slot = s->tmp, *perm = slot + m, *fresh = perm + n;
    size_t n_fresh = 0;
    memset(slot, 0xff, m * sizeof *slot); /* NONE */
    for (size_t k = 0; k < n; k++) {
        uint32_t j = s->match[k];
        if (j == NONE)
            fresh[n_fresh++] = (uint32_t)k;
        else if (slot[j] != NONE)
            return R2M_E_INVALID;
        else
            slot[j] = (uint32_t)k;
    }
    qsort_r(fresh, n_fresh, sizeof *fresh, fresh_cmp, s);
    for (size_t f = 1; f < n_fresh; f++)
        if (key_cmp(s, &nx->e[fresh[f - 1]], &nx->e[fresh[f]]) == 0)
            return R2M_E_INVALID;
    /* perm[t]: the entry that goes to position t */
    size_t t = 0, f = 0;
    for (size_t j = 0; j < m; j++) {
        if (slot[j] == NONE)
            continue;
        while (f < n_fresh && key_cmp(s, &nx->e[fresh[f]], &s->cur.e[j]) < 0)
            perm[t++] = fresh[f++];
        perm[t++] = slot[j];
    }
    while (f < n_fresh)
        perm[t++] = fresh[f++];
    /* apply it in place, one cycle at a time; a done position gets perm[t] = t */
    for (t = 0; t < n; t++) {
        if (perm[t] == t)
            continue;
        struct entry x = nx->e[t];
        size_t at = t;
        for (;;) {
            size_t from = perm[at];
            perm[at] = (uint32_t)at;
            if (from == t) {
                nx->e[at] = x;
                break;
            }
            nx->e[at] = nx->e[from];
            at = from;
        }
    }
    return 0;
}

/* Sorts s->next by key and refuses duplicate keys. */
static int finish_items(struct coll_state *s, const struct r2m_endpoint_cfg *cfg, char *err,
                        size_t errlen)
{
    struct snap *nx = &s->next;
    /* most APIs list items in a stable order; sort only when needed */
    int sorted = 1;
    for (size_t i = 1; i < nx->n && sorted; i++)
        sorted = key_cmp(s, &nx->e[i - 1], &nx->e[i]) < 0;
    if (sorted || order_by_cur(s) == 0)
        return 0; /* both leave no equal neighbours */
    qsort_r(nx->e, nx->n, sizeof *nx->e, entry_cmp, s);
    for (size_t i = 1; i < nx->n; i++) {
        if (key_cmp(s, &nx->e[i - 1], &nx->e[i]) == 0) {
            uint32_t a = nx->e[i - 1].index, b = nx->e[i].index;
            snprintf(err, errlen, "duplicate key \"%.100s\" in items %u and %u of %s",
                     key_of(s, &nx->e[i]), a < b ? a : b, a < b ? b : a, items_name(cfg));
            return R2M_E_INVALID;
        }
    }
    return 0;
}

/* Adds one event (and its state message) to the batch. old/new may be NULL. */
/* Queues the retained state message of one item: its canonical text, or an
 * empty message (text NULL) that clears the retained state of a deleted item. */
static int add_state(const struct r2m_endpoint_cfg *cfg, struct r2m_poll_env *env,
                     struct r2m_topic_vars *tv, const char *text, size_t len, char *err,
                     size_t errlen)
{
    int r;
    r2m_buf_reset(&env->topic);
    tv->op = "state";
    if ((r = r2m_topic_expand(cfg->state_topic, tv, &env->topic))) {
        snprintf(err, errlen, "state_topic '%s' cannot be built for item \"%.100s\"",
                 cfg->state_topic, tv->key);
        return r;
    }
    if ((r = r2m_batch_add(&env->batch, env->topic.data, env->topic.len, text ? text : "",
                           text ? len : 0, 1, R2M_EVENT_TYPE_NONE))) {
        snprintf(err, errlen, "state messages of this poll exceed the batch limit");
        return r;
    }
    return 0;
}

static int add_event(struct coll_state *s, const struct r2m_endpoint_cfg *cfg,
                     struct r2m_poll_env *env, const struct entry *old, const struct entry *nw,
                     char *err, size_t errlen)
{
    const char *op = !old ? "created" : !nw ? "deleted" : "updated";
    const char *key = nw ? key_of(s, nw) : key_of(s, old);
    size_t key_len = nw ? nw->key_len : old->key_len; /* a key may hold NUL */
    struct r2m_json *before = NULL, *after = NULL;
    int r;
    /* re-read the new item from its canonical text: the parser dropped the
     * item's tree as soon as it was read */
    if (nw &&
        (r = r2m_json_parse(env->item_doc, text_of(s, nw), nw->item_len, &after, err, errlen))) {
        snprintf(err, errlen, "item \"%.100s\" unreadable: %s", key, r2m_strerror(r));
        return r;
    }
    if (old &&
        (r = r2m_json_parse(env->prev_doc, text_of(s, old), old->item_len, &before, err, errlen))) {
        snprintf(err, errlen, "stored item \"%.100s\" unreadable: %s", key, r2m_strerror(r));
        return r;
    }
    struct r2m_event ev = {
        .instance = env->cfg->instance,
        .endpoint = cfg->name,
        .op = op,
        .key = key,
        .key_len = key_len,
        .before = old ? text_of(s, old) : NULL,
        .before_len = old ? old->item_len : 0,
        .after = nw ? text_of(s, nw) : NULL,
        .after_len = nw ? nw->item_len : 0,
        .time_ms = env->wall_ms,
    };
    enum r2m_event_type type = !old  ? R2M_EVENT_ITEM_CREATED
                               : !nw ? R2M_EVENT_ITEM_DELETED
                                     : R2M_EVENT_ITEM_UPDATED;
    ev.type = r2m_event_type_name(type);
    switch (cfg->payload) {
    case R2M_PAYLOAD_PATCH:
        ev.fields = R2M_EVENT_PATCH;
        break;
    case R2M_PAYLOAD_AFTER:
        ev.fields = R2M_EVENT_AFTER;
        break;
    default:
        ev.fields = (old ? R2M_EVENT_BEFORE : 0) | (nw ? R2M_EVENT_AFTER : 0) |
                    (old && nw ? R2M_EVENT_PATCH : 0);
    }
    if (ev.fields & R2M_EVENT_PATCH) {
        r2m_buf_reset(&env->patch);
        if ((r = r2m_diff_patch(before, after, &env->patch))) {
            snprintf(err, errlen, "patch of item \"%.100s\" too large", key);
            return r;
        }
        ev.patch = env->patch.data;
        ev.patch_len = env->patch.len;
    }
    struct r2m_fp none = {0, 0};
    r2m_event_id(ev.id, env->epoch, cfg->name, key, key_len, op, old ? old->fp : none,
                 nw ? nw->fp : none, s->seq + s->n_changes + 1);
    r2m_buf_reset(&env->event);
    if ((r = r2m_event_render(&ev, &env->event))) {
        snprintf(err, errlen, "event for item \"%.100s\" not built: %s", key, r2m_strerror(r));
        return r;
    }
    struct r2m_topic_vars tv = {.prefix = env->cfg->mqtt.topic_prefix,
                                .endpoint = cfg->name,
                                .key = key,
                                .op = op,
                                .item = after ? after : before,
                                .key_len = key_len};
    r2m_buf_reset(&env->topic);
    if ((r = r2m_topic_expand(cfg->topic, &tv, &env->topic))) {
        snprintf(err, errlen,
                 "topic '%s' cannot be built for item \"%.100s\" (a {/pointer} is missing, empty "
                 "or not a scalar)",
                 cfg->topic, key);
        return r;
    }
    if ((r = r2m_batch_add(&env->batch, env->topic.data, env->topic.len, env->event.data,
                           env->event.len, 0, type)))
        goto full;
    if (!cfg->state_topic)
        return 0;
    return add_state(cfg, env, &tv, ev.after, ev.after_len, err, errlen);
full:
    snprintf(err, errlen, "events of this poll exceed the batch limit");
    return r;
}

/* Queues the quiet baseline's retained state messages, so that a late
 * subscriber sees every item, not only those changed since the start. */
static int add_baseline_states(struct coll_state *s, const struct r2m_endpoint_cfg *cfg,
                               struct r2m_poll_env *env, char *err, size_t errlen)
{
    /* the item's tree is needed only when the topic takes {/pointer}s */
    int needs_item = strstr(cfg->state_topic, "{/") != NULL;
    for (size_t i = 0; i < s->next.n; i++) {
        const struct entry *e = &s->next.e[i];
        const char *key = key_of(s, e);
        struct r2m_json *item = NULL;
        int r;
        if (needs_item &&
            (r = r2m_json_parse(env->item_doc, text_of(s, e), e->item_len, &item, err, errlen)))
            return r;
        struct r2m_topic_vars tv = {.prefix = env->cfg->mqtt.topic_prefix,
                                    .endpoint = cfg->name,
                                    .key = key,
                                    .item = item,
                                    .key_len = e->key_len};
        if ((r = add_state(cfg, env, &tv, text_of(s, e), e->item_len, err, errlen)))
            return r;
    }
    return 0;
}

/* next becomes cur; the old cur's records that next does not share
 * (before-images of updated and deleted items) become garbage, and the
 * heap is compacted once garbage exceeds a fifth of it. */
static void commit(struct coll_state *s)
{
    for (size_t i = 0; i < s->n_changes; i++)
        if (s->changes[i].old)
            s->garbage += record_size(s->changes[i].old);
    struct snap t = s->cur;
    s->cur = s->next;
    s->next = t;
    s->next.n = 0;
    s->has = 1;
    s->committed = s->heap.len;
    if (s->garbage > (s->committed - s->garbage) / 4)
        compact(s);
    build_order(s);
}

static int restore_item(void *ctx, const char *key, size_t key_len, struct r2m_fp fp,
                        const char *body, size_t body_len)
{
    struct coll_state *s = ctx;
    struct snap *sn = &s->cur;
    struct r2m_buf *h = &s->heap;
    int r;
    /* A state file written before invalid text was refused can hold such an
     * item. It could never be emitted (no event or topic is built from text
     * that is not UTF-8) and every poll touching it would fail: forget it,
     * so the item, if the API still lists it, comes back as created. */
    if (r2m_utf8_check(key, key_len, NULL) || r2m_utf8_check(body, body_len, NULL)) {
        if (key_len > UINT32_MAX)
            return R2M_E_TOO_BIG;
        uint32_t n = (uint32_t)key_len;
        if ((r = r2m_buf_append(&s->invalid, &n, sizeof n)))
            return r;
        return r2m_buf_append(&s->invalid, key, key_len);
    }
    if ((r = grow((void **)&sn->e, &sn->cap, sn->n + 1, sizeof *sn->e)))
        return r;
    if (h->len > UINT32_MAX || key_len > UINT32_MAX || body_len > UINT32_MAX)
        return R2M_E_TOO_BIG;
    struct entry *e = &sn->e[sn->n];
    e->index = (uint32_t)sn->n;
    e->fp = fp;
    e->off = (uint32_t)h->len;
    e->key_len = (uint32_t)key_len;
    e->item_len = (uint32_t)body_len;
    if ((r = r2m_buf_append(h, key, key_len)) || (r = r2m_buf_putc(h, '\0')) ||
        (r = r2m_buf_append(h, body ? body : "", body_len)) || (r = r2m_buf_putc(h, '\0')))
        return r;
    sn->n++;
    return 0;
}

static int coll_restore(void *state, const struct r2m_endpoint_cfg *cfg, struct r2m_store *store,
                        const struct r2m_store_endpoint *row, int *partial)
{
    struct coll_state *s = state;
    *partial = 0;
    s->cur.n = s->n_order = 0;
    s->committed = s->garbage = 0;
    s->has_raw = 0;
    r2m_buf_reset(&s->heap);
    r2m_buf_reset(&s->invalid);
    int r = r2m_store_items(store, cfg->name, restore_item, s);
    *partial = s->invalid.len > 0;
    /* the forgotten items leave the store too (after the walk over it) */
    for (size_t at = 0; !r && at < s->invalid.len;) {
        uint32_t n;
        memcpy(&n, s->invalid.data + at, sizeof n);
        r = r2m_store_item_delete(store, cfg->name, s->invalid.data + at + sizeof n, n);
        at += sizeof n + n;
    }
    r2m_buf_reset(&s->invalid);
    if (r)
        return r;
    s->committed = s->heap.len;
    build_order(s);
    s->seq = row->seq;
    s->has = 1; /* also for an empty collection: that was its baseline */
    return 0;
}

static int coll_persist(void *pctx, struct r2m_store *store)
{
    struct coll_state *s = pctx;
    const struct r2m_endpoint_cfg *cfg = s->cfg;
    const struct snap *nx = &s->next;
    struct r2m_fp none = {0, 0};
    int r = r2m_store_endpoint_put(store, cfg->name, r2m_poller_settings(cfg),
                                   s->seq + s->n_changes, NULL, 0, none);
    if (r)
        return r;
    if (s->baseline) {
        for (size_t i = 0; i < nx->n && !r; i++) {
            const struct entry *e = &nx->e[i];
            r = r2m_store_item_put(store, cfg->name, key_of(s, e), e->key_len, e->fp, text_of(s, e),
                                   e->item_len);
        }
        return r;
    }
    for (size_t i = 0; i < s->n_changes && !r; i++) {
        const struct entry *o = s->changes[i].old, *w = s->changes[i].nw;
        if (w)
            r = r2m_store_item_put(store, cfg->name, key_of(s, w), w->key_len, w->fp, text_of(s, w),
                                   w->item_len);
        else
            r = r2m_store_item_delete(store, cfg->name, key_of(s, o), o->key_len);
    }
    return r;
}

static int note_change(struct coll_state *s, const struct entry *old, const struct entry *nw)
{
    if (grow((void **)&s->changes, &s->cap_changes, s->n_changes + 1, sizeof *s->changes))
        return R2M_E_NOMEM;
    s->changes[s->n_changes++] = (struct change){old, nw};
    return 0;
}

/* Whether JSON Pointer p names something inside the items at `items` (then
 * the items must stay in the tree for it, and the page is not streamed). */
static int inside_items(const char *items, const char *p)
{
    size_t n = strlen(items);
    return p && strncmp(p, items, n) == 0 && p[n] == '/';
}

/* Parses one response and appends its items to s->next. *root_out gets the
 * parsed document (valid until the next parse of env->doc) without the
 * items; *n_items their number. */
static int take_page(struct coll_state *s, const struct r2m_endpoint_cfg *cfg,
                     struct r2m_poll_env *env, const char *body, size_t len,
                     struct r2m_json **root_out, size_t *n_items, char *err, size_t errlen)
{
    struct take t = {.s = s, .cfg = cfg, .base = s->next.n};
    struct r2m_json *root;
    int stream = !inside_items(cfg->items, cfg->error_if.pointer) &&
                 !(cfg->paginate.kind == R2M_PAGE_NEXT || cfg->paginate.kind == R2M_PAGE_CURSOR
                       ? inside_items(cfg->items, cfg->paginate.pointer)
                       : 0);
    r2m_json_doc_set_depth(env->doc, cfg->max_depth);
    int r = stream ? r2m_json_parse_items(env->doc, body, len, cfg->items, take_item, &t, &root,
                                          err, errlen)
                   : r2m_json_parse(env->doc, body, len, &root, err, errlen);
    if (r)
        return r;
    if ((r = r2m_poller_error_if(cfg, root, err, errlen)))
        return r;
    struct r2m_json *items = r2m_json_pointer(root, cfg->items);
    if (!items) {
        snprintf(err, errlen, "items pointer %s not found in the response; nothing deleted",
                 cfg->items);
        return R2M_E_NOT_FOUND;
    }
    if (items->type != R2M_JSON_ARRAY && items->type != R2M_JSON_OBJECT) {
        snprintf(err, errlen, "items at %s is %s, expected an array or an object", items_name(cfg),
                 type_name(items));
        return R2M_E_INVALID;
    }
    if (!stream) {
        int is_obj = items->type == R2M_JSON_OBJECT;
        for (size_t k = 0; k < items->n; k++) {
            struct r2m_json_member *m = is_obj ? &items->u.members[k] : NULL;
            take_item(&t, k, m ? m->key : NULL, m ? m->key_len : 0,
                      m ? &m->value : &items->u.items[k]);
        }
    }
    if (t.n > MAX_ITEMS - t.base) {
        snprintf(err, errlen, "more than %u items at %s", MAX_ITEMS, items_name(cfg));
        return R2M_E_TOO_BIG;
    }
    if (t.rc) {
        snprintf(err, errlen, "%s", t.err);
        return t.rc;
    }
    *root_out = root;
    *n_items = t.n;
    return 0;
}

/* Diffs s->next against s->cur, emits, and commits on success. */
static int diff_and_emit(struct coll_state *s, const struct r2m_endpoint_cfg *cfg,
                         struct r2m_poll_env *env, char *err, size_t errlen)
{
    int r;
    s->cfg = cfg; /* a reload that keeps this endpoint frees the config we were created with */
    if ((r = finish_items(s, cfg, err, errlen)))
        return r;
    r2m_json_doc_set_depth(env->prev_doc, cfg->max_depth);
    r2m_json_doc_set_depth(env->item_doc, cfg->max_depth);
    r2m_batch_reset(&env->batch);
    s->n_changes = 0;
    s->baseline = !s->has;
    if (!s->has && !cfg->initial_emit && !env->emit_initial) {
        /* quiet start: the first poll is the baseline, stored without events
         * (only the retained state of every item, when there is a state_topic) */
        if (cfg->state_topic && (r = add_baseline_states(s, cfg, env, err, errlen)))
            return r;
        if ((r = env->emit(env->emit_ctx, &env->batch, coll_persist, s, err, errlen)))
            return r;
        commit(s);
        return 0;
    }

    /* merge-join the sorted snapshots; events come out in key order */
    const struct snap *cur = &s->cur, *nx = &s->next;
    size_t i = 0, j = 0;
    size_t n_old = s->has ? cur->n : 0;
    while (i < n_old || j < nx->n) {
        const struct entry *o = i < n_old ? &cur->e[i] : NULL;
        const struct entry *w = j < nx->n ? &nx->e[j] : NULL;
        if (o && w && o->off == w->off) {
            i++, j++; /* one shared record: the same key, unchanged */
            continue;
        }
        int c = !o ? 1 : !w ? -1 : key_cmp(s, o, w);
        if (c == 0) {
            i++, j++;
            if (o->fp.hi == w->fp.hi && o->fp.lo == w->fp.lo)
                continue;
        } else if (c < 0) {
            i++;
            w = NULL;
        } else {
            j++;
            o = NULL;
        }
        if ((r = add_event(s, cfg, env, o, w, err, errlen)) || (r = note_change(s, o, w)))
            return r;
    }
    if (s->n_changes == 0 && s->has) {
        /* unchanged: keep the snapshot we have. When only the order of the
         * items changed, next holds the same records in the new order:
         * take it, so that the lookup hint follows the API's order. */
        if (s->misses)
            commit(s);
        return 0;
    }
    if ((r = env->emit(env->emit_ctx, &env->batch, coll_persist, s, err, errlen)))
        return r;
    s->seq += s->n_changes;
    commit(s);
    return 0;
}

static int coll_on_body(void *state, const struct r2m_endpoint_cfg *cfg, struct r2m_poll_env *env,
                        const char *body, size_t len, char *err, size_t errlen)
{
    struct coll_state *s = state;
    struct r2m_json *root;
    size_t n;
    /* the same bytes as the last accepted body make the same snapshot */
    uint64_t raw = XXH3_64bits(len ? body : "", len);
    if (s->has_raw && s->raw == raw)
        return 0;
    begin_items(s);
    int r = take_page(s, cfg, env, body, len, &root, &n, err, errlen);
    if (!r)
        r = diff_and_emit(s, cfg, env, err, errlen);
    s->has_raw = !r;
    s->raw = raw;
    return r;
}

/* The next cursor or URL at ptr into *out: a string or a number. Missing,
 * null, false and "" end the list (*out = NULL). Anything else (an object
 * such as HAL's {"href": ...}, an array, true) cannot be read as a next
 * page: the poll fails rather than taking it for the last page, which
 * would read as the deletion of every item on the pages after it. */
static int next_value(struct r2m_json *root, const char *ptr, const char **out, char *err,
                      size_t errlen)
{
    struct r2m_json *v = r2m_json_pointer(root, ptr);
    *out = NULL;
    if (!v || v->type == R2M_JSON_NULL || v->type == R2M_JSON_FALSE)
        return 0;
    if (v->type == R2M_JSON_STRING && memchr(v->u.str, '\0', v->n)) {
        /* as a C string it would name another page than the API did */
        snprintf(err, errlen, "next page value at %s contains a NUL (\\u0000)", ptr);
        return R2M_E_INVALID;
    }
    if (v->type == R2M_JSON_STRING || v->type == R2M_JSON_NUMBER) {
        *out = v->n ? v->u.str : NULL;
        return 0;
    }
    snprintf(err, errlen,
             "next page value at %s is %s, not a string or a number (null, false or \"\" end "
             "the list); pagination stops here, so nothing is taken as deleted",
             ptr, type_name(v));
    return R2M_E_INVALID;
}

static int coll_on_page(void *state, const struct r2m_endpoint_cfg *cfg, struct r2m_poll_env *env,
                        const char *body, size_t len, const struct r2m_page *pg,
                        struct r2m_page_next *next, char *err, size_t errlen)
{
    struct coll_state *s = state;
    struct r2m_json *root;
    size_t n;
    if (pg->index == 0)
        begin_items(s);
    next->url[0] = '\0';
    s->has_raw = 0; /* only on_body knows whole bodies */
    int r = take_page(s, cfg, env, body, len, &root, &n, err, errlen);
    if (r) {
        size_t k = strlen(err);
        snprintf(err + k, errlen - k, " (page %u)", pg->index + 1);
        return r;
    }
    const char *v = NULL;
    switch (cfg->paginate.kind) {
    case R2M_PAGE_LINK:
        return r2m_page_link(pg, next, err, errlen);
    case R2M_PAGE_NEXT:
    case R2M_PAGE_CURSOR:
        if ((r = next_value(root, cfg->paginate.pointer, &v, err, errlen))) {
            size_t k = strlen(err);
            snprintf(err + k, errlen - k, " (page %u)", pg->index + 1);
            return r;
        }
        if (!v)
            return 0;
        if (cfg->paginate.kind == R2M_PAGE_NEXT)
            return r2m_page_resolve(pg->url, v, next, err, errlen);
        return r2m_page_param(cfg->url, cfg->paginate.param, v, next, err, errlen);
    case R2M_PAGE_NUMBER: {
        if (n == 0)
            return 0; /* an empty page ends the list */
        char num[24];
        snprintf(num, sizeof num, "%lld", (long long)(cfg->paginate.start + pg->index + 1));
        return r2m_page_param(cfg->url, cfg->paginate.param, num, next, err, errlen);
    }
    }
    return 0;
}

static int coll_on_pages_done(void *state, const struct r2m_endpoint_cfg *cfg,
                              struct r2m_poll_env *env, char *err, size_t errlen)
{
    return diff_and_emit(state, cfg, env, err, errlen);
}

const struct r2m_poller_kind r2m_poller_collection = {
    .name = "collection",
    .create = coll_create,
    .destroy = coll_destroy,
    .restore = coll_restore,
    .on_page = coll_on_page,
    .on_pages_done = coll_on_pages_done,
    .on_body = coll_on_body,
};
