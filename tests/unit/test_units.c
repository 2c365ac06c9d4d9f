/* test_units.c - durations, sizes and percentages: every accepted form with
 * its value, and refused forms leave the output untouched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "r2m/error.h"
#include "r2m/units.h"

static void test_duration(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int64_t ms;
    } good[] = {
        {"250ms", 250},     {"15s", 15000},         {"5m", 300000},
        {"1h", 3600000},    {"1d", 86400000},       {"1m30s", 90000},
        {"1d2h", 93600000}, {"1h1m1s1ms", 3661001}, {"0s", 0},
        {"0ms", 0},         {"007s", 7000},         {"9223372036854775807ms", INT64_MAX},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t ms = -1;
        if (r2m_units_duration(good[i].in, &ms))
            fail_msg("'%s' refused", good[i].in);
        assert_int_equal(ms, good[i].ms);
    }
    static const char *const bad[] = {
        "",
        "30",
        "abc",
        "s",
        "ms",
        "1x",
        "1.5s",
        "-1s",
        " 1s",
        "1s ",
        "30s1m",
        "1s1s",
        "1mss",
        "1S",
        "1sec",
        "1 s",
        "1m30",
        "+1s",
        "1e3ms",
        "0x10s",
        "9223372036854775808ms", /* one past INT64_MAX */
        "99999999999999999999s", /* the digits alone overflow */
        "106751991168d",         /* the multiplication overflows */
        "106751991167d23h",      /* the sum overflows */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = 12345;
        if (r2m_units_duration(bad[i], &ms) != R2M_E_INVALID)
            fail_msg("'%s' accepted", bad[i]);
        assert_int_equal(ms, 12345);
    }
    int64_t ms;
    assert_int_equal(r2m_units_duration(NULL, &ms), R2M_E_INVALID);
}

static void test_size(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        uint64_t bytes;
    } good[] = {
        {"512", 512},
        {"512B", 512},
        {"0", 0},
        {"64KiB", 65536},
        {"32MiB", 33554432},
        {"1GiB", 1073741824},
        {"2TiB", 2ull << 40},
        {"1KB", 1000},
        {"2MB", 2000000},
        {"3GB", 3000000000ull},
        {"1TB", 1000000000000ull},
        {"18446744073709551615", UINT64_MAX},
        {"18446744073709551615B", UINT64_MAX},
        {"16777215TiB", 16777215ull << 40},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint64_t b = 1;
        if (r2m_units_size(good[i].in, &b))
            fail_msg("'%s' refused", good[i].in);
        assert_true(b == good[i].bytes);
    }
    static const char *const bad[] = {
        "",
        "KiB",
        "B",
        "1.5MiB",
        "-1",
        "+1",
        "1 KiB",
        "1kib",
        "1kb",
        "1KiBB",
        "1x",
        " 1",
        "1 ",
        "1K",
        "0x10",
        "18446744073709551616", /* one past UINT64_MAX */
        "16777216TiB",          /* 2^64 */
        "18446744073709552KB",  /* multiplication overflows */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t b = 7;
        if (r2m_units_size(bad[i], &b) != R2M_E_INVALID)
            fail_msg("'%s' accepted", bad[i]);
        assert_true(b == 7);
    }
    uint64_t b;
    assert_int_equal(r2m_units_size(NULL, &b), R2M_E_INVALID);
}

static void test_percent(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        double pct;
    } good[] = {
        {"0%", 0},
        {"10%", 10},
        {"100%", 100},
        {"2.5%", 2.5},
        {"007%", 7},
        {"150%", 150},
        {"0.1234567891234%", 0.123456789},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        double p = -1;
        if (r2m_units_percent(good[i].in, &p))
            fail_msg("'%s' refused", good[i].in);
        assert_float_equal(p, good[i].pct, 1e-9);
    }
    static const char *const bad[] = {
        "",    "%",   "10",   "10 %", " 10%", "-1%",       "+1%",
        "1.%", ".5%", "10%%", "10%x", "1e2%", "10000000%", /* beyond 1e6 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double p = 42;
        if (r2m_units_percent(bad[i], &p) != R2M_E_INVALID)
            fail_msg("'%s' accepted", bad[i]);
        assert_float_equal(p, 42, 0);
    }
    double p;
    assert_int_equal(r2m_units_percent(NULL, &p), R2M_E_INVALID);
}

/* the ceiling the configuration applies is 365 days, and it parses */
static void test_duration_max(void **state)
{
    (void)state;
    int64_t ms = 0;
    assert_int_equal(r2m_units_duration("365d", &ms), 0);
    assert_int_equal(ms, R2M_DURATION_MAX_MS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_size),
        cmocka_unit_test(test_percent),
        cmocka_unit_test(test_duration_max),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
