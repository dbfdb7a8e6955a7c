/*
 * otlp.h — the trace exporter: OTLP/HTTP with the JSON encoding (OpenTelemetry Protocol
 * specification), fed by a bounded queue of finished spans and run on its own thread.
 *
 * One exporter per process (it is what the OTEL_* variables describe, and what the metrics
 * read). When no endpoint is configured tracing is off: otlp_sample answers false after one
 * atomic load, no span is ever built, and no thread runs.
 *
 * Lifecycle: otlp_config_load, otlp_start (before the server's threads start), otlp_sample and
 * otlp_enqueue from any thread, otlp_shutdown once when the process stops.
 */
#ifndef LEDGERD_OBS_OTLP_H
#define LEDGERD_OBS_OTLP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/limits.h"
#include "obs/span.h"
#include "obs/trace.h"

struct otlp_config {
    bool enabled;                                   /* an endpoint is configured */
    char endpoint[LIMIT_OTLP_ENDPOINT_LEN_MAX + 1]; /* full URL, ".../v1/traces" */
    struct span_kv_list headers;                    /* sent with every export request */
    uint32_t timeout_ms;                            /* one HTTP request */
    uint32_t export_timeout_ms;                     /* all attempts at one batch */
    uint32_t queue_spans_max;
    uint32_t batch_spans_max;
    uint32_t schedule_delay_ms;
    uint32_t export_attempts_max;
    uint32_t backoff_initial_ms;
    uint32_t backoff_max_ms;
    struct span_sampler sampler;
    struct span_resource resource;
};

/* Fills cfg from the environment (getenv_fn, so tests can supply variables):
 *   OTEL_SDK_DISABLED=true, OTEL_TRACES_EXPORTER=none      tracing off
 *   OTEL_EXPORTER_OTLP_TRACES_ENDPOINT                      the URL as is, else
 *   OTEL_EXPORTER_OTLP_ENDPOINT                             + "/v1/traces"; neither: off
 *   OTEL_EXPORTER_OTLP_HEADERS, _TRACES_HEADERS             k=v pairs, the latter wins
 *   OTEL_EXPORTER_OTLP_TIMEOUT, _TRACES_TIMEOUT             ms per request
 *   OTEL_EXPORTER_OTLP_PROTOCOL, _TRACES_PROTOCOL           only http/json
 *   OTEL_EXPORTER_OTLP_COMPRESSION, _TRACES_COMPRESSION     only none
 *   OTEL_BSP_MAX_QUEUE_SIZE, OTEL_BSP_MAX_EXPORT_BATCH_SIZE, OTEL_BSP_SCHEDULE_DELAY,
 *   OTEL_BSP_EXPORT_TIMEOUT
 *   OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG, and the resource's variables
 *   (span_resource_from_env).
 * An empty variable counts as unset. version is service.version. Returns 0, or -EINVAL with
 * a one-line reason naming the variable in err; a refused configuration must stop start-up. */
int otlp_config_load(struct otlp_config *cfg, config_getenv_fn getenv_fn, const char *version,
                     char *err, size_t err_len);

/* Starts the exporter thread when cfg->enabled; otherwise leaves tracing off and returns 0.
 * Resets the counters. Call from one thread while no other otlp_* call runs. Returns 0,
 * -EALREADY when running, -ENOMEM, or a pthread error negated. */
int otlp_start(const struct otlp_config *cfg);

/* True while the exporter runs. Thread-safe; one atomic load. */
bool otlp_enabled(void);

/* The head sampling decision for a request's server span: false when tracing is off (tc is
 * then untouched); otherwise the sampler's decision, written into tc's sampled flag so the
 * traceresponse and any propagation carry it. Thread-safe. */
bool otlp_sample(struct trace_context *tc);

/* A new "commit batch" span when tracing is on and any of the batch's requests was sampled
 * (sampled_any), else NULL. The caller links the requests and ends it. */
struct span *otlp_batch_span_new(bool sampled_any, uint32_t commands, uint32_t items,
                                 int64_t start_unix_ns);

/* Hands a finished span to the exporter: ownership passes in every case (NULL is fine). Never
 * blocks on the network and takes the queue lock only to store a pointer; a full queue, or an
 * exporter that is off or stopped, frees the span and counts it as dropped. A span not yet
 * ended is ended now. Thread-safe. */
void otlp_enqueue(struct span *sp);

/* Stops taking spans, exports what is queued until deadline_mono_ns (clock_mono_ns), drops
 * and counts what is left, joins the thread. Every HTTP request and retry wait is cut to the
 * deadline. No-op when not running. */
void otlp_shutdown(int64_t deadline_mono_ns);

/* Counters for the metrics endpoint (thread-safe, monotonic while the process runs). */
uint64_t otlp_spans_exported_total(void);
uint64_t otlp_spans_dropped_total(void); /* the two below together */
uint64_t otlp_spans_dropped_queue_full_total(void);
uint64_t otlp_spans_dropped_export_failed_total(void); /* after retries, refused, at shutdown */
uint64_t otlp_batches_exported_total(void);
uint64_t otlp_export_failures_total(void); /* failed attempts, retried or not */
uint32_t otlp_queue_depth(void);

/* Encodes spans[0..n) as one OTLP ExportTraceServiceRequest in the protobuf JSON mapping:
 * one resourceSpans (res) with one scopeSpans (scope "ledgerd", version scope_version);
 * traceId/spanId hex, kinds and status codes as integers, times as decimal strings of unix
 * nanoseconds, intValue as a string, NaN and infinities as strings. Encodes spans in order
 * while the request stays within out's len_max; *encoded_out says how many went in (at least
 * one when n > 0 and len_max allows a span). Returns 0, -ENOSPC when not even one span fits, or
 * -ENOMEM. out is reset first. */
int otlp_encode_json(struct buf *out, const struct span_resource *res, const char *scope_version,
                     struct span *const *spans, size_t n, size_t *encoded_out);

#endif
