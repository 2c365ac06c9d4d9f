/* Fuzz target: CloudEvents rendering (src/event.c) with fuzzed items and keys.
 *
 * Input: one byte of flags (which data members to write, whether there is
 * a key), one byte giving the key's length, the key's bytes (any bytes:
 * NUL, invalid UTF-8), then before and after JSON separated by the first
 * NUL (a side that does not parse is absent). Properties:
 *  - a key that is not valid UTF-8 is refused (R2M_E_INVALID, nothing
 *    appended); every other event renders;
 *  - a rendered event is valid UTF-8 JSON that parses back with
 *    r2m_json_parse, and carries exactly what went in: id, subject and
 *    data.key equal to the key's bytes (NUL included), before, after and
 *    patch equal to their trees;
 *  - a key holding NUL gets another id than the key cut at that NUL. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "r2m/buf.h"
#include "r2m/diff.h"
#include "r2m/error.h"
#include "r2m/event.h"
#include "r2m/json.h"
#include "r2m/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must(int ok)
{
    if (!ok)
        abort();
}

static struct r2m_json *parse_side(struct r2m_json_doc *d, const char *s, size_t n,
                                   struct r2m_buf *canon)
{
    struct r2m_json *v;
    if (!n || r2m_json_parse(d, s, n, &v, NULL, 0) != 0)
        return NULL;
    must(r2m_json_canonical(v, canon) == 0);
    return v;
}

/* Whether member ptr of the event is the string s[0..n). */
static int has_string(struct r2m_json *ev, const char *ptr, const char *s, size_t n)
{
    struct r2m_json *v = r2m_json_pointer(ev, ptr);
    return v && v->type == R2M_JSON_STRING && v->n == n && (!n || memcmp(v->u.str, s, n) == 0);
}

/* Whether member ptr is the tree want (NULL: JSON null). */
static int has_tree(struct r2m_json *ev, const char *ptr, const struct r2m_json *want)
{
    struct r2m_json *v = r2m_json_pointer(ev, ptr);
    if (!v)
        return 0;
    return want ? r2m_json_equal(v, want) : v->type == R2M_JSON_NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct r2m_json_doc *da, *db, *dp, *de;
    if (!da && (r2m_json_doc_new(&da, NULL) || r2m_json_doc_new(&db, NULL) ||
                r2m_json_doc_new(&dp, NULL) || r2m_json_doc_new(&de, NULL)))
        abort();
    if (size < 2)
        return 0;
    unsigned flags = data[0];
    size_t key_len = data[1];
    if (key_len > size - 2)
        key_len = size - 2;
    int has_key = !(flags & 8) && key_len > 0;
    char *key = malloc(key_len + 1);
    must(key != NULL);
    memcpy(key, data + 2, key_len);
    key[key_len] = 'Z'; /* not NUL-terminated where the key ends */
    const char *rest = (const char *)data + 2 + key_len;
    size_t rn = size - 2 - key_len;
    const char *sep = memchr(rest, '\0', rn);
    size_t na = sep ? (size_t)(sep - rest) : rn;

    struct r2m_buf ca, cb, patch, out;
    r2m_buf_init(&ca, (size_t)1 << 30);
    r2m_buf_init(&cb, (size_t)1 << 30);
    r2m_buf_init(&patch, (size_t)1 << 30);
    r2m_buf_init(&out, (size_t)1 << 30);
    struct r2m_json *a = parse_side(da, rest, na, &ca);
    struct r2m_json *b = sep ? parse_side(db, sep + 1, rn - na - 1, &cb) : NULL;
    must(r2m_diff_patch(a, b, &patch) == 0);

    struct r2m_event ev = {
        .instance = "fuzz-\xc3\xa9",
        .endpoint = "items",
        .type = "rest2mqtt.item.updated",
        .op = "updated",
        .key = has_key ? key : NULL,
        .key_len = has_key ? key_len : 0,
        .before = a ? ca.data : NULL,
        .before_len = ca.len,
        .after = b ? cb.data : NULL,
        .after_len = cb.len,
        .patch = patch.data,
        .patch_len = patch.len,
        .time_ms = (int64_t)(flags >> 4) * 86400000 * 365,
        .fields = flags & 7,
    };
    struct r2m_fp fa = r2m_json_fingerprint(ca.data, ca.len);
    struct r2m_fp fb = r2m_json_fingerprint(cb.data, cb.len);
    r2m_event_id(ev.id, 1, ev.endpoint, ev.key, ev.key_len, ev.op, fa, fb, 7);
    if (has_key && memchr(key, '\0', key_len)) {
        char cut[17];
        r2m_event_id(cut, 1, ev.endpoint, key, strlen(key), ev.op, fa, fb, 7);
        must(strcmp(cut, ev.id) != 0);
    }

    must(r2m_buf_puts(&out, "x") == 0);
    int r = r2m_event_render(&ev, &out);
    if (has_key && r2m_utf8_check(key, key_len, NULL) != 0) {
        must(r == R2M_E_INVALID && out.len == 1);
        goto done;
    }
    must(r == 0);
    const char *text = out.data + 1;
    size_t n = out.len - 1;
    must(r2m_utf8_check(text, n, NULL) == 0);
    struct r2m_json *e;
    must(r2m_json_parse(de, text, n, &e, NULL, 0) == 0);
    must(has_string(e, "/specversion", "1.0", 3));
    must(has_string(e, "/id", ev.id, 16));
    if (has_key) {
        must(has_string(e, "/subject", key, key_len));
        must(has_string(e, "/data/key", key, key_len));
    } else {
        must(!r2m_json_pointer(e, "/subject") && !r2m_json_pointer(e, "/data/key"));
    }
    unsigned f = ev.fields ? ev.fields : R2M_EVENT_BEFORE | R2M_EVENT_AFTER | R2M_EVENT_PATCH;
    if (f & R2M_EVENT_BEFORE)
        must(has_tree(e, "/data/before", a));
    if (f & R2M_EVENT_AFTER)
        must(has_tree(e, "/data/after", b));
    if (f & R2M_EVENT_PATCH) {
        struct r2m_json *p;
        must(r2m_json_parse(dp, patch.data, patch.len, &p, NULL, 0) == 0);
        must(has_tree(e, "/data/patch", p));
    }
done:
    free(key);
    r2m_buf_free(&ca);
    r2m_buf_free(&cb);
    r2m_buf_free(&patch);
    r2m_buf_free(&out);
    return 0;
}
