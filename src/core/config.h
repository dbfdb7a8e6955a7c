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

#endif
