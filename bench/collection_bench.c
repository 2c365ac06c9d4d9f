/* collection_bench.c - cost of a keyed-collection poll against yajl's bare parse.
 *
 * DESIGN.md 2b: "the diff of a 100k-item collection within 3x of yajl's own
 * parse time of the same bytes", and peak memory at most 3x the document.
 *
 * For N in {10k, 100k, 1M} items this program builds two response bodies
 * with a deterministic generator (body A, and body B in which exactly 1% of
 * the items changed) and measures, in the same run:
 *
 *   yajl       yajl_alloc + yajl_parse + yajl_complete_parse + yajl_free
 *              over B with callbacks that only return 1 (the floor: no
 *              tree, no copies, numbers never converted);
 *   parse      r2m_json_parse_items of B alone, items at /data handed to a
 *              callback that does nothing (canonical strings/numbers, each
 *              item's tree dropped after it), to show how the pipeline's
 *              time splits: the poller parses this way;
 *   changed    on_body(B) of the collection poller that has seen A: parse,
 *              canonicalise, ignore, fingerprint, sort, merge-diff, patch and
 *              event rendering of the 1% changed items, handed to emit as one
 *              batch. Repeats alternate A and B on the same poller, so every
 *              timed poll has exactly N/100 updated items (checked);
 *   unchanged  on_body of the same body again (no events, checked): the
 *              poller recognises the bytes of its last accepted body;
 *   reparse    on_body of the same items in other bytes (a trailing space
 *              or newline, alternating): a full poll without events.
 *
 * Each figure is the best of K runs of wall-clock time (CLOCK_MONOTONIC);
 * a yajl run precedes every parse and poll run (so yajl's figure is the best
 * of 3K runs), so that load from other work on the machine hits both alike.
 * The verdict uses ratios only.
 *
 * Peak RSS is measured in a forked child per N, before the parent has done
 * anything large (so the child starts small): ru_maxrss at the start, after
 * generating A and B, and after a baseline poll of A plus the changed poll
 * of B. The bridge holds one HTTP body; this process holds two, so one body
 * is subtracted before comparing with the document size.
 *
 * Usage: collection_bench [--quick] [--items N] [--polls R] [--gen N a|b]
 *   --quick    only 10k and 100k items
 *   --items N  only N items (a multiple of 100)
 *   --polls R  for profilers: only the pipeline, R changed polls (A, B, A, ...)
 *              after the baseline, on --items N (default 100000); no yajl runs,
 *              no RSS child, no verdict
 *   --gen N a|b  write body A or B of N items to stdout and exit
 * Exit status: 0 when both 100k budgets pass, 1 when one fails, 2 on error. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <yajl/yajl_parse.h>

#include "r2m/config.h"
#include "r2m/error.h"
#include "r2m/json.h"
#include "r2m/poller.h"

#define SEED         UINT64_C(0x5eed2b4d1e2c0a11)
#define CHANGE_EVERY 100u /* item i changes in B when i % 100 == CHANGE_AT */
#define CHANGE_AT    42u
#define BUDGET_TIME  3.0
#define BUDGET_RSS   3.0

/* ---- deterministic generator ------------------------------------------ */

/* splitmix64: every item draws from its own stream seeded by its index, so
 * item i is the same whatever N is (the 10k body is a prefix of the 1M one
 * apart from the closing bracket). */
static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static unsigned pick(uint64_t *s, unsigned n)
{
    return (unsigned)(rnd(s) % n);
}

static const char *const STATUS[] = {"open", "paid", "packed", "sent", "held"};
static const char *const NAMES[] = {"Berg", "Hansen",   "Olsen", "Dahl",   "Lie",
                                    "Moe",  "Johansen", "Bakke", "Strand", "Nilsen"};
static const char *const CITIES[] = {"Oslo", "Bergen", "Trondheim", "Tromsø",
                                     "Bodø", "Hamar",  "Molde",     "Ålesund"};
static const char *const TAGS[] = {"\"vip\"", "\"new\"", "\"b2b\"", "\"gift\"", "\"rush\""};

/* Writes item i (0-based, id i+1) at p; `changed` gives B's version of an
 * item that changes: qty+1, lines/0/q+1 and a later updatedAt (ignored).
 * Returns the bytes written (at most 256). */
static size_t gen_item(char *p, uint32_t i, int changed)
{
    uint64_t s = SEED ^ ((uint64_t)i * UINT64_C(0x2545f4914f6cdd1d));
    unsigned st = pick(&s, 5), qty = 1 + pick(&s, 20), eur = 1 + pick(&s, 99), cent = pick(&s, 100),
             nm = pick(&s, 10), city = pick(&s, 8), ntags = pick(&s, 3), t0 = pick(&s, 5),
             q0 = 1 + pick(&s, 9);
    /* epoch seconds somewhere in 2026 */
    uint64_t ts = UINT64_C(1767225600) + rnd(&s) % UINT64_C(31536000);
    if (changed) {
        qty++;
        q0++;
        ts += 600;
    }
    int n = sprintf(p,
                    "{\"id\":%" PRIu32 ",\"st\":\"%s\",\"qty\":%u,\"price\":%u.%02u,"
                    "\"updatedAt\":%" PRIu64 ","
                    "\"cust\":{\"name\":\"%s\",\"addr\":{\"city\":\"%s\"}},"
                    "\"lines\":[{\"sku\":\"K%04u\",\"q\":%u}],\"tags\":[",
                    i + 1, STATUS[st], qty, eur, cent, ts, NAMES[nm], CITIES[city],
                    (unsigned)((i * 7919u) % 10000u), q0);
    for (unsigned t = 0; t < ntags; t++)
        n += sprintf(p + n, "%s%s", t ? "," : "", TAGS[(t0 + t) % 5]);
    n += sprintf(p + n, "]}");
    return (size_t)n;
}

static int item_changes(uint32_t i)
{
    return i % CHANGE_EVERY == CHANGE_AT;
}

/* Body A (variant 0) or B (variant 1) of n items: {"data":[item,...]}. */
static char *gen_body(uint32_t n, int variant, size_t *len)
{
    size_t cap = (size_t)n * 260 + 64;
    char *b = malloc(cap);
    if (!b) {
        fprintf(stderr, "out of memory generating %" PRIu32 " items\n", n);
        exit(2);
    }
    size_t k = (size_t)sprintf(b, "{\"data\":[");
    for (uint32_t i = 0; i < n; i++) {
        if (i)
            b[k++] = ',';
        k += gen_item(b + k, i, variant && item_changes(i));
    }
    k += (size_t)sprintf(b + k, "]}");
    *len = k;
    return b;
}

/* ---- timing ----------------------------------------------------------- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int y_null(void *c)
{
    (void)c;
    return 1;
}
static int y_bool(void *c, int b)
{
    (void)c, (void)b;
    return 1;
}
static int y_num(void *c, const char *s, size_t n)
{
    (void)c, (void)s, (void)n;
    return 1;
}
static int y_str(void *c, const unsigned char *s, size_t n)
{
    (void)c, (void)s, (void)n;
    return 1;
}

static const yajl_callbacks noop_callbacks = {
    .yajl_null = y_null,
    .yajl_boolean = y_bool,
    .yajl_number = y_num,
    .yajl_string = y_str,
    .yajl_start_map = y_null,
    .yajl_map_key = y_str,
    .yajl_end_map = y_null,
    .yajl_start_array = y_null,
    .yajl_end_array = y_null,
};

static double time_yajl(const char *body, size_t len)
{
    double t0 = now_ms();
    yajl_handle h = yajl_alloc(&noop_callbacks, NULL, NULL);
    if (!h) {
        fprintf(stderr, "yajl_alloc failed\n");
        exit(2);
    }
    yajl_status st = yajl_parse(h, (const unsigned char *)body, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    yajl_free(h);
    double t = now_ms() - t0;
    if (st != yajl_status_ok) {
        fprintf(stderr, "yajl rejected the generated body\n");
        exit(2);
    }
    return t;
}

/* ---- the pipeline ----------------------------------------------------- */

struct sink {
    size_t polls_with_events;
    size_t msgs;
    size_t bytes;
    int updated_only; /* every topic ends in /updated */
};

/* Stands in for the bridge's emit. The persist step (the SQLite
 * transaction that stores the snapshot and the outbox rows) is not run:
 * the budget covers the in-memory pipeline only. */
static int count_emit(void *ctx, const struct r2m_poller_batch *b, r2m_poller_persist_fn *persist,
                      void *pctx, char *err, size_t errlen)
{
    struct sink *s = ctx;
    (void)persist, (void)pctx, (void)err, (void)errlen;
    s->polls_with_events++;
    s->msgs += b->n;
    s->bytes += b->bytes.len;
    for (size_t i = 0; i < b->n; i++) {
        const char *t = r2m_poller_batch_topic(b, i);
        size_t tl = b->msgs[i].topic_len;
        if (tl < 8 || memcmp(t + tl - 8, "/updated", 8) != 0)
            s->updated_only = 0;
    }
    return 0;
}

struct rig {
    struct r2m_config cfg;
    struct r2m_endpoint_cfg ep;
    char *keys[1];
    char *ignore[1];
    struct r2m_poller_env env;
    struct sink sink;
    void *state;
    char err[512];
};

static void rig_init(struct rig *r)
{
    memset(r, 0, sizeof *r);
    r->keys[0] = "/id";
    r->ignore[0] = "/updatedAt";
    r->ep = (struct r2m_endpoint_cfg){
        .name = "orders",
        .url = "http://127.0.0.1/orders",
        .method = "GET",
        .max_body = (uint64_t)1 << 30,
        .items = "/data",
        .key = r->keys,
        .n_key = 1,
        .ignore = r->ignore,
        .n_ignore = 1,
        .payload = R2M_PAYLOAD_FULL,
        .topic = "{prefix}/{endpoint}/{key}/{op}",
    };
    r->cfg.instance = "bench";
    r->cfg.mqtt.topic_prefix = "r2m";
    r->cfg.endpoints = &r->ep;
    r->cfg.n_endpoints = 1;
    if (r2m_poller_env_init(&r->env, &r->cfg)) {
        fprintf(stderr, "r2m_poller_env_init failed\n");
        exit(2);
    }
    r->env.emit = count_emit;
    r->env.emit_ctx = &r->sink;
    r->env.wall_ms = 1795767302113;
    r->env.epoch = 1;
    r->sink.updated_only = 1;
    if (r2m_poller_collection.create(&r->state, &r->ep)) {
        fprintf(stderr, "collection create failed\n");
        exit(2);
    }
}

static void rig_free(struct rig *r)
{
    r2m_poller_collection.destroy(r->state);
    r2m_poller_env_cleanup(&r->env);
}

/* One poll; returns its wall time and checks the number of messages. */
static double poll_once(struct rig *r, const char *body, size_t len, size_t want_msgs)
{
    size_t before = r->sink.msgs;
    double t0 = now_ms();
    int rc =
        r2m_poller_collection.on_body(r->state, &r->ep, &r->env, body, len, r->err, sizeof r->err);
    double t = now_ms() - t0;
    if (rc) {
        fprintf(stderr, "on_body failed: %s: %s\n", r2m_strerror(rc), r->err);
        exit(2);
    }
    size_t got = r->sink.msgs - before;
    if (got != want_msgs || !r->sink.updated_only) {
        fprintf(stderr, "poll emitted %zu messages, expected %zu (all 'updated')\n", got,
                want_msgs);
        exit(2);
    }
    return t;
}

/* ---- peak RSS in a child ---------------------------------------------- */

struct rss_result {
    uint32_t n;
    size_t doc;    /* bytes of body B */
    long start_kb; /* ru_maxrss at the child's start */
    long gen_kb;   /* after generating A and B */
    long peak_kb;  /* after the baseline poll and the changed poll */
    int ok;
};

static long maxrss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss; /* KiB on Linux */
}

static void rss_child(uint32_t n, int fd)
{
    struct rss_result res = {.n = n};
    res.start_kb = maxrss_kb();
    size_t la, lb;
    char *a = gen_body(n, 0, &la);
    char *b = gen_body(n, 1, &lb);
    res.doc = lb;
    res.gen_kb = maxrss_kb();
    struct rig *r = malloc(sizeof *r);
    if (!r)
        _exit(2);
    rig_init(r);
    poll_once(r, a, la, 0);
    poll_once(r, b, lb, n / CHANGE_EVERY);
    res.peak_kb = maxrss_kb();
    res.ok = 1;
    ssize_t w = write(fd, &res, sizeof res);
    _exit(w == (ssize_t)sizeof res ? 0 : 2);
}

static int measure_rss(uint32_t n, struct rss_result *out)
{
    int fds[2];
    if (pipe(fds)) {
        perror("pipe");
        return -1;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        rss_child(n, fds[1]);
    }
    close(fds[1]);
    memset(out, 0, sizeof *out);
    ssize_t got = read(fds[0], out, sizeof *out);
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (got != (ssize_t)sizeof *out || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "RSS child for %" PRIu32 " items failed\n", n);
        return -1;
    }
    return 0;
}

/* ---- one size --------------------------------------------------------- */

static int count_item(void *ctx, size_t index, const char *key, size_t key_len,
                      struct r2m_json *item)
{
    (void)index, (void)key, (void)key_len, (void)item;
    ++*(size_t *)ctx;
    return 0;
}

struct result {
    uint32_t n;
    int k;
    size_t bytes;
    double yajl, parse, changed, unchanged, reparse;
    size_t events, event_bytes;
};

static double min2(double a, double b)
{
    return a < b ? a : b;
}

static void run_size(uint32_t n, int k, struct result *res)
{
    size_t la, lb;
    char *a = gen_body(n, 0, &la);
    char *b = gen_body(n, 1, &lb);
    memset(res, 0, sizeof *res);
    res->n = n;
    res->k = k;
    res->bytes = lb;
    res->yajl = res->parse = res->changed = res->unchanged = res->reparse = 1e300;
    size_t want = n / CHANGE_EVERY;

    /* parse alone, into a doc of its own (default limits) */
    struct r2m_json_doc *doc;
    if (r2m_json_doc_new(&doc, NULL)) {
        fprintf(stderr, "r2m_json_doc_new failed\n");
        exit(2);
    }
    char err[256];
    for (int i = 0; i < k; i++) {
        res->yajl = min2(res->yajl, time_yajl(b, lb));
        struct r2m_json *root;
        double t0 = now_ms();
        size_t seen = 0;
        int rc =
            r2m_json_parse_items(doc, b, lb, "/data", count_item, &seen, &root, err, sizeof err);
        res->parse = min2(res->parse, now_ms() - t0);
        if (!rc && seen != n) {
            snprintf(err, sizeof err, "%zu items streamed, expected %" PRIu32, seen, n);
            rc = R2M_E_INVALID;
        }
        if (rc) {
            fprintf(stderr, "r2m_json_parse_items: %s\n", err);
            exit(2);
        }
    }
    r2m_json_doc_free(doc);

    struct rig *r = malloc(sizeof *r);
    if (!r)
        exit(2);
    rig_init(r);
    poll_once(r, a, la, 0); /* quiet start: A becomes the baseline */
    const char *last = a;
    size_t last_len = la;
    for (int i = 0; i < k; i++) {
        res->yajl = min2(res->yajl, time_yajl(b, lb));
        last = i % 2 == 0 ? b : a;
        last_len = i % 2 == 0 ? lb : la;
        res->changed = min2(res->changed, poll_once(r, last, last_len, want));
    }
    res->events = r->sink.msgs / (size_t)k;
    res->event_bytes = r->sink.bytes / (size_t)k;
    for (int i = 0; i < k; i++) {
        res->yajl = min2(res->yajl, time_yajl(b, lb));
        res->unchanged = min2(res->unchanged, poll_once(r, last, last_len, 0));
    }
    /* the same items in other bytes: parsed in full, no events */
    char *alt = malloc(last_len + 1);
    if (!alt)
        exit(2);
    memcpy(alt, last, last_len);
    for (int i = 0; i < k; i++) {
        res->yajl = min2(res->yajl, time_yajl(b, lb));
        alt[last_len] = i % 2 ? '\n' : ' ';
        res->reparse = min2(res->reparse, poll_once(r, alt, last_len + 1, 0));
    }
    free(alt);
    rig_free(r);
    free(r);
    free(a);
    free(b);
}

/* Only the pipeline, for perf/callgrind: baseline A, then R changed polls. */
static int profile_polls(uint32_t n, int polls)
{
    size_t la, lb;
    char *a = gen_body(n, 0, &la);
    char *b = gen_body(n, 1, &lb);
    struct rig *r = malloc(sizeof *r);
    if (!r)
        return 2;
    rig_init(r);
    poll_once(r, a, la, 0);
    double best = 1e300;
    for (int i = 0; i < polls; i++)
        best = min2(best, poll_once(r, i % 2 ? a : b, i % 2 ? la : lb, n / CHANGE_EVERY));
    printf("%" PRIu32 " items, %d changed polls, best %.2f ms\n", n, polls, best);
    rig_free(r);
    free(r);
    free(a);
    free(b);
    return 0;
}

/* ---- main ------------------------------------------------------------- */

static const char *verdict(int ok)
{
    return ok ? "PASS" : "FAIL";
}

int main(int argc, char **argv)
{
    uint32_t sizes[3] = {10000, 100000, 1000000};
    int nsizes = 3, polls = 0, have_items = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            nsizes = 2;
        } else if (strcmp(argv[i], "--items") == 0 && i + 1 < argc) {
            unsigned long v = strtoul(argv[++i], NULL, 10);
            if (v < CHANGE_EVERY || v % CHANGE_EVERY || v > 4000000) {
                fprintf(stderr, "--items: a multiple of 100 from 100 to 4000000\n");
                return 2;
            }
            sizes[0] = (uint32_t)v;
            nsizes = 1;
            have_items = 1;
        } else if (strcmp(argv[i], "--polls") == 0 && i + 1 < argc) {
            polls = atoi(argv[++i]);
            if (polls < 1) {
                fprintf(stderr, "--polls: at least 1\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--gen") == 0 && i + 2 < argc) {
            unsigned long v = strtoul(argv[i + 1], NULL, 10);
            int variant = argv[i + 2][0] == 'b' || argv[i + 2][0] == 'B';
            size_t len;
            char *body = gen_body((uint32_t)v, variant, &len);
            int ok = fwrite(body, 1, len, stdout) == len;
            free(body);
            return ok ? 0 : 2;
        } else {
            fprintf(stderr, "usage: %s [--quick] [--items N] [--polls R] [--gen N a|b]\n", argv[0]);
            return 2;
        }
    }
    if (polls)
        return profile_polls(have_items ? sizes[0] : 100000, polls);

    printf("rest2mqtt keyed-collection benchmark (DESIGN.md 2b)\n");
    printf("body: {\"data\":[...]}, items of 15-17 values (nested object 2 deep, array of "
           "objects, array of strings), ids 1..N, seed 0x%016" PRIx64 "\n",
           SEED);
    printf("poller: collection, items /data, key /id, ignore [/updatedAt], payload full, "
           "topic {prefix}/{endpoint}/{key}/{op}\n");
    printf("change: item i changes when i %% %u == %u: qty+1, lines/0/q+1, updatedAt "
           "(ignored) -> N/100 'updated' events per poll\n",
           CHANGE_EVERY, CHANGE_AT);
    printf("time: wall clock, best of K (yajl: best of 3K, one run before each parse/poll "
           "run)\n");
    printf("\n");

    /* Memory first, while this process is still small: each child starts
     * with (a copy of) the parent's pages. */
    struct rss_result rss[3];
    int rss_ok[3] = {0, 0, 0};
    for (int i = 0; i < nsizes; i++)
        rss_ok[i] = measure_rss(sizes[i], &rss[i]) == 0;

    struct result res[3];
    for (int i = 0; i < nsizes; i++) {
        /* small sizes are cheap and noisy: more runs */
        int k = sizes[i] >= 1000000 ? 2 : sizes[i] < 50000 ? 15 : 5;
        run_size(sizes[i], k, &res[i]);
    }

    printf("TIME          items        bytes  K   yajl ms  parse ms  changed ms  ratio  "
           "unchanged ms  ratio  reparse ms  ratio  events  event MB  changed ms/1k items\n");
    for (int i = 0; i < nsizes; i++) {
        const struct result *x = &res[i];
        printf("TIME   %12" PRIu32 " %12zu %2d %9.2f %9.2f %11.2f %6.2f %13.2f %6.2f %11.2f "
               "%6.2f %7zu %9.2f %20.4f\n",
               x->n, x->bytes, x->k, x->yajl, x->parse, x->changed, x->changed / x->yajl,
               x->unchanged, x->unchanged / x->yajl, x->reparse, x->reparse / x->yajl, x->events,
               (double)x->event_bytes / 1e6, x->changed / ((double)x->n / 1000.0));
    }
    printf("  yajl      = yajl_parse with no-op callbacks over the same bytes (the floor)\n");
    printf("  parse     = r2m_json_parse_items alone (items streamed to a no-op callback); "
           "part of every poll\n");
    printf("  changed   = on_body with 1%% of the items changed: parse, canonicalise, "
           "fingerprint, sort, diff, patch, render\n");
    printf("  unchanged = on_body of the same body again (no events; the poller knows the "
           "bytes of its last accepted body)\n");
    printf("  reparse   = on_body of the same items in other bytes (a trailing space or "
           "newline): full poll, no events\n");

    int have_100k = -1;
    for (int i = 0; i < nsizes; i++)
        if (res[i].n == 100000)
            have_100k = i;
    if (nsizes > 1) {
        const struct result *lo = &res[0], *hi = &res[nsizes - 1];
        double per_lo = lo->changed / lo->n, per_hi = hi->changed / hi->n;
        double ypl = lo->yajl / lo->n, yph = hi->yajl / hi->n;
        printf("growth: changed poll per item %" PRIu32 " -> %" PRIu32
               " items: x%.2f (yajl: x%.2f); 1.00 = linear\n",
               lo->n, hi->n, per_hi / per_lo, yph / ypl);
    }

    printf("\nMEMORY        items   doc MB  start MB  after-gen MB  peak MB  counted MB  "
           "ratio\n");
    for (int i = 0; i < nsizes; i++) {
        if (!rss_ok[i]) {
            printf("MEMORY %12" PRIu32 "  (child failed)\n", sizes[i]);
            continue;
        }
        const struct rss_result *m = &rss[i];
        double doc = (double)m->doc / 1048576.0;
        double counted = (double)(m->peak_kb - m->start_kb) / 1024.0 - doc;
        printf("MEMORY %12" PRIu32 " %8.2f %9.2f %13.2f %8.2f %11.2f %6.2f\n", m->n, doc,
               m->start_kb / 1024.0, m->gen_kb / 1024.0, m->peak_kb / 1024.0, counted,
               counted / doc);
    }
    printf("  peak MB    = the child's ru_maxrss after a baseline poll of A and the changed "
           "poll of B\n");
    printf("  counted MB = peak - start - one body: the bridge holds one HTTP body, this "
           "process two (A and B);\n");
    printf("               so counted = one body + everything the poller, the parser and "
           "the shared env hold\n");
    printf("  ratio      = counted / doc size\n");

    int status = 0;
    if (have_100k >= 0) {
        const struct result *x = &res[have_100k];
        double tr = x->changed / x->yajl;
        int tok = tr <= BUDGET_TIME;
        printf("\n100k items, 1%% changed: pipeline %.2f ms / yajl %.2f ms = %.2fx  "
               "(budget %.1fx)  %s\n",
               x->changed, x->yajl, tr, BUDGET_TIME, verdict(tok));
        if (!tok)
            status = 1;
        if (rss_ok[have_100k]) {
            const struct rss_result *m = &rss[have_100k];
            double doc = (double)m->doc / 1048576.0;
            double counted = (double)(m->peak_kb - m->start_kb) / 1024.0 - doc;
            int mok = counted / doc <= BUDGET_RSS;
            printf("100k items, peak RSS: %.1f MB counted / %.1f MB document = %.2fx  "
                   "(budget %.1fx)  %s\n",
                   counted, doc, counted / doc, BUDGET_RSS, verdict(mok));
            if (!mok)
                status = 1;
        } else {
            status = 2;
        }
    }
    return status;
}
