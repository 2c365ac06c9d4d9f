/* test_topic.c - topic templates: what is accepted, what a topic becomes.
 *
 * Values substituted from API data must never add a topic level or a
 * wildcard: the escape cases give the rule byte by byte, the injection case
 * shows it end to end. Templates are checked once at configuration time;
 * the check cases list what is accepted and what is refused with a message
 * an operator can act on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "r2m/buf.h"
#include "r2m/error.h"
#include "r2m/json.h"
#include "r2m/topic.h"

/* ---- escaping -------------------------------------------------------------- */

/* Escapes s[0..n) into a fresh buffer and compares with want. */
static void assert_escapes_to(const char *s, size_t n, const char *want)
{
    struct r2m_buf b;
    r2m_buf_init(&b, 4096);
    assert_int_equal(r2m_topic_escape(&b, s, n), 0);
    if (!b.data || strcmp(b.data, want) != 0 || b.len != strlen(want))
        fail_msg("escaping %zu bytes gave \"%s\", expected \"%s\"", n, b.data ? b.data : "(null)",
                 want);
    r2m_buf_free(&b);
}

#define ESC(lit, want)                                                                             \
    {                                                                                              \
        lit, sizeof lit - 1, want                                                                  \
    }

static void test_the_escape_rule_byte_by_byte(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t n;
        const char *out;
    } table[] = {
        ESC("", ""),
        ESC("plain-text_1.2", "plain-text_1.2"),
        /* the topic level separator */
        ESC("/", "%2F"),
        ESC("a/b", "a%2Fb"),
        /* the wildcards */
        ESC("+", "%2B"),
        ESC("#", "%23"),
        /* the escape character itself, so the rule stays reversible */
        ESC("%", "%25"),
        ESC("100%", "100%25"),
        ESC("%2F", "%252F"),
        /* NUL and the other control bytes, as uppercase hex */
        ESC("\0", "%00"),
        ESC("a\0b", "a%00b"),
        ESC("\x01", "%01"),
        ESC("\t", "%09"),
        ESC("\n", "%0A"),
        ESC("\r", "%0D"),
        ESC("\x1b", "%1B"),
        ESC("\x1f", "%1F"),
        /* everything else passes through */
        ESC(" ", " "),
        /* '$' (data must never form a "$SYS" topic) and DEL */
        ESC("$SYS", "%24SYS"),
        ESC("a$", "a%24"),
        ESC("\x7f", "%7F"),
        ESC("a b=c&d?e", "a b=c&d?e"),
        ESC("{x}", "{x}"),
        ESC("~!*()", "~!*()"),
        /* UTF-8 is untouched, multi-byte sequences included */
        ESC("caf\xc3\xa9", "caf\xc3\xa9"),
        ESC("\xe2\x82\xac", "\xe2\x82\xac"),
        ESC("\xe6\x97\xa5\xe6\x9c\xac", "\xe6\x97\xa5\xe6\x9c\xac"),
        ESC("\xf0\x9f\x8c\xa1", "\xf0\x9f\x8c\xa1"),
        /* several in a row, and at both ends */
        ESC("//", "%2F%2F"),
        ESC("/a+", "%2Fa%2B"),
        ESC("a/b/+/#", "a%2Fb%2F%2B%2F%23"),
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        assert_escapes_to(table[i].in, table[i].n, table[i].out);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1; /* lowercase hex is not the rule */
}

/* Reverses the escape; fails the test on malformed input. */
static size_t unescape(const char *s, size_t n, char *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            out[k++] = s[i];
            continue;
        }
        assert_true(i + 2 < n);
        int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
        assert_true(hi >= 0 && lo >= 0);
        out[k++] = (char)(hi * 16 + lo);
        i += 2;
    }
    return k;
}

static void test_no_byte_can_add_a_level_or_wildcard_and_every_byte_comes_back(void **state)
{
    (void)state;
    /* each of the 256 byte values on its own, then all of them in one value */
    char all[256];
    for (int c = 0; c < 256; c++)
        all[c] = (char)c;
    for (int c = 0; c <= 256; c++) {
        const char *in = c < 256 ? &all[c] : all;
        size_t n = c < 256 ? 1 : 256;
        struct r2m_buf b;
        r2m_buf_init(&b, 4096);
        assert_int_equal(r2m_topic_escape(&b, in, n), 0);
        for (size_t i = 0; i < b.len; i++) {
            unsigned char o = (unsigned char)b.data[i];
            if (o == '/' || o == '+' || o == '#' || o == '$' || o == 0x7f || o < 0x20)
                fail_msg("byte 0x%02x escaped to text holding 0x%02x", c, o);
        }
        char back[256];
        size_t k = unescape(b.data, b.len, back);
        assert_int_equal(k, n);
        assert_memory_equal(back, in, n);
        r2m_buf_free(&b);
    }
}

static void test_escape_appends_and_respects_the_buffer_ceiling(void **state)
{
    (void)state;
    struct r2m_buf b;
    r2m_buf_init(&b, 8);
    assert_int_equal(r2m_buf_puts(&b, "x/"), 0);
    assert_int_equal(r2m_topic_escape(&b, "a/", 2), 0);
    assert_string_equal(b.data, "x/a%2F");
    /* "/" needs three bytes; only two are left */
    assert_int_equal(r2m_topic_escape(&b, "/", 1), R2M_E_TOO_BIG);
    r2m_buf_free(&b);
}

/* ---- checking templates ------------------------------------------------------ */

static void test_good_templates_are_accepted(void **state)
{
    (void)state;
    static const struct {
        const char *tmpl;
        int allow_key;
    } good[] = {
        {"{prefix}/{endpoint}", 0},
        {"{prefix}/{endpoint}/{op}", 0},
        {"{prefix}/{endpoint}/{key}", 1},
        {"{prefix}/{endpoint}/{key}/{op}", 1},
        {"home/{/room}/temperature", 0},
        {"{prefix}/{/sensor/id}", 1},
        {"{/a~1b}/{/c~0d}", 0},
        {"{/}", 0},
        {"{/items/0/name}", 0},
        {"literal/only", 0},
        {"a", 0},
        {"a//b/", 0},
        {"/leading/slash", 0},
        {"caf\xc3\xa9/\xe2\x82\xac", 0},
        {"a$b", 0},
        {"{prefix}{endpoint}", 0},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char err[256] = "";
        int r = r2m_topic_check(good[i].tmpl, good[i].allow_key, err, sizeof err);
        if (r != 0)
            fail_msg("\"%s\" refused: %s", good[i].tmpl, err);
    }
}

static void test_bad_templates_are_refused_with_a_reason(void **state)
{
    (void)state;
    static const struct {
        const char *tmpl;
        int allow_key;
        const char *reason; /* must appear in the message */
    } bad[] = {
        {"", 1, "empty"},
        {"$SYS/x", 1, "$"},
        {"$", 1, "$"},
        {"a/+/b", 1, "'+'"},
        {"+", 1, "'+'"},
        {"a/#", 1, "'#'"},
        {"#", 1, "'#'"},
        {"{prefix}/#", 1, "'#'"},
        {"{prefix", 1, "unterminated"},
        {"a/{", 1, "unterminated"},
        {"prefix}", 1, "unmatched"},
        {"{prefix}}", 1, "unmatched"},
        {"}", 1, "unmatched"},
        {"{}", 1, "unknown placeholder"},
        {"{nope}", 1, "{nope}"},
        {"{Prefix}", 1, "{Prefix}"},
        {"{ prefix}", 1, "unknown placeholder"},
        {"{keys}", 1, "unknown placeholder"},
        {"{pre{fix}", 1, "unknown placeholder"},
        {"{/a{b}", 1, "nested"},
        {"{key}", 0, "collections"},
        {"{prefix}/{endpoint}/{key}", 0, "collections"},
        /* a pointer must be a valid RFC 6901 pointer: '~' only as ~0 or ~1 */
        {"{/a~2}", 1, "~"},
        {"{/a~}", 1, "~"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "";
        int r = r2m_topic_check(bad[i].tmpl, bad[i].allow_key, err, sizeof err);
        if (r != R2M_E_TOPIC)
            fail_msg("\"%s\" (allow_key=%d) gave %d, expected R2M_E_TOPIC", bad[i].tmpl,
                     bad[i].allow_key, r);
        if (!strstr(err, bad[i].reason))
            fail_msg("\"%s\": message \"%s\" does not mention \"%s\"", bad[i].tmpl, err,
                     bad[i].reason);
    }
}

static void test_a_null_template_is_refused_like_an_empty_one(void **state)
{
    (void)state;
    char err[256] = "";
    assert_int_equal(r2m_topic_check(NULL, 1, err, sizeof err), R2M_E_TOPIC);
    assert_non_null(strstr(err, "empty"));
}

static void test_a_short_error_buffer_is_never_overrun(void **state)
{
    (void)state;
    char err[16];
    memset(err, '@', sizeof err);
    assert_int_equal(r2m_topic_check("{unknown-placeholder-name}", 1, err, 8), R2M_E_TOPIC);
    assert_int_equal(strlen(err), 7);
    for (size_t i = 8; i < sizeof err; i++)
        assert_int_equal(err[i], '@');
}

/* Writes "{/kkk...}" with a pointer of ptr_len bytes into tmpl. */
static void long_pointer_template(char *tmpl, size_t ptr_len)
{
    tmpl[0] = '{';
    tmpl[1] = '/';
    memset(tmpl + 2, 'k', ptr_len - 1);
    strcpy(tmpl + 1 + ptr_len, "}");
}

static void test_a_pointer_the_expansion_cannot_hold_is_refused_at_check_time(void **state)
{
    (void)state;
    /* whatever check accepts, expand must be able to resolve: a long pointer
     * is accepted only if it also expands */
    char tmpl[2048], json[2048], err[256];
    for (size_t len = 2; len < 1500; len += len < 480 ? 97 : 1) {
        long_pointer_template(tmpl, len);
        err[0] = '\0';
        int accepted = r2m_topic_check(tmpl, 1, err, sizeof err) == 0;
        if (!accepted) {
            assert_true(err[0] != '\0');
            assert_true(len > 256); /* a generous limit, not a tiny one */
            continue;
        }
        /* an item holding the member the pointer names */
        json[0] = '{';
        json[1] = '"';
        memset(json + 2, 'k', len - 1);
        strcpy(json + 1 + len, "\":\"v\"}");
        struct r2m_json_doc *doc;
        struct r2m_json *item;
        assert_int_equal(r2m_json_doc_new(&doc, NULL), 0);
        assert_int_equal(r2m_json_parse(doc, json, strlen(json), &item, NULL, 0), 0);
        struct r2m_topic_vars v = {"p", "e", "k", "updated", item, 0};
        struct r2m_buf b;
        r2m_buf_init(&b, 4096);
        if (r2m_topic_expand(tmpl, &v, &b) != 0)
            fail_msg("a %zu-byte pointer passed the check but does not expand", len);
        assert_string_equal(b.data, "v");
        r2m_buf_free(&b);
        r2m_json_doc_free(doc);
    }
    /* and a very long one is refused */
    long_pointer_template(tmpl, 1500);
    assert_int_equal(r2m_topic_check(tmpl, 1, err, sizeof err), R2M_E_TOPIC);
}

/* ---- expanding templates ------------------------------------------------------- */

static const char item_json[] = "{"
                                "\"name\":\"kitchen\","
                                "\"temp\":21.50,"
                                "\"on\":true,"
                                "\"off\":false,"
                                "\"nothing\":null,"
                                "\"obj\":{\"id\":\"x-1\"},"
                                "\"arr\":[7,\"two\"],"
                                "\"empty\":\"\","
                                "\"evil\":\"a/b/+/#\","
                                "\"a/b\":\"slash-key\","
                                "\"m~n\":\"tilde-key\","
                                "\"big\":1e30,"
                                "\"negzero\":-0,"
                                "\"id\":12345678901234567891,"
                                "\"utf\":\"caf\\u00e9\","
                                "\"ctl\":\"a\\u0000b\\n\","
                                "\"pct\":\"100%\","
                                "\"space\":\"living room\""
                                "}";

struct fixture {
    struct r2m_json_doc *doc;
    struct r2m_json *item;
    struct r2m_topic_vars vars;
};

static int setup_item(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(r2m_json_doc_new(&f->doc, NULL), 0);
    char err[128];
    int r = r2m_json_parse(f->doc, item_json, sizeof item_json - 1, &f->item, err, sizeof err);
    if (r)
        fail_msg("fixture does not parse: %s", err);
    f->vars.prefix = "rest2mqtt/site-1";
    f->vars.endpoint = "sensors";
    f->vars.key = "k1";
    f->vars.op = "updated";
    f->vars.item = f->item;
    *state = f;
    return 0;
}

static int teardown_item(void **state)
{
    struct fixture *f = *state;
    r2m_json_doc_free(f->doc);
    free(f);
    return 0;
}

/* Expands tmpl into a fresh buffer and compares with want. */
static void assert_expands_to(const char *tmpl, const struct r2m_topic_vars *v, const char *want)
{
    struct r2m_buf b;
    r2m_buf_init(&b, 4096);
    int r = r2m_topic_expand(tmpl, v, &b);
    if (r)
        fail_msg("\"%s\" failed with %d (%s)", tmpl, r, r2m_strerror(r));
    if (!b.data || strcmp(b.data, want) != 0 || b.len != strlen(want))
        fail_msg("\"%s\" gave \"%s\", expected \"%s\"", tmpl, b.data ? b.data : "(null)", want);
    r2m_buf_free(&b);
}

static void assert_expand_fails(const char *tmpl, const struct r2m_topic_vars *v)
{
    struct r2m_buf b;
    r2m_buf_init(&b, 4096);
    int r = r2m_topic_expand(tmpl, v, &b);
    if (r != R2M_E_TOPIC)
        fail_msg("\"%s\" gave %d (\"%s\"), expected R2M_E_TOPIC", tmpl, r, b.data ? b.data : "");
    r2m_buf_free(&b);
}

static void test_the_fixed_placeholders_expand(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *tmpl, *topic;
    } table[] = {
        /* the prefix is configuration: its '/' levels are kept */
        {"{prefix}/{endpoint}", "rest2mqtt/site-1/sensors"},
        {"{prefix}/{endpoint}/{key}", "rest2mqtt/site-1/sensors/k1"},
        {"{prefix}/{endpoint}/{key}/{op}", "rest2mqtt/site-1/sensors/k1/updated"},
        {"events/{op}", "events/updated"},
        {"{endpoint}{op}", "sensorsupdated"},
        {"literal/only", "literal/only"},
        {"{prefix}", "rest2mqtt/site-1"},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        assert_expands_to(table[i].tmpl, &f->vars, table[i].topic);
}

static void test_pointers_take_scalar_values_from_the_item(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *tmpl, *topic;
    } table[] = {
        {"home/{/name}/state", "home/kitchen/state"},
        {"{/obj/id}", "x-1"},
        {"{/arr/0}-{/arr/1}", "7-two"},
        /* numbers in their canonical spelling, escaped like any value */
        {"t/{/temp}", "t/21.5"},
        {"t/{/id}", "t/12345678901234567891"},
        {"t/{/negzero}", "t/0"},
        {"t/{/big}", "t/1e%2B30"},
        /* booleans as JSON spells them */
        {"{/on}/{/off}", "true/false"},
        /* keys with '/' and '~' through pointer escapes */
        {"{/a~1b}", "slash-key"},
        {"{/m~0n}", "tilde-key"},
        /* decoded strings, then escaped */
        {"{/utf}", "caf\xc3\xa9"},
        {"{/ctl}", "a%00b%0A"},
        {"{/pct}", "100%25"},
        {"{/space}", "living room"},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        assert_expands_to(table[i].tmpl, &f->vars, table[i].topic);
}

static void test_a_value_that_cannot_name_a_topic_is_an_error(void **state)
{
    struct fixture *f = *state;
    static const char *const table[] = {
        "home/{/missing}/state", /* absent member */
        "{/obj/missing}",        /* absent below an object */
        "{/arr/5}",              /* index past the end */
        "{/name/deeper}",        /* below a string */
        "{/obj}",                /* an object is not a level */
        "{/arr}",                /* nor is an array */
        "{/nothing}",            /* nor null */
        "{/empty}",              /* an empty level would merge two topics */
        "{/}",                   /* the member "" does not exist */
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        assert_expand_fails(table[i], &f->vars);
}

static void test_data_cannot_inject_levels_or_wildcards(void **state)
{
    struct fixture *f = *state;
    /* through a pointer into the item */
    assert_expands_to("home/{/evil}/state", &f->vars, "home/a%2Fb%2F%2B%2F%23/state");
    /* and through the item's key */
    struct r2m_topic_vars v = f->vars;
    v.key = "a/b/+/#";
    assert_expands_to("{prefix}/{endpoint}/{key}", &v,
                      "rest2mqtt/site-1/sensors/a%2Fb%2F%2B%2F%23");
    v.key = "..%2F..";
    assert_expands_to("{key}", &v, "..%252F..");
}

/* A key is key_len bytes: one that differs after a NUL gets its own topic. */
static void test_a_key_is_bytes_with_a_length(void **state)
{
    struct fixture *f = *state;
    struct r2m_topic_vars v = f->vars;
    v.key = "a\0b";
    v.key_len = 3;
    assert_expands_to("{endpoint}/{key}", &v, "sensors/a%00b");
    v.key_len = 0; /* 0: a C string */
    assert_expands_to("{endpoint}/{key}", &v, "sensors/a");
}

/* The last guard: a topic that would not be valid UTF-8 is never built
 * (the JSON layer never hands over such text; a configured value might). */
static void test_a_topic_that_is_not_utf8_is_never_built(void **state)
{
    struct fixture *f = *state;
    struct r2m_topic_vars v = f->vars;
    v.key = "ok\xc0\xaf";
    assert_expand_fails("{prefix}/{key}", &v);
    v = f->vars;
    v.endpoint = "\xed\xa0\x80";
    assert_expand_fails("{endpoint}", &v);
    v = f->vars;
    v.prefix = "p\xff";
    /* nothing of the failed topic is left in the buffer */
    struct r2m_buf b;
    r2m_buf_init(&b, 4096);
    assert_int_equal(r2m_buf_puts(&b, "kept"), 0);
    assert_int_equal(r2m_topic_expand("{prefix}/x", &v, &b), R2M_E_TOPIC);
    assert_string_equal(b.data, "kept");
    assert_int_equal(b.len, 4);
    r2m_buf_free(&b);
    v.key = "caf\xc3\xa9 \xf0\x9f\x98\x80";
    assert_expands_to("{key}", &v, "caf\xc3\xa9 \xf0\x9f\x98\x80");
}

static void test_a_missing_or_empty_variable_is_an_error(void **state)
{
    struct fixture *f = *state;
    struct r2m_topic_vars v = f->vars;
    v.key = NULL; /* a document endpoint */
    assert_expand_fails("{prefix}/{endpoint}/{key}", &v);
    v.key = "";
    assert_expand_fails("{prefix}/{endpoint}/{key}", &v);

    v = f->vars;
    v.endpoint = "";
    assert_expand_fails("{endpoint}", &v);
    v = f->vars;
    v.op = NULL;
    assert_expand_fails("{op}", &v);
    v = f->vars;
    v.prefix = NULL;
    assert_expand_fails("{prefix}/x", &v);

    v = f->vars;
    v.item = NULL; /* nothing to point into */
    assert_expand_fails("{/name}", &v);
}

static void test_expand_appends_to_the_buffer(void **state)
{
    struct fixture *f = *state;
    struct r2m_buf b;
    r2m_buf_init(&b, 4096);
    assert_int_equal(r2m_buf_puts(&b, "before|"), 0);
    assert_int_equal(r2m_topic_expand("{endpoint}/{/name}", &f->vars, &b), 0);
    assert_string_equal(b.data, "before|sensors/kitchen");
    r2m_buf_free(&b);
}

static void test_expand_reports_a_full_buffer(void **state)
{
    struct fixture *f = *state;
    static const char *const tmpls[] = {"{prefix}/{endpoint}", "literal/text/here",
                                        "{/name}/{key}"};
    for (size_t t = 0; t < sizeof tmpls / sizeof tmpls[0]; t++) {
        struct r2m_buf b;
        r2m_buf_init(&b, 4096);
        assert_int_equal(r2m_topic_expand(tmpls[t], &f->vars, &b), 0);
        size_t full = b.len;
        r2m_buf_free(&b);
        for (size_t max = 0; max < full; max++) {
            r2m_buf_init(&b, max);
            assert_int_equal(r2m_topic_expand(tmpls[t], &f->vars, &b), R2M_E_TOO_BIG);
            r2m_buf_free(&b);
        }
    }
}

static void test_every_accepted_template_expands_with_full_variables(void **state)
{
    struct fixture *f = *state;
    static const char *const tmpls[] = {
        "{prefix}/{endpoint}",
        "{prefix}/{endpoint}/{key}/{op}",
        "home/{/name}/{/on}",
        "{/a~1b}/{/m~0n}",
        "x",
    };
    for (size_t i = 0; i < sizeof tmpls / sizeof tmpls[0]; i++) {
        char err[256];
        assert_int_equal(r2m_topic_check(tmpls[i], 1, err, sizeof err), 0);
        struct r2m_buf b;
        r2m_buf_init(&b, 4096);
        assert_int_equal(r2m_topic_expand(tmpls[i], &f->vars, &b), 0);
        r2m_buf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_escape_rule_byte_by_byte),
        cmocka_unit_test(test_no_byte_can_add_a_level_or_wildcard_and_every_byte_comes_back),
        cmocka_unit_test(test_escape_appends_and_respects_the_buffer_ceiling),
        cmocka_unit_test(test_good_templates_are_accepted),
        cmocka_unit_test(test_bad_templates_are_refused_with_a_reason),
        cmocka_unit_test(test_a_null_template_is_refused_like_an_empty_one),
        cmocka_unit_test(test_a_short_error_buffer_is_never_overrun),
        cmocka_unit_test(test_a_pointer_the_expansion_cannot_hold_is_refused_at_check_time),
        cmocka_unit_test_setup_teardown(test_the_fixed_placeholders_expand, setup_item,
                                        teardown_item),
        cmocka_unit_test_setup_teardown(test_pointers_take_scalar_values_from_the_item, setup_item,
                                        teardown_item),
        cmocka_unit_test_setup_teardown(test_a_value_that_cannot_name_a_topic_is_an_error,
                                        setup_item, teardown_item),
        cmocka_unit_test_setup_teardown(test_data_cannot_inject_levels_or_wildcards, setup_item,
                                        teardown_item),
        cmocka_unit_test_setup_teardown(test_a_key_is_bytes_with_a_length, setup_item,
                                        teardown_item),
        cmocka_unit_test_setup_teardown(test_a_topic_that_is_not_utf8_is_never_built, setup_item,
                                        teardown_item),
        cmocka_unit_test_setup_teardown(test_a_missing_or_empty_variable_is_an_error, setup_item,
                                        teardown_item),
        cmocka_unit_test_setup_teardown(test_expand_appends_to_the_buffer, setup_item,
                                        teardown_item),
        cmocka_unit_test_setup_teardown(test_expand_reports_a_full_buffer, setup_item,
                                        teardown_item),
        cmocka_unit_test_setup_teardown(test_every_accepted_template_expands_with_full_variables,
                                        setup_item, teardown_item),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
