/* main.c - command line of rest2mqtt: argument parsing and dispatch.
 *
 * argv becomes a struct cmd_opts (parse_args); the config is loaded once;
 * the command's own file (cmd.h) does the rest and picks the exit status. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "r2m/config.h"
#include "r2m/log.h"

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

void cmd_usage_hint(const char *what)
{
    fprintf(stderr, "rest2mqtt: %s\nTry 'rest2mqtt --help' for the commands and options.\n", what);
}

/* parse_args and its steps return PARSED when the command should run, or
 * the exit status to end with (after --help, --version or a usage error,
 * already reported). */
enum { PARSED = -1 };

/* The command word, if any, comes first: rest2mqtt check -c FILE; `state`
 * takes its subcommand right after it. Consumes what it read from argv. */
static int parse_command(int *argc, char ***argv, const char **cmd, struct cmd_opts *o)
{
    static const char *const subs[] = {
        [STATE_LIST] = "list", [STATE_PRUNE] = "prune", [STATE_DEAD_LETTERS] = "dead-letters"};
    *cmd = "run";
    if (*argc <= 1 || (*argv)[1][0] == '-')
        return PARSED;
    *cmd = (*argv)[1];
    ++*argv;
    --*argc;
    if (strcmp(*cmd, "state"))
        return PARSED;
    for (int i = STATE_LIST; *argc >= 2 && (*argv)[1][0] != '-' && i <= STATE_DEAD_LETTERS; i++)
        if (!strcmp((*argv)[1], subs[i]))
            o->sub = i;
    if (o->sub == STATE_NONE) {
        cmd_usage_hint("`state` needs a subcommand: list, prune or dead-letters");
        return EXIT_USAGE;
    }
    ++*argv;
    --*argc;
    return PARSED;
}

/* The options, in any order after the command word. */
static int parse_options(int argc, char **argv, struct cmd_opts *o)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},    {"endpoint", required_argument, NULL, 'e'},
        {"log-level", required_argument, NULL, 'l'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},         {"json", no_argument, NULL, 'J'},
        {"requeue", no_argument, NULL, 'R'},         {NULL, 0, NULL, 0},
    };
    char msg[200];
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":c:e:l:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->config = optarg;
            break;
        case 'e':
            o->only = optarg;
            break;
        case 'l':
            if ((o->level = r2m_log_level_parse(optarg)) < 0) {
                cmd_usage_hint("--log-level takes error, warn, info or debug");
                return EXIT_USAGE;
            }
            break;
        case 'J':
            o->json = 1;
            break;
        case 'R':
            o->requeue = 1;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return EXIT_OK;
        case 'V':
            printf("rest2mqtt %s\n", R2M_VERSION);
            return EXIT_OK;
        case ':':
            snprintf(msg, sizeof msg, "option '%s' needs a value", argv[optind - 1]);
            cmd_usage_hint(msg);
            return EXIT_USAGE;
        default:
            snprintf(msg, sizeof msg, "unknown option '%s'", argv[optind - 1]);
            cmd_usage_hint(msg);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        snprintf(msg, sizeof msg, "unexpected argument '%s'", argv[optind]);
        cmd_usage_hint(msg);
        return EXIT_USAGE;
    }
    return PARSED;
}

/* Fills o from argv, in the order the checks always ran: the command word,
 * the options (--help and --version end parsing where they stand), then
 * the command's name and the options' combinations. */
static int parse_args(int argc, char **argv, struct cmd_opts *o)
{
    static const struct {
        const char *name;
        enum cmd_kind kind;
    } cmds[] = {{"run", CMD_RUN}, {"once", CMD_ONCE}, {"check", CMD_CHECK}, {"state", CMD_STATE}};
    *o = (struct cmd_opts){.config = getenv("REST2MQTT_CONFIG"), .level = -1};
    const char *cmd;
    int r = parse_command(&argc, &argv, &cmd, o);
    if (r == PARSED)
        r = parse_options(argc, argv, o);
    if (r != PARSED)
        return r;
    size_t i = 0;
    while (i < sizeof cmds / sizeof cmds[0] && strcmp(cmd, cmds[i].name))
        i++;
    if (i == sizeof cmds / sizeof cmds[0]) {
        char msg[200];
        snprintf(msg, sizeof msg, "unknown command '%s' (commands: run, check, once, state)", cmd);
        cmd_usage_hint(msg);
        return EXIT_USAGE;
    }
    o->cmd = cmds[i].kind;
    if ((o->json || o->requeue) && o->sub != STATE_DEAD_LETTERS) {
        cmd_usage_hint("--json and --requeue only apply to `state dead-letters`");
        return EXIT_USAGE;
    }
    if (o->json && o->requeue) {
        cmd_usage_hint("--json lists; --requeue moves: give one of them");
        return EXIT_USAGE;
    }
    if (o->only && o->cmd != CMD_ONCE) {
        cmd_usage_hint("-e/--endpoint only applies to `once`");
        return EXIT_USAGE;
    }
    if (!o->config)
        o->config = DEFAULT_CONFIG;
    return PARSED;
}

int main(int argc, char **argv)
{
    /* A peer that closes its end (the broker, an API, a /metrics client)
     * must cost an EPIPE on that socket, never the process: writes to it
     * raise SIGPIPE, whose default action kills us. paho ignores SIGPIPE
     * too, but only once a client exists, and libcurl only around its own
     * calls; ignore it for the whole process, before any thread starts. */
    signal(SIGPIPE, SIG_IGN);
    struct cmd_opts o;
    int r = parse_args(argc, argv, &o);
    if (r != PARSED)
        return r;

    struct r2m_config *cfg = NULL;
    struct r2m_diag diag = {0};
    if (r2m_config_load(o.config, &cfg, &diag)) {
        for (size_t i = 0; i < diag.n; i++)
            fprintf(stderr, "%s\n", diag.lines[i]);
        fprintf(stderr, "rest2mqtt: %zu error%s in %s; nothing was started\n", diag.n,
                diag.n == 1 ? "" : "s", o.config);
        r2m_diag_free(&diag);
        return EXIT_USAGE;
    }
    r2m_diag_free(&diag);
    r2m_log_pin_level(o.level);
    r2m_log_setup(cfg->log.level, cfg->log.format);

    int exit_code = o.cmd == CMD_CHECK   ? cmd_check(&o, cfg)
                    : o.cmd == CMD_STATE ? cmd_state(&o, cfg)
                                         : cmd_run(&o, cfg);
    r2m_config_free(cfg);
    return exit_code;
}
