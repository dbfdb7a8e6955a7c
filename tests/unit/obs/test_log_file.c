/*
 * test_log_file.c — the file sink: rotated names and their strict parsing (malformed and
 * look-alike names), when rotation is due (size and age boundaries), which files retention
 * deletes (count, age, both); then the real sink through log.h: lines from several threads
 * across many rotations, each found exactly once and whole, with at most KEEP rotated files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/config.h"
#include "core/limits.h"
#include "obs/log.h"
#include "obs/log_file.h"

#define US 1000000LL

static void test_rotated_name(void **state)
{
    (void)state;
    char name[128];
    assert_int_equal(log_file_rotated_name("ledgerd.log", 1769493600123456LL, name, sizeof(name)),
                     0);
    assert_string_equal(name, "ledgerd.log.20260127T060000.123456Z");
    assert_int_equal(strlen(name), strlen("ledgerd.log") + LOG_FILE_SUFFIX_LEN);
    assert_int_equal(log_file_rotated_name("x", 0, name, sizeof(name)), 0);
    assert_string_equal(name, "x.19700101T000000.000000Z");
    /* Exactly fits; one byte short. */
    assert_int_equal(log_file_rotated_name("x", 0, name, 1 + LOG_FILE_SUFFIX_LEN + 1), 0);
    assert_int_equal(log_file_rotated_name("x", 0, name, 1 + LOG_FILE_SUFFIX_LEN), -ENAMETOOLONG);

    /* Names sort as their times do. */
    char a[64], b[64];
    log_file_rotated_name("l", 1709208000999999LL, a, sizeof(a));
    log_file_rotated_name("l", 1709208001000000LL, b, sizeof(b));
    assert_true(strcmp(a, b) < 0);
}

static void test_rotated_parse(void **state)
{
    (void)state;
    int64_t us = 0;
    assert_true(log_file_rotated_parse("ledgerd.log", "ledgerd.log.20260127T060000.123456Z", &us));
    assert_int_equal(us, 1769493600123456LL);
    assert_true(log_file_rotated_parse("l", "l.20240229T235959.999999Z", &us));
    /* Round trip over a spread of times. */
    for (int64_t t = 0; t < 4102444800LL * US; t += 86399999937LL) {
        char name[64];
        assert_int_equal(log_file_rotated_name("l", t, name, sizeof(name)), 0);
        assert_true(log_file_rotated_parse("l", name, &us));
        assert_int_equal(us, t);
    }
    const char *bad[] = {
        "l",                            /* the live file */
        "l.1",                          /* logrotate's numbering: not ours */
        "l.20260127T060000.123456Z.gz", /* compressed by someone else */
        "xl.20260127T060000.123456Z",   /* another file's */
        "l.20260127T060000.123456",     /* no Z */
        "l.20260127t060000.123456Z",    /* lower-case t */
        "l.2026012XT060000.123456Z",    /* not a digit */
        "l.20261327T060000.123456Z",    /* month 13 */
        "l.20260230T060000.123456Z",    /* 30 February */
        "l.20250229T060000.123456Z",    /* 29 February, not a leap year */
        "l.20260127T240000.123456Z",    /* hour 24 */
        "l.20260127T066000.123456Z",    /* minute 60 */
        "l.19691231T235959.999999Z",    /* before 1970 */
        "l.20260127T060000-123456Z",    /* wrong separator */
        "l..20260127T060000.123456Z",   /* one byte too many */
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (log_file_rotated_parse("l", bad[i], &us)) {
            fail_msg("accepted %s", bad[i]);
        }
    }
}

static void test_rotation_due(void **state)
{
    (void)state;
    /* By size: the file would pass max_bytes with this line. */
    assert_false(log_file_rotation_due(900, 100, 1000, 0, 0, 0));
    assert_true(log_file_rotation_due(901, 100, 1000, 0, 0, 0));
    /* An empty file is never rotated, even for a line larger than the limit. */
    assert_false(log_file_rotation_due(0, 5000, 1000, 0, 1000 * US, 1));
    /* By age: at max_age exactly. */
    assert_false(log_file_rotation_due(10, 10, 1000, 100 * US, 159 * US, 60));
    assert_true(log_file_rotation_due(10, 10, 1000, 100 * US, 160 * US, 60));
    /* No age rule with 0. */
    assert_false(log_file_rotation_due(10, 10, 1000, 0, 1000000 * US, 0));
}

static size_t marked(const struct log_file_rotated *f, size_t n, int64_t *kept, size_t *kept_n)
{
    size_t m = 0;
    *kept_n = 0;
    for (size_t i = 0; i < n; i++) {
        if (f[i].remove) {
            m++;
        } else {
            kept[(*kept_n)++] = f[i].unix_us;
        }
    }
    return m;
}

static void test_retention_select(void **state)
{
    (void)state;
    const int64_t now = 10000 * US;
    /* Out of order on purpose: the selection sorts. */
    const int64_t times[] = {9000 * US, 9990 * US, 5000 * US, 9500 * US, 100 * US};
    struct log_file_rotated f[5];
    int64_t kept[5];
    size_t kept_n;

    /* By count: keep the 3 newest. */
    for (size_t i = 0; i < 5; i++) {
        f[i] = (struct log_file_rotated){times[i], false};
    }
    assert_int_equal(log_file_retention_select(f, 5, 3, 0, now), 2);
    assert_int_equal(marked(f, 5, kept, &kept_n), 2);
    assert_int_equal(kept_n, 3);
    assert_int_equal(kept[0], 9990 * US);
    assert_int_equal(kept[1], 9500 * US);
    assert_int_equal(kept[2], 9000 * US);

    /* By age: older than 1000 s goes (9000 is exactly 1000 s old: kept). */
    for (size_t i = 0; i < 5; i++) {
        f[i] = (struct log_file_rotated){times[i], false};
    }
    assert_int_equal(log_file_retention_select(f, 5, 100, 1000, now), 2);
    marked(f, 5, kept, &kept_n);
    assert_int_equal(kept_n, 3);
    assert_int_equal(kept[2], 9000 * US);

    /* Both rules: the stricter wins for each file. */
    for (size_t i = 0; i < 5; i++) {
        f[i] = (struct log_file_rotated){times[i], false};
    }
    assert_int_equal(log_file_retention_select(f, 5, 2, 600, now), 3);
    marked(f, 5, kept, &kept_n);
    assert_int_equal(kept_n, 2);

    /* Keep 0: every rotated file goes. No files: nothing. */
    for (size_t i = 0; i < 5; i++) {
        f[i] = (struct log_file_rotated){times[i], false};
    }
    assert_int_equal(log_file_retention_select(f, 5, 0, 0, now), 5);
    assert_int_equal(log_file_retention_select(NULL, 0, 3, 10, now), 0);
}

/* ===== The sink, through log.h ===== */

#define WRITERS 4
#define LINES_PER_WRITER 500

static void *writer(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < LINES_PER_WRITER; i++) {
        char fields[64];
        snprintf(fields, sizeof(fields), "\"writer\":%d,\"seq\":%d", id, i);
        log_event(CONFIG_LOG_INFO, NULL, "concurrent line with some padding to fill files", fields);
    }
    return NULL;
}

static void test_sink_rotation_keeps_every_line(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_log_file_XXXXXX";
    assert_non_null(mkdtemp(dir));
    static struct config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.log_sinks = CONFIG_LOG_SINK_FILE; /* stdout stays quiet */
    snprintf(cfg.log_file, sizeof(cfg.log_file), "%s/sub/ledgerd.log", dir);
    cfg.log_file_max_bytes = 16 * 1024;
    cfg.log_file_keep = 1000;
    cfg.log_queue_bytes = 4 * 1024 * 1024;
    log_setup(CONFIG_LOG_INFO, STDOUT_FILENO, "dev");
    uint64_t dropped_before = log_sink_dropped(LOG_SINK_FILE);
    uint64_t written_before = log_sink_written(LOG_SINK_FILE);
    assert_int_equal(log_sinks_start(&cfg), 0);
    assert_true(log_sink_active(LOG_SINK_FILE));
    assert_false(log_sink_active(LOG_SINK_STDOUT));

    pthread_t t[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i), 0);
    }
    for (int i = 0; i < WRITERS; i++) {
        pthread_join(t[i], NULL);
    }
    log_sinks_stop();
    assert_int_equal(log_sink_dropped(LOG_SINK_FILE), dropped_before);
    assert_int_equal(log_sink_written(LOG_SINK_FILE) - written_before, WRITERS * LINES_PER_WRITER);

    /* Read every file back: each line whole and valid, each (writer, seq) exactly once. */
    static unsigned char seen[WRITERS][LINES_PER_WRITER];
    memset(seen, 0, sizeof(seen));
    char sub[PATH_MAX];
    snprintf(sub, sizeof(sub), "%s/sub", dir);
    DIR *d = opendir(sub);
    assert_non_null(d);
    struct dirent *e;
    size_t files = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        int64_t us;
        assert_true(strcmp(e->d_name, "ledgerd.log") == 0 ||
                    log_file_rotated_parse("ledgerd.log", e->d_name, &us));
        files++;
        char path[PATH_MAX + 256];
        snprintf(path, sizeof(path), "%s/%s", sub, e->d_name);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_true((uint64_t)st.st_size <= cfg.log_file_max_bytes);
        FILE *fp = fopen(path, "r");
        assert_non_null(fp);
        char line[LIMIT_LOG_LINE_BYTES_MAX + 2];
        while (fgets(line, sizeof(line), fp) != NULL) {
            size_t len = strlen(line);
            assert_true(len > 0 && line[len - 1] == '\n');
            json_t *j = json_loadb(line, len - 1, 0, NULL);
            assert_non_null(j);
            json_t *w = json_object_get(j, "writer");
            if (w != NULL) {
                int id = (int)json_integer_value(w);
                int seq = (int)json_integer_value(json_object_get(j, "seq"));
                assert_true(id >= 0 && id < WRITERS && seq >= 0 && seq < LINES_PER_WRITER);
                assert_int_equal(seen[id][seq], 0);
                seen[id][seq] = 1;
            }
            json_decref(j);
        }
        fclose(fp);
        unlink(path);
    }
    closedir(d);
    rmdir(sub);
    rmdir(dir);
    assert_true(files > 10); /* it did rotate, many times */
    for (int i = 0; i < WRITERS; i++) {
        for (int s = 0; s < LINES_PER_WRITER; s++) {
            if (!seen[i][s]) {
                fail_msg("line writer=%d seq=%d lost", i, s);
            }
        }
    }
}

static void test_sink_keep_limit(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_log_keep_XXXXXX";
    assert_non_null(mkdtemp(dir));
    static struct config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.log_sinks = CONFIG_LOG_SINK_FILE;
    snprintf(cfg.log_file, sizeof(cfg.log_file), "%s/l.log", dir);
    cfg.log_file_max_bytes = 1024;
    cfg.log_file_keep = 3;
    cfg.log_queue_bytes = 1024 * 1024;
    /* Files that only look like rotated ones are never touched. */
    char other[PATH_MAX];
    snprintf(other, sizeof(other), "%s/l.log.1", dir);
    FILE *fp = fopen(other, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(log_sinks_start(&cfg), 0);
    for (int i = 0; i < 200; i++) {
        log_msgf(CONFIG_LOG_INFO, NULL, "line %d", i);
    }
    log_sinks_stop();
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    size_t rotated = 0;
    bool live = false, look_alike = false;
    while ((e = readdir(d)) != NULL) {
        int64_t us;
        rotated += log_file_rotated_parse("l.log", e->d_name, &us) ? 1 : 0;
        live = live || strcmp(e->d_name, "l.log") == 0;
        look_alike = look_alike || strcmp(e->d_name, "l.log.1") == 0;
        char path[PATH_MAX + 256];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (e->d_name[0] != '.') {
            unlink(path);
        }
    }
    closedir(d);
    rmdir(dir);
    assert_int_equal(rotated, 3);
    assert_true(live);
    assert_true(look_alike);
}

static void test_sink_unopenable_file(void **state)
{
    (void)state;
    static struct config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.log_sinks = CONFIG_LOG_SINK_STDOUT | CONFIG_LOG_SINK_FILE;
    /* A regular file where the directory should be: not even root can create the log. */
    snprintf(cfg.log_file, sizeof(cfg.log_file), "/proc/self/status/ledgerd.log");
    cfg.log_file_max_bytes = 1024;
    cfg.log_queue_bytes = 1024 * 1024;
    assert_true(log_sinks_start(&cfg) < 0);
    assert_false(log_sink_active(LOG_SINK_FILE));
    assert_true(log_sink_active(LOG_SINK_STDOUT));
    log_sinks_stop();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rotated_name),
        cmocka_unit_test(test_rotated_parse),
        cmocka_unit_test(test_rotation_due),
        cmocka_unit_test(test_retention_select),
        cmocka_unit_test(test_sink_rotation_keeps_every_line),
        cmocka_unit_test(test_sink_keep_limit),
        cmocka_unit_test(test_sink_unopenable_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
