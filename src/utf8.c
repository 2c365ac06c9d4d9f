/* utf8.c - strict UTF-8 validation (Unicode table 3-7, well-formed byte sequences). */
#include "r2m/utf8.h"

#include <stdint.h>
#include <string.h>

#include "r2m/error.h"

/* Length of the valid sequence at s (n >= 1 bytes left), or 0 when it is
 * invalid. The second byte's range depends on the lead byte: that is what
 * refuses overlong forms, surrogates and code points above U+10FFFF. */
static size_t seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xbf;
    size_t len;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0; /* below: overlong */
        else if (c == 0xed)
            hi = 0x9f; /* above: surrogates D800..DFFF */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90; /* below: overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* above: beyond U+10FFFF */
    } else {
        return 0; /* 80..BF stray continuation, C0 C1 overlong, F5..FF */
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

int r2m_utf8_check(const char *s, size_t n, size_t *bad_offset)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, k;
    /* ASCII fast path: 32 bytes at a time over long runs (a whole body),
     * then eight at a time while eight are left */
    while (n - i >= 32) {
        uint64_t w[4];
        memcpy(w, p + i, 32);
        if ((w[0] | w[1] | w[2] | w[3]) & UINT64_C(0x8080808080808080))
            break;
        i += 32;
    }
    while (n - i >= 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (!(w & UINT64_C(0x8080808080808080))) {
            i += 8;
            continue;
        }
        while (p[i] < 0x80) /* the word holds a byte >= 0x80 */
            i++;
        if (!(k = seq_len(p + i, n - i)))
            goto bad;
        i += k;
    }
    /* most strings in a document are shorter than a word */
    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        if (!(k = seq_len(p + i, n - i)))
            goto bad;
        i += k;
    }
    return 0;
bad:
    if (bad_offset)
        *bad_offset = i;
    return R2M_E_INVALID;
}

const char *r2m_utf8_reason(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    if (!n || seq_len(p, n))
        return "valid";
    unsigned char c = p[0];
    if (c >= 0x80 && c <= 0xbf)
        return "stray continuation byte";
    if (c == 0xc0 || c == 0xc1)
        return "overlong encoding";
    if (c >= 0xf5)
        return "byte never used in UTF-8 (F5..FF)";
    size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
    for (size_t i = 1; i < len; i++)
        if (i >= n || (p[i] & 0xc0) != 0x80)
            return "truncated sequence";
    if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xf0 && p[1] < 0x90))
        return "overlong encoding";
    if (c == 0xed)
        return "UTF-16 surrogate encoded as UTF-8";
    return "code point above U+10FFFF";
}
