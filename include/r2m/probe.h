/* r2m/probe.h - guessing an endpoint's configuration from sample answers.
 *
 * `rest2mqtt probe URL` fetches an API a few times and hands the parsed
 * samples here. This module finds the collection (the array of objects, or
 * object of objects, that holds most of the document), the key (the member,
 * or smallest combination of members, present, scalar and unique in every
 * item of every sample, id-like names first), the volatile fields (members
 * that changed between samples in nearly every item, or in the document),
 * pagination (a Link rel="next" header, a next URL or a cursor member) and
 * validator support (ETag, Last-Modified), and renders a commented YAML
 * endpoint entry in the configuration's own vocabulary.
 * Pure: no I/O, no globals; the caller owns the samples' trees. */
#ifndef R2M_PROBE_H
#define R2M_PROBE_H

#include <stddef.h>

#include "r2m/buf.h"
#include "r2m/json.h"

#define R2M_PROBE_MAX_SAMPLES 16
#define R2M_PROBE_MAX_KEY     3   /* members in a composite key */
#define R2M_PROBE_MAX_IGNORE  32  /* volatile patterns reported */
#define R2M_PROBE_PTR_MAX     512 /* longest pointer proposed */

/* One answer of the API. root is owned by the caller and must stay valid
 * while the analysis is used; the header values may be NULL. */
struct r2m_probe_sample {
    struct r2m_json *root;
    const char *url;  /* the URL requested (expanded); NULL: next-page origins not checked */
    const char *link; /* the Link field value(s), joined with ", " */
    const char *etag;
    const char *last_modified;
};

struct r2m_probe_volatile {
    char pattern[R2M_PROBE_PTR_MAX]; /* inside the item (collections) or the document */
    char shown[R2M_PROBE_PTR_MAX];   /* in the document, for the explanation */
    unsigned min_pct;                /* smallest share of instances changed in a transition */
    unsigned changed_in;             /* transitions in which it changed */
};

enum r2m_probe_paginate {
    R2M_PROBE_PAGE_NONE = 0,
    R2M_PROBE_PAGE_LINK,   /* Link: <...>; rel="next" */
    R2M_PROBE_PAGE_NEXT,   /* a next URL in the body at pointer */
    R2M_PROBE_PAGE_CURSOR, /* a cursor in the body at pointer; param a guess */
};

/* What the samples showed. */
struct r2m_probe_result {
    size_t n_samples;
    int collection;                                 /* 0: a document endpoint */
    char items[R2M_PROBE_PTR_MAX];                  /* "" = the document is the list */
    int items_object;                               /* the items are an object's members */
    size_t n_items;                                 /* in the first sample */
    unsigned items_pct;                             /* share of the document's values they hold */
    char key[R2M_PROBE_MAX_KEY][R2M_PROBE_PTR_MAX]; /* inside an item */
    size_t n_key;                                   /* 0 with items_object: member names */
    int key_found;                                  /* 0: no key qualified (the entry says so) */
    struct r2m_probe_volatile vol[R2M_PROBE_MAX_IGNORE];
    size_t n_vol;
    size_t n_transitions; /* n_samples - 1 */
    int paginate;         /* enum r2m_probe_paginate */
    char page_ptr[R2M_PROBE_PTR_MAX];
    char page_param[64];
    char page_foreign[R2M_PROBE_PTR_MAX]; /* a next page on this other origin: no paginate */
    int etag, last_modified;              /* samples that carried them */
};

/* Analyses n (1..R2M_PROBE_MAX_SAMPLES) samples of one endpoint into *out.
 * Errors: R2M_E_INVALID (no samples, too many) with a message in err. A
 * collection whose pointer is missing in a later sample, or whose items
 * have no common key, is still reported (key_found 0) so the caller can
 * explain; the analysis itself never fails on the data. */
int r2m_probe_analyse(const struct r2m_probe_sample *s, size_t n, struct r2m_probe_result *out,
                      char *err, size_t errlen);

/* What the entry should say about the request itself. Values are written
 * as given (they may hold ${env:...}); secret ones were already replaced
 * by references by the caller. Headers are name/value pairs. */
struct r2m_probe_request {
    const char *name; /* endpoint name */
    const char *url;
    const char *method; /* NULL or "GET": not written */
    const char *body;
    const char *const *headers; /* 2 * n_headers strings */
    size_t n_headers;
    const char *const *auth; /* key/value pairs of the auth mapping, or NULL */
    size_t n_auth;
    const char *comment;         /* extra comment lines (each starting "# "), or NULL */
    long long timeout_ms;        /* > 0: written (the probe needed it, so will the bridge) */
    unsigned long long max_body; /* > 0: written */
};

/* Appends the commented YAML entry (a list item indented by two spaces, to
 * go under `endpoints:`) to out. R2M_E_TOO_BIG when out's ceiling is hit. */
int r2m_probe_render(const struct r2m_probe_result *res, const struct r2m_probe_request *req,
                     struct r2m_buf *out);

/* An endpoint name ([a-z0-9_-], at most 64) from the URL's last path
 * segment, "probe" when there is none. out has room for 65 bytes. */
void r2m_probe_name(const char *url, char out[65]);

/* Appends the JSON Pointer segment for member name s[0..n) (~0, ~1). */
int r2m_probe_pointer_segment(struct r2m_buf *out, const char *s, size_t n);

#endif
