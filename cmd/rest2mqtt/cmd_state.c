/* cmd_state.c - `rest2mqtt state list|prune|dead-letters`: the stored
 * state, read and changed through r2m/store.h only (no SQL here), so the
 * commands work with whichever store backend the config names. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "r2m/buf.h"
#include "r2m/error.h"
#include "r2m/json.h"
#include "r2m/store.h"

struct names {
    char **v;
    size_t n, cap;
};

static void add_name(void *ctx, const char *name)
{
    struct names *ns = ctx;
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2 : 16;
        char **v = realloc(ns->v, cap * sizeof *v);
        if (!v)
            return;
        ns->v = v;
        ns->cap = cap;
    }
    if ((ns->v[ns->n] = strdup(name)))
        ns->n++;
}

static int configured(const struct r2m_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_endpoints; i++)
        if (!strcmp(cfg->endpoints[i].name, name))
            return 1;
    return 0;
}

/* Opens the state store for the `state` commands: one that exists. Opening
 * creates a missing store, and a command that reads state must not: a wrong
 * -c or state.path would get an empty new file and "0 dead letters". */
static int open_state(const struct r2m_config *cfg, struct r2m_store **st)
{
    char err[1024];
    struct r2m_store_params p = {.path = cfg->state.path, .existing = 1};
    int r = r2m_store_new(&p, err, sizeof err, st);
    if (r == R2M_E_NOT_FOUND) {
        fprintf(stderr,
                "rest2mqtt: state file %s does not exist (state.path in %s); the bridge "
                "creates it at its first start\n",
                cfg->state.path, cfg->file);
        return EXIT_RUNTIME;
    }
    if (r) {
        fprintf(stderr, "rest2mqtt: %s\n", err);
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

/* `state list` and `state prune`: removed endpoints keep their state until
 * pruned, so a config mistake never silently throws history away. */
static int state_endpoints(const struct r2m_config *cfg, enum cmd_state_sub sub)
{
    struct r2m_store *st = NULL;
    if (open_state(cfg, &st))
        return EXIT_RUNTIME;
    struct names ns = {0};
    int rc = EXIT_OK;
    if (r2m_store_endpoint_names(st, add_name, &ns)) {
        fprintf(stderr, "rest2mqtt: cannot read %s: %s\n", cfg->state.path, r2m_store_errmsg(st));
        rc = EXIT_RUNTIME;
        goto out;
    }
    size_t pruned = 0;
    for (size_t i = 0; i < ns.n; i++) {
        int keep = configured(cfg, ns.v[i]);
        if (sub == STATE_LIST) {
            printf("%s\t%s\n", ns.v[i], keep ? "configured" : "not in config (prunable)");
            continue;
        }
        if (keep)
            continue;
        if (r2m_store_begin(st) || r2m_store_endpoint_reset(st, ns.v[i]) || r2m_store_commit(st)) {
            r2m_store_rollback(st);
            fprintf(stderr, "rest2mqtt: cannot prune '%s' in %s: %s\n", ns.v[i], cfg->state.path,
                    r2m_store_errmsg(st));
            rc = EXIT_RUNTIME;
            goto out;
        }
        printf("pruned %s\n", ns.v[i]);
        pruned++;
    }
    if (sub == STATE_PRUNE)
        printf("%zu endpoint%s pruned from %s\n", pruned, pruned == 1 ? "" : "s", cfg->state.path);
    printf("outbox: %lld events waiting\n", (long long)r2m_store_outbox_count(st));
out:
    for (size_t i = 0; i < ns.n; i++)
        free(ns.v[i]);
    free(ns.v);
    r2m_store_free(st);
    return rc;
}

struct dl_print {
    int json;
    size_t n;
};

static int print_dead_letter(void *ctx, const struct r2m_store_dead_letter *d)
{
    struct dl_print *o = ctx;
    char when[32];
    time_t t = (time_t)(d->time_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    const char *ep = d->endpoint ? d->endpoint : "unknown";
    o->n++;
    if (!o->json) {
        printf("%-6lld %-20s  %-16s %-24s %9llu  %-16s  %s\n", (long long)d->id, when, ep,
               d->reason, (unsigned long long)d->size, d->event_id ? d->event_id : "-", d->topic);
        return 0;
    }
    struct r2m_buf b;
    r2m_buf_init(&b, (size_t)1 << 31);
    r2m_buf_printf(&b, "{\"id\":%lld,\"time\":\"%s\",\"endpoint\":", (long long)d->id, when);
    r2m_json_quote(&b, ep, strlen(ep));
    r2m_buf_puts(&b, ",\"topic\":");
    r2m_json_quote(&b, d->topic, strlen(d->topic));
    r2m_buf_printf(&b, ",\"size\":%llu,\"reason\":", (unsigned long long)d->size);
    r2m_json_quote(&b, d->reason, strlen(d->reason));
    r2m_buf_puts(&b, ",\"event_id\":");
    if (d->event_id)
        r2m_json_quote(&b, d->event_id, strlen(d->event_id));
    else
        r2m_buf_puts(&b, "null");
    r2m_buf_puts(&b, ",\"payload\":");
    r2m_json_quote(&b, d->payload ? d->payload : "", d->payload_len);
    r2m_buf_puts(&b, "}\n");
    if (b.data)
        fwrite(b.data, 1, b.len, stdout);
    r2m_buf_free(&b);
    return 0;
}

/* `state dead-letters`: what the broker refused for good, and --requeue to
 * try them again once the cause (an ACL, a size limit) is fixed. */
static int dead_letters(const struct r2m_config *cfg, int json, int requeue)
{
    struct r2m_store *st = NULL;
    if (open_state(cfg, &st))
        return EXIT_RUNTIME;
    int rc = EXIT_OK;
    if (requeue) {
        int64_t n = 0;
        if (r2m_store_begin(st) || r2m_store_dead_letter_requeue(st, &n) || r2m_store_commit(st)) {
            r2m_store_rollback(st);
            fprintf(stderr, "rest2mqtt: cannot requeue the dead letters in %s: %s\n",
                    cfg->state.path, r2m_store_errmsg(st));
            rc = EXIT_RUNTIME;
        } else {
            printf("requeued %lld dead letter%s into the outbox of %s; the bridge sends them at "
                   "its next start\n",
                   (long long)n, n == 1 ? "" : "s", cfg->state.path);
        }
        r2m_store_free(st);
        return rc;
    }
    struct dl_print o = {json, 0};
    if (!json)
        printf("%-6s %-20s  %-16s %-24s %9s  %-16s  %s\n", "ID", "REFUSED", "ENDPOINT", "REASON",
               "SIZE", "EVENT ID", "TOPIC");
    if (r2m_store_dead_letters(st, print_dead_letter, &o)) {
        fprintf(stderr, "rest2mqtt: cannot read %s: %s\n", cfg->state.path, r2m_store_errmsg(st));
        rc = EXIT_RUNTIME;
    } else if (!json) {
        printf("%zu dead letter%s in %s\n", o.n, o.n == 1 ? "" : "s", cfg->state.path);
        if (o.n)
            printf("fix the cause (see REASON and the bridge's log), stop the bridge, then run "
                   "`rest2mqtt state dead-letters --requeue -c %s`\n",
                   cfg->file);
    }
    r2m_store_free(st);
    return rc;
}

int cmd_state(const struct cmd_opts *o, const struct r2m_config *cfg)
{
    if (o->sub == STATE_DEAD_LETTERS)
        return dead_letters(cfg, o->json, o->requeue);
    return state_endpoints(cfg, o->sub);
}
