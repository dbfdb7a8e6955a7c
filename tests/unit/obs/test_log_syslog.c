/*
 * test_log_syslog.c — RFC 5424 messages: PRI arithmetic over every facility and severity, the
 * timestamp, NILVALUEs, header fields cut and cleaned, escaping in structured data and SD names
 * refused, the UTF-8 BOM, MSG cut at a character boundary; RFC 6587 octet-counting frames.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/buf.h"
#include "obs/log_syslog.h"

#define T_2026 1769493600123LL /* 2026-01-27T06:00:00.123Z */

static char out[LOG_SYSLOG_MSG_BYTES_MAX];

static struct log_syslog_header header(uint32_t facility, uint32_t severity)
{
    struct log_syslog_header h = {
        .facility = facility,
        .severity = severity,
        .unix_ms = T_2026,
        .hostname = "host-1",
        .app_name = "ledgerd",
        .procid = "4242",
        .msgid = NULL,
        .sd = NULL,
    };
    return h;
}

static void test_pri_every_facility_and_severity(void **state)
{
    (void)state;
    for (uint32_t f = 0; f <= 23; f++) {
        for (uint32_t s = 0; s <= 7; s++) {
            struct log_syslog_header h = header(f, s);
            size_t len = log_syslog_format(&h, "x", 1, out, sizeof(out));
            char want[16];
            snprintf(want, sizeof(want), "<%u>1 ", f * 8 + s);
            assert_int_equal(strncmp(out, want, strlen(want)), 0);
            assert_int_equal(len, strlen(out));
        }
    }
    /* local0.info is 134, kern.emerg 0, local7.debug 191 (RFC 5424 section 6.2.1). */
    struct log_syslog_header h = header(16, 6);
    log_syslog_format(&h, "m", 1, out, sizeof(out));
    assert_string_equal(out, "<134>1 2026-01-27T06:00:00.123Z host-1 ledgerd 4242 - - m");
    h = header(23, 7);
    log_syslog_format(&h, "m", 1, out, sizeof(out));
    assert_int_equal(strncmp(out, "<191>1 ", 7), 0);
    h = header(0, 0);
    log_syslog_format(&h, "m", 1, out, sizeof(out));
    assert_int_equal(strncmp(out, "<0>1 ", 5), 0);
}

static void test_severity_mapping(void **state)
{
    (void)state;
    assert_int_equal(log_syslog_severity(CONFIG_LOG_DEBUG), 7);
    assert_int_equal(log_syslog_severity(CONFIG_LOG_INFO), 6);
    assert_int_equal(log_syslog_severity(CONFIG_LOG_WARN), 4);
    assert_int_equal(log_syslog_severity(CONFIG_LOG_ERROR), 3);
}

static void test_timestamp_and_nil_fields(void **state)
{
    (void)state;
    struct log_syslog_header h = header(1, 5);
    h.unix_ms = 0;
    h.hostname = "";
    h.app_name = NULL;
    h.procid = NULL;
    h.msgid = "";
    size_t len = log_syslog_format(&h, NULL, 0, out, sizeof(out));
    assert_string_equal(out, "<13>1 1970-01-01T00:00:00.000Z - - - - -");
    assert_int_equal(len, strlen(out));
    /* Leap-year day and the last millisecond of a year. */
    h.unix_ms = 1709208000999LL; /* 2024-02-29T12:00:00.999Z */
    log_syslog_format(&h, "m", 1, out, sizeof(out));
    assert_non_null(strstr(out, " 2024-02-29T12:00:00.999Z "));
}

static void test_header_fields_cleaned_and_cut(void **state)
{
    (void)state;
    char host[400];
    memset(host, 'h', sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    struct log_syslog_header h = header(16, 6);
    h.hostname = host;
    h.app_name = "led gerd\x01\xc3\xa9";                  /* space, control and non-ASCII bytes */
    h.msgid = "0123456789012345678901234567890123456789"; /* 40 > 32 */
    log_syslog_format(&h, "m", 1, out, sizeof(out));
    /* Split into the space-separated header fields. */
    char *fields[8];
    char *p = out;
    for (int i = 0; i < 7; i++) {
        fields[i] = p;
        p = strchr(p, ' ');
        assert_non_null(p);
        *p++ = '\0';
    }
    assert_int_equal(strlen(fields[2]), LOG_SYSLOG_HOSTNAME_LEN_MAX);
    assert_string_equal(fields[3], "led_gerd___");
    assert_int_equal(strlen(fields[5]), LOG_SYSLOG_MSGID_LEN_MAX);
    assert_string_equal(fields[6], "-");
    assert_string_equal(p, "m");
}

static void test_sd_escaping(void **state)
{
    (void)state;
    char mem[LOG_SYSLOG_SD_BYTES_MAX];
    struct buf sd;
    buf_init(&sd, sizeof(mem));
    const char *params[] = {"a", "quote\" back\\slash ]bracket", "b", ""};
    assert_int_equal(log_syslog_sd_append(&sd, "x@32473", params, 2), 0);
    assert_string_equal(sd.data, "[x@32473 a=\"quote\\\" back\\\\slash \\]bracket\" b=\"\"]");
    const char *meta[] = {"sequenceId", "7"};
    assert_int_equal(log_syslog_sd_append(&sd, "meta", meta, 1), 0);
    assert_non_null(strstr(sd.data, "][meta sequenceId=\"7\"]"));

    struct log_syslog_header h = header(16, 6);
    h.sd = sd.data;
    log_syslog_format(&h, "{}", 2, out, sizeof(out));
    assert_non_null(strstr(out, " - [x@32473 a=\"quote"));
    assert_non_null(strstr(out, "sequenceId=\"7\"] {}"));
    buf_release(&sd);
}

static void test_sd_names_refused(void **state)
{
    (void)state;
    struct buf sd;
    buf_init(&sd, 512);
    const char *ok[] = {"n", "v"};
    const char *bad_ids[] = {
        "", "has space", "a=b", "a]", "a\"", "\x7f", "123456789012345678901234567890123" /* 33 */};
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        assert_int_equal(log_syslog_sd_append(&sd, bad_ids[i], ok, 1), -EINVAL);
    }
    const char *bad_param[] = {"na me", "v"};
    assert_int_equal(log_syslog_sd_append(&sd, "id", bad_param, 1), -EINVAL);
    assert_int_equal(sd.len, 0); /* nothing appended by a refusal */
    /* 32 characters is the longest name allowed. */
    assert_int_equal(log_syslog_sd_append(&sd, "12345678901234567890123456789012", ok, 1), 0);

    /* A value that does not fit leaves the buffer as it was. */
    struct buf small;
    buf_init(&small, 16);
    const char *long_value[] = {"n", "a value far too long for sixteen bytes"};
    assert_int_equal(log_syslog_sd_append(&small, "id", long_value, 1), -ENOSPC);
    assert_int_equal(small.len, 0);
    buf_release(&small);
    buf_release(&sd);
}

static void test_bom_only_for_utf8(void **state)
{
    (void)state;
    struct log_syslog_header h = header(16, 6);
    size_t len = log_syslog_format(&h, "{\"body\":\"plain\"}", 16, out, sizeof(out));
    assert_null(strstr(out, "\xEF\xBB\xBF"));
    assert_string_equal(out + len - 16, "{\"body\":\"plain\"}");
    log_syslog_format(&h, "{\"body\":\"caf\xc3\xa9\"}", 17, out, sizeof(out));
    assert_non_null(strstr(out, " - \xEF\xBB\xBF{\"body\":\"caf\xc3\xa9\"}"));
}

static void test_length_limit_cuts_at_utf8_boundary(void **state)
{
    (void)state;
    /* A message of "é" (2 bytes each) into a buffer that ends in the middle of one. */
    static char msg[4000];
    for (size_t i = 0; i < sizeof(msg); i += 2) {
        msg[i] = (char)0xc3;
        msg[i + 1] = (char)0xa9;
    }
    static char small[1201];
    struct log_syslog_header h = header(16, 6);
    for (size_t cap = 1024; cap <= sizeof(small); cap += 37) {
        size_t len = log_syslog_format(&h, msg, sizeof(msg), small, cap);
        assert_true(len < cap);
        assert_int_equal(small[len], '\0');
        const char *body = strstr(small, "\xEF\xBB\xBF");
        assert_non_null(body);
        body += 3;
        size_t body_len = (size_t)(small + len - body);
        assert_int_equal(body_len % 2, 0); /* whole characters only */
        assert_true(len >= cap - 2);       /* and no more cut than needed */
    }
    /* A full log line always fits in a message of the maximum size. */
    static char line[LIMIT_LOG_LINE_BYTES_MAX];
    memset(line, 'a', sizeof(line));
    char host[LOG_SYSLOG_HOSTNAME_LEN_MAX + 1];
    memset(host, 'h', sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    h.hostname = host;
    size_t len = log_syslog_format(&h, line, sizeof(line), out, sizeof(out));
    assert_memory_equal(out + len - sizeof(line), line, sizeof(line));
}

static void test_octet_counting_frame(void **state)
{
    (void)state;
    char frame[64];
    size_t n = log_syslog_frame("<134>1 x", 8, frame, sizeof(frame));
    assert_int_equal(n, 10);
    assert_memory_equal(frame, "8 <134>1 x", 10);
    /* Length counts octets, not characters; the message may hold newlines (that is why TCP
     * syslog needs octet counting). */
    n = log_syslog_frame("a\nb\xc3\xa9", 5, frame, sizeof(frame));
    assert_memory_equal(frame, "5 a\nb\xc3\xa9", 7);
    assert_int_equal(n, 7);
    /* Boundary: exactly fits, one byte short. */
    assert_int_equal(log_syslog_frame("abc", 3, frame, 5), 5);
    assert_int_equal(log_syslog_frame("abc", 3, frame, 4), 0);
    /* A length of several digits. */
    static char big[LOG_SYSLOG_FRAME_BYTES_MAX];
    static char msg[LOG_SYSLOG_MSG_BYTES_MAX];
    memset(msg, 'm', sizeof(msg));
    n = log_syslog_frame(msg, sizeof(msg), big, sizeof(big));
    char want[16];
    int w = snprintf(want, sizeof(want), "%zu ", sizeof(msg));
    assert_int_equal(n, (size_t)w + sizeof(msg));
    assert_memory_equal(big, want, (size_t)w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pri_every_facility_and_severity),
        cmocka_unit_test(test_severity_mapping),
        cmocka_unit_test(test_timestamp_and_nil_fields),
        cmocka_unit_test(test_header_fields_cleaned_and_cut),
        cmocka_unit_test(test_sd_escaping),
        cmocka_unit_test(test_sd_names_refused),
        cmocka_unit_test(test_bom_only_for_utf8),
        cmocka_unit_test(test_length_limit_cuts_at_utf8_boundary),
        cmocka_unit_test(test_octet_counting_frame),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
