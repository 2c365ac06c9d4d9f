/* r2m/bridge.h - the event loop that ties schedule, HTTP, pollers and MQTT.
 *
 * One thread, one epoll: libcurl's sockets, a signalfd (SIGINT, SIGTERM,
 * SIGHUP) and the publisher's eventfd; timeouts come from the schedule heap,
 * libcurl and the publisher's reconnect timer. A poll that fails in any way
 * emits nothing and leaves the endpoint's snapshot as it was. */
#ifndef R2M_BRIDGE_H
#define R2M_BRIDGE_H

#include "r2m/config.h"

enum r2m_bridge_mode {
    R2M_BRIDGE_RUN,  /* poll forever, publish to the broker */
    R2M_BRIDGE_ONCE, /* poll each endpoint once, print events to stdout */
};

struct r2m_bridge;

/* cfg must outlive the bridge. only: endpoint name to restrict to, or NULL
 * (R2M_E_NOT_FOUND if no endpoint has that name). In RUN mode the state
 * file is opened and every endpoint's snapshot and the outbox are loaded;
 * a state file that cannot be used is R2M_E_IO. err gets a one-line cause
 * naming what failed and what to do. */
int r2m_bridge_new(struct r2m_bridge **out, const struct r2m_config *cfg, int mode,
                   const char *only, char *err, size_t errlen);
void r2m_bridge_free(struct r2m_bridge *b);

/* Runs until SIGTERM/SIGINT (RUN) or until every poll finished (ONCE).
 * Returns 0, or R2M_E_HTTP when a ONCE poll failed, or R2M_E_SYSTEM. */
int r2m_bridge_run(struct r2m_bridge *b);

#endif
