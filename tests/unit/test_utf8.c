/* test_utf8.c - the strict UTF-8 check: a table of valid and invalid inputs.
 *
 * Each invalid case names the offset of the first bad sequence and the
 * reason given for it; the boundaries of every lead byte's range (the
 * shortest forms, the last code point before the surrogates, U+10FFFF)
 * are among the valid ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "r2m/error.h"
#include "r2m/utf8.h"

#define S(lit) lit, sizeof lit - 1

static const struct {
    const char *s;
    size_t n;
} valid[] = {
    {S("")},
    {S("plain ascii, longer than one word of eight bytes")},
    {S("nul \0 is U+0000")},
    {S("\x7f")},
    {S("\xc2\x80")},         /* U+0080, shortest 2-byte */
    {S("\xdf\xbf")},         /* U+07FF */
    {S("\xe0\xa0\x80")},     /* U+0800, shortest 3-byte */
    {S("\xed\x9f\xbf")},     /* U+D7FF, just below the surrogates */
    {S("\xee\x80\x80")},     /* U+E000, just above them */
    {S("\xef\xbf\xbf")},     /* U+FFFF */
    {S("\xf0\x90\x80\x80")}, /* U+10000, shortest 4-byte */
    {S("\xf4\x8f\xbf\xbf")}, /* U+10FFFF, the last code point */
    {S("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 after the emoji, ascii again")},
};

static const struct {
    const char *s;
    size_t n;
    size_t bad;
    const char *why;
} invalid[] = {
    {S("\x80"), 0, "stray continuation byte"},
    {S("abcdefghij\xbf"), 10, "stray continuation byte"},
    {S("\xc0\xaf"), 0, "overlong encoding"}, /* '/' in two bytes */
    {S("\xc1\xbf"), 0, "overlong encoding"},
    {S("ok\xe0\x80\xaf"), 2, "overlong encoding"},
    {S("\xf0\x80\x80\xaf"), 0, "overlong encoding"},
    {S("\xed\xa0\x80"), 0, "UTF-16 surrogate encoded as UTF-8"},  /* U+D800 */
    {S("x\xed\xbf\xbf"), 1, "UTF-16 surrogate encoded as UTF-8"}, /* U+DFFF */
    {S("\xf4\x90\x80\x80"), 0, "code point above U+10FFFF"},
    {S("\xf5\x80\x80\x80"), 0, "byte never used in UTF-8 (F5..FF)"},
    {S("\xff"), 0, "byte never used in UTF-8 (F5..FF)"},
    {S("\xfe\xfe"), 0, "byte never used in UTF-8 (F5..FF)"},
    {S("\xc3"), 0, "truncated sequence"},
    {S("\xc3x"), 0, "truncated sequence"},
    {S("12345678\xe2\x82"), 8, "truncated sequence"},
    {S("\xf0\x9f\x98"), 0, "truncated sequence"},
    {S("\xf0\x9f\x98\x80\xf0\x9f\x98"), 4, "truncated sequence"},
    {S("\xe2\x82\xac\xc3\xa9\xc3\xc3"), 5, "truncated sequence"},
};

static void test_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        size_t bad = 12345;
        if (r2m_utf8_check(valid[i].s, valid[i].n, &bad) != 0)
            fail_msg("valid case %zu refused at offset %zu", i, bad);
        assert_int_equal(bad, 12345); /* untouched */
        if (valid[i].n)
            assert_string_equal(r2m_utf8_reason(valid[i].s, valid[i].n), "valid");
    }
    assert_int_equal(r2m_utf8_check(NULL, 0, NULL), 0);
}

static void test_invalid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        size_t bad = 12345;
        if (r2m_utf8_check(invalid[i].s, invalid[i].n, &bad) != R2M_E_INVALID)
            fail_msg("invalid case %zu accepted", i);
        if (bad != invalid[i].bad)
            fail_msg("invalid case %zu: offset %zu, expected %zu", i, bad, invalid[i].bad);
        const char *why = r2m_utf8_reason(invalid[i].s + bad, invalid[i].n - bad);
        if (strcmp(why, invalid[i].why) != 0)
            fail_msg("invalid case %zu: reason \"%s\", expected \"%s\"", i, why, invalid[i].why);
        /* bad_offset may be NULL */
        assert_int_equal(r2m_utf8_check(invalid[i].s, invalid[i].n, NULL), R2M_E_INVALID);
    }
}

/* Every 1- and 2-byte input against a reference decoder written from the
 * definition (a scalar value in its shortest form), so the table above
 * cannot have missed a lead byte. */
static int reference_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], len, cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0)
            len = 2, cp = c & 0x1f;
        else if ((c & 0xf0) == 0xe0)
            len = 3, cp = c & 0x0f;
        else if ((c & 0xf8) == 0xf0)
            len = 4, cp = c & 0x07;
        else
            return 0;
        if (i + len > n)
            return 0;
        for (unsigned k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        unsigned min = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += len;
    }
    return 1;
}

static void test_exhaustive_short(void **state)
{
    (void)state;
    unsigned char b[4];
    for (unsigned x = 0; x < 256; x++) {
        b[0] = (unsigned char)x;
        assert_int_equal(r2m_utf8_check((char *)b, 1, NULL) == 0, reference_ok(b, 1));
        for (unsigned y = 0; y < 256; y++) {
            b[1] = (unsigned char)y;
            assert_int_equal(r2m_utf8_check((char *)b, 2, NULL) == 0, reference_ok(b, 2));
            /* and as the first bytes of 3- and 4-byte sequences */
            b[2] = 0x80;
            b[3] = 0xbf;
            assert_int_equal(r2m_utf8_check((char *)b, 3, NULL) == 0, reference_ok(b, 3));
            assert_int_equal(r2m_utf8_check((char *)b, 4, NULL) == 0, reference_ok(b, 4));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_exhaustive_short),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
