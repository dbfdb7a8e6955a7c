/*
 * test_log_sink.c — the bounded queue in front of a sink: order, a full queue refusing without
 * waiting, records wrapping around the ring intact, stop semantics, timeouts, many producers;
 * and the backoff sequence.
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

#include "core/clock.h"
#include "core/limits.h"
#include "obs/log_sink.h"

#define HEADER_BYTES 16 /* the record header in the ring */
#define CAP (HEADER_BYTES + LIMIT_LOG_LINE_BYTES_MAX + 100)

static char got[LIMIT_LOG_LINE_BYTES_MAX];

static bool push_str(struct log_queue *q, const char *s, int64_t ns)
{
    struct log_record rec = {ns, (uint32_t)strlen(s), CONFIG_LOG_WARN};
    return log_queue_push(q, &rec, s);
}

static void test_order_and_content(void **state)
{
    (void)state;
    struct log_queue q;
    assert_int_equal(log_queue_init(&q, CAP), 0);
    assert_true(push_str(&q, "first\n", 1));
    assert_true(push_str(&q, "second\n", 2));
    assert_int_equal(log_queue_lines(&q), 2);
    struct log_record rec;
    assert_int_equal(log_queue_pop(&q, clock_mono_ns(), &rec, got, sizeof(got)), 1);
    assert_int_equal(rec.len, 6);
    assert_int_equal(rec.unix_ns, 1);
    assert_int_equal(rec.level, CONFIG_LOG_WARN);
    assert_memory_equal(got, "first\n", 6);
    assert_int_equal(log_queue_pop(&q, clock_mono_ns(), &rec, got, sizeof(got)), 1);
    assert_memory_equal(got, "second\n", 7);
    /* Empty: the deadline passes and 0 comes back. */
    int64_t t0 = clock_mono_ns();
    assert_int_equal(log_queue_pop(&q, t0 + 20000000, &rec, got, sizeof(got)), 0);
    assert_true(clock_mono_ns() - t0 >= 19000000);
    log_queue_release(&q);
}

static void test_full_refuses_and_wraps(void **state)
{
    (void)state;
    struct log_queue q;
    assert_int_equal(log_queue_init(&q, CAP), 0);
    static char big[LIMIT_LOG_LINE_BYTES_MAX];
    memset(big, 'b', sizeof(big));
    struct log_record rec = {7, sizeof(big), CONFIG_LOG_ERROR};
    assert_true(log_queue_push(&q, &rec, big));
    /* 100 bytes are left: a record of 84 bytes fits, one of 85 does not. */
    char small[128];
    memset(small, 's', sizeof(small));
    struct log_record r85 = {8, 85, CONFIG_LOG_INFO};
    assert_false(log_queue_push(&q, &r85, small));
    struct log_record r84 = {8, 84, CONFIG_LOG_INFO};
    assert_true(log_queue_push(&q, &r84, small));
    assert_false(log_queue_push(&q, &r84, small));
    assert_int_equal(log_queue_lines(&q), 2);

    /* Many rounds of pushes and pops move the records across the end of the ring. */
    struct log_record out;
    assert_int_equal(log_queue_pop(&q, 0, &out, got, sizeof(got)), 1);
    assert_int_equal(out.len, sizeof(big));
    for (int round = 0; round < 500; round++) {
        char line[200];
        int n = snprintf(line, sizeof(line), "round %d %0*d\n", round, round % 150, round);
        struct log_record r = {round, (uint32_t)n, CONFIG_LOG_DEBUG};
        assert_true(log_queue_push(&q, &r, line));
        assert_int_equal(log_queue_pop(&q, 0, &out, got, sizeof(got)), 1);
        if (round == 0) {
            assert_int_equal(out.len, 84); /* the small one from before */
            assert_int_equal(log_queue_pop(&q, 0, &out, got, sizeof(got)), 1);
        }
        assert_int_equal(out.len, (uint32_t)n);
        assert_int_equal(out.unix_ns, round);
        assert_memory_equal(got, line, (size_t)n);
    }
    log_queue_release(&q);
}

static void test_stop(void **state)
{
    (void)state;
    struct log_queue q;
    assert_int_equal(log_queue_init(&q, CAP), 0);
    assert_true(push_str(&q, "queued before stop\n", 1));
    log_queue_stop(&q);
    assert_false(push_str(&q, "after stop\n", 2)); /* refused: counted as dropped by log.c */
    struct log_record rec;
    int64_t far = clock_mono_ns() + 10LL * 1000000000;
    assert_int_equal(log_queue_pop(&q, far, &rec, got, sizeof(got)), 1); /* drained first */
    int64_t t0 = clock_mono_ns();
    assert_int_equal(log_queue_pop(&q, far, &rec, got, sizeof(got)), -ESHUTDOWN);
    assert_true(clock_mono_ns() - t0 < 1000000000); /* no waiting once stopped */
    log_queue_release(&q);
}

#define PRODUCERS 4
#define PER_PRODUCER 5000

struct shared {
    struct log_queue q;
    uint64_t refused;
    pthread_mutex_t mu;
};

static void *producer(void *arg)
{
    struct shared *sh = arg;
    static _Atomic int next_id;
    int id = next_id++;
    uint64_t refused = 0;
    for (int i = 0; i < PER_PRODUCER; i++) {
        char line[64];
        int n = snprintf(line, sizeof(line), "%d %d\n", id, i);
        struct log_record r = {id, (uint32_t)n, CONFIG_LOG_INFO};
        refused += log_queue_push(&sh->q, &r, line) ? 0 : 1;
    }
    pthread_mutex_lock(&sh->mu);
    sh->refused += refused;
    pthread_mutex_unlock(&sh->mu);
    return NULL;
}

static void test_many_producers(void **state)
{
    (void)state;
    static struct shared sh;
    assert_int_equal(log_queue_init(&sh.q, 64 * 1024), 0);
    pthread_mutex_init(&sh.mu, NULL);
    pthread_t t[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, producer, &sh), 0);
    }
    /* Consume concurrently; each producer's lines arrive in its own order. */
    int last[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        last[i] = -1;
    }
    uint64_t taken = 0;
    for (;;) {
        struct log_record rec;
        int rc = log_queue_pop(&sh.q, clock_mono_ns() + 200000000, &rec, got, sizeof(got));
        if (rc == 0) {
            break;
        }
        got[rec.len] = '\0';
        int id, seq;
        assert_int_equal(sscanf(got, "%d %d", &id, &seq), 2);
        assert_true(seq > last[id]);
        last[id] = seq;
        taken++;
    }
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(t[i], NULL);
    }
    struct log_record rec;
    while (log_queue_pop(&sh.q, 0, &rec, got, sizeof(got)) == 1) {
        taken++;
    }
    assert_int_equal(taken + sh.refused, (uint64_t)PRODUCERS * PER_PRODUCER);
    log_queue_release(&sh.q);
}

static void test_backoff(void **state)
{
    (void)state;
    uint32_t b = 0;
    int64_t now = 1000;
    assert_int_equal(log_sink_backoff(&b, now) - now, LOG_SINK_BACKOFF_MS_MIN * 1000000LL);
    assert_int_equal(log_sink_backoff(&b, now) - now, 2LL * LOG_SINK_BACKOFF_MS_MIN * 1000000LL);
    for (int i = 0; i < 40; i++) {
        (void)log_sink_backoff(&b, now);
    }
    assert_int_equal(log_sink_backoff(&b, now) - now, LOG_SINK_BACKOFF_MS_MAX * 1000000LL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_content),
        cmocka_unit_test(test_full_refuses_and_wraps),
        cmocka_unit_test(test_stop),
        cmocka_unit_test(test_many_producers),
        cmocka_unit_test(test_backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
