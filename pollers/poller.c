/* poller.c - choosing a poller kind, and the scratch space pollers share. */
#include "r2m/poller.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r2m/error.h"
#include "r2m/http.h"
#include "r2m/log.h"

const struct r2m_poller_kind *r2m_poller_for(const struct r2m_endpoint_cfg *cfg)
{
    return cfg->items ? &r2m_poller_collection : &r2m_poller_document;
}

void r2m_poll_env_limits(struct r2m_poll_env *env, const struct r2m_config *cfg)
{
    uint64_t max = 0;
    for (size_t i = 0; i < cfg->n_endpoints; i++)
        if (cfg->endpoints[i].max_body > max)
            max = cfg->endpoints[i].max_body;
    /* canonical text is never longer than the body it came from, except
     * for escapes of control characters; an event holds before, after and
     * a patch, each bounded by that */
    size_t canon_max = (size_t)max * 2 + 1024;
    env->canon.max = canon_max;
    env->patch.max = canon_max * 2;
    env->event.max = canon_max * 5;
    env->batch.bytes.max = canon_max * 8;
}

int r2m_poll_env_init(struct r2m_poll_env *env, const struct r2m_config *cfg)
{
    memset(env, 0, sizeof *env);
    env->cfg = cfg;
    r2m_buf_init(&env->canon, 0);
    r2m_buf_init(&env->patch, 0);
    r2m_buf_init(&env->event, 0);
    r2m_buf_init(&env->topic, 65535);
    r2m_buf_init(&env->batch.bytes, 0);
    r2m_poll_env_limits(env, cfg);
    int r = r2m_json_doc_new(&env->doc, NULL);
    if (!r)
        r = r2m_json_doc_new(&env->prev_doc, NULL);
    if (!r)
        r = r2m_json_doc_new(&env->item_doc, NULL);
    if (r)
        r2m_poll_env_cleanup(env);
    return r;
}

void r2m_poll_env_cleanup(struct r2m_poll_env *env)
{
    r2m_json_doc_free(env->doc);
    r2m_json_doc_free(env->prev_doc);
    r2m_json_doc_free(env->item_doc);
    env->doc = env->prev_doc = env->item_doc = NULL;
    r2m_buf_free(&env->canon);
    r2m_buf_free(&env->patch);
    r2m_buf_free(&env->event);
    r2m_buf_free(&env->topic);
    r2m_buf_free(&env->batch.bytes);
    free(env->batch.msgs);
    env->batch.msgs = NULL;
    env->batch.n = env->batch.cap = 0;
}

void r2m_batch_reset(struct r2m_batch *b)
{
    r2m_buf_reset(&b->bytes);
    b->n = 0;
}

int r2m_batch_add(struct r2m_batch *b, const char *topic, size_t topic_len, const char *payload,
                  size_t payload_len, int retained, enum r2m_event_type type)
{
    int r = r2m_grow(&b->msgs, &b->cap, b->n + 1, sizeof *b->msgs);
    if (r)
        return r;
    size_t mark = b->bytes.len;
    struct r2m_batch_msg m = {
        .topic = mark, .topic_len = topic_len, .retained = retained, .type = type};
    r = r2m_buf_append(&b->bytes, topic, topic_len);
    if (!r)
        r = r2m_buf_putc(&b->bytes, '\0');
    m.payload = b->bytes.len;
    m.payload_len = payload_len;
    if (!r)
        r = r2m_buf_append(&b->bytes, payload, payload_len);
    if (!r)
        r = r2m_buf_putc(&b->bytes, '\0');
    if (r) {
        b->bytes.len = mark; /* all or nothing */
        return r;
    }
    b->msgs[b->n++] = m;
    return 0;
}

struct r2m_fp r2m_poller_settings(const struct r2m_endpoint_cfg *cfg)
{
    struct r2m_buf b;
    r2m_buf_init(&b, 1 << 20);
    /* NUL-separated, with a tag per field, so shifting text between fields
     * changes the fingerprint */
    r2m_buf_printf(&b, "v1%ckind=%s%c", 0, cfg->items ? "collection" : "document", 0);
    if (cfg->items)
        r2m_buf_printf(&b, "items=%s%c", cfg->items, 0);
    for (size_t i = 0; i < cfg->n_key; i++)
        r2m_buf_printf(&b, "key=%s%c", cfg->key[i], 0);
    for (size_t i = 0; i < cfg->n_ignore; i++)
        r2m_buf_printf(&b, "ignore=%s%c", cfg->ignore[i], 0);
    struct r2m_fp fp = r2m_json_fingerprint(b.data ? b.data : "", b.len);
    r2m_buf_free(&b);
    return fp;
}

int r2m_poller_error_if(const struct r2m_endpoint_cfg *cfg, struct r2m_json *root, char *err,
                        size_t errlen)
{
    if (!cfg->error_if.pointer)
        return 0;
    const struct r2m_json *v = r2m_json_pointer(root, cfg->error_if.pointer);
    if (!v)
        return 0;
    const char *want = cfg->error_if.equals;
    int match = 0;
    char num[256];
    switch (v->type) {
    case R2M_JSON_STRING:
        match = strlen(want) == v->n && !memcmp(want, v->u.str, v->n);
        break;
    case R2M_JSON_NUMBER: {
        /* by value: "500", "500.0" and "5e2" all match 500 */
        size_t wl = strlen(want);
        int k = wl < 200 ? r2m_json_number_canonical(want, wl, num) : -1;
        match = k >= 0 && (size_t)k == v->n && !memcmp(num, v->u.str, v->n);
        break;
    }
    case R2M_JSON_TRUE:
        match = !strcmp(want, "true");
        break;
    case R2M_JSON_FALSE:
        match = !strcmp(want, "false");
        break;
    case R2M_JSON_NULL:
        match = !strcmp(want, "null");
        break;
    default:
        break;
    }
    if (!match)
        return 0;
    snprintf(err, errlen, "the API reported an error: %s is %.100s (error_if)",
             cfg->error_if.pointer, want);
    return R2M_E_HTTP_STATUS;
}
