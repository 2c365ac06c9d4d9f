/* reload.c - the plan of a configuration reload: a diff of two configurations. */
#include "r2m/reload.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "r2m/error.h"

static int str_eq(const char *a, const char *c)
{
    return a == c || (a && c && !strcmp(a, c));
}

/* Settings outside endpoints: are read once at start. */
int r2m_reload_globals_differ(const struct r2m_config *a, const struct r2m_config *c)
{
    return !str_eq(a->instance, c->instance) || !str_eq(a->mqtt.url, c->mqtt.url) ||
           !str_eq(a->mqtt.client_id, c->mqtt.client_id) ||
           !str_eq(a->mqtt.username, c->mqtt.username) ||
           !str_eq(a->mqtt.password, c->mqtt.password) || a->mqtt.version != c->mqtt.version ||
           a->mqtt.qos != c->mqtt.qos || a->mqtt.keepalive_ms != c->mqtt.keepalive_ms ||
           !str_eq(a->mqtt.topic_prefix, c->mqtt.topic_prefix) ||
           !str_eq(a->mqtt.status_topic, c->mqtt.status_topic) ||
           !str_eq(a->mqtt.ca_file, c->mqtt.ca_file) ||
           !str_eq(a->mqtt.cert_file, c->mqtt.cert_file) ||
           !str_eq(a->mqtt.key_file, c->mqtt.key_file) || a->mqtt.insecure != c->mqtt.insecure ||
           a->mqtt.max_packet_size != c->mqtt.max_packet_size ||
           !str_eq(a->state.path, c->state.path) || a->state.outbox_max != c->state.outbox_max ||
           a->state.sync_full != c->state.sync_full ||
           !str_eq(a->metrics.listen, c->metrics.listen) ||
           a->shutdown_timeout_ms != c->shutdown_timeout_ms ||
           a->max_concurrent != c->max_concurrent || a->max_per_host != c->max_per_host;
}

int r2m_reload_plan_new(struct r2m_reload_plan *plan, const struct r2m_config *old,
                        const struct r2m_endpoint_cfg *const *old_eps, size_t n_old,
                        const struct r2m_config *nc)
{
    memset(plan, 0, sizeof *plan);
    plan->steps = calloc(nc->n_endpoints ? nc->n_endpoints : 1, sizeof *plan->steps);
    plan->kept = calloc(n_old ? n_old : 1, 1);
    if (!plan->steps || !plan->kept) {
        r2m_reload_plan_free(plan);
        return R2M_E_NOMEM;
    }
    plan->n_steps = nc->n_endpoints;
    plan->n_old = n_old;
    plan->globals_differ = r2m_reload_globals_differ(old, nc);
    for (size_t i = 0; i < nc->n_endpoints; i++) {
        const struct r2m_endpoint_cfg *ec = &nc->endpoints[i];
        struct r2m_reload_step *st = &plan->steps[i];
        size_t k = 0;
        while (k < n_old && (plan->kept[k] || strcmp(old_eps[k]->name, ec->name)))
            k++;
        if (k == n_old) {
            *st = (struct r2m_reload_step){R2M_RELOAD_ADDED, SIZE_MAX};
            plan->added++;
        } else if (r2m_config_endpoint_hash(old_eps[k]) == r2m_config_endpoint_hash(ec)) {
            *st = (struct r2m_reload_step){R2M_RELOAD_UNCHANGED, k};
            plan->kept[k] = 1;
            plan->unchanged++;
        } else {
            *st = (struct r2m_reload_step){R2M_RELOAD_CHANGED, k};
            plan->changed++;
        }
    }
    for (size_t k = 0; k < n_old; k++) {
        int still = 0;
        for (size_t i = 0; i < nc->n_endpoints && !still; i++)
            still = !strcmp(nc->endpoints[i].name, old_eps[k]->name);
        plan->removed += !still;
    }
    return 0;
}

void r2m_reload_plan_free(struct r2m_reload_plan *plan)
{
    if (!plan)
        return;
    free(plan->steps);
    free(plan->kept);
    memset(plan, 0, sizeof *plan);
}
