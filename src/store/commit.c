/*
 * commit.c — the commit workers: a bounded queue of ledger commands and the threads that
 * commit them in batches, one database transaction (one fsync) per batch.
 *
 * Layers, top to bottom: the queue (submit, take), one batch (expire due pendings, prefetch,
 * apply, render, write, commit, complete; on a concurrent store: bulk loads that lock, the
 * idempotency re-check, retries), the idle work of worker 0 (expiry sweep, idempotency purge,
 * audit checkpoints), and the threads' life (start, loop, stop). Everything a worker needs per
 * batch — the book, the result arrays — is allocated at start and reused; the hot path does
 * not allocate.
 */
#include "store/commit.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/assert.h"
#include "core/clock.h"
#include "core/problem.h"
#include "ledger/book.h"
#include "ledger/render.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "obs/otlp.h"

/* Expired idempotency records are purged this often, when the worker is idle. */
#define COMMIT_PURGE_INTERVAL_NS (60ll * 1000 * 1000 * 1000)
/* A transaction that collided with another writer (-EAGAIN) is run at most this many times,
 * pausing a random time below COMMIT_RETRY_PAUSE_US << attempt in between. */
#define COMMIT_RETRIES_MAX 8
#define COMMIT_RETRY_PAUSE_US 500

struct commit_worker;

struct commit {
    struct store *store;
    struct commit_config cfg;
    bool concurrent; /* store_concurrent: rows are locked as loaded, transactions retried */

    pthread_mutex_t lock;
    pthread_cond_t wake;           /* CLOCK_MONOTONIC */
    struct commit_cmd *head;       /* under lock */
    struct commit_cmd *tail;       /* under lock */
    bool stopping;                 /* under lock */
    int64_t stop_deadline_mono_ns; /* under lock */

    _Atomic uint32_t depth;
    _Atomic uint64_t batches;
    _Atomic uint64_t rejected;
    atomic_bool healthy;
    _Atomic int64_t last_now_ms;          /* batch timestamps never go backwards */
    _Atomic int64_t next_deadline_ms;     /* earliest PENDING deadline known; 0 none */
    _Atomic uint64_t audited_since_check; /* records appended since worker 0 last looked */

    /* Audit records of refusals waiting for a transaction (commit_audit_note): a ring of
     * LIMIT_AUDIT_PENDING_MAX, under lock. A worker moves them to its audit_taken first. */
    struct audit_record *audit_ring;
    size_t audit_head, audit_count;

    struct commit_worker *workers;
    uint32_t workers_count;
    uint32_t workers_started;
};

/* One commit worker thread and everything it needs per batch. Worker 0 also does the idle
 * work (expiry sweep, idempotency purge, refusals' audit flush, checkpoints). */
struct commit_worker {
    struct commit *c;
    pthread_t thread;
    uint32_t index;

    struct ledger_book *book;
    struct commit_cmd *cmds[LIMIT_COMMIT_COMMANDS_MAX]; /* the batch being committed */
    size_t cmds_count;
    enum ledger_result *results;           /* per item, LIMIT_COMMIT_ITEMS_MAX */
    const struct ledger_transfer **stored; /* per item, LIMIT_COMMIT_ITEMS_MAX */
    const struct ledger_account *accounts_stored[LIMIT_COMMIT_COMMANDS_MAX]; /* per command */
    bool replayed[LIMIT_COMMIT_COMMANDS_MAX]; /* answered from a stored idempotent response */
    const char *idem_principals[LIMIT_COMMIT_COMMANDS_MAX]; /* the batch's keys, looked up */
    const char *idem_keys[LIMIT_COMMIT_COMMANDS_MAX];       /* at once (a concurrent store) */
    char (*due_ids)[LIMIT_ID_LEN_MAX + 1];                  /* LIMIT_EXPIRY_SWEEP_MAX */
    const char **ids;                 /* COMMIT_IDS_MAX: a concurrent store's bulk loads */
    struct audit_record *audit_taken; /* LIMIT_AUDIT_PENDING_MAX */
    size_t audit_taken_count;

    /* Worker 0's idle work. */
    int64_t last_purge_mono_ns;
    int64_t last_sweep_mono_ns;
    uint64_t checkpoint_seq;       /* the last signed checkpoint: its record */
    int64_t checkpoint_time_ms;    /* and when it was signed */
    int64_t checkpoint_checked_ms; /* when the worker last looked */
};

/* Ids a batch's bulk loads may name: each transfer's id and pending id, then the accounts of
 * every transfer and of every pending transfer it resolves, and each created account. */
#define COMMIT_IDS_MAX (4 * LIMIT_COMMIT_ITEMS_MAX + LIMIT_COMMIT_COMMANDS_MAX)

/* ---------------------------------------------------------------------------------------
 * The queue.
 * ------------------------------------------------------------------------------------- */

static size_t commit_cmd_items(const struct commit_cmd *cmd)
{
    return cmd->kind == COMMIT_ACCOUNT_CREATE ? 1 : cmd->transfers_count;
}

int commit_submit(struct commit *c, struct commit_cmd *cmd)
{
    ASSERT(c != NULL && cmd != NULL);
    ASSERT(cmd->done != NULL);
    ASSERT(cmd->kind == COMMIT_ACCOUNT_CREATE ||
           (cmd->transfers != NULL && cmd->transfers_count >= 1 &&
            cmd->transfers_count <= LIMIT_BATCH_TRANSFERS_MAX));
    ASSERT(cmd->kind != COMMIT_TRANSFER_CREATE || cmd->transfers_count == 1);

    pthread_mutex_lock(&c->lock);
    if (c->stopping) {
        pthread_mutex_unlock(&c->lock);
        atomic_fetch_add(&c->rejected, 1);
        metrics_add(METRIC_COMMIT_QUEUE_REJECTIONS, METRICS_REJECT_SHUTTING_DOWN, 1);
        return -ESHUTDOWN;
    }
    if (atomic_load(&c->depth) >= c->cfg.queue_depth_max) {
        pthread_mutex_unlock(&c->lock);
        atomic_fetch_add(&c->rejected, 1);
        metrics_add(METRIC_COMMIT_QUEUE_REJECTIONS, METRICS_REJECT_FULL, 1);
        return -EAGAIN;
    }
    cmd->next = NULL;
    cmd->queued_mono_ns = clock_mono_ns();
    if (c->tail == NULL) {
        c->head = cmd;
    } else {
        c->tail->next = cmd;
    }
    c->tail = cmd;
    atomic_fetch_add(&c->depth, 1);
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    return 0;
}

/* Moves the next batch from the queue into w->cmds: at most LIMIT_COMMIT_COMMANDS_MAX commands
 * and items_max items, but always at least one command. Called with the lock held. */
static void commit_take(struct commit_worker *w)
{
    struct commit *c = w->c;
    size_t items = 0;
    w->cmds_count = 0;
    while (c->head != NULL && w->cmds_count < LIMIT_COMMIT_COMMANDS_MAX) {
        size_t n = commit_cmd_items(c->head);
        if (w->cmds_count > 0 && items + n > c->cfg.items_max) {
            break;
        }
        struct commit_cmd *cmd = c->head;
        c->head = cmd->next;
        if (c->head == NULL) {
            c->tail = NULL;
        }
        cmd->next = NULL;
        w->cmds[w->cmds_count++] = cmd;
        items += n;
        atomic_fetch_sub(&c->depth, 1);
    }
    ASSERT(w->cmds_count >= 1);
    ASSERT(items <= LIMIT_COMMIT_ITEMS_MAX);
}

int commit_audit_note(struct commit *c, const struct audit_record *r)
{
    ASSERT(c != NULL && r != NULL);
    pthread_mutex_lock(&c->lock);
    bool room = c->audit_count < LIMIT_AUDIT_PENDING_MAX;
    if (room) {
        c->audit_ring[(c->audit_head + c->audit_count) % LIMIT_AUDIT_PENDING_MAX] = *r;
        c->audit_count++;
        pthread_cond_signal(&c->wake);
    }
    pthread_mutex_unlock(&c->lock);
    if (!room) {
        metrics_add(METRIC_AUDIT_DROPPED, 0, 1);
        log_msgf(CONFIG_LOG_WARN, NULL, "audit: record dropped, %d waiting (%s %s, %s)",
                 LIMIT_AUDIT_PENDING_MAX, r->action, r->resource, r->actor);
        return -ENOSPC;
    }
    return 0;
}

/* Takes the waiting refusal records (under lock) into audit_taken; returns how many. */
static size_t commit_audit_take_locked(struct commit_worker *w)
{
    struct commit *c = w->c;
    size_t n = c->audit_count;
    for (size_t i = 0; i < n; i++) {
        w->audit_taken[i] = c->audit_ring[(c->audit_head + i) % LIMIT_AUDIT_PENDING_MAX];
    }
    c->audit_head = (c->audit_head + n) % LIMIT_AUDIT_PENDING_MAX;
    c->audit_count = 0;
    return n;
}

/* Appends audit_taken[0..n) inside the open transaction. */
static int commit_audit_append_taken(struct commit_worker *w, size_t n)
{
    struct commit *c = w->c;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = store_wr_audit_append(c->store, &w->audit_taken[i]);
    }
    return rc;
}

/* Writes the waiting refusal records in a transaction of their own (when idle or stopping). */
static void commit_audit_flush(struct commit_worker *w)
{
    struct commit *c = w->c;
    pthread_mutex_lock(&c->lock);
    size_t n = commit_audit_take_locked(w);
    pthread_mutex_unlock(&c->lock);
    if (n == 0) {
        return;
    }
    int rc = store_tx_begin(c->store);
    if (rc == 0) {
        rc = commit_audit_append_taken(w, n);
    }
    if (rc == 0) {
        rc = store_tx_commit(c->store);
    }
    if (rc == 0) {
        metrics_add(METRIC_AUDIT_RECORDS, 0, n);
        return;
    }
    store_tx_rollback(c->store);
    metrics_add(METRIC_AUDIT_DROPPED, 0, n);
    log_msgf(CONFIG_LOG_ERROR, NULL, "audit: %zu record(s) of refusals lost (%d)", n, rc);
}

/* Counts the batch just taken: each command's wait in the queue, and the batch's size. */
static void commit_count_taken(const struct commit_worker *w)
{
    int64_t now = clock_mono_ns();
    uint64_t items = 0;
    for (size_t i = 0; i < w->cmds_count; i++) {
        struct commit_cmd *cmd = w->cmds[i];
        cmd->dequeued_mono_ns = now;
        int64_t waited = now - cmd->queued_mono_ns;
        metrics_observe(METRIC_COMMIT_QUEUE_WAIT, 0, waited > 0 ? (uint64_t)waited : 0);
        items += commit_cmd_items(cmd);
    }
    metrics_observe(METRIC_COMMIT_BATCH_COMMANDS, 0, w->cmds_count);
    metrics_observe(METRIC_COMMIT_BATCH_ITEMS, 0, items);
}

/* ---------------------------------------------------------------------------------------
 * Responses.
 * ------------------------------------------------------------------------------------- */

static const char *commit_request_id(const struct commit_cmd *cmd)
{
    return cmd->request_id[0] != '\0' ? cmd->request_id : NULL;
}

/* Replaces the command's response with a problem document. A body that does not fit even
 * then stays empty: the status still tells the client what happened. */
static void commit_answer_problem(struct commit_cmd *cmd, int status, const char *code,
                                  const char *detail)
{
    buf_reset(&cmd->body);
    cmd->status = status;
    cmd->body_is_problem = true;
    cmd->location[0] = '\0';
    if (problem_write(&cmd->body, status, code, detail, commit_request_id(cmd), NULL, 0, NULL) !=
        0) {
        buf_reset(&cmd->body);
    }
}

/* Answers every command of the batch with the same problem and hands them back. */
static void commit_fail_all(struct commit_worker *w, int status, const char *code,
                            const char *detail)
{
    for (size_t i = 0; i < w->cmds_count; i++) {
        struct commit_cmd *cmd = w->cmds[i];
        commit_answer_problem(cmd, status, code, detail);
        cmd->done(cmd);
    }
    w->cmds_count = 0;
}

static void commit_answer_result(struct commit_cmd *cmd, enum ledger_result r)
{
    commit_answer_problem(cmd, ledger_result_http_status(r), ledger_result_code(r),
                          ledger_result_detail(r));
}

/* Writes the response of command i from the results of the apply step. */
static void commit_render(struct commit_worker *w, size_t i, size_t item)
{
    struct commit_cmd *cmd = w->cmds[i];
    buf_reset(&cmd->body);
    cmd->location[0] = '\0';
    cmd->body_is_problem = false;
    enum ledger_result r = w->results[item];
    int rc = 0;
    switch (cmd->kind) {
    case COMMIT_ACCOUNT_CREATE:
        if (r != LEDGER_CREATED && r != LEDGER_EXISTS) {
            commit_answer_result(cmd, r);
            return;
        }
        ASSERT(w->accounts_stored[i] != NULL);
        cmd->status = r == LEDGER_CREATED ? 201 : 200;
        rc = ledger_render_account(&cmd->body, w->accounts_stored[i]);
        if (r == LEDGER_CREATED) {
            snprintf(cmd->location, sizeof(cmd->location), "/v1/accounts/%s",
                     w->accounts_stored[i]->id);
        }
        break;
    case COMMIT_TRANSFER_CREATE:
        if (r != LEDGER_CREATED && r != LEDGER_EXISTS) {
            commit_answer_result(cmd, r);
            return;
        }
        ASSERT(w->stored[item] != NULL);
        cmd->status = r == LEDGER_CREATED ? 201 : 200;
        rc = ledger_render_transfer(&cmd->body, w->stored[item]);
        if (r == LEDGER_CREATED) {
            snprintf(cmd->location, sizeof(cmd->location), "/v1/transfers/%s", w->stored[item]->id);
        }
        break;
    case COMMIT_TRANSFER_BATCH:
        cmd->status = 200;
        rc = ledger_render_batch_results(&cmd->body, cmd->transfers, &w->results[item],
                                         cmd->transfers_count);
        break;
    }
    if (rc != 0) {
        /* No partial JSON: the effect stands, the answer says the response could not be made. */
        commit_answer_problem(cmd, 500, "internal_error",
                              "The response did not fit its size limit.");
    }
}

/* Appends the command's audit record, if it has one, in the batch's transaction: its time is
 * the batch's, its reason the outcome (the ledger's result code; for a batch, how many items
 * it carried). */
static int commit_audit_put(struct commit_worker *w, struct commit_cmd *cmd, size_t item,
                            int64_t now_ms)
{
    if (cmd->audit == NULL) {
        return 0;
    }
    char reason[64];
    if (cmd->kind == COMMIT_TRANSFER_BATCH) {
        (void)snprintf(reason, sizeof(reason), "%zu transfers", cmd->transfers_count);
    } else {
        (void)snprintf(reason, sizeof(reason), "%s", ledger_result_code(w->results[item]));
    }
    cmd->audit->time_unix_ms = now_ms;
    int rc = audit_record_set(cmd->audit, AUDIT_FIELD_REASON, reason, strlen(reason));
    return rc == 0 ? store_wr_audit_append(w->c->store, cmd->audit) : rc;
}

/* Stores the command's response under its idempotency key, in the batch's transaction. */
static int commit_idem_put(struct commit_worker *w, const struct commit_cmd *cmd, int64_t now_ms)
{
    if (cmd->idempotency_key[0] == '\0') {
        return 0;
    }
    struct store_idem_record r;
    memset(&r, 0, sizeof(r));
    memcpy(r.request_digest, cmd->request_digest, SHA256_BYTES);
    r.status = cmd->status;
    r.location = cmd->location;
    r.body = cmd->body.data != NULL ? cmd->body.data : "";
    r.body_len = cmd->body.len;
    r.expires_at_ms = now_ms + (int64_t)w->c->cfg.idempotency_ttl_seconds * 1000;
    return store_wr_idem_put(w->c->store, cmd->principal, cmd->idempotency_key, &r, now_ms);
}

/* ---------------------------------------------------------------------------------------
 * One batch.
 * ------------------------------------------------------------------------------------- */

/* The batch's timestamp: the wall clock, but never earlier than an earlier batch's (of any
 * worker). */
static int64_t commit_now_ms(struct commit *c)
{
    int64_t now = clock_unix_ms();
    int64_t last = atomic_load(&c->last_now_ms);
    while (now > last && !atomic_compare_exchange_weak(&c->last_now_ms, &last, now)) {
    }
    return now > last ? now : last;
}

/* Loads the pending transfers due at now_ms into the book and expires them. */
static int commit_expire_due(struct commit_worker *w, int64_t now_ms, size_t *expired_out)
{
    size_t n = 0;
    *expired_out = 0;
    int rc =
        store_wr_due_pendings(w->c->store, now_ms, LIMIT_EXPIRY_SWEEP_MAX, w->book, w->due_ids, &n);
    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        int erc = ledger_book_pending_expire(w->book, w->due_ids[i]);
        if (erc != 0) {
            /* Already resolved by an earlier item of this book, or inconsistent rows: skip it
             * rather than stop every commit; the row stays for the next sweep to retry. */
            log_msgf(CONFIG_LOG_WARN, NULL, "commit: cannot expire pending transfer %s (%d)",
                     w->due_ids[i], erc);
            continue;
        }
        (*expired_out)++;
    }
    return 0;
}

/* Loads everything the batch's commands reference into the book: every transfer the batch names
 * in one bulk load, then every account (those the transfers name and those of the pending
 * transfers they resolve) in another. A concurrent store locks each set in id order, so writers
 * never wait on each other in a cycle: all take transfers first, then accounts, each in the same
 * order. */
static int commit_prefetch(struct commit_worker *w)
{
    struct store *s = w->c->store;
    size_t n = 0;
    for (size_t i = 0; i < w->cmds_count; i++) {
        const struct commit_cmd *cmd = w->cmds[i];
        for (size_t k = 0; cmd->kind != COMMIT_ACCOUNT_CREATE && k < cmd->transfers_count; k++) {
            const struct ledger_transfer *t = &cmd->transfers[k];
            w->ids[n++] = t->id;
            if (t->pending_id[0] != '\0') {
                w->ids[n++] = t->pending_id;
            }
        }
    }
    int rc = store_wr_transfers_load(s, w->ids, n, w->book);
    if (rc != 0) {
        return rc;
    }
    n = 0;
    for (size_t i = 0; i < w->cmds_count; i++) {
        const struct commit_cmd *cmd = w->cmds[i];
        if (cmd->kind == COMMIT_ACCOUNT_CREATE) {
            w->ids[n++] = cmd->account.id;
            continue;
        }
        for (size_t k = 0; k < cmd->transfers_count; k++) {
            const struct ledger_transfer *t = &cmd->transfers[k];
            const struct ledger_transfer *p =
                t->pending_id[0] != '\0' ? ledger_book_transfer_find(w->book, t->pending_id) : NULL;
            if (p != NULL) {
                w->ids[n++] = p->debit_account_id;
                w->ids[n++] = p->credit_account_id;
            }
            if (t->debit_account_id[0] != '\0') {
                w->ids[n++] = t->debit_account_id;
            }
            if (t->credit_account_id[0] != '\0') {
                w->ids[n++] = t->credit_account_id;
            }
        }
    }
    ASSERT(n <= COMMIT_IDS_MAX);
    return store_wr_accounts_load(s, w->ids, n, w->book);
}

/* A concurrent store: another worker or process may have stored a response under a command's
 * idempotency key since the request looked (a retry sent to another replica while the first
 * attempt was running). Inside the transaction, with the rows locked, the stored response wins:
 * the command is answered with it and not applied again. All the batch's keys are looked up in
 * one round trip; w->replayed[i] tells which commands were answered here. */
struct commit_recheck {
    struct commit_worker *w;
    size_t cmd_of[LIMIT_COMMIT_COMMANDS_MAX]; /* pair index -> command index */
};

static int commit_recheck_row(void *ctx, size_t pair, const struct store_idem_record *r)
{
    struct commit_recheck *rc = ctx;
    ASSERT(pair < rc->w->cmds_count);
    size_t i = rc->cmd_of[pair];
    struct commit_cmd *cmd = rc->w->cmds[i];
    rc->w->replayed[i] = true;
    if (memcmp(r->request_digest, cmd->request_digest, SHA256_BYTES) != 0) {
        cmd->idem_outcome = COMMIT_IDEM_REUSED;
        commit_answer_problem(cmd, 422, "idempotency_key_reused",
                              "this Idempotency-Key was used with a different request");
        return 0;
    }
    cmd->idem_outcome = COMMIT_IDEM_HIT;
    buf_reset(&cmd->body);
    if (buf_append(&cmd->body, r->body, r->body_len) != 0) {
        return -ENOSPC;
    }
    cmd->status = r->status;
    /* The stored body tells which kind it is: problem documents carry "type" first. */
    cmd->body_is_problem = r->body_len > 8 && memcmp(r->body, "{\"type\":", 8) == 0;
    (void)snprintf(cmd->location, sizeof(cmd->location), "%s", r->location);
    return 0;
}

static int commit_idem_recheck(struct commit_worker *w, int64_t now_ms)
{
    memset(w->replayed, 0, w->cmds_count * sizeof(w->replayed[0]));
    if (!w->c->concurrent) {
        return 0;
    }
    struct commit_recheck rc;
    rc.w = w;
    size_t n = 0;
    for (size_t i = 0; i < w->cmds_count; i++) {
        struct commit_cmd *cmd = w->cmds[i];
        cmd->idem_outcome = COMMIT_IDEM_NONE;
        if (cmd->idempotency_key[0] != '\0') {
            cmd->idem_outcome = COMMIT_IDEM_MISS;
            w->idem_principals[n] = cmd->principal;
            w->idem_keys[n] = cmd->idempotency_key;
            rc.cmd_of[n++] = i;
        }
    }
    return store_wr_idem_get_many(w->c->store, w->idem_principals, w->idem_keys, n, now_ms,
                                  commit_recheck_row, &rc);
}

/* Applies the commands in queue order and renders their responses. The earliest deadline of
 * the pending transfers created goes into *deadline_ms_out (0 when none). */
static int commit_apply(struct commit_worker *w, int64_t now_ms, int64_t *deadline_ms_out)
{
    size_t item = 0;
    *deadline_ms_out = 0;
    for (size_t i = 0; i < w->cmds_count; i++) {
        struct commit_cmd *cmd = w->cmds[i];
        size_t n = commit_cmd_items(cmd);
        if (w->replayed[i]) {
            for (size_t k = item; k < item + n; k++) {
                w->results[k] = LEDGER_RESULT_COUNT; /* not applied: not counted */
            }
            item += n;
            continue;
        }
        if (cmd->kind == COMMIT_ACCOUNT_CREATE) {
            w->results[item] =
                ledger_book_account_create(w->book, &cmd->account, now_ms, &w->accounts_stored[i]);
        } else if (ledger_book_transfers_free(w->book) < n) {
            return -ENOSPC; /* cannot happen with the sizes above; never abort for it */
        } else {
            (void)ledger_book_transfers_apply(w->book, cmd->transfers, n, now_ms, &w->results[item],
                                              &w->stored[item]);
            for (size_t k = item; k < item + n; k++) {
                const struct ledger_transfer *t = w->stored[k];
                if (w->results[k] == LEDGER_CREATED && t != NULL && t->expires_at_ms > 0 &&
                    t->pending_state == LEDGER_PENDING_PENDING &&
                    (*deadline_ms_out == 0 || t->expires_at_ms < *deadline_ms_out)) {
                    *deadline_ms_out = t->expires_at_ms;
                }
            }
        }
        commit_render(w, i, item);
        int rc = commit_idem_put(w, cmd, now_ms);
        if (rc == 0) {
            rc = commit_audit_put(w, cmd, item, now_ms);
        }
        if (rc != 0) {
            return rc;
        }
        item += n;
    }
    return 0;
}

static void commit_deadline_note(struct commit *c, int64_t deadline_ms)
{
    int64_t known = atomic_load(&c->next_deadline_ms);
    while (deadline_ms != 0 && (known == 0 || deadline_ms < known) &&
           !atomic_compare_exchange_weak(&c->next_deadline_ms, &known, deadline_ms)) {
    }
}

/* Counts the results of a committed batch: accounts and transfers by result code. Tallied
 * first so that a batch of 8190 transfers costs a few adds, not 8190. Replayed commands were
 * not applied and are not counted. */
static void commit_count_results(const struct commit_worker *w)
{
    uint64_t accounts[LEDGER_RESULT_COUNT] = {0};
    uint64_t transfers[LEDGER_RESULT_COUNT] = {0};
    size_t item = 0;
    for (size_t i = 0; i < w->cmds_count; i++) {
        const struct commit_cmd *cmd = w->cmds[i];
        size_t n = commit_cmd_items(cmd);
        for (size_t k = item; k < item + n && !w->replayed[i]; k++) {
            ASSERT(w->results[k] < LEDGER_RESULT_COUNT);
            if (cmd->kind == COMMIT_ACCOUNT_CREATE) {
                accounts[w->results[k]]++;
            } else {
                transfers[w->results[k]]++;
            }
        }
        item += n;
    }
    for (size_t r = 0; r < LEDGER_RESULT_COUNT; r++) {
        if (accounts[r] > 0) {
            metrics_add(METRIC_ACCOUNTS, r, accounts[r]);
        }
        if (transfers[r] > 0) {
            metrics_add(METRIC_TRANSFERS, r, transfers[r]);
        }
    }
}

/* The batch's span when any of its requests is traced: a new trace for the group commit,
 * linked to the server span of every traced request it carries (OpenTelemetry's advice for
 * batch processing), with the database transaction as its child. NULL otherwise. The links
 * are taken now: a command handed back by done() may be reused by its connection at once. */
static struct span *commit_trace_begin(const struct commit_worker *w, int64_t begin_mono_ns)
{
    bool any = false;
    size_t items = 0;
    for (size_t i = 0; i < w->cmds_count; i++) {
        any = any || w->cmds[i]->trace != NULL;
        items += commit_cmd_items(w->cmds[i]);
    }
    struct span *batch = otlp_batch_span_new(any, (uint32_t)w->cmds_count, (uint32_t)items,
                                             span_unix_ns_from_mono(begin_mono_ns));
    for (size_t i = 0; batch != NULL && i < w->cmds_count; i++) {
        if (w->cmds[i]->trace != NULL) {
            span_add_link_ctx(batch, w->cmds[i]->trace);
        }
    }
    return batch;
}

/* Ends the batch's spans: db covers the transaction, batch also the replies' hand-back. */
static void commit_trace_end(struct span *batch, struct span *db, const char *error,
                             int64_t db_end_mono_ns)
{
    if (batch == NULL) {
        return; /* db is NULL too */
    }
    if (error != NULL) {
        span_set_error(db, error);
        span_set_error(batch, error);
    }
    span_end(db, span_unix_ns_from_mono(db_end_mono_ns));
    otlp_enqueue(db);
    span_end(batch, span_unix_ns_from_mono(clock_mono_ns()));
    otlp_enqueue(batch);
}

static void commit_checkpoint(struct commit_worker *w, bool force); /* below, with the idle work */

/* One attempt at the batch's transaction: everything up to and including COMMIT. On failure
 * the caller rolls back. refusals: how many of audit_taken to append. */
static int commit_batch_try(struct commit_worker *w, int64_t now_ms, size_t refusals,
                            size_t *expired_out, int64_t *deadline_ms_out)
{
    struct commit *c = w->c;
    ledger_book_reset(w->book);
    *expired_out = 0;
    int rc = store_tx_begin(c->store);
    /* A concurrent store's due pendings are expired by worker 0's sweep, in a transaction of
     * its own (the book expires any due pending a batch touches anyway): locking them here
     * would take account locks out of order. */
    if (rc == 0 && !c->concurrent) {
        rc = commit_expire_due(w, now_ms, expired_out);
    }
    if (rc == 0) {
        rc = commit_prefetch(w);
    }
    if (rc == 0) {
        rc = commit_idem_recheck(w, now_ms);
    }
    if (rc == 0) {
        rc = commit_apply(w, now_ms, deadline_ms_out);
    }
    if (rc == 0) {
        rc = commit_audit_append_taken(w, refusals);
    }
    if (rc == 0) {
        ASSERT(ledger_book_balanced(w->book)); /* INV-1 before anything is written */
        rc = store_wr_changes(c->store, w->book);
    }
    if (rc == 0) {
        rc = store_tx_commit(c->store);
    }
    return rc;
}

/* Waits a little before running a transaction again, longer each attempt, with jitter, so
 * that writers that collided do not collide again in lockstep. */
static void commit_retry_pause(uint32_t attempt)
{
    uint64_t max_us = (uint64_t)COMMIT_RETRY_PAUSE_US << (attempt < 6 ? attempt : 6);
    uint64_t us = (uint64_t)clock_mono_ns() % (max_us + 1);
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    (void)nanosleep(&ts, NULL);
}

/* Commits the batch in w->cmds and completes every command. A concurrent store's transaction
 * that failed with -EAGAIN (it collided with another writer) is run again from the start, up to
 * COMMIT_RETRIES_MAX times: the book is rebuilt from what is committed now. */
static void commit_batch(struct commit_worker *w)
{
    struct commit *c = w->c;
    int64_t now_ms = commit_now_ms(c);
    int64_t deadline_ms = 0;
    size_t expired = 0;
    int64_t begin_ns = clock_mono_ns();
    struct span *batch = commit_trace_begin(w, begin_ns);
    struct span *db = batch == NULL ? NULL
                                    : span_db_commit_new(batch, store_system_name(c->store),
                                                         (uint32_t)w->cmds_count,
                                                         span_unix_ns_from_mono(clock_mono_ns()));
    pthread_mutex_lock(&c->lock);
    size_t refusals = commit_audit_take_locked(w);
    pthread_mutex_unlock(&c->lock);

    int rc = 0;
    for (uint32_t attempt = 0;; attempt++) {
        rc = commit_batch_try(w, now_ms, refusals, &expired, &deadline_ms);
        if (rc == 0) {
            break;
        }
        store_tx_rollback(c->store);
        if (rc != -EAGAIN || attempt + 1 >= COMMIT_RETRIES_MAX) {
            break;
        }
        metrics_add(METRIC_DB_RETRIES, METRICS_DB_RETRY_SERIALIZATION, 1);
        commit_retry_pause(attempt);
        now_ms = commit_now_ms(c);
    }
    if (rc != 0) {
        atomic_store(&c->healthy, false);
        metrics_add(METRIC_COMMIT_FAILURES, 0, 1);
        if (refusals > 0) {
            metrics_add(METRIC_AUDIT_DROPPED, 0, refusals); /* no transaction to carry them */
        }
        log_msgf(CONFIG_LOG_ERROR, NULL, "commit: batch of %zu commands failed (%d)", w->cmds_count,
                 rc);
        int64_t failed_ns = clock_mono_ns();
        commit_fail_all(w, 503, "storage_unavailable",
                        "The ledger could not store the request; nothing was stored. Retry "
                        "later.");
        commit_trace_end(batch, db, "the transaction failed and was rolled back", failed_ns);
        return;
    }
    int64_t committed_ns = clock_mono_ns();
    size_t audited = refusals;
    for (size_t i = 0; i < w->cmds_count; i++) {
        audited += w->cmds[i]->audit != NULL && !w->replayed[i] ? 1 : 0;
        w->cmds[i]->replayed = w->replayed[i] && w->cmds[i]->idem_outcome == COMMIT_IDEM_HIT;
    }
    if (audited > 0) {
        metrics_add(METRIC_AUDIT_RECORDS, 0, audited);
        atomic_fetch_add(&c->audited_since_check, audited);
    }
    int64_t took_ns = committed_ns - begin_ns;
    metrics_observe(METRIC_COMMIT_DURATION, 0, took_ns > 0 ? (uint64_t)took_ns : 0);
    commit_count_results(w);
    if (expired > 0) {
        metrics_add(METRIC_PENDING_EXPIRED, 0, expired);
    }
    atomic_store(&c->healthy, true);
    atomic_fetch_add(&c->batches, 1);
    commit_deadline_note(c, deadline_ms);
    for (size_t i = 0; i < w->cmds_count; i++) {
        struct commit_cmd *cmd = w->cmds[i];
        cmd->done(cmd);
    }
    w->cmds_count = 0;
    commit_trace_end(batch, db, NULL, committed_ns);
    if (w->index == 0) {
        commit_checkpoint(w, false);
    }
}

/* ---------------------------------------------------------------------------------------
 * Idle work (worker 0): the expiry sweep and the idempotency purge, each in its own small
 * transaction, retried like a batch when it collides with another writer.
 * ------------------------------------------------------------------------------------- */

static int commit_sweep_try(struct commit_worker *w, int64_t now_ms, size_t *expired_out,
                            int64_t *next_out)
{
    struct commit *c = w->c;
    ledger_book_reset(w->book);
    int rc = store_tx_begin(c->store);
    if (rc == 0) {
        rc = commit_expire_due(w, now_ms, expired_out);
    }
    if (rc == 0) {
        ASSERT(ledger_book_balanced(w->book));
        rc = store_wr_changes(c->store, w->book);
    }
    if (rc == 0) {
        rc = store_tx_commit(c->store);
    }
    if (rc == 0) {
        rc = store_wr_next_deadline(c->store, next_out);
    }
    return rc;
}

static void commit_sweep(struct commit_worker *w)
{
    struct commit *c = w->c;
    w->last_sweep_mono_ns = clock_mono_ns();
    size_t expired = 0;
    int64_t next = 0;
    int rc = 0;
    for (uint32_t attempt = 0;; attempt++) {
        expired = 0;
        rc = commit_sweep_try(w, commit_now_ms(c), &expired, &next);
        if (rc == 0) {
            break;
        }
        store_tx_rollback(c->store);
        if (rc != -EAGAIN || attempt + 1 >= COMMIT_RETRIES_MAX) {
            break;
        }
        metrics_add(METRIC_DB_RETRIES, METRICS_DB_RETRY_SERIALIZATION, 1);
        commit_retry_pause(attempt);
    }
    if (rc != 0) {
        atomic_store(&c->healthy, false);
        metrics_add(METRIC_COMMIT_FAILURES, 0, 1);
        log_msgf(CONFIG_LOG_ERROR, NULL, "commit: expiry sweep failed (%d)", rc);
        return;
    }
    atomic_store(&c->next_deadline_ms, next);
    if (expired > 0) {
        metrics_add(METRIC_PENDING_EXPIRED, 0, expired);
    }
    atomic_store(&c->healthy, true);
}

/* Whether worker 0 should sweep now: a known deadline has passed, or (a concurrent store,
 * where other processes create pending transfers too) the expiry interval has. */
static bool commit_sweep_due(const struct commit_worker *w)
{
    const struct commit *c = w->c;
    int64_t deadline = atomic_load(&c->next_deadline_ms);
    if (deadline != 0 && deadline <= clock_unix_ms()) {
        return true;
    }
    return c->concurrent &&
           clock_mono_ns() - w->last_sweep_mono_ns >= (int64_t)c->cfg.expiry_interval_ms * 1000000;
}

static void commit_purge(struct commit_worker *w)
{
    struct commit *c = w->c;
    int64_t now_ms = commit_now_ms(c);
    size_t deleted = 0;
    int rc = store_tx_begin(c->store);
    if (rc == 0) {
        rc = store_wr_idem_purge(c->store, now_ms, LIMIT_IDEMPOTENCY_PURGE_MAX, &deleted);
    }
    if (rc == 0) {
        rc = store_tx_commit(c->store);
    }
    if (rc != 0) {
        store_tx_rollback(c->store);
        log_msgf(CONFIG_LOG_ERROR, NULL, "commit: idempotency purge failed (%d)", rc);
    }
}

/* Signs the audit trail's tail when a checkpoint is due (every audit_checkpoint_records
 * records or audit_checkpoint_interval_ms; with force, whenever the tail is unsigned), in a
 * transaction of its own, and logs it so that a copy leaves the machine. Cheap when nothing is
 * due: it looks at the table only once per interval or once enough records were appended. */
static void commit_checkpoint(struct commit_worker *w, bool force)
{
    struct commit *c = w->c;
    if (c->cfg.audit_signer == NULL) {
        return;
    }
    int64_t now_ms = clock_unix_ms();
    bool look = force || atomic_load(&c->audited_since_check) >= c->cfg.audit_checkpoint_records ||
                now_ms - w->checkpoint_checked_ms >= (int64_t)c->cfg.audit_checkpoint_interval_ms;
    if (!look) {
        return;
    }
    w->checkpoint_checked_ms = now_ms;
    atomic_store(&c->audited_since_check, 0);
    struct audit_checkpoint cp;
    memset(&cp, 0, sizeof(cp));
    int rc = store_tx_begin(c->store);
    if (rc == 0) {
        rc = store_wr_audit_tail(c->store, &cp.seq, cp.hash);
    }
    cp.time_unix_ms = now_ms;
    bool due = rc == 0 && cp.seq > 0 &&
               (force ? cp.seq > w->checkpoint_seq
                      : audit_checkpoint_due(cp.seq, w->checkpoint_seq, w->checkpoint_time_ms,
                                             now_ms, c->cfg.audit_checkpoint_records,
                                             (int64_t)c->cfg.audit_checkpoint_interval_ms));
    if (rc == 0 && due) {
        rc = audit_checkpoint_sign(c->cfg.audit_signer, &cp);
        if (rc == 0) {
            rc = store_wr_audit_checkpoint_insert(c->store, &cp);
        }
        if (rc == 0) {
            rc = store_tx_commit(c->store);
        }
    }
    if (rc != 0 || !due) {
        store_tx_rollback(c->store);
    }
    if (rc == -EEXIST) {
        w->checkpoint_seq = cp.seq; /* another process signed the same record */
        w->checkpoint_time_ms = now_ms;
        return;
    }
    if (rc != 0) {
        log_msgf(CONFIG_LOG_ERROR, NULL, "audit: cannot write a checkpoint (%d)", rc);
        return;
    }
    if (!due) {
        return;
    }
    w->checkpoint_seq = cp.seq;
    w->checkpoint_time_ms = now_ms;
    char hash[2 * AUDIT_HASH_BYTES + 1];
    char sig[2 * AUDIT_SIGNATURE_BYTES + 1];
    sha256_hex(cp.hash, hash);
    for (size_t i = 0; i < AUDIT_SIGNATURE_BYTES; i++) {
        (void)snprintf(sig + 2 * i, 3, "%02x", cp.signature[i]);
    }
    char fields[512];
    (void)snprintf(fields, sizeof(fields),
                   "\"audit_seq\":%llu,\"audit_hash\":\"%s\",\"key_id\":\"%s\","
                   "\"signature\":\"%s\",\"time_unix_ms\":%lld",
                   (unsigned long long)cp.seq, hash, cp.key_id, sig, (long long)cp.time_unix_ms);
    log_event(CONFIG_LOG_INFO, NULL, "audit checkpoint", fields);
}

static void commit_idle(struct commit_worker *w)
{
    commit_audit_flush(w);
    commit_checkpoint(w, false);
    if (commit_sweep_due(w)) {
        commit_sweep(w);
    }
    int64_t mono = clock_mono_ns();
    if (mono - w->last_purge_mono_ns >= COMMIT_PURGE_INTERVAL_NS) {
        w->last_purge_mono_ns = mono;
        commit_purge(w);
    }
}

/* ---------------------------------------------------------------------------------------
 * The threads.
 * ------------------------------------------------------------------------------------- */

static void commit_wait(struct commit *c)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = (int64_t)ts.tv_nsec + (int64_t)c->cfg.expiry_interval_ms * 1000000;
    ts.tv_sec += (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    (void)pthread_cond_timedwait(&c->wake, &c->lock, &ts);
}

/* Worker 0's start: what the idle work needs to know from the database. */
static void commit_worker0_init(struct commit_worker *w)
{
    struct commit *c = w->c;
    int64_t next = 0;
    if (store_wr_next_deadline(c->store, &next) != 0) {
        next = 1; /* unknown: let the first idle moment sweep */
    }
    atomic_store(&c->next_deadline_ms, next);
    w->last_purge_mono_ns = clock_mono_ns();
    w->last_sweep_mono_ns = clock_mono_ns();
    if (c->cfg.audit_signer != NULL &&
        store_audit_checkpoint_last(c->store, &w->checkpoint_seq, &w->checkpoint_time_ms) != 0) {
        w->checkpoint_seq = 0; /* unknown: the first look signs the tail */
        w->checkpoint_time_ms = 0;
    }
    w->checkpoint_checked_ms = clock_unix_ms();
}

static void *commit_main(void *arg)
{
    struct commit_worker *w = arg;
    struct commit *c = w->c;
    char name[24]; /* for top -H, perf, gdb: ledgerd-commit, ledgerd-commit1, ... */
    if (w->index == 0) {
        (void)snprintf(name, sizeof(name), "ledgerd-commit");
    } else {
        (void)snprintf(name, sizeof(name), "ledgerd-commit%u", w->index % 100);
    }
    name[15] = '\0'; /* the kernel keeps 15 bytes */
    (void)pthread_setname_np(pthread_self(), name);
    if (w->index == 0) {
        commit_worker0_init(w);
    }
    for (;;) {
        pthread_mutex_lock(&c->lock);
        bool idle_work = w->index == 0 && c->audit_count > 0;
        if (c->head == NULL && !c->stopping && !idle_work) {
            commit_wait(c);
        }
        if (c->head == NULL) {
            bool stopping = c->stopping;
            pthread_mutex_unlock(&c->lock);
            if (stopping) {
                if (w->index == 0) {
                    commit_audit_flush(w);
                    commit_checkpoint(w, true); /* so a restart finds the trail signed to its end */
                }
                break; /* drained */
            }
            if (w->index == 0) {
                commit_idle(w);
            }
            continue;
        }
        bool late = c->stopping && clock_mono_ns() >= c->stop_deadline_mono_ns;
        commit_take(w);
        pthread_mutex_unlock(&c->lock);
        commit_count_taken(w);
        if (late) {
            commit_fail_all(w, 503, "shutting_down",
                            "The server is shutting down; the request was not applied.");
            continue;
        }
        /* Under constant load worker 0 is never idle: due pendings are swept between batches. */
        if (w->index == 0 && c->concurrent && commit_sweep_due(w)) {
            commit_sweep(w);
        }
        commit_batch(w);
    }
    return NULL;
}

/* Names the result label of ledgerd_transfers_total / ledgerd_accounts_total. */
_Static_assert(LEDGER_RESULT_COUNT <= LIMIT_METRICS_RESULTS_MAX, "every result code is a label");
static void commit_metrics_labels(void)
{
    const char *codes[LEDGER_RESULT_COUNT];
    for (size_t r = 0; r < LEDGER_RESULT_COUNT; r++) {
        codes[r] = ledger_result_code((enum ledger_result)r);
    }
    metrics_results_register(codes, LEDGER_RESULT_COUNT);
}

static void commit_worker_free(struct commit_worker *w)
{
    ledger_book_free(w->book);
    free(w->results);
    free(w->stored);
    free(w->due_ids);
    free((void *)w->ids);
    free(w->audit_taken);
}

static int commit_worker_init(struct commit *c, struct commit_worker *w, uint32_t index)
{
    w->c = c;
    w->index = index;
    w->results = calloc(LIMIT_COMMIT_ITEMS_MAX, sizeof(w->results[0]));
    w->stored = calloc(LIMIT_COMMIT_ITEMS_MAX, sizeof(const struct ledger_transfer *));
    w->due_ids = calloc(LIMIT_EXPIRY_SWEEP_MAX, sizeof(w->due_ids[0]));
    w->ids = calloc(COMMIT_IDS_MAX, sizeof(w->ids[0]));
    /* Untouched pages of this stay unbacked until refusals are audited. */
    w->audit_taken = calloc(LIMIT_AUDIT_PENDING_MAX, sizeof(w->audit_taken[0]));
    if (w->results == NULL || w->stored == NULL || w->due_ids == NULL || w->ids == NULL ||
        w->audit_taken == NULL) {
        return -ENOMEM;
    }
    return ledger_book_new(LIMIT_BOOK_ACCOUNTS_MAX, LIMIT_BOOK_TRANSFERS_MAX,
                           LIMIT_BOOK_METADATA_BYTES_MAX, &w->book);
}

static void commit_free(struct commit *c)
{
    for (uint32_t i = 0; c->workers != NULL && i < c->workers_count; i++) {
        commit_worker_free(&c->workers[i]);
    }
    free(c->workers);
    free(c->audit_ring);
    free(c);
}

/* Stops the workers started so far (commit_start's failure path and commit_stop). */
static void commit_join(struct commit *c)
{
    pthread_mutex_lock(&c->lock);
    c->stopping = true;
    pthread_cond_broadcast(&c->wake);
    pthread_mutex_unlock(&c->lock);
    for (uint32_t i = 0; i < c->workers_started; i++) {
        int rc = pthread_join(c->workers[i].thread, NULL);
        ASSERT(rc == 0);
    }
    c->workers_started = 0;
}

int commit_start(struct store *s, const struct commit_config *cfg, struct commit **out)
{
    ASSERT(s != NULL && cfg != NULL && out != NULL);
    ASSERT(cfg->queue_depth_max >= 1 && cfg->queue_depth_max <= LIMIT_QUEUE_DEPTH_CEILING);
    ASSERT(cfg->items_max >= 1 && cfg->items_max <= LIMIT_COMMIT_ITEMS_MAX);
    ASSERT(cfg->idempotency_ttl_seconds <= LIMIT_IDEMPOTENCY_TTL_SECONDS_MAX);
    ASSERT(cfg->expiry_interval_ms >= 1);
    *out = NULL;

    struct commit *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return -ENOMEM;
    }
    commit_metrics_labels();
    c->store = s;
    c->cfg = *cfg;
    c->concurrent = store_concurrent(s);
    /* SQLite has one writer; a concurrent store as many as it has writer connections. */
    c->workers_count = c->concurrent ? store_writers(s) : 1;
    if (cfg->workers != 0 && cfg->workers < c->workers_count) {
        c->workers_count = cfg->workers;
    }
    ASSERT(c->workers_count >= 1);
    atomic_init(&c->depth, 0);
    atomic_init(&c->batches, 0);
    atomic_init(&c->rejected, 0);
    atomic_init(&c->healthy, true);
    atomic_init(&c->last_now_ms, 0);
    atomic_init(&c->next_deadline_ms, 0);
    atomic_init(&c->audited_since_check, 0);
    c->audit_ring = calloc(LIMIT_AUDIT_PENDING_MAX, sizeof(c->audit_ring[0]));
    c->workers = calloc(c->workers_count, sizeof(c->workers[0]));
    int rc = -ENOMEM;
    if (c->audit_ring == NULL || c->workers == NULL) {
        goto out_free;
    }
    for (uint32_t i = 0; i < c->workers_count; i++) {
        rc = commit_worker_init(c, &c->workers[i], i);
        if (rc != 0) {
            goto out_free;
        }
    }

    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&c->wake, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&c->lock, NULL);

    for (uint32_t i = 0; i < c->workers_count; i++) {
        int prc = pthread_create(&c->workers[i].thread, NULL, commit_main, &c->workers[i]);
        if (prc != 0) {
            rc = -prc;
            goto out_join;
        }
        c->workers_started++;
    }
    *out = c;
    return 0;

out_join:
    commit_join(c);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->wake);
out_free:
    commit_free(c);
    return rc;
}

void commit_stop(struct commit *c, int64_t deadline_mono_ns)
{
    if (c == NULL) {
        return;
    }
    pthread_mutex_lock(&c->lock);
    c->stop_deadline_mono_ns = deadline_mono_ns;
    pthread_mutex_unlock(&c->lock);
    commit_join(c);
    ASSERT(c->head == NULL); /* the workers leave only with an empty queue */
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->wake);
    commit_free(c);
}

uint32_t commit_workers(const struct commit *c)
{
    ASSERT(c != NULL);
    return c->workers_count;
}

uint32_t commit_queue_depth(const struct commit *c)
{
    ASSERT(c != NULL);
    return atomic_load(&c->depth);
}

uint64_t commit_batches_total(const struct commit *c)
{
    ASSERT(c != NULL);
    return atomic_load(&c->batches);
}

uint64_t commit_rejected_total(const struct commit *c)
{
    ASSERT(c != NULL);
    return atomic_load(&c->rejected);
}

uint32_t commit_queue_capacity(const struct commit *c)
{
    ASSERT(c != NULL);
    return c->cfg.queue_depth_max;
}

bool commit_healthy(const struct commit *c)
{
    ASSERT(c != NULL);
    return atomic_load(&c->healthy);
}
