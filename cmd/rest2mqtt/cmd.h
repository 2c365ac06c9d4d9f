/* cmd.h - what the files of the rest2mqtt command line share.
 *
 * main.c turns argv into a struct cmd_opts and loads the config; each
 * command lives in its own file (cmd_run.c, cmd_check.c, cmd_state.c) and
 * returns the process's exit status. Internal to cmd/rest2mqtt: the
 * commands use the library only through include/r2m. */
#ifndef R2M_CMD_H
#define R2M_CMD_H

#include "r2m/config.h"

enum { EXIT_OK = 0, EXIT_USAGE = 1, EXIT_RUNTIME = 2 };

#define DEFAULT_CONFIG "/etc/rest2mqtt/config.yaml"

enum cmd_kind { CMD_RUN, CMD_ONCE, CMD_CHECK, CMD_STATE };

enum cmd_state_sub { STATE_NONE, STATE_LIST, STATE_PRUNE, STATE_DEAD_LETTERS };

/* The command line, as parsed; the strings point into argv or the
 * environment. */
struct cmd_opts {
    enum cmd_kind cmd;
    enum cmd_state_sub sub; /* with CMD_STATE */
    const char *config;     /* -c, else $REST2MQTT_CONFIG, else DEFAULT_CONFIG */
    const char *only;       /* -e: with CMD_ONCE, poll only this endpoint; or NULL */
    int level;              /* -l as an R2M_LOG_* level, or -1 */
    int json, requeue;      /* with STATE_DEAD_LETTERS */
};

/* "rest2mqtt: WHAT" and where to find help, on stderr. */
void cmd_usage_hint(const char *what);

/* `run` and `once`: the bridge until a signal, or one poll of each endpoint. */
int cmd_run(const struct cmd_opts *o, const struct r2m_config *cfg);
/* `check`: the config as the bridge reads it. */
int cmd_check(const struct cmd_opts *o, const struct r2m_config *cfg);
/* `state list|prune|dead-letters`: the stored state, through r2m/store.h. */
int cmd_state(const struct cmd_opts *o, const struct r2m_config *cfg);

#endif
