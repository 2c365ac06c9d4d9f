/* test_json.c - parsing, canonical form, numbers, pointers, fingerprints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <xxhash.h>

#include "r2m/buf.h"
#include "r2m/error.h"
#include "r2m/json.h"

/* One doc per test, created by the group-less setup below. */
struct fixture {
    struct r2m_json_doc *doc;
    struct r2m_buf out;
    char err[256];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f || r2m_json_doc_new(&f->doc, NULL))
        return -1;
    r2m_buf_init(&f->out, 64 * 1024 * 1024);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    r2m_json_doc_free(f->doc);
    r2m_buf_free(&f->out);
    free(f);
    return 0;
}

/* Parses text and returns its canonical form (valid until the next call). */
static const char *canon(struct fixture *f, const char *text)
{
    struct r2m_json *root;
    int rc = r2m_json_parse(f->doc, text, strlen(text), &root, f->err, sizeof f->err);
    if (rc) {
        print_error("parse of %s failed: %s (%s)\n", text, r2m_strerror(rc), f->err);
        fail();
    }
    assert_non_null(root);
    assert_string_equal(f->err, "");
    r2m_buf_reset(&f->out);
    assert_int_equal(r2m_json_canonical(root, &f->out), 0);
    return f->out.data;
}

static int parse_rc(struct fixture *f, const char *text, size_t len)
{
    struct r2m_json *root = (struct r2m_json *)1;
    int rc = r2m_json_parse(f->doc, text, len, &root, f->err, sizeof f->err);
    if (rc) {
        assert_null(root);
        /* single line, short, always set */
        assert_true(f->err[0] != '\0');
        assert_null(strchr(f->err, '\n'));
        assert_true(strlen(f->err) < 200);
    }
    return rc;
}

static void assert_same(struct fixture *f, const char *a, const char *b)
{
    char *ca = strdup(canon(f, a));
    assert_non_null(ca);
    assert_string_equal(ca, canon(f, b));
    free(ca);
}

/* ---- canonical form --------------------------------------------------- */

static void test_key_order(void **state)
{
    struct fixture *f = *state;
    assert_string_equal(canon(f, "{\"b\":1,\"a\":2,\"c\":{\"z\":1,\"y\":2}}"),
                        "{\"a\":2,\"b\":1,\"c\":{\"y\":2,\"z\":1}}");
    /* byte order, shorter first on a common prefix; UTF-8 after ASCII */
    assert_string_equal(canon(f, "{\"ab\":1,\"b\":2,\"a\":3,\"\":4,\"B\":5,\"\xc3\xa9\":6}"),
                        "{\"\":4,\"B\":5,\"a\":3,\"ab\":1,\"b\":2,\"\xc3\xa9\":6}");
    assert_same(f, "{\"x\":1,\"y\":2}", "{\"y\":2,\"x\":1}");
}

static void test_key_order_large(void **state)
{
    struct fixture *f = *state;
    /* More members than the insertion-sort cutoff, in reverse order. */
    struct r2m_buf in, want;
    r2m_buf_init(&in, 1 << 20);
    r2m_buf_init(&want, 1 << 20);
    r2m_buf_putc(&in, '{');
    for (int i = 99; i >= 0; i--)
        r2m_buf_printf(&in, "%s\"k%02d\":%d", i == 99 ? "" : ",", i, i);
    r2m_buf_putc(&in, '}');
    r2m_buf_putc(&want, '{');
    for (int i = 0; i < 100; i++)
        r2m_buf_printf(&want, "%s\"k%02d\":%d", i ? "," : "", i, i);
    r2m_buf_putc(&want, '}');
    assert_string_equal(canon(f, in.data), want.data);
    r2m_buf_free(&in);
    r2m_buf_free(&want);
}

static void test_whitespace(void **state)
{
    struct fixture *f = *state;
    assert_string_equal(canon(f, " \t\r\n{ \"a\" :\n[ 1 ,\t2 ] , \"b\" : { } , \"c\":[ ] }\n "),
                        "{\"a\":[1,2],\"b\":{},\"c\":[]}");
}

static void test_string_escapes(void **state)
{
    struct fixture *f = *state;
    assert_same(f, "\"\\u00e9\"", "\"\xc3\xa9\"");
    assert_same(f, "\"\\/\"", "\"/\"");
    assert_same(f, "\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\"");
    assert_same(f, "{\"\\u0061\":1}", "{\"a\":1}");
    assert_string_equal(canon(f, "\"\\u00E9\\u20ac\""), "\"\xc3\xa9\xe2\x82\xac\"");
    assert_string_equal(canon(f, "\"a\\\"b\\\\c\\/d\""), "\"a\\\"b\\\\c/d\"");
    assert_string_equal(canon(f, "\"\\b\\f\\n\\r\\t\""), "\"\\b\\f\\n\\r\\t\"");
    assert_string_equal(canon(f, "\"\\u0001\\u001F\\u007f\""), "\"\\u0001\\u001f\x7f\"");

    /* NUL inside a string survives with its length */
    struct r2m_json *root;
    assert_int_equal(r2m_json_parse(f->doc, "\"a\\u0000b\"", 10, &root, NULL, 0), 0);
    assert_int_equal(root->type, R2M_JSON_STRING);
    assert_int_equal(root->n, 3);
    assert_memory_equal(root->u.str, "a\0b", 3);
    r2m_buf_reset(&f->out);
    assert_int_equal(r2m_json_canonical(root, &f->out), 0);
    assert_string_equal(f->out.data, "\"a\\u0000b\"");
}

static void test_quote(void **state)
{
    struct fixture *f = *state;
    r2m_buf_reset(&f->out);
    assert_int_equal(r2m_json_quote(&f->out, "x\"\\\b\f\n\r\t\x01\x1f\x7f\xc3\xa9/", 14), 0);
    assert_string_equal(f->out.data, "\"x\\\"\\\\\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\xc3\xa9/\"");
    r2m_buf_reset(&f->out);
    assert_int_equal(r2m_json_quote(&f->out, NULL, 0), 0);
    assert_string_equal(f->out.data, "\"\"");

    /* a long string goes around the staging buffer intact */
    size_t n = 100000;
    char *s = malloc(n);
    for (size_t i = 0; i < n; i++)
        s[i] = (char)('a' + i % 26);
    s[5000] = '\n';
    r2m_buf_reset(&f->out);
    assert_int_equal(r2m_json_quote(&f->out, s, n), 0);
    assert_int_equal(f->out.len, n + 3);
    assert_memory_equal(f->out.data + 1, s, 5000);
    assert_memory_equal(f->out.data + 5001, "\\n", 2);
    assert_memory_equal(f->out.data + 5003, s + 5001, n - 5001);
    free(s);

    /* the ceiling: error, buffer unchanged */
    struct r2m_buf small;
    r2m_buf_init(&small, 8);
    assert_int_equal(r2m_buf_puts(&small, "ab"), 0);
    assert_int_equal(r2m_json_quote(&small, "0123456789", 10), R2M_E_TOO_BIG);
    assert_string_equal(small.data, "ab");
    assert_int_equal(small.len, 2);
    r2m_buf_free(&small);
}

static void test_scalars_top_level(void **state)
{
    struct fixture *f = *state;
    assert_string_equal(canon(f, "42"), "42");
    assert_string_equal(canon(f, " 1.50 "), "1.5");
    assert_string_equal(canon(f, "\"x\""), "\"x\"");
    assert_string_equal(canon(f, "true"), "true");
    assert_string_equal(canon(f, "false"), "false");
    assert_string_equal(canon(f, "null"), "null");
    assert_string_equal(canon(f, "[]"), "[]");
    assert_string_equal(canon(f, "{}"), "{}");
}

/* ---- numbers ---------------------------------------------------------- */

struct num_case {
    const char *in, *want;
};

static const struct num_case num_cases[] = {
    {"0", "0"},
    {"-0", "0"},
    {"-0.0", "0"},
    {"0e10", "0"},
    {"-0.000e-5", "0"},
    {"1", "1"},
    {"-1", "-1"},
    {"1.0", "1"},
    {"1e0", "1"},
    {"10e-1", "1"},
    {"1e3", "1000"},
    {"0.5e-1", "0.05"},
    {"1E+2", "100"},
    {"1e2", "100"},
    {"100", "100"},
    {"100.000", "100"},
    {"12345678901234567891", "12345678901234567891"},
    {"12345678901234567892", "12345678901234567892"},
    {"123456789012345678901", "123456789012345678901"},
    {"1234567890123456789012", "1.234567890123456789012e+21"},
    {"100000000000000000000", "100000000000000000000"},
    {"1000000000000000000000", "1e+21"},
    {"1e21", "1e+21"},
    {"1e20", "100000000000000000000"},
    {"1.5e30", "1.5e+30"},
    {"0.000001", "0.000001"},
    {"1e-6", "0.000001"},
    {"0.0000001", "1e-7"},
    {"1e-7", "1e-7"},
    {"-1e-7", "-1e-7"},
    {"1.5e-7", "1.5e-7"},
    {"-1.50", "-1.5"},
    {"123.456e1", "1234.56"},
    {"123.456e-2", "1.23456"},
    {"123.456e-3", "0.123456"},
    {"0.1", "0.1"},
    {"00000", NULL},
    {"0.0001230", "0.000123"},
    {"5e-324", "5e-324"},
    {"1.7976931348623157e308", "1.7976931348623157e+308"},
    {"0.1e1", "1"},
    {"1e+0", "1"},
    {"1e-0", "1"},
    {"1e007", "10000000"},
    {"1e999999999999", "1e+999999999999"},
    {"-1e-999999999999", "-1e-999999999999"},
    {"1e99999999999999999", "1e+99999999999999999"},
    {"10e99999999999999999", "1e+100000000000000000"},
    {"10e999999999999999999", "1e+1000000000000000000"},
    {"1e99999999999999999999999", "1e+99999999999999999999999"},
    {"12.5e99999999999999999999999", "1.25e+100000000000000000000000"},
    {"0.001e-99999999999999999999999", "1e-100000000000000000000002"},
    {"0.01e-100000000000000000000000", "1e-100000000000000000000002"},
    {"1e0000000000000000000000000000003", "1000"},
    {"0e99999999999999999999999", "0"},
    /* not JSON numbers */
    {"", NULL},
    {"-", NULL},
    {"+1", NULL},
    {"01", NULL},
    {"-01", NULL},
    {"1.", NULL},
    {".5", NULL},
    {"1e", NULL},
    {"1e+", NULL},
    {"0x10", NULL},
    {"1 ", NULL},
    {"--1", NULL},
    {"NaN", NULL},
    {"1.5.5", NULL},
    {"1e5e5", NULL},
};

static void test_number_canonical(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof num_cases / sizeof num_cases[0]; i++) {
        const struct num_case *c = &num_cases[i];
        size_t len = strlen(c->in);
        char *out = malloc(len + 32);
        int n = r2m_json_number_canonical(c->in, len, out);
        if (!c->want) {
            if (n != -1) {
                print_error("%s: expected -1, got %d\n", c->in, n);
                fail();
            }
        } else {
            if (n < 0 || strcmp(out, c->want) != 0 || (size_t)n != strlen(c->want)) {
                print_error("%s: expected %s, got %d '%s'\n", c->in, c->want, n, n < 0 ? "" : out);
                fail();
            }
            /* canonical text is a fixed point */
            char *again = malloc((size_t)n + 32);
            assert_int_equal(r2m_json_number_canonical(out, (size_t)n, again), n);
            assert_string_equal(again, out);
            free(again);
        }
        free(out);
    }
}

static void test_number_long_digits(void **state)
{
    (void)state;
    /* 10,000 significant digits: exponent form, exact, within len + 32 */
    size_t len = 10000;
    char *in = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        in[i] = (char)('1' + i % 9);
    in[len] = '\0';
    char *out = malloc(len + 32);
    int n = r2m_json_number_canonical(in, len, out);
    assert_int_equal(n, (int)len + 7);
    assert_int_equal(out[0], '1');
    assert_int_equal(out[1], '.');
    assert_memory_equal(out + 2, in + 1, len - 1);
    assert_string_equal(out + len + 1, "e+9999");

    /* the same digits as a fraction */
    char *in2 = malloc(len + 3);
    memcpy(in2, "0.", 2);
    memcpy(in2 + 2, in, len + 1);
    char *out2 = malloc(len + 2 + 32);
    n = r2m_json_number_canonical(in2, len + 2, out2);
    assert_int_equal(n, (int)len + 2);
    assert_string_equal(out2, in2);
    free(in);
    free(in2);
    free(out);
    free(out2);
}

static void test_numbers_in_documents(void **state)
{
    struct fixture *f = *state;
    assert_same(f, "[1.0, 1e0, 10e-1, -0, 100]", "[1,1,1,0,1E2]");
    assert_string_equal(canon(f, "{\"id\":12345678901234567891}"), "{\"id\":12345678901234567891}");
    assert_string_equal(canon(f, "[12345678901234567891,12345678901234567892]"),
                        "[12345678901234567891,12345678901234567892]");
    assert_string_equal(canon(f, "[1e999999999999,-1E-999999999999]"),
                        "[1e+999999999999,-1e-999999999999]");
    assert_string_equal(canon(f, "0.5e-1"), "0.05");
    assert_string_equal(canon(f, "-0"), "0");
}

/* ---- structure -------------------------------------------------------- */

static void test_nesting_and_arrays(void **state)
{
    struct fixture *f = *state;
    assert_string_equal(canon(f, "{\"a\":[3,1,2,{\"z\":[],\"y\":[[],[{}]]}],\"b\":[\"b\",\"a\"]}"),
                        "{\"a\":[3,1,2,{\"y\":[[],[{}]],\"z\":[]}],\"b\":[\"b\",\"a\"]}");
    struct r2m_json *root;
    const char *t = "[5,4,3,2,1]";
    assert_int_equal(r2m_json_parse(f->doc, t, strlen(t), &root, NULL, 0), 0);
    assert_int_equal(root->type, R2M_JSON_ARRAY);
    assert_int_equal(root->n, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(root->u.items[i].type, R2M_JSON_NUMBER);
        assert_int_equal(root->u.items[i].u.str[0], '5' - i);
    }
}

static void test_duplicate_keys(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(parse_rc(f, "{\"a\":1,\"a\":2}", 13), R2M_E_JSON_DUPKEY);
    assert_non_null(strstr(f->err, "\"a\""));
    const char *t = "{\"x\":{\"b\":1,\"a\":2,\"b\":3}}";
    assert_int_equal(parse_rc(f, t, strlen(t)), R2M_E_JSON_DUPKEY);
    assert_non_null(strstr(f->err, "\"b\""));
    /* the same key after decoding escapes */
    t = "{\"\\u0061\":1,\"a\":2}";
    assert_int_equal(parse_rc(f, t, strlen(t)), R2M_E_JSON_DUPKEY);
    /* duplicates in a big unsorted object */
    struct r2m_buf in;
    r2m_buf_init(&in, 1 << 20);
    r2m_buf_putc(&in, '{');
    for (int i = 40; i >= 0; i--)
        r2m_buf_printf(&in, "\"k%d\":%d,", i, i);
    r2m_buf_puts(&in, "\"k17\":0}");
    assert_int_equal(parse_rc(f, in.data, in.len), R2M_E_JSON_DUPKEY);
    assert_non_null(strstr(f->err, "\"k17\""));
    r2m_buf_free(&in);
    /* same keys in different objects are fine */
    assert_string_equal(canon(f, "[{\"a\":1},{\"a\":2}]"), "[{\"a\":1},{\"a\":2}]");
}

/* open x depth, then mid, then close x depth */
static char *nested(size_t depth, const char *open, const char *mid, const char *close)
{
    size_t ol = strlen(open), ml = strlen(mid), cl = strlen(close);
    char *s = malloc(depth * (ol + cl) + ml + 1);
    char *p = s;
    for (size_t i = 0; i < depth; i++, p += ol)
        memcpy(p, open, ol);
    memcpy(p, mid, ml);
    p += ml;
    for (size_t i = 0; i < depth; i++, p += cl)
        memcpy(p, close, cl);
    *p = '\0';
    return s;
}

static void test_depth_limit(void **state)
{
    struct fixture *f = *state;
    char *s = nested(100000, "[", "", "]");
    assert_int_equal(parse_rc(f, s, strlen(s)), R2M_E_JSON_DEPTH);
    assert_non_null(strstr(f->err, "64"));
    free(s);
    /* unterminated deep input too */
    s = nested(100000, "[", "", "");
    assert_int_equal(parse_rc(f, s, strlen(s)), R2M_E_JSON_DEPTH);
    free(s);

    s = nested(64, "[", "1", "]");
    assert_int_equal(parse_rc(f, s, strlen(s)), 0);
    free(s);
    s = nested(65, "[", "1", "]");
    assert_int_equal(parse_rc(f, s, strlen(s)), R2M_E_JSON_DEPTH);
    free(s);
    s = nested(64, "{\"a\":", "null", "}");
    assert_int_equal(parse_rc(f, s, strlen(s)), 0);
    free(s);
    s = nested(65, "{\"a\":", "null", "}");
    assert_int_equal(parse_rc(f, s, strlen(s)), R2M_E_JSON_DEPTH);
    free(s);

    /* a custom limit */
    struct r2m_json_doc *doc;
    struct r2m_json_limits lim = {.max_depth = 2, .max_nodes = 0};
    assert_int_equal(r2m_json_doc_new(&doc, &lim), 0);
    struct r2m_json *root;
    assert_int_equal(r2m_json_parse(doc, "[[1]]", 5, &root, NULL, 0), 0);
    assert_int_equal(r2m_json_parse(doc, "[[[1]]]", 7, &root, NULL, 0), R2M_E_JSON_DEPTH);
    assert_int_equal(r2m_json_parse(doc, "[{\"a\":{}}]", 10, &root, NULL, 0), R2M_E_JSON_DEPTH);
    r2m_json_doc_free(doc);

    /* the doc is still usable after the refusal */
    assert_string_equal(canon(f, "[[1]]"), "[[1]]");
}

static void test_node_limit(void **state)
{
    (void)state;
    struct r2m_json_doc *doc;
    struct r2m_json_limits lim = {.max_depth = 0, .max_nodes = 10};
    assert_int_equal(r2m_json_doc_new(&doc, &lim), 0);
    struct r2m_json *root;
    char err[128];
    const char *ok = "[1,2,3,4,5,6,7,8,9]"; /* 10 values */
    const char *bad = "[1,2,3,4,5,6,7,8,9,10]";
    assert_int_equal(r2m_json_parse(doc, ok, strlen(ok), &root, err, sizeof err), 0);
    assert_int_equal(r2m_json_parse(doc, bad, strlen(bad), &root, err, sizeof err),
                     R2M_E_JSON_NODES);
    assert_null(root);
    assert_non_null(strstr(err, "10"));
    const char *obj = "{\"a\":{\"b\":[null,true,false,\"s\"]},\"c\":{},\"d\":[],\"e\":1}";
    assert_int_equal(r2m_json_parse(doc, obj, strlen(obj), &root, err, sizeof err), 0);
    const char *obj2 = "{\"a\":{\"b\":[null,true,false,\"s\"]},\"c\":{},\"d\":[],\"e\":1,\"f\":2}";
    assert_int_equal(r2m_json_parse(doc, obj2, strlen(obj2), &root, err, sizeof err),
                     R2M_E_JSON_NODES);
    r2m_json_doc_free(doc);
}

/* ---- refusals --------------------------------------------------------- */

static void test_syntax_errors(void **state)
{
    struct fixture *f = *state;
    static const char *const bad[] = {
        "{\"a\":[1,2", "{\"a\"",     "{\"a\":",    "[",           "\"abc",
        "[1,]",        "{\"a\":1,}", "{a:1}",      "{} {}",       "[1] x",
        "'x'",         "nul",        "tru",        "[01]",        "[1.]",
        "[.5]",        "[NaN]",      "[Infinity]", "[\"a\x01\"]", "\xef\xbb\xbf{}", /* BOM */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = parse_rc(f, bad[i], strlen(bad[i]));
        if (rc != R2M_E_JSON_SYNTAX) {
            print_error("%s: rc %d\n", bad[i], rc);
            fail();
        }
        assert_true(strncmp(f->err, "invalid JSON at byte ", 21) == 0);
    }
    /* truncation is reported at the end of the input */
    assert_int_equal(parse_rc(f, "{\"a\":[1,2", 9), R2M_E_JSON_SYNTAX);
    assert_string_equal(f->err, "invalid JSON at byte 9: unexpected end of input");
    /* an unterminated string after the root: yajl alone accepted these */
    static const char *const tails[] = {"{\"a\":1}\"x", "[1] \"", "2\"abc", "\"s\" \"t",
                                        "null\n\"\\\""};
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        assert_int_equal(parse_rc(f, tails[i], strlen(tails[i])), R2M_E_JSON_SYNTAX);
        assert_non_null(strstr(f->err, "trailing garbage"));
    }
    assert_int_equal(parse_rc(f, "{\"a\":1}  \"x", 11), R2M_E_JSON_SYNTAX);
    assert_string_equal(f->err, "invalid JSON at byte 9: trailing garbage");
    assert_int_equal(parse_rc(f, "12 \r\n\t ", 7), 0);
    assert_int_equal(parse_rc(f, "\"s\" ", 4), 0);
    /* a buffer without a NUL after it (length is respected) */
    assert_int_equal(parse_rc(f, "[1,2]]]", 5), 0);
    assert_int_equal(parse_rc(f, "[1,2]]]", 6), R2M_E_JSON_SYNTAX);
}

static void test_html_refused(void **state)
{
    struct fixture *f = *state;
    const char *html = "<html><head><title>502 Bad Gateway</title></head><body>"
                       "<center><h1>502 Bad Gateway</h1></center></body></html>\n";
    assert_int_equal(parse_rc(f, html, strlen(html)), R2M_E_JSON_SYNTAX);
    assert_string_equal(f->err, "invalid JSON at byte 0: unexpected character '<'");
    assert_int_equal(parse_rc(f, "\n  <x", 5), R2M_E_JSON_SYNTAX);
    assert_string_equal(f->err, "invalid JSON at byte 3: unexpected character '<'");
}

static void test_comments_refused(void **state)
{
    struct fixture *f = *state;
    const char *t = "[1 /* c */]";
    assert_int_equal(parse_rc(f, t, strlen(t)), R2M_E_JSON_SYNTAX);
    assert_non_null(strstr(f->err, "byte 3"));
    assert_non_null(strstr(f->err, "comment"));
    t = "// c\n[1]";
    assert_int_equal(parse_rc(f, t, strlen(t)), R2M_E_JSON_SYNTAX);
    t = "{\"a\":1} # c";
    assert_int_equal(parse_rc(f, t, strlen(t)), R2M_E_JSON_SYNTAX);
}

static void test_empty_body(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(parse_rc(f, "", 0), R2M_E_JSON_SYNTAX);
    assert_non_null(strstr(f->err, "empty body"));
    assert_int_equal(parse_rc(f, " \r\n\t ", 5), R2M_E_JSON_SYNTAX);
    assert_non_null(strstr(f->err, "empty body"));
    assert_int_equal(parse_rc(f, NULL, 0), R2M_E_JSON_SYNTAX);
}

static void test_invalid_utf8(void **state)
{
    struct fixture *f = *state;
    static const char *const bad[] = {
        "\"\xff\"", "\"\xc3\"", "[\"ok\",\"\x80\"]", "{\"\xfe\":1}", "\"\xe2\x82\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(parse_rc(f, bad[i], strlen(bad[i])), R2M_E_JSON_SYNTAX);
    assert_non_null(strstr(f->err, "invalid UTF-8"));
}

/* One rule for text that is not Unicode: invalid UTF-8 bytes and surrogate
 * escapes that are not a high + low pair fail the parse like any other
 * invalid JSON, with the offset of the offending byte or escape; nothing is
 * replaced. Strings and member names alike, in both entry points. */
static const struct {
    const char *text;
    const char *err;
} bad_text[] = {
    {"[\"ok\",\"\\ud800\"]", "invalid JSON at byte 7: lone UTF-16 surrogate \\ud800"},
    {"[\"ok\",\"\\udbff\"]", "invalid JSON at byte 7: lone UTF-16 surrogate \\udbff"},
    {"[\"ok\",\"\\udc00\"]", "invalid JSON at byte 7: lone UTF-16 surrogate \\udc00"},
    {"[\"ok\",\"ab\\uDFFF\"]", "invalid JSON at byte 9: lone UTF-16 surrogate \\uDFFF"},
    {"[\"\\ud800\\u0041\"]", "invalid JSON at byte 2: lone UTF-16 surrogate \\ud800"},
    {"[\"\\ud800\\ud800\"]", "invalid JSON at byte 2: lone UTF-16 surrogate \\ud800"},
    {"[\"\\ud800x\\udc00\"]", "invalid JSON at byte 2: lone UTF-16 surrogate \\ud800"},
    {"[\"\\ud800\\n\"]", "invalid JSON at byte 2: lone UTF-16 surrogate \\ud800"},
    {"[\"\\ude00\\ud83d\"]", "invalid JSON at byte 2: lone UTF-16 surrogate \\ude00"},
    {"[\"\\ud83d\\ude00\\ud83d\"]", "invalid JSON at byte 14: lone UTF-16 surrogate \\ud83d"},
    {"[\"\\\\\\ud800\"]", "invalid JSON at byte 4: lone UTF-16 surrogate \\ud800"},
    {"[\"\\\"\xc0\xaf\"]", "invalid JSON at byte 4: invalid UTF-8, overlong encoding"},
    {"[\"\xc0\xaf\"]", "invalid JSON at byte 2: invalid UTF-8, overlong encoding"},
    {"[\"x\xe0\x80\xaf\"]", "invalid JSON at byte 3: invalid UTF-8, overlong encoding"},
    {"[\"\xed\xa0\x80\"]", "invalid JSON at byte 2: invalid UTF-8, UTF-16 surrogate encoded as "
                           "UTF-8"},
    {"[\"\\n\xed\xb0\x80\"]", "invalid JSON at byte 4: invalid UTF-8, UTF-16 surrogate encoded "
                              "as UTF-8"},
    {"[\"\xf4\x90\x80\x80\"]", "invalid JSON at byte 2: invalid UTF-8, code point above U+10FFFF"},
    {"[\"\xf5\x80\x80\x80\"]", "invalid JSON at byte 2: invalid UTF-8, byte never used in UTF-8 "
                               "(F5..FF)"},
    {"[\"ab\x80\"]", "invalid JSON at byte 4: invalid UTF-8, stray continuation byte"},
    {"[\"\xe2\x82\"]", "invalid JSON at byte 2: invalid UTF-8, truncated sequence"},
    /* member names */
    {"{\"\\ud800\":1}", "invalid JSON at byte 2: lone UTF-16 surrogate \\ud800"},
    {"{\"ok\":1,\"\xc0\xaf\":2}", "invalid JSON at byte 9: invalid UTF-8, overlong encoding"},
    {"{\"a\":{\"b\\udc00\":1}}", "invalid JSON at byte 8: lone UTF-16 surrogate \\udc00"},
    /* a top-level string */
    {"\"\\ud800\"", "invalid JSON at byte 1: lone UTF-16 surrogate \\ud800"},
};

static void test_invalid_text_refused(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < sizeof bad_text / sizeof bad_text[0]; i++) {
        const char *t = bad_text[i].text;
        if (parse_rc(f, t, strlen(t)) != R2M_E_JSON_SYNTAX)
            fail_msg("case %zu accepted: %s", i, t);
        if (strcmp(f->err, bad_text[i].err) != 0)
            fail_msg("case %zu: error \"%s\", expected \"%s\"", i, f->err, bad_text[i].err);
    }
}

static void test_surrogate_pairs(void **state)
{
    struct fixture *f = *state;
    /* a valid pair is the 4-byte UTF-8 of its code point, in strings and keys */
    assert_same(f, "[\"\\ud83d\\ude00\"]", "[\"\xf0\x9f\x98\x80\"]");
    assert_same(f, "{\"\\uD83D\\uDE00\":1}", "{\"\xf0\x9f\x98\x80\":1}");
    assert_same(f, "\"\\udbff\\udfff\"", "\"\xf4\x8f\xbf\xbf\"");
    assert_same(f, "\"\\ud800\\udc00\"", "\"\xf0\x90\x80\x80\"");
    /* the neighbours of the surrogate range are ordinary code points */
    assert_same(f, "\"\\ud7ff\\ue000\"", "\"\xed\x9f\xbf\xee\x80\x80\"");
    /* escaped quotes and backslashes before a string's escapes */
    assert_same(f, "[\"\\\"\\\\\",\"\\\\\\\"\\ud83d\\ude00\"]",
                "[\"\\\"\\\\\",\"\\\\\\\"\xf0\x9f\x98\x80\"]");
    /* the two lone surrogates that yajl alone turned into the same '?' */
    struct r2m_json *root;
    assert_int_equal(r2m_json_parse(f->doc, "\"\\ud800\"", 8, &root, NULL, 0), R2M_E_JSON_SYNTAX);
    assert_int_equal(r2m_json_parse(f->doc, "\"\\udbff\"", 8, &root, NULL, 0), R2M_E_JSON_SYNTAX);
}

static void test_error_buffer(void **state)
{
    struct fixture *f = *state;
    struct r2m_json *root;
    char small[8];
    memset(small, 'x', sizeof small);
    assert_int_equal(r2m_json_parse(f->doc, "<html>", 6, &root, small, sizeof small),
                     R2M_E_JSON_SYNTAX);
    assert_int_equal(small[7], '\0');
    assert_string_equal(small, "invalid");
    assert_int_equal(r2m_json_parse(f->doc, "<html>", 6, &root, NULL, 0), R2M_E_JSON_SYNTAX);
    /* success clears the message */
    char err[64] = "stale";
    assert_int_equal(r2m_json_parse(f->doc, "1", 1, &root, err, sizeof err), 0);
    assert_string_equal(err, "");
    /* an error message about a huge key stays short */
    size_t n = 100000;
    char *t = malloc(2 * n + 32);
    char *p = t;
    for (int k = 0; k < 2; k++) {
        p += sprintf(p, k ? ",\"" : "{\"");
        memset(p, 'k', n);
        p += n;
        p += sprintf(p, "\":%d", k);
    }
    p += sprintf(p, "}");
    assert_int_equal(parse_rc(f, t, (size_t)(p - t)), R2M_E_JSON_DUPKEY);
    free(t);
}

/* ---- pointers --------------------------------------------------------- */

static const char ptr_doc[] = "{\"a\":{\"b/c\":1,\"m~n\":2,\"\":3,\"~1\":4},\"arr\":[10,20,30],"
                              "\"s\":\"str\",\"n\":null}";

static void test_pointer(void **state)
{
    struct fixture *f = *state;
    struct r2m_json *root;
    assert_int_equal(r2m_json_parse(f->doc, ptr_doc, strlen(ptr_doc), &root, NULL, 0), 0);
    struct r2m_json *v;
    assert_ptr_equal(r2m_json_pointer(root, ""), root);
    assert_non_null(v = r2m_json_pointer(root, "/a/b~1c"));
    assert_string_equal(v->u.str, "1");
    assert_non_null(v = r2m_json_pointer(root, "/a/m~0n"));
    assert_string_equal(v->u.str, "2");
    assert_non_null(v = r2m_json_pointer(root, "/a/"));
    assert_string_equal(v->u.str, "3");
    assert_non_null(v = r2m_json_pointer(root, "/a/~01"));
    assert_string_equal(v->u.str, "4");
    assert_non_null(v = r2m_json_pointer(root, "/arr/0"));
    assert_string_equal(v->u.str, "10");
    assert_non_null(v = r2m_json_pointer(root, "/arr/2"));
    assert_string_equal(v->u.str, "30");
    assert_non_null(v = r2m_json_pointer(root, "/n"));
    assert_int_equal(v->type, R2M_JSON_NULL);
    assert_non_null(v = r2m_json_pointer(root, "/arr"));
    assert_int_equal(v->type, R2M_JSON_ARRAY);

    assert_null(r2m_json_pointer(root, "/arr/3"));
    assert_null(r2m_json_pointer(root, "/arr/01"));
    assert_null(r2m_json_pointer(root, "/arr/-"));
    assert_null(r2m_json_pointer(root, "/arr/-1"));
    assert_null(r2m_json_pointer(root, "/arr/1x"));
    assert_null(r2m_json_pointer(root, "/arr/99999999999999999999"));
    assert_null(r2m_json_pointer(root, "/arr/"));
    assert_null(r2m_json_pointer(root, "a"));
    assert_null(r2m_json_pointer(root, "/a/m~2n"));
    assert_null(r2m_json_pointer(root, "/a/m~"));
    assert_null(r2m_json_pointer(root, "/a/b/c"));
    assert_null(r2m_json_pointer(root, "/s/0"));
    assert_null(r2m_json_pointer(root, "/missing"));
    assert_null(r2m_json_pointer(root, "/a/b~1c/x"));
    assert_null(r2m_json_pointer(NULL, ""));

    /* binary search over many members */
    struct r2m_buf in;
    r2m_buf_init(&in, 1 << 20);
    r2m_buf_putc(&in, '{');
    for (int i = 0; i < 500; i++)
        r2m_buf_printf(&in, "%s\"%d\":%d", i ? "," : "", i * 7 % 500, i * 7 % 500);
    r2m_buf_putc(&in, '}');
    assert_int_equal(r2m_json_parse(f->doc, in.data, in.len, &root, NULL, 0), 0);
    for (int i = 0; i < 500; i++) {
        char p[16], want[16];
        snprintf(p, sizeof p, "/%d", i);
        snprintf(want, sizeof want, "%d", i);
        assert_non_null(v = r2m_json_pointer(root, p));
        assert_string_equal(v->u.str, want);
    }
    assert_null(r2m_json_pointer(root, "/500"));
    r2m_buf_free(&in);
}

static void test_pointer_check(void **state)
{
    (void)state;
    char err[128];
    assert_int_equal(r2m_json_pointer_check("", err, sizeof err), 0);
    assert_int_equal(r2m_json_pointer_check("/", err, sizeof err), 0);
    assert_int_equal(r2m_json_pointer_check("/a/*/b~0~1", err, sizeof err), 0);
    assert_int_equal(r2m_json_pointer_check("a", err, sizeof err), R2M_E_INVALID);
    assert_non_null(strstr(err, "'/'"));
    assert_int_equal(r2m_json_pointer_check("/a~", err, sizeof err), R2M_E_INVALID);
    assert_non_null(strstr(err, "~"));
    assert_int_equal(r2m_json_pointer_check("/a~2", err, sizeof err), R2M_E_INVALID);
    assert_int_equal(r2m_json_pointer_check("/a~2", NULL, 0), R2M_E_INVALID);
}

static const char *remove_canon(struct fixture *f, const char *text, char *const *ptrs, size_t n)
{
    struct r2m_json *root;
    assert_int_equal(r2m_json_parse(f->doc, text, strlen(text), &root, NULL, 0), 0);
    r2m_json_remove(root, ptrs, n);
    r2m_buf_reset(&f->out);
    assert_int_equal(r2m_json_canonical(root, &f->out), 0);
    return f->out.data;
}

static void test_remove(void **state)
{
    struct fixture *f = *state;
    const char *t = "{\"meta\":{\"x\":1,\"y\":2},\"lines\":[{\"id\":1,\"seenAt\":\"t\"},"
                    "{\"id\":2,\"seenAt\":\"u\",\"z\":0},{\"id\":3}],\"keep\":true}";
    char *p1[] = {"/meta/*", "/lines/*/seenAt"};
    assert_string_equal(remove_canon(f, t, p1, 2),
                        "{\"keep\":true,\"lines\":[{\"id\":1},{\"id\":2,\"z\":0},{\"id\":3}],"
                        "\"meta\":{}}");
    char *p2[] = {"/keep", "/lines/0", "/missing", "/meta/nope/x", "", "/lines/9", "/keep/x"};
    assert_string_equal(remove_canon(f, t, p2, 7),
                        "{\"lines\":[{\"id\":2,\"seenAt\":\"u\",\"z\":0},{\"id\":3}],"
                        "\"meta\":{\"x\":1,\"y\":2}}");
    char *p3[] = {"/lines/*"};
    assert_string_equal(remove_canon(f, t, p3, 1), "{\"keep\":true,\"lines\":[],\"meta\":{\"x\":1,"
                                                   "\"y\":2}}");
    char *p4[] = {"/*"};
    assert_string_equal(remove_canon(f, t, p4, 1), "{}");
    char *p5[] = {"/*/x", "/lines/1"};
    assert_string_equal(remove_canon(f, t, p5, 2),
                        "{\"keep\":true,\"lines\":[{\"id\":1,\"seenAt\":\"t\"},{\"id\":3}],"
                        "\"meta\":{\"y\":2}}");
    /* escapes, and removal keeps the object sorted for lookups */
    const char *t2 = "{\"a/b\":1,\"c~d\":2,\"e\":3,\"f\":4}";
    char *p6[] = {"/a~1b", "/c~0d"};
    assert_string_equal(remove_canon(f, t2, p6, 2), "{\"e\":3,\"f\":4}");
    struct r2m_json *root;
    assert_int_equal(r2m_json_parse(f->doc, t2, strlen(t2), &root, NULL, 0), 0);
    char *p7[] = {"/e"};
    r2m_json_remove(root, p7, 1);
    assert_non_null(r2m_json_pointer(root, "/f"));
    assert_non_null(r2m_json_pointer(root, "/a~1b"));
    assert_null(r2m_json_pointer(root, "/e"));
    /* nested wildcards over arrays of arrays */
    const char *t3 = "[[{\"a\":1,\"b\":2}],[{\"a\":3}],5]";
    char *p8[] = {"/*/*/a"};
    assert_string_equal(remove_canon(f, t3, p8, 1), "[[{\"b\":2}],[{}],5]");
    /* the root itself stays */
    char *p9[] = {""};
    assert_string_equal(remove_canon(f, "[1]", p9, 1), "[1]");
}

/* ---- equality, fingerprints, reuse ------------------------------------ */

static struct r2m_fp fp_of(struct fixture *f, const char *text)
{
    const char *c = canon(f, text);
    return r2m_json_fingerprint(c, strlen(c));
}

static void test_fingerprint(void **state)
{
    struct fixture *f = *state;
    struct r2m_fp a = fp_of(f, "{\"b\":1,\"a\":[1.0,\"\\u00e9\",{\"y\":null,\"x\":-0}]}");
    struct r2m_fp b =
        fp_of(f, " { \"a\" : [ 1, \"\xc3\xa9\", {\"x\":0,\"y\":null} ], \"b\" : 1e0 } ");
    assert_true(a.hi == b.hi && a.lo == b.lo);
    struct r2m_fp c = fp_of(f, "{\"b\":1,\"a\":[1.0,\"\\u00e9\",{\"y\":null,\"x\":1}]}");
    assert_false(a.hi == c.hi && a.lo == c.lo);
    struct r2m_fp d = fp_of(f, "[12345678901234567891]");
    struct r2m_fp e = fp_of(f, "[12345678901234567892]");
    assert_false(d.hi == e.hi && d.lo == e.lo);
    struct r2m_fp g = fp_of(f, "[1,2]");
    struct r2m_fp h = fp_of(f, "[2,1]");
    assert_false(g.hi == h.hi && g.lo == h.lo);

    /* it is XXH3-128 of the canonical bytes, hi then lo in hex */
    XXH128_hash_t x = XXH3_128bits("[1,2]", 5);
    assert_true(g.hi == x.high64 && g.lo == x.low64);
    char hex[33];
    struct r2m_fp k = {.hi = 0x0123456789abcdefULL, .lo = 0xfedcba9876543210ULL};
    r2m_fp_hex(k, hex);
    assert_string_equal(hex, "0123456789abcdeffedcba9876543210");
    r2m_fp_hex(g, hex);
    assert_int_equal(strlen(hex), 32);
    struct r2m_fp empty = r2m_json_fingerprint(NULL, 0);
    XXH128_hash_t xe = XXH3_128bits("", 0);
    assert_true(empty.hi == xe.high64 && empty.lo == xe.low64);
}

static void test_equal(void **state)
{
    struct fixture *f = *state;
    struct r2m_json_doc *d2;
    assert_int_equal(r2m_json_doc_new(&d2, NULL), 0);
    static const char *const same[][2] = {
        {"{\"b\":[1,{}],\"a\":\"x\"}", "{\"a\":\"x\",\"b\":[1.0,{}]}"},
        {"null", "null"},
        {"\"\\u00e9\"", "\"\xc3\xa9\""},
        {"[]", "[ ]"},
    };
    static const char *const differ[][2] = {
        {"{\"a\":1}", "{\"a\":2}"},
        {"{\"a\":1}", "{\"b\":1}"},
        {"{\"a\":1}", "{}"},
        {"[1,2]", "[1,2,3]"},
        {"[1,2]", "[2,1]"},
        {"true", "false"},
        {"null", "false"},
        {"\"1\"", "1"},
        {"[]", "{}"},
        {"\"a\"", "\"b\""},
        {"\"a\\u0000\"", "\"a\""},
        {"{\"a\":[]}", "{\"a\":{}}"},
    };
    struct r2m_json *x, *y;
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        assert_int_equal(r2m_json_parse(f->doc, same[i][0], strlen(same[i][0]), &x, NULL, 0), 0);
        assert_int_equal(r2m_json_parse(d2, same[i][1], strlen(same[i][1]), &y, NULL, 0), 0);
        assert_true(r2m_json_equal(x, y));
        assert_true(r2m_json_equal(y, x));
    }
    for (size_t i = 0; i < sizeof differ / sizeof differ[0]; i++) {
        assert_int_equal(r2m_json_parse(f->doc, differ[i][0], strlen(differ[i][0]), &x, NULL, 0),
                         0);
        assert_int_equal(r2m_json_parse(d2, differ[i][1], strlen(differ[i][1]), &y, NULL, 0), 0);
        assert_false(r2m_json_equal(x, y));
        assert_false(r2m_json_equal(y, x));
    }
    assert_true(r2m_json_equal(NULL, NULL));
    assert_false(r2m_json_equal(x, NULL));
    r2m_json_doc_free(d2);
}

static void test_arena_reuse(void **state)
{
    struct fixture *f = *state;
    /* a document much larger than one arena chunk */
    struct r2m_buf big, want;
    r2m_buf_init(&big, 1 << 24);
    r2m_buf_init(&want, 1 << 24);
    r2m_buf_putc(&big, '[');
    r2m_buf_putc(&want, '[');
    for (int i = 0; i < 5000; i++) {
        r2m_buf_printf(&big, "%s{\"name\":\"item %d\",\"id\":%d.0,\"tags\":[\"t%d\"]}",
                       i ? "," : "", i, i, i % 7);
        r2m_buf_printf(&want, "%s{\"id\":%d,\"name\":\"item %d\",\"tags\":[\"t%d\"]}", i ? "," : "",
                       i, i, i % 7);
    }
    r2m_buf_putc(&big, ']');
    r2m_buf_putc(&want, ']');

    for (int round = 0; round < 3; round++) {
        assert_string_equal(canon(f, big.data), want.data);
        assert_string_equal(canon(f, "{\"small\":[1,2]}"), "{\"small\":[1,2]}");
        /* a failed parse in between leaves the doc usable */
        assert_int_equal(parse_rc(f, "[1,", 3), R2M_E_JSON_SYNTAX);
        assert_int_equal(parse_rc(f, "{\"a\":1,\"a\":1}", 13), R2M_E_JSON_DUPKEY);
    }
    /* many small parses in one doc */
    for (int i = 0; i < 2000; i++) {
        char t[64], w[64];
        snprintf(t, sizeof t, "{\"b\":%d, \"a\":[%d.50]}", i, i);
        snprintf(w, sizeof w, "{\"a\":[%d.5],\"b\":%d}", i, i);
        assert_string_equal(canon(f, t), w);
    }
    r2m_buf_free(&big);
    r2m_buf_free(&want);
}

static void test_canonical_ceiling(void **state)
{
    struct fixture *f = *state;
    struct r2m_json *root;
    const char *t = "{\"a\":\"0123456789\",\"b\":[1,2,3]}";
    assert_int_equal(r2m_json_parse(f->doc, t, strlen(t), &root, NULL, 0), 0);
    struct r2m_buf small;
    r2m_buf_init(&small, 10);
    assert_int_equal(r2m_buf_puts(&small, "x"), 0);
    assert_int_equal(r2m_json_canonical(root, &small), R2M_E_TOO_BIG);
    assert_string_equal(small.data, "x");
    r2m_buf_free(&small);
}

/* ---- streamed items (r2m_json_parse_items) ---------------------------- */

/* Records every item as "index:canonical;" (or "index:key=canonical;"). */
struct seen {
    struct r2m_buf out;
    size_t n;
    long fail_at;        /* refuse the item with this index; -1: never */
    char *const *remove; /* applied to each item, as the collection poller does */
    size_t n_remove;
    const void *first; /* the first item's children, to see the arena rewound */
    int same;          /* every item's children were at that same address */
};

static void seen_init(struct seen *c)
{
    memset(c, 0, sizeof *c);
    r2m_buf_init(&c->out, 1 << 24);
    c->fail_at = -1;
    c->same = 1;
}

static int collect(void *ctx, size_t index, const char *key, size_t key_len, struct r2m_json *item)
{
    struct seen *c = ctx;
    if ((long)index == c->fail_at)
        return R2M_E_INVALID;
    c->n++;
    r2m_json_remove(item, c->remove, c->n_remove);
    r2m_buf_printf(&c->out, "%zu:", index);
    if (key) {
        r2m_buf_append(&c->out, key, key_len);
        r2m_buf_putc(&c->out, '=');
    }
    assert_int_equal(r2m_json_canonical(item, &c->out), 0);
    r2m_buf_putc(&c->out, ';');
    if (item->type == R2M_JSON_OBJECT || item->type == R2M_JSON_ARRAY) {
        if (!c->first)
            c->first = item->u.items;
        else if (c->first != (const void *)item->u.items)
            c->same = 0;
    }
    return 0;
}

/* Streams text's items at ptr into c (reset first); returns the code. */
static int stream(struct fixture *f, struct seen *c, const char *text, const char *ptr,
                  struct r2m_json **root)
{
    r2m_buf_reset(&c->out);
    c->n = 0;
    c->first = NULL;
    c->same = 1;
    *root = (struct r2m_json *)1;
    int rc = r2m_json_parse_items(f->doc, text, strlen(text), ptr, collect, c, root, f->err,
                                  sizeof f->err);
    if (rc) {
        assert_null(*root);
        assert_true(f->err[0] != '\0');
    } else {
        assert_non_null(*root);
        assert_string_equal(f->err, "");
    }
    return rc;
}

/* The canonical text of what is left of the document. */
static const char *rest(struct fixture *f, const struct r2m_json *root)
{
    r2m_buf_reset(&f->out);
    assert_int_equal(r2m_json_canonical(root, &f->out), 0);
    return f->out.data;
}

static void test_items_at_root(void **state)
{
    struct fixture *f = *state;
    struct seen c;
    seen_init(&c);
    struct r2m_json *root;
    /* an empty object first, on a fresh doc (found by fuzz_json under UBSan) */
    assert_int_equal(stream(f, &c, "{}", "", &root), 0);
    assert_int_equal(c.n, 0);
    assert_int_equal(
        stream(f, &c, " [1, {\"b\":2,\"a\":1.0}, \"x\\u00e9\", [true,[]], null] ", "", &root), 0);
    assert_string_equal(c.out.data, "0:1;1:{\"a\":1,\"b\":2};2:\"x\xc3\xa9\";3:[true,[]];4:null;");
    assert_int_equal(root->type, R2M_JSON_ARRAY);
    assert_int_equal(root->n, 0);
    assert_string_equal(rest(f, root), "[]");
    /* an empty list */
    assert_int_equal(stream(f, &c, "[]", "", &root), 0);
    assert_int_equal(c.n, 0);
    assert_int_equal(root->type, R2M_JSON_ARRAY);
    /* the root is the list, but an object: its members are the items */
    assert_int_equal(
        stream(f, &c, "{\"LH2\":{\"gate\":\"C\"},\"LH1\":{\"gate\":\"A\"}}", "", &root), 0);
    assert_string_equal(c.out.data, "0:LH2={\"gate\":\"C\"};1:LH1={\"gate\":\"A\"};");
    assert_int_equal(root->type, R2M_JSON_OBJECT);
    assert_int_equal(root->n, 0);
    r2m_buf_free(&c.out);
}

static void test_items_at_data_keep_the_rest(void **state)
{
    struct fixture *f = *state;
    struct seen c;
    seen_init(&c);
    struct r2m_json *root;
    const char *t = "{\"next\":\"c2\",\"data\":[{\"id\":2,\"v\":[1,{\"w\":2}]},{\"id\":1}],"
                    "\"meta\":{\"total\":2,\"data\":[9]},\"error\":false}";
    assert_int_equal(stream(f, &c, t, "/data", &root), 0);
    assert_string_equal(c.out.data, "0:{\"id\":2,\"v\":[1,{\"w\":2}]};1:{\"id\":1};");
    /* everything but the items is there, in canonical order */
    assert_string_equal(rest(f, root), "{\"data\":[],\"error\":false,\"meta\":{\"data\":[9],"
                                       "\"total\":2},\"next\":\"c2\"}");
    struct r2m_json *v = r2m_json_pointer(root, "/next");
    assert_non_null(v);
    assert_int_equal(v->type, R2M_JSON_STRING);
    assert_string_equal(v->u.str, "c2");
    v = r2m_json_pointer(root, "/data");
    assert_non_null(v);
    assert_int_equal(v->type, R2M_JSON_ARRAY);
    assert_int_equal(v->n, 0);
    assert_int_equal(r2m_json_pointer(root, "/error")->type, R2M_JSON_FALSE);

    /* an object of items further down; a same-named member elsewhere stays */
    t = "{\"x\":{\"flights\":[0]},\"b\":{\"flights\":{\"LH1\":1,\"LH2\":[2]}}}";
    assert_int_equal(stream(f, &c, t, "/b/flights", &root), 0);
    assert_string_equal(c.out.data, "0:LH1=1;1:LH2=[2];");
    assert_string_equal(rest(f, root), "{\"b\":{\"flights\":{}},\"x\":{\"flights\":[0]}}");

    /* array indexes, escaped segments, a member named like an index */
    t = "{\"a\":[{\"b\":[9]},{\"b\":[1,[2]]}]}";
    assert_int_equal(stream(f, &c, t, "/a/1/b", &root), 0);
    assert_string_equal(c.out.data, "0:1;1:[2];");
    assert_string_equal(rest(f, root), "{\"a\":[{\"b\":[9]},{\"b\":[]}]}");
    assert_int_equal(stream(f, &c, "{\"a/b\":{\"c~d\":[1],\"c\":[0]}}", "/a~1b/c~0d", &root), 0);
    assert_string_equal(c.out.data, "0:1;");
    assert_int_equal(stream(f, &c, "{\"0\":[5],\"1\":[6]}", "/0", &root), 0);
    assert_string_equal(c.out.data, "0:5;");
    assert_int_equal(stream(f, &c, "[[1,2],[3]]", "/1", &root), 0);
    assert_string_equal(c.out.data, "0:3;");
    assert_string_equal(rest(f, root), "[[1,2],[]]");
    r2m_buf_free(&c.out);
}

static void test_items_pointer_absent_or_scalar(void **state)
{
    struct fixture *f = *state;
    struct seen c;
    seen_init(&c);
    struct r2m_json *root;
    /* absent: the caller sees NULL at the pointer */
    static const struct {
        const char *text, *ptr;
    } absent[] = {
        {"{\"error\":\"maintenance\"}", "/data"},
        {"{\"data\":{\"x\":[1]}}", "/data/y"},
        {"[[1,2]]", "/data"},        /* an array has no member "data" */
        {"[[1,2]]", "/01"},          /* not an index */
        {"{\"a~2\":[1]}", "/a~2"},   /* an invalid escape names nothing */
        {"{\"data\":5}", "/data/0"}, /* below a scalar */
    };
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++) {
        assert_int_equal(stream(f, &c, absent[i].text, absent[i].ptr, &root), 0);
        assert_int_equal(c.n, 0);
        assert_null(r2m_json_pointer(root, absent[i].ptr));
    }
    /* a scalar stays as it was parsed, so its type can be reported */
    assert_int_equal(stream(f, &c, "{\"data\":\"[]\"}", "/data", &root), 0);
    struct r2m_json *v = r2m_json_pointer(root, "/data");
    assert_int_equal(v->type, R2M_JSON_STRING);
    assert_string_equal(v->u.str, "[]");
    assert_int_equal(stream(f, &c, "{\"data\":null}", "/data", &root), 0);
    assert_int_equal(r2m_json_pointer(root, "/data")->type, R2M_JSON_NULL);
    assert_int_equal(stream(f, &c, " 5 ", "", &root), 0);
    assert_int_equal(root->type, R2M_JSON_NUMBER);
    assert_int_equal(c.n, 0);
    /* a pointer that is not one */
    assert_int_equal(
        r2m_json_parse_items(f->doc, "[1]", 3, "data", collect, &c, &root, f->err, sizeof f->err),
        R2M_E_INVALID);
    assert_null(root);
    r2m_buf_free(&c.out);
}

static void test_items_refusals(void **state)
{
    struct fixture *f = *state;
    struct seen c;
    seen_init(&c);
    struct r2m_json *root;
    /* duplicate member names among the items, or around them */
    assert_int_equal(stream(f, &c, "{\"a\":1,\"b\":2,\"a\":3}", "", &root), R2M_E_JSON_DUPKEY);
    assert_non_null(strstr(f->err, "duplicate key \"a\""));
    assert_int_equal(c.n, 3); /* seen before the object closed: the caller undoes */
    assert_int_equal(stream(f, &c, "{\"data\":[1],\"data\":[2]}", "/data", &root),
                     R2M_E_JSON_DUPKEY);
    assert_int_equal(stream(f, &c, "{\"data\":[{\"id\":1,\"id\":2}]}", "/data", &root),
                     R2M_E_JSON_DUPKEY);
    /* a syntax error after some items */
    assert_int_equal(stream(f, &c, "{\"data\":[1,2,x", "/data", &root), R2M_E_JSON_SYNTAX);
    assert_int_equal(c.n, 2);
    assert_non_null(strstr(f->err, "invalid JSON at byte"));
    /* the one rule for invalid text holds while streaming, inside items and
     * around them */
    for (size_t i = 0; i < sizeof bad_text / sizeof bad_text[0]; i++) {
        assert_int_equal(stream(f, &c, bad_text[i].text, "", &root), R2M_E_JSON_SYNTAX);
        assert_string_equal(f->err, bad_text[i].err);
        assert_null(root);
    }
    assert_int_equal(stream(f, &c, "{\"data\":[1,\"\\udc00\"]}", "/data", &root),
                     R2M_E_JSON_SYNTAX);
    assert_string_equal(f->err, "invalid JSON at byte 12: lone UTF-16 surrogate \\udc00");
    assert_int_equal(stream(f, &c, "{\"d\\ud800\":[],\"data\":[1]}", "/data", &root),
                     R2M_E_JSON_SYNTAX);
    assert_int_equal(stream(f, &c, "{\"data\":[1],\"n\":\"\xed\xa0\x80\"}", "/data", &root),
                     R2M_E_JSON_SYNTAX);
    assert_non_null(strstr(f->err, "at byte 17: invalid UTF-8"));
    /* the callback stops the parse */
    c.fail_at = 2;
    assert_int_equal(stream(f, &c, "{\"data\":[1,[2],{\"x\":3},4],\"next\":1}", "/data", &root),
                     R2M_E_INVALID);
    assert_int_equal(c.n, 2);
    assert_non_null(strstr(f->err, "item 2"));
    c.fail_at = -1;
    /* the doc is clean afterwards, for both entry points */
    assert_string_equal(canon(f, "{\"data\":[1,2],\"b\":{}}"), "{\"b\":{},\"data\":[1,2]}");
    assert_int_equal(stream(f, &c, "{\"data\":[1,[2],{\"x\":3},4]}", "/data", &root), 0);
    assert_string_equal(c.out.data, "0:1;1:[2];2:{\"x\":3};3:4;");
    r2m_buf_free(&c.out);
}

static void test_items_limits(void **state)
{
    (void)state;
    struct fixture f = {0};
    struct seen c;
    seen_init(&c);
    r2m_buf_init(&f.out, 1 << 20);
    struct r2m_json *root;

    /* depth applies to the items as to any value */
    struct r2m_json_limits lim = {.max_depth = 3, .max_nodes = 0};
    assert_int_equal(r2m_json_doc_new(&f.doc, &lim), 0);
    assert_int_equal(stream(&f, &c, "{\"data\":[[1]]}", "/data", &root), 0);
    assert_int_equal(stream(&f, &c, "{\"data\":[[[1]]]}", "/data", &root), R2M_E_JSON_DEPTH);
    assert_non_null(strstr(f.err, "deeper than 3 levels"));
    r2m_json_doc_free(f.doc);
    lim.max_depth = 0;
    lim.max_nodes = 10;
    assert_int_equal(r2m_json_doc_new(&f.doc, &lim), 0);

    /* nodes: an item's count only while it is parsed */
    struct r2m_buf big;
    r2m_buf_init(&big, 1 << 20);
    r2m_buf_puts(&big, "{\"next\":null,\"data\":[");
    for (int i = 0; i < 1000; i++)
        r2m_buf_printf(&big, "%s[%d,{\"k\":%d}]", i ? "," : "", i, i);
    r2m_buf_puts(&big, "]}");
    assert_int_equal(stream(&f, &c, big.data, "/data", &root), 0); /* 3 + 4 in flight */
    assert_int_equal(c.n, 1000);
    assert_int_equal(r2m_json_parse(f.doc, big.data, big.len, &root, NULL, 0), R2M_E_JSON_NODES);
    /* one item too big, and the rest of the document too big */
    assert_int_equal(stream(&f, &c, "{\"data\":[[1,2,3,4,5,6,7,8]]}", "/data", &root),
                     R2M_E_JSON_NODES);
    assert_int_equal(stream(&f, &c, "{\"data\":[[1,2,3,4,5,6,7]]}", "/data", &root), 0);
    assert_int_equal(stream(&f, &c, "{\"data\":[1,2,3],\"x\":[1,2,3,4,5,6,7,8]}", "/data", &root),
                     R2M_E_JSON_NODES);
    assert_non_null(strstr(f.err, "more than 10 values"));
    assert_int_equal(stream(&f, &c, "{\"data\":[1,2,3],\"x\":[1,2,3,4,5,6,7]}", "/data", &root), 0);
    r2m_buf_free(&big);
    r2m_json_doc_free(f.doc);
    r2m_buf_free(&f.out);
    r2m_buf_free(&c.out);
}

static void test_items_arena_reuse(void **state)
{
    struct fixture *f = *state;
    struct seen c;
    seen_init(&c);
    char *ignore[] = {"/seenAt"};
    c.remove = ignore;
    c.n_remove = 1;
    struct r2m_buf big, want;
    r2m_buf_init(&big, 1 << 24);
    r2m_buf_init(&want, 1 << 24);
    r2m_buf_puts(&big, "{\"data\":[");
    for (int i = 0; i < 5000; i++) {
        r2m_buf_printf(&big, "%s{\"name\":\"n%04d\",\"seenAt\":%d,\"id\":%04d.0,\"tags\":[\"t\"]}",
                       i ? "," : "", i, i + 1000, i + 1000);
        r2m_buf_printf(&want, "%d:{\"id\":%d,\"name\":\"n%04d\",\"tags\":[\"t\"]};", i, i + 1000,
                       i);
    }
    r2m_buf_puts(&big, "],\"next\":\"x\"}");
    struct r2m_json *root;
    for (int round = 0; round < 3; round++) {
        assert_int_equal(stream(f, &c, big.data, "/data", &root), 0);
        assert_string_equal(c.out.data, want.data);
        /* every item was built where the one before it had been */
        assert_true(c.same);
        assert_string_equal(rest(f, root), "{\"data\":[],\"next\":\"x\"}");
        /* the same doc parses whole trees in between */
        assert_string_equal(canon(f, "{\"b\":[1,2],\"a\":{}}"), "{\"a\":{},\"b\":[1,2]}");
        assert_int_equal(parse_rc(f, big.data, big.len), 0);
        assert_int_equal(parse_rc(f, "[1,", 3), R2M_E_JSON_SYNTAX);
    }
    r2m_buf_free(&big);
    r2m_buf_free(&want);
    r2m_buf_free(&c.out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_key_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_order_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_whitespace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_string_escapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quote, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scalars_top_level, setup, teardown),
        cmocka_unit_test(test_number_canonical),
        cmocka_unit_test(test_number_long_digits),
        cmocka_unit_test_setup_teardown(test_numbers_in_documents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nesting_and_arrays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_depth_limit, setup, teardown),
        cmocka_unit_test(test_node_limit),
        cmocka_unit_test_setup_teardown(test_syntax_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_html_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_comments_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_text_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_surrogate_pairs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pointer, setup, teardown),
        cmocka_unit_test(test_pointer_check),
        cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fingerprint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_equal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arena_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_canonical_ceiling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_items_at_root, setup, teardown),
        cmocka_unit_test_setup_teardown(test_items_at_data_keep_the_rest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_items_pointer_absent_or_scalar, setup, teardown),
        cmocka_unit_test_setup_teardown(test_items_refusals, setup, teardown),
        cmocka_unit_test(test_items_limits),
        cmocka_unit_test_setup_teardown(test_items_arena_reuse, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
