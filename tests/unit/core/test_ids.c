/*
 * test_ids.c — the API's identifier grammars at their boundaries, UUIDv7 layout and per-thread
 * ordering, and random hex ids.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/clock.h"
#include "core/ids.h"
#include "core/limits.h"

#define V(fn, s) fn(s, strlen(s))

static void test_resource_id(void **state)
{
    (void)state;
    assert_true(V(ids_resource_id_valid, "a"));
    assert_true(V(ids_resource_id_valid, "A1._:-z"));
    assert_true(V(ids_resource_id_valid, "0"));
    char id[LIMIT_ID_LEN_MAX + 2];
    memset(id, 'x', sizeof(id));
    assert_true(ids_resource_id_valid(id, LIMIT_ID_LEN_MAX));
    assert_false(ids_resource_id_valid(id, LIMIT_ID_LEN_MAX + 1));
    assert_false(V(ids_resource_id_valid, ""));
    assert_false(V(ids_resource_id_valid, ".a"));
    assert_false(V(ids_resource_id_valid, "-a"));
    assert_false(V(ids_resource_id_valid, "_a"));
    assert_false(V(ids_resource_id_valid, "a b"));
    assert_false(V(ids_resource_id_valid, "a/b"));
    assert_false(V(ids_resource_id_valid, "\xc3\xa9"));
    assert_false(ids_resource_id_valid("a\0b", 3));
    assert_false(ids_resource_id_valid(NULL, 0));
    /* Only len bytes are read. */
    assert_true(ids_resource_id_valid("ab cd", 2));
}

static void test_ledger(void **state)
{
    (void)state;
    assert_true(V(ids_ledger_valid, "USD"));
    assert_true(V(ids_ledger_valid, "_"));
    assert_true(V(ids_ledger_valid, "A_1"));
    assert_true(V(ids_ledger_valid, "ABCDEFGHIJKLMNOP"));
    assert_false(V(ids_ledger_valid, "ABCDEFGHIJKLMNOPQ"));
    assert_false(V(ids_ledger_valid, ""));
    assert_false(V(ids_ledger_valid, "usd"));
    assert_false(V(ids_ledger_valid, "US-D"));
    assert_false(V(ids_ledger_valid, "US D"));
    assert_false(ids_ledger_valid("U\0", 2));
}

static void test_request_id(void **state)
{
    (void)state;
    assert_true(V(ids_request_id_valid, "-"));
    assert_true(V(ids_request_id_valid, "req-1.2:3_x"));
    char id[LIMIT_REQUEST_ID_LEN_MAX + 1];
    memset(id, '9', sizeof(id));
    assert_true(ids_request_id_valid(id, LIMIT_REQUEST_ID_LEN_MAX));
    assert_false(ids_request_id_valid(id, LIMIT_REQUEST_ID_LEN_MAX + 1));
    assert_false(V(ids_request_id_valid, ""));
    assert_false(V(ids_request_id_valid, "a b"));
    assert_false(V(ids_request_id_valid, "a\"b"));
    assert_false(V(ids_request_id_valid, "a\nb"));
}

static void test_idempotency_key(void **state)
{
    (void)state;
    assert_true(V(ids_idempotency_key_valid, " "));
    assert_true(V(ids_idempotency_key_valid, "~!\"#$%&'()*+,-./ key"));
    char key[LIMIT_IDEMPOTENCY_KEY_LEN_MAX + 1];
    memset(key, 'k', sizeof(key));
    assert_true(ids_idempotency_key_valid(key, LIMIT_IDEMPOTENCY_KEY_LEN_MAX));
    assert_false(ids_idempotency_key_valid(key, LIMIT_IDEMPOTENCY_KEY_LEN_MAX + 1));
    assert_false(V(ids_idempotency_key_valid, ""));
    assert_false(V(ids_idempotency_key_valid, "a\tb"));
    assert_false(V(ids_idempotency_key_valid, "a\x7f"));
    assert_false(V(ids_idempotency_key_valid, "\xc3\xa9"));
    assert_false(ids_idempotency_key_valid("a\0", 2));
}

static bool is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static void check_uuid_format(const char *u, int64_t ms)
{
    assert_int_equal(strlen(u), IDS_UUID_LEN);
    for (size_t i = 0; i < IDS_UUID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            assert_int_equal(u[i], '-');
        } else {
            assert_true(is_lower_hex(u[i]));
        }
    }
    assert_int_equal(u[14], '7');                                              /* version */
    assert_true(u[19] == '8' || u[19] == '9' || u[19] == 'a' || u[19] == 'b'); /* variant 10xx */
    char ts[13];
    memcpy(ts, u, 8);
    memcpy(ts + 8, u + 9, 4);
    ts[12] = '\0';
    assert_true((int64_t)strtoull(ts, NULL, 16) >= ms);
}

static void test_uuidv7_format(void **state)
{
    (void)state;
    char u[IDS_UUID_LEN + 1];
    ids_uuidv7(0x0123456789ab, u);
    check_uuid_format(u, 0x0123456789ab);
    assert_memory_equal(u, "01234567-89ab-7", 15);
    ids_uuidv7(INT64_C(0x0123456789ac), u);
    assert_memory_equal(u, "01234567-89ac-7", 15);
    int64_t now = clock_unix_ms();
    ids_uuidv7(now, u);
    check_uuid_format(u, now);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_uuidv7_monotonic(void **state)
{
    (void)state;
    enum { N = 10000 };
    char(*ids)[IDS_UUID_LEN + 1] = calloc(N, IDS_UUID_LEN + 1);
    assert_non_null(ids);
    int64_t ms = clock_unix_ms();
    for (int i = 0; i < N; i++) {
        /* Half of them in one fixed millisecond, to exercise the counter. */
        ids_uuidv7(i < N / 2 ? ms + 1000 : clock_unix_ms() + 1000, ids[i]);
        check_uuid_format(ids[i], ms);
        if (i > 0) {
            assert_true(strcmp(ids[i - 1], ids[i]) < 0);
        }
    }
    /* A clock that steps back does not break the order. */
    char back[IDS_UUID_LEN + 1];
    ids_uuidv7(ms - 60000, back);
    assert_true(strcmp(ids[N - 1], back) < 0);

    char **sorted = calloc(N, sizeof(char *));
    assert_non_null(sorted);
    for (int i = 0; i < N; i++) {
        sorted[i] = ids[i];
    }
    qsort(sorted, N, sizeof(char *), cmp_str);
    for (int i = 1; i < N; i++) {
        assert_true(strcmp(sorted[i - 1], sorted[i]) != 0);
    }
    free(sorted);
    free(ids);
}

static void test_random_hex(void **state)
{
    (void)state;
    char a[65], b[65];
    ids_random_hex(a, 32);
    ids_random_hex(b, 32);
    assert_int_equal(strlen(a), 64);
    for (size_t i = 0; i < 64; i++) {
        assert_true(is_lower_hex(a[i]));
    }
    assert_string_not_equal(a, b);
    char one[3];
    ids_random_hex(one, 1);
    assert_int_equal(strlen(one), 2);
    char none[1] = {'x'};
    ids_random_hex(none, 0);
    assert_int_equal(none[0], '\0');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resource_id),   cmocka_unit_test(test_ledger),
        cmocka_unit_test(test_request_id),    cmocka_unit_test(test_idempotency_key),
        cmocka_unit_test(test_uuidv7_format), cmocka_unit_test(test_uuidv7_monotonic),
        cmocka_unit_test(test_random_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
