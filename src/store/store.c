/*
 * store.c — the public store functions: choose a backend by the URL scheme, check arguments
 * once, and forward each call through the backend's operations table.
 *
 * Adding a backend (PostgreSQL) means one more entry in the table below; callers never see
 * which one they talk to.
 */
#include "store/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/clock.h"
#include "core/limits.h"
#include "obs/metrics.h"
#include "store/store_internal.h"

struct store {
    const struct store_backend_ops *ops;
    void *be; /* the backend's own state */
};

/* The store whose writer the calling thread holds in a transaction, if any: each commit worker
 * thread has its own transaction (one at a time). */
static _Thread_local const struct store *store_tx_owner;

/* Connections in use, for ledgerd_db_pool_connections: a read holds the calling thread's
 * reader for its duration, a transaction holds the writer from BEGIN to COMMIT/ROLLBACK. The
 * adds go to the calling thread's metrics shard, so readers on many threads share nothing.
 * A pooled backend counts its connections itself. */
static void store_in_use_of(const struct store *s, enum metrics_db_role role, int64_t delta)
{
    if (!s->ops->concurrent) {
        metrics_gauge_add(METRIC_DB_POOL_CONNS, metrics_db_conns_series(role, METRICS_DB_IN_USE),
                          delta);
    }
}

/* Backends by URL scheme. */
static const struct store_backend_ops *const store_backends[] = {
    &store_sqlite_ops,
    &store_pg_ops,
    &store_pgsql_ops,
};

const struct store_backend_ops *store_backend_of_url(const char *url, const char **location)
{
    for (size_t i = 0; i < sizeof(store_backends) / sizeof(store_backends[0]); i++) {
        size_t n = strlen(store_backends[i]->scheme);
        if (strncmp(url, store_backends[i]->scheme, n) == 0) {
            *location = url + n;
            return store_backends[i];
        }
    }
    return NULL;
}

const struct store_backend_ops *store_ops_of(const struct store *s)
{
    return s->ops;
}

void *store_be_of(const struct store *s)
{
    return s->be;
}

int store_open(const char *url, struct store **out, struct buf *err)
{
    static const struct store_options defaults;
    return store_open_with(url, &defaults, out, err);
}

int store_open_with(const char *url, const struct store_options *opts, struct store **out,
                    struct buf *err)
{
    ASSERT(url != NULL);
    ASSERT(opts != NULL);
    ASSERT(out != NULL);
    ASSERT(err != NULL);
    *out = NULL;

    const char *location = NULL;
    const struct store_backend_ops *ops = store_backend_of_url(url, &location);
    if (ops == NULL) {
        (void)buf_append_str(err, "unsupported database URL scheme (expected sqlite://, "
                                  "postgres:// or postgresql://)");
        return -EINVAL;
    }

    struct store *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        (void)buf_append_str(err, "out of memory");
        return -ENOMEM;
    }
    s->ops = ops;
    int rc = ops->open(location, opts, &s->be, err);
    if (rc != 0) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void store_close(struct store *s)
{
    if (s == NULL) {
        return;
    }
    s->ops->close(s->be);
    free(s);
}

int store_ping(struct store *s)
{
    ASSERT(s != NULL);
    store_in_use_of(s, METRICS_DB_READER, 1);
    int rc = s->ops->ping(s->be);
    store_in_use_of(s, METRICS_DB_READER, -1);
    return rc;
}

bool store_concurrent(const struct store *s)
{
    ASSERT(s != NULL);
    return s->ops->concurrent;
}

uint32_t store_writers(const struct store *s)
{
    ASSERT(s != NULL);
    return s->ops->writers != NULL ? s->ops->writers(s->be) : 1;
}

const char *store_system_name(const struct store *s)
{
    ASSERT(s != NULL);
    return s->ops->system_name;
}

int store_account_get(struct store *s, const char *id, store_account_fn fn, void *ctx)
{
    ASSERT(s != NULL);
    ASSERT(id != NULL && fn != NULL);
    store_in_use_of(s, METRICS_DB_READER, 1);
    int rc = s->ops->account_get(s->be, id, fn, ctx);
    store_in_use_of(s, METRICS_DB_READER, -1);
    return rc;
}

int store_transfer_get(struct store *s, const char *id, store_transfer_fn fn, void *ctx)
{
    ASSERT(s != NULL);
    ASSERT(id != NULL && fn != NULL);
    store_in_use_of(s, METRICS_DB_READER, 1);
    int rc = s->ops->transfer_get(s->be, id, fn, ctx);
    store_in_use_of(s, METRICS_DB_READER, -1);
    return rc;
}

int store_accounts_list(struct store *s, const char *ledger, struct store_page *page,
                        store_account_fn fn, void *ctx)
{
    ASSERT(s != NULL);
    ASSERT(page != NULL && fn != NULL);
    ASSERT(page->limit >= 1 && page->limit <= LIMIT_LIST_MAX);
    page->last_seq_out = page->after_seq;
    page->more_out = false;
    store_in_use_of(s, METRICS_DB_READER, 1);
    int rc = s->ops->accounts_list(s->be, ledger, page, fn, ctx);
    store_in_use_of(s, METRICS_DB_READER, -1);
    return rc;
}

int store_account_transfers_list(struct store *s, const char *account_id, struct store_page *page,
                                 store_transfer_fn fn, void *ctx)
{
    ASSERT(s != NULL);
    ASSERT(account_id != NULL && page != NULL && fn != NULL);
    ASSERT(page->limit >= 1 && page->limit <= LIMIT_LIST_MAX);
    page->last_seq_out = page->after_seq;
    page->more_out = false;
    store_in_use_of(s, METRICS_DB_READER, 1);
    int rc = s->ops->account_transfers_list(s->be, account_id, page, fn, ctx);
    store_in_use_of(s, METRICS_DB_READER, -1);
    return rc;
}

int store_idem_get(struct store *s, const char *principal, const char *key, int64_t now_ms,
                   store_idem_fn fn, void *ctx)
{
    ASSERT(s != NULL);
    ASSERT(principal != NULL && key != NULL && fn != NULL);
    store_in_use_of(s, METRICS_DB_READER, 1);
    int rc = s->ops->idem_get(s->be, principal, key, now_ms, fn, ctx);
    store_in_use_of(s, METRICS_DB_READER, -1);
    return rc;
}

/* ---- API keys and the audit trail: the administrative writer and readers ---- */

int store_apikey_insert(struct store *s, const struct store_apikey *k, struct audit_record *audit)
{
    ASSERT(s != NULL);
    ASSERT(k != NULL && audit != NULL);
    ASSERT(k->id[0] != '\0' && k->name[0] != '\0' && k->created_by[0] != '\0');
    ASSERT(k->scopes != 0 && k->revoked_at_ms == 0);
    return s->ops->apikey_insert(s->be, k, audit);
}

int store_apikey_get(struct store *s, const char *id, struct store_apikey *out)
{
    ASSERT(s != NULL);
    ASSERT(id != NULL && out != NULL);
    store_in_use_of(s, METRICS_DB_READER, 1);
    int rc = s->ops->apikey_get(s->be, id, out);
    store_in_use_of(s, METRICS_DB_READER, -1);
    return rc;
}

int store_apikey_list(struct store *s, store_apikey_fn fn, void *ctx)
{
    ASSERT(s != NULL);
    ASSERT(fn != NULL);
    store_in_use_of(s, METRICS_DB_READER, 1);
    int rc = s->ops->apikey_list(s->be, fn, ctx);
    store_in_use_of(s, METRICS_DB_READER, -1);
    return rc;
}

int store_apikey_revoke(struct store *s, const char *id, int64_t now_ms, struct audit_record *audit)
{
    ASSERT(s != NULL);
    ASSERT(id != NULL && audit != NULL);
    ASSERT(now_ms > 0);
    return s->ops->apikey_revoke(s->be, id, now_ms, audit);
}

int store_audit_append_one(struct store *s, struct audit_record *r)
{
    ASSERT(s != NULL);
    ASSERT(r != NULL);
    return s->ops->audit_append_one(s->be, r);
}

int store_audit_tail(struct store *s, uint64_t *seq_out, uint8_t hash_out[AUDIT_HASH_BYTES])
{
    ASSERT(s != NULL);
    ASSERT(seq_out != NULL && hash_out != NULL);
    *seq_out = 0;
    memset(hash_out, 0, AUDIT_HASH_BYTES);
    store_in_use_of(s, METRICS_DB_READER, 1);
    int rc = s->ops->audit_tail(s->be, seq_out, hash_out);
    store_in_use_of(s, METRICS_DB_READER, -1);
    return rc;
}

int store_audit_records(struct store *s, struct store_page *page, store_audit_record_fn fn,
                        void *ctx)
{
    ASSERT(s != NULL);
    ASSERT(page != NULL && fn != NULL);
    ASSERT(page->limit >= 1 && page->limit <= LIMIT_LIST_MAX);
    page->last_seq_out = page->after_seq;
    page->more_out = false;
    store_in_use_of(s, METRICS_DB_READER, 1);
    int rc = s->ops->audit_records(s->be, page, fn, ctx);
    store_in_use_of(s, METRICS_DB_READER, -1);
    return rc;
}

int store_audit_checkpoints(struct store *s, uint64_t after_seq, store_audit_checkpoint_fn fn,
                            void *ctx)
{
    ASSERT(s != NULL);
    ASSERT(fn != NULL);
    store_in_use_of(s, METRICS_DB_READER, 1);
    int rc = s->ops->audit_checkpoints(s->be, after_seq, fn, ctx);
    store_in_use_of(s, METRICS_DB_READER, -1);
    return rc;
}

int store_audit_trail(struct store *s, uint64_t after_seq, store_audit_record_fn record_fn,
                      store_audit_checkpoint_fn checkpoint_fn, void *ctx)
{
    ASSERT(s != NULL);
    ASSERT(record_fn != NULL && checkpoint_fn != NULL);
    store_in_use_of(s, METRICS_DB_READER, 1);
    int rc = s->ops->audit_trail(s->be, after_seq, record_fn, checkpoint_fn, ctx);
    store_in_use_of(s, METRICS_DB_READER, -1);
    return rc;
}

int store_audit_checkpoint_last(struct store *s, uint64_t *seq_out, int64_t *time_unix_ms_out)
{
    ASSERT(s != NULL);
    ASSERT(seq_out != NULL && time_unix_ms_out != NULL);
    *seq_out = 0;
    *time_unix_ms_out = 0;
    store_in_use_of(s, METRICS_DB_READER, 1);
    int rc = s->ops->audit_checkpoint_last(s->be, seq_out, time_unix_ms_out);
    store_in_use_of(s, METRICS_DB_READER, -1);
    return rc;
}

int store_audit_checkpoint_insert(struct store *s, const struct audit_checkpoint *cp)
{
    ASSERT(s != NULL);
    ASSERT(cp != NULL && cp->seq >= 1);
    return s->ops->audit_checkpoint_insert(s->be, cp);
}

/* Ends the writer's use once: after a COMMIT, or the ROLLBACK that follows a failed one. */
static void store_tx_end(struct store *s)
{
    if (store_tx_owner == s) {
        store_tx_owner = NULL;
        store_in_use_of(s, METRICS_DB_WRITER, -1);
    }
}

/* Taking the writer is BEGIN IMMEDIATE: its wait is the acquisition's, and a busy timeout
 * (another process holding the database) is an acquisition timeout. */
int store_tx_begin(struct store *s)
{
    ASSERT(s != NULL);
    store_tx_end(s); /* a transaction SQLite ended on its own after a failed COMMIT */
    ASSERT(store_tx_owner == NULL); /* one transaction per thread */
    int64_t t0 = clock_mono_ns();
    int rc = s->ops->tx_begin(s->be);
    if (!s->ops->concurrent) {
        int64_t waited = clock_mono_ns() - t0;
        metrics_observe(METRIC_DB_ACQUIRE_WAIT, METRICS_DB_WRITER,
                        waited > 0 ? (uint64_t)waited : 0);
        if (rc == -EBUSY) {
            metrics_add(METRIC_DB_ACQUIRE_TIMEOUT, METRICS_DB_WRITER, 1);
        }
    }
    if (rc == 0) {
        store_tx_owner = s;
        store_in_use_of(s, METRICS_DB_WRITER, 1);
    }
    return rc;
}

int store_tx_commit(struct store *s)
{
    ASSERT(s != NULL);
    int rc = s->ops->tx_commit(s->be);
    if (rc == 0) {
        store_tx_end(s);
    }
    return rc;
}

void store_tx_rollback(struct store *s)
{
    ASSERT(s != NULL);
    s->ops->tx_rollback(s->be);
    store_tx_end(s);
}

int store_wr_account_load(struct store *s, const char *id, struct ledger_book *b)
{
    ASSERT(s != NULL);
    ASSERT(id != NULL && b != NULL);
    return s->ops->wr_account_load(s->be, id, b);
}

int store_wr_transfer_load(struct store *s, const char *id, struct ledger_book *b)
{
    ASSERT(s != NULL);
    ASSERT(id != NULL && b != NULL);
    return s->ops->wr_transfer_load(s->be, id, b);
}

int store_wr_accounts_load(struct store *s, const char *const *ids, size_t n, struct ledger_book *b)
{
    ASSERT(s != NULL);
    ASSERT((ids != NULL || n == 0) && b != NULL);
    if (n == 0) {
        return 0;
    }
    if (s->ops->wr_accounts_load != NULL) {
        return s->ops->wr_accounts_load(s->be, ids, n, b);
    }
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = s->ops->wr_account_load(s->be, ids[i], b);
    }
    return rc;
}

int store_wr_transfers_load(struct store *s, const char *const *ids, size_t n,
                            struct ledger_book *b)
{
    ASSERT(s != NULL);
    ASSERT((ids != NULL || n == 0) && b != NULL);
    if (n == 0) {
        return 0;
    }
    if (s->ops->wr_transfers_load != NULL) {
        return s->ops->wr_transfers_load(s->be, ids, n, b);
    }
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = s->ops->wr_transfer_load(s->be, ids[i], b);
    }
    return rc;
}

int store_wr_idem_get_many(struct store *s, const char *const *principals, const char *const *keys,
                           size_t n, int64_t now_ms, store_idem_many_fn fn, void *ctx)
{
    ASSERT(s != NULL);
    ASSERT((n == 0 || (principals != NULL && keys != NULL)) && fn != NULL);
    ASSERT(s->ops->wr_idem_get_many != NULL); /* concurrent backends only */
    ASSERT(store_tx_owner == s);
    return n == 0 ? 0 : s->ops->wr_idem_get_many(s->be, principals, keys, n, now_ms, fn, ctx);
}

int store_wr_due_pendings(struct store *s, int64_t now_ms, size_t limit, struct ledger_book *b,
                          char (*ids_out)[LIMIT_ID_LEN_MAX + 1], size_t *n_out)
{
    ASSERT(s != NULL);
    ASSERT(b != NULL && ids_out != NULL && n_out != NULL);
    ASSERT(limit >= 1 && limit <= LIMIT_EXPIRY_SWEEP_MAX);
    *n_out = 0;
    return s->ops->wr_due_pendings(s->be, now_ms, limit, b, ids_out, n_out);
}

int store_wr_next_deadline(struct store *s, int64_t *deadline_ms_out)
{
    ASSERT(s != NULL);
    ASSERT(deadline_ms_out != NULL);
    *deadline_ms_out = 0;
    return s->ops->wr_next_deadline(s->be, deadline_ms_out);
}

int store_wr_changes(struct store *s, const struct ledger_book *b)
{
    ASSERT(s != NULL);
    ASSERT(b != NULL);
    return s->ops->wr_changes(s->be, b);
}

int store_wr_idem_put(struct store *s, const char *principal, const char *key,
                      const struct store_idem_record *r, int64_t created_at_ms)
{
    ASSERT(s != NULL);
    ASSERT(principal != NULL && key != NULL && r != NULL);
    ASSERT(r->location != NULL);
    ASSERT(r->body != NULL || r->body_len == 0);
    return s->ops->wr_idem_put(s->be, principal, key, r, created_at_ms);
}

int store_wr_audit_append(struct store *s, struct audit_record *r)
{
    ASSERT(s != NULL);
    ASSERT(r != NULL);
    ASSERT(store_tx_owner == s);
    return s->ops->wr_audit_append(s->be, r);
}

int store_wr_audit_tail(struct store *s, uint64_t *seq_out, uint8_t hash_out[AUDIT_HASH_BYTES])
{
    ASSERT(s != NULL);
    ASSERT(seq_out != NULL && hash_out != NULL);
    ASSERT(store_tx_owner == s);
    *seq_out = 0;
    memset(hash_out, 0, AUDIT_HASH_BYTES);
    return s->ops->wr_audit_tail(s->be, seq_out, hash_out);
}

int store_wr_audit_checkpoint_insert(struct store *s, const struct audit_checkpoint *cp)
{
    ASSERT(s != NULL);
    ASSERT(cp != NULL && cp->seq >= 1);
    ASSERT(store_tx_owner == s);
    return s->ops->wr_audit_checkpoint_insert(s->be, cp);
}

int store_wr_idem_purge(struct store *s, int64_t now_ms, size_t limit, size_t *deleted_out)
{
    ASSERT(s != NULL);
    ASSERT(deleted_out != NULL);
    ASSERT(limit >= 1 && limit <= LIMIT_IDEMPOTENCY_PURGE_MAX);
    *deleted_out = 0;
    return s->ops->wr_idem_purge(s->be, now_ms, limit, deleted_out);
}
