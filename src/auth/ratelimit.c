/*
 * ratelimit.c — failed-authentication counts per address: a fixed table in lock-striped shards.
 *
 * Each entry is a fixed window opened by an address's first failure: (start, failures). A shard
 * is a small array scanned linearly under its mutex; its blocked_count, kept under the mutex but
 * readable without it, lets the common check (nobody blocked nearby) skip the lock. Addresses
 * are spread over shards by a hash seeded at random per table, so a client cannot aim its
 * addresses at the shard of an address it wants to push out.
 */
#include "auth/ratelimit.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/assert.h"
#include "core/limits.h"
#include "core/rand.h"

#define RATELIMIT_SHARD_ENTRIES (LIMIT_AUTH_RATELIMIT_ENTRIES / LIMIT_AUTH_RATELIMIT_SHARDS)
#define RATELIMIT_CACHE_LINE 64

struct ratelimit_entry {
    uint8_t key[RATELIMIT_ADDR_BYTES]; /* the address, IPv6 cut to its /64 */
    int64_t start_ms;                  /* the window's first failure */
    uint32_t failures;                 /* in the window; 0 = free entry */
    bool blocked;                      /* failures reached max_failures in the window */
};

struct ratelimit_shard {
    _Alignas(RATELIMIT_CACHE_LINE) pthread_mutex_t lock;
    atomic_uint blocked_count; /* entries with blocked set; written under lock */
    uint32_t used;             /* entries with failures > 0 */
    struct ratelimit_entry entries[RATELIMIT_SHARD_ENTRIES];
};

struct ratelimit {
    uint32_t failures_max;
    uint32_t window_seconds;
    int64_t window_ms;
    uint64_t seed[2];
    struct ratelimit_shard shards[LIMIT_AUTH_RATELIMIT_SHARDS];
};

_Static_assert(sizeof(struct ratelimit_entry) == 32, "an entry is 32 bytes (limits.h)");

static const uint8_t ratelimit_v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int ratelimit_new(uint32_t max_failures, uint32_t window_seconds, struct ratelimit **out)
{
    ASSERT(out != NULL);
    *out = NULL;
    if (max_failures < 1 || max_failures > LIMIT_AUTH_FAILURES_MAX || window_seconds < 1 ||
        window_seconds > LIMIT_AUTH_FAILURE_WINDOW_SECONDS_MAX) {
        return -EINVAL;
    }
    size_t size = sizeof(struct ratelimit);
    size = (size + RATELIMIT_CACHE_LINE - 1) / RATELIMIT_CACHE_LINE * RATELIMIT_CACHE_LINE;
    struct ratelimit *r = aligned_alloc(_Alignof(struct ratelimit), size);
    if (r == NULL) {
        return -ENOMEM;
    }
    memset(r, 0, size);
    r->failures_max = max_failures;
    r->window_seconds = window_seconds;
    r->window_ms = (int64_t)window_seconds * 1000;
    r->seed[0] = rand_u64();
    r->seed[1] = rand_u64();
    for (size_t i = 0; i < LIMIT_AUTH_RATELIMIT_SHARDS; i++) {
        pthread_mutex_init(&r->shards[i].lock, NULL);
        atomic_init(&r->shards[i].blocked_count, 0);
    }
    *out = r;
    return 0;
}

void ratelimit_free(struct ratelimit *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < LIMIT_AUTH_RATELIMIT_SHARDS; i++) {
        pthread_mutex_destroy(&r->shards[i].lock);
    }
    free(r);
}

/* The key an address counts under: IPv4 (v4-mapped) whole, IPv6 cut to its /64. */
static void ratelimit_key(const uint8_t addr[RATELIMIT_ADDR_BYTES],
                          uint8_t key[RATELIMIT_ADDR_BYTES])
{
    memcpy(key, addr, RATELIMIT_ADDR_BYTES);
    if (memcmp(addr, ratelimit_v4_mapped, sizeof(ratelimit_v4_mapped)) != 0) {
        memset(key + 8, 0, 8);
    }
}

/* The 64-bit finalizer of MurmurHash3: every input bit affects every output bit. */
static uint64_t ratelimit_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static struct ratelimit_shard *ratelimit_shard_of(struct ratelimit *r,
                                                  const uint8_t key[RATELIMIT_ADDR_BYTES])
{
    uint64_t hi;
    uint64_t lo;
    memcpy(&hi, key, 8);
    memcpy(&lo, key + 8, 8);
    uint64_t h = ratelimit_mix(ratelimit_mix(hi ^ r->seed[0]) + (lo ^ r->seed[1]));
    return &r->shards[h & (LIMIT_AUTH_RATELIMIT_SHARDS - 1)];
}

static bool ratelimit_expired(const struct ratelimit *r, const struct ratelimit_entry *e,
                              int64_t now_ms)
{
    return now_ms - e->start_ms >= r->window_ms;
}

/* Empties an entry. Caller holds the shard lock. */
static void ratelimit_entry_drop(struct ratelimit_shard *s, struct ratelimit_entry *e)
{
    ASSERT(e->failures > 0 && s->used > 0);
    if (e->blocked) {
        ASSERT(atomic_load_explicit(&s->blocked_count, memory_order_relaxed) > 0);
        atomic_fetch_sub_explicit(&s->blocked_count, 1, memory_order_release);
    }
    memset(e, 0, sizeof(*e));
    s->used--;
}

/* The entry of key, or NULL. Caller holds the shard lock. */
static struct ratelimit_entry *ratelimit_find(struct ratelimit_shard *s,
                                              const uint8_t key[RATELIMIT_ADDR_BYTES])
{
    for (size_t i = 0; i < RATELIMIT_SHARD_ENTRIES; i++) {
        struct ratelimit_entry *e = &s->entries[i];
        if (e->failures > 0 && memcmp(e->key, key, RATELIMIT_ADDR_BYTES) == 0) {
            return e;
        }
    }
    return NULL;
}

/* A free entry, making one when the shard is full: the first entry whose window has ended,
 * else the unblocked entry whose window started first, else the blocked one whose block ends
 * first. Caller holds the shard lock. */
static struct ratelimit_entry *ratelimit_take(const struct ratelimit *r, struct ratelimit_shard *s,
                                              int64_t now_ms)
{
    struct ratelimit_entry *victim = NULL;
    int victim_rank = 3;
    for (size_t i = 0; i < RATELIMIT_SHARD_ENTRIES; i++) {
        struct ratelimit_entry *e = &s->entries[i];
        if (e->failures == 0) {
            return e;
        }
        int rank = ratelimit_expired(r, e, now_ms) ? 0 : (e->blocked ? 2 : 1);
        if (rank < victim_rank || (rank == victim_rank && e->start_ms < victim->start_ms)) {
            victim = e;
            victim_rank = rank;
        }
    }
    ASSERT(victim != NULL && s->used == RATELIMIT_SHARD_ENTRIES);
    ratelimit_entry_drop(s, victim);
    return victim;
}

/* Drops every blocked entry whose window has ended, so that blocked_count falls back to 0 and
 * checks in this shard go lock-free again. Caller holds the shard lock. */
static void ratelimit_sweep(const struct ratelimit *r, struct ratelimit_shard *s, int64_t now_ms)
{
    for (size_t i = 0; i < RATELIMIT_SHARD_ENTRIES; i++) {
        struct ratelimit_entry *e = &s->entries[i];
        if (e->failures > 0 && e->blocked && ratelimit_expired(r, e, now_ms)) {
            ratelimit_entry_drop(s, e);
        }
    }
}

bool ratelimit_blocked(struct ratelimit *r, const uint8_t addr[RATELIMIT_ADDR_BYTES],
                       int64_t now_ms, uint32_t *retry_after_s)
{
    ASSERT(r != NULL && addr != NULL && retry_after_s != NULL);
    *retry_after_s = 0;
    uint8_t key[RATELIMIT_ADDR_BYTES];
    ratelimit_key(addr, key);
    struct ratelimit_shard *s = ratelimit_shard_of(r, key);
    if (atomic_load_explicit(&s->blocked_count, memory_order_acquire) == 0) {
        return false;
    }

    bool blocked = false;
    pthread_mutex_lock(&s->lock);
    ratelimit_sweep(r, s, now_ms);
    struct ratelimit_entry *e = ratelimit_find(s, key);
    if (e == NULL || !e->blocked) {
        goto out_unlock;
    }
    int64_t left_ms = e->start_ms + r->window_ms - now_ms;
    ASSERT(left_ms > 0);
    int64_t left_s = (left_ms + 999) / 1000;
    /* A clock that stepped back would make the wait longer than a window; it never is. */
    *retry_after_s = left_s > r->window_seconds ? r->window_seconds : (uint32_t)left_s;
    blocked = true;
out_unlock:
    pthread_mutex_unlock(&s->lock);
    ASSERT(!blocked || (*retry_after_s >= 1 && *retry_after_s <= r->window_seconds));
    return blocked;
}

void ratelimit_failure(struct ratelimit *r, const uint8_t addr[RATELIMIT_ADDR_BYTES],
                       int64_t now_ms)
{
    ASSERT(r != NULL && addr != NULL);
    uint8_t key[RATELIMIT_ADDR_BYTES];
    ratelimit_key(addr, key);
    struct ratelimit_shard *s = ratelimit_shard_of(r, key);

    pthread_mutex_lock(&s->lock);
    struct ratelimit_entry *e = ratelimit_find(s, key);
    if (e != NULL && ratelimit_expired(r, e, now_ms)) {
        ratelimit_entry_drop(s, e);
        e = NULL;
    }
    if (e == NULL) {
        e = ratelimit_take(r, s, now_ms);
        memcpy(e->key, key, RATELIMIT_ADDR_BYTES);
        e->start_ms = now_ms;
        s->used++;
    }
    /* Counting stops at the threshold: what matters is reaching it. */
    if (e->failures < r->failures_max) {
        e->failures++;
    }
    if (e->failures == r->failures_max && !e->blocked) {
        e->blocked = true;
        atomic_fetch_add_explicit(&s->blocked_count, 1, memory_order_release);
    }
    ASSERT(e->failures >= 1 && s->used <= RATELIMIT_SHARD_ENTRIES);
    pthread_mutex_unlock(&s->lock);
}

size_t ratelimit_tracked(struct ratelimit *r)
{
    ASSERT(r != NULL);
    size_t n = 0;
    for (size_t i = 0; i < LIMIT_AUTH_RATELIMIT_SHARDS; i++) {
        pthread_mutex_lock(&r->shards[i].lock);
        n += r->shards[i].used;
        pthread_mutex_unlock(&r->shards[i].lock);
    }
    ASSERT(n <= LIMIT_AUTH_RATELIMIT_ENTRIES);
    return n;
}

int ratelimit_addr_from_sockaddr(const struct sockaddr *sa, uint8_t out[RATELIMIT_ADDR_BYTES])
{
    ASSERT(sa != NULL && out != NULL);
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in in4;
        memcpy(&in4, sa, sizeof(in4));
        memcpy(out, ratelimit_v4_mapped, sizeof(ratelimit_v4_mapped));
        memcpy(out + 12, &in4.sin_addr.s_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 in6;
        memcpy(&in6, sa, sizeof(in6));
        memcpy(out, in6.sin6_addr.s6_addr, RATELIMIT_ADDR_BYTES);
        return 0;
    }
    return -EAFNOSUPPORT;
}
