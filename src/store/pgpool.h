/*
 * pgpool.h — a fixed-size pool of libpq connections to one PostgreSQL database, for one role
 * (the commit workers' writers or the readers).
 *
 * Connections are made lazily, on the first acquire that finds no idle one. An acquire waits
 * for a free slot up to the acquire timeout (-EBUSY after it). A connection is checked before it
 * is handed out: one idle for more than PGPOOL_HEALTH_IDLE_MS runs a trivial query, one older
 * than the maximum lifetime is closed, one the server closed is replaced. When connecting fails,
 * further attempts wait an exponential backoff with jitter; an acquire that needs a new
 * connection during the backoff fails at once with -EIO, so callers answer quickly (503) instead
 * of piling up behind a database that is down.
 *
 * Each pool counts itself in ledgerd's metrics under its role: the configured size, the
 * connections open, the connections checked out, every acquire's wait and every acquire
 * timeout. Thread-safe; a connection is used by one thread at a time, the one that acquired it.
 */
#ifndef LEDGERD_STORE_PGPOOL_H
#define LEDGERD_STORE_PGPOOL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/limits.h"

#include "obs/metrics.h"

/* A connection idle for longer than this is checked with a query before it is handed out. */
#define PGPOOL_HEALTH_IDLE_MS 1000
/* Reconnect backoff: the first wait after a failed connect, doubling up to the cap. */
#define PGPOOL_BACKOFF_INITIAL_MS 50
#define PGPOOL_BACKOFF_MAX_MS 5000
/* Seconds libpq waits for the server to answer a connect. */
#define PGPOOL_CONNECT_TIMEOUT_SECONDS 2
/* The most connections one pool may hold (a PostgreSQL server allows 100 by default). */
#define PGPOOL_SIZE_MAX LIMIT_DB_POOL_SIZE_MAX

struct pgpool_options {
    const char *conninfo; /* a libpq URL (postgresql://...); copied */
    const char *password; /* NULL: from the URL or libpq's own sources; copied */
    enum metrics_db_role role;
    uint32_t size;                 /* 1..PGPOOL_SIZE_MAX connections */
    uint32_t acquire_timeout_ms;   /* wait for a free connection */
    uint32_t max_lifetime_seconds; /* a connection older than this is replaced */
    uint32_t statement_timeout_ms; /* statement_timeout and lock_timeout of each session */
};

/* One pooled connection, valid from pgpool_acquire to pgpool_release. */
struct pgpool_conn {
    PGconn *pg; /* connected (CONNECTION_OK) when handed out */
    /* The user's bitmap of statements prepared on this connection: zeroed whenever the pool
     * makes a new server connection behind it, so that statements are prepared again. */
    uint64_t prepared;
    uint32_t index; /* 0..size-1, stable: lets the user keep state per slot */
    /* Set by the user when the session failed in a way that leaves it unusable (the
     * connection was lost): pgpool_release then closes it. Cleared on each new connection. */
    bool failed;
    /* The pool's own bookkeeping. */
    bool in_use;
    int64_t opened_ns;   /* monotonic */
    int64_t released_ns; /* monotonic, last release */
};

struct pgpool;

/* Creates a pool (no connection is made yet). Returns 0, -EINVAL for options out of range,
 * -ENOMEM. */
int pgpool_new(const struct pgpool_options *o, struct pgpool **out);
/* Closes every connection; none may be checked out. NULL is a no-op. */
void pgpool_free(struct pgpool *p);

/* Checks out a healthy connection for the calling thread. Returns 0 and *out; -EBUSY when no
 * slot came free within the acquire timeout; -EIO when a new connection was needed and could
 * not be made (or the reconnect backoff is running). */
int pgpool_acquire(struct pgpool *p, struct pgpool_conn **out);
/* Gives c back. broken: its session cannot be trusted (a lost connection, a failed query in an
 * unknown state): it is closed and the slot reconnects on a later acquire. A connection left
 * inside a transaction, in a bad state or past its lifetime is closed too. */
void pgpool_release(struct pgpool *p, struct pgpool_conn *c, bool broken);

/* The configured size. */
uint32_t pgpool_size(const struct pgpool *p);

#endif
