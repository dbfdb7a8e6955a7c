/*
 * metrics.h — counters, gauges and histograms, and their exposition for GET /metrics in the
 * Prometheus text format 0.0.4 or OpenMetrics 1.0.
 *
 * Two layers. The registry is generic: a table of metric families (name, help, type, label
 * dimensions with bounded value sets, histogram buckets) fixed when it is created, whose
 * series are addressed by index. Counting takes no lock: every thread adds to its own shard of
 * cells (a thread-local shard index taken on first use, at most LIMIT_METRICS_SHARDS shards,
 * each on cache lines of its own, relaxed atomic adds), and a scrape sums the shards.
 *
 * Above it, ledgerd's catalogue: one process-wide registry holding every metric of
 * docs/operations/metrics.md, addressed by enum metrics_id, created on first use.
 */
#ifndef LEDGERD_OBS_METRICS_H
#define LEDGERD_OBS_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/limits.h"

/* ---------------------------------------------------------------------------------------
 * The registry
 * ------------------------------------------------------------------------------------- */

enum metrics_type { METRICS_COUNTER, METRICS_GAUGE, METRICS_HISTOGRAM };

/* One label dimension: a name and a bounded set of values, either a static array (values) or
 * a function giving value i, or NULL for a value not in use (such series are not rendered). */
struct metrics_label {
    const char *name;
    const char *const *values;
    const char *(*value_fn)(size_t i);
    size_t values_count;
};

/* One metric family. Values are integers in the family's own unit; the exposition divides by
 * scale (1e9 turns nanoseconds into seconds exactly, with no floating point on the hot path). */
/* A static table of a few dozen rows: its fields stay in reading order rather than packed. */
/* NOLINTNEXTLINE(clang-analyzer-optin.performance.Padding) */
struct metrics_family_def {
    const char *name; /* sample name as exposed; counters end in _total */
    const char *help;
    enum metrics_type type;
    const struct metrics_label *labels; /* at most LIMIT_METRICS_LABELS_MAX */
    size_t labels_count;
    const uint64_t *bounds; /* histograms: ascending inclusive upper bounds ("le") */
    size_t bounds_count;    /* at most LIMIT_METRICS_BUCKETS_MAX; +Inf is implied */
    uint64_t scale;         /* units per exposed unit; 0 means 1 */
    bool sparse;            /* render only the series that are not zero */
    bool info;              /* a gauge of value 1 named *_info: OpenMetrics type "info" */
};

struct metrics_registry;

/* Creates a registry for defs[0..count) (which must outlive it). Series are addressed as
 * (family index, series index); the series index of label value indexes (i0, i1, ...) is
 * ((i0 * n1) + i1) * n2 + i2 ..., n being each dimension's values_count (see
 * metrics_series_of). 0, -EINVAL for a malformed table, -ENOMEM. */
int metrics_registry_new(const struct metrics_family_def *defs, size_t count,
                         struct metrics_registry **out);
/* Frees the registry; no thread may count into it any more. */
void metrics_registry_free(struct metrics_registry *r);

/* Series count of a family (the product of its dimensions' sizes). */
size_t metrics_series_count(const struct metrics_registry *r, size_t family);
/* The series index of the label value indexes idx[0..labels_count). */
size_t metrics_series_of(const struct metrics_registry *r, size_t family, const size_t *idx);

/* Counters: adds n. Lock-free, thread-safe; the hot-path operation. */
void metrics_reg_add(struct metrics_registry *r, size_t family, size_t series, uint64_t n);
/* Gauges: adds delta (may be negative), lock-free like a counter. */
void metrics_reg_gauge_add(struct metrics_registry *r, size_t family, size_t series, int64_t delta);
/* Gauges and counters collected at scrape time (a value read from elsewhere): sets the value.
 * A series is either set or added to, never both (the exposed value is the set value plus every
 * add). Thread-safe. */
void metrics_reg_set(struct metrics_registry *r, size_t family, size_t series, int64_t value);
/* Histograms: counts value in the first bucket whose bound is >= value (le is inclusive) and
 * adds it to the sum. Lock-free, thread-safe. */
void metrics_reg_observe(struct metrics_registry *r, size_t family, size_t series, uint64_t value);

/* Current value of a counter or gauge series (the sum over shards). For collectors and tests. */
int64_t metrics_reg_value(const struct metrics_registry *r, size_t family, size_t series);
/* Count and sum of a histogram series. */
void metrics_reg_histogram(const struct metrics_registry *r, size_t family, size_t series,
                           uint64_t *count_out, uint64_t *sum_out);

enum metrics_format { METRICS_FORMAT_PROMETHEUS, METRICS_FORMAT_OPENMETRICS };

/* The exposition format an Accept header value (exactly len bytes, not NUL-terminated, may be
 * NULL) asks for: OpenMetrics when it accepts application/openmetrics-text with a q-value no
 * lower than that of text/plain; the Prometheus text format otherwise, garbage included. Only
 * the first LIMIT_METRICS_ACCEPT_BYTES_MAX bytes are looked at. */
enum metrics_format metrics_format_negotiate(const char *accept, size_t len);
/* The Content-Type of a format, with its version and charset. */
const char *metrics_content_type(enum metrics_format f);

/* Appends every family (HELP and TYPE lines, then its series) in format f; OpenMetrics ends
 * with "# EOF". 0, or -ENOSPC/-ENOMEM from the buffer (the buffer may hold a partial text). */
int metrics_reg_render(const struct metrics_registry *r, enum metrics_format f, struct buf *out);

/* ---------------------------------------------------------------------------------------
 * ledgerd's metrics (the process-wide registry)
 * ------------------------------------------------------------------------------------- */

enum metrics_id {
    METRIC_HTTP_REQUESTS,      /* {method, route, code} */
    METRIC_HTTP_DURATION,      /* {method, route, status_class}, ns */
    METRIC_HTTP_IN_FLIGHT,     /* set at scrape */
    METRIC_HTTP_BODY_BYTES,    /* {route} */
    METRIC_IDEM_LOOKUPS,       /* {result}: enum metrics_idem_result */
    METRIC_DB_POOL_SIZE,       /* {role}: enum metrics_db_role; added to on open/close */
    METRIC_DB_POOL_CONNS,      /* {role, state}: in_use added to, idle derived at scrape */
    METRIC_DB_ACQUIRE_WAIT,    /* {role}, ns */
    METRIC_DB_ACQUIRE_TIMEOUT, /* {role} */
    METRIC_COMMIT_QUEUE_DEPTH, /* set at scrape */
    METRIC_COMMIT_QUEUE_CAPACITY,
    METRIC_COMMIT_QUEUE_REJECTIONS, /* {reason}: enum metrics_reject_reason */
    METRIC_COMMIT_QUEUE_WAIT,       /* ns */
    METRIC_COMMIT_BATCH_COMMANDS,
    METRIC_COMMIT_BATCH_ITEMS,
    METRIC_COMMIT_DURATION, /* ns */
    METRIC_COMMIT_FAILURES,
    METRIC_TRANSFERS, /* {result}: enum ledger_result */
    METRIC_ACCOUNTS,  /* {result}: enum ledger_result */
    METRIC_PENDING_EXPIRED,
    METRIC_PROCESS_CPU, /* ns, set by metrics_collect */
    METRIC_PROCESS_RSS,
    METRIC_PROCESS_VMS,
    METRIC_PROCESS_OPEN_FDS,
    METRIC_PROCESS_MAX_FDS,
    METRIC_PROCESS_START_TIME, /* ns since the epoch */
    METRIC_PROCESS_THREADS,
    METRIC_BUILD_INFO, /* {version, commit} = 1 */
    METRIC_LOG_DROPPED,
    METRIC_SPANS_DROPPED,
    METRIC_SPANS_EXPORTED,
    METRIC_AUTH_FAILURES, /* {reason}: registered by the authenticator */
    METRIC_AUDIT_RECORDS, /* appended by this process */
    METRIC_AUDIT_DROPPED,
    METRIC_UP,                  /* set at scrape from readiness */
    METRIC_DB_POOL_MAX,         /* {role}: the pool's configured size */
    METRIC_DB_RETRIES,          /* {reason}: enum metrics_db_retry_reason */
    METRIC_DB_WORK_QUEUE_DEPTH, /* requests waiting for a database worker thread */
    METRIC_DB_WORK_REJECTIONS,  /* requests refused with 503: the database work queue was full */
    METRIC_CACHE_LOOKUPS,       /* {result}: enum metrics_cache_result */
    METRIC_CACHE_WRITES,        /* {result}: enum metrics_cache_write_result */
    METRIC_CACHE_BREAKER_STATE, /* {state}: 1 for the current enum metrics_breaker_state */
    METRIC_CACHE_BREAKER_TRANSITIONS, /* {state}: transitions into each state */
    METRIC_COUNT
};

enum metrics_idem_result {
    METRICS_IDEM_HIT,
    METRICS_IDEM_MISS,
    METRICS_IDEM_REUSED,
    METRICS_IDEM_IN_FLIGHT,
};
enum metrics_db_role { METRICS_DB_WRITER, METRICS_DB_READER };
enum metrics_db_state { METRICS_DB_IN_USE, METRICS_DB_IDLE };
enum metrics_reject_reason { METRICS_REJECT_FULL, METRICS_REJECT_SHUTTING_DOWN };
/* Why a write transaction was run again (a concurrent backend). */
enum metrics_db_retry_reason {
    METRICS_DB_RETRY_SERIALIZATION, /* a serialization failure, deadlock or concurrent insert */
    METRICS_DB_RETRY_CONNECTION,    /* the connection broke before COMMIT was sent */
};
/* The Redis idempotency cache: a lookup's outcome. bypassed: not asked (breaker open or no
 * connection); error: asked, failed or timed out (the database answers). */
enum metrics_cache_result {
    METRICS_CACHE_HIT,
    METRICS_CACHE_MISS,
    METRICS_CACHE_ERROR,
    METRICS_CACHE_BYPASSED,
};
enum metrics_cache_write_result { METRICS_CACHE_WRITE_OK, METRICS_CACHE_WRITE_FAILED };
enum metrics_breaker_state {
    METRICS_BREAKER_CLOSED,
    METRICS_BREAKER_OPEN,
    METRICS_BREAKER_HALF_OPEN,
};

/* Label "method": GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS, other — index i is the method
 * whose enum http_method bit is 1 << i. Label "route": index 0 is "unmatched", then the
 * templates given to metrics_routes_register. */
#define METRICS_METHODS_COUNT 8
#define METRICS_ROUTE_UNMATCHED 0

/* The process-wide registry, created on first use (thread-safe). Never NULL: failing to
 * allocate it at start-up aborts, as a process without its metrics is not operable. */
struct metrics_registry *metrics_ledgerd(void);

/* Shorthands on the process-wide registry; same contracts as metrics_reg_*. */
void metrics_add(enum metrics_id id, size_t series, uint64_t n);
void metrics_gauge_add(enum metrics_id id, size_t series, int64_t delta);
void metrics_set(enum metrics_id id, size_t series, int64_t value);
void metrics_observe(enum metrics_id id, size_t series, uint64_t value);
int64_t metrics_value(enum metrics_id id, size_t series);

/* Names the route label's values 1..n (index 0 is "unmatched"); templates must be static.
 * Returns how many were taken (at most LIMIT_METRICS_ROUTES_MAX - 1). Call at start-up;
 * calling again with the same table is harmless. */
size_t metrics_routes_register(const char *const *templates, size_t n);
/* Names the result label's values 0..n-1 (the codes of enum ledger_result, in order); names
 * must be static. n must be at most LIMIT_METRICS_RESULTS_MAX. */
void metrics_results_register(const char *const *codes, size_t n);
/* Names the reason label of ledgerd_auth_failures_total: index i is names[i] (n at most
 * LIMIT_METRICS_RESULTS_MAX; unnamed indexes are left out). */
void metrics_auth_reasons_register(const char *const *names, size_t n);

/* Series of the HTTP families. status is the numeric status sent. */
size_t metrics_http_requests_series(size_t method, size_t route, int status);
size_t metrics_http_duration_series(size_t method, size_t route, int status);
/* Series of ledgerd_db_pool_connections. */
size_t metrics_db_conns_series(enum metrics_db_role role, enum metrics_db_state state);

/* Reads what is collected rather than counted: the process (/proc/self: CPU, memory, file
 * descriptors, threads, start time), log lines dropped, and the idle connections of the
 * database pool. Call before rendering. Thread-safe. */
void metrics_collect(void);
/* metrics_collect, then renders the process-wide registry. */
int metrics_render(enum metrics_format f, struct buf *out);

#endif
