/* test_store.c - SQLite state and outbox on real files. */
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

static struct r2m_store *open_ok(void)
{
    struct r2m_store *s = NULL;
    char err[512];
    int r = r2m_store_open(&s, path, err, sizeof err);
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
    r2m_store_close(s);

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
    r2m_store_close(s);
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
    r2m_store_close(s);
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
    r2m_store_close(s);
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
    r2m_store_close(s);
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
    r2m_store_close(s);

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
    r2m_store_close(s);
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
    r2m_store_close(s);
    /* and opens again as a current file */
    s = open_ok();
    assert_int_equal(r2m_store_dead_letter_count(s), 1);
    r2m_store_close(s);
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
    assert_int_equal(r2m_store_open(&s, path, err, sizeof err), R2M_E_IO);
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
    assert_int_equal(r2m_store_open(&s, path, err, sizeof err), R2M_E_IO);
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
    assert_int_equal(r2m_store_open(&s, "/nonexistent-dir/x/state.db", err, sizeof err), R2M_E_IO);
    assert_non_null(strstr(err, "/nonexistent-dir/x/state.db"));
    assert_non_null(strstr(err, "directory"));
    r2m_store_close(open_ok());
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
    int r = writable ? 0 : r2m_store_open(&s, path, err, sizeof err);
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
    assert_int_equal(r2m_store_open(&b, path, err, sizeof err), R2M_E_IO);
    assert_non_null(strstr(err, "another rest2mqtt"));
    r2m_store_close(a);
    r2m_store_close(open_ok()); /* free again once the first one is gone */
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
    assert_int_equal(r2m_store_outbox_add(s, "doc", "t", 1, big, sizeof big, 0, &id), R2M_E_TOO_BIG);
    assert_int_equal(r2m_store_outbox_add(s, "doc", big, sizeof big, "{}", 2, 0, &id), R2M_E_TOO_BIG);
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
    r2m_store_close(s);
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
    r2m_store_close(s);

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
    r2m_store_close(s);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
