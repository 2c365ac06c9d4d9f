/* Fuzz target: next-page URL resolution and query parameters.
 *
 * Input: base URL, '\n', reference (or, for r2m_page_param, value).
 * Properties: never crashes; a resolved next page never changes origin
 * (scheme, host, port as libcurl connects to them, default ports filled
 * in);
 * results stay within R2M_PAGE_URL_MAX; masking always gives a
 * NUL-terminated string within its buffer. */
#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "r2m/page.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* "scheme://host:port" as libcurl connects to it, or 0 when it cannot
 * parse url. libcurl's own round trip is not a fixed point for odd hosts
 * ("https://%36" gives "https://6/", which parses as host 0.0.0.6), so the
 * URL goes through parse + print until it stops changing. */
static int origin_of(const char *url, char *out, size_t outlen)
{
    CURLU *u = curl_url();
    char *s = NULL, *h = NULL, *p = NULL, *prev = NULL, *txt = NULL;
    int ok = u && !curl_url_set(u, CURLUPART_URL, url, 0);
    for (int i = 0; ok && i < 4; i++) {
        ok = !curl_url_get(u, CURLUPART_URL, &txt, 0) && !curl_url_set(u, CURLUPART_URL, txt, 0);
        int same = ok && prev && !strcmp(prev, txt);
        curl_free(prev);
        prev = txt;
        txt = NULL;
        if (same)
            break;
    }
    ok = ok && !curl_url_get(u, CURLUPART_SCHEME, &s, 0) &&
         !curl_url_get(u, CURLUPART_HOST, &h, 0) &&
         !curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT);
    if (ok)
        snprintf(out, outlen, "%s://%s:%s", s, h, p);
    curl_free(prev);
    curl_free(s);
    curl_free(h);
    curl_free(p);
    curl_url_cleanup(u);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct r2m_page_next next;
    char *in = malloc(size + 1);
    if (!in)
        return 0;
    memcpy(in, data, size);
    in[size] = '\0';
    char *ref = strchr(in, '\n');
    if (ref)
        *ref++ = '\0';
    else
        ref = "";
    char err[512], o1[4096], o2[4096];
    /* file:// pages (tests only) have no origin; file to file is allowed */
    int files = !strncasecmp(in, "file:", 5);
    if (r2m_page_resolve(in, ref, &next, err, sizeof err) == 0 &&
        !(files && !strncasecmp(next.url, "file:", 5))) {
        if (strlen(next.url) > R2M_PAGE_URL_MAX || !origin_of(in, o1, sizeof o1) ||
            !origin_of(next.url, o2, sizeof o2) || strcasecmp(o1, o2)) {
            fprintf(stderr, "base %s ref %s -> %s changed origin\n", in, ref, next.url);
            abort();
        }
    }
    /* a parameter only changes the query; the base is the endpoint's
     * configured URL, so a base this oracle cannot give an origin (e.g. a
     * host with %7f) has none to keep */
    if (r2m_page_param(in, "cursor", ref, &next, err, sizeof err) == 0 &&
        !(files && !strncasecmp(next.url, "file:", 5)) && origin_of(in, o1, sizeof o1)) {
        if (strlen(next.url) > R2M_PAGE_URL_MAX || !origin_of(next.url, o2, sizeof o2) ||
            strcasecmp(o1, o2))
            abort();
    }
    char m[80];
    memset(m, 'x', sizeof m);
    r2m_page_mask_url(in, m, sizeof m);
    if (!memchr(m, '\0', sizeof m))
        abort();
    free(in);
    return 0;
}
