/*
 * config.h — ledgerd's configuration: every setting, its environment variable, its default and
 * its bounds, applied in one place (config.c holds the table).
 *
 * Settings come from LEDGERD_* environment variables. A secret-bearing setting may instead name
 * a file with the same variable plus _FILE (LEDGERD_DB_FILE), read once at start-up.
 */
#ifndef LEDGERD_CORE_CONFIG_H
#define LEDGERD_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/buf.h"

enum config_env { CONFIG_ENV_DEV, CONFIG_ENV_STAGING, CONFIG_ENV_PROD };
enum config_log_level { CONFIG_LOG_DEBUG, CONFIG_LOG_INFO, CONFIG_LOG_WARN, CONFIG_LOG_ERROR };

/* LEDGERD_LOG_SINKS: where log lines go, as bits (the order of enum log_sink in obs/log.h). */
#define CONFIG_LOG_SINK_STDOUT (1u << 0)
#define CONFIG_LOG_SINK_FILE (1u << 1)
#define CONFIG_LOG_SINK_SYSLOG (1u << 2)
#define CONFIG_LOG_SINK_LOKI (1u << 3)

/* LEDGERD_SYSLOG_ADDRESS: unix:///path (datagram), udp://host:port, tcp://host:port. */
enum config_syslog_transport { CONFIG_SYSLOG_UNIX, CONFIG_SYSLOG_UDP, CONFIG_SYSLOG_TCP };

struct config {
    char listen_host[256];            /* LEDGERD_LISTEN host part (default 127.0.0.1) */
    uint16_t listen_port;             /* LEDGERD_LISTEN port part (default 8080; 0 = any free) */
    char db_url[4096];                /* LEDGERD_DB (default sqlite://<cwd>/var/ledgerd.db) */
    enum config_env env;              /* LEDGERD_ENV dev|staging|prod (default dev) */
    enum config_log_level log_level;  /* LEDGERD_LOG_LEVEL debug|info|warn|error (default info) */
    uint32_t io_threads;              /* LEDGERD_THREADS (0 = one per core) */
    size_t body_bytes_max;            /* LEDGERD_BODY_BYTES_MAX */
    size_t batch_body_bytes_max;      /* LEDGERD_BATCH_BODY_BYTES_MAX */
    uint32_t queue_depth_max;         /* LEDGERD_QUEUE_DEPTH_MAX (commands) */
    uint32_t commit_items_max;        /* LEDGERD_COMMIT_ITEMS_MAX (ledger items per transaction) */
    uint32_t idempotency_ttl_seconds; /* LEDGERD_IDEMPOTENCY_TTL_SECONDS */
    bool idempotency_required;        /* LEDGERD_IDEMPOTENCY_REQUIRED true|false */
    uint32_t connections_max;         /* LEDGERD_CONNECTIONS_MAX */
    uint32_t per_ip_connections_max;  /* LEDGERD_PER_IP_CONNECTIONS_MAX */
    uint32_t connection_timeout_seconds; /* LEDGERD_CONNECTION_TIMEOUT_SECONDS */
    uint32_t shutdown_timeout_seconds;   /* LEDGERD_SHUTDOWN_TIMEOUT_SECONDS */
    uint32_t expiry_interval_ms;         /* LEDGERD_EXPIRY_INTERVAL_MS */

    /* Logging beyond stdout (docs/operations/logging.md). */
    char log_level_file[4096];           /* LEDGERD_LOG_LEVEL_FILE ("" = none); read on SIGHUP */
    char log_file[4096];                 /* LEDGERD_LOG_FILE (default var/ledgerd.log) */
    size_t log_file_max_bytes;           /* LEDGERD_LOG_FILE_MAX_BYTES: rotate past this size */
    uint32_t log_file_max_age_seconds;   /* LEDGERD_LOG_FILE_MAX_AGE_SECONDS (0 = no age rule) */
    uint32_t log_file_keep;              /* LEDGERD_LOG_FILE_KEEP: rotated files kept at most */
    uint32_t log_file_retention_seconds; /* LEDGERD_LOG_FILE_RETENTION_SECONDS (0 = no age rule) */
    size_t log_queue_bytes;              /* LEDGERD_LOG_QUEUE_BYTES: per sink */
    char syslog_address[320];            /* LEDGERD_SYSLOG_ADDRESS, as given */
    enum config_syslog_transport syslog_transport; /* parsed from syslog_address */
    char syslog_host[256];                         /* udp/tcp: host name or IP literal */
    uint16_t syslog_port;                          /* udp/tcp: port 1..65535 */
    char syslog_path[108];                         /* unix: socket path (sun_path) */
    uint32_t syslog_facility;                      /* LEDGERD_SYSLOG_FACILITY as its code 0..23 */
    char loki_url[2048];               /* LEDGERD_LOKI_URL ("" = none), no trailing slash */
    char loki_tenant[151];             /* LEDGERD_LOKI_TENANT ("" = no X-Scope-OrgID) */
    char service_tier[33];             /* LEDGERD_SERVICE_TIER (default critical) */
    char loki_username[257];           /* LEDGERD_LOKI_USERNAME (basic auth) */
    char loki_password_file[4096];     /* LEDGERD_LOKI_PASSWORD_FILE, the path */
    char loki_password[1025];          /* its content: a secret, never printed */
    char loki_bearer_token_file[4096]; /* LEDGERD_LOKI_BEARER_TOKEN_FILE, the path */
    char loki_bearer_token[4097];      /* its content: a secret, never printed */
    uint32_t loki_batch_lines;         /* LEDGERD_LOKI_BATCH_LINES */
    uint32_t loki_batch_wait_ms;       /* LEDGERD_LOKI_BATCH_WAIT_MS */
    uint32_t log_sinks;                /* LEDGERD_LOG_SINKS as CONFIG_LOG_SINK_* bits */
};

/* Getter for environment variables, so tests can supply their own. Returns NULL when unset. */
typedef const char *(*config_getenv_fn)(const char *name);

/* Fills *cfg with defaults, then applies every LEDGERD_* variable that getenv returns.
 * Returns 0, or -EINVAL with one line per bad setting in err ("LEDGERD_LISTEN: ..."). Unknown
 * LEDGERD_* variables are not detected here (see config_unknown_vars). */
int config_load(struct config *cfg, config_getenv_fn getenv_fn, struct buf *err);

/* Appends to err a line for every variable in envp starting with LEDGERD_ that is not a known
 * setting (a typo must not go unnoticed). Returns the number found. */
size_t config_unknown_vars(char *const *envp, struct buf *err);

/* Prints the effective configuration, one "LEDGERD_X=value" line per setting, secrets
 * (passwords in URLs) masked. */
void config_print(const struct config *cfg, FILE *out);

/* Prints the documentation of every setting (name, default, meaning) for --help. */
void config_print_help(FILE *out);

const char *config_env_name(enum config_env env);
const char *config_log_level_name(enum config_log_level level);

/* Parses a log level as LEDGERD_LOG_LEVEL_FILE holds it: "debug", "info", "warn" or "error",
 * optionally written "LEDGERD_LOG_LEVEL=<level>", with surrounding blanks and newlines ignored.
 * text is len bytes, not necessarily NUL-terminated. Returns 0 and sets *out, or -EINVAL. */
int config_log_level_parse(const char *text, size_t len, enum config_log_level *out);

/* Writes url to out (out_len bytes, NUL-terminated, cut if needed) with the password of its
 * userinfo ("user:pw@") and the values of query parameters that name secrets (password, token,
 * secret, key, ...) replaced by ***. Returns the length written. Used wherever a URL is shown or
 * logged. */
size_t config_redact_url(const char *url, char *out, size_t out_len);

#endif
