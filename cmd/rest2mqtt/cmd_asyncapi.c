/* cmd_asyncapi.c - `rest2mqtt asyncapi [-c FILE] [--json]`: the AsyncAPI 3.0
 * document of what the configuration publishes (src/asyncapi.c). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "r2m/asyncapi.h"
#include "r2m/buf.h"
#include "r2m/config.h"

static int usage(const char *what)
{
    fprintf(stderr,
            "rest2mqtt asyncapi: %s\nTry 'rest2mqtt --help' for the commands and options.\n", what);
    return EXIT_USAGE;
}

int cmd_asyncapi(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'J'},
        {NULL, 0, NULL, 0},
    };
    const char *config = getenv("REST2MQTT_CONFIG");
    int json = 0, c;
    char msg[300];
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":c:", opts, NULL)) != -1) {
        if (c == 'c')
            config = optarg;
        else if (c == 'J')
            json = 1;
        else {
            snprintf(msg, sizeof msg,
                     c == ':' ? "option '%s' needs a value" : "unknown option '%s'",
                     argv[optind - 1]);
            return usage(msg);
        }
    }
    if (optind < argc) {
        snprintf(msg, sizeof msg, "unexpected argument '%s'", argv[optind]);
        return usage(msg);
    }
    if (!config)
        config = "/etc/rest2mqtt/config.yaml";
    struct r2m_config *cfg = NULL;
    struct r2m_diag diag = {0};
    if (r2m_config_load(config, &cfg, &diag)) {
        for (size_t i = 0; i < diag.n; i++)
            fprintf(stderr, "%s\n", diag.lines[i]);
        fprintf(stderr, "rest2mqtt: %zu error%s in %s\n", diag.n, diag.n == 1 ? "" : "s", config);
        r2m_diag_free(&diag);
        return EXIT_USAGE;
    }
    r2m_diag_free(&diag);
    struct r2m_buf out;
    r2m_buf_init(&out, (size_t)256 << 20);
    int r = json ? r2m_asyncapi_json(cfg, &out) : r2m_asyncapi_yaml(cfg, &out);
    if (!r && json)
        r = r2m_buf_putc(&out, '\n');
    if (r)
        fprintf(stderr, "rest2mqtt asyncapi: the document could not be built\n");
    else
        fwrite(out.data, 1, out.len, stdout);
    r2m_buf_free(&out);
    r2m_config_free(cfg);
    return r ? EXIT_RUNTIME : EXIT_OK;
}
