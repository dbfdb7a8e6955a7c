/*
 * test_trace.c — W3C Trace Context: every traceparent form the parser must refuse, future
 * versions, tracestate grammar and limits, new traces, and the traceresponse header.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "obs/trace.h"

#define TID "4bf92f3577b34da6a3ce929d0e0e4736"
#define PID "00f067aa0ba902b7"
#define VALID "00-" TID "-" PID "-01"

static bool tp(const char *s, struct trace_context *out)
{
    return trace_parse_traceparent(s, strlen(s), out);
}

static bool ts(const char *s)
{
    return trace_tracestate_valid(s, strlen(s));
}

static void test_traceparent_valid(void **state)
{
    (void)state;
    struct trace_context c;
    memset(&c, 0, sizeof(c));
    assert_true(tp(VALID, &c));
    assert_string_equal(c.trace_id, TID);
    assert_string_equal(c.parent_id, PID);
    assert_int_equal(c.flags, 1);
    assert_true(tp("00-" TID "-" PID "-00", &c));
    assert_int_equal(c.flags, 0);
    assert_true(tp("00-" TID "-" PID "-ff", &c));
    assert_int_equal(c.flags, 0xff);
    /* Only len bytes are read. */
    assert_true(trace_parse_traceparent(VALID "garbage", 55, &c));
}

static void test_traceparent_future_version(void **state)
{
    (void)state;
    struct trace_context c;
    assert_true(tp("01-" TID "-" PID "-01", &c));
    assert_true(tp("cc-" TID "-" PID "-01-what-the-future-holds", &c));
    assert_string_equal(c.trace_id, TID);
    assert_string_equal(c.parent_id, PID);
    assert_int_equal(c.flags, 1);
    assert_true(tp("fe-" TID "-" PID "-09-", &c));
    assert_false(tp("cc-" TID "-" PID "-01x", &c));
    assert_false(tp("cc-" TID "-" PID "-0", &c));
    /* Version 00 must not have extra fields. */
    assert_false(tp(VALID "-", &c));
    assert_false(tp(VALID "-extra", &c));
}

static void test_traceparent_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "00",
        "ff-" TID "-" PID "-01",                           /* version ff */
        "00-00000000000000000000000000000000-" PID "-01",  /* zero trace-id */
        "00-" TID "-0000000000000000-01",                  /* zero parent-id */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-" PID "-01",  /* upper-case */
        "00-" TID "-00F067AA0BA902B7-01",                  /* upper-case */
        "00-" TID "-" PID "-0A",                           /* upper-case flags */
        "0A-" TID "-" PID "-01",                           /* upper-case version */
        "00-4bf92f3577b34da6a3ce929d0e0e473g-" PID "-01",  /* non-hex */
        "00-" TID "-" PID "-0g",                           /* non-hex flags */
        "0g-" TID "-" PID "-01",                           /* non-hex version */
        "00-4bf92f3577b34da6a3ce929d0e0e473-" PID "-01",   /* short trace-id */
        "00-4bf92f3577b34da6a3ce929d0e0e47366-" PID "-01", /* long trace-id */
        "00-" TID "-00f067aa0ba902b-01",                   /* short parent-id */
        "00-" TID "-00f067aa0ba902b77-01",                 /* long parent-id */
        "00-" TID "-" PID "-1",                            /* short flags */
        "00-" TID "-" PID "-011",                          /* long flags */
        "00_" TID "-" PID "-01",                           /* wrong separator */
        "00-" TID "_" PID "-01",                           /* wrong separator */
        "00-" TID "-" PID "_01",                           /* wrong separator */
        " 00-" TID "-" PID "-01",                          /* leading space */
        "00-" TID "-" PID "-01 ",                          /* trailing space */
        "000-" TID "-" PID "-01",                          /* long version */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct trace_context c;
        memset(&c, 'z', sizeof(c));
        if (tp(bad[i], &c)) {
            fail_msg("accepted: \"%s\"", bad[i]);
        }
        assert_int_equal(c.trace_id[0], 'z'); /* nothing written on failure */
    }
    struct trace_context c;
    assert_false(trace_parse_traceparent(VALID, 54, &c));
    assert_false(trace_parse_traceparent(NULL, 0, &c));
    char nul[56];
    memcpy(nul, VALID, 56);
    nul[20] = '\0';
    assert_false(trace_parse_traceparent(nul, 55, &c));
}

static void test_tracestate_valid(void **state)
{
    (void)state;
    assert_true(ts("congo=t61rcWkgMzE"));
    assert_true(ts("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
    assert_true(ts(" rojo=1 ,\tcongo=2\t"));
    assert_true(ts("a=1,,b=2"));
    assert_true(ts("a=1, ,b=2,"));
    assert_true(ts("a-b_c*d/e9=x"));
    assert_true(ts("tenant@system=v"));
    assert_true(ts("1tenant@sys-tem=v"));
    assert_true(ts("t@systemtoolong1=v")); /* system-id of 14 */
    assert_true(ts("k=v with spaces"));
    assert_true(ts("k= leading space ok"));
    assert_true(ts("k=!\"#$%&'()*+-./:;<>?@[\\]^_`{|}~"));

    char buf[LIMIT_TRACESTATE_LEN_MAX + 2];
    /* 32 members is the most. */
    size_t n = 0;
    for (int i = 0; i < LIMIT_TRACESTATE_MEMBERS_MAX; i++) {
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%sk%d=v", i ? "," : "", i);
    }
    assert_true(trace_tracestate_valid(buf, n));
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, ",k99=v");
    assert_false(trace_tracestate_valid(buf, n));

    /* 512 bytes is the most. */
    memset(buf, 'v', sizeof(buf));
    buf[0] = 'k';
    buf[1] = '=';
    buf[LIMIT_TRACESTATE_LEN_MAX / 2] = ',';
    buf[LIMIT_TRACESTATE_LEN_MAX / 2 + 1] = 'j';
    buf[LIMIT_TRACESTATE_LEN_MAX / 2 + 2] = '=';
    assert_true(trace_tracestate_valid(buf, LIMIT_TRACESTATE_LEN_MAX));
    assert_false(trace_tracestate_valid(buf, LIMIT_TRACESTATE_LEN_MAX + 1));
}

static void test_tracestate_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        ",",
        " , ",
        "novalue",
        "k=",
        "=v",
        "K=v",
        "1k=v",
        "k=v,x",
        "k=v=w",
        "k=a\x01",
        "k=a\x7f",
        "k=\xc3\xa9",
        "k v=1",
        "k=1,k=2",
        "@sys=v",
        "tenant@=v",
        "tenant@1sys=v",
        "tenant@sys@x=v",
        "ten ant@sys=v",
        "tenant@systemtoolong12=v", /* system-id over 14 */
        "_k=v",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (ts(bad[i])) {
            fail_msg("accepted: \"%s\"", bad[i]);
        }
    }
    /* Over-long key and value. */
    char key[300];
    memset(key, 'a', sizeof(key));
    memcpy(key + 256, "=v", 2);
    assert_true(trace_tracestate_valid(key, 258));
    memcpy(key + 257, "=v", 2);
    assert_false(trace_tracestate_valid(key, 259));
    char val[300];
    memset(val, 'x', sizeof(val));
    memcpy(val, "k=", 2);
    assert_true(trace_tracestate_valid(val, 2 + 256));
    assert_false(trace_tracestate_valid(val, 2 + 257));
    assert_false(trace_tracestate_valid("k=v\0", 4));
    assert_false(trace_tracestate_valid(NULL, 0));
}

static bool all_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return s[n] == '\0';
}

static void test_begin_continue(void **state)
{
    (void)state;
    struct trace_context c;
    const char *st = "rojo=00f067aa0ba902b7";
    trace_begin(&c, VALID, strlen(VALID), st, strlen(st));
    assert_true(c.continued);
    assert_string_equal(c.trace_id, TID);
    assert_string_equal(c.parent_id, PID);
    assert_int_equal(c.flags, 1);
    assert_string_equal(c.tracestate, st);
    assert_true(all_lower_hex(c.span_id, TRACE_SPAN_HEX_LEN));
    assert_string_not_equal(c.span_id, PID);

    /* Invalid tracestate is dropped; the trace still continues. */
    trace_begin(&c, VALID, strlen(VALID), "K=v", 3);
    assert_true(c.continued);
    assert_string_equal(c.tracestate, "");

    char out[TRACE_PARENT_LEN + 1];
    const char *v00 = "00-" TID "-" PID "-00";
    trace_begin(&c, v00, strlen(v00), NULL, 0);
    trace_format_response(&c, out);
    assert_int_equal(strlen(out), TRACE_PARENT_LEN);
    assert_memory_equal(out, "00-" TID "-", 36);
    assert_memory_equal(out + 36, c.span_id, 16);
    assert_string_equal(out + 52, "-00");
    struct trace_context back;
    assert_true(trace_parse_traceparent(out, strlen(out), &back));
}

static void test_begin_new(void **state)
{
    (void)state;
    struct trace_context a, b;
    const char *bad = "ff-" TID "-" PID "-01";
    trace_begin(&a, bad, strlen(bad), "rojo=1", 6);
    assert_false(a.continued);
    assert_string_equal(a.parent_id, "");
    assert_string_equal(a.tracestate, ""); /* only kept with a valid traceparent */
    assert_int_equal(a.flags, 1);
    assert_true(all_lower_hex(a.trace_id, TRACE_ID_HEX_LEN));
    assert_true(all_lower_hex(a.span_id, TRACE_SPAN_HEX_LEN));
    assert_string_not_equal(a.trace_id, TID);

    trace_begin(&b, NULL, 0, NULL, 0);
    assert_false(b.continued);
    assert_string_not_equal(a.trace_id, b.trace_id);
    assert_string_not_equal(a.span_id, b.span_id);

    char out[TRACE_PARENT_LEN + 1];
    trace_format_response(&b, out);
    assert_int_equal(strlen(out), TRACE_PARENT_LEN);
    assert_memory_equal(out + 3, b.trace_id, 32);
    assert_string_equal(out + 52, "-01");
    struct trace_context back;
    assert_true(trace_parse_traceparent(out, strlen(out), &back));

    for (int i = 0; i < 1000; i++) {
        trace_begin(&b, "", 0, "", 0);
        assert_true(trace_parse_traceparent(out, strlen(out), &back));
        assert_string_not_equal(b.trace_id, "00000000000000000000000000000000");
        assert_string_not_equal(b.span_id, "0000000000000000");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traceparent_valid),
        cmocka_unit_test(test_traceparent_future_version),
        cmocka_unit_test(test_traceparent_invalid),
        cmocka_unit_test(test_tracestate_valid),
        cmocka_unit_test(test_tracestate_invalid),
        cmocka_unit_test(test_begin_continue),
        cmocka_unit_test(test_begin_new),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
