/* test_store.c - the store interface: its dispatch to a backend (a fake
 * that records calls), and the SQLite backend's state and outbox on real
 * files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "r2m/error.h"
#include "r2m/store.h"
#include "r2m/store_backend.h"

static char dir[] = "/tmp/r2m-test-store-XXXXXX";
static char path[256];

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/r2m-test-store-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/state.db", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "chmod -R u+w %s; rm -rf %s", dir, dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* r2m_store_new for the SQLite file at, created if missing. */
static int new_at(const char *at, char *err, size_t errlen, struct r2m_store **out)
{
    struct r2m_store_params p = {.path = at};
    return r2m_store_new(&p, err, errlen, out);
}

static struct r2m_store *open_ok(void)
{
    struct r2m_store *s = NULL;
    char err[512];
    int r = new_at(path, err, sizeof err, &s);
    if (r)
        fail_msg("open failed: %s", err);
    return s;
}

struct items {
    int n;
    char keys[8][32];
    char bodies[8][64];
};

static int collect(void *ctx, const char *key, size_t key_len, struct r2m_fp fp, const char *body,
                   size_t body_len)
{
    struct items *it = ctx;
    assert_int_equal(fp.hi, 7);
    snprintf(it->keys[it->n], 32, "%.*s", (int)key_len, key);
    snprintf(it->bodies[it->n], 64, "%.*s", (int)body_len, body);
    it->n++;
    return 0;
}

static void snapshot_and_items_survive_reopen(void **state)
{
    (void)state;
    struct r2m_store *s = open_ok();
    uint64_t epoch = r2m_store_epoch(s);
    struct r2m_fp set = {1, 2}, dfp = {3, 4}, ifp = {7, 8};
    assert_int_equal(r2m_store_begin(s), 0);
    assert_int_equal(r2m_store_endpoint_put(s, "doc", set, 5, "{\"a\":1}", 7, dfp), 0);
    assert_int_equal(r2m_store_item_put(s, "list", "b", 1, ifp, "{\"id\":\"b\"}", 10), 0);
    assert_int_equal(r2m_store_item_put(s, "list", "a", 1, ifp, "{\"id\":\"a\"}", 10), 0);
    assert_int_equal(r2m_store_item_put(s, "list", "ab", 2, ifp, "{}", 2), 0);
    assert_int_equal(r2m_store_commit(s), 0);
    r2m_store_free(s);

    s = open_ok();
    assert_int_equal(r2m_store_epoch(s), epoch); /* fixed at creation */
    struct r2m_store_endpoint row;
    assert_int_equal(r2m_store_endpoint_get(s, "doc", &row), 0);
    assert_true(row.found);
    assert_int_equal(row.seq, 5);
    assert_int_equal(row.settings.hi, 1);
    assert_int_equal(row.settings.lo, 2);
    assert_true(row.has_doc);
    assert_string_equal(row.doc, "{\"a\":1}");
    assert_int_equal(row.doc_fp.lo, 4);
    free(row.doc);
    assert_int_equal(r2m_store_endpoint_get(s, "nope", &row), 0);
    assert_false(row.found);
    struct items it = {0};
    assert_int_equal(r2m_store_items(s, "list", collect, &it), 0);
    assert_int_equal(it.n, 3); /* bytewise key order, like the poller's */
    assert_string_equal(it.keys[0], "a");
    assert_string_equal(it.keys[1], "ab");
    assert_string_equal(it.keys[2], "b");
    assert_string_equal(it.bodies[2], "{\"id\":\"b\"}");
    assert_int_equal(r2m_store_begin(s), 0);
    assert_int_equal(r2m_store_item_delete(s, "list", "ab", 2), 0);
    assert_int_equal(r2m_store_endpoint_reset(s, "doc"), 0);
    assert_int_equal(r2m_store_commit(s), 0);
    memset(&it, 0, sizeof it);
    assert_int_equal(r2m_store_items(s, "list", collect, &it), 0);
    assert_int_equal(it.n, 2);
    assert_int_equal(r2m_store_endpoint_get(s, "doc", &row), 0);
    assert_false(row.found);
    r2m_store_free(s);
}

static void rollback_leaves_nothing(void **state)
{
    (void)state;
    struct r2m_store *s = open_ok();
    struct r2m_fp z = {0, 0};
    int64_t id;
    assert_int_equal(r2m_store_begin(s), 0);
    assert_int_equal(r2m_store_endpoint_put(s, "doc", z, 1, "1", 1, z), 0);
    assert_int_equal(r2m_store_outbox_add(s, NULL, "t", 1, "{}", 2, 0, &id), 0);
    r2m_store_rollback(s);
    struct r2m_store_endpoint row;
    assert_int_equal(r2m_store_endpoint_get(s, "doc", &row), 0);
    assert_false(row.found);
    assert_int_equal(r2m_store_outbox_count(s), 0);
    r2m_store_free(s);
}

struct ob {
    int n;
    int64_t ids[8];
    char topics[8][16];
    int retained[8];
    size_t lens[8];
};

static int collect_outbox(void *ctx, int64_t id, const char *topic, const char *payload, size_t len,
                          int retained)
{
    (void)payload;
    struct ob *o = ctx;
    o->ids[o->n] = id;
    snprintf(o->topics[o->n], 16, "%s", topic);
    o->retained[o->n] = retained;
    o->lens[o->n] = len;
    o->n++;
    return 0;
}

static void outbox_keeps_order_until_deleted(void **state)
{
    (void)state;
    struct r2m_store *s = open_ok();
    int64_t ids[3];
    assert_int_equal(r2m_store_begin(s), 0);
    assert_int_equal(r2m_store_outbox_add(s, NULL, "t/1", 3, "{\"n\":1}", 7, 0, &ids[0]), 0);
    assert_int_equal(r2m_store_outbox_add(s, NULL, "t/2", 3, "", 0, 1, &ids[1]), 0);
    assert_int_equal(r2m_store_outbox_add(s, NULL, "t/3", 3, "{\"n\":3}", 7, 0, &ids[2]), 0);
    assert_int_equal(r2m_store_commit(s), 0);
    assert_true(ids[0] < ids[1] && ids[1] < ids[2]);
    assert_int_equal(r2m_store_outbox_delete(s, ids[0]), 0);
    r2m_store_free(s);
    s = open_ok();
    struct ob o = {0};
    assert_int_equal(r2m_store_outbox(s, collect_outbox, &o), 0);
    assert_int_equal(o.n, 2);
    assert_string_equal(o.topics[0], "t/2");
    assert_int_equal(o.retained[0], 1);
    assert_int_equal(o.lens[0], 0); /* an empty retained message clears state */
    assert_string_equal(o.topics[1], "t/3");
    /* ids are never reused, even after the last row is deleted */
    assert_int_equal(r2m_store_outbox_delete(s, ids[2]), 0);
    int64_t again;
    assert_int_equal(r2m_store_outbox_add(s, NULL, "t/4", 3, "{}", 2, 0, &again), 0);
    assert_true(again > ids[2]);
    r2m_store_free(s);
}

struct dls {
    int n;
    char endpoint[4][16], topic[4][16], reason[4][32], event_id[4][16], payload[4][32];
    uint64_t size[4];
    int64_t time_ms[4];
};

static int collect_dead(void *ctx, const struct r2m_store_dead_letter *d)
{
    struct dls *o = ctx;
    int i = o->n++;
    snprintf(o->endpoint[i], 16, "%s", d->endpoint ? d->endpoint : "(null)");
    snprintf(o->topic[i], 16, "%s", d->topic);
    snprintf(o->reason[i], 32, "%s", d->reason);
    snprintf(o->event_id[i], 16, "%s", d->event_id ? d->event_id : "(null)");
    snprintf(o->payload[i], 32, "%.*s", (int)d->payload_len, d->payload);
    o->size[i] = d->size;
    o->time_ms[i] = d->time_ms;
    return 0;
}

/* A refused event leaves the outbox and enters the dead-letter table in one
 * transaction; requeueing puts it back at the end of the outbox. */
static void dead_letters_move_and_requeue(void **state)
{
    (void)state;
    struct r2m_store *s = open_ok();
    int64_t ids[3];
    char ep[64];
    assert_int_equal(r2m_store_begin(s), 0);
    assert_int_equal(r2m_store_outbox_add(s, "a", "t/1", 3, "{\"n\":1}", 7, 0, &ids[0]), 0);
    assert_int_equal(r2m_store_outbox_add(s, "b", "t/2", 3, "{\"n\":2}", 7, 0, &ids[1]), 0);
    assert_int_equal(r2m_store_outbox_add(s, NULL, "t/3", 3, "{\"n\":3}", 7, 1, &ids[2]), 0);
    assert_int_equal(r2m_store_commit(s), 0);

    /* a rolled-back move changes nothing */
    assert_int_equal(r2m_store_begin(s), 0);
    assert_int_equal(
        r2m_store_dead_letter_add(s, ids[1], 20, "not_authorized", "e2", 1000, ep, sizeof ep), 0);
    assert_string_equal(ep, "b");
    r2m_store_rollback(s);
    assert_int_equal(r2m_store_outbox_count(s), 3);
    assert_int_equal(r2m_store_dead_letter_count(s), 0);

    assert_int_equal(r2m_store_begin(s), 0);
    assert_int_equal(
        r2m_store_dead_letter_add(s, ids[1], 20, "not_authorized", "e2", 1000, ep, sizeof ep), 0);
    assert_int_equal(
        r2m_store_dead_letter_add(s, ids[2], 30, "packet_too_large", NULL, 2000, ep, sizeof ep), 0);
    assert_string_equal(ep, ""); /* no endpoint recorded */
    /* a row already gone moves nothing and is no error */
    assert_int_equal(
        r2m_store_dead_letter_add(s, 9999, 1, "not_authorized", NULL, 3000, ep, sizeof ep), 0);
    assert_int_equal(r2m_store_commit(s), 0);
    r2m_store_free(s);

    s = open_ok();
    assert_int_equal(r2m_store_outbox_count(s), 1);
    assert_int_equal(r2m_store_dead_letter_count(s), 2);
    struct dls d = {0};
    assert_int_equal(r2m_store_dead_letters(s, collect_dead, &d), 0);
    assert_int_equal(d.n, 2);
    assert_string_equal(d.endpoint[0], "b");
    assert_string_equal(d.topic[0], "t/2");
    assert_string_equal(d.reason[0], "not_authorized");
    assert_string_equal(d.event_id[0], "e2");
    assert_string_equal(d.payload[0], "{\"n\":2}");
    assert_int_equal(d.size[0], 20);
    assert_int_equal(d.time_ms[0], 1000);
    assert_string_equal(d.endpoint[1], "(null)");
    assert_string_equal(d.event_id[1], "(null)");

    int64_t n = 0;
    assert_int_equal(r2m_store_begin(s), 0);
    assert_int_equal(r2m_store_dead_letter_requeue(s, &n), 0);
    assert_int_equal(r2m_store_commit(s), 0);
    assert_int_equal(n, 2);
    assert_int_equal(r2m_store_dead_letter_count(s), 0);
    struct ob o = {0};
    assert_int_equal(r2m_store_outbox(s, collect_outbox, &o), 0);
    assert_int_equal(o.n, 3);
    assert_string_equal(o.topics[0], "t/1");
    assert_string_equal(o.topics[1], "t/2"); /* after what was waiting, in refusal order */
    assert_string_equal(o.topics[2], "t/3");
    assert_int_equal(o.retained[2], 1);
    assert_true(o.ids[1] > ids[2]);
    /* the requeued row keeps its endpoint: a second refusal names it again */
    assert_int_equal(r2m_store_begin(s), 0);
    assert_int_equal(
        r2m_store_dead_letter_add(s, o.ids[1], 20, "not_authorized", "e2", 4000, ep, sizeof ep), 0);
    assert_int_equal(r2m_store_commit(s), 0);
    assert_string_equal(ep, "b");
    r2m_store_free(s);
}

/* A state file written by the first release (schema 1: no outbox.endpoint,
 * no dead_letter table) opens, keeps its outbox and gains the table. */
static void schema_1_file_is_migrated(void **state)
{
    (void)state;
    char cmd[1200];
    snprintf(cmd, sizeof cmd,
             "sqlite3 %s \"PRAGMA journal_mode=WAL;"
             "CREATE TABLE meta(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
             "CREATE TABLE endpoint(name TEXT PRIMARY KEY, settings BLOB NOT NULL, seq INTEGER "
             "NOT NULL, doc BLOB, doc_fp BLOB, etag TEXT, last_modified TEXT) WITHOUT ROWID;"
             "CREATE TABLE item(endpoint TEXT NOT NULL, key BLOB NOT NULL, fp BLOB NOT NULL, "
             "body BLOB NOT NULL, PRIMARY KEY(endpoint, key)) WITHOUT ROWID;"
             "CREATE TABLE outbox(id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
             "payload BLOB NOT NULL, retained INTEGER NOT NULL);"
             "INSERT INTO meta VALUES('app','rest2mqtt'),('schema',1),('epoch',42);"
             "INSERT INTO outbox(topic, payload, retained) VALUES('t/old', '{}', 0);\" "
             ">/dev/null",
             path);
    if (system(cmd) != 0)
        fail_msg("sqlite3 (the command) is needed to write a schema 1 file");
    struct r2m_store *s = open_ok();
    assert_int_equal(r2m_store_epoch(s), 42);
    struct ob o = {0};
    assert_int_equal(r2m_store_outbox(s, collect_outbox, &o), 0);
    assert_int_equal(o.n, 1);
    assert_string_equal(o.topics[0], "t/old");
    char ep[16] = "x";
    assert_int_equal(r2m_store_begin(s), 0);
    assert_int_equal(
        r2m_store_dead_letter_add(s, o.ids[0], 9, "topic_name_invalid", NULL, 1, ep, sizeof ep), 0);
    assert_int_equal(r2m_store_commit(s), 0);
    assert_string_equal(ep, "");
    assert_int_equal(r2m_store_dead_letter_count(s), 1);
    r2m_store_free(s);
    /* and opens again as a current file */
    s = open_ok();
    assert_int_equal(r2m_store_dead_letter_count(s), 1);
    r2m_store_free(s);
}

static void foreign_and_corrupt_files_are_refused(void **state)
{
    (void)state;
    char err[512];
    struct r2m_store *s = NULL;
    /* not a database at all */
    FILE *f = fopen(path, "w");
    fputs("this is not sqlite, it is a text file that someone put here by mistake\n", f);
    fclose(f);
    assert_int_equal(new_at(path, err, sizeof err, &s), R2M_E_IO);
    assert_null(s);
    assert_non_null(strstr(err, path));
    unlink(path);
    /* an SQLite database of another application (made with the C API: the
     * sqlite3 command-line tool is not a dependency) */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE meta(k,v); INSERT INTO meta "
                                  "VALUES('app','other')",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    assert_int_equal(new_at(path, err, sizeof err, &s), R2M_E_IO);
    assert_non_null(strstr(err, "not a rest2mqtt state file"));
}

/* Root ignores file modes through CAP_DAC_OVERRIDE (and friends). Drops them
 * from this thread's effective set (raise = 0) or raises them again (raise =
 * 1): they stay in the permitted set. Returns 0 on success. */
static int dac_caps(int raise)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    const __u32 bits = 1u << CAP_DAC_OVERRIDE | 1u << CAP_DAC_READ_SEARCH | 1u << CAP_FOWNER;
    if (syscall(SYS_capget, &h, d))
        return -1;
    if (raise)
        d[0].effective |= bits & d[0].permitted;
    else
        d[0].effective &= ~bits;
    return (int)syscall(SYS_capset, &h, d);
}

static void read_only_file_is_a_clear_error(void **state)
{
    (void)state;
    char err[512];
    struct r2m_store *s = NULL;
    /* a directory that does not exist is named as such */
    assert_int_equal(new_at("/nonexistent-dir/x/state.db", err, sizeof err, &s), R2M_E_IO);
    assert_non_null(strstr(err, "/nonexistent-dir/x/state.db"));
    assert_non_null(strstr(err, "directory"));
    r2m_store_free(open_ok());
    chmod(path, 0444);
    chmod(dir, 0555);
    /* as root, test without the capabilities that bypass file modes, and
     * prove the file really is unwritable before trusting the result */
    if (geteuid() == 0 && dac_caps(0))
        fail_msg("running as root and cannot drop CAP_DAC_OVERRIDE: %s", strerror(errno));
    int fd = open(path, O_WRONLY);
    int writable = fd >= 0;
    if (fd >= 0)
        close(fd);
    int r = writable ? 0 : new_at(path, err, sizeof err, &s);
    if (geteuid() == 0)
        assert_int_equal(dac_caps(1), 0);
    if (writable)
        fail_msg("%s (mode 0444) is still writable: the test cannot arrange its condition", path);
    assert_int_equal(r, R2M_E_IO);
    assert_null(s);
    assert_non_null(strstr(err, path));
}

static void second_process_is_locked_out(void **state)
{
    (void)state;
    struct r2m_store *a = open_ok();
    char err[512];
    struct r2m_store *b = NULL;
    assert_int_equal(new_at(path, err, sizeof err, &b), R2M_E_IO);
    assert_non_null(strstr(err, "another rest2mqtt"));
    r2m_store_free(a);
    r2m_store_free(open_ok()); /* free again once the first one is gone */
}

/* A snapshot over SQLite's length limit fails the write clearly; it is
 * never stored as NULL (which would read back as "no baseline"). */
static void value_over_the_length_limit_fails_never_stores_null(void **state)
{
    (void)state;
    struct r2m_store *s = open_ok();
    struct r2m_fp z = {0, 0}, fp = {7, 7};
    int64_t id;
    assert_int_equal(r2m_store_begin(s), 0);
    assert_int_equal(r2m_store_endpoint_put(s, "doc", z, 1, "old", 3, z), 0);
    assert_int_equal(r2m_store_commit(s), 0);
    r2m_store_limit_length(s, 1000);
    static char big[4096];
    memset(big, 'x', sizeof big);
    assert_int_equal(r2m_store_begin(s), 0);
    assert_int_equal(r2m_store_endpoint_put(s, "doc", z, 2, big, sizeof big, z), R2M_E_TOO_BIG);
    assert_non_null(strstr(r2m_store_errmsg(s), "too big"));
    assert_int_equal(r2m_store_item_put(s, "coll", "k", 1, fp, big, sizeof big), R2M_E_TOO_BIG);
    assert_int_equal(r2m_store_item_put(s, "coll", big, sizeof big, fp, "{}", 2), R2M_E_TOO_BIG);
    assert_int_equal(r2m_store_outbox_add(s, "doc", "t", 1, big, sizeof big, 0, &id),
                     R2M_E_TOO_BIG);
    assert_int_equal(r2m_store_outbox_add(s, "doc", big, sizeof big, "{}", 2, 0, &id),
                     R2M_E_TOO_BIG);
    r2m_store_rollback(s);
    /* the statements are usable again, and nothing was half-written */
    struct r2m_store_endpoint row;
    assert_int_equal(r2m_store_endpoint_get(s, "doc", &row), 0);
    assert_true(row.found && row.has_doc);
    assert_int_equal(row.doc_len, 3);
    assert_memory_equal(row.doc, "old", 3);
    free(row.doc);
    free(row.etag);
    free(row.last_modified);
    assert_int_equal(r2m_store_outbox_count(s), 0);
    assert_int_equal(r2m_store_begin(s), 0);
    assert_int_equal(r2m_store_endpoint_put(s, "doc", z, 2, "new", 3, z), 0);
    assert_int_equal(r2m_store_commit(s), 0);
    r2m_store_free(s);
}

/* The path no longer naming the open file (deleted, or another file moved
 * over it) is detected and explained. */
static void removed_or_replaced_file_is_detected(void **state)
{
    (void)state;
    struct r2m_store *s = open_ok();
    char err[1024];
    assert_int_equal(r2m_store_check_file(s, err, sizeof err), 0);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(r2m_store_check_file(s, err, sizeof err), R2M_E_IO);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "removed"));
    r2m_store_free(s);

    s = open_ok();
    assert_int_equal(r2m_store_check_file(s, err, sizeof err), 0);
    char other[300];
    snprintf(other, sizeof other, "%s/other", dir);
    FILE *f = fopen(other, "w");
    assert_non_null(f);
    fputs("not a database", f);
    fclose(f);
    assert_int_equal(rename(other, path), 0);
    assert_int_equal(r2m_store_check_file(s, err, sizeof err), R2M_E_IO);
    assert_non_null(strstr(err, "replaced"));
    assert_null(strstr(err, "stay in the outbox"));
    r2m_store_free(s);
}

/* ---- the interface: a fake backend proves every call goes through ops ---- */

struct fake {
    struct r2m_store base;
    char log[1024]; /* one line per call: the operation and its arguments */
    int result;     /* what every int operation returns */
    int freed;
};

static int note(struct r2m_store *s, const char *fmt, ...)
{
    struct fake *f = (struct fake *)s;
    size_t at = strlen(f->log);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->log + at, sizeof f->log - at, fmt, ap);
    va_end(ap);
    at = strlen(f->log);
    snprintf(f->log + at, sizeof f->log - at, "\n");
    return f->result;
}

static void f_free(struct r2m_store *s)
{
    ((struct fake *)s)->freed++;
}
static const char *f_errmsg(const struct r2m_store *s)
{
    return ((const struct fake *)s)->result ? "fake failure" : "fake ok";
}
static uint64_t f_epoch(const struct r2m_store *s)
{
    (void)s;
    return 0xfeedu;
}
static int f_begin(struct r2m_store *s)
{
    return note(s, "begin");
}
static int f_commit(struct r2m_store *s)
{
    return note(s, "commit");
}
static void f_rollback(struct r2m_store *s)
{
    note(s, "rollback");
}
static int f_endpoint_get(struct r2m_store *s, const char *name, struct r2m_store_endpoint *out)
{
    memset(out, 0, sizeof *out);
    out->found = 1;
    out->seq = 9;
    return note(s, "endpoint_get %s", name);
}
static int f_endpoint_put(struct r2m_store *s, const char *name, struct r2m_fp settings,
                          uint64_t seq, const char *doc, size_t doc_len, struct r2m_fp doc_fp)
{
    return note(s, "endpoint_put %s %llu %llu %.*s %llu", name, (unsigned long long)settings.lo,
                (unsigned long long)seq, (int)doc_len, doc, (unsigned long long)doc_fp.hi);
}
static int f_validators_put(struct r2m_store *s, const char *name, const char *etag,
                            const char *last_modified)
{
    return note(s, "validators_put %s %s %s", name, etag, last_modified);
}
static int f_endpoint_reset(struct r2m_store *s, const char *name)
{
    return note(s, "endpoint_reset %s", name);
}
static int f_endpoint_names(struct r2m_store *s, void (*fn)(void *ctx, const char *name), void *ctx)
{
    fn(ctx, "from-fake");
    return note(s, "endpoint_names");
}
static int f_item_put(struct r2m_store *s, const char *endpoint, const char *key, size_t key_len,
                      struct r2m_fp fp, const char *body, size_t body_len)
{
    return note(s, "item_put %s %.*s %llu %.*s", endpoint, (int)key_len, key,
                (unsigned long long)fp.lo, (int)body_len, body);
}
static int f_item_delete(struct r2m_store *s, const char *endpoint, const char *key, size_t key_len)
{
    return note(s, "item_delete %s %.*s", endpoint, (int)key_len, key);
}
static int f_items(struct r2m_store *s, const char *endpoint, r2m_store_item_fn *fn, void *ctx)
{
    int r = fn(ctx, "k", 1, (struct r2m_fp){7, 1}, "{}", 2);
    return r ? r : note(s, "items %s", endpoint);
}
static int f_outbox_add(struct r2m_store *s, const char *endpoint, const char *topic,
                        size_t topic_len, const char *payload, size_t payload_len, int retained,
                        int64_t *id)
{
    *id = 77;
    return note(s, "outbox_add %s %.*s %.*s %d", endpoint, (int)topic_len, topic, (int)payload_len,
                payload, retained);
}
static int f_outbox_delete(struct r2m_store *s, int64_t id)
{
    return note(s, "outbox_delete %lld", (long long)id);
}
static int f_outbox(struct r2m_store *s, r2m_store_outbox_fn *fn, void *ctx)
{
    int r = fn(ctx, 5, "t/5", "{}", 2, 1);
    return r ? r : note(s, "outbox");
}
static int64_t f_outbox_count(struct r2m_store *s)
{
    note(s, "outbox_count");
    return 123;
}
static int f_dead_letter_add(struct r2m_store *s, int64_t outbox_id, uint64_t size,
                             const char *reason, const char *event_id, int64_t time_ms,
                             char *endpoint, size_t endpoint_len)
{
    snprintf(endpoint, endpoint_len, "ep-of-%lld", (long long)outbox_id);
    return note(s, "dead_letter_add %lld %llu %s %s %lld", (long long)outbox_id,
                (unsigned long long)size, reason, event_id, (long long)time_ms);
}
static int f_dead_letters(struct r2m_store *s, r2m_store_dead_letter_fn *fn, void *ctx)
{
    struct r2m_store_dead_letter d = {.id = 3, .topic = "t", .reason = "too_large"};
    int r = fn(ctx, &d);
    return r ? r : note(s, "dead_letters");
}
static int f_dead_letter_requeue(struct r2m_store *s, int64_t *n)
{
    *n = 4;
    return note(s, "dead_letter_requeue");
}
static int64_t f_dead_letter_count(struct r2m_store *s)
{
    note(s, "dead_letter_count");
    return 456;
}

/* set_sync, check_file and limit_length left NULL: a backend without them */
static const struct r2m_store_ops fake_ops = {
    .name = "fake",
    .free = f_free,
    .errmsg = f_errmsg,
    .epoch = f_epoch,
    .begin = f_begin,
    .commit = f_commit,
    .rollback = f_rollback,
    .endpoint_get = f_endpoint_get,
    .endpoint_put = f_endpoint_put,
    .validators_put = f_validators_put,
    .endpoint_reset = f_endpoint_reset,
    .endpoint_names = f_endpoint_names,
    .item_put = f_item_put,
    .item_delete = f_item_delete,
    .items = f_items,
    .outbox_add = f_outbox_add,
    .outbox_delete = f_outbox_delete,
    .outbox = f_outbox,
    .outbox_count = f_outbox_count,
    .dead_letter_add = f_dead_letter_add,
    .dead_letters = f_dead_letters,
    .dead_letter_requeue = f_dead_letter_requeue,
    .dead_letter_count = f_dead_letter_count,
};

static void name_seen(void *ctx, const char *name)
{
    snprintf(ctx, 32, "%s", name);
}
static int item_seen(void *ctx, const char *key, size_t key_len, struct r2m_fp fp, const char *body,
                     size_t body_len)
{
    snprintf(ctx, 32, "%.*s %llu %.*s", (int)key_len, key, (unsigned long long)fp.hi, (int)body_len,
             body);
    return 0;
}
static int outbox_seen(void *ctx, int64_t id, const char *topic, const char *payload,
                       size_t payload_len, int retained)
{
    snprintf(ctx, 32, "%lld %s %.*s %d", (long long)id, topic, (int)payload_len, payload, retained);
    return 0;
}
static int dead_letter_seen(void *ctx, const struct r2m_store_dead_letter *d)
{
    snprintf(ctx, 32, "%lld %s", (long long)d->id, d->reason);
    return 11; /* a callback's non-zero return comes back unchanged */
}

/* Every r2m_store_* call reaches the backend's operation with its arguments
 * unchanged and returns the operation's result unchanged; operations a
 * backend leaves out get the documented defaults. */
static void every_call_goes_through_the_backend_ops(void **state)
{
    (void)state;
    struct fake f = {.base = {.ops = &fake_ops}};
    struct r2m_store *s = &f.base;
    struct r2m_fp a = {1, 2}, b = {3, 4};
    char seen[32] = "", err[64] = "untouched", ep[32] = "";
    int64_t id = 0, n = 0;
    struct r2m_store_endpoint row;

    assert_int_equal(r2m_store_epoch(s), 0xfeed);
    assert_string_equal(r2m_store_errmsg(s), "fake ok");
    assert_int_equal(r2m_store_set_sync(s, 1), 0);
    assert_int_equal(r2m_store_check_file(s, err, sizeof err), 0);
    assert_string_equal(err, "untouched");
    assert_int_equal(r2m_store_limit_length(s, 10), -1);
    assert_int_equal(r2m_store_begin(s), 0);
    assert_int_equal(r2m_store_endpoint_get(s, "e1", &row), 0);
    assert_true(row.found);
    assert_int_equal(row.seq, 9);
    assert_int_equal(r2m_store_endpoint_put(s, "e1", a, 5, "docX", 3, b), 0);
    assert_int_equal(r2m_store_validators_put(s, "e1", "\"v1\"", "Mon"), 0);
    assert_int_equal(r2m_store_endpoint_reset(s, "e2"), 0);
    assert_int_equal(r2m_store_endpoint_names(s, name_seen, seen), 0);
    assert_string_equal(seen, "from-fake");
    assert_int_equal(r2m_store_item_put(s, "e1", "key", 2, b, "{}x", 2), 0);
    assert_int_equal(r2m_store_item_delete(s, "e1", "kz", 1), 0);
    assert_int_equal(r2m_store_items(s, "e1", item_seen, seen), 0);
    assert_string_equal(seen, "k 7 {}");
    assert_int_equal(r2m_store_outbox_add(s, "e1", "t/1x", 3, "{}", 2, 1, &id), 0);
    assert_int_equal(id, 77);
    assert_int_equal(r2m_store_outbox_delete(s, 77), 0);
    assert_int_equal(r2m_store_outbox(s, outbox_seen, seen), 0);
    assert_string_equal(seen, "5 t/5 {} 1");
    assert_int_equal(r2m_store_outbox_count(s), 123);
    assert_int_equal(r2m_store_dead_letter_add(s, 8, 300, "too_large", "ev1", 99, ep, sizeof ep),
                     0);
    assert_string_equal(ep, "ep-of-8");
    assert_int_equal(r2m_store_dead_letters(s, dead_letter_seen, seen), 11);
    assert_string_equal(seen, "3 too_large");
    assert_int_equal(r2m_store_dead_letter_requeue(s, &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(r2m_store_dead_letter_count(s), 456);
    r2m_store_rollback(s);
    assert_string_equal(f.log, "begin\n"
                               "endpoint_get e1\n"
                               "endpoint_put e1 2 5 doc 3\n"
                               "validators_put e1 \"v1\" Mon\n"
                               "endpoint_reset e2\n"
                               "endpoint_names\n"
                               "item_put e1 ke 4 {}\n"
                               "item_delete e1 k\n"
                               "items e1\n"
                               "outbox_add e1 t/1 {} 1\n"
                               "outbox_delete 77\n"
                               "outbox\n"
                               "outbox_count\n"
                               "dead_letter_add 8 300 too_large ev1 99\n"
                               "dead_letter_requeue\n"
                               "dead_letter_count\n"
                               "rollback\n");
    assert_int_equal(f.freed, 0);
    r2m_store_free(s);
    assert_int_equal(f.freed, 1);
    r2m_store_free(NULL);
}

/* A failed commit - R2M_E_FENCED from a backend that lost the endpoint to
 * another process - reaches the caller as that code, not a generic one. */
static void a_fenced_commit_reaches_the_caller(void **state)
{
    (void)state;
    struct fake f = {.base = {.ops = &fake_ops}};
    assert_int_equal(r2m_store_begin(&f.base), 0);
    f.result = R2M_E_FENCED;
    assert_int_equal(r2m_store_commit(&f.base), R2M_E_FENCED);
    assert_string_equal(r2m_store_errmsg(&f.base), "fake failure");
    assert_string_equal(f.log, "begin\ncommit\n");
}

/* No backend named: a clear error, nothing opened. */
static void no_store_named_is_an_error(void **state)
{
    (void)state;
    struct r2m_store_params p = {0};
    struct r2m_store *s = NULL;
    char err[128];
    assert_int_equal(r2m_store_new(&p, err, sizeof err, &s), R2M_E_INVALID);
    assert_null(s);
    assert_non_null(strstr(err, "state.path"));
}

/* `existing`: the state commands read a store and must never create one
 * (a wrong -c would otherwise show an empty new file). */
static void existing_store_is_not_created(void **state)
{
    (void)state;
    struct r2m_store_params p = {.path = path, .existing = 1};
    struct r2m_store *s = NULL;
    char err[512];
    assert_int_equal(r2m_store_new(&p, err, sizeof err, &s), R2M_E_NOT_FOUND);
    assert_null(s);
    assert_non_null(strstr(err, path));
    struct stat sb;
    assert_int_equal(stat(path, &sb), -1); /* not created */
    r2m_store_free(open_ok());
    assert_int_equal(r2m_store_new(&p, err, sizeof err, &s), 0);
    assert_non_null(s);
    assert_int_equal(r2m_store_outbox_count(s), 0);
    r2m_store_free(s);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(snapshot_and_items_survive_reopen),
        T(rollback_leaves_nothing),
        T(outbox_keeps_order_until_deleted),
        T(foreign_and_corrupt_files_are_refused),
        T(read_only_file_is_a_clear_error),
        T(second_process_is_locked_out),
        T(value_over_the_length_limit_fails_never_stores_null),
        T(removed_or_replaced_file_is_detected),
        T(dead_letters_move_and_requeue),
        T(schema_1_file_is_migrated),
        cmocka_unit_test(every_call_goes_through_the_backend_ops),
        cmocka_unit_test(a_fenced_commit_reaches_the_caller),
        cmocka_unit_test(no_store_named_is_an_error),
        T(existing_store_is_not_created),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
