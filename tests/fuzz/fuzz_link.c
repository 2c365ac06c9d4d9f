/* Fuzz target: the Link header parser (RFC 8288) and Link pagination.
 *
 * Properties:
 *  - r2m_page_link_next never crashes or reads outside the input;
 *  - on success a next URL is exactly the bytes between a '<' and a '>' of
 *    the input, at most R2M_PAGE_URL_MAX long; on failure there is none and
 *    err says something;
 *  - parsing is deterministic (a second call gives the same answer);
 *  - r2m_page_link over the input split at '\n' into header fields either
 *    fails or gives "" or a URL on the page's own origin. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "r2m/page.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *fields_header(const void *ctx, const char *name, size_t index)
{
    (void)name;
    char *const *f = ctx;
    for (size_t i = 0; i < index; i++)
        if (!f[i])
            return NULL;
    return f[index];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct r2m_page_next next;
    const char *v = (const char *)data, *u, *u2;
    size_t n, n2;
    char err[256], err2[256];
    err[0] = err2[0] = '\0';
    int r = r2m_page_link_next(v, size, &u, &n, err, sizeof err);
    int r2 = r2m_page_link_next(v, size, &u2, &n2, err2, sizeof err2);
    if (r != r2 || u != u2 || n != n2 || strcmp(err, err2))
        abort(); /* not deterministic */
    if (r) {
        if (u || !err[0])
            abort();
    } else if (u) {
        if (u <= v || u + n >= v + size || u[-1] != '<' || u[n] != '>' || n > R2M_PAGE_URL_MAX ||
            memchr(u, '>', n))
            abort();
    }

    /* the same bytes as header fields, one per line */
    char *copy = malloc(size + 1), *fields[17];
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    size_t k = 0;
    for (char *p = copy; k < 16;) {
        fields[k++] = p;
        char *nl = memchr(p, '\n', (size_t)(copy + size - p));
        if (!nl)
            break;
        *nl = '\0';
        p = nl + 1;
    }
    fields[k] = NULL;
    const char *base = "https://api.example/v1/items?page=1";
    struct r2m_page pg = {0, base, fields_header, fields};
    r = r2m_page_link(&pg, &next, err, sizeof err);
    /* the origin, spelled with or without its default port */
    int same = !strncasecmp(next.url, "https://api.example/", 20) ||
               !strncasecmp(next.url, "https://api.example:443/", 24);
    if (r ? next.url[0] || !err[0] : next.url[0] && (!same || strlen(next.url) > R2M_PAGE_URL_MAX))
        abort();
    free(copy);
    return 0;
}
