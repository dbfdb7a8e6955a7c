/*
 * test_idem.c — the in-flight registry of idempotency keys and request fingerprints.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "idem/idem.h"

static void test_claim_then_in_flight_then_release(void **state)
{
    (void)state;
    struct idem_registry *r = NULL;
    assert_int_equal(idem_registry_new(4, &r), 0);
    assert_int_equal(idem_claim(r, "anonymous", "k1"), IDEM_CLAIMED);
    assert_int_equal(idem_claim(r, "anonymous", "k1"), IDEM_IN_FLIGHT);
    /* Keys are scoped to the principal. */
    assert_int_equal(idem_claim(r, "alice", "k1"), IDEM_CLAIMED);
    assert_int_equal(idem_in_flight(r), 2);
    idem_release(r, "anonymous", "k1");
    assert_int_equal(idem_claim(r, "anonymous", "k1"), IDEM_CLAIMED);
    idem_release(r, "anonymous", "k1");
    idem_release(r, "alice", "k1");
    assert_int_equal(idem_in_flight(r), 0);
    idem_registry_free(r);
}

static void test_capacity_is_a_bound(void **state)
{
    (void)state;
    struct idem_registry *r = NULL;
    assert_int_equal(idem_registry_new(3, &r), 0);
    assert_int_equal(idem_claim(r, "p", "a"), IDEM_CLAIMED);
    assert_int_equal(idem_claim(r, "p", "b"), IDEM_CLAIMED);
    assert_int_equal(idem_claim(r, "p", "c"), IDEM_CLAIMED);
    assert_int_equal(idem_claim(r, "p", "d"), IDEM_FULL);
    idem_release(r, "p", "b");
    assert_int_equal(idem_claim(r, "p", "d"), IDEM_CLAIMED);
    idem_registry_free(r);
}

/* Many keys claimed and released in an interleaved order: after every release, every key still
 * held must still be found (backward-shift deletion keeps probe chains intact). */
static void test_release_keeps_other_keys_findable(void **state)
{
    (void)state;
    enum { N = 2000 };
    struct idem_registry *r = NULL;
    assert_int_equal(idem_registry_new(N, &r), 0);
    char key[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        assert_int_equal(idem_claim(r, "p", key), IDEM_CLAIMED);
    }
    uint32_t x = 12345;
    bool held[N];
    for (int i = 0; i < N; i++) {
        held[i] = true;
    }
    for (int round = 0; round < N / 2; round++) {
        x = x * 1103515245u + 12345u;
        int i = (int)((x >> 8) % N);
        if (!held[i]) {
            continue;
        }
        snprintf(key, sizeof(key), "key-%d", i);
        idem_release(r, "p", key);
        held[i] = false;
        if (round % 97 == 0) {
            for (int j = 0; j < N; j++) {
                snprintf(key, sizeof(key), "key-%d", j);
                enum idem_claim_result c = idem_claim(r, "p", key);
                if (held[j]) {
                    assert_int_equal(c, IDEM_IN_FLIGHT);
                } else {
                    assert_int_equal(c, IDEM_CLAIMED);
                    idem_release(r, "p", key);
                }
            }
        }
    }
    idem_registry_free(r);
}

struct race {
    struct idem_registry *r;
    int claimed;
};

static void *race_thread(void *arg)
{
    struct race *rc = arg;
    if (idem_claim(rc->r, "p", "same-key") == IDEM_CLAIMED) {
        __atomic_add_fetch(&rc->claimed, 1, __ATOMIC_SEQ_CST);
    }
    return NULL;
}

static void test_concurrent_claims_one_winner(void **state)
{
    (void)state;
    struct race rc = {NULL, 0};
    assert_int_equal(idem_registry_new(64, &rc.r), 0);
    pthread_t t[16];
    for (int i = 0; i < 16; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, race_thread, &rc), 0);
    }
    for (int i = 0; i < 16; i++) {
        pthread_join(t[i], NULL);
    }
    assert_int_equal(rc.claimed, 1);
    idem_registry_free(rc.r);
}

static void test_fingerprint_covers_method_path_body(void **state)
{
    (void)state;
    uint8_t a[SHA256_BYTES], b[SHA256_BYTES], c[SHA256_BYTES], d[SHA256_BYTES];
    assert_int_equal(idem_fingerprint("POST", "/v1/transfers", "{}", 2, a), 0);
    assert_int_equal(idem_fingerprint("POST", "/v1/transfers", "{}", 2, b), 0);
    assert_memory_equal(a, b, SHA256_BYTES);
    assert_int_equal(idem_fingerprint("POST", "/v1/accounts", "{}", 2, c), 0);
    assert_memory_not_equal(a, c, SHA256_BYTES);
    assert_int_equal(idem_fingerprint("POST", "/v1/transfers", "{ }", 3, d), 0);
    assert_memory_not_equal(a, d, SHA256_BYTES);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claim_then_in_flight_then_release),
        cmocka_unit_test(test_capacity_is_a_bound),
        cmocka_unit_test(test_release_keeps_other_keys_findable),
        cmocka_unit_test(test_concurrent_claims_one_winner),
        cmocka_unit_test(test_fingerprint_covers_method_path_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
