/* event.c - CloudEvents rendering from canonical fragments. */
#include "r2m/event.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
/* the state type is only public with this; stable within xxhash 0.8 */
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "r2m/error.h"
#include "r2m/utf8.h"

/* n = 0: a C string. */
static size_t len_of(const char *s, size_t n)
{
    return n ? n : strlen(s);
}

const char *r2m_event_type_name(enum r2m_event_type t)
{
    static const char *const names[R2M_EVENT_TYPES] = {
        [R2M_EVENT_DOCUMENT_CHANGED] = "rest2mqtt.document.changed",
        [R2M_EVENT_ITEM_CREATED] = "rest2mqtt.item.created",
        [R2M_EVENT_ITEM_UPDATED] = "rest2mqtt.item.updated",
        [R2M_EVENT_ITEM_DELETED] = "rest2mqtt.item.deleted",
    };
    return (unsigned)t < R2M_EVENT_TYPES ? names[t] : NULL;
}

void r2m_event_id(char id[17], uint64_t epoch, const char *endpoint, const char *key,
                  size_t key_len, const char *op, struct r2m_fp before, struct r2m_fp after,
                  uint64_t seq)
{
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, &epoch, sizeof epoch);
    /* strings are followed by a NUL so ("ab","c") and ("a","bc") differ;
     * a key may hold NUL itself, but endpoint and op never do, so the
     * sequence still splits one way only (and a key without NUL hashes as
     * it always did: ids of stored events do not change) */
    XXH3_64bits_update(&st, endpoint, strlen(endpoint) + 1);
    if (key) {
        XXH3_64bits_update(&st, key, len_of(key, key_len));
        XXH3_64bits_update(&st, "", 1);
    } else
        XXH3_64bits_update(&st, "\xff", 1);
    XXH3_64bits_update(&st, op, strlen(op) + 1);
    uint64_t words[5] = {before.hi, before.lo, after.hi, after.lo, seq};
    XXH3_64bits_update(&st, words, sizeof words);
    snprintf(id, 17, "%016llx", (unsigned long long)XXH3_64bits_digest(&st));
}

void r2m_event_time(int64_t ms, char out[32])
{
    /* floor division: C truncates toward zero, which would print -1 ms as
     * "00:00:00.-01" instead of "23:59:59.999" the day before */
    int64_t sec = ms / 1000, frac = ms % 1000;
    if (frac < 0) {
        frac += 1000;
        sec--;
    }
    time_t s = (time_t)sec;
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t k = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + k, 32 - k, ".%03dZ", (int)frac);
}

static int put_str(struct r2m_buf *b, const char *name, const char *val, size_t n)
{
    int r = r2m_buf_printf(b, ",\"%s\":", name);
    return r ? r : r2m_json_quote(b, val, len_of(val, n));
}

static int put_raw(struct r2m_buf *b, const char *name, const char *json, size_t n)
{
    int r = r2m_buf_printf(b, ",\"%s\":", name);
    if (r)
        return r;
    return json ? r2m_buf_append(b, json, n) : r2m_buf_puts(b, "null");
}

static int render(const struct r2m_event *ev, struct r2m_buf *out);

int r2m_event_render(const struct r2m_event *ev, struct r2m_buf *out)
{
    size_t start = out->len;
    int r = render(ev, out);
    /* one pass over the event, mostly ASCII words: small next to building it */
    if (!r && r2m_utf8_check(out->data + start, out->len - start, NULL))
        r = R2M_E_INVALID;
    if (r && out->data) {
        out->len = start;
        out->data[start] = '\0';
    }
    return r;
}

static int render(const struct r2m_event *ev, struct r2m_buf *out)
{
    char ts[32];
    r2m_event_time(ev->time_ms, ts);
    int r = r2m_buf_printf(out, "{\"specversion\":\"1.0\",\"id\":\"%s\",\"source\":", ev->id);
    if (r)
        return r;
    char src[600];
    int sn = snprintf(src, sizeof src, "rest2mqtt://%s/%s", ev->instance, ev->endpoint);
    if (sn < 0 || (size_t)sn >= sizeof src)
        return R2M_E_TOO_BIG;
    if ((r = r2m_json_quote(out, src, (size_t)sn)))
        return r;
    if ((r = put_str(out, "type", ev->type, 0)))
        return r;
    if (ev->key && (r = put_str(out, "subject", ev->key, ev->key_len)))
        return r;
    if ((r = put_str(out, "time", ts, 0)) ||
        (r = put_str(out, "datacontenttype", "application/json", 0)) ||
        (r = r2m_buf_puts(out, ",\"data\":{\"endpoint\":")) ||
        (r = r2m_json_quote(out, ev->endpoint, strlen(ev->endpoint))))
        return r;
    if (ev->key && (r = put_str(out, "key", ev->key, ev->key_len)))
        return r;
    unsigned f = ev->fields
                     ? ev->fields
                     : R2M_EVENT_BEFORE | R2M_EVENT_AFTER | (ev->patch ? R2M_EVENT_PATCH : 0);
    if ((r = put_str(out, "op", ev->op, 0)))
        return r;
    if ((f & R2M_EVENT_BEFORE) && (r = put_raw(out, "before", ev->before, ev->before_len)))
        return r;
    if ((f & R2M_EVENT_AFTER) && (r = put_raw(out, "after", ev->after, ev->after_len)))
        return r;
    if ((f & R2M_EVENT_PATCH) && (r = put_raw(out, "patch", ev->patch, ev->patch_len)))
        return r;
    return r2m_buf_puts(out, "}}");
}
