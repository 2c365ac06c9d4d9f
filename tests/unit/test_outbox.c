/* test_outbox.c - the transactional outbox on a real state file, with a
 * fake publisher and a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "r2m/error.h"
#include "r2m/outbox.h"
#include "r2m/store.h"

static char dir[] = "/tmp/r2m-test-outbox-XXXXXX";
static char path[256];

/* The publisher: records what it was given, in order. */
struct fake_pub {
    size_t room;
    int strict; /* like the real publisher: refuses without room, each message takes one */
    size_t n;
    int64_t ids[32];
    char topics[32][64];
    char payloads[32][128];
    int retained[32];
};

static size_t fake_room(void *ctx)
{
    struct fake_pub *p = ctx;
    return p->room;
}

static size_t fake_pending(void *ctx)
{
    struct fake_pub *p = ctx;
    return p->n;
}

static int fake_enqueue(void *ctx, char *topic, char *payload, size_t len, int retained, int64_t id)
{
    struct fake_pub *p = ctx;
    if (p->strict && !p->room) {
        free(topic);
        free(payload);
        return R2M_E_TOO_BIG;
    }
    if (p->strict)
        p->room--;
    assert_true(p->n < 32);
    assert_int_equal(strlen(payload), len);
    snprintf(p->topics[p->n], sizeof p->topics[0], "%s", topic);
    snprintf(p->payloads[p->n], sizeof p->payloads[0], "%s", payload);
    p->retained[p->n] = retained;
    p->ids[p->n++] = id;
    free(topic);
    free(payload);
    return 0;
}

struct fixture {
    struct r2m_store *store;
    struct r2m_outbox *o;
    struct fake_pub pub;
    struct r2m_poller_batch batch;
    int persisted;
    int persist_fails;
};

static int persist(void *pctx, struct r2m_store *store)
{
    struct fixture *f = pctx;
    assert_ptr_equal(store, f->store);
    f->persisted++;
    if (f->persist_fails)
        return R2M_E_IO;
    /* the poller's snapshot: the validators below land on its row */
    struct r2m_fp fp = {1, 2};
    return r2m_store_endpoint_put(store, "alpha", fp, (uint64_t)f->persisted, "{}", 2, fp);
}

static void open_outbox(struct fixture *f, uint64_t max)
{
    char err[512];
    memset(&f->pub, 0, sizeof f->pub);
    f->pub.room = 1000;
    if (r2m_store_new(&(struct r2m_store_params){.path = path}, err, sizeof err, &f->store))
        fail_msg("open failed: %s", err);
    struct r2m_outbox_sink sink = {&f->pub, fake_room, fake_pending, fake_enqueue};
    assert_int_equal(r2m_outbox_new(&f->o, f->store, path, max, &sink), 0);
}

static void close_outbox(struct fixture *f)
{
    r2m_outbox_free(f->o);
    r2m_store_free(f->store);
    f->o = NULL;
    f->store = NULL;
}

static int setup(void **state)
{
    strcpy(dir, "/tmp/r2m-test-outbox-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/state.db", dir);
    struct fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    r2m_buf_init(&f->batch.bytes, 1 << 20);
    open_outbox(f, 100);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    close_outbox(f);
    r2m_buf_free(&f->batch.bytes);
    free(f->batch.msgs);
    free(f);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A batch of n events e<first>..; their payloads carry a CloudEvents id. */
static void fill(struct fixture *f, int first, int n)
{
    r2m_poller_batch_reset(&f->batch);
    for (int i = first; i < first + n; i++) {
        char topic[32], payload[96];
        snprintf(topic, sizeof topic, "t/e%d", i);
        snprintf(payload, sizeof payload, "{\"specversion\":\"1.0\",\"id\":\"id%d\",\"n\":%d}", i,
                 i);
        assert_int_equal(r2m_poller_batch_add(&f->batch, topic, strlen(topic), payload,
                                              strlen(payload), 0, R2M_EVENT_ITEM_CREATED),
                         0);
    }
}

static int emit(struct fixture *f, char *err, size_t errlen)
{
    struct r2m_outbox_from from = {"alpha", "\"v1\"", NULL};
    return r2m_outbox_emit(f->o, &f->batch, persist, f, &from, err, errlen);
}

static void emit_commits_and_queues_in_order(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    fill(f, 1, 3);
    assert_int_equal(emit(f, err, sizeof err), 0);
    assert_int_equal(f->persisted, 1);
    assert_int_equal(r2m_store_outbox_count(f->store), 3);
    assert_int_equal(f->pub.n, 3);
    for (int i = 0; i < 3; i++) {
        char t[32];
        snprintf(t, sizeof t, "t/e%d", i + 1);
        assert_string_equal(f->pub.topics[i], t);
        assert_true(f->pub.ids[i] > 0);
        if (i)
            assert_true(f->pub.ids[i] > f->pub.ids[i - 1]);
    }
    /* the validators committed with the events */
    struct r2m_store_endpoint row;
    assert_int_equal(r2m_store_endpoint_get(f->store, "alpha", &row), 0);
    assert_true(row.found);
    assert_string_equal(row.etag, "\"v1\"");
    free(row.doc);
    free(row.etag);
    free(row.last_modified);
}

static void acked_events_are_deleted_at_flush(void **state)
{
    struct fixture *f = *state;
    char err[512];
    fill(f, 1, 3);
    assert_int_equal(emit(f, err, sizeof err), 0);
    r2m_outbox_on_ack(f->o, f->pub.ids[0]);
    r2m_outbox_on_ack(f->o, f->pub.ids[2]);
    assert_int_equal(r2m_store_outbox_count(f->store), 3); /* not before the flush */
    r2m_outbox_flush(f->o, 1000);
    assert_int_equal(r2m_store_outbox_count(f->store), 1);
    /* nothing is collected any more: a second flush changes nothing */
    r2m_outbox_flush(f->o, 2000);
    assert_int_equal(r2m_store_outbox_count(f->store), 1);
}

struct dead_seen {
    int n;
    int64_t time_ms;
    char endpoint[32], reason[32], event_id[32];
};

static int see_dead(void *ctx, const struct r2m_store_dead_letter *d)
{
    struct dead_seen *s = ctx;
    s->n++;
    s->time_ms = d->time_ms;
    snprintf(s->endpoint, sizeof s->endpoint, "%s", d->endpoint ? d->endpoint : "");
    snprintf(s->reason, sizeof s->reason, "%s", d->reason);
    snprintf(s->event_id, sizeof s->event_id, "%s", d->event_id ? d->event_id : "");
    return 0;
}

/* Three events: the broker acknowledges the first and refuses the second. */
static void ack_first_refuse_second(struct fixture *f)
{
    char err[512];
    fill(f, 1, 3);
    assert_int_equal(emit(f, err, sizeof err), 0);
    r2m_outbox_on_ack(f->o, f->pub.ids[0]);
    r2m_outbox_on_dead(f->o, f->pub.ids[1], f->pub.topics[1], f->pub.payloads[1],
                       strlen(f->pub.payloads[1]), 99999, "packet_too_large", "too large");
}

static void dead_letter_moves_with_the_acks(void **state)
{
    struct fixture *f = *state;
    ack_first_refuse_second(f);
    size_t n = 9;
    (void)r2m_outbox_dead_counts(f->o, &n);
    assert_int_equal(n, 0); /* counted once moved */
    r2m_outbox_flush(f->o, 1764000000123);
    assert_int_equal(r2m_store_outbox_count(f->store), 1);
    assert_int_equal(r2m_store_dead_letter_count(f->store), 1);
    struct dead_seen seen = {0};
    assert_int_equal(r2m_store_dead_letters(f->store, see_dead, &seen), 0);
    assert_int_equal(seen.n, 1);
    assert_int_equal(seen.time_ms, 1764000000123); /* the clock given to flush */
    assert_string_equal(seen.endpoint, "alpha");
    assert_string_equal(seen.reason, "packet_too_large");
    assert_string_equal(seen.event_id, "id2");
    const struct r2m_outbox_dead_count *c = r2m_outbox_dead_counts(f->o, &n);
    assert_int_equal(n, 1);
    assert_string_equal(c[0].endpoint, "alpha");
    assert_string_equal(c[0].reason, "packet_too_large");
    assert_int_equal(c[0].n, 1);
}

static void a_failed_transaction_stores_and_queues_nothing(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    f->persist_fails = 1;
    fill(f, 1, 2);
    assert_int_equal(emit(f, err, sizeof err), R2M_E_IO);
    assert_non_null(strstr(err, "state not saved"));
    assert_int_equal(r2m_store_outbox_count(f->store), 0);
    assert_int_equal(f->pub.n, 0);
    /* and the next poll commits normally */
    f->persist_fails = 0;
    assert_int_equal(emit(f, err, sizeof err), 0);
    assert_int_equal(r2m_store_outbox_count(f->store), 2);
}

static void a_batch_without_room_is_refused_whole(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    f->pub.room = 2;
    fill(f, 1, 3);
    assert_int_equal(emit(f, err, sizeof err), R2M_E_TOO_BIG);
    assert_non_null(strstr(err, "outbox full"));
    assert_int_equal(f->persisted, 0);
    assert_int_equal(r2m_store_outbox_count(f->store), 0);
    assert_int_equal(f->pub.n, 0);
    /* more than outbox_max: no acknowledgement will ever make room */
    close_outbox(f);
    open_outbox(f, 2);
    assert_int_equal(emit(f, err, sizeof err), R2M_E_TOO_BIG);
    assert_non_null(strstr(err, "can ever hold"));
    assert_int_equal(r2m_store_outbox_count(f->store), 0);
}

static void each_event_is_handed_over_once(void **state)
{
    struct fixture *f = *state;
    char err[512];
    fill(f, 1, 2);
    assert_int_equal(emit(f, err, sizeof err), 0);
    r2m_outbox_on_ack(f->o, f->pub.ids[0]);
    r2m_outbox_flush(f->o, 1000);
    fill(f, 3, 2);
    assert_int_equal(emit(f, err, sizeof err), 0);
    r2m_outbox_on_ack(f->o, f->pub.ids[0]); /* a late duplicate ack */
    r2m_outbox_flush(f->o, 2000);
    /* four events, four hand-overs, four distinct ids, in order */
    assert_int_equal(f->pub.n, 4);
    for (size_t i = 1; i < f->pub.n; i++)
        assert_true(f->pub.ids[i] > f->pub.ids[i - 1]);
    assert_string_equal(f->pub.topics[2], "t/e3");
    assert_int_equal(r2m_store_outbox_count(f->store), 3);
}

static void restart_resends_unacked_rows_in_order_with_their_ids(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    fill(f, 1, 4);
    assert_int_equal(emit(f, err, sizeof err), 0);
    int64_t ids[4];
    memcpy(ids, f->pub.ids, sizeof ids);
    r2m_outbox_on_ack(f->o, ids[0]);
    r2m_outbox_on_ack(f->o, ids[2]);
    r2m_outbox_flush(f->o, 1000);
    r2m_outbox_on_ack(f->o, ids[3]); /* acknowledged, never flushed: sent again */
    close_outbox(f);
    open_outbox(f, 100);
    assert_int_equal(r2m_outbox_load(f->o, err, sizeof err), 0);
    assert_int_equal(f->pub.n, 2);
    assert_int_equal(f->pub.ids[0], ids[1]);
    assert_string_equal(f->pub.topics[0], "t/e2");
    assert_string_equal(f->pub.payloads[0], "{\"specversion\":\"1.0\",\"id\":\"id2\",\"n\":2}");
    assert_int_equal(f->pub.ids[1], ids[3]);
    assert_string_equal(f->pub.topics[1], "t/e4");
    assert_int_equal(f->pub.retained[1], 0);
}

/* More stored rows than the publisher takes (outbox_max lowered between
 * runs, or dead letters requeued): the first ones are queued at start, the
 * rest as acknowledgements make room, in order and before any new event;
 * none stays behind until some later restart. */
static void stored_rows_beyond_the_queue_follow_as_acks_make_room(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    fill(f, 1, 7);
    assert_int_equal(emit(f, err, sizeof err), 0);
    int64_t ids[7];
    memcpy(ids, f->pub.ids, sizeof ids);
    close_outbox(f);
    open_outbox(f, 3);
    f->pub.strict = 1;
    f->pub.room = 3;
    assert_int_equal(r2m_outbox_load(f->o, err, sizeof err), 0);
    assert_int_equal(f->pub.n, 3);
    /* new events wait behind the stored ones */
    fill(f, 8, 1);
    assert_int_equal(emit(f, err, sizeof err), R2M_E_TOO_BIG);
    assert_non_null(strstr(err, "outbox full"));
    /* two acks: two more stored rows follow, in order */
    r2m_outbox_on_ack(f->o, ids[0]);
    r2m_outbox_on_ack(f->o, ids[1]);
    f->pub.room += 2;
    r2m_outbox_flush(f->o, 1000);
    assert_int_equal(f->pub.n, 5);
    assert_int_equal(f->pub.ids[3], ids[3]);
    assert_int_equal(f->pub.ids[4], ids[4]);
    /* the rest, then the backlog is gone and new events flow again */
    for (int i = 2; i < 5; i++)
        r2m_outbox_on_ack(f->o, ids[i]);
    f->pub.room += 3;
    r2m_outbox_flush(f->o, 2000);
    assert_int_equal(f->pub.n, 7);
    assert_int_equal(f->pub.ids[5], ids[5]);
    assert_int_equal(f->pub.ids[6], ids[6]);
    assert_string_equal(f->pub.topics[6], "t/e7");
    assert_int_equal(emit(f, err, sizeof err), 0);
    assert_int_equal(f->pub.n, 8);
    assert_string_equal(f->pub.topics[7], "t/e8");
    assert_int_equal(r2m_store_outbox_count(f->store), 3);
}

/* A flush whose transaction fails (here: the dead letter's payload is over
 * a length limit while the acknowledged row is already deleted) deletes
 * nothing and moves nothing; its acknowledgements and dead letters are
 * kept and land with the next flush that commits, none applied twice. */
static void a_failed_flush_keeps_rows_and_retries(void **state)
{
    struct fixture *f = *state;
    ack_first_refuse_second(f);
    int limit = r2m_store_limit_length(f->store, 8); /* the previous limit */
    assert_true(limit > 8);
    r2m_outbox_flush(f->o, 1000);
    assert_int_equal(r2m_store_outbox_count(f->store), 3);
    assert_int_equal(r2m_store_dead_letter_count(f->store), 0);
    size_t n = 9;
    (void)r2m_outbox_dead_counts(f->o, &n);
    assert_int_equal(n, 0);
    assert_int_equal(r2m_store_limit_length(f->store, limit), 8);
    r2m_outbox_flush(f->o, 2000);
    assert_int_equal(r2m_store_outbox_count(f->store), 1);
    assert_int_equal(r2m_store_dead_letter_count(f->store), 1);
    const struct r2m_outbox_dead_count *c = r2m_outbox_dead_counts(f->o, &n);
    assert_int_equal(n, 1);
    assert_int_equal(c[0].n, 1);
    r2m_outbox_flush(f->o, 3000); /* nothing left to apply */
    assert_int_equal(r2m_store_outbox_count(f->store), 1);
    assert_int_equal(r2m_store_dead_letter_count(f->store), 1);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(emit_commits_and_queues_in_order),
        T(acked_events_are_deleted_at_flush),
        T(dead_letter_moves_with_the_acks),
        T(a_failed_transaction_stores_and_queues_nothing),
        T(a_batch_without_room_is_refused_whole),
        T(each_event_is_handed_over_once),
        T(restart_resends_unacked_rows_in_order_with_their_ids),
        T(a_failed_flush_keeps_rows_and_retries),
        T(stored_rows_beyond_the_queue_follow_as_acks_make_room),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
