/*
 * test_ratelimit.c — the failed-authentication limit: threshold, window, Retry-After, address
 * keys, eviction under many addresses, and concurrent use.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "auth/ratelimit.h"
#include "core/limits.h"

static void addr_v4(uint32_t v4, uint8_t out[RATELIMIT_ADDR_BYTES])
{
    memset(out, 0, RATELIMIT_ADDR_BYTES);
    out[10] = 0xff;
    out[11] = 0xff;
    out[12] = (uint8_t)(v4 >> 24);
    out[13] = (uint8_t)(v4 >> 16);
    out[14] = (uint8_t)(v4 >> 8);
    out[15] = (uint8_t)v4;
}

static void addr_v6(uint64_t prefix, uint64_t iid, uint8_t out[RATELIMIT_ADDR_BYTES])
{
    for (int i = 0; i < 8; i++) {
        out[i] = (uint8_t)(prefix >> (56 - 8 * i));
        out[8 + i] = (uint8_t)(iid >> (56 - 8 * i));
    }
}

static bool blocked(struct ratelimit *r, const uint8_t *a, int64_t now_ms, uint32_t *retry)
{
    uint32_t dummy;
    return ratelimit_blocked(r, a, now_ms, retry != NULL ? retry : &dummy);
}

static void test_new_bounds(void **state)
{
    (void)state;
    struct ratelimit *r = (struct ratelimit *)1;
    assert_int_equal(ratelimit_new(0, 60, &r), -EINVAL);
    assert_null(r);
    assert_int_equal(ratelimit_new(LIMIT_AUTH_FAILURES_MAX + 1, 60, &r), -EINVAL);
    assert_int_equal(ratelimit_new(10, 0, &r), -EINVAL);
    assert_int_equal(ratelimit_new(10, LIMIT_AUTH_FAILURE_WINDOW_SECONDS_MAX + 1, &r), -EINVAL);
    assert_int_equal(
        ratelimit_new(LIMIT_AUTH_FAILURES_MAX, LIMIT_AUTH_FAILURE_WINDOW_SECONDS_MAX, &r), 0);
    assert_int_equal(ratelimit_tracked(r), 0);
    ratelimit_free(r);
    ratelimit_free(NULL);
}

static void test_threshold_exact(void **state)
{
    (void)state;
    struct ratelimit *r = NULL;
    assert_int_equal(
        ratelimit_new(LIMIT_AUTH_FAILURES_DEFAULT, LIMIT_AUTH_FAILURE_WINDOW_SECONDS_DEFAULT, &r),
        0);
    uint8_t a[16];
    uint8_t b[16];
    addr_v4(0xc0000201, a); /* 192.0.2.1 */
    addr_v4(0xc0000202, b);
    uint32_t retry = 99;
    assert_false(blocked(r, a, 1000, &retry));
    assert_int_equal(retry, 0);
    for (int i = 1; i < LIMIT_AUTH_FAILURES_DEFAULT; i++) {
        ratelimit_failure(r, a, 1000 + i);
        assert_false(blocked(r, a, 1000 + i, &retry));
        assert_int_equal(retry, 0);
    }
    ratelimit_failure(r, a, 1010);
    assert_true(blocked(r, a, 1010, &retry));
    assert_int_equal(retry, 60); /* the window opened at 1001: 59.991 s left, rounded up */
    /* Other addresses are not affected. */
    assert_false(blocked(r, b, 1010, &retry));
    assert_int_equal(ratelimit_tracked(r), 1);
    ratelimit_free(r);
}

static void test_retry_after_and_expiry(void **state)
{
    (void)state;
    struct ratelimit *r = NULL;
    assert_int_equal(ratelimit_new(3, 60, &r), 0);
    uint8_t a[16];
    addr_v4(0x0a000001, a);
    uint32_t retry = 0;

    ratelimit_failure(r, a, 0);
    ratelimit_failure(r, a, 5000);
    ratelimit_failure(r, a, 10500);
    assert_true(blocked(r, a, 10500, &retry));
    assert_int_equal(retry, 50); /* 49.5 s left */
    assert_true(blocked(r, a, 11000, &retry));
    assert_int_equal(retry, 49);
    assert_true(blocked(r, a, 58999, &retry));
    assert_int_equal(retry, 2);
    assert_true(blocked(r, a, 59000, &retry));
    assert_int_equal(retry, 1);
    assert_true(blocked(r, a, 59999, &retry));
    assert_int_equal(retry, 1);
    /* A failure counted while blocked (a request already past the check) does not extend it. */
    ratelimit_failure(r, a, 30000);
    assert_true(blocked(r, a, 59999, &retry));
    assert_int_equal(retry, 1);
    assert_false(blocked(r, a, 60000, &retry));
    assert_int_equal(retry, 0);
    assert_false(blocked(r, a, 70000, &retry));

    /* The window is fixed from its first failure: three failures inside it block, up to its
     * last millisecond; a failure after it opens a new window and counts from one again. */
    ratelimit_failure(r, a, 100000);
    ratelimit_failure(r, a, 159998);
    ratelimit_failure(r, a, 159999);
    assert_true(blocked(r, a, 159999, &retry));
    assert_int_equal(retry, 1);
    ratelimit_failure(r, a, 200000);
    ratelimit_failure(r, a, 259999);
    ratelimit_failure(r, a, 260000); /* window of 200000 is over: a new one opens */
    assert_false(blocked(r, a, 260000, &retry));
    ratelimit_failure(r, a, 260001);
    assert_false(blocked(r, a, 260001, &retry));
    ratelimit_failure(r, a, 319999);
    assert_true(blocked(r, a, 319999, &retry));
    assert_int_equal(retry, 1);
    ratelimit_free(r);
}

/* A clock that steps back never yields a wait longer than the window. */
static void test_retry_after_bounded(void **state)
{
    (void)state;
    struct ratelimit *r = NULL;
    assert_int_equal(ratelimit_new(1, 10, &r), 0);
    uint8_t a[16];
    addr_v4(1, a);
    uint32_t retry = 0;
    ratelimit_failure(r, a, 1000000);
    assert_true(blocked(r, a, 1000000, &retry));
    assert_int_equal(retry, 10);
    assert_true(blocked(r, a, 0, &retry));
    assert_int_equal(retry, 10);
    assert_true(blocked(r, a, -5000000, &retry));
    assert_int_equal(retry, 10);
    ratelimit_free(r);
}

static void test_address_keys(void **state)
{
    (void)state;
    struct ratelimit *r = NULL;
    assert_int_equal(ratelimit_new(2, 60, &r), 0);
    uint8_t a[16];
    uint8_t b[16];

    /* IPv6: one /64 counts as one address. */
    addr_v6(0x20010db800000001ull, 1, a);
    addr_v6(0x20010db800000001ull, 0xffffffffffffffffull, b);
    ratelimit_failure(r, a, 0);
    ratelimit_failure(r, b, 0);
    assert_true(blocked(r, a, 1, NULL));
    assert_true(blocked(r, b, 1, NULL));
    addr_v6(0x20010db800000002ull, 1, b);
    assert_false(blocked(r, b, 1, NULL));

    /* IPv4 (v4-mapped): every address counts alone, even neighbours. */
    addr_v4(0xc6336401, a);
    addr_v4(0xc6336402, b);
    ratelimit_failure(r, a, 0);
    ratelimit_failure(r, a, 0);
    assert_true(blocked(r, a, 1, NULL));
    assert_false(blocked(r, b, 1, NULL));
    /* An IPv6 address that is not v4-mapped but shares its first 64 bits with them. */
    addr_v6(0, 0x0000fffec6336401ull, b);
    assert_false(blocked(r, b, 1, NULL));
    assert_int_equal(ratelimit_tracked(r), 2);
    ratelimit_free(r);
}

static void test_sockaddr(void **state)
{
    (void)state;
    uint8_t out[16];
    uint8_t want[16];
    struct sockaddr_in in4;
    memset(&in4, 0, sizeof(in4));
    in4.sin_family = AF_INET;
    in4.sin_port = htons(443);
    assert_int_equal(inet_pton(AF_INET, "192.0.2.1", &in4.sin_addr), 1);
    assert_int_equal(ratelimit_addr_from_sockaddr((const struct sockaddr *)&in4, out), 0);
    addr_v4(0xc0000201, want);
    assert_memory_equal(out, want, 16);

    struct sockaddr_in6 in6;
    memset(&in6, 0, sizeof(in6));
    in6.sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", &in6.sin6_addr), 1);
    assert_int_equal(ratelimit_addr_from_sockaddr((const struct sockaddr *)&in6, out), 0);
    assert_memory_equal(out, in6.sin6_addr.s6_addr, 16);
    /* A v4-mapped IPv6 peer (dual-stack socket) is the same key as the IPv4 peer. */
    assert_int_equal(inet_pton(AF_INET6, "::ffff:192.0.2.1", &in6.sin6_addr), 1);
    assert_int_equal(ratelimit_addr_from_sockaddr((const struct sockaddr *)&in6, out), 0);
    assert_memory_equal(out, want, 16);

    struct sockaddr_un un;
    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    assert_int_equal(ratelimit_addr_from_sockaddr((const struct sockaddr *)&un, out),
                     -EAFNOSUPPORT);
}

/* 100k distinct addresses fail once each: the table never holds more than its size, and an
 * address blocked before the flood stays blocked (unblocked entries go first). */
static void test_eviction_bounded(void **state)
{
    (void)state;
    struct ratelimit *r = NULL;
    assert_int_equal(ratelimit_new(3, 600, &r), 0);
    uint8_t victim[16];
    uint8_t a[16];
    addr_v4(0x0a0a0a0a, victim);
    for (int i = 0; i < 3; i++) {
        ratelimit_failure(r, victim, 0);
    }
    assert_true(blocked(r, victim, 0, NULL));

    for (uint32_t i = 0; i < 100000; i++) {
        addr_v4(0x64000000u + i, a);
        ratelimit_failure(r, a, 1 + (int64_t)i); /* over 100 s */
        if (i % 10000 == 0) {
            assert_true(ratelimit_tracked(r) <= LIMIT_AUTH_RATELIMIT_ENTRIES);
        }
    }
    assert_int_equal(ratelimit_tracked(r), LIMIT_AUTH_RATELIMIT_ENTRIES);
    uint32_t retry = 0;
    assert_true(blocked(r, victim, 200000, &retry));
    assert_int_equal(retry, 400);
    /* The most recent address is still counted: two more failures block it. */
    addr_v4(0x64000000u + 99999, a);
    ratelimit_failure(r, a, 201000);
    ratelimit_failure(r, a, 201000);
    assert_true(blocked(r, a, 201000, NULL));
    ratelimit_free(r);
}

/* When every entry is blocked, the block that ends first gives way. */
static void test_eviction_all_blocked(void **state)
{
    (void)state;
    struct ratelimit *r = NULL;
    assert_int_equal(ratelimit_new(1, 3600, &r), 0);
    uint8_t a[16];
    for (uint32_t i = 0; i < 100000; i++) {
        addr_v4(0x64000000u + i, a);
        ratelimit_failure(r, a, (int64_t)i);
    }
    assert_int_equal(ratelimit_tracked(r), LIMIT_AUTH_RATELIMIT_ENTRIES);
    size_t still = 0;
    for (uint32_t i = 0; i < 100000; i++) {
        addr_v4(0x64000000u + i, a);
        if (blocked(r, a, 100000, NULL)) {
            still++;
        }
    }
    assert_int_equal(still, LIMIT_AUTH_RATELIMIT_ENTRIES);
    addr_v4(0x64000000u, a); /* the oldest */
    assert_false(blocked(r, a, 100000, NULL));
    addr_v4(0x64000000u + 99999, a); /* the newest */
    assert_true(blocked(r, a, 100000, NULL));
    ratelimit_free(r);
}

struct worker {
    struct ratelimit *r;
    uint32_t id;
    int failures_on_shared;
    bool churn; /* also fail from many addresses of its own */
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    uint8_t shared[16];
    uint8_t own[16];
    addr_v4(0xcb007101, shared); /* 203.0.113.1 */
    for (int i = 0; i < w->failures_on_shared; i++) {
        ratelimit_failure(w->r, shared, 1000);
        uint32_t retry;
        (void)ratelimit_blocked(w->r, shared, 1000, &retry);
        addr_v4((w->id << 24) | (uint32_t)(i % 8), own);
        (void)ratelimit_blocked(w->r, own, 1000, &retry);
    }
    if (w->churn) {
        for (uint32_t i = 0; i < 25000; i++) {
            addr_v6(((uint64_t)w->id << 32) | i, 1, own);
            ratelimit_failure(w->r, own, 1000 + i / 100);
            uint32_t retry;
            (void)ratelimit_blocked(w->r, own, 1000 + i / 100, &retry);
        }
    }
    return NULL;
}

static void run_workers(struct ratelimit *r, int failures_each, bool churn)
{
    pthread_t t[4];
    struct worker w[4];
    for (uint32_t i = 0; i < 4; i++) {
        w[i] = (struct worker){r, i + 1, failures_each, churn};
        assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
    }
}

/* Four threads fail 250 times each from one address: no failure is lost and none is invented. */
static void test_concurrent_counting(void **state)
{
    (void)state;
    uint8_t shared[16];
    addr_v4(0xcb007101, shared);
    struct ratelimit *r = NULL;

    assert_int_equal(ratelimit_new(1000, 3600, &r), 0);
    run_workers(r, 250, false);
    assert_true(blocked(r, shared, 1000, NULL));
    ratelimit_free(r);

    assert_int_equal(ratelimit_new(1001, 3600, &r), 0);
    run_workers(r, 250, false);
    assert_false(blocked(r, shared, 1000, NULL));
    ratelimit_failure(r, shared, 1000);
    assert_true(blocked(r, shared, 1000, NULL));
    ratelimit_free(r);
}

/* Four threads churn 100k addresses through the table at once. */
static void test_concurrent_churn(void **state)
{
    (void)state;
    struct ratelimit *r = NULL;
    assert_int_equal(ratelimit_new(2, 60, &r), 0);
    run_workers(r, 10, true);
    assert_true(ratelimit_tracked(r) <= LIMIT_AUTH_RATELIMIT_ENTRIES);
    ratelimit_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_bounds),
        cmocka_unit_test(test_threshold_exact),
        cmocka_unit_test(test_retry_after_and_expiry),
        cmocka_unit_test(test_retry_after_bounded),
        cmocka_unit_test(test_address_keys),
        cmocka_unit_test(test_sockaddr),
        cmocka_unit_test(test_eviction_bounded),
        cmocka_unit_test(test_eviction_all_blocked),
        cmocka_unit_test(test_concurrent_counting),
        cmocka_unit_test(test_concurrent_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
