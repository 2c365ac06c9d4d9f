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

void r2m_log_setup(int level, int format); /* format: enum r2m_log_format */
/* Fixes the level (e.g. from --log-level) so later r2m_log_setup calls, such
 * as a reload of the file, keep it; -1 unpins. */
void r2m_log_pin_level(int level);
extern int r2m_log_level_current;
#define r2m_log_enabled(lvl) ((lvl) <= r2m_log_level_current)

/* msg is a fixed phrase; kv is NULL-terminated pairs of key, value strings.
 * Example: r2m_log(R2M_LOG_WARN, "poll failed", "endpoint", name, "error", e, NULL); */
void r2m_log(int level, const char *msg, ...) __attribute__((sentinel));

/* url as it may be shown in logs, errors and `check`: the password of a
 * user part ("mqtt://user:secret@host") replaced by "***". Everything up to
 * the last '@' before the query counts as the user part, so a password
 * holding '@' or '/' is masked whole. Writes at most outlen bytes
 * (truncating; strlen(url) + 8 always fits) and returns out. */
const char *r2m_log_url(const char *url, char *out, size_t outlen);

/* Parses "error" "warn" "info" "debug"; -1 if unknown. */
int r2m_log_level_parse(const char *s);

#endif
