/* test_event.c - the exact CloudEvents a change becomes, and its id.
 *
 * An event is fixed bytes: subscribers and the e2e suite compare them, so the
 * rendering cases give the whole expected line. The id cases state that an
 * id is a function of the change's identity: equal inputs give the same id,
 * and changing any single input gives another. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "r2m/buf.h"
#include "r2m/error.h"
#include "r2m/event.h"
#include "r2m/json.h"

/* 2026-11-27T08:15:02.113Z */
#define T_2026 INT64_C(1795767302113)

static void set_before(struct r2m_event *ev, const char *json)
{
    ev->before = json;
    ev->before_len = json ? strlen(json) : 0;
}

static void set_after(struct r2m_event *ev, const char *json)
{
    ev->after = json;
    ev->after_len = json ? strlen(json) : 0;
}

static void set_patch(struct r2m_event *ev, const char *json)
{
    ev->patch = json;
    ev->patch_len = json ? strlen(json) : 0;
}

/* A document endpoint whose temperature went from 1 to 2. */
static struct r2m_event document_event(void)
{
    struct r2m_event ev = {
        .instance = "bridge-1",
        .endpoint = "weather",
        .type = "rest2mqtt.document.changed",
        .op = "changed",
        .key = NULL,
        .time_ms = T_2026,
        .id = "0123456789abcdef",
    };
    set_before(&ev, "{\"t\":1}");
    set_after(&ev, "{\"t\":2}");
    set_patch(&ev, "[{\"op\":\"replace\",\"path\":\"/t\",\"value\":2}]");
    return ev;
}

/* Item "sensor-7" of a collection endpoint was updated. */
static struct r2m_event item_event(void)
{
    struct r2m_event ev = {
        .instance = "bridge-1",
        .endpoint = "sensors",
        .type = "rest2mqtt.item.updated",
        .op = "updated",
        .key = "sensor-7",
        .time_ms = T_2026,
        .id = "fedcba9876543210",
    };
    set_before(&ev, "{\"id\":\"sensor-7\",\"on\":false}");
    set_after(&ev, "{\"id\":\"sensor-7\",\"on\":true}");
    set_patch(&ev, "[{\"op\":\"replace\",\"path\":\"/on\",\"value\":true}]");
    return ev;
}

static void assert_renders_as(const struct r2m_event *ev, const char *expected)
{
    struct r2m_buf b;
    r2m_buf_init(&b, 1 << 16);
    assert_int_equal(r2m_event_render(ev, &b), 0);
    assert_non_null(b.data);
    assert_string_equal(b.data, expected);
    assert_int_equal(b.len, strlen(expected));
    r2m_buf_free(&b);
}

/* ---- rendering ------------------------------------------------------------ */

static void test_a_document_event_renders_exactly(void **state)
{
    (void)state;
    struct r2m_event ev = document_event();
    assert_renders_as(&ev, "{\"specversion\":\"1.0\",\"id\":\"0123456789abcdef\","
                           "\"source\":\"rest2mqtt://bridge-1/weather\","
                           "\"type\":\"rest2mqtt.document.changed\","
                           "\"time\":\"2026-11-27T08:15:02.113Z\","
                           "\"datacontenttype\":\"application/json\","
                           "\"data\":{\"endpoint\":\"weather\",\"op\":\"changed\","
                           "\"before\":{\"t\":1},\"after\":{\"t\":2},"
                           "\"patch\":[{\"op\":\"replace\",\"path\":\"/t\",\"value\":2}]}}");
}

static void test_an_item_event_carries_its_key_as_subject_and_in_data(void **state)
{
    (void)state;
    struct r2m_event ev = item_event();
    assert_renders_as(&ev, "{\"specversion\":\"1.0\",\"id\":\"fedcba9876543210\","
                           "\"source\":\"rest2mqtt://bridge-1/sensors\","
                           "\"type\":\"rest2mqtt.item.updated\","
                           "\"subject\":\"sensor-7\","
                           "\"time\":\"2026-11-27T08:15:02.113Z\","
                           "\"datacontenttype\":\"application/json\","
                           "\"data\":{\"endpoint\":\"sensors\",\"key\":\"sensor-7\","
                           "\"op\":\"updated\","
                           "\"before\":{\"id\":\"sensor-7\",\"on\":false},"
                           "\"after\":{\"id\":\"sensor-7\",\"on\":true},"
                           "\"patch\":[{\"op\":\"replace\",\"path\":\"/on\",\"value\":true}]}}");
}

static void test_a_created_item_has_null_before(void **state)
{
    (void)state;
    struct r2m_event ev = item_event();
    ev.type = "rest2mqtt.item.created";
    ev.op = "created";
    set_before(&ev, NULL);
    set_patch(&ev, NULL);
    assert_renders_as(&ev, "{\"specversion\":\"1.0\",\"id\":\"fedcba9876543210\","
                           "\"source\":\"rest2mqtt://bridge-1/sensors\","
                           "\"type\":\"rest2mqtt.item.created\","
                           "\"subject\":\"sensor-7\","
                           "\"time\":\"2026-11-27T08:15:02.113Z\","
                           "\"datacontenttype\":\"application/json\","
                           "\"data\":{\"endpoint\":\"sensors\",\"key\":\"sensor-7\","
                           "\"op\":\"created\",\"before\":null,"
                           "\"after\":{\"id\":\"sensor-7\",\"on\":true}}}");
}

static void test_a_deleted_item_has_null_after(void **state)
{
    (void)state;
    struct r2m_event ev = item_event();
    ev.type = "rest2mqtt.item.deleted";
    ev.op = "deleted";
    set_after(&ev, NULL);
    set_patch(&ev, NULL);
    assert_renders_as(&ev, "{\"specversion\":\"1.0\",\"id\":\"fedcba9876543210\","
                           "\"source\":\"rest2mqtt://bridge-1/sensors\","
                           "\"type\":\"rest2mqtt.item.deleted\","
                           "\"subject\":\"sensor-7\","
                           "\"time\":\"2026-11-27T08:15:02.113Z\","
                           "\"datacontenttype\":\"application/json\","
                           "\"data\":{\"endpoint\":\"sensors\",\"key\":\"sensor-7\","
                           "\"op\":\"deleted\","
                           "\"before\":{\"id\":\"sensor-7\",\"on\":false},"
                           "\"after\":null}}");
}

static void test_the_patch_member_is_omitted_when_there_is_no_patch(void **state)
{
    (void)state;
    struct r2m_event ev = document_event();
    set_patch(&ev, NULL);
    assert_renders_as(&ev, "{\"specversion\":\"1.0\",\"id\":\"0123456789abcdef\","
                           "\"source\":\"rest2mqtt://bridge-1/weather\","
                           "\"type\":\"rest2mqtt.document.changed\","
                           "\"time\":\"2026-11-27T08:15:02.113Z\","
                           "\"datacontenttype\":\"application/json\","
                           "\"data\":{\"endpoint\":\"weather\",\"op\":\"changed\","
                           "\"before\":{\"t\":1},\"after\":{\"t\":2}}}");
}

static void test_both_sides_null_render_as_null(void **state)
{
    (void)state;
    struct r2m_event ev = document_event();
    set_before(&ev, NULL);
    set_after(&ev, NULL);
    set_patch(&ev, NULL);
    assert_renders_as(&ev, "{\"specversion\":\"1.0\",\"id\":\"0123456789abcdef\","
                           "\"source\":\"rest2mqtt://bridge-1/weather\","
                           "\"type\":\"rest2mqtt.document.changed\","
                           "\"time\":\"2026-11-27T08:15:02.113Z\","
                           "\"datacontenttype\":\"application/json\","
                           "\"data\":{\"endpoint\":\"weather\",\"op\":\"changed\","
                           "\"before\":null,\"after\":null}}");
}

static void test_fragments_are_copied_by_their_length_not_to_a_nul(void **state)
{
    (void)state;
    /* fragments point into larger stored buffers */
    static const char store[] = "{\"t\":1}{\"t\":2}[]trailing";
    struct r2m_event ev = document_event();
    ev.before = store;
    ev.before_len = 7;
    ev.after = store + 7;
    ev.after_len = 7;
    ev.patch = store + 14;
    ev.patch_len = 2;
    assert_renders_as(&ev, "{\"specversion\":\"1.0\",\"id\":\"0123456789abcdef\","
                           "\"source\":\"rest2mqtt://bridge-1/weather\","
                           "\"type\":\"rest2mqtt.document.changed\","
                           "\"time\":\"2026-11-27T08:15:02.113Z\","
                           "\"datacontenttype\":\"application/json\","
                           "\"data\":{\"endpoint\":\"weather\",\"op\":\"changed\","
                           "\"before\":{\"t\":1},\"after\":{\"t\":2},\"patch\":[]}}");
}

static void test_render_appends_to_what_the_buffer_already_holds(void **state)
{
    (void)state;
    struct r2m_event ev = document_event();
    struct r2m_buf b;
    r2m_buf_init(&b, 1 << 16);
    assert_int_equal(r2m_buf_puts(&b, "first\n"), 0);
    assert_int_equal(r2m_event_render(&ev, &b), 0);
    assert_memory_equal(b.data, "first\n{\"specversion\":\"1.0\",", 26);
    assert_int_equal(b.data[b.len - 1], '}');
    assert_null(strchr(b.data + 6, '\n')); /* one line, no trailing newline */
    r2m_buf_free(&b);
}

static void test_strings_are_json_quoted_including_inside_source(void **state)
{
    (void)state;
    struct r2m_event ev = item_event();
    ev.instance = "host \"a\"";
    ev.endpoint = "back\\slash";
    ev.key = "k\"1\n";
    set_patch(&ev, NULL);
    assert_renders_as(&ev, "{\"specversion\":\"1.0\",\"id\":\"fedcba9876543210\","
                           "\"source\":\"rest2mqtt://host \\\"a\\\"/back\\\\slash\","
                           "\"type\":\"rest2mqtt.item.updated\","
                           "\"subject\":\"k\\\"1\\n\","
                           "\"time\":\"2026-11-27T08:15:02.113Z\","
                           "\"datacontenttype\":\"application/json\","
                           "\"data\":{\"endpoint\":\"back\\\\slash\",\"key\":\"k\\\"1\\n\","
                           "\"op\":\"updated\","
                           "\"before\":{\"id\":\"sensor-7\",\"on\":false},"
                           "\"after\":{\"id\":\"sensor-7\",\"on\":true}}}");

    /* and the line is JSON whose members decode back to the raw names */
    struct r2m_buf b;
    r2m_buf_init(&b, 1 << 16);
    assert_int_equal(r2m_event_render(&ev, &b), 0);
    struct r2m_json_doc *doc;
    struct r2m_json *root;
    assert_int_equal(r2m_json_doc_new(&doc, NULL), 0);
    assert_int_equal(r2m_json_parse(doc, b.data, b.len, &root, NULL, 0), 0);
    struct r2m_json *src = r2m_json_pointer(root, "/source");
    assert_non_null(src);
    assert_int_equal(src->type, R2M_JSON_STRING);
    assert_int_equal(src->n, strlen("rest2mqtt://host \"a\"/back\\slash"));
    assert_memory_equal(src->u.str, "rest2mqtt://host \"a\"/back\\slash", src->n);
    struct r2m_json *key = r2m_json_pointer(root, "/data/key");
    assert_non_null(key);
    assert_int_equal(key->n, 4);
    assert_memory_equal(key->u.str, "k\"1\n", 4);
    r2m_json_doc_free(doc);
    r2m_buf_free(&b);
}

static void test_every_event_line_is_valid_json(void **state)
{
    (void)state;
    struct r2m_event evs[] = {document_event(), item_event(), item_event()};
    set_before(&evs[2], NULL);
    set_patch(&evs[2], NULL);
    struct r2m_json_doc *doc;
    assert_int_equal(r2m_json_doc_new(&doc, NULL), 0);
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++) {
        struct r2m_buf b;
        r2m_buf_init(&b, 1 << 16);
        assert_int_equal(r2m_event_render(&evs[i], &b), 0);
        struct r2m_json *root;
        char err[128];
        int r = r2m_json_parse(doc, b.data, b.len, &root, err, sizeof err);
        if (r)
            fail_msg("event %zu is not JSON: %s", i, err);
        struct r2m_json *v = r2m_json_pointer(root, "/specversion");
        assert_non_null(v);
        assert_memory_equal(v->u.str, "1.0", 3);
        r2m_buf_free(&b);
    }
    r2m_json_doc_free(doc);
}

static void test_a_buffer_too_small_for_the_event_is_reported(void **state)
{
    (void)state;
    struct r2m_event ev = item_event();
    struct r2m_buf b;
    r2m_buf_init(&b, 1 << 16);
    assert_int_equal(r2m_event_render(&ev, &b), 0);
    size_t full = b.len;
    r2m_buf_free(&b);

    /* every ceiling short of the full line fails, whichever piece hits it */
    for (size_t max = 0; max < full; max++) {
        r2m_buf_init(&b, max);
        assert_int_equal(r2m_event_render(&ev, &b), R2M_E_TOO_BIG);
        r2m_buf_free(&b);
    }
    r2m_buf_init(&b, full);
    assert_int_equal(r2m_event_render(&ev, &b), 0);
    assert_int_equal(b.len, full);
    r2m_buf_free(&b);
}

/* ---- time ----------------------------------------------------------------- */

static void test_time_is_rfc3339_utc_with_milliseconds(void **state)
{
    (void)state;
    static const struct {
        int64_t ms;
        const char *text;
    } cases[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {1, "1970-01-01T00:00:00.001Z"},
        {10, "1970-01-01T00:00:00.010Z"},
        {999, "1970-01-01T00:00:00.999Z"},
        {1000, "1970-01-01T00:00:01.000Z"},
        {86399999, "1970-01-01T23:59:59.999Z"},
        {INT64_C(946684800000), "2000-01-01T00:00:00.000Z"},
        {INT64_C(1709251199999), "2024-02-29T23:59:59.999Z"},
        {T_2026, "2026-11-27T08:15:02.113Z"},
        {INT64_C(253402300799999), "9999-12-31T23:59:59.999Z"},
        /* a clock set before 1970 still gives a valid timestamp */
        {-1, "1969-12-31T23:59:59.999Z"},
        {-1000, "1969-12-31T23:59:59.000Z"},
        {-1001, "1969-12-31T23:59:58.999Z"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[32];
        memset(out, 'x', sizeof out);
        r2m_event_time(cases[i].ms, out);
        if (strcmp(out, cases[i].text) != 0)
            fail_msg("%lld ms gave \"%s\", expected \"%s\"", (long long)cases[i].ms, out,
                     cases[i].text);
        assert_int_equal(strlen(out), 24);
    }
}

static void test_time_at_the_ends_of_the_range_stays_in_its_buffer(void **state)
{
    (void)state;
    static const int64_t extremes[] = {INT64_MAX, INT64_MIN, INT64_MIN + 1};
    for (size_t i = 0; i < sizeof extremes / sizeof extremes[0]; i++) {
        char out[32];
        r2m_event_time(extremes[i], out);
        size_t n = strnlen(out, sizeof out);
        assert_true(n < sizeof out);
        assert_int_equal(out[n - 1], 'Z');
        assert_int_equal(out[n - 5], '.');
    }
}

/* ---- ids ------------------------------------------------------------------ */

struct id_input {
    uint64_t epoch;
    const char *endpoint;
    const char *key;
    const char *op;
    struct r2m_fp before, after;
    uint64_t seq;
};

static const struct id_input base = {
    .epoch = 3,
    .endpoint = "sensors",
    .key = "sensor-7",
    .op = "updated",
    .before = {0x1111111111111111ull, 0x2222222222222222ull},
    .after = {0x3333333333333333ull, 0x4444444444444444ull},
    .seq = 42,
};

static void id_of(const struct id_input *in, char id[17])
{
    r2m_event_id(id, in->epoch, in->endpoint, in->key, 0, in->op, in->before, in->after, in->seq);
}

static void assert_id_shape(const char *id)
{
    assert_int_equal(strlen(id), 16);
    for (size_t i = 0; i < 16; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            fail_msg("id \"%s\" has '%c' at %zu; want lowercase hex", id, id[i], i);
}

static void test_an_id_is_16_lowercase_hex_digits(void **state)
{
    (void)state;
    char id[17];
    memset(id, 'x', sizeof id);
    id_of(&base, id);
    assert_id_shape(id);

    /* a zero epoch and seq, a NULL key and zero fingerprints as well */
    struct id_input zero = {0, "e", NULL, "changed", {0, 0}, {0, 0}, 0};
    id_of(&zero, id);
    assert_id_shape(id);
}

static void test_equal_inputs_give_the_same_id(void **state)
{
    (void)state;
    char a[17], b[17];
    id_of(&base, a);
    id_of(&base, b);
    assert_string_equal(a, b);

    /* equal by value, stored elsewhere: only the bytes of the strings count */
    char endpoint[] = "sensors", key[] = "sensor-7", op[] = "updated";
    struct id_input copy = base;
    copy.endpoint = endpoint;
    copy.key = key;
    copy.op = op;
    id_of(&copy, b);
    assert_string_equal(a, b);
}

static void test_changing_any_single_input_changes_the_id(void **state)
{
    (void)state;
    struct id_input v[32];
    const char *what[32];
    size_t n = 0;
#define VARIANT(label, stmt)                                                                       \
    do {                                                                                           \
        v[n] = base;                                                                               \
        struct id_input *in = &v[n];                                                               \
        stmt;                                                                                      \
        what[n++] = label;                                                                         \
    } while (0)
    VARIANT("base", (void)in);
    VARIANT("epoch", in->epoch = 4);
    VARIANT("epoch 0", in->epoch = 0);
    VARIANT("endpoint", in->endpoint = "sensorz");
    VARIANT("key NULL", in->key = NULL);
    VARIANT("key empty", in->key = "");
    VARIANT("key", in->key = "sensor-8");
    VARIANT("op", in->op = "created");
    VARIANT("before.hi", in->before.hi ^= 1);
    VARIANT("before.lo", in->before.lo ^= 1);
    VARIANT("after.hi", in->after.hi ^= 1);
    VARIANT("after.lo", in->after.lo ^= 1);
    VARIANT("before and after swapped", (in->before = base.after, in->after = base.before));
    VARIANT("halves of before swapped",
            (in->before.hi = base.before.lo, in->before.lo = base.before.hi));
    VARIANT("seq", in->seq = 43);
    VARIANT("seq 0", in->seq = 0);
    /* string boundaries are part of the identity */
    VARIANT("endpoint/key boundary", (in->endpoint = "sensorssensor", in->key = "-7"));
    VARIANT("key/op boundary", (in->key = "sensor-7updated", in->op = ""));
    VARIANT("endpoint/key boundary, no key", (in->endpoint = "sensorssensor-7", in->key = NULL));
#undef VARIANT

    char ids[32][17];
    for (size_t i = 0; i < n; i++) {
        id_of(&v[i], ids[i]);
        assert_id_shape(ids[i]);
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (strcmp(ids[i], ids[j]) == 0)
                fail_msg("\"%s\" and \"%s\" share the id %s", what[i], what[j], ids[i]);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_ids_of_consecutive_changes_do_not_collide(void **state)
{
    (void)state;
    /* one endpoint's stream of changes: only seq moves */
    enum { N = 20000 };
    uint64_t *seen = malloc(N * sizeof *seen);
    assert_non_null(seen);
    struct id_input in = base;
    for (size_t i = 0; i < N; i++) {
        char id[17];
        in.seq = i;
        id_of(&in, id);
        seen[i] = strtoull(id, NULL, 16);
    }
    qsort(seen, N, sizeof *seen, cmp_u64);
    for (size_t i = 1; i < N; i++)
        if (seen[i - 1] == seen[i])
            fail_msg("two sequence numbers share the id %016llx", (unsigned long long)seen[i]);
    free(seen);
}

/* ---- keys with NUL, the UTF-8 guard ---------------------------------------- */

static void test_a_key_with_a_nul_is_its_own_subject_and_id(void **state)
{
    (void)state;
    struct r2m_event ev = item_event();
    ev.key = "a\0b";
    ev.key_len = 3;
    struct r2m_buf b;
    r2m_buf_init(&b, 1 << 16);
    assert_int_equal(r2m_event_render(&ev, &b), 0);
    assert_non_null(strstr(b.data, "\"subject\":\"a\\u0000b\","));
    assert_non_null(strstr(b.data, "\"key\":\"a\\u0000b\","));
    r2m_buf_free(&b);

    struct r2m_fp z = {0, 0};
    char with_nul[17], cut[17], plain[17], plain0[17];
    r2m_event_id(with_nul, 1, "e", "a\0b", 3, "updated", z, z, 1);
    r2m_event_id(cut, 1, "e", "a", 1, "updated", z, z, 1);
    assert_string_not_equal(with_nul, cut);
    /* a key without NUL keeps the id it always had (key_len 0 = strlen) */
    r2m_event_id(plain, 1, "e", "sensor-7", 8, "updated", z, z, 1);
    r2m_event_id(plain0, 1, "e", "sensor-7", 0, "updated", z, z, 1);
    assert_string_equal(plain, plain0);
}

static void test_an_event_that_is_not_utf8_is_never_rendered(void **state)
{
    (void)state;
    struct r2m_buf b;
    r2m_buf_init(&b, 1 << 16);
    assert_int_equal(r2m_buf_puts(&b, "kept"), 0);
    struct r2m_event ev = item_event();
    set_after(&ev, "{\"s\":\"\xed\xa0\x80\"}");
    assert_int_equal(r2m_event_render(&ev, &b), R2M_E_INVALID);
    ev = item_event();
    ev.key = "\xc0\xaf";
    assert_int_equal(r2m_event_render(&ev, &b), R2M_E_INVALID);
    ev = item_event();
    ev.instance = "\xff";
    assert_int_equal(r2m_event_render(&ev, &b), R2M_E_INVALID);
    assert_string_equal(b.data, "kept"); /* nothing of them was left behind */
    assert_int_equal(b.len, 4);
    r2m_buf_free(&b);
}

static void test_each_event_type_has_its_cloudevents_name(void **state)
{
    (void)state;
    assert_string_equal(r2m_event_type_name(R2M_EVENT_DOCUMENT_CHANGED),
                        "rest2mqtt.document.changed");
    assert_string_equal(r2m_event_type_name(R2M_EVENT_ITEM_CREATED), "rest2mqtt.item.created");
    assert_string_equal(r2m_event_type_name(R2M_EVENT_ITEM_UPDATED), "rest2mqtt.item.updated");
    assert_string_equal(r2m_event_type_name(R2M_EVENT_ITEM_DELETED), "rest2mqtt.item.deleted");
    assert_null(r2m_event_type_name(R2M_EVENT_TYPE_NONE));
    assert_null(r2m_event_type_name(R2M_EVENT_TYPES));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_document_event_renders_exactly),
        cmocka_unit_test(test_an_item_event_carries_its_key_as_subject_and_in_data),
        cmocka_unit_test(test_a_created_item_has_null_before),
        cmocka_unit_test(test_a_deleted_item_has_null_after),
        cmocka_unit_test(test_the_patch_member_is_omitted_when_there_is_no_patch),
        cmocka_unit_test(test_both_sides_null_render_as_null),
        cmocka_unit_test(test_fragments_are_copied_by_their_length_not_to_a_nul),
        cmocka_unit_test(test_render_appends_to_what_the_buffer_already_holds),
        cmocka_unit_test(test_strings_are_json_quoted_including_inside_source),
        cmocka_unit_test(test_every_event_line_is_valid_json),
        cmocka_unit_test(test_a_buffer_too_small_for_the_event_is_reported),
        cmocka_unit_test(test_a_key_with_a_nul_is_its_own_subject_and_id),
        cmocka_unit_test(test_an_event_that_is_not_utf8_is_never_rendered),
        cmocka_unit_test(test_time_is_rfc3339_utc_with_milliseconds),
        cmocka_unit_test(test_time_at_the_ends_of_the_range_stays_in_its_buffer),
        cmocka_unit_test(test_an_id_is_16_lowercase_hex_digits),
        cmocka_unit_test(test_equal_inputs_give_the_same_id),
        cmocka_unit_test(test_changing_any_single_input_changes_the_id),
        cmocka_unit_test(test_ids_of_consecutive_changes_do_not_collide),
        cmocka_unit_test(test_each_event_type_has_its_cloudevents_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
