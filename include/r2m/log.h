/* r2m/log.h - one line per record on stderr: `ts level msg key=value...`.
 *
 * Levels below the configured one cost one comparison (r2m_log_enabled).
 * Values that contain spaces, quotes or '=' are quoted. The JSON format
 * writes the same record as one JSON object per line. Not thread-safe by
 * design: only the loop thread logs. */
#ifndef R2M_LOG_H
#define R2M_LOG_H

#include <stddef.h>

enum r2m_log_level { R2M_LOG_ERROR = 0, R2M_LOG_WARN, R2M_LOG_INFO, R2M_LOG_DEBUG };
/* log.format: the configuration names one, the logger owns the meaning */
enum r2m_log_format { R2M_LOG_TEXT = 0, R2M_LOG_JSON };

void r2m_log_setup(int level, int format); /* format: enum r2m_log_format */
/* Fixes the level (e.g. from --log-level) so later r2m_log_setup calls, such
 * as a reload of the file, keep it; -1 unpins. */
void r2m_log_pin_level(int level);
extern int r2m_log_level_current;
#define r2m_log_enabled(lvl) ((lvl) <= r2m_log_level_current)

/* msg is a fixed phrase; kv is NULL-terminated pairs of key, value strings.
 * Example: r2m_log(R2M_LOG_WARN, "poll failed", "endpoint", name, "error", e, NULL); */
void r2m_log(int level, const char *msg, ...) __attribute__((sentinel));

/* Rate limit for an error that repeats (a poll failing, the state file not
 * writable, the broker unreachable), so a stuck condition does not fill the
 * disk with one line per loop turn: a new kind of error is logged at once,
 * the same kind again only at its 2nd, 4th, 8th... consecutive occurrence.
 * n counts the consecutive occurrences including this one (from 1); same
 * says it is the same kind as the previous one. */
int r2m_log_due(unsigned long n, int same);

/* The same rule with its state kept for the caller. kind is any non-zero
 * number the caller picks for "the same error" (an error code). */
struct r2m_log_limit {
    unsigned long count; /* consecutive occurrences so far */
    int last;            /* kind of the last one; 0: none */
};
/* Records one occurrence; returns 1 when it should be logged. */
int r2m_log_limit_hit(struct r2m_log_limit *l, int kind);
/* The condition ended; returns how many occurrences there were. */
unsigned long r2m_log_limit_clear(struct r2m_log_limit *l);

/* url as it may be shown in logs, errors and `check`: the password of a
 * user part ("mqtt://user:secret@host") replaced by "***". Everything up to
 * the last '@' before the query counts as the user part, so a password
 * holding '@' or '/' is masked whole. The value of every query parameter
 * is shown as "*" (the names stay). Writes at most outlen bytes
 * (truncating; strlen(url) + 8 always fits) and returns out. */
const char *r2m_log_url(const char *url, char *out, size_t outlen);

/* Parses "error" "warn" "info" "debug"; -1 if unknown. */
int r2m_log_level_parse(const char *s);

#endif
