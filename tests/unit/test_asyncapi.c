/* test_asyncapi.c - the AsyncAPI document says exactly what a config publishes.
 *
 * A configuration goes in; the cases read the generated document back
 * (as JSON) and check the parts a consumer relies on: the broker, one
 * channel per topic template with its parameters, the send operations with
 * QoS and retain, and per event type which members `data` carries. The
 * real AsyncAPI parser and a JSON Schema validator check the whole
 * document in the e2e suite (tests/e2e/probe_cases.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "r2m/asyncapi.h"
#include "r2m/buf.h"
#include "r2m/config.h"
#include "r2m/error.h"
#include "r2m/json.h"
#include "r2m/yamltree.h"

static const char config_text[] = "mqtt:\n"
                                  "  url: mqtts://bridge:secret@broker.example:8883\n"
                                  "  client_id: edge-1\n"
                                  "  version: 3.1.1\n"
                                  "  qos: 2\n"
                                  "  status_topic: \"{prefix}/status\"\n"
                                  "endpoints:\n"
                                  "  - name: shipments\n"
                                  "    url: http://127.0.0.1:1/s\n"
                                  "    items: /data\n"
                                  "    key: /id\n"
                                  "    state_topic: \"{prefix}/{endpoint}/{key}/state\"\n"
                                  "  - name: flight\n"
                                  "    url: http://127.0.0.1:1/f\n"
                                  "    topic: \"{prefix}/flights/{/number}\"\n"
                                  "  - name: slim\n"
                                  "    url: http://127.0.0.1:1/x\n"
                                  "    items: \"\"\n"
                                  "    key: /id\n"
                                  "    payload: patch\n";

struct doc {
    struct r2m_config *cfg;
    struct r2m_json_doc *jd;
    struct r2m_json *root;
    struct r2m_buf text;
};

static int setup(void **state)
{
    struct doc *d = calloc(1, sizeof *d);
    struct r2m_diag diag = {0};
    assert_int_equal(r2m_config_parse("t.yaml", config_text, strlen(config_text), &d->cfg, &diag),
                     0);
    r2m_diag_free(&diag);
    r2m_buf_init(&d->text, 1 << 22);
    assert_int_equal(r2m_asyncapi_json(d->cfg, &d->text), 0);
    char err[256];
    assert_int_equal(r2m_json_doc_new(&d->jd, NULL), 0);
    if (r2m_json_parse(d->jd, d->text.data, d->text.len, &d->root, err, sizeof err))
        fail_msg("not JSON: %s\n%s", err, d->text.data);
    *state = d;
    return 0;
}

static int teardown(void **state)
{
    struct doc *d = *state;
    r2m_json_doc_free(d->jd);
    r2m_buf_free(&d->text);
    r2m_config_free(d->cfg);
    free(d);
    return 0;
}

/* The string at ptr, or a failure naming ptr. */
static const char *str_at(struct doc *d, const char *ptr)
{
    struct r2m_json *v = r2m_json_pointer(d->root, ptr);
    if (!v || v->type != R2M_JSON_STRING)
        fail_msg("no string at %s", ptr);
    return v->u.str;
}

/* The JSON of the value at ptr, canonical. */
static char *json_at(struct doc *d, const char *ptr)
{
    struct r2m_json *v = r2m_json_pointer(d->root, ptr);
    if (!v)
        fail_msg("nothing at %s", ptr);
    struct r2m_buf b;
    r2m_buf_init(&b, 1 << 20);
    assert_int_equal(r2m_json_canonical(v, &b), 0);
    return b.data;
}

static void broker(void **state)
{
    struct doc *d = *state;
    assert_string_equal(str_at(d, "/asyncapi"), "3.0.0");
    assert_string_equal(str_at(d, "/servers/broker/host"), "broker.example:8883");
    assert_string_equal(str_at(d, "/servers/broker/protocol"), "secure-mqtt");
    assert_string_equal(str_at(d, "/servers/broker/protocolVersion"), "3.1.1");
    assert_string_equal(str_at(d, "/servers/broker/bindings/mqtt/clientId"), "edge-1");
    assert_string_equal(str_at(d, "/servers/broker/bindings/mqtt/lastWill/topic"),
                        "rest2mqtt/status");
    assert_null(strstr(d->text.data, "secret")); /* credentials of mqtt.url never */
    /* the will goes out at QoS 1 whatever mqtt.qos (2 here) says */
    struct r2m_json *q = r2m_json_pointer(d->root, "/servers/broker/bindings/mqtt/lastWill/qos");
    assert_non_null(q);
    assert_int_equal(q->type, R2M_JSON_NUMBER);
    assert_string_equal(q->u.str, "1");
}

static void channels_and_parameters(void **state)
{
    struct doc *d = *state;
    assert_string_equal(str_at(d, "/channels/ep-shipments/address"),
                        "rest2mqtt/shipments/{key}/{op}");
    assert_non_null(
        strstr(str_at(d, "/channels/ep-shipments/parameters/key/description"), "'/' -> %2F"));
    char *ops = json_at(d, "/channels/ep-shipments/parameters/op/enum");
    assert_string_equal(ops, "[\"created\",\"updated\",\"deleted\"]");
    free(ops);
    /* a document's {op} is always "changed"; a {/pointer} is a parameter */
    assert_string_equal(str_at(d, "/channels/ep-flight/address"), "rest2mqtt/flights/{ptr_number}");
    assert_non_null(
        strstr(str_at(d, "/channels/ep-flight/parameters/ptr_number/description"), "/number"));
    assert_string_equal(str_at(d, "/channels/ep-shipments.state/address"),
                        "rest2mqtt/shipments/{key}/state");
    assert_string_equal(str_at(d, "/channels/status/address"), "rest2mqtt/status");
}

static void operations_qos_retain(void **state)
{
    struct doc *d = *state;
    char *ev = json_at(d, "/operations/send-shipments/bindings/mqtt");
    assert_string_equal(ev, "{\"bindingVersion\":\"0.2.0\",\"qos\":2,\"retain\":false}");
    free(ev);
    char *st = json_at(d, "/operations/send-shipments.state/bindings/mqtt");
    assert_string_equal(st, "{\"bindingVersion\":\"0.2.0\",\"qos\":2,\"retain\":true}");
    free(st);
    char *status = json_at(d, "/components/messages/status/payload/enum");
    assert_true(strstr(status, "\"online\"") && strstr(status, "\"offline\""));
    free(status);
    /* MQTT 3.1.1 has no content type property */
    assert_null(r2m_json_pointer(
        d->root, "/components/messages/ep-shipments-created/bindings/mqtt/contentType"));
}

/* data carries what the poller writes for each type and payload setting. */
static void data_members(void **state)
{
    struct doc *d = *state;
    static const struct {
        const char *msg, *required;
    } want[] = {
        {"ep-shipments-created", "[\"endpoint\",\"op\",\"key\",\"after\"]"},
        {"ep-shipments-updated", "[\"endpoint\",\"op\",\"key\",\"before\",\"after\",\"patch\"]"},
        {"ep-shipments-deleted", "[\"endpoint\",\"op\",\"key\",\"before\"]"},
        {"ep-flight-changed", "[\"endpoint\",\"op\",\"before\",\"after\",\"patch\"]"},
        {"ep-slim-created", "[\"endpoint\",\"op\",\"key\",\"patch\"]"},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        char ptr[200];
        snprintf(ptr, sizeof ptr, "/components/messages/%s/payload/properties/data/required",
                 want[i].msg);
        char *got = json_at(d, ptr);
        if (strcmp(got, want[i].required))
            fail_msg("%s: data requires %s, expected %s", want[i].msg, got, want[i].required);
        free(got);
    }
    assert_string_equal(
        str_at(d, "/components/messages/ep-shipments-updated/payload/properties/source/const"),
        "rest2mqtt://edge-1/shipments");
    assert_string_equal(
        str_at(d, "/components/messages/ep-flight-changed/payload/properties/type/const"),
        "rest2mqtt.document.changed");
    /* additionalProperties false: a member the bridge never sends fails */
    struct r2m_json *ap = r2m_json_pointer(
        d->root,
        "/components/messages/ep-slim-created/payload/properties/data/additionalProperties");
    assert_non_null(ap);
    assert_int_equal(ap->type, R2M_JSON_FALSE);
}

static void yaml_form(void **state)
{
    struct doc *d = *state;
    struct r2m_buf y;
    r2m_buf_init(&y, 1 << 22);
    assert_int_equal(r2m_asyncapi_yaml(d->cfg, &y), 0);
    assert_non_null(strstr(y.data, "\nasyncapi: \"3.0.0\"\n"));
    assert_non_null(strstr(y.data, "\n      address: \"rest2mqtt/shipments/{key}/{op}\"\n") ||
                    strstr(y.data, "\n    address: \"rest2mqtt/shipments/{key}/{op}\"\n"));
    r2m_buf_free(&y);
    /* block YAML of nested values: lists of mappings, empty containers */
    struct r2m_json_doc *jd;
    struct r2m_json *v;
    const char *in = "{\"a\":[{\"b\":1,\"c\":[]},\"x\"],\"d\":{},\"e y\":null}";
    assert_int_equal(r2m_json_doc_new(&jd, NULL), 0);
    assert_int_equal(r2m_json_parse(jd, in, strlen(in), &v, NULL, 0), 0);
    r2m_buf_init(&y, 4096);
    assert_int_equal(r2m_asyncapi_yaml_of(v, &y), 0);
    assert_string_equal(y.data, "a:\n  - b: 1\n    c: []\n  - \"x\"\nd: {}\n\"e y\": null\n");
    r2m_buf_free(&y);
    r2m_json_doc_free(jd);
}

static const char hostile_text[] =
    "mqtt:\n"
    "  url: \"wss://bridge:p@ss/w?rd#x@broker.example:8883/mqtt?q=1\"\n"
    "endpoints:\n"
    "  - name: x\n"
    "    url: http://127.0.0.1:1/x\n"
    "    topic: \"{prefix}/{/a_b}/{/a/b}/{/a~1b}/{/a}/{/a}\"\n"
    "    state_topic: \"{prefix}/x/{op}\"\n"
    "  - name: x-state\n"
    "    url: http://127.0.0.1:1/y\n"
    "    items: /data\n"
    "    key: /id\n"
    "    topic: \"{prefix}/{key}/{op}/{key}\"\n";

/* A config an operator could write that the generator got wrong: a
 * password with '@' and '/' in mqtt.url, pointers that map to one
 * parameter name, a placeholder used twice, {op} in a state topic (always
 * "state"), an endpoint named like another's state channel. The document
 * must parse as JSON (no duplicate member) and build as YAML. */
static void hostile_config(void **state)
{
    (void)state;
    struct doc d = {0};
    struct r2m_diag diag = {0};
    assert_int_equal(r2m_config_parse("h.yaml", hostile_text, strlen(hostile_text), &d.cfg, &diag),
                     0);
    r2m_diag_free(&diag);
    r2m_buf_init(&d.text, 1 << 22);
    assert_int_equal(r2m_asyncapi_json(d.cfg, &d.text), 0);
    char err[256];
    assert_int_equal(r2m_json_doc_new(&d.jd, NULL), 0);
    if (r2m_json_parse(d.jd, d.text.data, d.text.len, &d.root, err, sizeof err))
        fail_msg("not JSON: %s\n%s", err, d.text.data);
    assert_string_equal(str_at(&d, "/servers/broker/host"), "broker.example:8883");
    assert_string_equal(str_at(&d, "/servers/broker/pathname"), "/mqtt"); /* ws needs it */
    assert_null(strstr(d.text.data, "ss/w"));
    assert_null(strstr(d.text.data, "rd#x"));
    assert_string_equal(str_at(&d, "/channels/ep-x/address"),
                        "rest2mqtt/{ptr_a_b}/{ptr_a_b_2}/{ptr_a_1b}/{ptr_a}/{ptr_a}");
    assert_non_null(strstr(str_at(&d, "/channels/ep-x/parameters/ptr_a_b_2/description"), "/a/b"));
    assert_string_equal(str_at(&d, "/channels/ep-x.state/address"), "rest2mqtt/x/state");
    assert_null(r2m_json_pointer(d.root, "/channels/ep-x.state/parameters"));
    assert_string_equal(str_at(&d, "/channels/ep-x-state/address"), "rest2mqtt/{key}/{op}/{key}");
    assert_non_null(r2m_json_pointer(d.root, "/operations/send-x.state"));
    assert_non_null(r2m_json_pointer(d.root, "/operations/send-x-state"));
    struct r2m_buf y;
    r2m_buf_init(&y, 1 << 22);
    assert_int_equal(r2m_asyncapi_yaml(d.cfg, &y), 0);
    r2m_buf_free(&y);
    r2m_json_doc_free(d.jd);
    r2m_buf_free(&d.text);
    r2m_config_free(d.cfg);
}

static const char unsafe_text[] = "mqtt:\n"
                                  "  client_id: \"c\\u2028x\\x7f\\\"y\"\n"
                                  "  topic_prefix: \"p\\u0085q\"\n"
                                  "instance: \"i\\u2029j\"\n"
                                  "endpoints:\n"
                                  "  - name: x\n"
                                  "    url: http://127.0.0.1:1/x\n";

/* The YAML form reads back (libyaml, as PyYAML and most tools) as the
 * JSON form says, also for strings holding what YAML folds (U+2028, NEL)
 * or refuses (DEL): a client id, topic prefix or instance may. */
static void yaml_reads_back(void **state)
{
    (void)state;
    struct r2m_config *cfg = NULL;
    struct r2m_diag diag = {0};
    assert_int_equal(r2m_config_parse("u.yaml", unsafe_text, strlen(unsafe_text), &cfg, &diag), 0);
    r2m_diag_free(&diag);
    struct r2m_buf y;
    r2m_buf_init(&y, 1 << 22);
    assert_int_equal(r2m_asyncapi_yaml(cfg, &y), 0);
    struct r2m_diag_list dl = {.file = "asyncapi.yaml"};
    struct r2m_ynode *root = NULL;
    if (r2m_yamltree_parse(y.data, y.len, &dl, &root) || !root) {
        r2m_diag_list_finish(&dl, &diag);
        fail_msg("the YAML form does not read back: %s", diag.n ? diag.lines[0] : "?");
    }
    r2m_diag_list_finish(&dl, NULL);
    const char *path[] = {"servers", "broker", "bindings", "mqtt", "clientId"};
    const struct r2m_ynode *n = root;
    for (size_t i = 0; n && i < sizeof path / sizeof *path; i++)
        n = r2m_yamltree_find(n, path[i]);
    assert_non_null(n);
    assert_string_equal(n->text, "c\xe2\x80\xa8x\x7f\"y");
    n = r2m_yamltree_find(r2m_yamltree_find(r2m_yamltree_find(root, "channels"), "ep-x"),
                          "address");
    assert_non_null(n);
    assert_string_equal(n->text, "p\xc2\x85q/x");
    r2m_yamltree_free(root);
    r2m_buf_free(&y);
    r2m_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(broker, setup, teardown),
        cmocka_unit_test_setup_teardown(channels_and_parameters, setup, teardown),
        cmocka_unit_test_setup_teardown(operations_qos_retain, setup, teardown),
        cmocka_unit_test_setup_teardown(data_members, setup, teardown),
        cmocka_unit_test_setup_teardown(yaml_form, setup, teardown),
        cmocka_unit_test(hostile_config),
        cmocka_unit_test(yaml_reads_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
