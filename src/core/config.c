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
#include <sys/stat.h>
#include <unistd.h>

#include "auth/scope.h"
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
    bool empty_allowed;  /* NAME="" is a value (an empty list), not a mistake */
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
    /* An error quotes the value: never with its password (it may come from LEDGERD_DB_FILE). */
    char shown[CONFIG_ERR_VALUE_LEN_MAX * 2];
    (void)config_redact_url(value, shown, sizeof(shown));
    if (!(has_prefix(value, "sqlite://") || has_prefix(value, "postgres://") ||
          has_prefix(value, "postgresql://"))) {
        return err_bad_value(err, s->name, shown, what);
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c < 0x20 || c == 0x7f) {
            return err_bad_value(err, s->name, shown, "a URL without control characters");
        }
    }
    if (len >= sizeof(cfg->db_url)) {
        char msg[96];
        (void)snprintf(msg, sizeof(msg), "a URL of at most %zu bytes", sizeof(cfg->db_url) - 1);
        return err_bad_value(err, s->name, shown, msg);
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

static void print_db(const struct config_setting *s, const struct config *cfg, FILE *out)
{
    char shown[sizeof(cfg->db_url)];
    (void)config_redact_url(cfg->db_url, shown, sizeof(shown));
    fprintf(out, "%s=%s\n", s->name, shown);
}

/* ===== Redaction ===== */

/* A bounded writer over caller memory: what does not fit is cut, the NUL always fits. */
struct redact_out {
    char *data;
    size_t len, cap;
};

static void redact_put(struct redact_out *o, const char *s, size_t n)
{
    size_t room = o->cap - 1 - o->len;
    if (n > room) {
        n = room;
    }
    memcpy(o->data + o->len, s, n);
    o->len += n;
    o->data[o->len] = '\0';
}

/* True when a query parameter of this name carries a secret: any name containing one of these
 * words, compared without regard to case (password, db_pass, access_token, X-Api-Key, sig...). */
static bool redact_param_is_secret(const char *name, size_t len)
{
    static const char *const words[] = {"pass", "pwd",  "token", "secret",
                                        "key",  "auth", "sig",   "credential"};
    for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
        size_t wl = strlen(words[w]);
        for (size_t i = 0; i + wl <= len; i++) {
            if (strncasecmp(name + i, words[w], wl) == 0) {
                return true;
            }
        }
    }
    return false;
}

size_t config_redact_url(const char *url, char *out, size_t out_len)
{
    ASSERT(url != NULL && out != NULL && out_len > 0);
    struct redact_out o = {out, 0, out_len};
    out[0] = '\0';
    const char *scheme_end = strstr(url, "://");
    const char *p = url;
    if (scheme_end != NULL) {
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
            redact_put(&o, url, (size_t)(colon + 1 - url));
            redact_put(&o, "***", 3);
            p = at;
        }
    }
    const char *query = strchr(p, '?');
    if (query == NULL) {
        redact_put(&o, p, strlen(p));
        return o.len;
    }
    redact_put(&o, p, (size_t)(query + 1 - p));
    p = query + 1;
    while (*p != '\0') {
        size_t param_len = strcspn(p, "&#");
        const char *eq = memchr(p, '=', param_len);
        if (eq != NULL && redact_param_is_secret(p, (size_t)(eq - p))) {
            redact_put(&o, p, (size_t)(eq + 1 - p));
            redact_put(&o, "***", 3);
        } else {
            redact_put(&o, p, param_len);
        }
        p += param_len;
        if (*p == '#') {
            redact_put(&o, p, strlen(p));
            break;
        }
        if (*p == '&') {
            redact_put(&o, "&", 1);
            p++;
        }
    }
    return o.len;
}

static int read_value_file(const char *file_var, const char *path, char *out, size_t out_len,
                           struct buf *err);

/* ===== Logging settings ===== */

static const char *const config_sink_names[] = {"stdout", "file", "syslog", "loki"};

/* syslog facility names by code (RFC 5424 section 6.2.1; the names rsyslog accepts). */
static const char *const config_facility_names[] = {
    "kern",   "user",   "mail",     "daemon", "auth",   "syslog", "lpr",    "news",
    "uucp",   "cron",   "authpriv", "ftp",    "ntp",    "audit",  "alert",  "clock",
    "local0", "local1", "local2",   "local3", "local4", "local5", "local6", "local7"};

/* Secrets are checked, never quoted: an error names the variable and the rule only. */
static int err_secret(struct buf *err, const char *name, const char *what)
{
    err_begin(err, name);
    (void)buf_append_str(err, what);
    (void)buf_append_char(err, '\n');
    return -EINVAL;
}

static bool has_control_char(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            return true;
        }
    }
    return false;
}

/* Copies value into the char array of s (offset, size) when it fits. */
static bool store_string(const struct config_setting *s, struct config *cfg, const char *value)
{
    size_t len = strlen(value);
    if (len >= s->size) {
        return false;
    }
    memcpy((char *)cfg + s->offset, value, len + 1);
    return true;
}

static void print_string(const struct config_setting *s, const struct config *cfg, FILE *out)
{
    fprintf(out, "%s=%s\n", s->name, (const char *)cfg + s->offset);
}

int config_log_level_parse(const char *text, size_t len, enum config_log_level *out)
{
    static const char prefix[] = "LEDGERD_LOG_LEVEL=";
    ASSERT(text != NULL || len == 0);
    ASSERT(out != NULL);
    while (len > 0 && (text[0] == ' ' || text[0] == '\t' || text[0] == '\n' || text[0] == '\r')) {
        text++;
        len--;
    }
    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t' || text[len - 1] == '\n' ||
                       text[len - 1] == '\r')) {
        len--;
    }
    if (len > sizeof(prefix) - 1 && memcmp(text, prefix, sizeof(prefix) - 1) == 0) {
        text += sizeof(prefix) - 1;
        len -= sizeof(prefix) - 1;
    }
    for (size_t i = 0; i < 4; i++) {
        size_t n = strlen(config_log_level_names[i]);
        if (len == n && memcmp(text, config_log_level_names[i], n) == 0) {
            *out = (enum config_log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

/* LEDGERD_LOG_LEVEL_FILE: the file must exist and hold a level now, so a typo shows at start
 * rather than at the first SIGHUP. Its level overrides LEDGERD_LOG_LEVEL. */
static int parse_log_level_file(const struct config_setting *s, const char *value,
                                struct config *cfg, struct buf *err)
{
    if (value[0] == '\0') {
        cfg->log_level_file[0] = '\0';
        return 0;
    }
    if (has_control_char(value, strlen(value)) || !store_string(s, cfg, value)) {
        return err_bad_value(err, s->name, value, "a file name without control characters");
    }
    char text[256];
    int rc = read_value_file(s->name, value, text, sizeof(text), err);
    if (rc != 0) {
        return rc;
    }
    enum config_log_level level;
    if (config_log_level_parse(text, strlen(text), &level) != 0) {
        err_begin(err, s->name);
        (void)buf_append_str(err, "the file must hold one of debug, info, warn, error (or "
                                  "LEDGERD_LOG_LEVEL=<level>)\n");
        return -EINVAL;
    }
    cfg->log_level = level;
    return 0;
}

/* A file path: non-empty, no control characters, not a directory name, room for the rotation
 * suffix in its last component. */
static int parse_log_file(const struct config_setting *s, const char *value, struct config *cfg,
                          struct buf *err)
{
    static const char what[] = "a file path without control characters, not ending in /, whose "
                               "file name is 1..200 bytes";
    size_t len = strlen(value);
    const char *slash = strrchr(value, '/');
    const char *base = slash != NULL ? slash + 1 : value;
    size_t base_len = strlen(base);
    if (len == 0 || has_control_char(value, len) || base_len == 0 || base_len > 200 ||
        strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || !store_string(s, cfg, value)) {
        return err_bad_value(err, s->name, value, what);
    }
    return 0;
}

/* unix:///absolute/path, udp://host:port, tcp://host:port ([ipv6]:port too). */
static int parse_syslog_address(const struct config_setting *s, const char *value,
                                struct config *cfg, struct buf *err)
{
    static const char what[] = "unix:///path, udp://host:port or tcp://host:port (port 1..65535)";
    size_t len = strlen(value);
    if (len >= sizeof(cfg->syslog_address) || has_control_char(value, len)) {
        return err_bad_value(err, s->name, value, what);
    }
    if (has_prefix(value, "unix://")) {
        const char *path = value + strlen("unix://");
        size_t path_len = strlen(path);
        if (path[0] != '/' || path_len >= sizeof(cfg->syslog_path)) {
            return err_bad_value(err, s->name, value,
                                 "unix:// with an absolute socket path of at most 107 bytes");
        }
        memcpy(cfg->syslog_path, path, path_len + 1);
        cfg->syslog_transport = CONFIG_SYSLOG_UNIX;
    } else if (has_prefix(value, "udp://") || has_prefix(value, "tcp://")) {
        /* The host:port part has LEDGERD_LISTEN's syntax; reuse its parser on a scratch copy. */
        struct config scratch;
        scratch.listen_port = 0;
        struct buf ignored;
        buf_init(&ignored, 0);
        const struct config_setting listen = {.name = s->name};
        bool ok = parse_listen(&listen, value + strlen("udp://"), &scratch, &ignored) == 0;
        buf_release(&ignored);
        if (!ok || scratch.listen_port == 0 ||
            strlen(scratch.listen_host) >= sizeof(cfg->syslog_host)) {
            return err_bad_value(err, s->name, value, what);
        }
        memcpy(cfg->syslog_host, scratch.listen_host, strlen(scratch.listen_host) + 1);
        cfg->syslog_port = scratch.listen_port;
        cfg->syslog_transport = value[0] == 'u' ? CONFIG_SYSLOG_UDP : CONFIG_SYSLOG_TCP;
    } else {
        return err_bad_value(err, s->name, value, what);
    }
    memcpy(cfg->syslog_address, value, len + 1);
    return 0;
}

static int parse_syslog_facility(const struct config_setting *s, const char *value,
                                 struct config *cfg, struct buf *err)
{
    int i = name_index(config_facility_names, 24, value);
    if (i < 0) {
        return err_bad_value(err, s->name, value,
                             "a facility name: kern, user, mail, daemon, auth, syslog, lpr, news, "
                             "uucp, cron, authpriv, ftp, ntp, audit, alert, clock, local0..local7");
    }
    cfg->syslog_facility = (uint32_t)i;
    return 0;
}

static void print_syslog_facility(const struct config_setting *s, const struct config *cfg,
                                  FILE *out)
{
    ASSERT(cfg->syslog_facility < 24);
    fprintf(out, "%s=%s\n", s->name, config_facility_names[cfg->syslog_facility]);
}

/* http(s)://host[:port][/path]: no credentials (they would be shown and logged: they come from
 * files), no query or fragment; trailing slashes dropped. */
static int parse_loki_url(const struct config_setting *s, const char *value, struct config *cfg,
                          struct buf *err)
{
    static const char what[] = "an http:// or https:// URL without query or fragment";
    if (value[0] == '\0') {
        cfg->loki_url[0] = '\0';
        return 0;
    }
    size_t len = strlen(value);
    const char *authority = has_prefix(value, "http://")    ? value + strlen("http://")
                            : has_prefix(value, "https://") ? value + strlen("https://")
                                                            : NULL;
    if (authority == NULL || has_control_char(value, len) || strchr(value, ' ') != NULL ||
        strpbrk(value, "?#") != NULL) {
        return err_bad_value(err, s->name, value, what);
    }
    size_t authority_len = strcspn(authority, "/");
    if (memchr(authority, '@', authority_len) != NULL) {
        return err_secret(err, s->name,
                          "credentials in the URL are refused (a URL is shown and logged): set "
                          "LEDGERD_LOKI_USERNAME and LEDGERD_LOKI_PASSWORD_FILE instead");
    }
    if (authority_len == 0 || authority[0] == ':') {
        return err_bad_value(err, s->name, value, what);
    }
    while (len > 0 && value[len - 1] == '/') {
        len--;
    }
    if (len >= sizeof(cfg->loki_url)) {
        return err_bad_value(err, s->name, value, "a URL of at most 2047 bytes");
    }
    memcpy(cfg->loki_url, value, len);
    cfg->loki_url[len] = '\0';
    return 0;
}

static void print_loki_url(const struct config_setting *s, const struct config *cfg, FILE *out)
{
    char shown[sizeof(cfg->loki_url)];
    (void)config_redact_url(cfg->loki_url, shown, sizeof(shown));
    fprintf(out, "%s=%s\n", s->name, shown);
}

/* Loki's tenant ids: at most 150 bytes of [A-Za-z0-9!_.*'()-], neither "." nor "..". */
static int parse_loki_tenant(const struct config_setting *s, const char *value, struct config *cfg,
                             struct buf *err)
{
    static const char what[] = "1..150 characters of A-Z a-z 0-9 ! - _ . * ' ( ), not . or ..";
    size_t len = strlen(value);
    if (strcmp(value, ".") == 0 || strcmp(value, "..") == 0) {
        return err_bad_value(err, s->name, value, what);
    }
    for (size_t i = 0; i < len; i++) {
        char c = value[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  strchr("!-_.*'()", c) != NULL;
        if (!ok) {
            return err_bad_value(err, s->name, value, what);
        }
    }
    if (!store_string(s, cfg, value)) {
        return err_bad_value(err, s->name, value, what);
    }
    return 0;
}

/* The service.tier resource attribute of spans: a short lower-case label. */
static int parse_service_tier(const struct config_setting *s, const char *value, struct config *cfg,
                              struct buf *err)
{
    static const char what[] = "1..32 characters of a-z 0-9 - _";
    size_t len = strlen(value);
    if (len == 0 || len > 32) {
        return err_bad_value(err, s->name, value, what);
    }
    for (size_t i = 0; i < len; i++) {
        char c = value[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
            return err_bad_value(err, s->name, value, what);
        }
    }
    if (!store_string(s, cfg, value)) {
        return err_bad_value(err, s->name, value, what);
    }
    return 0;
}

/* A basic-auth user name: printable ASCII without ':' (RFC 7617). */
static int parse_loki_username(const struct config_setting *s, const char *value,
                               struct config *cfg, struct buf *err)
{
    static const char what[] = "1..256 printable ASCII characters without ':'";
    for (size_t i = 0; value[i] != '\0'; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c < 0x20 || c > 0x7e || c == ':') {
            return err_bad_value(err, s->name, value, what);
        }
    }
    if (!store_string(s, cfg, value)) {
        return err_bad_value(err, s->name, value, what);
    }
    return 0;
}

/* Reads a secret from the file named by value into secret (secret_len bytes with the NUL):
 * non-empty, printable ASCII only (it goes into an HTTP header). The secret is never quoted. */
static int read_secret_file(const struct config_setting *s, const char *value, char *secret,
                            size_t secret_len, struct buf *err)
{
    char text[CONFIG_DEFAULT_TEXT_LEN_MAX + 2];
    int rc = read_value_file(s->name, value, text, sizeof(text) - 1, err);
    if (rc != 0) {
        return rc;
    }
    size_t len = strlen(text);
    if (len == 0) {
        return err_secret(err, s->name, "the file is empty");
    }
    if (len >= secret_len) {
        err_begin(err, s->name);
        (void)buf_appendf(err, "the file holds more than %zu bytes\n", secret_len - 1);
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x20 || c > 0x7e) {
            return err_secret(err, s->name,
                              "the file must hold printable ASCII only (one line, no control "
                              "characters)");
        }
    }
    memcpy(secret, text, len + 1);
    explicit_bzero(text, sizeof(text));
    return 0;
}

static int parse_loki_password_file(const struct config_setting *s, const char *value,
                                    struct config *cfg, struct buf *err)
{
    if (value[0] == '\0') {
        cfg->loki_password_file[0] = '\0';
        cfg->loki_password[0] = '\0';
        return 0;
    }
    if (has_control_char(value, strlen(value)) || !store_string(s, cfg, value)) {
        return err_bad_value(err, s->name, value, "a file name without control characters");
    }
    if (cfg->loki_username[0] == '\0') {
        return err_secret(err, s->name, "needs LEDGERD_LOKI_USERNAME (HTTP basic auth)");
    }
    return read_secret_file(s, value, cfg->loki_password, sizeof(cfg->loki_password), err);
}

static int parse_loki_bearer_token_file(const struct config_setting *s, const char *value,
                                        struct config *cfg, struct buf *err)
{
    if (value[0] == '\0') {
        cfg->loki_bearer_token_file[0] = '\0';
        cfg->loki_bearer_token[0] = '\0';
        return 0;
    }
    if (has_control_char(value, strlen(value)) || !store_string(s, cfg, value)) {
        return err_bad_value(err, s->name, value, "a file name without control characters");
    }
    if (cfg->loki_password_file[0] != '\0') {
        return err_secret(err, s->name,
                          "set LEDGERD_LOKI_PASSWORD_FILE or LEDGERD_LOKI_BEARER_TOKEN_FILE, not "
                          "both");
    }
    return read_secret_file(s, value, cfg->loki_bearer_token, sizeof(cfg->loki_bearer_token), err);
}

/* A comma list of sink names, each once. Parsed after every other logging setting (it is last
 * in the table), so it can check that a chosen sink has what it needs. */
static int parse_log_sinks(const struct config_setting *s, const char *value, struct config *cfg,
                           struct buf *err)
{
    static const char what[] = "a comma list of stdout, file, syslog, loki (each at most once)";
    uint32_t sinks = 0;
    const char *p = value;
    for (;;) {
        size_t n = strcspn(p, ",");
        int found = -1;
        for (size_t i = 0; i < 4; i++) {
            if (strlen(config_sink_names[i]) == n && memcmp(p, config_sink_names[i], n) == 0) {
                found = (int)i;
            }
        }
        if (found < 0 || (sinks & (1u << found)) != 0) {
            return err_bad_value(err, s->name, value, what);
        }
        sinks |= 1u << found;
        if (p[n] == '\0') {
            break;
        }
        p += n + 1;
    }
    if ((sinks & CONFIG_LOG_SINK_LOKI) != 0 && cfg->loki_url[0] == '\0') {
        err_begin(err, s->name);
        (void)buf_append_str(err, "the loki sink needs LEDGERD_LOKI_URL\n");
        return -EINVAL;
    }
    cfg->log_sinks = sinks;
    return 0;
}

static void print_log_sinks(const struct config_setting *s, const struct config *cfg, FILE *out)
{
    fprintf(out, "%s=", s->name);
    const char *sep = "";
    for (size_t i = 0; i < 4; i++) {
        if ((cfg->log_sinks & (1u << i)) != 0) {
            fprintf(out, "%s%s", sep, config_sink_names[i]);
            sep = ",";
        }
    }
    fputc('\n', out);
}

/* ===== Authentication and audit settings ===== */

static const char *const config_open_route_names[] = {"probes", "metrics", "dashboard"};
#define CONFIG_OPEN_ROUTES_COUNT 3

/* LEDGERD_AUTH: after LEDGERD_ENV in the table, so that "off" can be held to dev. */
static int parse_auth(const struct config_setting *s, const char *value, struct config *cfg,
                      struct buf *err)
{
    if (strcmp(value, "required") == 0) {
        cfg->auth_required = true;
        return 0;
    }
    if (strcmp(value, "off") != 0) {
        return err_bad_value(err, s->name, value, "required or off");
    }
    if (cfg->env != CONFIG_ENV_DEV) {
        err_begin(err, s->name);
        (void)buf_appendf(err, "off is allowed only with LEDGERD_ENV=dev (LEDGERD_ENV is %s)\n",
                          config_env_name(cfg->env));
        return -EINVAL;
    }
    cfg->auth_required = false;
    return 0;
}

static void print_auth(const struct config_setting *s, const struct config *cfg, FILE *out)
{
    fprintf(out, "%s=%s\n", s->name, cfg->auth_required ? "required" : "off");
}

/* A comma list of route groups, each at most once; empty: every route needs a credential. */
static int parse_auth_open_routes(const struct config_setting *s, const char *value,
                                  struct config *cfg, struct buf *err)
{
    static const char what[] = "a comma list of probes, metrics, dashboard (each at most once), "
                               "or empty";
    uint32_t open_routes = 0;
    const char *p = value;
    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        int found = -1;
        for (size_t i = 0; i < CONFIG_OPEN_ROUTES_COUNT; i++) {
            if (strlen(config_open_route_names[i]) == n &&
                memcmp(p, config_open_route_names[i], n) == 0) {
                found = (int)i;
            }
        }
        if (found < 0 || (open_routes & (1u << found)) != 0) {
            return err_bad_value(err, s->name, value, what);
        }
        open_routes |= 1u << found;
        if (p[n] == '\0') {
            break;
        }
        p += n + 1;
        if (*p == '\0') {
            return err_bad_value(err, s->name, value, what); /* a trailing comma */
        }
    }
    cfg->auth_open_routes = open_routes;
    return 0;
}

static void print_auth_open_routes(const struct config_setting *s, const struct config *cfg,
                                   FILE *out)
{
    fprintf(out, "%s=", s->name);
    const char *sep = "";
    for (size_t i = 0; i < CONFIG_OPEN_ROUTES_COUNT; i++) {
        if ((cfg->auth_open_routes & (1u << i)) != 0) {
            fprintf(out, "%s%s", sep, config_open_route_names[i]);
            sep = ",";
        }
    }
    fputc('\n', out);
}

/* The file must exist, be readable by ledgerd and be a regular file now, so that a wrong path
 * shows at start rather than when the file is first needed. Its content is not read here. */
static int check_readable_file(const char *name, const char *path, struct buf *err)
{
    /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        char msg[128];
        const char *reason = strerror_r(errno, msg, sizeof(msg));
        err_begin(err, name);
        (void)buf_append_str(err, "cannot open ");
        (void)buf_append_json_str(err, path, strnlen(path, CONFIG_ERR_VALUE_LEN_MAX));
        (void)buf_appendf(err, ": %s\n", reason);
        return -EINVAL;
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        err_begin(err, name);
        (void)buf_append_json_str(err, path, strnlen(path, CONFIG_ERR_VALUE_LEN_MAX));
        (void)buf_append_str(err, " is not a regular file\n");
        rc = -EINVAL;
    }
    (void)close(fd);
    return rc;
}

/* A path setting whose file is read by its user: "" for none, else a readable regular file. */
static int parse_path_file(const struct config_setting *s, const char *value, struct config *cfg,
                           struct buf *err)
{
    char *field = (char *)cfg + s->offset;
    if (value[0] == '\0') {
        field[0] = '\0';
        return 0;
    }
    if (has_control_char(value, strlen(value)) || !store_string(s, cfg, value)) {
        return err_bad_value(err, s->name, value, "a file name without control characters");
    }
    return check_readable_file(s->name, value, err);
}

/* A directory path (not checked here: only `ledgerd migrate` reads it, and says when it is
 * missing). */
static int parse_path_dir(const struct config_setting *s, const char *value, struct config *cfg,
                          struct buf *err)
{
    if (has_control_char(value, strlen(value)) || !store_string(s, cfg, value)) {
        return err_bad_value(err, s->name, value, "a directory name without control characters");
    }
    return 0;
}

/* LEDGERD_REDIS_URL: redis://[:password@]host:port[/db] (a password here is shown masked;
 * LEDGERD_REDIS_PASSWORD_FILE keeps it out of the environment). */
static int parse_redis_url(const struct config_setting *s, const char *value, struct config *cfg,
                           struct buf *err)
{
    if (value[0] == '\0') {
        cfg->redis_url[0] = '\0';
        return 0;
    }
    size_t len = strlen(value);
    if (!has_prefix(value, "redis://") || len == strlen("redis://") ||
        has_control_char(value, len) || strchr(value, ' ') != NULL ||
        len >= sizeof(cfg->redis_url)) {
        return err_secret(err, s->name, "a redis://host:port URL of at most 1023 bytes");
    }
    memcpy(cfg->redis_url, value, len + 1);
    return 0;
}

static void print_redis_url(const struct config_setting *s, const struct config *cfg, FILE *out)
{
    char shown[sizeof(cfg->redis_url)];
    (void)config_redact_url(cfg->redis_url, shown, sizeof(shown));
    fprintf(out, "%s=%s\n", s->name, shown);
}

/* LEDGERD_REDIS_SENTINELS: host:port[,host:port...], each port 1..65535. After
 * LEDGERD_REDIS_URL and LEDGERD_REDIS_MASTER_NAME in the table: sentinels need a master name,
 * and exclude a URL. */
static int parse_redis_sentinels(const struct config_setting *s, const char *value,
                                 struct config *cfg, struct buf *err)
{
    static const char what[] = "host:port[,host:port...] (Redis Sentinel addresses)";
    size_t len = strlen(value);
    if (len >= sizeof(cfg->redis_sentinels) || has_control_char(value, len) ||
        strchr(value, ' ') != NULL) {
        return err_bad_value(err, s->name, value, what);
    }
    const char *p = value;
    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        const char *colon = memrchr(p, ':', n);
        if (colon == NULL || colon == p || (size_t)(colon - p) + 1 == n) {
            return err_bad_value(err, s->name, value, what);
        }
        unsigned long port = 0;
        for (const char *d = colon + 1; d < p + n; d++) {
            if (*d < '0' || *d > '9' || port > 65535) {
                return err_bad_value(err, s->name, value, what);
            }
            port = port * 10 + (unsigned long)(*d - '0');
        }
        if (port == 0 || port > 65535) {
            return err_bad_value(err, s->name, value, what);
        }
        p += n;
        if (*p == ',') {
            p++;
            if (*p == '\0') {
                return err_bad_value(err, s->name, value, what);
            }
        }
    }
    if (len > 0 && cfg->redis_master_name[0] == '\0') {
        err_begin(err, s->name);
        (void)buf_append_str(err,
                             "needs LEDGERD_REDIS_MASTER_NAME (the monitored master's name)\n");
        return -EINVAL;
    }
    if (len > 0 && cfg->redis_url[0] != '\0') {
        err_begin(err, s->name);
        (void)buf_append_str(err, "set LEDGERD_REDIS_URL or LEDGERD_REDIS_SENTINELS, not both\n");
        return -EINVAL;
    }
    memcpy(cfg->redis_sentinels, value, len + 1);
    return 0;
}

/* LEDGERD_REDIS_MASTER_NAME: the name the sentinels monitor. */
static int parse_redis_master_name(const struct config_setting *s, const char *value,
                                   struct config *cfg, struct buf *err)
{
    size_t len = strlen(value);
    if (len >= sizeof(cfg->redis_master_name) || has_control_char(value, len) ||
        strchr(value, ' ') != NULL) {
        return err_bad_value(err, s->name, value, "a name of at most 127 bytes, no blanks");
    }
    memcpy(cfg->redis_master_name, value, len + 1);
    return 0;
}

/* LEDGERD_JWKS_FILE: after LEDGERD_JWT_ISSUER and LEDGERD_JWT_AUDIENCE in the table, which a
 * verifier of tokens cannot do without (a token for another audience must not pass). */
static int parse_jwks_file(const struct config_setting *s, const char *value, struct config *cfg,
                           struct buf *err)
{
    int rc = parse_path_file(s, value, cfg, err);
    if (rc != 0 || value[0] == '\0') {
        return rc;
    }
    if (cfg->jwt_issuer[0] == '\0' || cfg->jwt_audience[0] == '\0') {
        err_begin(err, s->name);
        (void)buf_appendf(err, "needs %s%s%s (the iss and aud every token must carry)\n",
                          cfg->jwt_issuer[0] == '\0' ? "LEDGERD_JWT_ISSUER" : "",
                          cfg->jwt_issuer[0] == '\0' && cfg->jwt_audience[0] == '\0' ? " and " : "",
                          cfg->jwt_audience[0] == '\0' ? "LEDGERD_JWT_AUDIENCE" : "");
        return -EINVAL;
    }
    return 0;
}

/* An issuer or audience: compared byte for byte with the token's claim (RFC 7519 4.1.1,
 * 4.1.3); printable, no control characters. */
static int parse_jwt_text(const struct config_setting *s, const char *value, struct config *cfg,
                          struct buf *err)
{
    if (has_control_char(value, strlen(value)) || !store_string(s, cfg, value)) {
        char what[96];
        (void)snprintf(what, sizeof(what), "at most %zu bytes without control characters",
                       s->size - 1);
        return err_bad_value(err, s->name, value, what);
    }
    return 0;
}

/* LEDGERD_ROLES in the syntax of scope_roles_parse; "" (the default) is the built-in mapping. */
static int parse_roles(const struct config_setting *s, const char *value, struct config *cfg,
                       struct buf *err)
{
    size_t len = strlen(value);
    if (len == 0) {
        cfg->roles[0] = '\0';
        return 0;
    }
    struct scope_roles roles;
    char reason[160];
    if (len > LIMIT_ROLES_BYTES_MAX ||
        scope_roles_parse(value, len, &roles, reason, sizeof(reason)) != 0) {
        if (len > LIMIT_ROLES_BYTES_MAX) {
            (void)snprintf(reason, sizeof(reason), "longer than %d bytes", LIMIT_ROLES_BYTES_MAX);
        }
        err_begin(err, s->name);
        (void)buf_append_str(err, reason);
        (void)buf_append_char(err, '\n');
        return -EINVAL;
    }
    bool stored = store_string(s, cfg, value);
    ASSERT(stored); /* len <= LIMIT_ROLES_BYTES_MAX */
    return 0;
}

static void print_roles(const struct config_setting *s, const struct config *cfg, FILE *out)
{
    fprintf(out, "%s=%s\n", s->name, cfg->roles[0] != '\0' ? cfg->roles : SCOPE_ROLES_DEFAULT);
}

int config_read_secret_file(const char *path, uint8_t *out, size_t cap, size_t *len_out,
                            struct buf *err)
{
    ASSERT(path != NULL && out != NULL && len_out != NULL && err != NULL);
    ASSERT(cap > 0);
    *len_out = 0;
    size_t path_len = strnlen(path, CONFIG_ERR_VALUE_LEN_MAX);
    /* Up to cap bytes go into out, then up to 3 more here: "\r\n" after a full cap is fine. */
    uint8_t tail[3] = {0};
    size_t len = 0, extra = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        char msg[128];
        (void)buf_append_str(err, "cannot open ");
        (void)buf_append_json_str(err, path, path_len);
        (void)buf_appendf(err, ": %s", strerror_r(e, msg, sizeof(msg)));
        return -e;
    }
    int rc = 0;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        (void)buf_append_json_str(err, path, path_len);
        (void)buf_append_str(err, " is not a regular file");
        rc = -EINVAL;
        goto out_close;
    }
    while (len + extra < cap + sizeof(tail)) {
        uint8_t *dst = len < cap ? out + len : tail + extra;
        size_t room = len < cap ? cap - len : sizeof(tail) - extra;
        ssize_t n = read(fd, dst, room);
        if (n == 0) {
            break;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            int e = errno;
            (void)buf_append_str(err, "cannot read ");
            (void)buf_append_json_str(err, path, path_len);
            rc = e == 0 ? -EIO : -e;
            goto out_wipe;
        }
        if (len < cap) {
            len += (size_t)n;
        } else {
            extra += (size_t)n;
        }
    }
    /* The secret is the bytes read less one trailing "\n" or "\r\n". */
    size_t total = len + extra;
    bool nl = total > 0 && (extra > 0 ? tail[extra - 1] : out[len - 1]) == '\n';
    if (nl) {
        total--;
        uint8_t before = 0;
        if (total > 0) {
            before = total > len ? tail[total - len - 1] : out[total - 1];
        }
        if (total > 0 && before == '\r') {
            total--;
        }
    }
    if (total > cap) {
        (void)buf_append_json_str(err, path, path_len);
        (void)buf_appendf(err, " holds more than %zu bytes", cap);
        rc = -EINVAL;
        goto out_wipe;
    }
    if (total == 0) {
        (void)buf_append_json_str(err, path, path_len);
        (void)buf_append_str(err, " is empty");
        rc = -EINVAL;
        goto out_wipe;
    }
    explicit_bzero(tail, sizeof(tail));
    *len_out = total;
    goto out_close;

out_wipe:
    explicit_bzero(tail, sizeof(tail));
    explicit_bzero(out, cap);
out_close:
    (void)close(fd);
    return rc;
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
    {.name = "LEDGERD_DB_POOL_SIZE",
     .default_u64 = 8,
     .help = "PostgreSQL: reader connections, and the threads that run database reads",
     .parse = parse_integer,
     .print = print_integer,
     .min = 1,
     .max = LIMIT_DB_POOL_SIZE_MAX,
     .offset = offsetof(struct config, db_pool_size),
     .size = sizeof(((struct config *)0)->db_pool_size)},
    {.name = "LEDGERD_DB_WRITERS",
     .default_u64 = 2,
     .help = "PostgreSQL: commit workers, each with its own connection (SQLite: always 1)",
     .parse = parse_integer,
     .print = print_integer,
     .min = 1,
     .max = LIMIT_DB_POOL_SIZE_MAX,
     .offset = offsetof(struct config, db_writers),
     .size = sizeof(((struct config *)0)->db_writers)},
    {.name = "LEDGERD_DB_ACQUIRE_TIMEOUT_MS",
     .default_u64 = 2000,
     .help = "PostgreSQL: longest wait for a pooled connection (then 503), in ms",
     .parse = parse_integer,
     .print = print_integer,
     .min = 1,
     .max = 600000,
     .offset = offsetof(struct config, db_acquire_timeout_ms),
     .size = sizeof(((struct config *)0)->db_acquire_timeout_ms)},
    {.name = "LEDGERD_DB_CONN_MAX_LIFETIME_SECONDS",
     .default_u64 = 1800,
     .help = "PostgreSQL: a connection older than this is replaced, in seconds",
     .parse = parse_integer,
     .print = print_integer,
     .min = 1,
     .max = 604800,
     .offset = offsetof(struct config, db_conn_max_lifetime_seconds),
     .size = sizeof(((struct config *)0)->db_conn_max_lifetime_seconds)},
    {.name = "LEDGERD_DB_STATEMENT_TIMEOUT_MS",
     .default_u64 = 5000,
     .help = "PostgreSQL: statement_timeout and lock_timeout of every connection, in ms",
     .parse = parse_integer,
     .print = print_integer,
     .min = 1,
     .max = 3600000,
     .offset = offsetof(struct config, db_statement_timeout_ms),
     .size = sizeof(((struct config *)0)->db_statement_timeout_ms)},
    {.name = "LEDGERD_DB_PASSWORD_FILE",
     .default_text = "",
     .help = "PostgreSQL: file holding the password (else the URL's or libpq's own sources)",
     .parse = parse_path_file,
     .print = print_string,
     .offset = offsetof(struct config, db_password_file),
     .size = sizeof(((struct config *)0)->db_password_file)},
    {.name = "LEDGERD_MIGRATIONS_DIR",
     .default_text = "",
     .help = "ledgerd migrate: the directory holding <backend>/NNNN_name.sql (unset: ./migrations "
             "when it has them, else the copy built into the binary)",
     .parse = parse_path_dir,
     .print = print_string,
     .offset = offsetof(struct config, migrations_dir),
     .size = sizeof(((struct config *)0)->migrations_dir)},
    {.name = "LEDGERD_DB_WORK_QUEUE_MAX",
     .default_u64 = 4096,
     .help = "PostgreSQL, Redis: requests waiting for a database thread (full: 503)",
     .parse = parse_integer,
     .print = print_integer,
     .min = 1,
     .max = 1000000,
     .offset = offsetof(struct config, db_work_queue_max),
     .size = sizeof(((struct config *)0)->db_work_queue_max)},
    {.name = "LEDGERD_REDIS_URL",
     .default_text = "",
     .help = "idempotency cache: redis://host:port[/db] (empty: no cache)",
     .parse = parse_redis_url,
     .print = print_redis_url},
    {.name = "LEDGERD_REDIS_MASTER_NAME",
     .default_text = "",
     .help = "idempotency cache: the master name the sentinels monitor",
     .parse = parse_redis_master_name,
     .print = print_string,
     .offset = offsetof(struct config, redis_master_name),
     .size = sizeof(((struct config *)0)->redis_master_name)},
    {.name = "LEDGERD_REDIS_SENTINELS",
     .default_text = "",
     .help = "idempotency cache through Redis Sentinel: host:port,... (with a master name)",
     .parse = parse_redis_sentinels,
     .print = print_string,
     .offset = offsetof(struct config, redis_sentinels),
     .size = sizeof(((struct config *)0)->redis_sentinels)},
    {.name = "LEDGERD_REDIS_PASSWORD_FILE",
     .default_text = "",
     .help = "idempotency cache: file holding the Redis password",
     .parse = parse_path_file,
     .print = print_string,
     .offset = offsetof(struct config, redis_password_file),
     .size = sizeof(((struct config *)0)->redis_password_file)},
    {.name = "LEDGERD_REDIS_TIMEOUT_MS",
     .default_u64 = 50,
     .help = "idempotency cache: connect and command timeout, in ms",
     .parse = parse_integer,
     .print = print_integer,
     .min = 1,
     .max = 10000,
     .offset = offsetof(struct config, redis_timeout_ms),
     .size = sizeof(((struct config *)0)->redis_timeout_ms)},
    {.name = "LEDGERD_REDIS_BREAKER_FAILURES",
     .default_u64 = 5,
     .help = "idempotency cache: consecutive failures that open the circuit breaker",
     .parse = parse_integer,
     .print = print_integer,
     .min = 1,
     .max = 1000,
     .offset = offsetof(struct config, redis_breaker_failures),
     .size = sizeof(((struct config *)0)->redis_breaker_failures)},
    {.name = "LEDGERD_REDIS_BREAKER_OPEN_MS",
     .default_u64 = 1000,
     .help = "idempotency cache: how long the open breaker bypasses Redis before a probe, in ms",
     .parse = parse_integer,
     .print = print_integer,
     .min = 1,
     .max = 600000,
     .offset = offsetof(struct config, redis_breaker_open_ms),
     .size = sizeof(((struct config *)0)->redis_breaker_open_ms)},
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
    /* Logging (docs/operations/logging.md). LEDGERD_LOG_SINKS stays the last of these: its
     * parser checks the sink settings above it. */
    {.name = "LEDGERD_LOG_LEVEL_FILE",
     .default_text = "",
     .help = "file holding the log level; overrides LEDGERD_LOG_LEVEL, re-read on SIGHUP",
     .parse = parse_log_level_file,
     .print = print_string,
     .offset = offsetof(struct config, log_level_file),
     .size = sizeof(((struct config *)0)->log_level_file)},
    {.name = "LEDGERD_LOG_FILE",
     .default_text = "var/ledgerd.log",
     .help = "file sink: the log file (relative to the working directory)",
     .parse = parse_log_file,
     .print = print_string,
     .offset = offsetof(struct config, log_file),
     .size = sizeof(((struct config *)0)->log_file)},
    {.name = "LEDGERD_LOG_FILE_MAX_BYTES",
     .default_u64 = 100ull * 1024 * 1024,
     .help = "file sink: rotate before the file would pass this size in bytes",
     .parse = parse_integer,
     .print = print_integer,
     .min = 1024,
     .max = 1ull << 40,
     .offset = offsetof(struct config, log_file_max_bytes),
     .size = sizeof(((struct config *)0)->log_file_max_bytes)},
    {.name = "LEDGERD_LOG_FILE_MAX_AGE_SECONDS",
     .default_u64 = 86400,
     .help = "file sink: rotate a file this many seconds old (0 = never by age)",
     .parse = parse_integer,
     .print = print_integer,
     .min = 0,
     .max = 31ull * 86400,
     .offset = offsetof(struct config, log_file_max_age_seconds),
     .size = sizeof(((struct config *)0)->log_file_max_age_seconds)},
    {.name = "LEDGERD_LOG_FILE_KEEP",
     .default_u64 = 10,
     .help = "file sink: rotated files kept at most (older ones are deleted)",
     .parse = parse_integer,
     .print = print_integer,
     .min = 0,
     .max = 1000,
     .offset = offsetof(struct config, log_file_keep),
     .size = sizeof(((struct config *)0)->log_file_keep)},
    {.name = "LEDGERD_LOG_FILE_RETENTION_SECONDS",
     .default_u64 = 7ull * 86400,
     .help = "file sink: rotated files older than this are deleted (0 = no age limit)",
     .parse = parse_integer,
     .print = print_integer,
     .min = 0,
     .max = 3650ull * 86400,
     .offset = offsetof(struct config, log_file_retention_seconds),
     .size = sizeof(((struct config *)0)->log_file_retention_seconds)},
    {.name = "LEDGERD_LOG_QUEUE_BYTES",
     .default_u64 = 4ull * 1024 * 1024,
     .help = "bytes of log lines waiting for each file/syslog/loki sink (full: dropped)",
     .parse = parse_integer,
     .print = print_integer,
     .min = 64ull * 1024,
     .max = 1024ull * 1024 * 1024,
     .offset = offsetof(struct config, log_queue_bytes),
     .size = sizeof(((struct config *)0)->log_queue_bytes)},
    {.name = "LEDGERD_SYSLOG_ADDRESS",
     .default_text = "unix:///dev/log",
     .help = "syslog sink: unix:///path, udp://host:port or tcp://host:port (RFC 6587 framing)",
     .parse = parse_syslog_address,
     .print = print_string,
     .offset = offsetof(struct config, syslog_address),
     .size = sizeof(((struct config *)0)->syslog_address)},
    {.name = "LEDGERD_SYSLOG_FACILITY",
     .default_text = "local0",
     .help = "syslog sink: facility name (kern..clock, local0..local7)",
     .parse = parse_syslog_facility,
     .print = print_syslog_facility},
    {.name = "LEDGERD_LOKI_URL",
     .default_text = "",
     .help = "loki sink: base URL; lines are POSTed to <url>/loki/api/v1/push",
     .parse = parse_loki_url,
     .print = print_loki_url},
    {.name = "LEDGERD_LOKI_TENANT",
     .default_text = "",
     .help = "loki sink: tenant sent as X-Scope-OrgID (empty: no header)",
     .parse = parse_loki_tenant,
     .print = print_string,
     .offset = offsetof(struct config, loki_tenant),
     .size = sizeof(((struct config *)0)->loki_tenant)},
    {.name = "LEDGERD_LOKI_USERNAME",
     .default_text = "",
     .help = "loki sink: basic-auth user (password from LEDGERD_LOKI_PASSWORD_FILE)",
     .parse = parse_loki_username,
     .print = print_string,
     .offset = offsetof(struct config, loki_username),
     .size = sizeof(((struct config *)0)->loki_username)},
    {.name = "LEDGERD_LOKI_PASSWORD_FILE",
     .default_text = "",
     .help = "loki sink: file holding the basic-auth password (secrets only from files)",
     .parse = parse_loki_password_file,
     .print = print_string,
     .offset = offsetof(struct config, loki_password_file),
     .size = sizeof(((struct config *)0)->loki_password_file)},
    {.name = "LEDGERD_LOKI_BEARER_TOKEN_FILE",
     .default_text = "",
     .help = "loki sink: file holding a bearer token (instead of basic auth)",
     .parse = parse_loki_bearer_token_file,
     .print = print_string,
     .offset = offsetof(struct config, loki_bearer_token_file),
     .size = sizeof(((struct config *)0)->loki_bearer_token_file)},
    {.name = "LEDGERD_LOKI_BATCH_LINES",
     .default_u64 = 1000,
     .help = "loki sink: lines per push at most",
     .parse = parse_integer,
     .print = print_integer,
     .min = 1,
     .max = 100000,
     .offset = offsetof(struct config, loki_batch_lines),
     .size = sizeof(((struct config *)0)->loki_batch_lines)},
    {.name = "LEDGERD_LOKI_BATCH_WAIT_MS",
     .default_u64 = 1000,
     .help = "loki sink: a line waits at most this long for its batch, in ms",
     .parse = parse_integer,
     .print = print_integer,
     .min = 10,
     .max = 60000,
     .offset = offsetof(struct config, loki_batch_wait_ms),
     .size = sizeof(((struct config *)0)->loki_batch_wait_ms)},
    {.name = "LEDGERD_LOG_SINKS",
     .default_text = "stdout",
     .help = "where log lines go: comma list of stdout, file, syslog, loki",
     .parse = parse_log_sinks,
     .print = print_log_sinks},
    {.name = "LEDGERD_SERVICE_TIER",
     .default_text = "critical",
     .help = "service.tier resource attribute of exported spans",
     .parse = parse_service_tier,
     .print = print_string,
     .offset = offsetof(struct config, service_tier),
     .size = sizeof(((struct config *)0)->service_tier)},
    /* Authentication and the audit trail (docs/security/). Cross checks look up: LEDGERD_AUTH
     * reads LEDGERD_ENV, LEDGERD_JWKS_FILE the issuer and audience above it. */
    {.name = "LEDGERD_AUTH",
     .default_text = "required",
     .help = "required: every route but the open ones needs a credential; off (dev only)",
     .parse = parse_auth,
     .print = print_auth},
    {.name = "LEDGERD_AUTH_OPEN_ROUTES",
     .default_text = "probes,metrics,dashboard",
     .help = "routes answered without a credential: comma list of probes, metrics, dashboard",
     .parse = parse_auth_open_routes,
     .print = print_auth_open_routes,
     .empty_allowed = true},
    {.name = "LEDGERD_JWT_ISSUER",
     .default_text = "",
     .help = "JWT: the iss every token must carry (needed with LEDGERD_JWKS_FILE)",
     .parse = parse_jwt_text,
     .print = print_string,
     .offset = offsetof(struct config, jwt_issuer),
     .size = sizeof(((struct config *)0)->jwt_issuer)},
    {.name = "LEDGERD_JWT_AUDIENCE",
     .default_text = "",
     .help = "JWT: the aud every token must name (needed with LEDGERD_JWKS_FILE)",
     .parse = parse_jwt_text,
     .print = print_string,
     .offset = offsetof(struct config, jwt_audience),
     .size = sizeof(((struct config *)0)->jwt_audience)},
    {.name = "LEDGERD_JWT_CLOCK_SKEW_SECONDS",
     .default_u64 = 60,
     .help = "JWT: clock skew allowed on exp and nbf, in seconds",
     .parse = parse_integer,
     .print = print_integer,
     .min = 0,
     .max = LIMIT_JWT_CLOCK_SKEW_SECONDS_MAX,
     .offset = offsetof(struct config, jwt_clock_skew_seconds),
     .size = sizeof(((struct config *)0)->jwt_clock_skew_seconds)},
    {.name = "LEDGERD_JWKS_FILE",
     .default_text = "",
     .help = "JWT: file holding the JWK Set of the issuer's keys (empty: no JWTs); SIGHUP re-reads",
     .parse = parse_jwks_file,
     .print = print_string,
     .offset = offsetof(struct config, jwks_file),
     .size = sizeof(((struct config *)0)->jwks_file)},
    {.name = "LEDGERD_APIKEY_HASH_KEY_FILE",
     .default_text = "",
     .help = "file holding the API key hashing key, 32..1024 bytes (empty: no API keys)",
     .parse = parse_path_file,
     .print = print_string,
     .offset = offsetof(struct config, apikey_hash_key_file),
     .size = sizeof(((struct config *)0)->apikey_hash_key_file)},
    {.name = "LEDGERD_ROLES",
     .default_text = "",
     .help = "role mapping role=scope,scope;... (unset: reader, writer, auditor, admin)",
     .parse = parse_roles,
     .print = print_roles,
     .offset = offsetof(struct config, roles),
     .size = sizeof(((struct config *)0)->roles)},
    {.name = "LEDGERD_AUTH_FAILURES_MAX",
     .default_u64 = LIMIT_AUTH_FAILURES_DEFAULT,
     .help = "failed authentications from one address before it gets 429 for the window",
     .parse = parse_integer,
     .print = print_integer,
     .min = 1,
     .max = LIMIT_AUTH_FAILURES_MAX,
     .offset = offsetof(struct config, auth_failures_max),
     .size = sizeof(((struct config *)0)->auth_failures_max)},
    {.name = "LEDGERD_AUTH_FAILURE_WINDOW_SECONDS",
     .default_u64 = LIMIT_AUTH_FAILURE_WINDOW_SECONDS_DEFAULT,
     .help = "the window of LEDGERD_AUTH_FAILURES_MAX, in seconds",
     .parse = parse_integer,
     .print = print_integer,
     .min = 1,
     .max = LIMIT_AUTH_FAILURE_WINDOW_SECONDS_MAX,
     .offset = offsetof(struct config, auth_failure_window_seconds),
     .size = sizeof(((struct config *)0)->auth_failure_window_seconds)},
    {.name = "LEDGERD_AUDIT_SIGNING_KEY_FILE",
     .default_text = "",
     .help = "file holding the Ed25519 key (PKCS #8 PEM) that signs audit checkpoints",
     .parse = parse_path_file,
     .print = print_string,
     .offset = offsetof(struct config, audit_signing_key_file),
     .size = sizeof(((struct config *)0)->audit_signing_key_file)},
    {.name = "LEDGERD_AUDIT_CHECKPOINT_INTERVAL_SECONDS",
     .default_u64 = LIMIT_AUDIT_CHECKPOINT_INTERVAL_MS_DEFAULT / 1000,
     .help = "a checkpoint at least this often while audit records arrive, in seconds",
     .parse = parse_integer,
     .print = print_integer,
     .min = 1,
     .max = 86400,
     .offset = offsetof(struct config, audit_checkpoint_interval_seconds),
     .size = sizeof(((struct config *)0)->audit_checkpoint_interval_seconds)},
    {.name = "LEDGERD_AUDIT_CHECKPOINT_RECORDS",
     .default_u64 = LIMIT_AUDIT_CHECKPOINT_RECORDS_DEFAULT,
     .help = "a checkpoint at least every this many audit records",
     .parse = parse_integer,
     .print = print_integer,
     .min = 1,
     .max = 1000000,
     .offset = offsetof(struct config, audit_checkpoint_records),
     .size = sizeof(((struct config *)0)->audit_checkpoint_records)},
    {.name = "LEDGERD_AUDIT_PUBLIC_KEYS_FILE",
     .default_text = "",
     .help = "file of PEM public keys that `ledgerd audit verify` accepts checkpoints from",
     .parse = parse_path_file,
     .print = print_string,
     .offset = offsetof(struct config, audit_public_keys_file),
     .size = sizeof(((struct config *)0)->audit_public_keys_file)},
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
        if (value[0] == '\0' && !s->empty_allowed) {
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
