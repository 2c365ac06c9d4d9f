/* page.c - next-page URLs: the pagination styles of paginate: (Link header
 * per RFC 8288, a next pointer in the body, a cursor, a page number),
 * resolving a reference against its page, query parameters. */
#include "r2m/page.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "r2m/error.h"
#include "r2m/http.h"
#include "r2m/json.h"

/* ---- the Link header ---- */

/* tchar of RFC 9110 section 5.6.2 */
static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* control characters other than HTAB: never valid in a field value */
static int is_ctl(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

struct link_scan {
    const char *s;
    size_t len, pos;
    char *err;
    size_t errlen;
};

static void skip_ows(struct link_scan *k)
{
    while (k->pos < k->len && is_ows((unsigned char)k->s[k->pos]))
        k->pos++;
}

static int fail(struct link_scan *k, const char *what)
{
    snprintf(k->err, k->errlen, "Link header: %s at offset %zu", what, k->pos);
    return R2M_E_INVALID;
}

/* Matches relation types against "next" while reading a rel value: the
 * value is a space-separated list; words are fed one byte at a time
 * (escapes already removed). */
struct rel_match {
    char word[5];
    size_t n; /* bytes of the current word, possibly more than stored */
    int next; /* "next" was one of the words */
};

static void rel_end_word(struct rel_match *m)
{
    if (m->n == 4 && !strncasecmp(m->word, "next", 4))
        m->next = 1;
    m->n = 0;
}

static void rel_feed(struct rel_match *m, unsigned char c)
{
    if (is_ows(c)) {
        rel_end_word(m);
        return;
    }
    if (m->n < 4)
        m->word[m->n] = (char)c;
    m->n++;
}

/* Reads a parameter value (token-like or quoted-string) at k->pos; when m
 * is not NULL, the unescaped value is fed to it. */
static int read_value(struct link_scan *k, struct rel_match *m)
{
    if (k->pos < k->len && k->s[k->pos] == '"') {
        k->pos++;
        for (;;) {
            if (k->pos >= k->len)
                return fail(k, "unterminated quoted string");
            unsigned char c = (unsigned char)k->s[k->pos];
            if (c == '"')
                break;
            if (c == '\\') { /* quoted-pair */
                k->pos++;
                if (k->pos >= k->len)
                    return fail(k, "unterminated quoted string");
                c = (unsigned char)k->s[k->pos];
            }
            if (is_ctl(c))
                return fail(k, "control character in a quoted string");
            if (m)
                rel_feed(m, c);
            k->pos++;
        }
        k->pos++;
        return 0;
    }
    /* unquoted: a token by the RFC; in the wild also media types
     * ("type=text/html"), so anything but separators and controls */
    size_t start = k->pos;
    while (k->pos < k->len) {
        unsigned char c = (unsigned char)k->s[k->pos];
        if (is_ows(c) || c == ',' || c == ';' || c == '"' || c == '<' || c == '>' || is_ctl(c))
            break;
        if (m)
            rel_feed(m, c);
        k->pos++;
    }
    if (k->pos == start)
        return fail(k, "parameter value missing");
    return 0;
}

/* Reads the parameters after a link's target up to the next ',' or the end.
 * *is_next: the link's first rel parameter lists "next". */
static int read_params(struct link_scan *k, int *is_next)
{
    int rel_seen = 0;
    *is_next = 0;
    for (;;) {
        skip_ows(k);
        if (k->pos >= k->len || k->s[k->pos] == ',')
            return 0;
        if (k->s[k->pos] != ';')
            return fail(k, is_ctl((unsigned char)k->s[k->pos])
                               ? "control character"
                               : "expected ';' or ',' after a link");
        k->pos++;
        skip_ows(k);
        if (k->pos >= k->len || k->s[k->pos] == ',' || k->s[k->pos] == ';')
            continue; /* an empty parameter ("<u>;") carries nothing */
        size_t name = k->pos;
        while (k->pos < k->len && is_tchar((unsigned char)k->s[k->pos]))
            k->pos++;
        size_t name_len = k->pos - name;
        if (!name_len)
            return fail(k, "expected a parameter name");
        /* the first rel of a link counts, later ones are ignored (RFC 8288
         * section 3.3); rel* is not allowed for rel, so it is just another
         * parameter */
        int is_rel = name_len == 3 && !strncasecmp(k->s + name, "rel", 3) && !rel_seen;
        skip_ows(k);
        if (k->pos >= k->len || k->s[k->pos] != '=')
            continue; /* a parameter without a value, such as "crossorigin" */
        k->pos++;
        skip_ows(k);
        struct rel_match m = {.n = 0};
        int r = read_value(k, is_rel ? &m : NULL);
        if (r)
            return r;
        if (is_rel) {
            rel_end_word(&m);
            rel_seen = 1;
            *is_next = m.next;
        }
    }
}

static int link_next(const char *value, size_t len, const char **url, size_t *url_len, char *err,
                     size_t errlen)
{
    struct link_scan k = {value, len, 0, err, errlen};
    for (;;) {
        /* #link-value: elements separated by OWS "," OWS; empty ones allowed */
        while (k.pos < k.len && (is_ows((unsigned char)k.s[k.pos]) || k.s[k.pos] == ','))
            k.pos++;
        if (k.pos >= k.len)
            return 0;
        if (k.s[k.pos] != '<')
            return fail(&k, is_ctl((unsigned char)k.s[k.pos]) ? "control character"
                                                              : "expected '<' to start a link");
        size_t start = ++k.pos;
        while (k.pos < k.len && k.s[k.pos] != '>' && !is_ctl((unsigned char)k.s[k.pos]))
            k.pos++;
        if (k.pos >= k.len)
            return fail(&k, "unterminated '<'");
        if (k.s[k.pos] != '>')
            return fail(&k, "control character in a link target");
        size_t tlen = k.pos - start;
        k.pos++;
        int is_next;
        int r = read_params(&k, &is_next);
        if (r)
            return r;
        if (!is_next)
            continue;
        if (tlen > R2M_PAGE_URL_MAX) {
            snprintf(err, errlen, "Link header: next page URL of %zu bytes, over the limit of %d",
                     tlen, R2M_PAGE_URL_MAX);
            return R2M_E_TOO_BIG;
        }
        if (*url && (*url_len != tlen || memcmp(*url, value + start, tlen))) {
            snprintf(err, errlen,
                     "Link header: two different rel=\"next\" links (the second ends at offset "
                     "%zu); cannot tell which page comes next",
                     k.pos);
            return R2M_E_INVALID;
        }
        *url = value + start;
        *url_len = tlen;
    }
}

int r2m_page_link_next(const char *value, size_t len, const char **url, size_t *url_len, char *err,
                       size_t errlen)
{
    *url = NULL;
    *url_len = 0;
    int r = link_next(value, len, url, url_len, err, errlen);
    if (r) {
        *url = NULL;
        *url_len = 0;
    }
    return r;
}

/* "page 2, https://h/items?page=*" */
static void page_name(const struct r2m_page *pg, char *out, size_t outlen)
{
    char masked[256];
    r2m_page_mask_url(pg->url ? pg->url : "", masked, sizeof masked);
    snprintf(out, outlen, "page %u, %s", pg->index + 1, masked);
}

int r2m_page_link(const struct r2m_page *pg, struct r2m_page_next *next, char *err, size_t errlen)
{
    char why[256], where[300];
    char *found = NULL; /* the next target so far (header values may not outlive a call) */
    size_t found_len = 0;
    int r = 0;
    next->url[0] = '\0';
    for (size_t i = 0; pg->header; i++) {
        const char *v = pg->header(pg->header_ctx, "Link", i);
        if (!v)
            break;
        const char *u;
        size_t ulen;
        if ((r = r2m_page_link_next(v, strlen(v), &u, &ulen, why, sizeof why))) {
            page_name(pg, where, sizeof where);
            if (i > 0)
                snprintf(err, errlen, "%s (field line %zu; %s)", why, i + 1, where);
            else
                snprintf(err, errlen, "%s (%s)", why, where);
            goto out;
        }
        if (!u)
            continue;
        if (found && (found_len != ulen || memcmp(found, u, ulen))) {
            page_name(pg, where, sizeof where);
            snprintf(err, errlen,
                     "Link header: two different rel=\"next\" links in field lines 1..%zu; "
                     "cannot tell which page comes next (%s)",
                     i + 1, where);
            r = R2M_E_INVALID;
            goto out;
        }
        if (!found) {
            if (!(found = malloc(ulen + 1))) {
                snprintf(err, errlen, "out of memory reading the Link header");
                r = R2M_E_NOMEM;
                goto out;
            }
            memcpy(found, u, ulen);
            found[ulen] = '\0';
            found_len = ulen;
        }
    }
    if (found && (r = r2m_page_resolve(pg->url, found, next, why, sizeof why))) {
        page_name(pg, where, sizeof where);
        snprintf(err, errlen, "%s (Link header of %s)", why, where);
    }
out:
    free(found);
    if (r)
        next->url[0] = '\0';
    return r;
}

/* ---- URLs ---- */

/* Copies a next-page URL within the limit. */
static int set_next(struct r2m_page_next *next, const char *url, char *err, size_t errlen)
{
    size_t n = strlen(url);
    if (n > R2M_PAGE_URL_MAX) {
        snprintf(err, errlen, "next page URL of %zu bytes, over the limit of %d", n,
                 R2M_PAGE_URL_MAX);
        return R2M_E_TOO_BIG;
    }
    memcpy(next->url, url, n + 1);
    return 0;
}

int r2m_page_resolve(const char *base, const char *ref, struct r2m_page_next *next, char *err,
                     size_t errlen)
{
    int r = R2M_E_INVALID;
    CURLU *u = curl_url(), *b = curl_url();
    char *out = NULL;
    if (!u || !b) {
        r = R2M_E_NOMEM;
        goto out;
    }
    CURLUcode uc;
    if ((uc = curl_url_set(b, CURLUPART_URL, base, 0)) ||
        (uc = curl_url_set(u, CURLUPART_URL, base, 0)) ||
        (uc = curl_url_set(u, CURLUPART_URL, ref, 0)) ||
        (uc = curl_url_get(u, CURLUPART_URL, &out, 0))) {
        /* not the reference itself: it may carry an API key */
        snprintf(err, errlen, "next page reference (%zu bytes) is not a usable URL: %s",
                 strlen(ref), curl_url_strerror(uc));
        goto out;
    }
    /* same origin: scheme, host and port (RFC 6454), so credentials go
     * neither to another host, nor another port, nor from https to http;
     * the one origin function redirects use too */
    char o1[R2M_HTTP_ORIGIN_MAX], o2[R2M_HTTP_ORIGIN_MAX];
    int files = !strncasecmp(base, "file:", 5) && !strncasecmp(out, "file:", 5);
    if (!files && (r2m_http_origin(base, o1, sizeof o1) | r2m_http_origin(out, o2, sizeof o2) ||
                   strcmp(o1, o2))) {
        snprintf(err, errlen,
                 "next page is on another origin (%.100s, not %.100s); refusing to send this "
                 "endpoint's credentials there",
                 o2[0] ? o2 : "not http(s)", o1[0] ? o1 : "?");
        goto out;
    }
    r = set_next(next, out, err, errlen);
out:
    curl_free(out);
    curl_url_cleanup(u);
    curl_url_cleanup(b);
    return r;
}

int r2m_page_param(const char *url, const char *name, const char *value, struct r2m_page_next *next,
                   char *err, size_t errlen)
{
    int r = R2M_E_INVALID;
    CURLU *u = curl_url();
    char *out = NULL;
    size_t n = strlen(name) + strlen(value) + 2;
    char *q = malloc(n);
    if (!u || !q) {
        r = R2M_E_NOMEM;
        goto out;
    }
    snprintf(q, n, "%s=%s", name, value);
    /* CURLU_URLENCODE encodes the value; APPENDQUERY adds name=value (a
     * parameter of the same name already in the URL is left to the server) */
    if (curl_url_set(u, CURLUPART_URL, url, 0) ||
        curl_url_set(u, CURLUPART_QUERY, q, CURLU_APPENDQUERY | CURLU_URLENCODE) ||
        curl_url_get(u, CURLUPART_URL, &out, 0)) {
        char masked[256];
        r2m_page_mask_url(url, masked, sizeof masked);
        snprintf(err, errlen, "cannot build the next page URL from %s", masked);
        goto out;
    }
    r = set_next(next, out, err, errlen);
out:
    free(q);
    curl_free(out);
    curl_url_cleanup(u);
    return r;
}

/* ---- pagination styles ---- */

void r2m_page_http_opts(const struct r2m_endpoint_cfg *cfg, struct r2m_http_opts *out)
{
    out->link_headers = cfg->paginate.kind == R2M_PAGE_LINK;
    out->conditional = cfg->paginate.kind == R2M_PAGE_NONE;
}

int r2m_page_first(const struct r2m_endpoint_cfg *cfg, struct r2m_page_next *next, char *err,
                   size_t errlen)
{
    next->url[0] = '\0';
    if (cfg->paginate.kind != R2M_PAGE_NUMBER)
        return 0;
    char num[24];
    snprintf(num, sizeof num, "%lld", (long long)cfg->paginate.start);
    return r2m_page_param(cfg->url, cfg->paginate.param, num, next, err, errlen);
}

/* The next cursor or URL at ptr into *out: a string or a number. Missing,
 * null, false and "" end the list (*out = NULL). Anything else (an object
 * such as HAL's {"href": ...}, an array, true) cannot be read as a next
 * page: the poll fails rather than taking it for the last page, which
 * would read as the deletion of every item on the pages after it. */
static int next_value(struct r2m_json *root, const char *ptr, unsigned index, const char **out,
                      char *err, size_t errlen)
{
    struct r2m_json *v = root ? r2m_json_pointer(root, ptr) : NULL;
    *out = NULL;
    if (!v || v->type == R2M_JSON_NULL || v->type == R2M_JSON_FALSE)
        return 0;
    if (v->type == R2M_JSON_STRING && memchr(v->u.str, '\0', v->n)) {
        /* as a C string it would name another page than the API did */
        snprintf(err, errlen, "next page value at %s contains a NUL (\\u0000) (page %u)", ptr,
                 index + 1);
        return R2M_E_INVALID;
    }
    if (v->type == R2M_JSON_STRING || v->type == R2M_JSON_NUMBER) {
        *out = v->n ? v->u.str : NULL;
        return 0;
    }
    /* null, false, strings and numbers are handled above */
    const char *what = v->type == R2M_JSON_OBJECT  ? "an object"
                       : v->type == R2M_JSON_ARRAY ? "an array"
                                                   : "true";
    snprintf(err, errlen,
             "next page value at %s is %s, not a string or a number (null, false or \"\" end "
             "the list); pagination stops here, so nothing is taken as deleted (page %u)",
             ptr, what, index + 1);
    return R2M_E_INVALID;
}

int r2m_page_next_url(const struct r2m_endpoint_cfg *cfg, const struct r2m_page *pg,
                      struct r2m_json *root, size_t n_items, struct r2m_page_next *next, char *err,
                      size_t errlen)
{
    const char *v = NULL;
    char num[24];
    int r;
    next->url[0] = '\0';
    switch (cfg->paginate.kind) {
    case R2M_PAGE_LINK:
        return r2m_page_link(pg, next, err, errlen);
    case R2M_PAGE_NEXT:
    case R2M_PAGE_CURSOR:
        if ((r = next_value(root, cfg->paginate.pointer, pg->index, &v, err, errlen)) || !v)
            return r;
        if (cfg->paginate.kind == R2M_PAGE_NEXT)
            return r2m_page_resolve(pg->url, v, next, err, errlen);
        return r2m_page_param(cfg->url, cfg->paginate.param, v, next, err, errlen);
    case R2M_PAGE_NUMBER:
        if (n_items == 0)
            return 0; /* an empty page ends the list */
        snprintf(num, sizeof num, "%lld", (long long)(cfg->paginate.start + pg->index + 1));
        return r2m_page_param(cfg->url, cfg->paginate.param, num, next, err, errlen);
    default:
        return 0;
    }
}

struct sink {
    char *out;
    size_t cap, n;
    int cut;
};

static void sink_put(struct sink *k, const char *p, size_t len)
{
    for (size_t i = 0; i < len && !k->cut; i++) {
        if (k->n + 1 >= k->cap)
            k->cut = 1;
        else
            k->out[k->n++] = p[i];
    }
}

/* One part of a parsed URL (curl_free it), or NULL when the URL has none
 * (or libcurl cannot say): a masked URL shows "?" or nothing there. */
static char *url_part(CURLU *u, CURLUPart what)
{
    char *v = NULL;
    if (curl_url_get(u, what, &v, 0) != CURLUE_OK)
        return NULL;
    return v;
}

void r2m_page_mask_url(const char *url, char *out, size_t outlen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL;
    struct sink k = {out, outlen, 0, 0};
    if (!outlen)
        goto out;
    snprintf(out, outlen, "?");
    if (!u || !url || curl_url_set(u, CURLUPART_URL, url, 0))
        goto out;
    scheme = url_part(u, CURLUPART_SCHEME);
    host = url_part(u, CURLUPART_HOST);
    port = url_part(u, CURLUPART_PORT);
    path = url_part(u, CURLUPART_PATH);
    query = url_part(u, CURLUPART_QUERY);
    const char *parts[] = {scheme ? scheme : "?", "://",
                           host ? host : "?",     port ? ":" : "",
                           port ? port : "",      path ? path : ""};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        sink_put(&k, parts[i], strlen(parts[i]));
    /* query names stay (they tell which parameter is wrong); values may be
     * keys or tokens */
    if (query) {
        sink_put(&k, "?", 1);
        int in_value = 0;
        for (const char *q = query; *q; q++) {
            if (*q == '&')
                in_value = 0;
            else if (in_value)
                continue;
            sink_put(&k, q, 1);
            if (*q == '=') {
                in_value = 1;
                sink_put(&k, "*", 1);
            }
        }
    }
    out[k.n] = '\0';
    if (k.cut && outlen > 4)
        memcpy(out + outlen - 4, "...", 4);
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(query);
    curl_url_cleanup(u);
}
