/*
 * test_log.c — JSON log lines: every member, levels, escaping of hostile text, truncation that
 * keeps the line valid JSON, dropped-line counting, and lines from many threads not mixing.
 * Lines go to a temporary file and are read back with a strict JSON parser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/limits.h"
#include "obs/log.h"

struct capture {
    int fd;
    char path[64];
};

static int setup(void **state)
{
    static struct capture cap;
    snprintf(cap.path, sizeof(cap.path), "/tmp/test_log_XXXXXX");
    cap.fd = mkstemp(cap.path);
    if (cap.fd < 0) {
        return -1;
    }
    (void)unlink(cap.path);
    log_setup(CONFIG_LOG_DEBUG, cap.fd, "staging");
    *state = &cap;
    return 0;
}

static int teardown(void **state)
{
    struct capture *cap = *state;
    log_setup(CONFIG_LOG_INFO, STDOUT_FILENO, "dev");
    close(cap->fd);
    return 0;
}

/* Reads everything logged since the last call: the file is truncated after reading. */
static char *drain(struct capture *cap, size_t *len_out)
{
    off_t end = lseek(cap->fd, 0, SEEK_END);
    assert_true(end >= 0);
    char *data = malloc((size_t)end + 1);
    assert_non_null(data);
    assert_int_equal(pread(cap->fd, data, (size_t)end, 0), end);
    data[end] = '\0';
    assert_int_equal(ftruncate(cap->fd, 0), 0);
    assert_int_equal(lseek(cap->fd, 0, SEEK_SET), 0);
    *len_out = (size_t)end;
    return data;
}

/* Reads exactly one line and parses it strictly. */
static json_t *one_line(struct capture *cap, size_t *line_len)
{
    size_t len = 0;
    char *data = drain(cap, &len);
    assert_true(len > 0);
    assert_int_equal(data[len - 1], '\n');
    assert_null(memchr(data, '\n', len - 1));
    json_error_t err;
    json_t *j = json_loadb(data, len - 1, JSON_REJECT_DUPLICATES, &err);
    if (j == NULL) {
        fail_msg("invalid JSON (%s): %.200s", err.text, data);
    }
    assert_true(json_is_object(j));
    if (line_len != NULL) {
        *line_len = len;
    }
    free(data);
    return j;
}

static const char *str(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    assert_non_null(v);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static void test_members(void **state)
{
    struct capture *cap = *state;
    struct log_ctx ctx = {.request_id = "req-1",
                          .trace_id = "4bf92f3577b34da6a3ce929d0e0e4736",
                          .span_id = "00f067aa0ba902b7"};
    log_event(CONFIG_LOG_INFO, &ctx, "request done", "\"method\":\"GET\",\"status\":200");
    json_t *j = one_line(cap, NULL);
    const char *ts = str(j, "timestamp");
    assert_int_equal(strlen(ts), 24);
    assert_int_equal(ts[10], 'T');
    assert_int_equal(ts[23], 'Z');
    assert_string_equal(str(j, "severity_text"), "INFO");
    assert_int_equal(json_integer_value(json_object_get(j, "severity_number")), 9);
    assert_string_equal(str(j, "body"), "request done");
    assert_string_equal(str(j, "service.name"), "ledgerd");
    assert_string_equal(str(j, "deployment.environment.name"), "staging");
    assert_string_equal(str(j, "request_id"), "req-1");
    assert_string_equal(str(j, "trace_id"), ctx.trace_id);
    assert_string_equal(str(j, "span_id"), ctx.span_id);
    assert_string_equal(str(j, "method"), "GET");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 200);
    assert_null(json_object_get(j, "truncated"));
    assert_int_equal(json_object_size(j), 11);
    json_decref(j);
}

static void test_no_ctx_and_levels(void **state)
{
    struct capture *cap = *state;
    static const struct {
        enum config_log_level level;
        const char *text;
        int number;
    } levels[] = {{CONFIG_LOG_DEBUG, "DEBUG", 5},
                  {CONFIG_LOG_INFO, "INFO", 9},
                  {CONFIG_LOG_WARN, "WARN", 13},
                  {CONFIG_LOG_ERROR, "ERROR", 17}};
    for (size_t i = 0; i < 4; i++) {
        log_event(levels[i].level, NULL, "m", NULL);
        json_t *j = one_line(cap, NULL);
        assert_string_equal(str(j, "severity_text"), levels[i].text);
        assert_int_equal(json_integer_value(json_object_get(j, "severity_number")),
                         levels[i].number);
        assert_null(json_object_get(j, "request_id"));
        assert_null(json_object_get(j, "trace_id"));
        assert_null(json_object_get(j, "span_id"));
        json_decref(j);
    }
    struct log_ctx partial = {.request_id = "r"};
    log_event(CONFIG_LOG_INFO, &partial, "m", "");
    json_t *j = one_line(cap, NULL);
    assert_string_equal(str(j, "request_id"), "r");
    assert_null(json_object_get(j, "trace_id"));
    json_decref(j);

    /* Below the minimum level nothing is written. */
    log_setup(CONFIG_LOG_WARN, cap->fd, "staging");
    assert_false(log_enabled(CONFIG_LOG_INFO));
    assert_true(log_enabled(CONFIG_LOG_ERROR));
    log_event(CONFIG_LOG_INFO, NULL, "hidden", NULL);
    log_msgf(CONFIG_LOG_DEBUG, NULL, "hidden %d", 1);
    size_t len = 99;
    free(drain(cap, &len));
    assert_int_equal(len, 0);
    log_setup(CONFIG_LOG_DEBUG, cap->fd, "staging");
}

static void test_escaping(void **state)
{
    struct capture *cap = *state;
    struct log_ctx ctx = {.request_id = "a\"b"};
    log_event(CONFIG_LOG_WARN, &ctx, "quote\" backslash\\ nl\n ctl\x01 bad\xff end", NULL);
    json_t *j = one_line(cap, NULL);
    assert_string_equal(str(j, "body"), "quote\" backslash\\ nl\n ctl\x01 bad\xef\xbf\xbd end");
    assert_string_equal(str(j, "request_id"), "a\"b");
    json_decref(j);

    log_msgf(CONFIG_LOG_ERROR, NULL, "listening on %s:%d", "127.0.0.1", 8080);
    j = one_line(cap, NULL);
    assert_string_equal(str(j, "body"), "listening on 127.0.0.1:8080");
    json_decref(j);
}

static void test_truncation(void **state)
{
    struct capture *cap = *state;
    /* A body far over the limit, with characters that expand when escaped. */
    size_t n = 3 * LIMIT_LOG_LINE_BYTES_MAX;
    char *msg = malloc(n + 1);
    assert_non_null(msg);
    for (size_t i = 0; i < n; i++) {
        msg[i] = (i % 3 == 0) ? '\n' : 'x';
    }
    msg[n] = '\0';
    size_t line_len = 0;
    log_event(CONFIG_LOG_INFO, NULL, msg, "\"k\":1");
    json_t *j = one_line(cap, &line_len);
    assert_true(line_len <= LIMIT_LOG_LINE_BYTES_MAX);
    assert_true(line_len > LIMIT_LOG_LINE_BYTES_MAX - 64); /* cut, not emptied */
    assert_true(json_is_true(json_object_get(j, "truncated")));
    assert_int_equal(json_integer_value(json_object_get(j, "k")), 1);
    const char *body = str(j, "body");
    assert_true(strlen(body) > 1000);
    assert_memory_equal(body, msg, strlen(body));
    json_decref(j);

    /* Multi-byte characters are cut whole, never into U+FFFD. */
    for (size_t i = 0; i + 3 <= n; i += 3) {
        memcpy(msg + i, "\xe2\x82\xac", 3);
    }
    msg[n - n % 3] = '\0';
    for (int shift = 0; shift < 3; shift++) {
        log_event(CONFIG_LOG_INFO, NULL, msg + shift * 3, NULL);
        j = one_line(cap, &line_len);
        assert_true(json_is_true(json_object_get(j, "truncated")));
        body = str(j, "body");
        assert_null(strstr(body, "\xef\xbf\xbd"));
        assert_int_equal(strlen(body) % 3, 0);
        json_decref(j);
    }
    free(msg);

    /* Extra fields too large for any line are left out, and the line says so. */
    size_t fn = 2 * LIMIT_LOG_LINE_BYTES_MAX;
    char *fields = malloc(fn + 16);
    assert_non_null(fields);
    memcpy(fields, "\"big\":\"", 7);
    memset(fields + 7, 'b', fn);
    memcpy(fields + 7 + fn, "\"", 2);
    log_event(CONFIG_LOG_INFO, NULL, "short", fields);
    j = one_line(cap, &line_len);
    assert_string_equal(str(j, "body"), "short");
    assert_null(json_object_get(j, "big"));
    assert_true(json_is_true(json_object_get(j, "truncated")));
    json_decref(j);
    free(fields);
}

static void test_dropped(void **state)
{
    struct capture *cap = *state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    close(fds[0]); /* no reader: EPIPE (SIGPIPE ignored below) */
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    log_setup(CONFIG_LOG_INFO, fds[1], "prod");
    uint64_t before = log_dropped();
    log_event(CONFIG_LOG_ERROR, NULL, "lost", NULL);
    log_event(CONFIG_LOG_ERROR, NULL, "lost too", NULL);
    assert_int_equal(log_dropped() - before, 2);
    close(fds[1]);
    signal(SIGPIPE, old);
    log_setup(CONFIG_LOG_DEBUG, cap->fd, "staging");
}

#define LOG_THREADS 8
#define LOG_LINES_PER_THREAD 500

static void *log_thread(void *arg)
{
    int id = *(int *)arg;
    char msg[3000];
    memset(msg, 'a' + id, sizeof(msg) - 1);
    msg[sizeof(msg) - 1] = '\0';
    for (int i = 0; i < LOG_LINES_PER_THREAD; i++) {
        log_event(CONFIG_LOG_INFO, NULL, msg, NULL);
    }
    return NULL;
}

static void test_threads_do_not_interleave(void **state)
{
    struct capture *cap = *state;
    /* O_APPEND makes each write(2) land whole at the end of the file. */
    int fd = open(cap->path, O_RDWR | O_CREAT | O_APPEND | O_TRUNC, 0600);
    assert_true(fd >= 0);
    (void)unlink(cap->path);
    log_setup(CONFIG_LOG_INFO, fd, "dev");
    pthread_t threads[LOG_THREADS];
    int ids[LOG_THREADS];
    for (int i = 0; i < LOG_THREADS; i++) {
        ids[i] = i;
        assert_int_equal(pthread_create(&threads[i], NULL, log_thread, &ids[i]), 0);
    }
    for (int i = 0; i < LOG_THREADS; i++) {
        pthread_join(threads[i], NULL);
    }
    struct capture tmp = {.fd = fd};
    size_t len = 0;
    char *data = drain(&tmp, &len);
    size_t lines = 0;
    char *p = data;
    while (p < data + len) {
        char *nl = memchr(p, '\n', (size_t)(data + len - p));
        assert_non_null(nl);
        json_error_t err;
        json_t *j = json_loadb(p, (size_t)(nl - p), 0, &err);
        assert_non_null(j);
        const char *body = json_string_value(json_object_get(j, "body"));
        assert_int_equal(strlen(body), 2999);
        assert_int_equal(strspn(body, body[0] == 'a' ? "a" : body + 2998), 2999);
        json_decref(j);
        lines++;
        p = nl + 1;
    }
    assert_int_equal(lines, LOG_THREADS * LOG_LINES_PER_THREAD);
    free(data);
    close(fd);
    log_setup(CONFIG_LOG_DEBUG, cap->fd, "staging");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_members),  cmocka_unit_test(test_no_ctx_and_levels),
        cmocka_unit_test(test_escaping), cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_dropped),  cmocka_unit_test(test_threads_do_not_interleave),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
