/*
 * test_u128.c — canonical decimal parsing (including hostile input), formatting, checked
 * addition and the big-endian storage form of u128 amounts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <errno.h>
#include <string.h>
#include <cmocka.h>

#include "core/u128.h"

#define MAX_DEC "340282366920938463463374607431768211455"

static int parse_str(const char *s, u128 *out)
{
    return u128_parse(s, strlen(s), out);
}

static void test_parse_valid(void **state)
{
    (void)state;
    u128 v = 42;
    assert_int_equal(parse_str("0", &v), 0);
    assert_true(v == 0);
    assert_int_equal(parse_str("1", &v), 0);
    assert_true(v == 1);
    assert_int_equal(parse_str("18446744073709551616", &v), 0); /* 2^64 */
    assert_true(v == ((u128)1 << 64));
    assert_int_equal(parse_str(MAX_DEC, &v), 0);
    assert_true(v == U128_MAX);
    assert_int_equal(parse_str("340282366920938463463374607431768211454", &v), 0);
    assert_true(v == U128_MAX - 1);
}

static void test_parse_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "340282366920938463463374607431768211456", /* max + 1 */
        "340282366920938463463374607431768211460",
        "999999999999999999999999999999999999999",  /* 39 digits, too big */
        "1000000000000000000000000000000000000000", /* 40 digits */
        "-1",
        "+1",
        "01",
        "00",
        "1e3",
        " 1",
        "1 ",
        "1.0",
        "0x10",
        "\xd9\xa1", /* Arabic-Indic digit one, not ASCII */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        u128 v = 7;
        assert_int_equal(parse_str(bad[i], &v), -EINVAL);
        assert_true(v == 7); /* untouched on failure */
    }

    char big[401];
    memset(big, '9', 400);
    big[400] = '\0';
    u128 v = 7;
    assert_int_equal(parse_str(big, &v), -EINVAL);
    big[0] = '1';
    memset(big + 1, '0', 399);
    assert_int_equal(parse_str(big, &v), -EINVAL);
    assert_int_equal(u128_parse(NULL, 0, &v), -EINVAL);
}

static void test_parse_embedded_nul_and_unterminated(void **state)
{
    (void)state;
    u128 v = 7;
    assert_int_equal(u128_parse("1\0002", 3, &v), -EINVAL);
    assert_int_equal(u128_parse("\0", 1, &v), -EINVAL);

    /* Exactly len bytes are read: no NUL after the digits, and what follows is ignored. */
    char raw[4] = {'1', '2', '3', '4'};
    assert_int_equal(u128_parse(raw, 3, &v), 0);
    assert_true(v == 123);
    assert_int_equal(u128_parse(MAX_DEC "9", 39, &v), 0);
    assert_true(v == U128_MAX);
}

static void check_round_trip(u128 v)
{
    char out[LIMIT_U128_DEC_LEN_MAX + 1];
    size_t n = u128_format(v, out);
    assert_int_equal(n, strlen(out));
    u128 back = 0;
    assert_int_equal(u128_parse(out, n, &back), 0);
    assert_true(back == v);
}

static void test_format(void **state)
{
    (void)state;
    char out[LIMIT_U128_DEC_LEN_MAX + 1];
    assert_int_equal(u128_format(0, out), 1);
    assert_string_equal(out, "0");
    assert_int_equal(u128_format(10, out), 2);
    assert_string_equal(out, "10");
    assert_int_equal(u128_format(U128_MAX, out), 39);
    assert_string_equal(out, MAX_DEC);
    assert_int_equal(u128_format((u128)UINT64_MAX, out), 20);
    assert_string_equal(out, "18446744073709551615");

    u128 p = 1;
    for (int i = 0; i < 39; i++) {
        check_round_trip(p);
        check_round_trip(p - 1);
        check_round_trip(p + 1);
        p *= 10;
    }
    for (int bit = 0; bit < 128; bit++) {
        check_round_trip((u128)1 << bit);
        check_round_trip(((u128)1 << bit) - 1);
    }
    check_round_trip(U128_MAX);
}

static void test_add(void **state)
{
    (void)state;
    u128 sum = 5;
    assert_false(u128_add_overflows(U128_MAX, 0, &sum));
    assert_true(sum == U128_MAX);
    sum = 5;
    assert_true(u128_add_overflows(U128_MAX, 1, &sum));
    assert_true(sum == 5);
    assert_true(u128_add_overflows(1, U128_MAX, &sum));
    assert_true(u128_add_overflows(U128_MAX, U128_MAX, &sum));
    assert_true(sum == 5);
    assert_false(u128_add_overflows(U128_MAX - 1, 1, &sum));
    assert_true(sum == U128_MAX);
    assert_false(u128_add_overflows(2, 3, &sum));
    assert_true(sum == 5);
}

static void test_be(void **state)
{
    (void)state;
    uint8_t b[U128_BYTES];
    u128_to_be(1, b);
    for (int i = 0; i < 15; i++) {
        assert_int_equal(b[i], 0);
    }
    assert_int_equal(b[15], 1);
    u128_to_be((u128)0x0102 << 112, b);
    assert_int_equal(b[0], 1);
    assert_int_equal(b[1], 2);

    static const char *const ordered[] = {
        "0",
        "1",
        "255",
        "256",
        "65535",
        "18446744073709551615",
        "18446744073709551616",
        "340282366920938463463374607431768211454",
        MAX_DEC,
    };
    size_t n = sizeof(ordered) / sizeof(ordered[0]);
    uint8_t prev[U128_BYTES];
    for (size_t i = 0; i < n; i++) {
        u128 v = 0;
        assert_int_equal(parse_str(ordered[i], &v), 0);
        u128_to_be(v, b);
        assert_true(u128_from_be(b) == v);
        if (i > 0) {
            assert_true(memcmp(prev, b, U128_BYTES) < 0);
        }
        memcpy(prev, b, U128_BYTES);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_invalid),
        cmocka_unit_test(test_parse_embedded_nul_and_unterminated),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_add),
        cmocka_unit_test(test_be),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
