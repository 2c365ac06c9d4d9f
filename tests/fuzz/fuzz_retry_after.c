/* Fuzz target: Retry-After parsing (delta-seconds or HTTP-date).
 *
 * Properties:
 *  - never crashes; the delay is within 0..max; a value it calls bad
 *    gives 0; the answer is deterministic;
 *  - a date printed from the input in each of the three RFC 9110 formats
 *    reads back as exactly its distance from now (clamped). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "r2m/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const int64_t now = 1764633600; /* 2025-12-02 00:00:00 UTC */
    int64_t max = 300000;
    if (size >= 1 && data[0] == 'M') /* no cap */
        max = 0;
    int bad, bad2;
    int64_t ms = r2m_http_retry_after((const char *)data, size, now, max, &bad);
    int64_t ms2 = r2m_http_retry_after((const char *)data, size, now, max, &bad2);
    if (ms != ms2 || bad != bad2 || ms < 0 || (max > 0 && ms > max) || (bad && ms))
        abort();

    /* round trip: the first 5 bytes pick a time within about +-1100 years */
    if (size < 5)
        return 0;
    int64_t off = (int64_t)((uint64_t)data[1] << 24 | (uint64_t)data[2] << 16 |
                            (uint64_t)data[3] << 8 | data[4]) -
                  (1ll << 31);
    off *= 16;
    time_t when = (time_t)(now + off);
    struct tm tm;
    if (!gmtime_r(&when, &tm) || tm.tm_year + 1900 < 1000 || tm.tm_year + 1900 > 9999)
        return 0;
    static const char *const fmts[] = {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT",
                                       "%a %b %e %H:%M:%S %Y"};
    int f = data[0] % 3;
    if (f == 1 && (off < -40ll * 365 * 86400 || off > 40ll * 365 * 86400))
        return 0; /* two-digit years only mean something near now */
    char s[64];
    size_t n = strftime(s, sizeof s, fmts[f], &tm); /* C locale: English names */
    if (!n)
        return 0;
    int64_t want = off <= 0 ? 0 : off * 1000 > 86400000ll ? 86400000ll : off * 1000;
    ms = r2m_http_retry_after(s, n, now, 86400000ll, &bad);
    if (bad || ms != want) {
        fprintf(stderr, "%s: got %lld (bad %d), want %lld\n", s, (long long)ms, bad,
                (long long)want);
        abort();
    }
    return 0;
}
