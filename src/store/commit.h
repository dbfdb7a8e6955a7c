/*
 * commit.h — the commit workers: threads that take ledger commands from one bounded queue and
 * commit them in batches (group commit), one database transaction and one fsync per batch.
 * SQLite has one worker (one writer); a concurrent store (PostgreSQL) one per writer
 * connection, each committing its own batches while the others fill theirs.
 *
 * For each batch: expire due pending transfers, load what the commands reference into the
 * ledger book, apply the commands in queue order, write the book's changes and the idempotency
 * records, commit, then complete every command (done callback). A command whose batch failed to
 * commit completes with 503 storage_unavailable and left nothing behind. On a concurrent store
 * the loads lock the rows until the commit, a command's idempotency key is looked up again in
 * the transaction (a response stored meanwhile by another replica is replayed, not applied
 * again), and a transaction that collided with another writer is run again from the start.
 */
#ifndef LEDGERD_STORE_COMMIT_H
#define LEDGERD_STORE_COMMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit/audit.h"
#include "core/buf.h"
#include "core/limits.h"
#include "core/sha256.h"
#include "ledger/ledger.h"
#include "obs/trace.h"
#include "store/store.h"

enum commit_kind {
    COMMIT_ACCOUNT_CREATE,  /* account */
    COMMIT_TRANSFER_CREATE, /* transfers[0], transfers_count == 1 */
    COMMIT_TRANSFER_BATCH,  /* transfers[0..transfers_count) */
};

struct commit_cmd {
    enum commit_kind kind;
    struct ledger_account account;
    struct ledger_transfer *transfers; /* owned by the submitter; must outlive done() */
    size_t transfers_count;

    /* Idempotency: idempotency_key[0] == '\0' means none. The record (principal, key,
     * request_digest, status, location, body) is written in the batch's transaction. */
    char principal[LIMIT_PRINCIPAL_LEN_MAX + 1];
    char idempotency_key[LIMIT_IDEMPOTENCY_KEY_LEN_MAX + 1];
    uint8_t request_digest[SHA256_BYTES];
    char request_id[LIMIT_REQUEST_ID_LEN_MAX + 1]; /* goes into problem bodies */

    /* Results, written by the worker before done(). body must be buf_init'ed by the submitter
     * (its len_max bounds the response). replayed: answered from the response stored under the
     * idempotency key by another writer meanwhile (a concurrent store), not applied. */
    int status;
    bool replayed;
    /* On a concurrent store, what the in-transaction idempotency check found (none without a
     * key): the request's lookup, when it was left to the worker. */
    enum commit_idem_outcome {
        COMMIT_IDEM_NONE,
        COMMIT_IDEM_MISS,   /* no record: the command was applied */
        COMMIT_IDEM_HIT,    /* a stored response, replayed */
        COMMIT_IDEM_REUSED, /* a record of another request: 422 idempotency_key_reused */
    } idem_outcome;
    bool body_is_problem;
    struct buf body;
    char location[LIMIT_ID_LEN_MAX + 32]; /* "" or "/v1/accounts/<id>" */
    int64_t queued_mono_ns;               /* set by commit_submit */
    int64_t dequeued_mono_ns;             /* set when the worker takes it into a batch */

    /* The request's trace context when its server span is sampled, else NULL: the batch's
     * span links to it. Must stay valid until done(). */
    const struct trace_context *trace;

    /* The request's audit record, NULL for none: the submitter fills actor, action, resource,
     * decision, request_id, trace_id and source; the worker sets the time and the outcome as
     * the reason, and appends it in the batch's transaction, so there is no effect without its
     * record and no record without its effect. Must stay valid until done(). */
    struct audit_record *audit;

    /* Called on the worker thread once the command's batch committed or failed. Must not block
     * and must not touch the command after handing it back to its owner. */
    void (*done)(struct commit_cmd *cmd);
    void *done_ctx;

    struct commit_cmd *next; /* queue link; owned by the worker while queued */
};

struct commit_config {
    uint32_t queue_depth_max; /* commands waiting; full -> -EAGAIN */
    uint32_t items_max;       /* ledger items per transaction (<= LIMIT_COMMIT_ITEMS_MAX) */
    uint32_t idempotency_ttl_seconds;
    uint32_t expiry_interval_ms; /* how often to look for due pendings when idle */
    /* Signed audit checkpoints (docs/security/audit.md): the worker signs the trail's tail when
     * audit_checkpoint_due says so. NULL signer: none. The signer stays the caller's and must
     * outlive the worker. */
    const struct audit_signer *audit_signer;
    uint32_t audit_checkpoint_records;
    uint32_t audit_checkpoint_interval_ms;
    /* Commit worker threads: at most store_writers() (SQLite: 1); 0 takes that many. */
    uint32_t workers;
};

struct commit;

/* Starts the worker thread. Returns 0, -ENOMEM, or the pthread error negated. */
int commit_start(struct store *s, const struct commit_config *cfg, struct commit **out);
/* Queues cmd. 0; -EAGAIN when the queue is full (answer 503 queue_full); -ESHUTDOWN when the
 * worker is stopping. Thread-safe. On 0, ownership of cmd passes to the worker until done(). */
int commit_submit(struct commit *c, struct commit_cmd *cmd);
/* Stops taking commands, commits what is queued (until deadline_mono_ns; commands still queued
 * then complete with 503 shutting_down), joins the thread and frees the worker. */
void commit_stop(struct commit *c, int64_t deadline_mono_ns);

/* Queues the audit record of something that had no effect (a refused request) for the worker's
 * next transaction; the record is copied. 0, or -ENOSPC when LIMIT_AUDIT_PENDING_MAX records
 * are waiting (the record is dropped, counted in ledgerd_audit_records_dropped_total, and
 * logged). Thread-safe; never waits for the database. */
int commit_audit_note(struct commit *c, const struct audit_record *r);

/* Gauges and counters for metrics and readiness (thread-safe, approximate). */
uint32_t commit_workers(const struct commit *c);
uint32_t commit_queue_depth(const struct commit *c);
/* Commands the queue holds before commit_submit answers -EAGAIN (cfg.queue_depth_max). */
uint32_t commit_queue_capacity(const struct commit *c);
uint64_t commit_batches_total(const struct commit *c);
uint64_t commit_rejected_total(const struct commit *c);
/* False after a commit failed until the next one succeeds: feeds /readyz. */
bool commit_healthy(const struct commit *c);

#endif
