/*
 * log_sink.h — what log.c shares with its sinks: the bounded line queue in front of each sink,
 * the worker thread that drains it, the interface a sink implements, and the limits of it all.
 *
 * A producer (any thread calling log_event) copies its line into the sink's queue under a mutex
 * held only for that copy, and never waits for room: a full queue refuses the line, which is
 * counted as dropped. One worker thread per sink takes lines out in order and hands them to the
 * sink, which may block on its disk, socket or HTTP push without holding anyone else up.
 */
#ifndef LEDGERD_OBS_LOG_SINK_H
#define LEDGERD_OBS_LOG_SINK_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "obs/log.h"

/* A sink's thread wakes at least this often for its time-based work (rotation by age,
 * retention, batches, reconnects) even when no line comes. */
#define LOG_SINK_TICK_MS 200
/* A worker that emptied its queue lets lines gather this long before it waits for the next
 * one: under load it then takes them in bulk instead of being woken for each line. This is the
 * longest a line waits in the queue because of it. */
#define LOG_SINK_LINGER_MS 5
/* stdout's worker gathers at most this many bytes of lines into one write(2). */
#define LOG_STDOUT_BATCH_BYTES ((size_t)64 * 1024)
/* On shutdown the sinks get this long to write what is queued and flush; the rest is dropped. */
#define LOG_SINK_STOP_TIMEOUT_MS 5000
/* Reconnect and retry waits double from the first to the last (syslog, Loki, file reopen). */
#define LOG_SINK_BACKOFF_MS_MIN 100
#define LOG_SINK_BACKOFF_MS_MAX 10000

/* One queued line: when it was logged, its level, its length (the bytes follow). */
struct log_record {
    int64_t unix_ns;
    uint32_t len;
    enum config_log_level level;
};

/* ===== The queue ===== */

struct log_queue {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled when a line arrives or stop is asked */
    char *ring;        /* cap_bytes bytes: records (header + line) one after the other, wrapping */
    size_t cap_bytes;
    size_t head;  /* offset of the oldest record */
    size_t used;  /* bytes of records in the ring */
    size_t lines; /* records in the ring */
    bool stopping;
};

/* Allocates a queue of cap_bytes (at least one full line fits). Returns 0 or -ENOMEM. */
int log_queue_init(struct log_queue *q, size_t cap_bytes);
void log_queue_release(struct log_queue *q);

/* Copies rec and its line (rec->len bytes) into q. Never waits for room: returns false when
 * the line does not fit (the caller counts it dropped). Thread-safe. */
bool log_queue_push(struct log_queue *q, const struct log_record *rec, const char *line);

/* Takes the oldest line into *rec and line (line_cap bytes, at least LIMIT_LOG_LINE_BYTES_MAX),
 * waiting until deadline_mono_ns for one (0: not waiting). Returns 1 when a line was taken, 0
 * at the deadline, or -ESHUTDOWN when stop was asked and the queue is empty. */
int log_queue_pop(struct log_queue *q, int64_t deadline_mono_ns, struct log_record *rec, char *line,
                  size_t line_cap);

/* Asks the worker to finish: pops still return queued lines, then -ESHUTDOWN. */
void log_queue_stop(struct log_queue *q);

/* Lines in the queue now. */
size_t log_queue_lines(struct log_queue *q);

/* ===== Sinks ===== */

/* Returned by a sink's write when the line should be handed again at its next wake time (a
 * socket to reconnect); any other negative value means the line is lost. */
#define LOG_SINK_RETRY (-EAGAIN)

struct log_sink_ops {
    /* Delivers one line (rec->len bytes, ending in '\n'). Returns 0, LOG_SINK_RETRY, or
     * another -errno when the line is lost. Counting is the worker's. */
    int (*write)(void *state, const struct log_record *rec, const char *line);
    /* Time-based work; returns when the sink wants to be woken next (monotonic ns). */
    int64_t (*tick)(void *state, int64_t now_mono_ns);
    /* Optional: delivers what write kept back (a sink that gathers lines into one system call).
     * Called when the queue is empty, so a line never waits for more lines to come. */
    void (*flush)(void *state);
    /* Final flush, at most until deadline_mono_ns, then frees state. */
    void (*close)(void *state, int64_t deadline_mono_ns);
    /* True when a line write accepted is only delivered later (a batch): the sink counts its
     * lines written or dropped itself, the worker only what write refused. */
    bool counts_itself;
};

/* Counters kept by log.c, fed by the workers and the sinks (a Loki batch lost after its
 * retries is counted by the sink itself). */
void log_count_written(enum log_sink sink, uint64_t lines);
void log_count_dropped(enum log_sink sink, uint64_t lines);

/* Writes an error or notice about a sink itself: to the log (every sink, this one included)
 * and, for errors, to stderr as "ledgerd: <text>". */
__attribute__((format(printf, 2, 3))) void log_sink_report(enum config_log_level level,
                                                           const char *fmt, ...);

/* Next wait after a failure: doubles *backoff_ms within LOG_SINK_BACKOFF_MS_MIN..MAX and
 * returns the time to retry (monotonic ns). */
int64_t log_sink_backoff(uint32_t *backoff_ms, int64_t now_mono_ns);

/* ===== The sinks (log_file.c, log_syslog.c, log_loki.c) ===== */

/* Each opens its sink from cfg; returns 0 and *state, or -errno with the reason on stderr. */
int log_file_open(const struct config *cfg, void **state);
int log_syslog_open(const struct config *cfg, void **state);
int log_loki_open(const struct config *cfg, void **state);
extern const struct log_sink_ops log_file_ops;
extern const struct log_sink_ops log_syslog_ops;
extern const struct log_sink_ops log_loki_ops;

/* ===== Workers (log_sink.c) ===== */

/* A sink with its queue and thread. */
struct log_worker {
    const struct log_sink_ops *ops;
    void *state;
    struct log_queue queue;
    pthread_t thread;
    _Atomic int64_t stop_deadline_mono_ns; /* 0 until stop is asked */
    enum log_sink sink;
    bool started;
};

/* Starts w's thread (every signal blocked in it) over an initialised queue and an opened sink;
 * the worker owns state from here on. Returns 0 or -errno. */
int log_worker_start(struct log_worker *w);

/* Asks w to finish by deadline_mono_ns and waits for it (a little past the deadline at most).
 * The queue's memory stays allocated: a late producer finds it stopping and counts a drop. */
void log_worker_stop(struct log_worker *w, int64_t deadline_mono_ns);

/* SIGHUP: the file sink reopens its file before its next line (after an outside rotation). */
void log_file_request_reopen(void);

#endif
