/* json_patch.h - an RFC 6902 JSON Patch applier for tests and fuzz targets.
 *
 * Independent of src/diff.c on purpose: it is how tests check that a patch
 * the bridge wrote turns `before` into `after`. Supports the ops the diff
 * writes (add, remove, replace, "/-" appends, whole-document ops) and
 * refuses every other op or a path that does not apply. Allocation failure
 * aborts. Header-only (static functions), included by one test file each. */
#ifndef R2M_TEST_JSON_PATCH_H
#define R2M_TEST_JSON_PATCH_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "r2m/json.h"

/* Trees below use struct r2m_json too, but every array, member block, key
 * and string is its own malloc block so that they can be edited. */

static char *dup_bytes(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p)
        abort();
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static void t_free(struct r2m_json *v)
{
    switch (v->type) {
    case R2M_JSON_NUMBER:
    case R2M_JSON_STRING:
        free((char *)v->u.str);
        break;
    case R2M_JSON_ARRAY:
        for (uint32_t i = 0; i < v->n; i++)
            t_free(&v->u.items[i]);
        free(v->u.items);
        break;
    case R2M_JSON_OBJECT:
        for (uint32_t i = 0; i < v->n; i++) {
            free((char *)v->u.members[i].key);
            t_free(&v->u.members[i].value);
        }
        free(v->u.members);
        break;
    default:
        break;
    }
    memset(v, 0, sizeof *v);
}

static void t_copy(struct r2m_json *dst, const struct r2m_json *src)
{
    dst->type = src->type;
    dst->n = src->n;
    dst->u.str = NULL;
    switch (src->type) {
    case R2M_JSON_NUMBER:
    case R2M_JSON_STRING:
        dst->u.str = dup_bytes(src->u.str, src->n);
        break;
    case R2M_JSON_ARRAY:
        dst->u.items = calloc(src->n + 1, sizeof *dst->u.items);
        if (!dst->u.items)
            abort();
        for (uint32_t i = 0; i < src->n; i++)
            t_copy(&dst->u.items[i], &src->u.items[i]);
        break;
    case R2M_JSON_OBJECT:
        dst->u.members = calloc(src->n + 1, sizeof *dst->u.members);
        if (!dst->u.members)
            abort();
        for (uint32_t i = 0; i < src->n; i++) {
            const struct r2m_json_member *m = &src->u.members[i];
            dst->u.members[i].key = dup_bytes(m->key, m->key_len);
            dst->u.members[i].key_len = m->key_len;
            t_copy(&dst->u.members[i].value, &m->value);
        }
        break;
    default:
        break;
    }
}

static int key_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    return c ? c : (an > bn) - (an < bn);
}

/* Index of key in obj, or -(insertion point) - 1. */
static long t_find(const struct r2m_json *obj, const char *key, size_t n)
{
    uint32_t i;
    for (i = 0; i < obj->n; i++) {
        int c = key_cmp(obj->u.members[i].key, obj->u.members[i].key_len, key, n);
        if (c == 0)
            return i;
        if (c > 0)
            break;
    }
    return -(long)i - 1;
}

/* Takes ownership of *val's contents. */
static void t_obj_set(struct r2m_json *obj, const char *key, size_t n, struct r2m_json *val)
{
    long i = t_find(obj, key, n);
    if (i >= 0) {
        t_free(&obj->u.members[i].value);
        obj->u.members[i].value = *val;
        return;
    }
    size_t at = (size_t)(-i - 1);
    struct r2m_json_member *m = realloc(obj->u.members, (obj->n + 1) * sizeof *m);
    if (!m)
        abort();
    memmove(&m[at + 1], &m[at], (obj->n - at) * sizeof *m);
    m[at].key = dup_bytes(key, n);
    m[at].key_len = (uint32_t)n;
    m[at].value = *val;
    obj->u.members = m;
    obj->n++;
}

static void t_obj_del(struct r2m_json *obj, size_t at)
{
    free((char *)obj->u.members[at].key);
    t_free(&obj->u.members[at].value);
    memmove(&obj->u.members[at], &obj->u.members[at + 1],
            (obj->n - at - 1) * sizeof *obj->u.members);
    obj->n--;
}

static void t_arr_insert(struct r2m_json *arr, size_t at, struct r2m_json *val)
{
    struct r2m_json *items = realloc(arr->u.items, (arr->n + 1) * sizeof *items);
    if (!items)
        abort();
    memmove(&items[at + 1], &items[at], (arr->n - at) * sizeof *items);
    items[at] = *val;
    arr->u.items = items;
    arr->n++;
}

static void t_arr_del(struct r2m_json *arr, size_t at)
{
    t_free(&arr->u.items[at]);
    memmove(&arr->u.items[at], &arr->u.items[at + 1], (arr->n - at - 1) * sizeof *arr->u.items);
    arr->n--;
}

/* Decodes the next reference token of an RFC 6901 pointer at *p (at '/')
 * into tok (room for the whole pointer); end bounds the pointer, which may
 * hold NUL bytes. Returns the token's length, or -1 for a bad '~' escape. */
static long next_token(const char **p, const char *end, char *tok)
{
    const char *s = *p + 1;
    long n = 0;
    while (s < end && *s != '/') {
        char c = *s++;
        if (c == '~') {
            if (s == end || (*s != '0' && *s != '1'))
                return -1;
            c = *s++ == '0' ? '~' : '/';
        }
        tok[n++] = c;
    }
    *p = s;
    return n;
}

static int t_index(const char *tok, size_t n, size_t *out)
{
    if (n == 0 || n > 9 || (n > 1 && tok[0] == '0'))
        return -1;
    size_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (tok[i] < '0' || tok[i] > '9')
            return -1;
        v = v * 10 + (size_t)(tok[i] - '0');
    }
    *out = v;
    return 0;
}

struct tdoc {
    struct r2m_json root;
    int present;
};

struct op_counts {
    unsigned add, remove, replace, append, root;
};

/* Finds the value path (past the root) names below cur and applies one op
 * there; tok has room for any token of the path. */
static int t_walk(struct r2m_json *cur, const char *path, const char *end, char *tok, int is_add,
                  int is_remove, const struct r2m_json *value, struct op_counts *cnt)
{
    for (;;) {
        long tn = next_token(&path, end, tok);
        if (tn < 0)
            return -1;
        size_t n = (size_t)tn;
        int last = path == end;
        if (cur->type == R2M_JSON_OBJECT) {
            long i = t_find(cur, tok, n);
            if (!last) {
                if (i < 0)
                    return -1;
                cur = &cur->u.members[i].value;
                continue;
            }
            if (is_add) {
                struct r2m_json v;
                t_copy(&v, value);
                t_obj_set(cur, tok, n, &v);
            } else if (i < 0) {
                return -1;
            } else if (is_remove) {
                t_obj_del(cur, (size_t)i);
            } else {
                t_free(&cur->u.members[i].value);
                t_copy(&cur->u.members[i].value, value);
            }
            return 0;
        }
        if (cur->type != R2M_JSON_ARRAY)
            return -1;
        size_t i;
        if (last && is_add && n == 1 && tok[0] == '-') {
            struct r2m_json v;
            t_copy(&v, value);
            t_arr_insert(cur, cur->n, &v);
            cnt->append++;
            return 0;
        }
        if (t_index(tok, n, &i))
            return -1;
        if ((last && is_add) ? i > cur->n : i >= cur->n)
            return -1;
        if (!last) {
            cur = &cur->u.items[i];
            continue;
        }
        if (is_add) {
            struct r2m_json v;
            t_copy(&v, value);
            t_arr_insert(cur, i, &v);
        } else if (is_remove) {
            t_arr_del(cur, i);
        } else {
            t_free(&cur->u.items[i]);
            t_copy(&cur->u.items[i], value);
        }
        return 0;
    }
}

/* Applies one operation object; returns -1 when it does not apply. */
static int t_apply_op(struct tdoc *doc, struct r2m_json *op, struct op_counts *cnt)
{
    struct r2m_json *o = r2m_json_pointer(op, "/op");
    struct r2m_json *p = r2m_json_pointer(op, "/path");
    struct r2m_json *value = r2m_json_pointer(op, "/value");
    if (op->type != R2M_JSON_OBJECT || !o || o->type != R2M_JSON_STRING || !p ||
        p->type != R2M_JSON_STRING)
        return -1;
    int is_add = strcmp(o->u.str, "add") == 0;
    int is_remove = strcmp(o->u.str, "remove") == 0;
    int is_replace = strcmp(o->u.str, "replace") == 0;
    if (!is_add && !is_remove && !is_replace)
        return -1;
    /* remove has no value, the others have one; nothing else is present */
    if (is_remove != !value || op->n != (value ? 3u : 2u))
        return -1;
    cnt->add += is_add;
    cnt->remove += is_remove;
    cnt->replace += is_replace;

    const char *path = p->u.str, *end = p->u.str + p->n;
    if (path == end) {
        cnt->root++;
        if ((is_replace || is_remove) && !doc->present)
            return -1;
        if (doc->present)
            t_free(&doc->root);
        doc->present = !is_remove;
        if (!is_remove)
            t_copy(&doc->root, value);
        return 0;
    }
    if (!doc->present || *path != '/')
        return -1;

    char *tok = malloc((size_t)(end - path));
    if (!tok)
        abort();
    int rc = t_walk(&doc->root, path, end, tok, is_add, is_remove, value, cnt);
    free(tok);
    return rc;
}

/* Applies a whole patch (JSON text) to doc. */
static int t_apply(struct tdoc *doc, struct r2m_json_doc *pdoc, const char *patch_text,
                   struct op_counts *cnt)
{
    struct r2m_json *ops;
    if (r2m_json_parse(pdoc, patch_text, strlen(patch_text), &ops, NULL, 0) ||
        ops->type != R2M_JSON_ARRAY)
        return -1;
    for (uint32_t i = 0; i < ops->n; i++)
        if (t_apply_op(doc, &ops->u.items[i], cnt))
            return -1;
    return 0;
}

#endif
