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
#include "core/limits.h"

enum config_env { CONFIG_ENV_DEV, CONFIG_ENV_STAGING, CONFIG_ENV_PROD };
enum config_log_level { CONFIG_LOG_DEBUG, CONFIG_LOG_INFO, CONFIG_LOG_WARN, CONFIG_LOG_ERROR };

/* LEDGERD_LOG_SINKS: where log lines go, as bits (the order of enum log_sink in obs/log.h). */
#define CONFIG_LOG_SINK_STDOUT (1u << 0)
#define CONFIG_LOG_SINK_FILE (1u << 1)
#define CONFIG_LOG_SINK_SYSLOG (1u << 2)
#define CONFIG_LOG_SINK_LOKI (1u << 3)

/* LEDGERD_AUTH_OPEN_ROUTES: route groups answered without a credential, as bits. */
#define CONFIG_AUTH_OPEN_PROBES 1u    /* /livez, /readyz */
#define CONFIG_AUTH_OPEN_METRICS 2u   /* /metrics */
#define CONFIG_AUTH_OPEN_DASHBOARD 4u /* /ops/dashboard */

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

    /* PostgreSQL (docs/operations/scaling.md); SQLite ignores these. */
    uint32_t db_pool_size;                 /* LEDGERD_DB_POOL_SIZE: reader connections */
    uint32_t db_writers;                   /* LEDGERD_DB_WRITERS: commit workers/connections */
    uint32_t db_acquire_timeout_ms;        /* LEDGERD_DB_ACQUIRE_TIMEOUT_MS */
    uint32_t db_conn_max_lifetime_seconds; /* LEDGERD_DB_CONN_MAX_LIFETIME_SECONDS */
    uint32_t db_statement_timeout_ms;      /* LEDGERD_DB_STATEMENT_TIMEOUT_MS */
    char migrations_dir[4096];             /* LEDGERD_MIGRATIONS_DIR ("" = unset) */
    char db_password_file[4096];           /* LEDGERD_DB_PASSWORD_FILE ("" = none), the path */
    uint32_t db_work_queue_max;            /* LEDGERD_DB_WORK_QUEUE_MAX: requests waiting */

    /* The Redis idempotency cache (optional). */
    char redis_url[1024];            /* LEDGERD_REDIS_URL ("" = none) */
    char redis_sentinels[1024];      /* LEDGERD_REDIS_SENTINELS: host:port,... ("" = none) */
    char redis_master_name[128];     /* LEDGERD_REDIS_MASTER_NAME (needed with sentinels) */
    char redis_password_file[4096];  /* LEDGERD_REDIS_PASSWORD_FILE ("" = none), the path */
    uint32_t redis_timeout_ms;       /* LEDGERD_REDIS_TIMEOUT_MS */
    uint32_t redis_breaker_failures; /* LEDGERD_REDIS_BREAKER_FAILURES */
    uint32_t redis_breaker_open_ms;  /* LEDGERD_REDIS_BREAKER_OPEN_MS */

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

    /* Authentication, authorization and the audit trail (docs/security/). File settings hold
     * the path only, checked at load to name a readable regular file; their content is read
     * by whoever uses it (config_read_secret_file), and is never printed. */
    bool auth_required;        /* LEDGERD_AUTH required|off (off only with LEDGERD_ENV=dev) */
    uint32_t auth_open_routes; /* LEDGERD_AUTH_OPEN_ROUTES as CONFIG_AUTH_OPEN_* bits */
    char jwks_file[4096];      /* LEDGERD_JWKS_FILE ("" = JWTs are not accepted) */
    char jwt_issuer[LIMIT_JWT_ISS_LEN_MAX + 1]; /* LEDGERD_JWT_ISSUER (needed with a JWKS) */
    char jwt_audience[256];                     /* LEDGERD_JWT_AUDIENCE (needed with a JWKS) */
    uint32_t jwt_clock_skew_seconds;            /* LEDGERD_JWT_CLOCK_SKEW_SECONDS */
    char apikey_hash_key_file[4096];       /* LEDGERD_APIKEY_HASH_KEY_FILE ("" = no API keys) */
    char roles[LIMIT_ROLES_BYTES_MAX + 1]; /* LEDGERD_ROLES ("" = SCOPE_ROLES_DEFAULT) */
    uint32_t auth_failures_max;            /* LEDGERD_AUTH_FAILURES_MAX */
    uint32_t auth_failure_window_seconds;  /* LEDGERD_AUTH_FAILURE_WINDOW_SECONDS */
    char audit_signing_key_file[4096];     /* LEDGERD_AUDIT_SIGNING_KEY_FILE ("" = unsigned) */
    uint32_t audit_checkpoint_interval_seconds; /* LEDGERD_AUDIT_CHECKPOINT_INTERVAL_SECONDS */
    uint32_t audit_checkpoint_records;          /* LEDGERD_AUDIT_CHECKPOINT_RECORDS */
    char audit_public_keys_file[4096];          /* LEDGERD_AUDIT_PUBLIC_KEYS_FILE ("" = none) */
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

/* Reads the secret held by the file at path (an API key hashing key, a signing key) into out,
 * cap bytes at most. One trailing "\n" or "\r\n" is not part of the secret. Refuses a file
 * that is not a regular file, is empty, or holds more than cap bytes: -EINVAL; a file that
 * cannot be opened or read: -errno (-ENOENT, -EACCES, -EIO, ...). On error appends one line,
 * without a newline, to err naming the path and the reason — never the content — and wipes
 * out. On success *len_out is the secret's length (1..cap); the caller wipes out after use.
 * Thread-safe. */
int config_read_secret_file(const char *path, uint8_t *out, size_t cap, size_t *len_out,
                            struct buf *err);

#endif
