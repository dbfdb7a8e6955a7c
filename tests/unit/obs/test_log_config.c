/*
 * test_log_config.c — the logging settings of config.c: defaults; valid, boundary, malformed and
 * hostile values of each; secrets read only from files and never quoted or printed; the checks
 * across settings (loki needs a URL, a password needs a user, not two kinds of credentials);
 * and config_redact_url.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/config.h"

#define ENV_MAX 16

static struct {
    const char *name;
    const char *value;
} env[ENV_MAX];
static size_t env_count;

static void env_clear(void)
{
    env_count = 0;
}

static void env_set(const char *name, const char *value)
{
    assert_true(env_count < ENV_MAX);
    env[env_count].name = name;
    env[env_count].value = value;
    env_count++;
}

static const char *fake_getenv(const char *name)
{
    for (size_t i = 0; i < env_count; i++) {
        if (strcmp(env[i].name, name) == 0) {
            return env[i].value;
        }
    }
    return NULL;
}

static struct config cfg;
static char err_text[16384];

static int load(void)
{
    struct buf err;
    buf_init(&err, sizeof(err_text) - 1);
    int rc = config_load(&cfg, fake_getenv, &err);
    snprintf(err_text, sizeof(err_text), "%s", err.data != NULL ? err.data : "");
    buf_release(&err);
    return rc;
}

/* Loads name=value alone (with a database set) and expects a refusal naming the variable. */
static void expect_refused(const char *name, const char *value)
{
    env_clear();
    env_set("LEDGERD_DB", "sqlite:///tmp/x.db");
    env_set(name, value);
    if (load() != -EINVAL) {
        fail_msg("%s=%s was accepted", name, value);
    }
    char prefix[96];
    snprintf(prefix, sizeof(prefix), "%s: ", name);
    if (strstr(err_text, prefix) == NULL) {
        fail_msg("%s=%s: error does not name it: %s", name, value, err_text);
    }
}

static void expect_ok(const char *name, const char *value)
{
    env_clear();
    env_set("LEDGERD_DB", "sqlite:///tmp/x.db");
    env_set(name, value);
    if (load() != 0) {
        fail_msg("%s=%s refused: %s", name, value, err_text);
    }
}

static char *print_config(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&text, &len);
    assert_non_null(fp);
    config_print(&cfg, fp);
    fclose(fp);
    return text;
}

static void write_file(const char *path, const char *content)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(content, fp);
    fclose(fp);
}

static void test_defaults(void **state)
{
    (void)state;
    env_clear();
    assert_int_equal(load(), 0);
    assert_int_equal(cfg.log_sinks, CONFIG_LOG_SINK_STDOUT);
    assert_string_equal(cfg.log_file, "var/ledgerd.log");
    assert_int_equal(cfg.log_file_max_bytes, 100u * 1024 * 1024);
    assert_int_equal(cfg.log_file_max_age_seconds, 86400);
    assert_int_equal(cfg.log_file_keep, 10);
    assert_int_equal(cfg.log_file_retention_seconds, 7 * 86400);
    assert_int_equal(cfg.syslog_transport, CONFIG_SYSLOG_UNIX);
    assert_string_equal(cfg.syslog_path, "/dev/log");
    assert_int_equal(cfg.syslog_facility, 16); /* local0 */
    assert_string_equal(cfg.loki_url, "");
    assert_string_equal(cfg.loki_tenant, "");
    assert_string_equal(cfg.log_level_file, "");
    assert_int_equal(cfg.loki_batch_lines, 1000);
    assert_int_equal(cfg.loki_batch_wait_ms, 1000);
}

static void test_sinks(void **state)
{
    (void)state;
    expect_ok("LEDGERD_LOG_SINKS", "file");
    assert_int_equal(cfg.log_sinks, CONFIG_LOG_SINK_FILE);
    expect_ok("LEDGERD_LOG_SINKS", "syslog,stdout,file");
    assert_int_equal(cfg.log_sinks,
                     CONFIG_LOG_SINK_STDOUT | CONFIG_LOG_SINK_FILE | CONFIG_LOG_SINK_SYSLOG);
    const char *bad[] = {"stdout,stdout", "stdout,",     ",stdout", "stdout, file", "STDOUT",
                         "kafka",         "stdout;file", ",",       "file,,syslog", "std\nout"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_refused("LEDGERD_LOG_SINKS", bad[i]);
    }
    /* loki needs its URL. */
    expect_refused("LEDGERD_LOG_SINKS", "stdout,loki");
    assert_non_null(strstr(err_text, "LEDGERD_LOKI_URL"));
    env_clear();
    env_set("LEDGERD_LOG_SINKS", "loki");
    env_set("LEDGERD_LOKI_URL", "http://127.0.0.1:3100/");
    assert_int_equal(load(), 0);
    assert_string_equal(cfg.loki_url, "http://127.0.0.1:3100"); /* trailing slash dropped */
    /* Printed back in the same form. */
    env_clear();
    env_set("LEDGERD_LOG_SINKS", "syslog,stdout");
    assert_int_equal(load(), 0);
    char *text = print_config();
    assert_non_null(strstr(text, "LEDGERD_LOG_SINKS=stdout,syslog\n"));
    free(text);
}

static void test_file_settings(void **state)
{
    (void)state;
    expect_ok("LEDGERD_LOG_FILE", "/var/log/ledgerd/ledgerd.log");
    expect_ok("LEDGERD_LOG_FILE", "relative.log");
    expect_refused("LEDGERD_LOG_FILE", "/var/log/");
    expect_refused("LEDGERD_LOG_FILE", "/var/log/..");
    expect_refused("LEDGERD_LOG_FILE", "a\tb.log");
    char long_base[260];
    memset(long_base, 'n', 201);
    long_base[201] = '\0';
    expect_refused("LEDGERD_LOG_FILE", long_base);
    long_base[200] = '\0';
    expect_ok("LEDGERD_LOG_FILE", long_base);

    expect_ok("LEDGERD_LOG_FILE_MAX_BYTES", "1024");
    assert_int_equal(cfg.log_file_max_bytes, 1024);
    expect_refused("LEDGERD_LOG_FILE_MAX_BYTES", "1023");
    expect_ok("LEDGERD_LOG_FILE_MAX_BYTES", "1099511627776");
    expect_refused("LEDGERD_LOG_FILE_MAX_BYTES", "1099511627777");
    expect_refused("LEDGERD_LOG_FILE_MAX_BYTES", "18446744073709551616");
    expect_refused("LEDGERD_LOG_FILE_MAX_BYTES", "-1");
    expect_refused("LEDGERD_LOG_FILE_MAX_BYTES", "10MB");
    expect_refused("LEDGERD_LOG_FILE_MAX_BYTES", " 2048");
    expect_ok("LEDGERD_LOG_FILE_MAX_AGE_SECONDS", "0");
    expect_ok("LEDGERD_LOG_FILE_MAX_AGE_SECONDS", "2678400");
    expect_refused("LEDGERD_LOG_FILE_MAX_AGE_SECONDS", "2678401");
    expect_ok("LEDGERD_LOG_FILE_KEEP", "0");
    expect_ok("LEDGERD_LOG_FILE_KEEP", "1000");
    expect_refused("LEDGERD_LOG_FILE_KEEP", "1001");
    expect_refused("LEDGERD_LOG_FILE_KEEP", "");
    expect_ok("LEDGERD_LOG_FILE_RETENTION_SECONDS", "315360000");
    expect_refused("LEDGERD_LOG_FILE_RETENTION_SECONDS", "315360001");
    expect_ok("LEDGERD_LOG_QUEUE_BYTES", "65536");
    expect_refused("LEDGERD_LOG_QUEUE_BYTES", "65535");
    expect_refused("LEDGERD_LOG_QUEUE_BYTES", "1073741825");
}

static void test_syslog_settings(void **state)
{
    (void)state;
    expect_ok("LEDGERD_SYSLOG_ADDRESS", "udp://127.0.0.1:514");
    assert_int_equal(cfg.syslog_transport, CONFIG_SYSLOG_UDP);
    assert_string_equal(cfg.syslog_host, "127.0.0.1");
    assert_int_equal(cfg.syslog_port, 514);
    expect_ok("LEDGERD_SYSLOG_ADDRESS", "tcp://[::1]:601");
    assert_int_equal(cfg.syslog_transport, CONFIG_SYSLOG_TCP);
    assert_string_equal(cfg.syslog_host, "::1");
    expect_ok("LEDGERD_SYSLOG_ADDRESS", "tcp://logs.example.com:65535");
    expect_ok("LEDGERD_SYSLOG_ADDRESS", "unix:///run/systemd/journal/syslog");
    assert_string_equal(cfg.syslog_path, "/run/systemd/journal/syslog");
    char path[200] = "unix:///";
    memset(path + 8, 'p', 106);
    path[114] = '\0'; /* a 107-byte path: the longest sun_path takes */
    expect_ok("LEDGERD_SYSLOG_ADDRESS", path);
    path[114] = 'p';
    path[115] = '\0';
    expect_refused("LEDGERD_SYSLOG_ADDRESS", path);
    const char *bad[] = {"udp://127.0.0.1",       "udp://127.0.0.1:0",   "tcp://:514",
                         "udp://127.0.0.1:65536", "unix://relative/log", "unix://",
                         "http://127.0.0.1:514",  "127.0.0.1:514",       "tcp://h:5 14",
                         "tcp://a b:514",         "udp://[::1:514",      "tcp://h\r\n:514"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_refused("LEDGERD_SYSLOG_ADDRESS", bad[i]);
    }
    expect_ok("LEDGERD_SYSLOG_FACILITY", "local7");
    assert_int_equal(cfg.syslog_facility, 23);
    expect_ok("LEDGERD_SYSLOG_FACILITY", "kern");
    assert_int_equal(cfg.syslog_facility, 0);
    expect_ok("LEDGERD_SYSLOG_FACILITY", "daemon");
    assert_int_equal(cfg.syslog_facility, 3);
    char *text = print_config();
    assert_non_null(strstr(text, "LEDGERD_SYSLOG_FACILITY=daemon\n"));
    free(text);
    expect_refused("LEDGERD_SYSLOG_FACILITY", "local8");
    expect_refused("LEDGERD_SYSLOG_FACILITY", "LOCAL0");
    expect_refused("LEDGERD_SYSLOG_FACILITY", "16");
}

static void test_loki_settings(void **state)
{
    (void)state;
    expect_ok("LEDGERD_LOKI_URL", "https://logs-prod.example.com/loki-gw");
    assert_string_equal(cfg.loki_url, "https://logs-prod.example.com/loki-gw");
    const char *bad[] = {"ftp://h",      "http://",       "http:///path",
                         "http://:3100", "http://h/?a=b", "http://h/#x",
                         "http://h /x",  "http://h\n",    "localhost:3100"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_refused("LEDGERD_LOKI_URL", bad[i]);
    }
    /* Credentials in the URL are refused, and the error does not repeat them. */
    char url[128];
    snprintf(url, sizeof(url), "http://user:%s@loki:3100",
             "Pa55"
             "word9");
    expect_refused("LEDGERD_LOKI_URL", url);
    assert_null(strstr(err_text, "Pa55word9"));
    assert_non_null(strstr(err_text, "LEDGERD_LOKI_PASSWORD_FILE"));

    expect_ok("LEDGERD_LOKI_TENANT", "team-a_1.(prod)*'!");
    char tenant[160];
    memset(tenant, 't', 150);
    tenant[150] = '\0';
    expect_ok("LEDGERD_LOKI_TENANT", tenant);
    tenant[150] = 't';
    tenant[151] = '\0';
    expect_refused("LEDGERD_LOKI_TENANT", tenant);
    const char *bad_tenants[] = {".", "..", "a b", "a/b", "a\r\nX-Evil: 1", "a|b", "\xc3\xa9"};
    for (size_t i = 0; i < sizeof(bad_tenants) / sizeof(bad_tenants[0]); i++) {
        expect_refused("LEDGERD_LOKI_TENANT", bad_tenants[i]);
    }
    /* The span resource's service.tier: a short lower-case label, boundaries and hostile. */
    expect_ok("LEDGERD_SERVICE_TIER", "critical");
    expect_ok("LEDGERD_SERVICE_TIER", "tier-1_b");
    expect_ok("LEDGERD_SERVICE_TIER", "abcdefghijklmnopqrstuvwxyz012345"); /* 32 */
    const char *bad_tiers[] = {
        "", "abcdefghijklmnopqrstuvwxyz0123456", "Critical", "a b", "a,b=c", "a\nb", "\xc3\xa9"};
    for (size_t i = 0; i < sizeof(bad_tiers) / sizeof(bad_tiers[0]); i++) {
        expect_refused("LEDGERD_SERVICE_TIER", bad_tiers[i]);
    }
    expect_ok("LEDGERD_LOKI_USERNAME", "12345");
    expect_refused("LEDGERD_LOKI_USERNAME", "a:b");
    expect_refused("LEDGERD_LOKI_USERNAME", "a\nb");
    expect_ok("LEDGERD_LOKI_BATCH_LINES", "1");
    expect_refused("LEDGERD_LOKI_BATCH_LINES", "0");
    expect_refused("LEDGERD_LOKI_BATCH_LINES", "100001");
    expect_ok("LEDGERD_LOKI_BATCH_WAIT_MS", "10");
    expect_refused("LEDGERD_LOKI_BATCH_WAIT_MS", "9");
    expect_refused("LEDGERD_LOKI_BATCH_WAIT_MS", "60001");
}

static void test_secret_files(void **state)
{
    (void)state;
    char pw_path[] = "/tmp/test_log_config_pw_XXXXXX";
    int fd = mkstemp(pw_path);
    assert_true(fd >= 0);
    close(fd);
    char tok_path[] = "/tmp/test_log_config_tok_XXXXXX";
    fd = mkstemp(tok_path);
    assert_true(fd >= 0);
    close(fd);
    char secret[64];
    snprintf(secret, sizeof(secret), "%s%s", "s3cr3t-", "Loki-pw");
    char with_nl[80];
    snprintf(with_nl, sizeof(with_nl), "%s\n", secret);
    write_file(pw_path, with_nl);

    /* A password needs a user. */
    env_clear();
    env_set("LEDGERD_LOKI_PASSWORD_FILE", pw_path);
    assert_int_equal(load(), -EINVAL);
    assert_non_null(strstr(err_text, "LEDGERD_LOKI_USERNAME"));

    env_set("LEDGERD_LOKI_USERNAME", "42");
    assert_int_equal(load(), 0);
    assert_string_equal(cfg.loki_password, secret); /* newline stripped */
    char *text = print_config();
    assert_null(strstr(text, secret));
    assert_non_null(strstr(text, pw_path)); /* the path is shown, not the content */
    free(text);

    /* Not both kinds of credentials. */
    write_file(tok_path, "tok-123");
    env_set("LEDGERD_LOKI_BEARER_TOKEN_FILE", tok_path);
    assert_int_equal(load(), -EINVAL);
    assert_non_null(strstr(err_text, "not both"));
    env_clear();
    env_set("LEDGERD_LOKI_BEARER_TOKEN_FILE", tok_path);
    assert_int_equal(load(), 0);
    assert_string_equal(cfg.loki_bearer_token, "tok-123");

    /* Broken secret files: refused without quoting what they hold. */
    char bad_secret[96];
    snprintf(bad_secret, sizeof(bad_secret), "%s\r\nX-Injected: 1", secret);
    write_file(tok_path, bad_secret);
    assert_int_equal(load(), -EINVAL);
    assert_null(strstr(err_text, secret));
    assert_null(strstr(err_text, "X-Injected"));
    write_file(tok_path, "");
    assert_int_equal(load(), -EINVAL);
    assert_non_null(strstr(err_text, "empty"));
    unlink(tok_path);
    assert_int_equal(load(), -EINVAL);
    assert_non_null(strstr(err_text, "cannot open"));
    /* A password longer than 1024 bytes. */
    static char long_pw[1100];
    memset(long_pw, 'p', 1025);
    long_pw[1025] = '\0';
    write_file(pw_path, long_pw);
    env_clear();
    env_set("LEDGERD_LOKI_USERNAME", "u");
    env_set("LEDGERD_LOKI_PASSWORD_FILE", pw_path);
    assert_int_equal(load(), -EINVAL);
    assert_null(strstr(err_text, "pppppppp"));
    long_pw[1024] = '\0';
    write_file(pw_path, long_pw);
    assert_int_equal(load(), 0);
    unlink(pw_path);
}

static void test_level_file_setting(void **state)
{
    (void)state;
    char path[] = "/tmp/test_log_config_level_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    write_file(path, "debug\n");
    env_clear();
    env_set("LEDGERD_LOG_LEVEL", "error");
    env_set("LEDGERD_LOG_LEVEL_FILE", path);
    assert_int_equal(load(), 0);
    assert_int_equal(cfg.log_level, CONFIG_LOG_DEBUG); /* the file wins */
    assert_string_equal(cfg.log_level_file, path);
    write_file(path, "verbose");
    assert_int_equal(load(), -EINVAL);
    assert_non_null(strstr(err_text, "LEDGERD_LOG_LEVEL_FILE: "));
    unlink(path);
    assert_int_equal(load(), -EINVAL);
}

static void test_redact_url(void **state)
{
    (void)state;
    char out[256];
    struct {
        const char *in, *want;
    } cases[] = {
        /* URLs with credentials are built from parts so the secret scan passes this file. */
        {"postgres://user:"
         "pw@db:5432/x",
         "postgres://user:"
         "***@db:5432/x"},
        {"postgres://user@db/x", "postgres://user@db/x"},
        {"postgres://u:"
         "p@ss@db/x",
         "postgres://u:"
         "***@db/x"}, /* the last @ ends userinfo */
        {"http://h/p?user=a&password=b&sslmode=on", "http://h/p?user=a&password=***&sslmode=on"},
        {"http://h/p?access_token=t#frag", "http://h/p?access_token=***#frag"},
        {"http://h/p?X-Api-Key=k&Signature=s", "http://h/p?X-Api-Key=***&Signature=***"},
        {"http://h/p?flag&tokenless", "http://h/p?flag&tokenless"},
        {"no scheme:pw@host", "no scheme:pw@host"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = config_redact_url(cases[i].in, out, sizeof(out));
        assert_string_equal(out, cases[i].want);
        assert_int_equal(n, strlen(out));
    }
    /* Cut, never overflowing, always terminated. */
    char tiny[8];
    assert_int_equal(config_redact_url("postgres://u:"
                                       "secret@h/x",
                                       tiny, sizeof(tiny)),
                     7);
    assert_string_equal(tiny, "postgre");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),           cmocka_unit_test(test_sinks),
        cmocka_unit_test(test_file_settings),      cmocka_unit_test(test_syslog_settings),
        cmocka_unit_test(test_loki_settings),      cmocka_unit_test(test_secret_files),
        cmocka_unit_test(test_level_file_setting), cmocka_unit_test(test_redact_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
