/*
 * store_internal.h — what a storage backend provides to store.c, shared only inside src/store.
 *
 * store.c owns struct store, picks a backend by the URL scheme and forwards every public call
 * through the backend's operations table. A backend keeps its own state behind an opaque
 * pointer (be); its functions have the contracts of the public functions of the same name in
 * store.h, with arguments already checked by store.c.
 */
#ifndef LEDGERD_STORE_STORE_INTERNAL_H
#define LEDGERD_STORE_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "ledger/book.h"
#include "ledger/ledger.h"
#include "store/store.h"

struct store_backend_ops {
    /* URL prefix handled by the backend, e.g. "sqlite://"; open() receives the rest. */
    const char *scheme;

    /* Concurrent backend (store.h); the backend counts its own connections in use and acquire
     * waits in the pool metrics (store.c does it for the others). */
    bool concurrent;
    const char *system_name;

    int (*open)(const char *location, const struct store_options *opts, void **be_out,
                struct buf *err);
    void (*close)(void *be);

    /* Migrations: migrate.c drives these (store.h says what for). */
    const char *migrations_backend; /* "sqlite" or "postgres" */
    /* The rows of schema_migrations in version order (none when the table does not exist): on
     * a read connection when mtx is NULL, else on the migration's connection. */
    int (*mig_rows)(void *be, void *mtx, struct store_migration_row **rows, size_t *n);
    /* Takes the migration lock on a connection of its own, in a transaction when transaction
     * is true, and creates or completes schema_migrations. *mtx until mig_end. */
    int (*mig_begin)(void *be, bool transaction, void **mtx, struct buf *err);
    /* Runs SQL text (several statements in a transaction; one outside). */
    int (*mig_exec)(void *mtx, const char *sql, struct buf *err);
    /* Records row, and its audit record with row->applied_by as the actor once the trail
     * exists: in the transaction, or in one of its own. */
    int (*mig_record)(void *mtx, const struct store_migration_row *row, struct buf *err);
    /* Commits (commit true) or rolls back; releases the lock and the connection. */
    int (*mig_end)(void *mtx, bool commit, struct buf *err);
    int (*schema_dump)(void *be, struct buf *out, struct buf *err);
    int (*table_rows)(void *be, const char *table, uint64_t cap, uint64_t *rows);
    /* An empty database beside location (its location appended to scratch), and its removal. */
    int (*scratch_create)(const char *location, const struct store_options *opts,
                          struct buf *scratch, struct buf *err);
    void (*scratch_drop)(const char *location, const struct store_options *opts,
                         const char *scratch);
    int (*ping)(void *be);
    uint32_t (*writers)(void *be);

    int (*account_get)(void *be, const char *id, store_account_fn fn, void *ctx);
    int (*transfer_get)(void *be, const char *id, store_transfer_fn fn, void *ctx);
    int (*accounts_list)(void *be, const char *ledger, struct store_page *page, store_account_fn fn,
                         void *ctx);
    int (*account_transfers_list)(void *be, const char *account_id, struct store_page *page,
                                  store_transfer_fn fn, void *ctx);
    int (*idem_get)(void *be, const char *principal, const char *key, int64_t now_ms,
                    store_idem_fn fn, void *ctx);

    int (*apikey_insert)(void *be, const struct store_apikey *k, struct audit_record *audit);
    int (*apikey_get)(void *be, const char *id, struct store_apikey *out);
    int (*apikey_list)(void *be, store_apikey_fn fn, void *ctx);
    int (*apikey_revoke)(void *be, const char *id, int64_t now_ms, struct audit_record *audit);
    int (*audit_append_one)(void *be, struct audit_record *r);
    int (*audit_tail)(void *be, uint64_t *seq_out, uint8_t hash_out[AUDIT_HASH_BYTES]);
    int (*audit_records)(void *be, struct store_page *page, store_audit_record_fn fn, void *ctx);
    int (*audit_checkpoints)(void *be, uint64_t after_seq, store_audit_checkpoint_fn fn, void *ctx);
    int (*audit_trail)(void *be, uint64_t after_seq, store_audit_record_fn record_fn,
                       store_audit_checkpoint_fn checkpoint_fn, void *ctx);
    int (*audit_checkpoint_last)(void *be, uint64_t *seq_out, int64_t *time_unix_ms_out);
    int (*audit_checkpoint_insert)(void *be, const struct audit_checkpoint *cp);

    int (*tx_begin)(void *be);
    int (*tx_commit)(void *be);
    void (*tx_rollback)(void *be);
    int (*wr_account_load)(void *be, const char *id, struct ledger_book *b);
    int (*wr_transfer_load)(void *be, const char *id, struct ledger_book *b);
    /* May be NULL: store.c then loads one id at a time. */
    int (*wr_accounts_load)(void *be, const char *const *ids, size_t n, struct ledger_book *b);
    int (*wr_transfers_load)(void *be, const char *const *ids, size_t n, struct ledger_book *b);
    /* Concurrent backends only (NULL otherwise). */
    int (*wr_idem_get_many)(void *be, const char *const *principals, const char *const *keys,
                            size_t n, int64_t now_ms, store_idem_many_fn fn, void *ctx);
    int (*wr_due_pendings)(void *be, int64_t now_ms, size_t limit, struct ledger_book *b,
                           char (*ids_out)[LIMIT_ID_LEN_MAX + 1], size_t *n_out);
    int (*wr_next_deadline)(void *be, int64_t *deadline_ms_out);
    int (*wr_changes)(void *be, const struct ledger_book *b);
    int (*wr_idem_put)(void *be, const char *principal, const char *key,
                       const struct store_idem_record *r, int64_t created_at_ms);
    int (*wr_idem_purge)(void *be, int64_t now_ms, size_t limit, size_t *deleted_out);
    int (*wr_audit_append)(void *be, struct audit_record *r);
    int (*wr_audit_tail)(void *be, uint64_t *seq_out, uint8_t hash_out[AUDIT_HASH_BYTES]);
    int (*wr_audit_checkpoint_insert)(void *be, const struct audit_checkpoint *cp);
};

/* The SQLite backend (sqlite.c) and the PostgreSQL backend (pg.c), which answers both
 * postgres:// and postgresql:// (store_pg_ops, store_pgsql_ops: the same functions). */
extern const struct store_backend_ops store_sqlite_ops;
extern const struct store_backend_ops store_pg_ops;
extern const struct store_backend_ops store_pgsql_ops;

/* The backend serving url (location: the part after its scheme), or NULL. */
const struct store_backend_ops *store_backend_of_url(const char *url, const char **location);
/* A store's backend and its state, for migrate.c. */
const struct store_backend_ops *store_ops_of(const struct store *s);
void *store_be_of(const struct store *s);

/* The audit record of an applied migration: {row->applied_by, "migration.apply",
 * "migration:NNNN_name", "success"} at row->applied_at_ms. -EINVAL when the actor is not valid
 * in a record. */
int store_migration_audit_record(const struct store_migration_row *row, struct audit_record *r);

#endif
