/*
 * rcache.h — an optional Redis read-through cache of stored idempotent responses.
 *
 * The database stays the source of truth: the cache only saves it a lookup. A record is stored
 * under "ledgerd:idem:" + the hex SHA-256 of (principal, NUL, key), in a versioned binary
 * encoding, with a Redis expiry at the record's own expires_at_ms. A value that does not decode
 * is treated as a miss, never trusted.
 *
 * Redis is reached either directly (a redis:// URL) or through Redis Sentinel, which names the
 * current master: after a failover the cache asks the Sentinels again and follows the new master
 * on its own. Each thread gets its own connection (opened on first use, replaced after an
 * error), and every call is bounded by the configured timeout. A circuit breaker stops asking a
 * Redis that keeps failing: closed -> open after breaker_failures consecutive failures (every
 * call then answers "ask the database" at once, without touching the network) -> half_open after
 * breaker_open_ms, when exactly one call probes Redis: its success closes the breaker, its
 * failure opens it again.
 *
 * Metrics: ledgerd_cache_lookups_total{result}, ledgerd_cache_writes_total{result},
 * ledgerd_cache_breaker_state{state} and ledgerd_cache_breaker_transitions_total{state}.
 * A lookup sent to Redis that fails (a timeout, a broken connection, an error reply) is "error";
 * one never sent, because the breaker did not let it through or no connection could be opened,
 * is "bypassed". Both count as failures for the breaker.
 *
 * The process must ignore SIGPIPE (ledgerd serve does): a write to a connection Redis has
 * closed would otherwise kill it.
 */
#ifndef LEDGERD_IDEM_RCACHE_H
#define LEDGERD_IDEM_RCACHE_H

#include <stdint.h>

#include "core/buf.h"
#include "core/limits.h"
#include "obs/metrics.h"
#include "store/store.h"

/* The largest record the cache holds; rcache_put counts a bigger one as a failed write, and a
 * cached value claiming more is refused unread. A stored Location is a route prefix and a
 * resource id ("/v1/transfers/<id>"); a stored body is never bigger than the largest request
 * body ledgerd accepts (the batch response echoes at most the batch). */
#define RCACHE_LOCATION_LEN_MAX (64 + LIMIT_ID_LEN_MAX)
#define RCACHE_BODY_BYTES_MAX ((size_t)LIMIT_BODY_BYTES_CEILING)

struct rcache_config {
    const char *url;       /* redis://[:password@]host:port[/db] or NULL when sentinels are used */
    const char *sentinels; /* "host:port,host:port,..." or NULL */
    const char *master_name;   /* Sentinel master name (needed with sentinels) */
    const char *password;      /* NULL: none or from the URL (AUTH); applies to the data nodes */
    uint32_t timeout_ms;       /* connect and command timeout (e.g. 50) */
    uint32_t breaker_failures; /* consecutive failures that open the breaker (e.g. 5) */
    uint32_t breaker_open_ms;  /* how long it stays open before half-open (e.g. 1000) */
};

struct rcache;

/* Creates a cache from cfg (copied: cfg's strings need not outlive the call). Exactly one of
 * url and sentinels is set; with sentinels, master_name too. The URL may also carry a user
 * ("redis://user:password@host") and an IPv6 host in brackets; the port defaults to 6379.
 * Only parses: Redis need not be up, nothing is connected. timeout_ms, breaker_failures and
 * breaker_open_ms must not be 0. Sets the breaker state metric to closed.
 * Returns 0; -EINVAL for a bad configuration (one line naming the reason, never a password, is
 * appended to err); -ENOMEM. */
int rcache_new(const struct rcache_config *cfg, struct rcache **out, struct buf *err);

/* Closes every thread's connection and frees the cache; NULL is ignored. No other thread may be
 * using the cache or exiting while it is freed. Sets the breaker state metric back to 0. */
void rcache_free(struct rcache *c);

/* Looks up the record of (principal, key): principal is 1..LIMIT_PRINCIPAL_LEN_MAX bytes and
 * key 1..LIMIT_IDEMPOTENCY_KEY_LEN_MAX bytes, NUL-terminated.
 * Returns 0 on a hit after calling fn with the record exactly as stored (its pointers are valid
 * only during the call; a non-zero return of fn is returned instead of 0); -ENOENT on a miss
 * (no value, a value that does not decode, or a record whose expires_at_ms <= now_ms);
 * -EAGAIN when the cache was bypassed or failed: ask the database.
 * Counts ledgerd_cache_lookups_total. Never blocks for much longer than timeout_ms (twice that
 * when the connection has to be opened again, more only while the Sentinels are asked).
 * Thread-safe. */
int rcache_get(struct rcache *c, const char *principal, const char *key, int64_t now_ms,
               store_idem_fn fn, void *ctx);

/* Stores r for (principal, key) until r->expires_at_ms (Redis PX = expires_at_ms - now_ms);
 * a record already expired at now_ms is not stored. A failure (Redis down, breaker open, a
 * record too big to cache) is only counted in ledgerd_cache_writes_total. Thread-safe; bounded
 * like rcache_get. */
void rcache_put(struct rcache *c, const char *principal, const char *key,
                const struct store_idem_record *r, int64_t now_ms);

/* The breaker's current state. Thread-safe. */
enum metrics_breaker_state rcache_breaker_state(const struct rcache *c);

/* The value format, exposed for the tests and the fuzz target: a version byte, the request
 * digest, status (2 bytes), expires_at_ms (8), the location's length (2) and bytes, the body's
 * length (4) and bytes, integers big-endian. rcache_value_encode allocates *out (the caller
 * frees it): 0, -EMSGSIZE when r is too big to cache, -EINVAL when its status does not fit,
 * -ENOMEM. rcache_value_decode takes untrusted bytes: NULL when v is a well-formed value (r
 * then points into v and loc), else why it is refused. */
int rcache_value_encode(const struct store_idem_record *r, uint8_t **out, size_t *len_out);
const char *rcache_value_decode(const uint8_t *v, size_t len, struct store_idem_record *r,
                                char loc[RCACHE_LOCATION_LEN_MAX + 1]);

#endif
