/* r2m/topic.h - MQTT topic templates.
 *
 * A template is literal text with placeholders {prefix}, {endpoint}, {key},
 * {op} and {/json/pointer} (a value taken from the item or document). Values
 * substituted from data are made topic-safe by one rule, percent-encoding:
 * '%' -> "%25", '/' -> "%2F", '+' -> "%2B", '#' -> "%23", '$' -> "%24"
 * (so data can never make a "$SYS"-style topic), and DEL and every byte
 * below 0x20 (NUL included) -> "%XX". The encoding is reversible and a value
 * can never add a topic level or a wildcard. An empty value, or a pointer
 * that does not resolve to a string, number or boolean, is R2M_E_TOPIC (the
 * event cannot be routed). Literal text in the template is checked once, at
 * configuration time, by r2m_topic_check. Pure: no I/O, no globals. */
#ifndef R2M_TOPIC_H
#define R2M_TOPIC_H

#include <stddef.h>

#include "r2m/buf.h"
#include "r2m/json.h"

struct r2m_topic_vars {
    const char *prefix;
    const char *endpoint;
    const char *key;       /* NULL outside collections */
    const char *op;        /* "changed", "created", "updated", "deleted" */
    struct r2m_json *item; /* root for {/pointer}; may be NULL */
    size_t key_len;        /* bytes of key, which may hold NUL (a key from
                              "a\u0000b" is 3 bytes, never "a"); 0: strlen(key) */
};

/* Validates a template: balanced braces, known placeholders, valid pointers,
 * no '+' '#' or NUL in the literal text, not empty, no leading '$'.
 * allow_key: whether {key} is meaningful (collections). Returns 0 or
 * R2M_E_TOPIC with a message in err. */
int r2m_topic_check(const char *tmpl, int allow_key, char *err, size_t errlen);

/* Appends the expanded topic to out (out is not reset first). The result is
 * checked to be valid UTF-8 (data from the JSON layer always is; the check
 * guards against a bug or an invalid configured value): if it is not,
 * R2M_E_TOPIC and out is left as it was, so no such topic is ever queued. */
int r2m_topic_expand(const char *tmpl, const struct r2m_topic_vars *v, struct r2m_buf *out);

/* Appends s[0..n) percent-encoded by the rule above. */
int r2m_topic_escape(struct r2m_buf *out, const char *s, size_t n);

#endif
