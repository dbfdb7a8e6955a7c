/*
 * log.c — structured JSON log lines (OpenTelemetry log data model), one write(2) per line.
 *
 * A line is built on the stack, never on the heap, so logging works when memory is short and
 * costs no allocation on the hot path. A line that would pass LIMIT_LOG_LINE_BYTES_MAX has its
 * body cut (at a UTF-8 boundary) and is marked "truncated":true; it is never split or left as
 * invalid JSON.
 *
 * The finished line is copied into the queue of every chosen sink (log_sink.c), whose thread
 * writes it; sinks never hold the caller up. stdout too has a queue and a thread once the sinks
 * are started (`ledgerd serve`): its thread gathers the lines of a few milliseconds into one
 * write(2). Before that (start-up, the other commands) and after the sinks stop, a line goes to
 * stdout with one write(2) of its own. The level is an atomic so signals can change it while
 * requests log.
 */
#include "obs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/assert.h"
#include "core/clock.h"
#include "core/limits.h"
#include "obs/log_sink.h"

#define LOG_SERVICE_NAME "ledgerd"
#define LOG_ENV_NAME_LEN_MAX 31
/* Bounded retries for a line the kernel accepted only in part. */
#define LOG_WRITE_TRIES_MAX 8

static const char log_truncated_member[] = ",\"truncated\":true";
static const char log_line_end[] = "}\n";

static _Atomic int log_level_min = CONFIG_LOG_INFO;
static int log_fd = STDOUT_FILENO;
static char log_env_name[LOG_ENV_NAME_LEN_MAX + 1] = "dev";
static atomic_uint_fast64_t log_written_count[LOG_SINK_COUNT];
static atomic_uint_fast64_t log_dropped_count[LOG_SINK_COUNT];
/* CONFIG_LOG_SINK_* bits of the sinks lines go to. */
static atomic_uint log_sinks_mask = CONFIG_LOG_SINK_STDOUT;
/* stdout's lines go through its worker (true between log_sinks_start and log_sinks_stop). */
static atomic_bool log_stdout_queued;
static struct log_worker log_workers[LOG_SINK_COUNT];
static bool log_sinks_started;
static char log_level_file[sizeof(((struct config *)0)->log_level_file)];

static const char *const log_sink_names[LOG_SINK_COUNT] = {"stdout", "file", "syslog", "loki"};

_Static_assert(CONFIG_LOG_SINK_STDOUT == 1u << LOG_SINK_STDOUT &&
                   CONFIG_LOG_SINK_FILE == 1u << LOG_SINK_FILE &&
                   CONFIG_LOG_SINK_SYSLOG == 1u << LOG_SINK_SYSLOG &&
                   CONFIG_LOG_SINK_LOKI == 1u << LOG_SINK_LOKI,
               "the sink bits of config.h follow enum log_sink");

void log_setup(enum config_log_level level, int fd, const char *env_name)
{
    ASSERT(fd >= 0);
    atomic_store(&log_level_min, (int)level);
    log_fd = fd;
    if (env_name != NULL) {
        size_t n = strnlen(env_name, LOG_ENV_NAME_LEN_MAX);
        memcpy(log_env_name, env_name, n);
        log_env_name[n] = '\0';
    }
}

bool log_enabled(enum config_log_level level)
{
    return (int)level >= atomic_load_explicit(&log_level_min, memory_order_relaxed);
}

enum config_log_level log_level(void)
{
    return (enum config_log_level)atomic_load(&log_level_min);
}

uint64_t log_dropped(void)
{
    uint64_t total = 0;
    for (size_t i = 0; i < LOG_SINK_COUNT; i++) {
        total += (uint64_t)atomic_load(&log_dropped_count[i]);
    }
    return total;
}

const char *log_sink_name(enum log_sink sink)
{
    ASSERT(sink < LOG_SINK_COUNT);
    return log_sink_names[sink];
}

uint64_t log_sink_written(enum log_sink sink)
{
    ASSERT(sink < LOG_SINK_COUNT);
    return (uint64_t)atomic_load(&log_written_count[sink]);
}

uint64_t log_sink_dropped(enum log_sink sink)
{
    ASSERT(sink < LOG_SINK_COUNT);
    return (uint64_t)atomic_load(&log_dropped_count[sink]);
}

bool log_sink_active(enum log_sink sink)
{
    ASSERT(sink < LOG_SINK_COUNT);
    return (atomic_load(&log_sinks_mask) & (1u << sink)) != 0;
}

void log_count_written(enum log_sink sink, uint64_t lines)
{
    ASSERT(sink < LOG_SINK_COUNT);
    atomic_fetch_add(&log_written_count[sink], lines);
}

void log_count_dropped(enum log_sink sink, uint64_t lines)
{
    ASSERT(sink < LOG_SINK_COUNT);
    atomic_fetch_add(&log_dropped_count[sink], lines);
}

static const char *severity_text(enum config_log_level level)
{
    switch (level) {
    case CONFIG_LOG_DEBUG:
        return "DEBUG";
    case CONFIG_LOG_INFO:
        return "INFO";
    case CONFIG_LOG_WARN:
        return "WARN";
    case CONFIG_LOG_ERROR:
        return "ERROR";
    }
    return "INFO";
}

/* OpenTelemetry SeverityNumber: the first number of each range. */
static int severity_number(enum config_log_level level)
{
    switch (level) {
    case CONFIG_LOG_DEBUG:
        return 5;
    case CONFIG_LOG_INFO:
        return 9;
    case CONFIG_LOG_WARN:
        return 13;
    case CONFIG_LOG_ERROR:
        return 17;
    }
    return 9;
}

/* A struct buf over caller memory. Its cap already equals len_max + 1, so buf.c never needs to
 * grow it: an append that does not fit fails with -ENOSPC instead of reallocating. */
static void stack_buf(struct buf *b, char *mem, size_t start_len, size_t len_max)
{
    b->data = mem;
    b->len = start_len;
    b->len_max = len_max;
    b->cap = len_max + 1;
}

static int append_member(struct buf *b, const char *name, const char *value)
{
    int rc = buf_append_str(b, name);
    if (rc == 0) {
        rc = buf_append_json_str(b, value, strlen(value));
    }
    return rc;
}

/* The members after the body, without the closing brace. */
static int append_tail(struct buf *b, const struct log_ctx *ctx, const char *fields_json)
{
    int rc = buf_append_str(b, ",\"service.name\":\"" LOG_SERVICE_NAME "\"");
    if (rc == 0) {
        rc = append_member(b, ",\"deployment.environment.name\":", log_env_name);
    }
    if (rc == 0 && ctx != NULL && ctx->request_id != NULL) {
        rc = append_member(b, ",\"request_id\":", ctx->request_id);
    }
    if (rc == 0 && ctx != NULL && ctx->trace_id != NULL) {
        rc = append_member(b, ",\"trace_id\":", ctx->trace_id);
    }
    if (rc == 0 && ctx != NULL && ctx->span_id != NULL) {
        rc = append_member(b, ",\"span_id\":", ctx->span_id);
    }
    if (rc == 0 && fields_json != NULL && fields_json[0] != '\0') {
        rc = buf_append_char(b, ',');
        if (rc == 0) {
            rc = buf_append_str(b, fields_json);
        }
    }
    return rc;
}

static void write_line(const char *line, size_t len)
{
    size_t done = 0;
    for (int tries = 0; done < len && tries < LOG_WRITE_TRIES_MAX; tries++) {
        ssize_t n = write(log_fd, line + done, len - done);
        if (n > 0) {
            done += (size_t)n;
        } else if (n < 0 && errno != EINTR) {
            break; /* EAGAIN on a full pipe, EBADF, EPIPE...: the line is lost */
        }
    }
    log_count_dropped(LOG_SINK_STDOUT, done < len ? 1 : 0);
    log_count_written(LOG_SINK_STDOUT, done < len ? 0 : 1);
}

/* Hands a finished line to every chosen sink. */
static void dispatch_line(enum config_log_level level, int64_t unix_ns, const char *line,
                          size_t len)
{
    unsigned mask = atomic_load(&log_sinks_mask);
    if ((mask & CONFIG_LOG_SINK_STDOUT) != 0 && !atomic_load(&log_stdout_queued)) {
        write_line(line, len);
        mask &= ~(unsigned)CONFIG_LOG_SINK_STDOUT;
    }
    struct log_record rec = {unix_ns, (uint32_t)len, level};
    for (size_t i = LOG_SINK_STDOUT; i < LOG_SINK_COUNT; i++) {
        if ((mask & (1u << i)) != 0 && !log_queue_push(&log_workers[i].queue, &rec, line)) {
            log_count_dropped((enum log_sink)i, 1);
        }
    }
}

/* Builds and writes one line whatever the level. */
static void log_emit(enum config_log_level level, const struct log_ctx *ctx, const char *msg,
                     const char *fields_json)
{
    if (msg == NULL) {
        msg = "";
    }
    int saved_errno = errno; /* logging must not disturb the caller's errno */
    char line[LIMIT_LOG_LINE_BYTES_MAX];
    const size_t reserve = sizeof(log_truncated_member) - 1 + sizeof(log_line_end) - 1;
    const size_t len_max = sizeof(line) - 1 - reserve; /* head, body and tail */
    char ts[CLOCK_RFC3339_MS_LEN + 1];
    int64_t unix_ns = clock_unix_ns();
    clock_format_rfc3339_ms(unix_ns / 1000000, ts);
    struct buf b;
    stack_buf(&b, line, 0, len_max);

    /* 1. The head: always fits. */
    int rc = buf_appendf(&b,
                         "{\"timestamp\":\"%s\",\"severity_text\":\"%s\","
                         "\"severity_number\":%d,\"body\":",
                         ts, severity_text(level), severity_number(level));
    ASSERT(rc == 0);
    size_t head_len = b.len;
    bool truncated = false;

    /* 2. The tail, built right after the head to learn its length; extra fields that cannot
     * fit even with an empty body are left out rather than cut. */
    b.len_max = len_max - 2; /* room for the shortest body, "" */
    rc = append_tail(&b, ctx, fields_json);
    if (rc != 0) {
        b.len = head_len;
        truncated = true;
        rc = append_tail(&b, ctx, NULL);
        ASSERT(rc == 0); /* ids and environment names are bounded far below the line limit */
    }
    size_t tail_len = b.len - head_len;

    /* 3. Park the tail at the end of the line and write the body into the gap. */
    char *tail_parked = line + len_max - tail_len;
    memmove(tail_parked, line + head_len, tail_len);
    stack_buf(&b, line, head_len, len_max - tail_len - 1); /* the NUL may not touch the tail */
    size_t msg_len = strlen(msg);
    if (buf_append_json_str(&b, msg, msg_len) != 0) {
        /* Longest prefix that fits, by bisection; cut only at a UTF-8 character boundary. */
        truncated = true;
        size_t lo = 0, hi = msg_len;
        while (lo < hi) {
            size_t mid = lo + (hi - lo + 1) / 2;
            b.len = head_len;
            if (buf_append_json_str(&b, msg, mid) == 0) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        size_t cut = lo;
        while (cut > 0 && cut < msg_len && ((unsigned char)msg[cut] & 0xC0) == 0x80) {
            cut--;
        }
        b.len = head_len;
        rc = buf_append_json_str(&b, msg, cut);
        ASSERT(rc == 0);
    }

    /* 4. Bring the tail back and close the object. */
    size_t len = b.len;
    memmove(line + len, tail_parked, tail_len);
    len += tail_len;
    if (truncated) {
        memcpy(line + len, log_truncated_member, sizeof(log_truncated_member) - 1);
        len += sizeof(log_truncated_member) - 1;
    }
    memcpy(line + len, log_line_end, sizeof(log_line_end) - 1);
    len += sizeof(log_line_end) - 1;
    ASSERT(len <= sizeof(line));

    dispatch_line(level, unix_ns, line, len);
    errno = saved_errno;
}

void log_event(enum config_log_level level, const struct log_ctx *ctx, const char *msg,
               const char *fields_json)
{
    if (!log_enabled(level)) {
        return;
    }
    log_emit(level, ctx, msg, fields_json);
}

void log_msgf(enum config_log_level level, const struct log_ctx *ctx, const char *fmt, ...)
{
    if (!log_enabled(level)) {
        return;
    }
    char msg[LIMIT_LOG_LINE_BYTES_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0) {
        msg[0] = '\0';
    }
    log_event(level, ctx, msg, NULL);
}

/* ===== Sinks ===== */

void log_sink_report(enum config_log_level level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if (level >= CONFIG_LOG_ERROR) {
        fprintf(stderr, "ledgerd: %s\n", msg);
    }
    log_event(level, NULL, msg, NULL);
}

/* ===== The stdout sink: lines gathered into one write(2) ===== */

struct stdout_sink {
    size_t len;
    uint64_t lines;
    char buf[LOG_STDOUT_BATCH_BYTES];
};

static void stdout_flush(void *state)
{
    struct stdout_sink *s = state;
    if (s->len == 0) {
        return;
    }
    size_t done = 0;
    for (int tries = 0; done < s->len && tries < LOG_WRITE_TRIES_MAX; tries++) {
        ssize_t n = write(log_fd, s->buf + done, s->len - done);
        if (n > 0) {
            done += (size_t)n;
        } else if (n < 0 && errno != EINTR) {
            break; /* EAGAIN on a full pipe, EBADF, EPIPE...: the lines left are lost */
        }
    }
    uint64_t written = 0;
    for (const char *p = s->buf; (p = memchr(p, '\n', done - (size_t)(p - s->buf))) != NULL; p++) {
        written++;
    }
    if (done < s->len && done > 0 && s->buf[done - 1] != '\n') {
        (void)!write(log_fd, "\n", 1); /* the torn line stays the only unreadable one */
    }
    log_count_written(LOG_SINK_STDOUT, written);
    log_count_dropped(LOG_SINK_STDOUT, s->lines - written);
    s->len = 0;
    s->lines = 0;
}

static int stdout_write(void *state, const struct log_record *rec, const char *line)
{
    struct stdout_sink *s = state;
    ASSERT(rec->len <= sizeof(s->buf));
    if (s->len + rec->len > sizeof(s->buf)) {
        stdout_flush(s);
    }
    memcpy(s->buf + s->len, line, rec->len);
    s->len += rec->len;
    s->lines++;
    return 0;
}

static int64_t stdout_tick(void *state, int64_t now_mono_ns)
{
    stdout_flush(state);
    return now_mono_ns + (int64_t)LOG_SINK_TICK_MS * 1000000;
}

static void stdout_close(void *state, int64_t deadline_mono_ns)
{
    (void)deadline_mono_ns;
    if (state != NULL) {
        stdout_flush(state);
        free(state);
    }
}

static const struct log_sink_ops log_stdout_ops = {
    .write = stdout_write,
    .tick = stdout_tick,
    .flush = stdout_flush,
    .close = stdout_close,
    .counts_itself = true,
};

static int log_stdout_open(const struct config *cfg, void **state)
{
    (void)cfg;
    *state = calloc(1, sizeof(struct stdout_sink));
    return *state != NULL ? 0 : -ENOMEM;
}

static void log_sinks_stop_at_exit(void)
{
    log_sinks_stop();
}

int log_sinks_start(const struct config *cfg)
{
    ASSERT(cfg != NULL);
    ASSERT(!log_sinks_started);
    static const struct {
        enum log_sink sink;
        int (*open)(const struct config *cfg, void **state);
        const struct log_sink_ops *ops;
    } kinds[] = {
        {LOG_SINK_STDOUT, log_stdout_open, &log_stdout_ops},
        {LOG_SINK_FILE, log_file_open, &log_file_ops},
        {LOG_SINK_SYSLOG, log_syslog_open, &log_syslog_ops},
        {LOG_SINK_LOKI, log_loki_open, &log_loki_ops},
    };
    size_t n = strnlen(cfg->log_level_file, sizeof(log_level_file) - 1);
    memcpy(log_level_file, cfg->log_level_file, n);
    log_level_file[n] = '\0';

    int rc = 0;
    unsigned started = 0;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        struct log_worker *w = &log_workers[kinds[i].sink];
        if ((cfg->log_sinks & (1u << kinds[i].sink)) == 0) {
            continue;
        }
        w->sink = kinds[i].sink;
        w->ops = kinds[i].ops;
        log_queue_release(&w->queue); /* left by an earlier start and stop (tests) */
        rc = log_queue_init(&w->queue, cfg->log_queue_bytes);
        if (rc != 0) {
            fprintf(stderr, "ledgerd: %s sink: no memory for its queue\n",
                    log_sink_names[kinds[i].sink]);
            break;
        }
        rc = kinds[i].open(cfg, &w->state);
        if (rc == 0) {
            rc = log_worker_start(w);
            if (rc != 0) {
                w->ops->close(w->state, clock_mono_ns());
                w->state = NULL;
            }
        }
        if (rc != 0) {
            log_queue_release(&w->queue);
            break;
        }
        started |= 1u << kinds[i].sink;
    }
    log_sinks_started = true;
    atomic_store(&log_stdout_queued, (started & CONFIG_LOG_SINK_STDOUT) != 0);
    atomic_store(&log_sinks_mask, started);
    static bool at_exit_registered;
    if (!at_exit_registered) {
        at_exit_registered = atexit(log_sinks_stop_at_exit) == 0;
    }
    if (rc != 0) {
        log_sinks_stop();
        return rc;
    }
    return 0;
}

void log_sinks_stop(void)
{
    if (!log_sinks_started) {
        return;
    }
    log_sinks_started = false;
    int64_t deadline = clock_mono_ns() + (int64_t)LOG_SINK_STOP_TIMEOUT_MS * 1000000;
    for (size_t i = LOG_SINK_STDOUT; i < LOG_SINK_COUNT; i++) {
        log_worker_stop(&log_workers[i], deadline);
    }
    /* From here on lines go to stdout only, with a write(2) each; queues stay allocated (see
     * log_worker_stop). */
    atomic_store(&log_stdout_queued, false);
    atomic_fetch_and(&log_sinks_mask, CONFIG_LOG_SINK_STDOUT);
}

/* ===== Level at run time ===== */

void log_level_set(enum config_log_level level, const char *reason)
{
    ASSERT(level >= CONFIG_LOG_DEBUG && level <= CONFIG_LOG_ERROR);
    enum config_log_level old = (enum config_log_level)atomic_exchange(&log_level_min, (int)level);
    char fields[160];
    (void)snprintf(fields, sizeof(fields), "\"log_level\":\"%s\",\"previous_log_level\":\"%s\"",
                   config_log_level_name(level), config_log_level_name(old));
    char msg[160];
    (void)snprintf(msg, sizeof(msg),
                   old == level ? "log level stays %s (%s)" : "log level changed to %s (%s)",
                   config_log_level_name(level), reason != NULL ? reason : "request");
    /* Written whatever the new level: a change must always be visible. */
    log_emit(CONFIG_LOG_INFO, NULL, msg, fields);
}

/* Reads LEDGERD_LOG_LEVEL_FILE again; a file that cannot be read or holds no level leaves the
 * level as it was, with an error. */
static void log_level_reload(void)
{
    if (log_level_file[0] == '\0') {
        log_emit(CONFIG_LOG_INFO, NULL,
                 "SIGHUP: LEDGERD_LOG_LEVEL_FILE is not set; log level unchanged", NULL);
        return;
    }
    char text[256];
    ssize_t len = -1;
    int fd = open(log_level_file, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        do {
            len = read(fd, text, sizeof(text));
        } while (len < 0 && errno == EINTR);
        (void)close(fd);
    }
    enum config_log_level level;
    if (len < 0 || (size_t)len >= sizeof(text) ||
        config_log_level_parse(text, (size_t)len, &level) != 0) {
        log_sink_report(CONFIG_LOG_ERROR,
                        "SIGHUP: LEDGERD_LOG_LEVEL_FILE cannot be read or holds no level "
                        "(debug, info, warn, error); log level unchanged");
        return;
    }
    log_level_set(level, "SIGHUP");
}

void log_signal(int sig)
{
    enum config_log_level level = log_level();
    switch (sig) {
    case SIGHUP:
        log_level_reload();
        log_file_request_reopen();
        break;
    case SIGUSR1:
        log_level_set(level > CONFIG_LOG_DEBUG ? (enum config_log_level)(level - 1) : level,
                      "SIGUSR1");
        break;
    case SIGUSR2:
        log_level_set(level < CONFIG_LOG_ERROR ? (enum config_log_level)(level + 1) : level,
                      "SIGUSR2");
        break;
    default:
        break;
    }
}
