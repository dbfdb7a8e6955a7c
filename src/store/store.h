/*
 * store.h — the one storage interface of ledgerd.
 *
 * Two sides: reads, callable from any thread (SQLite: each thread gets its own read connection
 * on the WAL, opened on first use), and the writer, used only by the commit worker thread,
 * which runs one transaction per batch (group commit). Backends are chosen by URL scheme:
 * sqlite:///abs/path.db or sqlite://relative/path.db (PostgreSQL comes later behind the same
 * functions). Amounts are stored as 16-byte big-endian blobs; commit order is a per-table
 * sequence number that lists use as their cursor.
 *
 * Errors: 0 on success; -ENOENT when the thing asked for does not exist; -EIO when the
 * database failed (the message is logged by the store); -EBUSY when the database is locked by
 * another process past the busy timeout; -EINVAL for a malformed URL.
 */
#ifndef LEDGERD_STORE_STORE_H
#define LEDGERD_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/sha256.h"
#include "ledger/book.h"
#include "ledger/ledger.h"

struct store;

/* Opens the database named by url (creating the file and its directory if needed; sets WAL and
 * synchronous=FULL). Does not migrate. On failure returns a negative code and writes a
 * one-line reason into err. */
int store_open(const char *url, struct store **out, struct buf *err);
/* Closes every connection, the readers of all threads included. No other thread may be using
 * the store. */
void store_close(struct store *s);

/* ---------------------------------------------------------------------------------------
 * Migrations: numbered SQL files compiled into the binary (migrations/<backend>/NNNN_name.sql),
 * each recorded in schema_migrations with its SHA-256 when applied.
 * ------------------------------------------------------------------------------------- */
struct store_migration_status {
    uint32_t available; /* migrations compiled in */
    uint32_t applied;   /* recorded in the database */
    uint32_t pending;   /* available but not applied */
    /* A recorded migration whose checksum differs from the compiled one, or a recorded version
     * this binary does not know (the database is newer): the schema cannot be trusted. */
    bool drift;
    char detail[256]; /* human-readable reason when drift */
};
int store_migration_status(struct store *s, struct store_migration_status *out);
/* Applies pending migrations in order, each in its own transaction. Calls applied() after each
 * one (may be NULL). Refuses (-EINVAL, reason in err) when there is drift. */
int store_migrate_up(struct store *s,
                     void (*applied)(void *ctx, uint32_t version, const char *name), void *ctx,
                     struct buf *err);

/* Cheap liveness query on the calling thread's read connection. */
int store_ping(struct store *s);

/* ---------------------------------------------------------------------------------------
 * Reads (any thread). Callbacks receive rows whose pointers (metadata, strings) are valid only
 * during the call. A callback returning non-zero stops the read and its value is returned.
 * ------------------------------------------------------------------------------------- */
typedef int (*store_account_fn)(void *ctx, const struct ledger_account *a);
typedef int (*store_transfer_fn)(void *ctx, const struct ledger_transfer *t);

int store_account_get(struct store *s, const char *id, store_account_fn fn, void *ctx);
int store_transfer_get(struct store *s, const char *id, store_transfer_fn fn, void *ctx);

/* A page of a list in commit order, rows with seq > after_seq, at most limit rows.
 * *last_seq_out is the seq of the last row given (after_seq when none); *more_out tells whether
 * rows follow. */
struct store_page {
    uint64_t after_seq;
    uint32_t limit;
    uint64_t last_seq_out;
    bool more_out;
};
/* ledger may be NULL for every ledger. */
int store_accounts_list(struct store *s, const char *ledger, struct store_page *page,
                        store_account_fn fn, void *ctx);
/* Transfers whose debit or credit account is account_id. */
int store_account_transfers_list(struct store *s, const char *account_id, struct store_page *page,
                                 store_transfer_fn fn, void *ctx);

/* A stored idempotent response. */
struct store_idem_record {
    uint8_t request_digest[SHA256_BYTES];
    int status;
    const char *location; /* NUL-terminated, "" when none */
    const char *body;
    size_t body_len;
    int64_t expires_at_ms;
};
typedef int (*store_idem_fn)(void *ctx, const struct store_idem_record *r);
/* Finds the record for (principal, key) that has not expired at now_ms; -ENOENT otherwise. */
int store_idem_get(struct store *s, const char *principal, const char *key, int64_t now_ms,
                   store_idem_fn fn, void *ctx);

/* ---------------------------------------------------------------------------------------
 * The writer (the commit worker's thread only).
 * ------------------------------------------------------------------------------------- */
/* BEGIN IMMEDIATE / COMMIT / ROLLBACK. Commit makes the transaction durable (one fsync). */
int store_tx_begin(struct store *s);
int store_tx_commit(struct store *s);
void store_tx_rollback(struct store *s);

/* Loads the account / transfer with this id into the book if it exists and is not there yet.
 * 0 whether found or not; -ENOSPC when the book is full; -EIO. */
int store_wr_account_load(struct store *s, const char *id, struct ledger_book *b);
int store_wr_transfer_load(struct store *s, const char *id, struct ledger_book *b);
/* Loads up to limit pending transfers in state PENDING with 0 < expires_at_ms <= now_ms (oldest
 * deadline first) and their accounts into the book; writes their ids into ids_out (room for
 * limit ids) and the count into *n_out. */
int store_wr_due_pendings(struct store *s, int64_t now_ms, size_t limit, struct ledger_book *b,
                          char (*ids_out)[LIMIT_ID_LEN_MAX + 1], size_t *n_out);
/* Earliest deadline of a PENDING transfer, or 0 when none: lets the worker sleep until then. */
int store_wr_next_deadline(struct store *s, int64_t *deadline_ms_out);
/* Writes everything the book changed (ledger_book_changes). */
int store_wr_changes(struct store *s, const struct ledger_book *b);
/* Inserts or replaces the idempotency record of (principal, key). */
int store_wr_idem_put(struct store *s, const char *principal, const char *key,
                      const struct store_idem_record *r, int64_t created_at_ms);
/* Deletes up to limit records that expired before now_ms; *deleted_out gets the count. */
int store_wr_idem_purge(struct store *s, int64_t now_ms, size_t limit, size_t *deleted_out);

#endif
