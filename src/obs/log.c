/*
 * log.c — structured JSON log lines (OpenTelemetry log data model), one write(2) per line.
 *
 * A line is built on the stack, never on the heap, so logging works when memory is short and
 * costs no allocation on the hot path. A line that would pass LIMIT_LOG_LINE_BYTES_MAX has its
 * body cut (at a UTF-8 boundary) and is marked "truncated":true; it is never split or left as
 * invalid JSON.
 */
#include "obs/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/assert.h"
#include "core/clock.h"
#include "core/limits.h"

#define LOG_SERVICE_NAME "ledgerd"
#define LOG_ENV_NAME_LEN_MAX 31
/* Bounded retries for a line the kernel accepted only in part. */
#define LOG_WRITE_TRIES_MAX 8

static const char log_truncated_member[] = ",\"truncated\":true";
static const char log_line_end[] = "}\n";

static enum config_log_level log_level_min = CONFIG_LOG_INFO;
static int log_fd = STDOUT_FILENO;
static char log_env_name[LOG_ENV_NAME_LEN_MAX + 1] = "dev";
static atomic_uint_fast64_t log_dropped_count;

void log_setup(enum config_log_level level, int fd, const char *env_name)
{
    ASSERT(fd >= 0);
    log_level_min = level;
    log_fd = fd;
    if (env_name != NULL) {
        size_t n = strnlen(env_name, LOG_ENV_NAME_LEN_MAX);
        memcpy(log_env_name, env_name, n);
        log_env_name[n] = '\0';
    }
}

bool log_enabled(enum config_log_level level)
{
    return level >= log_level_min;
}

uint64_t log_dropped(void)
{
    return (uint64_t)atomic_load(&log_dropped_count);
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
    if (done < len) {
        atomic_fetch_add(&log_dropped_count, 1);
    }
}

void log_event(enum config_log_level level, const struct log_ctx *ctx, const char *msg,
               const char *fields_json)
{
    if (!log_enabled(level)) {
        return;
    }
    if (msg == NULL) {
        msg = "";
    }
    int saved_errno = errno; /* logging must not disturb the caller's errno */
    char line[LIMIT_LOG_LINE_BYTES_MAX];
    const size_t reserve = sizeof(log_truncated_member) - 1 + sizeof(log_line_end) - 1;
    const size_t len_max = sizeof(line) - 1 - reserve; /* head, body and tail */
    char ts[CLOCK_RFC3339_MS_LEN + 1];
    clock_format_rfc3339_ms(clock_unix_ms(), ts);
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

    write_line(line, len);
    errno = saved_errno;
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
