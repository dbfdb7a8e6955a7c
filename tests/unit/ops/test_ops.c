/*
 * test_ops.c — readiness: ready only when every check passes, and the checks render by name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "ops/ops.h"

static void test_ready_needs_every_check(void **state)
{
    (void)state;
    struct ops_readiness ok = {true, true, true, false};
    assert_true(ops_ready(&ok));
    struct ops_readiness r = ok;
    r.database = false;
    assert_false(ops_ready(&r));
    r = ok;
    r.migrations = false;
    assert_false(ops_ready(&r));
    r = ok;
    r.commits = false;
    assert_false(ops_ready(&r));
    r = ok;
    r.draining = true;
    assert_false(ops_ready(&r));
}

static void test_checks_render_by_name(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1024);
    struct ops_readiness r = {false, true, true, true};
    assert_int_equal(ops_render_checks(&r, &b), 0);
    assert_string_equal(b.data, "{\"database\":\"failing\",\"migrations\":\"ok\",\"commits\":"
                                "\"ok\",\"draining\":\"draining\"}");
    buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_needs_every_check),
        cmocka_unit_test(test_checks_render_by_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
