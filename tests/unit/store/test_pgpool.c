/*
 * test_pgpool.c — the PostgreSQL connection pool against a real server: reuse, waiting for a
 * slot and the acquire timeout, the reconnect backoff when the server is unreachable, the
 * maximum lifetime, sessions the server ended, connections released as broken, and the pool's
 * metrics.
 *
 * Needs LEDGERD_TEST_PG_URL (see test_pg.c); uses that database as it is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "obs/metrics.h"
#include "store/pgpool.h"

static const char *test_url(void)
{
    const char *url = getenv("LEDGERD_TEST_PG_URL");
    if (url == NULL || url[0] == '\0') {
        fail_msg("test_pgpool needs a PostgreSQL server: set LEDGERD_TEST_PG_URL (e.g. to what "
                 "`bash scripts/pg.sh start DIR` prints)");
    }
    return url;
}

static struct pgpool *pool_new(const char *url, uint32_t size, uint32_t timeout_ms,
                               uint32_t lifetime_s)
{
    struct pgpool_options o = {.conninfo = url,
                               .role = METRICS_DB_READER,
                               .size = size,
                               .acquire_timeout_ms = timeout_ms,
                               .max_lifetime_seconds = lifetime_s,
                               .statement_timeout_ms = 5000};
    struct pgpool *p = NULL;
    assert_int_equal(pgpool_new(&o, &p), 0);
    return p;
}

static double ms_since(int64_t t0_ns)
{
    return (double)(clock_mono_ns() - t0_ns) / 1e6;
}

/* The server process of the connection, and the session settings it got. */
static int backend_pid(struct pgpool_conn *c)
{
    PGresult *res = PQexec(c->pg, "SELECT pg_backend_pid(), current_setting('statement_timeout'),"
                                  " current_setting('application_name')");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    int pid = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
    assert_string_equal(PQgetvalue(res, 0, 1), "5s");
    assert_string_equal(PQgetvalue(res, 0, 2), "ledgerd");
    PQclear(res);
    return pid;
}

static int64_t in_use(void)
{
    return metrics_value(METRIC_DB_POOL_CONNS,
                         metrics_db_conns_series(METRICS_DB_READER, METRICS_DB_IN_USE));
}

static void test_bad_options(void **state)
{
    (void)state;
    struct pgpool_options o = {.conninfo = "postgresql://x/y", .size = 0, .acquire_timeout_ms = 1};
    struct pgpool *p = NULL;
    assert_int_equal(pgpool_new(&o, &p), -EINVAL);
    o.size = PGPOOL_SIZE_MAX + 1;
    assert_int_equal(pgpool_new(&o, &p), -EINVAL);
    o.size = 1;
    o.acquire_timeout_ms = 0;
    assert_int_equal(pgpool_new(&o, &p), -EINVAL);
    assert_null(p);
    pgpool_free(NULL);
}

static void test_reuse_and_metrics(void **state)
{
    (void)state;
    int64_t max0 = metrics_value(METRIC_DB_POOL_MAX, METRICS_DB_READER);
    int64_t open0 = metrics_value(METRIC_DB_POOL_SIZE, METRICS_DB_READER);
    int64_t use0 = in_use();
    struct pgpool *p = pool_new(test_url(), 2, 1000, 1800);
    assert_int_equal(pgpool_size(p), 2);
    assert_int_equal(metrics_value(METRIC_DB_POOL_MAX, METRICS_DB_READER), max0 + 2);
    assert_int_equal(metrics_value(METRIC_DB_POOL_SIZE, METRICS_DB_READER), open0);

    struct pgpool_conn *a = NULL;
    struct pgpool_conn *b = NULL;
    assert_int_equal(pgpool_acquire(p, &a), 0);
    assert_int_equal(in_use(), use0 + 1);
    int pid_a = backend_pid(a);
    assert_int_equal(pgpool_acquire(p, &b), 0);
    assert_ptr_not_equal(a, b);
    assert_int_not_equal(backend_pid(b), pid_a);
    assert_int_equal(in_use(), use0 + 2);
    assert_int_equal(metrics_value(METRIC_DB_POOL_SIZE, METRICS_DB_READER), open0 + 2);
    a->prepared = 5;
    pgpool_release(p, a, false);
    pgpool_release(p, b, false);
    assert_int_equal(in_use(), use0);

    /* The most recently released connection comes back, with what the user kept on it. */
    assert_int_equal(pgpool_acquire(p, &a), 0);
    assert_int_not_equal(backend_pid(a), pid_a);
    pgpool_release(p, a, false);
    assert_int_equal(pgpool_acquire(p, &a), 0);
    pgpool_release(p, a, false);
    struct pgpool_conn *again = NULL;
    assert_int_equal(pgpool_acquire(p, &again), 0);
    assert_ptr_equal(again, a);

    /* Released as broken: closed, and the slot reconnects with a clean slate. */
    int pid = backend_pid(again);
    pgpool_release(p, again, true);
    assert_int_equal(metrics_value(METRIC_DB_POOL_SIZE, METRICS_DB_READER), open0 + 1);
    struct pgpool_conn *c1 = NULL;
    struct pgpool_conn *c2 = NULL;
    assert_int_equal(pgpool_acquire(p, &c1), 0);
    assert_int_equal(pgpool_acquire(p, &c2), 0);
    assert_int_not_equal(backend_pid(c1), pid);
    assert_int_not_equal(backend_pid(c2), pid);
    assert_true(c1->prepared == 0 || c2->prepared == 0);
    /* A connection left inside a transaction is not given to the next user. */
    PQclear(PQexec(c1->pg, "BEGIN"));
    int pid1 = backend_pid(c1);
    pgpool_release(p, c1, false);
    pgpool_release(p, c2, false);
    assert_int_equal(pgpool_acquire(p, &c1), 0);
    assert_int_equal(pgpool_acquire(p, &c2), 0);
    assert_int_not_equal(backend_pid(c1), pid1);
    assert_int_not_equal(backend_pid(c2), pid1);
    pgpool_release(p, c1, false);
    pgpool_release(p, c2, false);

    pgpool_free(p);
    assert_int_equal(metrics_value(METRIC_DB_POOL_MAX, METRICS_DB_READER), max0);
    assert_int_equal(metrics_value(METRIC_DB_POOL_SIZE, METRICS_DB_READER), open0);
    assert_int_equal(in_use(), use0);
}

struct holder {
    struct pgpool *p;
    struct pgpool_conn *c;
    int hold_ms;
};

static void *release_later_main(void *arg)
{
    struct holder *h = arg;
    usleep((useconds_t)h->hold_ms * 1000);
    pgpool_release(h->p, h->c, false);
    return NULL;
}

static void test_wait_and_timeout(void **state)
{
    (void)state;
    struct pgpool *p = pool_new(test_url(), 1, 300, 1800);
    int64_t timeouts = metrics_value(METRIC_DB_ACQUIRE_TIMEOUT, METRICS_DB_READER);
    uint64_t waits0 = 0;
    uint64_t sum0 = 0;
    metrics_reg_histogram(metrics_ledgerd(), METRIC_DB_ACQUIRE_WAIT, METRICS_DB_READER, &waits0,
                          &sum0);

    struct pgpool_conn *c = NULL;
    assert_int_equal(pgpool_acquire(p, &c), 0);
    struct pgpool_conn *d = NULL;
    int64_t t0 = clock_mono_ns();
    assert_int_equal(pgpool_acquire(p, &d), -EBUSY);
    double waited = ms_since(t0);
    assert_true(waited >= 290.0 && waited < 1000.0);
    assert_null(d);
    assert_int_equal(metrics_value(METRIC_DB_ACQUIRE_TIMEOUT, METRICS_DB_READER), timeouts + 1);

    /* A release wakes the waiter long before its timeout. */
    struct holder h = {p, c, 100};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, release_later_main, &h), 0);
    t0 = clock_mono_ns();
    assert_int_equal(pgpool_acquire(p, &d), 0);
    waited = ms_since(t0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_true(waited >= 80.0 && waited < 290.0);
    assert_ptr_equal(d, c);
    pgpool_release(p, d, false);

    uint64_t waits = 0;
    uint64_t sum = 0;
    metrics_reg_histogram(metrics_ledgerd(), METRIC_DB_ACQUIRE_WAIT, METRICS_DB_READER, &waits,
                          &sum);
    assert_int_equal(waits, waits0 + 3);
    assert_true(sum - sum0 >= 380u * 1000000u); /* ns: the timeout and the wait */
    pgpool_free(p);
}

static void test_unreachable_backs_off(void **state)
{
    (void)state;
    int64_t open0 = metrics_value(METRIC_DB_POOL_SIZE, METRICS_DB_READER);
    struct pgpool *p = pool_new("postgresql://nobody@127.0.0.1:1/none", 2, 1000, 1800);
    struct pgpool_conn *c = NULL;
    assert_int_equal(pgpool_acquire(p, &c), -EIO);
    /* Within the backoff (25..50 ms after the first failure): fails at once, no connect. */
    int64_t t0 = clock_mono_ns();
    for (int i = 0; i < 10; i++) {
        assert_int_equal(pgpool_acquire(p, &c), -EIO);
    }
    assert_true(ms_since(t0) < 20.0);
    /* After it, a new attempt is made (and fails again); the slots stay free. */
    usleep(120 * 1000);
    assert_int_equal(pgpool_acquire(p, &c), -EIO);
    assert_null(c);
    assert_int_equal(metrics_value(METRIC_DB_POOL_SIZE, METRICS_DB_READER), open0);
    pgpool_free(p); /* asserts that no slot was left in use */
}

static void test_lifetime_and_server_ended_sessions(void **state)
{
    (void)state;
    const char *url = test_url();
    struct pgpool *p = pool_new(url, 1, 1000, 1);
    struct pgpool_conn *c = NULL;
    assert_int_equal(pgpool_acquire(p, &c), 0);
    int pid = backend_pid(c);
    pgpool_release(p, c, false);
    assert_int_equal(pgpool_acquire(p, &c), 0);
    assert_int_equal(backend_pid(c), pid); /* young: reused */
    pgpool_release(p, c, false);
    usleep(1100 * 1000);
    assert_int_equal(pgpool_acquire(p, &c), 0);
    int pid2 = backend_pid(c);
    assert_int_not_equal(pid2, pid); /* past its lifetime: replaced */
    pgpool_release(p, c, false);

    /* The server ends the session while it is idle in the pool: the next checkout sees it and
     * hands out a new one. */
    PGconn *admin = PQconnectdb(url);
    assert_int_equal(PQstatus(admin), CONNECTION_OK);
    char sql[64];
    snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", pid2);
    PGresult *res = PQexec(admin, sql);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    PQfinish(admin);
    usleep(100 * 1000);
    assert_int_equal(pgpool_acquire(p, &c), 0);
    assert_int_not_equal(backend_pid(c), pid2);
    pgpool_release(p, c, false);
    pgpool_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_reuse_and_metrics),
        cmocka_unit_test(test_wait_and_timeout),
        cmocka_unit_test(test_unreachable_backs_off),
        cmocka_unit_test(test_lifetime_and_server_ended_sessions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
