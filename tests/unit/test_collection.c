/* test_collection.c - the keyed-collection differ, rule by rule.
 *
 * Each case feeds response bodies to the collection poller as the bridge
 * does after a successful fetch, and checks the exact sequence of
 * (topic, type, subject, patch) it emits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r2m/error.h"
#include "r2m/poller.h"

#define MAX_MSGS 64

struct msg {
    char topic[256];
    char payload[4096];
    int retained;
};

struct sink {
    int n;
    int refuse;
    struct msg m[MAX_MSGS];
};

static int record(void *ctx, const struct r2m_batch *b, r2m_persist_fn *persist, void *pctx,
                  char *err, size_t errlen)
{
    struct sink *s = ctx;
    assert_non_null(persist); /* every accepted poll hands over its new snapshot */
    assert_non_null(pctx);
    if (s->refuse) {
        snprintf(err, errlen, "outbox full; the change will be retried");
        return R2M_E_TOO_BIG;
    }
    for (size_t i = 0; i < b->n && s->n < MAX_MSGS; i++, s->n++) {
        snprintf(s->m[s->n].topic, sizeof s->m[s->n].topic, "%s", r2m_batch_topic(b, i));
        snprintf(s->m[s->n].payload, sizeof s->m[s->n].payload, "%s", r2m_batch_payload(b, i));
        s->m[s->n].retained = b->msgs[i].retained;
    }
    return 0;
}

struct fixture {
    struct r2m_config cfg;
    struct r2m_endpoint_cfg ep;
    struct r2m_poll_env env;
    struct sink sink;
    void *state;
    char err[512];
    char *keys[2];
    char *ignore[3];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->keys[0] = "/id";
    f->ignore[0] = "/updatedAt";
    f->ignore[1] = "/meta/*";
    f->ignore[2] = "/lines/*/seenAt";
    f->ep = (struct r2m_endpoint_cfg){
        .name = "shipments",
        .url = "http://127.0.0.1/",
        .method = "GET",
        .max_body = 1 << 20,
        .items = "/data",
        .key = f->keys,
        .n_key = 1,
        .ignore = f->ignore,
        .n_ignore = 3,
        .topic = "{prefix}/{endpoint}/{key}/{op}",
    };
    f->cfg.instance = "edge";
    f->cfg.mqtt.topic_prefix = "r2m";
    f->cfg.endpoints = &f->ep;
    f->cfg.n_endpoints = 1;
    if (r2m_poll_env_init(&f->env, &f->cfg))
        return -1;
    f->env.emit = record;
    f->env.emit_ctx = &f->sink;
    f->env.wall_ms = 1795767302113;
    f->env.epoch = 1;
    if (r2m_poller_collection.create(&f->state, &f->ep))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    r2m_poller_collection.destroy(f->state);
    r2m_poll_env_cleanup(&f->env);
    free(f);
    return 0;
}

static int feed(struct fixture *f, const char *body)
{
    f->err[0] = '\0';
    return r2m_poller_collection.on_body(f->state, &f->ep, &f->env, body, strlen(body), f->err,
                                         sizeof f->err);
}

/* Feeds a body that must succeed and returns how many messages it added. */
static int ok(struct fixture *f, const char *body)
{
    int before = f->sink.n;
    int r = feed(f, body);
    if (r)
        fail_msg("poll failed: %s (%s)", f->err, body);
    return f->sink.n - before;
}

static void has(const struct msg *m, const char *frag)
{
    if (!strstr(m->payload, frag))
        fail_msg("payload lacks %s:\n%s", frag, m->payload);
}

static void baseline_then_created_updated_deleted_in_key_order(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(ok(f, "{\"data\":[{\"id\":1,\"s\":\"a\"},{\"id\":2,\"s\":\"b\"},"
                           "{\"id\":3,\"s\":\"c\"}]}"),
                     0);
    /* 1 deleted, 2 updated, 3 unchanged, 4 created - listed out of order */
    assert_int_equal(ok(f, "{\"data\":[{\"id\":4,\"s\":\"d\"},{\"id\":3,\"s\":\"c\"},"
                           "{\"id\":2,\"s\":\"B\"}]}"),
                     3);
    assert_string_equal(f->sink.m[0].topic, "r2m/shipments/1/deleted");
    has(&f->sink.m[0], "\"type\":\"rest2mqtt.item.deleted\",\"subject\":\"1\"");
    has(&f->sink.m[0], "\"op\":\"deleted\",\"before\":{\"id\":1,\"s\":\"a\"}}}");
    assert_string_equal(f->sink.m[1].topic, "r2m/shipments/2/updated");
    has(&f->sink.m[1], "\"type\":\"rest2mqtt.item.updated\",\"subject\":\"2\"");
    has(&f->sink.m[1], "\"before\":{\"id\":2,\"s\":\"b\"},\"after\":{\"id\":2,\"s\":\"B\"},"
                       "\"patch\":[{\"op\":\"replace\",\"path\":\"/s\",\"value\":\"B\"}]");
    assert_string_equal(f->sink.m[2].topic, "r2m/shipments/4/created");
    has(&f->sink.m[2], "\"type\":\"rest2mqtt.item.created\",\"subject\":\"4\"");
    has(&f->sink.m[2], "\"op\":\"created\",\"after\":{\"id\":4,\"s\":\"d\"}}}");
    assert_null(strstr(f->sink.m[2].payload, "\"before\""));
    assert_null(strstr(f->sink.m[2].payload, "\"patch\""));
}

static void reorder_keys_and_ignored_fields_produce_nothing(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(
        ok(f, "{\"data\":[{\"id\":1,\"v\":1,\"updatedAt\":\"t1\",\"meta\":{\"etag\":\"x\"},"
              "\"lines\":[{\"sku\":\"a\",\"seenAt\":1}]},{\"id\":2,\"v\":2}]}"),
        0);
    assert_int_equal(
        ok(f, "{\"data\":[{\"v\":2,\"id\":2},{\"lines\":[{\"seenAt\":9,\"sku\":\"a\"}],"
              "\"meta\":{\"etag\":\"y\",\"n\":3},\"updatedAt\":\"t2\",\"v\":1.0,\"id\":1}]}"),
        0);
    /* a change beside the ignored ones is seen, and the patch names only it */
    assert_int_equal(
        ok(f, "{\"data\":[{\"id\":1,\"v\":1,\"updatedAt\":\"t3\",\"meta\":{\"z\":0},"
              "\"lines\":[{\"sku\":\"b\",\"seenAt\":2}]},{\"id\":2,\"v\":2}]}"),
        1);
    has(&f->sink.m[0], "\"patch\":[{\"op\":\"replace\",\"path\":\"/lines/0/sku\",\"value\":"
                       "\"b\"}]");
    assert_null(strstr(f->sink.m[0].payload, "updatedAt"));
}

static void legitimate_empty_list_deletes_everything(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(ok(f, "{\"data\":[{\"id\":\"a\"},{\"id\":\"b\"}]}"), 0);
    assert_int_equal(ok(f, "{\"data\":[]}"), 2);
    assert_string_equal(f->sink.m[0].topic, "r2m/shipments/a/deleted");
    assert_string_equal(f->sink.m[1].topic, "r2m/shipments/b/deleted");
    assert_int_equal(ok(f, "{\"data\":[]}"), 0);
    assert_int_equal(ok(f, "{\"data\":[{\"id\":\"a\"}]}"), 1);
    assert_string_equal(f->sink.m[2].topic, "r2m/shipments/a/created");
}

static void failed_polls_delete_nothing(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(ok(f, "{\"data\":[{\"id\":1},{\"id\":2}]}"), 0);
    static const struct {
        const char *body;
        int code;
        const char *msg;
    } bad[] = {
        {"{\"data\":[{\"id\":1},", R2M_E_JSON_SYNTAX, "invalid JSON"},
        {"<html>502 Bad Gateway</html>", R2M_E_JSON_SYNTAX, "invalid JSON"},
        {"{\"error\":\"maintenance\"}", R2M_E_NOT_FOUND, "items pointer /data not found"},
        {"{\"data\":null}", R2M_E_INVALID, "items at /data is null, expected an array"},
        {"{\"data\":\"[]\"}", R2M_E_INVALID, "is a string"},
        {"{\"data\":[{\"id\":1},{\"name\":\"x\"}]}", R2M_E_NOT_FOUND, "item 1 has no key at /id"},
        {"{\"data\":[{\"id\":{\"x\":1}}]}", R2M_E_INVALID, "key /id of item 0 is an object"},
        {"{\"data\":[{\"id\":true}]}", R2M_E_INVALID, "key /id of item 0 is true"},
        {"{\"data\":[{\"id\":\"\"}]}", R2M_E_INVALID, "empty string"},
        {"{\"data\":[{\"id\":1},{\"id\":2},{\"id\":1.0}]}", R2M_E_INVALID,
         "duplicate key \"1\" in items 0 and 2 of /data"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int r = feed(f, bad[i].body);
        if (r != bad[i].code || !strstr(f->err, bad[i].msg))
            fail_msg("%s: got %d '%s', want %d '%s'", bad[i].body, r, f->err, bad[i].code,
                     bad[i].msg);
    }
    assert_int_equal(f->sink.n, 0);
    /* the snapshot survived: the same list is still no change */
    assert_int_equal(ok(f, "{\"data\":[{\"id\":2},{\"id\":1}]}"), 0);
}

static void composite_keys(void **state)
{
    struct fixture *f = *state;
    f->keys[0] = "/order";
    f->keys[1] = "/line";
    f->ep.n_key = 2;
    assert_int_equal(ok(f, "{\"data\":[{\"order\":\"A,1\",\"line\":1,\"q\":1},"
                           "{\"order\":\"A\",\"line\":1,\"q\":1}]}"),
                     0);
    assert_int_equal(ok(f, "{\"data\":[{\"order\":\"A,1\",\"line\":1,\"q\":2},"
                           "{\"order\":\"A\",\"line\":1,\"q\":1}]}"),
                     1);
    /* ',' inside a part is encoded, so "A,1"+1 and "A"+"1,1" cannot collide */
    has(&f->sink.m[0], "\"subject\":\"A%2C1,1\"");
    assert_string_equal(f->sink.m[0].topic, "r2m/shipments/A%252C1,1/updated");
}

static void object_of_items_keyed_by_member_name(void **state)
{
    struct fixture *f = *state;
    f->ep.items = "";
    f->ep.n_key = 0;
    assert_int_equal(ok(f, "{\"LH1\":{\"gate\":\"A\"},\"LH2\":{\"gate\":\"B\"}}"), 0);
    assert_int_equal(ok(f, "{\"LH2\":{\"gate\":\"C\"},\"LH1\":{\"gate\":\"A\"}}"), 1);
    assert_string_equal(f->sink.m[0].topic, "r2m/shipments/LH2/updated");
    /* an array needs key: */
    assert_int_equal(feed(f, "[{\"gate\":\"A\"}]"), R2M_E_INVALID);
    assert_non_null(strstr(f->err, "set key:"));
}

static void payload_modes(void **state)
{
    struct fixture *f = *state;
    f->ep.payload = R2M_PAYLOAD_PATCH;
    assert_int_equal(ok(f, "{\"data\":[{\"id\":1,\"v\":1},{\"id\":2}]}"), 0);
    assert_int_equal(ok(f, "{\"data\":[{\"id\":1,\"v\":2},{\"id\":3}]}"), 3);
    has(&f->sink.m[0], "\"op\":\"updated\",\"patch\":[{\"op\":\"replace\",\"path\":\"/v\"");
    assert_null(strstr(f->sink.m[0].payload, "\"after\""));
    has(&f->sink.m[1], "\"op\":\"deleted\",\"patch\":[{\"op\":\"remove\",\"path\":\"\"}]}}");
    has(&f->sink.m[2], "\"op\":\"created\",\"patch\":[{\"op\":\"add\",\"path\":\"\",\"value\":"
                       "{\"id\":3}}]}}");
    f->ep.payload = R2M_PAYLOAD_AFTER;
    assert_int_equal(ok(f, "{\"data\":[{\"id\":1,\"v\":3}]}"), 2);
    has(&f->sink.m[3], "\"op\":\"updated\",\"after\":{\"id\":1,\"v\":3}}}");
    has(&f->sink.m[4], "\"op\":\"deleted\",\"after\":null}}");
}

static void initial_emit_creates_every_item(void **state)
{
    struct fixture *f = *state;
    f->ep.initial_emit = 1;
    assert_int_equal(ok(f, "{\"data\":[{\"id\":2},{\"id\":1}]}"), 2);
    assert_string_equal(f->sink.m[0].topic, "r2m/shipments/1/created");
    assert_string_equal(f->sink.m[1].topic, "r2m/shipments/2/created");
}

static void topic_values_are_escaped(void **state)
{
    struct fixture *f = *state;
    f->ep.topic = "{prefix}/{/region}/{key}";
    assert_int_equal(ok(f, "{\"data\":[]}"), 0);
    assert_int_equal(ok(f, "{\"data\":[{\"id\":\"a/+/#\",\"region\":\"$SYS\"}]}"), 1);
    assert_string_equal(f->sink.m[0].topic, "r2m/%24SYS/a%2F%2B%2F%23");
    /* deletes route on the before-image */
    assert_int_equal(ok(f, "{\"data\":[]}"), 1);
    assert_string_equal(f->sink.m[1].topic, "r2m/%24SYS/a%2F%2B%2F%23");
}

static void state_topic_retains_current_item(void **state)
{
    struct fixture *f = *state;
    f->ep.state_topic = "{prefix}/{endpoint}/{key}/state";
    assert_int_equal(ok(f, "{\"data\":[{\"id\":1,\"v\":1}]}"), 0);
    assert_int_equal(ok(f, "{\"data\":[{\"id\":1,\"v\":2},{\"id\":2,\"v\":0}]}"), 4);
    assert_string_equal(f->sink.m[1].topic, "r2m/shipments/1/state");
    assert_string_equal(f->sink.m[1].payload, "{\"id\":1,\"v\":2}");
    assert_int_equal(f->sink.m[1].retained, 1);
    assert_int_equal(f->sink.m[0].retained, 0);
    assert_int_equal(ok(f, "{\"data\":[{\"id\":2,\"v\":0}]}"), 2);
    assert_string_equal(f->sink.m[5].topic, "r2m/shipments/1/state");
    assert_string_equal(f->sink.m[5].payload, ""); /* cleared */
    assert_int_equal(f->sink.m[5].retained, 1);
}

static void full_outbox_keeps_old_snapshot(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(ok(f, "{\"data\":[{\"id\":1,\"v\":1}]}"), 0);
    f->sink.refuse = 1;
    assert_int_equal(feed(f, "{\"data\":[{\"id\":1,\"v\":2}]}"), R2M_E_TOO_BIG);
    f->sink.refuse = 0;
    assert_int_equal(ok(f, "{\"data\":[{\"id\":1,\"v\":3}]}"), 1);
    /* the net change from the last committed state */
    has(&f->sink.m[0], "\"before\":{\"id\":1,\"v\":1},\"after\":{\"id\":1,\"v\":3}");
}

static void flapping_items_never_share_an_id(void **state)
{
    struct fixture *f = *state;
    char ids[4][17];
    assert_int_equal(ok(f, "{\"data\":[{\"id\":1,\"s\":\"A\"}]}"), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(ok(f, i % 2 ? "{\"data\":[{\"id\":1,\"s\":\"A\"}]}"
                                     : "{\"data\":[{\"id\":1,\"s\":\"B\"}]}"),
                         1);
        const char *id = strstr(f->sink.m[i].payload, "\"id\":\"") + 6;
        memcpy(ids[i], id, 16);
        ids[i][16] = '\0';
    }
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            assert_string_not_equal(ids[i], ids[j]);
}

static void numeric_keys_compare_by_value(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(ok(f, "{\"data\":[{\"id\":12345678901234567891}]}"), 0);
    assert_int_equal(ok(f, "{\"data\":[{\"id\":1.2345678901234567891e19}]}"), 0);
    assert_int_equal(ok(f, "{\"data\":[{\"id\":12345678901234567892}]}"), 2);
    assert_string_equal(f->sink.m[0].topic, "r2m/shipments/12345678901234567891/deleted");
    assert_string_equal(f->sink.m[1].topic, "r2m/shipments/12345678901234567892/created");
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(baseline_then_created_updated_deleted_in_key_order),
        T(reorder_keys_and_ignored_fields_produce_nothing),
        T(legitimate_empty_list_deletes_everything),
        T(failed_polls_delete_nothing),
        T(composite_keys),
        T(object_of_items_keyed_by_member_name),
        T(payload_modes),
        T(initial_emit_creates_every_item),
        T(topic_values_are_escaped),
        T(state_topic_retains_current_item),
        T(full_outbox_keeps_old_snapshot),
        T(flapping_items_never_share_an_id),
        T(numeric_keys_compare_by_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
