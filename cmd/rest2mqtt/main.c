/* main.c - command line of rest2mqtt: argument parsing and wiring only. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "r2m/bridge.h"
#include "r2m/buf.h"
#include "r2m/config.h"
#include "r2m/error.h"
#include "r2m/json.h"
#include "r2m/log.h"
#include "r2m/store.h"

enum { EXIT_OK = 0, EXIT_USAGE = 1, EXIT_RUNTIME = 2 };

#define DEFAULT_CONFIG "/etc/rest2mqtt/config.yaml"

int r2m_cmd_probe(int argc, char **argv);    /* cmd_probe.c */
int r2m_cmd_asyncapi(int argc, char **argv); /* cmd_asyncapi.c */

static const char usage_text[] =
    "rest2mqtt - turn REST APIs into MQTT change events\n"
    "\n"
    "Usage:\n"
    "  rest2mqtt [run] [-c FILE]          poll and publish until SIGTERM or SIGINT\n"
    "  rest2mqtt check [-c FILE]          validate the config; print endpoints and topics\n"
    "  rest2mqtt once  [-c FILE] [-e NAME] poll each endpoint once (or only NAME) and\n"
    "                                     print its events as JSON lines; no broker\n"
    "  rest2mqtt state list  [-c FILE]    endpoints with stored state, and whether the\n"
    "                                     config still has them\n"
    "  rest2mqtt state prune [-c FILE]    forget the stored state of endpoints that are no\n"
    "                                     longer in the config (stop the bridge first)\n"
    "  rest2mqtt state dead-letters [-c FILE] [--json] [--requeue]\n"
    "                                     events the broker refused for good (denied topic,\n"
    "                                     packet too large, ...); --requeue puts them back\n"
    "                                     into the outbox once the cause is fixed (stop the\n"
    "                                     bridge first; they are sent at its next start)\n"
    "  rest2mqtt probe URL [-H 'Name: value'] [--auth '{ type: bearer, token: ... }']\n"
    "                  [--samples 3] [--every 2s] [-X POST -d BODY] [-n NAME]\n"
    "                  [--timeout 10s] [--max-body 32MiB]\n"
    "                                     fetch URL a few times and print an endpoint entry\n"
    "                                     for `endpoints:` (items, key, ignore, paginate,\n"
    "                                     each explained); secrets become ${env:...}\n"
    "  rest2mqtt asyncapi [-c FILE] [--json]\n"
    "                                     the AsyncAPI 3.0 document of what the config\n"
    "                                     publishes: broker, topics, CloudEvents schemas\n"
    "  rest2mqtt --version | --help\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE     YAML configuration (default: $REST2MQTT_CONFIG, else\n"
    "                        " DEFAULT_CONFIG ")\n"
    "  -e, --endpoint NAME   with `once`: poll only this endpoint\n"
    "      --json            with `state dead-letters`: one JSON object per line\n"
    "      --requeue         with `state dead-letters`: move them back into the outbox\n"
    "  -l, --log-level LVL   error, warn, info or debug (overrides log.level)\n"
    "  -h, --help            this text\n"
    "  -V, --version         print the version\n"
    "\n"
    "What it does:\n"
    "  Each endpoint of the config is fetched every `interval`. Its JSON is put in\n"
    "  canonical form (sorted keys, one spelling per number and string, `ignore`\n"
    "  pointers removed) and fingerprinted. The first good poll is a silent baseline\n"
    "  (unless initial: emit); every later change publishes CloudEvents JSON:\n"
    "    document endpoints   one rest2mqtt.document.changed per change, topic\n"
    "                         <topic_prefix>/<endpoint>\n"
    "    items: + key:        one rest2mqtt.item.created|updated|deleted per item,\n"
    "                         topic <topic_prefix>/<endpoint>/<key>/<op>\n"
    "  with before, after and an RFC 6902 patch. A failed poll (connection error,\n"
    "  timeout, non-2xx status, body over max_body, invalid JSON, a missing items\n"
    "  pointer, a failing page) publishes nothing and keeps the previous snapshot.\n"
    "  Snapshots and unacknowledged events live in the SQLite file state.path, so a\n"
    "  restart neither floods nor misses a change. An event the broker refuses for\n"
    "  good (MQTT 5 reason codes such as 0x87 not authorized, or larger than the\n"
    "  broker's maximum packet size) moves to a dead-letter table in the same file,\n"
    "  is logged and counted (rest2mqtt_dead_letters_total), and the events behind\n"
    "  it flow on.\n"
    "\n"
    "Signals:\n"
    "  SIGTERM, SIGINT  stop polling, wait up to shutdown_timeout for the broker to\n"
    "                   acknowledge queued events (the rest stay in the outbox),\n"
    "                   exit 0\n"
    "  SIGHUP           reload the config file: endpoints added, removed or changed\n"
    "                   take effect; an invalid file is rejected and logged\n"
    "\n"
    "Requests in flight: at most max_concurrent (default 256) in all, at most\n"
    "  max_per_host (default 8, never above max_concurrent) to one origin (scheme,\n"
    "  host, port); an origin's further request must leave a slot free for every\n"
    "  origin with none in flight, so one slow origin never holds up another.\n"
    "\n"
    "Health and metrics: with metrics: { listen: 127.0.0.1:9464 } in the config,\n"
    "  GET /healthz (200 or 503 with a JSON reason) and GET /metrics (Prometheus).\n"
    "\n"
    "Exit status:\n"
    "  0  success\n"
    "  1  configuration or usage error (the messages say FILE:LINE:COLUMN and why)\n"
    "  2  runtime failure (a poll failed in `once`, a system error, or the state\n"
    "     file removed or replaced while running)\n"
    "\n"
    "Watch events:  mosquitto_sub -h 127.0.0.1 -t 'rest2mqtt/#' -v\n"
    "Documentation: README.md in the source tree.\n";

static void usage_hint(const char *what)
{
    fprintf(stderr, "rest2mqtt: %s\nTry 'rest2mqtt --help' for the commands and options.\n", what);
}

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

struct names {
    char **v;
    size_t n, cap;
};

static void add_name(void *ctx, const char *name)
{
    struct names *ns = ctx;
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2 : 16;
        char **v = realloc(ns->v, cap * sizeof *v);
        if (!v)
            return;
        ns->v = v;
        ns->cap = cap;
    }
    if ((ns->v[ns->n] = strdup(name)))
        ns->n++;
}

static int configured(const struct r2m_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_endpoints; i++)
        if (!strcmp(cfg->endpoints[i].name, name))
            return 1;
    return 0;
}

/* Opens the state file for the `state` commands: one that exists. Opening
 * creates a missing file, and a command that reads state must not: a wrong
 * -c or state.path would get an empty new file and "0 dead letters". */
static int open_state(const struct r2m_config *cfg, struct r2m_store **st)
{
    char err[1024];
    struct stat sb;
    if (stat(cfg->state.path, &sb) < 0 && errno == ENOENT) {
        fprintf(stderr,
                "rest2mqtt: state file %s does not exist (state.path in %s); the bridge "
                "creates it at its first start\n",
                cfg->state.path, cfg->file);
        return EXIT_RUNTIME;
    }
    if (r2m_store_open(st, cfg->state.path, err, sizeof err)) {
        fprintf(stderr, "rest2mqtt: %s\n", err);
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

/* `state list` and `state prune`: removed endpoints keep their state until
 * pruned, so a config mistake never silently throws history away. */
static int cmd_state(const struct r2m_config *cfg, const char *sub)
{
    struct r2m_store *st = NULL;
    if (open_state(cfg, &st))
        return EXIT_RUNTIME;
    struct names ns = {0};
    int rc = EXIT_OK;
    if (r2m_store_endpoint_names(st, add_name, &ns)) {
        fprintf(stderr, "rest2mqtt: cannot read %s: %s\n", cfg->state.path, r2m_store_errmsg(st));
        rc = EXIT_RUNTIME;
        goto out;
    }
    size_t pruned = 0;
    for (size_t i = 0; i < ns.n; i++) {
        int keep = configured(cfg, ns.v[i]);
        if (!strcmp(sub, "list")) {
            printf("%s\t%s\n", ns.v[i], keep ? "configured" : "not in config (prunable)");
            continue;
        }
        if (keep)
            continue;
        if (r2m_store_begin(st) || r2m_store_endpoint_reset(st, ns.v[i]) || r2m_store_commit(st)) {
            r2m_store_rollback(st);
            fprintf(stderr, "rest2mqtt: cannot prune '%s' in %s: %s\n", ns.v[i], cfg->state.path,
                    r2m_store_errmsg(st));
            rc = EXIT_RUNTIME;
            goto out;
        }
        printf("pruned %s\n", ns.v[i]);
        pruned++;
    }
    if (!strcmp(sub, "prune"))
        printf("%zu endpoint%s pruned from %s\n", pruned, pruned == 1 ? "" : "s", cfg->state.path);
    printf("outbox: %lld events waiting\n", (long long)r2m_store_outbox_count(st));
out:
    for (size_t i = 0; i < ns.n; i++)
        free(ns.v[i]);
    free(ns.v);
    r2m_store_close(st);
    return rc;
}

struct dl_print {
    int json;
    size_t n;
};

static int print_dead_letter(void *ctx, const struct r2m_store_dead_letter *d)
{
    struct dl_print *o = ctx;
    char when[32];
    time_t t = (time_t)(d->time_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    const char *ep = d->endpoint ? d->endpoint : "unknown";
    o->n++;
    if (!o->json) {
        printf("%-6lld %-20s  %-16s %-24s %9llu  %-16s  %s\n", (long long)d->id, when, ep,
               d->reason, (unsigned long long)d->size, d->event_id ? d->event_id : "-", d->topic);
        return 0;
    }
    struct r2m_buf b;
    r2m_buf_init(&b, (size_t)1 << 31);
    r2m_buf_printf(&b, "{\"id\":%lld,\"time\":\"%s\",\"endpoint\":", (long long)d->id, when);
    r2m_json_quote(&b, ep, strlen(ep));
    r2m_buf_puts(&b, ",\"topic\":");
    r2m_json_quote(&b, d->topic, strlen(d->topic));
    r2m_buf_printf(&b, ",\"size\":%llu,\"reason\":", (unsigned long long)d->size);
    r2m_json_quote(&b, d->reason, strlen(d->reason));
    r2m_buf_puts(&b, ",\"event_id\":");
    if (d->event_id)
        r2m_json_quote(&b, d->event_id, strlen(d->event_id));
    else
        r2m_buf_puts(&b, "null");
    r2m_buf_puts(&b, ",\"payload\":");
    r2m_json_quote(&b, d->payload ? d->payload : "", d->payload_len);
    r2m_buf_puts(&b, "}\n");
    if (b.data)
        fwrite(b.data, 1, b.len, stdout);
    r2m_buf_free(&b);
    return 0;
}

/* `state dead-letters`: what the broker refused for good, and --requeue to
 * try them again once the cause (an ACL, a size limit) is fixed. */
static int cmd_dead_letters(const struct r2m_config *cfg, int json, int requeue)
{
    struct r2m_store *st = NULL;
    if (open_state(cfg, &st))
        return EXIT_RUNTIME;
    int rc = EXIT_OK;
    if (requeue) {
        int64_t n = 0;
        if (r2m_store_begin(st) || r2m_store_dead_letter_requeue(st, &n) || r2m_store_commit(st)) {
            r2m_store_rollback(st);
            fprintf(stderr, "rest2mqtt: cannot requeue the dead letters in %s: %s\n",
                    cfg->state.path, r2m_store_errmsg(st));
            rc = EXIT_RUNTIME;
        } else {
            printf("requeued %lld dead letter%s into the outbox of %s; the bridge sends them at "
                   "its next start\n",
                   (long long)n, n == 1 ? "" : "s", cfg->state.path);
        }
        r2m_store_close(st);
        return rc;
    }
    struct dl_print o = {json, 0};
    if (!json)
        printf("%-6s %-20s  %-16s %-24s %9s  %-16s  %s\n", "ID", "REFUSED", "ENDPOINT", "REASON",
               "SIZE", "EVENT ID", "TOPIC");
    if (r2m_store_dead_letters(st, print_dead_letter, &o)) {
        fprintf(stderr, "rest2mqtt: cannot read %s: %s\n", cfg->state.path, r2m_store_errmsg(st));
        rc = EXIT_RUNTIME;
    } else if (!json) {
        printf("%zu dead letter%s in %s\n", o.n, o.n == 1 ? "" : "s", cfg->state.path);
        if (o.n)
            printf("fix the cause (see REASON and the bridge's log), stop the bridge, then run "
                   "`rest2mqtt state dead-letters --requeue -c %s`\n",
                   cfg->file);
    }
    r2m_store_close(st);
    return rc;
}

static int cmd_check(const struct r2m_config *cfg)
{
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

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},    {"endpoint", required_argument, NULL, 'e'},
        {"log-level", required_argument, NULL, 'l'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},         {"json", no_argument, NULL, 'J'},
        {"requeue", no_argument, NULL, 'R'},         {NULL, 0, NULL, 0},
    };
    /* A peer that closes its end (the broker, an API, a /metrics client)
     * must cost an EPIPE on that socket, never the process: writes to it
     * raise SIGPIPE, whose default action kills us. paho ignores SIGPIPE
     * too, but only once a client exists, and libcurl only around its own
     * calls; ignore it for the whole process, before any thread starts. */
    signal(SIGPIPE, SIG_IGN);
    int json = 0, requeue = 0;
    const char *config = getenv("REST2MQTT_CONFIG");
    const char *only = NULL;
    const char *cmd = "run";
    int level = -1;

    /* the command word, if any, comes first: rest2mqtt check -c FILE */
    const char *sub = NULL;
    if (argc > 1 && argv[1][0] != '-') {
        cmd = argv[1];
        argv++;
        argc--;
        if (!strcmp(cmd, "probe"))
            return r2m_cmd_probe(argc, argv);
        if (!strcmp(cmd, "asyncapi"))
            return r2m_cmd_asyncapi(argc, argv);
        if (!strcmp(cmd, "state")) {
            if (argc < 2 || argv[1][0] == '-' ||
                (strcmp(argv[1], "prune") && strcmp(argv[1], "list") &&
                 strcmp(argv[1], "dead-letters"))) {
                usage_hint("`state` needs a subcommand: list, prune or dead-letters");
                return EXIT_USAGE;
            }
            sub = argv[1];
            argv++;
            argc--;
        }
    }
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":c:e:l:hV", opts, NULL)) != -1) {
        char msg[200];
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'e':
            only = optarg;
            break;
        case 'l':
            if ((level = r2m_log_level_parse(optarg)) < 0) {
                usage_hint("--log-level takes error, warn, info or debug");
                return EXIT_USAGE;
            }
            break;
        case 'J':
            json = 1;
            break;
        case 'R':
            requeue = 1;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return EXIT_OK;
        case 'V':
            printf("rest2mqtt %s\n", R2M_VERSION);
            return EXIT_OK;
        case ':':
            snprintf(msg, sizeof msg, "option '%s' needs a value", argv[optind - 1]);
            usage_hint(msg);
            return EXIT_USAGE;
        default:
            snprintf(msg, sizeof msg, "unknown option '%s'", argv[optind - 1]);
            usage_hint(msg);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        char msg[200];
        snprintf(msg, sizeof msg, "unexpected argument '%s'", argv[optind]);
        usage_hint(msg);
        return EXIT_USAGE;
    }
    int mode;
    if (!strcmp(cmd, "run"))
        mode = R2M_BRIDGE_RUN;
    else if (!strcmp(cmd, "once"))
        mode = R2M_BRIDGE_ONCE;
    else if (!strcmp(cmd, "check"))
        mode = -1;
    else if (!strcmp(cmd, "state"))
        mode = -2;
    else {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "unknown command '%s' (commands: run, check, once, state, probe, asyncapi)", cmd);
        usage_hint(msg);
        return EXIT_USAGE;
    }
    if ((json || requeue) && !(sub && !strcmp(sub, "dead-letters"))) {
        usage_hint("--json and --requeue only apply to `state dead-letters`");
        return EXIT_USAGE;
    }
    if (json && requeue) {
        usage_hint("--json lists; --requeue moves: give one of them");
        return EXIT_USAGE;
    }
    if (only && mode != R2M_BRIDGE_ONCE) {
        usage_hint("-e/--endpoint only applies to `once`");
        return EXIT_USAGE;
    }
    if (!config)
        config = DEFAULT_CONFIG;

    struct r2m_config *cfg = NULL;
    struct r2m_diag diag = {0};
    int r = r2m_config_load(config, &cfg, &diag);
    if (r) {
        for (size_t i = 0; i < diag.n; i++)
            fprintf(stderr, "%s\n", diag.lines[i]);
        fprintf(stderr, "rest2mqtt: %zu error%s in %s; nothing was started\n", diag.n,
                diag.n == 1 ? "" : "s", config);
        r2m_diag_free(&diag);
        return EXIT_USAGE;
    }
    r2m_diag_free(&diag);
    r2m_log_pin_level(level);
    r2m_log_setup(cfg->log.level, cfg->log.format);

    int exit_code = EXIT_OK;
    if (mode == -1) {
        exit_code = cmd_check(cfg);
    } else if (mode == -2) {
        exit_code = !strcmp(sub, "dead-letters") ? cmd_dead_letters(cfg, json, requeue)
                                                 : cmd_state(cfg, sub);
    } else {
        struct r2m_bridge *b = NULL;
        char err[1024] = "";
        r = r2m_bridge_new(&b, cfg, mode, only, err, sizeof err);
        if (r == R2M_E_NOT_FOUND) {
            fprintf(stderr,
                    "rest2mqtt: no endpoint named '%s' in %s; `rest2mqtt check -c %s` "
                    "lists them\n",
                    only, config, config);
            exit_code = EXIT_USAGE;
        } else if (r) {
            r2m_log(R2M_LOG_ERROR, "cannot start", "error", err[0] ? err : r2m_strerror(r), NULL);
            exit_code = EXIT_RUNTIME;
        } else if ((r = r2m_bridge_run(b))) {
            exit_code = EXIT_RUNTIME;
        }
        r2m_bridge_free(b);
    }
    r2m_config_free(cfg);
    return exit_code;
}
