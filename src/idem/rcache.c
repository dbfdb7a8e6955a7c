/*
 * rcache.c — the Redis idempotency cache: configuration, value encoding, per-thread hiredis
 * connections, master resolution through Sentinel, and the circuit breaker.
 *
 * Layers, top to bottom: the public calls (rcache_get, rcache_put) admit themselves through the
 * breaker, take the calling thread's connection (opening it, and asking the Sentinels for the
 * master first when needed), run one command, and report success or failure to the breaker.
 * Shared state is small and locked briefly: the breaker (a mutex, never held across I/O), the
 * resolved master address (a mutex held while the Sentinels are asked, which other callers wait
 * for at most one timeout before doing without the cache) and the list of per-thread
 * connections (touched only when a thread opens its first connection, exits, or the cache is
 * freed).
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "core/assert.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/limits.h"
#include "core/sha256.h"
#include "idem/rcache.h"
#include "obs/log.h"
#include "obs/metrics.h"

/* ---------------------------------------------------------------------------------------
 * Bounds of what is configured and of what a cached value may hold
 * ------------------------------------------------------------------------------------- */

/* A host name: RFC 1035 names are at most 253 characters; an IPv6 literal is at most 45. */
#define RCACHE_HOST_LEN_MAX 253
/* Sentinel deployments run 3 or 5 Sentinels; a longer list is a configuration mistake. */
#define RCACHE_SENTINELS_MAX 16
/* A Sentinel master name, a user and a password, as given in the configuration. */
#define RCACHE_NAME_LEN_MAX 128
#define RCACHE_PASSWORD_LEN_MAX 1024
/* Error messages kept for the breaker's log line. */
#define RCACHE_ERROR_LEN_MAX 320

#define RCACHE_KEY_PREFIX "ledgerd:idem:"
#define RCACHE_KEY_LEN (sizeof(RCACHE_KEY_PREFIX) - 1 + 2 * (size_t)SHA256_BYTES)

/* The value: version, digest, status (u16), expires_at_ms (i64), location length (u16) and
 * bytes, body length (u32) and bytes; integers big-endian. A new layout takes a new version. */
#define RCACHE_VALUE_VERSION 1
#define RCACHE_VALUE_HEADER_BYTES (1 + SHA256_BYTES + 2 + 8 + 2 + 4)
_Static_assert(RCACHE_LOCATION_LEN_MAX <= UINT16_MAX, "a location length fits its field");
_Static_assert(RCACHE_BODY_BYTES_MAX <= UINT32_MAX, "a body length fits its field");

struct rcache_addr {
    char host[RCACHE_HOST_LEN_MAX + 1];
    int port;
};

/* One thread's connection. Listed in the cache so rcache_free can close those of every
 * thread; freed by the thread-specific data destructor when its thread exits first. */
struct rcache_slot {
    struct rcache *cache;
    redisContext *rc;    /* NULL until connected, and after an error */
    uint64_t master_gen; /* the master resolution rc was opened for */
    struct rcache_slot *prev;
    struct rcache_slot *next;
};

enum rcache_admit { RCACHE_ADMIT, RCACHE_PROBE, RCACHE_BYPASS };

struct rcache {
    /* Configuration, read-only after rcache_new. */
    bool use_sentinels;
    struct rcache_addr direct;
    struct rcache_addr sentinels[RCACHE_SENTINELS_MAX];
    size_t sentinels_count;
    char master_name[RCACHE_NAME_LEN_MAX + 1];
    char user[RCACHE_NAME_LEN_MAX + 1];         /* "" when none */
    char password[RCACHE_PASSWORD_LEN_MAX + 1]; /* "" when none */
    unsigned long db;
    struct timeval timeout;
    uint32_t breaker_failures;
    int64_t breaker_open_ms;

    /* The master as the Sentinels last named it. master_gen changes with every resolution, so
     * connections opened for an older one are replaced; master_stale asks for a resolution. */
    pthread_mutex_t master_mu;
    struct rcache_addr master;
    bool master_known;
    _Atomic uint64_t master_gen;
    atomic_bool master_stale;

    /* The breaker. state_now mirrors state for lock-free readers. */
    pthread_mutex_t breaker_mu;
    enum metrics_breaker_state state;
    uint32_t failures;
    int64_t opened_at_mono_ms;
    _Atomic int state_now;

    /* Per-thread connections. */
    pthread_key_t slot_key;
    pthread_mutex_t slots_mu;
    struct rcache_slot *slots;

    atomic_bool bad_value_logged;
};

static int64_t rcache_mono_ms(void)
{
    return clock_mono_ns() / 1000000;
}

/* ---------------------------------------------------------------------------------------
 * Configuration parsing
 * ------------------------------------------------------------------------------------- */

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

/* Copies s[0..len) into out (cap bytes with the NUL) decoding %XX escapes (RFC 3986 §2.1).
 * -EINVAL for a bad escape, a NUL, or a result that does not fit. */
static int percent_decode(const char *s, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int ch = (unsigned char)s[i];
        if (ch == '%') {
            if (i + 2 >= len) {
                return -EINVAL;
            }
            int hi = hex_value(s[i + 1]);
            int lo = hex_value(s[i + 2]);
            if (hi < 0 || lo < 0) {
                return -EINVAL;
            }
            ch = hi * 16 + lo;
            i += 2;
        }
        if (ch == 0 || o + 1 >= cap) {
            return -EINVAL;
        }
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return 0;
}

/* Parses a decimal number of s[0..len) in 0..max. */
static int parse_number(const char *s, size_t len, unsigned long max, unsigned long *out)
{
    if (len == 0 || len > 10) {
        return -EINVAL;
    }
    unsigned long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -EINVAL;
        }
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > max) {
        return -EINVAL;
    }
    *out = v;
    return 0;
}

/* Parses "host:port", "[v6]:port", or, when default_port > 0, the same without ":port". */
static int parse_host_port(const char *s, size_t len, int default_port, struct rcache_addr *out)
{
    const char *host = s;
    size_t host_len;
    const char *rest;
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL) {
            return -EINVAL;
        }
        host = s + 1;
        host_len = (size_t)(close - host);
        rest = close + 1;
    } else {
        const char *colon = memchr(s, ':', len);
        host_len = colon != NULL ? (size_t)(colon - s) : len;
        rest = s + host_len;
    }
    size_t rest_len = len - (size_t)(rest - s);
    if (host_len == 0 || host_len > RCACHE_HOST_LEN_MAX || memchr(host, '@', host_len) != NULL ||
        memchr(host, '/', host_len) != NULL) {
        return -EINVAL;
    }
    unsigned long port = (unsigned long)default_port;
    if (rest_len > 0) {
        if (rest[0] != ':' || parse_number(rest + 1, rest_len - 1, 65535, &port) != 0) {
            return -EINVAL;
        }
    }
    if (port == 0) {
        return -EINVAL;
    }
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    out->port = (int)port;
    return 0;
}

/* redis://[[user]:password@]host[:port][/db] */
static int parse_url(struct rcache *c, const char *url, struct buf *err)
{
    static const char scheme[] = "redis://";
    size_t scheme_len = sizeof(scheme) - 1;
    if (strncmp(url, scheme, scheme_len) != 0) {
        buf_appendf(err, "LEDGERD_REDIS_URL: the scheme must be redis://");
        return -EINVAL;
    }
    const char *auth = url + scheme_len;
    size_t auth_len = strcspn(auth, "/?#");
    const char *path = auth + auth_len;
    const char *at = NULL;
    for (size_t i = 0; i < auth_len; i++) {
        if (auth[i] == '@') {
            at = auth + i;
        }
    }
    if (at != NULL) {
        size_t info_len = (size_t)(at - auth);
        const char *colon = memchr(auth, ':', info_len);
        if (colon == NULL) {
            buf_appendf(err, "LEDGERD_REDIS_URL: the user information must be [user]:password");
            return -EINVAL;
        }
        size_t user_len = (size_t)(colon - auth);
        if (percent_decode(auth, user_len, c->user, sizeof(c->user)) != 0 ||
            percent_decode(colon + 1, info_len - user_len - 1, c->password, sizeof(c->password)) !=
                0) {
            buf_appendf(err, "LEDGERD_REDIS_URL: bad or too long user or password");
            return -EINVAL;
        }
        auth_len -= info_len + 1;
        auth = at + 1;
    }
    if (parse_host_port(auth, auth_len, 6379, &c->direct) != 0) {
        buf_appendf(err, "LEDGERD_REDIS_URL: bad host or port");
        return -EINVAL;
    }
    if (path[0] == '?' || path[0] == '#') {
        buf_appendf(err, "LEDGERD_REDIS_URL: query and fragment are not supported");
        return -EINVAL;
    }
    if (path[0] == '/' && path[1] != '\0') {
        if (parse_number(path + 1, strlen(path + 1), INT32_MAX, &c->db) != 0) {
            buf_appendf(err, "LEDGERD_REDIS_URL: the database must be a number");
            return -EINVAL;
        }
    }
    return 0;
}

static int parse_sentinels(struct rcache *c, const char *list, struct buf *err)
{
    const char *p = list;
    for (;;) {
        size_t len = strcspn(p, ",");
        if (c->sentinels_count == RCACHE_SENTINELS_MAX) {
            buf_appendf(err, "LEDGERD_REDIS_SENTINELS: more than %d", RCACHE_SENTINELS_MAX);
            return -EINVAL;
        }
        if (parse_host_port(p, len, 0, &c->sentinels[c->sentinels_count]) != 0) {
            buf_appendf(err, "LEDGERD_REDIS_SENTINELS: \"%.*s\" is not host:port",
                        (int)(len > 64 ? 64 : len), p);
            return -EINVAL;
        }
        c->sentinels_count++;
        if (p[len] == '\0') {
            return 0;
        }
        p += len + 1;
    }
}

static int parse_config(struct rcache *c, const struct rcache_config *cfg, struct buf *err)
{
    if ((cfg->url == NULL) == (cfg->sentinels == NULL)) {
        buf_appendf(err, "redis cache: set either LEDGERD_REDIS_URL or LEDGERD_REDIS_SENTINELS");
        return -EINVAL;
    }
    if (cfg->timeout_ms == 0 || cfg->breaker_failures == 0 || cfg->breaker_open_ms == 0) {
        buf_appendf(err, "redis cache: timeout, breaker failures and breaker open time must "
                         "not be 0");
        return -EINVAL;
    }
    int rc =
        cfg->url != NULL ? parse_url(c, cfg->url, err) : parse_sentinels(c, cfg->sentinels, err);
    if (rc != 0) {
        return rc;
    }
    if (cfg->sentinels != NULL) {
        size_t len = cfg->master_name != NULL ? strlen(cfg->master_name) : 0;
        if (len == 0 || len > RCACHE_NAME_LEN_MAX) {
            buf_appendf(err, "LEDGERD_REDIS_MASTER_NAME: a master name of 1..%d bytes is needed",
                        RCACHE_NAME_LEN_MAX);
            return -EINVAL;
        }
        memcpy(c->master_name, cfg->master_name, len + 1);
        c->use_sentinels = true;
    }
    if (cfg->password != NULL) {
        size_t len = strlen(cfg->password);
        if (len > RCACHE_PASSWORD_LEN_MAX) {
            buf_appendf(err, "redis cache: the password is longer than %d bytes",
                        RCACHE_PASSWORD_LEN_MAX);
            return -EINVAL;
        }
        memcpy(c->password, cfg->password, len + 1);
    }
    c->timeout.tv_sec = (time_t)(cfg->timeout_ms / 1000);
    c->timeout.tv_usec = (suseconds_t)((cfg->timeout_ms % 1000) * 1000);
    c->breaker_failures = cfg->breaker_failures;
    c->breaker_open_ms = (int64_t)cfg->breaker_open_ms;
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Keys and values
 * ------------------------------------------------------------------------------------- */

/* "ledgerd:idem:" + hex SHA-256 of principal NUL key: fixed length, and no two (principal, key)
 * pairs share a preimage since a principal holds no NUL. */
static int key_make(const char *principal, const char *key, char out[RCACHE_KEY_LEN + 1])
{
    struct sha256 h;
    uint8_t digest[SHA256_BYTES];
    int rc = sha256_init(&h);
    if (rc != 0) {
        return rc;
    }
    (void)sha256_update(&h, principal, strlen(principal) + 1);
    (void)sha256_update(&h, key, strlen(key));
    rc = sha256_final(&h, digest);
    if (rc != 0) {
        return rc;
    }
    memcpy(out, RCACHE_KEY_PREFIX, sizeof(RCACHE_KEY_PREFIX) - 1);
    sha256_hex(digest, out + sizeof(RCACHE_KEY_PREFIX) - 1);
    ASSERT(strlen(out) == RCACHE_KEY_LEN);
    return 0;
}

static void put_be(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    }
}

static uint64_t get_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* Encodes r into a new buffer (the caller frees it). -EMSGSIZE when r is too big to cache,
 * -EINVAL when its status does not fit, -ENOMEM. */
int rcache_value_encode(const struct store_idem_record *r, uint8_t **out, size_t *len_out)
{
    size_t loc_len = strlen(r->location);
    if (loc_len > RCACHE_LOCATION_LEN_MAX || r->body_len > RCACHE_BODY_BYTES_MAX) {
        return -EMSGSIZE;
    }
    if (r->status < 0 || r->status > UINT16_MAX) {
        return -EINVAL;
    }
    size_t len = RCACHE_VALUE_HEADER_BYTES + loc_len + r->body_len;
    uint8_t *v = malloc(len);
    if (v == NULL) {
        return -ENOMEM;
    }
    uint8_t *p = v;
    *p++ = RCACHE_VALUE_VERSION;
    memcpy(p, r->request_digest, SHA256_BYTES);
    p += SHA256_BYTES;
    put_be(p, (uint64_t)r->status, 2);
    p += 2;
    put_be(p, (uint64_t)r->expires_at_ms, 8);
    p += 8;
    put_be(p, loc_len, 2);
    p += 2;
    memcpy(p, r->location, loc_len);
    p += loc_len;
    put_be(p, r->body_len, 4);
    p += 4;
    if (r->body_len > 0) {
        memcpy(p, r->body, r->body_len);
    }
    p += r->body_len;
    ASSERT((size_t)(p - v) == len);
    *out = v;
    *len_out = len;
    return 0;
}

/* Decodes a value read from Redis — untrusted bytes — into r, the location copied into loc
 * (NUL-terminated) and the body pointing into v. Returns NULL, or why the value is refused. */
const char *rcache_value_decode(const uint8_t *v, size_t len, struct store_idem_record *r,
                                char loc[RCACHE_LOCATION_LEN_MAX + 1])
{
    if (len < RCACHE_VALUE_HEADER_BYTES) {
        return "shorter than its header";
    }
    if (v[0] != RCACHE_VALUE_VERSION) {
        return "unknown version";
    }
    const uint8_t *p = v + 1;
    memcpy(r->request_digest, p, SHA256_BYTES);
    p += SHA256_BYTES;
    r->status = (int)get_be(p, 2);
    p += 2;
    r->expires_at_ms = (int64_t)get_be(p, 8);
    p += 8;
    size_t loc_len = (size_t)get_be(p, 2);
    p += 2;
    if (loc_len > RCACHE_LOCATION_LEN_MAX) {
        return "location too long";
    }
    size_t left = len - (size_t)(p - v);
    if (loc_len + 4 > left) {
        return "truncated location";
    }
    if (memchr(p, '\0', loc_len) != NULL) {
        return "NUL in location";
    }
    memcpy(loc, p, loc_len);
    loc[loc_len] = '\0';
    p += loc_len;
    size_t body_len = (size_t)get_be(p, 4);
    p += 4;
    left = len - (size_t)(p - v);
    if (body_len > RCACHE_BODY_BYTES_MAX) {
        return "body too long";
    }
    if (body_len != left) {
        return body_len > left ? "truncated body" : "trailing bytes";
    }
    if (r->status < 100 || r->status > 599) {
        return "status out of range";
    }
    r->location = loc;
    r->body = (const char *)p;
    r->body_len = body_len;
    return NULL;
}

/* ---------------------------------------------------------------------------------------
 * The circuit breaker
 * ------------------------------------------------------------------------------------- */

/* Moves to state `to`; breaker_mu held. The gauge keeps exactly one state at 1. */
static void breaker_move(struct rcache *c, enum metrics_breaker_state to)
{
    ASSERT(c->state != to);
    metrics_gauge_add(METRIC_CACHE_BREAKER_STATE, (size_t)c->state, -1);
    metrics_gauge_add(METRIC_CACHE_BREAKER_STATE, (size_t)to, 1);
    metrics_add(METRIC_CACHE_BREAKER_TRANSITIONS, (size_t)to, 1);
    c->state = to;
    atomic_store(&c->state_now, (int)to);
}

/* Lets a call through (closed), makes it the one probe (open for breaker_open_ms: half_open),
 * or bypasses it (open, or half_open with its probe under way). */
static enum rcache_admit breaker_admit(struct rcache *c)
{
    if (atomic_load_explicit(&c->state_now, memory_order_relaxed) == METRICS_BREAKER_CLOSED) {
        return RCACHE_ADMIT; /* the common case, without the lock */
    }
    enum rcache_admit a = RCACHE_BYPASS;
    bool half_opened = false;
    int64_t now = rcache_mono_ms();
    pthread_mutex_lock(&c->breaker_mu);
    if (c->state == METRICS_BREAKER_CLOSED) {
        a = RCACHE_ADMIT;
    } else if (c->state == METRICS_BREAKER_OPEN &&
               now - c->opened_at_mono_ms >= c->breaker_open_ms) {
        breaker_move(c, METRICS_BREAKER_HALF_OPEN);
        a = RCACHE_PROBE;
        half_opened = true;
    }
    pthread_mutex_unlock(&c->breaker_mu);
    if (half_opened) {
        log_msgf(CONFIG_LOG_INFO, NULL, "redis cache: circuit breaker half-open, probing Redis");
    }
    return a;
}

/* Reports how an admitted call went. Only the probe changes an open or half-open breaker: calls
 * let through while it was closed and finishing later count for nothing then. */
static void breaker_report(struct rcache *c, enum rcache_admit a, bool ok, const char *why)
{
    ASSERT(a != RCACHE_BYPASS);
    int moved = -1;
    uint32_t failures = 0;
    pthread_mutex_lock(&c->breaker_mu);
    if (a == RCACHE_PROBE) {
        ASSERT(c->state == METRICS_BREAKER_HALF_OPEN);
        c->failures = 0;
        if (ok) {
            breaker_move(c, METRICS_BREAKER_CLOSED);
        } else {
            breaker_move(c, METRICS_BREAKER_OPEN);
            c->opened_at_mono_ms = rcache_mono_ms();
        }
        moved = (int)c->state;
    } else if (c->state == METRICS_BREAKER_CLOSED) {
        if (ok) {
            c->failures = 0;
        } else if (++c->failures >= c->breaker_failures) {
            failures = c->failures;
            c->failures = 0;
            breaker_move(c, METRICS_BREAKER_OPEN);
            c->opened_at_mono_ms = rcache_mono_ms();
            moved = (int)c->state;
        }
    }
    pthread_mutex_unlock(&c->breaker_mu);
    if (moved == METRICS_BREAKER_CLOSED) {
        log_msgf(CONFIG_LOG_INFO, NULL, "redis cache: circuit breaker closed, Redis answers again");
    } else if (moved == METRICS_BREAKER_OPEN && a == RCACHE_PROBE) {
        log_msgf(CONFIG_LOG_WARN, NULL,
                 "redis cache: circuit breaker open again, the probe failed (%s); lookups go "
                 "to the database",
                 why != NULL ? why : "error");
    } else if (moved == METRICS_BREAKER_OPEN) {
        log_msgf(CONFIG_LOG_WARN, NULL,
                 "redis cache: circuit breaker open after %u consecutive failures (last: %s); "
                 "lookups go to the database",
                 failures, why != NULL ? why : "error");
    }
}

enum metrics_breaker_state rcache_breaker_state(const struct rcache *c)
{
    ASSERT(c != NULL);
    int s = atomic_load(&c->state_now);
    ASSERT(s >= METRICS_BREAKER_CLOSED && s <= METRICS_BREAKER_HALF_OPEN);
    return (enum metrics_breaker_state)s;
}

/* ---------------------------------------------------------------------------------------
 * Connections
 * ------------------------------------------------------------------------------------- */

static void slot_close(struct rcache_slot *s)
{
    if (s->rc != NULL) {
        redisFree(s->rc);
        s->rc = NULL;
    }
}

/* Thread exit: the thread's slot leaves the list and is freed. */
static void slot_destroy(void *p)
{
    struct rcache_slot *s = p;
    struct rcache *c = s->cache;
    pthread_mutex_lock(&c->slots_mu);
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        c->slots = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    pthread_mutex_unlock(&c->slots_mu);
    slot_close(s);
    free(s);
}

static struct rcache_slot *slot_get(struct rcache *c)
{
    struct rcache_slot *s = pthread_getspecific(c->slot_key);
    if (s != NULL) {
        return s;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->cache = c;
    if (pthread_setspecific(c->slot_key, s) != 0) {
        free(s);
        return NULL;
    }
    pthread_mutex_lock(&c->slots_mu);
    s->next = c->slots;
    if (c->slots != NULL) {
        c->slots->prev = s;
    }
    c->slots = s;
    pthread_mutex_unlock(&c->slots_mu);
    return s;
}

/* Runs one command (binary-safe arguments); NULL when the connection failed (rc->err and
 * rc->errstr say how; the context is unusable from then on). */
static redisReply *command_argv(redisContext *rc, int argc, const char **argv, const size_t *lens)
{
    return redisCommandArgv(rc, argc, argv, lens);
}

/* Opens a connection to addr with the timeouts set. why receives the reason on failure. */
static redisContext *connect_addr(const struct rcache *c, const struct rcache_addr *addr,
                                  char why[RCACHE_ERROR_LEN_MAX])
{
    redisContext *rc = redisConnectWithTimeout(addr->host, addr->port, c->timeout);
    if (rc == NULL) {
        snprintf(why, RCACHE_ERROR_LEN_MAX, "connect %.80s:%d: out of memory", addr->host,
                 addr->port);
        return NULL;
    }
    if (rc->err != 0 || redisSetTimeout(rc, c->timeout) != REDIS_OK) {
        snprintf(why, RCACHE_ERROR_LEN_MAX, "connect %.80s:%d: %.100s", addr->host, addr->port,
                 rc->err != 0 ? rc->errstr : "cannot set the timeout");
        redisFree(rc);
        return NULL;
    }
    return rc;
}

/* Runs a command whose reply must be a status "OK" (AUTH, SELECT). */
static int command_ok(redisContext *rc, int argc, const char **argv, const size_t *lens,
                      char why[RCACHE_ERROR_LEN_MAX])
{
    redisReply *r = command_argv(rc, argc, argv, lens);
    if (r == NULL) {
        snprintf(why, RCACHE_ERROR_LEN_MAX, "%s: %.100s", argv[0], rc->errstr);
        return -EIO;
    }
    int result = 0;
    if (r->type != REDIS_REPLY_STATUS) {
        snprintf(why, RCACHE_ERROR_LEN_MAX, "%s: %.100s", argv[0],
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        result = -EIO;
    }
    freeReplyObject(r);
    return result;
}

/* Asks one Sentinel for the master's address. */
static int sentinel_ask(const struct rcache *c, const struct rcache_addr *sentinel,
                        struct rcache_addr *out, char why[RCACHE_ERROR_LEN_MAX])
{
    redisContext *rc = connect_addr(c, sentinel, why);
    if (rc == NULL) {
        return -EIO;
    }
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name", c->master_name};
    size_t lens[] = {8, 23, strlen(c->master_name)};
    redisReply *r = command_argv(rc, 3, argv, lens);
    int result = -EIO;
    if (r == NULL) {
        snprintf(why, RCACHE_ERROR_LEN_MAX, "sentinel %.80s:%d: %.100s", sentinel->host,
                 sentinel->port, rc->errstr);
        goto out_free_context;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING) {
        snprintf(why, RCACHE_ERROR_LEN_MAX, "sentinel %.80s:%d does not know master %.64s",
                 sentinel->host, sentinel->port, c->master_name);
        goto out_free_reply;
    }
    size_t host_len = r->element[0]->len;
    unsigned long port = 0;
    if (host_len == 0 || host_len > RCACHE_HOST_LEN_MAX ||
        memchr(r->element[0]->str, '\0', host_len) != NULL ||
        parse_number(r->element[1]->str, r->element[1]->len, 65535, &port) != 0 || port == 0) {
        snprintf(why, RCACHE_ERROR_LEN_MAX, "sentinel %.80s:%d: malformed master address",
                 sentinel->host, sentinel->port);
        goto out_free_reply;
    }
    memcpy(out->host, r->element[0]->str, host_len);
    out->host[host_len] = '\0';
    out->port = (int)port;
    result = 0;
out_free_reply:
    freeReplyObject(r);
out_free_context:
    redisFree(rc);
    return result;
}

/* Asks the Sentinels in turn for the master. When another thread is doing so, waits for it at
 * most one timeout and takes its answer, or gives up (-EBUSY: this call does without the cache
 * and does not count as a failure). On success the address is published with a new
 * generation. */
static int master_resolve(struct rcache *c, char why[RCACHE_ERROR_LEN_MAX])
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += c->timeout.tv_sec;
    deadline.tv_nsec += c->timeout.tv_usec * 1000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    if (pthread_mutex_timedlock(&c->master_mu, &deadline) != 0) {
        snprintf(why, RCACHE_ERROR_LEN_MAX, "the Redis master is being resolved");
        return -EBUSY;
    }
    int result = -EIO;
    if (!atomic_load(&c->master_stale)) {
        result = 0; /* resolved by another thread meanwhile */
        goto out_unlock;
    }
    for (size_t i = 0; i < c->sentinels_count; i++) {
        struct rcache_addr found;
        if (sentinel_ask(c, &c->sentinels[i], &found, why) == 0) {
            if (!c->master_known || strcmp(found.host, c->master.host) != 0 ||
                found.port != c->master.port) {
                log_msgf(CONFIG_LOG_INFO, NULL, "redis cache: Sentinel names master %s at %s:%d",
                         c->master_name, found.host, found.port);
            }
            c->master = found;
            c->master_known = true;
            atomic_store(&c->master_stale, false);
            atomic_fetch_add(&c->master_gen, 1);
            result = 0;
            break;
        }
    }
out_unlock:
    pthread_mutex_unlock(&c->master_mu);
    return result;
}

/* After a connection error: the connection is dropped and, with Sentinel, the master is asked
 * for again before the next connection. */
static void conn_failed(struct rcache *c, struct rcache_slot *s)
{
    slot_close(s);
    if (c->use_sentinels) {
        atomic_store(&c->master_stale, true);
    }
}

/* Checks that a Sentinel-named node is the master: after a failover the old master comes back
 * as a replica. */
static int role_check(redisContext *rc, char why[RCACHE_ERROR_LEN_MAX])
{
    const char *argv[] = {"ROLE"};
    size_t lens[] = {4};
    redisReply *r = command_argv(rc, 1, argv, lens);
    if (r == NULL) {
        snprintf(why, RCACHE_ERROR_LEN_MAX, "ROLE: %.100s", rc->errstr);
        return -EIO;
    }
    int result = 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len != 6 ||
        memcmp(r->element[0]->str, "master", 6) != 0) {
        snprintf(why, RCACHE_ERROR_LEN_MAX, "the node Sentinel named is not a master");
        result = -EIO;
    }
    freeReplyObject(r);
    return result;
}

/* The calling thread's connection, opened (and the master resolved) when needed. Returns 0,
 * -EBUSY when another thread holds up the resolution (not a failure of Redis), -EIO. */
static int conn_get(struct rcache *c, struct rcache_slot *s, char why[RCACHE_ERROR_LEN_MAX])
{
    uint64_t gen = atomic_load(&c->master_gen);
    if (s->rc != NULL && s->master_gen == gen) {
        return 0;
    }
    slot_close(s);
    struct rcache_addr addr;
    if (c->use_sentinels) {
        if (atomic_load(&c->master_stale)) {
            int rc = master_resolve(c, why);
            if (rc != 0) {
                return rc;
            }
        }
        pthread_mutex_lock(&c->master_mu);
        addr = c->master;
        gen = atomic_load(&c->master_gen);
        bool known = c->master_known;
        pthread_mutex_unlock(&c->master_mu);
        if (!known) {
            snprintf(why, RCACHE_ERROR_LEN_MAX, "no Sentinel named the master");
            return -EIO;
        }
    } else {
        addr = c->direct;
    }
    redisContext *rc = connect_addr(c, &addr, why);
    if (rc == NULL) {
        goto out_failed;
    }
    if (c->password[0] != '\0') {
        /* AUTH [user] password: the user only when one is configured (Redis 6 ACLs). */
        const char *argv[] = {"AUTH", c->user, c->password};
        size_t lens[] = {4, strlen(c->user), strlen(c->password)};
        if (c->user[0] == '\0') {
            argv[1] = argv[2];
            lens[1] = lens[2];
        }
        if (command_ok(rc, c->user[0] != '\0' ? 3 : 2, argv, lens, why) != 0) {
            goto out_free_context;
        }
    }
    if (c->db != 0) {
        char db[16];
        int n = snprintf(db, sizeof(db), "%lu", c->db);
        const char *argv[] = {"SELECT", db};
        size_t lens[] = {6, (size_t)n};
        if (command_ok(rc, 2, argv, lens, why) != 0) {
            goto out_free_context;
        }
    }
    if (c->use_sentinels && role_check(rc, why) != 0) {
        goto out_free_context;
    }
    s->rc = rc;
    s->master_gen = gen;
    return 0;
out_free_context:
    redisFree(rc);
out_failed:
    conn_failed(c, s);
    return -EIO;
}

/* True for an error reply that says the node is not (or no longer) a usable master, or that
 * the connection is in a bad state: the connection is replaced and, with Sentinel, the master
 * asked for again. Every error reply but WRONGTYPE is treated so. */
static bool error_reply_is_node_failure(const redisReply *r)
{
    return !(r->len >= 9 && memcmp(r->str, "WRONGTYPE", 9) == 0);
}

/* ---------------------------------------------------------------------------------------
 * The public calls
 * ------------------------------------------------------------------------------------- */

/* conn_get for an admitted call, reporting a failure to the breaker. Waiting for another
 * thread's resolution is not Redis failing, unless this call is the probe, which must report. */
static int conn_open(struct rcache *c, struct rcache_slot *s, enum rcache_admit a,
                     char why[RCACHE_ERROR_LEN_MAX])
{
    int rc = conn_get(c, s, why);
    if (rc != 0 && (rc != -EBUSY || a == RCACHE_PROBE)) {
        breaker_report(c, a, false, why);
    }
    return rc;
}

static void log_bad_value(struct rcache *c, const char *why)
{
    bool was = atomic_exchange(&c->bad_value_logged, true);
    log_msgf(was ? CONFIG_LOG_DEBUG : CONFIG_LOG_WARN, NULL,
             "redis cache: a cached idempotency record does not decode (%s); treated as a miss%s",
             why, was ? "" : " (further ones are logged at debug level)");
}

static void args_check(const char *principal, const char *key)
{
    ASSERT(principal != NULL && key != NULL);
    size_t principal_len = strlen(principal);
    size_t key_len = strlen(key);
    ASSERT(principal_len >= 1 && principal_len <= LIMIT_PRINCIPAL_LEN_MAX);
    ASSERT(key_len >= 1 && key_len <= LIMIT_IDEMPOTENCY_KEY_LEN_MAX);
}

int rcache_get(struct rcache *c, const char *principal, const char *key, int64_t now_ms,
               store_idem_fn fn, void *ctx)
{
    ASSERT(c != NULL && fn != NULL);
    args_check(principal, key);
    char k[RCACHE_KEY_LEN + 1];
    if (key_make(principal, key, k) != 0) {
        metrics_add(METRIC_CACHE_LOOKUPS, METRICS_CACHE_BYPASSED, 1);
        return -EAGAIN;
    }
    enum rcache_admit a = breaker_admit(c);
    if (a == RCACHE_BYPASS) {
        metrics_add(METRIC_CACHE_LOOKUPS, METRICS_CACHE_BYPASSED, 1);
        return -EAGAIN;
    }
    char why[RCACHE_ERROR_LEN_MAX] = "out of memory";
    struct rcache_slot *s = slot_get(c);
    if (s == NULL) {
        breaker_report(c, a, false, why);
    }
    if (s == NULL || conn_open(c, s, a, why) != 0) {
        metrics_add(METRIC_CACHE_LOOKUPS, METRICS_CACHE_BYPASSED, 1);
        return -EAGAIN;
    }
    const char *argv[] = {"GET", k};
    size_t lens[] = {3, RCACHE_KEY_LEN};
    redisReply *r = command_argv(s->rc, 2, argv, lens);
    if (r == NULL) {
        snprintf(why, sizeof(why), "GET: %.100s", s->rc->errstr);
        conn_failed(c, s);
        breaker_report(c, a, false, why);
        metrics_add(METRIC_CACHE_LOOKUPS, METRICS_CACHE_ERROR, 1);
        return -EAGAIN;
    }
    int result = -ENOENT;
    if (r->type == REDIS_REPLY_ERROR && error_reply_is_node_failure(r)) {
        snprintf(why, sizeof(why), "GET: %.100s", r->str);
        freeReplyObject(r);
        conn_failed(c, s);
        breaker_report(c, a, false, why);
        metrics_add(METRIC_CACHE_LOOKUPS, METRICS_CACHE_ERROR, 1);
        return -EAGAIN;
    }
    breaker_report(c, a, true, NULL);
    if (r->type == REDIS_REPLY_STRING) {
        struct store_idem_record rec;
        char loc[RCACHE_LOCATION_LEN_MAX + 1];
        const char *bad = rcache_value_decode((const uint8_t *)r->str, r->len, &rec, loc);
        if (bad != NULL) {
            log_bad_value(c, bad);
        } else if (rec.expires_at_ms > now_ms) {
            metrics_add(METRIC_CACHE_LOOKUPS, METRICS_CACHE_HIT, 1);
            result = fn(ctx, &rec);
            freeReplyObject(r);
            return result;
        }
    } else if (r->type != REDIS_REPLY_NIL) {
        log_bad_value(c, r->type == REDIS_REPLY_ERROR ? "not a string" : "unexpected reply");
    }
    freeReplyObject(r);
    metrics_add(METRIC_CACHE_LOOKUPS, METRICS_CACHE_MISS, 1);
    return result;
}

void rcache_put(struct rcache *c, const char *principal, const char *key,
                const struct store_idem_record *r, int64_t now_ms)
{
    ASSERT(c != NULL && r != NULL && r->location != NULL);
    ASSERT(r->body != NULL || r->body_len == 0);
    args_check(principal, key);
    if (r->expires_at_ms <= now_ms) {
        return;
    }
    char k[RCACHE_KEY_LEN + 1];
    uint8_t *value = NULL;
    size_t value_len = 0;
    if (key_make(principal, key, k) != 0 || rcache_value_encode(r, &value, &value_len) != 0) {
        metrics_add(METRIC_CACHE_WRITES, METRICS_CACHE_WRITE_FAILED, 1);
        return;
    }
    enum rcache_admit a = breaker_admit(c);
    if (a == RCACHE_BYPASS) {
        metrics_add(METRIC_CACHE_WRITES, METRICS_CACHE_WRITE_FAILED, 1);
        goto out_free_value;
    }
    char why[RCACHE_ERROR_LEN_MAX] = "out of memory";
    struct rcache_slot *s = slot_get(c);
    if (s == NULL) {
        breaker_report(c, a, false, why);
    }
    if (s == NULL || conn_open(c, s, a, why) != 0) {
        metrics_add(METRIC_CACHE_WRITES, METRICS_CACHE_WRITE_FAILED, 1);
        goto out_free_value;
    }
    char px[24];
    int px_len = snprintf(px, sizeof(px), "%lld", (long long)(r->expires_at_ms - now_ms));
    const char *argv[] = {"SET", k, (const char *)value, "PX", px};
    size_t lens[] = {3, RCACHE_KEY_LEN, value_len, 2, (size_t)px_len};
    redisReply *reply = command_argv(s->rc, 5, argv, lens);
    if (reply == NULL) {
        snprintf(why, sizeof(why), "SET: %.100s", s->rc->errstr);
        conn_failed(c, s);
        breaker_report(c, a, false, why);
        metrics_add(METRIC_CACHE_WRITES, METRICS_CACHE_WRITE_FAILED, 1);
        goto out_free_value;
    }
    if (reply->type != REDIS_REPLY_STATUS) {
        /* READONLY: the node became a replica after a failover. */
        snprintf(why, sizeof(why), "SET: %.100s",
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        freeReplyObject(reply);
        conn_failed(c, s);
        breaker_report(c, a, false, why);
        metrics_add(METRIC_CACHE_WRITES, METRICS_CACHE_WRITE_FAILED, 1);
        goto out_free_value;
    }
    freeReplyObject(reply);
    breaker_report(c, a, true, NULL);
    metrics_add(METRIC_CACHE_WRITES, METRICS_CACHE_WRITE_OK, 1);
out_free_value:
    free(value);
}

/* ---------------------------------------------------------------------------------------
 * Life cycle
 * ------------------------------------------------------------------------------------- */

int rcache_new(const struct rcache_config *cfg, struct rcache **out, struct buf *err)
{
    ASSERT(cfg != NULL && out != NULL && err != NULL);
    *out = NULL;
    struct rcache *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return -ENOMEM;
    }
    int rc = parse_config(c, cfg, err);
    if (rc != 0) {
        goto out_free;
    }
    rc = -pthread_key_create(&c->slot_key, slot_destroy);
    if (rc != 0) {
        goto out_free;
    }
    pthread_mutex_init(&c->master_mu, NULL);
    pthread_mutex_init(&c->breaker_mu, NULL);
    pthread_mutex_init(&c->slots_mu, NULL);
    atomic_init(&c->master_gen, 1);
    atomic_init(&c->master_stale, true);
    atomic_init(&c->state_now, METRICS_BREAKER_CLOSED);
    atomic_init(&c->bad_value_logged, false);
    c->state = METRICS_BREAKER_CLOSED;
    metrics_gauge_add(METRIC_CACHE_BREAKER_STATE, METRICS_BREAKER_CLOSED, 1);
    if (cfg->url != NULL) {
        char shown[512];
        config_redact_url(cfg->url, shown, sizeof(shown));
        log_msgf(CONFIG_LOG_INFO, NULL,
                 "redis cache: %s, timeout %u ms, breaker %u failures / %u ms", shown,
                 cfg->timeout_ms, cfg->breaker_failures, cfg->breaker_open_ms);
    } else {
        log_msgf(CONFIG_LOG_INFO, NULL,
                 "redis cache: master %s through %zu Sentinels, timeout %u ms, breaker %u "
                 "failures / %u ms",
                 c->master_name, c->sentinels_count, cfg->timeout_ms, cfg->breaker_failures,
                 cfg->breaker_open_ms);
    }
    *out = c;
    return 0;
out_free:
    free(c);
    return rc;
}

void rcache_free(struct rcache *c)
{
    if (c == NULL) {
        return;
    }
    /* The calling thread's slot is in the list like the others; deleting the key first keeps
     * the destructor from running for any of them later. */
    pthread_key_delete(c->slot_key);
    struct rcache_slot *s = c->slots;
    while (s != NULL) {
        struct rcache_slot *next = s->next;
        slot_close(s);
        free(s);
        s = next;
    }
    metrics_gauge_add(METRIC_CACHE_BREAKER_STATE, (size_t)c->state, -1);
    pthread_mutex_destroy(&c->slots_mu);
    pthread_mutex_destroy(&c->breaker_mu);
    pthread_mutex_destroy(&c->master_mu);
    memset(c->password, 0, sizeof(c->password));
    free(c);
}
