/* collection.c - poller for keyed collections: created / updated / deleted per item.
 *
 * Each poll selects the items (an array, or an object whose members are the
 * items), extracts every item's key, removes the ignored members, writes the
 * item's canonical text into a snapshot blob and fingerprints it. The
 * entries are sorted by key and merge-joined with the previous snapshot:
 * a key only in the new one is created, only in the old one deleted, in both
 * with another fingerprint updated. Events come out in key order and are
 * handed to emit as one batch; only when emit accepted them does the new
 * snapshot replace the old one (invariant 1). An unchanged poll swaps
 * nothing and allocates nothing once the buffers have grown. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r2m/diff.h"
#include "r2m/error.h"
#include "r2m/event.h"
#include "r2m/poller.h"
#include "r2m/topic.h"

#define MAX_ITEMS 5000000u

struct entry {
    size_t key_off, item_off; /* into the snapshot's blob; both NUL-terminated */
    uint32_t key_len, item_len;
    uint32_t index;           /* position in the response, for error messages */
    struct r2m_fp fp;
};

struct snap {
    struct entry *e;
    size_t n, cap;
    struct r2m_buf blob;
};

struct change {
    const struct entry *old, *nw; /* into cur / next; one may be NULL */
};

struct coll_state {
    int has;
    struct snap cur, next;
    struct change *changes; /* this poll's, for persist */
    size_t n_changes, cap_changes;
    int baseline;           /* this poll stores every item (no previous snapshot) */
    const struct r2m_endpoint_cfg *cfg;
    unsigned pages;          /* pages collected into next in this poll */
    struct r2m_buf key;      /* composite key under construction */
    uint64_t seq;
};

static int coll_create(void **state, const struct r2m_endpoint_cfg *cfg)
{
    struct coll_state *s = calloc(1, sizeof *s);
    if (!s)
        return R2M_E_NOMEM;
    /* the blob holds canonical items and keys; canonical text is never
     * much longer than the body it came from */
    size_t max = (size_t)cfg->max_body * 2 + 1024;
    r2m_buf_init(&s->cur.blob, max);
    r2m_buf_init(&s->next.blob, max);
    r2m_buf_init(&s->key, 64 * 1024);
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
    r2m_buf_free(&s->cur.blob);
    r2m_buf_free(&s->next.blob);
    r2m_buf_free(&s->key);
    free(s->changes);
    free(s);
}

static const char *key_of(const struct snap *sn, const struct entry *e)
{
    return sn->blob.data + e->key_off;
}

static int key_cmp(const struct snap *a, const struct entry *x, const struct snap *b,
                   const struct entry *y)
{
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(key_of(a, x), key_of(b, y), n);
    if (c)
        return c;
    return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

static int entry_cmp(const void *a, const void *b, void *snap)
{
    return key_cmp(snap, a, snap, b);
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
        int r = c == '%' ? r2m_buf_puts(k, "%25")
                         : c == ',' ? r2m_buf_puts(k, "%2C") : r2m_buf_putc(k, c);
        if (r)
            return r;
    }
    return 0;
}

static const char *type_name(const struct r2m_json *v)
{
    static const char *const names[] = {"null",   "false", "true",  "a number",
                                        "a string", "an array", "an object"};
    return v->type <= R2M_JSON_OBJECT ? names[v->type] : "?";
}

/* Builds s->next from the items node. */
/* Starts collecting a poll's items into s->next. */
static void begin_items(struct coll_state *s)
{
    s->next.n = 0;
    s->pages = 0;
    r2m_buf_reset(&s->next.blob);
}

/* Appends the items of one response (one page) to s->next. */
static int add_items(struct coll_state *s, const struct r2m_endpoint_cfg *cfg,
                     struct r2m_json *items, char *err, size_t errlen)
{
    struct snap *nx = &s->next;
    size_t n = items->n, base = nx->n;
    if (n > MAX_ITEMS - base) {
        snprintf(err, errlen, "more than %u items at %s", MAX_ITEMS,
                 *cfg->items ? cfg->items : "the root");
        return R2M_E_TOO_BIG;
    }
    if (base + n > nx->cap) {
        size_t cap = nx->cap ? nx->cap : 64;
        while (cap < base + n)
            cap *= 2;
        struct entry *e = realloc(nx->e, cap * sizeof *e);
        if (!e)
            return R2M_E_NOMEM;
        nx->e = e;
        nx->cap = cap;
    }
    s->pages++;
    int is_obj = items->type == R2M_JSON_OBJECT;
    for (size_t k = 0; k < n; k++) {
        size_t i = base + k; /* position across all pages, for messages */
        struct r2m_json *item = is_obj ? &items->u.members[k].value : &items->u.items[k];
        struct entry *e = &nx->e[nx->n];
        int r;
        r2m_buf_reset(&s->key);
        if (cfg->n_key == 0) {
            /* no key: pointers - the member names of an object are the keys */
            if (!is_obj) {
                snprintf(err, errlen,
                         "items at %s is an array, so each item needs a key: set key: to a "
                         "JSON Pointer inside an item, e.g. key: /id",
                         *cfg->items ? cfg->items : "the root");
                return R2M_E_INVALID;
            }
            r = r2m_buf_append(&s->key, items->u.members[k].key, items->u.members[k].key_len);
        } else {
            r = 0;
            for (size_t k = 0; k < cfg->n_key && !r; k++) {
                const struct r2m_json *v = r2m_json_pointer(item, cfg->key[k]);
                if (!v) {
                    snprintf(err, errlen, "item %zu has no key at %s", i, cfg->key[k]);
                    return R2M_E_NOT_FOUND;
                }
                if (v->type != R2M_JSON_STRING && v->type != R2M_JSON_NUMBER) {
                    snprintf(err, errlen,
                             "key %s of item %zu is %s; a key must be a string or a number",
                             cfg->key[k], i, type_name(v));
                    return R2M_E_INVALID;
                }
                if (v->n == 0) {
                    snprintf(err, errlen, "key %s of item %zu is an empty string", cfg->key[k],
                             i);
                    return R2M_E_INVALID;
                }
                r = put_key_part(&s->key, v, cfg->n_key > 1);
            }
        }
        if (r) {
            snprintf(err, errlen, "key of item %zu is too long", i);
            return r;
        }
        if (s->key.len == 0) {
            snprintf(err, errlen, "item %zu has an empty key", i);
            return R2M_E_INVALID;
        }
        r2m_json_remove(item, cfg->ignore, cfg->n_ignore);
        e->index = (uint32_t)i;
        e->key_off = nx->blob.len;
        e->key_len = (uint32_t)s->key.len;
        if ((r = r2m_buf_append(&nx->blob, s->key.data, s->key.len + 1)))
            goto too_big;
        e->item_off = nx->blob.len;
        if ((r = r2m_json_canonical(item, &nx->blob)))
            goto too_big;
        e->item_len = (uint32_t)(nx->blob.len - e->item_off);
        if ((r = r2m_buf_putc(&nx->blob, '\0')))
            goto too_big;
        e->fp = r2m_json_fingerprint(nx->blob.data + e->item_off, e->item_len);
        nx->n++;
        continue;
    too_big:
        snprintf(err, errlen, "canonical items larger than the snapshot limit (2 x max_body)");
        return r;
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
        sorted = key_cmp(nx, &nx->e[i - 1], nx, &nx->e[i]) < 0;
    if (!sorted) {
        qsort_r(nx->e, nx->n, sizeof *nx->e, entry_cmp, nx);
    }
    for (size_t i = 1; i < nx->n; i++) {
        if (key_cmp(nx, &nx->e[i - 1], nx, &nx->e[i]) == 0) {
            uint32_t a = nx->e[i - 1].index, b = nx->e[i].index;
            snprintf(err, errlen, "duplicate key \"%.100s\" in items %u and %u of %s",
                     key_of(nx, &nx->e[i]), a < b ? a : b, a < b ? b : a,
                     *cfg->items ? cfg->items : "the root");
            return R2M_E_INVALID;
        }
    }
    return 0;
}

/* Adds one event (and its state message) to the batch. old/new may be NULL. */
static int add_event(struct coll_state *s, const struct r2m_endpoint_cfg *cfg,
                     struct r2m_poll_env *env, const struct entry *old, const struct entry *nw,
                     char *err, size_t errlen)
{
    const struct snap *cur = &s->cur, *nx = &s->next;
    const char *op = !old ? "created" : !nw ? "deleted" : "updated";
    const char *key = nw ? key_of(nx, nw) : key_of(cur, old);
    struct r2m_json *before = NULL, *after = NULL;
    int r;
    /* re-read the new item from its canonical text: the response's tree is
     * gone when the items came from several pages */
    if (nw && (r = r2m_json_parse(env->item_doc, nx->blob.data + nw->item_off, nw->item_len,
                                  &after, err, errlen))) {
        snprintf(err, errlen, "item \"%.100s\" unreadable: %s", key, r2m_strerror(r));
        return r;
    }
    if (old && (r = r2m_json_parse(env->prev_doc, cur->blob.data + old->item_off, old->item_len,
                                   &before, err, errlen))) {
        snprintf(err, errlen, "stored item \"%.100s\" unreadable: %s", key, r2m_strerror(r));
        return r;
    }
    struct r2m_event ev = {
        .instance = env->cfg->instance,
        .endpoint = cfg->name,
        .op = op,
        .key = key,
        .before = old ? cur->blob.data + old->item_off : NULL,
        .before_len = old ? old->item_len : 0,
        .after = nw ? nx->blob.data + nw->item_off : NULL,
        .after_len = nw ? nw->item_len : 0,
        .time_ms = env->wall_ms,
    };
    ev.type = !old ? "rest2mqtt.item.created"
                   : !nw ? "rest2mqtt.item.deleted" : "rest2mqtt.item.updated";
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
    r2m_event_id(ev.id, env->epoch, cfg->name, key, op, old ? old->fp : none, nw ? nw->fp : none,
                 s->seq + s->n_changes + 1);
    r2m_buf_reset(&env->event);
    if ((r = r2m_event_render(&ev, &env->event))) {
        snprintf(err, errlen, "event for item \"%.100s\" too large", key);
        return r;
    }
    struct r2m_topic_vars tv = {.prefix = env->cfg->mqtt.topic_prefix,
                                .endpoint = cfg->name,
                                .key = key,
                                .op = op,
                                .item = after ? after : before};
    r2m_buf_reset(&env->topic);
    if ((r = r2m_topic_expand(cfg->topic, &tv, &env->topic))) {
        snprintf(err, errlen,
                 "topic '%s' cannot be built for item \"%.100s\" (a {/pointer} is missing, empty "
                 "or not a scalar)",
                 cfg->topic, key);
        return r;
    }
    if ((r = r2m_batch_add(&env->batch, env->topic.data, env->topic.len, env->event.data,
                           env->event.len, 0)))
        goto full;
    if (!cfg->state_topic)
        return 0;
    r2m_buf_reset(&env->topic);
    tv.op = "state";
    if ((r = r2m_topic_expand(cfg->state_topic, &tv, &env->topic))) {
        snprintf(err, errlen, "state_topic '%s' cannot be built for item \"%.100s\"",
                 cfg->state_topic, key);
        return r;
    }
    /* retained current item; an empty retained message clears it */
    if ((r = r2m_batch_add(&env->batch, env->topic.data, env->topic.len, ev.after ? ev.after : "",
                           ev.after_len, 1)))
        goto full;
    return 0;
full:
    snprintf(err, errlen, "events of this poll exceed the batch limit");
    return r;
}

static void swap(struct coll_state *s)
{
    struct snap t = s->cur;
    s->cur = s->next;
    s->next = t;
    s->has = 1;
}

static int restore_item(void *ctx, const char *key, size_t key_len, struct r2m_fp fp,
                        const char *body, size_t body_len)
{
    struct snap *sn = ctx;
    if (sn->n == sn->cap) {
        size_t cap = sn->cap ? sn->cap * 2 : 256;
        struct entry *e = realloc(sn->e, cap * sizeof *e);
        if (!e)
            return R2M_E_NOMEM;
        sn->e = e;
        sn->cap = cap;
    }
    struct entry *e = &sn->e[sn->n];
    int r;
    e->index = (uint32_t)sn->n;
    e->fp = fp;
    e->key_off = sn->blob.len;
    e->key_len = (uint32_t)key_len;
    if ((r = r2m_buf_append(&sn->blob, key, key_len)) || (r = r2m_buf_putc(&sn->blob, '\0')))
        return r;
    e->item_off = sn->blob.len;
    e->item_len = (uint32_t)body_len;
    if ((r = r2m_buf_append(&sn->blob, body ? body : "", body_len)) ||
        (r = r2m_buf_putc(&sn->blob, '\0')))
        return r;
    sn->n++;
    return 0;
}

static int coll_restore(void *state, const struct r2m_endpoint_cfg *cfg, struct r2m_store *store,
                        const struct r2m_store_endpoint *row)
{
    struct coll_state *s = state;
    s->cur.n = 0;
    r2m_buf_reset(&s->cur.blob);
    int r = r2m_store_items(store, cfg->name, restore_item, &s->cur);
    if (r)
        return r;
    s->seq = row->seq;
    s->has = 1; /* also for an empty collection: that was its baseline */
    return 0;
}

static int coll_persist(void *pctx, struct r2m_store *store)
{
    struct coll_state *s = pctx;
    const struct r2m_endpoint_cfg *cfg = s->cfg;
    const struct snap *cur = &s->cur, *nx = &s->next;
    struct r2m_fp none = {0, 0};
    int r = r2m_store_endpoint_put(store, cfg->name, r2m_poller_settings(cfg),
                                   s->seq + s->n_changes, NULL, 0, none);
    if (r)
        return r;
    if (s->baseline) {
        for (size_t i = 0; i < nx->n && !r; i++) {
            const struct entry *e = &nx->e[i];
            r = r2m_store_item_put(store, cfg->name, key_of(nx, e), e->key_len, e->fp,
                                   nx->blob.data + e->item_off, e->item_len);
        }
        return r;
    }
    for (size_t i = 0; i < s->n_changes && !r; i++) {
        const struct entry *o = s->changes[i].old, *w = s->changes[i].nw;
        if (w)
            r = r2m_store_item_put(store, cfg->name, key_of(nx, w), w->key_len, w->fp,
                                   nx->blob.data + w->item_off, w->item_len);
        else
            r = r2m_store_item_delete(store, cfg->name, key_of(cur, o), o->key_len);
    }
    return r;
}

static int note_change(struct coll_state *s, const struct entry *old, const struct entry *nw)
{
    if (s->n_changes == s->cap_changes) {
        size_t cap = s->cap_changes ? s->cap_changes * 2 : 64;
        struct change *c = realloc(s->changes, cap * sizeof *c);
        if (!c)
            return R2M_E_NOMEM;
        s->changes = c;
        s->cap_changes = cap;
    }
    s->changes[s->n_changes++] = (struct change){old, nw};
    return 0;
}

/* Parses one response and appends its items to s->next. *root_out gets the
 * parsed document (valid until the next parse of env->doc). */
static int take_page(struct coll_state *s, const struct r2m_endpoint_cfg *cfg,
                     struct r2m_poll_env *env, const char *body, size_t len,
                     struct r2m_json **root_out, size_t *n_items, char *err, size_t errlen)
{
    struct r2m_json *root;
    r2m_json_doc_set_depth(env->doc, cfg->max_depth);
    int r = r2m_json_parse(env->doc, body, len, &root, err, errlen);
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
        snprintf(err, errlen, "items at %s is %s, expected an array or an object",
                 *cfg->items ? cfg->items : "the root", type_name(items));
        return R2M_E_INVALID;
    }
    *root_out = root;
    *n_items = items->n;
    return add_items(s, cfg, items, err, errlen);
}

/* Diffs s->next against s->cur, emits, and swaps on success. */
static int diff_and_emit(struct coll_state *s, const struct r2m_endpoint_cfg *cfg,
                         struct r2m_poll_env *env, char *err, size_t errlen)
{
    int r;
    if ((r = finish_items(s, cfg, err, errlen)))
        return r;
    r2m_json_doc_set_depth(env->prev_doc, cfg->max_depth);
    r2m_json_doc_set_depth(env->item_doc, cfg->max_depth);
    r2m_batch_reset(&env->batch);
    s->n_changes = 0;
    s->baseline = !s->has;
    if (!s->has && !cfg->initial_emit && !env->emit_initial) {
        /* quiet start: the first poll is the baseline, stored without events */
        if ((r = env->emit(env->emit_ctx, &env->batch, coll_persist, s, err, errlen)))
            return r;
        swap(s);
        return 0;
    }

    /* merge-join the sorted snapshots; events come out in key order */
    const struct snap *cur = &s->cur, *nx = &s->next;
    size_t i = 0, j = 0;
    size_t n_old = s->has ? cur->n : 0;
    while (i < n_old || j < nx->n) {
        const struct entry *o = i < n_old ? &cur->e[i] : NULL;
        const struct entry *w = j < nx->n ? &nx->e[j] : NULL;
        int c = !o ? 1 : !w ? -1 : key_cmp(cur, o, nx, w);
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
    if (s->n_changes == 0 && s->has)
        return 0; /* reordered or unchanged: keep the snapshot we have */
    if ((r = env->emit(env->emit_ctx, &env->batch, coll_persist, s, err, errlen)))
        return r;
    s->seq += s->n_changes;
    swap(s);
    return 0;
}

static int coll_on_body(void *state, const struct r2m_endpoint_cfg *cfg, struct r2m_poll_env *env,
                        const char *body, size_t len, char *err, size_t errlen)
{
    struct coll_state *s = state;
    struct r2m_json *root;
    size_t n;
    begin_items(s);
    int r = take_page(s, cfg, env, body, len, &root, &n, err, errlen);
    return r ? r : diff_and_emit(s, cfg, env, err, errlen);
}

/* A scalar's text as the next cursor or URL; NULL when it ends the list. */
static const char *next_value(struct r2m_json *root, const char *ptr)
{
    struct r2m_json *v = r2m_json_pointer(root, ptr);
    if (!v || (v->type != R2M_JSON_STRING && v->type != R2M_JSON_NUMBER) || v->n == 0)
        return NULL;
    return v->u.str;
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
    int r = take_page(s, cfg, env, body, len, &root, &n, err, errlen);
    if (r) {
        size_t k = strlen(err);
        snprintf(err + k, errlen - k, " (page %u)", pg->index + 1);
        return r;
    }
    const char *v = NULL;
    switch (cfg->paginate.kind) {
    case R2M_PAGE_LINK:
        if (pg->link_next)
            return r2m_page_resolve(pg->url, pg->link_next, next, err, errlen);
        return 0;
    case R2M_PAGE_NEXT:
        if ((v = next_value(root, cfg->paginate.pointer)))
            return r2m_page_resolve(pg->url, v, next, err, errlen);
        return 0;
    case R2M_PAGE_CURSOR:
        if ((v = next_value(root, cfg->paginate.pointer)))
            return r2m_page_param(cfg->url, cfg->paginate.param, v, next, err, errlen);
        return 0;
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
