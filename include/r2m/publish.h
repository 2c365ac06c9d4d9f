/* r2m/publish.h - MQTT publishing through paho's MQTTAsync client.
 *
 * Paho runs its own threads; its callbacks only append a report to a
 * mutex-protected list and write to an eventfd (r2m_publish_fd). The loop thread
 * registers that fd in its epoll and calls r2m_publish_dispatch(), which applies
 * the reports and sends more messages: every decision is made on the loop
 * thread.
 *
 * Messages wait in a FIFO queue (bounded by max_queued) and are sent with at
 * most R2M_PUBLISH_WINDOW unacknowledged at a time, or fewer when an MQTT 5
 * broker's Receive Maximum is lower (paho would hold the excess back and
 * retry it only a second later). A message leaves the queue
 * only when paho reports success (PUBACK for QoS 1, PUBCOMP for QoS 2, the
 * write for QoS 0), or when it is refused for good (below). Publishes that
 * are in flight when the connection drops go back into the queue at their
 * original place and are sent again after reconnecting - paho 1.3.12
 * reports such publishes as failed and never resends them itself; one that
 * fails for a transient reason while connected goes back alone, the others
 * in flight keep waiting for their acknowledgements, and an
 * acknowledgement that arrives for a message already put back removes it
 * from the queue: nothing acknowledged is sent again on the same
 * connection.
 *
 * Refused for good ("dead letters"): an MQTT 5 reason code that refuses
 * this one message (r2m_publish_refusal; the table is in publish.c), paho
 * refusing it before sending (-5 invalid UTF-8), or a PUBLISH packet larger
 * than the broker takes (r2m_publish_max_packet, checked before sending). Such
 * a message is handed to the dead-letter callback and dropped from the
 * queue, so everything behind it flows on.
 *
 * Reconnecting is done here, not by paho, with exponential backoff (1 s
 * doubling to 30 s, with jitter). The backoff starts over only after a
 * connection stayed up R2M_PUBLISH_STABLE_MS, so a broker that accepts and
 * drops every connection is retried ever slower. Failures are logged in
 * words (bad credentials, not authorized, TLS, refused, DNS, timeout) with
 * the URL's credentials masked, rate limited like failed polls
 * (r2m_log_due). Paho keeps no persistence. */
#ifndef R2M_PUBLISH_H
#define R2M_PUBLISH_H

#include <stddef.h>
#include <stdint.h>

#include "r2m/config.h"

#define R2M_PUBLISH_WINDOW 64
/* A connection that lasted this long resets the reconnect backoff. */
#define R2M_PUBLISH_STABLE_MS 10000

struct r2m_publish;

/* cfg must outlive the publisher. Does not connect yet. */
int r2m_publish_new(const struct r2m_config *cfg, size_t max_queued, struct r2m_publish **out);
/* Disconnects (waiting at most 1 s) and frees; queued messages are dropped,
 * their count is logged. Accepts NULL. */
void r2m_publish_free(struct r2m_publish *p);

/* The eventfd to watch for EPOLLIN. */
int r2m_publish_fd(const struct r2m_publish *p);
/* Starts connecting. */
int r2m_publish_connect(struct r2m_publish *p, int64_t now_ms);

/* Queues a message; takes ownership of topic and payload (malloc'd) in every
 * case. id is the message's outbox row (0: not in the outbox), reported to
 * the ack callback once the broker acknowledged it. R2M_E_TOO_BIG when
 * max_queued messages already wait. */
int r2m_publish_enqueue(struct r2m_publish *p, char *topic, char *payload, size_t len, int retained,
                        int64_t id);

/* Called on the loop thread, from r2m_publish_dispatch, for every acknowledged
 * message with a non-zero id; latency_ms is the time from enqueue to ack. */
typedef void r2m_publish_ack_fn(void *ctx, int64_t id, int64_t latency_ms);
void r2m_publish_on_ack(struct r2m_publish *p, r2m_publish_ack_fn *fn, void *ctx);

/* Called on the loop thread for every message refused for good (see the
 * top of this file); id is its outbox row (0: not in the outbox), size the
 * encoded PUBLISH packet, reason a short token for tables and metric labels
 * ("not_authorized", "packet_too_large", "invalid_utf8", ...), words the
 * same for people. topic and payload are valid during the call only. */
typedef void r2m_publish_dead_fn(void *ctx, int64_t id, const char *topic, const char *payload,
                                 size_t len, uint64_t size, const char *reason, const char *words);
void r2m_publish_on_dead(struct r2m_publish *p, r2m_publish_dead_fn *fn, void *ctx);

/* The reason token when a publish that ended with code (a paho error code
 * < 0, or an MQTT 5 reason code >= 0x80) refuses that message for good;
 * NULL when resending it can succeed. Pure. */
const char *r2m_publish_refusal(int code);
/* Words for a paho error code, an MQTT 5 reason code, or (version 4) an
 * MQTT 3.1.1 CONNACK return code 1-5; never NULL. Pure. */
const char *r2m_publish_code_words(int version, int code);
/* Encoded size of a PUBLISH packet (fixed header, topic, packet identifier
 * when qos > 0, MQTT 5 properties of props_len bytes, payload). Pure. */
uint64_t r2m_publish_packet_size(int version, int qos, size_t topic_len, size_t props_len,
                                 size_t payload_len);
/* The largest packet sent now: the smaller of mqtt.max_packet_size and the
 * broker's CONNACK Maximum Packet Size (MQTT 5), else the MQTT ceiling. */
uint64_t r2m_publish_max_packet(const struct r2m_publish *p);

/* Applies paho's reports, retries the connection when due, sends. */
void r2m_publish_dispatch(struct r2m_publish *p, int64_t now_ms);
/* Monotonic ms when r2m_publish_dispatch must run again without an fd event
 * (a reconnect attempt); INT64_MAX if none. */
int64_t r2m_publish_deadline(const struct r2m_publish *p);

int r2m_publish_connected(const struct r2m_publish *p);
/* Unacknowledged publishes allowed at once on the current connection. */
size_t r2m_publish_window(const struct r2m_publish *p);
/* How many more messages r2m_publish_enqueue accepts now. */
size_t r2m_publish_room(const struct r2m_publish *p);
/* Messages not yet acknowledged: queued + in flight. */
size_t r2m_publish_pending(const struct r2m_publish *p);
/* Totals since start, for logs and tests. */
uint64_t r2m_publish_acked(const struct r2m_publish *p);
uint64_t r2m_publish_dead(const struct r2m_publish *p);

/* Publishes the status topic's "offline" (if configured) and disconnects
 * cleanly; returns once done or after timeout_ms. */
void r2m_publish_goodbye(struct r2m_publish *p, int64_t timeout_ms);

#endif
