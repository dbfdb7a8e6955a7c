/*
 * config.c — ledgerd's settings as one static table: environment variable, default, meaning,
 * parser and bounds (as nginx's directive tables).
 *
 * Defaults are applied in one place, config_load, by running each setting's default text through
 * the same parser as a value from the environment, so a default can never escape the bounds a
 * user is held to. Every bad setting is reported, one line each, before ledgerd gives up.
 */
#include "core/config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "core/assert.h"
#include "core/limits.h"

#define CONFIG_PREFIX "LEDGERD_"
#define CONFIG_FILE_SUFFIX "_FILE"
/* Longest variable name, with room for the _FILE suffix. */
#define CONFIG_NAME_LEN_MAX 64
/* A bad value is quoted in the error cut to this many bytes. */
#define CONFIG_ERR_VALUE_LEN_MAX 64
/* Text of a default; the database default holds the working directory. */
#define CONFIG_DEFAULT_TEXT_LEN_MAX (sizeof(((struct config *)0)->db_url) + 64)
#define CONFIG_PORT_MAX 65535u
#define CONFIG_DB_DEFAULT_PATH "/var/ledgerd.db"

struct config_setting;
typedef int (*config_parse_fn)(const struct config_setting *s, const char *value,
                               struct config *cfg, struct buf *err);
typedef void (*config_print_fn)(const struct config_setting *s, const struct config *cfg,
                                FILE *out);

struct config_setting {
    const char *name;
    const char *default_text; /* NULL: an integer (default_u64) or computed (database) */
    uint64_t default_u64;
    const char *help;
    config_parse_fn parse;
    config_print_fn print;
    uint64_t min, max;   /* integer settings: inclusive bounds */
    size_t offset, size; /* integer settings: where the value lives in struct config */
    bool file_allowed;   /* NAME_FILE may name a file holding the value */
};

static const char *const config_env_names[] = {"dev", "staging", "prod"};
static const char *const config_log_level_names[] = {"debug", "info", "warn", "error"};

/* ===== Error lines ===== */

static void err_begin(struct buf *err, const char *name)
{
    (void)buf_append_str(err, name);
    (void)buf_append_str(err, ": ");
}

/* "NAME: invalid value "v": expected <what>\n"; the value escaped and cut. */
static int err_bad_value(struct buf *err, const char *name, const char *value, const char *what)
{
    size_t len = strlen(value);
    bool cut = len > CONFIG_ERR_VALUE_LEN_MAX;
    err_begin(err, name);
    (void)buf_append_str(err, "invalid value ");
    (void)buf_append_json_str(err, value, cut ? CONFIG_ERR_VALUE_LEN_MAX : len);
    (void)buf_append_str(err, cut ? "... (cut): expected " : ": expected ");
    (void)buf_append_str(err, what);
    (void)buf_append_char(err, '\n');
    return -EINVAL;
}

/* ===== Parsers ===== */

/* Strict decimal: digits only, no sign or space, no overflow, within [min, max]. */
static bool parse_u64(const char *s, size_t len, uint64_t min, uint64_t max, uint64_t *out)
{
    if (len == 0) {
        return false;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    if (v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

static void set_integer(const struct config_setting *s, struct config *cfg, uint64_t v)
{
    char *field = (char *)cfg + s->offset;
    if (s->size == sizeof(uint32_t)) {
        ASSERT(v <= UINT32_MAX);
        uint32_t u = (uint32_t)v;
        memcpy(field, &u, sizeof(u));
    } else {
        ASSERT(s->size == sizeof(size_t) && v <= SIZE_MAX);
        size_t z = (size_t)v;
        memcpy(field, &z, sizeof(z));
    }
}

static uint64_t get_integer(const struct config_setting *s, const struct config *cfg)
{
    const char *field = (const char *)cfg + s->offset;
    if (s->size == sizeof(uint32_t)) {
        uint32_t u;
        memcpy(&u, field, sizeof(u));
        return u;
    }
    ASSERT(s->size == sizeof(size_t));
    size_t z;
    memcpy(&z, field, sizeof(z));
    return z;
}

static int parse_integer(const struct config_setting *s, const char *value, struct config *cfg,
                         struct buf *err)
{
    uint64_t v = 0;
    if (!parse_u64(value, strlen(value), s->min, s->max, &v)) {
        char what[80];
        (void)snprintf(what, sizeof(what), "an integer %" PRIu64 "..%" PRIu64, s->min, s->max);
        return err_bad_value(err, s->name, value, what);
    }
    set_integer(s, cfg, v);
    return 0;
}

/* Index of value in names, or -1. */
static int name_index(const char *const *names, size_t count, const char *value)
{
    for (size_t i = 0; i < count; i++) {
        if (strcmp(names[i], value) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static int parse_env(const struct config_setting *s, const char *value, struct config *cfg,
                     struct buf *err)
{
    switch (name_index(config_env_names, 3, value)) {
    case 0:
        cfg->env = CONFIG_ENV_DEV;
        return 0;
    case 1:
        cfg->env = CONFIG_ENV_STAGING;
        return 0;
    case 2:
        cfg->env = CONFIG_ENV_PROD;
        return 0;
    default:
        return err_bad_value(err, s->name, value, "one of dev, staging, prod");
    }
}

static int parse_log_level(const struct config_setting *s, const char *value, struct config *cfg,
                           struct buf *err)
{
    switch (name_index(config_log_level_names, 4, value)) {
    case 0:
        cfg->log_level = CONFIG_LOG_DEBUG;
        return 0;
    case 1:
        cfg->log_level = CONFIG_LOG_INFO;
        return 0;
    case 2:
        cfg->log_level = CONFIG_LOG_WARN;
        return 0;
    case 3:
        cfg->log_level = CONFIG_LOG_ERROR;
        return 0;
    default:
        return err_bad_value(err, s->name, value, "one of debug, info, warn, error");
    }
}

static int parse_idempotency_required(const struct config_setting *s, const char *value,
                                      struct config *cfg, struct buf *err)
{
    if (strcmp(value, "true") == 0) {
        cfg->idempotency_required = true;
    } else if (strcmp(value, "false") == 0) {
        cfg->idempotency_required = false;
    } else {
        return err_bad_value(err, s->name, value, "true or false");
    }
    return 0;
}

static bool is_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
}

/* Inside brackets: an IPv6 literal, optionally with a %zone. */
static bool is_ipv6_char(char c)
{
    return is_host_char(c) || c == ':' || c == '%';
}

/* host:port or [ipv6]:port; host non-empty, port 0..65535. */
static int parse_listen(const struct config_setting *s, const char *value, struct config *cfg,
                        struct buf *err)
{
    static const char what[] = "host:port or [ipv6]:port with a port 0..65535";
    size_t len = strlen(value);
    const char *host, *port;
    size_t host_len;
    bool bracketed = len > 0 && value[0] == '[';

    if (bracketed) {
        const char *close = strchr(value, ']');
        if (close == NULL || close[1] != ':') {
            return err_bad_value(err, s->name, value, what);
        }
        host = value + 1;
        host_len = (size_t)(close - host);
        port = close + 2;
    } else {
        const char *colon = strrchr(value, ':');
        if (colon == NULL) {
            return err_bad_value(err, s->name, value, what);
        }
        host = value;
        host_len = (size_t)(colon - value);
        port = colon + 1;
    }
    if (host_len == 0 || host_len >= sizeof(cfg->listen_host)) {
        return err_bad_value(err, s->name, value, what);
    }
    for (size_t i = 0; i < host_len; i++) {
        if (!(bracketed ? is_ipv6_char(host[i]) : is_host_char(host[i]))) {
            return err_bad_value(err, s->name, value, what);
        }
    }
    uint64_t port_v = 0;
    if (!parse_u64(port, strlen(port), 0, CONFIG_PORT_MAX, &port_v)) {
        return err_bad_value(err, s->name, value, what);
    }
    memcpy(cfg->listen_host, host, host_len);
    cfg->listen_host[host_len] = '\0';
    cfg->listen_port = (uint16_t)port_v;
    return 0;
}

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int parse_db(const struct config_setting *s, const char *value, struct config *cfg,
                    struct buf *err)
{
    static const char what[] = "a sqlite://, postgres:// or postgresql:// URL";
    size_t len = strlen(value);
    if (!(has_prefix(value, "sqlite://") || has_prefix(value, "postgres://") ||
          has_prefix(value, "postgresql://"))) {
        return err_bad_value(err, s->name, value, what);
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c < 0x20 || c == 0x7f) {
            return err_bad_value(err, s->name, value, "a URL without control characters");
        }
    }
    if (len >= sizeof(cfg->db_url)) {
        char msg[96];
        (void)snprintf(msg, sizeof(msg), "a URL of at most %zu bytes", sizeof(cfg->db_url) - 1);
        return err_bad_value(err, s->name, value, msg);
    }
    memcpy(cfg->db_url, value, len + 1);
    return 0;
}

/* ===== Printers ===== */

static void print_integer(const struct config_setting *s, const struct config *cfg, FILE *out)
{
    fprintf(out, "%s=%" PRIu64 "\n", s->name, get_integer(s, cfg));
}

static void print_env(const struct config_setting *s, const struct config *cfg, FILE *out)
{
    fprintf(out, "%s=%s\n", s->name, config_env_name(cfg->env));
}

static void print_log_level(const struct config_setting *s, const struct config *cfg, FILE *out)
{
    fprintf(out, "%s=%s\n", s->name, config_log_level_name(cfg->log_level));
}

static void print_idempotency_required(const struct config_setting *s, const struct config *cfg,
                                       FILE *out)
{
    fprintf(out, "%s=%s\n", s->name, cfg->idempotency_required ? "true" : "false");
}

static void print_listen(const struct config_setting *s, const struct config *cfg, FILE *out)
{
    bool v6 = strchr(cfg->listen_host, ':') != NULL;
    fprintf(out, "%s=%s%s%s:%u\n", s->name, v6 ? "[" : "", cfg->listen_host, v6 ? "]" : "",
            (unsigned int)cfg->listen_port);
}

/* Writes url with the password of its userinfo ("user:pw@") and any password= query parameter
 * replaced by ***. */
static void print_masked_url(const char *url, FILE *out)
{
    const char *scheme_end = strstr(url, "://");
    if (scheme_end == NULL) {
        fputs(url, out);
        return;
    }
    const char *auth = scheme_end + 3;
    size_t auth_len = strcspn(auth, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < auth_len; i++) {
        if (auth[i] == '@') {
            at = auth + i; /* the last '@' ends the userinfo */
        }
    }
    const char *colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon != NULL) {
        fwrite(url, 1, (size_t)(colon + 1 - url), out);
        fputs("***", out);
        url = at;
    }
    /* Query parameters: password=... up to the next & or #. */
    const char *p = url;
    const char *query = strchr(p, '?');
    if (query == NULL) {
        fputs(p, out);
        return;
    }
    fwrite(p, 1, (size_t)(query + 1 - p), out);
    p = query + 1;
    while (*p != '\0') {
        size_t param_len = strcspn(p, "&#");
        if (param_len >= 9 && strncmp(p, "password=", 9) == 0) {
            fputs("password=***", out);
        } else {
            fwrite(p, 1, param_len, out);
        }
        p += param_len;
        if (*p == '#') {
            fputs(p, out);
            return;
        }
        if (*p == '&') {
            fputc('&', out);
            p++;
        }
    }
}

static void print_db(const struct config_setting *s, const struct config *cfg, FILE *out)
{
    fprintf(out, "%s=", s->name);
    print_masked_url(cfg->db_url, out);
    fputc('\n', out);
}

/* ===== The table ===== */

static const struct config_setting config_settings[] = {
    {.name = "LEDGERD_LISTEN",
     .default_text = "127.0.0.1:8080",
     .help = "address to listen on: host:port or [ipv6]:port (port 0 picks a free one)",
     .parse = parse_listen,
     .print = print_listen},
    {.name = "LEDGERD_DB",
     .default_text = NULL, /* sqlite://<working directory>/var/ledgerd.db */
     .help = "database URL: sqlite://<path>, postgres:// or postgresql:// (or LEDGERD_DB_FILE)",
     .parse = parse_db,
     .print = print_db,
     .file_allowed = true},
    {.name = "LEDGERD_ENV",
     .default_text = "dev",
     .help = "deployment environment: dev, staging or prod",
     .parse = parse_env,
     .print = print_env},
    {.name = "LEDGERD_LOG_LEVEL",
     .default_text = "info",
     .help = "least severe log level written: debug, info, warn or error",
     .parse = parse_log_level,
     .print = print_log_level},
    {.name = "LEDGERD_THREADS",
     .default_u64 = 0,
     .help = "HTTP I/O threads (0 = one per core)",
     .parse = parse_integer,
     .print = print_integer,
     .min = 0,
     .max = LIMIT_IO_THREADS_MAX,
     .offset = offsetof(struct config, io_threads),
     .size = sizeof(((struct config *)0)->io_threads)},
    {.name = "LEDGERD_BODY_BYTES_MAX",
     .default_u64 = (uint64_t)LIMIT_BODY_BYTES_DEFAULT,
     .help = "largest request body in bytes (larger: 413)",
     .parse = parse_integer,
     .print = print_integer,
     .min = 1024,
     .max = (uint64_t)LIMIT_BODY_BYTES_CEILING,
     .offset = offsetof(struct config, body_bytes_max),
     .size = sizeof(((struct config *)0)->body_bytes_max)},
    {.name = "LEDGERD_BATCH_BODY_BYTES_MAX",
     .default_u64 = (uint64_t)LIMIT_BATCH_BODY_BYTES_DEFAULT,
     .help = "largest body of POST /v1/transfers/batch in bytes",
     .parse = parse_integer,
     .print = print_integer,
     .min = 1024,
     .max = (uint64_t)LIMIT_BODY_BYTES_CEILING,
     .offset = offsetof(struct config, batch_body_bytes_max),
     .size = sizeof(((struct config *)0)->batch_body_bytes_max)},
    {.name = "LEDGERD_QUEUE_DEPTH_MAX",
     .default_u64 = LIMIT_QUEUE_DEPTH_DEFAULT,
     .help = "commands waiting for the commit worker (full: 503 queue_full)",
     .parse = parse_integer,
     .print = print_integer,
     .min = 1,
     .max = LIMIT_QUEUE_DEPTH_CEILING,
     .offset = offsetof(struct config, queue_depth_max),
     .size = sizeof(((struct config *)0)->queue_depth_max)},
    {.name = "LEDGERD_COMMIT_ITEMS_MAX",
     .default_u64 = LIMIT_COMMIT_ITEMS_MAX,
     .help = "ledger items (accounts, transfers) applied in one database transaction",
     .parse = parse_integer,
     .print = print_integer,
     .min = 1,
     .max = LIMIT_COMMIT_ITEMS_MAX,
     .offset = offsetof(struct config, commit_items_max),
     .size = sizeof(((struct config *)0)->commit_items_max)},
    {.name = "LEDGERD_IDEMPOTENCY_TTL_SECONDS",
     .default_u64 = LIMIT_IDEMPOTENCY_TTL_SECONDS_DEFAULT,
     .help = "how long an Idempotency-Key is remembered, in seconds",
     .parse = parse_integer,
     .print = print_integer,
     .min = 1,
     .max = (uint64_t)LIMIT_IDEMPOTENCY_TTL_SECONDS_MAX,
     .offset = offsetof(struct config, idempotency_ttl_seconds),
     .size = sizeof(((struct config *)0)->idempotency_ttl_seconds)},
    {.name = "LEDGERD_IDEMPOTENCY_REQUIRED",
     .default_text = "false",
     .help = "true: state-changing POSTs without Idempotency-Key get 400",
     .parse = parse_idempotency_required,
     .print = print_idempotency_required},
    {.name = "LEDGERD_CONNECTIONS_MAX",
     .default_u64 = LIMIT_CONNECTIONS_DEFAULT,
     .help = "open client connections in total",
     .parse = parse_integer,
     .print = print_integer,
     .min = 1,
     .max = 1000000,
     .offset = offsetof(struct config, connections_max),
     .size = sizeof(((struct config *)0)->connections_max)},
    {.name = "LEDGERD_PER_IP_CONNECTIONS_MAX",
     .default_u64 = LIMIT_PER_IP_CONNECTIONS_DEFAULT,
     .help = "open connections from one client address",
     .parse = parse_integer,
     .print = print_integer,
     .min = 1,
     .max = 1000000,
     .offset = offsetof(struct config, per_ip_connections_max),
     .size = sizeof(((struct config *)0)->per_ip_connections_max)},
    {.name = "LEDGERD_CONNECTION_TIMEOUT_SECONDS",
     .default_u64 = LIMIT_CONNECTION_TIMEOUT_SECONDS_DEFAULT,
     .help = "idle connections are closed after this many seconds",
     .parse = parse_integer,
     .print = print_integer,
     .min = 1,
     .max = 3600,
     .offset = offsetof(struct config, connection_timeout_seconds),
     .size = sizeof(((struct config *)0)->connection_timeout_seconds)},
    {.name = "LEDGERD_SHUTDOWN_TIMEOUT_SECONDS",
     .default_u64 = LIMIT_SHUTDOWN_TIMEOUT_SECONDS_DEFAULT,
     .help = "on SIGTERM, in-flight work drains for at most this many seconds",
     .parse = parse_integer,
     .print = print_integer,
     .min = 0,
     .max = 3600,
     .offset = offsetof(struct config, shutdown_timeout_seconds),
     .size = sizeof(((struct config *)0)->shutdown_timeout_seconds)},
    {.name = "LEDGERD_EXPIRY_INTERVAL_MS",
     .default_u64 = LIMIT_EXPIRY_INTERVAL_MS_DEFAULT,
     .help = "how often an idle commit worker expires due pending transfers, in ms",
     .parse = parse_integer,
     .print = print_integer,
     .min = 10,
     .max = 60000,
     .offset = offsetof(struct config, expiry_interval_ms),
     .size = sizeof(((struct config *)0)->expiry_interval_ms)},
};

#define CONFIG_SETTINGS_COUNT (sizeof(config_settings) / sizeof(config_settings[0]))

/* ===== Loading ===== */

/* The default of s as text, as a user would write it. */
static bool default_text(const struct config_setting *s, char *out, size_t out_len)
{
    int n;
    if (s->default_text != NULL) {
        n = snprintf(out, out_len, "%s", s->default_text);
    } else if (s->parse == parse_integer) {
        n = snprintf(out, out_len, "%" PRIu64, s->default_u64);
    } else {
        ASSERT(s->parse == parse_db);
        char cwd[PATH_MAX];
        if (getcwd(cwd, sizeof(cwd)) == NULL) {
            return false;
        }
        n = snprintf(out, out_len, "sqlite://%s%s", strcmp(cwd, "/") == 0 ? "" : cwd,
                     CONFIG_DB_DEFAULT_PATH);
    }
    return n >= 0 && (size_t)n < out_len;
}

/* Reads the value of s from the file named by NAME_FILE into out; strips trailing newlines. */
static int read_value_file(const char *file_var, const char *path, char *out, size_t out_len,
                           struct buf *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        char msg[128];
        const char *reason = strerror_r(errno, msg, sizeof(msg));
        err_begin(err, file_var);
        (void)buf_append_str(err, "cannot open ");
        (void)buf_append_json_str(err, path, strnlen(path, CONFIG_ERR_VALUE_LEN_MAX));
        (void)buf_appendf(err, ": %s\n", reason);
        return -EINVAL;
    }
    size_t len = 0;
    int rc = 0;
    while (len < out_len) {
        ssize_t n = read(fd, out + len, out_len - len);
        if (n > 0) {
            len += (size_t)n;
        } else if (n == 0) {
            break;
        } else if (errno != EINTR) {
            err_begin(err, file_var);
            (void)buf_append_str(err, "cannot read the file\n");
            rc = -EINVAL;
            goto out_close;
        }
    }
    while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == '\r')) {
        len--;
    }
    if (len >= out_len) {
        err_begin(err, file_var);
        (void)buf_appendf(err, "the file holds more than %zu bytes\n", out_len - 1);
        rc = -EINVAL;
        goto out_close;
    }
    if (memchr(out, '\0', len) != NULL) {
        err_begin(err, file_var);
        (void)buf_append_str(err, "the file holds a NUL byte\n");
        rc = -EINVAL;
        goto out_close;
    }
    out[len] = '\0';
out_close:
    (void)close(fd);
    return rc;
}

/* Applies the environment's value for s, if any. */
static int apply_env(const struct config_setting *s, config_getenv_fn getenv_fn, struct config *cfg,
                     struct buf *err)
{
    const char *value = getenv_fn(s->name);
    if (!s->file_allowed) {
        if (value == NULL) {
            return 0;
        }
        if (value[0] == '\0') {
            return err_bad_value(err, s->name, value, "a value (the variable is set but empty)");
        }
        return s->parse(s, value, cfg, err);
    }

    char file_var[CONFIG_NAME_LEN_MAX];
    int n = snprintf(file_var, sizeof(file_var), "%s" CONFIG_FILE_SUFFIX, s->name);
    ASSERT(n > 0 && (size_t)n < sizeof(file_var));
    const char *path = getenv_fn(file_var);
    if (value != NULL && path != NULL) {
        err_begin(err, s->name);
        (void)buf_appendf(err, "set either %s or %s, not both\n", s->name, file_var);
        return -EINVAL;
    }
    if (path != NULL) {
        if (path[0] == '\0') {
            return err_bad_value(err, file_var, path, "a file name");
        }
        /* +2: one byte to notice a file that is too long, and the NUL. */
        char text[CONFIG_DEFAULT_TEXT_LEN_MAX + 2];
        int rc = read_value_file(file_var, path, text, sizeof(text) - 1, err);
        if (rc != 0) {
            return rc;
        }
        if (text[0] == '\0') {
            err_begin(err, file_var);
            (void)buf_append_str(err, "the file is empty\n");
            return -EINVAL;
        }
        return s->parse(s, text, cfg, err);
    }
    if (value == NULL) {
        return 0;
    }
    if (value[0] == '\0') {
        return err_bad_value(err, s->name, value, "a value (the variable is set but empty)");
    }
    return s->parse(s, value, cfg, err);
}

/* True when the environment sets s (or the file variable of s). */
static bool setting_is_set(const struct config_setting *s, config_getenv_fn getenv_fn)
{
    if (getenv_fn(s->name) != NULL) {
        return true;
    }
    if (!s->file_allowed) {
        return false;
    }
    char file_var[CONFIG_NAME_LEN_MAX];
    int n = snprintf(file_var, sizeof(file_var), "%s" CONFIG_FILE_SUFFIX, s->name);
    ASSERT(n > 0 && (size_t)n < sizeof(file_var));
    return getenv_fn(file_var) != NULL;
}

int config_load(struct config *cfg, config_getenv_fn getenv_fn, struct buf *err)
{
    ASSERT(cfg != NULL);
    ASSERT(getenv_fn != NULL);
    ASSERT(err != NULL);
    memset(cfg, 0, sizeof(*cfg));
    int bad = 0;

    for (size_t i = 0; i < CONFIG_SETTINGS_COUNT; i++) {
        const struct config_setting *s = &config_settings[i];
        ASSERT(strlen(s->name) + strlen(CONFIG_FILE_SUFFIX) < CONFIG_NAME_LEN_MAX);

        if (setting_is_set(s, getenv_fn)) {
            if (apply_env(s, getenv_fn, cfg, err) != 0) {
                bad++;
            }
            continue;
        }
        /* The one place defaults are applied: through the setting's own parser, so a default
         * is held to the same bounds as a user's value. */
        char text[CONFIG_DEFAULT_TEXT_LEN_MAX];
        if (!default_text(s, text, sizeof(text))) {
            err_begin(err, s->name);
            (void)buf_append_str(err, "no default: the working directory is unknown or too "
                                      "long; set the variable\n");
            bad++;
        } else if (s->parse(s, text, cfg, err) != 0) {
            ASSERT(s->parse == parse_db); /* only a computed default can be refused */
            bad++;
        }
    }
    return bad == 0 ? 0 : -EINVAL;
}

/* ===== Unknown variables ===== */

static bool setting_known(const char *name, size_t len)
{
    const size_t suffix_len = strlen(CONFIG_FILE_SUFFIX);
    for (size_t i = 0; i < CONFIG_SETTINGS_COUNT; i++) {
        const struct config_setting *s = &config_settings[i];
        size_t n = strlen(s->name);
        if (len == n && memcmp(name, s->name, n) == 0) {
            return true;
        }
        if (s->file_allowed && len == n + suffix_len && memcmp(name, s->name, n) == 0 &&
            memcmp(name + n, CONFIG_FILE_SUFFIX, suffix_len) == 0) {
            return true;
        }
    }
    return false;
}

/* Levenshtein distance of a and b, both at most CONFIG_NAME_LEN_MAX long. */
static size_t edit_distance(const char *a, size_t a_len, const char *b, size_t b_len)
{
    size_t row[CONFIG_NAME_LEN_MAX + 1];
    ASSERT(a_len <= CONFIG_NAME_LEN_MAX && b_len <= CONFIG_NAME_LEN_MAX);
    for (size_t j = 0; j <= b_len; j++) {
        row[j] = j;
    }
    for (size_t i = 1; i <= a_len; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= b_len; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] == b[j - 1] ? 0 : 1);
            if (up + 1 < best) {
                best = up + 1;
            }
            if (row[j - 1] + 1 < best) {
                best = row[j - 1] + 1;
            }
            row[j] = best;
            diag = up;
        }
    }
    return row[b_len];
}

/* The known name closest to name when it is a likely typo, else NULL. */
static const char *closest_setting(const char *name, size_t len)
{
    const char *best = NULL;
    size_t best_d = 3; /* further than 2 edits is not a typo */
    if (len > CONFIG_NAME_LEN_MAX) {
        return NULL;
    }
    for (size_t i = 0; i < CONFIG_SETTINGS_COUNT; i++) {
        const char *known = config_settings[i].name;
        size_t d = edit_distance(name, len, known, strlen(known));
        if (d < best_d) {
            best_d = d;
            best = known;
        }
    }
    return best;
}

size_t config_unknown_vars(char *const *envp, struct buf *err)
{
    ASSERT(err != NULL);
    size_t found = 0;
    const size_t prefix_len = strlen(CONFIG_PREFIX);
    for (size_t i = 0; envp != NULL && envp[i] != NULL; i++) {
        const char *entry = envp[i];
        if (strncmp(entry, CONFIG_PREFIX, prefix_len) != 0) {
            continue;
        }
        size_t len = strcspn(entry, "=");
        if (setting_known(entry, len)) {
            continue;
        }
        found++;
        (void)buf_append(err, entry,
                         len < CONFIG_ERR_VALUE_LEN_MAX ? len : CONFIG_ERR_VALUE_LEN_MAX);
        const char *hint = closest_setting(entry, len);
        if (hint != NULL) {
            (void)buf_appendf(err, ": not a ledgerd setting (did you mean %s?)\n", hint);
        } else {
            (void)buf_append_str(err, ": not a ledgerd setting\n");
        }
    }
    return found;
}

/* ===== Printing ===== */

void config_print(const struct config *cfg, FILE *out)
{
    ASSERT(cfg != NULL && out != NULL);
    for (size_t i = 0; i < CONFIG_SETTINGS_COUNT; i++) {
        config_settings[i].print(&config_settings[i], cfg, out);
    }
}

void config_print_help(FILE *out)
{
    ASSERT(out != NULL);
    int name_w = (int)strlen("NAME");
    for (size_t i = 0; i < CONFIG_SETTINGS_COUNT; i++) {
        int n = (int)strlen(config_settings[i].name) + (config_settings[i].file_allowed ? 5 : 0);
        name_w = n > name_w ? n : name_w;
    }
    fprintf(out, "%-*s  %-16s  %s\n", name_w, "NAME", "DEFAULT", "MEANING");
    for (size_t i = 0; i < CONFIG_SETTINGS_COUNT; i++) {
        const struct config_setting *s = &config_settings[i];
        char text[CONFIG_DEFAULT_TEXT_LEN_MAX];
        if (!default_text(s, text, sizeof(text))) {
            (void)snprintf(text, sizeof(text), "sqlite://$PWD%s", CONFIG_DB_DEFAULT_PATH);
        }
        fprintf(out, "%-*s  %-16s  %s\n", name_w, s->name, text, s->help);
        if (s->file_allowed) {
            char file_var[CONFIG_NAME_LEN_MAX];
            (void)snprintf(file_var, sizeof(file_var), "%s" CONFIG_FILE_SUFFIX, s->name);
            fprintf(out, "%-*s  %-16s  file holding %s (trailing newline ignored); not with %s\n",
                    name_w, file_var, "-", s->name, s->name);
        }
    }
}

const char *config_env_name(enum config_env env)
{
    switch (env) {
    case CONFIG_ENV_DEV:
    case CONFIG_ENV_STAGING:
    case CONFIG_ENV_PROD:
        return config_env_names[env];
    }
    return "unknown";
}

const char *config_log_level_name(enum config_log_level level)
{
    switch (level) {
    case CONFIG_LOG_DEBUG:
    case CONFIG_LOG_INFO:
    case CONFIG_LOG_WARN:
    case CONFIG_LOG_ERROR:
        return config_log_level_names[level];
    }
    return "unknown";
}
