/*
 * test_buf.c — growable buffers with a maximum: appends, the all-or-nothing -ENOSPC rule,
 * formatting, ownership transfer and JSON string escaping (including invalid UTF-8).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/buf.h"

static void test_append_basic(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1024);
    assert_null(b.data);
    assert_int_equal(buf_append_str(&b, "abc"), 0);
    assert_int_equal(buf_append_char(&b, '-'), 0);
    assert_int_equal(buf_append(&b, "xyz", 2), 0);
    assert_int_equal(buf_append(&b, NULL, 0), 0);
    assert_string_equal(b.data, "abc-xy");
    assert_int_equal(b.len, 6);
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    assert_int_equal(buf_append_u64(&b, 0), 0);
    assert_int_equal(buf_append_char(&b, ' '), 0);
    assert_int_equal(buf_append_u64(&b, UINT64_MAX), 0);
    assert_int_equal(buf_append_char(&b, ' '), 0);
    assert_int_equal(buf_append_i64(&b, INT64_MIN), 0);
    assert_int_equal(buf_append_char(&b, ' '), 0);
    assert_int_equal(buf_append_i64(&b, -1), 0);
    assert_int_equal(buf_append_char(&b, ' '), 0);
    assert_int_equal(buf_append_i64(&b, INT64_MAX), 0);
    assert_string_equal(b.data,
                        "0 18446744073709551615 -9223372036854775808 -1 9223372036854775807");
    buf_release(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    /* Reusable after release. */
    assert_int_equal(buf_append_str(&b, "again"), 0);
    assert_string_equal(b.data, "again");
    buf_release(&b);
}

static void test_growth_to_exact_max(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1000);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(buf_append_char(&b, 'a'), 0);
        assert_true(b.cap <= 1001);
        assert_true(b.cap >= b.len + 1);
    }
    assert_int_equal(b.len, 1000);
    assert_int_equal(b.data[1000], '\0');
    assert_int_equal(buf_append_char(&b, 'b'), -ENOSPC);
    assert_int_equal(b.len, 1000);
    assert_int_equal(b.data[1000], '\0');
    buf_release(&b);
}

static void test_enospc_leaves_buffer_unchanged(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 8);
    assert_int_equal(buf_append_str(&b, "12345"), 0);
    assert_int_equal(buf_append_str(&b, "6789"), -ENOSPC);
    assert_string_equal(b.data, "12345");
    assert_int_equal(buf_appendf(&b, "%s", "abcd"), -ENOSPC);
    assert_string_equal(b.data, "12345");
    assert_int_equal(b.len, 5);
    assert_int_equal(buf_append_u64(&b, 1234), -ENOSPC);
    assert_int_equal(buf_append_i64(&b, -123), -ENOSPC);
    assert_int_equal(buf_append_json_str(&b, "ab", 2), -ENOSPC); /* "ab" with quotes is 4 */
    assert_string_equal(b.data, "12345");
    assert_int_equal(buf_append_json_str(&b, "a", 1), 0);
    assert_string_equal(b.data, "12345\"a\"");
    assert_int_equal(buf_append_char(&b, 'x'), -ENOSPC);
    assert_string_equal(b.data, "12345\"a\"");
    buf_release(&b);

    /* A zero maximum still yields a valid empty string. */
    buf_init(&b, 0);
    assert_int_equal(buf_append_char(&b, 'x'), -ENOSPC);
    assert_int_equal(buf_append(&b, "", 0), 0);
    assert_string_equal(b.data, "");
    buf_release(&b);
}

static void test_appendf(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 100000);
    assert_int_equal(buf_appendf(&b, "%d-%s", 42, "x"), 0);
    assert_string_equal(b.data, "42-x");
    /* Longer than the current capacity: the second pass must see the same arguments. */
    char big[5000];
    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(buf_appendf(&b, "[%s]%d", big, 7), 0);
    assert_int_equal(b.len, 4 + 1 + 4999 + 1 + 1);
    assert_int_equal(b.data[b.len - 1], '7');
    assert_int_equal(b.data[b.len - 2], ']');
    buf_release(&b);
}

static void test_take(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 64);
    size_t len = 99;
    char *p = buf_take(&b, &len); /* empty buffer: still a valid string */
    assert_non_null(p);
    assert_int_equal(len, 0);
    assert_string_equal(p, "");
    free(p);
    assert_int_equal(buf_append_str(&b, "hello"), 0);
    p = buf_take(&b, &len);
    assert_int_equal(len, 5);
    assert_string_equal(p, "hello");
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    free(p);
    buf_release(&b);
}

static void check_json(const char *in, size_t in_len, const char *expected)
{
    struct buf b;
    buf_init(&b, 4096);
    assert_int_equal(buf_append_json_str(&b, in, in_len), 0);
    assert_string_equal(b.data, expected);
    /* Whatever went in, the output is a JSON string a strict parser accepts. */
    json_error_t err;
    json_t *j = json_loadb(b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    assert_non_null(j);
    assert_true(json_is_string(j));
    json_decref(j);
    buf_release(&b);
}

static void test_json_escapes(void **state)
{
    (void)state;
    check_json("", 0, "\"\"");
    check_json("plain", 5, "\"plain\"");
    check_json("a\"b\\c/d", 7, "\"a\\\"b\\\\c/d\"");
    check_json("\n\r\t\b\f", 5, "\"\\n\\r\\t\\b\\f\"");
    check_json("\x01\x1f\x7f", 3, "\"\\u0001\\u001f\x7f\"");
    check_json("a\0b", 3, "\"a\\u0000b\"");
}

static void test_json_utf8(void **state)
{
    (void)state;
    /* Valid: 2, 3 and 4 byte sequences, the edges of each range. */
    check_json("\xc3\xa9", 2, "\"\xc3\xa9\"");
    check_json("\xe2\x82\xac", 3, "\"\xe2\x82\xac\"");
    check_json("\xf0\x9f\x98\x80", 4, "\"\xf0\x9f\x98\x80\"");
    check_json("\xf4\x8f\xbf\xbf", 4, "\"\xf4\x8f\xbf\xbf\""); /* U+10FFFF */
    check_json("\xed\x9f\xbf", 3, "\"\xed\x9f\xbf\"");         /* U+D7FF */
    check_json("\xee\x80\x80", 3, "\"\xee\x80\x80\"");         /* U+E000 */

    /* Invalid: each becomes U+FFFD. */
    check_json("\xc0\xaf", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\"");                 /* overlong '/' */
    check_json("\xe0\x80\xaf", 3, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""); /* overlong */
    check_json("\xed\xa0\x80", 3, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""); /* surrogate */
    check_json("\xf4\x90\x80\x80", 4,
               "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""); /* > U+10FFFF */
    check_json("\xf5", 1, "\"\xef\xbf\xbd\"");
    check_json("\xff", 1, "\"\xef\xbf\xbd\"");
    check_json("\x80", 1, "\"\xef\xbf\xbd\"");
    check_json("a\xe2\x82", 3, "\"a\xef\xbf\xbd\"");   /* truncated at the end */
    check_json("\xe2\x82z", 3, "\"\xef\xbf\xbdz\"");   /* truncated by ASCII */
    check_json("\xf0\x9f\x98", 3, "\"\xef\xbf\xbd\""); /* truncated 4-byte */
    check_json("\xc3", 1, "\"\xef\xbf\xbd\"");
}

static void test_json_hostile_bytes(void **state)
{
    (void)state;
    /* Every byte value, in every position: the output must always parse. */
    char in[512];
    for (int i = 0; i < 512; i++) {
        in[i] = (char)(unsigned char)((i * 37 + 11) & 0xff);
    }
    struct buf b;
    buf_init(&b, 65536);
    for (size_t len = 0; len <= sizeof(in); len += 7) {
        buf_reset(&b);
        assert_int_equal(buf_append_json_str(&b, in, len), 0);
        json_error_t err;
        json_t *j = json_loadb(b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        assert_non_null(j);
        json_decref(j);
    }
    buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_basic),
        cmocka_unit_test(test_growth_to_exact_max),
        cmocka_unit_test(test_enospc_leaves_buffer_unchanged),
        cmocka_unit_test(test_appendf),
        cmocka_unit_test(test_take),
        cmocka_unit_test(test_json_escapes),
        cmocka_unit_test(test_json_utf8),
        cmocka_unit_test(test_json_hostile_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
