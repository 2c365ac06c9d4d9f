/* topic.c - MQTT topic templates with topic-safe substitution. */
#include "r2m/topic.h"

#include <stdio.h>
#include <string.h>

#include "r2m/error.h"
#include "r2m/utf8.h"

/* Longest {/pointer} accepted; check and expand share it so that a template
 * accepted at configuration time can always be expanded. */
#define POINTER_MAX 511

int r2m_topic_escape(struct r2m_buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t run = 0; /* bytes copied verbatim in one append, for speed */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != 0x7f && c != '%' && c != '/' && c != '+' && c != '#' && c != '$')
            continue;
        int r = r2m_buf_append(out, s + run, i - run);
        char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
        if (r || (r = r2m_buf_append(out, esc, 3)))
            return r;
        run = i + 1;
    }
    return r2m_buf_append(out, s + run, n - run);
}

/* Finds the end of a placeholder starting after '{'; returns its length or -1. */
static long placeholder_len(const char *p)
{
    const char *e = strchr(p, '}');
    return e ? (long)(e - p) : -1;
}

int r2m_topic_check(const char *tmpl, int allow_key, char *err, size_t errlen)
{
    if (!tmpl || !*tmpl) {
        snprintf(err, errlen, "topic is empty; write a topic such as \"{prefix}/{endpoint}\"");
        return R2M_E_TOPIC;
    }
    if (tmpl[0] == '$') {
        snprintf(err, errlen, "topic must not start with '$' (reserved for broker topics)");
        return R2M_E_TOPIC;
    }
    for (const char *p = tmpl; *p; p++) {
        if (*p == '+' || *p == '#') {
            snprintf(err, errlen,
                     "topic contains wildcard '%c' at position %zu; wildcards are for "
                     "subscribing, not publishing",
                     *p, (size_t)(p - tmpl) + 1);
            return R2M_E_TOPIC;
        }
        if (*p == '}') {
            snprintf(err, errlen, "unmatched '}' at position %zu", (size_t)(p - tmpl) + 1);
            return R2M_E_TOPIC;
        }
        if (*p != '{')
            continue;
        long n = placeholder_len(p + 1);
        if (n < 0) {
            snprintf(err, errlen, "unterminated '{' at position %zu; close it with '}'",
                     (size_t)(p - tmpl) + 1);
            return R2M_E_TOPIC;
        }
        const char *name = p + 1;
        int ok = (n == 6 && !strncmp(name, "prefix", 6)) ||
                 (n == 8 && !strncmp(name, "endpoint", 8)) || (n == 2 && !strncmp(name, "op", 2));
        if (n == 3 && !strncmp(name, "key", 3)) {
            if (!allow_key) {
                snprintf(err, errlen,
                         "{key} is only available for collections (endpoints with items: "
                         "and key:); use {endpoint} or {/pointer}");
                return R2M_E_TOPIC;
            }
            ok = 1;
        }
        if (n >= 1 && name[0] == '/') {
            ok = 1;
            if (memchr(name, '{', (size_t)n)) {
                snprintf(err, errlen, "nested '{' in placeholder at position %zu",
                         (size_t)(p - tmpl) + 1);
                return R2M_E_TOPIC;
            }
            if (n > POINTER_MAX) {
                snprintf(err, errlen, "JSON pointer at position %zu is longer than %d bytes",
                         (size_t)(p - tmpl) + 1, POINTER_MAX);
                return R2M_E_TOPIC;
            }
            char ptr[POINTER_MAX + 1], perr[200];
            memcpy(ptr, name, (size_t)n);
            ptr[n] = '\0';
            if (r2m_json_pointer_check(ptr, perr, sizeof perr)) {
                snprintf(err, errlen, "placeholder at position %zu: %s", (size_t)(p - tmpl) + 1,
                         perr);
                return R2M_E_TOPIC;
            }
        }
        if (!ok) {
            snprintf(err, errlen,
                     "unknown placeholder {%.*s}; use {prefix}, {endpoint}, {op}, {key} or "
                     "{/json/pointer}",
                     (int)(n > 40 ? 40 : n), name);
            return R2M_E_TOPIC;
        }
        p += n + 1;
    }
    return 0;
}

/* Appends the topic-safe text of a scalar JSON value. */
static int put_json_scalar(struct r2m_buf *out, const struct r2m_json *v)
{
    switch (v->type) {
    case R2M_JSON_STRING:
    case R2M_JSON_NUMBER:
        if (v->n == 0)
            return R2M_E_TOPIC;
        return r2m_topic_escape(out, v->u.str, v->n);
    case R2M_JSON_TRUE:
        return r2m_buf_puts(out, "true");
    case R2M_JSON_FALSE:
        return r2m_buf_puts(out, "false");
    default:
        return R2M_E_TOPIC;
    }
}

/* n = 0: a C string. */
static int put_value(struct r2m_buf *out, const char *s, size_t n)
{
    if (s && !n)
        n = strlen(s);
    if (!n)
        return R2M_E_TOPIC;
    return r2m_topic_escape(out, s, n);
}

static int expand(const char *tmpl, const struct r2m_topic_vars *v, struct r2m_buf *out);

int r2m_topic_expand(const char *tmpl, const struct r2m_topic_vars *v, struct r2m_buf *out)
{
    size_t start = out->len;
    int r = expand(tmpl, v, out);
    /* cheap next to the expansion: a topic is short and mostly ASCII */
    if (!r && out->len > start && r2m_utf8_check(out->data + start, out->len - start, NULL))
        r = R2M_E_TOPIC;
    if (r && out->data) {
        out->len = start;
        out->data[start] = '\0';
    }
    return r;
}

static int expand(const char *tmpl, const struct r2m_topic_vars *v, struct r2m_buf *out)
{
    char ptr[POINTER_MAX + 1];
    const char *lit = tmpl;
    const char *p = tmpl;
    int r = 0;
    for (; *p; p++) {
        if (*p != '{')
            continue;
        if ((r = r2m_buf_append(out, lit, (size_t)(p - lit))))
            return r;
        long n = placeholder_len(p + 1);
        if (n < 0)
            return R2M_E_TOPIC;
        const char *name = p + 1;
        if (n == 6 && !strncmp(name, "prefix", 6))
            /* the prefix is configuration, not data: it may contain '/' levels */
            r = v->prefix ? r2m_buf_puts(out, v->prefix) : R2M_E_TOPIC;
        else if (n == 8 && !strncmp(name, "endpoint", 8))
            r = put_value(out, v->endpoint, 0);
        else if (n == 3 && !strncmp(name, "key", 3))
            r = put_value(out, v->key, v->key_len);
        else if (n == 2 && !strncmp(name, "op", 2))
            r = put_value(out, v->op, 0);
        else if (name[0] == '/' && (size_t)n < sizeof ptr) {
            memcpy(ptr, name, (size_t)n);
            ptr[n] = '\0';
            struct r2m_json *val = v->item ? r2m_json_pointer(v->item, ptr) : NULL;
            r = val ? put_json_scalar(out, val) : R2M_E_TOPIC;
        } else
            r = R2M_E_TOPIC;
        if (r)
            return r;
        p += n + 1;
        lit = p + 1;
    }
    return r2m_buf_append(out, lit, (size_t)(p - lit));
}
