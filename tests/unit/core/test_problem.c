/*
 * test_problem.c — RFC 9457 problem documents: every member present, strings escaped, the
 * output valid JSON whatever the detail holds, and no half document when the buffer is full.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <errno.h>
#include <jansson.h>
#include <string.h>
#include <cmocka.h>

#include "core/problem.h"

static json_t *parse(const struct buf *b)
{
    json_error_t err;
    json_t *j = json_loadb(b->data, b->len, JSON_REJECT_DUPLICATES, &err);
    assert_non_null(j);
    assert_true(json_is_object(j));
    return j;
}

static void test_titles(void **state)
{
    (void)state;
    assert_string_equal(problem_title(400), "Bad Request");
    assert_string_equal(problem_title(404), "Not Found");
    assert_string_equal(problem_title(405), "Method Not Allowed");
    assert_string_equal(problem_title(409), "Conflict");
    assert_string_equal(problem_title(413), "Content Too Large");
    assert_string_equal(problem_title(415), "Unsupported Media Type");
    assert_string_equal(problem_title(422), "Unprocessable Content");
    assert_string_equal(problem_title(429), "Too Many Requests");
    assert_string_equal(problem_title(431), "Request Header Fields Too Large");
    assert_string_equal(problem_title(500), "Internal Server Error");
    assert_string_equal(problem_title(503), "Service Unavailable");
    assert_string_equal(problem_title(418), "Error");
    assert_string_equal(problem_title(0), "Error");
}

static void test_minimal(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 4096);
    assert_int_equal(problem_write(&b, 404, "not_found", NULL, NULL, NULL, 0, NULL), 0);
    json_t *j = parse(&b);
    assert_int_equal(json_object_size(j), 6);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "/problems/not_found");
    assert_string_equal(json_string_value(json_object_get(j, "title")), "Not Found");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 404);
    assert_string_equal(json_string_value(json_object_get(j, "detail")), "Not Found");
    assert_string_equal(json_string_value(json_object_get(j, "code")), "not_found");
    assert_true(json_is_null(json_object_get(j, "request_id")));
    assert_null(json_object_get(j, "errors"));
    json_decref(j);
    buf_release(&b);
}

static void test_full(void **state)
{
    (void)state;
    struct problem_field_error errors[2] = {
        {.field = "transfers[3].amount", .code = "amount_invalid", .detail = "not \"canonical\""},
        {.field = "ledger", .code = "ledger_invalid", .detail = "bad\n\x01\xff"},
    };
    struct buf b;
    buf_init(&b, 4096);
    assert_int_equal(buf_append_str(&b, "prefix:"), 0); /* problem_write appends */
    assert_int_equal(problem_write(&b, 400, "amount_invalid", "it \"broke\"\\ \t\xc3", "req-1",
                                   errors, 2, "\"retry_after_seconds\":1"),
                     0);
    assert_memory_equal(b.data, "prefix:", 7);
    json_error_t err;
    json_t *j = json_loadb(b.data + 7, b.len - 7, JSON_REJECT_DUPLICATES, &err);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "/problems/amount_invalid");
    assert_string_equal(json_string_value(json_object_get(j, "title")), "Bad Request");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 400);
    assert_string_equal(json_string_value(json_object_get(j, "detail")),
                        "it \"broke\"\\ \t\xef\xbf\xbd");
    assert_string_equal(json_string_value(json_object_get(j, "request_id")), "req-1");
    assert_int_equal(json_integer_value(json_object_get(j, "retry_after_seconds")), 1);
    json_t *arr = json_object_get(j, "errors");
    assert_true(json_is_array(arr));
    assert_int_equal(json_array_size(arr), 2);
    json_t *e0 = json_array_get(arr, 0);
    assert_string_equal(json_string_value(json_object_get(e0, "field")), "transfers[3].amount");
    assert_string_equal(json_string_value(json_object_get(e0, "code")), "amount_invalid");
    assert_string_equal(json_string_value(json_object_get(e0, "detail")), "not \"canonical\"");
    json_t *e1 = json_array_get(arr, 1);
    assert_string_equal(json_string_value(json_object_get(e1, "detail")), "bad\n\x01\xef\xbf\xbd");
    json_decref(j);
    buf_release(&b);
}

static void test_request_id_escaped(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 4096);
    assert_int_equal(
        problem_write(&b, 503, "queue_full", "try later", "a\"},\"x\":{", NULL, 0, NULL), 0);
    json_t *j = parse(&b);
    assert_string_equal(json_string_value(json_object_get(j, "request_id")), "a\"},\"x\":{");
    assert_null(json_object_get(j, "x"));
    assert_string_equal(json_string_value(json_object_get(j, "title")), "Service Unavailable");
    json_decref(j);
    buf_release(&b);
}

static void test_too_small_leaves_buffer(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 60);
    assert_int_equal(buf_append_str(&b, "x"), 0);
    assert_int_equal(problem_write(&b, 500, "internal_error", NULL, "r", NULL, 0, NULL), -ENOSPC);
    assert_int_equal(b.len, 1);
    assert_string_equal(b.data, "x");
    buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_titles),
        cmocka_unit_test(test_minimal),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_request_id_escaped),
        cmocka_unit_test(test_too_small_leaves_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
