/*
 * book.h — the working set of one commit: every account and transfer a batch may touch, the
 * rules that apply items to it, and an undo journal for linked chains.
 *
 * The commit worker loads what the items reference (ledger_book_*_load), applies the items in
 * order (ledger_book_account_create, ledger_book_transfers_apply), then walks what changed
 * (ledger_book_changes) to write it in the same database transaction. Nothing here does I/O:
 * an id that was not loaded does not exist, as far as the rules are concerned.
 *
 * Memory: everything is allocated once by ledger_book_init (capacities from limits.h) and reused
 * across batches; ledger_book_reset forgets the content. Metadata bytes are copied into the
 * book's own arena. Not thread-safe: one book per commit worker.
 */
#ifndef LEDGERD_LEDGER_BOOK_H
#define LEDGERD_LEDGER_BOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ledger/ledger.h"

struct ledger_book; /* defined in book.c */

/* Allocates a book for at most accounts_max accounts and transfers_max transfers and
 * metadata_bytes_max bytes of metadata. Returns 0 or -ENOMEM. */
int ledger_book_new(size_t accounts_max, size_t transfers_max, size_t metadata_bytes_max,
                    struct ledger_book **out);
void ledger_book_free(struct ledger_book *b);
/* Forgets all entries, changes and the journal; keeps the memory. */
void ledger_book_reset(struct ledger_book *b);

/* Loading what the database holds. An id loaded twice keeps the first copy (the book's may
 * already be modified). Returns 0 or -ENOSPC when the book is full (the batch must be split). */
int ledger_book_account_load(struct ledger_book *b, const struct ledger_account *a);
int ledger_book_transfer_load(struct ledger_book *b, const struct ledger_transfer *t);
/* Lookups (NULL when not in the book). The pointers stay valid until reset. */
const struct ledger_account *ledger_book_account_find(const struct ledger_book *b, const char *id);
const struct ledger_transfer *ledger_book_transfer_find(const struct ledger_book *b,
                                                        const char *id);
/* Room left, so the caller can stop adding items before the book is full. */
size_t ledger_book_accounts_free(const struct ledger_book *b);
size_t ledger_book_transfers_free(const struct ledger_book *b);
/* Metadata bytes the arena still holds. Creating needs room (asserted): an account create one
 * account slot, applying n transfers n transfer slots, and both their metadata bytes. */
size_t ledger_book_metadata_bytes_free(const struct ledger_book *b);

/* Creates an account (created_at = now_ms, zero balances). An existing id with identical
 * ledger, code, flags and metadata -> LEDGER_EXISTS, else EXISTS_WITH_DIFFERENT_FIELDS.
 * *stored (may be NULL) receives the book's copy on CREATED and EXISTS. */
enum ledger_result ledger_book_account_create(struct ledger_book *b,
                                              const struct ledger_account *in, int64_t now_ms,
                                              const struct ledger_account **stored);

/* Applies n transfers in order, with linked-chain semantics (a run of LINKED items plus the
 * next unlinked one succeed or fail together; a chain open at the end fails with
 * LINKED_EVENT_CHAIN_OPEN). results[i] gets each item's result; stored[i] (array may be NULL)
 * the book's copy for CREATED and EXISTS, else NULL. Each transfer gets created_at = now_ms.
 * Pending transfers whose deadline is <= now_ms are treated as expired (and are expired).
 * Returns the number of items that were CREATED. */
size_t ledger_book_transfers_apply(struct ledger_book *b, const struct ledger_transfer *in,
                                   size_t n, int64_t now_ms, enum ledger_result *results,
                                   const struct ledger_transfer **stored);

/* Expires a loaded pending transfer (state PENDING): releases its pending amounts from both
 * accounts and sets state EXPIRED. Returns 0, or -ENOENT when it or its accounts are not in the
 * book, or -EINVAL when it is not PENDING. */
int ledger_book_pending_expire(struct ledger_book *b, const char *transfer_id);

/* What changed, for the writer. Accounts created, in creation order; accounts whose balances
 * changed (created ones excluded); transfers created, in creation (= commit) order; loaded
 * transfers whose pending state changed. Each callback returns 0 to go on or a negative error
 * that stops the walk and is returned. */
struct ledger_book_changes_ops {
    int (*account_created)(void *ctx, const struct ledger_account *a);
    int (*account_updated)(void *ctx, const struct ledger_account *a);
    int (*transfer_created)(void *ctx, const struct ledger_transfer *t);
    int (*pending_updated)(void *ctx, const struct ledger_transfer *t);
};
int ledger_book_changes(const struct ledger_book *b, const struct ledger_book_changes_ops *ops,
                        void *ctx);

/* INV-1: every posted and pending delta in the book was applied to a debit and a credit side
 * alike, per ledger. True when the batch's deltas balance. */
bool ledger_book_balanced(const struct ledger_book *b);

#endif
