/* log.c - `ts level msg key=value...` records on stderr (or JSON lines). */
#include "r2m/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "r2m/buf.h"
#include "r2m/json.h"

int r2m_log_level_current = R2M_LOG_INFO;
static int log_format = R2M_LOG_TEXT;
static int pinned = -1; /* a level from the command line beats the file's */

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void r2m_log_setup(int level, int format)
{
    r2m_log_level_current = pinned >= 0 ? pinned : level;
    log_format = format;
}

void r2m_log_pin_level(int level)
{
    pinned = level;
    if (level >= 0)
        r2m_log_level_current = level;
}

int r2m_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    if (strcmp(s, "warning") == 0)
        return R2M_LOG_WARN;
    return -1;
}

const char *r2m_log_url(const char *url, char *out, size_t outlen)
{
    if (!outlen)
        return out;
    if (!url)
        url = "";
    const char *sep = strstr(url, "://");
    const char *auth = sep ? sep + 3 : url;
    /* Where the user part can end: before the query or fragment, or before
     * the path - whichever reaches further, so a password holding an
     * unencoded '/' or '?' or '#' is masked whole rather than shown. A
     * broker URL has no path or query, so there it is the whole URL. */
    size_t region = strcspn(auth, "?#"), to_path = strcspn(auth, "/");
    if (to_path > region)
        region = to_path;
    static const char *const brokers[] = {"mqtt://", "mqtts://", "tcp://",
                                          "ssl://",  "ws://",    "wss://"};
    for (size_t i = 0; i < sizeof brokers / sizeof brokers[0]; i++)
        if (!strncasecmp(url, brokers[i], strlen(brokers[i])))
            region = strlen(auth);
    const char *at = NULL;
    for (size_t i = 0; i < region; i++)
        if (auth[i] == '@')
            at = auth + i;
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (!colon)
        snprintf(out, outlen, "%s", url);
    else
        snprintf(out, outlen, "%.*s:***%s", (int)(colon - url), url, at);
    /* query values may be keys or tokens (?api_key=, Azure's ?code=): each
     * becomes "*", names stay; done in place, it never grows ("k=" stays) */
    char *q = strchr(out + (sep ? (size_t)(sep - url) + 3 : 0), '?');
    char *frag = strchr(out, '#');
    if (!q || (frag && frag < q))
        return out;
    char *w = ++q;
    int in_value = 0;
    for (; *q && *q != '#'; q++) {
        if (*q == '&') {
            in_value = 0;
        } else if (in_value) {
            if (in_value == 1)
                *w++ = '*';
            in_value = 2;
            continue;
        }
        *w++ = *q;
        if (*q == '=')
            in_value = 1;
    }
    memmove(w, q, strlen(q) + 1);
    return out;
}

static int needs_quotes(const char *v)
{
    if (!*v)
        return 1;
    for (; *v; v++)
        if (*v == ' ' || *v == '"' || *v == '=' || (unsigned char)*v < 0x20)
            return 1;
    return 0;
}

void r2m_log(int level, const char *msg, ...)
{
    if (!r2m_log_enabled(level) || level < 0)
        return;
    char ts[40];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    size_t k = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + k, sizeof ts - k, ".%03ldZ", now.tv_nsec / 1000000);

    struct r2m_buf b;
    r2m_buf_init(&b, 64 * 1024);
    va_list ap;
    va_start(ap, msg);
    if (log_format == R2M_LOG_JSON) {
        r2m_buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts, level_names[level]);
        r2m_json_quote(&b, msg, strlen(msg));
        const char *key;
        while ((key = va_arg(ap, const char *))) {
            const char *val = va_arg(ap, const char *);
            r2m_buf_putc(&b, ',');
            r2m_json_quote(&b, key, strlen(key));
            r2m_buf_putc(&b, ':');
            if (!val)
                val = "";
            r2m_json_quote(&b, val, strlen(val));
        }
        r2m_buf_putc(&b, '}');
    } else {
        r2m_buf_printf(&b, "%s %s %s", ts, level_names[level], msg);
        const char *key;
        while ((key = va_arg(ap, const char *))) {
            const char *val = va_arg(ap, const char *);
            if (!val)
                val = "";
            if (needs_quotes(val)) {
                r2m_buf_printf(&b, " %s=", key);
                r2m_json_quote(&b, val, strlen(val));
            } else {
                r2m_buf_printf(&b, " %s=%s", key, val);
            }
        }
    }
    va_end(ap);
    r2m_buf_putc(&b, '\n');
    if (b.data)
        fwrite(b.data, 1, b.len, stderr);
    r2m_buf_free(&b);
}

int r2m_log_due(unsigned long n, int same)
{
    return !same || n <= 1 || (n & (n - 1)) == 0;
}

int r2m_log_limit_hit(struct r2m_log_limit *l, int kind)
{
    int same = l->count > 0 && kind == l->last;
    l->count = same ? l->count + 1 : 1;
    l->last = kind;
    return r2m_log_due(l->count, same);
}

unsigned long r2m_log_limit_clear(struct r2m_log_limit *l)
{
    unsigned long n = l->count;
    l->count = 0;
    l->last = 0;
    return n;
}
