/* test_error.c - every result code has its own text; nothing else does.
 *
 * A log line that says "unknown error" for a real code, or the same phrase
 * for two different codes, sends an operator down the wrong path; so every
 * code in R2M_OK..R2M_E__COUNT-1 must have a distinct, non-empty phrase, and
 * anything outside that range must get the fallback, never NULL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <string.h>

#include <cmocka.h>

#include "r2m/error.h"

static const char *const unknown = "unknown error";

static void test_every_code_has_a_non_empty_text_of_its_own(void **state)
{
    (void)state;
    for (int code = R2M_OK; code < R2M_E__COUNT; code++) {
        const char *t = r2m_strerror(code);
        assert_non_null(t);
        assert_true(t[0] != '\0');
        if (strcmp(t, unknown) == 0)
            fail_msg("code %d has no text of its own", code);
    }
}

static void test_no_two_codes_share_a_text(void **state)
{
    (void)state;
    for (int a = R2M_OK; a < R2M_E__COUNT; a++)
        for (int b = a + 1; b < R2M_E__COUNT; b++)
            if (strcmp(r2m_strerror(a), r2m_strerror(b)) == 0)
                fail_msg("codes %d and %d both say \"%s\"", a, b, r2m_strerror(a));
}

static void test_the_text_is_static_and_stable(void **state)
{
    (void)state;
    /* callers keep the pointer in log records; it must not change */
    for (int code = R2M_OK; code < R2M_E__COUNT; code++)
        assert_ptr_equal(r2m_strerror(code), r2m_strerror(code));
}

static void test_codes_out_of_range_give_unknown_error(void **state)
{
    (void)state;
    static const int out_of_range[] = {-1,   -2,      R2M_E__COUNT, R2M_E__COUNT + 1,
                                       1000, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof out_of_range / sizeof out_of_range[0]; i++) {
        const char *t = r2m_strerror(out_of_range[i]);
        assert_non_null(t);
        assert_string_equal(t, unknown);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code_has_a_non_empty_text_of_its_own),
        cmocka_unit_test(test_no_two_codes_share_a_text),
        cmocka_unit_test(test_the_text_is_static_and_stable),
        cmocka_unit_test(test_codes_out_of_range_give_unknown_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
