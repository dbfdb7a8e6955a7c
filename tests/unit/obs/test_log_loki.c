/*
 * test_log_loki.c — Loki push batches: the JSON body parsed back strictly (streams per level,
 * the bounded label set, nanosecond timestamps as strings, lines intact with their escapes),
 * batching by count, by bytes and by time, and hostile line content.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/buf.h"
#include "core/limits.h"
#include "obs/log_loki.h"

#define MS 1000000LL

static json_t *body_of(const struct log_loki_batch *b, const char *env)
{
    struct buf out;
    buf_init(&out, 2 * b->text_bytes_max + 64 * b->count_max + 65536);
    assert_int_equal(log_loki_batch_json(b, env, &out), 0);
    json_error_t err;
    json_t *j = json_loadb(out.data, out.len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
    if (j == NULL) {
        fail_msg("invalid JSON (%s): %.300s", err.text, out.data);
    }
    buf_release(&out);
    return j;
}

static json_t *stream_for(json_t *body, const char *level)
{
    json_t *streams = json_object_get(body, "streams");
    assert_true(json_is_array(streams));
    size_t i;
    json_t *s;
    json_array_foreach(streams, i, s)
    {
        json_t *labels = json_object_get(s, "stream");
        if (strcmp(json_string_value(json_object_get(labels, "level")), level) == 0) {
            return s;
        }
    }
    return NULL;
}

static void test_body_shape(void **state)
{
    (void)state;
    struct log_loki_batch b;
    assert_int_equal(log_loki_batch_init(&b, 10, LIMIT_LOG_LINE_BYTES_MAX * 2), 0);
    const char *l1 = "{\"body\":\"one\",\"request_id\":\"r1\"}\n";
    const char *l2 = "{\"body\":\"two \\\"quoted\\\" \\\\ back\"}\n";
    const char *l3 = "{\"body\":\"three\"}\n";
    assert_int_equal(
        log_loki_batch_add(&b, CONFIG_LOG_INFO, 1769493600123456789LL, l1, strlen(l1), 5 * MS), 0);
    assert_int_equal(log_loki_batch_add(&b, CONFIG_LOG_ERROR, 2, l2, strlen(l2), 6 * MS), 0);
    assert_int_equal(log_loki_batch_add(&b, CONFIG_LOG_INFO, 3, l3, strlen(l3), 7 * MS), 0);

    json_t *body = body_of(&b, "prod");
    assert_int_equal(json_object_size(body), 1);
    json_t *streams = json_object_get(body, "streams");
    assert_int_equal(json_array_size(streams), 2); /* info and error; no empty streams */

    json_t *info = stream_for(body, "info");
    assert_non_null(info);
    json_t *labels = json_object_get(info, "stream");
    assert_int_equal(json_object_size(labels), 3); /* service, environment, level: no ids */
    assert_string_equal(json_string_value(json_object_get(labels, "service")), "ledgerd");
    assert_string_equal(json_string_value(json_object_get(labels, "environment")), "prod");
    json_t *values = json_object_get(info, "values");
    assert_int_equal(json_array_size(values), 2);
    json_t *v0 = json_array_get(values, 0);
    assert_int_equal(json_array_size(v0), 2);
    /* The timestamp is a string of nanoseconds, not a number. */
    assert_true(json_is_string(json_array_get(v0, 0)));
    assert_string_equal(json_string_value(json_array_get(v0, 0)), "1769493600123456789");
    /* The line is the log line itself, without its newline. */
    assert_string_equal(json_string_value(json_array_get(v0, 1)),
                        "{\"body\":\"one\",\"request_id\":\"r1\"}");
    assert_string_equal(json_string_value(json_array_get(json_array_get(values, 1), 0)), "3");

    json_t *error = stream_for(body, "error");
    json_t *e0 = json_array_get(json_object_get(error, "values"), 0);
    assert_string_equal(json_string_value(json_array_get(e0, 1)),
                        "{\"body\":\"two \\\"quoted\\\" \\\\ back\"}");
    /* The line inside is itself valid JSON again. */
    json_t *inner = json_loads(json_string_value(json_array_get(e0, 1)), 0, NULL);
    assert_non_null(inner);
    assert_string_equal(json_string_value(json_object_get(inner, "body")),
                        "two \"quoted\" \\ back");
    json_decref(inner);
    json_decref(body);
    log_loki_batch_release(&b);
}

static void test_empty_batch(void **state)
{
    (void)state;
    struct log_loki_batch b;
    assert_int_equal(log_loki_batch_init(&b, 4, LIMIT_LOG_LINE_BYTES_MAX), 0);
    json_t *body = body_of(&b, "dev");
    assert_int_equal(json_array_size(json_object_get(body, "streams")), 0);
    json_decref(body);
    assert_false(log_loki_batch_due(&b, 1000000 * MS, 10));
    log_loki_batch_release(&b);
}

static void test_batching_by_count_and_time(void **state)
{
    (void)state;
    struct log_loki_batch b;
    assert_int_equal(log_loki_batch_init(&b, 3, LIMIT_LOG_LINE_BYTES_MAX), 0);
    assert_int_equal(log_loki_batch_add(&b, CONFIG_LOG_INFO, 1, "a\n", 2, 100 * MS), 0);
    assert_false(log_loki_batch_due(&b, 100 * MS, 50));
    assert_false(log_loki_batch_due(&b, 149 * MS, 50)); /* boundary: 49 ms waited */
    assert_true(log_loki_batch_due(&b, 150 * MS, 50));  /* 50 ms waited */
    /* The clock starts with the first line, not the latest. */
    assert_int_equal(log_loki_batch_add(&b, CONFIG_LOG_INFO, 2, "b\n", 2, 140 * MS), 0);
    assert_true(log_loki_batch_due(&b, 150 * MS, 50));
    assert_int_equal(log_loki_batch_add(&b, CONFIG_LOG_INFO, 3, "c\n", 2, 141 * MS), 0);
    assert_true(log_loki_batch_due(&b, 101 * MS, 60000)); /* full by count */
    assert_int_equal(log_loki_batch_add(&b, CONFIG_LOG_INFO, 4, "d\n", 2, 142 * MS), -ENOSPC);
    assert_int_equal(b.count, 3);
    log_loki_batch_reset(&b);
    assert_int_equal(b.count, 0);
    assert_int_equal(log_loki_batch_add(&b, CONFIG_LOG_WARN, 4, "d\n", 2, 500 * MS), 0);
    assert_false(log_loki_batch_due(&b, 549 * MS, 50));
    json_t *body = body_of(&b, "dev");
    json_t *warn = stream_for(body, "warn");
    assert_string_equal(
        json_string_value(json_array_get(json_array_get(json_object_get(warn, "values"), 0), 1)),
        "d");
    json_decref(body);
    log_loki_batch_release(&b);
}

static void test_batching_by_bytes(void **state)
{
    (void)state;
    struct log_loki_batch b;
    assert_int_equal(log_loki_batch_init(&b, 1000, LIMIT_LOG_LINE_BYTES_MAX), 0);
    static char line[LIMIT_LOG_LINE_BYTES_MAX];
    memset(line, 'x', sizeof(line));
    /* Exactly full, then not one byte more. */
    assert_int_equal(log_loki_batch_add(&b, CONFIG_LOG_INFO, 1, line, sizeof(line) - 10, 0), 0);
    assert_int_equal(log_loki_batch_add(&b, CONFIG_LOG_INFO, 2, line, 10, 0), 0);
    assert_int_equal(log_loki_batch_add(&b, CONFIG_LOG_INFO, 3, line, 1, 0), -ENOSPC);
    /* The newline does not count: a line of limit+1 bytes ending in \n still fits an empty
     * batch. */
    log_loki_batch_reset(&b);
    static char with_nl[LIMIT_LOG_LINE_BYTES_MAX + 1];
    memset(with_nl, 'y', sizeof(with_nl));
    with_nl[sizeof(with_nl) - 1] = '\n';
    assert_int_equal(log_loki_batch_add(&b, CONFIG_LOG_DEBUG, 1, with_nl, sizeof(with_nl), 0), 0);
    assert_int_equal(b.text_len, LIMIT_LOG_LINE_BYTES_MAX);
    log_loki_batch_release(&b);
}

static void test_hostile_content(void **state)
{
    (void)state;
    struct log_loki_batch b;
    assert_int_equal(log_loki_batch_init(&b, 8, LIMIT_LOG_LINE_BYTES_MAX), 0);
    /* Raw control bytes, quotes, invalid UTF-8 and a NUL in the middle: the body stays valid
     * JSON whatever a line holds. */
    const char hostile[] = "a\"b\\c\x01\x1f\t\r\xff\xfe\xc3(\0tail";
    assert_int_equal(log_loki_batch_add(&b, CONFIG_LOG_INFO, 9, hostile, sizeof(hostile) - 1, 0),
                     0);
    json_t *body = body_of(&b, "env \"quoted\"");
    json_t *info = stream_for(body, "info");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(info, "stream"), "environment")),
        "env \"quoted\"");
    json_t *v = json_array_get(json_object_get(info, "values"), 0);
    size_t len = json_string_length(json_array_get(v, 1));
    assert_true(len >= sizeof(hostile) - 1 - 3); /* nothing silently left out */
    json_decref(body);
    log_loki_batch_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_body_shape),
        cmocka_unit_test(test_empty_batch),
        cmocka_unit_test(test_batching_by_count_and_time),
        cmocka_unit_test(test_batching_by_bytes),
        cmocka_unit_test(test_hostile_content),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
