/*
 * test_auth.c — which credentials need the database: only a well-formed bearer token in the API
 * key form. The server decides every other one from the headers, before the body.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "auth/auth.h"

static bool needs(const char *h)
{
    return auth_needs_store(h, h != NULL ? strlen(h) : 0);
}

static void test_only_api_keys_need_the_store(void **state)
{
    (void)state;
    assert_true(needs("Bearer ldk_0123456789abcdef_secret"));
    assert_true(needs("bearer   ldk_x"));
    assert_false(needs(NULL));
    assert_false(needs(""));
    assert_false(needs("Bearer"));
    assert_false(needs("Bearer "));
    assert_false(needs("Bearer ldk"));
    assert_false(needs("Bearer LDK_0123"));                     /* the prefix is lower case */
    assert_false(needs("Bearer eyJhbGciOiJFZERTQSJ9.e30.sig")); /* a JWT */
    assert_false(needs("Basic bGRrXzAxMjM="));
    assert_false(needs("Bearer ldk_01 23"));     /* not one token68 */
    assert_false(needs("Bearerldk_0123"));       /* no space after the scheme */
    assert_false(needs("Bearer ldk_0123\r\nX")); /* control characters */
    /* Only len bytes count: a header cut before the prefix is not an API key. */
    assert_false(auth_needs_store("Bearer ldk_0123", 10));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_only_api_keys_need_the_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
