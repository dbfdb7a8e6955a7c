/*
 * dbwork.c — the database work pool: threads that run the part of a request that waits on the
 * network (a PostgreSQL read, a Redis lookup, an API key's row), so that no I/O thread ever
 * blocks on a database.
 *
 * An I/O thread suspends the connection and queues the request; a pool thread runs it
 * (authorization, idempotency, the handler) and either resumes the connection with the reply
 * ready or hands the command to the commit workers, whose completion resumes it. The queue is
 * bounded in length (a full queue is answered 503 queue_full by the I/O thread at once) and in
 * time: a request that waited longer than the pool's acquire timeout is answered 503 without
 * running, as it would have been by the pool.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/assert.h"
#include "core/clock.h"
#include "http/http_internal.h"
#include "obs/metrics.h"

struct http_dbwork {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct http_request *head; /* under lock */
    struct http_request *tail; /* under lock */
    uint32_t depth;            /* under lock */
    uint32_t depth_max;
    bool stopping;       /* under lock */
    int64_t wait_max_ns; /* a request that waited longer is expired, not run */
    void (*run)(struct http_request *req);
    void (*expired)(struct http_request *req);
    pthread_t *threads;
    uint32_t threads_count;
};

static void *http_dbwork_main(void *arg)
{
    struct http_dbwork *w = arg;
    (void)pthread_setname_np(pthread_self(), "ledgerd-dbwork");
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (w->head == NULL && !w->stopping) {
            pthread_cond_wait(&w->wake, &w->lock);
        }
        if (w->head == NULL) {
            break; /* stopping, and the queue is empty */
        }
        struct http_request *req = w->head;
        w->head = req->dbwork_next;
        if (w->head == NULL) {
            w->tail = NULL;
        }
        w->depth--;
        metrics_gauge_add(METRIC_DB_WORK_QUEUE_DEPTH, 0, -1);
        pthread_mutex_unlock(&w->lock);
        req->dbwork_next = NULL;
        if (clock_mono_ns() - req->dbwork_queued_mono_ns > w->wait_max_ns) {
            w->expired(req);
        } else {
            w->run(req);
        }
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int http_dbwork_start(uint32_t threads, uint32_t depth_max, uint32_t wait_max_ms,
                      void (*run)(struct http_request *req),
                      void (*expired)(struct http_request *req), struct http_dbwork **out)
{
    ASSERT(threads >= 1 && depth_max >= 1 && run != NULL && expired != NULL && out != NULL);
    *out = NULL;
    struct http_dbwork *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return -ENOMEM;
    }
    w->threads = calloc(threads, sizeof(w->threads[0]));
    if (w->threads == NULL) {
        free(w);
        return -ENOMEM;
    }
    w->depth_max = depth_max;
    w->wait_max_ns = (int64_t)wait_max_ms * 1000000;
    w->run = run;
    w->expired = expired;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    for (uint32_t i = 0; i < threads; i++) {
        int rc = pthread_create(&w->threads[i], NULL, http_dbwork_main, w);
        if (rc != 0) {
            http_dbwork_stop(w);
            return -rc;
        }
        w->threads_count++;
    }
    *out = w;
    return 0;
}

int http_dbwork_submit(struct http_dbwork *w, struct http_request *req)
{
    ASSERT(w != NULL && req != NULL);
    pthread_mutex_lock(&w->lock);
    if (w->stopping || w->depth >= w->depth_max) {
        pthread_mutex_unlock(&w->lock);
        metrics_add(METRIC_DB_WORK_REJECTIONS, 0, 1);
        return -EAGAIN;
    }
    req->dbwork_next = NULL;
    req->dbwork_queued_mono_ns = clock_mono_ns();
    if (w->tail == NULL) {
        w->head = req;
    } else {
        w->tail->dbwork_next = req;
    }
    w->tail = req;
    w->depth++;
    metrics_gauge_add(METRIC_DB_WORK_QUEUE_DEPTH, 0, 1);
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    return 0;
}

void http_dbwork_stop(struct http_dbwork *w)
{
    if (w == NULL) {
        return;
    }
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->lock);
    for (uint32_t i = 0; i < w->threads_count; i++) {
        int rc = pthread_join(w->threads[i], NULL);
        ASSERT(rc == 0);
    }
    ASSERT(w->head == NULL); /* the threads leave only with an empty queue */
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    free(w->threads);
    free(w);
}
