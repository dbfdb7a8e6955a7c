/*
 * span.h — the tracing data model: spans (OpenTelemetry's model, fixed size, bounded attributes
 * and links), the OpenTelemetry HTTP and database semantic conventions ledgerd follows, the
 * head sampler, and the resource that names this process.
 *
 * Nothing here does I/O or keeps global state: the exporter (obs/otlp.h) owns the sampler and
 * resource of the running process and ships finished spans. Every span function accepts a NULL
 * span and then does nothing, so an unsampled request costs one pointer test per call.
 */
#ifndef LEDGERD_OBS_SPAN_H
#define LEDGERD_OBS_SPAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/limits.h"
#include "obs/trace.h"

#define SPAN_TRACE_ID_BYTES 16
#define SPAN_ID_BYTES 8

/* Values are OTLP's SpanKind and Status.StatusCode, so they are encoded as they are. */
enum span_kind {
    SPAN_KIND_UNSPECIFIED = 0,
    SPAN_KIND_INTERNAL = 1,
    SPAN_KIND_SERVER = 2,
    SPAN_KIND_CLIENT = 3,
    SPAN_KIND_PRODUCER = 4,
    SPAN_KIND_CONSUMER = 5,
};

enum span_status_code {
    SPAN_STATUS_UNSET = 0,
    SPAN_STATUS_OK = 1,
    SPAN_STATUS_ERROR = 2,
};

enum span_attr_type { SPAN_ATTR_STRING, SPAN_ATTR_INT, SPAN_ATTR_BOOL, SPAN_ATTR_DOUBLE };

/* One attribute. Keys and string values live in the span's text arena. */
struct span_attr {
    uint16_t key_at; /* offset of the NUL-terminated key in span.text */
    uint16_t str_at; /* SPAN_ATTR_STRING: offset of the NUL-terminated value */
    uint16_t str_len;
    enum span_attr_type type;
    union {
        int64_t i;
        bool b;
        double d;
    } v;
};

struct span_link {
    uint8_t trace_id[SPAN_TRACE_ID_BYTES];
    uint8_t span_id[SPAN_ID_BYTES];
};

/* A span. Fixed size (no pointers), so it can be allocated once and handed between threads.
 * Fields are public for reading (the encoder and tests); change them through the functions. */
struct span {
    uint8_t trace_id[SPAN_TRACE_ID_BYTES];
    uint8_t span_id[SPAN_ID_BYTES];
    uint8_t parent_span_id[SPAN_ID_BYTES]; /* all zero for a root span */
    bool has_parent;
    bool parent_remote; /* the parent came from a traceparent header */
    uint8_t trace_flags;
    enum span_kind kind;
    int64_t start_unix_ns;
    int64_t end_unix_ns; /* 0 until the span ends */
    enum span_status_code status;
    char status_message[LIMIT_SPAN_STATUS_MESSAGE_LEN_MAX + 1];
    char name[LIMIT_SPAN_NAME_LEN_MAX + 1];
    char tracestate[LIMIT_TRACESTATE_LEN_MAX + 1];

    struct span_attr attrs[LIMIT_SPAN_ATTRS_MAX];
    uint32_t attrs_count;
    uint32_t attrs_dropped; /* over LIMIT_SPAN_ATTRS_MAX, or no room left in text */

    struct span_link links[LIMIT_SPAN_LINKS_MAX];
    uint32_t links_count;
    uint32_t links_dropped; /* over LIMIT_SPAN_LINKS_MAX */

    uint16_t text_used;
    char text[LIMIT_SPAN_TEXT_BYTES];
};

/* ---- Spans ------------------------------------------------------------------------------ */

/* Allocates a span with the given ids (parent_span_id NULL for a root) and name (cut to
 * LIMIT_SPAN_NAME_LEN_MAX bytes at a UTF-8 boundary). The caller owns it: it ends with
 * span_free or by handing it to otlp_enqueue. Returns NULL when out of memory. Thread-safe. */
struct span *span_new(enum span_kind kind, const uint8_t trace_id[SPAN_TRACE_ID_BYTES],
                      const uint8_t span_id[SPAN_ID_BYTES],
                      const uint8_t parent_span_id[SPAN_ID_BYTES], const char *name,
                      int64_t start_unix_ns);
/* Frees a span; NULL is fine. */
void span_free(struct span *sp);
/* Formats an error message into err (err_len bytes, truncated); no-op when err is NULL. Used by
 * the tracing configuration code here and in otlp.c. */
__attribute__((format(printf, 3, 4))) void span_errf(char *err, size_t err_len, const char *fmt,
                                                     ...);

/* A child of parent in the same trace with a fresh span id; NULL when parent is NULL (the
 * parent is not recorded) or out of memory. */
struct span *span_child_new(const struct span *parent, enum span_kind kind, const char *name,
                            int64_t start_unix_ns);

void span_set_name(struct span *sp, const char *name);

/* Attributes. Setting a key that is already there replaces its value (OpenTelemetry's rule).
 * A string value is cut to LIMIT_SPAN_ATTR_VALUE_LEN_MAX bytes at a UTF-8 boundary. A new key
 * past LIMIT_SPAN_ATTRS_MAX, a key longer than LIMIT_SPAN_ATTR_KEY_LEN_MAX or an empty one, or
 * text that no longer fits the span's arena drops the attribute and counts it in
 * attrs_dropped. NULL sp: nothing happens. value may hold any bytes (len of them). */
void span_set_str(struct span *sp, const char *key, const char *value, size_t len);
void span_set_cstr(struct span *sp, const char *key, const char *value); /* NULL value: skip */
void span_set_int(struct span *sp, const char *key, int64_t value);
void span_set_bool(struct span *sp, const char *key, bool value);
void span_set_double(struct span *sp, const char *key, double value);

/* Adds a link; past LIMIT_SPAN_LINKS_MAX it is dropped and counted in links_dropped. */
void span_add_link(struct span *sp, const uint8_t trace_id[SPAN_TRACE_ID_BYTES],
                   const uint8_t span_id[SPAN_ID_BYTES]);
/* Adds a link to the server span of a request's trace context (its trace_id and span_id);
 * a context with malformed ids is ignored and counted as a dropped link. */
void span_add_link_ctx(struct span *sp, const struct trace_context *tc);

/* Status ERROR with a message (cut to LIMIT_SPAN_STATUS_MESSAGE_LEN_MAX; NULL for none). */
void span_set_error(struct span *sp, const char *message);
/* Sets the end time. A span is finished once it has one; ending twice keeps the first. */
void span_end(struct span *sp, int64_t end_unix_ns);

/* Converts a clock_mono_ns() reading to unix nanoseconds using the clocks' current offset, for
 * moments recorded with the monotonic clock (queue entry, batch start). */
int64_t span_unix_ns_from_mono(int64_t mono_ns);

/* Hex helpers: lower-case hex of len bytes plus a NUL (2 * len + 1 bytes). */
void span_hex(const uint8_t *bytes, size_t len, char *out);
/* Parses exactly 2 * len hex digits; false on any other input. */
bool span_unhex(const char *hex, uint8_t *out, size_t len);

/* ---- HTTP server spans (OpenTelemetry semantic conventions for HTTP) ----------------------- */

/* What the server knows about a request when its span starts. NULL strings (and port 0) are
 * left out of the span. */
struct span_http_request {
    const char *method;           /* request method as received: GET, POST, ... */
    const char *path;             /* url.path */
    const char *route;            /* http.route: the matched template, NULL when none matched */
    const char *scheme;           /* url.scheme: "http" or "https" */
    const char *server_address;   /* server.address: Host header without port, or listen host */
    uint16_t server_port;         /* server.port */
    const char *protocol_version; /* network.protocol.version: "1.1", "1.0", "2" */
    const char *client_address;   /* client.address: the peer's IP */
    const char *user_agent;       /* user_agent.original */
};

/* The SERVER span of a request, with the ids trace_begin gave tc (the span id is tc->span_id,
 * the parent tc->parent_id when the trace was continued), named "{method} {route}" ("{method}"
 * without a route; "HTTP" for a method outside RFC 9110's, recorded as http.request.method
 * "_OTHER" with http.request.method_original). NULL when out of memory or tc's ids are
 * malformed. The caller owns the span. */
struct span *span_http_server_new(const struct trace_context *tc,
                                  const struct span_http_request *req, int64_t start_unix_ns);
/* Records http.response.status_code and ends the span; a 5xx sets error.type to the status
 * code and the span status to ERROR (a 4xx is the client's error: status stays UNSET). */
void span_http_server_end(struct span *sp, int status_code, int64_t end_unix_ns);

/* ---- ledgerd's internal spans ---------------------------------------------------------------- */

/* "idempotency lookup" (INTERNAL) under a request span; end it with
 * span_idempotency_lookup_end, which records ledgerd.idempotency.hit. */
struct span *span_idempotency_lookup_new(const struct span *request, int64_t start_unix_ns);
void span_idempotency_lookup_end(struct span *sp, bool hit, int64_t end_unix_ns);

/* "commit queue wait" (INTERNAL) under a request span: from commit_submit to the moment the
 * commit worker took the command. Created already ended. */
struct span *span_queue_wait_new(const struct span *request, int64_t queued_unix_ns,
                                 int64_t dequeued_unix_ns);

/* "commit batch" (INTERNAL): the root of a new trace for one group commit, carrying
 * ledgerd.commit.commands and ledgerd.commit.items; link every request it carried with
 * span_add_link_ctx (past LIMIT_SPAN_LINKS_MAX the links are counted as dropped). */
struct span *span_batch_commit_new(uint32_t commands, uint32_t items, int64_t start_unix_ns);

/* "COMMIT" (CLIENT, database conventions: db.system.name db_system ("sqlite", "postgresql"),
 * db.operation.name COMMIT,
 * db.operation.batch.size commands) under a batch span: the database transaction itself. */
struct span *span_db_commit_new(const struct span *batch, const char *db_system, uint32_t commands,
                                int64_t start_unix_ns);

/* ---- Sampler ----------------------------------------------------------------------------------
 */

/* OTEL_TRACES_SAMPLER values. */
enum span_sampler_kind {
    SPAN_SAMPLER_ALWAYS_ON,
    SPAN_SAMPLER_ALWAYS_OFF,
    SPAN_SAMPLER_TRACEIDRATIO,
    SPAN_SAMPLER_PARENTBASED_ALWAYS_ON,
    SPAN_SAMPLER_PARENTBASED_ALWAYS_OFF,
    SPAN_SAMPLER_PARENTBASED_TRACEIDRATIO,
};

struct span_sampler {
    enum span_sampler_kind kind;
    double ratio;       /* for the ratio samplers, 0..1 */
    uint64_t threshold; /* a trace is sampled when its 56 random bits are >= this */
};

/* Sets up a sampler from OTEL_TRACES_SAMPLER's and OTEL_TRACES_SAMPLER_ARG's values (NULL or
 * "" when unset: parentbased_always_on, ratio 1.0). The ratio must be a decimal number in
 * [0, 1]. Returns 0, or -EINVAL with a one-line reason in err. */
int span_sampler_init(struct span_sampler *s, const char *name, const char *arg, char *err,
                      size_t err_len);

/* The sampling decision for a span of trace_id. has_parent: the trace came in with a valid
 * traceparent; parent_sampled: its sampled flag. A parent-based sampler follows the parent; a
 * ratio decides on the trace id alone (the last 56 bits, as the W3C Trace Context Level 2
 * random trace id flag and OpenTelemetry's TraceIdRatioBased prescribe), so every service
 * using the same ratio takes the same decision for the same trace. Pure and thread-safe. */
bool span_sampler_should_sample(const struct span_sampler *s,
                                const uint8_t trace_id[SPAN_TRACE_ID_BYTES], bool has_parent,
                                bool parent_sampled);

/* ---- key=value lists (OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_HEADERS) ------------------ */

/* A bounded list of string pairs. Decoded text is never longer than its input, so the arena
 * holds any accepted input plus what span_kv_set adds. */
struct span_kv {
    uint16_t key_at;
    uint16_t value_at;
};

struct span_kv_list {
    struct span_kv items[LIMIT_OTEL_KV_PAIRS_MAX];
    uint32_t count;
    uint32_t text_used;
    char text[LIMIT_OTEL_KV_TEXT_BYTES];
};

void span_kv_init(struct span_kv_list *l);
const char *span_kv_key(const struct span_kv_list *l, size_t i);
const char *span_kv_value(const struct span_kv_list *l, size_t i);
/* The value of key, or NULL. */
const char *span_kv_get(const struct span_kv_list *l, const char *key);
/* Adds or replaces key's value. 0, or -ENOSPC when the list or its arena is full. */
int span_kv_set(struct span_kv_list *l, const char *key, const char *value);

/* Parses "key1=value1,key2=value2" (len bytes) into l as the OpenTelemetry specification's
 * OTEL_RESOURCE_ATTRIBUTES format: W3C Baggage list members without properties, optional
 * whitespace around members, keys and values; keys are tokens (RFC 9110 §5.6.2), values
 * baggage-octets with percent-encoding, decoded here. A later duplicate key wins. Refuses,
 * with -EINVAL and a reason naming the member in err, and leaving l empty: empty members or
 * keys, a member without '=', a bad octet, a '%' not followed by two hex digits, a value that
 * decodes to a NUL or a control character or to invalid UTF-8, more than LIMIT_OTEL_KV_PAIRS_MAX
 * members, more than LIMIT_OTEL_KV_BYTES_MAX bytes. Keys and values are appended to l (it may
 * already hold pairs). Empty input is an empty list. */
int span_kv_parse(struct span_kv_list *l, const char *s, size_t len, char *err, size_t err_len);

/* ---- Resource ---------------------------------------------------------------------------------
 */

/* The resource of this process: its attributes (all strings). */
struct span_resource {
    struct span_kv_list attrs;
};

/* Builds the resource from the environment: OTEL_RESOURCE_ATTRIBUTES first, then
 * service.name = OTEL_SERVICE_NAME (else the attribute, else "ledgerd"),
 * service.version = version, service.instance.id = the attribute or a random UUID (v4) per
 * call, deployment.environment.name = LEDGERD_ENV (else the attribute, else "dev"),
 * service.tier = LEDGERD_SERVICE_TIER (else the attribute, else "critical").
 * getenv_fn lets tests supply variables. Returns 0, or -EINVAL with a reason in err naming the
 * variable. */
int span_resource_from_env(struct span_resource *r, config_getenv_fn getenv_fn, const char *version,
                           char *err, size_t err_len);

#endif
