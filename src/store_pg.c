/* store_pg.c - the PostgreSQL store backend: state, membership and fenced
 * ownership; see r2m/store_pg.h for the contract and r2m/store_backend.h for
 * the operations (pg_ops at the end). */
#include "r2m/store_pg.h"

#include <libpq-fe.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "r2m/buf.h"
#include "r2m/error.h"
#include "r2m/store_backend.h"

/* 1: the first cluster release. */
#define SCHEMA_VERSION 1

/* pg_advisory_xact_lock key that serialises schema creation ("r2m!") */
#define SCHEMA_LOCK 0x72326d21

/* Keys are bytea so ORDER BY is bytewise, the poller's own order; fingerprints
 * are 16 bytes (hi then lo, big-endian). The outbox index serves a new
 * owner's "my endpoints' rows, oldest first". */
static const char schema[] =
    "CREATE TABLE IF NOT EXISTS r2m_meta(k text PRIMARY KEY, v bigint NOT NULL);"
    "CREATE TABLE IF NOT EXISTS r2m_member("
    "  name text PRIMARY KEY, incarnation bigint NOT NULL,"
    "  heartbeat timestamptz NOT NULL, started timestamptz NOT NULL);"
    "CREATE TABLE IF NOT EXISTS r2m_ownership("
    "  endpoint text PRIMARY KEY, member text, generation bigint NOT NULL,"
    "  since timestamptz NOT NULL);"
    "CREATE INDEX IF NOT EXISTS r2m_ownership_member ON r2m_ownership(member);"
    "CREATE TABLE IF NOT EXISTS r2m_endpoint("
    "  name text PRIMARY KEY, settings bytea NOT NULL, seq bigint NOT NULL,"
    "  doc bytea, doc_fp bytea, etag text, last_modified text);"
    "CREATE TABLE IF NOT EXISTS r2m_item("
    "  endpoint text NOT NULL, key bytea NOT NULL, fp bytea NOT NULL, body bytea NOT NULL,"
    "  PRIMARY KEY(endpoint, key));"
    "CREATE TABLE IF NOT EXISTS r2m_outbox("
    "  id bigserial PRIMARY KEY, endpoint text, topic text NOT NULL, payload bytea NOT NULL,"
    "  retained boolean NOT NULL);"
    "CREATE INDEX IF NOT EXISTS r2m_outbox_endpoint ON r2m_outbox(endpoint, id);"
    "CREATE TABLE IF NOT EXISTS r2m_dead_letter("
    "  id bigserial PRIMARY KEY, endpoint text, topic text NOT NULL, payload bytea NOT NULL,"
    "  retained boolean NOT NULL, size bigint NOT NULL, reason text NOT NULL,"
    "  event_id text, time_ms bigint NOT NULL);";

enum {
    Q_META_INIT,
    Q_META_GET,
    Q_JOIN,
    Q_RENEW,
    Q_LEAVE_RELEASE,
    Q_LEAVE,
    Q_MEMBERS,
    Q_CLAIM,
    Q_RELEASE,
    Q_OWNERS,
    Q_FENCE,
    Q_EP_GET,
    Q_EP_PUT,
    Q_EP_VALIDATORS,
    Q_EP_DEL,
    Q_EP_DEL_ITEMS,
    Q_EP_NAMES,
    Q_ITEM_PUT,
    Q_ITEM_DEL,
    Q_ITEMS,
    Q_OUT_ADD,
    Q_OUT_DEL,
    Q_OUT_MINE,
    Q_OUT_ALL,
    Q_OUT_COUNT_MINE,
    Q_OUT_COUNT,
    Q_DL_ADD,
    Q_DL_ALL,
    Q_DL_REQUEUE,
    Q_DL_CLEAR,
    Q_DL_COUNT,
    Q__N
};

static const char *const sql[Q__N] = {
    [Q_META_INIT] = "INSERT INTO r2m_meta(k, v) VALUES ('schema', $1::int8), ('epoch', $2::int8) "
                    "ON CONFLICT (k) DO NOTHING",
    [Q_META_GET] = "SELECT k, v FROM r2m_meta",
    /* a dead member's row (or our own, after a restart) is taken over; a
     * live one with another incarnation is not: no row comes back */
    [Q_JOIN] = "INSERT INTO r2m_member AS m (name, incarnation, heartbeat, started) "
               "VALUES ($1::text, $2::int8, now(), now()) ON CONFLICT (name) DO UPDATE "
               "SET incarnation = EXCLUDED.incarnation, heartbeat = now(), started = now() "
               "WHERE m.incarnation = EXCLUDED.incarnation "
               "OR m.heartbeat < now() - $3::int8 * interval '1 millisecond' "
               "RETURNING incarnation",
    [Q_RENEW] = "UPDATE r2m_member SET heartbeat = now() "
                "WHERE name = $1::text AND incarnation = $2::int8",
    [Q_LEAVE_RELEASE] = "UPDATE r2m_ownership SET member = NULL, generation = generation + 1, "
                        "since = now() WHERE member = $1::text",
    [Q_LEAVE] = "DELETE FROM r2m_member WHERE name = $1::text AND incarnation = $2::int8",
    [Q_MEMBERS] = "SELECT name FROM r2m_member "
                  "WHERE heartbeat >= now() - $1::int8 * interval '1 millisecond' "
                  "ORDER BY convert_to(name, 'UTF8')",
    /* every claim adds one to the generation, a member's own re-claim after
     * a restart too: the old process's commit in flight is then fenced */
    [Q_CLAIM] = "INSERT INTO r2m_ownership AS o (endpoint, member, generation, since) "
                "VALUES ($1::text, $2::text, 1, now()) ON CONFLICT (endpoint) DO UPDATE "
                "SET member = EXCLUDED.member, generation = o.generation + 1, since = now() "
                "WHERE o.member IS NULL OR o.member = EXCLUDED.member OR NOT EXISTS ("
                "  SELECT 1 FROM r2m_member m WHERE m.name = o.member"
                "  AND m.heartbeat >= now() - $3::int8 * interval '1 millisecond') "
                "RETURNING generation",
    [Q_RELEASE] = "UPDATE r2m_ownership SET member = NULL, generation = generation + 1, "
                  "since = now() WHERE endpoint = $1::text AND member = $2::text "
                  "AND generation = $3::int8",
    [Q_OWNERS] = "SELECT endpoint, member, generation FROM r2m_ownership "
                 "ORDER BY convert_to(endpoint, 'UTF8')",
    /* the fence: FOR SHARE holds off a claim's UPDATE until we commit; a
     * claim committed first leaves no matching row (READ COMMITTED
     * re-checks the WHERE on the row's newest version) */
    [Q_FENCE] = "SELECT generation FROM r2m_ownership WHERE endpoint = $1::text "
                "AND member = $2::text AND generation = $3::int8 FOR SHARE",
    [Q_EP_GET] = "SELECT settings, seq, doc, doc_fp, etag, last_modified FROM r2m_endpoint "
                 "WHERE name = $1::text",
    /* a new snapshot keeps no old validators (as the SQLite store) */
    [Q_EP_PUT] = "INSERT INTO r2m_endpoint(name, settings, seq, doc, doc_fp) "
                 "VALUES ($1::text, $2::bytea, $3::int8, $4::bytea, $5::bytea) "
                 "ON CONFLICT (name) DO UPDATE SET settings = EXCLUDED.settings, "
                 "seq = EXCLUDED.seq, doc = EXCLUDED.doc, doc_fp = EXCLUDED.doc_fp, "
                 "etag = NULL, last_modified = NULL",
    [Q_EP_VALIDATORS] = "UPDATE r2m_endpoint SET etag = $2::text, last_modified = $3::text "
                        "WHERE name = $1::text",
    [Q_ITEM_PUT] = "INSERT INTO r2m_item(endpoint, key, fp, body) "
                   "VALUES ($1::text, $2::bytea, $3::bytea, $4::bytea) "
                   "ON CONFLICT (endpoint, key) DO UPDATE SET fp = EXCLUDED.fp, "
                   "body = EXCLUDED.body",
    [Q_ITEM_DEL] = "DELETE FROM r2m_item WHERE endpoint = $1::text AND key = $2::bytea",
    [Q_ITEMS] = "SELECT key, fp, body FROM r2m_item WHERE endpoint = $1::text ORDER BY key",
    [Q_OUT_ADD] = "INSERT INTO r2m_outbox(endpoint, topic, payload, retained) "
                  "VALUES ($1::text, $2::text, $3::bytea, $4::bool) RETURNING id",
    [Q_OUT_DEL] = "DELETE FROM r2m_outbox WHERE id = $1::int8",
    [Q_EP_DEL] = "DELETE FROM r2m_endpoint WHERE name = $1::text",
    [Q_EP_DEL_ITEMS] = "DELETE FROM r2m_item WHERE endpoint = $1::text",
    [Q_EP_NAMES] = "SELECT name FROM r2m_endpoint UNION SELECT DISTINCT endpoint FROM r2m_item "
                   "ORDER BY 1",
    /* a member publishes the events of the endpoints it owns (after a
     * takeover: those the previous owner left unacknowledged, with their
     * ids); a store that is no member (the state commands) sees all */
    [Q_OUT_MINE] = "SELECT o.id, o.topic, o.payload, o.retained FROM r2m_outbox o "
                   "JOIN r2m_ownership w ON w.endpoint = o.endpoint "
                   "WHERE w.member = $1::text ORDER BY o.id",
    [Q_OUT_ALL] = "SELECT id, topic, payload, retained FROM r2m_outbox ORDER BY id",
    [Q_OUT_COUNT_MINE] = "SELECT count(*) FROM r2m_outbox o "
                         "JOIN r2m_ownership w ON w.endpoint = o.endpoint "
                         "WHERE w.member = $1::text",
    [Q_OUT_COUNT] = "SELECT count(*) FROM r2m_outbox",
    [Q_DL_ADD] = "WITH moved AS (DELETE FROM r2m_outbox WHERE id = $1::int8 "
                 "  RETURNING endpoint, topic, payload, retained) "
                 "INSERT INTO r2m_dead_letter(endpoint, topic, payload, retained, size, reason, "
                 "event_id, time_ms) SELECT endpoint, topic, payload, retained, $2::int8, "
                 "$3::text, $4::text, $5::int8 FROM moved RETURNING endpoint",
    [Q_DL_ALL] = "SELECT id, endpoint, topic, payload, size, reason, event_id, time_ms "
                 "FROM r2m_dead_letter ORDER BY id",
    /* back at the end of the outbox, in the order they were refused */
    [Q_DL_REQUEUE] = "INSERT INTO r2m_outbox(topic, payload, retained, endpoint) "
                     "SELECT topic, payload, retained, endpoint FROM r2m_dead_letter ORDER BY id",
    [Q_DL_CLEAR] = "DELETE FROM r2m_dead_letter",
    [Q_DL_COUNT] = "SELECT count(*) FROM r2m_dead_letter",
};

/* An endpoint this member holds, under the generation its claim returned. */
struct owned {
    char *endpoint;
    int64_t generation;
    int checked; /* fence checked in the open transaction */
};

struct pg_store {
    struct r2m_store base; /* first: the dispatcher's view */
    PGconn *conn;
    uint64_t epoch;
    char *member; /* NULL until r2m_store_pg_join: then every write is fenced */
    uint64_t incarnation;
    /* linear: a member holds its share of the endpoints; a hash table when
     * that share is counted in ten thousands */
    struct owned *owned;
    size_t n_owned, cap_owned;
    int in_txn;
    int fenced; /* a write of the open transaction failed its fence */
    char err[256];
};

/* ---- parameters and results (binary format both ways) ---- */

#define MAX_PARAMS 6

struct params {
    int n;
    int too_big;
    const char *val[MAX_PARAMS];
    int len[MAX_PARAMS];
    int fmt[MAX_PARAMS];
    unsigned char i8[MAX_PARAMS][8];
    unsigned char fp[MAX_PARAMS][16];
};

static void put_be64(unsigned char *out, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (unsigned char)v;
}

static uint64_t get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* NUL-terminated text, or SQL NULL */
static void p_text(struct params *p, const char *s)
{
    p->val[p->n] = s;
    p->len[p->n] = 0;
    p->fmt[p->n++] = 0;
}

/* n raw bytes (bytea, or text known to be valid UTF-8), or SQL NULL */
static void p_bytes(struct params *p, const void *b, size_t n)
{
    if (n > INT_MAX)
        p->too_big = 1;
    p->val[p->n] = b;
    p->len[p->n] = n > INT_MAX ? 0 : (int)n;
    p->fmt[p->n++] = 1;
}

static void p_i64(struct params *p, int64_t v)
{
    put_be64(p->i8[p->n], (uint64_t)v);
    p_bytes(p, p->i8[p->n], 8);
}

static void p_fp(struct params *p, struct r2m_fp fp)
{
    put_be64(p->fp[p->n], fp.hi);
    put_be64(p->fp[p->n] + 8, fp.lo);
    p_bytes(p, p->fp[p->n], 16);
}

static int64_t r_i64(const PGresult *r, int row, int col)
{
    return PQgetlength(r, row, col) == 8
               ? (int64_t)get_be64((const unsigned char *)PQgetvalue(r, row, col))
               : 0;
}

static struct r2m_fp r_fp(const PGresult *r, int row, int col)
{
    struct r2m_fp fp = {0, 0};
    const unsigned char *b = (const unsigned char *)PQgetvalue(r, row, col);
    if (PQgetlength(r, row, col) == 16) {
        fp.hi = get_be64(b);
        fp.lo = get_be64(b + 8);
    }
    return fp;
}

/* A copy of a (possibly NULL) column, NUL-terminated; *ok = 0 when out of
 * memory. */
static char *r_dup(const PGresult *r, int row, int col, size_t *len, int *ok)
{
    if (PQgetisnull(r, row, col))
        return NULL;
    size_t n = (size_t)PQgetlength(r, row, col);
    char *c = malloc(n + 1);
    if (!c) {
        *ok = 0;
        return NULL;
    }
    memcpy(c, PQgetvalue(r, row, col), n);
    c[n] = '\0';
    if (len)
        *len = n;
    return c;
}

static void set_err(struct pg_store *s, const char *what, const char *msg)
{
    snprintf(s->err, sizeof s->err, "%s: %s", what, msg && *msg ? msg : "unknown error");
    size_t n = strlen(s->err);
    while (n > 0 && (s->err[n - 1] == '\n' || s->err[n - 1] == ' '))
        s->err[--n] = '\0';
}

/* Runs prepared statement q; the result (caller PQclears) or NULL with *rc
 * set and the error text kept. */
static int prepare_all(struct pg_store *s);

/* The session, re-established when it was lost (a PostgreSQL restart, a
 * network cut) and no transaction is open; the statements are prepared
 * again. A transaction whose session was lost is gone: its statements fail
 * until the caller rolls back, never run outside it. Blocks for up to the
 * conninfo's connect_timeout; the caller's backoff decides how often. */
static int connected(struct pg_store *s)
{
    if (PQstatus(s->conn) == CONNECTION_OK)
        return 0;
    if (s->in_txn) {
        snprintf(s->err, sizeof s->err, "connection to PostgreSQL lost during a transaction");
        return R2M_E_IO;
    }
    PQreset(s->conn);
    if (PQstatus(s->conn) != CONNECTION_OK) {
        set_err(s, "reconnecting to PostgreSQL", PQerrorMessage(s->conn));
        return R2M_E_IO;
    }
    return prepare_all(s);
}

static PGresult *run(struct pg_store *s, int q, const struct params *p, int *rc)
{
    static const struct params none = {0};
    char name[16];
    if (!p)
        p = &none;
    if ((*rc = connected(s)))
        return NULL;
    if (p->too_big) {
        set_err(s, "statement", "a value over 2 GiB");
        *rc = R2M_E_TOO_BIG;
        return NULL;
    }
    snprintf(name, sizeof name, "r2m_%d", q);
    PGresult *r = PQexecPrepared(s->conn, name, p->n, p->val, p->len, p->fmt, 1);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        *rc = 0;
        return r;
    }
    set_err(s, "PostgreSQL", r ? PQresultErrorMessage(r) : PQerrorMessage(s->conn));
    PQclear(r);
    *rc = R2M_E_IO;
    return NULL;
}

/* Runs q for its effect; *rows (may be NULL) = rows affected or returned. */
static int run_done(struct pg_store *s, int q, const struct params *p, long *rows)
{
    int rc = 0;
    PGresult *r = run(s, q, p, &rc);
    if (r && rows)
        *rows = PQntuples(r) > 0 ? PQntuples(r) : atol(PQcmdTuples(r));
    PQclear(r);
    return rc;
}

/* Runs statements that are not prepared (BEGIN, the schema); 0 or R2M_E_IO. */
static int exec_text(struct pg_store *s, const char *text)
{
    int rc = connected(s);
    if (rc)
        return rc;
    PGresult *r = PQexec(s->conn, text);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        set_err(s, "PostgreSQL", r ? PQresultErrorMessage(r) : PQerrorMessage(s->conn));
    PQclear(r);
    return ok ? 0 : R2M_E_IO;
}

/* Runs text and checks the command tag: a COMMIT of a transaction in which
 * a statement failed "succeeds" with the tag ROLLBACK. 0 or R2M_E_IO. */
static int exec_tag(struct pg_store *s, const char *text, const char *want)
{
    PGresult *r = PQexec(s->conn, text);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), want) == 0;
    if (!ok && PQresultStatus(r) == PGRES_COMMAND_OK)
        snprintf(s->err, sizeof s->err, "PostgreSQL answered %s to %s", PQcmdStatus(r), text);
    else if (!ok)
        set_err(s, "PostgreSQL", r ? PQresultErrorMessage(r) : PQerrorMessage(s->conn));
    PQclear(r);
    return ok ? 0 : R2M_E_IO;
}

/* ---- open / close ---- */

static const struct r2m_store_ops pg_ops;

/* The backend's state, or NULL (R2M_E_INVALID) when base is another
 * backend's store. */
static struct pg_store *pg_of(struct r2m_store *base)
{
    return base && base->ops == &pg_ops ? (struct pg_store *)base : NULL;
}

static const char *pg_errmsg(const struct r2m_store *base)
{
    return ((const struct pg_store *)base)->err;
}

static uint64_t pg_epoch(const struct r2m_store *base)
{
    return ((const struct pg_store *)base)->epoch;
}

static int prepare_all(struct pg_store *s)
{
    for (int q = 0; q < Q__N; q++) {
        char name[16];
        snprintf(name, sizeof name, "r2m_%d", q);
        PGresult *r = PQprepare(s->conn, name, sql[q], 0, NULL);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            set_err(s, "preparing a statement", PQresultErrorMessage(r));
        PQclear(r);
        if (!ok)
            return R2M_E_IO;
    }
    return 0;
}

/* Creates the schema (serialised among members starting together) and
 * reads the schema version and the epoch. */
static int init_schema(struct pg_store *s)
{
    char lock[128];
    /* (no NOTICE "already exists, skipping" on stderr at every start) */
    snprintf(lock, sizeof lock,
             "BEGIN; SET LOCAL client_min_messages = warning; SELECT pg_advisory_xact_lock(%d);",
             SCHEMA_LOCK);
    int rc = exec_text(s, lock);
    if (!rc)
        rc = exec_text(s, schema);
    if (!rc)
        rc = prepare_all(s);
    uint64_t e = 0;
    if (getrandom(&e, sizeof e, 0) != sizeof e)
        e = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
    struct params p = {0};
    p_i64(&p, SCHEMA_VERSION);
    p_i64(&p, (int64_t)e);
    if (!rc)
        rc = run_done(s, Q_META_INIT, &p, NULL);
    if (!rc)
        rc = exec_tag(s, "COMMIT", "COMMIT");
    if (rc) {
        PQclear(PQexec(s->conn, "ROLLBACK"));
        return rc;
    }
    PGresult *r = run(s, Q_META_GET, NULL, &rc);
    int64_t version = -1;
    for (int i = 0; r && i < PQntuples(r); i++) {
        if (strcmp(PQgetvalue(r, i, 0), "schema") == 0)
            version = r_i64(r, i, 1);
        else if (strcmp(PQgetvalue(r, i, 0), "epoch") == 0)
            s->epoch = (uint64_t)r_i64(r, i, 1);
    }
    PQclear(r);
    if (!rc && version != SCHEMA_VERSION) {
        snprintf(s->err, sizeof s->err,
                 "the database holds rest2mqtt schema version %lld; this version knows %d",
                 (long long)version, SCHEMA_VERSION);
        rc = R2M_E_IO;
    }
    return rc;
}

static void forget_owned(struct pg_store *s)
{
    for (size_t i = 0; i < s->n_owned; i++)
        free(s->owned[i].endpoint);
    s->n_owned = 0;
}

static void pg_free(struct r2m_store *base)
{
    struct pg_store *s = (struct pg_store *)base;
    PQfinish(s->conn); /* an open transaction ends with the session: rolled back */
    forget_owned(s);
    free(s->owned);
    free(s->member);
    free(s);
}

int r2m_store_pg_new(const char *conninfo, char *err, size_t errlen, struct r2m_store **out)
{
    int rc = R2M_E_NOMEM;
    struct pg_store *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return rc;
    }
    s->base.ops = &pg_ops;
    s->conn = PQconnectdb(conninfo);
    if (!s->conn || PQstatus(s->conn) != CONNECTION_OK) {
        /* libpq's message names host and port, never the password */
        set_err(s, "connecting to PostgreSQL", s->conn ? PQerrorMessage(s->conn) : "out of memory");
        rc = R2M_E_IO;
    } else {
        rc = init_schema(s);
    }
    if (rc) {
        snprintf(err, errlen, "%s", s->err);
        pg_free(&s->base);
        return rc;
    }
    *out = &s->base;
    return 0;
}

/* ---- membership ---- */

int r2m_store_pg_join(struct r2m_store *base, const char *member, uint64_t incarnation,
                      int64_t lease_ms, char *err, size_t errlen)
{
    struct pg_store *s = pg_of(base);
    if (!s)
        return R2M_E_INVALID;
    char *name = strdup(member);
    if (!name)
        return R2M_E_NOMEM;
    struct params p = {0};
    p_text(&p, member);
    p_i64(&p, (int64_t)incarnation);
    p_i64(&p, lease_ms);
    long rows = 0;
    int rc = run_done(s, Q_JOIN, &p, &rows);
    if (!rc && rows == 0) {
        snprintf(s->err, sizeof s->err,
                 "cluster member name \"%s\" is in use by another live replica: "
                 "give each replica its own cluster.member",
                 member);
        rc = R2M_E_CONFIG;
    }
    if (rc) {
        snprintf(err, errlen, "%s", s->err);
        free(name);
        return rc;
    }
    free(s->member);
    s->member = name;
    s->incarnation = incarnation;
    forget_owned(s); /* a (re)join starts with nothing claimed */
    return 0;
}

/* member + incarnation as the first two parameters; R2M_E_INVALID before
 * r2m_store_pg_join. */
static struct pg_store *joined(struct r2m_store *base, struct params *p)
{
    struct pg_store *s = pg_of(base);
    if (!s || !s->member)
        return NULL;
    p_text(p, s->member);
    p_i64(p, (int64_t)s->incarnation);
    return s;
}

int r2m_store_pg_renew(struct r2m_store *base)
{
    struct params p = {0};
    struct pg_store *s = joined(base, &p);
    if (!s)
        return R2M_E_INVALID;
    long rows = 0;
    int rc = run_done(s, Q_RENEW, &p, &rows);
    if (!rc && rows == 0) {
        snprintf(s->err, sizeof s->err, "cluster member \"%s\" was taken over by another process",
                 s->member);
        forget_owned(s);
        rc = R2M_E_FENCED;
    }
    return rc;
}

int r2m_store_pg_leave(struct r2m_store *base)
{
    struct params p = {0}, name = {0};
    struct pg_store *s = joined(base, &p);
    if (!s)
        return R2M_E_INVALID;
    p_text(&name, s->member);
    long rows = 0;
    if (s->in_txn)
        return R2M_E_INVALID;
    int rc = exec_text(s, "BEGIN");
    s->in_txn = !rc; /* both steps or neither, also if the session drops */
    if (!rc)
        rc = run_done(s, Q_LEAVE, &p, &rows);
    /* only the process that still holds the name gives its endpoints up */
    if (!rc && rows == 1)
        rc = run_done(s, Q_LEAVE_RELEASE, &name, NULL);
    if (!rc)
        rc = exec_tag(s, "COMMIT", "COMMIT");
    if (rc)
        PQclear(PQexec(s->conn, "ROLLBACK"));
    s->in_txn = 0;
    forget_owned(s);
    return rc;
}

int r2m_store_pg_members(struct r2m_store *base, int64_t lease_ms,
                         int (*fn)(void *ctx, const char *member), void *ctx)
{
    struct pg_store *s = pg_of(base);
    if (!s)
        return R2M_E_INVALID;
    struct params p = {0};
    p_i64(&p, lease_ms);
    int rc = 0;
    PGresult *r = run(s, Q_MEMBERS, &p, &rc);
    for (int i = 0; r && !rc && i < PQntuples(r); i++)
        rc = fn(ctx, PQgetvalue(r, i, 0));
    PQclear(r);
    return rc;
}

/* ---- ownership ---- */

static struct owned *find_owned(struct pg_store *s, const char *endpoint)
{
    for (size_t i = 0; i < s->n_owned; i++)
        if (strcmp(s->owned[i].endpoint, endpoint) == 0)
            return &s->owned[i];
    return NULL;
}

static void drop_owned(struct pg_store *s, struct owned *o)
{
    free(o->endpoint);
    *o = s->owned[--s->n_owned];
}

static int add_owned(struct pg_store *s, const char *endpoint, int64_t generation)
{
    struct owned *o = find_owned(s, endpoint);
    if (!o) {
        int rc = r2m_buf_grow(&s->owned, &s->cap_owned, s->n_owned + 1, sizeof *s->owned);
        if (rc)
            return rc;
        char *name = strdup(endpoint);
        if (!name)
            return R2M_E_NOMEM;
        o = &s->owned[s->n_owned++];
        o->endpoint = name;
    }
    o->generation = generation;
    o->checked = 0;
    return 0;
}

int r2m_store_pg_claim(struct r2m_store *base, const char *endpoint, int64_t lease_ms,
                       int64_t *generation)
{
    struct pg_store *s = pg_of(base);
    if (!s || !s->member || s->in_txn)
        return R2M_E_INVALID;
    struct params p = {0};
    p_text(&p, endpoint);
    p_text(&p, s->member);
    p_i64(&p, lease_ms);
    int rc = 0;
    PGresult *r = run(s, Q_CLAIM, &p, &rc);
    if (r && PQntuples(r) == 1) {
        *generation = r_i64(r, 0, 0);
        rc = add_owned(s, endpoint, *generation);
    } else if (r) {
        snprintf(s->err, sizeof s->err, "endpoint %s is held by another live member", endpoint);
        rc = R2M_E_FENCED;
    }
    PQclear(r);
    return rc;
}

int r2m_store_pg_release(struct r2m_store *base, const char *endpoint)
{
    struct pg_store *s = pg_of(base);
    struct owned *o = s && s->member && !s->in_txn ? find_owned(s, endpoint) : NULL;
    if (!o)
        return R2M_E_INVALID;
    struct params p = {0};
    p_text(&p, endpoint);
    p_text(&p, s->member);
    p_i64(&p, o->generation);
    long rows = 0;
    int rc = run_done(s, Q_RELEASE, &p, &rows);
    if (!rc && rows == 0) {
        snprintf(s->err, sizeof s->err, "endpoint %s was no longer %s's to release", endpoint,
                 s->member);
        rc = R2M_E_FENCED;
    }
    if (rc != R2M_E_IO)
        drop_owned(s, o); /* released, or lost before: not ours either way */
    return rc;
}

int r2m_store_pg_owners(struct r2m_store *base, r2m_store_pg_owner_fn *fn, void *ctx)
{
    struct pg_store *s = pg_of(base);
    if (!s)
        return R2M_E_INVALID;
    int rc = 0;
    PGresult *r = run(s, Q_OWNERS, NULL, &rc);
    for (int i = 0; r && !rc && i < PQntuples(r); i++)
        rc = fn(ctx, PQgetvalue(r, i, 0), PQgetisnull(r, i, 1) ? NULL : PQgetvalue(r, i, 1),
                r_i64(r, i, 2));
    PQclear(r);
    return rc;
}

/* ---- transactions and the fence ---- */

static int pg_begin(struct r2m_store *base)
{
    struct pg_store *s = (struct pg_store *)base;
    if (s->in_txn)
        return R2M_E_INVALID;
    int rc = exec_text(s, "BEGIN");
    if (rc)
        return rc;
    s->in_txn = 1;
    s->fenced = 0;
    for (size_t i = 0; i < s->n_owned; i++)
        s->owned[i].checked = 0;
    return 0;
}

static void end_txn(struct pg_store *s)
{
    s->in_txn = 0;
    s->fenced = 0;
}

static void pg_rollback(struct r2m_store *base)
{
    struct pg_store *s = (struct pg_store *)base;
    if (!s->in_txn)
        return;
    PQclear(PQexec(s->conn, "ROLLBACK"));
    end_txn(s);
}

static int pg_commit(struct r2m_store *base)
{
    struct pg_store *s = (struct pg_store *)base;
    if (!s->in_txn)
        return R2M_E_INVALID;
    if (s->fenced) {
        pg_rollback(base);
        return R2M_E_FENCED;
    }
    /* a COMMIT whose answer is lost may have committed: the caller treats
     * it as failed and polls again; committed events then go out from the
     * outbox (at-least-once, same ids) */
    int rc = exec_tag(s, "COMMIT", "COMMIT");
    if (rc)
        PQclear(PQexec(s->conn, "ROLLBACK"));
    end_txn(s);
    return rc;
}

/* Before a write for endpoint inside the open transaction. A member's write
 * needs the endpoint under the generation it claimed, checked once per
 * transaction with the row held FOR SHARE until the end of it; a store that
 * joined no cluster (the state commands) writes unfenced. A failed fence
 * fails this write and the commit, and the endpoint is no longer ours. */
static int fence(struct pg_store *s, const char *endpoint)
{
    if (!s->in_txn) {
        snprintf(s->err, sizeof s->err, "a write outside a transaction");
        return R2M_E_INVALID;
    }
    if (!s->member || !endpoint)
        return 0;
    struct owned *o = find_owned(s, endpoint);
    if (o && o->checked)
        return 0;
    long rows = 0;
    int rc = 0;
    if (o) {
        struct params p = {0};
        p_text(&p, endpoint);
        p_text(&p, s->member);
        p_i64(&p, o->generation);
        rc = run_done(s, Q_FENCE, &p, &rows);
    }
    if (rc) {
        s->fenced = 1; /* the transaction is aborted anyway */
        return rc;
    }
    if (rows != 1) {
        snprintf(s->err, sizeof s->err, "endpoint %s: %s does not own it (any more): fenced",
                 endpoint, s->member);
        if (o)
            drop_owned(s, o);
        s->fenced = 1;
        return R2M_E_FENCED;
    }
    o->checked = 1;
    return 0;
}

/* ---- data ---- */

static int pg_endpoint_get(struct r2m_store *base, const char *name, struct r2m_store_endpoint *out)
{
    struct pg_store *s = (struct pg_store *)base;
    memset(out, 0, sizeof *out);
    struct params p = {0};
    p_text(&p, name);
    int rc = 0, ok = 1;
    PGresult *r = run(s, Q_EP_GET, &p, &rc);
    if (r && PQntuples(r) == 1) {
        out->found = 1;
        out->settings = r_fp(r, 0, 0);
        out->seq = (uint64_t)r_i64(r, 0, 1);
        out->has_doc = !PQgetisnull(r, 0, 2);
        out->doc = r_dup(r, 0, 2, &out->doc_len, &ok);
        out->doc_fp = r_fp(r, 0, 3);
        out->etag = r_dup(r, 0, 4, NULL, &ok);
        out->last_modified = r_dup(r, 0, 5, NULL, &ok);
    }
    PQclear(r);
    if (!ok) {
        free(out->doc);
        free(out->etag);
        free(out->last_modified);
        memset(out, 0, sizeof *out);
        rc = R2M_E_NOMEM;
    }
    return rc;
}

/* A write: the fence for endpoint, then endpoint as the first parameter. */
static int write_for(struct pg_store *s, const char *endpoint, struct params *p)
{
    int rc = fence(s, endpoint);
    if (!rc)
        p_text(p, endpoint);
    return rc;
}

static int pg_endpoint_put(struct r2m_store *base, const char *name, struct r2m_fp settings,
                           uint64_t seq, const char *doc, size_t doc_len, struct r2m_fp doc_fp)
{
    struct pg_store *s = (struct pg_store *)base;
    struct params p = {0};
    int rc = write_for(s, name, &p);
    if (rc)
        return rc;
    p_fp(&p, settings);
    p_i64(&p, (int64_t)seq);
    p_bytes(&p, doc, doc_len);
    if (doc)
        p_fp(&p, doc_fp);
    else
        p_bytes(&p, NULL, 0);
    return run_done(s, Q_EP_PUT, &p, NULL);
}

static int pg_validators_put(struct r2m_store *base, const char *name, const char *etag,
                             const char *last_modified)
{
    struct pg_store *s = (struct pg_store *)base;
    struct params p = {0};
    int rc = write_for(s, name, &p);
    if (rc)
        return rc;
    p_text(&p, etag && *etag ? etag : NULL);
    p_text(&p, last_modified && *last_modified ? last_modified : NULL);
    return run_done(s, Q_EP_VALIDATORS, &p, NULL);
}

static int pg_endpoint_reset(struct r2m_store *base, const char *name)
{
    struct pg_store *s = (struct pg_store *)base;
    struct params p = {0};
    int rc = write_for(s, name, &p);
    if (!rc)
        rc = run_done(s, Q_EP_DEL, &p, NULL);
    return rc ? rc : run_done(s, Q_EP_DEL_ITEMS, &p, NULL);
}

static int pg_endpoint_names(struct r2m_store *base, void (*fn)(void *ctx, const char *name),
                             void *ctx)
{
    struct pg_store *s = (struct pg_store *)base;
    int rc = 0;
    PGresult *r = run(s, Q_EP_NAMES, NULL, &rc);
    for (int i = 0; r && i < PQntuples(r); i++)
        fn(ctx, PQgetvalue(r, i, 0));
    PQclear(r);
    return rc;
}

static int pg_item_put(struct r2m_store *base, const char *endpoint, const char *key,
                       size_t key_len, struct r2m_fp fp, const char *body, size_t body_len)
{
    struct pg_store *s = (struct pg_store *)base;
    struct params p = {0};
    int rc = write_for(s, endpoint, &p);
    if (rc)
        return rc;
    p_bytes(&p, key, key_len);
    p_fp(&p, fp);
    p_bytes(&p, body ? body : "", body_len);
    return run_done(s, Q_ITEM_PUT, &p, NULL);
}

static int pg_item_delete(struct r2m_store *base, const char *endpoint, const char *key,
                          size_t key_len)
{
    struct pg_store *s = (struct pg_store *)base;
    struct params p = {0};
    int rc = write_for(s, endpoint, &p);
    if (rc)
        return rc;
    p_bytes(&p, key, key_len);
    return run_done(s, Q_ITEM_DEL, &p, NULL);
}

static int pg_items(struct r2m_store *base, const char *endpoint, r2m_store_item_fn *fn, void *ctx)
{
    struct pg_store *s = (struct pg_store *)base;
    struct params p = {0};
    p_text(&p, endpoint);
    int rc = 0;
    PGresult *r = run(s, Q_ITEMS, &p, &rc);
    for (int i = 0; r && !rc && i < PQntuples(r); i++)
        rc = fn(ctx, PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0), r_fp(r, i, 1),
                PQgetvalue(r, i, 2), (size_t)PQgetlength(r, i, 2));
    PQclear(r);
    return rc;
}

static int pg_outbox_add(struct r2m_store *base, const char *endpoint, const char *topic,
                         size_t topic_len, const char *payload, size_t payload_len, int retained,
                         int64_t *id)
{
    struct pg_store *s = (struct pg_store *)base;
    struct params p = {0};
    unsigned char flag = retained ? 1 : 0;
    int rc = write_for(s, endpoint, &p);
    if (rc)
        return rc;
    p_bytes(&p, topic, topic_len); /* valid UTF-8: only such events are queued */
    p_bytes(&p, payload, payload_len);
    p_bytes(&p, &flag, 1);
    PGresult *r = run(s, Q_OUT_ADD, &p, &rc);
    if (r && PQntuples(r) == 1)
        *id = r_i64(r, 0, 0);
    PQclear(r);
    return rc;
}

/* No fence: the event was delivered, whoever owns its endpoint now. */
static int pg_outbox_delete(struct r2m_store *base, int64_t id)
{
    struct pg_store *s = (struct pg_store *)base;
    struct params p = {0};
    p_i64(&p, id);
    return run_done(s, Q_OUT_DEL, &p, NULL);
}

static int pg_outbox(struct r2m_store *base, r2m_store_outbox_fn *fn, void *ctx)
{
    struct pg_store *s = (struct pg_store *)base;
    struct params p = {0};
    if (s->member)
        p_text(&p, s->member);
    int rc = 0;
    PGresult *r = run(s, s->member ? Q_OUT_MINE : Q_OUT_ALL, &p, &rc);
    /* libpq NUL-terminates every value, binary ones too, and text holds no NUL */
    for (int i = 0; r && !rc && i < PQntuples(r); i++)
        rc = fn(ctx, r_i64(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
                (size_t)PQgetlength(r, i, 2), *PQgetvalue(r, i, 3) != 0);
    PQclear(r);
    return rc;
}

/* The single value of a count query, or -1. */
static int64_t count_of(struct pg_store *s, int q, const struct params *p)
{
    int rc = 0;
    PGresult *r = run(s, q, p, &rc);
    int64_t n = r && PQntuples(r) == 1 ? r_i64(r, 0, 0) : -1;
    PQclear(r);
    return n;
}

static int64_t pg_outbox_count(struct r2m_store *base)
{
    struct pg_store *s = (struct pg_store *)base;
    struct params p = {0};
    if (s->member)
        p_text(&p, s->member);
    return count_of(s, s->member ? Q_OUT_COUNT_MINE : Q_OUT_COUNT, &p);
}

/* ---- dead letters (an operator's business: no fence) ---- */

static int pg_dead_letter_add(struct r2m_store *base, int64_t outbox_id, uint64_t size,
                              const char *reason, const char *event_id, int64_t time_ms,
                              char *endpoint, size_t endpoint_len)
{
    struct pg_store *s = (struct pg_store *)base;
    if (endpoint_len)
        endpoint[0] = '\0';
    struct params p = {0};
    p_i64(&p, outbox_id);
    p_i64(&p, (int64_t)size);
    p_text(&p, reason);
    p_text(&p, event_id);
    p_i64(&p, time_ms);
    int rc = 0;
    /* a row that is gone already (acknowledged meanwhile) moves nothing */
    PGresult *r = run(s, Q_DL_ADD, &p, &rc);
    if (r && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) && endpoint_len)
        snprintf(endpoint, endpoint_len, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

static int pg_dead_letters(struct r2m_store *base, r2m_store_dead_letter_fn *fn, void *ctx)
{
    struct pg_store *s = (struct pg_store *)base;
    int rc = 0;
    PGresult *r = run(s, Q_DL_ALL, NULL, &rc);
    for (int i = 0; r && !rc && i < PQntuples(r); i++) {
        struct r2m_store_dead_letter d = {
            .id = r_i64(r, i, 0),
            .endpoint = PQgetisnull(r, i, 1) ? NULL : PQgetvalue(r, i, 1),
            .topic = PQgetvalue(r, i, 2),
            .payload = PQgetvalue(r, i, 3),
            .payload_len = (size_t)PQgetlength(r, i, 3),
            .size = (uint64_t)r_i64(r, i, 4),
            .reason = PQgetvalue(r, i, 5),
            .event_id = PQgetisnull(r, i, 6) ? NULL : PQgetvalue(r, i, 6),
            .time_ms = r_i64(r, i, 7),
        };
        rc = fn(ctx, &d);
    }
    PQclear(r);
    return rc;
}

static int pg_dead_letter_requeue(struct r2m_store *base, int64_t *n)
{
    struct pg_store *s = (struct pg_store *)base;
    long rows = 0;
    int rc = run_done(s, Q_DL_REQUEUE, NULL, &rows);
    if (!rc)
        *n = rows;
    return rc ? rc : run_done(s, Q_DL_CLEAR, NULL, NULL);
}

static int64_t pg_dead_letter_count(struct r2m_store *base)
{
    return count_of((struct pg_store *)base, Q_DL_COUNT, NULL);
}

static const struct r2m_store_ops pg_ops = {
    .name = "postgres",
    .free = pg_free,
    .errmsg = pg_errmsg,
    .epoch = pg_epoch,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .endpoint_get = pg_endpoint_get,
    .endpoint_put = pg_endpoint_put,
    .validators_put = pg_validators_put,
    .endpoint_reset = pg_endpoint_reset,
    .endpoint_names = pg_endpoint_names,
    .item_put = pg_item_put,
    .item_delete = pg_item_delete,
    .items = pg_items,
    .outbox_add = pg_outbox_add,
    .outbox_delete = pg_outbox_delete,
    .outbox = pg_outbox,
    .outbox_count = pg_outbox_count,
    .dead_letter_add = pg_dead_letter_add,
    .dead_letters = pg_dead_letters,
    .dead_letter_requeue = pg_dead_letter_requeue,
    .dead_letter_count = pg_dead_letter_count,
};
