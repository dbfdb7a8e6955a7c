/*
 * otlp.c — the OTLP/HTTP JSON trace exporter: configuration from the OTEL_* variables, the
 * JSON encoding of ExportTraceServiceRequest, the span queue, and the export thread with its
 * retries.
 *
 * Threads: any thread enqueues (a mutex held for a pointer store); one export thread takes up
 * to a batch of pointers under the same mutex, lets go of it, and encodes and POSTs without
 * it. The HTTP request runs on a curl multi handle polled in short slices, so shutdown can cut
 * it at its deadline; waits between retries are condition-variable waits shutdown ends early.
 */
#include "obs/otlp.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/assert.h"
#include "core/clock.h"
#include "core/rand.h"

#define NS_PER_MS 1000000LL
/* Longest single curl_multi_poll, so a deadline is noticed promptly even without a wakeup. */
#define OTLP_POLL_SLICE_MS 100

/* ---- JSON encoding ------------------------------------------------------------------------ */

static int put_hex_str(struct buf *b, const uint8_t *bytes, size_t len)
{
    char hex[2 * SPAN_TRACE_ID_BYTES + 1];
    ASSERT(len <= SPAN_TRACE_ID_BYTES);
    span_hex(bytes, len, hex);
    int rc = buf_append_char(b, '"');
    rc = rc != 0 ? rc : buf_append(b, hex, 2 * len);
    return rc != 0 ? rc : buf_append_char(b, '"');
}

static int put_str(struct buf *b, const char *s)
{
    return buf_append_json_str(b, s, strlen(s));
}

static int put_kv_string(struct buf *b, const char *key, const char *value, size_t value_len)
{
    int rc = buf_append_str(b, "{\"key\":");
    rc = rc != 0 ? rc : put_str(b, key);
    rc = rc != 0 ? rc : buf_append_str(b, ",\"value\":{\"stringValue\":");
    rc = rc != 0 ? rc : buf_append_json_str(b, value, value_len);
    return rc != 0 ? rc : buf_append_str(b, "}}");
}

static int put_double(struct buf *b, double d)
{
    /* The protobuf JSON mapping writes the non-finite values as strings. */
    if (isnan(d)) {
        return buf_append_str(b, "\"NaN\"");
    }
    if (isinf(d)) {
        return buf_append_str(b, d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    }
    return buf_appendf(b, "%.17g", d);
}

static int put_attr(struct buf *b, const struct span *sp, const struct span_attr *a)
{
    const char *key = sp->text + a->key_at;
    if (a->type == SPAN_ATTR_STRING) {
        return put_kv_string(b, key, sp->text + a->str_at, a->str_len);
    }
    int rc = buf_append_str(b, "{\"key\":");
    rc = rc != 0 ? rc : put_str(b, key);
    switch (a->type) {
    case SPAN_ATTR_INT:
        /* int64 is a decimal string in the protobuf JSON mapping. */
        rc =
            rc != 0 ? rc : buf_appendf(b, ",\"value\":{\"intValue\":\"%lld\"}}", (long long)a->v.i);
        break;
    case SPAN_ATTR_BOOL:
        rc = rc != 0 ? rc
                     : buf_appendf(b, ",\"value\":{\"boolValue\":%s}}", a->v.b ? "true" : "false");
        break;
    case SPAN_ATTR_DOUBLE:
        rc = rc != 0 ? rc : buf_append_str(b, ",\"value\":{\"doubleValue\":");
        rc = rc != 0 ? rc : put_double(b, a->v.d);
        rc = rc != 0 ? rc : buf_append_str(b, "}}");
        break;
    case SPAN_ATTR_STRING:
        ASSERT(a->type != SPAN_ATTR_STRING); /* handled above */
        break;
    }
    return rc;
}

/* Span.flags: the W3C trace flags in bits 0-7; bit 8 says bit 9 is known, bit 9 that the
 * parent is remote (OTLP's SpanFlags). */
#define OTLP_SPAN_FLAGS_HAS_IS_REMOTE 0x100u
#define OTLP_SPAN_FLAGS_IS_REMOTE 0x200u

static int encode_span(struct buf *b, const struct span *sp)
{
    uint32_t flags = sp->trace_flags | OTLP_SPAN_FLAGS_HAS_IS_REMOTE;
    if (sp->parent_remote) {
        flags |= OTLP_SPAN_FLAGS_IS_REMOTE;
    }
    int64_t end_ns = sp->end_unix_ns != 0 ? sp->end_unix_ns : sp->start_unix_ns;
    int rc = buf_append_str(b, "{\"traceId\":");
    rc = rc != 0 ? rc : put_hex_str(b, sp->trace_id, SPAN_TRACE_ID_BYTES);
    rc = rc != 0 ? rc : buf_append_str(b, ",\"spanId\":");
    rc = rc != 0 ? rc : put_hex_str(b, sp->span_id, SPAN_ID_BYTES);
    if (rc == 0 && sp->tracestate[0] != '\0') {
        rc = buf_append_str(b, ",\"traceState\":");
        rc = rc != 0 ? rc : put_str(b, sp->tracestate);
    }
    if (rc == 0 && sp->has_parent) {
        rc = buf_append_str(b, ",\"parentSpanId\":");
        rc = rc != 0 ? rc : put_hex_str(b, sp->parent_span_id, SPAN_ID_BYTES);
    }
    rc = rc != 0 ? rc : buf_appendf(b, ",\"flags\":%u,\"name\":", flags);
    rc = rc != 0 ? rc : put_str(b, sp->name);
    rc = rc != 0 ? rc
                 : buf_appendf(b,
                               ",\"kind\":%d,\"startTimeUnixNano\":\"%lld\","
                               "\"endTimeUnixNano\":\"%lld\",\"attributes\":[",
                               (int)sp->kind, (long long)sp->start_unix_ns, (long long)end_ns);
    for (uint32_t i = 0; rc == 0 && i < sp->attrs_count; i++) {
        rc = i > 0 ? buf_append_char(b, ',') : 0;
        rc = rc != 0 ? rc : put_attr(b, sp, &sp->attrs[i]);
    }
    rc = rc != 0 ? rc
                 : buf_appendf(b, "],\"droppedAttributesCount\":%u,\"links\":[", sp->attrs_dropped);
    for (uint32_t i = 0; rc == 0 && i < sp->links_count; i++) {
        rc = buf_append_str(b, i > 0 ? ",{\"traceId\":" : "{\"traceId\":");
        rc = rc != 0 ? rc : put_hex_str(b, sp->links[i].trace_id, SPAN_TRACE_ID_BYTES);
        rc = rc != 0 ? rc : buf_append_str(b, ",\"spanId\":");
        rc = rc != 0 ? rc : put_hex_str(b, sp->links[i].span_id, SPAN_ID_BYTES);
        rc = rc != 0 ? rc : buf_append_char(b, '}');
    }
    rc =
        rc != 0 ? rc : buf_appendf(b, "],\"droppedLinksCount\":%u,\"status\":{", sp->links_dropped);
    if (rc == 0 && sp->status_message[0] != '\0') {
        rc = buf_append_str(b, "\"message\":");
        rc = rc != 0 ? rc : put_str(b, sp->status_message);
        rc = rc != 0 ? rc : buf_append_char(b, ',');
    }
    return rc != 0 ? rc : buf_appendf(b, "\"code\":%d}}", (int)sp->status);
}

static int encode_prefix(struct buf *b, const struct span_resource *res, const char *scope_version)
{
    int rc = buf_append_str(b, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    for (uint32_t i = 0; rc == 0 && i < res->attrs.count; i++) {
        const char *v = span_kv_value(&res->attrs, i);
        rc = i > 0 ? buf_append_char(b, ',') : 0;
        rc = rc != 0 ? rc : put_kv_string(b, span_kv_key(&res->attrs, i), v, strlen(v));
    }
    rc = rc != 0 ? rc
                 : buf_append_str(b, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"ledgerd\","
                                     "\"version\":");
    rc = rc != 0 ? rc : put_str(b, scope_version);
    return rc != 0 ? rc : buf_append_str(b, "},\"spans\":[");
}

static const char otlp_suffix[] = "]}]}]}";

int otlp_encode_json(struct buf *out, const struct span_resource *res, const char *scope_version,
                     struct span *const *spans, size_t n, size_t *encoded_out)
{
    ASSERT(out != NULL && res != NULL && scope_version != NULL && encoded_out != NULL);
    ASSERT(spans != NULL || n == 0);
    *encoded_out = 0;
    buf_reset(out);
    int rc = encode_prefix(out, res, scope_version);
    if (rc != 0) {
        return rc;
    }
    struct buf one;
    buf_init(&one, LIMIT_OTLP_SPAN_JSON_BYTES_MAX);
    size_t encoded = 0;
    for (; encoded < n; encoded++) {
        buf_reset(&one);
        rc = encode_span(&one, spans[encoded]);
        if (rc != 0) {
            break;
        }
        /* Room for the separator and the closing brackets must stay. */
        if (out->len + 1 + one.len + sizeof(otlp_suffix) > out->len_max) {
            rc = -ENOSPC;
            break;
        }
        rc = encoded > 0 ? buf_append_char(out, ',') : 0;
        rc = rc != 0 ? rc : buf_append(out, one.data, one.len);
        ASSERT(rc == 0); /* the room was checked */
    }
    buf_release(&one);
    if (encoded == 0 && n > 0) {
        return rc != 0 ? rc : -ENOSPC;
    }
    rc = buf_append_str(out, otlp_suffix);
    ASSERT(rc == 0);
    *encoded_out = encoded;
    ASSERT(encoded <= n);
    return 0;
}

/* ---- Configuration ------------------------------------------------------------------------- */

static const char *env_get(config_getenv_fn getenv_fn, const char *name)
{
    const char *v = getenv_fn(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

/* The signal-specific variable, else the general one, else NULL. */
static const char *env_pick(config_getenv_fn getenv_fn, const char *traces_name,
                            const char *general_name, const char **name_out)
{
    const char *v = env_get(getenv_fn, traces_name);
    *name_out = traces_name;
    if (v == NULL) {
        v = env_get(getenv_fn, general_name);
        *name_out = general_name;
    }
    return v;
}

/* A decimal integer in [min, max] (no sign, no spaces); unset keeps *out. */
static int env_u32(config_getenv_fn getenv_fn, const char *name, uint32_t min, uint32_t max,
                   uint32_t *out, char *err, size_t err_len)
{
    const char *v = env_get(getenv_fn, name);
    if (v == NULL) {
        return 0;
    }
    uint64_t n = 0;
    size_t len = strlen(v);
    bool ok = len > 0 && len <= 10;
    for (size_t i = 0; ok && i < len; i++) {
        ok = v[i] >= '0' && v[i] <= '9';
        n = n * 10 + (uint64_t)(v[i] - '0');
    }
    if (!ok || n < min || n > max) {
        span_errf(err, err_len, "%s: must be an integer from %u to %u", name, min, max);
        return -EINVAL;
    }
    *out = (uint32_t)n;
    return 0;
}

static bool url_ok(const char *u)
{
    size_t len = strlen(u);
    if (len > LIMIT_OTLP_ENDPOINT_LEN_MAX) {
        return false;
    }
    size_t scheme_len = strncmp(u, "http://", 7) == 0 ? 7 : strncmp(u, "https://", 8) == 0 ? 8 : 0;
    if (scheme_len == 0 || len == scheme_len || u[scheme_len] == '/') {
        return false; /* another scheme, or no host */
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c <= 0x20 || c >= 0x7F) {
            return false;
        }
    }
    return true;
}

static int load_endpoint(struct otlp_config *cfg, config_getenv_fn getenv_fn, char *err,
                         size_t err_len)
{
    const char *v = env_get(getenv_fn, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    const char *name = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
    if (v != NULL) {
        if (!url_ok(v)) {
            goto out_bad;
        }
        snprintf(cfg->endpoint, sizeof(cfg->endpoint), "%s", v);
    } else if ((v = env_get(getenv_fn, "OTEL_EXPORTER_OTLP_ENDPOINT")) != NULL) {
        name = "OTEL_EXPORTER_OTLP_ENDPOINT";
        size_t len = strlen(v);
        const char *sep = len > 0 && v[len - 1] == '/' ? "" : "/";
        if (!url_ok(v) || len + 11 > LIMIT_OTLP_ENDPOINT_LEN_MAX) {
            goto out_bad;
        }
        snprintf(cfg->endpoint, sizeof(cfg->endpoint), "%s%sv1/traces", v, sep);
    } else {
        return 0; /* no endpoint: tracing off */
    }
    cfg->enabled = true;
    return 0;

out_bad:
    span_errf(err, err_len, "%s: must be an http:// or https:// URL of at most %d bytes", name,
              LIMIT_OTLP_ENDPOINT_LEN_MAX);
    return -EINVAL;
}

static int load_headers(struct otlp_config *cfg, config_getenv_fn getenv_fn, char *err,
                        size_t err_len)
{
    static const char *const names[] = {"OTEL_EXPORTER_OTLP_HEADERS",
                                        "OTEL_EXPORTER_OTLP_TRACES_HEADERS"};
    span_kv_init(&cfg->headers);
    /* The general variable first, so the signal-specific one overrides its keys. */
    for (size_t i = 0; i < 2; i++) {
        const char *v = env_get(getenv_fn, names[i]);
        char why[160];
        if (v != NULL && span_kv_parse(&cfg->headers, v, strlen(v), why, sizeof(why)) != 0) {
            span_errf(err, err_len, "%s: %s", names[i], why);
            return -EINVAL;
        }
    }
    return 0;
}

static int load_only(config_getenv_fn getenv_fn, const char *traces_name, const char *general_name,
                     const char *allowed, char *err, size_t err_len)
{
    const char *name = NULL;
    const char *v = env_pick(getenv_fn, traces_name, general_name, &name);
    if (v != NULL && strcmp(v, allowed) != 0) {
        span_errf(err, err_len, "%s: ledgerd supports only %s", name, allowed);
        return -EINVAL;
    }
    return 0;
}

int otlp_config_load(struct otlp_config *cfg, config_getenv_fn getenv_fn, const char *version,
                     char *err, size_t err_len)
{
    ASSERT(cfg != NULL && getenv_fn != NULL && version != NULL);
    memset(cfg, 0, sizeof(*cfg));
    cfg->timeout_ms = LIMIT_OTLP_TIMEOUT_MS_DEFAULT;
    cfg->export_timeout_ms = LIMIT_OTLP_EXPORT_TIMEOUT_MS_DEFAULT;
    cfg->queue_spans_max = LIMIT_OTLP_QUEUE_SPANS_DEFAULT;
    cfg->batch_spans_max = LIMIT_OTLP_BATCH_SPANS_DEFAULT;
    cfg->schedule_delay_ms = LIMIT_OTLP_SCHEDULE_DELAY_MS_DEFAULT;
    cfg->export_attempts_max = LIMIT_OTLP_EXPORT_ATTEMPTS_MAX;
    cfg->backoff_initial_ms = LIMIT_OTLP_BACKOFF_INITIAL_MS;
    cfg->backoff_max_ms = LIMIT_OTLP_BACKOFF_MAX_MS;
    span_kv_init(&cfg->headers);
    span_kv_init(&cfg->resource.attrs);

    const char *name = NULL;
    int rc = load_endpoint(cfg, getenv_fn, err, err_len);
    rc = rc != 0 ? rc : load_headers(cfg, getenv_fn, err, err_len);
    const char *v = env_pick(getenv_fn, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
                             "OTEL_EXPORTER_OTLP_TIMEOUT", &name);
    if (rc == 0 && v != NULL) {
        rc = env_u32(getenv_fn, name, 1, LIMIT_OTLP_TIMEOUT_MS_MAX, &cfg->timeout_ms, err, err_len);
    }
    rc = rc != 0 ? rc
                 : load_only(getenv_fn, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                             "OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", err, err_len);
    rc = rc != 0 ? rc
                 : load_only(getenv_fn, "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
                             "OTEL_EXPORTER_OTLP_COMPRESSION", "none", err, err_len);
    rc = rc != 0 ? rc
                 : env_u32(getenv_fn, "OTEL_BSP_MAX_QUEUE_SIZE", 1, LIMIT_OTLP_QUEUE_SPANS_CEILING,
                           &cfg->queue_spans_max, err, err_len);
    rc = rc != 0 ? rc
                 : env_u32(getenv_fn, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 1,
                           LIMIT_OTLP_QUEUE_SPANS_CEILING, &cfg->batch_spans_max, err, err_len);
    rc = rc != 0 ? rc
                 : env_u32(getenv_fn, "OTEL_BSP_SCHEDULE_DELAY", 1,
                           LIMIT_OTLP_SCHEDULE_DELAY_MS_MAX, &cfg->schedule_delay_ms, err, err_len);
    rc = rc != 0 ? rc
                 : env_u32(getenv_fn, "OTEL_BSP_EXPORT_TIMEOUT", 1, LIMIT_OTLP_TIMEOUT_MS_MAX,
                           &cfg->export_timeout_ms, err, err_len);
    if (rc == 0 && cfg->batch_spans_max > cfg->queue_spans_max) {
        /* The specification clamps; ledgerd refuses what cannot mean what was written. */
        span_errf(err, err_len,
                  "OTEL_BSP_MAX_EXPORT_BATCH_SIZE: must not exceed OTEL_BSP_MAX_QUEUE_SIZE (%u)",
                  cfg->queue_spans_max);
        rc = -EINVAL;
    }
    rc = rc != 0 ? rc
                 : span_sampler_init(&cfg->sampler, env_get(getenv_fn, "OTEL_TRACES_SAMPLER"),
                                     env_get(getenv_fn, "OTEL_TRACES_SAMPLER_ARG"), err, err_len);
    rc = rc != 0 ? rc : span_resource_from_env(&cfg->resource, getenv_fn, version, err, err_len);
    if (rc != 0) {
        cfg->enabled = false;
        return rc;
    }

    v = env_get(getenv_fn, "OTEL_TRACES_EXPORTER");
    if (v != NULL && strcmp(v, "none") == 0) {
        cfg->enabled = false;
    } else if (v != NULL && strcmp(v, "otlp") != 0) {
        span_errf(err, err_len, "OTEL_TRACES_EXPORTER: ledgerd supports only otlp or none");
        cfg->enabled = false;
        return -EINVAL;
    }
    v = env_get(getenv_fn, "OTEL_SDK_DISABLED");
    if (v != NULL && strcasecmp(v, "true") == 0) {
        cfg->enabled = false;
    }
    return 0;
}

/* ---- Exporter state ----------------------------------------------------------------------- */

struct otlp_exporter {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* the export thread waits here: spans, shutdown, retry waits */
    struct span **ring;  /* queue_spans_max slots */
    uint32_t head;       /* oldest span */
    uint32_t count;
    bool stopping;
    int64_t deadline_mono_ns; /* set when stopping */
    pthread_t thread;
    struct otlp_config cfg;
    CURLM *multi; /* curl_multi_wakeup lets shutdown cut a poll short */
    CURL *easy;
    struct curl_slist *http_headers;
    char user_agent[64];
};

static struct otlp_exporter otlp_ex = {.lock = PTHREAD_MUTEX_INITIALIZER};
static atomic_bool otlp_running;
static pthread_once_t otlp_curl_once = PTHREAD_ONCE_INIT;
static CURLcode otlp_curl_init_rc;

static atomic_uint_fast64_t otlp_exported;
static atomic_uint_fast64_t otlp_dropped_queue_full;
static atomic_uint_fast64_t otlp_dropped_export_failed;
static atomic_uint_fast64_t otlp_batches;
static atomic_uint_fast64_t otlp_failures;
static atomic_uint_fast32_t otlp_depth;

uint64_t otlp_spans_exported_total(void)
{
    return atomic_load(&otlp_exported);
}

uint64_t otlp_spans_dropped_queue_full_total(void)
{
    return atomic_load(&otlp_dropped_queue_full);
}

uint64_t otlp_spans_dropped_export_failed_total(void)
{
    return atomic_load(&otlp_dropped_export_failed);
}

uint64_t otlp_spans_dropped_total(void)
{
    return otlp_spans_dropped_queue_full_total() + otlp_spans_dropped_export_failed_total();
}

uint64_t otlp_batches_exported_total(void)
{
    return atomic_load(&otlp_batches);
}

uint64_t otlp_export_failures_total(void)
{
    return atomic_load(&otlp_failures);
}

uint32_t otlp_queue_depth(void)
{
    return (uint32_t)atomic_load(&otlp_depth);
}

bool otlp_enabled(void)
{
    return atomic_load_explicit(&otlp_running, memory_order_acquire);
}

bool otlp_sample(struct trace_context *tc)
{
    ASSERT(tc != NULL);
    if (!otlp_enabled()) {
        return false;
    }
    uint8_t trace_id[SPAN_TRACE_ID_BYTES];
    if (!span_unhex(tc->trace_id, trace_id, sizeof(trace_id))) {
        return false;
    }
    /* cfg is written before otlp_running is set and never while it is. */
    bool sampled =
        span_sampler_should_sample(&otlp_ex.cfg.sampler, trace_id, tc->continued, tc->flags & 1u);
    tc->flags = sampled ? (uint8_t)(tc->flags | 1u) : (uint8_t)(tc->flags & ~1u);
    return sampled;
}

struct span *otlp_batch_span_new(bool sampled_any, uint32_t commands, uint32_t items,
                                 int64_t start_unix_ns)
{
    if (!sampled_any || !otlp_enabled()) {
        return NULL;
    }
    return span_batch_commit_new(commands, items, start_unix_ns);
}

void otlp_enqueue(struct span *sp)
{
    if (sp == NULL) {
        return;
    }
    if (sp->end_unix_ns == 0) {
        span_end(sp, clock_unix_ns());
    }
    bool queued = false;
    pthread_mutex_lock(&otlp_ex.lock);
    if (otlp_ex.ring != NULL && !otlp_ex.stopping && otlp_ex.count < otlp_ex.cfg.queue_spans_max) {
        uint32_t at = (otlp_ex.head + otlp_ex.count) % otlp_ex.cfg.queue_spans_max;
        otlp_ex.ring[at] = sp;
        otlp_ex.count++;
        atomic_store(&otlp_depth, otlp_ex.count);
        queued = true;
        if (otlp_ex.count == otlp_ex.cfg.batch_spans_max) {
            pthread_cond_signal(&otlp_ex.wake);
        }
    }
    pthread_mutex_unlock(&otlp_ex.lock);
    if (!queued) {
        span_free(sp);
        atomic_fetch_add(&otlp_dropped_queue_full, 1);
    }
}

/* ---- One HTTP request ---------------------------------------------------------------------- */

struct otlp_response {
    long status;            /* HTTP status, 0 when none came */
    int64_t retry_after_ms; /* -1 when absent */
    char body[LIMIT_OTLP_RESPONSE_BYTES_MAX];
    size_t body_len;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct otlp_response *r = ctx;
    size_t n = size * nmemb;
    size_t room = sizeof(r->body) - 1 - r->body_len;
    size_t take = n < room ? n : room; /* the rest is read and discarded */
    memcpy(r->body + r->body_len, data, take);
    r->body_len += take;
    r->body[r->body_len] = '\0';
    return n;
}

/* Retry-After (RFC 9110 §10.2.3): delay-seconds or an HTTP-date. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct otlp_response *r = ctx;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";
    if (n <= sizeof(name) - 1 || strncasecmp(data, name, sizeof(name) - 1) != 0) {
        return n;
    }
    char value[64];
    const char *b = data + sizeof(name) - 1;
    const char *e = data + n;
    while (b < e && (*b == ' ' || *b == '\t')) {
        b++;
    }
    while (e > b && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t')) {
        e--;
    }
    size_t len = (size_t)(e - b);
    if (len == 0 || len >= sizeof(value)) {
        return n;
    }
    memcpy(value, b, len);
    value[len] = '\0';
    bool digits = true;
    uint64_t seconds = 0;
    for (size_t i = 0; i < len && digits; i++) {
        digits = value[i] >= '0' && value[i] <= '9';
        seconds = seconds < 1000000 ? seconds * 10 + (uint64_t)(value[i] - '0') : seconds;
    }
    int64_t ms = -1;
    if (digits) {
        ms = (int64_t)seconds * 1000;
    } else {
        time_t when = curl_getdate(value, NULL);
        if (when != (time_t)-1) {
            int64_t delta_ms = ((int64_t)when * 1000) - clock_unix_ms();
            ms = delta_ms > 0 ? delta_ms : 0;
        }
    }
    if (ms >= 0) {
        r->retry_after_ms = ms < LIMIT_OTLP_RETRY_AFTER_MS_MAX ? ms : LIMIT_OTLP_RETRY_AFTER_MS_MAX;
    }
    return n;
}

/* The moment past which nothing may run: the shutdown deadline once stopping. */
static int64_t hard_deadline_ns(void)
{
    pthread_mutex_lock(&otlp_ex.lock);
    int64_t d = otlp_ex.stopping ? otlp_ex.deadline_mono_ns : INT64_MAX;
    pthread_mutex_unlock(&otlp_ex.lock);
    return d;
}

enum post_result { POST_OK, POST_RETRY, POST_FAIL };

/* POSTs body once, for at most until_ns (monotonic). */
static enum post_result post_once(const struct buf *body, int64_t until_ns,
                                  struct otlp_response *resp)
{
    CURL *e = otlp_ex.easy;
    resp->status = 0;
    resp->retry_after_ms = -1;
    resp->body_len = 0;
    resp->body[0] = '\0';
    int64_t now = clock_mono_ns();
    long timeout_ms = (long)((until_ns - now) / NS_PER_MS);
    if (timeout_ms <= 0) {
        return POST_FAIL;
    }
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body->data);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, resp);
    if (curl_multi_add_handle(otlp_ex.multi, e) != CURLM_OK) {
        return POST_FAIL;
    }

    CURLcode result = CURLE_OPERATION_TIMEDOUT;
    bool finished = false;
    for (;;) {
        int running = 0;
        if (curl_multi_perform(otlp_ex.multi, &running) != CURLM_OK) {
            result = CURLE_FAILED_INIT;
            break;
        }
        int queued = 0;
        CURLMsg *msg = curl_multi_info_read(otlp_ex.multi, &queued);
        if (msg != NULL && msg->msg == CURLMSG_DONE) {
            result = msg->data.result;
            finished = true;
            break;
        }
        now = clock_mono_ns();
        int64_t stop_ns = hard_deadline_ns();
        if (now >= stop_ns) {
            break; /* shutdown deadline: abandon the request */
        }
        int64_t left_ms = (stop_ns - now) / NS_PER_MS + 1;
        int wait_ms = left_ms < OTLP_POLL_SLICE_MS ? (int)left_ms : OTLP_POLL_SLICE_MS;
        curl_multi_poll(otlp_ex.multi, NULL, 0, wait_ms, NULL);
    }
    curl_multi_remove_handle(otlp_ex.multi, e);
    if (!finished) {
        return POST_FAIL;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &resp->status);
    switch (result) {
    case CURLE_OK:
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
        return POST_RETRY; /* the collector may come back */
    default:
        return POST_FAIL;
    }
    if (resp->status >= 200 && resp->status <= 299) {
        return POST_OK;
    }
    /* The OTLP specification's retryable statuses. */
    if (resp->status == 429 || resp->status == 502 || resp->status == 503 || resp->status == 504) {
        return POST_RETRY;
    }
    return POST_FAIL;
}

/* partialSuccess.rejectedSpans of a 2xx response (an int64, a string in the JSON mapping). */
static uint64_t rejected_spans(const struct otlp_response *resp, uint64_t sent)
{
    if (resp->body_len == 0) {
        return 0;
    }
    json_t *root = json_loadb(resp->body, resp->body_len, 0, NULL);
    uint64_t rejected = 0;
    json_t *v = json_object_get(json_object_get(root, "partialSuccess"), "rejectedSpans");
    if (json_is_integer(v) && json_integer_value(v) > 0) {
        rejected = (uint64_t)json_integer_value(v);
    } else if (json_is_string(v)) {
        char *end = NULL;
        errno = 0;
        unsigned long long n = strtoull(json_string_value(v), &end, 10);
        rejected = errno == 0 && end != NULL && *end == '\0' ? n : 0;
    }
    json_decref(root);
    return rejected < sent ? rejected : sent;
}

/* Waits on the condition variable until until_ns, or the shutdown deadline if sooner. */
static void sleep_until(int64_t until_ns)
{
    pthread_mutex_lock(&otlp_ex.lock);
    for (;;) {
        int64_t end = until_ns;
        if (otlp_ex.stopping && otlp_ex.deadline_mono_ns < end) {
            end = otlp_ex.deadline_mono_ns;
        }
        if (clock_mono_ns() >= end) {
            break;
        }
        struct timespec ts = {.tv_sec = (time_t)(end / 1000000000LL),
                              .tv_nsec = (long)(end % 1000000000LL)};
        pthread_cond_timedwait(&otlp_ex.wake, &otlp_ex.lock, &ts);
    }
    pthread_mutex_unlock(&otlp_ex.lock);
}

/* Exponential backoff with jitter: a random wait in [b/2, b], b doubling per attempt. */
static int64_t backoff_ms(uint32_t attempt)
{
    uint64_t b = otlp_ex.cfg.backoff_initial_ms;
    for (uint32_t i = 1; i < attempt && b < otlp_ex.cfg.backoff_max_ms; i++) {
        b *= 2;
    }
    if (b > otlp_ex.cfg.backoff_max_ms) {
        b = otlp_ex.cfg.backoff_max_ms;
    }
    return (int64_t)(b / 2 + rand_u64() % (b / 2 + 1));
}

/* Sends body with retries; true when the collector took it. *rejected: spans it refused. */
static bool post_with_retries(const struct buf *body, uint64_t sent, uint64_t *rejected)
{
    static struct otlp_response resp; /* only the export thread uses it */
    int64_t budget_end = clock_mono_ns() + (int64_t)otlp_ex.cfg.export_timeout_ms * NS_PER_MS;
    *rejected = 0;
    for (uint32_t attempt = 1; attempt <= otlp_ex.cfg.export_attempts_max; attempt++) {
        int64_t stop_ns = hard_deadline_ns();
        int64_t until = budget_end < stop_ns ? budget_end : stop_ns;
        int64_t req_end = clock_mono_ns() + (int64_t)otlp_ex.cfg.timeout_ms * NS_PER_MS;
        enum post_result r = post_once(body, req_end < until ? req_end : until, &resp);
        if (r == POST_OK) {
            *rejected = rejected_spans(&resp, sent);
            return true;
        }
        atomic_fetch_add(&otlp_failures, 1);
        if (r == POST_FAIL || attempt == otlp_ex.cfg.export_attempts_max) {
            return false;
        }
        int64_t wait_ms = resp.retry_after_ms >= 0 ? resp.retry_after_ms : backoff_ms(attempt);
        int64_t wake_ns = clock_mono_ns() + wait_ms * NS_PER_MS;
        if (wake_ns >= budget_end || wake_ns >= hard_deadline_ns()) {
            return false; /* the next attempt could not happen in time */
        }
        sleep_until(wake_ns);
    }
    return false;
}

/* Exports spans[0..n) (in as many requests as their size needs) and frees them. */
static void export_spans(struct span **spans, size_t n, struct buf *body)
{
    size_t done = 0;
    while (done < n) {
        size_t encoded = 0;
        int rc = otlp_encode_json(body, &otlp_ex.cfg.resource,
                                  span_kv_get(&otlp_ex.cfg.resource.attrs, "service.version"),
                                  spans + done, n - done, &encoded);
        if (rc != 0) {
            /* This span cannot be encoded within the request limit: drop it alone. */
            span_free(spans[done]);
            spans[done] = NULL;
            done++;
            atomic_fetch_add(&otlp_dropped_export_failed, 1);
            continue;
        }
        ASSERT(encoded >= 1 && encoded <= n - done);
        uint64_t rejected = 0;
        if (post_with_retries(body, encoded, &rejected)) {
            atomic_fetch_add(&otlp_exported, encoded - rejected);
            atomic_fetch_add(&otlp_dropped_export_failed, rejected);
            atomic_fetch_add(&otlp_batches, 1);
        } else {
            atomic_fetch_add(&otlp_dropped_export_failed, encoded);
        }
        for (size_t i = done; i < done + encoded; i++) {
            span_free(spans[i]);
            spans[i] = NULL;
        }
        done += encoded;
    }
}

/* Takes up to max spans off the queue into out; called with the lock held. */
static size_t take_locked(struct span **out, size_t max)
{
    size_t n = otlp_ex.count < max ? otlp_ex.count : max;
    for (size_t i = 0; i < n; i++) {
        out[i] = otlp_ex.ring[otlp_ex.head];
        otlp_ex.ring[otlp_ex.head] = NULL;
        otlp_ex.head = (otlp_ex.head + 1) % otlp_ex.cfg.queue_spans_max;
    }
    otlp_ex.count -= (uint32_t)n;
    atomic_store(&otlp_depth, otlp_ex.count);
    return n;
}

static void *export_main(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "ledgerd-otlp"); /* for top -H, perf, gdb */
    struct span **batch = arg;
    const size_t batch_max = otlp_ex.cfg.batch_spans_max;
    struct buf body;
    buf_init(&body, LIMIT_OTLP_REQUEST_BYTES_MAX);
    int64_t delay_ns = (int64_t)otlp_ex.cfg.schedule_delay_ms * NS_PER_MS;
    int64_t next_ns = clock_mono_ns() + delay_ns;

    pthread_mutex_lock(&otlp_ex.lock);
    for (;;) {
        /* A batch leaves when it is full, when the schedule delay has passed, or at shutdown. */
        while (!otlp_ex.stopping && otlp_ex.count < batch_max && clock_mono_ns() < next_ns) {
            struct timespec ts = {.tv_sec = (time_t)(next_ns / 1000000000LL),
                                  .tv_nsec = (long)(next_ns % 1000000000LL)};
            pthread_cond_timedwait(&otlp_ex.wake, &otlp_ex.lock, &ts);
        }
        if (otlp_ex.stopping &&
            (otlp_ex.count == 0 || clock_mono_ns() >= otlp_ex.deadline_mono_ns)) {
            break;
        }
        size_t n = take_locked(batch, batch_max);
        pthread_mutex_unlock(&otlp_ex.lock);
        if (n > 0) {
            export_spans(batch, n, &body);
        }
        next_ns = clock_mono_ns() + delay_ns;
        pthread_mutex_lock(&otlp_ex.lock);
    }
    /* Past the deadline: what is still queued is dropped. */
    size_t left = otlp_ex.count;
    while (otlp_ex.count > 0) {
        size_t n = take_locked(batch, batch_max);
        for (size_t i = 0; i < n; i++) {
            span_free(batch[i]);
        }
    }
    pthread_mutex_unlock(&otlp_ex.lock);
    atomic_fetch_add(&otlp_dropped_export_failed, left);
    buf_release(&body);
    return NULL;
}

/* ---- Start and stop ------------------------------------------------------------------------- */

static void curl_init_once(void)
{
    otlp_curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Builds the request headers: Content-Type, User-Agent, no Expect, then the configured ones. */
static int build_http_headers(void)
{
    struct curl_slist *list = NULL;
    char line[LIMIT_OTEL_KV_BYTES_MAX + 8];
    static const char *const fixed[] = {"Content-Type: application/json", "Expect:"};
    for (size_t i = 0; i < 2; i++) {
        struct curl_slist *next = curl_slist_append(list, fixed[i]);
        if (next == NULL) {
            goto out_free;
        }
        list = next;
    }
    for (uint32_t i = 0; i < otlp_ex.cfg.headers.count; i++) {
        /* Keys are tokens and values hold no control characters (span_kv_parse): no header
         * can be injected. */
        snprintf(line, sizeof(line), "%s: %s", span_kv_key(&otlp_ex.cfg.headers, i),
                 span_kv_value(&otlp_ex.cfg.headers, i));
        struct curl_slist *next = curl_slist_append(list, line);
        if (next == NULL) {
            goto out_free;
        }
        list = next;
    }
    otlp_ex.http_headers = list;
    return 0;

out_free:
    curl_slist_free_all(list);
    return -ENOMEM;
}

static int setup_curl(void)
{
    otlp_ex.multi = curl_multi_init();
    otlp_ex.easy = curl_easy_init();
    if (otlp_ex.multi == NULL || otlp_ex.easy == NULL || build_http_headers() != 0) {
        return -ENOMEM;
    }
    const char *version = span_kv_get(&otlp_ex.cfg.resource.attrs, "service.version");
    snprintf(otlp_ex.user_agent, sizeof(otlp_ex.user_agent), "ledgerd/%s",
             version != NULL ? version : "unknown");
    CURL *e = otlp_ex.easy;
    curl_easy_setopt(e, CURLOPT_URL, otlp_ex.cfg.endpoint);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, otlp_ex.http_headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT, otlp_ex.user_agent);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    return 0;
}

static void teardown_locked(void)
{
    if (otlp_ex.easy != NULL) {
        curl_easy_cleanup(otlp_ex.easy);
    }
    if (otlp_ex.multi != NULL) {
        curl_multi_cleanup(otlp_ex.multi);
    }
    curl_slist_free_all(otlp_ex.http_headers);
    free(otlp_ex.ring);
    otlp_ex.easy = NULL;
    otlp_ex.multi = NULL;
    otlp_ex.http_headers = NULL;
    otlp_ex.ring = NULL;
    otlp_ex.count = 0;
    otlp_ex.head = 0;
}

static struct span **otlp_batch_slots;

int otlp_start(const struct otlp_config *cfg)
{
    ASSERT(cfg != NULL);
    if (otlp_enabled()) {
        return -EALREADY;
    }
    atomic_store(&otlp_exported, 0);
    atomic_store(&otlp_dropped_queue_full, 0);
    atomic_store(&otlp_dropped_export_failed, 0);
    atomic_store(&otlp_batches, 0);
    atomic_store(&otlp_failures, 0);
    atomic_store(&otlp_depth, 0);
    if (!cfg->enabled) {
        return 0;
    }
    ASSERT(cfg->queue_spans_max >= 1 && cfg->queue_spans_max <= LIMIT_OTLP_QUEUE_SPANS_CEILING);
    ASSERT(cfg->batch_spans_max >= 1 && cfg->batch_spans_max <= cfg->queue_spans_max);
    pthread_once(&otlp_curl_once, curl_init_once);
    if (otlp_curl_init_rc != CURLE_OK) {
        return -ENOMEM;
    }

    pthread_mutex_lock(&otlp_ex.lock);
    otlp_ex.cfg = *cfg;
    otlp_ex.stopping = false;
    otlp_ex.head = 0;
    otlp_ex.count = 0;
    int rc = 0;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* clock_mono_ns's clock */
    pthread_cond_init(&otlp_ex.wake, &ca);
    pthread_condattr_destroy(&ca);
    /* Arrays of span pointers. */
    otlp_ex.ring = calloc(cfg->queue_spans_max, sizeof(void *));
    otlp_batch_slots = calloc(cfg->batch_spans_max, sizeof(void *));
    if (otlp_ex.ring == NULL || otlp_batch_slots == NULL) {
        rc = -ENOMEM;
        goto out_teardown;
    }
    rc = setup_curl();
    if (rc != 0) {
        goto out_teardown;
    }
    rc = -pthread_create(&otlp_ex.thread, NULL, export_main, otlp_batch_slots);
    if (rc != 0) {
        goto out_teardown;
    }
    pthread_mutex_unlock(&otlp_ex.lock);
    atomic_store_explicit(&otlp_running, true, memory_order_release);
    return 0;

out_teardown:
    teardown_locked();
    free(otlp_batch_slots);
    otlp_batch_slots = NULL;
    pthread_cond_destroy(&otlp_ex.wake);
    pthread_mutex_unlock(&otlp_ex.lock);
    return rc;
}

void otlp_shutdown(int64_t deadline_mono_ns)
{
    if (!otlp_enabled()) {
        return;
    }
    atomic_store_explicit(&otlp_running, false, memory_order_release);
    pthread_mutex_lock(&otlp_ex.lock);
    otlp_ex.stopping = true;
    otlp_ex.deadline_mono_ns = deadline_mono_ns;
    pthread_cond_broadcast(&otlp_ex.wake);
    pthread_mutex_unlock(&otlp_ex.lock);
    curl_multi_wakeup(otlp_ex.multi);
    pthread_join(otlp_ex.thread, NULL);

    pthread_mutex_lock(&otlp_ex.lock);
    ASSERT(otlp_ex.count == 0);
    teardown_locked();
    free(otlp_batch_slots);
    otlp_batch_slots = NULL;
    pthread_cond_destroy(&otlp_ex.wake);
    /* stopping stays true: a late otlp_enqueue drops and counts. */
    pthread_mutex_unlock(&otlp_ex.lock);
}
