/* test_buf.c - the growable buffer: its ceiling, its appends, its lifetime.
 *
 * Every case states one promise of r2m/buf.h: the ceiling is honoured to the
 * byte, a refused append leaves the buffer as it was, the text is always
 * NUL-terminated, reset keeps the memory and take hands it over. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "r2m/buf.h"
#include "r2m/error.h"

/* The invariant every operation must keep: data[len] is the NUL byte. */
static void assert_terminated(const struct r2m_buf *b)
{
    assert_non_null(b->data);
    assert_true(b->len < b->cap);
    assert_int_equal(b->data[b->len], '\0');
}

static void assert_contents(const struct r2m_buf *b, const char *expected)
{
    assert_terminated(b);
    assert_int_equal(b->len, strlen(expected));
    assert_memory_equal(b->data, expected, b->len);
}

/* ---- creation ---------------------------------------------------------- */

static void test_a_new_buffer_is_empty_and_allocates_nothing(void **state)
{
    (void)state;
    struct r2m_buf b;
    r2m_buf_init(&b, 100);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(b.max, 100);
    r2m_buf_free(&b);
}

static void test_free_accepts_null_and_leaves_buffer_reusable(void **state)
{
    (void)state;
    r2m_buf_free(NULL);

    struct r2m_buf b;
    r2m_buf_init(&b, 16);
    assert_int_equal(r2m_buf_puts(&b, "first"), 0);
    r2m_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);

    r2m_buf_init(&b, 16);
    assert_int_equal(r2m_buf_puts(&b, "second"), 0);
    assert_contents(&b, "second");
    r2m_buf_free(&b);
    r2m_buf_free(&b); /* twice is harmless: data was nulled */
}

/* ---- the ceiling -------------------------------------------------------- */

static void test_appending_exactly_up_to_the_ceiling_succeeds(void **state)
{
    (void)state;
    struct r2m_buf b;
    r2m_buf_init(&b, 10);
    assert_int_equal(r2m_buf_append(&b, "0123456789", 10), 0);
    assert_contents(&b, "0123456789");
    r2m_buf_free(&b);
}

static void test_one_byte_over_the_ceiling_is_refused_and_changes_nothing(void **state)
{
    (void)state;
    struct r2m_buf b;
    r2m_buf_init(&b, 10);
    assert_int_equal(r2m_buf_puts(&b, "01234"), 0);
    assert_int_equal(r2m_buf_puts(&b, "56789"), 0);

    assert_int_equal(r2m_buf_putc(&b, 'x'), R2M_E_TOO_BIG);
    assert_contents(&b, "0123456789");
    assert_int_equal(r2m_buf_puts(&b, "x"), R2M_E_TOO_BIG);
    assert_int_equal(r2m_buf_append(&b, "x", 1), R2M_E_TOO_BIG);
    assert_int_equal(r2m_buf_printf(&b, "%c", 'x'), R2M_E_TOO_BIG);
    assert_contents(&b, "0123456789");

    /* appending nothing at the ceiling is still fine */
    assert_int_equal(r2m_buf_append(&b, "", 0), 0);
    assert_contents(&b, "0123456789");
    r2m_buf_free(&b);
}

static void test_an_append_larger_than_the_room_left_is_refused_whole(void **state)
{
    (void)state;
    struct r2m_buf b;
    r2m_buf_init(&b, 8);
    assert_int_equal(r2m_buf_puts(&b, "abc"), 0);
    /* 6 bytes do not fit in the 5 left: none of them may be written */
    assert_int_equal(r2m_buf_puts(&b, "defghi"), R2M_E_TOO_BIG);
    assert_contents(&b, "abc");
    assert_int_equal(r2m_buf_puts(&b, "defgh"), 0);
    assert_contents(&b, "abcdefgh");
    r2m_buf_free(&b);
}

static void test_a_refused_first_append_allocates_nothing(void **state)
{
    (void)state;
    struct r2m_buf b;
    r2m_buf_init(&b, 3);
    assert_int_equal(r2m_buf_puts(&b, "four"), R2M_E_TOO_BIG);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    r2m_buf_free(&b);
}

static void test_a_zero_ceiling_accepts_only_empty_appends(void **state)
{
    (void)state;
    struct r2m_buf b;
    r2m_buf_init(&b, 0);
    assert_int_equal(r2m_buf_append(&b, "", 0), 0);
    assert_contents(&b, "");
    assert_int_equal(r2m_buf_putc(&b, 'a'), R2M_E_TOO_BIG);
    assert_int_equal(r2m_buf_printf(&b, "%s", "a"), R2M_E_TOO_BIG);
    assert_contents(&b, "");
    r2m_buf_free(&b);
}

static void test_a_huge_append_does_not_overflow_the_size_check(void **state)
{
    (void)state;
    struct r2m_buf b;
    r2m_buf_init(&b, 64);
    assert_int_equal(r2m_buf_puts(&b, "x"), 0);
    /* len + n would wrap around SIZE_MAX; the check must not be fooled */
    assert_int_equal(r2m_buf_append(&b, "y", SIZE_MAX), R2M_E_TOO_BIG);
    assert_contents(&b, "x");
    r2m_buf_free(&b);
}

static void test_a_ceiling_of_size_max_grows_normally(void **state)
{
    (void)state;
    struct r2m_buf b;
    r2m_buf_init(&b, SIZE_MAX);
    assert_int_equal(r2m_buf_puts(&b, "unbounded"), 0);
    assert_contents(&b, "unbounded");
    r2m_buf_free(&b);
}

/* ---- appends ------------------------------------------------------------ */

static void test_puts_putc_and_append_concatenate_in_order(void **state)
{
    (void)state;
    struct r2m_buf b;
    r2m_buf_init(&b, 1024);
    assert_int_equal(r2m_buf_puts(&b, "alpha"), 0);
    assert_int_equal(r2m_buf_putc(&b, '/'), 0);
    assert_int_equal(r2m_buf_append(&b, "beta-ignored", 4), 0);
    assert_int_equal(r2m_buf_puts(&b, ""), 0);
    assert_int_equal(r2m_buf_putc(&b, '!'), 0);
    assert_contents(&b, "alpha/beta!");
    r2m_buf_free(&b);
}

static void test_append_keeps_embedded_nul_bytes_and_counts_them(void **state)
{
    (void)state;
    struct r2m_buf b;
    r2m_buf_init(&b, 16);
    assert_int_equal(r2m_buf_append(&b, "a\0b", 3), 0);
    assert_int_equal(r2m_buf_putc(&b, '\0'), 0);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, "a\0b\0", 4);
    assert_terminated(&b);
    r2m_buf_free(&b);
}

static void test_many_small_appends_grow_the_buffer_and_keep_every_byte(void **state)
{
    (void)state;
    struct r2m_buf b;
    r2m_buf_init(&b, 100000);
    for (size_t i = 0; i < 100000; i++) {
        assert_int_equal(r2m_buf_putc(&b, (char)('a' + i % 26)), 0);
        assert_terminated(&b);
    }
    assert_int_equal(b.len, 100000);
    for (size_t i = 0; i < 100000; i++)
        assert_int_equal(b.data[i], 'a' + i % 26);
    /* and the ceiling is exactly where it was set */
    assert_int_equal(r2m_buf_putc(&b, 'z'), R2M_E_TOO_BIG);
    assert_int_equal(b.len, 100000);
    r2m_buf_free(&b);
}

/* ---- printf ------------------------------------------------------------- */

static void test_printf_appends_formatted_text(void **state)
{
    (void)state;
    struct r2m_buf b;
    r2m_buf_init(&b, 1024);
    assert_int_equal(r2m_buf_puts(&b, "> "), 0);
    assert_int_equal(r2m_buf_printf(&b, "%s=%d (%05.1f)", "answer", 42, 3.14159), 0);
    assert_int_equal(r2m_buf_printf(&b, "%s", ""), 0);
    assert_contents(&b, "> answer=42 (003.1)");
    r2m_buf_free(&b);
}

/* Builds the n-byte text "0123456789012..." that printf should produce. */
static char *digits(size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        s[i] = (char)('0' + i % 10);
    s[n] = '\0';
    return s;
}

static void test_printf_longer_than_256_bytes_is_written_whole(void **state)
{
    (void)state;
    static const size_t sizes[] = {255, 256, 257, 300, 1000, 5000, 70000};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        char *want = digits(n);
        struct r2m_buf b;
        r2m_buf_init(&b, 1 << 20);
        assert_int_equal(r2m_buf_puts(&b, "head:"), 0);
        assert_int_equal(r2m_buf_printf(&b, "%s|%d", want, 7), 0);
        assert_int_equal(b.len, 5 + n + 2);
        assert_memory_equal(b.data, "head:", 5);
        assert_memory_equal(b.data + 5, want, n);
        assert_memory_equal(b.data + 5 + n, "|7", 2);
        assert_terminated(&b);
        /* appending after a long printf continues at the right place */
        assert_int_equal(r2m_buf_putc(&b, '.'), 0);
        assert_int_equal(b.len, 5 + n + 3);
        assert_int_equal(b.data[b.len - 1], '.');
        assert_terminated(&b);
        r2m_buf_free(&b);
        free(want);
    }
}

static void test_a_long_printf_over_the_ceiling_is_refused_and_changes_nothing(void **state)
{
    (void)state;
    char *text = digits(600);
    struct r2m_buf b;
    r2m_buf_init(&b, 600);
    assert_int_equal(r2m_buf_puts(&b, "x"), 0);
    assert_int_equal(r2m_buf_printf(&b, "%s", text), R2M_E_TOO_BIG);
    assert_contents(&b, "x");
    /* exactly at the ceiling the long path accepts it */
    r2m_buf_reset(&b);
    assert_int_equal(r2m_buf_printf(&b, "%s", text), 0);
    assert_contents(&b, text);
    r2m_buf_free(&b);
    free(text);
}

/* ---- reset -------------------------------------------------------------- */

static void test_reset_empties_the_buffer_but_keeps_its_memory(void **state)
{
    (void)state;
    struct r2m_buf b;
    r2m_buf_init(&b, 4096);
    char *text = digits(1000);
    assert_int_equal(r2m_buf_puts(&b, text), 0);
    char *mem = b.data;
    size_t cap = b.cap;

    r2m_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.data, mem);
    assert_int_equal(b.cap, cap);
    assert_int_equal(b.max, 4096);
    assert_contents(&b, "");

    /* refilling up to the old size reuses the same memory */
    assert_int_equal(r2m_buf_puts(&b, text), 0);
    assert_ptr_equal(b.data, mem);
    assert_contents(&b, text);
    r2m_buf_free(&b);
    free(text);
}

static void test_reset_of_an_unused_buffer_is_harmless(void **state)
{
    (void)state;
    struct r2m_buf b;
    r2m_buf_init(&b, 8);
    r2m_buf_reset(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    r2m_buf_free(&b);
}

/* ---- take --------------------------------------------------------------- */

static void test_take_hands_over_the_text_and_resets_the_buffer(void **state)
{
    (void)state;
    struct r2m_buf b;
    r2m_buf_init(&b, 64);
    assert_int_equal(r2m_buf_puts(&b, "owned by caller"), 0);
    char *mem = b.data;

    char *s = r2m_buf_take(&b);
    assert_ptr_equal(s, mem); /* no copy */
    assert_string_equal(s, "owned by caller");
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);

    /* the buffer is usable again with its ceiling, and independent of s */
    assert_int_equal(r2m_buf_puts(&b, "new"), 0);
    assert_contents(&b, "new");
    assert_string_equal(s, "owned by caller");
    assert_int_equal(b.max, 64);

    free(s); /* the caller's to free; ASan reports a leak or double free */
    r2m_buf_free(&b);
}

static void test_take_of_an_empty_buffer_returns_an_empty_string_not_null(void **state)
{
    (void)state;
    struct r2m_buf b;
    r2m_buf_init(&b, 64);
    char *s = r2m_buf_take(&b);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);

    /* an emptied buffer that still holds memory gives "" too */
    assert_int_equal(r2m_buf_puts(&b, "gone"), 0);
    r2m_buf_reset(&b);
    s = r2m_buf_take(&b);
    assert_non_null(s);
    assert_string_equal(s, "");
    assert_null(b.data);
    free(s);
    r2m_buf_free(&b);
}

static void test_take_after_binary_appends_keeps_the_terminating_nul(void **state)
{
    (void)state;
    struct r2m_buf b;
    r2m_buf_init(&b, 64);
    assert_int_equal(r2m_buf_append(&b, "k\0v", 3), 0);
    char *s = r2m_buf_take(&b);
    assert_memory_equal(s, "k\0v\0", 4);
    free(s);
    r2m_buf_free(&b);
}

static void test_grow_makes_room_and_keeps_the_elements(void **state)
{
    (void)state;
    int64_t *v = NULL;
    size_t cap = 0;
    assert_int_equal(r2m_grow(&v, &cap, 0, sizeof *v), 0);
    assert_null(v); /* nothing needed, nothing allocated */
    assert_int_equal(r2m_grow(&v, &cap, 1, sizeof *v), 0);
    assert_int_equal(cap, 16);
    for (int64_t i = 0; i < 16; i++)
        v[i] = i * 7;
    assert_int_equal(r2m_grow(&v, &cap, 40, sizeof *v), 0);
    assert_int_equal(cap, 64);
    for (int64_t i = 0; i < 16; i++)
        assert_int_equal(v[i], i * 7);
    int64_t *before = v;
    assert_int_equal(r2m_grow(&v, &cap, 64, sizeof *v), 0); /* fits: unchanged */
    assert_ptr_equal(v, before);
    /* a count whose bytes would overflow size_t is refused, array kept */
    assert_int_equal(r2m_grow(&v, &cap, SIZE_MAX / 4, sizeof *v), R2M_E_NOMEM);
    assert_ptr_equal(v, before);
    assert_int_equal(cap, 64);
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_new_buffer_is_empty_and_allocates_nothing),
        cmocka_unit_test(test_free_accepts_null_and_leaves_buffer_reusable),
        cmocka_unit_test(test_appending_exactly_up_to_the_ceiling_succeeds),
        cmocka_unit_test(test_one_byte_over_the_ceiling_is_refused_and_changes_nothing),
        cmocka_unit_test(test_an_append_larger_than_the_room_left_is_refused_whole),
        cmocka_unit_test(test_a_refused_first_append_allocates_nothing),
        cmocka_unit_test(test_a_zero_ceiling_accepts_only_empty_appends),
        cmocka_unit_test(test_a_huge_append_does_not_overflow_the_size_check),
        cmocka_unit_test(test_a_ceiling_of_size_max_grows_normally),
        cmocka_unit_test(test_puts_putc_and_append_concatenate_in_order),
        cmocka_unit_test(test_append_keeps_embedded_nul_bytes_and_counts_them),
        cmocka_unit_test(test_many_small_appends_grow_the_buffer_and_keep_every_byte),
        cmocka_unit_test(test_printf_appends_formatted_text),
        cmocka_unit_test(test_printf_longer_than_256_bytes_is_written_whole),
        cmocka_unit_test(test_a_long_printf_over_the_ceiling_is_refused_and_changes_nothing),
        cmocka_unit_test(test_reset_empties_the_buffer_but_keeps_its_memory),
        cmocka_unit_test(test_reset_of_an_unused_buffer_is_harmless),
        cmocka_unit_test(test_take_hands_over_the_text_and_resets_the_buffer),
        cmocka_unit_test(test_take_of_an_empty_buffer_returns_an_empty_string_not_null),
        cmocka_unit_test(test_take_after_binary_appends_keeps_the_terminating_nul),
        cmocka_unit_test(test_grow_makes_room_and_keeps_the_elements),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
