/* test_bridge.c - the loop in `once` mode over file:// endpoints.
 *
 * `once` runs the same schedule -> fetch -> poller path as `run`, printing
 * events to stdout instead of publishing; stdout is captured in a file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "r2m/bridge.h"
#include "r2m/config.h"
#include "r2m/error.h"
#include "r2m/log.h"

static char dir[] = "/tmp/r2m-test-bridge-XXXXXX";

static void write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static struct r2m_config *load(void)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "mqtt: { url: \"mqtt://127.0.0.1:1\", client_id: unit }\n"
             "defaults: { interval: 1s, timeout: 2s }\n"
             "endpoints:\n"
             "  - name: alpha\n"
             "    url: file://%s/alpha.json\n"
             "    ignore: [/ts]\n"
             "  - name: beta\n"
             "    url: file://%s/beta.json\n"
             "    topic: \"{prefix}/b/{/id}\"\n",
             dir, dir);
    struct r2m_config *cfg = NULL;
    struct r2m_diag diag = {0};
    int r = r2m_config_parse("bridge.yaml", yaml, strlen(yaml), &cfg, &diag);
    for (size_t i = 0; i < diag.n; i++)
        fprintf(stderr, "%s\n", diag.lines[i]);
    r2m_diag_free(&diag);
    assert_int_equal(r, 0);
    return cfg;
}

/* Runs `once` with stdout captured; returns the bridge's result. */
static int run_once(const char *only, char *out, size_t outlen)
{
    struct r2m_config *cfg = load();
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    FILE *cap = tmpfile();
    dup2(fileno(cap), STDOUT_FILENO);
    struct r2m_bridge *b = NULL;
    char err[256];
    int r = r2m_bridge_new(&b, cfg, R2M_BRIDGE_ONCE, only, err, sizeof err);
    if (r == 0)
        r = r2m_bridge_run(b);
    r2m_bridge_free(b);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    rewind(cap);
    size_t n = fread(out, 1, outlen - 1, cap);
    out[n] = '\0';
    fclose(cap);
    r2m_config_free(cfg);
    return r;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static int setup(void **state)
{
    (void)state;
    r2m_log_setup(R2M_LOG_ERROR, R2M_LOG_TEXT);
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void once_prints_one_event_per_endpoint(void **state)
{
    (void)state;
    write_file("alpha.json", "{\"b\":2,\"a\":1,\"ts\":\"now\"}");
    write_file("beta.json", "{\"id\":\"x/1\",\"v\":[1.0]}");
    char out[8192];
    assert_int_equal(run_once(NULL, out, sizeof out), 0);
    assert_int_equal(count_lines(out), 2);
    assert_non_null(strstr(out, "\"source\":\"rest2mqtt://unit/alpha\""));
    assert_non_null(strstr(out, "\"before\":null,\"after\":{\"a\":1,\"b\":2}"));
    assert_non_null(strstr(out, "\"after\":{\"id\":\"x/1\",\"v\":[1]}"));
}

static void once_restricted_to_one_endpoint(void **state)
{
    (void)state;
    write_file("alpha.json", "{\"a\":1}");
    write_file("beta.json", "{\"id\":1}");
    char out[8192];
    assert_int_equal(run_once("beta", out, sizeof out), 0);
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "rest2mqtt://unit/beta"));
    assert_int_equal(run_once("gamma", out, sizeof out), R2M_E_NOT_FOUND);
}

static void once_reports_failed_poll(void **state)
{
    (void)state;
    write_file("alpha.json", "{\"a\":"); /* truncated */
    write_file("beta.json", "{\"id\":7}");
    char out[8192];
    assert_int_equal(run_once(NULL, out, sizeof out), R2M_E_HTTP);
    /* the good endpoint still printed, the broken one printed nothing */
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "rest2mqtt://unit/beta"));
    assert_null(strstr(out, "alpha"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(once_prints_one_event_per_endpoint),
        cmocka_unit_test(once_restricted_to_one_endpoint),
        cmocka_unit_test(once_reports_failed_poll),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
