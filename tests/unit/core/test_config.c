/*
 * test_config.c — settings from the environment: defaults, every variable's valid and invalid
 * forms, listen addresses, the database URL from a file, all errors reported at once, printing
 * with secrets masked, help, and unknown LEDGERD_* variables; the authentication and audit
 * settings with their cross checks, and config_read_secret_file.
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
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "auth/scope.h"
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
    assert_true(cfg.auth_required);
    assert_int_equal(cfg.auth_open_routes, CONFIG_AUTH_OPEN_PROBES | CONFIG_AUTH_OPEN_METRICS |
                                               CONFIG_AUTH_OPEN_DASHBOARD);
    assert_string_equal(cfg.jwks_file, "");
    assert_string_equal(cfg.jwt_issuer, "");
    assert_string_equal(cfg.jwt_audience, "");
    assert_int_equal(cfg.jwt_clock_skew_seconds, 60);
    assert_string_equal(cfg.apikey_hash_key_file, "");
    assert_string_equal(cfg.roles, "");
    assert_int_equal(cfg.auth_failures_max, LIMIT_AUTH_FAILURES_DEFAULT);
    assert_int_equal(cfg.auth_failure_window_seconds, LIMIT_AUTH_FAILURE_WINDOW_SECONDS_DEFAULT);
    assert_string_equal(cfg.audit_signing_key_file, "");
    assert_int_equal(cfg.audit_checkpoint_interval_seconds,
                     LIMIT_AUDIT_CHECKPOINT_INTERVAL_MS_DEFAULT / 1000);
    assert_int_equal(cfg.audit_checkpoint_records, LIMIT_AUDIT_CHECKPOINT_RECORDS_DEFAULT);
    assert_string_equal(cfg.audit_public_keys_file, "");
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
    INT_SETTING("LEDGERD_JWT_CLOCK_SKEW_SECONDS", 0, LIMIT_JWT_CLOCK_SKEW_SECONDS_MAX,
                jwt_clock_skew_seconds),
    INT_SETTING("LEDGERD_AUTH_FAILURES_MAX", 1, LIMIT_AUTH_FAILURES_MAX, auth_failures_max),
    INT_SETTING("LEDGERD_AUTH_FAILURE_WINDOW_SECONDS", 1, LIMIT_AUTH_FAILURE_WINDOW_SECONDS_MAX,
                auth_failure_window_seconds),
    INT_SETTING("LEDGERD_AUDIT_CHECKPOINT_INTERVAL_SECONDS", 1, 86400,
                audit_checkpoint_interval_seconds),
    INT_SETTING("LEDGERD_AUDIT_CHECKPOINT_RECORDS", 1, 1000000, audit_checkpoint_records),
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
    assert_int_equal(count_lines(out), 63); /* one line per setting */
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

/* ---------------------------------------------------------------------------------------
 * Authentication and audit settings.
 * ------------------------------------------------------------------------------------- */

static void test_auth_mode(void **state)
{
    (void)state;
    struct config cfg;
    const char *err = NULL;
    env_clear();
    env_set("LEDGERD_AUTH", "off");
    assert_int_equal(load(&cfg, &err), 0);
    assert_false(cfg.auth_required);
    env_set("LEDGERD_ENV", "dev");
    assert_int_equal(load(&cfg, &err), 0);
    assert_false(cfg.auth_required);

    /* off outside dev: refused, naming both variables. */
    static const char *const envs[] = {"staging", "prod"};
    for (size_t i = 0; i < 2; i++) {
        env_clear();
        env_set("LEDGERD_AUTH", "off");
        env_set("LEDGERD_ENV", envs[i]);
        assert_int_equal(load(&cfg, &err), -EINVAL);
        assert_int_equal(count_lines(err), 1);
        assert_memory_equal(err, "LEDGERD_AUTH: ", 14);
        assert_non_null(strstr(err, "LEDGERD_ENV"));
        assert_non_null(strstr(err, envs[i]));
        env_set("LEDGERD_AUTH", "required");
    }
    env_clear();
    env_set("LEDGERD_ENV", "prod");
    env_set("LEDGERD_AUTH", "required");
    assert_int_equal(load(&cfg, &err), 0);
    assert_true(cfg.auth_required);

    static const char *const bad[] = {"", "Off", "on", "true", "required ", "none"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        env_clear();
        env_set("LEDGERD_AUTH", bad[i]);
        assert_int_equal(load(&cfg, &err), -EINVAL);
        assert_memory_equal(err, "LEDGERD_AUTH: ", 14);
    }
}

static void test_auth_open_routes(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint32_t bits;
    } good[] = {
        {"", 0},
        {"probes", CONFIG_AUTH_OPEN_PROBES},
        {"metrics", CONFIG_AUTH_OPEN_METRICS},
        {"dashboard", CONFIG_AUTH_OPEN_DASHBOARD},
        {"dashboard,probes", CONFIG_AUTH_OPEN_DASHBOARD | CONFIG_AUTH_OPEN_PROBES},
        {"metrics,dashboard,probes", 7},
    };
    struct config cfg;
    const char *err = NULL;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        env_clear();
        env_set("LEDGERD_AUTH_OPEN_ROUTES", good[i].text);
        assert_int_equal(load(&cfg, &err), 0);
        assert_int_equal(cfg.auth_open_routes, good[i].bits);
    }
    static const char *const bad[] = {"probes,probes", "admin",           "probes,",
                                      ",probes",       "probes,,metrics", "Probes",
                                      " probes",       "probes;metrics",  ","};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        env_clear();
        env_set("LEDGERD_AUTH_OPEN_ROUTES", bad[i]);
        assert_int_equal(load(&cfg, &err), -EINVAL);
        assert_int_equal(count_lines(err), 1);
        assert_memory_equal(err, "LEDGERD_AUTH_OPEN_ROUTES: ", 26);
    }
}

/* A fresh file with content; path receives its name. */
static void temp_file(char *path, size_t path_len, const char *content, size_t len)
{
    snprintf(path, path_len, "/tmp/test_config_file_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    write_file(path, content, len);
}

static void test_path_settings(void **state)
{
    (void)state;
    static const char *const names[] = {"LEDGERD_APIKEY_HASH_KEY_FILE",
                                        "LEDGERD_AUDIT_SIGNING_KEY_FILE",
                                        "LEDGERD_AUDIT_PUBLIC_KEYS_FILE"};
    char path[64];
    temp_file(path, sizeof(path), "secret content\n", 15);
    struct config cfg;
    const char *err = NULL;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        env_clear();
        env_set(names[i], path);
        assert_int_equal(load(&cfg, &err), 0);
        char *out = print_to_string(&cfg, false);
        char line[128];
        snprintf(line, sizeof(line), "%s=%s\n", names[i], path);
        assert_non_null(strstr(out, line));
        assert_null(strstr(out, "secret content")); /* the path, never the content */
        free(out);

        /* Missing, a directory, control characters, set but empty. */
        env_clear();
        env_set(names[i], "/nonexistent/ledgerd-key");
        assert_int_equal(load(&cfg, &err), -EINVAL);
        assert_int_equal(count_lines(err), 1);
        assert_memory_equal(err, names[i], strlen(names[i]));
        assert_non_null(strstr(err, "cannot open"));
        env_clear();
        env_set(names[i], "/tmp");
        assert_int_equal(load(&cfg, &err), -EINVAL);
        assert_non_null(strstr(err, "not a regular file"));
        env_clear();
        env_set(names[i], "/tmp/a\nb");
        assert_int_equal(load(&cfg, &err), -EINVAL);
        env_clear();
        env_set(names[i], "");
        assert_int_equal(load(&cfg, &err), -EINVAL);
    }
    assert_string_equal(cfg.apikey_hash_key_file, "");

    /* Unreadable (unless running as root, who reads everything). */
    if (geteuid() != 0) {
        assert_int_equal(chmod(path, 0), 0);
        env_clear();
        env_set("LEDGERD_APIKEY_HASH_KEY_FILE", path);
        assert_int_equal(load(&cfg, &err), -EINVAL);
        assert_non_null(strstr(err, "cannot open"));
    }
    unlink(path);
}

/* LEDGERD_MIGRATIONS_DIR: any directory name (only `ledgerd migrate` reads it, and says when it
 * is missing), never control characters or more than the field holds. */
static void test_migrations_dir(void **state)
{
    (void)state;
    struct config cfg;
    const char *err = NULL;
    env_clear();
    assert_int_equal(load(&cfg, &err), 0);
    assert_string_equal(cfg.migrations_dir, "");
    env_set("LEDGERD_MIGRATIONS_DIR", "/srv/ledgerd/migrations");
    assert_int_equal(load(&cfg, &err), 0);
    assert_string_equal(cfg.migrations_dir, "/srv/ledgerd/migrations");
    char *out = print_to_string(&cfg, false);
    assert_non_null(strstr(out, "LEDGERD_MIGRATIONS_DIR=/srv/ledgerd/migrations\n"));
    free(out);
    env_clear();
    env_set("LEDGERD_MIGRATIONS_DIR", "mig\x01rations");
    assert_int_equal(load(&cfg, &err), -EINVAL);
    assert_memory_equal(err, "LEDGERD_MIGRATIONS_DIR", 22);
    static char longest[sizeof(cfg.migrations_dir) + 1];
    memset(longest, 'm', sizeof(longest) - 1);
    env_clear();
    env_set("LEDGERD_MIGRATIONS_DIR", longest);
    assert_int_equal(load(&cfg, &err), -EINVAL);
    assert_memory_equal(err, "LEDGERD_MIGRATIONS_DIR", 22);
    longest[sizeof(cfg.migrations_dir) - 1] = '\0';
    env_clear();
    env_set("LEDGERD_MIGRATIONS_DIR", longest);
    assert_int_equal(load(&cfg, &err), 0);
    assert_int_equal(strlen(cfg.migrations_dir), sizeof(cfg.migrations_dir) - 1);
}

static void test_jwt_settings(void **state)
{
    (void)state;
    char path[64];
    temp_file(path, sizeof(path), "{\"keys\":[]}", 11);
    struct config cfg;
    const char *err = NULL;

    env_clear();
    env_set("LEDGERD_JWKS_FILE", path);
    env_set("LEDGERD_JWT_ISSUER", "https://issuer.example/");
    env_set("LEDGERD_JWT_AUDIENCE", "ledgerd");
    env_set("LEDGERD_JWT_CLOCK_SKEW_SECONDS", "0");
    assert_int_equal(load(&cfg, &err), 0);
    assert_string_equal(cfg.jwks_file, path);
    assert_string_equal(cfg.jwt_issuer, "https://issuer.example/");
    assert_string_equal(cfg.jwt_audience, "ledgerd");
    assert_int_equal(cfg.jwt_clock_skew_seconds, 0);

    /* The JWKS needs both an issuer and an audience; the error names what is missing. */
    env_clear();
    env_set("LEDGERD_JWKS_FILE", path);
    assert_int_equal(load(&cfg, &err), -EINVAL);
    assert_int_equal(count_lines(err), 1);
    assert_memory_equal(err, "LEDGERD_JWKS_FILE: ", 19);
    assert_non_null(strstr(err, "LEDGERD_JWT_ISSUER and LEDGERD_JWT_AUDIENCE"));
    env_set("LEDGERD_JWT_ISSUER", "iss");
    assert_int_equal(load(&cfg, &err), -EINVAL);
    assert_null(strstr(err, "LEDGERD_JWT_ISSUER"));
    assert_non_null(strstr(err, "LEDGERD_JWT_AUDIENCE"));
    env_clear();
    env_set("LEDGERD_JWKS_FILE", path);
    env_set("LEDGERD_JWT_AUDIENCE", "aud");
    assert_int_equal(load(&cfg, &err), -EINVAL);
    assert_non_null(strstr(err, "needs LEDGERD_JWT_ISSUER ("));

    /* An issuer alone is harmless. Lengths and control characters. */
    env_clear();
    env_set("LEDGERD_JWT_ISSUER", "iss");
    assert_int_equal(load(&cfg, &err), 0);
    char long_iss[LIMIT_JWT_ISS_LEN_MAX + 2];
    memset(long_iss, 'i', sizeof(long_iss) - 1);
    long_iss[sizeof(long_iss) - 1] = '\0';
    env_clear();
    env_set("LEDGERD_JWT_ISSUER", long_iss);
    assert_int_equal(load(&cfg, &err), -EINVAL);
    assert_memory_equal(err, "LEDGERD_JWT_ISSUER: ", 20);
    long_iss[LIMIT_JWT_ISS_LEN_MAX] = '\0';
    assert_int_equal(load(&cfg, &err), 0);
    assert_int_equal(strlen(cfg.jwt_issuer), LIMIT_JWT_ISS_LEN_MAX);
    env_clear();
    env_set("LEDGERD_JWT_AUDIENCE", "a\tb");
    assert_int_equal(load(&cfg, &err), -EINVAL);
    assert_memory_equal(err, "LEDGERD_JWT_AUDIENCE: ", 22);
    unlink(path);
}

/* The database pool and the Redis cache: URLs, Sentinel lists, their cross-checks, and a
 * password in a redis:// URL never printed. */
static void test_scale_out_settings(void **state)
{
    (void)state;
    struct config cfg;
    const char *err = NULL;
    env_clear();
    assert_int_equal(load(&cfg, &err), 0);
    assert_int_equal(cfg.db_pool_size, 8);
    assert_int_equal(cfg.db_writers, 2);
    assert_string_equal(cfg.redis_url, "");

    env_set("LEDGERD_DB_WRITERS", "0");
    assert_int_equal(load(&cfg, &err), -EINVAL);
    assert_memory_equal(err, "LEDGERD_DB_WRITERS: ", 20);
    env_clear();

    env_set("LEDGERD_REDIS_URL", "redis://:hunter2@cache:6379/2");
    assert_int_equal(load(&cfg, &err), 0);
    char *out = print_to_string(&cfg, false);
    assert_null(strstr(out, "hunter2"));
    assert_non_null(strstr(out, "LEDGERD_REDIS_URL=redis://:***@cache:6379/2\n"));
    free(out);

    static const char *const bad_urls[] = {"http://cache:6379", "redis://", "redis://a b",
                                           "cache:6379"};
    for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
        env_clear();
        env_set("LEDGERD_REDIS_URL", bad_urls[i]);
        assert_int_equal(load(&cfg, &err), -EINVAL);
        assert_memory_equal(err, "LEDGERD_REDIS_URL: ", 19);
    }

    env_clear();
    env_set("LEDGERD_REDIS_SENTINELS", "10.0.0.1:26379,[::1]:26380,sentinel-3:26381");
    env_set("LEDGERD_REDIS_MASTER_NAME", "ledgerd");
    assert_int_equal(load(&cfg, &err), 0);
    assert_string_equal(cfg.redis_master_name, "ledgerd");

    static const char *const bad_sentinels[] = {"host",       "host:", ":26379",   "host:0",
                                                "host:65536", "a:1,",  "a:1,,b:2", "a:x1"};
    for (size_t i = 0; i < sizeof(bad_sentinels) / sizeof(bad_sentinels[0]); i++) {
        env_clear();
        env_set("LEDGERD_REDIS_SENTINELS", bad_sentinels[i]);
        env_set("LEDGERD_REDIS_MASTER_NAME", "m");
        assert_int_equal(load(&cfg, &err), -EINVAL);
        assert_memory_equal(err, "LEDGERD_REDIS_SENTINELS: ", 25);
    }

    /* Sentinels need a master name; a URL and sentinels exclude each other. */
    env_clear();
    env_set("LEDGERD_REDIS_SENTINELS", "s:26379");
    assert_int_equal(load(&cfg, &err), -EINVAL);
    assert_int_equal(count_lines(err), 1);
    assert_memory_equal(err, "LEDGERD_REDIS_SENTINELS: needs LEDGERD_REDIS_MASTER_NAME", 56);
    env_set("LEDGERD_REDIS_MASTER_NAME", "m");
    env_set("LEDGERD_REDIS_URL", "redis://cache:6379");
    assert_int_equal(load(&cfg, &err), -EINVAL);
    assert_non_null(strstr(err, "not both"));
}

static void test_roles(void **state)
{
    (void)state;
    struct config cfg;
    const char *err = NULL;
    env_clear();
    assert_int_equal(load(&cfg, &err), 0);
    char *out = print_to_string(&cfg, false);
    assert_non_null(strstr(out, "LEDGERD_ROLES=" SCOPE_ROLES_DEFAULT "\n"));
    free(out);

    const char *mapping = "payments=ledger:read,ledger:write; analyst=ledger:read";
    env_set("LEDGERD_ROLES", mapping);
    assert_int_equal(load(&cfg, &err), 0);
    assert_string_equal(cfg.roles, mapping);
    out = print_to_string(&cfg, false);
    assert_non_null(strstr(out, "LEDGERD_ROLES=payments=ledger:read,ledger:write; analyst="));
    free(out);

    static const char *const bad[] = {"reader",
                                      "reader=ledger:wirte",
                                      "Reader=ledger:read",
                                      "a=ledger:read;a=audit:read",
                                      "empty=",
                                      ";;"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        env_clear();
        env_set("LEDGERD_ROLES", bad[i]);
        assert_int_equal(load(&cfg, &err), -EINVAL);
        assert_int_equal(count_lines(err), 1);
        assert_memory_equal(err, "LEDGERD_ROLES: ", 15);
    }
    env_clear();
    env_set("LEDGERD_ROLES", "reader=ledger:wirte");
    assert_int_equal(load(&cfg, &err), -EINVAL);
    assert_non_null(strstr(err, "ledger:wirte"));

    /* Longer than LIMIT_ROLES_BYTES_MAX: refused before it is parsed. */
    char *big = malloc(LIMIT_ROLES_BYTES_MAX + 16);
    assert_non_null(big);
    memset(big, ' ', LIMIT_ROLES_BYTES_MAX + 15);
    memcpy(big, "a=admin;", 8);
    big[LIMIT_ROLES_BYTES_MAX + 15] = '\0';
    env_clear();
    env_set("LEDGERD_ROLES", big);
    assert_int_equal(load(&cfg, &err), -EINVAL);
    assert_memory_equal(err, "LEDGERD_ROLES: ", 15);
    free(big);
}

static int read_secret(const char *content, size_t content_len, size_t cap, uint8_t *out,
                       size_t *len, char *err_text, size_t err_len)
{
    char path[64];
    temp_file(path, sizeof(path), content, content_len);
    struct buf err;
    buf_init(&err, 1024);
    int rc = config_read_secret_file(path, out, cap, len, &err);
    snprintf(err_text, err_len, "%.*s", (int)err.len, err.data != NULL ? err.data : "");
    buf_release(&err);
    unlink(path);
    return rc;
}

static void test_read_secret_file(void **state)
{
    (void)state;
    uint8_t out[8];
    size_t len = 99;
    char err[256];

    static const struct {
        const char *content;
        size_t content_len;
        size_t want_len;
    } good[] = {
        {"abc", 3, 3},           {"abc\n", 4, 3},
        {"abc\r\n", 5, 3},       {"abc\n\n", 5, 4},      /* one newline only */
        {"a\rb", 3, 3},                                  /* a lone CR inside stays */
        {"12345678", 8, 8},                              /* exactly cap */
        {"12345678\n", 9, 8},                            /* cap and a newline */
        {"12345678\r\n", 10, 8}, {"\x00\x01\xff", 3, 3}, /* binary is fine */
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        memset(out, 0, sizeof(out));
        assert_int_equal(read_secret(good[i].content, good[i].content_len, sizeof(out), out, &len,
                                     err, sizeof(err)),
                         0);
        assert_int_equal(len, good[i].want_len);
        assert_memory_equal(out, good[i].content, len);
        assert_string_equal(err, "");
    }

    static const struct {
        const char *content;
        size_t content_len;
        const char *reason;
    } bad[] = {
        {"", 0, "empty"},
        {"\n", 1, "empty"},
        {"\r\n", 2, "empty"},
        {"123456789", 9, "more than 8 bytes"},
        {"12345678x\n", 10, "more than 8 bytes"},
        {"12345678\n\n", 10, "more than 8 bytes"},
        {"123456789012345678901234567890", 30, "more than 8 bytes"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(out, 'k', sizeof(out));
        len = 99;
        assert_int_equal(read_secret(bad[i].content, bad[i].content_len, sizeof(out), out, &len,
                                     err, sizeof(err)),
                         -EINVAL);
        assert_int_equal(len, 0);
        assert_non_null(strstr(err, bad[i].reason));
        assert_null(strstr(err, "12345")); /* never the content */
        assert_null(strchr(err, '\n'));
        for (size_t k = 0; k < sizeof(out); k++) {
            assert_int_equal(out[k], 0); /* wiped */
        }
    }

    /* Not there; not a regular file. */
    struct buf e;
    buf_init(&e, 1024);
    assert_int_equal(config_read_secret_file("/nonexistent/key", out, sizeof(out), &len, &e),
                     -ENOENT);
    assert_non_null(strstr(e.data, "/nonexistent/key"));
    buf_reset(&e);
    assert_int_equal(config_read_secret_file("/tmp", out, sizeof(out), &len, &e), -EINVAL);
    assert_non_null(strstr(e.data, "not a regular file"));
    buf_release(&e);
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
        cmocka_unit_test(test_auth_mode),
        cmocka_unit_test(test_auth_open_routes),
        cmocka_unit_test(test_path_settings),
        cmocka_unit_test(test_migrations_dir),
        cmocka_unit_test(test_jwt_settings),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_scale_out_settings),
        cmocka_unit_test(test_read_secret_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
