/* test_config.c - the YAML loader: parsed values, defaults, and every error
 * class with its exact position and message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "r2m/config.h"
#include "r2m/error.h"
#include "r2m/log.h"

/* The smallest valid file; tests append to it. Line 2: "  - name: a"
 * (value at column 11), line 3: "    url: http://x". */
#define EP "endpoints:\n  - name: a\n    url: http://x\n"

static int parse(const char *yaml, struct r2m_config **cfg, struct r2m_diag *d)
{
    return r2m_config_parse("t.yaml", yaml, strlen(yaml), cfg, d);
}

static void dump(const struct r2m_diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        print_message("  diag: %s\n", d->lines[i]);
}

/* Parses a file that must be valid. */
static struct r2m_config *parse_ok(const char *yaml)
{
    struct r2m_config *cfg = NULL;
    struct r2m_diag d = {0};
    int rc = parse(yaml, &cfg, &d);
    if (rc) {
        dump(&d);
        fail_msg("expected a valid configuration, got %s", r2m_strerror(rc));
    }
    assert_non_null(cfg);
    assert_int_equal(d.n, 0);
    r2m_diag_free(&d);
    return cfg;
}

static int has_line(const struct r2m_diag *d, int line, int col, const char *frag)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "t.yaml:%d:%d: error: ", line, col);
    for (size_t i = 0; i < d->n; i++)
        if (!strncmp(d->lines[i], prefix, strlen(prefix)) &&
            strstr(d->lines[i] + strlen(prefix), frag))
            return 1;
    return 0;
}

/* Parses a file that must fail with a diagnostic at line:col containing frag. */
static void expect_error(const char *yaml, int line, int col, const char *frag)
{
    struct r2m_config *cfg = (struct r2m_config *)&cfg;
    struct r2m_diag d = {0};
    int rc = parse(yaml, &cfg, &d);
    if (rc != R2M_E_CONFIG || !has_line(&d, line, col, frag)) {
        print_message("yaml:\n%s\n", yaml);
        dump(&d);
        fail_msg("expected t.yaml:%d:%d: error: ...%s...", line, col, frag);
    }
    assert_null(cfg);
    r2m_diag_free(&d);
}

/* ---- valid files ---------------------------------------------------------- */

static const char full_yaml[] = "instance: edge-1\n"
                                "mqtt:\n"
                                "  url: mqtts://broker.example:8883\n"
                                "  client_id: bridge-1\n"
                                "  username: bridge\n"
                                "  password: ${env:R2M_TEST_PW}\n"
                                "  version: \"3.1.1\"\n"
                                "  qos: 2\n"
                                "  keepalive: 1m30s\n"
                                "  topic_prefix: site/a\n"
                                "  status_topic: \"{prefix}/status\"\n"
                                "  tls:\n"
                                "    ca_file: /etc/hosts\n"
                                "    cert_file: /etc/passwd\n"
                                "    key_file: /etc/group\n"
                                "    insecure: true\n"
                                "state:\n"
                                "  path: /var/lib/r2m.db\n"
                                "  outbox_max: 5000\n"
                                "log:\n"
                                "  level: debug\n"
                                "  format: json\n"
                                "shutdown_timeout: 3s\n"
                                "defaults:\n"
                                "  method: GET\n"
                                "  interval: 1m\n"
                                "  timeout: 5s\n"
                                "  jitter: 25%\n"
                                "  max_body: 1MiB\n"
                                "  max_depth: 10\n"
                                "  headers: { Accept: application/json, X-Tenant: acme }\n"
                                "  ignore: [/updatedAt]\n"
                                "  topic: \"{prefix}/d/{endpoint}\"\n"
                                "endpoints:\n"
                                "  - name: shipments\n"
                                "    url: https://legacy.example.com/api/shipments?status=active\n"
                                "    method: post\n"
                                "    body: '{\"q\": 1}'\n"
                                "    headers: { x-tenant: other, X-Extra: \"1\" }\n"
                                "    interval: 250ms\n"
                                "    timeout: 2s\n"
                                "    jitter: 2.5%\n"
                                "    max_body: 64KiB\n"
                                "    max_depth: 1000\n"
                                "    ignore: [/meta/*, \"/a~1b\"]\n"
                                "    topic: \"{prefix}/{endpoint}/{/id}\"\n"
                                "  - name: flight-lh123\n"
                                "    url: file:///tmp/flight.json\n";

static void test_full_config(void **state)
{
    (void)state;
    setenv("R2M_TEST_PW", "hunter2", 1);
    struct r2m_config *c = parse_ok(full_yaml);
    assert_string_equal(c->file, "t.yaml");
    assert_string_equal(c->instance, "edge-1");
    assert_string_equal(c->mqtt.url, "mqtts://broker.example:8883");
    assert_string_equal(c->mqtt.client_id, "bridge-1");
    assert_string_equal(c->mqtt.username, "bridge");
    assert_string_equal(c->mqtt.password, "hunter2");
    assert_int_equal(c->mqtt.version, 4);
    assert_int_equal(c->mqtt.qos, 2);
    assert_int_equal(c->mqtt.keepalive_ms, 90000);
    assert_string_equal(c->mqtt.topic_prefix, "site/a");
    assert_string_equal(c->mqtt.status_topic, "{prefix}/status");
    assert_string_equal(c->mqtt.ca_file, "/etc/hosts");
    assert_string_equal(c->mqtt.cert_file, "/etc/passwd");
    assert_string_equal(c->mqtt.key_file, "/etc/group");
    assert_int_equal(c->mqtt.insecure, 1);
    assert_string_equal(c->state.path, "/var/lib/r2m.db");
    assert_int_equal(c->state.outbox_max, 5000);
    assert_int_equal(c->log.level, R2M_LOG_DEBUG);
    assert_int_equal(c->log.format, R2M_LOG_JSON);
    assert_int_equal(c->shutdown_timeout_ms, 3000);
    assert_int_equal(c->n_endpoints, 2);

    const struct r2m_endpoint_cfg *e = &c->endpoints[0];
    assert_string_equal(e->name, "shipments");
    assert_string_equal(e->url, "https://legacy.example.com/api/shipments?status=active");
    assert_string_equal(e->method, "POST");
    assert_string_equal(e->body, "{\"q\": 1}");
    /* defaults' headers first; the entry's x-tenant replaces X-Tenant */
    assert_int_equal(e->n_headers, 3);
    assert_string_equal(e->headers[0].name, "Accept");
    assert_string_equal(e->headers[0].value, "application/json");
    assert_string_equal(e->headers[1].name, "x-tenant");
    assert_string_equal(e->headers[1].value, "other");
    assert_string_equal(e->headers[2].name, "X-Extra");
    assert_string_equal(e->headers[2].value, "1");
    assert_int_equal(e->interval_ms, 250);
    assert_int_equal(e->timeout_ms, 2000);
    assert_true(e->jitter > 0.02499 && e->jitter < 0.02501);
    assert_int_equal(e->max_body, 65536);
    assert_int_equal(e->max_depth, 1000);
    assert_int_equal(e->n_ignore, 3);
    assert_string_equal(e->ignore[0], "/updatedAt");
    assert_string_equal(e->ignore[1], "/meta/*");
    assert_string_equal(e->ignore[2], "/a~1b");
    assert_string_equal(e->topic, "{prefix}/{endpoint}/{/id}");
    assert_int_equal(e->line, 35);
    assert_int_equal(e->column, 5);

    e = &c->endpoints[1];
    assert_string_equal(e->name, "flight-lh123");
    assert_string_equal(e->url, "file:///tmp/flight.json");
    assert_string_equal(e->method, "GET");
    assert_null(e->body);
    assert_int_equal(e->n_headers, 2);
    assert_string_equal(e->headers[1].name, "X-Tenant");
    assert_string_equal(e->headers[1].value, "acme");
    assert_int_equal(e->interval_ms, 60000);
    assert_int_equal(e->timeout_ms, 5000);
    assert_true(e->jitter == 0.25);
    assert_int_equal(e->max_body, 1 << 20);
    assert_int_equal(e->max_depth, 10);
    assert_int_equal(e->n_ignore, 1);
    assert_string_equal(e->ignore[0], "/updatedAt");
    assert_string_equal(e->topic, "{prefix}/d/{endpoint}");
    assert_int_equal(e->line, 47);
    assert_int_equal(e->column, 5);
    r2m_config_free(c);
    unsetenv("R2M_TEST_PW");
}

static void test_builtin_defaults(void **state)
{
    (void)state;
    struct r2m_config *c = parse_ok(EP);
    char host[256] = "", id[300];
    assert_int_equal(gethostname(host, sizeof host - 1), 0);
    snprintf(id, sizeof id, "rest2mqtt-%s", host);
    assert_string_equal(c->mqtt.url, "mqtt://127.0.0.1:1883");
    assert_string_equal(c->mqtt.client_id, id);
    assert_string_equal(c->instance, id);
    assert_null(c->mqtt.username);
    assert_null(c->mqtt.password);
    assert_int_equal(c->mqtt.version, 5);
    assert_int_equal(c->mqtt.qos, 1);
    assert_int_equal(c->mqtt.keepalive_ms, 30000);
    assert_string_equal(c->mqtt.topic_prefix, "rest2mqtt");
    assert_null(c->mqtt.status_topic);
    assert_null(c->mqtt.ca_file);
    assert_null(c->mqtt.cert_file);
    assert_null(c->mqtt.key_file);
    assert_int_equal(c->mqtt.insecure, 0);
    assert_string_equal(c->state.path, "./rest2mqtt.db");
    assert_int_equal(c->state.outbox_max, 100000);
    assert_int_equal(c->log.level, R2M_LOG_INFO);
    assert_int_equal(c->log.format, R2M_LOG_TEXT);
    assert_int_equal(c->shutdown_timeout_ms, 10000);
    assert_int_equal(c->n_endpoints, 1);
    const struct r2m_endpoint_cfg *e = &c->endpoints[0];
    assert_string_equal(e->name, "a");
    assert_string_equal(e->url, "http://x");
    assert_string_equal(e->method, "GET");
    assert_null(e->body);
    assert_int_equal(e->n_headers, 0);
    assert_null(e->headers);
    assert_int_equal(e->n_ignore, 0);
    assert_null(e->ignore);
    assert_int_equal(e->interval_ms, 30000);
    assert_int_equal(e->timeout_ms, 10000);
    assert_true(e->jitter == 0.1);
    assert_int_equal(e->max_body, 32u << 20);
    assert_int_equal(e->max_depth, 64);
    assert_string_equal(e->topic, "{prefix}/{endpoint}");
    assert_int_equal(e->line, 2);
    assert_int_equal(e->column, 5);
    r2m_config_free(c);
}

static void test_small_variants(void **state)
{
    (void)state;
    /* version as a number and as a string; method in lower case; a single ignore string;
     * flow style; empty mappings; an empty quoted body with POST */
    struct r2m_config *c = parse_ok("mqtt: {version: 5, qos: 0, keepalive: 0s}\n"
                                    "state: {}\n"
                                    "log: {level: warn, format: text}\n"
                                    "defaults:\n"
                                    "endpoints: [{name: x_1-y, url: HTTPS://h/, method: Post,"
                                    " body: \"\", ignore: /a/b, headers: {}}]\n");
    assert_int_equal(c->mqtt.version, 5);
    assert_int_equal(c->mqtt.qos, 0);
    assert_int_equal(c->mqtt.keepalive_ms, 0);
    assert_int_equal(c->log.level, R2M_LOG_WARN);
    assert_string_equal(c->endpoints[0].name, "x_1-y");
    assert_string_equal(c->endpoints[0].method, "POST");
    assert_string_equal(c->endpoints[0].body, "");
    assert_int_equal(c->endpoints[0].n_ignore, 1);
    assert_string_equal(c->endpoints[0].ignore[0], "/a/b");
    r2m_config_free(c);

    c = parse_ok("mqtt:\n  version: '5'\n" EP);
    assert_int_equal(c->mqtt.version, 5);
    r2m_config_free(c);
    c = parse_ok("mqtt:\n  version: 3.1.1\n  client_id: cid\n" EP);
    assert_int_equal(c->mqtt.version, 4);
    assert_string_equal(c->instance, "cid");
    r2m_config_free(c);
    c = parse_ok(EP "    jitter: 0%\n    max_body: 4GiB\n    interval: 10ms\n");
    assert_true(c->endpoints[0].jitter == 0.0);
    assert_int_equal(c->endpoints[0].max_body, 4ull << 30);
    assert_int_equal(c->endpoints[0].interval_ms, 10);
    r2m_config_free(c);
    c = parse_ok(EP "    jitter: 100%\n    max_body: 1\n    max_depth: 1\n");
    assert_true(c->endpoints[0].jitter == 1.0);
    assert_int_equal(c->endpoints[0].max_body, 1);
    assert_int_equal(c->endpoints[0].max_depth, 1);
    r2m_config_free(c);
}

/* ---- defaults: ------------------------------------------------------------ */

static const char merge_a[] = "defaults:\n"
                              "  headers: { Accept: application/json, X-Tenant: acme }\n"
                              "  ignore: [/d1, /d2]\n"
                              "  interval: 5s\n"
                              "  jitter: 0%\n"
                              "endpoints:\n"
                              "  - name: one\n"
                              "    url: http://one\n"
                              "    headers: { ACCEPT: text/csv, X-More: m }\n"
                              "    ignore: /e1\n"
                              "    interval: 7s\n"
                              "  - name: two\n"
                              "    url: http://two\n";

static const char merge_b[] = "endpoints:\n"
                              "  - name: one\n"
                              "    url: http://one\n"
                              "    headers: { ACCEPT: text/csv, X-More: m }\n"
                              "    ignore: /e1\n"
                              "    interval: 7s\n"
                              "  - name: two\n"
                              "    url: http://two\n"
                              "defaults:\n"
                              "  headers: { Accept: application/json, X-Tenant: acme }\n"
                              "  ignore: [/d1, /d2]\n"
                              "  interval: 5s\n"
                              "  jitter: 0%\n";

static void check_merged(const struct r2m_config *c)
{
    assert_int_equal(c->n_endpoints, 2);
    const struct r2m_endpoint_cfg *e = &c->endpoints[0];
    assert_int_equal(e->n_headers, 3);
    assert_string_equal(e->headers[0].name, "ACCEPT");
    assert_string_equal(e->headers[0].value, "text/csv");
    assert_string_equal(e->headers[1].name, "X-Tenant");
    assert_string_equal(e->headers[1].value, "acme");
    assert_string_equal(e->headers[2].name, "X-More");
    assert_int_equal(e->n_ignore, 3);
    assert_string_equal(e->ignore[0], "/d1");
    assert_string_equal(e->ignore[1], "/d2");
    assert_string_equal(e->ignore[2], "/e1");
    assert_int_equal(e->interval_ms, 7000);
    assert_true(e->jitter == 0.0);
    e = &c->endpoints[1];
    assert_int_equal(e->n_headers, 2);
    assert_string_equal(e->headers[0].value, "application/json");
    assert_int_equal(e->n_ignore, 2);
    assert_int_equal(e->interval_ms, 5000);
    assert_true(e->jitter == 0.0);
    assert_int_equal(e->timeout_ms, 10000);
}

static void test_defaults_merge(void **state)
{
    (void)state;
    struct r2m_config *a = parse_ok(merge_a);
    struct r2m_config *b = parse_ok(merge_b);
    check_merged(a);
    check_merged(b);
    r2m_config_free(a);
    r2m_config_free(b);
}

static void test_defaults_rules(void **state)
{
    (void)state;
    expect_error("defaults:\n  name: x\n" EP, 2, 3, "'name' cannot be set in defaults:");
    expect_error("defaults:\n  intervall: 1s\n" EP, 2, 3,
                 "unknown key 'intervall' in defaults; did you mean 'interval'?");
    /* a url in defaults: is allowed and inherited */
    struct r2m_config *c =
        parse_ok("defaults: {url: 'http://d'}\nendpoints:\n  - name: a\n  - name: b\n"
                 "    url: http://b\n");
    assert_string_equal(c->endpoints[0].url, "http://d");
    assert_string_equal(c->endpoints[1].url, "http://b");
    r2m_config_free(c);
    /* a body from defaults: with an endpoint that stays GET */
    /* reported at the entry that inherits it */
    expect_error("defaults:\n  body: x\n" EP, 4, 5,
                 "endpoint 'a' has a body but its method is GET; set method: POST");
    expect_error("defaults:\n  body: x\n  method: POST\n" EP "    method: GET\n", 7, 13,
                 "endpoint 'a' has a body but its method is GET");
}

/* ---- keys ----------------------------------------------------------------- */

static void test_unknown_keys(void **state)
{
    (void)state;
    expect_error(EP "    intervall: 15s\n", 4, 5,
                 "unknown key 'intervall' in endpoint 'a'; did you mean 'interval'?");
    expect_error(EP "    tiemout: 1s\n", 4, 5, "did you mean 'timeout'?");
    expect_error(EP "    URL: http://y\n", 4, 5, "did you mean 'url'?");
    expect_error("endpoint:\n  - name: a\n", 1, 1,
                 "unknown key 'endpoint' at the top level; did you mean 'endpoints'?");
    expect_error("mqtt:\n  pasword: x\n" EP, 2, 3,
                 "unknown key 'pasword' in mqtt; did you mean 'password'?");
    expect_error("mqtt:\n  tls:\n    insecur: true\n" EP, 3, 5,
                 "unknown key 'insecur' in mqtt.tls; did you mean 'insecure'?");
    expect_error("state:\n  paht: x\n" EP, 2, 3, "did you mean 'path'?");
    expect_error("log:\n  levle: x\n" EP, 2, 3, "did you mean 'level'?");
    /* a section's key written at the top level says where it belongs */
    expect_error("interval: 5s\n" EP, 1, 1,
                 "unknown key 'interval' at the top level; it belongs under defaults: or an "
                 "endpoint entry");
    expect_error("level: debug\n" EP, 1, 1, "it belongs under log:");
    expect_error("ca_file: /x\n" EP, 1, 1, "it belongs under mqtt.tls:");
    /* nothing close: the valid keys are listed instead */
    expect_error(EP "    zzzzzz: 1\n", 4, 5,
                 "unknown key 'zzzzzz' in endpoint 'a'; valid keys here are: name, url,");
    /* an entry whose name is unusable is named by its position */
    expect_error("endpoints:\n  - url: http://x\n    bogus_key: 1\n", 3, 5,
                 "unknown key 'bogus_key' in endpoint #1");
    expect_error(EP "    url: http://y\n", 4, 5,
                 "duplicate key 'url' in endpoint 'a' (first at line 3)");
    expect_error(EP "    ? [a]\n    : b\n", 4, 7, "keys must be plain words");
}

static void test_state_sync(void **state)
{
    (void)state;
    struct r2m_config *c = NULL;
    struct r2m_diag d = {0};
    assert_int_equal(parse(EP, &c, &d), 0);
    assert_int_equal(c->state.sync_full, 0); /* normal */
    r2m_config_free(c);
    assert_int_equal(parse("state: { sync: full }\n" EP, &c, &d), 0);
    assert_int_equal(c->state.sync_full, 1);
    r2m_config_free(c);
    r2m_diag_free(&d);
    expect_error("state: { sync: always }\n" EP, 1, 16, "state.sync: expected normal");
}

static void test_max_concurrent(void **state)
{
    (void)state;
    struct r2m_config *c = NULL;
    struct r2m_diag d = {0};
    assert_int_equal(parse(EP, &c, &d), 0);
    assert_int_equal(c->max_concurrent, 256);
    r2m_config_free(c);
    assert_int_equal(parse("max_concurrent: 8\n" EP, &c, &d), 0);
    assert_int_equal(c->max_concurrent, 8);
    r2m_config_free(c);
    r2m_diag_free(&d);
    expect_error("max_concurrent: 0\n" EP, 1, 17, "from 1 to 100000");
}

static void test_max_per_host(void **state)
{
    (void)state;
    struct r2m_config *c = NULL;
    struct r2m_diag d = {0};
    assert_int_equal(parse(EP, &c, &d), 0);
    assert_int_equal(c->max_per_host, 8);
    r2m_config_free(c);
    /* the default never exceeds max_concurrent */
    assert_int_equal(parse("max_concurrent: 3\n" EP, &c, &d), 0);
    assert_int_equal(c->max_per_host, 3);
    r2m_config_free(c);
    assert_int_equal(parse("max_concurrent: 10\nmax_per_host: 10\n" EP, &c, &d), 0);
    assert_int_equal(c->max_per_host, 10);
    r2m_config_free(c);
    r2m_diag_free(&d);
    expect_error("max_concurrent: 10\nmax_per_host: 11\n" EP, 2, 15,
                 "more than max_concurrent (10)");
    expect_error("max_per_host: 0\n" EP, 1, 15, "from 1 to 100000");
}

static void test_duration_ceiling(void **state)
{
    (void)state;
    /* overflowing or absurd durations are config errors at their position */
    expect_error("defaults: { interval: 9999999999999999h }\n" EP, 1, 23, "interval: expected");
    expect_error("defaults: { max_backoff: 366d }\n" EP, 1, 26, "at most 365d");
    expect_error("shutdown_timeout: 365d1ms\n" EP, 1, 19, "at most 365d");
    struct r2m_config *c = NULL;
    struct r2m_diag d = {0};
    assert_int_equal(parse("defaults: { interval: 365d }\n" EP, &c, &d), 0);
    assert_int_equal(c->endpoints[0].interval_ms, R2M_DURATION_MAX_MS);
    r2m_config_free(c);
    r2m_diag_free(&d);
}

static void test_metrics_listen(void **state)
{
    (void)state;
    struct r2m_config *c = NULL;
    struct r2m_diag d = {0};
    const char *yaml = "metrics: { listen: \"127.0.0.1:9464\" }\n" EP;
    int rc = parse(yaml, &c, &d);
    dump(&d);
    assert_int_equal(rc, 0);
    assert_string_equal(c->metrics.listen, "127.0.0.1:9464");
    r2m_config_free(c);
    r2m_diag_free(&d);
    rc = parse(EP, &c, &d);
    assert_int_equal(rc, 0);
    assert_null(c->metrics.listen); /* off unless asked for */
    r2m_config_free(c);
    r2m_diag_free(&d);
    expect_error("metrics: { listen: 9464 }\n" EP, 1, 20, "expected HOST:PORT");
    expect_error("metrics: { listen: \"localhost:9464\" }\n" EP, 1, 20, "not an IPv4 address");
    expect_error("metrics: { listen: \"127.0.0.1:70000\" }\n" EP, 1, 20, "expected HOST:PORT");
    expect_error("metrics: { port: 1 }\n" EP, 1, 12, "unknown key 'port'");
}

static void test_collection_keys(void **state)
{
    (void)state;
    struct r2m_config *c = NULL;
    struct r2m_diag d = {0};
    const char *yaml = "defaults: { payload: patch }\n"
                       "endpoints:\n"
                       "  - name: orders\n"
                       "    url: http://x/orders\n"
                       "    items: /data/items\n"
                       "    key: [/order, /line]\n"
                       "    initial: emit\n"
                       "    state_topic: \"{prefix}/{endpoint}/{key}/state\"\n"
                       "  - name: byname\n"
                       "    url: http://x/map\n"
                       "    items: \"\"\n"
                       "    payload: after\n"
                       "  - name: doc\n"
                       "    url: http://x/doc\n";
    int rc = parse(yaml, &c, &d);
    dump(&d);
    assert_int_equal(rc, 0);
    const struct r2m_endpoint_cfg *o = &c->endpoints[0], *m = &c->endpoints[1],
                                  *doc = &c->endpoints[2];
    assert_string_equal(o->items, "/data/items");
    assert_int_equal(o->n_key, 2);
    assert_string_equal(o->key[0], "/order");
    assert_string_equal(o->key[1], "/line");
    assert_int_equal(o->payload, R2M_PAYLOAD_PATCH); /* from defaults */
    assert_int_equal(o->initial_emit, 1);
    assert_string_equal(o->state_topic, "{prefix}/{endpoint}/{key}/state");
    /* collections get a per-item default topic */
    assert_string_equal(o->topic, "{prefix}/{endpoint}/{key}/{op}");
    assert_string_equal(m->items, "");
    assert_int_equal(m->n_key, 0);
    assert_int_equal(m->payload, R2M_PAYLOAD_AFTER);
    assert_int_equal(m->initial_emit, 0);
    assert_null(doc->items);
    assert_string_equal(doc->topic, "{prefix}/{endpoint}");
    assert_null(doc->state_topic);
    r2m_config_free(c);
    r2m_diag_free(&d);

    expect_error(EP "    key: /id\n", 4, 10, "has key: but no items:");
    expect_error(EP "    topic: \"{prefix}/{key}\"\n", 4, 12, "only available for collections");
    expect_error(EP "    items: /a\n    payload: diff\n", 5, 14,
                 "payload: expected full, patch or after");
    expect_error(EP "    items: /a\n    initial: all\n", 5, 14, "initial: expected snapshot");
    expect_error(EP "    items: a/b\n", 4, 12, "items: 'a/b' is not a JSON Pointer");
    expect_error(EP "    items: /a/*\n", 4, 12, "'*' is not allowed here");
    expect_error(EP "    items: /a\n    key: \"\"\n", 5, 10, "key: '' is not a JSON Pointer");
    expect_error(EP "    items: /a\n    key: []\n", 5, 10, "key: expected 1 to 8 JSON Pointers");
}

static void test_api_keys(void **state)
{
    (void)state;
    struct r2m_config *c = NULL;
    struct r2m_diag d = {0};
    setenv("R2M_T_TOKEN", "s3cret-token", 1);
    const char *yaml =
        "defaults:\n"
        "  auth: { type: bearer, token: \"${env:R2M_T_TOKEN}\" }\n"
        "  max_backoff: 1m\n"
        "endpoints:\n"
        "  - name: a\n"
        "    url: https://x/a\n"
        "    tls: { ca_file: /etc/hosts, cert_file: /etc/passwd, key_file: /etc/group }\n"
        "    accept_status: [200, 203]\n"
        "    error_if: { pointer: /status, equals: error }\n"
        "  - name: b\n"
        "    url: https://x/b\n"
        "    method: POST\n"
        "    body: '{\"q\":1}'\n"
        "    content_type: application/x-www-form-urlencoded\n"
        "    auth: { type: oauth2, token_url: https://x/token, client_id: me, client_secret: "
        "hush, scope: read }\n"
        "    items: /data\n"
        "    key: /id\n"
        "    paginate: { cursor: /next, param: after }\n"
        "    max_pages: 7\n"
        "  - name: c\n"
        "    url: https://x/c\n"
        "    auth: { type: query, name: api_key, value: k }\n"
        "    items: \"\"\n"
        "    paginate: { param: page, start: 0 }\n"
        "    tls: { insecure: true }\n"
        "  - name: d\n"
        "    url: https://x/d\n"
        "    auth: { type: basic, username: u, password: p }\n"
        "    items: /x\n"
        "    key: /id\n"
        "    paginate: { next: link }\n"
        "  - name: e\n"
        "    url: https://x/e\n"
        "    auth: { type: header, name: X-Api-Key, value: k }\n"
        "    items: /x\n"
        "    key: /id\n"
        "    paginate: { next: /links/next }\n";
    int rc = parse(yaml, &c, &d);
    dump(&d);
    assert_int_equal(rc, 0);
    const struct r2m_endpoint_cfg *e = c->endpoints;
    assert_int_equal(e[0].auth.type, R2M_AUTH_BEARER); /* from defaults */
    assert_string_equal(e[0].auth.token, "s3cret-token");
    assert_int_equal(e[0].max_backoff_ms, 60000);
    assert_string_equal(e[0].tls.ca_file, "/etc/hosts");
    assert_string_equal(e[0].tls.key_file, "/etc/group");
    assert_int_equal(e[0].n_accept_status, 2);
    assert_int_equal(e[0].accept_status[1], 203);
    assert_string_equal(e[0].error_if.pointer, "/status");
    assert_string_equal(e[0].error_if.equals, "error");
    assert_int_equal(e[0].paginate.kind, R2M_PAGE_NONE);
    assert_int_equal(e[0].max_pages, 100);
    assert_int_equal(e[1].auth.type, R2M_AUTH_OAUTH2); /* the endpoint's replaces defaults' */
    assert_string_equal(e[1].auth.client_secret, "hush");
    assert_string_equal(e[1].auth.scope, "read");
    assert_null(e[1].auth.token);
    assert_string_equal(e[1].content_type, "application/x-www-form-urlencoded");
    assert_int_equal(e[1].paginate.kind, R2M_PAGE_CURSOR);
    assert_string_equal(e[1].paginate.pointer, "/next");
    assert_string_equal(e[1].paginate.param, "after");
    assert_int_equal(e[1].max_pages, 7);
    assert_int_equal(e[2].auth.type, R2M_AUTH_QUERY);
    assert_int_equal(e[2].paginate.kind, R2M_PAGE_NUMBER);
    assert_int_equal(e[2].paginate.start, 0);
    assert_true(e[2].tls.insecure);
    assert_int_equal(e[3].auth.type, R2M_AUTH_BASIC);
    assert_int_equal(e[3].paginate.kind, R2M_PAGE_LINK);
    assert_int_equal(e[4].auth.type, R2M_AUTH_HEADER);
    assert_int_equal(e[4].paginate.kind, R2M_PAGE_NEXT);
    assert_string_equal(e[4].paginate.pointer, "/links/next");
    r2m_config_free(c);
    r2m_diag_free(&d);

    expect_error(EP "    auth: { type: digest }\n", 4, 19, "auth.type: expected basic, bearer");
    expect_error(EP "    auth: { type: basic, username: u }\n", 4, 11,
                 "type basic needs 'password'");
    expect_error(EP "    auth: { type: bearer, token: t, username: u }\n", 4, 37,
                 "'username' does not apply to type bearer");
    expect_error(EP "    auth: { type: header, name: \"X Key\", value: v }\n", 4, 33,
                 "not a valid header name");
    expect_error(EP "    accept_status: [200, 999]\n", 4, 26, "an HTTP status from 100 to 599");
    expect_error(EP "    error_if: { pointer: /s }\n", 4, 15, "needs pointer: and equals:");
    expect_error(EP "    paginate: { next: /a, param: p }\n", 4, 15, "cannot be combined");
    expect_error(EP "    paginate: { next: link }\n", 2, 5, "has paginate: but no items:");
    expect_error(EP "    items: /a\n    key: /id\n    paginate: { cursor: /c }\n", 6, 15,
                 "cursor: needs param:");
    expect_error(EP "    content_type: text/plain\n", 2, 5,
                 "content_type: but its method is not POST");
    expect_error(EP "    tls: { key_file: /k }\n", 4, 12, "tls.key_file needs cert_file");
    expect_error(EP "    max_pages: 0\n", 4, 16, "from 1 to 100000");
}

static void test_duplicate_names(void **state)
{
    (void)state;
    expect_error(EP "  - name: b\n    url: http://y\n  - name: a\n    url: http://z\n", 6, 11,
                 "duplicate endpoint name 'a' (first used at line 2)");
    /* a third one also points at the first */
    struct r2m_config *c = NULL;
    struct r2m_diag d = {0};
    assert_int_equal(
        parse(EP "  - name: a\n    url: http://y\n  - name: a\n    url: http://z\n", &c, &d),
        R2M_E_CONFIG);
    assert_int_equal(d.n, 2);
    assert_true(has_line(&d, 4, 11, "first used at line 2"));
    assert_true(has_line(&d, 6, 11, "first used at line 2"));
    r2m_diag_free(&d);
}

/* ---- values ---------------------------------------------------------------- */

struct bad_value {
    const char *section; /* "ep", "top" or a section name */
    const char *key;
    const char *value;
    const char *frag;
};

static const struct bad_value bad_values[] = {
    {"ep", "interval", "abc", "interval: expected a duration like 30s or 250ms"},
    {"ep", "interval", "30", "got '30'"},
    {"ep", "interval", "1.5s", "expected a duration like 30s or 250ms"},
    {"ep", "interval", "5ms", "interval: must be at least 10ms, got '5ms'"},
    {"ep", "timeout", "0s", "timeout: must be longer than 0"},
    {"ep", "timeout", "-1s", "expected a duration"},
    {"ep", "jitter", "150%", "jitter: expected a percentage from 0% to 100% like 10%"},
    {"ep", "jitter", "0.1", "got '0.1'"},
    {"ep", "jitter", "10 %", "expected a percentage"},
    {"ep", "max_body", "5GiB", "max_body: expected a size from 1 byte to 4GiB"},
    {"ep", "max_body", "0", "max_body: expected a size from 1 byte to 4GiB"},
    {"ep", "max_body", "32mb", "got '32mb'"},
    {"ep", "max_depth", "0", "max_depth: expected a whole number from 1 to 1000, got '0'"},
    {"ep", "max_depth", "1001", "got '1001'"},
    {"ep", "max_depth", "10x", "got '10x'"},
    {"ep", "method", "PUT", "method: expected GET or POST, got 'PUT'"},
    {"ep", "url", "ftp://example/x",
     "url: expected a URL starting with http://, https:// or "
     "file://, got 'ftp://...'"},
    {"ep", "url", "example.com", "got 'example.com'"},
    {"ep", "url", "https://", "the URL has nothing after the scheme"},
    {"ep", "topic", "a/#", "topic: "},
    {"ep", "topic", "{key}", "topic: "},
    {"ep", "ignore", "[/ok, bad]", "ignore: 'bad' is not a valid JSON Pointer pattern"},
    {"ep", "headers", "{X-A: \"a\\r\\nX-B: b\"}", "the value contains a line break"},
    {"ep", "headers", "{\"bad name\": x}", "'bad name' is not a valid header name"},
    {"mqtt", "qos", "3", "mqtt.qos: expected 0, 1 or 2, got '3'"},
    {"mqtt", "qos", "1x", "got '1x'"},
    {"mqtt", "version", "4", "mqtt.version: expected 5 or 3.1.1, got '4'"},
    {"mqtt", "version", "3.1", "got '3.1'"},
    {"mqtt", "url", "http://broker",
     "mqtt.url: expected a URL starting with mqtt://, "
     "mqtts://, tcp://, ssl://, ws:// or wss://"},
    {"mqtt", "url", "mqtt://", "mqtt.url: the URL has no host"},
    {"mqtt", "keepalive", "30", "mqtt.keepalive: expected a duration"},
    {"mqtt", "keepalive", "1d", "mqtt.keepalive: must be at most"},
    {"mqtt", "topic_prefix", "a/#", "mqtt.topic_prefix: must not contain '+' or '#'"},
    {"mqtt", "topic_prefix", "a+b", "must not contain '+' or '#'"},
    {"mqtt", "topic_prefix", "''", "mqtt.topic_prefix: must not be empty"},
    {"mqtt", "topic_prefix", "$SYS", "must not start with '$'"},
    {"mqtt", "status_topic", "x/+", "mqtt.status_topic: "},
    {"mqtt", "client_id", "''", "mqtt.client_id: must not be empty"},
    {"mqtt", "tls", "{insecure: yes}", "mqtt.tls.insecure: expected true or false, got 'yes'"},
    {"state", "outbox_max", "0", "state.outbox_max: expected a whole number of events"},
    {"state", "outbox_max", "100k", "got '100k'"},
    {"state", "outbox_max", "99999999999999999999999", "state.outbox_max: expected"},
    {"state", "path", "''", "state.path: must not be empty"},
    {"log", "level", "verbose",
     "log.level: expected one of error, warn, info, debug, "
     "got 'verbose'"},
    {"log", "format", "xml", "log.format: expected text or json, got 'xml'"},
    {"top", "shutdown_timeout", "soon", "shutdown_timeout: expected a duration like 30s"},
    {"top", "instance", "''", "instance: must not be empty"},
};

static void test_bad_values(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_values / sizeof bad_values[0]; i++) {
        const struct bad_value *b = &bad_values[i];
        char yaml[512];
        int line, col;
        if (!strcmp(b->section, "ep") && !strcmp(b->key, "url")) {
            snprintf(yaml, sizeof yaml, "endpoints:\n  - name: a\n    url: %s\n", b->value);
            line = 3;
            col = 10;
        } else if (!strcmp(b->section, "ep")) {
            snprintf(yaml, sizeof yaml, EP "    %s: %s\n", b->key, b->value);
            line = 4;
            col = (int)strlen(b->key) + 7;
        } else if (!strcmp(b->section, "top")) {
            snprintf(yaml, sizeof yaml, "%s: %s\n" EP, b->key, b->value);
            line = 1;
            col = (int)strlen(b->key) + 3;
        } else {
            snprintf(yaml, sizeof yaml, "%s:\n  %s: %s\n" EP, b->section, b->key, b->value);
            line = 2;
            col = (int)strlen(b->key) + 5;
        }
        /* errors inside a flow value point into it */
        if (!strcmp(b->key, "ignore"))
            col += 6;
        if (!strcmp(b->key, "headers") && b->value[1] == 'X')
            col += 6;
        if (!strcmp(b->key, "headers") && b->value[1] == '"')
            col += 1;
        if (!strcmp(b->key, "tls"))
            col += 11;
        expect_error(yaml, line, col, b->frag);
    }
}

static void test_names(void **state)
{
    (void)state;
    expect_error("endpoints:\n  - name: Bad Name\n    url: http://x\n", 2, 11,
                 "name: expected 1 to 64 characters of a-z, 0-9, '_' and '-', got 'Bad Name'");
    expect_error("endpoints:\n  - name: a.b\n    url: http://x\n", 2, 11, "got 'a.b'");
    expect_error("endpoints:\n  - name: ''\n    url: http://x\n", 2, 11, "got ''");
    char yaml[256];
    snprintf(yaml, sizeof yaml, "endpoints:\n  - name: %065d\n    url: http://x\n", 0);
    expect_error(yaml, 2, 11, "expected 1 to 64 characters");
    snprintf(yaml, sizeof yaml, "endpoints:\n  - name: %064d\n    url: http://x\n", 0);
    struct r2m_config *c = parse_ok(yaml);
    r2m_config_free(c);
    expect_error("endpoints:\n  - url: http://x\n", 2, 5, "endpoint #1 has no name; add name:");
    expect_error("endpoints:\n  - name: a\n", 2, 5, "endpoint 'a' has no url; add url:");
}

static void test_body_and_method(void **state)
{
    (void)state;
    expect_error(EP "    body: '{}'\n", 4, 11,
                 "endpoint 'a' has a body but its method is GET; set method: POST or remove body");
    expect_error(EP "    method: get\n    body: x\n", 5, 11, "has a body but its method is GET");
    struct r2m_config *c = parse_ok(EP "    method: pOsT\n    body: x\n");
    assert_string_equal(c->endpoints[0].method, "POST");
    assert_string_equal(c->endpoints[0].body, "x");
    r2m_config_free(c);
}

static void test_wrong_types(void **state)
{
    (void)state;
    expect_error("mqtt: [1, 2]\n" EP, 1, 7, "mqtt: expected a mapping");
    expect_error("mqtt: broker\n" EP, 1, 7, "mqtt: expected a mapping");
    expect_error("mqtt:\n  tls: yes\n" EP, 2, 8, "mqtt.tls: expected a mapping");
    expect_error(EP "    interval: {a: 1}\n", 4, 15,
                 "interval: expected a duration like 30s or 250ms, got a mapping");
    expect_error("endpoints:\n  - name: a\n    url: [a]\n", 3, 10, "url: expected a URL");
    expect_error(EP "    headers: [a]\n", 4, 14, "headers: expected a mapping");
    expect_error(EP "    headers: {X-A: [1]}\n", 4, 20, "header 'X-A': expected a text value");
    expect_error(EP "    ignore: {a: b}\n", 4, 13, "ignore: expected a list of JSON Pointers");
    expect_error("endpoints:\n  - name: a\n    url:\n", 3, 9,
                 "url: expected a URL like https://api.example/items, got nothing");
    expect_error(EP "    timeout:\n", 4, 13,
                 "timeout: expected a duration like 30s or 250ms, "
                 "got nothing");
    expect_error("endpoints: {name: a}\n", 1, 12, "endpoints: expected a list of endpoints");
    expect_error("endpoints:\n  - just-a-string\n", 2, 5, "expected a mapping for each endpoint");
    expect_error("- a\n- b\n", 1, 1, "expected a mapping at the top level");
    expect_error("defaults: [1]\n" EP, 1, 11, "defaults: expected a mapping");
    expect_error("log:\n  level: [debug]\n" EP, 2, 10, "log.level: expected one of error");
}

static void test_empty_endpoints(void **state)
{
    (void)state;
    expect_error("endpoints: []\n", 1, 12, "endpoints: the list is empty; add at least one");
    expect_error("endpoints:\n", 1, 11, "endpoints: the list is empty");
    expect_error("mqtt:\n  qos: 1\n", 1, 1, "no endpoints: list; add endpoints:");
    expect_error("", 1, 1, "the configuration is empty");
    expect_error("# only a comment\n", 1, 1, "the configuration is empty");
}

/* ---- YAML level ----------------------------------------------------------- */

static void test_anchors_refused(void **state)
{
    (void)state;
    const char *yaml = "defaults: &d\n"
                       "  interval: 1s\n"
                       "endpoints:\n"
                       "  - name: a\n"
                       "    url: &u http://x\n"
                       "  - name: b\n"
                       "    url: *u\n"
                       "    <<: *d\n";
    expect_error(yaml, 1, 11,
                 "YAML anchors and aliases are not supported; repeat the value or use "
                 "defaults: (anchor &'d')");
    expect_error(yaml, 5, 10, "(anchor &'u')");
    expect_error(yaml, 7, 10, "YAML anchors and aliases are not supported; repeat the value");
    expect_error(yaml, 8, 9, "(alias *'d')");
    /* the alias is not reported a second time as a missing or wrong url */
    struct r2m_config *c = NULL;
    struct r2m_diag d = {0};
    assert_int_equal(parse(yaml, &c, &d), R2M_E_CONFIG);
    assert_int_equal(d.n, 5); /* 2 anchors, 2 aliases, unknown key '<<' */
    assert_true(has_line(&d, 8, 5, "unknown key '<<'"));
    r2m_diag_free(&d);
}

static void test_billion_laughs(void **state)
{
    (void)state;
    const char *yaml =
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
        "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
        "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
        "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
        "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
        "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
        "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
        "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
        "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"
        "endpoints: *i\n";
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    expect_error(yaml, 1, 4, "YAML anchors and aliases are not supported");
    expect_error(yaml, 10, 12, "YAML anchors and aliases are not supported");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(s < 2.0);
}

static void test_limits(void **state)
{
    (void)state;
    /* 100,000 nested brackets stop at level 33 (the root mapping is level 1), long
     * before any stack could overflow */
    size_t n = 100000;
    char *deep = malloc(2 * n + 32);
    assert_non_null(deep);
    memcpy(deep, "x: ", 3);
    memset(deep + 3, '[', n);
    memset(deep + 3 + n, ']', n);
    deep[3 + 2 * n] = '\0';
    expect_error(deep, 1, 35, "nesting deeper than 32 levels");
    free(deep);

    /* more than 1,000,000 values: refused at the first one too many */
    size_t items = 1000001;
    char *wide = malloc(2 * items + 32);
    assert_non_null(wide);
    size_t k = 0;
    wide[k++] = '[';
    for (size_t i = 0; i < items; i++) {
        wide[k++] = '1';
        wide[k++] = ',';
    }
    wide[k - 1] = ']';
    wide[k] = '\0';
    /* the root sequence is value 1; value 1,000,001 is the 1,000,000th item */
    expect_error(wide, 1, (int)(2 * 1000000), "more than 1000000 YAML values");
    free(wide);

    /* too many headers */
    char *many = malloc(8192);
    assert_non_null(many);
    k = (size_t)sprintf(many, EP "    headers:\n");
    for (int i = 0; i < 101; i++)
        k += (size_t)sprintf(many + k, "      X-H%d: v\n", i);
    expect_error(many, 5, 7, "headers: more than 100 headers");
    free(many);
}

static void test_syntax_errors(void **state)
{
    (void)state;
    /* a key indented one column less than its siblings */
    expect_error("endpoints:\n  - name: a\n    url: http://x\n   bad: 1\n", 4, 4,
                 "did not find expected '-' indicator while parsing a block collection started "
                 "at line 2, column 3");
    expect_error("mqtt:\n  url: [a, b\n", 3, 1, "did not find expected ',' or ']'");
    expect_error("mqtt:\n  url: x: y\n", 2, 9, "mapping values are not allowed in this context");
    expect_error("a: 'open\n", 2, 1, "found unexpected end of stream");
    expect_error("mqtt:\n\turl: x\n", 2, 1, "found character that cannot start any token");
    /* invalid UTF-8: the position comes from the byte offset */
    expect_error("mqtt:\n  url: \xff\n", 2, 8, "invalid leading UTF-8 octet");
    /* a syntax error stops the check: no follow-up errors about a half-read tree */
    struct r2m_config *c = NULL;
    struct r2m_diag d = {0};
    assert_int_equal(parse("mqtt:\n  url: [a, b\n", &c, &d), R2M_E_CONFIG);
    assert_int_equal(d.n, 1);
    r2m_diag_free(&d);
}

static void test_documents_and_tags(void **state)
{
    (void)state;
    expect_error(EP "---\nendpoints: []\n", 4, 1, "only one YAML document is allowed");
    struct r2m_config *c = parse_ok("---\n" EP "...\n");
    r2m_config_free(c);
    expect_error(EP "    timeout: !!str 5s\n", 4, 14,
                 "YAML tags are not supported ('tag:yaml.org,2002:str')");
}

/* ---- expansion ------------------------------------------------------------ */

static void test_env_expansion(void **state)
{
    (void)state;
    setenv("R2M_T_HOST", "api.example", 1);
    setenv("R2M_T_IVL", "45s", 1);
    setenv("R2M_T_EMPTY", "", 1);
    struct r2m_config *c = parse_ok("mqtt:\n  username: ${env:R2M_T_EMPTY}\n"
                                    "endpoints:\n  - name: a\n"
                                    "    url: https://${env:R2M_T_HOST}/v1?h=${env:R2M_T_HOST}\n"
                                    "    interval: ${env:R2M_T_IVL}\n");
    assert_string_equal(c->endpoints[0].url, "https://api.example/v1?h=api.example");
    assert_int_equal(c->endpoints[0].interval_ms, 45000);
    assert_string_equal(c->mqtt.username, "");
    r2m_config_free(c);

    unsetenv("MQTT_PASSWORD_R2M_T");
    expect_error("mqtt:\n  password: ${env:MQTT_PASSWORD_R2M_T}\n" EP, 2, 13,
                 "environment variable MQTT_PASSWORD_R2M_T is not set; export it or remove the "
                 "reference");
    expect_error("mqtt:\n  password: ${env:}\n" EP, 2, 13,
                 "is not a valid environment variable name");
    expect_error("mqtt:\n  password: ${env:A-B}\n" EP, 2, 13, "'A-B' is not a valid");
    /* keys are not expanded, and values under unknown keys are not read */
    expect_error(EP "    ${env:X}: 1\n", 4, 5, "unknown key '${env:X}'");
    struct r2m_config *bad = NULL;
    struct r2m_diag d = {0};
    assert_int_equal(parse(EP "    intervall: ${env:R2M_T_UNSET_XYZ}\n", &bad, &d), R2M_E_CONFIG);
    assert_int_equal(d.n, 1);
    r2m_diag_free(&d);
    unsetenv("R2M_T_HOST");
    unsetenv("R2M_T_IVL");
    unsetenv("R2M_T_EMPTY");
}

static char *temp_file(const char *content)
{
    char *path = strdup("/tmp/r2m-test-config-XXXXXX");
    assert_non_null(path);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t n = strlen(content);
    assert_int_equal(write(fd, content, n), (ssize_t)n);
    close(fd);
    return path;
}

static void test_file_expansion(void **state)
{
    (void)state;
    char *secret = temp_file("s3cret\n");
    char *twice = temp_file("line\n\n");
    char *crlf = temp_file("tok\r\n");
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "mqtt:\n  password: ${file:%s}\n  username: \"${file:%s}\"\n"
             "  client_id: x${file:%s}y\n" EP,
             secret, twice, crlf);
    struct r2m_config *c = parse_ok(yaml);
    assert_string_equal(c->mqtt.password, "s3cret");
    assert_string_equal(c->mqtt.username, "line\n"); /* only one newline is stripped */
    assert_string_equal(c->mqtt.client_id, "xtoky");
    r2m_config_free(c);

    expect_error("mqtt:\n  password: ${file:/nonexistent/r2m/secret}\n" EP, 2, 13,
                 "cannot read '/nonexistent/r2m/secret' for ${file:}: No such file or directory");
    expect_error("mqtt:\n  password: ${file:}\n" EP, 2, 13, "${file:} needs a path");

    /* over 1 MiB */
    char *big = malloc((1u << 20) + 2);
    assert_non_null(big);
    memset(big, 'a', (1u << 20) + 1);
    big[(1u << 20) + 1] = '\0';
    char *bigf = temp_file(big);
    free(big);
    snprintf(yaml, sizeof yaml, "mqtt:\n  password: ${file:%s}\n" EP, bigf);
    expect_error(yaml, 2, 13, "is larger than 1 MiB");

    unlink(secret);
    unlink(twice);
    unlink(crlf);
    unlink(bigf);
    free(secret);
    free(twice);
    free(crlf);
    free(bigf);
}

static void test_escapes(void **state)
{
    (void)state;
    struct r2m_config *c = parse_ok("mqtt:\n  password: \"$${env:NOT_EXPANDED}\"\n"
                                    "  username: a$b$$c$\n" EP);
    assert_string_equal(c->mqtt.password, "${env:NOT_EXPANDED}");
    assert_string_equal(c->mqtt.username, "a$b$$c$");
    r2m_config_free(c);
    expect_error("mqtt:\n  password: ${vault:x/y}\n" EP, 2, 13,
                 "unknown reference '${vault:...}'; use ${env:NAME} or ${file:/path}, or write "
                 "'$${' for a literal '${'");
    expect_error("mqtt:\n  password: abc${env:X\n" EP, 2, 13,
                 "unterminated '${' in the value; end the reference with '}'");
    expect_error("mqtt:\n  password: \"a\\0b\"\n" EP, 2, 13, "the value contains a NUL byte");
}

static void test_secrets_not_shown(void **state)
{
    (void)state;
    setenv("R2M_T_SECRET_URL", "http://user:topsecret@host", 1);
    setenv("R2M_T_PW", "topsecret", 1);
    struct r2m_config *c = NULL;
    struct r2m_diag d = {0};
    int rc = parse("mqtt:\n"
                   "  url: ${env:R2M_T_SECRET_URL}\n"
                   "  password: ${env:R2M_T_PW}\n"
                   "  qos: ${env:R2M_T_PW}\n"
                   "endpoints:\n"
                   "  - name: a\n"
                   "    url: ftp://user:topsecret@host/x?token=topsecret\n"
                   "    headers: {Authorization: \"Bearer topsecret\", Bad: \"x\\ny topsecret\"}\n"
                   "    method: POST\n"
                   "    body: topsecret\n"
                   "    max_depth: [topsecret]\n",
                   &c, &d);
    assert_int_equal(rc, R2M_E_CONFIG);
    assert_true(d.n >= 4);
    for (size_t i = 0; i < d.n; i++)
        if (strstr(d.lines[i], "topsecret")) {
            dump(&d);
            fail_msg("a secret leaked into a diagnostic");
        }
    assert_true(has_line(&d, 2, 8, "got a value from ${env:} or ${file:} (not shown)"));
    assert_true(has_line(&d, 4, 8, "mqtt.qos: expected 0, 1 or 2, got a value from"));
    assert_true(has_line(&d, 7, 10, "got 'ftp://...'"));
    r2m_diag_free(&d);
    /* credentials in a URL without a scheme */
    assert_int_equal(parse("endpoints:\n- name: a\n  url: user:topsecret@host\n", &c, &d),
                     R2M_E_CONFIG);
    assert_int_equal(d.n, 1);
    assert_null(strstr(d.lines[0], "topsecret"));
    assert_true(has_line(&d, 3, 8, "may hold credentials (not shown)"));
    r2m_diag_free(&d);
    /* a pointer or topic from ${env:}: the checker's words would quote it */
    assert_int_equal(parse("endpoints:\n- name: a\n  url: http://h/x\n"
                           "  items: ${env:R2M_T_PW}\n  key: ${env:R2M_T_PW}\n"
                           "  ignore: [\"${env:R2M_T_PW}~\"]\n  topic: \"{${env:R2M_T_PW}}\"\n",
                           &c, &d),
                     R2M_E_CONFIG);
    assert_true(d.n >= 3);
    for (size_t i = 0; i < d.n; i++)
        if (strstr(d.lines[i], "topsecret")) {
            dump(&d);
            fail_msg("a secret leaked into a pointer or topic diagnostic");
        }
    r2m_diag_free(&d);
    unsetenv("R2M_T_SECRET_URL");
    unsetenv("R2M_T_PW");
}

/* ---- hardening: what reaches a request ------------------------------------ */

static void test_redirects_key(void **state)
{
    (void)state;
    struct r2m_config *c = parse_ok(EP);
    assert_int_equal(c->endpoints[0].redirects, R2M_REDIRECTS_SAME_ORIGIN);
    r2m_config_free(c);
    c = parse_ok(EP "    redirects: any\n");
    assert_int_equal(c->endpoints[0].redirects, R2M_REDIRECTS_ANY);
    r2m_config_free(c);
    c = parse_ok("defaults:\n  redirects: none\n" EP "  - name: b\n    url: http://y\n"
                 "    redirects: same-origin\n");
    assert_int_equal(c->endpoints[0].redirects, R2M_REDIRECTS_NONE);
    assert_int_equal(c->endpoints[1].redirects, R2M_REDIRECTS_SAME_ORIGIN);
    /* a reload must see the change */
    uint64_t h = r2m_config_endpoint_hash(&c->endpoints[0]);
    c->endpoints[0].redirects = R2M_REDIRECTS_ANY;
    assert_true(h != r2m_config_endpoint_hash(&c->endpoints[0]));
    r2m_config_free(c);
    expect_error(EP "    redirects: sometimes\n", 4, 16,
                 "redirects: expected same-origin (follow redirects within the URL's origin), any "
                 "(follow anywhere, without credentials off the origin) or none, got "
                 "'sometimes'");
}

#define LINE_BREAK                                                                                 \
    ": the value contains a line break (CR or LF), which would reach the request; put it on one "  \
    "line"
static const struct {
    const char *yaml;
    int line, col;
    const char *key;
} line_break_cases[] = {
    {"endpoints:\n  - name: a\n    url: http://x\n    auth: { type: bearer, token: "
     "\"abc\\nX-Injected: 1\" }\n",
     4, 34, "auth.token"},
    {"endpoints:\n  - name: a\n    url: http://x\n    auth: { type: basic, username: \"u\\r\\nX: "
     "1\", password: p }\n",
     4, 36, "auth.username"},
    {"endpoints:\n  - name: a\n    url: http://x\n    auth: { type: basic, username: u, password: "
     "\"p\\n\" }\n",
     4, 49, "auth.password"},
    {"endpoints:\n  - name: a\n    url: http://x\n    auth: { type: header, name: X-Key, value: "
     "\"k\\r\" }\n",
     4, 47, "auth.value"},
    {"endpoints:\n  - name: a\n    url: http://x\n    auth: { type: query, name: key, value: "
     "\"k\\nX: 1\" }\n",
     4, 44, "auth.value"},
    {"endpoints:\n  - name: a\n    url: http://x\n    auth: { type: query, name: \"k\\ny\", value: "
     "v }\n",
     4, 32, "auth.name"},
    {"endpoints:\n  - name: a\n    url: http://x\n    auth: { type: oauth2, token_url: "
     "\"https://t/\\r\\nX: 1\", client_id: i, client_secret: s }\n",
     4, 38, "auth.token_url"},
    {"endpoints:\n  - name: a\n    url: http://x\n    auth: { type: oauth2, token_url: https://t/, "
     "client_id: \"i\\n\", client_secret: s }\n",
     4, 61, "auth.client_id"},
    {"endpoints:\n  - name: a\n    url: http://x\n    auth: { type: oauth2, token_url: https://t/, "
     "client_id: i, client_secret: \"s\\r\" }\n",
     4, 79, "auth.client_secret"},
    {"endpoints:\n  - name: a\n    url: http://x\n    auth: { type: oauth2, token_url: https://t/, "
     "client_id: i, client_secret: s, scope: \"a\\nb\" }\n",
     4, 89, "auth.scope"},
    {"endpoints:\n  - name: a\n    url: http://x\n    headers: { X-A: \"a\\rb\" }\n", 4, 21,
     "header 'X-A'"},
    {"endpoints:\n  - name: a\n    url: http://x\n    method: POST\n    content_type: "
     "\"text/plain\\r\\nX: 1\"\n",
     5, 19, "content_type"},
    {"endpoints:\n  - name: a\n    url: \"http://x/\\r\\nX-Injected: 1\"\n", 3, 10, "url"},
    {"mqtt:\n  url: \"mqtt://h:1883\\r\\nX: 1\"\nendpoints:\n  - name: a\n    url: http://x\n", 2,
     8, "mqtt.url"},
};

static void test_line_breaks_refused(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof line_break_cases / sizeof line_break_cases[0]; i++) {
        char frag[256];
        snprintf(frag, sizeof frag, "%s" LINE_BREAK, line_break_cases[i].key);
        expect_error(line_break_cases[i].yaml, line_break_cases[i].line, line_break_cases[i].col,
                     frag);
    }
    /* after ${env:} expansion too, and the value is never shown */
    setenv("R2M_T_CRLF", "abc-secret\r\nX-Injected: 1", 1);
    const char *yaml = EP "    auth: { type: bearer, token: \"${env:R2M_T_CRLF}\" }\n";
    expect_error(yaml, 4, 34, "auth.token" LINE_BREAK);
    struct r2m_config *c = NULL;
    struct r2m_diag d = {0};
    assert_int_equal(parse(yaml, &c, &d), R2M_E_CONFIG);
    for (size_t i = 0; i < d.n; i++)
        assert_null(strstr(d.lines[i], "abc-secret"));
    r2m_diag_free(&d);
    unsetenv("R2M_T_CRLF");
}

static void test_file_secret_newline(void **state)
{
    (void)state;
    /* exactly one trailing line break (LF or CRLF) is dropped, as `echo`
     * and editors write one; a second one is refused where it would
     * reach a request */
    char *one = temp_file("tok-1\n"), *two = temp_file("tok-2\n\n");
    char yaml[512];
    snprintf(yaml, sizeof yaml, EP "    auth: { type: bearer, token: \"${file:%s}\" }\n", one);
    struct r2m_config *c = parse_ok(yaml);
    assert_string_equal(c->endpoints[0].auth.token, "tok-1");
    r2m_config_free(c);
    snprintf(yaml, sizeof yaml, EP "    auth: { type: bearer, token: \"${file:%s}\" }\n", two);
    expect_error(yaml, 4, 34,
                 "auth.token" LINE_BREAK
                 " (one line break at the end of a ${file:} file is dropped; more are not)");
    unlink(one);
    unlink(two);
    free(one);
    free(two);
}

static void test_file_not_regular(void **state)
{
    (void)state;
    char fifo[] = "/tmp/r2m-test-fifo-XXXXXX";
    int fd = mkstemp(fifo);
    assert_true(fd >= 0);
    close(fd);
    unlink(fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    char yaml[512], frag[256];
    /* a FIFO without writer: refused at once, never waited for */
    snprintf(yaml, sizeof yaml, "mqtt:\n  password: ${file:%s}\n" EP, fifo);
    snprintf(frag, sizeof frag,
             "'%s' is a FIFO, not a regular file; ${file:} reads regular files only", fifo);
    expect_error(yaml, 2, 13, frag);
    unlink(fifo);
    expect_error("mqtt:\n  password: ${file:/tmp}\n" EP, 2, 13,
                 "'/tmp' is a directory, not a regular file; ${file:} reads regular files only");
    expect_error("mqtt:\n  password: x${file:/dev/zero}\n" EP, 2, 13,
                 "'/dev/zero' is a device, not a regular file; ${file:} reads regular files only");
}

static void test_tls_rules(void **state)
{
    (void)state;
    static const char plain[] =
        "mqtt.tls: set, but mqtt.url (%s...) is plaintext: the broker would get the password "
        "unencrypted; use mqtts://, ssl:// or wss://, or remove tls:";
    char frag[256];
    snprintf(frag, sizeof frag, plain, "mqtt://");
    expect_error("mqtt:\n  url: mqtt://b:1883\n  tls: { ca_file: /etc/hosts }\n" EP, 3, 3, frag);
    expect_error("mqtt:\n  tls: { insecure: true }\n" EP, 2, 3, frag); /* the default URL */
    snprintf(frag, sizeof frag, plain, "tcp://");
    expect_error("mqtt:\n  url: tcp://b:1883\n  tls: { ca_file: /etc/hosts }\n" EP, 3, 3, frag);
    snprintf(frag, sizeof frag, plain, "ws://");
    expect_error("mqtt:\n  url: ws://b:80\n  tls: { ca_file: /etc/hosts }\n" EP, 3, 3, frag);
    expect_error("mqtt:\n  url: mqtts://b:8883\n  tls: { ca_file: /nonexistent/ca.pem }\n" EP, 3,
                 19,
                 "mqtt.tls.ca_file: cannot read '/nonexistent/ca.pem': No such file or "
                 "directory; check the path and its permissions");
    expect_error("mqtt:\n  url: mqtts://b:8883\n  tls: { cert_file: /tmp }\n" EP, 3, 21,
                 "mqtt.tls.cert_file: '/tmp' is not a regular file; give the path of a PEM file");
    expect_error(
        "mqtt:\n  url: mqtts://b:8883\n  tls: { cert_file: /etc/hosts, key_file: /nope.pem }\n" EP,
        3, 43,
        "mqtt.tls.key_file: cannot read '/nope.pem': No such file or directory; check the path "
        "and its permissions");
    expect_error(EP "    tls: { ca_file: /nonexistent/ca.pem }\n", 4, 21,
                 "tls.ca_file: cannot read '/nonexistent/ca.pem': No such file or directory");
    expect_error("defaults:\n  tls: { cert_file: /etc/hosts, key_file: /nope.pem }\n" EP, 2, 43,
                 "tls.key_file: cannot read '/nope.pem'");
    /* paho matches schemes case-sensitively: stored in lower case */
    struct r2m_config *c =
        parse_ok("mqtt:\n  url: MQTTS://B:8883\n  tls: { ca_file: /etc/hosts }\n" EP);
    assert_string_equal(c->mqtt.url, "mqtts://B:8883");
    r2m_config_free(c);
}

/* ---- reporting ------------------------------------------------------------ */

static void test_many_errors(void **state)
{
    (void)state;
    struct r2m_config *c = (struct r2m_config *)&c;
    struct r2m_diag d = {0};
    const char *yaml = "endpoints:\n"          /* 1 */
                       "  - name: a\n"         /* 2 */
                       "    url: http://x\n"   /* 3 */
                       "    interval: fast\n"  /* 4 */
                       "  - name: B\n"         /* 5 */
                       "    url: gopher://x\n" /* 6 */
                       "mqtt:\n"               /* 7 */
                       "  qos: 9\n"            /* 8 */
                       "  colour: blue\n"      /* 9 */
                       "defaults:\n"           /* 10 */
                       "  jitter: lots\n";     /* 11 */
    assert_int_equal(parse(yaml, &c, &d), R2M_E_CONFIG);
    assert_null(c);
    assert_int_equal(d.n, 6);
    static const char *const want[] = {
        "t.yaml:4:15: error: interval: expected a duration",
        "t.yaml:5:11: error: name: expected 1 to 64 characters",
        "t.yaml:6:10: error: url: expected a URL starting with",
        "t.yaml:8:8: error: mqtt.qos: expected 0, 1 or 2",
        "t.yaml:9:3: error: unknown key 'colour' in mqtt",
        "t.yaml:11:11: error: jitter: expected a percentage",
    };
    for (size_t i = 0; i < 6; i++)
        if (strncmp(d.lines[i], want[i], strlen(want[i]))) {
            dump(&d);
            fail_msg("line %zu: expected %s", i, want[i]);
        }
    r2m_diag_free(&d);

    /* a flood is cut off after 100 lines with a count of the rest */
    char *flood = malloc(64 * 1024);
    assert_non_null(flood);
    size_t k = (size_t)sprintf(flood, EP);
    for (int i = 0; i < 150; i++)
        k += (size_t)sprintf(flood + k, "    bad%d: x\n", i);
    assert_int_equal(parse(flood, &c, &d), R2M_E_CONFIG);
    assert_int_equal(d.n, 101);
    assert_string_equal(d.lines[100],
                        "t.yaml: error: 50 more errors not shown; fix the ones above first");
    r2m_diag_free(&d);
    free(flood);
}

static void test_load(void **state)
{
    (void)state;
    struct r2m_config *c = (struct r2m_config *)&c;
    struct r2m_diag d = {0};
    assert_int_equal(r2m_config_load("/nonexistent/r2m.yaml", &c, &d), R2M_E_IO);
    assert_null(c);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.lines[0],
                        "/nonexistent/r2m.yaml: error: cannot read: No such file or directory");
    r2m_diag_free(&d);
    assert_int_equal(r2m_config_load("/tmp", &c, &d), R2M_E_IO);
    assert_string_equal(d.lines[0], "/tmp: error: cannot read: Is a directory");
    r2m_diag_free(&d);

    char *ok = temp_file(EP);
    assert_int_equal(r2m_config_load(ok, &c, &d), 0);
    assert_string_equal(c->file, ok);
    assert_string_equal(c->endpoints[0].name, "a");
    r2m_config_free(c);

    char *bad = temp_file(EP "    interval: 1\n");
    assert_int_equal(r2m_config_load(bad, &c, &d), R2M_E_CONFIG);
    assert_int_equal(d.n, 1);
    char want[256];
    snprintf(want, sizeof want, "%s:4:15: error: interval: expected a duration", bad);
    assert_int_equal(strncmp(d.lines[0], want, strlen(want)), 0);
    r2m_diag_free(&d);
    unlink(ok);
    unlink(bad);
    free(ok);
    free(bad);
}

/* ---- the schema table ------------------------------------------------------ */

/* README.md's configuration reference, read whole. */
static char *read_readme(void)
{
    const char *root = getenv("R2M_SOURCE_ROOT");
    char path[1024];
    assert_non_null(root);
    snprintf(path, sizeof path, "%s/README.md", root);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char *t = strdup(text);
    assert_non_null(t);
    return t;
}

/* s holds word as a key: "`word`", "word:", "word," or "word }" not inside another word */
static int written_as_key(const char *s, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = strstr(s, word); p; p = strstr(p + 1, word)) {
        if (p > s && (isalnum((unsigned char)p[-1]) || p[-1] == '_'))
            continue;
        if (p[n] == '`' || p[n] == ':' || p[n] == ',' || !strncmp(p + n, " }", 2))
            return 1;
    }
    return 0;
}

/* every key of the schema is in README.md: endpoint keys as a row of the
 * endpoint key table, the others written as keys somewhere in it */
static void test_schema_documented(void **state)
{
    (void)state;
    char *readme = read_readme();
    struct r2m_config_key k;
    size_t n = 0, missing = 0;
    for (size_t i = 0; r2m_config_key(i, &k) == 0; i++, n++) {
        char row[96];
        snprintf(row, sizeof row, "| `%s` |", k.name);
        int ok = !strcmp(k.section, "endpoint") ? strstr(readme, row) != NULL
                                                : written_as_key(readme, k.name);
        if (!ok) {
            print_message("not documented in README.md: %s%s%s\n", k.section, *k.section ? "." : "",
                          k.name);
            missing++;
        }
    }
    assert_true(n > 60); /* the whole schema was listed */
    assert_int_equal(missing, 0);
    free(readme);
}

/* The YAML that gives key k the value `[[1]]` (a list in a list: no key
 * takes that) in its section, and the line it is on. */
static int place_key(const struct r2m_config_key *k, int in_defaults, char *y, size_t len)
{
    static const struct {
        const char *name, *others; /* auth: a type the key belongs to, and its other fields */
    } auth[] = {
        {"type", ""},
        {"username", "type: basic, password: p"},
        {"password", "type: basic, username: u"},
        {"token", "type: bearer"},
        {"name", "type: header, value: v"},
        {"value", "type: header, name: X-A"},
        {"token_url", "type: oauth2, client_id: i, client_secret: s"},
        {"client_id", "type: oauth2, token_url: http://t, client_secret: s"},
        {"client_secret", "type: oauth2, token_url: http://t, client_id: i"},
        {"scope", "type: oauth2, token_url: http://t, client_id: i, client_secret: s"},
    };
    const char *s = k->section;
    if (!*s) {
        snprintf(y, len, "%s: [[1]]\n%s", k->name, strcmp(k->name, "endpoints") ? EP : "");
        return 1;
    }
    if (!strcmp(s, "mqtt.tls")) {
        snprintf(y, len, "mqtt:\n  url: mqtts://h\n  tls:\n    %s: [[1]]\n" EP, k->name);
        return 4;
    }
    if (!strncmp(s, "endpoint.", 9)) {
        const char *others = "";
        for (size_t i = 0; i < sizeof auth / sizeof auth[0]; i++)
            if (!strcmp(s, "endpoint.auth") && !strcmp(auth[i].name, k->name))
                others = auth[i].others;
        snprintf(y, len, EP "    %s: { %s%s%s: [[1]] }\n", s + 9, others, *others ? ", " : "",
                 k->name);
        return 4;
    }
    if (!strcmp(s, "endpoint")) {
        if (in_defaults) {
            snprintf(y, len, "defaults:\n  %s: [[1]]\n" EP, k->name);
            return 2;
        }
        snprintf(y, len, "endpoints:\n  - %s: [[1]]\n%s%s", k->name,
                 strcmp(k->name, "name") ? "    name: a\n" : "    url: http://x\n",
                 strcmp(k->name, "url") ? "    url: http://x\n" : "");
        return 2;
    }
    snprintf(y, len, "%s:\n  %s: [[1]]\n" EP, s, k->name);
    return 2;
}

/* every key of the table has a parser that reads its value: a value no key
 * takes is refused on its line, never taken for an unknown key; a key not
 * allowed in defaults: says so */
static void test_schema_keys_read(void **state)
{
    (void)state;
    struct r2m_config_key k;
    for (size_t i = 0; r2m_config_key(i, &k) == 0; i++) {
        for (int def = 0; def < 2; def++) {
            if (def && strcmp(k.section, "endpoint"))
                continue;
            char y[512], at[32];
            int line = place_key(&k, def, y, sizeof y);
            struct r2m_config *cfg = NULL;
            struct r2m_diag d = {0};
            assert_int_equal(parse(y, &cfg, &d), R2M_E_CONFIG);
            snprintf(at, sizeof at, "t.yaml:%d:", line);
            int on_line = 0, unknown = 0;
            for (size_t j = 0; j < d.n; j++) {
                on_line |= !strncmp(d.lines[j], at, strlen(at));
                unknown |= strstr(d.lines[j], "unknown key") != NULL;
            }
            if (!on_line || unknown) {
                print_message("yaml:\n%s", y);
                dump(&d);
                fail_msg("key %s.%s not read by its parser", k.section, k.name);
            }
            if (def && !(k.in & R2M_CONFIG_IN_DEFAULTS))
                assert_true(has_line(&d, 2, 3, "cannot be set in defaults:"));
            r2m_diag_free(&d);
        }
    }
}

static void test_diag_free_reusable(void **state)
{
    (void)state;
    struct r2m_diag d = {0};
    struct r2m_config *c = NULL;
    r2m_diag_free(&d);
    r2m_diag_free(NULL);
    r2m_config_free(NULL);
    assert_int_equal(parse("x: 1\n", &c, &d), R2M_E_CONFIG);
    assert_true(d.n > 0);
    r2m_diag_free(&d);
    assert_int_equal(d.n, 0);
    assert_null(d.lines);
    assert_int_equal(parse("y: 1\n", &c, &d), R2M_E_CONFIG);
    assert_true(d.n > 0);
    r2m_diag_free(&d);
    /* a NULL diag is allowed */
    assert_int_equal(parse("y: 1\n", &c, NULL), R2M_E_CONFIG);
}

/* mqtt.max_packet_size: a size; unset is 0 (the broker's CONNACK decides) */
static void test_mqtt_max_packet_size(void **state)
{
    (void)state;
    struct r2m_config *c = parse_ok("mqtt:\n  max_packet_size: 256KiB\n" EP);
    assert_int_equal(c->mqtt.max_packet_size, 256 * 1024);
    r2m_config_free(c);
    c = parse_ok("mqtt: {}\n" EP);
    assert_int_equal(c->mqtt.max_packet_size, 0);
    r2m_config_free(c);
    expect_error("mqtt:\n  max_packet_size: 10\n" EP, 2, 20, "mqtt.max_packet_size");
    expect_error("mqtt:\n  max_packet_size: 1GiB\n" EP, 2, 20, "256MiB");
    expect_error("mqtt:\n  max_packet_size: lots\n" EP, 2, 20, "like 256KiB");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_config),
        cmocka_unit_test(test_mqtt_max_packet_size),
        cmocka_unit_test(test_builtin_defaults),
        cmocka_unit_test(test_small_variants),
        cmocka_unit_test(test_defaults_merge),
        cmocka_unit_test(test_defaults_rules),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_metrics_listen),
        cmocka_unit_test(test_max_concurrent),
        cmocka_unit_test(test_max_per_host),
        cmocka_unit_test(test_duration_ceiling),
        cmocka_unit_test(test_state_sync),
        cmocka_unit_test(test_collection_keys),
        cmocka_unit_test(test_api_keys),
        cmocka_unit_test(test_duplicate_names),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_body_and_method),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_empty_endpoints),
        cmocka_unit_test(test_anchors_refused),
        cmocka_unit_test(test_billion_laughs),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_documents_and_tags),
        cmocka_unit_test(test_env_expansion),
        cmocka_unit_test(test_file_expansion),
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_secrets_not_shown),
        cmocka_unit_test(test_redirects_key),
        cmocka_unit_test(test_line_breaks_refused),
        cmocka_unit_test(test_file_secret_newline),
        cmocka_unit_test(test_file_not_regular),
        cmocka_unit_test(test_tls_rules),
        cmocka_unit_test(test_many_errors),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_diag_free_reusable),
        cmocka_unit_test(test_schema_documented),
        cmocka_unit_test(test_schema_keys_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
