/*
 * log.h — structured JSON log lines on stdout, one line per event.
 *
 * Fields follow the OpenTelemetry log data model: timestamp (RFC 3339), severity_text,
 * severity_number, body (the message), and request_id / trace_id / span_id when known, plus
 * service and environment. Each line is written with one write(2), so lines from different
 * threads never interleave.
 */
#ifndef LEDGERD_OBS_LOG_H
#define LEDGERD_OBS_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"

struct log_ctx {
    const char *request_id; /* NULL when none */
    const char *trace_id;   /* 32 hex, or NULL */
    const char *span_id;    /* 16 hex, or NULL */
};

/* Sets the minimum level, the output file descriptor (1 = stdout) and the environment name.
 * Call once at start-up before other threads exist. */
void log_setup(enum config_log_level level, int fd, const char *env_name);
bool log_enabled(enum config_log_level level);

/* Writes one line. fields_json, if not NULL, is a JSON fragment of extra members without a
 * leading comma (e.g. "\"method\":\"GET\",\"status\":200"), inserted verbatim. ctx may be NULL.
 * Thread-safe. Never fails loudly: a line that cannot be written is counted (log_dropped). */
void log_event(enum config_log_level level, const struct log_ctx *ctx, const char *msg,
               const char *fields_json);

/* printf-style convenience for lifecycle messages without extra fields. */
__attribute__((format(printf, 3, 4))) void
log_msgf(enum config_log_level level, const struct log_ctx *ctx, const char *fmt, ...);

/* Lines that could not be written (short write, EAGAIN). */
uint64_t log_dropped(void);

#endif
