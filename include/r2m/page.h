/* r2m/page.h - next-page URLs of paginated endpoints.
 *
 * Pure functions (no I/O, no globals): the first page's URL and the next
 * one's for each style of `paginate:` (a Link header, a next-page pointer
 * in the body, a cursor, a page number), the RFC 8288 Link header parser,
 * resolving a next-page reference against the page that carried it (same
 * origin only, so credentials never follow a link to another host), and
 * setting a query parameter for cursor and page-number pagination.
 *
 * Contract (README guarantee 1): a page whose pagination data cannot
 * be read completely is an error, never "this was the last page" - a list
 * cut short would read as deletions. A next-page URL is at most
 * R2M_PAGE_URL_MAX bytes; a longer one is an error too. */
#ifndef R2M_PAGE_H
#define R2M_PAGE_H

#include <stddef.h>

#include "r2m/config.h"
#include "r2m/http.h"

struct r2m_json;

/* Longest next-page URL accepted, in bytes (raw Link target and resolved
 * URL alike). libcurl refuses a single response header over 100 KiB. */
#define R2M_PAGE_URL_MAX (64 * 1024)

/* Reads the index-th field line (0 = first) of response header `name` of
 * the page, NULL past the last one. */
typedef const char *r2m_page_header_fn(const void *ctx, const char *name, size_t index);

/* What the bridge tells a poller about a page. */
struct r2m_page {
    unsigned index;             /* 0 for the first page */
    const char *url;            /* the URL that answered */
    r2m_page_header_fn *header; /* NULL: the page has no headers (tests) */
    const void *header_ctx;     /* valid only while the page is handled */
};

/* What the poller answers about the next one. */
struct r2m_page_next {
    char url[R2M_PAGE_URL_MAX + 1]; /* absolute URL of the next page; "" = this was the last */
};

/* The first page's URL for cfg's pagination style: cfg->url with the start
 * page number set for page-number pagination; next->url is "" when the
 * first page is cfg->url itself. Errors as r2m_page_param. */
int r2m_page_first(const struct r2m_endpoint_cfg *cfg, struct r2m_page_next *next, char *err,
                   size_t errlen);

/* What the transfers of cfg's endpoint need for its pagination: Link
 * lines collected for link:, and no conditional GET for any paginated
 * endpoint (a 304 for page 1 says nothing about the other pages). */
void r2m_page_http_opts(const struct r2m_endpoint_cfg *cfg, struct r2m_http_opts *out);

/* Where the page after pg is, by cfg's pagination style; next->url is ""
 * when pg was the last. root is pg's parsed body (NULL: none), n_items the
 * number of items pg held.
 *   link:   the rel="next" target of pg's Link header (r2m_page_link);
 *   next:   the URL (string) at paginate.pointer, resolved against pg->url;
 *   cursor: cfg->url with paginate.param set to the value (string or
 *           number) at paginate.pointer;
 *   number: cfg->url with paginate.param = start + index + 1; an empty page
 *           (n_items 0) is the last.
 * A missing, null, false or "" next value ends the list; any other value
 * that is not a string or a number (an object, an array, true) is
 * R2M_E_INVALID: the list is never taken as ending where it cannot be read.
 * Other errors as r2m_page_link, r2m_page_resolve and r2m_page_param. */
int r2m_page_next_url(const struct r2m_endpoint_cfg *cfg, const struct r2m_page *pg,
                      struct r2m_json *root, size_t n_items, struct r2m_page_next *next, char *err,
                      size_t errlen);

/* Finds the rel="next" target in one Link field value (RFC 8288 section 3:
 * several links, several relation types per rel, quoted strings with
 * escapes, commas and semicolons inside quotes, optional whitespace, rel
 * and relation types case-insensitive, the first rel parameter of a link
 * wins). value need not be NUL-terminated.
 * Returns 0 with *url pointing into value and *url_len set, or *url NULL
 * when no link has relation type next. Errors, with err saying what and at
 * which offset (never the header's text): R2M_E_INVALID when the value is
 * not completely parseable (unterminated '<' or quote, garbage between
 * links, control characters) or names two different next targets;
 * R2M_E_TOO_BIG when the next target is over R2M_PAGE_URL_MAX bytes. */
int r2m_page_link_next(const char *value, size_t len, const char **url, size_t *url_len, char *err,
                       size_t errlen);

/* The next page of a page with Link pagination: every Link field line of
 * pg is parsed; rel="next" targets in several lines must agree. The target
 * is resolved against pg->url (r2m_page_resolve). next->url is "" when no
 * link is next. Errors as r2m_page_link_next / r2m_page_resolve; err names the
 * page and its masked URL. */
int r2m_page_link(const struct r2m_page *pg, struct r2m_page_next *next, char *err, size_t errlen);

/* The next page's URL from a (possibly relative) reference found in a page.
 * A reference to another origin is refused (credentials must not leak):
 * R2M_E_INVALID; R2M_E_TOO_BIG when the result is over R2M_PAGE_URL_MAX. */
int r2m_page_resolve(const char *base, const char *ref, struct r2m_page_next *next, char *err,
                     size_t errlen);
/* url with name=value (URL-encoded) set as a query parameter. */
int r2m_page_param(const char *url, const char *name, const char *value, struct r2m_page_next *next,
                   char *err, size_t errlen);

/* url for a log line: no user info, query values replaced by '*', at most
 * outlen - 1 bytes ("..." when cut). Never fails; "?" for an unusable URL. */
void r2m_page_mask_url(const char *url, char *out, size_t outlen);

#endif
