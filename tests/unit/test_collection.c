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
#include "r2m/store.h"

#define MAX_MSGS 64

struct msg {
    char topic[256];
    char payload[4096];
    int retained;
    enum r2m_event_type type;
};

struct sink {
    int n;
    int refuse;
    struct r2m_store *store; /* when set, each accepted poll persists into it */
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
    if (s->store) {
        assert_int_equal(r2m_store_begin(s->store), 0);
        assert_int_equal(persist(pctx, s->store), 0);
        assert_int_equal(r2m_store_commit(s->store), 0);
    }
    for (size_t i = 0; i < b->n && s->n < MAX_MSGS; i++, s->n++) {
        snprintf(s->m[s->n].topic, sizeof s->m[s->n].topic, "%s", r2m_batch_topic(b, i));
        snprintf(s->m[s->n].payload, sizeof s->m[s->n].payload, "%s", r2m_batch_payload(b, i));
        s->m[s->n].retained = b->msgs[i].retained;
        s->m[s->n].type = b->msgs[i].type;
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
        fail_msg("payload lacks %s:\n%s\n%s", frag, m->topic, m->payload);
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
    assert_int_equal(ok(f, "{\"data\":[{\"id\":1,\"v\":1,\"updatedAt\":\"t3\",\"meta\":{\"z\":0},"
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
        /* text that is not Unicode is invalid JSON, wherever it is */
        {"{\"data\":[{\"id\":1},{\"id\":\"\\ud800\"}]}", R2M_E_JSON_SYNTAX,
         "invalid JSON at byte 25: lone UTF-16 surrogate \\ud800"},
        {"{\"data\":[{\"id\":1,\"n\":\"\xc0\xaf\"},{\"id\":2}]}", R2M_E_JSON_SYNTAX,
         "invalid JSON at byte 22: invalid UTF-8, overlong encoding"},
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

/* The event id of a recorded message. */
static void id_of(const struct msg *m, char id[17])
{
    const char *p = strstr(m->payload, "\"id\":\"");
    assert_non_null(p);
    memcpy(id, p + 6, 16);
    id[16] = '\0';
}

/* A key is bytes with a length, never a C string: "a\u0000b" and "a" are
 * two items with their own topic, subject and id. */
static void keys_that_differ_after_a_nul_stay_apart(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(ok(f, "{\"data\":[{\"id\":\"a\\u0000b\",\"v\":1},{\"id\":\"a\",\"v\":1}]}"),
                     0);
    assert_int_equal(ok(f, "{\"data\":[{\"id\":\"a\",\"v\":2},{\"id\":\"a\\u0000b\",\"v\":2}]}"),
                     2);
    assert_string_equal(f->sink.m[0].topic, "r2m/shipments/a/updated");
    has(&f->sink.m[0], "\"subject\":\"a\",");
    has(&f->sink.m[0], "\"key\":\"a\",");
    assert_string_equal(f->sink.m[1].topic, "r2m/shipments/a%00b/updated");
    has(&f->sink.m[1], "\"subject\":\"a\\u0000b\",");
    has(&f->sink.m[1], "\"key\":\"a\\u0000b\",");
    char id0[17], id1[17];
    id_of(&f->sink.m[0], id0);
    id_of(&f->sink.m[1], id1);
    assert_string_not_equal(id0, id1);
    /* deleting one leaves the other */
    assert_int_equal(ok(f, "{\"data\":[{\"id\":\"a\",\"v\":2}]}"), 1);
    assert_string_equal(f->sink.m[2].topic, "r2m/shipments/a%00b/deleted");
}

static void member_names_that_differ_after_a_nul_stay_apart(void **state)
{
    struct fixture *f = *state;
    f->ep.items = "";
    f->ep.n_key = 0;
    assert_int_equal(ok(f, "{\"x\\u0000y\":{\"v\":1},\"x\":{\"v\":1}}"), 0);
    assert_int_equal(ok(f, "{\"x\\u0000y\":{\"v\":2},\"x\":{\"v\":1}}"), 1);
    assert_string_equal(f->sink.m[0].topic, "r2m/shipments/x%00y/updated");
    has(&f->sink.m[0], "\"subject\":\"x\\u0000y\",");
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
    f->ep.state_topic = "{prefix}/{/region}/{key}/state";
    /* the silent baseline emits no event, but sets the retained state of
     * every item, so a late subscriber sees all of them */
    assert_int_equal(ok(f, "{\"data\":[{\"id\":2,\"v\":1,\"region\":\"eu\"},"
                           "{\"id\":1,\"v\":1,\"region\":\"us\"}]}"),
                     2);
    assert_string_equal(f->sink.m[0].topic, "r2m/us/1/state");
    assert_string_equal(f->sink.m[0].payload, "{\"id\":1,\"region\":\"us\",\"v\":1}");
    assert_int_equal(f->sink.m[0].retained, 1);
    assert_int_equal(f->sink.m[0].type, R2M_EVENT_TYPE_NONE);
    assert_string_equal(f->sink.m[1].topic, "r2m/eu/2/state");
    assert_null(strstr(f->sink.m[1].payload, "specversion")); /* a state, not an event */
    /* an update: the event, then the new retained state */
    assert_int_equal(ok(f, "{\"data\":[{\"id\":1,\"v\":2,\"region\":\"us\"},"
                           "{\"id\":2,\"v\":1,\"region\":\"eu\"}]}"),
                     2);
    assert_int_equal(f->sink.m[2].retained, 0);
    /* the type travels with the event: counting never reads the payload */
    assert_int_equal(f->sink.m[2].type, R2M_EVENT_ITEM_UPDATED);
    assert_string_equal(f->sink.m[2].topic, "r2m/shipments/1/updated");
    assert_string_equal(f->sink.m[3].topic, "r2m/us/1/state");
    assert_string_equal(f->sink.m[3].payload, "{\"id\":1,\"region\":\"us\",\"v\":2}");
    assert_int_equal(f->sink.m[3].retained, 1);
    assert_int_equal(f->sink.m[3].type, R2M_EVENT_TYPE_NONE);
    /* a delete clears it with an empty retained message (topic from the before-image) */
    assert_int_equal(ok(f, "{\"data\":[{\"id\":2,\"v\":1,\"region\":\"eu\"}]}"), 2);
    assert_string_equal(f->sink.m[5].topic, "r2m/us/1/state");
    assert_string_equal(f->sink.m[5].payload, "");
    assert_int_equal(f->sink.m[5].retained, 1);
    assert_int_equal(f->sink.m[4].type, R2M_EVENT_ITEM_DELETED);
    assert_non_null(strstr(f->sink.m[4].payload, "\"type\":\"rest2mqtt.item.deleted\""));
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

/* ---- streaming, shared snapshot records, unchanged bodies ---------------- */

static void out_of_order_keys_merge_in_key_order(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(ok(f, "{\"data\":[{\"id\":10},{\"id\":2},{\"id\":33,\"v\":1}]}"), 0);
    /* new keys land between the known ones: bytes order 1 10 2 25 33 4 */
    assert_int_equal(ok(f, "{\"data\":[{\"id\":33,\"v\":2},{\"id\":4},{\"id\":10},{\"id\":2},"
                           "{\"id\":1},{\"id\":25}]}"),
                     4);
    assert_string_equal(f->sink.m[0].topic, "r2m/shipments/1/created");
    assert_string_equal(f->sink.m[1].topic, "r2m/shipments/25/created");
    assert_string_equal(f->sink.m[2].topic, "r2m/shipments/33/updated");
    assert_string_equal(f->sink.m[3].topic, "r2m/shipments/4/created");
    /* duplicates among known keys and among new ones, out of order */
    assert_int_equal(feed(f, "{\"data\":[{\"id\":33},{\"id\":1},{\"id\":2},{\"id\":1}]}"),
                     R2M_E_INVALID);
    assert_string_equal(f->err, "duplicate key \"1\" in items 1 and 3 of /data");
    assert_int_equal(feed(f, "{\"data\":[{\"id\":33},{\"id\":7},{\"id\":2},{\"id\":7.0}]}"),
                     R2M_E_INVALID);
    assert_string_equal(f->err, "duplicate key \"7\" in items 1 and 3 of /data");
    assert_int_equal(feed(f, "{\"data\":[{\"id\":\"b\"},{\"id\":\"a\"},{\"id\":\"b\"},"
                             "{\"id\":\"a\"}]}"),
                     R2M_E_INVALID);
    assert_string_equal(f->err, "duplicate key \"a\" in items 1 and 3 of /data");
    /* nothing was taken from the refused polls */
    assert_int_equal(ok(f, "{\"data\":[{\"id\":25},{\"id\":1},{\"id\":4},{\"id\":10},{\"id\":2},"
                           "{\"id\":33,\"v\":2}]}"),
                     0);
}

static void duplicate_member_names_refused(void **state)
{
    struct fixture *f = *state;
    f->ep.items = "";
    f->ep.n_key = 0;
    assert_int_equal(ok(f, "{\"LH1\":{\"gate\":\"A\"}}"), 0);
    assert_int_equal(feed(f, "{\"LH1\":{\"gate\":\"A\"},\"LH2\":{},\"LH1\":{\"gate\":\"B\"}}"),
                     R2M_E_JSON_DUPKEY);
    assert_non_null(strstr(f->err, "duplicate key \"LH1\""));
    assert_int_equal(ok(f, "{\"LH1\":{\"gate\":\"A\"}}"), 0);
}

static void error_if_is_checked_before_the_items(void **state)
{
    struct fixture *f = *state;
    f->ep.error_if.pointer = "/status";
    f->ep.error_if.equals = "down";
    assert_int_equal(ok(f, "{\"status\":\"up\",\"data\":[{\"id\":1}]}"), 0);
    /* an error document whose items are unusable reports the API's error */
    assert_int_equal(feed(f, "{\"data\":[{\"name\":\"x\"}],\"status\":\"down\"}"),
                     R2M_E_HTTP_STATUS);
    assert_non_null(strstr(f->err, "(error_if)"));
    /* error_if inside the items: the items stay in the tree for it */
    f->ep.items = "";
    f->ep.n_key = 0;
    f->ep.error_if.pointer = "/error";
    f->ep.error_if.equals = "true";
    assert_int_equal(feed(f, "{\"LH1\":{\"gate\":\"A\"},\"error\":true}"), R2M_E_HTTP_STATUS);
    f->ep.items = "/data";
    f->ep.n_key = 1;
    f->ep.error_if.pointer = "/data/0/code";
    f->ep.error_if.equals = "503";
    assert_int_equal(feed(f, "{\"data\":[{\"code\":503}]}"), R2M_E_HTTP_STATUS);
    assert_int_equal(ok(f, "{\"data\":[{\"id\":1}]}"), 0);
    assert_int_equal(ok(f, "{\"data\":[{\"id\":1,\"code\":200}]}"), 1);
}

/* Runs one poll with env->doc taken away: only a poll that does not parse
 * can succeed. */
static int feed_unparsed(struct fixture *f, const char *body)
{
    struct r2m_json_doc *doc = f->env.doc;
    f->env.doc = NULL;
    int r = feed(f, body);
    f->env.doc = doc;
    return r;
}

static void same_bytes_are_not_parsed_again(void **state)
{
    struct fixture *f = *state;
    const char *a = "{\"data\":[{\"id\":1,\"v\":1}]}", *b = "{\"data\":[{\"id\":1,\"v\":2}]}";
    assert_int_equal(ok(f, a), 0); /* the baseline is parsed */
    assert_int_equal(feed_unparsed(f, a), 0);
    assert_int_equal(f->sink.n, 0);
    /* a refused emit does not count as seen: the retry parses and emits */
    f->sink.refuse = 1;
    assert_int_equal(feed(f, b), R2M_E_TOO_BIG);
    f->sink.refuse = 0;
    assert_int_equal(ok(f, b), 1);
    assert_int_equal(feed_unparsed(f, b), 0);
    assert_int_equal(ok(f, a), 1);
    /* a failed poll forgets the bytes too */
    assert_int_equal(feed(f, "{\"data\":[{\"id\":1},{\"id\":1}]}"), R2M_E_INVALID);
    assert_int_equal(ok(f, a), 0);
    assert_int_equal(feed_unparsed(f, a), 0);
}

static void pages_make_one_snapshot(void **state)
{
    struct fixture *f = *state;
    f->ep.paginate.kind = R2M_PAGE_NEXT;
    f->ep.paginate.pointer = "/next";
    const char *pages[][2] = {
        {"{\"data\":[{\"id\":1},{\"id\":3}],\"next\":\"/p2\"}", "{\"data\":[{\"id\":2}]}"},
        {"{\"data\":[{\"id\":1},{\"id\":3,\"v\":1}],\"next\":\"/p2\"}",
         "{\"data\":[{\"id\":4}],\"next\":null}"},
        {"{\"data\":[{\"id\":1}],\"next\":\"/p2\"}", "{\"data\":[{\"id\":4},{\"name\":\"x\"}]}"},
    };
    int want[] = {0, 3, -1};
    for (int i = 0; i < 3; i++) {
        int before = f->sink.n;
        struct r2m_page_next next;
        struct r2m_page pg = {0, "http://127.0.0.1/p1", NULL, NULL};
        f->err[0] = '\0';
        int r =
            r2m_poller_collection.on_page(f->state, &f->ep, &f->env, pages[i][0],
                                          strlen(pages[i][0]), &pg, &next, f->err, sizeof f->err);
        assert_int_equal(r, 0);
        assert_string_equal(next.url, "http://127.0.0.1/p2");
        pg.index = 1;
        pg.url = next.url;
        r = r2m_poller_collection.on_page(f->state, &f->ep, &f->env, pages[i][1],
                                          strlen(pages[i][1]), &pg, &next, f->err, sizeof f->err);
        if (want[i] < 0) {
            assert_int_equal(r, R2M_E_NOT_FOUND);
            assert_string_equal(f->err, "item 2 has no key at /id (page 2)");
            continue;
        }
        assert_int_equal(r, 0);
        assert_string_equal(next.url, "");
        assert_int_equal(
            r2m_poller_collection.on_pages_done(f->state, &f->ep, &f->env, f->err, sizeof f->err),
            0);
        assert_int_equal(f->sink.n - before, want[i]);
    }
    assert_string_equal(f->sink.m[0].topic, "r2m/shipments/2/deleted");
    assert_string_equal(f->sink.m[1].topic, "r2m/shipments/3/updated");
    assert_string_equal(f->sink.m[2].topic, "r2m/shipments/4/created");
    /* the failed poll left the snapshot of the second one */
    f->ep.paginate.kind = 0;
    assert_int_equal(ok(f, "{\"data\":[{\"id\":4},{\"id\":3,\"v\":1},{\"id\":1}]}"), 0);
}

/* A next-page value that is neither a URL/cursor nor an end marker (an
 * object such as HAL's {"href": ...}, an array, true) is pagination data
 * that cannot be read: the poll fails, it never reads as "last page". */
static void unreadable_next_value_fails_the_poll(void **state)
{
    struct fixture *f = *state;
    static const struct {
        int kind;
        const char *body;
    } bad[] = {
        {R2M_PAGE_NEXT, "{\"data\":[{\"id\":1}],\"next\":{\"href\":\"/p2\"}}"},
        {R2M_PAGE_NEXT, "{\"data\":[{\"id\":1}],\"next\":[\"/p2\"]}"},
        {R2M_PAGE_NEXT, "{\"data\":[{\"id\":1}],\"next\":true}"},
        {R2M_PAGE_CURSOR, "{\"data\":[{\"id\":1}],\"next\":{\"c\":\"abc\"}}"},
        {R2M_PAGE_CURSOR, "{\"data\":[{\"id\":1}],\"next\":[1]}"},
        {R2M_PAGE_CURSOR, "{\"data\":[{\"id\":1}],\"next\":true}"},
        /* a NUL would cut the value: another page than the one named */
        {R2M_PAGE_NEXT, "{\"data\":[{\"id\":1}],\"next\":\"/p2\\u0000/admin\"}"},
        {R2M_PAGE_CURSOR, "{\"data\":[{\"id\":1}],\"next\":\"abc\\u0000def\"}"},
    };
    static const char *const end[] = {
        "{\"data\":[{\"id\":1}]}",
        "{\"data\":[{\"id\":1}],\"next\":null}",
        "{\"data\":[{\"id\":1}],\"next\":\"\"}",
        "{\"data\":[{\"id\":1}],\"next\":false}",
    };
    f->ep.paginate.pointer = "/next";
    f->ep.paginate.param = "cursor";
    struct r2m_page_next next;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f->ep.paginate.kind = bad[i].kind;
        struct r2m_page pg = {0, "http://127.0.0.1/p1", NULL, NULL};
        f->err[0] = '\0';
        int r =
            r2m_poller_collection.on_page(f->state, &f->ep, &f->env, bad[i].body,
                                          strlen(bad[i].body), &pg, &next, f->err, sizeof f->err);
        assert_int_equal(r, R2M_E_INVALID);
        assert_string_equal(next.url, "");
        assert_non_null(strstr(f->err, "/next"));
        assert_non_null(strstr(f->err, "page 1"));
    }
    for (size_t k = 0; k < 2; k++) {
        f->ep.paginate.kind = k ? R2M_PAGE_CURSOR : R2M_PAGE_NEXT;
        for (size_t i = 0; i < sizeof end / sizeof end[0]; i++) {
            struct r2m_page pg = {0, "http://127.0.0.1/p1", NULL, NULL};
            assert_int_equal(r2m_poller_collection.on_page(f->state, &f->ep, &f->env, end[i],
                                                           strlen(end[i]), &pg, &next, f->err,
                                                           sizeof f->err),
                             0);
            assert_string_equal(next.url, "");
        }
    }
    assert_int_equal(f->sink.n, 0);
}

/* A model of a collection that changes a little every poll. */
static int present(int id, int poll)
{
    return (id + poll / 4) % 23 != 0;
}

static int value(int id, int poll)
{
    /* every poll changes one item in twelve: how often it was its turn */
    return poll < id % 12 ? 0 : (poll - id % 12) / 12 + 1;
}

static char *model_body(int poll, int n)
{
    char *b = malloc((size_t)n * 48 + 32);
    size_t k = (size_t)sprintf(b, "{\"data\":[");
    int first = 1;
    for (int at = 0; at < n; at++) {
        /* response order shifts with the poll, so the hint misses now and then */
        int i = (at + poll) % n;
        if (!present(i, poll))
            continue;
        k += (size_t)sprintf(b + k, "%s{\"id\":%d,\"v\":%d}", first ? "" : ",", i, value(i, poll));
        first = 0;
    }
    sprintf(b + k, "]}");
    return b;
}

static int model_changes(int poll, int n)
{
    int c = 0;
    for (int id = 0; id < n; id++) {
        int was = present(id, poll - 1), is = present(id, poll);
        c += was != is || (was && value(id, poll - 1) != value(id, poll));
    }
    return c;
}

static void many_polls_share_compact_persist_and_restore(void **state)
{
    struct fixture *f = *state;
    enum { N = 200, POLLS = 60 };
    char dir[] = "/tmp/r2m-test-coll-XXXXXX", path[64], err[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/state.db", dir);
    assert_int_equal(
        r2m_store_new(&(struct r2m_store_params){.path = path}, err, sizeof err, &f->sink.store),
        0);
    f->env.epoch = r2m_store_epoch(f->sink.store);

    char *body = model_body(0, N);
    assert_int_equal(ok(f, body), 0);
    free(body);
    for (int poll = 1; poll < POLLS; poll++) {
        body = model_body(poll, N);
        f->sink.n = 0;
        int want = model_changes(poll, N);
        assert_true(want < MAX_MSGS);
        assert_int_equal(ok(f, body), want);
        /* every updated item's before-image is the previous poll's */
        for (int i = 0; i < f->sink.n; i++) {
            int id;
            if (!strstr(f->sink.m[i].topic, "/updated"))
                continue;
            assert_int_equal(sscanf(f->sink.m[i].topic, "r2m/shipments/%d/", &id), 1);
            char frag[96];
            snprintf(frag, sizeof frag,
                     "\"before\":{\"id\":%d,\"v\":%d},\"after\":{\"id\":%d,"
                     "\"v\":%d}",
                     id, value(id, poll - 1), id, value(id, poll));
            has(&f->sink.m[i], frag);
        }
        assert_int_equal(ok(f, body), 0);
        free(body);
    }

    /* a poller restored from what was persisted continues exactly alike */
    void *again;
    struct r2m_store_endpoint row;
    assert_int_equal(r2m_poller_collection.create(&again, &f->ep), 0);
    assert_int_equal(r2m_store_endpoint_get(f->sink.store, "shipments", &row), 0);
    assert_true(row.found);
    int partial = -1;
    assert_int_equal(r2m_poller_collection.restore(again, &f->ep, f->sink.store, &row, &partial),
                     0);
    assert_int_equal(partial, 0);
    free(row.doc);
    free(row.etag);
    free(row.last_modified);
    r2m_store_free(f->sink.store);
    f->sink.store = NULL;
    body = model_body(POLLS, N);
    f->sink.n = 0;
    assert_int_equal(ok(f, body), model_changes(POLLS, N));
    struct msg want[MAX_MSGS];
    int n = f->sink.n;
    memcpy(want, f->sink.m, sizeof want);
    f->sink.n = 0;
    assert_int_equal(r2m_poller_collection.on_body(again, &f->ep, &f->env, body, strlen(body),
                                                   f->err, sizeof f->err),
                     0);
    assert_int_equal(f->sink.n, n);
    for (int i = 0; i < n; i++) {
        assert_string_equal(f->sink.m[i].topic, want[i].topic);
        assert_string_equal(f->sink.m[i].payload, want[i].payload);
    }
    free(body);
    r2m_poller_collection.destroy(again);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static int count_rows(void *ctx, const char *key, size_t key_len, struct r2m_fp fp,
                      const char *body, size_t body_len)
{
    (void)key, (void)key_len, (void)fp, (void)body, (void)body_len;
    ++*(int *)ctx;
    return 0;
}

/* A state file from before invalid text was refused may hold items whose
 * key or text is not UTF-8: they are forgotten at restore (and removed from
 * the store), so polls go on instead of failing on them for good. */
static void stored_items_with_invalid_text_are_forgotten(void **state)
{
    struct fixture *f = *state;
    char dir[] = "/tmp/r2m-test-coll-XXXXXX", path[64], err[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/state.db", dir);
    struct r2m_store *st;
    assert_int_equal(r2m_store_new(&(struct r2m_store_params){.path = path}, err, sizeof err, &st),
                     0);
    struct r2m_fp fp = {1, 2};
    assert_int_equal(r2m_store_begin(st), 0);
    assert_int_equal(r2m_store_endpoint_put(st, "shipments", fp, 5, NULL, 0, fp), 0);
    struct r2m_fp fp1 = r2m_json_fingerprint("{\"id\":1}", 8);
    assert_int_equal(r2m_store_item_put(st, "shipments", "1", 1, fp1, "{\"id\":1}", 8), 0);
    assert_int_equal(
        r2m_store_item_put(st, "shipments", "2", 1, fp, "{\"id\":2,\"s\":\"\xed\xb0\x80\"}", 18),
        0);
    assert_int_equal(r2m_store_item_put(st, "shipments", "\xc0\xaf", 2, fp, "{\"id\":3}", 8), 0);
    assert_int_equal(r2m_store_commit(st), 0);

    struct r2m_store_endpoint row;
    assert_int_equal(r2m_store_endpoint_get(st, "shipments", &row), 0);
    int partial = 0;
    assert_int_equal(r2m_poller_collection.restore(f->state, &f->ep, st, &row, &partial), 0);
    assert_int_equal(partial, 1); /* two items forgotten: no validators */
    free(row.doc);
    free(row.etag);
    free(row.last_modified);
    int rows = 0;
    assert_int_equal(r2m_store_items(st, "shipments", count_rows, &rows), 0);
    assert_int_equal(rows, 1); /* only item 1 is left in the store */
    r2m_store_free(st);
    /* item 1 unchanged, item 2 is back (created), nothing else happens */
    assert_int_equal(ok(f, "{\"data\":[{\"id\":1},{\"id\":2,\"s\":\"x\"}]}"), 1);
    assert_string_equal(f->sink.m[0].topic, "r2m/shipments/2/created");
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(baseline_then_created_updated_deleted_in_key_order),
        T(reorder_keys_and_ignored_fields_produce_nothing),
        T(legitimate_empty_list_deletes_everything),
        T(failed_polls_delete_nothing),
        T(keys_that_differ_after_a_nul_stay_apart),
        T(member_names_that_differ_after_a_nul_stay_apart),
        T(composite_keys),
        T(object_of_items_keyed_by_member_name),
        T(payload_modes),
        T(initial_emit_creates_every_item),
        T(topic_values_are_escaped),
        T(state_topic_retains_current_item),
        T(full_outbox_keeps_old_snapshot),
        T(flapping_items_never_share_an_id),
        T(numeric_keys_compare_by_value),
        T(out_of_order_keys_merge_in_key_order),
        T(duplicate_member_names_refused),
        T(error_if_is_checked_before_the_items),
        T(same_bytes_are_not_parsed_again),
        T(pages_make_one_snapshot),
        T(unreadable_next_value_fails_the_poll),
        T(many_polls_share_compact_persist_and_restore),
        T(stored_items_with_invalid_text_are_forgotten),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
