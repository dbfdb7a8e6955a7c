/*
 * test_metrics.c — the metrics registry: counts from many threads (more than there are shards)
 * sum exactly; histogram buckets are inclusive at their bound; both exposition formats render
 * exactly as expected for a small registry; label values and help text are escaped; malformed
 * tables are refused; Accept negotiation, hostile headers included; and ledgerd's own
 * registry gives every family HELP and TYPE.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/buf.h"
#include "obs/metrics.h"

#define NS_PER_MS 1000000ull

/* ---------------------------------------------------------------------------------------
 * A small registry
 * ------------------------------------------------------------------------------------- */

static const char *const codes[] = {"200", "404"};
static const char *const methods[] = {"GET", "POST"};
static const char *const routes[] = {"/a", "/b", "/c"};
static const char *const versions[] = {"1.2"};
static const uint64_t latency_bounds_ns[] = {5 * NS_PER_MS, 1000 * NS_PER_MS};

static const struct metrics_label code_labels[] = {{"code", codes, NULL, 2}};
static const struct metrics_label http_labels[] = {{"method", methods, NULL, 2},
                                                   {"route", routes, NULL, 3}};
static const struct metrics_label version_labels[] = {{"version", versions, NULL, 1}};

enum { F_REQUESTS, F_TEMP, F_LATENCY, F_HTTP, F_BUILD, F_COUNT };

static const struct metrics_family_def small_defs[F_COUNT] = {
    [F_REQUESTS] = {"t_requests_total", "Requests \"quoted\" back\\slash\nnewline", METRICS_COUNTER,
                    code_labels, 1, NULL, 0, 0, false, false},
    [F_TEMP] = {"t_temp", "A gauge.", METRICS_GAUGE, NULL, 0, NULL, 0, 1000, false, false},
    [F_LATENCY] = {"t_latency_seconds", "Latency.", METRICS_HISTOGRAM, NULL, 0, latency_bounds_ns,
                   2, 1000000000, false, false},
    [F_HTTP] = {"t_http_total", "Sparse.", METRICS_COUNTER, http_labels, 2, NULL, 0, 0, true,
                false},
    [F_BUILD] = {"t_build_info", "Build.", METRICS_GAUGE, version_labels, 1, NULL, 0, 0, false,
                 true},
};

static struct metrics_registry *small_registry(void)
{
    struct metrics_registry *r = NULL;
    assert_int_equal(metrics_registry_new(small_defs, F_COUNT, &r), 0);
    metrics_reg_add(r, F_REQUESTS, 0, 2);
    metrics_reg_add(r, F_REQUESTS, 0, 1);
    metrics_reg_set(r, F_TEMP, 0, -1500);
    metrics_reg_observe(r, F_LATENCY, 0, 5 * NS_PER_MS);     /* on the first bound */
    metrics_reg_observe(r, F_LATENCY, 0, 5 * NS_PER_MS + 1); /* just past it */
    metrics_reg_observe(r, F_LATENCY, 0, 2000 * NS_PER_MS);  /* past every bound */
    size_t idx[2] = {1, 2};                                  /* POST /c */
    metrics_reg_add(r, F_HTTP, metrics_series_of(r, F_HTTP, idx), 2);
    metrics_reg_set(r, F_BUILD, 0, 1);
    return r;
}

static char *render(struct metrics_registry *r, enum metrics_format f)
{
    struct buf out;
    buf_init(&out, 1 << 20);
    assert_int_equal(metrics_reg_render(r, f, &out), 0);
    size_t len = 0;
    return buf_take(&out, &len);
}

static void test_prometheus_text_exactly(void **state)
{
    (void)state;
    struct metrics_registry *r = small_registry();
    char *text = render(r, METRICS_FORMAT_PROMETHEUS);
    assert_string_equal(text,
                        "# HELP t_requests_total Requests \"quoted\" back\\\\slash\\nnewline\n"
                        "# TYPE t_requests_total counter\n"
                        "t_requests_total{code=\"200\"} 3\n"
                        "t_requests_total{code=\"404\"} 0\n"
                        "# HELP t_temp A gauge.\n"
                        "# TYPE t_temp gauge\n"
                        "t_temp -1.5\n"
                        "# HELP t_latency_seconds Latency.\n"
                        "# TYPE t_latency_seconds histogram\n"
                        "t_latency_seconds_bucket{le=\"0.005\"} 1\n"
                        "t_latency_seconds_bucket{le=\"1\"} 2\n"
                        "t_latency_seconds_bucket{le=\"+Inf\"} 3\n"
                        "t_latency_seconds_sum 2.010000001\n"
                        "t_latency_seconds_count 3\n"
                        "# HELP t_http_total Sparse.\n"
                        "# TYPE t_http_total counter\n"
                        "t_http_total{method=\"POST\",route=\"/c\"} 2\n"
                        "# HELP t_build_info Build.\n"
                        "# TYPE t_build_info gauge\n"
                        "t_build_info{version=\"1.2\"} 1\n");
    free(text);
    metrics_registry_free(r);
}

static void test_openmetrics_text_exactly(void **state)
{
    (void)state;
    struct metrics_registry *r = small_registry();
    char *text = render(r, METRICS_FORMAT_OPENMETRICS);
    assert_string_equal(text, "# HELP t_requests Requests \\\"quoted\\\" back\\\\slash\\nnewline\n"
                              "# TYPE t_requests counter\n"
                              "t_requests_total{code=\"200\"} 3\n"
                              "t_requests_total{code=\"404\"} 0\n"
                              "# HELP t_temp A gauge.\n"
                              "# TYPE t_temp gauge\n"
                              "t_temp -1.5\n"
                              "# HELP t_latency_seconds Latency.\n"
                              "# TYPE t_latency_seconds histogram\n"
                              "t_latency_seconds_bucket{le=\"0.005\"} 1\n"
                              "t_latency_seconds_bucket{le=\"1.0\"} 2\n"
                              "t_latency_seconds_bucket{le=\"+Inf\"} 3\n"
                              "t_latency_seconds_sum 2.010000001\n"
                              "t_latency_seconds_count 3\n"
                              "# HELP t_http Sparse.\n"
                              "# TYPE t_http counter\n"
                              "t_http_total{method=\"POST\",route=\"/c\"} 2\n"
                              "# HELP t_build Build.\n"
                              "# TYPE t_build info\n"
                              "t_build_info{version=\"1.2\"} 1\n"
                              "# EOF\n");
    free(text);
    metrics_registry_free(r);
}

/* ---------------------------------------------------------------------------------------
 * Histogram bucket edges: le is inclusive
 * ------------------------------------------------------------------------------------- */

static const uint64_t edge_bounds[] = {1, 5, 10};
static const struct metrics_family_def edge_defs[] = {
    {"t_sizes", "Sizes.", METRICS_HISTOGRAM, NULL, 0, edge_bounds, 3, 0, false, false},
};

static void test_histogram_bounds_are_inclusive(void **state)
{
    (void)state;
    struct metrics_registry *r = NULL;
    assert_int_equal(metrics_registry_new(edge_defs, 1, &r), 0);
    const uint64_t values[] = {0, 1, 2, 5, 6, 10, 11, UINT64_MAX / 4};
    uint64_t sum = 0;
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        metrics_reg_observe(r, 0, 0, values[i]);
        sum += values[i];
    }
    char *text = render(r, METRICS_FORMAT_PROMETHEUS);
    char want[512];
    snprintf(want, sizeof(want),
             "# HELP t_sizes Sizes.\n"
             "# TYPE t_sizes histogram\n"
             "t_sizes_bucket{le=\"1\"} 2\n"    /* 0, 1 */
             "t_sizes_bucket{le=\"5\"} 4\n"    /* + 2, 5 */
             "t_sizes_bucket{le=\"10\"} 6\n"   /* + 6, 10 */
             "t_sizes_bucket{le=\"+Inf\"} 8\n" /* + 11, huge */
             "t_sizes_sum %llu\n"
             "t_sizes_count 8\n",
             (unsigned long long)sum);
    assert_string_equal(text, want);
    uint64_t count = 0;
    uint64_t got_sum = 0;
    metrics_reg_histogram(r, 0, 0, &count, &got_sum);
    assert_int_equal(count, 8);
    assert_true(got_sum == sum);
    free(text);
    metrics_registry_free(r);
}

/* ---------------------------------------------------------------------------------------
 * Many threads
 * ------------------------------------------------------------------------------------- */

#define THREADS (LIMIT_METRICS_SHARDS + 8) /* some threads must share a shard */
#define ADDS 20000

static const struct metrics_family_def thread_defs[] = {
    {"t_adds_total", "Adds.", METRICS_COUNTER, code_labels, 1, NULL, 0, 0, false, false},
    {"t_level", "Level.", METRICS_GAUGE, NULL, 0, NULL, 0, 0, false, false},
    {"t_obs", "Observations.", METRICS_HISTOGRAM, NULL, 0, edge_bounds, 3, 0, false, false},
};

static void *adder(void *arg)
{
    struct metrics_registry *r = arg;
    for (int i = 0; i < ADDS; i++) {
        metrics_reg_add(r, 0, (size_t)(i & 1), 1);
        metrics_reg_gauge_add(r, 1, 0, (i & 1) ? -3 : 2);
        metrics_reg_observe(r, 2, 0, (uint64_t)(i % 12));
    }
    return NULL;
}

static void test_counts_from_many_threads_sum_exactly(void **state)
{
    (void)state;
    struct metrics_registry *r = NULL;
    assert_int_equal(metrics_registry_new(thread_defs, 3, &r), 0);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, adder, r), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
    }
    assert_int_equal(metrics_reg_value(r, 0, 0), (int64_t)THREADS * ADDS / 2);
    assert_int_equal(metrics_reg_value(r, 0, 1), (int64_t)THREADS * ADDS / 2);
    /* Each thread: ADDS/2 times +2 and ADDS/2 times -3. */
    assert_int_equal(metrics_reg_value(r, 1, 0), -(int64_t)THREADS * ADDS / 2);
    uint64_t count = 0;
    uint64_t sum = 0;
    metrics_reg_histogram(r, 2, 0, &count, &sum);
    assert_int_equal(count, (uint64_t)THREADS * ADDS);
    uint64_t per_thread = 0;
    for (int i = 0; i < ADDS; i++) {
        per_thread += (uint64_t)(i % 12);
    }
    assert_true(sum == per_thread * THREADS);
    metrics_registry_free(r);
}

/* ---------------------------------------------------------------------------------------
 * Escaping
 * ------------------------------------------------------------------------------------- */

static const char *hostile_value(size_t i)
{
    static const char *const v[] = {"back\\slash", "say \"hi\"", "two\nlines", "a\\\"\n"};
    return v[i];
}

static const struct metrics_family_def escape_defs[] = {
    {"t_escaped_total", "Escapes.", METRICS_COUNTER,
     (const struct metrics_label[]){{"v", NULL, hostile_value, 4}}, 1, NULL, 0, 0, false, false},
};

static void test_label_values_are_escaped(void **state)
{
    (void)state;
    struct metrics_registry *r = NULL;
    assert_int_equal(metrics_registry_new(escape_defs, 1, &r), 0);
    for (int f = METRICS_FORMAT_PROMETHEUS; f <= METRICS_FORMAT_OPENMETRICS; f++) {
        char *text = render(r, (enum metrics_format)f);
        assert_non_null(strstr(text, "t_escaped_total{v=\"back\\\\slash\"} 0\n"));
        assert_non_null(strstr(text, "t_escaped_total{v=\"say \\\"hi\\\"\"} 0\n"));
        assert_non_null(strstr(text, "t_escaped_total{v=\"two\\nlines\"} 0\n"));
        assert_non_null(strstr(text, "t_escaped_total{v=\"a\\\\\\\"\\n\"} 0\n"));
        /* No raw line feed inside a sample: every line starts with '#' or the name. */
        for (const char *line = text; *line != '\0'; line = strchr(line, '\n') + 1) {
            assert_true(line[0] == '#' || strncmp(line, "t_escaped_total{", 16) == 0);
        }
        free(text);
    }
    metrics_registry_free(r);
}

/* ---------------------------------------------------------------------------------------
 * Malformed tables
 * ------------------------------------------------------------------------------------- */

static const uint64_t unsorted_bounds[] = {5, 1};
static const uint64_t equal_bounds[] = {5, 5};

static void expect_refused(const struct metrics_family_def *d)
{
    struct metrics_registry *r = NULL;
    assert_int_equal(metrics_registry_new(d, 1, &r), -EINVAL);
    assert_null(r);
}

static void test_malformed_tables_are_refused(void **state)
{
    (void)state;
    const struct metrics_family_def bad[] = {
        {"t_requests", "Counter without _total.", METRICS_COUNTER, NULL, 0, NULL, 0, 0, false,
         false},
        {"t-bad-name", "Bad name.", METRICS_GAUGE, NULL, 0, NULL, 0, 0, false, false},
        {"1t", "Starts with a digit.", METRICS_GAUGE, NULL, 0, NULL, 0, 0, false, false},
        {"t_h", "Unsorted.", METRICS_HISTOGRAM, NULL, 0, unsorted_bounds, 2, 0, false, false},
        {"t_h", "Equal bounds.", METRICS_HISTOGRAM, NULL, 0, equal_bounds, 2, 0, false, false},
        {"t_h", "No bounds.", METRICS_HISTOGRAM, NULL, 0, NULL, 0, 0, false, false},
        {"t_g", "Scale not a power of ten.", METRICS_GAUGE, NULL, 0, NULL, 0, 60, false, false},
        {"t_x", "Info not named _info.", METRICS_GAUGE, NULL, 0, NULL, 0, 0, false, true},
        {"t_h", "le is reserved.", METRICS_HISTOGRAM,
         (const struct metrics_label[]){{"le", codes, NULL, 2}}, 1, edge_bounds, 3, 0, false,
         false},
        {"t_g", "Label with no values.", METRICS_GAUGE,
         (const struct metrics_label[]){{"code", codes, NULL, 0}}, 1, NULL, 0, 0, false, false},
        {"t_g", "Bad label name.", METRICS_GAUGE,
         (const struct metrics_label[]){{"a:b", codes, NULL, 2}}, 1, NULL, 0, 0, false, false},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_refused(&bad[i]);
    }
}

/* ---------------------------------------------------------------------------------------
 * Accept negotiation
 * ------------------------------------------------------------------------------------- */

static enum metrics_format negotiate(const char *accept)
{
    return metrics_format_negotiate(accept, accept != NULL ? strlen(accept) : 0);
}

static void test_accept_negotiation(void **state)
{
    (void)state;
    const enum metrics_format P = METRICS_FORMAT_PROMETHEUS;
    const enum metrics_format O = METRICS_FORMAT_OPENMETRICS;
    /* What Prometheus 2.x sends. */
    assert_int_equal(negotiate("application/openmetrics-text;version=1.0.0,application/"
                               "openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q="
                               "0.5,*/*;q=0.1"),
                     O);
    assert_int_equal(negotiate("application/openmetrics-text"), O);
    assert_int_equal(negotiate("  Application/OpenMetrics-Text ; version=1.0.0 "), O);
    assert_int_equal(negotiate("text/plain;q=0.5, application/openmetrics-text;q=0.6"), O);
    assert_int_equal(negotiate("text/plain, application/openmetrics-text"), O); /* a tie */
    assert_int_equal(negotiate(NULL), P);
    assert_int_equal(negotiate(""), P);
    assert_int_equal(negotiate("*/*"), P);
    assert_int_equal(negotiate("text/plain"), P);
    assert_int_equal(negotiate("application/json"), P);
    assert_int_equal(negotiate("application/openmetrics-text;q=0"), P);
    assert_int_equal(negotiate("application/openmetrics-text;q=0.3,text/plain;q=0.9"), P);
    /* Malformed q-values drop their range rather than count as 1. */
    assert_int_equal(negotiate("application/openmetrics-text;q=2"), P);
    assert_int_equal(negotiate("application/openmetrics-text;q=1.5"), P);
    assert_int_equal(negotiate("application/openmetrics-text;q=0.12345"), P);
    assert_int_equal(negotiate("application/openmetrics-text;q=-1"), P);
    assert_int_equal(negotiate("application/openmetrics-text;q="), P);
    assert_int_equal(negotiate("application/openmetrics-textX"), P);
    /* Garbage: never crashes, answers the default. */
    const char *garbage[] = {",,,,", ";;;;",  ";q=1",
                             "\t",   "=,=;=", "q=1,application/openmetrics-text;q=abc"};
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
        assert_int_equal(negotiate(garbage[i]), P);
    }
    /* Empty and unknown parameters are ignored. */
    assert_int_equal(negotiate("application/openmetrics-text;;;;q"), O);
    /* Bytes after the length are not read, NUL bytes are ordinary bytes. */
    const char with_nul[] = "text/plain\0application/openmetrics-text";
    assert_int_equal(metrics_format_negotiate(with_nul, sizeof(with_nul) - 1), P);
    assert_int_equal(metrics_format_negotiate("application/openmetrics-text", 11), P);
    /* A huge header: only the first LIMIT_METRICS_ACCEPT_BYTES_MAX bytes count. */
    size_t big = 1u << 20;
    char *h = malloc(big);
    assert_non_null(h);
    memset(h, ',', big);
    const char om[] = "application/openmetrics-text";
    memcpy(h + big - sizeof(om) + 1, om, sizeof(om) - 1);
    assert_int_equal(metrics_format_negotiate(h, big), P);
    memcpy(h, om, sizeof(om) - 1);
    assert_int_equal(metrics_format_negotiate(h, big), O);
    /* Random bytes. */
    srand(7);
    for (int round = 0; round < 2000; round++) {
        size_t n = (size_t)(rand() % 200);
        for (size_t i = 0; i < n; i++) {
            h[i] = (char)(rand() % 256);
        }
        enum metrics_format f = metrics_format_negotiate(h, n);
        assert_true(f == P || f == O);
    }
    free(h);
    assert_non_null(strstr(metrics_content_type(P), "text/plain; version=0.0.4"));
    assert_non_null(strstr(metrics_content_type(O), "application/openmetrics-text; version=1.0.0"));
}

/* ---------------------------------------------------------------------------------------
 * ledgerd's registry
 * ------------------------------------------------------------------------------------- */

static void test_ledgerd_families_have_help_and_type(void **state)
{
    (void)state;
    static const char *const want[] = {
        "ledgerd_http_requests_total counter",
        "ledgerd_http_request_duration_seconds histogram",
        "ledgerd_http_requests_in_flight gauge",
        "ledgerd_http_request_body_bytes histogram",
        "ledgerd_idempotency_lookups_total counter",
        "ledgerd_db_pool_size gauge",
        "ledgerd_db_pool_connections gauge",
        "ledgerd_db_pool_acquire_wait_seconds histogram",
        "ledgerd_db_pool_acquire_timeouts_total counter",
        "ledgerd_commit_queue_depth gauge",
        "ledgerd_commit_queue_capacity gauge",
        "ledgerd_commit_queue_rejections_total counter",
        "ledgerd_commit_queue_wait_seconds histogram",
        "ledgerd_commit_batch_commands histogram",
        "ledgerd_commit_batch_items histogram",
        "ledgerd_commit_duration_seconds histogram",
        "ledgerd_commit_failures_total counter",
        "ledgerd_transfers_total counter",
        "ledgerd_accounts_total counter",
        "ledgerd_pending_transfers_expired_total counter",
        "process_cpu_seconds_total counter",
        "process_resident_memory_bytes gauge",
        "process_virtual_memory_bytes gauge",
        "process_open_fds gauge",
        "process_max_fds gauge",
        "process_start_time_seconds gauge",
        "process_threads gauge",
        "ledgerd_build_info gauge",
        "ledgerd_log_lines_dropped_total counter",
        "ledgerd_spans_dropped_total counter",
        "ledgerd_spans_exported_total counter",
        "ledgerd_up gauge",
    };
    static const char *const routes_table[] = {"/livez", "/v1/accounts/{id}"};
    metrics_routes_register(routes_table, 2);
    metrics_add(METRIC_HTTP_REQUESTS, metrics_http_requests_series(0, 2, 404), 1);
    metrics_observe(METRIC_HTTP_DURATION, metrics_http_duration_series(0, 2, 404), 1000);
    struct buf out;
    buf_init(&out, LIMIT_METRICS_SCRAPE_BYTES_MAX);
    assert_int_equal(metrics_render(METRICS_FORMAT_PROMETHEUS, &out), 0);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        char line[128];
        snprintf(line, sizeof(line), "\n# TYPE %s\n", want[i]);
        if (strstr(out.data, line) == NULL && strncmp(out.data, line + 1, strlen(line) - 1) != 0) {
            fail_msg("missing: %s", line);
        }
        char name[96];
        snprintf(name, sizeof(name), "# HELP %.*s ", (int)(strchr(want[i], ' ') - want[i]),
                 want[i]);
        assert_non_null(strstr(out.data, name));
    }
    assert_non_null(strstr(out.data, "ledgerd_http_requests_total{method=\"GET\",route=\"/v1/"
                                     "accounts/{id}\",code=\"404\"} 1\n"));
    assert_non_null(strstr(out.data, "ledgerd_http_request_duration_seconds_bucket{method="
                                     "\"GET\",route=\"/v1/accounts/{id}\",status_class=\"4xx\","
                                     "le=\"0.005\"} 1\n"));
    assert_non_null(strstr(out.data, "ledgerd_build_info{version=\""));
    assert_non_null(strstr(out.data, "\nprocess_threads "));
    assert_null(strstr(out.data, "\nprocess_threads 0\n"));
    buf_reset(&out);
    assert_int_equal(metrics_render(METRICS_FORMAT_OPENMETRICS, &out), 0);
    assert_non_null(strstr(out.data, "# TYPE ledgerd_http_requests counter\n"));
    assert_non_null(strstr(out.data, "# TYPE ledgerd_build info\n"));
    assert_true(out.len > 6 && strcmp(out.data + out.len - 6, "# EOF\n") == 0);
    buf_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prometheus_text_exactly),
        cmocka_unit_test(test_openmetrics_text_exactly),
        cmocka_unit_test(test_histogram_bounds_are_inclusive),
        cmocka_unit_test(test_counts_from_many_threads_sum_exactly),
        cmocka_unit_test(test_label_values_are_escaped),
        cmocka_unit_test(test_malformed_tables_are_refused),
        cmocka_unit_test(test_accept_negotiation),
        cmocka_unit_test(test_ledgerd_families_have_help_and_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
