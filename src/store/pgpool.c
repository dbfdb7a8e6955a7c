/*
 * pgpool.c — the PostgreSQL connection pool (pgpool.h): slots, lazy connects, health checks on
 * checkout, maximum lifetime, and the reconnect backoff.
 *
 * One mutex guards the slots; connecting and health queries run outside it, on a slot already
 * marked in use, so a slow server never blocks other acquires. Waiters sleep on a condition
 * variable signalled by every release.
 */
#include "store/pgpool.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/assert.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/rand.h"
#include "obs/log.h"

#define PGPOOL_NS_PER_MS 1000000LL
/* Room for the session options: "-c statement_timeout=N -c lock_timeout=N". */
#define PGPOOL_SESSION_OPTIONS_LEN_MAX 96
/* URLs are logged redacted, cut at this length. */
#define PGPOOL_URL_LOG_LEN_MAX 512

struct pgpool {
    pthread_mutex_t lock;
    pthread_cond_t freed; /* a slot was released */
    struct pgpool_conn *conns;
    uint32_t size;
    enum metrics_db_role role;
    uint32_t acquire_timeout_ms;
    int64_t max_lifetime_ns;
    char *conninfo;
    char *password;
    char session_options[PGPOOL_SESSION_OPTIONS_LEN_MAX];
    /* Reconnect backoff (under lock): no connect before backoff_until_ns. */
    int64_t backoff_until_ns;
    uint32_t backoff_ms; /* the current step; 0 while connects succeed */
};

int pgpool_new(const struct pgpool_options *o, struct pgpool **out)
{
    ASSERT(o != NULL && out != NULL);
    ASSERT(o->conninfo != NULL);
    *out = NULL;
    if (o->size == 0 || o->size > PGPOOL_SIZE_MAX || o->acquire_timeout_ms == 0) {
        return -EINVAL;
    }
    struct pgpool *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return -ENOMEM;
    }
    p->conns = calloc(o->size, sizeof(*p->conns));
    p->conninfo = strdup(o->conninfo);
    p->password = o->password != NULL ? strdup(o->password) : NULL;
    if (p->conns == NULL || p->conninfo == NULL || (o->password != NULL && p->password == NULL)) {
        free(p->conns);
        free(p->conninfo);
        free(p->password);
        free(p);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < o->size; i++) {
        p->conns[i].index = i;
    }
    p->size = o->size;
    p->role = o->role;
    p->acquire_timeout_ms = o->acquire_timeout_ms;
    p->max_lifetime_ns = (int64_t)o->max_lifetime_seconds * 1000 * PGPOOL_NS_PER_MS;
    int n = snprintf(p->session_options, sizeof(p->session_options),
                     "-c statement_timeout=%u -c lock_timeout=%u", o->statement_timeout_ms,
                     o->statement_timeout_ms);
    ASSERT(n > 0 && (size_t)n < sizeof(p->session_options));
    pthread_mutex_init(&p->lock, NULL);
    /* Deadlines are on the monotonic clock: a wall-clock step must not end waits early. */
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&p->freed, &attr);
    pthread_condattr_destroy(&attr);
    metrics_gauge_add(METRIC_DB_POOL_MAX, p->role, (int64_t)p->size);
    *out = p;
    return 0;
}

/* Closes a slot's server connection (the slot is the caller's). */
static void pgpool_disconnect(struct pgpool *p, struct pgpool_conn *c)
{
    if (c->pg != NULL) {
        PQfinish(c->pg);
        c->pg = NULL;
        c->prepared = 0;
        metrics_gauge_add(METRIC_DB_POOL_SIZE, p->role, -1);
    }
}

void pgpool_free(struct pgpool *p)
{
    if (p == NULL) {
        return;
    }
    for (uint32_t i = 0; i < p->size; i++) {
        ASSERT(!p->conns[i].in_use);
        pgpool_disconnect(p, &p->conns[i]);
    }
    metrics_gauge_add(METRIC_DB_POOL_MAX, p->role, -(int64_t)p->size);
    pthread_cond_destroy(&p->freed);
    pthread_mutex_destroy(&p->lock);
    free(p->conns);
    free(p->conninfo);
    free(p->password);
    free(p);
}

uint32_t pgpool_size(const struct pgpool *p)
{
    ASSERT(p != NULL);
    return p->size;
}

/* The next backoff step after a failed connect: doubling, capped, with up to 50 % jitter
 * downwards so that many processes do not reconnect in step. Under lock. */
static uint32_t pgpool_backoff_next_locked(struct pgpool *p)
{
    uint32_t step = p->backoff_ms == 0 ? PGPOOL_BACKOFF_INITIAL_MS : p->backoff_ms * 2;
    if (step > PGPOOL_BACKOFF_MAX_MS) {
        step = PGPOOL_BACKOFF_MAX_MS;
    }
    p->backoff_ms = step;
    uint32_t jitter = (uint32_t)(rand_u64() % (step / 2 + 1));
    uint32_t wait_ms = step - jitter;
    p->backoff_until_ns = clock_mono_ns() + (int64_t)wait_ms * PGPOOL_NS_PER_MS;
    return wait_ms;
}

/* Server notices (NOTICE, WARNING) are not errors: ledgerd does not print them to stderr. */
static void pgpool_notice_ignore(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Makes the slot's server connection. Outside the lock. 0 or -EIO. */
static int pgpool_connect(struct pgpool *p, struct pgpool_conn *c)
{
    ASSERT(c->pg == NULL);
    char timeout[16];
    snprintf(timeout, sizeof(timeout), "%d", PGPOOL_CONNECT_TIMEOUT_SECONDS);
    const char *keys[8];
    const char *values[8];
    size_t k = 0;
    keys[k] = "dbname";
    values[k++] = p->conninfo;
    keys[k] = "connect_timeout";
    values[k++] = timeout;
    keys[k] = "application_name";
    values[k++] = "ledgerd";
    keys[k] = "client_encoding";
    values[k++] = "UTF8";
    keys[k] = "options";
    values[k++] = p->session_options;
    if (p->password != NULL) {
        keys[k] = "password";
        values[k++] = p->password;
    }
    keys[k] = NULL;
    values[k] = NULL;
    PGconn *pg = PQconnectdbParams(keys, values, 1);
    if (pg != NULL && PQstatus(pg) == CONNECTION_OK) {
        pthread_mutex_lock(&p->lock);
        p->backoff_ms = 0;
        p->backoff_until_ns = 0;
        pthread_mutex_unlock(&p->lock);
        (void)PQsetNoticeProcessor(pg, pgpool_notice_ignore, NULL);
        c->pg = pg;
        c->prepared = 0;
        c->failed = false;
        c->opened_ns = clock_mono_ns();
        c->released_ns = c->opened_ns;
        metrics_gauge_add(METRIC_DB_POOL_SIZE, p->role, 1);
        return 0;
    }
    /* Log once per backoff step: the step grows, so a long outage logs a few lines a minute. */
    pthread_mutex_lock(&p->lock);
    uint32_t wait_ms = pgpool_backoff_next_locked(p);
    pthread_mutex_unlock(&p->lock);
    char url[PGPOOL_URL_LOG_LEN_MAX];
    (void)config_redact_url(p->conninfo, url, sizeof(url));
    const char *msg = pg != NULL ? PQerrorMessage(pg) : "out of memory";
    size_t len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' ')) {
        len--;
    }
    log_msgf(CONFIG_LOG_ERROR, NULL,
             "store: postgresql: cannot connect to %s: %.*s (next attempt in %u ms)", url, (int)len,
             msg, wait_ms);
    PQfinish(pg);
    return -EIO;
}

/* True when an idle connection still works: libpq thinks so, the server sent nothing while it
 * was idle (a session the server ended sends an error, then closes), and, when it was idle for
 * long, a trivial query answers. */
static bool pgpool_healthy(struct pgpool_conn *c, int64_t now_ns)
{
    if (PQstatus(c->pg) != CONNECTION_OK || PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        return false;
    }
    struct pollfd pfd = {.fd = PQsocket(c->pg), .events = POLLIN, .revents = 0};
    if (pfd.fd < 0 || poll(&pfd, 1, 0) != 0) {
        return false; /* readable (or failing) while idle: closed or ended by the server */
    }
    if (now_ns - c->released_ns <= (int64_t)PGPOOL_HEALTH_IDLE_MS * PGPOOL_NS_PER_MS) {
        return true;
    }
    PGresult *res = PQexec(c->pg, "SELECT 1");
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    PQclear(res);
    return ok;
}

/* Takes a free slot, preferring one already connected (most recently released first). Under
 * lock. NULL when every slot is in use. */
static struct pgpool_conn *pgpool_take_locked(struct pgpool *p)
{
    struct pgpool_conn *best = NULL;
    for (uint32_t i = 0; i < p->size; i++) {
        struct pgpool_conn *c = &p->conns[i];
        if (c->in_use) {
            continue;
        }
        if (best == NULL || (best->pg == NULL && c->pg != NULL) ||
            (best->pg != NULL && c->pg != NULL && c->released_ns > best->released_ns)) {
            best = c;
        }
    }
    if (best != NULL) {
        best->in_use = true;
    }
    return best;
}

/* Puts a slot back and wakes a waiter. */
static void pgpool_put(struct pgpool *p, struct pgpool_conn *c)
{
    pthread_mutex_lock(&p->lock);
    ASSERT(c->in_use);
    c->in_use = false;
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->lock);
}

int pgpool_acquire(struct pgpool *p, struct pgpool_conn **out)
{
    ASSERT(p != NULL && out != NULL);
    *out = NULL;
    int64_t start_ns = clock_mono_ns();
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += (time_t)(p->acquire_timeout_ms / 1000);
    deadline.tv_nsec += (long)(p->acquire_timeout_ms % 1000) * PGPOOL_NS_PER_MS;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }

    pthread_mutex_lock(&p->lock);
    struct pgpool_conn *c = NULL;
    int wrc = 0;
    while ((c = pgpool_take_locked(p)) == NULL && wrc != ETIMEDOUT) {
        wrc = pthread_cond_timedwait(&p->freed, &p->lock, &deadline);
    }
    int64_t backoff_until_ns = p->backoff_until_ns;
    pthread_mutex_unlock(&p->lock);

    int64_t waited_ns = clock_mono_ns() - start_ns;
    metrics_observe(METRIC_DB_ACQUIRE_WAIT, p->role, waited_ns > 0 ? (uint64_t)waited_ns : 0);
    if (c == NULL) {
        metrics_add(METRIC_DB_ACQUIRE_TIMEOUT, p->role, 1);
        return -EBUSY;
    }

    int64_t now_ns = clock_mono_ns();
    if (c->pg != NULL && p->max_lifetime_ns > 0 && now_ns - c->opened_ns >= p->max_lifetime_ns) {
        pgpool_disconnect(p, c);
    }
    if (c->pg != NULL && !pgpool_healthy(c, now_ns)) {
        pgpool_disconnect(p, c);
    }
    if (c->pg == NULL) {
        if (now_ns < backoff_until_ns) {
            pgpool_put(p, c);
            return -EIO; /* the database was unreachable a moment ago: fail fast */
        }
        if (pgpool_connect(p, c) != 0) {
            pgpool_put(p, c);
            return -EIO;
        }
    }
    metrics_gauge_add(METRIC_DB_POOL_CONNS, metrics_db_conns_series(p->role, METRICS_DB_IN_USE), 1);
    *out = c;
    return 0;
}

void pgpool_release(struct pgpool *p, struct pgpool_conn *c, bool broken)
{
    ASSERT(p != NULL && c != NULL);
    ASSERT(c->in_use && c->pg != NULL);
    int64_t now_ns = clock_mono_ns();
    if (broken || c->failed || PQstatus(c->pg) != CONNECTION_OK ||
        PQtransactionStatus(c->pg) != PQTRANS_IDLE ||
        (p->max_lifetime_ns > 0 && now_ns - c->opened_ns >= p->max_lifetime_ns)) {
        pgpool_disconnect(p, c);
    }
    c->released_ns = now_ns;
    metrics_gauge_add(METRIC_DB_POOL_CONNS, metrics_db_conns_series(p->role, METRICS_DB_IN_USE),
                      -1);
    pgpool_put(p, c);
}
