/*
 * log_sink.c — the bounded queue in front of each log sink and the worker thread that drains it.
 *
 * The queue is one ring of bytes allocated at start: records (a fixed header, then the line)
 * follow each other and wrap at the end, so a short line costs its length and not a full slot.
 * Producers hold the mutex only to copy their line in; they never wait for room.
 */
#include "obs/log_sink.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/assert.h"
#include "core/clock.h"
#include "core/limits.h"

#define NS_PER_MS 1000000LL

/* The header as stored in the ring. */
struct queue_header {
    int64_t unix_ns;
    uint32_t len;
    uint32_t level;
};

/* ===== The queue ===== */

int log_queue_init(struct log_queue *q, size_t cap_bytes)
{
    ASSERT(q != NULL);
    ASSERT(cap_bytes >= sizeof(struct queue_header) + LIMIT_LOG_LINE_BYTES_MAX);
    memset(q, 0, sizeof(*q));
    q->ring = malloc(cap_bytes);
    if (q->ring == NULL) {
        return -ENOMEM;
    }
    q->cap_bytes = cap_bytes;
    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cv, &attr);
    pthread_condattr_destroy(&attr);
    return 0;
}

void log_queue_release(struct log_queue *q)
{
    ASSERT(q != NULL);
    if (q->ring == NULL) {
        return;
    }
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    free(q->ring);
    q->ring = NULL;
}

/* Copies n bytes into the ring at offset off, wrapping. */
static void ring_put(struct log_queue *q, size_t off, const void *src, size_t n)
{
    size_t first = q->cap_bytes - off < n ? q->cap_bytes - off : n;
    memcpy(q->ring + off, src, first);
    memcpy(q->ring, (const char *)src + first, n - first);
}

static void ring_get(const struct log_queue *q, size_t off, void *dst, size_t n)
{
    size_t first = q->cap_bytes - off < n ? q->cap_bytes - off : n;
    memcpy(dst, q->ring + off, first);
    memcpy((char *)dst + first, q->ring, n - first);
}

bool log_queue_push(struct log_queue *q, const struct log_record *rec, const char *line)
{
    ASSERT(q != NULL && rec != NULL && line != NULL);
    ASSERT(rec->len <= LIMIT_LOG_LINE_BYTES_MAX);
    struct queue_header h = {rec->unix_ns, rec->len, (uint32_t)rec->level};
    size_t need = sizeof(h) + rec->len;
    bool ok = false;
    pthread_mutex_lock(&q->mu);
    if (!q->stopping && q->cap_bytes - q->used >= need) {
        /* The worker waits only on an empty queue: wake it only then (no futex call per line
         * while it is busy). */
        bool was_empty = q->used == 0;
        size_t tail = (q->head + q->used) % q->cap_bytes;
        ring_put(q, tail, &h, sizeof(h));
        ring_put(q, (tail + sizeof(h)) % q->cap_bytes, line, rec->len);
        q->used += need;
        q->lines++;
        ok = true;
        if (was_empty) {
            pthread_cond_signal(&q->cv);
        }
    }
    pthread_mutex_unlock(&q->mu);
    return ok;
}

int log_queue_pop(struct log_queue *q, int64_t deadline_mono_ns, struct log_record *rec, char *line,
                  size_t line_cap)
{
    ASSERT(q != NULL && rec != NULL && line != NULL);
    ASSERT(line_cap >= LIMIT_LOG_LINE_BYTES_MAX);
    struct timespec until = {(time_t)(deadline_mono_ns / 1000000000LL),
                             (long)(deadline_mono_ns % 1000000000LL)};
    int rc = 0;
    pthread_mutex_lock(&q->mu);
    while (q->used == 0 && !q->stopping && deadline_mono_ns > 0) {
        if (pthread_cond_timedwait(&q->cv, &q->mu, &until) == ETIMEDOUT) {
            break;
        }
    }
    if (q->used > 0) {
        struct queue_header h;
        ring_get(q, q->head, &h, sizeof(h));
        ASSERT(h.len <= line_cap && sizeof(h) + h.len <= q->used);
        ring_get(q, (q->head + sizeof(h)) % q->cap_bytes, line, h.len);
        q->head = (q->head + sizeof(h) + h.len) % q->cap_bytes;
        q->used -= sizeof(h) + h.len;
        q->lines--;
        rec->unix_ns = h.unix_ns;
        rec->len = h.len;
        rec->level = (enum config_log_level)h.level;
        rc = 1;
    } else if (q->stopping) {
        rc = -ESHUTDOWN;
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

void log_queue_stop(struct log_queue *q)
{
    ASSERT(q != NULL);
    pthread_mutex_lock(&q->mu);
    q->stopping = true;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

size_t log_queue_lines(struct log_queue *q)
{
    pthread_mutex_lock(&q->mu);
    size_t n = q->lines;
    pthread_mutex_unlock(&q->mu);
    return n;
}

/* ===== Backoff ===== */

int64_t log_sink_backoff(uint32_t *backoff_ms, int64_t now_mono_ns)
{
    ASSERT(backoff_ms != NULL);
    if (*backoff_ms < LOG_SINK_BACKOFF_MS_MIN) {
        *backoff_ms = LOG_SINK_BACKOFF_MS_MIN;
    }
    int64_t wait_ns = (int64_t)*backoff_ms * NS_PER_MS;
    *backoff_ms =
        *backoff_ms * 2 > LOG_SINK_BACKOFF_MS_MAX ? LOG_SINK_BACKOFF_MS_MAX : *backoff_ms * 2;
    return now_mono_ns + wait_ns;
}

/* ===== Workers ===== */

static void sleep_ns(int64_t ns)
{
    if (ns <= 0) {
        return;
    }
    struct timespec ts = {(time_t)(ns / 1000000000LL), (long)(ns % 1000000000LL)};
    (void)nanosleep(&ts, NULL);
}

static bool past_stop_deadline(struct log_worker *w, int64_t now)
{
    int64_t deadline = atomic_load(&w->stop_deadline_mono_ns);
    return deadline != 0 && now >= deadline;
}

static bool stop_asked(struct log_worker *w)
{
    return atomic_load(&w->stop_deadline_mono_ns) != 0;
}

static void *worker_main(void *arg)
{
    struct log_worker *w = arg;
    char thread_name[16]; /* the kernel's limit, NUL included */
    (void)snprintf(thread_name, sizeof(thread_name), "ledgerd-%s", log_sink_name(w->sink));
    (void)pthread_setname_np(pthread_self(), thread_name); /* for top -H, perf, gdb */
    const int64_t tick_ns = (int64_t)LOG_SINK_TICK_MS * NS_PER_MS;
    char line[LIMIT_LOG_LINE_BYTES_MAX];
    struct log_record rec;
    bool have = false;      /* a line handed back for a retry */
    bool giving_up = false; /* stopping with a sink that cannot deliver: drop what is left */
    int64_t next_tick = 0;  /* when the sink's time-based work is due */
    int64_t retry_at = 0;   /* when the held line may be tried again */

    for (;;) {
        int64_t now = clock_mono_ns();
        if (now >= next_tick) {
            next_tick = w->ops->tick(w->state, now);
            if (next_tick > now + tick_ns) {
                next_tick = now + tick_ns;
            }
        }
        if (!have) {
            int rc = log_queue_pop(&w->queue, 0, &rec, line, sizeof(line));
            if (rc == 0) {
                /* Empty: deliver what the sink gathered, let the next lines gather for a moment,
                 * then wait for them. */
                if (w->ops->flush != NULL) {
                    w->ops->flush(w->state);
                }
                if (!stop_asked(w)) {
                    sleep_ns((int64_t)LOG_SINK_LINGER_MS * NS_PER_MS);
                }
                rc = log_queue_pop(&w->queue, next_tick, &rec, line, sizeof(line));
            }
            if (rc == -ESHUTDOWN) {
                break;
            }
            if (rc == 0) {
                continue;
            }
            have = true;
        } else if (now < retry_at && !giving_up && !stop_asked(w)) {
            int64_t wait = retry_at - now;
            sleep_ns(wait < 50 * NS_PER_MS ? wait : 50 * NS_PER_MS);
            continue;
        }
        if (giving_up || past_stop_deadline(w, clock_mono_ns())) {
            log_count_dropped(w->sink, 1); /* out of time: what is left is lost, counted */
            have = false;
            continue;
        }
        int rc = w->ops->write(w->state, &rec, line);
        if (rc == LOG_SINK_RETRY) {
            if (stop_asked(w)) {
                giving_up = true; /* no waiting out a backoff on the way out */
            } else {
                retry_at = w->ops->tick(w->state, clock_mono_ns());
            }
            continue;
        }
        have = false;
        if (rc == 0) {
            log_count_written(w->sink, w->ops->counts_itself ? 0 : 1);
        } else {
            log_count_dropped(w->sink, 1);
        }
    }
    int64_t deadline = atomic_load(&w->stop_deadline_mono_ns);
    w->ops->close(w->state, deadline != 0 ? deadline : clock_mono_ns());
    w->state = NULL;
    return NULL;
}

int log_worker_start(struct log_worker *w)
{
    ASSERT(w != NULL && w->ops != NULL && w->queue.ring != NULL);
    /* The thread inherits the creator's mask: block everything so signals stay with the
     * thread that waits for them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    atomic_store(&w->stop_deadline_mono_ns, 0);
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        return -rc;
    }
    w->started = true;
    return 0;
}

void log_worker_stop(struct log_worker *w, int64_t deadline_mono_ns)
{
    ASSERT(w != NULL);
    if (!w->started) {
        return;
    }
    w->started = false;
    atomic_store(&w->stop_deadline_mono_ns, deadline_mono_ns);
    log_queue_stop(&w->queue);
    /* The sink's own waits end by the deadline; a second more covers a blocked syscall. */
    int64_t until_ns = deadline_mono_ns + 1000 * NS_PER_MS - clock_mono_ns() + clock_unix_ns();
    struct timespec until = {(time_t)(until_ns / 1000000000LL), (long)(until_ns % 1000000000LL)};
    if (pthread_timedjoin_np(w->thread, NULL, &until) != 0) {
        (void)pthread_detach(w->thread); /* still stuck: the process exits without it */
    }
}
