/* r2m/asyncapi.h - the AsyncAPI 3.0 contract of what a configuration publishes.
 *
 * One server (the broker of `mqtt:`), one channel per topic template of
 * every endpoint (its `topic`, its retained `state_topic`) and the status
 * topic, each with its parameters ({key}, {op}, {/pointer} values, and the
 * percent-encoding they get), one send operation per channel with the MQTT
 * binding (QoS, retain), and per event type a message whose payload is the
 * CloudEvents envelope as JSON Schema with `data` as the endpoint's
 * `payload:` setting makes it. The schema is exact: events the bridge
 * publishes validate against it, and nothing else it can send does.
 * Pure: no I/O, no globals. */
#ifndef R2M_ASYNCAPI_H
#define R2M_ASYNCAPI_H

#include "r2m/buf.h"
#include "r2m/config.h"
#include "r2m/json.h"

/* Appends the document as one line of JSON to out. R2M_E_TOO_BIG when
 * out's ceiling is reached. */
int r2m_asyncapi_json(const struct r2m_config *cfg, struct r2m_buf *out);

/* Appends the document as YAML (block style, strings double-quoted) to
 * out. R2M_E_TOO_BIG, R2M_E_NOMEM. */
int r2m_asyncapi_yaml(const struct r2m_config *cfg, struct r2m_buf *out);

/* Appends v as block YAML at indent 0 (any JSON value; scalars in their
 * JSON spelling, which YAML reads the same). */
int r2m_asyncapi_yaml_of(const struct r2m_json *v, struct r2m_buf *out);

#endif
