/* probe.c - an endpoint's configuration guessed from sample answers. */
#include "r2m/probe.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r2m/error.h"
#include "r2m/http.h"
#include "r2m/page.h"
#include "r2m/yamltree.h"

/* ---- pointers -------------------------------------------------------------- */

int r2m_probe_pointer_segment(struct r2m_buf *out, const char *s, size_t n)
{
    int r = r2m_buf_putc(out, '/');
    for (size_t i = 0; !r && i < n; i++)
        r = s[i] == '~'   ? r2m_buf_puts(out, "~0")
            : s[i] == '/' ? r2m_buf_puts(out, "~1")
                          : r2m_buf_putc(out, s[i]);
    return r;
}

/* base + "/" + escaped seg into out (R2M_PROBE_PTR_MAX); -1 when it does
 * not fit or names a member that a pointer pattern cannot address. */
static int join(char *out, const char *base, const char *seg, size_t n)
{
    /* "*" reads as the wildcard, and the config refuses any segment that
     * starts with '*' in an exact pointer (items, key, paginate) */
    if (n && seg[0] == '*')
        return -1;
    if (memchr(seg, '\0', n))
        return -1;
    struct r2m_buf b;
    r2m_buf_init(&b, R2M_PROBE_PTR_MAX - 1);
    int r = r2m_buf_puts(&b, base);
    if (!r)
        r = r2m_probe_pointer_segment(&b, seg, n);
    if (!r)
        memcpy(out, b.data, b.len + 1);
    r2m_buf_free(&b);
    return r ? -1 : 0;
}

static size_t count_nodes(const struct r2m_json *v)
{
    size_t n = 1;
    if (v->type == R2M_JSON_ARRAY)
        for (uint32_t i = 0; i < v->n; i++)
            n += count_nodes(&v->u.items[i]);
    else if (v->type == R2M_JSON_OBJECT)
        for (uint32_t i = 0; i < v->n; i++)
            n += count_nodes(&v->u.members[i].value);
    return n;
}

/* ---- the collection ---------------------------------------------------------- */

struct cand {
    char ptr[R2M_PROBE_PTR_MAX];
    int object;
    size_t nodes;
};

static int has_member(const struct r2m_json *o, const char *k, uint32_t kn)
{
    for (uint32_t i = 0; i < o->n; i++)
        if (o->u.members[i].key_len == kn && !memcmp(o->u.members[i].key, k, kn))
            return 1;
    return 0;
}

/* An object of items: at least 3 members, all objects, sharing a member
 * name (two or so differently shaped objects are parts of a document). */
static int object_of_items(const struct r2m_json *v)
{
    if (v->n < 3)
        return 0;
    for (uint32_t i = 0; i < v->n; i++)
        if (v->u.members[i].value.type != R2M_JSON_OBJECT)
            return 0;
    const struct r2m_json *first = &v->u.members[0].value;
    for (uint32_t k = 0; k < first->n; k++) {
        const struct r2m_json_member *m = &first->u.members[k];
        uint32_t i = 1;
        while (i < v->n && has_member(&v->u.members[i].value, m->key, m->key_len))
            i++;
        if (i == v->n)
            return 1;
    }
    return 0;
}

/* Arrays are candidates but never entered: an item's own lists are not
 * addressable by a plain pointer and hold less than their parent. */
static void find_items(const struct r2m_json *v, const char *path, struct cand *best)
{
    if (v->type == R2M_JSON_ARRAY) {
        if (!v->n)
            return;
        for (uint32_t i = 0; i < v->n; i++)
            if (v->u.items[i].type != R2M_JSON_OBJECT)
                return;
        size_t n = count_nodes(v);
        if (n > best->nodes) {
            snprintf(best->ptr, sizeof best->ptr, "%s", path);
            best->object = 0;
            best->nodes = n;
        }
        return;
    }
    if (v->type != R2M_JSON_OBJECT)
        return;
    if (object_of_items(v)) {
        size_t n = count_nodes(v);
        if (n > best->nodes) {
            snprintf(best->ptr, sizeof best->ptr, "%s", path);
            best->object = 1;
            best->nodes = n;
        }
    }
    for (uint32_t i = 0; i < v->n; i++) {
        char sub[R2M_PROBE_PTR_MAX];
        const struct r2m_json_member *m = &v->u.members[i];
        if (join(sub, path, m->key, m->key_len) == 0)
            find_items(&m->value, sub, best);
    }
}

/* The items of a sample as a list of item pointers (NULL when the sample
 * has no such list); *keys gets the member names for an object of items. */
static const struct r2m_json *items_of(struct r2m_json *root, const struct r2m_probe_result *res)
{
    const struct r2m_json *v = r2m_json_pointer(root, res->items);
    if (!v || v->type != (res->items_object ? R2M_JSON_OBJECT : R2M_JSON_ARRAY))
        return NULL;
    return v;
}

static const struct r2m_json *item_at(const struct r2m_json *list, uint32_t i)
{
    return list->type == R2M_JSON_ARRAY ? &list->u.items[i] : &list->u.members[i].value;
}

/* ---- the key ------------------------------------------------------------------- */

/* Lower is more id-like. */
static int id_score(const char *k, size_t n)
{
    char s[64];
    if (n >= sizeof s)
        return 5;
    for (size_t i = 0; i < n; i++)
        s[i] = (char)tolower((unsigned char)k[i]);
    s[n] = '\0';
    static const char *const best[] = {"_id", "uuid", "guid", "uid", "key"};
    static const char *const names[] = {"name", "slug", "sku", "code", "number", "email", "handle"};
    if (!strcmp(s, "id"))
        return 0;
    for (size_t i = 0; i < sizeof best / sizeof *best; i++)
        if (!strcmp(s, best[i]))
            return 1;
    if (n > 2 && (!strcmp(s + n - 2, "id") || (n > 4 && !strcmp(s + n - 4, "uuid")) ||
                  (n > 3 && !strcmp(s + n - 3, "key"))))
        return 2;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcmp(s, names[i]))
            return 3;
    return 4;
}

struct member_ref {
    const char *key;
    uint32_t key_len;
    int score;
};

static int cmp_ref(const void *a, const void *b)
{
    const struct member_ref *x = a, *y = b;
    if (x->score != y->score)
        return x->score - y->score;
    if (x->key_len != y->key_len)
        return x->key_len < y->key_len ? -1 : 1;
    return memcmp(x->key, y->key, x->key_len);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static const struct r2m_json *member(const struct r2m_json *o, const char *k, uint32_t kn)
{
    for (uint32_t i = 0; i < o->n; i++)
        if (o->u.members[i].key_len == kn && !memcmp(o->u.members[i].key, k, kn))
            return &o->u.members[i].value;
    return NULL;
}

/* A key part as the bridge compares it (pollers/collection.c): the text
 * of a string or a number alike, so "1" and 1 are the same key there;
 * the caller joins parts with ',' ('%' and ',' encoded), '\0' encoded so
 * that the text can be NUL-terminated. */
static int put_key_text(struct r2m_buf *b, const struct r2m_json *v, int composite)
{
    int r = 0;
    for (uint32_t i = 0; i < v->n && !r; i++) {
        char c = v->u.str[i];
        r = c == '%'                ? r2m_buf_puts(b, "%25")
            : c == ',' && composite ? r2m_buf_puts(b, "%2C")
            : c == '\0'             ? r2m_buf_puts(b, "%00")
                                    : r2m_buf_putc(b, c);
    }
    return r;
}

/* The key values of every item of list, sorted, as NUL-separated key
 * texts in b and pointers in *vals (malloc'd). -1 when an item lacks a part
 * or has a non-scalar one. */
static int key_values(const struct r2m_json *list, const struct member_ref *parts, size_t np,
                      struct r2m_buf *b, char ***vals)
{
    r2m_buf_reset(b);
    size_t *off = malloc((list->n + 1) * sizeof *off);
    if (!off)
        return -1;
    int r = 0;
    for (uint32_t i = 0; i < list->n && !r; i++) {
        const struct r2m_json *it = item_at(list, i);
        off[i] = b->len;
        for (size_t p = 0; p < np && !r; p++) {
            const struct r2m_json *v =
                it->type == R2M_JSON_OBJECT ? member(it, parts[p].key, parts[p].key_len) : NULL;
            if (!v || (v->type != R2M_JSON_STRING && v->type != R2M_JSON_NUMBER) || !v->n)
                r = -1;
            else if ((p && r2m_buf_putc(b, ',')) || put_key_text(b, v, np > 1))
                r = -1;
        }
        if (!r && r2m_buf_putc(b, '\0'))
            r = -1;
    }
    char **v = r ? NULL : malloc((list->n + 1) * sizeof *v);
    if (!v) {
        free(off);
        return -1;
    }
    for (uint32_t i = 0; i < list->n; i++)
        v[i] = b->data + off[i];
    free(off);
    qsort(v, list->n, sizeof *v, cmp_str);
    *vals = v;
    return 0;
}

static size_t common(char **a, size_t na, char **b, size_t nb)
{
    size_t i = 0, j = 0, n = 0;
    while (i < na && j < nb) {
        int c = strcmp(a[i], b[j]);
        n += c == 0;
        i += c <= 0;
        j += c >= 0;
    }
    return n;
}

/* Whether parts make a key: present, scalar and unique in every item of
 * every sample, and stable (most values of the first sample still there in
 * the last one: a timestamp is unique too, but names nothing). */
static int is_key(struct r2m_json *const *lists, size_t ns, const struct member_ref *parts,
                  size_t np)
{
    struct r2m_buf b[2];
    char **vals[2] = {NULL, NULL};
    size_t nv[2] = {0, 0};
    int ok = 1;
    r2m_buf_init(&b[0], (size_t)1 << 30);
    r2m_buf_init(&b[1], (size_t)1 << 30);
    for (size_t s = 0; s < ns && ok; s++) {
        int slot = s == 0 ? 0 : 1;
        free(vals[slot]);
        vals[slot] = NULL;
        if (key_values(lists[s], parts, np, &b[slot], &vals[slot])) {
            ok = 0;
            break;
        }
        nv[slot] = lists[s]->n;
        for (size_t i = 1; i < nv[slot] && ok; i++)
            if (!strcmp(vals[slot][i - 1], vals[slot][i]))
                ok = 0;
    }
    if (ok && ns > 1 && nv[0] && nv[1] && common(vals[0], nv[0], vals[1], nv[1]) * 2 < nv[0])
        ok = 0;
    free(vals[0]);
    free(vals[1]);
    r2m_buf_free(&b[0]);
    r2m_buf_free(&b[1]);
    return ok;
}

#define KEY_CANDIDATES 12

/* Smallest combination first, id-like names first within a size. */
static void find_key(struct r2m_json *const *lists, size_t ns, struct r2m_probe_result *res)
{
    const struct r2m_json *first = item_at(lists[0], 0);
    struct member_ref c[KEY_CANDIDATES];
    size_t nc = 0;
    struct member_ref all[256];
    size_t na = 0;
    for (uint32_t i = 0; i < first->n && na < 256; i++) {
        const struct r2m_json_member *m = &first->u.members[i];
        if (m->value.type != R2M_JSON_STRING && m->value.type != R2M_JSON_NUMBER)
            continue;
        char tmp[R2M_PROBE_PTR_MAX];
        if (join(tmp, "", m->key, m->key_len))
            continue;
        all[na++] = (struct member_ref){m->key, m->key_len, id_score(m->key, m->key_len)};
    }
    qsort(all, na, sizeof *all, cmp_ref);
    nc = na < KEY_CANDIDATES ? na : KEY_CANDIDATES;
    memcpy(c, all, nc * sizeof *c);
    struct member_ref pick[R2M_PROBE_MAX_KEY];
    size_t np = 0;
    for (size_t i = 0; i < nc && !np; i++)
        if (is_key(lists, ns, &c[i], 1))
            pick[np++] = c[i];
    for (size_t i = 0; i < nc && !np; i++)
        for (size_t j = i + 1; j < nc && !np; j++) {
            struct member_ref two[2] = {c[i], c[j]};
            if (is_key(lists, ns, two, 2)) {
                memcpy(pick, two, sizeof two);
                np = 2;
            }
        }
    for (size_t i = 0; i < nc && !np; i++)
        for (size_t j = i + 1; j < nc && !np; j++)
            for (size_t k = j + 1; k < nc && !np; k++) {
                struct member_ref three[3] = {c[i], c[j], c[k]};
                if (is_key(lists, ns, three, 3)) {
                    memcpy(pick, three, sizeof three);
                    np = 3;
                }
            }
    for (size_t i = 0; i < np; i++)
        join(res->key[i], "", pick[i].key, pick[i].key_len);
    res->n_key = np;
    res->key_found = np > 0;
}

/* ---- volatile fields ---------------------------------------------------------- */

struct stat {
    char pattern[R2M_PROBE_PTR_MAX];
    size_t seen[R2M_PROBE_MAX_SAMPLES];
    size_t changed[R2M_PROBE_MAX_SAMPLES];
};

struct stats {
    struct stat *v;
    size_t n, cap;
    int nomem;
};

static void record(struct stats *st, const char *pattern, size_t t, int changed)
{
    struct stat *s = NULL;
    for (size_t i = st->n; i-- > 0;)
        if (!strcmp(st->v[i].pattern, pattern)) {
            s = &st->v[i];
            break;
        }
    if (!s) {
        if (st->n == st->cap) {
            size_t cap = st->cap ? st->cap * 2 : 32;
            struct stat *v = realloc(st->v, cap * sizeof *v);
            if (!v) {
                st->nomem = 1;
                return;
            }
            st->v = v;
            st->cap = cap;
        }
        s = &st->v[st->n++];
        memset(s, 0, sizeof *s);
        snprintf(s->pattern, sizeof s->pattern, "%s", pattern);
    }
    s->seen[t]++;
    s->changed[t] += changed != 0;
}

static void diff_walk(const struct r2m_json *a, const struct r2m_json *b, const char *path,
                      size_t t, struct stats *st)
{
    char sub[R2M_PROBE_PTR_MAX];
    if (a->type == R2M_JSON_OBJECT && b->type == R2M_JSON_OBJECT) {
        uint32_t i = 0, j = 0;
        while (i < a->n || j < b->n) {
            const struct r2m_json_member *ma = i < a->n ? &a->u.members[i] : NULL;
            const struct r2m_json_member *mb = j < b->n ? &b->u.members[j] : NULL;
            int c;
            if (!ma)
                c = 1;
            else if (!mb)
                c = -1;
            else {
                uint32_t n = ma->key_len < mb->key_len ? ma->key_len : mb->key_len;
                c = memcmp(ma->key, mb->key, n);
                if (!c)
                    c = ma->key_len < mb->key_len ? -1 : ma->key_len > mb->key_len;
            }
            const struct r2m_json_member *m = c <= 0 ? ma : mb;
            if (join(sub, path, m->key, m->key_len) == 0) {
                if (c == 0)
                    diff_walk(&ma->value, &mb->value, sub, t, st);
                else
                    record(st, sub, t, 1); /* there in one sample only */
            }
            i += c <= 0;
            j += c >= 0;
        }
        return;
    }
    if (a->type == R2M_JSON_ARRAY && b->type == R2M_JSON_ARRAY && a->n == b->n) {
        if (strlen(path) + 3 > sizeof sub)
            return;
        snprintf(sub, sizeof sub, "%s/*", path);
        for (uint32_t i = 0; i < a->n; i++)
            diff_walk(&a->u.items[i], &b->u.items[i], sub, t, st);
        return;
    }
    record(st, path, t, !r2m_json_equal(a, b));
}

struct keyed {
    char *key;
    const struct r2m_json *item;
};

static int cmp_keyed(const void *a, const void *b)
{
    return strcmp(((const struct keyed *)a)->key, ((const struct keyed *)b)->key);
}

/* Each item's key text (the member name for an object of items) in b. */
static struct keyed *keyed_items(const struct r2m_json *list, const struct r2m_probe_result *res,
                                 struct r2m_buf *b)
{
    struct keyed *k = calloc(list->n + 1, sizeof *k);
    size_t *off = calloc(list->n + 1, sizeof *off);
    int bad = !k || !off;
    r2m_buf_reset(b);
    for (uint32_t i = 0; i < list->n && !bad; i++) {
        const struct r2m_json *it = item_at(list, i);
        off[i] = b->len;
        if (res->items_object)
            bad = r2m_json_quote(b, list->u.members[i].key, list->u.members[i].key_len) != 0;
        for (size_t p = 0; p < res->n_key && !bad; p++) {
            const struct r2m_json *v = r2m_json_pointer((struct r2m_json *)it, res->key[p]);
            bad = !v || r2m_json_canonical(v, b) || r2m_buf_putc(b, '\n');
        }
        bad = bad || r2m_buf_putc(b, '\0');
        k[i].item = it;
    }
    for (uint32_t i = 0; i < list->n && !bad; i++)
        k[i].key = b->data + off[i];
    free(off);
    if (bad) {
        free(k);
        return NULL;
    }
    qsort(k, list->n, sizeof *k, cmp_keyed);
    return k;
}

/* Items of two samples matched by key, each pair diffed. */
static void diff_items(const struct r2m_json *la, const struct r2m_json *lb,
                       const struct r2m_probe_result *res, size_t t, struct stats *st)
{
    struct r2m_buf ba, bb;
    r2m_buf_init(&ba, (size_t)1 << 30);
    r2m_buf_init(&bb, (size_t)1 << 30);
    struct keyed *ka = keyed_items(la, res, &ba), *kb = keyed_items(lb, res, &bb);
    if (ka && kb) {
        size_t i = 0, j = 0;
        while (i < la->n && j < lb->n) {
            int c = strcmp(ka[i].key, kb[j].key);
            if (!c)
                diff_walk(ka[i].item, kb[j].item, "", t, st);
            i += c <= 0;
            j += c >= 0;
        }
    }
    free(ka);
    free(kb);
    r2m_buf_free(&ba);
    r2m_buf_free(&bb);
}

static int cmp_vol(const void *a, const void *b)
{
    return strcmp(((const struct r2m_probe_volatile *)a)->pattern,
                  ((const struct r2m_probe_volatile *)b)->pattern);
}

/* Volatile: changed in at least 90% of its instances in all transitions
 * but a third of them (a slow clock may tick between some polls only). */
static void pick_volatile(const struct stats *st, struct r2m_probe_result *res)
{
    size_t nt = res->n_transitions, need = nt - nt / 3;
    for (size_t i = 0; i < st->n && res->n_vol < R2M_PROBE_MAX_IGNORE; i++) {
        const struct stat *s = &st->v[i];
        unsigned in = 0, minpct = 100;
        for (size_t t = 0; t < nt; t++) {
            if (!s->seen[t])
                continue;
            unsigned pct = (unsigned)(s->changed[t] * 100 / s->seen[t]);
            if (pct >= 90) {
                in++;
                minpct = pct < minpct ? pct : minpct;
            }
        }
        if (!need || in < need || !s->pattern[0])
            continue;
        struct r2m_probe_volatile *v = &res->vol[res->n_vol++];
        snprintf(v->pattern, sizeof v->pattern, "%s", s->pattern);
        v->min_pct = minpct;
        v->changed_in = in;
    }
    qsort(res->vol, res->n_vol, sizeof *res->vol, cmp_vol);
    /* a member under a volatile one is covered by it */
    size_t w = 0;
    for (size_t i = 0; i < res->n_vol; i++) {
        size_t pl = w ? strlen(res->vol[w - 1].pattern) : 0;
        if (w && !strncmp(res->vol[i].pattern, res->vol[w - 1].pattern, pl) &&
            res->vol[i].pattern[pl] == '/')
            continue;
        res->vol[w++] = res->vol[i];
    }
    res->n_vol = w;
    for (size_t i = 0; i < res->n_vol; i++) {
        struct r2m_probe_volatile *v = &res->vol[i];
        struct r2m_buf b;
        r2m_buf_init(&b, sizeof v->shown - 1);
        if ((res->collection && r2m_buf_printf(&b, "%s/*", res->items)) ||
            r2m_buf_puts(&b, v->pattern))
            memcpy(v->shown, v->pattern, strlen(v->pattern) + 1); /* too long to show whole */
        else
            memcpy(v->shown, b.data, b.len + 1);
        r2m_buf_free(&b);
    }
}

/* ---- pagination ----------------------------------------------------------------- */

static void norm_name(const char *k, size_t n, char *out, size_t outlen)
{
    size_t w = 0;
    for (size_t i = 0; i < n && w + 1 < outlen; i++)
        if (isalnum((unsigned char)k[i]))
            out[w++] = (char)tolower((unsigned char)k[i]);
    out[w] = '\0';
}

static int url_like(const struct r2m_json *v)
{
    if (v->type != R2M_JSON_STRING || !v->n)
        return 0;
    return !strncmp(v->u.str, "http://", 7) || !strncmp(v->u.str, "https://", 8) ||
           v->u.str[0] == '/' || v->u.str[0] == '?';
}

/* Looks for a next-page URL or cursor member outside the items. */
static void find_page_member(const struct r2m_json *v, const char *path, const char *parent,
                             int depth, struct r2m_probe_result *res)
{
    static const char *const next_names[] = {"next",     "nexturl",     "nextlink",
                                             "nextpage", "nextpageurl", "odatanextlink",
                                             "nexthref", "nextpagelink"};
    static const struct {
        const char *name, *param;
    } cursors[] = {{"nextcursor", "cursor"},
                   {"cursor", "cursor"},
                   {"endcursor", "cursor"},
                   {"next", "cursor"},
                   {"nextpagetoken", "pageToken"},
                   {"nexttoken", "token"},
                   {"continuationtoken", "continuationToken"},
                   {"after", "after"}};
    if (v->type != R2M_JSON_OBJECT || depth > 4 || res->paginate)
        return;
    if (res->collection && !strcmp(path, res->items))
        return;
    for (uint32_t i = 0; i < v->n && !res->paginate; i++) {
        const struct r2m_json_member *m = &v->u.members[i];
        char name[64], sub[R2M_PROBE_PTR_MAX];
        norm_name(m->key, m->key_len, name, sizeof name);
        if (join(sub, path, m->key, m->key_len))
            continue;
        int is_next = 0;
        for (size_t k = 0; k < sizeof next_names / sizeof *next_names; k++)
            is_next |= !strcmp(name, next_names[k]);
        if ((is_next || (!strcmp(name, "href") && !strcmp(parent, "next"))) &&
            url_like(&m->value)) {
            res->paginate = R2M_PROBE_PAGE_NEXT;
            snprintf(res->page_ptr, sizeof res->page_ptr, "%s", sub);
            return;
        }
        for (size_t k = 0; k < sizeof cursors / sizeof *cursors; k++)
            if (!strcmp(name, cursors[k].name) && !url_like(&m->value) &&
                ((m->value.type == R2M_JSON_STRING && m->value.n &&
                  !memmem(m->value.u.str, m->value.n, "://", 3)) || /* ftp://..., no cursor */
                 m->value.type == R2M_JSON_NUMBER)) {
                res->paginate = R2M_PROBE_PAGE_CURSOR;
                snprintf(res->page_ptr, sizeof res->page_ptr, "%s", sub);
                snprintf(res->page_param, sizeof res->page_param, "%s", cursors[k].param);
                return;
            }
        find_page_member(&m->value, sub, name, depth + 1, res);
    }
}

/* Whether the next page u[0..n) (absolute, "//host..." or a path) is on
 * base's origin: the bridge follows pages there only and fails the poll
 * otherwise. Else its origin (or the URL, cut) goes into res->page_foreign. */
static int same_origin(const char *base, const char *u, size_t n, struct r2m_probe_result *res)
{
    char next[2048], a[R2M_HTTP_ORIGIN_MAX], b[R2M_HTTP_ORIGIN_MAX];
    size_t sn = 0; /* the length of u's scheme, 0 for none */
    while (sn < n && (isalpha((unsigned char)u[sn]) ||
                      (sn && (isdigit((unsigned char)u[sn]) || memchr("+.-", u[sn], 3)))))
        sn++;
    sn = sn < n && u[sn] == ':' ? sn : 0;
    if (!base || (!sn && !(n >= 2 && u[0] == '/' && u[1] == '/')))
        return 1; /* nothing to compare with, or relative: the same origin */
    size_t sl = strcspn(base, ":");
    if (n >= 2 && u[0] == '/') /* scheme-relative: the base's scheme */
        snprintf(next, sizeof next, "%.*s:%.*s", (int)sl, base, (int)n, u);
    else
        snprintf(next, sizeof next, "%.*s", (int)n, u);
    if (!r2m_http_origin(base, a, sizeof a) && !r2m_http_origin(next, b, sizeof b) && !strcmp(a, b))
        return 1;
    if (r2m_http_origin(next, res->page_foreign, sizeof res->page_foreign))
        snprintf(res->page_foreign, sizeof res->page_foreign, "%.80s", next);
    return 0;
}

static void find_pagination(const struct r2m_probe_sample *s, struct r2m_probe_result *res)
{
    if (s->link) {
        const char *u = NULL;
        size_t ul = 0;
        char err[200];
        if (!r2m_page_link_next(s->link, strlen(s->link), &u, &ul, err, sizeof err) && u) {
            res->paginate = same_origin(s->url, u, ul, res) ? R2M_PROBE_PAGE_LINK : 0;
            return;
        }
    }
    find_page_member(s->root, "", "", 0, res);
    const struct r2m_json *v =
        res->paginate == R2M_PROBE_PAGE_NEXT ? r2m_json_pointer(s->root, res->page_ptr) : NULL;
    if (v && v->type == R2M_JSON_STRING && !same_origin(s->url, v->u.str, v->n, res))
        res->paginate = R2M_PROBE_PAGE_NONE;
}

/* ---- the analysis ------------------------------------------------------------------ */

int r2m_probe_analyse(const struct r2m_probe_sample *s, size_t n, struct r2m_probe_result *out,
                      char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!n || n > R2M_PROBE_MAX_SAMPLES) {
        snprintf(err, errlen, "between 1 and %d samples, not %zu", R2M_PROBE_MAX_SAMPLES, n);
        return R2M_E_INVALID;
    }
    out->n_samples = n;
    out->n_transitions = n - 1;
    size_t total = count_nodes(s[0].root);
    struct cand best = {.nodes = 0};
    find_items(s[0].root, "", &best);
    struct r2m_json *lists[R2M_PROBE_MAX_SAMPLES];
    /* most of the document: 60%, or 80% for a single item outside the root
     * (a document with one small list in it is a document) */
    const struct r2m_json *cv = best.nodes ? r2m_json_pointer(s[0].root, best.ptr) : NULL;
    unsigned need = cv && (cv->n >= 2 || !best.ptr[0]) ? 60 : 80;
    if (best.nodes && best.nodes * 100 >= total * need) {
        out->collection = 1;
        snprintf(out->items, sizeof out->items, "%s", best.ptr);
        out->items_object = best.object;
        out->items_pct = (unsigned)(best.nodes * 100 / total);
        for (size_t i = 0; i < n && out->collection; i++)
            if (!(lists[i] = (struct r2m_json *)items_of(s[i].root, out)))
                out->collection = 0; /* not a list in every sample: a document */
    }
    if (out->collection) {
        out->n_items = lists[0]->n;
        if (out->items_object)
            out->key_found = 1; /* the member names are the keys */
        else
            find_key(lists, n, out);
        if (!out->key_found)
            out->collection = 0; /* watched as one document; render says why */
    }
    for (size_t i = 0; i < n; i++) {
        out->etag += s[i].etag != NULL;
        out->last_modified += s[i].last_modified != NULL;
    }
    struct stats st = {0};
    for (size_t t = 1; t < n; t++) {
        if (out->collection)
            diff_items(lists[t - 1], lists[t], out, t - 1, &st);
        else
            diff_walk(s[t - 1].root, s[t].root, "", t - 1, &st);
    }
    pick_volatile(&st, out);
    free(st.v);
    if (out->collection) /* paginate: is for collections only */
        find_pagination(&s[0], out);
    return st.nomem ? R2M_E_NOMEM : 0;
}

/* ---- rendering ---------------------------------------------------------------------- */

/* Data from the API: ${ is literal. */
static int put_lit(struct r2m_buf *b, const char *s)
{
    return r2m_yaml_quote(b, s, strlen(s), 1);
}

/* A value the user gave: written as given (it may hold ${env:...}). */
static int put_given(struct r2m_buf *b, const char *s)
{
    return r2m_yaml_quote(b, s, strlen(s), 0);
}

/* Comment text from data: no line breaks or other control characters. */
static int put_comment_text(struct r2m_buf *b, const char *s)
{
    int r = 0;
    for (const char *p = s; *p && !r; p++) {
        unsigned cp;
        size_t n = r2m_yaml_unsafe(p, strnlen(p, 3), &cp);
        p += n ? n - 1 : 0;
        r = r2m_buf_putc(b, n || (unsigned char)*p < 0x20 ? '?' : *p);
    }
    return r;
}

/* Whether a name ([a-z0-9_-]) reads as something else than text when
 * plain: "null" is no value to the config, and YAML 1.1 tools read
 * booleans and numbers. */
static int name_needs_quotes(const char *n)
{
    static const char *const words[] = {"null", "true", "false", "yes", "no",
                                        "on",   "off",  "y",     "n"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (!strcmp(n, words[i]))
            return 1;
    return !isalpha((unsigned char)n[0]);
}

static int render_request(const struct r2m_probe_request *q, struct r2m_buf *b)
{
    int r = r2m_buf_puts(b, "  - name: ");
    r = r ? r : name_needs_quotes(q->name) ? put_given(b, q->name) : r2m_buf_puts(b, q->name);
    r = r ? r : r2m_buf_puts(b, "\n    url: ");
    r = r ? r : put_given(b, q->url);
    if (!r && q->method && strcmp(q->method, "GET")) {
        r = r2m_buf_printf(b, "\n    method: %s", q->method);
    }
    if (!r && q->body) {
        r = r2m_buf_puts(b, "\n    body: ");
        r = r ? r : put_given(b, q->body);
    }
    if (!r && q->timeout_ms > 0)
        r = r2m_buf_printf(b, "\n    timeout: %lldms", q->timeout_ms);
    if (!r && q->max_body > 0)
        r = r2m_buf_printf(b, "\n    max_body: %llu", q->max_body);
    if (!r && q->n_headers) {
        r = r2m_buf_puts(b, "\n    headers:");
        for (size_t i = 0; i < q->n_headers && !r; i++) {
            r = r2m_buf_puts(b, "\n      ");
            r = r ? r : put_given(b, q->headers[2 * i]);
            r = r ? r : r2m_buf_puts(b, ": ");
            r = r ? r : put_given(b, q->headers[2 * i + 1]);
        }
    }
    if (!r && q->n_auth) {
        r = r2m_buf_puts(b, "\n    auth: {");
        for (size_t i = 0; i < q->n_auth && !r; i++) {
            r = r2m_buf_printf(b, "%s%s: ", i ? ", " : " ", q->auth[2 * i]);
            r = r ? r : put_given(b, q->auth[2 * i + 1]);
        }
        r = r ? r : r2m_buf_puts(b, " }");
    }
    return r ? r : r2m_buf_putc(b, '\n');
}

static int render_collection(const struct r2m_probe_result *res, struct r2m_buf *b)
{
    int r = r2m_buf_printf(b, "    # the items: %s at ",
                           res->items_object ? "the object" : "the array");
    r = r ? r : put_comment_text(b, *res->items ? res->items : "\"\" (the document itself)");
    r = r ? r
          : r2m_buf_printf(b, " holds %zu object%s%s, %u%% of the document's values\n",
                           res->n_items, res->n_items == 1 ? "" : "s",
                           res->items_object ? " (its members)" : "", res->items_pct);
    r = r ? r : r2m_buf_puts(b, "    items: ");
    r = r ? r : put_lit(b, res->items);
    if (r)
        return r;
    if (res->items_object)
        return r2m_buf_puts(b, "\n    # no key: the items' member names are their keys\n");
    r = r2m_buf_puts(b, "\n    # key: ");
    for (size_t i = 0; i < res->n_key && !r; i++) {
        r = i ? r2m_buf_puts(b, " + ") : 0;
        r = r ? r : put_comment_text(b, res->key[i]);
    }
    r = r ? r
          : r2m_buf_printf(b, " %s present, scalar and unique in every item of %s%zu sample%s",
                           res->n_key > 1 ? "together are" : "is",
                           res->n_samples == 1 ? "the " : "all ", res->n_samples,
                           res->n_samples == 1 ? "" : "s");
    r = r ? r
          : r2m_buf_puts(b, res->n_key > 1 ? " (no single member is)\n    key: [" : "\n    key: ");
    for (size_t i = 0; i < res->n_key && !r; i++) {
        r = i ? r2m_buf_puts(b, ", ") : 0;
        r = r ? r : put_lit(b, res->key[i]);
    }
    return r ? r : r2m_buf_puts(b, res->n_key > 1 ? "]\n" : "\n");
}

static int render_ignore(const struct r2m_probe_result *res, struct r2m_buf *b)
{
    if (res->n_samples < 2)
        return r2m_buf_puts(b, "    # volatile fields: one sample only; probe with --samples 3 "
                               "to find them\n");
    if (!res->n_vol)
        return r2m_buf_printf(b,
                              "    # volatile fields: none; nothing changed in (nearly) every "
                              "%s across the %zu samples\n",
                              res->collection ? "item" : "poll", res->n_samples);
    int r = r2m_buf_printf(b,
                           "    # volatile fields: these changed between the samples in (nearly) "
                           "every %s; ignored, so that\n    # they alone never make an event\n"
                           "    ignore:\n",
                           res->collection ? "item" : "poll");
    for (size_t i = 0; i < res->n_vol && !r; i++) {
        const struct r2m_probe_volatile *v = &res->vol[i];
        r = r2m_buf_puts(b, "      - ");
        r = r ? r : put_lit(b, v->pattern);
        r = r ? r : r2m_buf_puts(b, "    # ");
        r = r ? r : put_comment_text(b, v->shown);
        r = r ? r
              : r2m_buf_printf(b, " changed in %u%% of %s in %u of %zu samples after the first\n",
                               v->min_pct,
                               res->collection           ? "items"
                               : strchr(v->pattern, '*') ? "elements"
                                                         : "polls",
                               v->changed_in, res->n_transitions);
    }
    return r;
}

static int render_paging(const struct r2m_probe_result *res, struct r2m_buf *b)
{
    int r = 0;
    if (res->page_foreign[0]) {
        r = r2m_buf_puts(b, "    # pagination: the next page is on another origin (");
        r = r ? r : put_comment_text(b, res->page_foreign);
        r = r ? r
              : r2m_buf_puts(b, "); rest2mqtt follows pages on\n    # the endpoint's origin "
                                "only and would fail every poll, so there is no paginate:\n");
    }
    if (res->paginate == R2M_PROBE_PAGE_LINK)
        r = r2m_buf_puts(b, "    # pagination: the answer carries a Link: <...>; rel=\"next\" "
                            "header\n    paginate: { next: link }\n");
    else if (res->paginate == R2M_PROBE_PAGE_NEXT) {
        r = r2m_buf_puts(b, "    # pagination: the body names the next page's URL at ");
        r = r ? r : put_comment_text(b, res->page_ptr);
        r = r ? r : r2m_buf_puts(b, "\n    paginate: { next: ");
        r = r ? r : put_lit(b, res->page_ptr);
        r = r ? r : r2m_buf_puts(b, " }\n");
    } else if (res->paginate == R2M_PROBE_PAGE_CURSOR) {
        r = r2m_buf_puts(b, "    # pagination: the body carries a cursor at ");
        r = r ? r : put_comment_text(b, res->page_ptr);
        r = r ? r
              : r2m_buf_puts(b, "; the query parameter that takes it back is a guess,\n"
                                "    # check the API's documentation\n    paginate: { cursor: ");
        r = r ? r : put_lit(b, res->page_ptr);
        r = r ? r : r2m_buf_printf(b, ", param: %s }\n", res->page_param);
    }
    if (r || (!res->etag && !res->last_modified))
        return r;
    r = r2m_buf_printf(b, "    # conditional GET: the server sent %s%s%s in %zu of %zu answers",
                       res->etag ? "ETag" : "", res->etag && res->last_modified ? " and " : "",
                       res->last_modified ? "Last-Modified" : "",
                       res->etag > res->last_modified ? (size_t)res->etag
                                                      : (size_t)res->last_modified,
                       res->n_samples);
    if (r)
        return r;
    if (res->paginate)
        return r2m_buf_puts(b, "; paginated endpoints never\n    # send validators (a 304 for "
                               "page 1 says nothing about page 2)\n");
    return r2m_buf_printf(b,
                          "; rest2mqtt sends\n    # %s, so an unchanged poll costs a 304 "
                          "without a body\n",
                          res->etag ? "If-None-Match" : "If-Modified-Since");
}

int r2m_probe_render(const struct r2m_probe_result *res, const struct r2m_probe_request *req,
                     struct r2m_buf *out)
{
    int r = 0;
    /* the comment names the URL: line by line through the comment filter */
    for (const char *c = req->comment, *nl; c && *c && !r; c = nl + !!*nl) {
        nl = c + strcspn(c, "\n");
        struct r2m_buf line;
        r2m_buf_init(&line, out->max);
        r = r2m_buf_append(&line, c, (size_t)(nl - c));
        r = r ? r : put_comment_text(out, line.data ? line.data : "");
        r = r ? r : r2m_buf_putc(out, '\n');
        r2m_buf_free(&line);
    }
    r = r ? r : render_request(req, out);
    if (!r && res->collection)
        r = render_collection(res, out);
    else if (!r && res->n_items && !res->key_found) {
        /* the pointer is data: through put_comment_text like every other */
        r = r2m_buf_puts(out, "    # a document: the list at ");
        r = r ? r : put_comment_text(out, *res->items ? res->items : "\"\"");
        r = r ? r
              : r2m_buf_printf(out,
                               " has no member (or combination of up to %d)\n    # that is "
                               "present, scalar and unique in every item of every sample, so it "
                               "is watched whole\n",
                               R2M_PROBE_MAX_KEY);
    } else if (!r)
        r = r2m_buf_puts(out, "    # a document: no list of objects holds most of it, so it is "
                              "watched whole\n    # (one rest2mqtt.document.changed per change)\n");
    r = r ? r : render_ignore(res, out);
    return r ? r : render_paging(res, out);
}

void r2m_probe_name(const char *url, char out[65])
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t end = strcspn(p, "?#");
    const char *seg = NULL;
    size_t seglen = 0;
    /* the last non-empty path segment that is not a number (an id names
     * one thing; its collection names the endpoint better) */
    for (size_t i = 0; i < end;) {
        if (p[i] != '/') {
            i++;
            continue;
        }
        size_t s = i + 1, n = strcspn(p + s, "/?#");
        if (s + n > end)
            n = end - s;
        if (n && strspn(p + s, "0123456789") < n) {
            seg = p + s;
            seglen = n;
        }
        i = s + n;
    }
    size_t w = 0;
    for (size_t i = 0; seg && i < seglen && w < 64; i++) {
        char c = (char)tolower((unsigned char)seg[i]);
        if (isalnum((unsigned char)c) || c == '_' || c == '-')
            out[w++] = c;
        else if (w && out[w - 1] != '-')
            out[w++] = '-';
    }
    while (w && out[w - 1] == '-')
        w--;
    if (!w)
        w = (size_t)snprintf(out, 65, "probe");
    out[w] = '\0';
}
