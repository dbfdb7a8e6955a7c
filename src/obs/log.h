/*
 * log.h — structured JSON log lines on stdout, one line per event.
 *
 * Fields follow the OpenTelemetry log data model: timestamp (RFC 3339), severity_text,
 * severity_number, body (the message), and request_id / trace_id / span_id when known, plus
 * service and environment. Each line is written with one write(2), so lines from different
 * threads never interleave.
 *
 * Sinks (LEDGERD_LOG_SINKS): stdout is written by the logging thread itself; the file, syslog
 * and Loki sinks each have a thread of their own behind a bounded queue, so a request thread
 * never waits for a disk, a socket or an HTTP push. A line that finds a queue full is dropped
 * and counted for that sink. The level can change at run time (log_level_set, log_signal).
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

/* Lines that could not be written (short write, EAGAIN, a full sink queue, a sink that failed),
 * all sinks together. */
uint64_t log_dropped(void);

/* The sinks, in the order of the CONFIG_LOG_SINK_* bits. */
enum log_sink { LOG_SINK_STDOUT, LOG_SINK_FILE, LOG_SINK_SYSLOG, LOG_SINK_LOKI, LOG_SINK_COUNT };

/* "stdout", "file", "syslog", "loki". */
const char *log_sink_name(enum log_sink sink);
/* Lines a sink delivered / lost since start (for metrics). Thread-safe, lock-free. */
uint64_t log_sink_written(enum log_sink sink);
uint64_t log_sink_dropped(enum log_sink sink);
/* True when sink is one that log lines go to. */
bool log_sink_active(enum log_sink sink);

/* Starts the sinks cfg names (cfg->log_sinks) with their settings, and remembers
 * cfg->log_level_file for SIGHUP. Call once, from the main thread, after log_setup and before
 * other threads log; the sink threads block every signal. Without the stdout sink, stdout gets
 * no lines. Returns 0, or -errno when a sink cannot start (the log file cannot be opened): the
 * reason is written to stderr. Registers log_sinks_stop with atexit. */
int log_sinks_start(const struct config *cfg);

/* Lets each sink write what is queued (at most a few seconds), flushes and stops the sink
 * threads; further lines go to stdout only if it was chosen. Idempotent. */
void log_sinks_stop(void);

/* The current minimum level. */
enum config_log_level log_level(void);

/* Sets the minimum level at run time and logs the change (that line is written whatever the
 * level). reason says why ("SIGUSR1"). Thread-safe. */
void log_level_set(enum config_log_level level, const char *reason);

/* What serve's signal loop calls for SIGHUP (re-read LEDGERD_LOG_LEVEL_FILE and reopen the log
 * file), SIGUSR1 (one level more verbose: towards debug) and SIGUSR2 (one level less verbose:
 * towards error). Other signals are ignored. Call from one thread; never from a handler. */
void log_signal(int sig);

#endif
