/* r2m/config.h - the YAML configuration: loading, validation, diagnostics.
 *
 * The loader reads YAML into a tree (r2m/yamltree.h: aliases and anchors
 * are refused, they allow "billion laughs" expansion and serve no purpose
 * here), expands ${env:NAME} and ${file:/path} in every scalar a known key
 * reads (r2m/expand.h; "$${" is a literal "${"), applies `defaults:` to
 * every endpoint, and validates everything it can before the bridge starts.
 * Every problem becomes one diagnostic line (r2m/diag.h)
 *     FILE:LINE:COLUMN: error: WHAT. HINT
 * (lines and columns 1-based); unknown keys get a "did you mean 'x'?" hint.
 * All problems are reported, not only the first. Pure apart from reading
 * the file and ${file:} secrets; no globals. */
#ifndef R2M_CONFIG_H
#define R2M_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "r2m/diag.h"  /* struct r2m_diag */
#include "r2m/units.h" /* R2M_DURATION_MAX_MS */

struct r2m_header {
    char *name;
    char *value;
};

struct r2m_endpoint_cfg {
    char *name;   /* [a-z0-9_-]+, unique */
    char *url;    /* http://, https:// or file:// */
    char *method; /* "GET" or "POST" */
    char *body;   /* POST body or NULL */
    struct r2m_header *headers;
    size_t n_headers;
    int64_t interval_ms; /* default 30s, minimum 10ms */
    int64_t timeout_ms;  /* default 10s */
    double jitter;       /* fraction of interval, 0..1; default 0.1 ("10%") */
    uint64_t max_body;   /* bytes, default 32MiB */
    unsigned max_depth;  /* JSON nesting limit, default 64 */
    char **ignore;       /* JSON Pointer patterns ('*' = any member) */
    size_t n_ignore;
    char *topic; /* template; default "{prefix}/{endpoint}", for collections
                    "{prefix}/{endpoint}/{key}/{op}" */
    /* collections (pollers/collection.c); items NULL means a document */
    char *items; /* JSON Pointer to an array or object of items; "" = the root */
    char **key;  /* JSON Pointers inside an item; several = composite key;
                    none: the member names of an object of items */
    size_t n_key;
    int payload;       /* enum r2m_payload */
    int initial_emit;  /* initial: emit - the first poll emits created for every item */
    char *state_topic; /* template or NULL: retained current item (or document) */
    /* talking to real APIs */
    struct r2m_auth {
        int type;                                            /* enum r2m_auth_type */
        char *username, *password;                           /* basic */
        char *token;                                         /* bearer */
        char *name, *value;                                  /* header / query */
        char *token_url, *client_id, *client_secret, *scope; /* oauth2 */
    } auth;
    char *content_type; /* POST body's Content-Type; default application/json */
    struct {
        char *ca_file, *cert_file, *key_file;
        int insecure; /* verification off: warned at start-up */
    } tls;
    int *accept_status; /* statuses that count as success; none = any 2xx */
    size_t n_accept_status;
    struct {
        char *pointer; /* NULL: no guard */
        char *equals;  /* canonical JSON text of the value that means "error" */
    } error_if;
    int64_t max_backoff_ms; /* cap of the failure backoff; default 5m */
    struct {
        int kind;      /* enum r2m_paginate */
        char *pointer; /* next: /json/pointer, or cursor: /json/pointer */
        char *param;   /* query parameter for cursor or page number */
        int64_t start; /* first page number (param: page) */
    } paginate;
    unsigned max_pages; /* default 100 */
    int redirects;      /* enum r2m_redirects; default same-origin */
    int line, column;   /* where the endpoint's entry starts in the file */
};

enum r2m_payload {
    R2M_PAYLOAD_FULL = 0, /* before, after and patch */
    R2M_PAYLOAD_PATCH,    /* patch only */
    R2M_PAYLOAD_AFTER,    /* after only */
};

enum r2m_auth_type {
    R2M_AUTH_NONE = 0,
    R2M_AUTH_BASIC,
    R2M_AUTH_BEARER,
    R2M_AUTH_HEADER,
    R2M_AUTH_QUERY,
    R2M_AUTH_OAUTH2,
};

enum r2m_redirects {
    R2M_REDIRECTS_SAME_ORIGIN = 0, /* follow within the origin; another origin fails the poll */
    R2M_REDIRECTS_ANY,             /* follow anywhere; off the origin without credentials */
    R2M_REDIRECTS_NONE,            /* a redirect fails the poll */
};

enum r2m_paginate {
    R2M_PAGE_NONE = 0,
    R2M_PAGE_LINK,   /* next: link  - RFC 8288 Link: <...>; rel="next" */
    R2M_PAGE_NEXT,   /* next: /pointer - the next page's URL inside the body */
    R2M_PAGE_CURSOR, /* cursor: /pointer, param: cursor */
    R2M_PAGE_NUMBER, /* param: page, start: 1 - stop at an empty page */
};

struct r2m_config {
    char *file;     /* path given to the loader */
    char *instance; /* default: mqtt.client_id */
    struct {
        char *url; /* default mqtt://127.0.0.1:1883; mqtt:// mqtts:// ws:// wss:// tcp:// ssl:// */
        char *client_id;      /* default rest2mqtt-<hostname> */
        char *username;       /* NULL when unset */
        char *password;       /* NULL when unset; never print it */
        int version;          /* 4 (= MQTT 3.1.1, written "3.1.1") or 5; default 5 */
        int qos;              /* 0, 1 or 2; default 1 */
        int64_t keepalive_ms; /* default 30s */
        char *topic_prefix;   /* default "rest2mqtt" */
        char *status_topic;   /* default NULL (not published) */
        char *ca_file, *cert_file, *key_file;
        int insecure;
        uint64_t max_packet_size; /* largest PUBLISH packet the broker takes; 0: not set
                                     (MQTT 5 brokers announce theirs in CONNACK) */
    } mqtt;
    struct {
        char *path;          /* default ./rest2mqtt.db */
        uint64_t outbox_max; /* default 100000 */
        int sync_full;       /* state.sync: full; default normal (see r2m_store_set_sync) */
    } state;
    struct {
        int level; /* R2M_LOG_ERROR..R2M_LOG_DEBUG from r2m/log.h; default info */
        int format;
    } log;
    int64_t shutdown_timeout_ms; /* default 10s */
    unsigned max_concurrent;     /* requests in flight at once, default 256: polls due beyond
                                    it wait their turn (libcurl's cost per request grows with
                                    the number of open connections) */
    unsigned max_per_host;       /* requests in flight to one origin (scheme, host, port);
                                    default min(8, max_concurrent), never above it */
    struct {
        char *listen; /* "127.0.0.1:9464" or NULL: no metrics/health HTTP server */
    } metrics;
    struct r2m_endpoint_cfg *endpoints;
    size_t n_endpoints;
};

/* Loads and validates path. On success returns 0 and *out (free with
 * r2m_config_free). On any error returns R2M_E_CONFIG (or R2M_E_IO when the
 * file cannot be read, R2M_E_NOMEM when memory runs out), *out is NULL, and
 * diag holds at least one line. */
int r2m_config_load(const char *path, struct r2m_config **out, struct r2m_diag *diag);
/* The same from memory; `name` is used in diagnostics. */
int r2m_config_parse(const char *name, const char *text, size_t len, struct r2m_config **out,
                     struct r2m_diag *diag);
void r2m_config_free(struct r2m_config *cfg);

/* A hash of every setting of an endpoint: equal hashes mean the endpoint
 * did not change across a reload (secrets included, never printed). */
uint64_t r2m_config_endpoint_hash(const struct r2m_endpoint_cfg *e);

/* The schema, for documentation checks and tools: where a key may be written. */
enum {
    R2M_CONFIG_IN_GLOBAL = 1,   /* a global section (section names it) */
    R2M_CONFIG_IN_DEFAULTS = 2, /* defaults: */
    R2M_CONFIG_IN_ENDPOINT = 4, /* an entry of endpoints: */
};
struct r2m_config_key {
    const char *section; /* "" (top level), "mqtt", "mqtt.tls", "state", "log", "metrics",
                            "endpoint", "endpoint.auth", "endpoint.tls", ... (static) */
    const char *name;    /* as written in the file (static) */
    unsigned in;         /* R2M_CONFIG_IN_* */
};
/* The i-th key of the schema (from 0, sections in a fixed order): 0, or
 * R2M_E_INVALID past the last. */
int r2m_config_key(size_t i, struct r2m_config_key *out);

/* MQTT's largest packet: 268,435,455 bytes of Remaining Length plus at most
 * 5 bytes of fixed header. */
#define R2M_MQTT_MAX_PACKET_SIZE (268435455ull + 5)

#endif
