/* test_page.c - next-page URLs: the Link header as real APIs send it,
 * malformed ones, length limits, same-origin resolution, query parameters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r2m/error.h"
#include "r2m/json.h"
#include "r2m/page.h"

/* header callback over a NULL-terminated list of Link field values */
static const char *fields_header(const void *ctx, const char *name, size_t index)
{
    const char *const *f = ctx;
    assert_string_equal(name, "Link");
    for (size_t i = 0; i < index; i++)
        if (!f[i])
            return NULL;
    return f[index];
}

#define GH  "https://api.github.com/repositories/1300192/issues"
#define GL  "https://gitlab.example.com/api/v4/projects/8/issues/8/notes"
#define GLQ "&per_page=3&order_by=created_at&sort=desc&state=opened&labels=bug%2Cux&scope=all"
#define OK  "https://x.okta.com/api/v1/users"

static const struct link_case {
    const char *what;
    const char *base;
    const char *fields[4];
    const char *want; /* "" = no next page */
} good[] = {
    {"GitHub",
     GH,
     {"<" GH "?page=2>; rel=\"next\", <" GH "?page=515>; rel=\"last\""},
     GH "?page=2"},
    {"GitHub, last page",
     GH "?page=515",
     {"<" GH "?page=1>; rel=\"first\", <" GH "?page=514>; rel=\"prev\""},
     ""},
    {"GitLab prev/next/first/last with long queries",
     GL "?page=2" GLQ,
     {"<" GL "?page=1" GLQ ">; rel=\"prev\", <" GL "?page=3" GLQ ">; rel=\"next\", <" GL
      "?page=1" GLQ ">; rel=\"first\", <" GL "?page=9" GLQ ">; rel=\"last\""},
     GL "?page=3" GLQ},
    {"Okta: next and self as separate header fields",
     OK "?limit=2",
     {"<" OK "?limit=2>; rel=\"self\"",
      "<" OK "?after=00ub0oNGTSWTBKOLGLNR&limit=2>; rel=\"next\""},
     OK "?after=00ub0oNGTSWTBKOLGLNR&limit=2"},
    {"Okta, last page: only self", OK "?limit=2", {"<" OK "?limit=2>; rel=\"self\""}, ""},
    {"unquoted rel", "https://h/x", {"</x?p=2>; rel=next"}, "https://h/x?p=2"},
    {"uppercase REL and NEXT", "https://h/x", {"</x?p=2>; REL=\"NEXT\""}, "https://h/x?p=2"},
    {"quoted title with a comma before rel",
     "https://h/x",
     {"</p2>; title=\"a, b\"; rel=\"next\""},
     "https://h/p2"},
    {"commas, semicolons and escaped quotes in quotes",
     "https://h/x",
     {"</p1>; title=\"x; rel=next, <evil>\"; rel=prev, </p2>; title=\"say \\\"hi\\\", ok\"; "
      "rel=\"next\""},
     "https://h/p2"},
    {"several relation types", "https://h/x", {"</p9>; rel=\"next last\""}, "https://h/p9"},
    {"relation types with extra spaces",
     "https://h/x",
     {"</p9>; rel=\"  last \t next \""},
     "https://h/p9"},
    {"escapes inside the rel value", "https://h/x", {"</p2>; rel=\"ne\\xt\""}, "https://h/p2"},
    {"first rel wins", "https://h/x", {"</p2>; rel=prev; rel=next"}, ""},
    {"first rel wins, the other way", "https://h/x", {"</p2>; rel=next; rel=prev"}, "https://h/p2"},
    {"rel after other parameters",
     "https://h/x",
     {"</p2>; type=\"application/json\"; hreflang=en; title*=UTF-8'de'n%c3%a4chste; rel=next"},
     "https://h/p2"},
    {"unquoted media type, valueless parameter",
     "https://h/x",
     {"</p2>; type=application/json; crossorigin; rel=next"},
     "https://h/p2"},
    {"no whitespace at all", "https://h/x", {"</p1>;rel=prev,</p2>;rel=next"}, "https://h/p2"},
    {"whitespace everywhere",
     "https://h/x",
     {"  \t</p2>  ;  rel  =  \"next\"  ,  </p1> ; rel = prev  "},
     "https://h/p2"},
    {"empty list elements", "https://h/x", {", ,</p2>; rel=next,,"}, "https://h/p2"},
    {"not next: nextpage, next-archive",
     "https://h/x",
     {"</a>; rel=nextpage, </b>; rel=next-archive"},
     ""},
    {"the same next twice",
     "https://h/x",
     {"</p2>; rel=next", "</p2>; rel=\"next\""},
     "https://h/p2"},
    {"an empty field", "https://h/x", {"", "</p2>; rel=next"}, "https://h/p2"},
    {"no Link header", "https://h/x", {NULL}, ""},
    {"relative reference", "https://h/a/b?p=1", {"<c?p=2>; rel=next"}, "https://h/a/c?p=2"},
    {"query-only reference", "https://h/a/b?p=1", {"<?p=2>; rel=next"}, "https://h/a/b?p=2"},
};

static void link_headers_as_apis_send_them(void **state)
{
    (void)state;
    static struct r2m_page_next next;
    char err[512];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        const struct link_case *c = &good[i];
        struct r2m_page pg = {1, c->base, fields_header, c->fields};
        err[0] = '\0';
        int r = r2m_page_link(&pg, &next, err, sizeof err);
        if (r || strcmp(next.url, c->want))
            fail_msg("%s: result %d, next \"%s\", want \"%s\" (%s)", c->what, r, next.url, c->want,
                     err);
    }
    /* a page without headers (a test, or file://) has no next page */
    struct r2m_page bare = {0, "https://h/x", NULL, NULL};
    assert_int_equal(r2m_page_link(&bare, &next, err, sizeof err), 0);
    assert_string_equal(next.url, "");
}

static const struct bad_case {
    const char *what;
    const char *fields[3];
    int code;
    const char *says;
} bad[] = {
    {"unterminated <", {"</p2; rel=next"}, R2M_E_INVALID, "unterminated '<'"},
    {"unterminated < after a good link", {"</p1>; rel=prev, </p2"}, R2M_E_INVALID, "unterminated"},
    {"unterminated quote",
     {"</p2>; title=\"a, b; rel=next"},
     R2M_E_INVALID,
     "unterminated quoted string"},
    {"quote ends in a backslash",
     {"</p2>; rel=next; title=\"a\\"},
     R2M_E_INVALID,
     "unterminated quoted string"},
    {"garbage between links",
     {"</p1>; rel=prev garbage, </p2>; rel=next"},
     R2M_E_INVALID,
     "expected ';' or ','"},
    {"garbage before the first link", {"next: </p2>; rel=next"}, R2M_E_INVALID, "expected '<'"},
    {"garbage after a quoted value", {"</p2>; rel=\"next\"x"}, R2M_E_INVALID, "expected ';'"},
    {"two targets in one link", {"</p2> </p3>; rel=next"}, R2M_E_INVALID, "expected ';'"},
    {"parameter without a name", {"</p2>; =next"}, R2M_E_INVALID, "parameter name"},
    {"parameter without a value", {"</p2>; rel="}, R2M_E_INVALID, "value missing"},
    {"control character", {"</p2>; rel=next\x01"}, R2M_E_INVALID, "control character"},
    {"control character in the target",
     {"</p\x7f"
      "2>; rel=next"},
     R2M_E_INVALID,
     "control character"},
    {"two different next links",
     {"</p2>; rel=next, </p3>; rel=next"},
     R2M_E_INVALID,
     "two different rel=\"next\""},
    {"two different next links in two fields",
     {"</p2>; rel=next", "</p3>; rel=\"next last\""},
     R2M_E_INVALID,
     "two different rel=\"next\""},
    {"the second field is malformed", {"</p2>; rel=next", "</p3"}, R2M_E_INVALID, "field line 2"},
    {"unusable next target (with a key)",
     {"<https://h:99999/x?api_key=s3cr3t>; rel=next"},
     R2M_E_INVALID,
     "not a usable URL"},
    {"next link on another origin",
     {"<https://evil.example/p2>; rel=next"},
     R2M_E_INVALID,
     "another origin"},
};

static void malformed_link_headers_fail_the_page(void **state)
{
    (void)state;
    static struct r2m_page_next next;
    char err[512];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const struct bad_case *c = &bad[i];
        struct r2m_page pg = {2, "https://h/items?page=3&api_key=s3cr3t", fields_header, c->fields};
        strcpy(next.url, "stale");
        err[0] = '\0';
        int r = r2m_page_link(&pg, &next, err, sizeof err);
        if (r != c->code || !strstr(err, c->says) || next.url[0])
            fail_msg("%s: result %d, next \"%s\", err \"%s\"; want %d and \"%s\"", c->what, r,
                     next.url, err, c->code, c->says);
        /* the error names the page and its URL, never the key */
        if (!strstr(err, "page 3, https://h/items?page=*&api_key=*)") || strstr(err, "s3cr3t"))
            fail_msg("%s: err \"%s\" does not name the masked page URL", c->what, err);
    }
}

/* "<https://h/" + 'a' * (n - 10) + ">; rel=next": a next target of n bytes */
static char *long_link(size_t n, char **target)
{
    char *v = malloc(n + 32);
    assert_non_null(v);
    int k = sprintf(v, "<https://h/");
    memset(v + k, 'a', n - 10);
    strcpy(v + k + n - 10, ">; rel=next");
    *target = v + 1;
    return v;
}

static void long_next_urls(void **state)
{
    (void)state;
    static struct r2m_page_next next;
    char err[512], *target;
    /* 4 KiB used to be the end of the list; 5 KiB and the limit itself are fine */
    size_t sizes[] = {5 * 1024, R2M_PAGE_URL_MAX};
    for (size_t i = 0; i < 2; i++) {
        char *v = long_link(sizes[i], &target);
        const char *fields[] = {v, NULL};
        struct r2m_page pg = {0, "https://h/x", fields_header, fields};
        assert_int_equal(r2m_page_link(&pg, &next, err, sizeof err), 0);
        assert_int_equal(strlen(next.url), sizes[i]);
        assert_memory_equal(next.url, target, sizes[i]);
        free(v);
    }
    /* one byte over: an error that says so, not "no next page" */
    char *v = long_link(R2M_PAGE_URL_MAX + 1, &target);
    const char *fields[] = {v, NULL};
    struct r2m_page pg = {0, "https://h/x", fields_header, fields};
    assert_int_equal(r2m_page_link(&pg, &next, err, sizeof err), R2M_E_TOO_BIG);
    assert_non_null(strstr(err, "over the limit of 65536"));
    assert_string_equal(next.url, "");
    /* a long link that is not next does not matter */
    memcpy(strstr(v, "rel=next"), "rel=last", 8);
    assert_int_equal(r2m_page_link(&pg, &next, err, sizeof err), 0);
    assert_string_equal(next.url, "");
    free(v);
    /* a short reference that resolves to more than the limit */
    size_t n = R2M_PAGE_URL_MAX;
    char *base = malloc(n + 1);
    memcpy(base, "https://h/", 10);
    memset(base + 10, 'b', n - 10);
    base[n] = '\0';
    assert_int_equal(r2m_page_resolve(base, "?p=2", &next, err, sizeof err), R2M_E_TOO_BIG);
    free(base);
}

static void link_next_points_into_the_value(void **state)
{
    (void)state;
    const char *u;
    size_t n;
    char err[256];
    /* not NUL-terminated: the length bounds the scan */
    const char v[] = "</a>; rel=prev, </b>; rel=next</c>";
    assert_int_equal(r2m_page_link_next(v, 30, &u, &n, err, sizeof err), 0);
    assert_ptr_equal(u, v + 17);
    assert_int_equal(n, 2);
    assert_int_equal(r2m_page_link_next(v, sizeof v - 1, &u, &n, err, sizeof err), R2M_E_INVALID);
    assert_null(u);
    assert_int_equal(r2m_page_link_next("", 0, &u, &n, err, sizeof err), 0);
    assert_null(u);
    /* an empty target is a target (the page itself); NUL is a control character */
    assert_int_equal(r2m_page_link_next("<>; rel=next", 12, &u, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(r2m_page_link_next("<a\0b>; rel=next", 15, &u, &n, err, sizeof err),
                     R2M_E_INVALID);
}

static void next_pages_stay_on_the_same_origin(void **state)
{
    (void)state;
    static struct r2m_page_next n;
    char err[256];
    const char *base = "https://api.example:8443/v1/items?page=1";
    assert_int_equal(r2m_page_resolve(base, "?page=2", &n, err, sizeof err), 0);
    assert_string_equal(n.url, "https://api.example:8443/v1/items?page=2");
    assert_int_equal(r2m_page_resolve(base, "/v1/items?after=x", &n, err, sizeof err), 0);
    assert_string_equal(n.url, "https://api.example:8443/v1/items?after=x");
    assert_int_equal(r2m_page_resolve(base, "https://API.example:8443/v2", &n, err, sizeof err), 0);
    /* credentials must not follow a link to another origin */
    static const char *const foreign[] = {
        "https://evil.example:8443/v1/items", /* host */
        "https://api.example:9443/v1/items",  /* port */
        "http://api.example:8443/v1/items",   /* scheme: https -> http */
        "//evil.example/v1",                  /* scheme-relative */
    };
    for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++) {
        assert_int_equal(r2m_page_resolve(base, foreign[i], &n, err, sizeof err), R2M_E_INVALID);
        assert_non_null(strstr(err, "another origin"));
    }
    /* the default port counts as the same origin */
    assert_int_equal(
        r2m_page_resolve("https://a.example/x", "https://a.example:443/y", &n, err, sizeof err), 0);
}

static void page_parameters_are_encoded(void **state)
{
    (void)state;
    static struct r2m_page_next n;
    char err[256];
    assert_int_equal(
        r2m_page_param("http://h/items?limit=2", "cursor", "a b&c=/+", &n, err, sizeof err), 0);
    assert_string_equal(n.url, "http://h/items?limit=2&cursor=a+b%26c%3d%2f%2b");
    assert_int_equal(r2m_page_param("http://h/items", "page", "2", &n, err, sizeof err), 0);
    assert_string_equal(n.url, "http://h/items?page=2");
}

static void masked_urls_hide_query_values_and_user_info(void **state)
{
    (void)state;
    char out[64];
    r2m_page_mask_url("https://u:pw@h:8443/a/b?page=2&api_key=s3cr3t&flag", out, sizeof out);
    assert_string_equal(out, "https://h:8443/a/b?page=*&api_key=*&flag");
    r2m_page_mask_url("not a url", out, sizeof out);
    assert_string_equal(out, "?");
    r2m_page_mask_url(
        "https://h/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "?k=secret",
        out, 20);
    assert_string_equal(out, "https://h/aaaaaa...");
}

/* ---- pagination styles: r2m_page_first and r2m_page_next_url ---- */

static struct r2m_page_next next_buf;

/* The next page after page `index` (0-based) whose body is `body`. */
static int next_of(const struct r2m_endpoint_cfg *cfg, unsigned index, const char *page_url,
                   const char *body, size_t n_items, char *err, size_t errlen)
{
    struct r2m_json_doc *doc;
    struct r2m_json *root = NULL;
    assert_int_equal(r2m_json_doc_new(&doc, NULL), 0);
    if (body)
        assert_int_equal(r2m_json_parse(doc, body, strlen(body), &root, NULL, 0), 0);
    struct r2m_page pg = {index, page_url, NULL, NULL};
    memset(next_buf.url, 'x', 16); /* must be overwritten, also with "" */
    int r = r2m_page_next_url(cfg, &pg, root, n_items, &next_buf, err, errlen);
    r2m_json_doc_free(doc);
    return r;
}

static void first_page_is_the_url_unless_pages_are_numbered(void **state)
{
    (void)state;
    char err[256] = "";
    struct r2m_endpoint_cfg cfg = {.url = "https://h/items?x=1"};
    struct r2m_page_next first;
    cfg.paginate.kind = R2M_PAGE_CURSOR;
    cfg.paginate.param = "cursor";
    assert_int_equal(r2m_page_first(&cfg, &first, err, sizeof err), 0);
    assert_string_equal(first.url, "");

    cfg.paginate.kind = R2M_PAGE_NUMBER;
    cfg.paginate.param = "page";
    cfg.paginate.start = 0;
    assert_int_equal(r2m_page_first(&cfg, &first, err, sizeof err), 0);
    assert_string_equal(first.url, "https://h/items?x=1&page=0");
    cfg.paginate.start = 1;
    assert_int_equal(r2m_page_first(&cfg, &first, err, sizeof err), 0);
    assert_string_equal(first.url, "https://h/items?x=1&page=1");

    cfg.url = "not a url";
    assert_int_equal(r2m_page_first(&cfg, &first, err, sizeof err), R2M_E_INVALID);
    assert_non_null(strstr(err, "cannot build the next page URL"));
}

static void body_pointer_pages_resolve_against_the_page(void **state)
{
    (void)state;
    char err[512] = "";
    struct r2m_endpoint_cfg cfg = {
        .url = "https://h/api/items",
        .paginate = {.kind = R2M_PAGE_NEXT, .pointer = "/links/next"},
    };
    assert_int_equal(next_of(&cfg, 1, "https://h/api/items?p=2",
                             "{\"links\":{\"next\":\"items?p=3\"}}", 5, err, sizeof err),
                     0);
    assert_string_equal(next_buf.url, "https://h/api/items?p=3");
    /* missing, null, false and "" end the list */
    const char *ends[] = {"{}", "{\"links\":{\"next\":null}}", "{\"links\":{\"next\":false}}",
                          "{\"links\":{\"next\":\"\"}}"};
    for (size_t i = 0; i < sizeof ends / sizeof *ends; i++) {
        assert_int_equal(next_of(&cfg, 0, cfg.url, ends[i], 5, err, sizeof err), 0);
        assert_string_equal(next_buf.url, "");
    }
    /* another origin is refused, never followed with credentials */
    assert_int_equal(
        next_of(&cfg, 0, cfg.url, "{\"links\":{\"next\":\"https://evil/x\"}}", 5, err, sizeof err),
        R2M_E_INVALID);
    assert_non_null(strstr(err, "another origin"));
}

static void unreadable_next_values_fail_instead_of_ending_the_list(void **state)
{
    (void)state;
    struct r2m_endpoint_cfg cfg = {
        .url = "https://h/items",
        .paginate = {.kind = R2M_PAGE_CURSOR, .pointer = "/next", .param = "c"},
    };
    char err[512] = "";
    static const struct {
        const char *body, *what;
    } bad[] = {{"{\"next\":{\"href\":\"x\"}}", "is an object"},
               {"{\"next\":[1]}", "is an array"},
               {"{\"next\":true}", "is true"},
               {"{\"next\":\"a\\u0000b\"}", "contains a NUL"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        assert_int_equal(next_of(&cfg, 2, cfg.url, bad[i].body, 5, err, sizeof err), R2M_E_INVALID);
        assert_non_null(strstr(err, bad[i].what));
        assert_non_null(strstr(err, "(page 3)"));
        assert_string_equal(next_buf.url, "");
    }
}

static void cursors_and_page_numbers_go_into_the_configured_url(void **state)
{
    (void)state;
    char err[512] = "";
    struct r2m_endpoint_cfg cfg = {
        .url = "https://h/items?limit=2",
        .paginate = {.kind = R2M_PAGE_CURSOR, .pointer = "/meta/cursor", .param = "after"},
    };
    /* a cursor is set on the configured URL, not the page's, and encoded */
    assert_int_equal(next_of(&cfg, 4, "https://h/items?limit=2&after=old",
                             "{\"meta\":{\"cursor\":\"a b&c\"}}", 2, err, sizeof err),
                     0);
    assert_string_equal(next_buf.url, "https://h/items?limit=2&after=a+b%26c");
    assert_int_equal(next_of(&cfg, 0, cfg.url, "{\"meta\":{\"cursor\":42}}", 2, err, sizeof err),
                     0);
    assert_string_equal(next_buf.url, "https://h/items?limit=2&after=42");

    cfg.paginate.kind = R2M_PAGE_NUMBER;
    cfg.paginate.pointer = NULL;
    cfg.paginate.param = "page";
    cfg.paginate.start = 1;
    assert_int_equal(next_of(&cfg, 0, cfg.url, NULL, 2, err, sizeof err), 0);
    assert_string_equal(next_buf.url, "https://h/items?limit=2&page=2");
    assert_int_equal(next_of(&cfg, 6, cfg.url, NULL, 1, err, sizeof err), 0);
    assert_string_equal(next_buf.url, "https://h/items?limit=2&page=8");
    /* an empty page is the last */
    assert_int_equal(next_of(&cfg, 7, cfg.url, NULL, 0, err, sizeof err), 0);
    assert_string_equal(next_buf.url, "");
}

static void link_pages_follow_the_header_and_no_pagination_has_no_next(void **state)
{
    (void)state;
    char err[512] = "";
    struct r2m_endpoint_cfg cfg = {.url = "https://h/items"};
    cfg.paginate.kind = R2M_PAGE_LINK;
    const char *fields[] = {"</items?page=2>; rel=\"next\"", NULL};
    struct r2m_page pg = {0, "https://h/items", fields_header, fields};
    assert_int_equal(r2m_page_next_url(&cfg, &pg, NULL, 0, &next_buf, err, sizeof err), 0);
    assert_string_equal(next_buf.url, "https://h/items?page=2");

    cfg.paginate.kind = R2M_PAGE_NONE;
    assert_int_equal(r2m_page_next_url(&cfg, &pg, NULL, 3, &next_buf, err, sizeof err), 0);
    assert_string_equal(next_buf.url, "");
}

/* Link lines are collected for link: only; a paginated endpoint never
 * makes conditional requests, a single document does. */
static void transfers_get_the_options_their_pagination_needs(void **state)
{
    (void)state;
    static const struct {
        int kind, link_headers, conditional;
    } cases[] = {{R2M_PAGE_NONE, 0, 1},
                 {R2M_PAGE_LINK, 1, 0},
                 {R2M_PAGE_NEXT, 0, 0},
                 {R2M_PAGE_CURSOR, 0, 0},
                 {R2M_PAGE_NUMBER, 0, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct r2m_endpoint_cfg cfg = {.url = "https://h/", .paginate = {.kind = cases[i].kind}};
        struct r2m_http_opts o = {-1, -1};
        r2m_page_http_opts(&cfg, &o);
        assert_int_equal(o.link_headers, cases[i].link_headers);
        assert_int_equal(o.conditional, cases[i].conditional);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(link_headers_as_apis_send_them),
        cmocka_unit_test(malformed_link_headers_fail_the_page),
        cmocka_unit_test(long_next_urls),
        cmocka_unit_test(link_next_points_into_the_value),
        cmocka_unit_test(next_pages_stay_on_the_same_origin),
        cmocka_unit_test(page_parameters_are_encoded),
        cmocka_unit_test(masked_urls_hide_query_values_and_user_info),
        cmocka_unit_test(first_page_is_the_url_unless_pages_are_numbered),
        cmocka_unit_test(body_pointer_pages_resolve_against_the_page),
        cmocka_unit_test(unreadable_next_values_fail_instead_of_ending_the_list),
        cmocka_unit_test(cursors_and_page_numbers_go_into_the_configured_url),
        cmocka_unit_test(link_pages_follow_the_header_and_no_pagination_has_no_next),
        cmocka_unit_test(transfers_get_the_options_their_pagination_needs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
