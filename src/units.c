/* units.c - durations, sizes and percentages (see r2m/units.h). */
#include "r2m/units.h"

#include <stddef.h>
#include <string.h>

#include "r2m/error.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

int r2m_units_duration(const char *s, int64_t *ms)
{
    /* largest unit first; each unit at most once, so "1m30s" but not "30s1m" */
    static const struct {
        const char *unit;
        int64_t mul;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
    if (!s || !*s)
        return R2M_E_INVALID;
    int64_t total = 0;
    int last = -1;
    while (*s) {
        if (*s < '0' || *s > '9')
            return R2M_E_INVALID;
        int64_t v = 0;
        for (; *s >= '0' && *s <= '9'; s++) {
            int d = *s - '0';
            if (v > (INT64_MAX - d) / 10)
                return R2M_E_INVALID;
            v = v * 10 + d;
        }
        int u;
        if (s[0] == 'm' && s[1] == 's')
            u = 4;
        else if (*s == 'd')
            u = 0;
        else if (*s == 'h')
            u = 1;
        else if (*s == 'm')
            u = 2;
        else if (*s == 's')
            u = 3;
        else
            return R2M_E_INVALID;
        if (u <= last)
            return R2M_E_INVALID;
        last = u;
        s += strlen(units[u].unit);
        if (v > INT64_MAX / units[u].mul)
            return R2M_E_INVALID;
        v *= units[u].mul;
        if (total > INT64_MAX - v)
            return R2M_E_INVALID;
        total += v;
    }
    *ms = total;
    return 0;
}

int r2m_units_size(const char *s, uint64_t *bytes)
{
    static const struct {
        const char *unit;
        uint64_t mul;
    } units[] = {
        {"", 1},
        {"B", 1},
        {"KB", 1000ull},
        {"MB", 1000000ull},
        {"GB", 1000000000ull},
        {"TB", 1000000000000ull},
        {"KiB", 1ull << 10},
        {"MiB", 1ull << 20},
        {"GiB", 1ull << 30},
        {"TiB", 1ull << 40},
    };
    if (!s || *s < '0' || *s > '9')
        return R2M_E_INVALID;
    uint64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return R2M_E_INVALID;
        v = v * 10 + d;
    }
    for (size_t i = 0; i < ARRAY_LEN(units); i++) {
        if (strcmp(s, units[i].unit))
            continue;
        if (v > UINT64_MAX / units[i].mul)
            return R2M_E_INVALID;
        *bytes = v * units[i].mul;
        return 0;
    }
    return R2M_E_INVALID;
}

int r2m_units_percent(const char *s, double *percent)
{
    double v = 0;
    if (!s || *s < '0' || *s > '9')
        return R2M_E_INVALID;
    for (; *s >= '0' && *s <= '9'; s++) {
        v = v * 10 + (*s - '0');
        if (v > 1e6)
            return R2M_E_INVALID;
    }
    if (*s == '.') {
        s++;
        if (*s < '0' || *s > '9')
            return R2M_E_INVALID;
        double scale = 1;
        long frac = 0;
        for (int k = 0; *s >= '0' && *s <= '9'; s++, k++)
            if (k < 9) {
                frac = frac * 10 + (*s - '0');
                scale *= 10;
            }
        v += (double)frac / scale;
    }
    if (s[0] != '%' || s[1] != '\0')
        return R2M_E_INVALID;
    *percent = v;
    return 0;
}
