/* diff.c - RFC 6902 JSON Patch between two canonical trees.
 *
 * Both trees have their object members sorted by key bytes, so objects are
 * compared by one merge walk. Ops are emitted in a fixed order (key order;
 * array elements by index, then removals from the end, then appends) so
 * that the same pair of trees always gives the same bytes, and each op is
 * valid against the document as changed by the ops before it. */
#include "r2m/diff.h"

#include <inttypes.h>
#include <stdint.h>
#include <string.h>

#include "r2m/error.h"

struct differ {
    struct r2m_buf *out;
    struct r2m_buf path; /* JSON Pointer of the value being compared */
    int first;           /* no op written yet */
};

/* Appends "/" and the key with '~' -> "~0", '/' -> "~1". */
static int path_push_key(struct r2m_buf *p, const char *key, size_t n)
{
    int rc = r2m_buf_putc(p, '/');
    size_t run = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (key[i] != '~' && key[i] != '/')
            continue;
        rc = r2m_buf_append(p, key + run, i - run);
        if (!rc)
            rc = r2m_buf_append(p, key[i] == '~' ? "~0" : "~1", 2);
        run = i + 1;
    }
    if (!rc && n > run)
        rc = r2m_buf_append(p, key + run, n - run);
    return rc;
}

static void path_pop(struct r2m_buf *p, size_t len)
{
    p->len = len;
    if (p->data)
        p->data[len] = '\0';
}

/* Writes {"op":OP,"path":PATH[,"value":V]}. */
static int put_op(struct differ *d, const char *op, const struct r2m_json *value)
{
    int rc = r2m_buf_puts(d->out, d->first ? "{\"op\":\"" : ",{\"op\":\"");
    d->first = 0;
    if (!rc)
        rc = r2m_buf_puts(d->out, op);
    if (!rc)
        rc = r2m_buf_puts(d->out, "\",\"path\":");
    if (!rc)
        rc = r2m_json_quote(d->out, d->path.data ? d->path.data : "", d->path.len);
    if (!rc && value) {
        rc = r2m_buf_puts(d->out, ",\"value\":");
        if (!rc)
            rc = r2m_json_canonical(value, d->out);
    }
    if (!rc)
        rc = r2m_buf_putc(d->out, '}');
    return rc;
}

static int diff_value(struct differ *d, const struct r2m_json *a, const struct r2m_json *b);

static int diff_object(struct differ *d, const struct r2m_json *a, const struct r2m_json *b)
{
    size_t base = d->path.len;
    uint32_t i = 0, j = 0;
    int rc = 0;
    while (!rc && (i < a->n || j < b->n)) {
        const struct r2m_json_member *x = i < a->n ? &a->u.members[i] : NULL;
        const struct r2m_json_member *y = j < b->n ? &b->u.members[j] : NULL;
        int c;
        if (!x)
            c = 1;
        else if (!y)
            c = -1;
        else {
            size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
            c = n ? memcmp(x->key, y->key, n) : 0;
            if (!c)
                c = (x->key_len > y->key_len) - (x->key_len < y->key_len);
        }
        const struct r2m_json_member *m = c <= 0 ? x : y;
        rc = path_push_key(&d->path, m->key, m->key_len);
        if (rc)
            break;
        if (c < 0) {
            rc = put_op(d, "remove", NULL);
            i++;
        } else if (c > 0) {
            rc = put_op(d, "add", &y->value);
            j++;
        } else {
            rc = diff_value(d, &x->value, &y->value);
            i++;
            j++;
        }
        path_pop(&d->path, base);
    }
    return rc;
}

static int diff_array(struct differ *d, const struct r2m_json *a, const struct r2m_json *b)
{
    size_t base = d->path.len;
    uint32_t common = a->n < b->n ? a->n : b->n;
    int rc = 0;
    for (uint32_t i = 0; i < common && !rc; i++) {
        if (r2m_json_equal(&a->u.items[i], &b->u.items[i]))
            continue;
        rc = r2m_buf_printf(&d->path, "/%" PRIu32, i);
        if (!rc)
            rc = diff_value(d, &a->u.items[i], &b->u.items[i]);
        path_pop(&d->path, base);
    }
    /* Highest index first, so every index is still valid when removed. */
    for (uint32_t i = a->n; i > common && !rc; i--) {
        rc = r2m_buf_printf(&d->path, "/%" PRIu32, i - 1);
        if (!rc)
            rc = put_op(d, "remove", NULL);
        path_pop(&d->path, base);
    }
    for (uint32_t i = common; i < b->n && !rc; i++) {
        rc = r2m_buf_append(&d->path, "/-", 2);
        if (!rc)
            rc = put_op(d, "add", &b->u.items[i]);
        path_pop(&d->path, base);
    }
    return rc;
}

static int diff_value(struct differ *d, const struct r2m_json *a, const struct r2m_json *b)
{
    if (a->type != b->type)
        return put_op(d, "replace", b);
    switch (a->type) {
    case R2M_JSON_OBJECT:
        return diff_object(d, a, b);
    case R2M_JSON_ARRAY:
        return diff_array(d, a, b);
    case R2M_JSON_NUMBER:
    case R2M_JSON_STRING:
        if (a->n == b->n && (a->n == 0 || memcmp(a->u.str, b->u.str, a->n) == 0))
            return 0;
        return put_op(d, "replace", b);
    default: /* null, true, false: the type is the value */
        return 0;
    }
}

int r2m_diff_patch(const struct r2m_json *before, const struct r2m_json *after, struct r2m_buf *out)
{
    struct differ d = {.out = out, .first = 1};
    size_t start = out->len;
    r2m_buf_init(&d.path, SIZE_MAX);

    int rc = r2m_buf_putc(out, '[');
    if (rc)
        goto out;
    if (!before && after)
        rc = put_op(&d, "add", after);
    else if (before && !after)
        rc = put_op(&d, "remove", NULL);
    else if (before && after)
        rc = diff_value(&d, before, after);
    if (!rc)
        rc = r2m_buf_putc(out, ']');

out:
    r2m_buf_free(&d.path);
    if (rc) {
        /* Leave out as it was: a half-written patch is worse than none. */
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
    }
    return rc;
}
