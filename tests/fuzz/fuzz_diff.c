/* Fuzz target: JSON Patch between two documents (src/diff.c).
 *
 * The input is two JSON documents separated by the first NUL byte (which
 * valid JSON never contains), before and after; an empty side stands for
 * "absent". Properties, whenever both sides parse:
 *  - the patch is valid UTF-8 JSON, and applying it (tests/unit/json_patch.h,
 *    an applier independent of diff.c) to before gives exactly after;
 *  - the patch is "[]" exactly when the two trees are equal;
 *  - before written again with every spelling changed that must not count
 *    (members in reverse order, every number respelled as "x.0"/"x.x0",
 *    every character of every string as a \u escape, astral ones as
 *    surrogate pairs, extra whitespace) parses to an equal tree with the
 *    same canonical bytes, and the diff against it is "[]". */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "r2m/buf.h"
#include "r2m/diff.h"
#include "r2m/json.h"
#include "r2m/utf8.h"

#include "../unit/json_patch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must(int ok)
{
    if (!ok)
        abort();
}

static void put(struct r2m_buf *b, const char *s, size_t n)
{
    must(r2m_buf_append(b, s, n) == 0);
}

static void put_u(struct r2m_buf *b, unsigned cp)
{
    must(r2m_buf_printf(b, "\\u%04X", cp) == 0);
}

/* A string with every character escaped; s is valid UTF-8 (it came out of
 * the parser). */
static void respell_string(struct r2m_buf *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    put(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned c = p[i], cp, len;
        if (c < 0x80)
            cp = c, len = 1;
        else if (c < 0xe0)
            cp = c & 0x1f, len = 2;
        else if (c < 0xf0)
            cp = c & 0x0f, len = 3;
        else
            cp = c & 0x07, len = 4;
        for (unsigned k = 1; k < len; k++)
            cp = cp << 6 | (p[i + k] & 0x3f);
        i += len;
        if (cp >= 0x10000) {
            put_u(b, 0xd800 + ((cp - 0x10000) >> 10));
            put_u(b, 0xdc00 + ((cp - 0x10000) & 0x3ff));
        } else {
            put_u(b, cp);
        }
    }
    put(b, "\"", 1);
}

/* "12" -> "12.0", "2.5" -> "2.50", "1.5e+30" -> "1.50e+30". */
static void respell_number(struct r2m_buf *b, const char *s, size_t n)
{
    const char *e = memchr(s, 'e', n);
    size_t mant = e ? (size_t)(e - s) : n;
    put(b, s, mant);
    if (memchr(s, '.', mant))
        put(b, "0", 1);
    else
        put(b, ".0", 2);
    put(b, s + mant, n - mant);
}

static void respell(struct r2m_buf *b, const struct r2m_json *v)
{
    switch (v->type) {
    case R2M_JSON_NULL:
        put(b, " null", 5);
        break;
    case R2M_JSON_FALSE:
        put(b, "false ", 6);
        break;
    case R2M_JSON_TRUE:
        put(b, "\ttrue", 5);
        break;
    case R2M_JSON_NUMBER:
        respell_number(b, v->u.str, v->n);
        break;
    case R2M_JSON_STRING:
        respell_string(b, v->u.str, v->n);
        break;
    case R2M_JSON_ARRAY:
        put(b, "[ ", 2);
        for (uint32_t i = 0; i < v->n; i++) {
            if (i)
                put(b, " ,\n", 3);
            respell(b, &v->u.items[i]);
        }
        put(b, "]", 1);
        break;
    case R2M_JSON_OBJECT:
        put(b, "{", 1);
        for (uint32_t i = v->n; i-- > 0;) {
            const struct r2m_json_member *m = &v->u.members[i];
            respell_string(b, m->key, m->key_len);
            put(b, " : ", 3);
            respell(b, &m->value);
            if (i)
                put(b, ",", 1);
        }
        put(b, "\r\n}", 3);
        break;
    default:
        abort();
    }
}

static int is_empty_patch(const struct r2m_buf *p)
{
    return p->len == 2 && memcmp(p->data, "[]", 2) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct r2m_json_doc *da, *db, *dp, *dv;
    if (!da && (r2m_json_doc_new(&da, NULL) || r2m_json_doc_new(&db, NULL) ||
                r2m_json_doc_new(&dp, NULL) || r2m_json_doc_new(&dv, NULL)))
        abort();
    const char *text = (const char *)data;
    const char *sep = memchr(text, '\0', size);
    if (!sep)
        return 0;
    size_t na = (size_t)(sep - text), nb = size - na - 1;
    struct r2m_json *a = NULL, *b = NULL;
    if (na && r2m_json_parse(da, text, na, &a, NULL, 0))
        return 0;
    if (nb && r2m_json_parse(db, sep + 1, nb, &b, NULL, 0))
        return 0;

    struct r2m_buf patch, t;
    r2m_buf_init(&patch, (size_t)1 << 30);
    r2m_buf_init(&t, (size_t)1 << 30);
    must(r2m_diff_patch(a, b, &patch) == 0);
    must(r2m_utf8_check(patch.data, patch.len, NULL) == 0);
    struct r2m_json *ops;
    must(r2m_json_parse(dp, patch.data, patch.len, &ops, NULL, 0) == 0);

    /* applying the patch to before gives after */
    struct tdoc d = {.present = a != NULL};
    if (a)
        t_copy(&d.root, a);
    struct op_counts cnt = {0};
    must(t_apply(&d, dp, patch.data, &cnt) == 0);
    must(d.present == (b != NULL));
    if (b)
        must(r2m_json_equal(&d.root, b));
    if (d.present)
        t_free(&d.root);

    /* no change exactly when equal */
    int equal = (!a && !b) || (a && b && r2m_json_equal(a, b));
    must(is_empty_patch(&patch) == equal);

    /* a respelling of before is no change */
    if (a) {
        respell(&t, a);
        struct r2m_json *v;
        must(r2m_json_parse(dv, t.data, t.len, &v, NULL, 0) == 0);
        must(r2m_json_equal(a, v));
        r2m_buf_reset(&patch);
        must(r2m_diff_patch(a, v, &patch) == 0);
        must(is_empty_patch(&patch));
        struct r2m_buf c1, c2;
        r2m_buf_init(&c1, (size_t)1 << 30);
        r2m_buf_init(&c2, (size_t)1 << 30);
        must(r2m_json_canonical(a, &c1) == 0 && r2m_json_canonical(v, &c2) == 0);
        must(c1.len == c2.len && memcmp(c1.data, c2.data, c1.len) == 0);
        r2m_buf_free(&c1);
        r2m_buf_free(&c2);
    }
    r2m_buf_free(&patch);
    r2m_buf_free(&t);
    return 0;
}
