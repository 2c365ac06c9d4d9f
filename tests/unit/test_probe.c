/* test_probe.c - what `rest2mqtt probe` concludes from sample answers.
 *
 * Each case hands the analysis a few documents as an API would answer them
 * on consecutive polls and states what a person writing the endpoint by
 * hand would choose: where the items are, which member names them, which
 * fields change on every poll, whether the API paginates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "r2m/buf.h"
#include "r2m/config.h"
#include "r2m/diag.h"
#include "r2m/error.h"
#include "r2m/json.h"
#include "r2m/probe.h"

/* Parses up to 4 sample texts and analyses them. */
struct run {
    struct r2m_json_doc *doc[4];
    struct r2m_probe_sample s[4];
    struct r2m_probe_result res;
};

static struct run *analyse(const char *const *texts, size_t n, const char *link)
{
    struct run *r = calloc(1, sizeof *r);
    assert_non_null(r);
    char err[256];
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(r2m_json_doc_new(&r->doc[i], NULL), 0);
        if (r2m_json_parse(r->doc[i], texts[i], strlen(texts[i]), &r->s[i].root, err, sizeof err))
            fail_msg("sample %zu: %s", i, err);
        r->s[i].link = link;
    }
    assert_int_equal(r2m_probe_analyse(r->s, n, &r->res, err, sizeof err), 0);
    return r;
}

static void run_free(struct run *r)
{
    for (size_t i = 0; i < 4; i++)
        r2m_json_doc_free(r->doc[i]);
    free(r);
}

/* A root array of objects: items "", key /id, nothing volatile. */
static void root_array_with_id(void **state)
{
    (void)state;
    const char *t[] = {"[{\"id\":1,\"title\":\"a\",\"userId\":1},{\"id\":2,\"title\":\"b\","
                       "\"userId\":1}]",
                       "[{\"id\":2,\"title\":\"b\",\"userId\":1},{\"id\":1,\"title\":\"a\","
                       "\"userId\":1}]"};
    struct run *r = analyse(t, 2, NULL);
    assert_true(r->res.collection);
    assert_string_equal(r->res.items, "");
    assert_int_equal(r->res.n_items, 2);
    assert_int_equal(r->res.n_key, 1);
    assert_string_equal(r->res.key[0], "/id");
    assert_int_equal(r->res.n_vol, 0);
    assert_int_equal(r->res.paginate, R2M_PROBE_PAGE_NONE);
    run_free(r);
}

/* The list below /data/items, an id-like name preferred over another
 * unique member, and a timestamp changing in every item of every sample. */
static void nested_items_volatile_timestamp(void **state)
{
    (void)state;
    const char *t[] = {
        "{\"meta\":{\"n\":3},\"data\":{\"items\":[{\"name\":\"x\",\"sku\":\"A1\",\"seenAt\":\"t1\","
        "\"qty\":1},{\"name\":\"y\",\"sku\":\"B2\",\"seenAt\":\"t1\",\"qty\":2},{\"name\":\"z\","
        "\"sku\":\"C3\",\"seenAt\":\"t1\",\"qty\":2}]}}",
        "{\"meta\":{\"n\":3},\"data\":{\"items\":[{\"name\":\"x\",\"sku\":\"A1\",\"seenAt\":\"t2\","
        "\"qty\":1},{\"name\":\"y\",\"sku\":\"B2\",\"seenAt\":\"t2\",\"qty\":5},{\"name\":\"z\","
        "\"sku\":\"C3\",\"seenAt\":\"t2\",\"qty\":2}]}}",
        "{\"meta\":{\"n\":3},\"data\":{\"items\":[{\"name\":\"x\",\"sku\":\"A1\",\"seenAt\":\"t3\","
        "\"qty\":1},{\"name\":\"y\",\"sku\":\"B2\",\"seenAt\":\"t3\",\"qty\":5},{\"name\":\"z\","
        "\"sku\":\"C3\",\"seenAt\":\"t3\",\"qty\":2}]}}"};
    struct run *r = analyse(t, 3, NULL);
    assert_true(r->res.collection);
    assert_string_equal(r->res.items, "/data/items");
    assert_int_equal(r->res.n_key, 1);
    assert_string_equal(r->res.key[0], "/sku"); /* both id-like; the shorter name wins */
    assert_int_equal(r->res.n_vol, 1);          /* qty changed in one item only */
    assert_string_equal(r->res.vol[0].pattern, "/seenAt");
    assert_string_equal(r->res.vol[0].shown, "/data/items/*/seenAt");
    assert_int_equal(r->res.vol[0].min_pct, 100);
    assert_int_equal(r->res.vol[0].changed_in, 2);
    run_free(r);
}

/* No single member is unique: the smallest combination is. A member that
 * is unique but changes every poll (a request id) is no key. */
static void composite_key(void **state)
{
    (void)state;
    const char *t[] = {"[{\"wh\":\"a\",\"sku\":1,\"req\":\"r1\"},{\"wh\":\"a\",\"sku\":2,\"req\":"
                       "\"r2\"},{\"wh\":\"b\",\"sku\":1,\"req\":\"r3\"}]",
                       "[{\"wh\":\"a\",\"sku\":1,\"req\":\"r4\"},{\"wh\":\"a\",\"sku\":2,\"req\":"
                       "\"r5\"},{\"wh\":\"b\",\"sku\":1,\"req\":\"r6\"}]"};
    struct run *r = analyse(t, 2, NULL);
    assert_true(r->res.collection);
    assert_int_equal(r->res.n_key, 2);
    assert_string_equal(r->res.key[0], "/sku");
    assert_string_equal(r->res.key[1], "/wh");
    assert_int_equal(r->res.n_vol, 1);
    assert_string_equal(r->res.vol[0].pattern, "/req");
    run_free(r);
}

/* An object whose members are the items needs no key. */
static void object_of_items(void **state)
{
    (void)state;
    const char *t[] = {"{\"a1\":{\"v\":1},\"b2\":{\"v\":2},\"c3\":{\"v\":3}}"};
    struct run *r = analyse(t, 1, NULL);
    assert_true(r->res.collection);
    assert_true(r->res.items_object);
    assert_string_equal(r->res.items, "");
    assert_int_equal(r->res.n_key, 0);
    run_free(r);
}

/* A document with a small list in it stays a document; its volatile
 * member and the elements' changing field are found. */
static void document_volatile(void **state)
{
    (void)state;
    const char *t[] = {"{\"flight\":\"LH123\",\"status\":\"boarding\",\"gate\":\"A1\","
                       "\"fetchedAt\":1,\"stops\":[{\"city\":\"FRA\",\"eta\":10}]}",
                       "{\"flight\":\"LH123\",\"status\":\"boarding\",\"gate\":\"A1\","
                       "\"fetchedAt\":2,\"stops\":[{\"city\":\"FRA\",\"eta\":11}]}",
                       "{\"flight\":\"LH123\",\"status\":\"boarding\",\"gate\":\"A1\","
                       "\"fetchedAt\":3,\"stops\":[{\"city\":\"FRA\",\"eta\":12}]}"};
    struct run *r = analyse(t, 3, NULL);
    assert_false(r->res.collection);
    assert_int_equal(r->res.n_vol, 2);
    assert_string_equal(r->res.vol[0].pattern, "/fetchedAt");
    assert_string_equal(r->res.vol[1].pattern, "/stops/*/eta");
    run_free(r);
}

/* Items without any unique member are watched as one document. */
static void no_key_is_a_document(void **state)
{
    (void)state;
    const char *t[] = {"[{\"v\":1},{\"v\":1},{\"v\":2}]"};
    struct run *r = analyse(t, 1, NULL);
    assert_false(r->res.collection);
    assert_false(r->res.key_found);
    run_free(r);
}

static void pagination(void **state)
{
    (void)state;
    const char *list = "[{\"id\":1},{\"id\":2}]";
    struct run *r = analyse(&list, 1,
                            "<http://h/x?_page=2>; rel=\"next\", <http://h/x?_page=9>; "
                            "rel=\"last\"");
    assert_int_equal(r->res.paginate, R2M_PROBE_PAGE_LINK);
    run_free(r);
    const char *next[] = {"{\"items\":[{\"id\":1},{\"id\":2}],\"links\":{\"next\":\"/x?page=2\"}}"};
    r = analyse(next, 1, "<http://h/x>; rel=\"self\"");
    assert_int_equal(r->res.paginate, R2M_PROBE_PAGE_NEXT);
    assert_string_equal(r->res.page_ptr, "/links/next");
    run_free(r);
    /* a document's "next" is data, not a page: paginate is for collections */
    const char *doc[] = {"{\"flight\":\"LH1\",\"next\":\"Paris\",\"links\":{\"next\":\"/x\"}}"};
    r = analyse(doc, 1, "<http://h/y>; rel=\"next\"");
    assert_false(r->res.collection);
    assert_int_equal(r->res.paginate, R2M_PROBE_PAGE_NONE);
    run_free(r);
    const char *cur[] = {"{\"data\":[{\"id\":1},{\"id\":2}],\"next_cursor\":\"abc\"}"};
    r = analyse(cur, 1, NULL);
    assert_int_equal(r->res.paginate, R2M_PROBE_PAGE_CURSOR);
    assert_string_equal(r->res.page_ptr, "/next_cursor");
    assert_string_equal(r->res.page_param, "cursor");
    run_free(r);
}

/* The entry: the config's own keys, secrets as given by the caller, data
 * quoted so that no value can end a YAML line or start ${env:}. */
static void render_entry(void **state)
{
    (void)state;
    const char *t[] = {"{\"items\":[{\"id\":\"${x}\",\"at\":1},{\"id\":\"b\",\"at\":1}]}",
                       "{\"items\":[{\"id\":\"${x}\",\"at\":2},{\"id\":\"b\",\"at\":2}]}"};
    struct run *r = analyse(t, 2, NULL);
    r->s[0].etag = "\"e\"";
    r->res.etag = 1;
    const char *hdr[] = {"X-Api-Key", "${env:K}"};
    struct r2m_probe_request q = {.name = "things",
                                  .url = "http://h/things",
                                  .method = "GET",
                                  .headers = hdr,
                                  .n_headers = 1};
    struct r2m_buf b;
    r2m_buf_init(&b, 1 << 20);
    assert_int_equal(r2m_probe_render(&r->res, &q, &b), 0);
    const char *want[] = {"  - name: things\n",
                          "    url: \"http://h/things\"\n",
                          "      \"X-Api-Key\": \"${env:K}\"\n",
                          "    items: \"/items\"\n",
                          "    key: \"/id\"\n",
                          "    ignore:\n      - \"/at\"",
                          "/items/*/at changed in 100% of items in 1 of 1 samples",
                          "If-None-Match"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        if (!strstr(b.data, want[i]))
            fail_msg("entry lacks \"%s\":\n%s", want[i], b.data);
    assert_null(strstr(b.data, "method:")); /* GET is the default */
    r2m_buf_free(&b);
    run_free(r);
}

static void names(void **state)
{
    (void)state;
    char n[65];
    r2m_probe_name("http://127.0.0.1:3000/posts?_page=1", n);
    assert_string_equal(n, "posts");
    r2m_probe_name("https://api.example/v2/Flights/12345", n);
    assert_string_equal(n, "flights");
    r2m_probe_name("http://h/", n);
    assert_string_equal(n, "probe");
    r2m_probe_name("http://h/a%20b.json", n);
    assert_string_equal(n, "a-20b-json");
}

/* The bridge compares key values by their text, so "1" and 1 are one key
 * there: a member holding both is not unique, whatever JSON says. */
static void key_string_and_number_collide(void **state)
{
    (void)state;
    const char *t[] = {
        "[{\"id\":1,\"sku\":\"a\"},{\"id\":\"1\",\"sku\":\"b\"},{\"id\":2,\"sku\":\"c\"}]",
        "[{\"id\":1,\"sku\":\"a\"},{\"id\":\"1\",\"sku\":\"b\"},{\"id\":2,\"sku\":\"c\"}]"};
    struct run *r = analyse(t, 2, NULL);
    assert_true(r->res.collection);
    assert_int_equal(r->res.n_key, 1);
    assert_string_equal(r->res.key[0], "/sku");
    run_free(r);
}

/* The bridge follows next pages on the endpoint's origin only (a poll
 * with a foreign next page fails): such pagination is not proposed, and
 * the entry says why. Relative and same-origin links still are. Returns
 * the paginate kind, 0 when refused for its origin, -1 for none. */
static int paginate_at(const char *url, const char *link, const char *body)
{
    struct run *r = calloc(1, sizeof *r);
    assert_non_null(r);
    char err[256];
    assert_int_equal(r2m_json_doc_new(&r->doc[0], NULL), 0);
    assert_int_equal(r2m_json_parse(r->doc[0], body, strlen(body), &r->s[0].root, err, sizeof err),
                     0);
    r->s[0].url = url;
    r->s[0].link = link;
    assert_int_equal(r2m_probe_analyse(r->s, 1, &r->res, err, sizeof err), 0);
    int p = r->res.paginate ? r->res.paginate : r->res.page_foreign[0] ? 0 : -1;
    if (!p) { /* refused for its origin: the entry says so */
        struct r2m_buf b;
        r2m_buf_init(&b, 1 << 20);
        struct r2m_probe_request q = {.name = "p", .url = url};
        assert_int_equal(r2m_probe_render(&r->res, &q, &b), 0);
        assert_non_null(
            strstr(b.data, "the next page is on another origin (http://evil.example:80)"));
        r2m_buf_free(&b);
    }
    run_free(r);
    return p;
}

static void pagination_other_origin(void **state)
{
    (void)state;
    const char *list = "{\"data\":[{\"id\":1},{\"id\":2}]}";
    const char *base = "http://127.0.0.1:8080/x";
    assert_int_equal(paginate_at(base, "<http://evil.example/x?p=2>; rel=\"next\"", list), 0);
    assert_int_equal(paginate_at(base, "<//evil.example/x?p=2>; rel=\"next\"", list), 0);
    assert_int_equal(paginate_at(base, "<?p=2>; rel=\"next\"", list), R2M_PROBE_PAGE_LINK);
    assert_int_equal(paginate_at(base, "<x?p=2>; rel=\"next\"", list), R2M_PROBE_PAGE_LINK);
    assert_int_equal(paginate_at(base, "<HTTP://127.0.0.1:8080/x?p=2>; rel=\"next\"", list),
                     R2M_PROBE_PAGE_LINK);
    assert_int_equal(
        paginate_at(base, NULL,
                    "{\"data\":[{\"id\":1},{\"id\":2}],\"next\":\"http://evil.example/2\"}"),
        0);
    /* a next URL of another scheme is neither a page to follow nor a cursor */
    assert_int_equal(
        paginate_at(base, NULL, "{\"data\":[{\"id\":1},{\"id\":2}],\"next\":\"ftp://h/2\"}"), -1);
    assert_int_equal(paginate_at("http://h/x", NULL,
                                 "{\"data\":[{\"id\":1},{\"id\":2}],\"next\":\"http://h:80/2\"}"),
                     R2M_PROBE_PAGE_NEXT);
}

/* ---- property: every entry passes the config parser, meaning what it says */

/* Member names and strings an API may send that YAML or JSON Pointer treat
 * specially: separators, indicators, booleans, ${, line and paragraph
 * separators (YAML line breaks), DEL, C1 controls, U+FFFE, astral. */
static const char *const hostile[] = {"id",
                                      "Id",
                                      "_id",
                                      "name",
                                      "a/b",
                                      "~",
                                      "~1",
                                      "*",
                                      "",
                                      "x: y",
                                      "#c",
                                      "yes",
                                      "no",
                                      "null",
                                      "&a",
                                      "*x",
                                      "\xc3\xbcn\xc3\xaf",
                                      ("a\xe2\x80\xa8"
                                       "b"), /* split: \xa8b would be one escape */
                                      "c\xe2\x80\xa9",
                                      "\x7f",
                                      "n\xc2\x85",
                                      "\xc2\x9f",
                                      "${env:X}",
                                      "$",
                                      " ",
                                      "\"",
                                      "\\",
                                      "next",
                                      "nextUrl",
                                      "next_cursor",
                                      "a\tb",
                                      "\xef\xbf\xbe",
                                      "\xf0\x9f\x98\x80",
                                      "seenAt",
                                      "- x",
                                      "? y"};
#define N_HOSTILE (sizeof hostile / sizeof *hostile)

static unsigned rnd(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return (*seed >> 16) & 0x7fff;
}

static void gen_value(struct r2m_buf *b, unsigned *seed, int depth, unsigned sample);

static void gen_object(struct r2m_buf *b, unsigned *seed, int depth, unsigned sample, unsigned id)
{
    unsigned n = rnd(seed) % 5;
    int used[N_HOSTILE] = {0};
    assert_int_equal(r2m_buf_putc(b, '{'), 0);
    int first = 1;
    if (id) {
        assert_int_equal(r2m_buf_printf(b, "\"id\":%u", id), 0);
        used[0] = 1;
        first = 0;
    }
    for (unsigned i = 0; i < n; i++) {
        unsigned k = rnd(seed) % N_HOSTILE;
        if (used[k])
            continue;
        used[k] = 1;
        assert_int_equal(r2m_buf_puts(b, first ? "" : ","), 0);
        first = 0;
        assert_int_equal(r2m_json_quote(b, hostile[k], strlen(hostile[k])), 0);
        assert_int_equal(r2m_buf_putc(b, ':'), 0);
        gen_value(b, seed, depth + 1, sample);
    }
    assert_int_equal(r2m_buf_putc(b, '}'), 0);
}

static void gen_value(struct r2m_buf *b, unsigned *seed, int depth, unsigned sample)
{
    unsigned k = rnd(seed) % (depth > 3 ? 5 : 8);
    const char *s = hostile[rnd(seed) % N_HOSTILE];
    switch (k) {
    case 0:
        assert_int_equal(r2m_buf_printf(b, "%u", rnd(seed) % 3), 0);
        break;
    case 1: /* changes on every poll */
        assert_int_equal(r2m_buf_printf(b, "\"t%u-%u\"", sample, rnd(seed)), 0);
        break;
    case 2:
        assert_int_equal(r2m_json_quote(b, s, strlen(s)), 0);
        break;
    case 3:
        assert_int_equal(r2m_buf_puts(b, rnd(seed) % 2 ? "\"1\"" : "null"), 0);
        break;
    case 4:
        assert_int_equal(r2m_buf_puts(b, "[]"), 0);
        break;
    case 5:
    case 6: {
        unsigned n = rnd(seed) % 5;
        assert_int_equal(r2m_buf_putc(b, '['), 0);
        for (unsigned i = 0; i < n; i++) {
            assert_int_equal(r2m_buf_puts(b, i ? "," : ""), 0);
            gen_object(b, seed, depth + 1, sample, rnd(seed) % 2 ? i + 1 : 0);
        }
        assert_int_equal(r2m_buf_putc(b, ']'), 0);
        break;
    }
    default:
        gen_object(b, seed, depth + 1, sample, 0);
    }
}

static int same_str(const char *a, const char *b)
{
    return a && b && !strcmp(a, b);
}

/* One generated API polled three times (same shape, values drifting): the
 * rendered entry must parse as an endpoint whose items, key, ignore and
 * paginate pointers are exactly the ones the analysis chose. */
static void check_generated(unsigned seed0)
{
    char *texts[3];
    for (unsigned s = 0; s < 3; s++) {
        unsigned seed = seed0;
        struct r2m_buf b;
        r2m_buf_init(&b, 1 << 20);
        gen_value(&b, &seed, 0, s);
        texts[s] = strdup(b.data);
        r2m_buf_free(&b);
    }
    struct run *r = analyse((const char *const *)texts, 3, NULL);
    /* the URL (and so the comment naming it) may hold what YAML breaks on */
    struct r2m_probe_request q = {.name = "gen",
                                  .url = "file:///tmp/a\xe2\x80\xa8"
                                         "b\x7f.json",
                                  .comment = "  # rest2mqtt probe: GET file:///tmp/a\xe2\x80\xa8"
                                             "  url: x\xc2\x85y\n",
                                  .timeout_ms = 1500,
                                  .max_body = 1048576};
    struct r2m_buf y;
    r2m_buf_init(&y, 1 << 22);
    assert_int_equal(r2m_buf_puts(&y, "endpoints:\n"), 0);
    assert_int_equal(r2m_probe_render(&r->res, &q, &y), 0);
    struct r2m_config *cfg = NULL;
    struct r2m_diag diag = {0};
    if (r2m_config_parse("probe entry", y.data, y.len, &cfg, &diag))
        fail_msg("seed %u: entry refused (%s):\n%s\nsample: %s", seed0,
                 diag.n ? diag.lines[0] : "?", y.data, texts[0]);
    const struct r2m_endpoint_cfg *e = &cfg->endpoints[0];
    int ok = r->res.collection ? same_str(e->items, r->res.items) : e->items == NULL;
    ok = ok && e->n_key == (r->res.collection ? r->res.n_key : 0);
    for (size_t i = 0; ok && i < e->n_key; i++)
        ok = same_str(e->key[i], r->res.key[i]);
    ok = ok && e->timeout_ms == 1500 && e->max_body == 1048576; /* what the probe needed */
    ok = ok && e->n_ignore == r->res.n_vol;
    for (size_t i = 0; ok && i < e->n_ignore; i++)
        ok = same_str(e->ignore[i], r->res.vol[i].pattern);
    ok = ok && (r->res.paginate == R2M_PROBE_PAGE_NONE || r->res.paginate == R2M_PROBE_PAGE_LINK ||
                same_str(e->paginate.pointer, r->res.page_ptr));
    if (!ok)
        fail_msg("seed %u: the entry means something else than the analysis:\n%s", seed0, y.data);
    r2m_config_free(cfg);
    r2m_diag_free(&diag);
    r2m_buf_free(&y);
    run_free(r);
    for (unsigned s = 0; s < 3; s++)
        free(texts[s]);
}

static void generated_entries_pass_check(void **state)
{
    (void)state;
    /* a name from the URL ("http://h/null") the config must read as a name */
    static const char *const names[] = {"null", "no", "1e3", "-x", "ok"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        struct r2m_probe_result res = {.n_samples = 1};
        struct r2m_probe_request q = {.name = names[i], .url = "http://h/x"};
        struct r2m_buf y;
        r2m_buf_init(&y, 1 << 16);
        assert_int_equal(r2m_buf_puts(&y, "endpoints:\n"), 0);
        assert_int_equal(r2m_probe_render(&res, &q, &y), 0);
        struct r2m_config *cfg = NULL;
        struct r2m_diag diag = {0};
        if (r2m_config_parse("probe entry", y.data, y.len, &cfg, &diag))
            fail_msg("name %s: entry refused (%s):\n%s", names[i], diag.n ? diag.lines[0] : "?",
                     y.data);
        assert_string_equal(cfg->endpoints[0].name, names[i]);
        r2m_config_free(cfg);
        r2m_diag_free(&diag);
        r2m_buf_free(&y);
    }
    for (unsigned seed = 1; seed <= 30000; seed++)
        check_generated(seed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(root_array_with_id),
        cmocka_unit_test(nested_items_volatile_timestamp),
        cmocka_unit_test(composite_key),
        cmocka_unit_test(object_of_items),
        cmocka_unit_test(document_volatile),
        cmocka_unit_test(no_key_is_a_document),
        cmocka_unit_test(pagination),
        cmocka_unit_test(render_entry),
        cmocka_unit_test(names),
        cmocka_unit_test(pagination_other_origin),
        cmocka_unit_test(key_string_and_number_collide),
        cmocka_unit_test(generated_entries_pass_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
