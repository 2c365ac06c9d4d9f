/* test_log.c - the exact bytes a log record puts on stderr.
 *
 * stderr is pointed at a temporary file for the duration of each r2m_log
 * call, so the cases compare the record itself: "TS LEVEL msg key=value"
 * in the text format, one JSON object per line in the JSON format, and
 * nothing at all below the configured level. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "r2m/config.h"
#include "r2m/error.h"
#include "r2m/json.h"
#include "r2m/log.h"

/* ---- capturing stderr -------------------------------------------------- */

static FILE *capture_file;
static int saved_stderr = -1;

static void capture_begin(void)
{
    fflush(stderr);
    capture_file = tmpfile();
    assert_non_null(capture_file);
    saved_stderr = dup(STDERR_FILENO);
    assert_true(saved_stderr >= 0);
    assert_true(dup2(fileno(capture_file), STDERR_FILENO) >= 0);
}

/* Restores stderr and returns what was written meanwhile (caller frees). */
static char *capture_end(void)
{
    fflush(stderr);
    assert_true(dup2(saved_stderr, STDERR_FILENO) >= 0);
    close(saved_stderr);
    saved_stderr = -1;

    assert_int_equal(fseek(capture_file, 0, SEEK_END), 0);
    long size = ftell(capture_file);
    assert_true(size >= 0);
    rewind(capture_file);
    char *text = malloc((size_t)size + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)size, capture_file), (size_t)size);
    text[size] = '\0';
    fclose(capture_file);
    capture_file = NULL;
    return text;
}

/* Restores the default configuration so cases do not depend on order, and
 * stderr if a failed assertion left it captured. */
static int reset_log(void **state)
{
    (void)state;
    r2m_log_setup(R2M_LOG_INFO, R2M_LOG_TEXT);
    if (saved_stderr >= 0) {
        fflush(stderr);
        dup2(saved_stderr, STDERR_FILENO);
        close(saved_stderr);
        saved_stderr = -1;
    }
    if (capture_file) {
        fclose(capture_file);
        capture_file = NULL;
    }
    return 0;
}

/* ---- the timestamp ------------------------------------------------------ */

/* Checks that ts (at least 24 bytes) is "YYYY-MM-DDTHH:MM:SS.mmmZ" and within
 * a few seconds of the wall clock. */
static void assert_timestamp_now(const char *ts)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (size_t i = 0; i < sizeof shape - 1; i++) {
        if (shape[i] == 'd')
            assert_true(ts[i] >= '0' && ts[i] <= '9');
        else
            assert_int_equal(ts[i], shape[i]);
    }
    struct tm tm = {0};
    int ms = 0;
    assert_int_equal(sscanf(ts, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon,
                            &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms),
                     7);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    time_t now = time(NULL);
    assert_true(t <= now + 1 && t >= now - 5);
}

/* Checks one text record: a timestamp, a space, then exactly rest. */
static void assert_text_record(const char *line, const char *rest)
{
    assert_true(strlen(line) > 25);
    assert_timestamp_now(line);
    assert_int_equal(line[24], ' ');
    assert_string_equal(line + 25, rest);
}

/* ---- the text format ---------------------------------------------------- */

static void test_a_text_record_is_timestamp_level_message_and_pairs(void **state)
{
    (void)state;
    r2m_log_setup(R2M_LOG_INFO, R2M_LOG_TEXT);
    capture_begin();
    r2m_log(R2M_LOG_WARN, "poll failed", "endpoint", "weather", "status", "503", NULL);
    char *out = capture_end();
    assert_text_record(out, "warn poll failed endpoint=weather status=503\n");
    free(out);
}

static void test_a_record_without_pairs_is_just_the_message(void **state)
{
    (void)state;
    r2m_log_setup(R2M_LOG_INFO, R2M_LOG_TEXT);
    capture_begin();
    r2m_log(R2M_LOG_INFO, "started", NULL);
    char *out = capture_end();
    assert_text_record(out, "info started\n");
    free(out);
}

static void test_each_level_is_named_in_lowercase(void **state)
{
    (void)state;
    static const struct {
        int level;
        const char *line;
    } cases[] = {
        {R2M_LOG_ERROR, "error m\n"},
        {R2M_LOG_WARN, "warn m\n"},
        {R2M_LOG_INFO, "info m\n"},
        {R2M_LOG_DEBUG, "debug m\n"},
    };
    r2m_log_setup(R2M_LOG_DEBUG, R2M_LOG_TEXT);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        capture_begin();
        r2m_log(cases[i].level, "m", NULL);
        char *out = capture_end();
        assert_text_record(out, cases[i].line);
        free(out);
    }
}

static void test_values_that_would_be_ambiguous_are_quoted_as_json_strings(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        const char *written;
    } cases[] = {
        /* plain tokens stay bare */
        {"weather", "v=weather"},
        {"http://api.example/x?a", "v=http://api.example/x?a"},
        {"caf\xc3\xa9", "v=caf\xc3\xa9"},
        /* a space would split the pair */
        {"timed out", "v=\"timed out\""},
        /* a quote would open a string */
        {"say \"hi\"", "v=\"say \\\"hi\\\"\""},
        {"\"", "v=\"\\\"\""},
        /* an '=' would look like another key */
        {"a=b", "v=\"a=b\""},
        /* an empty value must still be visible */
        {"", "v=\"\""},
        /* a control byte would break the one-line record */
        {"line1\nline2", "v=\"line1\\nline2\""},
        {"tab\there", "v=\"tab\\there\""},
        {"\x01", "v=\"\\u0001\""},
        /* once quoted, a backslash is escaped too */
        {"C:\\dir name", "v=\"C:\\\\dir name\""},
    };
    r2m_log_setup(R2M_LOG_INFO, R2M_LOG_TEXT);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        capture_begin();
        r2m_log(R2M_LOG_INFO, "m", "v", cases[i].value, NULL);
        char *out = capture_end();
        char want[128];
        snprintf(want, sizeof want, "info m %s\n", cases[i].written);
        assert_text_record(out, want);
        free(out);
    }
}

static void test_a_null_value_is_written_as_an_empty_string(void **state)
{
    (void)state;
    r2m_log_setup(R2M_LOG_INFO, R2M_LOG_TEXT);
    capture_begin();
    r2m_log(R2M_LOG_INFO, "m", "a", (const char *)NULL, "b", "2", NULL);
    char *out = capture_end();
    assert_text_record(out, "info m a=\"\" b=2\n");
    free(out);
}

static void test_each_call_writes_exactly_one_line(void **state)
{
    (void)state;
    r2m_log_setup(R2M_LOG_INFO, R2M_LOG_TEXT);
    capture_begin();
    r2m_log(R2M_LOG_INFO, "one", "k", "multi\nline\nvalue", NULL);
    r2m_log(R2M_LOG_ERROR, "two", NULL);
    char *out = capture_end();
    char *nl = strchr(out, '\n');
    assert_non_null(nl);
    *nl = '\0';
    assert_text_record(out, "info one k=\"multi\\nline\\nvalue\"");
    assert_text_record(nl + 1, "error two\n");
    free(out);
}

/* ---- levels -------------------------------------------------------------- */

static void test_records_below_the_configured_level_are_not_written(void **state)
{
    (void)state;
    r2m_log_setup(R2M_LOG_WARN, R2M_LOG_TEXT);
    capture_begin();
    r2m_log(R2M_LOG_DEBUG, "hidden debug", NULL);
    r2m_log(R2M_LOG_INFO, "hidden info", NULL);
    r2m_log(R2M_LOG_WARN, "shown warn", NULL);
    r2m_log(R2M_LOG_ERROR, "shown error", NULL);
    char *out = capture_end();
    assert_null(strstr(out, "hidden"));
    char *nl = strchr(out, '\n');
    assert_non_null(nl);
    assert_text_record(nl + 1, "error shown error\n");
    nl[1] = '\0';
    assert_text_record(out, "warn shown warn\n");
    free(out);

    r2m_log_setup(R2M_LOG_ERROR, R2M_LOG_JSON);
    capture_begin();
    r2m_log(R2M_LOG_WARN, "hidden", NULL);
    out = capture_end();
    assert_string_equal(out, "");
    free(out);
}

static void test_enabled_agrees_with_what_is_written(void **state)
{
    (void)state;
    for (int conf = R2M_LOG_ERROR; conf <= R2M_LOG_DEBUG; conf++) {
        r2m_log_setup(conf, R2M_LOG_TEXT);
        for (int lvl = R2M_LOG_ERROR; lvl <= R2M_LOG_DEBUG; lvl++) {
            capture_begin();
            r2m_log(lvl, "probe", NULL);
            char *out = capture_end();
            assert_int_equal(r2m_log_enabled(lvl), lvl <= conf);
            assert_int_equal(out[0] != '\0', lvl <= conf);
            free(out);
        }
    }
}

/* ---- the JSON format ----------------------------------------------------- */

/* Parses one line of JSON output and returns its root (valid until doc is
 * freed). */
static struct r2m_json *parse_line(struct r2m_json_doc *doc, const char *line, size_t len)
{
    struct r2m_json *root = NULL;
    char err[200];
    int r = r2m_json_parse(doc, line, len, &root, err, sizeof err);
    if (r)
        fail_msg("log line is not JSON (%s): %.*s", err, (int)len, line);
    assert_int_equal(root->type, R2M_JSON_OBJECT);
    return root;
}

static void assert_member(struct r2m_json *root, const char *ptr, const char *want)
{
    struct r2m_json *v = r2m_json_pointer(root, ptr);
    if (!v)
        fail_msg("member %s missing", ptr);
    assert_int_equal(v->type, R2M_JSON_STRING);
    assert_int_equal(v->n, strlen(want));
    assert_memory_equal(v->u.str, want, v->n);
}

static void test_json_records_are_one_parseable_object_per_line(void **state)
{
    (void)state;
    r2m_log_setup(R2M_LOG_INFO, R2M_LOG_JSON);
    capture_begin();
    r2m_log(R2M_LOG_WARN, "poll failed", "endpoint", "weather", "error", "timed out", NULL);
    r2m_log(R2M_LOG_DEBUG, "not written", NULL);
    r2m_log(R2M_LOG_INFO, "started", NULL);
    char *out = capture_end();

    struct r2m_json_doc *doc;
    assert_int_equal(r2m_json_doc_new(&doc, NULL), 0);

    char *first = out;
    char *nl = strchr(first, '\n');
    assert_non_null(nl);
    struct r2m_json *rec = parse_line(doc, first, (size_t)(nl - first));
    assert_int_equal(rec->n, 5); /* ts, level, msg and the two pairs, nothing else */
    struct r2m_json *ts = r2m_json_pointer(rec, "/ts");
    assert_non_null(ts);
    assert_int_equal(ts->type, R2M_JSON_STRING);
    assert_int_equal(ts->n, 24);
    assert_timestamp_now(ts->u.str);
    assert_member(rec, "/level", "warn");
    assert_member(rec, "/msg", "poll failed");
    assert_member(rec, "/endpoint", "weather");
    assert_member(rec, "/error", "timed out");

    char *second = nl + 1;
    nl = strchr(second, '\n');
    assert_non_null(nl);
    rec = parse_line(doc, second, (size_t)(nl - second));
    assert_int_equal(rec->n, 3);
    assert_member(rec, "/level", "info");
    assert_member(rec, "/msg", "started");

    assert_string_equal(nl + 1, ""); /* the debug record was not written */
    r2m_json_doc_free(doc);
    free(out);
}

static void test_json_records_carry_any_value_exactly(void **state)
{
    (void)state;
    static const char *const values[] = {
        "",
        "say \"hi\"",
        "back\\slash",
        "line1\nline2\r\t",
        "\x01\x1f",
        "a=b c",
        "caf\xc3\xa9 \xe2\x82\xac",
        "{\"not\":\"nested\"}",
    };
    r2m_log_setup(R2M_LOG_DEBUG, R2M_LOG_JSON);
    struct r2m_json_doc *doc;
    assert_int_equal(r2m_json_doc_new(&doc, NULL), 0);
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        capture_begin();
        r2m_log(R2M_LOG_DEBUG, "msg with \"quotes\"", "value", values[i], NULL);
        char *out = capture_end();
        size_t len = strlen(out);
        assert_true(len > 0);
        assert_int_equal(out[len - 1], '\n');
        assert_null(memchr(out, '\n', len - 1)); /* one line, whatever the value */
        struct r2m_json *rec = parse_line(doc, out, len - 1);
        assert_member(rec, "/level", "debug");
        assert_member(rec, "/msg", "msg with \"quotes\"");
        assert_member(rec, "/value", values[i]);
        free(out);
    }
    r2m_json_doc_free(doc);
}

static void test_json_keys_keep_their_order_after_the_fixed_fields(void **state)
{
    (void)state;
    r2m_log_setup(R2M_LOG_INFO, R2M_LOG_JSON);
    capture_begin();
    r2m_log(R2M_LOG_ERROR, "x", "zeta", "1", "alpha", "2", NULL);
    char *out = capture_end();
    /* ts is variable: compare everything around it */
    assert_memory_equal(out, "{\"ts\":\"", 7);
    assert_string_equal(out + 7 + 24,
                        "\",\"level\":\"error\",\"msg\":\"x\",\"zeta\":\"1\",\"alpha\":\"2\"}\n");
    free(out);
}

/* ---- level names --------------------------------------------------------- */

static void test_level_names_parse_to_their_levels(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int level;
    } table[] = {
        {"error", R2M_LOG_ERROR},
        {"warn", R2M_LOG_WARN},
        {"warning", R2M_LOG_WARN},
        {"info", R2M_LOG_INFO},
        {"debug", R2M_LOG_DEBUG},
        {"", -1},
        {"trace", -1},
        {"fatal", -1},
        {"inf", -1},
        {"info ", -1},
        {" info", -1},
        {"debug2", -1},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (r2m_log_level_parse(table[i].name) != table[i].level)
            fail_msg("\"%s\" parsed as %d, expected %d", table[i].name,
                     r2m_log_level_parse(table[i].name), table[i].level);
}

static void test_a_pinned_level_survives_setup(void **state)
{
    (void)state;
    r2m_log_pin_level(R2M_LOG_DEBUG);          /* --log-level debug */
    r2m_log_setup(R2M_LOG_WARN, R2M_LOG_TEXT); /* a reload of a file saying warn */
    assert_int_equal(r2m_log_level_current, R2M_LOG_DEBUG);
    assert_true(r2m_log_enabled(R2M_LOG_DEBUG));
    r2m_log_pin_level(-1);
    r2m_log_setup(R2M_LOG_WARN, R2M_LOG_TEXT);
    assert_int_equal(r2m_log_level_current, R2M_LOG_WARN);
}

/* A repeated error is logged at its 1st, 2nd, 4th, 8th... occurrence; a
 * different one at once; after the condition ends it starts over. */
static void test_repeated_errors_are_rate_limited(void **state)
{
    (void)state;
    struct r2m_log_limit l = {0};
    int logged[20] = {0};
    for (int i = 0; i < 20; i++)
        logged[i] = r2m_log_limit_hit(&l, 7);
    static const int want[20] = {1, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0};
    assert_memory_equal(logged, want, sizeof want);
    assert_true(r2m_log_limit_hit(&l, 8)); /* another kind: at once */
    assert_true(r2m_log_limit_hit(&l, 7)); /* and back: a new kind again */
    assert_int_equal(r2m_log_limit_clear(&l), 1);
    assert_true(r2m_log_limit_hit(&l, 7));
    /* the rule failed polls use, on counts kept elsewhere */
    assert_true(r2m_log_due(3, 0));
    assert_false(r2m_log_due(3, 1));
    assert_true(r2m_log_due(64, 1));
}

/* A URL shown in logs, errors and `check` hides the password of its user
 * part and the value of every query parameter (an API key in the query,
 * Azure-style ?code=..., a token URL with a secret), keeping the names. */
static void test_shown_urls_hide_passwords_and_query_values(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"mqtt://bridge:pw@host:1883", "mqtt://bridge:***@host:1883"},
        {"https://api.example/items", "https://api.example/items"},
        {"https://api.example/items?code=Sekr1t&status=active",
         "https://api.example/items?code=*&status=*"},
        {"http://u:p@h/t?client_secret=Cs-1&x=", "http://u:***@h/t?client_secret=*&x="},
        {"https://h/p?flag&k=v#frag", "https://h/p?flag&k=*#frag"},
        {"https://h/p?k=a=b", "https://h/p?k=*"},
        /* a password with an unencoded '?', '#' or '/' is masked whole */
        {"ssl://u:pa?ss@h:1", "ssl://u:***@h:1"},
        {"mqtts://u:p#w@h:8883", "mqtts://u:***@h:8883"},
        {"mqtt://u:p/w?x@h", "mqtt://u:***@h"},
        {"https://u:p?w@h/x", "https://u:***@h/x"},
        {"https://u:p/w@h/x", "https://u:***@h/x"},
        /* an '@' in a path or query is no user part */
        {"https://api.example/items?email=a@b", "https://api.example/items?email=*"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[256];
        assert_string_equal(r2m_log_url(cases[i][0], out, sizeof out), cases[i][1]);
    }
    /* strlen(url) + 8 always fits */
    const char *u = "http://a:b@h/?q=1";
    char small[32];
    assert_string_equal(r2m_log_url(u, small, strlen(u) + 8), "http://a:***@h/?q=*");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_pinned_level_survives_setup, reset_log, reset_log),
        cmocka_unit_test(test_shown_urls_hide_passwords_and_query_values),
        cmocka_unit_test_setup_teardown(test_a_text_record_is_timestamp_level_message_and_pairs,
                                        reset_log, reset_log),
        cmocka_unit_test_setup_teardown(test_a_record_without_pairs_is_just_the_message, reset_log,
                                        reset_log),
        cmocka_unit_test_setup_teardown(test_each_level_is_named_in_lowercase, reset_log,
                                        reset_log),
        cmocka_unit_test_setup_teardown(
            test_values_that_would_be_ambiguous_are_quoted_as_json_strings, reset_log, reset_log),
        cmocka_unit_test_setup_teardown(test_a_null_value_is_written_as_an_empty_string, reset_log,
                                        reset_log),
        cmocka_unit_test_setup_teardown(test_each_call_writes_exactly_one_line, reset_log,
                                        reset_log),
        cmocka_unit_test_setup_teardown(test_records_below_the_configured_level_are_not_written,
                                        reset_log, reset_log),
        cmocka_unit_test_setup_teardown(test_enabled_agrees_with_what_is_written, reset_log,
                                        reset_log),
        cmocka_unit_test_setup_teardown(test_json_records_are_one_parseable_object_per_line,
                                        reset_log, reset_log),
        cmocka_unit_test_setup_teardown(test_json_records_carry_any_value_exactly, reset_log,
                                        reset_log),
        cmocka_unit_test_setup_teardown(test_json_keys_keep_their_order_after_the_fixed_fields,
                                        reset_log, reset_log),
        cmocka_unit_test(test_level_names_parse_to_their_levels),
        cmocka_unit_test(test_repeated_errors_are_rate_limited),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
