/*
 * test_rcache.c — the Redis idempotency cache against real redis-server and redis-sentinel
 * processes that the test starts itself with scripts/redis.sh: round trips, misses, expiry,
 * hostile cached values, principal scoping, the circuit breaker (Redis stopped, Redis that
 * accepts but never answers), Sentinel failover, and eight threads at once.
 *
 * The repository is found through LEDGERD_SOURCE_DIR, or by walking up from the directory of
 * the test executable until scripts/redis.sh appears (or a CMakeCache.txt naming the source
 * directory, for a build directory outside the repository). Without redis-server the tests that
 * need it are skipped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/sha256.h"
#include "idem/rcache.h"
#include "obs/log.h"
#include "obs/metrics.h"

static char repo_dir[PATH_MAX];
static char work_dir[PATH_MAX];
static char log_path[PATH_MAX + 16];
static int main_port; /* the shared Redis of the data tests */

/* ---------------------------------------------------------------------------------------
 * Processes and ports
 * ------------------------------------------------------------------------------------- */

static bool file_exists(const char *dir, const char *rel)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    struct stat st;
    return stat(path, &st) == 0;
}

/* An out-of-tree build directory names its source in CMakeCache.txt. */
static bool source_from_cmake_cache(const char *dir)
{
    static const char field[] = "CMAKE_HOME_DIRECTORY:INTERNAL=";
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/CMakeCache.txt", dir);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    char line[PATH_MAX + 64];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, field, sizeof(field) - 1) == 0) {
            char *value = line + sizeof(field) - 1;
            value[strcspn(value, "\r\n")] = '\0';
            if (strlen(value) < sizeof(repo_dir) && file_exists(value, "scripts/redis.sh")) {
                memcpy(repo_dir, value, strlen(value) + 1);
                found = true;
            }
        }
    }
    fclose(f);
    return found;
}

static bool find_repo(void)
{
    const char *env = getenv("LEDGERD_SOURCE_DIR");
    if (env != NULL && strlen(env) < sizeof(repo_dir) && file_exists(env, "scripts/redis.sh")) {
        memcpy(repo_dir, env, strlen(env) + 1);
        return true;
    }
    ssize_t n = readlink("/proc/self/exe", repo_dir, sizeof(repo_dir) - 1);
    if (n <= 0) {
        return false;
    }
    repo_dir[n] = '\0';
    for (;;) {
        char *slash = strrchr(repo_dir, '/');
        if (slash == NULL || slash == repo_dir) {
            return false;
        }
        *slash = '\0';
        if (file_exists(repo_dir, "scripts/redis.sh")) {
            return true;
        }
        if (source_from_cmake_cache(repo_dir)) {
            return true;
        }
    }
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Runs "bash scripts/redis.sh ARGS"; returns its exit status. */
__attribute__((format(printf, 1, 2))) static int redis_sh(const char *fmt, ...)
{
    char args[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    char cmd[PATH_MAX + 1200];
    snprintf(cmd, sizeof(cmd), "bash '%s/scripts/redis.sh' %s", repo_dir, args);
    int st = system(cmd);
    return st == -1 ? -1 : WEXITSTATUS(st);
}

static void server_start(const char *name, int port)
{
    assert_int_equal(redis_sh("start '%s/%s' %d", work_dir, name, port), 0);
}

static void server_stop(const char *name)
{
    assert_int_equal(redis_sh("stop '%s/%s'", work_dir, name), 0);
}

/* A direct connection of the test's own, to look at or tamper with what is stored. */
static redisContext *direct(int port)
{
    struct timeval tv = {.tv_sec = 2};
    redisContext *rc = redisConnectWithTimeout("127.0.0.1", port, tv);
    assert_non_null(rc);
    assert_int_equal(rc->err, 0);
    return rc;
}

static redisReply *direct_argv(redisContext *rc, int argc, const char **argv, const size_t *lens)
{
    redisReply *r = redisCommandArgv(rc, argc, argv, lens);
    assert_non_null(r);
    return r;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int64_t mono_ms(void)
{
    return clock_mono_ns() / 1000000;
}

/* ---------------------------------------------------------------------------------------
 * Metrics, log lines, records
 * ------------------------------------------------------------------------------------- */

struct counts {
    int64_t lookups[4];
    int64_t writes[2];
    int64_t state[3];
    int64_t transitions[3];
};

static void counts_read(struct counts *c)
{
    for (size_t i = 0; i < 4; i++) {
        c->lookups[i] = metrics_value(METRIC_CACHE_LOOKUPS, i);
    }
    for (size_t i = 0; i < 2; i++) {
        c->writes[i] = metrics_value(METRIC_CACHE_WRITES, i);
    }
    for (size_t i = 0; i < 3; i++) {
        c->state[i] = metrics_value(METRIC_CACHE_BREAKER_STATE, i);
        c->transitions[i] = metrics_value(METRIC_CACHE_BREAKER_TRANSITIONS, i);
    }
}

/* Lookups by result since `before`. */
static int64_t looked(const struct counts *before, enum metrics_cache_result r)
{
    return metrics_value(METRIC_CACHE_LOOKUPS, r) - before->lookups[r];
}

static int64_t written(const struct counts *before, enum metrics_cache_write_result r)
{
    return metrics_value(METRIC_CACHE_WRITES, r) - before->writes[r];
}

static int64_t moved(const struct counts *before, enum metrics_breaker_state s)
{
    return metrics_value(METRIC_CACHE_BREAKER_TRANSITIONS, s) - before->transitions[s];
}

/* The state gauge holds exactly one 1: the state the cache reports. */
static void assert_state_gauge(const struct rcache *c)
{
    enum metrics_breaker_state s = rcache_breaker_state(c);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(metrics_value(METRIC_CACHE_BREAKER_STATE, i), i == (size_t)s ? 1 : 0);
    }
}

/* Occurrences of needle in the log file. */
static size_t log_count(const char *needle)
{
    FILE *f = fopen(log_path, "r");
    assert_non_null(f);
    size_t n = 0;
    char line[4096];
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strstr(line, needle) != NULL) {
            n++;
        }
    }
    fclose(f);
    return n;
}

struct got {
    int calls;
    int status;
    uint8_t digest[SHA256_BYTES];
    char location[RCACHE_LOCATION_LEN_MAX + 1];
    char *body;
    size_t body_len;
    int64_t expires_at_ms;
};

static int capture(void *ctx, const struct store_idem_record *r)
{
    struct got *g = ctx;
    g->calls++;
    g->status = r->status;
    memcpy(g->digest, r->request_digest, SHA256_BYTES);
    size_t loc_len = strlen(r->location);
    assert_true(loc_len <= RCACHE_LOCATION_LEN_MAX);
    memcpy(g->location, r->location, loc_len + 1);
    free(g->body);
    g->body = malloc(r->body_len + 1);
    assert_non_null(g->body);
    memcpy(g->body, r->body, r->body_len);
    g->body_len = r->body_len;
    g->expires_at_ms = r->expires_at_ms;
    return 0;
}

static void got_release(struct got *g)
{
    free(g->body);
    memset(g, 0, sizeof(*g));
}

static void record_fill(struct store_idem_record *r, uint8_t seed, const char *location,
                        const char *body, size_t body_len, int64_t expires_at_ms)
{
    for (size_t i = 0; i < SHA256_BYTES; i++) {
        r->request_digest[i] = (uint8_t)(seed + i * 7);
    }
    r->status = 201;
    r->location = location;
    r->body = body;
    r->body_len = body_len;
    r->expires_at_ms = expires_at_ms;
}

static void assert_same_record(const struct got *g, const struct store_idem_record *r)
{
    assert_int_equal(g->calls, 1);
    assert_int_equal(g->status, r->status);
    assert_memory_equal(g->digest, r->request_digest, SHA256_BYTES);
    assert_string_equal(g->location, r->location);
    assert_int_equal(g->body_len, r->body_len);
    if (r->body_len > 0) {
        assert_memory_equal(g->body, r->body, r->body_len);
    }
    assert_int_equal(g->expires_at_ms, r->expires_at_ms);
}

/* The cache's key of (principal, key), computed here from the documented rule. */
static void cache_key(const char *principal, const char *key, char out[13 + 64 + 1])
{
    struct sha256 h;
    uint8_t d[SHA256_BYTES];
    assert_int_equal(sha256_init(&h), 0);
    assert_int_equal(sha256_update(&h, principal, strlen(principal) + 1), 0);
    assert_int_equal(sha256_update(&h, key, strlen(key)), 0);
    assert_int_equal(sha256_final(&h, d), 0);
    char hex[2 * SHA256_BYTES + 1];
    sha256_hex(d, hex);
    snprintf(out, 13 + 64 + 1, "ledgerd:idem:%s", hex);
}

static struct rcache *cache_direct(int port, uint32_t timeout_ms, uint32_t failures,
                                   uint32_t open_ms)
{
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
    struct rcache_config cfg = {.url = url,
                                .timeout_ms = timeout_ms,
                                .breaker_failures = failures,
                                .breaker_open_ms = open_ms};
    struct buf err;
    buf_init(&err, 1024);
    struct rcache *c = NULL;
    assert_int_equal(rcache_new(&cfg, &c, &err), 0);
    buf_release(&err);
    assert_non_null(c);
    return c;
}

static bool have_redis(void)
{
    return main_port != 0;
}

#define NEED_REDIS()                                                                               \
    do {                                                                                           \
        if (!have_redis()) {                                                                       \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* ---------------------------------------------------------------------------------------
 * Configuration
 * ------------------------------------------------------------------------------------- */

static int try_new(const char *url, const char *sentinels, const char *master, uint32_t timeout_ms,
                   struct buf *err)
{
    struct rcache_config cfg = {.url = url,
                                .sentinels = sentinels,
                                .master_name = master,
                                .timeout_ms = timeout_ms,
                                .breaker_failures = 5,
                                .breaker_open_ms = 1000};
    struct rcache *c = NULL;
    buf_reset(err);
    int rc = rcache_new(&cfg, &c, err);
    if (rc == 0) {
        assert_non_null(c);
        rcache_free(c);
    } else {
        assert_null(c);
        assert_true(err->len > 0);
    }
    return rc;
}

static void test_config_is_checked_without_redis(void **state)
{
    (void)state;
    struct buf err;
    buf_init(&err, 4096);
    static const char *const bad_urls[] = {
        "http://127.0.0.1:6379",
        "redis://",
        "redis://:6379",
        "redis://host:0",
        "redis://host:65536",
        "redis://host:12ab",
        "redis://host:",
        "redis://user@host:1",
        "redis://[::1:6379",
        "redis://host:1/db",
        "redis://host:1/99999999999",
        "redis://host:1?password=x",
        "redis://:bad%zzescape@host:1",
        "redis://:nul%00byte@host:1",
        "rediss://host:1",
    };
    for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
        if (try_new(bad_urls[i], NULL, NULL, 50, &err) != -EINVAL) {
            fail_msg("accepted %s", bad_urls[i]);
        }
    }
    /* A refusal never shows the password. */
    assert_int_equal(try_new("redis://:s3cr3t@host:1/x", NULL, NULL, 50, &err), -EINVAL);
    assert_null(strstr(err.data, "s3cr3t"));

    static const char *const good_urls[] = {
        "redis://127.0.0.1:1",       "redis://localhost",       "redis://:pw@[::1]:6380/3",
        "redis://user:p%40ss@h:2/2", "redis://127.0.0.1:6379/",
    };
    for (size_t i = 0; i < sizeof(good_urls) / sizeof(good_urls[0]); i++) {
        if (try_new(good_urls[i], NULL, NULL, 50, &err) != 0) {
            fail_msg("refused %s: %s", good_urls[i], err.data);
        }
    }

    /* Exactly one of URL and Sentinels; Sentinels need a master name. */
    assert_int_equal(try_new(NULL, NULL, NULL, 50, &err), -EINVAL);
    assert_int_equal(try_new("redis://h:1", "h:2", "m", 50, &err), -EINVAL);
    assert_int_equal(try_new(NULL, "h:2", NULL, 50, &err), -EINVAL);
    assert_int_equal(try_new(NULL, "h:2", "", 50, &err), -EINVAL);
    assert_int_equal(try_new(NULL, "h:2,,h:3", "m", 50, &err), -EINVAL);
    assert_int_equal(try_new(NULL, "h", "m", 50, &err), -EINVAL);
    assert_int_equal(try_new(NULL, "h:1,", "m", 50, &err), -EINVAL);
    assert_int_equal(try_new(NULL, "h:1,h:2,[::1]:3", "mymaster", 50, &err), 0);
    char many[512] = "";
    for (int i = 0; i < 17; i++) {
        size_t len = strlen(many);
        snprintf(many + len, sizeof(many) - len, "%sh:%d", i == 0 ? "" : ",", i + 1);
    }
    assert_int_equal(try_new(NULL, many, "m", 50, &err), -EINVAL);
    /* Zero timeouts and thresholds are refused. */
    assert_int_equal(try_new("redis://h:1", NULL, NULL, 0, &err), -EINVAL);
    buf_release(&err);
}

/* Nothing listens: every call answers "ask the database", quickly, and nothing crashes. */
static void test_nothing_listening_means_ask_the_database(void **state)
{
    (void)state;
    struct counts before;
    counts_read(&before);
    struct rcache *c = cache_direct(free_port(), 50, 1000, 1000);
    struct got g = {0};
    int64_t t0 = mono_ms();
    assert_int_equal(rcache_get(c, "p", "k", clock_unix_ms(), capture, &g), -EAGAIN);
    assert_true(mono_ms() - t0 < 100);
    assert_int_equal(g.calls, 0);
    struct store_idem_record r;
    record_fill(&r, 1, "", "x", 1, clock_unix_ms() + 60000);
    rcache_put(c, "p", "k", &r, clock_unix_ms());
    assert_int_equal(looked(&before, METRICS_CACHE_BYPASSED), 1);
    assert_int_equal(looked(&before, METRICS_CACHE_ERROR), 0);
    assert_int_equal(written(&before, METRICS_CACHE_WRITE_FAILED), 1);
    assert_int_equal(rcache_breaker_state(c), METRICS_BREAKER_CLOSED);
    assert_state_gauge(c);
    rcache_free(c);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(metrics_value(METRIC_CACHE_BREAKER_STATE, i), 0);
    }
}

/* ---------------------------------------------------------------------------------------
 * Data
 * ------------------------------------------------------------------------------------- */

static void test_round_trip_is_exact(void **state)
{
    (void)state;
    NEED_REDIS();
    struct counts before;
    counts_read(&before);
    struct rcache *c = cache_direct(main_port, 50, 5, 1000);
    int64_t now = clock_unix_ms();
    static const char body[] = "{\"id\":\"t1\"}\0after a NUL\0\xff\x01";
    struct store_idem_record r;
    record_fill(&r, 3, "/v1/transfers/t1", body, sizeof(body), now + 60000);
    rcache_put(c, "apikey:0123456789abcdef", "key-1", &r, now);
    assert_int_equal(written(&before, METRICS_CACHE_WRITE_OK), 1);

    struct got g = {0};
    assert_int_equal(rcache_get(c, "apikey:0123456789abcdef", "key-1", now, capture, &g), 0);
    assert_same_record(&g, &r);
    got_release(&g);

    /* An empty location and an empty body. */
    record_fill(&r, 4, "", "", 0, now + 60000);
    r.status = 409;
    rcache_put(c, "apikey:0123456789abcdef", "key-2", &r, now);
    assert_int_equal(rcache_get(c, "apikey:0123456789abcdef", "key-2", now, capture, &g), 0);
    assert_same_record(&g, &r);
    got_release(&g);

    /* Stored with Redis's own expiry at expires_at_ms. */
    redisContext *d = direct(main_port);
    char k[13 + 64 + 1];
    cache_key("apikey:0123456789abcdef", "key-1", k);
    redisReply *ttl = redisCommand(d, "PTTL %s", k);
    assert_non_null(ttl);
    assert_int_equal(ttl->type, REDIS_REPLY_INTEGER);
    assert_true(ttl->integer > 55000 && ttl->integer <= 60000);
    freeReplyObject(ttl);
    redisFree(d);

    /* Lookup latency, for the record. */
    enum { N = 2000 };
    int64_t t0 = clock_mono_ns();
    for (int i = 0; i < N; i++) {
        assert_int_equal(rcache_get(c, "apikey:0123456789abcdef", "key-1", now, capture, &g), 0);
        g.calls = 0;
    }
    int64_t per_ns = (clock_mono_ns() - t0) / N;
    print_message("rcache_get hit: %lld us per lookup over %d\n", (long long)(per_ns / 1000), N);
    got_release(&g);
    assert_int_equal(looked(&before, METRICS_CACHE_HIT), 2 + N);
    assert_int_equal(looked(&before, METRICS_CACHE_MISS), 0);
    assert_int_equal(looked(&before, METRICS_CACHE_ERROR), 0);
    assert_int_equal(looked(&before, METRICS_CACHE_BYPASSED), 0);
    rcache_free(c);
}

static int answer_42(void *ctx, const struct store_idem_record *r)
{
    (void)ctx;
    (void)r;
    return 42;
}

static void test_callback_answer_is_returned(void **state)
{
    (void)state;
    NEED_REDIS();
    struct rcache *c = cache_direct(main_port, 50, 5, 1000);
    int64_t now = clock_unix_ms();
    struct store_idem_record r;
    record_fill(&r, 5, "", "b", 1, now + 60000);
    rcache_put(c, "p", "cb", &r, now);
    assert_int_equal(rcache_get(c, "p", "cb", now, answer_42, NULL), 42);
    rcache_free(c);
}

static void test_max_sizes(void **state)
{
    (void)state;
    NEED_REDIS();
    struct counts before;
    counts_read(&before);
    /* A 64 MiB value takes more than 50 ms to move: a longer timeout for this one. */
    struct rcache *c = cache_direct(main_port, 2000, 5, 1000);
    int64_t now = clock_unix_ms();
    char location[RCACHE_LOCATION_LEN_MAX + 2];
    memset(location, 'L', sizeof(location));
    location[0] = '/';
    location[RCACHE_LOCATION_LEN_MAX] = '\0';
    char *body = malloc(RCACHE_BODY_BYTES_MAX + 1);
    assert_non_null(body);
    for (size_t i = 0; i < RCACHE_BODY_BYTES_MAX + 1; i += 4096) {
        size_t n = RCACHE_BODY_BYTES_MAX + 1 - i < 4096 ? RCACHE_BODY_BYTES_MAX + 1 - i : 4096;
        memset(body + i, (int)((i / 4096) % 256), n); /* NULs included */
    }
    char principal[LIMIT_PRINCIPAL_LEN_MAX + 1];
    char key[LIMIT_IDEMPOTENCY_KEY_LEN_MAX + 1];
    memset(principal, 'p', LIMIT_PRINCIPAL_LEN_MAX);
    principal[LIMIT_PRINCIPAL_LEN_MAX] = '\0';
    memset(key, '~', LIMIT_IDEMPOTENCY_KEY_LEN_MAX);
    key[LIMIT_IDEMPOTENCY_KEY_LEN_MAX] = '\0';

    struct store_idem_record r;
    record_fill(&r, 9, location, body, RCACHE_BODY_BYTES_MAX, now + 60000);
    int64_t t0 = mono_ms();
    rcache_put(c, principal, key, &r, now);
    assert_int_equal(written(&before, METRICS_CACHE_WRITE_OK), 1);
    struct got g = {0};
    assert_int_equal(rcache_get(c, principal, key, now, capture, &g), 0);
    print_message("64 MiB body: put + get in %lld ms\n", (long long)(mono_ms() - t0));
    assert_same_record(&g, &r);
    got_release(&g);

    /* One byte over either limit is not cached: a failed write, and nothing stored. */
    record_fill(&r, 9, location, body, RCACHE_BODY_BYTES_MAX + 1, now + 60000);
    rcache_put(c, "p", "too-big-body", &r, now);
    location[RCACHE_LOCATION_LEN_MAX] = 'L';
    location[RCACHE_LOCATION_LEN_MAX + 1] = '\0';
    record_fill(&r, 9, location, "x", 1, now + 60000);
    rcache_put(c, "p", "too-long-location", &r, now);
    assert_int_equal(written(&before, METRICS_CACHE_WRITE_FAILED), 2);
    assert_int_equal(rcache_get(c, "p", "too-big-body", now, capture, &g), -ENOENT);
    assert_int_equal(rcache_get(c, "p", "too-long-location", now, capture, &g), -ENOENT);
    assert_int_equal(g.calls, 0);
    /* Being too big is not Redis failing. */
    assert_int_equal(rcache_breaker_state(c), METRICS_BREAKER_CLOSED);
    free(body);
    rcache_free(c);
}

static void test_miss(void **state)
{
    (void)state;
    NEED_REDIS();
    struct counts before;
    counts_read(&before);
    struct rcache *c = cache_direct(main_port, 50, 5, 1000);
    struct got g = {0};
    assert_int_equal(rcache_get(c, "p", "never-stored", clock_unix_ms(), capture, &g), -ENOENT);
    assert_int_equal(g.calls, 0);
    assert_int_equal(looked(&before, METRICS_CACHE_MISS), 1);
    assert_int_equal(looked(&before, METRICS_CACHE_HIT), 0);
    rcache_free(c);
}

static void test_expiry(void **state)
{
    (void)state;
    NEED_REDIS();
    struct counts before;
    counts_read(&before);
    struct rcache *c = cache_direct(main_port, 50, 5, 1000);
    int64_t now = clock_unix_ms();
    struct store_idem_record r;
    struct got g = {0};

    /* A record is a miss from its expires_at_ms on, whatever Redis still holds. */
    record_fill(&r, 1, "", "e", 1, now + 60000);
    rcache_put(c, "p", "exp-1", &r, now);
    assert_int_equal(rcache_get(c, "p", "exp-1", now + 59999, capture, &g), 0);
    assert_int_equal(rcache_get(c, "p", "exp-1", now + 60000, capture, &g), -ENOENT);
    assert_int_equal(rcache_get(c, "p", "exp-1", now + 90000, capture, &g), -ENOENT);
    assert_int_equal(g.calls, 1);
    got_release(&g);

    /* Redis drops it at expires_at_ms too. */
    record_fill(&r, 1, "", "e", 1, now + 150);
    rcache_put(c, "p", "exp-2", &r, now);
    sleep_ms(300);
    redisContext *d = direct(main_port);
    char k[13 + 64 + 1];
    cache_key("p", "exp-2", k);
    redisReply *x = redisCommand(d, "EXISTS %s", k);
    assert_non_null(x);
    assert_int_equal(x->integer, 0);
    freeReplyObject(x);
    redisFree(d);
    assert_int_equal(rcache_get(c, "p", "exp-2", now, capture, &g), -ENOENT);

    /* Already expired, or expiring now: not stored, not counted. */
    record_fill(&r, 1, "", "e", 1, now);
    rcache_put(c, "p", "exp-3", &r, now);
    record_fill(&r, 1, "", "e", 1, now - 1000);
    rcache_put(c, "p", "exp-3", &r, now);
    assert_int_equal(rcache_get(c, "p", "exp-3", now - 5000, capture, &g), -ENOENT);
    assert_int_equal(written(&before, METRICS_CACHE_WRITE_OK), 2);
    assert_int_equal(written(&before, METRICS_CACHE_WRITE_FAILED), 0);
    assert_int_equal(looked(&before, METRICS_CACHE_HIT), 1);
    assert_int_equal(looked(&before, METRICS_CACHE_MISS), 4);
    rcache_free(c);
}

static void test_principal_scoping(void **state)
{
    (void)state;
    NEED_REDIS();
    struct rcache *c = cache_direct(main_port, 50, 5, 1000);
    int64_t now = clock_unix_ms();
    struct store_idem_record r;
    struct got g = {0};
    record_fill(&r, 1, "/v1/accounts/a1", "alice's", 7, now + 60000);
    rcache_put(c, "alice", "same-key", &r, now);
    assert_int_equal(rcache_get(c, "bob", "same-key", now, capture, &g), -ENOENT);
    assert_int_equal(rcache_get(c, "alice", "same-key", now, capture, &g), 0);
    assert_same_record(&g, &r);
    got_release(&g);
    /* (principal, key) pairs that concatenate alike stay apart. */
    record_fill(&r, 2, "", "a|bc", 4, now + 60000);
    rcache_put(c, "a", "bc", &r, now);
    assert_int_equal(rcache_get(c, "ab", "c", now, capture, &g), -ENOENT);
    struct store_idem_record r2;
    record_fill(&r2, 3, "", "ab|c", 4, now + 60000);
    rcache_put(c, "ab", "c", &r2, now);
    assert_int_equal(rcache_get(c, "a", "bc", now, capture, &g), 0);
    assert_same_record(&g, &r);
    got_release(&g);
    assert_int_equal(rcache_get(c, "ab", "c", now, capture, &g), 0);
    assert_same_record(&g, &r2);
    got_release(&g);
    rcache_free(c);
}

/* ---------------------------------------------------------------------------------------
 * Hostile values: whatever is stored under a key, a lookup is a hit of a well-formed record or
 * a miss, never a crash, never a breaker failure.
 * ------------------------------------------------------------------------------------- */

/* The documented layout, built here independently of the cache's encoder. */
static size_t value_build(uint8_t *out, uint8_t version, int status, int64_t expires,
                          const char *loc, size_t loc_len, const char *body, size_t body_len)
{
    uint8_t *p = out;
    *p++ = version;
    for (size_t i = 0; i < SHA256_BYTES; i++) {
        *p++ = (uint8_t)i;
    }
    *p++ = (uint8_t)(status >> 8);
    *p++ = (uint8_t)status;
    for (int i = 7; i >= 0; i--) {
        *p++ = (uint8_t)((uint64_t)expires >> (8 * i));
    }
    *p++ = (uint8_t)(loc_len >> 8);
    *p++ = (uint8_t)loc_len;
    memcpy(p, loc, loc_len);
    p += loc_len;
    for (int i = 3; i >= 0; i--) {
        *p++ = (uint8_t)(body_len >> (8 * i));
    }
    memcpy(p, body, body_len);
    p += body_len;
    return (size_t)(p - out);
}

static void raw_set(redisContext *d, const char *k, const uint8_t *v, size_t len)
{
    const char *argv[] = {"SET", k, (const char *)v};
    size_t lens[] = {3, strlen(k), len};
    redisReply *r = direct_argv(d, 3, argv, lens);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
}

static void test_garbage_values_are_misses(void **state)
{
    (void)state;
    NEED_REDIS();
    struct counts before;
    counts_read(&before);
    size_t logged_before = log_count("does not decode");
    struct rcache *c = cache_direct(main_port, 50, 3, 1000);
    redisContext *d = direct(main_port);
    char k[13 + 64 + 1];
    cache_key("mallory", "garbage", k);
    int64_t now = clock_unix_ms();
    struct got g = {0};
    int64_t hits = 0;
    int64_t misses = 0;

    static uint8_t v[4096];
    /* A hand-built well-formed value is a hit: the layout is what the header says. */
    size_t good_len = value_build(v, 1, 200, now + 60000, "/x", 2, "bo\0dy", 5);
    raw_set(d, k, v, good_len);
    assert_int_equal(rcache_get(c, "mallory", "garbage", now, capture, &g), 0);
    hits++;
    assert_int_equal(g.status, 200);
    assert_string_equal(g.location, "/x");
    assert_int_equal(g.body_len, 5);
    assert_memory_equal(g.body, "bo\0dy", 5);
    got_release(&g);

    /* Every proper prefix, and one byte more. */
    for (size_t len = 0; len < good_len; len++) {
        raw_set(d, k, v, len);
        assert_int_equal(rcache_get(c, "mallory", "garbage", now, capture, &g), -ENOENT);
        misses++;
    }
    v[good_len] = 'X';
    raw_set(d, k, v, good_len + 1);
    assert_int_equal(rcache_get(c, "mallory", "garbage", now, capture, &g), -ENOENT);
    misses++;

    struct {
        uint8_t version;
        int status;
        size_t loc_len;
        size_t body_len_claimed; /* 0: the real length */
    } cases[] = {
        {0, 200, 2, 0},                           /* unknown version */
        {2, 200, 2, 0},                           /* a future version */
        {0xff, 200, 2, 0},                        /* */
        {1, 0, 2, 0},                             /* no such status */
        {1, 99, 2, 0},                            /* */
        {1, 600, 2, 0},                           /* */
        {1, 200, RCACHE_LOCATION_LEN_MAX + 1, 0}, /* location over its limit */
        {1, 200, 2, RCACHE_BODY_BYTES_MAX + 1},   /* body over its limit */
        {1, 200, 2, 0xffffffffu},                 /* */
        {1, 200, 2, 6},                           /* body longer than the value */
        {1, 200, 2, 4},                           /* body shorter: trailing bytes */
    };
    static char loc[RCACHE_LOCATION_LEN_MAX + 8];
    memset(loc, 'l', sizeof(loc));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = value_build(v, cases[i].version, cases[i].status, now + 60000, loc,
                                 cases[i].loc_len, "bo\0dy", 5);
        if (cases[i].body_len_claimed != 0) {
            size_t at = len - 5 - 4;
            uint32_t claimed = (uint32_t)cases[i].body_len_claimed;
            v[at] = (uint8_t)(claimed >> 24);
            v[at + 1] = (uint8_t)(claimed >> 16);
            v[at + 2] = (uint8_t)(claimed >> 8);
            v[at + 3] = (uint8_t)claimed;
        }
        raw_set(d, k, v, len);
        if (rcache_get(c, "mallory", "garbage", now, capture, &g) != -ENOENT) {
            fail_msg("case %zu was not a miss", i);
        }
        misses++;
    }
    /* A location claiming more bytes than the value holds, and a NUL inside the location. */
    size_t len = value_build(v, 1, 200, now + 60000, "/x", 2, "", 0);
    v[1 + SHA256_BYTES + 2 + 8 + 1] = 200;
    raw_set(d, k, v, len);
    assert_int_equal(rcache_get(c, "mallory", "garbage", now, capture, &g), -ENOENT);
    len = value_build(v, 1, 200, now + 60000, "/\0x", 3, "", 0);
    raw_set(d, k, v, len);
    assert_int_equal(rcache_get(c, "mallory", "garbage", now, capture, &g), -ENOENT);
    misses += 2;

    /* Random bytes of random lengths, and random single-byte flips of a good value. */
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 300; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        size_t n = (size_t)(seed >> 33) % 200;
        for (size_t j = 0; j < n; j++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            v[j] = (uint8_t)(seed >> 56);
        }
        if (i % 2 == 1) {
            n = value_build(v, 1, 200, now + 60000, "/x", 2, "bo\0dy", 5);
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            v[(seed >> 33) % n] ^= (uint8_t)(1u << ((seed >> 20) % 8));
        }
        raw_set(d, k, v, n);
        int rc = rcache_get(c, "mallory", "garbage", now, capture, &g);
        if (rc == 0) {
            /* A flip in the digest, the expiry or the body still decodes: a well-formed record. */
            assert_true(g.status >= 100 && g.status <= 599);
            assert_true(strlen(g.location) <= RCACHE_LOCATION_LEN_MAX);
            hits++;
            got_release(&g);
        } else {
            assert_int_equal(rc, -ENOENT);
            misses++;
        }
    }

    /* Not a string at all: a list under the key (WRONGTYPE) is a miss, not a failing Redis. */
    redisReply *x = redisCommand(d, "DEL %s", k);
    freeReplyObject(x);
    x = redisCommand(d, "RPUSH %s a b", k);
    assert_int_equal(x->type, REDIS_REPLY_INTEGER);
    freeReplyObject(x);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(rcache_get(c, "mallory", "garbage", now, capture, &g), -ENOENT);
        misses++;
    }
    /* Nor does a put over it break anything: SET replaces a list. */
    struct store_idem_record r;
    record_fill(&r, 7, "", "fine", 4, now + 60000);
    rcache_put(c, "mallory", "garbage", &r, now);
    assert_int_equal(rcache_get(c, "mallory", "garbage", now, capture, &g), 0);
    hits++;
    assert_same_record(&g, &r);
    got_release(&g);

    assert_int_equal(looked(&before, METRICS_CACHE_HIT), hits);
    assert_int_equal(looked(&before, METRICS_CACHE_MISS), misses);
    assert_int_equal(looked(&before, METRICS_CACHE_ERROR), 0);
    assert_int_equal(looked(&before, METRICS_CACHE_BYPASSED), 0);
    assert_int_equal(rcache_breaker_state(c), METRICS_BREAKER_CLOSED);
    assert_int_equal(moved(&before, METRICS_BREAKER_OPEN), 0);
    /* Logged once per cache at warn level (then at debug, below this test's level). */
    assert_int_equal(log_count("does not decode") - logged_before, 1);
    redisFree(d);
    rcache_free(c);
}

/* ---------------------------------------------------------------------------------------
 * The circuit breaker
 * ------------------------------------------------------------------------------------- */

/* A TCP server that accepts connections and never answers: every command times out. */
struct blackhole {
    int fd;
    int port;
    atomic_int accepted;
    atomic_bool stop;
    int conns[256];
    pthread_t thread;
};

static void *blackhole_run(void *arg)
{
    struct blackhole *b = arg;
    while (!atomic_load(&b->stop)) {
        struct pollfd p = {.fd = b->fd, .events = POLLIN};
        if (poll(&p, 1, 10) == 1) {
            int fd = accept(b->fd, NULL, NULL);
            if (fd >= 0) {
                int n = atomic_fetch_add(&b->accepted, 1);
                if (n < 256) {
                    b->conns[n] = fd;
                } else {
                    close(fd);
                }
            }
        }
    }
    return NULL;
}

static void blackhole_start(struct blackhole *b)
{
    memset(b, 0, sizeof(*b));
    b->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(b->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(b->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(b->fd, 64), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(b->fd, (struct sockaddr *)&a, &len), 0);
    b->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&b->thread, NULL, blackhole_run, b), 0);
}

static void blackhole_stop(struct blackhole *b)
{
    atomic_store(&b->stop, true);
    pthread_join(b->thread, NULL);
    int n = atomic_load(&b->accepted);
    for (int i = 0; i < n && i < 256; i++) {
        close(b->conns[i]);
    }
    close(b->fd);
}

/* Connections the black hole accepted, once the kernel's backlog has been drained. */
static int blackhole_accepted(struct blackhole *b)
{
    sleep_ms(30);
    return atomic_load(&b->accepted);
}

struct probe_arg {
    struct rcache *c;
    pthread_barrier_t *barrier;
    int rc;
};

static void *probe_run(void *arg)
{
    struct probe_arg *p = arg;
    pthread_barrier_wait(p->barrier);
    p->rc = rcache_get(p->c, "p", "k", clock_unix_ms(), capture, NULL);
    return NULL;
}

static void test_breaker_on_timeouts(void **state)
{
    (void)state;
    enum { TIMEOUT_MS = 50, FAILURES = 3, OPEN_MS = 300 };
    struct blackhole b;
    blackhole_start(&b);
    struct counts before;
    counts_read(&before);
    size_t opened_logs = log_count("circuit breaker open");
    struct rcache *c = cache_direct(b.port, TIMEOUT_MS, FAILURES, OPEN_MS);
    struct got g = {0};

    /* Each failure takes about one timeout, never more than two. */
    for (int i = 0; i < FAILURES; i++) {
        assert_int_equal(rcache_breaker_state(c), METRICS_BREAKER_CLOSED);
        int64_t t0 = mono_ms();
        assert_int_equal(rcache_get(c, "p", "k", clock_unix_ms(), capture, &g), -EAGAIN);
        int64_t took = mono_ms() - t0;
        print_message("lookup against a silent server: %lld ms\n", (long long)took);
        assert_true(took >= TIMEOUT_MS - 5 && took < 2 * (int64_t)TIMEOUT_MS);
    }
    assert_int_equal(rcache_breaker_state(c), METRICS_BREAKER_OPEN);
    assert_state_gauge(c);
    assert_int_equal(moved(&before, METRICS_BREAKER_OPEN), 1);
    assert_int_equal(log_count("circuit breaker open") - opened_logs, 1);
    int seen = blackhole_accepted(&b);
    assert_int_equal(seen, FAILURES);

    /* Open: answered at once, without a connection. */
    for (int i = 0; i < 50; i++) {
        int64_t t0 = clock_mono_ns();
        assert_int_equal(rcache_get(c, "p", "k", clock_unix_ms(), capture, &g), -EAGAIN);
        assert_true(clock_mono_ns() - t0 < 2000000);
    }
    struct store_idem_record r;
    record_fill(&r, 1, "", "x", 1, clock_unix_ms() + 60000);
    rcache_put(c, "p", "k", &r, clock_unix_ms());
    assert_int_equal(blackhole_accepted(&b), seen);
    assert_int_equal(looked(&before, METRICS_CACHE_ERROR), FAILURES);
    assert_int_equal(looked(&before, METRICS_CACHE_BYPASSED), 50);
    assert_int_equal(written(&before, METRICS_CACHE_WRITE_FAILED), 1);

    /* After OPEN_MS, exactly one of eight simultaneous callers probes; it fails: open again. */
    sleep_ms(OPEN_MS + 20);
    enum { THREADS = 8 };
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, THREADS);
    pthread_t t[THREADS];
    struct probe_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (struct probe_arg){.c = c, .barrier = &barrier};
        assert_int_equal(pthread_create(&t[i], NULL, probe_run, &args[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(args[i].rc, -EAGAIN);
    }
    pthread_barrier_destroy(&barrier);
    assert_int_equal(blackhole_accepted(&b), seen + 1);
    assert_int_equal(looked(&before, METRICS_CACHE_ERROR), FAILURES + 1);
    assert_int_equal(looked(&before, METRICS_CACHE_BYPASSED), 50 + THREADS - 1);
    assert_int_equal(moved(&before, METRICS_BREAKER_HALF_OPEN), 1);
    assert_int_equal(moved(&before, METRICS_BREAKER_OPEN), 2);
    assert_int_equal(rcache_breaker_state(c), METRICS_BREAKER_OPEN);
    assert_state_gauge(c);
    rcache_free(c);
    blackhole_stop(&b);
}

static void test_breaker_redis_down_and_back(void **state)
{
    (void)state;
    NEED_REDIS();
    enum { TIMEOUT_MS = 50, FAILURES = 4, OPEN_MS = 1000 };
    int port = free_port();
    server_start("flaky", port);
    struct counts before;
    counts_read(&before);
    size_t closed_logs = log_count("circuit breaker closed");
    struct rcache *c = cache_direct(port, TIMEOUT_MS, FAILURES, OPEN_MS);
    int64_t now = clock_unix_ms();
    struct store_idem_record r;
    record_fill(&r, 1, "", "kept", 4, now + 60000);
    struct got g = {0};
    rcache_put(c, "p", "k", &r, now);
    assert_int_equal(rcache_get(c, "p", "k", now, capture, &g), 0);
    got_release(&g);

    server_stop("flaky");
    /* The first lookup finds its connection closed (error); the next ones cannot connect
     * (bypassed); after FAILURES the breaker opens and further lookups are bypassed. */
    int64_t worst = 0;
    for (int i = 0; i < FAILURES + 10; i++) {
        int64_t t0 = mono_ms();
        assert_int_equal(rcache_get(c, "p", "k", now, capture, &g), -EAGAIN);
        int64_t took = mono_ms() - t0;
        worst = took > worst ? took : worst;
        assert_true(took < 2 * (int64_t)TIMEOUT_MS);
        if (i == FAILURES - 2) {
            assert_int_equal(rcache_breaker_state(c), METRICS_BREAKER_CLOSED);
        }
    }
    int64_t opened_at = mono_ms();
    print_message("lookup with Redis down: worst %lld ms\n", (long long)worst);
    assert_int_equal(rcache_breaker_state(c), METRICS_BREAKER_OPEN);
    assert_state_gauge(c);
    assert_int_equal(looked(&before, METRICS_CACHE_HIT), 1);
    assert_int_equal(looked(&before, METRICS_CACHE_ERROR), 1);
    assert_int_equal(looked(&before, METRICS_CACHE_BYPASSED), FAILURES + 10 - 1);

    /* Back (empty: nothing persisted). The first call after OPEN_MS probes and closes it. */
    server_start("flaky", port);
    int64_t bypassed = FAILURES + 10 - 1;
    if (mono_ms() - opened_at < OPEN_MS - 100) { /* a slow machine may take longer to start it */
        assert_int_equal(rcache_get(c, "p", "k", now, capture, &g), -EAGAIN); /* still open */
        bypassed++;
    }
    sleep_ms(OPEN_MS + 20);
    assert_int_equal(rcache_get(c, "p", "k", now, capture, &g), -ENOENT);
    assert_int_equal(rcache_breaker_state(c), METRICS_BREAKER_CLOSED);
    assert_state_gauge(c);
    rcache_put(c, "p", "k", &r, now);
    assert_int_equal(rcache_get(c, "p", "k", now, capture, &g), 0);
    assert_same_record(&g, &r);
    got_release(&g);

    assert_int_equal(looked(&before, METRICS_CACHE_HIT), 2);
    assert_int_equal(looked(&before, METRICS_CACHE_MISS), 1);
    assert_int_equal(looked(&before, METRICS_CACHE_ERROR), 1);
    assert_int_equal(looked(&before, METRICS_CACHE_BYPASSED), bypassed);
    assert_int_equal(written(&before, METRICS_CACHE_WRITE_OK), 2);
    assert_int_equal(moved(&before, METRICS_BREAKER_OPEN), 1);
    assert_int_equal(moved(&before, METRICS_BREAKER_HALF_OPEN), 1);
    assert_int_equal(moved(&before, METRICS_BREAKER_CLOSED), 1);
    assert_int_equal(log_count("circuit breaker closed") - closed_logs, 1);
    rcache_free(c);
    server_stop("flaky");
}

/* A success resets the count: failures that are not consecutive never open the breaker. */
static void test_breaker_counts_consecutive_failures(void **state)
{
    (void)state;
    NEED_REDIS();
    int port = free_port();
    server_start("intermittent", port);
    struct rcache *c = cache_direct(port, 50, 3, 1000);
    int64_t now = clock_unix_ms();
    struct got g = {0};
    for (int round = 0; round < 3; round++) {
        assert_int_equal(rcache_get(c, "p", "k", now, capture, &g), -ENOENT);
        server_stop("intermittent");
        assert_int_equal(rcache_get(c, "p", "k", now, capture, &g), -EAGAIN);
        assert_int_equal(rcache_get(c, "p", "k", now, capture, &g), -EAGAIN);
        server_start("intermittent", port);
        assert_int_equal(rcache_breaker_state(c), METRICS_BREAKER_CLOSED);
    }
    rcache_free(c);
    server_stop("intermittent");
}

/* ---------------------------------------------------------------------------------------
 * Sentinel failover
 * ------------------------------------------------------------------------------------- */

static long long reply_elements(int port, const char *cmd)
{
    redisContext *d = direct(port);
    redisReply *r = redisCommand(d, cmd);
    long long n = (r != NULL && r->type == REDIS_REPLY_ARRAY) ? (long long)r->elements : -1;
    freeReplyObject(r);
    redisFree(d);
    return n;
}

static bool replica_in_sync(int port)
{
    redisContext *d = direct(port);
    redisReply *r = redisCommand(d, "INFO replication");
    bool up = r != NULL && r->type == REDIS_REPLY_STRING &&
              strstr(r->str, "master_link_status:up") != NULL;
    freeReplyObject(r);
    redisFree(d);
    return up;
}

static int sentinel_master_port(int port)
{
    redisContext *d = direct(port);
    redisReply *r = redisCommand(d, "SENTINEL get-master-addr-by-name mymaster");
    int p = (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2)
                ? (int)strtol(r->element[1]->str, NULL, 10)
                : -1;
    freeReplyObject(r);
    redisFree(d);
    return p;
}

static void wait_for(bool (*ok)(int), int port, int64_t timeout_ms, const char *what)
{
    int64_t end = mono_ms() + timeout_ms;
    while (!ok(port)) {
        if (mono_ms() > end) {
            fail_msg("timed out waiting for %s", what);
        }
        sleep_ms(50);
    }
}

static bool sentinel_sees_all(int port)
{
    return reply_elements(port, "SENTINEL replicas mymaster") >= 1 &&
           reply_elements(port, "SENTINEL sentinels mymaster") >= 2;
}

static void test_sentinel_failover(void **state)
{
    (void)state;
    NEED_REDIS();
    int master = free_port();
    int replica = free_port();
    int sentinel[3];
    server_start("s-master", master);
    assert_int_equal(redis_sh("replica '%s/s-replica' %d %d", work_dir, replica, master), 0);
    wait_for(replica_in_sync, replica, 15000, "the replica's first sync");
    for (int i = 0; i < 3; i++) {
        sentinel[i] = free_port();
        assert_int_equal(
            redis_sh("sentinel '%s/s-sentinel%d' %d %d mymaster", work_dir, i, sentinel[i], master),
            0);
    }
    for (int i = 0; i < 3; i++) {
        wait_for(sentinel_sees_all, sentinel[i], 20000, "the Sentinels to see one another");
    }

    char list[128];
    snprintf(list, sizeof(list), "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", sentinel[0], sentinel[1],
             sentinel[2]);
    struct rcache_config cfg = {.sentinels = list,
                                .master_name = "mymaster",
                                .timeout_ms = 100,
                                .breaker_failures = 3,
                                .breaker_open_ms = 200};
    struct buf err;
    buf_init(&err, 1024);
    struct rcache *c = NULL;
    assert_int_equal(rcache_new(&cfg, &c, &err), 0);
    buf_release(&err);

    int64_t now = clock_unix_ms();
    struct store_idem_record r;
    record_fill(&r, 1, "/v1/transfers/before", "before", 6, now + 600000);
    struct got g = {0};
    rcache_put(c, "p", "before", &r, now);
    assert_int_equal(rcache_get(c, "p", "before", now, capture, &g), 0);
    assert_same_record(&g, &r);
    got_release(&g);

    /* The master goes away; the same cache finds the promoted replica by itself. */
    /* SHUTDOWN NOW: no wait for the replica to catch up, as a crash would be. */
    redisContext *m = direct(master);
    int64_t t0 = mono_ms();
    redisReply *bye = redisCommand(m, "SHUTDOWN NOSAVE NOW");
    freeReplyObject(bye); /* NULL: the connection closed, as it should */
    redisFree(m);
    server_stop("s-master");
    int64_t stopped = mono_ms() - t0;
    int64_t resumed = -1;
    char key[32];
    for (int i = 0; mono_ms() - t0 < 30000; i++) {
        snprintf(key, sizeof(key), "after-%d", i);
        now = clock_unix_ms();
        record_fill(&r, 2, "", key, strlen(key), now + 600000);
        rcache_put(c, "p", key, &r, now);
        int rc = rcache_get(c, "p", key, now, capture, &g);
        if (rc == 0) {
            assert_same_record(&g, &r);
            got_release(&g);
            resumed = mono_ms() - t0;
            break;
        }
        assert_true(rc == -EAGAIN || rc == -ENOENT);
        sleep_ms(50);
    }
    assert_true(resumed >= 0);
    print_message("Sentinel failover: puts and gets resumed %lld ms after SHUTDOWN of the "
                  "master (%lld ms until it had exited)\n",
                  (long long)resumed, (long long)stopped);
    assert_int_equal(sentinel_master_port(sentinel[0]), replica);
    assert_int_equal(rcache_breaker_state(c), METRICS_BREAKER_CLOSED);
    assert_state_gauge(c);
    /* The record written before may or may not have replicated; either answer is well-formed. */
    int rc = rcache_get(c, "p", "before", now, capture, &g);
    assert_true(rc == 0 || rc == -ENOENT);
    got_release(&g);
    /* And what is written now is read back from the new master. */
    record_fill(&r, 3, "", "later", 5, now + 600000);
    rcache_put(c, "p", "later", &r, now);
    assert_int_equal(rcache_get(c, "p", "later", now, capture, &g), 0);
    assert_same_record(&g, &r);
    got_release(&g);
    redisContext *d = direct(replica);
    char k[13 + 64 + 1];
    cache_key("p", "later", k);
    redisReply *x = redisCommand(d, "EXISTS %s", k);
    assert_int_equal(x->integer, 1);
    freeReplyObject(x);
    redisFree(d);

    rcache_free(c);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(redis_sh("stop '%s/s-sentinel%d'", work_dir, i), 0);
    }
    server_stop("s-replica");
}

/* A stand-in Sentinel that names whatever port the test sets, and counts how often it is
 * asked: it shows which node the cache is sent to and that the answer is remembered. */
struct fake_sentinel {
    int fd;
    int port;
    atomic_int master_port;
    atomic_int asked;
    atomic_bool stop;
    pthread_t thread;
};

static void *fake_sentinel_run(void *arg)
{
    struct fake_sentinel *f = arg;
    while (!atomic_load(&f->stop)) {
        struct pollfd p = {.fd = f->fd, .events = POLLIN};
        if (poll(&p, 1, 10) != 1) {
            continue;
        }
        int fd = accept(f->fd, NULL, NULL);
        if (fd < 0) {
            continue;
        }
        char req[1024];
        size_t got = 0;
        /* The request ends with the master name's bulk string. */
        while (got < sizeof(req) - 1) {
            struct pollfd q = {.fd = fd, .events = POLLIN};
            if (poll(&q, 1, 500) != 1) {
                break;
            }
            ssize_t n = read(fd, req + got, sizeof(req) - 1 - got);
            if (n <= 0) {
                break;
            }
            got += (size_t)n;
            req[got] = '\0';
            if (strstr(req, "mymaster\r\n") != NULL) {
                break;
            }
        }
        req[got] = '\0';
        if (strstr(req, "get-master-addr-by-name") != NULL) {
            atomic_fetch_add(&f->asked, 1);
            char port[16];
            int plen = snprintf(port, sizeof(port), "%d", atomic_load(&f->master_port));
            char reply[96];
            int len = snprintf(reply, sizeof(reply), "*2\r\n$9\r\n127.0.0.1\r\n$%d\r\n%s\r\n", plen,
                               port);
            (void)!write(fd, reply, (size_t)len);
        }
        close(fd);
    }
    return NULL;
}

static void fake_sentinel_start(struct fake_sentinel *f, int master_port)
{
    memset(f, 0, sizeof(*f));
    f->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(f->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(f->fd, 64), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(f->fd, (struct sockaddr *)&a, &len), 0);
    f->port = ntohs(a.sin_port);
    atomic_store(&f->master_port, master_port);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_sentinel_run, f), 0);
}

static void fake_sentinel_stop(struct fake_sentinel *f)
{
    atomic_store(&f->stop, true);
    pthread_join(f->thread, NULL);
    close(f->fd);
}

struct reader {
    struct rcache *c;
    int rc;
};

static void *reader_run(void *arg)
{
    struct reader *r = arg;
    struct got g = {0};
    r->rc = rcache_get(r->c, "p", "role", clock_unix_ms(), capture, &g);
    got_release(&g);
    return NULL;
}

/* The Sentinels are asked in turn (a dead one is skipped); a node that is not a master is not
 * used; the answer is remembered by every thread; a master turned replica (READONLY) sends the
 * cache back to the Sentinels. */
static void test_sentinel_names_master_and_role_is_checked(void **state)
{
    (void)state;
    NEED_REDIS();
    int a = free_port();
    int x = free_port();
    int ro_replica_port = free_port();
    server_start("ro-a", a);
    server_start("ro-x", x);
    assert_int_equal(redis_sh("replica '%s/ro-replica' %d %d", work_dir, ro_replica_port, a), 0);
    struct fake_sentinel f;
    int dead = free_port();
    fake_sentinel_start(&f, 0);
    struct counts before;
    counts_read(&before);
    char list[96];
    snprintf(list, sizeof(list), "127.0.0.1:%d,127.0.0.1:%d", dead, f.port);
    struct rcache_config cfg = {.sentinels = list,
                                .master_name = "mymaster",
                                .timeout_ms = 100,
                                .breaker_failures = 100,
                                .breaker_open_ms = 1000};
    struct buf err;
    buf_init(&err, 1024);
    struct rcache *c = NULL;
    assert_int_equal(rcache_new(&cfg, &c, &err), 0);
    buf_release(&err);
    int64_t now = clock_unix_ms();
    struct got g = {0};
    struct store_idem_record r;
    record_fill(&r, 1, "", "role", 4, now + 60000);

    /* Named: a replica (ROLE says so). Not used. */
    atomic_store(&f.master_port, ro_replica_port);
    assert_int_equal(rcache_get(c, "p", "role", now, capture, &g), -EAGAIN);
    assert_int_equal(atomic_load(&f.asked), 1);
    assert_int_equal(looked(&before, METRICS_CACHE_BYPASSED), 1);

    /* Named: x, a master. Asked again, then remembered by every thread. */
    atomic_store(&f.master_port, x);
    rcache_put(c, "p", "role", &r, now);
    assert_int_equal(written(&before, METRICS_CACHE_WRITE_OK), 1);
    assert_int_equal(atomic_load(&f.asked), 2);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(rcache_get(c, "p", "role", now, capture, &g), 0);
        got_release(&g);
    }
    struct reader readers[8];
    pthread_t t[8];
    for (int i = 0; i < 8; i++) {
        readers[i] = (struct reader){.c = c};
        assert_int_equal(pthread_create(&t[i], NULL, reader_run, &readers[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(readers[i].rc, 0);
    }
    assert_int_equal(atomic_load(&f.asked), 2);

    /* x becomes a replica of a (an old master coming back after a failover): the next write
     * fails with READONLY, and the cache asks the Sentinels, which now name a. */
    redisContext *dx = direct(x);
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "REPLICAOF 127.0.0.1 %d", a);
    redisReply *ok = redisCommand(dx, cmd);
    assert_int_equal(ok->type, REDIS_REPLY_STATUS);
    freeReplyObject(ok);
    redisFree(dx);
    atomic_store(&f.master_port, a);
    rcache_put(c, "p", "role", &r, now);
    assert_int_equal(written(&before, METRICS_CACHE_WRITE_FAILED), 1);
    rcache_put(c, "p", "role", &r, now);
    assert_int_equal(written(&before, METRICS_CACHE_WRITE_OK), 2);
    assert_int_equal(atomic_load(&f.asked), 3);
    assert_int_equal(rcache_get(c, "p", "role", now, capture, &g), 0);
    assert_same_record(&g, &r);
    got_release(&g);
    assert_int_equal(rcache_breaker_state(c), METRICS_BREAKER_CLOSED);

    rcache_free(c);
    fake_sentinel_stop(&f);
    server_stop("ro-replica");
    server_stop("ro-x");
    server_stop("ro-a");
}

/* ---------------------------------------------------------------------------------------
 * Threads
 * ------------------------------------------------------------------------------------- */

struct worker {
    struct rcache *c;
    int id;
    int hits;
    int failures;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    char key[32];
    char body[64];
    struct got g = {0};
    for (int i = 0; i < 300; i++) {
        int64_t now = clock_unix_ms();
        snprintf(key, sizeof(key), "k-%d-%d", w->id, i % 25);
        int n = snprintf(body, sizeof(body), "body of %d/%d", w->id, i % 25);
        memcpy(body + n, "\0tail", 5); /* a NUL inside the body */
        struct store_idem_record r;
        record_fill(&r, (uint8_t)w->id, "/v1/x", body, (size_t)n + 5, now + 60000);
        rcache_put(w->c, "threads", key, &r, now);
        int rc = rcache_get(w->c, "threads", key, now, capture, &g);
        if (rc == 0 && g.body_len == r.body_len && memcmp(g.body, body, r.body_len) == 0) {
            w->hits++;
        } else {
            w->failures++;
        }
        g.calls = 0;
        /* Everyone reads the shared record. */
        rc = rcache_get(w->c, "threads", "shared", now, capture, &g);
        if (rc == 0 && g.body_len == 6 && memcmp(g.body, "shared", 6) == 0) {
            w->hits++;
        } else {
            w->failures++;
        }
        g.calls = 0;
    }
    got_release(&g);
    return NULL;
}

static void test_eight_threads(void **state)
{
    (void)state;
    NEED_REDIS();
    enum { THREADS = 8 };
    struct counts before;
    counts_read(&before);
    struct rcache *c = cache_direct(main_port, 500, 5, 1000);
    int64_t now = clock_unix_ms();
    struct store_idem_record r;
    record_fill(&r, 1, "", "shared", 6, now + 600000);
    rcache_put(c, "threads", "shared", &r, now);

    pthread_t t[THREADS];
    struct worker w[THREADS];
    int64_t t0 = mono_ms();
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.c = c, .id = i};
        assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
    }
    int hits = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].failures, 0);
        hits += w[i].hits;
    }
    print_message("8 threads: %d puts and %d gets in %lld ms\n", THREADS * 300, hits,
                  (long long)(mono_ms() - t0));
    assert_int_equal(hits, THREADS * 600);
    assert_int_equal(looked(&before, METRICS_CACHE_HIT), hits);
    assert_int_equal(written(&before, METRICS_CACHE_WRITE_OK), THREADS * 300 + 1);
    assert_int_equal(looked(&before, METRICS_CACHE_ERROR), 0);
    /* The threads have exited: their connections were closed with them. Another thread's
     * connection is closed by rcache_free. */
    struct got g = {0};
    assert_int_equal(rcache_get(c, "threads", "shared", now, capture, &g), 0);
    got_release(&g);
    rcache_free(c);
}

/* ---------------------------------------------------------------------------------------
 * Set-up
 * ------------------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    if (!find_repo()) {
        fprintf(stderr, "test_rcache: scripts/redis.sh not found: set LEDGERD_SOURCE_DIR\n");
        return -1;
    }
    snprintf(work_dir, sizeof(work_dir), "/tmp/ledgerd-rcache-XXXXXX");
    if (mkdtemp(work_dir) == NULL) {
        return -1;
    }
    snprintf(log_path, sizeof(log_path), "%s/test.log", work_dir);
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -1;
    }
    log_setup(CONFIG_LOG_INFO, fd, "test");
    if (system("command -v redis-server >/dev/null 2>&1") != 0) {
        fprintf(stderr, "test_rcache: redis-server is not installed: skipping what needs it\n");
        return 0;
    }
    int port = free_port();
    if (redis_sh("start '%s/main' %d", work_dir, port) != 0) {
        return -1;
    }
    main_port = port;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (main_port != 0) {
        (void)redis_sh("stop '%s/main'", work_dir);
    }
    /* Whatever a failed test left running. */
    static const char *const dirs[] = {"flaky",       "intermittent", "s-master",    "s-replica",
                                       "s-sentinel0", "s-sentinel1",  "s-sentinel2", "ro-a",
                                       "ro-x",        "ro-replica"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        (void)redis_sh("stop '%s/%s' 2>/dev/null", work_dir, dirs[i]);
    }
    if (getenv("RCACHE_TEST_KEEP") == NULL) {
        char cmd[PATH_MAX + 16];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", work_dir);
        (void)!system(cmd);
    } else {
        fprintf(stderr, "test_rcache: kept %s\n", work_dir);
    }
    return 0;
}

int main(void)
{
    /* As ledgerd serve does: a write to a connection Redis closed must not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_is_checked_without_redis),
        cmocka_unit_test(test_nothing_listening_means_ask_the_database),
        cmocka_unit_test(test_round_trip_is_exact),
        cmocka_unit_test(test_callback_answer_is_returned),
        cmocka_unit_test(test_max_sizes),
        cmocka_unit_test(test_miss),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_principal_scoping),
        cmocka_unit_test(test_garbage_values_are_misses),
        cmocka_unit_test(test_breaker_on_timeouts),
        cmocka_unit_test(test_breaker_redis_down_and_back),
        cmocka_unit_test(test_breaker_counts_consecutive_failures),
        cmocka_unit_test(test_sentinel_names_master_and_role_is_checked),
        cmocka_unit_test(test_sentinel_failover),
        cmocka_unit_test(test_eight_threads),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
