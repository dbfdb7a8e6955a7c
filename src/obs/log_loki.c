/*
 * log_loki.c — the Loki sink: lines are gathered into batches (by count, bytes and time) and
 * POSTed to <LEDGERD_LOKI_URL>/loki/api/v1/push with libcurl, from the sink's own thread.
 *
 * A push that fails for a reason that may pass (no connection, a timeout, 429, 5xx) is tried
 * again with a doubling wait, LOG_LOKI_ATTEMPTS_MAX times in all; then its lines are dropped and
 * counted, with one warning per lost batch. A 4xx other than 429 means Loki refuses the batch
 * itself (too old, too large, bad labels): it is dropped at once, with Loki's reason. While a
 * push waits, new lines wait in the queue. Credentials come from files (config.c) and are handed
 * to libcurl only; the URL in messages is the configured one, which holds none.
 */
#include "obs/log_loki.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/assert.h"
#include "core/clock.h"
#include "core/limits.h"
#include "obs/log_sink.h"

#define NS_PER_MS 1000000LL
/* Loki's reply quoted in a warning, at most. */
#define LOG_LOKI_REPLY_BYTES_MAX 256
/* The wait before the first retry; it doubles up to LOG_LOKI_RETRY_WAIT_MS_MAX. */
#define LOG_LOKI_RETRY_WAIT_MS_MIN 250
#define LOG_LOKI_RETRY_WAIT_MS_MAX 4000
#define LOG_LOKI_CONNECT_TIMEOUT_MS 5000

static const char *const loki_levels[] = {"debug", "info", "warn", "error"};

/* ===== Batches ===== */

int log_loki_batch_init(struct log_loki_batch *b, size_t count_max, size_t text_bytes_max)
{
    ASSERT(b != NULL && count_max > 0 && text_bytes_max >= LIMIT_LOG_LINE_BYTES_MAX);
    ASSERT(text_bytes_max <= UINT32_MAX);
    memset(b, 0, sizeof(*b));
    b->entries = calloc(count_max, sizeof(b->entries[0]));
    b->text = malloc(text_bytes_max);
    if (b->entries == NULL || b->text == NULL) {
        log_loki_batch_release(b);
        return -ENOMEM;
    }
    b->count_max = count_max;
    b->text_bytes_max = text_bytes_max;
    return 0;
}

void log_loki_batch_release(struct log_loki_batch *b)
{
    ASSERT(b != NULL);
    free(b->entries);
    b->entries = NULL;
    free(b->text);
    b->text = NULL;
    b->count = b->count_max = b->text_len = b->text_bytes_max = 0;
}

void log_loki_batch_reset(struct log_loki_batch *b)
{
    b->count = 0;
    b->text_len = 0;
    b->first_mono_ns = 0;
}

int log_loki_batch_add(struct log_loki_batch *b, enum config_log_level level, int64_t unix_ns,
                       const char *line, size_t len, int64_t now_mono_ns)
{
    ASSERT(b != NULL && b->entries != NULL && (line != NULL || len == 0));
    ASSERT(level >= CONFIG_LOG_DEBUG && level <= CONFIG_LOG_ERROR);
    if (len > 0 && line[len - 1] == '\n') {
        len--;
    }
    if (b->count >= b->count_max || b->text_bytes_max - b->text_len < len) {
        return -ENOSPC;
    }
    if (b->count == 0) {
        b->first_mono_ns = now_mono_ns;
    }
    memcpy(b->text + b->text_len, line, len);
    b->entries[b->count] = (struct log_loki_entry){
        .unix_ns = unix_ns, .offset = (uint32_t)b->text_len, .len = (uint32_t)len, .level = level};
    b->text_len += len;
    b->count++;
    return 0;
}

bool log_loki_batch_due(const struct log_loki_batch *b, int64_t now_mono_ns, uint32_t wait_ms)
{
    if (b->count == 0) {
        return false;
    }
    return b->count >= b->count_max ||
           now_mono_ns - b->first_mono_ns >= (int64_t)wait_ms * NS_PER_MS;
}

int log_loki_batch_json(const struct log_loki_batch *b, const char *environment, struct buf *out)
{
    ASSERT(b != NULL && environment != NULL && out != NULL);
    int rc = buf_append_str(out, "{\"streams\":[");
    bool first_stream = true;
    for (size_t level = 0; rc == 0 && level < 4; level++) {
        bool first_value = true;
        for (size_t i = 0; rc == 0 && i < b->count; i++) {
            const struct log_loki_entry *e = &b->entries[i];
            if ((size_t)e->level != level) {
                continue;
            }
            if (first_value) {
                rc = buf_append_str(out, first_stream ? "" : ",");
                if (rc == 0) {
                    rc = buf_append_str(out,
                                        "{\"stream\":{\"service\":\"ledgerd\",\"environment\":");
                }
                if (rc == 0) {
                    rc = buf_append_json_str(out, environment, strlen(environment));
                }
                if (rc == 0) {
                    rc = buf_appendf(out, ",\"level\":\"%s\"},\"values\":[", loki_levels[level]);
                }
                first_stream = false;
            }
            if (rc == 0) {
                rc =
                    buf_appendf(out, "%s[\"%lld\",", first_value ? "" : ",", (long long)e->unix_ns);
            }
            if (rc == 0) {
                rc = buf_append_json_str(out, b->text + e->offset, e->len);
            }
            if (rc == 0) {
                rc = buf_append_char(out, ']');
            }
            first_value = false;
        }
        if (rc == 0 && !first_value) {
            rc = buf_append_str(out, "]}");
        }
    }
    if (rc == 0) {
        rc = buf_append_str(out, "]}");
    }
    return rc;
}

/* ===== The sink ===== */

struct loki_sink {
    CURL *curl;
    struct curl_slist *headers;
    char url[2200];       /* the push endpoint */
    char environment[32]; /* the environment label */
    uint32_t batch_wait_ms;
    struct log_loki_batch batch;
    struct buf body;
    char reply[LOG_LOKI_REPLY_BYTES_MAX + 1];
    size_t reply_len;
    char curl_error[CURL_ERROR_SIZE];
    bool failing;
};

static size_t loki_reply_cb(char *data, size_t size, size_t nmemb, void *arg)
{
    struct loki_sink *k = arg;
    size_t n = size * nmemb;
    size_t room = LOG_LOKI_REPLY_BYTES_MAX - k->reply_len;
    size_t take = n < room ? n : room;
    memcpy(k->reply + k->reply_len, data, take);
    k->reply_len += take;
    k->reply[k->reply_len] = '\0';
    return n;
}

/* The reply made printable for a message: control bytes become spaces. */
static void loki_reply_clean(struct loki_sink *k)
{
    for (size_t i = 0; i < k->reply_len; i++) {
        unsigned char c = (unsigned char)k->reply[i];
        if (c < 0x20 || c == 0x7f) {
            k->reply[i] = ' ';
        }
    }
}

static void sleep_until(int64_t mono_ns)
{
    int64_t wait = mono_ns - clock_mono_ns();
    if (wait > 0) {
        struct timespec ts = {(time_t)(wait / 1000000000LL), (long)(wait % 1000000000LL)};
        (void)nanosleep(&ts, NULL);
    }
}

/* Sends the batch, with retries until LOG_LOKI_ATTEMPTS_MAX or deadline_mono_ns; counts its
 * lines written or dropped, and empties it. */
static void loki_push(struct loki_sink *k, int64_t deadline_mono_ns)
{
    if (k->batch.count == 0) {
        return;
    }
    buf_reset(&k->body);
    int rc = log_loki_batch_json(&k->batch, k->environment, &k->body);
    ASSERT(rc == 0); /* the body was sized for a full batch */
    curl_easy_setopt(k->curl, CURLOPT_POSTFIELDS, k->body.data);
    curl_easy_setopt(k->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)k->body.len);

    long status = 0;
    CURLcode res = CURLE_OK;
    uint32_t wait_ms = LOG_LOKI_RETRY_WAIT_MS_MIN;
    int attempt = 0;
    for (;;) {
        attempt++;
        k->reply_len = 0;
        k->reply[0] = '\0';
        k->curl_error[0] = '\0';
        status = 0;
        res = curl_easy_perform(k->curl);
        if (res == CURLE_OK) {
            curl_easy_getinfo(k->curl, CURLINFO_RESPONSE_CODE, &status);
        }
        bool ok = res == CURLE_OK && status >= 200 && status < 300;
        bool may_pass = res != CURLE_OK || status == 429 || status >= 500;
        if (ok || !may_pass || attempt >= LOG_LOKI_ATTEMPTS_MAX ||
            clock_mono_ns() + (int64_t)wait_ms * NS_PER_MS > deadline_mono_ns) {
            break;
        }
        sleep_until(clock_mono_ns() + (int64_t)wait_ms * NS_PER_MS);
        wait_ms =
            wait_ms * 2 > LOG_LOKI_RETRY_WAIT_MS_MAX ? LOG_LOKI_RETRY_WAIT_MS_MAX : wait_ms * 2;
    }

    if (res == CURLE_OK && status >= 200 && status < 300) {
        log_count_written(LOG_SINK_LOKI, k->batch.count);
        if (k->failing) {
            k->failing = false;
            log_sink_report(CONFIG_LOG_WARN, "loki sink: pushing to %s again", k->url);
        }
    } else {
        log_count_dropped(LOG_SINK_LOKI, k->batch.count);
        loki_reply_clean(k);
        k->failing = true;
        char fields[128];
        (void)snprintf(fields, sizeof(fields),
                       "\"sink\":\"loki\",\"dropped_lines\":%zu,\"attempts\":%d", k->batch.count,
                       attempt);
        char msg[LOG_LOKI_REPLY_BYTES_MAX + CURL_ERROR_SIZE + 2400];
        if (res != CURLE_OK) {
            (void)snprintf(
                msg, sizeof(msg), "loki sink: push to %s failed: %s; %zu line(s) dropped", k->url,
                k->curl_error[0] != '\0' ? k->curl_error : curl_easy_strerror(res), k->batch.count);
        } else {
            (void)snprintf(msg, sizeof(msg),
                           "loki sink: push to %s failed: HTTP %ld %s; %zu line(s) dropped", k->url,
                           status, k->reply, k->batch.count);
        }
        log_event(CONFIG_LOG_WARN, NULL, msg, fields);
    }
    log_loki_batch_reset(&k->batch);
}

static int loki_write(void *state, const struct log_record *rec, const char *line)
{
    struct loki_sink *k = state;
    ASSERT(k != NULL && rec != NULL && line != NULL);
    int64_t now = clock_mono_ns();
    if (log_loki_batch_add(&k->batch, rec->level, rec->unix_ns, line, rec->len, now) != 0) {
        loki_push(k, INT64_MAX);
        int rc = log_loki_batch_add(&k->batch, rec->level, rec->unix_ns, line, rec->len, now);
        ASSERT(rc == 0); /* an empty batch takes any line */
    }
    if (k->batch.count >= k->batch.count_max) {
        loki_push(k, INT64_MAX);
    }
    return 0;
}

static int64_t loki_tick(void *state, int64_t now_mono_ns)
{
    struct loki_sink *k = state;
    if (log_loki_batch_due(&k->batch, now_mono_ns, k->batch_wait_ms)) {
        loki_push(k, INT64_MAX);
        now_mono_ns = clock_mono_ns();
    }
    int64_t next = now_mono_ns + (int64_t)LOG_SINK_TICK_MS * NS_PER_MS;
    if (k->batch.count > 0) {
        int64_t due = k->batch.first_mono_ns + (int64_t)k->batch_wait_ms * NS_PER_MS;
        next = due < next ? due : next;
    }
    return next;
}

static void loki_close(void *state, int64_t deadline_mono_ns)
{
    struct loki_sink *k = state;
    if (k == NULL) {
        return;
    }
    loki_push(k, deadline_mono_ns);
    if (k->curl != NULL) {
        curl_easy_cleanup(k->curl);
    }
    curl_slist_free_all(k->headers);
    log_loki_batch_release(&k->batch);
    buf_release(&k->body);
    free(k);
    curl_global_cleanup();
}

int log_loki_open(const struct config *cfg, void **state)
{
    ASSERT(cfg != NULL && state != NULL);
    ASSERT(cfg->loki_url[0] != '\0'); /* config.c refuses the loki sink without a URL */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "ledgerd: loki sink: libcurl cannot start\n");
        return -ENOMEM;
    }
    struct loki_sink *k = calloc(1, sizeof(*k));
    if (k == NULL) {
        curl_global_cleanup();
        return -ENOMEM;
    }
    (void)snprintf(k->url, sizeof(k->url), "%s/loki/api/v1/push", cfg->loki_url);
    (void)snprintf(k->environment, sizeof(k->environment), "%s", config_env_name(cfg->env));
    k->batch_wait_ms = cfg->loki_batch_wait_ms;
    /* Every line may need two bytes per byte once escaped, plus its timestamp and brackets. */
    buf_init(&k->body, 2 * (size_t)LOG_LOKI_BATCH_BYTES_MAX + 64 * (size_t)cfg->loki_batch_lines +
                           (size_t)64 * 1024);
    char tenant[sizeof(cfg->loki_tenant) + 32];
    (void)snprintf(tenant, sizeof(tenant), "X-Scope-OrgID: %s", cfg->loki_tenant);
    char agent[64];
    (void)snprintf(agent, sizeof(agent), "ledgerd/%s", LEDGERD_VERSION);
    int rc = log_loki_batch_init(&k->batch, cfg->loki_batch_lines, LOG_LOKI_BATCH_BYTES_MAX);
    if (rc == 0) {
        k->curl = curl_easy_init();
        k->headers = curl_slist_append(NULL, "Content-Type: application/json");
        struct curl_slist *h = curl_slist_append(k->headers, "Expect:");
        if (h != NULL && cfg->loki_tenant[0] != '\0') {
            h = curl_slist_append(h, tenant);
        }
        if (k->curl == NULL || k->headers == NULL || h == NULL) {
            rc = -ENOMEM;
        }
    }
    if (rc != 0) {
        fprintf(stderr, "ledgerd: loki sink: out of memory\n");
        loki_close(k, 0);
        return rc;
    }
    CURL *c = k->curl;
    curl_easy_setopt(c, CURLOPT_URL, k->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, k->headers);
    curl_easy_setopt(c, CURLOPT_USERAGENT, agent);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)LOG_LOKI_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)LOG_LOKI_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, loki_reply_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, k);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, k->curl_error);
    if (cfg->loki_password[0] != '\0') {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERNAME, cfg->loki_username);
        curl_easy_setopt(c, CURLOPT_PASSWORD, cfg->loki_password); /* libcurl keeps a copy */
    } else if (cfg->loki_bearer_token[0] != '\0') {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
        curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, cfg->loki_bearer_token);
    }
    *state = k;
    return 0;
}

const struct log_sink_ops log_loki_ops = {
    .write = loki_write,
    .tick = loki_tick,
    .close = loki_close,
    .counts_itself = true,
};
