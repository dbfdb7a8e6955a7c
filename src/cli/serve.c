/*
 * serve.c — `ledgerd serve`: open the store, check migrations, start the commit worker and the
 * HTTP server, then wait for SIGTERM/SIGINT and shut down gracefully.
 *
 * Shutdown order matters: readiness turns false and new requests are refused first, then in-flight
 * requests finish (their commands commit), then the commit worker drains what is queued, and
 * only then does the HTTP daemon stop — every suspended connection has been resumed by then.
 * Nothing acknowledged is lost at any step: a reply is only sent after its commit.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"
#include "auth/auth.h"
#include "cli/cli.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/limits.h"
#include "http/http.h"
#include "idem/rcache.h"
#include "obs/log.h"
#include "obs/otlp.h"
#include "store/commit.h"
#include "store/store.h"

/* How long the exporter may keep sending the spans of the last requests after the server
 * stopped, whatever remains of the shutdown deadline. */
#define SERVE_TRACES_FLUSH_MS 2000
/* A Redis password: one line of text. */
#define SERVE_REDIS_PASSWORD_BYTES_MAX 512

static const char *serve_getenv(const char *name)
{
    return getenv(name);
}

/* Reads the OTEL_* variables and starts the trace exporter when an endpoint is configured.
 * A configuration it refuses stops start-up, naming the variable. */
static int serve_tracing_start(void)
{
    static struct otlp_config ocfg; /* large (resource and headers); used once */
    char err[256] = "";
    if (otlp_config_load(&ocfg, serve_getenv, LEDGERD_VERSION, err, sizeof(err)) != 0) {
        fprintf(stderr, "ledgerd: %s\n", err);
        log_msgf(CONFIG_LOG_ERROR, NULL, "tracing: %s", err);
        return -1;
    }
    int rc = otlp_start(&ocfg);
    if (rc != 0) {
        log_msgf(CONFIG_LOG_ERROR, NULL, "tracing: cannot start the exporter (%s)", strerror(-rc));
        return -1;
    }
    if (ocfg.enabled) {
        log_msgf(CONFIG_LOG_INFO, NULL, "tracing: exporting spans to %s", ocfg.endpoint);
    }
    return 0;
}

/* Loads LEDGERD_AUDIT_SIGNING_KEY_FILE's Ed25519 key for the audit checkpoints (*out NULL when
 * none is configured). The key's text is wiped once loaded; a key that does not load stops
 * start-up, named. */
static int serve_audit_signer(const struct config *cfg, struct audit_signer **out)
{
    *out = NULL;
    if (cfg->audit_signing_key_file[0] == '\0') {
        return 0;
    }
    uint8_t pem[LIMIT_AUDIT_KEY_PEM_BYTES_MAX];
    size_t len = 0;
    struct buf err;
    buf_init(&err, 512);
    int rc = config_read_secret_file(cfg->audit_signing_key_file, pem, sizeof(pem), &len, &err);
    char reason[160] = "";
    if (rc == 0) {
        rc = audit_signer_load((const char *)pem, len, out, reason, sizeof(reason));
    } else {
        (void)snprintf(reason, sizeof(reason), "%s", err.data != NULL ? err.data : "");
    }
    explicit_bzero(pem, sizeof(pem));
    buf_release(&err);
    if (rc != 0) {
        fprintf(stderr, "ledgerd: LEDGERD_AUDIT_SIGNING_KEY_FILE: %s\n", reason);
        log_msgf(CONFIG_LOG_ERROR, NULL, "LEDGERD_AUDIT_SIGNING_KEY_FILE: %s", reason);
    }
    return rc;
}

/* Records an administrative action of the server itself (actor "system") in the audit trail. */
static void serve_audit_system(struct commit *commit, const char *action, const char *resource,
                               bool ok, const char *why)
{
    struct audit_record r;
    memset(&r, 0, sizeof(r));
    r.time_unix_ms = clock_unix_ms();
    const char *decision = ok ? "success" : "failure";
    const char *fields[] = {"system", action, resource, decision, why};
    const enum audit_field names[] = {AUDIT_FIELD_ACTOR, AUDIT_FIELD_ACTION, AUDIT_FIELD_RESOURCE,
                                      AUDIT_FIELD_DECISION, AUDIT_FIELD_REASON};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        (void)audit_record_set(&r, names[i], fields[i], strlen(fields[i]));
    }
    (void)commit_audit_note(commit, &r);
}

/* A reload of the key material (auth_on_reload). */
static void serve_audit_reload(void *ctx, bool ok, const char *why)
{
    serve_audit_system(ctx, "keys.reload", "LEDGERD_JWKS_FILE LEDGERD_APIKEY_HASH_KEY_FILE", ok,
                       why);
}

static void serve_usage(FILE *out)
{
    fputs("usage: ledgerd serve [--migrate]\n"
          "\n"
          "Runs the ledgerd HTTP API. Refuses to start while the database has pending\n"
          "migrations unless --migrate is given (then applies them first).\n"
          "\n"
          "Environment:\n",
          out);
    config_print_help(out);
}

static int serve_migrations(struct store *store, bool migrate)
{
    struct store_migration_status ms;
    if (store_migration_status(store, &ms) != 0) {
        log_msgf(CONFIG_LOG_ERROR, NULL, "cannot read the migration state");
        return -1;
    }
    if (ms.drift) {
        log_msgf(CONFIG_LOG_ERROR, NULL, "migration drift: %s", ms.detail);
        fprintf(stderr, "ledgerd: migration drift: %s\n", ms.detail);
        return -1;
    }
    if (ms.ahead > 0) {
        /* An expand migration of a newer release: this version keeps working on it. */
        log_msgf(CONFIG_LOG_INFO, NULL,
                 "the database has %u migration(s) of a newer release applied; serving on the "
                 "expanded schema",
                 ms.ahead);
    }
    if (ms.pending == 0) {
        return 0;
    }
    if (!migrate) {
        fprintf(stderr,
                "ledgerd: the database has %u pending migration(s); run `ledgerd migrate up` "
                "or start with `ledgerd serve --migrate`\n",
                ms.pending);
        log_msgf(CONFIG_LOG_ERROR, NULL, "refusing to start: %u pending migration(s)", ms.pending);
        return -1;
    }
    struct buf err;
    buf_init(&err, 4096);
    int rc = store_migrate_up(store, NULL, NULL, &err);
    if (rc != 0) {
        log_msgf(CONFIG_LOG_ERROR, NULL, "migration failed: %s", err.data ? err.data : "");
        fprintf(stderr, "ledgerd: migration refused or failed: %s\n", err.data ? err.data : "");
    } else {
        log_msgf(CONFIG_LOG_INFO, NULL, "applied %u migration(s)", ms.pending);
    }
    buf_release(&err);
    return rc;
}

static void serve_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* A batch request allocates and frees megabytes of parsed JSON on an I/O thread. By default
 * glibc hands freed heap tops back to the kernel and serves large blocks with fresh mmaps, so
 * every batch faults its memory in again (page faults and sysmalloc were a fifth of the I/O
 * threads' time in a batch profile). These keep up to LIMIT_MALLOC_TRIM_BYTES of freed memory
 * per arena for reuse and serve blocks below LIMIT_MALLOC_MMAP_BYTES from the heap: RSS then
 * follows the peak working set rather than dropping between requests. Measured: batch
 * transfers/s +15 % (interleaved A/B). */
static void serve_tune_malloc(void)
{
    (void)mallopt(M_MMAP_THRESHOLD, (int)LIMIT_MALLOC_MMAP_BYTES);
    (void)mallopt(M_TRIM_THRESHOLD, (int)LIMIT_MALLOC_TRIM_BYTES);
}

/* The Redis idempotency cache when LEDGERD_REDIS_URL or LEDGERD_REDIS_SENTINELS is set: made
 * now, connected on first use (Redis may start after ledgerd; until then lookups fall back to
 * the database). 0, or -1 with the reason logged. */
static int serve_cache_open(const struct config *cfg, struct rcache **out)
{
    *out = NULL;
    if (cfg->redis_url[0] == '\0' && cfg->redis_sentinels[0] == '\0') {
        return 0;
    }
    char password[SERVE_REDIS_PASSWORD_BYTES_MAX + 1];
    password[0] = '\0';
    struct buf err;
    buf_init(&err, 1024);
    int rc = 0;
    if (cfg->redis_password_file[0] != '\0') {
        size_t len = 0;
        (void)buf_append_str(&err, "LEDGERD_REDIS_PASSWORD_FILE: ");
        rc = config_read_secret_file(cfg->redis_password_file, (uint8_t *)password,
                                     SERVE_REDIS_PASSWORD_BYTES_MAX, &len, &err);
        password[rc == 0 ? len : 0] = '\0';
        if (rc == 0) {
            buf_reset(&err);
        }
    }
    if (rc == 0) {
        struct rcache_config rc_cfg = {
            .url = cfg->redis_url[0] != '\0' ? cfg->redis_url : NULL,
            .sentinels = cfg->redis_sentinels[0] != '\0' ? cfg->redis_sentinels : NULL,
            .master_name = cfg->redis_master_name[0] != '\0' ? cfg->redis_master_name : NULL,
            .password = password[0] != '\0' ? password : NULL,
            .timeout_ms = cfg->redis_timeout_ms,
            .breaker_failures = cfg->redis_breaker_failures,
            .breaker_open_ms = cfg->redis_breaker_open_ms,
        };
        rc = rcache_new(&rc_cfg, out, &err);
    }
    explicit_bzero(password, sizeof(password));
    if (rc != 0) {
        fprintf(stderr, "ledgerd: idempotency cache: %s\n", err.data != NULL ? err.data : "");
        log_msgf(CONFIG_LOG_ERROR, NULL, "idempotency cache: %s", err.data != NULL ? err.data : "");
    }
    buf_release(&err);
    return rc == 0 ? 0 : -1;
}

int cli_serve(int argc, char **argv, const struct config *cfg)
{
    bool migrate = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--migrate") == 0) {
            migrate = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            serve_usage(stdout);
            return CLI_EXIT_OK;
        } else {
            fprintf(stderr, "ledgerd serve: unknown option '%s'\n", argv[i]);
            serve_usage(stderr);
            return CLI_EXIT_USAGE;
        }
    }
    log_setup(cfg->log_level, 1, config_env_name(cfg->env));
    serve_tune_malloc();

    /* Signals are taken synchronously by this thread only; every thread started from here on
     * inherits the blocked mask. A peer closing its socket must not kill the process. */
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    /* Log level at run time (obs/log.h, log_signal): SIGHUP re-reads LEDGERD_LOG_LEVEL_FILE,
     * SIGUSR1 logs more, SIGUSR2 less. */
    sigaddset(&signals, SIGHUP);
    sigaddset(&signals, SIGUSR1);
    sigaddset(&signals, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (log_sinks_start(cfg) != 0) {
        return CLI_EXIT_FAILURE;
    }
    if (serve_tracing_start() != 0) {
        return CLI_EXIT_FAILURE;
    }

    int status = CLI_EXIT_FAILURE;
    struct buf err;
    buf_init(&err, 4096);
    struct store *store = NULL;
    struct commit *commit = NULL;
    struct http_server *http = NULL;
    struct auth *auth = NULL;
    struct audit_signer *signer = NULL;
    struct rcache *cache = NULL;

    if (cli_store_connect(cfg, &store, &err) != 0) {
        fprintf(stderr, "ledgerd: cannot open the database: %s\n", err.data ? err.data : "");
        log_msgf(CONFIG_LOG_ERROR, NULL, "cannot open the database: %s", err.data ? err.data : "");
        goto out_release;
    }
    if (serve_migrations(store, migrate) != 0) {
        goto out_close_store;
    }
    if (serve_audit_signer(cfg, &signer) != 0) {
        goto out_close_store;
    }
    if (serve_cache_open(cfg, &cache) != 0) {
        goto out_close_store;
    }
    struct commit_config cc = {
        .queue_depth_max = cfg->queue_depth_max,
        .items_max = cfg->commit_items_max,
        .idempotency_ttl_seconds = cfg->idempotency_ttl_seconds,
        .expiry_interval_ms = cfg->expiry_interval_ms,
        .audit_signer = signer,
        .audit_checkpoint_records = cfg->audit_checkpoint_records,
        .audit_checkpoint_interval_ms = cfg->audit_checkpoint_interval_seconds * 1000,
        .workers = cfg->db_writers,
    };
    if (commit_start(store, &cc, &commit) != 0) {
        log_msgf(CONFIG_LOG_ERROR, NULL, "cannot start the commit worker");
        goto out_close_store;
    }
    buf_reset(&err);
    if (cfg->auth_required && auth_open(cfg, store, &auth, &err) != 0) {
        fprintf(stderr, "ledgerd: %s\n", err.data ? err.data : "cannot load the credentials");
        log_msgf(CONFIG_LOG_ERROR, NULL, "%s", err.data ? err.data : "cannot load the credentials");
        goto out_stop_commit;
    }
    if (auth != NULL) {
        auth_on_reload(auth, serve_audit_reload, commit);
        if (cfg->jwks_file[0] == '\0' && cfg->apikey_hash_key_file[0] == '\0') {
            log_msgf(CONFIG_LOG_WARN, NULL,
                     "no credential can be checked: every /v1 request will be refused (set "
                     "LEDGERD_APIKEY_HASH_KEY_FILE or LEDGERD_JWKS_FILE)");
        }
    }
    if (!cfg->auth_required) {
        log_msgf(CONFIG_LOG_WARN, NULL,
                 "LEDGERD_AUTH=off: every request is served without credentials (dev only)");
    }
    buf_reset(&err);
    if (http_server_start(cfg, store, commit, auth, cache, &http, &err) != 0) {
        fprintf(stderr, "ledgerd: %s\n", err.data ? err.data : "cannot start the HTTP server");
        log_msgf(CONFIG_LOG_ERROR, NULL, "%s", err.data ? err.data : "cannot start HTTP");
        goto out_stop_commit;
    }
    {
        char fields[512];
        const char *host = cfg->listen_host;
        bool v6 = strchr(host, ':') != NULL;
        snprintf(fields, sizeof(fields),
                 "\"url\":\"http://%s%s%s:%u\",\"version\":\"%s\",\"commit\":\"%s\"", v6 ? "[" : "",
                 host, v6 ? "]" : "", http_server_port(http), LEDGERD_VERSION, LEDGERD_COMMIT);
        log_event(CONFIG_LOG_INFO, NULL, "listening", fields);
        log_msgf(CONFIG_LOG_INFO, NULL, "database: %s, %u commit worker(s)%s",
                 store_system_name(store), commit_workers(commit),
                 cache != NULL ? ", Redis idempotency cache" : "");
    }

    int sig = 0;
    for (;;) {
        if (sigwait(&signals, &sig) != 0) {
            continue;
        }
        if (sig == SIGTERM || sig == SIGINT) {
            break;
        }
        log_signal(sig);
        serve_audit_system(commit, "config.reload", "log level", true,
                           sig == SIGHUP    ? "SIGHUP: LEDGERD_LOG_LEVEL_FILE read again"
                           : sig == SIGUSR1 ? "SIGUSR1: one level more verbose"
                                            : "SIGUSR2: one level less verbose");
        if (sig == SIGHUP && auth != NULL) {
            (void)auth_reload(auth, "SIGHUP");
        }
    }
    log_msgf(CONFIG_LOG_INFO, NULL, "received %s: draining (deadline %u s)",
             sig == SIGTERM ? "SIGTERM" : "SIGINT", cfg->shutdown_timeout_seconds);

    int64_t deadline_ns =
        clock_mono_ns() + (int64_t)cfg->shutdown_timeout_seconds * 1000 * 1000 * 1000;
    http_server_drain(http);
    while (http_server_busy(http) && clock_mono_ns() < deadline_ns) {
        serve_sleep_ms(5);
    }
    uint64_t left = http_server_in_flight(http);
    if (auth != NULL) {
        auth_on_reload(auth, NULL, NULL); /* no reload may reach the worker once it stops */
    }
    commit_stop(commit, deadline_ns);
    commit = NULL;
    /* Give resumed connections a moment to write their replies before the daemon stops. */
    for (int i = 0; i < 200 && http_server_in_flight(http) > 0; i++) {
        serve_sleep_ms(5);
    }
    http_server_stop(http);
    if (left > 0) {
        log_msgf(CONFIG_LOG_WARN, NULL, "%llu request(s) still in flight at the deadline",
                 (unsigned long long)left);
    }
    log_msgf(CONFIG_LOG_INFO, NULL, "stopped");
    status = CLI_EXIT_OK;

out_stop_commit:
    if (commit != NULL) {
        if (auth != NULL) {
            auth_on_reload(auth, NULL, NULL);
        }
        commit_stop(commit, clock_mono_ns());
    }
    auth_close(auth);
out_close_store:
    rcache_free(cache); /* after its users: the HTTP server and the commit workers */
    store_close(store);
    audit_signer_free(signer); /* after the commit worker, its user, has stopped */
out_release:
    buf_release(&err);
    /* Last: every request's span has been handed over by now. */
    otlp_shutdown(clock_mono_ns() + (int64_t)SERVE_TRACES_FLUSH_MS * 1000 * 1000);
    return status;
}
