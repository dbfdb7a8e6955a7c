/*
 * test_clock.c — RFC 3339 formatting of known instants and the behaviour of the clocks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <string.h>
#include <cmocka.h>

#include "core/clock.h"

static void check_format(int64_t ms, const char *expected)
{
    char out[CLOCK_RFC3339_MS_LEN + 1];
    memset(out, 'x', sizeof(out));
    assert_int_equal(clock_format_rfc3339_ms(ms, out), CLOCK_RFC3339_MS_LEN);
    assert_string_equal(out, expected);
}

static void test_known_instants(void **state)
{
    (void)state;
    check_format(0, "1970-01-01T00:00:00.000Z");
    check_format(1, "1970-01-01T00:00:00.001Z");
    check_format(999, "1970-01-01T00:00:00.999Z");
    check_format(1000, "1970-01-01T00:00:01.000Z");
    check_format(1795752000123, "2026-11-27T04:00:00.123Z");
    check_format(951782400000, "2000-02-29T00:00:00.000Z");
    check_format(1709210096789, "2024-02-29T12:34:56.789Z");
    check_format(4102444799999, "2099-12-31T23:59:59.999Z");
}

static void test_negative_is_clamped(void **state)
{
    (void)state;
    check_format(-1, "1970-01-01T00:00:00.000Z");
    check_format(INT64_MIN, "1970-01-01T00:00:00.000Z");
}

static void test_far_future_is_clamped(void **state)
{
    (void)state;
    check_format(INT64_MAX, "9999-12-31T23:59:59.999Z");
}

static void test_clocks(void **state)
{
    (void)state;
    int64_t ms = clock_unix_ms();
    int64_t ns = clock_unix_ns();
    assert_true(ms > INT64_C(1600000000000)); /* after 2020 */
    assert_true(ns / 1000000 >= ms);
    assert_true(ns / 1000000 - ms < 1000);
    int64_t a = clock_mono_ns();
    int64_t b = clock_mono_ns();
    assert_true(a >= 0);
    assert_true(b >= a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_instants),
        cmocka_unit_test(test_negative_is_clamped),
        cmocka_unit_test(test_far_future_is_clamped),
        cmocka_unit_test(test_clocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
