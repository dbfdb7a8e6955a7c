/*
 * ratelimit.h — the failed-authentication limit per client address.
 *
 * After max_failures failed authentications from one address within window_seconds of the first
 * of them, every further attempt from that address — with valid credentials too — is refused
 * (429 with Retry-After) until that window ends; then the address starts afresh. A successful
 * authentication resets nothing (else a client holding one valid key could interleave it with
 * guesses at others), and attempts refused while blocked do not count.
 *
 * Addresses are 16 bytes: IPv6, with IPv4 as v4-mapped IPv6 (::ffff:a.b.c.d, RFC 4291 §2.5.5.2).
 * An IPv4 address counts alone; IPv6 addresses count per /64 prefix, the block one subscriber
 * usually holds, so that a host cannot step through its own 2^64 addresses.
 *
 * The table has a fixed size (LIMIT_AUTH_RATELIMIT_ENTRIES), split into shards with a lock each;
 * a check for an address in a shard without blocked addresses takes no lock at all. A full shard
 * evicts: an entry whose window has ended, else the unblocked entry whose window ends first,
 * else the blocked entry whose block ends first. See docs/security/auth.md.
 */
#ifndef LEDGERD_AUTH_RATELIMIT_H
#define LEDGERD_AUTH_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RATELIMIT_ADDR_BYTES 16

struct ratelimit;
struct sockaddr;

/* Creates an empty table: max_failures 1..LIMIT_AUTH_FAILURES_MAX, window_seconds
 * 1..LIMIT_AUTH_FAILURE_WINDOW_SECONDS_MAX (-EINVAL outside). 0, or -ENOMEM. All memory is
 * taken here; nothing is allocated afterwards. */
int ratelimit_new(uint32_t max_failures, uint32_t window_seconds, struct ratelimit **out);
void ratelimit_free(struct ratelimit *r);

/* True when addr is blocked at now_ms (a monotonic clock, in milliseconds): the caller answers
 * 429 without looking at the credentials, with Retry-After set to *retry_after_s (1 up to
 * window_seconds: the seconds until the window ends, rounded up). *retry_after_s is 0 when
 * false. Thread-safe; takes no lock unless an address of the same shard is blocked. */
bool ratelimit_blocked(struct ratelimit *r, const uint8_t addr[RATELIMIT_ADDR_BYTES],
                       int64_t now_ms, uint32_t *retry_after_s);

/* Counts one failed authentication from addr at now_ms: the first failure opens a window of
 * window_seconds, and the max_failures-th within it blocks the address until the window ends.
 * Thread-safe (one shard lock). */
void ratelimit_failure(struct ratelimit *r, const uint8_t addr[RATELIMIT_ADDR_BYTES],
                       int64_t now_ms);

/* Addresses (IPv6 /64 prefixes) currently tracked; at most LIMIT_AUTH_RATELIMIT_ENTRIES.
 * Thread-safe; for metrics and tests. */
size_t ratelimit_tracked(struct ratelimit *r);

/* Writes the 16-byte form of an AF_INET or AF_INET6 socket address (IPv4 as v4-mapped IPv6).
 * 0, or -EAFNOSUPPORT for another family. */
int ratelimit_addr_from_sockaddr(const struct sockaddr *sa, uint8_t out[RATELIMIT_ADDR_BYTES]);

#endif
