/* r2m/units.h - durations, sizes and percentages as the configuration writes them.
 *
 * Pure text-to-number conversions: no allocation, no globals, no messages
 * (the caller reports with its own position and wording). Every function
 * returns 0 or R2M_E_INVALID and writes its output only on success. */
#ifndef R2M_UNITS_H
#define R2M_UNITS_H

#include <stdint.h>

/* The longest duration a configuration may give (365 days): no interval,
 * timeout or backoff needs more, and every sum of a monotonic time and such
 * durations stays far from overflowing. r2m_units_duration itself accepts
 * up to INT64_MAX ms; the caller applies this ceiling. */
#define R2M_DURATION_MAX_MS (365ll * 86400000)

/* "250ms" "15s" "5m" "1h" "1d", also combined "1m30s" (largest unit first,
 * each at most once); a bare number is an error (units are required).
 * 0 or R2M_E_INVALID (also on overflow or NULL). */
int r2m_units_duration(const char *s, int64_t *ms);

/* "512", "512B", "64KiB", "32MiB", "1GiB", "1TiB", also KB/MB/GB/TB
 * (= 1000^n). 0 or R2M_E_INVALID (also on overflow or NULL). */
int r2m_units_size(const char *s, uint64_t *bytes);

/* "10%" or "2.5%" (digits, at most 9 decimals counted, no sign, no
 * spaces) -> 10.0 or 2.5; no upper bound beyond 1e6 (the caller checks
 * its range). 0 or R2M_E_INVALID. */
int r2m_units_percent(const char *s, double *percent);

#endif
