/*
 * trace.h — W3C Trace Context: strict traceparent/tracestate parsing, new ids, and the
 * traceresponse header.
 */
#ifndef LEDGERD_OBS_TRACE_H
#define LEDGERD_OBS_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"

#define TRACE_ID_HEX_LEN 32
#define TRACE_SPAN_HEX_LEN 16
/* "00-" 32 "-" 16 "-" 2 */
#define TRACE_PARENT_LEN 55

struct trace_context {
    char trace_id[TRACE_ID_HEX_LEN + 1];           /* lower-case hex */
    char parent_id[TRACE_SPAN_HEX_LEN + 1];        /* caller's span, "" when the trace is new */
    char span_id[TRACE_SPAN_HEX_LEN + 1];          /* this server span */
    uint8_t flags;                                 /* trace-flags; bit 0 = sampled */
    bool continued;                                /* true when a valid traceparent came in */
    char tracestate[LIMIT_TRACESTATE_LEN_MAX + 1]; /* "" when absent or invalid */
};

/* Parses a traceparent value (exactly len bytes). Version 00 must be exactly 55 bytes; a
 * higher version (not ff) is read by its first 55 bytes when followed by '-' or the end.
 * Refuses: version ff, upper-case or non-hex digits, wrong lengths, all-zero trace-id or
 * parent-id. Returns true and fills trace_id, parent_id, flags on success. */
bool trace_parse_traceparent(const char *s, size_t len, struct trace_context *out);

/* True when tracestate (len bytes) is well formed: at most 32 comma-separated list members
 * key=value per W3C Trace Context §3.3, empty members allowed, at most 512 bytes. */
bool trace_tracestate_valid(const char *s, size_t len);

/* Builds the context for a server span: continues traceparent when valid (keeping a valid
 * tracestate), else starts a new trace with flags 01. Always generates a fresh span_id.
 * traceparent/tracestate may be NULL. */
void trace_begin(struct trace_context *ctx, const char *traceparent, size_t traceparent_len,
                 const char *tracestate, size_t tracestate_len);

/* Writes "00-<trace-id>-<span-id>-<flags>" plus a NUL (TRACE_PARENT_LEN + 1 bytes). */
void trace_format_response(const struct trace_context *ctx, char *out);

#endif
