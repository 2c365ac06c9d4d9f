/* cmd_run.c - `rest2mqtt run` and `rest2mqtt once`: both are the bridge,
 * in its two modes (r2m/bridge.h), so they share this file. */
#include <stdio.h>

#include "cmd.h"
#include "r2m/bridge.h"
#include "r2m/error.h"
#include "r2m/log.h"

int cmd_run(const struct cmd_opts *o, const struct r2m_config *cfg)
{
    int mode = o->cmd == CMD_ONCE ? R2M_BRIDGE_ONCE : R2M_BRIDGE_RUN;
    int exit_code = EXIT_OK;
    struct r2m_bridge *b = NULL;
    char err[1024] = "";
    int r = r2m_bridge_new(&b, cfg, mode, o->only, err, sizeof err);
    if (r == R2M_E_NOT_FOUND) {
        fprintf(stderr,
                "rest2mqtt: no endpoint named '%s' in %s; `rest2mqtt check -c %s` "
                "lists them\n",
                o->only, o->config, o->config);
        exit_code = EXIT_USAGE;
    } else if (r) {
        r2m_log(R2M_LOG_ERROR, "cannot start", "error", err[0] ? err : r2m_strerror(r), NULL);
        exit_code = EXIT_RUNTIME;
    } else if (r2m_bridge_run(b)) {
        exit_code = EXIT_RUNTIME;
    }
    r2m_bridge_free(b);
    return exit_code;
}
