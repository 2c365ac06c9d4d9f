/* test_store_pg.c - the PostgreSQL store against a real server.
 *
 * The server: R2M_PG_CONNINFO names one, else the test starts a private
 * one with `python3 $R2M_PGSERVER --serve` (tests/e2e/pgserver.py; meson
 * sets R2M_PGSERVER) and stops it at exit; without either every case
 * fails.
 * Each case starts from empty tables. Two stores play two replicas, A and
 * B, each with its own connection. A lease "running out" is made by moving
 * a member's heartbeat into the past with SQL (the rows use the database's
 * clock), never by sleeping. The races between a claim and a commit are
 * made deterministic with a lock timeout and with a thread that is seen
 * waiting for the row lock before the other side commits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <pthread.h>

#include "r2m/error.h"
#include "r2m/store.h"
#include "r2m/store_pg.h"

#define LEASE_MS 10000

struct fixture {
    PGconn *admin; /* the test's own connection, raw SQL */
    struct r2m_store *a, *b;
};

static const char *conninfo(void)
{
    const char *c = getenv("R2M_PG_CONNINFO");
    if (!c || !*c)
        fail_msg("no PostgreSQL: set R2M_PG_CONNINFO, or R2M_PGSERVER=%s", "tests/e2e/pgserver.py");
    return c;
}

/* The pgserver.py child: its stdin stays open while we run; it stops the
 * server and removes its directory when that closes (also when we die). */
static FILE *pg_stdin;
static pid_t pg_pid;

static void start_pgserver(void)
{
    const char *script = getenv("R2M_PGSERVER");
    int in[2], out[2];
    if (!script || (getenv("R2M_PG_CONNINFO") && *getenv("R2M_PG_CONNINFO")))
        return;
    if (pipe(in) || pipe(out)) {
        perror("pipe");
        return;
    }
    pg_pid = fork();
    if (pg_pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execlp("python3", "python3", script, "--serve", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    pg_stdin = fdopen(in[1], "w");
    FILE *from = fdopen(out[0], "r");
    char line[512] = "";
    /* pgserver.py bounds its own start; EOF when it failed (its stderr says why) */
    if (from && fgets(line, sizeof line, from) && strncmp(line, "R2M_PG_CONNINFO=", 16) == 0) {
        line[strcspn(line, "\n")] = '\0';
        setenv("R2M_PG_CONNINFO", line + 16, 1);
    }
    if (from)
        fclose(from);
}

static void stop_pgserver(void)
{
    if (pg_stdin)
        fclose(pg_stdin);
    if (pg_pid > 0)
        waitpid(pg_pid, NULL, 0);
}

/* Every connection of the test waits at most this long for a lock: a fence
 * that is broken so that two sides wait on each other fails the case
 * instead of hanging the suite. */
#define LOCK_GUARD " options='-c lock_timeout=10000'"

static PGconn *admin_connect(void)
{
    char ci[512];
    snprintf(ci, sizeof ci, "%s" LOCK_GUARD, conninfo());
    PGconn *c = PQconnectdb(ci);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connecting: %s", PQerrorMessage(c));
    return c;
}

static void admin_sql(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

/* The first column of the first row of sql, as text ("" when no row). */
static void admin_get(PGconn *c, const char *sql, char *out, size_t n)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    snprintf(out, n, "%s", PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
}

static struct r2m_store *open_store(const char *extra)
{
    char ci[512], err[256] = "";
    snprintf(ci, sizeof ci, "%s%s", conninfo(), extra ? extra : LOCK_GUARD);
    struct r2m_store *s = NULL;
    int rc = r2m_store_pg_new(ci, err, sizeof err, &s);
    if (rc)
        fail_msg("r2m_store_pg_new: %s (%s)", err, r2m_strerror(rc));
    return s;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->admin = admin_connect();
    f->a = open_store(NULL); /* creates the schema on the first run */
    admin_sql(f->admin, "TRUNCATE r2m_member, r2m_ownership, r2m_endpoint, r2m_item, "
                        "r2m_outbox, r2m_dead_letter");
    f->b = open_store(NULL);
    assert_int_equal(r2m_store_pg_join(f->a, "A", 1, LEASE_MS, NULL, 0), 0);
    assert_int_equal(r2m_store_pg_join(f->b, "B", 2, LEASE_MS, NULL, 0), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    r2m_store_free(f->a);
    r2m_store_free(f->b);
    PQfinish(f->admin);
    free(f);
    return 0;
}

/* Moves member's heartbeat past the lease: the others count it dead. */
static void expire(struct fixture *f, const char *member)
{
    char sql[160];
    snprintf(sql, sizeof sql,
             "UPDATE r2m_member SET heartbeat = now() - interval '1 hour' WHERE name = '%s'",
             member);
    admin_sql(f->admin, sql);
}

static void test_open_shares_one_epoch(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(r2m_store_epoch(f->a), r2m_store_epoch(f->b));
    char v[64];
    admin_get(f->admin, "SELECT v FROM r2m_meta WHERE k = 'epoch'", v, sizeof v);
    assert_int_equal((int64_t)r2m_store_epoch(f->a), strtoll(v, NULL, 10));
    /* a database from a newer version is refused, not used */
    admin_sql(f->admin, "UPDATE r2m_meta SET v = 99 WHERE k = 'schema'");
    struct r2m_store *s = NULL;
    char err[256] = "";
    assert_int_equal(r2m_store_pg_new(conninfo(), err, sizeof err, &s), R2M_E_IO);
    assert_null(s);
    assert_non_null(strstr(err, "schema version 99"));
    admin_sql(f->admin, "UPDATE r2m_meta SET v = 1 WHERE k = 'schema'");
}

static void test_open_unreachable_fails_without_password(void **state)
{
    (void)state;
    struct r2m_store *s = NULL;
    char err[256] = "";
    assert_int_equal(r2m_store_pg_new("host=127.0.0.1 port=1 user=x password=hunter2 "
                                      "connect_timeout=5",
                                      err, sizeof err, &s),
                     R2M_E_IO);
    assert_null(s);
    assert_non_null(strstr(err, "connecting to PostgreSQL"));
    assert_null(strstr(err, "hunter2"));
}

static int collect(void *ctx, const char *member)
{
    char *buf = ctx;
    strcat(buf, member);
    strcat(buf, ",");
    return 0;
}

static void test_membership(void **state)
{
    struct fixture *f = *state;
    char err[256] = "", live[64] = "";
    /* a second process with A's name while A is live: refused */
    assert_int_equal(r2m_store_pg_join(f->b, "A", 99, LEASE_MS, err, sizeof err), R2M_E_CONFIG);
    assert_non_null(strstr(err, "\"A\" is in use"));
    /* A itself may join again (same incarnation) */
    assert_int_equal(r2m_store_pg_join(f->a, "A", 1, LEASE_MS, err, sizeof err), 0);
    assert_int_equal(r2m_store_pg_members(f->a, LEASE_MS, collect, live), 0);
    assert_string_equal(live, "A,B,");

    expire(f, "A");
    live[0] = '\0';
    assert_int_equal(r2m_store_pg_members(f->b, LEASE_MS, collect, live), 0);
    assert_string_equal(live, "B,");
    /* a dead member's name is free; the old process then learns it lost it */
    assert_int_equal(r2m_store_pg_join(f->b, "A", 99, LEASE_MS, err, sizeof err), 0);
    assert_int_equal(r2m_store_pg_renew(f->a), R2M_E_FENCED);
    assert_int_equal(r2m_store_pg_renew(f->b), 0); /* b is "A" now */
}

static int count_rows(PGconn *c, const char *sql)
{
    char v[32];
    admin_get(c, sql, v, sizeof v);
    return atoi(v);
}

static struct r2m_fp fp_of(uint64_t x)
{
    struct r2m_fp fp = {x, ~x};
    return fp;
}

struct outbox_seen {
    int n;
    int64_t ids[8];
    char topics[8][32];
};

static int collect_outbox(void *ctx, int64_t id, const char *topic, const char *payload,
                          size_t payload_len, int retained)
{
    struct outbox_seen *o = ctx;
    (void)payload;
    (void)payload_len;
    (void)retained;
    assert_true(o->n < 8);
    o->ids[o->n] = id;
    snprintf(o->topics[o->n++], sizeof o->topics[0], "%s", topic);
    return 0;
}

/* One poll's commit as the outbox makes it: begin, the endpoint's row with
 * seq, one event, commit; the first failure (after a rollback). */
static int commit_poll(struct r2m_store *s, const char *endpoint, uint64_t seq, int64_t *id)
{
    int rc = r2m_store_begin(s);
    if (rc)
        return rc;
    if ((rc = r2m_store_endpoint_put(s, endpoint, fp_of(7), seq, NULL, 0, fp_of(0))) ||
        (rc = r2m_store_outbox_add(s, endpoint, "t/1", 3, "{}", 2, 0, id))) {
        r2m_store_rollback(s);
        return rc;
    }
    return r2m_store_commit(s);
}

/* The heart of it: once B has taken the endpoint over, A - still running,
 * still believing it owns it under generation 1 - cannot commit for it; B
 * continues from A's state and A's unacknowledged events, with their ids. */
static void test_stale_generation_cannot_commit(void **state)
{
    struct fixture *f = *state;
    int64_t ga = 0, gb = 0, id1 = 0, id2 = 0;
    assert_int_equal(r2m_store_pg_claim(f->a, "shipments", LEASE_MS, &ga), 0);
    assert_int_equal(ga, 1);
    /* A is live: B may not take it */
    assert_int_equal(r2m_store_pg_claim(f->b, "shipments", LEASE_MS, &gb), R2M_E_FENCED);
    assert_int_equal(commit_poll(f->a, "shipments", 41, &id1), 0);

    expire(f, "A");
    assert_int_equal(r2m_store_pg_claim(f->b, "shipments", LEASE_MS, &gb), 0);
    assert_int_equal(gb, 2);

    /* A wakes up: its write is fenced, and so is a commit that ignores that */
    assert_int_equal(commit_poll(f->a, "shipments", 42, &id2), R2M_E_FENCED);
    assert_non_null(strstr(r2m_store_errmsg(f->a), "fenced"));
    assert_int_equal(r2m_store_begin(f->a), 0);
    assert_int_equal(r2m_store_item_put(f->a, "shipments", "k", 1, fp_of(1), "{}", 2),
                     R2M_E_FENCED);
    assert_int_equal(r2m_store_commit(f->a), R2M_E_FENCED);
    /* an endpoint never claimed is fenced as well */
    assert_int_equal(commit_poll(f->a, "other", 1, &id2), R2M_E_FENCED);
    assert_int_equal(count_rows(f->admin, "SELECT max(seq) FROM r2m_endpoint"), 41);
    assert_int_equal(count_rows(f->admin, "SELECT count(*) FROM r2m_outbox"), 1);
    assert_int_equal(count_rows(f->admin, "SELECT count(*) FROM r2m_item"), 0);

    /* B continues from A's state and publishes A's unacknowledged event */
    struct r2m_store_endpoint ep;
    assert_int_equal(r2m_store_endpoint_get(f->b, "shipments", &ep), 0);
    assert_true(ep.found);
    assert_int_equal(ep.seq, 41);
    assert_int_equal(ep.settings.hi, 7);
    assert_int_equal(ep.settings.lo, ~(uint64_t)7);
    assert_false(ep.has_doc);
    struct outbox_seen seen = {0};
    assert_int_equal(r2m_store_outbox(f->b, collect_outbox, &seen), 0);
    assert_int_equal(seen.n, 1);
    assert_int_equal(seen.ids[0], id1);
    assert_string_equal(seen.topics[0], "t/1");
    assert_int_equal(r2m_store_outbox_count(f->b), 1);
    seen.n = 0;
    assert_int_equal(r2m_store_outbox(f->a, collect_outbox, &seen), 0);
    assert_int_equal(seen.n, 0);
    assert_int_equal(r2m_store_outbox_count(f->a), 0);
    assert_int_equal(commit_poll(f->b, "shipments", 42, &id2), 0);
    assert_int_equal(count_rows(f->admin, "SELECT seq FROM r2m_endpoint"), 42);
    assert_int_equal(r2m_store_outbox_delete(f->b, id1), 0);
    assert_int_equal(r2m_store_outbox_count(f->b), 1);
}

/* A claim waits for the owner's commit in progress (here: gives up after
 * B's lock_timeout), and takes the endpoint once it is done. */
static void test_claim_waits_for_commit_in_progress(void **state)
{
    struct fixture *f = *state;
    struct r2m_store *b = open_store(" options='-c lock_timeout=200'");
    char err[256];
    assert_int_equal(r2m_store_pg_join(b, "B", 2, LEASE_MS, err, sizeof err), 0);
    int64_t ga = 0, gb = 0;
    assert_int_equal(r2m_store_pg_claim(f->a, "flights", LEASE_MS, &ga), 0);
    assert_int_equal(r2m_store_begin(f->a), 0);
    assert_int_equal(r2m_store_endpoint_put(f->a, "flights", fp_of(1), 5, "[1]", 3, fp_of(2)), 0);
    expire(f, "A");
    assert_int_equal(r2m_store_pg_claim(b, "flights", LEASE_MS, &gb), R2M_E_IO);
    assert_non_null(strstr(r2m_store_errmsg(b), "lock timeout"));
    assert_int_equal(r2m_store_commit(f->a), 0);
    assert_int_equal(r2m_store_pg_claim(b, "flights", LEASE_MS, &gb), 0);
    assert_int_equal(gb, ga + 1);
    struct r2m_store_endpoint ep;
    assert_int_equal(r2m_store_endpoint_get(b, "flights", &ep), 0);
    assert_int_equal(ep.seq, 5); /* the commit that finished first is kept */
    assert_int_equal(ep.doc_len, 3);
    assert_memory_equal(ep.doc, "[1]", 3);
    free(ep.doc);
    free(ep.etag);
    free(ep.last_modified);
    r2m_store_free(b);
}

struct write_call {
    struct r2m_store *s;
    int rc;
};

static void *write_thread(void *arg)
{
    struct write_call *c = arg;
    c->rc = r2m_store_endpoint_put(c->s, "flights", fp_of(1), 9, NULL, 0, fp_of(0));
    return NULL;
}

/* The other order: a claim has updated the row but not committed; A's
 * fence check waits on the row lock, and once the claim commits it sees
 * the new owner and fails - it does not read the row as it was. */
static void test_fence_rechecks_after_claim_commits(void **state)
{
    struct fixture *f = *state;
    int64_t ga = 0;
    assert_int_equal(r2m_store_pg_claim(f->a, "flights", LEASE_MS, &ga), 0);
    PGconn *claimer = admin_connect();
    admin_sql(claimer, "BEGIN");
    admin_sql(claimer, "UPDATE r2m_ownership SET member = 'B', generation = generation + 1 "
                       "WHERE endpoint = 'flights'");

    assert_int_equal(r2m_store_begin(f->a), 0);
    struct write_call call = {f->a, -1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, write_thread, &call), 0);
    /* wait (bounded) until A's backend is blocked on the row lock */
    int waiting = 0;
    for (int i = 0; i < 1000 && !waiting; i++) {
        waiting = count_rows(f->admin, "SELECT count(*) FROM pg_locks WHERE NOT granted");
        if (!waiting)
            nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    assert_true(waiting);
    assert_int_equal(call.rc, -1); /* still waiting */
    admin_sql(claimer, "COMMIT");
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(call.rc, R2M_E_FENCED);
    assert_int_equal(r2m_store_commit(f->a), R2M_E_FENCED);
    assert_int_equal(count_rows(f->admin, "SELECT count(*) FROM r2m_endpoint"), 0);
    PQfinish(claimer);
}

/* The generation, not only the name, fences: a new process under a dead
 * member's name takes the endpoint over, and the old process - same name,
 * old generation - cannot commit for it any more. */
static void test_same_name_new_process_fences_old_one(void **state)
{
    struct fixture *f = *state;
    int64_t old_gen = 0, new_gen = 0, id = 0;
    assert_int_equal(r2m_store_pg_claim(f->a, "docs", LEASE_MS, &old_gen), 0);
    expire(f, "A");
    struct r2m_store *again = open_store(NULL);
    assert_int_equal(r2m_store_pg_join(again, "A", 77, LEASE_MS, NULL, 0), 0);
    assert_int_equal(r2m_store_pg_claim(again, "docs", LEASE_MS, &new_gen), 0);
    assert_true(new_gen > old_gen);
    assert_int_equal(commit_poll(f->a, "docs", 1, &id), R2M_E_FENCED);
    assert_int_equal(commit_poll(again, "docs", 1, &id), 0);
    assert_int_equal(r2m_store_pg_renew(f->a), R2M_E_FENCED);
    r2m_store_free(again);
}

static void test_release_and_leave_hand_over(void **state)
{
    struct fixture *f = *state;
    int64_t g1 = 0, g2 = 0, gb = 0, id = 0;
    assert_int_equal(r2m_store_pg_claim(f->a, "e1", LEASE_MS, &g1), 0);
    assert_int_equal(r2m_store_pg_claim(f->a, "e2", LEASE_MS, &g2), 0);
    assert_int_equal(r2m_store_pg_release(f->a, "nope"), R2M_E_INVALID);
    assert_int_equal(r2m_store_pg_release(f->a, "e1"), 0);
    /* released: A may no longer commit, B takes it while A is live */
    assert_int_equal(commit_poll(f->a, "e1", 1, &id), R2M_E_FENCED);
    assert_int_equal(r2m_store_pg_claim(f->b, "e1", LEASE_MS, &gb), 0);
    assert_int_equal(gb, g1 + 2);
    assert_int_equal(r2m_store_pg_claim(f->b, "e2", LEASE_MS, &gb), R2M_E_FENCED);
    /* a graceful exit gives everything up at once */
    assert_int_equal(r2m_store_pg_leave(f->a), 0);
    assert_int_equal(commit_poll(f->a, "e2", 1, &id), R2M_E_FENCED);
    assert_int_equal(r2m_store_pg_claim(f->b, "e2", LEASE_MS, &gb), 0);
    assert_int_equal(count_rows(f->admin, "SELECT count(*) FROM r2m_member"), 1);
    /* a process whose name is gone releases nothing of the new holder's */
    assert_int_equal(r2m_store_pg_leave(f->a), 0);
    assert_int_equal(count_rows(f->admin, "SELECT count(*) FROM r2m_ownership "
                                          "WHERE member = 'B'"),
                     2);
}

struct items_seen {
    int n;
    char keys[4][8];
    size_t key_len[4];
};

static int collect_item(void *ctx, const char *key, size_t key_len, struct r2m_fp fp,
                        const char *body, size_t body_len)
{
    struct items_seen *it = ctx;
    assert_true(it->n < 4 && key_len < 8);
    assert_int_equal(fp.lo, ~fp.hi);
    assert_true(body_len >= 2 && body[0] == '{');
    memcpy(it->keys[it->n], key, key_len);
    it->key_len[it->n++] = key_len;
    return 0;
}

static void test_items_and_validators(void **state)
{
    struct fixture *f = *state;
    int64_t g = 0;
    struct r2m_store *s = f->a;
    assert_int_equal(r2m_store_pg_claim(s, "col", LEASE_MS, &g), 0);
    assert_int_equal(r2m_store_begin(s), 0);
    assert_int_equal(r2m_store_endpoint_put(s, "col", fp_of(3), 1, NULL, 0, fp_of(0)), 0);
    assert_int_equal(r2m_store_validators_put(s, "col", "\"v1\"", ""), 0);
    assert_int_equal(r2m_store_item_put(s, "col", "\xff", 1, fp_of(1), "{}", 2), 0);
    assert_int_equal(r2m_store_item_put(s, "col", "b\0c", 3, fp_of(2), "{\"x\":1}", 7), 0);
    assert_int_equal(r2m_store_item_put(s, "col", "a", 1, fp_of(3), "{}", 2), 0);
    assert_int_equal(r2m_store_item_put(s, "col", "gone", 4, fp_of(4), "{}", 2), 0);
    assert_int_equal(r2m_store_item_delete(s, "col", "gone", 4), 0);
    assert_int_equal(r2m_store_commit(s), 0);

    struct items_seen it = {0};
    assert_int_equal(r2m_store_items(f->b, "col", collect_item, &it), 0);
    assert_int_equal(it.n, 3); /* bytewise order, NUL inside a key kept */
    assert_int_equal(it.key_len[0], 1);
    assert_memory_equal(it.keys[0], "a", 1);
    assert_int_equal(it.key_len[1], 3);
    assert_memory_equal(it.keys[1], "b\0c", 3);
    assert_memory_equal(it.keys[2], "\xff", 1);

    struct r2m_store_endpoint ep;
    assert_int_equal(r2m_store_endpoint_get(f->b, "col", &ep), 0);
    assert_string_equal(ep.etag, "\"v1\"");
    assert_null(ep.last_modified); /* "" is none, as in SQLite */
    free(ep.etag);
    /* a new snapshot drops the old validators */
    assert_int_equal(r2m_store_begin(s), 0);
    assert_int_equal(r2m_store_endpoint_put(s, "col", fp_of(3), 2, NULL, 0, fp_of(0)), 0);
    assert_int_equal(r2m_store_commit(s), 0);
    assert_int_equal(r2m_store_endpoint_get(f->b, "col", &ep), 0);
    assert_null(ep.etag);
    assert_int_equal(ep.seq, 2);
    assert_int_equal(r2m_store_endpoint_get(f->b, "nope", &ep), 0);
    assert_false(ep.found);
}

struct dl_seen {
    int n;
    char endpoint[16], reason[32];
};

static int collect_dl(void *ctx, const struct r2m_store_dead_letter *d)
{
    struct dl_seen *s = ctx;
    s->n++;
    snprintf(s->endpoint, sizeof s->endpoint, "%s", d->endpoint ? d->endpoint : "(null)");
    snprintf(s->reason, sizeof s->reason, "%s", d->reason);
    assert_int_equal(d->size, 999);
    assert_string_equal(d->event_id, "ev1");
    return 0;
}

/* The state commands' view: a store that joined nothing sees every outbox
 * row, moves dead letters and requeues them. */
static void test_dead_letters_and_operator_view(void **state)
{
    struct fixture *f = *state;
    int64_t g = 0, id = 0, n = 0;
    assert_int_equal(r2m_store_pg_claim(f->a, "dl", LEASE_MS, &g), 0);
    assert_int_equal(commit_poll(f->a, "dl", 1, &id), 0);
    struct r2m_store *op = open_store(NULL);
    assert_int_equal(r2m_store_outbox_count(op), 1);
    char endpoint[16] = "x";
    assert_int_equal(r2m_store_begin(op), 0);
    assert_int_equal(r2m_store_dead_letter_add(op, id, 999, "not_authorized", "ev1", 5, endpoint,
                                               sizeof endpoint),
                     0);
    assert_int_equal(r2m_store_commit(op), 0);
    assert_string_equal(endpoint, "dl");
    assert_int_equal(r2m_store_outbox_count(op), 0);
    assert_int_equal(r2m_store_dead_letter_count(op), 1);
    struct dl_seen seen = {0};
    assert_int_equal(r2m_store_dead_letters(op, collect_dl, &seen), 0);
    assert_int_equal(seen.n, 1);
    assert_string_equal(seen.reason, "not_authorized");
    assert_int_equal(r2m_store_begin(op), 0);
    assert_int_equal(r2m_store_dead_letter_requeue(op, &n), 0);
    assert_int_equal(r2m_store_commit(op), 0);
    assert_int_equal(n, 1);
    assert_int_equal(r2m_store_dead_letter_count(op), 0);
    assert_int_equal(r2m_store_outbox_count(f->a), 1); /* back with its owner */
    r2m_store_free(op);
}

/* Ends store's session from the server side, as a PostgreSQL restart or a
 * network cut would (the store's connections carry application_name). */
static void cut_session(struct fixture *f, const char *app)
{
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
             "WHERE application_name = '%s'",
             app);
    assert_int_equal(count_rows(f->admin, sql), 1);
}

/* A lost session: the operation that finds it fails (nothing half-done
 * commits), the next one reconnects and works - outside a transaction only:
 * a transaction that lost its session fails to its end, its writes never run
 * on their own in a new session. */
static void test_reconnects_after_session_loss(void **state)
{
    struct fixture *f = *state;
    struct r2m_store *s = open_store(" application_name=r2m-cut" LOCK_GUARD);
    char err[256];
    int64_t g = 0, id = 0;
    assert_int_equal(r2m_store_pg_join(s, "C", 3, LEASE_MS, err, sizeof err), 0);
    assert_int_equal(r2m_store_pg_claim(s, "cut", LEASE_MS, &g), 0);
    assert_int_equal(commit_poll(s, "cut", 1, &id), 0);

    cut_session(f, "r2m-cut");
    assert_int_equal(commit_poll(s, "cut", 2, &id), R2M_E_IO);
    assert_int_equal(commit_poll(s, "cut", 2, &id), 0); /* reconnected, still the owner */
    assert_int_equal(count_rows(f->admin, "SELECT seq FROM r2m_endpoint"), 2);

    /* lost in the middle of a transaction */
    assert_int_equal(r2m_store_begin(s), 0);
    assert_int_equal(r2m_store_endpoint_put(s, "cut", fp_of(7), 3, NULL, 0, fp_of(0)), 0);
    cut_session(f, "r2m-cut");
    assert_int_equal(r2m_store_outbox_add(s, "cut", "t/1", 3, "{}", 2, 0, &id), R2M_E_IO);
    assert_int_equal(r2m_store_outbox_add(s, "cut", "t/1", 3, "{}", 2, 0, &id), R2M_E_IO);
    assert_int_equal(r2m_store_commit(s), R2M_E_IO);
    assert_int_equal(count_rows(f->admin, "SELECT seq FROM r2m_endpoint"), 2);
    assert_int_equal(count_rows(f->admin, "SELECT count(*) FROM r2m_outbox"), 2);
    assert_int_equal(r2m_store_pg_renew(s), 0);
    assert_int_equal(commit_poll(s, "cut", 3, &id), 0);
    assert_int_equal(count_rows(f->admin, "SELECT seq FROM r2m_endpoint"), 3);
    r2m_store_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_shares_one_epoch, setup, teardown),
        cmocka_unit_test(test_open_unreachable_fails_without_password),
        cmocka_unit_test_setup_teardown(test_membership, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_generation_cannot_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_waits_for_commit_in_progress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fence_rechecks_after_claim_commits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_name_new_process_fences_old_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_and_leave_hand_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_items_and_validators, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_letters_and_operator_view, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnects_after_session_loss, setup, teardown),
    };
    start_pgserver();
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    stop_pgserver();
    return failed;
}
