/*
 * test_log_level.c — the log level at run time: SIGUSR1/SIGUSR2 steps and their ends, SIGHUP
 * re-reading LEDGERD_LOG_LEVEL_FILE (good, hostile, missing, unset), every change logged even
 * when the new level would hide it; and config_log_level_parse on its own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/config.h"
#include "obs/log.h"

static int cap_fd = -1;
static char level_path[64];
static struct config cfg;

static int setup(void **state)
{
    (void)state;
    char path[] = "/tmp/test_log_level_out_XXXXXX";
    cap_fd = mkstemp(path);
    if (cap_fd < 0) {
        return -1;
    }
    unlink(path);
    snprintf(level_path, sizeof(level_path), "/tmp/test_log_level_file_XXXXXX");
    int fd = mkstemp(level_path);
    if (fd < 0) {
        return -1;
    }
    close(fd);
    memset(&cfg, 0, sizeof(cfg));
    cfg.log_sinks = CONFIG_LOG_SINK_STDOUT;
    cfg.log_queue_bytes = 1024 * 1024;
    snprintf(cfg.log_level_file, sizeof(cfg.log_level_file), "%s", level_path);
    log_setup(CONFIG_LOG_INFO, cap_fd, "dev");
    return log_sinks_start(&cfg);
}

static int teardown(void **state)
{
    (void)state;
    log_sinks_stop();
    log_setup(CONFIG_LOG_INFO, STDOUT_FILENO, "dev");
    close(cap_fd);
    unlink(level_path);
    return 0;
}

/* The lines written since the last call, parsed; the capture is emptied. */
static json_t *drain(void)
{
    /* stdout's worker writes lines a few milliseconds late: stopping the sinks writes them all,
     * and starting them again keeps the test's setup. */
    log_sinks_stop();
    assert_int_equal(log_sinks_start(&cfg), 0);
    off_t end = lseek(cap_fd, 0, SEEK_END);
    char *data = malloc((size_t)end + 1);
    assert_non_null(data);
    assert_int_equal(pread(cap_fd, data, (size_t)end, 0), end);
    data[end] = '\0';
    assert_int_equal(ftruncate(cap_fd, 0), 0);
    assert_int_equal(lseek(cap_fd, 0, SEEK_SET), 0);
    json_t *lines = json_array();
    for (char *p = data; *p != '\0';) {
        char *nl = strchr(p, '\n');
        assert_non_null(nl);
        json_t *j = json_loadb(p, (size_t)(nl - p), 0, NULL);
        assert_non_null(j);
        json_array_append_new(lines, j);
        p = nl + 1;
    }
    free(data);
    return lines;
}

static const char *only_line_field(json_t *lines, const char *field)
{
    assert_int_equal(json_array_size(lines), 1);
    return json_string_value(json_object_get(json_array_get(lines, 0), field));
}

static void write_level_file(const char *content, size_t len)
{
    FILE *fp = fopen(level_path, "w");
    assert_non_null(fp);
    assert_int_equal(fwrite(content, 1, len, fp), len);
    fclose(fp);
}

static void test_usr_signals_step(void **state)
{
    (void)state;
    log_level_set(CONFIG_LOG_INFO, "test");
    json_decref(drain());
    log_signal(SIGUSR1);
    assert_int_equal(log_level(), CONFIG_LOG_DEBUG);
    json_t *l = drain();
    assert_string_equal(only_line_field(l, "log_level"), "debug");
    assert_string_equal(only_line_field(l, "previous_log_level"), "info");
    assert_non_null(strstr(only_line_field(l, "body"), "SIGUSR1"));
    json_decref(l);
    /* The end: debug stays debug, and says so. */
    log_signal(SIGUSR1);
    assert_int_equal(log_level(), CONFIG_LOG_DEBUG);
    l = drain();
    assert_string_equal(only_line_field(l, "log_level"), "debug");
    json_decref(l);
    for (int i = 0; i < 3; i++) {
        log_signal(SIGUSR2);
        json_decref(drain());
    }
    assert_int_equal(log_level(), CONFIG_LOG_ERROR);
    /* The change to error is itself written, although info lines are now hidden. */
    log_signal(SIGUSR2);
    assert_int_equal(log_level(), CONFIG_LOG_ERROR);
    l = drain();
    assert_int_equal(json_array_size(l), 1);
    json_decref(l);
    log_msgf(CONFIG_LOG_INFO, NULL, "hidden");
    log_msgf(CONFIG_LOG_WARN, NULL, "hidden too");
    l = drain();
    assert_int_equal(json_array_size(l), 0);
    json_decref(l);
    /* Unrelated signals change nothing. */
    log_signal(SIGTERM);
    assert_int_equal(log_level(), CONFIG_LOG_ERROR);
}

static void test_hup_reads_level_file(void **state)
{
    (void)state;
    log_level_set(CONFIG_LOG_ERROR, "test");
    json_decref(drain());
    write_level_file("debug\n", 6);
    log_signal(SIGHUP);
    assert_int_equal(log_level(), CONFIG_LOG_DEBUG);
    json_t *l = drain();
    assert_string_equal(only_line_field(l, "log_level"), "debug");
    assert_non_null(strstr(only_line_field(l, "body"), "SIGHUP"));
    json_decref(l);
    write_level_file("LEDGERD_LOG_LEVEL=warn\r\n", 24);
    log_signal(SIGHUP);
    assert_int_equal(log_level(), CONFIG_LOG_WARN);
    json_decref(drain());

    /* Hostile or broken content: the level stays, an error is logged. */
    const char *bad[] = {"", "loud", "debug info", "DEBUG", "debug\0info", "LEDGERD_LOG_LEVEL="};
    const size_t bad_len[] = {0, 4, 10, 5, 10, 18};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_level_file(bad[i], bad_len[i]);
        log_signal(SIGHUP);
        assert_int_equal(log_level(), CONFIG_LOG_WARN);
        l = drain();
        assert_string_equal(only_line_field(l, "severity_text"), "ERROR");
        json_decref(l);
    }
    /* Larger than any level file should be. */
    static char huge[4096];
    memset(huge, ' ', sizeof(huge));
    memcpy(huge, "debug", 5);
    write_level_file(huge, sizeof(huge));
    log_signal(SIGHUP);
    assert_int_equal(log_level(), CONFIG_LOG_WARN);
    json_decref(drain());
    /* Gone. */
    unlink(level_path);
    log_signal(SIGHUP);
    assert_int_equal(log_level(), CONFIG_LOG_WARN);
    json_decref(drain());
}

static void test_level_parse(void **state)
{
    (void)state;
    enum config_log_level lv;
    assert_int_equal(config_log_level_parse("info", 4, &lv), 0);
    assert_int_equal(lv, CONFIG_LOG_INFO);
    assert_int_equal(config_log_level_parse("  error \n", 9, &lv), 0);
    assert_int_equal(lv, CONFIG_LOG_ERROR);
    assert_int_equal(config_log_level_parse("LEDGERD_LOG_LEVEL=debug", 23, &lv), 0);
    assert_int_equal(lv, CONFIG_LOG_DEBUG);
    /* Not NUL-terminated: only len bytes count. */
    assert_int_equal(config_log_level_parse("warnXYZ", 4, &lv), 0);
    assert_int_equal(lv, CONFIG_LOG_WARN);
    assert_int_equal(config_log_level_parse("warning", 7, &lv), -EINVAL);
    assert_int_equal(config_log_level_parse("", 0, &lv), -EINVAL);
    assert_int_equal(config_log_level_parse("ledgerd_log_level=info", 22, &lv), -EINVAL);
    assert_int_equal(config_log_level_parse("LEDGERD_LOG_LEVEL=", 18, &lv), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usr_signals_step),
        cmocka_unit_test(test_hup_reads_level_file),
        cmocka_unit_test(test_level_parse),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
