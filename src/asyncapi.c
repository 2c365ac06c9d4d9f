/* asyncapi.c - the AsyncAPI 3.0 document of a configuration. */
#include "r2m/asyncapi.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "r2m/error.h"
#include "r2m/yamltree.h"

#define BINDING_VERSION "0.2.0"
#define CE_CONTENT_TYPE "application/cloudevents+json"

/* A writer with a sticky error: the document is long and regular, and
 * one check at the end reads better than one per line. */
struct w {
    struct r2m_buf *b;
    int r;
};

static void put(struct w *w, const char *s)
{
    if (!w->r)
        w->r = r2m_buf_puts(w->b, s);
}

static void putf(struct w *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct w *w, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp)
        w->r = w->r ? w->r : R2M_E_TOO_BIG;
    else
        put(w, tmp);
}

static void str(struct w *w, const char *s)
{
    if (!w->r)
        w->r = r2m_json_quote(w->b, s, strlen(s));
}

/* ---- channels ------------------------------------------------------------------- */

/* A parameter name for {/json/pointer}: AsyncAPI names are [A-Za-z0-9_-]. */
static void param_name(const char *ptr, size_t n, char *out, size_t outlen)
{
    size_t w = (size_t)snprintf(out, outlen, "ptr");
    for (size_t i = 0; i < n && w + 1 < outlen; i++) {
        char c = ptr[i];
        int ok =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
        out[w++] = ok ? c : '_';
    }
    out[w] = '\0';
}

/* The parameters of a template, each once, in order of appearance: a
 * placeholder used twice is one parameter, and two pointers that map to
 * the same name ("/a_b", "/a/b", "/a~1b") get "_2", "_3"... so that
 * parameter names stay unique. */
#define MAX_PARAMS 64
struct tparam {
    const char *text; /* after '{', n bytes: "key", "op" or "/pointer" */
    size_t n;
    char name[200];
};

static size_t template_params(const char *tmpl, const char *fixed_op, struct tparam *t)
{
    size_t np = 0;
    for (const char *p = strchr(tmpl, '{'); p && np < MAX_PARAMS; p = strchr(p + 1, '{')) {
        const char *end = strchr(p, '}');
        if (!end)
            break;
        size_t n = (size_t)(end - p - 1), i = 0;
        int is_op = n == 2 && !strncmp(p + 1, "op", 2);
        if (!(n == 3 && !strncmp(p + 1, "key", 3)) && !(is_op && !fixed_op) && p[1] != '/')
            continue;
        while (i < np && !(t[i].n == n && !strncmp(t[i].text, p + 1, n)))
            i++;
        if (i < np)
            continue; /* the same placeholder again */
        t[np].text = p + 1;
        t[np].n = n;
        if (p[1] != '/')
            snprintf(t[np].name, sizeof t[np].name, "%.*s", (int)n, p + 1);
        else
            param_name(p + 1, n, t[np].name, sizeof t[np].name - 12);
        char base[200];
        memcpy(base, t[np].name, sizeof base);
        for (unsigned k = 2; k < 2 + MAX_PARAMS; k++) {
            size_t j = 0;
            while (j < np && strcmp(t[j].name, t[np].name))
                j++;
            if (j == np)
                break;
            /* room for "_NN": a long name is cut so the suffix stays */
            snprintf(t[np].name, sizeof t[np].name, "%.*s_%u", (int)sizeof t[np].name - 4, base,
                     k);
        }
        np++;
    }
    return np;
}

static const char *tparam_name(const struct tparam *t, size_t np, const char *text, size_t n)
{
    for (size_t i = 0; i < np; i++)
        if (t[i].n == n && !strncmp(t[i].text, text, n))
            return t[i].name;
    return "ptr";
}

static const char escaping[] =
    "Percent-encoded: '%' -> %25, '/' -> %2F, '+' -> %2B, '#' -> %23, '$' -> %24, DEL and bytes "
    "below 0x20 -> %XX; a value never adds a topic level or a wildcard.";

/* The channel address: literals and {prefix}, {endpoint} as configured,
 * {key}, {op} and {/pointer} as parameters (documents: {op} is "changed"). */
static void address(struct w *w, const struct r2m_config *cfg, const struct r2m_endpoint_cfg *e,
                    const char *tmpl, const char *fixed_op)
{
    struct r2m_buf a;
    r2m_buf_init(&a, 1 << 16);
    struct tparam tp[MAX_PARAMS];
    size_t np = template_params(tmpl, fixed_op, tp);
    int r = 0;
    for (const char *p = tmpl; *p && !r; p++) {
        const char *end = *p == '{' ? strchr(p, '}') : NULL;
        if (!end) {
            r = r2m_buf_putc(&a, *p);
            continue;
        }
        size_t n = (size_t)(end - p - 1);
        if (n == 6 && !strncmp(p + 1, "prefix", 6))
            r = r2m_buf_puts(&a, cfg->mqtt.topic_prefix);
        else if (n == 8 && !strncmp(p + 1, "endpoint", 8))
            r = r2m_buf_puts(&a, e ? e->name : "");
        else if (n == 2 && !strncmp(p + 1, "op", 2) && fixed_op)
            r = r2m_buf_puts(&a, fixed_op);
        else if (p[1] == '/')
            r = r2m_buf_printf(&a, "{%s}", tparam_name(tp, np, p + 1, n));
        else
            r = r2m_buf_append(&a, p, n + 2);
        p = end;
    }
    if (r)
        w->r = w->r ? w->r : r;
    else
        str(w, a.data ? a.data : "");
    r2m_buf_free(&a);
}

/* The parameters of a template, or nothing when it has none. */
static void parameters(struct w *w, const char *tmpl, const char *fixed_op)
{
    struct tparam tp[MAX_PARAMS];
    size_t np = template_params(tmpl, fixed_op, tp);
    for (size_t i = 0; i < np; i++) {
        const struct tparam *t = &tp[i];
        put(w, i ? "," : ",\"parameters\":{");
        str(w, t->name);
        put(w, ":{\"description\":");
        struct r2m_buf d;
        r2m_buf_init(&d, 1 << 16);
        int rd;
        if (t->text[0] == 'k')
            rd = r2m_buf_printf(&d,
                                "The item's key (composite keys: the parts joined with ',' after "
                                "percent-encoding '%%' and ',' in each part). %s",
                                escaping);
        else if (t->text[0] == 'o')
            rd = r2m_buf_puts(&d, "The operation.");
        else
            rd = r2m_buf_printf(&d,
                                "The value at JSON Pointer %.*s in the item or document (a string, "
                                "number or boolean). %s",
                                (int)t->n, t->text, escaping);
        if (rd)
            w->r = w->r ? w->r : rd;
        str(w, d.data ? d.data : "");
        r2m_buf_free(&d);
        if (t->text[0] == 'o') /* state and document channels have it fixed */
            put(w, ",\"enum\":[\"created\",\"updated\",\"deleted\"]");
        put(w, "}");
    }
    if (np)
        put(w, "}");
}

/* ---- messages ---------------------------------------------------------------------- */

static const char *const item_ops[] = {"created", "updated", "deleted"};

static void patch_schema(struct w *w)
{
    put(w, "{\"type\":\"array\",\"description\":\"RFC 6902 JSON Patch from before to after\","
           "\"items\":{\"type\":\"object\",\"additionalProperties\":false,"
           "\"required\":[\"op\",\"path\"],\"properties\":{\"op\":{\"enum\":[\"add\","
           "\"remove\",\"replace\"]},\"path\":{\"type\":\"string\"},\"value\":{}}}}");
}

/* data's members for one event type, as the poller fills them. */
static void data_schema(struct w *w, const struct r2m_endpoint_cfg *e, const char *op)
{
    int item = e->items != NULL;
    int before = 0, after = 0, patch = 0, after_null = 0;
    if (e->payload == R2M_PAYLOAD_PATCH)
        patch = 1;
    else if (e->payload == R2M_PAYLOAD_AFTER)
        after = 1, after_null = !strcmp(op, "deleted");
    else if (!item)
        before = after = patch = 1;
    else {
        before = strcmp(op, "created") != 0;
        after = strcmp(op, "deleted") != 0;
        patch = before && after;
    }
    put(w, "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"endpoint\","
           "\"op\"");
    put(w, item ? ",\"key\"" : "");
    put(w, before ? ",\"before\"" : "");
    put(w, after ? ",\"after\"" : "");
    put(w, patch ? ",\"patch\"" : "");
    put(w, "],\"properties\":{\"endpoint\":{\"const\":");
    str(w, e->name);
    put(w, "},\"op\":{\"const\":");
    str(w, op);
    put(w, "}");
    if (item)
        put(w, ",\"key\":{\"type\":\"string\",\"description\":\"the item's key\"}");
    if (before)
        put(w, item ? ",\"before\":{\"type\":\"object\",\"description\":\"the item before the "
                      "change, canonical, ignored members removed\"}"
                    : ",\"before\":{\"description\":\"the document before the change "
                      "(null when there was none), canonical, ignored members removed\"}");
    if (after && after_null)
        put(w, ",\"after\":{\"type\":\"null\"}");
    else if (after)
        put(w, item ? ",\"after\":{\"type\":\"object\",\"description\":\"the item after the "
                      "change, canonical, ignored members removed\"}"
                    : ",\"after\":{\"description\":\"the document after the change, canonical, "
                      "ignored members removed\"}");
    if (patch) {
        put(w, ",\"patch\":");
        patch_schema(w);
    }
    put(w, "}}");
}

static void envelope(struct w *w, const struct r2m_config *cfg, const struct r2m_endpoint_cfg *e,
                     const char *type, const char *op)
{
    int item = e->items != NULL;
    char source[600];
    snprintf(source, sizeof source, "rest2mqtt://%s/%s", cfg->instance, e->name);
    put(w, "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"specversion\","
           "\"id\",\"source\",\"type\",");
    put(w, item ? "\"subject\"," : "");
    put(w, "\"time\",\"datacontenttype\",\"data\"],\"properties\":{"
           "\"specversion\":{\"const\":\"1.0\"},"
           "\"id\":{\"type\":\"string\",\"pattern\":\"^[0-9a-f]{16}$\",\"description\":\"stable "
           "across redeliveries: drop duplicates by source + id\"},\"source\":{\"const\":");
    str(w, source);
    put(w, "},\"type\":{\"const\":");
    str(w, type);
    put(w, "}");
    if (item)
        put(w, ",\"subject\":{\"type\":\"string\",\"description\":\"the item's key\"}");
    put(w, ",\"time\":{\"type\":\"string\",\"format\":\"date-time\"},"
           "\"datacontenttype\":{\"const\":\"application/json\"},\"data\":");
    data_schema(w, e, op);
    put(w, "}}");
}

static void message_bindings(struct w *w, const struct r2m_config *cfg, int event)
{
    put(w, ",\"bindings\":{\"mqtt\":{");
    if (cfg->mqtt.version == 5 && event)
        put(w, "\"contentType\":\"" CE_CONTENT_TYPE "\",");
    put(w, "\"bindingVersion\":\"" BINDING_VERSION "\"}}");
}

/* components/messages: the events and the retained states of one endpoint. */
static void endpoint_messages(struct w *w, const struct r2m_config *cfg,
                              const struct r2m_endpoint_cfg *e)
{
    size_t n = e->items ? 3 : 1;
    for (size_t i = 0; i < n; i++) {
        const char *op = e->items ? item_ops[i] : "changed";
        char type[64], id[200];
        snprintf(type, sizeof type, "rest2mqtt.%s.%s", e->items ? "item" : "document", op);
        snprintf(id, sizeof id, "ep-%s-%s", e->name, op);
        str(w, id);
        put(w, ":{\"name\":");
        str(w, type);
        putf(w,
             ",\"title\":\"%s: %s\",\"contentType\":\"" CE_CONTENT_TYPE "\",\"payload\":", e->name,
             type);
        envelope(w, cfg, e, type, op);
        message_bindings(w, cfg, 1);
        put(w, "},");
    }
    if (!e->state_topic)
        return;
    putf(w,
         "\"ep-%s-state\":{\"name\":\"state\",\"title\":\"%s: current state\","
         "\"contentType\":\"application/json\",\"summary\":",
         e->name, e->name);
    str(w, e->items ? "The item as it is now (canonical, ignored members removed), retained; an "
                      "empty retained message once the item is deleted."
                    : "The document as it is now (canonical, ignored members removed), retained.");
    put(w, ",\"payload\":{}");
    message_bindings(w, cfg, 1);
    put(w, "},");
}

/* ---- the document -------------------------------------------------------------------- */

static void server(struct w *w, const struct r2m_config *cfg)
{
    const char *url = cfg->mqtt.url, *sep = strstr(url, "://");
    const char *host = sep ? sep + 3 : url;
    size_t hl = strcspn(host, "/?#");
    /* never the credentials: a password may hold '@', '/', '?' or '#'
     * unencoded, so the user part ends at the URL's last '@' */
    const char *at = strrchr(host, '@');
    if (at) {
        host = at + 1;
        hl = strcspn(host, "/?#");
    }
    size_t sl = sep ? (size_t)(sep - url) : 0;
    const char *proto = "mqtt";
    if ((sl == 5 && !strncmp(url, "mqtts", 5)) || (sl == 3 && !strncmp(url, "ssl", 3)))
        proto = "secure-mqtt";
    else if (sl == 2 && !strncmp(url, "ws", 2))
        proto = "ws";
    else if (sl == 3 && !strncmp(url, "wss", 3))
        proto = "wss";
    put(w, "\"servers\":{\"broker\":{\"host\":");
    char h[512];
    snprintf(h, sizeof h, "%.*s", (int)hl, host);
    str(w, h);
    putf(w, ",\"protocol\":\"%s\",\"protocolVersion\":\"%s\",", proto,
         cfg->mqtt.version == 5 ? "5" : "3.1.1");
    size_t pl = strcspn(host + hl, "?#"); /* a WebSocket broker's path ("/mqtt") */
    if (proto[0] == 'w' && pl > 1) {
        snprintf(h, sizeof h, "%.*s", (int)pl, host + hl);
        put(w, "\"pathname\":");
        str(w, h);
        put(w, ",");
    }
    put(w, "\"description\":\"The broker rest2mqtt publishes to (mqtt.url).\",");
    put(w, "\"bindings\":{\"mqtt\":{\"clientId\":");
    str(w, cfg->mqtt.client_id);
    putf(w, ",\"cleanSession\":true,\"keepAlive\":%lld",
         (long long)((cfg->mqtt.keepalive_ms + 999) / 1000));
    if (cfg->mqtt.status_topic) {
        put(w, ",\"lastWill\":{\"topic\":");
        address(w, cfg, NULL, cfg->mqtt.status_topic, NULL);
        /* the will is QoS 1 whatever mqtt.qos says (publish.c) */
        put(w, ",\"qos\":1,\"message\":\"offline\",\"retain\":true}");
    }
    put(w, ",\"bindingVersion\":\"" BINDING_VERSION "\"}}}}");
}

static void channel(struct w *w, const struct r2m_config *cfg, const struct r2m_endpoint_cfg *e,
                    int state)
{
    const char *tmpl = state ? e->state_topic : e->topic;
    /* the pollers fill {op} of a state topic with "state", a document's
     * event topic with "changed"; "." keeps the state channel's id apart
     * from the events channel of an endpoint named NAME-state */
    const char *fixed_op = state ? "state" : e->items ? NULL : "changed";
    putf(w, "\"ep-%s%s\":{\"address\":", e->name, state ? ".state" : "");
    address(w, cfg, e, tmpl, fixed_op);
    putf(w, ",\"title\":\"%s%s\",\"description\":", e->name, state ? " (state)" : "");
    str(w, state      ? "Retained current state (state_topic)."
           : e->items ? "One CloudEvent per created, updated or deleted item."
                      : "One CloudEvent per change of the document.");
    put(w, ",\"messages\":{");
    if (state)
        putf(w, "\"state\":{\"$ref\":\"#/components/messages/ep-%s-state\"}", e->name);
    else
        for (size_t i = 0; i < (e->items ? 3u : 1u); i++) {
            const char *op = e->items ? item_ops[i] : "changed";
            putf(w, "%s\"%s\":{\"$ref\":\"#/components/messages/ep-%s-%s\"}", i ? "," : "", op,
                 e->name, op);
        }
    put(w, "}");
    parameters(w, tmpl, fixed_op);
    put(w, "}");
}

static void operation(struct w *w, const struct r2m_config *cfg, const struct r2m_endpoint_cfg *e,
                      int state)
{
    putf(w, "\"send-%s%s\":{\"action\":\"send\",\"channel\":{\"$ref\":\"#/channels/ep-%s%s\"},",
         e->name, state ? ".state" : "", e->name, state ? ".state" : "");
    putf(w, "\"summary\":\"%s of endpoint %s\",\"messages\":[",
         state ? "Retained state" : "Change events", e->name);
    if (state)
        putf(w, "{\"$ref\":\"#/channels/ep-%s.state/messages/state\"}", e->name);
    else
        for (size_t i = 0; i < (e->items ? 3u : 1u); i++)
            putf(w, "%s{\"$ref\":\"#/channels/ep-%s/messages/%s\"}", i ? "," : "", e->name,
                 e->items ? item_ops[i] : "changed");
    putf(w,
         "],\"bindings\":{\"mqtt\":{\"qos\":%d,\"retain\":%s,\"bindingVersion\":\"" BINDING_VERSION
         "\"}}}",
         cfg->mqtt.qos, state ? "true" : "false");
}

static void status_parts(struct w *w, const struct r2m_config *cfg, int part)
{
    if (part == 0) { /* channel */
        put(w, ",\"status\":{\"address\":");
        address(w, cfg, NULL, cfg->mqtt.status_topic, NULL);
        put(w, ",\"title\":\"bridge status\",\"description\":\"Retained 'online' after "
               "connecting; 'offline' at exit and as the last will.\",\"messages\":{\"status\":"
               "{\"$ref\":\"#/components/messages/status\"}}}");
    } else if (part == 1) { /* operation */
        putf(w,
             ",\"send-status\":{\"action\":\"send\",\"channel\":{\"$ref\":\"#/channels/status\"},"
             "\"messages\":[{\"$ref\":\"#/channels/status/messages/status\"}],\"bindings\":"
             "{\"mqtt\":{\"qos\":%d,\"retain\":true,\"bindingVersion\":\"" BINDING_VERSION "\"}}}",
             cfg->mqtt.qos);
    } else { /* message */
        put(w,
            "\"status\":{\"name\":\"status\",\"title\":\"bridge status\",\"contentType\":"
            "\"text/plain\",\"payload\":{\"type\":\"string\",\"enum\":[\"online\",\"offline\"]}");
        message_bindings(w, cfg, 0);
        put(w, "},");
    }
}

/* Written in the document's reading order; one pass per section over the
 * endpoints keeps the sections apart. */
int r2m_asyncapi_json(const struct r2m_config *cfg, struct r2m_buf *out)
{
    struct w w = {out, 0};
    put(&w, "{\"asyncapi\":\"3.0.0\",\"info\":{\"title\":");
    char title[600];
    snprintf(title, sizeof title, "rest2mqtt events of %s", cfg->file ? cfg->file : "the config");
    str(&w, title);
    putf(&w, ",\"version\":\"%s\",\"description\":", R2M_VERSION);
    str(&w, cfg->mqtt.qos ? "Change events rest2mqtt publishes for the endpoints of this "
                            "configuration: CloudEvents 1.0 in structured JSON, at least once "
                            "(QoS >= 1), with ids stable across redeliveries."
                          : "Change events rest2mqtt publishes for the endpoints of this "
                            "configuration: CloudEvents 1.0 in structured JSON, at most once "
                            "(mqtt.qos 0).");
    put(&w, "},\"defaultContentType\":\"" CE_CONTENT_TYPE "\",");
    server(&w, cfg);
    put(&w, ",\"channels\":{");
    for (size_t i = 0; i < cfg->n_endpoints; i++) {
        put(&w, i ? "," : "");
        channel(&w, cfg, &cfg->endpoints[i], 0);
        if (cfg->endpoints[i].state_topic) {
            put(&w, ",");
            channel(&w, cfg, &cfg->endpoints[i], 1);
        }
    }
    if (cfg->mqtt.status_topic)
        status_parts(&w, cfg, 0);
    put(&w, "},\"operations\":{");
    for (size_t i = 0; i < cfg->n_endpoints; i++) {
        put(&w, i ? "," : "");
        operation(&w, cfg, &cfg->endpoints[i], 0);
        if (cfg->endpoints[i].state_topic) {
            put(&w, ",");
            operation(&w, cfg, &cfg->endpoints[i], 1);
        }
    }
    if (cfg->mqtt.status_topic)
        status_parts(&w, cfg, 1);
    put(&w, "},\"components\":{\"messages\":{");
    for (size_t i = 0; i < cfg->n_endpoints; i++)
        endpoint_messages(&w, cfg, &cfg->endpoints[i]);
    if (cfg->mqtt.status_topic)
        status_parts(&w, cfg, 2);
    if (!w.r && out->len && out->data[out->len - 1] == ',')
        out->data[--out->len] = '\0';
    put(&w, "}}}");
    return w.r;
}

/* ---- YAML ---------------------------------------------------------------------------- */

static int plain_key(const char *k, size_t n)
{
    if (!n || !((k[0] >= 'a' && k[0] <= 'z') || (k[0] >= 'A' && k[0] <= 'Z')))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

static int scalar(const struct r2m_json *v, struct r2m_buf *out)
{
    switch (v->type) {
    case R2M_JSON_NULL:
        return r2m_buf_puts(out, "null");
    case R2M_JSON_TRUE:
        return r2m_buf_puts(out, "true");
    case R2M_JSON_FALSE:
        return r2m_buf_puts(out, "false");
    case R2M_JSON_NUMBER:
        return r2m_buf_append(out, v->u.str, v->n);
    case R2M_JSON_STRING: /* a topic prefix or client id may hold U+2028, DEL... */
        return r2m_yaml_quote(out, v->u.str, v->n, 0);
    default:
        return r2m_buf_puts(out, v->type == R2M_JSON_ARRAY ? "[]" : "{}");
    }
}

static int composite(const struct r2m_json *v)
{
    return (v->type == R2M_JSON_ARRAY || v->type == R2M_JSON_OBJECT) && v->n;
}

/* v at indent; the first line's indent is already written (after "- "). */
static int yaml_value(const struct r2m_json *v, unsigned indent, int first_done,
                      struct r2m_buf *out)
{
    int r = 0;
    for (uint32_t i = 0; i < v->n && !r; i++) {
        if (i || !first_done)
            r = r2m_buf_printf(out, "%*s", (int)indent, "");
        const struct r2m_json *c;
        if (v->type == R2M_JSON_OBJECT) {
            const struct r2m_json_member *m = &v->u.members[i];
            c = &m->value;
            r = r                               ? r
                : plain_key(m->key, m->key_len) ? r2m_buf_append(out, m->key, m->key_len)
                                                : r2m_yaml_quote(out, m->key, m->key_len, 0);
            r = r ? r : r2m_buf_puts(out, composite(c) ? ":\n" : ": ");
            if (!r && composite(c))
                r = yaml_value(c, indent + 2, 0, out);
        } else {
            c = &v->u.items[i];
            r = r ? r : r2m_buf_puts(out, "- ");
            if (!r && composite(c))
                r = yaml_value(c, indent + 2, 1, out);
        }
        if (!r && !composite(c))
            r = scalar(c, out) || r2m_buf_putc(out, '\n') ? R2M_E_TOO_BIG : 0;
    }
    return r;
}

int r2m_asyncapi_yaml_of(const struct r2m_json *v, struct r2m_buf *out)
{
    if (!composite(v)) {
        int r = scalar(v, out);
        return r ? r : r2m_buf_putc(out, '\n');
    }
    return yaml_value(v, 0, 0, out);
}

int r2m_asyncapi_yaml(const struct r2m_config *cfg, struct r2m_buf *out)
{
    struct r2m_buf j;
    struct r2m_json_doc *doc = NULL;
    struct r2m_json *root;
    r2m_buf_init(&j, out->max);
    int r = r2m_asyncapi_json(cfg, &j);
    if (!r)
        r = r2m_json_doc_new(&doc, NULL);
    if (!r)
        r = r2m_json_parse(doc, j.data, j.len, &root, NULL, 0);
    if (!r)
        r = r2m_buf_puts(out, "# AsyncAPI 3.0 document generated by `rest2mqtt asyncapi`\n");
    if (!r)
        r = r2m_asyncapi_yaml_of(root, out);
    r2m_json_doc_free(doc);
    r2m_buf_free(&j);
    return r;
}
