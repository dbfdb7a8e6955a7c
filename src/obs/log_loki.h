/*
 * log_loki.h — batches of log lines in the JSON form of Loki's push API, apart from the HTTP
 * transport so they can be tested alone.
 *
 * POST /loki/api/v1/push takes {"streams":[{"stream":{<labels>},"values":[["<unix ns>","<line>"],
 * ...]}]}: timestamps are decimal strings of nanoseconds. Labels come from a small fixed set:
 * service, environment and level, so the number of streams stays bounded (ids belong in the
 * line, where LogQL's json parser finds them, never in labels).
 */
#ifndef LEDGERD_OBS_LOG_LOKI_H
#define LEDGERD_OBS_LOG_LOKI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"

/* Raw line bytes in one push at most; with JSON escaping a body stays below Loki's default
 * 4 MiB gRPC message limit. */
#define LOG_LOKI_BATCH_BYTES_MAX ((size_t)1024 * 1024)
/* Attempts of one push (the first and the retries) before its lines are dropped. */
#define LOG_LOKI_ATTEMPTS_MAX 5
/* One push waits this long for Loki at most. */
#define LOG_LOKI_TIMEOUT_MS 10000

struct log_loki_entry {
    int64_t unix_ns;
    uint32_t offset; /* of the line in text */
    uint32_t len;
    enum config_log_level level;
};

struct log_loki_batch {
    struct log_loki_entry *entries;
    size_t count, count_max;
    char *text; /* the lines, without their newlines, one after the other */
    size_t text_len, text_bytes_max;
    int64_t first_mono_ns; /* when the oldest line in the batch came */
};

/* Allocates room for count_max lines and text_bytes_max bytes of them. Returns 0 or -ENOMEM. */
int log_loki_batch_init(struct log_loki_batch *b, size_t count_max, size_t text_bytes_max);
void log_loki_batch_release(struct log_loki_batch *b);
void log_loki_batch_reset(struct log_loki_batch *b);

/* Adds a line (len bytes; a trailing newline is left out). Returns 0, or -ENOSPC when the batch
 * is full by count or by bytes (send it, reset, add again). now_mono_ns starts the batch's
 * clock when it is the first line. */
int log_loki_batch_add(struct log_loki_batch *b, enum config_log_level level, int64_t unix_ns,
                       const char *line, size_t len, int64_t now_mono_ns);

/* True when the batch should go: full by count, or its oldest line waited wait_ms. */
bool log_loki_batch_due(const struct log_loki_batch *b, int64_t now_mono_ns, uint32_t wait_ms);

/* Writes the push body into out (created by the caller with room enough: twice text_bytes_max
 * plus 64 KiB always is). One stream per level present, labelled service="ledgerd",
 * environment=<environment>, level=<debug|info|warn|error>; in each, the values in the order
 * added. Returns 0 or -ENOSPC. */
int log_loki_batch_json(const struct log_loki_batch *b, const char *environment, struct buf *out);

#endif
