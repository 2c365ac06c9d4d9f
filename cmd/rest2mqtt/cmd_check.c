/* cmd_check.c - `rest2mqtt check`: the config as the bridge reads it,
 * endpoint by endpoint, with secrets masked. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "r2m/buf.h"
#include "r2m/log.h"

/* Shows a URL without the credentials of its userinfo part. */
static void put_url(struct r2m_buf *b, const char *url)
{
    size_t n = strlen(url) + 8;
    char *m = malloc(n);
    if (m)
        r2m_buf_puts(b, r2m_log_url(url, m, n));
    free(m);
}

/* A topic template as it will look, with data-dependent parts left as written. */
static void put_topic(struct r2m_buf *b, const char *tmpl, const struct r2m_config *cfg,
                      const char *endpoint, const char *op)
{
    for (const char *p = tmpl; *p; p++) {
        if (!strncmp(p, "{prefix}", 8)) {
            r2m_buf_puts(b, cfg->mqtt.topic_prefix);
            p += 7;
        } else if (!strncmp(p, "{endpoint}", 10)) {
            r2m_buf_puts(b, endpoint);
            p += 9;
        } else if (!strncmp(p, "{op}", 4)) {
            r2m_buf_puts(b, op);
            p += 3;
        } else {
            r2m_buf_putc(b, *p);
        }
    }
}

static void put_duration(struct r2m_buf *b, int64_t ms)
{
    if (ms % 3600000 == 0)
        r2m_buf_printf(b, "%lldh", (long long)(ms / 3600000));
    else if (ms % 60000 == 0)
        r2m_buf_printf(b, "%lldm", (long long)(ms / 60000));
    else if (ms % 1000 == 0)
        r2m_buf_printf(b, "%llds", (long long)(ms / 1000));
    else
        r2m_buf_printf(b, "%lldms", (long long)ms);
}

int cmd_check(const struct cmd_opts *o, const struct r2m_config *cfg)
{
    (void)o;
    struct r2m_buf b;
    r2m_buf_init(&b, 64 * 1024 * 1024);
    r2m_buf_printf(&b, "%s: configuration is valid\n", cfg->file);
    r2m_buf_puts(&b, "broker:    ");
    put_url(&b, cfg->mqtt.url);
    r2m_buf_printf(
        &b, " (MQTT %s, QoS %d, client_id %s%s%s%s)\n", cfg->mqtt.version == 5 ? "5" : "3.1.1",
        cfg->mqtt.qos, cfg->mqtt.client_id, cfg->mqtt.username ? ", username " : "",
        cfg->mqtt.username ? cfg->mqtt.username : "", cfg->mqtt.password ? ", password set" : "");
    r2m_buf_printf(&b, "instance:  %s (event source rest2mqtt://%s/<endpoint>)\n", cfg->instance,
                   cfg->instance);
    r2m_buf_printf(&b, "endpoints: %zu\n", cfg->n_endpoints);
    for (size_t i = 0; i < cfg->n_endpoints; i++) {
        const struct r2m_endpoint_cfg *e = &cfg->endpoints[i];
        r2m_buf_printf(&b, "  %s\n    %s ", e->name, e->method);
        put_url(&b, e->url);
        r2m_buf_puts(&b, "\n    every ");
        put_duration(&b, e->interval_ms);
        r2m_buf_printf(&b, " (jitter %g%%), timeout ", e->jitter * 100);
        put_duration(&b, e->timeout_ms);
        r2m_buf_printf(&b, ", max_body %llu bytes", (unsigned long long)e->max_body);
        if (e->n_ignore) {
            r2m_buf_puts(&b, "\n    ignore");
            for (size_t k = 0; k < e->n_ignore; k++)
                r2m_buf_printf(&b, " %s", e->ignore[k]);
        }
        if (e->items) {
            r2m_buf_printf(&b, "\n    collection: items at %s, key",
                           *e->items ? e->items : "\"\" (the body)");
            if (!e->n_key)
                r2m_buf_puts(&b, " = member names");
            for (size_t k = 0; k < e->n_key; k++)
                r2m_buf_printf(&b, "%s%s", k ? "," : " ", e->key[k]);
            r2m_buf_printf(&b, ", payload %s, initial %s",
                           e->payload == R2M_PAYLOAD_PATCH   ? "patch"
                           : e->payload == R2M_PAYLOAD_AFTER ? "after"
                                                             : "full",
                           e->initial_emit ? "emit" : "snapshot");
        }
        if (e->auth.type) {
            static const char *const names[] = {"", "basic", "bearer", "header", "query", "oauth2"};
            r2m_buf_printf(&b, "\n    auth %s (secrets not shown)", names[e->auth.type]);
        }
        if (e->paginate.kind)
            r2m_buf_printf(&b, "\n    paginated, at most %u pages", e->max_pages);
        r2m_buf_puts(&b, "\n    topic ");
        put_topic(&b, e->topic, cfg, e->name, e->items ? "{created|updated|deleted}" : "changed");
        if (e->state_topic) {
            r2m_buf_puts(&b, "\n    state_topic ");
            put_topic(&b, e->state_topic, cfg, e->name, "state");
        }
        r2m_buf_putc(&b, '\n');
    }
    fwrite(b.data, 1, b.len, stdout);
    r2m_buf_free(&b);
    return EXIT_OK;
}
