/* r2m/event.h - CloudEvents 1.0 (structured JSON) rendering and event ids.
 *
 * An event is rendered from already-canonical JSON fragments (before, after,
 * patch), so the rendering is a concatenation and never re-parses. The id is
 * derived from what the event is (endpoint, key, op, both fingerprints, the
 * endpoint's change sequence number and the state's epoch), so a redelivery
 * of the same stored event carries the same id, and two genuine changes
 * never share one. Pure: no I/O, no globals. */
#ifndef R2M_EVENT_H
#define R2M_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "r2m/buf.h"
#include "r2m/json.h"

enum { R2M_EVENT_BEFORE = 1, R2M_EVENT_AFTER = 2, R2M_EVENT_PATCH = 4 };

/* The CloudEvents types we emit. The poller that makes an event knows its
 * type and carries it in the batch (r2m/poller.h), so counting events never
 * reads the rendered text. */
enum r2m_event_type {
    R2M_EVENT_TYPE_NONE, /* not an event: a retained state message */
    R2M_EVENT_DOCUMENT_CHANGED,
    R2M_EVENT_ITEM_CREATED,
    R2M_EVENT_ITEM_UPDATED,
    R2M_EVENT_ITEM_DELETED,
    R2M_EVENT_TYPES /* how many, NONE included */
};

/* "rest2mqtt.document.changed", ...; NULL for NONE or out of range. Pure. */
const char *r2m_event_type_name(enum r2m_event_type t);

struct r2m_event {
    const char *instance; /* source = rest2mqtt://<instance>/<endpoint> */
    const char *endpoint;
    const char *type;   /* "rest2mqtt.document.changed", "rest2mqtt.item.updated"... */
    const char *op;     /* "changed", "created", "updated", "deleted" */
    const char *key;    /* subject; NULL for documents */
    size_t key_len;     /* bytes of key, which may hold NUL; 0: strlen(key) */
    const char *before; /* canonical JSON or NULL (absent) */
    size_t before_len;
    const char *after; /* canonical JSON or NULL */
    size_t after_len;
    const char *patch; /* JSON Patch text or NULL */
    size_t patch_len;
    int64_t time_ms; /* wall clock, ms since the epoch */
    unsigned fields; /* R2M_EVENT_* members of data to write (a NULL one as
                        null); 0 = before and after always, patch if set */
    char id[17];     /* 16 hex digits, see r2m_event_id */
};

/* Fills id from the identity of the change. epoch distinguishes state
 * lifetimes (a new state store starts a new epoch). key is key_len bytes
 * and may hold NUL (key_len 0: strlen(key)); NULL for documents. */
void r2m_event_id(char id[17], uint64_t epoch, const char *endpoint, const char *key,
                  size_t key_len, const char *op, struct r2m_fp before, struct r2m_fp after,
                  uint64_t seq);

/* Appends the event as one line of JSON (no trailing newline). before/after
 * that are NULL are written as null. The text is checked to be valid UTF-8
 * (the fragments and keys from the JSON layer always are; the check guards
 * against a bug or an invalid configured value): if it is not, R2M_E_INVALID
 * and out is left as it was, so no such event is ever queued. */
int r2m_event_render(const struct r2m_event *ev, struct r2m_buf *out);

/* RFC 3339 UTC with milliseconds, "2026-11-27T08:15:02.113Z" (24 chars + NUL). */
void r2m_event_time(int64_t ms, char out[32]);

#endif
