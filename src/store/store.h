/*
 * store.h — the one storage interface of ledgerd.
 *
 * Two sides: reads, callable from any thread (SQLite: each thread gets its own read connection
 * on the WAL, opened on first use), and the writer, used only by the commit worker thread,
 * which runs one transaction per batch (group commit). Backends are chosen by URL scheme:
 * sqlite:///abs/path.db or sqlite://relative/path.db, and postgres:// or postgresql:// (libpq's
 * URL, docs/operations/scaling.md). Commit order is a per-table sequence number that lists use
 * as their cursor.
 *
 * Concurrent backends (PostgreSQL; store_concurrent): several commit workers, in this process
 * and in other ledgerd processes, write the same rows at once. Their writer then locks every
 * row it loads until its transaction ends, a command with an idempotency key is checked again
 * inside the transaction (store_wr_idem_get_many), and any writer call may fail with -EAGAIN: a
 * serialization failure, a deadlock or a concurrent insert of the same key, after which the
 * transaction must be rolled back and run again from the start. Their reads wait on the
 * network: they must never run on an I/O thread.
 *
 * Errors: 0 on success; -ENOENT when the thing asked for does not exist; -EIO when the
 * database failed or cannot be reached (the message is logged by the store); -EBUSY when the
 * database is locked by another process past the busy timeout, or no pooled connection came
 * free within the acquire timeout, or a statement ran past its timeout; -EAGAIN (concurrent
 * backends, writer calls) as above; -EINVAL for a malformed URL.
 *
 * Besides the commit worker's writer, a store has an administrative writer for the rare writes
 * that do not go through the commit worker (API keys, audit records of the command line or of
 * refused requests): any thread may use it, one at a time behind a lock, each call in its own
 * transaction. SQLite serializes it with the commit worker's transactions and with other
 * processes (`ledgerd apikey create` while the server runs) through the database lock.
 */
#ifndef LEDGERD_STORE_STORE_H
#define LEDGERD_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit/audit.h"
#include "auth/apikey.h"
#include "core/buf.h"
#include "core/limits.h"
#include "core/sha256.h"
#include "ledger/book.h"
#include "ledger/ledger.h"

struct store;

/* Connection settings of the pooled backends (PostgreSQL; SQLite ignores them). A zero field
 * takes its default. */
struct store_options {
    uint32_t pool_size;                 /* reader connections (default 8) */
    uint32_t writers;                   /* writer connections = commit workers (default 2) */
    uint32_t acquire_timeout_ms;        /* wait for a free connection (default 2000) */
    uint32_t conn_max_lifetime_seconds; /* a connection is replaced after this (default 1800) */
    uint32_t statement_timeout_ms;      /* per statement, server side (default 5000) */
    const char *password;               /* NULL: from the URL or libpq's own sources */
};

/* Opens the database named by url (SQLite: creating the file and its directory if needed;
 * sets WAL and synchronous=FULL). Does not migrate. On failure returns a negative code and
 * writes a one-line reason into err. store_open uses the default options. */
int store_open(const char *url, struct store **out, struct buf *err);
int store_open_with(const char *url, const struct store_options *opts, struct store **out,
                    struct buf *err);
/* Closes every connection, the readers of all threads included. No other thread may be using
 * the store. */
void store_close(struct store *s);

/* ---------------------------------------------------------------------------------------
 * Migrations: numbered SQL files (migrations/<backend>/NNNN_name.sql, see migset.h), each
 * recorded when applied in schema_migrations with its checksum, time, duration and who applied
 * it. The functions without a set use the copy built into the binary — the schema this binary
 * was written for.
 * ------------------------------------------------------------------------------------- */
struct migset;
struct migset_file;

/* One row of schema_migrations. */
struct store_migration_row {
    uint32_t version;
    char name[LIMIT_MIGRATION_NAME_LEN_MAX + 1];
    char checksum[2 * SHA256_BYTES + 1]; /* SHA-256 hex of the normalised file */
    int64_t applied_at_ms;
    int64_t duration_ms; /* -1: applied before ledgerd recorded it */
    char applied_by[LIMIT_MIGRATION_APPLIED_BY_LEN_MAX + 1]; /* "" when not recorded */
};

struct store_migration_status {
    uint32_t available; /* migrations in the set */
    uint32_t applied;   /* rows in schema_migrations */
    uint32_t pending;   /* in the set, not applied */
    /* Applied versions past the set's last: a newer release migrated (expand) while this one
     * still runs. Not drift: the schema only grew. */
    uint32_t ahead;
    /* An applied migration whose file changed (checksum or name), or a pending one numbered
     * below an applied one (the history was reordered): the schema cannot be trusted. */
    bool drift;
    char detail[LIMIT_MIGRATION_MESSAGE_LEN]; /* the first drift, naming the file */
};
/* Compares the database with the built-in set / with set. Reads only (a database that was never
 * migrated has no schema_migrations table and shows everything pending). */
int store_migration_status(struct store *s, struct store_migration_status *out);
int store_migration_status_of(struct store *s, const struct migset *set,
                              struct store_migration_status *out);
/* The rows of schema_migrations in version order (*rows malloc'd; free() it). */
int store_migration_rows(struct store *s, struct store_migration_row **rows, size_t *n);
/* The status of rows (as store_migration_rows gives them) against set, without a read. */
void store_migration_compare(const struct migset *set, const struct store_migration_row *rows,
                             size_t n, struct store_migration_status *out);

struct store_migrate_options {
    const char *actor;      /* who applies ("cli:<user>", "system"); NULL: "system" */
    uint32_t to;            /* apply up to this version; 0: all */
    bool allow_destructive; /* apply annotated destructive statements */
    bool dry_run;           /* every check, then return before applying anything */
    /* Called after each migration committed (may be NULL). */
    void (*applied)(void *ctx, const struct migset_file *f, int64_t duration_ms);
    void *ctx;
};
/* Applies set's pending migrations in order, each in its own transaction (a PostgreSQL file
 * marked no-transaction runs statement by statement) holding the migration lock, so that two
 * processes migrating at once apply each migration once. Each one records its row and, once
 * the audit trail exists (migration 0002 on), an audit record {actor, "migration.apply",
 * "migration:NNNN_name", "success"} in the same transaction. Before applying anything, refuses
 * with -EINVAL and a reason naming the file: drift; --to below an applied version; a pending
 * file with lint problems or unannotated destructive statements; annotated destructive
 * statements without allow_destructive. Other errors: the database's, naming the file. */
int store_migrate(struct store *s, const struct migset *set, const struct store_migrate_options *o,
                  struct buf *err);
/* store_migrate with the built-in set and no destructive statements allowed. */
int store_migrate_up(struct store *s,
                     void (*applied)(void *ctx, uint32_t version, const char *name), void *ctx,
                     struct buf *err);
int store_migrate_up_as(struct store *s, const char *actor,
                        void (*applied)(void *ctx, uint32_t version, const char *name), void *ctx,
                        struct buf *err);
/* How many rows table holds, counted up to cap + 1 (so a huge table costs a bounded read):
 * what `ledgerd migrate plan` shows beside a finding on an existing table. -ENOENT when there is
 * no such table (yet). */
int store_table_rows(struct store *s, const char *table, uint64_t cap, uint64_t *rows);
/* "sqlite" or "postgres": the migrations directory of the store's backend. */
const char *store_migrations_backend(const struct store *s);
/* The schema of the database as deterministic SQL text (tables with their columns,
 * constraints, indexes, sequences, functions, triggers, views; schema_migrations left out),
 * appended to out: what `ledgerd migrate snapshot` writes and `verify` compares. */
int store_schema_dump(struct store *s, struct buf *out, struct buf *err);
/* Applies set to a new, empty database next to url's (SQLite: a file in a temporary
 * directory; PostgreSQL: a database created on url's server and dropped afterwards) and
 * appends its store_schema_dump to schema. */
int store_schema_of_fresh(const char *url, const struct store_options *opts,
                          const struct migset *set, struct buf *schema, struct buf *err);

/* Cheap liveness query on the calling thread's read connection. */
int store_ping(struct store *s);

/* True for a concurrent backend (see the top of this file). */
bool store_concurrent(const struct store *s);
/* How many commit workers the store can serve at once: 1 for SQLite (one writer), the
 * writers option for PostgreSQL. */
uint32_t store_writers(const struct store *s);
/* "sqlite" or "postgresql": the OpenTelemetry db.system.name of the backend. */
const char *store_system_name(const struct store *s);

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
 * API keys (any thread; writes on the administrative writer). The key itself is never
 * stored: only its id and the keyed hash of its secret (auth/apikey.h).
 * ------------------------------------------------------------------------------------- */
/* A key's display name: a label for people (1..128 bytes of UTF-8 without control
 * characters, checked by whoever takes it from a user). */
#define STORE_APIKEY_NAME_LEN_MAX 128

struct store_apikey {
    int64_t created_at_ms;
    int64_t revoked_at_ms;                          /* 0 while the key is in force */
    uint32_t scopes;                                /* enum scope_bit mask, not 0 */
    uint8_t hash[APIKEY_HASH_BYTES];                /* HMAC-SHA256 of the secret */
    char id[APIKEY_ID_LEN + 1];                     /* 16 lower-case hex digits */
    char name[STORE_APIKEY_NAME_LEN_MAX + 1];       /* not empty */
    char created_by[LIMIT_AUDIT_ACTOR_LEN_MAX + 1]; /* the actor that made it, not empty */
};
typedef int (*store_apikey_fn)(void *ctx, const struct store_apikey *k);

/* Stores a new key (revoked_at_ms must be 0) and appends audit (filled by the caller but for
 * seq, prev_hash and hash, which are set here) in the same transaction: both or neither.
 * Returns 0; -EEXIST when a key with this id exists (nothing written: make a new key);
 * -EINVAL when audit does not validate; -EBUSY; -EIO. */
int store_apikey_insert(struct store *s, const struct store_apikey *k, struct audit_record *audit);
/* The key with this id, revoked or not; -ENOENT when there is none. */
int store_apikey_get(struct store *s, const char *id, struct store_apikey *out);
/* Every key, revoked ones included, oldest first (created_at_ms, then id). A callback returning
 * non-zero stops the list and its value is returned. */
int store_apikey_list(struct store *s, store_apikey_fn fn, void *ctx);
/* Revokes the key: sets revoked_at_ms to now_ms and appends audit in the same transaction.
 * Returns 0; -ENOENT when there is no such key; -EALREADY when it was revoked before (nothing
 * is written, no audit record: its revoked_at_ms stays the first one); -EINVAL when audit does
 * not validate; -EBUSY; -EIO. */
int store_apikey_revoke(struct store *s, const char *id, int64_t now_ms,
                        struct audit_record *audit);

/* ---------------------------------------------------------------------------------------
 * The audit trail (docs/security/audit.md). Appends link each record to the last one stored,
 * read from the table inside the appending transaction, never from memory: several writers
 * (the commit worker, the administrative writer, another process) may append, and SQLite's
 * write lock orders them into one chain.
 * ------------------------------------------------------------------------------------- */
typedef int (*store_audit_record_fn)(void *ctx, const struct audit_record *r);
typedef int (*store_audit_checkpoint_fn)(void *ctx, const struct audit_checkpoint *cp);

/* The commit worker, inside its open transaction (store_tx_begin): links r after the current
 * tail (audit_chain_next sets seq, prev_hash, hash) and inserts it. A concurrent store may defer
 * both to the transaction's first write (store_wr_changes, else store_tx_commit), so that its
 * ledger lock is held only from there: r must stay valid and unchanged until the transaction
 * ends, and its seq and hash are set by then. Returns 0; -EINVAL when r does not validate;
 * -EOVERFLOW; -EBUSY; -EIO. When the transaction rolls back, r's seq and hash mean nothing: the
 * next append reads the tail again. */
int store_wr_audit_append(struct store *s, struct audit_record *r);
/* The same in a transaction of its own on the administrative writer (any thread). */
int store_audit_append_one(struct store *s, struct audit_record *r);

/* The last record's seq and hash: seq 0 and 32 zero bytes when the trail is empty. Reader /
 * inside the commit worker's transaction. */
int store_audit_tail(struct store *s, uint64_t *seq_out, uint8_t hash_out[AUDIT_HASH_BYTES]);
int store_wr_audit_tail(struct store *s, uint64_t *seq_out, uint8_t hash_out[AUDIT_HASH_BYTES]);

/* A page of records in seq order, seq > page->after_seq, at most page->limit
 * (1..LIMIT_LIST_MAX) of them; page->last_seq_out and page->more_out as for the lists above.
 * Rows that do not fit struct audit_record (a field longer than its array, a hash that is not
 * 32 bytes: a database written by something else) are -EIO. */
int store_audit_records(struct store *s, struct store_page *page, store_audit_record_fn fn,
                        void *ctx);
/* Every checkpoint with seq > after_seq, in seq order. */
int store_audit_checkpoints(struct store *s, uint64_t after_seq, store_audit_checkpoint_fn fn,
                            void *ctx);
/* The records and the checkpoints with seq > after_seq merged by seq, a checkpoint right after
 * the record it covers, all from one snapshot of the database: the order the streaming verifier
 * (audit_verify_*) wants, in constant memory. */
int store_audit_trail(struct store *s, uint64_t after_seq, store_audit_record_fn record_fn,
                      store_audit_checkpoint_fn checkpoint_fn, void *ctx);
/* The latest checkpoint's seq and time: 0 and 0 when there is none (audit_checkpoint_due). */
int store_audit_checkpoint_last(struct store *s, uint64_t *seq_out, int64_t *time_unix_ms_out);
/* Stores a signed checkpoint: inside the commit worker's transaction / in a transaction of its
 * own on the administrative writer. Returns 0; -EEXIST when a checkpoint of that seq exists
 * (nothing written); -EBUSY; -EIO. */
int store_wr_audit_checkpoint_insert(struct store *s, const struct audit_checkpoint *cp);
int store_audit_checkpoint_insert(struct store *s, const struct audit_checkpoint *cp);

/* ---------------------------------------------------------------------------------------
 * The writer (the commit worker's thread only).
 * ------------------------------------------------------------------------------------- */
/* The writer is the calling thread's: on a concurrent backend each commit worker thread has
 * its own transaction (at most one per thread); on SQLite only one thread may use it.
 * BEGIN IMMEDIATE / COMMIT / ROLLBACK. Commit makes the transaction durable (one fsync). */
int store_tx_begin(struct store *s);
int store_tx_commit(struct store *s);
void store_tx_rollback(struct store *s);

/* Loads the account / transfer with this id into the book if it exists and is not there yet.
 * 0 whether found or not; -ENOSPC when the book is full; -EIO. */
int store_wr_account_load(struct store *s, const char *id, struct ledger_book *b);
int store_wr_transfer_load(struct store *s, const char *id, struct ledger_book *b);
/* The same for n ids at once (duplicates allowed, any order). A concurrent backend locks the
 * rows in byte order of their ids, whatever the order given, so that two writers loading
 * overlapping sets never deadlock; transfers come with their pending state. */
int store_wr_accounts_load(struct store *s, const char *const *ids, size_t n,
                           struct ledger_book *b);
int store_wr_transfers_load(struct store *s, const char *const *ids, size_t n,
                            struct ledger_book *b);
/* Loads up to limit pending transfers in state PENDING with 0 < expires_at_ms <= now_ms (oldest
 * deadline first) and their accounts into the book; writes their ids into ids_out (room for
 * limit ids) and the count into *n_out. */
int store_wr_due_pendings(struct store *s, int64_t now_ms, size_t limit, struct ledger_book *b,
                          char (*ids_out)[LIMIT_ID_LEN_MAX + 1], size_t *n_out);
/* Earliest deadline of a PENDING transfer, or 0 when none: lets the worker sleep until then. */
int store_wr_next_deadline(struct store *s, int64_t *deadline_ms_out);
/* Writes everything the book changed (ledger_book_changes). A concurrent store may send some of
 * it with the COMMIT instead, so an error of those writes (-EAGAIN: another writer inserted the
 * same id first) is then store_tx_commit's. */
int store_wr_changes(struct store *s, const struct ledger_book *b);
/* The idempotency records of n (principal, key) pairs not expired at now_ms, as the writer's
 * transaction sees them now (committed by anyone, or stored by this transaction), in one round
 * trip: fn(ctx, i, r) for each pair i (0-based) that has one, in any order; pairs without one
 * are not called. A callback returning non-zero stops and its value is returned. Concurrent
 * backends only. */
typedef int (*store_idem_many_fn)(void *ctx, size_t i, const struct store_idem_record *r);
int store_wr_idem_get_many(struct store *s, const char *const *principals, const char *const *keys,
                           size_t n, int64_t now_ms, store_idem_many_fn fn, void *ctx);
/* Inserts the idempotency record of (principal, key), replacing an expired one. A concurrent
 * backend answers -EAGAIN when a record in force exists (stored meanwhile by another writer):
 * run the transaction again, and store_wr_idem_get_many finds it. */
int store_wr_idem_put(struct store *s, const char *principal, const char *key,
                      const struct store_idem_record *r, int64_t created_at_ms);
/* Deletes up to limit records that expired before now_ms; *deleted_out gets the count. */
int store_wr_idem_purge(struct store *s, int64_t now_ms, size_t limit, size_t *deleted_out);

#endif
