/* Fuzz target: the configuration loader on arbitrary bytes.
 *
 * Properties checked on every input:
 *  - never a crash, a leak or a hang (${file:} of a FIFO or device must be
 *    refused at once, not read);
 *  - a failure returns no config and at least one diagnostic, and every
 *    diagnostic starts with "f.yaml:LINE:COL: error: " and says something
 *    (only the "N more errors" and out-of-memory summaries have no position);
 *  - no diagnostic shows the secret that ${env:R2M_FUZZ_SECRET} or
 *    ${file:/tmp/r2m-fuzz-secret} expand to (unless the input spells it);
 *  - a config that loads shows no URL password where URLs are printed
 *    (r2m_log_url, as `check` and the logs use it). */
#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r2m/config.h"
#include "r2m/error.h"
#include "r2m/log.h"

#define SECRET "Zq9-fuzz-SECRET-xK"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int positioned(const char *line)
{
    static const char pfx[] = "f.yaml:";
    if (strncmp(line, pfx, sizeof pfx - 1))
        return 0;
    const char *p = line + sizeof pfx - 1;
    for (int part = 0; part < 2; part++) {
        if (*p < '1' || *p > '9')
            return 0;
        while (*p >= '0' && *p <= '9')
            p++;
        if (*p++ != ':')
            return 0;
    }
    return !strncmp(p, " error: ", 8) && p[8] && p[8] != ' ';
}

/* The masked form of url must not show the password libcurl would send. */
static void check_url(const char *url)
{
    if (!url)
        return;
    CURLU *u = curl_url();
    char *pw = NULL, *user = NULL, *bare = NULL;
    if (!u)
        abort();
    /* The user name is shown on purpose; a password that also appears in
     * it (or elsewhere in the URL) is shown there, not leaked by masking. */
    if (!curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) &&
        !curl_url_get(u, CURLUPART_PASSWORD, &pw, 0) && strlen(pw) >= 4 &&
        !curl_url_get(u, CURLUPART_USER, &user, 0) && !strstr(user, pw) &&
        !curl_url_set(u, CURLUPART_USER, NULL, 0) &&
        !curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) &&
        !curl_url_get(u, CURLUPART_URL, &bare, 0) && !strstr(bare, pw)) {
        size_t n = strlen(url) + 8;
        char *m = malloc(n);
        if (!m)
            abort();
        if (strstr(r2m_log_url(url, m, n), pw)) {
            fprintf(stderr, "URL password shown: %s -> %s\n", url, m);
            abort();
        }
        free(m);
    }
    curl_free(pw);
    curl_free(user);
    curl_free(bare);
    curl_url_cleanup(u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        setenv("R2M_FUZZ_SECRET", SECRET, 1);
        FILE *f = fopen("/tmp/r2m-fuzz-secret", "w");
        if (!f || fputs(SECRET "\n", f) < 0 || fclose(f))
            abort();
        ready = 1;
    }
    struct r2m_config *cfg = NULL;
    struct r2m_diag d = {0};
    int rc = r2m_config_parse("f.yaml", (const char *)data, size, &cfg, &d);
    /* the secret written into the input itself is no leak */
    int literal = memmem(data, size, SECRET, sizeof SECRET - 1) != NULL;
    if (rc) {
        if (cfg || !d.n)
            abort();
        for (size_t i = 0; i < d.n; i++) {
            const char *l = d.lines[i];
            if (!literal && strstr(l, SECRET)) {
                fprintf(stderr, "secret in diagnostic: %s\n", l);
                abort();
            }
            if (!positioned(l) && !strstr(l, "more errors not shown") &&
                !(rc == R2M_E_NOMEM && strstr(l, "out of memory"))) {
                fprintf(stderr, "diagnostic without position: %s\n", l);
                abort();
            }
        }
    } else {
        if (!cfg || d.n)
            abort();
        check_url(cfg->mqtt.url);
        for (size_t i = 0; i < cfg->n_endpoints; i++) {
            check_url(cfg->endpoints[i].url);
            check_url(cfg->endpoints[i].auth.token_url);
        }
    }
    r2m_diag_free(&d);
    r2m_config_free(cfg);
    return 0;
}
