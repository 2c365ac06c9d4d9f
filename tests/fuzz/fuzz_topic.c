/* Fuzz target: topic template expansion (src/topic.c) with fuzzed values.
 *
 * Input: one byte choosing a template, one byte giving the key's length,
 * the key's bytes, then a JSON item for the {/pointer} placeholders (when
 * it does not parse, there is no item). The key is raw bytes - it may hold
 * NUL, or be invalid UTF-8, which the JSON layer never hands over, to
 * exercise the guard.
 * Properties of every expansion that succeeds:
 *  - the topic is valid UTF-8 and holds no '+', '#' or NUL;
 *  - it has exactly the levels of the template (data never adds a '/');
 *  - the {key} level percent-decodes back to exactly the key's bytes;
 * and a key that is not valid UTF-8 never yields a topic. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "r2m/buf.h"
#include "r2m/error.h"
#include "r2m/json.h"
#include "r2m/topic.h"
#include "r2m/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PREFIX "r2m/site-1" /* configuration: its '/' is a level of its own */

static const struct {
    const char *tmpl;
    int levels;    /* '/'-separated levels of any topic it yields */
    int key_level; /* index of the {key} level, -1 if none */
} templates[] = {
    {"{prefix}/{endpoint}/{key}/{op}", 5, 3},
    {"{prefix}/{key}/{/name}", 4, 2},
    {"site/{/a/b}/{/id}/x", 4, -1},
    {"{key}", 1, 0},
    {"{prefix}/{endpoint}/{/0}/{key}/state", 6, 4},
    {"{/id}{key}{/n}", 1, -1},
};

static int unhex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct r2m_json_doc *doc;
    if (!doc && r2m_json_doc_new(&doc, NULL))
        abort();
    if (size < 2)
        return 0;
    size_t ti = data[0] % (sizeof templates / sizeof templates[0]);
    const char *tmpl = templates[ti].tmpl;
    char err[256];
    if (r2m_topic_check(tmpl, 1, err, sizeof err) != 0)
        abort(); /* the target's own templates are valid */
    size_t key_len = data[1];
    if (key_len > size - 2)
        key_len = size - 2;
    const char *json = (const char *)data + 2 + key_len;
    struct r2m_json *item = NULL;
    if (r2m_json_parse(doc, json, size - 2 - key_len, &item, NULL, 0) != 0)
        item = NULL;
    /* the key as bytes with a length, in its own block: no NUL after it
     * that could hide a strlen */
    char *k = malloc(key_len + 1);
    if (!k)
        abort();
    memcpy(k, data + 2, key_len);
    k[key_len] = 'Z';

    struct r2m_topic_vars v = {.prefix = PREFIX,
                               .endpoint = "sensors",
                               .key = key_len ? k : NULL,
                               .op = "updated",
                               .item = item,
                               .key_len = key_len};
    struct r2m_buf out;
    r2m_buf_init(&out, 1 << 20);
    int r = r2m_topic_expand(tmpl, &v, &out);
    if (r) {
        if (r != R2M_E_TOPIC || out.len != 0)
            abort(); /* a refusal is R2M_E_TOPIC and leaves nothing behind */
        goto done;
    }
    if (!key_len && templates[ti].key_level >= 0)
        abort(); /* an empty key never names a topic */
    const char *t = out.data;
    if (r2m_utf8_check(t, out.len, NULL) != 0)
        abort();
    if (memchr(t, '\0', out.len) || memchr(t, '+', out.len) || memchr(t, '#', out.len))
        abort();
    if (strstr(tmpl, "{key}") && r2m_utf8_check(k, key_len, NULL) != 0)
        abort(); /* a topic made from invalid UTF-8 */
    int levels = 1;
    for (size_t i = 0; i < out.len; i++)
        levels += t[i] == '/';
    if (levels != templates[ti].levels)
        abort(); /* data added (or removed) a level */
    if (templates[ti].key_level >= 0 && key_len) {
        /* find the key's level and decode it */
        const char *p = t, *end = t + out.len;
        for (int l = 0; l < templates[ti].key_level; l++)
            p = memchr(p, '/', (size_t)(end - p)) + 1;
        const char *q = memchr(p, '/', (size_t)(end - p));
        if (!q)
            q = end;
        size_t j = 0;
        for (; p < q; p++, j++) {
            unsigned char c = (unsigned char)*p;
            if (c == '%') {
                if (q - p < 3 || unhex(p[1]) < 0 || unhex(p[2]) < 0)
                    abort();
                c = (unsigned char)(unhex(p[1]) * 16 + unhex(p[2]));
                p += 2;
            }
            if (j >= key_len || (unsigned char)k[j] != c)
                abort(); /* the level is not the key */
        }
        if (j != key_len)
            abort();
    }
done:
    r2m_buf_free(&out);
    free(k);
    return 0;
}
