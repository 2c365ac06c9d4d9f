/* r2m/reload.h - what a configuration reload (SIGHUP) changes, as data.
 *
 * r2m_reload_plan_new() compares the endpoints that run now with a newly
 * loaded configuration and says, for every new endpoint, whether it is
 * unchanged (keeps its schedule, transfer and state), changed (restarts
 * from its stored snapshot with the new settings) or added, and which
 * running endpoints are removed; and whether settings outside endpoints:
 * changed, which take effect only after a restart. Pure: the loop applies
 * the plan (starts, stops and restarts the endpoints it owns). */
#ifndef R2M_RELOAD_H
#define R2M_RELOAD_H

#include <stddef.h>

#include "r2m/config.h"

enum r2m_reload_action {
    R2M_RELOAD_UNCHANGED, /* same name, same settings: keep the running one */
    R2M_RELOAD_CHANGED,   /* same name, other settings: restart it */
    R2M_RELOAD_ADDED,     /* a name not running: start it */
};

/* One endpoint of the new configuration, in its order. */
struct r2m_reload_step {
    enum r2m_reload_action action;
    size_t old; /* index into the running endpoints; SIZE_MAX when added */
};

struct r2m_reload_plan {
    struct r2m_reload_step *steps; /* one per endpoint of the new configuration */
    size_t n_steps;
    /* per running endpoint: 1 when it goes on running (an unchanged step
     * points at it), 0 when it stops (changed: replaced; or removed) */
    unsigned char *kept;
    size_t n_old;
    size_t added, changed, unchanged, removed; /* removed: names gone */
    int globals_differ;                        /* mqtt, state, metrics, instance, shutdown_timeout,
                                                  max_concurrent: need a restart */
};

/* Plans the move from the running endpoints (old_eps[0..n_old), of the
 * configuration old) to nc. *plan is filled (free with
 * r2m_reload_plan_free); 0 or R2M_E_NOMEM. */
int r2m_reload_plan_new(struct r2m_reload_plan *plan, const struct r2m_config *old,
                        const struct r2m_endpoint_cfg *const *old_eps, size_t n_old,
                        const struct r2m_config *nc);
void r2m_reload_plan_free(struct r2m_reload_plan *plan);

/* 1 when settings outside endpoints: and log: differ between a and c. */
int r2m_reload_globals_differ(const struct r2m_config *a, const struct r2m_config *c);

#endif
