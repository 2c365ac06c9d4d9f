/* cmd_probe.c - `rest2mqtt probe URL`: fetch an API a few times and print
 * a ready endpoint entry (the guessing is src/probe.c; this is the glue:
 * arguments, the requests, secrets kept off the output). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <yaml.h>

#include "cmd.h"
#include "r2m/buf.h"
#include "r2m/config.h"
#include "r2m/error.h"
#include "r2m/http.h"
#include "r2m/json.h"
#include "r2m/log.h"
#include "r2m/probe.h"

#define MAX_HEADERS 32
#define MAX_AUTH    8
#define MAX_QUERY   8 /* secret query parameters replaced by references */

struct probe_args {
    const char *url, *method, *body, *name, *auth_text;
    const char *headers[2 * MAX_HEADERS];
    char *header_copy[MAX_HEADERS];
    size_t n_headers;
    char *auth[2 * MAX_AUTH]; /* key/value pairs parsed from --auth */
    size_t n_auth;
    unsigned samples;
    int64_t every_ms, timeout_ms;
    uint64_t max_body;
    int timeout_given, max_body_given; /* then the entry carries them too */
};

static void args_free(struct probe_args *a)
{
    for (size_t i = 0; i < a->n_headers; i++)
        free(a->header_copy[i]);
    for (size_t i = 0; i < 2 * a->n_auth; i++)
        free(a->auth[i]);
}

static int usage(const char *what)
{
    fprintf(stderr, "rest2mqtt probe: %s\nTry 'rest2mqtt --help' for the commands and options.\n",
            what);
    return EXIT_USAGE;
}

/* --auth takes the config's own form, a YAML mapping of scalars such as
 * '{ type: bearer, token: "${env:TOKEN}" }'. */
static int parse_auth(struct probe_args *a)
{
    yaml_parser_t p;
    yaml_event_t ev;
    int rc = -1, depth = 0, want_key = 1, done = 0;
    if (!yaml_parser_initialize(&p))
        return -1;
    yaml_parser_set_input_string(&p, (const unsigned char *)a->auth_text, strlen(a->auth_text));
    while (!done) {
        if (!yaml_parser_parse(&p, &ev))
            break;
        int bad = 0;
        switch (ev.type) {
        case YAML_MAPPING_START_EVENT:
            bad = depth++ != 0;
            break;
        case YAML_MAPPING_END_EVENT:
            depth--;
            break;
        case YAML_SCALAR_EVENT:
            if (depth != 1 || (want_key && a->n_auth == MAX_AUTH)) {
                bad = 1;
                break;
            }
            a->auth[2 * a->n_auth + !want_key] = strdup((const char *)ev.data.scalar.value);
            if (!want_key)
                a->n_auth++;
            want_key = !want_key;
            break;
        case YAML_STREAM_END_EVENT:
            done = 1;
            rc = depth == 0 && want_key && a->n_auth ? 0 : -1;
            break;
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
            break;
        default:
            bad = 1;
        }
        yaml_event_delete(&ev);
        if (bad)
            break;
    }
    if (!want_key) /* a key without its value */
        free(a->auth[2 * a->n_auth]);
    yaml_parser_delete(&p);
    return rc;
}

static const char *auth_get(const struct probe_args *a, const char *k)
{
    for (size_t i = 0; i < a->n_auth; i++)
        if (!strcmp(a->auth[2 * i], k))
            return a->auth[2 * i + 1];
    return NULL;
}

static int parse_args(int argc, char **argv, struct probe_args *a)
{
    static const struct option opts[] = {
        {"samples", required_argument, NULL, 's'},  {"every", required_argument, NULL, 'E'},
        {"header", required_argument, NULL, 'H'},   {"auth", required_argument, NULL, 'A'},
        {"method", required_argument, NULL, 'X'},   {"body", required_argument, NULL, 'd'},
        {"name", required_argument, NULL, 'n'},     {"timeout", required_argument, NULL, 'T'},
        {"max-body", required_argument, NULL, 'M'}, {NULL, 0, NULL, 0},
    };
    a->samples = 3;
    a->every_ms = 2000;
    a->timeout_ms = 10000;
    a->max_body = 32u << 20;
    a->method = "GET";
    opterr = 0;
    optind = 1;
    int c;
    char msg[300];
    while ((c = getopt_long(argc, argv, ":H:X:d:n:", opts, NULL)) != -1) {
        switch (c) {
        case 's': {
            char *end;
            unsigned long n = strtoul(optarg, &end, 10);
            if (*end || !n || n > R2M_PROBE_MAX_SAMPLES) {
                snprintf(msg, sizeof msg, "--samples takes 1 to %d", R2M_PROBE_MAX_SAMPLES);
                return usage(msg);
            }
            a->samples = (unsigned)n;
            break;
        }
        case 'E':
        case 'T':
            if (r2m_units_duration(optarg, c == 'E' ? &a->every_ms : &a->timeout_ms))
                return usage("--every and --timeout take a duration such as 2s or 500ms");
            a->timeout_given |= c == 'T';
            break;
        case 'M':
            if (r2m_units_size(optarg, &a->max_body))
                return usage("--max-body takes a size such as 32MiB");
            a->max_body_given = 1;
            break;
        case 'H': {
            const char *colon = strchr(optarg, ':');
            if (!colon || colon == optarg || a->n_headers == MAX_HEADERS)
                return usage("-H takes 'Name: value'");
            char *copy = strdup(optarg);
            if (!copy)
                return EXIT_RUNTIME;
            a->header_copy[a->n_headers] = copy;
            copy[colon - optarg] = '\0';
            const char *v = copy + (colon - optarg) + 1;
            v += strspn(v, " \t");
            a->headers[2 * a->n_headers] = copy;
            a->headers[2 * a->n_headers + 1] = v;
            a->n_headers++;
            break;
        }
        case 'A':
            a->auth_text = optarg;
            if (parse_auth(a))
                return usage("--auth takes a mapping as in the config, e.g. "
                             "'{ type: bearer, token: \"${env:TOKEN}\" }'");
            break;
        case 'X':
            a->method = optarg;
            break;
        case 'd':
            a->body = optarg;
            break;
        case 'n':
            a->name = optarg;
            break;
        case ':':
            snprintf(msg, sizeof msg, "option '%s' needs a value", argv[optind - 1]);
            return usage(msg);
        default:
            snprintf(msg, sizeof msg, "unknown option '%s'", argv[optind - 1]);
            return usage(msg);
        }
    }
    if (optind + 1 != argc)
        return usage(optind < argc ? "give exactly one URL" : "give the URL to probe");
    a->url = argv[optind];
    return EXIT_OK;
}

/* n name/value pairs as the rest of a YAML flow mapping, closing brace included. */
static int put_pairs(struct r2m_buf *y, const char *const *kv, size_t n)
{
    int r = 0;
    for (size_t i = 0; i < n && !r; i++) {
        r = i ? r2m_buf_puts(y, ", ") : 0;
        r = r ? r : r2m_json_quote(y, kv[2 * i], strlen(kv[2 * i]));
        r = r ? r : r2m_buf_puts(y, ": ");
        r = r ? r : r2m_json_quote(y, kv[2 * i + 1], strlen(kv[2 * i + 1]));
    }
    return r ? r : r2m_buf_puts(y, "}\n");
}

/* The request as a configuration, so that it is checked and sent exactly
 * as the bridge would (auth forms, ${env:}, CR/LF refused, redirects). */
static int request_config(const struct probe_args *a, const char *name, struct r2m_config **cfg)
{
    struct r2m_buf y;
    r2m_buf_init(&y, 1 << 20);
    /* every value quoted: -n is a name, never more YAML */
    int r = r2m_buf_puts(&y, "endpoints:\n  - name: ");
    r = r ? r : r2m_json_quote(&y, name, strlen(name));
    r = r ? r : r2m_buf_puts(&y, "\n    url: ");
    r = r ? r : r2m_json_quote(&y, a->url, strlen(a->url));
    r = r ? r : r2m_buf_puts(&y, "\n    method: ");
    r = r ? r : r2m_json_quote(&y, a->method, strlen(a->method));
    r = r ? r
          : r2m_buf_printf(&y, "\n    timeout: %lldms\n    max_body: %llu\n    headers: {",
                           (long long)a->timeout_ms, (unsigned long long)a->max_body);
    r = r ? r : put_pairs(&y, a->headers, a->n_headers);
    if (!r && a->body) {
        r = r2m_buf_puts(&y, "    body: ");
        r = r ? r : r2m_json_quote(&y, a->body, strlen(a->body));
        r = r ? r : r2m_buf_putc(&y, '\n');
    }
    if (!r && a->n_auth) {
        r = r2m_buf_puts(&y, "    auth: {");
        r = r ? r : put_pairs(&y, (const char *const *)a->auth, a->n_auth);
    }
    struct r2m_diag diag = {0};
    if (!r && (r = r2m_config_parse("probe arguments", y.data, y.len, cfg, &diag))) {
        for (size_t i = 0; i < diag.n; i++)
            fprintf(stderr, "%s\n", diag.lines[i]);
        fprintf(stderr, "rest2mqtt probe: the request options are not valid (the lines above "
                        "refer to the endpoint entry built from them)\n");
    }
    r2m_diag_free(&diag);
    r2m_buf_free(&y);
    return r;
}

/* One answer, copied out of the transfer inside the done callback. */
struct answer {
    int done, result;
    char err[512];
    struct r2m_buf body, link;
    char *etag, *last_modified;
};

static char *header_copy(const struct r2m_http_result *res, const char *name)
{
    const char *v = r2m_http_header(res, name, 0);
    return v ? strdup(v) : NULL;
}

static void on_done(void *owner, struct r2m_http_xfer *x, const struct r2m_http_result *res)
{
    (void)x;
    struct answer *an = owner;
    an->done = 1;
    an->result = res->result;
    snprintf(an->err, sizeof an->err, "%s", res->err ? res->err : r2m_strerror(res->result));
    if (res->result)
        return;
    if (r2m_buf_append(&an->body, res->body ? res->body : "", res->len))
        an->result = R2M_E_NOMEM;
    const char *v;
    for (size_t i = 0; (v = r2m_http_header(res, "Link", i)); i++)
        if ((i && r2m_buf_puts(&an->link, ", ")) || r2m_buf_puts(&an->link, v))
            an->result = R2M_E_NOMEM;
    an->etag = header_copy(res, "ETag");
    an->last_modified = header_copy(res, "Last-Modified");
}

/* Runs one request to its end (the transfer enforces the timeout). */
static int fetch(struct r2m_http *h, struct r2m_http_xfer *x, int ep, struct answer *an)
{
    int r = r2m_http_start(x);
    while (!r && !an->done) {
        int64_t now = r2m_http_now_ms(), dl = r2m_http_deadline(h);
        int wait = dl == INT64_MAX ? 100
                                   : (int)(dl - now < 0     ? 0
                                           : dl - now > 100 ? 100
                                                            : dl - now);
        struct epoll_event evs[8];
        int n = epoll_wait(ep, evs, 8, wait);
        for (int i = 0; i < n; i++)
            r2m_http_on_socket(h, (int)(evs[i].data.u64 & 0xffffffffu), evs[i].events);
        if (r2m_http_now_ms() >= r2m_http_deadline(h))
            r2m_http_on_timeout(h);
    }
    return r;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    while (ms > 0 && nanosleep(&ts, &ts))
        ;
}

static int secret_header(const char *name)
{
    /* header and query parameter names; "pass", "pwd", "sig" and "jwt"
     * catch passwd=, sig= (SAS URLs) and friends: hiding too much only
     * asks for one more variable */
    static const char *const words[] = {"auth", "token", "key", "secret", "cookie",    "session",
                                        "pass", "pwd",   "sig", "jwt",    "credential"};
    char low[128];
    size_t n = 0;
    for (; name[n] && n + 1 < sizeof low; n++)
        low[n] = (char)(name[n] >= 'A' && name[n] <= 'Z' ? name[n] + 32 : name[n]);
    low[n] = '\0';
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (strstr(low, words[i]))
            return 1;
    return 0;
}

/* NAME_WHAT in upper case, [A-Z0-9_] only. */
static void env_ref(char *out, size_t outlen, const char *name, const char *what)
{
    size_t w = (size_t)snprintf(out, outlen, "${env:");
    for (const char *s = name; *s && w + 1 < outlen; s++)
        out[w++] = *s >= 'a' && *s <= 'z'                                 ? (char)(*s - 32)
                   : (*s >= '0' && *s <= '9') || (*s >= 'A' && *s <= 'Z') ? *s
                                                                          : '_';
    if (w + 1 < outlen)
        out[w++] = '_';
    for (const char *s = what; *s && w + 1 < outlen; s++)
        out[w++] = *s >= 'a' && *s <= 'z'                                 ? (char)(*s - 32)
                   : (*s >= '0' && *s <= '9') || (*s >= 'A' && *s <= 'Z') ? *s
                                                                          : '_';
    snprintf(out + w, outlen - w, "}");
}

/* What the printed entry says about the request: every secret given as
 * plain text is replaced by an ${env:...} reference, and a comment says
 * which variables to set. Strings in refs are owned by the caller. */
struct shown {
    const char *headers[2 * MAX_HEADERS];
    const char *auth[2 * MAX_AUTH];
    char refs[MAX_HEADERS + MAX_AUTH + MAX_QUERY + 1][200];
    size_t n_refs;
    struct r2m_buf comment;
    struct r2m_buf url; /* the URL with a password in its user part replaced */
};

/* A password in the URL's user part ("https://u:p@h/") becomes a reference.
 * libcurl's own URL parser finds it, so what is hidden is exactly what the
 * request sends; the URL is then libcurl's spelling of it. */
/* A URL holding ${env:...} is not parsed before expansion: the password
 * is what lies between the first ':' of the user part and its last '@'
 * (never less than libcurl would send), kept when it is itself one whole
 * ${...} reference. 1 when a password was there, 0 when none, -1 when out
 * is full. */
static int hide_password_text(const char *url, const char *ref, struct r2m_buf *out)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t an = strcspn(p, "/?#");
    const char *at = NULL, *colon;
    for (const char *c = p; c < p + an; c++)
        at = *c == '@' ? c : at;
    colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
    size_t pn = colon ? (size_t)(at - colon - 1) : 0;
    if (!pn || (pn > 3 && !strncmp(colon + 1, "${", 2) && colon[pn] == '}' &&
                !memchr(colon + 3, '}', pn - 3)))
        return r2m_buf_puts(out, url) ? -1 : 0;
    if (r2m_buf_append(out, url, (size_t)(colon + 1 - url)) || r2m_buf_puts(out, ref) ||
        r2m_buf_puts(out, at))
        return -1;
    return 1;
}

static void hide_url_password(const char *url, const char *name, struct shown *s)
{
    static const char mark[] = "R2MPROBEPASSWORDMARK";
    CURLU *u = curl_url();
    char *pw = NULL, *out = NULL;
    if (strstr(url, "${")) {
        env_ref(s->refs[s->n_refs], sizeof s->refs[0], name, "url_password");
        int r = hide_password_text(url, s->refs[s->n_refs], &s->url);
        if (r < 0) {
            r2m_buf_reset(&s->url);
            r2m_buf_puts(&s->url, "${env:URL}"); /* never the password */
        }
        s->n_refs += r != 0;
        goto out;
    }
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) ||
        curl_url_get(u, CURLUPART_PASSWORD, &pw, 0) || !pw || !*pw) {
        r2m_buf_puts(&s->url, url);
        goto out;
    }
    env_ref(s->refs[s->n_refs], sizeof s->refs[0], name, "url_password");
    const char *m = NULL;
    if (!curl_url_set(u, CURLUPART_PASSWORD, mark, 0) && !curl_url_get(u, CURLUPART_URL, &out, 0))
        m = strstr(out, mark);
    if (!m || r2m_buf_append(&s->url, out, (size_t)(m - out)) ||
        r2m_buf_puts(&s->url, s->refs[s->n_refs]) || r2m_buf_puts(&s->url, m + sizeof mark - 1)) {
        r2m_buf_reset(&s->url);
        r2m_buf_puts(&s->url, "${env:URL}"); /* never the password */
    }
    s->n_refs++;
out:
    curl_free(pw);
    curl_free(out);
    curl_url_cleanup(u);
}

/* The value of a query parameter whose name suggests a secret
 * ("?api_key=...", "&access_token=...") becomes a reference, as a secret
 * header's does; values already given as ${env:...} stay. More such
 * parameters than there are references for: the whole URL is one. */
static void hide_query_secrets(const char *name, struct shown *s)
{
    struct r2m_buf out;
    r2m_buf_init(&out, s->url.max);
    const char *u = s->url.data ? s->url.data : "";
    size_t q = strcspn(u, "?#"), end = q + strcspn(u + q, "#");
    int r = r2m_buf_append(&out, u, q);
    for (size_t i = q; i < end && !r;) {
        size_t n = strcspn(u + i + 1, "&#") + 1; /* '?' or '&', then name=value */
        const char *eq = memchr(u + i + 1, '=', n - 1);
        char pname[128];
        snprintf(pname, sizeof pname, "%.*s", eq ? (int)(eq - u - i - 1) : 0, u + i + 1);
        const char *v = eq ? eq + 1 : NULL;
        size_t vn = v ? (size_t)(u + i + n - v) : 0;
        if (vn && secret_header(pname) && !memmem(v, vn, "${", 2)) {
            if (s->n_refs == sizeof s->refs / sizeof *s->refs - 1) {
                r = -1;
                break;
            }
            env_ref(s->refs[s->n_refs], sizeof s->refs[0], name, pname);
            r = r2m_buf_append(&out, u + i, (size_t)(v - u - i));
            r = r ? r : r2m_buf_puts(&out, s->refs[s->n_refs++]);
        } else
            r = r2m_buf_append(&out, u + i, n);
        i += n;
    }
    r = r ? r : r2m_buf_puts(&out, u + end);
    r2m_buf_reset(&s->url);
    if (r || r2m_buf_append(&s->url, out.data ? out.data : "", out.len))
        r2m_buf_puts(&s->url, "${env:URL}"); /* never the secret */
    r2m_buf_free(&out);
}

static void hide_secrets(const struct probe_args *a, const char *name, struct shown *s)
{
    static const char *const secret_auth[] = {"token", "password", "value", "client_secret"};
    hide_url_password(a->url, name, s);
    hide_query_secrets(name, s);
    for (size_t i = 0; i < a->n_headers; i++) {
        s->headers[2 * i] = a->headers[2 * i];
        s->headers[2 * i + 1] = a->headers[2 * i + 1];
        if (secret_header(a->headers[2 * i]) && !strstr(a->headers[2 * i + 1], "${")) {
            env_ref(s->refs[s->n_refs], sizeof s->refs[0], name, a->headers[2 * i]);
            s->headers[2 * i + 1] = s->refs[s->n_refs++];
        }
    }
    for (size_t i = 0; i < a->n_auth; i++) {
        s->auth[2 * i] = a->auth[2 * i];
        s->auth[2 * i + 1] = a->auth[2 * i + 1];
        for (size_t k = 0; k < sizeof secret_auth / sizeof *secret_auth; k++)
            if (!strcmp(a->auth[2 * i], secret_auth[k]) && !strstr(a->auth[2 * i + 1], "${")) {
                env_ref(s->refs[s->n_refs], sizeof s->refs[0], name, a->auth[2 * i]);
                s->auth[2 * i + 1] = s->refs[s->n_refs++];
            }
    }
    for (size_t i = 0; i < s->n_refs; i++) {
        size_t n = strlen(s->refs[i]);
        r2m_buf_printf(&s->comment, "  # secret not printed: set %.*s to the value you gave\n",
                       (int)(n - 7), s->refs[i] + 6);
    }
}

static int run_probe(const struct probe_args *a, const struct r2m_endpoint_cfg *e,
                     const char *name);

int cmd_probe(int argc, char **argv)
{
    struct probe_args a = {0};
    struct r2m_config *cfg = NULL;
    int rc = parse_args(argc, argv, &a);
    if (rc)
        goto out;
    if (a.auth_text && auth_get(&a, "type") && !strcmp(auth_get(&a, "type"), "oauth2")) {
        rc = usage("--auth: probe does not fetch OAuth2 tokens; give the token as "
                   "'{ type: bearer, token: ... }' and change the entry afterwards");
        goto out;
    }
    char name[65];
    if (a.name && strlen(a.name) >= sizeof name) {
        rc = usage("-n takes a name of at most 64 characters"); /* never cut silently */
        goto out;
    }
    if (a.name)
        snprintf(name, sizeof name, "%s", a.name);
    else
        r2m_probe_name(a.url, name);
    if (request_config(&a, name, &cfg)) {
        rc = EXIT_USAGE;
        goto out;
    }
    rc = run_probe(&a, &cfg->endpoints[0], name);
out:
    r2m_config_free(cfg);
    args_free(&a);
    return rc;
}

/* The samples, one request every --every, then the analysis and the entry. */
static int run_probe(const struct probe_args *a, const struct r2m_endpoint_cfg *e, const char *name)
{
    int rc = EXIT_RUNTIME, ep = epoll_create1(EPOLL_CLOEXEC);
    struct r2m_http *h = NULL;
    struct r2m_http_xfer *x = NULL;
    struct answer an[R2M_PROBE_MAX_SAMPLES];
    struct r2m_json_doc *docs[R2M_PROBE_MAX_SAMPLES] = {0};
    struct r2m_probe_sample smp[R2M_PROBE_MAX_SAMPLES];
    struct r2m_probe_result *res = calloc(1, sizeof *res);
    struct shown sh = {0};
    struct r2m_buf out;
    char shown_url[600], err[600];
    r2m_buf_init(&out, 16 << 20);
    r2m_buf_init(&sh.comment, 1 << 16);
    r2m_buf_init(&sh.url, 1 << 20);
    memset(an, 0, sizeof an);
    for (unsigned i = 0; i < R2M_PROBE_MAX_SAMPLES; i++) {
        r2m_buf_init(&an[i].body, e->max_body + 1);
        r2m_buf_init(&an[i].link, 1 << 20);
    }
    r2m_log_url(e->url, shown_url, sizeof shown_url);
    /* every sample is a plain GET (no validators sent); Link lines are
     * kept for the pagination guess */
    static const struct r2m_http_opts ho = {.link_headers = 1, .conditional = 0};
    if (!res || ep < 0 || r2m_http_new(ep, on_done, &h) || r2m_http_xfer_new(h, e, &ho, NULL, &x)) {
        fprintf(stderr, "rest2mqtt probe: cannot set up HTTP\n");
        goto out;
    }
    for (unsigned i = 0; i < a->samples; i++) {
        int64_t start = r2m_http_now_ms();
        /* the transfer's owner is the answer of this request */
        r2m_http_xfer_free(x);
        x = NULL;
        if (r2m_http_xfer_new(h, e, &ho, &an[i], &x) || fetch(h, x, ep, &an[i]) || an[i].result) {
            fprintf(stderr, "rest2mqtt probe: %s %s failed (sample %u): %s\n", e->method, shown_url,
                    i + 1, an[i].done ? an[i].err : "cannot start the request");
            goto out;
        }
        if (r2m_json_doc_new(&docs[i], NULL) ||
            r2m_json_parse(docs[i], an[i].body.data ? an[i].body.data : "", an[i].body.len,
                           &smp[i].root, err, sizeof err)) {
            fprintf(stderr, "rest2mqtt probe: %s %s did not answer JSON (sample %u): %s\n",
                    e->method, shown_url, i + 1, err);
            goto out;
        }
        smp[i].url = e->url;
        smp[i].link = an[i].link.len ? an[i].link.data : NULL;
        smp[i].etag = an[i].etag;
        smp[i].last_modified = an[i].last_modified;
        int64_t left = start + a->every_ms - r2m_http_now_ms();
        if (i + 1 < a->samples)
            sleep_ms(left);
    }
    if (r2m_probe_analyse(smp, a->samples, res, err, sizeof err)) {
        fprintf(stderr, "rest2mqtt probe: %s\n", err);
        goto out;
    }
    if (a->samples == 1)
        r2m_buf_printf(&sh.comment, "  # rest2mqtt probe: %s %s, 1 sample\n", e->method, shown_url);
    else
        r2m_buf_printf(&sh.comment, "  # rest2mqtt probe: %s %s, %u samples %lldms apart\n",
                       e->method, shown_url, a->samples, (long long)a->every_ms);
    hide_secrets(a, name, &sh);
    struct r2m_probe_request req = {
        .name = name,
        .url = sh.url.data ? sh.url.data : "",
        .method = a->method,
        .body = a->body,
        .headers = sh.headers,
        .n_headers = a->n_headers,
        .auth = sh.auth,
        .n_auth = a->n_auth,
        .comment = sh.comment.data,
        .timeout_ms = a->timeout_given ? (long long)a->timeout_ms : 0,
        .max_body = a->max_body_given ? (unsigned long long)a->max_body : 0,
    };
    if (r2m_probe_render(res, &req, &out)) {
        fprintf(stderr, "rest2mqtt probe: the entry is too large to print\n");
        goto out;
    }
    fwrite(out.data, 1, out.len, stdout);
    rc = EXIT_OK;
out:
    r2m_http_xfer_free(x);
    r2m_http_free(h);
    if (ep >= 0)
        close(ep);
    for (unsigned i = 0; i < R2M_PROBE_MAX_SAMPLES; i++) {
        r2m_json_doc_free(docs[i]);
        r2m_buf_free(&an[i].body);
        r2m_buf_free(&an[i].link);
        free(an[i].etag);
        free(an[i].last_modified);
    }
    r2m_buf_free(&sh.comment);
    r2m_buf_free(&sh.url);
    r2m_buf_free(&out);
    free(res);
    return rc;
}
