/* r2m/store_backend.h - the table of operations a store backend implements.
 *
 * For store backends (src/store_sqlite.c, a test's fake) and the dispatcher
 * (src/store.c) only; everything else includes r2m/store.h and sees an
 * opaque struct r2m_store. Like curl's Curl_handler: the public functions
 * r2m_store_* call the backend through s->ops, so the loop never knows
 * which backend it has.
 *
 * A backend's own state struct begins with a struct r2m_store (its backend
 * data follows it), so an operation turns the r2m_store pointer it is given
 * back into its own type. Each operation has the contract of the r2m_store_*
 * function of the same name in r2m/store.h. Every member is required except
 * where a comment says what NULL means. */
#ifndef R2M_STORE_BACKEND_H
#define R2M_STORE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "r2m/store.h"

struct r2m_store_ops {
    const char *name; /* "sqlite", for logs */
    /* frees everything the backend's constructor allocated, s included */
    void (*free)(struct r2m_store *s);
    const char *(*errmsg)(const struct r2m_store *s);
    uint64_t (*epoch)(const struct r2m_store *s);
    int (*set_sync)(struct r2m_store *s, int full); /* NULL: nothing to choose, 0 */
    int (*check_file)(struct r2m_store *s, char *err, size_t errlen); /* NULL: no file, 0 */
    int (*limit_length)(struct r2m_store *s, int bytes);              /* NULL: no limit, -1 */

    int (*begin)(struct r2m_store *s);
    int (*commit)(struct r2m_store *s); /* rolls back itself when it fails */
    void (*rollback)(struct r2m_store *s);

    int (*endpoint_get)(struct r2m_store *s, const char *name, struct r2m_store_endpoint *out);
    int (*endpoint_put)(struct r2m_store *s, const char *name, struct r2m_fp settings, uint64_t seq,
                        const char *doc, size_t doc_len, struct r2m_fp doc_fp);
    int (*validators_put)(struct r2m_store *s, const char *name, const char *etag,
                          const char *last_modified);
    int (*endpoint_reset)(struct r2m_store *s, const char *name);
    int (*endpoint_names)(struct r2m_store *s, void (*fn)(void *ctx, const char *name), void *ctx);

    int (*item_put)(struct r2m_store *s, const char *endpoint, const char *key, size_t key_len,
                    struct r2m_fp fp, const char *body, size_t body_len);
    int (*item_delete)(struct r2m_store *s, const char *endpoint, const char *key, size_t key_len);
    int (*items)(struct r2m_store *s, const char *endpoint, r2m_store_item_fn *fn, void *ctx);

    int (*outbox_add)(struct r2m_store *s, const char *endpoint, const char *topic,
                      size_t topic_len, const char *payload, size_t payload_len, int retained,
                      int64_t *id);
    int (*outbox_delete)(struct r2m_store *s, int64_t id);
    int (*outbox)(struct r2m_store *s, r2m_store_outbox_fn *fn, void *ctx);
    int64_t (*outbox_count)(struct r2m_store *s);

    int (*dead_letter_add)(struct r2m_store *s, int64_t outbox_id, uint64_t size,
                           const char *reason, const char *event_id, int64_t time_ms,
                           char *endpoint, size_t endpoint_len);
    int (*dead_letters)(struct r2m_store *s, r2m_store_dead_letter_fn *fn, void *ctx);
    int (*dead_letter_requeue)(struct r2m_store *s, int64_t *n);
    int64_t (*dead_letter_count)(struct r2m_store *s);
};

/* The part every backend's state begins with. */
struct r2m_store {
    const struct r2m_store_ops *ops;
};

/* The SQLite backend (src/store_sqlite.c): p->path is the database file.
 * Contract of r2m_store_new. */
int r2m_store_sqlite_new(const struct r2m_store_params *p, char *err, size_t errlen,
                         struct r2m_store **out);

#endif
