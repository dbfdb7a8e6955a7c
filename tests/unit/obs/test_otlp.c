/*
 * test_otlp.c — the exporter against a real HTTP receiver on 127.0.0.1 (a socket server in a
 * thread of this test): batches arrive with the OTLP JSON shape and the configured headers;
 * 503 with Retry-After and the other retryable answers are retried, refusals are not; a dead
 * or silent collector never slows enqueue and never holds shutdown past its deadline; a full
 * queue drops and counts. Also the OTEL_* configuration and its refusals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/clock.h"
#include "obs/otlp.h"
#include "obs/span.h"
#include "obs/trace.h"

#define NS_PER_MS 1000000LL
#define RECV_REQUESTS_MAX 64
#define RECV_SCRIPT_MAX 16
#define RECV_BODY_BYTES_MAX (8u * 1024u * 1024u)

/* ---- the receiver ---------------------------------------------------------------------------- */

struct recv_request {
    char head[8192]; /* request line and headers */
    char *body;
    size_t body_len;
    int64_t at_mono_ns;
};

struct receiver {
    int listen_fd;
    uint16_t port;
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* Answers for the first requests in order (status, extra header lines); then 200. */
    int script_status[RECV_SCRIPT_MAX];
    const char *script_headers[RECV_SCRIPT_MAX];
    const char *script_body[RECV_SCRIPT_MAX];
    size_t script_len;
    bool hold;   /* wait before answering until released */
    bool silent; /* never answer */
    struct recv_request reqs[RECV_REQUESTS_MAX];
    size_t count;
};

static bool wait_readable(struct receiver *r, int fd)
{
    while (!atomic_load(&r->stop)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, 20);
        if (n > 0) {
            return true;
        }
        if (n < 0 && errno != EINTR) {
            return false;
        }
    }
    return false;
}

/* Reads one request; false when the peer went away first. */
static bool read_request(struct receiver *r, int fd, struct recv_request *req)
{
    size_t used = 0;
    char *end = NULL;
    while (end == NULL) {
        if (used + 1 >= sizeof(req->head) || !wait_readable(r, fd)) {
            return false;
        }
        ssize_t n = recv(fd, req->head + used, sizeof(req->head) - 1 - used, 0);
        if (n <= 0) {
            return false;
        }
        used += (size_t)n;
        req->head[used] = '\0';
        end = strstr(req->head, "\r\n\r\n");
    }
    size_t head_len = (size_t)(end - req->head) + 4;
    size_t content_length = 0;
    for (const char *p = req->head; (p = strchr(p, '\n')) != NULL; p++) {
        if (strncasecmp(p + 1, "Content-Length:", 15) == 0) {
            content_length = strtoul(p + 16, NULL, 10);
        }
    }
    if (content_length > RECV_BODY_BYTES_MAX) {
        return false;
    }
    req->body = malloc(content_length + 1);
    assert_non_null(req->body);
    size_t have = used - head_len;
    memcpy(req->body, req->head + head_len, have);
    req->head[head_len] = '\0';
    while (have < content_length) {
        if (!wait_readable(r, fd)) {
            return false;
        }
        ssize_t n = recv(fd, req->body + have, content_length - have, 0);
        if (n <= 0) {
            return false;
        }
        have += (size_t)n;
    }
    req->body[content_length] = '\0';
    req->body_len = content_length;
    req->at_mono_ns = clock_mono_ns();
    return true;
}

static void *receiver_main(void *arg)
{
    struct receiver *r = arg;
    while (!atomic_load(&r->stop)) {
        if (!wait_readable(r, r->listen_fd)) {
            continue;
        }
        int fd = accept(r->listen_fd, NULL, NULL);
        if (fd < 0) {
            continue;
        }
        struct recv_request req;
        memset(&req, 0, sizeof(req));
        if (!read_request(r, fd, &req)) {
            free(req.body);
            close(fd);
            continue;
        }
        pthread_mutex_lock(&r->lock);
        size_t index = r->count;
        if (r->count < RECV_REQUESTS_MAX) {
            r->reqs[r->count++] = req;
        } else {
            free(req.body);
        }
        pthread_cond_broadcast(&r->cond);
        while ((r->hold || r->silent) && !atomic_load(&r->stop)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 20 * NS_PER_MS;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&r->cond, &r->lock, &ts);
        }
        int status = index < r->script_len ? r->script_status[index] : 200;
        const char *extra = index < r->script_len && r->script_headers[index] != NULL
                                ? r->script_headers[index]
                                : "";
        const char *body =
            index < r->script_len && r->script_body[index] != NULL ? r->script_body[index] : "{}";
        pthread_mutex_unlock(&r->lock);
        char resp[1024];
        int n = snprintf(resp, sizeof(resp),
                         "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: "
                         "%zu\r\nConnection: close\r\n%s\r\n%s",
                         status, strlen(body), extra, body);
        if (!atomic_load(&r->stop)) {
            (void)send(fd, resp, (size_t)n, MSG_NOSIGNAL);
        }
        close(fd);
    }
    return NULL;
}

static void receiver_start(struct receiver *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    r->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(r->listen_fd >= 0);
    int one = 1;
    setsockopt(r->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(r->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(r->listen_fd, 16), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(r->listen_fd, (struct sockaddr *)&a, &len), 0);
    r->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&r->thread, NULL, receiver_main, r), 0);
}

static void receiver_release(struct receiver *r)
{
    pthread_mutex_lock(&r->lock);
    r->hold = false;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

static size_t receiver_count(struct receiver *r)
{
    pthread_mutex_lock(&r->lock);
    size_t n = r->count;
    pthread_mutex_unlock(&r->lock);
    return n;
}

/* Waits up to timeout_ms for the receiver to have n requests. */
static bool receiver_wait(struct receiver *r, size_t n, int timeout_ms)
{
    int64_t until = clock_mono_ns() + timeout_ms * NS_PER_MS;
    while (receiver_count(r) < n) {
        if (clock_mono_ns() > until) {
            return false;
        }
        usleep(5000);
    }
    return true;
}

static void receiver_stop(struct receiver *r)
{
    atomic_store(&r->stop, true);
    pthread_mutex_lock(&r->lock);
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->thread, NULL);
    close(r->listen_fd);
    for (size_t i = 0; i < r->count; i++) {
        free(r->reqs[i].body);
    }
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
}

/* The value of header name in a recorded request ("" when absent), into out. */
static const char *header_of(const struct recv_request *req, const char *name, char *out,
                             size_t out_len)
{
    out[0] = '\0';
    size_t name_len = strlen(name);
    for (const char *p = req->head; (p = strchr(p, '\n')) != NULL; p++) {
        if (strncasecmp(p + 1, name, name_len) == 0 && p[1 + name_len] == ':') {
            const char *v = p + 2 + name_len;
            while (*v == ' ') {
                v++;
            }
            size_t len = strcspn(v, "\r\n");
            if (len >= out_len) {
                len = out_len - 1;
            }
            memcpy(out, v, len);
            out[len] = '\0';
            break;
        }
    }
    return out;
}

/* ---- helpers --------------------------------------------------------------------------------- */

static const char *const *fake_env;

static const char *fake_getenv(const char *name)
{
    for (size_t i = 0; fake_env != NULL && fake_env[i] != NULL; i += 2) {
        if (strcmp(fake_env[i], name) == 0) {
            return fake_env[i + 1];
        }
    }
    return NULL;
}

/* A config for a receiver on port, fast timers for tests; fields may be changed after. */
static void test_config(struct otlp_config *cfg, uint16_t port)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1/traces", (unsigned)port);
    const char *env[] = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url, NULL};
    fake_env = env;
    char err[256];
    assert_int_equal(otlp_config_load(cfg, fake_getenv, "9.9.9", err, sizeof(err)), 0);
    fake_env = NULL;
    assert_true(cfg->enabled);
    cfg->schedule_delay_ms = 50;
    cfg->backoff_initial_ms = 10;
    cfg->backoff_max_ms = 40;
    cfg->timeout_ms = 5000;
}

/* A finished server span of a new, sampled trace. */
static struct span *request_span(int i)
{
    struct trace_context tc;
    trace_begin(&tc, NULL, 0, NULL, 0);
    assert_true(otlp_sample(&tc));
    struct span_http_request req = {
        .method = "POST", .path = "/v1/transfers", .route = "/v1/transfers", .server_port = 8080};
    struct span *sp = span_http_server_new(&tc, &req, 1000 + i);
    assert_non_null(sp);
    span_http_server_end(sp, 201, 2000 + i);
    return sp;
}

static json_t *spans_of(json_t *root)
{
    json_t *rs = json_array_get(json_object_get(root, "resourceSpans"), 0);
    json_t *ss = json_array_get(json_object_get(rs, "scopeSpans"), 0);
    return json_object_get(ss, "spans");
}

/* Waits up to timeout_ms until the exported count reaches n. */
static bool wait_exported(uint64_t n, int timeout_ms)
{
    int64_t until = clock_mono_ns() + timeout_ms * NS_PER_MS;
    while (otlp_spans_exported_total() < n) {
        if (clock_mono_ns() > until) {
            return false;
        }
        usleep(5000);
    }
    return true;
}

static int64_t ms_since(int64_t start_ns)
{
    return (clock_mono_ns() - start_ns) / NS_PER_MS;
}

/* ---- configuration -----------------------------------------------------------------------------
 */

static void test_config_from_env(void **state)
{
    (void)state;
    static struct otlp_config cfg;
    char err[256];

    fake_env = NULL;
    assert_int_equal(otlp_config_load(&cfg, fake_getenv, "1.0", err, sizeof(err)), 0);
    assert_false(cfg.enabled); /* no endpoint: off */
    assert_int_equal(cfg.queue_spans_max, LIMIT_OTLP_QUEUE_SPANS_DEFAULT);
    assert_int_equal(cfg.batch_spans_max, LIMIT_OTLP_BATCH_SPANS_DEFAULT);
    assert_int_equal(cfg.schedule_delay_ms, LIMIT_OTLP_SCHEDULE_DELAY_MS_DEFAULT);
    assert_int_equal(cfg.timeout_ms, LIMIT_OTLP_TIMEOUT_MS_DEFAULT);
    assert_int_equal(cfg.sampler.kind, SPAN_SAMPLER_PARENTBASED_ALWAYS_ON);

    const char *env[] = {"OTEL_EXPORTER_OTLP_ENDPOINT",
                         "http://collector:4318/",
                         "OTEL_EXPORTER_OTLP_HEADERS",
                         "api-key=s%3Dcret,x-tenant=a",
                         "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                         "x-tenant=b",
                         "OTEL_EXPORTER_OTLP_TIMEOUT",
                         "2500",
                         "OTEL_BSP_MAX_QUEUE_SIZE",
                         "100",
                         "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                         "10",
                         "OTEL_BSP_SCHEDULE_DELAY",
                         "250",
                         "OTEL_TRACES_SAMPLER",
                         "parentbased_traceidratio",
                         "OTEL_TRACES_SAMPLER_ARG",
                         "0.25",
                         "OTEL_EXPORTER_OTLP_PROTOCOL",
                         "http/json",
                         NULL};
    fake_env = env;
    assert_int_equal(otlp_config_load(&cfg, fake_getenv, "1.0", err, sizeof(err)), 0);
    assert_true(cfg.enabled);
    assert_string_equal(cfg.endpoint, "http://collector:4318/v1/traces");
    assert_string_equal(span_kv_get(&cfg.headers, "api-key"), "s=cret");
    assert_string_equal(span_kv_get(&cfg.headers, "x-tenant"), "b");
    assert_int_equal(cfg.timeout_ms, 2500);
    assert_int_equal(cfg.queue_spans_max, 100);
    assert_int_equal(cfg.batch_spans_max, 10);
    assert_int_equal(cfg.schedule_delay_ms, 250);
    assert_int_equal(cfg.sampler.kind, SPAN_SAMPLER_PARENTBASED_TRACEIDRATIO);
    assert_true(cfg.sampler.ratio == 0.25);
    assert_string_equal(span_kv_get(&cfg.resource.attrs, "service.version"), "1.0");

    /* The signal-specific endpoint is used as it is. */
    const char *env2[] = {"OTEL_EXPORTER_OTLP_ENDPOINT",
                          "http://a:4318",
                          "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                          "https://b/custom/path",
                          "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
                          "700",
                          "OTEL_EXPORTER_OTLP_TIMEOUT",
                          "9000",
                          NULL};
    fake_env = env2;
    assert_int_equal(otlp_config_load(&cfg, fake_getenv, "1.0", err, sizeof(err)), 0);
    assert_string_equal(cfg.endpoint, "https://b/custom/path");
    assert_int_equal(cfg.timeout_ms, 700);
    const char *env3[] = {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318", NULL};
    fake_env = env3;
    assert_int_equal(otlp_config_load(&cfg, fake_getenv, "1.0", err, sizeof(err)), 0);
    assert_string_equal(cfg.endpoint, "http://a:4318/v1/traces");

    /* Switched off on purpose. */
    const char *off1[] = {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://a", "OTEL_SDK_DISABLED", "true",
                          NULL};
    fake_env = off1;
    assert_int_equal(otlp_config_load(&cfg, fake_getenv, "1.0", err, sizeof(err)), 0);
    assert_false(cfg.enabled);
    const char *off2[] = {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://a", "OTEL_TRACES_EXPORTER", "none",
                          NULL};
    fake_env = off2;
    assert_int_equal(otlp_config_load(&cfg, fake_getenv, "1.0", err, sizeof(err)), 0);
    assert_false(cfg.enabled);
    fake_env = NULL;
}

static void test_config_refused(void **state)
{
    (void)state;
    static struct otlp_config cfg;
    static const struct {
        const char *name;
        const char *value;
    } bad[] = {
        {"OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://collector"},
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://a b"},
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://"},
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https:///path"},
        {"OTEL_EXPORTER_OTLP_HEADERS", "authorization"},
        {"OTEL_EXPORTER_OTLP_HEADERS", "x=a%0D%0AHost: evil"},
        {"OTEL_EXPORTER_OTLP_TRACES_HEADERS", "bad key=v"},
        {"OTEL_EXPORTER_OTLP_TIMEOUT", "-1"},
        {"OTEL_EXPORTER_OTLP_TIMEOUT", "0"},
        {"OTEL_EXPORTER_OTLP_TIMEOUT", "10s"},
        {"OTEL_EXPORTER_OTLP_TIMEOUT", "99999999999"},
        {"OTEL_BSP_MAX_QUEUE_SIZE", "0"},
        {"OTEL_BSP_MAX_QUEUE_SIZE", "1000000"},
        {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096"}, /* more than the default queue */
        {"OTEL_BSP_SCHEDULE_DELAY", "soon"},
        {"OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"},
        {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"},
        {"OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"},
        {"OTEL_TRACES_EXPORTER", "zipkin"},
        {"OTEL_TRACES_SAMPLER", "parentbased_jaeger_remote"},
        {"OTEL_RESOURCE_ATTRIBUTES", "a=%"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *env[] = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                             "http://127.0.0.1:4318/v1/traces", bad[i].name, bad[i].value, NULL};
        /* An endpoint under test stands alone: the traces endpoint would take precedence. */
        const char *const *e = strstr(bad[i].name, "ENDPOINT") != NULL ? env + 2 : env;
        fake_env = e;
        char err[256] = "";
        if (otlp_config_load(&cfg, fake_getenv, "1.0", err, sizeof(err)) != -EINVAL) {
            fail_msg("accepted %s=%s", bad[i].name, bad[i].value);
        }
        /* The reason names the variable. */
        if (strstr(err, bad[i].name) == NULL && strstr(err, "OTEL_") == NULL) {
            fail_msg("%s: unclear error: %s", bad[i].name, err);
        }
        assert_false(cfg.enabled);
    }
    fake_env = NULL;
}

/* ---- tracing off ------------------------------------------------------------------------------
 */

static void test_disabled_costs_nothing(void **state)
{
    (void)state;
    static struct otlp_config cfg;
    char err[256];
    fake_env = NULL;
    assert_int_equal(otlp_config_load(&cfg, fake_getenv, "1.0", err, sizeof(err)), 0);
    assert_int_equal(otlp_start(&cfg), 0);
    assert_false(otlp_enabled());
    struct trace_context tc;
    trace_begin(&tc, NULL, 0, NULL, 0);
    struct trace_context before = tc;
    assert_false(otlp_sample(&tc));
    assert_memory_equal(&tc, &before, sizeof(tc));
    assert_null(otlp_batch_span_new(true, 1, 1, 1));
    otlp_shutdown(clock_mono_ns()); /* a no-op */
    assert_int_equal(otlp_spans_exported_total(), 0);
}

static void test_sample_sets_flags(void **state)
{
    (void)state;
    static struct otlp_config cfg;
    test_config(&cfg, 9); /* never contacted: nothing is enqueued */
    char err[256];
    assert_int_equal(
        span_sampler_init(&cfg.sampler, "parentbased_traceidratio", "0", err, sizeof(err)), 0);
    assert_int_equal(otlp_start(&cfg), 0);
    assert_int_equal(otlp_start(&cfg), -EALREADY);
    struct trace_context tc;
    trace_begin(&tc, NULL, 0, NULL, 0);
    assert_int_equal(tc.flags, 1);
    assert_false(otlp_sample(&tc)); /* a root at ratio 0 */
    assert_int_equal(tc.flags & 1, 0);
    const char *sampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    trace_begin(&tc, sampled, strlen(sampled), NULL, 0);
    assert_true(otlp_sample(&tc)); /* the parent decided */
    assert_int_equal(tc.flags & 1, 1);
    const char *unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    trace_begin(&tc, unsampled, strlen(unsampled), NULL, 0);
    assert_false(otlp_sample(&tc));
    assert_null(otlp_batch_span_new(false, 1, 1, 1)); /* no sampled request in the batch */
    struct span *batch = otlp_batch_span_new(true, 1, 1, 1);
    assert_non_null(batch);
    span_free(batch);
    otlp_shutdown(clock_mono_ns() + 1000 * NS_PER_MS);
    assert_false(otlp_enabled());
}

/* ---- export ------------------------------------------------------------------------------------
 */

static void test_batches_arrive_with_shape_and_headers(void **state)
{
    (void)state;
    static struct receiver r;
    receiver_start(&r);
    char base[64];
    snprintf(base, sizeof(base), "http://127.0.0.1:%u", (unsigned)r.port);
    const char *env[] = {"OTEL_EXPORTER_OTLP_ENDPOINT",
                         base,
                         "OTEL_EXPORTER_OTLP_HEADERS",
                         "authorization=Bearer%20t0k,x-tenant=general",
                         "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                         "x-tenant=traces",
                         "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                         "3",
                         "OTEL_BSP_SCHEDULE_DELAY",
                         "100",
                         "OTEL_SERVICE_NAME",
                         "ledgerd-test",
                         NULL};
    fake_env = env;
    static struct otlp_config cfg;
    char err[256];
    assert_int_equal(otlp_config_load(&cfg, fake_getenv, "9.9.9", err, sizeof(err)), 0);
    fake_env = NULL;
    assert_int_equal(otlp_start(&cfg), 0);
    assert_true(otlp_enabled());

    enum { N = 7 };
    char ids[N][17];
    for (int i = 0; i < N; i++) {
        struct span *sp = request_span(i);
        span_hex(sp->span_id, 8, ids[i]);
        otlp_enqueue(sp);
    }
    assert_true(wait_exported(N, 5000));
    otlp_shutdown(clock_mono_ns() + 2000 * NS_PER_MS);

    size_t n = receiver_count(&r);
    assert_true(n >= 3); /* 7 spans in batches of at most 3 */
    assert_int_equal(otlp_batches_exported_total(), n);
    assert_int_equal(otlp_spans_exported_total(), N);
    assert_int_equal(otlp_spans_dropped_total(), 0);
    int seen[N] = {0};
    size_t total = 0;
    for (size_t k = 0; k < n; k++) {
        struct recv_request *req = &r.reqs[k];
        char v[256];
        assert_memory_equal(req->head, "POST /v1/traces HTTP/1.1\r\n", 26);
        assert_string_equal(header_of(req, "Content-Type", v, sizeof(v)), "application/json");
        assert_string_equal(header_of(req, "authorization", v, sizeof(v)), "Bearer t0k");
        assert_string_equal(header_of(req, "x-tenant", v, sizeof(v)), "traces");
        assert_string_equal(header_of(req, "User-Agent", v, sizeof(v)), "ledgerd/9.9.9");
        json_t *root = json_loadb(req->body, req->body_len, 0, NULL);
        assert_non_null(root);
        json_t *res_attrs = json_object_get(
            json_object_get(json_array_get(json_object_get(root, "resourceSpans"), 0), "resource"),
            "attributes");
        bool named = false;
        size_t i;
        json_t *a;
        json_array_foreach(res_attrs, i, a)
        {
            if (strcmp(json_string_value(json_object_get(a, "key")), "service.name") == 0) {
                named = strcmp(json_string_value(
                                   json_object_get(json_object_get(a, "value"), "stringValue")),
                               "ledgerd-test") == 0;
            }
        }
        assert_true(named);
        json_t *spans = spans_of(root);
        assert_true(json_array_size(spans) >= 1 && json_array_size(spans) <= 3);
        json_t *s;
        json_array_foreach(spans, i, s)
        {
            const char *sid = json_string_value(json_object_get(s, "spanId"));
            assert_int_equal(strlen(json_string_value(json_object_get(s, "traceId"))), 32);
            assert_string_equal(json_string_value(json_object_get(s, "name")),
                                "POST /v1/transfers");
            assert_int_equal(json_integer_value(json_object_get(s, "kind")), 2);
            for (int k2 = 0; k2 < N; k2++) {
                seen[k2] += strcmp(ids[k2], sid) == 0 ? 1 : 0;
            }
            total++;
        }
        json_decref(root);
    }
    assert_int_equal(total, N);
    for (int k = 0; k < N; k++) {
        assert_int_equal(seen[k], 1); /* each span exactly once */
    }
    receiver_stop(&r);
}

static void test_retry_after_503(void **state)
{
    (void)state;
    static struct receiver r;
    receiver_start(&r);
    r.script_status[0] = 503;
    r.script_headers[0] = "Retry-After: 1\r\n";
    r.script_len = 1;
    static struct otlp_config cfg;
    test_config(&cfg, r.port);
    cfg.batch_spans_max = 2;
    assert_int_equal(otlp_start(&cfg), 0);
    otlp_enqueue(request_span(0));
    otlp_enqueue(request_span(1));
    assert_true(wait_exported(2, 5000));
    otlp_shutdown(clock_mono_ns() + 2000 * NS_PER_MS);

    assert_int_equal(receiver_count(&r), 2);
    /* The same batch again, after the second the collector asked for (the backoff alone would
     * have been at most 40 ms). */
    assert_int_equal(r.reqs[0].body_len, r.reqs[1].body_len);
    assert_memory_equal(r.reqs[0].body, r.reqs[1].body, r.reqs[0].body_len);
    int64_t gap_ms = (r.reqs[1].at_mono_ns - r.reqs[0].at_mono_ns) / NS_PER_MS;
    assert_true(gap_ms >= 900);
    assert_int_equal(otlp_export_failures_total(), 1);
    assert_int_equal(otlp_spans_exported_total(), 2);
    assert_int_equal(otlp_batches_exported_total(), 1);
    assert_int_equal(otlp_spans_dropped_total(), 0);
    receiver_stop(&r);
}

static void test_retryable_statuses_then_success(void **state)
{
    (void)state;
    static struct receiver r;
    receiver_start(&r);
    r.script_status[0] = 429;
    r.script_status[1] = 502;
    r.script_status[2] = 504;
    r.script_len = 3;
    static struct otlp_config cfg;
    test_config(&cfg, r.port);
    cfg.batch_spans_max = 1;
    assert_int_equal(otlp_start(&cfg), 0);
    otlp_enqueue(request_span(0));
    assert_true(wait_exported(1, 5000));
    otlp_shutdown(clock_mono_ns() + 2000 * NS_PER_MS);
    assert_int_equal(receiver_count(&r), 4);
    assert_int_equal(otlp_export_failures_total(), 3);
    assert_int_equal(otlp_spans_dropped_total(), 0);
    receiver_stop(&r);
}

static void test_refusal_not_retried_and_attempts_bounded(void **state)
{
    (void)state;
    static struct receiver r;
    receiver_start(&r);
    r.script_status[0] = 400; /* the batch is refused: retrying cannot help */
    for (size_t i = 1; i < RECV_SCRIPT_MAX; i++) {
        r.script_status[i] = 503; /* the collector stays overloaded */
    }
    r.script_len = RECV_SCRIPT_MAX;
    static struct otlp_config cfg;
    test_config(&cfg, r.port);
    cfg.batch_spans_max = 2;
    cfg.export_attempts_max = 3;
    assert_int_equal(otlp_start(&cfg), 0);
    otlp_enqueue(request_span(0));
    otlp_enqueue(request_span(1));
    assert_true(receiver_wait(&r, 1, 5000));
    usleep(300 * 1000);
    assert_int_equal(receiver_count(&r), 1);
    assert_int_equal(otlp_spans_dropped_export_failed_total(), 2);

    otlp_enqueue(request_span(2));
    otlp_enqueue(request_span(3));
    assert_true(receiver_wait(&r, 4, 5000)); /* three attempts */
    otlp_shutdown(clock_mono_ns() + 2000 * NS_PER_MS);
    assert_int_equal(receiver_count(&r), 4);
    assert_int_equal(otlp_spans_dropped_export_failed_total(), 4);
    assert_int_equal(otlp_spans_exported_total(), 0);
    assert_int_equal(otlp_export_failures_total(), 4);
    receiver_stop(&r);
}

static void test_partial_success_counts_rejected(void **state)
{
    (void)state;
    static struct receiver r;
    receiver_start(&r);
    r.script_status[0] = 200;
    r.script_body[0] = "{\"partialSuccess\":{\"rejectedSpans\":\"1\",\"errorMessage\":\"x\"}}";
    r.script_len = 1;
    static struct otlp_config cfg;
    test_config(&cfg, r.port);
    cfg.batch_spans_max = 3;
    assert_int_equal(otlp_start(&cfg), 0);
    for (int i = 0; i < 3; i++) {
        otlp_enqueue(request_span(i));
    }
    assert_true(wait_exported(2, 5000));
    otlp_shutdown(clock_mono_ns() + 2000 * NS_PER_MS);
    assert_int_equal(otlp_spans_exported_total(), 2);
    assert_int_equal(otlp_spans_dropped_export_failed_total(), 1);
    receiver_stop(&r);
}

static uint16_t closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd); /* nothing listens there now */
    return ntohs(a.sin_port);
}

static void test_dead_collector(void **state)
{
    (void)state;
    static struct otlp_config cfg;
    test_config(&cfg, closed_port());
    cfg.backoff_initial_ms = 200;
    cfg.backoff_max_ms = 400;
    assert_int_equal(otlp_start(&cfg), 0);

    enum { N = 10000 };
    int64_t start = clock_mono_ns();
    int returned = 0;
    for (int i = 0; i < N; i++) {
        struct trace_context tc;
        trace_begin(&tc, NULL, 0, NULL, 0);
        assert_true(otlp_sample(&tc));
        uint8_t trace_id[16];
        uint8_t span_id[8];
        assert_true(span_unhex(tc.trace_id, trace_id, 16));
        assert_true(span_unhex(tc.span_id, span_id, 8));
        otlp_enqueue(span_new(SPAN_KIND_SERVER, trace_id, span_id, NULL, "GET /healthz", 1));
        returned++;
    }
    print_message("%d enqueues against a dead collector took %lld ms\n", N,
                  (long long)ms_since(start));
    assert_int_equal(returned, N);
    assert_true(otlp_queue_depth() <= cfg.queue_spans_max);
    /* The queue and the batch being retried (about a second per batch here) cannot take
     * them all: the rest were refused at once. */
    assert_true(otlp_spans_dropped_queue_full_total() > 0);

    int64_t deadline_ms = 1500;
    start = clock_mono_ns();
    otlp_shutdown(start + deadline_ms * NS_PER_MS);
    int64_t took_ms = ms_since(start);
    print_message("shutdown took %lld ms (deadline %lld ms)\n", (long long)took_ms,
                  (long long)deadline_ms);
    assert_true(took_ms <= deadline_ms + 500); /* slack for a loaded machine */
    /* Every span is accounted for: none exported, all dropped and counted. */
    assert_int_equal(otlp_spans_exported_total(), 0);
    assert_int_equal(otlp_spans_dropped_total(), N);
    assert_int_equal(otlp_queue_depth(), 0);
    assert_true(otlp_export_failures_total() >= 1);
}

static void test_silent_collector_shutdown_deadline(void **state)
{
    (void)state;
    static struct receiver r;
    receiver_start(&r);
    r.silent = true; /* reads the request, never answers */
    static struct otlp_config cfg;
    test_config(&cfg, r.port);
    cfg.timeout_ms = 30000;
    cfg.batch_spans_max = 5;
    assert_int_equal(otlp_start(&cfg), 0);
    for (int i = 0; i < 5; i++) {
        otlp_enqueue(request_span(i));
    }
    assert_true(receiver_wait(&r, 1, 5000));
    int64_t start = clock_mono_ns();
    otlp_shutdown(start + 700 * NS_PER_MS);
    int64_t took_ms = ms_since(start);
    print_message("shutdown with a silent collector took %lld ms (deadline 700 ms)\n",
                  (long long)took_ms);
    assert_true(took_ms <= 700 + 500);
    assert_int_equal(otlp_spans_dropped_export_failed_total(), 5);
    assert_int_equal(otlp_spans_exported_total(), 0);
    receiver_stop(&r);
}

static void test_full_queue_drops_and_counts(void **state)
{
    (void)state;
    static struct receiver r;
    receiver_start(&r);
    r.hold = true; /* the first export hangs until released: the exporter is busy */
    static struct otlp_config cfg;
    test_config(&cfg, r.port);
    cfg.queue_spans_max = 4;
    cfg.batch_spans_max = 2;
    cfg.schedule_delay_ms = 60000;
    assert_int_equal(otlp_start(&cfg), 0);
    otlp_enqueue(request_span(0));
    otlp_enqueue(request_span(1));
    assert_true(receiver_wait(&r, 1, 5000));
    for (int i = 0; i < 10; i++) {
        otlp_enqueue(request_span(10 + i));
    }
    assert_int_equal(otlp_queue_depth(), 4);
    assert_int_equal(otlp_spans_dropped_queue_full_total(), 6);
    receiver_release(&r);
    assert_true(wait_exported(6, 5000));
    otlp_shutdown(clock_mono_ns() + 2000 * NS_PER_MS);
    assert_int_equal(otlp_spans_exported_total(), 6);
    assert_int_equal(otlp_spans_dropped_total(), 6);
    assert_int_equal(receiver_count(&r), 3);

    /* After shutdown a span is dropped and counted, not leaked. */
    uint64_t before = otlp_spans_dropped_queue_full_total();
    uint8_t tid[16] = {1};
    uint8_t sid[8] = {1};
    otlp_enqueue(span_new(SPAN_KIND_INTERNAL, tid, sid, NULL, "late", 1));
    assert_int_equal(otlp_spans_dropped_queue_full_total(), before + 1);
    receiver_stop(&r);
}

static void test_shutdown_flushes_partial_batch(void **state)
{
    (void)state;
    static struct receiver r;
    receiver_start(&r);
    static struct otlp_config cfg;
    test_config(&cfg, r.port);
    cfg.batch_spans_max = 100;
    cfg.schedule_delay_ms = 60000; /* only shutdown sends these */
    assert_int_equal(otlp_start(&cfg), 0);
    for (int i = 0; i < 5; i++) {
        otlp_enqueue(request_span(i));
    }
    usleep(100 * 1000);
    assert_int_equal(receiver_count(&r), 0);
    otlp_shutdown(clock_mono_ns() + 2000 * NS_PER_MS);
    assert_int_equal(receiver_count(&r), 1);
    assert_int_equal(otlp_spans_exported_total(), 5);
    receiver_stop(&r);
}

/* A test that failed half-way must not leave the exporter running for the next one. */
static int stop_exporter(void **state)
{
    (void)state;
    otlp_shutdown(clock_mono_ns() + 500 * NS_PER_MS);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_config_from_env, stop_exporter),
        cmocka_unit_test_teardown(test_config_refused, stop_exporter),
        cmocka_unit_test_teardown(test_disabled_costs_nothing, stop_exporter),
        cmocka_unit_test_teardown(test_sample_sets_flags, stop_exporter),
        cmocka_unit_test_teardown(test_batches_arrive_with_shape_and_headers, stop_exporter),
        cmocka_unit_test_teardown(test_retry_after_503, stop_exporter),
        cmocka_unit_test_teardown(test_retryable_statuses_then_success, stop_exporter),
        cmocka_unit_test_teardown(test_refusal_not_retried_and_attempts_bounded, stop_exporter),
        cmocka_unit_test_teardown(test_partial_success_counts_rejected, stop_exporter),
        cmocka_unit_test_teardown(test_dead_collector, stop_exporter),
        cmocka_unit_test_teardown(test_silent_collector_shutdown_deadline, stop_exporter),
        cmocka_unit_test_teardown(test_full_queue_drops_and_counts, stop_exporter),
        cmocka_unit_test_teardown(test_shutdown_flushes_partial_batch, stop_exporter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
