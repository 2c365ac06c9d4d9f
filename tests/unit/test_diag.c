/* test_diag.c - positioned diagnostics: file order, limits, excerpts and
 * "did you mean". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "r2m/diag.h"

/* reports come out sorted by line and column; one position keeps its order */
static void test_file_order(void **state)
{
    (void)state;
    struct r2m_diag_list l = {.file = "f.yaml"};
    struct r2m_diag d = {0};
    r2m_diag_error(&l, 3, 1, "third %d", 3);
    r2m_diag_error(&l, 1, 5, "first");
    r2m_diag_error(&l, 3, 1, "third again");
    r2m_diag_error(&l, 0, 0, "whole file");
    r2m_diag_error(&l, 1, 2, "before first");
    assert_int_equal(l.n_err, 5);
    r2m_diag_list_finish(&l, &d);
    assert_int_equal(d.n, 5);
    assert_string_equal(d.lines[0], "f.yaml: error: whole file");
    assert_string_equal(d.lines[1], "f.yaml:1:2: error: before first");
    assert_string_equal(d.lines[2], "f.yaml:1:5: error: first");
    assert_string_equal(d.lines[3], "f.yaml:3:1: error: third 3");
    assert_string_equal(d.lines[4], "f.yaml:3:1: error: third again");
    assert_null(l.items);
    r2m_diag_free(&d);
    assert_int_equal(d.n, 0);
    r2m_diag_free(NULL);
}

/* at most 100 lines are handed over, then one line counting the rest */
static void test_limits(void **state)
{
    (void)state;
    struct r2m_diag_list l = {.file = "f"};
    struct r2m_diag d = {0};
    for (int i = 0; i < 1500; i++)
        r2m_diag_error(&l, i + 1, 1, "e%d", i);
    assert_int_equal(l.n_err, 1500);
    assert_int_equal(l.n, 1000);
    r2m_diag_list_finish(&l, &d);
    assert_int_equal(d.n, 101);
    assert_string_equal(d.lines[99], "f:100:1: error: e99");
    assert_string_equal(d.lines[100],
                        "f: error: 1400 more errors not shown; fix the ones above first");
    r2m_diag_free(&d);
    /* a NULL diag drops the lines but frees the reports */
    r2m_diag_error(&l, 1, 1, "x");
    r2m_diag_list_finish(&l, NULL);
    assert_null(l.items);
}

static void test_nomem_line(void **state)
{
    (void)state;
    struct r2m_diag_list l = {.file = "f", .nomem = 1};
    struct r2m_diag d = {0};
    r2m_diag_list_finish(&l, &d);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.lines[0], "f: error: out of memory while reading the configuration");
    r2m_diag_free(&d);
}

static void test_quote(void **state)
{
    (void)state;
    assert_string_equal(r2m_diag_quote("abc").s, "'abc'");
    assert_string_equal(r2m_diag_quote("a\nb\x7f").s, "'a?b?'");
    char longs[200];
    memset(longs, 'x', sizeof longs - 1);
    longs[sizeof longs - 1] = '\0';
    struct r2m_excerpt e = r2m_diag_quote(longs);
    size_t n = strlen(e.s);
    assert_true(n < sizeof e.s);
    assert_memory_equal(e.s + n - 4, "...'", 4);
    /* a UTF-8 sequence is never cut in half: only whole "é" before "..." */
    char utf[200] = "";
    for (int i = 0; i < 60; i++)
        strcat(utf, "\xc3\xa9");
    e = r2m_diag_quote(utf);
    n = strlen(e.s);
    const char *dots = e.s + n - 4;
    assert_memory_equal(dots, "...'", 4);
    assert_int_equal((dots - (e.s + 1)) % 2, 0);
}

static void test_suggest(void **state)
{
    (void)state;
    static const char *const keys[] = {"url", "interval", "timeout", "max_body", "qos"};
    assert_string_equal(r2m_diag_suggest("intervall", keys, 5), "interval");
    assert_string_equal(r2m_diag_suggest("INTERVAL", keys, 5), "interval");
    assert_string_equal(r2m_diag_suggest("timoeut", keys, 5), "timeout"); /* transpositions */
    assert_string_equal(r2m_diag_suggest("ur", keys, 5), "url");
    assert_null(r2m_diag_suggest("u", keys, 5)); /* distance not below the length */
    assert_null(r2m_diag_suggest("zzzz", keys, 5));
    assert_null(r2m_diag_suggest("qxx", keys, 5)); /* 2 edits for a 3-letter key */
    assert_null(r2m_diag_suggest("interval", keys, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_order), cmocka_unit_test(test_limits),
        cmocka_unit_test(test_nomem_line), cmocka_unit_test(test_quote),
        cmocka_unit_test(test_suggest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
