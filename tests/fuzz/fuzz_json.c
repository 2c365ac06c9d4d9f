/* Fuzz target: JSON parse + canonical form + fingerprint.
 *
 * Properties checked on every input:
 *  - input that is not valid UTF-8 is refused (one rule for invalid text);
 *  - both entry points agree: r2m_json_parse_items(.., "") accepts exactly
 *    what r2m_json_parse accepts, with the same result code;
 * and on every input that parses:
 *  - the canonical form is valid UTF-8, parses again and is a fixed point:
 *    canonical(parse(canonical(x))) == canonical(x);
 *  - equal canonical bytes give equal fingerprints. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "r2m/buf.h"
#include "r2m/json.h"
#include "r2m/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count_item(void *ctx, size_t index, const char *key, size_t key_len,
                      struct r2m_json *item)
{
    (void)index;
    (void)key;
    (void)key_len;
    (void)item;
    ++*(size_t *)ctx;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct r2m_json_doc *doc, *doc2;
    if (!doc && (r2m_json_doc_new(&doc, NULL) || r2m_json_doc_new(&doc2, NULL)))
        abort();
    struct r2m_json *root = NULL, *again = NULL;
    char err[256];
    const char *text = (const char *)data;
    size_t items = 0;
    int rs =
        r2m_json_parse_items(doc2, text, size, "", count_item, &items, &again, err, sizeof err);
    int rc = r2m_json_parse(doc, text, size, &root, err, sizeof err);
    if (rc != rs)
        abort(); /* the streaming path follows the same rules */
    if (rc != 0)
        return 0;
    if (r2m_utf8_check(text, size, NULL) != 0)
        abort(); /* invalid UTF-8 anywhere in the input was accepted */
    struct r2m_buf c1, c2;
    r2m_buf_init(&c1, (size_t)1 << 30);
    r2m_buf_init(&c2, (size_t)1 << 30);
    if (r2m_json_canonical(root, &c1) != 0)
        abort();
    if (r2m_utf8_check(c1.data, c1.len, NULL) != 0)
        abort(); /* the canonical form must be valid UTF-8 */
    if (r2m_json_parse(doc2, c1.data, c1.len, &again, err, sizeof err) != 0)
        abort(); /* the canonical form must be valid JSON */
    if (r2m_json_canonical(again, &c2) != 0)
        abort();
    if (c1.len != c2.len || memcmp(c1.data, c2.data, c1.len) != 0)
        abort(); /* canonical(canonical(x)) == canonical(x) */
    struct r2m_fp f1 = r2m_json_fingerprint(c1.data, c1.len);
    struct r2m_fp f2 = r2m_json_fingerprint(c2.data, c2.len);
    if (memcmp(&f1, &f2, sizeof f1) != 0)
        abort();
    r2m_buf_free(&c1);
    r2m_buf_free(&c2);
    return 0;
}
