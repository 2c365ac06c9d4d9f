/* store_sqlite.c - the SQLite store backend: one database file in WAL mode.
 *
 * r2m/store.h has the contract, r2m/store_backend.h the operations this file
 * fills in (sqlite_ops at the end). Statements are prepared once. */
#include "r2m/store.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "r2m/error.h"
#include "r2m/store_backend.h"

/* 1: the first release. 2: outbox.endpoint and the dead_letter table;
 * a version 1 file is migrated in place when opened. */
#define SCHEMA_VERSION 2

enum {
    Q_BEGIN,
    Q_COMMIT,
    Q_ROLLBACK,
    Q_EP_GET,
    Q_EP_PUT,
    Q_EP_DEL,
    Q_EP_DEL_ITEMS,
    Q_EP_NAMES,
    Q_EP_VALIDATORS,
    Q_ITEM_PUT,
    Q_ITEM_DEL,
    Q_ITEMS,
    Q_OUT_ADD,
    Q_OUT_DEL,
    Q_OUT_ALL,
    Q_OUT_COUNT,
    Q_DL_ADD,
    Q_DL_ALL,
    Q_DL_REQUEUE,
    Q_DL_CLEAR,
    Q_DL_COUNT,
    Q__N
};

static const char *const sql[Q__N] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_EP_GET] = "SELECT settings, seq, doc, doc_fp, etag, last_modified FROM endpoint "
                 "WHERE name = ?1",
    [Q_EP_VALIDATORS] = "UPDATE endpoint SET etag = ?2, last_modified = ?3 WHERE name = ?1",
    [Q_EP_PUT] = "INSERT OR REPLACE INTO endpoint(name, settings, seq, doc, doc_fp) "
                 "VALUES (?1, ?2, ?3, ?4, ?5)",
    [Q_EP_DEL] = "DELETE FROM endpoint WHERE name = ?1",
    [Q_EP_DEL_ITEMS] = "DELETE FROM item WHERE endpoint = ?1",
    [Q_EP_NAMES] = "SELECT name FROM endpoint UNION SELECT DISTINCT endpoint FROM item "
                   "ORDER BY 1",
    [Q_ITEM_PUT] = "INSERT OR REPLACE INTO item(endpoint, key, fp, body) VALUES (?1, ?2, ?3, ?4)",
    [Q_ITEM_DEL] = "DELETE FROM item WHERE endpoint = ?1 AND key = ?2",
    [Q_ITEMS] = "SELECT key, fp, body FROM item WHERE endpoint = ?1 ORDER BY key",
    [Q_OUT_ADD] = "INSERT INTO outbox(topic, payload, retained, endpoint) VALUES (?1, ?2, ?3, ?4)",
    [Q_OUT_DEL] = "DELETE FROM outbox WHERE id = ?1",
    [Q_OUT_ALL] = "SELECT id, topic, payload, retained FROM outbox ORDER BY id",
    [Q_OUT_COUNT] = "SELECT count(*) FROM outbox",
    [Q_DL_ADD] = "INSERT INTO dead_letter(endpoint, topic, payload, retained, size, reason, "
                 "event_id, time_ms) SELECT endpoint, topic, payload, retained, ?2, ?3, ?4, ?5 "
                 "FROM outbox WHERE id = ?1 RETURNING endpoint",
    [Q_DL_ALL] = "SELECT id, endpoint, topic, payload, size, reason, event_id, time_ms "
                 "FROM dead_letter ORDER BY id",
    /* back at the end of the outbox, in the order they were refused */
    [Q_DL_REQUEUE] = "INSERT INTO outbox(topic, payload, retained, endpoint) "
                     "SELECT topic, payload, retained, endpoint FROM dead_letter ORDER BY id",
    [Q_DL_CLEAR] = "DELETE FROM dead_letter",
    [Q_DL_COUNT] = "SELECT count(*) FROM dead_letter",
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS endpoint("
    "  name TEXT PRIMARY KEY, settings BLOB NOT NULL, seq INTEGER NOT NULL,"
    "  doc BLOB, doc_fp BLOB, etag TEXT, last_modified TEXT) WITHOUT ROWID;"
    /* keys are BLOBs so ORDER BY is bytewise, the poller's own order */
    "CREATE TABLE IF NOT EXISTS item("
    "  endpoint TEXT NOT NULL, key BLOB NOT NULL, fp BLOB NOT NULL, body BLOB NOT NULL,"
    "  PRIMARY KEY(endpoint, key)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS outbox("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL,"
    "  retained INTEGER NOT NULL, endpoint TEXT);"
    /* events the broker refused for good (r2m/store.h); size is the
     * encoded PUBLISH packet, time_ms Unix ms of the refusal */
    "CREATE TABLE IF NOT EXISTS dead_letter("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, endpoint TEXT, topic TEXT NOT NULL,"
    "  payload BLOB NOT NULL, retained INTEGER NOT NULL, size INTEGER NOT NULL,"
    "  reason TEXT NOT NULL, event_id TEXT, time_ms INTEGER NOT NULL);";

/* Version 1 -> 2. The schema text above already created dead_letter (IF NOT
 * EXISTS); an old outbox lacks the endpoint column. Its rows keep NULL
 * there: they were queued before the endpoint was recorded. */
static const char migrate_1_2[] = "ALTER TABLE outbox ADD COLUMN endpoint TEXT;"
                                  "UPDATE meta SET v = 2 WHERE k = 'schema';";

struct sqlite_store {
    struct r2m_store base; /* first: the store's operations */
    sqlite3 *db;
    sqlite3_stmt *q[Q__N];
    uint64_t epoch;
    int in_txn;
    int fresh; /* the file had no tables when opened */
    char *path;
    dev_t dev; /* identity of the file opened at path */
    ino_t ino;
};

/* A failed bind (SQLITE_TOOBIG: a value over SQLite's length limit) must
 * fail the statement, never run it with NULL in that column: a NULL
 * snapshot reads back as "no baseline". rc is the first failing bind's
 * result, or SQLITE_OK; the SQLite error text stays for r2m_store_errmsg. */
static int bound(sqlite3_stmt *st, int rc)
{
    if (rc == SQLITE_OK)
        return 0;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return (rc & 0xff) == SQLITE_TOOBIG ? R2M_E_TOO_BIG : R2M_E_IO;
}

static const char *sq_errmsg(const struct r2m_store *base)
{
    const struct sqlite_store *s = (const struct sqlite_store *)base;
    return s && s->db ? sqlite3_errmsg(s->db) : "no database";
}

static void fp_pack(struct r2m_fp fp, unsigned char out[16])
{
    for (int i = 0; i < 8; i++) {
        out[i] = (unsigned char)(fp.hi >> (56 - 8 * i));
        out[8 + i] = (unsigned char)(fp.lo >> (56 - 8 * i));
    }
}

static struct r2m_fp fp_unpack(const void *p, int n)
{
    struct r2m_fp fp = {0, 0};
    const unsigned char *b = p;
    if (!b || n != 16)
        return fp;
    for (int i = 0; i < 8; i++) {
        fp.hi = fp.hi << 8 | b[i];
        fp.lo = fp.lo << 8 | b[8 + i];
    }
    return fp;
}

/* Runs a statement to completion; 0 or R2M_E_IO. */
static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : R2M_E_IO;
}

static int exec(struct sqlite_store *s, const char *text)
{
    return sqlite3_exec(s->db, text, NULL, NULL, NULL) == SQLITE_OK ? 0 : R2M_E_IO;
}

/* Reads or creates meta: schema version, application tag, epoch. */
static int init_meta(struct sqlite_store *s, const char *path, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int r = R2M_E_IO;
    long long schema_v = -1;
    int is_ours = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT k, v FROM meta", -1, &st, NULL) != SQLITE_OK)
        goto fail;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(st, 0);
        if (!strcmp(k, "app"))
            is_ours = !strcmp((const char *)sqlite3_column_text(st, 1), "rest2mqtt");
        else if (!strcmp(k, "schema"))
            schema_v = sqlite3_column_int64(st, 1);
        else if (!strcmp(k, "epoch"))
            s->epoch = (uint64_t)sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc != SQLITE_DONE)
        goto fail;
    if (schema_v == -1 && !s->fresh) {
        snprintf(err, errlen,
                 "%s is an SQLite database but not a rest2mqtt state file; point state.path at "
                 "another file",
                 path);
        return R2M_E_IO;
    }
    if (schema_v == -1) {
        uint64_t e = 0;
        if (getrandom(&e, sizeof e, 0) != sizeof e)
            e = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
        s->epoch = e;
        char text[160];
        snprintf(text, sizeof text,
                 "INSERT INTO meta(k, v) VALUES ('app', 'rest2mqtt'), ('schema', %d), "
                 "('epoch', %lld)",
                 SCHEMA_VERSION, (long long)e);
        if (exec(s, text))
            goto fail;
        return 0;
    }
    if (!is_ours) {
        snprintf(err, errlen,
                 "%s is an SQLite database but not a rest2mqtt state file; point state.path at "
                 "another file",
                 path);
        return R2M_E_IO;
    }
    if (schema_v == 1) {
        if (exec(s, migrate_1_2))
            goto fail;
        schema_v = 2;
    }
    if (schema_v != SCHEMA_VERSION) {
        snprintf(err, errlen,
                 "%s has state schema version %lld, this rest2mqtt understands %d; use the "
                 "matching rest2mqtt version or a new state file",
                 path, schema_v, SCHEMA_VERSION);
        return R2M_E_IO;
    }
    return 0;
fail:
    sqlite3_finalize(st);
    snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(s->db));
    return r;
}

/* err for a failed SQLite call while opening path, with a hint at the
 * usual cause; returns R2M_E_IO. */
static int open_error(struct sqlite_store *s, const char *path, char *err, size_t errlen)
{
    int code = sqlite3_errcode(s->db) & 0xff;
    const char *hint = code == SQLITE_BUSY || code == SQLITE_LOCKED
                           ? "another rest2mqtt process probably uses it; stop it or give "
                             "this one its own state.path"
                       : code == SQLITE_READONLY || code == SQLITE_CANTOPEN || code == SQLITE_PERM
                           ? "make the file and its directory writable by this user"
                       : code == SQLITE_NOTADB || code == SQLITE_CORRUPT
                           ? "it is not a valid state file; restore a backup or move it away"
                       : code == SQLITE_FULL ? "the disk is full; free space"
                                             : "check the file and its directory";
    snprintf(err, errlen, "state file %s: %s; %s", path, sqlite3_errmsg(s->db), hint);
    return R2M_E_IO;
}

/* Opens (creating) the file at path in WAL mode with our pragmas, and
 * refuses a damaged one. */
static int open_file(struct sqlite_store *s, const char *path, char *err, size_t errlen)
{
    int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen,
                 "cannot open state file %s: %s; check that its directory exists "
                 "and is writable",
                 path, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        return R2M_E_IO;
    }
    sqlite3_extended_result_codes(s->db, 1);
    /* EXCLUSIVE: a second rest2mqtt on the same file fails at start instead
     * of interleaving its writes with ours */
    if (exec(s, "PRAGMA locking_mode=EXCLUSIVE") || exec(s, "PRAGMA synchronous=FULL") ||
        exec(s, "PRAGMA foreign_keys=OFF"))
        return open_error(s, path, err, errlen);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL) != SQLITE_OK)
        return open_error(s, path, err, errlen);
    rc = sqlite3_step(st);
    const char *mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    int wal = mode && !strcmp(mode, "wal");
    sqlite3_finalize(st);
    if (!wal)
        return open_error(s, path, err, errlen);
    /* a damaged file is an error, never a silent reset */
    if (sqlite3_prepare_v2(s->db, "PRAGMA quick_check", -1, &st, NULL) != SQLITE_OK)
        return open_error(s, path, err, errlen);
    rc = sqlite3_step(st);
    const char *qc = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    int r = 0;
    if (!qc || strcmp(qc, "ok")) {
        snprintf(err, errlen,
                 "state file %s is damaged (%s); restore it from a backup, or move it away to "
                 "start from fresh baselines",
                 path, qc ? qc : sqlite3_errmsg(s->db));
        r = R2M_E_IO;
    }
    sqlite3_finalize(st);
    return r;
}

/* Creates our tables in a fresh file, or checks that an existing one is
 * ours (migrating an older schema), in one transaction. */
static int open_schema(struct sqlite_store *s, const char *path, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (exec(s, "BEGIN IMMEDIATE"))
        return open_error(s, path, err, errlen);
    /* a database that already has tables must be ours: never add our
     * tables to someone else's file */
    if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM sqlite_master", -1, &st, NULL) != SQLITE_OK)
        return open_error(s, path, err, errlen);
    int existing = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    s->fresh = existing == 0;
    if (exec(s, schema) || init_meta(s, path, err, errlen)) {
        exec(s, "ROLLBACK");
        return err[0] ? R2M_E_IO : open_error(s, path, err, errlen);
    }
    return exec(s, "COMMIT") ? open_error(s, path, err, errlen) : 0;
}

static void sq_free(struct r2m_store *base)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    if (!s)
        return;
    for (int i = 0; i < Q__N; i++)
        sqlite3_finalize(s->q[i]);
    sqlite3_close(s->db);
    free(s->path);
    free(s);
}

static int sq_check_file(struct r2m_store *base, char *err, size_t errlen)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    struct stat sb;
    if (stat(s->path, &sb) == 0 && sb.st_dev == s->dev && sb.st_ino == s->ino)
        return 0;
    if (stat(s->path, &sb) < 0 && errno != ENOENT && errno != ENOTDIR)
        return 0; /* cannot tell (e.g. EACCES on the directory): not evidence of loss */
    int gone = stat(s->path, &sb) < 0;
    snprintf(err, errlen,
             "state file %s was %s while rest2mqtt was running; the snapshots and the events "
             "not yet acknowledged by the broker are in the old file, which is no longer at "
             "that path, so nothing written from now on could be found again. Stopping. Put "
             "the original file back at %s (with its -wal file, e.g. from a backup) before "
             "starting again: a new file re-baselines every endpoint silently and cannot "
             "deliver the events that were waiting",
             s->path, gone ? "removed" : "replaced by another file", s->path);
    return R2M_E_IO;
}

static int sq_limit_length(struct r2m_store *base, int bytes)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    return sqlite3_limit(s->db, SQLITE_LIMIT_LENGTH, bytes);
}

static int sq_set_sync(struct r2m_store *base, int full)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    return exec(s, full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
}

static uint64_t sq_epoch(const struct r2m_store *base)
{
    const struct sqlite_store *s = (const struct sqlite_store *)base;
    return s->epoch;
}

static int sq_begin(struct r2m_store *base)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    int r = step_done(s->q[Q_BEGIN]);
    s->in_txn = !r;
    return r;
}

static void sq_rollback(struct r2m_store *base)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    if (sqlite3_get_autocommit(s->db) == 0)
        step_done(s->q[Q_ROLLBACK]);
    s->in_txn = 0;
}

static int sq_commit(struct r2m_store *base)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    int r = step_done(s->q[Q_COMMIT]);
    if (r)
        sq_rollback(&s->base);
    s->in_txn = 0;
    return r;
}

static int sq_endpoint_get(struct r2m_store *base, const char *name, struct r2m_store_endpoint *out)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = s->q[Q_EP_GET];
    int r = bound(st, sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC));
    if (r)
        return r;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        out->found = 1;
        out->settings = fp_unpack(sqlite3_column_blob(st, 0), sqlite3_column_bytes(st, 0));
        out->seq = (uint64_t)sqlite3_column_int64(st, 1);
        if (sqlite3_column_type(st, 2) != SQLITE_NULL) {
            const void *d = sqlite3_column_blob(st, 2);
            size_t n = (size_t)sqlite3_column_bytes(st, 2);
            out->doc = malloc(n + 1);
            if (!out->doc) {
                r = R2M_E_NOMEM;
            } else {
                if (n)
                    memcpy(out->doc, d, n);
                out->doc[n] = '\0';
                out->doc_len = n;
                out->has_doc = 1;
                out->doc_fp = fp_unpack(sqlite3_column_blob(st, 3), sqlite3_column_bytes(st, 3));
            }
        }
        for (int k = 0; k < 2 && !r; k++) {
            const char *v = (const char *)sqlite3_column_text(st, 4 + k);
            char **dst = k ? &out->last_modified : &out->etag;
            if (v && !(*dst = strdup(v)))
                r = R2M_E_NOMEM;
        }
    } else if (rc != SQLITE_DONE) {
        r = R2M_E_IO;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return r;
}

static int sq_validators_put(struct r2m_store *base, const char *name, const char *etag,
                             const char *last_modified)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = s->q[Q_EP_VALIDATORS];
    int rc = sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && etag && *etag)
        rc = sqlite3_bind_text(st, 2, etag, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && last_modified && *last_modified)
        rc = sqlite3_bind_text(st, 3, last_modified, -1, SQLITE_STATIC);
    int r = bound(st, rc);
    return r ? r : step_done(st);
}

static int sq_endpoint_put(struct r2m_store *base, const char *name, struct r2m_fp settings,
                           uint64_t seq, const char *doc, size_t doc_len, struct r2m_fp doc_fp)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    unsigned char sp[16], dp[16];
    fp_pack(settings, sp);
    fp_pack(doc_fp, dp);
    sqlite3_stmt *st = s->q[Q_EP_PUT];
    int rc = sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob(st, 2, sp, 16, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 3, (sqlite3_int64)seq);
    if (rc == SQLITE_OK && doc)
        rc = sqlite3_bind_blob64(st, 4, doc, doc_len, SQLITE_STATIC);
    if (rc == SQLITE_OK && doc)
        rc = sqlite3_bind_blob(st, 5, dp, 16, SQLITE_STATIC);
    int r = bound(st, rc);
    return r ? r : step_done(st);
}

static int sq_endpoint_reset(struct r2m_store *base, const char *name)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    int r = bound(s->q[Q_EP_DEL], sqlite3_bind_text(s->q[Q_EP_DEL], 1, name, -1, SQLITE_STATIC));
    if (!r)
        r = step_done(s->q[Q_EP_DEL]);
    if (!r)
        r = bound(s->q[Q_EP_DEL_ITEMS],
                  sqlite3_bind_text(s->q[Q_EP_DEL_ITEMS], 1, name, -1, SQLITE_STATIC));
    return r ? r : step_done(s->q[Q_EP_DEL_ITEMS]);
}

static int sq_endpoint_names(struct r2m_store *base, void (*fn)(void *ctx, const char *name),
                             void *ctx)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = s->q[Q_EP_NAMES];
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        fn(ctx, (const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : R2M_E_IO;
}

static int sq_item_put(struct r2m_store *base, const char *endpoint, const char *key,
                       size_t key_len, struct r2m_fp fp, const char *body, size_t body_len)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    unsigned char p[16];
    fp_pack(fp, p);
    sqlite3_stmt *st = s->q[Q_ITEM_PUT];
    int rc = sqlite3_bind_text(st, 1, endpoint, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob64(st, 2, key, key_len, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob(st, 3, p, 16, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob64(st, 4, body, body_len, SQLITE_STATIC);
    int r = bound(st, rc);
    return r ? r : step_done(st);
}

static int sq_item_delete(struct r2m_store *base, const char *endpoint, const char *key,
                          size_t key_len)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = s->q[Q_ITEM_DEL];
    int rc = sqlite3_bind_text(st, 1, endpoint, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob64(st, 2, key, key_len, SQLITE_STATIC);
    int r = bound(st, rc);
    return r ? r : step_done(st);
}

static int sq_items(struct r2m_store *base, const char *endpoint, r2m_store_item_fn *fn, void *ctx)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = s->q[Q_ITEMS];
    int rc = SQLITE_DONE, r = bound(st, sqlite3_bind_text(st, 1, endpoint, -1, SQLITE_STATIC));
    if (r)
        return r;
    while (!r && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        r = fn(ctx, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0),
               fp_unpack(sqlite3_column_blob(st, 1), sqlite3_column_bytes(st, 1)),
               sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2));
    }
    if (!r && rc != SQLITE_DONE)
        r = R2M_E_IO;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return r;
}

static int sq_outbox_add(struct r2m_store *base, const char *endpoint, const char *topic,
                         size_t topic_len, const char *payload, size_t payload_len, int retained,
                         int64_t *id)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = s->q[Q_OUT_ADD];
    int rc = sqlite3_bind_text64(st, 1, topic, topic_len, SQLITE_STATIC, SQLITE_UTF8);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob64(st, 2, payload, payload_len, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 3, retained);
    if (rc == SQLITE_OK && endpoint)
        rc = sqlite3_bind_text(st, 4, endpoint, -1, SQLITE_STATIC);
    int r = bound(st, rc);
    if (!r)
        r = step_done(st);
    if (!r)
        *id = sqlite3_last_insert_rowid(s->db);
    return r;
}

static int sq_outbox_delete(struct r2m_store *base, int64_t id)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    int r = bound(s->q[Q_OUT_DEL], sqlite3_bind_int64(s->q[Q_OUT_DEL], 1, id));
    return r ? r : step_done(s->q[Q_OUT_DEL]);
}

static int sq_outbox(struct r2m_store *base, r2m_store_outbox_fn *fn, void *ctx)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = s->q[Q_OUT_ALL];
    int rc, r = 0;
    while (!r && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        r = fn(ctx, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1),
               sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2),
               sqlite3_column_int(st, 3));
    }
    if (!r && rc != SQLITE_DONE)
        r = R2M_E_IO;
    sqlite3_reset(st);
    return r;
}

static int64_t count_of(struct sqlite_store *s, int q)
{
    sqlite3_stmt *st = s->q[q];
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_reset(st);
    return n;
}

static int64_t sq_outbox_count(struct r2m_store *base)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    return count_of(s, Q_OUT_COUNT);
}

static int sq_dead_letter_add(struct r2m_store *base, int64_t outbox_id, uint64_t size,
                              const char *reason, const char *event_id, int64_t time_ms,
                              char *endpoint, size_t endpoint_len)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = s->q[Q_DL_ADD];
    if (endpoint_len)
        endpoint[0] = '\0';
    int rc = sqlite3_bind_int64(st, 1, outbox_id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, (sqlite3_int64)size);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && event_id)
        rc = sqlite3_bind_text(st, 4, event_id, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 5, time_ms);
    int r = bound(st, rc);
    if (r)
        return r;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *e = (const char *)sqlite3_column_text(st, 0);
        if (e && endpoint_len)
            snprintf(endpoint, endpoint_len, "%s", e);
        rc = sqlite3_step(st);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE)
        return R2M_E_IO;
    /* a row that is gone already (acknowledged meanwhile) moves nothing */
    return sq_outbox_delete(&s->base, outbox_id);
}

static int sq_dead_letters(struct r2m_store *base, r2m_store_dead_letter_fn *fn, void *ctx)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = s->q[Q_DL_ALL];
    int rc, r = 0;
    while (!r && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct r2m_store_dead_letter d = {
            .id = sqlite3_column_int64(st, 0),
            .endpoint = (const char *)sqlite3_column_text(st, 1),
            .topic = (const char *)sqlite3_column_text(st, 2),
            .payload = sqlite3_column_blob(st, 3),
            .payload_len = (size_t)sqlite3_column_bytes(st, 3),
            .size = (uint64_t)sqlite3_column_int64(st, 4),
            .reason = (const char *)sqlite3_column_text(st, 5),
            .event_id = (const char *)sqlite3_column_text(st, 6),
            .time_ms = sqlite3_column_int64(st, 7),
        };
        r = fn(ctx, &d);
    }
    if (!r && rc != SQLITE_DONE)
        r = R2M_E_IO;
    sqlite3_reset(st);
    return r;
}

static int sq_dead_letter_requeue(struct r2m_store *base, int64_t *n)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    int r = step_done(s->q[Q_DL_REQUEUE]);
    if (!r)
        *n = sqlite3_changes64(s->db);
    return r ? r : step_done(s->q[Q_DL_CLEAR]);
}

static int64_t sq_dead_letter_count(struct r2m_store *base)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    return count_of(s, Q_DL_COUNT);
}

static const struct r2m_store_ops sqlite_ops = {
    .name = "sqlite",
    .free = sq_free,
    .errmsg = sq_errmsg,
    .epoch = sq_epoch,
    .set_sync = sq_set_sync,
    .check_file = sq_check_file,
    .limit_length = sq_limit_length,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .endpoint_get = sq_endpoint_get,
    .endpoint_put = sq_endpoint_put,
    .validators_put = sq_validators_put,
    .endpoint_reset = sq_endpoint_reset,
    .endpoint_names = sq_endpoint_names,
    .item_put = sq_item_put,
    .item_delete = sq_item_delete,
    .items = sq_items,
    .outbox_add = sq_outbox_add,
    .outbox_delete = sq_outbox_delete,
    .outbox = sq_outbox,
    .outbox_count = sq_outbox_count,
    .dead_letter_add = sq_dead_letter_add,
    .dead_letters = sq_dead_letters,
    .dead_letter_requeue = sq_dead_letter_requeue,
    .dead_letter_count = sq_dead_letter_count,
};

int r2m_store_sqlite_new(const struct r2m_store_params *p, char *err, size_t errlen,
                         struct r2m_store **out)
{
    const char *path = p->path;
    struct stat sb;
    err[0] = '\0';
    /* stat, not opening without SQLITE_OPEN_CREATE: only a missing file is
     * "does not exist"; any other trouble gets open's own message */
    if (p->existing && stat(path, &sb) < 0 && errno == ENOENT) {
        snprintf(err, errlen, "state file %s does not exist", path);
        return R2M_E_NOT_FOUND;
    }
    struct sqlite_store *s = calloc(1, sizeof *s);
    if (!s)
        return R2M_E_NOMEM;
    s->base.ops = &sqlite_ops;
    int r = open_file(s, path, err, errlen);
    if (!r)
        r = open_schema(s, path, err, errlen);
    if (r)
        goto out;
    /* SQLite keeps the file open, so its inode cannot be reused while we
     * run: another dev/ino at path later means it was replaced */
    r = R2M_E_IO;
    if (stat(path, &sb) < 0 || !(s->path = strdup(path))) {
        snprintf(err, errlen, "state file %s: %s", path, strerror(errno));
        goto out;
    }
    s->dev = sb.st_dev;
    s->ino = sb.st_ino;
    for (int i = 0; i < Q__N; i++)
        if (sqlite3_prepare_v3(s->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->q[i], NULL) !=
            SQLITE_OK) {
            r = open_error(s, path, err, errlen);
            goto out;
        }
    *out = &s->base;
    return 0;
out:
    sq_free(&s->base);
    return r;
}
